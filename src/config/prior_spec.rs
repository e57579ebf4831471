//! Prior specifications of `model_pars` (ngmixer `priors.py`, spec §4.5).
//!
//! These are descriptions only; building the actual prior objects (and reading the GMixND files)
//! is the job of [`crate::priors`].

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::enums::GalaxyModel;
use super::yaml::Value;

/// Priors of one galaxy model: a separable prior on centre, shape, size and fluxes (plus the
/// `fracdev` prior of the composite model `cm`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPriorSpec {
    /// Centre prior.
    pub cen: CenPriorSpec,
    /// Shape prior.
    pub g: GPriorSpec,
    /// Size prior (key `T`).
    #[serde(rename = "T")]
    pub t: ScalarPrior,
    /// Flux priors (key `counts`).
    pub counts: CountsPriorSpec,
    /// `fracdev` prior; required (and only used) for `cm`.
    #[serde(default)]
    pub fracdev: Option<FracdevPriorSpec>,
}

/// Centre prior: two independent Gaussians of mean 0 and sigma `width` (arcsec). ngmixer only
/// reads `width`; both type names occur in configs.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum CenPriorSpec {
    /// `{type: dgauss, width: w}`.
    #[serde(rename = "dgauss")]
    DGauss {
        /// Sigma in arcsec.
        width: f64,
    },
    /// `{type: normal2d, width: w}`.
    #[serde(rename = "normal2d")]
    Normal2D {
        /// Sigma in arcsec.
        width: f64,
    },
}

impl CenPriorSpec {
    /// The Gaussian sigma (arcsec).
    pub fn width(&self) -> f64 {
        match *self {
            CenPriorSpec::DGauss { width } | CenPriorSpec::Normal2D { width } => width,
        }
    }
}

/// Shape prior.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum GPriorSpec {
    /// Bernstein & Armstrong prior with width `sigma`.
    #[serde(rename = "ba")]
    Ba {
        /// Width of the prior.
        sigma: f64,
    },
    /// Uniform within the unit disk.
    #[serde(rename = "flat")]
    Flat,
    /// ngmix's erf-form fit to the COSMOS Sersic shapes.
    #[serde(rename = "cosmos-sersic")]
    CosmosSersic,
    /// ngmix's fit to the COSMOS exponential-disk shapes.
    #[serde(rename = "cosmos-exp")]
    CosmosExp,
    /// ngmix's fit to the COSMOS de Vaucouleurs shapes.
    #[serde(rename = "cosmos-dev")]
    CosmosDev,
}

/// A one-dimensional prior (used for `T` and, per band, for the fluxes).
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarPrior {
    /// `{type: flat, pars: [min, max]}`.
    Flat {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `{type: TwoSidedErf, pars: [minval, width_at_min, maxval, width_at_max]}`.
    TwoSidedErf {
        /// Lower edge.
        minval: f64,
        /// Width of the lower edge.
        width_at_min: f64,
        /// Upper edge.
        maxval: f64,
        /// Width of the upper edge.
        width_at_max: f64,
    },
    /// `{type: lognormal, mean, sigma}`.
    LogNormal {
        /// Mean (linear units).
        mean: f64,
        /// Sigma (linear units).
        sigma: f64,
    },
    /// `{type: normal, mean, sigma}` (Rust extension; ngmixer's `priors.py` has no normal
    /// T/flux prior).
    Normal {
        /// Mean.
        mean: f64,
        /// Sigma.
        sigma: f64,
    },
    /// `{type: cosmos_exp}` (T only).
    CosmosExp,
    /// `{type: cosmos_dev}` (T only).
    CosmosDev,
    /// `{type: gmixnd, file, cov_factor}`: a Gaussian mixture read from a FITS file (path with
    /// `$VARS` to expand); covariances multiplied by `cov_factor` when given.
    GMixND {
        /// File name as written in the config.
        file: String,
        /// Covariance multiplier.
        cov_factor: Option<f64>,
    },
}

/// The file form of [`ScalarPrior`].
#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum RawScalar {
    #[serde(rename = "flat")]
    Flat { pars: [f64; 2] },
    #[serde(rename = "TwoSidedErf")]
    TwoSidedErf { pars: [f64; 4] },
    #[serde(rename = "lognormal")]
    LogNormal { mean: f64, sigma: f64 },
    #[serde(rename = "normal")]
    Normal { mean: f64, sigma: f64 },
    #[serde(rename = "cosmos_exp")]
    CosmosExp,
    #[serde(rename = "cosmos_dev")]
    CosmosDev,
    #[serde(rename = "gmixnd")]
    GMixND {
        file: String,
        #[serde(default)]
        cov_factor: Option<f64>,
    },
}

