// SPDX-License-Identifier: GPL-2.0
/*
 * The dirty bitmap shared with user space (KVM_CAP_DIRTY_SHARED_BITMAP,
 * KVM_GET_DIRTY_BITMAP_FD; Documentation/shared-bitmap.rst), driven by a
 * VMM that does everything the interface allows and much it refuses.  What
 * the document promises is checked case by case, each printing "ok: ..." or
 * failing with what was seen and what was wanted:
 *
 * - every errno of its three tables (the capability, the ioctl, mmap(2)),
 *   and read(2)/pread(2)'s refusals, in the order the ioctl's are checked;
 * - the mapping's flags: MAP_PRIVATE and PROT_EXEC refused, mprotect(2)
 *   cannot add PROT_EXEC, no mapping in a child after fork(2), and after
 *   MADV_DOFORK a child's mapping that takes bits from the same bitmap and
 *   is revoked with the parent's; mremap(2) cannot grow it, a moved or
 *   shrunk mapping still works and is still revoked;
 * - other processes (a forked child, a process the descriptor was passed
 *   to over SCM_RIGHTS): mmap(2) and read(2) fail with EIO;
 * - the guest writes known pages: a scan of the mapping (an exchange per
 *   word) sees exactly those bits, byte for byte, and the round after a
 *   KVM_WRITE_PROTECT_ALL_MEM exactly the pages written after it; GET and
 *   the scan report each page once between them; read(2) takes words as
 *   the scan does, and a read(2) whose copy to user space fails loses no
 *   bit;
 * - retirement by slot delete, by logging turned off and by closing the
 *   VM: every mapping raises SIGBUS (BUS_ADRERR at the address touched),
 *   mmap(2) fails with ENODEV, read(2) still returns the pages written
 *   after the last scan; a moved slot keeps its bitmap and mappings;
 * - a slot deleted while another thread reads its mapping in a loop: the
 *   reader sees the bitmap as it is, then SIGBUS; with exchanges, its bits
 *   and those read(2) drains afterwards are the guest's, each once.
 *
 * At the end it prints "expect COUNTER N" for the module's counters this
 * run must have moved by exactly N (shared_bitmap.sh compares them), and
 * "expect_min COUNTER N" for those it must have moved by at least N.
 *
 *   (no option)  the test above; exits 4 (skip) if the VM does not offer
 *                the capability
 *   -c           a VM on KVM's C path: no capability, the ioctl unknown
 *   -H           hold a bitmap's file open after its VM is closed, say
 *                "held", and wait for SIGTERM; then read it and close it
 *                (shared_bitmap.sh tries rmmod meanwhile)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kd_counters.h"
#include "kd_run.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP	4
#endif

#define SLOT_MAIN	1
#define SLOT_DEL	2
#define SLOT_RACE	3
#define GVA_MAIN	0xc0000000ul
#define GVA_DEL		(GVA_MAIN + (1ul << 28))
#define GVA_RACE	(GVA_MAIN + (2ul << 28))
#define GVA_MOVED	(GVA_MAIN + (3ul << 28))
#define RACE_PAGES	(4096 + 37)	/* a last word only partly pages */
#define RACE_ROUNDS	16
#define MAX_LIST	512

/* Shared with the guest: write one word into each listed page of the slot at g_base. */
static uint64_t g_base, g_count, g_pass, g_psize;
static uint64_t g_list[MAX_LIST];

static void guest_code(void)
{
	uint64_t i;

	for (;;) {
		for (i = 0; i < READ_ONCE(g_count); i++)
			WRITE_ONCE(*(uint64_t *)(g_base + g_list[i] * g_psize),
				   g_pass);
		GUEST_SYNC(0);
	}
}

/*
 * What this run must move the module's counters by; each is counted where
 * the test does what moves it.
 */
static struct {
	long vms, allocs, fds, maps, map_refused, sigbus, zaps;
	long read_words, read_pages, read_restored, wp_all, gets, marks;
} exp;

static long psize;		/* host page: the mapping's unit */
static uint64_t npages;		/* pages of the main and the deleted slot */

static void __noreturn __printf(2, 3) fail_at(int line, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL (line %d): ", line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	/* _exit: a forked child must not run the parent's exit handlers. */
	_exit(1);
}
#define FAIL(...)	fail_at(__LINE__, __VA_ARGS__)
#define CHECK(cond, ...) do { if (!(cond)) FAIL(__VA_ARGS__); } while (0)

static void __printf(1, 2) ok(const char *fmt, ...)
{
	va_list ap;

	printf("ok: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* A call that must fail with @want; the call's errno is taken at once. */
static void check_err(int line, long r, int err, int want, const char *what)
{
	if (r == -1 && err == want) {
		ok("%s: %s", what, strerrorname_np(want));
		return;
	}
	if (r == -1)
		fail_at(line, "%s: failed with %s (%s), want %s", what,
			strerrorname_np(err), strerror(err), strerrorname_np(want));
	fail_at(line, "%s: returned %ld, want -1 with %s", what, r,
		strerrorname_np(want));
}
#define WANT_ERR(call, want, what) do {					\
	long __r;							\
	errno = 0;							\
	__r = (long)(call);						\
	check_err(__LINE__, __r, errno, want, what);			\
} while (0)

/* Bitmap geometry, as the document defines it. */
static uint64_t live_words(uint64_t pages)
{
	return (pages + 63) / 64;
}

static uint64_t map_bytes(uint64_t pages)
{
	return (live_words(pages) * 8 + psize - 1) / psize * psize;
}

/*
 * SIGBUS and SIGSEGV, caught around one access at a time, per thread: the
 * handler jumps back to the access's thread, with what the signal said.
 */
struct catcher {
	sigjmp_buf jb;
};

static __thread struct catcher *fault_catcher;
static __thread int fault_sig, fault_code;
static __thread void *fault_addr;

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
	if (!fault_catcher) {
		/* Not a probe: die of it, as without a handler. */
		signal(sig, SIG_DFL);
		return;
	}
	fault_sig = sig;
	fault_code = si->si_code;
	fault_addr = si->si_addr;
	siglongjmp(fault_catcher->jb, 1);
}

enum access { LOAD, XCHG, WRITE };

/* One access to @p: 0 if it went through (the word in *@val), else the signal. */
static int probe(uint64_t *p, enum access how, uint64_t *val)
{
	uint64_t dummy, *out = val ? val : &dummy;
	struct catcher c;

	if (sigsetjmp(c.jb, 1)) {
		fault_catcher = NULL;
		return fault_sig;
	}
	fault_catcher = &c;
	switch (how) {
	case LOAD:
		*out = __atomic_load_n(p, __ATOMIC_RELAXED);
		break;
	case XCHG:
		*out = __atomic_exchange_n(p, 0, __ATOMIC_SEQ_CST);
		break;
	case WRITE:
		/* A write access that changes no bit. */
		*out = __atomic_fetch_or(p, 0, __ATOMIC_SEQ_CST);
		break;
	}
	fault_catcher = NULL;
	return 0;
}

static const char *const access_name[] = { "load", "exchange", "write" };

/* The access must raise @sig with @code at @p itself. */
static void want_signal(uint64_t *p, enum access how, int sig, int code,
			const char *what)
{
	int got = probe(p, how, NULL);

	if (got != sig || fault_code != code || fault_addr != p)
		FAIL("%s: a %s at %p got signal %d (%s) code %d at %p, want %s code %d at the address",
		     what, access_name[how], p, got, got ? strsignal(got) : "none",
		     got ? fault_code : 0, got ? fault_addr : NULL,
		     strsignal(sig), code);
	ok("%s: %s at the address (%s)", what, sig == SIGBUS ? "SIGBUS" : "SIGSEGV",
	   access_name[how]);
}

static void want_sigbus(uint64_t *p, enum access how, const char *what)
{
	want_signal(p, how, SIGBUS, BUS_ADRERR, what);
	exp.sigbus++;
}

/* The access must go through; returns the word. */
static uint64_t must_access(uint64_t *p, enum access how, const char *what)
{
	uint64_t v = 0;
	int sig = probe(p, how, &v);

	if (sig)
		FAIL("%s: a %s at %p got signal %d (%s) code %d, want none",
		     what, access_name[how], p, sig, strsignal(sig), fault_code);
	return v;
}

