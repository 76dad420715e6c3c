#!/bin/sh
# fork_churn.sh ITERATIONS: upstream dirty_log_test in every log mode while
# a shell loop forks two short-lived processes every 100 ms (rmmod of a
# module that is not loaded, usleep).  No kvm_dirty involved: run it with
# vm-run --no-module.  It reproduces the L1 memory corruption of nested
# npt=1 under QEMU TCG (Documentation/known-issues.rst); it is not in any
# test lane.
rm -f /tmp/churn.stop
(
	while [ ! -e /tmp/churn.stop ]; do
		rmmod kvm_dirty 2>/dev/null
		usleep 100000
	done
) &
churn=$!
/tests/dirty_log_test -M all -i "${1:-3}" -I 10 > /tmp/churn.out 2>&1
rc=$?
touch /tmp/churn.stop
wait $churn
tail -3 /tmp/churn.out
exit $rc
