// SPDX-License-Identifier: GPL-2.0

//! KVM's page tables (the x86 TDP MMU, arm64 stage 2) as the masked
//! write-protect's walker (`crate::algo::pt_walk`) reads them, and the walk
//! of one memslot's pages under one `mmu_lock` write section.

use super::bindings;
use crate::algo::pt_walk::{Tables, Walker};
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

const PAGE_SHIFT: u32 = 12;
pub(super) const MAX_ROOTS: usize = bindings::KD_PT_MAX_ROOTS as usize;

/// KVM's page tables (TDP MMU, stage 2), seen from inside one `mmu_lock`
/// write section.
///
/// Invariant: every handle is a table of the VM's tree that stays
/// allocated while the section lasts: the roots the shim gave, and the
/// children of present table entries read from such tables (the walker
/// makes handles no other way).  Nothing links, unlinks or frees a table of
/// either while `mmu_lock` is held for write.
#[derive(Clone, Copy)]
pub(super) struct KvmTables {
    /// A table entry's child table address bits,
    pub(super) addr: u64,
    /// and more of them (arm64 with LPA2: address bits 51:50 in 9:8),
    pub(super) addr_hi: u64,
    /// shifted left by this.
    pub(super) addr_hi_shift: u32,
    /// Where physical address 0 is in the kernel's linear map.
    pub(super) page_offset: u64,
}

impl Tables for KvmTables {
    type Table = NonNull<AtomicU64>;

    fn child(&self, entry: u64) -> NonNull<AtomicU64> {
        let pa = (entry & self.addr) | (entry & self.addr_hi) << self.addr_hi_shift;
        let va = pa.wrapping_add(self.page_offset);
        // A present non-leaf SPTE holds its table's physical address, whose
        // linear-map address is never 0.
        NonNull::new(va as *mut AtomicU64).expect("a table at the linear map's address 0")
    }

    fn entry(&self, table: NonNull<AtomicU64>, index: usize) -> &AtomicU64 {
        // SAFETY: `table` is a live table (the type's invariant) of 512
        // u64 entries, or of the root's entries for a root, and `index` is
        // below that (the walker masks it).  KVM changes entries only with
        // atomic or WRITE_ONCE-style accesses of the whole u64, so viewing
        // one as an AtomicU64 races with nothing non-atomic.
        unsafe { &*table.as_ptr().add(index) }
    }
}

/// The page-table walk of one memslot under one `mmu_lock` write section.
pub(super) struct TableWalk {
    pub(super) base_gfn: u64,
    pub(super) addr: u64,
    /// x86: each entry whose W is cleared marks its page dirty.
    pub(super) set_pfn_dirty: bool,
    /// A word that meets a huge leaf goes to KVM's function (x86: manual
    /// protect with initially-set bitmaps, where KVM splits or
    /// write-protects it; arm64: always, KVM write-protects blocks).
    pub(super) huge_to_kvm: bool,
    /// The first `nr_walkers` are initialized, one per root.
    pub(super) walkers: [MaybeUninit<Walker<KvmTables>>; MAX_ROOTS],
    pub(super) nr_walkers: usize,
}

impl TableWalk {
    pub(super) fn walkers(&self) -> &[Walker<KvmTables>] {
        let n = self.nr_walkers.min(MAX_ROOTS);
        // SAFETY: the walk's maker initialized the first `nr_walkers` (at
        // most MAX_ROOTS) and nothing uninitializes them; MaybeUninit<T>
        // has T's layout.
        unsafe { core::slice::from_raw_parts(self.walkers.as_ptr().cast(), n) }
    }

    fn walkers_mut(&mut self) -> &mut [Walker<KvmTables>] {
        let n = self.nr_walkers.min(MAX_ROOTS);
        // SAFETY: as `walkers()`, borrowed mutably from `self`.
        unsafe { core::slice::from_raw_parts_mut(self.walkers.as_mut_ptr().cast(), n) }
    }

    /// Clears W on the 4K leaves of the mask's pages; true if a huge leaf
    /// maps one of them and KVM's function must see the word.
    pub(super) fn protect(&mut self, first_page: usize, mask: usize) -> bool {
        let gfn = self.base_gfn + first_page as u64;
        let (addr, set_pfn_dirty) = (self.addr, self.set_pfn_dirty);
        let mut huge = false;
        for walker in self.walkers_mut() {
            let done = walker.protect(gfn, mask as u64, |old| {
                if set_pfn_dirty {
                    // As clear_dirty_pt_masked(): the page was writable, so
                    // it may have been written; tell the page cache.
                    // SAFETY: plain call; KVM checks the pfn itself.
                    unsafe { bindings::kd_set_pfn_dirty((old & addr) >> PAGE_SHIFT) }
                }
            });
            huge |= done.huge;
        }
        huge && self.huge_to_kvm
    }
}
