//! One-dimensional priors: flat, two-sided erf, log-normal, normal, the COSMOS T priors, and
//! the [`TPrior`] enum over them (plus [`GMixND`]).

use super::{check_finite, check_positive, GMixND, Prior1D, LOWVAL};
use crate::error::{GMixError, GResult};
use crate::rng::{normal, uniform, uniform_range};
use rand_core::Rng;

/// Maximum number of rejection-sampling trials before falling back to a deterministic value
/// (only reachable with pathological parameters; the acceptance rates here are > 10%).
const MAX_REJECTION_TRIES: usize = 1_000_000;

/// Uniform on `[minval, maxval]` (ngmix `FlatPrior`): `ln p = 0` inside, range error outside
/// (both ends included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatPrior {
    minval: f64,
    maxval: f64,
}

impl FlatPrior {
    /// `FlatPrior(minval, maxval)`.
    ///
    /// # Errors
    /// Non-finite bounds or `minval > maxval`.
    pub fn new(minval: f64, maxval: f64) -> crate::Result<Self> {
        check_finite(minval, "flat prior minval")?;
        check_finite(maxval, "flat prior maxval")?;
        if minval > maxval {
            return Err(crate::Error::Invalid(format!(
                "flat prior: minval {minval} > maxval {maxval}"
            )));
        }
        Ok(Self { minval, maxval })
    }

    /// Lower bound.
    pub fn minval(&self) -> f64 {
        self.minval
    }

    /// Upper bound.
    pub fn maxval(&self) -> f64 {
        self.maxval
    }

    fn check(&self, x: f64) -> GResult<()> {
        // written as ngmix's `val < min or val > max` (NaN passes, as in Python)
        if x < self.minval || x > self.maxval {
            Err(GMixError::Range("value out of range of flat prior"))
        } else {
            Ok(())
        }
    }
}

impl Prior1D for FlatPrior {
    fn lnprob(&self, x: f64) -> GResult<f64> {
        self.check(x).map(|_| 0.0)
    }

    fn prob(&self, x: f64) -> GResult<f64> {
        self.check(x).map(|_| 1.0)
    }

    fn fdiff(&self, x: f64) -> GResult<f64> {
        self.check(x).map(|_| 0.0)
    }

    /// `minval + (maxval - minval) u`.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.minval + (self.maxval - self.minval) * uniform(rng)
    }
}

/// Two-sided error function (ngmix `TwoSidedErf`, v1.3.5 form):
/// `p(x) = ½ erf((maxval - x)/width_at_max) + ½ erf((x - minval)/width_at_min)`,
/// ≈ 1 between the limits, ½ at each limit, → 0 outside. `ln p = `[`LOWVAL`]` (-inf)` where
/// `p <= 0`, so the residual `sqrt(-2 ln p)` is `+inf` there (ngmix v1.3.5 does the same).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoSidedErf {
    minval: f64,
    width_at_min: f64,
    maxval: f64,
    width_at_max: f64,
}

impl TwoSidedErf {
    /// `TwoSidedErf(minval, width_at_min, maxval, width_at_max)`.
    ///
    /// # Errors
    /// Non-finite values or non-positive widths.
    pub fn new(
        minval: f64,
        width_at_min: f64,
        maxval: f64,
        width_at_max: f64,
    ) -> crate::Result<Self> {
        check_finite(minval, "TwoSidedErf minval")?;
        check_finite(maxval, "TwoSidedErf maxval")?;
        check_positive(width_at_min, "TwoSidedErf width_at_min")?;
        check_positive(width_at_max, "TwoSidedErf width_at_max")?;
        Ok(Self {
            minval,
            width_at_min,
            maxval,
            width_at_max,
        })
    }

    /// The parameters `[minval, width_at_min, maxval, width_at_max]`.
    pub fn pars(&self) -> [f64; 4] {
        [
            self.minval,
            self.width_at_min,
            self.maxval,
            self.width_at_max,
        ]
    }

    /// `p(x)` (never fails; can be 0 or, by rounding, a hair below 0 far outside).
    #[inline]
    pub fn prob_value(&self, x: f64) -> f64 {
        let p1 = 0.5 * libm::erf((self.maxval - x) / self.width_at_max);
        let p2 = 0.5 * libm::erf((x - self.minval) / self.width_at_min);
        p1 + p2
    }

