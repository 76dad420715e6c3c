#!/bin/sh
# shared_bitmap.sh: the dirty bitmap shared with user space
# (KVM_CAP_DIRTY_SHARED_BITMAP, Documentation/shared-bitmap.rst) against a
# hostile VMM (selftests/shared_bitmap.c), then the module's side of it:
#
# - bound: every case of the test passes, and the module's counters moved by
#   exactly what the test says it did (its "expect COUNTER N" lines: VMs,
#   bitmaps allocated, freed and retired, files, descriptors, mmaps allowed
#   and refused, SIGBUS, zaps, words and pages read, words put back by a
#   failed read, GETs and write-protect-alls); its scans are not GETs, so
#   get_dirty_log moved only by the test's one GET; every bitmap the module
#   allocated is freed once its files are closed;
# - on KVM's C path (bind_vms=0): no capability, the ioctl unknown, nothing
#   of it counted;
# - a bitmap's file open after its VM is closed keeps the module loaded
#   (rmmod refused); once the file is closed, rmmod succeeds.  The module is
#   loaded again at the end, as module_cycle.sh leaves it.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
ko=/lib/modules/kvm_dirty.ko

bind_vms 1
snap before
run_out /tmp/sbm.out /tests/shared_bitmap || fail "shared_bitmap"
grep -q '^SHARED_BITMAP ok$' /tmp/sbm.out || fail "shared_bitmap did not finish"
grep '^expect ' /tmp/sbm.out > /tmp/sbm.expect
[ "$(wc -l < /tmp/sbm.expect)" -ge 15 ] ||
	fail "shared_bitmap printed $(wc -l < /tmp/sbm.expect) counter expectations, want 15"
while read -r _ name want; do
	want_eq "$name (delta)" "$(delta before "$name")" "$want"
done < /tmp/sbm.expect
grep '^expect_min ' /tmp/sbm.out > /tmp/sbm.expect
while read -r _ name want; do
	want_ge "$name (delta)" "$(delta before "$name")" "$want"
done < /tmp/sbm.expect
want_gt "shared bitmaps allocated" "$(delta before shared_bitmap_allocs)" 0
want_eq "shared bitmaps not freed (all time)" \
	"$(( $(c shared_bitmap_allocs) - $(c shared_bitmap_frees) ))" 0
want_eq "VMs of the run still bound" "$(delta before vms_live)" 0

bind_vms 0
snap cpath
run_out /tmp/sbm-c.out /tests/shared_bitmap -c || fail "shared_bitmap -c (C path)"
for n in shared_bitmap_vms shared_bitmap_allocs shared_bitmap_fds; do
	want_eq "$n on the C path (delta)" "$(delta cpath $n)" 0
done
bind_vms 1

# The file alone (its VM closed) must hold the module.
rm -f /tmp/sbm-hold.out
/tests/shared_bitmap -H > /tmp/sbm-hold.out 2>&1 &
pid=$!
i=0
until grep -q '^held$' /tmp/sbm-hold.out; do
	kill -0 $pid 2>/dev/null || { cat /tmp/sbm-hold.out; fail "shared_bitmap -H exited early"; }
	i=$((i + 1))
	[ $i -le 600 ] || { kill $pid; fail "shared_bitmap -H never said held"; }
	sleep 0.1
done
want_eq "VMs live while only the file is held" "$(c vms_live)" 0
want_gt "kvm_dirty module references while the file is held" \
	"$(cat /sys/module/kvm_dirty/refcnt)" 0
if rmmod kvm_dirty 2> /tmp/sbm-rmmod.err; then
	insmod $ko
	fail "rmmod succeeded while a shared bitmap's file was open"
fi
[ -d /sys/module/kvm_dirty ] || fail "kvm_dirty gone after a refused rmmod"
echo "ok: rmmod refused while a shared bitmap's file is open: $(cat /tmp/sbm-rmmod.err)"
kill -TERM $pid
wait $pid
rc=$?
cat /tmp/sbm-hold.out
want_eq "shared_bitmap -H exit status" "$rc" 0
want_eq "shared bitmaps not freed once the held file closed" \
	"$(( $(c shared_bitmap_allocs) - $(c shared_bitmap_frees) ))" 0
rmmod kvm_dirty || fail "rmmod once the bitmap's file was closed"
echo "ok: rmmod once the file was closed"
insmod $ko || fail "insmod after the rmmod"
