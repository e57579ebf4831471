//! A single 2-D Gaussian and mixtures of them.

use crate::error::{GMixError, GResult};
use crate::gmix::moments;

/// ngmix's lowest allowed determinant / T (`GMIX_LOW_DETVAL`).
pub const LOW_DETVAL: f64 = 1.0e-200;

/// One 2-D Gaussian `[p, row, col, irr, irc, icc]` with its cached normalisation.
///
/// Construct with [`Gauss2D::new`], which validates the covariance (ngmix's `gauss2d_set`
/// followed by `gauss2d_set_norm`), so every `Gauss2D` in a mixture can be evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauss2D {
    /// Integrated flux.
    pub p: f64,
    /// Centre along v (row direction), sky units.
    pub row: f64,
    /// Centre along u (col direction), sky units.
    pub col: f64,
    /// Second moment ⟨v²⟩.
    pub irr: f64,
    /// Second moment ⟨uv⟩.
    pub irc: f64,
    /// Second moment ⟨u²⟩.
    pub icc: f64,
    /// `irr icc - irc²`.
    pub det: f64,
    /// `irr / det`.
    pub drr: f64,
    /// `irc / det`.
    pub drc: f64,
    /// `icc / det`.
    pub dcc: f64,
    /// `1 / (2π sqrt(det))`.
    pub norm: f64,
    /// `p · norm`.
    pub pnorm: f64,
}

impl Gauss2D {
    /// Set a Gaussian and its normalisation; a range error when `det < 1e-200` or
    /// `irr + icc <= 1e-200` (also for NaN input).
    #[inline]
    pub fn new(p: f64, row: f64, col: f64, irr: f64, irc: f64, icc: f64) -> GResult<Self> {
        let det = irr * icc - irc * irc;
        // NaN input fails too
        if det.is_nan() || det < LOW_DETVAL {
            return Err(GMixError::Range("det too low"));
        }
        let t = irr + icc;
        if t.is_nan() || t <= LOW_DETVAL {
            return Err(GMixError::Range("T too low"));
        }
        let idet = 1.0 / det;
        let norm = 1.0 / (2.0 * std::f64::consts::PI * det.sqrt());
        Ok(Self {
            p,
            row,
            col,
            irr,
            irc,
            icc,
            det,
            drr: irr * idet,
            drc: irc * idet,
            dcc: icc * idet,
            norm,
            pnorm: p * norm,
        })
    }

    /// The six defining numbers `[p, row, col, irr, irc, icc]`.
    #[inline]
    pub fn pars(&self) -> [f64; 6] {
        [self.p, self.row, self.col, self.irr, self.irc, self.icc]
    }

    /// Chi² of sky point `(v, u)`.
    #[inline(always)]
    pub fn chi2(&self, v: f64, u: f64) -> f64 {
        let vd = v - self.row;
        let ud = u - self.col;
        self.dcc * vd * vd + self.drr * ud * ud - 2.0 * self.drc * vd * ud
    }

    /// Exact value (libm exp, no cut-off) at sky point `(v, u)`, per unit area.
    #[inline]
    pub fn eval(&self, v: f64, u: f64) -> f64 {
        self.pnorm * (-0.5 * self.chi2(v, u)).exp()
    }

    /// A copy with a new flux.
    #[inline]
    pub fn with_p(&self, p: f64) -> Self {
        Self {
            p,
            pnorm: p * self.norm,
            ..*self
        }
    }
}

/// A Gaussian mixture.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GMix {
    gauss: Vec<Gauss2D>,
}

impl GMix {
    /// An empty mixture.
    pub fn new() -> Self {
        Self::default()
    }

    /// A mixture from ready Gaussians.
    pub fn from_gaussians(gauss: Vec<Gauss2D>) -> Self {
        Self { gauss }
    }

    /// From "full" parameters `[p, row, col, irr, irc, icc] × n`.
    pub fn from_full_pars(pars: &[f64]) -> GResult<Self> {
        if !pars.len().is_multiple_of(6) || pars.is_empty() {
            return Err(GMixError::Range(
                "full pars length must be a non-zero multiple of 6",
            ));
        }
        pars.chunks_exact(6)
            .map(|c| Gauss2D::new(c[0], c[1], c[2], c[3], c[4], c[5]))
            .collect::<GResult<Vec<_>>>()
            .map(Self::from_gaussians)
    }

    /// The full parameter vector `[p, row, col, irr, irc, icc] × n`.
    pub fn full_pars(&self) -> Vec<f64> {
        self.gauss.iter().flat_map(|g| g.pars()).collect()
    }

    /// Number of Gaussians.
    #[inline]
    pub fn len(&self) -> usize {
        self.gauss.len()
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.gauss.is_empty()
    }

    /// The Gaussians.
    #[inline]
    pub fn gaussians(&self) -> &[Gauss2D] {
        &self.gauss
    }

    /// Mutable access to the Gaussians (keep them valid: prefer rebuilding with [`Gauss2D::new`]).
    #[inline]
    pub fn gaussians_mut(&mut self) -> &mut Vec<Gauss2D> {
        &mut self.gauss
    }

    /// Total flux `Σ p`.
    pub fn flux(&self) -> f64 {
        self.gauss.iter().map(|g| g.p).sum()
    }

    /// Rescale all fluxes so they sum to `flux`.
    pub fn set_flux(&mut self, flux: f64) {
        let psum0 = self.flux();
        let rat = flux / psum0;
        for g in &mut self.gauss {
            *g = g.with_p(g.p * rat);
        }
    }

