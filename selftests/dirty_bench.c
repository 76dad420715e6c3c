// SPDX-License-Identifier: GPL-2.0
/*
 * Micro-benchmark of the dirty-tracking ioctls, KVM's C path against
 * kvm_dirty.ko's Rust path, in one process: it creates a VM with bind_vms=0
 * (C) and one with bind_vms=1 (Rust), checks the binding through the
 * module's vms_bound counter, and alternates every timed call between the
 * two (C Rust, then Rust C, ...), so drift on a shared host hits both alike.
 * The module's call counters must move by exactly the Rust VM's calls.
 *
 *   -m get    KVM_GET_DIRTY_LOG (no manual protect) latency per call, with
 *             0 %, 1 % and/or 100 % of the slot's pages dirty (-d 0,1,100):
 *             the guest writes the chosen pages, GUEST_SYNC, then the host
 *             times one GET.  0 %: -z calls on a clean slot.  Also the cost
 *             of two clock reads, as a control (ratio 1 up to noise).
 *   -m clear  KVM_CLEAR_DIRTY_LOG latency per 64-page chunk, manual protect
 *             with KVM_DIRTY_LOG_INITIALLY_SET: chunks whose pages the guest
 *             wrote (-P pages) and chunks it never touched; also the
 *             manual-protect GET (a copy of the bitmap) of the whole slot.
 *             -F instead: the guest writes every page, then one CLEAR of
 *             the whole slot (clear_us dirty=100), -N times after an
 *             untimed pass.
 *   -m ring   KVM_RESET_DIRTY_RINGS throughput: the guest dirties -e/2
 *             distinct pages (-S stride: 1 coalesces into 64-page masks,
 *             a larger odd stride gives one write-protect per entry), the
 *             host marks every entry harvested and times the reset.
 *   -m wpall  one harvest round, the C path's classic KVM_GET_DIRTY_LOG
 *             (harvest and write-protect the dirty pages) against the Rust
 *             path's write-protect-all round (KVM_CAP_DIRTY_WP_ALL: GET
 *             without write-protect, then KVM_WRITE_PROTECT_ALL_MEM), with
 *             0 %, 1 % or 100 % of the pages dirty (-d): round_us.  And the
 *             guest's side, the time to write those pages after a round
 *             (each write faults once on both paths): write_us.  Options as
 *             for get.  Where the capability is offered (x86, arm64).
 *             -R: before its writes, the guest reads every page of the
 *             slot (read_us): what the round costs readers (on arm64, the
 *             push-down faults at pending descriptors; none on x86); the
 *             writes are then tagged after=read.
 *   -m logon  turning dirty logging on for the slot, fully mapped by the
 *             guest's writes (with -T, 2M mappings): the C path's classic
 *             enable (split the huge pages, write-protect every page)
 *             against the Rust path's (KVM_CAP_DIRTY_WP_ALL: one
 *             write-protect-all): log_on_us; then the guest's time to write
 *             every page once (log_on_write_us); on the Rust VM also a
 *             KVM_WRITE_PROTECT_ALL_MEM with all of it mapped (wpall_us).
 *             Logging off and every page rewritten (untimed) before the next
 *             rep (-n).  The slot is created with logging off.  -W: no
 *             guest writes after logging on (log_on_us and wpall_us only;
 *             at 4G the writes take minutes per path here).
 *   -m shared one dirty sync of the slot three ways, the VMs' syncs
 *             alternating as for the other modes: the shared bitmap
 *             (path=shared: KVM_CAP_DIRTY_SHARED_BITMAP, the VMM's exchange
 *             scan of the mapped bitmap, then one KVM_WRITE_PROTECT_ALL_MEM),
 *             the module's write-protect-all round (path=rust: GET without
 *             write-protect, then KVM_WRITE_PROTECT_ALL_MEM) and KVM's
 *             classic GET (path=c), with 0 %, 1 % or 100 % of the pages
 *             dirty (-d): shared_sync_us, and the part that takes the bits
 *             (the scan, or the Rust path's GET): shared_harvest_us.  Each
 *             sync yields the same user-space bitmap, checked bit for bit.
 *             After each shared sync, the scan's bytes per second
 *             (shared_gbps src=map) against the same scan of anonymous
 *             memory holding the same words (src=anon) and a plain read of
 *             it (src=read): what the mapping costs, and how near the scan
 *             is to the rate at which this machine reads memory at all.
 *             Options as for wpall; -U: no untimed pass writing every page
 *             first (the rounds' own pages only are mapped), where three
 *             VMs' fully written slots would not fit in memory.
 *   -T        back the slot with THP and touch it all from the host first:
 *             the guest's first writes then cost less (untimed).
 *   -p        c, rust or both (default; with -m shared, all three paths),
 *             or shared (-m shared only).
 *   -r        the round: odd rounds start with C, even ones with Rust; with
 *             three VMs, which goes first moves on with the round.
 *
 * The test slot (-s bytes, up to 4G) is at guest physical 4 GiB, identity
 * mapped with 2M guest pages (x86; 4K on arm64); dirty logging is on from
 * its creation.
 * Results: one line per path and metric,
 *   RESULT path=rust metric=get_us size=1G dirty=1 value=M n=N min=A max=B
 * with the median, count, minimum and maximum of the samples (microseconds,
 * entries/s for *_eps).
 *
 * With KD_PROFILE_PHASE=k in the environment (tools/tcg-profile), the ring
 * mode also marks phases for the instruction-counting plugin: a sync(2)
 * before and after each timed reset, and "PHASE k NAME calls=1
 * us_per_call=T" lines, NAME ring-c or ring-rust for the reset and fill for
 * what came before it (the guest's run), numbered from k on.
 *
 * Uses the upstream KVM selftest library (libkvm) for the vCPUs and guests.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "kd_counters.h"
#include "kd_phase.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define SLOT		1
#define GPA		(1ul << 32)
#define PAGE		4096ul
#define MAX_SAMPLES	4096
#define KINDS		5	/* metrics sampled at once, per VM */
#define BIND_VMS	"/sys/module/kvm_dirty/parameters/bind_vms"

