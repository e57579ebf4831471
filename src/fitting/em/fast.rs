//! The fast E step of the ngmix v1.3.5 EM ([`super::EmVariant::V1`]), used by the plain
//! iteration (the fitters' PSF fits): the same fixed-point map as the reference passes of the
//! parent module, evaluated with far fewer operations.
//!
//! * **Row windows.** For each Gaussian and row, the columns where `chi2 < 25` (ngmix's hard
//!   cut) are an interval, found from the roots of the row's quadratic `chi2(col)`; only the
//!   4-column chunks that meet it are visited (rows it misses are skipped).
//! * **Exponentials by recurrence along the row** (as in the render kernel): with
//!   `q(x) = -chi2/2` quadratic in the column, `e(x + 4) = e(x) R(x)` and
//!   `R(x + 4) = R(x) S` with `S = exp(-16 a)` constant, so a chunk of 4 values costs two
//!   multiplications; the 4 lane starts and ratios are two accurate vector exps per row. The
//!   cut is applied to the value (`e > pnorm e^{-12.5}`, i.e. `chi2 < 25`). Gaussians too narrow
//!   for the recurrence to stay in the normal range just outside the window (`a > 9` per
//!   pixel², `sigma < 1/3` pixel along a row) are evaluated directly.
//! * **One pass per row**: values of every Gaussian into a row buffer with their sum, the
//!   responsibility factors `d / (Σ g + sky)` once per pixel, then the weighted sums. The sums are
//!   raw moments in pixel offsets from the Jacobian centre, per row `Σ w`, `Σ w x`, `Σ w x²`
//!   (`x` the column offset), folded with the row offset; the moments about each Gaussian's
//!   previous centre (ngmix's M-step sums) follow from them in sky units at the end.
//!
//! Results differ from the reference passes by rounding only (relative ~1e-14 per E step:
//! the recurrence's drift over a row and the moments' re-centring); the iteration and its
//! stopping rule are ngmix's. Everything runs in a fixed order (deterministic); the code is
//! portable Rust over 4-lane arrays, compiled a second time with AVX2 and FMA enabled (same
//! fused multiply-adds, so both give identical results).

use super::{Comp, Sums};

/// Lanes.
const L: usize = 4;

/// Largest `a` (the `col²` coefficient of `chi2` per pixel²) evaluated by recurrence.
const A_MAX_RECUR: f64 = 9.0;
/// `e^{-12.5}`: ngmix's `chi2 < 25` cut on the exponential.
const EXP_CUT: f64 = 3.726653172078671e-6;

