//! Adaptive moments (ngmix `admom`): iterate a Gaussian weight to the second moments of the
//! weighted image.
//!
//! Two flavours, selected by [`AdmomVariant`]:
//!
//! | | [`AdmomVariant::V1`] (ngmix v1.3.5, default) | [`AdmomVariant::V2`] (ngmix 2.4.2, `ref/ngmix/data/admom.json`) |
//! |---|---|---|
//! | weight | `pnorm exp(-chi2/2)` for `0 <= chi2 < 25` (accurate exp, no pixel area) | `pnorm exp5_smooth(-chi2/2) area`, apodized for `20 < chi2 < 25` |
//! | `numiter` | index of the last iteration (`i`); so `maxiter` is never reported and a non-converged run ends with `flags = 0x8` from the result step | `i + 1`; `MAXITER` (0x20) when it reaches `maxiter` |
//! | sums | 6 (+ the `chi2²` sum, extra here) | 7, `rho4 = Σ w I chi2² / Σ w I` |
//! | failed-value sentinels | `-9999` / `9999` | NaN |
//! | result extras | `e_err_r = 2/s2n` | `flux`, `flux_err`, `rho4_err`, per-quantity flags |
//!
//! Iteration (both): weighted centroid (abort if it moves more than `shiftmax` from the start),
//! weighted second moments about it, convergence when `|Δe1|, |Δe2| < etol` and
//! `|T/T_old - 1| < Ttol`; otherwise the weight covariance is replaced by the "deweighted"
//! moments `(I⁻¹ - W⁻¹)⁻¹`. Only pixels with weight > 0 are used.
//!
//! Flag bits are the same numbers in both versions: [`ADMOM_SHIFT`] 0x2, [`ADMOM_FAINT`] 0x4,
//! [`ADMOM_SMALL`] 0x8, [`ADMOM_DET`] 0x10, [`ADMOM_MAXIT`] 0x20, [`ADMOM_NONPOS_VAR`] 0x40;
//! 2.4.2 adds [`ADMOM_RANGE_ERROR`] 0x80 and [`ADMOM_NONPOS_SHAPE_VAR`] 0x100.

use crate::error::{GMixError, GResult};
use crate::gmix::fastexp::{apodize, exp5_smooth, expd_fmath};
use crate::gmix::gauss::LOW_DETVAL;
use crate::gmix::models::{Model, SimpleKind};
use crate::gmix::shape::e1e2_to_g1g2;
use crate::gmix::{GMix, Gauss2D, Jacobian};

/// Centre shifted more than `shiftmax` (`CEN_SHIFT`).
pub const ADMOM_SHIFT: u32 = 0x2;
/// Weighted flux `<= 0` (`NONPOS_FLUX`).
pub const ADMOM_FAINT: u32 = 0x4;
/// `T <= 0` (`NONPOS_SIZE`).
pub const ADMOM_SMALL: u32 = 0x8;
/// Determinant too low (`LOW_DET`).
pub const ADMOM_DET: u32 = 0x10;
/// Maximum number of iterations reached (`MAXITER`).
pub const ADMOM_MAXIT: u32 = 0x20;
/// Non-positive variance (v1.3.5 "zero var"; 2.4.2 `NONPOS_VAR`).
pub const ADMOM_NONPOS_VAR: u32 = 0x40;
/// A range error evaluating the weight (2.4.2 `GMIX_RANGE_ERROR`).
pub const ADMOM_RANGE_ERROR: u32 = 0x80;
/// Non-finite shape errors (2.4.2 `NONPOS_SHAPE_VAR`).
pub const ADMOM_NONPOS_SHAPE_VAR: u32 = 0x100;

/// Which ngmix adaptive moments to reproduce (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdmomVariant {
    /// ngmix v1.3.5.
    #[default]
    V1,
    /// ngmix 2.4.2.
    V2,
}

