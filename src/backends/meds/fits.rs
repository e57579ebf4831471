//! A thin, panic-free read-only layer over cfitsio (through `fitsio` and `fitsio::sys`).
//!
//! `fitsio`'s high-level table API panics on column types it does not know and its string
//! reader gives cfitsio a buffer one byte too short for full-width strings, so tables, keys
//! and image sections are read here with the raw calls; [`fitsio::FitsFile`] owns the handle
//! and closes it. Files are opened with `ffdkopn`, which disables cfitsio's extended filename
//! syntax, so any path is taken literally.
//!
//! Compressed inputs: cfitsio reads gzip (and the other whole-file compressions it knows)
//! transparently by decompressing the file into memory; their on-disk size says nothing about
//! the FITS layout, so truncation is detected by reading the last record of every HDU (and, for
//! gzip, by comparing the trailer's uncompressed size with the end of the last HDU). The checked
//! decompressed bytes are then kept once and shared by every reopened handle.
//! Tile-compressed (`fpack`, `.fits.fz`) images are read tile by tile through a cache of
//! decompressed tiles shared by a file's handles ([`TILE_CACHE_BYTES`]): cfitsio does not cache
//! one-row tiles (the only kind a one-dimensional MEDS cutout HDU has), so reading cutouts as
//! sub-ranges would otherwise decompress the same tile again for every cutout.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex};

use fitsio::sys as ffi;
use fitsio::{FileOpenMode, FitsFile};

use super::columns::{ColKind, Column, ColumnData, Columns};
use crate::error::{Error, Result};

const IMAGE_HDU: c_int = 0;
const ASCII_TBL: c_int = 1;
const BINARY_TBL: c_int = 2;

const END_OF_FILE: c_int = 107;
const BAD_HDU_NUM: c_int = 301;
const KEY_NO_EXIST: c_int = 202;
const VALUE_UNDEFINED: c_int = 204;
/// `ffmbyt` mode: report an end-of-file error (cfitsio `REPORT_EOF`).
const REPORT_EOF: c_int = 0;

/// Budget (bytes) of decompressed tiles kept per file (shared by its reopened handles) for
/// tile-compressed images. A tile larger than this is not cached (each read then decompresses it
/// again).
pub(crate) const TILE_CACHE_BYTES: usize = 256 << 20;

/// Whole-file compression, recognised by the magic bytes (as cfitsio does), not by the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileCompression {
    /// A plain FITS file.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// Unix `compress`, `pack`, `lzh` or PKZIP, which cfitsio also decompresses.
    Other,
}

impl FileCompression {
    fn detect(path: &Path) -> Self {
        use std::io::Read;
        let mut magic = [0u8; 4];
        let n = std::fs::File::open(path)
            .and_then(|mut f| {
                let mut n = 0;
                while n < magic.len() {
                    let k = f.read(&mut magic[n..])?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                Ok(n)
            })
            .unwrap_or(0);
        match &magic[..n.min(4)] {
            [0x1f, 0x8b, ..] => Self::Gzip,
            [0x1f, 0x9d, ..] | [0x1f, 0x1e, ..] | [0x1f, 0xa0, ..] => Self::Other,
            [b'P', b'K', 3, 4] => Self::Other,
            _ => Self::None,
        }
    }
}

/// Kind of an HDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HduKind {
    Image,
    Table,
}

/// What the index keeps about each HDU.
#[derive(Debug, Clone)]
pub(crate) struct HduEntry {
    /// 1-based HDU number.
    pub num: c_int,
    /// `EXTNAME` (or `HDUNAME`), empty when absent.
    pub name: String,
    pub kind: HduKind,
    /// Number of pixels of an image HDU (product of the axes; 0 for tables).
    pub npix: usize,
    /// Size in bytes of the data unit (unpadded bound).
    pub data_bytes: u64,
    /// Whether this is a tile-compressed (fpack) image.
    pub compressed: bool,
    /// Tile layout when this is a tile-compressed image whose tiles can be cached.
    pub tiles: Option<TileLayout>,
}

/// How a tile-compressed image is cut into tiles, when every tile is a contiguous range of the
/// flattened image (one-dimensional images, or tiles spanning whole rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TileLayout {
    /// Pixels per tile (the last tile may be shorter).
    pub len: usize,
    /// The type tiles are decompressed to.
    pub kind: TileKind,
}

/// The element type of cached tiles: the image's own type, so that widening to f64 (or reading
/// i32) gives what a direct cfitsio read would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TileKind {
    /// 8-, 16- or 32-bit integers without scaling.
    I32,
    /// Floats of either precision, as f64.
    F64,
}

#[derive(Debug)]
enum TileData {
    I32(Vec<i32>),
    F64(Vec<f64>),
}

impl TileData {
    fn len(&self) -> usize {
        match self {
            Self::I32(v) => v.len(),
            Self::F64(v) => v.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::I32(v) => v.len() * 4,
            Self::F64(v) => v.len() * 8,
        }
    }
}

/// Least-recently-used decompressed tiles, keyed by (HDU number, tile index).
#[derive(Debug, Default)]
struct TileCache {
    tiles: HashMap<(c_int, usize), (u64, Arc<TileData>)>,
    bytes: usize,
    tick: u64,
}

impl TileCache {
    fn get(&mut self, key: (c_int, usize)) -> Option<Arc<TileData>> {
        self.tick += 1;
        let tick = self.tick;
        self.tiles.get_mut(&key).map(|(t, d)| {
            *t = tick;
            Arc::clone(d)
        })
    }

