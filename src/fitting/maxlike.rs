//! Max-likelihood fits of multi-band, multi-epoch observations with the LM solver
//! (ngmix v1.3.5 `LMSimple` / `LMComposite`).
//!
//! Parameters are `[row, col, g1, g2, T, flux_0, .., flux_{nband-1}]` (sky units); the
//! residual vector is ngmix's: the prior rows `sqrt(-2 ln p)` first, then
//! `(model - data) sqrt(w)` for every pixel with `w > 0`.

use crate::error::{GMixError, GResult};
use crate::fitting::kernel::{accumulate, prepare, Accum, Eval, KGauss, ModelSpec, Scratch};
use crate::fitting::lm::{self, LeastSquares, LmPars, Normal, CDEF, PDEF, ZERO_DOF};
use crate::gmix::{GMix, Gauss2D};
use crate::obs::MultiBandObs;

/// A prior usable in the LM residuals.
pub trait LmPrior {
    /// Number of residual rows the prior fills.
    fn nrows(&self) -> usize;
    /// Fill the residual rows (`sqrt(max(-2 ln p, 0))` per component) and return how many
    /// were filled.
    fn fill_fdiff(&self, pars: &[f64], out: &mut [f64]) -> GResult<usize>;
    /// Total log-probability.
    fn lnprob(&self, pars: &[f64]) -> GResult<f64>;
}

/// The absence of a prior.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrior;

impl LmPrior for NoPrior {
    fn nrows(&self) -> usize {
        0
    }
    fn fill_fdiff(&self, _: &[f64], _: &mut [f64]) -> GResult<usize> {
        Ok(0)
    }
    fn lnprob(&self, _: &[f64]) -> GResult<f64> {
        Ok(0.0)
    }
}

/// Result of a max-likelihood fit, with ngmix's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxLikeResult {
    /// 0 or LM flags.
    pub flags: i32,
    /// Best-fit parameters (`PDEF` on failure).
    pub pars: Vec<f64>,
    /// Scaled covariance (`CDEF` on failure), row-major `npars × npars`.
    pub pars_cov: Vec<f64>,
    /// Parameter errors.
    pub pars_err: Vec<f64>,
    /// Number of parameters.
    pub npars: usize,
    /// `-2 lnprob / dof` with `dof = npix - npars`.
    pub chi2per: f64,
    /// `npix - npars`.
    pub dof: f64,
    /// `Σ d m w / sqrt(Σ m² w)`.
    pub s2n_w: f64,
    /// Log-likelihood plus log-prior at the solution.
    pub lnprob: f64,
    /// Pixels used.
    pub npix: usize,
    /// Function evaluations.
    pub nfev: usize,
    /// Normal-equation evaluations.
    pub njev: usize,
}

impl MaxLikeResult {
    /// A failed fit: `flags`, every parameter and error at the ngmixer defaults.
    pub(crate) fn failed(npars: usize, flags: i32, nfev: usize, njev: usize) -> Self {
        Self {
            flags,
            pars: vec![PDEF; npars],
            pars_cov: vec![CDEF; npars * npars],
            pars_err: vec![CDEF; npars],
            npars,
            chi2per: PDEF,
            dof: 0.0,
            s2n_w: PDEF,
            lnprob: PDEF,
            npix: 0,
            nfev,
            njev,
        }
    }

    /// Covariance element.
    pub fn cov(&self, i: usize, j: usize) -> f64 {
        self.pars_cov[i * self.npars + j]
    }
}

/// Statistics of a model over all observations.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitStats {
    /// `Σ w (m-d)²` over pixels.
    pub pix_chi2: f64,
    /// `Σ d m w`.
    pub s2n_numer: f64,
    /// `Σ m² w`.
    pub s2n_denom: f64,
    /// Pixels used.
    pub npix: usize,
}

/// A delta-function PSF used when an observation has no fitted PSF.
fn delta_psf() -> GMix {
    GMix::from_gaussians(vec![Gauss2D {
        p: 1.0,
        row: 0.0,
        col: 0.0,
        irr: 0.0,
        irc: 0.0,
        icc: 0.0,
        det: 0.0,
        drr: 0.0,
        drc: 0.0,
        dcc: 0.0,
        norm: 0.0,
        pnorm: 0.0,
    }])
}

