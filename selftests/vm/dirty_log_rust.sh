#!/bin/sh
# dirty_log_rust.sh MODE ITERATIONS: upstream dirty_log_test in MODE
# (dirty-log, clear-log or dirty-ring) with the VM bound to kvm_dirty.ko.
# The counters must show that the module served every dirty-tracking call
# of the run: one GET_DIRTY_LOG (and in clear-log one CLEAR_DIRTY_LOG) per
# iteration after the first, the marks or ring pushes of the guest's
# writes, and the ring resets.
. /tests/lib.sh
mode=$1 iters=$2
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
bind_vms 1
snap before
/tests/dirty_log_test -M "$mode" -i "$iters" -I 10 || fail "dirty_log_test -M $mode"
want_eq "VMs bound" "$(delta before vms_bound)" 1
want_eq "VMs still bound" "$(c vms_live)" 0
case $mode in
dirty-log)
	want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" $((iters - 1))
	want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
	want_gt "pages harvested" "$(delta before pages_harvested)" 0
	want_eq "pages write-protected" "$(delta before pages_protected)" \
		"$(delta before pages_harvested)"
	want_gt "TLB flushes" "$(delta before tlb_flushes)" 0
	# every harvested page was marked by the Rust mark_page_dirty
	[ "$(delta before bitmap_marks)" -ge "$(delta before pages_harvested)" ] ||
		fail "bitmap marks $(delta before bitmap_marks) < pages harvested"
	echo "ok: bitmap marks $(delta before bitmap_marks) >= pages harvested"
	;;
clear-log)
	want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" $((iters - 1))
	want_eq "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" $((iters - 1))
	want_eq "CLEAR_DIRTY_LOG errors" "$(delta before clear_dirty_log_errors)" 0
	want_eq "pages write-protected by GET" "$(delta before pages_protected)" 0
	want_gt "pages cleared and re-protected" "$(delta before pages_cleared)" 0
	want_gt "bitmap marks" "$(delta before bitmap_marks)" 0
	;;
dirty-ring)
	want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
	want_gt "ring pushes" "$(delta before ring_pushes)" 0
	want_gt "ring resets" "$(delta before ring_resets)" 0
	want_gt "entries reset" "$(delta before ring_entries_reset)" 0
	want_gt "coalesced write-protects" "$(delta before ring_wp_calls)" 0
	want_eq "invalid batches" "$(delta before ring_invalid)" 0
	want_eq "ring overflows" "$(delta before ring_full)" 0
	want_eq "bitmap marks" "$(delta before bitmap_marks)" 0
	;;
esac
