//! Neighbour lists from coadd boxes (ngmixer `MedsNbrs`, spec §6.1).

use crate::config::{BuffType, NbrsPars};
use crate::error::{Error, Result};

/// Marker of an object without a valid coadd cutout origin.
pub const NO_START: i64 = -9999;

/// The band-independent coadd-box columns of one MEDS file (cutout 0 of every object).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CoaddBoxes {
    /// Where the columns came from (for messages).
    pub source: String,
    /// `id`.
    pub id: Vec<i64>,
    /// `number` (must be `index + 1`).
    pub number: Vec<i64>,
    /// `box_size`.
    pub box_size: Vec<i64>,
    /// `orig_start_row[:, 0]`.
    pub row0: Vec<i64>,
    /// `orig_start_col[:, 0]`.
    pub col0: Vec<i64>,
}

impl CoaddBoxes {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.number.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.number.is_empty()
    }

    /// Whether object `i` has a valid coadd origin.
    pub fn valid(&self, i: usize) -> bool {
        self.row0[i] != NO_START && self.col0[i] != NO_START
    }

    /// Check the column lengths and ngmixer's requirement `number == index + 1`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the source, the object row and the values.
    pub fn check(&self) -> Result<()> {
        let n = self.number.len();
        for (name, len) in [
            ("id", self.id.len()),
            ("box_size", self.box_size.len()),
            ("orig_start_row", self.row0.len()),
            ("orig_start_col", self.col0.len()),
        ] {
            if len != n {
                return Err(Error::Invalid(format!(
                    "{}: column '{name}' has {len} rows, 'number' has {n}",
                    self.source
                )));
            }
        }
        for (i, &num) in self.number.iter().enumerate() {
            if num != i as i64 + 1 {
                return Err(Error::Invalid(format!(
                    "{}: object_data row {i} (id {}) has number {num}; neighbour finding needs \
                     number == row + 1 (objects numbered 1..N in order)",
                    self.source, self.id[i]
                )));
            }
        }
        Ok(())
    }
}

/// One band's boxes after the `maxsize_to_replace` rule: sizes and bounds
/// `l = row0, r = l + size, b = col0, t = b + size`.
#[derive(Debug, Clone)]
struct Bounds {
    size: Vec<i64>,
    l: Vec<i64>,
    r: Vec<i64>,
    b: Vec<i64>,
    t: Vec<i64>,
}

impl Bounds {
    fn new(bx: &CoaddBoxes, pars: &NbrsPars) -> Self {
        let dsize = (pars.new_maxsize - pars.maxsize_to_replace).div_euclid(2);
        let n = bx.len();
        let mut size = bx.box_size.clone();
        let mut l = bx.row0.clone();
        let mut b = bx.col0.clone();
        for i in 0..n {
            if size[i] == pars.maxsize_to_replace {
                size[i] = pars.new_maxsize;
                l[i] -= dsize;
                b[i] -= dsize;
            }
        }
        let r = (0..n).map(|i| l[i] + size[i]).collect();
        let t = (0..n).map(|i| b[i] + size[i]).collect();
        Self { size, l, r, b, t }
    }

    /// ngmixer's test: in rows and in columns, each box's far edge lies at least the buffer
    /// beyond the other's near edge (an overlap of at least the buffer unless nested).
    fn overlap(&self, i: usize, j: usize, pars: &NbrsPars) -> bool {
        let (si, sj) = (self.size[i], self.size[j]);
        let buff = match pars.buff_type {
            BuffType::Min => si.min(sj),
            BuffType::Max => si.max(sj),
            BuffType::Tot => si + sj,
        } as f64
            * pars.buff_frac;
        let f = |v: i64| v as f64;
        !((f(self.l[i]) > f(self.r[j]) - buff)
            || (f(self.r[i]) < f(self.l[j]) + buff)
            || (f(self.t[i]) < f(self.b[j]) + buff)
            || (f(self.b[i]) > f(self.t[j]) - buff))
    }
}

