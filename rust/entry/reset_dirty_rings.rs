// SPDX-License-Identifier: GPL-2.0

//! `KVM_RESET_DIRTY_RINGS`: hand back every harvested entry of every vCPU's
//! ring, re-protecting their pages, batch by batch.

use super::to_c;
use crate::algo::ring::{self, batch_in_slot, Batch};
use crate::kvm::bindings;
use crate::kvm::counters::{self, Counter};
use crate::kvm::memslot::SlotRef;
use crate::kvm::trace;
use crate::kvm::vm::{SlotsLockGuard, SlotsLocked};
use crate::kvm::wp_masked::{Protector, WalkTally};
use kernel::ffi::c_int;
use kernel::prelude::*;

/// Entries reset between two checks for a signal and a chance to reschedule.
const RESET_BATCH: u32 = 256;

/// `->reset_dirty_rings()`: returns the number of entries reset, or
/// `-EINTR` if a signal arrived first (what was reset stays reset,
/// protected and flushed; user space calls again for the rest).
///
/// # Safety
///
/// KVM calls it from the VM ioctl, on a live VM, without `slots_lock`.
#[no_mangle]
unsafe extern "C" fn kd_rs_reset_dirty_rings(kvm: *mut bindings::kvm) -> c_int {
    // SAFETY: KVM's contract above.
    let guard = unsafe { SlotsLockGuard::lock(kvm) };
    to_c(reset_dirty_rings(guard))
}

fn reset_dirty_rings(mut guard: SlotsLockGuard) -> Result<u32> {
    counters::add(Counter::KD_RING_RESETS, 1);
    let vm = guard.vm();
    let protect = vm.harvest_protects();
    let mut total: u32 = 0;
    let mut interrupted = false;
    // The batches' walk counters, added once at the end.
    let tally = WalkTally::default();
    let mut sections: u64 = 0;
    let mut last = LastSlot::default();

    for ring in vm.dirty_rings().flatten() {
        loop {
            if kernel::current!().signal_pending() {
                interrupted = true;
                break;
            }
            // Consecutive batches of one memslot share an mmu_lock section
            // (and the walk's tables), as upstream's GET_DIRTY_LOG holds it
            // for a whole bitmap; it ends before the next cond_resched, or
            // earlier when someone waits (kd_mmu_lock_needbreak).
            let stats = {
                let mut held = None;
                ring::reset(ring.state, ring.entries, RESET_BATCH, |batch| {
                    sections += u64::from(protect_batch(
                        &vm, batch, protect, &tally, &mut last, &mut held,
                    ));
                })
                // `held` unlocks here, dropped in place: a `drop(held)`
                // moved its ~1 KiB walk state first, a `memcpy` per
                // section (tools/tcg-profile --ring).
            };
            total = total.saturating_add(stats.entries);
            counters::add(Counter::KD_RING_WP_CALLS, u64::from(stats.batches));
            if stats.entries < RESET_BATCH {
                break;
            }
            vm.cond_resched();
        }
        // Where kvm_dirty_ring_reset() emits it, after each ring's walk
        // (also the one a signal cut short).
        trace::ring_reset(&ring);
        if interrupted {
            break;
        }
    }
    // Entries are handed back only after their pages are write-protected and
    // the TLBs flushed, even when a signal cut the walk short: otherwise a
    // write through a stale TLB entry would be lost.
    if total > 0 && protect {
        vm.flush_tlbs();
        counters::add(Counter::KD_TLB_FLUSHES, 1);
    }
    if !protect {
        counters::add(Counter::KD_HARVEST_NO_WP, 1);
    }
    counters::add(Counter::KD_RING_ENTRIES_RESET, u64::from(total));
    counters::add(Counter::KD_RING_MMU_SECTIONS, sections);
    // slots_lock released before the counter below.
    drop(guard);
    if interrupted {
        counters::add(Counter::KD_RING_RESET_EINTR, 1);
        return Err(EINTR);
    }
    Ok(total)
}

/// The memslot the previous batch named (by its ring encoding), looked up
/// once for all the batches that name it: a shim call per batch was a
/// seventh of a reset's instructions at one page per batch
/// (tools/tcg-profile).  slots_lock, held for the whole reset, keeps it
/// valid: memslots change only under it.
#[derive(Default)]
struct LastSlot<'s> {
    looked_up: Option<(u32, Option<SlotRef<'s>>)>,
}

impl<'s> LastSlot<'s> {
    /// The memslot `slot` (the ring's encoding) names, if the VM has it.
    fn get(&mut self, vm: &'s SlotsLocked<'_>, slot: u32) -> Option<SlotRef<'s>> {
        match self.looked_up {
            Some((key, memslot)) if key == slot => memslot,
            _ => {
                let memslot = vm.slot(slot);
                self.looked_up = Some((slot, memslot));
                memslot
            }
        }
    }
}

/// Write-protects one coalesced batch (unless the VM uses write-protect-all
/// and asked not to), if user space's entries named pages of a dirty-logged
/// slot; anything else is counted and ignored.  `held` is the memslot
/// (`batch.slot`'s encoding) whose `mmu_lock` section the previous batch
/// left open, and its protector.  Returns whether it opened a section.
fn protect_batch<'s>(
    vm: &'s SlotsLocked<'_>,
    batch: Batch,
    protect: bool,
    tally: &'s WalkTally,
    last: &mut LastSlot<'s>,
    held: &mut Option<(u32, Protector<'s>)>,
) -> bool {
    match last.get(vm, batch.slot) {
        Some(slot) if slot.dirty_logging() && batch_in_slot(&batch, slot.npages()) => {
            if !protect {
                return false;
            }
            let reuse = matches!(held, Some((s, p)) if *s == batch.slot && !p.needbreak());
            if !reuse {
                // Unlock the previous section before taking the next.
                *held = None;
                *held = Some((batch.slot, Protector::new(slot.mmu().lock(), tally)));
            }
            if let Some((_, protector)) = held {
                protector.protect(batch.offset as usize, batch.mask as usize);
            }
            !reuse
        }
        _ => {
            counters::add(Counter::KD_RING_INVALID, 1);
            false
        }
    }
}
