//! The fitting ("ngmix") config read by `ngmixit` (spec §2.1, §2.2).

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::compat;
use super::enums::{
    BlindingType, ConcatType, DesBadPix, FitterType, GalaxyModel, ImageIoType, ImageType,
    MaxMethod, MetacalType, ModelNbrsMethod, PsfModel, Region, UnmodeledNbrsMask,
};
use super::prior_spec::ModelPars;
use super::run::NbrsPars;
use super::yaml::{self, RawNode, Value};

// ------------------------------------------------------------------------------------------
// Sections
// ------------------------------------------------------------------------------------------

/// `imageio`: which ImageIO class reads the data and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageIoConfig {
    /// Registry name of the ImageIO class.
    pub io_type: ImageIoType,
    /// `surface_brightness` or another name (DES IO; required there).
    #[serde(default)]
    pub image_type: Option<ImageType>,
    /// PSF source (§2.2, §3.6).
    pub psfs: PsfsConfig,
    /// Astrometry override (`$ASTROM_DIR/<version>`, DES Y1/Y3 only).
    #[serde(default)]
    pub astrom: Option<AstromConfig>,
}

/// `imageio.psfs`: where PSF images come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum PsfsConfig {
    /// PSF stamps stored in the MEDS `psf` HDU.
    #[serde(rename = "infile")]
    Infile {
        /// PSF blacklist FITS file (loaded but never consulted by ngmixer).
        #[serde(default)]
        blacklist: Option<String>,
    },
    /// PSFEx models.
    #[serde(rename = "psfex")]
    Psfex {
        /// PSF blacklist FITS file (loaded but never consulted by ngmixer).
        #[serde(default)]
        blacklist: Option<String>,
        /// Y1 rule: the PSFEx file is the image path with `.fits.fz` replaced by
        /// `_psfcat.psf` (and the MEDS `DESDATA` prefix replaced by `$DESDATA`), instead of a
        /// `--psf-map` lookup. Set by the Y1 compatibility layer.
        #[serde(default)]
        path_from_image: bool,
    },
    /// PIFF models, `$PIFF_DATA_DIR/<piff_run>/<expnum>/...`.
    #[serde(rename = "piff")]
    Piff {
        /// PIFF run name.
        piff_run: String,
        /// Size of the drawn stamps (pixels).
        stamp_size: u32,
        /// Treat a missing PIFF file as a flagged PSF instead of an error.
        #[serde(default)]
        allow_missing: bool,
        /// PSF blacklist FITS file (loaded but never consulted by ngmixer).
        #[serde(default)]
        blacklist: Option<String>,
    },
}

/// `imageio.astrom`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AstromConfig {
    /// Sub-directory of `$ASTROM_DIR` holding the pixmappy solutions.
    pub version: String,
}

/// `psf_pars`: PSF fitting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsfPars {
    /// PSF model.
    pub model: PsfModel,
    /// Number of random restarts.
    pub ntry: u32,
    /// Fitter settings, merged over the ngmix defaults (EM: `tol 1e-6`, `maxiter 50000`;
    /// LM: `maxfev 4000`, `xtol 5e-5`, `ftol 5e-5`).
    #[serde(default)]
    pub fit_pars: Option<PsfFitPars>,
}

/// `psf_pars.fit_pars`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsfFitPars {
    /// EM: maximum iterations.
    #[serde(default)]
    pub maxiter: Option<u32>,
    /// EM: tolerance.
    #[serde(default)]
    pub tol: Option<f64>,
    /// LM: maximum function evaluations.
    #[serde(default)]
    pub maxfev: Option<u32>,
    /// LM: relative tolerance in the solution.
    #[serde(default)]
    pub xtol: Option<f64>,
    /// LM: relative tolerance in the sum of squares.
    #[serde(default)]
    pub ftol: Option<f64>,
}

impl PsfPars {
    /// EM settings `(tol, maxiter)` with the ngmix defaults filled in.
    pub fn em_settings(&self) -> (f64, u32) {
        let f = self.fit_pars.unwrap_or_default();
        (f.tol.unwrap_or(1.0e-6), f.maxiter.unwrap_or(50_000))
    }