    fn insert(&mut self, key: (c_int, usize), data: Arc<TileData>) {
        let b = data.bytes();
        if b > TILE_CACHE_BYTES {
            return;
        }
        while self.bytes + b > TILE_CACHE_BYTES {
            let Some((&old, _)) = self.tiles.iter().min_by_key(|(_, (t, _))| *t) else {
                break;
            };
            if let Some((_, d)) = self.tiles.remove(&old) {
                self.bytes -= d.bytes();
            }
        }
        self.tick += 1;
        self.bytes += b;
        if let Some((_, d)) = self.tiles.insert(key, (self.tick, data)) {
            self.bytes -= d.bytes();
        }
    }
}

/// One open FITS file, read-only.
///
/// A compressed file is decompressed once (by cfitsio), checked, and its bytes kept in memory;
/// the handle and every [`FitsHandle::reopen`]ed one then read that shared copy, so workers
/// neither decompress the file again nor hold a copy each. The decompressed-tile cache of
/// fpack images is shared by reopened handles too.
pub(crate) struct FitsHandle {
    // `file` is declared first so that it is closed before `mem` is released.
    file: FitsFile,
    path: PathBuf,
    hdus: Vec<HduEntry>,
    compression: FileCompression,
    cache: Arc<Mutex<TileCache>>,
    mem: Option<MemBacking>,
}

/// The decompressed bytes a memory-backed handle reads, and the pointer and size cfitsio's
/// memory driver keeps the addresses of (boxed so that they do not move).
struct MemBacking {
    data: Arc<Vec<u8>>,
    _ptr: Box<*mut c_void>,
    _size: Box<usize>,
}

impl std::fmt::Debug for FitsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitsHandle")
            .field("path", &self.path)
            .field("hdus", &self.hdus)
            .field("compression", &self.compression)
            .field("in_memory", &self.mem.as_ref().map(|m| m.data.len()))
            .finish_non_exhaustive()
    }
}

// SAFETY: the handle owns its cfitsio `fitsfile` exclusively (it is opened read-only with
// `ffdkopn` or `ffomem`, which never attach to another handle's `FITSfile`), cfitsio is built
// with `_REENTRANT` by `fitsio-src` (its global tables and error stack are mutex-protected), and
// a `fitsfile` has no thread affinity. A memory-backed handle reads an immutable shared buffer
// (opened READONLY without a realloc function, so cfitsio never writes to it) that it keeps
// alive. Moving the handle to another thread is therefore sound; concurrent use is prevented by
// `&mut self` on every method.
unsafe impl Send for FitsHandle {}

extern "C" {
    /// cfitsio's `ffgbyt` (fitsio2.h, not in the generated bindings): read `nbytes` from the
    /// current position.
    fn ffgbyt(
        fptr: *mut ffi::fitsfile,
        nbytes: i64,
        buffer: *mut c_void,
        status: *mut c_int,
    ) -> c_int;
}

fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 32];
    // SAFETY: ffgerr writes at most 30 characters plus a terminator into errtext.
    unsafe { ffi::ffgerr(status, buf.as_mut_ptr()) };
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    // SAFETY: ffcmsg only clears cfitsio's (mutex-protected) error message stack.
    unsafe { ffi::ffcmsg() };
    format!(
        "{} (cfitsio status {status})",
        String::from_utf8_lossy(&bytes)
    )
}

fn buf_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn key_cstring(key: &str) -> Option<CString> {
    CString::new(key).ok()
}

impl FitsHandle {
    /// Open `path` read-only and index its HDUs. Fails for a missing, non-FITS or
    /// truncated file (plain or compressed).
    pub fn open(path: &Path) -> Result<Self> {
        let err = |msg: String| Error::Fits {
            path: path.to_path_buf(),
            hdu: None,
            msg,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot open: {e}")))?;
        if !meta.is_file() {
            return Err(err("cannot open: not a regular file".into()));
        }
        let file_size = meta.len();
        let compression = FileCompression::detect(path);
        let cpath = {
            use std::os::unix::ffi::OsStrExt;
            CString::new(path.as_os_str().as_bytes())
                .map_err(|_| err("path contains a NUL byte".into()))?
        };
        let mut fptr: *mut ffi::fitsfile = ptr::null_mut();
        let mut status: c_int = 0;
        // SAFETY: cpath is a valid C string; fptr receives a new handle or stays null.
        unsafe { ffi::ffdkopn(&mut fptr, cpath.as_ptr(), 0, &mut status) };
        let file = Self::adopt(fptr, status).map_err(err)?;
        let mut h = Self {
            file,
            path: path.to_path_buf(),
            hdus: Vec::new(),
            compression,
            cache: Arc::default(),
            mem: None,
        };
        h.index(file_size)?;
        if compression == FileCompression::None || h.hdus.iter().any(|e| e.compressed) {
            // (a tile-compressed image inside a compressed file: read through cfitsio's own
            // decompressed copy, one per handle)
            return Ok(h);
        }
        let data = Arc::new(h.read_all()?);
        drop(h);
        Self::open_memory(path, compression, data, Arc::default())
    }

    /// An independent handle on the same file, sharing the decompressed bytes of a compressed
    /// file and the tile cache.
    ///
    /// # Errors
    /// As [`FitsHandle::open`].
    pub fn reopen(&self) -> Result<Self> {
        match &self.mem {
            Some(m) => Self::open_memory(
                &self.path,
                self.compression,
                Arc::clone(&m.data),
                Arc::clone(&self.cache),
            ),
            None => {
                let mut h = Self::open(&self.path)?;
                h.cache = Arc::clone(&self.cache);
                Ok(h)
            }
        }
    }

    /// Take ownership of a handle cfitsio just opened (closing it on failure).
    fn adopt(fptr: *mut ffi::fitsfile, status: c_int) -> std::result::Result<FitsFile, String> {
        if status != 0 || fptr.is_null() {
            if !fptr.is_null() {
                let mut s2 = 0;
                // SAFETY: fptr is a handle that cfitsio returned; close it once.
                unsafe { ffi::ffclos(fptr, &mut s2) };
            }
            return Err(format!("cannot open as FITS: {}", status_text(status)));
        }
        // SAFETY: fptr is a valid handle just opened read-only; FitsFile takes ownership.
        match unsafe { FitsFile::from_raw(fptr, FileOpenMode::READONLY) } {
            Ok(f) => Ok(f),
            Err(e) => {
                let mut s2 = 0;
                // SAFETY: ownership was not taken; close the handle once.
                unsafe { ffi::ffclos(fptr, &mut s2) };
                Err(format!("cannot open as FITS: {e}"))
            }
        }
    }

    /// The whole (decompressed, already checked) file: bytes `0..end of the last HDU`.
    fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut len: u64 = 0;
        for e in self.hdus.clone() {
            self.goto_num(&e)?;
            let (mut head, mut dstart, mut dend) = (0i64, 0i64, 0i64);
            let mut status = 0;
            let fptr = self.raw();
            // SAFETY: valid handle; outputs are local.
            unsafe { ffi::ffghadll(fptr, &mut head, &mut dstart, &mut dend, &mut status) };
            if status != 0 {
                return Err(self.err(Some(&e.name), status_text(status)));
            }
            len = len.max(u64::try_from(dend).unwrap_or(0));
        }
        let n = usize::try_from(len)
            .map_err(|_| self.err(None, format!("{len} bytes do not fit in memory")))?;
        let mut buf = vec![0u8; n];
        let fptr = self.raw();
        let mut status = 0;
        // SAFETY: valid handle; buf holds n bytes, the decompressed file has at least n (every
        // HDU's last record was read while indexing).
        unsafe {
            ffi::ffmbyt(fptr, 0, REPORT_EOF, &mut status);
            ffgbyt(fptr, n as i64, buf.as_mut_ptr().cast(), &mut status);
        }
        if status != 0 {
            return Err(self.err(
                None,
                format!("cannot read the decompressed file: {}", status_text(status)),
            ));
        }
        Ok(buf)
    }

