// SPDX-License-Identifier: GPL-2.0

//! The checks a memslot's name and a range of its pages must pass before
//! the kernel acts on them: the one validation of `KVM_GET_DIRTY_LOG`,
//! `KVM_CLEAR_DIRTY_LOG` and the dirty ring's reset, whose entries user
//! space may have rewritten.  The name itself (address space in bits 16-31,
//! id in bits 0-15) is decoded once, by the shim, where it looks the slot up
//! (include/kvm_dirty_shim.h, `struct kd_memslot`).
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

/// A memslot as user space names it: its address space and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId {
    pub as_id: u32,
    pub id: u32,
}

impl SlotId {
    /// Whether a VM with `nr_as_ids` address spaces, whose user space may
    /// use `user_mem_slots` ids, can have this slot: upstream returns
    /// `-EINVAL` for any other.
    pub fn in_range(self, nr_as_ids: u32, user_mem_slots: u32) -> bool {
        self.as_id < nr_as_ids && self.id < user_mem_slots
    }
}

/// Whether pages `first..first + count` all lie in a slot of `npages`
/// pages, without overflow whatever user space wrote.
pub fn pages_in_slot(first: u64, count: u64, npages: u64) -> bool {
    first <= npages && count <= npages - first
}
