//! The max-likelihood fitter with `cm` over the in-memory image source: noiseless simulated
//! exp and dev galaxies (two bands, two epochs each, PSF stamps fitted with EM) come out of
//! `Fitter::fit_all` with `fracdev` at 0 and 1 and the shape, centre and fluxes of the
//! truth, in ngmixer's columns.

use ndarray::Array2;
use ngmixer::backends::memory::MemorySource;
use ngmixer::fitter::{FitterSettings, GalModel, MaxLike, ObjectMeta, ObjectObs};
use ngmixer::fitting::boot::{PsfFitConfig, PsfFitMethod};
use ngmixer::fitting::cm::CmConfig;
use ngmixer::fitting::em::EmConfig;
use ngmixer::fitting::lm::LmPars;
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::obs::{MultiBandObs, Observation, PsfMeta};
use ngmixer::priors::{
    CenPrior, GMixND, GPriorBA, PriorSimpleSep, ShapePrior, TPrior, TwoSidedErf,
};
use ngmixer::run::Fitter;

const N: usize = 41;
const NP: usize = 25;
const SIGMA: f64 = 0.005;

fn psf(k: usize) -> GMix {
    let s = 1.0 + 0.05 * k as f64;
    GMix::from_full_pars(&[
        0.7,
        0.0,
        0.0,
        0.09 * s,
        0.004,
        0.085 * s,
        0.3,
        0.0,
        0.0,
        0.25 * s,
        -0.01,
        0.27 * s,
    ])
    .unwrap()
}

fn jac(k: usize, row0: f64, col0: f64) -> Jacobian {
    let s = 0.263;
    let a = 0.02 * k as f64;
    Jacobian::new(row0, col0, -s * a, s * (1.0 + 0.01 * k as f64), s, s * a).unwrap()
}

fn render(gm: &GMix, j: &Jacobian, n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(r, c)| {
        let (v, u) = j.vu(r as f64, c as f64);
        gm.gaussians().iter().map(|g| g.eval(v, u)).sum()
    })
}

fn object(id: i64, model: Model, pars5: [f64; 5], fluxes: &[f64]) -> ObjectObs {
    let mut bands = Vec::new();
    for (b, &flux) in fluxes.iter().enumerate() {
        let mut list = Vec::new();
        for e in 0..2 {
            let k = 2 * b + e;
            let mut p = pars5.to_vec();
            p.push(flux);
            let gm = model
                .gmix_with(&p, Tables::V1)
                .unwrap()
                .convolve(&psf(k))
                .unwrap();
            let j = jac(k, 20.0 + 0.3 * k as f64, 20.4 - 0.2 * k as f64);
            let im = render(&gm, &j, N);
            let wt = Array2::from_elem((N, N), 1.0 / (SIGMA * SIGMA));
            let pj = jac(k, 12.0, 12.0);
            let pim = render(&psf(k), &pj, NP);
            let mut po = Observation::with_unit_weight(pim.clone(), pj).unwrap();
            po.psf_meta = PsfMeta {
                tguess: 0.3,
                sigma_sky: 0.4,
                psf_norm: pim.sum(),
            };
            let mut o = Observation::new(im, wt, j).unwrap().with_psf(po);
            o.meta.id = id;
            o.meta.band_num = b as i16;
            o.meta.cutout_index = e as i32 + 1;
            list.push(o);
        }
        bands.push(list);
    }
    ObjectObs {
        meta: ObjectMeta {
            id,
            number: id,
            nimage_tot: vec![2; fluxes.len()],
            fofid: -9999,
            ..ObjectMeta::default()
        },
        coadd: MultiBandObs::new(vec![Vec::new(); fluxes.len()]),
        se: MultiBandObs::new(bands),
    }
}