    /// A handle reading the decompressed bytes `data` of the file at `path`.
    fn open_memory(
        path: &Path,
        compression: FileCompression,
        data: Arc<Vec<u8>>,
        cache: Arc<Mutex<TileCache>>,
    ) -> Result<Self> {
        let mut ptr_box: Box<*mut c_void> = Box::new(data.as_ptr() as *mut c_void);
        let mut size_box = Box::new(data.len());
        let name = c"decompressed.fits";
        let mut fptr: *mut ffi::fitsfile = ptr::null_mut();
        let mut status: c_int = 0;
        // SAFETY: the buffer and the two boxed values outlive the handle (kept in `mem`, which
        // is dropped after `file`); READONLY without a realloc function: cfitsio only reads.
        unsafe {
            ffi::ffomem(
                &mut fptr,
                name.as_ptr(),
                0,
                &mut *ptr_box,
                &mut *size_box,
                0,
                None,
                &mut status,
            )
        };
        let file = Self::adopt(fptr, status).map_err(|msg| Error::Fits {
            path: path.to_path_buf(),
            hdu: None,
            msg: format!("decompressed copy: {msg}"),
        })?;
        let size = data.len() as u64;
        let mut h = Self {
            file,
            path: path.to_path_buf(),
            hdus: Vec::new(),
            compression,
            cache,
            mem: Some(MemBacking {
                data,
                _ptr: ptr_box,
                _size: size_box,
            }),
        };
        h.index(size)?;
        Ok(h)
    }

    fn raw(&mut self) -> *mut ffi::fitsfile {
        // SAFETY: the pointer stays owned by self.file and is only used while &mut self is
        // held.
        unsafe { self.file.as_raw() }
    }

    fn err(&self, hdu: Option<&str>, msg: impl Into<String>) -> Error {
        Error::Fits {
            path: self.path.clone(),
            hdu: hdu.map(str::to_string),
            msg: msg.into(),
        }
    }

