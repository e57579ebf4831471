//! Exponential functions used by the pixel kernels.
//!
//! * [`exp_libm`]: the exact reference.
//! * [`exp5_smooth`]: ngmix 2.4.2's fast exp (table of `e^i` times a smooth degree-5 polynomial),
//!   used with the apodized chi² window ([`apodize`]); reproduces `ref/ngmix` bit for bit.
//! * [`expd_fmath`]: ngmix v1.3.5's fast exp (the fmath/herumi 11-bit table method). Its error is
//!   below 1e-15 relative, so ngmix v1.3.5 — what ngmixer ran — is libm exp with a hard chi² < 25 cut.
//! * [`exp_poly`]: a branch-free, table-free exp (Cody–Waite reduction by ln 2 and a degree-13
//!   polynomial, `2^n` built from exponent bits) that vectorises; relative error below 1e-15
//!   over the kernels' range `[-12.5, 0]`.

/// Chi² at and beyond which a Gaussian is not evaluated on the fast path.
pub const MAX_CHI2: f64 = 25.0;
/// Chi² where the ngmix 2.4.2 apodization window starts.
pub const APOD_CHI2: f64 = 20.0;
/// `1 / (MAX_CHI2 - APOD_CHI2)`.
const APOD_IWIDTH: f64 = 1.0 / (MAX_CHI2 - APOD_CHI2);

/// libm exp.
#[inline(always)]
pub fn exp_libm(x: f64) -> f64 {
    x.exp()
}

const EXP5_COEFFS: [f64; 6] = [
    1.0000011318561302,
    0.999993601071577,
    0.49992478810274166,
    0.16674612720799442,
    0.042330947141114836,
    0.008197933236258961,
];

/// `e^{-i}` for i = 0..=15, computed once.
fn exp_int_table() -> &'static [f64; 16] {
    use std::sync::OnceLock;
    static T: OnceLock<[f64; 16]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0.0; 16];
        for (i, v) in t.iter_mut().enumerate() {
            *v = (-(i as f64)).exp();
        }
        t
    })
}

/// ngmix 2.4.2 `exp5_smooth`: valid for `x` in `[-15, 0]`.
///
/// `x = i + f` with `i = trunc(x - 0.5)` (so `f` in (-0.5, 0.5]); result `e^i · P5(f)`.
#[inline]
pub fn exp5_smooth(x: f64) -> f64 {
    let i = (x - 0.5) as i64; // C-style truncation toward zero
    let f = x - i as f64;
    let c = &EXP5_COEFFS;
    let p = c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * c[5]))));
    let idx = (-i).clamp(0, 15) as usize;
    exp_int_table()[idx] * p
}

/// ngmix 2.4.2 apodization window on chi²: 1 below 20, 0 from 25, a quintic smooth-step between.
#[inline]
pub fn apodize(chi2: f64) -> f64 {
    if chi2 <= APOD_CHI2 {
        1.0
    } else if chi2 >= MAX_CHI2 {
        0.0
    } else {
        // ngmix's operation order (multiply by the inverse width, Horner form) for bit parity
        let u = (MAX_CHI2 - chi2) * APOD_IWIDTH;
        u * u * u * (10.0 + u * (-15.0 + 6.0 * u))
    }
}

fn fmath_table() -> &'static [u64; 2048] {
    use std::sync::OnceLock;
    static T: OnceLock<[u64; 2048]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0u64; 2048];
        for (i, v) in t.iter_mut().enumerate() {
            let y = (i as f64 / 2048.0).exp2();
            *v = y.to_bits() & ((1u64 << 52) - 1);
        }
        t
    })
}

