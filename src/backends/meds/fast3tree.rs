//! The nearest-seg-pixel search of the meds `_uberseg.c` extension (`uberseg_tree`), which
//! uses Peter Behroozi's `fast3tree` k-d tree in single precision.
//!
//! The nearest object pixel is unambiguous except for ties, and the C code breaks ties by the
//! order in which the tree returns points, which depends on how the build partitions them.
//! To give the same weights as the Python pipeline, this module reproduces the tree: the same
//! partition (split at the midpoint of the widest dimension, at most 40 points per leaf), the
//! same initial radius estimate, the same growing sphere search and the same `f32`
//! arithmetic. Written from the algorithm, not copied.

/// Maximum points in a leaf.
const POINTS_PER_LEAF: usize = 40;

#[derive(Debug, Clone, Copy)]
struct Point {
    pos: [f32; 2],
    seg: i32,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    min: [f32; 2],
    max: [f32; 2],
    start: usize,
    num: usize,
    /// Split dimension, or -1 for a leaf.
    div_dim: i32,
    left: usize,
    right: usize,
    parent: usize,
}

/// A k-d tree over the non-zero pixels of a seg map.
#[derive(Debug)]
pub(crate) struct SegTree {
    points: Vec<Point>,
    nodes: Vec<Node>,
}

fn sqrt_f32(x: f32) -> f32 {
    // C: sqrt() of a float promoted to double, stored back to float.
    (x as f64).sqrt() as f32
}

impl SegTree {
    /// Build from the non-zero pixels of `seg` (`nrow x ncol`, row-major), taken in row-major
    /// order like `numpy.where(seg != 0)`. Position 0 is the row, 1 the column.
    pub fn new(seg: &[i32], nrow: usize, ncol: usize) -> Self {
        let mut points = Vec::new();
        for r in 0..nrow {
            for c in 0..ncol {
                let s = seg.get(r * ncol + c).copied().unwrap_or(0);
                if s != 0 {
                    points.push(Point {
                        pos: [r as f32, c as f32],
                        seg: s,
                    });
                }
            }
        }
        let mut t = Self {
            points,
            nodes: Vec::new(),
        };
        let mut root = Node {
            min: [0.0; 2],
            max: [0.0; 2],
            start: 0,
            num: t.points.len(),
            div_dim: -1,
            left: 0,
            right: 0,
            parent: 0,
        };
        if root.num > 0 {
            t.find_minmax(&mut root);
        }
        t.nodes.push(root);
        if root.num > POINTS_PER_LEAF {
            t.split(0);
        }
        t
    }

    fn find_minmax(&self, node: &mut Node) {
        let pts = &self.points[node.start..node.start + node.num];
        let Some(first) = pts.first() else {
            return;
        };
        node.min = first.pos;
        node.max = first.pos;
        for p in &pts[1..] {
            for j in 0..2 {
                let x = p.pos[j];
                if x < node.min[j] {
                    node.min[j] = x;
                } else if x > node.max[j] {
                    node.max[j] = x;
                }
            }
        }
    }

    /// Partition the node's points about the midpoint of its widest dimension; returns the
    /// number going left.
    fn sort_dim_pos(&mut self, idx: usize) -> usize {
        let node = self.nodes[idx];
        // Widest dimension; ties go to the last one.
        let mut dim = 1usize;
        let mut d = node.max[1] - node.min[1];
        let d0 = node.max[0] - node.min[0];
        if d0 > d {
            d = d0;
            dim = 0;
        }
        let _ = d;
        self.nodes[idx].div_dim = dim as i32;
        let lim = (0.5 * (node.max[dim] + node.min[dim]) as f64) as f32;
        if node.max[dim] == node.min[dim] {
            return node.num;
        }
        let p = &mut self.points[node.start..node.start + node.num];
        let mut i: i64 = 0;
        let mut j: i64 = node.num as i64 - 1;
        while i < j {
            if p[i as usize].pos[dim] > lim {
                p.swap(i as usize, j as usize);
                i -= 1;
                j -= 1;
            }
            i += 1;
        }
        if i == j && p[i as usize].pos[dim] <= lim {
            i += 1;
        }
        i as usize
    }

