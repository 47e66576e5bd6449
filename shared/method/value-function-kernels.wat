;; The WebAssembly SIMD (f32x4) kernels of the value function: CompiledValueFunction's
;; (value-function-f32.ts through value-function-simd-path.ts; serving, one row at a time: the
;; dense layers of the MLP, forward and backward, and the input normalisation) and
;; ValueFunctionNetF32's (value-function-net-f32.ts; training, a batch of rows at a time: mm,
;; mmTN, colSum, reluMask, then the sparse nonzeros, mmS, mmTNS and adam at the end of the
;; module; their tests: test/core/value-function-net-kernels.test.ts).
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

  ;; mmTN: c[i][j] += sum_{r < rows} a[r][i] * b[r][j] for i < kn (a multiple of 4), j < nBytes / 4
  ;; (nBytes a multiple of 32), c holding zeros first: a layer's weight gradient (a: its inputs,
  ;; b: the gradient at its outputs): the first layer's, whose inputs are dense, chunk by
  ;; chunk. Tiles of 4 x 8: per row, two vectors of b and four splatted inputs feed 8
  ;; accumulators, summed over the rows in order.
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
          (local.set $pc (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $cs))) (local.get $j)))
          (local.set $s00 (v128.load offset=0 (local.get $pc))) (local.set $s01 (v128.load offset=16 (local.get $pc)))
          (local.set $pc (i32.add (local.get $pc) (local.get $cs)))
          (local.set $s10 (v128.load offset=0 (local.get $pc))) (local.set $s11 (v128.load offset=16 (local.get $pc)))
          (local.set $pc (i32.add (local.get $pc) (local.get $cs)))
          (local.set $s20 (v128.load offset=0 (local.get $pc))) (local.set $s21 (v128.load offset=16 (local.get $pc)))
          (local.set $pc (i32.add (local.get $pc) (local.get $cs)))
          (local.set $s30 (v128.load offset=0 (local.get $pc))) (local.set $s31 (v128.load offset=16 (local.get $pc)))
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

  ;; colSum: c[j] += sum_{r < rows} b[r][j] for j < nBytes / 4 (a multiple of 4), in row order:
  ;; a layer's bias gradient (c holds zeros first; adding a batch's chunks of rows in turn
  ;; gives the whole batch's sum, term for term).
  (func $colSum (export "colSum")
    (param $b i32) (param $bs i32) (param $c i32) (param $rows i32) (param $nBytes i32)
    (local $j i32) (local $r i32) (local $pb i32) (local $s v128)
    (local.set $j (i32.const 0))
    (block $done
      (br_if $done (i32.eqz (local.get $nBytes)))
      (loop $cols
        (local.set $s (v128.load (i32.add (local.get $c) (local.get $j))))
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

  ;; ---------------------------------------------------------------------------------------
  ;; Sparse training kernels. About half of a ReLU layer's outputs are 0 at the start of a fit
  ;; and 70-80% of the deeper layers' once it has trained; a product over such a dimension
  ;; skips them through a per-row list of the non-zero columns (made by `nonzeros`). Skipping
  ;; a zero term does not change a float32 sum (s + 0 * w = s), and the terms left are added
  ;; in the same order as the dense loop would: the results are the dense kernels' bit for bit.
  ;;
  ;; A list row (at list + r * ls): the count (u16), then the column indices in increasing
  ;; order (u16 each); ls is at least 2 * n + 10 bytes, rounded up to 16 (the store of the
  ;; last group of four writes 16 bytes).

  ;; nonzeros: the list of columns j < nBytes / 4 (a multiple of 4) with a[r][j] != 0 (NaN
  ;; included), for each r < rows. Four columns a step without branches: their mask (4 bits)
  ;; picks a row of `table` (16 rows of 8 u16: the set bits' positions, in order) that is
  ;; stored, offset by j, at the end of the list, which then grows by the mask's popcount.
  (func $nonzeros (export "nonzeros")
    (param $a i32) (param $as i32) (param $rows i32) (param $nBytes i32)
    (param $table i32) (param $list i32) (param $ls i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pl i32) (local $q i32) (local $m i32)
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $rowsL
        (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))))
        (local.set $pl (i32.add (local.get $list) (i32.mul (local.get $r) (local.get $ls))))
        (local.set $q (i32.add (local.get $pl) (i32.const 2)))
        (local.set $j (i32.const 0))
        (block $colsDone
          (br_if $colsDone (i32.eqz (local.get $nBytes)))
          (loop $cols
            (local.set $m (i32x4.bitmask
              (f32x4.ne (v128.load (i32.add (local.get $pa) (local.get $j))) (v128.const i32x4 0 0 0 0))))
            (v128.store (local.get $q)
              (i16x8.add
                (v128.load (i32.add (local.get $table) (i32.shl (local.get $m) (i32.const 4))))
                (i16x8.splat (i32.shr_u (local.get $j) (i32.const 2)))))
            (local.set $q (i32.add (local.get $q) (i32.shl (i32.popcnt (local.get $m)) (i32.const 1))))
            (br_if $cols (i32.lt_u
              (local.tee $j (i32.add (local.get $j) (i32.const 16)))
              (local.get $nBytes)))))
        (i32.store16 (local.get $pl)
          (i32.shr_u (i32.sub (local.get $q) (i32.add (local.get $pl) (i32.const 2))) (i32.const 1)))
        (br_if $rowsL (i32.lt_u
          (local.tee $r (i32.add (local.get $r) (i32.const 1)))
          (local.get $rows))))))

  ;; mmS: mm with the sum over the listed k only: c[r][j] = act(bias[j] + sum_{k in list[r]}
  ;; a[r][k] * b[k][j]) for r < rows, j < nBytes / 4 (a multiple of 8). The forward pass of a
  ;; layer above a ReLU (a: its activations) and the gradient back to a layer's input (a: the
  ;; gradient at its outputs, zero where its ReLU is off). One row at a time, in blocks of 16
  ;; and 8 columns: per listed k, one splatted a[r][k] and a row of b feed 4 or 2 accumulators
  ;; (blocks of 32 ran at half the speed: V8 spilled an accumulator); the sums are mm's, term
  ;; for term.
  (func $mmS (export "mmS")
    (param $a i32) (param $as i32) (param $list i32) (param $ls i32)
    (param $b i32) (param $bs i32) (param $bias i32) (param $c i32) (param $cs i32)
    (param $rows i32) (param $nBytes i32) (param $relu i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pl i32) (local $pc i32) (local $end i32)
    (local $p i32) (local $k i32) (local $pb i32) (local $pw i32)
    (local $x v128) (local $zero v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $rowsL
        (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))))
        (local.set $pl (i32.add (local.get $list) (i32.mul (local.get $r) (local.get $ls))))
        (local.set $end (i32.add (i32.add (local.get $pl) (i32.const 2)) (i32.shl (i32.load16_u (local.get $pl)) (i32.const 1))))
        (local.set $pc (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $cs))))
        (local.set $j (i32.const 0))
        ;; 16 columns a block
        (block $wideDone
          (loop $wide
            (br_if $wideDone (i32.gt_u (i32.add (local.get $j) (i32.const 64)) (local.get $nBytes)))
            (local.set $s0 (v128.load offset=0 (i32.add (local.get $bias) (local.get $j))))
            (local.set $s1 (v128.load offset=16 (i32.add (local.get $bias) (local.get $j))))
            (local.set $s2 (v128.load offset=32 (i32.add (local.get $bias) (local.get $j))))
            (local.set $s3 (v128.load offset=48 (i32.add (local.get $bias) (local.get $j))))
            (local.set $pb (i32.add (local.get $b) (local.get $j)))
            (local.set $p (i32.add (local.get $pl) (i32.const 2)))
            (block $wideKDone
              (br_if $wideKDone (i32.ge_u (local.get $p) (local.get $end)))
              (loop $wideKs
                (local.set $k (i32.load16_u (local.get $p)))
                (local.set $x (v128.load32_splat (i32.add (local.get $pa) (i32.shl (local.get $k) (i32.const 2)))))
                (local.set $pw (i32.add (local.get $pb) (i32.mul (local.get $k) (local.get $bs))))
                (local.set $s0 (f32x4.add (local.get $s0) (f32x4.mul (local.get $x) (v128.load offset=0 (local.get $pw)))))
                (local.set $s1 (f32x4.add (local.get $s1) (f32x4.mul (local.get $x) (v128.load offset=16 (local.get $pw)))))
                (local.set $s2 (f32x4.add (local.get $s2) (f32x4.mul (local.get $x) (v128.load offset=32 (local.get $pw)))))
                (local.set $s3 (f32x4.add (local.get $s3) (f32x4.mul (local.get $x) (v128.load offset=48 (local.get $pw)))))
                (br_if $wideKs (i32.lt_u
                  (local.tee $p (i32.add (local.get $p) (i32.const 2)))
                  (local.get $end)))))
            (if (local.get $relu)
              (then
                (local.set $s0 (f32x4.pmax (local.get $zero) (local.get $s0)))
                (local.set $s1 (f32x4.pmax (local.get $zero) (local.get $s1)))
                (local.set $s2 (f32x4.pmax (local.get $zero) (local.get $s2)))
                (local.set $s3 (f32x4.pmax (local.get $zero) (local.get $s3)))))
            (v128.store offset=0 (i32.add (local.get $pc) (local.get $j)) (local.get $s0))
            (v128.store offset=16 (i32.add (local.get $pc) (local.get $j)) (local.get $s1))
            (v128.store offset=32 (i32.add (local.get $pc) (local.get $j)) (local.get $s2))
            (v128.store offset=48 (i32.add (local.get $pc) (local.get $j)) (local.get $s3))
            (local.set $j (i32.add (local.get $j) (i32.const 64)))
            (br $wide)))
        ;; 8 columns a block
        (if (i32.le_u (i32.add (local.get $j) (i32.const 32)) (local.get $nBytes))
          (then
            (local.set $s0 (v128.load offset=0 (i32.add (local.get $bias) (local.get $j))))
            (local.set $s1 (v128.load offset=16 (i32.add (local.get $bias) (local.get $j))))
            (local.set $pb (i32.add (local.get $b) (local.get $j)))
            (local.set $p (i32.add (local.get $pl) (i32.const 2)))
            (block $narrowKDone
              (br_if $narrowKDone (i32.ge_u (local.get $p) (local.get $end)))
              (loop $narrowKs
                (local.set $k (i32.load16_u (local.get $p)))
                (local.set $x (v128.load32_splat (i32.add (local.get $pa) (i32.shl (local.get $k) (i32.const 2)))))
                (local.set $pw (i32.add (local.get $pb) (i32.mul (local.get $k) (local.get $bs))))
                (local.set $s0 (f32x4.add (local.get $s0) (f32x4.mul (local.get $x) (v128.load offset=0 (local.get $pw)))))
                (local.set $s1 (f32x4.add (local.get $s1) (f32x4.mul (local.get $x) (v128.load offset=16 (local.get $pw)))))
                (br_if $narrowKs (i32.lt_u
                  (local.tee $p (i32.add (local.get $p) (i32.const 2)))
                  (local.get $end)))))
            (if (local.get $relu)
              (then
                (local.set $s0 (f32x4.pmax (local.get $zero) (local.get $s0)))
                (local.set $s1 (f32x4.pmax (local.get $zero) (local.get $s1)))))
            (v128.store offset=0 (i32.add (local.get $pc) (local.get $j)) (local.get $s0))
            (v128.store offset=16 (i32.add (local.get $pc) (local.get $j)) (local.get $s1))
            (local.set $j (i32.add (local.get $j) (i32.const 32)))
            ))
        (br_if $rowsL (i32.lt_u
          (local.tee $r (i32.add (local.get $r) (i32.const 1)))
          (local.get $rows))))))

  ;; mmTNS: c[j][i] += sum_{r < rows, j in list[r]} g[r][j] * a[r][i] for i < kBytes / 4 (a
  ;; multiple of 8): a layer's weight gradient, transposed ([out][in], rows of cs bytes), from
  ;; its inputs a and the gradient g at its outputs, over the listed (non-zero) g only; c must
  ;; hold zeros first. Blocks of 32, 16 and 8 inputs: a row's block of a stays in registers
  ;; while its listed g[r][j] add into the rows j of c, rows r in order: each c[j][i] is mmTN's
  ;; sum, term for term.
  (func $mmTNS (export "mmTNS")
    (param $a i32) (param $as i32) (param $g i32) (param $gs i32) (param $list i32) (param $ls i32)
    (param $c i32) (param $cs i32) (param $rows i32) (param $kBytes i32)
    (local $i i32) (local $r i32) (local $pa i32) (local $pg i32) (local $pl i32) (local $end i32)
    (local $p i32) (local $j i32) (local $pc i32) (local $x v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (if (i32.eqz (local.get $rows)) (then (return)))
    ;; 32 columns of a a block
    (block $wideDone
      (loop $wide
        (br_if $wideDone (i32.gt_u (i32.add (local.get $i) (i32.const 128)) (local.get $kBytes)))
        (local.set $r (i32.const 0))
        (loop $wideRows
          (local.set $pa (i32.add (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))) (local.get $i)))
          (local.set $a0 (v128.load offset=0 (local.get $pa)))
          (local.set $a1 (v128.load offset=16 (local.get $pa)))
          (local.set $a2 (v128.load offset=32 (local.get $pa)))
          (local.set $a3 (v128.load offset=48 (local.get $pa)))
          (local.set $a4 (v128.load offset=64 (local.get $pa)))
          (local.set $a5 (v128.load offset=80 (local.get $pa)))
          (local.set $a6 (v128.load offset=96 (local.get $pa)))
          (local.set $a7 (v128.load offset=112 (local.get $pa)))
          (local.set $pg (i32.add (local.get $g) (i32.mul (local.get $r) (local.get $gs))))
          (local.set $pl (i32.add (local.get $list) (i32.mul (local.get $r) (local.get $ls))))
          (local.set $end (i32.add (i32.add (local.get $pl) (i32.const 2)) (i32.shl (i32.load16_u (local.get $pl)) (i32.const 1))))
          (local.set $p (i32.add (local.get $pl) (i32.const 2)))
          (block $wideJDone
            (br_if $wideJDone (i32.ge_u (local.get $p) (local.get $end)))
            (loop $wideJs
              (local.set $j (i32.load16_u (local.get $p)))
              (local.set $x (v128.load32_splat (i32.add (local.get $pg) (i32.shl (local.get $j) (i32.const 2)))))
              (local.set $pc (i32.add (i32.add (local.get $c) (local.get $i)) (i32.mul (local.get $j) (local.get $cs))))
              (v128.store offset=0 (local.get $pc) (f32x4.add (v128.load offset=0 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a0))))
              (v128.store offset=16 (local.get $pc) (f32x4.add (v128.load offset=16 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a1))))
              (v128.store offset=32 (local.get $pc) (f32x4.add (v128.load offset=32 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a2))))
              (v128.store offset=48 (local.get $pc) (f32x4.add (v128.load offset=48 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a3))))
              (v128.store offset=64 (local.get $pc) (f32x4.add (v128.load offset=64 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a4))))
              (v128.store offset=80 (local.get $pc) (f32x4.add (v128.load offset=80 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a5))))
              (v128.store offset=96 (local.get $pc) (f32x4.add (v128.load offset=96 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a6))))
              (v128.store offset=112 (local.get $pc) (f32x4.add (v128.load offset=112 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a7))))
              (br_if $wideJs (i32.lt_u
                (local.tee $p (i32.add (local.get $p) (i32.const 2)))
                (local.get $end)))))
          (br_if $wideRows (i32.lt_u
            (local.tee $r (i32.add (local.get $r) (i32.const 1)))
            (local.get $rows))))
        (local.set $i (i32.add (local.get $i) (i32.const 128)))
        (br $wide)))
    ;; 16 columns of a a block
    (if (i32.le_u (i32.add (local.get $i) (i32.const 64)) (local.get $kBytes))
      (then
        (local.set $r (i32.const 0))
        (loop $midRows
          (local.set $pa (i32.add (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))) (local.get $i)))
          (local.set $a0 (v128.load offset=0 (local.get $pa)))
          (local.set $a1 (v128.load offset=16 (local.get $pa)))
          (local.set $a2 (v128.load offset=32 (local.get $pa)))
          (local.set $a3 (v128.load offset=48 (local.get $pa)))
          (local.set $pg (i32.add (local.get $g) (i32.mul (local.get $r) (local.get $gs))))
          (local.set $pl (i32.add (local.get $list) (i32.mul (local.get $r) (local.get $ls))))
          (local.set $end (i32.add (i32.add (local.get $pl) (i32.const 2)) (i32.shl (i32.load16_u (local.get $pl)) (i32.const 1))))
          (local.set $p (i32.add (local.get $pl) (i32.const 2)))
          (block $midJDone
            (br_if $midJDone (i32.ge_u (local.get $p) (local.get $end)))
            (loop $midJs
              (local.set $j (i32.load16_u (local.get $p)))
              (local.set $x (v128.load32_splat (i32.add (local.get $pg) (i32.shl (local.get $j) (i32.const 2)))))
              (local.set $pc (i32.add (i32.add (local.get $c) (local.get $i)) (i32.mul (local.get $j) (local.get $cs))))
              (v128.store offset=0 (local.get $pc) (f32x4.add (v128.load offset=0 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a0))))
              (v128.store offset=16 (local.get $pc) (f32x4.add (v128.load offset=16 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a1))))
              (v128.store offset=32 (local.get $pc) (f32x4.add (v128.load offset=32 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a2))))
              (v128.store offset=48 (local.get $pc) (f32x4.add (v128.load offset=48 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a3))))
              (br_if $midJs (i32.lt_u
                (local.tee $p (i32.add (local.get $p) (i32.const 2)))
                (local.get $end)))))
          (br_if $midRows (i32.lt_u
            (local.tee $r (i32.add (local.get $r) (i32.const 1)))
            (local.get $rows))))
        (local.set $i (i32.add (local.get $i) (i32.const 64)))
        ))
    ;; 8 columns of a a block
    (if (i32.le_u (i32.add (local.get $i) (i32.const 32)) (local.get $kBytes))
      (then
        (local.set $r (i32.const 0))
        (loop $narrowRows
          (local.set $pa (i32.add (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $as))) (local.get $i)))
          (local.set $a0 (v128.load offset=0 (local.get $pa)))
          (local.set $a1 (v128.load offset=16 (local.get $pa)))
          (local.set $pg (i32.add (local.get $g) (i32.mul (local.get $r) (local.get $gs))))
          (local.set $pl (i32.add (local.get $list) (i32.mul (local.get $r) (local.get $ls))))
          (local.set $end (i32.add (i32.add (local.get $pl) (i32.const 2)) (i32.shl (i32.load16_u (local.get $pl)) (i32.const 1))))
          (local.set $p (i32.add (local.get $pl) (i32.const 2)))
          (block $narrowJDone
            (br_if $narrowJDone (i32.ge_u (local.get $p) (local.get $end)))
            (loop $narrowJs
              (local.set $j (i32.load16_u (local.get $p)))
              (local.set $x (v128.load32_splat (i32.add (local.get $pg) (i32.shl (local.get $j) (i32.const 2)))))
              (local.set $pc (i32.add (i32.add (local.get $c) (local.get $i)) (i32.mul (local.get $j) (local.get $cs))))
              (v128.store offset=0 (local.get $pc) (f32x4.add (v128.load offset=0 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a0))))
              (v128.store offset=16 (local.get $pc) (f32x4.add (v128.load offset=16 (local.get $pc)) (f32x4.mul (local.get $x) (local.get $a1))))
              (br_if $narrowJs (i32.lt_u
                (local.tee $p (i32.add (local.get $p) (i32.const 2)))
                (local.get $end)))))
          (br_if $narrowRows (i32.lt_u
            (local.tee $r (i32.add (local.get $r) (i32.const 1)))
            (local.get $rows))))
        (local.set $i (i32.add (local.get $i) (i32.const 32)))
        ))
  )

  ;; adam: one Adam step on n = 2 * pairs float32 parameters p from their gradients g, with the
  ;; moments m and v (float32, updated), in doubles two at a time: m' = beta1 m + (1 - beta1) g,
  ;; v' = beta2 v + (1 - beta2) g g, p' = p - lr (m' / c1) / (sqrt(v' / c2) + eps), c1 and c2
  ;; the bias corrections. The same expression in the same order as BatchedOptimizer's (JS
  ;; doubles, optimizers.ts), so the same float32 results bit for bit.
  (func $adam (export "adam")
    (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $pairs i32)
    (param $lr f64) (param $c1 f64) (param $c2 f64) (param $eps f64) (param $beta1 f64) (param $beta2 f64)
    (local $i i32) (local $o i32) (local $gv v128) (local $mv v128) (local $vv v128)
    (local $b1 v128) (local $b2 v128) (local $ob1 v128) (local $ob2 v128)
    (local $lrv v128) (local $c1v v128) (local $c2v v128) (local $epsv v128)
    (local.set $b1 (f64x2.splat (local.get $beta1)))
    (local.set $b2 (f64x2.splat (local.get $beta2)))
    (local.set $ob1 (f64x2.splat (f64.sub (f64.const 1) (local.get $beta1))))
    (local.set $ob2 (f64x2.splat (f64.sub (f64.const 1) (local.get $beta2))))
    (local.set $lrv (f64x2.splat (local.get $lr)))
    (local.set $c1v (f64x2.splat (local.get $c1)))
    (local.set $c2v (f64x2.splat (local.get $c2)))
    (local.set $epsv (f64x2.splat (local.get $eps)))
    (block $done
      (br_if $done (i32.eqz (local.get $pairs)))
      (loop $ps
        (local.set $o (i32.shl (local.get $i) (i32.const 3)))
        (local.set $gv (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $g) (local.get $o)))))
        (local.set $mv (f64x2.add
          (f64x2.mul (local.get $b1) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $m) (local.get $o)))))
          (f64x2.mul (local.get $ob1) (local.get $gv))))
        (local.set $vv (f64x2.add
          (f64x2.mul (local.get $b2) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $v) (local.get $o)))))
          (f64x2.mul (f64x2.mul (local.get $ob2) (local.get $gv)) (local.get $gv))))
        (v128.store64_lane 0 (i32.add (local.get $m) (local.get $o)) (f32x4.demote_f64x2_zero (local.get $mv)))
        (v128.store64_lane 0 (i32.add (local.get $v) (local.get $o)) (f32x4.demote_f64x2_zero (local.get $vv)))
        (v128.store64_lane 0 (i32.add (local.get $p) (local.get $o))
          (f32x4.demote_f64x2_zero
            (f64x2.sub
              (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $p) (local.get $o))))
              (f64x2.div
                (f64x2.mul (local.get $lrv) (f64x2.div (local.get $mv) (local.get $c1v)))
                (f64x2.add (f64x2.sqrt (f64x2.div (local.get $vv) (local.get $c2v))) (local.get $epsv))))))
        (br_if $ps (i32.lt_u
          (local.tee $i (i32.add (local.get $i) (i32.const 1)))
          (local.get $pairs))))))
)
