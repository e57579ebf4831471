//! Closed sets of names used in configs (registries of ngmixer, model names, bit names).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Declare a string-valued enum: serde names, `as_str`, `Display`, `ALL`.
macro_rules! name_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name as written in config files.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }

            /// Parse a config name (exact spelling).
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $( $text => Some($name::$variant), )* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_enum! {
    /// Fitter registry names (`fitter_type`; ngmixer lower-cases the name before lookup).
    pub enum FitterType {
        /// Max-likelihood fit with the ngmix bootstrapper.
        MaxNgmixBoot = "max-ngmix-boot",
        /// Max-likelihood fit followed by metacalibration.
        MetacalNgmixBoot = "metacal-ngmix-boot",
        /// Adaptive-moments metacalibration (model fixed to `gauss`).
        MetacalAdmomBoot = "metacal-admom-boot",
        /// Max-likelihood followed by importance sampling.
        IsampNgmixBoot = "isamp-ngmix-boot",
        /// Deprecated k-space deconvolver.
        Deconv = "deconv",
        /// Deprecated metacal deconvolver.
        MetacalDeconv = "metacal-deconv",
        /// Deprecated metacal deconvolver (PSF based).
        MetacalDeconvPsfbase = "metacal-deconv-psfbase",
        /// GalSim forced photometry.
        GalsimForcephot = "galsim-forcephot",
    }
}

impl FitterType {
    /// Whether this is a metacal fitter (needs `metacal_pars`).
    pub fn is_metacal(self) -> bool {
        matches!(
            self,
            FitterType::MetacalNgmixBoot
                | FitterType::MetacalAdmomBoot
                | FitterType::MetacalDeconv
                | FitterType::MetacalDeconvPsfbase
        )
    }

    /// Whether the name contains `galsim` (DES IO then keeps images in flux units).
    pub fn is_galsim(self) -> bool {
        self.as_str().contains("galsim")
    }
}

name_enum! {
    /// ImageIO registry names (`imageio.io_type`).
    pub enum ImageIoType {
        /// Plain MEDS.
        Meds = "meds",
        /// DES SV.
        MedsDesSv = "meds-des-sv",
        /// DES SV with MOF WCS side files.
        MedsDesSvMof = "meds-des-sv-mof",
        /// DES Y1.
        MedsDesY1 = "meds-des-y1",
        /// DES Y3.
        MedsDesY3 = "meds-des-y3",
        /// Weighing the Giants.
        MedsWtg = "meds-wtg",
        /// HSC DR1.
        MedsHscDr1 = "meds-hsc-dr1",
        /// Simple simulations.
        MedsSimpSim = "meds-simp-sim",
    }
}

impl ImageIoType {
    /// The DES family (SV, Y1, Y3 and the classes derived from them: WTG, HSC).
    pub fn is_des(self) -> bool {
        !matches!(self, ImageIoType::Meds | ImageIoType::MedsSimpSim)
    }
}

name_enum! {
    /// Galaxy models that can appear in `model_pars` / `fit_models`.
    pub enum GalaxyModel {
        /// Gaussian.
        Gauss = "gauss",
        /// Exponential disk.
        Exp = "exp",
        /// De Vaucouleurs.
        Dev = "dev",
        /// Turbulent (Kolmogorov-like) profile.
        Turb = "turb",
        /// Composite exp + dev with `fracdev` and `TdByTe`.
        Cm = "cm",
    }
}

name_enum! {
    /// PSF models of `psf_pars.model`.
    pub enum PsfModel {
        /// EM with 1 Gaussian.
        Em1 = "em1",
        /// EM with 2 Gaussians.
        Em2 = "em2",
        /// EM with 3 Gaussians.
        Em3 = "em3",
        /// Co-elliptical 2 Gaussians (LM).
        Coellip2 = "coellip2",
        /// Co-elliptical 3 Gaussians (LM).
        Coellip3 = "coellip3",
        /// Single Gaussian (LM).
        Gauss = "gauss",
        /// Turbulent profile (LM).
        Turb = "turb",
        /// Adaptive moments (one Gaussian).
        Am = "am",
    }
}

