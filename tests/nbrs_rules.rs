//! Neighbour and FoF rules (spec §6, acceptance items 1–9) on hand-made coadd boxes, the
//! CPython / numpy orderings that fix ngmixer's labels (against vectors written by CPython 3.11
//! and numpy 1.23.5), and random box layouts against an independent O(n²) overlap test with
//! union-find.

#![cfg(feature = "des-y1")]

use std::path::PathBuf;

use ngmixer::config::{BuffType, NbrsPars};
use ngmixer::nbrs::{cpython_set_order, find_fofs, find_nbrs, numpy_argsort, CoaddBoxes};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/nbrs")
        .join(p)
}

fn pars(buff_type: BuffType, buff_frac: f64) -> NbrsPars {
    NbrsPars {
        buff_type,
        buff_frac,
        maxsize_to_replace: -1,
        new_maxsize: 48,
        check_seg: false,
    }
}

/// Boxes `(size, row0, col0)`, numbered 1..N.
fn boxes(b: &[(i64, i64, i64)]) -> CoaddBoxes {
    CoaddBoxes {
        source: "test".into(),
        id: (0..b.len() as i64).map(|k| 100 + k).collect(),
        number: (1..=b.len() as i64).collect(),
        box_size: b.iter().map(|x| x.0).collect(),
        row0: b.iter().map(|x| x.1).collect(),
        col0: b.iter().map(|x| x.2).collect(),
    }
}

fn nbrs_of(rows: &[(i64, i64)], number: i64) -> Vec<i64> {
    rows.iter().filter(|r| r.0 == number).map(|r| r.1).collect()
}

fn no_seg(_: usize, _: usize) -> Option<Vec<i32>> {
    None
}

#[test]
fn overlapping_boxes_are_mutual_neighbours_and_one_fof() {
    // two 32-px boxes, tot buffer 0.25*(32+32) = 16 px: an overlap of 16 in both axes counts
    let bx = boxes(&[(32, 0, 0), (32, 16, 16)]);
    let rows = find_nbrs(&[bx], &pars(BuffType::Tot, 0.25), no_seg).unwrap();
    assert_eq!(rows, vec![(1, 2), (2, 1)]);
    assert_eq!(find_fofs(&rows).unwrap(), vec![(0, 1), (0, 2)]);
}

#[test]
fn touching_or_slightly_overlapping_boxes_are_not_neighbours() {
    for (r, c) in [(32, 0), (0, 32), (17, 0), (0, 17), (17, 17), (16, 17)] {
        let bx = boxes(&[(32, 0, 0), (32, r, c)]);
        let rows = find_nbrs(&[bx], &pars(BuffType::Tot, 0.25), no_seg).unwrap();
        assert_eq!(rows, vec![(1, -1), (2, -1)], "offset ({r}, {c})");
        assert_eq!(find_fofs(&rows).unwrap(), vec![(0, 1), (1, 2)]);
    }
}

#[test]
fn min_and_max_buffers_use_the_smaller_and_larger_box() {
    // sizes 20 and 60, frac 0.5: min buffer 10, max buffer 30, tot buffer 40
    // box 1 rows [0, 20); box 2 starts at row/col 20 - overlap
    for (overlap, want_min, want_max) in [(10, true, false), (9, false, false), (20, true, false)] {
        let s = 20 - overlap;
        let bx = boxes(&[(20, 0, 0), (60, s, s)]);
        let min = find_nbrs(std::slice::from_ref(&bx), &pars(BuffType::Min, 0.5), no_seg).unwrap();
        assert_eq!(
            nbrs_of(&min, 1) == vec![2],
            want_min,
            "min, overlap {overlap}"
        );
        let max = find_nbrs(&[bx], &pars(BuffType::Max, 0.5), no_seg).unwrap();
        assert_eq!(
            nbrs_of(&max, 1) == vec![2],
            want_max,
            "max, overlap {overlap}"
        );
    }
    // ngmixer's test is on edges (each box's far edge at least `buff` past the other's near
    // edge), so a small box nested in the middle of a large one is a neighbour even though
    // the overlap (20) is below the max buffer (30)
    let bx = boxes(&[(20, 20, 20), (60, 0, 0)]);
    let max = find_nbrs(std::slice::from_ref(&bx), &pars(BuffType::Max, 0.5), no_seg).unwrap();
    assert_eq!(nbrs_of(&max, 1), vec![2]);
    // nested at the edge: far edges 20 past the near edges, buffer 30
    let bx = boxes(&[(20, 0, 0), (60, 0, 0)]);
    let max = find_nbrs(&[bx], &pars(BuffType::Max, 0.5), no_seg).unwrap();
    assert_eq!(nbrs_of(&max, 1), vec![-1]);
}

