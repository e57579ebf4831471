//! DES IO features of the MEDS backend on small synthetic DES-like MEDS files written here:
//! PSFEx PSFs through psf maps (checked against the esheldon/psfex reconstructions in
//! tests/data/psfex/psfex_reference.json), image flags and `image_flags2check`, replacement
//! flags, the pixel-area (surface-brightness) scaling, `trim_image`, `trim_psf`, `center_psf`,
//! the Y1 `max_bmask_frac`/`symmetrize_bmask` keys, and config keys that are rejected by name.
#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};

use fitsio::images::{ImageDescription, ImageType};
use fitsio::tables::{ColumnDataType, ColumnDescription};
use fitsio::FitsFile;

use ngmixer::backends::medsio::{
    DesSettings, IoSettings, MedsSource, PixelScaling, PsfKind, PsfMap, Region,
};
use ngmixer::config::{from_yaml_str, FittingConfig, MaxFrac};
use ngmixer::fitter::ObjectObs;
use ngmixer::flags::IMAGE_FLAGS;
use ngmixer::traits::ImageSource;

// ------------------------------------------------------------------------------------------
// Scratch files and a tiny MEDS writer

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ngmixer-desio-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn psfex_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/psfex")
        .join(name)
}

const BOX: usize = 16;
const NCUT: usize = 3;
const SCALE: f64 = 0.263;

/// One synthetic DES-like MEDS file: `nobj` objects, 3 cutouts each (coadd + 2 SE) of 16x16,
/// `image_info` with DES file names.
struct Spec {
    nobj: usize,
    file_id: Vec<[i32; NCUT]>,
    orig: Vec<[(f64, f64); NCUT]>,
    image_path: Vec<String>,
    image_flags: Vec<i64>,
    /// bmask value for every pixel of (object, cutout), overridden per pixel by `bmask_px`.
    bmask_px: Vec<(usize, usize, usize, i32)>,
    /// Image value scale.
    flux: f64,
    /// `(object, cutout, pixel or all, value)` written into the image cutouts.
    image_edit: Vec<(usize, usize, Option<usize>, f32)>,
    /// The same for the weight cutouts.
    weight_edit: Vec<(usize, usize, Option<usize>, f32)>,
    /// Override of the `box_size` column.
    box_size: Option<Vec<i32>>,
    /// Override of `dudcol` for (object, cutout).
    dudcol_edit: Vec<(usize, usize, f64)>,
    /// Give every cutout the coadd jacobian.
    same_jac: bool,
}

impl Spec {
    fn standard() -> Self {
        Spec {
            nobj: 2,
            file_id: vec![[0, 1, 2], [0, 2, 3]],
            orig: vec![
                [(1023.5, 511.5), (1500.7, 100.3), (733.25, 250.8)],
                [(17.9, 1000.1), (1234.49, 876.51), (1999.0, 3.6)],
            ],
            image_path: vec![
                "/d/DES0001-4914_r2590p01_r.fits.fz".into(),
                "/d/red/D00233601_r_c03_r2357p01_immasked.fits.fz".into(),
                "/d/DES0001-4914_r2590p01_D00233602_r_c41_nullwt.fits".into(),
                "/d/red/D00233603_r_c05_r2357p01_immasked.fits.fz".into(),
            ],
            image_flags: vec![0, 0, 0, 8],
            bmask_px: vec![],
            flux: 100.0,
            image_edit: vec![],
            weight_edit: vec![],
            box_size: None,
            dudcol_edit: vec![],
            same_jac: false,
        }
    }
}

fn jac(icut: usize) -> [f64; 4] {
    // dudrow, dudcol, dvdrow, dvdcol: the coadd diagonal, the epochs slightly rotated
    match icut {
        0 => [0.0, SCALE, SCALE, 0.0],
        1 => [0.01, 0.262, 0.264, -0.012],
        _ => [-0.02, 0.27, 0.268, 0.015],
    }
}

