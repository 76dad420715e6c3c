// SPDX-License-Identifier: GPL-2.0
/*
 * Write-protect-all and huge pages, and dirty logging turned off and on, on
 * a VM bound to kvm_dirty.ko (x86, both MMUs).  What dirty_log_test and
 * dirty_stress do not look at, checked with KVM's own statistics:
 *
 *  1. The guest writes its whole slot (logging off): KVM maps it with 2M
 *     pages (pages_2m, THP or hugetlb backing).
 *  2. Logging turned on: KVM calls the module's write-protect-all instead
 *     of splitting and write-protecting the slot, so every 2M mapping
 *     stays (pages_2m unchanged).
 *  3. The guest reads every page: no page fault on the slot (the vCPU's
 *     pf_taken; see the comment there for the guest page tables), no
 *     split, nothing logged.
 *  4. The guest writes one page in some 2M regions: GET_DIRTY_LOG (which
 *     does not write-protect on this VM) reports exactly those pages, and
 *     each region written is split, the others stay huge.
 *  5. KVM_WRITE_PROTECT_ALL_MEM, the same pages written again: reported
 *     again, exactly.
 *  6. Logging off: the guest writes other pages, which become writable
 *     unlogged.  Logging on again (a new, empty bitmap; the module's
 *     write-protect-all), the same pages written: reported, exactly.  A
 *     log-enable that left them writable would lose them.
 *
 *   -b size   slot size, a multiple of 2M (default 64M)
 *   -H        hugetlb backing (default THP)
 *
 * Prints one line
 *   WP_ALL_HUGE regions=N huge=N huge_after_log_on=N read_faults=N
 *     split=N log_on_us=N
 * and exits 0 when every check held, 4 (skip) when the VM has no
 * KVM_CAP_DIRTY_WP_ALL (KVM's C path).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kd_run.h"
#include "kd_vcpu_stats.h"

#include <linux/bitmap.h>

#define SLOT		1
#define GVA		0xc0000000ul
#define HUGE		(2ul << 20)

enum op { OP_WRITE, OP_READ };

/* Shared with the guest: which pages to touch, and how. */
static uint64_t g_op, g_first, g_stride, g_npages, g_pass;

static void guest_code(void)
{
	uint64_t i;

	for (;;) {
		for (i = g_first; i < g_npages; i += g_stride) {
			uint64_t *p = (uint64_t *)(GVA + i * PAGE_SIZE);

			if (g_op == OP_WRITE)
				WRITE_ONCE(*p, g_pass);
			else
				(void)READ_ONCE(*p);
		}
		GUEST_SYNC(0);
	}
}

static struct kvm_vm *vm;
static struct kvm_vcpu *vcpu;
static uint64_t npages, slot_gpa;
static unsigned long *bitmap;
static struct kd_vcpu_stats stats;

static void run_guest(enum op op, uint64_t first, uint64_t stride)
{
	g_op = op;
	g_first = first;
	g_stride = stride;
	g_pass++;
	sync_global_to_guest(vm, g_op);
	sync_global_to_guest(vm, g_first);
	sync_global_to_guest(vm, g_stride);
	sync_global_to_guest(vm, g_pass);
	kd_run_to_sync(vcpu);
}

static uint64_t pages_2m(void)
{
	return vm_get_stat(vm, "pages_2m");
}