/// Adaptive-moment settings (ngmix defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmomConfig {
    /// Which ngmix to reproduce.
    pub variant: AdmomVariant,
    /// Maximum number of iterations (200).
    pub maxiter: usize,
    /// Largest allowed centre shift from the guess, sky units (5).
    pub shiftmax: f64,
    /// Absolute tolerance on e1, e2 (1e-5).
    pub etol: f64,
    /// Relative tolerance on T (1e-3).
    pub ttol: f64,
    /// Only iterate the centre, keeping the weight's covariance (2.4.2 `cenonly`).
    pub cenonly: bool,
}

impl Default for AdmomConfig {
    fn default() -> Self {
        Self {
            variant: AdmomVariant::V1,
            maxiter: 200,
            shiftmax: 5.0,
            etol: 1.0e-5,
            ttol: 1.0e-3,
            cenonly: false,
        }
    }
}

impl AdmomConfig {
    /// The ngmix 2.4.2 defaults (same numbers, [`AdmomVariant::V2`]).
    pub fn v2() -> Self {
        Self {
            variant: AdmomVariant::V2,
            ..Self::default()
        }
    }
}

/// The result of [`admom`], with the fields of ngmix's result dict.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmomResult {
    /// Which variant produced it.
    pub variant: AdmomVariant,
    /// Flags (0 = ok).
    pub flags: u32,
    /// Iterations (see the module docs for the v1.3.5 convention).
    pub numiter: usize,
    /// Pixels used in the last sums.
    pub npix: usize,
    /// Σ weight of the last moment sums.
    pub wsum: f64,
    /// `Σ w I F_i` with `F = [v, u, u²-v², 2uv, u²+v², 1, chi2²]` (u, v about the centre for
    /// 2..=4, absolute for 0, 1).
    pub sums: [f64; 7],
    /// `Σ w² var F_i F_j`.
    pub sums_cov: [[f64; 7]; 7],
    /// `[v, u, M1 = icc-irr, M2 = 2 irc, T, flux_mean]` of the converged weight.
    pub pars: [f64; 6],
    /// `T` (= `pars[4]`).
    pub t: f64,
    /// Error on T.
    pub t_err: f64,
    /// Flags of T (2.4.2).
    pub t_flags: u32,
    /// `Σ w I / Σ w`.
    pub flux_mean: f64,
    /// Weighted flux normalised to the weight's peak (2.4.2): `sums[5] / (area · norm · wsum)`.
    pub flux: f64,
    /// Error on `flux` (2.4.2).
    pub flux_err: f64,
    /// Flags of the flux (2.4.2).
    pub flux_flags: u32,
    /// S/N: `sums[5] / sqrt(sums_cov[5][5])`.
    pub s2n: f64,
    /// Kurtosis `Σ w I chi2² / Σ w I` (2 for a Gaussian).
    pub rho4: f64,
    /// Error on rho4 (2.4.2).
    pub rho4_err: f64,
    /// Flags of rho4 (2.4.2).
    pub rho4_flags: u32,
    /// `e1 = M1 / T`.
    pub e1: f64,
    /// `e2 = M2 / T`.
    pub e2: f64,
    /// Error on e1.
    pub e1err: f64,
    /// Error on e2.
    pub e2err: f64,
    /// `[e1, e2]`.
    pub e: [f64; 2],
    /// `[e1err, e2err]`.
    pub e_err: [f64; 2],
    /// `diag(e1err², e2err²)`.
    pub e_cov: [[f64; 2]; 2],
    /// v1.3.5's round-object shape error `2 / s2n`.
    pub e_err_r: f64,
    /// The final weight Gaussian (ngmix leaves it in the guess mixture it was given).
    pub weight: Gauss2D,
}

impl AdmomResult {
    /// The best-fit Gaussian with unit flux (ngmix `get_gmix`).
    ///
    /// # Errors
    /// [`GMixError::Range`] if the fit failed (`flags != 0`) or the shape is out of range.
    pub fn gmix(&self) -> GResult<GMix> {
        if self.flags != 0 {
            return Err(GMixError::Range("admom: cannot create gmix, fit failed"));
        }
        let p = &self.pars;
        let (g1, g2) = e1e2_to_g1g2(p[2] / p[4], p[3] / p[4])?;
        Model::Simple(SimpleKind::Gauss).gmix(&[p[0], p[1], g1, g2, p[4], 1.0])
    }
}

