// SPDX-License-Identifier: GPL-2.0

//! The tracepoints the Rust side emits: the module's own (`kvm_dirty:*`,
//! shim/kvm_dirty_trace.h) and upstream KVM's `kvm:kvm_dirty_ring_reset`.
//! (`kvm:kvm_dirty_ring_push` is emitted by the shim, on the push's path.)
//!
//! A module event is emitted through a call into the shim only while it is
//! enabled: its bit in `kd_trace_on`, which the event's reg/unreg callbacks
//! keep, is tested first.  With tracing off that is one load and a branch,
//! on per-ioctl paths and on the push-downs of faults alike.

use super::bindings;
use super::ring::RingRef;
use crate::algo::slot::SlotId;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Whether the module's event `bit` (`KD_TRACE_*`) has a probe.
#[inline(always)]
fn on(bit: u32) -> bool {
    // SAFETY: `kd_trace_on` is a word of the shim's, alive as long as the
    // module; the shim changes it only with set_bit()/clear_bit(), atomic
    // read-modify-writes, so an atomic view of it is sound.
    let word =
        unsafe { AtomicUsize::from_ptr(core::ptr::addr_of_mut!(bindings::kd_trace_on).cast()) };
    // Relaxed: the flag orders nothing; the tracepoint's own static key is
    // tested again in the shim.
    word.load(Ordering::Relaxed) & (1 << bit) != 0
}

/// Which ioctl harvested.
#[derive(Clone, Copy)]
pub(crate) enum Harvest {
    Get,
    Clear { first_page: u64 },
}

/// `kvm_dirty_harvest`: `ioctl` harvested `slot`, looking at `words`
/// words of its bitmap and harvesting `pages` pages, write-protected again
/// if `protect`.
#[inline(always)]
pub(crate) fn harvest(ioctl: Harvest, slot: SlotId, words: u64, pages: u64, protect: bool) {
    if on(bindings::KD_TRACE_HARVEST) {
        harvest_traced(ioctl, slot, words, pages, protect)
    }
}

// Out of line, as every event's call below: the arguments are made on the
// traced path only.
#[cold]
#[inline(never)]
fn harvest_traced(ioctl: Harvest, slot: SlotId, words: u64, pages: u64, protect: bool) {
    let (clear, first_page) = match ioctl {
        Harvest::Get => (false, 0),
        Harvest::Clear { first_page } => (true, first_page),
    };
    let slot = (slot.as_id << 16) | slot.id;
    // SAFETY: emits an event from plain values; any context.
    unsafe { bindings::kd_trace_harvest(clear, slot, first_page, words, pages, protect) }
}

/// `kvm_dirty_wp_all`: a write-protect-all protected `entries` entries of
/// `roots` roots, for `KVM_WRITE_PROTECT_ALL_MEM` or (`log_enable`) for
/// dirty logging turned on.
#[inline(always)]
pub(crate) fn wp_all(roots: u32, entries: u64, log_enable: bool) {
    if on(bindings::KD_TRACE_WP_ALL) {
        wp_all_traced(roots, entries, log_enable)
    }
}

#[cold]
#[inline(never)]
fn wp_all_traced(roots: u32, entries: u64, log_enable: bool) {
    // SAFETY: emits an event from plain values; any context.
    unsafe { bindings::kd_trace_wp_all(roots, entries, log_enable) }
}

/// `kvm_dirty_push_down`: a push-down into a table of height `level` (0:
/// an x86 shadow root at its load) protected `protected` entries and made
/// `pended` table descriptors pending (arm64).
#[inline(always)]
pub(crate) fn push_down(level: i32, protected: u32, pended: u32) {
    if on(bindings::KD_TRACE_PUSH_DOWN) {
        push_down_traced(level, protected, pended)
    }
}

#[cold]
#[inline(never)]
fn push_down_traced(level: i32, protected: u32, pended: u32) {
    // SAFETY: emits an event from plain values; any context (KVM's fault
    // paths hold mmu_lock and may be in an RCU section: tracepoints allow
    // both).
    unsafe { bindings::kd_trace_push_down(level, protected, pended) }
}

/// `kvm:kvm_dirty_ring_reset` for a ring the reset has walked, as
/// `kvm_dirty_ring_reset()` emits it: its indices as the walk left them.
/// Once per ring and ioctl: a call, whose static key the shim tests.
pub(crate) fn ring_reset(ring: &RingRef<'_>) {
    // SAFETY: the ring, a vCPU's, is allocated while `ring` borrows it.
    unsafe { bindings::kd_trace_ring_reset(ring.as_raw()) }
}
