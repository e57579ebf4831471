//! MEDS cutout files (feature `des-y1`).
