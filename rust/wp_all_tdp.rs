// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all on the x86 TDP MMU: the kernel side of `wp_all.rs`,
//! and what the shadow MMU shares with it (`wp_all_shadow.rs` adds the rest).
//! The capability, the ioctl and the log-enable hook are served here for
//! arm64 too, which hands the mechanism to `wp_all_arm64.rs`.
//!
//! KVM calls in here from its fault walk and table links (the hooks of
//! `kernel/0003-*.patch`, and 0006 and 0007), for a VM that turned `KVM_CAP_DIRTY_WP_ALL` on,
//! and from `KVM_WRITE_PROTECT_ALL_MEM`.  What each hook does, and why no
//! write after a WP-all goes unlogged, is argued in `wp_all.rs`; this file
//! adds the rules that are about KVM's tables:
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

use crate::algo::wp_all::{PushDown, TableWp, VmWp, ENTRIES};
use crate::bindings;
use crate::counters::{self, Counter};
use crate::wp_all_arm64;
use bindings::kd_pcpu_counter as Pcpu;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;

/// SPTE bits this file relies on (arch/x86/kvm/mmu/spte.h); the running
/// KVM's are compared with them when a VM turns WP-all on.
pub(crate) const PRESENT: u64 = 1 << 11;
pub(crate) const WRITABLE: u64 = 1 << 1;

/// `KVM_DIRTY_VM_WP_ALL` (include/linux/kvm_dirty_ops.h): the hooks are on.
const VM_WP_ALL: usize = 1 << 0;
/// Ours: GET/CLEAR_DIRTY_LOG and ring resets skip the per-page protect.
const VM_NO_HARVEST_WP: usize = 1 << 8;

/// -EOPNOTSUPP, which the kernel crate of 6.12 does not name.
const EOPNOTSUPP_ERRNO: i32 = -(kernel::bindings::EOPNOTSUPP as i32);

/// `KVM_DIRTY_WP_ALL_NO_HARVEST_WP`, the one flag of the capability.
const CAP_NO_HARVEST_WP: u64 = 1 << 0;

/// `struct kvm_dirty_vm`, whose layout the shim asserts.
#[repr(C)]
pub(crate) struct VmWpState {
    pub(crate) wp: VmWp,
    flags: AtomicUsize,
}

/// The VM's write-protect-all state.
///
/// # Safety
///
/// `kvm` is a live VM; the state lives as long as it does.
pub(crate) unsafe fn vm_state<'a>(kvm: *mut bindings::kvm) -> &'a VmWpState {
    // SAFETY: live VM (caller); kd_vm_dirty_state returns its dirty_vm.
    unsafe { state_of(bindings::kd_vm_dirty_state(kvm)) }
}

/// # Safety
///
/// `state` is a live VM's `kvm->dirty_vm`, which lives as long as the VM.
unsafe fn state_of<'a>(state: *mut bindings::kvm_dirty_vm) -> &'a VmWpState {
    // SAFETY: caller's contract; laid out as VmWpState (asserted by the
    // shim), accessed atomically only.
    unsafe { &*state.cast::<VmWpState>() }
}

/// Whether GET/CLEAR_DIRTY_LOG and ring resets skip the per-page
/// write-protect (the VM asked for it with the capability's flag).
///
/// # Safety
///
/// `state` is a live VM's `kvm->dirty_vm` (`kd_vm_facts()` gives it).
pub(crate) unsafe fn harvest_without_wp(state: *mut bindings::kvm_dirty_vm) -> bool {
    // SAFETY: caller's contract.
    let state = unsafe { state_of(state) };
    state.flags.load(Ordering::Acquire) & VM_NO_HARVEST_WP != 0
}

/// One page table's state and entries.
///
/// # Safety
///
/// `table` and `spt` belong to one live page table, which stays allocated
/// for `'a` (KVM holds RCU read-side or `mmu_lock`); its entries are only
/// changed atomically while others can reach it.
pub(crate) unsafe fn table<'a>(
    table: *mut bindings::kvm_dirty_table,
    spt: *mut u64,
) -> (&'a TableWp, &'a [AtomicU64; ENTRIES]) {
    // SAFETY: caller's contract; struct kvm_dirty_table is laid out as
    // TableWp (asserted by the shim), a table is ENTRIES u64s, page-aligned.
    unsafe {
        (
            &*table.cast::<TableWp>(),
            &*spt.cast::<[AtomicU64; ENTRIES]>(),
        )
    }
}

