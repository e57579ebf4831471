//! Property tests of the Gaussian-mixture core: convolution, shape algebra, shearing,
//! rounding, model construction and Jacobians. Every expected value comes from an analytic
//! identity (moments of a convolution add, reduced-shear addition is a Möbius map of the unit
//! disk, a shear is the area-preserving matrix `S = [[1+s1, s2], [s2, 1-s1]] / sqrt(1-s²)`, ...),
//! not from the code under test.

use std::f64::consts::{PI, TAU};

use ngmixer::error::GMixError;
use ngmixer::gmix::{moments, shape};
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use proptest::prelude::*;

/// Default cases per property: enough to exercise the corners, small enough for a fast run.
const CASES: u32 = 96;

/// [`CASES`] cases unless `PROPTEST_CASES` is set; no regression files are written.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = CASES;
    }
    c.failure_persistence = None;
    c
}

// ---------------------------------------------------------------------------------------------
// strategies

/// A 2-vector with modulus below `gmax` and uniform direction.
fn polar(gmax: f64) -> impl Strategy<Value = (f64, f64)> {
    (0.0f64..gmax, 0.0f64..TAU).prop_map(|(g, th)| (g * th.cos(), g * th.sin()))
}

/// A reduced shear with |g| < 0.95.
fn shape_g() -> impl Strategy<Value = (f64, f64)> {
    polar(0.95)
}

/// A small shear, |s| < 0.5.
fn shear_s() -> impl Strategy<Value = (f64, f64)> {
    polar(0.5)
}

/// A positive-definite covariance `(irr, irc, icc)` from its principal sigmas and angle:
/// in `(x = col, y = row)`, `C = R diag(s1², s2²) Rᵀ`.
fn covariance() -> impl Strategy<Value = (f64, f64, f64)> {
    (0.05f64..3.0, 0.05f64..3.0, 0.0f64..PI).prop_map(|(s1, s2, th)| {
        let (sn, cs) = th.sin_cos();
        let (a, b) = (s1 * s1, s2 * s2);
        let icc = a * cs * cs + b * sn * sn; // <x²>
        let irr = a * sn * sn + b * cs * cs; // <y²>
        let irc = (a - b) * sn * cs; // <xy>
        (irr, irc, icc)
    })
}

/// One valid Gaussian `[p, row, col, irr, irc, icc]`.
fn gaussian(pmin: f64, pmax: f64) -> impl Strategy<Value = [f64; 6]> {
    (pmin..pmax, -5.0f64..5.0, -5.0f64..5.0, covariance())
        .prop_map(|(p, r, c, (irr, irc, icc))| [p, r, c, irr, irc, icc])
}

fn to_gmix(gs: &[[f64; 6]]) -> GMix {
    let pars: Vec<f64> = gs.iter().flatten().copied().collect();
    GMix::from_full_pars(&pars).expect("strategy makes valid Gaussians")
}

/// A mixture of 1–16 Gaussians at independent centres.
fn mixture() -> impl Strategy<Value = GMix> {
    prop::collection::vec(gaussian(0.01, 100.0), 1..=16).prop_map(|v| to_gmix(&v))
}

/// A mixture of 1–16 Gaussians sharing one centre.
fn cocentric_mixture() -> impl Strategy<Value = GMix> {
    (
        -5.0f64..5.0,
        -5.0f64..5.0,
        prop::collection::vec((0.01f64..100.0, covariance()), 1..=16),
    )
        .prop_map(|(r, c, comps)| {
            let gs: Vec<[f64; 6]> = comps
                .into_iter()
                .map(|(p, (irr, irc, icc))| [p, r, c, irr, irc, icc])
                .collect();
            to_gmix(&gs)
        })
}

/// A PSF-like mixture of 1–3 Gaussians with arbitrary total flux and small offsets.
fn psf_mixture() -> impl Strategy<Value = GMix> {
    prop::collection::vec(
        (0.05f64..1.0, -0.2f64..0.2, -0.2f64..0.2, covariance()),
        1..=3,
    )
    .prop_map(|v| {
        let gs: Vec<[f64; 6]> = v
            .into_iter()
            .map(|(p, r, c, (irr, irc, icc))| [p, r, c, irr, irc, icc])
            .collect();
        to_gmix(&gs)
    })
}

