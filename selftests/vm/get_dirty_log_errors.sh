#!/bin/sh
# get_dirty_log_errors.sh rust|c: the error-code selftest on one path; on the
# Rust path the counters must have moved by exactly the calls it made.
. /tests/lib.sh
path=$1
[ "$path" = rust ] && bind_vms 1 || bind_vms 0
snap before
out=$(/tests/get_dirty_log_errors)
rc=$?
bind_vms 1
echo "$out"
[ $rc = 0 ] || fail "get_dirty_log_errors on the $path path"
calls=$(echo "$out" | sed -n 's/^# get_dirty_log calls: \([0-9]*\) errors: .*/\1/p')
errors=$(echo "$out" | sed -n 's/^# get_dirty_log calls: [0-9]* errors: \([0-9]*\)/\1/p')
if [ "$path" = rust ]; then
	want_eq "calls served" "$(delta before get_dirty_log)" "$calls"
	want_eq "errors returned" "$(delta before get_dirty_log_errors)" "$errors"
else
	want_eq "calls served by the module" "$(delta before get_dirty_log)" 0
fi
