//! Expectation–maximisation fit of a Gaussian mixture to an image (ngmix `em`), the PSF fitter
//! of ngmixer (`psf_pars.model: emN`).
//!
//! Two flavours of ngmix are implemented, selected by [`EmVariant`]:
//!
//! | | [`EmVariant::V1`] (ngmix v1.3.5, default: what ngmixer ran) | [`EmVariant::V2`] (ngmix 2.4.2, `ref/ngmix/data/em.json`) |
//! |---|---|---|
//! | sky | re-fitted every iteration, starting from the prep sky `0.001 (max - min)` | fixed at the prep shift `0.001 (max - min) - min` (or fitted with `vary_sky`) |
//! | exp | ngmix's `expd` (herumi fmath, < 1e-15 relative: an accurate exp), hard cut `0 <= chi2 < 25` | `exp5_smooth`, hard cut `0 <= chi2 < 25` (no apodization) |
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
//! The per-iteration loop is allocation-free: pixel coordinates are computed once and the E step
//! runs over structure-of-arrays pixel buffers in three passes (Gaussian values; responsibilities;
//! weighted sums, reduced in 4 interleaved lanes). With AVX2 and FMA (detected once per fitter)
//! the passes run as explicit AVX2 kernels; otherwise as portable Rust. Both use the same
//! operations, including the same fused multiply-adds (`f64::mul_add`), so their results are
//! bit-identical on every machine; the portable path is slow on CPUs without FMA, where
//! `mul_add` is emulated. The fused multiply-adds and the lane order of the sums mean results
//! differ from ngmix's in the last bits (em.json: same iteration counts, parameters within 1e-8).

use crate::error::{GMixError, GResult};
use crate::gmix::gauss::LOW_DETVAL;

mod fast;
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
                gm.gaussians()
                    .iter()
                    .map(|g| g.with_p(g.p * self.counts))
                    .collect(),
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
    /// The exp's table, used by the explicit-SIMD pass 1.
    fn table(self) -> ExpTable;
}

/// The table behind a kernel's exp.
#[derive(Clone, Copy)]
enum ExpTable {
    /// ngmix v1.3.5 `expd` (fmath): mantissas of `2^(i/2048)`.
    Fmath(&'static [u64; 2048]),
    /// ngmix 2.4.2 `exp5_smooth`: `e^{-i}`.
    Exp5(&'static [f64; 16]),
}

/// V1: ngmix v1.3.5's exp, `fastexp.expd` (herumi fmath: 11-bit table and a cubic; relative
/// error < 1e-15, i.e. an accurate exp): [`crate::gmix::fastexp::expd_fmath`] with fused
/// multiply-adds.
#[derive(Clone, Copy)]
struct KernV1(&'static [u64; 2048]);

/// Constants of fmath `expd`.
mod fmath {
    /// `2048 / ln 2`.
    pub(super) const A: f64 = 2954.639443740597;
    /// `ln 2 / 2048`.
    pub(super) const RA: f64 = 0.0003384507717577858;
    /// `3 · 2^51`.
    pub(super) const B: f64 = (3u64 << 51) as f64;
    pub(super) const C1: f64 = 1.0;
    pub(super) const C2: f64 = 0.16666666685227835064;
    pub(super) const C3: f64 = 3.0000000027955394;
    /// Exponent bias adjustment added before extracting `2^n`.
    pub(super) const ADJ: u64 = 2095104;
}

/// The fmath table: the 52 mantissa bits of `2^(i/2048)`, `i = 0..2048`.
fn fmath_table() -> &'static [u64; 2048] {
    use std::sync::OnceLock;
    static T: OnceLock<[u64; 2048]> = OnceLock::new();
    T.get_or_init(|| {
        std::array::from_fn(|i| (i as f64 / 2048.0).exp2().to_bits() & ((1u64 << 52) - 1))
    })
}

impl EmKernel for KernV1 {
    const LOGL: bool = false;
    #[inline(always)]
    fn exp(self, x: f64) -> f64 {
        use fmath::*;
        let d = x.mul_add(A, B);
        let i = d.to_bits();
        let iax = self.0[(i & 2047) as usize];
        let t = (d - B).mul_add(RA, -x);
        let u = (i.wrapping_add(ADJ) >> 11) << 52;
        let y = ((C3 - t) * (t * t)).mul_add(C2, -t) + C1;
        f64::from_bits(u | iax) * y
    }
    #[inline(always)]
    fn table(self) -> ExpTable {
        ExpTable::Fmath(self.0)
    }
}

/// V2: ngmix 2.4.2 `exp5_smooth` with its table of `e^{-i}`.
#[derive(Clone, Copy)]
struct KernV2(&'static [f64; 16]);

/// ngmix 2.4.2 `exp5_smooth` polynomial coefficients (constant first).
const EXP5_C: [f64; 6] = [
    1.0000011318561302,
    0.999993601071577,
    0.49992478810274166,
    0.16674612720799442,
    0.042330947141114836,
    0.008197933236258961,
];

/// `1.5 · 2^52`: adding it to a small integer-valued float puts the integer in the low mantissa bits.
const MAGIC: f64 = 6755399441055744.0;

fn exp_neg_int_table() -> &'static [f64; 16] {
    use std::sync::OnceLock;
    static T: OnceLock<[f64; 16]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|i| (-(i as f64)).exp()))
}

