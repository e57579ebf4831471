//! Priors and seeded random streams.
//!
//! References:
//! * `tests/data/ngmix/priors.json`: ngmix 2.4.2 values (generator `gen_priors.py` of the
//!   shared reference set); where v1.3.5 and 2.4.2 agree (every point in that file, checked
//!   by running v1.3.5's code) the values are compared at 1e-12 relative;
//! * `tests/data/priors/ngmix_v135.json`: ngmix v1.3.5 itself (generator
//!   `tests/data/priors/gen_v135.py`) for the COSMOS g priors, ZDisk2D, the Y1 settings, GMixND
//!   and the Y1 MOF joint prior;
//! * analytic results (normalisations, moments, derivatives) computed here.

use ngmixer::priors::{
    dlnprob_dx_numeric, fdiff_from_lnprob, CenPrior, FlatPrior, GMixND, GPrior, GPriorBA, GPriorM,
    GPriorMErf, LogNormal, Normal, Prior1D, PriorSimpleSep, ShapePrior, TPrior, TPriorCosmos,
    TwoSidedErf, ZDisk2D, LOWVAL,
};
use ngmixer::rng::{normal, object_rng, uniform, uniform_range, ObjRng};
use ngmixer::{GMixError, GResult};
use rand_core::Rng;
use serde_json::Value;
use std::f64::consts::PI;

const SEED: u64 = 20240611;

fn load(rel: &str) -> Value {
    let path = format!("{}/tests/data/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A reference entry: a number, or "GMixRangeError", or a non-finite marker.
#[derive(Debug, Clone, Copy)]
enum Ref {
    Num(f64),
    RangeError,
}

fn refv(v: &Value) -> Ref {
    match v {
        Value::Number(n) => Ref::Num(n.as_f64().expect("f64")),
        Value::String(s) => match s.as_str() {
            "GMixRangeError" => Ref::RangeError,
            "Infinity" => Ref::Num(f64::INFINITY),
            "-Infinity" => Ref::Num(f64::NEG_INFINITY),
            "NaN" => Ref::Num(f64::NAN),
            other => panic!("unexpected marker {other}"),
        },
        other => panic!("unexpected value {other}"),
    }
}

fn num(v: &Value) -> f64 {
    match refv(v) {
        Ref::Num(x) => x,
        Ref::RangeError => panic!("expected a number"),
    }
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

/// Compares a computed result with a reference entry at `rel` (plus a tiny absolute floor for
/// values that are 0 in one and 1e-17 in the other).
fn check(got: GResult<f64>, want: &Value, rel: f64, what: &str) {
    match (got, refv(want)) {
        (Ok(g), Ref::Num(w)) => assert!(close(g, w, rel, 1e-300), "{what}: got {g:e}, want {w:e}"),
        (Err(GMixError::Range(_)), Ref::RangeError) => {}
        (g, w) => panic!("{what}: got {g:?}, want {w:?}"),
    }
}

// ------------------------------------------------------------------ sampling statistics

/// Mean, standard deviation and the standard errors of both, from the sample itself
/// (`se(std) = sqrt((m4 - var²)/n) / (2 std)`).
struct Stats {
    mean: f64,
    std: f64,
    se_mean: f64,
    se_std: f64,
    min: f64,
    max: f64,
}

fn stats(xs: &[f64]) -> Stats {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m4 = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    let std = var.sqrt();
    Stats {
        mean,
        std,
        se_mean: std / n.sqrt(),
        se_std: ((m4 - var * var) / n).sqrt() / (2.0 * std),
        min: xs.iter().copied().fold(f64::INFINITY, f64::min),
        max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// `|got - want| < k σ`.
fn within(got: f64, want: f64, sigma: f64, k: f64, what: &str) {
    assert!(
        (got - want).abs() < k * sigma,
        "{what}: got {got}, want {want} (sigma {sigma:e}, {:.2} sigma)",
        (got - want).abs() / sigma
    );
}

/// Checks sample moments against exact values (5σ) and against the numpy sample statistics of
/// the reference (two independent samples: 5√2 σ, with σ for the reference's size).
fn check_sample_stats(
    xs: &[f64],
    mean: f64,
    std: f64,
    refstats: Option<(&Value, f64)>,
    what: &str,
) {
    let s = stats(xs);
    within(s.mean, mean, s.se_mean, 5.0, &format!("{what} mean"));
    within(s.std, std, s.se_std, 5.0, &format!("{what} std"));
    if let Some((r, nref)) = refstats {
        let scale = (xs.len() as f64 / nref).sqrt();
        let k = 5.0 * (1.0 + scale * scale).sqrt();
        within(
            s.mean,
            num(&r["mean"]),
            s.se_mean,
            k,
            &format!("{what} mean vs numpy"),
        );
        within(
            s.std,
            num(&r["std"]),
            s.se_std,
            k,
            &format!("{what} std vs numpy"),
        );
    }
}

fn draws<P: Prior1D>(p: &P, n: usize, rng: &mut ObjRng) -> Vec<f64> {
    (0..n).map(|_| p.sample(rng)).collect()
}

/// Composite Simpson rule with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for i in 1..n {
        let x = a + i as f64 * h;
        s += if i % 2 == 1 { 4.0 } else { 2.0 } * f(x);
    }
    s * h / 3.0
}

// ================================================================== rng

#[test]
fn rng_uniform_moments_and_range() {
    let mut rng = object_rng(SEED, 1);
    let n = 1_000_000;
    let xs: Vec<f64> = (0..n).map(|_| uniform(&mut rng)).collect();
    assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    let s = stats(&xs);
    within(s.mean, 0.5, s.se_mean, 5.0, "uniform mean");
    within(s.std, (1.0f64 / 12.0).sqrt(), s.se_std, 5.0, "uniform std");
    // Kolmogorov–Smirnov distance against U(0,1): 1.63/sqrt(n) is the 1% critical value
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let d = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| ((i + 1) as f64 / n as f64 - x).max(x - i as f64 / n as f64))
        .fold(0.0, f64::max);
    assert!(d < 1.63 / (n as f64).sqrt(), "KS distance {d}");

    let ys: Vec<f64> = (0..n).map(|_| uniform_range(&mut rng, -3.0, 5.0)).collect();
    assert!(ys.iter().all(|&y| (-3.0..5.0).contains(&y)));
    let s = stats(&ys);
    within(s.mean, 1.0, s.se_mean, 5.0, "uniform_range mean");
    within(
        s.std,
        8.0 / 12f64.sqrt(),
        s.se_std,
        5.0,
        "uniform_range std",
    );
}

#[test]
fn rng_normal_moments_and_ks() {
    let mut rng = object_rng(SEED, 2);
    let n = 1_000_000;
    let xs: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
    assert!(xs.iter().all(|x| x.is_finite()));
    let s = stats(&xs);
    within(s.mean, 0.0, s.se_mean, 5.0, "normal mean");
    within(s.std, 1.0, s.se_std, 5.0, "normal std");
    let nf = n as f64;
    let skew = xs.iter().map(|x| (x - s.mean).powi(3)).sum::<f64>() / nf / s.std.powi(3);
    let kurt = xs.iter().map(|x| (x - s.mean).powi(4)).sum::<f64>() / nf / s.std.powi(4);
    // se(skew) = sqrt(6/n), se(kurt) = sqrt(24/n)
    within(skew, 0.0, (6.0 / nf).sqrt(), 5.0, "normal skewness");
    within(kurt, 3.0, (24.0 / nf).sqrt(), 5.0, "normal kurtosis");
    let mut sorted = xs;
    sorted.sort_by(f64::total_cmp);
    let cdf = |x: f64| 0.5 * (1.0 + libm::erf(x / 2f64.sqrt()));
    let d = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = cdf(x);
            ((i + 1) as f64 / nf - c).max(c - i as f64 / nf)
        })
        .fold(0.0, f64::max);
    assert!(d < 1.63 / nf.sqrt(), "KS distance {d}");
}

