// SPDX-License-Identifier: GPL-2.0

//! A VM's memslots as the dirty-log paths see them, with `slots_lock` held:
//! a slot's size and flags, its MMU operations, and its two dirty bitmaps,
//! which go to and come from user space.

use super::bindings;
use super::mmu::SlotMmu;
use crate::algo::slot::SlotId;
use core::ptr::NonNull;
use core::sync::atomic::AtomicUsize;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// The name of the slot `info` describes, as the shim decoded it.
#[inline(always)]
pub(super) fn name(info: &bindings::kd_memslot) -> SlotId {
    SlotId {
        as_id: info.as_id,
        id: info.id,
    }
}

/// A memslot of a [`super::vm::SlotsLocked`] VM: its size, flags and MMU
/// operations.
#[derive(Clone, Copy)]
pub(crate) struct SlotRef<'a> {
    mmu: SlotMmu<'a>,
    // Read once: slots_lock keeps the slot and its fields until `'a` ends.
    npages: u64,
    dirty_logging: bool,
}

impl<'a> SlotRef<'a> {
    /// The memslot `info` describes, if it exists.
    ///
    /// # Safety
    ///
    /// `info` is what `kd_memslot()` filled for the live VM `kvm`, whose
    /// `slots_lock` is held for `'a`.
    pub(super) unsafe fn new(
        kvm: NonNull<bindings::kvm>,
        info: &bindings::kd_memslot,
    ) -> Option<SlotRef<'a>> {
        NonNull::new(info.slot).map(|slot| SlotRef {
            // SAFETY: a memslot of `kvm` (the caller's contract).
            mmu: unsafe { SlotMmu::new(kvm, slot) },
            npages: info.npages,
            dirty_logging: info.dirty_logging,
        })
    }

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

/// A memslot with access to its dirty bitmaps (see
/// [`super::vm::SlotsLocked::memslot`]).
pub(crate) struct Memslot<'a> {
    mmu: SlotMmu<'a>,
    /// Filled by the shim; slots_lock keeps what it names until `'a`.
    info: &'a bindings::kd_memslot,
    /// The module allocated the bitmap, shared with user space
    /// (`super::shared_bitmap`): its second buffer is elsewhere.
    shared: bool,
}

/// A memslot's two dirty bitmaps: the live one, which vCPUs set bits in
/// concurrently, and the second buffer, which only the holder of slots_lock
/// touches.
pub(crate) struct Bitmaps<'a> {
    pub(crate) live: &'a [AtomicUsize],
    pub(crate) buffer: &'a mut [usize],
}

impl<'a> Memslot<'a> {
    /// The memslot `info` describes, if it exists, viewed in place.
    ///
    /// # Safety
    ///
    /// `info` is what `kd_memslot()` filled for the live VM `kvm`, whose
    /// `slots_lock` is held for `'a`, and no other view of its bitmaps
    /// exists meanwhile; `shared` says whether the module allocated its
    /// bitmap (a shared bitmap) or KVM did.
    pub(super) unsafe fn new(
        kvm: NonNull<bindings::kvm>,
        info: &'a bindings::kd_memslot,
        shared: bool,
    ) -> Option<Memslot<'a>> {
        NonNull::new(info.slot).map(|slot| Memslot {
            // SAFETY: a memslot of `kvm` (the caller's contract).
            mmu: unsafe { SlotMmu::new(kvm, slot) },
            info,
            shared,
        })
    }

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
        // kvm_second_dirty_bitmap() returns; a shared bitmap has it past
        // the pages user space maps.
        let buffer = if self.shared {
            let live = NonNull::from(live).cast::<usize>();
            super::shared_bitmap::buffer_of(live, self.info.npages)
        } else {
            self.info.second_bitmap.cast()
        };
        // SAFETY: `buffer` is as many longs as `live` and is only used by
        // GET/CLEAR_DIRTY_LOG under slots_lock, which we hold; `&mut self`,
        // the only view of the slot's bitmaps, makes this the only view of
        // it.
        let buffer = unsafe { core::slice::from_raw_parts_mut(buffer.cast::<usize>(), live.len()) };
        Some(Bitmaps { live, buffer })
    }

    /// The slot's size in pages.
    pub(crate) fn npages(&self) -> u64 {
        self.info.npages
    }

    /// The slot's name, as the ioctl gave it.
    pub(crate) fn name(&self) -> SlotId {
        name(self.info)
    }

    /// The slot's MMU operations; usable while its bitmaps are borrowed.
    pub(crate) fn mmu(&self) -> SlotMmu<'a> {
        self.mmu
    }
}

impl Bitmaps<'_> {
    /// Copies the second buffer, the harvest's snapshot, to user space.
    pub(crate) fn copy_buffer_to_user(&self, user_bitmap: u64) -> Result {
        let bytes = core::mem::size_of_val(self.buffer);
        // SAFETY: `buffer` is `bytes` initialised bytes; u8 has no alignment.
        let snapshot =
            unsafe { core::slice::from_raw_parts(self.buffer.as_ptr().cast::<u8>(), bytes) };
        UserSlice::new(user_bitmap as usize, bytes)
            .writer()
            .write_slice(snapshot)
    }
}

/// Copies a slot's live bitmap to user space, as upstream's manual-protect
/// GET does: vCPUs go on setting bits while it is copied; a bit set during
/// the copy is in this report or stays set for the next, as nothing here
/// clears one.
pub(crate) fn copy_live_to_user(live: &[AtomicUsize], user_bitmap: u64) -> Result {
    let bytes = core::mem::size_of_val(live);
    // SAFETY: `live` is `bytes` bytes of the slot's bitmap, kept allocated
    // by slots_lock; copy_to_user() checks the user range and reads the
    // words as upstream's C does, racing only with atomic bit sets.
    let left = unsafe {
        kernel::bindings::copy_to_user(
            user_bitmap as *mut core::ffi::c_void,
            live.as_ptr().cast(),
            bytes as _,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// Fills `words`, the start of a slot's second bitmap, from the user buffer
/// of `KVM_CLEAR_DIRTY_LOG`.
///
/// Not `UserSlice`: its reader and the helper under it were 45 instructions
/// of a CLEAR that protects one word, upstream's inline copy_from_user()
/// half that (tools/tcg-profile, arm64).
pub(crate) fn copy_from_user(words: &mut [usize], user_bitmap: u64) -> Result {
    let bytes = core::mem::size_of_val(words);
    // SAFETY: `words` is `bytes` writable bytes of plain integers (any bytes
    // user space writes are valid values); copy_from_user() checks the user
    // range.
    let left = unsafe {
        kernel::bindings::copy_from_user(
            words.as_mut_ptr().cast(),
            user_bitmap as *const core::ffi::c_void,
            bytes as _,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}
