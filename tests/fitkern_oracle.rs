//! The fast fitting kernel (portable and AVX2+FMA) against the scalar oracle
//! `accumulate_scalar` on random cases and edge cases: `JᵀJ`, `Jᵀr`, `χ²` and the S/N sums
//! agree within 1e-10 of the scale of each sum, the pixel counts exactly.

use ngmixer::fitting::kernel::{
    accumulate_scalar, accumulate_with, prepare, Accum, KGauss, KernelImpl, ModelSpec, Scratch, V1,
};
use ngmixer::gmix::{GMix, Gauss2D, Jacobian, SimpleKind, Tables};

/// Agreement required, relative to the scale of each sum.
const TOL: f64 = 1e-10;

/// xorshift64*: a small deterministic generator for the test cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn unif(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unif()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Case {
    gs: Vec<KGauss>,
    jac: Jacobian,
    image: Vec<f64>,
    weight: Vec<f64>,
    ncol: usize,
    flux: f64,
}

fn delta_psf() -> GMix {
    GMix::from_gaussians(vec![Gauss2D {
        p: 1.0,
        row: 0.0,
        col: 0.0,
        irr: 0.0,
        irc: 0.0,
        icc: 0.0,
        det: 0.0,
        drr: 0.0,
        drc: 0.0,
        dcc: 0.0,
        norm: 0.0,
        pnorm: 0.0,
    }])
}

fn random_psf(rng: &mut Rng, size: f64) -> GMix {
    let n = 1 + rng.below(3);
    let mut pars = Vec::new();
    for _ in 0..n {
        let t = size * rng.range(0.3, 3.0);
        let e1 = rng.range(-0.3, 0.3);
        let e2 = rng.range(-0.3, 0.3);
        pars.extend([
            rng.range(0.1, 1.0),
            rng.range(-0.05, 0.05) * size.sqrt(),
            rng.range(-0.05, 0.05) * size.sqrt(),
            0.5 * t * (1.0 - e1),
            0.5 * t * e2,
            0.5 * t * (1.0 + e1),
        ]);
    }
    GMix::from_full_pars(&pars).unwrap()
}

fn random_case(rng: &mut Rng) -> Option<Case> {
    // stamp shape: often odd, sometimes a single row or column
    let (nrow, ncol) = match rng.below(8) {
        0 => (1, 1 + rng.below(40)),
        1 => (1 + rng.below(40), 1),
        2 => (1, 1),
        _ => (1 + rng.below(70), 1 + rng.below(70)),
    };
    let scale = rng.range(0.1, 1.0);
    let rot = rng.range(0.0, std::f64::consts::TAU);
    let shear = rng.range(-0.1, 0.1);
    let (s, c) = rot.sin_cos();
    let jac = Jacobian::new(
        rng.range(-2.0, nrow as f64 + 2.0),
        rng.range(-2.0, ncol as f64 + 2.0),
        scale * (s + shear),
        scale * c,
        scale * c,
        -scale * s,
    )
    .ok()?;
    // size of the model in pixels: tiny to huge
    let tsize = match rng.below(6) {
        0 => 1e-3,
        1 => 1e4,
        _ => 10f64.powf(rng.range(-1.0, 2.5)),
    } * scale
        * scale;
    let spec = match rng.below(4) {
        0 => ModelSpec::simple(SimpleKind::Gauss, Tables::V1),
        1 => ModelSpec::simple(SimpleKind::Exp, Tables::V1),
        2 => ModelSpec::simple(SimpleKind::Dev, Tables::V1),
        _ => ModelSpec::cm(rng.range(0.0, 1.0), rng.range(0.3, 1.5), Tables::V1),
    };
    let psf = match rng.below(5) {
        0 => delta_psf(),
        1 => random_psf(rng, 1e-4 * scale * scale),
        _ => {
            let size = tsize.min(10.0 * scale * scale) * rng.range(0.2, 2.0);
            random_psf(rng, size)
        }
    };
    let gmag = rng.range(0.0, 0.95);
    let gang = rng.range(0.0, std::f64::consts::TAU);
    let (vc, uc) = (
        rng.range(-0.3, 1.3) * nrow as f64 * scale,
        rng.range(-0.3, 1.3) * ncol as f64 * scale,
    );
    let pars = [
        vc - jac.row0 * scale,
        uc - jac.col0 * scale,
        gmag * gang.cos(),
        gmag * gang.sin(),
        tsize,
    ];
    let mut gs = Vec::new();
    prepare(&spec, &pars, &psf, 1.0, &mut gs).ok()?;
    let flux = rng.range(-10.0, 1000.0);
    let npix = nrow * ncol;
    let mut image = Vec::with_capacity(npix);
    let mut weight = Vec::with_capacity(npix);
    let zero_frac = [0.0, 0.1, 0.5][rng.below(3)];
    for _ in 0..npix {
        let w = if rng.unif() < zero_frac {
            if rng.unif() < 0.5 {
                0.0
            } else {
                -1.0
            }
        } else {
            rng.range(0.1, 10.0)
        };
        let d = if w <= 0.0 && rng.unif() < 0.3 {
            f64::NAN
        } else {
            rng.range(-1.0, 5.0)
        };
        image.push(d);
        weight.push(w);
    }
    Some(Case {
        gs,
        jac,
        image,
        weight,
        ncol,
        flux,
    })
}

fn run<const DERIV: bool>(imp: KernelImpl, case: &Case) -> Accum {
    let mut acc = Accum::default();
    let mut scratch = Scratch::default();
    accumulate_with::<V1, DERIV>(
        imp,
        &case.gs,
        &case.jac,
        &case.image,
        &case.weight,
        case.ncol,
        case.flux,
        &mut scratch,
        &mut acc,
    );
    acc
}

