//! Priors on the reduced shear `(g1, g2)`: Bernstein & Armstrong, the flat disk, and the
//! COSMOS fits (Miller-type `GPriorM` and its erf variant `GPriorMErf`).

use super::{check_positive, GPrior};
use crate::error::{GMixError, GResult};
use crate::rng::uniform;
use rand_core::Rng;
use std::f64::consts::PI;

/// Maximum number of rejection trials per draw (the acceptance rates here are > 5%).
const MAX_REJECTION_TRIES: usize = 1_000_000;

/// Rejection sampler for a rotationally symmetric `p(g)`, as ngmix's `GPriorBase.sample1d` /
/// `sample2d`: `|g|` uniform on `[0, gmax - 1e-4)`, accepted when a uniform height in
/// `[0, 1.1 max p1d)` is below `p1d(|g|)`; then a uniform angle `θ` and
/// `(g cos 2θ, g sin 2θ)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RadialSampler {
    /// Upper end of the `|g|` proposals (`gmax - 1e-4`).
    gtop: f64,
    /// `1.1 ×` the maximum of the 1-d density.
    hmax: f64,
    /// Where the maximum is (fallback value).
    gpeak: f64,
}

impl RadialSampler {
    /// Locates the maximum of `p1d` on `[0, gmax - 1e-4]` (a grid of 4096 cells, then a
    /// golden-section refinement around the best cell). ngmix uses a Nelder–Mead from a
    /// guess; only an upper bound matters for the sampled distribution.
    fn new(gmax: f64, p1d: impl Fn(f64) -> f64) -> crate::Result<Self> {
        let gtop = gmax - 1.0e-4;
        if gtop.is_nan() || gtop <= 0.0 {
            return Err(crate::Error::Invalid(format!(
                "g prior: gmax {gmax} too small"
            )));
        }
        const NGRID: usize = 4096;
        let step = gtop / NGRID as f64;
        let mut best = (0usize, f64::NEG_INFINITY);
        for i in 0..=NGRID {
            let v = p1d(i as f64 * step);
            if v > best.1 {
                best = (i, v);
            }
        }
        let (mut a, mut b) = (
            (best.0 as f64 - 1.0).max(0.0) * step,
            ((best.0 as f64 + 1.0) * step).min(gtop),
        );
        let invphi = 0.5 * (5f64.sqrt() - 1.0);
        for _ in 0..80 {
            let c = b - invphi * (b - a);
            let d = a + invphi * (b - a);
            if p1d(c) > p1d(d) {
                b = d;
            } else {
                a = c;
            }
        }
        let gref = 0.5 * (a + b);
        let (gpeak, pmax) = if p1d(gref) > best.1 {
            (gref, p1d(gref))
        } else {
            (best.0 as f64 * step, best.1)
        };
        if !pmax.is_finite() || pmax <= 0.0 {
            return Err(crate::Error::Invalid(
                "g prior: 1-d density has no positive maximum".into(),
            ));
        }
        Ok(Self {
            gtop,
            hmax: 1.1 * pmax,
            gpeak,
        })
    }

    fn sample_g<R: Rng + ?Sized>(&self, rng: &mut R, p1d: impl Fn(f64) -> f64) -> f64 {
        for _ in 0..MAX_REJECTION_TRIES {
            let g = self.gtop * uniform(rng);
            let h = self.hmax * uniform(rng);
            if h < p1d(g) {
                return g;
            }
        }
        self.gpeak
    }

    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R, p1d: impl Fn(f64) -> f64) -> (f64, f64) {
        let g = self.sample_g(rng, p1d);
        let twotheta = 2.0 * (uniform(rng) * 2.0 * PI);
        (g * twotheta.cos(), g * twotheta.sin())
    }
}

/// The g prior of Bernstein & Armstrong (2014) (ngmix `GPriorBA`):
/// `p(g) = A (1 - g²)² exp(-g²/(2σ²))` for `|g| < 1` (0 outside), so `ln p = 0` at `g = 0`
/// with the default `A = 1`. It is **not** normalised: `∫ p d²g < 1` (see the tests).
/// `ln p` is a range error for `|g| >= 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GPriorBA {
    sigma: f64,
    a: f64,
    sig2inv: f64,
    sampler: RadialSampler,
}

impl GPriorBA {
    /// `GPriorBA(sigma)` with `A = 1`.
    ///
    /// # Errors
    /// Non-positive or non-finite sigma.
    pub fn new(sigma: f64) -> crate::Result<Self> {
        Self::with_amplitude(sigma, 1.0)
    }