#[test]
fn rng_streams_are_deterministic_and_distinct() {
    let seq = |seed, id| {
        let mut r = object_rng(seed, id);
        (0..8).map(|_| r.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(seq(7, 3), seq(7, 3));
    assert_eq!(seq(7, -3), seq(7, -3));
    assert_ne!(seq(7, 3), seq(7, 4));
    assert_ne!(seq(7, 3), seq(8, 3));
    assert_ne!(seq(7, 3), seq(7, -3));
    // the same draws regardless of the thread that makes them
    let handles: Vec<_> = (0..4)
        .map(|id| std::thread::spawn(move || seq(99, id)))
        .collect();
    for (id, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("thread"), seq(99, id as i64));
    }
    // works through a trait object too
    let mut r = object_rng(1, 1);
    let dynr: &mut dyn Rng = &mut r;
    let u = uniform(dynr);
    assert!((0.0..1.0).contains(&u));
}

// ================================================================== priors.json (ngmix 2.4.2)

fn one_d_points<P: Prior1D>(p: &P, block: &Value, name: &str) {
    for pt in block["points"].as_array().expect("points") {
        let x = num(&pt["x"]);
        check(
            p.lnprob(x),
            &pt["lnprob"],
            1e-12,
            &format!("{name} lnprob({x})"),
        );
        check(
            p.fdiff(x),
            &pt["fdiff"],
            1e-12,
            &format!("{name} fdiff({x})"),
        );
        if let Some(pr) = pt.get("prob") {
            check(p.prob(x), pr, 1e-12, &format!("{name} prob({x})"));
        }
        // the numerical derivative: same formula as the generator, h = 1e-6; the difference
        // of two ~1e-16-relative lnprob values is amplified by 1/h
        let d = dlnprob_dx_numeric(p, x, 1e-6);
        match (d, refv(&pt["dlnprob_dx_numeric"])) {
            (Ok(g), Ref::Num(w)) if w.is_nan() => assert!(g.is_nan(), "{name} dlnp({x}) {g}"),
            (Ok(g), Ref::Num(w)) => {
                let lnp = p.lnprob(x).map(f64::abs).unwrap_or(0.0);
                let tol = 1e-8 * (1.0 + lnp) + 1e-7 * w.abs();
                assert!((g - w).abs() <= tol, "{name} dlnp({x}): {g} vs {w}")
            }
            (Err(_), Ref::RangeError) => {}
            (g, w) => panic!("{name} dlnp({x}): {g:?} vs {w:?}"),
        }
    }
}

#[test]
fn ngmix_normal() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["Normal"];
    let p = Normal::new(num(&b["ctor"]["mean"]), num(&b["ctor"]["sigma"])).expect("ctor");
    one_d_points(&p, b, "Normal");
    let mut rng = object_rng(SEED, 10);
    let xs = draws(&p, 200_000, &mut rng);
    check_sample_stats(
        &xs,
        0.5,
        2.0,
        Some((&b["sample_stats_200k"], 200_000.0)),
        "Normal",
    );
    // analytic derivative
    for x in [-3.0, 0.0, 1.7, 10.0] {
        let an = -(x - 0.5) / 4.0;
        let nd = dlnprob_dx_numeric(&p, x, 1e-5).expect("deriv");
        assert!((an - nd).abs() < 1e-8, "{an} {nd}");
    }
}

#[test]
fn ngmix_flat() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["FlatPrior"];
    let p = FlatPrior::new(num(&b["ctor"]["minval"]), num(&b["ctor"]["maxval"])).expect("ctor");
    one_d_points(&p, b, "FlatPrior");
    // bounds: both ends included, just outside is a range error
    assert_eq!(p.lnprob(-1.0), Ok(0.0));
    assert_eq!(p.lnprob(4.0), Ok(0.0));
    assert!(matches!(p.lnprob(-1.0 - 1e-12), Err(GMixError::Range(_))));
    assert!(matches!(p.prob(4.0 + 1e-12), Err(GMixError::Range(_))));
    assert!(matches!(p.fdiff(4.0 + 1e-12), Err(GMixError::Range(_))));
    let mut rng = object_rng(SEED, 11);
    let xs = draws(&p, 200_000, &mut rng);
    let s = stats(&xs);
    assert!(s.min >= -1.0 && s.max < 4.0);
    check_sample_stats(
        &xs,
        1.5,
        5.0 / 12f64.sqrt(),
        Some((&b["sample_stats_200k"], 200_000.0)),
        "Flat",
    );
    assert!(FlatPrior::new(2.0, 1.0).is_err());
    assert!(TPrior::flat(0.0, f64::INFINITY).is_err());
}

/// Analytic d ln p/dx of a TwoSidedErf.
fn two_sided_erf_dlnp(pars: [f64; 4], x: f64) -> f64 {
    let [mn, wmn, mx, wmx] = pars;
    let g = |t: f64| (-t * t).exp() / PI.sqrt(); // d/dt ½ erf(t)
    let p = 0.5 * libm::erf((mx - x) / wmx) + 0.5 * libm::erf((x - mn) / wmn);
    (-g((mx - x) / wmx) / wmx + g((x - mn) / wmn) / wmn) / p
}

