#!/bin/sh
# dirty_log_c.sh MODE ITERATIONS: the same upstream test on KVM's C path in
# the same boot: with the module loaded but bind_vms=0 (the VM is not bound,
# the counters must not move), or with the module unloaded.
. /tests/lib.sh
mode=$1 iters=$2
if [ -d "$KD" ]; then
	bind_vms 0
	snap before
	/tests/dirty_log_test -M "$mode" -i "$iters" -I 10
	rc=$?
	bind_vms 1
	[ $rc = 0 ] || fail "dirty_log_test -M $mode on the C path"
	want_eq "VMs bound" "$(delta before vms_bound)" 0
	want_eq "GET_DIRTY_LOG served by the module" "$(delta before get_dirty_log)" 0
else
	/tests/dirty_log_test -M "$mode" -i "$iters" -I 10 || fail "dirty_log_test"
	echo "ok: passed with kvm_dirty.ko unloaded"
fi
