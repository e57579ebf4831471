//! The simulated scene: configuration, truth and its random generation.

use crate::error::{Error, Result};
use crate::gmix::models::{Model, SimpleKind};
use crate::gmix::moments::fwhm_to_t;
use crate::gmix::GMix;
use crate::rng::{object_rng, uniform, uniform_range, ObjRng};

/// Galaxy model of a simulated object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SimModel {
    /// One Gaussian.
    Gauss,
    /// Exponential disk (ngmix 6-Gaussian approximation).
    Exp,
    /// de Vaucouleurs (ngmix v1 10-Gaussian approximation).
    Dev,
    /// Composite exp + dev with fixed `fracdev` and `TdByTe`.
    Cm {
        /// Fraction of the flux in the dev component.
        fracdev: f64,
        /// `T_dev / T_exp`.
        tdbyte: f64,
    },
}

impl SimModel {
    /// The ngmix model (`[v, u, g1, g2, T, flux]` parameters).
    pub fn model(&self) -> Model {
        match *self {
            SimModel::Gauss => Model::Simple(SimpleKind::Gauss),
            SimModel::Exp => Model::Simple(SimpleKind::Exp),
            SimModel::Dev => Model::Simple(SimpleKind::Dev),
            SimModel::Cm { fracdev, tdbyte } => Model::Cm { fracdev, tdbyte },
        }
    }

    /// The ngmixer model name (`gauss`, `exp`, `dev`, `cm`).
    pub fn name(&self) -> &'static str {
        match self {
            SimModel::Gauss => "gauss",
            SimModel::Exp => "exp",
            SimModel::Dev => "dev",
            SimModel::Cm { .. } => "cm",
        }
    }
}

/// Units of the simulated pixel values (see the [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelUnits {
    /// Mixture per unit sky area (ngmix v1 flux units for every pixel scale).
    #[default]
    SurfaceBrightness,
    /// Mixture times the pixel area (pixel sums are fluxes).
    FluxPerPixel,
}

/// Masked pixels of one object (applied in every band). Masked pixels get weight 0, the given
/// `bmask` bits and an image value of [`SimConfig::masked_value`] (the value must not matter).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mask {
    /// Nothing masked.
    #[default]
    None,
    /// A disc of `radius` pixels about the object's centre, in every cutout (coadd included).
    Core {
        /// Radius in pixels.
        radius: f64,
        /// `bmask` bits set on the masked pixels.
        bits: i32,
    },
    /// A random fraction of the pixels of every cutout.
    Random {
        /// Fraction of pixels masked.
        frac: f64,
        /// `bmask` bits.
        bits: i32,
    },
    /// A bad column through the centre of the first single-epoch cutout of every band.
    Column {
        /// `bmask` bits.
        bits: i32,
    },
    /// Weight zero everywhere (every cutout of every band); no bmask bits.
    ZeroWeight,
    /// `bmask` bits in a disc of `radius` pixels about the centre of every cutout, weight kept
    /// (for `bmask_skip_flags`, `central_bmask_radius`, `extra_mask_flags`).
    FlagOnly {
        /// Radius in pixels.
        radius: f64,
        /// `bmask` bits.
        bits: i32,
    },
}

impl Mask {
    /// A short name for the truth table.
    pub fn name(&self) -> &'static str {
        match self {
            Mask::None => "none",
            Mask::Core { .. } => "core",
            Mask::Random { .. } => "random",
            Mask::Column { .. } => "column",
            Mask::ZeroWeight => "zero_weight",
            Mask::FlagOnly { .. } => "flag_only",
        }
    }
}

/// Per-band settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BandConfig {
    /// Band name (`g`, `r`, ...), written to the metadata.
    pub name: String,
    /// Number of single-epoch images.
    pub nepoch: usize,
    /// Noise sigma of the coadd, image units.
    pub coadd_noise: f64,
    /// Range of the single-epoch noise sigmas, image units.
    pub se_noise: (f64, f64),
}

