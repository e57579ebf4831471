//! DES ImageIO features (ngmixer `desmedsio.py`, spec §3.3, §3.5, §3.6) and the Y1 keys of the
//! base class that HEAD dropped: image flags, PSFEx PSFs from psf maps, pixel-area
//! (surface-brightness) scaling, `trim_image`/`trim_psf`, `center_psf`, `max_bmask_frac` and
//! `symmetrize_bmask`.
//!
//! [`DesSettings::from_config`] maps the fitting config; every key it cannot honour is an error
//! that names the key (never silently ignored).

use std::path::{Path, PathBuf};

use ndarray::{s, Array2};

use crate::backends::meds::MedsFile;
use crate::backends::psfex::PsfEx;
use crate::config::{FittingConfig, MaxFrac, PsfsConfig};
use crate::error::{Error, Result};
use crate::obs::Observation;

use super::psfmap::{expand_vars, PsfMap};

/// DES image-flag bit: the image flags intersect `image_flags2check`.
pub const IMAGE_FLAGS_SET: i64 = 1;
/// DES image-flag bit: PSF in a blacklist.
pub const PSF_IN_BLACKLIST: i64 = 2;
/// DES image-flag bit: PSF S/N missing.
pub const PSF_MISSING_S2N: i64 = 4;
/// DES image-flag bit: PSF S/N too low.
pub const PSF_LOW_S2N: i64 = 8;
/// DES image-flag bit: PSF file unreadable.
pub const PSF_FILE_READ_ERROR: i64 = 16;

/// Where PSF images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsfKind {
    /// Stamps in the MEDS `psf` HDU.
    Infile,
    /// PSFEx models, one per `image_info` entry.
    Psfex {
        /// Y1 rule: the `.psf` file is the image path with `.fits.fz` → `_psfcat.psf` (and the
        /// MEDS `DESDATA` prefix replaced by `$DESDATA`); otherwise a psf map gives the path.
        from_image: bool,
    },
}

/// Pixel-area scaling applied to usable observations of DES IO classes (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelScaling {
    /// Leave images as read (plain MEDS IO).
    None,
    /// `image /= s²`, weights `*= s⁴` (flux images for the ngmix fitters).
    ToSurfaceBrightness,
    /// `image *= s²`, weights `/= s⁴` (surface-brightness images for GalSim fitters).
    ToFlux,
}

/// Settings beyond [`super::IoSettings`]: the DES IO classes and the Y1 base-class keys.
///
/// The default reproduces the plain `meds` IO class (no image flags, PSFs from the MEDS file,
/// no scaling, no trimming).
#[derive(Debug, Clone, PartialEq)]
pub struct DesSettings {
    /// DES IO class: image flags come from `image_info.image_flags`.
    pub des_io: bool,
    /// `image_flags2check`.
    pub image_flags2check: i64,
    /// `fit_coadd_galaxy` (with PSFEx PSFs the coadd is flagged when false).
    pub fit_coadd_galaxy: bool,
    /// `replacement_flags`: JSON `{"<expid>-<ccd>": flags}` replacing SE image flags.
    pub replacement_flags: Option<PathBuf>,
    /// Pixel-area scaling.
    pub scaling: PixelScaling,
    /// PSF source.
    pub psfs: PsfKind,
    /// `center_psf`: evaluate PSFEx at the rounded position.
    pub center_psf: bool,
    /// `trim_image.dims` `[nrow, ncol]`.
    pub trim_image: Option<[usize; 2]>,
    /// `trim_psf.dims` `[nrow, ncol]` (single-epoch PSFs only).
    pub trim_psf: Option<[usize; 2]>,
    /// Y1 `max_bmask_frac`: skip a cutout whose fraction of non-zero bmask pixels exceeds it.
    pub max_bmask_frac: Option<MaxFrac>,
    /// Y1 `symmetrize_bmask`: OR the bmask with its 90° rotation first.
    pub symmetrize_bmask: bool,
    /// `propagate_star_flags` (Y1 `prop_sat_starpix`): `Some(ignore_when_set mask)` to
    /// propagate saturated bright-star pixels to all bands and epochs (§3.7).
    pub propagate_star_flags: Option<i32>,
    /// `flag_y1_stellarhalo_masked`: object flag 1 when its seg touches STAR-masked pixels.
    pub flag_stellar_halo: bool,
}

