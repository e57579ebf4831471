//! Collation of chunk outputs into one tile catalogue (the megamixers' `collate` and `verify`,
//! spec §8.3; feature `des-y1`).
//!
//! A survey run splits a tile into chunks (object or FoF index ranges, [`chunk_ranges`]), fits
//! each with `ngmixit --fof-range A,B` to its own file, and collates the files in chunk order.
//! [`Collator::collate`] writes the collated file only when the chunk set is complete:
//!
//! * every listed file exists and is a readable ngmixit output;
//! * every chunk has the schema of the first (`model_fits`, `epoch_data`, `nbrs_data`), the
//!   same `meta_data` (apart from [`CollateOptions::meta_ignore`], by default the per-chunk
//!   `seed`) and the same `githashes`;
//! * every object (`id`) — and, for multi-object runs, every FoF (`fofid`) — occurs exactly
//!   once: no chunk repeats another's objects;
//! * when chunk ranges are known ([`Chunk::range`], e.g. from the file names
//!   `<tile>-<run>-<start>-<stop>.fits`, [`range_from_name`]), they follow each other without
//!   gap or overlap (from 0 to `N-1` when [`Collator::expect_total`] gives `N`), and each
//!   chunk holds exactly the objects (FoFs) of its range.
//!
//! Each problem names the chunk file(s) and the ids or ranges concerned ([`Problem`]). With
//! [`CollateOptions::skip_errors`] (the original's `--skip-errors`) a chunk with a problem is
//! skipped instead, and the [`Report`] lists the skipped chunks and the ranges left uncovered.
//! [`Collator::verify`] runs the same checks without writing anything and never skips.
//!
//! Differences from the Python original (spec §10): `githashes` is kept (from the first
//! chunk, checked equal in all chunks); `meta_data` comes from the first chunk (the original
//! took the last) and is checked consistent; `noblind` really disables blinding and the
//! `-blind` suffix ([`collated_name`]) means the shears were blinded; `<m>_weight` is the
//! shape-noise weight `1/(2σ² + C₁₁ + C₂₂)` instead of zeros; the `NDROP*` cards of
//! `epoch_data` are summed over the chunks.

mod blind;
mod des;
mod read;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

pub use blind::Blinding;
pub use des::{
    blind_table, derive_fields, derived_models, pick_band_rows, DesFields, DES_BIGVAL, DES_DEFVAL,
    MIN_MAG_FLUX,
};
pub use read::{EPOCH_DATA, GITHASHES, META_DATA, MODEL_FITS, NBRS_DATA};

use crate::config::{ConcatType, FittingConfig, MagzpRef};
use crate::error::Error;
use crate::output::fits::{write_hdus, Hdu};
use crate::output::{Kind, Table};
use read::{read_chunk, ChunkTables};

/// An inclusive range of object (or FoF) indices.
pub type Range = (i64, i64);

/// The chunks of `n` objects (FoFs) in chunks of `size`: `ceil(n/size)` ranges
/// `[k·size, min(k·size + size - 1, n - 1)]` (spec §8.1). `size == 0` gives no chunks.
pub fn chunk_ranges(n: usize, size: usize) -> Vec<Range> {
    if size == 0 {
        return Vec::new();
    }
    (0..n.div_ceil(size))
        .map(|k| {
            let a = k * size;
            (a as i64, (a + size - 1).min(n - 1) as i64)
        })
        .collect()
}

/// The range of a chunk file named `...-<start>-<stop>.fits` (both megamixer layouts,
/// `%d` and `%06d`), if its name has that form.
pub fn range_from_name(path: &Path) -> Option<Range> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".fits")
        .or_else(|| name.strip_suffix(".fit"))?;
    let mut it = stem.rsplitn(3, '-');
    let b: i64 = it.next()?.parse().ok()?;
    let a: i64 = it.next()?.parse().ok()?;
    it.next()?;
    (0 <= a && a <= b).then_some((a, b))
}

/// The collated file of a tile: `<dir>/<tile_id>-<run>.fits`, or `...-blind.fits` when the
/// shears are blinded ([`CollateOptions::blinds`]).
pub fn collated_name(dir: &Path, tile_id: &str, run: &str, blinded: bool) -> PathBuf {
    let suffix = if blinded { "-blind" } else { "" };
    dir.join(format!("{tile_id}-{run}{suffix}.fits"))
}

/// One chunk output and, when known, the index range it was run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The ngmixit output.
    pub path: PathBuf,
    /// `--fof-range` of the chunk.
    pub range: Option<Range>,
}

