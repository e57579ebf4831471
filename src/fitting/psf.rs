//! PSF fits by Levenberg–Marquardt, as ngmix v1.3.5's bootstrapper runs them for ngmixer's
//! `psf_pars.model: gauss | turb | coellip<n>`.
//!
//! | model | ngmix v1.3.5 | parameters | prior |
//! |---|---|---|---|
//! | `gauss`, `turb` | `PSFRunner` + `LMSimple` | `[row, col, g1, g2, T, F]` | none |
//! | `coellip<n>` | `PSFRunnerCoellip` + `LMCoellip` | `[row, col, g1, g2, T_1..T_n, F_1..F_n]` | `PriorCoellipSame` ([`CoellipPrior::for_psf`]) |
//!
//! The PSF observation is fitted directly (no PSF convolution), with the v1.3.5 model
//! evaluation: accurate exp, each Gaussian evaluated only where `0 <= χ² < 25`, no pixel-area
//! factor, so fluxes are `pixel sum × scale²` ([`psf_flux_guess`]).
//!
//! Guesses ([`guess_simple`], [`guess_coellip`]) draw from the caller's random stream in
//! ngmix's order; [`fit_lm_psf`] makes up to `ntry` attempts from new guesses and keeps the
//! first success (or the last failure), as `PSFRunner.go(ntry)`.
//!
//! ngmix's `LMSimple._set_flux` reports `flux = pars[5]`, `flux_err = sqrt(cov[5,5])` for one
//! band; ngmixer writes `flux / flux_err` as `psf_model_s2n` and compares it with
//! `min_psf_model_s2n`. For `coellip<n>` with `n >= 2` index 5 is `T_2`, not a flux; this
//! module reproduces that ([`PsfLmFit::flux`]).
//!
//! The LM solver is [`crate::fitting::lm`] (analytic pixel derivatives; prior rows by forward
//! differences with MINPACK's step, as the max-likelihood fitter).

use rand_core::Rng;

use crate::error::{GMixError, GResult};
use crate::fitting::kernel::{Eval, ModelSpec, V1};
use crate::fitting::lm::{self, LeastSquares, LmPars, Normal, CDEF, ZERO_DOF};
use crate::fitting::maxlike::{fit_max, LmPrior, MaxLikeResult, NoPrior};
use crate::gmix::models::{Model, SimpleKind, Tables};
use crate::gmix::shape::g1g2_to_e1e2;
use crate::gmix::{GMix, Jacobian};
use crate::obs::{MultiBandObs, Observation};
use crate::priors::{fdiff_from_lnprob, CenPrior, GPrior, TwoSidedErf, ZDisk2D};
use crate::rng::uniform_range;

/// ngmix v1.3.5's LM settings for PSF fits (`_fit_one_psf_max`, `_fit_one_psf_coellip`),
/// before `psf_pars.fit_pars` updates them.
pub const PSF_LM_DEFAULT: LmPars = LmPars {
    maxfev: 4000,
    xtol: 5.0e-5,
    ftol: 5.0e-5,
};

/// Largest number of co-elliptical Gaussians with a guess in ngmix (`PSFRunnerCoellip`).
pub const MAX_COELLIP: usize = 4;

/// `_moffat2_pguess` (flux fractions of the coellip2 guess).
pub const MOFFAT2_PGUESS: [f64; 2] = [0.5, 0.5];
/// `_moffat2_fguess` (size fractions of the coellip2 guess).
pub const MOFFAT2_FGUESS: [f64; 2] = [0.48955064, 1.50658978];
/// `_moffat3_pguess`.
pub const MOFFAT3_PGUESS: [f64; 3] = [0.27559669, 0.55817131, 0.166232];
/// `_moffat3_fguess`.
pub const MOFFAT3_FGUESS: [f64; 3] = [0.36123609, 0.8426139, 2.58747785];
/// `_moffat4_pguess`.
pub const MOFFAT4_PGUESS: [f64; 4] = [0.44534, 0.366951, 0.10506, 0.0826497];
/// `_moffat4_fguess`.
pub const MOFFAT4_FGUESS: [f64; 4] = [0.541019, 1.19701, 0.282176, 3.51086];