impl Default for DesSettings {
    fn default() -> Self {
        Self {
            des_io: false,
            image_flags2check: 0,
            fit_coadd_galaxy: true,
            replacement_flags: None,
            scaling: PixelScaling::None,
            psfs: PsfKind::Infile,
            center_psf: false,
            trim_image: None,
            trim_psf: None,
            max_bmask_frac: None,
            symmetrize_bmask: false,
            propagate_star_flags: None,
            flag_stellar_halo: false,
        }
    }
}

fn cfg_err(cfg: &FittingConfig, msg: impl Into<String>) -> Error {
    Error::Config {
        file: cfg
            .source
            .clone()
            .unwrap_or_else(|| "<fitting config>".into()),
        msg: msg.into(),
    }
}

impl DesSettings {
    /// Map the fitting config. Keys this port does not implement are rejected with an error
    /// naming them: `imageio.psfs.type: piff`, `imageio.astrom`, `tilings`, `use_psf_rerun`,
    /// `psf_s2n_checks`, `read_wcs`/`read_me_wcs` (true), `psfex` PSFs, `trim_psf`,
    /// `image_flags2check` or `replacement_flags` with a non-DES `io_type`.
    ///
    /// `imageio.image_type` is required for DES IO types (as in ngmixer).
    ///
    /// # Errors
    /// [`Error::Config`] naming the key.
    pub fn from_config(cfg: &FittingConfig) -> Result<Self> {
        let io = &cfg.imageio;
        let des_io = io.io_type.is_des();
        let io_name = io.io_type.as_str();
        let mut d = DesSettings {
            des_io,
            fit_coadd_galaxy: cfg.fit_coadd_galaxy,
            center_psf: cfg.center_psf,
            ..Default::default()
        };
        let reject = |key: &str, why: &str| cfg_err(cfg, format!("key `{key}`: {why}"));
        d.psfs = match &io.psfs {
            PsfsConfig::Infile { .. } => PsfKind::Infile,
            PsfsConfig::Psfex {
                path_from_image, ..
            } => {
                if !des_io {
                    return Err(reject(
                        "imageio.psfs.type",
                        &format!(
                            "psfex PSFs need a DES io_type (meds-des-y1, meds-des-y3, ...), \
                             not '{io_name}' (ngmixer: NotImplementedError)"
                        ),
                    ));
                }
                PsfKind::Psfex {
                    from_image: *path_from_image,
                }
            }
            PsfsConfig::Piff { .. } => {
                return Err(reject(
                    "imageio.psfs.type",
                    "piff PSFs are not supported by this port (use psfex or infile)",
                ))
            }
        };
        if io.astrom.is_some() {
            return Err(reject(
                "imageio.astrom",
                "pixmappy astrometry is not supported by this port",
            ));
        }
        if cfg.tilings.is_some() {
            return Err(reject(
                "tilings",
                "not supported (needs the `tiling` keyword of every source image header)",
            ));
        }
        if cfg.use_psf_rerun || cfg.psf_rerun_version.is_some() {
            return Err(reject(
                "use_psf_rerun",
                "PSFEx reruns are not supported (ngmixer HEAD: \"old blacklist not supported\")",
            ));
        }
        if cfg.psf_s2n_checks.is_some() {
            return Err(reject(
                "psf_s2n_checks",
                "the PSFEx S/N blacklist is only consulted for PSFEx reruns, which are not \
                 supported",
            ));
        }
        if cfg.read_wcs || cfg.read_me_wcs {
            return Err(reject(
                if cfg.read_wcs {
                    "read_wcs"
                } else {
                    "read_me_wcs"
                },
                "WCS files are only used for off-chip MOF neighbours, not supported",
            ));
        }
        if cfg.propagate_star_flags.propagate {
            d.propagate_star_flags = Some(cfg.propagate_star_flags.ignore_mask() as i32);
        }
        d.flag_stellar_halo = cfg.flag_y1_stellarhalo_masked;
        if des_io {
            d.image_flags2check = i64::try_from(cfg.image_flags2check)
                .map_err(|_| reject("image_flags2check", "does not fit in 64-bit signed"))?;
            d.replacement_flags = cfg
                .replacement_flags
                .as_ref()
                .map(|p| PathBuf::from(expand_vars(p)));
            let Some(it) = &io.image_type else {
                return Err(reject(
                    "imageio.image_type",
                    &format!("required for io_type '{io_name}' (surface_brightness or flux)"),
                ));
            };
            let sb = it.is_surface_brightness();
            let galsim = cfg.fitter_type.is_galsim();
            d.scaling = match (sb, galsim) {
                (true, true) => PixelScaling::ToFlux,
                (false, false) => PixelScaling::ToSurfaceBrightness,
                _ => PixelScaling::None,
            };
        } else {
            if cfg.image_flags2check != 0 {
                return Err(reject(
                    "image_flags2check",
                    &format!(
                        "only DES io types read image flags; io_type '{io_name}' would ignore it"
                    ),
                ));
            }
            if cfg.replacement_flags.is_some() {
                return Err(reject(
                    "replacement_flags",
                    &format!("only DES io types read image flags, not '{io_name}'"),
                ));
            }
        }
        if let Some(t) = cfg.trim_image {
            d.trim_image = Some(dims(&reject, "trim_image.dims", t.dims)?);
        }
        if let Some(t) = cfg.trim_psf {
            if !des_io {
                return Err(reject(
                    "trim_psf",
                    &format!("only DES io types trim PSFs, not '{io_name}'"),
                ));
            }
            d.trim_psf = Some(dims(&reject, "trim_psf.dims", t.dims)?);
        }
        d.max_bmask_frac = cfg.max_bmask_frac;
        if let Some(MaxFrac::Value(v)) = d.max_bmask_frac {
            if v.is_nan() {
                return Err(reject("max_bmask_frac", "is NaN"));
            }
        }
        d.symmetrize_bmask = cfg.symmetrize_bmask.unwrap_or(false);
        Ok(d)
    }
}

