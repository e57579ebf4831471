//! The shear test behind `ngmixer-shear-test` (features `maxlike` + `metacal`): the metacal
//! fitter through the same driver as a MEDS run ([`Fitter`] over a [`ShearSimSource`]), then
//! the multiplicative and additive shear biases with jackknife intervals over pairs.
//!
//! With `R11 = (g1_1p − g1_1m)/(2 step)` and `R22` likewise per galaxy, the shear estimate is
//! `ĝ_i = Σ g_i / Σ R_ii` over the galaxies of complete pairs (both members with `flags == 0`,
//! `mcal_flags == 0` and `mcal_T_r / mcal_Tpsf > 0.05` for every type: the last cut removes only the rare LM
//! fits that stop at `|g| → 1`, where `T_r → 0`, and is far below every simulated size); `m = ĝ1/g1_true − 1` and `c = ĝ2 − g2_true`. The 95 % intervals are
//! `1.96 σ` of a delete-one-block jackknife over pairs (up to 200 blocks).

use std::time::Instant;

use crate::error::{Error, Result};
use crate::fitter::{FitterSettings, GalModel, Metacal, MetacalSettings};
use crate::fitting::boot::{PsfFitConfig, PsfFitMethod};
use crate::fitting::em::EmConfig;
use crate::fitting::lm::LmPars;
use crate::gmix::models::SimpleKind;
use crate::metacal::MetacalPars;
use crate::output::Catalog;
use crate::priors::{CenPrior, GPriorBA, PriorSimpleSep, ShapePrior, TPrior, TwoSidedErf};
use crate::run::{Fitter, Group, Groups, Progress};
use crate::sim::shear::{ShearSimConfig, ShearSimSource};

/// One shear test.
#[derive(Debug, Clone)]
pub struct ShearTest {
    /// The scene.
    pub sim: ShearSimConfig,
    /// Run seed of the fits (fixnoise fields, PSF-fit and guess draws).
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// Galaxies fitted per driver call (results do not depend on it; it bounds memory).
    pub chunk: usize,
}

/// What a shear test measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ShearTestResult {
    /// Multiplicative bias `ĝ1/g1 − 1`.
    pub m: f64,
    /// Half-width of its 95 % interval.
    pub m_err95: f64,
    /// Additive bias `ĝ2 − g2`.
    pub c: f64,
    /// Half-width of its 95 % interval.
    pub c_err95: f64,
    /// Mean `R11`.
    pub r11: f64,
    /// Mean `R22`.
    pub r22: f64,
    /// Galaxies simulated.
    pub ngal: usize,
    /// Galaxies used (complete pairs passing the cuts).
    pub nused: usize,
    /// Wall time of the fits (s).
    pub seconds: f64,
}

impl ShearTestResult {
    /// The JSON object of `--json` (keys m, m_err95, c, c_err95, R11, R22, ngal, seconds,
    /// nused).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "m": self.m,
            "m_err95": self.m_err95,
            "c": self.c,
            "c_err95": self.c_err95,
            "R11": self.r11,
            "R22": self.r22,
            "ngal": self.ngal,
            "nused": self.nused,
            "seconds": self.seconds,
        })
    }
}

