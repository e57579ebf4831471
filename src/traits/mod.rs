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
