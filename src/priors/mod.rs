//! Priors used by ngmixer configs, with the semantics of ngmix v1.3.5 (`ngmix/priors.py`,
//! `ngmix/joint_prior.py`, `ngmix/gmix_ndim.py`).
//!
//! ngmix convention: the priors used by the LM fitter have their peak at `ln p = 0`, and the LM
//! residual for one prior is `sqrt(max(0, -2 ln p))` (the sign of the offset is lost). Priors
//! whose peak is not at 0 (the COSMOS g priors, [`GMixND`]) are used as they are; their residual
//! is clipped at 0 where `ln p > 0`.
//!
//! Where ngmix raises `GMixRangeError` these functions return
//! [`GMixError::Range`](crate::GMixError::Range). [`LOWVAL`] (ngmix v1.3.5: `-inf`) is returned
//! where ngmix returns `LOWVAL` (a [`TwoSidedErf`] with `p <= 0`); the matching residual is `+inf`.
//!
//! | ngmixer config | Rust |
//! |---|---|
//! | `cen: {type: dgauss/normal2d, width: w}` | [`CenPrior::new`]`(0, 0, w, w)` |
//! | `g: ba` (`sigma`) | [`ShapePrior::ba`] ([`GPriorBA`]) |
//! | `g: flat` | [`ShapePrior::flat`] ([`ZDisk2D`] of radius 1) |
//! | `g: cosmos-sersic` | [`ShapePrior::cosmos_sersic`] ([`GPriorMErf`], `make_gprior_cosmos_sersic(type='erf')`) |
//! | `g: cosmos-exp` / `cosmos-dev` | [`ShapePrior::cosmos_exp`] / [`ShapePrior::cosmos_dev`] ([`GPriorM`]) |
//! | `T`/`counts: flat` (`pars=[min,max]`) | [`TPrior::flat`] |
//! | `T`/`counts: TwoSidedErf` (`pars`) | [`TPrior::two_sided_erf`] |
//! | `T`/`counts: lognormal` (`mean`, `sigma`) | [`TPrior::lognormal`] |
//! | `T: cosmos_exp` / `cosmos_dev` | [`TPrior::cosmos_exp`] / [`TPrior::cosmos_dev`] (see [`TPriorCosmos`]: not defined in ngmix v1.3.5) |
//! | `T`/`counts: gmixnd` (`file`, `cov_factor`) | `GMixND::from_fits` (feature `des-y1`), [`GMixND::apply_cov_factor_ngmixer`], [`TPrior::gmixnd`] |
//! | `fracdev` (`file` or inline `weights/means/covars`) | `GMixND::from_fits_table` (feature `des-y1`) / [`GMixND::new`] |
//! | the joint prior and its `gflat` copy | [`PriorSimpleSep::new`], [`PriorSimpleSep::gflat`] |
//!
//! Counts priors are [`TPrior`]s too ([`CountsPrior`]); with `repeat: true` ngmixer uses the
//! same prior for every band (`vec![p; nband]`).
//!
//! Sampling uses the crate's seeded streams ([`crate::rng`]); the draws follow the same
//! distributions as ngmix but not numpy's sequences.

mod cen;
mod gmixnd;
mod joint;
mod shape;
mod simple;

pub use cen::CenPrior;
pub use gmixnd::GMixND;
pub use joint::PriorSimpleSep;
pub use shape::{GPriorBA, GPriorM, GPriorMErf, ShapePrior, ZDisk2D};
pub use simple::{CountsPrior, FlatPrior, LogNormal, Normal, TPrior, TPriorCosmos, TwoSidedErf};

use crate::error::GResult;
use rand_core::Rng;

/// ngmix's `LOWVAL` (`-numpy.inf` in v1.3.5 and 2.x): the log-probability returned where the
/// probability is zero but ngmix does not raise.
pub const LOWVAL: f64 = f64::NEG_INFINITY;

