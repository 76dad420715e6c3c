// SPDX-License-Identifier: GPL-2.0

//! KVM_GET_DIRTY_LOG: validate like upstream, harvest, protect, flush, copy
//! (without the protect and the flush for a VM that uses write-protect-all).

use crate::algo::harvest::harvest;
use crate::bindings;
use crate::counters::{self, Counter};
use crate::popcnt::with_popcnt;
use crate::vm::{Bitmaps, SlotMmu, SlotsLocked};
use crate::wp_masked::WalkTally;
use core::sync::atomic::AtomicUsize;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// The ops-table entry: `slot` and `user_bitmap` are `struct kvm_dirty_log`.
#[no_mangle]
extern "C" fn kd_rs_get_dirty_log(
    kvm: *mut bindings::kvm,
    facts: *const bindings::kd_vm_facts,
    memslot: *const bindings::kd_memslot,
    slot: u32,
    user_bitmap: u64,
) -> i32 {
    // SAFETY: KVM calls get_dirty_log on a live VM with slots_lock held,
    // and holds it until we return; the shim read `facts` and `memslot`
    // under it.
    let mut vm = unsafe { SlotsLocked::with_facts(kvm, &*facts) };
    counters::add(Counter::KD_GET_DIRTY_LOG, 1);
    // SAFETY: the C entry's kd_memslot() of `slot`, or NULL slot (above).
    let info = unsafe { &*memslot };
    match get_dirty_log(&mut vm, info, slot, user_bitmap) {
        Ok(()) => 0,
        Err(e) => {
            counters::add(Counter::KD_GET_DIRTY_LOG_ERR, 1);
            e.to_errno()
        }
    }
}

/// Error codes and their order are upstream's (kvm_get_dirty_log_protect):
/// ENXIO for a ring-only VM, EINVAL for a bad address space or slot id,
/// ENOENT for a missing slot or one without dirty logging, EFAULT for a bad
/// user buffer.
fn get_dirty_log(
    vm: &mut SlotsLocked<'_>,
    info: &bindings::kd_memslot,
    slot: u32,
    user_bitmap: u64,
) -> Result {
    if !vm.uses_dirty_bitmap() {
        return Err(ENXIO);
    }
    let (as_id, id) = (slot >> 16, slot & 0xffff);
    if as_id >= vm.nr_address_spaces() || id >= vm.user_mem_slots() {
        return Err(EINVAL);
    }
    let manual_protect = vm.manual_protect();
    // Asked only of a harvest (a manual-protect GET protects nothing).
    let protect = !manual_protect && vm.harvest_protects();
    // SAFETY: `info` is kd_memslot() of this as_id and id, in range here,
    // read by the C entry under the slots_lock hold `vm` borrows.
    let mut memslot = unsafe { vm.memslot(info) }.ok_or(ENOENT)?;
    let mmu = memslot.mmu();
    if manual_protect {
        // Pages are re-protected by KVM_CLEAR_DIRTY_LOG: report, keep bits.
        // As upstream, the live bitmap goes to user space as it is, in one
        // pass: no snapshot, no popcount and no word count for a counter
        // (each a few percent of upstream's time on arm64 under TCG).
        // What CLEAR re-protects is counted there (pages_cleared).
        let live = memslot.live().ok_or(ENOENT)?;
        mmu.sync_dirty_log();
        return copy_live_to_user(live, user_bitmap);
    }
    let bitmaps = memslot.bitmaps().ok_or(ENOENT)?;
    mmu.sync_dirty_log();
    harvest_to_user(mmu, bitmaps, protect, user_bitmap)
}

/// The harvest: snapshot and clear the live bitmap word by word, protect
/// what it held (unless write-protect-all does), flush, copy the snapshot.
/// Not inlined: its frame (a protector of about 1 KiB, six saved register
/// pairs) made every manual-protect GET, a copy of a few hundred
/// instructions, pay for it (tools/tcg-profile).
#[inline(never)]
fn harvest_to_user(
    mmu: SlotMmu<'_>,
    bitmaps: Bitmaps<'_>,
    protect: bool,
    user_bitmap: u64,
) -> Result {
    let stats = if protect {
        let tally = WalkTally::default();
        let mut protector = mmu.lock().protector(&tally);
        with_popcnt(|| {
            harvest(bitmaps.live, bitmaps.buffer, |first, mask| {
                protector.protect(first, mask)
            })
        })
    } else {
        // Write-protect-all: user space protects everything next,
        // before it copies (Documentation/wp-all.rst).
        counters::add(Counter::KD_HARVEST_NO_WP, 1);
        with_popcnt(|| harvest(bitmaps.live, bitmaps.buffer, |_, _| {}))
    };
    // One flush for the whole slot, outside mmu_lock but before user
    // space sees the snapshot: from here every write faults and sets
    // its bit again for the next call.
    if protect && stats.any_dirty() {
        mmu.flush_tlbs();
        counters::add(Counter::KD_TLB_FLUSHES, 1);
    }
    counters::add(Counter::KD_WORDS_SCANNED, stats.words_scanned);
    counters::add(Counter::KD_WORDS_DIRTY, stats.words_dirty);
    counters::add(Counter::KD_PAGES_HARVESTED, stats.pages);
    if protect {
        counters::add(Counter::KD_PAGES_PROTECTED, stats.pages);
    }

    let bytes = core::mem::size_of_val(bitmaps.buffer);
    // SAFETY: `buffer` is `bytes` initialised bytes; u8 has no alignment.
    let snapshot =
        unsafe { core::slice::from_raw_parts(bitmaps.buffer.as_ptr().cast::<u8>(), bytes) };
    UserSlice::new(user_bitmap as usize, bytes)
        .writer()
        .write_slice(snapshot)
}

/// Copies the slot's live bitmap to user space, as upstream's manual-protect
/// GET does: vCPUs go on setting bits while it is copied; a bit set during
/// the copy is in this report or stays set for the next, as nothing here
/// clears one.
fn copy_live_to_user(live: &[AtomicUsize], user_bitmap: u64) -> Result {
    let bytes = core::mem::size_of_val(live);
    // SAFETY: `live` is `bytes` bytes of the slot's bitmap, kept allocated
    // by slots_lock; copy_to_user() checks the user range and reads the
    // words as upstream's C does, racing only with atomic bit sets.
    let left = unsafe {
        kernel::bindings::copy_to_user(
            user_bitmap as *mut core::ffi::c_void,
            live.as_ptr().cast(),
            bytes as _,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}