/// A PSF model fitted by LM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LmPsfModel {
    /// One Gaussian, `[row, col, g1, g2, T, F]`.
    Gauss,
    /// The 3-Gaussian turbulent profile, `[row, col, g1, g2, T, F]`.
    Turb,
    /// `n` co-elliptical Gaussians (1..=4), `[row, col, g1, g2, T_1..T_n, F_1..F_n]`.
    Coellip(usize),
}

impl LmPsfModel {
    /// Parse `gauss`, `turb`, `coellip1`..`coellip4`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gauss" => Some(Self::Gauss),
            "turb" => Some(Self::Turb),
            _ => name
                .strip_prefix("coellip")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| (1..=MAX_COELLIP).contains(n))
                .map(Self::Coellip),
        }
    }

    /// Number of Gaussians of the fitted mixture.
    pub fn ngauss(self) -> usize {
        match self {
            Self::Gauss => 1,
            Self::Turb => 3,
            Self::Coellip(n) => n,
        }
    }

    /// Number of fit parameters.
    pub fn npars(self) -> usize {
        match self {
            Self::Gauss | Self::Turb => 6,
            Self::Coellip(n) => 4 + 2 * n,
        }
    }

    /// The mixture model of the parameters.
    pub fn model(self) -> Model {
        match self {
            Self::Gauss => Model::Simple(SimpleKind::Gauss),
            Self::Turb => Model::Simple(SimpleKind::Turb),
            Self::Coellip(n) => Model::Coellip(n),
        }
    }

    /// The mixture at `pars` (ngmix `get_gmix`: the fitted model, fluxes as fitted).
    ///
    /// # Errors
    /// [`GMixError::Range`] for a wrong parameter count or parameters outside the model's domain.
    pub fn gmix(self, pars: &[f64]) -> GResult<GMix> {
        self.model().gmix_with(pars, Tables::V1)
    }
}

/// ngmix's flux guess for a PSF fit: `image.sum() × scale²` (`set_guess0`).
pub fn psf_flux_guess(obs: &Observation) -> f64 {
    let scale = obs.jacobian.scale();
    obs.image.sum() * scale * scale
}

/// ngmix v1.3.5 `PSFRunner.get_guess` for `gauss`/`turb`: from `[0, 0, 0, 0, tguess, fguess]`,
/// centre `+ U(-0.01, 0.01)` (two draws), shape `+ U(-0.1, 0.1)` (two draws), then
/// `T × (1 + U(-0.1, 0.1))` and `F × (1 + U(-0.1, 0.1))`.
pub fn guess_simple<R: Rng + ?Sized>(tguess: f64, fguess: f64, rng: &mut R) -> [f64; 6] {
    let row = uniform_range(rng, -0.01, 0.01);
    let col = uniform_range(rng, -0.01, 0.01);
    let g1 = uniform_range(rng, -0.1, 0.1);
    let g2 = uniform_range(rng, -0.1, 0.1);
    let t = tguess * (1.0 + uniform_range(rng, -0.1, 0.1));
    let f = fguess * (1.0 + uniform_range(rng, -0.1, 0.1));
    [row, col, g1, g2, t, f]
}

