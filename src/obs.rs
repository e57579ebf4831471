//! Observations: image, weight, Jacobian, PSF; per-band epoch lists and multi-band sets.
//!
//! This mirrors ngmix's `Observation`, `ObsList` and `MultiBandObsList`. Images are
//! [`ndarray::Array2<f64>`] indexed `[row, col]`.
//!
//! Bad pixels: a pixel whose image value or weight is not finite, or whose weight is negative,
//! is given weight 0 when the observation is built ([`Observation::new`] reports how many), so a
//! NaN can never reach a likelihood. An observation with no pixel of positive weight is rejected
//! with [`GMixError::Fatal`] (ngmix's `GMixFatalError('no weights > 0')`); the image readers turn
//! that into the `IMAGE_FLAGS` placeholder of ngmixer.

use ndarray::Array2;

use crate::error::{GMixError, GResult};
use crate::gmix::{GMix, Jacobian};

/// Per-epoch bookkeeping carried from the image source to the output (`epoch_data`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochMeta {
    /// Object id (MEDS `id`).
    pub id: i64,
    /// Object number (MEDS `number`).
    pub number: i32,
    /// Band index.
    pub band_num: i16,
    /// Cutout index (0 = coadd).
    pub cutout_index: i32,
    /// Object position in the original image.
    pub orig_row: f64,
    /// Object position in the original image.
    pub orig_col: f64,
    /// Start of the cutout in the original image.
    pub orig_start_row: i64,
    /// Start of the cutout in the original image.
    pub orig_start_col: i64,
    /// MEDS `file_id` of the cutout.
    pub file_id: i32,
}

/// PSF-specific meta data (ngmixer's `Tguess`, `sigma_sky`, `psf_norm`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsfMeta {
    /// Guess of the PSF T in sky units (`sigma_sky²`).
    pub tguess: f64,
    /// PSF sigma in sky units.
    pub sigma_sky: f64,
    /// Sum of the PSF image.
    pub psf_norm: f64,
}

/// Outcome of a PSF fit, kept on the PSF observation for the epoch records.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsfFitInfo {
    /// Fitter flags (0 = ok).
    pub flags: i32,
    /// Flux S/N of the fit, when the fitter measures it (not EM).
    pub s2n: Option<f64>,
}

/// An image with its weight map, Jacobian and optional fitted mixture.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Pixel values (row-major standard layout, see [`Observation::image`]).
    pub(crate) image: Array2<f64>,
    /// Inverse variance per pixel; `<= 0` means unused.
    pub(crate) weight: Array2<f64>,
    /// Pixel → sky map, centred on the object.
    pub jacobian: Jacobian,
    /// The PSF observation, when this is a galaxy observation.
    pub psf: Option<Box<Observation>>,
    /// A fitted mixture (for a PSF observation: the fitted PSF model).
    pub gmix: Option<GMix>,
    /// Optional noise image.
    pub noise: Option<Array2<f64>>,
    /// Optional bit mask.
    pub bmask: Option<Array2<i32>>,
    /// Optional segmentation map.
    pub seg: Option<Array2<i32>>,
    /// The raw weight (before uberseg), when the source keeps it.
    pub weight_raw: Option<Array2<f64>>,
    /// The uberseg weight, when the source keeps it (region `mof`).
    pub weight_us: Option<Array2<f64>>,
    /// Epoch meta data.
    pub meta: EpochMeta,
    /// PSF meta data (PSF observations).
    pub psf_meta: PsfMeta,
    /// 0 = usable; otherwise the reason it is a placeholder (e.g. `IMAGE_FLAGS`).
    pub flags: i32,
    /// For a PSF observation: the outcome of its fit.
    pub fit_info: Option<PsfFitInfo>,
    npix: usize,
}

impl Observation {
    /// Build and validate: shapes must match; non-finite pixels or weights and negative weights
    /// get weight 0; at least one pixel must have positive weight.
    pub fn new(
        mut image: Array2<f64>,
        mut weight: Array2<f64>,
        jacobian: Jacobian,
    ) -> GResult<Self> {
        let npix = sanitize_weight(&mut image, &mut weight)?;
        Ok(Self {
            image,
            weight,
            jacobian,
            psf: None,
            gmix: None,
            noise: None,
            bmask: None,
            seg: None,
            weight_raw: None,
            weight_us: None,
            meta: EpochMeta::default(),
            psf_meta: PsfMeta::default(),
            flags: 0,
            fit_info: None,
            npix,
        })
    }

