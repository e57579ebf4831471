//! The composite exp+dev (`cm`) max-likelihood procedure of ngmix v1.3.5's
//! `CompositeBootstrapper.fit_max`, as ngmixer ran it.
//!
//! 1. Fit `exp` and then `dev` with the model prior (fresh guesses each, up to `ntry`
//!    attempts; either failing ends the procedure).
//! 2. `fracdev`: the model `(1 - f)·exp + f·dev` with the exp and dev best fits held fixed is
//!    linear in `f`. With a `fracdev` prior (ngmixer always has one, a 1-d [`GMixND`])
//!    `FracdevFitterMax` evaluates `ln L(f) + ln p(f)` on a grid (default
//!    `linspace(-1, 1.5, 26)`, non-finite values skipped, first maximum wins); with
//!    `use_fracdev_grid` that grid value is the answer (error 1.0), otherwise it seeds a
//!    Nelder–Mead maximisation (ngmix's `minimize_neldermead`: `maxfev = 4000`,
//!    `maxiter = 200`, relative `xtol = ftol = 1e-3`) whose error comes from the numerical
//!    second derivative with step `h = 1e-3`. Outside `-1 < f < 2` the log-probability is
//!    `-inf`. Without a prior `FracdevFitter` solves the linear least-squares problem.
//! 3. `fracdev` is clipped to `fracdev_range`, `TdByTe = T_dev / T_exp` to `TdByTe_range`.
//! 4. The composite model at that fixed `fracdev`, `TdByTe` is fitted (up to `ntry` attempts);
//!    when a guess is outside the model's domain (ngmix's `GMixRangeError`) `fracdev` is
//!    clipped to `[0, 1]` and the whole fit is retried, four attempts in all.
//!
//! The model images of step 2 are rendered as ngmix v1.3.5's `GMix.make_image`: the exact
//! exponential, no cut-off, per pixel centre (times the pixel factor of the [`Eval`] policy,
//! which is 1 for ngmix v1.3.5).
//!
//! Failures are returned as [`CmFailure`] values (ngmixer turns every one of them into
//! `GAL_FIT_FAILURE`); nothing here panics on input data.

use crate::error::GMixError;
use crate::fitting::boot::fit_max_ntry;
use crate::fitting::kernel::{Eval, ModelSpec};
use crate::fitting::lm::{LmPars, EIG_NOTFINITE};
use crate::fitting::maxlike::{LmPrior, MaxLikeResult};
use crate::gmix::models::{SimpleKind, Tables};
use crate::gmix::{GMix, Jacobian};
use crate::obs::MultiBandObs;
use crate::priors::GMixND;

/// Settings of the composite fit (ngmixer `max_pars` keys, the top-level `fracdev_grid` and
/// the `model_pars.cm.fracdev` prior).
#[derive(Debug, Clone, PartialEq)]
pub struct CmConfig {
    /// The 1-d `fracdev` prior; `None` selects ngmix's linear `FracdevFitter`.
    pub fracdev_prior: Option<GMixND>,
    /// Trial `fracdev` values (ngmix `fracdev_tests`, see [`linspace`]).
    pub fracdev_grid: Vec<f64>,
    /// `max_pars.use_fracdev_grid`: take the best grid value (error 1.0) instead of fitting.
    pub use_fracdev_grid: bool,
    /// `max_pars.fracdev_range`.
    pub fracdev_range: [f64; 2],
    /// `max_pars.TdByTe_range`.
    pub tdbyte_range: [f64; 2],
    /// Profile tables of the exp and dev components (ngmix v1 for ngmixer).
    pub tables: Tables,
}