/// ngmix v1.3.5 `PSFRunnerCoellip.get_guess`: centre `U(-0.01, 0.01)` (two draws), shape
/// `U(-0.05, 0.05)` (two draws); one Gaussian: `T (1 + U(±0.1))`, `F (1 + U(±0.1))`; `n = 2..4`:
/// `T_i = tguess f_i (1 + U(±0.01))` for all `i`, then `F_i = fguess p_i (1 + U(±0.01))`, with the
/// `_moffat<n>` fractions.
///
/// # Errors
/// [`GMixError::Range`] for `ngauss` outside 1..=4 (ngmix raises).
pub fn guess_coellip<R: Rng + ?Sized>(
    ngauss: usize,
    tguess: f64,
    fguess: f64,
    rng: &mut R,
) -> GResult<Vec<f64>> {
    if !(1..=MAX_COELLIP).contains(&ngauss) {
        return Err(GMixError::Range(
            "coellip psf guess: ngauss should be 1,2,3,4",
        ));
    }
    let mut g = vec![0.0; 4 + 2 * ngauss];
    g[0] = uniform_range(rng, -0.01, 0.01);
    g[1] = uniform_range(rng, -0.01, 0.01);
    g[2] = uniform_range(rng, -0.05, 0.05);
    g[3] = uniform_range(rng, -0.05, 0.05);
    let (p, f): (&[f64], &[f64]) = match ngauss {
        1 => {
            g[4] = tguess * (1.0 + uniform_range(rng, -0.1, 0.1));
            g[5] = fguess * (1.0 + uniform_range(rng, -0.1, 0.1));
            return Ok(g);
        }
        2 => (&MOFFAT2_PGUESS, &MOFFAT2_FGUESS),
        3 => (&MOFFAT3_PGUESS, &MOFFAT3_FGUESS),
        _ => (&MOFFAT4_PGUESS, &MOFFAT4_FGUESS),
    };
    const FAC: f64 = 0.01;
    for i in 0..ngauss {
        g[4 + i] = tguess * f[i] * (1.0 + uniform_range(rng, -FAC, FAC));
    }
    for i in 0..ngauss {
        g[4 + ngauss + i] = fguess * p[i] * (1.0 + uniform_range(rng, -FAC, FAC));
    }
    Ok(g)
}

/// ngmix `PriorCoellipSame`: centre, shape, and the same T prior for every `T_i` and the same
/// flux prior for every `F_i`. LM residual rows (`3 + 2n`): the two centre terms, the shape,
/// the `T_i`, the `F_i`, each `sqrt(max(0, -2 ln p))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoellipPrior {
    ngauss: usize,
    cen: CenPrior,
    g: ZDisk2D,
    t: TwoSidedErf,
    f: TwoSidedErf,
}

impl CoellipPrior {
    /// A prior from its parts.
    pub fn new(ngauss: usize, cen: CenPrior, g: ZDisk2D, t: TwoSidedErf, f: TwoSidedErf) -> Self {
        Self {
            ngauss,
            cen,
            g,
            t,
            f,
        }
    }

    /// The prior `PSFRunnerCoellip._set_prior` builds: `CenPrior(0, 0, 2 scale, 2 scale)`,
    /// `ZDisk2D(1)`, `T: TwoSidedErf(0.01 Tg, 0.001 Tg, 100 Tg, Tg)`,
    /// `F: TwoSidedErf(0.01 Fg, 0.001 Fg, 100 Fg, Fg)`.
    ///
    /// # Errors
    /// [`GMixError::Range`] when `tguess`, `fguess` or `pixel_scale` is not finite and positive
    /// (the prior widths would not be).
    pub fn for_psf(ngauss: usize, tguess: f64, fguess: f64, pixel_scale: f64) -> GResult<Self> {
        let bad = |_| GMixError::Range("coellip psf prior: guesses and scale must be > 0");
        let w = 2.0 * pixel_scale;
        let cen = CenPrior::new(0.0, 0.0, w, w).map_err(bad)?;
        let g = ZDisk2D::new(1.0).map_err(bad)?;
        let t =
            TwoSidedErf::new(0.01 * tguess, 0.001 * tguess, 100.0 * tguess, tguess).map_err(bad)?;
        let f =
            TwoSidedErf::new(0.01 * fguess, 0.001 * fguess, 100.0 * fguess, fguess).map_err(bad)?;
        Ok(Self::new(ngauss, cen, g, t, f))
    }

    /// Number of Gaussians.
    pub fn ngauss(&self) -> usize {
        self.ngauss
    }

    /// `ln p` of each residual row, in row order.
    fn lnprobs(&self, pars: &[f64], out: &mut [f64]) -> GResult<usize> {
        let n = self.ngauss;
        let nrows = 3 + 2 * n;
        if pars.len() < 4 + 2 * n || out.len() < nrows {
            return Err(GMixError::Range("coellip prior: wrong parameter count"));
        }
        let (l1, l2) = self.cen.lnprob_sep(pars[0], pars[1]);
        out[0] = l1;
        out[1] = l2;
        out[2] = self.g.lnprob2d(pars[2], pars[3])?;
        for i in 0..n {
            out[3 + i] = self.t.lnprob_value(pars[4 + i]);
            out[3 + n + i] = self.f.lnprob_value(pars[4 + n + i]);
        }
        Ok(nrows)
    }
}

