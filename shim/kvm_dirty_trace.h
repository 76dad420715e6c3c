/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The events of kvm_dirty.ko (TRACE_SYSTEM kvm_dirty), for what upstream
 * KVM's events do not show: a harvest of a memslot's dirty bitmap, a
 * write-protect-all, and a push-down of write-protect-all's protection.
 * Created in shim/trace.c; the Rust side emits them through kd_trace_*()
 * (include/kvm_dirty_shim.h) when their bit in kd_trace_on is set, which
 * each event's reg/unreg callback keeps: with tracing off an event costs
 * the Rust side a load and a branch, not a call.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kvm_dirty

#if !defined(_KVM_DIRTY_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _KVM_DIRTY_TRACE_H

#include <linux/tracepoint.h>

int kd_trace_harvest_reg(void);
void kd_trace_harvest_unreg(void);
int kd_trace_wp_all_reg(void);
void kd_trace_wp_all_unreg(void);
int kd_trace_push_down_reg(void);
void kd_trace_push_down_unreg(void);

/*
 * KVM_GET_DIRTY_LOG (without manual protect) or KVM_CLEAR_DIRTY_LOG
 * harvested @slot (as the ioctl names it: address space << 16 | id):
 * looked at @words words of its bitmap from page @first_page, and
 * harvested @pages dirty pages, which it write-protected again unless
 * @protect is false (write-protect-all's NO_HARVEST_WP).
 */
TRACE_EVENT_FN(kvm_dirty_harvest,
	TP_PROTO(bool clear, u32 slot, u64 first_page, u64 words, u64 pages,
		 bool protect),
	TP_ARGS(clear, slot, first_page, words, pages, protect),

	TP_STRUCT__entry(
		__field(bool, clear)
		__field(bool, protect)
		__field(u32, slot)
		__field(u64, first_page)
		__field(u64, words)
		__field(u64, pages)
	),

	TP_fast_assign(
		__entry->clear		= clear;
		__entry->protect	= protect;
		__entry->slot		= slot;
		__entry->first_page	= first_page;
		__entry->words		= words;
		__entry->pages		= pages;
	),

	TP_printk("%s slot %u first 0x%llx words %llu pages %llu%s",
		  __entry->clear ? "clear" : "get", __entry->slot,
		  __entry->first_page, __entry->words, __entry->pages,
		  __entry->protect ? "" : " (not protected)"),

	kd_trace_harvest_reg, kd_trace_harvest_unreg
);

/*
 * A write-protect-all (KVM_WRITE_PROTECT_ALL_MEM, or dirty logging turned
 * on for a slot when @log_enable): @entries entries of @roots roots
 * protected (x86: W cleared on the TDP MMU roots' entries, the shadow
 * MMU's roots following as vCPUs load them; arm64: the stage-2 start
 * level's descriptors made pending or read-only, one root).
 */
TRACE_EVENT_FN(kvm_dirty_wp_all,
	TP_PROTO(u32 roots, u64 entries, bool log_enable),
	TP_ARGS(roots, entries, log_enable),

	TP_STRUCT__entry(
		__field(u32, roots)
		__field(bool, log_enable)
		__field(u64, entries)
	),

	TP_fast_assign(
		__entry->roots		= roots;
		__entry->log_enable	= log_enable;
		__entry->entries	= entries;
	),

	TP_printk("roots %u entries %llu%s", __entry->roots, __entry->entries,
		  __entry->log_enable ? " (log enable)" : ""),

	kd_trace_wp_all_reg, kd_trace_wp_all_unreg
);

/*
 * A push-down brought a table of height @level (1: a table of 4K leaves)
 * to the current write-protect-all: @protected entries write-protected,
 * @pended table descriptors made pending (arm64).  @level 0: an x86
 * shadow MMU root brought up to date as a vCPU loaded it (KVM's hook does
 * not pass its height).
 */
TRACE_EVENT_FN(kvm_dirty_push_down,
	TP_PROTO(int level, u32 protected, u32 pended),
	TP_ARGS(level, protected, pended),

	TP_STRUCT__entry(
		__field(int, level)
		__field(u32, protected)
		__field(u32, pended)
	),

	TP_fast_assign(
		__entry->level		= level;
		__entry->protected	= protected;
		__entry->pended		= pended;
	),

	TP_printk("level %d protected %u pended %u", __entry->level,
		  __entry->protected, __entry->pended),

	kd_trace_push_down_reg, kd_trace_push_down_unreg
);

#endif /* _KVM_DIRTY_TRACE_H */

/* Where define_trace.h finds this file: Kbuild adds shim/ to the path. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE kvm_dirty_trace

#include <trace/define_trace.h>
