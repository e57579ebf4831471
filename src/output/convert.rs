//! Conversions between tables read from FITS ([`Columns`]) and output [`Table`]s.

use crate::backends::meds::{ColKind, Column, ColumnData, Columns};
use crate::error::{Error, Result};
use crate::output::table::{Col, ColSpec, Kind, Table};

/// The output type that holds a column of this FITS type (`None` for types the output tables do
/// not have: complex, bit, ...).
pub fn output_kind(kind: ColKind) -> Option<Kind> {
    Some(match kind {
        ColKind::I16 | ColKind::U8 | ColKind::I8 => Kind::I16,
        ColKind::I32 | ColKind::U16 | ColKind::Bool => Kind::I32,
        ColKind::I64 | ColKind::U32 | ColKind::U64 => Kind::I64,
        ColKind::F32 => Kind::F32,
        ColKind::F64 => Kind::F64,
        ColKind::Str { width } => Kind::Str(width),
        ColKind::Unsupported => return None,
    })
}

/// A table with the columns of `cols` (types kept; one-element columns become scalars).
pub fn table_from_columns(cols: &Columns) -> Table {
    let mut specs = Vec::new();
    for c in cols.columns() {
        let Some(kind) = output_kind(c.kind) else {
            continue;
        };
        let shape: Vec<usize> = match (&c.dims, c.kind) {
            (_, ColKind::Str { .. }) => vec![],
            (Some(d), _) if d.len() > 1 => d.iter().rev().copied().collect(),
            _ if c.repeat > 1 => vec![c.repeat],
            _ => vec![],
        };
        specs.push(ColSpec::new(c.name.clone(), kind, &shape, 0.0));
    }
    let mut t = Table::new(specs);
    let handles: Vec<Option<Col>> = cols.columns().iter().map(|c| t.col(&c.name).ok()).collect();
    for r in 0..cols.nrows() {
        t.push_default();
        for (c, h) in cols.columns().iter().zip(&handles) {
            let Some(h) = *h else { continue };
            copy_cell(&mut t, r, h, c);
        }
    }
    t
}

/// Copy row `r` of the read-back column `c` into column `h` of `t` (numbers as f64, booleans
/// as 0/1, strings as they are).
pub(crate) fn copy_cell(t: &mut Table, r: usize, h: Col, c: &Column) {
    let rep = c.repeat.max(1);
    let cell = r * rep..(r + 1) * rep;
    match &c.data {
        ColumnData::Int(v) => {
            let vals: Vec<f64> = v[cell].iter().map(|&x| x as f64).collect();
            t.set(r, h, &vals);
        }
        ColumnData::Float(v) => t.set(r, h, &v[cell]),
        ColumnData::Bool(v) => {
            let vals: Vec<f64> = v[cell].iter().map(|&x| f64::from(u8::from(x))).collect();
            t.set(r, h, &vals);
        }
        ColumnData::Str(v) => t.set_str(r, h, &v[r]),
        ColumnData::Unsupported(_) => {}
    }
}

/// Rebuild a table of schema `specs` from columns read back from a file (checkpoints). Every
/// column of the schema must be present with the right size.
pub fn table_with_schema(specs: Vec<ColSpec>, cols: &Columns, what: &str) -> Result<Table> {
    let mut t = Table::new(specs.clone());
    for _ in 0..cols.nrows() {
        t.push_default();
    }
    for s in &specs {
        let c = cols
            .get(&s.name)
            .ok_or_else(|| Error::Invalid(format!("{what}: column {} missing", s.name)))?;
        let rep = s.shape.iter().product::<usize>().max(1);
        let vals: Vec<f64> = match &c.data {
            ColumnData::Int(v) => v.iter().map(|&x| x as f64).collect(),
            ColumnData::Float(v) => v.clone(),
            _ => {
                return Err(Error::Invalid(format!(
                    "{what}: column {} has an unexpected type",
                    s.name
                )))
            }
        };
        if vals.len() != rep * cols.nrows() {
            return Err(Error::Invalid(format!(
                "{what}: column {} has the wrong size",
                s.name
            )));
        }
        let h = t.col(&s.name)?;
        for r in 0..cols.nrows() {
            t.set(r, h, &vals[r * rep..(r + 1) * rep]);
        }
    }
    Ok(t)
}