impl LmPrior for CoellipPrior {
    fn nrows(&self) -> usize {
        3 + 2 * self.ngauss
    }

    fn fill_fdiff(&self, pars: &[f64], out: &mut [f64]) -> GResult<usize> {
        let n = self.lnprobs(pars, out)?;
        for r in &mut out[..n] {
            *r = fdiff_from_lnprob(*r);
        }
        Ok(n)
    }

    fn lnprob(&self, pars: &[f64]) -> GResult<f64> {
        let mut buf = vec![0.0; self.nrows()];
        let n = self.lnprobs(pars, &mut buf)?;
        Ok(buf[..n].iter().sum())
    }
}

/// A pixel with positive weight, in sky coordinates.
#[derive(Debug, Clone, Copy)]
struct Pix {
    v: f64,
    u: f64,
    d: f64,
    w: f64,
}

/// Coefficients of one co-elliptical Gaussian at the current parameters.
#[derive(Debug, Clone, Copy, Default)]
struct CoGauss {
    flux: f64,
    norm: f64,
    drr: f64,
    drc: f64,
    dcc: f64,
    /// `∂(irr, irc, icc)/∂g1`, `/∂g2`, `/∂T_i`.
    coef: [f64; 9],
}

/// The least-squares problem of a co-elliptical fit to one image (no PSF convolution).
#[derive(Debug)]
pub struct CoellipProblem<'a> {
    ngauss: usize,
    pix: Vec<Pix>,
    prior: Option<&'a CoellipPrior>,
    gs: Vec<CoGauss>,
    gm: GMix,
    prior_buf: Vec<f64>,
    prior_buf2: Vec<f64>,
}

/// Pixel statistics of a model.
#[derive(Debug, Clone, Copy, Default)]
struct PixStats {
    chi2: f64,
    s2n_numer: f64,
    s2n_denom: f64,
}

impl<'a> CoellipProblem<'a> {
    /// A problem over the pixels of `image` (row-major, `ncol` columns) with `weight > 0`.
    ///
    /// # Errors
    /// [`GMixError::Fatal`] for mismatched sizes or no pixel with positive weight.
    pub fn new(
        image: &[f64],
        weight: &[f64],
        ncol: usize,
        jac: &Jacobian,
        ngauss: usize,
        prior: Option<&'a CoellipPrior>,
    ) -> GResult<Self> {
        if image.len() != weight.len() || ncol == 0 || !image.len().is_multiple_of(ncol) {
            return Err(GMixError::Fatal("coellip fit: image/weight sizes differ"));
        }
        if ngauss == 0 {
            return Err(GMixError::Range("coellip fit: ngauss must be > 0"));
        }
        let mut pix = Vec::with_capacity(image.len());
        for (k, (&d, &w)) in image.iter().zip(weight).enumerate() {
            if w > 0.0 {
                let (v, u) = jac.vu((k / ncol) as f64, (k % ncol) as f64);
                pix.push(Pix { v, u, d, w });
            }
        }
        if pix.is_empty() {
            return Err(GMixError::Fatal("coellip fit: no weights > 0"));
        }
        let n = prior.map_or(0, |p| p.nrows());
        Ok(Self {
            ngauss,
            pix,
            prior,
            gs: Vec::with_capacity(ngauss),
            gm: GMix::new(),
            prior_buf: vec![0.0; n],
            prior_buf2: vec![0.0; n],
        })
    }

    /// Number of pixels used.
    pub fn npix(&self) -> usize {
        self.pix.len()
    }

