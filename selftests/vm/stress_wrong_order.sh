#!/bin/sh
# stress_wrong_order.sh ARGS...: a test of dirty_stress's check.  In manual
# protect mode with the copy before the CLEAR (-W), writes between the two
# are lost; dirty_stress must find them and fail.  On the Rust path.
. /tests/lib.sh
bind_vms 1
want_lost_pages "copying before CLEAR" -M clear -W "$@"
