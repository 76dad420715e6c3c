//! Word-level properties of rust/algo/harvest.rs.

mod common;
use common::Rng;

use dirty_algos::harvest::{harvest, BITS_PER_WORD};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

fn bitmap(words: &[usize]) -> Vec<AtomicUsize> {
    words.iter().map(|&w| AtomicUsize::new(w)).collect()
}

fn pages_of(words: &[usize]) -> Vec<usize> {
    let mut v = Vec::new();
    for (i, &w) in words.iter().enumerate() {
        for b in 0..BITS_PER_WORD {
            if w & (1 << b) != 0 {
                v.push(i * BITS_PER_WORD + b);
            }
        }
    }
    v
}

#[test]
fn every_set_bit_reported_once_and_cleared() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..500 {
        let len = (rng.next() % 40) as usize + 1;
        let words: Vec<usize> = (0..len)
            .map(|_| match rng.next() % 4 {
                0 => 0,
                1 => usize::MAX,
                2 => 1 << (rng.next() % 64),
                _ => rng.next() as usize,
            })
            .collect();
        let bm = bitmap(&words);
        let mut snap = vec![0xdead_beef; len];
        let mut protected = Vec::new();
        let stats = harvest(&bm, &mut snap, |first, mask| protected.push((first, mask)));

        assert_eq!(snap, words, "round {round}: snapshot is the bitmap");
        assert!(
            bm.iter().all(|w| w.load(Ordering::Relaxed) == 0),
            "cleared after"
        );
        // protect() saw exactly the dirty words, in order, at the right page.
        let want: Vec<(usize, usize)> = words
            .iter()
            .enumerate()
            .filter(|(_, &w)| w != 0)
            .map(|(i, &w)| (i * BITS_PER_WORD, w))
            .collect();
        assert_eq!(protected, want);
        let pages = pages_of(&words);
        assert_eq!(stats.pages as usize, pages.len());
        assert_eq!(stats.words_scanned as usize, len);
        assert_eq!(stats.words_dirty as usize, want.len());
        assert_eq!(stats.any_dirty(), !pages.is_empty());

        // A second harvest finds nothing and protects nothing.
        let again = harvest(&bm, &mut snap, |_, _| panic!("nothing left to protect"));
        assert_eq!(again.pages, 0);
        assert!(snap.iter().all(|&w| w == 0));
    }
}

#[test]
fn clean_bitmap_needs_no_flush() {
    let bm = bitmap(&[0; 16]);
    let mut snap = vec![1; 16];
    let s = harvest(&bm, &mut snap, |_, _| panic!("clean"));
    assert!(!s.any_dirty());
    assert_eq!(snap, vec![0; 16]);
}

#[test]
#[should_panic]
fn snapshot_must_match_bitmap_length() {
    let bm = bitmap(&[1, 2]);
    harvest(&bm, &mut [0], |_, _| {});
}

/// vCPU threads set each page of their own range exactly once, concurrently
/// with repeated harvests: every page must be reported exactly once over
/// all harvests, none lost, none twice.
#[test]
fn concurrent_setters_never_lost() {
    const WORDS: usize = 64;
    const SETTERS: usize = 3;
    let pages = WORDS * BITS_PER_WORD;
    for round in 0..20u64 {
        let bm: Arc<Vec<AtomicUsize>> = Arc::new((0..WORDS).map(|_| AtomicUsize::new(0)).collect());
        let done = Arc::new(AtomicBool::new(false));
        let setters: Vec<_> = (0..SETTERS)
            .map(|t| {
                let bm = Arc::clone(&bm);
                thread::spawn(move || {
                    let mut rng = Rng(0x1234_5678 + round * 31 + t as u64);
                    // A shuffled order of this thread's pages: t, t+S, ...
                    let mut mine: Vec<usize> = (t..pages).step_by(SETTERS).collect();
                    for i in (1..mine.len()).rev() {
                        mine.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                    }
                    for p in mine {
                        // set_bit(): what mark_page_dirty_in_slot does.
                        bm[p / BITS_PER_WORD].fetch_or(1 << (p % BITS_PER_WORD), Ordering::SeqCst);
                        if rng.next().is_multiple_of(8) {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let harvester = {
            let bm = Arc::clone(&bm);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut seen = HashSet::new();
                let mut snap = vec![0; WORDS];
                let mut harvests = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let mut via_protect = 0;
                    let s = harvest(&bm, &mut snap, |_, m| via_protect += m.count_ones() as u64);
                    assert_eq!(s.pages, via_protect);
                    for p in pages_of(&snap) {
                        assert!(seen.insert(p), "page {p} reported twice");
                    }
                    harvests += 1;
                    if finished {
                        return (seen, harvests);
                    }
                }
            })
        };
        for s in setters {
            s.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let (seen, harvests) = harvester.join().unwrap();
        assert_eq!(
            seen.len(),
            pages,
            "round {round}: lost pages after {harvests} harvests"
        );
    }
}
