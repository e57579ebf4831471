//! `Fitter<I: ImageSource>`: the max-likelihood fitter over all objects of an image source,
//! in parallel, deterministic for a given seed whatever the thread count.

use rayon::prelude::*;

use crate::error::Result;
use crate::fitter::{FitterSettings, ObjectObs};
use crate::output::Table;
use crate::rng::object_rng;
use crate::traits::ImageSource;

/// The fitted catalogue of a run.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// `model_fits`, one row per object in source order.
    pub model_fits: Table,
    /// `epoch_data`.
    pub epoch_data: Table,
}

/// Fits every object of an [`ImageSource`].
#[derive(Debug)]
pub struct Fitter<I: ImageSource> {
    source: I,
    settings: FitterSettings,
    seed: u64,
}

impl<I: ImageSource + Sync> Fitter<I> {
    /// A fitter over `source` with the run seed `seed` (object `id` selects the stream).
    pub fn new(source: I, settings: FitterSettings, seed: u64) -> Self {
        Self {
            source,
            settings,
            seed,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &FitterSettings {
        &self.settings
    }

    /// The source.
    pub fn source(&self) -> &I {
        &self.source
    }

    /// Empty output tables with this fitter's schema.
    pub fn empty_catalog(&self) -> Catalog {
        Catalog {
            model_fits: Table::new(self.settings.model_fits_specs()),
            epoch_data: Table::new(self.settings.epoch_specs()),
        }
    }

    /// Fit one object (source index `k`) into fresh one-object tables.
    pub fn fit_one(&self, src: &mut I, k: usize) -> Result<Catalog> {
        let mut obj = ObjectObs::default();
        src.read_object(k, &mut obj)?;
        let mut cat = self.empty_catalog();
        let mut rng = object_rng(self.seed, obj.meta.id);
        self.settings
            .fit_object(&mut obj, &mut rng, &mut cat.model_fits, &mut cat.epoch_data);
        Ok(cat)
    }

    /// Fit objects `range` (source indices) in parallel on the current rayon pool; `progress`
    /// is called once per finished object. Rows come out in source order.
    pub fn run_range(
        &self,
        range: std::ops::Range<usize>,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Catalog> {
        let parts: Vec<Result<Catalog>> = range
            .into_par_iter()
            .map_init(
                || self.source.reopen(),
                |src, k| {
                    let src = match src {
                        Ok(s) => s,
                        Err(e) => {
                            return Err(crate::Error::Invalid(format!(
                                "cannot reopen the image source: {e}"
                            )))
                        }
                    };
                    let r = self.fit_one(src, k);
                    progress();
                    r
                },
            )
            .collect();
        let mut cat = self.empty_catalog();
        for p in parts {
            let p = p?;
            cat.model_fits.append(&p.model_fits);
            cat.epoch_data.append(&p.epoch_data);
        }
        Ok(cat)
    }
}
