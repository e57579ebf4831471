//! The joint separable prior of the simple models (ngmix `joint_prior.PriorSimpleSep`).

use super::{CenPrior, GPrior, Prior1D, ShapePrior, TPrior};
use crate::error::{GMixError, GResult};
use rand_core::Rng;

/// Separate priors on each parameter of a simple model `[c1, c2, g1, g2, T, F_0 .. F_{nband-1}]`
/// (ngmix `PriorSimpleSep(cen_prior, g_prior, T_prior, F_prior)`).
///
/// `ln p = ln p_cen(c1, c2) + ln p_g(g1, g2) + ln p_T(T) + Σ_b ln p_F_b(F_b)`.
///
/// The LM residual rows ([`PriorSimpleSep::fill_fdiff`]) are, in this order,
/// `cen1, cen2, g, T, F_0 .. F_{nband-1}` (`4 + nband` rows), each `sqrt(max(0, -2 ln p_i))`
/// of its own term (the centre split with [`CenPrior::lnprob_sep`]); the sign of the offset is
/// lost. ngmix's LM reserves `5 + nband` rows for the prior; the last stays 0.
///
/// None of ngmixer's priors carry bounds, so ngmix's `bounds` is always `None` here.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorSimpleSep {
    cen: CenPrior,
    g: ShapePrior,
    t: TPrior,
    counts: Vec<TPrior>,
}

impl PriorSimpleSep {
    /// `PriorSimpleSep(cen, g, T, counts)`; `counts` has one prior per band (ngmixer's
    /// `repeat: true` is `vec![p; nband]`).
    ///
    /// # Errors
    /// An empty `counts`.
    pub fn new(
        cen: CenPrior,
        g: ShapePrior,
        t: TPrior,
        counts: Vec<TPrior>,
    ) -> crate::Result<Self> {
        if counts.is_empty() {
            return Err(crate::Error::Invalid(
                "PriorSimpleSep: no counts prior".into(),
            ));
        }
        Ok(Self { cen, g, t, counts })
    }

    /// The same prior with the g prior replaced by the flat disk `ZDisk2D(1.0)` (ngmixer's
    /// `gflat_prior`).
    pub fn gflat(&self) -> Self {
        self.with_g_prior(ShapePrior::flat())
    }

    /// The same prior with another g prior.
    pub fn with_g_prior(&self, g: ShapePrior) -> Self {
        Self {
            cen: self.cen,
            g,
            t: self.t.clone(),
            counts: self.counts.clone(),
        }
    }

    /// The centre prior.
    pub fn cen_prior(&self) -> &CenPrior {
        &self.cen
    }

    /// The g prior.
    pub fn g_prior(&self) -> &ShapePrior {
        &self.g
    }

    /// The T prior.
    pub fn t_prior(&self) -> &TPrior {
        &self.t
    }

    /// The per-band counts priors.
    pub fn counts_priors(&self) -> &[TPrior] {
        &self.counts
    }

    /// Number of bands.
    pub fn nband(&self) -> usize {
        self.counts.len()
    }

    /// Number of model parameters, `5 + nband`.
    pub fn npars(&self) -> usize {
        5 + self.counts.len()
    }

    /// Number of residual rows [`PriorSimpleSep::fill_fdiff`] writes, `4 + nband`.
    pub fn n_fdiff(&self) -> usize {
        4 + self.counts.len()
    }

    fn check_pars(&self, pars: &[f64]) -> GResult<()> {
        if pars.len() < self.npars() {
            Err(GMixError::Range("wrong number of prior parameters"))
        } else {
            Ok(())
        }
    }

    /// `ln p(pars)` (ngmix `get_lnprob_scalar`). Parameters beyond `5 + nband` are ignored.
    ///
    /// # Errors
    /// Fewer than `5 + nband` parameters; any component's range error (|g| out of the
    /// support, a flat prior's bounds, a log-normal's `x <= 0`, ...).
    pub fn lnprob(&self, pars: &[f64]) -> GResult<f64> {
        self.check_pars(pars)?;
        let mut lnp = self.cen.lnprob(pars[0], pars[1]);
        lnp += self.g.lnprob2d(pars[2], pars[3])?;
        lnp += self.t.lnprob(pars[4])?;
        for (i, fp) in self.counts.iter().enumerate() {
            lnp += fp.lnprob(pars[5 + i])?;
        }
        Ok(lnp)
    }

    /// `exp(ln p)`.
    ///
    /// # Errors
    /// As [`PriorSimpleSep::lnprob`].
    pub fn prob(&self, pars: &[f64]) -> GResult<f64> {
        self.lnprob(pars).map(f64::exp)
    }

    /// Writes the `4 + nband` prior residuals into `out[..4 + nband]` and returns that count
    /// (ngmix `fill_fdiff`): `sqrt(max(0, -2 ln p_i))` for `cen1, cen2, g, T, F_0, ..`.
    /// A zero probability (a [`TwoSidedErf`](super::TwoSidedErf) far outside its limits)
    /// gives `+inf`.
    ///
    /// # Errors
    /// Fewer than `5 + nband` parameters or `out` shorter than `4 + nband`; any component's
    /// range error (then `out` is partly written, as in ngmix).
    pub fn fill_fdiff(&self, pars: &[f64], out: &mut [f64]) -> GResult<usize> {
        self.check_pars(pars)?;
        let n = self.n_fdiff();
        if out.len() < n {
            return Err(GMixError::Range("prior fdiff slice too short"));
        }
        let (l1, l2) = self.cen.lnprob_sep(pars[0], pars[1]);
        out[0] = l1;
        out[1] = l2;
        out[2] = self.g.lnprob2d(pars[2], pars[3])?;
        out[3] = self.t.lnprob(pars[4])?;
        for (i, fp) in self.counts.iter().enumerate() {
            out[4 + i] = fp.lnprob(pars[5 + i])?;
        }
        for v in &mut out[..n] {
            // numpy: chi2 = -2 lnp; chi2.clip(min=0); sqrt   (NaN stays NaN)
            let chi2 = -2.0 * *v;
            *v = if chi2 > 0.0 {
                chi2.sqrt()
            } else if chi2.is_nan() {
                chi2
            } else {
                0.0
            };
        }
        Ok(n)
    }

    /// One draw of all parameters into `out[..5 + nband]`, in ngmix's order: centre
    /// (`cen1`, then `cen2`), `(g1, g2)`, `T`, then each band's flux.
    ///
    /// # Errors
    /// `out` shorter than `5 + nband`.
    pub fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) -> GResult<()> {
        if out.len() < self.npars() {
            return Err(GMixError::Range("prior sample slice too short"));
        }
        let (c1, c2) = self.cen.sample(rng);
        let (g1, g2) = self.g.sample2d(rng);
        out[0] = c1;
        out[1] = c2;
        out[2] = g1;
        out[3] = g2;
        out[4] = self.t.sample(rng);
        for (i, fp) in self.counts.iter().enumerate() {
            out[5 + i] = fp.sample(rng);
        }
        Ok(())
    }

    /// One draw of all parameters as a vector of length `5 + nband`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        let mut out = vec![0.0; self.npars()];
        // cannot fail: the length is right
        let _ = self.sample_into(rng, &mut out);
        out
    }
}