/// ngmix v1.3.5 `fastexp.expd` (herumi fmath `expd`, 11-bit table + cubic).
#[inline]
pub fn expd_fmath(x: f64) -> f64 {
    const A: f64 = 2954.639443740597; // 2048 / ln 2
    const RA: f64 = 0.0003384507717577858;
    const B: f64 = (3u64 << 51) as f64;
    const C1: f64 = 1.0;
    const C2: f64 = 0.16666666685227835064;
    const C3: f64 = 3.0000000027955394;
    let d = x * A + B;
    let i = d.to_bits();
    let iax = fmath_table()[(i & 2047) as usize];
    let t = (d - B) * RA - x;
    let u = ((i.wrapping_add(2095104)) >> 11) << 52;
    let y = (C3 - t) * (t * t) * C2 - t + C1;
    f64::from_bits(u | iax) * y
}

/// `1/k!` for k = 0..=13.
const EXP_POLY_TAYLOR: [f64; 14] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
];

/// The vector-lane exp of the SIMD kernels: `x` clamped to `[-700, 700]` (NaN maps to a bound,
/// as vector max/min do), Cody–Waite reduction by ln 2, the degree-13 Taylor polynomial in
/// Horner form with the caller's fused multiply-add (`fma(a, b, c) = a·b + c`, hardware or
/// plain), `2^n` from exponent bits; relative error ~1e-16, branch-free. The kernels pass their
/// arithmetic backend's `fma`, so each instantiation is monomorphized and inlined.
#[inline(always)]
pub(crate) fn exp_lane_with(x: f64, fma: impl Fn(f64, f64, f64) -> f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const ROUND_MAGIC: f64 = 6755399441055744.0; // 1.5·2^52
    #[allow(clippy::manual_clamp)] // NaN maps to a bound (vector max/min)
    let x = x.max(-700.0).min(700.0);
    let t = fma(x, LOG2E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    let r = fma(n, -LN2_HI, x);
    let r = fma(n, -LN2_LO, r);
    let mut p = EXP_POLY_TAYLOR[13];
    for k in (0..13).rev() {
        p = fma(p, r, EXP_POLY_TAYLOR[k]);
    }
    let bits = (t.to_bits().wrapping_add(1023)) << 52;
    p * f64::from_bits(bits)
}

/// Branch-free polynomial exp for `x` in about `[-700, 0]` (no special-value handling).
///
/// Written to vectorise: no table, no branches; `2^n` is assembled from exponent bits.
#[inline(always)]
pub fn exp_poly(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    // n = round(x / ln2) via the 1.5·2^52 trick (exact for |n| < 2^51).
    const SHIFT: f64 = 6755399441055744.0;
    let t = x * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor polynomial of degree 13 on |r| <= ln2/2: truncation error r^14/14! < 1e-17
    // relative (degree 11 left up to 6e-15). Horner form written as a loop over a constant
    // table (fully unrolled by the compiler); a nested expression made rustfmt run for minutes.
    let mut p = EXP_POLY_TAYLOR[13];
    for k in (0..13).rev() {
        p = EXP_POLY_TAYLOR[k] + r * p;
    }
    // 2^n: exponent field from the low bits of t (n is an integer stored in the mantissa).
    let bits = (t.to_bits().wrapping_add(1023)) << 52;
    p * f64::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmath_table_matches_ngmix() {
        // first entries of ngmix v1.3.5 fastexp.dtbl
        let t = fmath_table();
        assert_eq!(t[0], 0);
        assert_eq!(t[1], 1524504739922);
        assert_eq!(t[2], 3049525536975);
        assert_eq!(t[9], 13739135397378);
    }

    #[test]
    fn fmath_is_accurate() {
        let mut worst: f64 = 0.0;
        for k in 0..=200_000 {
            let x = -15.0 * k as f64 / 200_000.0;
            let rel = (expd_fmath(x) / x.exp() - 1.0).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-13, "worst {worst}");
    }

    #[test]
    fn exp_poly_is_accurate() {
        let mut worst: f64 = 0.0;
        for k in 0..=200_000 {
            let x = -30.0 * k as f64 / 200_000.0;
            let rel = (exp_poly(x) / x.exp() - 1.0).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-15, "worst {worst}");
    }

    #[test]
    fn exp5_smooth_error_bound() {
        // ngmix test_fastexp: max relative error < 2.5e-6 on [-15, 0], exact at integers to 1e-14
        let mut worst: f64 = 0.0;
        for k in 0..=150_000 {
            let x = -15.0 * k as f64 / 150_000.0;
            worst = worst.max((exp5_smooth(x) / x.exp() - 1.0).abs());
        }
        assert!(worst < 2.5e-6, "worst {worst}");
    }

    #[test]
    fn apodize_window_ends() {
        assert_eq!(apodize(20.0), 1.0);
        assert_eq!(apodize(25.0), 0.0);
        assert!(apodize(22.5) > 0.49 && apodize(22.5) < 0.51);
    }

    /// `(p, p', p'')` of the degree-5 polynomial at `f`.
    fn poly_derivs(f: f64) -> [f64; 3] {
        let c = &EXP5_COEFFS;
        let p = c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * c[5]))));
        let d1 = c[1] + f * (2.0 * c[2] + f * (3.0 * c[3] + f * (4.0 * c[4] + f * 5.0 * c[5])));
        let d2 = 2.0 * c[2] + f * (6.0 * c[3] + f * (12.0 * c[4] + f * 20.0 * c[5]));
        [p, d1, d2]
    }

    #[test]
    fn exp5_smooth_mean_error() {
        // ngmix test_fastexp: the signed relative error averages below 1e-7 on [-15, 0] (it
        // oscillates, so rendered models are not scaled)
        let n = 150_000;
        let mut sum = 0.0;
        for k in 0..=n {
            let x = -15.0 * k as f64 / n as f64;
            sum += exp5_smooth(x) / x.exp() - 1.0;
        }
        let mean = sum / (n + 1) as f64;
        assert!(mean.abs() < 1e-7, "mean {mean}");
    }

    #[test]
    fn exp5_smooth_is_c2_at_breakpoints() {
        // pieces meet at half-integers: e^(i-1) p(+1/2) on the left, e^i p(-1/2) on the right,
        // so p^(k)(1/2) / e must equal p^(k)(-1/2) for k = 0, 1, 2 (ngmix: ratios within 1e-13)
        let left = poly_derivs(0.5);
        let right = poly_derivs(-0.5);
        let e = std::f64::consts::E;
        for k in 0..3 {
            let ratio = (left[k] / e) / right[k];
            assert!((ratio - 1.0).abs() < 1e-13, "derivative {k}: ratio {ratio}");
        }
        // and the function itself is continuous across every breakpoint in use
        for i in 0..15 {
            let b = -0.5 - i as f64;
            let (lo, hi) = (exp5_smooth(b - 1e-12), exp5_smooth(b + 1e-12));
            assert!((lo / hi - 1.0).abs() < 1e-10, "breakpoint {b}");
        }
    }

    #[test]
    fn apodize_is_smooth_and_decreasing() {
        // ngmix test_fastexp: strictly decreasing on (20, 25), zero slope at both ends,
        // derivative equal to a finite difference
        let deriv = |x: f64| {
            let u = (MAX_CHI2 - x) * APOD_IWIDTH;
            -30.0 * u * u * (1.0 - u) * (1.0 - u) * APOD_IWIDTH
        };
        let mut prev = apodize(20.0);
        for k in 1..=1000 {
            let x = 20.0 + 5.0 * k as f64 / 1000.0;
            let a = apodize(x);
            assert!(a < prev || k == 1000 && a == 0.0, "not decreasing at {x}");
            prev = a;
        }
        for k in 1..50 {
            let x = 20.0 + 5.0 * k as f64 / 50.0;
            let h = 1e-6;
            let fd = (apodize(x + h) - apodize(x - h)) / (2.0 * h);
            assert!(
                (fd - deriv(x)).abs() < 1e-8,
                "slope at {x}: {fd} vs {}",
                deriv(x)
            );
        }
        let h = 1e-4;
        let slope_lo = (apodize(20.0 + h) - apodize(20.0)) / h;
        assert!(slope_lo.abs() < 1e-7);
        let slope_hi = (apodize(25.0) - apodize(25.0 - h)) / h;
        assert!(slope_hi.abs() < 1e-7);
    }
}
