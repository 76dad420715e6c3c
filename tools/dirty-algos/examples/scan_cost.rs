//! What a double buffer would save over the shared bitmap's exchange scan
//! (Documentation/shared-bitmap.rst, "Why not a double buffer").
//!
//! A 64 MiB bitmap (2 TiB of 4 KiB pages) is filled with a fraction of
//! dirty words, then taken three ways: `scan()` of rust/algo/shared_bitmap.rs
//! (a relaxed load per word, an exchange per dirty word), a plain load and
//! store per dirty word (what a quiet buffer of a double buffer allows),
//! and, for scale, one 4 KiB copy per dirty word: the least copying a dirty
//! word asks for.  Best of five passes each.
//!
//!     cargo run --release --example scan_cost

use dirty_algos::shared_bitmap::{scan, BITS_PER_WORD};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const WORDS: usize = 8 << 20;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn fill(bitmap: &[AtomicUsize], per_mille: u64, seed: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut dirty = 0;
    for w in bitmap {
        let v = if rng.next() % 1000 < per_mille {
            dirty += 1;
            (rng.next() as usize) | 1
        } else {
            0
        };
        w.store(v, Ordering::Relaxed);
    }
    dirty
}

fn best(mut pass: impl FnMut() -> Duration) -> Duration {
    (0..5).map(|_| pass()).min().unwrap()
}

fn main() {
    let bitmap: Vec<AtomicUsize> = (0..WORDS).map(|_| AtomicUsize::new(0)).collect();
    let page = vec![0x5au8; 4096];
    let mut dest = vec![0u8; 4096];
    println!(
        "{} MiB bitmap, {} pages; times are the best of 5 passes",
        (WORDS * 8) >> 20,
        WORDS * BITS_PER_WORD
    );
    println!("dirty words   exchange scan   plain load+store   4 KiB copy per dirty word");
    for per_mille in [0, 10, 100, 500, 1000] {
        let mut dirty = 0;
        let xchg = best(|| {
            dirty = fill(&bitmap, per_mille, 7);
            let t = Instant::now();
            let s = scan(&bitmap, |first, mask| {
                black_box((first, mask));
            });
            let e = t.elapsed();
            assert_eq!(s.dirty_words, dirty);
            e
        });
        let plain = best(|| {
            fill(&bitmap, per_mille, 7);
            let t = Instant::now();
            for (i, w) in bitmap.iter().enumerate() {
                let m = w.load(Ordering::Relaxed);
                if m != 0 {
                    w.store(0, Ordering::Relaxed);
                    black_box((i, m));
                }
            }
            t.elapsed()
        });
        let copy = best(|| {
            let t = Instant::now();
            for _ in 0..dirty {
                dest.copy_from_slice(black_box(&page));
                black_box(&mut dest);
            }
            t.elapsed()
        });
        println!(
            "{:>5.1} %   {:>10.1} ms   {:>13.1} ms   {:>14.1} ms",
            per_mille as f64 / 10.0,
            xchg.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3,
            copy.as_secs_f64() * 1e3
        );
    }
}
