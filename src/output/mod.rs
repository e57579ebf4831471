//! Output catalogues (FITS schema of the original ngmixer).

#[cfg(feature = "des-y1")]
pub mod convert;
#[cfg(feature = "des-y1")]
pub mod fits;
pub mod table;

pub use table::{Col, ColSpec, Kind, SchemaError, Table};

/// The output tables of a run, or of one group of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// `model_fits`, one row per object in run order.
    pub model_fits: Table,
    /// `epoch_data`.
    pub epoch_data: Table,
    /// `nbrs_data` (multi-object fits; written only when it has rows).
    pub nbrs_data: Table,
}

impl Catalog {
    /// Empty tables with these schemas (`nbrs_data` without columns).
    pub fn new(model_fits: Vec<ColSpec>, epoch_data: Vec<ColSpec>) -> Self {
        Self {
            model_fits: Table::new(model_fits),
            epoch_data: Table::new(epoch_data),
            nbrs_data: Table::default(),
        }
    }

    /// An empty catalogue with the schema of this one.
    pub fn empty_like(&self) -> Self {
        Self {
            model_fits: Table::new(self.model_fits.specs()),
            epoch_data: Table::new(self.epoch_data.specs()),
            nbrs_data: Table::new(self.nbrs_data.specs()),
        }
    }

    /// Append the rows of `other` (same schemas).
    ///
    /// # Errors
    /// [`SchemaError`] naming a column that differs.
    pub fn append(&mut self, other: &Catalog) -> Result<(), SchemaError> {
        self.model_fits.append(&other.model_fits)?;
        self.epoch_data.append(&other.epoch_data)?;
        self.nbrs_data.append(&other.nbrs_data)
    }
}
