//! Metacal images against the ngmix v1.3.5 + GalSim 2.8.5 oracle cases
//! (`tests/data/metacal`, copied from `shared/ref/metacal`; see its README).
//!
//! Each case injects the oracle's random inputs (fixnoise field, target-PSF σ of the image and
//! noise instances, PSF-noise field) and compares, per type:
//! * `GAL_T`, `NOISEMCAL_T`, `IMAGE_T` within 1e-6 of the HDU's peak;
//! * `PSFNONOISE_T` and `PSF_T` within 1e-8 of the peak;
//! * `WEIGHT_T` (halved) and `PIXWEIGHT_T` (un-halved) exactly;
//! * the FFT sizes N and Nk, and stepk/maxk of the final profile.
//!
//! Run with `--nocapture` to see the worst deviations.
#![cfg(feature = "metacal")]
#![cfg(feature = "des-y1")]

use std::path::PathBuf;

use ndarray::Array2;
use ngmixer::gmix::Jacobian;
use ngmixer::metacal::{MetacalInputs, MetacalMaker, MetacalPars, MetacalType, PsfMode, TargetPsf};
use ngmixer::obs::Observation;
use serde_json::Value;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/metacal")
}

struct Case {
    meta: Value,
    path: PathBuf,
}

impl Case {
    fn load(name: &str) -> Self {
        let path = data_dir().join(format!("{name}.fits"));
        let js = std::fs::read_to_string(data_dir().join(format!("{name}.fits.json")))
            .expect("case json");
        Self {
            meta: serde_json::from_str(&js).expect("json"),
            path,
        }
    }

    fn hdu(&self, name: &str) -> Option<Array2<f64>> {
        let mut f = fitsio::FitsFile::open(&self.path).expect("open fits");
        let hdu = f.hdu(name).ok()?;
        let shape = match &hdu.info {
            fitsio::hdu::HduInfo::ImageInfo { shape, .. } => shape.clone(),
            _ => return None,
        };
        let v: Vec<f64> = hdu.read_image(&mut f).ok()?;
        Array2::from_shape_vec((shape[0], shape[1]), v).ok()
    }

    fn f(&self, key: &str) -> f64 {
        self.meta[key]
            .as_f64()
            .unwrap_or_else(|| panic!("key {key}"))
    }

