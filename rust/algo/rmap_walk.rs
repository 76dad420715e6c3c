// SPDX-License-Identifier: GPL-2.0

//! The masked write-protect on the x86 shadow MMU: clear W on every SPTE
//! that maps a page of a bitmap word, found through the slot's rmaps.
//!
//! The shadow MMU keeps, per memslot and per page size, an array of rmap
//! heads, one per page: `rmap[level][gfn_to_index(gfn)]`.  A head is 0 (no
//! SPTE maps the page), the address of the one SPTE that does (bit 0
//! clear), or, tagged with bit 0 (`KVM_RMAP_MANY`), the address of a chain
//! of descriptors (`struct pte_list_desc`: a link to the next descriptor
//! and a fixed number of SPTE addresses, the unused ones 0).  A page a
//! guest maps through several of its page tables has an SPTE in each of
//! their shadow pages, so one head may lead to many.
//!
//! KVM's kvm_mmu_write_protect_pt_masked() does, per page of the mask: find
//! the head, iterate it, and for each SPTE with W set clear W with
//! mmu_spte_update() (an xchg when the SPTE has volatile bits, a plain store
//! else; no A/D change, so no page is marked dirty or accessed).  This walk
//! does the same with the index computed once per word and an atomic AND on
//! each writable SPTE, which is always right (the lockless fast page fault
//! may give W back at the same time with a cmpxchg).
//!
//! Sound only under `mmu_lock` held for write for the walker's whole life:
//! rmaps are changed, and shadow pages (which hold the SPTEs) freed, only
//! with it held.  Every SPTE an rmap names is present (KVM's iterator
//! BUG()s otherwise); this walk skips one that is not rather than write it.
//!
//! Huge pages: with initially-set bitmaps KVM also write-protects the 2M
//! and 1G SPTEs that map the mask's first and last page
//! (kvm_mmu_slot_gfn_write_protect() from level 2M); [`RmapWalker::huge_mapped`]
//! tells the caller whether any rmap of those levels holds an SPTE there,
//! so that it can hand such a word to KVM's function.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Page sizes with rmaps: 4K, 2M, 1G (levels 1 to 3).
pub const LEVELS: usize = 3;
/// Index bits per level.
const LEVEL_BITS: u32 = 9;

/// The bits of the running configuration.
#[derive(Clone, Copy, Debug)]
pub struct RmapBits {
    /// Set in every present SPTE.
    pub present: u64,
    /// The W bit, cleared to write-protect.
    pub writable: u64,
    /// Set in a head that points to a descriptor chain.
    pub many: usize,
}

/// Where the rmaps are.  Addresses (SPTEs, descriptors) are the values
/// KVM stores in heads and descriptors; only the implementor reads them.
pub trait Rmaps {
    /// Head `index` of the rmap array of `level` (1: 4K pages), or `None`
    /// past the array's end.
    fn head(&self, level: usize, index: usize) -> Option<usize>;
    /// Entries per descriptor (`PTE_LIST_EXT`).
    fn desc_entries(&self) -> usize;
    /// Entry `i` (below [`Self::desc_entries`]) of the descriptor at
    /// `desc`: an SPTE's address, or 0 past the descriptor's last one.
    fn desc_spte(&self, desc: usize, i: usize) -> usize;
    /// The descriptor after `desc`, or 0.
    fn desc_more(&self, desc: usize) -> usize;
    /// The SPTE at `sptep`, an address an rmap holds.
    fn spte(&self, sptep: usize) -> &AtomicU64;
    /// The 64 heads of 4K pages `first..first + 64` as one slice, if the
    /// array holds them all: a word's heads then cost a load each, with no
    /// check per page.  `None` (the default): one [`Self::head`] per page.
    fn heads_4k(&self, _first: usize) -> Option<&[AtomicUsize; 64]> {
        None
    }
}

impl<T: Rmaps> Rmaps for &T {
    fn head(&self, level: usize, index: usize) -> Option<usize> {
        (**self).head(level, index)
    }

    fn desc_entries(&self) -> usize {
        (**self).desc_entries()
    }

    fn desc_spte(&self, desc: usize, i: usize) -> usize {
        (**self).desc_spte(desc, i)
    }

    fn desc_more(&self, desc: usize) -> usize {
        (**self).desc_more(desc)
    }

    fn spte(&self, sptep: usize) -> &AtomicU64 {
        (**self).spte(sptep)
    }

    fn heads_4k(&self, first: usize) -> Option<&[AtomicUsize; 64]> {
        (**self).heads_4k(first)
    }
}

/// Counts of a walker's life, for the module's counters and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmapStats {
    /// Words handed to [`RmapWalker::protect`].
    pub words: u64,
    /// SPTEs the rmaps of those words named.
    pub sptes: u64,
    /// SPTEs whose W was cleared.
    pub cleared: u64,
}

