// SPDX-License-Identifier: GPL-2.0

//! Safe views of a KVM VM: with `slots_lock` held, for the dirty-log
//! ioctls and the ring reset ([`SlotsLocked`]), and without a lock, for
//! the write-protect-all hooks ([`Vm`]).
//!
//! The invariant that makes [`SlotsLocked`] sound is established once, by
//! its constructors: the caller holds `kvm->slots_lock` (checked by lockdep
//! in `__kvm_memslots()`) for as long as the view lives, so memslots cannot
//! be deleted, moved or have their bitmaps freed.

use super::bindings;
use super::memslot::{name, Memslot, SlotRef};
use super::mmu::VmMmuLocked;
use super::ring::RingRef;
use super::wp_all::VmWpState;
use crate::algo::slot::SlotId;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// A live VM, for `'a`; no lock held.
#[derive(Clone, Copy)]
pub(crate) struct Vm<'a> {
    kvm: NonNull<bindings::kvm>,
    _vm: PhantomData<&'a bindings::kvm>,
}

impl<'a> Vm<'a> {
    /// # Safety
    ///
    /// `kvm` points to a VM that stays live for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(kvm: *mut bindings::kvm) -> Self {
        Vm {
            // SAFETY: a live VM is not NULL (the caller's contract).  Not
            // checked: the write-protect-all hooks run on every fault walk.
            kvm: unsafe { NonNull::new_unchecked(kvm) },
            _vm: PhantomData,
        }
    }

    /// The VM, for the shim's calls.
    pub(super) fn as_raw(self) -> *mut bindings::kvm {
        self.kvm.as_ptr()
    }

    /// The VM's write-protect-all state.
    #[inline(always)]
    pub(crate) fn wp(self) -> &'a VmWpState {
        // SAFETY: live VM; kd_vm_dirty_state() returns its kvm->dirty_vm,
        // which lives as long as the VM.
        unsafe { VmWpState::from_raw(bindings::kd_vm_dirty_state(self.kvm.as_ptr())) }
    }

    /// Takes `mmu_lock` for write, which the caller does not hold.
    pub(crate) fn lock_mmu(self) -> VmMmuLocked<'a> {
        // SAFETY: live VM for 'a; the caller does not hold mmu_lock (a
        // second acquisition would deadlock, not corrupt).
        unsafe { VmMmuLocked::lock(self.kvm) }
    }

    /// Flushes the TLBs of every vCPU of the VM.
    pub(crate) fn flush_tlbs(self) {
        // SAFETY: live VM.
        unsafe { bindings::kd_flush_tlbs(self.kvm.as_ptr()) }
    }

    /// Asks every vCPU to load its MMU root again before it next enters
    /// the guest (the x86 shadow MMU's write-protect-all).
    #[cfg(CONFIG_X86)]
    pub(crate) fn reload_roots(self) {
        // SAFETY: live VM.
        unsafe { bindings::kd_wp_all_reload_roots(self.kvm.as_ptr()) }
    }

    /// The present and writable bits of the running KVM's page-table
    /// entries, if KVM can serve write-protect-all for this VM.
    pub(crate) fn wp_all_masks(self) -> Option<(u64, u64)> {
        let (mut present, mut writable) = (0, 0);
        // SAFETY: live VM; the masks are written before the call returns.
        let supported = unsafe {
            bindings::kd_wp_all_supported(self.kvm.as_ptr(), &mut present, &mut writable)
        };
        supported.then_some((present, writable))
    }

    /// Takes `kvm->lock`, which the caller does not hold.
    pub(crate) fn lock(self) -> VmLocked<'a> {
        // SAFETY: live VM; released by `VmLocked::drop`.
        unsafe { bindings::kd_vm_lock(self.kvm.as_ptr()) };
        VmLocked { vm: self }
    }
}

/// `kvm->lock` held, which keeps vCPUs from being created; released on
/// drop.
pub(crate) struct VmLocked<'a> {
    vm: Vm<'a>,
}

