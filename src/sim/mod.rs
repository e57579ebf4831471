//! A deterministic MEDS simulator for tests and demos.
//!
//! [`Scene::generate`] draws a small tile from a [`SimConfig`] and a seed: galaxies with known
//! truth ([`ObjectTruth`]: model, centre offset, shape, size, per-band flux), placed on a sky
//! plane `(v, u)` in arcsec, optionally with close companions (blends), optional masks
//! ([`Mask`]) and mixed box sizes; and per band a coadd plus several single-epoch images
//! ([`EpochTruth`]), each with its own affine Jacobian (pixel scale, small rotation and shear,
//! optionally mirrored), its own Gaussian-mixture PSF and its own noise level.
//! [`Scene::render_band`] draws one band as in-memory MEDS data ([`MedsData`]) and, with the
//! `des-y1` feature, [`write_meds`] / [`write_tile`] write it in the standard MEDS layout
//! (`object_data`, `image_info`, `metadata`, `image_cutouts`, `weight_cutouts`,
//! `seg_cutouts`, `bmask_cutouts`, `noise_cutouts`, `psf`) plus a `truth` table.
//!
//! ## Conventions
//!
//! * Cutout 0 of every object is the coadd; the coadd grid (Jacobian and origin) is the same
//!   in every band, as on a DES tile, so the coadd seg map is shared by all bands.
//! * Models are sampled at pixel centres (no pixel integration), as ngmix evaluates them, so
//!   the fitter's model family contains the truth exactly.
//! * With [`PixelUnits::SurfaceBrightness`] (default) a pixel holds the mixture evaluated per
//!   unit sky area — the ngmix v1.3.5 convention in which the fitted `flux` parameter of
//!   every epoch is the truth flux whatever its pixel scale. With
//!   [`PixelUnits::FluxPerPixel`] pixels are multiplied by the pixel area (pixel sums are the
//!   flux); the v1 fitter then returns `flux × area`.
//! * The PSF stamps hold the PSF mixture (unit flux) times the pixel area (sum ≈ 1), centred at
//!   `psf_cutout_row/col`.
//! * [`shear`]: the shear-test scenes (exp galaxies with a known shear in 90°-rotated pairs,
//!   rendered on demand by [`ShearSimSource`]) behind `ngmixer-shear-test`.
//! * Randomness comes from [`crate::rng::object_rng`] streams keyed by the seed, so a scene and
//!   its pixels depend only on the seed and the config, never on the order of calls.

mod render;
mod scene;
pub mod shear;
#[cfg(feature = "des-y1")]
mod write;

pub use render::{ColData, MedsData, SimTable};
pub use scene::{
    BandConfig, BandTruth, EpochTruth, Mask, ObjectTruth, PixelUnits, Scene, SimConfig, SimModel,
};
pub use shear::{ShearSimConfig, ShearSimSource};
#[cfg(feature = "des-y1")]
pub use write::{write_meds, write_table_file, write_tile, SimFiles};
