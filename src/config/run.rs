//! megamixit run config (spec §2.3) and neighbour config (spec §2.4).

use std::path::Path;

use serde::Deserialize;

use super::enums::{BuffType, ConcatType};
use super::yaml::{self, RawNode};

/// A megamixit run config, `run_config/run-<run>.yaml` (Y1 layout).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run name (must match the file name `run-<run>.yaml` when `$NGMIXER_CONFIG_DIR` is used).
    pub run: String,
    /// MEDS version (path component and file-name part).
    pub meds_version: String,
    /// Neighbour-data version (or give `nbrs_config`).
    #[serde(default)]
    pub nbrs_version: Option<String>,
    /// Neighbour config file (alternative to `nbrs_version`).
    #[serde(default)]
    pub nbrs_config: Option<String>,
    /// Object-flags version (needed for MOF runs that use `--obj-flags`).
    #[serde(default)]
    pub obj_flags_version: Option<String>,
    /// MOF catalogue version used for neighbour subtraction.
    #[serde(default)]
    pub mof_version: Option<String>,
    /// FoFs per chunk.
    pub num_fofs_per_chunk: u32,
    /// Band letters in MEDS file order.
    pub bands: Vec<String>,
    /// Collation class.
    #[serde(default)]
    pub concat_type: Option<ConcatType>,
    /// Batch queue (overridden by `--queue`).
    #[serde(default)]
    pub queue: Option<String>,
    /// Output directory when `$NGMIXER_OUTPUT_DIR` is unset.
    #[serde(default)]
    pub output_dir: Option<String>,
    /// Fitting config file (default `ngmix-<run>.yaml`).
    #[serde(default)]
    pub ngmix_config: Option<String>,
    /// Fixed seed: when present, no `--seed` is written into the chunk scripts.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Informational: ngmix version used.
    #[serde(default)]
    pub ngmix_info: Option<SoftwareInfo>,
    /// Informational: ngmixer version used.
    #[serde(default)]
    pub ngmixer_info: Option<SoftwareInfo>,
    /// Informational: GalSim version used.
    #[serde(default)]
    pub galsim_info: Option<SoftwareInfo>,
    /// Informational: PSFEx version used.
    #[serde(default)]
    pub psfex_info: Option<SoftwareInfo>,
    /// Informational: PSFEx version used (older spelling).
    #[serde(default)]
    pub psfex: Option<SoftwareInfo>,
}

/// A megamix-meds tile-list config (spec §1.3): the MEDS configuration and either a DES
/// tileset name or explicit tile ids.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileListConfig {
    /// MEDS configuration name.
    pub medsconf: String,
    /// DES tileset (resolved through desmeds).
    #[serde(default)]
    pub tileset: Option<String>,
    /// Explicit tile ids.
    #[serde(default)]
    pub tile_ids: Option<Vec<String>>,
}

impl TileListConfig {
    /// Check that exactly one of `tileset` and `tile_ids` is given.
    ///
    /// # Errors
    /// A message naming the keys.
    pub fn check(&self) -> Result<(), String> {
        match (&self.tileset, &self.tile_ids) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            (Some(_), Some(_)) => Err("give either `tileset` or `tile_ids`, not both".into()),
            (None, None) => Err("missing key `tileset` or `tile_ids`".into()),
        }
    }
}

/// A software version record (informational).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftwareInfo {
    /// Git branch.
    pub branch: String,
    /// Git hash.
    pub hash: String,
}

impl RunConfig {
    /// The fitting config file name: `ngmix_config`, else `ngmix-<run>.yaml`.
    pub fn ngmix_config_name(&self) -> String {
        self.ngmix_config
            .clone()
            .unwrap_or_else(|| format!("ngmix-{}.yaml", self.run))
    }
}