/// 4 lanes of f64: the operations the E step uses, implemented portably ([`Port`]) and with
/// AVX2/FMA intrinsics ([`avx2::Ymm`]) with identical results (same fused multiply-adds).
pub(super) trait Lanes: Copy {
    fn splat(x: f64) -> Self;
    /// The first 4 elements of `s`.
    fn load(s: &[f64]) -> Self;
    fn store(self, s: &mut [f64]);
    fn to_array(self) -> [f64; L];
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// `self * b + c`, fused.
    fn fma(self, b: Self, c: Self) -> Self;
    /// `1 / self`.
    fn recip(self) -> Self;
    fn min(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    /// `self` where `q > thr`, 0 elsewhere.
    fn keep_if_gt(self, q: Self, thr: Self) -> Self;
    /// Whether some lane has `self == 0` and `real != 0`.
    fn any_zero_real(self, real: Self) -> bool;
    /// `2^n` for lanes holding `n + 1.5·2^52` (integer `n` in `[-1022, 1023]`).
    fn pow2_of_magic(self) -> Self;

    /// An accurate `exp` (relative error ~2e-16) for `x` in `[-700, 700]` (clamped), without
    /// tables: `x = n ln 2 + r`, `|r| <= ln2/2`, a degree-13 Taylor polynomial, `2^n` from the
    /// exponent bits.
    #[inline(always)]
    fn exp(self) -> Self {
        const LOG2E: f64 = std::f64::consts::LOG2_E;
        const LN2_HI: f64 = 6.93147180369123816490e-01;
        const LN2_LO: f64 = 1.90821492927058770002e-10;
        const MAGIC: f64 = 6755399441055744.0;
        // 1/k! for k = 13..=0
        const C: [f64; 14] = [
            1.0 / 6227020800.0,
            1.0 / 479001600.0,
            1.0 / 39916800.0,
            1.0 / 3628800.0,
            1.0 / 362880.0,
            1.0 / 40320.0,
            1.0 / 5040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ];
        let x = self.min(Self::splat(700.0)).max(Self::splat(-700.0));
        let t = x.fma(Self::splat(LOG2E), Self::splat(MAGIC));
        let mn = t.add(Self::splat(-MAGIC)).mul(Self::splat(-1.0));
        let r = mn.fma(Self::splat(LN2_LO), mn.fma(Self::splat(LN2_HI), x));
        let mut p = Self::splat(C[0]);
        for &c in &C[1..] {
            p = p.fma(r, Self::splat(c));
        }
        p.mul(t.pow2_of_magic())
    }
}

/// Portable lanes.
#[derive(Clone, Copy)]
pub(super) struct Port([f64; L]);

impl Lanes for Port {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        Port([x; L])
    }
    #[inline(always)]
    fn load(s: &[f64]) -> Self {
        let s = &s[..L];
        Port([s[0], s[1], s[2], s[3]])
    }
    #[inline(always)]
    fn store(self, s: &mut [f64]) {
        s[..L].copy_from_slice(&self.0);
    }
    #[inline(always)]
    fn to_array(self) -> [f64; L] {
        self.0
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let (a, b) = (self.0, o.0);
        Port([a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]])
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        let (a, b) = (self.0, o.0);
        Port([a[0] * b[0], a[1] * b[1], a[2] * b[2], a[3] * b[3]])
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        let (a, b, c) = (self.0, b.0, c.0);
        Port([
            a[0].mul_add(b[0], c[0]),
            a[1].mul_add(b[1], c[1]),
            a[2].mul_add(b[2], c[2]),
            a[3].mul_add(b[3], c[3]),
        ])
    }
    #[inline(always)]
    fn recip(self) -> Self {
        let a = self.0;
        Port([1.0 / a[0], 1.0 / a[1], 1.0 / a[2], 1.0 / a[3]])
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        // as `minpd`: the second operand unless `a < b`
        let (a, b) = (self.0, o.0);
        Port(std::array::from_fn(
            |l| if a[l] < b[l] { a[l] } else { b[l] },
        ))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        let (a, b) = (self.0, o.0);
        Port(std::array::from_fn(
            |l| if a[l] > b[l] { a[l] } else { b[l] },
        ))
    }
    #[inline(always)]
    fn keep_if_gt(self, q: Self, thr: Self) -> Self {
        let (a, q, t) = (self.0, q.0, thr.0);
        Port(std::array::from_fn(
            |l| if q[l] > t[l] { a[l] } else { 0.0 },
        ))
    }
    #[inline(always)]
    fn any_zero_real(self, real: Self) -> bool {
        (0..L).any(|l| self.0[l] == 0.0 && real.0[l] != 0.0)
    }
    #[inline(always)]
    fn pow2_of_magic(self) -> Self {
        const MAGIC: f64 = 6755399441055744.0;
        Port(std::array::from_fn(|l| {
            let n = (self.0[l].to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
            f64::from_bits(((n + 1023) as u64) << 52)
        }))
    }
}

