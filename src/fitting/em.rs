//! Expectation–maximisation fit of a Gaussian mixture to an image (ngmix `em`), the PSF fitter
//! of ngmixer (`psf_pars.model: emN`).
//!
//! Two flavours of ngmix are implemented, selected by [`EmVariant`]:
//!
//! | | [`EmVariant::V1`] (ngmix v1.3.5, default: what ngmixer ran) | [`EmVariant::V2`] (ngmix 2.4.2, `ref/ngmix/data/em.json`) |
//! |---|---|---|
//! | sky | re-fitted every iteration, starting from the prep sky `0.001 (max - min)` | fixed at the prep shift `0.001 (max - min) - min` (or fitted with `vary_sky`) |
//! | exp | accurate exp (ngmix used herumi `expd`, < 1e-15 relative), hard cut `0 <= chi2 < 25` | `exp5_smooth`, hard cut `0 <= chi2 < 25` (no apodization) |
//! | pixel value | Gaussian density (no pixel area), image normalised by its sum | density × pixel area, image in its own units |
//! | convergence | every iteration: `|ΔT/T|`, `|Δe1|`, `|Δe2|` all `< tol` | after `miniter`: `|ΔL/L| < tol`, `L` the EM log-likelihood statistic |
//! | flags | `EM_RANGE_ERROR` = 1, `EM_MAXITER` = 2 | 2^7 and 2^5 |
//! | returned `p` | fraction of the sky-shifted image's sum (`Σ p + sky fraction = 1`) | image flux units (pixel sums) |
//!
//! In both, the image is first shifted by a constant so its minimum is `0.001 (max - min)`
//! (when no sky is given), every pixel is used (there is no weight map), the E step weights each
//! pixel's value by the responsibilities `g_k / (Σ g + sky)`, and the M step sets each Gaussian
//! from the weighted sums; its covariance is taken about the Gaussian's *previous* centre, as
//! ngmix does. V2 additionally clamps a negative variance to `1e-4` (round) and rounds a
//! Gaussian whose determinant falls below `1e-200`.
//!
//! The per-iteration loop is allocation-free: pixel coordinates are computed once, the E step
//! runs over structure-of-arrays pixel buffers (vectorised; AVX2 is used when the CPU has it,
//! selected once per fit; the results do not depend on it).

use crate::error::{GMixError, GResult};
use crate::gmix::fastexp::exp_poly;
use crate::gmix::gauss::LOW_DETVAL;
use crate::gmix::{GMix, Gauss2D, Jacobian};

/// ngmix v1.3.5 flag: a Gaussian left its valid range (or a division by zero).
pub const EM_RANGE_ERROR: u32 = 1 << 0;
/// ngmix v1.3.5 flag: `numiter >= maxiter`.
pub const EM_MAXITER: u32 = 1 << 1;
/// ngmix 2.4.2 flag `EM_RANGE_ERROR` (= `GMIX_RANGE_ERROR`).
pub const EM_RANGE_ERROR_V2: u32 = 1 << 7;
/// ngmix 2.4.2 flag `EM_MAXITER` (= `MAXITER`).
pub const EM_MAXITER_V2: u32 = 1 << 5;
/// Largest number of Gaussians [`EmFitter`] fits.
pub const EM_MAX_NGAUSS: usize = 6;

/// Which ngmix EM to reproduce (see the [module docs](self) for the differences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmVariant {
    /// ngmix v1.3.5 (`ngmix.em.GMixEM`), used by ngmixer.
    #[default]
    V1,
    /// ngmix 2.4.2 (`ngmix.em.EMFitter`).
    V2,
}

impl EmVariant {
    /// The variant's `EM_RANGE_ERROR` bit.
    pub fn range_error_flag(self) -> u32 {
        match self {
            EmVariant::V1 => EM_RANGE_ERROR,
            EmVariant::V2 => EM_RANGE_ERROR_V2,
        }
    }

    /// The variant's `EM_MAXITER` bit.
    pub fn maxiter_flag(self) -> u32 {
        match self {
            EmVariant::V1 => EM_MAXITER,
            EmVariant::V2 => EM_MAXITER_V2,
        }
    }
}

