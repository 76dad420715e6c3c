// SPDX-License-Identifier: GPL-2.0
/*
 * A migration-like stress of the dirty-tracking paths, checked byte for
 * byte: vCPUs write their share of a dirty-logged slot without pause while
 * the host harvests and copies what it reports, as a VMM migrating the
 * guest would; an unlogged memslot is deleted and re-created after every
 * round.  When the time is up the vCPUs stop, the host harvests and copies
 * once more, and its copy must equal the slot: a page whose write was never
 * reported shows up as a difference.
 *
 *   -M mode   bitmap: KVM_GET_DIRTY_LOG (harvest and write-protect), copy
 *             clear:  manual protect: GET (a snapshot), CLEAR what it
 *                     returned (write-protect), copy
 *             ring:   collect each vCPU's dirty ring, KVM_RESET_DIRTY_RINGS,
 *                     copy (soft-full exits: the vCPU waits for the reset)
 *             shared: the dirty bitmap shared with user space
 *                     (KVM_CAP_DIRTY_SHARED_BITMAP, implies -A): the slot's
 *                     bitmap mapped from KVM_GET_DIRTY_BITMAP_FD, each word
 *                     taken with an atomic exchange, then
 *                     KVM_WRITE_PROTECT_ALL_MEM, then copy; no
 *                     KVM_GET_DIRTY_LOG.  The churned slot's bitmap is
 *                     mapped too when it is logged; after each memslot
 *                     change that retires a bitmap (the churned slot
 *                     deleted, -L's logging off) its last bits are taken
 *                     with read(2) and a new descriptor is got for the new
 *                     bitmap (Documentation/api.rst, 3.5 "The
 *                     protocol")
 *   -t secs   how long the vCPUs write (default 30)
 *   -v n      vCPUs (default 2)
 *   -b size   slot size (default 16M)
 *   -T        back the slot with THP
 *   -w secs   watchdog: with no progress (no harvest round, no guest write)
 *             for that long, print where every thread stands (a vCPU not
 *             done: its last exit, its thread's state and kernel stack),
 *             dump every task's and CPU's stack to the console (sysrq w,
 *             l) and fail (default 60); a vCPU not done is stopped
 *             (a signal) and its registers printed, or it is said to be
 *             stuck in the kernel if it does not leave KVM_RUN
 *   -H        vCPU 0 spins in its guest and never sees the stop: the
 *             watchdog must fire and stop it (its own test, watchdog.sh)
 *   -D        no sysrq dump from the watchdog (for that test: its stack
 *             traces on the console would count as kernel reports)
 *   -A        write-protect-all (KVM_CAP_DIRTY_WP_ALL): every mode harvests
 *             without write-protect (GET, CLEAR or the ring reset), then
 *             KVM_WRITE_PROTECT_ALL_MEM, then copies
 *   -N        with -A, skip the KVM_WRITE_PROTECT_ALL_MEM: nothing protects
 *             the pages, writes after the first harvest go unlogged, and the
 *             check must say so (a test of -A); the last round makes the
 *             loss certain, as with -W, the window being after its copy
 *   -B        ring mode with the bitmap beside the rings
 *             (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, arm64): each round also
 *             reads and clears the bitmap (GET_DIRTY_LOG), where KVM puts
 *             what no running vCPU dirtied: the configuration QEMU uses
 *             on arm64 (without -B, a ring-only VM: no bitmap at all)
 *   -L        every 8th round, dirty logging off and on again on the slot (a
 *             flags-only change, which a write-protect-all VM serves with
 *             one WP-all), then a copy of everything: a VMM restarting a
 *             migration
 *   -W        clear mode the wrong way round, copy before CLEAR: writes
 *             between the copy and the CLEAR are lost, and the check must
 *             say so (a test of the test).  The last round makes the loss
 *             certain: the vCPUs rewrite their pages and stop between its
 *             copy and its CLEAR.
 *             In shared mode, KVM_WRITE_PROTECT_ALL_MEM before the scan
 *             instead of after it: a write after the write-protect-all
 *             faults, marks its page and makes it writable, the scan takes
 *             the bit, and a later write goes through unreported.  The
 *             last round makes the loss certain: every vCPU rewrites all
 *             its pages between its write-protect-all and its scan, then
 *             rewrites them again and stops after its copy
 *
 * Prints one line:
 *   STRESS mode=ring vcpus=2 secs=30 rounds=N pages=N writes=N
 *     slot_churn=N ring_full_exits=N harvest_us=N wp_all_us=N diffs=0
 *     log_toggles=N syncs=N sb_fds=N sb_mapped_pages=N sb_map_refused=N
 *     sb_drained_words=N sb_drained_pages=N
 * where syncs counts the harvests (each with its write-protect-all under
 * -A, but -N), harvest_us and wp_all_us are the mean time per sync of the
 * harvest ioctls (GET, CLEAR, or the ring collection and reset; in shared
 * mode the scan of the mappings) and of KVM_WRITE_PROTECT_ALL_MEM, and the
 * sb_ numbers (0 but in shared mode) are what the module's shared_bitmap_
 * counters must show: descriptors got (one per bitmap), pages of their
 * mappings (each faulted in once), mmap(2) refused on retired bitmaps,
 * words and pages taken by read(2).
 * and exits 0 only if the copy matched.  Uses the upstream KVM selftest
 * library (libkvm) for the vCPUs and guests; runs on x86_64 and arm64.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include <linux/bitmap.h>

#define SLOT		1
#define CHURN_SLOT	2
#define CHURN_PAGES	512
#define GVA		0xc0000000ul
#define MAX_VCPUS	8
#define RING_BYTES	(1u << 16)	/* 4096 entries per vCPU */