/// The neighbour list: rows `(number, nbr_number)` sorted by `number`, one row per neighbour
/// and a single row `(number, -1)` for an object without neighbours (or without a valid coadd
/// origin).
///
/// `bands` are the coadd boxes of every band (the same objects); `seg(band, i)` returns the
/// coadd seg cutout of object `i` in that band, or `None` when it cannot be read (ngmixer
/// ignores such errors); it is called only with `check_seg`.
///
/// # Errors
/// [`Error::Invalid`] when the bands describe different objects, a `number` is not
/// `row + 1`, or a seg map holds a number that is not in the catalogue.
pub fn find_nbrs(
    bands: &[CoaddBoxes],
    pars: &NbrsPars,
    mut seg: impl FnMut(usize, usize) -> Option<Vec<i32>>,
) -> Result<Vec<(i64, i64)>> {
    let Some(first) = bands.first() else {
        return Err(Error::Invalid("neighbour finding needs a MEDS file".into()));
    };
    for bx in bands {
        bx.check()?;
        if bx.len() != first.len() || bx.id != first.id {
            return Err(Error::Invalid(format!(
                "{} and {} describe different objects (ids or counts differ)",
                first.source, bx.source
            )));
        }
    }
    if !(pars.buff_frac.is_finite()) {
        return Err(Error::Invalid(format!(
            "nbrs.buff_frac must be a finite number, got {}",
            pars.buff_frac
        )));
    }
    let bounds: Vec<Bounds> = bands.iter().map(|b| Bounds::new(b, pars)).collect();
    let n = first.len();
    let mut rows = Vec::with_capacity(n);
    let mut nb: Vec<i64> = Vec::new();
    for i in 0..n {
        nb.clear();
        for (band, bx) in bands.iter().enumerate() {
            band_nbrs(bx, &bounds[band], i, band, pars, &mut seg, &mut nb)?;
        }
        nb.sort_unstable();
        nb.dedup();
        // ngmixer keeps a -1 of one band next to another band's neighbours (numpy.unique over
        // the concatenated lists); such a row means nothing, so it is dropped here
        if nb.len() > 1 && nb[0] == -1 {
            nb.remove(0);
        }
        for &k in &nb {
            rows.push((first.number[i], k));
        }
    }
    // "sorted by number" with numpy's unstable argsort, as ngmixer does
    let keys: Vec<i64> = rows.iter().map(|r| r.0).collect();
    Ok(numpy_argsort(&keys).into_iter().map(|k| rows[k]).collect())
}

/// The neighbours of object `i` in one band (ngmixer `check_mindex`), appended to `out`.
fn band_nbrs(
    bx: &CoaddBoxes,
    bd: &Bounds,
    i: usize,
    band: usize,
    pars: &NbrsPars,
    seg: &mut impl FnMut(usize, usize) -> Option<Vec<i32>>,
    out: &mut Vec<i64>,
) -> Result<()> {
    if !bx.valid(i) {
        out.push(-1);
        return Ok(());
    }
    let mut found: Vec<i64> = (0..bx.len())
        .filter(|&j| j != i && bx.valid(j) && bd.overlap(i, j, pars))
        .map(|j| bx.number[j])
        .collect();
    if pars.check_seg {
        if let Some(s) = seg(band, i) {
            for &v in &s {
                let v = i64::from(v);
                if v > 0 && v != bx.number[i] {
                    if v as usize > bx.len() {
                        return Err(Error::Invalid(format!(
                            "{}: the coadd seg cutout of object id {} (number {}) holds \
                             number {v}, but the catalogue has only {} objects",
                            bx.source,
                            bx.id[i],
                            bx.number[i],
                            bx.len()
                        )));
                    }
                    found.push(v);
                }
            }
        }
    }
    found.retain(|&k| bx.valid((k - 1) as usize));
    found.sort_unstable();
    found.dedup();
    if found.is_empty() {
        out.push(-1);
    } else {
        out.extend_from_slice(&found);
    }
    Ok(())
}

