// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all state where KVM keeps it for the module
//! (include/linux/kvm_dirty_ops.h): `struct kvm_dirty_vm` in each VM and
//! `struct kvm_dirty_table` beside each x86 page table, viewed through
//! `#[repr(C)]` mirrors whose layout the shim asserts; the x86 SPTE bits
//! the hooks change; and the arm64 stage-2 descriptors a push-down takes.
//!
//! Every field is accessed atomically only: vCPUs fault concurrently,
//! `mmu_lock` held for read.

use super::bindings;
use crate::algo::wp_all::VmWp;
#[cfg(CONFIG_X86)]
use crate::algo::wp_all::{TableWp, ENTRIES};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// SPTE bits the x86 hooks rely on (arch/x86/kvm/mmu/spte.h); the running
/// KVM's are compared with them when a VM turns write-protect-all on.
#[cfg(CONFIG_X86)]
pub(crate) const PRESENT: u64 = 1 << 11;
#[cfg(CONFIG_X86)]
pub(crate) const WRITABLE: u64 = 1 << 1;

/// `KVM_DIRTY_VM_WP_ALL` (include/linux/kvm_dirty_ops.h): the hooks are on.
const VM_WP_ALL: usize = 1 << 0;
/// The module's own flag: GET/CLEAR_DIRTY_LOG and ring resets skip the
/// per-page protect (`KVM_DIRTY_WP_ALL_NO_HARVEST_WP`).
const VM_NO_HARVEST_WP: usize = 1 << 8;

/// `struct kvm_dirty_vm`, whose layout the shim asserts.
#[repr(C)]
pub(crate) struct VmWpState {
    /// The VM's write-protect-all generation.
    pub(crate) wp: VmWp,
    flags: AtomicUsize,
    /// The module's own per-VM state: the shared dirty bitmaps
    /// (`super::shared_bitmap::VmBitmaps`).
    pub(crate) module_priv: AtomicPtr<c_void>,
}

// The layout shim/common.c asserts for `struct kvm_dirty_vm`, so that the
// two sides agree on where `priv` is: the shim checks the C struct against
// these numbers, this checks the Rust one.
const _: () = {
    assert!(core::mem::size_of::<VmWpState>() == 24);
    assert!(core::mem::offset_of!(VmWpState, flags) == 8);
    assert!(core::mem::offset_of!(VmWpState, module_priv) == 16);
};

impl VmWpState {
    /// # Safety
    ///
    /// `state` is a live VM's `kvm->dirty_vm`, which lives as long as the
    /// VM: at least `'a`.
    pub(crate) unsafe fn from_raw<'a>(state: *mut bindings::kvm_dirty_vm) -> &'a VmWpState {
        // SAFETY: the caller's contract; laid out as VmWpState (asserted by
        // the shim), accessed atomically only.
        unsafe { &*state.cast::<VmWpState>() }
    }

    /// Whether the VM turned write-protect-all on (and the hooks are on).
    /// Acquire: pairs with [`Self::turn_on`].
    pub(crate) fn is_on(&self) -> bool {
        self.flags.load(Ordering::Acquire) & VM_WP_ALL != 0
    }

    /// Whether GET/CLEAR_DIRTY_LOG and ring resets skip the per-page
    /// write-protect (the VM asked for it with the capability's flag).
    pub(crate) fn harvest_without_wp(&self) -> bool {
        self.flags.load(Ordering::Acquire) & VM_NO_HARVEST_WP != 0
    }

    /// Whether the VM turned write-protect-all on; the caller holds
    /// `kvm->lock`, under which it is turned on.
    pub(crate) fn is_on_locked(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & VM_WP_ALL != 0
    }

    /// Turns write-protect-all on, and with `no_harvest_wp` the harvests
    /// without write-protect.  The caller holds `kvm->lock`, and found it
    /// off ([`Self::is_on_locked`]).
    pub(crate) fn turn_on(&self, no_harvest_wp: bool) {
        let mut new = VM_WP_ALL;
        if no_harvest_wp {
            new |= VM_NO_HARVEST_WP;
        }
        // Release: vCPUs (created later, under kvm->lock) see the flag set.
        self.flags.store(new, Ordering::Release);
    }
}

/// One x86 page table: its write-protect-all state and its entries.
#[cfg(CONFIG_X86)]
#[derive(Clone, Copy)]
pub(crate) struct WpTable<'a> {
    pub(crate) wp: &'a TableWp,
    pub(crate) entries: &'a [AtomicU64; ENTRIES],
}

#[cfg(CONFIG_X86)]
impl WpTable<'_> {
    /// # Safety
    ///
    /// `table` and `spt` belong to one live page table, which stays
    /// allocated for `'a` (KVM holds RCU read-side or `mmu_lock`); its
    /// entries are only changed atomically while others can reach it.
    #[inline(always)]
    pub(crate) unsafe fn from_raw<'a>(
        table: *mut bindings::kvm_dirty_table,
        spt: *mut u64,
    ) -> WpTable<'a> {
        // SAFETY: the caller's contract; struct kvm_dirty_table is laid out
        // as TableWp (asserted by the shim), a table is ENTRIES u64s,
        // page-aligned.
        unsafe {
            WpTable {
                wp: &*table.cast::<TableWp>(),
                entries: &*spt.cast::<[AtomicU64; ENTRIES]>(),
            }
        }
    }

    /// Clears W on entry `i` if it is present; whether it was writable.
    #[inline(always)]
    pub(crate) fn clear_writable(&self, i: usize) -> bool {
        clear_writable(&self.entries[i])
    }
}

/// A page table's write-protect-all state alone, for the hooks that are
/// passed no entries.
///
/// # Safety
///
/// As [`WpTable::from_raw`].
#[cfg(CONFIG_X86)]
#[inline(always)]
pub(crate) unsafe fn table_state<'a>(table: *mut bindings::kvm_dirty_table) -> &'a TableWp {
    // SAFETY: the caller's contract; laid out as TableWp (asserted by the
    // shim).
    unsafe { &*table.cast::<TableWp>() }
}

/// Clears W on a present SPTE; returns whether it was writable.
#[cfg(CONFIG_X86)]
#[inline(always)]
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

/// A `u64` KVM passes by pointer for a hook to read or write: a local of
/// its caller (the SPTE it is about to install, the fast path's token).
///
/// # Safety
///
/// `p` points to such a local, which nothing else accesses during the hook.
#[cfg(CONFIG_X86)]
#[inline(always)]
pub(crate) unsafe fn caller_u64<'a>(p: *mut u64) -> &'a mut u64 {
    // SAFETY: the caller's contract.
    unsafe { &mut *p }
}

/// A stage-2 descriptor a walker met pending, and the table it names.
///
/// # Safety
///
/// `ptep` is a descriptor of the VM's stage 2 and `child` the table of
/// `entries` descriptors it names, both kept allocated by `mmu_lock` and
/// the walk's RCU section for `'a`; descriptors are only changed atomically
/// while others can reach them.
#[cfg(CONFIG_ARM64)]
#[inline(always)]
pub(crate) unsafe fn stage2_pending<'a>(
    ptep: *mut u64,
    child: *mut u64,
    entries: u32,
) -> (&'a AtomicU64, &'a [AtomicU64]) {
    // SAFETY: the caller's contract.
    unsafe {
        (
            &*ptep.cast::<AtomicU64>(),
            core::slice::from_raw_parts(child.cast::<AtomicU64>(), entries as usize),
        )
    }
}
