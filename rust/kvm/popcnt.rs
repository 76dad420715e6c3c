// SPDX-License-Identifier: GPL-2.0

//! Counting a dirty word's pages with the CPU's POPCNT where it has one.
//!
//! The kernel's Rust target is plain x86-64, so `count_ones()` compiles to
//! a dozen shifts, masks and a multiply; the harvest and CLEAR loops run it
//! once per dirty word, which under TCG costs about as much as the call to
//! KVM's masked write-protect.  C's `hweight64()` patches in POPCNT at boot
//! (alternatives); here the loop is compiled twice, and the module picks the
//! POPCNT copy once at load if the CPU has the instruction.

#[cfg(target_arch = "x86_64")]
use core::sync::atomic::{AtomicBool, Ordering};

#[cfg(target_arch = "x86_64")]
static HAS_POPCNT: AtomicBool = AtomicBool::new(false);

/// Whether the CPU has POPCNT, as [`super::host::init`] read it at load.
#[cfg(target_arch = "x86_64")]
pub(super) fn init(has: bool) {
    HAS_POPCNT.store(has, Ordering::Relaxed);
}

/// Runs `f`, compiled with POPCNT enabled if the CPU has it: a loop over
/// dirty words inlined into `f` then counts each with one instruction.
#[inline(always)]
pub(crate) fn with_popcnt<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if HAS_POPCNT.load(Ordering::Relaxed) {
        // SAFETY: the boot CPU has POPCNT (read at load), and so has every
        // CPU the kernel brings up.
        return unsafe { popcnt(f) };
    }
    f()
}

/// Runs `f` compiled with POPCNT.
///
/// # Safety
///
/// The CPU has POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn popcnt<R>(f: impl FnOnce() -> R) -> R {
    f()
}
