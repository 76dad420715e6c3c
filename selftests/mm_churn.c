// SPDX-License-Identifier: GPL-2.0
/*
 * Memory churn without forks, for churn.sh: every @ms milliseconds (default
 * 200) split every transparent huge page (debugfs split_huge_pages) and
 * compact memory (compact_memory), until the file @stop exists.  Each
 * split, collapse and page move invalidates KVM's mappings (mmu_notifier)
 * while the dirty-tracking paths harvest and write-protect the same pages.
 *
 * One process, no fork or exec: a shell loop that forks about ten
 * processes a second beside a running L2 guest is the trigger of the L1
 * memory corruption under nested npt=1 (Documentation/known-issues.rst),
 * which such a loop brought into the tests that churn memory.
 *
 *   mm_churn STOPFILE [MS]
 *
 * Prints "MM_CHURN rounds=N anon_thp_kb_max=N" when it stops: how many
 * rounds it made and the most anonymous THP memory it saw before a split.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_one(const char *path)
{
	int fd = open(path, O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, "1", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

static long anon_thp_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	long ms = argc > 2 ? atol(argv[2]) : 200, kb, max_kb = 0;
	struct timespec pause;
	unsigned long rounds = 0;

	if (argc < 2 || ms <= 0) {
		fprintf(stderr, "usage: mm_churn STOPFILE [MS]\n");
		return 2;
	}
	pause.tv_sec = ms / 1000;
	pause.tv_nsec = ms % 1000 * 1000000;
	while (access(argv[1], F_OK) != 0) {
		kb = anon_thp_kb();
		if (kb > max_kb)
			max_kb = kb;
		if (write_one("/sys/kernel/debug/split_huge_pages") ||
		    write_one("/proc/sys/vm/compact_memory")) {
			perror("mm_churn: split_huge_pages or compact_memory");
			return 1;
		}
		rounds++;
		nanosleep(&pause, NULL);
	}
	printf("MM_CHURN rounds=%lu anon_thp_kb_max=%ld\n", rounds, max_kb);
	return 0;
}
