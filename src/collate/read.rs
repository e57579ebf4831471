//! Reading one chunk output: its tables with their FITS shapes kept (`1J` stays a one-element
//! array, not a scalar) and the integer cards of `epoch_data`.

use std::path::Path;

use crate::backends::meds::{ColKind, Columns, FitsHandle};
use crate::error::{Error, Result};
use crate::output::{ColSpec, Table};

/// The extensions of an ngmixit output.
pub const MODEL_FITS: &str = "model_fits";
/// Per-epoch rows.
pub const EPOCH_DATA: &str = "epoch_data";
/// Neighbour rows (multi-object fits; absent when there are none).
pub const NBRS_DATA: &str = "nbrs_data";
/// One row per band.
pub const META_DATA: &str = "meta_data";
/// Program versions.
pub const GITHASHES: &str = "githashes";

/// The tables of one chunk.
#[derive(Debug, Clone)]
pub(crate) struct ChunkTables {
    pub model_fits: Table,
    pub epoch_data: Table,
    pub nbrs_data: Option<Table>,
    pub meta_data: Table,
    pub githashes: Option<Table>,
    /// `NDROP*` cards of `epoch_data` (name, value, comment).
    pub epoch_keys: Vec<(String, i64, String)>,
}

fn tforms(path: &Path, hdu: &str, ncols: usize) -> Result<Vec<String>> {
    let e = |x: fitsio::errors::Error| Error::Fits {
        path: path.to_path_buf(),
        hdu: Some(hdu.to_string()),
        msg: x.to_string(),
    };
    let mut f = fitsio::FitsFile::open(path).map_err(e)?;
    let h = f.hdu(hdu).map_err(e)?;
    (1..=ncols)
        .map(|i| {
            h.read_key::<String>(&mut f, &format!("TFORM{i}"))
                .map_err(e)
        })
        .collect()
}

/// A [`Table`] from columns read back, with the per-row shapes the file declares: `TDIM`
/// matrices, `nJ` arrays (also `n = 1`), scalars.
pub(crate) fn table_from_file_columns(cols: &Columns, tforms: &[String]) -> Result<Table> {
    let mut specs = Vec::new();
    for (i, c) in cols.columns().iter().enumerate() {
        let kind = crate::output::convert::output_kind(c.kind).ok_or_else(|| {
            Error::Invalid(format!(
                "column '{}' has a type collation cannot copy",
                c.name
            ))
        })?;
        let array_form = tforms
            .get(i)
            .is_some_and(|t| t.trim().starts_with(|ch: char| ch.is_ascii_digit()));
        let shape: Vec<usize> = match (&c.dims, c.kind) {
            (_, ColKind::Str { .. }) => vec![],
            (Some(d), _) if d.len() > 1 => d.iter().rev().copied().collect(),
            _ if c.repeat > 1 || array_form => vec![c.repeat],
            _ => vec![],
        };
        if c.repeat != 1 && matches!(c.kind, ColKind::Str { .. }) {
            return Err(Error::Invalid(format!(
                "column '{}' holds {} strings per row; collation copies one",
                c.name, c.repeat
            )));
        }
        specs.push(ColSpec::new(c.name.clone(), kind, &shape, 0.0));
    }
    let mut t = Table::new(specs);
    for _ in 0..cols.nrows() {
        t.push_default();
    }
    for c in cols.columns() {
        let h = t.col(&c.name)?;
        for r in 0..cols.nrows() {
            crate::output::convert::copy_cell(&mut t, r, h, c);
        }
    }
    Ok(t)
}

fn read_one(h: &mut FitsHandle, path: &Path, hdu: &str) -> Result<Table> {
    let cols = h.read_table(hdu)?;
    cols.validate().map_err(|e| Error::Fits {
        path: path.to_path_buf(),
        hdu: Some(hdu.to_string()),
        msg: e.to_string(),
    })?;
    let tf = tforms(path, hdu, cols.ncols())?;
    table_from_file_columns(&cols, &tf).map_err(|e| match e {
        Error::Invalid(msg) => Error::Fits {
            path: path.to_path_buf(),
            hdu: Some(hdu.to_string()),
            msg,
        },
        other => other,
    })
}

/// Read every table of the chunk output at `path`.
pub(crate) fn read_chunk(path: &Path) -> Result<ChunkTables> {
    let mut h = FitsHandle::open(path)?;
    for need in [MODEL_FITS, EPOCH_DATA, META_DATA] {
        if h.find(need).is_none() {
            return Err(Error::Fits {
                path: path.to_path_buf(),
                hdu: Some(need.to_string()),
                msg: format!("required HDU '{need}' not found (not an ngmixit output?)"),
            });
        }
    }
    let model_fits = read_one(&mut h, path, MODEL_FITS)?;
    let epoch_data = read_one(&mut h, path, EPOCH_DATA)?;
    let nbrs_data = match h.find(NBRS_DATA) {
        Some(_) => Some(read_one(&mut h, path, NBRS_DATA)?),
        None => None,
    };
    let meta_data = read_one(&mut h, path, META_DATA)?;
    let githashes = match h.find(GITHASHES) {
        Some(_) => Some(read_one(&mut h, path, GITHASHES)?),
        None => None,
    };
    let mut epoch_keys = Vec::new();
    if let Some(v) = h.key_i64(EPOCH_DATA, "NDROP")? {
        epoch_keys.push((
            "NDROP".to_string(),
            v,
            "unusable SE cutouts, all bands".to_string(),
        ));
        for b in 0.. {
            let name = format!("NDROP{b}");
            match h.key_i64(EPOCH_DATA, &name)? {
                Some(v) => epoch_keys.push((name, v, "unusable SE cutouts of this band".into())),
                None => break,
            }
        }
    }
    Ok(ChunkTables {
        model_fits,
        epoch_data,
        nbrs_data,
        meta_data,
        githashes,
        epoch_keys,
    })
}