enum { GET, CLEAR, RESET, WPALL, CALLS };
static const char *const counter[CALLS] = {
	"get_dirty_log", "clear_dirty_log", "ring_resets",
	"wp_all_calls",
};

/*
 * The shared bitmap's counters, which show that its VM's bitmap was the
 * module's, that the mapping went through its fault handler, and that the
 * bitmap was freed with the VM.
 */
enum { SBM_VMS, SBM_FDS, SBM_ALLOCS, SBM_FREES, SBM_FAULTS, SBM_COUNTERS };
static const char *const sbm_counter[SBM_COUNTERS] = {
	"shared_bitmap_vms", "shared_bitmap_fds",
	"shared_bitmap_allocs", "shared_bitmap_frees",
	"shared_bitmap_faults",
};

/* What the guest writes (or reads) on its next run; the host sets these. */
static uint64_t g_first, g_stride, g_count, g_npages, g_pass, g_read;

static void guest_code(void)
{
	for (;;) {
		uint64_t off = READ_ONCE(g_first), stride = READ_ONCE(g_stride);
		uint64_t n = READ_ONCE(g_count), np = READ_ONCE(g_npages);
		uint64_t pass = READ_ONCE(g_pass);
		bool reading = READ_ONCE(g_read);

		for (uint64_t i = 0; i < n; i++) {
			if (reading)
				(void)READ_ONCE(*(uint64_t *)(GPA + off * PAGE));
			else
				WRITE_ONCE(*(uint64_t *)(GPA + off * PAGE), pass);
			off += stride;
			if (off >= np)
				off -= np;
		}
		GUEST_SYNC(pass);
	}
}

/* One VM under test, on one path, and its samples. */
struct bvm {
	const char *path;
	bool rust;
	bool shared;		/* -m shared: the VMM scans the mapped bitmap */
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint64_t *bitmap;
	struct kvm_dirty_gfn *ring;
	uint32_t fetch;		/* next ring entry to harvest */
	int map_fd;		/* the slot's KVM_GET_DIRTY_BITMAP_FD */
	uint64_t *map;		/* its mapping: the live bitmap */
	uint64_t map_size;
	long calls[CALLS];	/* the ioctls the module counts */
	int n[KINDS];
	/*
	 * On the heap: the ELF loader copies the test's .bss into the
	 * guest's slot 0, which three VMs' samples would outgrow.
	 */
	double (*s)[MAX_SAMPLES];
};

