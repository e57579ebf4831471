//! The small traits the generic layers are built on.

use crate::error::Result;
use crate::obs::ObjectObs;

/// A source of per-object observations (MEDS files, an in-memory simulation, ...).
///
/// Handles are cheap to duplicate with [`ImageSource::reopen`]: every worker thread gets its
/// own, so sources need not be `Sync` (cfitsio handles are not).
pub trait ImageSource: Send + Sized {
    /// Number of objects.
    fn nobj(&self) -> usize;
    /// Number of bands.
    fn nband(&self) -> usize;
    /// Build the observations of object `iobj` into `out` (its buffers are reused).
    /// Problems with single cutouts become flagged placeholders; an `Err` means the source
    /// itself is unreadable.
    fn read_object(&mut self, iobj: usize, out: &mut ObjectObs) -> Result<()>;
    /// An independent handle on the same data.
    fn reopen(&self) -> Result<Self>;
}