/// The max-likelihood problem over a multi-band observation set.
#[derive(Debug)]
pub struct MaxLike<'a, E: Eval, P: LmPrior> {
    obs: &'a MultiBandObs,
    spec: &'a ModelSpec,
    prior: Option<&'a P>,
    gs: Vec<KGauss>,
    scratch: Scratch,
    prior_buf: Vec<f64>,
    prior_buf2: Vec<f64>,
    prior_jac: Vec<f64>,
    /// Pixel statistics of the last normal-equation pass and its parameters.
    last_x: Vec<f64>,
    last_stats: Option<FitStats>,
    delta: GMix,
    _e: std::marker::PhantomData<E>,
}

impl<'a, E: Eval, P: LmPrior> MaxLike<'a, E, P> {
    /// A new problem. Every observation should carry a fitted PSF mixture.
    pub fn new(obs: &'a MultiBandObs, spec: &'a ModelSpec, prior: Option<&'a P>) -> Self {
        let n = prior.map_or(0, |p| p.nrows());
        Self {
            obs,
            spec,
            prior,
            gs: Vec::new(),
            scratch: Scratch::default(),
            prior_buf: vec![0.0; n],
            prior_buf2: vec![0.0; n],
            prior_jac: Vec::new(),
            last_x: Vec::new(),
            last_stats: None,
            delta: delta_psf(),
            _e: std::marker::PhantomData,
        }
    }

    /// Number of bands.
    pub fn nband(&self) -> usize {
        self.obs.nband()
    }

    fn band_pass<const DERIV: bool>(
        &mut self,
        x: &[f64],
        band: usize,
        acc: &mut Accum,
    ) -> GResult<()> {
        let flux = x[5 + band];
        for o in &self.obs.bands[band] {
            let psf = o.psf_gmix().unwrap_or(&self.delta);
            prepare(
                self.spec,
                &x[..5],
                psf,
                E::pixel_factor(&o.jacobian),
                &mut self.gs,
            )?;
            let (_, ncol) = o.dims();
            accumulate::<E, DERIV>(
                &self.gs,
                &o.jacobian,
                o.image_slice(),
                o.weight_slice(),
                ncol,
                flux,
                &mut self.scratch,
                acc,
            );
        }
        Ok(())
    }

