// SPDX-License-Identifier: GPL-2.0

//! The dirty ring's two kernel entry points: mark_page_dirty (push, or set
//! the bitmap bit) on the vCPU, and KVM_RESET_DIRTY_RINGS.

use crate::algo::ring::{self, batch_in_slot, Batch, Pushed};
use crate::bindings;
use crate::counters::{self, Counter};
use crate::vm::{RingRef, SlotRef, SlotsLockGuard, SlotsLocked};
use crate::wp_masked::{Protector, WalkTally};
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::prelude::*;

/// Entries reset between two checks for a signal and a chance to reschedule.
const RESET_BATCH: u32 = 256;

fn count_pcpu(which: bindings::kd_pcpu_counter) {
    // SAFETY: a per-CPU increment, safe in any context.
    unsafe { bindings::kd_count_pcpu(which) }
}

/// The hot path: a page of a dirty-tracked slot was written.  `ring` is the
/// running vCPU's ring if the VM uses rings (else NULL); `bitmap` the slot's
/// dirty bitmap (NULL if it has none).  Any context: no sleeping, no lock.
#[no_mangle]
extern "C" fn kd_rs_mark_page_dirty(
    vcpu: *mut bindings::kvm_vcpu,
    ring: *mut bindings::kvm_dirty_ring,
    bitmap: *mut usize,
    slot: u32,
    rel_gfn: u64,
) {
    // SAFETY: KVM passes the running vCPU's own ring, alive as long as it.
    if let Some(ring) = unsafe { RingRef::new(ring) } {
        count_pcpu(bindings::kd_pcpu_counter::KD_RING_PUSHES);
        match ring::push(ring.state, ring.entries, slot, rel_gfn) {
            Pushed::Ok => return,
            Pushed::SoftFull => counters::add(Counter::KD_RING_SOFT_FULL, 1),
            Pushed::Full => counters::add(Counter::KD_RING_FULL, 1),
        }
        // SAFETY: `ring` is non-NULL only with a running vCPU.
        unsafe { bindings::kd_request_soft_full(vcpu) };
        return;
    }
    if bitmap.is_null() {
        return;
    }
    let bits = usize::BITS as u64;
    // SAFETY: rel_gfn < the slot's npages (KVM computed it from the slot),
    // so the word is inside the bitmap; every access to the bitmap is
    // atomic (set_bit_le(), xchg, fetch_andnot).
    let word = unsafe { &*bitmap.add((rel_gfn / bits) as usize).cast::<AtomicUsize>() };
    // Relaxed, like set_bit(): the harvest's exchange orders it.
    word.fetch_or(1 << (rel_gfn % bits), Ordering::Relaxed);
    count_pcpu(bindings::kd_pcpu_counter::KD_BITMAP_MARKS);
}

/// KVM_RESET_DIRTY_RINGS: hand back every harvested entry of every vCPU's
/// ring, re-protecting their pages; returns the number of entries reset, or
/// -EINTR if a signal arrived first (what was reset stays reset, protected
/// and flushed; user space calls again for the rest).
#[no_mangle]
extern "C" fn kd_rs_reset_dirty_rings(kvm: *mut bindings::kvm) -> i32 {
    counters::add(Counter::KD_RING_RESETS, 1);
    // SAFETY: KVM calls this from the VM ioctl, on a live VM, without
    // slots_lock.
    let mut guard = unsafe { SlotsLockGuard::lock(kvm) };
    let vm = guard.vm();
    let protect = vm.harvest_protects();
    let mut total: u32 = 0;
    let mut interrupted = false;
    // The batches' walk counters, added once at the end.
    let tally = WalkTally::default();
    let mut sections: u64 = 0;
    let mut last = LastSlot::default();

    'rings: for ring in vm.dirty_rings().flatten() {
        loop {
            if kernel::current!().signal_pending() {
                interrupted = true;
                break 'rings;
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
            // SAFETY: may sleep: we hold only slots_lock, a mutex.
            unsafe { bindings::kd_cond_resched() };
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
    drop(vm);
    drop(guard);
    if interrupted {
        counters::add(Counter::KD_RING_RESET_EINTR, 1);
        return EINTR.to_errno();
    }
    // The ioctl returns an int; a reset never exceeds the rings' entries.
    total.min(i32::MAX as u32) as i32
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
    /// The memslot `slot` (address space in the high 16 bits, id in the low)
    /// names, if any.
    fn get(&mut self, vm: &'s SlotsLocked<'_>, slot: u32) -> Option<SlotRef<'s>> {
        match self.looked_up {
            Some((key, memslot)) if key == slot => memslot,
            _ => {
                let (as_id, id) = (slot >> 16, slot & 0xffff);
                let valid = as_id < vm.nr_address_spaces() && id < vm.user_mem_slots();
                let memslot = if valid { vm.slot(as_id, id) } else { None };
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
                *held = Some((batch.slot, slot.mmu().lock().protector(tally)));
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
