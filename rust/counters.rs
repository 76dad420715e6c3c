// SPDX-License-Identifier: GPL-2.0

//! What the module served, shown in `/sys/kernel/debug/kvm_dirty/`.
//!
//! Tests read these to prove a path ran in Rust.  They are bumped once per
//! call, so one shared cache line per counter is cheap; the per-page ones
//! (ring pushes, bitmap marks) are per-CPU counters in the C shim instead.

use crate::bindings;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::error::to_result;
use kernel::prelude::*;

pub(crate) use bindings::kd_counter as Counter;

const NR: usize = bindings::kd_counter::KD_NR_COUNTERS as usize;

// debugfs reads these as plain u64s: AtomicU64 has the same layout.
static COUNTERS: [AtomicU64; NR] = [const { AtomicU64::new(0) }; NR];

pub(crate) fn add(c: Counter, n: u64) {
    // A locked add on a shared line costs even when it adds nothing (the
    // clean-slot GET adds several zeros).
    if n != 0 {
        COUNTERS[c as usize].fetch_add(n, Ordering::Relaxed);
    }
}

pub(crate) fn sub(c: Counter, n: u64) {
    COUNTERS[c as usize].fetch_sub(n, Ordering::Relaxed);
}

/// Creates the debugfs files and registers the ops table with KVM.
pub(crate) fn register() -> Result {
    // SAFETY: `COUNTERS` is a static array of `NR` u64-sized atomics, which
    // outlives the debugfs files: `unregister()` removes them before unload.
    to_result(unsafe { bindings::kd_shim_register(COUNTERS.as_ptr() as *mut u64) })
}

pub(crate) fn unregister() {
    // SAFETY: called once, from the module's drop, after a successful
    // `register()`.
    unsafe { bindings::kd_shim_unregister() }
}