/// Clears W on a present entry; returns whether it was writable.
pub(crate) fn clear_writable(entry: &AtomicU64) -> bool {
    let mut old = entry.load(Ordering::Relaxed);
    loop {
        if old & PRESENT == 0 || old & WRITABLE == 0 {
            return false;
        }
        // SeqCst, as KVM's own cmpxchg on SPTEs is a full barrier.
        match entry.compare_exchange(old, old & !WRITABLE, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) => old = seen,
        }
    }
}

fn count_push(level: i32, push: PushDown) {
    if let PushDown::Pushed { protected, .. } = push {
        count_push_height(level, protected);
    }
}

/// Counts a push-down into a table of `height` (1: a table of 4K leaves,
/// up to 4) that write-protected `protected` entries; arm64 counts its
/// push-downs here too.
pub(crate) fn count_push_height(height: i32, protected: u32) {
    let which = match height {
        1 => Pcpu::KD_WP_PUSH_L1,
        2 => Pcpu::KD_WP_PUSH_L2,
        3 => Pcpu::KD_WP_PUSH_L3,
        _ => Pcpu::KD_WP_PUSH_L4,
    };
    // SAFETY: per-CPU counters, any context.
    unsafe {
        bindings::kd_count_pcpu(which);
        bindings::kd_count_pcpu_add(Pcpu::KD_WP_PUSH_PROTECTED, u64::from(protected));
    }
}

fn count_retry() {
    // SAFETY: per-CPU counter, any context.
    unsafe { bindings::kd_count_pcpu(Pcpu::KD_WP_RETRIES) };
}

/// `KVM_ENABLE_CAP(KVM_CAP_DIRTY_WP_ALL)`: turns the hooks on, before the VM
/// has vCPUs (so it has no page tables made without them).  Called with
/// `kvm->lock` held, which keeps vCPUs from being created meanwhile.
#[no_mangle]
extern "C" fn kd_rs_wp_all_enable(kvm: *mut bindings::kvm, flags: u64, created_vcpus: u32) -> i32 {
    let (mut present, mut writable) = (0, 0);
    // SAFETY: live VM; the masks are written before the call returns.
    let supported = unsafe { bindings::kd_wp_all_supported(kvm, &mut present, &mut writable) };
    if !supported {
        return EOPNOTSUPP_ERRNO;
    }
    let (want_present, want_writable) = if cfg!(CONFIG_ARM64) {
        (wp_all_arm64::PRESENT, wp_all_arm64::WRITABLE)
    } else {
        (PRESENT, WRITABLE)
    };
    if present != want_present || writable != want_writable {
        pr_warn!(
            "write-protect-all refused: present/W masks {present:#x}/{writable:#x}, expected {want_present:#x}/{want_writable:#x}\n"
        );
        return EOPNOTSUPP_ERRNO;
    }
    if flags & !CAP_NO_HARVEST_WP != 0 {
        return EINVAL.to_errno();
    }
    if created_vcpus != 0 {
        return EBUSY.to_errno();
    }
    // SAFETY: live VM.
    let state = unsafe { vm_state(kvm) };
    let mut new = VM_WP_ALL;
    if flags & CAP_NO_HARVEST_WP != 0 {
        new |= VM_NO_HARVEST_WP;
    }
    if state.flags.load(Ordering::Relaxed) & VM_WP_ALL != 0 {
        return EEXIST.to_errno();
    }
    if cfg!(CONFIG_ARM64) {
        // SAFETY: live VM, kvm->lock held (the shim's enable_cap).
        let r = unsafe { wp_all_arm64::enable(kvm) };
        if r != 0 {
            return r;
        }
    }
    // Release: vCPUs (created later, under kvm->lock) see the flag set.
    state.flags.store(new, Ordering::Release);
    counters::add(Counter::KD_WP_ALL_ENABLED, 1);
    0
}

struct RootWalk {
    gen: u64,
    protected: u64,
}

/// `KVM_WRITE_PROTECT_ALL_MEM`.
#[no_mangle]
extern "C" fn kd_rs_write_protect_all(kvm: *mut bindings::kvm) -> i32 {
    // SAFETY: KVM calls the VM ioctl on a live VM.
    let state = unsafe { vm_state(kvm) };
    if state.flags.load(Ordering::Acquire) & VM_WP_ALL == 0 {
        return EINVAL.to_errno();
    }
    // SAFETY: live VM, WP-all on.
    unsafe { write_protect_all(kvm, state) };
    counters::add(Counter::KD_WP_ALL_CALLS, 1);
    0
}

