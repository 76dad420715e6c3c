#!/bin/sh
# wp_all_huge.sh: write-protect-all with huge pages and with dirty logging
# turned off and on (selftests/wp_all_huge.c, x86, both MMUs), on a THP-backed
# slot and on a hugetlb one.  The test checks KVM's own statistics (2M
# mappings kept when logging starts and under reads, no read faults, a
# split per region written) and the pages reported; here the counters must
# show that the module served both log enables of each run, each GET
# without write-protect, and the two KVM_WRITE_PROTECT_ALL_MEM calls.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"

run() {
	snap before
	/tests/wp_all_huge "$@" > /tmp/wpall-huge.out 2>&1
	rc=$?
	cat /tmp/wpall-huge.out
	[ $rc = 0 ] || fail "wp_all_huge $*"
	want_eq "log enables served by WP-all ($*)" \
		"$(delta before wp_all_log_enables)" 2
	want_eq "WP-all calls ($*)" "$(delta before wp_all_calls)" 2
	want_eq "GETs without write-protect ($*)" \
		"$(delta before harvest_no_wp)" 5
	want_eq "pages write-protected one by one ($*)" \
		"$(delta before pages_protected)" 0
	want_gt "push-downs into leaf tables ($*)" "$(delta before wp_push_l1)" 0
	want_gt "push-downs into level-2 tables ($*)" "$(delta before wp_push_l2)" 0
}

bind_vms 1
run
# 64M of hugetlb: 32 2M pages, and a few for slot 0's neighbours.
echo 40 > /proc/sys/vm/nr_hugepages
run -H
echo 0 > /proc/sys/vm/nr_hugepages

# KVM's C path offers no write-protect-all: a skip.
bind_vms 0
/tests/wp_all_huge > /tmp/wpall-huge.out 2>&1
want_eq "wp_all_huge exit status (C path)" "$?" 4
bind_vms 1
