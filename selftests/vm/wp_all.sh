#!/bin/sh
# wp_all.sh [tdp | shadow | arm64 | unsupported] [DIRTY_LOG_TEST ARGS...]:
# write-protect-all (KVM_CAP_DIRTY_WP_ALL).
#
# On the x86 TDP MMU, or with "shadow" on the shadow MMU: upstream dirty_log_test in its wp-all mode (the
# selftest patch in kernel/), with the VM bound.  Each round is GET_DIRTY_LOG
# without write-protect, then KVM_WRITE_PROTECT_ALL_MEM, then the test's
# check of the pages; the counters must show every GET harvesting without
# protecting, one WP-all per GET, push-downs into leaf tables and above, and
# non-leaf entries given W back by faults.  Then dirty_stress -A without its
# WP-all calls must lose pages (so the WP-all is what keeps -A correct), and
# the C path must not offer the capability.
#
# The TDP MMU must show leaves made writable by the lockless fast path and no
# shadow root loaded; the shadow MMU (no fast path for these VMs) stale roots
# brought up to date as vCPUs loaded them.
#
# On arm64 stage 2 (kernel/0008): start-level table descriptors made
# pending, push-downs that make the child's table descriptors pending and its
# leaves read-only, and no W ever given to a non-leaf entry (stage 2 has
# none); the rest as above.  DIRTY_LOG_TEST ARGS (e.g. -m 6, a guest mode)
# are passed on.
#
# With "unsupported": the module must refuse it, so both tests skip, and
# nothing of it is counted.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
iters=4
variant=${1:-tdp}
[ $# -gt 0 ] && shift

# dirty_stress -A exits 4 (KSFT_SKIP) where the VM lacks the capability.
want_skip() {
	/tests/dirty_stress -A -M bitmap -t 1 > /tmp/wpall-skip.out 2>&1
	rc=$?
	grep -m1 -i 'requirement\|skip' /tmp/wpall-skip.out
	want_eq "dirty_stress -A exit status ($1)" "$rc" 4
}

bind_vms 1
snap before
/tests/dirty_log_test -M wp-all -i $iters -I 10 "$@" > /tmp/wpall.out 2>&1
rc=$?
cat /tmp/wpall.out
[ $rc = 0 ] || fail "dirty_log_test -M wp-all"
vms=$(grep -c 'Testing guest mode' /tmp/wpall.out)

if [ "$variant" = unsupported ]; then
	want_eq "dirty_log_test wp-all runs" "$vms" 0
	grep -q "Log mode 'wp-all' not supported" /tmp/wpall.out ||
		fail "dirty_log_test did not skip wp-all"
	want_eq "VMs that turned WP-all on" "$(delta before wp_all_enabled)" 0
	want_eq "WP-all calls" "$(delta before wp_all_calls)" 0
	want_skip "module bound, WP-all unsupported"
	exit 0
fi

want_gt "dirty_log_test wp-all runs" "$vms" 0
gets=$((vms * (iters - 1)))
want_eq "VMs that turned WP-all on" "$(delta before wp_all_enabled)" "$vms"
want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" "$gets"
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
want_eq "harvests without write-protect" "$(delta before harvest_no_wp)" "$gets"
want_eq "pages write-protected one by one" "$(delta before pages_protected)" 0
want_eq "WP-all calls" "$(delta before wp_all_calls)" "$gets"
# Its slots are created logged: no log enable for the module to serve.
want_eq "log enables served by WP-all" "$(delta before wp_all_log_enables)" 0
want_gt "push-downs into leaf tables" "$(delta before wp_push_l1)" 0
want_gt "push-downs into level-2 tables" "$(delta before wp_push_l2)" 0
want_gt "entries write-protected by push-downs" "$(delta before wp_push_protected)" 0
if [ "$variant" = arm64 ]; then
	want_gt "start-level descriptors made pending" "$(delta before wp_all_root_entries)" 0
	want_gt "table descriptors made pending by push-downs" "$(delta before wp_push_pended)" 0
	want_eq "non-leaf entries given W back" "$(delta before wp_grants)" 0
	want_eq "shadow roots brought up to date at load" "$(delta before wp_root_loads)" 0
	want_eq "leaves given W by the lockless fast path" "$(delta before wp_fast_fixes)" 0
else
	want_gt "non-leaf entries given W back" "$(delta before wp_grants)" 0
	want_eq "table descriptors made pending by push-downs" "$(delta before wp_push_pended)" 0
fi
if [ "$variant" = shadow ]; then
	# No TDP MMU root: the shadow roots are protected as vCPUs load them.
	want_eq "TDP MMU root entries write-protected" "$(delta before wp_all_root_entries)" 0
	want_gt "shadow roots brought up to date at load" "$(delta before wp_root_loads)" 0
	want_eq "leaves given W by the lockless fast path" "$(delta before wp_fast_fixes)" 0
elif [ "$variant" = tdp ]; then
	want_gt "TDP MMU root entries write-protected" "$(delta before wp_all_root_entries)" 0
	want_eq "shadow roots brought up to date at load" "$(delta before wp_root_loads)" 0
	want_gt "leaves given W by the lockless fast path" "$(delta before wp_fast_fixes)" 0
fi
echo "push-downs by level: l1 $(delta before wp_push_l1) l2 $(delta before wp_push_l2)" \
	"l3 $(delta before wp_push_l3) l4 $(delta before wp_push_l4);" \
	"retries $(delta before wp_retries); fast-path fixes $(delta before wp_fast_fixes);" \
	"root loads $(delta before wp_root_loads); shared links $(delta before wp_shared_links);" \
	"descriptors made pending $(delta before wp_push_pended)"

# A test of the test: without the WP-all, harvests that do not protect
# leave every page writable, and the byte-for-byte check must see it.
want_lost_pages "harvesting without protect and without WP-all" -A -N -M bitmap -t 5

bind_vms 0
want_skip "C path"
bind_vms 1