/// EM settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmConfig {
    /// Which ngmix to reproduce.
    pub variant: EmVariant,
    /// Maximum number of iterations.
    pub maxiter: usize,
    /// Minimum number of iterations before testing convergence (V2 only; V1 tests from the
    /// first iteration).
    pub miniter: usize,
    /// Convergence tolerance (V1: on `|ΔT/T|`, `|Δe1|`, `|Δe2|`; V2: on `|ΔL/L|`).
    pub tol: f64,
    /// The sky level of the image. `None`: shift the image so its minimum is
    /// `0.001 (max - min)` and derive the sky from that (ngmix `prep_image`). `Some(s)`: the image
    /// is used as given (it must already be positive) and `s` is the sky (V1: its start value).
    pub sky: Option<f64>,
    /// Fit the sky level (V2 only; V1 always re-fits it).
    pub vary_sky: bool,
}

impl Default for EmConfig {
    /// ngmix v1.3.5 `GMixEM.go` defaults: `maxiter` 100, `tol` 1e-6.
    fn default() -> Self {
        Self::v1()
    }
}

impl EmConfig {
    /// ngmix v1.3.5 `GMixEM.go` defaults: `maxiter` 100, `tol` 1e-6, sky from `prep_image`.
    pub fn v1() -> Self {
        Self {
            variant: EmVariant::V1,
            maxiter: 100,
            miniter: 0,
            tol: 1.0e-6,
            sky: None,
            vary_sky: true,
        }
    }

    /// ngmix v1.3.5 bootstrapper PSF defaults (`{tol: 1e-6, maxiter: 50000}`), which ngmixer's
    /// `psf_pars.fit_pars` then update (the Y1 configs use `maxiter` 5000, `tol` 5e-6).
    pub fn v1_psf() -> Self {
        Self {
            maxiter: 50_000,
            ..Self::v1()
        }
    }

    /// ngmix 2.4.2 `EMFitter` defaults: `miniter` 40, `maxiter` 500, `tol` 1e-5, fixed sky.
    pub fn v2() -> Self {
        Self {
            variant: EmVariant::V2,
            maxiter: 500,
            miniter: 40,
            tol: 1.0e-5,
            sky: None,
            vary_sky: false,
        }
    }
}

/// Outcome of an EM fit.
#[derive(Debug, Clone, PartialEq)]
pub struct EmResult {
    /// The fitted mixture; `None` when the fit hit a range error (`flags` has the range bit).
    /// Its `p` are in ngmix's units for the variant (V1: fractions of [`EmResult::counts`];
    /// V2: image flux units); see [`EmResult::gmix_flux_units`].
    pub gmix: Option<GMix>,
    /// ngmix flags (the variant's bit values); 0 on success.
    pub flags: u32,
    /// Number of iterations run.
    pub numiter: usize,
    /// The last convergence statistic (V1: `|ΔT/T|`; V2: `|ΔL/L|`); NaN if never computed.
    pub fdiff: f64,
    /// Sky level per pixel, in the units of the (shifted) image: V2 the sky used (ngmix's
    /// `res['sky']`); V1 the final fitted sky.
    pub sky: f64,
    /// Sum of the (shifted) image that was fitted.
    pub counts: f64,
    /// Number of guesses tried ([`fit_em_ntry`]); 1 otherwise.
    pub ntry: usize,
    /// Which variant produced this result.
    pub variant: EmVariant,
}

impl EmResult {
    /// The fitted mixture with `p` in image flux units (V1 amplitudes are multiplied by
    /// `counts`; V2 is returned as is).
    pub fn gmix_flux_units(&self) -> Option<GMix> {
        let gm = self.gmix.as_ref()?;
        match self.variant {
            EmVariant::V2 => Some(gm.clone()),
            EmVariant::V1 => Some(GMix::from_gaussians(
                gm.gaussians().iter().map(|g| g.with_p(g.p * self.counts)).collect(),
            )),
        }
    }
}

