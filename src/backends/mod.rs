//! Image sources: the in-memory backend and (feature `des-y1`) MEDS files with PSFEx models.

pub mod meds;
#[cfg(feature = "des-y1")]
pub mod medsio;
pub mod memory;
#[cfg(feature = "des-y1")]
pub mod psfex;
