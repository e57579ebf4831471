//! Writing [`Table`]s as FITS binary-table extensions (feature `des-y1`), with the TFORMs the
//! Python ngmixer wrote (numpy-fitsio: `J` for scalars, `1J` for one-element arrays, `36D` with
//! `TDIM = '(6,6)'` for matrices).
//!
//! Files are written to a temporary name beside the target and renamed into place, so an
//! interrupted run never leaves a half-written catalogue.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use fitsio::sys as ffi;

use crate::error::{Error, Result};
use crate::output::table::{Kind, Table};

const TSHORT: c_int = 21;
const TINT: c_int = 31;
const TFLOAT: c_int = 42;
const TLONGLONG: c_int = 81;
const TDOUBLE: c_int = 82;
const BINARY_TBL: c_int = 2;

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

fn ferr(path: &Path, hdu: Option<&str>, msg: impl Into<String>) -> Error {
    Error::Fits {
        path: path.to_path_buf(),
        hdu: hdu.map(str::to_string),
        msg: msg.into(),
    }
}

/// The prefix of the temporary names used while writing `path` (`.<name>.tmp-`); the process
/// id follows.
pub fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

/// The temporary name used while writing `path`.
pub fn temp_name(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}", temp_prefix(path), std::process::id()))
}

/// An integer header card of an extension (name, value, comment).
pub type IntKey<'a> = (&'a str, i64, &'a str);

/// One extension to write: name, table, integer header cards.
#[derive(Debug, Clone, Copy)]
pub struct Hdu<'a> {
    /// `EXTNAME`.
    pub name: &'a str,
    /// The rows.
    pub table: &'a Table,
    /// Extra integer header cards.
    pub keys: &'a [IntKey<'a>],
}

impl<'a> Hdu<'a> {
    /// An extension without extra cards.
    pub fn new(name: &'a str, table: &'a Table) -> Self {
        Self {
            name,
            table,
            keys: &[],
        }
    }
}

/// Write `hdus` (extension name, table) to `path` atomically (temporary file, then rename).
pub fn write_tables(path: &Path, hdus: &[(&str, &Table)]) -> Result<()> {
    let h: Vec<Hdu> = hdus.iter().map(|&(n, t)| Hdu::new(n, t)).collect();
    write_hdus(path, &h)
}

/// Write `hdus` to `path` so that `path` is either the complete new file or untouched: the
/// file is written to a temporary name beside it with every cfitsio status checked (close
/// included), read back and checked HDU by HDU (names, row counts: cfitsio does not report a
/// short write on close), synced to disk, then renamed over `path`. On any error the temporary
/// file is removed and the error names `path`.
pub fn write_hdus(path: &Path, hdus: &[Hdu]) -> Result<()> {
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let r = write_to(&tmp, hdus)
        .and_then(|()| verify(&tmp, hdus))
        .and_then(|()| sync_file(&tmp))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })
        });
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(rename_in_error(e, &tmp, path));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // make the rename durable; a directory that cannot be opened for sync is no error
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Errors about the temporary file name the user's path instead.
fn rename_in_error(e: Error, tmp: &Path, path: &Path) -> Error {
    match e {
        Error::Fits { path: p, hdu, msg } if p == tmp => Error::Fits {
            path: path.to_path_buf(),
            hdu,
            msg: format!("writing failed: {msg}"),
        },
        Error::Io { path: p, source } if p == tmp => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    }
}

fn sync_file(path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?
        .sync_all()
        .map_err(io)
}

/// Read the written file back: every HDU present with its row count, nothing truncated.
fn verify(path: &Path, hdus: &[Hdu]) -> Result<()> {
    for h in hdus {
        let cols = crate::backends::meds::read_table(path, h.name)?;
        if cols.nrows() != h.table.nrows() || cols.ncols() != h.table.columns().len() {
            return Err(ferr(
                path,
                Some(h.name),
                format!(
                    "read back {} rows x {} columns, wrote {} x {}",
                    cols.nrows(),
                    cols.ncols(),
                    h.table.nrows(),
                    h.table.columns().len()
                ),
            ));
        }
    }
    Ok(())
}

/// An open cfitsio handle; [`Handle::close`] reports the close status, drop closes quietly
/// (error paths only).
struct Handle(*mut ffi::fitsfile);

impl Handle {
    fn close(mut self, path: &Path) -> Result<()> {
        let mut s = 0;
        // SAFETY: the pointer came from ffinit; it is nulled so drop does not close it again.
        unsafe { ffi::ffclos(self.0, &mut s) };
        self.0 = ptr::null_mut();
        if s != 0 {
            return Err(ferr(path, None, format!("closing: {}", status_msg(s))));
        }
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0.is_null() {
            return;
        }
        let mut s = 0;
        // SAFETY: the pointer came from ffinit and is closed exactly once.
        unsafe { ffi::ffclos(self.0, &mut s) };
    }
}

fn tform(kind: Kind, shape: &[usize]) -> String {
    let repeat: usize = shape.iter().product::<usize>().max(1);
    let code = match kind {
        Kind::I16 => "I",
        Kind::I32 => "J",
        Kind::I64 => "K",
        Kind::F32 => "E",
        Kind::F64 => "D",
        Kind::Str(w) => return format!("{}A", w.max(1)),
    };
    if shape.is_empty() {
        code.to_string()
    } else {
        format!("{repeat}{code}")
    }
}