impl BandConfig {
    /// A band with `nepoch` epochs and default noise levels.
    pub fn new(name: &str, nepoch: usize) -> Self {
        Self {
            name: name.to_string(),
            nepoch,
            coadd_noise: 0.2,
            se_noise: (0.3, 0.5),
        }
    }
}

/// What to simulate. [`SimConfig::default`] is a small 3-band tile of isolated exp galaxies.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of primary objects (on a jittered grid, well separated).
    pub nobj: usize,
    /// Number of companions added close to distinct primaries (blends); `<= nobj`.
    pub npair: usize,
    /// One entry per band (one MEDS file each).
    pub bands: Vec<BandConfig>,
    /// Box sizes drawn uniformly per object (even numbers).
    pub box_sizes: Vec<usize>,
    /// Models drawn uniformly per object.
    pub models: Vec<SimModel>,
    /// Coadd pixel scale (arcsec/pixel).
    pub coadd_scale: f64,
    /// Range of single-epoch pixel scales.
    pub se_scale: (f64, f64),
    /// Largest single-epoch rotation (radians, uniform in ±).
    pub max_rotation: f64,
    /// Largest single-epoch WCS shear component.
    pub max_wcs_shear: f64,
    /// Mirror every second single-epoch WCS (negative determinant).
    pub flip_parity: bool,
    /// Band-0 flux range (log-uniform), flux units of the model parameter.
    pub flux: (f64, f64),
    /// Range of the per-band flux ratios to band 0 (log-uniform).
    pub colour: (f64, f64),
    /// Range of the model `T` parameter (arcsec², uniform).
    pub t: (f64, f64),
    /// Largest |g| (uniform in the disk).
    pub g_max: f64,
    /// Largest true-centre offset from the catalogue position per axis (arcsec).
    pub cen_offset_max: f64,
    /// Range of PSF FWHMs (arcsec).
    pub psf_fwhm: (f64, f64),
    /// Largest PSF |g| per component.
    pub psf_g_max: f64,
    /// PSF stamp sizes (odd) drawn per epoch.
    pub psf_dims: Vec<usize>,
    /// Largest PSF-centre offset from the stamp centre (pixels).
    pub psf_center_offset_max: f64,
    /// Grid spacing of the primaries (arcsec).
    pub spacing: f64,
    /// Range of companion separations (arcsec).
    pub blend_sep: (f64, f64),
    /// Probability that a single-epoch image covers an object (each object keeps at least one
    /// epoch per band).
    pub epoch_coverage: f64,
    /// Pixel units.
    pub units: PixelUnits,
    /// Seg threshold: a pixel belongs to the brightest object whose noise-free S/N per pixel
    /// exceeds this.
    pub seg_threshold: f64,
    /// Image value written on masked pixels.
    pub masked_value: f64,
    /// Tile centre RA, Dec (degrees).
    pub radec0: (f64, f64),
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            nobj: 16,
            npair: 0,
            bands: vec![
                BandConfig::new("g", 2),
                BandConfig::new("r", 3),
                BandConfig::new("i", 2),
            ],
            box_sizes: vec![32, 48, 64],
            models: vec![SimModel::Exp],
            coadd_scale: 0.263,
            se_scale: (0.255, 0.275),
            max_rotation: 0.15,
            max_wcs_shear: 0.02,
            flip_parity: false,
            flux: (8.0, 60.0),
            colour: (0.6, 1.6),
            t: (0.1, 0.8),
            g_max: 0.5,
            cen_offset_max: 0.1,
            psf_fwhm: (0.8, 1.1),
            psf_g_max: 0.03,
            psf_dims: vec![25, 31],
            psf_center_offset_max: 0.3,
            spacing: 24.0,
            blend_sep: (1.6, 2.6),
            epoch_coverage: 1.0,
            units: PixelUnits::SurfaceBrightness,
            seg_threshold: 1.0,
            masked_value: 1.0e4,
            radec0: (10.0, -20.0),
        }
    }
}

