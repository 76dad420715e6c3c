#!/bin/sh
# bench.sh CLASS [ROUNDS] [SET]: the workloads of `make bench` (scripts/bench).
#
# Each workload runs on KVM's C path (bind_vms=0) and on the Rust path
# (bind_vms=1), interleaved C Rust C Rust ..., ROUNDS times (default 3; the
# cheap dirty_bench cases ROUNDS + 2), so that drift on a shared host hits
# both paths alike: dirty_bench alternates call by call between a C-path and
# a Rust-path VM of one process, the upstream dirty_log_perf_test alternates
# whole runs.  Every run checks through the module's counters that the path
# it claims really served it.
# Output: RESULT lines (see selftests/dirty_bench.c) with round= and path=,
# read by tools/bench/report.py.
#
# CLASS: info | get | clear | ring | perf | wpall | logon | shared | migrate.  SET: full (default) or quick (a
# smoke test of the whole chain in a minute or two).  Or bench.sh migrate1
# MODE PATH ROUND: one migration of the migrate class.
. /tests/lib.sh
set -o pipefail
class=$1 rounds=${2:-3} set=${3:-full}

# ab FN ARGS...: FN PATH ROUND ARGS... for each round, both paths; odd
# rounds run C first, even ones Rust first, so neither always runs second.
ab() {
	fn=$1
	shift
	r=1
	while [ "$r" -le "$rounds" ]; do
		if [ $((r % 2)) = 1 ]; then order="c rust"; else order="rust c"; fi
		for p in $order; do
			$fn "$p" "$r" "$@" || fail "$fn $p round $r: $*"
		done
		r=$((r + 1))
	done
}

# check_served PATH COUNTER: after a run, the Rust path moved COUNTER and
# bound the VM; the C path moved none of the module's counters.
check_served() {
	if [ "$1" = rust ]; then
		[ "$(delta before "$2")" -gt 0 ] || fail "Rust path: $2 did not move"
		[ "$(delta before vms_bound)" -gt 0 ] || fail "Rust path: no VM bound"
	else
		for k in vms_bound get_dirty_log clear_dirty_log ring_resets ring_pushes bitmap_marks; do
			[ "$(delta before $k)" = 0 ] || fail "C path: $k moved"
		done
	fi
}

# db N ARGS...: dirty_bench, N rounds.  Each run holds a C-path and a
# Rust-path VM and alternates every timed call between them (-r: which goes
# first); it checks the binding and that the Rust path served exactly the
# Rust VM's calls.
db() {
	n=$1 r=1
	shift
	while [ "$r" -le "$n" ]; do
		/tests/dirty_bench -r "$r" "$@" | sed "s/^RESULT /RESULT round=$r /" ||
			fail "dirty_bench round $r: $*"
		r=$((r + 1))
	done
}

# db_path PATH ROUND ARGS...: one dirty_bench run on one path (for ab), where
# a C-path and a Rust-path VM do not fit in one process.
db_path() {
	local path=$1 round=$2
	shift 2
	/tests/dirty_bench -r "$round" -p "$path" "$@" | sed "s/^RESULT /RESULT round=$round /"
}

# perf PATH ROUND TAGS ARGS...: upstream dirty_log_perf_test; its summary
# lines become RESULT lines in microseconds: perf_enable_us ("Enabling dirty
# logging time"), perf_dirty_us (mean "dirty memory time" of iterations 2..,
# iteration 1 differs: with KVM_DIRTY_LOG_INITIALLY_SET nothing faults),
# perf_get_us and perf_clear_us (the "Avg" of "Get/Clear dirty log over").
perf() {
	p=$1 r=$2 tags=$3
	shift 3
	[ "$p" = rust ] && bind_vms 1 || bind_vms 0
	# arm64 runs every guest mode unless told: the one of make check
	# (6: PA40/VA48/4K), one result per run as on x86.
	[ "$(uname -m)" = aarch64 ] && set -- "$@" -m 6
	snap before
	/tests/dirty_log_perf_test "$@" > /tmp/perf.out 2>&1 ||
		{ cat /tmp/perf.out; return 1; }
	bind_vms 1
	sed 's/^/# /' /tmp/perf.out | grep -E 'time:|took'
	awk -v pre="RESULT round=$r path=$p" -v tags="$tags" '
		function us(s) { sub(/s.*$/, "", s); return s * 1e6 }
		function out(m, v) { printf "%s metric=%s %s value=%.3f n=1 min=%.3f max=%.3f\n", pre, m, tags, v, v, v }
		/^Enabling dirty logging time:/ { out("perf_enable_us", us($5)) }
		/^Iteration [0-9]+ dirty memory time:/ && $2 >= 2 { dsum += us($6); dn++ }
		/^Get dirty log over/ { out("perf_get_us", us($10)) }
		/^Clear dirty log over/ { out("perf_clear_us", us($10)) }
		END { if (dn) out("perf_dirty_us", dsum / dn) }' /tmp/perf.out
	check_served "$p" get_dirty_log
}

