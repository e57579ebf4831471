//! Fit one galaxy from in-memory arrays with the max-likelihood fitter, configured from YAML
//! text exactly as `ngmixit` would be (no MEDS file, no FITS: this works without the `des-y1`
//! feature).
//!
//! ```sh
//! cargo run --example fit_one_object
//! ```

use ndarray::Array2;
use ngmixer::backends::memory::MemorySource;
use ngmixer::config::{from_yaml_str, FittingConfig};
use ngmixer::fitter::from_config::fitter_settings;
use ngmixer::fitter::{MaxLike, ObjectMeta, ObjectObs};
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::obs::{MultiBandObs, Observation, PsfMeta};
use ngmixer::rng::{normal, object_rng};
use ngmixer::run::Fitter;

const CONFIG: &str = r#"
fitter_type: "max-ngmix-boot"
imageio: {io_type: "meds", psfs: {type: "infile"}}
region: "weight"
fit_me_galaxy: True
fit_coadd_galaxy: False
psf_pars: {model: "em2", ntry: 4, fit_pars: {maxiter: 2000, tol: 1.0e-6}}
max_pars: {ntry: 2, method: "lm", lm_pars: {maxfev: 2000, xtol: 1.0e-5, ftol: 1.0e-5}}
model_pars:
    exp:
        cen: {type: "normal2d", width: 0.27}
        g: {type: "ba", sigma: 0.2}
        T: {type: "TwoSidedErf", pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]}
        counts: {type: "TwoSidedErf", pars: [-100.0, 1.0, 1.0e+09, 0.25e+08], repeat: True}
"#;

/// Truth: row, col offsets (arcsec), g1, g2, T (arcsec²), flux.
const TRUTH: [f64; 6] = [0.05, -0.03, 0.2, -0.1, 0.6, 400.0];
const NOISE: f64 = 0.1;

fn render(gm: &GMix, j: &Jacobian, n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(r, c)| {
        let (v, u) = j.vu(r as f64, c as f64);
        gm.gaussians().iter().map(|g| g.eval(v, u)).sum()
    })
}

/// One object: a 48×48 exp galaxy convolved with a two-Gaussian PSF, plus Gaussian noise.
fn simulated_object() -> Result<ObjectObs, Box<dyn std::error::Error>> {
    let scale = 0.263;
    let psf = GMix::from_full_pars(&[
        0.6, 0.0, 0.0, 0.10, 0.01, 0.11, 0.4, 0.0, 0.0, 0.3, 0.0, 0.3,
    ])?;
    let gal = Model::Simple(SimpleKind::Exp).gmix_with(&TRUTH, Tables::V1)?;
    let jac = Jacobian::new(23.5, 24.0, 0.0, scale, scale, 0.0)?;
    let mut image = render(&gal.convolve(&psf)?, &jac, 48);
    let mut rng = object_rng(99, 0);
    image.mapv_inplace(|x| x + NOISE * normal(&mut rng));
    let weight = Array2::from_elem((48, 48), 1.0 / (NOISE * NOISE));

    let pjac = Jacobian::new(12.0, 12.0, 0.0, scale, scale, 0.0)?;
    let pim = render(&psf, &pjac, 25);
    let mut pobs = Observation::with_unit_weight(pim.clone(), pjac)?;
    pobs.psf_meta = PsfMeta {
        tguess: 0.3,
        sigma_sky: 0.4,
        psf_norm: pim.sum(),
    };
    let mut obs = Observation::new(image, weight, jac)?.with_psf(pobs);
    obs.meta.id = 1;
    obs.meta.cutout_index = 1;
    Ok(ObjectObs {
        meta: ObjectMeta {
            id: 1,
            number: 1,
            nimage_tot: vec![1],
            fofid: -9999,
            ..ObjectMeta::default()
        },
        coadd: MultiBandObs::new(vec![Vec::new()]),
        se: MultiBandObs::new(vec![vec![obs]]),
    })
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Fit and return `(exp_pars, exp_pars_cov diagonal, flags)`.
fn fit() -> Res<(Vec<f64>, Vec<f64>, i64)> {
    let cfg: FittingConfig = from_yaml_str(CONFIG, "<example config>")?;
    cfg.validate(1)?;
    let fitter = MaxLike::new(fitter_settings(&cfg, 1)?)?;
    let driver = Fitter::new(MemorySource::new(vec![simulated_object()?], 1), fitter);
    let cat = driver.fit_all(12345, 1)?;
    let mf = &cat.model_fits;
    let pars = mf.get(0, "exp_pars").ok_or("no exp_pars")?.to_vec();
    let cov = mf.get(0, "exp_pars_cov").ok_or("no exp_pars_cov")?;
    let var: Vec<f64> = (0..6).map(|i| cov[i * 6 + i]).collect();
    let flags = mf.get(0, "flags").ok_or("no flags")?[0] as i64;
    Ok((pars, var, flags))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (pars, var, flags) = fit()?;
    println!("flags {flags}");
    let names = ["row", "col", "g1", "g2", "T", "flux"];
    for i in 0..6 {
        println!(
            "{:>5}: fit {:>10.4} ± {:<8.4} truth {:>10.4}",
            names[i],
            pars[i],
            var[i].sqrt(),
            TRUTH[i]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The example's fit recovers the truth within 4σ in every parameter.
    #[test]
    fn recovers_the_simulated_galaxy() {
        let (pars, var, flags) = super::fit().unwrap();
        assert_eq!(flags, 0);
        for i in 0..6 {
            let pull = (pars[i] - super::TRUTH[i]) / var[i].sqrt();
            assert!(pull.abs() < 4.0, "parameter {i}: pull {pull}");
        }
    }
}
