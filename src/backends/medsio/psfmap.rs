//! PSF map files (`ngmixit --psf-map`) and the DES image-name conventions used to look PSFEx
//! files up in them (ngmixer `Y3DESMEDSImageIO._load_psf_map`, `_get_expccd_and_key`).
//!
//! A map file has one entry per line, fields separated by white space:
//!
//! * `key path` (standard style): `key` is `<expname>-<ccd>` as derived from the image file
//!   name by [`expccd_key`], e.g. `D00233601-03`;
//! * `expnum ccdnum path` (DESDM style): the key is `D<expnum as 8 digits>-<ccdnum as 2
//!   digits>`; `expnum = -9999` marks the coadd PSF of the band.
//!
//! ngmixer merges the single-epoch entries of all map files into one dictionary (a later line
//! replaces an earlier one with the same key) and takes the coadd entry of map file `b` for
//! band `b`. Paths may contain environment variables (`$VAR`, `${VAR}`), expanded when the
//! file is opened as `os.path.expandvars` does. Blank lines and lines starting with `#` are
//! skipped (ngmixer rejects blank lines); any other line without 2 or 3 fields is an error that
//! names the file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a map entry came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOrigin {
    /// The map file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for MapOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "psf map {}:{}", self.file.display(), self.line)
    }
}

/// One PSF path with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// The path as written in the map (environment variables not yet expanded).
    pub path: String,
    /// File and line of the entry.
    pub origin: MapOrigin,
}

/// The merged PSF map of a run: single-epoch entries by key, coadd entries by band.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsfMap {
    se: HashMap<String, MapEntry>,
    coadd: Vec<Option<MapEntry>>,
    files: Vec<PathBuf>,
}

