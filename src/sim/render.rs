//! Drawing one band of a [`Scene`] as in-memory MEDS data.

use crate::error::{Error, Result};
use crate::gmix::GMix;
use crate::rng::{normal, object_rng, uniform};
use crate::sim::scene::{EpochTruth, Mask, PixelUnits, Scene};

/// Values of one table column (`repeat` values per row, row-major).
#[derive(Debug, Clone, PartialEq)]
pub enum ColData {
    /// `J` (i4).
    I32(Vec<i32>),
    /// `K` (i8).
    I64(Vec<i64>),
    /// `E` (f4).
    F32(Vec<f32>),
    /// `D` (f8).
    F64(Vec<f64>),
    /// `A` strings of the given width.
    Str(Vec<String>, usize),
}

impl ColData {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            ColData::I32(v) => v.len(),
            ColData::I64(v) => v.len(),
            ColData::F32(v) => v.len(),
            ColData::F64(v) => v.len(),
            ColData::Str(v, _) => v.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A small binary table: `(name, repeat, data)` columns of `nrows` rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimTable {
    /// Number of rows.
    pub nrows: usize,
    /// Columns: name, values per row, data (`nrows * repeat` values).
    pub cols: Vec<(String, usize, ColData)>,
}

impl SimTable {
    /// An empty table of `nrows` rows.
    pub fn new(nrows: usize) -> Self {
        Self {
            nrows,
            cols: Vec::new(),
        }
    }

    /// Add a column.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the data length is not `nrows * repeat`.
    pub fn push(&mut self, name: &str, repeat: usize, data: ColData) -> Result<()> {
        if repeat == 0 || data.len() != self.nrows * repeat {
            return Err(Error::Invalid(format!(
                "sim table column {name}: {} values for {} rows x {repeat}",
                data.len(),
                self.nrows
            )));
        }
        self.cols.push((name.to_string(), repeat, data));
        Ok(())
    }

    /// A column by name.
    pub fn get(&self, name: &str) -> Option<&ColData> {
        self.cols
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, d)| d)
    }
}

/// One band of a scene in the MEDS layout, ready to write.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MedsData {
    /// `object_data`.
    pub object_data: SimTable,
    /// `image_info`.
    pub image_info: SimTable,
    /// `metadata`.
    pub metadata: SimTable,
    /// `image_cutouts` (all cutouts back to back).
    pub image: Vec<f32>,
    /// `weight_cutouts`.
    pub weight: Vec<f32>,
    /// `seg_cutouts`.
    pub seg: Vec<i32>,
    /// `bmask_cutouts`.
    pub bmask: Vec<i32>,
    /// `noise_cutouts`.
    pub noise: Vec<f32>,
    /// `psf` stamps back to back.
    pub psf: Vec<f32>,
}

/// Where an object lands in one image.
#[derive(Debug, Clone, Copy)]
struct Placement {
    orig_row: f64,
    orig_col: f64,
    start_row: i64,
    start_col: i64,
    cutout_row: f64,
    cutout_col: f64,
}

fn place(ep: &EpochTruth, v: f64, u: f64, box_size: usize) -> Placement {
    let (r, c) = ep.pixel_of(v, u);
    let half = (box_size / 2) as i64;
    let start_row = (r + 0.5).floor() as i64 - half;
    let start_col = (c + 0.5).floor() as i64 - half;
    Placement {
        orig_row: r,
        orig_col: c,
        start_row,
        start_col,
        cutout_row: r - start_row as f64,
        cutout_col: c - start_col as f64,
    }
}

/// Sum of the mixtures at sky point `(v, u)`, per unit area (exact exponentials).
fn eval_sum(mixes: &[&GMix], v: f64, u: f64) -> f64 {
    let mut s = 0.0;
    for m in mixes {
        for g in m.gaussians() {
            let chi2 = g.chi2(v, u);
            if chi2 < 200.0 {
                s += g.pnorm * (-0.5 * chi2).exp();
            }
        }
    }
    s
}

/// Random stream of the pixels of (band, object, cutout, purpose).
fn pixel_stream(band: usize, iobj: usize, icut: usize, what: i64) -> i64 {
    ((band as i64) << 48) | ((iobj as i64) << 16) | ((icut as i64) << 4) | what
}

impl Scene {
    /// The PSF-convolved mixture of object `i` in band `band`, epoch `e` (tile sky
    /// coordinates).
    fn convolved(&self, i: usize, band: usize, e: usize) -> Result<GMix> {
        let psf = &self.bands[band].epochs[e].psf;
        Ok(self.objects[i].gmix(band)?.convolve(psf)?)
    }

    /// Pixel value factor of epoch `ep` (pixel area for flux-per-pixel units).
    fn unit_factor(&self, ep: &EpochTruth) -> f64 {
        match self.config.units {
            PixelUnits::SurfaceBrightness => 1.0,
            PixelUnits::FluxPerPixel => ep.det().abs(),
        }
    }

