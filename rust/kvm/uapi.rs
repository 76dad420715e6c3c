// SPDX-License-Identifier: GPL-2.0

//! The uapi struct KVM hands `KVM_ENABLE_CAP`'s hook as it copied it from
//! user space, mirrored (the shim asserts its layout against
//! <linux/kvm.h>), write-protect-all's uapi numbers (kernel/0003), and the
//! shared dirty bitmap's ioctl argument (kernel/0013).

use super::bindings;

/// `KVM_CAP_DIRTY_WP_ALL`.
pub(crate) const CAP_DIRTY_WP_ALL: u32 = bindings::KD_CAP_DIRTY_WP_ALL;
/// `KVM_WRITE_PROTECT_ALL_MEM`.
pub(crate) const WRITE_PROTECT_ALL_MEM: u32 = bindings::KD_WRITE_PROTECT_ALL_MEM;

/// `struct kvm_dirty_bitmap_fd`: `KVM_GET_DIRTY_BITMAP_FD`'s argument, in
/// and out; the shim asserts its layout.
pub(crate) use bindings::kd_dirty_bitmap_fd as DirtyBitmapFd;

// SAFETY: integers only, without padding (u32, u32, then three u64): any
// bytes are a valid value.
unsafe impl kernel::types::FromBytes for DirtyBitmapFd {}
// SAFETY: as above; no padding, so every byte is initialised.
unsafe impl kernel::types::AsBytes for DirtyBitmapFd {}

/// `struct kvm_enable_cap`: `KVM_ENABLE_CAP`'s argument.
#[repr(C)]
pub(crate) struct EnableCap {
    pub(crate) cap: u32,
    pub(crate) flags: u32,
    pub(crate) args: [u64; 4],
    pad: [u8; 64],
}

impl EnableCap {
    /// # Safety
    ///
    /// `cap` is `KVM_ENABLE_CAP`'s argument, copied into the kernel by KVM,
    /// valid and unchanged for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw<'a>(cap: *const bindings::kvm_enable_cap) -> &'a EnableCap {
        // SAFETY: the caller's contract; laid out as EnableCap (asserted by
        // the shim).
        unsafe { &*cap.cast::<EnableCap>() }
    }
}
