// SPDX-License-Identifier: GPL-2.0

//! Harvesting a memslot's dirty bitmap, word by word.
//!
//! This is the algorithm of "KVM: Switch to srcu-less get_dirty_log()": vCPUs
//! set bits concurrently (an atomic `set_bit`), so each word is snapshotted
//! and cleared in one atomic exchange, and the caller write-protects exactly
//! the pages of that word before the next one.  The order per page is:
//!
//! 1. snapshot and clear its bit (`swap`),
//! 2. write-protect it (the `protect` callback, under `mmu_lock`),
//! 3. flush TLBs once, after the whole bitmap, if anything was dirty,
//! 4. copy the snapshot to user space.
//!
//! A guest write between 2 and 3 through a stale TLB entry is not lost: the
//! page is already in the snapshot.  A write after 3 faults and sets the bit
//! again for the next harvest.  Steps 3 and 4 are the caller's.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Pages per bitmap word.
pub const BITS_PER_WORD: usize = usize::BITS as usize;

/// What one harvest saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HarvestStats {
    /// Words of the bitmap that were looked at.
    pub words_scanned: u64,
    /// Words that had at least one bit set, i.e. calls to `protect`.
    pub words_dirty: u64,
    /// Bits harvested (= pages handed to `protect`).
    pub pages: u64,
}

impl HarvestStats {
    /// Whether anything was harvested, i.e. whether TLBs must be flushed.
    pub fn any_dirty(&self) -> bool {
        self.words_dirty != 0
    }
}

/// Snapshots and clears every word of `bitmap` into `snapshot`, and calls
/// `protect(first_page, mask)` for each word that had bits set, before moving
/// on to the next word.  `first_page` is the page of bit 0 of `mask`.
///
/// `snapshot` must be as long as `bitmap`; every word of it is written (clean
/// words get 0), so it need not be zeroed first.
#[inline(always)]
pub fn harvest(
    bitmap: &[AtomicUsize],
    snapshot: &mut [usize],
    mut protect: impl FnMut(usize, usize),
) -> HarvestStats {
    assert_eq!(bitmap.len(), snapshot.len());
    let mut stats = HarvestStats {
        words_scanned: bitmap.len() as u64,
        ..HarvestStats::default()
    };
    for (i, (word, snap)) in bitmap.iter().zip(snapshot.iter_mut()).enumerate() {
        // A relaxed peek first: most words of a large slot are clean, and an
        // atomic exchange on each would dirty every cache line of the bitmap.
        // A bit set just after the peek is not lost: it stays in the bitmap
        // for the next harvest, its page not yet write-protected by us.
        if word.load(Ordering::Relaxed) == 0 {
            *snap = 0;
            continue;
        }
        // SeqCst like the kernel's xchg(), which is fully ordered: the
        // write-protect below must not be observed before the bits are gone.
        let mask = word.swap(0, Ordering::SeqCst);
        *snap = mask;
        if mask != 0 {
            stats.words_dirty += 1;
            stats.pages += u64::from(mask.count_ones());
            protect(i * BITS_PER_WORD, mask);
        }
    }
    stats
}
