#!/bin/sh
# stress.sh PATH ARGS...: dirty_stress (a migration-like stress checked byte
# for byte) with its VM on PATH, rust (bound to kvm_dirty.ko, counters must
# show the module served it; with -A, that write-protect-all replaced the
# per-page write-protect) or c (bind_vms=0, counters must not move).
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
if [ "$path" = rust ]; then
	want_gt "harvests served in Rust" "$served" 0
	want_eq "VMs still bound" "$(delta before vms_live)" 0
	case " $* " in
	*" -A "*)
		want_gt "WP-all calls" "$(delta before wp_all_calls)" 0
		# One WP-all per round; a round of -B harvests twice (the
		# rings' reset and the bitmap's GET), neither protecting.
		per=1
		case " $* " in *" -B "*) per=2 ;; esac
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
