//! PSFEx PSF models (`.psf` files).