/// A pixel with positive weight.
#[derive(Debug, Clone, Copy)]
struct Pix {
    v: f64,
    u: f64,
    val: f64,
    ierr: f64,
}

/// The evolving weight (ngmix keeps it in the guess's gauss2d record).
#[derive(Debug, Clone, Copy)]
struct Wt {
    p: f64,
    row: f64,
    col: f64,
    irr: f64,
    irc: f64,
    icc: f64,
    det: f64,
    // set by `set_norms`
    drr: f64,
    drc: f64,
    dcc: f64,
    norm: f64,
    pnorm: f64,
}

impl Wt {
    fn from_gauss(g: &Gauss2D) -> Self {
        Self {
            p: g.p,
            row: g.row,
            col: g.col,
            irr: g.irr,
            irc: g.irc,
            icc: g.icc,
            det: g.det,
            drr: g.drr,
            drc: g.drc,
            dcc: g.dcc,
            norm: g.norm,
            pnorm: g.pnorm,
        }
    }

    /// ngmix `gauss2d_set_norm`.
    fn set_norms(&mut self) -> GResult<()> {
        let g = Gauss2D::new(self.p, self.row, self.col, self.irr, self.irc, self.icc)?;
        self.det = g.det;
        self.drr = g.drr;
        self.drc = g.drc;
        self.dcc = g.dcc;
        self.norm = g.norm;
        self.pnorm = g.pnorm;
        Ok(())
    }

    fn gauss(&self) -> Gauss2D {
        Gauss2D {
            p: self.p,
            row: self.row,
            col: self.col,
            irr: self.irr,
            irc: self.irc,
            icc: self.icc,
            det: self.det,
            drr: self.drr,
            drc: self.drc,
            dcc: self.dcc,
            norm: self.norm,
            pnorm: self.pnorm,
        }
    }

    /// ngmix `gmix_eval_pixel_fast` for this single Gaussian.
    #[inline]
    fn eval(&self, px: &Pix, variant: AdmomVariant, area: f64) -> f64 {
        let vdiff = px.v - self.row;
        let udiff = px.u - self.col;
        let chi2 =
            self.dcc * vdiff * vdiff + self.drr * udiff * udiff - 2.0 * self.drc * vdiff * udiff;
        if !(0.0..25.0).contains(&chi2) {
            return 0.0;
        }
        match variant {
            AdmomVariant::V1 => self.pnorm * expd_fmath(-0.5 * chi2),
            AdmomVariant::V2 => {
                let mut val = self.pnorm * exp5_smooth(-0.5 * chi2) * area;
                if chi2 > 20.0 {
                    val *= apodize(chi2);
                }
                val
            }
        }
    }
}

/// Running sums of one pass.
#[derive(Debug, Clone, Copy)]
struct Sums {
    npix: usize,
    wsum: f64,
    sums: [f64; 7],
    cov: [[f64; 7]; 7],
}

impl Sums {
    fn zero() -> Self {
        Self {
            npix: 0,
            wsum: 0.0,
            sums: [0.0; 7],
            cov: [[0.0; 7]; 7],
        }
    }
}

fn censums(wt: &Wt, pixels: &[Pix], variant: AdmomVariant, area: f64, s: &mut Sums) {
    for px in pixels {
        let weight = wt.eval(px, variant, area);
        let wdata = weight * px.val;
        s.npix += 1;
        s.sums[0] += wdata * px.v;
        s.sums[1] += wdata * px.u;
        s.sums[5] += wdata;
    }
}

