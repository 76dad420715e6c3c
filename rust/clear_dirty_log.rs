// SPDX-License-Identifier: GPL-2.0

//! KVM_CLEAR_DIRTY_LOG: validate like upstream, copy the user bitmap in,
//! clear and re-protect what was really cleared, flush once.

use crate::algo::clear::clear;
use crate::algo::harvest::BITS_PER_WORD;
use crate::bindings;
use crate::counters::{self, Counter};
use crate::popcnt::with_popcnt;
use crate::vm::SlotsLocked;
use crate::wp_masked::WalkTally;
use kernel::prelude::*;

/// The ops-table entry, with the fields of `struct kvm_clear_dirty_log`.
#[no_mangle]
extern "C" fn kd_rs_clear_dirty_log(
    kvm: *mut bindings::kvm,
    facts: *const bindings::kd_vm_facts,
    memslot: *const bindings::kd_memslot,
    slot: u32,
    first_page: u64,
    num_pages: u32,
    user_bitmap: u64,
) -> i32 {
    // SAFETY: KVM calls clear_dirty_log on a live VM with slots_lock held,
    // and holds it until we return; the shim read `facts` and `memslot`
    // under it.
    let mut vm = unsafe { SlotsLocked::with_facts(kvm, &*facts) };
    counters::add(Counter::KD_CLEAR_DIRTY_LOG, 1);
    // SAFETY: the C entry's kd_memslot() of `slot`, or NULL slot (above).
    let info = unsafe { &*memslot };
    match clear_dirty_log(&mut vm, info, slot, first_page, num_pages, user_bitmap) {
        Ok(()) => 0,
        Err(e) => {
            counters::add(Counter::KD_CLEAR_DIRTY_LOG_ERR, 1);
            e.to_errno()
        }
    }
}

/// Checks upstream makes, in upstream's order and with its error codes
/// (kvm_clear_dirty_log_protect): ENXIO for a ring-only VM; EINVAL for a bad
/// address space or slot id, or a first page not a multiple of 64; ENOENT
/// for a missing slot or one without dirty logging; EINVAL for a range
/// outside the slot, or one that ends before the slot's end at a page that
/// is not a multiple of 64; EFAULT for a bad user buffer.
fn clear_dirty_log(
    vm: &mut SlotsLocked<'_>,
    info: &bindings::kd_memslot,
    slot: u32,
    first_page: u64,
    num_pages: u32,
    user_bitmap: u64,
) -> Result {
    if !vm.uses_dirty_bitmap() {
        return Err(ENXIO);
    }
    let (as_id, id) = (slot >> 16, slot & 0xffff);
    if as_id >= vm.nr_address_spaces() || id >= vm.user_mem_slots() {
        return Err(EINVAL);
    }
    if first_page % 64 != 0 {
        return Err(EINVAL);
    }
    let protect = vm.harvest_protects();
    // SAFETY: `info` is kd_memslot() of this as_id and id, in range here,
    // read by the C entry under the slots_lock hold `vm` borrows.
    let mut memslot = unsafe { vm.memslot(info) }.ok_or(ENOENT)?;
    let npages = memslot.npages();
    let mmu = memslot.mmu();
    let bitmaps = memslot.bitmaps().ok_or(ENOENT)?;
    let num = u64::from(num_pages);
    if first_page > npages
        || num > npages - first_page
        || (num < npages - first_page && num % 64 != 0)
    {
        return Err(EINVAL);
    }

    mmu.sync_dirty_log();
    // In range: words <= the slot's words from first_page on, so the second
    // bitmap (as long as the live one) holds them.
    let words = (num_pages as usize).div_ceil(BITS_PER_WORD);
    let requested = &mut bitmaps.buffer[..words];
    let bytes = core::mem::size_of_val(requested);
    // Not `UserSlice`: its reader and the helper under it were 45
    // instructions of a CLEAR that protects one word, upstream's inline
    // copy_from_user() half that (tools/tcg-profile, arm64).
    // SAFETY: `requested` is `bytes` writable bytes of the second bitmap,
    // ours under slots_lock, of plain integers (any bytes user space writes
    // are valid values); copy_from_user() checks the user range.
    let left = unsafe {
        kernel::bindings::copy_from_user(
            requested.as_mut_ptr().cast(),
            user_bitmap as *const core::ffi::c_void,
            bytes as _,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }

    let first_word = first_page as usize / BITS_PER_WORD;
    let stats = if protect {
        let tally = WalkTally::default();
        let mut protector = mmu.lock().protector(&tally);
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
    Ok(())
}