    /// Objects whose light can reach a cutout of object `i` of side `box_size` in `ep`.
    fn near(&self, i: usize, ep: &EpochTruth, box_size: usize) -> Vec<usize> {
        let o = &self.objects[i];
        let reach = ep.scale() * box_size as f64 + 12.0;
        (0..self.objects.len())
            .filter(|&k| {
                let q = &self.objects[k];
                ((q.v - o.v).powi(2) + (q.u - o.u).powi(2)).sqrt() < reach
            })
            .collect()
    }

    /// The seg cutout of object `i` in image `e`: on the coadd (`e == 0`) from the
    /// band-summed noise-free S/N of all bands (the same in every band), else from band
    /// `band` alone.
    fn seg_cutout(&self, i: usize, band: usize, e: usize, pl: &Placement) -> Result<Vec<i32>> {
        let o = &self.objects[i];
        let bs = o.box_size;
        let ep = &self.bands[band].epochs[e];
        let near = self.near(i, ep, bs);
        let bands: Vec<usize> = if e == 0 {
            (0..self.nband()).collect()
        } else {
            vec![band]
        };
        // per (near object, band): convolved mixture and 1/sigma
        let mut mixes: Vec<Vec<(GMix, f64)>> = Vec::with_capacity(near.len());
        for &k in &near {
            let mut v = Vec::new();
            for &b in &bands {
                let epb = &self.bands[b].epochs[e];
                v.push((self.convolved(k, b, e)?, self.unit_factor(epb) / epb.noise));
            }
            mixes.push(v);
        }
        let mut seg = vec![0i32; bs * bs];
        for r in 0..bs {
            for c in 0..bs {
                let (dv, du) = ep.sky_offset(r as f64 - pl.cutout_row, c as f64 - pl.cutout_col);
                let (v, u) = (o.v + dv, o.u + du);
                let mut best = (0usize, 0.0f64);
                for (kk, m) in mixes.iter().enumerate() {
                    let s2n: f64 = m.iter().map(|(g, f)| f * eval_sum(&[g], v, u)).sum();
                    if s2n > best.1 {
                        best = (kk, s2n);
                    }
                }
                if best.1 > self.config.seg_threshold {
                    seg[r * bs + c] = self.objects[near[best.0]].number as i32;
                }
            }
        }
        // every object owns the pixels within one pixel of its catalogue position
        for &k in &near {
            let q = &self.objects[k];
            let (row, col) = ep.pixel_of(q.v, q.u);
            let (qr, qc) = (
                row - pl.orig_row + pl.cutout_row,
                col - pl.orig_col + pl.cutout_col,
            );
            for r in (qr - 1.0).ceil() as i64..=(qr + 1.0).floor() as i64 {
                for c in (qc - 1.0).ceil() as i64..=(qc + 1.0).floor() as i64 {
                    let inside = r >= 0 && c >= 0 && (r as usize) < bs && (c as usize) < bs;
                    if inside && (r as f64 - qr).powi(2) + (c as f64 - qc).powi(2) <= 1.0 {
                        seg[r as usize * bs + c as usize] = q.number as i32;
                    }
                }
            }
        }
        Ok(seg)
    }

