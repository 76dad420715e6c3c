// SPDX-License-Identifier: GPL-2.0

//! Safe views of KVM's VM and memslot for the algorithms, over the C shim.
//!
//! All the unsafe code that touches KVM state is here.  The invariant that
//! makes it sound is established once, by [`SlotsLocked::new`]: the caller
//! holds `kvm->slots_lock` (checked by lockdep in `__kvm_memslots()`) for
//! as long as the view lives, so memslots cannot be deleted, moved or have
//! their bitmaps freed.

use crate::algo::ring::{DirtyGfn, RingState};
use crate::bindings;
use crate::wp_masked::{Protector, WalkTally};
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::AtomicUsize;

/// A VM whose `slots_lock` is held for the lifetime `'a`.
pub(crate) struct SlotsLocked<'a> {
    kvm: NonNull<bindings::kvm>,
    /// Read once: slots_lock keeps them until the view ends.
    facts: bindings::kd_vm_facts,
    _lock: PhantomData<&'a mut bindings::kvm>,
}

impl SlotsLocked<'_> {
    /// # Safety
    ///
    /// `kvm` points to a live VM whose `slots_lock` the caller holds, and
    /// keeps holding, for the life of the returned value; no other
    /// `SlotsLocked` exists for it meanwhile (the lock makes that so).
    pub(crate) unsafe fn new(kvm: *mut bindings::kvm) -> Self {
        let kvm = NonNull::new(kvm).expect("KVM never passes a NULL VM");
        let mut facts = bindings::kd_vm_facts {
            nr_as_ids: 0,
            user_mem_slots: 0,
            use_dirty_bitmap: false,
            manual_protect: false,
            dirty_vm: core::ptr::null_mut(),
        };
        // SAFETY: `kvm` is live and its slots_lock held (caller's contract,
        // checked by lockdep where KVM reads the memslots).
        unsafe { bindings::kd_vm_facts(kvm.as_ptr(), &mut facts) };
        // SAFETY: the caller's contract, and `facts` are `kvm`'s.
        unsafe { Self::with_facts(kvm.as_ptr(), &facts) }
    }

    /// As [`Self::new`], with the facts the C caller already read.
    ///
    /// # Safety
    ///
    /// As [`Self::new`], and `facts` is what `kd_vm_facts()` returned for
    /// `kvm` under the same hold of its slots_lock.
    pub(crate) unsafe fn with_facts(
        kvm: *mut bindings::kvm,
        facts: &bindings::kd_vm_facts,
    ) -> Self {
        SlotsLocked {
            kvm: NonNull::new(kvm).expect("KVM never passes a NULL VM"),
            facts: *facts,
            _lock: PhantomData,
        }
    }

    fn raw(&self) -> *mut bindings::kvm {
        self.kvm.as_ptr()
    }

    /// False when only the dirty ring tracks this VM (no bitmaps).
    pub(crate) fn uses_dirty_bitmap(&self) -> bool {
        self.facts.use_dirty_bitmap
    }

    /// Whether user space enabled KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2.
    pub(crate) fn manual_protect(&self) -> bool {
        self.facts.manual_protect
    }

    /// False when the VM asked GET/CLEAR_DIRTY_LOG and ring resets not to
    /// write-protect what they harvest (it uses write-protect-all).
    pub(crate) fn harvest_protects(&self) -> bool {
        // SAFETY: the shim's pointer into this VM, which outlives the view.
        !unsafe { crate::wp_all_tdp::harvest_without_wp(self.facts.dirty_vm) }
    }

    pub(crate) fn nr_address_spaces(&self) -> u32 {
        self.facts.nr_as_ids
    }

    /// Memslot ids user space may name (KVM_USER_MEM_SLOTS).
    pub(crate) fn user_mem_slots(&self) -> u32 {
        self.facts.user_mem_slots
    }

    /// Flushes all remote TLBs of the VM.
    pub(crate) fn flush_tlbs(&self) {
        // SAFETY: live VM.
        unsafe { bindings::kd_flush_tlbs(self.raw()) }
    }

    /// The vCPUs' dirty rings, in vCPU order; `None` for a vCPU without one.
    pub(crate) fn dirty_rings(&self) -> impl Iterator<Item = Option<RingRef<'_>>> + '_ {
        // SAFETY: live VM.
        let n = unsafe { bindings::kd_nr_vcpus(self.raw()) };
        (0..n).map(move |i| {
            // SAFETY: live VM, i < online_vcpus; vCPUs live as long as the VM.
            let ring = unsafe { bindings::kd_vcpu_dirty_ring(self.raw(), i) };
            // SAFETY: a vCPU's ring, valid as long as the VM.
            unsafe { RingRef::new(ring) }
        })
    }

    /// The memslot the C entry read for the ioctl, if it exists, with access
    /// to its bitmaps (hence `&mut`: one such view at a time).  The caller
    /// has checked its address space against [`Self::nr_address_spaces`]
    /// and its id against [`Self::user_mem_slots`].
    ///
    /// Read by the entry, where it inlines, and viewed in place: a call
    /// from here and a copy of its result cost a tenth of a manual-protect
    /// GET's own instructions on arm64 (tools/tcg-profile).
    ///
    /// # Safety
    ///
    /// `info` is what `kd_memslot()` filled for that address space and id
    /// under this hold of slots_lock, or has `slot` NULL for none.
    pub(crate) unsafe fn memslot<'b>(
        &'b mut self,
        info: &'b bindings::kd_memslot,
    ) -> Option<Memslot<'b>> {
        NonNull::new(info.slot).map(|slot| Memslot {
            mmu: SlotMmu {
                kvm: self.kvm,
                slot,
                _locked: PhantomData,
            },
            info,
        })
    }

    /// The memslot `id` of address space `as_id`, without its bitmaps.
    /// Same preconditions as [`Self::memslot`].
    pub(crate) fn slot(&self, as_id: u32, id: u32) -> Option<SlotRef<'_>> {
        debug_assert!(as_id < self.nr_address_spaces() && id < self.user_mem_slots());
        let mut info = MaybeUninit::<bindings::kd_memslot>::uninit();
        // SAFETY: live VM, slots_lock held, as_id and id in range (checked
        // by the caller); the shim writes the whole struct.
        let info = unsafe {
            bindings::kd_memslot(self.raw(), as_id, id, info.as_mut_ptr());
            info.assume_init()
        };
        NonNull::new(info.slot).map(|slot| SlotRef {
            mmu: SlotMmu {
                kvm: self.kvm,
                slot,
                _locked: PhantomData,
            },
            npages: info.npages,
            dirty_logging: info.dirty_logging,
        })
    }
}

