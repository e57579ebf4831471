//! The per-object fitting sequence of ngmix v1.3.5's `Bootstrapper` as ngmixer drives it:
//! PSF fits with random restarts, PSF template fluxes, guesses, max-likelihood fits with
//! retries, and the round-model S/N.

use rand_core::Rng;

use crate::error::{GMixError, GResult};
use crate::fitting::admom::{admom_ntry, AdmomConfig};
use crate::fitting::em::{fit_em_ntry, EmConfig};
use crate::fitting::kernel::{self, Eval, ModelSpec, V1};
use crate::fitting::lm::{LmPars, CDEF, PDEF};
use crate::fitting::maxlike::{fit_max, LmPrior, MaxLikeResult};
use crate::fitting::psf::{fit_lm_psf, LmPsfModel, PSF_LM_DEFAULT};
use crate::gmix::shape::{round_factor, Shape};
use crate::gmix::GMix;
use crate::obs::{MultiBandObs, Observation, PsfFitInfo};
use crate::priors::LOWVAL;
use crate::rng::uniform_range;

/// ngmix `BOOT_S2N_LOW`.
pub const BOOT_S2N_LOW: i32 = 1 << 0;
/// ngmix `BOOT_ROUND_CONVOLVE_FAIL`.
pub const BOOT_ROUND_CONVOLVE_FAIL: i32 = 1 << 4;
/// ngmix `BOOT_WEIGHTS_LOW`.
pub const BOOT_WEIGHTS_LOW: i32 = 1 << 5;

/// Template-flux flags (ngmix `fitting.py`).
pub const TF_BAD_VAR: i32 = 1 << 0;
/// Division by zero in the template flux.
pub const TF_DIV_ZERO: i32 = 1 << 9;

/// The PSF model of `psf_pars.model`, with the settings of its fitter family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PsfFitMethod {
    /// EM with `n` Gaussians (`em1`..`em3`); settings in [`PsfFitConfig::em`].
    Em(usize),
    /// Levenberg–Marquardt fit of `gauss`, `turb` or `coellip<n>` ([`crate::fitting::psf`]).
    Lm {
        /// The model.
        model: LmPsfModel,
        /// LM settings (ngmix v1.3.5 PSF defaults updated by `psf_pars.fit_pars`).
        lm: LmPars,
    },
    /// Adaptive moments (ngmix `am`: `AMRunner`, a unit-flux Gaussian); not nameable in
    /// ngmixer's configs, available through [`PsfFitMethod::parse`].
    Am,
}

impl PsfFitMethod {
    /// Parse a model name (`em1`..`em3`, `gauss`, `turb`, `coellip1`..`coellip4`, `am`); LM
    /// models get ngmix's PSF defaults [`PSF_LM_DEFAULT`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "em1" => Some(Self::Em(1)),
            "em2" => Some(Self::Em(2)),
            "em3" => Some(Self::Em(3)),
            "am" => Some(Self::Am),
            _ => LmPsfModel::parse(name).map(|model| Self::Lm {
                model,
                lm: PSF_LM_DEFAULT,
            }),
        }
    }

    /// Number of Gaussians of the fitted PSF (`psf_fit_pars` has 6 numbers each).
    pub fn ngauss(&self) -> usize {
        match self {
            Self::Em(n) => *n,
            Self::Lm { model, .. } => model.ngauss(),
            Self::Am => 1,
        }
    }
}

/// PSF fitting settings (`psf_pars` plus `min_psf_model_s2n`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsfFitConfig {
    /// The model.
    pub model: PsfFitMethod,
    /// Random restarts.
    pub ntry: usize,
    /// EM settings (v1.3.5 bootstrap defaults updated by `fit_pars`).
    pub em: EmConfig,
    /// Minimum PSF-fit S/N, where the fitter provides one.
    pub min_s2n: Option<f64>,
}

