//! The file side of a run (feature `des-y1`): output checks before any work, staged writes of
//! the catalogue, FITS checkpoints that carry the run's identity, and the `meta_data` table.

use std::path::{Path, PathBuf};

use crate::backends::meds::{read_table, read_table_num, Columns};
use crate::error::{Error, Result};
use crate::output::convert::{table_from_columns, table_with_schema};
use crate::output::fits::{temp_prefix, write_hdus, Hdu, IntKey};
use crate::output::{Catalog, ColSpec, Kind, Table};
use crate::run::{CheckpointStore, Resume, RunIdentity};

fn invalid(msg: String) -> Error {
    Error::Usage(msg)
}

/// The checkpoint name of an output: `.fits`/`.fit` replaced by `-checkpoint.fits` (spec §3.8).
pub fn checkpoint_path(out: &Path) -> PathBuf {
    let s = out.to_string_lossy();
    let base = s
        .strip_suffix(".fits")
        .or_else(|| s.strip_suffix(".fit"))
        .unwrap_or(&s);
    PathBuf::from(format!("{base}-checkpoint.fits"))
}

/// Canonical form of a path that may not exist yet (its directory must).
fn canonical_target(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Some(c);
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

/// A checked output path: not an input, a regular file or absent, in a writable directory.
#[derive(Debug, Clone)]
pub struct OutputTarget {
    path: PathBuf,
    checkpoint: PathBuf,
}

impl OutputTarget {
    /// Check `out` before any work: its directory exists and can be written (a file is created
    /// there and removed), it is a regular file if it exists, and neither it nor its checkpoint
    /// is one of `inputs` (`(role, path)`, compared by canonical path and by inode). Temporary
    /// files of an earlier, killed run of the same output are removed.
    ///
    /// # Errors
    /// [`Error::Invalid`] or [`Error::Io`] naming the output path and what is wrong.
    pub fn prepare(out: &Path, inputs: &[(String, PathBuf)]) -> Result<Self> {
        let shown = out.display();
        if out.as_os_str().is_empty() || out.file_name().is_none() {
            return Err(invalid(format!("output path {shown:?} names no file")));
        }
        let checkpoint = checkpoint_path(out);
        for p in [out, checkpoint.as_path()] {
            if let Ok(m) = std::fs::metadata(p) {
                if !m.is_file() {
                    let what = if m.is_dir() {
                        "a directory"
                    } else {
                        "not a regular file (a device, socket or pipe)"
                    };
                    return Err(invalid(format!(
                        "output {} exists and is {what}; give the path of a FITS file",
                        p.display()
                    )));
                }
            }
        }
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "output {shown}: {} is not a directory",
                    dir.display()
                )))
            }
            Err(e) => {
                return Err(invalid(format!(
                    "output {shown}: directory {} does not exist ({e})",
                    dir.display()
                )))
            }
        }
        for p in [out, checkpoint.as_path()] {
            let target = canonical_target(p);
            for (role, input) in inputs {
                let same_path = target.is_some() && target == std::fs::canonicalize(input).ok();
                if same_path || same_inode(p, input) {
                    return Err(invalid(format!(
                        "output {} is the {role} input {}; refusing to overwrite an input",
                        p.display(),
                        input.display()
                    )));
                }
            }
        }
        // writable? (permission bits say nothing for root, read-only mounts, full disks)
        let probe = dir.join(format!("{}probe{}", temp_prefix(out), std::process::id()));
        std::fs::write(&probe, b"probe").map_err(|e| {
            invalid(format!(
                "output {shown}: cannot write in directory {} ({e})",
                dir.display()
            ))
        })?;
        let _ = std::fs::remove_file(&probe);
        let t = Self {
            path: out.to_path_buf(),
            checkpoint,
        };
        t.remove_stale_temporaries();
        Ok(t)
    }

    /// The output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint path.
    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    /// Remove `.<name>.tmp-<pid>` files of the output and the checkpoint left by processes that
    /// no longer run; returns how many were removed.
    pub fn remove_stale_temporaries(&self) -> usize {
        let mut n = 0;
        for p in [&self.path, &self.checkpoint] {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let prefix = temp_prefix(p);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(&prefix) else {
                    continue;
                };
                let pid = rest.strip_prefix("probe").unwrap_or(rest);
                let Ok(pid) = pid.parse::<u32>() else {
                    continue;
                };
                let alive = pid != std::process::id()
                    && Path::new("/proc").is_dir()
                    && Path::new(&format!("/proc/{pid}")).exists();
                if !alive && std::fs::remove_file(ent.path()).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Write the final catalogue (`model_fits`, `epoch_data`, `nbrs_data` if it has rows,
    /// `meta_data`, `githashes`) and then remove the checkpoint. `epoch_keys` are extra cards of
    /// `epoch_data` (the dropped-epoch counts).
    ///
    /// # Errors
    /// Any write error, naming the output; the checkpoint is then kept.
    pub fn write_catalog(
        &self,
        cat: &Catalog,
        meta: &Table,
        githashes: &Table,
        epoch_keys: &[IntKey],
    ) -> Result<()> {
        let mut hdus = vec![
            Hdu::new("model_fits", &cat.model_fits),
            Hdu {
                name: "epoch_data",
                table: &cat.epoch_data,
                keys: epoch_keys,
            },
        ];
        if cat.nbrs_data.nrows() > 0 {
            hdus.push(Hdu::new("nbrs_data", &cat.nbrs_data));
        }
        hdus.push(Hdu::new("meta_data", meta));
        hdus.push(Hdu::new("githashes", githashes));
        write_hdus(&self.path, &hdus)?;
        if self.checkpoint.exists() {
            std::fs::remove_file(&self.checkpoint).map_err(|source| Error::Io {
                path: self.checkpoint.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// A FITS checkpoint (`model_fits`, `epoch_data`, `nbrs_data`, `checkpoint_data` with
/// `curr_fofindex` and the run identity as JSON), resumed only by the same run.
#[derive(Debug, Clone)]
pub struct FitsCheckpoint {
    path: PathBuf,
    identity: RunIdentity,
}

impl FitsCheckpoint {
    /// The checkpoint at `path` of the run `identity`.
    pub fn new(path: impl Into<PathBuf>, identity: RunIdentity) -> Self {
        Self {
            path: path.into(),
            identity,
        }
    }

    fn refuse(&self, why: String) -> Error {
        invalid(format!(
            "checkpoint {} {why}; delete it to start the run afresh",
            self.path.display()
        ))
    }
}

impl CheckpointStore for FitsCheckpoint {
    fn load(&self, empty: &Catalog) -> Result<Option<Resume>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let cd = read_table(&self.path, "checkpoint_data")
            .map_err(|e| self.refuse(format!("cannot be read ({e})")))?;
        let ident = cd
            .get("run_identity")
            .and_then(|c| c.as_str())
            .and_then(|v| v.first())
            .ok_or_else(|| {
                self.refuse("has no run identity (written by another program or version)".into())
            })?;
        let then = RunIdentity::from_json(ident).map_err(|e| self.refuse(e.to_string()))?;
        let diff = then.differences(&self.identity);
        if !diff.is_empty() {
            return Err(self.refuse(format!("belongs to another run: {}", diff.join("; "))));
        }
        let done = cd
            .get("curr_fofindex")
            .and_then(|c| c.as_int())
            .and_then(|v| v.first().copied())
            .ok_or_else(|| self.refuse("has no curr_fofindex".into()))?;
        let done =
            usize::try_from(done).map_err(|_| self.refuse(format!("has curr_fofindex {done}")))?;
        let what = |ext: &str| format!("checkpoint {} {ext}", self.path.display());
        let load = |ext: &str, schema: &Table| -> Result<Table> {
            let cols = read_table(&self.path, ext)?;
            table_with_schema(schema.specs(), &cols, &what(ext))
        };
        let mut catalog = empty.empty_like();
        catalog.model_fits = load("model_fits", &empty.model_fits)?;
        catalog.epoch_data = load("epoch_data", &empty.epoch_data)?;
        if !empty.nbrs_data.columns().is_empty() {
            if let Ok(cols) = read_table(&self.path, "nbrs_data") {
                catalog.nbrs_data =
                    table_with_schema(empty.nbrs_data.specs(), &cols, &what("nbrs_data"))?;
            }
        }
        Ok(Some(Resume {
            catalog,
            groups_done: done,
        }))
    }

    fn save(&self, catalog: &Catalog, groups_done: usize) -> Result<()> {
        let ident = self.identity.to_json();
        let mut cd = Table::new(vec![
            ColSpec::new("curr_fofindex", Kind::I64, &[], 0.0),
            ColSpec::new("run_identity", Kind::Str(ident.len().max(1)), &[], 0.0),
        ]);
        let r = cd.push_default();
        cd.set_named(r, "curr_fofindex", &[groups_done as f64])?;
        cd.set_str_named(r, "run_identity", &ident)?;
        let mut hdus = vec![
            Hdu::new("model_fits", &catalog.model_fits),
            Hdu::new("epoch_data", &catalog.epoch_data),
        ];
        if catalog.nbrs_data.nrows() > 0 {
            hdus.push(Hdu::new("nbrs_data", &catalog.nbrs_data));
        }
        hdus.push(Hdu::new("checkpoint_data", &cd));
        write_hdus(&self.path, &hdus)
    }
}

/// The `meta_data` table: per band, the first row of the MEDS `metadata` HDU (when the file
/// has one with rows) plus `ngmixer_config` and `meds_file`. String widths are the widest over
/// the bands, so no band's row is lost to a different path length.
///
/// # Errors
/// A MEDS file whose `metadata` HDU exists but cannot be read.
pub fn meta_table(config_file: &Path, data_files: &[PathBuf]) -> Result<Table> {
    let cfg_name = config_file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rows: Vec<Table> = Vec::with_capacity(data_files.len());
    for f in data_files {
        let t = match read_table(f, "metadata") {
            Ok(c) if c.nrows() > 0 => table_from_columns(&c).select(&[0]),
            Ok(_) => Table::default(),
            Err(Error::Fits { msg, .. }) if msg.contains("not found") => Table::default(),
            Err(e) => return Err(e),
        };
        rows.push(t);
    }
    // union schema in first-seen order, strings at their widest
    let mut specs: Vec<ColSpec> = Vec::new();
    for t in &rows {
        for s in t.specs() {
            match specs.iter_mut().find(|x| x.name == s.name) {
                Some(x) => {
                    if let (Kind::Str(a), Kind::Str(b)) = (x.kind, s.kind) {
                        x.kind = Kind::Str(a.max(b));
                    }
                }
                None => specs.push(s),
            }
        }
    }
    let wmax = data_files
        .iter()
        .map(|f| f.to_string_lossy().len())
        .max()
        .unwrap_or(1)
        .max(1);
    specs.push(ColSpec::new(
        "ngmixer_config",
        Kind::Str(cfg_name.len().max(1)),
        &[],
        0.0,
    ));
    specs.push(ColSpec::new("meds_file", Kind::Str(wmax), &[], 0.0));
    let mut out = Table::new(specs);
    for (t, f) in rows.iter().zip(data_files) {
        let r = out.push_default();
        if t.nrows() > 0 {
            for c in t.columns() {
                if let Kind::Str(_) = c.kind {
                    out.set_str_named(r, &c.name, &c.strs[0])?;
                } else if out.column(&c.name).map(|x| x.kind) == Some(c.kind) {
                    out.set_named(r, &c.name, &c.num[..c.repeat().min(c.num.len())])?;
                }
            }
        }
        out.set_str_named(r, "ngmixer_config", &cfg_name)?;
        out.set_str_named(r, "meds_file", &f.to_string_lossy())?;
    }
    Ok(out)
}

/// The `githashes` table (this program's version for both the ngmixer and the ngmix column).
pub fn githash_table() -> Table {
    let v = RunIdentity::program_version();
    let mut t = Table::new(vec![
        ColSpec::new("ngmixer_githash", Kind::Str(v.len()), &[], 0.0),
        ColSpec::new("ngmix_githash", Kind::Str(v.len()), &[], 0.0),
    ]);
    let r = t.push_default();
    for c in ["ngmixer_githash", "ngmix_githash"] {
        // both columns are in the schema just built
        let _ = t.set_str_named(r, c, &v);
    }
    t
}

/// The first table extension of a FITS file (what Python's `fitsio.read(path)` returns for a
/// file written with `fitsio.write`): HDU number 2, the first after the primary.
///
/// # Errors
/// [`Error::Fits`] naming the file.
pub fn read_first_table(path: &Path) -> Result<Columns> {
    read_table_num(path, 2)
}

/// Integer column `name` of a table read from `path` (errors name both).
///
/// # Errors
/// [`Error::Fits`] when the column is missing or not integer.
pub fn int_column<'a>(cols: &'a Columns, path: &Path, name: &str) -> Result<&'a [i64]> {
    cols.get(name)
        .and_then(|c| c.as_int())
        .ok_or_else(|| Error::Fits {
            path: path.to_path_buf(),
            hdu: Some("1".into()),
            msg: match cols.get(name) {
                Some(_) => format!("column '{name}' is not an integer column"),
                None => format!(
                    "no column '{name}' (columns: {})",
                    cols.names().collect::<Vec<_>>().join(", ")
                ),
            },
        })
}
