//! The centre prior: independent Gaussians in the two sky coordinates.

use super::{check_finite, check_positive};
use crate::rng::normal;
use rand_core::Rng;

/// Independent Gaussians in each dimension (ngmix `CenPrior`, alias `SimpleGauss2D`; ngmixer's
/// `cen: {type: dgauss|normal2d, width: w}` is `CenPrior::new(0, 0, w, w)`).
/// `ln p = -½ (d1/σ1)² - ½ (d2/σ2)²`, peak 0, never fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenPrior {
    cen1: f64,
    cen2: f64,
    sigma1: f64,
    sigma2: f64,
    sinv1: f64,
    sinv2: f64,
    s2inv1: f64,
    s2inv2: f64,
}

impl CenPrior {
    /// `CenPrior(cen1, cen2, sigma1, sigma2)`.
    ///
    /// # Errors
    /// Non-finite centres, non-positive or non-finite sigmas.
    pub fn new(cen1: f64, cen2: f64, sigma1: f64, sigma2: f64) -> crate::Result<Self> {
        check_finite(cen1, "cen prior cen1")?;
        check_finite(cen2, "cen prior cen2")?;
        check_positive(sigma1, "cen prior sigma1")?;
        check_positive(sigma2, "cen prior sigma2")?;
        Ok(Self {
            cen1,
            cen2,
            sigma1,
            sigma2,
            sinv1: 1.0 / sigma1,
            sinv2: 1.0 / sigma2,
            s2inv1: 1.0 / (sigma1 * sigma1),
            s2inv2: 1.0 / (sigma2 * sigma2),
        })
    }

    /// The centres `(cen1, cen2)`.
    pub fn cen(&self) -> (f64, f64) {
        (self.cen1, self.cen2)
    }

    /// The widths `(sigma1, sigma2)`.
    pub fn sigma(&self) -> (f64, f64) {
        (self.sigma1, self.sigma2)
    }

    /// `ln p(x1, x2)` (ngmix `get_lnprob_scalar`).
    #[inline]
    pub fn lnprob(&self, x1: f64, x2: f64) -> f64 {
        let d1 = self.cen1 - x1;
        let d2 = self.cen2 - x2;
        -0.5 * d1 * d1 * self.s2inv1 - 0.5 * d2 * d2 * self.s2inv2
    }

    /// The two terms of `ln p` separately (ngmix `get_lnprob_scalar_sep`).
    #[inline]
    pub fn lnprob_sep(&self, x1: f64, x2: f64) -> (f64, f64) {
        let d1 = self.cen1 - x1;
        let d2 = self.cen2 - x2;
        (-0.5 * d1 * d1 * self.s2inv1, -0.5 * d2 * d2 * self.s2inv2)
    }

    /// `p(x1, x2) = exp(ln p)`.
    #[inline]
    pub fn prob(&self, x1: f64, x2: f64) -> f64 {
        self.lnprob(x1, x2).exp()
    }

    /// The signed residuals `((x1 - cen1)/σ1, (x2 - cen2)/σ2)` (ngmix `get_fdiff`; note that
    /// [`PriorSimpleSep`](super::PriorSimpleSep) does not use these but the unsigned
    /// `sqrt(-2 ln p)` of each term).
    #[inline]
    pub fn fdiff(&self, x1: f64, x2: f64) -> (f64, f64) {
        ((x1 - self.cen1) * self.sinv1, (x2 - self.cen2) * self.sinv2)
    }

    /// One draw: `cen1 + σ1 z1`, then `cen2 + σ2 z2`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        let a = self.cen1 + self.sigma1 * normal(rng);
        let b = self.cen2 + self.sigma2 * normal(rng);
        (a, b)
    }
}