    /// Set the Gaussians at `x` (validated as ngmix's `gmix_fill_coellip`).
    fn set(&mut self, x: &[f64]) -> GResult<(f64, f64)> {
        let n = self.ngauss;
        Model::Coellip(n).fill_with(&mut self.gm, x, Tables::V1)?;
        let (g1, g2) = (x[2], x[3]);
        let (e1, e2) = g1g2_to_e1e2(g1, g2)?;
        let gsq = g1 * g1 + g2 * g2;
        let opg = 1.0 + gsq;
        let opg2 = opg * opg;
        let de1dg1 = 2.0 / opg - 4.0 * g1 * g1 / opg2;
        let de1dg2 = -4.0 * g1 * g2 / opg2;
        let de2dg1 = de1dg2;
        let de2dg2 = 2.0 / opg - 4.0 * g2 * g2 / opg2;
        self.gs.clear();
        for (i, g) in self.gm.gaussians().iter().enumerate() {
            let th = 0.5 * x[4 + i];
            self.gs.push(CoGauss {
                flux: g.p,
                norm: g.norm,
                drr: g.drr,
                drc: g.drc,
                dcc: g.dcc,
                coef: [
                    -th * de1dg1,
                    th * de2dg1,
                    th * de1dg1,
                    -th * de1dg2,
                    th * de2dg2,
                    th * de1dg2,
                    0.5 * (1.0 - e1),
                    0.5 * e2,
                    0.5 * (1.0 + e1),
                ],
            });
        }
        Ok((x[0], x[1]))
    }

    fn stats(&mut self, x: &[f64]) -> GResult<PixStats> {
        let (row, col) = self.set(x)?;
        let mut st = PixStats::default();
        for p in &self.pix {
            let (vd, ud) = (p.v - row, p.u - col);
            let mut m = 0.0;
            for g in &self.gs {
                let chi2 = g.dcc * vd * vd + g.drr * ud * ud - 2.0 * g.drc * vd * ud;
                m += g.flux * g.norm * V1::eval(chi2);
            }
            let diff = m - p.d;
            st.chi2 += p.w * diff * diff;
            st.s2n_numer += p.d * m * p.w;
            st.s2n_denom += m * m * p.w;
        }
        Ok(st)
    }

    fn prior_chi2(&mut self, x: &[f64]) -> GResult<f64> {
        match self.prior {
            None => Ok(0.0),
            Some(p) => {
                let n = p.fill_fdiff(x, &mut self.prior_buf)?;
                Ok(self.prior_buf[..n].iter().map(|r| r * r).sum())
            }
        }
    }
}

impl<const N: usize> LeastSquares<N> for CoellipProblem<'_> {
    fn chi2(&mut self, x: &[f64; N]) -> GResult<f64> {
        let c = self.prior_chi2(x)?;
        Ok(c + self.stats(x)?.chi2)
    }

    fn normal(&mut self, x: &[f64; N]) -> GResult<Normal<N>> {
        let n = self.ngauss;
        if N != 4 + 2 * n {
            return Err(GMixError::Range("coellip fit: wrong parameter count"));
        }
        let (row, col) = self.set(x)?;
        let mut ne = Normal::<N>::default();
        let mut dm = [0.0; N];
        for p in &self.pix {
            let (vd, ud) = (p.v - row, p.u - col);
            dm.fill(0.0);
            let mut m = 0.0;
            for (i, g) in self.gs.iter().enumerate() {
                let av = g.dcc * vd - g.drc * ud;
                let au = g.drr * ud - g.drc * vd;
                let chi2 = vd * av + ud * au;
                let ev = V1::eval(chi2);
                if ev == 0.0 {
                    continue;
                }
                let unit = g.norm * ev;
                let gv = g.flux * unit;
                m += gv;
                let qrr = 0.5 * (av * av - g.dcc);
                let qrc = g.drc + av * au;
                let qcc = 0.5 * (au * au - g.drr);
                let c = &g.coef;
                dm[0] += gv * av;
                dm[1] += gv * au;
                dm[2] += gv * (c[0] * qrr + c[1] * qrc + c[2] * qcc);
                dm[3] += gv * (c[3] * qrr + c[4] * qrc + c[5] * qcc);
                dm[4 + i] += gv * (c[6] * qrr + c[7] * qrc + c[8] * qcc);
                dm[4 + n + i] += unit;
            }
            let diff = m - p.d;
            ne.chi2 += p.w * diff * diff;
            for a in 0..N {
                let wda = p.w * dm[a];
                if wda == 0.0 {
                    continue;
                }
                ne.jtr[a] += wda * diff;
                for b in a..N {
                    ne.jtj[a][b] += wda * dm[b];
                }
            }
        }
        for a in 0..N {
            for b in 0..a {
                ne.jtj[a][b] = ne.jtj[b][a];
            }
        }
        if let Some(pr) = self.prior {
            // prior rows: forward differences with MINPACK's step sqrt(eps)·|x|
            let nr = pr.fill_fdiff(x, &mut self.prior_buf)?;
            let eps = f64::EPSILON.sqrt();
            let mut jac = vec![[0.0; N]; nr];
            let mut xp = *x;
            for k in 0..N {
                let h = if x[k] == 0.0 { eps } else { eps * x[k].abs() };
                xp[k] = x[k] + h;
                let filled = pr.fill_fdiff(&xp, &mut self.prior_buf2);
                xp[k] = x[k];
                if let Ok(n2) = filled {
                    for (r, row) in jac.iter_mut().enumerate().take(nr.min(n2)) {
                        row[k] = (self.prior_buf2[r] - self.prior_buf[r]) / h;
                    }
                }
            }
            for (r, row) in jac.iter().enumerate() {
                let res = self.prior_buf[r];
                ne.chi2 += res * res;
                for a in 0..N {
                    if row[a] == 0.0 {
                        continue;
                    }
                    ne.jtr[a] += row[a] * res;
                    for b in 0..N {
                        ne.jtj[a][b] += row[a] * row[b];
                    }
                }
            }
        }
        Ok(ne)
    }
}

