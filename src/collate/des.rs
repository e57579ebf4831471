//! The DES collation classes (`concat-des` and relatives, spec §8.3): derived magnitude, flux,
//! S/N, surface-brightness, size and weight columns, epoch/neighbour `band` letters, and
//! blinding of the metacal shears.

use crate::config::ConcatType;
use crate::error::{Error, Result};
use crate::output::{ColSpec, Kind, Table};

use super::blind::Blinding;

/// Sentinel of derived values of flagged rows.
pub const DES_DEFVAL: f64 = -9999.0;
/// Sentinel of derived errors of flagged rows.
pub const DES_BIGVAL: f64 = 9999.0;
/// Smallest flux used in a magnitude.
pub const MIN_MAG_FLUX: f64 = 0.001;

/// A schema being edited: insertions before/after named columns.
struct Schema(Vec<ColSpec>);

impl Schema {
    fn of(t: &Table) -> Self {
        Self(t.specs())
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
    fn pos(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|s| s.name == name)
    }
    /// Insert `spec` after column `after` (at the end when it is absent); no-op when present.
    fn insert_after(&mut self, after: &str, spec: ColSpec) {
        if self.has(&spec.name) {
            return;
        }
        let at = self.pos(after).map_or(self.0.len(), |i| i + 1);
        self.0.insert(at, spec);
    }
    fn insert_before(&mut self, before: &str, spec: ColSpec) {
        if self.has(&spec.name) {
            return;
        }
        let at = self.pos(before).unwrap_or(self.0.len());
        self.0.insert(at, spec);
    }
}

/// A table of schema `specs` holding the rows `keep` of `src` (columns `src` lacks get their
/// defaults).
fn rebuild(src: &Table, specs: Vec<ColSpec>, keep: &[usize]) -> Result<Table> {
    let mut t = Table::new(specs);
    for _ in keep {
        t.push_default();
    }
    for c in src.columns() {
        let Ok(h) = t.col(&c.name) else { continue };
        let r = c.repeat();
        for (i, &k) in keep.iter().enumerate() {
            if let Kind::Str(_) = c.kind {
                t.set_str(i, h, &c.strs[k]);
            } else {
                t.set(i, h, &c.num[k * r..(k + 1) * r]);
            }
        }
    }
    Ok(t)
}

fn per_band_shape(nb: usize) -> Vec<usize> {
    if nb == 1 {
        vec![]
    } else {
        vec![nb]
    }
}

fn cov_shape(nb: usize) -> Vec<usize> {
    if nb == 1 {
        vec![]
    } else {
        vec![nb, nb]
    }
}

fn f8(name: String, shape: &[usize]) -> ColSpec {
    ColSpec::new(name, Kind::F64, shape, 0.0)
}

fn band_width(bands: &[String]) -> usize {
    bands.iter().map(String::len).max().unwrap_or(1).max(1)
}

/// `pick_epoch_fields` / `pick_nbrs_fields`: keep rows with `cutout_index >= 0` (when
/// `drop_coadd_rows` and the column exists) and insert a `band` letter column before
/// `band_num`.
///
/// # Errors
/// A `band_num` outside `bands`.
pub fn pick_band_rows(t: &Table, bands: &[String], drop_negative_cutouts: bool) -> Result<Table> {
    let keep: Vec<usize> = (0..t.nrows())
        .filter(|&r| {
            !drop_negative_cutouts
                || t.get(r, "cutout_index")
                    .is_none_or(|v| v.first().is_some_and(|&x| x >= 0.0))
        })
        .collect();
    let mut s = Schema::of(t);
    let has_band_num = s.has("band_num");
    if has_band_num {
        s.insert_before(
            "band_num",
            ColSpec::new("band", Kind::Str(band_width(bands)), &[], 0.0),
        );
    }
    let mut out = rebuild(t, s.0, &keep)?;
    if has_band_num {
        let h = out.col("band")?;
        let bn = t.col("band_num")?;
        for (i, &k) in keep.iter().enumerate() {
            let b = t.get_col(k, bn)[0];
            let name = usize::try_from(b as i64)
                .ok()
                .and_then(|b| bands.get(b))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "band_num {b} in row {k} has no band in the configured bands {bands:?}"
                    ))
                })?;
            out.set_str(i, h, name);
        }
    }
    Ok(out)
}