static struct bvm vms[3];	/* C, Rust, and with -m shared the shared bitmap */
static int nr_vms;
static char size_label[32];
static uint64_t npages, words;
static bool pretouch, wp_all, log_on, no_write, read_pass, clear_full;
static bool shared_mode, unmapped;
static int round_nr = 1;
static int profile_phase = -1;	/* KD_PROFILE_PHASE: next phase, or -1 */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* A phase of tools/tcg-profile's plugin; nothing without KD_PROFILE_PHASE. */
static void profile_mark(const char *name, long calls, double us)
{
	if (profile_phase >= 0)
		kd_phase_mark(profile_phase++, name, calls, us);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void add(struct bvm *v, int k, double x)
{
	TEST_ASSERT(v->n[k] < MAX_SAMPLES, "too many samples");
	v->s[k][v->n[k]++] = x;
}

/*
 * Prints the median, count, min and max of each VM's samples of kind k as
 * one RESULT line per path, and starts the next metric afresh.
 */
static void result(int k, const char *metric, const char *tags)
{
	int paths = 0;

	for (int i = 0; i < nr_vms; i++) {
		struct bvm *v = &vms[i];
		double *s = v->s[k], med;
		int n = v->n[k];

		if (!n)
			continue;
		paths++;
		qsort(s, n, sizeof(*s), cmp_double);
		med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
		printf("RESULT path=%s metric=%s size=%s%s%s value=%.3f n=%d min=%.3f max=%.3f\n",
		       v->path, metric, size_label, *tags ? " " : "", tags, med,
		       n, s[0], s[n - 1]);
		v->n[k] = 0;
	}
	TEST_ASSERT(paths, "%s: no samples", metric);
	fflush(stdout);
}

/* New VMs go to the Rust path (1) or stay on the C path (0). */
static void set_bind_vms(int on)
{
	FILE *f = fopen(BIND_VMS, "w");

	if (!f) {
		TEST_ASSERT(!on, "%s: %s (is kvm_dirty loaded?)", BIND_VMS,
			    strerror(errno));
		return;
	}
	fprintf(f, "%d\n", on);
	TEST_ASSERT(fclose(f) == 0, "writing %s: %s", BIND_VMS, strerror(errno));
}

/*
 * The test slot's bitmap, mapped as a VMM maps it to take its words; the
 * sizes are checked against what KVM_GET_DIRTY_LOG would copy.
 */
static void map_bitmap(struct bvm *v)
{
	struct kvm_dirty_bitmap_fd req = { .slot = SLOT };
	uint64_t page = getpagesize();

	v->map_fd = __vm_ioctl(v->vm, KVM_GET_DIRTY_BITMAP_FD, &req);
	TEST_ASSERT(v->map_fd >= 0, "KVM_GET_DIRTY_BITMAP_FD: %d errno %d",
		    v->map_fd, errno);
	TEST_ASSERT(req.npages == npages &&
		    req.mmap_size == (words * 8 + page - 1) / page * page,
		    "KVM_GET_DIRTY_BITMAP_FD: %llu pages, %llu bytes to map; want %lu, %lu",
		    req.npages, req.mmap_size, npages,
		    (words * 8 + page - 1) / page * page);
	v->map_size = req.mmap_size;
	v->map = mmap(NULL, v->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->map_fd, 0);
	TEST_ASSERT(v->map != MAP_FAILED, "mmap of the bitmap: errno %d", errno);
}

/*
 * A VM, its vCPU, and the test slot of `bytes` with dirty logging; the
 * binding is taken at creation, checked by the module's vms_bound counter.
 */
static void create_vm(struct bvm *v, uint64_t bytes, uint32_t ring_bytes,
		      uint64_t manual)
{
	enum vm_mem_backing_src_type src = pretouch ? VM_MEM_SRC_ANONYMOUS_THP :
						      VM_MEM_SRC_ANONYMOUS;
	long bound;

	v->s = calloc(KINDS, sizeof(*v->s));
	TEST_ASSERT(v->s, "out of memory");
	set_bind_vms(v->rust);
	bound = kd_counter("vms_bound");
#ifdef __x86_64__
	v->vm = __vm_create(VM_SHAPE_DEFAULT, 1, 0);
#else
	/*
	 * Room in slot 0 for the page tables that map the slot with 4K pages:
	 * libkvm reserves about 2 pages per 512 "extra" pages, minus what
	 * falls below its page-table floor (0x180000), so ask for twice.
	 */
	v->vm = __vm_create(VM_SHAPE_DEFAULT, 1, 2 * npages);
#endif
	if (v->rust)
		TEST_ASSERT(bound >= 0 && kd_counter("vms_bound") == bound + 1,
			    "Rust-path VM was not bound to kvm_dirty");
	else
		TEST_ASSERT(kd_counter("vms_bound") == bound,
			    "C-path VM was bound to kvm_dirty");
	if (ring_bytes)
		vm_enable_dirty_ring(v->vm, ring_bytes);
	if (manual)
		vm_enable_cap(v->vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, manual);
	if (wp_all && v->rust) {
		TEST_REQUIRE(vm_check_cap(v->vm, KVM_CAP_DIRTY_WP_ALL) == 1);
		vm_enable_cap(v->vm, KVM_CAP_DIRTY_WP_ALL,
			      KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	}
	/*
	 * After write-protect-all with NO_HARVEST_WP, which it requires, and
	 * before the test slot gets its dirty bitmap, which must be the
	 * module's to be mapped.
	 */
	if (v->shared) {
		TEST_REQUIRE(vm_check_cap(v->vm, KVM_CAP_DIRTY_SHARED_BITMAP) == 1);
		vm_enable_cap(v->vm, KVM_CAP_DIRTY_SHARED_BITMAP, 0);
	}
	v->vcpu = vm_vcpu_add(v->vm, 0, guest_code);
	vm_userspace_mem_region_add(v->vm, src, GPA, SLOT, npages,
				    log_on ? 0 : KVM_MEM_LOG_DIRTY_PAGES);
#ifdef __x86_64__
	virt_map_level(v->vm, GPA, GPA, bytes, PG_LEVEL_2M);
#else
	/* arm64's selftest library maps with the guest mode's pages only. */
	virt_map(v->vm, GPA, GPA, npages);
#endif
	/*
	 * Allocate the slot's memory up front (huge pages where THP can) so
	 * the guest's first writes cost a KVM fault, not also a page
	 * allocation: only the untimed guest phase gets faster.
	 */
	if (pretouch) {
		uint8_t *hva = addr_gpa2hva(v->vm, GPA);

		for (uint64_t off = 0; off < bytes; off += PAGE)
			WRITE_ONCE(hva[off], 0);
	}
	g_npages = npages;
	sync_global_to_guest(v->vm, g_npages);
	v->bitmap = calloc(words, 8);
	TEST_ASSERT(v->bitmap, "out of memory");
	if (ring_bytes)
		v->ring = vcpu_map_dirty_ring(v->vcpu);
	if (v->shared)
		map_bitmap(v);
}

/*
 * The guest writes `count` pages from `first`, `stride` apart (mod npages),
 * or with `reading` reads them.
 */
static void guest_touch(struct bvm *v, uint64_t first, uint64_t stride,
			uint64_t count, bool reading)
{
	struct ucall uc;

	g_read = reading;
	sync_global_to_guest(v->vm, g_read);
	g_first = first;
	g_stride = stride;
	g_count = count;
	g_pass++;
	sync_global_to_guest(v->vm, g_first);
	sync_global_to_guest(v->vm, g_stride);
	sync_global_to_guest(v->vm, g_count);
	sync_global_to_guest(v->vm, g_pass);
	vcpu_run(v->vcpu);
	TEST_ASSERT(get_ucall(v->vcpu, &uc) == UCALL_SYNC,
		    "guest exit %d (%s), not a sync", v->vcpu->run->exit_reason,
		    exit_reason_str(v->vcpu->run->exit_reason));
}

static void guest_dirty(struct bvm *v, uint64_t first, uint64_t stride,
			uint64_t count)
{
	guest_touch(v, first, stride, count, false);
}

/*
 * The j-th VM to use in step i: the VMs take turns going first, and which
 * starts moves on with the round (-r), for steps done once.
 */
static struct bvm *turn(int i, int j)
{
	return &vms[(i + j + round_nr + 1) % nr_vms];
}

static uint64_t popcount(const uint64_t *bitmap)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < words; i++)
		n += __builtin_popcountll(bitmap[i]);
	return n;
}

