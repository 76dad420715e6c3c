// SPDX-License-Identifier: GPL-2.0
/*
 * KVM_GET_DIRTY_LOG error codes and copy size, whichever path serves the VM
 * (kvm_dirty.ko or upstream C): both must give the same answers.
 *
 * Prints "# get_dirty_log calls: N errors: E" so that the caller can check
 * the module's counters moved by exactly that much.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest.h"

#define PAGE		4096ul
#define GPA_LOGGED	0x100000ul	/* slot 0: 100 pages, dirty logging */
#define GPA_PLAIN	0x200000ul	/* slot 1: 16 pages, no dirty logging */
#define LOGGED_PAGES	100		/* not a multiple of 64: a partial last word */

static int kvm_fd;
static int calls, errors;

static int create_vm(void)
{
	int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);

	if (vm < 0)
		ksft_exit_fail_msg("KVM_CREATE_VM: %s\n", strerror(errno));
	return vm;
}

static void add_slot(int vm, uint32_t slot, uint64_t gpa, uint64_t pages,
		     uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = pages * PAGE,
	};
	void *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	r.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r))
		ksft_exit_fail_msg("KVM_SET_USER_MEMORY_REGION: %s\n", strerror(errno));
}

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

static void expect(int got, int want, const char *what)
{
	if (got == want)
		ksft_test_result_pass("%s: %d\n", what, want);
	else
		ksft_test_result_fail("%s: got %d (%s), want %d (%s)\n", what,
				      got, strerror(-got), want, strerror(-want));
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
	struct kvm_enable_cap cap = { 0 };
	int vm, ring_vm, manual_vm, ring_size;

	ksft_print_header();
	ksft_set_plan(11);

	kvm_fd = open("/dev/kvm", O_RDWR);
	if (kvm_fd < 0)
		ksft_exit_skip("/dev/kvm: %s\n", strerror(errno));

	vm = create_vm();
	add_slot(vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
	add_slot(vm, 1, GPA_PLAIN, 16, 0);

	expect(get_log(vm, 0, bitmap), 0, "logged slot");
	check_copy(vm, 0, "clean slot: 16 bytes of zeroes, nothing past them");
	expect(get_log(vm, 1, bitmap), -ENOENT, "slot without dirty logging");
	expect(get_log(vm, 7, bitmap), -ENOENT, "slot never created");
	expect(get_log(vm, 0xffff, bitmap), -EINVAL, "slot id >= KVM_USER_MEM_SLOTS");
	/* x86 has two address spaces (SMM); a third is out of range. */
	expect(get_log(vm, 1u << 16, bitmap), -ENOENT, "address space 1, no slot");
	expect(get_log(vm, 2u << 16, bitmap), -EINVAL, "address space 2");
	expect(get_log(vm, 0, (void *)8), -EFAULT, "bitmap at a bad user address");

	/* Manual protect with initially-set: all ones, and they stay. */
	manual_vm = create_vm();
	cap.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2;
	cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
		      KVM_DIRTY_LOG_INITIALLY_SET;
	if (ioctl(manual_vm, KVM_ENABLE_CAP, &cap))
		ksft_exit_fail_msg("MANUAL_DIRTY_LOG_PROTECT2: %s\n", strerror(errno));
	add_slot(manual_vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
	check_copy(manual_vm, 0xff, "manual protect, initially set: 100 ones");
	check_copy(manual_vm, 0xff, "manual protect: GET does not clear");

	/* A ring-only VM has no bitmap to get. */
	ring_size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
	if (ring_size <= 0) {
		ksft_test_result_skip("dirty ring: not supported\n");
	} else {
		ring_vm = create_vm();
		cap.cap = KVM_CAP_DIRTY_LOG_RING;
		cap.args[0] = 65536;
		if (ioctl(ring_vm, KVM_ENABLE_CAP, &cap))
			ksft_exit_fail_msg("DIRTY_LOG_RING: %s\n", strerror(errno));
		add_slot(ring_vm, 0, GPA_LOGGED, LOGGED_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
		expect(get_log(ring_vm, 0, bitmap), -ENXIO, "dirty ring enabled");
		close(ring_vm);
	}
	close(manual_vm);
	close(vm);

	printf("# get_dirty_log calls: %d errors: %d\n", calls, errors);
	ksft_finished();
}