fn momsums(wt: &Wt, pixels: &[Pix], variant: AdmomVariant, area: f64, s: &mut Sums) {
    let vcen = wt.row;
    let ucen = wt.col;
    for px in pixels {
        let weight = wt.eval(px, variant, area);
        let var = 1.0 / (px.ierr * px.ierr);
        let vmod = px.v - vcen;
        let umod = px.u - ucen;
        let wdata = weight * px.val;
        let w2 = weight * weight;
        let chi2 = wt.dcc * vmod * vmod + wt.drr * umod * umod - 2.0 * wt.drc * vmod * umod;
        let f = [
            px.v,
            px.u,
            umod * umod - vmod * vmod,
            2.0 * vmod * umod,
            umod * umod + vmod * vmod,
            1.0,
            chi2 * chi2,
        ];
        s.wsum += weight;
        s.npix += 1;
        let w2var = w2 * var;
        for i in 0..7 {
            s.sums[i] += wdata * f[i];
            let a = w2var * f[i];
            for j in 0..7 {
                s.cov[i][j] += a * f[j];
            }
        }
    }
}

/// ngmix `deweight_moments`: the weight becomes `(I⁻¹ - W⁻¹)⁻¹`; `Err(())` on a low determinant.
fn deweight(wt: &mut Wt, irr: f64, irc: f64, icc: f64) -> Result<(), ()> {
    let detm = irr * icc - irc * irc;
    if detm <= LOW_DETVAL {
        return Err(());
    }
    let (wrr, wrc, wcc) = (wt.irr, wt.irc, wt.icc);
    let detw = wrr * wcc - wrc * wrc;
    if detw <= LOW_DETVAL {
        return Err(());
    }
    let idetw = 1.0 / detw;
    let idetm = 1.0 / detm;
    let nrr = icc * idetm - wcc * idetw;
    let ncc = irr * idetm - wrr * idetw;
    let nrc = -irc * idetm + wrc * idetw;
    let detn = nrr * ncc - nrc * nrc;
    if detn <= LOW_DETVAL {
        return Err(());
    }
    let idetn = 1.0 / detn;
    wt.irr = ncc * idetn;
    wt.icc = nrr * idetn;
    wt.irc = -nrc * idetn;
    wt.det = wt.irr * wt.icc - wt.irc * wt.irc;
    Ok(())
}

/// ngmix `get_ratio_error`: error on `a/b` (variance clipped at 0).
fn ratio_error(a: f64, b: f64, var_a: f64, var_b: f64, cov_ab: f64) -> f64 {
    let rsq = (a / b) * (a / b);
    let var = rsq * (var_a / (a * a) + var_b / (b * b) - 2.0 * cov_ab / (a * b));
    let var = if var < 0.0 { 0.0 } else { var };
    var.sqrt()
}

/// Run adaptive moments on `image` (`nrow × ncol`, row-major) with inverse-variance `weight`,
/// starting from the weight Gaussian `guess` (ngmix uses the first Gaussian of its guess
/// mixture; a unit-flux round Gaussian of the expected T is typical).
///
/// # Errors
/// [`GMixError::Fatal`] if the sizes do not match or no pixel has weight > 0 (ngmix raises at
/// observation creation); numerical failures are flags in the result.
pub fn admom(
    image: &[f64],
    weight: &[f64],
    nrow: usize,
    ncol: usize,
    jac: &Jacobian,
    guess: &Gauss2D,
    cfg: &AdmomConfig,
) -> GResult<AdmomResult> {
    if image.len() != nrow * ncol || weight.len() != nrow * ncol {
        return Err(GMixError::Fatal(
            "admom: image/weight size does not match nrow x ncol",
        ));
    }
    let mut pixels = Vec::with_capacity(image.len());
    for r in 0..nrow {
        for c in 0..ncol {
            let k = r * ncol + c;
            let w = weight[k];
            if w > 0.0 {
                let (v, u) = jac.vu(r as f64, c as f64);
                pixels.push(Pix {
                    v,
                    u,
                    val: image[k],
                    ierr: w.sqrt(),
                });
            }
        }
    }
    if pixels.is_empty() {
        return Err(GMixError::Fatal("admom: no weights > 0"));
    }
    Ok(run(&pixels, jac.area(), guess, cfg))
}