/// A non-singular Jacobian: scale, rotation, small shear and an optional flip.
fn jacobian() -> impl Strategy<Value = Jacobian> {
    (
        -100.0f64..100.0,
        -100.0f64..100.0,
        0.05f64..2.0,
        0.0f64..TAU,
        -0.3f64..0.3,
        -0.3f64..0.3,
        any::<bool>(),
    )
        .prop_map(|(row0, col0, scale, th, a, b, flip)| {
            let (sn, cs) = th.sin_cos();
            let f = if flip { -1.0 } else { 1.0 };
            // M = scale * Rot(th) * [[1+a, b], [b, 1-a]] * diag(1, f), rows (v, u), cols (row, col)
            let m = [[1.0 + a, b * f], [b, (1.0 - a) * f]];
            let r = [[cs, -sn], [sn, cs]];
            let mm = |i: usize, j: usize| scale * (r[i][0] * m[0][j] + r[i][1] * m[1][j]);
            let (dvdrow, dvdcol, dudrow, dudcol) = (mm(0, 0), mm(0, 1), mm(1, 0), mm(1, 1));
            Jacobian::new(row0, col0, dudrow, dudcol, dvdrow, dvdcol).expect("non-singular")
        })
}

// ---------------------------------------------------------------------------------------------
// helpers

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// Total second moments `(irr, irc, icc)` about the centre, per unit flux.
fn mom(gm: &GMix) -> (f64, f64, f64) {
    let (e1, e2, t) = gm.e1e2t().expect("valid mixture");
    moments::e2mom(e1, e2, t)
}

/// `S C Sᵀ` for shear `s`, with `C` in `(x = col, y = row)`; returns `(irr, irc, icc)`.
fn shear_matrix_moments(irr: f64, irc: f64, icc: f64, s1: f64, s2: f64) -> (f64, f64, f64) {
    let k = 1.0 / (1.0 - s1 * s1 - s2 * s2).sqrt();
    let s = [[k * (1.0 + s1), k * s2], [k * s2, k * (1.0 - s1)]];
    let c = [[icc, irc], [irc, irr]];
    let mut out = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            for a in 0..2 {
                for b in 0..2 {
                    out[i][j] += s[i][a] * c[a][b] * s[j][b];
                }
            }
        }
    }
    (out[1][1], out[0][1], out[0][0])
}

// ---------------------------------------------------------------------------------------------
// convolution

proptest! {
    #![proptest_config(config())]

    /// Flux, centre and second moments of `obj ⊗ psf`: the PSF is normalised and centred, so
    /// the flux and centre are the object's and the covariances add.
    #[test]
    fn convolution_adds_moments(obj in mixture(), psf in psf_mixture(), unit in any::<bool>()) {
        let mut psf = psf;
        if unit {
            psf.set_flux(1.0);
        }
        let c = obj.convolve(&psf).unwrap();
        prop_assert_eq!(c.len(), obj.len() * psf.len());
        prop_assert!(rel_close(c.flux(), obj.flux(), 1e-13), "flux {} vs {}", c.flux(), obj.flux());

        let (r0, c0) = obj.cen();
        let (r1, c1) = c.cen();
        prop_assert!((r1 - r0).abs() < 1e-12 * (1.0 + r0.abs()) && (c1 - c0).abs() < 1e-12 * (1.0 + c0.abs()));

        let (to, tp, tc) = (obj.t(), psf.t(), c.t());
        prop_assert!(rel_close(tc, to + tp, 1e-12), "T {} vs {} + {}", tc, to, tp);
        let (mo, mp, mc) = (mom(&obj), mom(&psf), mom(&c));
        let scale = tc;
        prop_assert!((mc.0 - (mo.0 + mp.0)).abs() < 1e-12 * scale);
        prop_assert!((mc.1 - (mo.1 + mp.1)).abs() < 1e-12 * scale);
        prop_assert!((mc.2 - (mo.2 + mp.2)).abs() < 1e-12 * scale);
    }

    /// With both centred at the origin the convolved centre stays at the origin and `T` adds,
    /// whatever the PSF flux.
    #[test]
    fn convolution_of_centred_mixtures(obj in cocentric_mixture(), psf in psf_mixture()) {
        let (mut obj, mut psf) = (obj, psf);
        obj.set_cen(0.0, 0.0);
        psf.set_cen(0.0, 0.0);
        let c = obj.convolve(&psf).unwrap();
        let (r, cc) = c.cen();
        prop_assert!(r.abs() < 1e-12 && cc.abs() < 1e-12);
        prop_assert!(rel_close(c.t(), obj.t() + psf.t(), 1e-12));
        prop_assert!(rel_close(c.flux(), obj.flux(), 1e-13));
    }
}

