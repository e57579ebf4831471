//! Observations: image, weight, Jacobian, PSF; per-band epoch lists and multi-band sets.
