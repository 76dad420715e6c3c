//! Helpers shared by the tests.

pub mod migrate;
pub mod tree;

/// xorshift64*: a deterministic generator, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A bitmap word: empty, full, or random, in equal parts.
    #[allow(dead_code)] // not every test file uses it
    pub fn word(&mut self) -> usize {
        match self.next() % 4 {
            0 => 0,
            1 => usize::MAX,
            _ => self.next() as usize,
        }
    }
}
