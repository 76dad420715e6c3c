// SPDX-License-Identifier: GPL-2.0

//! A VM in `KVM_GET_DIRTY_LOG` or `KVM_CLEAR_DIRTY_LOG`, with what the
//! shim's ops entry read of it for the ioctl: the VM's facts and the
//! memslot the ioctl names, viewed where the shim wrote them.
//!
//! Read there, where they inline, rather than by calls from Rust: a
//! manual-protect GET is about a thousand instructions, and a call from
//! here with a copy of its result a tenth of them on arm64
//! (tools/tcg-profile).

use super::bindings;
use super::memslot::{name, Memslot};
use super::vm::SlotsLocked;
use kernel::prelude::*;

/// A VM in a dirty-log ioctl, whose `slots_lock` KVM holds for `'a`, with
/// the memslot the ioctl names.
pub(crate) struct DirtyLogVm<'a> {
    pub(crate) vm: SlotsLocked<'a>,
    /// `kd_memslot()` of the ioctl's slot, filled by the shim's entry.
    info: &'a bindings::kd_memslot,
}

impl<'a> DirtyLogVm<'a> {
    /// # Safety
    ///
    /// `kvm` is a live VM whose `slots_lock` the caller holds for `'a`;
    /// `facts` is `kd_vm_facts()` of it and `memslot` `kd_memslot()` of the
    /// ioctl's slot, both read under that hold and valid for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn new(
        kvm: *mut bindings::kvm,
        facts: *const bindings::kd_vm_facts,
        memslot: *const bindings::kd_memslot,
    ) -> Self {
        // SAFETY: the caller's contract.
        unsafe {
            DirtyLogVm {
                vm: SlotsLocked::with_facts(kvm, &*facts),
                info: &*memslot,
            }
        }
    }

    /// The memslot the ioctl names, with access to its bitmaps (hence
    /// `&mut`: one such view at a time).  `EINVAL` if the VM cannot have
    /// such a slot, `ENOENT` if it has none: upstream's codes, in its order.
    pub(crate) fn memslot(&mut self) -> Result<Memslot<'_>> {
        if !self.vm.has(name(self.info)) {
            return Err(EINVAL);
        }
        // SAFETY: `info` is kd_memslot() of this VM under the hold of
        // slots_lock `vm` borrows, and `&mut self` makes this the only view
        // of its bitmaps.
        unsafe { self.vm.memslot(self.info) }.ok_or(ENOENT)
    }
}