    /// A flagged placeholder (ngmixer: a 10×10 zero image with `flags` set); never fitted.
    pub fn placeholder(flags: i32, meta: EpochMeta) -> Self {
        Self {
            image: Array2::zeros((10, 10)),
            weight: Array2::zeros((10, 10)),
            jacobian: Jacobian::unit(4.5, 4.5),
            psf: None,
            gmix: None,
            noise: None,
            bmask: None,
            seg: None,
            weight_raw: None,
            weight_us: None,
            meta,
            psf_meta: PsfMeta::default(),
            flags,
            fit_info: None,
            npix: 0,
        }
    }

    /// An observation whose weight is 1 everywhere (e.g. a PSF stamp).
    pub fn with_unit_weight(image: Array2<f64>, jacobian: Jacobian) -> GResult<Self> {
        let w = Array2::from_elem(image.dim(), 1.0);
        Self::new(image, w, jacobian)
    }

    /// Replace the weight map (re-validated as in [`Observation::new`]).
    pub fn set_weight(&mut self, mut weight: Array2<f64>) -> GResult<()> {
        let npix = sanitize_weight(&mut self.image, &mut weight)?;
        self.weight = weight;
        self.npix = npix;
        Ok(())
    }

    /// The pixel values, `[row, col]`.
    #[inline]
    pub fn image(&self) -> &Array2<f64> {
        &self.image
    }

    /// The weight map (inverse variance; 0 = unused).
    #[inline]
    pub fn weight(&self) -> &Array2<f64> {
        &self.weight
    }

    /// Replace the image (non-finite values are zeroed in the weight).
    pub fn set_image(&mut self, image: Array2<f64>) -> GResult<()> {
        if image.dim() != self.weight.dim() {
            return Err(GMixError::Fatal("image and weight shapes differ"));
        }
        self.image = image;
        let w = std::mem::take(&mut self.weight);
        self.set_weight(w)
    }

    /// Attach a PSF observation.
    pub fn with_psf(mut self, psf: Observation) -> Self {
        self.psf = Some(Box::new(psf));
        self
    }

    /// `(nrow, ncol)`.
    #[inline]
    pub fn dims(&self) -> (usize, usize) {
        self.image.dim()
    }

    /// Number of pixels with positive weight.
    #[inline]
    pub fn npix(&self) -> usize {
        self.npix
    }

    /// Row-major image slice.
    #[inline]
    pub fn image_slice(&self) -> &[f64] {
        // standard layout is established by every constructor and setter
        self.image.as_slice().unwrap_or(&[])
    }

    /// Row-major weight slice.
    #[inline]
    pub fn weight_slice(&self) -> &[f64] {
        self.weight.as_slice().unwrap_or(&[])
    }

    /// The fitted PSF mixture, if the PSF was fitted.
    pub fn psf_gmix(&self) -> Option<&GMix> {
        self.psf.as_ref().and_then(|p| p.gmix.as_ref())
    }

    /// Sum and maximum of the weight map.
    pub fn weight_stats(&self) -> (f64, f64) {
        let mut s = 0.0;
        let mut m = 0.0f64;
        for &w in self.weight.iter() {
            s += w;
            m = m.max(w);
        }
        (s, m)
    }
}

/// The epochs of one band.
pub type ObsList = Vec<Observation>;

/// All bands of one object: `bands[b]` is the list of epochs of band `b`.
#[derive(Debug, Clone, Default)]
pub struct MultiBandObs {
    /// Per-band epoch lists (a band may be empty).
    pub bands: Vec<ObsList>,
}

impl MultiBandObs {
    /// From per-band lists.
    pub fn new(bands: Vec<ObsList>) -> Self {
        Self { bands }
    }

    /// Number of bands.
    pub fn nband(&self) -> usize {
        self.bands.len()
    }

    /// All observations, band by band.
    pub fn iter(&self) -> impl Iterator<Item = &Observation> {
        self.bands.iter().flatten()
    }

    /// Total number of used pixels.
    pub fn npix(&self) -> usize {
        self.iter().map(|o| o.npix()).sum()
    }

    /// A copy keeping only observations with `flags == 0` (bands kept even when empty).
    pub fn usable(&self) -> Self {
        Self {
            bands: self
                .bands
                .iter()
                .map(|l| l.iter().filter(|o| o.flags == 0).cloned().collect())
                .collect(),
        }
    }
}