impl EmKernel for KernV2 {
    const LOGL: bool = true;
    #[inline(always)]
    fn table(self) -> ExpTable {
        ExpTable::Exp5(self.0)
    }
    /// [`crate::gmix::fastexp::exp5_smooth`] for `x` in `[-12.5, 0]` with a fused Horner
    /// polynomial (within 2 ulp), written without float-to-int conversions so that it
    /// vectorises (`i = trunc(x - 0.5)` is C truncation; the table index `-i` is read from the
    /// mantissa bits of `-i + 1.5·2^52`).
    #[inline(always)]
    fn exp(self, x: f64) -> f64 {
        let i = (x - 0.5).trunc();
        let f = x - i;
        let c = &EXP5_C;
        let p = f.mul_add(
            f.mul_add(
                f.mul_add(f.mul_add(f.mul_add(c[5], c[4]), c[3]), c[2]),
                c[1],
            ),
            c[0],
        );
        let idx = ((MAGIC - i).to_bits() & 15) as usize;
        self.0[idx] * p
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

/// E step, pass 1 for one Gaussian: its value at every pixel, accumulated into `gsum` (and the
/// likelihood numerator into `logl`). Element-wise over pixels, so it vectorises; the slices are
/// separate arguments so the compiler knows they do not alias.
#[inline(always)]
fn estep_values<K: EmKernel>(
    k: K,
    c: &Comp,
    area: f64,
    first: bool,
    with_logl: bool,
    v: &[f64],
    u: &[f64],
    g: &mut [f64],
    gsum: &mut [f64],
    logl: &mut [f64],
) {
    let np = v.len();
    let (u, g, gsum, logl) = (&u[..np], &mut g[..np], &mut gsum[..np], &mut logl[..np]);
    for i in 0..np {
        let vd = v[i] - c.row;
        let ud = u[i] - c.col;
        let v2 = vd * vd;
        let u2 = ud * ud;
        let uv = ud * vd;
        let chi2 = (-2.0 * c.drc).mul_add(uv, c.dcc.mul_add(v2, c.drr * u2));
        let x = (-0.5 * chi2).clamp(-12.5, 0.0);
        let e = k.exp(x);
        let inside = (0.0..25.0).contains(&chi2);
        let val = if inside { c.pnorm * e * area } else { 0.0 };
        g[i] = val;
        // ngmix starts the sums at 0.0: 0.0 + val == val
        let (g0, l0) = if first {
            (0.0, 0.0)
        } else {
            (gsum[i], logl[i])
        };
        gsum[i] = g0 + val;
        if K::LOGL && with_logl {
            logl[i] = val.mul_add((-0.5f64).mul_add(chi2, c.lc), l0);
        }
    }
}

/// E step, pass 2: responsibility factors `f = d / gtot`, the sky and likelihood sums.
/// Reductions run in `L` interleaved lanes over `chunks_exact` so they vectorise.
#[inline(always)]
fn estep_factors(
    with_logl: bool,
    sky: f64,
    d: &[f64],
    gsum: &[f64],
    logl: &[f64],
    f: &mut [f64],
) -> EStep {
    let np = d.len();
    let (gsum, logl, f) = (&gsum[..np], &logl[..np], &mut f[..np]);
    let mut skys = [0.0; L];
    let mut els = [0.0; L];
    let mut zero = [false; L];
    #[inline(always)]
    fn lane(
        with_logl: bool,
        sky: f64,
        (d, gs, lg): (f64, f64, f64),
        f: &mut f64,
        skys: &mut f64,
        els: &mut f64,
        zero: &mut bool,
    ) {
        let gtot = gs + sky;
        *zero |= gtot == 0.0;
        if with_logl {
            *els += if gs == 0.0 { 0.0 } else { lg * (1.0 / gs) };
        }
        let fi = d * (1.0 / gtot);
        *skys = sky.mul_add(fi, *skys);
        *f = fi;
    }
    let mut fc = f.chunks_exact_mut(L);
    let mut dc = d.chunks_exact(L);
    let mut gc = gsum.chunks_exact(L);
    let mut lc = logl.chunks_exact(L);
    for (((fb, db), gb), lb) in (&mut fc).zip(&mut dc).zip(&mut gc).zip(&mut lc) {
        for l in 0..L {
            lane(
                with_logl,
                sky,
                (db[l], gb[l], lb[l]),
                &mut fb[l],
                &mut skys[l],
                &mut els[l],
                &mut zero[l],
            );
        }
    }
    let (dr, gr, lr) = (dc.remainder(), gc.remainder(), lc.remainder());
    for (l, fr) in fc.into_remainder().iter_mut().enumerate() {
        lane(
            with_logl,
            sky,
            (dr[l], gr[l], lr[l]),
            fr,
            &mut skys[0],
            &mut els[0],
            &mut zero[0],
        );
    }
    EStep {
        skysum: lane_sum(&skys),
        elogl: lane_sum(&els),
        gtot_zero: zero.iter().any(|&z| z),
    }
}

/// E step, pass 3 for one Gaussian: `[Σ g f, Σ v g f, Σ u g f, Σ dv² g f, Σ du dv g f,
/// Σ du² g f]` with `dv, du` about the Gaussian's current centre (ngmix's M-step sums).
#[inline(always)]
fn estep_sums(c: &Comp, v: &[f64], u: &[f64], g: &[f64], f: &[f64]) -> Sums {
    let np = v.len();
    let (u, g, f) = (&u[..np], &g[..np], &f[..np]);
    let mut acc = [[0.0; L]; 6];
    let (mut vc, mut uc, mut gc, mut fc) = (
        v.chunks_exact(L),
        u.chunks_exact(L),
        g.chunks_exact(L),
        f.chunks_exact(L),
    );
    for (((vb, ub), gb), fb) in (&mut vc).zip(&mut uc).zip(&mut gc).zip(&mut fc) {
        for l in 0..L {
            sums_lane(c, (vb[l], ub[l], gb[l], fb[l]), &mut acc, l);
        }
    }
    let (vr, ur, gr, fr) = (
        vc.remainder(),
        uc.remainder(),
        gc.remainder(),
        fc.remainder(),
    );
    for i in 0..vr.len().min(ur.len()).min(gr.len()).min(fr.len()) {
        sums_lane(c, (vr[i], ur[i], gr[i], fr[i]), &mut acc, 0);
    }
    std::array::from_fn(|j| lane_sum(&acc[j]))
}

/// One pixel's contribution to the pass-3 sums, in lane `l`.
#[inline(always)]
fn sums_lane(c: &Comp, (v, u, g, f): (f64, f64, f64, f64), acc: &mut [[f64; L]; 6], l: usize) {
    let w = g * f;
    let vd = v - c.row;
    let ud = u - c.col;
    acc[0][l] += w;
    acc[1][l] = v.mul_add(w, acc[1][l]);
    acc[2][l] = u.mul_add(w, acc[2][l]);
    acc[3][l] = (vd * vd).mul_add(w, acc[3][l]);
    acc[4][l] = (ud * vd).mul_add(w, acc[4][l]);
    acc[5][l] = (ud * ud).mul_add(w, acc[5][l]);
}

/// The three E-step passes, implemented portably ([`Portable`]) and with AVX2 intrinsics
/// ([`Avx2`]); both give bit-identical results (same operations in the same order, same fused
/// multiply-adds, same lane assignment of the sums).
trait Isa: Copy {
    fn values<K: EmKernel>(
        self,
        k: K,
        c: &Comp,
        area: f64,
        first: bool,
        with_logl: bool,
        px: &mut Pixels,
        j: usize,
    );
    fn factors(self, with_logl: bool, sky: f64, px: &mut Pixels) -> EStep;
    fn sums(self, c: &Comp, px: &Pixels, j: usize) -> Sums;
}

/// Plain Rust (auto-vectorised where the compiler manages).
#[derive(Clone, Copy)]
struct Portable;

impl Isa for Portable {
    #[inline(always)]
    fn values<K: EmKernel>(
        self,
        k: K,
        c: &Comp,
        area: f64,
        first: bool,
        with_logl: bool,
        px: &mut Pixels,
        j: usize,
    ) {
        let np = px.v.len();
        let g = &mut px.g[j * np..(j + 1) * np];
        estep_values(
            k,
            c,
            area,
            first,
            with_logl,
            &px.v,
            &px.u,
            g,
            &mut px.gsum,
            &mut px.logl,
        );
    }
    #[inline(always)]
    fn factors(self, with_logl: bool, sky: f64, px: &mut Pixels) -> EStep {
        estep_factors(with_logl, sky, &px.d, &px.gsum, &px.logl, &mut px.f)
    }
    #[inline(always)]
    fn sums(self, c: &Comp, px: &Pixels, j: usize) -> Sums {
        let np = px.v.len();
        estep_sums(c, &px.v, &px.u, &px.g[j * np..(j + 1) * np], &px.f)
    }
}

/// AVX2 + FMA kernels; a value exists only when the CPU has both (see [`Avx2::detect`]).
#[derive(Debug, Clone, Copy)]
struct Avx2(());

impl Avx2 {
    fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Some(Avx2(()));
            }
        }
        None
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    #[inline(always)]
    fn values<K: EmKernel>(
        self,
        k: K,
        c: &Comp,
        area: f64,
        first: bool,
        with_logl: bool,
        px: &mut Pixels,
        j: usize,
    ) {
        let np = px.v.len();
        let g = &mut px.g[j * np..(j + 1) * np];
        match k.table() {
            // SAFETY: `self` proves the CPU has AVX2 and FMA.
            ExpTable::Exp5(t) => unsafe {
                avx2::values_v2(
                    t,
                    c,
                    area,
                    first,
                    with_logl,
                    &px.v,
                    &px.u,
                    g,
                    &mut px.gsum,
                    &mut px.logl,
                )
            },
            // SAFETY: as above.
            ExpTable::Fmath(t) => unsafe {
                avx2::values_v1(t, c, first, &px.v, &px.u, g, &mut px.gsum)
            },
        }
    }
    #[inline(always)]
    fn factors(self, with_logl: bool, sky: f64, px: &mut Pixels) -> EStep {
        // SAFETY: `self` proves the CPU has AVX2 and FMA.
        unsafe { avx2::factors(with_logl, sky, &px.d, &px.gsum, &px.logl, &mut px.f) }
    }
    #[inline(always)]
    fn sums(self, c: &Comp, px: &Pixels, j: usize) -> Sums {
        let np = px.v.len();
        // SAFETY: `self` proves the CPU has AVX2 and FMA.
        unsafe { avx2::sums(c, &px.v, &px.u, &px.g[j * np..(j + 1) * np], &px.f) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Isa for Avx2 {
    fn values<K: EmKernel>(
        self,
        k: K,
        c: &Comp,
        area: f64,
        first: bool,
        with_logl: bool,
        px: &mut Pixels,
        j: usize,
    ) {
        Portable.values(k, c, area, first, with_logl, px, j)
    }
    fn factors(self, with_logl: bool, sky: f64, px: &mut Pixels) -> EStep {
        Portable.factors(with_logl, sky, px)
    }
    fn sums(self, c: &Comp, px: &Pixels, j: usize) -> Sums {
        Portable.sums(c, px, j)
    }
}

/// AVX2 versions of the three passes (same arithmetic as the portable ones).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{lane_sum, Comp, EStep, Sums, EXP5_C, L, MAGIC};
    use std::arch::x86_64::*;

    #[inline(always)]
    fn load(x: &[f64]) -> __m256d {
        let x = &x[..4];
        // SAFETY: `x` has 4 elements (unaligned load is allowed); only inlined into the
        // `avx2,fma` kernels of this module, which run only after CPU detection.
        unsafe { _mm256_loadu_pd(x.as_ptr()) }
    }

    #[inline(always)]
    fn store(x: &mut [f64], a: __m256d) {
        let x = &mut x[..4];
        // SAFETY: as in `load`.
        unsafe { _mm256_storeu_pd(x.as_mut_ptr(), a) }
    }

    #[inline(always)]
    fn to_array(a: __m256d) -> [f64; 4] {
        let mut out = [0.0; 4];
        store(&mut out, a);
        out
    }

    /// `table[idx]` for 64-bit indices in `0..16`, the table held in four registers: a
    /// cross-lane dword permute picks entry `idx & 3` of each register, two blends on bits 2
    /// and 3 choose the register (cheaper than a gather).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn lookup16(tab: &[__m256d; 4], idx: __m256i) -> __m256d {
        let lo2 = _mm256_slli_epi64::<1>(_mm256_and_si256(idx, _mm256_set1_epi64x(3)));
        let pair = _mm256_or_si256(
            lo2,
            _mm256_slli_epi64::<32>(_mm256_or_si256(lo2, _mm256_set1_epi64x(1))),
        );
        let pick = |t: __m256d| {
            _mm256_castsi256_pd(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(t), pair))
        };
        let (t0, t1, t2, t3) = (pick(tab[0]), pick(tab[1]), pick(tab[2]), pick(tab[3]));
        // blendv selects on the sign bit: move bit 2 (bit 3) of the index there
        let b2 = _mm256_castsi256_pd(_mm256_slli_epi64::<61>(idx));
        let b3 = _mm256_castsi256_pd(_mm256_slli_epi64::<60>(idx));
        let r01 = _mm256_blendv_pd(t0, t1, b2);
        let r23 = _mm256_blendv_pd(t2, t3, b2);
        _mm256_blendv_pd(r01, r23, b3)
    }