/// ngmix `Admom._generate_guess`: a unit-flux Gaussian weight with centre uniform within half
/// a pixel of the Jacobian centre, `g1, g2` uniform in ±0.3 and `T = tguess (1 ± 0.1)`.
///
/// # Errors
/// [`GMixError::Range`] for an invalid `tguess`.
pub fn admom_guess<R: rand_core::Rng + ?Sized>(
    tguess: f64,
    jac: &Jacobian,
    rng: &mut R,
) -> GResult<Gauss2D> {
    let scale = jac.scale();
    let row = urange(rng, -0.5 * scale, 0.5 * scale);
    let col = urange(rng, -0.5 * scale, 0.5 * scale);
    let g1 = urange(rng, -0.3, 0.3);
    let g2 = urange(rng, -0.3, 0.3);
    let t = tguess * (1.0 + urange(rng, -0.1, 0.1));
    let gm = Model::Simple(SimpleKind::Gauss).gmix(&[row, col, g1, g2, t, 1.0])?;
    Ok(gm[0])
}

/// ngmix v1.3.5 `AMRunner.go(ntry)`: up to `ntry` (at least one) runs of [`admom`], each from a
/// new [`admom_guess`] of `tguess`, stopping at the first with `flags == 0`. Returns the last
/// result and the number of tries.
///
/// # Errors
/// As [`admom`] and [`admom_guess`].
pub fn admom_ntry<R: rand_core::Rng + ?Sized>(
    image: &[f64],
    weight: &[f64],
    nrow: usize,
    ncol: usize,
    jac: &Jacobian,
    tguess: f64,
    ntry: usize,
    cfg: &AdmomConfig,
    rng: &mut R,
) -> GResult<(AdmomResult, usize)> {
    let ntry = ntry.max(1);
    let mut itry = 0;
    loop {
        let guess = admom_guess(tguess, jac, rng)?;
        let res = admom(image, weight, nrow, ncol, jac, &guess, cfg)?;
        itry += 1;
        if res.flags == 0 || itry == ntry {
            return Ok((res, itry));
        }
    }
}

#[inline]
fn urange<R: rand_core::Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    lo + (hi - lo) * u
}

