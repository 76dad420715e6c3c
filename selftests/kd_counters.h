/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The module's debugfs counters (Documentation/api.rst, "Counters"), which
 * the selftests read to check what the module served.
 */
#ifndef KD_COUNTERS_H
#define KD_COUNTERS_H

#include <stdio.h>

#define KD_COUNTERS	"/sys/kernel/debug/kvm_dirty/"

/* The counter @name's value, or -1 if it cannot be read (no module). */
static inline long kd_counter(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), KD_COUNTERS "%s", name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

#endif