    /// `ln p(x)`, [`LOWVAL`] where `p <= 0` (never fails).
    #[inline]
    pub fn lnprob_value(&self, x: f64) -> f64 {
        let p = self.prob_value(x);
        if p <= 0.0 {
            LOWVAL
        } else {
            p.ln()
        }
    }
}

impl Prior1D for TwoSidedErf {
    fn lnprob(&self, x: f64) -> GResult<f64> {
        Ok(self.lnprob_value(x))
    }

    fn prob(&self, x: f64) -> GResult<f64> {
        Ok(self.prob_value(x))
    }

    /// Rejection sampling as ngmix: `x` uniform on
    /// `[minval - 5 width_at_min, maxval + 5 width_at_max)`, accepted when a uniform `y < p(x)`.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let xmin = self.minval - 5.0 * self.width_at_min;
        let xmax = self.maxval + 5.0 * self.width_at_max;
        for _ in 0..MAX_REJECTION_TRIES {
            let x = uniform_range(rng, xmin, xmax);
            let y = uniform(rng);
            if y < self.prob_value(x) {
                return x;
            }
        }
        0.5 * (self.minval + self.maxval)
    }
}

/// Log-normal distribution parameterised by its linear-space mean and standard deviation
/// (ngmix `LogNormal`), with an optional `shift` (`x - shift` is log-normal). `ln p` is
/// normalised to 0 at the mode; `x - shift <= 0` is a range error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    mean: f64,
    sigma: f64,
    shift: Option<f64>,
    logmean: f64,
    logvar: f64,
    logsigma: f64,
    logivar: f64,
    mode: f64,
    log_mode: f64,
    lnprob_max: f64,
}

impl LogNormal {
    /// `LogNormal(mean, sigma)`.
    ///
    /// # Errors
    /// `mean <= 0` (ngmix raises ValueError), non-positive or non-finite `sigma`.
    pub fn new(mean: f64, sigma: f64) -> crate::Result<Self> {
        Self::with_shift(mean, sigma, None)
    }

    /// `LogNormal(mean, sigma, shift=shift)`.
    ///
    /// # Errors
    /// As [`LogNormal::new`], plus a non-finite shift.
    pub fn with_shift(mean: f64, sigma: f64, shift: Option<f64>) -> crate::Result<Self> {
        check_positive(mean, "lognormal mean")?;
        check_positive(sigma, "lognormal sigma")?;
        if let Some(s) = shift {
            check_finite(s, "lognormal shift")?;
        }
        let r = sigma * sigma / (mean * mean);
        let logmean = mean.ln() - 0.5 * (1.0 + r).ln();
        let logvar = (1.0 + r).ln();
        let logsigma = logvar.sqrt();
        let logivar = 1.0 / logvar;
        let log_mode = logmean - logvar;
        let mode = log_mode.exp();
        let d = log_mode - logmean;
        let chi2 = logivar * (d * d);
        let lnprob_max = -0.5 * chi2 - log_mode;
        Ok(Self {
            mean,
            sigma,
            shift,
            logmean,
            logvar,
            logsigma,
            logivar,
            mode,
            log_mode,
            lnprob_max,
        })
    }

    /// Linear-space mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }
    /// Linear-space standard deviation.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
    /// The shift, if any.
    pub fn shift(&self) -> Option<f64> {
        self.shift
    }
    /// `<ln x> = ln(mean) - ½ ln(1 + sigma²/mean²)`.
    pub fn logmean(&self) -> f64 {
        self.logmean
    }
    /// `var(ln x) = ln(1 + sigma²/mean²)`.
    pub fn logvar(&self) -> f64 {
        self.logvar
    }
    /// `sqrt(logvar)`.
    pub fn logsigma(&self) -> f64 {
        self.logsigma
    }
    /// The mode `exp(logmean - logvar)` (of the unshifted variable).
    pub fn mode(&self) -> f64 {
        self.mode
    }
    /// `ln` of the mode.
    pub fn log_mode(&self) -> f64 {
        self.log_mode
    }
    /// The unnormalised log density at the mode, subtracted so that the peak is 0.
    pub fn lnprob_max(&self) -> f64 {
        self.lnprob_max
    }
}

