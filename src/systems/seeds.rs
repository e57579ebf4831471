//! The per-chunk seeds of the original megamixers: `numpy.random.RandomState(seed)` and
//! `randint(1, 1000000000)` per chunk in chunk order (spec §8.1, §8.2, §11 item 53).
//!
//! numpy seeds its legacy generator from an integer with MT19937's `init_genrand` and draws a
//! bounded integer by masking 32-bit outputs to the smallest covering power of two and
//! rejecting values above the range.

use crate::error::{Error, Result};

const N: usize = 624;
const M: usize = 397;

/// numpy's legacy `RandomState` (MT19937), as far as the megamixers use it.
#[derive(Debug, Clone)]
pub struct RandomState {
    mt: [u32; N],
    idx: usize,
}

impl RandomState {
    /// `RandomState(seed)`; numpy accepts `0 <= seed < 2^32`.
    ///
    /// # Errors
    /// A seed outside that range (numpy raises `ValueError`).
    pub fn new(seed: u64) -> Result<Self> {
        let s = u32::try_from(seed).map_err(|_| {
            Error::Usage(format!(
                "--seed {seed}: the per-chunk seed generator (numpy RandomState) takes seeds \
                 from 0 to 2^32-1"
            ))
        })?;
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1812433253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Ok(Self { mt, idx: N })
    }

    fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            for i in 0..N {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(i + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `randint(low, high)`: uniform in `[low, high)` (`high - low - 1 < 2^32`).
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        let rng = (high - low - 1) as u64;
        if rng == 0 {
            return low;
        }
        let mut mask = rng;
        for s in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> s;
        }
        loop {
            let v = u64::from(self.next_u32()) & mask;
            if v <= rng {
                return low + v as i64;
            }
        }
    }

    /// The seeds of `n` chunks: `randint(1, 1e9)` each, in chunk order.
    pub fn chunk_seeds(&mut self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| self.randint(1, 1_000_000_000) as u64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_output() {
        // MT19937 reference: the 10000th output of init_genrand(5489) is 4123659995
        let mut r = RandomState::new(5489).unwrap();
        let mut last = 0;
        for _ in 0..10000 {
            last = r.next_u32();
        }
        assert_eq!(last, 4123659995);
    }

    #[test]
    fn seeds_above_32_bits_are_refused() {
        assert!(RandomState::new(1 << 32).is_err());
    }
}