/// The models whose columns are derived: for each configured model `m`, the candidates
/// `coadd_<m>_max`, `coadd_<m>`, `<m>_max`, `<m>` (metacal: without the `_max` ones, plus
/// `mcal`) that have a `_flux` or `_pars` column.
pub fn derived_models(t: &Table, concat: ConcatType, models: &[String]) -> Vec<String> {
    let mut cands = Vec::new();
    let metacal = concat == ConcatType::ConcatMetacalDes;
    for m in models {
        if metacal {
            cands.extend([format!("coadd_{m}"), m.clone()]);
        } else {
            cands.extend([
                format!("coadd_{m}_max"),
                format!("coadd_{m}"),
                format!("{m}_max"),
                m.clone(),
            ]);
        }
    }
    if metacal {
        cands.push("mcal".to_string());
    }
    let mut out: Vec<String> = Vec::new();
    for c in cands {
        let has =
            t.column(&format!("{c}_flux")).is_some() || t.column(&format!("{c}_pars")).is_some();
        if has && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Options of the derived columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DesFields<'a> {
    /// The collation class.
    pub concat: ConcatType,
    /// Configured model names (`model_pars` keys).
    pub models: &'a [String],
    /// Zero point per band (`magzp_ref`).
    pub magzp: &'a [f64],
    /// Shape noise per component in the `<m>_weight` columns.
    pub shape_noise: f64,
}

fn mag(zp: f64, flux: f64) -> f64 {
    zp - 2.5 * flux.max(MIN_MAG_FLUX).log10()
}

fn zp_of(magzp: &[f64], b: usize) -> Result<f64> {
    magzp
        .get(b)
        .or_else(|| (magzp.len() == 1).then(|| &magzp[0]))
        .copied()
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no magzp_ref for band {b} (have {} zero points)",
                magzp.len()
            ))
        })
}

fn value<'a>(t: &'a Table, r: usize, name: &str) -> &'a [f64] {
    t.get(r, name).unwrap_or(&[])
}

