//! Properties of rust/algo/ring.rs: push/reset, coalescing, hostile user space.

mod common;
use common::Rng;

use dirty_algos::ring::*;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

fn ring(size: u32, rsvd: u32) -> (RingState, Vec<DirtyGfn>) {
    let state = RingState {
        dirty_index: AtomicU32::new(0),
        reset_index: AtomicU32::new(0),
        size,
        soft_limit: size - rsvd,
    };
    let entries = (0..size)
        .map(|_| DirtyGfn {
            flags: AtomicU32::new(0),
            slot: AtomicU32::new(0),
            offset: AtomicU64::new(0),
        })
        .collect();
    (state, entries)
}

/// What a well-behaved VMM does: collect DIRTY entries from `from`, mark them RESET.
fn harvest(entries: &[DirtyGfn], from: &mut u32) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let size = entries.len() as u32;
    loop {
        let e = &entries[(*from & (size - 1)) as usize];
        if e.flags.load(Ordering::Acquire) & F_DIRTY == 0 {
            return out;
        }
        out.push((
            e.slot.load(Ordering::Relaxed),
            e.offset.load(Ordering::Relaxed),
        ));
        e.flags.store(F_RESET, Ordering::Release);
        *from = from.wrapping_add(1);
    }
}

fn pages_of(b: &Batch) -> Vec<(u32, u64)> {
    (0..64)
        .filter(|i| b.mask & (1 << i) != 0)
        .map(|i| (b.slot, b.offset + i))
        .collect()
}

#[test]
fn push_harvest_reset_roundtrip() {
    let (st, e) = ring(16, 4);
    for i in 0..10 {
        assert_eq!(
            push(&st, &e, 1, 100 + i),
            if i + 1 >= 12 {
                Pushed::SoftFull
            } else {
                Pushed::Ok
            }
        );
    }
    let mut from = 0;
    let got = harvest(&e, &mut from);
    assert_eq!(got, (0..10).map(|i| (1, 100 + i)).collect::<Vec<_>>());
    let mut batches = Vec::new();
    let s = reset(&st, &e, u32::MAX, |b| batches.push(b));
    assert_eq!(s.entries, 10);
    assert_eq!(
        batches,
        vec![Batch {
            slot: 1,
            offset: 100,
            mask: 0x3ff
        }]
    );
    assert_eq!(st.used(), 0);
    assert!(e.iter().all(|x| x.flags.load(Ordering::Relaxed) == 0));
}

#[test]
fn soft_full_then_full() {
    let (st, e) = ring(8, 2);
    let r: Vec<Pushed> = (0..9).map(|i| push(&st, &e, 0, i)).collect();
    assert_eq!(&r[..5], &[Pushed::Ok; 5]);
    assert_eq!(&r[5..8], &[Pushed::SoftFull; 3]);
    assert_eq!(r[8], Pushed::Full, "never overwrite an unharvested entry");
    assert_eq!(st.used(), 8);
}

#[test]
fn reset_stops_at_first_unharvested_entry() {
    let (st, e) = ring(16, 4);
    for i in 0..6 {
        push(&st, &e, 0, i * 1000);
    }
    e[0].flags.store(F_RESET, Ordering::Release);
    e[1].flags.store(F_RESET, Ordering::Release);
    e[3].flags.store(F_RESET, Ordering::Release); // after a gap: not reached
    let mut n = 0;
    assert_eq!(reset(&st, &e, u32::MAX, |_| n += 1).entries, 2);
    assert_eq!(n, 2, "0 and 1000 are 1000 apart: two batches");
    assert_eq!(st.used(), 4);
}

/// User space sets RESET on every entry, pushed or not, and scribbles
/// slot/offset: the kernel resets only what it pushed, once.
#[test]
fn hostile_flags_cannot_pass_dirty_index() {
    let (st, e) = ring(64, 8);
    for i in 0..5 {
        push(&st, &e, 2, i);
    }
    for x in &e {
        x.flags.store(u32::MAX, Ordering::Release);
    }
    let s = reset(&st, &e, u32::MAX, |_| {});
    assert_eq!(s.entries, 5);
    assert_eq!(st.used(), 0);
    assert_eq!(st.reset_index.load(Ordering::Relaxed), 5);
    assert_eq!(
        reset(&st, &e, u32::MAX, |_| panic!("nothing pushed")).entries,
        0
    );
    // Entries past dirty_index keep their garbage; they were never ours.
    assert_eq!(e[10].flags.load(Ordering::Relaxed), u32::MAX);
    // ...and the next push overwrites them properly.
    assert_eq!(push(&st, &e, 3, 9), Pushed::Ok);
    assert_eq!(e[5].flags.load(Ordering::Relaxed), F_DIRTY);
}

