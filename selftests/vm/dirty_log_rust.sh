#!/bin/sh
# dirty_log_rust.sh MODE ITERATIONS [ARGS...]: upstream dirty_log_test in
# MODE (dirty-log, clear-log, dirty-ring, wp-all, shared-bitmap or all) with
# its VMs bound to kvm_dirty.ko, over every guest mode it supports (unless
# ARGS has -m).  The counters must show that the module served every
# dirty-tracking call of the run: per VM, one GET_DIRTY_LOG (and in
# clear-log one CLEAR_DIRTY_LOG) per iteration after the first, the bitmap
# marks or ring pushes of the guest's writes, and the ring resets.  In
# shared-bitmap (kernel/0014) a collection is a scan of the slot's bitmap
# through its mapping and a KVM_WRITE_PROTECT_ALL_MEM: no GET_DIRTY_LOG at
# all, one bitmap per VM, mapped, retired with the VM and freed.
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
all) dl=$(runs dirty-log) cl=$(runs clear-log) dr=$(runs dirty-ring) wa=$(runs wp-all)
	sb=$(runs shared-bitmap) ;;
dirty-log) dl=$vms cl=0 dr=0 wa=0 sb=0 ;;
clear-log) dl=0 cl=$vms dr=0 wa=0 sb=0 ;;
dirty-ring) dl=0 cl=0 dr=$vms wa=0 sb=0 ;;
wp-all) dl=0 cl=0 dr=0 wa=$vms sb=0 ;;
shared-bitmap) dl=0 cl=0 dr=0 wa=0 sb=$vms ;;
*) fail "dirty_log_rust.sh: no such mode $mode" ;;
esac
echo "runs: $vms VMs (dirty-log $dl, clear-log $cl, dirty-ring $dr, wp-all $wa, shared-bitmap $sb)"
want_gt "VMs run" "$vms" 0
# arm64's selftest library also creates a VM to probe the page sizes.
want_ge "VMs bound" "$(delta before vms_bound)" "$vms"
want_eq "VMs of the run still bound" "$(delta before vms_live)" 0
# shared-bitmap's collections scan a mapping: no GET_DIRTY_LOG.
want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" $(((dl + cl + wa) * (iters - 1)))
want_eq "WP-all calls" "$(delta before wp_all_calls)" $(((wa + sb) * (iters - 1)))
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
if [ "$dl" = 0 ] && [ "$cl" = 0 ] && [ "$wa" = 0 ] && [ "$sb" = 0 ]; then
	want_eq "bitmap marks" "$(delta before bitmap_marks)" 0
fi
# One bitmap per shared-bitmap VM, the test slot's: its descriptor got
# and mapped once, pages faulted in, retired with its file open when the
# VM went (its mapping zapped), freed when the test closed the file (at
# the next VM of the mode, or at its exit).  Nothing read(2) it, nothing
# touched it once retired.
want_eq "VMs that enabled the shared bitmap" "$(delta before shared_bitmap_vms)" "$sb"
for k in allocs fds files maps retired zaps frees; do
	want_eq "shared_bitmap_$k" "$(delta before shared_bitmap_$k)" "$sb"
done
want_eq "shared bitmaps' mmaps refused" "$(delta before shared_bitmap_map_refused)" 0
want_eq "faults refused with SIGBUS" "$(delta before shared_bitmap_sigbus)" 0
want_eq "words taken by read(2)" "$(delta before shared_bitmap_read_words)" 0
if [ "$sb" -gt 0 ]; then
	want_ge "pages of the mappings faulted in" "$(delta before shared_bitmap_faults)" "$sb"
	want_gt "bitmap marks" "$(delta before bitmap_marks)" 0
else
	want_eq "pages of the mappings faulted in" "$(delta before shared_bitmap_faults)" 0
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
