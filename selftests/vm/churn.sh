#!/bin/sh
# churn.sh CMD [ARGS...]: CMD while L1's memory management moves and remaps
# the guests' memory under KVM: every 200 ms every transparent huge page is
# split (debugfs split_huge_pages) and the memory compacted
# (compact_memory), by mm_churn, one process that never forks; khugepaged
# collapses pages back as fast as it can.  Each split, collapse and page
# move invalidates the secondary MMU (mmu_notifier: KVM zaps the SPTEs)
# while the dirty-tracking paths harvest and write-protect the same ranges;
# a write that lands in an old page after its copy, or a SPTE left writable
# over a new one, is a lost write that a self-checking guest (migrate.sh's
# payload, dirty_stress) sees.  /proc/vmstat must show that the churn
# happened (splits and page migrations), or the test fails.  Prints a CHURN
# line; exits with CMD's status.
. /tests/lib.sh
[ $# -gt 0 ] || fail "usage: churn.sh CMD [ARGS...]"
thp=/sys/kernel/mm/transparent_hugepage
split=/sys/kernel/debug/split_huge_pages
[ -w $split ] || fail "no $split (CONFIG_TRANSPARENT_HUGEPAGE, debugfs)"
vm() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
k=$thp/khugepaged
saved="$(sed 's/.*\[\(.*\)\].*/\1/' $thp/enabled) $(cat $k/scan_sleep_millisecs)
	$(cat $k/alloc_sleep_millisecs) $(cat $k/pages_to_scan)"
echo always > $thp/enabled
echo 10 > $k/scan_sleep_millisecs
echo 10 > $k/alloc_sleep_millisecs
echo 8192 > $k/pages_to_scan
splits0=$(vm thp_split_pmd) moved0=$(vm pgmigrate_success)
collapsed0=$(vm thp_collapse_alloc)
rm -f /tmp/churn.stop
# One process, no forks: a forking shell loop beside an L2 guest is the
# trigger of the L1 memory corruption of known-issues.rst.
/tests/mm_churn /tmp/churn.stop 200 > /tmp/churn.out 2>&1 &
churn=$!
"$@"
rc=$?
touch /tmp/churn.stop
wait $churn || { cat /tmp/churn.out; fail "mm_churn failed"; }
set -- $saved
echo $1 > $thp/enabled
echo $2 > $k/scan_sleep_millisecs
echo $3 > $k/alloc_sleep_millisecs
echo $4 > $k/pages_to_scan
splits=$(($(vm thp_split_pmd) - splits0))
moved=$(($(vm pgmigrate_success) - moved0))
collapsed=$(($(vm thp_collapse_alloc) - collapsed0))
echo "CHURN thp_split_pmd=$splits pgmigrate_success=$moved" \
	"thp_collapse_alloc=$collapsed $(sed -n 's/^MM_CHURN //p' /tmp/churn.out)"
[ $rc = 0 ] || exit $rc
want_gt "huge page splits during the run" "$splits" 0
want_gt "collapses or page moves during the run" "$((collapsed + moved))" 0
