//! ngmixer's per-object fitters ([`crate::traits::ObjectFitter`]s) and the adapters that turn
//! a fitting config into their settings.
//!
//! | fitter | feature | `fitter_type` |
//! |---|---|---|
//! | [`MaxLike`] | `maxlike` | `max-ngmix-boot` |
//! | [`Metacal`] | `maxlike` + `metacal` | `metacal-ngmix-boot` |

pub mod from_config;
#[cfg(feature = "maxlike")]
pub mod maxlike;
#[cfg(all(feature = "maxlike", feature = "metacal"))]
pub mod metacal;
#[cfg(feature = "maxlike")]
pub mod schema;

#[cfg(feature = "maxlike")]
pub use maxlike::{namer, FitterSettings, GalModel, MaxLike};
#[cfg(all(feature = "maxlike", feature = "metacal"))]
pub use metacal::{Metacal, MetacalSettings};

pub use crate::obs::{ObjectMeta, ObjectObs};