/// The walker of one memslot's rmaps.
pub struct RmapWalker<R: Rmaps> {
    rmaps: R,
    bits: RmapBits,
    /// The slot's first gfn: huge-page rmaps are indexed from its huge page.
    base_gfn: u64,
    /// Counts so far.
    pub stats: RmapStats,
}

impl<R: Rmaps> RmapWalker<R> {
    /// A walker of the rmaps of a memslot whose first gfn is `base_gfn`.
    pub fn new(rmaps: R, bits: RmapBits, base_gfn: u64) -> Self {
        RmapWalker {
            rmaps,
            bits,
            base_gfn,
            stats: RmapStats::default(),
        }
    }

    /// Clears W on every SPTE of the 4K rmaps of pages `first_page + i` of
    /// the slot, for each bit `i` set in `mask`; returns how many it
    /// cleared.
    pub fn protect(&mut self, first_page: u64, mask: u64) -> u32 {
        let mut cleared = 0;
        let mut left = mask;
        let (rmaps, bits, stats) = (&self.rmaps, &self.bits, &mut self.stats);
        stats.words += 1;
        if let Some(heads) = rmaps.heads_4k(first_page as usize) {
            while left != 0 {
                // Below 64: `left` is a u64 and not 0.
                let i = left.trailing_zeros() as usize & 63;
                left &= left - 1;
                let head = heads[i].load(Ordering::Relaxed);
                // No call for a page nothing maps: the common case of a
                // never-mapped or unmapped range.
                if head != 0 {
                    cleared += protect_head(rmaps, bits, stats, head);
                }
            }
        } else {
            while left != 0 {
                let page = first_page + u64::from(left.trailing_zeros());
                left &= left - 1;
                // The 4K array is indexed by the page's offset in the slot;
                // the caller's pages are inside it, so `None` does not
                // happen.
                let Some(head) = rmaps.head(1, page as usize) else {
                    continue;
                };
                cleared += protect_head(rmaps, bits, stats, head);
            }
        }
        stats.cleared += u64::from(cleared);
        cleared
    }

    /// Whether an SPTE above 4K (2M, 1G) maps the first or the last page of
    /// `mask` (pages `first_page + i`): what KVM write-protects besides the
    /// 4K SPTEs when bitmaps are initially set.  A head past its array's
    /// end counts as mapped, so that KVM decides.
    pub fn huge_mapped(&self, first_page: u64, mask: u64) -> bool {
        if mask == 0 {
            return false;
        }
        let start = self.base_gfn + first_page + u64::from(mask.trailing_zeros());
        let end = self.base_gfn + first_page + 63 - u64::from(mask.leading_zeros());
        (2..=LEVELS).any(|level| {
            [start, end]
                .iter()
                .any(|&gfn| self.rmaps.head(level, self.index(gfn, level)) != Some(0))
        })
    }

    /// KVM's gfn_to_index(): the rmap index of `gfn` at `level`.
    fn index(&self, gfn: u64, level: usize) -> usize {
        let shift = LEVEL_BITS * (level as u32 - 1);
        ((gfn >> shift) - (self.base_gfn >> shift)) as usize
    }
}

/// Clears W on the SPTEs one head names, as KVM's for_each_rmap_spte(): the
/// one SPTE, or each descriptor's entries up to its first 0.
fn protect_head<R: Rmaps>(rmaps: &R, bits: &RmapBits, stats: &mut RmapStats, head: usize) -> u32 {
    if head == 0 {
        return 0;
    }
    if head & bits.many == 0 {
        return clear_w(rmaps, bits, stats, head);
    }
    let mut cleared = 0;
    let mut desc = head & !bits.many;
    while desc != 0 {
        for i in 0..rmaps.desc_entries() {
            let sptep = rmaps.desc_spte(desc, i);
            if sptep == 0 {
                break;
            }
            cleared += clear_w(rmaps, bits, stats, sptep);
        }
        desc = rmaps.desc_more(desc);
    }
    cleared
}

/// Clears W on one SPTE; 1 if this call cleared it.
fn clear_w<R: Rmaps>(rmaps: &R, bits: &RmapBits, stats: &mut RmapStats, sptep: usize) -> u32 {
    stats.sptes += 1;
    let spte = rmaps.spte(sptep);
    let w = bits.writable;
    // A plain load first: SPTEs already without W cost no locked write.
    let now = spte.load(Ordering::Relaxed);
    if now & bits.present == 0 || now & w == 0 {
        return 0;
    }
    // The lockless fast page fault may set W at the same time (never clear
    // it), and the CPU may set A or D: an atomic AND keeps their bits.
    // Fully ordered like atomic64_fetch_and(): the TLB flush after the
    // harvest must see W gone.
    let old = spte.fetch_and(!w, Ordering::SeqCst);
    u32::from(old & w != 0)
}