/// Fit the PSF of one observation (ngmix v1.3.5 `Bootstrapper._fit_one_psf` with ngmixer's
/// `Tguess` and `psf_norm` keys): EM, LM ([`fit_lm_psf`]) or adaptive moments, with up to
/// `cfg.ntry` random restarts drawn from `rng`. On success the mixture is stored on the PSF
/// observation with its total flux set to the PSF image sum (`psf_norm`).
///
/// LM fits report `s2n = flux / flux_err` (ngmixer's `psf_model_s2n`); with `cfg.min_s2n`
/// a fit below it gets [`BOOT_S2N_LOW`] and no mixture (ngmix `fit_psfs(min_s2n=...)`). EM and
/// adaptive-moment results carry no S/N. A failed fit keeps the fitter's flags (1 for a range
/// error, which ngmix would raise).
pub fn fit_one_psf<R: Rng + ?Sized>(
    obs: &mut Observation,
    cfg: &PsfFitConfig,
    rng: &mut R,
) -> PsfFitInfo {
    let Some(psf) = obs.psf.as_deref_mut() else {
        return PsfFitInfo {
            flags: 1,
            s2n: None,
        };
    };
    let (nrow, ncol) = psf.dims();
    let tguess = psf.psf_meta.tguess;
    let fail = |flags: i32| PsfFitInfo { flags, s2n: None };
    let (info, gmix) = match cfg.model {
        PsfFitMethod::Em(ngauss) => {
            let res = fit_em_ntry(
                psf.image_slice(),
                nrow,
                ncol,
                &psf.jacobian,
                ngauss,
                tguess,
                cfg.ntry,
                &cfg.em,
                rng,
            );
            match res {
                Ok(r) if r.flags == 0 => match r.gmix_flux_units() {
                    Some(gm) => (fail(0), Some(gm)),
                    None => (fail(1), None),
                },
                Ok(r) => (fail(r.flags as i32), None),
                Err(_) => (fail(1), None),
            }
        }
        PsfFitMethod::Lm { model, lm } => {
            match fit_lm_psf(&*psf, model, tguess, cfg.ntry, &lm, rng) {
                Ok(fit) if fit.flags() == 0 => {
                    let s2n = fit.s2n();
                    match (fit.gmix(), cfg.min_s2n, s2n) {
                        (Err(_), _, _) => (fail(1), None),
                        // ngmix `fit_psfs(min_s2n=...)`: flags BOOT_S2N_LOW, the mixture dropped
                        (Ok(_), Some(min), Some(s)) if s < min => (
                            PsfFitInfo {
                                flags: BOOT_S2N_LOW,
                                s2n,
                            },
                            None,
                        ),
                        (Ok(gm), _, _) => (PsfFitInfo { flags: 0, s2n }, Some(gm)),
                    }
                }
                Ok(fit) => (fail(fit.flags()), None),
                Err(_) => (fail(1), None),
            }
        }
        PsfFitMethod::Am => {
            let res = admom_ntry(
                psf.image_slice(),
                psf.weight_slice(),
                nrow,
                ncol,
                &psf.jacobian,
                tguess,
                cfg.ntry,
                &AdmomConfig::default(),
                rng,
            );
            match res {
                Ok((r, _)) if r.flags == 0 => match r.gmix() {
                    Ok(gm) => (fail(0), Some(gm)),
                    Err(_) => (fail(1), None),
                },
                Ok((r, _)) => (fail(r.flags as i32), None),
                Err(_) => (fail(1), None),
            }
        }
    };
    psf.gmix = match (info.flags, gmix) {
        (0, Some(mut gm)) => {
            gm.set_flux(psf.psf_meta.psf_norm);
            Some(gm)
        }
        _ => None,
    };
    psf.fit_info = Some(info);
    info
}

/// Fit all PSFs (ngmix `fit_psfs`, failed epochs skipped). Returns the observations whose PSF
/// fit succeeded, per band; a range error when no PSF fit succeeded at all or a band has no
/// epoch left (ngmixer's `BootPSFFailure`).
pub fn fit_psfs<R: Rng + ?Sized>(
    mb: &mut MultiBandObs,
    cfg: &PsfFitConfig,
    rng: &mut R,
) -> GResult<MultiBandObs> {
    let mut out = Vec::with_capacity(mb.nband());
    let mut ntot = 0;
    for list in &mut mb.bands {
        let mut good = Vec::new();
        for o in list.iter_mut() {
            if o.flags != 0 {
                continue;
            }
            let info = fit_one_psf(o, cfg, rng);
            if info.flags == 0 {
                good.push(o.clone());
                ntot += 1;
            }
        }
        out.push(good);
    }
    if ntot == 0 {
        return Err(GMixError::Fatal("no psf fits succeeded"));
    }
    if out.iter().any(|l| l.is_empty()) {
        return Err(GMixError::Fatal("psf fitting failed - a band has no obs"));
    }
    Ok(MultiBandObs::new(out))
}

/// PSF template flux of one band (ngmix `TemplateFluxFitter` with `do_psf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsfFlux {
    /// Flags (0 = ok).
    pub flags: i32,
    /// Flux.
    pub flux: f64,
    /// Flux error.
    pub flux_err: f64,
}

