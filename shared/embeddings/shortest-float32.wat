;; The shortest decimal that reads back as the same float32, for a whole vector at once: the
;; arithmetic float32.ts describes (and says why it is exact), at machine speed from the first
;; call. In JavaScript, a cold start runs that loop in the interpreter, where every intermediate
;; double is an allocation: four vectors of 1,536 dimensions took about 2.5 ms and a garbage
;; collection; here under 1 ms, compilation and copies included (and a third less once warm).
;;
;; Compiled by `npm run build:wasm` into shortest-float32.wasm.ts (a test checks the two agree).
;;
;; Memory: 10^0 … 10^22 as f64 at byte 0 (written by $init); the caller puts the float32 values at
;; $in and gets one f64 per value at $out. A value outside [1e-13, 1e6) (zero excepted), or not
;; finite, is written as NaN and counted: the caller decides those by strings, as before.

(module
  (memory (export "memory") 1)

  (func $init
    (local $power i32)
    (local $value f64)
    (local.set $value (f64.const 1))
    (loop $next
      (f64.store (i32.shl (local.get $power) (i32.const 3)) (local.get $value))
      ;; Exact up to 10^22: every product is an integer below 2^53 · 2^22.
      (local.set $value (f64.mul (local.get $value) (f64.const 10)))
      (local.set $power (i32.add (local.get $power) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $power) (i32.const 23)))))
  (start $init)

  (func $powerOfTen (param $power i32) (result f64)
    (f64.load (i32.shl (local.get $power) (i32.const 3))))

  ;; floor(log10(magnitude)) for magnitude in [1e-13, 1e6), by comparison with exact powers of ten
  ;; (Math.log10 may round up at a boundary). Below 1, magnitude · 10^k is compared with 1: no
  ;; float32 is close enough to 10^-k for that product to round across it (a test checks the
  ;; float32 neighbours of every power).
  (func $decimalExponent (param $magnitude f64) (result i32)
    (local $exponent i32)
    (if (result i32) (f64.ge (local.get $magnitude) (f64.const 1))
      (then
        (block $found
          (loop $up
            (br_if $found (f64.lt (local.get $magnitude) (call $powerOfTen (i32.add (local.get $exponent) (i32.const 1)))))
            (local.set $exponent (i32.add (local.get $exponent) (i32.const 1)))
            (br $up)))
        (local.get $exponent))
      (else
        (local.set $exponent (i32.const -1))
        (block $found
          (loop $down
            (br_if $found (f64.ge (f64.mul (local.get $magnitude) (call $powerOfTen (i32.sub (i32.const 0) (local.get $exponent)))) (f64.const 1)))
            (local.set $exponent (i32.sub (local.get $exponent) (i32.const 1)))
            (br $down)))
        (local.get $exponent))))

  ;; The shortest decimal of 6 to 9 significant digits that reads back as $value, or NaN.
  (func $shortest (param $value f64) (result f64)
    (local $magnitude f64)
    (local $exponent i32)
    (local $digits i32)
    (local $scale f64)
    (local $candidate f64)
    (local.set $magnitude (f64.abs (local.get $value)))
    (if (f64.eq (local.get $magnitude) (f64.const 0)) (then (return (f64.const 0))))
    (if (i32.eqz (i32.and (f64.ge (local.get $magnitude) (f64.const 1e-13)) (f64.lt (local.get $magnitude) (f64.const 1e6))))
      (then (return (f64.const nan))))
    (local.set $exponent (call $decimalExponent (local.get $magnitude)))
    (local.set $digits (i32.const 6))
    (loop $try
      (local.set $scale (call $powerOfTen (i32.sub (i32.sub (local.get $digits) (i32.const 1)) (local.get $exponent))))
      ;; round(magnitude · scale), halves away from zero; then the sign; then back to the value.
      ;; magnitude · scale is at least 10^5, where adding 0.5 is exact.
      (local.set $candidate
        (f64.div
          (f64.copysign (f64.floor (f64.add (f64.mul (local.get $magnitude) (local.get $scale)) (f64.const 0.5))) (local.get $value))
          (local.get $scale)))
      (if (f64.eq (f64.promote_f32 (f32.demote_f64 (local.get $candidate))) (local.get $value))
        (then (return (local.get $candidate))))
      (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
      (br_if $try (i32.le_u (local.get $digits) (i32.const 9))))
    (f64.const nan))

  ;; Writes the shortest decimal of each of the $count float32 at $in as an f64 at $out; returns
  ;; how many are NaN (left to the caller).
  (func (export "shortestFloat32s") (param $in i32) (param $out i32) (param $count i32) (result i32)
    (local $index i32)
    (local $result f64)
    (local $undecided i32)
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $index) (local.get $count)))
        (local.set $result
          (call $shortest (f64.promote_f32 (f32.load (i32.add (local.get $in) (i32.shl (local.get $index) (i32.const 2)))))))
        (f64.store (i32.add (local.get $out) (i32.shl (local.get $index) (i32.const 3))) (local.get $result))
        (if (f64.ne (local.get $result) (local.get $result))
          (then (local.set $undecided (i32.add (local.get $undecided) (i32.const 1)))))
        (local.set $index (i32.add (local.get $index) (i32.const 1)))
        (br $each)))
    (local.get $undecided))
)
