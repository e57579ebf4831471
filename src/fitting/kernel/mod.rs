//! The fused model kernel of the max-likelihood fitter.
//!
//! For one observation and one band it renders the PSF-convolved model, and — in the same pass
//! over the pixels — accumulates the normal equations `JᵀJ`, `Jᵀr` and `χ²` with analytic
//! derivatives with respect to `[row, col, g1, g2, T, flux]`. The Jacobian is never stored.
//!
//! Evaluation follows ngmix v1.3.5 (what ngmixer ran): each Gaussian is evaluated only where
//! `0 <= χ² < 25`, with an exp accurate to 1e-16 (v1.3.5's table exp is accurate to 1e-15).
//! Along a pixel row χ² is a quadratic in the column, so the columns where a Gaussian can be
//! non-zero are found analytically and the inner loop runs only there, over contiguous
//! structure-of-arrays buffers that the compiler vectorises.
//!
//! Two implementations share this contract: the scalar oracle [`accumulate_scalar`] (any
//! [`Eval`]) and, for the V1 evaluation, the fast kernel (module `fast`: chunks of 4 columns
//! in vector lanes, analytic windows, a multiplicative exp recurrence, the normal equations
//! accumulated in a reduced basis), compiled portably and with AVX2+FMA. [`accumulate`] uses
//! the fast kernel for V1 with the implementation chosen once at run time
//! ([`KernelImpl::global`]) and the oracle otherwise.
//!
//! Agreement of the fast kernel with the oracle (tests/fitkern_oracle.rs): `JᵀJ`, `Jᵀr`, `χ²`
//! and the S/N sums within 1e-10 of the scale of each sum; the same pixels are used (the hard
//! cut selects exactly the oracle's pixels). One deliberate difference: the oracle's
//! `χ² >= 0` test only guards against rounding, and the fast kernel treats a rounded χ² of
//! about 0 inside a window as 0.
//!
//! Derivatives: with `a = Σ⁻¹ (v - v₀, u - u₀)` a Gaussian `G` has `∂G/∂row = G a_v`,
//! `∂G/∂col = G a_u` and `∂ ln G/∂Σ = ½(Σ⁻¹ x xᵀ Σ⁻¹ − Σ⁻¹)`; the shape and size enter only
//! through the object covariance `T sᵢ/2 · (1 − e₁, e₂, 1 + e₁)` with `e = 2g/(1+g²)`.

use crate::error::{GMixError, GResult};
use crate::gmix::fastexp::{exp_poly, MAX_CHI2};
use crate::gmix::gauss::LOW_DETVAL;
use crate::gmix::models::{SimpleKind, Tables};
use crate::gmix::{GMix, Jacobian};
use std::sync::OnceLock;

mod fast;

/// One component of an unconvolved model: flux fraction and size fraction `T_i / T`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comp {
    /// Flux fraction.
    pub pfrac: f64,
    /// Size fraction (includes the composite `Tfactor`).
    pub tfrac: f64,
}

/// A model whose components share centre and shape: gauss/exp/dev/turb, or cm at fixed
/// `fracdev`, `TdByTe`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    comps: Vec<Comp>,
}

impl ModelSpec {
    /// A simple model.
    pub fn simple(kind: SimpleKind, tables: Tables) -> Self {
        let p = tables.profile(kind);
        Self {
            comps: p
                .p
                .iter()
                .zip(p.f)
                .map(|(&pfrac, &tfrac)| Comp { pfrac, tfrac })
                .collect(),
        }
    }

    /// The exp+dev composite at fixed `fracdev` and `TdByTe` (ngmix `GMixCM`).
    pub fn cm(fracdev: f64, tdbyte: f64, tables: Tables) -> Self {
        let tf = tables.cm_tfactor(fracdev, tdbyte);
        let e = tables.profile(SimpleKind::Exp);
        let d = tables.profile(SimpleKind::Dev);
        let mut comps = Vec::with_capacity(16);
        for (&p, &f) in e.p.iter().zip(e.f) {
            comps.push(Comp {
                pfrac: p * (1.0 - fracdev),
                tfrac: f * tf,
            });
        }
        for (&p, &f) in d.p.iter().zip(d.f) {
            comps.push(Comp {
                pfrac: p * fracdev,
                tfrac: f * tdbyte * tf,
            });
        }
        Self { comps }
    }

    /// The components.
    pub fn comps(&self) -> &[Comp] {
        &self.comps
    }