/// `kvm->slots_lock`, taken by the module itself (for the ring reset, which
/// KVM calls without it); released on drop.
pub(crate) struct SlotsLockGuard {
    kvm: NonNull<bindings::kvm>,
}

impl SlotsLockGuard {
    /// # Safety
    ///
    /// `kvm` points to a live VM that outlives the guard, and the caller
    /// does not hold its slots_lock.
    pub(crate) unsafe fn lock(kvm: *mut bindings::kvm) -> Self {
        let kvm = NonNull::new(kvm).expect("KVM never passes a NULL VM");
        // SAFETY: live VM (caller's contract); released in `drop`.
        unsafe { bindings::kd_slots_lock(kvm.as_ptr()) };
        SlotsLockGuard { kvm }
    }

    /// The VM, with the lock held for as long as the view is borrowed.
    pub(crate) fn vm(&mut self) -> SlotsLocked<'_> {
        // SAFETY: live VM, and we hold its slots_lock until drop, which the
        // borrow of `self` outlasts.
        unsafe { SlotsLocked::new(self.kvm.as_ptr()) }
    }
}

impl Drop for SlotsLockGuard {
    fn drop(&mut self) {
        // SAFETY: taken in `lock`, released once here.
        unsafe { bindings::kd_slots_unlock(self.kvm.as_ptr()) }
    }
}

/// A memslot of a [`SlotsLocked`] VM: its size, flags and MMU operations.
#[derive(Clone, Copy)]
pub(crate) struct SlotRef<'a> {
    mmu: SlotMmu<'a>,
    // Read once: slots_lock keeps the slot and its fields until `'a` ends.
    npages: u64,
    dirty_logging: bool,
}

impl<'a> SlotRef<'a> {
    /// The slot's size in pages.
    pub(crate) fn npages(&self) -> u64 {
        self.npages
    }

    /// Whether user space enabled dirty logging on the slot.
    pub(crate) fn dirty_logging(&self) -> bool {
        self.dirty_logging
    }

    /// The slot's MMU operations.
    pub(crate) fn mmu(&self) -> SlotMmu<'a> {
        self.mmu
    }
}

/// A memslot with access to its dirty bitmaps (see [`SlotsLocked::memslot`]).
pub(crate) struct Memslot<'a> {
    mmu: SlotMmu<'a>,
    /// Filled by the C entry; slots_lock keeps what it names until `'a`.
    info: &'a bindings::kd_memslot,
}

/// A memslot's two dirty bitmaps: the live one, which vCPUs set bits in
/// concurrently, and the second buffer, which only the holder of slots_lock
/// touches.
pub(crate) struct Bitmaps<'a> {
    pub(crate) live: &'a [AtomicUsize],
    pub(crate) buffer: &'a mut [usize],
}

impl<'a> Memslot<'a> {
    /// The slot's live bitmap, or `None` if dirty logging is off for it.
    pub(crate) fn live(&self) -> Option<&[AtomicUsize]> {
        let live = NonNull::new(self.info.dirty_bitmap)?;
        let words = self.info.bitmap_bytes as usize / core::mem::size_of::<usize>();
        // SAFETY: `live` is `words` longs, long-aligned, alive while the slot
        // is.  Every other access to it is atomic (set_bit_le(), xchg,
        // atomic_long_fetch_andnot), so viewing it as atomics is sound.
        Some(unsafe { core::slice::from_raw_parts(live.as_ptr().cast::<AtomicUsize>(), words) })
    }