    /// LM settings `(maxfev, xtol, ftol)` with the ngmix PSF defaults filled in.
    pub fn lm_settings(&self) -> (u32, f64, f64) {
        let f = self.fit_pars.unwrap_or_default();
        (
            f.maxfev.unwrap_or(4000),
            f.xtol.unwrap_or(5.0e-5),
            f.ftol.unwrap_or(5.0e-5),
        )
    }
}

/// `max_pars`: the max-likelihood galaxy fit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPars {
    /// Maximiser (`lm`).
    #[serde(default = "default_method")]
    pub method: MaxMethod,
    /// Attempts with fresh guesses.
    pub ntry: u32,
    /// Levenberg–Marquardt settings.
    pub lm_pars: LmPars,
    /// `cm`: use the best `fracdev` grid value instead of fitting it.
    #[serde(default)]
    pub use_fracdev_grid: bool,
    /// `cm`: clip `fracdev` to this range (default `[-2, 2]`).
    #[serde(default = "default_fracdev_range")]
    pub fracdev_range: [f64; 2],
    /// `cm`: clip `TdByTe` to this range (default `[-1e9, 1e9]`; key `TdByTe_range`).
    #[serde(default = "default_tdbyte_range", rename = "TdByTe_range")]
    pub tdbyte_range: [f64; 2],
    /// `cm`: `fracdev` grid (ngmixer actually reads the top-level `fracdev_grid`; see
    /// [`FittingConfig::fracdev_grid`]).
    #[serde(default)]
    pub fracdev_grid: Option<FracdevGrid>,
}

fn default_method() -> MaxMethod {
    MaxMethod::Lm
}
fn default_fracdev_range() -> [f64; 2] {
    [-2.0, 2.0]
}
fn default_tdbyte_range() -> [f64; 2] {
    [-1.0e9, 1.0e9]
}

/// scipy `leastsq` default for `xtol`/`ftol` when `lm_pars` gives only some keys.
pub const LEASTSQ_DEFAULT_TOL: f64 = 1.49012e-8;

/// `max_pars.lm_pars`. Keys left out take the scipy `leastsq` defaults
/// (`xtol = ftol = 1.49012e-8`, `maxfev = 200·(npars+1)`), as in ngmixer.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmPars {
    /// Maximum function evaluations.
    #[serde(default)]
    pub maxfev: Option<u32>,
    /// Relative tolerance in the solution.
    #[serde(default)]
    pub xtol: Option<f64>,
    /// Relative tolerance in the sum of squares.
    #[serde(default)]
    pub ftol: Option<f64>,
}

impl LmPars {
    /// `(maxfev, xtol, ftol)` for a fit of `npars` parameters, scipy defaults filled in.
    pub fn resolved(&self, npars: usize) -> (u32, f64, f64) {
        let default_fev = u32::try_from(200 * (npars + 1)).unwrap_or(u32::MAX);
        (
            self.maxfev.unwrap_or(default_fev),
            self.xtol.unwrap_or(LEASTSQ_DEFAULT_TOL),
            self.ftol.unwrap_or(LEASTSQ_DEFAULT_TOL),
        )
    }
}

/// `fracdev_grid`: `linspace(min, max, num)` of trial `fracdev` values
/// (default `linspace(-1, 1.5, 26)`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FracdevGrid {
    /// First value.
    pub min: f64,
    /// Last value.
    pub max: f64,
    /// Number of values.
    pub num: u32,
}

impl Default for FracdevGrid {
    fn default() -> Self {
        FracdevGrid {
            min: -1.0,
            max: 1.5,
            num: 26,
        }
    }
}

impl FracdevGrid {
    /// The grid values (allocates `num` values; [`FittingConfig::validate`] caps `num` at
    /// 10000).
    pub fn values(&self) -> Vec<f64> {
        // numpy's arithmetic (`i * step + min`, last value exactly `max`)
        crate::math::linspace(self.min, self.max, self.num as usize)
    }
}