    /// The unconvolved mixture for band parameters `[row, col, g1, g2, T, flux]`, without
    /// validating components (ngmix only validates after convolution).
    pub fn gmix(&self, pars: &[f64; 6]) -> GResult<GMix> {
        let (e1, e2) = crate::gmix::shape::g1g2_to_e1e2(pars[2], pars[3])?;
        let mut v = Vec::with_capacity(self.comps.len());
        for c in &self.comps {
            let t2 = 0.5 * pars[4] * c.tfrac;
            v.push(crate::gmix::Gauss2D::new(
                pars[5] * c.pfrac,
                pars[0],
                pars[1],
                t2 * (1.0 - e1),
                t2 * e2,
                t2 * (1.0 + e1),
            )?);
        }
        Ok(GMix::from_gaussians(v))
    }
}

/// A convolved Gaussian prepared for the kernel, with the chain-rule coefficients
/// `∂(irr, irc, icc)/∂(g1, g2, T)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KGauss {
    row: f64,
    col: f64,
    drr: f64,
    drc: f64,
    dcc: f64,
    /// `pnorm × pixel factor` for unit total flux.
    pn: f64,
    /// `[d/dg1 (irr, irc, icc), d/dg2 (...), d/dT (...)]`.
    coef: [f64; 9],
    /// Size fraction over two: `coef = s · cs`.
    s: f64,
    /// The chain-rule coefficients common to every component (`coef / s`).
    cs: [f64; 9],
}

/// Prepare the convolved Gaussians of `spec` at band parameters `[row, col, g1, g2, T]`
/// convolved with `psf`; every pixel value is multiplied by `area` (see [`Eval::pixel_factor`]).
pub fn prepare(
    spec: &ModelSpec,
    pars: &[f64],
    psf: &GMix,
    area: f64,
    out: &mut Vec<KGauss>,
) -> GResult<()> {
    let (row, col, g1, g2, t) = (pars[0], pars[1], pars[2], pars[3], pars[4]);
    let gsq = g1 * g1 + g2 * g2;
    if !(gsq < 1.0) {
        return Err(GMixError::Range("g >= 1"));
    }
    let (e1, e2) = crate::gmix::shape::g1g2_to_e1e2(g1, g2)?;
    // de/dg for e = 2g/(1+g²)
    let opg = 1.0 + gsq;
    let opg2 = opg * opg;
    let de1dg1 = 2.0 / opg - 4.0 * g1 * g1 / opg2;
    let de1dg2 = -4.0 * g1 * g2 / opg2;
    let de2dg1 = de1dg2;
    let de2dg2 = 2.0 / opg - 4.0 * g2 * g2 / opg2;

    let (pr, pc) = psf.cen();
    let ipsum = 1.0 / psf.flux();
    out.clear();
    for c in &spec.comps {
        let s = 0.5 * c.tfrac;
        let (irr0, irc0, icc0) = (t * s * (1.0 - e1), t * s * e2, t * s * (1.0 + e1));
        let coef = [
            -t * s * de1dg1,
            t * s * de2dg1,
            t * s * de1dg1,
            -t * s * de1dg2,
            t * s * de2dg2,
            t * s * de1dg2,
            s * (1.0 - e1),
            s * e2,
            s * (1.0 + e1),
        ];
        let cs = [
            -t * de1dg1,
            t * de2dg1,
            t * de1dg1,
            -t * de1dg2,
            t * de2dg2,
            t * de1dg2,
            1.0 - e1,
            e2,
            1.0 + e1,
        ];
        for p in psf.gaussians() {
            let irr = irr0 + p.irr;
            let irc = irc0 + p.irc;
            let icc = icc0 + p.icc;
            let det = irr * icc - irc * irc;
            if !(det >= LOW_DETVAL) {
                return Err(GMixError::Range("det too low"));
            }
            if !(irr + icc > LOW_DETVAL) {
                return Err(GMixError::Range("T too low"));
            }
            let idet = 1.0 / det;
            let norm = 1.0 / (2.0 * std::f64::consts::PI * det.sqrt());
            out.push(KGauss {
                row: row + (p.row - pr),
                col: col + (p.col - pc),
                drr: irr * idet,
                drc: irc * idet,
                dcc: icc * idet,
                pn: c.pfrac * p.p * ipsum * norm * area,
                coef,
                s,
                cs,
            });
        }
    }
    Ok(())
}

