;; Pixel kernels for the classify stage's per-crop work, in WebAssembly SIMD (128-bit).
;; Built into kernels-wasm.ts by `node scripts/build-wasm.mjs` (wabt); the glue is in index.ts.
;; Every kernel reads and writes this module's memory at offsets the glue lays out, and some read
;; past the end of what they use: `filterPass` up to three rows and `taps` bytes, the gate kernels
;; up to the 13th byte after the plane. The glue leaves that slack after each buffer (index.ts).
;; What is read there meets a zero weight or a masked lane, or (`filterPass`'s extra rows) gives
;; outputs in padding that is never copied out. Every sum is exact in integers, so each kernel
;; gives the JavaScript's numbers to the bit.
(module
  (memory (export "memory") 1)

  ;; One pass of a separable fixed-point filter (resample.ts: Lanczos-3 with libvips' `reduce`
  ;; arithmetic), four source rows at a time:
  ;;   dst[o × dstStride + r] = clamp₀²⁵⁵((Σₖ src[r × srcStride + start[o] + k] × w[o × taps + k] + 2048) >> 12)
  ;; for r in [0, rows rounded up to 4) and o in [0, outputs). `start`: an i32 per output;
  ;; `weights`: i16 in 1/4096ths, `taps` (a multiple of 8) per output, 0 past its window. The
  ;; output is written transposed, so a second pass over it filters the other axis and writes
  ;; the image upright. Sums are exact in i32 (≤ 255 × Σ|w| ≈ 1.7 M), so this is the scalar
  ;; arithmetic to the bit.
  (func (export "filterPass")
    (param $src i32) (param $srcStride i32) (param $rows i32) (param $outputs i32)
    (param $start i32) (param $weights i32) (param $taps i32) (param $dst i32) (param $dstStride i32)
    (local $r i32) (local $o i32) (local $p i32) (local $w i32) (local $wEnd i32)
    (local $stride2 i32) (local $stride3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $wv v128)
    (local.set $stride2 (i32.shl (local.get $srcStride) (i32.const 1)))
    (local.set $stride3 (i32.add (local.get $stride2) (local.get $srcStride)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_s (local.get $r) (local.get $rows)))
        (local.set $o (i32.const 0))
        (block $outputsDone
          (loop $outputLoop
            (br_if $outputsDone (i32.ge_s (local.get $o) (local.get $outputs)))
            (local.set $p
              (i32.add
                (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $srcStride)))
                (i32.load (i32.add (local.get $start) (i32.shl (local.get $o) (i32.const 2))))))
            (local.set $w (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $o) (local.get $taps)) (i32.const 1))))
            (local.set $wEnd (i32.add (local.get $w) (i32.shl (local.get $taps) (i32.const 1))))
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))
            ;; Eight taps a step: eight pixels of each of four rows widened to i16, times the weights.
            (loop $tapLoop
              (local.set $wv (v128.load (local.get $w)))
              (local.set $a0 (i32x4.add (local.get $a0) (i32x4.dot_i16x8_s (v128.load8x8_u (local.get $p)) (local.get $wv))))
              (local.set $a1 (i32x4.add (local.get $a1)
                (i32x4.dot_i16x8_s (v128.load8x8_u (i32.add (local.get $p) (local.get $srcStride))) (local.get $wv))))
              (local.set $a2 (i32x4.add (local.get $a2)
                (i32x4.dot_i16x8_s (v128.load8x8_u (i32.add (local.get $p) (local.get $stride2))) (local.get $wv))))
              (local.set $a3 (i32x4.add (local.get $a3)
                (i32x4.dot_i16x8_s (v128.load8x8_u (i32.add (local.get $p) (local.get $stride3))) (local.get $wv))))
              (local.set $p (i32.add (local.get $p) (i32.const 8)))
              (local.set $w (i32.add (local.get $w) (i32.const 16)))
              (br_if $tapLoop (i32.lt_u (local.get $w) (local.get $wEnd))))
            ;; The four lanes of each row summed: [Σa0, Σa1, Σa2, Σa3].
            (local.set $a0 (i32x4.add
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $a1))
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $a1))))
            (local.set $a2 (i32x4.add
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a2) (local.get $a3))
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a2) (local.get $a3))))
            (local.set $a0 (i32x4.add
              (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a0) (local.get $a2))
              (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $a0) (local.get $a2))))
            ;; Rounded (arithmetic shift: floor, as the scalar code's >>), clamped to 0–255 by saturating narrows.
            (local.set $a0 (i32x4.shr_s (i32x4.add (local.get $a0) (v128.const i32x4 2048 2048 2048 2048)) (i32.const 12)))
            (local.set $a0 (i16x8.narrow_i32x4_s (local.get $a0) (local.get $a0)))
            (local.set $a0 (i8x16.narrow_i16x8_u (local.get $a0) (local.get $a0)))
            (v128.store32_lane 0
              (i32.add (local.get $dst) (i32.add (i32.mul (local.get $o) (local.get $dstStride)) (local.get $r)))
              (local.get $a0))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))
            (br $outputLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $rowLoop))))
  ;; Horizontal sum of an i32x4, as an i64 (the lanes widened before they are added).
  (func $sum4 (param $v v128) (result i64)
    (local $pairs v128)
    (local.set $pairs (i64x2.add (i64x2.extend_low_i32x4_s (local.get $v)) (i64x2.extend_high_i32x4_s (local.get $v))))
    (i64.add (i64x2.extract_lane 0 (local.get $pairs)) (i64x2.extract_lane 1 (local.get $pairs))))

  ;; Grey-plane totals (quality.ts `levelPlane`) of `n` bytes at `p`: Σv, Σv² and the count of
  ;; v ≥ 250, stored at `out` as three f64 (whole numbers, exact). Lane sums are moved to i64 every
  ;; 2,048 bytes, long before an i32 lane could overflow (≤ 4 × 255² a lane a step).
  (func (export "levelSums") (param $p i32) (param $n i32) (param $out i32)
    (local $end i32) (local $blockEnd i32) (local $v v128) (local $lo v128) (local $hi v128)
    (local $sum v128) (local $sq v128) (local $saturated i32) (local $sumTotal i64) (local $sqTotal i64) (local $x i32)
    (local.set $end (i32.add (local.get $p) (i32.and (local.get $n) (i32.const -16))))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $blockEnd (i32.add (local.get $p) (i32.const 2048)))
        (if (i32.gt_u (local.get $blockEnd) (local.get $end)) (then (local.set $blockEnd (local.get $end))))
        (local.set $sum (v128.const i32x4 0 0 0 0))
        (local.set $sq (v128.const i32x4 0 0 0 0))
        (loop $steps
          (local.set $v (v128.load (local.get $p)))
          (local.set $sum (i32x4.add (local.get $sum) (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (local.get $v)))))
          (local.set $lo (i16x8.extend_low_i8x16_u (local.get $v)))
          (local.set $hi (i16x8.extend_high_i8x16_u (local.get $v)))
          (local.set $sq (i32x4.add (local.get $sq)
            (i32x4.add (i32x4.dot_i16x8_s (local.get $lo) (local.get $lo)) (i32x4.dot_i16x8_s (local.get $hi) (local.get $hi)))))
          (local.set $saturated (i32.add (local.get $saturated)
            (i32.popcnt (i8x16.bitmask (i8x16.ge_u (local.get $v) (v128.const i8x16 250 250 250 250 250 250 250 250 250 250 250 250 250 250 250 250))))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br_if $steps (i32.lt_u (local.get $p) (local.get $blockEnd))))
        (local.set $sumTotal (i64.add (local.get $sumTotal) (call $sum4 (local.get $sum))))
        (local.set $sqTotal (i64.add (local.get $sqTotal) (call $sum4 (local.get $sq))))
        (br $blocks)))
    ;; The last n mod 16 bytes one at a time.
    (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 15))))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (i32.load8_u (local.get $p)))
        (local.set $sumTotal (i64.add (local.get $sumTotal) (i64.extend_i32_u (local.get $x))))
        (local.set $sqTotal (i64.add (local.get $sqTotal) (i64.extend_i32_u (i32.mul (local.get $x) (local.get $x)))))
        (local.set $saturated (i32.add (local.get $saturated) (i32.ge_u (local.get $x) (i32.const 250))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $tail)))
    (f64.store (local.get $out) (f64.convert_i64_s (local.get $sumTotal)))
    (f64.store offset=8 (local.get $out) (f64.convert_i64_s (local.get $sqTotal)))
    (f64.store offset=16 (local.get $out) (f64.convert_i32_u (local.get $saturated))))

  ;; The 4-neighbour Laplacian l = left + right + up + down − 4·centre over the interior of a
  ;; w×h plane at `p` (w, h ≥ 3; quality.ts `levelLaplacianVariance`): Σl and Σl² stored at `out`
  ;; as two f64. Eight samples a step in i16 (|l| ≤ 1020); the row's last w − 2 mod 8 one at a time.
  ;; A row's Σl² stays in i32 lanes (≤ 2 × 1020² a lane a step) until the row ends: w ≤ 8,192
  ;; (index.ts LAPLACIAN_MAX_WIDTH; planes are at most 320 wide).
  (func (export "laplacianSums") (param $p i32) (param $w i32) (param $h i32) (param $out i32)
    (local $y i32) (local $i i32) (local $rowEnd i32) (local $l v128) (local $sum v128) (local $sq v128)
    (local $sumTotal i64) (local $sqTotal i64) (local $s i32)
    (local.set $y (i32.const 1))
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.ge_s (local.get $y) (i32.sub (local.get $h) (i32.const 1))))
        (local.set $i (i32.add (i32.add (local.get $p) (i32.mul (local.get $y) (local.get $w))) (i32.const 1)))
        (local.set $rowEnd (i32.sub (i32.add (i32.add (local.get $p) (i32.mul (local.get $y) (local.get $w))) (local.get $w)) (i32.const 1)))
        (local.set $sum (v128.const i32x4 0 0 0 0))
        (local.set $sq (v128.const i32x4 0 0 0 0))
        (block $stepsDone
          (loop $steps
            (br_if $stepsDone (i32.gt_s (i32.add (local.get $i) (i32.const 8)) (local.get $rowEnd)))
            (local.set $l
              (i16x8.sub
                (i16x8.add
                  (i16x8.add (v128.load8x8_u (i32.sub (local.get $i) (i32.const 1))) (v128.load8x8_u (i32.add (local.get $i) (i32.const 1))))
                  (i16x8.add (v128.load8x8_u (i32.sub (local.get $i) (local.get $w))) (v128.load8x8_u (i32.add (local.get $i) (local.get $w)))))
                (i16x8.shl (v128.load8x8_u (local.get $i)) (i32.const 2))))
            (local.set $sum (i32x4.add (local.get $sum) (i32x4.extadd_pairwise_i16x8_s (local.get $l))))
            (local.set $sq (i32x4.add (local.get $sq) (i32x4.dot_i16x8_s (local.get $l) (local.get $l))))
            (local.set $i (i32.add (local.get $i) (i32.const 8)))
            (br $steps)))
        (local.set $sumTotal (i64.add (local.get $sumTotal) (call $sum4 (local.get $sum))))
        (local.set $sqTotal (i64.add (local.get $sqTotal) (call $sum4 (local.get $sq))))
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $i) (local.get $rowEnd)))
            (local.set $s
              (i32.sub
                (i32.add
                  (i32.add (i32.load8_u (i32.sub (local.get $i) (i32.const 1))) (i32.load8_u (i32.add (local.get $i) (i32.const 1))))
                  (i32.add (i32.load8_u (i32.sub (local.get $i) (local.get $w))) (i32.load8_u (i32.add (local.get $i) (local.get $w)))))
                (i32.shl (i32.load8_u (local.get $i)) (i32.const 2))))
            (local.set $sumTotal (i64.add (local.get $sumTotal) (i64.extend_i32_s (local.get $s))))
            (local.set $sqTotal (i64.add (local.get $sqTotal) (i64.extend_i32_s (i32.mul (local.get $s) (local.get $s)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $tail)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rows)))
    (f64.store (local.get $out) (f64.convert_i64_s (local.get $sumTotal)))
    (f64.store offset=8 (local.get $out) (f64.convert_i64_s (local.get $sqTotal))))

  ;; Cell sums and edge counts (probe-gate.ts `levelCellsAndEdges`) of a w×h plane at `p`, every
  ;; other row and column (odd y, odd x, inside the border): for each sample v, with
  ;; gx = right − left, gy = down − up, it is strong when |gx| + |gy| ≥ 24, along x when also
  ;; |gx| > 5|gy|, along y when |gy| > 5|gx|. Cell (row floor(y·rows/h), column c: x in
  ;; [colStart[c], colStart[c + 1])) gets Σv, Σv² and the sample count added to the f64 runs at
  ;; `cellSum`, `cellSum` + 8·cells and `cellSum` + 16·cells; the three edge counts are stored at
  ;; `edgesOut` as i32. Eight samples a step: a 16-byte load from x − 1 holds the left neighbour
  ;; of each sample in its low bytes and the sample in its high ones; the last step of a span is
  ;; masked to the samples left.
  (func (export "cellsAndEdges")
    (param $p i32) (param $w i32) (param $h i32) (param $rows i32) (param $cols i32)
    (param $colStart i32) (param $cellSum i32) (param $edgesOut i32)
    (local $y i32) (local $c i32) (local $x i32) (local $x1 i32) (local $i i32) (local $left i32)
    (local $cell i32) (local $cellBytes i32)
    (local $a v128) (local $v v128) (local $gx v128) (local $gy v128) (local $ax v128) (local $ay v128)
    (local $valid v128) (local $strong v128)
    (local $sum v128) (local $sq v128) (local $n v128)
    (local $edges v128) (local $alongX v128) (local $alongY v128)
    (local $edgesTotal i32) (local $alongXTotal i32) (local $alongYTotal i32)
    (local.set $cellBytes (i32.shl (i32.mul (local.get $rows) (local.get $cols)) (i32.const 3)))
    (local.set $y (i32.const 1))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_s (local.get $y) (i32.sub (local.get $h) (i32.const 1))))
        (local.set $edges (v128.const i32x4 0 0 0 0))
        (local.set $alongX (v128.const i32x4 0 0 0 0))
        (local.set $alongY (v128.const i32x4 0 0 0 0))
        (local.set $c (i32.const 0))
        (block $colsDone
          (loop $colLoop
            (br_if $colsDone (i32.ge_s (local.get $c) (local.get $cols)))
            ;; x from max(1, colStart[c]) | 1 to min(colStart[c + 1], w − 1), in twos.
            (local.set $x (i32.load (i32.add (local.get $colStart) (i32.shl (local.get $c) (i32.const 2)))))
            (if (i32.lt_s (local.get $x) (i32.const 1)) (then (local.set $x (i32.const 1))))
            (local.set $x (i32.or (local.get $x) (i32.const 1)))
            (local.set $x1 (i32.load offset=4 (i32.add (local.get $colStart) (i32.shl (local.get $c) (i32.const 2)))))
            (if (i32.gt_s (local.get $x1) (i32.sub (local.get $w) (i32.const 1))) (then (local.set $x1 (i32.sub (local.get $w) (i32.const 1)))))
            (local.set $sum (v128.const i32x4 0 0 0 0))
            (local.set $sq (v128.const i32x4 0 0 0 0))
            (local.set $n (v128.const i32x4 0 0 0 0))
            (block $spanDone
              (loop $span
                (br_if $spanDone (i32.ge_s (local.get $x) (local.get $x1)))
                ;; Samples left in the span: ceil((x1 − x) / 2); lanes at or past it are masked off.
                (local.set $left (i32.shr_s (i32.add (i32.sub (local.get $x1) (local.get $x)) (i32.const 1)) (i32.const 1)))
                (local.set $valid (i16x8.gt_s (i16x8.splat (local.get $left)) (v128.const i16x8 0 1 2 3 4 5 6 7)))
                (local.set $i (i32.add (local.get $p) (i32.add (i32.mul (local.get $y) (local.get $w)) (local.get $x))))
                (local.set $a (v128.load (i32.sub (local.get $i) (i32.const 1))))
                (local.set $v (v128.and (i16x8.shr_u (local.get $a) (i32.const 8)) (local.get $valid)))
                (local.set $gx (i16x8.sub
                  (v128.and (v128.load (i32.add (local.get $i) (i32.const 1))) (v128.const i16x8 255 255 255 255 255 255 255 255))
                  (v128.and (local.get $a) (v128.const i16x8 255 255 255 255 255 255 255 255))))
                (local.set $gy (i16x8.sub
                  (i16x8.shr_u (v128.load (i32.sub (i32.add (local.get $i) (local.get $w)) (i32.const 1))) (i32.const 8))
                  (i16x8.shr_u (v128.load (i32.sub (i32.sub (local.get $i) (local.get $w)) (i32.const 1))) (i32.const 8))))
                (local.set $ax (i16x8.abs (local.get $gx)))
                (local.set $ay (i16x8.abs (local.get $gy)))
                (local.set $strong (v128.and (local.get $valid)
                  (i16x8.gt_s (i16x8.add (local.get $ax) (local.get $ay)) (v128.const i16x8 23 23 23 23 23 23 23 23))))
                ;; Counts: a true lane is −1, so subtracting the mask counts it.
                (local.set $edges (i16x8.sub (local.get $edges) (local.get $strong)))
                (local.set $alongX (i16x8.sub (local.get $alongX)
                  (v128.and (local.get $strong) (i16x8.gt_s (local.get $ax) (i16x8.mul (local.get $ay) (v128.const i16x8 5 5 5 5 5 5 5 5))))))
                (local.set $alongY (i16x8.sub (local.get $alongY)
                  (v128.and (local.get $strong) (i16x8.gt_s (local.get $ay) (i16x8.mul (local.get $ax) (v128.const i16x8 5 5 5 5 5 5 5 5))))))
                (local.set $sum (i32x4.add (local.get $sum) (i32x4.extadd_pairwise_i16x8_s (local.get $v))))
                (local.set $sq (i32x4.add (local.get $sq) (i32x4.dot_i16x8_s (local.get $v) (local.get $v))))
                (local.set $n (i16x8.sub (local.get $n) (local.get $valid)))
                (local.set $x (i32.add (local.get $x) (i32.const 16)))
                (br $span)))
            ;; Into the cell's f64 sums.
            (local.set $cell (i32.add (local.get $cellSum) (i32.shl
              (i32.add
                (i32.mul
                  (select (i32.sub (local.get $rows) (i32.const 1)) (i32.div_s (i32.mul (local.get $y) (local.get $rows)) (local.get $h))
                    (i32.gt_s (i32.div_s (i32.mul (local.get $y) (local.get $rows)) (local.get $h)) (i32.sub (local.get $rows) (i32.const 1))))
                  (local.get $cols))
                (local.get $c))
              (i32.const 3))))
            (f64.store (local.get $cell) (f64.add (f64.load (local.get $cell)) (f64.convert_i64_s (call $sum4 (local.get $sum)))))
            (local.set $cell (i32.add (local.get $cell) (local.get $cellBytes)))
            (f64.store (local.get $cell) (f64.add (f64.load (local.get $cell)) (f64.convert_i64_s (call $sum4 (local.get $sq)))))
            (local.set $cell (i32.add (local.get $cell) (local.get $cellBytes)))
            (f64.store (local.get $cell) (f64.add (f64.load (local.get $cell))
              (f64.convert_i64_s (call $sum4 (i32x4.extadd_pairwise_i16x8_s (local.get $n))))))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            (br $colLoop)))
        ;; A row's edge counts (a lane counts at most one sample a step: ≈ w / 16 + cols) into the totals.
        (local.set $edgesTotal (i32.add (local.get $edgesTotal) (i32.wrap_i64 (call $sum4 (i32x4.extadd_pairwise_i16x8_s (local.get $edges))))))
        (local.set $alongXTotal (i32.add (local.get $alongXTotal) (i32.wrap_i64 (call $sum4 (i32x4.extadd_pairwise_i16x8_s (local.get $alongX))))))
        (local.set $alongYTotal (i32.add (local.get $alongYTotal) (i32.wrap_i64 (call $sum4 (i32x4.extadd_pairwise_i16x8_s (local.get $alongY))))))
        (local.set $y (i32.add (local.get $y) (i32.const 2)))
        (br $rowLoop)))
    (i32.store (local.get $edgesOut) (local.get $edgesTotal))
    (i32.store offset=4 (local.get $edgesOut) (local.get $alongXTotal))
    (i32.store offset=8 (local.get $edgesOut) (local.get $alongYTotal)))

  ;; Sums of 4×4 blocks (probe-gate.ts `levelBlockSums`) of a plane at `p`, `w` bytes a row: bw×bh
  ;; blocks from the top left, each stored at `out` as an f32 (≤ 16 × 255, exact), row-major.
  ;; Four blocks a step: sixteen bytes of each of four rows, summed in i16, then pairwise twice.
  (func (export "blockSums") (param $p i32) (param $w i32) (param $bw i32) (param $bh i32) (param $out i32)
    (local $by i32) (local $bx i32) (local $i i32) (local $o i32) (local $w2 i32) (local $w3 i32) (local $s v128) (local $k i32) (local $sum i32)
    (local.set $w2 (i32.shl (local.get $w) (i32.const 1)))
    (local.set $w3 (i32.add (local.get $w2) (local.get $w)))
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.ge_s (local.get $by) (local.get $bh)))
        (local.set $i (i32.add (local.get $p) (i32.shl (i32.mul (local.get $by) (local.get $w)) (i32.const 2))))
        (local.set $o (i32.add (local.get $out) (i32.shl (i32.mul (local.get $by) (local.get $bw)) (i32.const 2))))
        (local.set $bx (i32.const 0))
        (block $stepsDone
          (loop $steps
            (br_if $stepsDone (i32.gt_s (i32.add (local.get $bx) (i32.const 4)) (local.get $bw)))
            (local.set $s
              (i16x8.add
                (i16x8.add
                  (i16x8.extadd_pairwise_i8x16_u (v128.load (local.get $i)))
                  (i16x8.extadd_pairwise_i8x16_u (v128.load (i32.add (local.get $i) (local.get $w)))))
                (i16x8.add
                  (i16x8.extadd_pairwise_i8x16_u (v128.load (i32.add (local.get $i) (local.get $w2))))
                  (i16x8.extadd_pairwise_i8x16_u (v128.load (i32.add (local.get $i) (local.get $w3)))))))
            (v128.store (local.get $o) (f32x4.convert_i32x4_u (i32x4.extadd_pairwise_i16x8_u (local.get $s))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (local.set $bx (i32.add (local.get $bx) (i32.const 4)))
            (br $steps)))
        ;; The row's last bw mod 4 blocks one at a time.
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_s (local.get $bx) (local.get $bw)))
            (local.set $sum (i32.const 0))
            (local.set $k (i32.const 0))
            (loop $pixels
              (local.set $sum (i32.add (local.get $sum)
                (i32.load8_u (i32.add (local.get $i) (i32.add (i32.mul (i32.shr_u (local.get $k) (i32.const 2)) (local.get $w)) (i32.and (local.get $k) (i32.const 3)))))))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br_if $pixels (i32.lt_u (local.get $k) (i32.const 16))))
            (f32.store (local.get $o) (f32.convert_i32_u (local.get $sum)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (local.set $o (i32.add (local.get $o) (i32.const 4)))
            (local.set $bx (i32.add (local.get $bx) (i32.const 1)))
            (br $tail)))
        (local.set $by (i32.add (local.get $by) (i32.const 1)))
        (br $rows))))
)