    /// Pass 1 for V2 (`exp5_smooth` with its table), 4 pixels at a time.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn values_v2(
        table: &'static [f64; 16],
        c: &Comp,
        area: f64,
        first: bool,
        with_logl: bool,
        v: &[f64],
        u: &[f64],
        g: &mut [f64],
        gsum: &mut [f64],
        logl: &mut [f64],
    ) {
        let np = v.len();
        let (u, g, gsum, logl) = (&u[..np], &mut g[..np], &mut gsum[..np], &mut logl[..np]);
        let nb = np / 4 * 4;
        let (row, col) = (_mm256_set1_pd(c.row), _mm256_set1_pd(c.col));
        let (dcc, drr, drc2) = (
            _mm256_set1_pd(c.dcc),
            _mm256_set1_pd(c.drr),
            _mm256_set1_pd(2.0 * c.drc),
        );
        let (pnorm, varea, lc) = (
            _mm256_set1_pd(c.pnorm),
            _mm256_set1_pd(area),
            _mm256_set1_pd(c.lc),
        );
        let (half, mhalf) = (_mm256_set1_pd(0.5), _mm256_set1_pd(-0.5));
        let (lo, zero, c25) = (
            _mm256_set1_pd(-12.5),
            _mm256_setzero_pd(),
            _mm256_set1_pd(25.0),
        );
        let magic = _mm256_set1_pd(MAGIC);
        let mask15 = _mm256_set1_epi64x(15);
        let k: [__m256d; 6] = std::array::from_fn(|i| _mm256_set1_pd(EXP5_C[i]));
        let tab: [__m256d; 4] = std::array::from_fn(|q| load(&table[4 * q..]));
        let chunks = v[..nb]
            .chunks_exact(4)
            .zip(u[..nb].chunks_exact(4))
            .zip(g[..nb].chunks_exact_mut(4))
            .zip(gsum[..nb].chunks_exact_mut(4))
            .zip(logl[..nb].chunks_exact_mut(4));
        for ((((vb, ub), gb), sb), lb) in chunks {
            let vd = _mm256_sub_pd(load(vb), row);
            let ud = _mm256_sub_pd(load(ub), col);
            let v2 = _mm256_mul_pd(vd, vd);
            let u2 = _mm256_mul_pd(ud, ud);
            let uv = _mm256_mul_pd(ud, vd);
            let chi2 = _mm256_fnmadd_pd(drc2, uv, _mm256_fmadd_pd(dcc, v2, _mm256_mul_pd(drr, u2)));
            // clamp(-0.5 chi2, -12.5, 0)
            let x = _mm256_max_pd(_mm256_min_pd(_mm256_mul_pd(mhalf, chi2), zero), lo);
            let it = _mm256_round_pd::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm256_sub_pd(
                x, half,
            ));
            let f = _mm256_sub_pd(x, it);
            let mut p = k[5];
            p = _mm256_fmadd_pd(f, p, k[4]);
            p = _mm256_fmadd_pd(f, p, k[3]);
            p = _mm256_fmadd_pd(f, p, k[2]);
            p = _mm256_fmadd_pd(f, p, k[1]);
            p = _mm256_fmadd_pd(f, p, k[0]);
            let idx = _mm256_and_si256(_mm256_castpd_si256(_mm256_sub_pd(magic, it)), mask15);
            let e = _mm256_mul_pd(lookup16(&tab, idx), p);
            let inside = _mm256_and_pd(
                _mm256_cmp_pd::<_CMP_LT_OQ>(chi2, c25),
                _mm256_cmp_pd::<_CMP_GE_OQ>(chi2, zero),
            );
            let val = _mm256_and_pd(inside, _mm256_mul_pd(_mm256_mul_pd(pnorm, e), varea));
            store(gb, val);
            let g0 = if first { zero } else { load(sb) };
            store(sb, _mm256_add_pd(g0, val));
            if with_logl {
                let l0 = if first { zero } else { load(lb) };
                let lt = _mm256_fnmadd_pd(half, chi2, lc);
                store(lb, _mm256_fmadd_pd(val, lt, l0));
            }
        }
        if nb < np {
            super::estep_values(
                super::KernV2(table),
                c,
                area,
                first,
                with_logl,
                &v[nb..],
                &u[nb..],
                &mut g[nb..],
                &mut gsum[nb..],
                &mut logl[nb..],
            );
        }
    }

    /// Pass 1 for V1 (fmath `expd`, no pixel area, no likelihood), 4 pixels at a time.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn values_v1(
        table: &'static [u64; 2048],
        c: &Comp,
        first: bool,
        v: &[f64],
        u: &[f64],
        g: &mut [f64],
        gsum: &mut [f64],
    ) {
        use super::fmath::*;
        let np = v.len();
        let (u, g, gsum) = (&u[..np], &mut g[..np], &mut gsum[..np]);
        let nb = np / 4 * 4;
        let (row, col) = (_mm256_set1_pd(c.row), _mm256_set1_pd(c.col));
        let (dcc, drr, drc2) = (
            _mm256_set1_pd(c.dcc),
            _mm256_set1_pd(c.drr),
            _mm256_set1_pd(2.0 * c.drc),
        );
        let pnorm = _mm256_set1_pd(c.pnorm);
        let mhalf = _mm256_set1_pd(-0.5);
        let (lo, zero, c25) = (
            _mm256_set1_pd(-12.5),
            _mm256_setzero_pd(),
            _mm256_set1_pd(25.0),
        );
        let (a, b, ra) = (_mm256_set1_pd(A), _mm256_set1_pd(B), _mm256_set1_pd(RA));
        let (c1, c2, c3) = (_mm256_set1_pd(C1), _mm256_set1_pd(C2), _mm256_set1_pd(C3));
        let (mask, adj) = (_mm256_set1_epi64x(2047), _mm256_set1_epi64x(ADJ as i64));
        let chunks = v[..nb]
            .chunks_exact(4)
            .zip(u[..nb].chunks_exact(4))
            .zip(g[..nb].chunks_exact_mut(4))
            .zip(gsum[..nb].chunks_exact_mut(4));
        for (((vb, ub), gb), sb) in chunks {
            let vd = _mm256_sub_pd(load(vb), row);
            let ud = _mm256_sub_pd(load(ub), col);
            let v2 = _mm256_mul_pd(vd, vd);
            let u2 = _mm256_mul_pd(ud, ud);
            let uv = _mm256_mul_pd(ud, vd);
            let chi2 = _mm256_fnmadd_pd(drc2, uv, _mm256_fmadd_pd(dcc, v2, _mm256_mul_pd(drr, u2)));
            let x = _mm256_max_pd(_mm256_min_pd(_mm256_mul_pd(mhalf, chi2), zero), lo);
            // fmath expd
            let d = _mm256_fmadd_pd(x, a, b);
            let i = _mm256_castpd_si256(d);
            // SAFETY: indices are masked to 0..2048 and `table` has 2048 entries.
            let iax = unsafe {
                _mm256_i64gather_epi64::<8>(table.as_ptr() as *const i64, _mm256_and_si256(i, mask))
            };
            let t = _mm256_fmsub_pd(_mm256_sub_pd(d, b), ra, x);
            let uu = _mm256_slli_epi64::<52>(_mm256_srli_epi64::<11>(_mm256_add_epi64(i, adj)));
            let y = _mm256_add_pd(
                _mm256_fmsub_pd(
                    _mm256_mul_pd(_mm256_sub_pd(c3, t), _mm256_mul_pd(t, t)),
                    c2,
                    t,
                ),
                c1,
            );
            let e = _mm256_mul_pd(_mm256_castsi256_pd(_mm256_or_si256(uu, iax)), y);
            let inside = _mm256_and_pd(
                _mm256_cmp_pd::<_CMP_LT_OQ>(chi2, c25),
                _mm256_cmp_pd::<_CMP_GE_OQ>(chi2, zero),
            );
            // V1 has no pixel area: pnorm * e * 1.0 == pnorm * e
            let val = _mm256_and_pd(inside, _mm256_mul_pd(pnorm, e));
            store(gb, val);
            let g0 = if first { zero } else { load(sb) };
            store(sb, _mm256_add_pd(g0, val));
        }
        if nb < np {
            let mut scratch = [0.0; 4];
            super::estep_values(
                super::KernV1(table),
                c,
                1.0,
                first,
                false,
                &v[nb..],
                &u[nb..],
                &mut g[nb..],
                &mut gsum[nb..],
                &mut scratch[..np - nb],
            );
        }
    }

    /// Pass 2.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn factors(
        with_logl: bool,
        sky: f64,
        d: &[f64],
        gsum: &[f64],
        logl: &[f64],
        f: &mut [f64],
    ) -> EStep {
        let np = d.len();
        let (gsum, logl, f) = (&gsum[..np], &logl[..np], &mut f[..np]);
        let nb = np / L * L;
        let (vsky, one, zero) = (
            _mm256_set1_pd(sky),
            _mm256_set1_pd(1.0),
            _mm256_setzero_pd(),
        );
        let (mut skys, mut els, mut zmask) = (zero, zero, zero);
        let chunks = gsum[..nb]
            .chunks_exact(4)
            .zip(d[..nb].chunks_exact(4))
            .zip(logl[..nb].chunks_exact(4))
            .zip(f[..nb].chunks_exact_mut(4));
        for (((gb, db), lb), fb) in chunks {
            let gs = load(gb);
            let gtot = _mm256_add_pd(gs, vsky);
            zmask = _mm256_or_pd(zmask, _mm256_cmp_pd::<_CMP_EQ_OQ>(gtot, zero));
            if with_logl {
                let t = _mm256_mul_pd(load(lb), _mm256_div_pd(one, gs));
                els = _mm256_add_pd(
                    els,
                    _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(gs, zero), t),
                );
            }
            let fi = _mm256_mul_pd(load(db), _mm256_div_pd(one, gtot));
            skys = _mm256_fmadd_pd(vsky, fi, skys);
            store(fb, fi);
        }
        let (mut skys, mut els) = (to_array(skys), to_array(els));
        let mut zero_hit = _mm256_movemask_pd(zmask) != 0;
        for i in nb..np {
            let gs = gsum[i];
            let gtot = gs + sky;
            zero_hit |= gtot == 0.0;
            if with_logl {
                els[0] += if gs == 0.0 { 0.0 } else { logl[i] * (1.0 / gs) };
            }
            let fi = d[i] * (1.0 / gtot);
            skys[0] = sky.mul_add(fi, skys[0]);
            f[i] = fi;
        }
        EStep {
            skysum: lane_sum(&skys),
            elogl: lane_sum(&els),
            gtot_zero: zero_hit,
        }
    }

    /// Pass 3.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn sums(c: &Comp, v: &[f64], u: &[f64], g: &[f64], f: &[f64]) -> Sums {
        let np = v.len();
        let (u, g, f) = (&u[..np], &g[..np], &f[..np]);
        let nb = np / L * L;
        let (row, col) = (_mm256_set1_pd(c.row), _mm256_set1_pd(c.col));
        let mut a = [_mm256_setzero_pd(); 6];
        let chunks = v[..nb]
            .chunks_exact(4)
            .zip(u[..nb].chunks_exact(4))
            .zip(g[..nb].chunks_exact(4))
            .zip(f[..nb].chunks_exact(4));
        for (((vb, ub), gb), fb) in chunks {
            let vv = load(vb);
            let uu = load(ub);
            let w = _mm256_mul_pd(load(gb), load(fb));
            let vd = _mm256_sub_pd(vv, row);
            let ud = _mm256_sub_pd(uu, col);
            a[0] = _mm256_add_pd(a[0], w);
            a[1] = _mm256_fmadd_pd(vv, w, a[1]);
            a[2] = _mm256_fmadd_pd(uu, w, a[2]);
            a[3] = _mm256_fmadd_pd(_mm256_mul_pd(vd, vd), w, a[3]);
            a[4] = _mm256_fmadd_pd(_mm256_mul_pd(ud, vd), w, a[4]);
            a[5] = _mm256_fmadd_pd(_mm256_mul_pd(ud, ud), w, a[5]);
        }
        let mut acc: [[f64; L]; 6] = std::array::from_fn(|j| to_array(a[j]));
        for i in nb..np {
            super::sums_lane(c, (v[i], u[i], g[i], f[i]), &mut acc, 0);
        }
        std::array::from_fn(|j| lane_sum(&acc[j]))
    }
}