/// The truth of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectTruth {
    /// MEDS `id`.
    pub id: i64,
    /// MEDS `number` (seg-map id), 1-based.
    pub number: i64,
    /// Galaxy model.
    pub model: SimModel,
    /// Catalogue position on the tile sky plane, `v` (arcsec).
    pub v: f64,
    /// Catalogue position, `u` (arcsec).
    pub u: f64,
    /// True centre minus catalogue position `(v, u)`, arcsec: the expected fitted
    /// `pars[0..2]`.
    pub cen_offset: [f64; 2],
    /// Reduced shear `(g1, g2)` in the `(v, u)` frame.
    pub g: [f64; 2],
    /// Model `T` parameter (arcsec²).
    pub t: f64,
    /// Flux per band (model parameter units).
    pub flux: Vec<f64>,
    /// Cutout side (pixels).
    pub box_size: usize,
    /// Masked pixels.
    pub mask: Mask,
    /// For a companion: index of the object it was placed next to.
    pub blend_host: Option<usize>,
    /// RA (degrees).
    pub ra: f64,
    /// Dec (degrees).
    pub dec: f64,
}

impl ObjectTruth {
    /// The expected fit parameters `[v, u, g1, g2, T, flux_0, ..]` (centre relative to the
    /// catalogue position, as the MEDS Jacobians are centred there).
    pub fn pars(&self) -> Vec<f64> {
        let mut p = vec![
            self.cen_offset[0],
            self.cen_offset[1],
            self.g[0],
            self.g[1],
            self.t,
        ];
        p.extend_from_slice(&self.flux);
        p
    }

    /// The unconvolved mixture of band `band` in tile sky coordinates.
    ///
    /// # Errors
    /// An invalid shape or size.
    pub fn gmix(&self, band: usize) -> Result<GMix> {
        let flux = self
            .flux
            .get(band)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("object {}: no band {band}", self.id)))?;
        let pars = [
            self.v + self.cen_offset[0],
            self.u + self.cen_offset[1],
            self.g[0],
            self.g[1],
            self.t,
            flux,
        ];
        Ok(self.model.model().gmix(&pars)?)
    }

    /// Whether this object is a companion or has one (blended).
    pub fn is_blended(&self, scene: &Scene) -> bool {
        self.blend_host.is_some()
            || scene
                .objects
                .iter()
                .any(|o| o.blend_host.is_some_and(|h| scene.objects[h].id == self.id))
    }
}

/// One image (coadd or single epoch) of one band.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochTruth {
    /// `[dudrow, dudcol, dvdrow, dvdcol]` (arcsec/pixel).
    pub jac: [f64; 4],
    /// Pixel `(row, col)` of the tile sky origin `(v, u) = (0, 0)`.
    pub origin: [f64; 2],
    /// PSF mixture (unit flux, centred at 0), sky coordinates.
    pub psf: GMix,
    /// PSF stamp side (pixels, odd).
    pub psf_dim: usize,
    /// PSF centre offset from the stamp centre `(n-1)/2`, pixels `(row, col)`.
    pub psf_offset: [f64; 2],
    /// Noise sigma (image units).
    pub noise: f64,
    /// Per object: whether this image covers it. Generated scenes cover every object with
    /// the coadd and at least one single-epoch image per band; edit it to drop cutouts (an
    /// object left on single-epoch images must stay on the coadd, which is cutout 0; an object
    /// on no image of a band gets `ncutout = 0` there).
    pub covers: Vec<bool>,
}

impl EpochTruth {
    /// Pixel scale `sqrt(|det|)`.
    pub fn scale(&self) -> f64 {
        self.det().abs().sqrt()
    }

    /// Jacobian determinant `dudcol dvdrow - dudrow dvdcol`.
    pub fn det(&self) -> f64 {
        let [dudrow, dudcol, dvdrow, dvdcol] = self.jac;
        dudcol * dvdrow - dudrow * dvdcol
    }

