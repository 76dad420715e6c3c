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
//! stay KVM's C code.  Write-protect-all (`KVM_CAP_DIRTY_WP_ALL`,
//! `KVM_WRITE_PROTECT_ALL_MEM`), through KVM's MMU hooks: on the x86 TDP
//! and shadow MMUs the generations, the fault-time push-down and the
//! records of writable entries; on arm64 stage 2 the pending table
//! descriptors.  Counters of what was served are in
//! `/sys/kernel/debug/kvm_dirty/`.
//!
//! The crate in three layers, one folder each, each using only those
//! below it:
//!
//! - [`entry`]: the functions KVM calls, through the ops table;
//! - [`kvm`]: the safe views of KVM's state, the one `unsafe` layer;
//! - [`algo`]: the pure algorithms, `core` only, which the user-space
//!   tests in `tools/dirty-algos` build unchanged.

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

/// The module: what it registered, for as long as it is loaded.
struct KvmDirty {
    _registered: Pin<KBox<Registered>>,
}

/// The module's registrations, each undone when dropped, in the order of
/// the fields: the ops table first, so that no VM can bind any more, then
/// the counters' directory.
///
/// Built in place by pin-init, as rnull builds its state: the fields are
/// made in the order the initializer names them, and those already made
/// are dropped if a later one fails.  Pinned in its box, so that a
/// registration the kernel holds by address can join it as a `#[pin]`
/// field.
#[pin_data]
struct Registered {
    ops: kvm::registration::KvmOps,
    counters: kvm::registration::CountersDir,
}

impl kernel::Module for KvmDirty {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        kvm::host::init();
        let registered = KBox::pin_init(
            try_pin_init!(Registered {
                // First: once the ops are registered, VMs bind and count,
                // which the files show.
                counters: kvm::registration::CountersDir::create(),
                ops: kvm::registration::KvmOps::register()?,
            }),
            GFP_KERNEL,
        )?;
        pr_info!("serving dirty logging and dirty rings for new VMs\n");
        Ok(KvmDirty {
            _registered: registered,
        })
    }
}

impl Drop for KvmDirty {
    fn drop(&mut self) {
        // No VM is bound any more: each one held a reference on the module.
        pr_info!("unloading: the ops table and the counters go\n");
    }
}
