#!/bin/sh
# page_splitting.sh: upstream dirty_log_page_splitting_test (x86, TDP MMU)
# with its VM bound to kvm_dirty.ko: KVM's eager page splitting when dirty
# logging is enabled, checked through KVM's own page stats, with GET and
# CLEAR (its manual-protect pass) served in Rust.  HugeTLB-backed, as the
# test asks; the write-protect-all hooks must not disturb a VM that does
# not use it.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
echo 160 > /proc/sys/vm/nr_hugepages
want_ge "2M huge pages reserved" "$(cat /proc/sys/vm/nr_hugepages)" 128
bind_vms 1
snap before
split() {
	/tests/dirty_log_page_splitting_test -b 64M -s anonymous_hugetlb > /tmp/split.out 2>&1
	rc=$?
	cat /tmp/split.out
}
split
# A vCPU exit that is not a ucall, seen once (2026-11-24, make check, 1.7 s
# into the run; 6 reruns passed, bound and on the C path).  The upstream
# test does not print the exit reason; the nested npt=1 L2 SHUTDOWN of
# Documentation/known-issues.rst is the suspect.  Said, and retried once: a
# second one fails.
if [ $rc != 0 ] && grep -q 'get_ucall(vcpu, NULL) != UCALL_SYNC' /tmp/split.out; then
	echo "KNOWN-ISSUE?: unexpected vCPU exit in dirty_log_page_splitting_test; retrying once"
	split
fi
echo 0 > /proc/sys/vm/nr_hugepages
[ $rc = 0 ] || fail "dirty_log_page_splitting_test"
want_gt "VMs bound" "$(delta before vms_bound)" 0
want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
want_gt "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" 0
want_eq "CLEAR_DIRTY_LOG errors" "$(delta before clear_dirty_log_errors)" 0