// ---------------------------------------------------------------------------------------------
// shapes

proptest! {
    #![proptest_config(config())]

    /// g ↔ e ↔ eta round trips, against the closed forms |e| = 2|g|/(1+|g|²),
    /// |eta| = 2 atanh|g| = atanh|e|.
    #[test]
    fn shape_conversions_round_trip((g1, g2) in shape_g()) {
        let g = (g1 * g1 + g2 * g2).sqrt();
        let (e1, e2) = shape::g1g2_to_e1e2(g1, g2).unwrap();
        let e = (e1 * e1 + e2 * e2).sqrt();
        prop_assert!((e - 2.0 * g / (1.0 + g * g)).abs() < 1e-14);
        // same direction: e × g = 0
        prop_assert!((e1 * g2 - e2 * g1).abs() < 1e-14);

        let (gb1, gb2) = shape::e1e2_to_g1g2(e1, e2).unwrap();
        prop_assert!((gb1 - g1).abs() < 1e-12 && (gb2 - g2).abs() < 1e-12, "g->e->g {} {}", gb1 - g1, gb2 - g2);

        let (eta1, eta2) = shape::g1g2_to_eta1eta2(g1, g2).unwrap();
        let eta = (eta1 * eta1 + eta2 * eta2).sqrt();
        prop_assert!((eta - 2.0 * g.atanh()).abs() < 1e-13);
        let (ge1, ge2) = shape::eta1eta2_to_g1g2(eta1, eta2).unwrap();
        prop_assert!((ge1 - g1).abs() < 1e-13 && (ge2 - g2).abs() < 1e-13);

        let (ee1, ee2) = shape::e1e2_to_eta1eta2(e1, e2).unwrap();
        prop_assert!((ee1 - eta1).abs() < 1e-11 && (ee2 - eta2).abs() < 1e-11, "e->eta {} {}", ee1 - eta1, ee2 - eta2);

        prop_assert!(rel_close(shape::round_factor(g1, g2), (1.0 - g * g) / (1.0 + g * g), 1e-14));
    }

    /// Reduced-shear addition: |g'| < 1, the inverse shear undoes it, zero shear is the
    /// identity, and the Jacobian determinant matches finite differences.
    #[test]
    fn shear_reduced_inverse((g1, g2) in shape_g(), (s1, s2) in shape_g()) {
        let (a1, a2) = shape::shear_reduced(g1, g2, s1, s2);
        prop_assert!(a1 * a1 + a2 * a2 < 1.0);
        let (b1, b2) = shape::shear_reduced(a1, a2, -s1, -s2);
        // the Möbius map amplifies rounding near the unit circle: scale by 1/(1-|g'|²)
        let amp = 1.0 / (1.0 - (a1 * a1 + a2 * a2)).max(1e-6);
        prop_assert!((b1 - g1).abs() < 1e-14 * amp * 10.0 && (b2 - g2).abs() < 1e-14 * amp * 10.0,
            "inverse {} {} (amp {})", b1 - g1, b2 - g2, amp);
        let (z1, z2) = shape::shear_reduced(g1, g2, 0.0, 0.0);
        prop_assert!(z1 == g1 && z2 == g2);
        // a round object sheared by s has shape s
        let (r1, r2) = shape::shear_reduced(0.0, 0.0, s1, s2);
        prop_assert!(r1 == s1 && r2 == s2);
    }

    #[test]
    fn dgs_by_dgo_is_the_jacobian_determinant((g1, g2) in polar(0.9), (s1, s2) in shear_s()) {
        let h = 1e-6;
        let f = |a: f64, b: f64| shape::shear_reduced(a, b, s1, s2);
        let (p1, m1) = (f(g1 + h, g2), f(g1 - h, g2));
        let (p2, m2) = (f(g1, g2 + h), f(g1, g2 - h));
        let j11 = (p1.0 - m1.0) / (2.0 * h);
        let j21 = (p1.1 - m1.1) / (2.0 * h);
        let j12 = (p2.0 - m2.0) / (2.0 * h);
        let j22 = (p2.1 - m2.1) / (2.0 * h);
        let det = j11 * j22 - j12 * j21;
        let want = shape::dgs_by_dgo_jacob(g1, g2, s1, s2);
        prop_assert!(rel_close(det, want, 1e-7), "{} vs {}", det, want);
    }

    /// Rotating by θ turns the shape by 2θ; |g| is kept and θ then -θ is the identity.
    #[test]
    fn rotation((g1, g2) in shape_g(), th in -PI..PI) {
        let (r1, r2) = shape::rotate_shape(g1, g2, th);
        prop_assert!(((r1 * r1 + r2 * r2) - (g1 * g1 + g2 * g2)).abs() < 1e-14);
        let (b1, b2) = shape::rotate_shape(r1, r2, -th);
        prop_assert!((b1 - g1).abs() < 1e-14 && (b2 - g2).abs() < 1e-14);
        let (h1, h2) = shape::rotate_shape(g1, g2, PI);
        prop_assert!((h1 - g1).abs() < 1e-14 && (h2 - g2).abs() < 1e-14);
    }
}