fn write_meds(path: &Path, s: &Spec) {
    let _ = std::fs::remove_file(path);
    let mut f = FitsFile::create(path).open().unwrap();
    let n = s.nobj;
    let npc = n * NCUT;
    let col = |name: &str, ty: ColumnDataType, rep: usize| {
        ColumnDescription::new(name)
            .with_type(ty)
            .that_repeats(rep)
            .create()
            .unwrap()
    };
    use ColumnDataType::*;
    let mut descs = vec![
        col("id", LongLong, 1),
        col("number", Int, 1),
        col("box_size", Int, 1),
        col("ncutout", Int, 1),
        col("ra", Double, 1),
        col("dec", Double, 1),
        col("file_id", Int, NCUT),
        col("start_row", LongLong, NCUT),
        col("orig_row", Double, NCUT),
        col("orig_col", Double, NCUT),
        col("orig_start_row", Int, NCUT),
        col("orig_start_col", Int, NCUT),
        col("cutout_row", Double, NCUT),
        col("cutout_col", Double, NCUT),
    ];
    for name in ["dudrow", "dudcol", "dvdrow", "dvdcol"] {
        descs.push(col(name, Double, NCUT));
    }
    descs.push(col("psf_box_size", Int, NCUT));
    descs.push(col("psf_start_row", LongLong, NCUT));
    let hdu = f.create_table("object_data", &descs).unwrap();
    hdu.write_col(&mut f, "psf_box_size", &vec![5i32; npc])
        .unwrap();
    let pstart: Vec<i64> = (0..npc as i64).map(|k| k * 25).collect();
    hdu.write_col(&mut f, "psf_start_row", &pstart).unwrap();
    hdu.write_col(
        &mut f,
        "id",
        &(0..n as i64).map(|i| 1000 + i).collect::<Vec<_>>(),
    )
    .unwrap();
    hdu.write_col(&mut f, "number", &(1..=n as i32).collect::<Vec<_>>())
        .unwrap();
    let bs = s.box_size.clone().unwrap_or_else(|| vec![BOX as i32; n]);
    hdu.write_col(&mut f, "box_size", &bs).unwrap();
    hdu.write_col(&mut f, "ncutout", &vec![NCUT as i32; n])
        .unwrap();
    hdu.write_col(&mut f, "ra", &vec![10.0; n]).unwrap();
    hdu.write_col(&mut f, "dec", &vec![-40.0; n]).unwrap();
    let fid: Vec<i32> = s.file_id.iter().flatten().copied().collect();
    hdu.write_col(&mut f, "file_id", &fid).unwrap();
    let start: Vec<i64> = (0..npc as i64).map(|k| k * (BOX * BOX) as i64).collect();
    hdu.write_col(&mut f, "start_row", &start).unwrap();
    let orow: Vec<f64> = s.orig.iter().flatten().map(|p| p.0).collect();
    let ocol: Vec<f64> = s.orig.iter().flatten().map(|p| p.1).collect();
    hdu.write_col(&mut f, "orig_row", &orow).unwrap();
    hdu.write_col(&mut f, "orig_col", &ocol).unwrap();
    let osr: Vec<i32> = orow.iter().map(|r| (r - 7.5) as i32).collect();
    let osc: Vec<i32> = ocol.iter().map(|c| (c - 7.5) as i32).collect();
    hdu.write_col(&mut f, "orig_start_row", &osr).unwrap();
    hdu.write_col(&mut f, "orig_start_col", &osc).unwrap();
    hdu.write_col(&mut f, "cutout_row", &vec![7.5; npc])
        .unwrap();
    hdu.write_col(&mut f, "cutout_col", &vec![7.5; npc])
        .unwrap();
    for (k, name) in ["dudrow", "dudcol", "dvdrow", "dvdcol"].iter().enumerate() {
        let mut v: Vec<f64> = (0..npc)
            .map(|i| jac(if s.same_jac { 0 } else { i % NCUT })[k])
            .collect();
        if *name == "dudcol" {
            for &(o, c, x) in &s.dudcol_edit {
                v[o * NCUT + c] = x;
            }
        }
        hdu.write_col(&mut f, *name, &v).unwrap();
    }

    let ni = s.image_path.len();
    let descs = vec![
        col("image_path", String, 80),
        col("image_id", LongLong, 1),
        col("image_flags", LongLong, 1),
        col("magzp", Double, 1),
    ];
    let hdu = f.create_table("image_info", &descs).unwrap();
    hdu.write_col(&mut f, "image_path", &s.image_path).unwrap();
    hdu.write_col(&mut f, "image_id", &(0..ni as i64).collect::<Vec<_>>())
        .unwrap();
    hdu.write_col(&mut f, "image_flags", &s.image_flags)
        .unwrap();
    hdu.write_col(&mut f, "magzp", &vec![30.0; ni]).unwrap();

    let npix = npc * BOX * BOX;
    let mut image = vec![0f32; npix];
    let mut weight = vec![0f32; npix];
    let mut seg = vec![0i32; npix];
    let mut bmask = vec![0i32; npix];
    for o in 0..n {
        for c in 0..NCUT {
            let base = (o * NCUT + c) * BOX * BOX;
            for r in 0..BOX {
                for q in 0..BOX {
                    let d2 = (r as f64 - 7.5).powi(2) + (q as f64 - 7.5).powi(2);
                    let k = base + r * BOX + q;
                    image[k] = (s.flux * (-0.5 * d2 / 4.0).exp() + 0.01 * (k % 7) as f64) as f32;
                    weight[k] = 4.0 + c as f32;
                    if d2 < 9.0 {
                        seg[k] = o as i32 + 1;
                    }
                }
            }
        }
    }
    for &(o, c, pix, v) in &s.bmask_px {
        bmask[(o * NCUT + c) * BOX * BOX + pix] = v;
    }
    for (edits, arr) in [(&s.image_edit, &mut image), (&s.weight_edit, &mut weight)] {
        for &(o, c, pix, v) in edits {
            let base = (o * NCUT + c) * BOX * BOX;
            match pix {
                Some(p) => arr[base + p] = v,
                None => arr[base..base + BOX * BOX].fill(v),
            }
        }
    }
    let img = |f: &mut FitsFile, name: &str, v: &[f32]| {
        let d = ImageDescription {
            data_type: ImageType::Float,
            dimensions: &[v.len()],
        };
        let h = f.create_image(name, &d).unwrap();
        h.write_image(f, v).unwrap();
    };
    let imgi = |f: &mut FitsFile, name: &str, v: &[i32]| {
        let d = ImageDescription {
            data_type: ImageType::Long,
            dimensions: &[v.len()],
        };
        let h = f.create_image(name, &d).unwrap();
        h.write_image(f, v).unwrap();
    };
    img(&mut f, "image_cutouts", &image);
    let psf: Vec<f32> = (0..npc * 25)
        .map(|k| {
            let (r, c) = ((k % 25 / 5) as f32 - 2.0, (k % 5) as f32 - 2.0);
            (-(r * r + c * c) / 4.0).exp()
        })
        .collect();
    img(&mut f, "psf", &psf);
    img(&mut f, "weight_cutouts", &weight);
    imgi(&mut f, "seg_cutouts", &seg);
    imgi(&mut f, "bmask_cutouts", &bmask);
}

/// The psf map of the standard spec: coadd → model_c, D00233601-03 → model_a (DESDM style),
/// D00233602-41 → model_b (standard style, through an environment variable).
fn write_map(path: &Path) {
    std::env::set_var("NGMIXER_DESIO_TEST_PSFDIR", psfex_data(""));
    let text = format!(
        "# DESDM style\n-9999 -9999 {}\n233601 3 {}\n\nD00233602-41 $NGMIXER_DESIO_TEST_PSFDIR/model_b.psf\n",
        psfex_data("model_c.psf").display(),
        psfex_data("model_a.psf").display(),
    );
    std::fs::write(path, text).unwrap();
}

