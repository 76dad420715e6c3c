// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on arm64 stage 2: the kernel side of `wp_all_stage2.rs`
//! (kernel/0008-*.patch).
//!
//! `KVM_WRITE_PROTECT_ALL_MEM` makes the start level's table descriptors
//! pending and its writable blocks read-only, under `mmu_lock` held for
//! write, then invalidates the VMID's TLBs once.  Every stage-2 walker that
//! later meets a pending descriptor (a fault's map walk first of all, but
//! also unmap, split, age and write-protect walks) calls
//! [`kd_rs_wp_s2_push`] before it acts on it.  Why that loses no write, and
//! why the push-down needs no TLB invalidation, is argued in
//! `wp_all_stage2.rs` and checked by `tools/dirty-algos/tests/wp_all_stage2.rs`.
//!
//! The VM's generation (`VmWp`) is bumped as on x86, for the record; the
//! mechanism itself needs none: a pending descriptor is its own "stale"
//! mark.

use crate::algo::wp_all_stage2::{
    push_down, write_protect_top, PushDown, LAST_LEVEL, S2AP_W, VALID,
};
use crate::bindings;
use crate::wp_all_tdp::{count_push_height, VmWpState};
use bindings::kd_pcpu_counter as Pcpu;
use core::sync::atomic::AtomicU64;
use kernel::prelude::*;

/// What `kd_wp_all_supported()` must report on arm64 (the shim reads
/// them from asm/kvm_pgtable.h), so that the bits above are the hardware's.
pub(crate) const PRESENT: u64 = VALID;
pub(crate) const WRITABLE: u64 = S2AP_W;

/// Turns the push-down callback on for the VM's stage 2, before the VM has
/// vCPUs.
///
/// # Safety
///
/// `kvm` is a live VM, `kvm->lock` held.
pub(crate) unsafe fn enable(kvm: *mut bindings::kvm) -> i32 {
    // SAFETY: live VM (caller).
    unsafe { bindings::kd_s2_wp_all_enable(kvm) }
}

/// The start level's descriptors made pending (tables) or read-only
/// (blocks) under `mmu_lock` held for write, then one TLB invalidation of
/// the VMID.  Returns the descriptors changed.
///
/// # Safety
///
/// `kvm` is a live VM whose WP-all is on, `state` its state; the caller
/// does not hold `mmu_lock`.
pub(crate) unsafe fn write_protect_all(kvm: *mut bindings::kvm, state: &VmWpState) -> u64 {
    let mut changed = 0;
    // SAFETY: live VM; mmu_lock for write excludes every walker, hence
    // every push-down.
    unsafe { bindings::kd_mmu_lock(kvm) };
    state.wp.write_protect_all(|_gen| {
        let (mut n, mut level) = (0u32, 0i32);
        // SAFETY: live VM, mmu_lock held for write (asserted by KVM).
        let pgd = unsafe { bindings::kd_s2_pgd(kvm, &mut n, &mut level) };
        if pgd.is_null() {
            return;
        }
        // SAFETY: KVM's start-level table(s), `n` entries, allocated for
        // the VM's life; changed only atomically while others can reach
        // them (nobody can now: mmu_lock for write).
        let entries = unsafe { core::slice::from_raw_parts(pgd.cast::<AtomicU64>(), n as usize) };
        let done = write_protect_top(entries, level);
        changed = u64::from(done.tables) + u64::from(done.leaves);
    });
    // SAFETY: taken above.
    unsafe { bindings::kd_mmu_unlock(kvm) };
    // The "break" of break-before-make for everything below the pending
    // descriptors: no TLB or walk-cache entry made before survives, so no
    // write gets through unfaulted (kvm_flush_remote_tlbs: VMALLS12E1IS).
    // SAFETY: live VM.
    unsafe { bindings::kd_flush_tlbs(kvm) };
    changed
}

/// A stage-2 walker met the pending descriptor `*ptep` at `level`, whose
/// table is `child` (`entries` descriptors): protect the child and make the
/// descriptor valid again (0), or -EAGAIN while another walker does it.
/// `mmu_lock` is held, for read (with RCU) or for write.
#[no_mangle]
extern "C" fn kd_rs_wp_s2_push(
    _kvm: *mut bindings::kvm,
    ptep: *mut u64,
    _old: u64,
    level: i32,
    child: *mut u64,
    entries: u32,
) -> i32 {
    // SAFETY: KVM passes a descriptor of the VM's stage 2 and the table it
    // names, both kept allocated by mmu_lock and the walk's RCU section;
    // descriptors are only changed atomically while others can reach them.
    let (parent, child) = unsafe {
        (
            &*ptep.cast::<AtomicU64>(),
            core::slice::from_raw_parts(child.cast::<AtomicU64>(), entries as usize),
        )
    };
    match push_down(parent, level, |_| child) {
        PushDown::Pushed(done) => {
            // Counted by the child's height, as on x86: 1 = a table of
            // pages (level 3), 2 = of 2M blocks, 3, 4 = higher.
            count_push_height(LAST_LEVEL - level, done.leaves);
            // SAFETY: per-CPU counter, any context.
            unsafe { bindings::kd_count_pcpu_add(Pcpu::KD_WP_PUSH_PENDED, u64::from(done.tables)) };
            0
        }
        PushDown::NotPending => 0,
        PushDown::Busy => {
            // SAFETY: per-CPU counter.
            unsafe { bindings::kd_count_pcpu(Pcpu::KD_WP_RETRIES) };
            EAGAIN.to_errno()
        }
    }
}
