// SPDX-License-Identifier: GPL-2.0
/*
 * Write-protect-all through a guest page table mapped twice (x86).  On the
 * shadow MMU (kvm_amd npt=0) a shadow page stands for a guest page table
 * wherever the guest maps it, so a page table reachable from two guest
 * page-directory entries gets one shadow page linked under two parents:
 * the case kernel/0007-*.patch's ->wp_link_shared() exists for.  When the
 * second link is made after a write-protect-all, the shadow page still has
 * writable entries from before it (written through the first mapping);
 * if the link kept them writable, writes through the second mapping would
 * go unlogged.
 *
 * The guest's virtual ranges A and B (2M each) map the same guest page
 * table, so the same 512 pages of a dirty-logged slot.  Each round: the
 * guest writes some pages through A or B, GET_DIRTY_LOG (which does not
 * write-protect on this VM) must report exactly those pages, then
 * KVM_WRITE_PROTECT_ALL_MEM.  B is first used in round 2, after a WP-all,
 * with every page writable through A.
 *
 * Exits 0 when every round reported exactly what was written, 4 (skip)
 * when the VM has no KVM_CAP_DIRTY_WP_ALL (KVM's C path).  On the TDP MMU
 * the aliasing is the guest's alone; the test passes there too.
 */
#include <stdlib.h>
#include <string.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include <linux/bitmap.h>

#define SLOT		1
#define GVA_A		0xc0000000ul
#define GVA_B		(GVA_A + (2ul << 20))
#define NPAGES		512

/* Shared with the guest: which pages to write, through which range. */
static uint64_t g_base, g_first, g_stride, g_pass;

static void guest_code(void)
{
	uint64_t i;

	for (;;) {
		for (i = g_first; i < NPAGES; i += g_stride)
			WRITE_ONCE(*(uint64_t *)(g_base + i * PAGE_SIZE), g_pass);
		GUEST_SYNC(0);
	}
}

static struct kvm_vm *vm;
static struct kvm_vcpu *vcpu;
static unsigned long *bitmap;

static void round_trip(const char *what, uint64_t base, uint64_t first,
		       uint64_t stride)
{
	struct ucall uc;
	uint64_t i, got = 0, want = 0;

	g_base = base;
	g_first = first;
	g_stride = stride;
	g_pass++;
	sync_global_to_guest(vm, g_base);
	sync_global_to_guest(vm, g_first);
	sync_global_to_guest(vm, g_stride);
	sync_global_to_guest(vm, g_pass);
	vcpu_run(vcpu);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC,
		    "%s: unexpected exit %s", what,
		    exit_reason_str(vcpu->run->exit_reason));

	/* Harvest (no write-protect on this VM), then protect everything. */
	kvm_vm_get_dirty_log(vm, SLOT, bitmap);
	vm_ioctl(vm, KVM_WRITE_PROTECT_ALL_MEM, NULL);
	for (i = 0; i < NPAGES; i++) {
		bool expected = i >= first && (i - first) % stride == 0;

		TEST_ASSERT(test_bit(i, bitmap) == expected,
			    "%s: page %lu %sreported", what, i,
			    expected ? "not " : "wrongly ");
		got += test_bit(i, bitmap);
		want += expected;
	}
	TEST_ASSERT_EQ(got, want);
	printf("%s: %lu pages reported, as written\n", what, got);
}

int main(void)
{
	uint64_t slot_gpa, *pde;
	int level = PG_LEVEL_2M;

	vm = __vm_create(VM_SHAPE_DEFAULT, 1, NPAGES);
	TEST_REQUIRE(vm_check_cap(vm, KVM_CAP_DIRTY_WP_ALL) == 1);
	vm_enable_cap(vm, KVM_CAP_DIRTY_WP_ALL, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	vcpu = vm_vcpu_add(vm, 0, guest_code);

	slot_gpa = ((vm->max_gfn - 2 * NPAGES) * PAGE_SIZE) & ~((2ul << 20) - 1);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, slot_gpa, SLOT,
				    NPAGES, KVM_MEM_LOG_DIRTY_PAGES);
	virt_map(vm, GVA_A, slot_gpa, NPAGES);
	/*
	 * B's page-directory entry is A's: the same page table, so the same
	 * pages.  Written before the vCPU first runs, so KVM has shadowed
	 * nothing of it yet.
	 */
	pde = __vm_get_page_table_entry(vm, GVA_A, &level);
	TEST_ASSERT(level == PG_LEVEL_2M, "no page-directory entry for A");
	pde[1] = pde[0];
	bitmap = bitmap_zalloc(NPAGES);

	round_trip("every page through A", GVA_A, 0, 1);
	round_trip("through B after a WP-all", GVA_B, 3, 7);
	round_trip("through A", GVA_A, 5, 11);
	round_trip("every page through B", GVA_B, 0, 1);
	round_trip("through A again", GVA_A, 1, 3);

	printf("WP_ALL_ALIAS ok\n");
	free(bitmap);
	kvm_vm_free(vm);
	return 0;
}
