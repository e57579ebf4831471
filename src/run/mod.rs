//! The run driver, [`Fitter<I: ImageSource, F: ObjectFitter>`]: groups, seeds, worker
//! threads, progress, checkpoints and resume, for any image source and any per-object (or
//! per-FoF) fitter.
//!
//! * Work is cut into [`Groups`] (FoF groups, or one object each) and handed to worker threads
//!   one group at a time; every worker has its own source handle. Results are appended in group
//!   order, whatever the thread count, and each object's random stream comes from the run seed
//!   and its id ([`crate::rng::object_rng`]), so the catalogue does not depend on the thread
//!   count or on how a tile is chunked.
//! * Checkpoints: whenever the [`CheckpointSchedule`] says so, the completed prefix of groups
//!   is handed to a [`CheckpointStore`] (FITS files with the run's identity, in
//!   [`files`]); a resumed run starts after the last saved group. The schedule is checked
//!   after every group, so it is honoured at any tile size. On an error the completed prefix
//!   is saved before the error is returned, so nothing fitted is lost.
//! * A panic inside a fit (a bug) becomes an error naming the FoF and its objects.

#[cfg(feature = "des-y1")]
pub mod files;
pub mod groups;
pub mod identity;
#[cfg(feature = "des-y1")]
pub mod meds_run;
pub mod progress;
#[cfg(all(feature = "maxlike", feature = "metacal"))]
pub mod shear_test;

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

pub use groups::{parse_fof_range, FofRange, Group, Groups};
pub use identity::{FileStamp, RunIdentity};
pub use progress::{Progress, ProgressMode};

use crate::error::{Error, Result};
use crate::obs::ObjectObs;
use crate::output::Catalog;
use crate::traits::{ImageSource, ObjectFitter};

/// When to write checkpoints: after the first group finished past each of `minutes` (elapsed
/// wall time of this process), and every `every_groups` groups if set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointSchedule {
    minutes: Vec<f64>,
    every_groups: Option<usize>,
    next: usize,
}

impl CheckpointSchedule {
    /// A schedule at these elapsed times (minutes, any order; negative or non-finite times are
    /// a config error caught by validation and ignored here) and, optionally, every
    /// `every_groups` groups.
    pub fn new(minutes: &[f64], every_groups: Option<usize>) -> Self {
        let mut m: Vec<f64> = minutes
            .iter()
            .copied()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .collect();
        m.sort_by(f64::total_cmp);
        Self {
            minutes: m,
            every_groups: every_groups.filter(|&n| n > 0),
            next: 0,
        }
    }

    /// No checkpoints.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether a checkpoint is due now, `since_last` groups after the previous one. Times that
    /// all passed while one group was being fitted give one checkpoint (the state is the same).
    fn due(&mut self, elapsed_minutes: f64, since_last: usize) -> bool {
        let mut due = self.every_groups.is_some_and(|n| since_last >= n);
        while self.next < self.minutes.len() && elapsed_minutes > self.minutes[self.next] {
            self.next += 1;
            due = true;
        }
        due
    }
}

/// Where checkpoints go and come from.
pub trait CheckpointStore {
    /// The saved state, if any, with the schemas of `empty`. A checkpoint of another run must
    /// be refused with an error that says what differs.
    fn load(&self, empty: &Catalog) -> Result<Option<Resume>>;
    /// Save the first `groups_done` groups' rows.
    fn save(&self, catalog: &Catalog, groups_done: usize) -> Result<()>;
}

/// A saved state.
#[derive(Debug, Clone)]
pub struct Resume {
    /// Rows of the completed groups.
    pub catalog: Catalog,
    /// Number of completed groups.
    pub groups_done: usize,
}

/// What one run is: seed, groups, object flags, threads and checkpoints.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Run seed.
    pub seed: u64,
    /// The groups, in processing order.
    pub groups: Groups,
    /// `id → flags` (non-zero): those objects get `obj_flags` and are not fitted.
    pub obj_flags: HashMap<i64, i32>,
    /// Worker threads (see [`effective_threads`]).
    pub threads: usize,
    /// Checkpoint schedule.
    pub schedule: CheckpointSchedule,
    /// Stop right after the first checkpoint (tests of the resume path).
    pub stop_after_checkpoint: bool,
}

