// SPDX-License-Identifier: GPL-2.0

//! kvm_dirty: KVM's dirty-page tracking paths, served in Rust.
//!
//! On load the module registers an ops table with KVM (the hook patch in
//! `kernel/`); every VM created from then on is bound to it for its whole
//! life and holds a reference on this module, so `rmmod` is refused while a
//! bound VM exists.  VMs created earlier, or while the `bind_vms` parameter is
//! off, stay on KVM's own C paths.
//!
//! Served in Rust: `KVM_GET_DIRTY_LOG` (harvest-and-protect, and the
//! manual-protect copy), `KVM_CLEAR_DIRTY_LOG`, mark_page_dirty (the
//! bitmap bit or the dirty-ring push, with the soft-full request), and
//! `KVM_RESET_DIRTY_RINGS`; their masked write-protect too on the x86 TDP
//! MMU and arm64 stage 2 (the module's own page-table walk) and on the x86
//! shadow MMU (its own walk of the rmaps), KVM's function elsewhere.
//! Enabling the ring, its mmap and the soft-full exit check on guest entry
//! stay KVM's C code.  On the x86 TDP MMU also
//! write-protect-all (`KVM_CAP_DIRTY_WP_ALL`, `KVM_WRITE_PROTECT_ALL_MEM`):
//! the generations, the fault-time push-down and the records of writable
//! entries, through KVM's MMU hooks.
//! Counters of what was served are in `/sys/kernel/debug/kvm_dirty/`.

use counters::Counter;
use kernel::prelude::*;

mod algo;
mod bindings;
mod clear_dirty_log;
mod counters;
mod dirty_ring;
mod get_dirty_log;
mod popcnt;
mod vm;
mod wp_all_arm64;
mod wp_all_shadow;
mod wp_all_tdp;
mod wp_masked;

module! {
    type: KvmDirty,
    name: "kvm_dirty",
    author: "kvm-dirty developers",
    description: "KVM dirty-page tracking in Rust",
    license: "GPL",
}

struct KvmDirty;

impl kernel::Module for KvmDirty {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        popcnt::init();
        counters::register()?;
        pr_info!("serving dirty logging and dirty rings for new VMs\n");
        Ok(KvmDirty)
    }
}

impl Drop for KvmDirty {
    fn drop(&mut self) {
        // No VM is bound any more: each one held a reference on the module.
        counters::unregister();
        pr_info!("unloaded\n");
    }
}

/// Called by KVM for every VM created while the module is registered.
/// Returns 0 to bind the VM to the Rust paths, or KVM_DIRTY_OPS_DECLINE to
/// leave it on the C paths (the `bind_vms` parameter), so one boot can
/// compare both.
#[no_mangle]
extern "C" fn kd_rs_vm_init(_kvm: *mut bindings::kvm) -> i32 {
    // SAFETY: reads a module parameter.
    if !unsafe { bindings::kd_bind_vms() } {
        return KVM_DIRTY_OPS_DECLINE;
    }
    counters::add(Counter::KD_VMS_BOUND, 1);
    counters::add(Counter::KD_VMS_LIVE, 1);
    0
}

/// Called by KVM when a bound VM is destroyed.
#[no_mangle]
extern "C" fn kd_rs_vm_destroy(_kvm: *mut bindings::kvm) {
    counters::sub(Counter::KD_VMS_LIVE, 1);
}

/// include/linux/kvm_dirty_ops.h: leave the VM on the C paths.
const KVM_DIRTY_OPS_DECLINE: i32 = 1;