/// AVX2 + FMA lanes (only used inside functions compiled with those features, after CPU
/// detection).
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::{Lanes, L};
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(in super::super) struct Ymm(__m256d);

    // SAFETY (all methods): the intrinsics need AVX2 and FMA; `Ymm` values are only created
    // inside the `avx2,fma` E-step instantiation, which runs after `Avx2::detect`. Loads and
    // stores are unaligned and bounds-checked by slicing first.
    impl Lanes for Ymm {
        #[inline(always)]
        fn splat(x: f64) -> Self {
            Ymm(unsafe { _mm256_set1_pd(x) })
        }
        #[inline(always)]
        fn load(s: &[f64]) -> Self {
            let s = &s[..L];
            Ymm(unsafe { _mm256_loadu_pd(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f64]) {
            let s = &mut s[..L];
            unsafe { _mm256_storeu_pd(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn to_array(self) -> [f64; L] {
            let mut out = [0.0; L];
            self.store(&mut out);
            out
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_add_pd(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_mul_pd(self.0, o.0) })
        }
        #[inline(always)]
        fn fma(self, b: Self, c: Self) -> Self {
            Ymm(unsafe { _mm256_fmadd_pd(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn recip(self) -> Self {
            Ymm(unsafe { _mm256_div_pd(_mm256_set1_pd(1.0), self.0) })
        }
        #[inline(always)]
        fn min(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_min_pd(self.0, o.0) })
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_max_pd(self.0, o.0) })
        }
        #[inline(always)]
        fn keep_if_gt(self, q: Self, thr: Self) -> Self {
            Ymm(unsafe { _mm256_and_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(q.0, thr.0), self.0) })
        }
        #[inline(always)]
        fn any_zero_real(self, real: Self) -> bool {
            unsafe {
                let z = _mm256_setzero_pd();
                let m = _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, z),
                    _mm256_cmp_pd::<_CMP_NEQ_UQ>(real.0, z),
                );
                _mm256_movemask_pd(m) != 0
            }
        }
        #[inline(always)]
        fn pow2_of_magic(self) -> Self {
            const MAGIC: f64 = 6755399441055744.0;
            unsafe {
                let n = _mm256_sub_epi64(
                    _mm256_castpd_si256(self.0),
                    _mm256_set1_epi64x(MAGIC.to_bits() as i64),
                );
                let e = _mm256_slli_epi64::<52>(_mm256_add_epi64(n, _mm256_set1_epi64x(1023)));
                Ymm(_mm256_castsi256_pd(e))
            }
        }
    }
}

/// Pixel data and row scratch of the fast E step.
#[derive(Debug, Clone)]
pub(super) struct FastPixels {
    nrow: usize,
    /// Chunks of 4 columns per row.
    nch: usize,
    ncol: usize,
    /// `image / counts`, row-major with rows padded to `4 nch` columns (zeros).
    d: Vec<f64>,
    /// Column offset `x = col - col0` per padded column, and `x²`.
    xs: Vec<f64>,
    x2: Vec<f64>,
    /// 1.0 for real columns, 0.0 for padding (per padded column).
    real: Vec<f64>,
    /// Row buffers: values of each Gaussian, their sum, the responsibility factors.
    val: Vec<f64>,
    /// 2-D recurrence state per Gaussian: the values and the row ratios of the current row.
    e2d: Vec<f64>,
    r2d: Vec<f64>,
    gsum: Vec<f64>,
    f: Vec<f64>,
    jac: [f64; 4],
    row0: f64,
}

impl FastPixels {
    /// From `d` (`nrow × ncol`, row-major: the normalised image) and the Jacobian.
    pub(super) fn new(d: &[f64], nrow: usize, ncol: usize, jac: &crate::gmix::Jacobian) -> Self {
        let nch = ncol.div_ceil(L);
        let w = nch * L;
        let mut dp = vec![0.0; nrow * w];
        for r in 0..nrow {
            dp[r * w..r * w + ncol].copy_from_slice(&d[r * ncol..(r + 1) * ncol]);
        }
        let xs: Vec<f64> = (0..w).map(|c| c as f64 - jac.col0).collect();
        let x2 = xs.iter().map(|x| x * x).collect();
        let real = (0..w).map(|c| if c < ncol { 1.0 } else { 0.0 }).collect();
        Self {
            nrow,
            nch,
            ncol,
            d: dp,
            xs,
            x2,
            real,
            val: vec![0.0; super::EM_MAX_NGAUSS * w],
            e2d: vec![0.0; super::EM_MAX_NGAUSS * w],
            r2d: vec![0.0; super::EM_MAX_NGAUSS * w],
            gsum: vec![0.0; w],
            f: vec![0.0; w],
            jac: [jac.dvdrow, jac.dvdcol, jac.dudrow, jac.dudcol],
            row0: jac.row0,
        }
    }
}

/// A Gaussian's per-iteration constants for the row loop.
#[derive(Clone, Copy, Default)]
struct RowGauss {
    /// `col²` coefficient of `chi2` (per pixel²).
    a: f64,
    /// `pnorm e^{-12.5}`: the value at the cut.
    cut: f64,
    /// Ratio of the recurrence ratios, `exp(-16 a)`.
    s: f64,
    recur: bool,
    /// Evaluated over the whole stamp by the 2-D recurrence (see [`estep`]).
    full: bool,
    /// Ratio of the row ratios, `exp(-A_rr)`.
    srr: f64,
    c: Comp,
}