static double time_get(struct bvm *v)
{
	struct kvm_dirty_log log = { .slot = SLOT, .dirty_bitmap = v->bitmap };
	double t0 = now_us(), t1;
	int r = __vm_ioctl(v->vm, KVM_GET_DIRTY_LOG, &log);

	t1 = now_us();
	TEST_ASSERT(!r, "KVM_GET_DIRTY_LOG: %d errno %d", r, errno);
	v->calls[GET]++;
	return t1 - t0;
}

/* CLEAR of the pages set in @bitmap (of @num pages from @first). */
static double time_clear_bitmap(struct bvm *v, uint64_t first, uint32_t num,
				uint64_t *bitmap)
{
	struct kvm_clear_dirty_log log = {
		.slot = SLOT, .first_page = first, .num_pages = num,
		.dirty_bitmap = bitmap,
	};
	double t0 = now_us(), t1;
	int r = __vm_ioctl(v->vm, KVM_CLEAR_DIRTY_LOG, &log);

	t1 = now_us();
	TEST_ASSERT(!r, "KVM_CLEAR_DIRTY_LOG: %d errno %d", r, errno);
	v->calls[CLEAR]++;
	return t1 - t0;
}

static double time_clear(struct bvm *v, uint64_t first, uint32_t num)
{
	uint64_t ones = ~0ull;

	return time_clear_bitmap(v, first, num, &ones);
}

/* Two clock reads back to back: a control, the same code on both sides. */
static void bench_clock(const char *metric)
{
	for (int i = 0; i < 200; i++)
		for (int j = 0; j < nr_vms; j++) {
			double t0 = now_us();

			add(turn(i, j), 0, now_us() - t0);
		}
	result(0, metric, "");
}

static void wp_all_mem(struct bvm *v)
{
	vm_ioctl(v->vm, KVM_WRITE_PROTECT_ALL_MEM, NULL);
	v->calls[WPALL]++;
}

/*
 * One harvest round: a GET, and with -m wpall on the Rust VM, the
 * KVM_WRITE_PROTECT_ALL_MEM its GET (without write-protect) asks for.
 */
static double time_round(struct bvm *v)
{
	double t0 = now_us(), t1;

	time_get(v);
	if (wp_all && v->rust)
		wp_all_mem(v);
	t1 = now_us();
	return t1 - t0;
}

/* -m get and -m wpall: rounds at each dirty share, and the guest's writes. */
static void bench_get(const char *dirty, int zero_calls, int reps, int full_reps)
{
	char *list = strdup(dirty), *tok, *save, tags[64];
	const char *metric = wp_all ? "round_us" : "get_us";

	TEST_ASSERT(list, "out of memory");
	/* -m wpall: map every page and protect it once, untimed. */
	for (int j = 0; wp_all && j < nr_vms; j++) {
		guest_dirty(&vms[j], 0, 1, npages);
		time_round(&vms[j]);
	}
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int pct = atoi(tok), n;
		uint64_t stride = pct ? 100 / pct : 0, count = pct ? npages / stride : 0;

		TEST_ASSERT(pct == 0 || pct == 1 || pct == 100, "dirty %d%%: 0, 1 or 100", pct);
		n = pct == 0 ? zero_calls : pct == 1 ? reps : full_reps;
		if (pct == 0)
			bench_clock("clock_us");
		for (int i = 0; i < n; i++)
			for (int j = 0; j < nr_vms; j++) {
				struct bvm *v = turn(i, j);
				double t0 = now_us();

				/* -R: the guest first reads every page. */
				if (read_pass && pct) {
					guest_touch(v, 0, 1, npages, true);
					add(v, 2, now_us() - t0);
					t0 = now_us();
				}
				if (pct)
					guest_dirty(v, 0, stride, count);
				add(v, 1, now_us() - t0);
				add(v, 0, time_round(v));
				TEST_ASSERT(popcount(v->bitmap) == count,
					    "%s %s at %d%%: %lu pages dirty, want %lu",
					    v->path, metric, pct, popcount(v->bitmap), count);
			}
		snprintf(tags, sizeof(tags), "dirty=%d", pct);
		result(0, metric, tags);
		/* -m wpall: the guest's side, its writes after a round. */
		if (wp_all && pct && read_pass) {
			result(2, "read_us", tags);
			snprintf(tags, sizeof(tags), "dirty=%d after=read", pct);
		}
		if (wp_all && pct)
			result(1, "write_us", tags);
		for (int j = 0; j < nr_vms; j++)
			vms[j].n[1] = 0;
	}
	free(list);
}