enum mode { BITMAP, CLEAR, RING, SHARED };
static const char *const mode_name[] = { "bitmap", "clear", "ring", "shared" };

/* Shared with the guest: the host sets them before the vCPUs start. */
static uint64_t g_pages_per_vcpu, g_page_size, g_nr_vcpus;
static uint64_t g_stop, g_hang;
static uint64_t g_writes[MAX_VCPUS];

/*
 * vCPU i owns pages i, i + n, i + 2n, ... and writes each one's first word
 * with a count of its own writes, which no two writes share, in passes of
 * a varying stride so the dirty set changes shape from round to round.
 * Every pass writes each of its pages once, the pass number in the second
 * word; before it does, it checks that the page still holds the previous
 * pass's number.  The host's final check compares its copy with the slot,
 * so it cannot see a write the guest's own memory lost (a write that went
 * to a page the host then replaced, a stale mapping): this check does.
 */
static void guest_code(uint32_t id)
{
	uint64_t pass = 0, j, k, stride;

	/* -H: vCPU 0 spins in the guest, deaf to the stop. */
	while (id == 0 && READ_ONCE(g_hang))
		;
	while (!READ_ONCE(g_stop)) {
		stride = 1 + 2 * (pass++ % 5);
		for (k = 0; k < stride && !READ_ONCE(g_stop); k++)
			for (j = k; j < g_pages_per_vcpu; j += stride) {
				uint64_t page = j * g_nr_vcpus + id;
				uint64_t *w = (uint64_t *)(GVA + page * g_page_size);
				uint64_t seen = READ_ONCE(w[1]);

				__GUEST_ASSERT(seen == pass - 1,
					       "vCPU %u: page %lu holds pass %lu, wrote %lu last",
					       id, page, seen, pass - 1);
				WRITE_ONCE(w[0], ++g_writes[id]);
				WRITE_ONCE(w[1], pass);
			}
	}
	GUEST_DONE();
}

static struct kvm_vm *vm;
static struct kvm_vcpu *vcpus[MAX_VCPUS];
static struct kvm_dirty_gfn *rings[MAX_VCPUS];
static uint32_t fetch[MAX_VCPUS];
static uint32_t ring_entries;
static enum mode mode;
static bool wrong_order, wp_all, wp_all_skip, log_toggle, ring_bitmap;
static int nr_vcpus = 2;
static uint64_t npages, slot_gpa;
static uint8_t *slot_hva, *copy;
static unsigned long *bitmap, *ring_bits;

/* Where the host stands, for the watchdog. */
static atomic_ulong rounds, pages_copied, churns, ring_full_exits, log_toggles;
static _Atomic(const char *) phase = "start";
static atomic_bool vcpus_done[MAX_VCPUS];
static atomic_int vcpu_tids[MAX_VCPUS];

/*
 * A vCPU's state, for the evidence: an L2 guest that shuts down (a triple
 * fault) under QEMU's nested npt=1 emulation, or one the watchdog stopped
 * because it made no progress (Documentation/known-issues.rst): where it
 * is, what it faulted on, and whether that is in the test slot.
 */
#ifdef __x86_64__
static void dump_vcpu(struct kvm_vcpu *vcpu, const char *why)
{
	struct kvm_vcpu_events ev;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	vcpu_regs_get(vcpu, &regs);
	vcpu_sregs_get(vcpu, &sregs);
	vcpu_events_get(vcpu, &ev);
	printf("dirty_stress: %s vCPU %u: rip %#llx rsp %#llx cr0 %#llx cr2 %#llx cr3 %#llx cr4 %#llx efer %#llx\n",
	       why, vcpu->id, regs.rip, regs.rsp, sregs.cr0, sregs.cr2, sregs.cr3,
	       sregs.cr4, sregs.efer);
	printf("dirty_stress: %s vCPU %u: exception nr %u injected %u pending %u error code %#x (valid %u); cr2 %s the test slot (guest %#lx..%#lx)\n",
	       why, vcpu->id, ev.exception.nr, ev.exception.injected,
	       ev.exception.pending, ev.exception.error_code,
	       ev.exception.has_error_code,
	       sregs.cr2 >= GVA && sregs.cr2 < GVA + npages * g_page_size ?
	       "in" : "outside", GVA, GVA + npages * g_page_size);
	/*
	 * The guest's code and data are in the low half; a kernel-half rip
	 * is not the guest's: the emulator issue of known-issues.rst, where
	 * the L2 vCPU was seen running on L1's registers.
	 */
	if (regs.rip >> 63)
		printf("dirty_stress: %s vCPU %u: rip in the kernel half: L2 runs on L1's state\n",
		       why, vcpu->id);
	fflush(stdout);
}
#else
static void dump_vcpu(struct kvm_vcpu *vcpu, const char *why)
{
	uint64_t pc, pstate;

	vcpu_get_reg(vcpu, ARM64_CORE_REG(regs.pc), &pc);
	vcpu_get_reg(vcpu, ARM64_CORE_REG(regs.pstate), &pstate);
	printf("dirty_stress: %s vCPU %u: pc %#lx pstate %#lx\n", why,
	       vcpu->id, pc, pstate);
	fflush(stdout);
}
#endif

