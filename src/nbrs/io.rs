//! Files of `ngmixer-meds-make-nbrs-data` (spec §1.5): reading the coadd boxes of a MEDS file,
//! the default output paths, and the two tables written with string header cards (`RUN`,
//! `CONF`, `MEDS`), both staged and renamed together so a failure leaves neither.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use fitsio::sys as ffi;

use super::list::CoaddBoxes;
use crate::backends::meds::{read_table_num, CutoutKind, MedsFile};
use crate::error::{Error, Result};
use crate::output::fits::temp_name;

const TLONGLONG: c_int = 81;
const BINARY_TBL: c_int = 2;

fn ferr(path: &Path, msg: impl Into<String>) -> Error {
    Error::Fits {
        path: path.to_path_buf(),
        hdu: None,
        msg: msg.into(),
    }
}

fn status_msg(status: c_int) -> String {
    let mut buf = [0 as c_char; 32];
    // SAFETY: ffgerr writes at most 31 characters plus NUL into the 32-byte buffer.
    unsafe { ffi::ffgerr(status, buf.as_mut_ptr()) };
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    format!(
        "cfitsio status {status}: {}",
        String::from_utf8_lossy(&bytes)
    )
}

/// The coadd boxes of a MEDS file (`id`, `number`, `box_size`, `orig_start_row/col[:, 0]`).
///
/// # Errors
/// [`Error::Fits`] when the file has no `number` column (ngmixer needs it) or an object has no
/// coadd origin column value.
pub fn coadd_boxes(meds: &MedsFile) -> Result<CoaddBoxes> {
    let od = meds.object_data();
    let err = |msg: String| Error::Fits {
        path: meds.path().to_path_buf(),
        hdu: Some("object_data".into()),
        msg,
    };
    if !od.has_number {
        return Err(err(
            "column 'number' is missing (neighbour finding matches objects and seg maps on it)"
                .into(),
        ));
    }
    let n = od.len();
    let mut row0 = Vec::with_capacity(n);
    let mut col0 = Vec::with_capacity(n);
    for i in 0..n {
        let get = |c: &crate::backends::meds::PerCutout<i64>, name: &str| {
            c.get(i, 0)
                .ok_or_else(|| err(format!("column '{name}' has no coadd value for row {i}")))
        };
        row0.push(get(&od.orig_start_row, "orig_start_row")?);
        col0.push(get(&od.orig_start_col, "orig_start_col")?);
    }
    Ok(CoaddBoxes {
        source: meds.path().display().to_string(),
        id: od.id.clone(),
        number: od.number.clone(),
        box_size: od.box_size.clone(),
        row0,
        col0,
    })
}

/// The coadd seg cutout of object `i`, or `None` when it cannot be read (no `seg_cutouts`,
/// no cutouts), as ngmixer ignores such errors.
pub fn coadd_seg(meds: &MedsFile, i: usize) -> Option<Vec<i32>> {
    if !meds.has_cutouts(CutoutKind::Seg) {
        return None;
    }
    let mut out = Vec::new();
    meds.cutout_i32(CutoutKind::Seg, i, 0, &mut out).ok()?;
    Some(out)
}

/// The tile id of a MEDS file name (ngmixer `files.get_meds_info`): `<tile>_<reqatt>` for a
/// DESDM name with four `_`-separated parts, else the first `_`-separated part.
pub fn tile_id(meds_file: &Path) -> String {
    let base = meds_file
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fs: Vec<&str> = base.split('_').collect();
    if fs.len() == 4 {
        format!("{}_{}", fs[0], fs[1])
    } else {
        fs[0].to_string()
    }
}

/// Default output paths `(nbrs, fofs)`:
/// `<output_dir>/<run>/output-nbrs/<tile_id>-<run>-nbrslist.fits` and `...-nbrsfofs.fits`.
pub fn default_paths(output_dir: &Path, meds_file: &Path, run: &str) -> (PathBuf, PathBuf) {
    let dir = output_dir.join(run).join("output-nbrs");
    let tile = tile_id(meds_file);
    (
        dir.join(format!("{tile}-{run}-nbrslist.fits")),
        dir.join(format!("{tile}-{run}-nbrsfofs.fits")),
    )
}

/// A table of `i8` columns with string header cards, to write.
#[derive(Debug, Clone)]
pub struct IntTable<'a> {
    /// Columns (name, values; all the same length).
    pub cols: Vec<(&'a str, &'a [i64])>,
    /// String header cards (key, value).
    pub keys: Vec<(&'a str, &'a str)>,
}

struct Handle(*mut ffi::fitsfile);

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut s = 0;
            // SAFETY: the pointer came from ffinit and is closed exactly once.
            unsafe { ffi::ffclos(self.0, &mut s) };
        }
    }
}

fn cstr(path: &Path, s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| ferr(path, format!("{what} {s:?} contains NUL")))
}