/// The permutation numpy 1.x's default `argsort` (`kind='quicksort'`: introsort,
/// `npysort/quicksort.cpp` `aquicksort_`) returns for integer keys. It is not stable: ngmixer
/// sorts its neighbour list by `number` with it, which reorders the neighbours of an object,
/// and that order then decides the FoF labels; it is reproduced to give identical tables.
pub fn numpy_argsort(v: &[i64]) -> Vec<usize> {
    const SMALL_QUICKSORT: usize = 15;
    let num = v.len();
    let mut t: Vec<usize> = (0..num).collect();
    if num < 2 {
        return t;
    }
    let msb = (usize::BITS - 1 - num.leading_zeros()) as i64;
    let mut cdepth = msb * 2;
    let (mut pl, mut pr) = (0usize, num - 1);
    let mut stack: Vec<(usize, usize, i64)> = Vec::new();
    loop {
        let mut heap = false;
        if cdepth < 0 {
            heap = true;
        } else {
            while pr - pl > SMALL_QUICKSORT {
                let pm = pl + ((pr - pl) >> 1);
                if v[t[pm]] < v[t[pl]] {
                    t.swap(pm, pl);
                }
                if v[t[pr]] < v[t[pm]] {
                    t.swap(pr, pm);
                }
                if v[t[pm]] < v[t[pl]] {
                    t.swap(pm, pl);
                }
                let vp = v[t[pm]];
                let mut pi = pl;
                let mut pj = pr - 1;
                t.swap(pm, pj);
                loop {
                    pi += 1;
                    while v[t[pi]] < vp {
                        pi += 1;
                    }
                    pj -= 1;
                    while vp < v[t[pj]] {
                        pj -= 1;
                    }
                    if pi >= pj {
                        break;
                    }
                    t.swap(pi, pj);
                }
                t.swap(pi, pr - 1);
                cdepth -= 1;
                if pi - pl < pr - pi {
                    stack.push((pi + 1, pr, cdepth));
                    pr = pi - 1;
                } else {
                    stack.push((pl, pi - 1, cdepth));
                    pl = pi + 1;
                }
            }
        }
        if heap {
            aheapsort(v, &mut t[pl..=pr]);
        } else {
            for pi in pl + 1..=pr {
                let vi = t[pi];
                let vp = v[vi];
                let mut pj = pi;
                while pj > pl && vp < v[t[pj - 1]] {
                    t[pj] = t[pj - 1];
                    pj -= 1;
                }
                t[pj] = vi;
            }
        }
        match stack.pop() {
            None => break,
            Some((l, r, d)) => {
                pl = l;
                pr = r;
                cdepth = d;
            }
        }
    }
    t
}

/// numpy's `aheapsort_` on the index slice `t` (1-based heap as in the C code).
fn aheapsort(v: &[i64], t: &mut [usize]) {
    let n = t.len();
    if n < 2 {
        return;
    }
    // a[k] with 1-based k
    let mut l = n >> 1;
    while l > 0 {
        let tmp = t[l - 1];
        let mut i = l;
        let mut j = l << 1;
        while j <= n {
            if j < n && v[t[j - 1]] < v[t[j]] {
                j += 1;
            }
            if v[tmp] < v[t[j - 1]] {
                t[i - 1] = t[j - 1];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        t[i - 1] = tmp;
        l -= 1;
    }
    let mut n = n;
    while n > 1 {
        let tmp = t[n - 1];
        t[n - 1] = t[0];
        n -= 1;
        let mut i = 1;
        let mut j = 2;
        while j <= n {
            if j < n && v[t[j - 1]] < v[t[j]] {
                j += 1;
            }
            if v[tmp] < v[t[j - 1]] {
                t[i - 1] = t[j - 1];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        t[i - 1] = tmp;
    }
}