impl Prior1D for LogNormal {
    fn lnprob(&self, x: f64) -> GResult<f64> {
        let x = match self.shift {
            Some(s) => x - s,
            None => x,
        };
        if x <= 0.0 {
            return Err(GMixError::Range("values of x must be > 0"));
        }
        let logx = x.ln();
        let d = logx - self.logmean;
        let chi2 = self.logivar * (d * d);
        Ok(-0.5 * chi2 - logx - self.lnprob_max)
    }

    /// `exp(logmean + logsigma z) (+ shift)`, `z` standard normal.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let r = (self.logmean + self.logsigma * normal(rng)).exp();
        match self.shift {
            Some(s) => r + s,
            None => r,
        }
    }
}

/// Normal distribution (ngmix `Normal`): `ln p = -½ ((x - mean)/sigma)²` (peak 0), never
/// fails; its residual is the *signed* `(x - mean)/sigma`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normal {
    mean: f64,
    sigma: f64,
    sinv: f64,
    s2inv: f64,
}

impl Normal {
    /// `Normal(mean, sigma)`.
    ///
    /// # Errors
    /// Non-finite mean, non-positive or non-finite sigma.
    pub fn new(mean: f64, sigma: f64) -> crate::Result<Self> {
        check_finite(mean, "normal mean")?;
        check_positive(sigma, "normal sigma")?;
        Ok(Self {
            mean,
            sigma,
            sinv: 1.0 / sigma,
            s2inv: 1.0 / (sigma * sigma),
        })
    }

    /// Mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Standard deviation.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl Prior1D for Normal {
    fn lnprob(&self, x: f64) -> GResult<f64> {
        let diff = self.mean - x;
        Ok(-0.5 * diff * diff * self.s2inv)
    }

    fn fdiff(&self, x: f64) -> GResult<f64> {
        Ok((x - self.mean) * self.sinv)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.mean + self.sigma * normal(rng)
    }
}

/// The COSMOS T priors (`TPriorCosmosExp`, `TPriorCosmosDev`): a double Gaussian in
/// `log10 T`, `p(T) = Σ_i w_i exp(-½ (log10 T - m_i)²/σ_i²) / T`, `ln p = ln p(T)` (not
/// normalised), range error for `T <= 0`.
///
/// **Not in ngmix v1.3.5**: these classes sit inside a string literal (commented out) in
/// v1.3.5's `priors.py` (and in all 1.3.x), so ngmixer's `T: {type: cosmos_exp}` fails there
/// with an AttributeError. The port keeps the constants and the formula of that code. ngmix has
/// no sampler for them; [`Prior1D::sample`] draws `log10 T` from the implied mixture (weights
/// `∝ w_i σ_i`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TPriorCosmos {
    means: [f64; 2],
    sigmas: [f64; 2],
    ivars: [f64; 2],
    weights: [f64; 2],
}

impl TPriorCosmos {
    fn from_consts(means: [f64; 2], sigmas: [f64; 2], weights: [f64; 2]) -> Self {
        let ivars = [1.0 / (sigmas[0] * sigmas[0]), 1.0 / (sigmas[1] * sigmas[1])];
        Self {
            means,
            sigmas,
            ivars,
            weights,
        }
    }

    /// `TPriorCosmosExp` (means -0.40019405, -1.13597665; sigmas 0.40682263, 0.29353975;
    /// weights 0.75845293, 0.24154707).
    pub fn exp() -> Self {
        Self::from_consts(
            [-0.40019405, -1.13597665],
            [0.40682263, 0.29353975],
            [0.75845293, 0.24154707],
        )
    }

    /// `TPriorCosmosDev` (means -0.23898365, 0.99036254; sigmas 0.56108066, 0.6145333;
    /// weights 0.34782633, 0.65217367).
    pub fn dev() -> Self {
        Self::from_consts(
            [-0.23898365, 0.99036254],
            [0.56108066, 0.6145333],
            [0.34782633, 0.65217367],
        )
    }
}

impl Prior1D for TPriorCosmos {
    fn lnprob(&self, x: f64) -> GResult<f64> {
        self.prob(x).map(f64::ln)
    }