#[test]
fn ngmix_two_sided_erf() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["TwoSidedErf"];
    let c = &b["ctor"];
    let pars = [
        num(&c["minval"]),
        num(&c["width_at_min"]),
        num(&c["maxval"]),
        num(&c["width_at_max"]),
    ];
    let p = TwoSidedErf::new(pars[0], pars[1], pars[2], pars[3]).expect("ctor");
    one_d_points(&p, b, "TwoSidedErf");
    let t = TPrior::two_sided_erf(pars).expect("ctor");
    one_d_points(&t, b, "TPrior::TwoSidedErf");
    // p = 0 far outside: LOWVAL (-inf) and an infinite residual, as ngmix v1.3.5
    assert_eq!(p.lnprob(-40.0), Ok(LOWVAL));
    assert_eq!(p.fdiff(-40.0), Ok(f64::INFINITY));
    // analytic derivative where p is not tiny
    for x in [-12.0, -10.0, -9.0, 9.0e5, 1.0e6, 1.3e6] {
        let an = two_sided_erf_dlnp(pars, x);
        let h = 1e-6 * x.abs().max(1.0);
        let nd = dlnprob_dx_numeric(&p, x, h).expect("deriv");
        assert!(
            (an - nd).abs() <= 1e-5 * an.abs() + 1e-9,
            "x {x}: {an} {nd}"
        );
    }
    // sampling: exact moments of p restricted to the proposal range
    let xmin = pars[0] - 5.0 * pars[1];
    let xmax = pars[2] + 5.0 * pars[3];
    let pf = |x: f64| p.prob(x).unwrap_or(0.0);
    let moment = |k: i32| {
        simpson(|x| x.powi(k) * pf(x), xmin, 0.0, 20_000)
            + simpson(|x| x.powi(k) * pf(x), 0.0, xmax, 200_000)
    };
    let (m0, m1, m2) = (moment(0), moment(1), moment(2));
    let mean = m1 / m0;
    let std = (m2 / m0 - mean * mean).sqrt();
    let mut rng = object_rng(SEED, 12);
    let xs = draws(&p, 200_000, &mut rng);
    check_sample_stats(
        &xs,
        mean,
        std,
        Some((&b["sample_stats_200k"], 200_000.0)),
        "TwoSidedErf",
    );
    let s = stats(&xs);
    assert!(s.min >= xmin && s.max < xmax);
}

/// Analytic d ln p/dx of the (mode-normalised) log-normal.
fn lognormal_dlnp(p: &LogNormal, x: f64) -> f64 {
    let y = x - p.shift().unwrap_or(0.0);
    -(y.ln() - p.logmean()) / (p.logvar() * y) - 1.0 / y
}

#[test]
fn ngmix_lognormal() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["LogNormal"];
    let p = LogNormal::new(num(&b["ctor"]["mean"]), num(&b["ctor"]["sigma"])).expect("ctor");
    one_d_points(&p, b, "LogNormal");
    let dv = &b["derived"];
    for (got, key) in [
        (p.logmean(), "logmean"),
        (p.logvar(), "logvar"),
        (p.logsigma(), "logsigma"),
        (p.mode(), "mode"),
        (p.lnprob_max(), "lnprob_max"),
    ] {
        check(Ok(got), &dv[key], 1e-14, key);
    }
    // peak at the mode is 0
    assert!(p.lnprob(p.mode()).expect("mode").abs() < 1e-14);
    for x in [0.1, 1.0, 2.4, 8.0, 30.0] {
        let an = lognormal_dlnp(&p, x);
        let nd = dlnprob_dx_numeric(&p, x, 1e-6 * x).expect("deriv");
        assert!(
            (an - nd).abs() <= 1e-6 * an.abs() + 1e-8,
            "x {x}: {an} {nd}"
        );
    }
    let mut rng = object_rng(SEED, 13);
    let xs = draws(&p, 200_000, &mut rng);
    check_sample_stats(
        &xs,
        3.0,
        1.5,
        Some((&b["sample_stats_200k"], 200_000.0)),
        "LogNormal",
    );

    let b = &d["priors"]["LogNormal_shift"];
    let c = &b["ctor"];
    let p = LogNormal::with_shift(num(&c["mean"]), num(&c["sigma"]), Some(num(&c["shift"])))
        .expect("ctor");
    one_d_points(&p, b, "LogNormal_shift");
    let xs = draws(&p, 200_000, &mut rng);
    check_sample_stats(
        &xs,
        2.5,
        1.5,
        Some((&b["sample_stats_200k"], 200_000.0)),
        "LogNormal_shift",
    );
    for x in [-0.4, 0.0, 2.0] {
        let an = lognormal_dlnp(&p, x);
        let nd = dlnprob_dx_numeric(&p, x, 1e-7).expect("deriv");
        assert!(
            (an - nd).abs() <= 1e-6 * an.abs() + 1e-6,
            "x {x}: {an} {nd}"
        );
    }

    assert!(LogNormal::new(0.0, 1.0).is_err());
    assert!(LogNormal::new(-1.0, 1.0).is_err());
    assert!(TPrior::lognormal(1.0, 0.0).is_err());
}

/// `∫ p_BA d²g` over the unit disk: `π (1/a - 2/a² + 2/a³ - 2 e^{-a}/a³)`, `a = 1/(2σ²)`.
fn ba_norm(sigma: f64) -> f64 {
    let a = 1.0 / (2.0 * sigma * sigma);
    PI * (1.0 / a - 2.0 / (a * a) + 2.0 / a.powi(3) - 2.0 * (-a).exp() / a.powi(3))
}

