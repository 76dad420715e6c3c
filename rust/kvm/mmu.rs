// SPDX-License-Identifier: GPL-2.0

//! KVM's `mmu_lock`, held for write, and what may be done under it: the
//! MMU operations of one memslot (the masked write-protect, the flushes),
//! and the whole VM's page-table roots (write-protect-all).

use super::bindings;
#[cfg(CONFIG_X86)]
use super::wp_all::WpTable;
use core::marker::PhantomData;
use core::ptr::NonNull;
#[cfg(CONFIG_ARM64)]
use core::sync::atomic::AtomicU64;

/// MMU operations on one memslot of a VM whose `slots_lock` is held for
/// `'a` (a [`super::vm::SlotsLocked`]).
#[derive(Clone, Copy)]
pub(crate) struct SlotMmu<'a> {
    kvm: NonNull<bindings::kvm>,
    slot: NonNull<bindings::kvm_memory_slot>,
    _locked: PhantomData<&'a ()>,
}

impl<'a> SlotMmu<'a> {
    /// # Safety
    ///
    /// `slot` is a memslot of the live VM `kvm`, whose `slots_lock` is held
    /// for `'a`.
    pub(super) unsafe fn new(
        kvm: NonNull<bindings::kvm>,
        slot: NonNull<bindings::kvm_memory_slot>,
    ) -> Self {
        SlotMmu {
            kvm,
            slot,
            _locked: PhantomData,
        }
    }

    /// Flushes PML buffers (VMX) into the bitmap before it is read.
    ///
    /// kvm_arch_sync_dirty_log() is empty on arm64 (arch/arm64/kvm/arm.c):
    /// not called there, where the two calls to reach it were a few percent
    /// of a manual-protect GET under TCG (tools/tcg-profile).
    #[inline(always)]
    pub(crate) fn sync_dirty_log(self) {
        #[cfg(CONFIG_X86)]
        // SAFETY: live VM and slot, slots_lock held.
        unsafe {
            bindings::kd_sync_dirty_log(self.kvm.as_ptr(), self.slot.as_ptr())
        }
    }

    /// Takes `mmu_lock` for writing, for the masked write-protects.
    pub(crate) fn lock(self) -> MmuLocked<'a> {
        // SAFETY: live VM; released by `MmuLocked::drop`.
        unsafe { bindings::kd_mmu_lock(self.kvm.as_ptr()) };
        MmuLocked { mmu: self }
    }

    /// Flushes remote TLBs for the whole slot.
    pub(crate) fn flush_tlbs(self) {
        // SAFETY: live VM and slot, slots_lock held (asserted in KVM).
        unsafe { bindings::kd_flush_tlbs_memslot(self.kvm.as_ptr(), self.slot.as_ptr()) }
    }
}

/// `mmu_lock` held for write, for one memslot; released on drop.
pub(crate) struct MmuLocked<'a> {
    mmu: SlotMmu<'a>,
}

impl<'a> MmuLocked<'a> {
    /// The VM and the memslot, for the walks of `super::wp_masked`.
    pub(super) fn raw(&self) -> (*mut bindings::kvm, *mut bindings::kvm_memory_slot) {
        (self.mmu.kvm.as_ptr(), self.mmu.slot.as_ptr())
    }

    /// Whether a task waits for the CPU or for `mmu_lock`: a section that
    /// serves several requests ends early then, as KVM's long ones do.
    pub(crate) fn needbreak(&self) -> bool {
        // SAFETY: live VM; mmu_lock is held (by us) as the caller's check
        // assumes.
        unsafe { bindings::kd_mmu_lock_needbreak(self.mmu.kvm.as_ptr()) }
    }

