// SPDX-License-Identifier: GPL-2.0
/*
 * The masked write-protect of GET_DIRTY_LOG and CLEAR_DIRTY_LOG leaves
 * exactly the harvested pages non-writable, and a write to each faults and
 * is logged again (x86: the vCPU's pf_taken counts the faults).  Run on a VM
 * bound to kvm_dirty.ko (the module's own walk: of the TDP MMU's tables,
 * rust/algo/pt_walk.rs, or of the shadow MMU's rmaps, rust/algo/rmap_walk.rs) and on
 * KVM's C path: the same must hold.
 *
 * The slot starts 32 pages before a 2M boundary, so that its bitmap words
 * straddle leaf tables; the guest maps it with 4K pages.  Page sets of each
 * round: every page, 1 %, 50 %, runs across every 2M boundary with the
 * slot's first and last page, and nothing.
 *
 * dirty-log (default): the guest writes the round's set S; GET reports
 * exactly S; the guest writes S again: |S| faults, reported again exactly.
 * -c (manual protect, KVM_CLEAR_DIRTY_LOG): every page is writable and
 * dirty; CLEAR of the set C; the guest writes every page: exactly |C|
 * faults (the other pages stayed writable), and GET reports every page.
 *
 *   -b size   slot size, a multiple of 2M (default 16M)
 *   -c        manual protect and CLEAR_DIRTY_LOG
 *
 * Prints WP_MASKED mode=M pages=N rounds=R faults=F expect_cleared=E,
 * where E is how many 4K SPTEs the write-protects must have found writable
 * (kvm_dirty's walk_cleared: the TDP MMU walk, or the rmap walk on the shadow
 * MMU).
 */
#include <stdlib.h>
#include <string.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kd_run.h"
#include "kd_vcpu_stats.h"

#include <linux/bitmap.h>

#define SLOT		1
#define GVA		0xc0000000ul
#define HUGE_PAGES	512ul
#define SKEW		32ul	/* slot start: this many pages before 2M */

/* Shared with the guest: a byte per page, 1 = write it. */
static uint8_t *g_sel;
static uint64_t g_npages, g_pass;

static void guest_code(void)
{
	uint64_t i;

	for (;;) {
		for (i = 0; i < g_npages; i++)
			if (READ_ONCE(g_sel[i]))
				WRITE_ONCE(*(uint64_t *)(GVA + i * PAGE_SIZE), g_pass);
		GUEST_SYNC(0);
	}
}

static struct kvm_vm *vm;
static struct kvm_vcpu *vcpu;
static uint64_t npages, base_gfn;
static uint8_t *sel;			/* host view of g_sel */
static unsigned long *bitmap, *want;
static struct kd_vcpu_stats stats;

/* The guest writes the pages set in @set; returns the faults it took. */
static uint64_t write_pages(const unsigned long *set)
{
	uint64_t before = kd_vcpu_stat(&stats, "pf_taken"), i;

	for (i = 0; i < npages; i++)
		sel[i] = test_bit(i, set);
	g_pass++;
	sync_global_to_guest(vm, g_pass);
	kd_run_to_sync(vcpu);
	return kd_vcpu_stat(&stats, "pf_taken") - before;
}

/* GET_DIRTY_LOG must report exactly @expect; returns how many pages. */
static uint64_t expect_dirty(const char *what, const unsigned long *expect)
{
	uint64_t i, n = 0;

	kvm_vm_get_dirty_log(vm, SLOT, bitmap);
	for (i = 0; i < npages; i++) {
		TEST_ASSERT(test_bit(i, bitmap) == test_bit(i, expect),
			    "%s: page %lu (gfn %#lx) %s", what, i, base_gfn + i,
			    test_bit(i, expect) ? "written but not reported" :
						  "reported but not written");
		n += test_bit(i, bitmap);
	}
	return n;
}

/* The page set of round @r. */
static uint64_t make_set(unsigned long *set, int r)
{
	uint64_t i, n = 0;

	bitmap_zero(set, npages);
	for (i = 0; i < npages; i++) {
		uint64_t off = (base_gfn + i) % HUGE_PAGES;
		bool on;

		switch (r % 5) {
		case 0:
			on = true;
			break;
		case 1:
			on = random() % 100 == 0;
			break;
		case 2:
			on = random() % 2;
			break;
		case 3:
			on = i == 0 || i == npages - 1 || off < 20 || off >= HUGE_PAGES - 20;
			break;
		default:
			on = false;
		}
		if (on) {
			__set_bit(i, set);
			n++;
		}
	}
	return n;
}

