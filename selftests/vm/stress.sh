#!/bin/sh
# stress.sh PATH ARGS...: dirty_stress (a migration-like stress checked byte
# for byte) with its VM on PATH, rust (bound to kvm_dirty.ko, counters must
# show the module served it) or c (bind_vms=0, counters must not move).
. /tests/lib.sh
path=$1
shift
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
case $path in
rust) bind_vms 1 ;;
c) bind_vms 0 ;;
*) fail "stress.sh: path rust or c, not $path" ;;
esac
snap before
/tests/dirty_stress "$@" > /tmp/stress.out 2>&1
rc=$?
cat /tmp/stress.out
bind_vms 1
[ $rc = 0 ] || fail "dirty_stress $*"
served=$(($(delta before get_dirty_log) + $(delta before ring_resets)))
if [ "$path" = rust ]; then
	want_gt "harvests served in Rust" "$served" 0
	want_eq "VMs still bound" "$(delta before vms_live)" 0
else
	want_eq "harvests served in Rust" "$served" 0
fi