impl From<RawScalar> for ScalarPrior {
    fn from(r: RawScalar) -> Self {
        match r {
            RawScalar::Flat { pars } => ScalarPrior::Flat {
                min: pars[0],
                max: pars[1],
            },
            RawScalar::TwoSidedErf { pars } => ScalarPrior::two_sided_erf(pars),
            RawScalar::LogNormal { mean, sigma } => ScalarPrior::LogNormal { mean, sigma },
            RawScalar::Normal { mean, sigma } => ScalarPrior::Normal { mean, sigma },
            RawScalar::CosmosExp => ScalarPrior::CosmosExp,
            RawScalar::CosmosDev => ScalarPrior::CosmosDev,
            RawScalar::GMixND { file, cov_factor } => ScalarPrior::GMixND { file, cov_factor },
        }
    }
}

impl<'de> Deserialize<'de> for ScalarPrior {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawScalar::deserialize(d).map(ScalarPrior::from)
    }
}

impl ScalarPrior {
    fn two_sided_erf(p: [f64; 4]) -> Self {
        ScalarPrior::TwoSidedErf {
            minval: p[0],
            width_at_min: p[1],
            maxval: p[2],
            width_at_max: p[3],
        }
    }

    /// Check the parameters (positive widths and sigmas, ordered bounds).
    pub fn check(&self) -> Result<(), String> {
        match *self {
            ScalarPrior::Flat { min, max } if !(min < max) => {
                Err(format!("flat prior needs min < max, got [{min}, {max}]"))
            }
            ScalarPrior::TwoSidedErf {
                width_at_min,
                width_at_max,
                minval,
                maxval,
            } if !(width_at_min > 0.0 && width_at_max > 0.0 && minval < maxval) => Err(format!(
                "TwoSidedErf prior needs minval < maxval and positive widths, got \
                 [{minval}, {width_at_min}, {maxval}, {width_at_max}]"
            )),
            ScalarPrior::LogNormal { mean, sigma } if !(mean > 0.0 && sigma > 0.0) => Err(format!(
                "lognormal prior needs mean > 0 and sigma > 0, got {mean}, {sigma}"
            )),
            ScalarPrior::Normal { sigma, .. } if !(sigma > 0.0) => {
                Err(format!("normal prior needs sigma > 0, got {sigma}"))
            }
            ScalarPrior::GMixND {
                cov_factor: Some(f),
                ..
            } if !(f > 0.0) => Err(format!("gmixnd cov_factor must be > 0, got {f}")),
            _ => Ok(()),
        }
    }
}

/// Flux priors: the same prior for every band (`repeat: true`), or one per band.
#[derive(Debug, Clone, PartialEq)]
pub enum CountsPriorSpec {
    /// One prior used for every band.
    Repeat(ScalarPrior),
    /// One prior per band (the list length must equal the number of bands).
    PerBand(Vec<ScalarPrior>),
}

impl CountsPriorSpec {
    /// The per-band priors for `nband` bands.
    ///
    /// # Errors
    /// A message when a per-band list has the wrong length, or a `gmixnd` flux prior is used
    /// with more than one band (ngmixer supports that for one band only).
    pub fn for_nband(&self, nband: usize) -> Result<Vec<ScalarPrior>, String> {
        match self {
            CountsPriorSpec::Repeat(p) => {
                if matches!(p, ScalarPrior::GMixND { .. }) && nband > 1 {
                    return Err(format!(
                        "a gmixnd counts prior only works for one band, there are {nband}"
                    ));
                }
                Ok(vec![p.clone(); nband])
            }
            CountsPriorSpec::PerBand(v) => {
                if v.len() != nband {
                    Err(format!(
                        "counts prior must have one entry per band: {} given for {nband} bands",
                        v.len()
                    ))
                } else {
                    Ok(v.clone())
                }
            }
        }
    }

    /// All priors mentioned (for parameter checks).
    pub fn priors(&self) -> &[ScalarPrior] {
        match self {
            CountsPriorSpec::Repeat(p) => std::slice::from_ref(p),
            CountsPriorSpec::PerBand(v) => v,
        }
    }
}

