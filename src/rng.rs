//! Seeded random streams.
//!
//! Every object gets its own ChaCha8 stream derived from the run seed and the object id, so a
//! result never depends on how objects are scheduled over threads or processes.
//!
//! Derivation ([`object_rng`]):
//!
//! * the 256-bit ChaCha key is the first four outputs of SplitMix64 started at `run_seed`
//!   (little-endian words, output `i` is `mix64(run_seed + (i+1) * 0x9e3779b97f4a7c15)`);
//! * the ChaCha stream number (the 64-bit nonce) is `object_id` reinterpreted as `u64`
//!   (two's complement, so negative ids are fine);
//! * the stream starts at word position 0.
//!
//! Distinct seeds give distinct keys (SplitMix64's finaliser is a bijection) and distinct ids
//! give distinct ChaCha streams, so every `(run_seed, object_id)` pair has its own sequence.
//!
//! The deviates ([`uniform`], [`uniform_range`], [`normal`]) are plain functions generic over
//! `R: rand_core::Rng + ?Sized`, so they work with `&mut dyn Rng` as well.

use rand_core::{Rng, SeedableRng};

/// The per-object random number generator (ChaCha with 8 rounds).
pub type ObjRng = rand_chacha::ChaCha8Rng;

/// SplitMix64 increment (the golden-ratio constant).
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 output finaliser (Stafford's "mix13"); a bijection of `u64`.
#[inline]
fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 32-byte ChaCha key used by [`object_rng`] for `run_seed`: four successive SplitMix64
/// outputs, each written little-endian.
pub fn run_key(run_seed: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    let mut state = run_seed;
    for chunk in key.chunks_exact_mut(8) {
        state = state.wrapping_add(SPLITMIX_GAMMA);
        chunk.copy_from_slice(&splitmix64_mix(state).to_le_bytes());
    }
    key
}

/// The random stream of one object: ChaCha8 keyed by [`run_key`]`(run_seed)` on stream
/// `object_id as u64` (see the module docs). Deterministic and independent of threading.
pub fn object_rng(run_seed: u64, object_id: i64) -> ObjRng {
    let mut rng = ObjRng::from_seed(run_key(run_seed));
    rng.set_stream(object_id as u64);
    rng
}

/// A uniform deviate in `[0, 1)`: the top 53 bits of one `next_u64`, times 2⁻⁵³.
/// Every value is a multiple of 2⁻⁵³; 1 is never returned.
#[inline]
pub fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// A uniform deviate in `[lo, hi)`: `lo + (hi - lo) * u` with `u = `[`uniform`]`(rng)`
/// (numpy's `uniform(low, high)` formula). Rounding can give `hi` itself when `|hi - lo|` is
/// much smaller than `|lo|`.
#[inline]
pub fn uniform_range<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform(rng)
}

/// A standard normal deviate, by the Box–Muller transform:
/// `sqrt(-2 ln(1 - u1)) * cos(2π u2)` with `u1, u2` two successive [`uniform`] draws.
/// `1 - u1` lies in `(0, 1]`, so the logarithm is always finite; the sine partner is
/// discarded so each call consumes exactly two `next_u64` values.
#[inline]
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = uniform(rng);
    let u2 = uniform(rng);
    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
    r * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // SplitMix64 seeded with 0: first outputs as published with the reference C code
        // (Vigna, splitmix64.c): 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, ...
        let key = run_key(0);
        let w0 = u64::from_le_bytes(key[0..8].try_into().unwrap_or_default());
        let w1 = u64::from_le_bytes(key[8..16].try_into().unwrap_or_default());
        assert_eq!(w0, 0xe220_a839_7b1d_cdaf);
        assert_eq!(w1, 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn streams_differ_and_repeat() {
        let mut a = object_rng(1, 5);
        let mut b = object_rng(1, 5);
        let mut c = object_rng(1, 6);
        let mut d = object_rng(2, 5);
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        let xd: Vec<u64> = (0..4).map(|_| d.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(xa, xd);
    }
}