static void set_logging(bool on)
{
	vm_mem_region_set_flags(vm, SLOT, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

static void wp_all(void)
{
	vm_ioctl(vm, KVM_WRITE_PROTECT_ALL_MEM, NULL);
}

/* GET_DIRTY_LOG: the set reported must be exactly first, first + stride... */
static void expect_dirty(const char *what, uint64_t first, uint64_t stride)
{
	uint64_t i, want = 0, got = 0;

	kvm_vm_get_dirty_log(vm, SLOT, bitmap);
	for (i = 0; i < npages; i++) {
		bool expected = i >= first && (i - first) % stride == 0;

		got += test_bit(i, bitmap);
		want += expected;
		TEST_ASSERT(test_bit(i, bitmap) == expected,
			    "%s: page %lu %s", what, i,
			    expected ? "written but not reported" :
				       "reported but not written");
	}
	pr_info("%s: %lu pages reported, as written\n", what, got);
	TEST_ASSERT_EQ(got, want);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char *argv[])
{
	enum vm_mem_backing_src_type src = VM_MEM_SRC_ANONYMOUS_THP;
	uint64_t size = 64ul << 20, regions, huge, huge_log_on, faults;
	uint64_t base, t0, log_on_ns, split, pt_pages;
	int opt;

	while ((opt = getopt(argc, argv, "b:H")) != -1) {
		switch (opt) {
		case 'b':
			size = parse_size(optarg);
			break;
		case 'H':
			src = VM_MEM_SRC_ANONYMOUS_HUGETLB;
			break;
		default:
			printf("usage: %s [-b size] [-H]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_ASSERT(size && size % HUGE == 0, "-b: a multiple of 2M");

	vm = __vm_create(VM_SHAPE_DEFAULT, 1, size / getpagesize());
	TEST_REQUIRE(vm_check_cap(vm, KVM_CAP_DIRTY_WP_ALL) == 1);
	vm_enable_cap(vm, KVM_CAP_DIRTY_WP_ALL, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	vcpu = vm_vcpu_add(vm, 0, guest_code);
	kd_vcpu_stats_open(&stats, vcpu);

	npages = size / PAGE_SIZE;
	regions = size / HUGE;
	pt_pages = (size + (1ul << 30) - 1) >> 30;
	slot_gpa = ((vm->max_gfn - npages) * PAGE_SIZE) & ~(HUGE - 1);
	vm_userspace_mem_region_add(vm, src, slot_gpa, SLOT, npages, 0);
	/*
	 * 2M guest pages: the guest's own page tables for the slot are one
	 * page per 1G (see the read check below).
	 */
	virt_map_level(vm, GVA, slot_gpa, size, PG_LEVEL_2M);
	bitmap = bitmap_zalloc(npages);
	g_npages = npages;
	sync_global_to_guest(vm, g_npages);

	/*
	 * 1. Logging off: the writes map the slot with 2M pages.  A first run
	 * that touches nothing of the slot maps the guest's code, stack and
	 * ucall pages, whose huge mappings (if any) are not the slot's.
	 */
	run_guest(OP_READ, npages, 1);
	base = pages_2m();
	run_guest(OP_WRITE, 0, 1);
	huge = pages_2m() - base;
	TEST_ASSERT(huge == regions,
		    "%lu of %lu 2M regions mapped huge (THP short? try -H)",
		    huge, regions);

	/* 2. Logging on: write-protect-all, no split. */
	t0 = now_ns();
	set_logging(true);
	log_on_ns = now_ns() - t0;
	huge_log_on = pages_2m() - base;
	TEST_ASSERT(huge_log_on == huge,
		    "logging on split huge pages: %lu of %lu left",
		    huge_log_on, huge);

	/*
	 * 3. Reads: no fault on the slot, no split, nothing logged.  The
	 * guest's own writes (stack, ucall) fault once after the WP-all: a
	 * run that touches nothing of the slot takes those first.  So do the
	 * guest page-table pages that map the slot, once each: QEMU 7.2's
	 * nested page walker translates every guest page-table access as a
	 * store (target/i386/tcg/sysemu/excp_helper.c, ptw_translate), and
	 * WP-all protects them like all guest memory.  Hardware would write
	 * them only to set Accessed/Dirty bits, which the first pass set.
	 */
	run_guest(OP_READ, npages, 1);
	faults = kd_vcpu_stat(&stats, "pf_taken");
	run_guest(OP_READ, 0, 1);
	faults = kd_vcpu_stat(&stats, "pf_taken") - faults;
	TEST_ASSERT(faults <= pt_pages,
		    "reading %lu pages took %lu faults, more than the %lu guest page-table pages that map them",
		    npages, faults, pt_pages);
	TEST_ASSERT_EQ(pages_2m() - base, huge);
	expect_dirty("after reads", npages, 1);

	/*
	 * 4. Page 5 of every other region: exactly those reported (GET does
	 * not write-protect here), exactly those regions split.
	 */
	run_guest(OP_WRITE, 5, 2 * HUGE / PAGE_SIZE);
	expect_dirty("first writes", 5, 2 * HUGE / PAGE_SIZE);
	split = huge - (pages_2m() - base);
	TEST_ASSERT(split == (regions + 1) / 2, "%lu regions split, %lu written",
		    split, (regions + 1) / 2);

	/* 5. Harvest, then WP-all: the same writes are logged again. */
	wp_all();
	run_guest(OP_WRITE, 5, 2 * HUGE / PAGE_SIZE);
	expect_dirty("writes after WP-all", 5, 2 * HUGE / PAGE_SIZE);

	/* 6. Writes while logging is off, then again after it is back on. */
	wp_all();
	set_logging(false);
	run_guest(OP_WRITE, 9, HUGE / PAGE_SIZE);
	set_logging(true);
	expect_dirty("logging back on", npages, 1);
	run_guest(OP_WRITE, 9, HUGE / PAGE_SIZE);
	expect_dirty("writes after logging off/on", 9, HUGE / PAGE_SIZE);

	printf("WP_ALL_HUGE regions=%lu huge=%lu huge_after_log_on=%lu read_faults=%lu split=%lu log_on_us=%lu\n",
	       regions, huge, huge_log_on, faults, split, log_on_ns / 1000);
	kd_vcpu_stats_close(&stats);
	kvm_vm_free(vm);
	return 0;
}
