// SPDX-License-Identifier: GPL-2.0
/*
 * KVM_CLEAR_DIRTY_LOG range checks, error codes and effect, whichever path
 * serves the VM (kvm_dirty.ko or upstream C): both must give the same answers.
 *
 * Prints "# clear_dirty_log calls: N errors: E" so that the caller can check
 * the module's counters moved by exactly that much.
 */
#include "kd_util.h"

#define GPA		0x100000ul
#define PAGES		100	/* a partial last word: 64 + 36 */

static int calls, errors;

static int clear_log(int vm, uint32_t slot, uint64_t first, uint32_t num,
		     void *bitmap)
{
	struct kvm_clear_dirty_log log = {
		.slot = slot, .first_page = first, .num_pages = num,
		.dirty_bitmap = bitmap,
	};
	int r = ioctl(vm, KVM_CLEAR_DIRTY_LOG, &log);

	calls++;
	if (r) {
		errors++;
		return -errno;
	}
	return 0;
}

/* The number of dirty pages GET_DIRTY_LOG reports for slot 0. */
static int dirty_pages(int vm)
{
	uint64_t bm[2] = { 0 };
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bm };

	if (ioctl(vm, KVM_GET_DIRTY_LOG, &log))
		return -errno;
	return __builtin_popcountll(bm[0]) + __builtin_popcountll(bm[1]);
}

int main(void)
{
	uint64_t ones[4] = { ~0ull, ~0ull, ~0ull, ~0ull };
	int vm, ring_vm, nr_as;

	ksft_print_header();
	ksft_set_plan(20);
	kd_open_kvm();

	/* Manual protect, initially set: all 100 pages start dirty. */
	vm = kd_create_vm();
	kd_enable_cap(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
		      KVM_DIRTY_LOG_INITIALLY_SET);
	kd_add_slot(vm, 0, GPA, PAGES, KVM_MEM_LOG_DIRTY_PAGES);
	kd_add_slot(vm, 1, GPA + 0x100000, 16, 0);
	nr_as = kd_nr_address_spaces();

	kd_expect(clear_log(vm, 0, 1, 63, ones), -EINVAL, "first_page not a multiple of 64");
	kd_expect(clear_log(vm, 0, 0, 65, ones), -EINVAL, "range ends mid-word before the slot end");
	kd_expect(clear_log(vm, 0, 64, 37, ones), -EINVAL, "range past the slot end");
	kd_expect(clear_log(vm, 0, 128, 0, ones), -EINVAL, "first_page past the slot");
	kd_expect(clear_log(vm, 0, 1ull << 63, 64, ones), -EINVAL, "first_page 2^63");
	kd_expect(clear_log(vm, 1, 0, 16, ones), -ENOENT, "slot without dirty logging");
	kd_expect(clear_log(vm, 9, 0, 64, ones), -ENOENT, "slot never created");
	kd_expect(clear_log(vm, 0xffff, 0, 64, ones), -EINVAL, "slot id >= KVM_USER_MEM_SLOTS");
	kd_expect(clear_log(vm, (uint32_t)nr_as << 16, 0, 64, ones), -EINVAL,
		  "address space past the last");
	kd_expect(clear_log(vm, 0, 0, 64, (void *)8), -EFAULT, "bitmap at a bad user address");
	kd_expect(dirty_pages(vm), PAGES, "errors cleared nothing: 100 dirty");

	kd_expect(clear_log(vm, 0, 0, 0, ones), 0, "empty range");
	kd_expect(clear_log(vm, 0, 0, 64, ones), 0, "first word");
	kd_expect(dirty_pages(vm), PAGES - 64, "36 left dirty");
	kd_expect(clear_log(vm, 0, 0, 64, ones), 0, "first word again: nothing to clear");
	/*
	 * num_pages ends at the slot end: not a multiple of 64 is fine; bits
	 * 100..127 of the user bitmap lie past the slot and are ignored.
	 */
	kd_expect(clear_log(vm, 0, 64, 36, ones), 0, "last partial word, to the slot end");
	kd_expect(dirty_pages(vm), 0, "all clean");
	kd_expect(clear_log(vm, 0, 0, PAGES, ones), 0, "whole slot, nothing dirty");

	ring_vm = kd_create_ring_vm();
	if (ring_vm < 0) {
		ksft_test_result_skip("dirty ring: not supported\n");
	} else {
		kd_add_slot(ring_vm, 0, GPA, PAGES, KVM_MEM_LOG_DIRTY_PAGES);
		kd_expect(clear_log(ring_vm, 0, 0, 64, ones), -ENXIO, "dirty ring enabled");
		close(ring_vm);
	}
	kd_expect(dirty_pages(vm), 0, "still clean");
	close(vm);

	printf("# clear_dirty_log calls: %d errors: %d\n", calls, errors);
	ksft_finished();
}