/// `cov_pars`: numerical covariance step (`replace_cov`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CovPars {
    /// ngmix `m` (number of steps).
    pub m: f64,
    /// ngmix `h` (step size).
    pub h: f64,
}

/// `metacal_pars`. Unknown ngmix metacal options are kept in [`MetacalPars::extra`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MetacalPars {
    /// Shear step (default 0.01).
    #[serde(default = "default_step")]
    pub step: f64,
    /// Image types (default noshear, 1p, 1m, 2p, 2m).
    #[serde(default)]
    pub types: Option<Vec<MetacalType>>,
    /// ngmix `psf` option (`gauss`, `fitgauss`, a dilation dict, ...).
    #[serde(default)]
    pub psf: Option<Value>,
    /// Add a sheared noise image to cancel noise correlations.
    #[serde(default)]
    pub fixnoise: Option<bool>,
    /// Use an analytic PSF for the reconvolution.
    #[serde(default)]
    pub analytic_psf: Option<Value>,
    /// Models and priors for the metacal fits (default: the main `model_pars`).
    #[serde(default)]
    pub model_pars: Option<ModelPars>,
    /// PSF fitting for the metacal images (default: the main `psf_pars`).
    #[serde(default)]
    pub psf_pars: Option<PsfPars>,
    /// Other ngmix metacal options (`symmetrize_psf`, `symmetrize_dilation`, ...), passed
    /// through.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn default_step() -> f64 {
    0.01
}

impl MetacalPars {
    /// The image types, default filled in.
    pub fn types_or_default(&self) -> Vec<MetacalType> {
        self.types
            .clone()
            .unwrap_or_else(|| MetacalType::DEFAULT.to_vec())
    }
}

impl Default for MetacalPars {
    fn default() -> Self {
        MetacalPars {
            step: 0.01,
            types: None,
            psf: None,
            fixnoise: None,
            analytic_psf: None,
            model_pars: None,
            psf_pars: None,
            extra: BTreeMap::new(),
        }
    }
}

/// A convergence tolerance: one value for every parameter, or one per parameter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ConvTol {
    /// One value for all parameters.
    Scalar(f64),
    /// Per-parameter values (configs carry 9 so one file serves up to 4 bands; truncated to
    /// `5 + nband`).
    PerPar(Vec<f64>),
}

impl ConvTol {
    /// Per-parameter tolerances for `npars` parameters.
    ///
    /// # Errors
    /// When a list has fewer than `npars` entries.
    pub fn for_npars(&self, npars: usize) -> Result<Vec<f64>, String> {
        match self {
            ConvTol::Scalar(v) => Ok(vec![*v; npars]),
            ConvTol::PerPar(v) if v.len() >= npars => Ok(v[..npars].to_vec()),
            ConvTol::PerPar(v) => Err(format!(
                "needs at least {npars} entries (5 + nband), has {}",
                v.len()
            )),
        }
    }
}

/// `mof`: multi-object fitting (§5.2, §5.7).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MofConfig {
    /// Absolute-change tolerance per parameter.
    pub maxabs_conv: ConvTol,
    /// Fractional-change tolerance per parameter.
    pub maxfrac_conv: ConvTol,
    /// Change in units of the parameter error.
    pub maxerr_conv: f64,
    /// Maximum number of iterations.
    pub max_itr: u32,
    /// Minimum number of iterations (0-based: at least `min_itr + 1` run).
    pub min_itr: u32,
    /// From this iteration on, use the raw weight instead of uberseg (required for MOF).
    #[serde(default)]
    pub min_useg_itr: Option<u32>,
    /// Write `iter_pars_<id>.dat` files.
    #[serde(default)]
    pub write_convergence_data: bool,
    /// Model written to the convergence files.
    #[serde(default)]
    pub convergence_model: Option<GalaxyModel>,
}

/// Integer flags given as one value or a list of values to be summed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FlagsSpec {
    /// One value.
    One(u64),
    /// Values to sum.
    Sum(Vec<u64>),
}

