// SPDX-License-Identifier: GPL-2.0

//! The module's parameters, which the shim defines (`module_param`) and
//! user space may change at any time through
//! `/sys/module/kvm_dirty/parameters/`: each is read afresh where it
//! decides, as `READ_ONCE()` reads it in C.

use super::bindings;

/// Whether VMs created from now on are bound to the module (`bind_vms`),
/// so that one boot can compare the Rust paths with KVM's C ones.
pub(crate) fn bind_vms() -> bool {
    // SAFETY: a bool the shim defines, written by sysfs with a plain store
    // of a valid bool; read once, volatile, as READ_ONCE() would.
    unsafe { core::ptr::read_volatile(&raw const bindings::kd_bind_vms) }
}

/// Whether the masked write-protect may use the module's own walks
/// (`own_walk`), else KVM's function for every word.
#[inline(always)]
pub(crate) fn own_walk() -> bool {
    // SAFETY: as in `bind_vms`.
    unsafe { core::ptr::read_volatile(&raw const bindings::kd_own_walk) }
}
