// SPDX-License-Identifier: GPL-2.0
/*
 * The workload of tools/tcg-profile: the per-call cost of
 * KVM_CLEAR_DIRTY_LOG over never-mapped pages and of the manual-protect
 * KVM_GET_DIRTY_LOG (a copy of the bitmap), KVM's C path against
 * kvm_dirty.ko's Rust path, in phases that a TCG plugin on the host counts
 * the guest kernel's instructions of.  No vCPU runs: the only ioctls of a
 * phase are the ones it names, and a phase ends with sync(2), the plugin's
 * marker (it dumps and resets its counts at __x64_sys_sync).
 *
 *   ioctl_profile [-s CLEAR_SLOT_BYTES] [-g GET_SLOT_BYTES] [-n CALLS]
 *
 * Phases, each line "PHASE k NAME calls=N us_per_call=T" on stdout:
 *   0 setup, 1 clear-c, 2 clear-rust, 3 get-c, 4 get-rust.
 * Each VM has one vCPU (never run), a CLEAR slot and a GET slot, with
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and KVM_DIRTY_LOG_INITIALLY_SET, as
 * dirty_bench -m clear; bind_vms chooses the path of each.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kd_phase.h"

#define BIND_VMS "/sys/module/kvm_dirty/parameters/bind_vms"
#define PAGE 4096ul

static void die(const char *what)
{
	fprintf(stderr, "ioctl_profile: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void bind_vms(int on)
{
	int fd = open(BIND_VMS, O_WRONLY);

	if (fd < 0 || write(fd, on ? "1" : "0", 1) != 1)
		die(BIND_VMS);
	close(fd);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void add_slot(int vm, uint32_t slot, uint64_t gpa, uint64_t bytes)
{
	void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = gpa,
		.memory_size = bytes,
		.userspace_addr = (uintptr_t)mem,
	};

	if (mem == MAP_FAILED)
		die("mmap");
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r))
		die("KVM_SET_USER_MEMORY_REGION");
}

static int make_vm(int kvm, int rust, uint64_t clear_bytes, uint64_t get_bytes)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
			   KVM_DIRTY_LOG_INITIALLY_SET,
	};
	int vm;

	bind_vms(rust);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_ENABLE_CAP, &cap))
		die("KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)");
	add_slot(vm, 1, 1ul << 32, clear_bytes);
	add_slot(vm, 2, (1ul << 32) + clear_bytes, get_bytes);
	if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0)
		die("KVM_CREATE_VCPU");
	return vm;
}

static int phase_nr;

static void phase(const char *name, long calls, double t0)
{
	kd_phase_mark(phase_nr++, name, calls, now_us() - t0);
}

int main(int argc, char **argv)
{
	uint64_t clear_bytes = 1ul << 30, get_bytes = 64ul << 20;
	long calls = 4096;
	uint64_t *bitmap, ones = ~0ull;
	int kvm, vms[2], opt;

	while ((opt = getopt(argc, argv, "s:g:n:")) != -1) {
		switch (opt) {
		case 's':
			clear_bytes = strtoull(optarg, NULL, 0);
			break;
		case 'g':
			get_bytes = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			calls = strtol(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: ioctl_profile [-s bytes] [-g bytes] [-n calls]\n");
			return 2;
		}
	}
	if (calls <= 0 || (uint64_t)calls > clear_bytes / PAGE / 64) {
		fprintf(stderr, "ioctl_profile: -n: 1 to %lu 64-page chunks\n",
			clear_bytes / PAGE / 64);
		return 2;
	}
	bitmap = calloc(get_bytes / PAGE / 8, 1);
	kvm = open("/dev/kvm", O_RDWR);
	if (!bitmap || kvm < 0)
		die("/dev/kvm");
	vms[0] = make_vm(kvm, 0, clear_bytes, get_bytes);
	vms[1] = make_vm(kvm, 1, clear_bytes, get_bytes);
	bind_vms(1);
	phase("setup", 0, now_us());

	for (int p = 0; p < 2; p++) {
		double t0 = now_us();

		for (long c = 0; c < calls; c++) {
			struct kvm_clear_dirty_log l = {
				.slot = 1, .first_page = c * 64, .num_pages = 64,
				.dirty_bitmap = &ones,
			};

			if (ioctl(vms[p], KVM_CLEAR_DIRTY_LOG, &l))
				die("KVM_CLEAR_DIRTY_LOG");
		}
		phase(p ? "clear-rust" : "clear-c", calls, t0);
	}
	for (int p = 0; p < 2; p++) {
		struct kvm_dirty_log l = { .slot = 2, .dirty_bitmap = bitmap };
		double t0 = now_us();

		for (long c = 0; c < calls; c++)
			if (ioctl(vms[p], KVM_GET_DIRTY_LOG, &l))
				die("KVM_GET_DIRTY_LOG");
		phase(p ? "get-rust" : "get-c", calls, t0);
	}
	return 0;
}
