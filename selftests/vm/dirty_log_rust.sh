#!/bin/sh
# dirty_log_rust.sh MODE ITERATIONS: upstream dirty_log_test in MODE with the
# VM bound to kvm_dirty.ko; the counters must show that the module served
# every KVM_GET_DIRTY_LOG of the run (the test issues one per iteration
# after the first) and harvested real dirty pages.
. /tests/lib.sh
mode=$1 iters=$2
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
bind_vms 1
snap before
/tests/dirty_log_test -M "$mode" -i "$iters" -I 10 || fail "dirty_log_test -M $mode"
want_eq "VMs bound" "$(delta before vms_bound)" 1
want_eq "VMs still bound" "$(c vms_live)" 0
want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" $((iters - 1))
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
want_gt "pages harvested" "$(delta before pages_harvested)" 0
if [ "$mode" = dirty-log ]; then
	want_eq "pages write-protected" "$(delta before pages_protected)" \
		"$(delta before pages_harvested)"
	want_gt "TLB flushes" "$(delta before tlb_flushes)" 0
else
	# manual protect: GET only reports; CLEAR_DIRTY_LOG re-protects (C path)
	want_eq "pages write-protected by GET" "$(delta before pages_protected)" 0
fi
