#!/bin/sh
# perf_rust.sh ARGS...: upstream dirty_log_perf_test, bound to the module.
# The module's own walk must have served the masked write-protects.  On the
# x86 TDP MMU, with THP backing and manual protect (initially-set, the
# test's default), the words that meet a huge page go to KVM's function,
# which splits it; on the shadow MMU the rmap walk serves every word (the
# guest maps its memory with 4K pages, so no SPTE is huge).
. /tests/lib.sh
bind_vms 1
snap before
/tests/dirty_log_perf_test "$@" || fail "dirty_log_perf_test $*"
want_gt "VMs bound" "$(delta before vms_bound)" 0
want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
want_eq "GET_DIRTY_LOG errors" "$(delta before get_dirty_log_errors)" 0
echo "walk: words $(delta before walk_words) steps $(delta before walk_steps)" \
	"leaf_tables $(delta before walk_leaf_tables) cleared $(delta before walk_cleared)" \
	"kvm_words $(delta before walk_kvm_words) rmap_words $(delta before walk_rmap_words)"
case $(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null) in
N)
	want_gt "words the Rust walk served" "$(delta before walk_words)" 0
	want_eq "words the rmap walk served" "$(delta before walk_rmap_words)" \
		"$(delta before walk_words)"
	want_eq "words left to KVM's function" "$(delta before walk_kvm_words)" 0 ;;
Y)
	want_gt "words the Rust walk served" "$(delta before walk_words)" 0
	case " $* " in
	*" -g "*) ;;
	*anonymous_thp*)
		want_gt "words with a huge page left to KVM's function" \
			"$(delta before walk_kvm_words)" 0 ;;
	*)
		want_eq "words left to KVM's function" "$(delta before walk_kvm_words)" 0 ;;
	esac ;;
esac
