//! Galaxy and PSF models built from parameter vectors (ngmix `gmix_fill_*`).

use crate::error::{GMixError, GResult};
use crate::gmix::gauss::{GMix, Gauss2D};
use crate::gmix::shape::g1g2_to_e1e2;

/// Flux fractions `p_k` and size fractions `f_k = T_k / T` of one profile approximation.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Flux fractions.
    pub p: &'static [f64],
    /// Size fractions.
    pub f: &'static [f64],
}

const P_GAUSS: [f64; 1] = [1.0];
const F_GAUSS: [f64; 1] = [1.0];

const P_EXP: [f64; 6] = [
    0.0006160122967788004,
    0.007946139572462324,
    0.05328045405554,
    0.2179736464072654,
    0.4549674058255487,
    0.2652163418424048,
];
const F_EXP: [f64; 6] = [
    0.002467115141477932,
    0.018147435573256168,
    0.07944063151366336,
    0.2713766989747912,
    0.7978225686699377,
    2.162330602507574,
];

const P_DEV: [f64; 10] = [
    6.528896001262566e-05,
    0.00044199216814302695,
    0.0020859587871659754,
    0.007591368141899684,
    0.02260266219257237,
    0.05653225439021286,
    0.11939049233042602,
    0.20969545753234975,
    0.2925415113313922,
    0.2890530141658255,
];
/// dev size fractions of ngmix v1.x (what ngmixer ran; `Σ p f` = 1.025, so a v1 dev mixture has T = 1.025 × the T parameter).
const F_DEV_V1: [f64; 10] = [
    3.068330909892871e-07,
    3.551788624668698e-06,
    2.542810833482682e-05,
    0.0001466508940804874,
    0.0007457199853069548,
    0.003544702600428794,
    0.01648881157673708,
    0.07893194619504579,
    0.4203787615506401,
    3.055782252301236,
];
/// dev size fractions of ngmix 2.x (renormalised so that `Σ p f = 1`).
const F_DEV_V2: [f64; 10] = [
    2.993493570627192e-07,
    3.4651596338231207e-06,
    2.4807910570562753e-05,
    0.00014307404300535354,
    0.000727531692982395,
    0.003458246439442726,
    0.0160866454407191,
    0.07700677677565443,
    0.41012562102501476,
    2.981250977854865,
];

const P_TURB: [f64; 3] = [0.596510042804182, 0.4034898268889178, 1.303069003078001e-07];
const F_TURB: [f64; 3] = [0.5793612389470884, 1.621860687127999, 7.019347162356363];

/// Which ngmix generation's profile tables to use. They differ only in the dev sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tables {
    /// ngmix v1.3.x, as run by ngmixer (default; end-to-end parity).
    #[default]
    V1,
    /// ngmix 2.x (the `ref/ngmix` JSON vectors).
    V2,
}

impl Tables {
    /// The profile of a simple model.
    pub fn profile(self, kind: SimpleKind) -> Profile {
        match kind {
            SimpleKind::Gauss => Profile {
                p: &P_GAUSS,
                f: &F_GAUSS,
            },
            SimpleKind::Exp => Profile {
                p: &P_EXP,
                f: &F_EXP,
            },
            SimpleKind::Dev => Profile {
                p: &P_DEV,
                f: match self {
                    Tables::V1 => &F_DEV_V1,
                    Tables::V2 => &F_DEV_V2,
                },
            },
            SimpleKind::Turb => Profile {
                p: &P_TURB,
                f: &F_TURB,
            },
        }
    }

    /// `1 / Σ p f` of the exp+dev composite with `fracdev`, `TdByTe` (ngmix `get_cm_Tfactor`).
    pub fn cm_tfactor(self, fracdev: f64, tdbyte: f64) -> f64 {
        let e = self.profile(SimpleKind::Exp);
        let d = self.profile(SimpleKind::Dev);
        let mut s = 0.0;
        for (p, f) in e.p.iter().zip(e.f) {
            s += p * (1.0 - fracdev) * f;
        }
        for (p, f) in d.p.iter().zip(d.f) {
            // ngmix: p = pvals*fracdev, f = fvals*TdByTe, sum p*f (same rounding)
            s += (p * fracdev) * (f * tdbyte);
        }
        1.0 / s
    }
}

/// Single-profile models with parameters `[row, col, g1, g2, T, flux]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimpleKind {
    /// One Gaussian.
    Gauss,
    /// Exponential disk, 6 Gaussians.
    Exp,
    /// de Vaucouleurs, 10 Gaussians.
    Dev,
    /// Kolmogorov-like PSF, 3 Gaussians.
    Turb,
}

/// A model that turns a parameter vector into a mixture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// gauss / exp / dev / turb.
    Simple(SimpleKind),
    /// Composite exp + dev with fixed `fracdev` and `TdByTe` (`[row,col,g1,g2,T,flux]`).
    Cm {
        /// Fraction of flux in the dev component.
        fracdev: f64,
        /// `T_dev / T_exp`.
        tdbyte: f64,
    },
    /// exp + dev with free fracdev, `TdByTe` = 1: `[row,col,g1,g2,T,fracdev,flux]`.
    Bdf,
    /// exp + dev: `[row,col,g1,g2,T,log10(Td/Te),fracdev,flux]`.
    Bd,
    /// `n` co-elliptical Gaussians: `[row,col,g1,g2,T_1..T_n,F_1..F_n]`.
    Coellip(usize),
    /// `n` free Gaussians: `[p,row,col,irr,irc,icc] × n`.
    Full(usize),
}

