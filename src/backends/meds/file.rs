//! [`MedsFile`]: the cfitsio-backed reader (feature `des-y1`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fits::{FitsHandle, HduEntry, HduKind};
use super::seg::{self, coadd_index_map, uberseg_in_place, CutoutFrame};
use super::{
    ColumnError, Columns, CutoutInfo, CutoutKind, ImageInfo, ObjectData, PerCutout, IMAGE_INFO,
    METADATA, OBJECT_DATA, PSF,
};
use crate::error::{Error, Result};
use crate::gmix::Jacobian;

/// Largest cutout accepted (pixels): a guard against absurd `box_size` values in compressed
/// files, whose claimed image size is not bounded by the file size.
pub const MAX_CUTOUT_PIXELS: usize = 1 << 28;

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    obj: ObjectData,
    info: ImageInfo,
    meta: Columns,
    cutouts: [Option<HduEntry>; 6],
    psf: Option<HduEntry>,
}

/// An open MEDS file. See the [module docs](crate::backends::meds).
#[derive(Debug)]
pub struct MedsFile {
    shared: Arc<Shared>,
    handle: Mutex<FitsHandle>,
}

fn table_error(path: &Path, hdu: &str, e: ColumnError) -> Error {
    Error::Fits {
        path: path.to_path_buf(),
        hdu: Some(hdu.to_string()),
        msg: e.to_string(),
    }
}

/// Read every column of the table HDU `hdu` of any FITS file (e.g. a truth or FoF catalogue).
///
/// # Errors
/// [`Error::Fits`] when the file cannot be opened or the HDU is missing or not a table.
pub fn read_table(path: impl AsRef<Path>, hdu: &str) -> Result<Columns> {
    FitsHandle::open(path.as_ref())?.read_table(hdu)
}

/// Read every column of the table at 1-based HDU number `num` (the primary HDU is number 1,
/// so the first extension is number 2).
///
/// # Errors
/// [`Error::Fits`] when the file cannot be opened or the HDU is missing or not a table.
pub fn read_table_num(path: impl AsRef<Path>, num: usize) -> Result<Columns> {
    FitsHandle::open(path.as_ref())?.read_table_num(num)
}

