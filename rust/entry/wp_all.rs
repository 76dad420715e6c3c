// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all's interface, the same on every architecture the
//! module serves: the capability (`KVM_CAP_DIRTY_WP_ALL`), the ioctl
//! (`KVM_WRITE_PROTECT_ALL_MEM`), and dirty logging turned on for a slot of
//! a VM that uses it.
//!
//! The mechanism is the architecture's: generations pushed down by the
//! fault walk on x86 ([`super::wp_all_x86`], and [`super::wp_all_shadow`]
//! for the shadow MMU), pending table descriptors on arm64 stage 2
//! ([`super::wp_all_stage2`]).  Why no write after a write-protect-all goes
//! unlogged is argued beside each algorithm (`crate::algo::wp_all`,
//! `crate::algo::wp_all_stage2`), and in Documentation/wp-all.rst.

use super::to_c;
#[cfg(CONFIG_ARM64)]
use super::wp_all_stage2 as arch;
#[cfg(CONFIG_X86)]
use super::wp_all_x86 as arch;
use crate::kvm::bindings;
use crate::kvm::counters::{self, Counter};
use crate::kvm::host;
use crate::kvm::params;
use crate::kvm::trace;
use crate::kvm::uapi::{self, EnableCap};
use crate::kvm::vm::{Vm, VmLocked};
use kernel::ffi::{c_int, c_long, c_uint, c_ulong};
use kernel::prelude::*;

/// `KVM_DIRTY_WP_ALL_NO_HARVEST_WP`, the one flag of the capability.
const CAP_NO_HARVEST_WP: u64 = 1 << 0;

/// -EOPNOTSUPP, which the kernel crate of 6.12 does not name.
fn eopnotsupp() -> Error {
    Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))
}

/// Whether the module serves write-protect-all for `vm`: the host allows
/// the module's own MMU code, and KVM can serve it for the VM.  The bits
/// of the VM's present and writable entries if so.
pub(super) fn supported(vm: Vm<'_>) -> Option<(u64, u64)> {
    if !host::own_mmu_code() {
        return None;
    }
    vm.wp_all_masks()
}

/// `KVM_CHECK_EXTENSION` on a VM, asked before KVM's own capabilities:
/// `-ENOIOCTLCMD` for all but `KVM_CAP_DIRTY_WP_ALL`.
///
/// # Safety
///
/// KVM calls it for the VM ioctl, on a live VM.
#[no_mangle]
unsafe extern "C" fn kd_rs_check_extension(kvm: *mut bindings::kvm, cap: c_long) -> c_int {
    // SAFETY: KVM's contract above.
    let vm = unsafe { Vm::from_raw(kvm) };
    to_c(check_extension(vm, cap))
}

fn check_extension(vm: Vm<'_>, cap: c_long) -> Result<bool> {
    if cap != uapi::CAP_DIRTY_WP_ALL as c_long {
        return Err(ENOIOCTLCMD);
    }
    Ok(supported(vm).is_some())
}

/// `KVM_ENABLE_CAP` on a VM, asked before KVM's own capabilities:
/// `-ENOIOCTLCMD` for all but `KVM_CAP_DIRTY_WP_ALL`.
///
/// # Safety
///
/// KVM calls it for the VM ioctl, on a live VM, without `kvm->lock`;
/// `cap` is the ioctl's argument, copied into the kernel.
#[no_mangle]
unsafe extern "C" fn kd_rs_enable_cap(
    kvm: *mut bindings::kvm,
    cap: *mut bindings::kvm_enable_cap,
) -> c_int {
    // SAFETY: KVM's contract above.
    let (vm, cap) = unsafe { (Vm::from_raw(kvm), EnableCap::from_raw(cap)) };
    to_c(enable_cap(vm, cap))
}

fn enable_cap(vm: Vm<'_>, cap: &EnableCap) -> Result {
    if cap.cap != uapi::CAP_DIRTY_WP_ALL {
        return Err(ENOIOCTLCMD);
    }
    if cap.flags != 0 || cap.args[1..].iter().any(|&arg| arg != 0) {
        return Err(EINVAL);
    }
    // kvm->lock keeps vCPUs from being created meanwhile.
    let locked = vm.lock();
    enable(vm, &locked, cap.args[0])
}

