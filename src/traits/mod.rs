//! The small traits the generic layers are built on.

use crate::error::Result;
use crate::obs::ObjectObs;
use crate::output::Catalog;

/// A source of per-object observations (MEDS files, an in-memory simulation, ...).
///
/// Handles are cheap to duplicate with [`ImageSource::reopen`]: every worker thread gets its
/// own, so sources need not be `Sync` (cfitsio handles are not).
pub trait ImageSource: Send + Sized {
    /// Number of objects.
    fn nobj(&self) -> usize;
    /// Number of bands.
    fn nband(&self) -> usize;
    /// The `(id, number)` of object `iobj` without reading its images (FoF tables are matched
    /// on `number`, object flags on `id`).
    fn id_number(&self, iobj: usize) -> Result<(i64, i64)>;
    /// Build the observations of object `iobj` into `out` (its buffers are reused).
    /// Problems with single cutouts become flagged placeholders; an `Err` means the source
    /// itself is unreadable.
    fn read_object(&mut self, iobj: usize, out: &mut ObjectObs) -> Result<()>;
    /// An independent handle on the same data.
    fn reopen(&self) -> Result<Self>;
}

/// A per-object (or per-FoF) fitter run by the driver [`crate::run::Fitter`].
///
/// The max-likelihood fitter implements it for one object at a time; a multi-object fitter
/// implements it for a whole FoF group. Fit failures are data (flag bits in the rows), never
/// errors: an `Err` stops the run.
pub trait ObjectFitter: Sync {
    /// The ngmixer `fitter_type` this fitter implements (recorded in run identities).
    fn fitter_type(&self) -> &'static str;
    /// Empty output tables with this fitter's schema.
    fn empty_catalog(&self) -> Catalog;
    /// Fit the members of one group (source order), appending one `model_fits` row per member,
    /// in order, and their `epoch_data` (and `nbrs_data`) rows to `out`. Random streams derive
    /// from `seed` and the objects' ids (or the FoF id), never from the thread or chunk.
    fn fit_group(&self, members: &mut [ObjectObs], seed: u64, out: &mut Catalog) -> Result<()>;
}

#[cfg(feature = "des-y1")]
/// A batch system the megamixer ([`crate::systems::Megamixer`]) runs chunk jobs on: local
/// child processes, a plain shell, Slurm, LSF (SLAC) or HTCondor (BNL).
///
/// The chunk scripts themselves (`runchunk.sh`, or `<base>.sh` in the Y3 layout) are written
/// by the megamixer; a system writes the job files around them (one per chunk, or one array
/// for a set of chunks), submits them, and says what it knows about each chunk's latest job.
/// Chunk outputs and the state files the chunk scripts write decide the final state
/// ([`crate::systems::ChunkState`]); the system adds what only it knows (queued, running,
/// killed).
pub trait BatchSystem {
    /// The `--system` name.
    fn name(&self) -> &'static str;
    /// The shell expression of the chunk scripts' scratch directory (spec §8.1: `mktemp` for
    /// shell-like systems, `${TMPDIR}` on LSF, the condor scratch directory on HTCondor).
    fn tmpdir_expr(&self) -> &'static str;
    /// Write the job files of `chunks` (indices into [`crate::systems::TileJobs::chunks`]),
    /// one per chunk or one array, replacing stale ones. Returns the files written.
    fn write_jobs(
        &self,
        tile: &crate::systems::TileJobs,
        chunks: &[usize],
    ) -> Result<Vec<std::path::PathBuf>>;
    /// Submit (or, for shell-like systems, run) the jobs of `chunks`, whose files
    /// [`BatchSystem::write_jobs`] wrote.
    fn submit(
        &mut self,
        tile: &crate::systems::TileJobs,
        chunks: &[usize],
        log: &mut dyn FnMut(&str),
    ) -> Result<()>;
    /// What the system knows about the latest job of every chunk (in chunk order).
    fn states(&self, tile: &crate::systems::TileJobs) -> Result<Vec<crate::systems::SysState>>;
    /// Resubmit `chunks` alone (failed or never run): fresh job files, then a submission.
    fn resubmit(
        &mut self,
        tile: &crate::systems::TileJobs,
        chunks: &[usize],
        log: &mut dyn FnMut(&str),
    ) -> Result<()> {
        self.write_jobs(tile, chunks)?;
        self.submit(tile, chunks, log)
    }
    /// One shell command that runs or submits chunk `chunk` (`--print-commands`).
    fn command(&self, tile: &crate::systems::TileJobs, chunk: usize) -> String;
    /// The chunk directory and output base names when this system has its own (spec §8.1:
    /// the SLAC array uses `chunk<k+1>`, BNL `chunk%03d-%05d-%05d`); `None`: the layout's.
    fn chunk_names(
        &self,
        _layout: crate::systems::Layout,
        _tile: &str,
        _run: &str,
        _chunk: usize,
        _range: (i64, i64),
    ) -> Option<(String, String)> {
        None
    }
}
