//! The affine map between pixel `(row, col)` and sky `(v, u)` coordinates.

use crate::error::{GMixError, GResult};

/// Affine Jacobian of ngmix: `v = dvdrow (row-row0) + dvdcol (col-col0)`,
/// `u = dudrow (row-row0) + dudcol (col-col0)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jacobian {
    /// Row of the centre (pixel units, 0-based).
    pub row0: f64,
    /// Column of the centre.
    pub col0: f64,
    /// dv/drow.
    pub dvdrow: f64,
    /// dv/dcol.
    pub dvdcol: f64,
    /// du/drow.
    pub dudrow: f64,
    /// du/dcol.
    pub dudcol: f64,
    det: f64,
    scale: f64,
}

impl Jacobian {
    /// Build from the centre and the four derivatives (MEDS column order `dudrow, dudcol,
    /// dvdrow, dvdcol`). Fails for a singular or non-finite matrix.
    pub fn new(
        row0: f64,
        col0: f64,
        dudrow: f64,
        dudcol: f64,
        dvdrow: f64,
        dvdcol: f64,
    ) -> GResult<Self> {
        let det = dudcol * dvdrow - dudrow * dvdcol;
        let all = [row0, col0, dudrow, dudcol, dvdrow, dvdcol];
        if !all.iter().all(|x| x.is_finite()) {
            return Err(GMixError::Range("jacobian has non-finite elements"));
        }
        if det == 0.0 {
            return Err(GMixError::Range("jacobian is singular"));
        }
        Ok(Self {
            row0,
            col0,
            dvdrow,
            dvdcol,
            dudrow,
            dudcol,
            det,
            scale: det.abs().sqrt(),
        })
    }

    /// A diagonal Jacobian with `dudcol = dvdrow = scale` (ngmix `DiagonalJacobian`).
    pub fn diagonal(row0: f64, col0: f64, scale: f64) -> GResult<Self> {
        Self::new(row0, col0, 0.0, scale, scale, 0.0)
    }

    /// Unit pixel scale centred at `(row0, col0)`.
    pub fn unit(row0: f64, col0: f64) -> Self {
        Self {
            row0,
            col0,
            dvdrow: 1.0,
            dvdcol: 0.0,
            dudrow: 0.0,
            dudcol: 1.0,
            det: 1.0,
            scale: 1.0,
        }
    }

    /// Determinant `dudcol dvdrow - dudrow dvdcol` (may be negative).
    #[inline]
    pub fn det(&self) -> f64 {
        self.det
    }

    /// Linear pixel scale `sqrt(|det|)`.
    #[inline]
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Pixel area `|det|`.
    #[inline]
    pub fn area(&self) -> f64 {
        self.scale * self.scale
    }

    /// Centre `(row0, col0)`.
    #[inline]
    pub fn cen(&self) -> (f64, f64) {
        (self.row0, self.col0)
    }

    /// A copy moved to a new centre.
    #[inline]
    pub fn with_cen(&self, row0: f64, col0: f64) -> Self {
        Self {
            row0,
            col0,
            ..*self
        }
    }

    /// Sky coordinates `(v, u)` of pixel `(row, col)`.
    #[inline]
    pub fn vu(&self, row: f64, col: f64) -> (f64, f64) {
        let dr = row - self.row0;
        let dc = col - self.col0;
        (
            self.dvdrow * dr + self.dvdcol * dc,
            self.dudrow * dr + self.dudcol * dc,
        )
    }

    /// Pixel coordinates `(row, col)` of sky point `(v, u)`.
    #[inline]
    pub fn rowcol(&self, v: f64, u: f64) -> (f64, f64) {
        (
            self.row0 + (self.dudcol * v - self.dvdcol * u) / self.det,
            self.col0 + (-self.dudrow * v + self.dvdrow * u) / self.det,
        )
    }
}
