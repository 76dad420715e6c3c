// SPDX-License-Identifier: GPL-2.0

//! `mark_page_dirty`: a vCPU (or KVM on its behalf) wrote a page of a
//! dirty-tracked memslot.  Pushed to the running vCPU's dirty ring when the
//! VM uses rings, else set in the slot's bitmap.  The hot path of dirty
//! tracking: every page written once per round goes through here.

use crate::algo::ring::{self, Pushed};
use crate::kvm::bindings;
use crate::kvm::counters::{self, Counter, PcpuCounter};
use crate::kvm::ring::Dirtied;
use core::sync::atomic::Ordering;

/// `->mark_page_dirty()`, with its arguments as the shim passes them.
///
/// # Safety
///
/// `ring` is the running vCPU's ring if the VM uses rings and a vCPU runs
/// (then `vcpu` is that vCPU), else NULL; `bitmap` is the memslot's dirty
/// bitmap, or NULL if it has none; `slot` names the memslot as the ring
/// does (address space in bits 16-31, id in 0-15) and `rel_gfn` is below
/// its size in pages.  Any context: no sleeping, no lock.
#[no_mangle]
unsafe extern "C" fn kd_rs_mark_page_dirty(
    vcpu: *mut bindings::kvm_vcpu,
    ring: *mut bindings::kvm_dirty_ring,
    bitmap: *mut usize,
    slot: u32,
    rel_gfn: u64,
) {
    // SAFETY: KVM's contract above.
    let dirtied = unsafe { Dirtied::new(vcpu, ring, bitmap, rel_gfn) };
    mark_page_dirty(dirtied, slot, rel_gfn)
}

#[inline(always)]
fn mark_page_dirty(dirtied: Dirtied<'_>, slot: u32, rel_gfn: u64) {
    match dirtied {
        Dirtied::Ring(vcpu) => {
            counters::pcpu_inc(PcpuCounter::KD_RING_PUSHES);
            match ring::push(vcpu.ring.state, vcpu.ring.entries, slot, rel_gfn) {
                Pushed::Ok => return,
                Pushed::SoftFull => counters::add(Counter::KD_RING_SOFT_FULL, 1),
                Pushed::Full => counters::add(Counter::KD_RING_FULL, 1),
            }
            vcpu.request_soft_full();
        }
        Dirtied::Bitmap(word, bit) => {
            // Relaxed, like set_bit(): the harvest's exchange orders it.
            word.fetch_or(1 << bit, Ordering::Relaxed);
            counters::pcpu_inc(PcpuCounter::KD_BITMAP_MARKS);
        }
        Dirtied::Nowhere => {}
    }
}