impl VmLocked<'_> {
    /// vCPUs created so far: none can be created meanwhile.
    pub(crate) fn created_vcpus(&self) -> u32 {
        // SAFETY: live VM, kvm->lock held.
        unsafe { bindings::kd_created_vcpus(self.vm.kvm.as_ptr()) }
    }

    /// Turns the push-down callback on for the VM's stage 2, before the VM
    /// has vCPUs.
    #[cfg(CONFIG_ARM64)]
    pub(crate) fn stage2_wp_all_enable(&self) -> kernel::error::Result {
        // SAFETY: live VM, kvm->lock held.
        kernel::error::to_result(unsafe { bindings::kd_s2_wp_all_enable(self.vm.kvm.as_ptr()) })
    }
}

impl Drop for VmLocked<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `Vm::lock`, released once here.
        unsafe { bindings::kd_vm_unlock(self.vm.kvm.as_ptr()) }
    }
}

/// A VM whose `slots_lock` is held for the lifetime `'a`.
pub(crate) struct SlotsLocked<'a> {
    kvm: NonNull<bindings::kvm>,
    /// Read once: slots_lock keeps them until the view ends.
    facts: bindings::kd_vm_facts,
    _lock: PhantomData<&'a mut bindings::kvm>,
}

impl SlotsLocked<'_> {
    /// # Safety
    ///
    /// `kvm` points to a live VM whose `slots_lock` the caller holds, and
    /// keeps holding, for the life of the returned value; no other
    /// `SlotsLocked` exists for it meanwhile (the lock makes that so).
    unsafe fn new(kvm: *mut bindings::kvm) -> Self {
        let kvm = NonNull::new(kvm).expect("KVM never passes a NULL VM");
        let mut facts = bindings::kd_vm_facts {
            nr_as_ids: 0,
            user_mem_slots: 0,
            use_dirty_bitmap: false,
            manual_protect: false,
            dirty_vm: core::ptr::null_mut(),
        };
        // SAFETY: `kvm` is live and its slots_lock held (caller's contract,
        // checked by lockdep where KVM reads the memslots).
        unsafe { bindings::kd_vm_facts(kvm.as_ptr(), &mut facts) };
        // SAFETY: the caller's contract, and `facts` are `kvm`'s.
        unsafe { Self::with_facts(kvm.as_ptr(), &facts) }
    }

    /// As [`Self::new`], with the facts the shim already read.
    ///
    /// # Safety
    ///
    /// As [`Self::new`], and `facts` is what the shim read for `kvm` under
    /// the same hold of its slots_lock.
    #[inline(always)]
    pub(super) unsafe fn with_facts(
        kvm: *mut bindings::kvm,
        facts: &bindings::kd_vm_facts,
    ) -> Self {
        SlotsLocked {
            kvm: NonNull::new(kvm).expect("KVM never passes a NULL VM"),
            facts: *facts,
            _lock: PhantomData,
        }
    }

    pub(super) fn raw(&self) -> *mut bindings::kvm {
        self.kvm.as_ptr()
    }

    /// The VM's `kvm->dirty_vm`, which lives as long as the VM.
    pub(super) fn wp_state(&self) -> &VmWpState {
        // SAFETY: the shim's pointer into this VM, which outlives the view.
        unsafe { VmWpState::from_raw(self.facts.dirty_vm) }
    }

    /// False when only the dirty ring tracks this VM (no bitmaps).
    pub(crate) fn uses_dirty_bitmap(&self) -> bool {
        self.facts.use_dirty_bitmap
    }

    /// Whether user space enabled KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2.
    pub(crate) fn manual_protect(&self) -> bool {
        self.facts.manual_protect
    }

    /// False when the VM asked GET/CLEAR_DIRTY_LOG and ring resets not to
    /// write-protect what they harvest (it uses write-protect-all).
    pub(crate) fn harvest_protects(&self) -> bool {
        !self.wp_state().harvest_without_wp()
    }

    /// The VM's address spaces and memslot ids: `KVM_ADDRESS_SPACE_NUM`
    /// and `KVM_USER_MEM_SLOTS`.
    pub(crate) fn slot_limits(&self) -> (u32, u32) {
        (self.facts.nr_as_ids, self.facts.user_mem_slots)
    }

    /// Whether the VM can have memslot `slot`: its address space and id in
    /// range (upstream: `-EINVAL` otherwise).
    pub(crate) fn has(&self, slot: SlotId) -> bool {
        slot.in_range(self.facts.nr_as_ids, self.facts.user_mem_slots)
    }

    /// Flushes all remote TLBs of the VM.
    pub(crate) fn flush_tlbs(&self) {
        // SAFETY: live VM.
        unsafe { bindings::kd_flush_tlbs(self.raw()) }
    }

    /// Gives the CPU away if the scheduler asks.  May sleep: slots_lock is
    /// a mutex, and the caller holds no spinlock (the ring reset's loop).
    pub(crate) fn cond_resched(&self) {
        // SAFETY: a plain call; cond_resched() checks its own context.
        unsafe { bindings::kd_cond_resched() }
    }

    /// The vCPUs' dirty rings, in vCPU order; `None` for a vCPU without one.
    pub(crate) fn dirty_rings(&self) -> impl Iterator<Item = Option<RingRef<'_>>> + '_ {
        // SAFETY: live VM.
        let n = unsafe { bindings::kd_nr_vcpus(self.raw()) };
        (0..n).map(move |i| {
            // SAFETY: live VM, i < online_vcpus; vCPUs live as long as the VM.
            let ring = unsafe { bindings::kd_vcpu_dirty_ring(self.raw(), i) };
            // SAFETY: a vCPU's ring, valid as long as the VM.
            unsafe { RingRef::new(ring) }
        })
    }

    /// The memslot `info` describes, with access to its bitmaps (hence
    /// `&mut`: one such view at a time).
    ///
    /// # Safety
    ///
    /// `info` is what `kd_memslot()` filled for a memslot this VM can have
    /// ([`Self::has`]) under this hold of slots_lock, or has `slot` NULL
    /// for none.
    pub(super) unsafe fn memslot<'b>(
        &'b mut self,
        info: &'b bindings::kd_memslot,
    ) -> Option<Memslot<'b>> {
        // Every dirty bitmap of a VM with shared bitmaps is the module's
        // (the capability is refused once a memslot has one of KVM's).
        let shared = self.bitmaps().enabled();
        // SAFETY: the caller's contract, and `&mut self` makes this the
        // only view of the slot's bitmaps.
        unsafe { Memslot::new(self.kvm, info, shared) }
    }

    /// The memslot `slot` names (the uapi's encoding: the ring entries'),
    /// without its bitmaps, if the VM can have it and has it.
    pub(crate) fn slot(&self, slot: u32) -> Option<SlotRef<'_>> {
        let mut info = MaybeUninit::<bindings::kd_memslot>::uninit();
        // SAFETY: live VM, slots_lock held; the shim writes the whole
        // struct, and bounds the address space itself.
        let info = unsafe {
            bindings::kd_memslot(self.raw(), slot, info.as_mut_ptr());
            info.assume_init()
        };
        if !self.has(name(&info)) {
            return None;
        }
        // SAFETY: kd_memslot() of this VM under this hold of slots_lock.
        unsafe { SlotRef::new(self.kvm, &info) }
    }
}