#[test]
fn maxsize_boxes_are_grown_symmetrically() {
    // box 1: 32 px at (100, 100) replaced by 64 px starting at (84, 84) -> rows [84, 148)
    let mut p = pars(BuffType::Min, 0.25);
    p.maxsize_to_replace = 32;
    p.new_maxsize = 64;
    // box 2: 16 px; min buffer 4. Touching the grown box from below by 4 px: row0 = 144
    let bx = boxes(&[(32, 100, 100), (16, 144, 100)]);
    let rows = find_nbrs(std::slice::from_ref(&bx), &p, no_seg).unwrap();
    assert_eq!(nbrs_of(&rows, 2), vec![1]);
    // one pixel further it is out: r1 = 148 < 145 + 4
    let bx2 = boxes(&[(32, 100, 100), (16, 145, 100)]);
    assert_eq!(
        nbrs_of(&find_nbrs(&[bx2], &p, no_seg).unwrap(), 2),
        vec![-1]
    );
    // and from above: l1 = 84, box 2 rows [72, 88): overlap 4
    let bx3 = boxes(&[(32, 100, 100), (16, 72, 100)]);
    assert_eq!(nbrs_of(&find_nbrs(&[bx3], &p, no_seg).unwrap(), 2), vec![1]);
    // without the replacement the original box [100, 132) is far from row 144
    let rows = find_nbrs(&[bx], &pars(BuffType::Min, 0.25), no_seg).unwrap();
    assert_eq!(nbrs_of(&rows, 2), vec![-1]);
}