/*
 * The watchdog stops a vCPU that makes no progress to read its state:
 * it sets kick[] and immediate_exit, then signals the vCPU's thread, whose
 * KVM_RUN returns EINTR (no SA_RESTART).  A vCPU that does not come out
 * is stuck in the kernel, not in its guest.
 */
static atomic_bool kick[MAX_VCPUS], kicked[MAX_VCPUS];
static pthread_t vcpu_threads[MAX_VCPUS];

static void on_kick(int sig)
{
	(void)sig;
}

/* vcpu_run(), except that a kick from the watchdog ends it. */
static void run_vcpu(struct kvm_vcpu *vcpu)
{
	int rc;

	for (;;) {
		rc = __vcpu_run(vcpu);
		if (!rc)
			break;
		TEST_ASSERT(errno == EINTR, KVM_IOCTL_ERROR(KVM_RUN, rc));
		if (!atomic_load(&kick[vcpu->id]))
			continue;
		vcpu->run->immediate_exit = 0;
		dump_vcpu(vcpu, "WATCHDOG: stopped");
		atomic_store(&kicked[vcpu->id], true);
		for (;;)	/* the watchdog ends the process */
			pause();
	}
	assert_on_unhandled_exception(vcpu);
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	atomic_store(&vcpu_tids[vcpu->id], gettid());
	for (;;) {
		run_vcpu(vcpu);
		if (vcpu->run->exit_reason == KVM_EXIT_DIRTY_RING_FULL) {
			/* Soft-full: the collector resets the ring; wait. */
			atomic_fetch_add(&ring_full_exits, 1);
			usleep(1000);
			continue;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_DONE:
			atomic_store(&vcpus_done[vcpu->id], true);
			return NULL;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			if (vcpu->run->exit_reason == KVM_EXIT_SHUTDOWN)
				dump_vcpu(vcpu, "SHUTDOWN");
			TEST_FAIL("vCPU %u: exit reason %s", vcpu->id,
				  exit_reason_str(vcpu->run->exit_reason));
		}
	}
}

static uint64_t guest_writes(int i)
{
	uint64_t *w = addr_gva2hva(vm, (vm_vaddr_t)&g_writes);

	return __atomic_load_n(&w[i], __ATOMIC_RELAXED);
}

/* Waits until every vCPU has made more than @n writes from now on. */
static void wait_vcpu_writes(uint64_t n)
{
	uint64_t start[MAX_VCPUS];
	int i;

	for (i = 0; i < nr_vcpus; i++)
		start[i] = guest_writes(i);
	for (i = 0; i < nr_vcpus; i++)
		while (guest_writes(i) - start[i] <= n)
			usleep(1000);
}

/*
 * The last round of -W (between its copy and its CLEAR; in shared mode,
 * after its copy) and of -N (after its copy): let every vCPU rewrite all
 * its pages once more, then stop it.  -W: those writes land on pages the
 * snapshot reported, which the CLEAR then protects unseen; in shared mode,
 * on pages made writable after the round's write-protect-all, whose bits
 * its scan took.  -N: they land on pages nothing protected since their
 * last fault.  Without this the loss would depend on where the vCPUs' last
 * writes fall in time.
 */
static void stop_vcpus_in_window(void)
{
	int i;

	phase = "last round: vCPUs rewrite their pages, then stop";
	wait_vcpu_writes(g_pages_per_vcpu);
	g_stop = 1;
	sync_global_to_guest(vm, g_stop);
	for (i = 0; i < nr_vcpus; i++)
		while (!atomic_load(&vcpus_done[i]))
			usleep(1000);
}

/* Collects one vCPU's ring into the bitmap, marking entries collected. */
static void collect_ring(int i)
{
	struct kvm_dirty_gfn *e;

	for (;;) {
		e = &rings[i][fetch[i] % ring_entries];
		if (__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) !=
		    KVM_DIRTY_GFN_F_DIRTY)
			return;
		TEST_ASSERT(e->slot == SLOT && e->offset < npages,
			    "vCPU %d ring entry %u: slot %u offset %llu", i,
			    fetch[i], e->slot, e->offset);
		__set_bit(e->offset, bitmap);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
		fetch[i]++;
	}
}

/*
 * A memslot's dirty bitmap shared with user space (-M shared): the
 * descriptor KVM_GET_DIRTY_BITMAP_FD returned for the bitmap the slot has
 * now, and the file's mapping.  The descriptor names that bitmap only: a
 * memslot change that lets go of it retires it, and the bitmap the slot
 * gets next needs a new descriptor.
 */
struct shared_map {
	int fd;			/* -1: none */
	uint64_t *words;
	uint64_t npages, nwords, mmap_size;
};

static struct shared_map slot_map = { .fd = -1 }, churn_map = { .fd = -1 };
/* The slot's bits read(2) took from a retired bitmap, for the next copy. */
static unsigned long *drained;
/* What the module's shared_bitmap_ counters must show (the STRESS line). */
static uint64_t sb_fds, sb_mapped_pages, sb_map_refused, sb_drained_words,
	sb_drained_pages;

/*
 * Bits past the slot's last page mean no page: KVM never sets them, and a
 * bit there taken as a page would be copied from past the slot.
 */
static void check_word(const struct shared_map *m, uint64_t i, uint64_t mask)
{
	uint64_t past = 0;

	if (i == m->nwords - 1 && m->npages % 64)
		past = ~0ull << (m->npages % 64);
	TEST_ASSERT(!(mask & past),
		    "shared bitmap of %lu pages: word %lu has %#lx, bits past the slot",
		    m->npages, i, mask);
}