    /// `GPriorBA(sigma, A)`.
    ///
    /// # Errors
    /// Non-positive or non-finite sigma or A.
    pub fn with_amplitude(sigma: f64, a: f64) -> crate::Result<Self> {
        check_positive(sigma, "g prior BA sigma")?;
        check_positive(a, "g prior BA amplitude A")?;
        let sig2inv = 1.0 / (sigma * sigma);
        let sampler = RadialSampler::new(1.0, |g| Self::p1d(a, sig2inv, g))?;
        Ok(Self {
            sigma,
            a,
            sig2inv,
            sampler,
        })
    }

    /// The width σ.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The amplitude A.
    pub fn amplitude(&self) -> f64 {
        self.a
    }

    #[inline]
    fn p1d(a: f64, sig2inv: f64, g: f64) -> f64 {
        let gsq = g * g;
        let omgsq = 1.0 - gsq;
        let mut p = 0.0;
        if omgsq > 0.0 {
            p = omgsq * omgsq * (-0.5 * gsq * sig2inv).exp();
            p *= 2.0 * PI * g;
        }
        a * p
    }
}

impl GPrior for GPriorBA {
    fn lnprob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let gsq = g1 * g1 + g2 * g2;
        let omgsq = 1.0 - gsq;
        if omgsq <= 0.0 {
            return Err(GMixError::Range("g^2 too big"));
        }
        Ok(2.0 * omgsq.ln() - 0.5 * gsq * self.sig2inv)
    }

    fn prob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let gsq = g1 * g1 + g2 * g2;
        let omgsq = 1.0 - gsq;
        let mut p = 0.0;
        if omgsq > 0.0 {
            p = omgsq * omgsq * (-0.5 * gsq * self.sig2inv).exp();
        }
        Ok(self.a * p)
    }

    fn prob1d(&self, g: f64) -> GResult<f64> {
        Ok(Self::p1d(self.a, self.sig2inv, g))
    }

    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        self.sampler
            .sample2d(rng, |g| Self::p1d(self.a, self.sig2inv, g))
    }
}

/// Uniform over the disk `|g| < radius` (ngmix `ZDisk2D`; ngmixer's `g: flat` and the g prior of
/// the `gflat` joint prior, radius 1). `ln p = 0` inside, range error for `|g| >= radius`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZDisk2D {
    radius: f64,
    radius_sq: f64,
}

impl ZDisk2D {
    /// `ZDisk2D(radius)`.
    ///
    /// # Errors
    /// Non-positive or non-finite radius.
    pub fn new(radius: f64) -> crate::Result<Self> {
        check_positive(radius, "ZDisk2D radius")?;
        Ok(Self {
            radius,
            radius_sq: radius * radius,
        })
    }

    /// The radius.
    pub fn radius(&self) -> f64 {
        self.radius
    }

    /// `ln p` as a function of the radius `r` (ngmix `get_lnprob_scalar1d`): 0 for `r < radius`.
    ///
    /// # Errors
    /// Range error for `r >= radius`.
    pub fn lnprob1d(&self, r: f64) -> GResult<f64> {
        if r >= self.radius {
            Err(GMixError::Range("position out of bounds"))
        } else {
            Ok(0.0)
        }
    }
}

impl GPrior for ZDisk2D {
    fn lnprob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let r2 = g1 * g1 + g2 * g2;
        if r2 >= self.radius_sq {
            Err(GMixError::Range("position out of bounds"))
        } else {
            Ok(0.0)
        }
    }

    fn prob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let r2 = g1 * g1 + g2 * g2;
        Ok(if r2 >= self.radius_sq { 0.0 } else { 1.0 })
    }

    /// 1 for `r < radius`, else 0 (ngmix's value: no `2π r` factor).
    fn prob1d(&self, r: f64) -> GResult<f64> {
        Ok(if r >= self.radius { 0.0 } else { 1.0 })
    }

    /// `r = sqrt(radius² u1)`, `θ = 2π u2`, `(r cos θ, r sin θ)`.
    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        let r = (self.radius_sq * uniform(rng)).sqrt();
        let theta = 2.0 * PI * uniform(rng);
        (r * theta.cos(), r * theta.sin())
    }
}

/// The Miller et al. form fitted to COSMOS (ngmix `GPriorM`, pars `[A, a, g0, gmax]`):
/// `p(g) = A (1 - exp((g - gmax)/a)) / ((1 + g) sqrt(g² + g0²))` for `g <= gmax`, 0 beyond.
/// `ln p` is a range error where `p <= 0` (`g >= gmax`). Its peak is not 1: `ln p(0) ≈ 8.6`
/// for `cosmos-exp`, so the LM residual is clipped to 0 there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GPriorM {
    pars: [f64; 4],
    g0sq: f64,
    sampler: RadialSampler,
}

