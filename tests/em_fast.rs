//! The fast V1 E step (the default of `fit_em` / `EmFitter` for ngmix v1.3.5, what the PSF fits
//! use) against the reference E step (`fit_em_reference`: the passes that evaluate every pixel
//! with ngmix's `expd`, as ngmix's C loops do), on many PSFs: PSFEx-like Moffat stamps with
//! random size, centre, noise and guesses; the PSFEx reconstructions of the three real PSFEx
//! models in tests/data/psfex at their reference positions; and the PSF stamps of the synthetic
//! MEDS file of the e2e runs (tests/data/meds). Both iterate ngmix v1.3.5's EM map and stop by
//! its rule (`|ΔT/T|, |Δe1|, |Δe2| < tol` over one step), so they must return the same flags,
//! (nearly always) the same number of iterations, and mixtures within the fit's tolerance.
#![cfg(feature = "des-y1")]

use ngmixer::backends::meds::MedsFile;
use ngmixer::backends::psfex::PsfEx;
use ngmixer::fitting::em::{em_guess, fit_em, fit_em_reference, EmConfig, EmFitter, EmResult};
use ngmixer::gmix::Jacobian;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

fn data(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
        .join(name)
}

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
}

/// A PSFEx-like stamp: Moffat (beta 3.5) of FWHM `fwhm` arcsec with e = (0.03, -0.02), offset
/// `(drow, dcol)` pixels from the stamp centre, DES pixel scale, flux 1, Gaussian-like noise of
/// `noise × max`.
fn moffat_stamp(
    n: usize,
    fwhm: f64,
    drow: f64,
    dcol: f64,
    noise: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<f64>, Jacobian) {
    let c = (n / 2) as f64;
    let j = Jacobian::new(c, c, 0.001, 0.263, 0.263, -0.002).unwrap();
    let beta = 3.5f64;
    let rd = fwhm / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
    let (e1, e2) = (0.03, -0.02);
    let mut im: Vec<f64> = (0..n * n)
        .map(|k| {
            let (v, u) = j.vu((k / n) as f64 - drow, (k % n) as f64 - dcol);
            let r2 = ((1.0 - e1) * u * u + (1.0 + e1) * v * v - 2.0 * e2 * u * v) / (rd * rd);
            (1.0 + r2).powf(-beta)
        })
        .collect();
    let total: f64 = im.iter().sum();
    im.iter_mut().for_each(|x| *x /= total);
    let mx = im.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    for x in &mut im {
        let g: f64 = (0..12).map(|_| uniform(rng, 0.0, 1.0)).sum::<f64>() - 6.0;
        *x += noise * mx * g;
    }
    (im, j)
}

/// Worst deviations over a set of comparisons, in units of the tolerance.
#[derive(Default, Debug)]
struct Worst {
    ncase: usize,
    nconv: usize,
    nflag: usize,
    it_fast: usize,
    it_ref: usize,
    t: f64,
    e: f64,
    par: f64,
}

/// Fit `im` from `guess` with the fast and the reference E step; check the flags are equal, the
/// iteration counts nearly so, and (converged fits) `T`, `e1`, `e2` and every parameter within
/// the tolerance.
fn compare(
    tag: &str,
    im: &[f64],
    (nrow, ncol): (usize, usize),
    j: &Jacobian,
    ngauss: usize,
    tguess: f64,
    cfg: &EmConfig,
    rng: &mut ChaCha8Rng,
    w: &mut Worst,
) {
    let guess = em_guess(ngauss, tguess, 1.0, rng).unwrap();
    let new = fit_em(im, nrow, ncol, j, &guess, cfg).unwrap();
    let old = fit_em_reference(im, nrow, ncol, j, &guess, cfg).unwrap();
    // the portable build of the fast step gives the same result as the AVX2 one
    let mut f = EmFitter::new(im, nrow, ncol, j, cfg).unwrap();
    f.set_simd(false);
    assert_eq!(f.go(&guess).unwrap(), new, "{tag}: portable vs SIMD");
    check(tag, &new, &old, cfg.tol, w);
}