fn dims(reject: &dyn Fn(&str, &str) -> Error, key: &str, d: [u32; 2]) -> Result<[usize; 2]> {
    if d[0] == 0 || d[1] == 0 {
        return Err(reject(key, "dimensions must be positive"));
    }
    Ok([d[0] as usize, d[1] as usize])
}

/// `CombinedImageFlags.get_key`: `<int(field 1)>-<int(field 2 before '.') as 2 digits>` of the
/// `_`-split base name (SV names like `DECam_00233601_03.fits.fz` → `233601-03`).
pub fn replacement_key(image_path: &str) -> Option<String> {
    let bname = image_path.trim().rsplit('/').next()?;
    let bs: Vec<&str> = bname.split('_').collect();
    let expid: i64 = bs.get(1)?.trim().parse().ok()?;
    let ccd: i64 = bs.get(2)?.split('.').next()?.trim().parse().ok()?;
    Some(format!("{expid}-{ccd:02}"))
}

/// Read a replacement-flags JSON file (`{"<expid>-<ccd>": flags}`).
///
/// # Errors
/// [`Error::Io`] / [`Error::Invalid`] naming the file and the offending entry.
pub fn read_replacement_flags(path: &Path) -> Result<std::collections::HashMap<String, i64>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "replacement_flags {}: not valid JSON: {e}",
            path.display()
        ))
    })?;
    let obj = v.as_object().ok_or_else(|| {
        Error::Invalid(format!(
            "replacement_flags {}: expected a JSON object {{\"<expid>-<ccd>\": flags}}",
            path.display()
        ))
    })?;
    let mut out = std::collections::HashMap::with_capacity(obj.len());
    for (k, val) in obj {
        let f = val
            .as_i64()
            .or_else(|| val.as_f64().filter(|x| x.fract() == 0.0).map(|x| x as i64))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "replacement_flags {}: entry \"{k}\" is not an integer: {val}",
                    path.display()
                ))
            })?;
        out.insert(k.clone(), f);
    }
    Ok(out)
}

/// The image flags of one band, as ngmixer's DES `_load_meds_files` leaves them: the coadd
/// entry (0) raw, SE entries replaced (optionally) and reduced to 0 or [`IMAGE_FLAGS_SET`].
///
/// # Errors
/// A missing or wrongly typed `image_flags` column, or an unreadable replacement file.
pub fn band_image_flags(
    f: &MedsFile,
    s: &DesSettings,
    replacement: Option<&std::collections::HashMap<String, i64>>,
) -> Result<Vec<i64>> {
    let ii = f.image_info();
    let mut flags = match &ii.image_flags {
        Some(v) => v.clone(),
        None => {
            return Err(Error::Fits {
                path: f.path().to_path_buf(),
                hdu: Some("image_info".into()),
                msg: "column 'image_flags' is missing (DES io types read the image flags)".into(),
            })
        }
    };
    if flags.len() > 1 {
        if let Some(rep) = replacement {
            for (i, fl) in flags.iter_mut().enumerate().skip(1) {
                let path = &ii.image_path[i];
                // ngmixer raises on a name it cannot parse; an unknown key takes the default
                let key = replacement_key(path).ok_or_else(|| Error::Fits {
                    path: f.path().to_path_buf(),
                    hdu: Some("image_info".into()),
                    msg: format!(
                        "replacement_flags: cannot derive '<expid>-<ccd>' from image_path[{i}] \
                         '{path}'"
                    ),
                })?;
                *fl = rep.get(&key).copied().unwrap_or(s.image_flags2check);
            }
        }
        for fl in flags.iter_mut().skip(1) {
            *fl = if *fl & s.image_flags2check != 0 {
                IMAGE_FLAGS_SET
            } else {
                0
            };
        }
    }
    Ok(flags)
}