fn io_weight() -> IoSettings {
    IoSettings {
        region: Region::Weight,
        reject_outliers: false,
        ..Default::default()
    }
}

fn des_psfex() -> DesSettings {
    DesSettings {
        des_io: true,
        image_flags2check: 8,
        psfs: PsfKind::Psfex { from_image: false },
        ..Default::default()
    }
}

fn open(meds: &Path, io: IoSettings, des: DesSettings, map: Option<&PsfMap>) -> MedsSource {
    let mut src = MedsSource::open(&[meds.to_path_buf()], io).unwrap();
    src.configure(des, map).unwrap();
    src
}

fn read(src: &mut MedsSource, k: usize) -> ObjectObs {
    let mut o = ObjectObs::default();
    src.read_object(k, &mut o).unwrap();
    o
}

// ------------------------------------------------------------------------------------------
// The PSFEx reference

#[derive(serde::Deserialize)]
struct RefPos {
    row: f64,
    col: f64,
    rec: Vec<Vec<f64>>,
    center: [f64; 2],
    sigma: f64,
}

#[derive(serde::Deserialize)]
struct RefModel {
    file: String,
    positions: Vec<RefPos>,
}

#[derive(serde::Deserialize)]
struct Reference {
    models: Vec<RefModel>,
}

fn reference(file: &str, row: f64, col: f64) -> RefPos {
    let text = std::fs::read_to_string(psfex_data("psfex_reference.json")).unwrap();
    let r: Reference = serde_json::from_str(&text).unwrap();
    let m = r.models.into_iter().find(|m| m.file == file).unwrap();
    m.positions
        .into_iter()
        .find(|p| p.row == row && p.col == col)
        .unwrap()
}

fn assert_psf(obs: &ngmixer::obs::Observation, file: &str, row: f64, col: f64) {
    let want = reference(file, row, col);
    let psf = obs.psf.as_ref().expect("psf");
    let (nr, nc) = psf.dims();
    assert_eq!((nr, nc), (want.rec.len(), want.rec[0].len()), "{file}");
    let peak = want
        .rec
        .iter()
        .flatten()
        .fold(0.0f64, |a, b| a.max(b.abs()));
    for (i, r) in want.rec.iter().enumerate() {
        for (j, &w) in r.iter().enumerate() {
            let d = (psf.image()[[i, j]] - w).abs() / peak;
            assert!(d <= 1e-10, "{file} ({row}, {col}) pixel ({i}, {j})");
        }
    }
    // the PSF jacobian: the image jacobian moved to the PSFEx centre
    let (cr, cc) = psf.jacobian.cen();
    assert!((cr - want.center[0]).abs() < 1e-12 && (cc - want.center[1]).abs() < 1e-12);
    assert_eq!(psf.jacobian.dudcol, obs.jacobian.dudcol);
    assert_eq!(psf.jacobian.dvdrow, obs.jacobian.dvdrow);
    let sigma_sky = want.sigma * obs.jacobian.scale();
    assert!((psf.psf_meta.sigma_sky - sigma_sky).abs() < 1e-14);
    assert!((psf.psf_meta.tguess - sigma_sky * sigma_sky).abs() < 1e-14);
    let sum: f64 = want.rec.iter().flatten().sum();
    assert!((psf.psf_meta.psf_norm - sum).abs() < 1e-9 * sum);
}

// ------------------------------------------------------------------------------------------
// PSFEx through psf maps

#[test]
fn psfex_psfs_from_a_psf_map_match_esheldon_psfex() {
    let d = Scratch::new("psfmap");
    let meds = d.file("tile_r_meds.fits");
    write_meds(&meds, &Spec::standard());
    let mapf = d.file("psfmap-r.dat");
    write_map(&mapf);
    let map = PsfMap::read(std::slice::from_ref(&mapf)).unwrap();
    let mut src = open(&meds, io_weight(), des_psfex(), Some(&map));
    // image_info[3] has image_flags 8 & image_flags2check 8: flagged, reduced to 1
    assert_eq!(src.image_flags(0).unwrap(), &[0, 0, 0, 1]);

    let o = read(&mut src, 0);
    let co = &o.coadd.bands[0][0];
    assert_eq!(co.flags, 0);
    assert_psf(co, "model_c.psf", 1023.5, 511.5);
    let se = &o.se.bands[0];
    assert_eq!(se.len(), 2);
    assert_psf(&se[0], "model_a.psf", 1500.7, 100.3);
    assert_psf(&se[1], "model_b.psf", 733.25, 250.8);

    let o = read(&mut src, 1);
    assert_psf(&o.coadd.bands[0][0], "model_c.psf", 17.9, 1000.1);
    assert_psf(&o.se.bands[0][0], "model_b.psf", 1234.49, 876.51);
    // file 3 is flagged: a placeholder, and its (unmapped) PSF was never looked up
    assert_eq!(o.se.bands[0][1].flags, IMAGE_FLAGS);
    assert_eq!(o.meta.nimage_tot, vec![2]);
}

