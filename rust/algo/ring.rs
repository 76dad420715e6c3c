// SPDX-License-Identifier: GPL-2.0

//! The per-vCPU dirty ring: push on the vCPU, reset on KVM_RESET_DIRTY_RINGS.
//!
//! The ring's entries (`struct kvm_dirty_gfn`) are mapped into user space,
//! which may write any of their bytes at any time: every read of an entry
//! is a single atomic load whose value is validated before use, and nothing
//! user space writes can make the kernel walk outside the entries it pushed
//! itself, protect a page outside a dirty-logged slot, or loop.  The two
//! indices are kernel-private (`struct kvm_dirty_ring`, not mapped).
//!
//! Ordering with user space (Documentation/virt/kvm/api.rst, 8.29):
//! - push fills `slot`/`offset`, advances `dirty_index`, then
//!   release-stores `flags = DIRTY`, so a user-space acquire load of
//!   `flags` sees the entry complete, and a reset that follows it walks it;
//! - user space sets `flags |= RESET` (release) after harvesting; the reset
//!   acquire-loads `flags` before reading `slot`/`offset`, then
//!   release-stores `flags = 0`, handing the entry back.
//!
//! `core` only: also built by `tools/dirty-algos` for `cargo test`.

use super::slot::pages_in_slot;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// KVM_DIRTY_GFN_F_DIRTY: the entry holds a dirty gfn for user space.
pub const F_DIRTY: u32 = 1 << 0;
/// KVM_DIRTY_GFN_F_RESET: user space has harvested the entry.
pub const F_RESET: u32 = 1 << 1;
/// Pages a coalesced write-protect covers (one `unsigned long` mask).
pub const MASK_BITS: u64 = 64;

/// `struct kvm_dirty_gfn`, as shared with user space.
#[repr(C)]
pub struct DirtyGfn {
    pub flags: AtomicU32,
    pub slot: AtomicU32,
    pub offset: AtomicU64,
}

/// `struct kvm_dirty_ring`'s indices and geometry.  Only the vCPU thread
/// writes `dirty_index` (push); only the reset, under slots_lock, writes
/// `reset_index`.  Both are free-running u32 counters.
#[repr(C)]
pub struct RingState {
    pub dirty_index: AtomicU32,
    pub reset_index: AtomicU32,
    /// Entries; a power of two (KVM_CAP_DIRTY_LOG_RING checks it).
    pub size: u32,
    /// `size` less the entries reserved for writes after a soft-full exit.
    pub soft_limit: u32,
}

impl RingState {
    /// Entries pushed and not yet reset.
    pub fn used(&self) -> u32 {
        // Acquire pairs with the reset's release of reset_index: entries it
        // handed back are no longer being read when push reuses them.
        self.dirty_index
            .load(Ordering::Relaxed)
            .wrapping_sub(self.reset_index.load(Ordering::Acquire))
    }

    /// The vCPU must exit to user space before it dirties more.
    pub fn soft_full(&self) -> bool {
        self.used() >= self.soft_limit
    }

    fn slot_of(&self, index: u32) -> usize {
        (index & (self.size - 1)) as usize
    }
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Pushed; the ring has room below its soft limit.
    Ok,
    /// Pushed, and the ring is now soft-full: the vCPU must exit.
    SoftFull,
    /// Not pushed: every entry is in use.  Cannot happen while vCPUs honour
    /// the soft-full exit (the reserved entries absorb what they dirty on
    /// the way out); reported rather than overwriting an unharvested entry.
    Full,
}

/// Publishes a dirty `(slot, offset)` to user space.  Called on the vCPU
/// thread only (the ring is per vCPU), so `dirty_index` has one writer.
pub fn push(ring: &RingState, entries: &[DirtyGfn], slot: u32, offset: u64) -> Pushed {
    if ring.used() >= ring.size {
        return Pushed::Full;
    }
    let index = ring.dirty_index.load(Ordering::Relaxed);
    let entry = &entries[ring.slot_of(index)];
    entry.slot.store(slot, Ordering::Relaxed);
    entry.offset.store(offset, Ordering::Relaxed);
    // The entry joins the kernel's range before user space can see it: a
    // VMM that harvests while the vCPU runs, sees DIRTY and resets at once
    // must find the entry within the reset's walk (which stops at
    // dirty_index), or its page would stay writable, unlogged, after the
    // reset returned.
    ring.dirty_index
        .store(index.wrapping_add(1), Ordering::Release);
    // Release: user space that sees DIRTY sees slot and offset (smp_wmb()).
    entry.flags.store(F_DIRTY, Ordering::Release);
    if ring.soft_full() {
        Pushed::SoftFull
    } else {
        Pushed::Ok
    }
}

