//! A pure-Rust view of FITS binary-table columns and the decoding of the MEDS `object_data` and
//! `image_info` tables from it.
//!
//! Nothing here touches cfitsio: the FITS layer reads a table into [`Columns`], and
//! [`ObjectData::from_columns`] / [`ImageInfo::from_columns`] validate names, types and shapes.
//! That split lets the decoders be fuzzed and unit-tested on synthetic column sets.

use std::fmt;

/// Element type of a table column, after cfitsio's `TSCAL`/`TZERO` interpretation
/// (so a `J` column with `TZERO = 2^31` is [`ColKind::U32`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    /// `L`: logical.
    Bool,
    /// `B`: unsigned byte.
    U8,
    /// `B` with `TZERO = -128`: signed byte.
    I8,
    /// `I`: 16-bit integer.
    I16,
    /// `I` with `TZERO = 32768`.
    U16,
    /// `J`: 32-bit integer.
    I32,
    /// `J` with `TZERO = 2^31`.
    U32,
    /// `K`: 64-bit integer.
    I64,
    /// `K` with `TZERO = 2^63`.
    U64,
    /// `E`: single precision.
    F32,
    /// `D`: double precision.
    F64,
    /// `A`: fixed-width strings of `width` bytes.
    Str {
        /// Characters per string.
        width: usize,
    },
    /// A type the reader does not decode (bits, complex, variable-length arrays).
    Unsupported,
}

impl ColKind {
    /// True for the integer kinds.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Self::U8
                | Self::I8
                | Self::I16
                | Self::U16
                | Self::I32
                | Self::U32
                | Self::I64
                | Self::U64
        )
    }

    /// True for `F32`/`F64`.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }
}

/// The values of one column, row-major: row `r`, element `k` is at `r * repeat + k`.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Logical values.
    Bool(Vec<bool>),
    /// Any integer kind, widened to `i64`.
    Int(Vec<i64>),
    /// `E` or `D`, widened to `f64`.
    Float(Vec<f64>),
    /// Strings with trailing blanks removed.
    Str(Vec<String>),
    /// Not decoded; the string describes the FITS type.
    Unsupported(String),
}

impl ColumnData {
    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            Self::Bool(v) => v.len(),
            Self::Int(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::Str(v) => v.len(),
            Self::Unsupported(_) => 0,
        }
    }

    /// True when no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "logical",
            Self::Int(_) => "integer",
            Self::Float(_) => "floating-point",
            Self::Str(_) => "string",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// One table column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name (`TTYPEn`), as stored.
    pub name: String,
    /// The FITS element type.
    pub kind: ColKind,
    /// Elements per row (strings per row for string columns; 1 for scalars).
    pub repeat: usize,
    /// Optional `TDIM` shape of one cell, FITS order (fastest axis first).
    pub dims: Option<Vec<usize>>,
    /// The values, `nrows * repeat` of them.
    pub data: ColumnData,
}

impl Column {
    /// A column without a `TDIM`.
    pub fn new(name: impl Into<String>, kind: ColKind, repeat: usize, data: ColumnData) -> Self {
        Self {
            name: name.into(),
            kind,
            repeat,
            dims: None,
            data,
        }
    }

    /// Integer values, if this is an integer column.
    pub fn as_int(&self) -> Option<&[i64]> {
        match &self.data {
            ColumnData::Int(v) => Some(v),
            _ => None,
        }
    }

    /// Floating-point values, if this is a float column.
    pub fn as_float(&self) -> Option<&[f64]> {
        match &self.data {
            ColumnData::Float(v) => Some(v),
            _ => None,
        }
    }

