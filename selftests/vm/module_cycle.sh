#!/bin/sh
# module_cycle.sh [ARGS...]: rmmod refused while a VM is bound (rmmod_busy),
# the C path in all log modes while unloaded (dirty_log_test -M all ARGS:
# a guest mode, or -M MODE for one log mode), then insmod -> rmmod three
# times, clean each time.
. /tests/lib.sh
ko=/lib/modules/kvm_dirty.ko
/tests/rmmod_busy || fail "rmmod_busy"
[ ! -d /sys/module/kvm_dirty ] || fail "module still loaded after rmmod_busy"
/tests/dirty_log_test -M all -i 3 -I 10 "$@" || fail "dirty_log_test -M all $*, module unloaded"
/tests/get_dirty_log_errors >/dev/null || fail "GET errors, module unloaded"
/tests/clear_dirty_log_errors >/dev/null || fail "CLEAR errors, module unloaded"
echo "ok: the C path serves the log modes while the module is unloaded"
for i in 1 2 3; do
	insmod $ko || fail "insmod #$i"
	want_eq "vms_live after insmod #$i" "$(c vms_live)" 0
	/tests/get_dirty_log_errors >/dev/null || fail "selftest after insmod #$i"
	want_gt "VMs bound after insmod #$i" "$(c vms_bound)" 0
	want_eq "vms_live after the VMs closed" "$(c vms_live)" 0
	rmmod kvm_dirty || fail "rmmod #$i"
done
insmod $ko || fail "final insmod"
echo "ok: 3 insmod/rmmod cycles"
