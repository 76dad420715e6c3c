#!/bin/sh
# wp_masked.sh: the masked write-protect of GET_DIRTY_LOG and of
# CLEAR_DIRTY_LOG leaves exactly the harvested pages non-writable, and a
# write to each faults and is logged again (selftests/wp_masked.c, x86, both
# MMUs), on the module and on KVM's C path.  The module's own walk must have
# served every word and cleared W on exactly the SPTEs the test counted: of
# the page tables on the TDP MMU (npt=1, rust/algo/pt_walk.rs), of the rmaps on
# the shadow MMU (npt=0, rust/algo/rmap_walk.rs; the guest maps the slot with 4K
# pages, so no huge SPTE sends a word to KVM's function).
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)

run() {
	snap before
	/tests/wp_masked "$@" > /tmp/wp-masked.out 2>&1
	rc=$?
	cat /tmp/wp-masked.out
	[ $rc = 0 ] || fail "wp_masked $*"
	cleared=$(sed -n 's/^WP_MASKED .*expect_cleared=\([0-9]*\).*/\1/p' /tmp/wp-masked.out)
	[ -n "$cleared" ] || fail "wp_masked $*: no WP_MASKED line"
	echo "walk: words $(delta before walk_words) steps $(delta before walk_steps)" \
		"leaf_tables $(delta before walk_leaf_tables)" \
		"cleared $(delta before walk_cleared) kvm_words $(delta before walk_kvm_words)" \
		"rmap_words $(delta before walk_rmap_words) rmap_sptes $(delta before walk_rmap_sptes)"
}

bind_vms 1
for mode in "" -c; do
	run $mode
	want_eq "SPTEs the Rust walk write-protected ($mode)" \
		"$(delta before walk_cleared)" "$cleared"
	want_gt "words the Rust walk served ($mode)" "$(delta before walk_words)" 0
	want_eq "words left to KVM's function ($mode)" \
		"$(delta before walk_kvm_words)" 0
	if [ "$npt" = Y ]; then
		want_eq "words the rmap walk served ($mode, TDP MMU)" \
			"$(delta before walk_rmap_words)" 0
	else
		want_eq "words the rmap walk served ($mode, shadow MMU)" \
			"$(delta before walk_rmap_words)" "$(delta before walk_words)"
		want_gt "SPTEs the rmaps named ($mode, shadow MMU)" \
			"$(delta before walk_rmap_sptes)" 0
	fi
done

# KVM's C path: the same behaviour, nothing served by the module.
bind_vms 0
for mode in "" -c; do
	run $mode
	want_eq "words the module served ($mode, C path)" \
		"$(( $(delta before walk_words) + $(delta before walk_kvm_words) ))" 0
done
bind_vms 1