/*
 * -m shared: the VMM's scan of a bitmap as Documentation/shared-bitmap.rst
 * gives it: a plain load first, so that clean words are only read, and an
 * atomic exchange of a dirty word, so that a bit KVM sets meanwhile is
 * taken by this scan or the next, never lost.  Every word goes to @out, so
 * that the VMM holds what a GET would have copied out and the three paths
 * end with the same bitmap.  Not inlined: the mapping and anonymous memory
 * run the same instructions.
 */
static noinline void scan_words(uint64_t *src, uint64_t *out, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t w = __atomic_load_n(&src[i], __ATOMIC_RELAXED);

		out[i] = w ? __atomic_exchange_n(&src[i], 0, __ATOMIC_SEQ_CST) : 0;
	}
}

/*
 * A plain read of @n words, the least any scan of them costs; the compiler
 * may vectorize it, as it would any plain read.
 */
static noinline uint64_t read_words(const uint64_t *src, uint64_t n)
{
	uint64_t x = 0;

	for (uint64_t i = 0; i < n; i++)
		x ^= src[i];
	return x;
}

/* read_words()'s result, stored so that its reads are not optimized out. */
static uint64_t read_sink;

/* Sets in @want the pages guest_dirty(v, first, stride, count) writes. */
static void expect(uint64_t *want, uint64_t first, uint64_t stride,
		   uint64_t count)
{
	uint64_t off = first;

	memset(want, 0, words * 8);
	for (uint64_t i = 0; i < count; i++) {
		want[off / 64] |= 1ull << (off % 64);
		off += stride;
		if (off >= npages)
			off -= npages;
	}
}

/*
 * -m shared: one dirty sync, leaving the pages to copy in v->bitmap; in
 * @harvest the part that takes the bits (the scan, or the Rust path's GET
 * without write-protect; the C path's GET takes and protects at once).
 */
static double time_sync(struct bvm *v, double *harvest)
{
	double t0 = now_us(), t1, t2;

	if (v->shared)
		scan_words(v->map, v->bitmap, words);
	else
		time_get(v);
	t1 = now_us();
	/*
	 * After the scan, never before it: a page written after a
	 * write-protect-all that a later scan takes could be written again,
	 * unprotected and unreported, after the copy ("The protocol").
	 */
	if (v->rust)
		wp_all_mem(v);
	t2 = now_us();
	*harvest = t1 - t0;
	return t2 - t0;
}

/* The sync gave exactly the pages the guest wrote since the last one. */
static void check_sync(struct bvm *v, const uint64_t *want, int pct)
{
	TEST_ASSERT(!memcmp(v->bitmap, want, words * 8),
		    "%s sync at %d%%: %lu pages dirty, want %lu (or other pages)",
		    v->path, pct, popcount(v->bitmap), popcount(want));
}

static bool have_samples(int k)
{
	for (int i = 0; i < nr_vms; i++)
		if (vms[i].n[k])
			return true;
	return false;
}

/*
 * -m shared: syncs of the shared bitmap, the Rust path's write-protect-all
 * round and the C path's classic GET, alternating, at each dirty share;
 * after each sync of the shared bitmap, its scan's rate against the same
 * scan and a plain read of anonymous memory holding the same words.
 */
static void bench_shared(const char *dirty, int zero_calls, int reps,
			 int full_reps)
{
	uint64_t bytes = words * 8, *want = calloc(words, 8), *out = calloc(words, 8);
	uint64_t *anon = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *list = strdup(dirty), *tok, *save, tags[64];
	double harvest;

	TEST_ASSERT(want && out && list && anon != MAP_FAILED, "out of memory");
	/* Faulted in now, so that no timed read of it takes a page fault. */
	memset(anon, 0, bytes);
	/*
	 * Untimed: every page written and synced once (but with -U), so that
	 * each round's write-protect-all finds the slot mapped as a running
	 * guest's is; and the mapping's pages faulted in by a first scan, as
	 * a VMM's are after its first sync.
	 */
	expect(want, 0, 1, unmapped ? 0 : npages);
	for (int j = 0; j < nr_vms; j++) {
		if (!unmapped)
			guest_dirty(&vms[j], 0, 1, npages);
		time_sync(&vms[j], &harvest);
		check_sync(&vms[j], want, unmapped ? 0 : 100);
	}
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int pct = atoi(tok), n;
		uint64_t stride = pct ? 100 / pct : 0, count = pct ? npages / stride : 0;

		TEST_ASSERT(pct == 0 || pct == 1 || pct == 100, "dirty %d%%: 0, 1 or 100", pct);
		n = pct == 0 ? zero_calls : pct == 1 ? reps : full_reps;
		expect(want, 0, stride, count);
		if (pct == 0)
			bench_clock("shared_clock_us");
		for (int i = 0; i < n; i++)
			for (int j = 0; j < nr_vms; j++) {
				struct bvm *v = turn(i, j);
				double t0;

				/* The words the mapping's scan will find. */
				if (v->shared)
					memcpy(anon, want, bytes);
				if (pct)
					guest_dirty(v, 0, stride, count);
				add(v, 0, time_sync(v, &harvest));
				check_sync(v, want, pct);
				if (!v->rust)
					continue;
				add(v, 1, harvest);
				if (!v->shared)
					continue;
				TEST_ASSERT(harvest > 0, "a scan in no time");
				add(v, 2, bytes / harvest / 1e3);
				t0 = now_us();
				scan_words(anon, out, words);
				add(v, 3, bytes / (now_us() - t0) / 1e3);
				TEST_ASSERT(!memcmp(out, want, bytes),
					    "scan of anonymous memory: %lu pages, want %lu",
					    popcount(out), popcount(want));
				t0 = now_us();
				WRITE_ONCE(read_sink, read_words(anon, words));
				add(v, 4, bytes / (now_us() - t0) / 1e3);
			}
		snprintf(tags, sizeof(tags), "dirty=%d", pct);
		result(0, "shared_sync_us", tags);
		if (have_samples(1))
			result(1, "shared_harvest_us", tags);
		if (!have_samples(2))
			continue;
		snprintf(tags, sizeof(tags), "dirty=%d src=map", pct);
		result(2, "shared_gbps", tags);
		snprintf(tags, sizeof(tags), "dirty=%d src=anon", pct);
		result(3, "shared_gbps", tags);
		snprintf(tags, sizeof(tags), "dirty=%d src=read", pct);
		result(4, "shared_gbps", tags);
	}
	munmap(anon, bytes);
	free(want);
	free(out);
	free(list);
}