impl Default for CmConfig {
    /// ngmix v1.3.5's defaults: no prior, grid `linspace(-1, 1.5, 26)`, no grid shortcut,
    /// `fracdev_range = [-2, 2]`, `TdByTe_range = [-1e9, 1e9]`, v1 tables.
    fn default() -> Self {
        Self {
            fracdev_prior: None,
            fracdev_grid: linspace(-1.0, 1.5, 26),
            use_fracdev_grid: false,
            fracdev_range: [-2.0, 2.0],
            tdbyte_range: [-1.0e9, 1.0e9],
            tables: Tables::V1,
        }
    }
}

pub use crate::math::linspace;

/// The stage of the procedure a guess is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmStage {
    /// The exp fit.
    Exp,
    /// The dev fit (an external guess has its T multiplied by the `TdByTe` guess).
    Dev,
    /// The final composite fit.
    Composite,
}

/// Why the composite procedure failed (all map to ngmixer's `GAL_FIT_FAILURE`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmFailure {
    /// The exp or dev fit ended with LM flags (ngmix `BootGalFailure`).
    SimpleFit {
        /// Which fit.
        stage: CmStage,
        /// The LM flags of the last attempt.
        flags: i32,
    },
    /// A model left its domain (ngmix `GMixRangeError`) in the exp/dev fits, while
    /// building the fracdev images, or in all four composite attempts.
    Range {
        /// Where.
        stage: CmStage,
        /// The error.
        err: GMixError,
    },
    /// Building the fracdev images failed for another reason (e.g. a PSF without a fit).
    FracdevSetup(GMixError),
    /// No grid value has a finite log-probability.
    FracdevGrid,
    /// The fracdev maximisation or its error failed (flags: 1 not converged, `EIG_NOTFINITE`).
    Fracdev {
        /// Flags.
        flags: i32,
    },
    /// The final composite fit ended with LM flags.
    Composite {
        /// The LM flags of the last attempt.
        flags: i32,
    },
}

impl std::fmt::Display for CmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CmFailure::SimpleFit { stage, flags } => {
                write!(f, "{stage:?} fit failed with flags {flags}")
            }
            CmFailure::Range { stage, err } => write!(f, "{stage:?}: {err}"),
            CmFailure::FracdevSetup(e) => write!(f, "fracdev images: {e}"),
            CmFailure::FracdevGrid => write!(f, "failed to fit fracdev: no finite grid value"),
            CmFailure::Fracdev { flags } => write!(f, "failed to fit fracdev: flags {flags}"),
            CmFailure::Composite { flags } => {
                write!(f, "composite fit failed with flags {flags}")
            }
        }
    }
}

impl std::error::Error for CmFailure {}

/// Outcome of the fracdev step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FracdevResult {
    /// 0 on success.
    pub flags: i32,
    /// Best `fracdev`.
    pub fracdev: f64,
    /// Its error (1.0 for the grid shortcut).
    pub fracdev_err: f64,
    /// Function evaluations (grid size for the grid shortcut, Nelder–Mead calls otherwise,
    /// 1 for the linear fit).
    pub nfev: usize,
}

/// The result of the composite procedure.
#[derive(Debug, Clone, PartialEq)]
pub struct CmResult {
    /// The final composite fit (flags 0).
    pub fit: MaxLikeResult,
    /// The `fracdev` the composite model was fitted with (clipped).
    pub fracdev: f64,
    /// `fracdev` before clipping.
    pub fracdev_noclip: f64,
    /// `fracdev` error.
    pub fracdev_err: f64,
    /// Evaluations of the fracdev step.
    pub fracdev_nfev: usize,
    /// `T_dev / T_exp`, clipped.
    pub tdbyte: f64,
    /// `T_dev / T_exp` before clipping.
    pub tdbyte_noclip: f64,
    /// The exp fit.
    pub exp: MaxLikeResult,
    /// The dev fit.
    pub dev: MaxLikeResult,
    /// Composite attempts that ended in a range error before the successful one.
    pub range_retries: usize,
}

impl CmResult {
    /// The composite model of the final fit.
    pub fn spec(&self, tables: Tables) -> ModelSpec {
        ModelSpec::cm(self.fracdev, self.tdbyte, tables)
    }
}

