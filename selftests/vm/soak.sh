#!/bin/sh
# soak.sh MINUTES [ARGS...]: mixed load on both paths in one boot until
# MINUTES have passed, for the soak lane of make check-full.  Each iteration:
# upstream dirty_log_test in every mode on the Rust path (ARGS, e.g. a guest
# mode, are passed on) and on the C path, dirty_stress in each mode on both
# paths (several vCPUs, THP every other time, a memslot deleted and
# re-created every round), the hostile ring VMM, and an insmod/rmmod cycle
# between VMs; where the VM offers write-protect-all (both x86 MMUs, arm64),
# dirty_stress -A -L (logging off and on too) in each mode on the Rust path.
# Every step has a watchdog: past its limit it prints where the soak stands,
# dumps blocked tasks and CPU stacks, and fails.  Prints a SOAK line per
# iteration and a SOAK-TOTAL line at the end.
. /tests/lib.sh
minutes=$1
shift
limit=900	# seconds per step; the longest step takes about 3 minutes
start=$(date +%s)
iter=0 steps=0 stress_pages=0 stress_rounds=0 harvested=0 resets=0
# dirty_stress -A exits 4 (KSFT_SKIP) where the VM lacks the capability.
/tests/dirty_stress -A -M bitmap -t 1 > /dev/null 2>&1
[ $? = 4 ] && wpall= || wpall=on
echo "SOAK: write-protect-all: ${wpall:-off (not offered here)}"

# step NAME CMD...: runs CMD in the background under the watchdog.  (Its
# counter is not called t: sh has no locals, and the loop below passes $t.)
step() {
	name=$1
	shift
	"$@" > /tmp/soak.step 2>&1 &
	pid=$! waited=0
	while kill -0 $pid 2>/dev/null; do
		sleep 1
		waited=$((waited + 1))
		if [ $waited -ge $limit ]; then
			echo "SOAK: WATCHDOG: iteration $iter, step '$name' still running after $waited s"
			tail -20 /tmp/soak.step
			echo "kd-dump: begin" > /dev/kmsg
			echo w > /proc/sysrq-trigger
			echo l > /proc/sysrq-trigger
			echo "kd-dump: end" > /dev/kmsg
			kill -9 $pid
			fail "soak: step '$name' hung"
		fi
	done
	wait $pid
	rc=$?
	steps=$((steps + 1))
	if [ $rc != 0 ]; then
		cat /tmp/soak.step
		fail "soak: iteration $iter, step '$name' (rc=$rc, after $waited s)"
	fi
	# dirty_stress's figures, for the totals
	s=$(sed -n 's/^STRESS .* rounds=\([0-9]*\) pages=\([0-9]*\) .*/\1 \2/p' /tmp/soak.step)
	if [ -n "$s" ]; then
		set -- $s
		stress_rounds=$((stress_rounds + $1)) stress_pages=$((stress_pages + $2))
	fi
}

while [ $(($(date +%s) - start)) -lt $((minutes * 60)) ]; do
	iter=$((iter + 1))
	thp=
	[ $((iter % 2)) = 0 ] && thp=-T
	v=$((2 + iter % 3))
	step "dirty_log_test rust" /tests/dirty_log_rust.sh all 3 "$@"
	step "dirty_log_test c" /tests/dirty_log_c.sh dirty-log 3 "$@"
	for m in bitmap clear ring; do
		step "dirty_stress $m rust" /tests/stress.sh rust -M $m -t 20 -v $v $thp
		step "dirty_stress $m c" /tests/stress.sh c -M $m -t 20 -v $v $thp
		[ -n "$wpall" ] &&
			step "dirty_stress $m+wp-all rust" /tests/stress.sh rust -A -L -M $m -t 20 -v $v $thp
	done
	step "ring_hostile" /tests/ring_hostile.sh
	# The counters restart with the module: add them up before the reload.
	harvested=$((harvested + $(c pages_harvested))) resets=$((resets + $(c ring_resets)))
	step "insmod/rmmod" sh -c 'rmmod kvm_dirty && insmod /lib/modules/kvm_dirty.ko'
	echo "SOAK iteration=$iter elapsed=$(($(date +%s) - start))s steps=$steps" \
		"stress_rounds=$stress_rounds stress_pages=$stress_pages"
done
harvested=$((harvested + $(c pages_harvested))) resets=$((resets + $(c ring_resets)))
kmemleak_clean kvm
echo "SOAK-TOTAL minutes=$minutes iterations=$iter steps=$steps hangs=0" \
	"rust_pages_harvested=$harvested rust_ring_resets=$resets" \
	"stress_rounds=$stress_rounds stress_pages_copied=$stress_pages"