info() {
	echo "BENCHINFO kernel=$(uname -r) cpus=$(nproc)" \
		"mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)" \
		"clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" \
		"arch=$(uname -m)" \
		"npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null || echo none)" \
		"tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu 2>/dev/null || echo none)"
	echo "BENCHINFO cmdline=$(cat /proc/cmdline | tr ' ' ',')"
	# Did the debug-overhead switches of scripts/bench take effect?
	pl=$(cat /sys/module/lockdep/parameters/prove_locking 2>/dev/null || echo absent)
	if dmesg | grep -q 'kmemleak: Kernel memory leak detector disabled'; then
		km=off
	elif [ -e /sys/kernel/debug/kmemleak ]; then
		km=on
	else
		km=absent
	fi
	echo "BENCHINFO prove_locking=$pl kmemleak=$km"
	echo "BENCHINFO thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled | tr ' ' ',')"
}

# The workloads, per class; quick runs the first of each.  The cheap
# dirty_bench cases get 2 more rounds than the expensive ones ($rounds):
# call-by-call alternation makes them precise, but some effects are per VM
# instance, and more instances average them out.
#
# GET without manual protect: 100 % dirty only up to 1G, where every page
# the guest writes costs a nested-TCG write fault; -T pre-allocates the slot
# (not at 4G: 1 % of the pages, every 400K, would allocate all of it).
get_all() {
	many=$((rounds + 2))
	db "$many" -m get -s 64M -d 0,1 -n 10
	if [ "$set" = quick ]; then
		db "$rounds" -m get -s 64M -d 100 -N 2 -T
		return 0
	fi
	db "$many" -m get -s 256M -d 0,1 -n 10
	db "$many" -m get -s 1G -d 0,1 -n 5
	db "$many" -m get -s 4G -d 0,1 -n 3
	db "$rounds" -m get -s 64M -d 100 -N 2 -T
	db "$rounds" -m get -s 256M -d 100 -N 1 -T
	db "$rounds" -m get -s 1G -d 100 -N 1 -T
}

# Per 64-page chunk at every size; then CLEAR of a whole slot whose every
# page the guest wrote (-F, 100 % dirty, 256M and 1G: a nested-TCG write
# fault per page, as for GET at 100 %).
clear_all() {
	for s in 64M 256M 1G 4G; do
		db $((rounds + 2)) -m clear -s "$s" -P 4096 -n 2
		if [ "$set" = quick ]; then return 0; fi
	done
	db "$rounds" -m clear -s 256M -F -N 2 -T
	db "$rounds" -m clear -s 1G -F -N 1 -T
}

ring_all() {
	for e in 1024:10 4096:5 16384:3; do
		for stride in 1 67; do
			db $((rounds + 2)) -m ring -s 1G -e "${e%:*}" -S "$stride" -n "${e#*:}"
		done
		if [ "$set" = quick ]; then return 0; fi
	done
}

# anonymous_thp: populating the memory page by page would take minutes
# here; huge pages are split once dirty logging starts, so GET, CLEAR and the
# dirtying iterations work on 4K pages as with plain anonymous memory.  No
# 1G run: each iteration faults on every page, 60 s per run at 1G here
# (dirty_bench covers 1G and 4G slots).
perf_all() {
	thp="-s anonymous_thp"
	ab perf "size=64M mode=manual vcpus=1" -b 64M -i 3 $thp
	ab perf "size=64M mode=nomanual vcpus=1" -b 64M -i 3 -g $thp
	if [ "$set" = quick ]; then return 0; fi
	ab perf "size=256M mode=manual vcpus=1" -b 256M -i 2 $thp
	ab perf "size=128M mode=manual vcpus=2" -b 64M -v 2 -i 3 $thp
}

# Write-protect-all: a C classic GET round against a Rust
# GET-without-protect + KVM_WRITE_PROTECT_ALL_MEM round, and the guest's
# cost of writing the pages after each.  100 % dirty at 64M and 1G only:
# every page written costs a nested-TCG fault on both paths.  -R: the
# guest reads every page after each 1 % round, before its writes (read_us:
# on arm64 the push-down faults at pending descriptors, one per table).
wpall_all() {
	many=$((rounds + 2))
	db "$many" -m wpall -s 64M -d 0,1 -n 5
	if [ "$set" = quick ]; then return 0; fi
	db "$many" -m wpall -s 256M -d 0,1 -n 5
	db "$many" -m wpall -s 1G -d 0,1 -n 3
	db "$many" -m wpall -s 64M -d 1 -n 5 -R
	db "$rounds" -m wpall -s 1G -d 1 -n 3 -R
	db "$rounds" -m wpall -s 64M -d 100 -N 2 -T
	db "$rounds" -m wpall -s 1G -d 100 -N 1 -T
}

