//! Output catalogues (FITS schema of the original ngmixer).

#[cfg(feature = "des-y1")]
pub mod convert;
#[cfg(feature = "des-y1")]
pub mod fits;
pub mod table;

pub use table::{ColSpec, Kind, Table};