fn run_oracle<const DERIV: bool>(case: &Case) -> Accum {
    let mut acc = Accum::default();
    let mut scratch = Scratch::default();
    accumulate_scalar::<V1, DERIV>(
        &case.gs,
        &case.jac,
        &case.image,
        &case.weight,
        case.ncol,
        case.flux,
        &mut scratch,
        &mut acc,
    );
    acc
}

/// Worst error relative to the scale of each sum.
fn compare(case: &Case, a: &Accum, o: &Accum, deriv: bool) -> f64 {
    assert_eq!(a.npix, o.npix, "npix");
    let d2: f64 = case
        .image
        .iter()
        .zip(&case.weight)
        .filter(|(_, &w)| w > 0.0)
        .map(|(d, w)| d * d * w)
        .sum();
    let rel = |x: f64, y: f64, scale: f64| {
        if scale == 0.0 {
            assert_eq!(x, y);
            0.0
        } else {
            (x - y).abs() / scale
        }
    };
    let mut worst: f64 = 0.0;
    let chi2_scale = o.chi2 + o.s2n_denom + d2;
    worst = worst.max(rel(a.chi2, o.chi2, chi2_scale));
    worst = worst.max(rel(a.s2n_denom, o.s2n_denom, o.s2n_denom));
    worst = worst.max(rel(a.s2n_numer, o.s2n_numer, (o.s2n_denom * d2).sqrt()));
    if deriv {
        for i in 0..6 {
            worst = worst.max(rel(a.jtr[i], o.jtr[i], (o.jtj[i][i] * chi2_scale).sqrt()));
            for j in 0..6 {
                let s = (o.jtj[i][i] * o.jtj[j][j]).sqrt();
                worst = worst.max(rel(a.jtj[i][j], o.jtj[i][j], s));
            }
        }
    }
    worst
}

fn check_case(case: &Case, label: &str) -> f64 {
    let o = run_oracle::<true>(case);
    let ov = run_oracle::<false>(case);
    let mut worst: f64 = 0.0;
    for imp in KernelImpl::all() {
        let a = run::<true>(imp, case);
        let e = compare(case, &a, &o, true);
        assert!(
            e <= TOL,
            "{label} {}: deriv error {e:e}\nfast {a:?}\noracle {o:?}",
            imp.name()
        );
        let av = run::<false>(imp, case);
        let ev = compare(case, &av, &ov, false);
        assert!(
            ev <= TOL,
            "{label} {}: value error {ev:e}\nfast {av:?}\noracle {ov:?}",
            imp.name()
        );
        worst = worst.max(e).max(ev);
    }
    worst
}

#[test]
fn fast_matches_oracle_random() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let mut worst: f64 = 0.0;
    let mut n = 0;
    while n < 600 {
        let Some(case) = random_case(&mut rng) else {
            continue;
        };
        worst = worst.max(check_case(&case, &format!("case {n}")));
        n += 1;
    }
    eprintln!("worst relative error over {n} random cases: {worst:e}");
}

/// Windows whose ends fall exactly on integer columns (χ² = 25 at a pixel centre): the hard
/// cut must exclude them as the oracle does.
#[test]
fn fast_matches_oracle_integer_boundaries() {
    let jac = Jacobian::new(0.0, 0.0, 0.0, 1.0, 1.0, 0.0).unwrap();
    let spec = ModelSpec::simple(SimpleKind::Gauss, Tables::V1);
    let psf = delta_psf();
    for (nrow, ncol, r, c) in [(12, 12, 0.0, 0.0), (13, 17, 6.0, 8.0), (11, 11, 3.0, -2.0)] {
        let mut gs = Vec::new();
        // irr = icc = 1: χ² = Δrow² + Δcol², 25 at (3, 4), (5, 0), ...
        prepare(&spec, &[r, c, 0.0, 0.0, 2.0], &psf, 1.0, &mut gs).unwrap();
        let npix = nrow * ncol;
        let case = Case {
            gs,
            jac,
            image: (0..npix).map(|k| (k % 7) as f64 * 0.01).collect(),
            weight: vec![1.0; npix],
            ncol,
            flux: 3.0,
        };
        check_case(&case, "integer");
    }
}

/// Degenerate inputs: no pixels, no rows, all weights zero.
#[test]
fn fast_matches_oracle_degenerate() {
    let jac = Jacobian::new(5.0, 5.0, 0.0, 0.263, 0.263, 0.0).unwrap();
    let spec = ModelSpec::simple(SimpleKind::Exp, Tables::V1);
    let psf = GMix::from_full_pars(&[1.0, 0.0, 0.0, 0.2, 0.0, 0.2]).unwrap();
    let mut gs = Vec::new();
    prepare(&spec, &[0.0, 0.0, 0.1, 0.1, 1.0], &psf, 1.0, &mut gs).unwrap();
    for (nrow, ncol, w) in [(0, 5, 1.0), (10, 10, 0.0), (3, 7, -1.0)] {
        let case = Case {
            gs: gs.clone(),
            jac,
            image: vec![1.0; nrow * ncol],
            weight: vec![w; nrow * ncol],
            ncol,
            flux: 2.0,
        };
        check_case(&case, "degenerate");
        let a = run::<true>(KernelImpl::detect(), &case);
        assert_eq!(a.npix, if w > 0.0 { nrow * ncol } else { 0 });
    }
}