    /// Pixel statistics of the model at `x`.
    pub fn stats(&mut self, x: &[f64]) -> GResult<FitStats> {
        if let Some(st) = self.last_stats {
            if self.last_x == x {
                return Ok(st);
            }
        }
        let mut st = FitStats::default();
        for b in 0..self.nband() {
            let mut acc = Accum::default();
            self.band_pass::<false>(x, b, &mut acc)?;
            st.pix_chi2 += acc.chi2;
            st.s2n_numer += acc.s2n_numer;
            st.s2n_denom += acc.s2n_denom;
            st.npix += acc.npix;
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

impl<E: Eval, P: LmPrior, const N: usize> LeastSquares<N> for MaxLike<'_, E, P> {
    fn chi2(&mut self, x: &[f64; N]) -> GResult<f64> {
        let mut c = self.prior_chi2(x)?;
        for b in 0..self.nband() {
            let mut acc = Accum::default();
            self.band_pass::<false>(x, b, &mut acc)?;
            c += acc.chi2;
        }
        Ok(c)
    }

    fn trial(&mut self, x: &[f64; N]) -> GResult<(f64, Option<Normal<N>>)> {
        // one fused pass gives χ² and the normal equations: steps are mostly accepted
        let ne = self.normal(x)?;
        Ok((ne.chi2, Some(ne)))
    }

    fn normal(&mut self, x: &[f64; N]) -> GResult<Normal<N>> {
        let mut ne = Normal::<N>::default();
        let mut st = FitStats::default();
        self.last_stats = None;
        for b in 0..self.nband() {
            let mut acc = Accum::default();
            self.band_pass::<true>(x, b, &mut acc)?;
            st.pix_chi2 += acc.chi2;
            st.s2n_numer += acc.s2n_numer;
            st.s2n_denom += acc.s2n_denom;
            st.npix += acc.npix;
            let idx = [0, 1, 2, 3, 4, 5 + b];
            for i in 0..6 {
                ne.jtr[idx[i]] += acc.jtr[i];
                for j in 0..6 {
                    ne.jtj[idx[i]][idx[j]] += acc.jtj[i][j];
                }
            }
            ne.chi2 += acc.chi2;
        }
        self.last_x.clear();
        self.last_x.extend_from_slice(x);
        self.last_stats = Some(st);
        if let Some(p) = self.prior {
            // prior rows: forward differences with MINPACK's step sqrt(eps)·|x|
            let n = p.fill_fdiff(x, &mut self.prior_buf)?;
            for r in &self.prior_buf[..n] {
                ne.chi2 += r * r;
            }
            self.prior_jac.clear();
            self.prior_jac.resize(n * N, 0.0);
            let eps = f64::EPSILON.sqrt();
            let mut xp = *x;
            for k in 0..N {
                let h = if x[k] == 0.0 { eps } else { eps * x[k].abs() };
                xp[k] = x[k] + h;
                let filled = p.fill_fdiff(&xp, &mut self.prior_buf2);
                xp[k] = x[k];
                if let Ok(n2) = filled {
                    for r in 0..n.min(n2) {
                        self.prior_jac[r * N + k] = (self.prior_buf2[r] - self.prior_buf[r]) / h;
                    }
                }
            }
            for r in 0..n {
                let row = &self.prior_jac[r * N..(r + 1) * N];
                for i in 0..N {
                    if row[i] == 0.0 {
                        continue;
                    }
                    ne.jtr[i] += row[i] * self.prior_buf[r];
                    for j in 0..N {
                        ne.jtj[i][j] += row[i] * row[j];
                    }
                }
            }
        }
        Ok(ne)
    }
}

fn fit_n<E: Eval, P: LmPrior, const N: usize>(
    prob: &mut MaxLike<'_, E, P>,
    guess: &[f64],
    lm_pars: &LmPars,
) -> GResult<MaxLikeResult> {
    let mut g = [0.0; N];
    g.copy_from_slice(guess);
    let out = lm::solve(prob, &g, lm_pars)?;
    if out.flags != 0 {
        let mut r = MaxLikeResult::failed(N, out.flags, out.nfev, out.njev);
        if out.flags == lm::LM_SINGULAR_MATRIX {
            r.pars = out.pars.to_vec();
        }
        return Ok(r);
    }
    let st = prob.stats(&out.pars)?;
    let totpix = st.npix;
    let mut res = MaxLikeResult::failed(N, 0, out.nfev, out.njev);
    res.pars = out.pars.to_vec();
    res.npix = totpix;
    if totpix == N {
        res.flags |= ZERO_DOF;
    } else {
        let dof = totpix as f64 - N as f64;
        let s_sq = st.pix_chi2 / dof;
        let mut diag_neg = false;
        for i in 0..N {
            for j in 0..N {
                res.pars_cov[i * N + j] = out.cov0[i][j] * s_sq;
            }
            if res.pars_cov[i * N + i] < 0.0 {
                diag_neg = true;
            }
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
    res.lnprob = -0.5 * st.pix_chi2 + lnp_prior;
    res.dof = totpix as f64 - N as f64;
    res.chi2per = -2.0 * res.lnprob / res.dof;
    res.s2n_w = if st.s2n_denom > 0.0 {
        st.s2n_numer / st.s2n_denom.sqrt()
    } else {
        0.0
    };
    Ok(res)
}

/// Run one LM fit from `guess` (length `5 + nband`, 6..=12). A range error at the guess is
/// returned as `Err`, as ngmix raises it; other failures are flags in the result.
pub fn fit_max<E: Eval, P: LmPrior>(
    obs: &MultiBandObs,
    spec: &ModelSpec,
    prior: Option<&P>,
    guess: &[f64],
    lm_pars: &LmPars,
) -> GResult<MaxLikeResult> {
    let nband = obs.nband();
    if guess.len() != 5 + nband {
        return Err(GMixError::Range("guess length must be 5 + nband"));
    }
    let mut prob = MaxLike::<E, P>::new(obs, spec, prior);
    match guess.len() {
        6 => fit_n::<E, P, 6>(&mut prob, guess, lm_pars),
        7 => fit_n::<E, P, 7>(&mut prob, guess, lm_pars),
        8 => fit_n::<E, P, 8>(&mut prob, guess, lm_pars),
        9 => fit_n::<E, P, 9>(&mut prob, guess, lm_pars),
        10 => fit_n::<E, P, 10>(&mut prob, guess, lm_pars),
        11 => fit_n::<E, P, 11>(&mut prob, guess, lm_pars),
        12 => fit_n::<E, P, 12>(&mut prob, guess, lm_pars),
        _ => Err(GMixError::Range("at most 7 bands are supported")),
    }
}