    fn obs(&self) -> Observation {
        let j: Vec<f64> = self.meta["jac_dudrow_dudcol_dvdrow_dvdcol"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let jac = Jacobian::new(self.f("row0"), self.f("col0"), j[0], j[1], j[2], j[3]).unwrap();
        let pjac = jac.with_cen(self.f("psf_row0"), self.f("psf_col0"));
        let psf = Observation::with_unit_weight(self.hdu("INPUT_PSF").unwrap(), pjac).unwrap();
        let mut obs = Observation::new(
            self.hdu("INPUT_IMAGE").unwrap(),
            self.hdu("INPUT_WEIGHT").unwrap(),
            jac,
        )
        .unwrap()
        .with_psf(psf);
        obs.weight_raw = self.hdu("INPUT_WEIGHT_RAW");
        obs
    }

    fn pars(&self) -> MetacalPars {
        let types: Vec<MetacalType> = self.meta["types_written"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| MetacalType::parse(t.as_str().unwrap()).unwrap())
            .collect();
        MetacalPars {
            psf: match self.meta["psf_mode"].as_str().unwrap() {
                "fitgauss" => PsfMode::FitGauss,
                "dilate" => PsfMode::Dilate,
                m => panic!("mode {m}"),
            },
            step: self.f("step"),
            fixnoise: self.meta["fixnoise"].as_bool().unwrap(),
            use_noise_image: false,
            types,
        }
    }

    fn inputs(&self) -> MetacalInputs {
        let flux = self.meta["target_gauss_flux"].as_f64();
        let t = |k: &str| {
            self.meta[k].as_f64().map(|sigma| TargetPsf {
                sigma,
                flux: flux.unwrap(),
            })
        };
        MetacalInputs {
            noise: self.hdu("INPUT_NOISE"),
            target: t("target_gauss_sigma_undilated"),
            noise_target: t("noise_target_gauss_sigma_undilated"),
            psf_noise: self.hdu("INPUT_PSF_NOISE"),
        }
    }
}

/// max |a - b| and that over max |b|.
fn dev(a: &Array2<f64>, b: &Array2<f64>) -> (f64, f64) {
    assert_eq!(a.dim(), b.dim());
    let d = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let peak = b.iter().map(|v| v.abs()).fold(0.0, f64::max);
    (d, if peak > 0.0 { d / peak } else { d })
}

#[derive(Default)]
struct Worst(Vec<(String, f64, f64)>);

impl Worst {
    fn add(&mut self, what: &str, d: (f64, f64)) {
        if let Some(e) = self.0.iter_mut().find(|e| e.0 == what) {
            if d.1 > e.2 {
                e.1 = d.0;
                e.2 = d.1;
            }
        } else {
            self.0.push((what.to_string(), d.0, d.1));
        }
    }
}

fn run_case(name: &str) {
    let case = Case::load(name);
    let obs = case.obs();
    let pars = case.pars();
    let maker = MetacalMaker::with_inputs(&obs, &pars, case.inputs()).expect("maker");
    let mut worst = Worst::default();
    for t in &pars.types {
        let tn = t.name();
        let m = maker.make(*t).expect("make");
        // galaxy, noise, final image
        let gal = case.hdu(&format!("GAL_{tn}")).unwrap();
        let d = dev(&m.gal_image, &gal);
        worst.add("GAL", d);
        assert!(d.1 < 1e-6, "{name} GAL_{tn}: {d:?}");
        if let Some(nref) = case.hdu(&format!("NOISEMCAL_{tn}")) {
            let nm = m.noise_image.as_ref().expect("noise image");
            let d = dev(nm, &nref);
            worst.add("NOISEMCAL", d);
            assert!(d.1 < 1e-6, "{name} NOISEMCAL_{tn}: {d:?}");
        }
        let img = case.hdu(&format!("IMAGE_{tn}")).unwrap();
        let d = dev(m.obs.image(), &img);
        worst.add("IMAGE", d);
        assert!(d.1 < 1e-6, "{name} IMAGE_{tn}: {d:?}");
        // PSF
        let psf = m.obs.psf.as_ref().unwrap();
        if let Some(pref) = case.hdu(&format!("PSFNONOISE_{tn}")) {
            let d = dev(m.psf_image_nonoise.as_ref().unwrap(), &pref);
            worst.add("PSFNONOISE", d);
            assert!(d.1 < 1e-8, "{name} PSFNONOISE_{tn}: {d:?}");
        }
        let pref = case.hdu(&format!("PSF_{tn}")).unwrap();
        let d = dev(psf.image(), &pref);
        worst.add("PSF", d);
        assert!(d.1 < 1e-8, "{name} PSF_{tn}: {d:?}");
        // weights
        let w = case.hdu(&format!("WEIGHT_{tn}")).unwrap();
        let d = dev(&m.weight_halved, &w);
        assert!(d.1 < 1e-12, "{name} WEIGHT_{tn}: {d:?}");
        let pw = case.hdu(&format!("PIXWEIGHT_{tn}")).unwrap();
        let d = dev(m.obs.weight(), &pw);
        assert!(d.1 < 1e-6, "{name} PIXWEIGHT_{tn}: {d:?}");
        // fft sizes
        let fd = &case.meta["final_draw"][tn];
        assert_eq!(
            m.draw.n as u64,
            fd["final_fft_N"].as_u64().unwrap(),
            "{name} {tn} N"
        );
        assert_eq!(
            m.draw.nk as u64 + 1,
            fd["final_kimage_rows"].as_u64().unwrap(),
            "{name} {tn} Nk"
        );
        let st = fd["final_prof_stepk_pix"].as_f64().unwrap();
        let mk = fd["final_prof_maxk_pix"].as_f64().unwrap();
        assert!(
            (m.draw.stepk_pix / st - 1.0).abs() < 1e-9,
            "{name} {tn} stepk {} {st}",
            m.draw.stepk_pix
        );
        assert!(
            (m.draw.maxk_pix / mk - 1.0).abs() < 1e-9,
            "{name} {tn} maxk {} {mk}",
            m.draw.maxk_pix
        );
        // psf obs jacobian
        if pars.psf == PsfMode::FitGauss {
            let (py, px) = psf.dims();
            assert_eq!(
                psf.jacobian.cen(),
                ((py as f64 - 1.0) / 2.0, (px as f64 - 1.0) / 2.0)
            );
        }
    }
    for (what, a, r) in &worst.0 {
        eprintln!("{name}: {what:<11} max|d| {a:.3e}  max|d|/peak {r:.3e}");
    }
}

#[test]
fn case_a_coadd_gauss48() {
    run_case("a_coadd_gauss48");
}

#[test]
fn case_b_se1_moffat48_fixnoise() {
    run_case("b_se1_moffat48_fixnoise");
}

#[test]
fn case_c_se2_gauss33_psf27_offset() {
    run_case("c_se2_gauss33_psf27_offset");
}

#[test]
fn case_d_se1_gauss06_64_fold() {
    run_case("d_se1_gauss06_64_fold");
}

#[test]
fn case_e_se1_moffat48_dilate() {
    run_case("e_se1_moffat48_dilate");
}

#[test]
fn case_f_meds_obj1_se1_fixnoise() {
    run_case("f_meds_obj1_se1_fixnoise");
}