/// Write `t` as the first extension (no `EXTNAME`, as numpy-fitsio writes it) of a new FITS
/// file at `path` with every cfitsio status checked.
fn write_int_table(path: &Path, t: &IntTable) -> Result<()> {
    let nrows = t.cols.first().map(|c| c.1.len()).unwrap_or(0);
    if t.cols.iter().any(|c| c.1.len() != nrows) {
        return Err(ferr(path, "columns of different lengths"));
    }
    let cpath = cstr(path, &path.to_string_lossy(), "path")?;
    let mut fptr = ptr::null_mut();
    let mut status = 0;
    // SAFETY: valid out-pointer and NUL-terminated path.
    unsafe { ffi::ffinit(&mut fptr, cpath.as_ptr(), &mut status) };
    if status != 0 {
        return Err(ferr(path, status_msg(status)));
    }
    let mut h = Handle(fptr);
    // SAFETY: open handle; naxis 0 needs no axes array.
    unsafe { ffi::ffcrim(h.0, 16, 0, ptr::null_mut(), &mut status) };
    let names: Vec<CString> = t
        .cols
        .iter()
        .map(|c| cstr(path, c.0, "column name"))
        .collect::<Result<_>>()?;
    let forms: Vec<CString> = t
        .cols
        .iter()
        .map(|_| cstr(path, "K", "form"))
        .collect::<Result<_>>()?;
    let mut np: Vec<*mut c_char> = names.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    let mut fp: Vec<*mut c_char> = forms.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    // SAFETY: ncols valid C strings that outlive the call; tunit and extname may be null.
    unsafe {
        ffi::ffcrtb(
            h.0,
            BINARY_TBL,
            nrows as _,
            t.cols.len() as c_int,
            np.as_mut_ptr(),
            fp.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null(),
            &mut status,
        )
    };
    if status != 0 {
        return Err(ferr(path, status_msg(status)));
    }
    for (i, (name, vals)) in t.cols.iter().enumerate() {
        if nrows == 0 {
            break;
        }
        let mut v: Vec<i64> = vals.to_vec();
        // SAFETY: v holds nrows i64 values (TLONGLONG).
        unsafe {
            ffi::ffpcl(
                h.0,
                TLONGLONG,
                (i + 1) as c_int,
                1,
                1,
                nrows as i64,
                v.as_mut_ptr() as *mut c_void,
                &mut status,
            )
        };
        if status != 0 {
            return Err(ferr(path, format!("column {name}: {}", status_msg(status))));
        }
    }
    for (k, v) in &t.keys {
        let ck = cstr(path, k, "header key")?;
        let cv = cstr(path, v, "header value")?;
        let cc = cstr(path, "", "comment")?;
        // SAFETY: NUL-terminated key, value and comment.
        unsafe { ffi::ffpkls(h.0, ck.as_ptr(), cv.as_ptr(), cc.as_ptr(), &mut status) };
        if status != 0 {
            return Err(ferr(
                path,
                format!("header key {k}: {}", status_msg(status)),
            ));
        }
    }
    // SAFETY: open handle, closed once (nulled so drop does not close it again).
    unsafe { ffi::ffclos(h.0, &mut status) };
    h.0 = ptr::null_mut();
    if status != 0 {
        return Err(ferr(path, format!("closing: {}", status_msg(status))));
    }
    // read back: cfitsio does not report a short write on close
    let back = read_table_num(path, 2)?;
    if back.nrows() != nrows || back.ncols() != t.cols.len() {
        return Err(ferr(
            path,
            "the written table reads back with other dimensions",
        ));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(())
}

/// Write several tables (and raw files, e.g. a PNG) to their paths so that either all are
/// complete or none is changed: each is written to a temporary name beside its target, read back, and only when all are
/// written they are renamed into place. Missing directories are created.
///
/// # Errors
/// Any write error, naming the target; the temporary files are removed.
pub fn write_outputs(files: &[(&Path, IntTable)], blobs: &[(&Path, &[u8])]) -> Result<()> {
    let mut tmps: Vec<PathBuf> = Vec::new();
    let cleanup = |tmps: &[PathBuf]| {
        for t in tmps {
            let _ = std::fs::remove_file(t);
        }
    };
    for (path, t) in files {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(source) = std::fs::create_dir_all(dir) {
                cleanup(&tmps);
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        if path.is_dir() {
            cleanup(&tmps);
            return Err(ferr(path, "is a directory; give the path of a FITS file"));
        }
        let tmp = temp_name(path);
        let _ = std::fs::remove_file(&tmp);
        tmps.push(tmp.clone());
        if let Err(e) = write_int_table(&tmp, t) {
            cleanup(&tmps);
            return Err(match e {
                Error::Fits { hdu, msg, .. } => Error::Fits {
                    path: path.to_path_buf(),
                    hdu,
                    msg: format!("writing failed: {msg}"),
                },
                Error::Io { source, .. } => Error::Io {
                    path: path.to_path_buf(),
                    source,
                },
                e => e,
            });
        }
    }
    for (path, bytes) in blobs {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(source) = std::fs::create_dir_all(dir) {
                cleanup(&tmps);
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        let tmp = temp_name(path);
        tmps.push(tmp.clone());
        let r = std::fs::write(&tmp, bytes).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.sync_all())
        });
        if let Err(source) = r {
            cleanup(&tmps);
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let targets: Vec<&Path> = files
        .iter()
        .map(|f| f.0)
        .chain(blobs.iter().map(|b| b.0))
        .collect();
    for (k, path) in targets.iter().enumerate() {
        if let Err(source) = std::fs::rename(&tmps[k], path) {
            cleanup(&tmps[k..]);
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    Ok(())
}
