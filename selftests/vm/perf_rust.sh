#!/bin/sh
# perf_rust.sh ARGS...: upstream dirty_log_perf_test, bound to the module.
. /tests/lib.sh
bind_vms 1
snap before
/tests/dirty_log_perf_test "$@" || fail "dirty_log_perf_test $*"
want_gt "VMs bound" "$(delta before vms_bound)" 0
want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
