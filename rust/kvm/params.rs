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

/// Whether this `KVM_WRITE_PROTECT_ALL_MEM` is to fail (`fail_wp_all`, a
/// test knob: the next N calls fail with `-EIO`), taking one off if so.
pub(crate) fn take_fail_wp_all() -> bool {
    // SAFETY: the shim's function takes one off the parameter atomically.
    unsafe { bindings::kd_take_fail_wp_all() }
}

/// Whether the masked write-protect may use the module's own walks
/// (`own_walk`), else KVM's function for every word.
#[inline(always)]
pub(crate) fn own_walk() -> bool {
    // SAFETY: as in `bind_vms`.
    unsafe { core::ptr::read_volatile(&raw const bindings::kd_own_walk) }
}