/// ngmix `prep_image`: the image shifted so that its minimum is `0.001 (max - min)`, and the sky
/// that ngmix associates with it (V1: `0.001 (max - min)`; V2: the shift, `0.001 (max - min) -
/// min`). Both variants apply the same shift.
pub fn prep_image(image: &[f64], variant: EmVariant) -> (Vec<f64>, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in image {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    let desired = 0.001 * (hi - lo);
    let shift = desired - lo;
    let out = image.iter().map(|&x| x + shift).collect();
    let sky = match variant {
        EmVariant::V1 => desired,
        EmVariant::V2 => shift,
    };
    (out, sky)
}

/// One Gaussian in the form the E step uses.
#[derive(Debug, Clone, Copy, Default)]
struct Comp {
    row: f64,
    col: f64,
    dcc: f64,
    drr: f64,
    drc: f64,
    pnorm: f64,
    /// `log(p) - 0.5 log(det)` (V2 likelihood statistic).
    lc: f64,
}

impl Comp {
    fn new(g: &Gauss2D) -> Self {
        Self {
            row: g.row,
            col: g.col,
            dcc: g.dcc,
            drr: g.drr,
            drc: g.drc,
            pnorm: g.pnorm,
            lc: g.p.ln() - 0.5 * g.det.ln(),
        }
    }
}

/// The exponential of a variant, and whether the likelihood statistic is accumulated.
trait EmKernel: Copy {
    const LOGL: bool;
    fn exp(self, x: f64) -> f64;
}

/// V1: accurate exp.
#[derive(Clone, Copy)]
struct KernV1;

impl EmKernel for KernV1 {
    const LOGL: bool = false;
    #[inline(always)]
    fn exp(self, x: f64) -> f64 {
        exp_poly(x)
    }
}

/// V2: ngmix 2.4.2 `exp5_smooth` with its table of `e^{-i}`.
#[derive(Clone, Copy)]
struct KernV2<'a>(&'a [f64; 16]);

const EXP5_C: [f64; 6] = [
    1.0000011318561302,
    0.999993601071577,
    0.49992478810274166,
    0.16674612720799442,
    0.042330947141114836,
    0.008197933236258961,
];

fn exp_neg_int_table() -> &'static [f64; 16] {
    use std::sync::OnceLock;
    static T: OnceLock<[f64; 16]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|i| (-(i as f64)).exp()))
}

impl EmKernel for KernV2<'_> {
    const LOGL: bool = true;
    /// Same arithmetic as [`crate::gmix::fastexp::exp5_smooth`], for `x` in `[-12.5, 0]`.
    #[inline(always)]
    fn exp(self, x: f64) -> f64 {
        let i = (x - 0.5) as i32;
        let f = x - i as f64;
        let c = &EXP5_C;
        let p = c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * c[5]))));
        self.0[(i.unsigned_abs() as usize) & 15] * p
    }
}

/// Lanes of the manual reductions (one AVX2 register of f64).
const L: usize = 4;

/// Pixel buffers and per-iteration scratch of an EM fit.
#[derive(Debug, Clone)]
struct Pixels {
    v: Vec<f64>,
    u: Vec<f64>,
    /// V1: image / counts; V2: image.
    d: Vec<f64>,
    /// Gaussian values, `ngauss × npix`.
    g: Vec<f64>,
    gsum: Vec<f64>,
    /// Responsibility factor `d / gtot`.
    f: Vec<f64>,
    /// V2 likelihood numerator per pixel.
    logl: Vec<f64>,
}

/// What one E step returns besides the per-Gaussian sums.
struct EStep {
    skysum: f64,
    elogl: f64,
    gtot_zero: bool,
}

/// Per Gaussian: `[pnew, vsum, usum, v2sum, uvsum, u2sum]`.
type Sums = [f64; 6];

#[inline(always)]
fn lane_sum(a: &[f64; L]) -> f64 {
    (a[0] + a[1]) + (a[2] + a[3])
}

