// SPDX-License-Identifier: GPL-2.0
/*
 * A dirty-ring VMM that lies.  User space owns the ring's entries and can
 * write anything into them; the kernel must reset only entries it pushed,
 * exactly once each, protect only what validates, never crash or loop, and
 * dirty tracking must work again once user space behaves.
 *
 * 1. honest round: the guest dirties every page; each is harvested once and
 *    KVM_RESET_DIRTY_RINGS returns exactly the number harvested;
 * 2. hostile round: the pushed entries and every other entry get random
 *    flags, slots and offsets; a storm of resets (with more scribbling in
 *    between) never resets more entries than were pushed;
 * 3. recovery: restore the pushed entries, mark them harvested: the resets
 *    add up to exactly the number pushed; re-enable logging on the slot and
 *    every page the guest writes shows up in the ring again.
 *
 * Uses the upstream KVM selftest library (libkvm) for the vCPU and guest.
 */
#include <stdlib.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "kselftest.h"

#define SLOT		1
#define GVA		0xc0000000ul	/* where the guest sees the slot */
#define PAGES		256
#define RING_BYTES	(4096 * sizeof(struct kvm_dirty_gfn))
#define RING_ENTRIES	(RING_BYTES / sizeof(struct kvm_dirty_gfn))

static void guest_code(void)
{
	uint64_t round = 0;

	for (;;) {
		for (uint64_t i = 0; i < PAGES; i++)
			WRITE_ONCE(*(uint64_t *)(GVA + i * 4096), round);
		round++;
		GUEST_SYNC(round);
	}
}

static struct kvm_dirty_gfn *ring;
static uint32_t fetch;	/* next entry to harvest, as a VMM tracks it */

static void run_to_sync(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC,
		    "guest exit %d (%s), not a sync", vcpu->run->exit_reason,
		    exit_reason_str(vcpu->run->exit_reason));
}

/* Collects DIRTY entries from `fetch` on; counts them and their pages. */
static uint32_t harvest(uint8_t *seen, bool mark_reset)
{
	uint32_t n = 0;

	for (;;) {
		struct kvm_dirty_gfn *e = &ring[fetch % RING_ENTRIES];

		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			return n;
		TEST_ASSERT(e->slot == SLOT && e->offset < PAGES,
			    "pushed entry slot %u offset %llu", e->slot, e->offset);
		if (seen)
			seen[e->offset]++;
		if (mark_reset)
			__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		fetch++;
		n++;
	}
}

static int reset(struct kvm_vm *vm)
{
	int r = __vm_ioctl(vm, KVM_RESET_DIRTY_RINGS, NULL);

	TEST_ASSERT(r >= 0, "KVM_RESET_DIRTY_RINGS: %d errno %d", r, errno);
	return r;
}

static void scribble(struct kvm_dirty_gfn *e)
{
	e->flags = random();
	e->slot = random() % 4 == 0 ? SLOT : random();
	e->offset = random() % 4 == 0 ? random() % (PAGES + 64) :
		    ((uint64_t)random() << 32 | random());
}

static bool all_pages_once(const uint8_t *seen)
{
	for (int i = 0; i < PAGES; i++)
		if (seen[i] != 1)
			return false;
	return true;
}

/*
 * The guest dirties every page once; a VMM that plays by the rules sees
 * each page exactly once and resets exactly what it harvested.
 */
static void honest_round(struct kvm_vm *vm, struct kvm_vcpu *vcpu,
			 const char *what)
{
	uint8_t seen[PAGES] = { 0 };
	uint32_t n;
	int r;

	run_to_sync(vcpu);
	n = harvest(seen, true);
	r = reset(vm);
	ksft_test_result(all_pages_once(seen) && r == (int)n,
			 "%s: %u entries, every page once, reset returned %d\n",
			 what, n, r);
}

int main(void)
{
	struct kvm_dirty_gfn saved[PAGES * 2];
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint32_t pushed, total, n, i, start;
	uint64_t gpa;
	int r, max;

	ksft_print_header();
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) ||
		     kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL));
	ksft_set_plan(6);
	srandom(1234);

	vm = __vm_create(VM_SHAPE_DEFAULT, 1, PAGES);
	vm_enable_dirty_ring(vm, RING_BYTES);
	vcpu = vm_vcpu_add(vm, 0, guest_code);
	TEST_ASSERT(vm->page_size == 4096, "guest pages of %u bytes", vm->page_size);
	/* At the top of guest physical memory, like dirty_log_test. */
	gpa = (vm->max_gfn - PAGES) * vm->page_size;
	gpa &= ~(uint64_t)(getpagesize() - 1);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, SLOT, PAGES,
				    KVM_MEM_LOG_DIRTY_PAGES);
	virt_map(vm, GVA, gpa, PAGES);
	ring = vcpu_map_dirty_ring(vcpu);

	honest_round(vm, vcpu, "honest");

	/* 2. hostile: the guest dirties every page again; then lie. */
	run_to_sync(vcpu);
	start = fetch;
	pushed = harvest(NULL, false);
	TEST_ASSERT(pushed <= PAGES * 2, "pushed %u", pushed);
	for (i = 0; i < pushed; i++)
		saved[i] = ring[(start + i) % RING_ENTRIES];
	for (i = 0; i < RING_ENTRIES; i++)
		scribble(&ring[i]);
	total = 0;
	max = 0;
	for (i = 0; i < 2000; i++) {
		r = reset(vm);
		total += r;
		max = r > max ? r : max;
		scribble(&ring[random() % RING_ENTRIES]);
		if (i % 100 == 0)
			for (n = 0; n < RING_ENTRIES; n++)
				scribble(&ring[n]);
	}
	ksft_test_result(total <= pushed,
			 "hostile: 2000 resets over garbage reset %u of %u pushed entries\n",
			 total, pushed);

	/* 3. recovery: hand back the rest properly. */
	for (i = 0; i < pushed; i++) {
		ring[(start + i) % RING_ENTRIES] = saved[i];
		ring[(start + i) % RING_ENTRIES].flags = KVM_DIRTY_GFN_F_RESET;
	}
	r = reset(vm);
	ksft_test_result(total + r == pushed,
			 "recovery: resets add up to what was pushed (%u + %d == %u)\n",
			 total, r, pushed);
	ksft_test_result(reset(vm) == 0, "nothing left to reset\n");

	/*
	 * Entries reset under garbage may have left pages writable (the lie
	 * named other pages): toggling logging write-protects the whole slot.
	 */
	for (i = 0; i < RING_ENTRIES; i++)
		ring[i].flags = 0;
	vm_mem_region_set_flags(vm, SLOT, 0);
	vm_mem_region_set_flags(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	honest_round(vm, vcpu, "after recovery");
	honest_round(vm, vcpu, "and again");

	kvm_vm_free(vm);
	ksft_finished();
}
