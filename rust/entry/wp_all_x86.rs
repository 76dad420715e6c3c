// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on x86, by generation (`crate::algo::wp_all`): the
//! root write-protect of `KVM_WRITE_PROTECT_ALL_MEM`, and the hooks of the
//! fault walk that push the protection down, shared by the TDP MMU and the
//! shadow MMU (whose own two are in [`super::wp_all_shadow`]).
//!
//! KVM calls the hooks from its fault walk and table links
//! (`kernel/0003-*.patch`, 0006 and 0007) for a VM that turned
//! `KVM_CAP_DIRTY_WP_ALL` on.  What each hook does, and why no write after
//! a write-protect-all goes unlogged, is argued in `crate::algo::wp_all`;
//! here are the rules that are about KVM's tables:
//!
//! - A linked non-leaf entry never carries W ([`kd_rs_wp_link`]); only the
//!   fault walk gives it W back ([`kd_rs_wp_step`]), after recording it in
//!   its table, which the walk has made current.  So every writable entry is
//!   recorded, and a record is written only in a table no push-down can be
//!   running in.  A table linked by splitting a huge page loses W on its
//!   entries too, and starts current with nothing recorded.
//! - A leaf that the fault path makes writable is recorded first
//!   ([`kd_rs_wp_leaf`]); KVM logs it (`make_spte` marks the page dirty).
//!   The lockless fast page fault, which KVM lets through only where every
//!   entry above the leaf has W, records it around its cmpxchg
//!   ([`kd_rs_wp_fast_begin`], [`kd_rs_wp_fast_end`]); KVM logs it too.
//! - Entries are changed with atomic read-modify-writes only, as the TDP MMU
//!   does under `mmu_lock` held for read: W cleared on a present entry, or
//!   set on the one non-leaf entry the walk stands on.  Clearing W needs no
//!   other bookkeeping with A/D bits on (the Dirty bit keeps the page's
//!   state), which is why only the TDP MMU with A/D bits is served.
//!
//! The SPTE format is checked once, when a VM turns the capability on.

use super::to_c;
use super::wp_all::WpAllDone;
use crate::algo::wp_all::{PushDown, TableWp, ENTRIES};
use crate::kvm::bindings;
use crate::kvm::counters::{self, PcpuCounter};
use crate::kvm::trace;
use crate::kvm::vm::Vm;
use crate::kvm::wp_all::{caller_u64, table_state, WpTable};
use core::sync::atomic::Ordering;
use kernel::ffi::c_int;
use kernel::prelude::*;

pub(super) use crate::kvm::wp_all::{PRESENT, WRITABLE};

/// A new generation, W cleared on the recorded entries of every root (at
/// most 512 each, whatever the guest's size), then one TLB flush of every
/// vCPU.  Returns the roots and the entries write-protected.
pub(super) fn write_protect_all(vm: Vm<'_>) -> WpAllDone {
    let state = vm.wp();
    let mut protected = 0;
    let mut roots = 0;
    {
        // mmu_lock for write excludes every fault walk, hence every
        // push-down and every record, and every root-list change.
        let locked = vm.lock_mmu();
        state.wp.write_protect_all(|gen| {
            locked.visit_root_tables(|root| {
                roots += 1;
                // mmu_lock held for write: nobody else claims a table, so
                // this pushes.
                if let PushDown::Pushed { protected: n, .. } =
                    root.wp.push_down(gen, |i| root.clear_writable(i))
                {
                    protected += u64::from(n);
                }
            })
        });
    }
    // The shadow MMU's roots (shadow paging, nested guests) are brought to
    // the new generation by each vCPU as it loads one (wp_all_shadow.rs):
    // ask them all to load theirs again before they next run.  Then every
    // vCPU is kicked and flushes before it enters the guest again, so no
    // TLB entry made before the write-protect-all lets a write through
    // unfaulted.
    vm.reload_roots();
    vm.flush_tlbs();
    WpAllDone {
        roots,
        entries: protected,
    }
}

/// A fault walk is about to step through non-leaf entry `index` of `table`
/// (value `spte`) into `child`: bring `child` to the VM's generation, then,
/// for a write, give the entry W back, recorded first.  0 to go on,
/// `-EAGAIN` to retry the fault.
///
/// # Safety
///
/// KVM calls it on a live VM whose write-protect-all is on, with
/// `mmu_lock` held (for read on the TDP MMU, for write on the shadow MMU)
/// and, on the TDP MMU, in an RCU read-side section: both tables stay
/// allocated, their entries change only atomically.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_step(
    kvm: *mut bindings::kvm,
    write: bool,
    table_wp: *mut bindings::kvm_dirty_table,
    table_spt: *mut u64,
    index: c_int,
    spte: u64,
    child_wp: *mut bindings::kvm_dirty_table,
    child_spt: *mut u64,
    child_level: c_int,
) -> c_int {
    // SAFETY: KVM's contract above.
    let (vm, table, child) = unsafe {
        (
            Vm::from_raw(kvm),
            WpTable::from_raw(table_wp, table_spt),
            WpTable::from_raw(child_wp, child_spt),
        )
    };
    to_c(step(vm, write, table, index, spte, child, child_level))
}