/// Sums over the pixels of one or more observations for one band.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accum {
    /// `JᵀJ` in the band-local parameters `[row, col, g1, g2, T, flux]`.
    pub jtj: [[f64; 6]; 6],
    /// `Jᵀr`.
    pub jtr: [f64; 6],
    /// `Σ w (m − d)²`.
    pub chi2: f64,
    /// `Σ d m w`.
    pub s2n_numer: f64,
    /// `Σ m² w`.
    pub s2n_denom: f64,
    /// Pixels used.
    pub npix: usize,
}

/// Reusable buffers of the kernels.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    m: Vec<f64>,
    d: [Vec<f64>; 5],
    fast: fast::FastScratch,
}

impl Scratch {
    fn reset(&mut self, ncol: usize, deriv: bool) {
        self.m.clear();
        self.m.resize(ncol, 0.0);
        if deriv {
            for d in &mut self.d {
                d.clear();
                d.resize(ncol, 0.0);
            }
        }
    }
}

/// Column window `[lo, hi)` where `χ²(c) < 25` along a row, for `χ²(c) = a c² + b c + q`.
#[inline]
fn window(a: f64, b: f64, q: f64, ncol: usize) -> (usize, usize) {
    let disc = b * b - 4.0 * a * (q - MAX_CHI2);
    if !(disc > 0.0) || !(a > 0.0) {
        return (0, 0);
    }
    let sd = disc.sqrt();
    let c0 = (-b - sd) / (2.0 * a);
    let c1 = (-b + sd) / (2.0 * a);
    let lo = (c0.floor() - 1.0).max(0.0);
    let hi = (c1.ceil() + 2.0).min(ncol as f64);
    if hi <= lo {
        (0, 0)
    } else {
        (lo as usize, hi as usize)
    }
}

/// How a Gaussian's value is evaluated from its χ².
pub trait Eval: Copy + Default + std::fmt::Debug + Send + Sync + 'static {
    /// Whether pixel values are multiplied by the pixel area (ngmix 2.x) or not (v1.3.5,
    /// where a flux is therefore `pixel sum × pixel area`).
    const AREA: bool;
    /// True only when [`Eval::eval`] is exactly V1's (accurate exp, hard cut
    /// `0 <= χ² < 25`): selects the fast kernel in [`accumulate`].
    const V1_HARD_CUT: bool = false;
    /// `exp(-χ²/2)` times the cut-off window of the policy.
    fn eval(chi2: f64) -> f64;
    /// The factor applied to every pixel value for a Jacobian `jac`.
    #[inline]
    fn pixel_factor(jac: &Jacobian) -> f64 {
        if Self::AREA {
            jac.area()
        } else {
            1.0
        }
    }
}

/// ngmix v1.3.5 (ngmixer): accurate exp, evaluated only for `0 <= χ² < 25`; no area factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1;
impl Eval for V1 {
    const AREA: bool = false;
    const V1_HARD_CUT: bool = true;
    #[inline(always)]
    fn eval(chi2: f64) -> f64 {
        let e = exp_poly(-0.5 * chi2);
        if (0.0..MAX_CHI2).contains(&chi2) {
            e
        } else {
            0.0
        }
    }
}

/// ngmix 2.4.2: `exp5_smooth` with the apodized window, times the pixel area (the `ref/ngmix`
/// vectors).
#[derive(Debug, Clone, Copy, Default)]
pub struct V2;
impl Eval for V2 {
    const AREA: bool = true;
    #[inline(always)]
    fn eval(chi2: f64) -> f64 {
        if (0.0..MAX_CHI2).contains(&chi2) {
            crate::gmix::fastexp::exp5_smooth(-0.5 * chi2) * crate::gmix::fastexp::apodize(chi2)
        } else {
            0.0
        }
    }
}

