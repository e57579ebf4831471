//! `ngmixit` killed with SIGKILL at many points of a run and resumed: the final catalogue is
//! bit-identical to an uninterrupted run (every column but the wall-clock `time_last_fit`).
//!
//! The run: the e2e MEDS file, `--fof-range 0,39 --checkpoint-every 2` (a checkpoint after the
//! first object, then every two: ~20 checkpoints). The uninterrupted run is timed first; the
//! kill points are fractions of its wall time, moments when the checkpoint reached a given
//! number of rows, and moments when a checkpoint or the catalogue was being written (its
//! temporary file seen). After every kill the state on disk must be sane (no catalogue unless
//! the run had finished; a checkpoint, if any, complete and a prefix of the reference
//! catalogue); then the same command is run again (for every other kill point killed once
//! more) until it succeeds, and the catalogue is compared with the reference. No `.tmp-` file
//! may remain and the checkpoint must be gone.

#![cfg(feature = "des-y1")]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ngmixer::backends::meds::{read_table, Column, ColumnData, Columns};

const TIMEOUT: Duration = Duration::from_secs(60);
const NOBJ: usize = 40;

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

/// The e2e MEDS file (`NGMIXIT_E2E_MEDS` overrides the path, to run against another copy).
fn e2e_meds() -> PathBuf {
    std::env::var_os("NGMIXIT_E2E_MEDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| data("meds/sim-e2e-meds.fits"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ngmixit-kill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("NGMIXIT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn checkpoint_of(out: &Path) -> PathBuf {
    let t = out.display().to_string();
    PathBuf::from(format!(
        "{}-checkpoint.fits",
        t.strip_suffix(".fits").unwrap_or(&t)
    ))
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".tmp-"))
        .collect()
}

/// The command line of the run writing `out`.
fn args(cfg: &Path, meds: &Path, out: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "--seed",
        "12345",
        "--fof-range",
        "0,39",
        "--checkpoint-every",
        "2",
        "--threads",
        "2",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    a.push(cfg.into());
    a.push(out.into());
    a.push(meds.into());
    a
}

fn spawn(args: &[OsString], log: &Path) -> Child {
    let err = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn ngmixit")
}