/// Result of [`nelder_mead`].
#[derive(Debug, Clone, PartialEq)]
pub struct NmResult {
    /// Best vertex.
    pub x: Vec<f64>,
    /// Lowest function value.
    pub fun: f64,
    /// Function evaluations.
    pub nfev: usize,
    /// Iterations.
    pub nit: usize,
    /// 0 converged, 1 `maxfev` reached, 2 `maxiter` reached.
    pub status: i32,
}

fn nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// numpy's `max` (NaN propagates).
fn np_max(it: impl Iterator<Item = f64>) -> f64 {
    let mut m = f64::NEG_INFINITY;
    for v in it {
        if v.is_nan() {
            return f64::NAN;
        }
        if v > m {
            m = v;
        }
    }
    m
}

/// Minimise `func` with ngmix v1.3.5's `minimize_neldermead` (scipy's Nelder–Mead with
/// tolerances relative to the best vertex): initial simplex steps `5 %` of each coordinate
/// (`0.00025` for a zero coordinate), reflection 1, expansion 2, contraction ½, shrink ½;
/// stops when every vertex is within `xtol·|x_best|` and every value within
/// `ftol·|f_best|` of the best, or after `maxfev` evaluations or `maxiter` iterations
/// (default `200·n`; `maxfev` defaults to `maxiter`).
pub fn nelder_mead(
    mut func: impl FnMut(&[f64]) -> f64,
    x0: &[f64],
    xtol: f64,
    ftol: f64,
    maxiter: Option<usize>,
    maxfev: Option<usize>,
) -> NmResult {
    let n = x0.len();
    if n == 0 {
        return NmResult {
            x: Vec::new(),
            fun: func(x0),
            nfev: 1,
            nit: 0,
            status: 0,
        };
    }
    let maxiter = maxiter.unwrap_or(n * 200);
    let maxfev = maxfev.unwrap_or(maxiter);
    let (rho, chi, psi, sigma) = (1.0, 2.0, 0.5, 0.5);
    let mut fcalls = 0usize;
    let mut sim: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
    let mut fsim: Vec<f64> = Vec::with_capacity(n + 1);
    sim.push(x0.to_vec());
    fsim.push(func(x0));
    fcalls += 1;
    for k in 0..n {
        let mut y = x0.to_vec();
        if y[k] != 0.0 {
            y[k] *= 1.0 + 0.05;
        } else {
            y[k] = 0.00025;
        }
        fsim.push(func(&y));
        fcalls += 1;
        sim.push(y);
    }
    let sort = |sim: &mut Vec<Vec<f64>>, fsim: &mut Vec<f64>| {
        let mut idx: Vec<usize> = (0..fsim.len()).collect();
        idx.sort_by(|&a, &b| nan_last(fsim[a], fsim[b]));
        *sim = idx.iter().map(|&i| sim[i].clone()).collect();
        *fsim = idx.iter().map(|&i| fsim[i]).collect();
    };
    sort(&mut sim, &mut fsim);
    let mut iterations = 1usize;
    while fcalls < maxfev && iterations < maxiter {
        let xcomp = np_max(
            (1..=n)
                .flat_map(|j| (0..n).map(move |i| (j, i)))
                .map(|(j, i)| (sim[j][i] - sim[0][i]).abs() - sim[0][i].abs() * xtol),
        );
        let fdiff = np_max((1..=n).map(|j| (fsim[0] - fsim[j]).abs()));
        let fcomp = fdiff - fsim[0].abs() * ftol;
        if xcomp < 0.0 && fcomp < 0.0 {
            break;
        }
        let xbar: Vec<f64> = (0..n)
            .map(|i| sim[..n].iter().map(|v| v[i]).sum::<f64>() / n as f64)
            .collect();
        let comb = |a: f64, b: f64, last: &[f64]| -> Vec<f64> {
            xbar.iter()
                .zip(last)
                .map(|(&xb, &l)| a * xb - b * l)
                .collect()
        };
        let xr = comb(1.0 + rho, rho, &sim[n]);
        let fxr = func(&xr);
        fcalls += 1;
        if fxr < fsim[0] {
            let xe = comb(1.0 + rho * chi, rho * chi, &sim[n]);
            let fxe = func(&xe);
            fcalls += 1;
            if fxe < fxr {
                sim[n] = xe;
                fsim[n] = fxe;
            } else {
                sim[n] = xr;
                fsim[n] = fxr;
            }
        } else if fxr < fsim[n - 1] {
            sim[n] = xr;
            fsim[n] = fxr;
        } else {
            let mut doshrink = false;
            if fxr < fsim[n] {
                let xc = comb(1.0 + psi * rho, psi * rho, &sim[n]);
                let fxc = func(&xc);
                fcalls += 1;
                if fxc <= fxr {
                    sim[n] = xc;
                    fsim[n] = fxc;
                } else {
                    doshrink = true;
                }
            } else {
                // inside contraction: (1 - psi) xbar + psi x_worst
                let xcc: Vec<f64> = xbar
                    .iter()
                    .zip(&sim[n])
                    .map(|(&xb, &l)| (1.0 - psi) * xb + psi * l)
                    .collect();
                let fxcc = func(&xcc);
                fcalls += 1;
                if fxcc < fsim[n] {
                    sim[n] = xcc;
                    fsim[n] = fxcc;
                } else {
                    doshrink = true;
                }
            }
            if doshrink {
                for j in 1..=n {
                    let s: Vec<f64> = sim[j]
                        .iter()
                        .zip(&sim[0])
                        .map(|(&xj, &x0)| x0 + sigma * (xj - x0))
                        .collect();
                    fsim[j] = func(&s);
                    fcalls += 1;
                    sim[j] = s;
                }
            }
        }
        sort(&mut sim, &mut fsim);
        iterations += 1;
    }
    let status = if fcalls >= maxfev {
        1
    } else if iterations >= maxiter {
        2
    } else {
        0
    };
    let fun = fsim.iter().cloned().fold(f64::INFINITY, f64::min);
    NmResult {
        x: sim.swap_remove(0),
        fun,
        nfev: fcalls,
        nit: iterations,
        status,
    }
}