fn render_exact(gm: &GMix, obs: &Observation, out: &mut Vec<f64>) {
    let (nrow, ncol) = obs.dims();
    out.clear();
    out.reserve(nrow * ncol);
    // ngmix v1.3.5 `make_image`: libm exp, no cut-off, no area factor
    let j = &obs.jacobian;
    for r in 0..nrow {
        for c in 0..ncol {
            let (v, u) = j.vu(r as f64, c as f64);
            out.push(gm.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>());
        }
    }
}

/// The linear PSF-template flux of one band over all its epochs.
pub fn psf_flux_band(list: &[Observation], normalize_psf: bool) -> GResult<PsfFlux> {
    if list.is_empty() {
        return Err(GMixError::Fatal("no epochs for band"));
    }
    let mut models = Vec::with_capacity(list.len());
    for o in list {
        let mut gm = o
            .psf_gmix()
            .ok_or(GMixError::Fatal("psf not fitted"))?
            .clone();
        if normalize_psf {
            gm.set_flux(1.0);
        }
        let mut m = Vec::new();
        render_exact(&gm, o, &mut m);
        models.push(m);
    }
    let (mut xcorr, mut msq) = (0.0, 0.0);
    let mut totpix = 0usize;
    for (o, m) in list.iter().zip(&models) {
        for ((&mv, &im), &w) in m.iter().zip(o.image_slice()).zip(o.weight_slice()) {
            xcorr += mv * im * w;
            msq += mv * mv * w;
            if w > 0.0 {
                totpix += 1;
            }
        }
    }
    let mut flags = 0;
    if msq == 0.0 {
        return Ok(PsfFlux {
            flags: TF_DIV_ZERO,
            flux: PDEF,
            flux_err: CDEF,
        });
    }
    let flux = xcorr / msq;
    let mut chi2 = 0.0;
    // second pass: the template re-scaled to total flux `flux · norm` (its flux is `norm`)
    for (o, m) in list.iter().zip(&models) {
        for ((&mv, &im), &w) in m.iter().zip(o.image_slice()).zip(o.weight_slice()) {
            let d = mv * flux - im;
            chi2 += d * d * w;
        }
    }
    let mut flux_err = CDEF;
    if totpix == 1 {
        flags |= TF_DIV_ZERO;
    } else {
        let arg = chi2 / msq / (totpix as f64 - 1.0);
        if arg >= 0.0 {
            flux_err = arg.sqrt();
        } else {
            flags |= TF_BAD_VAR;
        }
    }
    Ok(PsfFlux {
        flags,
        flux,
        flux_err,
    })
}

/// Uniform in (-1, 1) (ngmix `srandu`).
fn srandu<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    uniform_range(rng, -1.0, 1.0)
}

/// ngmix `TFluxAndPriorGuesser`: centre and shape drawn from the prior, `T = psf_T (1 ± 0.1)`,
/// fluxes `psf_flux (1 ± 0.1)`; T and fluxes redrawn from the prior (up to 4 times) while the
/// guess has zero prior probability.
pub fn guess_tflux_prior<R: Rng + ?Sized, P: GuessPrior>(
    t: f64,
    fluxes: &[f64],
    prior: &P,
    rng: &mut R,
) -> Vec<f64> {
    let mut g = prior.draw(rng);
    g[4] = t * (1.0 + 0.1 * srandu(rng));
    for (b, f) in fluxes.iter().enumerate() {
        g[5 + b] = f * (1.0 + 0.1 * srandu(rng));
    }
    for _ in 0..4 {
        let bad = match prior.lnprob(&g) {
            Ok(l) => l <= LOWVAL,
            Err(_) => true,
        };
        if !bad {
            break;
        }
        let t = prior.draw(rng);
        g[4..].copy_from_slice(&t[4..]);
    }
    g
}

/// A prior that can draw guesses.
pub trait GuessPrior: LmPrior {
    /// One draw of the full parameter vector.
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64>;
}

impl LmPrior for crate::priors::PriorSimpleSep {
    fn nrows(&self) -> usize {
        self.n_fdiff()
    }
    fn fill_fdiff(&self, pars: &[f64], out: &mut [f64]) -> GResult<usize> {
        crate::priors::PriorSimpleSep::fill_fdiff(self, pars, out)
    }
    fn lnprob(&self, pars: &[f64]) -> GResult<f64> {
        crate::priors::PriorSimpleSep::lnprob(self, pars)
    }
}

impl GuessPrior for crate::priors::PriorSimpleSep {
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        self.sample(rng)
    }
}