/// `pick_fields` of the DES classes: the model table with the derived columns inserted
/// (existing columns are kept as they are, and a derived column already present is not
/// recomputed).
///
/// # Errors
/// A `<m>_pars` column too short for its fluxes, or a band without zero point.
pub fn derive_fields(t: &Table, o: &DesFields) -> Result<Table> {
    let mut s = Schema::of(t);
    let n = t.nrows();
    let all: Vec<usize> = (0..n).collect();
    type Fill = Box<dyn Fn(&Table, usize) -> Result<Vec<f64>>>;
    let mut fills: Vec<(String, Fill)> = Vec::new();

    if o.concat == ConcatType::ConcatMetacalAdmomDes {
        return Ok(t.clone());
    }
    if o.concat == ConcatType::ConcatForcephot {
        if let Some(c) = t.column("fp_flux") {
            let nb = c.repeat();
            s.insert_before("fp_flux_s2n", f8("fp_mag".into(), &per_band_shape(nb)));
            let zp: Vec<f64> = (0..nb).map(|b| zp_of(o.magzp, b)).collect::<Result<_>>()?;
            fills.push((
                "fp_mag".into(),
                Box::new(move |t, r| {
                    let f = value(t, r, "fp_flux");
                    let fl = value(t, r, "fp_flags");
                    Ok((0..nb)
                        .map(|b| {
                            if fl.get(b).copied().unwrap_or(0.0) == 0.0 {
                                mag(zp[b], f[b])
                            } else {
                                DES_DEFVAL
                            }
                        })
                        .collect())
                }),
            ));
        }
        return finish(t, s, &all, fills);
    }

    // PSF magnitudes
    for pre in ["", "coadd_"] {
        let flux = format!("{pre}psf_flux");
        let Some(c) = t.column(&flux) else { continue };
        let nb = c.repeat();
        let zp: Vec<f64> = (0..nb).map(|b| zp_of(o.magzp, b)).collect::<Result<_>>()?;
        let s2n = format!("{pre}psf_flux_s2n");
        let magname = format!("{pre}psf_mag");
        let shape = c.shape.clone();
        if pre.is_empty() {
            s.insert_before(&s2n, f8(magname.clone(), &shape));
        } else {
            if !s.has(&s2n) && s.has(&format!("{pre}psf_flux_err")) {
                s.insert_after(&format!("{pre}psf_flux_err"), f8(s2n.clone(), &shape));
                let (flux, err) = (flux.clone(), format!("{pre}psf_flux_err"));
                fills.push((
                    s2n.clone(),
                    Box::new(move |t, r| {
                        let f = value(t, r, &flux);
                        let e = value(t, r, &err);
                        Ok((0..nb)
                            .map(|b| if e[b] > 0.0 { f[b] / e[b] } else { 0.0 })
                            .collect())
                    }),
                ));
            }
            let after = if s.has(&s2n) {
                s2n.clone()
            } else {
                format!("{pre}psf_flux_err")
            };
            s.insert_after(&after, f8(magname.clone(), &shape));
        }
        let flags = format!("{pre}psf_flags");
        fills.push((
            magname,
            Box::new(move |t, r| {
                let f = value(t, r, &flux);
                let fl = value(t, r, &flags);
                Ok((0..nb)
                    .map(|b| {
                        if fl.get(b).copied().unwrap_or(0.0) == 0.0 {
                            mag(zp[b], f[b])
                        } else {
                            DES_DEFVAL
                        }
                    })
                    .collect())
            }),
        ));
    }

    for m in derived_models(t, o.concat, o.models) {
        let nm = |x: &str| format!("{m}_{x}");
        let pars = nm("pars");
        let pars_cov = nm("pars_cov");
        let flags = nm("flags");
        let has_flux = s.has(&nm("flux"));
        let np = t.column(&pars).map_or(0, |c| c.repeat());
        let nb = if has_flux {
            t.column(&nm("flux")).map_or(1, |c| c.repeat())
        } else if np > 5 {
            np - 5
        } else {
            return Err(Error::Invalid(format!(
                "{pars} has {np} values per row: no fluxes after [row, col, g1, g2, T]"
            )));
        };
        let zp: Vec<f64> = (0..nb).map(|b| zp_of(o.magzp, b)).collect::<Result<_>>()?;
        let bshape = per_band_shape(nb);
        let ok = |t: &Table, r: usize, flags: &str| {
            t.get(r, flags)
                .and_then(|v| v.first())
                .is_some_and(|&f| f == 0.0)
        };

        // <m>_weight after <m>_g_cov (the original left it 0)
        if s.has(&nm("g_cov")) {
            s.insert_after(&nm("g_cov"), f8(nm("weight"), &[]));
            let (gc, fl, sn) = (nm("g_cov"), flags.clone(), o.shape_noise);
            fills.push((
                nm("weight"),
                Box::new(move |t, r| {
                    let c = value(t, r, &gc);
                    let w = if ok(t, r, &fl) && c.len() == 4 {
                        let d = 2.0 * sn * sn + c[0] + c[3];
                        if d > 0.0 {
                            1.0 / d
                        } else {
                            0.0
                        }
                    } else {
                        0.0
                    };
                    Ok(vec![w])
                }),
            ));
        }

        let mut last = pars_cov.clone();
        if !has_flux {
            s.insert_after(&last, f8(nm("flux"), &bshape));
            s.insert_after(&nm("flux"), f8(nm("flux_cov"), &cov_shape(nb)));
            last = nm("flux_cov");
            let (p, pc, fl) = (pars.clone(), pars_cov.clone(), flags.clone());
            fills.push((
                nm("flux"),
                Box::new(move |t, r| {
                    let v = value(t, r, &p);
                    Ok(if ok(t, r, &fl) {
                        v[5..5 + nb].to_vec()
                    } else {
                        vec![DES_DEFVAL; nb]
                    })
                }),
            ));
            let fl = flags.clone();
            fills.push((
                nm("flux_cov"),
                Box::new(move |t, r| {
                    let c = value(t, r, &pc);
                    let good = ok(t, r, &fl) && c.len() == np * np;
                    let mut out = vec![DES_DEFVAL; nb * nb];
                    if good {
                        for a in 0..nb {
                            for b in 0..nb {
                                out[a * nb + b] = c[(5 + a) * np + 5 + b];
                            }
                        }
                    }
                    Ok(out)
                }),
            ));
        } else if s.has(&nm("flux_cov")) {
            last = nm("flux_cov");
        } else {
            last = nm("flux");
        }
        for x in ["flux_s2n", "mag", "logsb"] {
            s.insert_after(&last, f8(nm(x), &bshape));
            last = nm(x);
        }
        let has_t = s.has(&nm("T"));
        if !has_t {
            for x in ["T", "T_err", "T_s2n"] {
                s.insert_after(&last, f8(nm(x), &[]));
                last = nm(x);
            }
        }
        // values: computed from a row's (possibly derived) flux and T
        let (p, pc, fl) = (pars.clone(), pars_cov.clone(), flags.clone());
        let (fname, fcname) = (nm("flux"), nm("flux_cov"));
        let flux_of = move |t: &Table, r: usize, ok_row: bool| -> (Vec<f64>, Vec<f64>) {
            // (flux, var) per band, from existing columns or from pars
            if has_flux {
                let f = value(t, r, &fname).to_vec();
                let cov = t.get(r, &fcname).map(<[f64]>::to_vec).unwrap_or_default();
                let var = (0..nb)
                    .map(|b| cov.get(b * nb + b).copied().unwrap_or(0.0))
                    .collect();
                (f, var)
            } else if ok_row {
                let v = value(t, r, &p);
                let c = value(t, r, &pc);
                let var = (0..nb)
                    .map(|b| c.get((5 + b) * np + 5 + b).copied().unwrap_or(0.0))
                    .collect();
                (v[5..5 + nb].to_vec(), var)
            } else {
                (vec![DES_DEFVAL; nb], vec![DES_DEFVAL; nb])
            }
        };
        let flux_of = std::rc::Rc::new(flux_of);
        let (fo, fl2) = (flux_of.clone(), fl.clone());
        fills.push((
            nm("flux_s2n"),
            Box::new(move |t, r| {
                let (f, var) = fo(t, r, ok(t, r, &fl2));
                Ok((0..nb)
                    .map(|b| {
                        if var[b] > 0.0 {
                            f[b] / var[b].sqrt()
                        } else {
                            0.0
                        }
                    })
                    .collect())
            }),
        ));
        let (fo, fl2) = (flux_of.clone(), fl.clone());
        fills.push((
            nm("mag"),
            Box::new(move |t, r| {
                let good = ok(t, r, &fl2);
                let (f, _) = fo(t, r, good);
                Ok((0..nb)
                    .map(|b| if good { mag(zp[b], f[b]) } else { DES_DEFVAL })
                    .collect())
            }),
        ));
        let (fo, fl2, tcol, p2) = (flux_of.clone(), fl.clone(), nm("T"), pars.clone());
        fills.push((
            nm("logsb"),
            Box::new(move |t, r| {
                let good = ok(t, r, &fl2);
                let (f, _) = fo(t, r, good);
                let tv = if has_t {
                    value(t, r, &tcol).first().copied().unwrap_or(0.0)
                } else {
                    value(t, r, &p2).get(4).copied().unwrap_or(0.0)
                };
                Ok((0..nb)
                    .map(|b| {
                        let x = (f[b] / tv).abs();
                        if good && x > 0.0 && x.is_finite() {
                            x.log10()
                        } else {
                            DES_DEFVAL
                        }
                    })
                    .collect())
            }),
        ));
        if !has_t {
            let t_of = move |t: &Table, r: usize, p: &str, pc: &str, fl: &str| {
                let v = value(t, r, p);
                let c = value(t, r, pc);
                let var = c.get(4 * np + 4).copied().unwrap_or(0.0);
                if ok(t, r, fl) && var > 0.0 {
                    let e = var.sqrt();
                    (v[4], e, v[4] / e)
                } else {
                    (DES_DEFVAL, DES_BIGVAL, DES_DEFVAL)
                }
            };
            for (k, x) in ["T", "T_err", "T_s2n"].into_iter().enumerate() {
                let (p, pc, fl) = (pars.clone(), pars_cov.clone(), flags.clone());
                fills.push((
                    nm(x),
                    Box::new(move |t, r| {
                        let (a, b, c) = t_of(t, r, &p, &pc, &fl);
                        Ok(vec![[a, b, c][k]])
                    }),
                ));
            }
        }
    }
    finish(t, s, &all, fills)
}