impl Model {
    /// Parse ngmix model names (`gauss`, `exp`, `dev`, `turb`, `bdf`, `bd`, `coellip<n>`,
    /// `em<n>`/`full<n>`). `cm` needs its fixed fracdev/TdByTe: see [`Model::Cm`].
    pub fn parse(name: &str) -> Option<Model> {
        let simple = |k| Some(Model::Simple(k));
        match name {
            "gauss" => simple(SimpleKind::Gauss),
            "exp" => simple(SimpleKind::Exp),
            "dev" => simple(SimpleKind::Dev),
            "turb" => simple(SimpleKind::Turb),
            "bdf" => Some(Model::Bdf),
            "bd" => Some(Model::Bd),
            _ => {
                if let Some(n) = name.strip_prefix("coellip") {
                    n.parse().ok().filter(|&n| n > 0).map(Model::Coellip)
                } else if let Some(n) = name
                    .strip_prefix("em")
                    .or_else(|| name.strip_prefix("full"))
                {
                    n.parse().ok().filter(|&n| n > 0).map(Model::Full)
                } else {
                    None
                }
            }
        }
    }

    /// Number of Gaussians of the mixture.
    pub fn ngauss(&self) -> usize {
        match self {
            Model::Simple(SimpleKind::Gauss) => 1,
            Model::Simple(SimpleKind::Exp) => 6,
            Model::Simple(SimpleKind::Dev) => 10,
            Model::Simple(SimpleKind::Turb) => 3,
            Model::Cm { .. } | Model::Bdf | Model::Bd => 16,
            Model::Coellip(n) | Model::Full(n) => *n,
        }
    }

    /// Number of parameters for a single band.
    pub fn npars(&self) -> usize {
        match self {
            Model::Simple(_) | Model::Cm { .. } => 6,
            Model::Bdf => 7,
            Model::Bd => 8,
            Model::Coellip(n) => 4 + 2 * n,
            Model::Full(n) => 6 * n,
        }
    }

    /// Build the mixture with the given tables.
    pub fn gmix_with(&self, pars: &[f64], tables: Tables) -> GResult<GMix> {
        let mut g = GMix::new();
        self.fill_with(&mut g, pars, tables)?;
        Ok(g)
    }

    /// Build the mixture with the default (ngmix v1) tables.
    pub fn gmix(&self, pars: &[f64]) -> GResult<GMix> {
        self.gmix_with(pars, Tables::V1)
    }

    /// Fill `out` (its storage is reused).
    pub fn fill_with(&self, out: &mut GMix, pars: &[f64], tables: Tables) -> GResult<()> {
        if pars.len() != self.npars() {
            return Err(GMixError::Range("wrong number of model parameters"));
        }
        let v = out.gaussians_mut();
        v.clear();
        match *self {
            Model::Simple(kind) => {
                let prof = tables.profile(kind);
                fill_profiles(v, pars, pars[4], pars[5], &[(prof, 1.0, 1.0)])
            }
            Model::Cm { fracdev, tdbyte } => {
                fill_composite(v, pars, pars[5], fracdev, tdbyte, tables)
            }
            Model::Bdf => fill_composite(v, pars, pars[6], pars[5], 1.0, tables),
            Model::Bd => {
                let tdbyte = 10f64.powf(pars[5]);
                fill_composite(v, pars, pars[7], pars[6], tdbyte, tables)
            }
            Model::Coellip(n) => {
                let (e1, e2) = g1g2_to_e1e2(pars[2], pars[3])?;
                for i in 0..n {
                    let th = 0.5 * pars[4 + i];
                    v.push(Gauss2D::new(
                        pars[4 + n + i],
                        pars[0],
                        pars[1],
                        th * (1.0 - e1),
                        th * e2,
                        th * (1.0 + e1),
                    )?);
                }
                Ok(())
            }
            Model::Full(_) => {
                for c in pars.chunks_exact(6) {
                    v.push(Gauss2D::new(c[0], c[1], c[2], c[3], c[4], c[5])?);
                }
                Ok(())
            }
        }
    }
}

/// Push the Gaussians of profiles `(profile, flux factor, size factor)` sharing centre and shape.
fn fill_profiles(
    v: &mut Vec<Gauss2D>,
    pars: &[f64],
    t: f64,
    flux: f64,
    profiles: &[(Profile, f64, f64)],
) -> GResult<()> {
    let (row, col) = (pars[0], pars[1]);
    let (e1, e2) = g1g2_to_e1e2(pars[2], pars[3])?;
    for (prof, pfac, ffac) in profiles {
        for (p, f) in prof.p.iter().zip(prof.f) {
            // the same operation order as ngmix (p = pvals*pfac, f = fvals*ffac,
            // T_i/2 = 0.5*T*f, flux_i = flux*p), so composite models round identically
            let pk = p * pfac;
            let fk = f * ffac;
            let t2 = 0.5 * t * fk;
            v.push(Gauss2D::new(
                flux * pk,
                row,
                col,
                t2 * (1.0 - e1),
                t2 * e2,
                t2 * (1.0 + e1),
            )?);
        }
    }
    Ok(())
}

fn fill_composite(
    v: &mut Vec<Gauss2D>,
    pars: &[f64],
    flux: f64,
    fracdev: f64,
    tdbyte: f64,
    tables: Tables,
) -> GResult<()> {
    let t = pars[4] * tables.cm_tfactor(fracdev, tdbyte);
    let e = tables.profile(SimpleKind::Exp);
    let d = tables.profile(SimpleKind::Dev);
    fill_profiles(
        v,
        pars,
        t,
        flux,
        &[(e, 1.0 - fracdev, 1.0), (d, fracdev, tdbyte)],
    )
}
