// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on the x86 shadow MMU: shadow paging (kvm_amd npt=0)
//! and the shadow pages of nested guests (kernel/0007-*.patch).
//!
//! The fault walk's step and the leaf record are the TDP MMU's
//! ([`super::wp_all_x86`]: `kd_rs_wp_step`, `kd_rs_wp_leaf`), run with
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
//!   makes every vCPU load its root again instead ([`super::wp_all_x86`]),
//!   and KVM calls [`kd_rs_wp_load_root`] just before it hands a root to
//!   the hardware: a stale root is pushed down there.  A fault walk may still
//!   start from a stale root before that (on a vCPU that has not run since);
//!   it pushes down the tables it steps into and may give W to the root's
//!   entries, each recorded, and the root's push-down takes them back.
//!
//! The argument, and the model that checks it over shared tables and roots
//! switched without a lock, are in Documentation/wp-all.rst ("The shadow
//! MMU") and `tools/dirty-algos/tests/wp_all_shadow.rs`.

use crate::algo::wp_all::PushDown;
use crate::kvm::bindings;
use crate::kvm::counters::{self, PcpuCounter};
use crate::kvm::trace;
use crate::kvm::vm::Vm;
use crate::kvm::wp_all::{caller_u64, WpTable, PRESENT, WRITABLE};
use core::sync::atomic::Ordering;

/// A shadow page, new or shared, is about to be linked by `*spte`: record
/// its writable entries, link it without W.
///
/// # Safety
///
/// KVM calls it for a VM whose write-protect-all is on, with `mmu_lock`
/// held for write, which keeps the shadow page allocated (the hardware may
/// set A/D bits in its entries meanwhile, which atomic loads allow); `spte`
/// points to the entry KVM is about to install, a local of its.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_link_shared(
    _kvm: *mut bindings::kvm,
    child_wp: *mut bindings::kvm_dirty_table,
    child_spt: *mut u64,
    spte: *mut u64,
) {
    // SAFETY: KVM's contract above.
    let (child, spte) = unsafe { (WpTable::from_raw(child_wp, child_spt), caller_u64(spte)) };
    link_shared(child, spte)
}

fn link_shared(child: WpTable<'_>, spte: &mut u64) {
    let mut recorded = false;
    for (i, entry) in child.entries.iter().enumerate() {
        // Relaxed: W is only set under mmu_lock, which this caller holds.
        let e = entry.load(Ordering::Relaxed);
        if e & PRESENT != 0 && e & WRITABLE != 0 {
            child.wp.note_writable(i);
            recorded = true;
        }
    }
    if recorded {
        counters::pcpu_inc(PcpuCounter::KD_WP_SHARED_LINKS);
    }
    *spte &= !WRITABLE;
}

/// A vCPU is about to run on the shadow root `table`: bring it to the VM's
/// generation if it is stale.
///
/// # Safety
///
/// KVM calls it on a live VM whose write-protect-all is on, without
/// `mmu_lock`; the vCPU's reference keeps the root allocated.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_load_root(
    kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    spt: *mut u64,
) {
    // SAFETY: KVM's contract above.
    let (vm, root) = unsafe { (Vm::from_raw(kvm), WpTable::from_raw(table_wp, spt)) };
    load_root(vm, root)
}

fn load_root(vm: Vm<'_>, root: WpTable<'_>) {
    let state = vm.wp();
    // A write-protect-all that bumps the generation after this check also
    // asks this vCPU to load its root again, and the vCPU sees that request
    // before it enters the guest: checking without the lock is enough.
    if root.wp.is_current(state.wp.generation()) {
        return;
    }
    let push = {
        let _locked = vm.lock_mmu();
        // Read again: stable under mmu_lock, which excludes write-protect-all.
        // Not Busy: a push-down claims a table only while it holds mmu_lock.
        root.wp
            .push_down(state.wp.generation(), |i| root.clear_writable(i))
    };
    if let PushDown::Pushed { protected, .. } = push {
        counters::pcpu_inc(PcpuCounter::KD_WP_ROOT_LOADS);
        counters::pcpu_add(PcpuCounter::KD_WP_PUSH_PROTECTED, u64::from(protected));
        // Level 0: KVM's hook does not pass the root's height.
        trace::push_down(0, protected, 0);
    }
}