/// The row quadratic `chi2(x) = a x² + b x + k` at row offset `dr`: `(b, k)`.
#[inline(always)]
fn row_coefs(c: &Comp, [dvdrow, dvdcol, dudrow, dudcol]: [f64; 4], dr: f64) -> (f64, f64) {
    let p = dvdrow.mul_add(dr, -c.row);
    let q = dudrow.mul_add(dr, -c.col);
    let b = 2.0 * (c.dcc * p * dvdcol + c.drr * q * dudcol - c.drc * (p * dudcol + q * dvdcol));
    let k0 = c.dcc * p * p + c.drr * q * q - 2.0 * c.drc * p * q;
    (b, k0)
}

/// One E step: the M-step sums of every Gaussian and the sky statistic (`Σ sky f`); `None` if
/// `Σ g + sky` is zero at a pixel (ngmix's range error) or a Gaussian is invalid.
#[inline(always)]
pub(super) fn estep<const N: usize, S: Lanes>(
    px: &mut FastPixels,
    comps: &[Comp; N],
    sky: f64,
) -> Option<([Sums; N], f64)> {
    let [dvdrow, dvdcol, dudrow, dudcol] = px.jac;
    let (nch, w) = (px.nch, px.nch * L);
    let mut gs = [RowGauss::default(); N];
    for k in 0..N {
        let c = comps[k];
        let a = c.dcc * dvdcol * dvdcol + c.drr * dudcol * dudcol - 2.0 * c.drc * dvdcol * dudcol;
        if !(a > 0.0) || !a.is_finite() {
            return None;
        }
        // the pixel-coordinate matrix of chi2 (`A_cc = a`), the extent of `chi2 < 25`
        let arr = c.dcc * dvdrow * dvdrow + c.drr * dudrow * dudrow - 2.0 * c.drc * dvdrow * dudrow;
        let arc = c.dcc * dvdrow * dvdcol + c.drr * dudrow * dudcol
            - c.drc * (dudrow * dvdcol + dvdrow * dudcol);
        let det = arr * a - arc * arc;
        // the whole stamp by the 2-D recurrence if every value there (and one row beyond) stays
        // far from underflow (q >= -600 at the corners: q is concave) and that costs less than
        // the row windows
        let mut qmin = f64::INFINITY;
        for rr in [0.0, (px.nrow + 1) as f64] {
            let (b, k0) = row_coefs(&c, px.jac, rr - px.row0);
            for x in [px.xs[0], px.xs[w - 1]] {
                qmin = qmin.min(-0.5 * a.mul_add(x, b).mul_add(x, k0));
            }
        }
        let full = if det > 0.0 && qmin >= -600.0 {
            let (hr, hc) = (5.0 * (a / det).sqrt(), 5.0 * (arr / det).sqrt());
            let rows = (2.0 * hr + 2.0).min(px.nrow as f64);
            let chunks = ((2.0 * hc + 2.0) / L as f64 + 1.0).min(nch as f64);
            (px.nrow * nch) as f64 * 1.25 <= rows * (14.0 + chunks)
        } else {
            false
        };
        gs[k] = RowGauss {
            a,
            cut: c.pnorm * EXP_CUT,
            s: S::splat(-16.0 * a).exp().to_array()[0],
            recur: a <= A_MAX_RECUR,
            full,
            srr: S::splat(-arr).exp().to_array()[0],
            c,
        };
        if full {
            // row 0: values and ratios to row 1
            let (b0, k00) = row_coefs(&c, px.jac, -px.row0);
            let (b1, k01) = row_coefs(&c, px.jac, 1.0 - px.row0);
            let (va, vb, vk) = (S::splat(a), S::splat(b0), S::splat(k00));
            let (db, dk) = (S::splat(-0.5 * (b1 - b0)), S::splat(-0.5 * (k01 - k00)));
            let (mhalf, pnorm) = (S::splat(-0.5), S::splat(c.pnorm));
            let it = px.e2d[k * w..(k + 1) * w]
                .chunks_exact_mut(L)
                .zip(px.r2d[k * w..(k + 1) * w].chunks_exact_mut(L))
                .zip(px.xs[..w].chunks_exact(L));
            for ((ec, rc), xc) in it {
                let x = S::load(xc);
                va.fma(x, vb)
                    .fma(x, vk)
                    .mul(mhalf)
                    .exp()
                    .mul(pnorm)
                    .store(ec);
                db.fma(x, dk).exp().store(rc);
            }
        }
    }
    // per Gaussian, lane accumulators: [Σw, Σw Δr, Σw x, Σw Δr², Σw Δr x, Σw x²]
    let mut tot = [[S::splat(0.0); 6]; N];
    let mut fsum = S::splat(0.0);
    let mut zero_hit = false;
    let FastPixels {
        d,
        xs,
        x2,
        real,
        val,
        gsum,
        f,
        e2d,
        r2d,
        ..
    } = px;
    let (xs, x2, real) = (&xs[..w], &x2[..w], &real[..w]);
    let (gsum, f) = (&mut gsum[..w], &mut f[..w]);
    let val = &mut val[..N * w];
    let col0 = -xs[0];
    let ncol = px.ncol as f64;
    let vsky = S::splat(sky);
    for r in 0..px.nrow {
        let dr = r as f64 - px.row0;
        let drow = &d[r * w..(r + 1) * w];
        gsum.fill(0.0);
        let mut range = [(0usize, 0usize); N];
        for k in 0..N {
            let g = &gs[k];
            let c = &g.c;
            if g.full {
                // e(r + 1) = e(r) R(r), R(r + 1) = R(r) exp(-A_rr), cut on the value
                range[k] = (0, nch);
                let (cut, vs) = (S::splat(g.cut), S::splat(g.srr));
                let it = val[k * w..(k + 1) * w]
                    .chunks_exact_mut(L)
                    .zip(gsum.chunks_exact_mut(L))
                    .zip(e2d[k * w..(k + 1) * w].chunks_exact_mut(L))
                    .zip(r2d[k * w..(k + 1) * w].chunks_exact_mut(L));
                for (((vc, gc), ec), rc) in it {
                    let (e, rr) = (S::load(ec), S::load(rc));
                    let v = e.keep_if_gt(e, cut);
                    v.store(vc);
                    S::load(gc).add(v).store(gc);
                    e.mul(rr).store(ec);
                    rr.mul(vs).store(rc);
                }
                continue;
            }
            let (b, k0) = row_coefs(c, px.jac, dr);
            // the columns with a x² + b x + (k0 - 25) < 0
            let km = k0 - 25.0;
            let disc = b.mul_add(b, -4.0 * g.a * km);
            if !(disc > 0.0) {
                continue;
            }
            let sq = disc.sqrt();
            let qq = -0.5 * (b + sq.copysign(b));
            let (r1, r2) = (qq / g.a, km / qq);
            let (xlo, xhi) = (r1.min(r2), r1.max(r2));
            let clo = ((xlo + col0).floor() + 1.0).clamp(0.0, ncol);
            let chi = (xhi + col0).ceil().clamp(0.0, ncol);
            if !(clo < chi) {
                continue;
            }
            let (jlo, jhi) = (clo as usize / L, (chi as usize).div_ceil(L));
            range[k] = (jlo, jhi);
            let (va, vb, vk0) = (S::splat(g.a), S::splat(b), S::splat(k0));
            let (mhalf, cut) = (S::splat(-0.5), S::splat(g.cut));
            let pnorm = S::splat(c.pnorm);
            let (o0, o1) = (k * w + jlo * L, k * w + jhi * L);
            let vk = val[o0..o1].chunks_exact_mut(L);
            let gk = gsum[jlo * L..jhi * L].chunks_exact_mut(L);
            if g.recur {
                // lane starts: e = pnorm exp(q(x)), R = exp(q(x + 4) - q(x))
                let x0 = S::load(&xs[jlo * L..]);
                let qv = va.fma(x0, vb).fma(x0, vk0).mul(mhalf);
                let dv = S::splat(-4.0 * g.a).fma(x0, S::splat(-(8.0 * g.a + 2.0 * b)));
                let mut e = qv.exp().mul(pnorm);
                let mut rr = dv.exp();
                let vs = S::splat(g.s);
                for (vc, gc) in vk.zip(gk) {
                    let v = e.keep_if_gt(e, cut);
                    v.store(vc);
                    S::load(gc).add(v).store(gc);
                    e = e.mul(rr);
                    rr = rr.mul(vs);
                }
            } else {
                let (lo, thr) = (S::splat(-13.0), S::splat(-12.5));
                let xk = xs[jlo * L..jhi * L].chunks_exact(L);
                for ((vc, gc), xc) in vk.zip(gk).zip(xk) {
                    let x = S::load(xc);
                    let qv = va.fma(x, vb).fma(x, vk0).mul(mhalf).max(lo);
                    let v = qv.exp().mul(pnorm).keep_if_gt(qv, thr);
                    v.store(vc);
                    S::load(gc).add(v).store(gc);
                }
            }
        }
        // responsibility factors over the whole row (padding: d = 0, f = 0); with sky > 0,
        // Σ g + sky > 0 (or NaN) everywhere, so only a zero sky needs the test for a zero
        let rows = gsum
            .chunks_exact(L)
            .zip(drow.chunks_exact(L))
            .zip(f.chunks_exact_mut(L));
        if sky > 0.0 {
            for ((gc, dc), fc) in rows {
                let fi = S::load(dc).mul(S::load(gc).add(vsky).recip());
                fi.store(fc);
                fsum = fsum.add(fi);
            }
        } else {
            for (((gc, dc), fc), rc) in rows.zip(real.chunks_exact(L)) {
                let gt = S::load(gc).add(vsky);
                zero_hit |= gt.any_zero_real(S::load(rc));
                let fi = S::load(dc).mul(gt.recip());
                fi.store(fc);
                fsum = fsum.add(fi);
            }
        }
        // weighted sums
        let (vdr, vdr2) = (S::splat(dr), S::splat(dr * dr));
        for k in 0..N {
            let (jlo, jhi) = range[k];
            if jlo >= jhi {
                continue;
            }
            let (o0, o1) = (jlo * L, jhi * L);
            let (mut a0, mut a1, mut a2) = (S::splat(0.0), S::splat(0.0), S::splat(0.0));
            let it = val[k * w + o0..k * w + o1]
                .chunks_exact(L)
                .zip(f[o0..o1].chunks_exact(L))
                .zip(xs[o0..o1].chunks_exact(L))
                .zip(x2[o0..o1].chunks_exact(L));
            for (((vc, fc), xc), x2c) in it {
                let wv = S::load(vc).mul(S::load(fc));
                a0 = a0.add(wv);
                a1 = wv.fma(S::load(xc), a1);
                a2 = wv.fma(S::load(x2c), a2);
            }
            let t = &mut tot[k];
            t[0] = t[0].add(a0);
            t[1] = vdr.fma(a0, t[1]);
            t[2] = t[2].add(a1);
            t[3] = vdr2.fma(a0, t[3]);
            t[4] = vdr.fma(a1, t[4]);
            t[5] = t[5].add(a2);
        }
    }
    if zero_hit {
        return None;
    }
    let hsum = |a: S| {
        let a = a.to_array();
        (a[0] + a[1]) + (a[2] + a[3])
    };
    let skysum = sky * hsum(fsum);
    let mut sums = [[0.0; 6]; N];
    for k in 0..N {
        let t = &tot[k];
        let (s0, sr, sx) = (hsum(t[0]), hsum(t[1]), hsum(t[2]));
        let (srr, srx, sxx) = (hsum(t[3]), hsum(t[4]), hsum(t[5]));
        let (row, col) = (comps[k].row, comps[k].col);
        // Σ w v, Σ w u and the second moments in sky units, about the Jacobian centre
        let sv = dvdrow * sr + dvdcol * sx;
        let su = dudrow * sr + dudcol * sx;
        let svv = dvdrow * dvdrow * srr + 2.0 * dvdrow * dvdcol * srx + dvdcol * dvdcol * sxx;
        let suu = dudrow * dudrow * srr + 2.0 * dudrow * dudcol * srx + dudcol * dudcol * sxx;
        let suv = dudrow * dvdrow * srr
            + (dudrow * dvdcol + dudcol * dvdrow) * srx
            + dudcol * dvdcol * sxx;
        // ... about the Gaussian's previous centre
        sums[k] = [
            s0,
            sv,
            su,
            svv - 2.0 * row * sv + row * row * s0,
            suv - col * sv - row * su + row * col * s0,
            suu - 2.0 * col * su + col * col * s0,
        ];
    }
    Some((sums, skysum))
}