impl PsfModel {
    /// Number of Gaussians of the fitted PSF mixture (`psf_fit_pars` has 6 per Gaussian).
    pub fn ngauss(self) -> usize {
        match self {
            PsfModel::Em1 | PsfModel::Gauss | PsfModel::Am => 1,
            PsfModel::Em2 | PsfModel::Coellip2 => 2,
            PsfModel::Em3 | PsfModel::Coellip3 | PsfModel::Turb => 3,
        }
    }

    /// Whether the model is fitted by expectation maximisation.
    pub fn is_em(self) -> bool {
        matches!(self, PsfModel::Em1 | PsfModel::Em2 | PsfModel::Em3)
    }
}

name_enum! {
    /// Weight map used for fitting (`region`).
    pub enum Region {
        /// Raw weight, uberseg kept separately (MOF).
        Mof = "mof",
        /// Uberseg weight.
        CweightNearest = "cweight-nearest",
        /// Uberseg weight (same as `cweight-nearest`).
        Uberseg = "uberseg",
        /// Weight zeroed where the coadd seg belongs to another object.
        SegAndSky = "seg_and_sky",
        /// Raw weight.
        Weight = "weight",
    }
}

name_enum! {
    /// How modelled neighbours are removed (`model_nbrs_method`).
    pub enum ModelNbrsMethod {
        /// `image = image_orig - Σ nbrs`.
        Subtract = "subtract",
        /// `image = image_orig · cen/(cen + Σ nbrs)`.
        Frac = "frac",
    }
}

name_enum! {
    /// Masking of neighbours that could not be modelled (`model_nrbs_unmodmask`, sic).
    pub enum UnmodeledNbrsMask {
        /// Mask the neighbour's pixels in the central's seg map.
        NbrsSeg = "nbrs-seg",
    }
}

name_enum! {
    /// Collation classes (`collate.concat_type`, run-config `concat_type`).
    pub enum ConcatType {
        /// Plain concatenation.
        Concat = "concat",
        /// DES: magnitudes, fluxes, blinding.
        ConcatDes = "concat-des",
        /// DES metacal.
        ConcatMetacalDes = "concat-metacal-des",
        /// DES admom metacal.
        ConcatMetacalAdmomDes = "concat-metacal-admom-des",
        /// Forced photometry.
        ConcatForcephot = "concat-forcephot",
    }
}

name_enum! {
    /// Metacal image types (`metacal_pars.types`).
    pub enum MetacalType {
        /// No shear.
        Noshear = "noshear",
        /// +g1.
        P1 = "1p",
        /// -g1.
        M1 = "1m",
        /// +g2.
        P2 = "2p",
        /// -g2.
        M2 = "2m",
        /// PSF sheared +g1.
        P1Psf = "1p_psf",
        /// PSF sheared -g1.
        M1Psf = "1m_psf",
        /// PSF sheared +g2.
        P2Psf = "2p_psf",
        /// PSF sheared -g2.
        M2Psf = "2m_psf",
    }
}

impl MetacalType {
    /// The default list (spec §4.3): noshear, 1p, 1m, 2p, 2m.
    pub const DEFAULT: [MetacalType; 5] = [
        MetacalType::Noshear,
        MetacalType::P1,
        MetacalType::M1,
        MetacalType::P2,
        MetacalType::M2,
    ];

    /// Output column suffix: `""` for noshear, else `_<type>`.
    pub fn suffix(self) -> String {
        match self {
            MetacalType::Noshear => String::new(),
            t => format!("_{}", t.as_str()),
        }
    }
}

name_enum! {
    /// Maximiser of `max_pars.method` (ngmixer only implements `lm`).
    pub enum MaxMethod {
        /// Levenberg–Marquardt.
        Lm = "lm",
    }
}

name_enum! {
    /// Neighbour buffer rule (`nbrs.buff_type`).
    pub enum BuffType {
        /// min(size_i, size_j).
        Min = "min",
        /// max(size_i, size_j).
        Max = "max",
        /// size_i + size_j.
        Tot = "tot",
    }
}