/// Second derivative by central differences (covmatrix `calc_partial_ii`).
fn second_deriv(f: impl Fn(f64) -> f64, x: f64, h: f64) -> f64 {
    (f(x + h) - 2.0 * f(x) + f(x - h)) / (h * h)
}

/// `(cov, err)` from a 1-d Hessian as ngmix's `calc_cov` accepts it: `cov = -1/hess` must be
/// positive with a finite square root.
fn cov_from_hess(hess: f64) -> Option<(f64, f64)> {
    if hess == 0.0 {
        // numpy: singular matrix (also for the diagonal fallback)
        return None;
    }
    let cov = -1.0 / hess;
    if !(cov > 0.0) {
        return None;
    }
    let err = cov.sqrt();
    err.is_finite().then_some((cov, err))
}

/// The fixed exp and dev model images of the fracdev step, concatenated over all bands and
/// epochs (ngmix `FracdevFitterMax` / `FracdevFitter`).
#[derive(Debug, Clone)]
pub struct FracdevProblem<'a> {
    exp: Vec<f64>,
    dev: Vec<f64>,
    image: Vec<f64>,
    weight: Vec<f64>,
    prior: Option<&'a GMixND>,
}

/// Exact rendering of a convolved mixture (ngmix v1.3.5 `make_image`).
fn render_exact(gm: &GMix, jac: &Jacobian, nrow: usize, ncol: usize, fac: f64, out: &mut Vec<f64>) {
    for r in 0..nrow {
        for c in 0..ncol {
            let (v, u) = jac.vu(r as f64, c as f64);
            out.push(fac * gm.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>());
        }
    }
}