#[test]
fn ngmix_gprior_ba() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["GPriorBA"];
    let sigma = num(&b["ctor"]["sigma"]);
    let p = GPriorBA::with_amplitude(sigma, num(&b["ctor"]["A"])).expect("ctor");
    let sp = ShapePrior::ba(sigma).expect("ctor");
    for pt in b["points"].as_array().expect("points") {
        let g1 = num(&pt["g"][0]);
        let g2 = num(&pt["g"][1]);
        let what = format!("BA({g1},{g2})");
        for q in [&p as &dyn Fn2, &sp as &dyn Fn2] {
            check(
                q.ln2(g1, g2),
                &pt["lnprob2d"],
                1e-12,
                &format!("{what} lnprob2d"),
            );
            check(
                q.p2(g1, g2),
                &pt["prob2d"],
                1e-12,
                &format!("{what} prob2d"),
            );
            check(
                q.p1(g1.hypot(g2)),
                &pt["prob1d_of_|g|"],
                1e-12,
                &format!("{what} prob1d"),
            );
            check(q.fd(g1, g2), &pt["fdiff"], 1e-12, &format!("{what} fdiff"));
        }
        // numeric derivatives (h = 1e-6) and the analytic gradient of ln p
        let h = 1e-6;
        let num1 = p
            .lnprob2d(g1 + h, g2)
            .and_then(|a| Ok(a - p.lnprob2d(g1 - h, g2)?))
            .map(|v| v / (2.0 * h));
        let num2 = p
            .lnprob2d(g1, g2 + h)
            .and_then(|a| Ok(a - p.lnprob2d(g1, g2 - h)?))
            .map(|v| v / (2.0 * h));
        for (got, key) in [(num1, "dlnprob_dg1_numeric"), (num2, "dlnprob_dg2_numeric")] {
            match (got, refv(&pt[key])) {
                (Ok(g), Ref::Num(w)) => assert!(
                    (g - w).abs() < 1e-7 * (1.0 + w.abs()),
                    "{what} {key}: {g} {w}"
                ),
                (Err(_), Ref::RangeError) => {}
                (g, w) => panic!("{what} {key}: {g:?} {w:?}"),
            }
        }
        if let Ok(g) = num1 {
            // d/dg1 [2 ln(1-g²) - g²/(2σ²)] = -4 g1/(1-g²) - g1/σ²
            let gsq = g1 * g1 + g2 * g2;
            let an = -4.0 * g1 / (1.0 - gsq) - g1 / (sigma * sigma);
            assert!(
                (g - an).abs() < 1e-6 * (1.0 + an.abs()),
                "{what} analytic {g} {an}"
            );
        }
    }
    // ngmix's BA prior peaks at 1 and is not normalised: ∫ p d²g = ba_norm(σ)
    let integral_1d = simpson(|g| p.prob1d(g).expect("p1"), 0.0, 1.0, 20_000);
    assert!(
        (integral_1d - ba_norm(sigma)).abs() < 1e-10,
        "{integral_1d} vs {}",
        ba_norm(sigma)
    );
    let integral_2d = simpson(
        |g1| {
            let w = (1.0 - g1 * g1).max(0.0).sqrt();
            simpson(|g2| p.prob2d(g1, g2).expect("p2"), -w, w, 2000)
        },
        -1.0,
        1.0,
        2000,
    );
    assert!(
        (integral_2d - ba_norm(sigma)).abs() < 1e-6,
        "{integral_2d} vs {}",
        ba_norm(sigma)
    );
    assert_eq!(p.prob2d(0.0, 0.0), Ok(1.0));

    // sampling: moments of |g| and g1 against the exact (numerically integrated) values
    let gtop = 1.0 - 1e-4;
    let m = |k: i32| simpson(|g| g.powi(k) * p.prob1d(g).expect("p1"), 0.0, gtop, 20_000);
    let mean_g = m(1) / m(0);
    let std_g1 = (0.5 * m(2) / m(0)).sqrt();
    let mut rng = object_rng(SEED, 14);
    let n = 100_000;
    let gs: Vec<(f64, f64)> = (0..n).map(|_| p.sample2d(&mut rng)).collect();
    let gabs: Vec<f64> = gs.iter().map(|(a, b)| a.hypot(*b)).collect();
    let g1s: Vec<f64> = gs.iter().map(|g| g.0).collect();
    let g2s: Vec<f64> = gs.iter().map(|g| g.1).collect();
    let sa = stats(&gabs);
    let s1 = stats(&g1s);
    let s2 = stats(&g2s);
    assert!(sa.max < 1.0);
    within(sa.mean, mean_g, sa.se_mean, 5.0, "BA mean |g|");
    within(s1.mean, 0.0, s1.se_mean, 5.0, "BA mean g1");
    within(s2.mean, 0.0, s2.se_mean, 5.0, "BA mean g2");
    within(s1.std, std_g1, s1.se_std, 5.0, "BA std g1");
    let r = &b["sample_stats_100k"];
    let k = 5.0 * 2f64.sqrt();
    within(
        sa.mean,
        num(&r["mean_|g|"]),
        sa.se_mean,
        k,
        "BA mean |g| vs numpy",
    );
    within(
        s1.std,
        num(&r["std_g1"]),
        s1.se_std,
        k,
        "BA std g1 vs numpy",
    );
    within(
        s1.mean,
        num(&r["mean_g1"]),
        s1.se_mean,
        k,
        "BA mean g1 vs numpy",
    );
}

/// Object-safe view of the g priors for the tests.
trait Fn2 {
    fn ln2(&self, a: f64, b: f64) -> GResult<f64>;
    fn p2(&self, a: f64, b: f64) -> GResult<f64>;
    fn p1(&self, g: f64) -> GResult<f64>;
    fn fd(&self, a: f64, b: f64) -> GResult<f64>;
}

impl<T: GPrior> Fn2 for T {
    fn ln2(&self, a: f64, b: f64) -> GResult<f64> {
        self.lnprob2d(a, b)
    }
    fn p2(&self, a: f64, b: f64) -> GResult<f64> {
        self.prob2d(a, b)
    }
    fn p1(&self, g: f64) -> GResult<f64> {
        self.prob1d(g)
    }
    fn fd(&self, a: f64, b: f64) -> GResult<f64> {
        self.fdiff(a, b)
    }
}

#[test]
fn ngmix_cen_prior() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["CenPrior"];
    let c = &b["ctor"];
    let p = CenPrior::new(
        num(&c["cen1"]),
        num(&c["cen2"]),
        num(&c["sigma1"]),
        num(&c["sigma2"]),
    )
    .expect("ctor");
    for pt in b["points"].as_array().expect("points") {
        let (x1, x2) = (num(&pt["x"][0]), num(&pt["x"][1]));
        check(Ok(p.lnprob(x1, x2)), &pt["lnprob"], 1e-12, "cen lnprob");
        check(Ok(p.prob(x1, x2)), &pt["prob"], 1e-12, "cen prob");
        let (l1, l2) = p.lnprob_sep(x1, x2);
        check(Ok(l1), &pt["lnprob_sep"][0], 1e-12, "cen sep1");
        check(Ok(l2), &pt["lnprob_sep"][1], 1e-12, "cen sep2");
        let (f1, f2) = p.fdiff(x1, x2);
        check(Ok(f1), &pt["fdiff"][0], 1e-12, "cen fdiff1");
        check(Ok(f2), &pt["fdiff"][1], 1e-12, "cen fdiff2");
    }
    // sampling (ngmix test_priors2d: mean/std within 2e-3 for large draws)
    let mut rng = object_rng(SEED, 15);
    let n = 200_000;
    let xs: Vec<(f64, f64)> = (0..n).map(|_| p.sample(&mut rng)).collect();
    let a: Vec<f64> = xs.iter().map(|x| x.0).collect();
    let bb: Vec<f64> = xs.iter().map(|x| x.1).collect();
    check_sample_stats(&a, 0.1, 0.263, None, "cen1");
    check_sample_stats(&bb, -0.2, 0.3, None, "cen2");
    assert!(CenPrior::new(0.0, 0.0, 0.0, 1.0).is_err());
}