/// Load the PSFEx models of one band (ngmixer `_get_psf_objects`): entry `i` is loaded unless
/// its image flags already disqualify it; the coadd (0) is flagged with bit 1 and not loaded
/// when the coadd is not fitted. `flags` is updated in place.
///
/// # Errors
/// A missing psf map entry, a missing or unreadable `.psf` file (named with the map line it came
/// from), or an unset `$DESDATA` for the Y1 path rule. ngmixer aborts the job in these cases
/// (`MissingDataError`).
pub fn load_band_psfex(
    f: &MedsFile,
    band: usize,
    s: &DesSettings,
    map: Option<&PsfMap>,
    flags: &mut [i64],
) -> Result<Vec<Option<std::sync::Arc<PsfEx>>>> {
    let ii = f.image_info();
    let from_image = matches!(s.psfs, PsfKind::Psfex { from_image: true });
    let mut out = Vec::with_capacity(ii.len());
    for i in 0..ii.len() {
        if i == 0 && !s.fit_coadd_galaxy {
            if let Some(fl) = flags.get_mut(0) {
                *fl |= 1;
            }
            out.push(None);
            continue;
        }
        // ngmixer skips entries with `flags & image_flags2check != 0`; SE flags are already
        // reduced to 0/1 there, so with bit 0 unset in image_flags2check it loads (and may fail
        // on) PSFs of images it will never use. Here no disqualified image's PSF is loaded.
        let fl = flags.get(i).copied().unwrap_or(0);
        if fl != 0 {
            out.push(None);
            continue;
        }
        let impath = ii.image_path[i].trim();
        let (path, origin) = if from_image {
            (y1_psf_path(f, impath)?, String::from("Y1 rule: image path"))
        } else {
            let map = map.ok_or_else(|| {
                Error::Invalid(
                    "imageio.psfs.type psfex needs psf map files (--psf-map), one per band".into(),
                )
            })?;
            if i == 0 {
                let e = map.coadd(band).ok_or_else(|| {
                    Error::Invalid(format!(
                        "psf map {} (band {band}) has no coadd entry '-9999 <ccd> <path>', \
                         needed because fit_coadd_galaxy is true",
                        map.files()
                            .get(band)
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "<none>".into())
                    ))
                })?;
                (PathBuf::from(expand_vars(&e.path)), e.origin.to_string())
            } else {
                let (p, e) = map.se_path_for_image(impath).map_err(|e| {
                    let msg = match e {
                        Error::Invalid(m) => m,
                        other => other.to_string(),
                    };
                    Error::Invalid(format!(
                        "{} image_info[{i}] (band {band}): {msg}",
                        f.path().display()
                    ))
                })?;
                (p, e.origin.to_string())
            }
        };
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "missing psfex file {} for image '{impath}' (band {band}, image_info[{i}]; from \
                 {origin})",
                path.display()
            )));
        }
        let psf = PsfEx::open(&path).map_err(|e| {
            Error::Invalid(format!(
                "problem with psfex file {} for image '{impath}' (band {band}, image_info[{i}]; \
                 from {origin}): {e}",
                path.display()
            ))
        })?;
        out.push(Some(std::sync::Arc::new(psf)));
    }
    Ok(out)
}