/// The iteration (ngmix `admom_nb.admom`) followed by the result step (`get_result`).
fn run(pixels: &[Pix], area: f64, guess: &Gauss2D, cfg: &AdmomConfig) -> AdmomResult {
    let variant = cfg.variant;
    let v2 = variant == AdmomVariant::V2;
    let mut wt = Wt::from_gauss(guess);
    let roworig = wt.row;
    let colorig = wt.col;
    let unset = if v2 { f64::NAN } else { -9999.0 };
    let (mut e1old, mut e2old, mut told) = (unset, unset, unset);
    let mut flags = 0u32;
    let mut s = Sums::zero();
    let mut pars = [unset; 6];
    let mut rho4 = f64::NAN;
    let mut last_i = 0usize;
    for i in 0..cfg.maxiter {
        last_i = i;
        if wt.det < LOW_DETVAL {
            flags = ADMOM_DET;
            break;
        }
        if wt.set_norms().is_err() {
            // ngmix 2.4.2 catches the GMixRangeError; v1.3.5 cannot get here with det >= 1e-200
            flags = if v2 { ADMOM_RANGE_ERROR } else { ADMOM_DET };
            break;
        }
        s = Sums::zero();
        pars = [unset; 6];
        rho4 = f64::NAN;
        censums(&wt, pixels, variant, area, &mut s);
        if s.sums[5] <= 0.0 {
            flags = ADMOM_FAINT;
            break;
        }
        wt.row = s.sums[0] / s.sums[5];
        wt.col = s.sums[1] / s.sums[5];
        if (wt.row - roworig).abs() > cfg.shiftmax || (wt.col - colorig).abs() > cfg.shiftmax {
            flags = ADMOM_SHIFT;
            break;
        }
        s = Sums::zero();
        momsums(&wt, pixels, variant, area, &mut s);
        if s.sums[5] <= 0.0 {
            flags = ADMOM_FAINT;
            break;
        }
        let finv = 1.0 / s.sums[5];
        let m1 = s.sums[2] * finv;
        let m2 = s.sums[3] * finv;
        let t = s.sums[4] * finv;
        let irr = 0.5 * (t - m1);
        let icc = 0.5 * (t + m1);
        let irc = 0.5 * m2;
        if t <= 0.0 {
            flags = ADMOM_SMALL;
            break;
        }
        let e1 = (icc - irr) / t;
        let e2 = 2.0 * irc / t;
        if (e1 - e1old).abs() < cfg.etol
            && (e2 - e2old).abs() < cfg.etol
            && (t / told - 1.0).abs() < cfg.ttol
        {
            pars = [
                wt.row,
                wt.col,
                wt.icc - wt.irr,
                2.0 * wt.irc,
                wt.icc + wt.irr,
                1.0,
            ];
            rho4 = s.sums[6] / s.sums[5];
            break;
        }
        if !cfg.cenonly && deweight(&mut wt, irr, irc, icc).is_err() {
            flags = ADMOM_DET;
            break;
        }
        e1old = e1;
        e2old = e2;
        told = t;
    }
    let numiter = if v2 { last_i + 1 } else { last_i };
    if cfg.maxiter == 0 || numiter == cfg.maxiter {
        flags = ADMOM_MAXIT;
    }
    let numiter = if cfg.maxiter == 0 { 0 } else { numiter };
    let mut res = AdmomResult {
        variant,
        flags,
        numiter,
        npix: s.npix,
        wsum: s.wsum,
        sums: s.sums,
        sums_cov: s.cov,
        pars,
        t: f64::NAN,
        t_err: f64::NAN,
        t_flags: 0,
        flux_mean: unset,
        flux: f64::NAN,
        flux_err: f64::NAN,
        flux_flags: 0,
        s2n: unset,
        rho4: f64::NAN,
        rho4_err: f64::NAN,
        rho4_flags: 0,
        e1: f64::NAN,
        e2: f64::NAN,
        e1err: f64::NAN,
        e2err: f64::NAN,
        e: [unset; 2],
        e_err: if v2 { [f64::NAN; 2] } else { [9999.0; 2] },
        e_cov: if v2 {
            [[f64::NAN, 0.0], [0.0, f64::NAN]]
        } else {
            [[f64::NAN; 2]; 2]
        },
        e_err_r: f64::NAN,
        weight: wt.gauss(),
    };
    if v2 {
        result_v2(&mut res, area, wt.norm, rho4);
    } else {
        res.rho4 = rho4;
        result_v1(&mut res);
    }
    res
}

/// ngmix v1.3.5 `get_result`.
fn result_v1(res: &mut AdmomResult) {
    if res.flags != 0 {
        return;
    }
    let sums = res.sums;
    let cov = res.sums_cov;
    let flux_sum = sums[5];
    res.flux_mean = flux_sum / res.wsum;
    res.pars[5] = res.flux_mean;
    res.t = res.pars[4];
    if sums[5] > 0.0 {
        res.t_err = 4.0 * ratio_error(sums[4], sums[5], cov[4][4], cov[5][5], cov[4][5]);
    }
    if res.t > 0.0 {
        res.e = [res.pars[2] / res.t, res.pars[3] / res.t];
        res.e1 = res.e[0];
        res.e2 = res.e[1];
        res.e1err = 2.0 * ratio_error(sums[2], sums[4], cov[2][2], cov[4][4], cov[2][4]);
        res.e2err = 2.0 * ratio_error(sums[3], sums[4], cov[3][3], cov[4][4], cov[3][4]);
        if !res.e1err.is_finite() || !res.e2err.is_finite() {
            res.e1err = 9999.0;
            res.e2err = 9999.0;
            res.e_cov = [[9999.0, 0.0], [0.0, 9999.0]];
        } else {
            res.e_cov = [[res.e1err * res.e1err, 0.0], [0.0, res.e2err * res.e2err]];
        }
    } else {
        res.flags = ADMOM_SMALL;
    }
    let fvar_sum = cov[5][5];
    if fvar_sum > 0.0 {
        let flux_err = fvar_sum.sqrt();
        res.s2n = flux_sum / flux_err;
        res.e_err_r = 2.0 / res.s2n;
    } else {
        res.flags = ADMOM_NONPOS_VAR;
    }
}