    /// Draw band `band` as MEDS data.
    ///
    /// # Errors
    /// A band index out of range or an invalid model.
    pub fn render_band(&self, band: usize) -> Result<MedsData> {
        let bt = self
            .bands
            .get(band)
            .ok_or_else(|| Error::Invalid(format!("sim: no band {band}")))?;
        let nobj = self.objects.len();
        let ncut_max = bt.epochs.len();
        let mut d = MedsData::default();

        // per-cutout columns, filled with MEDS defaults for absent cutouts
        let n = nobj * ncut_max;
        let mut file_id = vec![-1i64; n];
        let mut start_row = vec![-1i64; n];
        let mut orig_row = vec![0.0; n];
        let mut orig_col = vec![0.0; n];
        let mut orig_start_row = vec![-1i64; n];
        let mut orig_start_col = vec![-1i64; n];
        let mut cutout_row = vec![0.0; n];
        let mut cutout_col = vec![0.0; n];
        let mut jcols = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        let mut psf_size = vec![0i32; n];
        let mut psf_start = vec![-1i64; n];
        let mut psf_crow = vec![0.0; n];
        let mut psf_ccol = vec![0.0; n];
        let mut psf_sigma = vec![0.0f32; n];
        let mut ncutout = vec![0i64; nobj];
        let mut start: i64 = 0;

        // PSF stamps: one per image, shared by all objects (positions do not matter)
        let mut psf_starts = Vec::with_capacity(ncut_max);
        for ep in &bt.epochs {
            psf_starts.push(d.psf.len() as i64);
            let nd = ep.psf_dim;
            let c0 = (nd as f64 - 1.0) / 2.0;
            let (r0, cc0) = (c0 + ep.psf_offset[0], c0 + ep.psf_offset[1]);
            let area = ep.det().abs();
            for r in 0..nd {
                for c in 0..nd {
                    let (v, u) = ep.sky_offset(r as f64 - r0, c as f64 - cc0);
                    d.psf.push((eval_sum(&[&ep.psf], v, u) * area) as f32);
                }
            }
        }

        for (i, o) in self.objects.iter().enumerate() {
            // cutout 0 is the coadd: an object seen by single-epoch images must be on it
            if !bt.epochs[0].covers[i] && bt.epochs[1..].iter().any(|ep| ep.covers[i]) {
                return Err(Error::Invalid(format!(
                    "sim band {}: object {} is on single-epoch images but not on the coadd",
                    bt.name, o.id
                )));
            }
            let bs = o.box_size;
            let mut icut = 0usize;
            for (e, ep) in bt.epochs.iter().enumerate() {
                if !ep.covers[i] {
                    continue;
                }
                let pl = place(ep, o.v, o.u, bs);
                let k = i * ncut_max + icut;
                file_id[k] = e as i64;
                start_row[k] = start;
                orig_row[k] = pl.orig_row;
                orig_col[k] = pl.orig_col;
                orig_start_row[k] = pl.start_row;
                orig_start_col[k] = pl.start_col;
                cutout_row[k] = pl.cutout_row;
                cutout_col[k] = pl.cutout_col;
                for (j, col) in jcols.iter_mut().enumerate() {
                    col[k] = ep.jac[j];
                }
                psf_size[k] = ep.psf_dim as i32;
                psf_start[k] = psf_starts[e];
                let c0 = (ep.psf_dim as f64 - 1.0) / 2.0;
                psf_crow[k] = c0 + ep.psf_offset[0];
                psf_ccol[k] = c0 + ep.psf_offset[1];
                psf_sigma[k] = ((0.5 * ep.psf.t()).sqrt() / ep.scale()) as f32;
                self.draw_cutout(&mut d, band, i, icut, e, &pl)?;
                start += (bs * bs) as i64;
                icut += 1;
            }
            ncutout[i] = icut as i64;
        }

        let mut od = SimTable::new(nobj);
        let ids: Vec<i64> = self.objects.iter().map(|o| o.id).collect();
        od.push("id", 1, ColData::I64(ids))?;
        od.push(
            "number",
            1,
            ColData::I32(self.objects.iter().map(|o| o.number as i32).collect()),
        )?;
        od.push(
            "box_size",
            1,
            ColData::I64(self.objects.iter().map(|o| o.box_size as i64).collect()),
        )?;
        od.push(
            "ra",
            1,
            ColData::F64(self.objects.iter().map(|o| o.ra).collect()),
        )?;
        od.push(
            "dec",
            1,
            ColData::F64(self.objects.iter().map(|o| o.dec).collect()),
        )?;
        od.push("ncutout", 1, ColData::I64(ncutout))?;
        let m = ncut_max;
        od.push("file_id", m, ColData::I64(file_id))?;
        od.push("start_row", m, ColData::I64(start_row))?;
        od.push("orig_row", m, ColData::F64(orig_row))?;
        od.push("orig_col", m, ColData::F64(orig_col))?;
        od.push("orig_start_row", m, ColData::I64(orig_start_row))?;
        od.push("orig_start_col", m, ColData::I64(orig_start_col))?;
        od.push("cutout_row", m, ColData::F64(cutout_row))?;
        od.push("cutout_col", m, ColData::F64(cutout_col))?;
        let [dudrow, dudcol, dvdrow, dvdcol] = jcols;
        od.push("dudrow", m, ColData::F64(dudrow))?;
        od.push("dudcol", m, ColData::F64(dudcol))?;
        od.push("dvdrow", m, ColData::F64(dvdrow))?;
        od.push("dvdcol", m, ColData::F64(dvdcol))?;
        od.push("psf_row_size", m, ColData::I32(psf_size.clone()))?;
        od.push("psf_col_size", m, ColData::I32(psf_size))?;
        od.push("psf_start_row", m, ColData::I64(psf_start))?;
        od.push("psf_cutout_row", m, ColData::F64(psf_crow))?;
        od.push("psf_cutout_col", m, ColData::F64(psf_ccol))?;
        od.push("psf_sigma", m, ColData::F32(psf_sigma))?;
        d.object_data = od;

        let nim = bt.epochs.len();
        let mut ii = SimTable::new(nim);
        let name = |kind: &str| -> Vec<String> {
            (0..nim)
                .map(|e| {
                    let what = if e == 0 {
                        "coadd".to_string()
                    } else {
                        format!("se{e:03}")
                    };
                    format!("sim_{}_{what}_{kind}.fits", bt.name)
                })
                .collect()
        };
        ii.push("image_path", 1, ColData::Str(name("image"), 48))?;
        ii.push("image_ext", 1, ColData::I32(vec![1; nim]))?;
        ii.push("weight_path", 1, ColData::Str(name("image"), 48))?;
        ii.push("weight_ext", 1, ColData::I32(vec![3; nim]))?;
        ii.push("seg_path", 1, ColData::Str(name("seg"), 48))?;
        ii.push("seg_ext", 1, ColData::I32(vec![1; nim]))?;
        ii.push("image_id", 1, ColData::I64((0..nim as i64).collect()))?;
        ii.push("image_flags", 1, ColData::I64(vec![0; nim]))?;
        ii.push("magzp", 1, ColData::F32(vec![30.0; nim]))?;
        ii.push("scale", 1, ColData::F64(vec![1.0; nim]))?;
        ii.push("position_offset", 1, ColData::F64(vec![0.0; nim]))?;
        d.image_info = ii;

        let mut meta = SimTable::new(1);
        meta.push("magzp_ref", 1, ColData::F32(vec![30.0]))?;
        meta.push(
            "medsconf",
            1,
            ColData::Str(vec!["ngmixer-rs-sim".to_string()], 16),
        )?;
        meta.push("band", 1, ColData::Str(vec![bt.name.clone()], 8))?;
        meta.push("seed", 1, ColData::I64(vec![self.config.seed as i64]))?;
        meta.push(
            "pixel_scale",
            1,
            ColData::F64(vec![self.config.coadd_scale]),
        )?;
        d.metadata = meta;
        Ok(d)
    }