name_enum! {
    /// Blinding schemes (`collate.blinding.type`).
    pub enum BlindingType {
        /// DES Y3 blinding.
        Y3 = "y3",
    }
}

name_enum! {
    /// DES Y3 bad-pixel bit names (`DESY3_BADPIX_MAP`), used by `propagate_star_flags` and
    /// `extra_mask_flag_list`.
    pub enum DesBadPix {
        /// Hot/dead pixel or column.
        Bpm = "BPM",
        /// Saturated.
        Saturate = "SATURATE",
        /// Interpolated.
        Interp = "INTERP",
        /// Non-functional amplifier.
        Badamp = "BADAMP",
        /// Cosmic ray.
        Cray = "CRAY",
        /// Bright star.
        Star = "STAR",
        /// Bleed trail.
        Trail = "TRAIL",
        /// Edge bleed.
        Edgebleed = "EDGEBLEED",
        /// Super-saturated crosstalk.
        Ssxtalk = "SSXTALK",
        /// Glowing CCD edge.
        Edge = "EDGE",
        /// Streak (satellite, meteor).
        Streak = "STREAK",
        /// Suspect pixel.
        Suspect = "SUSPECT",
    }
}

impl DesBadPix {
    /// The bit value.
    pub fn bit(self) -> u32 {
        match self {
            DesBadPix::Bpm => 1,
            DesBadPix::Saturate => 2,
            DesBadPix::Interp => 4,
            DesBadPix::Badamp => 8,
            DesBadPix::Cray => 16,
            DesBadPix::Star => 32,
            DesBadPix::Trail => 64,
            DesBadPix::Edgebleed => 128,
            DesBadPix::Ssxtalk => 256,
            DesBadPix::Edge => 512,
            DesBadPix::Streak => 1024,
            DesBadPix::Suspect => 2048,
        }
    }

    /// The bits that the Y1 code (`_interpolate_maskbits`, `y1` tag) excluded from star-flag
    /// propagation: BPM, BADAMP, CRAY, EDGEBLEED, SSXTALK, EDGE, STREAK, SUSPECT
    /// (mask `2048+1024+512+256+128+16+8+1 = 3993`).
    pub const Y1_STAR_IGNORE: [DesBadPix; 8] = [
        DesBadPix::Bpm,
        DesBadPix::Badamp,
        DesBadPix::Cray,
        DesBadPix::Edgebleed,
        DesBadPix::Ssxtalk,
        DesBadPix::Edge,
        DesBadPix::Streak,
        DesBadPix::Suspect,
    ];

    /// Sum of the bits of `flags`.
    pub fn mask(flags: &[DesBadPix]) -> u32 {
        flags.iter().fold(0, |m, f| m | f.bit())
    }
}

/// HSC bad-pixel bit names accepted in `extra_mask_flag_list` for `meds-hsc-dr1`
/// (`DETECTED` and `DETECTED_NEGATIVE` must not be masked).
pub const HSC_BADPIX: &[(&str, u32)] = &[
    ("BAD", 1),
    ("SAT", 2),
    ("INTRP", 4),
    ("CR", 8),
    ("EDGE", 16),
    ("SUSPECT", 128),
    ("NO_DATA", 256),
    ("BRIGHT_OBJECT", 512),
    ("CLIPPED", 1024),
    ("CROSSTALK", 2048),
    ("NOT_DEBLENDED", 4096),
    ("UNMASKEDNAN", 8192),
];

/// `imageio.image_type`: `surface_brightness` or anything else (images in flux per pixel,
/// which DES IO divides by the pixel area for the ngmix fitters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageType {
    /// `surface_brightness`.
    SurfaceBrightness,
    /// Any other name (e.g. `flux`).
    Other(String),
}

impl ImageType {
    /// Whether the images are surface brightness.
    pub fn is_surface_brightness(&self) -> bool {
        matches!(self, ImageType::SurfaceBrightness)
    }
}

impl<'de> Deserialize<'de> for ImageType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "surface_brightness" {
            ImageType::SurfaceBrightness
        } else {
            ImageType::Other(s)
        })
    }
}
