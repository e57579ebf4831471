//! # ngmixer
//!
//! A Rust re-implementation of **ngmixer**, the DES pipeline that runs the **ngmix**
//! Gaussian-mixture galaxy-fitting engine over MEDS cutout files. The numerical engine is part
//! of this crate.
//!
//! See the README for the quick start and the crate-level conventions below.
//!
//! ## Conventions
//!
//! * Images are indexed `[row, col]` (row is the slow axis). Pixel centres are at integer
//!   coordinates.
//! * The "sky" plane has coordinates `(v, u)`; `v` goes with rows, `u` with columns.
//!   A [`gmix::Jacobian`] maps pixel `(row, col)` to
//!   `v = dvdrow (row - row0) + dvdcol (col - col0)`, `u = dudrow (row - row0) + dudcol (col - col0)`.
//!   Its determinant is `dudcol dvdrow - dudrow dvdcol`; `scale = sqrt(|det|)`, `area = scale²`.
//! * A Gaussian is `[p, row, col, irr, irc, icc]` in sky units (`row` is `v`, `col` is `u`);
//!   `p` is its integrated flux.
//! * Simple model parameters are `[row, col, g1, g2, T, flux_0, .., flux_{nband-1}]`, in arcsec,
//!   arcsec² and the flux units of the ngmix generation being reproduced. ngmix samples the model
//!   at pixel centres (it does not integrate over the pixel). ngmix v1.3.5, which ngmixer ran and
//!   which the fitters here follow by default, evaluates a Gaussian per unit sky area without a
//!   pixel-area factor, so its fluxes are `pixel sum × pixel area` (surface-brightness units);
//!   ngmix 2.x multiplies by the pixel area, so its fluxes are pixel sums. The kernels select
//!   this with their evaluation policy (`fitting::kernel::Eval::AREA`).
//! * `e1 > 0` elongates along columns (`u`): `icc > irr`.
//!
//! ## Features
//!
//! | feature | what it enables |
//! |---|---|
//! | `des-y1` (default) | the MEDS backend (fitsio with bundled cfitsio), PSFEx models, FITS output files and checkpoints ([`run::files`], [`run::meds_run`]), `ngmixit` |
//! | `maxlike` (default) | the max-likelihood fitter (`fitter::MaxLike`) |
//! | `metacal` (default) | the metacal image engine ([`metacal`]); with `maxlike`, the `metacal-ngmix-boot` fitter (`fitter::Metacal`) and `ngmixer-shear-test` |
//! | `local`, `slurm`, `slac`, `bnl` (all default; each implies `des-y1`) | the megamixer batch systems ([`systems`]): child processes, Slurm job arrays, LSF `bsub` scripts, an HTCondor submit file (`shell` is always there) |
//!
//! The run driver, for any image source and per-object fitter, is [`run::Fitter`].

#![warn(missing_docs)]

pub mod backends;
#[cfg(feature = "des-y1")]
pub mod collate;
pub mod config;
pub mod error;
pub mod fitter;
pub mod fitting;
pub mod flags;
pub mod gmix;
pub mod kernels;
pub mod math;
#[cfg(feature = "metacal")]
pub mod metacal;
#[cfg(feature = "des-y1")]
pub mod nbrs;
pub mod obs;
pub mod output;
pub mod plot;
pub mod priors;
pub mod rng;
pub mod run;
pub mod sim;
#[cfg(feature = "des-y1")]
pub mod systems;
pub mod traits;

pub use error::{Error, GMixError, GResult, Result};
