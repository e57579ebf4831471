//! The input decoding and checks of the `meds_columns` fuzz target, shared with the replay test
//! `tests/desio_fuzz_replay.rs` (which includes this file with `#[path]`), so that the corpus
//! replay runs exactly what the fuzzer runs. Plain Rust: no libfuzzer, no `arbitrary`.
//!
//! Input format: see `meds_columns.rs`. Bytes are taken one at a time from the front; once the
//! input runs out every byte reads as 0 (as `arbitrary::Unstructured` does for `u8`).

use ngmixer::backends::meds::{
    ColKind, Column, ColumnData, Columns, ImageInfo, ObjectData, PerCutout,
};

/// A byte cursor: 0 once exhausted.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Read from the front of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    /// The next byte, 0 once the input is used up.
    pub fn next(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    /// True when no byte is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

const NAMES: [&str; 32] = [
    "id",
    "number",
    "box_size",
    "ncutout",
    "ra",
    "dec",
    "file_id",
    "start_row",
    "orig_row",
    "orig_col",
    "orig_start_row",
    "orig_start_col",
    "cutout_row",
    "cutout_col",
    "dudrow",
    "dudcol",
    "dvdrow",
    "dvdcol",
    "psf_start_row",
    "psf_row_size",
    "psf_col_size",
    "psf_box_size",
    "psf_cutout_row",
    "psf_cutout_col",
    "psf_sigma",
    "image_path",
    "image_id",
    "image_flags",
    "magzp",
    "scale",
    "position_offset",
    "NCUTOUT",
];

const KINDS: [ColKind; 7] = [
    ColKind::I64,
    ColKind::I32,
    ColKind::F64,
    ColKind::F32,
    ColKind::Bool,
    ColKind::Str { width: 8 },
    ColKind::Unsupported,
];

fn byte(u: &mut Bytes<'_>) -> u8 {
    u.next()
}

/// A value of the column's data type, from a couple of bytes: mostly small numbers (valid
/// indices and sizes), sometimes extremes.
fn int_value(u: &mut Bytes<'_>) -> i64 {
    match byte(u) % 8 {
        0 => i64::MAX,
        1 => i64::MIN,
        2 => -(byte(u) as i64),
        3 => (byte(u) as i64) << 40,
        _ => byte(u) as i64,
    }
}

fn float_value(u: &mut Bytes<'_>) -> f64 {
    match byte(u) % 8 {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -1e300,
        3 => 0.0,
        _ => byte(u) as f64 / 8.0,
    }
}

fn data_for(kind: ColKind, n: usize, u: &mut Bytes<'_>) -> ColumnData {
    match kind {
        ColKind::Bool => ColumnData::Bool((0..n).map(|_| byte(u) & 1 == 1).collect()),
        ColKind::F32 | ColKind::F64 => ColumnData::Float((0..n).map(|_| float_value(u)).collect()),
        ColKind::Str { .. } => ColumnData::Str((0..n).map(|_| format!("f{}", byte(u))).collect()),
        ColKind::Unsupported => ColumnData::Unsupported("fuzz".into()),
        _ => ColumnData::Int((0..n).map(|_| int_value(u)).collect()),
    }
}

/// A valid MEDS column set: every object has `nmax` cutouts of box 4 back to back.
fn template(nrows: usize, nmax: usize) -> Vec<Column> {
    let int = |name: &str, repeat: usize, v: Vec<i64>| {
        Column::new(name, ColKind::I64, repeat, ColumnData::Int(v))
    };
    let flt = |name: &str, repeat: usize, v: Vec<f64>| {
        Column::new(name, ColKind::F64, repeat, ColumnData::Float(v))
    };
    let n = nrows * nmax;
    let mut cols = vec![
        int("id", 1, (0..nrows as i64).collect()),
        int("number", 1, (1..=nrows as i64).collect()),
        int("box_size", 1, vec![4; nrows]),
        int("ncutout", 1, vec![nmax as i64; nrows]),
        flt("ra", 1, vec![10.0; nrows]),
        flt("dec", 1, vec![-20.0; nrows]),
        int(
            "file_id",
            nmax,
            (0..n as i64).map(|k| k % nmax as i64).collect(),
        ),
        int("start_row", nmax, (0..n as i64).map(|k| 16 * k).collect()),
        int("orig_start_row", nmax, vec![3; n]),
        int("orig_start_col", nmax, vec![5; n]),
        int(
            "psf_start_row",
            nmax,
            (0..n as i64).map(|k| 9 * k).collect(),
        ),
        int("psf_row_size", nmax, vec![3; n]),
        int("psf_col_size", 1, vec![3; nrows]),
    ];
    for name in ["orig_row", "orig_col", "cutout_row", "cutout_col"] {
        cols.push(flt(name, nmax, vec![1.5; n]));
    }
    for (name, v) in [
        ("dudrow", 0.0),
        ("dudcol", 0.263),
        ("dvdrow", 0.263),
        ("dvdcol", 0.0),
    ] {
        cols.push(flt(name, nmax, vec![v; n]));
    }
    cols.push(Column::new(
        "image_path",
        ColKind::Str { width: 8 },
        1,
        ColumnData::Str((0..nrows).map(|i| format!("im{i}.fits")).collect()),
    ));
    cols.push(flt("magzp", 1, vec![30.0; nrows]));
    cols
}

fn edit(cols: &mut Vec<Column>, nrows: usize, u: &mut Bytes<'_>) {
    let (op, a, b) = (byte(u) % 6, byte(u) as usize, byte(u) as usize);
    let pick = |len: usize| if len == 0 { None } else { Some(a % len) };
    match op {
        0 => {
            if let Some(i) = pick(cols.len()) {
                cols.remove(i);
            }
        }
        1 => {
            if let Some(i) = pick(cols.len()) {
                cols[i].repeat = b % 6;
            }
        }
        2 => {
            if let Some(i) = pick(cols.len()) {
                match &mut cols[i].data {
                    ColumnData::Int(v) if !v.is_empty() => {
                        let k = b % v.len();
                        v[k] = int_value(u);
                    }
                    ColumnData::Float(v) if !v.is_empty() => {
                        let k = b % v.len();
                        v[k] = float_value(u);
                    }
                    ColumnData::Int(v) => v.push(int_value(u)),
                    ColumnData::Float(v) => v.push(float_value(u)),
                    _ => {}
                }
            }
        }
        3 => {
            if let Some(i) = pick(cols.len()) {
                cols[i].kind = KINDS[b % KINDS.len()];
            }
        }
        4 => {
            if let Some(i) = pick(cols.len()) {
                cols[i].name = NAMES[b % NAMES.len()].to_string();
            }
        }
        _ => {
            let kind = KINDS[b % KINDS.len()];
            let repeat = byte(u) as usize % 5;
            let n = nrows * repeat;
            let data = data_for(kind, n, u);
            cols.push(Column::new(NAMES[a % NAMES.len()], kind, repeat, data));
        }
    }
}

/// Touch everything a caller would after a successful decode.
fn exercise(od: &ObjectData) {
    let n = od.len();
    assert_eq!(od.number.len(), n);
    let per: [&PerCutout<f64>; 8] = [
        &od.orig_row,
        &od.orig_col,
        &od.cutout_row,
        &od.cutout_col,
        &od.dudrow,
        &od.dudcol,
        &od.dvdrow,
        &od.dvdcol,
    ];
    for iobj in 0..n + 1 {
        let ncut = od.ncutout.get(iobj).copied().unwrap_or(0);
        assert!(ncut >= 0);
        for icut in 0..(ncut.min(8) as usize + 1) {
            let inside = iobj < n && (icut as i64) < ncut;
            for c in per {
                // Every cutout below ncutout must have a value.
                assert!(!inside || c.get(iobj, icut).is_some());
            }
            for c in [
                &od.file_id,
                &od.start_row,
                &od.orig_start_row,
                &od.orig_start_col,
            ] {
                assert!(!inside || c.get(iobj, icut).is_some());
            }
            for c in [
                &od.psf_start_row,
                &od.psf_row_size,
                &od.psf_col_size,
                &od.psf_box_size,
            ]
            .into_iter()
            .flatten()
            {
                assert!(!inside || c.get(iobj, icut).is_some());
            }
            let _ = od.cutout_row.row(iobj);
        }
    }
    let _ = od.ncutout_max();
}

/// Decode one fuzz input, run the decoders and check what they accept; panics only on a
/// violated invariant (the fuzzer's crash signal).
pub fn run(data: &[u8]) {
    let mut u = Bytes::new(data);
    let nrows = byte(&mut u) as usize % 9;
    let nmax = 1 + byte(&mut u) as usize % 4;
    let mut cols = if byte(&mut u).is_multiple_of(2) {
        template(nrows, nmax)
    } else {
        Vec::new()
    };
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        edit(&mut cols, nrows, &mut u);
    }
    let cols = Columns::new(nrows, cols);
    let _ = cols.validate();
    let _ = cols.get("id");
    if let Ok(od) = ObjectData::from_columns(&cols) {
        exercise(&od);
    }
    if let Ok(ii) = ImageInfo::from_columns(&cols) {
        assert_eq!(ii.image_path.len(), nrows);
    }
}