fn settings() -> FitterSettings {
    let prior = PriorSimpleSep::new(
        CenPrior::new(0.0, 0.0, 0.27, 0.27).unwrap(),
        ShapePrior::Ba(GPriorBA::new(0.3).unwrap()),
        TPrior::TwoSidedErf(TwoSidedErf::new(-10.0, 0.03, 1e6, 1e5).unwrap()),
        vec![TPrior::TwoSidedErf(TwoSidedErf::new(-100.0, 1.0, 1e9, 0.25e8).unwrap()); 2],
    )
    .unwrap();
    let cm = CmConfig {
        fracdev_prior: Some(GMixND::new(&[0.5, 0.5], &[0.0, 1.0], &[0.25, 0.25]).unwrap()),
        fracdev_range: [-1.0, 1.5],
        tdbyte_range: [0.0, 1e12],
        ..CmConfig::default()
    };
    let mut em = EmConfig::v1_psf();
    em.tol = 1e-8;
    em.maxiter = 5000;
    FitterSettings {
        nband: 2,
        models: vec![(GalModel::cm(cm), Some(prior))],
        psf: PsfFitConfig {
            model: PsfFitMethod::Em(2),
            ntry: 4,
            em,
            min_s2n: None,
        },
        lm: LmPars {
            maxfev: 2000,
            xtol: 1e-8,
            ftol: 1e-8,
        },
        max_ntry: 2,
        min_psf_s2n: -1e9,
        normalize_psf: true,
        fit_me_galaxy: true,
        fit_coadd_galaxy: false,
        use_coadd_prefix: true,
        max_box_size: 2048,
        use_logpars: false,
    }
}

#[test]
fn fitter_cm_noiseless_exp_and_dev() {
    let p5 = [0.03, -0.02, -0.15, 0.25, 0.5];
    let fluxes = [6.0, 9.0];
    let objs = vec![
        object(1, Model::Simple(SimpleKind::Exp), p5, &fluxes),
        object(2, Model::Simple(SimpleKind::Dev), p5, &fluxes),
    ];
    let fitter = Fitter::new(
        MemorySource::new(objs, 2),
        MaxLike::new(settings()).unwrap(),
    );
    let cat = fitter.fit_all(7, 2).unwrap();
    let mf = &cat.model_fits;
    assert_eq!(mf.nrows(), 2);
    assert_eq!(cat.epoch_data.nrows(), 8);
    for (row, want_fd) in [(0usize, 0.0), (1, 1.0)] {
        let get = |n: &str| mf.get(row, n).unwrap().to_vec();
        assert_eq!(get("flags")[0], 0.0);
        assert_eq!(get("cm_flags")[0], 0.0);
        let pars = get("cm_pars");
        let fd = get("cm_fracdev")[0];
        let tdte = get("cm_TdByTe")[0];
        eprintln!(
            "row {row}: fracdev {fd} ± {} TdByTe {tdte} pars {pars:?} s2n_r {}",
            get("cm_fracdev_err")[0],
            get("cm_s2n_r")[0]
        );
        assert!((fd - want_fd).abs() < 3e-3, "fracdev {fd}");
        assert!((pars[0] - p5[0]).abs() < 1e-5 && (pars[1] - p5[1]).abs() < 1e-5);
        assert!((pars[2] - p5[2]).abs() < 3e-4 && (pars[3] - p5[3]).abs() < 3e-4);
        for b in 0..2 {
            assert!((pars[5 + b] / fluxes[b] - 1.0).abs() < 1e-4, "{pars:?}");
        }
        // the composite's size: T Σp f of the profile at fracdev 0 / 1
        let s = 1.0 / Tables::V1.cm_tfactor(want_fd, 1.0);
        assert!((pars[4] / (p5[4] * s) - 1.0).abs() < 1e-3, "T {}", pars[4]);
        assert_eq!(get("cm_g"), pars[2..4].to_vec());
        assert_eq!(get("cm_max_pars"), pars);
        assert!(get("cm_s2n_r")[0] > 100.0);
        assert_eq!(get("cm_TdByTe")[0], get("cm_TdByTe_noclip")[0]);
    }
}