/*
 * -m logon: dirty logging turned on for a slot the guest has fully mapped,
 * then the guest's writes of every page, and on the Rust VM a WP-all of all
 * of it; logging off and every page rewritten (untimed) between reps.
 */
static void bench_logon(int reps)
{
	for (int j = 0; j < nr_vms; j++)
		guest_dirty(&vms[j], 0, 1, npages);
	for (int i = 0; i < reps; i++)
		for (int j = 0; j < nr_vms; j++) {
			struct bvm *v = turn(i, j);
			double t0 = now_us();

			vm_mem_region_set_flags(v->vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES);
			add(v, 0, now_us() - t0);
			if (!no_write) {
				t0 = now_us();
				guest_dirty(v, 0, 1, npages);
				add(v, 1, now_us() - t0);
			}
			if (v->rust) {
				t0 = now_us();
				wp_all_mem(v);
				add(v, 2, now_us() - t0);
			}
			time_get(v);
			TEST_ASSERT(popcount(v->bitmap) == (no_write ? 0 : npages),
				    "%s: %lu pages dirty, %lu written",
				    v->path, popcount(v->bitmap),
				    no_write ? 0 : npages);
			vm_mem_region_set_flags(v->vm, SLOT, 0);
			guest_dirty(v, 0, 1, npages);
		}
	/*
	 * -W: every log-on finds the slot mapped as the guest's writes with
	 * logging off left it (huge where THP); without, the reps after the
	 * first find what the logged writes split (4K on arm64).
	 */
	result(0, "log_on_us", no_write ? "writes=0" : "");
	if (!no_write)
		result(1, "log_on_write_us", "");
	/* The Rust VM's alone: the C path has no such ioctl. */
	for (int j = 0; j < nr_vms; j++)
		if (vms[j].rust)
			result(2, "wpall_us", no_write ? "mapped=all writes=0" : "mapped=all");
}

static void bench_clear(uint64_t populate, int passes)
{
	uint64_t chunks = populate / 64, empty_first = npages - chunks * 64;
	int i, j;

	TEST_ASSERT(chunks && populate % 64 == 0 && populate * 2 <= npages,
		    "-P %lu: a multiple of 64, at most half the slot", populate);

	/* KVM_DIRTY_LOG_INITIALLY_SET: every bit is set, nothing protected. */
	for (i = 0; i < 10; i++)
		for (j = 0; j < nr_vms; j++) {
			struct bvm *v = turn(i, j);

			add(v, 0, time_get(v));
			TEST_ASSERT(popcount(v->bitmap) == npages,
				    "initially set: %lu of %lu bits",
				    popcount(v->bitmap), npages);
		}
	result(0, "get_manual_us", "dirty=100");

	for (int pass = 0; pass < passes; pass++) {
		/* Present, writable, dirty: each CLEAR write-protects 64 pages. */
		for (j = 0; j < nr_vms; j++)
			guest_dirty(&vms[j], 0, 1, populate);
		for (uint64_t c = 0; c < chunks; c++)
			for (j = 0; j < nr_vms; j++) {
				struct bvm *v = turn(c, j);

				add(v, 0, time_clear(v, c * 64, 64));
			}
		/* Dirty bits (initially set) over pages never mapped. */
		if (pass == 0)
			for (uint64_t c = 0; c < chunks; c++)
				for (j = 0; j < nr_vms; j++) {
					struct bvm *v = turn(c, j);

					add(v, 1, time_clear(v, empty_first + c * 64, 64));
				}
	}
	result(0, "clear_us", "pages=64");
	result(1, "clear_empty_us", "pages=64");
}

/*
 * -m clear -F: the guest writes every page, then one CLEAR of the whole slot
 * write-protects them all (clear_us dirty=100), -N times after one untimed
 * pass (which splits what initially-set left mapped huge).
 */
static void bench_clear_full(int reps)
{
	uint64_t *ones = malloc(words * sizeof(uint64_t));

	TEST_ASSERT(ones, "out of memory");
	memset(ones, 0xff, words * sizeof(uint64_t));
	for (int i = -1; i < reps; i++)
		for (int j = 0; j < nr_vms; j++) {
			struct bvm *v = turn(i < 0 ? 0 : i, j);
			double t;

			guest_dirty(v, 0, 1, npages);
			t = time_clear_bitmap(v, 0, npages, ones);
			if (i >= 0)
				add(v, 0, t);
		}
	result(0, "clear_us", "dirty=100");
	free(ones);
}