/// The E step: Gaussian values, responsibilities and weighted sums.
#[inline(always)]
fn estep<const N: usize, K: EmKernel, I: Isa>(
    isa: I,
    k: K,
    with_logl: bool,
    comps: &[Comp; N],
    sky: f64,
    area: f64,
    px: &mut Pixels,
    sums: &mut [Sums; N],
) -> EStep {
    for (j, c) in comps.iter().enumerate() {
        isa.values(k, c, area, j == 0, with_logl, px, j);
    }
    let es = isa.factors(with_logl, sky, px);
    for (j, (c, s)) in comps.iter().zip(sums.iter_mut()).enumerate() {
        *s = isa.sums(c, px, j);
    }
    es
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
    /// Accelerate the fixed-point iteration (SQUAREM, see [`run_loop_accel`]).
    accel: bool,
}

/// M step of V1: plain ratios of the sums.
#[inline]
fn mstep_v1(sums: &Sums) -> GResult<Gauss2D> {
    let p = sums[0];
    if p == 0.0 {
        return Err(GMixError::Range("EM: division by zero (p = 0)"));
    }
    let pinv = 1.0 / p;
    Gauss2D::new(
        p,
        sums[1] * pinv,
        sums[2] * pinv,
        sums[3] * pinv,
        sums[4] * pinv,
        sums[5] * pinv,
    )
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

/// ngmix `gmix_get_e1e2T` (as [`GMix::e1e2t`], without building a mixture); `None` for zero
/// total flux or `T <= 0`.
fn e1e2t(gs: &[Gauss2D]) -> Option<(f64, f64, f64)> {
    let (mut r, mut c, mut ps) = (0.0, 0.0, 0.0);
    for g in gs {
        r += g.p * g.row;
        c += g.p * g.col;
        ps += g.p;
    }
    if ps == 0.0 {
        return None;
    }
    let (r0, c0) = (r / ps, c / ps);
    let (mut irr, mut irc, mut icc) = (0.0, 0.0, 0.0);
    for g in gs {
        let (dr, dc) = (g.row - r0, g.col - c0);
        irr += g.p * (g.irr + dr * dr);
        irc += g.p * (g.irc + dr * dc);
        icc += g.p * (g.icc + dc * dc);
    }
    let tsum = irr + icc;
    if !(tsum > 0.0) {
        return None;
    }
    Some(((icc - irr) / tsum, 2.0 * irc / tsum, tsum / ps))
}

/// The EM iterations for `N` Gaussians.
#[inline(always)]
fn run_loop<const N: usize, K: EmKernel, I: Isa>(
    isa: I,
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
        // V2: the likelihood statistic is only used from iteration `miniter - 1` on
        let with_logl = K::LOGL && i + 2 >= lp.miniter;
        let es = estep::<N, K, I>(isa, k, with_logl, &comps, sky, lp.area, px, &mut sums);
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
            let Some((e1, e2, t)) = e1e2t(&gauss) else {
                return fail(&gauss, numiter, fdiff, sky);
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

/// The V1 plain iteration with the fast E step ([`fast`]): `run_loop`'s V1 branch (ngmix's M
/// step and stopping rule) around [`fast::estep`].
#[inline(always)]
fn run_loop_fast<const N: usize, S: fast::Lanes>(
    guess: &[Gauss2D],
    lp: LoopPars,
    fp: &mut fast::FastPixels,
) -> Outcome {
    let mut gauss: [Gauss2D; N] = std::array::from_fn(|i| guess[i]);
    let mut sky = lp.sky0;
    let mut fdiff = f64::NAN;
    let mut numiter = 0;
    let (mut t_last, mut e1_last, mut e2_last) = (-9999.0, -9999.0, -9999.0);
    let fail = |gauss: &[Gauss2D; N], numiter, fdiff, sky| Outcome {
        gauss: gauss.to_vec(),
        range_error: true,
        numiter,
        fdiff,
        sky,
    };
    for i in 0..lp.maxiter {
        let comps: [Comp; N] = std::array::from_fn(|j| Comp::new(&gauss[j]));
        let Some((sums, skysum)) = fast::estep::<N, S>(fp, &comps, sky) else {
            return fail(&gauss, i + 1, fdiff, sky);
        };
        numiter = i + 1;
        for j in 0..N {
            match mstep_v1(&sums[j]) {
                Ok(g) => gauss[j] = g,
                Err(_) => return fail(&gauss, numiter, fdiff, sky),
            }
        }
        sky = skysum / lp.total_area;
        let Some((e1, e2, t)) = e1e2t(&gauss) else {
            return fail(&gauss, numiter, fdiff, sky);
        };
        fdiff = ((t - t_last) / t).abs();
        if fdiff < lp.tol && (e1 - e1_last).abs() < lp.tol && (e2 - e2_last).abs() < lp.tol {
            break;
        }
        (t_last, e1_last, e2_last) = (t, e1, e2);
    }
    Outcome {
        gauss: gauss.to_vec(),
        range_error: false,
        numiter,
        fdiff,
        sky,
    }
}

fn run_fast_base<const N: usize>(
    guess: &[Gauss2D],
    lp: LoopPars,
    fp: &mut fast::FastPixels,
) -> Outcome {
    run_loop_fast::<N, fast::Port>(guess, lp, fp)
}

/// [`run_loop_fast`] compiled with AVX2 and FMA enabled (the same result as [`run_fast_base`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_fast_avx2<const N: usize>(
    _isa: Avx2,
    guess: &[Gauss2D],
    lp: LoopPars,
    fp: &mut fast::FastPixels,
) -> Outcome {
    run_loop_fast::<N, fast::avx2::Ymm>(guess, lp, fp)
}

fn dispatch_fast_isa<const N: usize>(
    guess: &[Gauss2D],
    lp: LoopPars,
    fp: &mut fast::FastPixels,
    simd: Option<Avx2>,
) -> Outcome {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = simd {
        // SAFETY: an `Avx2` value exists only if the CPU has AVX2 and FMA (`Avx2::detect`).
        return unsafe { run_fast_avx2::<N>(isa, guess, lp, fp) };
    }
    let _ = simd;
    run_fast_base::<N>(guess, lp, fp)
}

fn dispatch_fast(
    guess: &[Gauss2D],
    lp: LoopPars,
    fp: &mut fast::FastPixels,
    simd: Option<Avx2>,
) -> Outcome {
    match guess.len() {
        1 => dispatch_fast_isa::<1>(guess, lp, fp, simd),
        2 => dispatch_fast_isa::<2>(guess, lp, fp, simd),
        3 => dispatch_fast_isa::<3>(guess, lp, fp, simd),
        4 => dispatch_fast_isa::<4>(guess, lp, fp, simd),
        5 => dispatch_fast_isa::<5>(guess, lp, fp, simd),
        _ => dispatch_fast_isa::<6>(guess, lp, fp, simd),
    }
}

/// [`run_loop_accel`] if `lp.accel`, falling back to `run_loop` (ngmix's plain iteration) on a
/// range error; `run_loop` otherwise.
#[inline(always)]
fn run_loop_any<const N: usize, K: EmKernel, I: Isa>(
    isa: I,
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    if lp.accel {
        let out = run_loop_accel::<N, K, I>(isa, k, guess, lp, px);
        if !out.range_error {
            return out;
        }
        // an extrapolation can lead EM where a plain step fails (a component whose flux
        // vanishes) where the plain iteration would not have gone: a range error is reported
        // only if the plain iteration from the guess has one too (and then as it has it)
    }
    run_loop::<N, K, I>(isa, k, guess, lp, px)
}

/// A point of the EM iteration: the mixture and the sky.
#[derive(Clone, Copy)]
struct Point<const N: usize> {
    g: [[f64; 6]; N],
    sky: f64,
}

impl<const N: usize> Point<N> {
    fn of(gauss: &[Gauss2D; N], sky: f64) -> Self {
        Self {
            g: std::array::from_fn(|j| gauss[j].pars()),
            sky,
        }
    }

    /// The Gaussians, or `None` outside the valid domain (`p > 0`, `irr, icc > 0`, `det` and
    /// `T` above ngmix's lowest value, finite, sky `>= 0`).
    fn gauss(&self) -> Option<[Gauss2D; N]> {
        if !(self.sky >= 0.0) || !self.sky.is_finite() {
            return None;
        }
        let out: [Option<Gauss2D>; N] = std::array::from_fn(|j| {
            let q = &self.g[j];
            if !(q[0] > 0.0 && q[3] > 0.0 && q[5] > 0.0) || q.iter().any(|x| !x.is_finite()) {
                return None;
            }
            Gauss2D::new(q[0], q[1], q[2], q[3], q[4], q[5]).ok()
        });
        if out.iter().any(|g| g.is_none()) {
            return None;
        }
        Some(std::array::from_fn(|j| out[j].expect("checked")))
    }

    /// `self + a·x + b·y` element-wise.
    fn axpby(&self, a: f64, x: &Self, b: f64, y: &Self) -> Self {
        Self {
            g: std::array::from_fn(|j| {
                std::array::from_fn(|q| self.g[j][q] + a * x.g[j][q] + b * y.g[j][q])
            }),
            sky: self.sky + a * x.sky + b * y.sky,
        }
    }

    /// Squared norm with the amplitudes (and the sky) scaled by `pscale`.
    fn norm2(&self, pscale: f64) -> f64 {
        let mut s = 0.0;
        for q in &self.g {
            s += (q[0] * pscale).powi(2);
            s += q[1..].iter().map(|x| x * x).sum::<f64>();
        }
        s + (self.sky * pscale).powi(2)
    }
}

/// `ln x` for positive normal `x`, within a few ulp, written so that it vectorises (exponent
/// and mantissa from the bits; `2 atanh(s)` series for the mantissa in `[√½, √2)`).
#[inline(always)]
fn ln_pos(x: f64) -> f64 {
    const TWO52: f64 = 4503599627370496.0;
    let bits = x.to_bits();
    let e = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - (TWO52 + 1023.0);
    let m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = if big { e + 1.0 } else { e };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut p: f64 = 1.0 / 19.0;
    for c in [17.0f64, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0] {
        p = p.mul_add(z, 1.0 / c);
    }
    let ls = (2.0 * s).mul_add(z * p, 2.0 * s);
    e.mul_add(std::f64::consts::LN_2, ls)
}

/// The observed-data log-likelihood `Σ d ln(Σ g + sky)` after an E step (the safeguard of the
/// accelerated iteration).
#[inline(always)]
fn loglike(px: &Pixels, sky: f64) -> f64 {
    let np = px.d.len();
    let gs = &px.gsum[..np];
    let mut acc = [0.0; L];
    let (dc, gc) = (px.d.chunks_exact(L), gs.chunks_exact(L));
    let (dr, gr) = (dc.remainder(), gc.remainder());
    for (db, gb) in dc.zip(gc) {
        for l in 0..L {
            acc[l] = db[l].mul_add(ln_pos(gb[l] + sky), acc[l]);
        }
    }
    for (d, g) in dr.iter().zip(gr) {
        acc[0] = d.mul_add(ln_pos(g + sky), acc[0]);
    }
    lane_sum(&acc)
}

/// One E/M step of [`run_loop_accel`] from `g` (with sky `sky`): `F(x)`, its sky, the E-step
/// statistics and, if asked, the log-likelihood of `x`; `None` on a range error. A function
/// (not a closure) so that it is inlined into the `avx2,fma` loop with its target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn accel_step<const N: usize, K: EmKernel, I: Isa>(
    isa: I,
    k: K,
    lp: &LoopPars,
    npix: f64,
    sums: &mut [Sums; N],
    g: &[Gauss2D; N],
    sky: f64,
    numiter: usize,
    want_ll: bool,
    px: &mut Pixels,
) -> Option<([Gauss2D; N], f64, EStep, f64)> {
    let comps: [Comp; N] = std::array::from_fn(|j| Comp::new(&g[j]));
    let with_logl = K::LOGL && numiter + 2 >= lp.miniter;
    let es = estep::<N, K, I>(isa, k, with_logl, &comps, sky, lp.area, px, sums);
    if es.gtot_zero {
        return None;
    }
    let ll = if want_ll { loglike(px, sky) } else { 0.0 };
    let mut out = *g;
    for j in 0..N {
        let res = if K::LOGL {
            mstep_v2(&sums[j])
        } else {
            mstep_v1(&sums[j])
        };
        out[j] = res.ok()?;
    }
    let sky_new = if K::LOGL {
        if lp.vary_sky {
            es.skysum / npix
        } else {
            sky
        }
    } else {
        es.skysum / lp.total_area
    };
    Some((out, sky_new, es, ll))
}

/// The EM iterations for `N` Gaussians, accelerated by SQUAREM (Varadhan & Roland 2008, the
/// `SqS3` step length `α = -|r|/|v|`): from `x0`, two plain EM steps give `x1`, `x2`; the
/// extrapolated point `x' = x0 - 2α r + α² v` (`r = x1 - x0`, `v = x2 - 2 x1 + x0`) is followed by
/// one plain step, `F(x')`, which starts the next cycle. The extrapolation is refused (the cycle
/// continues from `x2`) when `x'` leaves the valid domain (halving `α` towards -1 a few times
/// first), when its E step fails, or when its log-likelihood is below that of `x1`.
///
/// Every E/M step counts as an iteration (`numiter`, `maxiter`), and the stopping rule is
/// ngmix's, applied to plain EM steps only: V1 stops when `T, e1, e2` of `F(x)` differ from
/// those of `x` by less than `tol`; V2 (after `miniter`) when the likelihood statistic of `x`
/// differs from that of the point `x` was computed from by less than `tol` relative, returning
/// `F(x)`. So the returned mixture satisfies ngmix's criterion for one EM step, as in the plain
/// iteration, but (the iteration being faster) it is nearer to the fixed point.
#[inline(always)]
fn run_loop_accel<const N: usize, K: EmKernel, I: Isa>(
    isa: I,
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    let npix = px.v.len() as f64;
    let mut sums = [[0.0; 6]; N];
    let mut numiter = 0usize;
    let mut fdiff = f64::NAN;
    let pscale = {
        let ps: f64 = guess.iter().map(|g| g.p.abs()).sum();
        if ps > 0.0 && ps.is_finite() {
            1.0 / ps
        } else {
            1.0
        }
    };
    let done = |gauss: &[Gauss2D; N], numiter, fdiff, sky, range_error| Outcome {
        gauss: gauss.to_vec(),
        range_error,
        numiter,
        fdiff,
        sky,
    };
    // One E/M step from `g` (with sky `sky`): `F(x)`, the E-step statistics and, if asked, the
    // log-likelihood of `x`. `None` on a range error.
    let mut step = |g: &[Gauss2D; N], sky: f64, numiter: usize, want_ll: bool, px: &mut Pixels| {
        accel_step::<N, K, I>(isa, k, &lp, npix, &mut sums, g, sky, numiter, want_ll, px)
    };
    // V1 statistic of a mixture
    let stats = |g: &[Gauss2D; N]| e1e2t(g);
    // the current point (always the output of a plain step, or the guess)
    let mut x: [Gauss2D; N] = std::array::from_fn(|i| guess[i]);
    let mut sky = lp.sky0;
    // V1: `T, e1, e2` of `x` (the guess is never compared, as in ngmix)
    let mut st_x: Option<(f64, f64, f64)> = None;
    // V2: likelihood statistic of the point `x` was computed from (ngmix's start value first)
    let mut pred_elogl: Option<f64> = Some(-9999.9e9);
    let mut stepmax = 4.0f64;
    // an accepted extrapolation, undone if EM cannot step from `F(x')`
    struct Backup<const N: usize> {
        x: [Gauss2D; N],
        sky: f64,
        st: Option<(f64, f64, f64)>,
        pred: Option<f64>,
    }
    let mut backup: Option<Backup<N>> = None;
    // V1 test of the plain step `a -> b` (`sa` the statistic of `a`); Err(()) = range error
    let test_v1 =
        |sa: Option<(f64, f64, f64)>, b: &[Gauss2D; N], fdiff: &mut f64| -> Result<bool, ()> {
            let Some((e1, e2, t)) = stats(b) else {
                return Err(());
            };
            Ok(match sa {
                Some((e10, e20, t0)) => {
                    *fdiff = ((t - t0) / t).abs();
                    *fdiff < lp.tol && (e1 - e10).abs() < lp.tol && (e2 - e20).abs() < lp.tol
                }
                None => false,
            })
        };
    // V2 test at the E step of `x` (statistic `el`) against its predecessor's
    let test_v2 =
        |pred: Option<f64>, el: f64, numiter: usize, fdiff: &mut f64| -> Result<bool, ()> {
            match pred {
                Some(p) if numiter >= lp.miniter => {
                    if el == 0.0 {
                        return Err(());
                    }
                    *fdiff = ((el - p) / el).abs();
                    Ok(*fdiff < lp.tol)
                }
                _ => Ok(false),
            }
        };
    loop {
        if numiter >= lp.maxiter {
            return done(&x, numiter, fdiff, sky, false);
        }
        // x -> x1
        let Some((x1, sky1, es0, ll0)) = step(&x, sky, numiter, true, px) else {
            if let Some(b) = backup.take() {
                // `F(x')` is a point EM cannot step from: undo the extrapolation
                numiter += 1;
                (x, sky, st_x, pred_elogl) = (b.x, b.sky, b.st, b.pred);
                stepmax = (stepmax / 4.0).max(4.0);
                continue;
            }
            return done(&x, numiter + 1, fdiff, sky, true);
        };
        numiter += 1;
        let conv = if K::LOGL {
            test_v2(pred_elogl, es0.elogl, numiter, &mut fdiff)
        } else {
            test_v1(st_x, &x1, &mut fdiff)
        };
        match conv {
            Err(()) => {
                if let Some(b) = backup.take() {
                    (x, sky, st_x, pred_elogl) = (b.x, b.sky, b.st, b.pred);
                    stepmax = (stepmax / 4.0).max(4.0);
                    continue;
                }
                return done(&x1, numiter, fdiff, sky1, true);
            }
            Ok(true) => return done(&x1, numiter, fdiff, sky1, false),
            Ok(false) => {}
        }
        backup = None;
        if numiter >= lp.maxiter {
            return done(&x1, numiter, fdiff, sky1, false);
        }
        let st_x1 = if K::LOGL { None } else { stats(&x1) };
        // x1 -> x2
        let Some((x2, sky2, es1, _)) = step(&x1, sky1, numiter, false, px) else {
            return done(&x1, numiter + 1, fdiff, sky1, true);
        };
        numiter += 1;
        let conv = if K::LOGL {
            test_v2(Some(es0.elogl), es1.elogl, numiter, &mut fdiff)
        } else {
            test_v1(st_x1, &x2, &mut fdiff)
        };
        match conv {
            Err(()) => return done(&x2, numiter, fdiff, sky2, true),
            Ok(true) => return done(&x2, numiter, fdiff, sky2, false),
            Ok(false) => {}
        }
        // the fallback: continue from x2
        let fallback_st = if K::LOGL { None } else { stats(&x2) };
        let (p0, p1, p2) = (
            Point::of(&x, sky),
            Point::of(&x1, sky1),
            Point::of(&x2, sky2),
        );
        let r = p1.axpby(-1.0, &p0, 0.0, &p0);
        let v = p2.axpby(-2.0, &p1, 1.0, &p0);
        let (nr, nv) = (r.norm2(pscale).sqrt(), v.norm2(pscale).sqrt());
        let mut alpha = if nv > 0.0 { -(nr / nv) } else { -1.0 };
        if !alpha.is_finite() {
            alpha = -1.0;
        }
        alpha = alpha.clamp(-stepmax, -1.0);
        let mut xp = None;
        while alpha < -1.0 {
            let cand = p0.axpby(-2.0 * alpha, &r, alpha * alpha, &v);
            if let Some(g) = cand.gauss() {
                xp = Some((g, cand.sky));
                break;
            }
            alpha = 0.5 * (alpha - 1.0);
            if alpha > -1.05 {
                break;
            }
        }
        let fallback = |x: &mut [Gauss2D; N],
                        sky: &mut f64,
                        st: &mut Option<(f64, f64, f64)>,
                        pe: &mut Option<f64>| {
            *x = x2;
            *sky = sky2;
            *st = fallback_st;
            *pe = Some(es1.elogl);
        };
        let Some((gp, skyp)) = xp else {
            fallback(&mut x, &mut sky, &mut st_x, &mut pred_elogl);
            continue;
        };
        if numiter >= lp.maxiter {
            return done(&x2, numiter, fdiff, sky2, false);
        }
        let stp = if K::LOGL { None } else { stats(&gp) };
        let res = step(&gp, skyp, numiter, true, px);
        numiter += 1;
        match res {
            Some((y, skyy, esp, llp))
                if llp.is_finite()
                    && llp >= ll0 - 1e-12 * ll0.abs()
                    && (K::LOGL || stp.is_some()) =>
            {
                if !K::LOGL {
                    match test_v1(stp, &y, &mut fdiff) {
                        Ok(true) => return done(&y, numiter, fdiff, skyy, false),
                        Ok(false) => {}
                        // F(x') has T <= 0: refuse x'
                        Err(()) => {
                            fallback(&mut x, &mut sky, &mut st_x, &mut pred_elogl);
                            continue;
                        }
                    }
                }
                if alpha <= -stepmax {
                    stepmax *= 4.0;
                }
                backup = Some(Backup {
                    x: x2,
                    sky: sky2,
                    st: fallback_st,
                    pred: Some(es1.elogl),
                });
                x = y;
                sky = skyy;
                st_x = if K::LOGL { None } else { stats(&x) };
                pred_elogl = Some(esp.elogl);
            }
            _ => fallback(&mut x, &mut sky, &mut st_x, &mut pred_elogl),
        }
    }
}

/// `run_loop` with the portable passes, compiled for the baseline target.
fn run_loop_base<const N: usize, K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    run_loop_any::<N, K, Portable>(Portable, k, guess, lp, px)
}

