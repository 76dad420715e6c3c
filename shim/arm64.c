// SPDX-License-Identifier: GPL-2.0
/*
 * The arm64 half of the shim (include/kvm_dirty_shim.h, under
 * CONFIG_ARM64): what the host offers, the description of a VM's stage 2 for the masked
 * write-protect's walk, and write-protect-all's pending table descriptors
 * (kernel/0008).
 */
#include <linux/kvm_host.h>
#include <linux/kvm_dirty_ops.h>
#include <asm/kvm_pgtable.h>
#include <asm/virt.h>

#include "../include/kvm_dirty_shim.h"

/*
 * Where the linear map puts physical address 0 (stage-2 tables are
 * allocated in it: alloc_pages_exact()), the same for every address it
 * maps: set at load, as virt_to_phys() per walk was a percent of a CLEAR
 * that protects one word under TCG (tools/tcg-profile).  From the linear
 * alias of a page of the kernel image, not the image address itself, which
 * is offset by kimage_voffset instead.
 */
static u64 kd_s2_page_offset __ro_after_init;

void kd_host_init(struct kd_host *host)
{
	phys_addr_t pa = __pa_symbol(empty_zero_page);

	kd_s2_page_offset = (u64)__va(pa) - pa;
	host->nested_virt = cpus_have_final_cap(ARM64_HAS_NESTED_VIRT);
	host->protected_kvm = is_protected_kvm_enabled();
}

/* KVM_PTE_TYPE with KVM_PTE_TYPE_TABLE, private to hyp/pgtable.c. */
#define KD_S2_PTE_TYPE_TABLE	BIT(1)

/*
 * The stage 2 of @kvm, if it has one.  What kvm_s2_wp_all_pgd() returns,
 * read here: under TCG its call and kvm_pgtable_stage2_pgd_size()'s were a
 * tenth of a CLEAR that protects one word (tools/tcg-profile).  The start
 * level's tables are concatenated: as kvm_pgd_pages(), one more than the
 * index of the last input address's table.
 */
static __always_inline bool kd_s2_walk_describe(struct kvm *kvm,
						struct kvm_memory_slot *slot,
						struct kd_pt_walk *walk)
{
	struct kvm_pgtable *pgt = kvm->arch.mmu.pgt;
	u32 pages;
	s8 level;
	int i;

	lockdep_assert_held_write(&kvm->mmu_lock);
	if (!pgt)
		return false;
	level = pgt->start_level;
	if (level < KVM_PGTABLE_FIRST_LEVEL || level > KVM_PGTABLE_LAST_LEVEL)
		return false;
	pages = ((BIT_ULL(pgt->ia_bits) - 1) >> kvm_granule_shift(level - 1)) + 1;
	walk->present = KVM_PTE_VALID;
	walk->writable = KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
	walk->table_mask = KD_S2_PTE_TYPE_TABLE;
	walk->table_bits = KD_S2_PTE_TYPE_TABLE;
	walk->access_flag = KVM_PTE_LEAF_ATTR_LO_S2_AF;
	/* As kvm_pte_to_phys(). */
	if (kvm_lpa2_is_enabled()) {
		walk->addr = KVM_PTE_ADDR_MASK_LPA2;
		walk->addr_hi = KVM_PTE_ADDR_51_50_LPA2;
		walk->addr_hi_shift = 50 - 8;	/* bits 9:8 hold 51:50 */
	} else {
		walk->addr = KVM_PTE_ADDR_MASK;
		walk->addr_hi = 0;
		walk->addr_hi_shift = 0;
	}
	walk->page_offset = kd_s2_page_offset;
	walk->base_gfn = slot->base_gfn;
	walk->init_set = kvm_dirty_log_manual_protect_and_init_set(kvm);
	walk->nr_roots = 1;
	walk->roots[0] = (u64 *)pgt->pgd;
	walk->root_levels[0] = KVM_PGTABLE_LAST_LEVEL + 1 - level;
	/* rust/kvm/wp_masked.rs checks the shape (at most 16 pages here). */
	walk->root_entries[0] = pages * PTRS_PER_PTE;
	for (i = 1; i < KD_PT_MAX_ROOTS; i++) {
		walk->roots[i] = NULL;
		walk->root_levels[i] = 0;
		walk->root_entries[i] = 0;
	}
	/*
	 * No RCU section: as KVM's own exclusive stage-2 walks
	 * (kvm_pgtable_walk_begin() enters one for shared walks only), with
	 * mmu_lock held for write no table can be unlinked, hence freed.
	 */
	return true;
}

/* No rmaps on arm64: those are x86's shadow MMU's. */
int kd_wp_walk_describe(struct kvm *kvm, struct kvm_memory_slot *slot,
			struct kd_pt_walk *pt, struct kd_rmap_walk *rm)
{
	return kd_s2_walk_describe(kvm, slot, pt) ? KD_WALK_TABLES :
						    KD_WALK_NONE;
}

bool kd_wp_all_supported(struct kvm *kvm, u64 *present, u64 *writable)
{
	*present = KVM_PTE_VALID;
	*writable = KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
	/* What kvm_s2_wp_all_enable() would refuse. */
	return kvm->arch.mmu.pgt &&
	       !cpus_have_final_cap(ARM64_HAS_NESTED_VIRT) &&
	       !is_protected_kvm_enabled();
}

int kd_s2_wp_all_enable(struct kvm *kvm)
{
	return kvm_s2_wp_all_enable(kvm);
}

u64 *kd_s2_pgd(struct kvm *kvm, u32 *entries, int *level)
{
	unsigned int n;
	u64 *pgd = kvm_s2_wp_all_pgd(kvm, &n, level);

	*entries = n;
	return pgd;
}

int kd_wp_s2_push(struct kvm *kvm, u64 *ptep, u64 old, int level, u64 *child)
{
	return kd_rs_wp_s2_push(kvm, ptep, old, level, child, PTRS_PER_PTE);
}
