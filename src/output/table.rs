//! A column-oriented output table with a fixed schema (names, types, per-row shapes, defaults).

use std::collections::HashMap;

/// Element type of an output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `i2`.
    I16,
    /// `i4`.
    I32,
    /// `i8`.
    I64,
    /// `f4`.
    F32,
    /// `f8`.
    F64,
    /// Fixed-width string of `n` bytes.
    Str(usize),
}

/// One column: name, element type, per-row shape (empty = scalar), default and the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Element type.
    pub kind: Kind,
    /// Per-row shape in C order (`[np, np]` for a covariance).
    pub shape: Vec<usize>,
    /// Numeric data (all numeric kinds are stored as f64 and converted on write; i64 values up
    /// to 2^53 are exact), row-major.
    pub num: Vec<f64>,
    /// String data (for `Kind::Str`).
    pub strs: Vec<String>,
    default: f64,
}

impl Column {
    /// Elements per row.
    pub fn repeat(&self) -> usize {
        self.shape.iter().product::<usize>().max(1)
    }
}

/// Column specification used to build a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ColSpec {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: Kind,
    /// Per-row shape.
    pub shape: Vec<usize>,
    /// Default value of new rows.
    pub default: f64,
}

impl ColSpec {
    /// A new spec.
    pub fn new(name: impl Into<String>, kind: Kind, shape: &[usize], default: f64) -> Self {
        Self {
            name: name.into(),
            kind,
            shape: shape.to_vec(),
            default,
        }
    }
}

/// A typed handle on one column of a table schema, resolved once by [`Table::col`]: a
/// misspelt name is an error when the handle is made, never a value silently left at its
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    index: usize,
    repeat: usize,
}

/// A column that the schema does not have (or, from [`Table::append`], one that differs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("output schema has no column '{0}'")]
pub struct SchemaError(pub String);

/// A table of rows sharing one schema.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    cols: Vec<Column>,
    index: HashMap<String, usize>,
    nrows: usize,
}

impl Table {
    /// An empty table with this schema. Duplicate names keep the first.
    pub fn new(specs: Vec<ColSpec>) -> Self {
        let mut t = Table::default();
        for s in specs {
            if t.index.contains_key(&s.name) {
                continue;
            }
            t.index.insert(s.name.clone(), t.cols.len());
            t.cols.push(Column {
                name: s.name,
                kind: s.kind,
                shape: s.shape,
                num: Vec::new(),
                strs: Vec::new(),
                default: s.default,
            });
        }
        t
    }

    /// The schema of this table.
    pub fn specs(&self) -> Vec<ColSpec> {
        self.cols
            .iter()
            .map(|c| ColSpec::new(c.name.clone(), c.kind, &c.shape, c.default))
            .collect()
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.cols
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|&i| &self.cols[i])
    }

    /// Append a row of defaults and return its index.
    pub fn push_default(&mut self) -> usize {
        for c in &mut self.cols {
            let r = c.repeat();
            if let Kind::Str(_) = c.kind {
                c.strs.push(String::new());
            } else {
                c.num.extend(std::iter::repeat_n(c.default, r));
            }
        }
        self.nrows += 1;
        self.nrows - 1
    }

    /// The handle of column `name`, for the typed setters.
    ///
    /// # Errors
    /// [`SchemaError`] when the schema has no such column.
    pub fn col(&self, name: &str) -> Result<Col, SchemaError> {
        let &i = self
            .index
            .get(name)
            .ok_or_else(|| SchemaError(name.to_string()))?;
        Ok(Col {
            index: i,
            repeat: self.cols[i].repeat(),
        })
    }

    /// Set the first `vals.len()` values (at most a row) of column `col` in `row`.
    pub fn set(&mut self, row: usize, col: Col, vals: &[f64]) {
        let c = &mut self.cols[col.index];
        debug_assert_eq!(c.repeat(), col.repeat, "column handle of another schema");
        let r = col.repeat;
        let n = vals.len().min(r);
        c.num[row * r..row * r + n].copy_from_slice(&vals[..n]);
    }

    /// Set a scalar (the first element of the row).
    pub fn set1(&mut self, row: usize, col: Col, v: f64) {
        self.set(row, col, &[v]);
    }

    /// Set element `k` of the row of `col` (a per-band entry); `k` outside the row is ignored.
    pub fn set_at(&mut self, row: usize, col: Col, k: usize, v: f64) {
        if k < col.repeat {
            self.cols[col.index].num[row * col.repeat + k] = v;
        }
    }

    /// Set a string value.
    pub fn set_str(&mut self, row: usize, col: Col, v: &str) {
        self.cols[col.index].strs[row] = v.to_string();
    }

    /// Set the values of column `name` in `row` by name (generic code: copies, meta tables).
    ///
    /// # Errors
    /// [`SchemaError`] when the schema has no such column.
    pub fn set_named(&mut self, row: usize, name: &str, vals: &[f64]) -> Result<(), SchemaError> {
        let c = self.col(name)?;
        self.set(row, c, vals);
        Ok(())
    }

    /// Set a string value by name.
    ///
    /// # Errors
    /// [`SchemaError`] when the schema has no such column.
    pub fn set_str_named(&mut self, row: usize, name: &str, v: &str) -> Result<(), SchemaError> {
        let c = self.col(name)?;
        self.set_str(row, c, v);
        Ok(())
    }

    /// The values of `name` in `row`.
    pub fn get(&self, row: usize, name: &str) -> Option<&[f64]> {
        let c = self.column(name)?;
        let r = c.repeat();
        c.num.get(row * r..(row + 1) * r)
    }

    /// The values of column `col` in `row`.
    pub fn get_col(&self, row: usize, col: Col) -> &[f64] {
        let r = col.repeat;
        &self.cols[col.index].num[row * r..(row + 1) * r]
    }

    /// Append all rows of `other`, which must have the same schema.
    ///
    /// # Errors
    /// [`SchemaError`] naming the first column that differs (nothing is appended).
    pub fn append(&mut self, other: &Table) -> Result<(), SchemaError> {
        if self.cols.len() != other.cols.len() {
            return Err(SchemaError(format!(
                "<{} columns, not {}>",
                other.cols.len(),
                self.cols.len()
            )));
        }
        for (a, b) in self.cols.iter().zip(&other.cols) {
            if a.name != b.name || a.kind != b.kind || a.shape != b.shape || a.default != b.default
            {
                return Err(SchemaError(b.name.clone()));
            }
        }
        for (a, b) in self.cols.iter_mut().zip(&other.cols) {
            a.num.extend_from_slice(&b.num);
            a.strs.extend_from_slice(&b.strs);
        }
        self.nrows += other.nrows;
        Ok(())
    }

    /// A copy holding only the rows `keep` (in that order).
    pub fn select(&self, keep: &[usize]) -> Table {
        let mut t = Table::new(self.specs());
        for c in &mut t.cols {
            let src = &self.cols[self.index[&c.name]];
            let r = src.repeat();
            for &k in keep {
                if let Kind::Str(_) = c.kind {
                    c.strs.push(src.strs[k].clone());
                } else {
                    c.num.extend_from_slice(&src.num[k * r..(k + 1) * r]);
                }
            }
        }
        t.nrows = keep.len();
        t
    }
}
