//! Fitting: EM and adaptive-moment PSF fits, Levenberg–Marquardt max-likelihood fits.

pub mod admom;
pub mod boot;
pub mod em;
pub mod kernel;
pub mod lm;
pub mod maxlike;

pub mod cm;
pub mod psf;