/// Neighbour-finding parameters (`nbrs:`, Y1 `nbrs_pars:`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NbrsPars {
    /// Buffer rule.
    pub buff_type: BuffType,
    /// Buffer fraction (required overlap = `buff_frac` × size rule).
    pub buff_frac: f64,
    /// Boxes of exactly this size are treated as `new_maxsize` (-1: none).
    pub maxsize_to_replace: i64,
    /// Replacement box size.
    pub new_maxsize: i64,
    /// Also take every other object number in the coadd seg cutout as a neighbour.
    pub check_seg: bool,
}

/// Which key a neighbour config used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NbrsKey {
    /// HEAD `nbrs:`.
    Nbrs,
    /// Y1 `nbrs_pars:`.
    NbrsPars,
}

/// A neighbour config: a Y1 `nbrs_config/nbrs-<v>.yaml` file (`nbrs_version`, `nbrs_pars`),
/// or any config with an `nbrs:` section (the HEAD neighbour program reads the fitting
/// config). Keys other than `run`, `nbrs_version`, `nbrs`, `nbrs_pars` are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawNode")]
pub struct NbrsConfig {
    /// Run name, when given.
    pub run: Option<String>,
    /// Y1 neighbour version, when given.
    pub nbrs_version: Option<String>,
    /// The parameters.
    pub pars: NbrsPars,
    /// Which key held them.
    pub key: NbrsKey,
}

impl TryFrom<RawNode> for NbrsConfig {
    type Error = String;
    fn try_from(raw: RawNode) -> Result<Self, String> {
        let node = raw.0;
        if node.as_map().is_none() {
            return Err(format!(
                "top level: a neighbour config must be a mapping of keys, found {}",
                node.type_name()
            ));
        }
        let (key, name, sub) = match (node.get("nbrs"), node.get("nbrs_pars")) {
            (Some(_), Some(p)) => {
                return Err(format!(
                    "key `nbrs_pars` ({}): give either `nbrs` (HEAD) or `nbrs_pars` (Y1), not both",
                    p.loc()
                ))
            }
            (Some(n), None) => (NbrsKey::Nbrs, "nbrs", n),
            (None, Some(n)) => (NbrsKey::NbrsPars, "nbrs_pars", n),
            (None, None) => {
                return Err("top level: missing key `nbrs` (or Y1 `nbrs_pars`)".to_string())
            }
        };
        let pars: NbrsPars = yaml::from_node_at(sub, name).map_err(|e| e.render())?;
        let text = |k: &str| -> Result<Option<String>, String> {
            match node.get(k) {
                None => Ok(None),
                Some(n) => yaml::from_node_at::<Option<String>>(n, k).map_err(|e| e.render()),
            }
        };
        Ok(NbrsConfig {
            run: text("run")?,
            nbrs_version: text("nbrs_version")?,
            pars,
            key,
        })
    }
}

/// The run name implied by a config file name: base name minus `.yaml`, first `-`-separated
/// token dropped (`run-y1a1-main-mof-001.yaml` → `y1a1-main-mof-001`).
pub fn run_name_from_file(path: &Path) -> Option<String> {
    let base = path.file_name()?.to_str()?;
    let stem = base.strip_suffix(".yaml").unwrap_or(base);
    let mut parts = stem.split('-');
    parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        None
    } else {
        Some(rest.join("-"))
    }
}

/// Check ngmixer's rule that the `run` key matches the file name (`run-<run>.yaml`).
///
/// # Errors
/// [`crate::Error::Config`] when they differ (or the file name has no run part).
pub fn check_run_name(path: &Path, run: &str) -> crate::Result<()> {
    match run_name_from_file(path) {
        Some(r) if r == run => Ok(()),
        other => Err(crate::Error::Config {
            file: path.display().to_string(),
            msg: format!(
                "key `run`: run in config '{run}' does not match the file name (expected \
                 'run-{run}.yaml'{})",
                other
                    .map(|o| format!(", the name gives '{o}'"))
                    .unwrap_or_default()
            ),
        }),
    }
}
