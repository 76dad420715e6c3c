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

use kernel::prelude::*;

mod algo;
mod entry;
mod kvm;

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
        kvm::popcnt::init();
        kvm::counters::register()?;
        pr_info!("serving dirty logging and dirty rings for new VMs\n");
        Ok(KvmDirty)
    }
}

impl Drop for KvmDirty {
    fn drop(&mut self) {
        // No VM is bound any more: each one held a reference on the module.
        kvm::counters::unregister();
        pr_info!("unloaded\n");
    }
}