    /// KVM's masked write-protect: write-protects (or, with PML, clears
    /// the Dirty bit of) the 4K pages `first_page + i` for each bit `i` set
    /// in `mask`; `first_page` is relative to the slot and a multiple of 64.
    pub(crate) fn write_protect_masked(&self, first_page: usize, mask: usize) {
        // SAFETY: live VM and slot, mmu_lock held for write as KVM's masked
        // write-protect asserts.
        unsafe {
            bindings::kd_write_protect_masked(
                self.mmu.kvm.as_ptr(),
                self.mmu.slot.as_ptr(),
                first_page as u64,
                mask as _,
            )
        }
    }
}

impl Drop for MmuLocked<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `SlotMmu::lock`, released once here.
        unsafe { bindings::kd_mmu_unlock(self.mmu.kvm.as_ptr()) }
    }
}

/// `mmu_lock` held for write over a whole VM, live for `'a`; released on
/// drop.  It excludes every fault walk, hence every write-protect-all
/// push-down and record, and every change to the roots.
pub(crate) struct VmMmuLocked<'a> {
    kvm: NonNull<bindings::kvm>,
    _vm: PhantomData<&'a ()>,
}

impl VmMmuLocked<'_> {
    /// # Safety
    ///
    /// `kvm` is a live VM for `'a`, whose `mmu_lock` the caller does not
    /// hold.
    pub(super) unsafe fn lock<'a>(kvm: NonNull<bindings::kvm>) -> VmMmuLocked<'a> {
        // SAFETY: live VM (the caller's contract); released in `drop`.
        unsafe { bindings::kd_mmu_lock(kvm.as_ptr()) };
        VmMmuLocked {
            kvm,
            _vm: PhantomData,
        }
    }

    /// Calls `f` on each root of the x86 TDP MMU, valid or not.
    #[cfg(CONFIG_X86)]
    pub(crate) fn visit_root_tables<F: FnMut(WpTable<'_>)>(&self, mut f: F) {
        /// # Safety
        ///
        /// `ctx` is the `F` of the call below, and `root`, `spt` a root of
        /// its VM.
        unsafe extern "C" fn visit<F: FnMut(WpTable<'_>)>(
            ctx: *mut core::ffi::c_void,
            root: *mut bindings::kvm_dirty_table,
            spt: *mut u64,
        ) {
            // SAFETY: `ctx` is the `f` of `visit_root_tables`, borrowed by
            // nothing else during the walk.
            let f = unsafe { &mut *ctx.cast::<F>() };
            // SAFETY: a root of the VM, kept allocated by mmu_lock (held
            // for write) and the RCU section of KVM's walk.
            f(unsafe { WpTable::from_raw(root, spt) })
        }
        // SAFETY: live VM, mmu_lock held for write; the callback gets `f`
        // back as its context and does not keep it.
        unsafe {
            bindings::kd_visit_root_tables(
                self.kvm.as_ptr(),
                Some(visit::<F>),
                (&raw mut f).cast::<core::ffi::c_void>(),
            )
        };
    }

    /// The arm64 stage 2's start-level descriptors (its concatenated
    /// tables) and their level, or `None` if the VM has no stage 2 yet.
    #[cfg(CONFIG_ARM64)]
    pub(crate) fn stage2_start(&self) -> Option<(&[AtomicU64], i32)> {
        let (mut n, mut level) = (0u32, 0i32);
        // SAFETY: live VM, mmu_lock held for write (asserted by KVM).
        let pgd = unsafe { bindings::kd_s2_pgd(self.kvm.as_ptr(), &mut n, &mut level) };
        if pgd.is_null() {
            return None;
        }
        // SAFETY: KVM's start-level table(s), `n` entries, allocated for
        // the VM's life; changed only atomically while others can reach
        // them (nobody can now: mmu_lock for write).
        let entries = unsafe { core::slice::from_raw_parts(pgd.cast::<AtomicU64>(), n as usize) };
        Some((entries, level))
    }
}

impl Drop for VmMmuLocked<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `lock`, released once here.
        unsafe { bindings::kd_mmu_unlock(self.kvm.as_ptr()) }
    }
}