/// The LM residual of one prior as ngmix's scalar `get_fdiff` computes it:
/// `chi2 = -2 lnp; if chi2 < 0 { chi2 = 0 }; sqrt(chi2)`. `lnp = 0` gives `-0.0` (as numpy),
/// `lnp = -inf` gives `+inf`.
#[inline]
pub fn fdiff_from_lnprob(lnp: f64) -> f64 {
    let chi2 = -2.0 * lnp;
    let chi2 = if chi2 < 0.0 { 0.0 } else { chi2 };
    chi2.sqrt()
}

/// A prior on one scalar parameter (T, a flux, fracdev, ...).
pub trait Prior1D {
    /// `ln p(x)` (ngmix `get_lnprob_scalar`).
    ///
    /// # Errors
    /// [`GMixError::Range`](crate::GMixError::Range) where ngmix raises `GMixRangeError`.
    fn lnprob(&self, x: f64) -> GResult<f64>;

    /// `p(x)` (ngmix `get_prob_scalar`); by default `exp(lnprob(x))`.
    ///
    /// # Errors
    /// As [`Prior1D::lnprob`].
    fn prob(&self, x: f64) -> GResult<f64> {
        self.lnprob(x).map(f64::exp)
    }

    /// The LM residual (ngmix `get_fdiff`); by default [`fdiff_from_lnprob`]`(lnprob(x))`.
    ///
    /// # Errors
    /// As [`Prior1D::lnprob`].
    fn fdiff(&self, x: f64) -> GResult<f64> {
        self.lnprob(x).map(fdiff_from_lnprob)
    }

    /// One random draw.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64;
}

/// A prior on the reduced shear `(g1, g2)`.
pub trait GPrior {
    /// `ln p(g1, g2)` (ngmix `get_lnprob_scalar2d`).
    ///
    /// # Errors
    /// [`GMixError::Range`](crate::GMixError::Range) outside the support (ngmix raises).
    fn lnprob2d(&self, g1: f64, g2: f64) -> GResult<f64>;

    /// `p(g1, g2)` (ngmix `get_prob_scalar2d`; most kinds return 0 outside the support).
    ///
    /// # Errors
    /// Where ngmix raises (only [`GPriorMErf`], for `|g| >= 1`).
    fn prob2d(&self, g1: f64, g2: f64) -> GResult<f64>;

    /// The density of `|g|` (ngmix `get_prob_scalar1d`: `2π g p(g)`, except for [`ZDisk2D`]
    /// which returns its 2-d value, 1 inside and 0 outside).
    ///
    /// # Errors
    /// Where ngmix raises (only [`GPriorMErf`], for `g < 0` or `g >= 1`).
    fn prob1d(&self, g: f64) -> GResult<f64>;

    /// The LM residual `sqrt(max(0, -2 ln p))` (ngmix `GPriorBA.get_fdiff`).
    ///
    /// # Errors
    /// As [`GPrior::lnprob2d`].
    fn fdiff(&self, g1: f64, g2: f64) -> GResult<f64> {
        self.lnprob2d(g1, g2).map(fdiff_from_lnprob)
    }

    /// One random draw of `(g1, g2)`.
    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64);
}

/// The finite-difference derivative ngmix's tests use for priors:
/// `(f(x + h) - f(x - h)) / (2h)`.
///
/// # Errors
/// When `f` fails at either point.
pub fn dlnprob_dx_numeric<P: Prior1D + ?Sized>(prior: &P, x: f64, h: f64) -> GResult<f64> {
    Ok((prior.lnprob(x + h)? - prior.lnprob(x - h)?) / (2.0 * h))
}

/// Checks a constructor argument: finite and strictly positive.
fn check_positive(v: f64, what: &str) -> crate::Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "{what} must be finite and > 0, got {v}"
        )))
    }
}

/// Checks a constructor argument: finite.
fn check_finite(v: f64, what: &str) -> crate::Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "{what} must be finite, got {v}"
        )))
    }
}