impl MedsFile {
    /// Open a MEDS file: index its HDUs, decode `object_data`, `image_info` and (if present)
    /// `metadata`, and check that `image_cutouts` exists.
    ///
    /// # Errors
    /// [`Error::Fits`] naming the file, HDU and column for a missing, truncated or non-FITS
    /// file, a missing required HDU, a missing column or a column of the wrong type or
    /// shape.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut h = FitsHandle::open(path)?;
        let need = |h: &FitsHandle, name: &str| -> Result<()> {
            if h.find(name).is_none() {
                return Err(Error::Fits {
                    path: path.to_path_buf(),
                    hdu: Some(name.to_string()),
                    msg: format!("required HDU '{name}' not found"),
                });
            }
            Ok(())
        };
        need(&h, OBJECT_DATA)?;
        need(&h, IMAGE_INFO)?;
        need(&h, CutoutKind::Image.extname())?;
        let od_cols = h.read_table(OBJECT_DATA)?;
        let obj =
            ObjectData::from_columns(&od_cols).map_err(|e| table_error(path, OBJECT_DATA, e))?;
        let ii_cols = h.read_table(IMAGE_INFO)?;
        let info =
            ImageInfo::from_columns(&ii_cols).map_err(|e| table_error(path, IMAGE_INFO, e))?;
        let meta = if h.find(METADATA).is_some() {
            let m = h.read_table(METADATA)?;
            m.validate().map_err(|e| table_error(path, METADATA, e))?;
            m
        } else {
            Columns::default()
        };
        let image_hdu = |h: &FitsHandle, name: &str| -> Result<Option<HduEntry>> {
            match h.find(name) {
                None => Ok(None),
                Some(e) if e.kind == HduKind::Image => Ok(Some(e.clone())),
                Some(_) => Err(Error::Fits {
                    path: path.to_path_buf(),
                    hdu: Some(name.to_string()),
                    msg: format!("HDU '{name}' is not an image"),
                }),
            }
        };
        let mut cutouts: [Option<HduEntry>; 6] = Default::default();
        for kind in CutoutKind::ALL {
            cutouts[kind.index()] = image_hdu(&h, kind.extname())?;
        }
        let psf = image_hdu(&h, PSF)?;
        Ok(Self {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                obj,
                info,
                meta,
                cutouts,
                psf,
            }),
            handle: Mutex::new(h),
        })
    }

    /// An independent handle on the same file for another worker; the decoded tables (and the
    /// decompressed bytes of a compressed file, and decompressed fpack tiles) are shared, not
    /// re-read.
    ///
    /// # Errors
    /// [`Error::Fits`] if the file can no longer be opened or its HDUs changed.
    pub fn reopen(&self) -> Result<Self> {
        let h = self.handle().reopen()?;
        let same = |e: &Option<HduEntry>| match e {
            None => true,
            Some(e) => h
                .find(&e.name)
                .is_some_and(|n| n.num == e.num && n.npix == e.npix),
        };
        if !self.shared.cutouts.iter().all(same) || !same(&self.shared.psf) {
            return Err(self.err(None, "the file changed since it was first opened"));
        }
        Ok(Self {
            shared: Arc::clone(&self.shared),
            handle: Mutex::new(h),
        })
    }

    fn handle(&self) -> MutexGuard<'_, FitsHandle> {
        // A panic while holding the lock cannot leave the handle in a state worse than a
        // failed read, so a poisoned lock is simply taken over.
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, hdu: Option<&str>, msg: impl Into<String>) -> Error {
        Error::Fits {
            path: self.shared.path.clone(),
            hdu: hdu.map(str::to_string),
            msg: msg.into(),
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Number of objects.
    pub fn size(&self) -> usize {
        self.shared.obj.len()
    }

    /// The decoded `object_data` table.
    pub fn object_data(&self) -> &ObjectData {
        &self.shared.obj
    }

    /// The decoded `image_info` table.
    pub fn image_info(&self) -> &ImageInfo {
        &self.shared.info
    }

    /// All columns of the `metadata` table (empty when the HDU is absent).
    pub fn metadata(&self) -> &Columns {
        &self.shared.meta
    }

    /// Whether the cutout HDU of that kind exists.
    pub fn has_cutouts(&self, kind: CutoutKind) -> bool {
        self.shared.cutouts[kind.index()].is_some()
    }

    /// Whether the `psf` HDU exists.
    pub fn has_psf(&self) -> bool {
        self.shared.psf.is_some()
    }

    /// Check `iobj` (and `icut`) the way the meds package does: object in range, at least
    /// one cutout, cutout index below `ncutout`.
    fn check(&self, iobj: usize, icut: Option<usize>) -> Result<()> {
        let od = &self.shared.obj;
        if iobj >= od.len() {
            return Err(self.err(
                Some(OBJECT_DATA),
                format!("object index {iobj} out of range [0, {})", od.len()),
            ));
        }
        let n = od.ncutout.get(iobj).copied().unwrap_or(0);
        if n <= 0 {
            return Err(self.err(Some(OBJECT_DATA), format!("object {iobj} has no cutouts")));
        }
        if let Some(icut) = icut {
            if icut as i64 >= n {
                return Err(self.err(
                    Some(OBJECT_DATA),
                    format!("cutout index {icut} of object {iobj} out of range [0, {n})"),
                ));
            }
        }
        Ok(())
    }

    /// Prefix a pixel-read error with the object (id and row) and cutout it concerns.
    fn cutout_context(&self, e: Error, what: &str, iobj: usize, icut: usize) -> Error {
        match e {
            Error::Fits { path, hdu, msg } => Error::Fits {
                path,
                hdu,
                msg: format!(
                    "{what} of object id {} (row {iobj}), cutout {icut}: {msg}",
                    self.object_id_text(iobj)
                ),
            },
            e => e,
        }
    }

    fn missing(&self, col: &str, iobj: usize, icut: usize) -> Error {
        self.err(
            Some(OBJECT_DATA),
            format!("column '{col}' has no value for object {iobj}, cutout {icut}"),
        )
    }

    /// Number of cutouts of object `iobj`.
    ///
    /// # Errors
    /// Object index out of range.
    pub fn ncutout(&self, iobj: usize) -> Result<usize> {
        self.shared
            .obj
            .ncutout
            .get(iobj)
            .map(|&n| n.max(0) as usize)
            .ok_or_else(|| {
                self.err(
                    Some(OBJECT_DATA),
                    format!("object index {iobj} out of range [0, {})", self.size()),
                )
            })
    }

    /// Cutout side of object `iobj`.
    ///
    /// # Errors
    /// Object index out of range.
    pub fn box_size(&self, iobj: usize) -> Result<usize> {
        self.shared
            .obj
            .box_size
            .get(iobj)
            .map(|&n| n.max(0) as usize)
            .ok_or_else(|| {
                self.err(
                    Some(OBJECT_DATA),
                    format!("object index {iobj} out of range [0, {})", self.size()),
                )
            })
    }

    /// The seg-map number of object `iobj` (`number`, or `iobj + 1` without that column).
    ///
    /// # Errors
    /// Object index out of range.
    pub fn number(&self, iobj: usize) -> Result<i64> {
        self.shared.obj.number.get(iobj).copied().ok_or_else(|| {
            self.err(
                Some(OBJECT_DATA),
                format!("object index {iobj} out of range [0, {})", self.size()),
            )
        })
    }

    /// All per-cutout table values of `(iobj, icut)`.
    ///
    /// # Errors
    /// Index out of range.
    pub fn cutout_info(&self, iobj: usize, icut: usize) -> Result<CutoutInfo> {
        self.check(iobj, Some(icut))?;
        let od = &self.shared.obj;
        let gi = |c: &PerCutout<i64>, name: &str| {
            c.get(iobj, icut)
                .ok_or_else(|| self.missing(name, iobj, icut))
        };
        let gf = |c: &PerCutout<f64>, name: &str| {
            c.get(iobj, icut)
                .ok_or_else(|| self.missing(name, iobj, icut))
        };
        Ok(CutoutInfo {
            file_id: gi(&od.file_id, "file_id")?,
            start_row: gi(&od.start_row, "start_row")?,
            orig_row: gf(&od.orig_row, "orig_row")?,
            orig_col: gf(&od.orig_col, "orig_col")?,
            orig_start_row: gi(&od.orig_start_row, "orig_start_row")?,
            orig_start_col: gi(&od.orig_start_col, "orig_start_col")?,
            cutout_row: gf(&od.cutout_row, "cutout_row")?,
            cutout_col: gf(&od.cutout_col, "cutout_col")?,
            dudrow: gf(&od.dudrow, "dudrow")?,
            dudcol: gf(&od.dudcol, "dudcol")?,
            dvdrow: gf(&od.dvdrow, "dvdrow")?,
            dvdcol: gf(&od.dvdcol, "dvdcol")?,
        })
    }

    /// The `image_info` row of cutout `(iobj, icut)` (its `file_id`), checked against the
    /// table.
    ///
    /// # Errors
    /// Index out of range, or a `file_id` outside `image_info`: [`Error::Fits`] naming the
    /// file, the object (`id` and row) and the cutout index.
    pub fn file_id(&self, iobj: usize, icut: usize) -> Result<usize> {
        let fid = self.cutout_info(iobj, icut)?.file_id;
        let n = self.shared.info.len();
        usize::try_from(fid).ok().filter(|&k| k < n).ok_or_else(|| {
            self.err(
                Some(OBJECT_DATA),
                format!(
                    "object id {} (row {iobj}), cutout {icut}: file_id {fid} is outside \
                         image_info ({n} rows)",
                    self.object_id_text(iobj)
                ),
            )
        })
    }

    fn object_id_text(&self, iobj: usize) -> String {
        self.shared
            .obj
            .id
            .get(iobj)
            .map_or_else(|| "?".to_string(), |id| id.to_string())
    }

    /// `(cutout_row, cutout_col)` of `(iobj, icut)`.
    ///
    /// # Errors
    /// Index out of range.
    pub fn cutout_rowcol(&self, iobj: usize, icut: usize) -> Result<(f64, f64)> {
        let c = self.cutout_info(iobj, icut)?;
        Ok((c.cutout_row, c.cutout_col))
    }

    /// The Jacobian of cutout `(iobj, icut)`: centre `(cutout_row, cutout_col)` and
    /// `dudrow, dudcol, dvdrow, dvdcol` from the table.
    ///
    /// # Errors
    /// Index out of range, or a singular / non-finite Jacobian.
    pub fn jacobian(&self, iobj: usize, icut: usize) -> Result<Jacobian> {
        let c = self.cutout_info(iobj, icut)?;
        Jacobian::new(
            c.cutout_row,
            c.cutout_col,
            c.dudrow,
            c.dudcol,
            c.dvdrow,
            c.dvdcol,
        )
        .map_err(|e| {
            self.err(
                Some(OBJECT_DATA),
                format!("object {iobj}, cutout {icut}: {e}"),
            )
        })
    }

    fn frame(&self, iobj: usize, icut: usize) -> Result<CutoutFrame> {
        let c = self.cutout_info(iobj, icut)?;
        Ok(CutoutFrame {
            row0: c.cutout_row,
            col0: c.cutout_col,
            jac: [[c.dudrow, c.dudcol], [c.dvdrow, c.dvdcol]],
        })
    }

    /// Location of cutout `(iobj, icut)` in the flattened HDU: `(first pixel, box side)`.
    fn section(
        &self,
        kind: CutoutKind,
        iobj: usize,
        icut: usize,
    ) -> Result<(HduEntry, usize, usize)> {
        self.check(iobj, Some(icut))?;
        let entry = self.shared.cutouts[kind.index()].clone().ok_or_else(|| {
            self.err(
                Some(kind.extname()),
                format!("this MEDS file has no '{}' HDU", kind.extname()),
            )
        })?;
        let od = &self.shared.obj;
        let bs = od.box_size.get(iobj).copied().unwrap_or(0);
        let start = od
            .start_row
            .get(iobj, icut)
            .ok_or_else(|| self.missing("start_row", iobj, icut))?;
        if start < 0 {
            return Err(self.err(
                Some(OBJECT_DATA),
                format!(
                    "column 'start_row': negative value {start} for object {iobj}, cutout {icut}"
                ),
            ));
        }
        let bs = usize::try_from(bs).unwrap_or(0);
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let npix = bs
            .checked_mul(bs)
            .filter(|&n| n <= MAX_CUTOUT_PIXELS)
            .ok_or_else(|| {
                self.err(
                    Some(OBJECT_DATA),
                    format!("column 'box_size': {bs} is too large for object {iobj}"),
                )
            })?;
        match start.checked_add(npix) {
            Some(end) if end <= entry.npix => Ok((entry, start, bs)),
            _ => Err(self.err(
                Some(kind.extname()),
                format!(
                    "cutout {icut} of object {iobj} (start_row {start}, box_size {bs}) lies \
                     outside the HDU's {} pixels",
                    entry.npix
                ),
            )),
        }
    }

    /// Read cutout `(iobj, icut)` of `kind` into `out` (resized to `nrow * ncol`, row-major)
    /// and return `(nrow, ncol)`.
    ///
    /// # Errors
    /// Index out of range, the HDU absent, a section outside the HDU, or a cfitsio read error.
    pub fn cutout(
        &self,
        kind: CutoutKind,
        iobj: usize,
        icut: usize,
        out: &mut Vec<f64>,
    ) -> Result<(usize, usize)> {
        let (entry, start, bs) = self.section(kind, iobj, icut)?;
        self.handle()
            .read_pixels_f64(&entry, start, bs * bs, out)
            .map_err(|e| self.cutout_context(e, "cutout", iobj, icut))?;
        Ok((bs, bs))
    }

    /// As [`MedsFile::cutout`], as 32-bit integers (for `Seg`, `Bmask`, `Ormask`).
    ///
    /// # Errors
    /// As [`MedsFile::cutout`]; also values that do not fit in `i32`.
    pub fn cutout_i32(
        &self,
        kind: CutoutKind,
        iobj: usize,
        icut: usize,
        out: &mut Vec<i32>,
    ) -> Result<(usize, usize)> {
        let (entry, start, bs) = self.section(kind, iobj, icut)?;
        self.handle()
            .read_pixels_i32(&entry, start, bs * bs, out)
            .map_err(|e| self.cutout_context(e, "cutout", iobj, icut))?;
        Ok((bs, bs))
    }

    /// Shape `(nrow, ncol)` of the PSF stamp of `(iobj, icut)`: `psf_row_size`/`psf_col_size`
    /// (per cutout or per object), else `psf_box_size`.
    ///
    /// # Errors
    /// Index out of range or neither convention present.
    pub fn psf_shape(&self, iobj: usize, icut: usize) -> Result<(usize, usize)> {
        self.check(iobj, Some(icut))?;
        let od = &self.shared.obj;
        let dim = |c: &PerCutout<i64>, name: &str| -> Result<usize> {
            let v = c
                .get(iobj, icut)
                .ok_or_else(|| self.missing(name, iobj, icut))?;
            usize::try_from(v).map_err(|_| {
                self.err(
                    Some(OBJECT_DATA),
                    format!("column '{name}': negative value {v} for object {iobj}, cutout {icut}"),
                )
            })
        };
        match (&od.psf_row_size, &od.psf_col_size, &od.psf_box_size) {
            (Some(r), Some(c), _) => Ok((dim(r, "psf_row_size")?, dim(c, "psf_col_size")?)),
            (_, _, Some(b)) => {
                let n = dim(b, "psf_box_size")?;
                Ok((n, n))
            }
            _ => Err(self.err(
                Some(OBJECT_DATA),
                "missing column: neither psf_row_size/psf_col_size nor psf_box_size is present",
            )),
        }
    }

    /// Read the PSF stamp of `(iobj, icut)` from the `psf` HDU into `out`; returns
    /// `(nrow, ncol)`.
    ///
    /// # Errors
    /// No `psf` HDU, no `psf_start_row` or size columns, index out of range, or a section
    /// outside the HDU.
    pub fn psf(&self, iobj: usize, icut: usize, out: &mut Vec<f64>) -> Result<(usize, usize)> {
        let entry = self
            .shared
            .psf
            .clone()
            .ok_or_else(|| self.err(Some(PSF), "this MEDS file has no 'psf' HDU"))?;
        let (nr, nc) = self.psf_shape(iobj, icut)?;
        let starts = self.shared.obj.psf_start_row.as_ref().ok_or_else(|| {
            self.err(
                Some(OBJECT_DATA),
                "missing column 'psf_start_row' (needed for the psf HDU)",
            )
        })?;
        let start = starts
            .get(iobj, icut)
            .ok_or_else(|| self.missing("psf_start_row", iobj, icut))?;
        let start = usize::try_from(start).map_err(|_| {
            self.err(
                Some(OBJECT_DATA),
                format!("column 'psf_start_row': negative value {start} for object {iobj}, cutout {icut}"),
            )
        })?;
        let n = nr
            .checked_mul(nc)
            .filter(|&n| n <= MAX_CUTOUT_PIXELS)
            .ok_or_else(|| {
                self.err(
                    Some(OBJECT_DATA),
                    format!("PSF stamp {nr}x{nc} is too large"),
                )
            })?;
        self.handle()
            .read_pixels_f64(&entry, start, n, out)
            .map_err(|e| {
                self.cutout_context(
                    e,
                    &format!("PSF stamp (psf_start_row {start}, {nr}x{nc})"),
                    iobj,
                    icut,
                )
            })?;
        Ok((nr, nc))
    }

    /// The PSF centre `(psf_cutout_row, psf_cutout_col)` of `(iobj, icut)` when those columns
    /// exist.
    ///
    /// # Errors
    /// Index out of range.
    pub fn psf_center(&self, iobj: usize, icut: usize) -> Result<Option<(f64, f64)>> {
        self.check(iobj, Some(icut))?;
        let od = &self.shared.obj;
        Ok(match (&od.psf_cutout_row, &od.psf_cutout_col) {
            (Some(r), Some(c)) => r.get(iobj, icut).zip(c.get(iobj, icut)),
            _ => None,
        })
    }

    /// The `psf_sigma` of `(iobj, icut)` when that column exists.
    ///
    /// # Errors
    /// Index out of range.
    pub fn psf_sigma(&self, iobj: usize, icut: usize) -> Result<Option<f64>> {
        self.check(iobj, Some(icut))?;
        Ok(self
            .shared
            .obj
            .psf_sigma
            .as_ref()
            .and_then(|c| c.get(iobj, icut)))
    }

    /// The coadd seg map of `iobj` interpolated (nearest pixel through the two Jacobians) onto
    /// cutout `icut` (meds `interpolate_coadd_seg`); for `icut == 0` the coadd seg itself.
    ///
    /// # Errors
    /// No `seg_cutouts`, index out of range, or a singular coadd Jacobian.
    pub fn interpolated_coadd_seg(
        &self,
        iobj: usize,
        icut: usize,
        out: &mut Vec<i32>,
    ) -> Result<(usize, usize)> {
        self.check(iobj, Some(icut))?;
        if icut == 0 {
            return self.cutout_i32(CutoutKind::Seg, iobj, 0, out);
        }
        let mut cseg = Vec::new();
        let (cn, cm) = self.cutout_i32(CutoutKind::Seg, iobj, 0, &mut cseg)?;
        let bs = self.box_size(iobj)?;
        let coadd = self.frame(iobj, 0)?;
        let epoch = self.frame(iobj, icut)?;
        let mut map = Vec::new();
        coadd_index_map(bs, bs, &epoch, &coadd, cn, cm, &mut map).ok_or_else(|| {
            self.err(
                Some(OBJECT_DATA),
                format!("object {iobj}: the coadd jacobian is singular"),
            )
        })?;
        out.clear();
        out.extend(map.iter().map(|&k| cseg.get(k).copied().unwrap_or(0)));
        Ok((bs, bs))
    }

    /// Composite weight (meds `get_cweight_cutout`): the weight cutout with pixels zeroed where
    /// the coadd seg (interpolated onto this cutout) belongs to an object other than the one
    /// at the coadd centre. A singular coadd Jacobian gives an all-zero weight, as in meds.
    ///
    /// # Errors
    /// Missing `weight_cutouts`/`seg_cutouts`, index out of range, or a coadd centre outside
    /// the cutout.
    pub fn cweight(&self, iobj: usize, icut: usize, out: &mut Vec<f64>) -> Result<(usize, usize)> {
        let dims = self.cutout(CutoutKind::Weight, iobj, icut, out)?;
        let mut cseg = Vec::new();
        let (cn, cm) = self.cutout_i32(CutoutKind::Seg, iobj, 0, &mut cseg)?;
        let coadd = self.frame(iobj, 0)?;
        let segid = seg::central_segid(&cseg, cn, cm, coadd.row0, coadd.col0).ok_or_else(|| {
            self.err(
                Some(OBJECT_DATA),
                format!(
                    "object {iobj}: coadd centre ({}, {}) outside the {cn}x{cm} seg cutout",
                    coadd.row0, coadd.col0
                ),
            )
        })?;
        if icut == 0 {
            seg::composite_weight(out, &cseg, None, segid);
            return Ok(dims);
        }
        let epoch = self.frame(iobj, icut)?;
        let mut map = Vec::new();
        match coadd_index_map(dims.0, dims.1, &epoch, &coadd, cn, cm, &mut map) {
            Some(()) => seg::composite_weight(out, &cseg, Some(&map), segid),
            None => out.iter_mut().for_each(|w| *w = 0.0),
        }
        Ok(dims)
    }

    /// Uberseg weight (meds `get_uberseg`): the [`cweight`](Self::cweight) with every pixel
    /// zeroed whose nearest non-zero pixel of the interpolated coadd seg belongs to another
    /// object. All zero when the object owns no seg pixel near its centre.
    ///
    /// # Errors
    /// As [`MedsFile::cweight`] and [`MedsFile::interpolated_coadd_seg`].
    pub fn uberseg(&self, iobj: usize, icut: usize, out: &mut Vec<f64>) -> Result<(usize, usize)> {
        let (nr, nc) = self.cweight(iobj, icut, out)?;
        let mut seg = Vec::new();
        let (sr, sc) = self.interpolated_coadd_seg(iobj, icut, &mut seg)?;
        if (sr, sc) != (nr, nc) {
            return Err(self.err(
                Some(CutoutKind::Seg.extname()),
                format!("seg {sr}x{sc} and weight {nr}x{nc} differ in shape"),
            ));
        }
        let number = self.number(iobj)?;
        uberseg_in_place(out, &seg, nr, nc, number);
        Ok((nr, nc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meds_file_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MedsFile>();
    }
}
