#!/bin/sh
# watchdog.sh: the stress's watchdog catches a vCPU that makes no progress,
# stops it and says where it was.  dirty_stress -H makes vCPU 0 spin in its
# guest, deaf to the stop: the run must fail within the watchdog's limit,
# the watchdog must name the stall, and the signal must bring vCPU 0 out of
# KVM_RUN with its registers printed (a guest loop, not a kernel hang).
# -D: no sysrq dump, whose stack traces would count as kernel reports.
. /tests/lib.sh
out=$(timeout 120 /tests/dirty_stress -M bitmap -t 3 -v 2 -w 5 -H -D 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "dirty_stress -H passed: the watchdog did not fire"
[ "$rc" != 124 ] || fail "dirty_stress -H hung past 120 s: the watchdog did not fire"
echo "$out" | grep -q "WATCHDOG: no progress for [0-9]* s" ||
	fail "the watchdog did not report the stall"
echo "$out" | grep -q "WATCHDOG: vCPU 1: [0-9]* writes, done" ||
	fail "vCPU 1 did not finish"
echo "$out" | grep -Eq "WATCHDOG: stopped vCPU 0: (rip|pc) 0x" ||
	fail "vCPU 0 was not stopped, or its registers not printed"
if echo "$out" | grep -q "did not leave KVM_RUN"; then
	fail "vCPU 0 did not leave KVM_RUN on the signal"
fi
echo "watchdog.sh: PASS (dirty_stress exit $rc)"