/// Y1 PSFEx path: `.fits.fz` → `_psfcat.psf`; unless the path already contains the local
/// `$DESDATA`, the MEDS `DESDATA` (metadata column) prefix is replaced by it.
fn y1_psf_path(f: &MedsFile, image_path: &str) -> Result<PathBuf> {
    let mut p = image_path.replace(".fits.fz", "_psfcat.psf");
    let desdata = std::env::var("DESDATA").map_err(|_| {
        Error::Invalid(
            "the Y1 PSFEx path rule (imageio.psfs.path_from_image) needs $DESDATA".into(),
        )
    })?;
    if !p.contains(&desdata) {
        let meds_desdata = f
            .metadata()
            .get("DESDATA")
            .and_then(|c| c.as_str())
            .and_then(|v| v.first())
            .map(|s| s.trim().to_string())
            .ok_or_else(|| Error::Fits {
                path: f.path().to_path_buf(),
                hdu: Some("metadata".into()),
                msg: if f.metadata().nrows() == 0 && f.metadata().contains("DESDATA") {
                    "the table has no rows, so no 'DESDATA' value (needed by the Y1 PSFEx path \
                     rule)"
                        .into()
                } else {
                    "string column 'DESDATA' is missing (needed by the Y1 PSFEx path rule)".into()
                },
            })?;
        if !meds_desdata.is_empty() {
            p = p.replace(&meds_desdata, &desdata);
        }
    }
    Ok(PathBuf::from(p))
}

/// `rot90` of numpy (counter-clockwise) of a square array.
pub(crate) fn rot90<T: Copy>(a: &Array2<T>) -> Array2<T> {
    let n = a.nrows();
    Array2::from_shape_fn((n, n), |(i, j)| a[[j, n - 1 - i]])
}

/// Python `int()` of a float (truncation toward zero), as i64.
fn trunc(x: f64) -> i64 {
    if x.is_finite() {
        x.trunc() as i64
    } else {
        0
    }
}

/// `_get_trimmed_startstop`: `start = int(cen - new/2 + 0.5)` clipped at 0,
/// `end = int(cen + new/2 + 0.5)` clipped at `dim - 1` (sic: the last pixel is never kept).
pub fn trimmed_startstop(dim: usize, cen: f64, new_dim: usize) -> (usize, usize) {
    let mut start = trunc(cen - new_dim as f64 / 2.0 + 0.5);
    let mut end = trunc(cen + new_dim as f64 / 2.0 + 0.5);
    if start < 0 {
        start = 0;
    }
    if end > dim as i64 - 1 {
        end = dim as i64 - 1;
    }
    let start = (start.max(0) as usize).min(dim);
    let end = (end.max(0) as usize).min(dim);
    (start, end.max(start))
}

/// `trim_image`: cut image, weights, bmask, seg and noise to `dims` about the jacobian centre
/// and move the centre (ngmixer trims image and weights only). `None` when nothing is left.
pub fn trim_obs(mut obs: Observation, dims: [usize; 2]) -> Option<Observation> {
    let (nr, nc) = obs.dims();
    let (r0c, c0c) = obs.jacobian.cen();
    let (r0, r1) = trimmed_startstop(nr, r0c, dims[0]);
    let (c0, c1) = trimmed_startstop(nc, c0c, dims[1]);
    if r1 <= r0 || c1 <= c0 {
        return None;
    }
    let cut = |a: &Array2<f64>| a.slice(s![r0..r1, c0..c1]).to_owned();
    let cuti = |a: &Array2<i32>| a.slice(s![r0..r1, c0..c1]).to_owned();
    let image = cut(&obs.image);
    let weight = cut(&obs.weight);
    let jac = obs.jacobian.with_cen(r0c - r0 as f64, c0c - c0 as f64);
    let mut new = Observation::new(image, weight, jac).ok()?;
    new.psf = obs.psf.take();
    new.weight_raw = obs.weight_raw.as_ref().map(cut);
    new.weight_us = obs.weight_us.as_ref().map(cut);
    new.noise = obs.noise.as_ref().map(cut);
    new.bmask = obs.bmask.as_ref().map(cuti);
    new.seg = obs.seg.as_ref().map(cuti);
    new.meta = std::mem::take(&mut obs.meta);
    new.psf_meta = obs.psf_meta;
    new.flags = obs.flags;
    Some(new)
}