/// `run_loop` with the AVX2 passes, the rest compiled with AVX2 and FMA enabled (the result is
/// the same as [`run_loop_base`]'s).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_loop_avx2<const N: usize, K: EmKernel>(
    isa: Avx2,
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
) -> Outcome {
    run_loop_any::<N, K, Avx2>(isa, k, guess, lp, px)
}

fn dispatch_isa<const N: usize, K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
    simd: Option<Avx2>,
) -> Outcome {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = simd {
        // SAFETY: an `Avx2` value exists only if the CPU has AVX2 and FMA (`Avx2::detect`).
        return unsafe { run_loop_avx2::<N, K>(isa, k, guess, lp, px) };
    }
    let _ = simd;
    run_loop_base::<N, K>(k, guess, lp, px)
}

fn dispatch_n<K: EmKernel>(
    k: K,
    guess: &[Gauss2D],
    lp: LoopPars,
    px: &mut Pixels,
    simd: Option<Avx2>,
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
    simd: Option<Avx2>,
    /// `None`: plain iteration (acceleration is opt-in, see [`EmFitter::set_accel`]).
    accel: Option<bool>,
    /// V1: the fast E step's pixel data ([`fast`]); `None` for V2.
    fast: Option<fast::FastPixels>,
    /// Use the fast E step for the plain V1 iteration (the default; see [`EmFitter::set_fast`]).
    use_fast: bool,
}