    /// Walk all HDUs, recording names, kinds and sizes, and detect truncation.
    fn index(&mut self, file_size: u64) -> Result<()> {
        let mut hdus = Vec::new();
        let mut last_end: u64 = 0;
        for num in 1.. {
            let mut status = 0;
            let mut hdutype = 0;
            let fptr = self.raw();
            // SAFETY: fptr is a valid open handle; outputs are local integers.
            unsafe { ffi::ffmahd(fptr, num, &mut hdutype, &mut status) };
            if status == END_OF_FILE || status == BAD_HDU_NUM {
                // SAFETY: clears the error message stack only.
                unsafe { ffi::ffcmsg() };
                break;
            }
            if status != 0 {
                return Err(self.err(
                    None,
                    format!(
                        "cannot read HDU number {num} (the file is truncated or corrupt): {}",
                        status_text(status)
                    ),
                ));
            }
            let (mut head, mut dstart, mut dend) = (0i64, 0i64, 0i64);
            // SAFETY: valid handle; outputs are local.
            unsafe { ffi::ffghadll(fptr, &mut head, &mut dstart, &mut dend, &mut status) };
            let name = {
                let n = self.key_string_raw("EXTNAME")?;
                match n {
                    Some(n) => n,
                    None => self.key_string_raw("HDUNAME")?.unwrap_or_default(),
                }
            };
            let kind = match hdutype {
                IMAGE_HDU => HduKind::Image,
                ASCII_TBL | BINARY_TBL => HduKind::Table,
                _ => {
                    return Err(self.err(Some(&name), format!("unknown HDU type {hdutype}")));
                }
            };
            let npix = if kind == HduKind::Image {
                self.image_npix_raw(&name)?
            } else {
                0
            };
            let label = if name.is_empty() {
                format!("#{num}")
            } else {
                name.clone()
            };
            if status != 0 {
                return Err(self.err(Some(&label), status_text(status)));
            }
            let (compressed, tiles) = if kind == HduKind::Image {
                self.tile_layout_raw(&label, npix)?
            } else {
                (false, None)
            };
            let dend = u64::try_from(dend).unwrap_or(0);
            let dstart = u64::try_from(dstart).unwrap_or(0);
            // cfitsio pads data units to 2880 bytes; the raw data must lie within the file.
            let raw_end = dstart.saturating_add(self.raw_data_bytes()?);
            if self.compression == FileCompression::None || self.mem.is_some() {
                if raw_end > file_size {
                    return Err(self.err(
                        Some(&label),
                        format!(
                            "file is truncated: the data of HDU {num} ('{label}') end at byte \
                             {raw_end} but the file has {file_size} bytes"
                        ),
                    ));
                }
            } else if raw_end > dstart {
                // The on-disk size is the compressed size: read the last record of the data
                // unit from the decompressed file instead (cfitsio reports a short record as
                // an end-of-file error).
                self.probe_byte(raw_end - 1).map_err(|st| {
                    self.err(
                        Some(&label),
                        format!(
                            "file is truncated (compressed file): the data of HDU {num} \
                             ('{label}') end at byte {raw_end} of the decompressed file, which \
                             is shorter: {st}"
                        ),
                    )
                })?;
            }
            last_end = last_end.max(dend);
            hdus.push(HduEntry {
                num,
                name,
                kind,
                npix,
                data_bytes: raw_end - dstart,
                compressed,
                tiles,
            });
        }
        if hdus.is_empty() {
            return Err(self.err(None, "no HDU could be read: not a FITS file"));
        }
        match self.compression {
            _ if self.mem.is_some() => {}
            FileCompression::None => self.check_trailing_header(file_size, last_end, hdus.len())?,
            FileCompression::Gzip => self.check_gzip_size(last_end)?,
            // No size to compare with: a header cut short at a record boundary cannot be told
            // from the end of the file.
            FileCompression::Other => {}
        }
        self.hdus = hdus;
        Ok(())
    }