static void map_bitmap(struct shared_map *m, uint32_t slot, uint64_t pages)
{
	struct kvm_dirty_bitmap_fd req = { .slot = slot };
	uint64_t page_bytes = getpagesize(), i;
	int fd;

	phase = "KVM_GET_DIRTY_BITMAP_FD";
	fd = __vm_ioctl(vm, KVM_GET_DIRTY_BITMAP_FD, &req);
	TEST_ASSERT(fd >= 0, KVM_IOCTL_ERROR(KVM_GET_DIRTY_BITMAP_FD, fd));
	m->fd = fd;
	m->npages = pages;
	m->nwords = DIV_ROUND_UP(pages, 64);
	m->mmap_size = req.mmap_size;
	TEST_ASSERT(req.npages == pages &&
		    req.mmap_size == align_up(m->nwords * 8, page_bytes),
		    "slot %u of %lu pages: KVM_GET_DIRTY_BITMAP_FD says %llu pages, %llu bytes to map",
		    slot, pages, req.npages, req.mmap_size);
	sb_fds++;
	m->words = mmap(NULL, m->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			fd, 0);
	TEST_ASSERT(m->words != MAP_FAILED, "mmap of slot %u's bitmap: %s",
		    slot, strerror(errno));
	/*
	 * One load from each page of the mapping: every page faults in here,
	 * once (shared_bitmap_faults), and the words past the bitmap are 0.
	 */
	for (i = 0; i < m->mmap_size / 8; i += page_bytes / 8)
		(void)__atomic_load_n(&m->words[i], __ATOMIC_RELAXED);
	for (i = m->nwords; i < m->mmap_size / 8; i++)
		TEST_ASSERT(!m->words[i], "slot %u's bitmap: word %lu past it has %#lx",
			    slot, i, m->words[i]);
	sb_mapped_pages += m->mmap_size / page_bytes;
}

/*
 * The protocol's scan: each word taken with an atomic exchange, so that a
 * bit KVM sets during the scan is in this scan or the next, never lost; a
 * plain load first leaves clean words' cache lines shared.  Adds the bits
 * taken to @into (if not NULL) and returns how many there were.
 */
static uint64_t scan_bitmap(struct shared_map *m, unsigned long *into)
{
	uint64_t i, mask, n = 0;

	for (i = 0; i < m->nwords; i++) {
		if (!__atomic_load_n(&m->words[i], __ATOMIC_RELAXED))
			continue;
		mask = __atomic_exchange_n(&m->words[i], 0, __ATOMIC_SEQ_CST);
		check_word(m, i, mask);
		if (into)
			into[i] |= mask;
		n += __builtin_popcountll(mask);
	}
	return n;
}

/*
 * After a memslot change retired the bitmap @m shows (the slot deleted, or
 * its logging turned off): mmap(2) is refused, read(2) takes the bits set
 * between the last scan and the change, then the mapping and the
 * descriptor go.  Adds the bits taken to @into (if not NULL) and returns
 * how many there were.  @probe: check that mmap(2) is refused, where the
 * caller knows the retirement happened (a memslot change returned).
 */
static uint64_t retire_bitmap(struct shared_map *m, unsigned long *into,
			      bool probe)
{
	uint64_t i, n = 0, *buf = calloc(m->nwords, 8);
	ssize_t r;
	void *p;

	TEST_ASSERT(buf, "out of memory");
	if (probe) {
		phase = "mmap(2) of a retired bitmap";
		p = mmap(NULL, getpagesize(), PROT_READ, MAP_SHARED, m->fd, 0);
		TEST_ASSERT(p == MAP_FAILED && errno == ENODEV,
			    "mmap(2) of a retired bitmap: %p, %s, want ENODEV",
			    p, strerror(errno));
		sb_map_refused++;
	}
	phase = "read(2) of a bitmap";
	r = pread(m->fd, buf, m->nwords * 8, 0);
	TEST_ASSERT(r == (ssize_t)(m->nwords * 8),
		    "read(2) of %lu bytes of a bitmap: %zd, %s", m->nwords * 8,
		    r, strerror(errno));
	sb_drained_words += m->nwords;
	for (i = 0; i < m->nwords; i++) {
		check_word(m, i, buf[i]);
		if (into)
			into[i] |= buf[i];
		n += __builtin_popcountll(buf[i]);
	}
	sb_drained_pages += n;
	free(buf);
	TEST_ASSERT(!munmap(m->words, m->mmap_size) && !close(m->fd),
		    "munmap or close of a bitmap: %s", strerror(errno));
	m->fd = -1;
	return n;
}

/*
 * The churned slot's bitmap, when it is logged: nothing writes to that
 * slot, so a bit there is a mark that went to the wrong bitmap.
 */
static void check_churn_bits(uint64_t n, const char *how)
{
	TEST_ASSERT(!n, "%lu bits in the churned slot's bitmap (%s), which nothing writes",
		    n, how);
}

/*
 * One round: learn what was dirtied, make sure later writes to those pages
 * will be reported again, then copy them: the order every mode must keep.
 */