/// Harvested entries folded into one masked write-protect: bit `i` of
/// `mask` stands for page `offset + i` of memslot `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub slot: u32,
    pub offset: u64,
    pub mask: u64,
}

impl Batch {
    fn new(slot: u32, offset: u64) -> Self {
        Batch {
            slot,
            offset,
            mask: 1,
        }
    }

    /// Adds `(slot, offset)` if it falls within 64 pages of the batch, in
    /// either direction; returns false (batch unchanged) otherwise.
    pub fn absorb(&mut self, slot: u32, offset: u64) -> bool {
        if slot != self.slot {
            return false;
        }
        if offset >= self.offset {
            let delta = offset - self.offset;
            if delta < MASK_BITS {
                self.mask |= 1 << delta;
                return true;
            }
        } else {
            // Backwards: shift the mask up, if no set bit falls off the top.
            let delta = self.offset - offset;
            if delta < MASK_BITS && self.mask.leading_zeros() as u64 >= delta {
                self.mask = (self.mask << delta) | 1;
                self.offset = offset;
                return true;
            }
        }
        false
    }
}

/// What a reset did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetStats {
    /// Entries handed back to user space.
    pub entries: u32,
    /// Calls to `protect` (after coalescing).
    pub batches: u32,
}

/// Hands back up to `budget` harvested entries, in ring order from
/// `reset_index`, stopping at the first entry user space has not marked
/// RESET and never passing `dirty_index`: entries the kernel did not push
/// cannot be "reset", whatever their flags say.  Neighbouring entries of
/// one slot are coalesced, and `protect(batch)` is called for each batch
/// before returning (so a reset entry is always re-protected, even when the
/// budget cuts the walk short).  `protect` validates the slot and range.
pub fn reset(
    ring: &RingState,
    entries: &[DirtyGfn],
    budget: u32,
    mut protect: impl FnMut(Batch),
) -> ResetStats {
    let mut stats = ResetStats::default();
    let mut batch: Option<Batch> = None;
    let end = ring.dirty_index.load(Ordering::Acquire);
    let mut index = ring.reset_index.load(Ordering::Relaxed);
    while index != end && stats.entries < budget {
        let entry = &entries[ring.slot_of(index)];
        // Acquire: slot and offset are read after user space's RESET.
        if entry.flags.load(Ordering::Acquire) & F_RESET == 0 {
            break;
        }
        let slot = entry.slot.load(Ordering::Relaxed);
        let offset = entry.offset.load(Ordering::Relaxed);
        // Release: our reads of the entry are done before user space may
        // reuse it (kvm_dirty_gfn_set_invalid()).
        entry.flags.store(0, Ordering::Release);
        index = index.wrapping_add(1);
        stats.entries += 1;

        if batch.as_mut().is_some_and(|b| b.absorb(slot, offset)) {
            continue;
        }
        if let Some(done) = batch.replace(Batch::new(slot, offset)) {
            stats.batches += 1;
            protect(done);
        }
    }
    ring.reset_index.store(index, Ordering::Release);
    if let Some(done) = batch {
        stats.batches += 1;
        protect(done);
    }
    stats
}

/// Whether `batch` names only pages of a slot of `npages` pages: the check
/// a batch built from user-written entries must pass before it is protected.
pub fn batch_in_slot(batch: &Batch, npages: u64) -> bool {
    if batch.mask == 0 {
        return false;
    }
    // Pages `offset` to the mask's last set bit.
    let pages = MASK_BITS - u64::from(batch.mask.leading_zeros());
    pages_in_slot(batch.offset, pages, npages)
}