impl GPriorM {
    /// `GPriorM([A, a, g0, gmax])`.
    ///
    /// # Errors
    /// Non-positive or non-finite parameters, `gmax > 1`.
    pub fn new(pars: [f64; 4]) -> crate::Result<Self> {
        for (v, what) in pars.iter().zip(["A", "a", "g0", "gmax"]) {
            check_positive(*v, &format!("GPriorM {what}"))?;
        }
        if pars[3] > 1.0 {
            return Err(crate::Error::Invalid(format!(
                "GPriorM gmax {} > 1",
                pars[3]
            )));
        }
        let g0sq = pars[2] * pars[2];
        let sampler = RadialSampler::new(pars[3], |g| {
            Self::p2d_of(&pars, g0sq, g, g * g) * (2.0 * PI * g)
        })?;
        Ok(Self {
            pars,
            g0sq,
            sampler,
        })
    }

    /// `make_gprior_cosmos_exp()`: `[560.0, 1.11, 0.052, 0.791]`.
    pub fn cosmos_exp() -> crate::Result<Self> {
        Self::new([560.0, 1.11, 0.052, 0.791])
    }

    /// `make_gprior_cosmos_dev()`: `[560.0, 1.28, 0.088, 0.887]`.
    pub fn cosmos_dev() -> crate::Result<Self> {
        Self::new([560.0, 1.28, 0.088, 0.887])
    }

    /// The parameters `[A, a, g0, gmax]`.
    pub fn pars(&self) -> [f64; 4] {
        self.pars
    }

    /// ngmix `_gprior2d_exp_scalar(A, a, g0sq, gmax, g, gsq)`.
    #[inline]
    fn p2d_of(pars: &[f64; 4], g0sq: f64, g: f64, gsq: f64) -> f64 {
        let [a_amp, a, _, gmax] = *pars;
        if g > gmax {
            return 0.0;
        }
        let numer = a_amp * (1.0 - ((g - gmax) / a).exp());
        let denom = (1.0 + g) * (gsq + g0sq).sqrt();
        numer / denom
    }
}

impl GPrior for GPriorM {
    fn lnprob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let gsq = g1 * g1 + g2 * g2;
        let p = Self::p2d_of(&self.pars, self.g0sq, gsq.sqrt(), gsq);
        if p <= 0.0 {
            return Err(GMixError::Range("g too big"));
        }
        Ok(p.ln())
    }

    fn prob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let gsq = g1 * g1 + g2 * g2;
        Ok(Self::p2d_of(&self.pars, self.g0sq, gsq.sqrt(), gsq))
    }

    fn prob1d(&self, g: f64) -> GResult<f64> {
        Ok(Self::p2d_of(&self.pars, self.g0sq, g, g * g) * (2.0 * PI * g))
    }

    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        self.sampler.sample2d(rng, |g| {
            Self::p2d_of(&self.pars, self.g0sq, g, g * g) * (2.0 * PI * g)
        })
    }
}

/// The Miller form times an erf cut-off (ngmix `GPriorMErf`, pars `[A, a, g0, gmax, gsigma]`;
/// ngmixer's `g: cosmos-sersic` is `make_gprior_cosmos_sersic(type='erf')`, pars
/// `[0.0250834, 1.98317, 0.0793992, 0.706151, 0.124546]`):
/// `p(g) = A (1 - exp((g - 1)/a)) · ½ (1 + erf((gmax - g)/gsigma)) / ((1 + g) sqrt(g² + g0²))`.
/// `p` (and `ln p`) are range errors for `|g| >= 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GPriorMErf {
    pars: [f64; 5],
    g0sq: f64,
    sampler: RadialSampler,
}

impl GPriorMErf {
    /// `GPriorMErf([A, a, g0, gmax, gsigma])`.
    ///
    /// # Errors
    /// Non-positive or non-finite parameters.
    pub fn new(pars: [f64; 5]) -> crate::Result<Self> {
        for (v, what) in pars.iter().zip(["A", "a", "g0", "gmax", "gsigma"]) {
            check_positive(*v, &format!("GPriorMErf {what}"))?;
        }
        let g0sq = pars[2] * pars[2];
        let sampler = RadialSampler::new(1.0, |g| 2.0 * PI * g * Self::p_of(&pars, g0sq, g))?;
        Ok(Self {
            pars,
            g0sq,
            sampler,
        })
    }