    /// Flux-weighted centre `(row, col)`.
    pub fn cen(&self) -> (f64, f64) {
        let (mut r, mut c, mut ps) = (0.0, 0.0, 0.0);
        for g in &self.gauss {
            r += g.p * g.row;
            c += g.p * g.col;
            ps += g.p;
        }
        (r / ps, c / ps)
    }

    /// Move the mixture so its flux-weighted centre is `(row, col)`.
    pub fn set_cen(&mut self, row: f64, col: f64) {
        let (r0, c0) = self.cen();
        for g in &mut self.gauss {
            g.row += row - r0;
            g.col += col - c0;
        }
    }

    /// Second moments about the centre, summed with weights p: `(irr, irc, icc, psum)`.
    fn moment_sums(&self) -> (f64, f64, f64, f64) {
        let (r0, c0) = self.cen();
        let (mut irr, mut irc, mut icc, mut ps) = (0.0, 0.0, 0.0, 0.0);
        for g in &self.gauss {
            let dr = g.row - r0;
            let dc = g.col - c0;
            irr += g.p * (g.irr + dr * dr);
            irc += g.p * (g.irc + dr * dc);
            icc += g.p * (g.icc + dc * dc);
            ps += g.p;
        }
        (irr, irc, icc, ps)
    }

    /// `T = ⟨v²⟩ + ⟨u²⟩` of the mixture (about its centre).
    pub fn t(&self) -> f64 {
        let (irr, _, icc, ps) = self.moment_sums();
        (irr + icc) / ps
    }

    /// `(e1, e2, T)`; a range error for zero total flux or T <= 0.
    pub fn e1e2t(&self) -> GResult<(f64, f64, f64)> {
        let (irr, irc, icc, ps) = self.moment_sums();
        if ps == 0.0 {
            return Err(GMixError::Range("cannot calculate T due to zero psum"));
        }
        let tsum = irr + icc;
        if tsum.is_nan() || tsum <= 0.0 {
            return Err(GMixError::Range("T <= 0.0"));
        }
        Ok(((icc - irr) / tsum, 2.0 * irc / tsum, tsum / ps))
    }

    /// `(g1, g2, T)` via the reduced-shear conversion of `(e1, e2)`.
    pub fn g1g2t(&self) -> GResult<(f64, f64, f64)> {
        let (e1, e2, t) = self.e1e2t()?;
        let (g1, g2) = crate::gmix::shape::e1e2_to_g1g2(e1, e2)?;
        Ok((g1, g2, t))
    }

    /// Convolve with a PSF mixture (ngmix `gmix_convolve_fill`): object-major order, PSF
    /// weights divided by the PSF's total flux, PSF offsets relative to its mean centre.
    pub fn convolve(&self, psf: &GMix) -> GResult<GMix> {
        let mut out = GMix::new();
        self.convolve_into(psf, &mut out)?;
        Ok(out)
    }

    /// [`GMix::convolve`] into a reusable output mixture.
    pub fn convolve_into(&self, psf: &GMix, out: &mut GMix) -> GResult<()> {
        let (pr, pc) = psf.cen();
        let ipsum = 1.0 / psf.flux();
        out.gauss.clear();
        out.gauss.reserve(self.len() * psf.len());
        for o in &self.gauss {
            for p in &psf.gauss {
                out.gauss.push(Gauss2D::new(
                    o.p * p.p * ipsum,
                    o.row + (p.row - pr),
                    o.col + (p.col - pc),
                    o.irr + p.irr,
                    o.irc + p.irc,
                    o.icc + p.icc,
                )?);
            }
        }
        Ok(())
    }

    /// A sheared copy (ngmix `GMix.get_sheared`): each covariance transformed as by shear
    /// `(s1, s2)`; centres unchanged.
    pub fn sheared(&self, s1: f64, s2: f64) -> GResult<GMix> {
        let gauss = self
            .gauss
            .iter()
            .map(|g| {
                let (irr, irc, icc) = moments::sheared_moments(g.irr, g.irc, g.icc, s1, s2);
                Gauss2D::new(g.p, g.row, g.col, irr, irc, icc)
            })
            .collect::<GResult<Vec<_>>>()?;
        Ok(GMix { gauss })
    }

    /// A round copy (ngmix `GMix.make_round`): every component made round with
    /// `T_i → T_i · factor`, `factor = (1-g²)/(1+g²)` of the mixture's g, or, with
    /// `preserve_size`, the largest eigenvalue of the total covariance over `T/2`.
    pub fn make_round(&self, preserve_size: bool) -> GResult<GMix> {
        let factor = if preserve_size {
            let (e1, e2, t) = self.e1e2t()?;
            let (irr, irc, icc) = moments::e2mom(e1, e2, t);
            let tr = irr + icc;
            let dt = ((irr - icc) * (irr - icc) + 4.0 * irc * irc).sqrt();
            let eig_max = 0.5 * (tr + dt);
            eig_max / (t / 2.0)
        } else {
            let (g1, g2, _) = self.g1g2t()?;
            crate::gmix::shape::round_factor(g1, g2)
        };
        let gauss = self
            .gauss
            .iter()
            .map(|g| {
                let ti = g.irr + g.icc;
                Gauss2D::new(g.p, g.row, g.col, 0.5 * ti * factor, 0.0, 0.5 * ti * factor)
            })
            .collect::<GResult<Vec<_>>>()?;
        Ok(GMix { gauss })
    }
}

impl std::ops::Index<usize> for GMix {
    type Output = Gauss2D;
    fn index(&self, i: usize) -> &Gauss2D {
        &self.gauss[i]
    }
}