/// Wait for `child`; a run still going after [`TIMEOUT`] is killed and fails the test.
fn wait(child: &mut Child, log: &Path) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "HANG: ngmixit did not finish within {TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Run to completion, expecting exit 0; returns the stderr.
fn run_ok(args: &[OsString], log: &Path) -> String {
    let mut c = spawn(args, log);
    let st = wait(&mut c, log);
    let err = std::fs::read_to_string(log).unwrap_or_default();
    assert!(st.success(), "ngmixit {args:?} failed ({st:?}):\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Every column but `time_last_fit`, as text.
fn content(path: &Path, ext: &str) -> Vec<(String, String)> {
    let c: Columns = read_table(path, ext).unwrap();
    c.columns()
        .iter()
        .filter(|c| c.name != "time_last_fit")
        .map(|c| (c.name.clone(), format!("{:?}", c.data)))
        .collect()
}

/// The first `n` rows of `c`, as text.
fn head(c: &Column, n: usize) -> String {
    let k = n * c.repeat;
    match &c.data {
        ColumnData::Int(v) => format!("{:?}", &v[..k]),
        ColumnData::Float(v) => format!("{:?}", &v[..k]),
        ColumnData::Str(v) => format!("{:?}", &v[..k]),
        ColumnData::Bool(v) => format!("{:?}", &v[..k]),
        ColumnData::Unsupported(t) => t.clone(),
    }
}

/// Rows in the checkpoint at `ck`, after checking that it is complete and that its tables are
/// the first rows of the reference catalogue.
fn check_checkpoint(ck: &Path, reference: &Path) -> usize {
    let cd = read_table(ck, "checkpoint_data")
        .unwrap_or_else(|e| panic!("checkpoint {} unreadable after a kill: {e}", ck.display()));
    let done = cd.get("curr_fofindex").unwrap().as_int().unwrap()[0] as usize;
    for ext in ["model_fits", "epoch_data"] {
        let got = read_table(ck, ext).unwrap();
        let want = read_table(reference, ext).unwrap();
        let n = got.nrows();
        if ext == "model_fits" {
            assert_eq!(
                n, done,
                "model_fits rows = curr_fofindex (one object per group)"
            );
        }
        assert!(n <= want.nrows());
        for c in got.columns().iter().filter(|c| c.name != "time_last_fit") {
            let w = want.get(&c.name).unwrap();
            assert_eq!(
                head(c, n),
                head(w, n),
                "checkpoint {ext}.{} differs",
                c.name
            );
        }
    }
    done
}

fn checkpoint_rows(ck: &Path) -> Option<usize> {
    read_table(ck, "model_fits").ok().map(|c| c.nrows())
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// A fraction of the uninterrupted wall time.
    Time(f64),
    /// The checkpoint holds at least this many rows.
    Rows(usize),
    /// The temporary file `<prefix><pid>` exists in the output directory (a checkpoint or
    /// the catalogue being written), for the `skip + 1`-th time.
    Writing(&'static str, usize),
}

struct Report {
    trigger: Trigger,
    killed_at: f64,
    rows_at_kill: Option<usize>,
    temps_at_kill: usize,
    finished_before_kill: bool,
    second_kill: Option<Option<usize>>,
    resumed: Vec<usize>,
    secs: f64,
}

/// Start the run and SIGKILL it at `trigger`; returns (seconds at kill, whether it had
/// already exited).
fn run_and_kill(
    args: &[OsString],
    log: &Path,
    ck: &Path,
    trigger: Trigger,
    t_ref: f64,
) -> (f64, bool) {
    let t0 = Instant::now();
    let mut child = spawn(args, log);
    let (mut writing, mut sightings) = (false, 0usize);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            // finished (or failed) before the trigger
            assert!(
                st.success(),
                "{st:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return (t0.elapsed().as_secs_f64(), true);
        }
        let due = match trigger {
            Trigger::Time(f) => t0.elapsed().as_secs_f64() >= f * t_ref,
            Trigger::Rows(k) => checkpoint_rows(ck).is_some_and(|n| n >= k),
            Trigger::Writing(prefix, skip) => {
                // `.<name>.tmp-<pid>` (not the `.<name>.tmp-probe<pid>` of the start-up check)
                let now = temporaries(ck.parent().unwrap()).iter().any(|n| {
                    n.strip_prefix(prefix)
                        .is_some_and(|pid| pid.chars().all(|c| c.is_ascii_digit()))
                });
                if now && !writing {
                    sightings += 1;
                }
                writing = now;
                sightings > skip
            }
        };
        if due {
            break;
        }
        assert!(t0.elapsed() < TIMEOUT, "HANG before the kill point");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Child::kill is SIGKILL on Unix
    child.kill().unwrap();
    let st = child.wait().unwrap();
    let t = t0.elapsed().as_secs_f64();
    use std::os::unix::process::ExitStatusExt;
    (t, st.signal().is_none() && st.success())
}

fn resumed_groups(stderr: &str) -> usize {
    // "... (N groups resumed from the checkpoint)"
    stderr
        .split(" groups resumed from the checkpoint")
        .next()
        .filter(|_| stderr.contains("groups resumed"))
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sigkill_at_any_point_then_resume_gives_the_uninterrupted_catalogue() {
    let d = TempDir::new("resume");
    let inputs = d.0.join("in");
    let logs = d.0.join("logs");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = inputs.join("cfg.yaml");
    let meds = inputs.join("tile.fits");
    std::fs::copy(data("e2e/run-e2e01max.yaml"), &cfg).unwrap();
    std::fs::copy(e2e_meds(), &meds).unwrap();

    let t_all = Instant::now();
    // the uninterrupted reference, timed
    let refdir = d.0.join("ref");
    std::fs::create_dir_all(&refdir).unwrap();
    let reference = refdir.join("cat.fits");
    let t0 = Instant::now();
    run_ok(&args(&cfg, &meds, &reference), &logs.join("ref.log"));
    let t_ref = t0.elapsed().as_secs_f64();
    assert_eq!(read_table(&reference, "model_fits").unwrap().nrows(), NOBJ);
    assert!(!checkpoint_of(&reference).exists());
    eprintln!("uninterrupted run: {t_ref:.3} s");

    let triggers = [
        Trigger::Time(0.05),
        Trigger::Time(0.15),
        Trigger::Time(0.25),
        Trigger::Time(0.35),
        Trigger::Time(0.5),
        Trigger::Time(0.65),
        Trigger::Time(0.8),
        Trigger::Time(0.95),
        Trigger::Rows(1),
        Trigger::Rows(7),
        Trigger::Rows(15),
        Trigger::Rows(25),
        Trigger::Rows(33),
        Trigger::Rows(36),
        // while a checkpoint or the catalogue is being written (when the poll catches it)
        Trigger::Writing(".cat-checkpoint.fits.tmp-", 0),
        Trigger::Writing(".cat-checkpoint.fits.tmp-", 3),
        Trigger::Writing(".cat.fits.tmp-", 0),
        Trigger::Writing(".cat.fits.tmp-", 0),
    ];
    let mut reports = Vec::new();
    for (i, &trigger) in triggers.iter().enumerate() {
        let t_case = Instant::now();
        let dir = d.0.join(format!("k{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("cat.fits");
        let ck = checkpoint_of(&out);
        let a = args(&cfg, &meds, &out);
        let log = |k: &str| logs.join(format!("k{i:02}-{k}.log"));
        let (killed_at, finished) = run_and_kill(&a, &log("1"), &ck, trigger, t_ref);

        // the state a kill leaves: a complete checkpoint (or none), no catalogue unless the run
        // had got to its final rename
        let rows_at_kill = ck.exists().then(|| check_checkpoint(&ck, &reference));
        if out.exists() {
            for ext in ["model_fits", "epoch_data"] {
                assert_eq!(content(&out, ext), content(&reference, ext), "{ext}");
            }
        }
        let temps_at_kill = temporaries(&dir).len();

        // every other kill point: the first resume is killed as well
        let mut second_kill = None;
        let mut resumed = Vec::new();
        if i % 2 == 1 && !finished {
            let (_, fin2) = run_and_kill(&a, &log("2"), &ck, Trigger::Time(0.3), t_ref);
            let rows = ck.exists().then(|| check_checkpoint(&ck, &reference));
            second_kill = Some(rows);
            if fin2 {
                resumed.push(resumed_groups(
                    &std::fs::read_to_string(log("2")).unwrap_or_default(),
                ));
            }
        }
        let before_last = ck.exists().then(|| check_checkpoint(&ck, &reference));
        let err = run_ok(&a, &log("3"));
        resumed.push(resumed_groups(&err));
        assert_eq!(
            resumed.last().copied(),
            Some(before_last.unwrap_or(0)),
            "the last run resumes after the checkpointed groups ({before_last:?}):\n{err}"
        );

        for ext in ["model_fits", "epoch_data", "meta_data"] {
            assert_eq!(
                content(&out, ext),
                content(&reference, ext),
                "kill point {i} ({trigger:?}): {ext} differs from the uninterrupted run"
            );
        }
        assert!(
            !ck.exists(),
            "kill point {i}: checkpoint left after success"
        );
        assert!(
            temporaries(&dir).is_empty(),
            "kill point {i}: temporaries left: {:?}",
            temporaries(&dir)
        );
        reports.push(Report {
            trigger,
            killed_at,
            rows_at_kill,
            temps_at_kill,
            finished_before_kill: finished,
            second_kill,
            resumed,
            secs: t_case.elapsed().as_secs_f64(),
        });
    }

    eprintln!(
        "kill point                               killed at  ck rows  tmp  2nd kill (ck rows)  \
         resumed  time"
    );
    for r in &reports {
        eprintln!(
            "{:<39}  {:>7.3} s  {:>7}  {:>3}  {:>18}  {:>7}  {:.2} s",
            format!("{:?}", r.trigger),
            r.killed_at,
            r.rows_at_kill.map_or("-".into(), |n| n.to_string()),
            r.temps_at_kill,
            match r.second_kill {
                None => "-".to_string(),
                Some(rows) => rows.map_or("none".into(), |n| n.to_string()),
            },
            format!("{:?}", r.resumed),
            r.secs
        );
        if r.finished_before_kill {
            eprintln!("  (finished before the kill point)");
        }
    }
    eprintln!("total {:.1} s", t_all.elapsed().as_secs_f64());

    // the kill points did exercise the resume path, from early and late checkpoints
    let resumed: Vec<usize> = reports
        .iter()
        .filter_map(|r| r.resumed.iter().copied().max())
        .filter(|&n| n > 0)
        .collect();
    assert!(
        resumed.len() >= 6,
        "only {} of {} kill points resumed from a checkpoint",
        resumed.len(),
        reports.len()
    );
    assert!(resumed.iter().any(|&n| n <= 5) && resumed.iter().any(|&n| n >= 30));
}