/// ngmix 2.4.2 `get_result`.
fn result_v2(res: &mut AdmomResult, area: f64, wgt_norm: f64, rho4: f64) {
    let sums = res.sums;
    let cov = res.sums_cov;
    if res.flags == 0 {
        res.t = res.pars[4];
        res.rho4 = rho4;
        res.flux_mean = sums[5] / res.wsum;
        res.pars[5] = res.flux_mean;
        if res.t > LOW_DETVAL {
            let fnorm = area * wgt_norm * res.wsum;
            res.flux = sums[5] / fnorm;
            if cov[5][5] > 0.0 {
                res.flux_err = cov[5][5].sqrt() / fnorm;
                res.s2n = res.flux / res.flux_err;
            } else {
                res.flux_flags |= ADMOM_NONPOS_VAR;
            }
        } else {
            res.flux_flags |= ADMOM_SMALL;
        }
        if cov[4][4] > 0.0 && cov[5][5] > 0.0 {
            if sums[5] > 0.0 {
                res.t_err = 4.0 * ratio_error(sums[4], sums[5], cov[4][4], cov[5][5], cov[4][5]);
            } else {
                res.t_flags |= ADMOM_FAINT;
            }
        } else {
            res.t_flags |= ADMOM_NONPOS_VAR;
        }
        if cov[6][6] > 0.0 && cov[5][5] > 0.0 {
            if sums[5] > 0.0 {
                res.rho4 = sums[6] / sums[5];
                res.rho4_err = 4.0 * ratio_error(sums[6], sums[5], cov[6][6], cov[5][5], cov[6][5]);
            } else {
                res.rho4_flags |= ADMOM_FAINT;
            }
        } else {
            res.rho4_flags |= ADMOM_NONPOS_VAR;
        }
    } else {
        res.flux_flags |= res.flags;
        res.t_flags |= res.flags;
        res.rho4_flags |= res.flags;
    }
    if !(2..7).all(|i| cov[i][i] > 0.0) {
        res.flags |= ADMOM_NONPOS_VAR;
    }
    if res.flags == 0 {
        if sums[5] > 0.0 {
            if res.t > 0.0 {
                res.e = [res.pars[2] / res.t, res.pars[3] / res.t];
                res.e1 = res.e[0];
                res.e2 = res.e[1];
                res.e1err = 2.0 * ratio_error(sums[2], sums[4], cov[2][2], cov[4][4], cov[2][4]);
                res.e2err = 2.0 * ratio_error(sums[3], sums[4], cov[3][3], cov[4][4], cov[3][4]);
                if !res.e1err.is_finite() || !res.e2err.is_finite() {
                    res.e1err = f64::NAN;
                    res.e2err = f64::NAN;
                    res.e_err = [f64::NAN; 2];
                    res.e_cov = [[f64::NAN, 0.0], [0.0, f64::NAN]];
                    res.flags |= ADMOM_NONPOS_SHAPE_VAR;
                } else {
                    res.e_cov = [[res.e1err * res.e1err, 0.0], [0.0, res.e2err * res.e2err]];
                    res.e_err = [res.e1err, res.e2err];
                }
            } else {
                res.flags |= ADMOM_SMALL;
            }
        } else {
            res.flags |= ADMOM_FAINT;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_error_clips_negative_variance() {
        assert_eq!(ratio_error(1.0, 1.0, 0.0, 0.0, 1.0), 0.0);
        let e = ratio_error(2.0, 4.0, 0.04, 0.16, 0.0);
        // (a/b)^2 (va/a^2 + vb/b^2) = 0.25 * (0.01 + 0.01)
        assert!((e - (0.25f64 * 0.02).sqrt()).abs() < 1e-15);
    }
}