/// Dirty logging is being turned on for a slot of a WP-all VM (KVM calls
/// this instead of splitting the slot's huge pages and write-protecting
/// them one by one): one WP-all gives the same guarantee, that every write
/// from now on faults and is logged, in O(1).  Huge pages stay mapped for
/// reads; the write fault that needs a 4K mapping splits one, and
/// [`kd_rs_wp_link`] leaves the split's leaves without W.
#[no_mangle]
extern "C" fn kd_rs_wp_log_enable(kvm: *mut bindings::kvm) {
    // SAFETY: KVM calls the hook on a live VM, whose WP-all is on.
    unsafe { write_protect_all(kvm, vm_state(kvm)) };
    counters::add(Counter::KD_WP_ALL_LOG_ENABLES, 1);
}

/// A new generation, W cleared on the recorded entries of every root (at
/// most 512 each, whatever the guest's size), then one TLB flush of every
/// vCPU.
///
/// # Safety
///
/// `kvm` is a live VM whose WP-all is on, `state` its state; the caller
/// does not hold `mmu_lock`.
unsafe fn write_protect_all(kvm: *mut bindings::kvm, state: &VmWpState) {
    if cfg!(CONFIG_ARM64) {
        // SAFETY: the caller's contract, which is the same.
        let changed = unsafe { wp_all_arm64::write_protect_all(kvm, state) };
        counters::add(Counter::KD_WP_ALL_ROOT_ENTRIES, changed);
        return;
    }
    let mut walk = RootWalk {
        gen: 0,
        protected: 0,
    };
    // SAFETY: live VM; mmu_lock for write excludes every fault walk, hence
    // every push-down and every record, and every root-list change.
    unsafe { bindings::kd_mmu_lock(kvm) };
    state.wp.write_protect_all(|gen| {
        walk.gen = gen;
        // SAFETY: live VM, mmu_lock held for write; the callback gets
        // `walk` back as its context and does not keep it.
        unsafe {
            bindings::kd_visit_root_tables(
                kvm,
                Some(protect_root),
                (&raw mut walk).cast::<core::ffi::c_void>(),
            )
        };
    });
    // SAFETY: taken above.
    unsafe { bindings::kd_mmu_unlock(kvm) };
    // The shadow MMU's roots (shadow paging, nested guests) are brought to
    // the new generation by each vCPU as it loads one (wp_all_shadow.rs):
    // ask them all to load theirs again before they next run.  Then every
    // vCPU is kicked and flushes before it enters the guest again, so no
    // TLB entry made before the WP-all lets a write through unfaulted.
    // SAFETY: live VM.
    unsafe {
        bindings::kd_wp_all_reload_roots(kvm);
        bindings::kd_flush_tlbs(kvm);
    }
    counters::add(Counter::KD_WP_ALL_ROOT_ENTRIES, walk.protected);
}

/// Brings one root to the new generation; `ctx` is the [`RootWalk`].
unsafe extern "C" fn protect_root(
    ctx: *mut core::ffi::c_void,
    root: *mut bindings::kvm_dirty_table,
    spt: *mut u64,
) {
    // SAFETY: `ctx` is the RootWalk of kd_rs_write_protect_all, borrowed by
    // nothing else during the call.
    let walk = unsafe { &mut *ctx.cast::<RootWalk>() };
    // SAFETY: a root of the VM, kept alive by RCU in the shim's walk.
    let (wp, entries) = unsafe { table(root, spt) };
    // mmu_lock held for write: nobody else claims a table, so this pushes.
    if let PushDown::Pushed { protected, .. } =
        wp.push_down(walk.gen, |i| clear_writable(&entries[i]))
    {
        walk.protected += u64::from(protected);
    }
}

