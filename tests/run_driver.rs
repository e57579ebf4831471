//! The run driver as a library user meets it: every max-like config's column handles resolve
//! against its schema, errors in the middle of a run keep the completed groups, a panicking
//! fitter becomes an error naming the object, and the MEDS run writes one `meta_data` row per
//! band and the dropped-epoch counts.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use ngmixer::backends::memory::MemorySource;
use ngmixer::config::{self, FitterType};
use ngmixer::fitter::from_config::fitter_settings;
use ngmixer::fitter::{MaxLike, ObjectMeta, ObjectObs};
use ngmixer::obs::MultiBandObs;
use ngmixer::output::{Catalog, ColSpec, Kind};
use ngmixer::run::{
    CheckpointSchedule, CheckpointStore, Fitter, Groups, Progress, ProgressMode, Resume, RunSpec,
};
use ngmixer::traits::{ImageSource, ObjectFitter};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

/// A misspelt column is a test-time error: `MaxLike::new` resolves every handle the fitter
/// writes against the schema of its settings, for every max-likelihood config of the corpus.
#[test]
fn every_maxlike_config_resolves_its_columns() {
    let mut files = Vec::new();
    yaml_files(&data("configs"), &mut files);
    let mut resolved = 0;
    for f in &files {
        let Ok(cfg) = config::load_fitting_config(f) else {
            continue;
        };
        if cfg.fitter_type != FitterType::MaxNgmixBoot {
            continue;
        }
        for nband in 1..=4 {
            // per-band prior lists fix the band count of some configs
            let Ok(settings) = fitter_settings(&cfg, nband) else {
                continue;
            };
            let fitter = MaxLike::new(settings)
                .unwrap_or_else(|e| panic!("{} ({nband} bands): {e}", f.display()));
            let cat = fitter.empty_catalog();
            for name in ["id", "flags", "box_size", "obj_flags", "time_last_fit"] {
                assert!(cat.model_fits.column(name).is_some(), "{name}");
            }
            resolved += 1;
        }
    }
    // 20 on the corpus: the e2e configs and the Y1 max-like ones whose prior files are bundled
    assert!(
        resolved >= 20,
        "only {resolved} (config, nband) pairs resolved"
    );
}

#[test]
fn tables_refuse_unknown_columns_and_other_schemas() {
    let mut c = Catalog::new(vec![ColSpec::new("a", Kind::F64, &[2], -9999.0)], vec![]);
    let r = c.model_fits.push_default();
    let e = c.model_fits.set_named(r, "b", &[1.0]).unwrap_err();
    assert_eq!(e.to_string(), "output schema has no column 'b'");
    let other = Catalog::new(vec![ColSpec::new("a", Kind::F32, &[2], -9999.0)], vec![]);
    let e = c.append(&other).unwrap_err();
    assert!(e.to_string().contains("'a'"), "{e}");
    assert_eq!(c.model_fits.nrows(), 1, "nothing appended");
}

/// A source whose object `bad` cannot be read.
#[derive(Debug, Clone)]
struct Failing {
    inner: MemorySource,
    bad: usize,
}

impl ImageSource for Failing {
    fn nobj(&self) -> usize {
        self.inner.nobj()
    }
    fn nband(&self) -> usize {
        1
    }
    fn id_number(&self, k: usize) -> ngmixer::Result<(i64, i64)> {
        self.inner.id_number(k)
    }
    fn read_object(&mut self, k: usize, out: &mut ObjectObs) -> ngmixer::Result<()> {
        if k == self.bad {
            return Err(ngmixer::Error::Invalid("disk on fire".into()));
        }
        self.inner.read_object(k, out)
    }
    fn reopen(&self) -> ngmixer::Result<Self> {
        Ok(self.clone())
    }
}

fn empty_objects(n: usize) -> MemorySource {
    let objs = (0..n)
        .map(|k| ObjectObs {
            meta: ObjectMeta {
                id: 100 + k as i64,
                number: k as i64 + 1,
                nimage_tot: vec![0],
                ..ObjectMeta::default()
            },
            coadd: MultiBandObs::new(vec![Vec::new()]),
            se: MultiBandObs::new(vec![Vec::new()]),
        })
        .collect();
    MemorySource::new(objs, 1)
}

/// Writes one row per member with its id; panics on id 103.
#[derive(Debug)]
struct IdWriter;