    /// Append the image, weight, seg, bmask and noise pixels of one cutout.
    fn draw_cutout(
        &self,
        d: &mut MedsData,
        band: usize,
        i: usize,
        icut: usize,
        e: usize,
        pl: &Placement,
    ) -> Result<()> {
        let o = &self.objects[i];
        let bs = o.box_size;
        let ep = &self.bands[band].epochs[e];
        let near = self.near(i, ep, bs);
        let mixes: Vec<GMix> = near
            .iter()
            .map(|&k| self.convolved(k, band, e))
            .collect::<Result<_>>()?;
        let refs: Vec<&GMix> = mixes.iter().collect();
        let fac = self.unit_factor(ep);
        let sigma = ep.noise;
        let w0 = (1.0 / (sigma * sigma)) as f32;
        let mut nrng = object_rng(self.config.seed, pixel_stream(band, i, icut, 1));
        let mut zrng = object_rng(self.config.seed, pixel_stream(band, i, icut, 2));
        let mut mrng = object_rng(self.config.seed, pixel_stream(band, i, icut, 3));
        let seg = self.seg_cutout(i, band, e, pl)?;
        // the true centre in cutout pixels
        let (tr, tc) = {
            let (r, c) = ep.pixel_of(o.v + o.cen_offset[0], o.u + o.cen_offset[1]);
            (
                r - pl.orig_row + pl.cutout_row,
                c - pl.orig_col + pl.cutout_col,
            )
        };
        for r in 0..bs {
            for c in 0..bs {
                let (dv, du) = ep.sky_offset(r as f64 - pl.cutout_row, c as f64 - pl.cutout_col);
                let model = fac * eval_sum(&refs, o.v + dv, o.u + du);
                let mut im = model + sigma * normal(&mut nrng);
                let mut wt = w0;
                let mut bm = 0i32;
                let mut nz = (sigma * normal(&mut zrng)) as f32;
                let rr = (r as f64 - tr).powi(2) + (c as f64 - tc).powi(2);
                let u01 = uniform(&mut mrng);
                let (masked, bits) = match o.mask {
                    Mask::None => (false, 0),
                    Mask::Core { radius, bits } => (rr <= radius * radius, bits),
                    Mask::Random { frac, bits } => (u01 < frac, bits),
                    Mask::Column { bits } => (e > 0 && icut == 1 && c == tc.round() as usize, bits),
                    Mask::ZeroWeight => (true, 0),
                    Mask::FlagOnly { radius, bits } => {
                        if rr <= radius * radius {
                            bm = bits;
                        }
                        (false, 0)
                    }
                };
                if masked {
                    wt = 0.0;
                    bm |= bits;
                    nz = 0.0;
                    if o.mask != Mask::ZeroWeight {
                        im = self.config.masked_value;
                    }
                }
                d.image.push(im as f32);
                d.weight.push(wt);
                d.bmask.push(bm);
                d.noise.push(nz);
            }
        }
        d.seg.extend_from_slice(&seg);
        Ok(())
    }
}