/// `kvm->slots_lock`, taken by the module itself (for the ring reset, which
/// KVM calls without it); released on drop.
pub(crate) struct SlotsLockGuard {
    kvm: NonNull<bindings::kvm>,
}

impl SlotsLockGuard {
    /// # Safety
    ///
    /// `kvm` points to a live VM that outlives the guard, and the caller
    /// does not hold its slots_lock.
    pub(crate) unsafe fn lock(kvm: *mut bindings::kvm) -> Self {
        let kvm = NonNull::new(kvm).expect("KVM never passes a NULL VM");
        // SAFETY: live VM (caller's contract); released in `drop`.
        unsafe { bindings::kd_slots_lock(kvm.as_ptr()) };
        SlotsLockGuard { kvm }
    }

    /// The VM, with the lock held for as long as the view is borrowed.
    pub(crate) fn vm(&mut self) -> SlotsLocked<'_> {
        // SAFETY: live VM, and we hold its slots_lock until drop, which the
        // borrow of `self` outlasts.
        unsafe { SlotsLocked::new(self.kvm.as_ptr()) }
    }
}

impl Drop for SlotsLockGuard {
    fn drop(&mut self) {
        // SAFETY: taken in `lock`, released once here.
        unsafe { bindings::kd_slots_unlock(self.kvm.as_ptr()) }
    }
}
