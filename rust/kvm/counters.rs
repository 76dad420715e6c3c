// SPDX-License-Identifier: GPL-2.0

//! What the module served, shown in `/sys/kernel/debug/kvm_dirty/`.
//!
//! Tests read these to prove a path ran in Rust.  Two kinds:
//!
//! - [`Counter`]s, bumped once per call, so one shared cache line per
//!   counter is cheap: an array of atomics here, which debugfs reads as
//!   plain u64s;
//! - [`PcpuCounter`]s, bumped per page or per fault (ring pushes, bitmap
//!   marks, write-protect-all push-downs), per CPU in the C shim, through
//!   [`pcpu_inc`] and [`pcpu_add`].

use super::bindings;
use core::sync::atomic::{AtomicU64, Ordering};

pub(crate) use bindings::kd_counter as Counter;
pub(crate) use bindings::kd_pcpu_counter as PcpuCounter;

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

/// Adds one to a per-CPU counter.  Any context: `this_cpu_inc()`.
#[inline(always)]
pub(crate) fn pcpu_inc(which: PcpuCounter) {
    // SAFETY: a per-CPU increment, safe in any context; `which` is one of
    // the shim's counters (a Rust enum, so in range).
    unsafe { bindings::kd_count_pcpu(which) }
}

/// Adds `n` to a per-CPU counter.  Any context: `this_cpu_add()`.
#[inline(always)]
pub(crate) fn pcpu_add(which: PcpuCounter, n: u64) {
    // SAFETY: as in `pcpu_inc`.
    unsafe { bindings::kd_count_pcpu_add(which, n) }
}

/// Counts a write-protect-all push-down into a table of `height` (1: a
/// table of 4K leaves, up to 4) that write-protected `protected` entries:
/// x86 and arm64 count theirs alike.
pub(crate) fn count_push_down(height: i32, protected: u32) {
    let which = match height {
        1 => PcpuCounter::KD_WP_PUSH_L1,
        2 => PcpuCounter::KD_WP_PUSH_L2,
        3 => PcpuCounter::KD_WP_PUSH_L3,
        _ => PcpuCounter::KD_WP_PUSH_L4,
    };
    pcpu_inc(which);
    pcpu_add(PcpuCounter::KD_WP_PUSH_PROTECTED, u64::from(protected));
}

/// The shared counters as debugfs reads them: `NR` u64s, for
/// `super::registration::CountersDir`.
pub(super) fn for_debugfs() -> *mut u64 {
    COUNTERS.as_ptr() as *mut u64
}