/* Marks every DIRTY entry from v->fetch on harvested; returns how many. */
static uint32_t harvest(struct bvm *v, uint32_t entries)
{
	uint32_t n = 0;

	for (;;) {
		struct kvm_dirty_gfn *e = &v->ring[v->fetch % entries];

		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			return n;
		TEST_ASSERT(e->slot == SLOT, "entry for slot %u", e->slot);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		v->fetch++;
		n++;
	}
}

static void bench_ring(uint32_t entries, uint64_t stride, int reps)
{
	uint32_t count = entries / 2;
	char tags[64];

	for (int i = 0; i < reps; i++)
		for (int j = 0; j < nr_vms; j++) {
			struct bvm *v = turn(i, j);
			uint32_t n;
			double t0, t1;
			int r;

			guest_dirty(v, 0, stride, count);
			n = harvest(v, entries);
			TEST_ASSERT(n == count, "ring: %u entries, want %u", n, count);
			profile_mark("fill", 0, 0);
			t0 = now_us();
			r = __vm_ioctl(v->vm, KVM_RESET_DIRTY_RINGS, NULL);
			t1 = now_us();
			profile_mark(v->rust ? "ring-rust" : "ring-c", 1, t1 - t0);
			TEST_ASSERT(r == (int)n, "KVM_RESET_DIRTY_RINGS: %d (errno %d), want %u",
				    r, errno, n);
			v->calls[RESET]++;
			add(v, 0, t1 - t0);
			add(v, 1, n / ((t1 - t0) / 1e6));
		}
	snprintf(tags, sizeof(tags), "entries=%u stride=%lu", entries, stride);
	result(0, "ring_reset_us", tags);
	result(1, "ring_reset_eps", tags);
}

/*
 * -m shared, after every VM was freed: each shared bitmap VM enabled the
 * capability, got one descriptor and one bitmap (its test slot's: slot 0
 * has no dirty logging), which the VM's end freed; every page mapped was
 * mapped by the module's fault handler (once, but counting each fault
 * would make the check depend on how the kernel keeps the mapping).
 */
static void check_shared_counters(const long *before, uint64_t map_pages)
{
	long moved[SBM_COUNTERS], nr = 0;

	for (int i = 0; i < nr_vms; i++)
		nr += vms[i].shared;
	for (int i = 0; i < SBM_COUNTERS; i++)
		moved[i] = kd_counter(sbm_counter[i]) - before[i];
	TEST_ASSERT(moved[SBM_VMS] == nr && moved[SBM_FDS] == nr &&
		    moved[SBM_ALLOCS] == nr && moved[SBM_FREES] == nr,
		    "shared bitmaps: %ld VMs, %ld descriptors, %ld allocated, %ld freed; want %ld each",
		    moved[SBM_VMS], moved[SBM_FDS], moved[SBM_ALLOCS],
		    moved[SBM_FREES], nr);
	TEST_ASSERT(moved[SBM_FAULTS] >= (long)map_pages,
		    "shared bitmaps: %ld pages mapped by the fault handler, %lu scanned",
		    moved[SBM_FAULTS], map_pages);
}

static void help(const char *name)
{
	fprintf(stderr,
		"%s [-p c|rust|both|shared] [-r round] -m get|clear|ring|wpall|logon|shared -s SIZE [-T] [options]\n"
		"  get:   -d 0,1,100 (dirty %%)  -z calls at 0%%  -n reps at 1%%  -N reps at 100%%\n"
		"  clear: -P pages written (multiple of 64)  -n passes;\n"
		"         -F instead: every page written, one CLEAR of the slot, -N reps\n"
		"  ring:  -e ring entries  -S page stride  -n reps\n"
		"  wpall: as get; -R the guest reads every page before its writes\n"
		"  logon: -n reps  -W no guest writes after logging on\n"
		"  shared: as get; -U no untimed write of every page first\n", name);
	exit(KSFT_FAIL);
}

