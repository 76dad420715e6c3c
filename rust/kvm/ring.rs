// SPDX-License-Identifier: GPL-2.0

//! A vCPU's dirty ring as KVM allocated it, and where `mark_page_dirty`
//! records a written page: that ring, or the memslot's bitmap.
//!
//! The ring is viewed without a call into C (`struct kvm_dirty_ring` is
//! mirrored, its layout asserted by the shim): this runs on every push.

use super::bindings;
use crate::algo::ring::{DirtyGfn, RingState};
use core::ptr::NonNull;
use core::sync::atomic::AtomicUsize;

/// `struct kvm_dirty_ring`, whose layout the shim asserts at build time.
#[repr(C)]
struct KvmDirtyRing {
    state: RingState,
    dirty_gfns: *mut DirtyGfn,
    index: i32,
}

/// A vCPU's dirty ring: its kernel-private state and its entries, which are
/// mapped into user space.
pub(crate) struct RingRef<'a> {
    pub(crate) state: &'a RingState,
    pub(crate) entries: &'a [DirtyGfn],
}

impl RingRef<'_> {
    /// The ring, if it is allocated (a VM with rings enabled).
    ///
    /// # Safety
    ///
    /// `ring` is NULL or points to a `struct kvm_dirty_ring` that stays
    /// allocated for the returned lifetime.
    #[inline(always)]
    pub(crate) unsafe fn new<'b>(ring: *mut bindings::kvm_dirty_ring) -> Option<RingRef<'b>> {
        let ring = NonNull::new(ring.cast::<KvmDirtyRing>())?;
        // SAFETY: `ring` is a valid struct kvm_dirty_ring (caller's contract)
        // laid out as KvmDirtyRing (asserted by the shim).  dirty_index and
        // reset_index are only accessed atomically (READ_ONCE in C); size,
        // soft_limit and dirty_gfns are written once, at allocation.
        let (state, entries) = unsafe {
            let ring = ring.as_ptr();
            (
                &(*ring).state,
                core::ptr::addr_of!((*ring).dirty_gfns).read(),
            )
        };
        if entries.is_null() || state.size == 0 || !state.size.is_power_of_two() {
            return None;
        }
        // SAFETY: `dirty_gfns` holds `size` entries (kvm_dirty_ring_alloc),
        // laid out as DirtyGfn (asserted by the shim).  User space writes
        // them concurrently through its mapping: every access is atomic.
        let entries = unsafe { core::slice::from_raw_parts(entries, state.size as usize) };
        Some(RingRef { state, entries })
    }

    /// The `struct kvm_dirty_ring` viewed, for C: `state` is its first
    /// field (`KvmDirtyRing`), so its address is the ring's.
    pub(crate) fn as_raw(&self) -> *mut bindings::kvm_dirty_ring {
        core::ptr::from_ref(self.state).cast_mut().cast()
    }
}

/// The running vCPU's ring, and the vCPU to stop when it fills.
pub(crate) struct VcpuRing<'a> {
    vcpu: NonNull<bindings::kvm_vcpu>,
    pub(crate) ring: RingRef<'a>,
}

impl VcpuRing<'_> {
    /// Asks the vCPU to exit to user space before it enters the guest
    /// again (`KVM_EXIT_DIRTY_RING_FULL`): its ring is soft-full.
    pub(crate) fn request_soft_full(&self) {
        // SAFETY: the running vCPU (`Dirtied::new`'s contract), which
        // outlives the call.
        unsafe { bindings::kd_request_soft_full(self.vcpu.as_ptr()) }
    }
}

/// Where `mark_page_dirty` records a written page.
pub(crate) enum Dirtied<'a> {
    /// The running vCPU's ring (the VM uses rings).
    Ring(VcpuRing<'a>),
    /// The page's bit in the memslot's bitmap: the word, and the bit in it.
    Bitmap(&'a AtomicUsize, usize),
    /// Neither: no running vCPU of a ring VM and no bitmap (dirty logging
    /// off for the slot).
    Nowhere,
}

impl Dirtied<'_> {
    /// What KVM passes its hook, viewed: the ring if there is one, else
    /// the bitmap's word for `rel_gfn` if the slot has a bitmap.  Inlined:
    /// this is the path of every page a vCPU dirties.
    ///
    /// # Safety
    ///
    /// `ring` is NULL or the running vCPU's ring, allocated as long as the
    /// vCPU, and then `vcpu` is that vCPU; `bitmap` is NULL or the memslot's dirty bitmap,
    /// and `rel_gfn` is below the memslot's size in pages.
    #[inline(always)]
    pub(crate) unsafe fn new<'b>(
        vcpu: *mut bindings::kvm_vcpu,
        ring: *mut bindings::kvm_dirty_ring,
        bitmap: *mut usize,
        rel_gfn: u64,
    ) -> Dirtied<'b> {
        // SAFETY: the caller's contract.
        if let Some(ring) = unsafe { RingRef::new(ring) } {
            // SAFETY: KVM passes a ring only with a running vCPU (the
            // caller's contract): not NULL.
            let vcpu = unsafe { NonNull::new_unchecked(vcpu) };
            return Dirtied::Ring(VcpuRing { vcpu, ring });
        }
        if bitmap.is_null() {
            return Dirtied::Nowhere;
        }
        let bits = usize::BITS as u64;
        // SAFETY: rel_gfn < the slot's npages (the caller's contract), so
        // the word is inside the bitmap; every access to the bitmap is
        // atomic (set_bit_le(), xchg, fetch_andnot).
        let word = unsafe { &*bitmap.add((rel_gfn / bits) as usize).cast::<AtomicUsize>() };
        Dirtied::Bitmap(word, (rel_gfn % bits) as usize)
    }
}