    fn split(&mut self, idx: usize) {
        let num_left = self.sort_dim_pos(idx);
        let node = self.nodes[idx];
        if num_left == node.num || num_left == 0 {
            self.nodes[idx].div_dim = -1;
            return;
        }
        let li = self.nodes.len();
        let mut left = Node {
            min: [0.0; 2],
            max: [0.0; 2],
            start: node.start,
            num: num_left,
            div_dim: -1,
            left: 0,
            right: 0,
            parent: idx,
        };
        let mut right = Node {
            start: node.start + num_left,
            num: node.num - num_left,
            ..left
        };
        self.find_minmax(&mut left);
        self.find_minmax(&mut right);
        self.nodes.push(left);
        self.nodes.push(right);
        self.nodes[idx].left = li;
        self.nodes[idx].right = li + 1;
        if left.num > POINTS_PER_LEAF {
            self.split(li);
        }
        if right.num > POINTS_PER_LEAF {
            self.split(li + 1);
        }
    }

    fn box_not_intersect_sphere(n: &Node, c: [f32; 2], r: f32) -> bool {
        let r2 = r * r;
        let mut d = 0.0f32;
        for i in 0..2 {
            let e = c[i] - n.min[i];
            if e < 0.0 {
                d += e * e;
                if d >= r2 {
                    return true;
                }
            } else {
                let e = c[i] - n.max[i];
                if e > 0.0 {
                    d += e * e;
                    if d >= r2 {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn box_inside_sphere(n: &Node, c: [f32; 2], r: f32) -> bool {
        let r2 = r * r;
        if (c[0] - n.min[0]).abs() > r {
            return false;
        }
        let mut dist = 0.0f32;
        for i in 0..2 {
            let mut dx = n.min[i] - c[i];
            dx *= dx;
            let mut dx2 = c[i] - n.max[i];
            dx2 *= dx2;
            if dx2 > dx {
                dx = dx2;
            }
            dist += dx;
            if dist > r2 {
                return false;
            }
        }
        true
    }

    fn dist2(p: &Point, c: [f32; 2]) -> f32 {
        let mut dist = 0.0f32;
        for j in 0..2 {
            let dx = c[j] - p.pos[j];
            dist += dx * dx;
        }
        dist
    }

    fn next_closest_rec(&self, ni: usize, c: [f32; 2], r: f32, skip: usize) -> f32 {
        let n = &self.nodes[ni];
        if Self::box_not_intersect_sphere(n, c, r) || ni == skip {
            return r;
        }
        if n.div_dim < 0 {
            let mut r2 = r * r;
            for p in &self.points[n.start..n.start + n.num] {
                let d = Self::dist2(p, c);
                if d < r2 {
                    r2 = d;
                }
            }
            return sqrt_f32(r2);
        }
        let dd = n.div_dim as usize;
        let (mut n1, mut n2) = (n.left, n.right);
        if c[dd] as f64 > 0.5 * (n.min[dd] + n.max[dd]) as f64 {
            std::mem::swap(&mut n1, &mut n2);
        }
        let r = self.next_closest_rec(n1, c, r, skip);
        self.next_closest_rec(n2, c, r, skip)
    }

    /// fast3tree's estimate of the distance to the nearest point.
    fn next_closest_distance(&self, c: [f32; 2]) -> f32 {
        let mut ni = 0usize;
        while self.nodes[ni].div_dim >= 0 {
            let n = &self.nodes[ni];
            let dd = n.div_dim as usize;
            ni = if c[dd] <= self.nodes[n.left].max[dd] {
                n.left
            } else {
                n.right
            };
        }
        while ni != 0 {
            let n = &self.nodes[ni];
            let pd = self.nodes[n.parent].div_dim;
            if pd < 0 || n.min[pd as usize] != n.max[pd as usize] {
                break;
            }
            ni = n.parent;
        }
        let n = &self.nodes[ni];
        let mut min_dist = 0.0f32;
        for j in 0..2 {
            let dx = n.max[j] - n.min[j];
            min_dist += dx * dx;
        }
        for p in &self.points[n.start..n.start + n.num] {
            let d = Self::dist2(p, c);
            if d != 0.0 && d < min_dist {
                min_dist = d;
            }
        }
        self.next_closest_rec(0, c, sqrt_f32(min_dist), ni)
    }

    /// Visit the points within `r` of `c` in the order fast3tree reports them.
    fn find_sphere(&self, ni: usize, c: [f32; 2], r: f32, visit: &mut impl FnMut(&Point)) {
        let n = &self.nodes[ni];
        if Self::box_not_intersect_sphere(n, c, r) {
            return;
        }
        if Self::box_inside_sphere(n, c, r) {
            self.points[n.start..n.start + n.num]
                .iter()
                .for_each(&mut *visit);
            return;
        }
        if n.div_dim < 0 {
            let r2 = r * r;
            for p in &self.points[n.start..n.start + n.num] {
                if Self::dist2(p, c) < r2 {
                    visit(p);
                }
            }
            return;
        }
        self.find_sphere(n.left, c, r, visit);
        self.find_sphere(n.right, c, r, visit);
    }

    /// Seg value of the point nearest to `(row, col)` as `uberseg_tree` finds it, `None` when
    /// the search finds nothing (empty tree).
    pub fn nearest_seg(&self, row: usize, col: usize, maxr: f32) -> Option<i32> {
        if self.points.is_empty() {
            return None;
        }
        let c = [row as f32, col as f32];
        let r = self.next_closest_distance(c);
        let mut fac = (1.0f64 / 1.1) as f32;
        let mut best: Option<(f32, i32)> = None;
        // Bounded: fac grows geometrically, and r*fac > maxr (or NaN) ends the loop.
        for _ in 0..10_000 {
            fac = (fac as f64 * 1.1) as f32;
            best = None;
            let mut any = false;
            self.find_sphere(0, c, r * fac, &mut |p| {
                any = true;
                let d = Self::dist2(p, c);
                if best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, p.seg));
                }
            });
            let rf = r * fac;
            if any || rf.is_nan() || rf > maxr {
                break;
            }
        }
        best.map(|b| b.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_d2(
        seg: &[i32],
        nrow: usize,
        ncol: usize,
        r: usize,
        c: usize,
    ) -> Option<(i64, Vec<i32>)> {
        let mut best: Option<i64> = None;
        for k in 0..nrow * ncol {
            if seg[k] != 0 {
                let d =
                    ((k / ncol) as i64 - r as i64).pow(2) + ((k % ncol) as i64 - c as i64).pow(2);
                best = Some(best.map_or(d, |b| b.min(d)));
            }
        }
        let b = best?;
        let segs = (0..nrow * ncol)
            .filter(|&k| seg[k] != 0)
            .filter(|&k| {
                ((k / ncol) as i64 - r as i64).pow(2) + ((k % ncol) as i64 - c as i64).pow(2) == b
            })
            .map(|k| seg[k])
            .collect();
        Some((b, segs))
    }

    #[test]
    fn finds_a_nearest_pixel() {
        let (nrow, ncol) = (48, 40);
        let mut state = 99u64;
        for trial in 0..6 {
            let mut seg = vec![0i32; nrow * ncol];
            // Blobs of a few objects.
            for obj in 1..=4i32 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (r0, c0) = ((state >> 20) as usize % nrow, (state >> 40) as usize % ncol);
                let rad = 2 + (trial + obj as usize) % 7;
                for r in 0..nrow {
                    for c in 0..ncol {
                        let d = (r as i64 - r0 as i64).pow(2) + (c as i64 - c0 as i64).pow(2);
                        if d <= (rad * rad) as i64 {
                            seg[r * ncol + c] = obj;
                        }
                    }
                }
            }
            let tree = SegTree::new(&seg, nrow, ncol);
            let maxr = (1.1 * ((nrow * nrow + ncol * ncol) as f64).sqrt()) as f32;
            for r in 0..nrow {
                for c in 0..ncol {
                    let got = tree.nearest_seg(r, c, maxr);
                    match brute_d2(&seg, nrow, ncol, r, c) {
                        None => assert_eq!(got, None),
                        Some((_, segs)) => assert!(segs.contains(&got.unwrap())),
                    }
                }
            }
        }
        assert_eq!(SegTree::new(&[0; 4], 2, 2).nearest_seg(0, 0, 3.0), None);
    }
}