#[test]
fn seg_neighbours_are_one_directional_but_fofs_symmetric() {
    let mut p = pars(BuffType::Tot, 0.25);
    p.check_seg = true;
    // three far-apart boxes; object 1's seg cutout holds number 3 (and itself, and sky)
    let bx = boxes(&[(4, 0, 0), (4, 100, 100), (4, 200, 200)]);
    let seg = |_: usize, i: usize| -> Option<Vec<i32>> {
        Some(match i {
            0 => vec![0, 1, 1, 3, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            1 => vec![2; 16],
            _ => vec![0; 16],
        })
    };
    let rows = find_nbrs(std::slice::from_ref(&bx), &p, seg).unwrap();
    assert_eq!(rows, vec![(1, 3), (2, -1), (3, -1)]);
    let f = find_fofs(&rows).unwrap();
    assert_eq!(f[0].0, f[2].0);
    assert_ne!(f[0].0, f[1].0);
    // unreadable seg maps are ignored, as in ngmixer
    let rows = find_nbrs(std::slice::from_ref(&bx), &p, no_seg).unwrap();
    assert_eq!(rows, vec![(1, -1), (2, -1), (3, -1)]);
    // a seg value that is not a catalogue number is an error naming the object
    let bad = |_: usize, _: usize| Some(vec![7]);
    let e = find_nbrs(&[bx], &p, bad).unwrap_err().to_string();
    assert!(e.contains("id 100") && e.contains("number 7"), "{e}");
}

#[test]
fn objects_without_coadd_origin_are_nobodys_neighbour() {
    let mut p = pars(BuffType::Tot, 0.25);
    p.check_seg = true;
    let bx = boxes(&[(32, 0, 0), (32, -9999, 4), (32, 4, -9999), (32, 8, 8)]);
    // even a seg map naming it does not make 2 a neighbour
    let seg = |_: usize, i: usize| Some(if i == 0 { vec![2, 3] } else { vec![0] });
    let rows = find_nbrs(&[bx], &p, seg).unwrap();
    assert_eq!(rows, vec![(1, 4), (2, -1), (3, -1), (4, 1)]);
    let f = find_fofs(&rows).unwrap();
    assert_eq!(f, vec![(0, 1), (1, 2), (2, 3), (0, 4)]);
}

#[test]
fn isolated_objects_and_transitive_linking() {
    // chain 1-2-3 (each overlapping only the next), 4 isolated, 5-6 a pair
    let bx = boxes(&[
        (32, 0, 0),
        (32, 20, 0),
        (32, 40, 0),
        (32, 500, 500),
        (32, 1000, 0),
        (32, 1000, 10),
    ]);
    let rows = find_nbrs(&[bx], &pars(BuffType::Tot, 0.1), no_seg).unwrap();
    assert_eq!(nbrs_of(&rows, 1), vec![2]);
    assert_eq!(nbrs_of(&rows, 3), vec![2]);
    assert_eq!(nbrs_of(&rows, 4), vec![-1]);
    let f = find_fofs(&rows).unwrap();
    assert_eq!(
        f.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(f[0].0, f[1].0);
    assert_eq!(f[1].0, f[2].0);
    assert_eq!(f[4].0, f[5].0);
    let mut ids: Vec<i64> = f.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, vec![0, 1, 2]);
}

#[test]
fn numbers_must_be_row_plus_one() {
    let mut bx = boxes(&[(32, 0, 0), (32, 100, 100)]);
    bx.number = vec![1, 3];
    let e = find_nbrs(&[bx], &pars(BuffType::Tot, 0.25), no_seg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 1") && e.contains("number 3"), "{e}");
    // and for FoF linking from a list
    let e = find_fofs(&[(1, -1), (3, -1)]).unwrap_err().to_string();
    assert!(e.contains("1..2"), "{e}");
    // bands must agree
    let a = boxes(&[(32, 0, 0), (32, 100, 100)]);
    let mut b = a.clone();
    b.id[1] = 7;
    assert!(find_nbrs(&[a, b], &pars(BuffType::Tot, 0.25), no_seg).is_err());
}

#[test]
fn cpython_set_order_matches_cpython() {
    let text = std::fs::read_to_string(data("cpython_set_order.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: (Vec<u64>, Vec<u64>) = serde_json::from_str(line).unwrap();
        assert_eq!(cpython_set_order(&v.0), v.1, "set({:?})", v.0);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn numpy_argsort_matches_numpy() {
    let text = std::fs::read_to_string(data("numpy_argsort.json")).unwrap();
    let v: Vec<(Vec<i64>, Vec<usize>)> = serde_json::from_str(&text).unwrap();
    assert_eq!(v.len(), 6);
    for (keys, want) in v {
        assert_eq!(numpy_argsort(&keys), want, "n = {}", keys.len());
    }
}

// ---------------------------------------------------------------------------------------
// random layouts against an independent brute-force reference

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// ngmixer's rule written independently of the port: in rows and in columns, each box's far
/// edge lies at least `buff` beyond the other box's near edge (for boxes that are not nested
/// this is an overlap of at least `buff`).
fn brute_pairs(b: &[(i64, i64, i64)], p: &NbrsPars) -> Vec<Vec<bool>> {
    let n = b.len();
    let eff: Vec<(i64, i64, i64)> = b
        .iter()
        .map(|&(s, r, c)| {
            if s == p.maxsize_to_replace {
                let d = (p.new_maxsize - s) / 2;
                (p.new_maxsize, r - d, c - d)
            } else {
                (s, r, c)
            }
        })
        .collect();
    let mut adj = vec![vec![false; n]; n];
    for i in 0..n {
        for j in 0..n {
            if i == j || b[i].1 == -9999 || b[j].1 == -9999 || b[i].2 == -9999 || b[j].2 == -9999 {
                continue;
            }
            let (si, ri, ci) = eff[i];
            let (sj, rj, cj) = eff[j];
            let buff = match p.buff_type {
                BuffType::Min => si.min(sj),
                BuffType::Max => si.max(sj),
                BuffType::Tot => si + sj,
            } as f64
                * p.buff_frac;
            let reach = |a0: i64, sa: i64, b0: i64, sb: i64| {
                ((a0 + sa - b0) as f64) >= buff && ((b0 + sb - a0) as f64) >= buff
            };
            adj[i][j] = reach(ri, si, rj, sj) && reach(ci, si, cj, sj);
        }
    }
    adj
}

fn union_find(adj: &[Vec<bool>]) -> Vec<usize> {
    let n = adj.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..n {
        for j in 0..n {
            if adj[i][j] {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    (0..n).map(|i| root(&mut parent, i)).collect()
}

/// Same partition (labels may differ).
fn same_partition(a: &[usize], b: &[i64]) -> bool {
    let n = a.len();
    (0..n).all(|i| (0..n).all(|j| (a[i] == a[j]) == (b[i] == b[j])))
}

#[test]
fn random_layouts_match_brute_force() {
    let mut rng = Lcg(12345);
    let mut largest = 0;
    for case in 0..60 {
        let n = 20 + rng.below(60) as usize;
        let sizes = [16i64, 32, 48, 64, 96];
        let field = 150 + rng.below(400) as i64;
        let b: Vec<(i64, i64, i64)> = (0..n)
            .map(|_| {
                let s = sizes[rng.below(5) as usize];
                let bad = rng.below(25) == 0;
                let r = if bad {
                    -9999
                } else {
                    rng.below(field as u64) as i64
                };
                (s, r, rng.below(field as u64) as i64)
            })
            .collect();
        let p = NbrsPars {
            buff_type: [BuffType::Min, BuffType::Max, BuffType::Tot][case % 3],
            buff_frac: [0.0, 0.1, 0.25, 0.5, 0.75][rng.below(5) as usize],
            maxsize_to_replace: if case % 2 == 0 { 48 } else { -1 },
            new_maxsize: 80,
            check_seg: false,
        };
        let rows = find_nbrs(&[boxes(&b)], &p, no_seg).unwrap();
        let adj = brute_pairs(&b, &p);
        for i in 0..n {
            let mut want: Vec<i64> = (0..n)
                .filter(|&j| adj[i][j])
                .map(|j| j as i64 + 1)
                .collect();
            if want.is_empty() {
                want.push(-1);
            }
            let mut got = nbrs_of(&rows, i as i64 + 1);
            got.sort_unstable();
            assert_eq!(got, want, "case {case}, object {}", i + 1);
        }
        let f = find_fofs(&rows).unwrap();
        assert_eq!(f.len(), n);
        assert!(f.iter().enumerate().all(|(k, r)| r.1 == k as i64 + 1));
        let labels: Vec<i64> = f.iter().map(|r| r.0).collect();
        let uf = union_find(&adj);
        assert!(same_partition(&uf, &labels), "case {case}");
        let mut ids = labels.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids, (0..ids.len() as i64).collect::<Vec<_>>(), "dense ids");
        for l in &ids {
            largest = largest.max(labels.iter().filter(|x| *x == l).count());
        }
    }
    assert!(
        largest >= 8,
        "largest FoF {largest}: layouts too sparse to test linking"
    );
}
