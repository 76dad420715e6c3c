/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The phase marker of tools/tcg-profile, shared by its two workloads
 * (ioctl_profile, dirty_bench -m ring): sync(2) makes the plugin dump and
 * reset its counts (its marker is __x64_sys_sync / __arm64_sys_sync), and
 * the line names the phase for report.py.  Phases are numbered in the order
 * the plugin sees them, across both programs.
 */
#ifndef KD_PHASE_H
#define KD_PHASE_H

#include <stdio.h>
#include <unistd.h>

/* Ends phase @nr, named @name, of @calls calls that took @us in all. */
static inline void kd_phase_mark(int nr, const char *name, long calls, double us)
{
	sync();
	printf("PHASE %d %s calls=%ld us_per_call=%.2f\n", nr, name, calls,
	       calls ? us / calls : 0);
	fflush(stdout);
}

#endif