impl EmFitter {
    /// Prepare `image` (`nrow × ncol`, row-major) with its Jacobian.
    ///
    /// # Errors
    /// [`GMixError::Fatal`] if `image.len() != nrow * ncol` or the image is empty.
    pub fn new(
        image: &[f64],
        nrow: usize,
        ncol: usize,
        jac: &Jacobian,
        cfg: &EmConfig,
    ) -> GResult<Self> {
        if nrow == 0 || ncol == 0 || image.len() != nrow * ncol {
            return Err(GMixError::Fatal(
                "EM: image size does not match nrow x ncol",
            ));
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
        let d: Vec<f64> = match cfg.variant {
            EmVariant::V1 => im.iter().map(|&x| x / counts).collect(),
            EmVariant::V2 => im,
        };
        let fast = match cfg.variant {
            EmVariant::V1 => Some(fast::FastPixels::new(&d, nrow, ncol, jac)),
            EmVariant::V2 => None,
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
            simd: Avx2::detect(),
            accel: None,
            fast,
            use_fast: true,
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
                    accel: self.accel.unwrap_or(false),
                };
                match self.fast.as_mut() {
                    Some(fp) if self.use_fast && !lp.accel => {
                        dispatch_fast(guess.gaussians(), lp, fp, self.simd)
                    }
                    _ => dispatch_n(
                        KernV1(fmath_table()),
                        guess.gaussians(),
                        lp,
                        &mut self.px,
                        self.simd,
                    ),
                }
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
                    accel: self.accel.unwrap_or(false),
                };
                dispatch_n(
                    KernV2(exp_neg_int_table()),
                    guess.gaussians(),
                    lp,
                    &mut self.px,
                    self.simd,
                )
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

    /// Use the AVX2 kernels when the CPU has AVX2 and FMA (`true`, the default) or the portable
    /// code (`false`). The results are bit-identical; this is for tests and benchmarks.
    pub fn set_simd(&mut self, on: bool) {
        self.simd = if on { Avx2::detect() } else { None };
    }

    /// Accelerate the EM fixed-point iteration (SQUAREM with a likelihood and domain safeguard;
    /// the returned mixture passes the variant's own convergence test on a plain EM step, see
    /// [`EmFitter`]'s module docs) or run ngmix's plain iteration. The default is on for V1 and
    /// off for V2 (whose iteration counts and iterates then match ngmix 2.4.2's).
    pub fn set_accel(&mut self, on: bool) {
        self.accel = Some(on);
    }

    /// V1 plain iteration: use the fast E step (`true`, the default: row windows, exps by
    /// recurrence along rows, one pass per row) or the reference passes (`false`, the E step
    /// ngmix's loops compute, kept as the reference). Both iterate ngmix v1.3.5's map and stop
    /// by its rule; the E steps agree to rounding (~1e-14 relative), so the fits agree to well
    /// within the tolerance. No effect on V2 or on the accelerated iteration.
    pub fn set_fast(&mut self, on: bool) {
        self.use_fast = on;
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

/// [`fit_em`] with the plain ngmix iteration whatever the fitter's default: the reference the
/// accelerated iteration is checked against.
#[doc(hidden)]
pub fn fit_em_reference(
    image: &[f64],
    nrow: usize,
    ncol: usize,
    jac: &Jacobian,
    guess: &GMix,
    cfg: &EmConfig,
) -> GResult<EmResult> {
    fit_em_with(image, (nrow, ncol), jac, guess, cfg, false)
}

/// [`fit_em`] with the SQUAREM-accelerated iteration (opt-in: on 3-Gaussian fits it stops
/// farther from the fixed point than the plain iteration, see the closing notes of the work).
pub fn fit_em_accel(
    image: &[f64],
    nrow: usize,
    ncol: usize,
    jac: &Jacobian,
    guess: &GMix,
    cfg: &EmConfig,
) -> GResult<EmResult> {
    fit_em_with(image, (nrow, ncol), jac, guess, cfg, true)
}

fn fit_em_with(
    image: &[f64],
    (nrow, ncol): (usize, usize),
    jac: &Jacobian,
    guess: &GMix,
    cfg: &EmConfig,
    accel: bool,
) -> GResult<EmResult> {
    let mut f = EmFitter::new(image, nrow, ncol, jac, cfg)?;
    f.set_accel(accel);
    // the reference is the plain iteration with the reference E step
    f.set_fast(false);
    f.go(guess)
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
const EM4_PGUESS: [f64; 4] = [
    0.596510042804182,
    0.4034898268889178,
    1.303069003078001e-07,
    1.0e-8,
];
const EM4_FGUESS: [f64; 4] = [
    0.5793612389470884,
    1.621860687127999,
    7.019347162356363,
    16.0,
];

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
pub fn em_guess<R: rand_core::Rng + ?Sized>(
    ngauss: usize,
    tguess: f64,
    flux: f64,
    rng: &mut R,
) -> GResult<GMix> {
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
    use crate::gmix::fastexp::{exp5_smooth, expd_fmath};

    /// The kernels' exps are ngmix's functions evaluated with fused multiply-adds: `exp5` within
    /// 2 ulp of the plain evaluation (`fastexp`); `expd` (whose reduction step gains accuracy from
    /// the fused form) as accurate as the plain one, i.e. an accurate exp.
    #[test]
    fn kernel_exps_match_fastexp() {
        let k1 = KernV1(fmath_table());
        let k2 = KernV2(exp_neg_int_table());
        let (mut w1, mut w1ref, mut w2): (f64, f64, f64) = (0.0, 0.0, 0.0);
        for j in 0..=125_000 {
            let x = -12.5 * j as f64 / 125_000.0;
            w1 = w1.max((k1.exp(x) / x.exp() - 1.0).abs());
            w1ref = w1ref.max((expd_fmath(x) / x.exp() - 1.0).abs());
            w2 = w2.max((k2.exp(x) / exp5_smooth(x) - 1.0).abs());
        }
        assert!(w1 <= w1ref.max(1e-15), "expd: {w1:e} (plain {w1ref:e})");
        assert!(w2 <= 4.5e-16, "exp5: {w2:e}");
    }

    #[test]
    fn e1e2t_matches_gmix() {
        let gm = GMix::from_full_pars(&[
            0.5, 0.1, -0.2, 0.3, 0.02, 0.25, 0.4, -0.05, 0.1, 0.9, -0.1, 1.1,
        ])
        .unwrap();
        assert_eq!(e1e2t(gm.gaussians()), gm.e1e2t().ok());
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
