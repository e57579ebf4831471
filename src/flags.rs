//! Flag bits and sentinels of the ngmixer output schema (`defaults.py`).

/// No PSF fit succeeded, a band lost all its epochs, or the PSF stage failed.
pub const PSF_FIT_FAILURE: i32 = 1 << 0;
/// The galaxy max-likelihood fit failed (or a range error on the model).
pub const GAL_FIT_FAILURE: i32 = 1 << 1;
/// A band's PSF template flux fit was flagged.
pub const PSF_FLUX_FIT_FAILURE: i32 = 1 << 2;
/// The best band PSF-flux S/N is below `min_psf_s2n`.
pub const LOW_PSF_FLUX: i32 = 1 << 3;
/// Forced photometry: the model row was flagged.
pub const FORCEPHOT_BAD_MODEL: i32 = 1 << 4;
/// Forced photometry: the template flux failed.
pub const FORCEPHOT_FAILURE: i32 = 1 << 5;
/// Object id in the hard-coded blacklist.
pub const OBJECT_IN_BLACKLIST: i32 = 1 << 24;
/// `obj_flags != 0`.
pub const BAD_OBJ: i32 = 1 << 25;
/// A band has no usable cutouts (also the per-observation placeholder flag).
pub const IMAGE_FLAGS: i32 = 1 << 26;
/// A band has no cutouts.
pub const NO_CUTOUTS: i32 = 1 << 27;
/// Box larger than `max_box_size`.
pub const BOX_SIZE_TOO_BIG: i32 = 1 << 28;
/// The fitter failed outright.
pub const UTTER_FAILURE: i32 = 1 << 29;
/// Default / nothing fitted.
pub const NO_ATTEMPT: i32 = 1 << 30;

/// OR-ed into `<model>_flags` when metacal failed (same value as `FORCEPHOT_BAD_MODEL`).
pub const METACAL_FAILURE: i32 = 1 << 4;

/// Objects never fitted (ngmixer `object_blacklist`).
pub const OBJECT_BLACKLIST: [i64; 2] = [3126629751, 3126910598];

/// MOF: a neighbour did not converge.
pub const MOF_NBR_NOT_CONVERGED: i32 = 1 << 0;
/// MOF: a neighbour's fit is flagged.
pub const MOF_NBR_BAD_FIT: i32 = 1 << 1;
/// MOF: a neighbour was not fitted.
pub const MOF_NBR_NOT_FIT: i32 = 1 << 2;
/// MOF: a neighbour was skipped in the convergence check.
pub const MOF_NBR_SKIPPED_IN_CONV_CHECK: i32 = 1 << 3;
/// MOF: a FoF member did not converge.
pub const MOF_FOFMEM_NOT_CONVERGED: i32 = 1 << 4;
/// MOF: a FoF member's fit is flagged.
pub const MOF_FOFMEM_BAD_FIT: i32 = 1 << 5;
/// MOF: a FoF member was not fitted.
pub const MOF_FOFMEM_NOT_FIT: i32 = 1 << 6;
/// MOF: a FoF member was skipped in the convergence check.
pub const MOF_FOFMEM_SKIPPED_IN_CONV_CHECK: i32 = 1 << 7;
/// MOF: this object did not converge.
pub const MOF_NOT_CONVERGED: i32 = 1 << 8;
/// MOF: this object was skipped in the convergence check.
pub const MOF_SKIPPED_IN_CONV_CHECK: i32 = 1 << 9;
/// `nbrs_data`: the neighbour has no PSF fit.
pub const NBR_HAS_NO_PSF_FIT: i32 = 1 << 30;

/// Default value of most columns.
pub const DEFVAL: f64 = -9999.0;
/// Positive default (errors).
pub const PDEFVAL: f64 = 9999.0;
/// Big default.
pub const BIG_DEFVAL: f64 = -9.999e9;
/// Big positive default.
pub const BIG_PDEFVAL: f64 = 9.999e9;