#[test]
fn budget_bounds_the_walk_and_flushes_its_batch() {
    let (st, e) = ring(256, 8);
    for i in 0..200 {
        push(&st, &e, 0, i);
    }
    let mut from = 0;
    harvest(&e, &mut from);
    let mut pages = BTreeSet::new();
    let mut total = 0;
    loop {
        let s = reset(&st, &e, 30, |b| pages.extend(pages_of(&b)));
        assert!(s.entries <= 30);
        total += s.entries;
        if s.entries < 30 {
            break;
        }
    }
    assert_eq!(total, 200);
    assert_eq!(pages, (0..200).map(|i| (0, i)).collect());
}

/// Coalescing protects exactly the harvested gfns: the union of the
/// batches is the set of entries, with any order of offsets, including
/// backwards runs and offsets near 0 and u64::MAX.
#[test]
fn coalescing_protects_exactly_the_harvested_gfns() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let (st, e) = ring(128, 8);
        let n = (rng.next() % 100) as usize + 1;
        let base = match rng.next() % 3 {
            0 => 0,
            1 => u64::MAX - 200,
            _ => rng.next() >> 8,
        };
        let mut want = HashSet::new();
        for _ in 0..n {
            let slot = (rng.next() % 2) as u32;
            let off = base.wrapping_add(rng.next() % 150);
            want.insert((slot, off));
            push(&st, &e, slot, off);
        }
        let mut from = 0;
        harvest(&e, &mut from);
        let mut got = HashSet::new();
        let s = reset(&st, &e, u32::MAX, |b| {
            assert!(b.mask & 1 == 1, "a batch starts at its lowest page");
            got.extend(pages_of(&b));
        });
        assert_eq!(s.entries as usize, n);
        assert_eq!(got, want);
    }
}

#[test]
fn backwards_runs_coalesce() {
    let mut b = Batch {
        slot: 0,
        offset: 100,
        mask: 1,
    };
    for off in (40..100).rev() {
        assert!(b.absorb(0, off), "offset {off}");
    }
    assert_eq!((b.offset, b.mask), (40, (1 << 61) - 1));
    assert!(b.absorb(0, 37), "span 37..=100 is 64 pages");
    assert!(!b.absorb(0, 36), "one more would drop bit 63");
    assert!(!b.absorb(1, 50), "other slot");
    assert!(!b.absorb(0, 37 + 64), "too far forwards");
    let mut z = Batch {
        slot: 0,
        offset: 0,
        mask: 1,
    };
    assert!(!z.absorb(0, u64::MAX), "no wrap-around below 0");
}

#[test]
fn batch_range_check() {
    let b = |offset, mask| Batch {
        slot: 0,
        offset,
        mask,
    };
    assert!(batch_in_slot(&b(0, 1), 1));
    assert!(!batch_in_slot(&b(0, 2), 1));
    assert!(batch_in_slot(&b(36, 1 << 63), 100));
    assert!(!batch_in_slot(&b(37, 1 << 63), 100));
    assert!(!batch_in_slot(&b(100, 1), 100));
    assert!(!batch_in_slot(&b(u64::MAX, 1), u64::MAX));
    assert!(!batch_in_slot(&b(u64::MAX - 1, 3), u64::MAX));
    assert!(!batch_in_slot(&b(0, 0), 100));
}

/// A vCPU pushes a stream of distinct gfns, "exiting" (waiting) while the
/// ring is soft-full; a VMM thread harvests and resets concurrently.  Every
/// gfn is harvested exactly once, each reset returns what was harvested,
/// and the ring never overflows.
#[test]
fn producer_consumer_lose_nothing() {
    for size in [16u32, 64, 512] {
        let (st, e) = ring(size, 4);
        let (st, e) = (Arc::new(st), Arc::new(e));
        let total = 20_000u64;
        let done = Arc::new(AtomicBool::new(false));
        let vcpu = {
            let (st, e, done) = (Arc::clone(&st), Arc::clone(&e), Arc::clone(&done));
            thread::spawn(move || {
                for gfn in 0..total {
                    while st.soft_full() {
                        thread::yield_now(); // KVM_EXIT_DIRTY_RING_FULL
                    }
                    assert_ne!(push(&st, &e, (gfn % 3) as u32, gfn), Pushed::Full);
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut seen = HashSet::new();
        let mut from = 0;
        loop {
            let finished = done.load(Ordering::SeqCst);
            let got = harvest(&e, &mut from);
            for g in &got {
                assert!(seen.insert(*g), "{g:?} harvested twice");
            }
            let s = reset(&st, &e, u32::MAX, |_| {});
            assert_eq!(
                s.entries as usize,
                got.len(),
                "reset returns what was harvested"
            );
            if finished && got.is_empty() && st.used() == 0 {
                break;
            }
        }
        vcpu.join().unwrap();
        assert_eq!(seen.len() as u64, total, "ring size {size}");
    }
}