    /// Strings, if this is a string column.
    pub fn as_str(&self) -> Option<&[String]> {
        match &self.data {
            ColumnData::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// A decoded table: a row count and its columns, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    nrows: usize,
    cols: Vec<Column>,
}

impl Columns {
    /// Assemble a table. No validation happens here; see [`Columns::validate`].
    pub fn new(nrows: usize, cols: Vec<Column>) -> Self {
        Self { nrows, cols }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.cols.len()
    }

    /// The columns in file order.
    pub fn columns(&self) -> &[Column] {
        &self.cols
    }

    /// Column names in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.cols.iter().map(|c| c.name.as_str())
    }

    /// The first column whose name matches `name` ignoring ASCII case (FITS names are
    /// case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.cols.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// True when a column of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Check that every column holds `nrows * repeat` elements of the type its kind
    /// announces.
    pub fn validate(&self) -> Result<(), ColumnError> {
        for c in &self.cols {
            let consistent = match (&c.data, c.kind) {
                (ColumnData::Bool(_), ColKind::Bool) => true,
                (ColumnData::Int(_), k) => k.is_integer(),
                (ColumnData::Float(_), k) => k.is_float(),
                (ColumnData::Str(_), ColKind::Str { .. }) => true,
                (ColumnData::Unsupported(_), ColKind::Unsupported) => true,
                _ => false,
            };
            if !consistent {
                return Err(ColumnError::new(
                    &c.name,
                    format!(
                        "declared kind {:?} but holds {} data",
                        c.kind,
                        c.data.type_name()
                    ),
                ));
            }
            if matches!(c.data, ColumnData::Unsupported(_)) {
                continue;
            }
            let want = self.nrows.checked_mul(c.repeat);
            if want != Some(c.data.len()) {
                return Err(ColumnError::new(
                    &c.name,
                    format!(
                        "holds {} values, expected nrows {} x repeat {}",
                        c.data.len(),
                        self.nrows,
                        c.repeat
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The column `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&Column, ColumnError> {
        self.get(name)
            .ok_or_else(|| ColumnError::new(name, "missing column".to_string()))
    }
}

/// A problem with one table column (missing, wrong type, wrong shape, bad value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnError {
    /// The column concerned, when one is.
    pub column: Option<String>,
    /// What is wrong.
    pub msg: String,
}

impl ColumnError {
    fn new(column: &str, msg: String) -> Self {
        Self {
            column: Some(column.to_string()),
            msg,
        }
    }

    fn table(msg: String) -> Self {
        Self { column: None, msg }
    }
}

impl fmt::Display for ColumnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column '{c}': {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for ColumnError {}

/// A per-cutout column of `object_data`: `nobj` rows of `width` values.
///
/// A per-object column (one value per row, e.g. the one-dimensional `psf_row_size` of some
/// files) is stored with `broadcast` set, and [`PerCutout::get`] then answers with the
/// object's value for every cutout index, as the meds package does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerCutout<T> {
    data: Vec<T>,
    width: usize,
    broadcast: bool,
}

impl<T: Copy> PerCutout<T> {
    /// Build from row-major data; `None` unless `data.len()` is a multiple of `width`.
    pub fn new(data: Vec<T>, width: usize) -> Option<Self> {
        let ok = if width == 0 {
            data.is_empty()
        } else {
            data.len().is_multiple_of(width)
        };
        ok.then_some(Self {
            data,
            width,
            broadcast: false,
        })
    }

    /// A per-object column answering for every cutout index.
    pub fn per_object(data: Vec<T>) -> Self {
        Self {
            data,
            width: 1,
            broadcast: true,
        }
    }

    /// Values per object (the column's repeat count, `NMAX`).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether this is a per-object value broadcast to all cutouts.
    pub fn is_per_object(&self) -> bool {
        self.broadcast
    }

    /// Number of objects.
    pub fn nobj(&self) -> usize {
        self.data.len().checked_div(self.width).unwrap_or(0)
    }

    /// Value for object `iobj`, cutout `icut`; `None` out of range.
    pub fn get(&self, iobj: usize, icut: usize) -> Option<T> {
        let icut = if self.broadcast { 0 } else { icut };
        if icut >= self.width {
            return None;
        }
        self.data
            .get(iobj.checked_mul(self.width)?.checked_add(icut)?)
            .copied()
    }

    /// All values of object `iobj`.
    pub fn row(&self, iobj: usize) -> Option<&[T]> {
        let start = iobj.checked_mul(self.width)?;
        self.data.get(start..start.checked_add(self.width)?)
    }

    /// The raw row-major values.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }
}

/// The MEDS `object_data` table, decoded and validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectData {
    /// Coadd catalogue id.
    pub id: Vec<i64>,
    /// SExtractor `number` (the seg-map value). When the column is absent this is
    /// `index + 1`, as the meds package assumes, and [`ObjectData::has_number`] is false.
    pub number: Vec<i64>,
    /// Whether `number` came from the file.
    pub has_number: bool,
    /// Side of every (square) cutout of the object.
    pub box_size: Vec<i64>,
    /// Number of cutouts (cutout 0 is the coadd).
    pub ncutout: Vec<i64>,
    /// Right ascension (degrees).
    pub ra: Vec<f64>,
    /// Declination (degrees).
    pub dec: Vec<f64>,
    /// Index into `image_info` of the source image of each cutout.
    pub file_id: PerCutout<i64>,
    /// First pixel of each cutout in the flattened `*_cutouts` HDUs.
    pub start_row: PerCutout<i64>,
    /// Object row in the source image (0-based).
    pub orig_row: PerCutout<f64>,
    /// Object column in the source image (0-based).
    pub orig_col: PerCutout<f64>,
    /// Row of the cutout's first pixel in the source image.
    pub orig_start_row: PerCutout<i64>,
    /// Column of the cutout's first pixel in the source image.
    pub orig_start_col: PerCutout<i64>,
    /// Object row inside the cutout (the Jacobian centre).
    pub cutout_row: PerCutout<f64>,
    /// Object column inside the cutout.
    pub cutout_col: PerCutout<f64>,
    /// Jacobian du/drow (arcsec/pixel).
    pub dudrow: PerCutout<f64>,
    /// Jacobian du/dcol.
    pub dudcol: PerCutout<f64>,
    /// Jacobian dv/drow.
    pub dvdrow: PerCutout<f64>,
    /// Jacobian dv/dcol.
    pub dvdcol: PerCutout<f64>,
    /// First pixel of each PSF stamp in the `psf` HDU (`psf_start_row`).
    pub psf_start_row: Option<PerCutout<i64>>,
    /// PSF stamp rows (`psf_row_size`), per cutout or per object (this and the other
    /// `psf_*` columns except `psf_start_row` may have one value per object).
    pub psf_row_size: Option<PerCutout<i64>>,
    /// PSF stamp columns (`psf_col_size`).
    pub psf_col_size: Option<PerCutout<i64>>,
    /// Square PSF stamp side (`psf_box_size`, older files).
    pub psf_box_size: Option<PerCutout<i64>>,
    /// PSF centre row in its stamp (`psf_cutout_row`).
    pub psf_cutout_row: Option<PerCutout<f64>>,
    /// PSF centre column in its stamp (`psf_cutout_col`).
    pub psf_cutout_col: Option<PerCutout<f64>>,
    /// PSF width in pixels (`psf_sigma`).
    pub psf_sigma: Option<PerCutout<f64>>,
}

/// Columns holding one integer per cutout.
const PER_CUTOUT_INT: [&str; 4] = ["file_id", "start_row", "orig_start_row", "orig_start_col"];
/// Columns holding one float per cutout.
const PER_CUTOUT_FLOAT: [&str; 8] = [
    "orig_row",
    "orig_col",
    "cutout_row",
    "cutout_col",
    "dudrow",
    "dudcol",
    "dvdrow",
    "dvdcol",
];

fn scalar_int(cols: &Columns, name: &str) -> Result<Vec<i64>, ColumnError> {
    let c = cols.require(name)?;
    if c.repeat != 1 {
        return Err(ColumnError::new(
            &c.name,
            format!("expected one value per row, found {}", c.repeat),
        ));
    }
    match &c.data {
        ColumnData::Int(v) => Ok(v.clone()),
        d => Err(ColumnError::new(
            &c.name,
            format!("expected an integer column, found {}", d.type_name()),
        )),
    }
}

fn scalar_float(cols: &Columns, name: &str) -> Result<Vec<f64>, ColumnError> {
    let c = cols.require(name)?;
    if c.repeat != 1 {
        return Err(ColumnError::new(
            &c.name,
            format!("expected one value per row, found {}", c.repeat),
        ));
    }
    to_float(c)
}

fn to_float(c: &Column) -> Result<Vec<f64>, ColumnError> {
    match &c.data {
        ColumnData::Float(v) => Ok(v.clone()),
        ColumnData::Int(v) => Ok(v.iter().map(|&x| x as f64).collect()),
        d => Err(ColumnError::new(
            &c.name,
            format!("expected a numeric column, found {}", d.type_name()),
        )),
    }
}

fn per_cut_int(cols: &Columns, name: &str) -> Result<PerCutout<i64>, ColumnError> {
    let c = cols.require(name)?;
    let v = match &c.data {
        ColumnData::Int(v) => v.clone(),
        d => {
            return Err(ColumnError::new(
                &c.name,
                format!("expected an integer column, found {}", d.type_name()),
            ))
        }
    };
    PerCutout::new(v, c.repeat)
        .ok_or_else(|| ColumnError::new(&c.name, "data length is not nrows x repeat".into()))
}

fn per_cut_float(cols: &Columns, name: &str) -> Result<PerCutout<f64>, ColumnError> {
    let c = cols.require(name)?;
    PerCutout::new(to_float(c)?, c.repeat)
        .ok_or_else(|| ColumnError::new(&c.name, "data length is not nrows x repeat".into()))
}

/// A per-cutout column that may also be stored with one value per object (then broadcast).
fn per_cut_or_obj<T: Copy>(
    cols: &Columns,
    name: &str,
    f: fn(&Columns, &str) -> Result<PerCutout<T>, ColumnError>,
) -> Result<PerCutout<T>, ColumnError> {
    let c = f(cols, name)?;
    if c.width() == 1 {
        Ok(PerCutout::per_object(c.as_slice().to_vec()))
    } else {
        Ok(c)
    }
}

fn psf_int(cols: &Columns, name: &str) -> Result<PerCutout<i64>, ColumnError> {
    per_cut_or_obj(cols, name, per_cut_int)
}

fn psf_float(cols: &Columns, name: &str) -> Result<PerCutout<f64>, ColumnError> {
    per_cut_or_obj(cols, name, per_cut_float)
}

fn optional<T>(
    cols: &Columns,
    name: &str,
    f: impl Fn(&Columns, &str) -> Result<T, ColumnError>,
) -> Result<Option<T>, ColumnError> {
    if cols.contains(name) {
        f(cols, name).map(Some)
    } else {
        Ok(None)
    }
}

/// Check that every object's `ncutout` fits in the column's width (per-object columns
/// always do).
fn check_width<T: Copy>(
    name: &str,
    col: &PerCutout<T>,
    ncutout: &[i64],
) -> Result<(), ColumnError> {
    if col.is_per_object() {
        return Ok(());
    }
    if let Some((i, &n)) = ncutout
        .iter()
        .enumerate()
        .find(|&(_, &n)| n > col.width() as i64)
    {
        return Err(ColumnError::new(
            name,
            format!(
                "object {i} has ncutout {n} but the column holds only {} values per object",
                col.width()
            ),
        ));
    }
    Ok(())
}

impl ObjectData {
    /// Decode `object_data`, validating column names, types and shapes.
    ///
    /// Required: `id`, `box_size`, `ncutout`, `ra`, `dec` (one value per row) and the
    /// per-cutout columns `file_id`, `start_row`, `orig_row`, `orig_col`, `orig_start_row`,
    /// `orig_start_col`, `cutout_row`, `cutout_col`, `dudrow`, `dudcol`, `dvdrow`, `dvdcol`,
    /// each at least `max(ncutout)` wide. Optional: `number` and the `psf_*` columns.
    /// `ncutout` and `box_size` must be non-negative. Values such as `start_row` are checked
    /// when a cutout is read.
    ///
    /// # Errors
    /// A [`ColumnError`] naming the first offending column.
    pub fn from_columns(cols: &Columns) -> Result<Self, ColumnError> {
        cols.validate()?;
        let nrows = cols.nrows();
        let id = scalar_int(cols, "id")?;
        let box_size = scalar_int(cols, "box_size")?;
        let ncutout = scalar_int(cols, "ncutout")?;
        let ra = scalar_float(cols, "ra")?;
        let dec = scalar_float(cols, "dec")?;
        let (number, has_number) = match optional(cols, "number", scalar_int)? {
            Some(v) => (v, true),
            None => ((1..=nrows as i64).collect(), false),
        };
        if let Some((i, &n)) = ncutout.iter().enumerate().find(|&(_, &n)| n < 0) {
            return Err(ColumnError::new(
                "ncutout",
                format!("object {i} has negative ncutout {n}"),
            ));
        }
        if let Some((i, &b)) = box_size.iter().enumerate().find(|&(_, &b)| b < 0) {
            return Err(ColumnError::new(
                "box_size",
                format!("object {i} has negative box_size {b}"),
            ));
        }

        let mut ints = Vec::with_capacity(PER_CUTOUT_INT.len());
        for name in PER_CUTOUT_INT {
            let c = per_cut_int(cols, name)?;
            check_width(name, &c, &ncutout)?;
            ints.push(c);
        }
        let mut floats = Vec::with_capacity(PER_CUTOUT_FLOAT.len());
        for name in PER_CUTOUT_FLOAT {
            let c = per_cut_float(cols, name)?;
            check_width(name, &c, &ncutout)?;
            floats.push(c);
        }

        let psf_start_row = optional(cols, "psf_start_row", per_cut_int)?;
        let psf_row_size = optional(cols, "psf_row_size", psf_int)?;
        let psf_col_size = optional(cols, "psf_col_size", psf_int)?;
        let psf_box_size = optional(cols, "psf_box_size", psf_int)?;
        let psf_cutout_row = optional(cols, "psf_cutout_row", psf_float)?;
        let psf_cutout_col = optional(cols, "psf_cutout_col", psf_float)?;
        let psf_sigma = optional(cols, "psf_sigma", psf_float)?;
        if let Some(c) = &psf_start_row {
            check_width("psf_start_row", c, &ncutout)?;
        }
        for (name, c) in [
            ("psf_row_size", &psf_row_size),
            ("psf_col_size", &psf_col_size),
            ("psf_box_size", &psf_box_size),
        ] {
            if let Some(c) = c {
                check_width(name, c, &ncutout)?;
            }
        }
        for (name, c) in [
            ("psf_cutout_row", &psf_cutout_row),
            ("psf_cutout_col", &psf_cutout_col),
            ("psf_sigma", &psf_sigma),
        ] {
            if let Some(c) = c {
                check_width(name, c, &ncutout)?;
            }
        }
        if psf_row_size.is_some() != psf_col_size.is_some() {
            let missing = if psf_row_size.is_some() {
                "psf_col_size"
            } else {
                "psf_row_size"
            };
            return Err(ColumnError::new(
                missing,
                "missing column (psf_row_size and psf_col_size go together)".into(),
            ));
        }

        let mut ints = ints.into_iter();
        let mut floats = floats.into_iter();
        let mut next_i = || ints.next().unwrap_or_default();
        let (file_id, start_row, orig_start_row, orig_start_col) =
            (next_i(), next_i(), next_i(), next_i());
        let mut next_f = || floats.next().unwrap_or_default();
        let (orig_row, orig_col, cutout_row, cutout_col) = (next_f(), next_f(), next_f(), next_f());
        let (dudrow, dudcol, dvdrow, dvdcol) = (next_f(), next_f(), next_f(), next_f());
        Ok(Self {
            id,
            number,
            has_number,
            box_size,
            ncutout,
            ra,
            dec,
            file_id,
            start_row,
            orig_row,
            orig_col,
            orig_start_row,
            orig_start_col,
            cutout_row,
            cutout_col,
            dudrow,
            dudcol,
            dvdrow,
            dvdcol,
            psf_start_row,
            psf_row_size,
            psf_col_size,
            psf_box_size,
            psf_cutout_row,
            psf_cutout_col,
            psf_sigma,
        })
    }

    /// Number of objects (rows).
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// True for a table without rows.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Whether the `number` column was present.
    pub fn has_number(&self) -> bool {
        self.has_number
    }

    /// The per-cutout width (`NMAX`) of the table.
    pub fn ncutout_max(&self) -> usize {
        self.file_id.width()
    }
}

/// The MEDS `image_info` table: one row per source image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageInfo {
    /// Source image paths (`image_path`), trailing blanks removed.
    pub image_path: Vec<String>,
    /// `image_id` when present.
    pub image_id: Option<Vec<i64>>,
    /// `image_flags` when present.
    pub image_flags: Option<Vec<i64>>,
    /// `magzp` when present.
    pub magzp: Option<Vec<f64>>,
    /// `scale` when present.
    pub scale: Option<Vec<f64>>,
    /// `position_offset` when present (1 for files whose positions were 1-based).
    pub position_offset: Option<Vec<f64>>,
    /// All columns, for anything else (`wcs`, `weight_path`, ...).
    pub columns: Columns,
}

impl ImageInfo {
    /// Decode `image_info`: `image_path` (a string column) is required; `image_id`,
    /// `image_flags` (integers), `magzp`, `scale`, `position_offset` (numbers) are optional
    /// but must have one value per row when present.
    ///
    /// # Errors
    /// A [`ColumnError`] naming the offending column.
    pub fn from_columns(cols: &Columns) -> Result<Self, ColumnError> {
        cols.validate()?;
        let c = cols.require("image_path")?;
        let image_path = match (&c.data, c.repeat) {
            (ColumnData::Str(v), 1) => v.clone(),
            (ColumnData::Str(_), r) => {
                return Err(ColumnError::new(
                    &c.name,
                    format!("expected one string per row, found {r}"),
                ))
            }
            (d, _) => {
                return Err(ColumnError::new(
                    &c.name,
                    format!("expected a string column, found {}", d.type_name()),
                ))
            }
        };
        Ok(Self {
            image_path,
            image_id: optional(cols, "image_id", scalar_int)?,
            image_flags: optional(cols, "image_flags", scalar_int)?,
            magzp: optional(cols, "magzp", scalar_float)?,
            scale: optional(cols, "scale", scalar_float)?,
            position_offset: optional(cols, "position_offset", scalar_float)?,
            columns: cols.clone(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.image_path.len()
    }

    /// True for an empty table.
    pub fn is_empty(&self) -> bool {
        self.image_path.is_empty()
    }
}

/// Check a decoded table's row count against an expectation (e.g. all MEDS files of a run
/// having the same number of objects).
pub fn check_nrows(cols: &Columns, expected: usize) -> Result<(), ColumnError> {
    if cols.nrows() == expected {
        Ok(())
    } else {
        Err(ColumnError::table(format!(
            "table has {} rows, expected {expected}",
            cols.nrows()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(name: &str, repeat: usize, v: Vec<i64>) -> Column {
        Column::new(name, ColKind::I64, repeat, ColumnData::Int(v))
    }
    fn floats(name: &str, repeat: usize, v: Vec<f64>) -> Column {
        Column::new(name, ColKind::F64, repeat, ColumnData::Float(v))
    }

    fn minimal(nobj: usize, nmax: usize) -> Vec<Column> {
        let n = nobj * nmax;
        let mut cols = vec![
            ints("id", 1, (0..nobj as i64).collect()),
            ints("box_size", 1, vec![32; nobj]),
            ints("ncutout", 1, vec![nmax as i64; nobj]),
            floats("ra", 1, vec![1.0; nobj]),
            floats("dec", 1, vec![2.0; nobj]),
        ];
        for name in PER_CUTOUT_INT {
            cols.push(ints(name, nmax, vec![0; n]));
        }
        for name in PER_CUTOUT_FLOAT {
            cols.push(floats(name, nmax, vec![0.5; n]));
        }
        cols
    }

    #[test]
    fn decodes_minimal_table() {
        let od = ObjectData::from_columns(&Columns::new(4, minimal(4, 3))).unwrap();
        assert_eq!(od.len(), 4);
        assert_eq!(od.number, vec![1, 2, 3, 4]);
        assert!(!od.has_number());
        assert_eq!(od.ncutout_max(), 3);
        assert_eq!(od.cutout_row.get(3, 2), Some(0.5));
        assert_eq!(od.cutout_row.get(3, 3), None);
        assert_eq!(od.cutout_row.get(4, 0), None);
    }

    #[test]
    fn missing_column_is_named() {
        let cols: Vec<_> = minimal(2, 2)
            .into_iter()
            .filter(|c| c.name != "cutout_row")
            .collect();
        let e = ObjectData::from_columns(&Columns::new(2, cols)).unwrap_err();
        assert_eq!(e.column.as_deref(), Some("cutout_row"));
        assert!(e.to_string().contains("missing"));
    }

    #[test]
    fn ncutout_wider_than_column_is_rejected() {
        let mut cols = minimal(2, 2);
        cols[2] = ints("ncutout", 1, vec![2, 3]);
        let e = ObjectData::from_columns(&Columns::new(2, cols)).unwrap_err();
        assert_eq!(e.column.as_deref(), Some("file_id"));
        assert!(e.msg.contains("ncutout 3"), "{e}");
    }

    #[test]
    fn wrong_type_and_length_are_rejected() {
        let mut cols = minimal(2, 2);
        cols[0] = floats("id", 1, vec![1.0, 2.0]);
        let e = ObjectData::from_columns(&Columns::new(2, cols)).unwrap_err();
        assert!(e.to_string().contains("'id'"), "{e}");

        let mut cols = minimal(2, 2);
        cols[1] = ints("box_size", 1, vec![1]);
        let e = ObjectData::from_columns(&Columns::new(2, cols)).unwrap_err();
        assert!(e.to_string().contains("'box_size'"), "{e}");

        let mut cols = minimal(2, 2);
        cols[0] = Column::new("id", ColKind::F64, 1, ColumnData::Int(vec![1, 2]));
        assert!(ObjectData::from_columns(&Columns::new(2, cols)).is_err());
    }

    #[test]
    fn case_insensitive_names_and_broadcast_psf_size() {
        let mut cols = minimal(2, 3);
        cols[0].name = "ID".into();
        cols.push(ints("psf_row_size", 1, vec![25, 25]));
        cols.push(ints("psf_col_size", 1, vec![21, 21]));
        let od = ObjectData::from_columns(&Columns::new(2, cols)).unwrap();
        assert_eq!(od.psf_row_size.as_ref().unwrap().get(1, 2), Some(25));
        assert_eq!(od.psf_col_size.as_ref().unwrap().get(1, 2), Some(21));
    }

    #[test]
    fn only_psf_columns_broadcast() {
        let od = ObjectData::from_columns(&Columns::new(2, minimal(2, 1))).unwrap();
        assert_eq!(od.file_id.get(1, 0), Some(0));
        assert_eq!(od.file_id.get(1, 1), None);
        assert!(!od.file_id.is_per_object());
        let p = PerCutout::per_object(vec![5, 6]);
        assert_eq!((p.get(1, 7), p.get(2, 0)), (Some(6), None));
        assert!(PerCutout::new(vec![1, 2, 3], 2).is_none());
        assert!(PerCutout::<i32>::new(vec![], 0).is_some());
    }

    #[test]
    fn image_info_needs_string_path() {
        let cols = Columns::new(
            2,
            vec![Column::new(
                "image_path",
                ColKind::Str { width: 8 },
                1,
                ColumnData::Str(vec!["a".into(), "b".into()]),
            )],
        );
        let ii = ImageInfo::from_columns(&cols).unwrap();
        assert_eq!(ii.len(), 2);
        let bad = Columns::new(2, vec![ints("image_path", 1, vec![1, 2])]);
        let e = ImageInfo::from_columns(&bad).unwrap_err();
        assert!(e.to_string().contains("image_path"));
    }
}