fn fit_coellip_n<const N: usize>(
    prob: &mut CoellipProblem<'_>,
    guess: &[f64],
    lm_pars: &LmPars,
) -> GResult<MaxLikeResult> {
    let mut g = [0.0; N];
    g.copy_from_slice(guess);
    // a guess outside the domain raises in ngmix (`_setup_data`)
    prob.set(&g)?;
    let out = lm::solve(prob, &g, lm_pars)?;
    if out.flags != 0 {
        let mut r = MaxLikeResult::failed(N, out.flags, out.nfev, out.njev);
        if out.flags == lm::LM_SINGULAR_MATRIX {
            r.pars = out.pars.to_vec();
        }
        return Ok(r);
    }
    let st = prob.stats(&out.pars)?;
    let npix = prob.npix();
    let mut res = MaxLikeResult::failed(N, 0, out.nfev, out.njev);
    res.pars = out.pars.to_vec();
    res.npix = npix;
    if npix == N {
        res.flags |= ZERO_DOF;
    } else {
        let s_sq = st.chi2 / (npix as f64 - N as f64);
        let mut diag_neg = false;
        for i in 0..N {
            for j in 0..N {
                res.pars_cov[i * N + j] = out.cov0[i][j] * s_sq;
            }
            diag_neg |= res.pars_cov[i * N + i] < 0.0;
        }
        if diag_neg {
            res.flags |= lm::LM_NEG_COV_DIAG;
            res.pars_cov = vec![CDEF; N * N];
        } else {
            res.pars_err = (0..N).map(|i| res.pars_cov[i * N + i].sqrt()).collect();
        }
    }
    let lnp_prior = match prob.prior {
        Some(p) => p.lnprob(&out.pars).unwrap_or(crate::priors::LOWVAL),
        None => 0.0,
    };
    res.lnprob = -0.5 * st.chi2 + lnp_prior;
    res.dof = npix as f64 - N as f64;
    res.chi2per = -2.0 * res.lnprob / res.dof;
    res.s2n_w = if st.s2n_denom > 0.0 {
        st.s2n_numer / st.s2n_denom.sqrt()
    } else {
        0.0
    };
    Ok(res)
}