    fn prob(&self, x: f64) -> GResult<f64> {
        if x <= 0.0 {
            return Err(GMixError::Range("values must be > 0"));
        }
        let lnv = x.log10();
        let d1 = lnv - self.means[0];
        let d2 = lnv - self.means[1];
        let p1 = self.weights[0] * (-0.5 * self.ivars[0] * (d1 * d1)).exp();
        let p2 = self.weights[1] * (-0.5 * self.ivars[1] * (d2 * d2)).exp();
        Ok((p1 + p2) / x)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let a0 = self.weights[0] * self.sigmas[0];
        let a1 = self.weights[1] * self.sigmas[1];
        let i = usize::from(uniform(rng) * (a0 + a1) >= a0);
        let y = self.means[i] + self.sigmas[i] * normal(rng);
        10f64.powf(y)
    }
}

/// A prior on a size (`T`) or a flux: the kinds ngmixer's `get_T_prior` / `get_counts_prior`
/// build. Static dispatch over the concrete priors.
#[derive(Debug, Clone, PartialEq)]
pub enum TPrior {
    /// `flat`.
    Flat(FlatPrior),
    /// `TwoSidedErf`.
    TwoSidedErf(TwoSidedErf),
    /// `lognormal`.
    LogNormal(LogNormal),
    /// A normal (not produced by ngmixer configs, available for tests and custom setups).
    Normal(Normal),
    /// `gmixnd` (1-d mixture).
    GMixND(GMixND),
    /// `cosmos_exp` / `cosmos_dev`.
    Cosmos(TPriorCosmos),
}

/// Counts (flux) priors are the same kinds as T priors.
pub type CountsPrior = TPrior;

impl TPrior {
    /// `flat` with `pars = [minval, maxval]`.
    ///
    /// # Errors
    /// See [`FlatPrior::new`].
    pub fn flat(minval: f64, maxval: f64) -> crate::Result<Self> {
        FlatPrior::new(minval, maxval).map(Self::Flat)
    }

    /// `TwoSidedErf` with `pars = [minval, width_at_min, maxval, width_at_max]`.
    ///
    /// # Errors
    /// See [`TwoSidedErf::new`].
    pub fn two_sided_erf(pars: [f64; 4]) -> crate::Result<Self> {
        TwoSidedErf::new(pars[0], pars[1], pars[2], pars[3]).map(Self::TwoSidedErf)
    }

    /// `lognormal` with `mean`, `sigma`.
    ///
    /// # Errors
    /// See [`LogNormal::new`].
    pub fn lognormal(mean: f64, sigma: f64) -> crate::Result<Self> {
        LogNormal::new(mean, sigma).map(Self::LogNormal)
    }

    /// A normal prior.
    ///
    /// # Errors
    /// See [`Normal::new`].
    pub fn normal(mean: f64, sigma: f64) -> crate::Result<Self> {
        Normal::new(mean, sigma).map(Self::Normal)
    }

    /// `gmixnd`: a 1-d [`GMixND`].
    ///
    /// # Errors
    /// The mixture is not 1-d.
    pub fn gmixnd(g: GMixND) -> crate::Result<Self> {
        if g.ndim() != 1 {
            return Err(crate::Error::Invalid(format!(
                "a T/counts gmixnd prior must be 1-d, got ndim {}",
                g.ndim()
            )));
        }
        Ok(Self::GMixND(g))
    }

    /// `cosmos_exp` ([`TPriorCosmos::exp`]).
    pub fn cosmos_exp() -> Self {
        Self::Cosmos(TPriorCosmos::exp())
    }

    /// `cosmos_dev` ([`TPriorCosmos::dev`]).
    pub fn cosmos_dev() -> Self {
        Self::Cosmos(TPriorCosmos::dev())
    }
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            TPrior::Flat($p) => $e,
            TPrior::TwoSidedErf($p) => $e,
            TPrior::LogNormal($p) => $e,
            TPrior::Normal($p) => $e,
            TPrior::GMixND($p) => $e,
            TPrior::Cosmos($p) => $e,
        }
    };
}

impl Prior1D for TPrior {
    fn lnprob(&self, x: f64) -> GResult<f64> {
        dispatch!(self, p => p.lnprob(x))
    }

    fn prob(&self, x: f64) -> GResult<f64> {
        dispatch!(self, p => p.prob(x))
    }

    fn fdiff(&self, x: f64) -> GResult<f64> {
        dispatch!(self, p => p.fdiff(x))
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        dispatch!(self, p => Prior1D::sample(p, rng))
    }
}