    /// Image pixel `(row, col)` of sky point `(v, u)`.
    pub fn pixel_of(&self, v: f64, u: f64) -> (f64, f64) {
        let [dudrow, dudcol, dvdrow, dvdcol] = self.jac;
        let det = self.det();
        (
            self.origin[0] + (dudcol * v - dvdcol * u) / det,
            self.origin[1] + (-dudrow * v + dvdrow * u) / det,
        )
    }

    /// Sky offset `(dv, du)` of a pixel offset `(drow, dcol)`.
    pub fn sky_offset(&self, drow: f64, dcol: f64) -> (f64, f64) {
        let [dudrow, dudcol, dvdrow, dvdcol] = self.jac;
        (dvdrow * drow + dvdcol * dcol, dudrow * drow + dudcol * dcol)
    }
}

/// The images of one band: epoch 0 is the coadd.
#[derive(Debug, Clone, PartialEq)]
pub struct BandTruth {
    /// Band name.
    pub name: String,
    /// Coadd then single-epoch images.
    pub epochs: Vec<EpochTruth>,
}

/// A simulated tile: the config, the objects and the images.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// The configuration it was drawn from.
    pub config: SimConfig,
    /// Objects in MEDS order.
    pub objects: Vec<ObjectTruth>,
    /// Per band.
    pub bands: Vec<BandTruth>,
}

/// Random-stream ids of the scene draws (object ids are small and positive, so the negative
/// range is free).
const STREAM_OBJECTS: i64 = -1;
const STREAM_EPOCHS: i64 = -2;

fn log_uniform(rng: &mut ObjRng, lo: f64, hi: f64) -> f64 {
    (uniform_range(rng, lo.ln(), hi.ln())).exp()
}

fn pick<T: Copy>(rng: &mut ObjRng, v: &[T]) -> T {
    let k = ((uniform(rng) * v.len() as f64) as usize).min(v.len() - 1);
    v[k]
}

fn check_range(name: &str, r: (f64, f64), positive: bool) -> Result<()> {
    let ok = r.0.is_finite() && r.1.is_finite() && r.0 <= r.1 && (!positive || r.0 > 0.0);
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "sim config: {name} range {r:?} is invalid"
        )))
    }
}

impl SimConfig {
    /// Check the configuration.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(format!("sim config: {m}")));
        if self.nobj == 0 {
            return bad("nobj must be positive");
        }
        if self.npair > self.nobj {
            return bad("npair must not exceed nobj");
        }
        if self.bands.is_empty() {
            return bad("need at least one band");
        }
        for b in &self.bands {
            if b.nepoch == 0 {
                return bad(&format!("band {}: nepoch must be positive", b.name));
            }
            if !(b.coadd_noise > 0.0) {
                return bad(&format!("band {}: coadd_noise must be positive", b.name));
            }
            check_range("se_noise", b.se_noise, true)?;
        }
        if self.box_sizes.is_empty() || self.box_sizes.iter().any(|&b| b < 8 || b % 2 != 0) {
            return bad("box_sizes must be even numbers >= 8");
        }
        if self.models.is_empty() {
            return bad("need at least one model");
        }
        if self.psf_dims.is_empty() || self.psf_dims.iter().any(|&d| d < 5 || d % 2 == 0) {
            return bad("psf_dims must be odd numbers >= 5");
        }
        if !(self.coadd_scale > 0.0) {
            return bad("coadd_scale must be positive");
        }
        check_range("se_scale", self.se_scale, true)?;
        check_range("flux", self.flux, true)?;
        check_range("colour", self.colour, true)?;
        check_range("t", self.t, true)?;
        check_range("psf_fwhm", self.psf_fwhm, true)?;
        check_range("blend_sep", self.blend_sep, true)?;
        let unit = |x: f64| (0.0..1.0).contains(&x);
        if !unit(self.g_max) || !unit(self.psf_g_max) || !unit(self.max_wcs_shear) {
            return bad("g_max, psf_g_max and max_wcs_shear must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.epoch_coverage) {
            return bad("epoch_coverage must be in [0, 1]");
        }
        if !(self.spacing > 0.0) || !self.max_rotation.is_finite() {
            return bad("spacing must be positive and max_rotation finite");
        }
        if !self.cen_offset_max.is_finite() || !self.psf_center_offset_max.is_finite() {
            return bad("offsets must be finite");
        }
        Ok(())
    }
}

