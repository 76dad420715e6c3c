#!/bin/sh
# errors.sh TEST COUNTER rust|c: one of our error-code selftests on one
# path.  TEST prints "# COUNTER calls: N errors: E"; on the Rust path the
# module's COUNTER and COUNTER_errors must have moved by exactly that much,
# on the C path (bind_vms=0) not at all.
. /tests/lib.sh
test=$1 counter=$2 path=$3
[ "$path" = rust ] && bind_vms 1 || bind_vms 0
snap before
out=$(/tests/"$test")
rc=$?
bind_vms 1
echo "$out"
[ $rc = 0 ] || fail "$test on the $path path"
calls=$(echo "$out" | sed -n "s/^# $counter calls: \([0-9]*\) errors: .*/\1/p")
errors=$(echo "$out" | sed -n "s/^# $counter calls: [0-9]* errors: \([0-9]*\)/\1/p")
[ -n "$calls" ] || fail "$test printed no call count"
if [ "$path" = rust ]; then
	want_eq "$counter calls served" "$(delta before "$counter")" "$calls"
	want_eq "$counter errors returned" "$(delta before "${counter}_errors")" "$errors"
else
	want_eq "$counter calls served by the module" "$(delta before "$counter")" 0
fi