impl Chunk {
    /// A chunk of unknown range.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            range: None,
        }
    }

    /// A chunk run on `range`.
    pub fn with_range(path: impl Into<PathBuf>, range: Range) -> Self {
        Self {
            path: path.into(),
            range: Some(range),
        }
    }

    /// A chunk whose range is read from its name ([`range_from_name`]).
    pub fn from_name(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let range = range_from_name(&path);
        Self { path, range }
    }
}

/// How to collate.
#[derive(Debug, Clone, PartialEq)]
pub struct CollateOptions {
    /// Collation class (`collate.concat_type`).
    pub concat_type: ConcatType,
    /// Configured model names (`model_pars` keys), for the DES derived columns.
    pub models: Vec<String>,
    /// Band letters in band-number order (`jobs.bands`), for the `band` columns.
    pub bands: Vec<String>,
    /// Zero points used when `meta_data` has no `magzp_ref` (config `magzp_ref`).
    pub magzp_ref: Option<Vec<f64>>,
    /// `collate.blinding` is set (`{type: y3}`): blind the metacal shears.
    pub blinding_configured: bool,
    /// `--noblind`: do not blind, whatever the config says.
    pub noblind: bool,
    /// The blinding transform (required when blinding applies).
    pub blinding: Option<Blinding>,
    /// Skip bad chunks (with a warning) instead of refusing to collate.
    pub skip_errors: bool,
    /// Overwrite an existing output (else an existing output is left and nothing is done).
    pub clobber: bool,
    /// `meta_data` columns allowed to differ between chunks (first chunk's kept).
    pub meta_ignore: Vec<String>,
    /// Shape noise per component of the `<m>_weight` columns.
    pub shape_noise: f64,
}

impl Default for CollateOptions {
    fn default() -> Self {
        Self {
            concat_type: ConcatType::Concat,
            models: Vec::new(),
            bands: Vec::new(),
            magzp_ref: None,
            blinding_configured: false,
            noblind: false,
            blinding: None,
            skip_errors: false,
            clobber: false,
            meta_ignore: vec!["seed".to_string()],
            shape_noise: 0.22,
        }
    }
}

impl CollateOptions {
    /// Options from a fitting config: `collate.concat_type` (plain `concat` without a
    /// `collate` section), `collate.blinding`, `jobs.bands`, the `model_pars` keys and
    /// `magzp_ref`. Set [`CollateOptions::blinding`] before collating a blinded run.
    ///
    /// # Errors
    /// `concat-des` without a `collate.blinding` entry (the original requires the key).
    pub fn from_config(cfg: &FittingConfig) -> Result<Self, CollateError> {
        let mut o = Self::default();
        if let Some(c) = &cfg.collate {
            o.concat_type = c.concat_type;
            match &c.blinding {
                None if c.concat_type != ConcatType::Concat => {
                    return Err(CollateError::Config(format!(
                        "collate: {} needs a `blinding` entry (null or {{type: y3}})",
                        c.concat_type
                    )))
                }
                Some(Some(_)) => o.blinding_configured = true,
                _ => {}
            }
        }
        if let Some(j) = &cfg.jobs {
            o.bands = j.bands.clone();
        }
        o.models = cfg
            .model_pars
            .models()
            .iter()
            .map(|m| m.as_str().to_string())
            .collect();
        o.magzp_ref = cfg.magzp_ref.as_ref().map(|z| match z {
            MagzpRef::Scalar(v) => vec![*v],
            MagzpRef::PerBand(v) => v.clone(),
        });
        Ok(o)
    }

    fn is_des(&self) -> bool {
        self.concat_type != ConcatType::Concat
    }

    /// True when the collated shears are blinded: a DES class, `collate.blinding` set and not
    /// `noblind`. This also decides the `-blind` file-name suffix.
    pub fn blinds(&self) -> bool {
        self.is_des() && self.blinding_configured && !self.noblind
    }
}