/// `pars` of a counts prior: one list, or a list of per-band lists.
enum BandPars {
    Single(Vec<f64>),
    PerBand(Vec<Vec<f64>>),
}

impl<'de> Deserialize<'de> for BandPars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = || {
            de::Error::custom(
                "`pars` must be a list of numbers, or a list of per-band lists of numbers",
            )
        };
        let Value::Seq(items) = Value::deserialize(d)? else {
            return Err(bad());
        };
        if items.iter().all(|v| matches!(v, Value::Seq(_))) && !items.is_empty() {
            let mut out = Vec::with_capacity(items.len());
            for v in &items {
                let Value::Seq(inner) = v else {
                    return Err(bad());
                };
                let nums: Option<Vec<f64>> = inner.iter().map(Value::as_f64).collect();
                out.push(nums.ok_or_else(bad)?);
            }
            Ok(BandPars::PerBand(out))
        } else {
            let nums: Option<Vec<f64>> = items.iter().map(Value::as_f64).collect();
            nums.map(BandPars::Single).ok_or_else(bad)
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum RawCounts {
    #[serde(rename = "flat")]
    Flat {
        pars: BandPars,
        #[serde(default)]
        repeat: Option<bool>,
    },
    #[serde(rename = "TwoSidedErf")]
    TwoSidedErf {
        pars: BandPars,
        #[serde(default)]
        repeat: Option<bool>,
    },
    #[serde(rename = "lognormal")]
    LogNormal {
        mean: f64,
        sigma: f64,
        #[serde(default)]
        repeat: Option<bool>,
    },
    #[serde(rename = "gmixnd")]
    GMixND {
        file: String,
        #[serde(default)]
        cov_factor: Option<f64>,
    },
}

fn band_pars(
    name: &str,
    n: usize,
    pars: BandPars,
    repeat: Option<bool>,
    make: impl Fn(&[f64]) -> ScalarPrior,
) -> Result<CountsPriorSpec, String> {
    let check = |p: &[f64]| {
        if p.len() == n {
            Ok(())
        } else {
            Err(format!(
                "a {name} counts prior needs {n} parameters, got {}",
                p.len()
            ))
        }
    };
    match (pars, repeat) {
        (BandPars::Single(p), None | Some(true)) => {
            check(&p)?;
            Ok(CountsPriorSpec::Repeat(make(&p)))
        }
        (BandPars::PerBand(v), None | Some(false)) => {
            let mut out = Vec::with_capacity(v.len());
            for p in &v {
                check(p)?;
                out.push(make(p));
            }
            Ok(CountsPriorSpec::PerBand(out))
        }
        (BandPars::Single(_), Some(false)) => Err(format!(
            "`repeat: false` needs `pars` as a list of per-band {name} parameter lists"
        )),
        (BandPars::PerBand(_), Some(true)) => Err(format!(
            "`repeat: true` needs `pars` as one list of {name} parameters"
        )),
    }
}

impl TryFrom<RawCounts> for CountsPriorSpec {
    type Error = String;
    fn try_from(r: RawCounts) -> Result<Self, String> {
        match r {
            RawCounts::Flat { pars, repeat } => {
                band_pars("flat", 2, pars, repeat, |p| ScalarPrior::Flat {
                    min: p[0],
                    max: p[1],
                })
            }
            RawCounts::TwoSidedErf { pars, repeat } => {
                band_pars("TwoSidedErf", 4, pars, repeat, |p| {
                    ScalarPrior::two_sided_erf([p[0], p[1], p[2], p[3]])
                })
            }
            RawCounts::LogNormal {
                mean,
                sigma,
                repeat,
            } => {
                if repeat == Some(false) {
                    Err(
                        "a lognormal counts prior must be repeated over bands (ngmixer reads \
                         one mean and sigma)"
                            .to_string(),
                    )
                } else {
                    Ok(CountsPriorSpec::Repeat(ScalarPrior::LogNormal {
                        mean,
                        sigma,
                    }))
                }
            }
            RawCounts::GMixND { file, cov_factor } => {
                Ok(CountsPriorSpec::Repeat(ScalarPrior::GMixND {
                    file,
                    cov_factor,
                }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for CountsPriorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawCounts::deserialize(d)?;
        CountsPriorSpec::try_from(raw).map_err(de::Error::custom)
    }
}

/// The `fracdev` prior of `cm`: a one-dimensional Gaussian mixture.
#[derive(Debug, Clone, PartialEq)]
pub enum FracdevPriorSpec {
    /// From a FITS table with columns `weights`, `means`, `covars` (path with `$VARS`/`~`).
    File(String),
    /// Given inline.
    Inline {
        /// Component weights.
        weights: Vec<f64>,
        /// Component means.
        means: Vec<f64>,
        /// Component variances.
        covars: Vec<f64>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFracdev {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    weights: Option<Value>,
    #[serde(default)]
    means: Option<Value>,
    #[serde(default)]
    covars: Option<Value>,
}

/// Flatten `[a, b]`, `[[a], [b]]` or `[[[a]], [[b]]]` into `[a, b]`.
fn flatten_1d(name: &str, v: &Value) -> Result<Vec<f64>, String> {
    fn one(name: &str, v: &Value) -> Result<f64, String> {
        match v {
            Value::Seq(inner) if inner.len() == 1 => one(name, &inner[0]),
            _ => v
                .as_f64()
                .ok_or_else(|| format!("`{name}` must hold numbers (a 1-D mixture)")),
        }
    }
    match v {
        Value::Seq(items) => items.iter().map(|x| one(name, x)).collect(),
        _ => Err(format!("`{name}` must be a list")),
    }
}

impl TryFrom<RawFracdev> for FracdevPriorSpec {
    type Error = String;
    fn try_from(r: RawFracdev) -> Result<Self, String> {
        if let Some(k) = &r.kind {
            if k != "gmixnd" {
                return Err(format!(
                    "unknown fracdev prior type `{k}`, only `gmixnd` is supported"
                ));
            }
        }
        // ngmixer checks `file` first, then the inline form.
        if let Some(f) = r.file {
            return Ok(FracdevPriorSpec::File(f));
        }
        match (r.weights, r.means, r.covars) {
            (Some(w), Some(m), Some(c)) => {
                let weights = flatten_1d("weights", &w)?;
                let means = flatten_1d("means", &m)?;
                let covars = flatten_1d("covars", &c)?;
                if weights.len() != means.len() || means.len() != covars.len() || weights.is_empty()
                {
                    return Err(format!(
                        "fracdev prior: weights, means and covars must have the same non-zero \
                         length, got {}, {} and {}",
                        weights.len(),
                        means.len(),
                        covars.len()
                    ));
                }
                Ok(FracdevPriorSpec::Inline {
                    weights,
                    means,
                    covars,
                })
            }
            _ => Err(
                "set either `file` or all of `weights`, `means`, `covars` for the fracdev \
                      prior"
                    .to_string(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for FracdevPriorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawFracdev::deserialize(d)?;
        FracdevPriorSpec::try_from(raw).map_err(de::Error::custom)
    }
}

/// `model_pars`: galaxy model → prior spec, in file order. A `null` entry means "no prior".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelPars {
    /// The entries in file order (model names are unique).
    pub entries: Vec<(GalaxyModel, Option<ModelPriorSpec>)>,
}

impl ModelPars {
    /// The models, in file order.
    pub fn models(&self) -> Vec<GalaxyModel> {
        self.entries.iter().map(|(m, _)| *m).collect()
    }

    /// Whether `model` has an entry (possibly `null`).
    pub fn contains(&self, model: GalaxyModel) -> bool {
        self.entries.iter().any(|(m, _)| *m == model)
    }

    /// The prior spec of `model`; `None` when absent or `null`.
    pub fn prior(&self, model: GalaxyModel) -> Option<&ModelPriorSpec> {
        self.entries
            .iter()
            .find(|(m, _)| *m == model)
            .and_then(|(_, p)| p.as_ref())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'de> Deserialize<'de> for ModelPars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelPars;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of galaxy model name to prior spec")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModelPars, A::Error> {
                let mut entries: Vec<(GalaxyModel, Option<ModelPriorSpec>)> = Vec::new();
                while let Some(model) = map.next_key::<GalaxyModel>()? {
                    let spec = map.next_value::<Option<ModelPriorSpec>>()?;
                    if entries.iter().any(|(m, _)| *m == model) {
                        return Err(de::Error::custom(format!("model `{model}` given twice")));
                    }
                    entries.push((model, spec));
                }
                Ok(ModelPars { entries })
            }
        }
        d.deserialize_map(V)
    }
}
