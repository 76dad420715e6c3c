// SPDX-License-Identifier: GPL-2.0

//! How user space names a memslot and its pages, and the checks a name must
//! pass before the kernel acts on it: the one decode and the one range
//! check of `KVM_GET_DIRTY_LOG`, `KVM_CLEAR_DIRTY_LOG` and the dirty ring's
//! reset, whose entries user space may have rewritten.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

/// A memslot as the uapi names it (`struct kvm_dirty_log`,
/// `struct kvm_clear_dirty_log`, `struct kvm_dirty_gfn`): the address space
/// in bits 16-31, the slot's id in bits 0-15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId {
    pub as_id: u32,
    pub id: u32,
}

impl SlotId {
    pub fn decode(slot: u32) -> Self {
        SlotId {
            as_id: slot >> 16,
            id: slot & 0xffff,
        }
    }

    /// Whether a VM with `nr_as_ids` address spaces, whose user space may
    /// use `user_mem_slots` ids, can have this slot: upstream returns
    /// `-EINVAL` for any other, before it looks a slot up.
    pub fn in_range(self, nr_as_ids: u32, user_mem_slots: u32) -> bool {
        self.as_id < nr_as_ids && self.id < user_mem_slots
    }
}

/// Whether pages `first..first + count` all lie in a slot of `npages`
/// pages, without overflow whatever user space wrote.
pub fn pages_in_slot(first: u64, count: u64, npages: u64) -> bool {
    first <= npages && count <= npages - first
}
