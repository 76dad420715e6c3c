#!/bin/sh
# dirty_log_rust.sh MODE ITERATIONS [ARGS...]: upstream dirty_log_test in
# MODE (dirty-log, clear-log, dirty-ring, wp-all or all) with its VMs bound to
# kvm_dirty.ko, over every guest mode it supports (unless ARGS has -m).
# The counters must show that the module served every dirty-tracking call
# of the run: per VM, one GET_DIRTY_LOG (and in clear-log one
# CLEAR_DIRTY_LOG) per iteration after the first, the bitmap marks or ring
# pushes of the guest's writes, and the ring resets.
. /tests/lib.sh
mode=$1 iters=$2
shift 2
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
bind_vms 1
snap before
run_out /tmp/dlt.out /tests/dirty_log_test -M "$mode" -i "$iters" -I 10 "$@"
rc=$?
[ $rc = 0 ] || fail "dirty_log_test -M $mode"

# One VM per (log mode, guest mode) the test ran.
runs() { awk -v m="$1" '/Testing Log Mode/ { cur = $4 } /Testing guest mode/ &&
	(m == "any" || cur == "\047" m "\047" || cur == "") { n++ } END { print n + 0 }' /tmp/dlt.out; }
vms=$(runs any)
case $mode in
all) dl=$(runs dirty-log) cl=$(runs clear-log) dr=$(runs dirty-ring) wa=$(runs wp-all) ;;
dirty-log) dl=$vms cl=0 dr=0 wa=0 ;;
clear-log) dl=0 cl=$vms dr=0 wa=0 ;;
dirty-ring) dl=0 cl=0 dr=$vms wa=0 ;;
wp-all) dl=0 cl=0 dr=0 wa=$vms ;;
esac
echo "runs: $vms VMs (dirty-log $dl, clear-log $cl, dirty-ring $dr, wp-all $wa)"
want_gt "VMs run" "$vms" 0
# arm64's selftest library also creates a VM to probe the page sizes.
want_ge "VMs bound" "$(delta before vms_bound)" "$vms"
want_eq "VMs of the run still bound" "$(delta before vms_live)" 0
want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" $(((dl + cl + wa) * (iters - 1)))
want_eq "WP-all calls" "$(delta before wp_all_calls)" $((wa * (iters - 1)))
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
want_eq "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" $((cl * (iters - 1)))
want_eq "CLEAR_DIRTY_LOG errors" "$(delta before clear_dirty_log_errors)" 0
if [ "$dl" -gt 0 ]; then
	want_gt "pages harvested" "$(delta before pages_harvested)" 0
	want_gt "pages write-protected" "$(delta before pages_protected)" 0
	want_gt "TLB flushes" "$(delta before tlb_flushes)" 0
	# every page GET harvested was marked by the Rust mark_page_dirty
	[ "$(delta before bitmap_marks)" -ge "$(delta before pages_protected)" ] ||
		fail "bitmap marks $(delta before bitmap_marks) < pages write-protected"
	echo "ok: bitmap marks >= pages write-protected"
fi
if [ "$dl" = 0 ]; then
	want_eq "pages write-protected by GET" "$(delta before pages_protected)" 0
fi
if [ "$cl" -gt 0 ]; then
	want_gt "pages cleared and re-protected" "$(delta before pages_cleared)" 0
	want_gt "bitmap marks" "$(delta before bitmap_marks)" 0
fi
if [ "$dr" -gt 0 ]; then
	want_gt "ring pushes" "$(delta before ring_pushes)" 0
	want_gt "ring resets" "$(delta before ring_resets)" 0
	want_gt "entries reset" "$(delta before ring_entries_reset)" 0
	want_gt "coalesced write-protects" "$(delta before ring_wp_calls)" 0
	# Consecutive batches of one slot share an mmu_lock section.
	want_gt "their mmu_lock sections" "$(delta before ring_mmu_sections)" 0
	[ "$(delta before ring_mmu_sections)" -le "$(delta before ring_wp_calls)" ] ||
		fail "more mmu_lock sections than write-protects"
	want_eq "invalid batches" "$(delta before ring_invalid)" 0
	want_eq "ring overflows" "$(delta before ring_full)" 0
fi
if [ "$dl" = 0 ] && [ "$cl" = 0 ] && [ "$wa" = 0 ]; then
	want_eq "bitmap marks" "$(delta before bitmap_marks)" 0
fi
# The masked write-protects of GET, CLEAR and the ring resets: the module's
# own walk, of the page tables (x86 TDP MMU, arm64 stage 2) or of the rmaps
# (x86 shadow MMU).  dirty_log_test itself fails if a written page goes
# unreported, i.e. if a protect was missed.
echo "walk: words $(delta before walk_words) steps $(delta before walk_steps)" \
	"leaf_tables $(delta before walk_leaf_tables) cleared $(delta before walk_cleared)" \
	"(plain $(delta before walk_cleared_plain))" \
	"kvm_words $(delta before walk_kvm_words) rmap_words $(delta before walk_rmap_words)"
walk=$(cat /sys/module/kvm_dirty/parameters/own_walk)
if [ $((dl + cl + dr)) -gt 0 ]; then
	if [ "$walk" = Y ]; then
		want_gt "words the Rust walk write-protected" "$(delta before walk_words)" 0
		want_gt "SPTEs the Rust walk write-protected" "$(delta before walk_cleared)" 0
		# arm64 clears W with a plain store on leaves with AF set (only
		# the hardware could race, setting AF); x86 with an atomic AND.
		if [ "$(uname -m)" = aarch64 ]; then
			want_gt "stage-2 leaves write-protected with a plain store" \
				"$(delta before walk_cleared_plain)" 0
		else
			want_eq "SPTEs write-protected with a plain store" \
				"$(delta before walk_cleared_plain)" 0
		fi
	else
		want_eq "words the Rust walk write-protected" "$(delta before walk_words)" 0
		want_gt "words left to KVM's function" "$(delta before walk_kvm_words)" 0
	fi
fi
