;; The WebAssembly SIMD (f32x4) kernels of the value function: CompiledValueFunction's
;; (value-function-f32.ts; serving, one row at a time: the dense layers of the MLP, forward and
;; backward, and the input normalisation) and ValueFunctionNetF32's (value-function-net-f32.ts;
;; training, a batch of rows at a time: mm, mmTN, colSum, reluMask at the end of the module).
;;
;; Compiled at build time by wabt (scripts/build-kernels.mjs) into
;; value-function-kernels.wasm.ts, which the TypeScript imports. After editing this file run
;; `npm run build:kernels` (npm run build and npm test do it too); the float64 JS loops of
;; value-function-f32.ts are the reference the tests hold these kernels to
;; (test/value-api/value-function-f32.test.ts).
;;
;; Memory is the caller's (env.memory); every pointer is a byte offset, 16-byte aligned. Rows of
;; weights and vectors are padded with zeros to a multiple of 8 floats, and the rows of a layer
;; to a multiple of 4 (fwd computes four units a step); the padding must be zero.
(module
  (import "env" "memory" (memory 1))

  ;; fwd: out[j] = act(b[j] + sum_i in[i] * w[j][i]) for j < nout, act = ReLU when relu != 0.
  ;; w holds the transposed weights, one fan-in row of ninBytes bytes per unit. Four units a
  ;; step: each input vector is loaded once for four rows, and the four accumulators do not wait
  ;; on each other. Sums are float32, lanes added in order 0, 1, 2, 3, then the bias.
  (func $fwd (export "fwd")
    (param $in i32) (param $w i32) (param $b i32) (param $out i32)
    (param $ninBytes i32) (param $nout i32) (param $relu i32)
    (local $j i32) (local $i i32)
    (local $row0 i32) (local $row1 i32) (local $row2 i32) (local $row3 i32)
    (local $acc0 v128) (local $acc1 v128) (local $acc2 v128) (local $acc3 v128)
    (local $x v128)
    (local $s f32)
    (local.set $j (i32.const 0))
    (block $done
      (br_if $done (i32.eqz (local.get $nout)))
      (loop $units
        (local.set $acc0 (f32x4.splat (f32.const 0)))
        (local.set $acc1 (f32x4.splat (f32.const 0)))
        (local.set $acc2 (f32x4.splat (f32.const 0)))
        (local.set $acc3 (f32x4.splat (f32.const 0)))
        ;; the fan-in rows of units j .. j + 3
        (local.set $row0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ninBytes))))
        (local.set $row1 (i32.add (local.get $row0) (local.get $ninBytes)))
        (local.set $row2 (i32.add (local.get $row1) (local.get $ninBytes)))
        (local.set $row3 (i32.add (local.get $row2) (local.get $ninBytes)))
        ;; acc_k += in[i .. i + 3] * row_k[i .. i + 3], four floats a step
        (local.set $i (i32.const 0))
        (block $empty
          (br_if $empty (i32.eqz (local.get $ninBytes)))
          (loop $lanes
            (local.set $x (v128.load (i32.add (local.get $in) (local.get $i))))
            (local.set $acc0 (f32x4.add (local.get $acc0)
              (f32x4.mul (local.get $x) (v128.load (i32.add (local.get $row0) (local.get $i))))))
            (local.set $acc1 (f32x4.add (local.get $acc1)
              (f32x4.mul (local.get $x) (v128.load (i32.add (local.get $row1) (local.get $i))))))
            (local.set $acc2 (f32x4.add (local.get $acc2)
              (f32x4.mul (local.get $x) (v128.load (i32.add (local.get $row2) (local.get $i))))))
            (local.set $acc3 (f32x4.add (local.get $acc3)
              (f32x4.mul (local.get $x) (v128.load (i32.add (local.get $row3) (local.get $i))))))
            (br_if $lanes (i32.lt_u
              (local.tee $i (i32.add (local.get $i) (i32.const 16)))
              (local.get $ninBytes)))))
        ;; out[j + k] = act(lanes of acc_k added + b[j + k])
        (local.set $s (f32.add
          (f32.add (f32.add (f32.add
            (f32x4.extract_lane 0 (local.get $acc0)) (f32x4.extract_lane 1 (local.get $acc0)))
            (f32x4.extract_lane 2 (local.get $acc0))) (f32x4.extract_lane 3 (local.get $acc0)))
          (f32.load offset=0 (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))))
        (if (local.get $relu) (then (local.set $s (f32.max (local.get $s) (f32.const 0)))))
        (f32.store offset=0 (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
        (local.set $s (f32.add
          (f32.add (f32.add (f32.add
            (f32x4.extract_lane 0 (local.get $acc1)) (f32x4.extract_lane 1 (local.get $acc1)))
            (f32x4.extract_lane 2 (local.get $acc1))) (f32x4.extract_lane 3 (local.get $acc1)))
          (f32.load offset=4 (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))))
        (if (local.get $relu) (then (local.set $s (f32.max (local.get $s) (f32.const 0)))))
        (f32.store offset=4 (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
        (local.set $s (f32.add
          (f32.add (f32.add (f32.add
            (f32x4.extract_lane 0 (local.get $acc2)) (f32x4.extract_lane 1 (local.get $acc2)))
            (f32x4.extract_lane 2 (local.get $acc2))) (f32x4.extract_lane 3 (local.get $acc2)))
          (f32.load offset=8 (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))))
        (if (local.get $relu) (then (local.set $s (f32.max (local.get $s) (f32.const 0)))))
        (f32.store offset=8 (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
        (local.set $s (f32.add
          (f32.add (f32.add (f32.add
            (f32x4.extract_lane 0 (local.get $acc3)) (f32x4.extract_lane 1 (local.get $acc3)))
            (f32x4.extract_lane 2 (local.get $acc3))) (f32x4.extract_lane 3 (local.get $acc3)))
          (f32.load offset=12 (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))))
        (if (local.get $relu) (then (local.set $s (f32.max (local.get $s) (f32.const 0)))))
        (f32.store offset=12 (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
        (br_if $units (i32.lt_u
          (local.tee $j (i32.add (local.get $j) (i32.const 4)))
          (local.get $nout))))))

  ;; bwd: next = sum over units j of up[j] * w[j], over the units that pass a gradient back:
  ;; up[j] != 0 and, when masked != 0, an active ReLU (act[j] > 0). Back through a layer and the
  ;; ReLU of its output. The units are first listed in `list` as (row address i32, up[j] f32),
  ;; 8 bytes each; then their rows are added four at a time (next is loaded and stored once per
  ;; four rows), the last one to three one at a time.
  (func $bwd (export "bwd")
    (param $up i32) (param $w i32) (param $next i32) (param $ninBytes i32)
    (param $nout i32) (param $act i32) (param $masked i32) (param $list i32)
    (local $j i32) (local $i i32) (local $n i32) (local $t i32)
    (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32) (local $base i32)
    (local $uv0 v128) (local $uv1 v128) (local $uv2 v128) (local $uv3 v128)
    (local $nx v128)
    (local $u f32)
    ;; next = 0
    (local.set $i (i32.const 0))
    (block $empty
      (br_if $empty (i32.eqz (local.get $ninBytes)))
      (loop $lanes
        (v128.store (i32.add (local.get $next) (local.get $i)) (f32x4.splat (f32.const 0)))
        (br_if $lanes (i32.lt_u
          (local.tee $i (i32.add (local.get $i) (i32.const 16)))
          (local.get $ninBytes)))))
    ;; list[n] = (w + j * ninBytes, up[j]) for each unit with a gradient
    (local.set $n (i32.const 0))
    (local.set $j (i32.const 0))
    (block $listed
      (br_if $listed (i32.eqz (local.get $nout)))
      (loop $units
        (if (i32.and
              (f32.ne
                (local.tee $u (f32.load (i32.add (local.get $up) (i32.shl (local.get $j) (i32.const 2)))))
                (f32.const 0))
              (i32.or
                (i32.eqz (local.get $masked))
                (f32.gt (f32.load (i32.add (local.get $act) (i32.shl (local.get $j) (i32.const 2)))) (f32.const 0))))
          (then
            (i32.store offset=0
              (local.tee $base (i32.add (local.get $list) (i32.shl (local.get $n) (i32.const 3))))
              (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ninBytes))))
            (f32.store offset=4 (local.get $base) (local.get $u))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (br_if $units (i32.lt_u
          (local.tee $j (i32.add (local.get $j) (i32.const 1)))
          (local.get $nout)))))
    ;; four listed rows a step: next += uv_k * r_k
    (local.set $t (i32.const 0))
    (block $fours
      (loop $four
        (br_if $fours (i32.gt_u (i32.add (local.get $t) (i32.const 4)) (local.get $n)))
        (local.set $base (i32.add (local.get $list) (i32.shl (local.get $t) (i32.const 3))))
        (local.set $r0 (i32.load offset=0 (local.get $base)))
        (local.set $uv0 (f32x4.splat (f32.load offset=4 (local.get $base))))
        (local.set $r1 (i32.load offset=8 (local.get $base)))
        (local.set $uv1 (f32x4.splat (f32.load offset=12 (local.get $base))))
        (local.set $r2 (i32.load offset=16 (local.get $base)))
        (local.set $uv2 (f32x4.splat (f32.load offset=20 (local.get $base))))
        (local.set $r3 (i32.load offset=24 (local.get $base)))
        (local.set $uv3 (f32x4.splat (f32.load offset=28 (local.get $base))))
        (local.set $i (i32.const 0))
        (loop $lanes
          (local.set $nx (v128.load (i32.add (local.get $next) (local.get $i))))
          (local.set $nx (f32x4.add (local.get $nx)
            (f32x4.mul (local.get $uv0) (v128.load (i32.add (local.get $r0) (local.get $i))))))
          (local.set $nx (f32x4.add (local.get $nx)
            (f32x4.mul (local.get $uv1) (v128.load (i32.add (local.get $r1) (local.get $i))))))
          (local.set $nx (f32x4.add (local.get $nx)
            (f32x4.mul (local.get $uv2) (v128.load (i32.add (local.get $r2) (local.get $i))))))
          (local.set $nx (f32x4.add (local.get $nx)
            (f32x4.mul (local.get $uv3) (v128.load (i32.add (local.get $r3) (local.get $i))))))
          (v128.store (i32.add (local.get $next) (local.get $i)) (local.get $nx))
          (br_if $lanes (i32.lt_u
            (local.tee $i (i32.add (local.get $i) (i32.const 16)))
            (local.get $ninBytes))))
        (local.set $t (i32.add (local.get $t) (i32.const 4)))
        (br $four)))
    ;; the rest one row at a time
    (block $rest
      (loop $one
        (br_if $rest (i32.ge_u (local.get $t) (local.get $n)))
        (local.set $base (i32.add (local.get $list) (i32.shl (local.get $t) (i32.const 3))))
        (local.set $r0 (i32.load offset=0 (local.get $base)))
        (local.set $uv0 (f32x4.splat (f32.load offset=4 (local.get $base))))
        (local.set $i (i32.const 0))
        (loop $lanes
          (local.set $nx (v128.load (i32.add (local.get $next) (local.get $i))))
          (local.set $nx (f32x4.add (local.get $nx)
            (f32x4.mul (local.get $uv0) (v128.load (i32.add (local.get $r0) (local.get $i))))))
          (v128.store (i32.add (local.get $next) (local.get $i)) (local.get $nx))
          (br_if $lanes (i32.lt_u
            (local.tee $i (i32.add (local.get $i) (i32.const 16)))
            (local.get $ninBytes))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $one))))

  ;; scaled: dst[i] = float32((src[i] - sub[i]) * mul[i]) for 2 * pairs values, src and dst
  ;; float32, sub and mul float64, the arithmetic in doubles two at a time (f64x2): the same
  ;; expression, and so the same float32, as the JS loops. The input normalisation before the
  ;; forward pass, and the scaling of the gradient back to phi (sub all zeros) after the backward.
  (func $scaled (export "scaled")
    (param $src i32) (param $sub i32) (param $mul i32) (param $dst i32) (param $pairs i32)
    (local $i i32)
    (block $empty
      (br_if $empty (i32.eqz (local.get $pairs)))
      (loop $pair
        (v128.store64_lane 0
          (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 3)))
          (f32x4.demote_f64x2_zero
            (f64x2.mul
              (f64x2.sub
                (f64x2.promote_low_f32x4
                  (v128.load64_zero (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 3)))))
                (v128.load (i32.add (local.get $sub) (i32.shl (local.get $i) (i32.const 4)))))
              (v128.load (i32.add (local.get $mul) (i32.shl (local.get $i) (i32.const 4)))))))
        (br_if $pair (i32.lt_u
          (local.tee $i (i32.add (local.get $i) (i32.const 1)))
          (local.get $pairs))))))
  ;; ---------------------------------------------------------------------------------------
  ;; Training kernels (ValueFunctionNetF32, value-function-net-f32.ts): a batch of rows a call.
  ;; Matrices are row-major with a row stride in bytes (a multiple of 32: rows padded with
  ;; zeros to 8 floats); sums are float32, over k in order, lane by lane (no horizontal adds),
  ;; so a result does not depend on which thread computes it.

  ;; mm: c[r][j] = act(bias[j] + sum_{k < kn} a[r][k] * b[k][j]) for r < rows, j < nBytes / 4
  ;; (nBytes a multiple of 32); act = ReLU (pmax with 0) when relu != 0. The forward pass
  ;; (b = weights [in][out]) and the gradient back to a layer's input (b = weights [out][in],
  ;; bias zeros). Tiles of 4 rows x 8 columns: per k, two weight vectors and four splatted
  ;; inputs feed 8 accumulators. Left-over rows one at a time.
  (func $mm (export "mm")
    (param $a i32) (param $as i32) (param $b i32) (param $bs i32) (param $bias i32)
    (param $c i32) (param $cs i32) (param $rows i32) (param $kn i32) (param $nBytes i32) (param $relu i32)
    (local $r i32) (local $j i32) (local $kb i32) (local $kEnd i32) (local $pb i32)
    (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $c0 i32)
    (local $s00 v128) (local $s01 v128) (local $s10 v128) (local $s11 v128)
    (local $s20 v128) (local $s21 v128) (local $s30 v128) (local $s31 v128)
    (local $w0 v128) (local $w1 v128) (local $x v128) (local $zero v128)
    (local.set $kEnd (i32.shl (local.get $kn) (i32.const 2)))
    (local.set $r (i32.const 0))
    ;; four rows a tile
    (block $tilesDone
      (loop $tiles
        (br_if $tilesDone (i32.gt_u (i32.add (local.get $r) (i32.const 4)) (local.get $rows)))
        (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))))
        (local.set $a1 (i32.add (local.get $a0) (local.get $as)))
        (local.set $a2 (i32.add (local.get $a1) (local.get $as)))
        (local.set $a3 (i32.add (local.get $a2) (local.get $as)))
        (local.set $c0 (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $cs))))
        (local.set $j (i32.const 0))
        (loop $cols
          (local.set $s00 (v128.load offset=0 (i32.add (local.get $bias) (local.get $j))))
          (local.set $s01 (v128.load offset=16 (i32.add (local.get $bias) (local.get $j))))
          (local.set $s10 (local.get $s00)) (local.set $s11 (local.get $s01))
          (local.set $s20 (local.get $s00)) (local.set $s21 (local.get $s01))
          (local.set $s30 (local.get $s00)) (local.set $s31 (local.get $s01))
          (local.set $pb (i32.add (local.get $b) (local.get $j)))
          (local.set $kb (i32.const 0))
          (block $kDone
            (br_if $kDone (i32.eqz (local.get $kEnd)))
            (loop $ks
              (local.set $w0 (v128.load offset=0 (local.get $pb)))
              (local.set $w1 (v128.load offset=16 (local.get $pb)))
              (local.set $x (v128.load32_splat (i32.add (local.get $a0) (local.get $kb))))
              (local.set $s00 (f32x4.add (local.get $s00) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s01 (f32x4.add (local.get $s01) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $x (v128.load32_splat (i32.add (local.get $a1) (local.get $kb))))
              (local.set $s10 (f32x4.add (local.get $s10) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s11 (f32x4.add (local.get $s11) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $x (v128.load32_splat (i32.add (local.get $a2) (local.get $kb))))
              (local.set $s20 (f32x4.add (local.get $s20) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s21 (f32x4.add (local.get $s21) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $x (v128.load32_splat (i32.add (local.get $a3) (local.get $kb))))
              (local.set $s30 (f32x4.add (local.get $s30) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s31 (f32x4.add (local.get $s31) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $pb (i32.add (local.get $pb) (local.get $bs)))
              (br_if $ks (i32.lt_u
                (local.tee $kb (i32.add (local.get $kb) (i32.const 4)))
                (local.get $kEnd)))))
          (if (local.get $relu)
            (then
              (local.set $s00 (f32x4.pmax (local.get $zero) (local.get $s00)))
              (local.set $s01 (f32x4.pmax (local.get $zero) (local.get $s01)))
              (local.set $s10 (f32x4.pmax (local.get $zero) (local.get $s10)))
              (local.set $s11 (f32x4.pmax (local.get $zero) (local.get $s11)))
              (local.set $s20 (f32x4.pmax (local.get $zero) (local.get $s20)))
              (local.set $s21 (f32x4.pmax (local.get $zero) (local.get $s21)))
              (local.set $s30 (f32x4.pmax (local.get $zero) (local.get $s30)))
              (local.set $s31 (f32x4.pmax (local.get $zero) (local.get $s31)))))
          (local.set $pb (i32.add (local.get $c0) (local.get $j)))
          (v128.store offset=0 (local.get $pb) (local.get $s00))
          (v128.store offset=16 (local.get $pb) (local.get $s01))
          (local.set $pb (i32.add (local.get $pb) (local.get $cs)))
          (v128.store offset=0 (local.get $pb) (local.get $s10))
          (v128.store offset=16 (local.get $pb) (local.get $s11))
          (local.set $pb (i32.add (local.get $pb) (local.get $cs)))
          (v128.store offset=0 (local.get $pb) (local.get $s20))
          (v128.store offset=16 (local.get $pb) (local.get $s21))
          (local.set $pb (i32.add (local.get $pb) (local.get $cs)))
          (v128.store offset=0 (local.get $pb) (local.get $s30))
          (v128.store offset=16 (local.get $pb) (local.get $s31))
          (br_if $cols (i32.lt_u
            (local.tee $j (i32.add (local.get $j) (i32.const 32)))
            (local.get $nBytes))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $tiles)))
    ;; the rest one row at a time
    (block $restDone
      (loop $rest
        (br_if $restDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))))
        (local.set $c0 (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $cs))))
        (local.set $j (i32.const 0))
        (loop $cols1
          (local.set $s00 (v128.load offset=0 (i32.add (local.get $bias) (local.get $j))))
          (local.set $s01 (v128.load offset=16 (i32.add (local.get $bias) (local.get $j))))
          (local.set $pb (i32.add (local.get $b) (local.get $j)))
          (local.set $kb (i32.const 0))
          (block $kDone1
            (br_if $kDone1 (i32.eqz (local.get $kEnd)))
            (loop $ks1
              (local.set $x (v128.load32_splat (i32.add (local.get $a0) (local.get $kb))))
              (local.set $s00 (f32x4.add (local.get $s00) (f32x4.mul (local.get $x) (v128.load offset=0 (local.get $pb)))))
              (local.set $s01 (f32x4.add (local.get $s01) (f32x4.mul (local.get $x) (v128.load offset=16 (local.get $pb)))))
              (local.set $pb (i32.add (local.get $pb) (local.get $bs)))
              (br_if $ks1 (i32.lt_u
                (local.tee $kb (i32.add (local.get $kb) (i32.const 4)))
                (local.get $kEnd)))))
          (if (local.get $relu)
            (then
              (local.set $s00 (f32x4.pmax (local.get $zero) (local.get $s00)))
              (local.set $s01 (f32x4.pmax (local.get $zero) (local.get $s01)))))
          (v128.store offset=0 (i32.add (local.get $c0) (local.get $j)) (local.get $s00))
          (v128.store offset=16 (i32.add (local.get $c0) (local.get $j)) (local.get $s01))
          (br_if $cols1 (i32.lt_u
            (local.tee $j (i32.add (local.get $j) (i32.const 32)))
            (local.get $nBytes))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rest))))

  ;; mmTN: c[i][j] = sum_{r < rows} a[r][i] * b[r][j] for i < kn (a multiple of 4), j < nBytes / 4
  ;; (nBytes a multiple of 32), overwriting c: a layer's weight gradient (a: its inputs, b: the
  ;; gradient at its outputs). Tiles of 4 x 8: per row, two vectors of b and four splatted
  ;; inputs feed 8 accumulators, summed over the rows in order.
  (func $mmTN (export "mmTN")
    (param $a i32) (param $as i32) (param $b i32) (param $bs i32)
    (param $c i32) (param $cs i32) (param $rows i32) (param $kn i32) (param $nBytes i32)
    (local $i i32) (local $j i32) (local $r i32) (local $pa i32) (local $pb i32) (local $pc i32)
    (local $s00 v128) (local $s01 v128) (local $s10 v128) (local $s11 v128)
    (local $s20 v128) (local $s21 v128) (local $s30 v128) (local $s31 v128)
    (local $w0 v128) (local $w1 v128) (local $x v128)
    (local.set $i (i32.const 0))
    (block $iDone
      (loop $is
        (br_if $iDone (i32.ge_u (local.get $i) (local.get $kn)))
        (local.set $j (i32.const 0))
        (loop $cols
          (local.set $s00 (v128.const i32x4 0 0 0 0)) (local.set $s01 (v128.const i32x4 0 0 0 0))
          (local.set $s10 (v128.const i32x4 0 0 0 0)) (local.set $s11 (v128.const i32x4 0 0 0 0))
          (local.set $s20 (v128.const i32x4 0 0 0 0)) (local.set $s21 (v128.const i32x4 0 0 0 0))
          (local.set $s30 (v128.const i32x4 0 0 0 0)) (local.set $s31 (v128.const i32x4 0 0 0 0))
          (local.set $pa (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $pb (i32.add (local.get $b) (local.get $j)))
          (local.set $r (local.get $rows))
          (block $rDone
            (br_if $rDone (i32.eqz (local.get $r)))
            (loop $rs
              (local.set $w0 (v128.load offset=0 (local.get $pb)))
              (local.set $w1 (v128.load offset=16 (local.get $pb)))
              (local.set $x (v128.load32_splat offset=0 (local.get $pa)))
              (local.set $s00 (f32x4.add (local.get $s00) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s01 (f32x4.add (local.get $s01) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $x (v128.load32_splat offset=4 (local.get $pa)))
              (local.set $s10 (f32x4.add (local.get $s10) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s11 (f32x4.add (local.get $s11) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $x (v128.load32_splat offset=8 (local.get $pa)))
              (local.set $s20 (f32x4.add (local.get $s20) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s21 (f32x4.add (local.get $s21) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $x (v128.load32_splat offset=12 (local.get $pa)))
              (local.set $s30 (f32x4.add (local.get $s30) (f32x4.mul (local.get $x) (local.get $w0))))
              (local.set $s31 (f32x4.add (local.get $s31) (f32x4.mul (local.get $x) (local.get $w1))))
              (local.set $pa (i32.add (local.get $pa) (local.get $as)))
              (local.set $pb (i32.add (local.get $pb) (local.get $bs)))
              (br_if $rs (local.tee $r (i32.sub (local.get $r) (i32.const 1))))))
          (local.set $pc (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $cs))) (local.get $j)))
          (v128.store offset=0 (local.get $pc) (local.get $s00))
          (v128.store offset=16 (local.get $pc) (local.get $s01))
          (local.set $pc (i32.add (local.get $pc) (local.get $cs)))
          (v128.store offset=0 (local.get $pc) (local.get $s10))
          (v128.store offset=16 (local.get $pc) (local.get $s11))
          (local.set $pc (i32.add (local.get $pc) (local.get $cs)))
          (v128.store offset=0 (local.get $pc) (local.get $s20))
          (v128.store offset=16 (local.get $pc) (local.get $s21))
          (local.set $pc (i32.add (local.get $pc) (local.get $cs)))
          (v128.store offset=0 (local.get $pc) (local.get $s30))
          (v128.store offset=16 (local.get $pc) (local.get $s31))
          (br_if $cols (i32.lt_u
            (local.tee $j (i32.add (local.get $j) (i32.const 32)))
            (local.get $nBytes))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $is))))

  ;; colSum: c[j] = sum_{r < rows} b[r][j] for j < nBytes / 4 (a multiple of 4), in row order:
  ;; a layer's bias gradient.
  (func $colSum (export "colSum")
    (param $b i32) (param $bs i32) (param $c i32) (param $rows i32) (param $nBytes i32)
    (local $j i32) (local $r i32) (local $pb i32) (local $s v128)
    (local.set $j (i32.const 0))
    (block $done
      (br_if $done (i32.eqz (local.get $nBytes)))
      (loop $cols
        (local.set $s (v128.const i32x4 0 0 0 0))
        (local.set $pb (i32.add (local.get $b) (local.get $j)))
        (local.set $r (local.get $rows))
        (block $rDone
          (br_if $rDone (i32.eqz (local.get $r)))
          (loop $rs
            (local.set $s (f32x4.add (local.get $s) (v128.load (local.get $pb))))
            (local.set $pb (i32.add (local.get $pb) (local.get $bs)))
            (br_if $rs (local.tee $r (i32.sub (local.get $r) (i32.const 1))))))
        (v128.store (i32.add (local.get $c) (local.get $j)) (local.get $s))
        (br_if $cols (i32.lt_u
          (local.tee $j (i32.add (local.get $j) (i32.const 16)))
          (local.get $nBytes))))))

  ;; reluMask: g[k] = act[k] > 0 ? g[k] : 0 for k < nBytes / 4 (a multiple of 4): a gradient
  ;; taken back through a ReLU whose outputs are act.
  (func $reluMask (export "reluMask")
    (param $g i32) (param $act i32) (param $nBytes i32)
    (local $k i32)
    (block $done
      (br_if $done (i32.eqz (local.get $nBytes)))
      (loop $ks
        (v128.store (i32.add (local.get $g) (local.get $k))
          (v128.and
            (v128.load (i32.add (local.get $g) (local.get $k)))
            (f32x4.gt (v128.load (i32.add (local.get $act) (local.get $k))) (v128.const i32x4 0 0 0 0))))
        (br_if $ks (i32.lt_u
          (local.tee $k (i32.add (local.get $k) (i32.const 16)))
          (local.get $nBytes))))))
)
