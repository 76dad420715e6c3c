//! Properties of rust/algo/slot.rs: the memslot name user space writes and
//! the page ranges it asks for, checked before the kernel acts on them.
//! The name is decoded as the shim decodes it (kvm_dirty_shim.h).

mod common;
use common::Rng;

use dirty_algos::ring::{batch_in_slot, Batch};
use dirty_algos::slot::*;

#[test]
fn in_range_is_upstreams_check() {
    // As kvm_get_dirty_log(): as_id >= nr_as_ids or id >= KVM_USER_MEM_SLOTS
    // is -EINVAL.
    let mut rng = Rng(0x5107);
    for _ in 0..100_000 {
        let slot = rng.next() as u32;
        let (nr_as_ids, user_mem_slots) = (1 + rng.next() as u32 % 3, rng.next() as u32 % 0x1_0001);
        let (as_id, id) = (slot >> 16, slot & 0xffff);
        assert_eq!(
            SlotId { as_id, id }.in_range(nr_as_ids, user_mem_slots),
            !(as_id >= nr_as_ids || id >= user_mem_slots),
            "slot {slot:#x}"
        );
    }
}

#[test]
fn pages_in_slot_against_enumeration() {
    for npages in 0..40u64 {
        for first in 0..45u64 {
            for count in 0..45u64 {
                let all_in = (first..first + count).all(|p| p < npages) && first <= npages;
                assert_eq!(
                    pages_in_slot(first, count, npages),
                    all_in,
                    "{first}+{count} of {npages}"
                );
            }
        }
    }
}

#[test]
fn pages_in_slot_never_overflows() {
    assert!(pages_in_slot(u64::MAX, 0, u64::MAX));
    assert!(!pages_in_slot(u64::MAX, 1, u64::MAX));
    assert!(!pages_in_slot(1, u64::MAX, u64::MAX));
    assert!(pages_in_slot(0, u64::MAX, u64::MAX));
    assert!(!pages_in_slot(u64::MAX, u64::MAX, 0));
}

/// A ring batch passes exactly when every page its mask names is in the
/// slot, whatever offset and mask user space's entries made.
#[test]
fn batch_in_slot_is_pages_of_the_mask_in_slot() {
    let mut rng = Rng(0xba7c);
    for _ in 0..200_000 {
        let npages = rng.next() % 300;
        let offset = match rng.next() % 4 {
            0 => rng.next(),
            _ => rng.next() % 320,
        };
        let mask = rng.next() >> (rng.next() % 64);
        let b = Batch {
            slot: 0,
            offset,
            mask,
        };
        let named = (0..64).filter(|i| mask & (1 << i) != 0);
        let want = mask != 0
            && named
                .clone()
                .all(|i| offset.checked_add(i).is_some_and(|p| p < npages));
        assert_eq!(
            batch_in_slot(&b, npages),
            want,
            "offset {offset} mask {mask:#x} npages {npages}"
        );
    }
}
