#!/bin/sh
# stress.sh PATH ARGS...: dirty_stress (a migration-like stress checked byte
# for byte) with its VM on PATH, rust (bound to kvm_dirty.ko, counters must
# show the module served it; with -A, that write-protect-all replaced the
# per-page write-protect; with -M shared, which implies -A, that the
# mappings of the shared bitmaps did the harvests, with no GET_DIRTY_LOG,
# and that the module's shared_bitmap_ counters agree with what the test
# did) or c (bind_vms=0, counters must not move).
. /tests/lib.sh
path=$1
shift
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
case $path in
rust) bind_vms 1 ;;
c) bind_vms 0 ;;
*) fail "stress.sh: path rust or c, not $path" ;;
esac
snap before
run_out /tmp/stress.out /tests/dirty_stress "$@"
rc=$?
bind_vms 1
[ $rc = 0 ] || fail "dirty_stress $*"
served=$(($(delta before get_dirty_log) + $(delta before ring_resets)))
# field NAME: NAME's number on dirty_stress's STRESS line.
field() { sed -n "s/^STRESS .* $1=\([0-9]*\).*/\1/p" /tmp/stress.out; }
shared=0
case " $* " in *" -M shared "*) shared=1 ;; esac
if [ "$path" = rust ] && [ $shared = 1 ]; then
	# Every harvest a scan of a mapping or a read(2): nothing for GET,
	# CLEAR or a ring reset to serve.
	want_eq "GET_DIRTY_LOG calls" "$(delta before get_dirty_log)" 0
	want_eq "CLEAR_DIRTY_LOG calls" "$(delta before clear_dirty_log)" 0
	want_eq "ring resets" "$(delta before ring_resets)" 0
	want_gt "bitmap marks of the guest's writes" "$(delta before bitmap_marks)" 0
	want_eq "VMs that enabled the shared bitmap" \
		"$(delta before shared_bitmap_vms)" 1
	# One descriptor per bitmap: the slot's, again after each logging
	# off and on (-L), and the churned slot's each time it is created
	# logged.  Each is retired (memslot change or the VM's end) with its
	# file open, so its mapping is zapped, and freed when the test
	# closes the file.
	fds=$(field sb_fds)
	want_gt "descriptors the test got" "$fds" 0
	for k in fds files allocs retired zaps frees maps; do
		want_eq "shared_bitmap_$k" "$(delta before shared_bitmap_$k)" "$fds"
	done
	want_eq "mmaps of retired bitmaps refused" \
		"$(delta before shared_bitmap_map_refused)" "$(field sb_map_refused)"
	want_eq "pages mapped by the fault handler, each once" \
		"$(delta before shared_bitmap_faults)" "$(field sb_mapped_pages)"
	want_eq "faults refused with SIGBUS" "$(delta before shared_bitmap_sigbus)" 0
	want_eq "words taken by read(2)" \
		"$(delta before shared_bitmap_read_words)" "$(field sb_drained_words)"
	want_eq "pages taken by read(2)" \
		"$(delta before shared_bitmap_read_pages)" "$(field sb_drained_pages)"
	want_eq "words read(2) put back" "$(delta before shared_bitmap_read_restored)" 0
	case " $* " in
	*" -N "*) ;;
	*)
		want_eq "WP-all calls, one per sync" \
			"$(delta before wp_all_calls)" "$(field syncs)" ;;
	esac
elif [ "$path" = rust ]; then
	want_gt "harvests served in Rust" "$served" 0
fi
if [ "$path" = rust ]; then
	want_eq "VMs still bound" "$(delta before vms_live)" 0
	case " $* " in
	*" -A "* | *" -M shared "*)
		want_gt "WP-all calls" "$(delta before wp_all_calls)" 0
		# One WP-all per round; a round of -B harvests twice (the
		# rings' reset and the bitmap's GET), neither protecting; a
		# round of -M shared has no harvest ioctl.
		per=1
		case " $* " in *" -B "*) per=2 ;; esac
		[ $shared = 1 ] && per=0
		want_eq "harvests without write-protect = $per per WP-all" \
			"$(delta before harvest_no_wp)" \
			"$((per * $(delta before wp_all_calls)))"
		want_eq "pages write-protected one by one" \
			"$(delta before pages_protected)" 0
		want_gt "push-downs into leaf tables" "$(delta before wp_push_l1)" 0
		case " $* " in
		*" -L "*)
			want_gt "log enables served by WP-all" \
				"$(delta before wp_all_log_enables)" 0 ;;
		esac
		;;
	esac
else
	want_eq "harvests served in Rust" "$served" 0
fi
