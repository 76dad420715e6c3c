// SPDX-License-Identifier: GPL-2.0

//! The module's parameters, which the shim defines (`module_param`) and
//! user space may change at any time through
//! `/sys/module/kvm_dirty/parameters/`.

use super::bindings;

/// Whether VMs created from now on are bound to the module (`bind_vms`),
/// so that one boot can compare the Rust paths with KVM's C ones.
pub(crate) fn bind_vms() -> bool {
    // SAFETY: reads a module parameter.
    unsafe { bindings::kd_bind_vms() }
}