#[test]
fn coadd_is_flagged_when_not_fitted_and_center_psf_rounds() {
    let d = Scratch::new("coadd");
    let meds = d.file("m.fits");
    let mut spec = Spec::standard();
    // (-0.3, -0.7) rounds to (-0, -1): the reference at (0, 0) is not it, but (2047, 1023)
    // is the rounding of (2046.6, 1022.5); rounding happens before the PSFEx call
    spec.orig[0][1] = (2046.6, 1022.5);
    write_meds(&meds, &spec);
    // a map without a coadd line is fine when the coadd is not fitted
    let mapf = d.file("map.dat");
    std::fs::write(
        &mapf,
        format!(
            "233601 3 {}\n233602 41 {}\n",
            psfex_data("model_a.psf").display(),
            psfex_data("model_b.psf").display()
        ),
    )
    .unwrap();
    let map = PsfMap::read(std::slice::from_ref(&mapf)).unwrap();
    let des = DesSettings {
        fit_coadd_galaxy: false,
        center_psf: true,
        ..des_psfex()
    };
    let mut src = open(&meds, io_weight(), des, Some(&map));
    assert_eq!(src.image_flags(0).unwrap()[0], 1);
    let o = read(&mut src, 0);
    assert_eq!(o.coadd.bands[0][0].flags, IMAGE_FLAGS);
    assert_psf(&o.se.bands[0][0], "model_a.psf", 2047.0, 1023.0);

    // fitting the coadd needs the coadd line
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    let e = src
        .configure(des_psfex(), Some(&map))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no coadd entry") && e.contains("map.dat"), "{e}");
}