/// Render the prepared model (unit flux) along one row into the scratch buffers.
#[inline(always)]
fn row_pass<E: Eval, const DERIV: bool>(
    gs: &[KGauss],
    jac: &Jacobian,
    row: usize,
    ncol: usize,
    s: &mut Scratch,
) {
    let dr = row as f64 - jac.row0;
    // sky coordinates at column 0 of this row
    let v0 = jac.dvdrow * dr - jac.dvdcol * jac.col0;
    let u0 = jac.dudrow * dr - jac.dudcol * jac.col0;
    let (dvdc, dudc) = (jac.dvdcol, jac.dudcol);
    for g in gs {
        let vd0 = v0 - g.row;
        let ud0 = u0 - g.col;
        let a = g.dcc * dvdc * dvdc + g.drr * dudc * dudc - 2.0 * g.drc * dvdc * dudc;
        let b = 2.0 * (g.dcc * vd0 * dvdc + g.drr * ud0 * dudc - g.drc * (vd0 * dudc + ud0 * dvdc));
        let q = g.dcc * vd0 * vd0 + g.drr * ud0 * ud0 - 2.0 * g.drc * vd0 * ud0;
        let (lo, hi) = window(a, b, q, ncol);
        if lo >= hi {
            continue;
        }
        let m = &mut s.m[lo..hi];
        if DERIV {
            let [d0, d1, d2, d3, d4] = &mut s.d;
            let (d0, d1, d2, d3, d4) = (
                &mut d0[lo..hi],
                &mut d1[lo..hi],
                &mut d2[lo..hi],
                &mut d3[lo..hi],
                &mut d4[lo..hi],
            );
            let c = &g.coef;
            for k in 0..m.len() {
                let cf = (lo + k) as f64;
                let vd = vd0 + dvdc * cf;
                let ud = ud0 + dudc * cf;
                let av = g.dcc * vd - g.drc * ud;
                let au = g.drr * ud - g.drc * vd;
                let chi2 = vd * av + ud * au;
                let gv = g.pn * E::eval(chi2);
                m[k] += gv;
                d0[k] += gv * av;
                d1[k] += gv * au;
                let qrr = 0.5 * (av * av - g.dcc);
                let qrc = g.drc + av * au;
                let qcc = 0.5 * (au * au - g.drr);
                d2[k] += gv * (c[0] * qrr + c[1] * qrc + c[2] * qcc);
                d3[k] += gv * (c[3] * qrr + c[4] * qrc + c[5] * qcc);
                d4[k] += gv * (c[6] * qrr + c[7] * qrc + c[8] * qcc);
            }
        } else {
            for k in 0..m.len() {
                let cf = (lo + k) as f64;
                let vd = vd0 + dvdc * cf;
                let ud = ud0 + dudc * cf;
                let chi2 = g.dcc * vd * vd + g.drr * ud * ud - 2.0 * g.drc * vd * ud;
                m[k] += g.pn * E::eval(chi2);
            }
        }
    }
}

/// Accumulate one observation: `image`, `weight` row-major `nrow × ncol` (a trailing partial
/// row is ignored); model flux `flux`. With `DERIV` the normal equations are filled too;
/// without, only `χ²` and the S/N sums. Pixels with `weight <= 0` are skipped.
///
/// Uses the fast kernel for V1 ([`KernelImpl::global`]) and the oracle otherwise.
#[allow(clippy::too_many_arguments)]
pub fn accumulate<E: Eval, const DERIV: bool>(
    gs: &[KGauss],
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    flux: f64,
    scratch: &mut Scratch,
    acc: &mut Accum,
) {
    accumulate_with::<E, DERIV>(
        KernelImpl::global(),
        gs,
        jac,
        image,
        weight,
        ncol,
        flux,
        scratch,
        acc,
    )
}

/// Which implementation of [`accumulate`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelImpl {
    /// The scalar oracle (any [`Eval`]).
    Scalar,
    /// The fast kernel compiled for the baseline target (V1; the oracle for other evaluations).
    Portable,
    /// The fast kernel compiled with AVX2 and FMA (V1; the oracle for other evaluations). Only
    /// constructed by [`KernelImpl::avx2_fma`] after checking the CPU.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma(Avx2Token),
}

/// Proof that the CPU has AVX2 and FMA (only [`KernelImpl::avx2_fma`] makes one).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avx2Token(());