/// Something that keeps a chunk set from being collated.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The chunk file does not exist.
    Missing {
        /// The chunk.
        path: PathBuf,
    },
    /// The file is listed more than once.
    ListedTwice {
        /// The chunk.
        path: PathBuf,
    },
    /// The file cannot be read as an ngmixit output (truncated, not FITS, HDU missing).
    Unreadable {
        /// The chunk.
        path: PathBuf,
        /// The reader's error.
        msg: String,
    },
    /// An extension's columns differ from the first chunk's.
    Schema {
        /// The chunk.
        path: PathBuf,
        /// The extension.
        hdu: &'static str,
        /// The chunk whose schema is the reference.
        first: PathBuf,
        /// What differs.
        msg: String,
    },
    /// `meta_data` or `githashes` values differ from the first chunk's.
    Inconsistent {
        /// The chunk.
        path: PathBuf,
        /// The extension.
        hdu: &'static str,
        /// The reference chunk.
        first: PathBuf,
        /// What differs.
        msg: String,
    },
    /// Objects (key `id`) or FoFs (key `fofid`) of this chunk already occur in an earlier
    /// chunk (or twice in this one when `other == path`).
    Duplicate {
        /// The chunk.
        path: PathBuf,
        /// The chunk that has them first.
        other: PathBuf,
        /// `id` or `fofid`.
        key: &'static str,
        /// How many.
        count: usize,
        /// The first few (sorted).
        ids: Vec<i64>,
    },
    /// The chunk's range overlaps an earlier chunk's range.
    RangeOverlap {
        /// The chunk.
        path: PathBuf,
        /// Its range.
        range: Range,
        /// The earlier chunk.
        other: PathBuf,
        /// Its range.
        other_range: Range,
    },
    /// The chunk's content does not match its range.
    RangeMismatch {
        /// The chunk.
        path: PathBuf,
        /// Its range.
        range: Range,
        /// What differs.
        msg: String,
    },
    /// Indices no chunk covers.
    Gap {
        /// The uncovered range.
        range: Range,
        /// The chunk before it.
        after: Option<PathBuf>,
        /// The chunk after it.
        before: Option<PathBuf>,
    },
}

