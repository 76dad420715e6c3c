#!/bin/sh
# rmmod_under_load.sh [ARGS...]: rmmod kvm_dirty is tried over and over (at
# least 100 times) while upstream dirty_log_test runs on VMs bound to the
# module in the log modes of upstream and write-protect-all
# (dirty_log_rust.sh MODE 3 ARGS, its counters checked); the shared bitmap's
# mode, a fifth VM of 1 GiB, runs in make check-full's dirty_log_rust.sh all.
# A VM held open for the whole run (rmmod_busy --hold) leaves no idle moment
# between two test VMs, so every attempt must be refused.  Then the held VM
# is closed, rmmod must succeed, kmemleak must name nothing of kvm_dirty, and
# the module is loaded again for the commands after this one.
. /tests/lib.sh
ko=/lib/modules/kvm_dirty.ko
min_tries=100
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
bind_vms 1
live0=$(c vms_live)

/tests/rmmod_busy --hold > /tmp/hold.out 2>&1 &
holder=$! unloader=
# However this ends, stop the unloader and close the held VM, so a failure
# here does not leave the module pinned for the commands after this one.
cleanup() {
	[ -n "$unloader" ] && kill -TERM "$unloader" 2>/dev/null && wait "$unloader"
	kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
	[ -d /sys/module/kvm_dirty ] || insmod $ko
}
trap cleanup EXIT
i=0
until grep -q held /tmp/hold.out; do
	i=$((i + 1))
	[ $i -lt 100 ] && kill -0 $holder 2>/dev/null || fail "holder VM: $(cat /tmp/hold.out)"
	usleep 50000
done
want_eq "held VM bound" "$(c vms_live)" $((live0 + 1))

# The unloader: one attempt every 100 ms until told to stop, in one
# process (a shell loop of rmmod would fork twice per attempt).
/tests/rmmod_busy --unload-loop > /tmp/rmmod.count &
unloader=$!

rc=0
for mode in dirty-log clear-log dirty-ring wp-all; do
	/tests/dirty_log_rust.sh $mode 3 "$@" || rc=1
done
kill -TERM $unloader
wait $unloader
unloader=
read -r _ tries _ refused _ unloaded < /tmp/rmmod.count
echo "rmmod attempts during the run: $tries, refused: $refused, unloaded: $unloaded"
[ -d /sys/module/kvm_dirty ] || fail "the module was unloaded under load"
[ $rc = 0 ] || fail "dirty_log_test under rmmod load"
want_ge "rmmod attempts" "$tries" $min_tries
want_eq "rmmod attempts refused" "$refused" "$tries"

kill $holder
wait $holder 2>/dev/null
holder=
want_eq "VMs bound after the holder closed" "$(c vms_live)" "$live0"
rmmod kvm_dirty || fail "rmmod once the VMs are gone"
echo "ok: rmmod succeeds once the VMs are gone"
kmemleak_clean kvm_dirty
insmod $ko || fail "insmod after the run"
want_eq "vms_live after reload" "$(c vms_live)" 0
trap - EXIT
