//! Shear blinding of a collated catalogue (`collate.blinding`, spec §8.3).
//!
//! The original calls an external, unpublished DES routine
//! (`blind_des_catalog_y3.blind_arrays(g1, g2)`); the spec does not define its factor. This
//! module applies the Y3-style transform with a factor the caller supplies: the shear is
//! written as `|g| = tanh(η/2)` and its rapidity scaled, `η → f·η`, keeping the direction, so
//! blinded shears stay inside the unit disk. A factor can be given directly or derived from a
//! secret phrase ([`Blinding::from_secret`], uniform in `[0.9, 1.1)`), so that nobody reading
//! the catalogue or the run config learns it.

/// A blinding transform of reduced shears.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blinding {
    factor: f64,
}

impl Blinding {
    /// Scale rapidities by `factor` (must be finite and positive).
    ///
    /// # Panics
    /// When `factor` is not finite and positive (a programming error).
    pub fn from_factor(factor: f64) -> Self {
        assert!(
            factor.is_finite() && factor > 0.0,
            "blinding factor must be finite and positive, not {factor}"
        );
        Self { factor }
    }

    /// A factor in `[0.9, 1.1)` derived from `secret` (FNV-1a 64 of its bytes, then a
    /// splitmix64 finaliser): the same phrase always gives the same factor.
    pub fn from_secret(secret: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in secret.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        Self::from_factor(0.9 + 0.2 * u)
    }

    /// The factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The blinded shear of `(g1, g2)`: `|g'| = tanh(f·atanh|g|)`, same position angle.
    /// `|g| >= 1` or non-finite shears are returned unchanged (they are flagged anyway).
    pub fn apply(&self, g1: f64, g2: f64) -> (f64, f64) {
        let g = g1.hypot(g2);
        if !(g > 0.0) || !(g < 1.0) {
            return (g1, g2);
        }
        let gb = (self.factor * g.atanh()).tanh();
        (g1 * gb / g, g2 * gb / g)
    }
}