impl RunSpec {
    /// All groups of `groups` with `seed`, on all cores, no checkpoints.
    pub fn new(seed: u64, groups: Groups) -> Self {
        Self {
            seed,
            groups,
            obj_flags: HashMap::new(),
            threads: effective_threads(None).0,
            schedule: CheckpointSchedule::none(),
            stop_after_checkpoint: false,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every group is in the catalogue.
    Complete,
    /// Stopped after a checkpoint on request ([`RunSpec::stop_after_checkpoint`]).
    StoppedAfterCheckpoint,
}

/// The result of [`Fitter::run`].
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Rows of the completed groups, in group order.
    pub catalog: Catalog,
    /// How the run ended.
    pub end: RunEnd,
    /// Groups in the catalogue.
    pub groups_done: usize,
    /// Groups taken from a checkpoint.
    pub resumed_groups: usize,
    /// Checkpoints written.
    pub checkpoints: usize,
    /// Single-epoch cutouts the source could not use at all, per band, over the groups fitted
    /// by this process.
    pub dropped_epochs: Vec<u64>,
}

/// The worker count for a request: `None` or 0 mean all cores; more than the machine's
/// parallelism is capped to it, with a warning to show.
pub fn effective_threads(requested: Option<usize>) -> (usize, Option<String>) {
    let avail = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match requested {
        None | Some(0) => (avail, None),
        Some(n) if n > avail => (
            avail,
            Some(format!(
                "--threads {n} is more than the {avail} cores of this machine; using {avail}"
            )),
        ),
        Some(n) => (n, None),
    }
}

/// The driver: an image source and a per-object fitter.
#[derive(Debug)]
pub struct Fitter<I: ImageSource, F: ObjectFitter> {
    source: I,
    fitter: F,
}

struct GroupResult {
    catalog: Catalog,
    nobj: usize,
    dropped: Vec<u64>,
}

impl<I: ImageSource, F: ObjectFitter> Fitter<I, F> {
    /// A driver over `source` with `fitter`.
    pub fn new(source: I, fitter: F) -> Self {
        Self { source, fitter }
    }

    /// The source.
    pub fn source(&self) -> &I {
        &self.source
    }

    /// The fitter.
    pub fn fitter(&self) -> &F {
        &self.fitter
    }

    /// Fit `groups` with `seed` on `threads` workers, no checkpoints: the catalogue in group
    /// order.
    ///
    /// # Errors
    /// As [`Fitter::run`].
    pub fn fit_groups(&self, seed: u64, groups: Groups, threads: usize) -> Result<Catalog> {
        let mut spec = RunSpec::new(seed, groups);
        spec.threads = threads.max(1);
        let mut p = Progress::new("fit", spec.groups.nobj(), 0, ProgressMode::Quiet);
        Ok(self.run(&spec, None, &mut p)?.catalog)
    }

    /// Fit every object of the source, one object per group.
    ///
    /// # Errors
    /// As [`Fitter::run`].
    pub fn fit_all(&self, seed: u64, threads: usize) -> Result<Catalog> {
        self.fit_groups(seed, Groups::singletons(self.source.nobj(), None)?, threads)
    }