/* The protocol's take: a plain load first, an exchange only of a dirty word. */
static uint64_t take(uint64_t *w)
{
	if (!__atomic_load_n(w, __ATOMIC_RELAXED))
		return 0;
	return __atomic_exchange_n(w, 0, __ATOMIC_SEQ_CST);
}

static void scan(uint64_t *map, uint64_t *out, uint64_t words)
{
	for (uint64_t i = 0; i < words; i++)
		out[i] = take(&map[i]);
}

static uint64_t popcount(const uint64_t *bm, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < words; i++)
		n += __builtin_popcountll(bm[i]);
	return n;
}

/* @got must be @want, byte for byte, over @words words. */
static void want_bits(const uint64_t *got, const uint64_t *want, uint64_t words,
		      const char *what)
{
	uint64_t i, first = words, missing = 0, extra = 0;

	for (i = 0; i < words; i++) {
		if (got[i] == want[i])
			continue;
		if (first == words)
			first = i;
		missing += __builtin_popcountll(want[i] & ~got[i]);
		extra += __builtin_popcountll(got[i] & ~want[i]);
	}
	if (first != words)
		FAIL("%s: word %lu is %#lx, want %#lx; %lu pages written but not reported, %lu reported but not written",
		     what, first, got[first], want[first], missing, extra);
	ok("%s: %lu pages over %lu words, exactly those written", what,
	   popcount(want, words), words);
}

/* A set of pages for the guest to write, and its bitmap. */
struct pageset {
	uint64_t n;
	uint64_t page[MAX_LIST];
};

/*
 * @nrandom random pages of @pages, and with @edges the first and last
 * pages, the pages around the first word boundary and, if the bitmap has a
 * second host page, around the boundary between the two.
 */
static void pick(struct pageset *s, uint64_t pages, unsigned int nrandom,
		 bool edges)
{
	const uint64_t bits_per_page = psize * 8;

	s->n = 0;
	if (edges) {
		s->page[s->n++] = 0;
		s->page[s->n++] = 63;
		s->page[s->n++] = 64;
		s->page[s->n++] = pages - 1;
		if (pages > bits_per_page) {
			s->page[s->n++] = bits_per_page - 1;
			s->page[s->n++] = bits_per_page;
		}
	}
	while (nrandom-- && s->n < MAX_LIST)
		s->page[s->n++] = random() % pages;
}

static void set_bits(const struct pageset *s, uint64_t *bm, uint64_t words)
{
	memset(bm, 0, words * 8);
	for (uint64_t i = 0; i < s->n; i++)
		bm[s->page[i] / 64] |= 1ul << (s->page[i] % 64);
}

static struct kvm_vm *vm;
static struct kvm_vcpu *vcpu;

/* The guest writes the pages of @s in the slot it sees at @gva. */
static void guest_write(uint64_t gva, const struct pageset *s)
{
	g_base = gva;
	g_count = s->n;
	memcpy(g_list, s->page, s->n * sizeof(s->page[0]));
	g_pass++;
	sync_global_to_guest(vm, g_base);
	sync_global_to_guest(vm, g_count);
	sync_global_to_guest(vm, g_list);
	sync_global_to_guest(vm, g_pass);
	kd_run_to_sync(vcpu);
}

/* The guest writes @s; @want is its bitmap, each of its pages a mark. */
static void write_set(uint64_t gva, const struct pageset *s, uint64_t *want,
		      uint64_t words)
{
	guest_write(gva, s);
	set_bits(s, want, words);
	exp.marks += popcount(want, words);
}

static void wp_all(void)
{
	vm_ioctl(vm, KVM_WRITE_PROTECT_ALL_MEM, NULL);
	exp.wp_all++;
}

static int __get_fd(struct kvm_vm *v, uint32_t slot, uint32_t flags,
		    uint64_t pad, struct kvm_dirty_bitmap_fd *out)
{
	struct kvm_dirty_bitmap_fd req = {
		.slot = slot, .flags = flags, .pad = pad,
	};
	int r = __vm_ioctl(v, KVM_GET_DIRTY_BITMAP_FD, &req);

	if (out)
		*out = req;
	return r;
}

/* A new descriptor of @slot's bitmap, which has @pages bits. */
static int get_fd(struct kvm_vm *v, uint32_t slot, uint64_t pages)
{
	struct kvm_dirty_bitmap_fd req;
	int fd = __get_fd(v, slot, 0, 0, &req), fl;

	if (fd < 0)
		FAIL("KVM_GET_DIRTY_BITMAP_FD of slot %#x: %s", slot,
		     strerrorname_np(errno));
	exp.fds++;
	CHECK(req.npages == pages && req.mmap_size == map_bytes(pages),
	      "slot %#x: npages %llu, mmap_size %llu; want %lu, %lu", slot,
	      req.npages, req.mmap_size, pages, map_bytes(pages));
	fl = fcntl(fd, F_GETFD);
	CHECK(fl >= 0 && (fl & FD_CLOEXEC), "fd %d not close-on-exec (%#x)", fd, fl);
	fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0 && (fl & O_ACCMODE) == O_RDWR, "fd %d not O_RDWR (%#x)", fd, fl);
	return fd;
}

static uint64_t *map_fd(int fd, size_t len, off_t off, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, off);

	if (p == MAP_FAILED)
		FAIL("mmap of %zu bytes at %ld of a bitmap: %s", len, (long)off,
		     strerrorname_np(errno));
	exp.maps++;
	return p;
}

/* A refusal of the module's mmap handler (not of the core's checks). */
static void want_map_refused(int fd, size_t len, off_t off, int prot,
			     int flags, int want, const char *what)
{
	WANT_ERR(mmap(NULL, len, prot, flags, fd, off), want, what);
	exp.map_refused++;
}

/* pread(2) of @bytes at @off, which must succeed whole: the words taken. */
static void read_all(int fd, uint64_t *buf, uint64_t bytes, off_t off,
		     const char *what)
{
	ssize_t r = pread(fd, buf, bytes, off);

	if (r != (ssize_t)bytes)
		FAIL("%s: pread of %lu bytes at %ld returned %zd (%s)", what,
		     bytes, (long)off, r, r < 0 ? strerrorname_np(errno) : "short");
	exp.read_words += bytes / 8;
	exp.read_pages += popcount(buf, bytes / 8);
}

/* A memslot of @pages at @gpa; counted if the module allocates its bitmap. */
static void slot_add(struct kvm_vm *v, bool shared, uint32_t slot,
		     uint64_t gpa, uint64_t pages, uint32_t flags)
{
	vm_userspace_mem_region_add(v, VM_MEM_SRC_ANONYMOUS, gpa, slot, pages,
				    flags);
	if (shared && (flags & KVM_MEM_LOG_DIRTY_PAGES))
		exp.allocs++;
}

