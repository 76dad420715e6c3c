/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between the Rust and the C halves of kvm_dirty.ko.
 *
 * kd_*: thin C wrappers over KVM that the Rust side calls.  They hold no
 * algorithm: each is a field access, a lock, or one call into KVM.
 * kd_rs_*: the Rust entry points that the C ops table calls.
 *
 * bindgen reads this header at build time (rust/shim_bindings_generated.rs),
 * so it declares only opaque structs and fixed-width types.
 */
#ifndef KVM_DIRTY_SHIM_H
#define KVM_DIRTY_SHIM_H

#include <linux/types.h>

struct kvm;
struct kvm_memory_slot;

/* Counters shown in /sys/kernel/debug/kvm_dirty/; owned by the Rust side. */
enum kd_counter {
	KD_VMS_BOUND,		/* VMs bound to the module since load */
	KD_VMS_LIVE,		/* VMs bound now */
	KD_GET_DIRTY_LOG,	/* KVM_GET_DIRTY_LOG calls served */
	KD_GET_DIRTY_LOG_ERR,	/* ... of which returned an error */
	KD_WORDS_SCANNED,	/* bitmap words looked at */
	KD_WORDS_DIRTY,		/* words harvested with bits set */
	KD_PAGES_HARVESTED,	/* dirty pages reported to user space */
	KD_PAGES_PROTECTED,	/* pages handed to the masked write-protect */
	KD_TLB_FLUSHES,		/* memslot TLB flushes (GET and CLEAR) */
	KD_CLEAR_DIRTY_LOG,	/* KVM_CLEAR_DIRTY_LOG calls served */
	KD_CLEAR_DIRTY_LOG_ERR,	/* ... of which returned an error */
	KD_PAGES_CLEARED,	/* pages cleared and re-protected by CLEAR */
	KD_NR_COUNTERS
};

/* Registration, called from the Rust module's init and drop. */
int kd_shim_register(u64 *counters);
void kd_shim_unregister(void);
bool kd_bind_vms(void);

/* VM state.  slots_lock is held by the caller of every kd_rs_* below. */
void kd_assert_slots_lock_held(struct kvm *kvm);
bool kd_use_dirty_bitmap(struct kvm *kvm);
bool kd_manual_protect(struct kvm *kvm);
u32 kd_nr_memslot_as_ids(struct kvm *kvm);
u32 kd_user_mem_slots(void);

/* Memslots, valid while slots_lock is held. */
struct kvm_memory_slot *kd_id_to_memslot(struct kvm *kvm, u32 as_id, u32 id);
unsigned long *kd_slot_dirty_bitmap(struct kvm_memory_slot *slot);
unsigned long *kd_slot_second_bitmap(struct kvm_memory_slot *slot);
u64 kd_slot_bitmap_bytes(struct kvm_memory_slot *slot);
u64 kd_slot_npages(struct kvm_memory_slot *slot);
void kd_sync_dirty_log(struct kvm *kvm, struct kvm_memory_slot *slot);

/* MMU. */
void kd_mmu_lock(struct kvm *kvm);
void kd_mmu_unlock(struct kvm *kvm);
void kd_write_protect_masked(struct kvm *kvm, struct kvm_memory_slot *slot,
			     u64 first_page, unsigned long mask);
void kd_flush_tlbs_memslot(struct kvm *kvm, struct kvm_memory_slot *slot);

/* Rust entry points. */
int kd_rs_vm_init(struct kvm *kvm);
void kd_rs_vm_destroy(struct kvm *kvm);
int kd_rs_get_dirty_log(struct kvm *kvm, u32 slot, u64 user_bitmap);
int kd_rs_clear_dirty_log(struct kvm *kvm, u32 slot, u64 first_page,
			  u32 num_pages, u64 user_bitmap);

#endif /* KVM_DIRTY_SHIM_H */
