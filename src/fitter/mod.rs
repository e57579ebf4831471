//! ngmixer's per-object fitters ([`crate::traits::ObjectFitter`]s) and the adapters that turn
//! a fitting config into their settings.
//!
//! | fitter | feature | `fitter_type` |
//! |---|---|---|
//! | [`MaxLike`] | `maxlike` | `max-ngmix-boot` |

pub mod from_config;
#[cfg(feature = "maxlike")]
pub mod maxlike;
#[cfg(feature = "maxlike")]
pub mod schema;

#[cfg(feature = "maxlike")]
pub use maxlike::{namer, FitterSettings, GalModel, MaxLike};

pub use crate::obs::{ObjectMeta, ObjectObs};