#[test]
fn psf_map_errors_name_the_line_file_and_key() {
    let d = Scratch::new("maperr");
    let meds = d.file("m.fits");
    write_meds(&meds, &Spec::standard());
    // malformed line
    let bad = d.file("bad.dat");
    std::fs::write(&bad, "-9999 -9999 /x.psf\n233601 three /y.psf\n").unwrap();
    let e = PsfMap::read(std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.dat:2") && e.contains("ccdnum"), "{e}");

    // a missing .psf file names the map line it came from
    let mapf = d.file("missing.dat");
    std::fs::write(
        &mapf,
        format!(
            "-9999 -9999 {}\n233601 3 {}\n233602 41 /nonexistent/model.psf\n",
            psfex_data("model_c.psf").display(),
            psfex_data("model_a.psf").display()
        ),
    )
    .unwrap();
    let map = PsfMap::read(std::slice::from_ref(&mapf)).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    let e = src
        .configure(des_psfex(), Some(&map))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/model.psf") && e.contains("missing.dat:3"),
        "{e}"
    );

    // without the flag check, image 3 needs a PSF and the map has no key for it
    write_map(&mapf);
    let map = PsfMap::read(std::slice::from_ref(&mapf)).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    let des = DesSettings {
        image_flags2check: 0,
        ..des_psfex()
    };
    let e = src.configure(des, Some(&map)).unwrap_err().to_string();
    assert!(
        e.contains("'D00233603-05'") && e.contains("immasked") && e.contains("missing.dat"),
        "{e}"
    );

    // a corrupt .psf file
    let junk = d.file("junk.psf");
    std::fs::write(&junk, vec![b'x'; 2880]).unwrap();
    std::fs::write(
        &mapf,
        format!(
            "-9999 -9999 {}\nD00233601-03 {}\n233602 41 {}\n",
            psfex_data("model_c.psf").display(),
            junk.display(),
            psfex_data("model_b.psf").display()
        ),
    )
    .unwrap();
    let map = PsfMap::read(std::slice::from_ref(&mapf)).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    let e = src
        .configure(des_psfex(), Some(&map))
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.psf") && e.contains("missing.dat:2"), "{e}");

    // one map per band
    let map2 = PsfMap::read(&[mapf.clone(), mapf.clone()]).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    let e = src
        .configure(des_psfex(), Some(&map2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 psf map files for 1 MEDS files"), "{e}");
}

#[test]
fn trim_psf_cuts_single_epoch_stamps_about_the_centre() {
    let d = Scratch::new("trimpsf");
    let meds = d.file("m.fits");
    write_meds(&meds, &Spec::standard());
    let mapf = d.file("map.dat");
    write_map(&mapf);
    let map = PsfMap::read(std::slice::from_ref(&mapf)).unwrap();
    let des = DesSettings {
        trim_psf: Some([11, 11]),
        ..des_psfex()
    };
    let mut src = open(&meds, io_weight(), des, Some(&map));
    let o = read(&mut src, 0);
    // model_a at (1500.7, 100.3): centre (11.7, 12.3); start int(11.7-5.5+0.5)=6,
    // int(12.3-5.5+0.5)=7, so rows 6..17 and cols 7..18 of the reference stamp
    let want = reference("model_a.psf", 1500.7, 100.3);
    let psf = o.se.bands[0][0].psf.as_ref().unwrap();
    assert_eq!(psf.dims(), (11, 11));
    for i in 0..11 {
        for j in 0..11 {
            assert!((psf.image()[[i, j]] - want.rec[6 + i][7 + j]).abs() < 1e-10);
        }
    }
    let (cr, cc) = psf.jacobian.cen();
    assert!((cr - (want.center[0] - 6.0)).abs() < 1e-12);
    assert!((cc - (want.center[1] - 7.0)).abs() < 1e-12);
    // the coadd PSF is not trimmed
    assert_eq!(o.coadd.bands[0][0].psf.as_ref().unwrap().dims(), (21, 21));
}

// ------------------------------------------------------------------------------------------
// Image flags, replacement flags, scaling, trimming, bmask keys

#[test]
fn image_flags_and_replacement_flags() {
    let d = Scratch::new("flags");
    let meds = d.file("m.fits");
    let mut spec = Spec::standard();
    // SV-style names for the replacement keys: <expid>-<ccd>
    spec.image_path = vec![
        "/d/coadd_r.fits.fz".into(),
        "/d/DECam_00233601_03.fits.fz".into(),
        "/d/DECam_00233602_41.fits.fz".into(),
        "/d/DECam_00233603_05.fits.fz".into(),
    ];
    spec.image_flags = vec![5, 16, 0, 8];
    write_meds(&meds, &spec);
    let infile = |check: i64| DesSettings {
        des_io: true,
        image_flags2check: check,
        ..Default::default()
    };
    // infile PSFs: the coadd keeps its raw flags and is not flagged for fit_coadd_galaxy
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    src.configure(infile(8 | 16), None).unwrap();
    assert_eq!(src.image_flags(0).unwrap(), &[5, 1, 0, 1]);
    // the coadd raw flags 5 are non-zero: placeholder
    let o = read(&mut src, 0);
    assert_eq!(o.coadd.bands[0][0].flags, IMAGE_FLAGS);
    assert_eq!(o.se.bands[0][0].flags, IMAGE_FLAGS);
    assert_eq!(o.se.bands[0][1].flags, 0);
    // replacement: missing keys take the default (= image_flags2check), listed keys replace
    let rep = d.file("rep.json");
    std::fs::write(&rep, r#"{"233601-03": 0, "233602-41": 8, "233603-05": 0}"#).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    src.configure(
        DesSettings {
            replacement_flags: Some(rep.clone()),
            ..infile(8)
        },
        None,
    )
    .unwrap();
    assert_eq!(src.image_flags(0).unwrap(), &[5, 0, 1, 0]);
    std::fs::write(&rep, r#"{"233601-03": 0}"#).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    src.configure(
        DesSettings {
            replacement_flags: Some(rep.clone()),
            ..infile(2)
        },
        None,
    )
    .unwrap();
    assert_eq!(src.image_flags(0).unwrap(), &[5, 0, 1, 1]);
    std::fs::write(&rep, r#"{"233601-03": "x"}"#).unwrap();
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    let e = src
        .configure(
            DesSettings {
                replacement_flags: Some(rep.clone()),
                ..infile(2)
            },
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("rep.json") && e.contains("233601-03"), "{e}");
}

#[test]
fn coadd_with_raw_flags_is_a_placeholder_and_se_flags_select_epochs() {
    let d = Scratch::new("flags2");
    let meds = d.file("m.fits");
    let mut spec = Spec::standard();
    spec.image_flags = vec![5, 16, 0, 8];
    write_meds(&meds, &spec);
    let mut src = MedsSource::open(std::slice::from_ref(&meds), io_weight()).unwrap();
    src.configure(
        DesSettings {
            des_io: true,
            image_flags2check: 16,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let o = read(&mut src, 0);
    assert_eq!(o.coadd.bands[0][0].flags, IMAGE_FLAGS);
    assert_eq!(o.se.bands[0][0].flags, IMAGE_FLAGS); // file 1: 16 & 16
    assert_eq!(o.se.bands[0][1].flags, 0); // file 2
    let o = read(&mut src, 1);
    assert_eq!(o.se.bands[0][1].flags, 0); // file 3: 8 & 16 == 0

    // without image_flags the DES IO cannot run
    let plain = d.file("noflags.fits");
    write_meds(&plain, &spec);
    {
        let mut f = FitsFile::edit(&plain).unwrap();
        let hdu = f.hdu("image_info").unwrap();
        hdu.delete_column(&mut f, "image_flags").unwrap();
    }
    let mut src = MedsSource::open(std::slice::from_ref(&plain), io_weight()).unwrap();
    let e = src
        .configure(
            DesSettings {
                des_io: true,
                ..Default::default()
            },
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("noflags.fits") && e.contains("image_info") && e.contains("'image_flags'"),
        "{e}"
    );
}

#[test]
fn surface_brightness_scaling_divides_by_the_pixel_area() {
    let d = Scratch::new("sb");
    let meds = d.file("m.fits");
    write_meds(&meds, &Spec::standard());
    let io = IoSettings {
        region: Region::Mof,
        reject_outliers: false,
        ..Default::default()
    };
    let mut plain = open(&meds, io.clone(), DesSettings::default(), None);
    let base = read(&mut plain, 0);
    let des = DesSettings {
        des_io: true,
        scaling: PixelScaling::ToSurfaceBrightness,
        ..Default::default()
    };
    let mut src = open(&meds, io.clone(), des, None);
    let o = read(&mut src, 0);
    for (a, b) in base
        .se
        .iter()
        .chain(base.coadd.iter())
        .zip(o.se.iter().chain(o.coadd.iter()))
    {
        let j = &a.jacobian;
        // |det| of the MEDS jacobian, computed here from its elements
        let area = (j.dudcol * j.dvdrow - j.dudrow * j.dvdcol).abs();
        for (x, y) in a.image().iter().zip(b.image().iter()) {
            assert!((y - x / area).abs() <= 1e-12 * (x / area).abs().max(1e-300));
        }
        for (x, y) in a.weight().iter().zip(b.weight().iter()) {
            assert!((y - x * area * area).abs() <= 1e-12 * x * area * area);
        }
        for (x, y) in a
            .weight_raw
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.weight_raw.as_ref().unwrap().iter())
        {
            assert!((y - x * area * area).abs() <= 1e-12 * x * area * area);
        }
        for (x, y) in a
            .weight_us
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.weight_us.as_ref().unwrap().iter())
        {
            assert!((y - x * area * area).abs() <= 1e-12 * x * area * area);
        }
        // the PSF stamp is not rescaled
        assert_eq!(
            a.psf.as_ref().unwrap().image(),
            b.psf.as_ref().unwrap().image()
        );
    }
    // and back: flux scaling multiplies
    let des = DesSettings {
        des_io: true,
        scaling: PixelScaling::ToFlux,
        ..Default::default()
    };
    let mut src = open(&meds, io, des, None);
    let o = read(&mut src, 0);
    let a = &base.se.bands[0][0];
    let b = &o.se.bands[0][0];
    let j = &a.jacobian;
    let area = (j.dudcol * j.dvdrow - j.dudrow * j.dvdcol).abs();
    assert!((b.image()[[7, 7]] - a.image()[[7, 7]] * area).abs() < 1e-12 * a.image()[[7, 7]]);
    assert!(
        (b.weight()[[7, 7]] - a.weight()[[7, 7]] / (area * area)).abs() < 1e-9 * b.weight()[[7, 7]]
    );
}

#[test]
fn trim_image_follows_ngmixer_start_stop() {
    let d = Scratch::new("trim");
    let meds = d.file("m.fits");
    write_meds(&meds, &Spec::standard());
    let mut plain = open(&meds, io_weight(), DesSettings::default(), None);
    let base = read(&mut plain, 0);
    let des = DesSettings {
        trim_image: Some([8, 10]),
        ..Default::default()
    };
    let mut src = open(&meds, io_weight(), des, None);
    let o = read(&mut src, 0);
    // centre 7.5: rows int(7.5-4+0.5)=4 .. int(7.5+4+0.5)=12, cols int(3)=3 .. int(13)=13
    for (a, b) in base
        .se
        .iter()
        .chain(base.coadd.iter())
        .zip(o.se.iter().chain(o.coadd.iter()))
    {
        assert_eq!(b.dims(), (8, 10));
        for i in 0..8 {
            for j in 0..10 {
                assert_eq!(b.image()[[i, j]], a.image()[[4 + i, 3 + j]]);
                assert_eq!(b.weight()[[i, j]], a.weight()[[4 + i, 3 + j]]);
            }
        }
        assert_eq!(b.jacobian.cen(), (3.5, 4.5));
        assert_eq!(b.weight_raw.as_ref().unwrap().dim(), (8, 10));
        assert_eq!(b.seg.as_ref().unwrap().dim(), (8, 10));
    }
    // a stamp that would reach past the edge stops at dim - 1 (sic)
    let des = DesSettings {
        trim_image: Some([16, 16]),
        ..Default::default()
    };
    let mut src = open(&meds, io_weight(), des, None);
    let o = read(&mut src, 0);
    assert_eq!(o.se.bands[0][0].dims(), (15, 15));
}

#[test]
fn y1_bmask_keys() {
    let d = Scratch::new("bmask");
    let meds = d.file("m.fits");
    let mut spec = Spec::standard();
    // object 0, cutout 1: 3 masked pixels off the centre; (0, 1) rotates to (14, 0)
    spec.bmask_px = vec![(0, 1, 1, 4), (0, 1, 2, 4), (0, 1, BOX * 15, 4)];
    write_meds(&meds, &spec);
    let run = |frac: Option<MaxFrac>, sym: bool| {
        let des = DesSettings {
            max_bmask_frac: frac,
            symmetrize_bmask: sym,
            ..Default::default()
        };
        let mut src = open(&meds, io_weight(), des, None);
        read(&mut src, 0)
    };
    // 3/256 = 0.0117
    assert_eq!(
        run(Some(MaxFrac::Value(0.012)), false).se.bands[0][0].flags,
        0
    );
    assert_eq!(
        run(Some(MaxFrac::Value(0.011)), false).se.bands[0][0].flags,
        IMAGE_FLAGS
    );
    // one-over-side = 1/16
    assert_eq!(
        run(Some(MaxFrac::OneOverSide), false).se.bands[0][0].flags,
        0
    );
    // symmetrized: the rotations add 3 more distinct pixels (6/256 = 0.0234)
    let o = run(Some(MaxFrac::Value(0.02)), true);
    assert_eq!(o.se.bands[0][0].flags, IMAGE_FLAGS);
    let o = run(Some(MaxFrac::Value(0.024)), true);
    assert_eq!(o.se.bands[0][0].flags, 0);
    let bm = o.se.bands[0][0].bmask.as_ref().unwrap();
    assert_eq!(bm.iter().filter(|&&b| b != 0).count(), 6);
    // rot90: out[i, j] = in[j, n-1-i]; in (0,1) → out (14, 0)
    assert_eq!(bm[[14, 0]], 4);
    // the other cutouts are untouched
    assert_eq!(o.se.bands[0][1].flags, 0);
}

// ------------------------------------------------------------------------------------------
// From the config

const BASE_CFG: &str = r#"
fitter_type: "max-ngmix-boot"
region: "cweight-nearest"
psf_pars: {model: "em3", ntry: 4}
max_pars: {ntry: 2, method: "lm", lm_pars: {maxfev: 2000, xtol: 5.0e-5, ftol: 5.0e-5}}
model_pars:
    exp:
        cen: {type: "normal2d", width: 0.27}
        g: {type: "ba", sigma: 0.2}
        T: {type: "TwoSidedErf", pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]}
        counts: {type: "TwoSidedErf", pars: [-100.0, 1.0, 1.0e+09, 0.25e+08], repeat: True}
"#;

fn cfg(extra: &str) -> FittingConfig {
    from_yaml_str(&format!("{BASE_CFG}{extra}"), "test.yaml").unwrap()
}

#[test]
fn settings_from_config() {
    let c = cfg(r#"
imageio: {io_type: "meds-des-y3", image_type: "flux", psfs: {type: "psfex"}}
image_flags2check: 655343
center_psf: True
fit_coadd_galaxy: False
trim_psf: {dims: [17, 17]}
trim_image: {dims: [32, 32]}
"#);
    let d = DesSettings::from_config(&c).unwrap();
    assert!(d.des_io);
    assert_eq!(d.image_flags2check, 655343);
    assert_eq!(d.psfs, PsfKind::Psfex { from_image: false });
    assert_eq!(d.scaling, PixelScaling::ToSurfaceBrightness);
    assert!(d.center_psf && !d.fit_coadd_galaxy);
    assert_eq!(d.trim_psf, Some([17, 17]));
    assert_eq!(d.trim_image, Some([32, 32]));

    let c = cfg(r#"
imageio: {io_type: "meds-des-y3", image_type: "surface_brightness", psfs: {type: "infile"}}
"#);
    let d = DesSettings::from_config(&c).unwrap();
    assert_eq!(d.scaling, PixelScaling::None);
    assert_eq!(d.psfs, PsfKind::Infile);

    let c = cfg(r#"
imageio: {io_type: "meds", psfs: {type: "infile"}}
"#);
    // the HEAD default of fit_coadd_galaxy is false
    assert_eq!(
        DesSettings::from_config(&c).unwrap(),
        DesSettings {
            fit_coadd_galaxy: false,
            ..DesSettings::default()
        }
    );
}

#[test]
fn unsupported_keys_are_rejected_by_name() {
    let cases = [
        (
            r#"imageio: {io_type: "meds", psfs: {type: "psfex"}}"#,
            "imageio.psfs.type",
        ),
        (
            r#"imageio: {io_type: "meds-des-y3", image_type: flux, psfs: {type: "piff", piff_run: x, stamp_size: 25}}"#,
            "imageio.psfs.type",
        ),
        (
            "imageio: {io_type: \"meds-des-y3\", image_type: flux, psfs: {type: infile}, astrom: {version: v1}}",
            "imageio.astrom",
        ),
        (
            "imageio: {io_type: \"meds-des-y3\", psfs: {type: infile}}",
            "imageio.image_type",
        ),
        (
            "imageio: {io_type: \"meds-des-y3\", image_type: flux, psfs: {type: infile}}\ntilings: [1, 2]",
            "tilings",
        ),
        (
            "imageio: {io_type: \"meds\", psfs: {type: infile}}\nimage_flags2check: 3",
            "image_flags2check",
        ),


        (
            "imageio: {io_type: \"meds-des-y3\", image_type: flux, psfs: {type: infile}}\nread_wcs: True",
            "read_wcs",
        ),
        (
            "imageio: {io_type: \"meds\", psfs: {type: infile}}\ntrim_psf: {dims: [5, 5]}",
            "trim_psf",
        ),
    ];
    for (extra, key) in cases {
        let c = cfg(&format!("{extra}\n"));
        let e = DesSettings::from_config(&c).unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
        assert!(e.contains("test.yaml") || e.contains("config"), "{e}");
    }
}

// ------------------------------------------------------------------------------------------
// Malformed data: flagged cutouts or errors naming the file, never a panic

#[test]
fn bad_pixels_flag_cutouts_instead_of_failing() {
    let d = Scratch::new("badpix");
    let meds = d.file("m.fits");
    let mut spec = Spec::standard();
    spec.image_edit = vec![
        (0, 1, Some(40), f32::NAN), // one NaN pixel: usable, that pixel unweighted
        (0, 2, None, f32::NAN),     // all NaN: flagged
        (1, 0, Some(3), f32::INFINITY),
    ];
    spec.weight_edit = vec![
        (1, 1, None, 0.0),         // zero weight everywhere: flagged
        (1, 2, Some(5), f32::NAN), // NaN weight pixel: unweighted
        (1, 0, Some(7), -3.0),     // negative weight pixel: unweighted
    ];
    spec.dudcol_edit = vec![(0, 0, f64::NAN)]; // non-finite jacobian: flagged
    write_meds(&meds, &spec);
    for region in [
        Region::Weight,
        Region::Uberseg,
        Region::Mof,
        Region::SegAndSky,
    ] {
        let io = IoSettings {
            region,
            reject_outliers: true,
            ..Default::default()
        };
        let mut src = open(&meds, io, DesSettings::default(), None);
        let o = read(&mut src, 0);
        assert_eq!(o.coadd.bands[0][0].flags, IMAGE_FLAGS, "{region:?}");
        let a = &o.se.bands[0][0];
        if region == Region::Weight {
            assert_eq!(a.flags, 0, "{region:?}");
            assert_eq!(a.weight()[[40 / BOX, 40 % BOX]], 0.0);
            assert_eq!(a.weight().iter().filter(|&&w| w > 0.0).count(), 255);
        } else {
            // the seg-based weights need the (broken) coadd jacobian
            assert_eq!(a.flags, IMAGE_FLAGS, "{region:?}");
        }
        assert_eq!(o.se.bands[0][1].flags, IMAGE_FLAGS, "{region:?}");
        let o = read(&mut src, 1);
        let c = &o.coadd.bands[0][0];
        assert_eq!(c.flags, 0);
        assert_eq!(c.weight()[[0, 3]], 0.0);
        assert_eq!(c.weight()[[0, 7]], 0.0);
        assert_eq!(o.se.bands[0][1 - 1].flags, IMAGE_FLAGS, "{region:?}");
        let e = &o.se.bands[0][1];
        assert_eq!(e.flags, 0);
        assert_eq!(e.weight()[[0, 5]], 0.0);
        for obs in o.se.iter().chain(o.coadd.iter()) {
            assert!(obs.weight().iter().all(|w| w.is_finite() && *w >= 0.0));
            if obs.flags == 0 {
                let raw = obs.weight_raw.as_ref().unwrap();
                assert!(raw.iter().all(|w| w.is_finite()), "{region:?}");
            }
        }
    }
}

#[test]
fn box_size_beyond_the_pixels_is_an_error_naming_the_hdu() {
    let d = Scratch::new("boxsize");
    let meds = d.file("m.fits");
    let mut spec = Spec::standard();
    // object 1's cutouts claim 40x40 pixels: the last one runs past the end of the HDU
    spec.box_size = Some(vec![BOX as i32, 40]);
    write_meds(&meds, &spec);
    let mut src = open(&meds, io_weight(), DesSettings::default(), None);
    read(&mut src, 0);
    let mut o = ObjectObs::default();
    let e = src.read_object(1, &mut o).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("m.fits") && msg.contains("image_cutouts"),
        "{msg}"
    );

    // a negative box size is rejected when the file is opened or read, with the column named
    spec.box_size = Some(vec![BOX as i32, -4]);
    write_meds(&meds, &spec);
    let r = MedsSource::open(std::slice::from_ref(&meds), io_weight()).and_then(|mut s| {
        let mut o = ObjectObs::default();
        s.read_object(1, &mut o)
    });
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("box_size"), "{msg}");
}

#[test]
fn bands_with_different_object_counts_are_rejected() {
    let d = Scratch::new("nobj");
    let a = d.file("a.fits");
    let b = d.file("b.fits");
    write_meds(&a, &Spec::standard());
    let mut spec = Spec::standard();
    spec.nobj = 1;
    spec.file_id.truncate(1);
    spec.orig.truncate(1);
    write_meds(&b, &spec);
    let e = MedsSource::open(&[a, b], io_weight())
        .unwrap_err()
        .to_string();
    assert!(e.contains("b.fits") && e.contains("has 1 objects"), "{e}");
}

// ------------------------------------------------------------------------------------------
// ngmixit with --psf-map

fn ngmixit(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ngmixit_fits_with_psfex_psfs_from_psf_maps() {
    let d = Scratch::new("cli");
    let meds = d.file("tile_r_meds.fits");
    write_meds(&meds, &Spec::standard());
    let mapf = d.file("psfmap-r.dat");
    write_map(&mapf);
    let cfgf = d.file("cfg.yaml");
    std::fs::write(
        &cfgf,
        format!(
            "{BASE_CFG}imageio: {{io_type: \"meds-des-y3\", image_type: \"flux\", psfs: {{type: \"psfex\"}}}}\n\
             image_flags2check: 8\nfit_coadd_galaxy: True\nfit_me_galaxy: True\n"
        ),
    )
    .unwrap();
    let out = d.file("out.fits");
    let mut psf_map_arg = std::ffi::OsString::from("--psf-map=");
    psf_map_arg.push(&mapf);
    let o = ngmixit(&[
        psf_map_arg.as_os_str(),
        "--seed=3".as_ref(),
        cfgf.as_os_str(),
        out.as_os_str(),
        meds.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mf = ngmixer::backends::meds::read_table(&out, "model_fits").unwrap();
    assert_eq!(mf.nrows(), 2);
    let ed = ngmixer::backends::meds::read_table(&out, "epoch_data").unwrap();
    assert!(ed.nrows() >= 4, "{}", ed.nrows());

    // psfex without --psf-map
    let o = ngmixit(&[cfgf.as_os_str(), out.as_os_str(), meds.as_os_str()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--psf-map"), "{err}");

    // a malformed map line is named
    std::fs::write(&mapf, "-9999 -9999 /x.psf\n12 /y.psf extra fields\n").unwrap();
    let o = ngmixit(&[
        psf_map_arg.as_os_str(),
        cfgf.as_os_str(),
        out.as_os_str(),
        meds.as_os_str(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("psfmap-r.dat:2"), "{err}");
}

// ------------------------------------------------------------------------------------------
// Y1 star flags

#[test]
fn bright_star_pixels_are_propagated_to_every_epoch() {
    let d = Scratch::new("star");
    let meds = d.file("m.fits");
    let run = |val: i32, ignore: i32| {
        let mut spec = Spec::standard();
        spec.same_jac = true;
        // object 0, epoch 1: one pixel at (1, 12), far from the seg disk of radius 3 at 7.5
        spec.bmask_px = vec![(0, 1, BOX + 12, val)];
        write_meds(&meds, &spec);
        let des = DesSettings {
            propagate_star_flags: Some(ignore),
            ..Default::default()
        };
        let mut src = open(&meds, io_weight(), des, None);
        (read(&mut src, 0), read(&mut src, 1))
    };
    let y1_ignore = 3993;
    // SATURATE | STAR: a 5x5 block about (1, 12), clipped at row 0, in both epochs
    let (o, o1) = run(2 | 32, y1_ignore);
    for e in &o.se.bands[0] {
        for r in 0..BOX {
            for c in 0..BOX {
                let blocked = r <= 3 && (10..=14).contains(&c);
                assert_eq!(e.weight()[[r, c]] == 0.0, blocked, "({r}, {c})");
                assert_eq!(e.weight_raw.as_ref().unwrap()[[r, c]] == 0.0, blocked);
            }
        }
    }
    assert!(o.coadd.bands[0][0].weight().iter().all(|&w| w > 0.0));
    assert!(o1.se.iter().all(|e| e.weight().iter().all(|&w| w > 0.0)));
    // INTERP | STAR works too; STAR alone or with an ignored bit (CRAY) does nothing
    let (o, _) = run(4 | 32, y1_ignore);
    assert_eq!(o.se.bands[0][1].weight()[[0, 12]], 0.0);
    for val in [32, 2 | 32 | 16] {
        let (o, _) = run(val, y1_ignore);
        assert!(
            o.se.iter().all(|e| e.weight().iter().all(|&w| w > 0.0)),
            "{val}"
        );
    }
    // without an ignore mask the CRAY pixel propagates
    let (o, _) = run(2 | 32 | 16, 0);
    assert_eq!(o.se.bands[0][1].weight()[[0, 12]], 0.0);
}

#[test]
fn stellar_halo_flag_needs_a_star_pixel_in_the_objects_seg() {
    let d = Scratch::new("halo");
    let meds = d.file("m.fits");
    let run = |pix: usize| {
        let mut spec = Spec::standard();
        spec.bmask_px = vec![(0, 2, pix, 32)];
        write_meds(&meds, &spec);
        let des = DesSettings {
            flag_stellar_halo: true,
            ..Default::default()
        };
        let mut src = open(&meds, io_weight(), des, None);
        (
            read(&mut src, 0).meta.obj_flags,
            read(&mut src, 1).meta.obj_flags,
        )
    };
    // (7, 7) is inside the seg disk of object 0; (0, 0) is sky
    assert_eq!(run(7 * BOX + 7), (1, 0));
    assert_eq!(run(0), (0, 0));
}
