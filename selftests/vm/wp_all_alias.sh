#!/bin/sh
# wp_all_alias.sh [shadow]: write-protect-all through a guest page table
# mapped twice (selftests/wp_all_alias.c): every round must report exactly
# the pages written.  With "shadow" (the shadow MMU), the counters must
# show a shadow page linked under a second parent with its writable entries
# recorded (->wp_link_shared), which only this test makes happen.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"

bind_vms 1
snap before
/tests/wp_all_alias > /tmp/wpall-alias.out 2>&1
rc=$?
cat /tmp/wpall-alias.out
[ $rc = 0 ] || fail "wp_all_alias"
want_eq "WP-all calls" "$(delta before wp_all_calls)" 5
want_eq "pages write-protected one by one" "$(delta before pages_protected)" 0
if [ "${1:-}" = shadow ]; then
	want_gt "shadow pages linked with writable entries recorded" \
		"$(delta before wp_shared_links)" 0
fi

bind_vms 0
/tests/wp_all_alias > /tmp/wpall-alias.out 2>&1
want_eq "wp_all_alias exit status (C path)" "$?" 4
bind_vms 1