    /// `make_gprior_cosmos_sersic(type='erf')`.
    pub fn cosmos_sersic() -> crate::Result<Self> {
        Self::new([0.0250834, 1.98317, 0.0793992, 0.706151, 0.124546])
    }

    /// The parameters `[A, a, g0, gmax, gsigma]`.
    pub fn pars(&self) -> [f64; 5] {
        self.pars
    }

    /// ngmix `_get_prob_nocheck_scalar(g)` (no `2π g`).
    #[inline]
    fn p_of(pars: &[f64; 5], g0sq: f64, g: f64) -> f64 {
        let [a_amp, a, _, gmax_func, gsigma] = *pars;
        let numer1 = a_amp * (1.0 - ((g - 1.0) / a).exp());
        let arg = (gmax_func - g) / gsigma;
        let gerf = 0.5 * (1.0 + libm::erf(arg));
        let numer = numer1 * gerf;
        let denom = (1.0 + g) * (g * g + g0sq).sqrt();
        numer / denom
    }

    #[inline]
    fn check(g: f64) -> GResult<()> {
        if !(0.0..1.0).contains(&g) {
            Err(GMixError::Range("g out of range"))
        } else {
            Ok(())
        }
    }
}

impl GPrior for GPriorMErf {
    fn lnprob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        self.prob2d(g1, g2).map(f64::ln)
    }

    fn prob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        let g = (g1 * g1 + g2 * g2).sqrt();
        Self::check(g)?;
        Ok(Self::p_of(&self.pars, self.g0sq, g))
    }

    fn prob1d(&self, g: f64) -> GResult<f64> {
        Self::check(g)?;
        Ok(2.0 * PI * g * Self::p_of(&self.pars, self.g0sq, g))
    }

    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        self.sampler
            .sample2d(rng, |g| 2.0 * PI * g * Self::p_of(&self.pars, self.g0sq, g))
    }
}

/// A g prior as chosen by an ngmixer config (`g: {type: ...}`). Static dispatch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShapePrior {
    /// `ba`.
    Ba(GPriorBA),
    /// `flat` (and the gflat prior).
    Flat(ZDisk2D),
    /// `cosmos-exp`, `cosmos-dev`.
    M(GPriorM),
    /// `cosmos-sersic`.
    MErf(GPriorMErf),
}

impl ShapePrior {
    /// `ba` with `sigma` ([`GPriorBA::new`]).
    ///
    /// # Errors
    /// Bad sigma.
    pub fn ba(sigma: f64) -> crate::Result<Self> {
        GPriorBA::new(sigma).map(Self::Ba)
    }

    /// `flat`: `ZDisk2D(1.0)`.
    pub fn flat() -> Self {
        Self::Flat(ZDisk2D {
            radius: 1.0,
            radius_sq: 1.0,
        })
    }

    /// `cosmos-sersic` ([`GPriorMErf::cosmos_sersic`]).
    ///
    /// # Errors
    /// Never in practice (fixed constants).
    pub fn cosmos_sersic() -> crate::Result<Self> {
        GPriorMErf::cosmos_sersic().map(Self::MErf)
    }

    /// `cosmos-exp` ([`GPriorM::cosmos_exp`]).
    ///
    /// # Errors
    /// Never in practice (fixed constants).
    pub fn cosmos_exp() -> crate::Result<Self> {
        GPriorM::cosmos_exp().map(Self::M)
    }

    /// `cosmos-dev` ([`GPriorM::cosmos_dev`]).
    ///
    /// # Errors
    /// Never in practice (fixed constants).
    pub fn cosmos_dev() -> crate::Result<Self> {
        GPriorM::cosmos_dev().map(Self::M)
    }
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            ShapePrior::Ba($p) => $e,
            ShapePrior::Flat($p) => $e,
            ShapePrior::M($p) => $e,
            ShapePrior::MErf($p) => $e,
        }
    };
}

impl GPrior for ShapePrior {
    fn lnprob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        dispatch!(self, p => p.lnprob2d(g1, g2))
    }

    fn prob2d(&self, g1: f64, g2: f64) -> GResult<f64> {
        dispatch!(self, p => p.prob2d(g1, g2))
    }

    fn prob1d(&self, g: f64) -> GResult<f64> {
        dispatch!(self, p => p.prob1d(g))
    }

    fn fdiff(&self, g1: f64, g2: f64) -> GResult<f64> {
        dispatch!(self, p => p.fdiff(g1, g2))
    }

    fn sample2d<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        dispatch!(self, p => p.sample2d(rng))
    }
}
