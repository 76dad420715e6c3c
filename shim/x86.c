// SPDX-License-Identifier: GPL-2.0
/*
 * The x86 half of the shim (include/kvm_dirty_shim.h, under CONFIG_X86):
 * what the host offers, and the descriptions of KVM's x86 MMU state the Rust
 * half needs: the TDP MMU's tables and the shadow MMU's rmaps for the
 * masked write-protect (kernel/0009, 0010), the TDP MMU's roots and the
 * vCPUs' root loads for write-protect-all (kernel/0003, 0007).
 */
#include <linux/kvm_host.h>
#include <linux/kvm_dirty_ops.h>

#include "../include/kvm_dirty_shim.h"

static_assert(KD_PT_MAX_ROOTS == KVM_DIRTY_TDP_MAX_ROOTS);
static_assert(KD_RMAP_LEVELS == KVM_DIRTY_RMAP_LEVELS);

void kd_host_init(struct kd_host *host)
{
	host->popcnt = boot_cpu_has(X86_FEATURE_POPCNT);
	host->svm = boot_cpu_has(X86_FEATURE_SVM);
}

void kd_sync_dirty_log(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	kvm_arch_sync_dirty_log(kvm, slot);
}

static __always_inline bool kd_tdp_walk_describe(struct kvm *kvm,
						 struct kvm_memory_slot *slot,
						 struct kd_pt_walk *walk)
{
	struct kvm_dirty_tdp_walk w;
	int i;

	if (!kvm_tdp_mmu_dirty_walk(kvm, slot->as_id, &w))
		return false;
	walk->present = w.present;
	walk->writable = w.writable;
	walk->table_mask = w.huge;
	walk->table_bits = 0;
	/* KVM's accessed mask is private to it (spte.h). */
	walk->access_flag = 0;
	walk->addr = w.addr;
	walk->addr_hi = 0;
	walk->addr_hi_shift = 0;
	walk->page_offset = (u64)__va(0);
	walk->base_gfn = slot->base_gfn;
	walk->init_set = kvm_dirty_log_manual_protect_and_init_set(kvm);
	walk->nr_roots = w.nr_roots;
	for (i = 0; i < KD_PT_MAX_ROOTS; i++) {
		bool root = i < w.nr_roots;

		walk->roots[i] = root ? w.roots[i] : NULL;
		walk->root_levels[i] = root ? w.root_levels[i] : 0;
		walk->root_entries[i] = root ? PAGE_SIZE / sizeof(u64) : 0;
	}
	/*
	 * mmu_lock held for write keeps the tables; RCU as KVM's own walks
	 * (tdp_mmu.c frees tables after a grace period).
	 */
	rcu_read_lock();
	return true;
}

void kd_pt_walk_end(void)
{
	rcu_read_unlock();
}

static bool kd_rmap_walk_describe(struct kvm *kvm, struct kvm_memory_slot *slot,
				  struct kd_rmap_walk *walk)
{
	struct kvm_dirty_rmap_walk w;
	int i;

	if (!kvm_mmu_rmap_dirty_walk(kvm, slot, &w))
		return false;
	for (i = 0; i < KD_RMAP_LEVELS; i++) {
		walk->rmap[i] = w.rmap[i];
		walk->entries[i] = w.entries[i];
	}
	walk->present = w.present;
	walk->writable = w.writable;
	walk->many = w.many;
	walk->desc_more = w.desc_more;
	walk->desc_sptes = w.desc_sptes;
	walk->desc_entries = w.desc_entries;
	walk->base_gfn = slot->base_gfn;
	walk->init_set = kvm_dirty_log_manual_protect_and_init_set(kvm);
	/* No RCU section: mmu_lock held for write keeps rmaps and SPTEs. */
	return true;
}

/*
 * One call per mmu_lock section that protects anything: under TCG each call
 * into C costs about as much as the loads it wraps.
 *
 * A slot without rmaps is mapped by the TDP MMU alone.  With rmaps: by the
 * shadow MMU (npt=0), or by a TDP MMU VM that runs a nested guest, which
 * neither description covers (each of kernel/0009 and 0010 refuses it).
 * Read without slots_arch_lock: a nested guest's rmaps allocated meanwhile
 * make the TDP MMU's description refuse (kvm_memslots_have_rmaps()), as
 * KVM's own function decides.  (Not kvm->arch.tdp_mmu_roots: KVM
 * initializes it for the TDP MMU only.)
 */
int kd_wp_walk_describe(struct kvm *kvm, struct kvm_memory_slot *slot,
			struct kd_pt_walk *pt, struct kd_rmap_walk *rm)
{
	if (!READ_ONCE(slot->arch.rmap[0]))
		return kd_tdp_walk_describe(kvm, slot, pt) ? KD_WALK_TABLES :
							     KD_WALK_NONE;
	return kd_rmap_walk_describe(kvm, slot, rm) ? KD_WALK_RMAPS :
						      KD_WALK_NONE;
}

bool kd_wp_all_supported(struct kvm *kvm, u64 *present, u64 *writable)
{
	struct kvm_dirty_spte_masks masks;
	bool ok = kvm_mmu_wp_all_supported(kvm, &masks);

	*present = masks.present;
	*writable = masks.writable;
	return ok;
}

void kd_visit_root_tables(struct kvm *kvm,
			  void (*fn)(void *ctx, struct kvm_dirty_table *table,
				     u64 *spt),
			  void *ctx)
{
	kvm_tdp_mmu_visit_roots(kvm, fn, ctx);
}

/* kvm_mmu_load_pgd() calls ->wp_load_root() on the way (kernel/0007). */
void kd_wp_all_reload_roots(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;

	kvm_for_each_vcpu(i, vcpu, kvm)
		kvm_make_request(KVM_REQ_LOAD_MMU_PGD, vcpu);
}
