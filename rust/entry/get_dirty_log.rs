// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_DIRTY_LOG`: validate like upstream, harvest, protect, flush,
//! copy (without the protect and the flush for a VM that uses
//! write-protect-all); with manual protect, copy the live bitmap as it is.

use super::to_c;
use crate::algo::harvest::harvest;
use crate::algo::slot::SlotId;
use crate::kvm::bindings;
use crate::kvm::counters::{self, Counter};
use crate::kvm::dirty_log::DirtyLogVm;
use crate::kvm::memslot::{copy_live_to_user, Bitmaps};
use crate::kvm::mmu::SlotMmu;
use crate::kvm::popcnt::with_popcnt;
use crate::kvm::trace::{self, Harvest};
use crate::kvm::wp_masked::{Protector, WalkTally};
use kernel::ffi::c_int;
use kernel::prelude::*;

/// `->get_dirty_log()`, with the arguments the shim's ops entry read.
///
/// # Safety
///
/// KVM calls it from `KVM_GET_DIRTY_LOG` on a live VM whose `slots_lock`
/// it holds until the call returns; `facts` is `kd_vm_facts()` of the VM
/// and `memslot` `kd_memslot()` of the ioctl's slot, read under that hold;
/// `user_bitmap` is the ioctl's user pointer.
#[no_mangle]
unsafe extern "C" fn kd_rs_get_dirty_log(
    kvm: *mut bindings::kvm,
    facts: *const bindings::kd_vm_facts,
    memslot: *const bindings::kd_memslot,
    user_bitmap: u64,
) -> c_int {
    // SAFETY: the contract above.
    let mut vm = unsafe { DirtyLogVm::new(kvm, facts, memslot) };
    to_c(get_dirty_log(&mut vm, user_bitmap))
}

fn get_dirty_log(vm: &mut DirtyLogVm<'_>, user_bitmap: u64) -> Result {
    counters::add(Counter::KD_GET_DIRTY_LOG, 1);
    serve(vm, user_bitmap).inspect_err(|_| counters::add(Counter::KD_GET_DIRTY_LOG_ERR, 1))
}

/// Error codes and their order are upstream's (kvm_get_dirty_log_protect):
/// ENXIO for a ring-only VM, EINVAL for a bad address space or slot id,
/// ENOENT for a missing slot or one without dirty logging, EFAULT for a bad
/// user buffer.
fn serve(vm: &mut DirtyLogVm<'_>, user_bitmap: u64) -> Result {
    if !vm.vm.uses_dirty_bitmap() {
        return Err(ENXIO);
    }
    let manual_protect = vm.vm.manual_protect();
    // Asked only of a harvest (a manual-protect GET protects nothing).
    let protect = !manual_protect && vm.vm.harvest_protects();
    let mut memslot = vm.memslot()?;
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
    let slot = memslot.name();
    let bitmaps = memslot.bitmaps().ok_or(ENOENT)?;
    mmu.sync_dirty_log();
    harvest_to_user(mmu, bitmaps, protect, slot, user_bitmap)
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
    slot: SlotId,
    user_bitmap: u64,
) -> Result {
    let stats = if protect {
        let tally = WalkTally::default();
        let mut protector = Protector::new(mmu.lock(), &tally);
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
    trace::harvest(
        Harvest::Get,
        slot,
        stats.words_scanned,
        stats.pages,
        protect,
    );
    bitmaps.copy_buffer_to_user(user_bitmap)
}
