//! Output catalogues (FITS schema of the original ngmixer).
