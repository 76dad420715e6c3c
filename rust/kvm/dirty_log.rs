// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_DIRTY_LOG` and `KVM_CLEAR_DIRTY_LOG` as KVM hands them to the
//! module: the ioctl's arguments ([`super::uapi`]) and what the ioctl reads
//! of the VM, the VM's facts and the memslot it names, read by one call
//! into the shim and viewed in place.
//!
//! One call, not one per fact: a manual-protect GET is about a thousand
//! instructions, and each call into C with its struct copy a few percent of
//! it (Documentation/bench.rst).

use super::bindings;
use super::memslot::Memslot;
use super::uapi::{KvmClearDirtyLog, KvmDirtyLog};
use super::vm::SlotsLocked;
use crate::algo::slot::SlotId;
use core::mem::MaybeUninit;
use kernel::prelude::*;

/// `KVM_GET_DIRTY_LOG`'s arguments beside the slot.
pub(crate) struct GetDirtyLog {
    /// The user buffer the bitmap goes to.
    pub(crate) user_bitmap: u64,
}

/// `KVM_CLEAR_DIRTY_LOG`'s arguments beside the slot.
pub(crate) struct ClearDirtyLog {
    pub(crate) first_page: u64,
    pub(crate) num_pages: u32,
    /// The user buffer that names the pages to clear.
    pub(crate) user_bitmap: u64,
}

/// A VM in a dirty-log ioctl, whose `slots_lock` KVM holds for `'a`, with
/// the memslot the ioctl names.
pub(crate) struct DirtyLogVm<'a> {
    pub(crate) vm: SlotsLocked<'a>,
    slot: SlotId,
    /// `kd_vm_slot()`'s memslot for `slot`, filled in place.
    info: bindings::kd_memslot,
}

impl<'a> DirtyLogVm<'a> {
    /// Reads the VM's facts and the memslot `slot` names.
    ///
    /// # Safety
    ///
    /// `kvm` is a live VM whose `slots_lock` the caller holds for `'a`.
    #[inline(always)]
    unsafe fn read(kvm: *mut bindings::kvm, slot: u32) -> Self {
        let slot = SlotId::decode(slot);
        let mut facts = MaybeUninit::<bindings::kd_vm_facts>::uninit();
        let mut info = MaybeUninit::<bindings::kd_memslot>::uninit();
        // SAFETY: live VM, slots_lock held (the caller's contract); the
        // shim writes both structs whole, and bounds the address space
        // itself.
        unsafe {
            bindings::kd_vm_slot(
                kvm,
                slot.as_id,
                slot.id,
                facts.as_mut_ptr(),
                info.as_mut_ptr(),
            );
            DirtyLogVm {
                vm: SlotsLocked::with_facts(kvm, facts.assume_init_ref()),
                slot,
                info: info.assume_init(),
            }
        }
    }

    /// `KVM_GET_DIRTY_LOG` on `kvm`.
    ///
    /// # Safety
    ///
    /// `kvm` is a live VM whose `slots_lock` the caller holds for `'a`, and
    /// `log` the ioctl's `struct kvm_dirty_log`, valid for the call.
    #[inline(always)]
    pub(crate) unsafe fn get(
        kvm: *mut bindings::kvm,
        log: *const bindings::kvm_dirty_log,
    ) -> (Self, GetDirtyLog) {
        // SAFETY: the caller's contract; laid out as KvmDirtyLog (asserted
        // by the shim).
        let log = unsafe { &*log.cast::<KvmDirtyLog>() };
        // SAFETY: the caller's contract.
        let vm = unsafe { Self::read(kvm, log.slot) };
        let args = GetDirtyLog {
            user_bitmap: log.dirty_bitmap,
        };
        (vm, args)
    }

    /// `KVM_CLEAR_DIRTY_LOG` on `kvm`.
    ///
    /// # Safety
    ///
    /// `kvm` is a live VM whose `slots_lock` the caller holds for `'a`, and
    /// `log` the ioctl's `struct kvm_clear_dirty_log`, valid for the call.
    #[inline(always)]
    pub(crate) unsafe fn clear(
        kvm: *mut bindings::kvm,
        log: *const bindings::kvm_clear_dirty_log,
    ) -> (Self, ClearDirtyLog) {
        // SAFETY: the caller's contract; laid out as KvmClearDirtyLog
        // (asserted by the shim).
        let log = unsafe { &*log.cast::<KvmClearDirtyLog>() };
        // SAFETY: the caller's contract.
        let vm = unsafe { Self::read(kvm, log.slot) };
        let args = ClearDirtyLog {
            first_page: log.first_page,
            num_pages: log.num_pages,
            user_bitmap: log.dirty_bitmap,
        };
        (vm, args)
    }

    /// The memslot the ioctl names, with access to its bitmaps (hence
    /// `&mut`: one such view at a time).  `EINVAL` if the VM cannot have
    /// such a slot, `ENOENT` if it has none: upstream's codes, in its order.
    pub(crate) fn memslot(&mut self) -> Result<Memslot<'_>> {
        if !self.vm.has(self.slot) {
            return Err(EINVAL);
        }
        // SAFETY: `info` is kd_vm_slot()'s memslot of this VM under the
        // hold of slots_lock `vm` borrows, and `&mut self` makes this the
        // only view of its bitmaps.
        unsafe { self.vm.memslot(&self.info) }.ok_or(ENOENT)
    }
}