int main(int argc, char *argv[])
{
	uint64_t size = 16ul << 20, faults = 0, expect_cleared = 0, n, f;
	uint64_t slot_gpa;
	unsigned long *all;
	bool clear = false;
	int opt, r, rounds = 10;

	while ((opt = getopt(argc, argv, "b:c")) != -1) {
		switch (opt) {
		case 'b':
			size = parse_size(optarg);
			break;
		case 'c':
			clear = true;
			break;
		default:
			printf("usage: %s [-b size] [-c]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_ASSERT(size && size % (HUGE_PAGES * PAGE_SIZE) == 0,
		    "-b: a multiple of 2M");
	srandom(1);

	npages = size / PAGE_SIZE;
	vm = __vm_create(VM_SHAPE_DEFAULT, 1, npages + HUGE_PAGES);
	if (clear) {
		TEST_REQUIRE(kvm_has_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2));
		/* Not initially-set: logging on write-protects every page. */
		vm_enable_cap(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
	}
	vcpu = vm_vcpu_add(vm, 0, guest_code);
	kd_vcpu_stats_open(&stats, vcpu);

	slot_gpa = ((vm->max_gfn - npages - 2 * HUGE_PAGES) * PAGE_SIZE &
		    ~(HUGE_PAGES * PAGE_SIZE - 1)) - SKEW * PAGE_SIZE;
	base_gfn = slot_gpa / PAGE_SIZE;
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, slot_gpa, SLOT,
				    npages, KVM_MEM_LOG_DIRTY_PAGES);
	virt_map(vm, GVA, slot_gpa, npages);

	g_sel = (uint8_t *)vm_vaddr_alloc(vm, npages, KVM_UTIL_MIN_VADDR);
	sel = addr_gva2hva(vm, (vm_vaddr_t)g_sel);
	g_npages = npages;
	sync_global_to_guest(vm, g_sel);
	sync_global_to_guest(vm, g_npages);
	bitmap = bitmap_zalloc(npages);
	want = bitmap_zalloc(npages);
	all = bitmap_zalloc(npages);
	bitmap_fill(all, npages);

	/*
	 * A first pass maps the guest's code, stack, ucall and g_sel pages
	 * (not the slot's), then every page of the slot is written: each
	 * faults once (logging is on) and is mapped writable, dirty.
	 */
	write_pages(want);
	write_pages(all);
	n = expect_dirty("first writes", all);
	if (!clear)
		expect_cleared += n;	/* this GET protected them all */

	for (r = 0; r < rounds; r++) {
		n = make_set(want, r);
		if (!clear) {
			/* Every page is write-protected: |S| faults. */
			f = write_pages(want);
			TEST_ASSERT(f == n, "round %d: %lu writes took %lu faults",
				    r, n, f);
			expect_cleared += expect_dirty("writes", want);
			/* GET protected exactly S: the same again. */
			f = write_pages(want);
			TEST_ASSERT(f == n, "round %d: %lu writes after GET took %lu faults",
				    r, n, f);
			expect_cleared += expect_dirty("writes after GET", want);
			faults += 2 * n;
			continue;
		}
		/* Every page writable and dirty: CLEAR protects exactly C. */
		kvm_vm_clear_dirty_log(vm, SLOT, want, 0, npages);
		expect_cleared += n;
		f = write_pages(all);
		TEST_ASSERT(f == n, "round %d: %lu pages cleared, writing every page took %lu faults",
			    r, n, f);
		faults += f;
		expect_dirty("every page written after CLEAR", all);
	}

	printf("WP_MASKED mode=%s pages=%lu base_gfn=%#lx rounds=%d faults=%lu expect_cleared=%lu\n",
	       clear ? "clear" : "dirty-log", npages, base_gfn, rounds, faults,
	       expect_cleared);
	kd_vcpu_stats_close(&stats);
	kvm_vm_free(vm);
	return 0;
}