/* Time in the kernel per round, for the STRESS line. */
static uint64_t harvest_ns, wp_all_ns, timed_rounds;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void harvest_and_copy(bool last_wrong_round)
{
	uint64_t p, n = 0, t0, t1;
	int i;

	memset(bitmap, 0, DIV_ROUND_UP(npages, 64) * 8);
	if (mode == SHARED && wrong_order) {
		/* -W: the write-protect-all before the scan, as it must not be. */
		t0 = now_ns();
		phase = "KVM_WRITE_PROTECT_ALL_MEM (-W: before the scan)";
		vm_ioctl(vm, KVM_WRITE_PROTECT_ALL_MEM, NULL);
		wp_all_ns += now_ns() - t0;
		/*
		 * Every page faults, is marked and made writable after the
		 * write-protect-all, and the scan takes its bit: within twice
		 * a pass of writes lies a whole pass, which writes every page
		 * of the vCPU.  stop_vcpus_in_window() then rewrites them.
		 */
		if (last_wrong_round) {
			phase = "-W: vCPUs rewrite their pages before the scan";
			wait_vcpu_writes(2 * g_pages_per_vcpu);
		}
	}
	t0 = now_ns();
	switch (mode) {
	case BITMAP:
		phase = "GET_DIRTY_LOG";
		kvm_vm_get_dirty_log(vm, SLOT, bitmap);
		break;
	case CLEAR:
		phase = "GET_DIRTY_LOG (manual protect)";
		kvm_vm_get_dirty_log(vm, SLOT, bitmap);
		if (wrong_order)
			break;
		phase = "CLEAR_DIRTY_LOG";
		kvm_vm_clear_dirty_log(vm, SLOT, bitmap, 0, npages);
		break;
	case RING:
		phase = "collecting rings";
		for (i = 0; i < nr_vcpus; i++)
			collect_ring(i);
		phase = "RESET_DIRTY_RINGS";
		kvm_vm_reset_dirty_ring(vm);
		if (ring_bitmap) {
			phase = "GET_DIRTY_LOG (the rings' bitmap)";
			kvm_vm_get_dirty_log(vm, SLOT, ring_bits);
			for (p = 0; p < BITS_TO_LONGS(npages); p++)
				bitmap[p] |= ring_bits[p];
		}
		break;
	case SHARED:
		/* What read(2) took from a retired bitmap of the slot. */
		for (p = 0; p < BITS_TO_LONGS(npages); p++) {
			bitmap[p] |= drained[p];
			drained[p] = 0;
		}
		phase = "scanning the mapped bitmap";
		scan_bitmap(&slot_map, bitmap);
		if (churn_map.fd >= 0)
			check_churn_bits(scan_bitmap(&churn_map, NULL), "scan");
		break;
	}
	t1 = now_ns();
	if (wp_all && !wp_all_skip && !(mode == SHARED && wrong_order)) {
		/* After the harvest, before the copy: see -A. */
		phase = "KVM_WRITE_PROTECT_ALL_MEM";
		vm_ioctl(vm, KVM_WRITE_PROTECT_ALL_MEM, NULL);
	}
	harvest_ns += t1 - t0;
	wp_all_ns += now_ns() - t1;
	timed_rounds++;
	phase = "copying";
	for (p = 0; p < npages; p++)
		if (test_bit(p, bitmap)) {
			memcpy(copy + p * g_page_size,
			       slot_hva + p * g_page_size, g_page_size);
			n++;
		}
	atomic_fetch_add(&pages_copied, n);
	if (last_wrong_round)
		stop_vcpus_in_window();
	if (mode == CLEAR && wrong_order)
		kvm_vm_clear_dirty_log(vm, SLOT, bitmap, 0, npages);
}

/* An unlogged slot deleted and re-created (logged every other time). */
static void churn_slot(void)
{
	static bool present;
	uint64_t gpa = slot_gpa - CHURN_PAGES * g_page_size;
	bool logged = atomic_load(&churns) % 4 == 0;

	phase = "memslot churn";
	if (present) {
		vm_mem_region_delete(vm, CHURN_SLOT);
		/* -M shared: the deleted slot's bitmap is retired. */
		if (churn_map.fd >= 0)
			check_churn_bits(retire_bitmap(&churn_map, NULL, true),
					 "read(2)");
	} else {
		vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa,
					    CHURN_SLOT, CHURN_PAGES,
					    logged ? KVM_MEM_LOG_DIRTY_PAGES : 0);
		/* A new slot, a new bitmap: a new descriptor to map. */
		if (mode == SHARED && logged)
			map_bitmap(&churn_map, CHURN_SLOT, CHURN_PAGES);
	}
	present = !present;
	atomic_fetch_add(&churns, 1);
}

/*
 * Logging off and on again (-L), then a copy of everything: writes while it
 * was off were not logged, and from the moment it is on again they are.
 */
