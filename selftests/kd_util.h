/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the plain (no libkvm) selftests: raw ioctls on
 * /dev/kvm, TAP output through kselftest.h.
 */
#ifndef KD_UTIL_H
#define KD_UTIL_H

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

#define KD_PAGE 4096ul

static int kd_kvm_fd;

static inline void kd_open_kvm(void)
{
	kd_kvm_fd = open("/dev/kvm", O_RDWR);
	if (kd_kvm_fd < 0)
		ksft_exit_skip("/dev/kvm: %s\n", strerror(errno));
}

static inline int kd_create_vm(void)
{
	int vm = ioctl(kd_kvm_fd, KVM_CREATE_VM, 0);

	if (vm < 0)
		ksft_exit_fail_msg("KVM_CREATE_VM: %s\n", strerror(errno));
	return vm;
}

static inline void kd_enable_cap(int vm, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };

	if (ioctl(vm, KVM_ENABLE_CAP, &c))
		ksft_exit_fail_msg("KVM_ENABLE_CAP %u: %s\n", cap, strerror(errno));
}

static inline void kd_add_slot(int vm, uint32_t slot, uint64_t gpa,
			       uint64_t pages, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = pages * KD_PAGE,
	};
	void *mem = mmap(NULL, pages * KD_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	r.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r))
		ksft_exit_fail_msg("KVM_SET_USER_MEMORY_REGION: %s\n", strerror(errno));
}

/* Address spaces: 2 with SMM support, else 1. */
static inline int kd_nr_address_spaces(void)
{
	int n = ioctl(kd_kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MULTI_ADDRESS_SPACE);

	return n < 1 ? 1 : n;
}

/*
 * A VM with a dirty ring, or -1 if the kernel has none.  Weakly ordered
 * architectures (arm64) offer only the acquire/release flavour.
 */
static inline int kd_create_ring_vm(void)
{
	uint32_t cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	int vm;

	if (ioctl(kd_kvm_fd, KVM_CHECK_EXTENSION, cap) <= 0)
		cap = KVM_CAP_DIRTY_LOG_RING;
	if (ioctl(kd_kvm_fd, KVM_CHECK_EXTENSION, cap) <= 0)
		return -1;
	vm = kd_create_vm();
	kd_enable_cap(vm, cap, 65536);
	return vm;
}

static inline void kd_expect(int got, int want, const char *what)
{
	if (got == want)
		ksft_test_result_pass("%s: %d\n", what, want);
	else
		ksft_test_result_fail("%s: got %d (%s), want %d (%s)\n", what,
				      got, strerror(-got), want, strerror(-want));
}

#endif /* KD_UTIL_H */
