//! SplitMix64: tiny, fast, and its output never changes between releases, so a `seed` always
//! gives the same rows (test expectations depend on that).

#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// An independent stream for (seed, a, b): the values of one field of one row.
    pub fn derive(seed: u64, a: u64, b: u64) -> Self {
        let mut s = SplitMix64(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let x = s.next_u64();
        SplitMix64(x ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: i128, hi: i128) -> i128 {
        let span = (hi - lo) as u128 + 1;
        let r = ((self.next_u64() as u128) << 64 | self.next_u64() as u128) % span;
        lo + r as i128
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn seed_from_clock() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    SplitMix64::new(nanos ^ std::process::id() as u64).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_stable_across_releases() {
        let mut r = SplitMix64::new(42);
        assert_eq!(r.next_u64(), 0xBDD7_3226_2FEB_6E95);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert!((0..1000).all(|_| (-3..=3).contains(&r.between(-3, 3))));
    }
}
