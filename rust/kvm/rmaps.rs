// SPDX-License-Identifier: GPL-2.0

//! The x86 shadow MMU's rmaps of one memslot as the masked write-protect's
//! rmap walker (`crate::algo::rmap_walk`) reads them, and the walk of one
//! memslot under one `mmu_lock` write section.

use crate::algo::rmap_walk::{RmapWalker, Rmaps, LEVELS};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The x86 shadow MMU's rmaps of one memslot, seen from inside one
/// `mmu_lock` write section.
///
/// Invariant: `heads[l]` is the slot's array of `entries[l]` rmap heads of
/// level `l + 1`, and every address a head or a descriptor holds is a live
/// descriptor of `struct pte_list_desc`'s layout (`desc_*`) or a live
/// SPTE: KVM changes rmaps, and frees the shadow pages that hold SPTEs,
/// only with `mmu_lock` held for write, which the section holds.
#[derive(Clone, Copy)]
pub(super) struct KvmRmaps {
    pub(super) heads: [NonNull<AtomicUsize>; LEVELS],
    pub(super) entries: [usize; LEVELS],
    pub(super) desc_more: usize,
    pub(super) desc_sptes: usize,
    pub(super) desc_entries: usize,
}

impl KvmRmaps {
    /// The word at `addr`: a head, a descriptor's link or one of its SPTE
    /// addresses, all of the type's invariant.
    fn word(&self, addr: usize) -> usize {
        // SAFETY: `addr` is a live, aligned `unsigned long` of the rmaps
        // (the type's invariant).  KVM writes them only under the
        // `mmu_lock` we hold for write, so nothing writes them now; an
        // atomic view races with nothing.
        unsafe { &*(addr as *const AtomicUsize) }.load(Ordering::Relaxed)
    }
}

impl Rmaps for KvmRmaps {
    fn head(&self, level: usize, index: usize) -> Option<usize> {
        let l = level.checked_sub(1).filter(|&l| l < LEVELS)?;
        if index >= self.entries[l] {
            return None;
        }
        let head = self.heads[l].as_ptr().wrapping_add(index);
        Some(self.word(head as usize))
    }

    fn desc_entries(&self) -> usize {
        self.desc_entries
    }

    fn desc_spte(&self, desc: usize, i: usize) -> usize {
        self.word(desc + self.desc_sptes + i * core::mem::size_of::<usize>())
    }

    fn desc_more(&self, desc: usize) -> usize {
        self.word(desc + self.desc_more)
    }

    fn heads_4k(&self, first: usize) -> Option<&[AtomicUsize; 64]> {
        if first.checked_add(64)? > self.entries[0] {
            return None;
        }
        // SAFETY: heads `first..first + 64` are inside the slot's 4K array
        // (checked above; the type's invariant), aligned `unsigned long`s
        // that KVM writes only under the `mmu_lock` we hold for write.
        Some(unsafe {
            &*self.heads[0]
                .as_ptr()
                .add(first)
                .cast::<[AtomicUsize; 64]>()
        })
    }

    fn spte(&self, sptep: usize) -> &AtomicU64 {
        // SAFETY: an address an rmap holds is a live, aligned SPTE in a
        // shadow page (the type's invariant).  KVM changes SPTEs with
        // atomic or WRITE_ONCE-style accesses of the whole u64 (the
        // lockless fast page fault with a cmpxchg), so an atomic view of it
        // races with nothing non-atomic.
        unsafe { &*(sptep as *const AtomicU64) }
    }
}

/// The rmap walk of one memslot under one `mmu_lock` write section.
pub(super) struct RmapWalk {
    pub(super) walker: RmapWalker<KvmRmaps>,
    /// A word whose first or last page a huge SPTE maps goes to KVM's
    /// function (initially-set bitmaps, where KVM write-protects it).
    pub(super) huge_to_kvm: bool,
}
