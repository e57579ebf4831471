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

    /// Set the values of column `name` in `row` (`vals.len()` must not exceed the row size);
    /// unknown names are ignored and reported as `false`.
    pub fn set(&mut self, row: usize, name: &str, vals: &[f64]) -> bool {
        let Some(&i) = self.index.get(name) else {
            return false;
        };
        let c = &mut self.cols[i];
        let r = c.repeat();
        let n = vals.len().min(r);
        c.num[row * r..row * r + n].copy_from_slice(&vals[..n]);
        true
    }

    /// Set a scalar.
    pub fn set1(&mut self, row: usize, name: &str, v: f64) -> bool {
        self.set(row, name, &[v])
    }

    /// Set a string value.
    pub fn set_str(&mut self, row: usize, name: &str, v: &str) -> bool {
        let Some(&i) = self.index.get(name) else {
            return false;
        };
        self.cols[i].strs[row] = v.to_string();
        true
    }

    /// The values of `name` in `row`.
    pub fn get(&self, row: usize, name: &str) -> Option<&[f64]> {
        let c = self.column(name)?;
        let r = c.repeat();
        c.num.get(row * r..(row + 1) * r)
    }

    /// Append all rows of `other`, which must have the same schema.
    pub fn append(&mut self, other: &Table) -> bool {
        if self.specs() != other.specs() {
            return false;
        }
        for (a, b) in self.cols.iter_mut().zip(&other.cols) {
            a.num.extend_from_slice(&b.num);
            a.strs.extend_from_slice(&b.strs);
        }
        self.nrows += other.nrows;
        true
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