impl KernelImpl {
    /// AVX2+FMA when this CPU has both.
    pub fn avx2_fma() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Some(KernelImpl::Avx2Fma(Avx2Token(())));
            }
        }
        None
    }

    /// The fastest implementation this CPU supports.
    pub fn detect() -> Self {
        Self::avx2_fma().unwrap_or(KernelImpl::Portable)
    }

    /// The implementation [`accumulate`] uses ([`KernelImpl::detect`], chosen once).
    pub fn global() -> Self {
        static K: OnceLock<KernelImpl> = OnceLock::new();
        *K.get_or_init(KernelImpl::detect)
    }

    /// Every implementation available on this CPU (the oracle first).
    pub fn all() -> Vec<Self> {
        let mut v = vec![KernelImpl::Scalar, KernelImpl::Portable];
        v.extend(Self::avx2_fma());
        v
    }

    /// `"scalar"`, `"portable"` or `"avx2+fma"`.
    pub fn name(&self) -> &'static str {
        match self {
            KernelImpl::Scalar => "scalar",
            KernelImpl::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            KernelImpl::Avx2Fma(_) => "avx2+fma",
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn fast_avx2<const DERIV: bool>(
    gs: &[KGauss],
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    flux: f64,
    scratch: &mut fast::FastScratch,
    acc: &mut Accum,
) {
    fast::accumulate::<fast::Fused, DERIV>(gs, jac, image, weight, ncol, flux, scratch, acc)
}

#[allow(clippy::too_many_arguments)]
fn fast_portable<const DERIV: bool>(
    gs: &[KGauss],
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    flux: f64,
    scratch: &mut fast::FastScratch,
    acc: &mut Accum,
) {
    fast::accumulate::<fast::Plain, DERIV>(gs, jac, image, weight, ncol, flux, scratch, acc)
}

/// [`accumulate`] with a chosen implementation.
#[allow(clippy::too_many_arguments)]
pub fn accumulate_with<E: Eval, const DERIV: bool>(
    imp: KernelImpl,
    gs: &[KGauss],
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    flux: f64,
    scratch: &mut Scratch,
    acc: &mut Accum,
) {
    if !E::V1_HARD_CUT {
        return accumulate_scalar::<E, DERIV>(gs, jac, image, weight, ncol, flux, scratch, acc);
    }
    match imp {
        KernelImpl::Scalar => {
            accumulate_scalar::<E, DERIV>(gs, jac, image, weight, ncol, flux, scratch, acc)
        }
        KernelImpl::Portable => {
            fast_portable::<DERIV>(gs, jac, image, weight, ncol, flux, &mut scratch.fast, acc)
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx2Token` is only made by `KernelImpl::avx2_fma` after
        // `is_x86_feature_detected!` confirmed AVX2 and FMA on this CPU.
        KernelImpl::Avx2Fma(_) => unsafe {
            fast_avx2::<DERIV>(gs, jac, image, weight, ncol, flux, &mut scratch.fast, acc)
        },
    }
}

/// The scalar oracle of [`accumulate`] (any evaluation): per row, every Gaussian over its
/// padded analytic window with `E::eval`, then the per-pixel sums.
#[allow(clippy::too_many_arguments)]
pub fn accumulate_scalar<E: Eval, const DERIV: bool>(
    gs: &[KGauss],
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    flux: f64,
    scratch: &mut Scratch,
    acc: &mut Accum,
) {
    let nrow = image.len().checked_div(ncol).unwrap_or(0);
    for row in 0..nrow {
        scratch.reset(ncol, DERIV);
        row_pass::<E, DERIV>(gs, jac, row, ncol, scratch);
        let im = &image[row * ncol..(row + 1) * ncol];
        let wt = &weight[row * ncol..(row + 1) * ncol];
        for c in 0..ncol {
            let w = wt[c];
            if w <= 0.0 {
                continue;
            }
            let mu = scratch.m[c];
            let model = flux * mu;
            let diff = model - im[c];
            acc.chi2 += w * diff * diff;
            acc.s2n_numer += im[c] * model * w;
            acc.s2n_denom += model * model * w;
            acc.npix += 1;
            if DERIV {
                let dv = [
                    flux * scratch.d[0][c],
                    flux * scratch.d[1][c],
                    flux * scratch.d[2][c],
                    flux * scratch.d[3][c],
                    flux * scratch.d[4][c],
                    mu,
                ];
                for i in 0..6 {
                    let wdi = w * dv[i];
                    acc.jtr[i] += wdi * diff;
                    for j in i..6 {
                        acc.jtj[i][j] += wdi * dv[j];
                    }
                }
            }
        }
    }
    if DERIV {
        for i in 0..6 {
            for j in 0..i {
                acc.jtj[i][j] = acc.jtj[j][i];
            }
        }
    }
}

/// Render the prepared model with flux `flux` into `out` (row-major `nrow × ncol`).
pub fn render<E: Eval>(
    gs: &[KGauss],
    jac: &Jacobian,
    nrow: usize,
    ncol: usize,
    flux: f64,
    out: &mut [f64],
) {
    let mut s = Scratch::default();
    for row in 0..nrow {
        s.reset(ncol, false);
        row_pass::<E, false>(gs, jac, row, ncol, &mut s);
        for c in 0..ncol {
            out[row * ncol + c] = flux * s.m[c];
        }
    }
}
