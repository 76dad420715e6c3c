// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU TCG plugin (API version 1, QEMU 7.2): counts the guest
 * instructions executed inside windows of each vCPU, per translation block,
 * and dumps the counts at each phase marker.
 *
 *   -plugin ./insn_window.so,start=ADDR,end=ADDR,mark=ADDR,out=FILE
 *
 * A window opens when a vCPU executes the block at @start (a syscall's
 * entry, __x64_sys_ioctl) and closes at the block at @end
 * (syscall_exit_to_user_mode; on arm64 the next el0t_64_sync_handler); only
 * blocks at kernel addresses are counted (the top half of the address
 * space).  A block at @mark (__x64_sys_sync, __arm64_sys_sync)
 * appends "PHASE k" and one "ADDR INSNS EXECS" line per block executed in
 * windows since the last mark to @out, then starts counting again.
 * Counting is per block start address: a block's instructions are counted
 * as a whole each time it runs (an interrupt inside it is rare and counts
 * the rest too).  Made for tools/tcg-profile/profile, to attribute a
 * per-call cost difference between two paths to functions; instruction
 * counts are repeatable where timings under TCG are not.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 8
#define HASH_BITS 16

struct block {
	uint64_t vaddr;
	unsigned int insns;
	uint64_t execs[MAX_VCPUS];	/* each vCPU writes its own */
	struct block *next;
};

static struct block *table[1u << HASH_BITS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t start_addr, end_addr, mark_addr;
static FILE *out;
static int phase;
static int in_window[MAX_VCPUS];

static unsigned int hash(uint64_t v)
{
	return (unsigned int)((v * 0x9e3779b97f4a7c15ull) >> (64 - HASH_BITS));
}

/* The block of @vaddr (retranslations share it). */
static struct block *block_of(uint64_t vaddr, unsigned int insns)
{
	struct block *b;
	unsigned int h = hash(vaddr);

	pthread_mutex_lock(&lock);
	for (b = table[h]; b; b = b->next)
		if (b->vaddr == vaddr && b->insns == insns)
			break;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			abort();
		b->vaddr = vaddr;
		b->insns = insns;
		b->next = table[h];
		table[h] = b;
	}
	pthread_mutex_unlock(&lock);
	return b;
}

/*
 * Under the lock: the other vCPU may be counting meanwhile, so a block it
 * executes during the dump lands in this phase or the next one.  The
 * marker runs outside any ioctl window, so this is noise of nothing.
 */
static void dump(void)
{
	unsigned int h;
	int c;

	pthread_mutex_lock(&lock);
	fprintf(out, "PHASE %d\n", phase++);
	for (h = 0; h < (1u << HASH_BITS); h++) {
		struct block *b;

		for (b = table[h]; b; b = b->next) {
			uint64_t n = 0;

			for (c = 0; c < MAX_VCPUS; c++) {
				n += b->execs[c];
				b->execs[c] = 0;
			}
			if (n)
				fprintf(out, "%" PRIx64 " %u %" PRIu64 "\n",
					b->vaddr, b->insns, n);
		}
	}
	fflush(out);
	pthread_mutex_unlock(&lock);
}

static void exec_block(unsigned int vcpu, void *udata)
{
	struct block *b = udata;

	if (vcpu >= MAX_VCPUS)
		return;
	if (b->vaddr == start_addr)
		in_window[vcpu] = 1;
	else if (b->vaddr == end_addr)
		in_window[vcpu] = 0;
	else if (b->vaddr == mark_addr)
		dump();
	if (in_window[vcpu])
		b->execs[vcpu]++;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);

	if (!(vaddr >> 63))
		return;	/* user space (L1's and every L2's) */
	qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_block,
					     QEMU_PLUGIN_CB_NO_REGS,
					     block_of(vaddr, qemu_plugin_tb_n_insns(tb)));
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	dump();
	fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
					   const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "start=", 6))
			start_addr = strtoull(argv[i] + 6, NULL, 16);
		else if (!strncmp(argv[i], "end=", 4))
			end_addr = strtoull(argv[i] + 4, NULL, 16);
		else if (!strncmp(argv[i], "mark=", 5))
			mark_addr = strtoull(argv[i] + 5, NULL, 16);
		else if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	}
	if (!start_addr || !end_addr || !mark_addr || !path) {
		fprintf(stderr, "insn_window: start=, end=, mark= and out= are needed\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out)
		return -1;
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
