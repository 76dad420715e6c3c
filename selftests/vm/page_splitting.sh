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
run_out /tmp/split.out /tests/dirty_log_page_splitting_test -b 64M -s anonymous_hugetlb
rc=$?
echo 0 > /proc/sys/vm/nr_hugepages
[ $rc = 0 ] || fail "dirty_log_page_splitting_test"
want_gt "VMs bound" "$(delta before vms_bound)" 0
want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
want_gt "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" 0
want_eq "CLEAR_DIRTY_LOG errors" "$(delta before clear_dirty_log_errors)" 0