#[inline(always)]
fn step(
    vm: Vm<'_>,
    write: bool,
    table: WpTable<'_>,
    index: c_int,
    spte: u64,
    child: WpTable<'_>,
    child_level: c_int,
) -> Result {
    // mmu_lock is held: no write-protect-all runs, so the generation is
    // stable.
    let gen = vm.wp().wp.generation();
    let push = child.wp.push_down(gen, |i| child.clear_writable(i));
    if !push.parent_may_write() {
        counters::pcpu_inc(PcpuCounter::KD_WP_RETRIES);
        return Err(EAGAIN);
    }
    if let PushDown::Pushed { protected, .. } = push {
        counters::count_push_down(child_level, protected);
        trace::push_down(child_level, protected, 0);
    }
    if write && spte & WRITABLE == 0 {
        let index = index as usize % ENTRIES;
        table.wp.note_writable(index);
        if table.entries[index]
            .compare_exchange(spte, spte | WRITABLE, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            // Changed under us (zapped, or W given by another fault): the
            // record stays, a harmless superset.
            counters::pcpu_inc(PcpuCounter::KD_WP_RETRIES);
            return Err(EAGAIN);
        }
        counters::pcpu_inc(PcpuCounter::KD_WP_GRANTS);
    }
    Ok(())
}

/// A new table is about to be linked by `*spte`: no W on the link nor on
/// the table's entries (a split's leaves), and the table current.
///
/// # Safety
///
/// KVM calls it on a live VM whose write-protect-all is on, with
/// `mmu_lock` held; the new table is allocated and not reachable yet, and
/// `spte` points to the entry KVM is about to install, a local of its.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_link(
    kvm: *mut bindings::kvm,
    child_wp: *mut bindings::kvm_dirty_table,
    child_spt: *mut u64,
    spte: *mut u64,
) {
    // SAFETY: KVM's contract above.
    let (vm, child, spte) = unsafe {
        (
            Vm::from_raw(kvm),
            WpTable::from_raw(child_wp, child_spt),
            caller_u64(spte),
        )
    };
    link(vm, child, spte)
}

#[inline(always)]
fn link(vm: Vm<'_>, child: WpTable<'_>, spte: &mut u64) {
    // mmu_lock is held: the generation is stable.
    let gen = vm.wp().wp.generation();
    for entry in child.entries {
        entry.fetch_and(!WRITABLE, Ordering::Relaxed);
    }
    child.wp.init_current(gen);
    *spte &= !WRITABLE;
}

/// The lockless fast page fault is about to give leaf entry `index` of
/// `table` W (every entry above it has W): record it, or refuse (false)
/// if a push-down has claimed the table.  `token` goes to
/// [`kd_rs_wp_fast_end`].
///
/// # Safety
///
/// KVM calls it for a VM whose write-protect-all is on, in the lockless
/// walk's RCU section, which keeps the leaf's table allocated; `token`
/// points to a local of KVM's.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_fast_begin(
    _kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    index: c_int,
    token: *mut u64,
) -> bool {
    // SAFETY: KVM's contract above.
    let (table, token) = unsafe { (table_state(table_wp), caller_u64(token)) };
    fast_begin(table, index, token)
}

#[inline(always)]
fn fast_begin(table: &TableWp, index: c_int, token: &mut u64) -> bool {
    match table.fast_begin(index as usize % ENTRIES) {
        Some(word) => {
            *token = word;
            true
        }
        None => {
            counters::pcpu_inc(PcpuCounter::KD_WP_RETRIES);
            false
        }
    }
}

/// After the fast page fault's cmpxchg on leaf entry `index`: record it
/// again if a push-down of its table started meanwhile.
///
/// # Safety
///
/// As [`kd_rs_wp_fast_begin`]'s, after which KVM calls it.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_fast_end(
    _kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    index: c_int,
    token: u64,
) {
    // SAFETY: KVM's contract above.
    let table = unsafe { table_state(table_wp) };
    fast_end(table, index, token)
}

#[inline(always)]
fn fast_end(table: &TableWp, index: c_int, token: u64) {
    table.fast_end(index as usize % ENTRIES, token);
    counters::pcpu_inc(PcpuCounter::KD_WP_FAST_FIXES);
}

/// The fault path is about to set leaf entry `index` of `table` to
/// `new_spte`: record it first if it is writable.
///
/// # Safety
///
/// KVM calls it for a VM whose write-protect-all is on, with the leaf's
/// table kept allocated by the walk's RCU section (TDP MMU) or `mmu_lock`
/// (shadow MMU).
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_leaf(
    _kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    index: c_int,
    new_spte: u64,
) {
    // SAFETY: KVM's contract above.
    let table = unsafe { table_state(table_wp) };
    leaf(table, index, new_spte)
}

#[inline(always)]
fn leaf(table: &TableWp, index: c_int, new_spte: u64) {
    if new_spte & WRITABLE != 0 {
        table.note_writable(index as usize % ENTRIES);
    }
}