impl<'a> FracdevProblem<'a> {
    /// Render the exp (`exp_pars`) and dev (`dev_pars`) best fits, both `[row, col, g1, g2,
    /// T, flux_0..]`, convolved with each epoch's fitted PSF.
    ///
    /// # Errors
    /// Parameter vectors of the wrong length, a model outside its domain, an epoch without a
    /// fitted PSF.
    pub fn new<E: Eval>(
        obs: &MultiBandObs,
        exp_pars: &[f64],
        dev_pars: &[f64],
        tables: Tables,
        prior: Option<&'a GMixND>,
    ) -> Result<Self, GMixError> {
        let nb = obs.nband();
        if exp_pars.len() != 5 + nb || dev_pars.len() != 5 + nb {
            return Err(GMixError::Range("fracdev: expected 5 + nband parameters"));
        }
        let es = ModelSpec::simple(SimpleKind::Exp, tables);
        let ds = ModelSpec::simple(SimpleKind::Dev, tables);
        let npix = obs.npix();
        let mut me = Self {
            exp: Vec::with_capacity(npix),
            dev: Vec::with_capacity(npix),
            image: Vec::with_capacity(npix),
            weight: Vec::with_capacity(npix),
            prior,
        };
        for (b, list) in obs.bands.iter().enumerate() {
            let mut ep = [0.0; 6];
            let mut dp = [0.0; 6];
            ep[..5].copy_from_slice(&exp_pars[..5]);
            dp[..5].copy_from_slice(&dev_pars[..5]);
            ep[5] = exp_pars[5 + b];
            dp[5] = dev_pars[5 + b];
            let egm0 = es.gmix(&ep)?;
            let dgm0 = ds.gmix(&dp)?;
            for o in list {
                let psf = o.psf_gmix().ok_or(GMixError::Fatal("psf not fitted"))?;
                let egm = egm0.convolve(psf)?;
                let dgm = dgm0.convolve(psf)?;
                let (nrow, ncol) = o.dims();
                let fac = E::pixel_factor(&o.jacobian);
                render_exact(&egm, &o.jacobian, nrow, ncol, fac, &mut me.exp);
                render_exact(&dgm, &o.jacobian, nrow, ncol, fac, &mut me.dev);
                me.image.extend_from_slice(o.image_slice());
                me.weight
                    .extend(o.weight_slice().iter().map(|&w| w.max(0.0)));
            }
        }
        Ok(me)
    }

    /// Number of pixels (all pixels of all epochs, zero weights included).
    pub fn npix(&self) -> usize {
        self.image.len()
    }

    /// `ln L(f) + ln p(f)` of `FracdevFitterMax.calc_lnprob`: `-½ Σ w ((1-f) E + f D - I)²`
    /// plus the prior; `-inf` (ngmix v1.3.5 `LOWVAL`) unless `-1 < f < 2`.
    pub fn lnprob(&self, fracdev: f64) -> f64 {
        if fracdev <= -1.0 || fracdev >= 2.0 {
            return f64::NEG_INFINITY;
        }
        let ifracdev = 1.0 - fracdev;
        let mut chi2 = 0.0;
        for i in 0..self.image.len() {
            let d = self.exp[i] * ifracdev + self.dev[i] * fracdev - self.image[i];
            chi2 += d * d * self.weight[i];
        }
        let mut lnp = -0.5 * chi2;
        if let Some(p) = self.prior {
            lnp += p.lnprob_nd(&[fracdev]).unwrap_or(f64::NEG_INFINITY);
        }
        lnp
    }

