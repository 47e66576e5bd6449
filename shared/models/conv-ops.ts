import * as tf from '@tensorflow/tfjs';

/**
 * 2 x 2 average pooling of [n, h, w, c] maps to [n, ceil(h/2), ceil(w/2), c], an odd side
 * zero-padded at the bottom/right first; slices, adds and reshapes only (all with wasm gradients).
 */
export function avgPool2(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h0, w0, c] = x.shape;
  const h = h0 + (h0 % 2);
  const w = w0 + (w0 % 2);
  const p =
    h === h0 && w === w0
      ? x
      : tf.pad(x, [
          [0, 0],
          [0, h - h0],
          [0, w - w0],
          [0, 0],
        ]);
  const pairs = tf.reshape(p, [(n * h) / 2, 2, w / 2, 2 * c]);
  const rowsSum = tf.reshape(
    tf.add(
      tf.slice(pairs, [0, 0, 0, 0], [(n * h) / 2, 1, w / 2, 2 * c]),
      tf.slice(pairs, [0, 1, 0, 0], [(n * h) / 2, 1, w / 2, 2 * c]),
    ),
    [(n * h * w) / 4, 2 * c],
  );
  const sum = tf.add(tf.slice(rowsSum, [0, 0], [(n * h * w) / 4, c]), tf.slice(rowsSum, [0, c], [(n * h * w) / 4, c]));
  return tf.reshape(tf.mul(sum, 0.25), [n, h / 2, w / 2, c]);
}

/**
 * A 3x3 'same' convolution as one matMul over the nine shifted copies of the input (im2col
 * with pad + slice + concat). The wasm backend has no Conv2DBackpropFilter kernel; these ops
 * all have wasm gradients. `k` is the kernel [3, 3, in, out] flattened to [9 * in, out].
 */
export function conv3x3(x: tf.Tensor4D, k: tf.Tensor2D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const padded = tf.pad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const cols: tf.Tensor4D[] = [];
  for (let dy = 0; dy < 3; dy++)
    for (let dx = 0; dx < 3; dx++) cols.push(tf.slice(padded, [0, dy, dx, 0], [n, h, w, c]));
  const patches = tf.reshape(tf.concat(cols, 3), [n * h * w, 9 * c]);
  return tf.reshape(tf.matMul(patches, k), [n, h, w, k.shape[1]]);
}