    /// A header cut short after the last complete HDU of a plain file.
    fn check_trailing_header(&self, file_size: u64, last_end: u64, nhdu: usize) -> Result<()> {
        if file_size > last_end {
            let mut probe = [0u8; 8];
            if let Ok(mut f) = std::fs::File::open(&self.path) {
                use std::io::{Read, Seek, SeekFrom};
                if f.seek(SeekFrom::Start(last_end)).is_ok()
                    && f.read_exact(&mut probe).is_ok()
                    && &probe == b"XTENSION"
                {
                    return Err(self.err(
                        None,
                        format!(
                            "file is truncated: an incomplete HDU header starts at byte {last_end} \
                             after HDU {nhdu}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// gzip: the trailer's uncompressed size (ISIZE, modulo 2^32) must be the end of the last
    /// HDU. cfitsio silently accepts a gzip stream cut short, so a truncated `.gz` whose cut
    /// falls between HDUs would otherwise lose the remaining HDUs without an error; its last
    /// four bytes are then compressed data, which match by chance with probability 2^-32.
    fn check_gzip_size(&self, last_end: u64) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut tail = [0u8; 4];
        let read = std::fs::File::open(&self.path).and_then(|mut f| {
            f.seek(SeekFrom::End(-4))?;
            f.read_exact(&mut tail)
        });
        if let Err(e) = read {
            return Err(self.err(None, format!("cannot read the gzip trailer: {e}")));
        }
        let isize = u32::from_le_bytes(tail);
        if u64::from(isize) != last_end % (1u64 << 32) {
            return Err(self.err(
                None,
                format!(
                    "gzip-compressed file is truncated or corrupt: its HDUs end at byte {last_end} \
                     of the decompressed data but the gzip trailer gives {isize} bytes (modulo \
                     2^32)"
                ),
            ));
        }
        Ok(())
    }

    /// Load the 2880-byte record holding byte `pos` of the (decompressed) file; the cfitsio
    /// status text on failure.
    fn probe_byte(&mut self, pos: u64) -> std::result::Result<(), String> {
        let fptr = self.raw();
        let mut status = 0;
        let pos = i64::try_from(pos).map_err(|_| "position out of range".to_string())?;
        // SAFETY: valid handle; ffmbyt only moves the file position and loads a record.
        unsafe { ffi::ffmbyt(fptr, pos, REPORT_EOF, &mut status) };
        if status != 0 {
            return Err(status_text(status));
        }
        Ok(())
    }

    /// For the current image HDU: whether it is tile-compressed, and its tile layout when its
    /// tiles are contiguous ranges of the flattened image of a type the cache keeps.
    fn tile_layout_raw(&mut self, label: &str, npix: usize) -> Result<(bool, Option<TileLayout>)> {
        let fptr = self.raw();
        let mut status = 0;
        // SAFETY: valid handle positioned on an image HDU.
        let compressed = unsafe { ffi::fits_is_compressed_image(fptr, &mut status) } != 0;
        if status != 0 {
            return Err(self.err(Some(label), status_text(status)));
        }
        if !compressed || npix == 0 {
            return Ok((compressed, None));
        }
        let mut imgtype: c_int = 0;
        // SAFETY: valid handle; local output (ZBITPIX for a compressed image).
        unsafe { ffi::ffgidt(fptr, &mut imgtype, &mut status) };
        if status != 0 {
            return Err(self.err(Some(label), status_text(status)));
        }
        let bscale = self.key_f64_raw("BSCALE")?.unwrap_or(1.0);
        let bzero = self.key_f64_raw("BZERO")?.unwrap_or(0.0);
        let kind = match imgtype {
            8 | 16 if bscale == 1.0 && [0.0, -128.0, 32768.0].contains(&bzero) => TileKind::I32,
            32 if bscale == 1.0 && bzero == 0.0 => TileKind::I32,
            // floats are cached as f64, what a direct TDOUBLE read returns (a quantized tile
            // read as f32 would round differently)
            -32 | -64 if bscale == 1.0 && bzero == 0.0 => TileKind::F64,
            _ => return Ok((true, None)),
        };
        let naxis = self.key_i64_raw("ZNAXIS")?.unwrap_or(0);
        if naxis <= 0 {
            return Ok((true, None));
        }
        let mut len: usize = 1;
        let mut partial = false;
        for i in 1..=naxis {
            let ax = self.key_i64_raw(&format!("ZNAXIS{i}"))?.unwrap_or(0).max(0) as usize;
            let default = if i == 1 { ax as i64 } else { 1 };
            let t = self
                .key_i64_raw(&format!("ZTILE{i}"))?
                .unwrap_or(default)
                .clamp(1, ax.max(1) as i64) as usize;
            // a tile is a contiguous range of the flattened image when it spans the whole of
            // every axis before the first one it cuts, and is one pixel thick after it
            if partial && t != 1 {
                return Ok((true, None));
            }
            if t < ax {
                partial = true;
            }
            len = len.saturating_mul(t);
        }
        Ok((true, Some(TileLayout { len, kind })))
    }

    /// Bytes of the current HDU's data unit without padding: NAXIS1*...*NAXISn*|BITPIX|/8
    /// plus PCOUNT, as the standard defines it.
    fn raw_data_bytes(&mut self) -> Result<u64> {
        let bitpix = self.key_i64_raw("BITPIX")?.unwrap_or(8).unsigned_abs() / 8;
        let naxis = self.key_i64_raw("NAXIS")?.unwrap_or(0);
        if naxis <= 0 {
            return Ok(0);
        }
        let mut n: u64 = 1;
        for i in 1..=naxis {
            let ax = self.key_i64_raw(&format!("NAXIS{i}"))?.unwrap_or(0);
            n = n.saturating_mul(u64::try_from(ax).unwrap_or(0));
        }
        let gcount = self.key_i64_raw("GCOUNT")?.unwrap_or(1).max(0) as u64;
        let pcount = self.key_i64_raw("PCOUNT")?.unwrap_or(0).max(0) as u64;
        Ok(bitpix
            .saturating_mul(gcount)
            .saturating_mul(pcount.saturating_add(n)))
    }

    fn image_npix_raw(&mut self, name: &str) -> Result<usize> {
        let fptr = self.raw();
        let mut status = 0;
        let mut naxis: c_int = 0;
        // SAFETY: valid handle; local outputs.
        unsafe { ffi::ffgidm(fptr, &mut naxis, &mut status) };
        if status != 0 {
            return Err(self.err(Some(name), status_text(status)));
        }
        if naxis <= 0 {
            return Ok(0);
        }
        let mut axes = vec![0i64; naxis as usize];
        // SAFETY: axes has naxis elements.
        unsafe { ffi::ffgiszll(fptr, naxis, axes.as_mut_ptr(), &mut status) };
        if status != 0 {
            return Err(self.err(Some(name), status_text(status)));
        }
        let mut n: usize = 1;
        for a in axes {
            n = n.saturating_mul(usize::try_from(a).unwrap_or(0));
        }
        Ok(n)
    }

    /// The HDU named `name` (case-insensitive), if any.
    pub fn find(&self, name: &str) -> Option<&HduEntry> {
        self.hdus.iter().find(|h| h.name.eq_ignore_ascii_case(name))
    }

    fn goto(&mut self, name: &str) -> Result<HduEntry> {
        let entry = self
            .find(name)
            .cloned()
            .ok_or_else(|| self.err(Some(name), format!("HDU '{name}' not found")))?;
        self.goto_num(&entry)?;
        Ok(entry)
    }

    fn goto_num(&mut self, entry: &HduEntry) -> Result<()> {
        let fptr = self.raw();
        let mut status = 0;
        let mut hdutype = 0;
        // SAFETY: valid handle; entry.num was indexed from this file.
        unsafe { ffi::ffmahd(fptr, entry.num, &mut hdutype, &mut status) };
        if status != 0 {
            return Err(self.err(Some(&entry.name), status_text(status)));
        }
        Ok(())
    }

    fn key_string_raw(&mut self, key: &str) -> Result<Option<String>> {
        let Some(ckey) = key_cstring(key) else {
            return Ok(None);
        };
        let fptr = self.raw();
        let mut buf = [0 as c_char; 72];
        let mut status = 0;
        // SAFETY: value buffer holds FLEN_VALUE (71) characters plus one; comment may be null.
        unsafe {
            ffi::ffgkys(
                fptr,
                ckey.as_ptr(),
                buf.as_mut_ptr(),
                ptr::null_mut(),
                &mut status,
            )
        };
        match status {
            0 => Ok(Some(buf_to_string(&buf).trim_end().to_string())),
            KEY_NO_EXIST | VALUE_UNDEFINED => {
                // SAFETY: clears the error message stack only.
                unsafe { ffi::ffcmsg() };
                Ok(None)
            }
            s => Err(self.err(None, format!("header key {key}: {}", status_text(s)))),
        }
    }

    fn key_i64_raw(&mut self, key: &str) -> Result<Option<i64>> {
        let Some(ckey) = key_cstring(key) else {
            return Ok(None);
        };
        let fptr = self.raw();
        let mut v: i64 = 0;
        let mut status = 0;
        // SAFETY: valid handle and key; local output.
        unsafe { ffi::ffgkyjj(fptr, ckey.as_ptr(), &mut v, ptr::null_mut(), &mut status) };
        match status {
            0 => Ok(Some(v)),
            KEY_NO_EXIST | VALUE_UNDEFINED => {
                // SAFETY: clears the error message stack only.
                unsafe { ffi::ffcmsg() };
                Ok(None)
            }
            s => Err(self.err(
                None,
                format!("header key {key} is not an integer: {}", status_text(s)),
            )),
        }
    }

    fn key_f64_raw(&mut self, key: &str) -> Result<Option<f64>> {
        let Some(ckey) = key_cstring(key) else {
            return Ok(None);
        };
        let fptr = self.raw();
        let mut v: f64 = 0.0;
        let mut status = 0;
        // SAFETY: valid handle and key; local output.
        unsafe { ffi::ffgkyd(fptr, ckey.as_ptr(), &mut v, ptr::null_mut(), &mut status) };
        match status {
            0 => Ok(Some(v)),
            KEY_NO_EXIST | VALUE_UNDEFINED => {
                // SAFETY: clears the error message stack only.
                unsafe { ffi::ffcmsg() };
                Ok(None)
            }
            s => Err(self.err(
                None,
                format!("header key {key} is not a number: {}", status_text(s)),
            )),
        }
    }

    /// Integer header key of HDU `hdu`; `Ok(None)` when absent.
    pub fn key_i64(&mut self, hdu: &str, key: &str) -> Result<Option<i64>> {
        self.goto(hdu)?;
        self.key_i64_raw(key).map_err(|e| self.with_hdu(e, hdu))
    }

    /// Floating-point header key of HDU `hdu`; `Ok(None)` when absent.
    pub fn key_f64(&mut self, hdu: &str, key: &str) -> Result<Option<f64>> {
        self.goto(hdu)?;
        self.key_f64_raw(key).map_err(|e| self.with_hdu(e, hdu))
    }

    fn with_hdu(&self, e: Error, hdu: &str) -> Error {
        match e {
            Error::Fits {
                path,
                hdu: None,
                msg,
            } => Error::Fits {
                path,
                hdu: Some(hdu.to_string()),
                msg,
            },
            e => e,
        }
    }

    /// Read every column of the table HDU `hdu`.
    pub fn read_table(&mut self, hdu: &str) -> Result<Columns> {
        let entry = self.goto(hdu)?;
        self.read_current_table(&entry)
    }

    /// Read every column of the table at 1-based HDU number `num`.
    pub fn read_table_num(&mut self, num: usize) -> Result<Columns> {
        let entry = self
            .hdus
            .iter()
            .find(|h| h.num as usize == num)
            .cloned()
            .ok_or_else(|| {
                self.err(
                    Some(&format!("#{num}")),
                    format!("HDU number {num} not found"),
                )
            })?;
        self.goto_num(&entry)?;
        self.read_current_table(&entry)
    }

    fn read_current_table(&mut self, entry: &HduEntry) -> Result<Columns> {
        let hdu = entry.name.clone();
        let terr = |me: &Self, msg: String| me.err(Some(&hdu), msg);
        if entry.kind != HduKind::Table {
            return Err(terr(self, format!("HDU '{hdu}' is not a table")));
        }
        let fptr = self.raw();
        let mut status = 0;
        let mut nrows: i64 = 0;
        let mut ncols: c_int = 0;
        // SAFETY: valid handle; local outputs.
        unsafe {
            ffi::ffgnrwll(fptr, &mut nrows, &mut status);
            ffi::ffgncl(fptr, &mut ncols, &mut status);
        }
        if status != 0 {
            return Err(terr(self, status_text(status)));
        }
        let nrows = usize::try_from(nrows).unwrap_or(0);
        let mut cols = Vec::with_capacity(ncols.max(0) as usize);
        for colnum in 1..=ncols {
            let name = self
                .key_string_raw(&format!("TTYPE{colnum}"))?
                .unwrap_or_else(|| format!("col{colnum}"));
            let col = self
                .read_column(colnum, &name, nrows, entry.data_bytes)
                .map_err(|msg| terr(self, format!("column '{name}': {msg}")))?;
            cols.push(col);
        }
        Ok(Columns::new(nrows, cols))
    }

    fn read_column(
        &mut self,
        colnum: c_int,
        name: &str,
        nrows: usize,
        data_bytes: u64,
    ) -> std::result::Result<Column, String> {
        let fptr = self.raw();
        let mut status = 0;
        let (mut typecode, mut repeat, mut width) = (0 as c_int, 0i64, 0i64);
        // SAFETY: valid handle, colnum within 1..=ncols; local outputs.
        unsafe {
            ffi::ffeqtyll(
                fptr,
                colnum,
                &mut typecode,
                &mut repeat,
                &mut width,
                &mut status,
            )
        };
        if status != 0 {
            return Err(status_text(status));
        }
        let repeat = usize::try_from(repeat).unwrap_or(0);
        let width = usize::try_from(width).unwrap_or(0);
        let kind = match typecode {
            11 => ColKind::U8,
            12 => ColKind::I8,
            14 => ColKind::Bool,
            16 => ColKind::Str { width },
            20 => ColKind::U16,
            21 => ColKind::I16,
            30 | 40 => ColKind::U32,
            31 | 41 => ColKind::I32,
            42 => ColKind::F32,
            80 => ColKind::U64,
            81 => ColKind::I64,
            82 => ColKind::F64,
            t => {
                return Ok(Column::new(
                    name,
                    ColKind::Unsupported,
                    0,
                    ColumnData::Unsupported(format!("cfitsio type code {t}")),
                ))
            }
        };
        let mut col = match kind {
            ColKind::Str { width } => {
                let nstr = repeat.checked_div(width).unwrap_or(0);
                let n = nrows.checked_mul(nstr).ok_or("too many values")?;
                if n as u64 > data_bytes {
                    return Err(format!("{n} strings cannot fit in {data_bytes} bytes"));
                }
                let data = self.read_strings(colnum, n, width.max(repeat))?;
                Column::new(name, kind, nstr, ColumnData::Str(data))
            }
            ColKind::Bool => {
                let n = self.checked_count(nrows, repeat, data_bytes)?;
                let mut v = vec![0 as c_char; n];
                self.read_numeric(colnum, ffi::TLOGICAL as c_int, n, v.as_mut_ptr().cast())?;
                Column::new(
                    name,
                    kind,
                    repeat,
                    ColumnData::Bool(v.into_iter().map(|c| c != 0).collect()),
                )
            }
            ColKind::F32 | ColKind::F64 => {
                let n = self.checked_count(nrows, repeat, data_bytes)?;
                let mut v = vec![0f64; n];
                self.read_numeric(colnum, ffi::TDOUBLE as c_int, n, v.as_mut_ptr().cast())?;
                Column::new(name, kind, repeat, ColumnData::Float(v))
            }
            _ => {
                let n = self.checked_count(nrows, repeat, data_bytes)?;
                let mut v = vec![0i64; n];
                self.read_numeric(colnum, ffi::TLONGLONG as c_int, n, v.as_mut_ptr().cast())?;
                Column::new(name, kind, repeat, ColumnData::Int(v))
            }
        };
        if repeat > 1 {
            col.dims = self.tdim(colnum);
        }
        Ok(col)
    }

    fn checked_count(
        &self,
        nrows: usize,
        repeat: usize,
        data_bytes: u64,
    ) -> std::result::Result<usize, String> {
        let n = nrows.checked_mul(repeat).ok_or("too many values")?;
        if n as u64 > data_bytes {
            return Err(format!(
                "{nrows} rows x {repeat} values cannot fit in {data_bytes} bytes"
            ));
        }
        Ok(n)
    }

    fn tdim(&mut self, colnum: c_int) -> Option<Vec<usize>> {
        // Only report a TDIM that is actually present in the header.
        self.key_string_raw(&format!("TDIM{colnum}")).ok()??;
        let fptr = self.raw();
        let mut status = 0;
        let mut naxis: c_int = 0;
        let mut axes = [0i64; 16];
        // SAFETY: axes holds maxdim = 16 values.
        unsafe { ffi::ffgtdmll(fptr, colnum, 16, &mut naxis, axes.as_mut_ptr(), &mut status) };
        if status != 0 {
            // SAFETY: clears the error message stack only.
            unsafe { ffi::ffcmsg() };
            return None;
        }
        let naxis = (naxis.max(0) as usize).min(16);
        Some(
            axes[..naxis]
                .iter()
                .map(|&a| usize::try_from(a).unwrap_or(0))
                .collect(),
        )
    }

    fn read_numeric(
        &mut self,
        colnum: c_int,
        datatype: c_int,
        n: usize,
        out: *mut c_void,
    ) -> std::result::Result<(), String> {
        if n == 0 {
            return Ok(());
        }
        let fptr = self.raw();
        let mut status = 0;
        let mut anynul = 0;
        // SAFETY: `out` points to n elements of the C type matching `datatype` (callers
        // allocate them); nulval null disables null substitution.
        unsafe {
            ffi::ffgcv(
                fptr,
                datatype,
                colnum,
                1,
                1,
                n as i64,
                ptr::null_mut(),
                out,
                &mut anynul,
                &mut status,
            )
        };
        if status != 0 {
            return Err(status_text(status));
        }
        Ok(())
    }

    fn read_strings(
        &mut self,
        colnum: c_int,
        n: usize,
        width: usize,
    ) -> std::result::Result<Vec<String>, String> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let stride = width + 1;
        let mut storage = vec![0 as c_char; n.checked_mul(stride).ok_or("too many strings")?];
        let base = storage.as_mut_ptr();
        // SAFETY: every pointer addresses a distinct `stride`-byte slot inside `storage`.
        let mut ptrs: Vec<*mut c_char> = (0..n).map(|i| unsafe { base.add(i * stride) }).collect();
        let fptr = self.raw();
        let mut status = 0;
        let mut anynul = 0;
        let mut nul = [0 as c_char; 1];
        // SAFETY: each of the n buffers holds width+1 bytes, enough for a string of the
        // column's width plus the terminator cfitsio writes.
        unsafe {
            ffi::ffgcvs(
                fptr,
                colnum,
                1,
                1,
                n as i64,
                nul.as_mut_ptr(),
                ptrs.as_mut_ptr(),
                &mut anynul,
                &mut status,
            )
        };
        if status != 0 {
            return Err(status_text(status));
        }
        Ok(storage
            .chunks(stride)
            .map(|c| buf_to_string(c).trim_end().to_string())
            .collect())
    }

    /// Pixels `[first, first + n)` of the flattened image HDU `entry` as f64, into `out`
    /// (resized to `n`).
    pub fn read_pixels_f64(
        &mut self,
        entry: &HduEntry,
        first: usize,
        n: usize,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        self.check_range(entry, first, n)?;
        if let Some(parts) = self.cached_tiles(entry, first, n, false)? {
            out.clear();
            out.reserve(n);
            for (tile, a, b) in parts {
                match &*tile {
                    TileData::F64(v) => out.extend_from_slice(self.part(entry, v, a, b)?),
                    TileData::I32(v) => {
                        out.extend(self.part(entry, v, a, b)?.iter().map(|&x| f64::from(x)))
                    }
                }
            }
            return Ok(());
        }
        out.clear();
        out.resize(n, 0.0);
        self.read_pixels(
            entry,
            first,
            n,
            ffi::TDOUBLE as c_int,
            out.as_mut_ptr().cast(),
        )
    }

    /// Pixels `[first, first + n)` of the flattened image HDU `entry` as i32.
    pub fn read_pixels_i32(
        &mut self,
        entry: &HduEntry,
        first: usize,
        n: usize,
        out: &mut Vec<i32>,
    ) -> Result<()> {
        self.check_range(entry, first, n)?;
        if let Some(parts) = self.cached_tiles(entry, first, n, true)? {
            out.clear();
            out.reserve(n);
            for (tile, a, b) in parts {
                match &*tile {
                    TileData::I32(v) => out.extend_from_slice(self.part(entry, v, a, b)?),
                    TileData::F64(_) => {
                        return Err(self.err(Some(&entry.name), "tile cache type mismatch"))
                    }
                }
            }
            return Ok(());
        }
        out.clear();
        out.resize(n, 0);
        self.read_pixels(entry, first, n, ffi::TINT as c_int, out.as_mut_ptr().cast())
    }

    fn part<'a, T>(&self, entry: &HduEntry, v: &'a [T], a: usize, b: usize) -> Result<&'a [T]> {
        v.get(a..b).ok_or_else(|| {
            self.err(
                Some(&entry.name),
                format!("decompressed tile holds {} pixels, not {b}", v.len()),
            )
        })
    }

    fn check_range(&self, entry: &HduEntry, first: usize, n: usize) -> Result<()> {
        if entry.kind != HduKind::Image {
            return Err(self.err(Some(&entry.name), "not an image HDU"));
        }
        match first.checked_add(n) {
            Some(end) if end <= entry.npix => Ok(()),
            _ => Err(self.err(
                Some(&entry.name),
                format!(
                    "pixels {first}..{} outside the HDU's {} pixels",
                    first.saturating_add(n),
                    entry.npix
                ),
            )),
        }
    }

    /// The decompressed tiles covering `[first, first + n)` with the range to take from each,
    /// loading missing tiles into the cache; `None` when the HDU is not cached (not
    /// tile-compressed, non-contiguous tiles, tiles over the cache budget, or an i32 read of a
    /// float image).
    #[allow(clippy::type_complexity)]
    fn cached_tiles(
        &mut self,
        entry: &HduEntry,
        first: usize,
        n: usize,
        want_i32: bool,
    ) -> Result<Option<Vec<(Arc<TileData>, usize, usize)>>> {
        let Some(layout) = entry.tiles else {
            return Ok(None);
        };
        let elem = match layout.kind {
            TileKind::I32 => 4,
            TileKind::F64 => 8,
        };
        if n == 0
            || layout.len == 0
            || (want_i32 && layout.kind != TileKind::I32)
            || layout.len.saturating_mul(elem) > TILE_CACHE_BYTES
        {
            return Ok(None);
        }
        let end = first + n;
        let (t0, t1) = (first / layout.len, (end - 1) / layout.len);
        let mut parts = Vec::with_capacity(t1 - t0 + 1);
        for t in t0..=t1 {
            let tstart = t * layout.len;
            let tend = (tstart + layout.len).min(entry.npix);
            let cached = self.lock_cache().get((entry.num, t));
            let tile = match cached {
                Some(d) => d,
                None => {
                    // decompressed without holding the lock (another handle may do the same
                    // tile meanwhile: both results are equal)
                    let d = Arc::new(self.load_tile(entry, layout.kind, tstart, tend - tstart)?);
                    self.lock_cache().insert((entry.num, t), Arc::clone(&d));
                    d
                }
            };
            if tile.len() != tend - tstart {
                return Err(self.err(
                    Some(&entry.name),
                    format!(
                        "decompressed tile {t} holds {} pixels, expected {}",
                        tile.len(),
                        tend - tstart
                    ),
                ));
            }
            parts.push((tile, first.max(tstart) - tstart, end.min(tend) - tstart));
        }
        Ok(Some(parts))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, TileCache> {
        // the cache holds no invariant a panic could break beyond its byte count
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load_tile(
        &mut self,
        entry: &HduEntry,
        kind: TileKind,
        first: usize,
        n: usize,
    ) -> Result<TileData> {
        Ok(match kind {
            TileKind::I32 => {
                let mut v = vec![0i32; n];
                self.read_pixels(entry, first, n, ffi::TINT as c_int, v.as_mut_ptr().cast())?;
                TileData::I32(v)
            }
            TileKind::F64 => {
                let mut v = vec![0f64; n];
                self.read_pixels(
                    entry,
                    first,
                    n,
                    ffi::TDOUBLE as c_int,
                    v.as_mut_ptr().cast(),
                )?;
                TileData::F64(v)
            }
        })
    }

    /// Direct cfitsio read of `n` pixels from `first` (range already checked) into `out`, which
    /// holds `n` elements of `datatype`.
    fn read_pixels(
        &mut self,
        entry: &HduEntry,
        first: usize,
        n: usize,
        datatype: c_int,
        out: *mut c_void,
    ) -> Result<()> {
        self.check_range(entry, first, n)?;
        if n == 0 {
            return Ok(());
        }
        self.goto_num(entry)?;
        let fptr = self.raw();
        let mut status = 0;
        let mut anynul = 0;
        // Undefined pixels of a compressed float image (ZBLANK) come back as NaN, not as the
        // unquantized blank integer; plain float images keep their NaNs either way.
        let mut fnul = f32::NAN;
        let mut dnul = f64::NAN;
        let nulval: *mut c_void = match (entry.compressed, datatype) {
            (true, t) if t == ffi::TDOUBLE as c_int => (&mut dnul as *mut f64).cast(),
            (true, t) if t == ffi::TFLOAT as c_int => (&mut fnul as *mut f32).cast(),
            _ => ptr::null_mut(),
        };
        // SAFETY: `out` holds n elements of the type matching `datatype`; the range was
        // checked against the image size; nulval is null or points to one value of that type.
        unsafe {
            ffi::ffgpv(
                fptr,
                datatype,
                first as i64 + 1,
                n as i64,
                nulval,
                out,
                &mut anynul,
                &mut status,
            )
        };
        if status != 0 {
            return Err(self.err(Some(&entry.name), status_text(status)));
        }
        Ok(())
    }
}