fn id_list(ids: &[i64], count: usize) -> String {
    let s: Vec<String> = ids.iter().map(i64::to_string).collect();
    if count > ids.len() {
        format!("{}, ...", s.join(", "))
    } else {
        s.join(", ")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { path } => write!(f, "chunk {}: file does not exist", path.display()),
            Problem::ListedTwice { path } => {
                write!(f, "chunk {}: listed more than once", path.display())
            }
            Problem::Unreadable { path, msg } => {
                write!(f, "chunk {}: unreadable: {msg}", path.display())
            }
            Problem::Schema {
                path,
                hdu,
                first,
                msg,
            } => write!(
                f,
                "chunk {} [{hdu}]: columns differ from chunk {}: {msg}",
                path.display(),
                first.display()
            ),
            Problem::Inconsistent {
                path,
                hdu,
                first,
                msg,
            } => write!(
                f,
                "chunk {} [{hdu}]: differs from chunk {}: {msg}",
                path.display(),
                first.display()
            ),
            Problem::Duplicate {
                path,
                other,
                key,
                count,
                ids,
            } => {
                let what = if *key == "fofid" { "FoFs" } else { "objects" };
                if path == other {
                    write!(
                        f,
                        "chunk {}: {count} {what} occur more than once ({key} {})",
                        path.display(),
                        id_list(ids, *count)
                    )
                } else {
                    write!(
                        f,
                        "chunk {}: {count} {what} already in chunk {} ({key} {})",
                        path.display(),
                        other.display(),
                        id_list(ids, *count)
                    )
                }
            }
            Problem::RangeOverlap {
                path,
                range,
                other,
                other_range,
            } => write!(
                f,
                "chunk {} (range {}-{}) overlaps chunk {} (range {}-{})",
                path.display(),
                range.0,
                range.1,
                other.display(),
                other_range.0,
                other_range.1
            ),
            Problem::RangeMismatch { path, range, msg } => write!(
                f,
                "chunk {} (range {}-{}): {msg}",
                path.display(),
                range.0,
                range.1
            ),
            Problem::Gap {
                range,
                after,
                before,
            } => {
                write!(f, "indices {}-{} are in no chunk", range.0, range.1)?;
                match (after, before) {
                    (Some(a), Some(b)) => {
                        write!(f, " (between {} and {})", a.display(), b.display())
                    }
                    (Some(a), None) => write!(f, " (after {})", a.display()),
                    (None, Some(b)) => write!(f, " (before {})", b.display()),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

impl Problem {
    /// The chunk the problem belongs to (`None` for a gap between chunks).
    pub fn chunk(&self) -> Option<&Path> {
        match self {
            Problem::Missing { path }
            | Problem::ListedTwice { path }
            | Problem::Unreadable { path, .. }
            | Problem::Schema { path, .. }
            | Problem::Inconsistent { path, .. }
            | Problem::Duplicate { path, .. }
            | Problem::RangeOverlap { path, .. }
            | Problem::RangeMismatch { path, .. } => Some(path),
            Problem::Gap { .. } => None,
        }
    }
}

/// What one chunk held.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkSummary {
    /// The chunk.
    pub path: PathBuf,
    /// Its expected range.
    pub range: Option<Range>,
    /// `model_fits` rows (0 when unreadable).
    pub nrows: usize,
    /// Smallest and largest `id` (objects) or `fofid` (FoF runs).
    pub ids: Option<Range>,
    /// Used in the collated file.
    pub used: bool,
}

/// The outcome of [`Collator::verify`] or [`Collator::collate`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Per chunk, in the given order.
    pub chunks: Vec<ChunkSummary>,
    /// Problems that keep the set from being collated (empty when it was written).
    pub problems: Vec<Problem>,
    /// With `skip_errors`: the problems of the skipped chunks and the gaps they leave.
    pub skipped: Vec<Problem>,
    /// `model_fits` rows collated (or that would be).
    pub nrows: usize,
    /// Units are FoFs (`fofid >= 0`), not objects.
    pub fof_units: bool,
    /// The file written (`None` for verify, refusal, or an existing output kept).
    pub output: Option<PathBuf>,
    /// The output existed and `clobber` was off: nothing was done.
    pub kept_existing: bool,
    /// The shears were blinded.
    pub blinded: bool,
}

impl Report {
    /// No problem and nothing skipped: every object (FoF) exactly once.
    pub fn is_complete(&self) -> bool {
        self.problems.is_empty() && self.skipped.is_empty()
    }

    /// The chunks skipped under `skip_errors`.
    pub fn skipped_chunks(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = self.skipped.iter().filter_map(Problem::chunk).collect();
        v.dedup();
        v
    }

    /// One line per problem (or skipped problem).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for p in &self.problems {
            s.push_str(&p.to_string());
            s.push('\n');
        }
        for p in &self.skipped {
            s.push_str("skipped: ");
            s.push_str(&p.to_string());
            s.push('\n');
        }
        s
    }
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CollateError {
    /// The chunk set is not complete (problems listed in the report).
    #[error("collation refused, nothing written:\n{}", .0.describe())]
    Incomplete(Box<Report>),
    /// The options cannot be used (blinding without factor, DES class without bands ...).
    #[error("collation: {0}")]
    Config(String),
    /// The chunks were fine but deriving or writing the output failed.
    #[error(transparent)]
    Output(#[from] Error),
}

/// Collates chunk outputs given in chunk order.
#[derive(Debug, Clone)]
pub struct Collator {
    chunks: Vec<Chunk>,
    opts: CollateOptions,
    total: Option<usize>,
}

const MAX_IDS_SHOWN: usize = 8;

struct Loaded {
    index: usize,
    tables: ChunkTables,
}

fn schema_diff(a: &Table, b: &Table) -> Option<String> {
    let (sa, sb) = (a.specs(), b.specs());
    let mut out = Vec::new();
    for s in &sa {
        match sb.iter().find(|x| x.name == s.name) {
            None => out.push(format!("no column '{}'", s.name)),
            Some(x) if x.kind != s.kind || x.shape != s.shape => out.push(format!(
                "column '{}' is {:?}{:?}, not {:?}{:?}",
                s.name, x.kind, x.shape, s.kind, s.shape
            )),
            _ => {}
        }
    }
    for x in &sb {
        if !sa.iter().any(|s| s.name == x.name) {
            out.push(format!("extra column '{}'", x.name));
        }
    }
    if out.is_empty() {
        let na: Vec<&str> = sa.iter().map(|s| s.name.as_str()).collect();
        let nb: Vec<&str> = sb.iter().map(|s| s.name.as_str()).collect();
        if na != nb {
            out.push("columns in another order".to_string());
        }
    }
    let n = out.len();
    if n > MAX_IDS_SHOWN {
        out.truncate(MAX_IDS_SHOWN);
        out.push(format!("... {} differences in all", n));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// Values differ (strings compared without width; `ignore` columns skipped).
fn value_diff(a: &Table, b: &Table, ignore: &[String]) -> Option<String> {
    if a.nrows() != b.nrows() {
        return Some(format!("{} rows, not {}", b.nrows(), a.nrows()));
    }
    for c in a.columns() {
        if ignore.contains(&c.name) {
            continue;
        }
        let Some(d) = b.column(&c.name) else {
            return Some(format!("no column '{}'", c.name));
        };
        let same = match (c.kind, d.kind) {
            (Kind::Str(_), Kind::Str(_)) => c.strs == d.strs,
            (Kind::Str(_), _) | (_, Kind::Str(_)) => false,
            _ => {
                c.num
                    .iter()
                    .zip(&d.num)
                    .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
                    && c.num.len() == d.num.len()
            }
        };
        if !same {
            let show = |t: &crate::output::table::Column| {
                if let Kind::Str(_) = t.kind {
                    format!("{:?}", t.strs)
                } else {
                    format!("{:?}", t.num)
                }
            };
            return Some(format!(
                "column '{}' is {}, not {}",
                c.name,
                show(d),
                show(c)
            ));
        }
    }
    for d in b.columns() {
        if !ignore.contains(&d.name) && a.column(&d.name).is_none() {
            return Some(format!("extra column '{}'", d.name));
        }
    }
    None
}

fn int_values(t: &Table, name: &str) -> Option<Vec<i64>> {
    let c = t.column(name)?;
    if c.repeat() != 1 || matches!(c.kind, Kind::Str(_)) {
        return None;
    }
    Some(c.num.iter().map(|&x| x as i64).collect())
}

fn gaps(ranges: &[(usize, Range)], chunks: &[Chunk], total: Option<usize>) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut prev: Option<(usize, Range)> = None;
    let first_start = if total.is_some() { Some(0) } else { None };
    for &(i, r) in ranges {
        let want = match prev {
            Some((_, p)) => Some(p.1 + 1),
            None => first_start,
        };
        if let Some(w) = want {
            if r.0 > w {
                out.push(Problem::Gap {
                    range: (w, r.0 - 1),
                    after: prev.map(|(j, _)| chunks[j].path.clone()),
                    before: Some(chunks[i].path.clone()),
                });
            }
        }
        if prev.is_none_or(|(_, p)| r.1 > p.1) {
            prev = Some((i, r));
        }
    }
    if let Some(n) = total {
        let end = n as i64 - 1;
        let last = prev.map_or(-1, |(_, p)| p.1);
        if last < end {
            out.push(Problem::Gap {
                range: (last + 1, end),
                after: prev.map(|(j, _)| chunks[j].path.clone()),
                before: None,
            });
        }
    }
    out
}

impl Collator {
    /// Collate `chunks` (in this order) with `opts`.
    pub fn new(chunks: Vec<Chunk>, opts: CollateOptions) -> Self {
        Self {
            chunks,
            opts,
            total: None,
        }
    }

    /// The tile has `n` objects (FoFs): the chunk ranges must cover `0..n-1` exactly.
    pub fn expect_total(mut self, n: usize) -> Self {
        self.total = Some(n);
        self
    }

    /// The options.
    pub fn options(&self) -> &CollateOptions {
        &self.opts
    }

    /// The completeness check alone: read every chunk and report every problem (nothing is
    /// skipped, nothing written).
    pub fn verify(&self) -> Report {
        self.check(false).0
    }

    /// Check the set and, when complete (or with `skip_errors`, after skipping the bad
    /// chunks), write the collated file to `out` through a temporary name.
    ///
    /// An existing `out` is kept when `clobber` is off ([`Report::kept_existing`]).
    ///
    /// # Errors
    /// [`CollateError::Incomplete`] naming every problem (nothing written);
    /// [`CollateError::Config`] for unusable options; [`CollateError::Output`] when the
    /// derived columns or the write fail (nothing written).
    pub fn collate(&self, out: &Path) -> Result<Report, CollateError> {
        if out.exists() && !self.opts.clobber {
            return Ok(Report {
                kept_existing: true,
                ..Report::default()
            });
        }
        if let Some(c) = self.chunks.iter().find(|c| same_file(&c.path, out)) {
            return Err(CollateError::Config(format!(
                "output {} is the chunk {}",
                out.display(),
                c.path.display()
            )));
        }
        let blinded = self.opts.blinds();
        if blinded && self.opts.blinding.is_none() {
            return Err(CollateError::Config(
                "collate.blinding is set but no blinding factor was given \
                 (CollateOptions::blinding), and noblind is off"
                    .into(),
            ));
        }
        if self.opts.is_des() && self.opts.bands.is_empty() {
            return Err(CollateError::Config(format!(
                "{} needs the band letters (jobs.bands)",
                self.opts.concat_type
            )));
        }
        let (mut report, loaded) = self.check(self.opts.skip_errors);
        if !report.problems.is_empty() {
            return Err(CollateError::Incomplete(Box::new(report)));
        }
        if loaded.is_empty() {
            report.problems.push(Problem::Gap {
                range: (0, self.total.map_or(0, |n| n as i64 - 1)),
                after: None,
                before: None,
            });
            return Err(CollateError::Incomplete(Box::new(report)));
        }
        let cat = self.concatenate(&loaded)?;
        let cat = self.transform(cat)?;
        let keys: Vec<(&str, i64, &str)> = cat
            .epoch_keys
            .iter()
            .map(|(k, v, c)| (k.as_str(), *v, c.as_str()))
            .collect();
        let mut hdus = vec![
            Hdu::new(MODEL_FITS, &cat.model_fits),
            Hdu {
                name: EPOCH_DATA,
                table: &cat.epoch_data,
                keys: &keys,
            },
        ];
        if let Some(n) = &cat.nbrs_data {
            hdus.push(Hdu::new(NBRS_DATA, n));
        }
        hdus.push(Hdu::new(META_DATA, &cat.meta_data));
        if let Some(g) = &cat.githashes {
            hdus.push(Hdu::new(GITHASHES, g));
        }
        write_hdus(out, &hdus)?;
        report.output = Some(out.to_path_buf());
        report.blinded = blinded;
        Ok(report)
    }

    /// Read and check; returns the report and the chunks to use (in order).
    fn check(&self, skip: bool) -> (Report, Vec<Loaded>) {
        let mut report = Report::default();
        // per chunk: problems that disqualify it
        let mut bad: Vec<Vec<Problem>> = vec![Vec::new(); self.chunks.len()];
        let mut loaded: Vec<Loaded> = Vec::new();
        let mut seen_paths: Vec<PathBuf> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            report.chunks.push(ChunkSummary {
                path: c.path.clone(),
                range: c.range,
                nrows: 0,
                ids: None,
                used: false,
            });
            let canon = std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone());
            if seen_paths.contains(&canon) {
                bad[i].push(Problem::ListedTwice {
                    path: c.path.clone(),
                });
                continue;
            }
            seen_paths.push(canon);
            if !c.path.is_file() {
                bad[i].push(Problem::Missing {
                    path: c.path.clone(),
                });
                continue;
            }
            match read_chunk(&c.path) {
                Ok(t) => {
                    report.chunks[i].nrows = t.model_fits.nrows();
                    loaded.push(Loaded {
                        index: i,
                        tables: t,
                    });
                }
                Err(e) => bad[i].push(Problem::Unreadable {
                    path: c.path.clone(),
                    msg: e.to_string(),
                }),
            }
        }

        // FoF units when every row of every chunk has fofid >= 0
        let fof_units = !loaded.is_empty()
            && loaded.iter().all(|l| {
                int_values(&l.tables.model_fits, "fofid").is_some_and(|v| v.iter().all(|&f| f >= 0))
            });
        report.fof_units = fof_units;

        // schema and consistency against the first readable chunk
        if let Some(first) = loaded.first() {
            let fp = self.chunks[first.index].path.clone();
            let ft = &first.tables;
            for l in &loaded[1..] {
                let p = &self.chunks[l.index].path;
                let t = &l.tables;
                let mut pr = Vec::new();
                for (hdu, a, b) in [
                    (MODEL_FITS, Some(&ft.model_fits), Some(&t.model_fits)),
                    (EPOCH_DATA, Some(&ft.epoch_data), Some(&t.epoch_data)),
                    (NBRS_DATA, ft.nbrs_data.as_ref(), t.nbrs_data.as_ref()),
                ] {
                    if let (Some(a), Some(b)) = (a, b) {
                        if let Some(msg) = schema_diff(a, b) {
                            pr.push(Problem::Schema {
                                path: p.clone(),
                                hdu,
                                first: fp.clone(),
                                msg,
                            });
                        }
                    }
                }
                if let Some(msg) = value_diff(&ft.meta_data, &t.meta_data, &self.opts.meta_ignore) {
                    pr.push(Problem::Inconsistent {
                        path: p.clone(),
                        hdu: META_DATA,
                        first: fp.clone(),
                        msg,
                    });
                }
                let gh = match (&ft.githashes, &t.githashes) {
                    (Some(a), Some(b)) => value_diff(a, b, &[]),
                    (None, None) => None,
                    (Some(_), None) => Some("no githashes extension".into()),
                    (None, Some(_)) => Some("a githashes extension the first lacks".into()),
                };
                if let Some(msg) = gh {
                    pr.push(Problem::Inconsistent {
                        path: p.clone(),
                        hdu: GITHASHES,
                        first: fp.clone(),
                        msg,
                    });
                }
                bad[l.index].extend(pr);
            }
        }

        // content against the chunk's own range, and duplicates within a chunk
        let key = if loaded
            .iter()
            .all(|l| l.tables.model_fits.column("id").is_some())
        {
            "id"
        } else {
            "number"
        };
        let mut unit_sets: Vec<(usize, Vec<i64>, Vec<i64>)> = Vec::new(); // index, ids, fofids
        for l in &loaded {
            let c = &self.chunks[l.index];
            let Some(ids) = int_values(&l.tables.model_fits, key) else {
                bad[l.index].push(Problem::Unreadable {
                    path: c.path.clone(),
                    msg: format!("model_fits has no integer '{key}' column"),
                });
                continue;
            };
            let fofids = if fof_units {
                int_values(&l.tables.model_fits, "fofid").unwrap_or_default()
            } else {
                Vec::new()
            };
            let units = if fof_units { &fofids } else { &ids };
            report.chunks[l.index].ids = units
                .iter()
                .min()
                .zip(units.iter().max())
                .map(|(&a, &b)| (a, b));
            let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
            for &x in &ids {
                *counts.entry(x).or_default() += 1;
            }
            let dups: Vec<i64> = counts
                .iter()
                .filter(|(_, &n)| n > 1)
                .map(|(&x, _)| x)
                .collect();
            if !dups.is_empty() {
                bad[l.index].push(Problem::Duplicate {
                    path: c.path.clone(),
                    other: c.path.clone(),
                    key,
                    count: dups.len(),
                    ids: dups.into_iter().take(MAX_IDS_SHOWN).collect(),
                });
            }
            if let Some(r) = c.range {
                if fof_units {
                    let have: std::collections::BTreeSet<i64> = fofids.iter().copied().collect();
                    let missing: Vec<i64> = (r.0..=r.1).filter(|x| !have.contains(x)).collect();
                    let extra: Vec<i64> = have
                        .iter()
                        .copied()
                        .filter(|x| *x < r.0 || *x > r.1)
                        .collect();
                    if !missing.is_empty() || !extra.is_empty() {
                        bad[l.index].push(Problem::RangeMismatch {
                            path: c.path.clone(),
                            range: r,
                            msg: format!(
                                "fofids missing: [{}]; fofids outside the range: [{}]",
                                id_list(
                                    &missing[..missing.len().min(MAX_IDS_SHOWN)],
                                    missing.len()
                                ),
                                id_list(&extra[..extra.len().min(MAX_IDS_SHOWN)], extra.len())
                            ),
                        });
                    }
                } else {
                    let want = (r.1 - r.0 + 1) as usize;
                    if ids.len() != want {
                        bad[l.index].push(Problem::RangeMismatch {
                            path: c.path.clone(),
                            range: r,
                            msg: format!(
                                "{} objects, the range has {want} (truncated or mislabelled chunk)",
                                ids.len()
                            ),
                        });
                    }
                }
            }
            unit_sets.push((l.index, ids, fofids));
        }

        // range overlaps between chunks, in order
        let mut prev_ranges: Vec<(usize, Range)> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            let Some(r) = c.range else { continue };
            if let Some(&(j, pr)) = prev_ranges
                .iter()
                .find(|(j, pr)| bad[*j].is_empty() && r.0 <= pr.1 && pr.0 <= r.1)
            {
                if bad[i].is_empty() {
                    bad[i].push(Problem::RangeOverlap {
                        path: c.path.clone(),
                        range: r,
                        other: self.chunks[j].path.clone(),
                        other_range: pr,
                    });
                }
            }
            prev_ranges.push((i, r));
        }

        // duplicates across chunks (only against chunks still in use)
        let mut owner: HashMap<(u8, i64), usize> = HashMap::new();
        for (i, ids, fofids) in &unit_sets {
            if !bad[*i].is_empty() {
                continue;
            }
            for (tag, keyname, vals) in [(0u8, key, ids), (1u8, "fofid", fofids)] {
                let mut by_other: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
                let mut uniq: Vec<i64> = vals.clone();
                uniq.sort_unstable();
                uniq.dedup();
                for &x in &uniq {
                    if let Some(&j) = owner.get(&(tag, x)) {
                        by_other.entry(j).or_default().push(x);
                    }
                }
                for (j, xs) in by_other {
                    bad[*i].push(Problem::Duplicate {
                        path: self.chunks[*i].path.clone(),
                        other: self.chunks[j].path.clone(),
                        key: keyname,
                        count: xs.len(),
                        ids: xs.into_iter().take(MAX_IDS_SHOWN).collect(),
                    });
                }
            }
            if bad[*i].is_empty() {
                for (tag, vals) in [(0u8, ids), (1u8, fofids)] {
                    for &x in vals {
                        owner.entry((tag, x)).or_insert(*i);
                    }
                }
            }
        }

        // gaps, over the chunks still in use, when every chunk has a range
        let gap_list = if self.chunks.iter().all(|c| c.range.is_some()) {
            let good: Vec<(usize, Range)> = self
                .chunks
                .iter()
                .enumerate()
                .filter(|(i, _)| bad[*i].is_empty())
                .map(|(i, c)| (i, c.range.expect("all have ranges")))
                .collect();
            gaps(&good, &self.chunks, self.total)
        } else {
            Vec::new()
        };

        let mut use_list = Vec::new();
        for l in loaded {
            if bad[l.index].is_empty() {
                report.chunks[l.index].used = true;
                report.nrows += l.tables.model_fits.nrows();
                use_list.push(l);
            }
        }
        let bad_all: Vec<Problem> = bad.into_iter().flatten().collect();
        if skip {
            report.skipped = bad_all;
            report.skipped.extend(gap_list);
        } else {
            report.problems = bad_all;
            report.problems.extend(gap_list);
            for c in &mut report.chunks {
                c.used = report.problems.is_empty() && c.used;
            }
        }
        (report, use_list)
    }

    fn concatenate(&self, loaded: &[Loaded]) -> Result<ChunkTables, CollateError> {
        let first = &loaded[0].tables;
        let mut out = ChunkTables {
            model_fits: Table::new(first.model_fits.specs()),
            epoch_data: Table::new(first.epoch_data.specs()),
            nbrs_data: loaded
                .iter()
                .find_map(|l| l.tables.nbrs_data.as_ref())
                .map(|t| Table::new(t.specs())),
            meta_data: first.meta_data.clone(),
            githashes: first.githashes.clone(),
            epoch_keys: first
                .epoch_keys
                .iter()
                .map(|(k, _, c)| (k.clone(), 0, c.clone()))
                .collect(),
        };
        for l in loaded {
            let p = &self.chunks[l.index].path;
            let e = |hdu: &str, s: crate::output::SchemaError| {
                CollateError::Output(Error::Invalid(format!(
                    "chunk {} [{hdu}]: {s}",
                    p.display()
                )))
            };
            out.model_fits
                .append(&l.tables.model_fits)
                .map_err(|s| e(MODEL_FITS, s))?;
            out.epoch_data
                .append(&l.tables.epoch_data)
                .map_err(|s| e(EPOCH_DATA, s))?;
            if let (Some(o), Some(n)) = (&mut out.nbrs_data, &l.tables.nbrs_data) {
                o.append(n).map_err(|s| e(NBRS_DATA, s))?;
            }
            for (k, v, _) in &mut out.epoch_keys {
                if let Some((_, x, _)) = l.tables.epoch_keys.iter().find(|(n, _, _)| n == k) {
                    *v += x;
                }
            }
        }
        Ok(out)
    }

    /// The zero points: `meta_data.magzp_ref` per band row, else the config's (added to
    /// `meta_data` as the original does).
    fn magzp(&self, meta: &mut Table) -> Result<Vec<f64>, CollateError> {
        if let Some(c) = meta.column("magzp_ref") {
            return Ok(c.num.iter().step_by(c.repeat()).copied().collect());
        }
        let Some(z) = &self.opts.magzp_ref else {
            return Err(CollateError::Config(
                "meta_data has no magzp_ref and the config gives none (magzp_ref)".into(),
            ));
        };
        let mut specs = meta.specs();
        specs.insert(
            0,
            crate::output::ColSpec::new("magzp_ref", Kind::F32, &[], 0.0),
        );
        let mut t = Table::new(specs);
        for r in 0..meta.nrows() {
            t.push_default();
            for c in meta.columns() {
                if let Kind::Str(_) = c.kind {
                    t.set_str_named(r, &c.name, &c.strs[r])
                        .map_err(Error::from)?;
                } else {
                    let k = c.repeat();
                    t.set_named(r, &c.name, &c.num[r * k..(r + 1) * k])
                        .map_err(Error::from)?;
                }
            }
            let v = z.get(r).or(z.first()).copied().unwrap_or(0.0);
            t.set_named(r, "magzp_ref", &[v]).map_err(Error::from)?;
        }
        *meta = t;
        Ok(z.clone())
    }

    fn transform(&self, mut cat: ChunkTables) -> Result<ChunkTables, CollateError> {
        if !self.opts.is_des() {
            return Ok(cat);
        }
        let bands = &self.opts.bands;
        let zp = self.magzp(&mut cat.meta_data)?;
        cat.epoch_data = pick_band_rows(&cat.epoch_data, bands, true)?;
        if let Some(n) = &cat.nbrs_data {
            cat.nbrs_data = Some(pick_band_rows(n, bands, false)?);
        }
        let fields = DesFields {
            concat: self.opts.concat_type,
            models: &self.opts.models,
            magzp: &zp,
            shape_noise: self.opts.shape_noise,
        };
        cat.model_fits = derive_fields(&cat.model_fits, &fields)?;
        if self.opts.blinds() {
            let b = self.opts.blinding.as_ref().expect("checked in collate");
            blind_table(&mut cat.model_fits, b)?;
        }
        Ok(cat)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