#[test]
fn ngmix_prior_simple_sep_2band() {
    let d = load("ngmix/priors.json");
    let b = &d["priors"]["PriorSimpleSep_2band"];
    assert!(b["bounds"].is_null());
    let f = TPrior::two_sided_erf([-100.0, 1.0, 1.0e9, 1.0e8]).expect("F");
    let jp = PriorSimpleSep::new(
        CenPrior::new(0.0, 0.0, 0.263, 0.263).expect("cen"),
        ShapePrior::ba(0.2).expect("g"),
        TPrior::two_sided_erf([-1.0, 0.1, 1.0e6, 1.0e5]).expect("T"),
        vec![f.clone(), f],
    )
    .expect("joint");
    assert_eq!(jp.nband(), 2);
    assert_eq!(jp.npars(), 7);
    for pt in b["points"].as_array().expect("points") {
        let pars: Vec<f64> = pt["pars"]
            .as_array()
            .expect("pars")
            .iter()
            .map(num)
            .collect();
        let mut out = vec![99.0; 7];
        let n = jp.fill_fdiff(&pars, &mut out).expect("fill");
        assert_eq!(n as u64, pt["nfilled"].as_u64().expect("n"));
        assert_eq!(out[6], 99.0, "only nfilled rows are written");
        for (i, want) in pt["fill_fdiff"].as_array().expect("fd").iter().enumerate() {
            check(Ok(out[i]), want, 1e-12, &format!("fill_fdiff[{i}]"));
        }
        check(
            jp.lnprob(&pars),
            &pt["lnprob_scalar"],
            1e-12,
            "joint lnprob",
        );
        // each row is sqrt(-2 lnp_i) of its own term and Σ rows² = -2 ln p
        let chi2: f64 = out[..n].iter().map(|v| v * v).sum();
        let lnp = jp.lnprob(&pars).expect("lnp");
        assert!((chi2 + 2.0 * lnp).abs() < 1e-12 * (1.0 + chi2));
    }
    // errors: short slices, |g| >= 1
    let mut out = [0.0; 5];
    assert!(jp.fill_fdiff(&[0.0; 7], &mut out).is_err());
    assert!(jp.lnprob(&[0.0; 6]).is_err());
    assert!(matches!(
        jp.lnprob(&[0.0, 0.0, 0.8, 0.7, 1.0, 1.0, 1.0]),
        Err(GMixError::Range(_))
    ));
}

// ================================================================== ngmix v1.3.5 references

fn g_points<P: GPrior>(p: &P, b: &Value, name: &str) {
    for pt in b["points"].as_array().expect("points") {
        let (g1, g2) = (num(&pt["g"][0]), num(&pt["g"][1]));
        let what = format!("{name}({g1},{g2})");
        check(
            p.lnprob2d(g1, g2),
            &pt["lnprob2d"],
            1e-12,
            &format!("{what} lnprob2d"),
        );
        check(
            p.prob2d(g1, g2),
            &pt["prob2d"],
            1e-12,
            &format!("{what} prob2d"),
        );
        check(
            p.prob1d(g1.hypot(g2)),
            &pt["prob1d_of_|g|"],
            1e-12,
            &format!("{what} prob1d"),
        );
        if let Some(fd) = pt.get("fdiff") {
            check(p.fdiff(g1, g2), fd, 1e-12, &format!("{what} fdiff"));
        }
    }
}

/// Sampling of a g prior: |g| and g1 moments against the exact values of the 1-d density on
/// `[0, gmax - 1e-4)` and against ngmix v1.3.5's own sample (200k).
fn g_sampling<P: GPrior>(p: &P, gmax: f64, b: &Value, name: &str, stream: i64) {
    let gtop = gmax - 1e-4;
    let m = |k: i32| simpson(|g| g.powi(k) * p.prob1d(g).expect("p1"), 0.0, gtop, 40_000);
    let (m0, m1, m2) = (m(0), m(1), m(2));
    let mean_g = m1 / m0;
    let std_g = (m2 / m0 - mean_g * mean_g).sqrt();
    let std_g1 = (0.5 * m2 / m0).sqrt();
    let mut rng = object_rng(SEED, stream);
    let n = 200_000;
    let gs: Vec<(f64, f64)> = (0..n).map(|_| p.sample2d(&mut rng)).collect();
    let gabs: Vec<f64> = gs.iter().map(|(a, b)| a.hypot(*b)).collect();
    let g1s: Vec<f64> = gs.iter().map(|g| g.0).collect();
    let sa = stats(&gabs);
    let s1 = stats(&g1s);
    assert!(sa.max < gtop + 1e-12, "{name} max |g| {}", sa.max);
    within(
        sa.mean,
        mean_g,
        sa.se_mean,
        5.0,
        &format!("{name} mean |g|"),
    );
    within(sa.std, std_g, sa.se_std, 5.0, &format!("{name} std |g|"));
    within(s1.mean, 0.0, s1.se_mean, 5.0, &format!("{name} mean g1"));
    within(s1.std, std_g1, s1.se_std, 5.0, &format!("{name} std g1"));
    let r = &b["sample_stats_200k"];
    let k = 5.0 * 2f64.sqrt();
    within(
        sa.mean,
        num(&r["mean_|g|"]),
        sa.se_mean,
        k,
        &format!("{name} mean |g| vs v1.3.5"),
    );
    within(
        s1.std,
        num(&r["std_g1"]),
        s1.se_std,
        k,
        &format!("{name} std g1 vs v1.3.5"),
    );
}

#[test]
fn v135_cosmos_g_priors() {
    let d = load("priors/ngmix_v135.json");
    let pr = &d["priors"];
    let s = GPriorMErf::cosmos_sersic().expect("sersic");
    g_points(&s, &pr["cosmos_sersic"], "cosmos-sersic");
    g_points(
        &ShapePrior::cosmos_sersic().expect("s"),
        &pr["cosmos_sersic"],
        "ShapePrior cosmos-sersic",
    );
    g_sampling(&s, 1.0, &pr["cosmos_sersic"], "cosmos-sersic", 20);

    let e = GPriorM::cosmos_exp().expect("exp");
    g_points(&e, &pr["cosmos_exp"], "cosmos-exp");
    g_points(
        &ShapePrior::cosmos_exp().expect("e"),
        &pr["cosmos_exp"],
        "ShapePrior cosmos-exp",
    );
    g_sampling(&e, 0.791, &pr["cosmos_exp"], "cosmos-exp", 21);

    let dv = GPriorM::cosmos_dev().expect("dev");
    g_points(&dv, &pr["cosmos_dev"], "cosmos-dev");
    g_points(
        &ShapePrior::cosmos_dev().expect("d"),
        &pr["cosmos_dev"],
        "ShapePrior cosmos-dev",
    );
    g_sampling(&dv, 0.887, &pr["cosmos_dev"], "cosmos-dev", 22);

    let ba = GPriorBA::new(0.2).expect("ba");
    g_points(&ba, &pr["ba_0.2"], "ba 0.2");
    g_sampling(&ba, 1.0, &pr["ba_0.2"], "ba 0.2", 23);

    // the COSMOS fits peak above 1: their LM residual is clipped to 0 there
    assert_eq!(e.fdiff(0.0, 0.0), Ok(0.0));
}