fn check(tag: &str, new: &EmResult, old: &EmResult, tol: f64, w: &mut Worst) {
    w.ncase += 1;
    assert_eq!(new.flags, old.flags, "{tag}: {new:?} vs {old:?}");
    let di = new.numiter.abs_diff(old.numiter);
    if new.flags != 0 {
        // a range error (a component collapsing): the same flag, not necessarily at the same
        // iteration (the iterates near a collapse are ill-conditioned)
        w.nflag += 1;
        return;
    }
    // converged: the same iteration at which the stopping rule first passes
    assert!(
        di == 0,
        "{tag}: {} vs {} iterations",
        new.numiter,
        old.numiter
    );
    w.nconv += 1;
    w.it_fast += new.numiter;
    w.it_ref += old.numiter;
    let (gn, go) = (new.gmix.as_ref().unwrap(), old.gmix.as_ref().unwrap());
    let (e1n, e2n, tn) = gn.e1e2t().unwrap();
    let (e1o, e2o, to) = go.e1e2t().unwrap();
    let dt = ((tn - to) / to).abs() / tol;
    let de = (e1n - e1o).abs().max((e2n - e2o).abs()) / tol;
    w.t = w.t.max(dt);
    w.e = w.e.max(de);
    // within the tolerance by far: the E steps differ by rounding only
    assert!(dt < 1e-6 && de < 1e-6, "{tag}: dT/T {dt} tol, de {de} tol");
    assert!(
        ((new.sky - old.sky) / old.sky).abs() < 1e-6 * tol,
        "{tag}: sky {} vs {}",
        new.sky,
        old.sky
    );
    for (k, (a, b)) in gn.gaussians().iter().zip(go.gaussians()).enumerate() {
        let (pa, pb) = (a.pars(), b.pars());
        for q in 0..6 {
            // fluxes: fractions of the total; centres and moments relative to the mixture size
            let d = match q {
                0 => (pa[0] - pb[0]).abs(),
                1 | 2 => (pa[q] - pb[q]).abs() / to.sqrt(),
                _ => (pa[q] - pb[q]).abs() / to,
            } / tol
                // components carrying little flux are poorly constrained: weight by their flux
                * pb[0].max(1e-3);
            w.par = w.par.max(d);
            assert!(d < 1e-5, "{tag} gauss {k} par {q}: {} vs {}", pa[q], pb[q]);
        }
    }
}

fn y1_cfg(tol: f64) -> EmConfig {
    EmConfig {
        tol,
        maxiter: 5000,
        ..EmConfig::v1_psf()
    }
}

#[test]
fn fast_matches_reference_on_moffat_stamps() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut w = Worst::default();
    for case in 0..90 {
        let ngauss = 1 + case % 3;
        let n = [15usize, 19, 25, 32, 41, 48][(case / 3) % 6];
        let noise = [0.0, 1e-4, 1e-3][case % 3];
        let fwhm = uniform(&mut rng, 0.7, 1.4);
        let (dr, dc) = (uniform(&mut rng, -2.0, 2.0), uniform(&mut rng, -2.0, 2.0));
        let (im, j) = moffat_stamp(n, fwhm, dr, dc, noise, &mut rng);
        let tguess = 2.0 * (fwhm / 2.3548).powi(2) * uniform(&mut rng, 0.8, 1.2);
        let tol = if case % 2 == 0 { 5e-6 } else { 1e-6 };
        let tag = format!("case {case} ngauss {ngauss} n {n} noise {noise} tol {tol}");
        compare(
            &tag,
            &im,
            (n, n),
            &j,
            ngauss,
            tguess,
            &y1_cfg(tol),
            &mut rng,
            &mut w,
        );
    }
    eprintln!("Moffat stamps: {w:?}");
    assert!(w.nconv >= 80, "{w:?}");
}