/// The fitter of the shear test: the e2e02mcal settings (exp model with its priors, em3 PSF
/// fits, `fitgauss`, fixnoise, step 0.01, the five galaxy-shear types).
///
/// # Errors
/// Only on a schema bug.
pub fn shear_test_fitter() -> Result<Metacal> {
    let prior = || -> Result<PriorSimpleSep> {
        PriorSimpleSep::new(
            CenPrior::new(0.0, 0.0, 0.27, 0.27)?,
            ShapePrior::Ba(GPriorBA::new(0.2)?),
            TPrior::TwoSidedErf(TwoSidedErf::new(-10.0, 0.03, 1e6, 1e5)?),
            vec![TPrior::TwoSidedErf(TwoSidedErf::new(
                -100.0, 1.0, 1e9, 0.25e8,
            )?)],
        )
    };
    let mut em = EmConfig::v1_psf();
    em.maxiter = 2000;
    em.tol = 5e-6;
    let psf = PsfFitConfig {
        model: PsfFitMethod::Em(3),
        ntry: 4,
        em,
        min_s2n: None,
    };
    let lm = LmPars {
        maxfev: 2000,
        xtol: 5e-5,
        ftol: 5e-5,
    };
    let base = FitterSettings {
        nband: 1,
        models: vec![(GalModel::Simple(SimpleKind::Exp), Some(prior()?))],
        psf,
        lm,
        max_ntry: 2,
        min_psf_s2n: -1e9,
        normalize_psf: true,
        fit_me_galaxy: true,
        fit_coadd_galaxy: false,
        use_coadd_prefix: true,
        max_box_size: 2048,
        use_logpars: false,
    };
    let mut mpsf = psf;
    mpsf.ntry = crate::fitter::metacal::METACAL_PSF_NTRY;
    let mcal = MetacalSettings {
        pars: MetacalPars::default(),
        replace_bad_pixels: false,
        model: SimpleKind::Exp,
        prior: Some(prior()?),
        psf: mpsf,
        lm,
        ntry: 2,
    };
    Metacal::new(base, mcal)
}

/// The catastrophic-failure cut on `mcal_T_r / mcal_Tpsf`.
pub const MIN_TR_TPSF: f64 = 0.05;

/// Per galaxy: `(ok, g1, g2, R11, R22)`.
type Row = (bool, f64, f64, f64, f64);

fn rows_of(cat: &Catalog, step: f64, out: &mut Vec<Row>) -> Result<()> {
    let mf = &cat.model_fits;
    let col = |n: &str| {
        mf.column(n)
            .ok_or_else(|| Error::Invalid(format!("shear test: no column {n}")))
    };
    let flags = col("flags")?;
    let mflags = col("mcal_flags")?;
    let tpsf = col("mcal_Tpsf")?;
    let t_rs = ["", "_1p", "_1m", "_2p", "_2m"]
        .iter()
        .map(|suf| col(&format!("mcal_T_r{suf}")))
        .collect::<Result<Vec<_>>>()?;
    let g = col("mcal_g")?;
    let g1p = col("mcal_g_1p")?;
    let g1m = col("mcal_g_1m")?;
    let g2p = col("mcal_g_2p")?;
    let g2m = col("mcal_g_2m")?;
    for r in 0..mf.nrows() {
        let ok = flags.num[r] == 0.0
            && mflags.num[r] == 0.0
            && t_rs
                .iter()
                .all(|t_r| t_r.num[r] > MIN_TR_TPSF * tpsf.num[r]);
        out.push((
            ok,
            g.num[2 * r],
            g.num[2 * r + 1],
            (g1p.num[2 * r] - g1m.num[2 * r]) / (2.0 * step),
            (g2p.num[2 * r + 1] - g2m.num[2 * r + 1]) / (2.0 * step),
        ));
    }
    Ok(())
}

/// Jackknife over blocks of pair sums `[Σg1, Σg2, ΣR11, ΣR22]`: `(ĝ1, ĝ2, σ1, σ2)`.
fn jackknife(pairs: &[[f64; 4]]) -> (f64, f64, f64, f64) {
    let n = pairs.len();
    let nb = n.min(200);
    let mut blocks = vec![[0.0; 4]; nb];
    for (i, p) in pairs.iter().enumerate() {
        let b = i * nb / n;
        for k in 0..4 {
            blocks[b][k] += p[k];
        }
    }
    let mut tot = [0.0; 4];
    for b in &blocks {
        for k in 0..4 {
            tot[k] += b[k];
        }
    }
    let est = |s: &[f64; 4]| (s[0] / s[2], s[1] / s[3]);
    let (g1, g2) = est(&tot);
    if nb < 2 {
        return (g1, g2, f64::NAN, f64::NAN);
    }
    let jk: Vec<(f64, f64)> = blocks
        .iter()
        .map(|b| {
            let mut s = tot;
            for k in 0..4 {
                s[k] -= b[k];
            }
            est(&s)
        })
        .collect();
    let m1 = jk.iter().map(|x| x.0).sum::<f64>() / nb as f64;
    let m2 = jk.iter().map(|x| x.1).sum::<f64>() / nb as f64;
    let f = (nb as f64 - 1.0) / nb as f64;
    let v1 = f * jk.iter().map(|x| (x.0 - m1).powi(2)).sum::<f64>();
    let v2 = f * jk.iter().map(|x| (x.1 - m2).powi(2)).sum::<f64>();
    (g1, g2, v1.sqrt(), v2.sqrt())
}