impl ObjectFitter for IdWriter {
    fn fitter_type(&self) -> &'static str {
        "test"
    }
    fn empty_catalog(&self) -> Catalog {
        Catalog::new(vec![ColSpec::new("id", Kind::I64, &[], -9999.0)], vec![])
    }
    fn fit_group(&self, m: &mut [ObjectObs], _: u64, out: &mut Catalog) -> ngmixer::Result<()> {
        let id = out.model_fits.col("id")?;
        for o in m {
            assert!(o.meta.id != 103, "simulated bug");
            let r = out.model_fits.push_default();
            out.model_fits.set1(r, id, o.meta.id as f64);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Store(RefCell<Option<Resume>>);

impl CheckpointStore for Store {
    fn load(&self, _: &Catalog) -> ngmixer::Result<Option<Resume>> {
        Ok(self.0.borrow().clone())
    }
    fn save(&self, c: &Catalog, groups_done: usize) -> ngmixer::Result<()> {
        *self.0.borrow_mut() = Some(Resume {
            catalog: c.clone(),
            groups_done,
        });
        Ok(())
    }
}

#[test]
fn an_unreadable_object_stops_the_run_and_keeps_the_groups_before_it() {
    for threads in [1, 2] {
        let src = Failing {
            inner: empty_objects(20),
            bad: 7,
        };
        let d = Fitter::new(src, IdWriter2);
        let mut spec = RunSpec::new(1, Groups::singletons(20, None).unwrap());
        spec.threads = threads;
        spec.schedule = CheckpointSchedule::none();
        let store = Store::default();
        let mut p = Progress::new("t", 20, 0, ProgressMode::Quiet);
        let e = d.run(&spec, Some(&store), &mut p).unwrap_err().to_string();
        assert!(
            e.contains("object id 107") && e.contains("disk on fire"),
            "{e}"
        );
        let saved = store.0.borrow().clone().expect("completed groups saved");
        assert_eq!(saved.groups_done, 7, "{threads} threads");
        let ids = &saved.catalog.model_fits.column("id").unwrap().num;
        assert_eq!(ids, &(100..107).map(|x| x as f64).collect::<Vec<_>>());
    }
}

/// [`IdWriter`] without the panic.
#[derive(Debug)]
struct IdWriter2;

impl ObjectFitter for IdWriter2 {
    fn fitter_type(&self) -> &'static str {
        "test"
    }
    fn empty_catalog(&self) -> Catalog {
        IdWriter.empty_catalog()
    }
    fn fit_group(&self, m: &mut [ObjectObs], _: u64, out: &mut Catalog) -> ngmixer::Result<()> {
        let id = out.model_fits.col("id")?;
        for o in m {
            let r = out.model_fits.push_default();
            out.model_fits.set1(r, id, o.meta.id as f64);
        }
        Ok(())
    }
}

#[test]
fn a_panicking_fitter_is_an_error_naming_the_object() {
    let d = Fitter::new(empty_objects(6), IdWriter);
    let e = d.fit_all(1, 2).unwrap_err().to_string();
    assert!(
        e.contains("internal error while fitting object id 103") && e.contains("simulated bug"),
        "{e}"
    );
}

#[test]
fn results_are_in_group_order_whatever_the_threads() {
    let groups = Groups::from_fof_table(
        "t",
        &[3, 1, 3, 2, 1, 0],
        &[1, 2, 3, 4, 5, 6],
        &[1, 2, 3, 4, 5, 6],
        None,
    )
    .unwrap();
    for threads in [1, 2, 7] {
        let d = Fitter::new(empty_objects(6), IdWriter2);
        let c = d.fit_groups(1, groups.clone(), threads).unwrap();
        // FoF 0: row 5; FoF 1: rows 1, 4; FoF 2: row 3; FoF 3: rows 0, 2
        let ids = &c.model_fits.column("id").unwrap().num;
        assert_eq!(ids, &[105.0, 101.0, 104.0, 103.0, 100.0, 102.0]);
    }
}

#[cfg(feature = "des-y1")]
#[test]
fn meds_run_writes_a_meta_row_per_band_and_the_dropped_counts() {
    use ngmixer::backends::meds::read_table;
    use ngmixer::run::meds_run::MedsRun;
    let d = std::env::temp_dir().join(format!("run-driver-meta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.fits");
    let b = d.join("band-one-has-a-longer-file-name.fits");
    std::fs::copy(data("meds/sim-e2e-meds.fits"), &a).unwrap();
    std::fs::copy(data("meds/sim-e2e-meds.fits"), &b).unwrap();
    let out = d.join("out.fits");
    let mut run = MedsRun::new(
        &data("e2e/run-e2e01max.yaml"),
        &out,
        &[a.clone(), b.clone()],
    );
    run.fof_range = Some((0, 1));
    run.progress = ProgressMode::Quiet;
    let s = run.run(&mut |_| {}).unwrap();
    assert_eq!(s.nobj, 2);
    let meta = read_table(&out, "meta_data").unwrap();
    assert_eq!(meta.nrows(), 2);
    let files = meta.get("meds_file").unwrap().as_str().unwrap();
    assert_eq!(files[0], a.to_string_lossy());
    assert_eq!(files[1], b.to_string_lossy());
    let mut f = fitsio::FitsFile::open(&out).unwrap();
    let h = f.hdu("epoch_data").unwrap();
    let nd: i64 = h.read_key(&mut f, "NDROP").unwrap();
    let nd1: i64 = h.read_key(&mut f, "NDROP1").unwrap();
    assert_eq!((nd, nd1), (0, 0));
    std::fs::remove_dir_all(&d).unwrap();
}
