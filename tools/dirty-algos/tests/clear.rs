//! Properties of rust/algo/clear.rs.

mod common;
use common::Rng;

use dirty_algos::clear::clear;
use dirty_algos::harvest::BITS_PER_WORD;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

/// The masks handed to protect() are exactly requested & live, at the right
/// page, and the live bitmap loses exactly those bits.
#[test]
fn protects_exactly_what_it_cleared() {
    let mut rng = Rng(42);
    for _ in 0..1000 {
        let len = (rng.next() % 20) as usize + 1;
        let before: Vec<usize> = (0..len).map(|_| rng.word()).collect();
        let live: Vec<AtomicUsize> = before.iter().map(|&w| AtomicUsize::new(w)).collect();
        let first = (rng.next() % len as u64) as usize;
        let n = (rng.next() % (len - first) as u64) as usize + 1;
        let req: Vec<usize> = (0..n).map(|_| rng.word()).collect();

        let mut seen = Vec::new();
        let s = clear(&live, first, &req, |page, mask| seen.push((page, mask)));

        let mut want = Vec::new();
        for i in 0..len {
            let now = live[i].load(Ordering::Relaxed);
            if i >= first && i < first + n {
                let cleared = before[i] & req[i - first];
                assert_eq!(now, before[i] & !req[i - first]);
                if cleared != 0 {
                    want.push((i * BITS_PER_WORD, cleared));
                }
            } else {
                assert_eq!(now, before[i], "word {i} outside the range untouched");
            }
        }
        assert_eq!(seen, want);
        assert_eq!(
            s.pages,
            want.iter().map(|(_, m)| m.count_ones() as u64).sum::<u64>()
        );
        assert_eq!(s.any_protected(), !want.is_empty());
        assert_eq!(s.words_scanned as usize, n);
    }
}

#[test]
fn clearing_clean_pages_protects_nothing() {
    let live: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
    let s = clear(&live, 0, &[usize::MAX; 4], |_, _| {
        panic!("nothing was dirty")
    });
    assert!(!s.any_protected());
}

#[test]
#[should_panic]
fn range_past_the_bitmap_panics() {
    let live: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
    clear(&live, 1, &[1, 1], |_, _| {});
}

/// The manual-protect migration cycle against concurrent vCPU writers:
/// GET (snapshot), CLEAR what it reported (re-protecting those pages), then
/// copy those pages.  A vCPU write marks its page dirty and stores under the
/// page's lock, as a write fault does under mmu_lock; `protect` takes the same
/// lock, so a write is either complete before the re-protection (and so in the
/// copy that follows) or sets the bit again after it (and so in a later GET).
/// After the writers stop and one last cycle, every page's copy must equal
/// its content: no write was lost, whatever the interleaving.
#[test]
fn get_clear_copy_cycle_never_loses_a_write() {
    use std::sync::Mutex;
    const WORDS: usize = 16;
    let pages = WORDS * BITS_PER_WORD;
    for round in 0..10u64 {
        let live: Arc<Vec<AtomicUsize>> =
            Arc::new((0..WORDS).map(|_| AtomicUsize::new(0)).collect());
        let content: Arc<Vec<AtomicUsize>> =
            Arc::new((0..pages).map(|_| AtomicUsize::new(0)).collect());
        let locks: Arc<Vec<Mutex<()>>> = Arc::new((0..pages).map(|_| Mutex::new(())).collect());
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let (live, content, locks) =
                    (Arc::clone(&live), Arc::clone(&content), Arc::clone(&locks));
                thread::spawn(move || {
                    let mut rng = Rng(round * 7 + t + 1);
                    for _ in 0..20_000 {
                        let p = (rng.next() % pages as u64) as usize;
                        let _fault = locks[p].lock().unwrap();
                        live[p / BITS_PER_WORD]
                            .fetch_or(1 << (p % BITS_PER_WORD), Ordering::SeqCst);
                        content[p].fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mut copy = vec![0usize; pages];
        let mut snap = vec![0; WORDS];
        let mut cycle = |copy: &mut Vec<usize>| {
            copy_live(&live, &mut snap);
            clear(&live, 0, &snap, |first, mask| {
                for b in 0..BITS_PER_WORD {
                    if mask & (1 << b) != 0 {
                        drop(locks[first + b].lock().unwrap());
                    }
                }
            });
            for p in 0..pages {
                if snap[p / BITS_PER_WORD] & (1 << (p % BITS_PER_WORD)) != 0 {
                    copy[p] = content[p].load(Ordering::SeqCst);
                }
            }
        };
        while !writers.iter().all(|w| w.is_finished()) {
            cycle(&mut copy);
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        cycle(&mut copy);
        for p in 0..pages {
            assert_eq!(
                copy[p],
                content[p].load(Ordering::SeqCst),
                "round {round}: page {p} lost a write"
            );
        }
    }
}

/// A page dirtied between GET and CLEAR, not in the snapshot, stays dirty
/// (a clear that stored whole words would lose it; the cycle test above
/// catches that mutation too).
#[test]
fn a_page_dirtied_after_get_stays_dirty() {
    let live = [AtomicUsize::new(0b01)];
    let snap = copy_live_vec(&live);
    // Page 1 dirtied after the GET, before the CLEAR.
    live[0].fetch_or(0b10, Ordering::SeqCst);
    clear(&live, 0, &snap, |_, m| assert_eq!(m, 0b01));
    assert_eq!(live[0].load(Ordering::SeqCst), 0b10, "page 1 stays dirty");
}

/// The manual-protect GET as the module and upstream serve it: the live
/// bitmap copied to user space as it is (copy_to_user), bits kept.
fn copy_live(live: &[AtomicUsize], out: &mut [usize]) {
    for (word, o) in live.iter().zip(out.iter_mut()) {
        *o = word.load(Ordering::Relaxed);
    }
}

fn copy_live_vec(live: &[AtomicUsize]) -> Vec<usize> {
    let mut v = vec![0; live.len()];
    copy_live(live, &mut v);
    v
}