int main(int argc, char *argv[])
{
	const char *mode = NULL, *dirty = "0,1", *paths = "both";
	uint64_t bytes = 0, stride = 1, populate = 4096;
	int reps = 10, full_reps = 1, zero_calls = 20, opt, i;
	uint32_t entries = 4096;
	long before[CALLS], rust_calls[CALLS] = { 0 };
	long sbm_before[SBM_COUNTERS];
	uint64_t map_pages = 0;
	const char *phase_env = getenv("KD_PROFILE_PHASE");

	while ((opt = getopt(argc, argv, "p:m:s:d:z:n:N:P:e:S:FTWRUr:")) != -1) {
		switch (opt) {
		case 'p':
			paths = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 's':
			bytes = parse_size(optarg);
			break;
		case 'd':
			dirty = optarg;
			break;
		case 'z':
			zero_calls = atoi_positive("-z", optarg);
			break;
		case 'n':
			reps = atoi_positive("-n", optarg);
			break;
		case 'N':
			full_reps = atoi_positive("-N", optarg);
			break;
		case 'P':
			populate = atoi_positive("-P", optarg);
			break;
		case 'e':
			entries = atoi_positive("-e", optarg);
			break;
		case 'S':
			stride = atoi_positive("-S", optarg);
			break;
		case 'T':
			pretouch = true;
			break;
		case 'W':
			no_write = true;
			break;
		case 'F':
			clear_full = true;
			break;
		case 'R':
			read_pass = true;
			break;
		case 'U':
			unmapped = true;
			break;
		case 'r':
			round_nr = atoi_positive("-r", optarg);
			break;
		default:
			help(argv[0]);
		}
	}
	if (!mode || !bytes)
		help(argv[0]);
	if (phase_env)
		profile_phase = atoi(phase_env);
	TEST_ASSERT(!read_pass || !strcmp(mode, "wpall"), "-R: with -m wpall only");
	shared_mode = !strcmp(mode, "shared");
	TEST_ASSERT(!unmapped || shared_mode, "-U: with -m shared only");
	TEST_ASSERT(!strcmp(paths, "c") || !strcmp(paths, "rust") ||
		    !strcmp(paths, "both") || (shared_mode && !strcmp(paths, "shared")),
		    "-p: c, rust or both, or shared with -m shared");
	if (!strcmp(paths, "c") || !strcmp(paths, "both"))
		vms[nr_vms++] = (struct bvm){ .path = "c" };
	if (!strcmp(paths, "rust") || !strcmp(paths, "both"))
		vms[nr_vms++] = (struct bvm){ .path = "rust", .rust = true };
	if (shared_mode && (!strcmp(paths, "shared") || !strcmp(paths, "both")))
		vms[nr_vms++] = (struct bvm){ .path = "shared", .rust = true,
					      .shared = true };
	TEST_ASSERT(bytes % (2ul << 20) == 0 && bytes <= (4ul << 30),
		    "-s: a multiple of 2M, at most 4G");
	npages = bytes / PAGE;
	words = (npages + 63) / 64;
	if (bytes % (1ul << 30) == 0)
		snprintf(size_label, sizeof(size_label), "%luG", bytes >> 30);
	else
		snprintf(size_label, sizeof(size_label), "%luM", bytes >> 20);

	if (!strcmp(mode, "get")) {
		for (i = 0; i < nr_vms; i++)
			create_vm(&vms[i], bytes, 0, 0);
	} else if (!strcmp(mode, "clear")) {
		TEST_REQUIRE(kvm_has_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2));
		for (i = 0; i < nr_vms; i++)
			create_vm(&vms[i], bytes, 0, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
				  KVM_DIRTY_LOG_INITIALLY_SET);
	} else if (!strcmp(mode, "wpall")) {
		wp_all = true;
		for (i = 0; i < nr_vms; i++)
			create_vm(&vms[i], bytes, 0, 0);
	} else if (shared_mode) {
		wp_all = true;
		for (i = 0; i < SBM_COUNTERS; i++)
			sbm_before[i] = kd_counter(sbm_counter[i]);
		for (i = 0; i < nr_vms; i++)
			create_vm(&vms[i], bytes, 0, 0);
	} else if (!strcmp(mode, "logon")) {
		wp_all = log_on = true;
		for (i = 0; i < nr_vms; i++)
			create_vm(&vms[i], bytes, 0, 0);
	} else if (!strcmp(mode, "ring")) {
		/* arm64 offers the rings with acquire/release only. */
		TEST_REQUIRE(kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) ||
			     kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL));
		TEST_ASSERT(entries >= 1024 && !(entries & (entries - 1)),
			    "-e: a power of two, at least 1024");
		for (i = 0; i < nr_vms; i++)
			create_vm(&vms[i], bytes, entries * sizeof(struct kvm_dirty_gfn), 0);
	} else {
		help(argv[0]);
	}

	for (i = 0; i < CALLS; i++)
		before[i] = kd_counter(counter[i]);
	if (shared_mode)
		bench_shared(dirty, zero_calls, reps, full_reps);
	else if (log_on)
		bench_logon(reps);
	else if (!strcmp(mode, "get") || wp_all)
		bench_get(dirty, zero_calls, reps, full_reps);
	else if (!strcmp(mode, "clear") && clear_full)
		bench_clear_full(full_reps);
	else if (!strcmp(mode, "clear"))
		bench_clear(populate, reps);
	else
		bench_ring(entries, stride, reps);
	/*
	 * Every call of the Rust VMs, and none of the C VM's, reached Rust;
	 * the shared bitmap's VM made no GET, so its syncs took no ioctl but
	 * the write-protect-all.
	 */
	for (i = 0; i < nr_vms; i++)
		for (int k = 0; k < CALLS; k++)
			if (vms[i].rust)
				rust_calls[k] += vms[i].calls[k];
	for (i = 0; i < CALLS; i++)
		TEST_ASSERT(kd_counter(counter[i]) - before[i] == rust_calls[i],
			    "%s moved by %ld, the Rust VMs made %ld such calls",
			    counter[i], kd_counter(counter[i]) - before[i], rust_calls[i]);
	for (i = 0; i < nr_vms; i++) {
		if (vms[i].shared) {
			map_pages += vms[i].map_size / getpagesize();
			TEST_ASSERT(!munmap(vms[i].map, vms[i].map_size) &&
				    !close(vms[i].map_fd), "unmapping the bitmap");
		}
		kvm_vm_free(vms[i].vm);
	}
	if (shared_mode)
		check_shared_counters(sbm_before, map_pages);
	return 0;
}