#[test]
fn v135_zdisk() {
    let d = load("priors/ngmix_v135.json");
    let b = &d["priors"]["ZDisk2D_1"];
    let z = ZDisk2D::new(1.0).expect("z");
    let zs = ShapePrior::flat();
    for pt in b["points"].as_array().expect("points") {
        let (g1, g2) = (num(&pt["g"][0]), num(&pt["g"][1]));
        for q in [&z as &dyn Fn2, &zs as &dyn Fn2] {
            check(q.ln2(g1, g2), &pt["lnprob2d"], 0.0, "zdisk lnprob2d");
            check(q.p2(g1, g2), &pt["prob2d"], 0.0, "zdisk prob2d");
            check(
                q.p1(g1.hypot(g2)),
                &pt["prob1d_of_|g|"],
                0.0,
                "zdisk prob1d",
            );
        }
        check(
            z.lnprob1d(g1.hypot(g2)),
            &pt["lnprob1d_of_|g|"],
            0.0,
            "zdisk lnprob1d",
        );
    }
    // uniform on the disk: E|g| = 2/3, std(g1) = 1/2
    let mut rng = object_rng(SEED, 24);
    let gs: Vec<(f64, f64)> = (0..200_000).map(|_| z.sample2d(&mut rng)).collect();
    let gabs: Vec<f64> = gs.iter().map(|(a, b)| a.hypot(*b)).collect();
    let g1s: Vec<f64> = gs.iter().map(|g| g.0).collect();
    let sa = stats(&gabs);
    assert!(sa.max < 1.0);
    within(sa.mean, 2.0 / 3.0, sa.se_mean, 5.0, "zdisk mean |g|");
    check_sample_stats(&g1s, 0.0, 0.5, None, "zdisk g1");
}

#[test]
fn v135_y1_one_d() {
    let d = load("priors/ngmix_v135.json");
    let pr = &d["priors"];
    for key in ["TwoSidedErf_T_y1", "TwoSidedErf_counts_y1"] {
        let b = &pr[key];
        let c: Vec<f64> = b["ctor"]
            .as_array()
            .expect("ctor")
            .iter()
            .map(num)
            .collect();
        let p = TPrior::two_sided_erf([c[0], c[1], c[2], c[3]]).expect("ctor");
        for pt in b["points"].as_array().expect("points") {
            let x = num(&pt["x"]);
            check(
                p.lnprob(x),
                &pt["lnprob"],
                1e-12,
                &format!("{key} lnprob({x})"),
            );
            check(p.prob(x), &pt["prob"], 1e-12, &format!("{key} prob({x})"));
            check(
                p.fdiff(x),
                &pt["fdiff"],
                1e-12,
                &format!("{key} fdiff({x})"),
            );
        }
    }
    let b = &pr["Flat_0_10"];
    let p = TPrior::flat(0.0, 10.0).expect("flat");
    for pt in b["points"].as_array().expect("points") {
        let x = num(&pt["x"]);
        check(p.lnprob(x), &pt["lnprob"], 0.0, "flat lnprob");
        check(p.prob(x), &pt["prob"], 0.0, "flat prob");
        check(p.fdiff(x), &pt["fdiff"], 0.0, "flat fdiff");
    }
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        other => vec![num(other)],
    }
}

#[test]
fn v135_gmixnd() {
    let d = load("priors/ngmix_v135.json");
    let pr = &d["priors"];
    for key in ["GMixND_1d", "GMixND_2d"] {
        let b = &pr[key];
        let g = GMixND::new(
            &flat(&b["weights"]),
            &flat(&b["means"]),
            &flat(&b["covars"]),
        )
        .expect("gmixnd");
        for pt in b["points"].as_array().expect("points") {
            let x = flat(&pt["x"]);
            check(
                g.lnprob_nd(&x),
                &pt["lnprob"],
                1e-12,
                &format!("{key} lnprob {x:?}"),
            );
            check(
                g.prob_nd(&x),
                &pt["prob"],
                1e-12,
                &format!("{key} prob {x:?}"),
            );
        }
        assert!(g.lnprob_nd(&[0.0; 3]).is_err());
    }
    // ngmixer's cov_factor leaves ln p unchanged
    let b = &pr["GMixND_1d"];
    let mut g = GMixND::new(
        &flat(&b["weights"]),
        &flat(&b["means"]),
        &flat(&b["covars"]),
    )
    .expect("gmixnd");
    g.apply_cov_factor_ngmixer(2.0).expect("factor");
    for pt in pr["GMixND_1d_cov_factor_2"]["points"]
        .as_array()
        .expect("points")
    {
        let x = num(&pt["x"]);
        check(g.lnprob(x), &pt["lnprob"], 1e-12, "cov_factor lnprob");
    }
    assert_eq!(g.covars(), &[0.02, 0.08, 0.005]);
}

/// The 1-d mixture density written out directly.
fn mix1d(w: &[f64], m: &[f64], v: &[f64], x: f64) -> f64 {
    w.iter()
        .zip(m)
        .zip(v)
        .map(|((w, m), v)| w * (-(x - m) * (x - m) / (2.0 * v)).exp() / (2.0 * PI * v).sqrt())
        .sum()
}

