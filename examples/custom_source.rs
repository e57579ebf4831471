//! A custom [`ImageSource`] run through the library's driver: objects are simulated on the fly
//! (no files), fitted on two threads with checkpoints kept in memory, stopped after the first
//! checkpoint and resumed, and the resumed catalogue equals an uninterrupted run.
//!
//! ```sh
//! cargo run --example custom_source
//! ```

use std::cell::RefCell;

use ndarray::Array2;
use ngmixer::config::{from_yaml_str, FittingConfig};
use ngmixer::fitter::from_config::fitter_settings;
use ngmixer::fitter::{MaxLike, ObjectMeta, ObjectObs};
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::obs::{MultiBandObs, Observation, PsfMeta};
use ngmixer::output::Catalog;
use ngmixer::rng::{normal, object_rng, uniform_range};
use ngmixer::run::{
    CheckpointSchedule, CheckpointStore, Fitter, Groups, Progress, ProgressMode, Resume, RunEnd,
    RunSpec,
};
use ngmixer::traits::ImageSource;

const CONFIG: &str = r#"
fitter_type: "max-ngmix-boot"
imageio: {io_type: "meds", psfs: {type: "infile"}}
region: "weight"
fit_me_galaxy: True
fit_coadd_galaxy: False
psf_pars: {model: "em1", ntry: 2, fit_pars: {maxiter: 500, tol: 1.0e-6}}
max_pars: {ntry: 2, lm_pars: {maxfev: 2000, xtol: 1.0e-5, ftol: 1.0e-5}}
model_pars:
    gauss:
        cen: {type: "normal2d", width: 0.27}
        g: {type: "ba", sigma: 0.3}
        T: {type: "TwoSidedErf", pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]}
        counts: {type: "TwoSidedErf", pars: [-100.0, 1.0, 1.0e+09, 0.25e+08], repeat: True}
"#;

/// Gaussian galaxies of random size and shape, two bands, one epoch each, drawn from the
/// object index: any handle, on any thread, makes the same object.
#[derive(Debug, Clone)]
struct ToySource {
    nobj: usize,
}

impl ToySource {
    fn make(&self, k: usize) -> Result<ObjectObs, ngmixer::GMixError> {
        let mut rng = object_rng(7, k as i64);
        let scale = 0.263;
        let psf = GMix::from_full_pars(&[1.0, 0.0, 0.0, 0.12, 0.0, 0.12])?;
        let pars = [
            0.0,
            0.0,
            uniform_range(&mut rng, -0.3, 0.3),
            uniform_range(&mut rng, -0.3, 0.3),
            uniform_range(&mut rng, 0.3, 1.0),
            200.0,
            300.0,
        ];
        let mut bands = Vec::new();
        for b in 0..2 {
            let mut p = pars[..5].to_vec();
            p.push(pars[5 + b]);
            let gm = Model::Simple(SimpleKind::Gauss)
                .gmix_with(&p, Tables::V1)?
                .convolve(&psf)?;
            let jac = Jacobian::new(15.5, 15.5, 0.0, scale, scale, 0.0)?;
            let img = Array2::from_shape_fn((32, 32), |(r, c)| {
                let (v, u) = jac.vu(r as f64, c as f64);
                gm.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>() + 0.1 * normal(&mut rng)
            });
            let pjac = Jacobian::new(10.0, 10.0, 0.0, scale, scale, 0.0)?;
            let pim = Array2::from_shape_fn((21, 21), |(r, c)| {
                let (v, u) = pjac.vu(r as f64, c as f64);
                psf.gaussians().iter().map(|g| g.eval(v, u)).sum()
            });
            let mut po = Observation::with_unit_weight(pim.clone(), pjac)?;
            po.psf_meta = PsfMeta {
                tguess: 0.24,
                sigma_sky: 0.35,
                psf_norm: pim.sum(),
            };
            let mut o =
                Observation::new(img, Array2::from_elem((32, 32), 100.0), jac)?.with_psf(po);
            o.meta.id = k as i64;
            o.meta.band_num = b as i16;
            o.meta.cutout_index = 1;
            bands.push(vec![o]);
        }
        Ok(ObjectObs {
            meta: ObjectMeta {
                id: k as i64,
                number: k as i64 + 1,
                nimage_tot: vec![1, 1],
                ..ObjectMeta::default()
            },
            coadd: MultiBandObs::new(vec![Vec::new(), Vec::new()]),
            se: MultiBandObs::new(bands),
        })
    }
}