impl PsfMap {
    /// Read map files, one per band, in band order.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable file; [`Error::Invalid`] naming the file and line for a
    /// malformed line (wrong number of fields, non-integer `expnum`/`ccdnum`) or a second coadd
    /// entry in one file.
    pub fn read(files: &[PathBuf]) -> Result<Self> {
        let mut map = PsfMap::default();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|source| Error::Io {
                path: f.clone(),
                source,
            })?;
            map.add_text(f, &text)?;
        }
        Ok(map)
    }

    /// Add the entries of one map file (the next band) given its text.
    ///
    /// # Errors
    /// As [`PsfMap::read`].
    pub fn add_text(&mut self, file: &Path, text: &str) -> Result<()> {
        let mut coadd: Option<MapEntry> = None;
        for (i, line) in text.lines().enumerate() {
            let origin = MapOrigin {
                file: file.to_path_buf(),
                line: i + 1,
            };
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let fs: Vec<&str> = t.split_whitespace().collect();
            let bad = |why: &str| {
                Error::Invalid(format!(
                    "{origin}: badly formatted psf map line '{t}': {why}"
                ))
            };
            let (key, path) = match fs.as_slice() {
                [key, path] => (key.to_string(), path.to_string()),
                [exp, ccd, path] => {
                    let expnum: i64 = exp.parse().map_err(|_| bad("expnum is not an integer"))?;
                    let ccdnum: i64 = ccd.parse().map_err(|_| bad("ccdnum is not an integer"))?;
                    if expnum == -9999 {
                        if let Some(prev) = &coadd {
                            return Err(bad(&format!(
                                "second coadd entry (expnum -9999); the first is at line {}",
                                prev.origin.line
                            )));
                        }
                        coadd = Some(MapEntry {
                            path: path.to_string(),
                            origin,
                        });
                        continue;
                    }
                    (format!("D{expnum:08}-{ccdnum:02}"), path.to_string())
                }
                _ => {
                    return Err(bad(&format!(
                        "expected 2 fields (key path) or 3 (expnum ccdnum path), found {}",
                        fs.len()
                    )))
                }
            };
            self.se.insert(key, MapEntry { path, origin });
        }
        self.coadd.push(coadd);
        self.files.push(file.to_path_buf());
        Ok(())
    }

    /// Number of map files (bands).
    pub fn nfiles(&self) -> usize {
        self.files.len()
    }

    /// The map files, in band order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Number of single-epoch entries.
    pub fn len(&self) -> usize {
        self.se.len()
    }

    /// True without single-epoch entries.
    pub fn is_empty(&self) -> bool {
        self.se.is_empty()
    }

    /// The single-epoch entry for `key` (`<expname>-<ccd>`).
    pub fn se(&self, key: &str) -> Option<&MapEntry> {
        self.se.get(key)
    }

    /// The coadd entry of band `band` (line `-9999 ccd path` of map file `band`).
    pub fn coadd(&self, band: usize) -> Option<&MapEntry> {
        self.coadd.get(band).and_then(|c| c.as_ref())
    }

    /// Look up the PSF path of a single-epoch image, expanded.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the image path (unparsable name) or the key and the map files
    /// (no entry).
    pub fn se_path_for_image(&self, image_path: &str) -> Result<(PathBuf, &MapEntry)> {
        let (_, _, key) = expccd_key(image_path).ok_or_else(|| {
            Error::Invalid(format!(
                "cannot derive the exposure/CCD key of image '{image_path}' for the psf map \
                 (expected DES*_*_<exp>_*_c<ccd>_* or <exp>_*_c<ccd>_*)"
            ))
        })?;
        let e = self.se.get(&key).ok_or_else(|| {
            Error::Invalid(format!(
                "psf map has no entry '{key}' (image '{image_path}'); map files: {}",
                self.files_list()
            ))
        })?;
        Ok((PathBuf::from(expand_vars(&e.path)), e))
    }

    fn files_list(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `(expname, ccd, key)` of a DES image file name, as ngmixer's `_get_expccd_and_key`: the
/// base name is split at `_`; names starting with `DES` take fields 2 and 4, others fields 0
/// and 2; the CCD field loses its first character (`c03` → `03`); `key = expname-ccd`.
/// `None` when the name has too few fields.
pub fn expccd_key(image_path: &str) -> Option<(String, String, String)> {
    let bname = image_path
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or(image_path)
        .to_string();
    let fs: Vec<&str> = bname.split('_').collect();
    let (e, c) = if bname.starts_with("DES") {
        (2, 4)
    } else {
        (0, 2)
    };
    let expname = fs.get(e)?.to_string();
    let ccd_field = fs.get(c)?;
    let ccd: String = ccd_field.chars().skip(1).collect();
    let key = format!("{expname}-{ccd}");
    Some((expname, ccd, key))
}

/// Expand `$VAR` and `${VAR}` from the environment; unknown variables are left as written
/// (Python `os.path.expandvars`).
pub fn expand_vars(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            // ${NAME}
            if b.get(i + 1) == Some(&b'{') {
                if let Some(end) = s[i + 2..].find('}') {
                    let name = &s[i + 2..i + 2 + end];
                    let valid = !name.is_empty()
                        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
                    match (valid, std::env::var(name)) {
                        (true, Ok(v)) => out.push_str(&v),
                        _ => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            } else {
                let n = s[i + 1..]
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                if n > 0 {
                    let name = &s[i + 1..i + 1 + n];
                    match std::env::var(name) {
                        Ok(v) => out.push_str(&v),
                        Err(_) => out.push_str(&s[i..i + 1 + n]),
                    }
                    i += 1 + n;
                    continue;
                }
            }
        }
        // copy one UTF-8 character
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_image_names() {
        assert_eq!(
            expccd_key("/a/b/D00233601_i_c03_r2357p01_immasked.fits.fz"),
            Some(("D00233601".into(), "03".into(), "D00233601-03".into()))
        );
        assert_eq!(
            expccd_key("DES0001-4914_r2590p01_D00233601_i_c43_immasked.fits"),
            Some(("D00233601".into(), "43".into(), "D00233601-43".into()))
        );
        assert_eq!(expccd_key("coadd.fits"), None);
    }

    #[test]
    fn parse_both_styles() {
        let mut m = PsfMap::default();
        m.add_text(
            Path::new("g.dat"),
            "D00233601-03 /p/a.psf\n\n# comment\n233602 4 /p/b.psf\n-9999 -9999 /p/coadd_g.psf\n",
        )
        .unwrap();
        m.add_text(Path::new("r.dat"), "233602 4 /p/b_r.psf\n")
            .unwrap();
        assert_eq!(m.nfiles(), 2);
        assert_eq!(m.se("D00233601-03").unwrap().path, "/p/a.psf");
        // later files replace earlier keys, as a merged python dict
        assert_eq!(m.se("D00233602-04").unwrap().path, "/p/b_r.psf");
        assert_eq!(m.coadd(0).unwrap().path, "/p/coadd_g.psf");
        assert_eq!(m.coadd(0).unwrap().origin.line, 5);
        assert!(m.coadd(1).is_none());
        let err = m
            .add_text(Path::new("bad.dat"), "a b c d\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.dat:1"), "{err}");
        let err = m
            .add_text(Path::new("bad2.dat"), "x\n12 x /p\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad2.dat:1") && err.contains("found 1"),
            "{err}"
        );
    }

    #[test]
    fn expandvars() {
        std::env::set_var("NGMIXER_PSFMAP_TEST", "/data");
        assert_eq!(expand_vars("$NGMIXER_PSFMAP_TEST/x"), "/data/x");
        assert_eq!(expand_vars("${NGMIXER_PSFMAP_TEST}x"), "/datax");
        assert_eq!(
            expand_vars("$NGMIXER_UNSET_VAR_XYZ/x$"),
            "$NGMIXER_UNSET_VAR_XYZ/x$"
        );
        assert_eq!(expand_vars("${unterminated"), "${unterminated");
        assert_eq!(expand_vars("é$"), "é$");
    }
}