fn write_to(path: &Path, hdus: &[Hdu]) -> Result<()> {
    let cpath = CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| ferr(path, None, "path contains NUL"))?;
    let mut fptr = ptr::null_mut();
    let mut status = 0;
    // SAFETY: valid out-pointer and NUL-terminated path.
    unsafe { ffi::ffinit(&mut fptr, cpath.as_ptr(), &mut status) };
    if status != 0 {
        return Err(ferr(path, None, status_msg(status)));
    }
    let h = Handle(fptr);
    // empty primary HDU
    // SAFETY: open handle; naxis 0 needs no axes array.
    unsafe { ffi::ffcrim(h.0, 8, 0, ptr::null_mut(), &mut status) };
    if status != 0 {
        return Err(ferr(path, None, status_msg(status)));
    }
    for hdu in hdus {
        write_hdu(&h, path, hdu)?;
    }
    let mut status = 0;
    // SAFETY: open handle.
    unsafe { ffi::ffflus(h.0, &mut status) };
    if status != 0 {
        return Err(ferr(
            path,
            None,
            format!("flushing: {}", status_msg(status)),
        ));
    }
    h.close(path)
}

fn write_hdu(h: &Handle, path: &Path, hdu: &Hdu) -> Result<()> {
    let (ext, t) = (hdu.name, hdu.table);
    let e = |msg: String| ferr(path, Some(ext), msg);
    let names: Vec<CString> = t
        .columns()
        .iter()
        .map(|c| CString::new(c.name.as_str()).map_err(|_| e(format!("column name {:?}", c.name))))
        .collect::<Result<_>>()?;
    let forms: Vec<CString> = t
        .columns()
        .iter()
        .map(|c| CString::new(tform(c.kind, &c.shape)).expect("TFORM has no NUL"))
        .collect();
    let mut name_ptrs: Vec<*mut c_char> = names.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    let mut form_ptrs: Vec<*mut c_char> = forms.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    let cext = CString::new(ext).map_err(|_| e("extension name".into()))?;
    let mut status = 0;
    // SAFETY: arrays of ncols valid C strings that outlive the call; tunit may be null.
    unsafe {
        ffi::ffcrtb(
            h.0,
            BINARY_TBL,
            t.nrows() as _,
            t.columns().len() as c_int,
            name_ptrs.as_mut_ptr(),
            form_ptrs.as_mut_ptr(),
            ptr::null_mut(),
            cext.as_ptr(),
            &mut status,
        )
    };
    if status != 0 {
        return Err(e(status_msg(status)));
    }
    for (i, c) in t.columns().iter().enumerate() {
        let colnum = (i + 1) as c_int;
        if c.shape.len() > 1 {
            let dims: Vec<String> = c.shape.iter().rev().map(|d| d.to_string()).collect();
            let key = CString::new(format!("TDIM{colnum}")).expect("no NUL");
            let val = CString::new(format!("({})", dims.join(","))).expect("no NUL");
            // SAFETY: NUL-terminated strings; comment may be null.
            unsafe { ffi::ffpkys(h.0, key.as_ptr(), val.as_ptr(), ptr::null(), &mut status) };
        }
        if t.nrows() == 0 {
            continue;
        }
        let n = c.num.len() as i64;
        macro_rules! put {
            ($ty:ty, $code:expr) => {{
                let mut v: Vec<$ty> = c.num.iter().map(|&x| x as $ty).collect();
                // SAFETY: v holds n elements of the type named by the datatype code.
                unsafe {
                    ffi::ffpcl(
                        h.0,
                        $code,
                        colnum,
                        1,
                        1,
                        n,
                        v.as_mut_ptr() as *mut c_void,
                        &mut status,
                    )
                };
            }};
        }
        match c.kind {
            Kind::I16 => put!(i16, TSHORT),
            Kind::I32 => put!(i32, TINT),
            Kind::I64 => put!(i64, TLONGLONG),
            Kind::F32 => put!(f32, TFLOAT),
            Kind::F64 => put!(f64, TDOUBLE),
            Kind::Str(_) => {
                let cs: Vec<CString> = c
                    .strs
                    .iter()
                    .map(|s| CString::new(s.replace('\0', "")).expect("NULs removed"))
                    .collect();
                let mut ps: Vec<*mut c_char> =
                    cs.iter().map(|s| s.as_ptr() as *mut c_char).collect();
                // SAFETY: one valid C string per row.
                unsafe {
                    ffi::ffpcls(
                        h.0,
                        colnum,
                        1,
                        1,
                        ps.len() as i64,
                        ps.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
        }
        if status != 0 {
            return Err(e(format!("column {}: {}", c.name, status_msg(status))));
        }
    }
    for &(name, value, comment) in hdu.keys {
        let k = CString::new(name).map_err(|_| e(format!("header key {name:?}")))?;
        let c = CString::new(comment).map_err(|_| e(format!("comment of {name}")))?;
        let mut v = value;
        // SAFETY: NUL-terminated key and comment; v is one i64 (TLONGLONG).
        unsafe {
            ffi::ffpky(
                h.0,
                TLONGLONG,
                k.as_ptr(),
                &mut v as *mut i64 as *mut c_void,
                c.as_ptr(),
                &mut status,
            )
        };
    }
    if status != 0 {
        return Err(e(status_msg(status)));
    }
    Ok(())
}
