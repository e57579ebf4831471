//! Pixel kernels: rendering, log-likelihood and weighted residuals.