/// The E step: Gaussian values, responsibilities and weighted sums.
#[inline(always)]
fn estep<const N: usize, K: EmKernel>(
    k: K,
    comps: &[Comp; N],
    sky: f64,
    area: f64,
    px: &mut Pixels,
    sums: &mut [Sums; N],
) -> EStep {
    let np = px.v.len();
    let v = &px.v[..np];
    let u = &px.u[..np];
    let d = &px.d[..np];
    let gsum = &mut px.gsum[..np];
    let logl = &mut px.logl[..np];
    let f = &mut px.f[..np];
    gsum.fill(0.0);
    if K::LOGL {
        logl.fill(0.0);
    }
    // pass 1: values (element-wise over pixels, vectorises)
    for (c, g) in comps.iter().zip(px.g.chunks_exact_mut(np)) {
        let g = &mut g[..np];
        for i in 0..np {
            let vd = v[i] - c.row;
            let ud = u[i] - c.col;
            let v2 = vd * vd;
            let u2 = ud * ud;
            let uv = ud * vd;
            let chi2 = c.dcc * v2 + c.drr * u2 - 2.0 * c.drc * uv;
            let x = (-0.5 * chi2).clamp(-12.5, 0.0);
            let e = k.exp(x);
            let inside = (chi2 < 25.0) & (chi2 >= 0.0);
            let val = if inside { c.pnorm * e * area } else { 0.0 };
            g[i] = val;
            gsum[i] += val;
            if K::LOGL {
                logl[i] += val * (c.lc - 0.5 * chi2);
            }
        }
    }
    // pass 2: responsibilities, sky and likelihood sums
    let mut skys = [0.0; L];
    let mut els = [0.0; L];
    let mut zero = false;
    let nb = np / L * L;
    let mut pix2 = |i: usize, l: usize, skys: &mut [f64; L], els: &mut [f64; L], zero: &mut bool| {
        let gs = gsum[i];
        let gtot = gs + sky;
        *zero |= gtot == 0.0;
        if K::LOGL {
            els[l] += if gs == 0.0 { 0.0 } else { logl[i] * (1.0 / gs) };
        }
        skys[l] += sky * d[i] / gtot;
        f[i] = d[i] / gtot;
    };
    for i0 in (0..nb).step_by(L) {
        for l in 0..L {
            pix2(i0 + l, l, &mut skys, &mut els, &mut zero);
        }
    }
    for i in nb..np {
        pix2(i, 0, &mut skys, &mut els, &mut zero);
    }
    // pass 3: weighted sums per Gaussian
    let f = &px.f[..np];
    for ((c, g), s) in comps.iter().zip(px.g.chunks_exact(np)).zip(sums.iter_mut()) {
        let g = &g[..np];
        let mut acc = [[0.0; L]; 6];
        let pix3 = |i: usize, l: usize, acc: &mut [[f64; L]; 6]| {
            let gi = g[i];
            let fi = f[i];
            let vd = v[i] - c.row;
            let ud = u[i] - c.col;
            acc[0][l] += gi * fi;
            acc[1][l] += (v[i] * gi) * fi;
            acc[2][l] += (u[i] * gi) * fi;
            acc[3][l] += (vd * vd * gi) * fi;
            acc[4][l] += (ud * vd * gi) * fi;
            acc[5][l] += (ud * ud * gi) * fi;
        };
        for i0 in (0..nb).step_by(L) {
            for l in 0..L {
                pix3(i0 + l, l, &mut acc);
            }
        }
        for i in nb..np {
            pix3(i, 0, &mut acc);
        }
        for (sj, aj) in s.iter_mut().zip(acc.iter()) {
            *sj = lane_sum(aj);
        }
    }
    EStep {
        skysum: lane_sum(&skys),
        elogl: lane_sum(&els),
        gtot_zero: zero,
    }
}

/// Internal outcome of the iteration loop.
struct Outcome {
    gauss: Vec<Gauss2D>,
    range_error: bool,
    numiter: usize,
    fdiff: f64,
    /// V1: final `nsky` (normalised, per unit sky area); V2: sky per pixel.
    sky: f64,
}

/// Parameters of the loop that do not change.
#[derive(Clone, Copy)]
struct LoopPars {
    maxiter: usize,
    miniter: usize,
    tol: f64,
    vary_sky: bool,
    /// V1: start `nsky`; V2: sky.
    sky0: f64,
    /// Factor on each Gaussian value: 1 (V1) or the pixel area (V2).
    area: f64,
    /// V1: total sky area `npix · scale²`.
    total_area: f64,
}

/// M step of V1: plain ratios of the sums.
#[inline]
fn mstep_v1(sums: &Sums) -> GResult<Gauss2D> {
    let p = sums[0];
    if p == 0.0 {
        return Err(GMixError::Range("EM: division by zero (p = 0)"));
    }
    let pinv = 1.0 / p;
    Gauss2D::new(p, sums[1] * pinv, sums[2] * pinv, sums[3] * pinv, sums[4] * pinv, sums[5] * pinv)
}

