// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on arm64 stage 2: invalid table descriptors that keep
//! their table, pushed down one level per fault.
//!
//! A stage-2 table descriptor carries no write permission for what lies
//! below it (hierarchical permissions exist for stage 1 only), so x86's
//! "clear W at the top" (`wp_all.rs`) has nothing to clear.  What stage 2
//! does have: an invalid descriptor stops every access below it, and the
//! hardware ignores all its bits but bit 0.  So:
//!
//! - [`write_protect_top`] (KVM_WRITE_PROTECT_ALL_MEM, `mmu_lock` held for
//!   write): every valid table descriptor of the start level becomes
//!   *pending*: bit 0 cleared, the table address and type kept, [`PENDING`]
//!   set; every writable block there loses W.  Then the caller invalidates
//!   the VMID's TLB once, leaf and walk-cache entries (the "break" of
//!   break-before-make for everything below).  O(start-level entries): at
//!   most 1024 (two concatenated level-1 tables for a 40-bit IPA space).
//! - A fault (read or write) that meets a pending descriptor calls
//!   [`push_down`] (`mmu_lock` held for read, other vCPUs faulting beside
//!   it): claim the descriptor ([`LOCKED`], which KVM's walkers already
//!   treat as "retry"), make every valid table descriptor of the child
//!   pending and every writable leaf of the child read-only, then make the
//!   descriptor valid again.  The walk goes on into the child and meets the
//!   next pending level; one fault pushes its whole path down.  Writes then
//!   fault on read-only leaves, which KVM's own permission-fault path makes
//!   writable and logs, as for classic dirty logging.
//!
//! Why no write after a WP-all goes unlogged: after the flush, no TLB or
//! walk cache holds anything below a pending descriptor, and the hardware
//! cannot walk through one.  A descriptor becomes valid again only after
//! its child has no writable leaf and no valid table descriptor left from
//! before (all turned pending or read-only).  By induction down any path
//! the hardware can walk, every writable leaf it reaches was made writable
//! after the WP-all, by a fault that logged it.  Unlike x86, no record of
//! writable entries and no per-table generation are needed: a pending
//! descriptor *is* the "stale" mark, and the push-down scans its child's
//! 512 entries (a page of loads, once per table per WP-all).
//!
//! Why the push-down needs no TLB invalidation: the descriptor has been
//! invalid since the WP-all's flush, so nothing below it is cached, and
//! nothing can be cached while it stays invalid; invalid to valid needs no
//! invalidation.  Why no other walker gets in its way: KVM's shared
//! walkers (faults, relax-perms, mkyoung) reach a table only through its
//! parent, which is pending or claimed (invalid) while the push-down runs;
//! exclusive walkers (unmap, free, split, write-protect) hold `mmu_lock`
//! for write, which excludes every push-down.  So the child's entries have
//! one writer, and plain stores do.
//!
//! The cost moved to the guest: a read faults once per table it reaches
//! through a pending descriptor (x86 takes no read fault at all), each
//! such fault scanning 512 entries.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bit 0: the descriptor is valid.
pub const VALID: u64 = 1 << 0;
/// Bit 1 of a valid descriptor: a table (levels 0-2) or a page (level 3);
/// clear: a block.  Kept in a pending descriptor.
pub const TYPE_TABLE: u64 = 1 << 1;
/// S2AP[1]: stage-2 write permission of a leaf
/// (`KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W`).
pub const S2AP_W: u64 = 1 << 7;
/// `KVM_INVALID_PTE_LOCKED`: an invalid descriptor some walker owns for a
/// moment; KVM's walkers back off (the fault is retried).
pub const LOCKED: u64 = 1 << 10;
/// A pending descriptor: invalid, keeps its table, to be pushed down.  A
/// software bit (58:55) no valid table descriptor of KVM's carries.
pub const PENDING: u64 = 1 << 55;
/// The last level (4K granule; every granule's last level is 3).
pub const LAST_LEVEL: i32 = 3;

/// A valid table descriptor at `level`.
pub fn is_table(pte: u64, level: i32) -> bool {
    level < LAST_LEVEL && pte & (VALID | TYPE_TABLE) == VALID | TYPE_TABLE
}

/// A pending descriptor, claimed or not.
pub fn is_pending(pte: u64) -> bool {
    pte & (VALID | PENDING) == PENDING
}

/// A valid leaf (block or page) with write permission.
pub fn is_writable_leaf(pte: u64, level: i32) -> bool {
    pte & VALID != 0 && !is_table(pte, level) && pte & S2AP_W != 0
}

/// What protecting a table's entries did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protected {
    /// Table descriptors made pending.
    pub tables: u32,
    /// Leaves made read-only.
    pub leaves: u32,
}

/// Makes every valid table descriptor of `entries` (a table at `level`)
/// pending and every writable leaf read-only.  The caller has the table to
/// itself (see the module comment), so plain loads and stores do.
fn protect_table(entries: &[AtomicU64], level: i32) -> Protected {
    let mut done = Protected::default();
    for e in entries {
        let pte = e.load(Ordering::Relaxed);
        if is_table(pte, level) {
            e.store((pte & !VALID) | PENDING, Ordering::Relaxed);
            done.tables += 1;
        } else if is_writable_leaf(pte, level) {
            e.store(pte & !S2AP_W, Ordering::Relaxed);
            done.leaves += 1;
        }
    }
    done
}

/// KVM_WRITE_PROTECT_ALL_MEM on the start-level table(s) `entries` at
/// `level`.  The caller holds `mmu_lock` for write and, after this, must
/// invalidate the VMID's whole TLB (leaf and walk-cache entries) before it
/// returns to user space.
pub fn write_protect_top(entries: &[AtomicU64], level: i32) -> Protected {
    protect_table(entries, level)
}

/// What [`push_down`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushDown {
    /// The descriptor is valid again and its child protected.
    Pushed(Protected),
    /// Another fault holds the descriptor (or it changed under us): retry
    /// the fault.
    Busy,
    /// The descriptor is not pending: nothing to do.
    NotPending,
}

/// Pushes the protection of the pending descriptor `parent` (at `level`)
/// down into its child, `child(pte)` giving the child's entries from the
/// descriptor.  The caller holds `mmu_lock` for read (WP-all excluded).
pub fn push_down<'a>(
    parent: &AtomicU64,
    level: i32,
    child: impl FnOnce(u64) -> &'a [AtomicU64],
) -> PushDown {
    let old = parent.load(Ordering::Acquire);
    if !is_pending(old) {
        return PushDown::NotPending;
    }
    if old & LOCKED != 0 {
        return PushDown::Busy;
    }
    // Acquire: the child's entries are read after the claim.
    if parent
        .compare_exchange(old, old | LOCKED, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return PushDown::Busy;
    }
    let done = protect_table(child(old), level + 1);
    // Release: the child's new entries are visible to any walker (and, with
    // the caller's barrier before guest entry, to the hardware) that sees
    // the descriptor valid.
    parent.store((old & !PENDING) | VALID, Ordering::Release);
    PushDown::Pushed(done)
}