#[test]
fn fast_matches_reference_on_psfex_reconstructions() {
    #[derive(serde::Deserialize)]
    struct Pos {
        row: f64,
        col: f64,
    }
    #[derive(serde::Deserialize)]
    struct Model {
        file: String,
        positions: Vec<Pos>,
    }
    #[derive(serde::Deserialize)]
    struct Reference {
        models: Vec<Model>,
    }
    let text = std::fs::read_to_string(data("psfex", "psfex_reference.json")).unwrap();
    let r: Reference = serde_json::from_str(&text).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(78);
    let mut w = Worst::default();
    for m in &r.models {
        let p = PsfEx::open(data("psfex", &m.file)).unwrap();
        for (ip, pos) in m.positions.iter().enumerate() {
            let (im, nr, nc) = p.get_rec(pos.row, pos.col);
            let (cr, cc) = p.get_center(pos.row, pos.col);
            let j = Jacobian::new(cr, cc, 0.0, 0.263, 0.263, 0.0).unwrap();
            let sigma = p.get_sigma() * 0.263;
            for ngauss in 1..=3 {
                for tol in [5e-6, 1e-6] {
                    let tag = format!("{} pos {ip} ngauss {ngauss} tol {tol}", m.file);
                    let tguess = 2.0 * sigma * sigma;
                    let cfg = y1_cfg(tol);
                    compare(
                        &tag,
                        &im,
                        (nr, nc),
                        &j,
                        ngauss,
                        tguess,
                        &cfg,
                        &mut rng,
                        &mut w,
                    );
                }
            }
        }
    }
    eprintln!("PSFEx reconstructions: {w:?}");
    assert!(w.nconv >= w.ncase * 9 / 10, "{w:?}");
}

#[test]
fn fast_matches_reference_on_e2e_meds_psfs() {
    let m = MedsFile::open(data("meds", "sim-e2e-meds.fits")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(79);
    let mut w = Worst::default();
    let mut psf = Vec::new();
    for iobj in 0..m.size() {
        let icut = iobj % m.ncutout(iobj).unwrap();
        let (nr, nc) = m.psf(iobj, icut, &mut psf).unwrap();
        let (cr, cc) = m.psf_center(iobj, icut).unwrap().unwrap();
        let j = m.jacobian(iobj, icut).unwrap().with_cen(cr, cc);
        let ngauss = 1 + iobj % 3;
        let tag = format!("object {iobj} cutout {icut} ngauss {ngauss}");
        compare(
            &tag,
            &psf,
            (nr, nc),
            &j,
            ngauss,
            0.3,
            &y1_cfg(5e-6),
            &mut rng,
            &mut w,
        );
    }
    eprintln!("e2e MEDS PSF stamps: {w:?}");
    assert!(w.nconv >= w.ncase * 9 / 10, "{w:?}");
}

/// One V1 PSF fit in a loop, for instruction counts (`valgrind --tool=callgrind`): the PSFEx-like
/// 25×25 stamp, 3 Gaussians, Y1 `tol: 5e-6`; `EM_REFERENCE=1` selects the reference E step,
/// `EM_REPS` the number of fits, `EM_N` the stamp size.
#[test]
#[ignore]
fn em_fast_profile_one() {
    let n: usize = std::env::var("EM_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let reps: usize = std::env::var("EM_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (im, j) = moffat_stamp(n, 0.9, -0.3, 0.2, 1e-4, &mut rng);
    let guess = em_guess(3, 0.55, 1.0, &mut rng).unwrap();
    let mut f = EmFitter::new(&im, n, n, &j, &y1_cfg(5e-6)).unwrap();
    f.set_fast(std::env::var("EM_REFERENCE").is_err());
    let mut it = 0;
    for _ in 0..reps {
        it += f.go(&guess).unwrap().numiter;
    }
    println!("{reps} fits, {it} iterations");
}