/// M step of V2: ratios, negative variances clamped, low determinants rounded.
#[inline]
fn mstep_v2(sums: &Sums) -> GResult<Gauss2D> {
    const MINVAL: f64 = 1.0e-4;
    let p = sums[0];
    if p == 0.0 {
        return Err(GMixError::Range("EM: division by zero (p = 0)"));
    }
    let pinv = 1.0 / p;
    let v = sums[1] * pinv;
    let u = sums[2] * pinv;
    let (mut irr, mut irc, mut icc) = (sums[3] * pinv, sums[4] * pinv, sums[5] * pinv);
    if irr < 0.0 || icc < 0.0 {
        (irr, irc, icc) = (MINVAL, 0.0, MINVAL);
    }
    let det = irr * icc - irc * irc;
    if det < LOW_DETVAL {
        let t = irr + icc;
        irr = t / 2.0;
        icc = t / 2.0;
        irc = 0.0;
    }
    Gauss2D::new(p, v, u, irr, irc, icc)
}

/// The EM iterations for `N` Gaussians.
#[inline(always)]
fn run_loop<const N: usize, K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    let mut gauss: [Gauss2D; N] = std::array::from_fn(|i| guess[i]);
    let mut sums = [[0.0; 6]; N];
    let mut sky = lp.sky0;
    let mut fdiff = f64::NAN;
    let mut numiter = 0;
    let (mut t_last, mut e1_last, mut e2_last) = (-9999.0, -9999.0, -9999.0);
    let mut elogl_last = -9999.9e9;
    let fail = |gauss: &[Gauss2D; N], numiter, fdiff, sky| Outcome {
        gauss: gauss.to_vec(),
        range_error: true,
        numiter,
        fdiff,
        sky,
    };
    for i in 0..lp.maxiter {
        let comps: [Comp; N] = std::array::from_fn(|j| Comp::new(&gauss[j]));
        let es = estep::<N, K>(k, &comps, sky, lp.area, px, &mut sums);
        if es.gtot_zero {
            return fail(&gauss, i + 1, fdiff, sky);
        }
        numiter = i + 1;
        for j in 0..N {
            let res = if K::LOGL {
                mstep_v2(&sums[j])
            } else {
                mstep_v1(&sums[j])
            };
            match res {
                Ok(g) => gauss[j] = g,
                Err(_) => return fail(&gauss, numiter, fdiff, sky),
            }
        }
        if K::LOGL {
            if lp.vary_sky {
                sky = es.skysum / px.v.len() as f64;
            }
            if numiter >= lp.miniter {
                if es.elogl == 0.0 {
                    return fail(&gauss, numiter, fdiff, sky);
                }
                fdiff = ((es.elogl - elogl_last) / es.elogl).abs();
                if fdiff < lp.tol {
                    break;
                }
            }
            elogl_last = es.elogl;
        } else {
            sky = es.skysum / lp.total_area;
            let gm = GMix::from_gaussians(gauss.to_vec());
            let (e1, e2, t) = match gm.e1e2t() {
                Ok(x) => x,
                Err(_) => return fail(&gauss, numiter, fdiff, sky),
            };
            fdiff = ((t - t_last) / t).abs();
            if fdiff < lp.tol && (e1 - e1_last).abs() < lp.tol && (e2 - e2_last).abs() < lp.tol {
                break;
            }
            (t_last, e1_last, e2_last) = (t, e1, e2);
        }
    }
    Outcome {
        gauss: gauss.to_vec(),
        range_error: false,
        numiter,
        fdiff,
        sky,
    }
}

/// `run_loop` compiled for the baseline target.
fn run_loop_base<const N: usize, K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    run_loop::<N, K>(k, guess, lp, px)
}

/// `run_loop` compiled with AVX2 and FMA enabled (no explicit FMA is used, so the arithmetic,
/// hence the result, is the same as [`run_loop_base`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_loop_avx2<const N: usize, K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    run_loop::<N, K>(k, guess, lp, px)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn dispatch_isa<const N: usize, K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
    simd: bool,
) -> Outcome {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when the CPU reports AVX2 and FMA (`has_avx2`).
        return unsafe { run_loop_avx2::<N, K>(k, guess, lp, px) };
    }
    let _ = simd;
    run_loop_base::<N, K>(k, guess, lp, px)
}

