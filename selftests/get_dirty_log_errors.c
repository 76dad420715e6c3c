// SPDX-License-Identifier: GPL-2.0
/*
 * KVM_GET_DIRTY_LOG error codes and copy size, whichever path serves the VM
 * (kvm_dirty.ko or upstream C): both must give the same answers.
 *
 * Prints "# get_dirty_log calls: N errors: E" so that the caller can check
 * the module's counters moved by exactly that much.
 */
#include "kd_util.h"

#define GPA_LOGGED	0x100000ul	/* slot 0: 100 pages, dirty logging */
#define GPA_PLAIN	0x200000ul	/* slot 1: 16 pages, no dirty logging */
#define LOGGED_PAGES	100		/* not a multiple of 64: a partial last word */

static int calls, errors;

/* Returns 0 or -errno. */
static int get_log(int vm, uint32_t slot, void *bitmap)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };
	int r = ioctl(vm, KVM_GET_DIRTY_LOG, &log);

	calls++;
	if (r) {
		errors++;
		return -errno;
	}
	return 0;
}

/* 100 pages: 16 bytes of bitmap.  Guard bytes after it must stay. */
static void check_copy(int vm, uint8_t fill_want, const char *what)
{
	uint8_t buf[64];
	int i, ok = 1;

	memset(buf, 0xa5, sizeof(buf));
	if (get_log(vm, 0, buf)) {
		ksft_test_result_fail("%s: GET_DIRTY_LOG failed\n", what);
		return;
	}
	for (i = 0; i < 16; i++) {
		/* Bits 100..127 (bytes 12.5..15) are beyond the slot: zero. */
		uint8_t want = i < 12 ? fill_want : (i == 12 ? fill_want & 0x0f : 0);

		ok &= buf[i] == want;
	}
	for (i = 16; i < (int)sizeof(buf); i++)
		ok &= buf[i] == 0xa5;
	ksft_test_result(ok, "%s\n", what);
}

int main(void)
{
	uint8_t bitmap[4096];
	int vm, ring_vm, manual_vm, nr_as;

	ksft_print_header();
	ksft_set_plan(12);

	kd_open_kvm();
	vm = kd_create_vm();
	kd_add_slot(vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
	kd_add_slot(vm, 1, GPA_PLAIN, 16, 0);

	kd_expect(get_log(vm, 0, bitmap), 0, "logged slot");
	check_copy(vm, 0, "clean slot: 16 bytes of zeroes, nothing past them");
	kd_expect(get_log(vm, 1, bitmap), -ENOENT, "slot without dirty logging");
	kd_expect(get_log(vm, 7, bitmap), -ENOENT, "slot never created");
	kd_expect(get_log(vm, 0xffff, bitmap), -EINVAL, "slot id >= KVM_USER_MEM_SLOTS");
	/* Address spaces: 2 with SMM support, else 1; the next is invalid. */
	nr_as = kd_nr_address_spaces();
	if (nr_as > 1)
		kd_expect(get_log(vm, 1u << 16, bitmap), -ENOENT, "address space 1, no slot");
	else
		ksft_test_result_skip("address space 1: only one address space\n");
	kd_expect(get_log(vm, (uint32_t)nr_as << 16, bitmap), -EINVAL,
	       "address space past the last");
	kd_expect(get_log(vm, 0, (void *)8), -EFAULT, "bitmap at a bad user address");

	/* Manual protect with initially-set: all ones, and they stay. */
	manual_vm = kd_create_vm();
	kd_enable_cap(manual_vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
		      KVM_DIRTY_LOG_INITIALLY_SET);
	kd_add_slot(manual_vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
	check_copy(manual_vm, 0xff, "manual protect, initially set: 100 ones");
	check_copy(manual_vm, 0xff, "manual protect: GET does not clear");

	/* A ring-only VM has no bitmap to get. */
	ring_vm = kd_create_ring_vm();
	if (ring_vm < 0) {
		ksft_test_result_skip("dirty ring: not supported\n");
	} else {
		kd_add_slot(ring_vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
		kd_expect(get_log(ring_vm, 0, bitmap), -ENXIO, "dirty ring enabled");
		close(ring_vm);
	}

	/*
	 * arm64 writes guest memory without a running vCPU (vgic/ITS tables):
	 * a ring VM may keep a bitmap for those, and GET then serves it.
	 */
	ring_vm = kd_create_ring_vm();
	if (ring_vm < 0 || ioctl(kd_kvm_fd, KVM_CHECK_EXTENSION,
				 KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP) <= 0) {
		ksft_test_result_skip("dirty ring with bitmap: not supported\n");
	} else {
		kd_enable_cap(ring_vm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 0);
		kd_add_slot(ring_vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
		check_copy(ring_vm, 0, "dirty ring with bitmap: GET serves the bitmap");
	}
	if (ring_vm >= 0)
		close(ring_vm);
	close(manual_vm);
	close(vm);

	printf("# get_dirty_log calls: %d errors: %d\n", calls, errors);
	ksft_finished();
}