impl ImageSource for ToySource {
    fn nobj(&self) -> usize {
        self.nobj
    }
    fn nband(&self) -> usize {
        2
    }
    fn id_number(&self, k: usize) -> ngmixer::Result<(i64, i64)> {
        Ok((k as i64, k as i64 + 1))
    }
    fn read_object(&mut self, k: usize, out: &mut ObjectObs) -> ngmixer::Result<()> {
        *out = self.make(k)?;
        Ok(())
    }
    fn reopen(&self) -> ngmixer::Result<Self> {
        Ok(self.clone())
    }
}

/// Checkpoints kept in memory.
#[derive(Debug, Default)]
struct MemoryStore(RefCell<Option<Resume>>);

impl CheckpointStore for MemoryStore {
    fn load(&self, _empty: &Catalog) -> ngmixer::Result<Option<Resume>> {
        Ok(self.0.borrow().clone())
    }
    fn save(&self, catalog: &Catalog, groups_done: usize) -> ngmixer::Result<()> {
        *self.0.borrow_mut() = Some(Resume {
            catalog: catalog.clone(),
            groups_done,
        });
        Ok(())
    }
}

/// `(uninterrupted, resumed)` catalogues of 12 objects.
fn run() -> Result<(Catalog, Catalog), Box<dyn std::error::Error>> {
    let cfg: FittingConfig = from_yaml_str(CONFIG, "<example config>")?;
    cfg.validate(2)?;
    let driver = Fitter::new(
        ToySource { nobj: 12 },
        MaxLike::new(fitter_settings(&cfg, 2)?)?,
    );
    let mut spec = RunSpec::new(2024, Groups::singletons(12, None)?);
    spec.threads = 2;
    let whole = driver.fit_groups(spec.seed, spec.groups.clone(), 2)?;

    // stop after the first checkpoint (every 5 groups), then run again: it resumes
    spec.schedule = CheckpointSchedule::new(&[], Some(5));
    spec.stop_after_checkpoint = true;
    let store = MemoryStore::default();
    let mut progress = Progress::new("example", 12, 0, ProgressMode::Quiet);
    let first = driver.run(&spec, Some(&store), &mut progress)?;
    assert_eq!(first.end, RunEnd::StoppedAfterCheckpoint);
    println!("stopped after {} groups", first.groups_done);
    spec.stop_after_checkpoint = false;
    let mut progress = Progress::new("example", 12, 0, ProgressMode::Quiet);
    let second = driver.run(&spec, Some(&store), &mut progress)?;
    println!(
        "resumed {} groups, fitted the other {}",
        second.resumed_groups,
        second.groups_done - second.resumed_groups
    );
    Ok((whole, second.catalog))
}

/// The catalogue without the wall-clock column.
fn without_times(c: &Catalog) -> Vec<(String, Vec<f64>)> {
    c.model_fits
        .columns()
        .iter()
        .filter(|c| c.name != "time_last_fit")
        .map(|c| (c.name.clone(), c.num.clone()))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (whole, resumed) = run()?;
    let same = without_times(&whole) == without_times(&resumed);
    println!("resumed catalogue equals the uninterrupted one: {same}");
    let g = whole.model_fits.column("gauss_g").ok_or("no gauss_g")?;
    println!("first object's g: {:?}", &g.num[..2]);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn resumed_run_equals_the_uninterrupted_one() {
        let (whole, resumed) = super::run().unwrap();
        assert_eq!(whole.model_fits.nrows(), 12);
        assert_eq!(super::without_times(&whole), super::without_times(&resumed));
        assert_eq!(whole.epoch_data, resumed.epoch_data);
    }
}
