//! MEDS cutout files (feature `des-y1`).
//!
//! A MEDS file holds, for every object of a coadd catalogue, square cutouts of the coadd and of
//! every single-epoch image that covers it (cutout 0 is the coadd). The layout read here is
//! that of the esheldon/meds package:
//!
//! * `object_data`: one row per object (`id`, `number`, `box_size`, `ncutout`, `ra`, `dec`, and
//!   per-cutout `file_id`, `start_row`, `orig_row/col`, `orig_start_row/col`,
//!   `cutout_row/col`, `dudrow`, `dudcol`, `dvdrow`, `dvdcol`, optional `psf_*`);
//! * `image_info`: one row per source image; `metadata`: free-form, one row;
//! * `image_cutouts`, `weight_cutouts`, `seg_cutouts`, `bmask_cutouts`, `noise_cutouts`
//!   (`ormask_cutouts`): one-dimensional images holding all cutouts back to back, the cutout
//!   `(iobj, icut)` being the `box_size²` pixels from `start_row[iobj, icut]`, row-major;
//! * `psf`: one-dimensional image of PSF stamps, from `psf_start_row`, of
//!   `psf_row_size x psf_col_size` (or `psf_box_size²`) pixels.
//!
//! [`MedsFile`] decodes the three tables once (shared by [`MedsFile::reopen`]ed handles) and
//! reads cutouts by section into caller-owned buffers. cfitsio handles must not be shared
//! between threads: give every worker its own [`MedsFile::reopen`]. The type is `Send + Sync`
//! (the handle sits behind a mutex), so `rayon`'s `map_init(|| meds.reopen(), ..)` works.

mod columns;
mod fast3tree;
#[cfg(feature = "des-y1")]
mod file;
#[cfg(feature = "des-y1")]
mod fits;
mod outliers;
mod seg;

pub use columns::{
    check_nrows, ColKind, Column, ColumnData, ColumnError, Columns, ImageInfo, ObjectData,
    PerCutout,
};
pub use outliers::{reject_outliers, reject_outliers_with, OUTLIER_A, OUTLIER_NSIGMA};
#[doc(hidden)]
pub use seg::uberseg_in_place_tree;
pub use seg::{
    central_segid, coadd_index_map, composite_weight, inverse_2x2, uberseg_in_place, CutoutFrame,
};

#[cfg(feature = "des-y1")]
pub use file::{read_table, read_table_num, MedsFile, MAX_CUTOUT_PIXELS};
#[cfg(feature = "des-y1")]
pub(crate) use fits::FitsHandle;

/// Extension name of the object table.
pub const OBJECT_DATA: &str = "object_data";
/// Extension name of the image table.
pub const IMAGE_INFO: &str = "image_info";
/// Extension name of the metadata table.
pub const METADATA: &str = "metadata";
/// Extension name of the PSF stamps.
pub const PSF: &str = "psf";

/// Which cutout HDU to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutoutKind {
    /// `image_cutouts` (required).
    Image,
    /// `weight_cutouts`.
    Weight,
    /// `seg_cutouts`.
    Seg,
    /// `bmask_cutouts`.
    Bmask,
    /// `noise_cutouts`.
    Noise,
    /// `ormask_cutouts`.
    Ormask,
}

impl CutoutKind {
    /// All kinds.
    pub const ALL: [CutoutKind; 6] = [
        Self::Image,
        Self::Weight,
        Self::Seg,
        Self::Bmask,
        Self::Noise,
        Self::Ormask,
    ];

    /// The HDU name, e.g. `"seg_cutouts"`.
    pub fn extname(self) -> &'static str {
        match self {
            Self::Image => "image_cutouts",
            Self::Weight => "weight_cutouts",
            Self::Seg => "seg_cutouts",
            Self::Bmask => "bmask_cutouts",
            Self::Noise => "noise_cutouts",
            Self::Ormask => "ormask_cutouts",
        }
    }

    #[cfg_attr(not(feature = "des-y1"), allow(dead_code))]
    fn index(self) -> usize {
        self as usize
    }
}

/// Everything the table columns say about one cutout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutoutInfo {
    /// Index into `image_info`.
    pub file_id: i64,
    /// First pixel in the cutout HDUs.
    pub start_row: i64,
    /// Object row in the source image.
    pub orig_row: f64,
    /// Object column in the source image.
    pub orig_col: f64,
    /// Cutout origin row in the source image.
    pub orig_start_row: i64,
    /// Cutout origin column in the source image.
    pub orig_start_col: i64,
    /// Object row in the cutout.
    pub cutout_row: f64,
    /// Object column in the cutout.
    pub cutout_col: f64,
    /// du/drow.
    pub dudrow: f64,
    /// du/dcol.
    pub dudcol: f64,
    /// dv/drow.
    pub dvdrow: f64,
    /// dv/dcol.
    pub dvdcol: f64,
}