static void toggle_logging(void)
{
	phase = "dirty logging off";
	vm_mem_region_set_flags(vm, SLOT, 0);
	/*
	 * -M shared: logging off retired the slot's bitmap; its bits set
	 * since the last scan go to the next copy, as a VMM that deletes or
	 * changes a slot must collect them (the copy of everything below
	 * covers them here, but only because logging comes back on).
	 */
	if (mode == SHARED)
		retire_bitmap(&slot_map, drained, true);
	usleep(5000);
	phase = "dirty logging on";
	vm_mem_region_set_flags(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	if (mode == SHARED)
		map_bitmap(&slot_map, SLOT, npages);
	phase = "copying everything";
	memcpy(copy, slot_hva, npages * g_page_size);
	atomic_fetch_add(&pages_copied, npages);
	atomic_fetch_add(&log_toggles, 1);
}

/*
 * __vm_create() with the dirty ring and its bitmap turned on first: KVM
 * takes KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP only from a VM without memslots,
 * and libkvm's __vm_create() adds slot 0.  The rest as libkvm does it, slot
 * 0 sized generously for the code, the vCPUs' stacks and the page tables
 * that map `extra_pages`.
 */
static struct kvm_vm *create_vm_ring_with_bitmap(uint64_t extra_pages)
{
	uint64_t pages = 1024 + nr_vcpus * 64 + extra_pages / 256;
	struct kvm_vm *vm = ____vm_create(VM_SHAPE_DEFAULT);
	int i;

	vm_enable_dirty_ring(vm, RING_BYTES);
	vm_enable_cap(vm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 0);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, 0, 0, pages, 0);
	for (i = 0; i < NR_MEM_REGIONS; i++)
		vm->memslots[i] = 0;
	kvm_vm_elf_load(vm, program_invocation_name);
	ucall_init(vm, pages * vm->page_size);
	guest_rng = new_guest_random_state(guest_random_seed);
	sync_global_to_guest(vm, guest_rng);
	kvm_arch_vm_post_create(vm);
	return vm;
}

static int watchdog_secs = 60;
static bool no_sysrq;

/* Prints a file of /proc, for the watchdog; quiet if it cannot be read. */
static void print_proc(const char *what, int tid, const char *file)
{
	char path[64], buf[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", tid, file);
	f = fopen(path, "r");
	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	printf("dirty_stress: WATCHDOG: %s %s:\n%s", what, file, buf);
}

/*
 * KVM's statistics for this VM (debugfs, summed over its vCPUs), read
 * twice a second apart: those that moved say what a stuck vCPU is doing,
 * e.g. faulting on one page over and over (pf_taken, pf_spurious, exits)
 * or not running at all.  Quiet without debugfs.
 */
#define MAX_STATS 128
static int read_kvm_stats(char names[][32], uint64_t *vals)
{
	char dir[300], path[600];
	struct dirent *d;
	DIR *top, *vmdir;
	FILE *f;
	int n = 0;

	top = opendir("/sys/kernel/debug/kvm");
	if (!top)
		return 0;
	dir[0] = 0;
	while ((d = readdir(top)))
		if (strtol(d->d_name, NULL, 10) == getpid() && strchr(d->d_name, '-'))
			snprintf(dir, sizeof(dir), "/sys/kernel/debug/kvm/%s", d->d_name);
	closedir(top);
	vmdir = dir[0] ? opendir(dir) : NULL;
	if (!vmdir)
		return 0;
	while ((d = readdir(vmdir)) && n < MAX_STATS) {
		if (d->d_type != DT_REG)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%lu", &vals[n]) == 1) {
			snprintf(names[n], 32, "%.31s", d->d_name);
			n++;
		}
		fclose(f);
	}
	closedir(vmdir);
	return n;
}

static void print_kvm_stat_deltas(void)
{
	static char names[MAX_STATS][32];
	static uint64_t a[MAX_STATS], b[MAX_STATS];
	int n, m, i;

	n = read_kvm_stats(names, a);
	sleep(1);
	m = read_kvm_stats(names, b);
	if (!n || m != n)
		return;
	printf("dirty_stress: WATCHDOG: KVM stats that moved in 1 s:");
	for (i = 0; i < n; i++)
		if (b[i] != a[i])
			printf(" %s+%lu", names[i], b[i] - a[i]);
	printf("\n");
}

/*
 * Progress is a finished round, a guest write or a vCPU seeing the stop:
 * the stop phase finishes no rounds while it waits for slow vCPUs, and is
 * stuck only if they stop writing too.
 */
static uint64_t progress(void)
{
	uint64_t sum = atomic_load(&rounds);
	int i;

	for (i = 0; i < nr_vcpus; i++)
		sum += guest_writes(i) + atomic_load(&vcpus_done[i]);
	return sum;
}

/* Stops every vCPU not done, for dump_vcpu(); says which did not stop. */
static void kick_vcpus(void)
{
	int i, t;

	for (i = 0; i < nr_vcpus; i++) {
		if (atomic_load(&vcpus_done[i]))
			continue;
		atomic_store(&kick[i], true);
		vcpus[i]->run->immediate_exit = 1;
		pthread_kill(vcpu_threads[i], SIGUSR1);
		for (t = 0; t < 50 && !atomic_load(&kicked[i]); t++)
			usleep(100 * 1000);
		if (!atomic_load(&kicked[i]))
			printf("dirty_stress: WATCHDOG: vCPU %d did not leave KVM_RUN within 5 s of a signal: stuck in the kernel\n",
			       i);
	}
}