/// A fault walk is about to step through non-leaf entry `index` of `table`
/// (value `spte`) into `child`: bring `child` to the VM's generation, then,
/// for a write, give the entry W back, recorded first.  0 to go on, -EAGAIN
/// to retry the fault.
#[no_mangle]
extern "C" fn kd_rs_wp_step(
    kvm: *mut bindings::kvm,
    write: bool,
    table_wp: *mut bindings::kvm_dirty_table,
    table_spt: *mut u64,
    index: i32,
    spte: u64,
    child_wp: *mut bindings::kvm_dirty_table,
    child_spt: *mut u64,
    child_level: i32,
) -> i32 {
    // SAFETY: live VM, mmu_lock held (for read on the TDP MMU, for write on
    // the shadow MMU): no WP-all runs, so the generation is stable.
    let gen = unsafe { vm_state(kvm) }.wp.generation();
    // SAFETY: both tables are live under the walk's RCU read-side section
    // (TDP MMU) or mmu_lock (shadow MMU).
    let ((parent, entries), (child, child_entries)) =
        unsafe { (table(table_wp, table_spt), table(child_wp, child_spt)) };
    let push = child.push_down(gen, |i| clear_writable(&child_entries[i]));
    if !push.parent_may_write() {
        count_retry();
        return EAGAIN.to_errno();
    }
    count_push(child_level, push);
    if write && spte & WRITABLE == 0 {
        let index = index as usize % ENTRIES;
        parent.note_writable(index);
        if entries[index]
            .compare_exchange(spte, spte | WRITABLE, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            // Changed under us (zapped, or W given by another fault): the
            // record stays, a harmless superset.
            count_retry();
            return EAGAIN.to_errno();
        }
        // SAFETY: per-CPU counter.
        unsafe { bindings::kd_count_pcpu(Pcpu::KD_WP_GRANTS) };
    }
    0
}

/// A new table is about to be linked by `*spte`: no W on the link nor on
/// the table's entries (a split's leaves), and the table current.
#[no_mangle]
extern "C" fn kd_rs_wp_link(
    kvm: *mut bindings::kvm,
    child_wp: *mut bindings::kvm_dirty_table,
    child_spt: *mut u64,
    spte: *mut u64,
) {
    // SAFETY: live VM, mmu_lock held: the generation is stable.
    let gen = unsafe { vm_state(kvm) }.wp.generation();
    // SAFETY: the new table is allocated and not reachable yet.
    let (child, entries) = unsafe { table(child_wp, child_spt) };
    for entry in entries {
        entry.fetch_and(!WRITABLE, Ordering::Relaxed);
    }
    child.init_current(gen);
    // SAFETY: KVM passes the SPTE it is about to install, a local.
    unsafe { *spte &= !WRITABLE };
}

/// The lockless fast page fault is about to give leaf entry `index` of
/// `table` W (every entry above it has W): record it, or refuse (false)
/// if a push-down has claimed the table.  `token` goes to
/// [`kd_rs_wp_fast_end`].
#[no_mangle]
extern "C" fn kd_rs_wp_fast_begin(
    _kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    index: i32,
    token: *mut u64,
) -> bool {
    // SAFETY: the leaf's table, live under the lockless walk (RCU).
    let wp = unsafe { &*table_wp.cast::<TableWp>() };
    match wp.fast_begin(index as usize % ENTRIES) {
        Some(word) => {
            // SAFETY: KVM passes a local for the token.
            unsafe { *token = word };
            true
        }
        None => {
            count_retry();
            false
        }
    }
}

/// After the fast page fault's cmpxchg on leaf entry `index`: record it
/// again if a push-down of its table started meanwhile.
#[no_mangle]
extern "C" fn kd_rs_wp_fast_end(
    _kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    index: i32,
    token: u64,
) {
    // SAFETY: as in kd_rs_wp_fast_begin.
    let wp = unsafe { &*table_wp.cast::<TableWp>() };
    wp.fast_end(index as usize % ENTRIES, token);
    // SAFETY: per-CPU counter.
    unsafe { bindings::kd_count_pcpu(Pcpu::KD_WP_FAST_FIXES) };
}

/// The fault path is about to set leaf entry `index` of `table` to
/// `new_spte`: record it first if it is writable.
#[no_mangle]
extern "C" fn kd_rs_wp_leaf(
    _kvm: *mut bindings::kvm,
    table_wp: *mut bindings::kvm_dirty_table,
    index: i32,
    new_spte: u64,
) {
    if new_spte & WRITABLE != 0 {
        // SAFETY: the leaf's table, live under the walk's RCU section (TDP
        // MMU) or mmu_lock (shadow MMU).
        let wp = unsafe { &*table_wp.cast::<TableWp>() };
        wp.note_writable(index as usize % ENTRIES);
    }
}