#[test]
fn gmixnd_analytic_and_sampling() {
    let (w, m, v) = ([0.5, 0.3, 0.2], [0.1, 0.5, 0.9], [0.01, 0.04, 0.0025]);
    let g = GMixND::new(&w, &m, &v).expect("gmixnd");
    for x in [-0.3, 0.0, 0.2, 0.45, 0.8, 1.2] {
        let want = mix1d(&w, &m, &v, x);
        let got = g.prob(x).expect("p");
        assert!((got - want).abs() < 1e-13 * want, "{got} {want}");
        assert!((g.lnprob(x).expect("lnp") - want.ln()).abs() < 1e-13);
    }
    // the weights sum to 1, so the density integrates to 1
    let integral = simpson(|x| g.prob(x).expect("p"), -2.0, 3.0, 100_000);
    assert!((integral - 1.0).abs() < 1e-10, "{integral}");
    // sampling: mixture mean and variance
    let mean: f64 = w.iter().zip(&m).map(|(w, m)| w * m).sum();
    let m2: f64 = w
        .iter()
        .zip(&m)
        .zip(&v)
        .map(|((w, m), v)| w * (v + m * m))
        .sum();
    let mut rng = object_rng(SEED, 30);
    let xs = draws(&g, 200_000, &mut rng);
    check_sample_stats(&xs, mean, (m2 - mean * mean).sqrt(), None, "gmixnd 1d");
    // ngmixer cov_factor: the sampling variance scales
    let mut g2 = g.clone();
    g2.apply_cov_factor_ngmixer(3.0).expect("factor");
    let m2s: f64 = w
        .iter()
        .zip(&m)
        .zip(&v)
        .map(|((w, m), v)| w * (3.0 * v + m * m))
        .sum();
    let xs = draws(&g2, 200_000, &mut rng);
    check_sample_stats(
        &xs,
        mean,
        (m2s - mean * mean).sqrt(),
        None,
        "gmixnd 1d cov_factor",
    );
    // consistent rescaling changes ln p
    let mut g3 = g.clone();
    g3.scale_covars(3.0).expect("scale");
    let v3: Vec<f64> = v.iter().map(|v| 3.0 * v).collect();
    assert!((g3.prob(0.3).expect("p") - mix1d(&w, &m, &v3, 0.3)).abs() < 1e-13);

    // 2-d: sample mean and covariance of the mixture
    let w2 = [0.6, 0.4];
    let mu = [[0.0, 1.0], [1.0, -0.5]];
    let cv = [[[0.2, 0.05], [0.05, 0.1]], [[0.5, -0.2], [-0.2, 0.3]]];
    let g = GMixND::new(&w2, &mu.concat(), &cv.concat().concat()).expect("2d");
    assert_eq!((g.ndim(), g.ngauss()), (2, 2));
    let n = 200_000;
    let mut out = [0.0; 2];
    let mut s = [0.0; 2];
    let mut ss = [[0.0; 2]; 2];
    for _ in 0..n {
        g.sample_into(&mut rng, &mut out).expect("sample");
        for i in 0..2 {
            s[i] += out[i];
            for j in 0..2 {
                ss[i][j] += out[i] * out[j];
            }
        }
    }
    let nf = n as f64;
    for i in 0..2 {
        let want_mean = w2[0] * mu[0][i] + w2[1] * mu[1][i];
        let m = s[i] / nf;
        for j in 0..2 {
            let e2: f64 = (0..2)
                .map(|k| w2[k] * (cv[k][i][j] + mu[k][i] * mu[k][j]))
                .sum();
            let want_mean_j = w2[0] * mu[0][j] + w2[1] * mu[1][j];
            let cov = ss[i][j] / nf - m * s[j] / nf;
            let want = e2 - want_mean * want_mean_j;
            assert!((cov - want).abs() < 0.01, "cov[{i}][{j}] {cov} {want}");
        }
        assert!((m - want_mean).abs() < 0.006, "mean[{i}] {m} {want_mean}");
    }
    assert!(g.sample_into(&mut rng, &mut [0.0; 3]).is_err());
    // a 2-d mixture is not a T prior
    assert!(TPrior::gmixnd(g).is_err());

    // bad input
    assert!(GMixND::new(&[], &[], &[]).is_err());
    assert!(GMixND::new(&[1.0], &[0.0, 1.0], &[1.0]).is_err());
    assert!(GMixND::new(&[1.0], &[0.0], &[-1.0]).is_err());
    assert!(GMixND::new(&[-1.0], &[0.0], &[1.0]).is_err());
    assert!(GMixND::new(&[1.0], &[0.0, 0.0], &[1.0, 2.0, 2.0, 1.0]).is_err());
}

#[cfg(feature = "des-y1")]
#[test]
fn gmixnd_fits_files() {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    use fitsio::FitsFile;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("priors_gmixnd");
    std::fs::create_dir_all(&dir).expect("tmpdir");
    let (w, m, v) = ([0.5, 0.3, 0.2], [0.1, 0.5, 0.9], [0.01, 0.04, 0.0025]);

    // GMixND(file=...) format: image HDUs weights/means/covars (ngmix save_mixture)
    let g = GMixND::new(&w, &m, &v).expect("gmixnd");
    let p_img = dir.join("gmixnd_images.fits");
    g.save_fits(&p_img).expect("save");
    let back = GMixND::from_fits(&p_img).expect("read");
    assert_eq!(back, g);

    // ngmixer fracdev file format: a table with columns weights, means, covars
    let p_tab = dir.join("fracdev_table.fits");
    let _ = std::fs::remove_file(&p_tab);
    {
        let mut f = FitsFile::create(&p_tab).open().expect("create");
        let cols = [
            ColumnDescription::new("weights")
                .with_type(ColumnDataType::Double)
                .create()
                .expect("c"),
            ColumnDescription::new("means")
                .with_type(ColumnDataType::Double)
                .create()
                .expect("c"),
            ColumnDescription::new("covars")
                .with_type(ColumnDataType::Double)
                .create()
                .expect("c"),
        ];
        let hdu = f.create_table("fracdev", &cols).expect("table");
        hdu.write_col(&mut f, "weights", &w).expect("w");
        hdu.write_col(&mut f, "means", &m).expect("m");
        hdu.write_col(&mut f, "covars", &v).expect("v");
    }
    let t = GMixND::from_fits_table(&p_tab).expect("read table");
    for x in [0.0, 0.33, 0.8] {
        assert!((t.prob(x).expect("p") - mix1d(&w, &m, &v, x)).abs() < 1e-13);
    }
    // 2-d table with vector columns
    let p_tab2 = dir.join("gmix2d_table.fits");
    let _ = std::fs::remove_file(&p_tab2);
    let (w2, m2, c2) = (
        [0.6, 0.4],
        [0.0, 1.0, 1.0, -0.5],
        [0.2, 0.05, 0.05, 0.1, 0.5, -0.2, -0.2, 0.3],
    );
    {
        let mut f = FitsFile::create(&p_tab2).open().expect("create");
        let cols = [
            ColumnDescription::new("WEIGHTS")
                .with_type(ColumnDataType::Double)
                .create()
                .expect("c"),
            ColumnDescription::new("MEANS")
                .with_type(ColumnDataType::Double)
                .that_repeats(2)
                .create()
                .expect("c"),
            ColumnDescription::new("COVARS")
                .with_type(ColumnDataType::Double)
                .that_repeats(4)
                .create()
                .expect("c"),
        ];
        let hdu = f.create_table("mix", &cols).expect("table");
        hdu.write_col(&mut f, "WEIGHTS", &w2).expect("w");
        hdu.write_col(&mut f, "MEANS", &m2).expect("m");
        hdu.write_col(&mut f, "COVARS", &c2).expect("c");
    }
    let t2 = GMixND::from_fits_table(&p_tab2).expect("read 2d");
    assert_eq!(t2, GMixND::new(&w2, &m2, &c2).expect("2d"));

    // errors name the file
    let e = GMixND::from_fits(dir.join("missing.fits")).expect_err("missing");
    assert!(e.to_string().contains("missing.fits"), "{e}");
    let e = GMixND::from_fits_table(&p_img).expect_err("no table");
    assert!(e.to_string().contains("no table"), "{e}");
}

