// SPDX-License-Identifier: GPL-2.0

//! A VM's binding to the module, decided once when KVM creates it: every
//! VM created while the ops table is registered is served by the module
//! for its whole life, unless `bind_vms` is off.

use super::{to_c, CValue};
use crate::kvm::bindings;
use crate::kvm::counters::{self, Counter};
use crate::kvm::params;
use crate::kvm::shared_bitmap::VmBitmaps;
use crate::kvm::vm::Vm;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// `KVM_DIRTY_OPS_DECLINE` (include/linux/kvm_dirty_ops.h): leave the VM
/// on KVM's C paths.
const DECLINE: c_int = 1;

/// Whether a new VM is served by the module or left on KVM's C paths.
enum Binding {
    Bound,
    Declined,
}

impl CValue for Binding {
    fn c_value(self) -> c_int {
        match self {
            Binding::Bound => 0,
            Binding::Declined => DECLINE,
        }
    }
}

/// `->vm_init()`: binds the new VM to the module, or declines it.
///
/// # Safety
///
/// KVM calls it once per VM created while the ops table is registered,
/// before any ioctl can reach the VM.  The VM is not read.
#[no_mangle]
unsafe extern "C" fn kd_rs_vm_init(_kvm: *mut bindings::kvm) -> c_int {
    to_c(vm_init())
}

fn vm_init() -> Result<Binding> {
    if !params::bind_vms() {
        return Ok(Binding::Declined);
    }
    counters::add(Counter::KD_VMS_BOUND, 1);
    counters::add(Counter::KD_VMS_LIVE, 1);
    Ok(Binding::Bound)
}

/// `->vm_destroy()`: a bound VM is gone.  Each bound VM held a reference
/// on the module, so the module outlives them all.
///
/// # Safety
///
/// KVM calls it once per bound VM, when it destroys it, after its vCPUs,
/// devices and memslots (each of which let go of its dirty bitmap); nothing
/// else runs on the VM.
#[no_mangle]
unsafe extern "C" fn kd_rs_vm_destroy(kvm: *mut bindings::kvm) {
    // SAFETY: KVM's contract above: the VM's destruction makes this the
    // only view of its bitmaps.
    let bitmaps = unsafe { VmBitmaps::new(Vm::from_raw(kvm).wp()) };
    vm_destroy(bitmaps)
}

fn vm_destroy(mut bitmaps: VmBitmaps<'_>) {
    bitmaps.destroy();
    counters::sub(Counter::KD_VMS_LIVE, 1);
}