fn dispatch_n<K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
    simd: bool,
) -> Outcome {
    match guess.len() {
        1 => dispatch_isa::<1, K>(k, guess, lp, px, simd),
        2 => dispatch_isa::<2, K>(k, guess, lp, px, simd),
        3 => dispatch_isa::<3, K>(k, guess, lp, px, simd),
        4 => dispatch_isa::<4, K>(k, guess, lp, px, simd),
        5 => dispatch_isa::<5, K>(k, guess, lp, px, simd),
        _ => dispatch_isa::<6, K>(k, guess, lp, px, simd),
    }
}

/// An image prepared for EM fits (ngmix `GMixEM(obs)` / `EMFitter` with its observation):
/// the sky shift, pixel coordinates and scratch are computed once, so several guesses
/// ([`fit_em_ntry`]) reuse them.
#[derive(Debug, Clone)]
pub struct EmFitter {
    cfg: EmConfig,
    px: Pixels,
    /// Sky per pixel in image units (V1: the start value).
    sky_image: f64,
    counts: f64,
    area: f64,
    simd: bool,
}

impl EmFitter {
    /// Prepare `image` (`nrow × ncol`, row-major) with its Jacobian.
    ///
    /// # Errors
    /// [`GMixError::Fatal`] if `image.len() != nrow * ncol` or the image is empty.
    pub fn new(image: &[f64], nrow: usize, ncol: usize, jac: &Jacobian, cfg: &EmConfig) -> GResult<Self> {
        if nrow == 0 || ncol == 0 || image.len() != nrow * ncol {
            return Err(GMixError::Fatal("EM: image size does not match nrow x ncol"));
        }
        let (im, sky_image) = match cfg.sky {
            Some(s) => (image.to_vec(), s),
            None => prep_image(image, cfg.variant),
        };
        let np = im.len();
        let mut v = Vec::with_capacity(np);
        let mut u = Vec::with_capacity(np);
        for r in 0..nrow {
            for c in 0..ncol {
                let (vv, uu) = jac.vu(r as f64, c as f64);
                v.push(vv);
                u.push(uu);
            }
        }
        let counts: f64 = im.iter().sum();
        let d = match cfg.variant {
            EmVariant::V1 => im.iter().map(|&x| x / counts).collect(),
            EmVariant::V2 => im,
        };
        Ok(Self {
            cfg: *cfg,
            px: Pixels {
                v,
                u,
                d,
                g: Vec::new(),
                gsum: vec![0.0; np],
                f: vec![0.0; np],
                logl: vec![0.0; np],
            },
            sky_image,
            counts,
            area: jac.area(),
            simd: has_avx2(),
        })
    }