    /// The slot's bitmaps, or `None` if dirty logging is off for it.
    pub(crate) fn bitmaps(&mut self) -> Option<Bitmaps<'_>> {
        let live = self.live()?;
        // KVM allocates 2 * `bitmap_bytes` for the bitmap
        // (kvm_alloc_dirty_bitmap), the second half being the buffer
        // kvm_second_dirty_bitmap() returns.
        let buffer = self.info.second_bitmap;
        // SAFETY: `buffer` is as many longs as `live` and is only used by
        // GET/CLEAR_DIRTY_LOG under slots_lock, which we hold; `&mut self`,
        // borrowed from `&mut SlotsLocked`, makes this the only view of it.
        let buffer = unsafe { core::slice::from_raw_parts_mut(buffer.cast::<usize>(), live.len()) };
        Some(Bitmaps { live, buffer })
    }

    /// The slot's size in pages.
    pub(crate) fn npages(&self) -> u64 {
        self.info.npages
    }

    /// The slot's MMU operations; usable while its bitmaps are borrowed.
    pub(crate) fn mmu(&self) -> SlotMmu<'a> {
        self.mmu
    }
}

/// MMU operations on one memslot of a [`SlotsLocked`] VM.
#[derive(Clone, Copy)]
pub(crate) struct SlotMmu<'a> {
    kvm: NonNull<bindings::kvm>,
    slot: NonNull<bindings::kvm_memory_slot>,
    _locked: PhantomData<&'a ()>,
}

impl<'a> SlotMmu<'a> {
    /// Flushes PML buffers (VMX) into the bitmap before it is read.
    pub(crate) fn sync_dirty_log(self) {
        // kvm_arch_sync_dirty_log() is empty on arm64 (arch/arm64/kvm/arm.c):
        // not called there, where the two calls to reach it were a few
        // percent of a manual-protect GET under TCG (tools/tcg-profile).
        if cfg!(target_arch = "x86_64") {
            // SAFETY: live VM and slot, slots_lock held.
            unsafe { bindings::kd_sync_dirty_log(self.kvm.as_ptr(), self.slot.as_ptr()) }
        }
    }

    /// Takes `mmu_lock` for writing, for the masked write-protects.
    pub(crate) fn lock(self) -> MmuLocked<'a> {
        // SAFETY: live VM; released by `MmuLocked::drop`.
        unsafe { bindings::kd_mmu_lock(self.kvm.as_ptr()) };
        MmuLocked { mmu: self }
    }

    /// Flushes remote TLBs for the whole slot.
    pub(crate) fn flush_tlbs(self) {
        // SAFETY: live VM and slot, slots_lock held (asserted in KVM).
        unsafe { bindings::kd_flush_tlbs_memslot(self.kvm.as_ptr(), self.slot.as_ptr()) }
    }
}

/// `mmu_lock` held for writing; released on drop.
pub(crate) struct MmuLocked<'a> {
    mmu: SlotMmu<'a>,
}

impl<'a> MmuLocked<'a> {
    /// The VM and the memslot, for rust/wp_masked.rs.
    pub(crate) fn raw(&self) -> (*mut bindings::kvm, *mut bindings::kvm_memory_slot) {
        (self.mmu.kvm.as_ptr(), self.mmu.slot.as_ptr())
    }

    /// The masked write-protect of this memslot, by the module's own walk
    /// where it can serve (rust/wp_masked.rs), else by KVM's function; it
    /// holds `mmu_lock` until dropped.
    pub(crate) fn protector<'b>(self, tally: &'b WalkTally) -> Protector<'b>
    where
        'a: 'b,
    {
        Protector::new(self, tally)
    }

    /// Whether a task waits for the CPU or for `mmu_lock`: a section that
    /// serves several requests ends early then, as KVM's long ones do.
    pub(crate) fn needbreak(&self) -> bool {
        // SAFETY: live VM; mmu_lock is held (by us) as the caller's check
        // assumes.
        unsafe { bindings::kd_mmu_lock_needbreak(self.mmu.kvm.as_ptr()) }
    }

    /// KVM's masked write-protect: write-protects (or, with PML, clears
    /// the Dirty bit of) the 4K pages `first_page + i` for each bit `i` set
    /// in `mask`; `first_page` is relative to the slot and a multiple of 64.
    pub(crate) fn write_protect_masked(&self, first_page: usize, mask: usize) {
        // SAFETY: live VM and slot, mmu_lock held for write as KVM's masked
        // write-protect asserts.
        unsafe {
            bindings::kd_write_protect_masked(
                self.mmu.kvm.as_ptr(),
                self.mmu.slot.as_ptr(),
                first_page as u64,
                mask as _,
            )
        }
    }
}

impl Drop for MmuLocked<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `SlotMmu::lock`, released once here.
        unsafe { bindings::kd_mmu_unlock(self.mmu.kvm.as_ptr()) }
    }
}

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
    /// Views the ring without calling into C: this runs on every push.
    ///
    /// # Safety
    ///
    /// `ring` is NULL or points to a `struct kvm_dirty_ring` that stays
    /// allocated for the returned lifetime.
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
}
