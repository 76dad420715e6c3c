// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on the x86 shadow MMU: shadow paging (kvm_amd npt=0)
//! and the shadow pages of nested guests (kernel/0007-*.patch).
//!
//! The fault walk's step and the leaf record are the TDP MMU's
//! (`wp_all_tdp.rs`: [`kd_rs_wp_step`], [`kd_rs_wp_leaf`]), run with
//! `mmu_lock` held for write.  Two things differ, and this file serves them:
//!
//! - Shadow pages are shared.  The page a fault links may already hang under
//!   other parents, with writable entries and a generation of its own, or be
//!   a huge page just split, filled with writable entries.  Its state must
//!   stay as it is, so [`kd_rs_wp_link_shared`] only adds its writable
//!   entries to its record (keeping the record a superset, which is all a
//!   push-down needs) and links it without W; the step that follows pushes
//!   it down if it is stale and gives the link W back for a write.
//! - A vCPU changes roots without `mmu_lock` (a guest CR3 load, KVM's cached
//!   roots), so `KVM_WRITE_PROTECT_ALL_MEM` cannot find the roots in use.  It
//!   makes every vCPU load its root again instead (`wp_all_tdp.rs`), and KVM
//!   calls [`kd_rs_wp_load_root`] just before it hands a root to the
//!   hardware: a stale root is pushed down there.  A fault walk may still
//!   start from a stale root before that (on a vCPU that has not run since);
//!   it pushes down the tables it steps into and may give W to the root's
//!   entries, each recorded, and the root's push-down takes them back.
//!
//! The argument, and the model that checks it over shared tables and roots
//! switched without a lock, are in Documentation/wp-all.rst ("The shadow
//! MMU") and `tools/dirty-algos/tests/wp_all_shadow.rs`.

use crate::algo::wp_all::PushDown;
use crate::bindings;
use crate::wp_all_tdp::{clear_writable, table, vm_state, PRESENT, WRITABLE};
use bindings::kd_pcpu_counter as Pcpu;
use core::sync::atomic::Ordering;

/// A shadow page, new or shared, is about to be linked by `*spte`: record
/// its writable entries, link it without W.  `mmu_lock` is held for write.
#[no_mangle]
extern "C" fn kd_rs_wp_link_shared(
    _kvm: *mut bindings::kvm,
    child_wp: *mut bindings::kvm_dirty_table,
    child_spt: *mut u64,
    spte: *mut u64,
) {
    // SAFETY: a live shadow page, kept by mmu_lock; the hardware may set A/D
    // bits in its entries meanwhile, which the atomic loads allow.
    let (child, entries) = unsafe { table(child_wp, child_spt) };
    let mut recorded = false;
    for (i, entry) in entries.iter().enumerate() {
        // Relaxed: W is only set under mmu_lock, which this caller holds.
        let e = entry.load(Ordering::Relaxed);
        if e & PRESENT != 0 && e & WRITABLE != 0 {
            child.note_writable(i);
            recorded = true;
        }
    }
    if recorded {
        // SAFETY: per-CPU counter.
        unsafe { bindings::kd_count_pcpu(Pcpu::KD_WP_SHARED_LINKS) };
    }
    // SAFETY: KVM passes the SPTE it is about to install, a local.
    unsafe { *spte &= !WRITABLE };
}

/// A vCPU is about to run on the shadow root `table`: bring it to the VM's
/// generation if it is stale.  No lock is held; the vCPU's reference keeps
/// the root allocated.
#[no_mangle]
extern "C" fn kd_rs_wp_load_root(
    kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    spt: *mut u64,
) {
    // SAFETY: KVM calls the hook on a live VM whose WP-all is on.
    let state = unsafe { vm_state(kvm) };
    // SAFETY: the root is live (the vCPU holds a reference to it).
    let (root, entries) = unsafe { table(table_wp, spt) };
    // A WP-all that bumps the generation after this check also asks this
    // vCPU to load its root again, and the vCPU sees that request before it
    // enters the guest: checking without the lock is enough.
    if root.is_current(state.wp.generation()) {
        return;
    }
    // SAFETY: live VM; not held by this caller (KVM's contract).
    unsafe { bindings::kd_mmu_lock(kvm) };
    // Read again: stable under mmu_lock, which excludes WP-all.  Not Busy:
    // a push-down claims a table only while it holds mmu_lock.
    let push = root.push_down(state.wp.generation(), |i| clear_writable(&entries[i]));
    // SAFETY: taken above.
    unsafe { bindings::kd_mmu_unlock(kvm) };
    if let PushDown::Pushed { protected, .. } = push {
        // SAFETY: per-CPU counters.
        unsafe {
            bindings::kd_count_pcpu(Pcpu::KD_WP_ROOT_LOADS);
            bindings::kd_count_pcpu_add(Pcpu::KD_WP_PUSH_PROTECTED, u64::from(protected));
        }
    }
}