    /// Run EM from `guess` (ngmix `go`).
    ///
    /// Numerical failures are reported in [`EmResult::flags`].
    ///
    /// # Errors
    /// [`GMixError::Fatal`] for an empty guess or more than [`EM_MAX_NGAUSS`] Gaussians.
    pub fn go(&mut self, guess: &GMix) -> GResult<EmResult> {
        let n = guess.len();
        if n == 0 || n > EM_MAX_NGAUSS {
            return Err(GMixError::Fatal("EM: the guess must have 1 to 6 Gaussians"));
        }
        let np = self.px.v.len();
        self.px.g.resize(n * np, 0.0);
        let variant = self.cfg.variant;
        let npix = np as f64;
        let out = match variant {
            EmVariant::V1 => {
                // ngmix v1.3.5 em_run: nsky = sky_guess / counts, sky area npix * scale^2
                let lp = LoopPars {
                    maxiter: self.cfg.maxiter,
                    miniter: 0,
                    tol: self.cfg.tol,
                    vary_sky: true,
                    sky0: self.sky_image / self.counts,
                    area: 1.0,
                    total_area: npix * self.area,
                };
                dispatch_n(KernV1, guess.gaussians(), lp, &mut self.px, self.simd)
            }
            EmVariant::V2 => {
                let lp = LoopPars {
                    maxiter: self.cfg.maxiter,
                    miniter: self.cfg.miniter,
                    tol: self.cfg.tol,
                    vary_sky: self.cfg.vary_sky,
                    sky0: self.sky_image,
                    area: self.area,
                    total_area: npix * self.area,
                };
                dispatch_n(KernV2(exp_neg_int_table()), guess.gaussians(), lp, &mut self.px, self.simd)
            }
        };
        let sky = match variant {
            // back to image units per pixel: nsky * pixel area * counts
            EmVariant::V1 => out.sky * self.area * self.counts,
            EmVariant::V2 => out.sky,
        };
        let (gmix, flags) = if out.range_error {
            (None, variant.range_error_flag())
        } else {
            let flags = if out.numiter >= self.cfg.maxiter {
                variant.maxiter_flag()
            } else {
                0
            };
            (Some(GMix::from_gaussians(out.gauss)), flags)
        };
        Ok(EmResult {
            gmix,
            flags,
            numiter: out.numiter,
            fdiff: out.fdiff,
            sky,
            counts: self.counts,
            ntry: 1,
            variant,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EmConfig {
        &self.cfg
    }

    /// The sky used at the start, per pixel in image units (after `prep_image` when
    /// `cfg.sky` is `None`).
    pub fn sky_start(&self) -> f64 {
        self.sky_image
    }

    /// Force the portable code path (for testing that the SIMD path gives the same result).
    #[doc(hidden)]
    pub fn set_simd(&mut self, on: bool) {
        self.simd = on && has_avx2();
    }
}

/// Fit `image` (`nrow × ncol`, row-major) with a Gaussian mixture by EM, starting from `guess`
/// (ngmix `run_em` / `fit_em`).
///
/// # Errors
/// [`GMixError::Fatal`] for inconsistent sizes, an empty guess or more than
/// [`EM_MAX_NGAUSS`] Gaussians; numerical failures are flags in the result.
pub fn fit_em(
    image: &[f64],
    nrow: usize,
    ncol: usize,
    jac: &Jacobian,
    guess: &GMix,
    cfg: &EmConfig,
) -> GResult<EmResult> {
    EmFitter::new(image, nrow, ncol, jac, cfg)?.go(guess)
}

/// Uniform deviate in `[0, 1)` with 53 random bits.
#[inline]
fn uniform<R: rand_core::Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform deviate in `[lo, hi)` (numpy `uniform(low, high)`).
#[inline]
fn urange<R: rand_core::Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform(rng)
}

/// ngmix v1.3.5 bootstrap EM guess fractions of flux for 2 Gaussians.
const EM2_PGUESS: [f64; 2] = [0.596510042804182, 0.4034898268889178];
/// ... and sizes relative to `Tguess / 2`.
const EM2_FGUESS: [f64; 2] = [0.5793612389470884, 1.621860687127999];
const EM3_PGUESS: [f64; 3] = [0.596510042804182, 0.4034898268889178, 1.303069003078001e-07];
const EM3_FGUESS: [f64; 3] = [0.5793612389470884, 1.621860687127999, 7.019347162356363];
const EM4_PGUESS: [f64; 4] = [0.596510042804182, 0.4034898268889178, 1.303069003078001e-07, 1.0e-8];
const EM4_FGUESS: [f64; 4] = [0.5793612389470884, 1.621860687127999, 7.019347162356363, 16.0];

/// Random starting mixture of ngmix v1.3.5's `EMRunner` (`_get_em_guess_{1,2,3,4}gauss`), with
/// the amplitudes multiplied by `flux` (ngmix: `flux = 1`). Sizes scale with
/// `sigma² = tguess / 2`; deviates are uniform, drawn in ngmix's order (the stream itself
/// differs from numpy's).
///
/// * 1: `p = 1 ± 0.1`, centre `±0.1`, `irr, icc = sigma² (1 ± 0.1)`, `irc = ±0.2 sigma²`;
/// * 2: fixed `p`, centre `±0.1`, `irr, icc = f sigma² (1 ± 0.1)`, `irc = 0`;
/// * 3, 4: `p (1 ± 0.1)`, centre `±0.1`, `irr, icc = f sigma² (1 ± 0.1)`, `irc = ±0.01`; the 4th
///   Gaussian reuses the 3rd's `p` and `f`, as ngmix does.
///
/// # Errors
/// [`GMixError::Range`] for `ngauss` outside 1..=4 or an invalid size (`tguess <= 0`).
pub fn em_guess<R: rand_core::Rng + ?Sized>(ngauss: usize, tguess: f64, flux: f64, rng: &mut R) -> GResult<GMix> {
    let s2 = tguess / 2.0;
    let mut pars: Vec<f64> = Vec::with_capacity(6 * ngauss);
    match ngauss {
        1 => {
            pars.push(flux * (1.0 + urange(rng, -0.1, 0.1)));
            pars.push(urange(rng, -0.1, 0.1));
            pars.push(urange(rng, -0.1, 0.1));
            pars.push(s2 * (1.0 + urange(rng, -0.1, 0.1)));
            pars.push(urange(rng, -0.2 * s2, 0.2 * s2));
            pars.push(s2 * (1.0 + urange(rng, -0.1, 0.1)));
        }
        2 => {
            for j in 0..2 {
                pars.push(flux * EM2_PGUESS[j]);
                pars.push(urange(rng, -0.1, 0.1));
                pars.push(urange(rng, -0.1, 0.1));
                pars.push(EM2_FGUESS[j] * s2 * (1.0 + urange(rng, -0.1, 0.1)));
                pars.push(0.0);
                pars.push(EM2_FGUESS[j] * s2 * (1.0 + urange(rng, -0.1, 0.1)));
            }
        }
        3 | 4 => {
            for j in 0..ngauss {
                // ngmix v1.3.5 uses index 2 for the 4th Gaussian too
                let (pg, fg) = if ngauss == 3 {
                    (EM3_PGUESS[j], EM3_FGUESS[j])
                } else {
                    let jj = j.min(2);
                    (EM4_PGUESS[jj], EM4_FGUESS[jj])
                };
                pars.push(flux * pg * (1.0 + urange(rng, -0.1, 0.1)));
                pars.push(urange(rng, -0.1, 0.1));
                pars.push(urange(rng, -0.1, 0.1));
                pars.push(fg * s2 * (1.0 + urange(rng, -0.1, 0.1)));
                pars.push(urange(rng, -0.01, 0.01));
                pars.push(fg * s2 * (1.0 + urange(rng, -0.1, 0.1)));
            }
        }
        _ => return Err(GMixError::Range("EM guess: ngauss must be 1..=4")),
    }
    GMix::from_full_pars(&pars)
}

/// ngmix v1.3.5 `EMRunner.go(ntry)`: up to `ntry` fits (at least one), each from a new
/// [`em_guess`] with unit flux, stopping at the first with `flags == 0`. The image is prepared
/// once. The returned result is the last one tried, with [`EmResult::ntry`] set.
///
/// # Errors
/// As [`fit_em`] and [`em_guess`].
pub fn fit_em_ntry<R: rand_core::Rng + ?Sized>(
    image: &[f64],
    nrow: usize,
    ncol: usize,
    jac: &Jacobian,
    ngauss: usize,
    tguess: f64,
    ntry: usize,
    cfg: &EmConfig,
    rng: &mut R,
) -> GResult<EmResult> {
    let mut fitter = EmFitter::new(image, nrow, ncol, jac, cfg)?;
    let ntry = ntry.max(1);
    let mut last = None;
    for itry in 0..ntry {
        let guess = em_guess(ngauss, tguess, 1.0, rng)?;
        let mut res = fitter.go(&guess)?;
        res.ntry = itry + 1;
        let ok = res.flags == 0;
        last = Some(res);
        if ok {
            break;
        }
    }
    last.ok_or(GMixError::Fatal("EM: no attempt"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gmix::fastexp::exp5_smooth;

    #[test]
    fn kernel_exp5_matches_fastexp() {
        let k = KernV2(exp_neg_int_table());
        for j in 0..=125_000 {
            let x = -12.5 * j as f64 / 125_000.0;
            assert_eq!(k.exp(x).to_bits(), exp5_smooth(x).to_bits(), "x = {x}");
        }
    }

    #[test]
    fn prep_image_rule() {
        let im = [-2.0, 0.0, 8.0];
        let (o1, s1) = prep_image(&im, EmVariant::V1);
        let (o2, s2) = prep_image(&im, EmVariant::V2);
        assert_eq!(o1, o2);
        assert!((o1[0] - 0.01).abs() < 1e-15);
        assert!((s1 - 0.01).abs() < 1e-15);
        assert!((s2 - 2.01).abs() < 1e-15);
    }
}