type FillList = Vec<(String, Box<dyn Fn(&Table, usize) -> Result<Vec<f64>>>)>;

fn finish(t: &Table, s: Schema, keep: &[usize], fills: FillList) -> Result<Table> {
    let mut out = rebuild(t, s.0, keep)?;
    for (name, f) in &fills {
        let h = out.col(name)?;
        for (i, &k) in keep.iter().enumerate() {
            let v = f(t, k)?;
            out.set(i, h, &v);
        }
    }
    Ok(out)
}

/// Blind `mcal_g[0:2]` and `mcal_pars[2:4]` of the rows with `mcal_flags == 0`; returns the
/// number of rows changed.
///
/// # Errors
/// No `mcal_g` column (the catalogue has no metacal shears to blind).
pub fn blind_table(t: &mut Table, b: &Blinding) -> Result<usize> {
    let g = t.col("mcal_g").map_err(|_| {
        Error::Invalid(
            "blinding is configured (collate.blinding) but the catalogue has no mcal_g column"
                .into(),
        )
    })?;
    let pars = t.col("mcal_pars").ok();
    let flags = t.col("mcal_flags").ok();
    let mut n = 0;
    for r in 0..t.nrows() {
        if flags.is_some_and(|f| t.get_col(r, f)[0] != 0.0) {
            continue;
        }
        let v = t.get_col(r, g).to_vec();
        let (g1, g2) = b.apply(v[0], v[1]);
        t.set(r, g, &[g1, g2]);
        if let Some(p) = pars {
            let v = t.get_col(r, p).to_vec();
            if v.len() >= 4 {
                let (g1, g2) = b.apply(v[2], v[3]);
                t.set_at(r, p, 2, g1);
                t.set_at(r, p, 3, g2);
            }
        }
        n += 1;
    }
    Ok(n)
}