// ---------------------------------------------------------------------------------------------
// sheared moments and mixtures

proptest! {
    #![proptest_config(config())]

    /// Sheared moments are `S C Sᵀ` (area preserving) and the inverse shear undoes them.
    #[test]
    fn sheared_moments_are_the_shear_matrix((irr, irc, icc) in covariance(), (s1, s2) in shear_s()) {
        let (a, b, c) = moments::sheared_moments(irr, irc, icc, s1, s2);
        let (wa, wb, wc) = shear_matrix_moments(irr, irc, icc, s1, s2);
        let t = wa + wc;
        prop_assert!((a - wa).abs() < 1e-11 * t && (b - wb).abs() < 1e-11 * t && (c - wc).abs() < 1e-11 * t,
            "sheared ({},{},{}) vs S C S^T ({},{},{})", a, b, c, wa, wb, wc);
        // det (hence the round T) is kept
        let det0 = irr * icc - irc * irc;
        prop_assert!(rel_close(a * c - b * b, det0, 1e-9), "det {} vs {}", a * c - b * b, det0);

        let (x, y, z) = moments::sheared_moments(a, b, c, -s1, -s2);
        let t0 = irr + icc;
        prop_assert!((x - irr).abs() < 1e-11 * t0 && (y - irc).abs() < 1e-11 * t0 && (z - icc).abs() < 1e-11 * t0,
            "round trip ({},{},{}) vs ({},{},{})", x, y, z, irr, irc, icc);

        // the (g, T) form agrees
        let (g1, g2, tt) = moments::mom2g(irr, irc, icc).unwrap();
        let (g1s, g2s, ts) = moments::sheared_g1g2t(g1, g2, tt, s1, s2);
        let (gs1, gs2) = shape::shear_reduced(g1, g2, s1, s2);
        prop_assert!(g1s == gs1 && g2s == gs2);
        prop_assert!(rel_close(ts, a + c, 1e-12));
        prop_assert!(rel_close(moments::t_round(ts, g1s, g2s), moments::t_round(tt, g1, g2), 1e-12));
    }

    /// `GMix::sheared` keeps fluxes and centres, shears every covariance, and `-s` undoes it.
    #[test]
    fn sheared_mixture_round_trip(gm in mixture(), (s1, s2) in shear_s()) {
        let sh = gm.sheared(s1, s2).unwrap();
        prop_assert_eq!(sh.len(), gm.len());
        let back = sh.sheared(-s1, -s2).unwrap();
        for ((a, s), b) in gm.gaussians().iter().zip(sh.gaussians()).zip(back.gaussians()) {
            prop_assert!(a.p == s.p && a.row == s.row && a.col == s.col);
            let (wa, wb, wc) = shear_matrix_moments(a.irr, a.irc, a.icc, s1, s2);
            let t = a.irr + a.icc;
            let ts = wa + wc;
            prop_assert!((s.irr - wa).abs() < 1e-11 * ts && (s.irc - wb).abs() < 1e-11 * ts && (s.icc - wc).abs() < 1e-11 * ts);
            prop_assert!((b.irr - a.irr).abs() < 1e-11 * t && (b.irc - a.irc).abs() < 1e-11 * t && (b.icc - a.icc).abs() < 1e-11 * t);
        }
    }

    /// A co-centred mixture sheared by s: its shape becomes shear_reduced(g, s) and its round T
    /// is kept (each component transforms with the same matrix).
    #[test]
    fn sheared_cocentric_mixture_shape(gm in cocentric_mixture(), (s1, s2) in shear_s()) {
        let (g1, g2, t) = gm.g1g2t().unwrap();
        let sh = gm.sheared(s1, s2).unwrap();
        let (h1, h2, ts) = sh.g1g2t().unwrap();
        let (w1, w2) = shape::shear_reduced(g1, g2, s1, s2);
        prop_assert!((h1 - w1).abs() < 1e-10 && (h2 - w2).abs() < 1e-10, "g {} {} vs {} {}", h1, h2, w1, w2);
        prop_assert!(rel_close(moments::t_round(ts, h1, h2), moments::t_round(t, g1, g2), 1e-9));
    }
}