static void slot_log(struct kvm_vm *v, bool shared, uint32_t slot, bool on)
{
	vm_mem_region_set_flags(v, slot, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
	if (shared && on)
		exp.allocs++;
}

static void enable_wp_all(struct kvm_vm *v, uint64_t flags)
{
	vm_enable_cap(v, KVM_CAP_DIRTY_WP_ALL, flags);
}

static void enable_shared(struct kvm_vm *v)
{
	vm_enable_cap(v, KVM_CAP_DIRTY_SHARED_BITMAP, 0);
	exp.vms++;
}

static int enable_raw(struct kvm_vm *v, uint32_t flags, int arg, uint64_t val)
{
	struct kvm_enable_cap c = {
		.cap = KVM_CAP_DIRTY_SHARED_BITMAP, .flags = flags,
	};

	c.args[arg] = val;
	return __vm_ioctl(v, KVM_ENABLE_CAP, &c);
}

/* KVM_ENABLE_CAP's table: EINVAL, EEXIST, EOPNOTSUPP, EBUSY. */
static void enable_errors(void)
{
	struct kvm_vm *v;

	CHECK(kvm_check_cap(KVM_CAP_DIRTY_SHARED_BITMAP) == 0,
	      "KVM_CHECK_EXTENSION on /dev/kvm: %u, want 0",
	      kvm_check_cap(KVM_CAP_DIRTY_SHARED_BITMAP));
	ok("KVM_CHECK_EXTENSION on the system fd: 0");

	v = vm_create_barebones();
	WANT_ERR(enable_raw(v, 0, 0, 0), EOPNOTSUPP,
		 "ENABLE_CAP without write-protect-all");
	kvm_vm_free(v);

	v = vm_create_barebones();
	enable_wp_all(v, 0);
	WANT_ERR(enable_raw(v, 0, 0, 0), EOPNOTSUPP,
		 "ENABLE_CAP after write-protect-all without NO_HARVEST_WP");
	kvm_vm_free(v);

	v = vm_create_barebones();
	enable_wp_all(v, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	slot_add(v, false, 1, 0, 64, KVM_MEM_LOG_DIRTY_PAGES);
	WANT_ERR(enable_raw(v, 0, 0, 0), EBUSY,
		 "ENABLE_CAP with a memslot that has a dirty bitmap");
	WANT_ERR(__get_fd(v, 1, 0, 0, NULL), EOPNOTSUPP,
		 "GET_DIRTY_BITMAP_FD without the capability");
	WANT_ERR(__get_fd(v, 1, 1, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD with flags, without the capability (flags first)");
	WANT_ERR(__get_fd(v, 1, 0, 1, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD with pad, without the capability (pad first)");
	kvm_vm_free(v);

	v = vm_create_barebones();
	enable_wp_all(v, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	/* A memslot without dirty logging may exist. */
	slot_add(v, false, 2, 0, 64, 0);
	WANT_ERR(enable_raw(v, 1, 0, 0), EINVAL, "ENABLE_CAP with flags");
	WANT_ERR(enable_raw(v, 0, 0, 1), EINVAL, "ENABLE_CAP with args[0]");
	WANT_ERR(enable_raw(v, 0, 3, 1), EINVAL, "ENABLE_CAP with args[3]");
	enable_shared(v);
	ok("ENABLE_CAP with a memslot without dirty logging");
	WANT_ERR(enable_raw(v, 0, 0, 0), EEXIST, "ENABLE_CAP twice");
	WANT_ERR(enable_raw(v, 1, 0, 0), EINVAL,
		 "ENABLE_CAP twice with flags (flags first)");
	kvm_vm_free(v);
}

/* KVM_GET_DIRTY_BITMAP_FD's table on a VM with the capability. */
static void fd_errors(void)
{
	uint64_t pages = 200, ro_gpa = 4ul << 20;
	int nr_as, nr_slots, fd, fd2, lowest;
	struct kvm_vm *v = vm_create_barebones();
	struct rlimit old, lim;
	struct stat st, st2;
	bool ro = kvm_has_cap(KVM_CAP_READONLY_MEM);

	nr_as = vm_check_cap(v, KVM_CAP_MULTI_ADDRESS_SPACE);
	nr_as = nr_as < 1 ? 1 : nr_as;
	nr_slots = vm_check_cap(v, KVM_CAP_NR_MEMSLOTS);
	enable_wp_all(v, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	enable_shared(v);
	slot_add(v, true, 1, 0, pages, KVM_MEM_LOG_DIRTY_PAGES);
	slot_add(v, true, 2, pages * psize, pages, 0);
	if (ro) {
		slot_add(v, true, 3, ro_gpa, pages,
			 KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY);
		slot_add(v, true, 4, 2 * ro_gpa, pages, KVM_MEM_READONLY);
	}

	WANT_ERR(__get_fd(v, 1, 1, 0, NULL), EINVAL, "GET_DIRTY_BITMAP_FD with flags");
	WANT_ERR(__get_fd(v, 1, 0x80000000u, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD with the top flag");
	WANT_ERR(__get_fd(v, 7, 0, 1, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD with pad, of a missing slot (pad first)");
	WANT_ERR(__get_fd(v, (uint32_t)nr_as << 16 | 1, 0, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD of an address space out of range");
	WANT_ERR(__get_fd(v, 0xffffu << 16 | 1, 0, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD of address space 0xffff");
	WANT_ERR(__get_fd(v, nr_slots, 0, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD of slot id KVM_CAP_NR_MEMSLOTS");
	WANT_ERR(__get_fd(v, 0xffff, 0, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD of slot id 0xffff");
	WANT_ERR(__get_fd(v, 7, 0, 0, NULL), ENOENT,
		 "GET_DIRTY_BITMAP_FD of a missing slot");
	if (nr_as > 1)
		WANT_ERR(__get_fd(v, 1u << 16 | 1, 0, 0, NULL), ENOENT,
			 "GET_DIRTY_BITMAP_FD of a missing slot of address space 1");
	WANT_ERR(__get_fd(v, 2, 0, 0, NULL), ENOENT,
		 "GET_DIRTY_BITMAP_FD of a slot without dirty logging");
	if (ro) {
		WANT_ERR(__get_fd(v, 3, 0, 0, NULL), EINVAL,
			 "GET_DIRTY_BITMAP_FD of a read-only logged slot");
		WANT_ERR(__get_fd(v, 4, 0, 0, NULL), ENOENT,
			 "GET_DIRTY_BITMAP_FD of a read-only slot without logging (ENOENT first)");
	} else {
		printf("note: no KVM_CAP_READONLY_MEM, read-only slots not tried\n");
	}

	/* Each call a new file: an inode of its own, O_RDWR, close-on-exec. */
	fd = get_fd(v, 1, pages);
	fd2 = get_fd(v, 1, pages);
	CHECK(!fstat(fd, &st) && !fstat(fd2, &st2) && st.st_ino != st2.st_ino,
	      "two descriptors of one bitmap share inode %lu", (unsigned long)st.st_ino);
	ok("two GET_DIRTY_BITMAP_FD calls: two files, inodes %lu and %lu",
	   (unsigned long)st.st_ino, (unsigned long)st2.st_ino);
	close(fd2);

	/* EMFILE: no descriptor left under RLIMIT_NOFILE. */
	close(fd);
	lowest = open("/dev/null", O_RDONLY);
	CHECK(lowest >= 0, "open /dev/null: %s", strerror(errno));
	close(lowest);
	CHECK(!getrlimit(RLIMIT_NOFILE, &old), "getrlimit");
	lim = old;
	lim.rlim_cur = lowest;	/* the lowest free descriptor */
	CHECK(!setrlimit(RLIMIT_NOFILE, &lim), "setrlimit: %s", strerror(errno));
	WANT_ERR(__get_fd(v, 1, 0, 0, NULL), EMFILE,
		 "GET_DIRTY_BITMAP_FD with no descriptor left");
	CHECK(!setrlimit(RLIMIT_NOFILE, &old), "setrlimit back: %s", strerror(errno));

	/* Logging turned on: a new bitmap; off: ENOENT again. */
	slot_log(v, true, 2, true);
	fd = get_fd(v, 2, pages);
	close(fd);
	slot_log(v, true, 2, false);
	WANT_ERR(__get_fd(v, 2, 0, 0, NULL), ENOENT,
		 "GET_DIRTY_BITMAP_FD after logging was turned off");
	kvm_vm_free(v);
}

/* ENXIO: a dirty ring without a bitmap beside it has no dirty bitmaps. */
static void ring_errors(void)
{
	struct kvm_vm *v;

	if (!kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) &&
	    !kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL)) {
		printf("note: no dirty ring, ENXIO not tried\n");
		return;
	}
	v = vm_create_barebones();
	vm_enable_dirty_ring(v, 65536);
	enable_wp_all(v, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	enable_shared(v);
	slot_add(v, false, 1, 0, 64, KVM_MEM_LOG_DIRTY_PAGES);
	WANT_ERR(__get_fd(v, 1, 0, 0, NULL), ENXIO,
		 "GET_DIRTY_BITMAP_FD on a dirty ring without bitmap");
	WANT_ERR(__get_fd(v, 0xffff, 0, 0, NULL), ENXIO,
		 "GET_DIRTY_BITMAP_FD of a bad slot id on a ring without bitmap (ENXIO first)");
	WANT_ERR(__get_fd(v, 1, 1, 0, NULL), EINVAL,
		 "GET_DIRTY_BITMAP_FD with flags on a ring without bitmap (flags first)");
	kvm_vm_free(v);
}

/* The process the descriptor is passed to over SCM_RIGHTS, forked early. */
static int scm_sock = -1;
static pid_t scm_pid;

static void scm_helper(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	uint64_t word;
	int fd;

	/* Nothing (the parent failed before it sent the descriptor): done. */
	if (recvmsg(sock, &msg, 0) != 1)
		_exit(0);
	cm = CMSG_FIRSTHDR(&msg);
	CHECK(cm && cm->cmsg_type == SCM_RIGHTS, "SCM_RIGHTS helper: no descriptor");
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	WANT_ERR(mmap(NULL, psize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
		 EIO, "mmap by a process the descriptor was passed to (SCM_RIGHTS)");
	WANT_ERR(read(fd, &word, 8), EIO,
		 "read by a process the descriptor was passed to (SCM_RIGHTS)");
	WANT_ERR(pread(fd, &word, 8, 0), EIO,
		 "pread by a process the descriptor was passed to (SCM_RIGHTS)");
	_exit(0);
}

static void scm_start(void)
{
	int sv[2];

	CHECK(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv), "socketpair: %s",
	      strerror(errno));
	fflush(stdout);
	scm_pid = fork();
	CHECK(scm_pid >= 0, "fork: %s", strerror(errno));
	if (!scm_pid) {
		close(sv[0]);
		scm_helper(sv[1]);
	}
	close(sv[1]);
	scm_sock = sv[0];
}

static void wait_child(pid_t pid, const char *what)
{
	int status;

	CHECK(waitpid(pid, &status, 0) == pid, "waitpid %s: %s", what, strerror(errno));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s: exit status %#x, want 0 (its FAIL above)", what, status);
}

static void scm_send(int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	CHECK(sendmsg(scm_sock, &msg, 0) == 1, "sendmsg: %s", strerror(errno));
	wait_child(scm_pid, "SCM_RIGHTS helper");
	exp.map_refused++;	/* its mmap reached the module */
	close(scm_sock);
}

/*
 * Rounds of guest writes against scans, GET, read(2), and the mapping's
 * refusals, on the main slot (its bitmap spans two host pages).
 */
static void live_cases(int fd, uint64_t *map)
{
	const uint64_t words = map_bytes(npages) / 8, lw = live_words(npages);
	const uint64_t lbytes = lw * 8, mbytes = map_bytes(npages);
	uint64_t *want = calloc(words, 8), *got = calloc(words, 8);
	uint64_t *ro, *tail, *buf, half = lw / 2, i, v;
	long restored;
	struct pageset s;
	uint8_t *bad;
	ssize_t r;

	CHECK(want && got, "calloc");

	/* Two rounds: each sees exactly what the guest wrote since the last. */
	pick(&s, npages, 300, true);
	write_set(GVA_MAIN, &s, want, words);
	scan(map, got, words);
	want_bits(got, want, words, "first round, scan of the mapping");
	wp_all();
	pick(&s, npages, 200, false);
	s.page[s.n++] = npages - 1;
	write_set(GVA_MAIN, &s, want, words);
	scan(map, got, words);
	want_bits(got, want, words, "after a write-protect-all, scan");
	wp_all();
	s.n = 0;
	guest_write(GVA_MAIN, &s);
	memset(want, 0, words * 8);
	scan(map, got, words);
	want_bits(got, want, words, "a round without writes, scan");

	/* GET and the scan take each bit once between them. */
	pick(&s, npages, 300, true);
	write_set(GVA_MAIN, &s, want, words);
	scan(map, got, half);
	want_bits(got, want, half, "scan of the first half before GET");
	memset(got, 0, words * 8);
	kvm_vm_get_dirty_log(vm, SLOT_MAIN, got);
	exp.gets++;
	memset(want, 0, half * 8);
	want_bits(got, want, lw, "GET after a scan of the first half: the second half");
	memset(want, 0, words * 8);
	scan(map, got, words);
	want_bits(got, want, words, "scan after GET: nothing left");
	wp_all();

	/* read(2) and pread(2) take words as a scan does. */
	pick(&s, npages, 300, true);
	write_set(GVA_MAIN, &s, want, words);
	buf = calloc(words, 8);
	CHECK(buf, "calloc");
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
	for (i = 0; i < 3; i++) {
		r = read(fd, &buf[i], 8);
		CHECK(r == 8, "read of word %lu at the file position: %zd (%s)",
		      i, r, r < 0 ? strerrorname_np(errno) : "short");
		exp.read_words++;
		exp.read_pages += __builtin_popcountll(buf[i]);
	}
	CHECK(lseek(fd, 0, SEEK_CUR) == 24, "file position after 3 reads: %ld",
	      (long)lseek(fd, 0, SEEK_CUR));
	read_all(fd, &buf[3], lbytes - 24, 24, "pread of the rest");
	want_bits(buf, want, lw, "read(2) x3 then pread(2) of the bitmap");
	scan(map, got, words);
	memset(want, 0, words * 8);
	want_bits(got, want, words, "scan after read(2) took the words");
	wp_all();

	/* Refused reads take nothing. */
	pick(&s, npages, 100, true);
	write_set(GVA_MAIN, &s, want, words);
	WANT_ERR(pread(fd, buf, 8, 4), EINVAL, "pread at a misaligned offset");
	WANT_ERR(pread(fd, buf, 12, 0), EINVAL, "pread of a misaligned count");
	WANT_ERR(pread(fd, buf, 4, 8), EINVAL, "pread of 4 bytes");
	WANT_ERR(pread(fd, buf, lbytes + 8, 0), EINVAL, "pread past the bitmap's bytes");
	WANT_ERR(pread(fd, buf, 8, lbytes), EINVAL,
		 "pread at the bitmap's end (inside the last mapped page)");
	WANT_ERR(pread(fd, buf, 8, mbytes), EINVAL, "pread past mmap_size");
	WANT_ERR(pread(fd, buf, 8, 1l << 62), EINVAL, "pread at 2^62");
	WANT_ERR(pread(fd, buf, 8, -8), EINVAL, "pread at a negative offset");
	CHECK(lseek(fd, lbytes, SEEK_SET) == (off_t)lbytes, "lseek: %s", strerror(errno));
	WANT_ERR(read(fd, buf, 8), EINVAL, "read at the end of the bitmap");
	CHECK(lseek(fd, 4, SEEK_SET) == 4, "lseek: %s", strerror(errno));
	WANT_ERR(read(fd, buf, 8), EINVAL, "read at a misaligned file position");
	scan(map, got, words);
	want_bits(got, want, words, "scan after the refused reads: no bit taken");
	wp_all();

	/*
	 * A read(2) whose copy to user space fails: EFAULT, and every word it
	 * took is put back (shared_bitmap_read_restored).  The module copies
	 * 64 words at a time; a buffer whose first 64 words are writable and
	 * the rest not returns those 64 and puts the rest back.
	 */
	pick(&s, npages, 300, true);
	write_set(GVA_MAIN, &s, want, words);
	bad = mmap(NULL, 2 * psize, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(bad != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(!mprotect(bad + psize, psize, PROT_NONE), "mprotect: %s", strerror(errno));
	restored = kd_counter("shared_bitmap_read_restored");
	v = 0;
	for (i = 0; i < 64; i++)
		v += !!want[i];
	WANT_ERR(pread(fd, bad + psize, lbytes, 0), EFAULT,
		 "pread into an inaccessible buffer");
	exp.read_restored += v;
	if (restored >= 0) {
		CHECK(kd_counter("shared_bitmap_read_restored") - restored == (long)v,
		      "shared_bitmap_read_restored moved by %ld, want %lu (dirty words of the first chunk)",
		      kd_counter("shared_bitmap_read_restored") - restored, v);
		ok("shared_bitmap_read_restored moved by %lu, the dirty words taken", v);
	}
	scan(map, got, words);
	want_bits(got, want, words, "scan after the failed read: no bit lost");
	wp_all();

	pick(&s, npages, 300, true);
	for (i = 0; i < 64; i++)	/* a dirty word in each chunk */
		s.page[s.n++] = 64 * (i * 2) + i;
	write_set(GVA_MAIN, &s, want, words);
	v = 0;
	for (i = 64; i < 128; i++)
		v += !!want[i];
	r = pread(fd, bad + psize - 512, 1024, 0);
	CHECK(r == 512, "pread of 1024 bytes into a buffer writable for 512: %zd (%s), want 512",
	      r, r < 0 ? strerrorname_np(errno) : "bytes");
	memcpy(got, bad + psize - 512, 512);
	exp.read_words += 64;
	exp.read_pages += popcount(got, 64);
	exp.read_restored += v;
	scan(map + 64, got + 64, words - 64);
	scan(map, buf, 64);
	for (i = 0; i < 64; i++)
		CHECK(!buf[i], "word %lu, returned by the short read, still in the bitmap: %#lx",
		      i, buf[i]);
	CHECK(!memcmp(got, want, 512), "the 64 words the short read returned differ");
	want_bits(got, want, words,
		  "a short read (the second chunk's copy failed) then a scan: each bit once");
	munmap(bad, 2 * psize);
	wp_all();

	/* The mapping's refusals. */
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			 EINVAL, "mmap MAP_PRIVATE");
	want_map_refused(fd, mbytes, 0, PROT_READ, MAP_PRIVATE, EINVAL,
			 "mmap MAP_PRIVATE read-only");
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_EXEC, MAP_SHARED, EINVAL,
			 "mmap PROT_READ|PROT_EXEC");
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_SHARED, EINVAL, "mmap PROT_READ|PROT_WRITE|PROT_EXEC");
	want_map_refused(fd, psize, mbytes, PROT_READ, MAP_SHARED, EINVAL,
			 "mmap of the page at mmap_size");
	want_map_refused(fd, mbytes + psize, 0, PROT_READ, MAP_SHARED, EINVAL,
			 "mmap of mmap_size plus a page");
	want_map_refused(fd, mbytes, psize, PROT_READ, MAP_SHARED, EINVAL,
			 "mmap of mmap_size from the second page");
	want_map_refused(fd, psize, 1l << 40, PROT_READ, MAP_SHARED, EINVAL,
			 "mmap at offset 2^40");
	/* Refused before the module sees them: not counted by it. */
	WANT_ERR(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0), EINVAL,
		 "mmap of length 0");
	WANT_ERR(syscall(__NR_mmap, NULL, 2 * psize, PROT_READ, MAP_SHARED, fd,
			 -psize), EOVERFLOW,
		 "mmap whose page offset plus length overflows (the core's check)");

	/* The second page alone, read-only: it watches without taking. */
	pick(&s, npages, 50, true);
	write_set(GVA_MAIN, &s, want, words);
	tail = map_fd(fd, psize, psize, PROT_READ);
	for (i = 0; i < (uint64_t)psize / 8; i++) {
		v = must_access(&tail[i], LOAD, "load from the second page");
		CHECK(v == want[psize / 8 + i], "second page, word %lu: %#lx, want %#lx",
		      i, v, want[psize / 8 + i]);
	}
	ok("a mapping of the second page alone shows its words");
	want_signal(&tail[0], WRITE, SIGSEGV, SEGV_ACCERR,
		    "write to a PROT_READ mapping");
	WANT_ERR(mprotect(tail, psize, PROT_READ | PROT_EXEC), EACCES,
		 "mprotect PROT_READ|PROT_EXEC of a read-only mapping");
	CHECK(!mprotect(tail, psize, PROT_READ | PROT_WRITE),
	      "mprotect PROT_READ|PROT_WRITE: %s", strerror(errno));
	WANT_ERR(mprotect(tail, psize, PROT_READ | PROT_WRITE | PROT_EXEC), EACCES,
		 "mprotect PROT_EXEC of a read-write mapping");
	ro = tail;
	scan(ro, got + psize / 8, psize / 8);
	scan(map, got, psize / 8);
	want_bits(got, want, words,
		  "scan through the second page's mapping made writable, then the main one");
	wp_all();
	munmap(tail, psize);

	/* munmap(2) is harmless: bits wait for the next mapping. */
	munmap(map, mbytes);
	pick(&s, npages, 100, true);
	write_set(GVA_MAIN, &s, want, words);
	map = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
	scan(map, got, words);
	want_bits(got, want, words, "written while unmapped, scan of a new mapping");
	wp_all();
	munmap(map, mbytes);
	free(buf);
	free(want);
	free(got);
}

/*
 * A child of fork(2) has no mapping and cannot map or read; a process the
 * descriptor was passed to cannot either.  Neither takes a bit.
 */
static void process_cases(int fd, uint64_t *map)
{
	const uint64_t words = map_bytes(npages) / 8;
	uint64_t *want = calloc(words, 8), *got = calloc(words, 8), word;
	struct pageset s;
	pid_t pid;

	CHECK(want && got, "calloc");
	pick(&s, npages, 100, true);
	write_set(GVA_MAIN, &s, want, words);
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		want_signal(map, LOAD, SIGSEGV, SEGV_MAPERR,
			    "child of fork: the mapping is not there");
		WANT_ERR(mmap(NULL, psize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
			 EIO, "mmap in a child of fork");
		WANT_ERR(mmap(NULL, psize, PROT_READ, MAP_PRIVATE, fd, 0), EIO,
			 "mmap MAP_PRIVATE in a child of fork (EIO first)");
		WANT_ERR(read(fd, &word, 8), EIO, "read in a child of fork");
		WANT_ERR(pread(fd, &word, 8, 0), EIO, "pread in a child of fork");
		_exit(0);
	}
	wait_child(pid, "child of fork");
	exp.map_refused += 2;
	scm_send(fd);
	scan(map, got, words);
	want_bits(got, want, words, "scan after the other processes tried: no bit taken");
	wp_all();
	free(want);
	free(got);
}

static void must_write(int fd, const void *p, size_t n)
{
	CHECK(write(fd, p, n) == (ssize_t)n, "pipe write: %s", strerror(errno));
}

static void must_read(int fd, void *p, size_t n)
{
	CHECK(read(fd, p, n) == (ssize_t)n, "pipe read: %s", strerror(errno));
}

/*
 * The deleted slot: two files of its bitmap, mappings of every shape
 * (read-write, read-only, moved, shrunk, shared with a child after
 * MADV_DOFORK), the guest's last writes after the last scan; then the
 * slot is deleted.
 */
static void delete_case(void)
{
	const uint64_t words = map_bytes(npages) / 8, lw = live_words(npages);
	const uint64_t mbytes = map_bytes(npages);
	uint64_t *want = calloc(words, 8), *got = calloc(words, 8);
	uint64_t *a, *b, *ro, *one, *moved, *shrunk, *forked, *hole, w0, t;
	int fd = get_fd(vm, SLOT_DEL, npages), fd2 = get_fd(vm, SLOT_DEL, npages);
	int to_child[2], to_parent[2];
	struct pageset s;
	char go = 1;
	pid_t pid;

	CHECK(want && got, "calloc");
	a = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
	b = map_fd(fd2, mbytes, 0, PROT_READ | PROT_WRITE);
	ro = map_fd(fd2, mbytes, 0, PROT_READ);

	/* Two files, one bitmap. */
	pick(&s, npages, 200, true);
	write_set(GVA_DEL, &s, want, words);
	for (uint64_t i = 0; i < words; i++)
		got[i] = must_access(&b[i], LOAD, "load through the second file");
	want_bits(got, want, words, "the second file's mapping shows the bitmap");
	scan(a, got, words);
	want_bits(got, want, words, "scan through the first file");
	for (uint64_t i = 0; i < words; i++)
		CHECK(!b[i] && !ro[i], "word %lu still set through the second file", i);
	ok("the second file's mappings saw the first file's scan take every word");
	wp_all();

	/* mremap(2): no growth, even within the bitmap; moves and shrinks work. */
	one = map_fd(fd, psize, 0, PROT_READ | PROT_WRITE);
	WANT_ERR(mremap(one, psize, 2 * psize, 0), EFAULT,
		 "mremap growing a one-page mapping in place");
	WANT_ERR(mremap(one, psize, 2 * psize, MREMAP_MAYMOVE), EFAULT,
		 "mremap growing a one-page mapping, may move");
	WANT_ERR(mremap(one, psize, psize, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), EINVAL,
		 "mremap MREMAP_DONTUNMAP");
	WANT_ERR(mremap(one, 0, psize, MREMAP_MAYMOVE), EFAULT,
		 "mremap of length 0, which would duplicate the mapping");
	munmap(one, psize);
	moved = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
	must_access(&moved[words - 1], LOAD, "fault in before the move");
	hole = mmap(NULL, mbytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(hole != MAP_FAILED, "mmap: %s", strerror(errno));
	one = mremap(moved, mbytes, mbytes, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
	CHECK(one == hole, "mremap move: %p (%s), want %p", one,
	      one == MAP_FAILED ? strerrorname_np(errno) : "elsewhere", hole);
	want_signal(moved, LOAD, SIGSEGV, SEGV_MAPERR, "the moved mapping's old address");
	moved = hole;
	ok("mremap moved the mapping");
	shrunk = map_fd(fd2, mbytes, 0, PROT_READ | PROT_WRITE);
	CHECK(mremap(shrunk, mbytes, psize, 0) == shrunk, "mremap shrink: %s",
	      strerror(errno));
	want_signal(&shrunk[psize / 8], LOAD, SIGSEGV, SEGV_MAPERR,
		    "past the shrunk mapping");
	ok("mremap shrank a two-page mapping to one");

	pick(&s, npages, 200, true);
	write_set(GVA_DEL, &s, want, words);
	for (uint64_t i = 0; i < words; i++)
		got[i] = must_access(&moved[i], LOAD, "load through the moved mapping");
	want_bits(got, want, words, "the moved mapping shows the bitmap");
	for (uint64_t i = 0; i < (uint64_t)psize / 8; i++)
		got[i] = must_access(&shrunk[i], XCHG, "exchange through the shrunk mapping");
	scan(moved + psize / 8, got + psize / 8, words - psize / 8);
	want_bits(got, want, words, "scan through the shrunk then the moved mapping");
	wp_all();

	/*
	 * MADV_DOFORK: the child shares the mapping and takes bits from the
	 * same bitmap; its read(2) and mmap(2) still fail with EIO, and it
	 * loses the mapping at retirement with the parent.
	 */
	forked = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
	must_access(&forked[words - 1], LOAD, "fault in before fork");
	CHECK(!madvise(forked, mbytes, MADV_DOFORK), "madvise MADV_DOFORK: %s",
	      strerror(errno));
	pick(&s, npages, 200, true);
	write_set(GVA_DEL, &s, want, words);
	for (w0 = 0; !want[w0]; w0++)
		;
	CHECK(!pipe(to_child) && !pipe(to_parent), "pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		t = must_access(&forked[w0], XCHG, "child after MADV_DOFORK: exchange");
		WANT_ERR(read(fd, got, 8), EIO, "read in a child after MADV_DOFORK");
		WANT_ERR(mmap(NULL, psize, PROT_READ, MAP_SHARED, fd, 0), EIO,
			 "mmap in a child after MADV_DOFORK");
		must_write(to_parent[1], &t, sizeof(t));
		must_read(to_child[0], &go, 1);
		want_signal(&forked[w0], LOAD, SIGBUS, BUS_ADRERR,
			    "child after MADV_DOFORK, slot deleted");
		want_signal(&forked[words - 1], XCHG, SIGBUS, BUS_ADRERR,
			    "child after MADV_DOFORK, slot deleted, last word");
		_exit(0);
	}
	exp.map_refused++;
	must_read(to_parent[0], &t, sizeof(t));
	CHECK(t == want[w0], "the child took %#lx from word %lu, want %#lx", t, w0, want[w0]);
	scan(a, got, words);
	got[w0] |= t;
	want_bits(got, want, words,
		  "the child after MADV_DOFORK took a word of the same bitmap, the parent the rest");
	wp_all();

	/* The window: written after the last scan, then the slot deleted. */
	must_access(&a[words - 1], LOAD, "fault in");
	must_access(&ro[0], LOAD, "fault in");
	must_access(&shrunk[0], LOAD, "fault in");
	pick(&s, npages, 200, true);
	write_set(GVA_DEL, &s, want, words);
	vm_mem_region_delete(vm, SLOT_DEL);
	exp.zaps += 2;	/* the two files */
	must_write(to_child[1], &go, 1);
	wait_child(pid, "child after MADV_DOFORK");
	exp.sigbus += 2;

	want_sigbus(&a[0], LOAD, "slot deleted: first file's mapping");
	want_sigbus(&a[words - 1], XCHG, "slot deleted: first file's mapping, last word");
	want_sigbus(&b[0], XCHG, "slot deleted: second file's mapping");
	want_sigbus(&ro[0], LOAD, "slot deleted: read-only mapping");
	want_sigbus(&moved[0], LOAD, "slot deleted: moved mapping");
	want_sigbus(&moved[words - 1], XCHG, "slot deleted: moved mapping, second page");
	want_sigbus(&shrunk[0], XCHG, "slot deleted: shrunk mapping");
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_WRITE, MAP_SHARED, ENODEV,
			 "mmap after the slot was deleted");
	want_map_refused(fd2, psize, 0, PROT_READ, MAP_SHARED, ENODEV,
			 "mmap of the second file after the slot was deleted");
	want_map_refused(fd, psize, 0, PROT_READ, MAP_PRIVATE, ENODEV,
			 "mmap MAP_PRIVATE after the slot was deleted (ENODEV first)");
	WANT_ERR(__get_fd(vm, SLOT_DEL, 0, 0, NULL), ENOENT,
		 "GET_DIRTY_BITMAP_FD of the deleted slot");
	memset(got, 0, words * 8);
	read_all(fd, got, lw * 8, 0, "read of the deleted slot's bitmap");
	want_bits(got, want, words, "read(2) after the delete: the window's pages");
	read_all(fd2, got, lw * 8, 0, "read through the second file");
	memset(want, 0, words * 8);
	want_bits(got, want, words, "read(2) through the second file: already taken");

	munmap(a, mbytes);
	munmap(b, mbytes);
	munmap(ro, mbytes);
	munmap(moved, mbytes);
	munmap(shrunk, psize);
	munmap(forked, mbytes);
	close(fd);
	close(fd2);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	free(want);
	free(got);
}

/*
 * Logging turned off: the bitmap retired as for a delete; turned on: a new
 * bitmap, which needs a new descriptor.  Returns it.
 */
static int log_off_case(int fd, uint64_t *map)
{
	const uint64_t words = map_bytes(npages) / 8, lw = live_words(npages);
	const uint64_t mbytes = map_bytes(npages);
	uint64_t *want = calloc(words, 8), *got = calloc(words, 8), *map2;
	struct pageset s;
	int fd2;

	CHECK(want && got, "calloc");
	pick(&s, npages, 200, true);
	write_set(GVA_MAIN, &s, want, words);
	must_access(&map[words - 1], LOAD, "fault in");
	slot_log(vm, true, SLOT_MAIN, false);
	exp.zaps++;
	want_sigbus(&map[0], XCHG, "logging off: the mapping");
	want_sigbus(&map[words - 1], LOAD, "logging off: the mapping, last word");
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_WRITE, MAP_SHARED, ENODEV,
			 "mmap after logging was turned off");
	WANT_ERR(__get_fd(vm, SLOT_MAIN, 0, 0, NULL), ENOENT,
		 "GET_DIRTY_BITMAP_FD while logging is off");
	read_all(fd, got, lw * 8, 0, "read after logging off");
	want_bits(got, want, lw, "read(2) after logging off: the window's pages");

	slot_log(vm, true, SLOT_MAIN, true);
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_WRITE, MAP_SHARED, ENODEV,
			 "mmap of the old descriptor after logging was turned on again");
	fd2 = get_fd(vm, SLOT_MAIN, npages);
	map2 = map_fd(fd2, mbytes, 0, PROT_READ | PROT_WRITE);
	pick(&s, npages, 200, true);
	write_set(GVA_MAIN, &s, want, words);
	scan(map2, got, words);
	want_bits(got, want, words, "logging on again: the new descriptor's scan");
	wp_all();
	read_all(fd, got, lw * 8, 0, "read of the old bitmap");
	memset(want, 0, words * 8);
	want_bits(got, want, lw, "the old bitmap got none of the new writes");
	munmap(map, mbytes);
	munmap(map2, mbytes);
	close(fd);
	free(want);
	free(got);
	return fd2;
}

/* KVM_MR_MOVE keeps the bitmap (bits are slot-relative) and its mappings. */
static void move_case(int fd, uint64_t gpa_moved)
{
	const uint64_t words = map_bytes(npages) / 8, mbytes = map_bytes(npages);
	uint64_t *want = calloc(words, 8), *got = calloc(words, 8), *map;
	long retired = kd_counter("shared_bitmap_retired");
	struct pageset s;

	CHECK(want && got, "calloc");
	map = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
	pick(&s, npages, 200, true);
	write_set(GVA_MAIN, &s, want, words);
	must_access(&map[0], LOAD, "fault in");
	vm_mem_region_move(vm, SLOT_MAIN, gpa_moved);
	scan(map, got, words);
	want_bits(got, want, words, "after KVM_MR_MOVE, the same mapping: bits before the move");
	wp_all();
	pick(&s, npages, 200, true);
	write_set(GVA_MOVED, &s, want, words);
	scan(map, got, words);
	want_bits(got, want, words, "after KVM_MR_MOVE: the guest's writes at the new address");
	wp_all();
	if (retired >= 0) {
		CHECK(kd_counter("shared_bitmap_retired") == retired,
		      "KVM_MR_MOVE retired a bitmap (shared_bitmap_retired %ld -> %ld)",
		      retired, kd_counter("shared_bitmap_retired"));
		ok("KVM_MR_MOVE retired nothing");
	}
	munmap(map, mbytes);
	free(want);
	free(got);
}

/*
 * A reader of a mapping, in its own thread, until SIGBUS.  The fields the
 * main thread polls are read and written with atomics; the rest is read
 * after pthread_join().
 */
struct reader {
	uint64_t *map, words;
	const uint64_t *want;
	bool xchg;
	uint64_t *taken;
	uint64_t passes;
	bool done, bad;
	uint64_t bad_word, bad_val;
	int sig, code;
	void *addr;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	struct catcher c;
	uint64_t i, v;

	if (sigsetjmp(c.jb, 1)) {
		fault_catcher = NULL;
		r->sig = fault_sig;
		r->code = fault_code;
		r->addr = fault_addr;
		__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
		return NULL;
	}
	fault_catcher = &c;
	for (;;) {
		for (i = 0; i < r->words; i++) {
			if (r->xchg) {
				/*
				 * Stored before the next exchange (seq_cst):
				 * the word the SIGBUS interrupts took nothing.
				 */
				v = __atomic_exchange_n(&r->map[i], 0, __ATOMIC_SEQ_CST);
				__atomic_store_n(&r->taken[i], r->taken[i] | v,
						 __ATOMIC_RELAXED);
			} else {
				v = __atomic_load_n(&r->map[i], __ATOMIC_RELAXED);
				if (v != r->want[i]) {
					fault_catcher = NULL;
					r->bad = true;
					r->bad_word = i;
					r->bad_val = v;
					__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
					return NULL;
				}
			}
		}
		__atomic_store_n(&r->passes, r->passes + 1, __ATOMIC_RELEASE);
	}
}

/* Waits up to 20 s for the reader's first pass, or for its end. */
static void wait_for(struct reader *r, bool end, const char *what)
{
	for (int ms = 0; ms < 20000; ms++) {
		if (end ? __atomic_load_n(&r->done, __ATOMIC_ACQUIRE) :
			  __atomic_load_n(&r->passes, __ATOMIC_ACQUIRE) > 0)
			return;
		usleep(1000);
	}
	FAIL("%s: nothing after 20 s", what);
}

/*
 * The slot deleted while a thread reads its mapping in a loop, plain loads
 * and exchanges in turn: the reader sees the bitmap as it was, then SIGBUS;
 * no bit is lost or seen twice between its exchanges and the drain.
 */
static void race_case(uint64_t gpa)
{
	const uint64_t words = map_bytes(RACE_PAGES) / 8, lw = live_words(RACE_PAGES);
	const uint64_t mbytes = map_bytes(RACE_PAGES);
	uint64_t *want = calloc(words, 8), *drained = calloc(words, 8);
	uint64_t *taken = calloc(words, 8), i, total = 0;
	struct pageset s;
	pthread_t t;
	int round;

	CHECK(want && drained && taken, "calloc");
	for (round = 0; round < RACE_ROUNDS; round++) {
		struct reader r = {
			.words = words, .want = want, .xchg = round & 1,
			.taken = taken,
		};
		int fd;

		slot_add(vm, true, SLOT_RACE, gpa, RACE_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
		pick(&s, RACE_PAGES, 100, true);
		write_set(GVA_RACE, &s, want, words);
		memset(taken, 0, words * 8);
		fd = get_fd(vm, SLOT_RACE, RACE_PAGES);
		r.map = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
		CHECK(!pthread_create(&t, NULL, reader_run, &r), "pthread_create");
		wait_for(&r, false, "the reader's first pass");
		usleep(random() % 3000);
		vm_mem_region_delete(vm, SLOT_RACE);
		exp.zaps++;
		wait_for(&r, true, "the reader of a deleted slot's mapping: no SIGBUS");
		pthread_join(t, NULL);
		CHECK(!r.bad, "round %d: the reader saw word %lu = %#lx, want %#lx",
		      round, r.bad_word, r.bad_val, want[r.bad_word]);
		CHECK(r.sig == SIGBUS && r.code == BUS_ADRERR &&
		      (uint64_t *)r.addr >= r.map && (uint64_t *)r.addr < r.map + words,
		      "round %d: the reader got signal %d code %d at %p, want SIGBUS BUS_ADRERR in %p..+%#lx",
		      round, r.sig, r.code, r.addr, r.map, mbytes);
		exp.sigbus++;
		memset(drained, 0, words * 8);
		read_all(fd, drained, lw * 8, 0, "drain after the race");
		for (i = 0; i < words; i++) {
			CHECK(!(taken[i] & drained[i]),
			      "round %d: word %lu: bits %#lx taken by the reader and drained too",
			      round, i, taken[i] & drained[i]);
			drained[i] |= taken[i];
		}
		CHECK(!memcmp(drained, want, words * 8),
		      "round %d: the reader's and the drain's bits are not the guest's (%lu vs %lu pages)",
		      round, popcount(drained, words), popcount(want, words));
		total += r.passes;
		munmap(r.map, mbytes);
		close(fd);
	}
	ok("%d slot deletes under a reader (%lu full passes in all): each SIGBUS, data valid, no bit lost or doubled",
	   RACE_ROUNDS, total);
	free(want);
	free(drained);
	free(taken);
}

/* The VM closed with a file open and mapped: retired, read(2) still works. */
static void close_case(int fd)
{
	const uint64_t words = map_bytes(npages) / 8, lw = live_words(npages);
	const uint64_t mbytes = map_bytes(npages);
	uint64_t *want = calloc(words, 8), *got = calloc(words, 8), *map;
	struct pageset s;

	CHECK(want && got, "calloc");
	map = map_fd(fd, mbytes, 0, PROT_READ | PROT_WRITE);
	must_access(&map[0], LOAD, "fault in");
	pick(&s, npages, 200, true);
	write_set(GVA_MOVED, &s, want, words);
	/*
	 * Closing the VM's descriptors, the vCPU's and /dev/kvm's, with the
	 * slots in place: the bitmap is retired by the VM's destruction, not
	 * by a delete (kvm_vm_free() would delete the slots first).
	 */
	kvm_vm_release(vm);
	exp.zaps++;
	want_sigbus(&map[0], LOAD, "VM closed: the mapping");
	want_sigbus(&map[words - 1], XCHG, "VM closed: the mapping, last word");
	want_map_refused(fd, mbytes, 0, PROT_READ | PROT_WRITE, MAP_SHARED, ENODEV,
			 "mmap after the VM was closed");
	read_all(fd, got, lw * 8, 0, "read after the VM was closed");
	want_bits(got, want, lw, "read(2) after the VM was closed: the last pages written");
	munmap(map, mbytes);
	close(fd);
	free(want);
	free(got);
}

/* On KVM's C path: no capability, the ioctl unknown (ENOTTY x86, EINVAL arm64). */
static int c_path(void)
{
	struct kvm_vm *v = vm_create_barebones();
#ifdef __x86_64__
	const int unknown = ENOTTY;
#else
	const int unknown = EINVAL;
#endif

	CHECK(vm_check_cap(v, KVM_CAP_DIRTY_SHARED_BITMAP) == 0,
	      "C path: KVM_CHECK_EXTENSION on the VM is %d, want 0",
	      vm_check_cap(v, KVM_CAP_DIRTY_SHARED_BITMAP));
	ok("C path: KVM_CHECK_EXTENSION on the VM: 0");
	CHECK(kvm_check_cap(KVM_CAP_DIRTY_SHARED_BITMAP) == 0,
	      "KVM_CHECK_EXTENSION on /dev/kvm is not 0");
	ok("C path: KVM_CHECK_EXTENSION on the system fd: 0");
	WANT_ERR(enable_raw(v, 0, 0, 0), EINVAL, "C path: ENABLE_CAP");
	slot_add(v, false, 1, 0, 64, KVM_MEM_LOG_DIRTY_PAGES);
	WANT_ERR(__get_fd(v, 1, 0, 0, NULL), unknown,
		 "C path: GET_DIRTY_BITMAP_FD, an unknown VM ioctl");
	kvm_vm_free(v);
	return 0;
}

/* Holds a bitmap's file with its VM closed until SIGTERM. */
static int hold(void)
{
	uint64_t buf[8];
	struct kvm_vm *v;
	sigset_t term;
	int fd, sig;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	v = vm_create_barebones();
	TEST_REQUIRE(vm_check_cap(v, KVM_CAP_DIRTY_SHARED_BITMAP) == 1);
	enable_wp_all(v, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	enable_shared(v);
	slot_add(v, true, 1, 0, 512, KVM_MEM_LOG_DIRTY_PAGES);
	fd = get_fd(v, 1, 512);
	kvm_vm_release(v);
	printf("held\n");
	fflush(stdout);
	CHECK(!sigwait(&term, &sig), "sigwait");
	CHECK(pread(fd, buf, sizeof(buf), 0) == sizeof(buf),
	      "read of the held file: %s", strerror(errno));
	for (int i = 0; i < 8; i++)
		CHECK(!buf[i], "the held bitmap's word %d is %#lx, want 0", i, buf[i]);
	close(fd);
	ok("the held file read and closed");
	return 0;
}

/* What the module's counters must have moved by (shared_bitmap.sh). */
static void report(void)
{
	printf("expect shared_bitmap_vms %ld\n", exp.vms);
	printf("expect shared_bitmap_allocs %ld\n", exp.allocs);
	printf("expect shared_bitmap_frees %ld\n", exp.allocs);
	printf("expect shared_bitmap_retired %ld\n", exp.allocs);
	printf("expect shared_bitmap_files %ld\n", exp.fds);
	printf("expect shared_bitmap_fds %ld\n", exp.fds);
	printf("expect shared_bitmap_maps %ld\n", exp.maps);
	printf("expect shared_bitmap_map_refused %ld\n", exp.map_refused);
	printf("expect shared_bitmap_sigbus %ld\n", exp.sigbus);
	printf("expect shared_bitmap_zaps %ld\n", exp.zaps);
	printf("expect shared_bitmap_read_words %ld\n", exp.read_words);
	printf("expect shared_bitmap_read_pages %ld\n", exp.read_pages);
	printf("expect shared_bitmap_read_restored %ld\n", exp.read_restored);
	printf("expect get_dirty_log %ld\n", exp.gets);
	printf("expect wp_all_calls %ld\n", exp.wp_all);
	printf("expect_min shared_bitmap_faults 1\n");
	printf("expect_min bitmap_marks %ld\n", exp.marks);
	printf("SHARED_BITMAP ok\n");
}

static uint64_t top_gpa(unsigned int index, uint64_t pages)
{
	/* Slots of 2M-aligned spans from the top of guest memory down. */
	uint64_t span = ((npages + 511) & ~511ul) + 512;

	TEST_ASSERT(pages <= npages, "slot too large");
	return (vm->max_gfn + 1 - (index + 1) * span) * vm->page_size;
}

int main(int argc, char *argv[])
{
	uint64_t gpa_main, gpa_del, gpa_race, gpa_moved;
	struct sigaction sa = {
		.sa_sigaction = on_fault, .sa_flags = SA_SIGINFO,
	};
	struct kvm_vm *probe_vm;
	int fd, opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	psize = getpagesize();
	while ((opt = getopt(argc, argv, "cH")) != -1) {
		switch (opt) {
		case 'c':
			return c_path();
		case 'H':
			return hold();
		default:
			FAIL("usage: shared_bitmap [-c | -H]");
		}
	}
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	srandom(20171013);

	probe_vm = vm_create_barebones();
	TEST_REQUIRE(vm_check_cap(probe_vm, KVM_CAP_DIRTY_SHARED_BITMAP) == 1);
	kvm_vm_free(probe_vm);
	ok("KVM_CHECK_EXTENSION on a VM: 1");

	/* Before any VM: a process that never was the VM's. */
	scm_start();

	enable_errors();
	fd_errors();
	ring_errors();

	/*
	 * The main VM: write-protect-all without harvest protection, then the
	 * capability, before the vCPU and the logged slots.  A bitmap of just
	 * over one host page: two pages to map, the second mostly past the
	 * bitmap, and a last word only partly pages.
	 */
	npages = 8 * psize + 100;
	vm = __vm_create(VM_SHAPE_DEFAULT, 1, 3 * npages + RACE_PAGES);
	TEST_ASSERT(vm->page_size == (unsigned int)psize,
		    "guest pages of %u bytes, host pages of %ld", vm->page_size, psize);
	enable_wp_all(vm, KVM_DIRTY_WP_ALL_NO_HARVEST_WP);
	enable_shared(vm);
	vcpu = vm_vcpu_add(vm, 0, guest_code);
	g_psize = psize;
	sync_global_to_guest(vm, g_psize);
	gpa_main = top_gpa(0, npages);
	gpa_del = top_gpa(1, npages);
	gpa_race = top_gpa(2, RACE_PAGES);
	gpa_moved = top_gpa(3, npages);
	slot_add(vm, true, SLOT_MAIN, gpa_main, npages, KVM_MEM_LOG_DIRTY_PAGES);
	slot_add(vm, true, SLOT_DEL, gpa_del, npages, KVM_MEM_LOG_DIRTY_PAGES);
	virt_map(vm, GVA_MAIN, gpa_main, npages);
	virt_map(vm, GVA_DEL, gpa_del, npages);
	virt_map(vm, GVA_RACE, gpa_race, RACE_PAGES);
	/* Where the main slot will be moved; no memslot there yet. */
	virt_map(vm, GVA_MOVED, gpa_moved, npages);

	fd = get_fd(vm, SLOT_MAIN, npages);
	live_cases(fd, map_fd(fd, map_bytes(npages), 0, PROT_READ | PROT_WRITE));
	{
		uint64_t *map = map_fd(fd, map_bytes(npages), 0,
				       PROT_READ | PROT_WRITE);

		process_cases(fd, map);
		delete_case();
		fd = log_off_case(fd, map);
	}
	move_case(fd, gpa_moved);
	race_case(gpa_race);
	close_case(fd);

	report();
	return 0;
}