    /// The best grid value (`_get_fracdev_guess`): the first maximum of [`Self::lnprob`] over
    /// the values with a finite log-probability; `None` if there is none.
    pub fn grid_best(&self, grid: &[f64]) -> Option<f64> {
        let mut best: Option<(f64, f64)> = None;
        for &f in grid {
            let l = self.lnprob(f);
            if !l.is_finite() {
                continue;
            }
            match best {
                Some((_, bl)) if !(l > bl) => {}
                _ => best = Some((f, l)),
            }
        }
        best.map(|(f, _)| f)
    }

    /// `FracdevFitterMax.go` (method `nm`): maximise [`Self::lnprob`] from `guess` with
    /// [`nelder_mead`] (`maxfev = 4000`, `xtol = ftol = 1e-3`), error from the second
    /// derivative with step `1e-3`. Flags: 1 when not converged, `EIG_NOTFINITE` when the
    /// error is not a positive finite number.
    pub fn fit_max(&self, guess: f64) -> FracdevResult {
        let nm = nelder_mead(
            |x| -self.lnprob(x[0]),
            &[guess],
            1.0e-3,
            1.0e-3,
            None,
            Some(4000),
        );
        let fracdev = nm.x[0];
        let mut flags = if nm.status == 0 { 0 } else { 1 };
        let hess = second_deriv(|x| self.lnprob(x), fracdev, 1.0e-3);
        let fracdev_err = match cov_from_hess(hess) {
            Some((_, err)) => err,
            None => {
                flags |= EIG_NOTFINITE;
                f64::NAN
            }
        };
        FracdevResult {
            flags,
            fracdev,
            fracdev_err,
            nfev: nm.nfev,
        }
    }

    /// `FracdevFitter` (no prior): the least-squares solution of
    /// `sqrt(w)(I - E) = f sqrt(w)(D - E)`, i.e. `f = Σ w (D-E)(I-E) / Σ w (D-E)²`, error from
    /// the second derivative of `-½ Σ (Y - f X)²` with step `1e-3`; `EIG_NOTFINITE` when
    /// `Σ w (D-E)² = 0`.
    pub fn fit_linear(&self) -> FracdevResult {
        let (mut xy, mut xx) = (0.0, 0.0);
        let mut xs = Vec::with_capacity(self.image.len());
        let mut ys = Vec::with_capacity(self.image.len());
        for i in 0..self.image.len() {
            let sw = self.weight[i].sqrt();
            let x = (self.dev[i] - self.exp[i]) * sw;
            let y = (self.image[i] - self.exp[i]) * sw;
            xy += x * y;
            xx += x * x;
            xs.push(x);
            ys.push(y);
        }
        // numpy lstsq: the minimum-norm solution 0 for a zero column
        let fracdev = if xx > 0.0 { xy / xx } else { 0.0 };
        let lnp = |f: f64| -> f64 {
            -0.5 * xs
                .iter()
                .zip(&ys)
                .map(|(&x, &y)| {
                    let d = y - f * x;
                    d * d
                })
                .sum::<f64>()
        };
        let hess = second_deriv(lnp, fracdev, 1.0e-3);
        let (flags, fracdev_err) = if hess == 0.0 {
            (EIG_NOTFINITE, f64::NAN)
        } else {
            (0, (-1.0 / hess).sqrt())
        };
        FracdevResult {
            flags,
            fracdev,
            fracdev_err,
            nfev: 1,
        }
    }

    /// The fracdev step of `CompositeBootstrapper._fit_fracdev`: with a prior the grid (and,
    /// unless `use_grid`, Nelder–Mead from the best grid value); without, the linear fit.
    pub fn fit(&self, grid: &[f64], use_grid: bool) -> Result<FracdevResult, CmFailure> {
        let res = if self.prior.is_none() {
            self.fit_linear()
        } else {
            let guess = self.grid_best(grid).ok_or(CmFailure::FracdevGrid)?;
            if use_grid {
                FracdevResult {
                    flags: 0,
                    fracdev: guess,
                    fracdev_err: 1.0,
                    nfev: grid.len(),
                }
            } else {
                self.fit_max(guess)
            }
        };
        if res.flags != 0 {
            return Err(CmFailure::Fracdev { flags: res.flags });
        }
        Ok(res)
    }
}

fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    // numpy clip: min(max(x, lo), hi), NaN stays NaN
    if x.is_nan() {
        x
    } else {
        x.max(lo).min(hi)
    }
}

fn simple_fit<E: Eval, P: LmPrior>(
    obs: &MultiBandObs,
    kind: SimpleKind,
    stage: CmStage,
    prior: Option<&P>,
    cfg: &CmConfig,
    lm: &LmPars,
    ntry: usize,
    guesser: &mut impl FnMut(CmStage) -> Vec<f64>,
) -> Result<MaxLikeResult, CmFailure> {
    let spec = ModelSpec::simple(kind, cfg.tables);
    let res = fit_max_ntry::<E, P>(obs, &spec, prior, lm, ntry, || guesser(stage))
        .map_err(|err| CmFailure::Range { stage, err })?;
    if res.flags != 0 {
        return Err(CmFailure::SimpleFit {
            stage,
            flags: res.flags,
        });
    }
    Ok(res)
}

/// The whole composite procedure (ngmix v1.3.5 `CompositeBootstrapper.fit_max`) on
/// observations whose PSFs are fitted. `prior` is the model's joint prior (used for the exp,
/// dev and composite fits); `guesser(stage)` gives a fresh starting point for each LM
/// attempt, in call order (exp attempts, dev attempts, composite attempts).
pub fn fit_cm<E: Eval, P: LmPrior>(
    obs: &MultiBandObs,
    prior: Option<&P>,
    cfg: &CmConfig,
    lm: &LmPars,
    ntry: usize,
    mut guesser: impl FnMut(CmStage) -> Vec<f64>,
) -> Result<CmResult, CmFailure> {
    let exp = simple_fit::<E, P>(
        obs,
        SimpleKind::Exp,
        CmStage::Exp,
        prior,
        cfg,
        lm,
        ntry,
        &mut guesser,
    )?;
    let dev = simple_fit::<E, P>(
        obs,
        SimpleKind::Dev,
        CmStage::Dev,
        prior,
        cfg,
        lm,
        ntry,
        &mut guesser,
    )?;

    let problem = FracdevProblem::new::<E>(
        obs,
        &exp.pars,
        &dev.pars,
        cfg.tables,
        cfg.fracdev_prior.as_ref(),
    )
    .map_err(|err| match err {
        GMixError::Range(_) => CmFailure::Range {
            stage: CmStage::Composite,
            err,
        },
        GMixError::Fatal(_) => CmFailure::FracdevSetup(err),
    })?;
    let fres = problem.fit(&cfg.fracdev_grid, cfg.use_fracdev_grid)?;

    let fracdev_noclip = fres.fracdev;
    let mut fracdev = clip(fracdev_noclip, cfg.fracdev_range[0], cfg.fracdev_range[1]);
    let tdbyte_noclip = dev.pars[4] / exp.pars[4];
    let tdbyte = clip(tdbyte_noclip, cfg.tdbyte_range[0], cfg.tdbyte_range[1]);

    let mut last_err = GMixError::Range("composite fit not attempted");
    for attempt in 0..4 {
        let spec = ModelSpec::cm(fracdev, tdbyte, cfg.tables);
        match fit_max_ntry::<E, P>(obs, &spec, prior, lm, ntry, || guesser(CmStage::Composite)) {
            Ok(fit) => {
                if fit.flags != 0 {
                    return Err(CmFailure::Composite { flags: fit.flags });
                }
                return Ok(CmResult {
                    fit,
                    fracdev,
                    fracdev_noclip,
                    fracdev_err: fres.fracdev_err,
                    fracdev_nfev: fres.nfev,
                    tdbyte,
                    tdbyte_noclip,
                    exp,
                    dev,
                    range_retries: attempt,
                });
            }
            Err(err @ GMixError::Range(_)) => {
                last_err = err;
                fracdev = clip(fracdev, 0.0, 1.0);
            }
            Err(err) => {
                return Err(CmFailure::Range {
                    stage: CmStage::Composite,
                    err,
                })
            }
        }
    }
    Err(CmFailure::Range {
        stage: CmStage::Composite,
        err: last_err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_is_numpys() {
        let v = linspace(-1.0, 1.5, 26);
        assert_eq!(v.len(), 26);
        assert_eq!(v[0], -1.0);
        assert_eq!(v[10], 0.0);
        assert_eq!(v[25], 1.5);
        // numpy: 3*0.1 + -1.0
        assert_eq!(v[3], 3.0 * 0.1 - 1.0);
        assert!(linspace(0.0, 1.0, 0).is_empty());
        assert_eq!(nelder_mead(|_| 1.0, &[], 1e-3, 1e-3, None, None).nfev, 1);
        assert_eq!(linspace(0.3, 1.0, 1), vec![0.3]);
    }

    #[test]
    fn nelder_mead_finds_parabola_minimum() {
        // f = (x - 0.7)^2 + 3: converges within relative xtol of 0.7
        let r = nelder_mead(
            |x| (x[0] - 0.7).powi(2) + 3.0,
            &[0.2],
            1e-3,
            1e-3,
            None,
            Some(4000),
        );
        assert_eq!(r.status, 0);
        assert!((r.x[0] - 0.7).abs() < 2e-3, "{:?}", r);
        // 2-d Rosenbrock with scipy-like tolerances
        let r = nelder_mead(
            |x| 100.0 * (x[1] - x[0] * x[0]).powi(2) + (1.0 - x[0]).powi(2),
            &[-1.2, 1.0],
            1e-8,
            1e-8,
            Some(4000),
            Some(8000),
        );
        assert!(
            (r.x[0] - 1.0).abs() < 1e-4 && (r.x[1] - 1.0).abs() < 1e-4,
            "{r:?}"
        );
    }

    #[test]
    fn nelder_mead_first_steps_by_hand() {
        // x0 = 1: simplex {1, 1.05}; f = (x-2)^2 → f(1)=1, f(1.05)=0.9025, sorted [1.05, 1].
        // reflection xr = 2·1.05 - 1 = 1.1 (f=0.81 < 0.9025) → expansion xe = 3·1.05 - 2 = 1.15
        // (f = 0.7225 < 0.81) accepted. 2 + 2 evaluations after one iteration.
        let mut calls = Vec::new();
        let _ = nelder_mead(
            |x| {
                calls.push(x[0]);
                (x[0] - 2.0).powi(2)
            },
            &[1.0],
            1e-3,
            1e-3,
            Some(2),
            Some(100),
        );
        assert_eq!(calls.len(), 4);
        assert!((calls[1] - 1.05).abs() < 1e-15);
        assert!((calls[2] - 1.1).abs() < 1e-14);
        assert!((calls[3] - 1.15).abs() < 1e-14);
    }

    #[test]
    fn cov_from_hess_rules() {
        assert_eq!(cov_from_hess(0.0), None);
        assert_eq!(cov_from_hess(1.0), None);
        assert_eq!(cov_from_hess(f64::NAN), None);
        assert_eq!(cov_from_hess(f64::NEG_INFINITY), None);
        let (c, e) = cov_from_hess(-4.0).unwrap();
        assert_eq!(c, 0.25);
        assert_eq!(e, 0.5);
    }

    #[test]
    fn clip_is_numpys() {
        assert_eq!(clip(3.0, -2.0, 2.0), 2.0);
        assert_eq!(clip(-3.0, -2.0, 2.0), -2.0);
        assert!(clip(f64::NAN, 0.0, 1.0).is_nan());
        assert_eq!(clip(f64::INFINITY, -1e9, 1e9), 1e9);
    }
}
