#!/bin/sh
# stress_wrong_order.sh ARGS...: a test of dirty_stress's check.  In manual
# protect mode with the copy before the CLEAR (-W), writes between the two
# are lost; dirty_stress must find them and fail.  On the Rust path.
. /tests/lib.sh
bind_vms 1
/tests/dirty_stress -M clear -W "$@" > /tmp/wrong.out 2>&1
rc=$?
grep -E '^STRESS|^dirty_stress: page' /tmp/wrong.out | head -4
[ $rc != 0 ] || fail "dirty_stress -W passed: its check cannot see a lost page"
grep -q '^STRESS .* diffs=[1-9]' /tmp/wrong.out || fail "dirty_stress -W failed for another reason"
echo "ok: copying before CLEAR loses pages, and dirty_stress says so"
