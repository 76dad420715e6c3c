#!/bin/sh
# stress_wrong_order.sh [shared] ARGS...: a test of dirty_stress's check,
# on the Rust path; dirty_stress must find the writes a wrong order loses
# and fail.
#
# By default manual protect mode with the copy before the CLEAR (-M clear
# -W): writes between the two are lost.
#
# With "shared": the shared bitmap with KVM_WRITE_PROTECT_ALL_MEM before the
# scan of the mapping (-M shared -W), the order
# Documentation/shared-bitmap.rst forbids: a write after the
# write-protect-all faults, marks its page and makes it writable, the scan
# takes the bit, and a later write is never reported.  The counters must
# show that the mapping was scanned and nothing else harvested, so that
# the loss is the order's.
. /tests/lib.sh
bind_vms 1
if [ "$1" != shared ]; then
	want_lost_pages "copying before CLEAR" -M clear -W "$@"
	exit 0
fi
shift
snap before
want_lost_pages "write-protect-all before the scan of the mapping" \
	-M shared -W "$@"
want_gt "pages of the mappings faulted in" "$(delta before shared_bitmap_faults)" 0
want_eq "GET_DIRTY_LOG calls" "$(delta before get_dirty_log)" 0
want_gt "WP-all calls" "$(delta before wp_all_calls)" 0
want_eq "harvests without write-protect" "$(delta before harvest_no_wp)" 0
want_eq "shared bitmaps freed, as many as allocated" \
	"$(delta before shared_bitmap_frees)" "$(delta before shared_bitmap_allocs)"
