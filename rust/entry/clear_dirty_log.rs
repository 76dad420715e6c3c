// SPDX-License-Identifier: GPL-2.0

//! `KVM_CLEAR_DIRTY_LOG`: validate like upstream, copy the user bitmap in,
//! clear and re-protect what was really cleared, flush once.

use super::to_c;
use crate::algo::clear::clear;
use crate::algo::harvest::BITS_PER_WORD;
use crate::algo::slot::pages_in_slot;
use crate::kvm::bindings;
use crate::kvm::counters::{self, Counter};
use crate::kvm::dirty_log::DirtyLogVm;
use crate::kvm::memslot::copy_from_user;
use crate::kvm::popcnt::with_popcnt;
use crate::kvm::trace::{self, Harvest};
use crate::kvm::wp_masked::{Protector, WalkTally};
use kernel::ffi::c_int;
use kernel::prelude::*;

/// `->clear_dirty_log()`, with the arguments the shim's ops entry read.
///
/// # Safety
///
/// KVM calls it from `KVM_CLEAR_DIRTY_LOG` on a live VM whose `slots_lock`
/// it holds until the call returns; `facts` is `kd_vm_facts()` of the VM
/// and `memslot` `kd_memslot()` of the ioctl's slot, read under that hold;
/// `user_bitmap` is the ioctl's user pointer.
#[no_mangle]
unsafe extern "C" fn kd_rs_clear_dirty_log(
    kvm: *mut bindings::kvm,
    facts: *const bindings::kd_vm_facts,
    memslot: *const bindings::kd_memslot,
    first_page: u64,
    num_pages: u32,
    user_bitmap: u64,
) -> c_int {
    // SAFETY: the contract above.
    let mut vm = unsafe { DirtyLogVm::new(kvm, facts, memslot) };
    to_c(clear_dirty_log(&mut vm, first_page, num_pages, user_bitmap))
}

fn clear_dirty_log(
    vm: &mut DirtyLogVm<'_>,
    first_page: u64,
    num_pages: u32,
    user_bitmap: u64,
) -> Result {
    counters::add(Counter::KD_CLEAR_DIRTY_LOG, 1);
    serve(vm, first_page, num_pages, user_bitmap)
        .inspect_err(|_| counters::add(Counter::KD_CLEAR_DIRTY_LOG_ERR, 1))
}

/// Checks upstream makes, in upstream's order and with its error codes
/// (kvm_clear_dirty_log_protect): ENXIO for a ring-only VM; EINVAL for a bad
/// address space or slot id, or a first page not a multiple of 64; ENOENT
/// for a missing slot or one without dirty logging; EINVAL for a range
/// outside the slot, or one that ends before the slot's end at a page that
/// is not a multiple of 64; EFAULT for a bad user buffer.
fn serve(vm: &mut DirtyLogVm<'_>, first_page: u64, num_pages: u32, user_bitmap: u64) -> Result {
    if !vm.vm.uses_dirty_bitmap() {
        return Err(ENXIO);
    }
    if first_page % 64 != 0 {
        return Err(EINVAL);
    }
    let protect = vm.vm.harvest_protects();
    let mut memslot = vm.memslot()?;
    let npages = memslot.npages();
    let slot = memslot.name();
    let mmu = memslot.mmu();
    let bitmaps = memslot.bitmaps().ok_or(ENOENT)?;
    let num = u64::from(num_pages);
    if !pages_in_slot(first_page, num, npages) || (num < npages - first_page && num % 64 != 0) {
        return Err(EINVAL);
    }

    mmu.sync_dirty_log();
    // In range: words <= the slot's words from first_page on, so the second
    // bitmap (as long as the live one) holds them.
    let words = (num_pages as usize).div_ceil(BITS_PER_WORD);
    let requested = &mut bitmaps.buffer[..words];
    copy_from_user(requested, user_bitmap)?;

    let first_word = first_page as usize / BITS_PER_WORD;
    let stats = if protect {
        let tally = WalkTally::default();
        let mut protector = Protector::new(mmu.lock(), &tally);
        with_popcnt(|| {
            clear(bitmaps.live, first_word, requested, |page, mask| {
                protector.protect(page, mask)
            })
        })
    } else {
        // Write-protect-all: user space protects everything next.
        counters::add(Counter::KD_HARVEST_NO_WP, 1);
        with_popcnt(|| clear(bitmaps.live, first_word, requested, |_, _| {}))
    };
    if stats.any_protected() {
        mmu.flush_tlbs();
        counters::add(Counter::KD_TLB_FLUSHES, 1);
    }
    counters::add(Counter::KD_PAGES_CLEARED, stats.pages);
    trace::harvest(
        Harvest::Clear { first_page },
        slot,
        stats.words_scanned,
        stats.pages,
        protect,
    );
    Ok(())
}