#[test]
fn v135_joint_prior_y1_mof() {
    let d = load("priors/ngmix_v135.json");
    let b = &d["priors"]["PriorSimpleSep_y1_mof_4band"];
    let f = TPrior::two_sided_erf([-1.0e4, 1.0, 1.0e9, 0.25e8]).expect("F");
    let full = PriorSimpleSep::new(
        CenPrior::new(0.0, 0.0, 0.27, 0.27).expect("cen"),
        ShapePrior::cosmos_sersic().expect("g"),
        TPrior::two_sided_erf([-10.0, 0.03, 1.0e6, 1.0e5]).expect("T"),
        vec![f; 4],
    )
    .expect("joint");
    let gflat = full.gflat();
    assert_eq!(gflat.g_prior(), &ShapePrior::flat());
    assert_eq!(full.n_fdiff(), 8);
    for pt in b["points"].as_array().expect("points") {
        let pars = flat(&pt["pars"]);
        for (name, jp) in [("full", &full), ("gflat", &gflat)] {
            let mut out = [0.0; 9];
            let res = jp.fill_fdiff(&pars, &mut out);
            match &pt[format!("{name}_fill_fdiff")] {
                Value::String(s) => {
                    assert_eq!(s, "GMixRangeError");
                    assert!(matches!(res, Err(GMixError::Range(_))), "{name} {pars:?}");
                }
                arr => {
                    let n = res.expect("fill");
                    assert_eq!(n as u64, pt[format!("{name}_nfilled")].as_u64().expect("n"));
                    for (i, want) in arr.as_array().expect("arr").iter().enumerate() {
                        check(
                            Ok(out[i]),
                            want,
                            1e-12,
                            &format!("{name} fill_fdiff[{i}] {pars:?}"),
                        );
                    }
                }
            }
            check(
                jp.lnprob(&pars),
                &pt[format!("{name}_lnprob")],
                1e-12,
                &format!("{name} lnprob"),
            );
        }
    }
}

#[test]
fn joint_prior_sampling() {
    let f = TPrior::two_sided_erf([-1.0e4, 1.0, 1.0e9, 0.25e8]).expect("F");
    let jp = PriorSimpleSep::new(
        CenPrior::new(0.0, 0.0, 0.27, 0.27).expect("cen"),
        ShapePrior::ba(0.2).expect("g"),
        TPrior::lognormal(2.0, 1.0).expect("T"),
        vec![f; 3],
    )
    .expect("joint");
    let mut rng = object_rng(SEED, 40);
    let n = 50_000;
    let samples: Vec<Vec<f64>> = (0..n).map(|_| jp.sample(&mut rng)).collect();
    assert!(samples.iter().all(|s| s.len() == 8));
    let col = |k: usize| samples.iter().map(|s| s[k]).collect::<Vec<_>>();
    check_sample_stats(&col(0), 0.0, 0.27, None, "joint cen1");
    check_sample_stats(&col(1), 0.0, 0.27, None, "joint cen2");
    check_sample_stats(&col(4), 2.0, 1.0, None, "joint T");
    // every sample is inside the support
    for s in &samples {
        assert!(jp.lnprob(s).is_ok());
    }
    // the same stream gives the same samples
    let mut r1 = object_rng(SEED, 41);
    let mut r2 = object_rng(SEED, 41);
    assert_eq!(jp.sample(&mut r1), jp.sample(&mut r2));
    let mut short = [0.0; 7];
    assert!(jp.sample_into(&mut r1, &mut short).is_err());
    assert!(PriorSimpleSep::new(
        *jp.cen_prior(),
        ShapePrior::flat(),
        jp.t_prior().clone(),
        vec![]
    )
    .is_err());
}

#[test]
fn cosmos_t_priors() {
    // the formula of ngmix's (commented-out in v1.3.5) TPriorCosmosBase, written out
    let p = TPriorCosmos::exp();
    let (m, s, w) = (
        [-0.40019405, -1.13597665],
        [0.40682263, 0.29353975],
        [0.75845293, 0.24154707],
    );
    for t in [0.01, 0.1, 0.4, 1.0, 3.0] {
        let l: f64 = f64::log10(t);
        let want = (w[0] * (-0.5 * (l - m[0]).powi(2) / (s[0] * s[0])).exp()
            + w[1] * (-0.5 * (l - m[1]).powi(2) / (s[1] * s[1])).exp())
            / t;
        assert!((p.prob(t).expect("p") - want).abs() < 1e-14 * want);
        assert!((p.lnprob(t).expect("lnp") - want.ln()).abs() < 1e-13);
    }
    assert!(matches!(p.lnprob(0.0), Err(GMixError::Range(_))));
    // sampling: log10 T follows the mixture with weights ∝ w σ
    let a = [w[0] * s[0], w[1] * s[1]];
    let asum = a[0] + a[1];
    let mean = (a[0] * m[0] + a[1] * m[1]) / asum;
    let e2 = (a[0] * (s[0] * s[0] + m[0] * m[0]) + a[1] * (s[1] * s[1] + m[1] * m[1])) / asum;
    let mut rng = object_rng(SEED, 50);
    let t = TPrior::cosmos_exp();
    let xs: Vec<f64> = (0..200_000).map(|_| t.sample(&mut rng).log10()).collect();
    check_sample_stats(
        &xs,
        mean,
        (e2 - mean * mean).sqrt(),
        None,
        "cosmos exp log10 T",
    );
    assert!(TPrior::cosmos_dev().lnprob(1.0).is_ok());
}

#[test]
fn fdiff_helper_matches_ngmix() {
    assert_eq!(fdiff_from_lnprob(-2.0), 2.0);
    assert_eq!(fdiff_from_lnprob(0.5), 0.0);
    assert_eq!(fdiff_from_lnprob(LOWVAL), f64::INFINITY);
    // numpy: sqrt(-0.0) is -0.0
    assert!(fdiff_from_lnprob(0.0).is_sign_negative());
}
