#!/bin/sh
# demo_summary.sh [-r]: what make run showed, in a few lines: what
# kvm_dirty.ko served in this boot (its debugfs counters, in words) and the
# live migrations' verdicts and figures.  -r: every raw counter too.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
[ "$1" = -r ] && /tests/counters.sh
echo
echo "What kvm_dirty.ko served in this boot (/sys/kernel/debug/kvm_dirty/):"
echo "  VMs bound to it:            $(c vms_bound) ($(c vms_live) still running)"
echo "  KVM_GET_DIRTY_LOG:          $(c get_dirty_log) calls, $(c pages_harvested) dirty pages reported," \
	"$(c words_scanned) bitmap words scanned"
echo "  KVM_CLEAR_DIRTY_LOG:        $(c clear_dirty_log) calls, $(c pages_cleared) pages cleared"
echo "  dirty pages marked:         $(c bitmap_marks) bitmap bits, $(c ring_pushes) dirty-ring entries"
echo "  KVM_RESET_DIRTY_RINGS:      $(c ring_resets) calls, $(c ring_entries_reset) entries handed back"
echo "  masked write-protect:       $(c walk_words) words by the module's own walk ($(c walk_cleared) entries" \
	"made read-only), $(c walk_kvm_words) left to KVM's function"
echo "  write-protect-all:          $(c wp_all_calls) calls, $(($(c wp_push_l1) + $(c wp_push_l2) + $(c wp_push_l3) + $(c wp_push_l4))) push-downs on faults"
echo "  errors returned:            $(($(c get_dirty_log_errors) + $(c clear_dirty_log_errors)))"
if [ -s /tmp/kd-migrations ]; then
	echo "Live migrations (QEMU with tools/qemu/*.patch, memory compared byte for byte):"
	while read -r line; do
		f() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
		echo "  $(f mode) on the $(f path) path: identical memories; total $(f total_ms) ms," \
			"downtime $(f downtime_ms) ms, $(f syncs) dirty syncs, $(f sync_ioctl_us) us in dirty-log ioctls"
	done < /tmp/kd-migrations
fi
[ "$1" = -r ] || echo "(every counter: counters.sh, or demo_summary.sh -r)"