/// One LM fit of `n` co-elliptical Gaussians to `obs` (its own pixels; any PSF is ignored) from
/// `guess` (`4 + 2n` numbers), with an optional prior (ngmix `LMCoellip`). The result has
/// ngmix's fields; `pars_cov` is scaled by `χ²_pix / (npix - npars)`.
///
/// # Errors
/// [`GMixError::Range`] when the guess is outside the model's domain (ngmix raises), `n` is not
/// 1..=4, or the guess length is wrong; [`GMixError::Fatal`] without usable pixels.
pub fn fit_coellip_psf(
    obs: &Observation,
    ngauss: usize,
    prior: Option<&CoellipPrior>,
    guess: &[f64],
    lm_pars: &LmPars,
) -> GResult<MaxLikeResult> {
    if guess.len() != 4 + 2 * ngauss {
        return Err(GMixError::Range(
            "coellip fit: guess length must be 4 + 2 ngauss",
        ));
    }
    let (_, ncol) = obs.dims();
    let mut prob = CoellipProblem::new(
        obs.image_slice(),
        obs.weight_slice(),
        ncol,
        &obs.jacobian,
        ngauss,
        prior,
    )?;
    match ngauss {
        1 => fit_coellip_n::<6>(&mut prob, guess, lm_pars),
        2 => fit_coellip_n::<8>(&mut prob, guess, lm_pars),
        3 => fit_coellip_n::<10>(&mut prob, guess, lm_pars),
        4 => fit_coellip_n::<12>(&mut prob, guess, lm_pars),
        _ => Err(GMixError::Range("coellip fit: ngauss should be 1,2,3,4")),
    }
}

/// `obs` as a single-band, single-epoch set without PSF (what ngmix's `LMSimple` sees when
/// fitting a PSF observation).
fn bare(obs: &Observation) -> GResult<MultiBandObs> {
    let o = Observation::new(obs.image.clone(), obs.weight.clone(), obs.jacobian)?;
    Ok(MultiBandObs::new(vec![vec![o]]))
}

/// One LM fit of `gauss` or `turb` to `obs` (its own pixels, no PSF, no prior) from `guess`
/// (ngmix `LMSimple`).
///
/// # Errors
/// [`GMixError::Range`] when the guess is outside the model's domain; [`GMixError::Fatal`]
/// without usable pixels.
pub fn fit_simple_psf(
    obs: &Observation,
    kind: SimpleKind,
    guess: &[f64; 6],
    lm_pars: &LmPars,
) -> GResult<MaxLikeResult> {
    let mb = bare(obs)?;
    let spec = ModelSpec::simple(kind, Tables::V1);
    fit_max::<V1, NoPrior>(&mb, &spec, None, guess, lm_pars)
}

/// The outcome of [`fit_lm_psf`].
#[derive(Debug, Clone, PartialEq)]
pub struct PsfLmFit {
    /// The model.
    pub model: LmPsfModel,
    /// The last attempt's fit (the first success, if any).
    pub result: MaxLikeResult,
    /// Attempts made.
    pub ntry: usize,
}

impl PsfLmFit {
    /// Flags of the fit (0 = ok).
    pub fn flags(&self) -> i32 {
        self.result.flags
    }

    /// ngmix `LMSimple._set_flux` for one band: `(pars[5], sqrt(cov[5,5]))`, only for a
    /// successful fit. For `coellip<n>` with `n >= 2` this is `T_2` and its error, as in ngmix.
    pub fn flux(&self) -> Option<(f64, f64)> {
        (self.result.flags == 0).then(|| (self.result.pars[5], self.result.cov(5, 5).sqrt()))
    }

    /// `flux / flux_err` (ngmixer's `psf_model_s2n`), only for a successful fit.
    pub fn s2n(&self) -> Option<f64> {
        self.flux().map(|(f, e)| f / e)
    }

    /// The fitted mixture, fluxes as fitted (ngmix `get_gmix`).
    ///
    /// # Errors
    /// [`GMixError::Range`] if the fit failed or its parameters are outside the model's domain.
    pub fn gmix(&self) -> GResult<GMix> {
        if self.result.flags != 0 {
            return Err(GMixError::Range("psf fit failed: no mixture"));
        }
        self.model.gmix(&self.result.pars)
    }
}