/// ngmix `ParsGuesser` (linear scaling): centre `± width`, shape sheared by `± width`
/// (after shrinking |g| to at most 0.8), other parameters `× (1 ± width)`.
pub fn guess_from_pars<R: Rng + ?Sized>(
    pars: &[f64],
    widths: Option<&[f64]>,
    rng: &mut R,
) -> Vec<f64> {
    let np = pars.len();
    let default: Vec<f64> = (0..np).map(|i| if i < 2 { 0.02 } else { 0.1 }).collect();
    let w = widths.unwrap_or(&default);
    let mut g = vec![0.0; np];
    g[0] = pars[0] + w[0] * srandu(rng);
    g[1] = pars[1] + w[1] * srandu(rng);
    let (mut g1, mut g2) = (pars[2], pars[3]);
    let gtot = (g1 * g1 + g2 * g2).sqrt();
    if gtot > 0.8 {
        g1 *= 0.8 / gtot;
        g2 *= 0.8 / gtot;
    }
    let shape = Shape { g1, g2 };
    let mut tries = 0;
    loop {
        let s1 = w[2] * srandu(rng);
        let s2 = w[3] * srandu(rng);
        tries += 1;
        if let Ok(s) = shape.sheared(s1, s2) {
            g[2] = s.g1;
            g[3] = s.g2;
            break;
        }
        if tries > 1000 {
            g[2] = g1;
            g[3] = g2;
            break;
        }
    }
    for i in 4..np {
        g[i] = pars[i] * (1.0 + w[i] * srandu(rng));
    }
    g
}

/// Up to `ntry` LM fits from new guesses, the first success wins (ngmix `MaxRunner`).
/// `Err` when a guess is outside the model's domain (ngmix raises there).
pub fn fit_max_ntry<E: Eval, P: LmPrior>(
    obs: &MultiBandObs,
    spec: &ModelSpec,
    prior: Option<&P>,
    lm: &LmPars,
    ntry: usize,
    mut guesser: impl FnMut() -> Vec<f64>,
) -> GResult<MaxLikeResult> {
    let mut last = None;
    for _ in 0..ntry.max(1) {
        let guess = guesser();
        let res = fit_max::<E, P>(obs, spec, prior, &guess, lm)?;
        let ok = res.flags == 0;
        last = Some(res);
        if ok {
            break;
        }
    }
    last.ok_or(GMixError::Fatal("no fit attempted"))
}

/// Round-model statistics (ngmix `set_round_s2n`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundResult {
    /// Flags (`BOOT_*`).
    pub flags: i32,
    /// S/N of the round model.
    pub s2n_r: f64,
    /// Round T.
    pub t_r: f64,
    /// Weight-averaged T of the round PSFs.
    pub psf_t_r: f64,
}

/// S/N of the round version of the best fit: `sqrt(Σ_epochs Σ m² w)` for the model made round
/// (`g = 0`, `T → T (1-g²)/(1+g²)`) convolved with the round PSF.
pub fn round_s2n(obs: &MultiBandObs, spec: &ModelSpec, pars: &[f64]) -> RoundResult {
    let t_r = pars[4] * round_factor(pars[2], pars[3]);
    let mut out = RoundResult {
        flags: 0,
        s2n_r: -9999.0,
        t_r,
        psf_t_r: -9999.0,
    };
    let (mut s2n_sum, mut psf_t_sum, mut wsum) = (0.0, 0.0, 0.0);
    let mut gs = Vec::new();
    for (b, list) in obs.bands.iter().enumerate() {
        let bp = [pars[0], pars[1], 0.0, 0.0, t_r];
        for o in list {
            let Some(psf) = o.psf_gmix() else { continue };
            let Ok(psf_round) = psf.make_round(false) else {
                out.flags |= BOOT_ROUND_CONVOLVE_FAIL;
                return out;
            };
            if kernel::prepare(
                spec,
                &bp,
                &psf_round,
                V1::pixel_factor(&o.jacobian),
                &mut gs,
            )
            .is_err()
            {
                out.flags |= BOOT_ROUND_CONVOLVE_FAIL;
                return out;
            }
            let mut acc = kernel::Accum::default();
            let mut scratch = kernel::Scratch::default();
            let (_, ncol) = o.dims();
            kernel::accumulate::<V1, false>(
                &gs,
                &o.jacobian,
                o.image_slice(),
                o.weight_slice(),
                ncol,
                pars[5 + b],
                &mut scratch,
                &mut acc,
            );
            s2n_sum += acc.s2n_denom;
            let w: f64 = o.weight.sum();
            psf_t_sum += w * psf_round.t();
            wsum += w;
        }
    }
    if !(s2n_sum > 0.0) {
        out.flags |= BOOT_S2N_LOW;
    } else if !(wsum > 0.0) {
        out.flags |= BOOT_WEIGHTS_LOW;
    } else {
        out.s2n_r = s2n_sum.sqrt();
        out.psf_t_r = psf_t_sum / wsum;
    }
    out
}