impl FlagsSpec {
    /// The combined value (sum, as ngmixer does).
    pub fn value(&self) -> u64 {
        match self {
            FlagsSpec::One(v) => *v,
            FlagsSpec::Sum(v) => v.iter().fold(0u64, |a, b| a.wrapping_add(*b)),
        }
    }
}

/// `correct_meds`: subtract MOF neighbours into local MEDS extracts (§7.3).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectMedsConfig {
    /// Replace bad pixels by the central model plus noise.
    pub replace_bad: bool,
    /// Symmetrize the weight/bmask under 90° rotation first (default true).
    #[serde(default = "default_true")]
    pub symmetrize_mask: bool,
    /// Outlier-reject every cutout (incl. the coadd) first.
    pub reject_outliers: bool,
    /// bmask bits that make a pixel bad.
    #[serde(default)]
    pub bad_flags: Option<FlagsSpec>,
    /// MOF run whose collated output is subtracted (megamix-meds).
    #[serde(default)]
    pub mof_run: Option<String>,
}

/// `forced_photometry`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcedPhotometryConfig {
    /// Model whose shape is used as template.
    pub model: GalaxyModel,
    /// Below this T, use a PSF template (key `min_T`).
    #[serde(rename = "min_T")]
    pub min_t: f64,
    /// Run whose collated output provides the models (megamix-meds).
    #[serde(default)]
    pub models_run: Option<String>,
}

/// `collate`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollateConfig {
    /// Concat class.
    pub concat_type: ConcatType,
    /// `None`: key absent (an error for `concat-des`); `Some(None)`: `blinding: null`.
    #[serde(default, deserialize_with = "some_option")]
    pub blinding: Option<Option<BlindingConfig>>,
}

/// `collate.blinding`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlindingConfig {
    /// Scheme.
    #[serde(rename = "type")]
    pub kind: BlindingType,
}

fn some_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `jobs` (megamix-meds).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// FoFs per chunk.
    pub chunksize: u32,
    /// Band letters, in MEDS file order.
    pub bands: Vec<String>,
}

/// `magzp_ref`: one zero point or one per band.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MagzpRef {
    /// Same for all bands.
    Scalar(f64),
    /// Per band.
    PerBand(Vec<f64>),
}

/// A cutout fraction threshold: a number or the string `one-over-side` (= 1/min(nrow, ncol)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFrac {
    /// A fixed fraction.
    Value(f64),
    /// `one-over-side`.
    OneOverSide,
}

impl MaxFrac {
    /// The threshold for a stamp of `nrow × ncol` pixels.
    pub fn threshold(&self, nrow: usize, ncol: usize) -> f64 {
        match *self {
            MaxFrac::Value(v) => v,
            MaxFrac::OneOverSide => 1.0 / nrow.min(ncol).max(1) as f64,
        }
    }
}

impl<'de> Deserialize<'de> for MaxFrac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Num(v)) => Ok(MaxFrac::Value(v)),
            Ok(Raw::Text(s)) if s == "one-over-side" => Ok(MaxFrac::OneOverSide),
            Ok(Raw::Text(s)) => Err(de::Error::custom(format!(
                "expected a number or \"one-over-side\", got \"{s}\""
            ))),
            Err(_) => Err(de::Error::custom("expected a number or \"one-over-side\"")),
        }
    }
}

/// `trim_image` / `trim_psf`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrimConfig {
    /// `[nrow, ncol]` of the trimmed stamp.
    pub dims: [u32; 2],
}

/// `psf_s2n_checks` (old PSFEx S/N blacklist).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsfS2nChecks {
    /// FITS file.
    pub file: String,
    /// Column holding the key.
    pub key: String,
    /// Minimum S/N.
    pub s2n_min: f64,
}

/// `propagate_star_flags` (HEAD form of the Y1 `prop_sat_starpix`, §3.7).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PropagateStarFlags {
    /// Propagate saturated/interpolated bright-star pixels to all bands and epochs.
    pub propagate: bool,
    /// Pixels with any of these bits set are not propagated.
    #[serde(default)]
    pub ignore_when_set: Vec<DesBadPix>,
}