impl Scene {
    /// Draw a scene from `config` (deterministic in `config.seed`).
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn generate(config: &SimConfig) -> Result<Scene> {
        config.validate()?;
        let c = config;
        let nband = c.bands.len();
        let mut rng = object_rng(c.seed, STREAM_OBJECTS);
        let ngrid = (c.nobj as f64).sqrt().ceil() as usize;
        let mut objects = Vec::with_capacity(c.nobj + c.npair);
        let draw_object = |rng: &mut ObjRng, k: usize, v: f64, u: f64| -> ObjectTruth {
            let model = pick(rng, &c.models);
            let f0 = log_uniform(rng, c.flux.0, c.flux.1);
            let mut flux = vec![f0];
            for _ in 1..nband {
                flux.push(f0 * log_uniform(rng, c.colour.0, c.colour.1));
            }
            let gmag = c.g_max * uniform(rng).sqrt();
            let gang = uniform_range(rng, 0.0, std::f64::consts::TAU);
            let t = uniform_range(rng, c.t.0, c.t.1);
            let cen_offset = [
                uniform_range(rng, -c.cen_offset_max, c.cen_offset_max),
                uniform_range(rng, -c.cen_offset_max, c.cen_offset_max),
            ];
            let box_size = pick(rng, &c.box_sizes);
            let (ra0, dec0) = c.radec0;
            ObjectTruth {
                id: 1000 + k as i64,
                number: k as i64 + 1,
                model,
                v,
                u,
                cen_offset,
                g: [gmag * gang.cos(), gmag * gang.sin()],
                t,
                flux,
                box_size,
                mask: Mask::None,
                blend_host: None,
                ra: ra0 + u / 3600.0 / dec0.to_radians().cos(),
                dec: dec0 + v / 3600.0,
            }
        };
        for k in 0..c.nobj {
            let (i, j) = (k / ngrid, k % ngrid);
            let jit = 0.15 * c.spacing;
            let v = (i as f64 - 0.5 * (ngrid as f64 - 1.0)) * c.spacing
                + uniform_range(&mut rng, -jit, jit);
            let u = (j as f64 - 0.5 * (ngrid as f64 - 1.0)) * c.spacing
                + uniform_range(&mut rng, -jit, jit);
            objects.push(draw_object(&mut rng, k, v, u));
        }
        // companions: distinct hosts, every `nobj / npair`-th primary
        for p in 0..c.npair {
            let host = p * c.nobj / c.npair.max(1);
            let sep = uniform_range(&mut rng, c.blend_sep.0, c.blend_sep.1);
            let ang = uniform_range(&mut rng, 0.0, std::f64::consts::TAU);
            let (hv, hu) = (objects[host].v, objects[host].u);
            let k = objects.len();
            let mut o = draw_object(&mut rng, k, hv + sep * ang.sin(), hu + sep * ang.cos());
            o.blend_host = Some(host);
            objects.push(o);
        }
        let nobj = objects.len();

        let mut erng = object_rng(c.seed, STREAM_EPOCHS);
        let coadd_jac = [0.0, c.coadd_scale, c.coadd_scale, 0.0];
        let coadd_origin = [2000.0, 2000.0];
        let mut bands = Vec::with_capacity(nband);
        for bc in &c.bands {
            let mut epochs = Vec::with_capacity(bc.nepoch + 1);
            for e in 0..=bc.nepoch {
                let (jac, origin, noise) = if e == 0 {
                    (coadd_jac, coadd_origin, bc.coadd_noise)
                } else {
                    let s = uniform_range(&mut erng, c.se_scale.0, c.se_scale.1);
                    let th = uniform_range(&mut erng, -c.max_rotation, c.max_rotation);
                    let g1 = uniform_range(&mut erng, -c.max_wcs_shear, c.max_wcs_shear);
                    let g2 = uniform_range(&mut erng, -c.max_wcs_shear, c.max_wcs_shear);
                    let norm = 1.0 / (1.0 - g1 * g1 - g2 * g2).sqrt();
                    // shear matrix S = norm [[1+g1, g2], [g2, 1-g1]] (det 1), rotation R
                    let sm = [
                        [norm * (1.0 + g1), norm * g2],
                        [norm * g2, norm * (1.0 - g1)],
                    ];
                    let (cs, sn) = (th.cos(), th.sin());
                    let r = [[cs, -sn], [sn, cs]];
                    // M maps (drow, dcol) to (dv, du)
                    let mut m = [[0.0; 2]; 2];
                    for a in 0..2 {
                        for b in 0..2 {
                            m[a][b] = s * (r[a][0] * sm[0][b] + r[a][1] * sm[1][b]);
                        }
                    }
                    if c.flip_parity && e % 2 == 0 {
                        // mirror the column axis
                        m[0][1] = -m[0][1];
                        m[1][1] = -m[1][1];
                    }
                    let origin = [
                        uniform_range(&mut erng, 500.0, 3500.0),
                        uniform_range(&mut erng, 500.0, 3500.0),
                    ];
                    let noise = uniform_range(&mut erng, bc.se_noise.0, bc.se_noise.1);
                    // jac = [dudrow, dudcol, dvdrow, dvdcol]
                    ([m[1][0], m[1][1], m[0][0], m[0][1]], origin, noise)
                };
                let fwhm = uniform_range(&mut erng, c.psf_fwhm.0, c.psf_fwhm.1);
                let pg1 = uniform_range(&mut erng, -c.psf_g_max, c.psf_g_max);
                let pg2 = uniform_range(&mut erng, -c.psf_g_max, c.psf_g_max);
                // a turbulent-atmosphere-like three-Gaussian PSF
                let psf = Model::Simple(SimpleKind::Turb).gmix(&[
                    0.0,
                    0.0,
                    pg1,
                    pg2,
                    fwhm_to_t(fwhm),
                    1.0,
                ])?;
                let psf_dim = pick(&mut erng, &c.psf_dims);
                let psf_offset = [
                    uniform_range(&mut erng, -c.psf_center_offset_max, c.psf_center_offset_max),
                    uniform_range(&mut erng, -c.psf_center_offset_max, c.psf_center_offset_max),
                ];
                let mut covers = vec![true; nobj];
                if e > 0 && c.epoch_coverage < 1.0 {
                    for cv in covers.iter_mut() {
                        *cv = uniform(&mut erng) < c.epoch_coverage;
                    }
                }
                epochs.push(EpochTruth {
                    jac,
                    origin,
                    psf,
                    psf_dim,
                    psf_offset,
                    noise,
                    covers,
                });
            }
            // every object keeps at least one single-epoch image
            for i in 0..nobj {
                if !epochs[1..].iter().any(|ep| ep.covers[i]) {
                    epochs[1].covers[i] = true;
                }
            }
            bands.push(BandTruth {
                name: bc.name.clone(),
                epochs,
            });
        }
        Ok(Scene {
            config: c.clone(),
            objects,
            bands,
        })
    }

    /// Number of bands.
    pub fn nband(&self) -> usize {
        self.bands.len()
    }

    /// Indices of objects without a companion and without a mask.
    pub fn clean_isolated(&self) -> Vec<usize> {
        (0..self.objects.len())
            .filter(|&i| {
                let o = &self.objects[i];
                o.mask == Mask::None && !o.is_blended(self)
            })
            .collect()
    }
}