/// `_trim_psf`: `start = int(cen - d/2 + 0.5)`, `end = int(cen + d/2 + 0.5)` per axis (clamped to
/// the stamp), new centre `cen - start`. ngmixer shifts the column centre by the row start
/// (spec §10 defect 12); this uses the column start.
pub fn trim_psf(
    im: &[f64],
    nrow: usize,
    ncol: usize,
    cen: (f64, f64),
    dims: [usize; 2],
) -> (Vec<f64>, usize, usize, (f64, f64)) {
    let ax = |c: f64, d: usize, n: usize| {
        let a = trunc(c - d as f64 / 2.0 + 0.5).clamp(0, n as i64) as usize;
        let b = trunc(c + d as f64 / 2.0 + 0.5).clamp(0, n as i64) as usize;
        (a, b.max(a))
    };
    let (r0, r1) = ax(cen.0, dims[0], nrow);
    let (c0, c1) = ax(cen.1, dims[1], ncol);
    let mut out = Vec::with_capacity((r1 - r0) * (c1 - c0));
    for r in r0..r1 {
        out.extend_from_slice(&im[r * ncol + c0..r * ncol + c1]);
    }
    (
        out,
        r1 - r0,
        c1 - c0,
        (cen.0 - r0 as f64, cen.1 - c0 as f64),
    )
}

/// Y1 `_clip_weight`: zero weights below `min_weight`; if any were zeroed and `symmetrize`,
/// also zero where the 90°-rotated (clipped) map is below `min_weight` (square maps); finally
/// clip at 0.
pub fn y1_clip_weight(w: &mut Array2<f64>, min_weight: f64, symmetrize: bool) {
    let mut any = false;
    for x in w.iter_mut() {
        if *x < min_weight {
            *x = 0.0;
            any = true;
        }
    }
    if any && symmetrize && w.nrows() == w.ncols() {
        let rot = rot90(w);
        for (x, r) in w.iter_mut().zip(rot.iter()) {
            if *r < min_weight {
                *x = 0.0;
            }
        }
    }
    w.mapv_inplace(|x| if x < 0.0 { 0.0 } else { x });
}

/// Apply the pixel-area scaling to a usable observation (image, weight, `weight_raw`,
/// `weight_us`; ngmixer leaves the noise image alone); `false` when the weight became unusable.
pub fn scale_obs(obs: &mut Observation, scaling: PixelScaling) -> bool {
    let s2 = obs.jacobian.area();
    let s4 = s2 * s2;
    // ngmixer divides/multiplies by s² and s⁴ (not by their reciprocals): same here
    let to_sb = match scaling {
        PixelScaling::None => return true,
        PixelScaling::ToSurfaceBrightness => true,
        PixelScaling::ToFlux => false,
    };
    let im_f = |x: f64| if to_sb { x / s2 } else { x * s2 };
    let wt_f = |x: f64| if to_sb { x * s4 } else { x / s4 };
    obs.image.mapv_inplace(im_f);
    let w = obs.weight.mapv(wt_f);
    for a in [obs.weight_raw.as_mut(), obs.weight_us.as_mut()]
        .into_iter()
        .flatten()
    {
        a.mapv_inplace(wt_f);
    }
    obs.set_weight(w).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_keys() {
        assert_eq!(
            replacement_key("/x/DECam_00233601_03.fits.fz").as_deref(),
            Some("233601-03")
        );
        assert_eq!(replacement_key("a_b_c"), None);
    }

    #[test]
    fn trimmed_startstop_matches_ngmixer() {
        // cen 23.5 in 48 pixels, new 32: start int(8) = 8, end int(40) = 40
        assert_eq!(trimmed_startstop(48, 23.5, 32), (8, 40));
        // end clipped at dim-1
        assert_eq!(trimmed_startstop(48, 40.0, 32), (24, 47));
        assert_eq!(trimmed_startstop(48, 3.0, 32), (0, 19));
    }

    #[test]
    fn y1_clip() {
        let mut w = Array2::from_shape_vec((2, 2), vec![1.0, -1.0, 1e-5, 2.0]).unwrap();
        y1_clip_weight(&mut w, 1e-4, false);
        assert_eq!(w.as_slice().unwrap(), &[1.0, 0.0, 0.0, 2.0]);
        // rot90 of [[1,0],[0,2]] is [[0,2],[1,0]]: zeros at (0,0) and (1,1)
        let mut w = Array2::from_shape_vec((2, 2), vec![1.0, -1.0, 1e-5, 2.0]).unwrap();
        y1_clip_weight(&mut w, 1e-4, true);
        assert_eq!(w.as_slice().unwrap(), &[0.0, 0.0, 0.0, 0.0]);
        // nothing below min_weight: no symmetrization, negative clipped... none here
        let mut w = Array2::from_shape_vec((2, 2), vec![1.0, 0.5, 0.5, 2.0]).unwrap();
        y1_clip_weight(&mut w, 1e-4, true);
        assert_eq!(w.as_slice().unwrap(), &[1.0, 0.5, 0.5, 2.0]);
    }
}