    /// Run `spec`: resume from `store` if it holds a checkpoint of this run, fit the remaining
    /// groups on `spec.threads` workers, checkpoint on schedule.
    ///
    /// # Errors
    /// An unreadable source, a fitter error, a failing checkpoint store, or a refused
    /// checkpoint. When fitting stops on an error after some groups were completed, they are
    /// saved to `store` first.
    pub fn run(
        &self,
        spec: &RunSpec,
        store: Option<&dyn CheckpointStore>,
        progress: &mut Progress,
    ) -> Result<RunOutput> {
        let t0 = Instant::now();
        let groups = spec.groups.as_slice();
        let ngroups = groups.len();
        let nband = self.source.nband();
        let mut catalog = self.fitter.empty_catalog();
        let mut start = 0;
        if let Some(store) = store {
            if let Some(r) = store.load(&catalog)? {
                if r.groups_done > ngroups {
                    return Err(Error::Invalid(format!(
                        "checkpoint holds {} groups but the run has {ngroups}",
                        r.groups_done
                    )));
                }
                let nobj: usize = groups[..r.groups_done]
                    .iter()
                    .map(|g| g.members.len())
                    .sum();
                if r.catalog.model_fits.nrows() != nobj {
                    return Err(Error::Invalid(format!(
                        "checkpoint holds {} model_fits rows for the {nobj} objects of its \
                         first {} groups",
                        r.catalog.model_fits.nrows(),
                        r.groups_done
                    )));
                }
                catalog = r.catalog;
                start = r.groups_done;
                progress.inc(nobj);
                if start > 0 {
                    progress.note(&format!(
                        "resuming after {start} of {ngroups} groups ({nobj} objects)"
                    ));
                }
            }
        }
        let mut out = RunOutput {
            catalog: Catalog::default(),
            end: RunEnd::Complete,
            groups_done: start,
            resumed_groups: start,
            checkpoints: 0,
            dropped_epochs: vec![0; nband],
        };
        let nworkers = spec
            .threads
            .max(1)
            .min(ngroups.saturating_sub(start))
            .max(1);
        let mut handles = Vec::with_capacity(nworkers);
        for _ in 0..nworkers {
            handles.push(self.source.reopen()?);
        }
        let next = AtomicUsize::new(start);
        let stop = AtomicBool::new(false);
        let mut schedule = spec.schedule.clone();
        let mut first_err: Option<Error> = None;
        let mut last_ck = start;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<(usize, Result<GroupResult>)>();
            let fitter = &self.fitter;
            for mut src in handles {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                s.spawn(move || {
                    let mut objs: Vec<ObjectObs> = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let g = next.fetch_add(1, Ordering::Relaxed);
                        if g >= ngroups {
                            break;
                        }
                        let r =
                            Self::fit_group_guarded(fitter, &mut src, &groups[g], spec, &mut objs);
                        if tx.send((g, r)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending: BTreeMap<usize, GroupResult> = BTreeMap::new();
            let mut appended = start;
            // the lowest group that failed: groups before it are still appended (workers
            // claim groups in order, so they all finish), the error reported is its own
            let mut fail_at = ngroups;
            for (g, r) in rx {
                if out.end != RunEnd::Complete || g >= fail_at {
                    continue; // draining after a stop
                }
                match r {
                    Err(e) => {
                        fail_at = g;
                        first_err = Some(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                    Ok(gr) => {
                        pending.insert(g, gr);
                    }
                }
                while appended < fail_at {
                    let Some(gr) = pending.remove(&appended) else {
                        break;
                    };
                    if let Err(e) = catalog.append(&gr.catalog) {
                        first_err = Some(e.into());
                        fail_at = appended;
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    for (d, x) in out.dropped_epochs.iter_mut().zip(&gr.dropped) {
                        *d += x;
                    }
                    appended += 1;
                    progress.inc(gr.nobj);
                }
                out.groups_done = appended;
                if first_err.is_some() || appended >= ngroups {
                    continue;
                }
                let Some(store) = store else { continue };
                let minutes = t0.elapsed().as_secs_f64() / 60.0;
                if appended > last_ck && schedule.due(minutes, appended - last_ck) {
                    if let Err(e) = store.save(&catalog, appended) {
                        first_err = Some(e);
                        fail_at = appended;
                        stop.store(true, Ordering::Relaxed);
                        continue;
                    }
                    last_ck = appended;
                    out.checkpoints += 1;
                    progress.note(&format!("checkpoint after {appended} of {ngroups} groups"));
                    if spec.stop_after_checkpoint {
                        out.end = RunEnd::StoppedAfterCheckpoint;
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        if let Some(e) = first_err {
            if let Some(store) = store {
                if out.groups_done > last_ck {
                    if let Err(e2) = store.save(&catalog, out.groups_done) {
                        progress.note(&format!("could not save the completed groups: {e2}"));
                    } else {
                        progress.note(&format!(
                            "saved the {} completed groups to the checkpoint",
                            out.groups_done
                        ));
                    }
                }
            }
            return Err(e);
        }
        out.catalog = catalog;
        Ok(out)
    }

    fn fit_group_guarded(
        fitter: &F,
        src: &mut I,
        group: &Group,
        spec: &RunSpec,
        objs: &mut Vec<ObjectObs>,
    ) -> Result<GroupResult> {
        match catch_unwind(AssertUnwindSafe(|| {
            Self::fit_group(fitter, src, group, spec, objs)
        })) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                objs.clear(); // its buffers may be half-filled
                Err(Error::Invalid(format!(
                    "internal error while fitting {}: {msg} (please report it with the input)",
                    describe(src, group)
                )))
            }
        }
    }

    fn fit_group(
        fitter: &F,
        src: &mut I,
        group: &Group,
        spec: &RunSpec,
        objs: &mut Vec<ObjectObs>,
    ) -> Result<GroupResult> {
        let n = group.members.len();
        if objs.len() < n {
            objs.resize_with(n, ObjectObs::default);
        }
        let mut dropped = vec![0u64; src.nband()];
        for (o, &k) in objs.iter_mut().zip(&group.members) {
            if let Err(e) = src.read_object(k, o) {
                let what = match src.id_number(k) {
                    Ok((id, number)) => format!("object id {id} (number {number}, row {k})"),
                    Err(_) => format!("object row {k}"),
                };
                return Err(Error::Invalid(format!("reading {what}: {e}")));
            }
            o.meta.fofid = group.fofid;
            if let Some(&f) = spec.obj_flags.get(&o.meta.id) {
                o.meta.obj_flags |= f; // besides what the source set (DES star flags)
            }
            for (d, &x) in dropped.iter_mut().zip(&o.meta.dropped_epochs) {
                *d += u64::from(x);
            }
        }
        let mut catalog = fitter.empty_catalog();
        fitter.fit_group(&mut objs[..n], spec.seed, &mut catalog)?;
        if catalog.model_fits.nrows() != n {
            return Err(Error::Invalid(format!(
                "fitter {} wrote {} rows for the {n} members of {}",
                fitter.fitter_type(),
                catalog.model_fits.nrows(),
                describe(src, group)
            )));
        }
        Ok(GroupResult {
            catalog,
            nobj: n,
            dropped,
        })
    }
}

/// `object id 12` or `FoF 7 (objects id 3, id 4)`, for messages.
fn describe<I: ImageSource>(src: &I, group: &Group) -> String {
    let ids: Vec<String> = group
        .members
        .iter()
        .take(8)
        .map(|&k| match src.id_number(k) {
            Ok((id, _)) => format!("id {id}"),
            Err(_) => format!("row {k}"),
        })
        .collect();
    let more = if group.members.len() > 8 { ", ..." } else { "" };
    if group.fofid == crate::flags::DEFVAL as i64 {
        format!("object {}{more}", ids.join(", "))
    } else {
        format!("FoF {} (objects {}{more})", group.fofid, ids.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_fires_once_per_boundary_and_every_n() {
        let mut s = CheckpointSchedule::new(&[2.0, 0.5, 1.0], None);
        assert!(!s.due(0.1, 5));
        assert!(s.due(0.6, 5));
        assert!(!s.due(0.7, 1));
        // both remaining times passed while one group ran: one checkpoint
        assert!(s.due(3.0, 1));
        assert!(!s.due(10.0, 1));
        let mut e = CheckpointSchedule::new(&[], Some(3));
        assert!(!e.due(0.0, 2));
        assert!(e.due(0.0, 3));
        let mut bad = CheckpointSchedule::new(&[-1.0, f64::NAN], None);
        assert!(!bad.due(100.0, 1));
    }

    #[test]
    fn threads_are_capped_with_a_warning() {
        let avail = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(effective_threads(Some(1)).0, 1);
        assert_eq!(effective_threads(None), (avail, None));
        let (n, w) = effective_threads(Some(100_000));
        assert_eq!(n, avail);
        assert!(w.unwrap().contains("--threads 100000"));
    }
}
