#!/bin/sh
# dirty_log_c.sh MODE ITERATIONS [ARGS...]: the same upstream test on KVM's C path in
# the same boot: with the module loaded but bind_vms=0 (the VM is not bound,
# the counters must not move), or with the module unloaded.
. /tests/lib.sh
mode=$1 iters=$2
shift 2
if [ -d "$KD" ]; then
	bind_vms 0
	snap before
	run_out /tmp/dlt.out /tests/dirty_log_test -M "$mode" -i "$iters" -I 10 "$@"
	rc=$?
	bind_vms 1
	[ $rc = 0 ] || fail "dirty_log_test -M $mode on the C path"
	for k in vms_bound get_dirty_log clear_dirty_log ring_resets ring_pushes bitmap_marks; do
		want_eq "$k moved by the unbound VM" "$(delta before $k)" 0
	done
else
	/tests/dirty_log_test -M "$mode" -i "$iters" -I 10 "$@" || fail "dirty_log_test"
	echo "ok: passed with kvm_dirty.ko unloaded"
fi
