// SPDX-License-Identifier: GPL-2.0

//! What the module registers with the kernel, each undone when dropped:
//! its ops table with KVM, and the debugfs directory of its counters.

use super::bindings;
use super::counters;
use kernel::error::to_result;
use kernel::prelude::*;

/// The module's ops table, registered with KVM
/// (include/linux/kvm_dirty_ops.h): every VM created from then on is bound
/// to the module for its whole life, unless `bind_vms` is off, and holds a
/// reference on it.  Unregistered when dropped, when the module unloads,
/// which no bound VM is left to see.
pub(crate) struct KvmOps {
    _registered: (),
}

impl KvmOps {
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: the shim's ops table is a static, registered at most once:
        // only this constructor registers it, and only `drop` unregisters.
        to_result(unsafe { bindings::kd_ops_register() })?;
        Ok(KvmOps { _registered: () })
    }
}

impl Drop for KvmOps {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, unregistered once here.
        unsafe { bindings::kd_ops_unregister() }
    }
}

/// `/sys/kernel/debug/kvm_dirty/`: a file per counter.  Removed when
/// dropped.
pub(crate) struct CountersDir {
    /// What debugfs_create_dir() returned, an error pointer included: a
    /// debugfs failure is no error of the module's (it serves without its
    /// counters), and debugfs_remove() takes either.
    dir: *mut bindings::dentry,
}

// SAFETY: the directory is only handed back to debugfs, from whichever
// thread drops it; debugfs locks for itself.
unsafe impl Send for CountersDir {}
// SAFETY: `&CountersDir` gives no access to the directory.
unsafe impl Sync for CountersDir {}

impl CountersDir {
    pub(crate) fn create() -> Self {
        // SAFETY: the counters are statics, which outlive the files: `drop`
        // removes them before the module's memory goes.
        let dir = unsafe { bindings::kd_debugfs_create(counters::for_debugfs()) };
        CountersDir { dir }
    }
}

impl Drop for CountersDir {
    fn drop(&mut self) {
        // SAFETY: made by `create`, removed once here.
        unsafe { bindings::kd_debugfs_remove(self.dir) }
    }
}
