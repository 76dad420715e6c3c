// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on arm64 stage 2, by pending table descriptors
//! (`crate::algo::wp_all_stage2`): the start level's protect of
//! `KVM_WRITE_PROTECT_ALL_MEM`, and the push-down hook of KVM's stage-2
//! walkers (kernel/0008-*.patch).
//!
//! `KVM_WRITE_PROTECT_ALL_MEM` makes the start level's table descriptors
//! pending and its writable blocks read-only, under `mmu_lock` held for
//! write, then invalidates the VMID's TLBs once.  Every stage-2 walker that
//! later meets a pending descriptor (a fault's map walk first of all, but
//! also unmap, split, age and write-protect walks) calls
//! [`kd_rs_wp_s2_push`] before it acts on it.  Why that loses no write, and
//! why the push-down needs no TLB invalidation, is argued in
//! `crate::algo::wp_all_stage2` and checked by
//! `tools/dirty-algos/tests/wp_all_stage2.rs`.
//!
//! The VM's generation (`VmWp`) is bumped as on x86, for the record; the
//! mechanism itself needs none: a pending descriptor is its own "stale"
//! mark.

use super::to_c;
use super::wp_all::WpAllDone;
use crate::algo::wp_all_stage2::{push_down, write_protect_top, PushDown, LAST_LEVEL};
use crate::kvm::bindings;
use crate::kvm::counters::{self, PcpuCounter};
use crate::kvm::trace;
use crate::kvm::vm::Vm;
use crate::kvm::wp_all::stage2_pending;
use core::sync::atomic::AtomicU64;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// What `kd_wp_all_supported()` must report on arm64 (the shim reads
/// them from asm/kvm_pgtable.h), so that the bits the algorithm uses are
/// the hardware's.
pub(super) use crate::algo::wp_all_stage2::{S2AP_W as WRITABLE, VALID as PRESENT};

/// The start level's descriptors made pending (tables) or read-only
/// (blocks) under `mmu_lock` held for write, then one TLB invalidation of
/// the VMID.  Returns the root (the start level's tables, if the VM has a
/// stage 2) and the descriptors changed.
pub(super) fn write_protect_all(vm: Vm<'_>) -> WpAllDone {
    let state = vm.wp();
    let mut done = WpAllDone {
        roots: 0,
        entries: 0,
    };
    {
        // mmu_lock for write excludes every walker, hence every push-down.
        let locked = vm.lock_mmu();
        state.wp.write_protect_all(|_gen| {
            if let Some((entries, level)) = locked.stage2_start() {
                let top = write_protect_top(entries, level);
                done.roots = 1;
                done.entries = u64::from(top.tables) + u64::from(top.leaves);
            }
        });
    }
    // The "break" of break-before-make for everything below the pending
    // descriptors: no TLB or walk-cache entry made before survives, so no
    // write gets through unfaulted (kvm_flush_remote_tlbs: VMALLS12E1IS).
    vm.flush_tlbs();
    done
}

/// A stage-2 walker met the pending descriptor `*ptep` at `level`, whose
/// table is `child` (`entries` descriptors): protect the child and make the
/// descriptor valid again (0), or `-EAGAIN` while another walker does it.
///
/// # Safety
///
/// KVM calls it (through the shim) with `mmu_lock` held, for read (with
/// RCU) or for write: `ptep` is a descriptor of the VM's stage 2 and
/// `child` the table of `entries` descriptors it names, both kept allocated
/// meanwhile, and descriptors are only changed atomically while others can
/// reach them.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_s2_push(
    _kvm: *mut bindings::kvm,
    ptep: *mut u64,
    _old: u64,
    level: c_int,
    child: *mut u64,
    entries: u32,
) -> c_int {
    // SAFETY: KVM's contract above.
    let (parent, child) = unsafe { stage2_pending(ptep, child, entries) };
    to_c(push(parent, level, child))
}

#[inline(always)]
fn push(parent: &AtomicU64, level: c_int, child: &[AtomicU64]) -> Result {
    match push_down(parent, level, |_| child) {
        PushDown::Pushed(done) => {
            // Counted by the child's height, as on x86: 1 = a table of
            // pages (level 3), 2 = of 2M blocks, 3, 4 = higher.
            counters::count_push_down(LAST_LEVEL - level, done.leaves);
            counters::pcpu_add(PcpuCounter::KD_WP_PUSH_PENDED, u64::from(done.tables));
            trace::push_down(LAST_LEVEL - level, done.leaves, done.tables);
            Ok(())
        }
        PushDown::NotPending => Ok(()),
        PushDown::Busy => {
            counters::pcpu_inc(PcpuCounter::KD_WP_RETRIES);
            Err(EAGAIN)
        }
    }
}