# Dirty logging turned on for a slot the guest has fully mapped with 2M
# pages (-T): the C path splits them and write-protects every page, the Rust
# WP-all VM does one write-protect-all (kernel/0005-*.patch).  Then the
# guest's writes of every page, and a WP-all of the fully mapped slot.  4G:
# one path per process, as two 4G VMs do not fit the bench VM's 6G, and
# without the guest's writes after logging on (-W: a million nested faults,
# minutes per path here).
logon_all() {
	snap logon
	db "$rounds" -m logon -s 64M -n 2 -T
	if [ "$set" != quick ]; then
		db "$rounds" -m logon -s 256M -n 2 -T
		db "$rounds" -m logon -s 1G -n 1 -T
		ab db_path -m logon -s 4G -n 1 -T -W
		# Log-on alone, more samples: without the guest's writes
		# the slot stays mapped with huge pages between reps.
		db "$rounds" -m logon -s 64M -n 5 -T -W
		db "$rounds" -m logon -s 1G -n 5 -T -W
	fi
	[ "$(delta logon wp_all_log_enables)" -gt 0 ] ||
		fail "no log enable served by WP-all"
}

# The dirty bitmap shared with user space (Documentation/shared-bitmap.rst):
# one dirty sync of the slot three ways, alternating in one process: the
# VMM's exchange scan of the mapped bitmap and KVM_WRITE_PROTECT_ALL_MEM
# (path=shared), the Rust path's GET without write-protect and
# KVM_WRITE_PROTECT_ALL_MEM (path=rust), KVM's classic GET (path=c); and
# the scan's bytes per second against anonymous memory.  Each process
# first writes every page and syncs once, untimed (wpall's state: the slot
# mapped), which at 1G costs every VM a nested fault per page: 1G runs
# all its dirty shares in one process per round, with the pages
# pre-allocated (-T).  100 % dirty at 64M and 1G only, as for wpall.  4G
# without that first write (-U): three written 4G slots do not fit the
# bench VM's 6G; only the 1 % rounds' pages are mapped there.
shared_all() {
	snap shared
	db $((rounds + 2)) -m shared -s 64M -d 0,1,100 -n 5 -N 2 -T
	if [ "$set" != quick ]; then
		db "$rounds" -m shared -s 1G -d 0,1,100 -n 3 -N 1 -T
		db $((rounds + 2)) -m shared -s 4G -d 0,1 -n 3 -U
	fi
	[ "$(delta shared shared_bitmap_vms)" -gt 0 ] ||
		fail "no VM enabled the shared bitmap"
}

# A live migration of the patched QEMU (selftests/vm/migrate.sh) per mode
# and path: KVM's C path and the Rust path in the bitmap (manual protect +
# CLEAR), classic (GET protects) and ring modes, and the Rust path's
# write-protect-all mode (no C counterpart).  Each MIGRATE line becomes
# RESULT lines metric=mig_*, tabled apart by tools/bench/report.py.
# ARGS: migrate.sh's options (the guest's vCPUs, size and rate, the stream).
migrate_one() {
	p=$1 r=$2 mode=$3
	shift 3
	/tests/migrate.sh "$mode" "$p" "$@" > /tmp/migrate.out 2>&1
	rc=$?
	grep -E "^(FAIL|NOTE|L2 runs on L1's state)" /tmp/migrate.out |
		sed "s/^/# migrate $mode $p round $r: /"
	[ $rc = 0 ] || { tail -40 /tmp/migrate.out; return 1; }
	grep -E '^(MIGRATE |source guest running)' /tmp/migrate.out | sed 's/^/# /'
	line=$(grep '^MIGRATE ' /tmp/migrate.out | tail -1)
	tags=$(echo "$line" | tr ' ' '\n' | awk -F= '$1 ~ /^(vcpus|mib|rate|transport|channels)$/' | tr '\n' ' ')
	echo "$line" | tr ' ' '\n' |
		awk -F= -v pre="RESULT round=$r path=$p mode=$mode $tags" '
		$1 ~ /^(total_ms|downtime_ms|syncs|sync_ioctl_us|sync_ioctls|first_sync_us|memslot_us|normal_pages|transferred_kb|rate_before|rate_during)$/ {
			printf "%smetric=mig_%s value=%s n=1 min=%s max=%s\n", pre, $1, $2, $2, $2 }'
}

migrate_all() {
	modes="bitmap classic ring"
	[ "$set" = quick ] && modes=bitmap
	for m in $modes; do
		ab migrate_one "$m"
	done
	r=1
	while [ "$r" -le "$rounds" ]; do
		migrate_one rust "$r" wpall || fail "migrate wpall rust round $r"
		r=$((r + 1))
	done
}

# migrate1 MODE PATH ROUND [ARGS...]: one of migrate_all's migrations, a
# command of its own in scripts/bench, so that each one's verdict and time
# show on its own.
if [ "$class" = migrate1 ]; then
	mode=$2 p=$3 r=$4
	shift 4
	migrate_one "$p" "$r" "$mode" "$@" || fail "migrate $mode $p round $r"
	exit 0
fi
case $set in full | quick) ;; *) fail "unknown set $set" ;; esac
case $class in
info) info ;;
get) get_all ;;
clear) clear_all ;;
ring) ring_all ;;
perf) perf_all ;;
wpall) wpall_all ;;
logon) logon_all ;;
shared) shared_all ;;
migrate) migrate_all ;;
*) fail "unknown class $class" ;;
esac
