// SPDX-License-Identifier: GPL-2.0

//! KVM_CLEAR_DIRTY_LOG's core: clear the bits user space names, and
//! re-protect only the pages whose bits this call really cleared.
//!
//! User space passes a bitmap of pages it has harvested (with GET_DIRTY_LOG
//! in manual-protect mode).  For each word, an atomic fetch-and-not clears
//! those bits in the live bitmap; `requested & old` is the set of pages that
//! were still dirty and are now clean, and only those need write protection
//! again.  A bit user space names that is already clear (or lies beyond the
//! slot's end, where the live bitmap is always zero) is never protected, so
//! garbage in the user bitmap cannot protect a page it did not dirty... nor
//! lose a dirty bit: a page dirtied after the GET keeps being reported, since
//! clearing its bit is followed by its write protection and a TLB flush
//! before the next GET.
//!
//! `core` only: also built by `tools/dirty-algos` for `cargo test`.

use super::harvest::BITS_PER_WORD;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What one clear did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClearStats {
    /// Words of the user bitmap looked at.
    pub words_scanned: u64,
    /// Calls to `protect`.
    pub words_protected: u64,
    /// Bits cleared in the live bitmap (= pages handed to `protect`).
    pub pages: u64,
}

impl ClearStats {
    /// Whether anything was re-protected, i.e. whether TLBs must be flushed.
    pub fn any_protected(&self) -> bool {
        self.words_protected != 0
    }
}

/// Clears, for each word `i` of `requested`, its bits in
/// `live[first_word + i]`, and calls `protect(first_page, cleared)` for each
/// word where some bit was really cleared; `first_page` is the page of bit 0
/// of that word.  `live` must have room for all of `requested` from
/// `first_word` on (the caller's range check).
#[inline(always)]
pub fn clear(
    live: &[AtomicUsize],
    first_word: usize,
    requested: &[usize],
    mut protect: impl FnMut(usize, usize),
) -> ClearStats {
    let words = &live[first_word..first_word + requested.len()];
    let mut stats = ClearStats {
        words_scanned: requested.len() as u64,
        ..ClearStats::default()
    };
    for (i, (word, &want)) in words.iter().zip(requested).enumerate() {
        if want == 0 {
            continue;
        }
        // Fully ordered like atomic_long_fetch_andnot(): the bits must be
        // gone before the pages are write-protected again.
        let cleared = want & word.fetch_and(!want, Ordering::SeqCst);
        if cleared != 0 {
            stats.words_protected += 1;
            stats.pages += u64::from(cleared.count_ones());
            protect((first_word + i) * BITS_PER_WORD, cleared);
        }
    }
    stats
}