// ---------------------------------------------------------------------------------------------
// make_round

proptest! {
    #![proptest_config(config())]

    #[test]
    fn make_round_cocentric(gm in cocentric_mixture()) {
        let (g1, g2, t) = gm.g1g2t().unwrap();
        let round = gm.make_round(false).unwrap();
        prop_assert_eq!(round.len(), gm.len());
        prop_assert_eq!(round.flux(), gm.flux());
        prop_assert_eq!(round.cen(), gm.cen());
        let (r1, r2, tr) = round.g1g2t().unwrap();
        prop_assert!(r1.abs() < 1e-15 && r2.abs() < 1e-15, "round g {} {}", r1, r2);
        let gsq = g1 * g1 + g2 * g2;
        prop_assert!(rel_close(tr, t * (1.0 - gsq) / (1.0 + gsq), 1e-12), "T {} vs {}", tr, t);
        for (a, b) in gm.gaussians().iter().zip(round.gaussians()) {
            prop_assert!(b.irc == 0.0 && b.irr == b.icc && a.p == b.p && a.row == b.row && a.col == b.col);
        }

        // preserve_size: round with T/2 equal to the largest eigenvalue of the covariance
        let big = gm.make_round(true).unwrap();
        let (irr, irc, icc) = mom(&gm);
        let half = 0.5 * (irr + icc);
        let rad = (0.25 * (irr - icc) * (irr - icc) + irc * irc).sqrt();
        let (lmax, lmin) = (half + rad, half - rad);
        let (b1, b2, tb) = big.g1g2t().unwrap();
        prop_assert!(b1.abs() < 1e-15 && b2.abs() < 1e-15);
        prop_assert!(rel_close(0.5 * tb, lmax, 1e-12), "T/2 {} vs lmax {}", 0.5 * tb, lmax);
        prop_assert!(0.5 * tb >= lmin);
        prop_assert_eq!(big.flux(), gm.flux());
    }

    /// Components at different centres: each becomes round, flux and centre are kept.
    #[test]
    fn make_round_general(gm in mixture()) {
        let round = gm.make_round(false).unwrap();
        let (g1, g2, _) = gm.g1g2t().unwrap();
        let f = shape::round_factor(g1, g2);
        prop_assert_eq!(round.flux(), gm.flux());
        prop_assert_eq!(round.cen(), gm.cen());
        for (a, b) in gm.gaussians().iter().zip(round.gaussians()) {
            prop_assert!(b.irc == 0.0 && b.irr == b.icc);
            prop_assert!(rel_close(b.irr + b.icc, (a.irr + a.icc) * f, 1e-14));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// model construction

/// `(row, col, g1, g2, T, flux)`.
fn simple_pars() -> impl Strategy<Value = [f64; 6]> {
    (
        -5.0f64..5.0,
        -5.0f64..5.0,
        shape_g(),
        0.01f64..100.0,
        0.01f64..1000.0,
    )
        .prop_map(|(r, c, (g1, g2), t, f)| [r, c, g1, g2, t, f])
}

/// Check centre, flux, T (times `tscale`) and g of a built mixture against the parameters.
fn check_model(gm: &GMix, pars: &[f64], flux: f64, tscale: f64) -> Result<(), TestCaseError> {
    let (r, c) = gm.cen();
    prop_assert!((r - pars[0]).abs() < 1e-13 * (1.0 + pars[0].abs()));
    prop_assert!((c - pars[1]).abs() < 1e-13 * (1.0 + pars[1].abs()));
    prop_assert!(
        rel_close(gm.flux(), flux, 1e-13),
        "flux {} vs {}",
        gm.flux(),
        flux
    );
    let (g1, g2, t) = gm.g1g2t().unwrap();
    prop_assert!(
        rel_close(t, pars[4] * tscale, 1e-12),
        "T {} vs {}",
        t,
        pars[4] * tscale
    );
    prop_assert!(
        (g1 - pars[2]).abs() < 1e-12 && (g2 - pars[3]).abs() < 1e-12,
        "g ({}, {}) vs ({}, {})",
        g1,
        g2,
        pars[2],
        pars[3]
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn simple_models_have_their_parameters(pars in simple_pars()) {
        for (kind, n) in [(SimpleKind::Gauss, 1), (SimpleKind::Exp, 6), (SimpleKind::Dev, 10), (SimpleKind::Turb, 3)] {
            let model = Model::Simple(kind);
            let v2 = model.gmix_with(&pars, Tables::V2).unwrap();
            prop_assert_eq!(v2.len(), n);
            check_model(&v2, &pars, pars[5], 1.0)?;
            let v1 = model.gmix_with(&pars, Tables::V1).unwrap();
            prop_assert_eq!(&v1, &model.gmix(&pars).unwrap());
            // ngmix v1.3.5's dev table is normalised to sum p f = 1.025
            let tscale = if kind == SimpleKind::Dev { 1.025 } else { 1.0 };
            check_model(&v1, &pars, pars[5], tscale)?;
        }
    }

    #[test]
    fn composite_models_have_their_parameters(
        pars in simple_pars(),
        fracdev in 0.0f64..=1.0,
        tdbyte in 0.1f64..10.0,
        ltrat in -1.0f64..1.0,
    ) {
        for tables in [Tables::V1, Tables::V2] {
            let cm = Model::Cm { fracdev, tdbyte }.gmix_with(&pars, tables).unwrap();
            prop_assert_eq!(cm.len(), 16);
            check_model(&cm, &pars, pars[5], 1.0)?;
            // the dev part carries fracdev of the flux
            let fdev: f64 = cm.gaussians()[6..].iter().map(|g| g.p).sum();
            prop_assert!((fdev - fracdev * pars[5]).abs() < 1e-13 * pars[5]);

            let bdf_pars = [pars[0], pars[1], pars[2], pars[3], pars[4], fracdev, pars[5]];
            let bdf = Model::Bdf.gmix_with(&bdf_pars, tables).unwrap();
            check_model(&bdf, &bdf_pars, pars[5], 1.0)?;
            // bdf = cm with TdByTe = 1
            prop_assert_eq!(&bdf, &Model::Cm { fracdev, tdbyte: 1.0 }.gmix_with(&pars, tables).unwrap());

            let bd_pars = [pars[0], pars[1], pars[2], pars[3], pars[4], ltrat, fracdev, pars[5]];
            let bd = Model::Bd.gmix_with(&bd_pars, tables).unwrap();
            check_model(&bd, &bd_pars, pars[5], 1.0)?;
            // ratio of the dev and exp sizes is 10^ltrat (component 6 is dev 0, 0 is exp 0)
            let prof = tables.profile(SimpleKind::Dev);
            let eprof = tables.profile(SimpleKind::Exp);
            let ratio = ((bd[6].irr + bd[6].icc) / prof.f[0]) / ((bd[0].irr + bd[0].icc) / eprof.f[0]);
            prop_assert!(rel_close(ratio, 10f64.powf(ltrat), 1e-12));
        }
    }

    #[test]
    fn coellip_models_have_their_parameters(
        pars in simple_pars(),
        comps in prop::collection::vec((0.01f64..50.0, 0.01f64..100.0), 1..=5),
    ) {
        let n = comps.len();
        let mut p = pars[..4].to_vec();
        p.extend(comps.iter().map(|c| c.0));
        p.extend(comps.iter().map(|c| c.1));
        let gm = Model::Coellip(n).gmix_with(&p, Tables::V2).unwrap();
        prop_assert_eq!(gm.len(), n);
        let ftot: f64 = comps.iter().map(|c| c.1).sum();
        let tmean = comps.iter().map(|c| c.0 * c.1).sum::<f64>() / ftot;
        let mut want = p.clone();
        want[4] = tmean;
        check_model(&gm, &want, ftot, 1.0)?;
    }

    /// |g| >= 1 is a range error for every model.
    #[test]
    fn models_reject_g_outside_unit_disk(gmag in 1.0f64..3.0, th in 0.0f64..TAU) {
        let (g1, g2) = (gmag * th.cos(), gmag * th.sin());
        prop_assume!(g1 * g1 + g2 * g2 >= 1.0);
        let pars = [0.0, 0.0, g1, g2, 1.0, 1.0];
        for kind in [SimpleKind::Gauss, SimpleKind::Exp, SimpleKind::Dev, SimpleKind::Turb] {
            prop_assert!(matches!(Model::Simple(kind).gmix(&pars), Err(GMixError::Range(_))));
        }
        prop_assert!(matches!(shape::g1g2_to_e1e2(g1, g2), Err(GMixError::Range(_))));
        prop_assert!(matches!(shape::g1g2_to_eta1eta2(g1, g2), Err(GMixError::Range(_))));
    }
}

// ---------------------------------------------------------------------------------------------
// Jacobian

proptest! {
    #![proptest_config(config())]

    #[test]
    fn jacobian_rowcol_inverts_vu(j in jacobian(), r in -200.0f64..200.0, c in -200.0f64..200.0) {
        let det = j.dudcol * j.dvdrow - j.dudrow * j.dvdcol;
        prop_assert_eq!(j.det(), det);
        prop_assert!(rel_close(j.area(), det.abs(), 1e-15));
        prop_assert!(rel_close(j.scale(), det.abs().sqrt(), 1e-15));

        let (v, u) = j.vu(r, c);
        let (r2, c2) = j.rowcol(v, u);
        let tol = 1e-12 * (1.0 + r.abs() + c.abs() + j.row0.abs() + j.col0.abs());
        prop_assert!((r2 - r).abs() < tol && (c2 - c).abs() < tol, "({}, {}) -> ({}, {})", r, c, r2, c2);

        let (rr, cc) = j.rowcol(r, c); // (r, c) read as (v, u)
        let (v2, u2) = j.vu(rr, cc);
        let stol = 1e-12 * (1.0 + r.abs() + c.abs()) / j.scale().min(1.0) * 10.0;
        prop_assert!((v2 - r).abs() < stol && (u2 - c).abs() < stol);

        // area element: the image of a unit pixel has area |det|
        let (v0, u0) = j.vu(0.0, 0.0);
        let (va, ua) = j.vu(1.0, 0.0);
        let (vb, ub) = j.vu(0.0, 1.0);
        let cross = (ub - u0) * (va - v0) - (ua - u0) * (vb - v0);
        prop_assert!(rel_close(cross, det, 1e-12));
    }
}