impl ShearTest {
    /// Run it, reporting progress to `progress` (total: `sim.ngal` objects).
    ///
    /// # Errors
    /// An invalid scene, `g1 = 0` (m is measured on the first component), fewer than two
    /// complete pairs, or a driver error.
    pub fn run(&self, progress: &mut Progress) -> Result<ShearTestResult> {
        if self.sim.shear.0 == 0.0 {
            return Err(Error::Invalid(
                "shear test: the shear's g1 must be non-zero (m is measured from g1)".into(),
            ));
        }
        let src = ShearSimSource::new(self.sim.clone())?;
        let fitter = shear_test_fitter()?;
        let step = fitter.metacal_settings().pars.step;
        let driver = Fitter::new(src, fitter);
        let ngal = self.sim.ngal;
        let chunk = self.chunk.max(2) & !1;
        let t0 = Instant::now();
        let mut rows: Vec<Row> = Vec::with_capacity(ngal);
        let mut start = 0;
        while start < ngal {
            let end = (start + chunk).min(ngal);
            let groups = Groups::from_groups(
                (start..end)
                    .map(|i| Group {
                        fofid: -9999,
                        members: vec![i],
                    })
                    .collect(),
            );
            let mut spec = crate::run::RunSpec::new(self.seed, groups);
            spec.threads = self.threads.max(1);
            let out = driver.run(&spec, None, progress)?;
            rows_of(&out.catalog, step, &mut rows)?;
            start = end;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let mut pairs = Vec::with_capacity(ngal / 2);
        let (mut r11, mut r22, mut nused) = (0.0, 0.0, 0usize);
        for p in rows.chunks_exact(2) {
            if p[0].0 && p[1].0 {
                pairs.push([
                    p[0].1 + p[1].1,
                    p[0].2 + p[1].2,
                    p[0].3 + p[1].3,
                    p[0].4 + p[1].4,
                ]);
                r11 += p[0].3 + p[1].3;
                r22 += p[0].4 + p[1].4;
                nused += 2;
            }
        }
        if pairs.len() < 2 {
            return Err(Error::Invalid(format!(
                "shear test: only {} complete pairs of {}",
                pairs.len(),
                ngal / 2
            )));
        }
        let (g1, g2, s1, s2) = jackknife(&pairs);
        let (t1, t2) = self.sim.shear;
        Ok(ShearTestResult {
            m: g1 / t1 - 1.0,
            m_err95: 1.96 * s1 / t1.abs(),
            c: g2 - t2,
            c_err95: 1.96 * s2,
            r11: r11 / nused as f64,
            r22: r22 / nused as f64,
            ngal,
            nused,
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jackknife_of_a_ratio() {
        // constant ratio: no scatter
        let pairs: Vec<[f64; 4]> = (0..50)
            .map(|i| {
                let r = 1.0 + 0.01 * i as f64;
                [0.02 * r, 0.0, r, r]
            })
            .collect();
        let (g1, g2, s1, s2) = jackknife(&pairs);
        assert!((g1 - 0.02).abs() < 1e-15 && g2 == 0.0);
        assert!(s1 < 1e-15 && s2 == 0.0);
        // independent noise of σ per pair in Σg1 with ΣR = 2: σ(ĝ1) = σ / (2 √n)
        let mut rng = crate::rng::object_rng(3, 0);
        let n = 4000;
        let sig = 0.1;
        let pairs: Vec<[f64; 4]> = (0..n)
            .map(|_| [sig * crate::rng::normal(&mut rng), 0.0, 2.0, 2.0])
            .collect();
        let (_, _, s1, _) = jackknife(&pairs);
        let want = sig / (2.0 * (n as f64).sqrt());
        assert!((s1 / want - 1.0).abs() < 0.15, "{s1} vs {want}");
    }
}
