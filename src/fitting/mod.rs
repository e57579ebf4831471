//! Fitting: EM and adaptive-moment PSF fits, Levenberg–Marquardt max-likelihood fits.