static void *watchdog(void *arg)
{
	uint64_t last = -1ull, now;
	int still = 0, i;

	(void)arg;
	for (;;) {
		sleep(1);
		now = progress();
		still = now == last ? still + 1 : 0;
		last = now;
		if (still < watchdog_secs)
			continue;
		printf("dirty_stress: WATCHDOG: no progress for %d s: mode %s, round %lu, host in '%s', pages copied %lu, ring-full exits %lu\n",
		       still, mode_name[mode], atomic_load(&rounds),
		       atomic_load(&phase), atomic_load(&pages_copied),
		       atomic_load(&ring_full_exits));
		for (i = 0; i < nr_vcpus; i++) {
			char what[32];

			printf("dirty_stress: WATCHDOG: vCPU %d: %lu writes%s, last exit %s\n",
			       i, guest_writes(i),
			       atomic_load(&vcpus_done[i]) ? ", done" : "",
			       exit_reason_str(vcpus[i]->run->exit_reason));
			if (atomic_load(&vcpus_done[i]))
				continue;
			/* Where its thread is: in the guest, or stuck in KVM. */
			snprintf(what, sizeof(what), "vCPU %d thread", i);
			print_proc(what, atomic_load(&vcpu_tids[i]), "stat");
			print_proc(what, atomic_load(&vcpu_tids[i]), "stack");
			if (mode == RING)
				printf("dirty_stress: WATCHDOG: vCPU %d ring: fetch %u, entry flags there %u, before it %u\n",
				       i, fetch[i],
				       rings[i][fetch[i] % ring_entries].flags,
				       rings[i][(fetch[i] - 1) % ring_entries].flags);
		}
		print_kvm_stat_deltas();
		kick_vcpus();
		fflush(stdout);
		/* Every task's and CPU's stack to the console, if allowed. */
		if (!no_sysrq)
			system("echo 'kd-dump: begin' > /dev/kmsg; "
			       "echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger; "
			       "echo 'kd-dump: end' > /dev/kmsg");
		_exit(KSFT_FAIL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	enum vm_mem_backing_src_type src = VM_MEM_SRC_ANONYMOUS;
	uint64_t size = 16ul << 20, p, diffs = 0, writes = 0;
	struct sigaction sa = { .sa_handler = on_kick };	/* no SA_RESTART */
	pthread_t dog;
	int secs = 30, opt, i;
	time_t end;

	while ((opt = getopt(argc, argv, "M:t:v:b:Tw:WANLBHD")) != -1) {
		switch (opt) {
		case 'M':
			for (mode = BITMAP; mode <= SHARED; mode++)
				if (!strcmp(optarg, mode_name[mode]))
					break;
			TEST_ASSERT(mode <= SHARED,
				    "-M %s: bitmap, clear, ring or shared", optarg);
			break;
		case 't':
			secs = atoi(optarg);
			break;
		case 'v':
			nr_vcpus = atoi(optarg);
			break;
		case 'b':
			size = parse_size(optarg);
			break;
		case 'T':
			src = VM_MEM_SRC_ANONYMOUS_THP;
			break;
		case 'w':
			watchdog_secs = atoi(optarg);
			break;
		case 'W':
			wrong_order = true;
			break;
		case 'A':
			wp_all = true;
			break;
		case 'N':
			wp_all_skip = true;
			break;
		case 'L':
			log_toggle = true;
			break;
		case 'H':
			g_hang = 1;
			break;
		case 'D':
			no_sysrq = true;
			break;
		case 'B':
			ring_bitmap = true;
			break;
		default:
			printf("usage: %s [-M bitmap|clear|ring|shared] [-t secs] [-v vcpus] [-b size] [-T] [-w secs] [-W] [-A [-N]] [-L] [-B] [-H] [-D]\n",
			       argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_ASSERT(nr_vcpus >= 1 && nr_vcpus <= MAX_VCPUS, "-v 1..%d", MAX_VCPUS);
	if (mode == RING)
		TEST_REQUIRE(kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) ||
			     kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL));

	/*
	 * Room in slot 0 for the guest page tables that map the test slot:
	 * libkvm reserves page-table pages for this many "extra" pages.
	 */
	if (ring_bitmap) {
		TEST_ASSERT(mode == RING, "-B: ring mode only");
		TEST_REQUIRE(kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP));
		vm = create_vm_ring_with_bitmap(size / getpagesize());
	} else {
		vm = __vm_create(VM_SHAPE_DEFAULT, nr_vcpus,
				 size / getpagesize());
	}
	TEST_ASSERT(vm->page_size == getpagesize(),
		    "guest pages of %u bytes, host pages of %d", vm->page_size,
		    getpagesize());
	g_page_size = vm->page_size;
	npages = size / g_page_size / nr_vcpus * nr_vcpus;
	g_pages_per_vcpu = npages / nr_vcpus;
	g_nr_vcpus = nr_vcpus;
	if (mode == RING) {
		if (!ring_bitmap)
			vm_enable_dirty_ring(vm, RING_BYTES);
		ring_entries = RING_BYTES / sizeof(struct kvm_dirty_gfn);
	}
	if (mode == CLEAR)
		vm_enable_cap(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
	/*
	 * The shared bitmap's only write protection is the write-protect-all,
	 * and the capability needs it on, without a harvest's write-protect.
	 */
	if (mode == SHARED)
		wp_all = true;
	if (wp_all) {
		TEST_REQUIRE(vm_check_cap(vm, KVM_CAP_DIRTY_WP_ALL) == 1);
		TEST_ASSERT(!wrong_order || mode == SHARED,
			    "-W and -A: one protocol at a time");
		vm_enable_cap(vm, KVM_CAP_DIRTY_WP_ALL,
			      KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	}
	/* Before any slot has a dirty bitmap: KVM's own could not be mapped. */
	if (mode == SHARED) {
		TEST_REQUIRE(vm_check_cap(vm, KVM_CAP_DIRTY_SHARED_BITMAP) == 1);
		vm_enable_cap(vm, KVM_CAP_DIRTY_SHARED_BITMAP, 0);
	}
	for (i = 0; i < nr_vcpus; i++) {
		vcpus[i] = vm_vcpu_add(vm, i, guest_code);
		vcpu_args_set(vcpus[i], 1, i);
	}
	/* At the top of guest physical memory, like dirty_log_test. */
	slot_gpa = (vm->max_gfn - npages) * g_page_size;
	slot_gpa &= ~(get_backing_src_pagesz(src) - 1);
	vm_userspace_mem_region_add(vm, src, slot_gpa, SLOT, npages,
				    KVM_MEM_LOG_DIRTY_PAGES);
	virt_map(vm, GVA, slot_gpa, npages);
	slot_hva = addr_gpa2hva(vm, slot_gpa);
	copy = calloc(npages, g_page_size);
	bitmap = bitmap_zalloc(npages);
	ring_bits = bitmap_zalloc(npages);
	drained = bitmap_zalloc(npages);
	TEST_ASSERT(copy && bitmap && ring_bits && drained, "out of memory");
	if (mode == SHARED)
		map_bitmap(&slot_map, SLOT, npages);
	sync_global_to_guest(vm, g_pages_per_vcpu);
	sync_global_to_guest(vm, g_page_size);
	sync_global_to_guest(vm, g_nr_vcpus);
	sync_global_to_guest(vm, g_hang);
	for (i = 0; i < nr_vcpus; i++)
		if (mode == RING)
			rings[i] = vcpu_map_dirty_ring(vcpus[i]);

	/* The first round of a migration copies everything. */
	harvest_and_copy(false);
	memcpy(copy, slot_hva, npages * g_page_size);

	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction: %s", strerror(errno));
	pthread_create(&dog, NULL, watchdog, NULL);
	for (i = 0; i < nr_vcpus; i++)
		pthread_create(&vcpu_threads[i], NULL, vcpu_thread, vcpus[i]);
	end = time(NULL) + secs;
	while (time(NULL) < end) {
		harvest_and_copy(false);
		churn_slot();
		if (log_toggle && atomic_load(&rounds) % 8 == 4)
			toggle_logging();
		atomic_fetch_add(&rounds, 1);
		usleep(20000);
	}

	if (wrong_order || wp_all_skip) {
		/*
		 * A round after the last memslot churn (which may zap the
		 * slot's mappings, so that writes fault and are logged again),
		 * then the round whose window loses the writes.
		 */
		usleep(100000);
		harvest_and_copy(false);
		harvest_and_copy(true);
	}
	g_stop = 1;
	sync_global_to_guest(vm, g_stop);
	/*
	 * Keep harvesting until every vCPU has seen the stop: in ring mode a
	 * vCPU waiting on a soft-full ring needs a reset to get there.
	 */
	for (;;) {
		for (i = 0; i < nr_vcpus && atomic_load(&vcpus_done[i]); i++)
			;
		if (i == nr_vcpus)
			break;
		harvest_and_copy(false);
		phase = "stopping the vCPUs";
		usleep(1000);
	}
	for (i = 0; i < nr_vcpus; i++)
		pthread_join(vcpu_threads[i], NULL);
	/* The last round, with the guest stopped. */
	harvest_and_copy(false);
	atomic_fetch_add(&rounds, 1);

	for (p = 0; p < npages; p++)
		if (memcmp(copy + p * g_page_size, slot_hva + p * g_page_size,
			   g_page_size)) {
			if (diffs++ < 10)
				printf("dirty_stress: page %lu: copy has %lu, guest wrote %lu\n",
				       p, *(uint64_t *)(copy + p * g_page_size),
				       *(uint64_t *)(slot_hva + p * g_page_size));
		}
	sync_global_from_guest(vm, g_writes);
	for (i = 0; i < nr_vcpus; i++)
		writes += g_writes[i];
	/* The watchdog reads guest memory: stop it before the VM goes. */
	pthread_cancel(dog);
	pthread_join(dog, NULL);
	kvm_vm_free(vm);
	/*
	 * -M shared: the VM's end retires the bitmaps with their files open
	 * (when its last reference goes: not probed with mmap(2) here).
	 * read(2) works on them either way, and finds nothing: the last scan
	 * came after the vCPUs stopped.  Closing the files frees the pages.
	 */
	if (mode == SHARED) {
		TEST_ASSERT(!retire_bitmap(&slot_map, NULL, false),
			    "bits in the slot's bitmap after the last scan");
		if (churn_map.fd >= 0)
			check_churn_bits(retire_bitmap(&churn_map, NULL, false),
					 "read(2)");
	}
	printf("STRESS mode=%s%s vcpus=%d secs=%d thp=%d rounds=%lu pages=%lu writes=%lu slot_churn=%lu ring_full_exits=%lu harvest_us=%lu wp_all_us=%lu diffs=%lu log_toggles=%lu syncs=%lu sb_fds=%lu sb_mapped_pages=%lu sb_map_refused=%lu sb_drained_words=%lu sb_drained_pages=%lu\n",
	       mode_name[mode], wp_all && mode != SHARED ? "+wp-all" : "",
	       nr_vcpus, secs, src == VM_MEM_SRC_ANONYMOUS_THP,
	       atomic_load(&rounds), atomic_load(&pages_copied), writes,
	       atomic_load(&churns), atomic_load(&ring_full_exits),
	       harvest_ns / timed_rounds / 1000, wp_all_ns / timed_rounds / 1000,
	       diffs, atomic_load(&log_toggles), timed_rounds, sb_fds,
	       sb_mapped_pages, sb_map_refused, sb_drained_words,
	       sb_drained_pages);
	TEST_ASSERT(writes > 0, "the guest wrote nothing");
	TEST_ASSERT(diffs == 0, "%lu pages differ: dirty pages were lost", diffs);
	return 0;
}