/// Fit a PSF model by LM with up to `ntry` (at least one) attempts from new guesses, stopping at
/// the first with `flags == 0` (ngmix v1.3.5 `PSFRunner.go` / `PSFRunnerCoellip.go`). `tguess` is
/// the PSF T guess (ngmixer: the PSF observation's `Tguess`); the flux guess is
/// [`psf_flux_guess`]. Guesses are drawn from `rng` ([`guess_simple`], [`guess_coellip`]);
/// `coellip` fits use [`CoellipPrior::for_psf`].
///
/// # Errors
/// As [`fit_simple_psf`] / [`fit_coellip_psf`] and [`CoellipPrior::for_psf`]: a range error
/// (e.g. a guess outside the model's domain) ends the attempts, as the exception does in ngmix.
pub fn fit_lm_psf<R: Rng + ?Sized>(
    obs: &Observation,
    model: LmPsfModel,
    tguess: f64,
    ntry: usize,
    lm_pars: &LmPars,
    rng: &mut R,
) -> GResult<PsfLmFit> {
    let fguess = psf_flux_guess(obs);
    let ntry = ntry.max(1);
    let mut last = None;
    match model {
        LmPsfModel::Gauss | LmPsfModel::Turb => {
            let kind = if model == LmPsfModel::Gauss {
                SimpleKind::Gauss
            } else {
                SimpleKind::Turb
            };
            let mb = bare(obs)?;
            let spec = ModelSpec::simple(kind, Tables::V1);
            for itry in 1..=ntry {
                let guess = guess_simple(tguess, fguess, rng);
                let res = fit_max::<V1, NoPrior>(&mb, &spec, None, &guess, lm_pars)?;
                let ok = res.flags == 0;
                last = Some((res, itry));
                if ok {
                    break;
                }
            }
        }
        LmPsfModel::Coellip(n) => {
            let prior = CoellipPrior::for_psf(n, tguess, fguess, obs.jacobian.scale())?;
            for itry in 1..=ntry {
                let guess = guess_coellip(n, tguess, fguess, rng)?;
                let res = fit_coellip_psf(obs, n, Some(&prior), &guess, lm_pars)?;
                let ok = res.flags == 0;
                last = Some((res, itry));
                if ok {
                    break;
                }
            }
        }
    }
    let (result, ntry) = last.ok_or(GMixError::Fatal("psf fit: no attempt"))?;
    Ok(PsfLmFit {
        model,
        result,
        ntry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_of(gm: &GMix, jac: &Jacobian, nrow: usize, ncol: usize) -> Vec<f64> {
        let mut im = vec![0.0; nrow * ncol];
        for r in 0..nrow {
            for c in 0..ncol {
                let (v, u) = jac.vu(r as f64, c as f64);
                im[r * ncol + c] = gm.gaussians().iter().map(|g| g.eval(v, u)).sum();
            }
        }
        im
    }

    /// The analytic normal equations agree with central differences of the model.
    #[test]
    fn coellip_jacobian_matches_finite_differences() {
        let jac = Jacobian::new(12.3, 11.7, 0.01, 0.26, 0.27, -0.02).unwrap();
        let truth = [0.05, -0.03, 0.08, -0.12, 0.5, 1.6, 0.6, 0.4];
        let gm = Model::Coellip(2).gmix(&truth).unwrap();
        let (nrow, ncol) = (25, 25);
        let image = image_of(&gm, &jac, nrow, ncol);
        let weight: Vec<f64> = (0..nrow * ncol).map(|k| 1.0 + 0.001 * k as f64).collect();
        let mut prob = CoellipProblem::new(&image, &weight, ncol, &jac, 2, None).unwrap();
        let x = [0.02, -0.01, 0.1, -0.1, 0.55, 1.5, 0.62, 0.35];
        let ne: Normal<8> = prob.normal(&x).unwrap();
        // gradient of χ²/2 = Jᵀr
        for k in 0..8 {
            let h = 1e-6 * x[k].abs().max(1e-3);
            let mut xp = x;
            let mut xm = x;
            xp[k] += h;
            xm[k] -= h;
            let cp = LeastSquares::<8>::chi2(&mut prob, &xp).unwrap();
            let cm = LeastSquares::<8>::chi2(&mut prob, &xm).unwrap();
            let num = 0.25 * (cp - cm) / h;
            let rel = (num - ne.jtr[k]).abs() / ne.jtr[k].abs().max(1e-12);
            assert!(rel < 1e-5, "par {k}: {num} vs {}", ne.jtr[k]);
        }
    }

    #[test]
    fn names() {
        assert_eq!(LmPsfModel::parse("coellip3"), Some(LmPsfModel::Coellip(3)));
        assert_eq!(LmPsfModel::parse("coellip5"), None);
        assert_eq!(LmPsfModel::parse("turb").map(|m| m.ngauss()), Some(3));
        assert_eq!(LmPsfModel::Coellip(2).npars(), 8);
    }
}