/// Zero the weight of pixels whose image or weight is non-finite or whose weight is not
/// positive, and the image value of non-finite pixels (so that sums of `w·f(image)` over all
/// pixels stay finite); returns the number of usable pixels (an error if the shapes differ or
/// none is).
fn sanitize_weight(image: &mut Array2<f64>, weight: &mut Array2<f64>) -> GResult<usize> {
    if image.dim() != weight.dim() {
        return Err(GMixError::Fatal("image and weight shapes differ"));
    }
    // any layout is accepted (transposed, sliced views made owned, Fortran order): the kernels
    // walk rows, so the pixels are stored row-major
    standard_layout(image);
    standard_layout(weight);
    let mut npix = 0;
    for (w, im) in weight.iter_mut().zip(image.iter_mut()) {
        if !im.is_finite() {
            *im = 0.0;
            *w = 0.0;
        } else if w.is_finite() && *w > 0.0 {
            npix += 1;
        } else {
            *w = 0.0;
        }
    }
    if npix == 0 {
        return Err(GMixError::Fatal("no weights > 0"));
    }
    Ok(npix)
}

fn standard_layout(a: &mut Array2<f64>) {
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
}

/// Per-object inputs besides the observations.
#[derive(Debug, Clone, Default)]
pub struct ObjectMeta {
    /// MEDS `id`.
    pub id: i64,
    /// MEDS `number`.
    pub number: i64,
    /// Right ascension.
    pub ra: f64,
    /// Declination.
    pub dec: f64,
    /// SE cutouts produced per band.
    pub nimage_tot: Vec<i32>,
    /// FoF id (DEFVAL without a FoF file).
    pub fofid: i64,
    /// Object flags (0 = fit).
    pub obj_flags: i32,
    /// Per band: single-epoch cutouts the source could not use at all (unreadable Jacobian,
    /// empty PSF, ...), besides the flagged placeholders it keeps.
    pub dropped_epochs: Vec<u32>,
}

/// One object: coadd (`icut = 0`) and single-epoch observations per band, flagged
/// placeholders included.
#[derive(Debug, Clone, Default)]
pub struct ObjectObs {
    /// Meta data.
    pub meta: ObjectMeta,
    /// Coadd observations per band.
    pub coadd: MultiBandObs,
    /// Single-epoch observations per band.
    pub se: MultiBandObs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_array_layout_is_accepted() {
        let im = Array2::from_shape_fn((3, 5), |(r, c)| (10 * r + c) as f64);
        use ndarray::ShapeBuilder;
        // Fortran-order image and weight with the same logical values
        let t = Array2::from_shape_fn((3, 5).f(), |(r, c)| (10 * r + c) as f64);
        let w = Array2::from_elem((3, 5).f(), 2.0);
        assert!(!t.is_standard_layout() && t == im);
        let o = Observation::new(t, w, Jacobian::unit(1.0, 2.0)).unwrap();
        assert_eq!(o.image(), &im);
        assert_eq!(o.image_slice(), im.as_slice().unwrap());
        assert_eq!(o.weight_slice(), &[2.0; 15]);
        assert_eq!(o.npix(), 15);
    }

    #[test]
    fn non_finite_pixels_are_zeroed_and_unused() {
        let mut image = Array2::from_elem((3, 3), 1.0);
        image[[0, 0]] = f64::NAN;
        image[[1, 2]] = f64::INFINITY;
        let mut weight = Array2::from_elem((3, 3), 2.0);
        weight[[2, 2]] = f64::NAN;
        weight[[2, 1]] = -1.0;
        let obs = Observation::new(image, weight, Jacobian::unit(1.0, 1.0)).expect("valid");
        assert_eq!(obs.npix, 5);
        // every w·image product is finite, and bad pixels carry no weight
        assert!(obs.image.iter().all(|v| v.is_finite()));
        assert_eq!(obs.image[[0, 0]], 0.0);
        for idx in [[0, 0], [1, 2], [2, 2], [2, 1]] {
            assert_eq!(obs.weight[idx], 0.0, "{idx:?}");
        }
        let sum: f64 = obs
            .image
            .iter()
            .zip(obs.weight.iter())
            .map(|(i, w)| i * w)
            .sum();
        assert_eq!(sum, 10.0);
        let none = Observation::new(
            Array2::from_elem((2, 2), f64::NAN),
            Array2::from_elem((2, 2), 1.0),
            Jacobian::unit(0.5, 0.5),
        );
        assert!(none.is_err());
    }
}
