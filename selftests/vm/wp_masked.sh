#!/bin/sh
# wp_masked.sh: the masked write-protect of GET_DIRTY_LOG and of
# CLEAR_DIRTY_LOG leaves exactly the harvested pages non-writable, and a
# write to each faults and is logged again (selftests/wp_masked.c, x86, both
# MMUs), on the module and on KVM's C path.  On the TDP MMU (npt=1) the
# module's own walk (rust/pt_walk.rs) must have served every word and cleared
# W on exactly the SPTEs the test counted; on the shadow MMU KVM's function
# serves (Documentation/design.rst).
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
		"cleared $(delta before walk_cleared) kvm_words $(delta before walk_kvm_words)"
}

bind_vms 1
for mode in "" -c; do
	run $mode
	if [ "$npt" = Y ]; then
		want_eq "SPTEs the Rust walk write-protected ($mode)" \
			"$(delta before walk_cleared)" "$cleared"
		want_gt "words the Rust walk served ($mode)" "$(delta before walk_words)" 0
		want_eq "words left to KVM's function ($mode)" \
			"$(delta before walk_kvm_words)" 0
	else
		want_eq "words the Rust walk served ($mode, shadow MMU)" \
			"$(delta before walk_words)" 0
		want_gt "words left to KVM's function ($mode, shadow MMU)" \
			"$(delta before walk_kvm_words)" 0
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
