// SPDX-License-Identifier: GPL-2.0
/*
 * The module's events (shim/kvm_dirty_trace.h, TRACE_SYSTEM kvm_dirty) and
 * the calls the Rust side makes to emit them, once per ioctl or per
 * push-down; and upstream KVM's kvm_dirty_ring_reset, once per ring a
 * reset walks, which kernel/0012 exports.  kvm_dirty_ring_push is emitted
 * on the push's own path, in shim/common.c.
 */
#include <linux/bitops.h>
#include <linux/kvm_host.h>
#include <trace/events/kvm.h>

#include "../include/kvm_dirty_shim.h"

#define CREATE_TRACE_POINTS
#include "kvm_dirty_trace.h"

/*
 * One bit per event of the module (KD_TRACE_*), set while the event has a
 * probe (ftrace, perf, BPF): tracepoint_add_func() calls an event's reg
 * callback before its first probe attaches, tracepoint_remove_func() the
 * unreg callback after its last one goes.  The Rust side reads it before
 * calling kd_trace_*() (rust/kvm/trace.rs).  An event enabled while a
 * path is past its test is missed by that call, as with a static key.
 */
unsigned long kd_trace_on;

int kd_trace_harvest_reg(void)
{
	set_bit(KD_TRACE_HARVEST, &kd_trace_on);
	return 0;
}

void kd_trace_harvest_unreg(void)
{
	clear_bit(KD_TRACE_HARVEST, &kd_trace_on);
}

int kd_trace_wp_all_reg(void)
{
	set_bit(KD_TRACE_WP_ALL, &kd_trace_on);
	return 0;
}

void kd_trace_wp_all_unreg(void)
{
	clear_bit(KD_TRACE_WP_ALL, &kd_trace_on);
}

int kd_trace_push_down_reg(void)
{
	set_bit(KD_TRACE_PUSH_DOWN, &kd_trace_on);
	return 0;
}

void kd_trace_push_down_unreg(void)
{
	clear_bit(KD_TRACE_PUSH_DOWN, &kd_trace_on);
}

void kd_trace_harvest(bool clear, u32 slot, u64 first_page, u64 words,
		      u64 pages, bool protect)
{
	trace_kvm_dirty_harvest(clear, slot, first_page, words, pages, protect);
}

void kd_trace_wp_all(u32 roots, u64 entries, bool log_enable)
{
	trace_kvm_dirty_wp_all(roots, entries, log_enable);
}

void kd_trace_push_down(int level, u32 protected, u32 pended)
{
	trace_kvm_dirty_push_down(level, protected, pended);
}

/* Where kvm_dirty_ring_reset() emits it: after the ring's walk. */
void kd_trace_ring_reset(struct kvm_dirty_ring *ring)
{
	trace_kvm_dirty_ring_reset(ring);
}