/// `KVM_ENABLE_CAP(KVM_CAP_DIRTY_WP_ALL)`: turns the hooks on, before the
/// VM has vCPUs (so it has no page tables made without them).
fn enable(vm: Vm<'_>, locked: &VmLocked<'_>, flags: u64) -> Result {
    let (present, writable) = supported(vm).ok_or_else(eopnotsupp)?;
    let (want_present, want_writable) = (arch::PRESENT, arch::WRITABLE);
    if present != want_present || writable != want_writable {
        pr_warn!(
            "write-protect-all refused: present/W masks {present:#x}/{writable:#x}, expected {want_present:#x}/{want_writable:#x}\n"
        );
        return Err(eopnotsupp());
    }
    if flags & !CAP_NO_HARVEST_WP != 0 {
        return Err(EINVAL);
    }
    if locked.created_vcpus() != 0 {
        return Err(EBUSY);
    }
    let state = vm.wp();
    if state.is_on_locked() {
        return Err(EEXIST);
    }
    #[cfg(CONFIG_ARM64)]
    locked.stage2_wp_all_enable()?;
    state.turn_on(flags & CAP_NO_HARVEST_WP != 0);
    counters::add(Counter::KD_WP_ALL_ENABLED, 1);
    Ok(())
}

/// A VM ioctl KVM does not know, asked before the architecture's:
/// `-ENOIOCTLCMD` for all but `KVM_WRITE_PROTECT_ALL_MEM`.
///
/// # Safety
///
/// KVM calls it for the VM ioctl, on a live VM, without `mmu_lock`.
#[no_mangle]
unsafe extern "C" fn kd_rs_vm_ioctl(
    kvm: *mut bindings::kvm,
    ioctl: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: KVM's contract above.
    let vm = unsafe { Vm::from_raw(kvm) };
    to_c(vm_ioctl(vm, ioctl, arg)) as c_long
}

fn vm_ioctl(vm: Vm<'_>, ioctl: c_uint, arg: c_ulong) -> Result {
    if ioctl != uapi::WRITE_PROTECT_ALL_MEM {
        return Err(ENOIOCTLCMD);
    }
    if arg != 0 {
        return Err(EINVAL);
    }
    // `KVM_WRITE_PROTECT_ALL_MEM`: the test knob first, so that a failed
    // call changes nothing and counts nothing.
    if params::take_fail_wp_all() {
        return Err(EIO);
    }
    if !vm.wp().is_on() {
        return Err(EINVAL);
    }
    write_protect_all(vm, false);
    counters::add(Counter::KD_WP_ALL_CALLS, 1);
    Ok(())
}

/// Dirty logging is being turned on for a slot of a write-protect-all VM
/// (KVM calls this instead of splitting the slot's huge pages and
/// write-protecting them one by one): one write-protect-all gives the same
/// guarantee, that every write from now on faults and is logged, in O(1).
/// Huge pages stay mapped for reads; the write fault that needs a 4K
/// mapping splits one, and the split's leaves are linked without W.
///
/// # Safety
///
/// KVM calls it (through the shim, which asserts `slots_lock`) on a live
/// VM whose write-protect-all is on, without `mmu_lock`.
#[no_mangle]
unsafe extern "C" fn kd_rs_wp_log_enable(kvm: *mut bindings::kvm) {
    // SAFETY: KVM's contract above.
    let vm = unsafe { Vm::from_raw(kvm) };
    log_enable(vm)
}

fn log_enable(vm: Vm<'_>) {
    write_protect_all(vm, true);
    counters::add(Counter::KD_WP_ALL_LOG_ENABLES, 1);
}

/// What a write-protect-all protected at the top of the page tables.
pub(super) struct WpAllDone {
    /// Roots whose entries it protected (x86: the TDP MMU's; arm64: 1, the
    /// stage-2 start level's tables).
    pub(super) roots: u32,
    /// Root entries write-protected (arm64: start-level descriptors made
    /// pending or read-only).
    pub(super) entries: u64,
}

/// A write-protect-all of `vm`, whose write-protect-all is on, by the
/// architecture's mechanism: for `KVM_WRITE_PROTECT_ALL_MEM`, or for dirty
/// logging turned on (`log_enable`).
fn write_protect_all(vm: Vm<'_>, log_enable: bool) {
    let done = arch::write_protect_all(vm);
    counters::add(Counter::KD_WP_ALL_ROOT_ENTRIES, done.entries);
    trace::wp_all(done.roots, done.entries, log_enable);
}