impl PropagateStarFlags {
    /// The mask of `ignore_when_set`.
    pub fn ignore_mask(&self) -> u32 {
        DesBadPix::mask(&self.ignore_when_set)
    }
}

fn default_true() -> bool {
    true
}
fn default_max_box_size() -> u32 {
    2048
}
fn default_checkpoints() -> Vec<f64> {
    vec![0.0, 30.0, 60.0, 110.0]
}
fn default_max_zero_weight_frac() -> MaxFrac {
    MaxFrac::Value(1.0)
}
fn default_min_psf_s2n() -> f64 {
    f64::NEG_INFINITY
}
fn default_unmod() -> UnmodeledNbrsMask {
    UnmodeledNbrsMask::NbrsSeg
}

// ------------------------------------------------------------------------------------------
// The config
// ------------------------------------------------------------------------------------------

/// Defines [`FittingConfig`] and the private derived struct that reads its keys, so that the
/// public type can run the Y1 compatibility pass before the typed pass.
macro_rules! fitting_config {
    (
        $(#[$smeta:meta])*
        pub struct FittingConfig {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(try_from = "RawNode")]
        pub struct FittingConfig {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// True when the file used the Y1-era schema (`imageio_type` instead of `imageio`).
            #[serde(skip)]
            pub y1_schema: bool,
            /// Y1 weight clipping: zero weights below `min_weight` and clip at 0 (the `y1` tag
            /// did this; HEAD does not). Set by the compatibility layer for Y1-schema files that
            /// give `min_weight`.
            #[serde(skip)]
            pub y1_min_weight_clipping: bool,
            /// What the compatibility layer did (Y1 key mappings, ignored legacy keys,
            /// duplicate keys); one line each, for the log.
            #[serde(skip)]
            pub compat_notes: Vec<String>,
            /// Legacy keys accepted but not used (kept for the record), by key path.
            #[serde(skip)]
            pub legacy: BTreeMap<String, Value>,
            /// The file the config was loaded from (set by [`super::load_fitting_config`]).
            #[serde(skip)]
            pub source: Option<String>,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FittingFields {
            $( $(#[$fmeta])* $field: $ty, )*
        }

        impl FittingFields {
            fn into_config(self, report: compat::Report) -> FittingConfig {
                FittingConfig {
                    $( $field: self.$field, )*
                    y1_schema: report.y1_schema,
                    y1_min_weight_clipping: report.y1_min_weight_clipping,
                    compat_notes: report.notes,
                    legacy: report.legacy,
                    source: None,
                }
            }
        }
    };
}

fitting_config! {
    /// The fitting configuration (ngmixer "ngmix config", spec §2.1). Every key of the HEAD
    /// schema, plus the Y1 keys that the compatibility layer keeps (`max_bmask_frac`,
    /// `symmetrize_bmask`, `use_psf_rerun`, `psf_rerun_version`). Unknown keys are errors.
    ///
    /// Read it with [`super::load_fitting_config`] or [`super::from_yaml_str`]; both apply the
    /// Y1 compatibility mapping first (see [`FittingConfig::compat_notes`]).
    pub struct FittingConfig {
        // ---------------- driver (ngmixing.py) ----------------
        /// Fitter registry name.
        pub fitter_type: FitterType,
        /// ImageIO section.
        pub imageio: ImageIoConfig,
        /// Fit the single-epoch observations (default true).
        #[serde(default = "default_true")]
        pub fit_me_galaxy: bool,
        /// Fit the coadd observations (default false).
        #[serde(default)]
        pub fit_coadd_galaxy: bool,
        /// Objects with a larger box get BOX_SIZE_TOO_BIG (default 2048).
        #[serde(default = "default_max_box_size")]
        pub max_box_size: u32,
        /// Diagnostic plots (absent: the command-line value).
        #[serde(default)]
        pub make_plots: Option<bool>,
        /// Verbose output (default false; forced on by `--verbosity > 0`).
        #[serde(default)]
        pub verbose: bool,
        /// Minutes after start at which to checkpoint (default `[0, 30, 60, 110]`).
        #[serde(default = "default_checkpoints")]
        pub checkpoints: Vec<f64>,
        /// Model neighbours (MOF, or subtraction from a MOF catalogue with `--mof-file`).
        #[serde(default)]
        pub model_nbrs: bool,
        /// How modelled neighbours are removed (required when `model_nbrs`).
        #[serde(default)]
        pub model_nbrs_method: Option<ModelNbrsMethod>,
        /// MOF settings (required for MOF).
        #[serde(default)]
        pub mof: Option<MofConfig>,
        /// Subtract MOF neighbours into local MEDS extracts (needs `--mof-file`).
        #[serde(default)]
        pub correct_meds: Option<CorrectMedsConfig>,
        /// megamixit: the run makes corrected MEDS (incompatible with `model_nbrs`).
        #[serde(default)]
        pub make_corrected_meds: bool,
        /// With `correct_meds`: band index = position in the file list.
        #[serde(default)]
        pub band_not_in_name: bool,
        /// Forced photometry settings.
        #[serde(default)]
        pub forced_photometry: Option<ForcedPhotometryConfig>,
        /// Zero point used by collation when the MEDS metadata lack it.
        #[serde(default)]
        pub magzp_ref: Option<MagzpRef>,
        /// Collation settings (megamix-meds).
        #[serde(default)]
        pub collate: Option<CollateConfig>,
        /// Chunking (megamix-meds).
        #[serde(default)]
        pub jobs: Option<JobsConfig>,
        /// Seed of the per-chunk seeds (megamix-meds).
        #[serde(default)]
        pub global_seed: Option<u64>,
        /// Run name (must match the file name `run-<run>.yaml` for megamix-meds and the
        /// neighbour program).
        #[serde(default)]
        pub run: Option<String>,
        /// Neighbour-finding parameters (for `ngmixer-meds-make-nbrs-data`).
        #[serde(default)]
        pub nbrs: Option<NbrsPars>,

        // ---------------- MEDS IO (medsio.py, desmedsio.py) ----------------
        /// Weight map type.
        pub region: Region,
        /// Bad-pixel weight threshold: `correct_meds` (default 0 there) and, for Y1-schema
        /// files, weight clipping (see `y1_min_weight_clipping`).
        #[serde(default)]
        pub min_weight: Option<f64>,
        /// Cross-epoch outlier rejection (default true).
        #[serde(default = "default_true")]
        pub reject_outliers: bool,
        /// Skip cutouts whose image sums to exactly 0.
        #[serde(default)]
        pub ignore_zero_images: bool,
        /// Zero the weight where `bmask & extra_mask_flags`.
        #[serde(default)]
        pub extra_mask_flags: Option<u64>,
        /// DES: bit names summed into `extra_mask_flags` (DES Y3 names; HSC names for
        /// `meds-hsc-dr1`).
        #[serde(default)]
        pub extra_mask_flag_list: Option<Vec<String>>,
        /// Skip a cutout whose raw weight has a larger fraction of zeros (default 1.0).
        #[serde(default = "default_max_zero_weight_frac")]
        pub max_zero_weight_frac: MaxFrac,
        /// Zero the weight where the 90°-rotated raw weight is zero.
        #[serde(default)]
        pub symmetrize_weight: bool,
        /// Image-info flag bits that disqualify an SE image (default 0).
        #[serde(default)]
        pub image_flags2check: u64,
        /// Skip a cutout with any bmask bit within ± this many pixels of the centre.
        #[serde(default)]
        pub central_bmask_radius: Option<u32>,
        /// Skip a cutout with any of these bmask bits anywhere.
        #[serde(default)]
        pub bmask_skip_flags: Option<u64>,
        /// Y1: skip a cutout whose fraction of non-zero bmask pixels exceeds this (applied
        /// after `symmetrize_bmask`; absent = 1.0). HEAD raises on this key.
        #[serde(default)]
        pub max_bmask_frac: Option<MaxFrac>,
        /// Y1: OR the bmask with its 90° rotation before the checks. HEAD raises on this key.
        #[serde(default)]
        pub symmetrize_bmask: Option<bool>,
        /// Use only cutouts with `icut <= max_cutouts`.
        #[serde(default)]
        pub max_cutouts: Option<u32>,
        /// Trim SE image stamps about the jacobian centre.
        #[serde(default)]
        pub trim_image: Option<TrimConfig>,
        /// Trim SE PSF stamps about their centre.
        #[serde(default)]
        pub trim_psf: Option<TrimConfig>,
        /// Evaluate PSFEx at the rounded position.
        #[serde(default)]
        pub center_psf: bool,
        /// Y1/SV: use PSFEx reruns (`.../red/...` → `.../psfex-rerun/<psf_rerun_version>/...`).
        /// HEAD raises when true.
        #[serde(default)]
        pub use_psf_rerun: bool,
        /// Y1/SV: PSFEx rerun version.
        #[serde(default)]
        pub psf_rerun_version: Option<String>,
        /// Old PSFEx S/N blacklist.
        #[serde(default)]
        pub psf_s2n_checks: Option<PsfS2nChecks>,
        /// JSON file replacing SE image flags (`"<expid>-<ccd>": flags`).
        #[serde(default)]
        pub replacement_flags: Option<String>,
        /// Keep only SE images whose header `tiling` is listed.
        #[serde(default)]
        pub tilings: Option<Vec<i64>>,
        /// Read WCS from the coadd image header (off-chip neighbours).
        #[serde(default)]
        pub read_wcs: bool,
        /// Read SE WCS from SCAMP `.head` files.
        #[serde(default)]
        pub read_me_wcs: bool,
        /// Bright-star flag propagation (default: off).
        #[serde(default)]
        pub propagate_star_flags: PropagateStarFlags,
        /// Flag objects whose seg pixels touch STAR-masked pixels.
        #[serde(default)]
        pub flag_y1_stellarhalo_masked: bool,

        // ---------------- fitter (bootfit.py) ----------------
        /// Models and their priors; keys are the fitted models unless `fit_models` is given.
        pub model_pars: ModelPars,
        /// Ordered list of models to fit.
        #[serde(default)]
        pub fit_models: Option<Vec<GalaxyModel>>,
        /// PSF fitting.
        pub psf_pars: PsfPars,
        /// Galaxy max-likelihood fitting.
        pub max_pars: MaxPars,
        /// `cm`: trial `fracdev` grid (ngmixer passes the whole config to the composite
        /// bootstrapper, which reads this top-level key).
        #[serde(default)]
        pub fracdev_grid: Option<FracdevGrid>,
        /// Recompute the covariance numerically.
        #[serde(default)]
        pub replace_cov: bool,
        /// Step settings for `replace_cov`.
        #[serde(default)]
        pub cov_pars: Option<CovPars>,
        /// Name columns `log_T_r`.
        #[serde(default)]
        pub use_logpars: bool,
        /// LOW_PSF_FLUX below this max-over-bands PSF-flux S/N (default -inf).
        #[serde(default = "default_min_psf_s2n")]
        pub min_psf_s2n: f64,
        /// Drop epochs whose PSF-fit S/N is below this.
        #[serde(default)]
        pub min_psf_model_s2n: Option<f64>,
        /// Re-centre jacobians before the fits.
        #[serde(default)]
        pub pre_find_center: bool,
        /// Normalise the PSF for PSF fluxes (default true).
        #[serde(default = "default_true")]
        pub normalize_psf: bool,
        /// Masking of unmodelled neighbours (file key `model_nrbs_unmodmask`, sic).
        #[serde(default = "default_unmod", rename = "model_nrbs_unmodmask")]
        pub unmodeled_nbrs_mask: UnmodeledNbrsMask,
        /// Name coadd columns `coadd_*` even without an SE fit (default true).
        #[serde(default = "default_true")]
        pub use_coadd_prefix: bool,
        /// Extra variance ∝ model² in MOF weights (default 0).
        #[serde(default)]
        pub intr_prof_var_fac: f64,
        /// Add `g_sens` columns.
        #[serde(default)]
        pub do_shear: bool,
        /// MOF: start from the previous iteration's result (default true).
        #[serde(default = "default_true")]
        pub guess_from_nbrs: bool,
        /// Add noise up to this constant level (simulations).
        #[serde(default)]
        pub target_noise: Option<f64>,
        /// Metacal settings (defaults apply when absent).
        #[serde(default)]
        pub metacal_pars: Option<MetacalPars>,
        /// Replace masked pixels by the best-fit model before metacal (required for
        /// `metacal-ngmix-boot`).
        #[serde(default)]
        pub replace_bad_pixels: Option<bool>,
        /// Importance sampling settings (`isamp-ngmix-boot`), passed through.
        #[serde(default)]
        pub isample_pars: Option<BTreeMap<String, Value>>,
        /// Adaptive-moments settings (`metacal-admom-boot`), passed through.
        #[serde(default)]
        pub admom_pars: Option<BTreeMap<String, Value>>,
    }
}

impl TryFrom<RawNode> for FittingConfig {
    type Error = String;
    fn try_from(raw: RawNode) -> Result<Self, String> {
        let mut node = raw.0;
        let mut report = compat::apply(&mut node)?;
        let fields: FittingFields = yaml::from_node(&node).map_err(|e| e.render())?;
        report.notes.extend(yaml::Node::take_duplicates());
        Ok(fields.into_config(report))
    }
}

impl FittingConfig {
    /// The models to fit, in order: `fit_models`, or the keys of `model_pars`
    /// (`metacal-admom-boot` always fits `gauss`).
    pub fn models_to_fit(&self) -> Vec<GalaxyModel> {
        if self.fitter_type == FitterType::MetacalAdmomBoot {
            return vec![GalaxyModel::Gauss];
        }
        match &self.fit_models {
            Some(m) => m.clone(),
            None => self.model_pars.models(),
        }
    }

    /// The `fracdev` grid the composite fit uses: the top-level `fracdev_grid`, else
    /// `max_pars.fracdev_grid`, else the default `linspace(-1, 1.5, 26)`.
    pub fn fracdev_grid(&self) -> FracdevGrid {
        self.fracdev_grid
            .or(self.max_pars.fracdev_grid)
            .unwrap_or_default()
    }

    /// Metacal settings with defaults (`step 0.01`) when the section is absent.
    pub fn metacal(&self) -> MetacalPars {
        self.metacal_pars.clone().unwrap_or_default()
    }

    /// The `min_weight` threshold of `correct_meds` (default 0).
    pub fn correct_meds_min_weight(&self) -> f64 {
        self.min_weight.unwrap_or(0.0)
    }

    /// The weight below which Y1 weight clipping zeroes pixels, when it applies.
    pub fn y1_weight_clip(&self) -> Option<f64> {
        if self.y1_min_weight_clipping {
            self.min_weight
        } else {
            None
        }
    }

    /// `extra_mask_flags`, or the sum of the bits named in `extra_mask_flag_list` (DES IO; the
    /// list wins, as in ngmixer).
    ///
    /// # Errors
    /// An unknown bit name (or a forbidden HSC `DETECTED*` name).
    pub fn effective_extra_mask_flags(&self) -> Result<Option<u64>, String> {
        let Some(list) = &self.extra_mask_flag_list else {
            return Ok(self.extra_mask_flags);
        };
        let hsc = self.imageio.io_type == ImageIoType::MedsHscDr1;
        let mut flags = 0u64;
        for name in list {
            let bit = if hsc {
                if name == "DETECTED" || name == "DETECTED_NEGATIVE" {
                    return Err(format!(
                        "extra_mask_flag_list: HSC bit `{name}` must not be masked"
                    ));
                }
                super::enums::HSC_BADPIX
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, b)| u64::from(*b))
            } else {
                DesBadPix::from_name(name).map(|b| u64::from(b.bit()))
            };
            match bit {
                Some(b) => flags |= b,
                None => {
                    return Err(format!(
                        "extra_mask_flag_list: unknown {} bit name `{name}`",
                        if hsc { "HSC" } else { "DES Y3" }
                    ))
                }
            }
        }
        Ok(Some(flags))
    }
}
