#!/bin/sh
# migrate_failed_sync.sh [bitmap|ring]: a dirty sync that fails must fail
# the migration, never the guest.  kvm_dirty.ko's test knob fail_wp_all
# makes the next KVM_WRITE_PROTECT_ALL_MEM calls fail with -EIO; the
# patched QEMU (scripts/build-qemu, dirty-wp-all=on) must then end the
# migration FAILED with an error that names the ioctl and its errno, in
# "info migrate", and keep the source guest running: no abort, no stop.
# The guest (tools/migration/) checks every page of its 64 MiB
# before it writes it again, so a source that runs on without a "BAD" on
# its console still holds what it wrote.
#
# Three migrations of one source, each to a new destination:
# 1. the first WP-all fails: the migration's first sync, in its setup;
# 2. a later one fails: the guest running, pages being sent;
# 3. nothing fails: the migration completes, the stopped source's and
#    the destination's memories are equal byte for byte, and the
#    destination guest runs on with every page as expected, so the failed
#    syncs left the source's dirty tracking sound for the next migration.
#
# MODE: bitmap (default: GET_DIRTY_LOG of every slot, then the WP-all) or
# ring (dirty-ring-size=4096: the ring's reap and reset, then the WP-all).
. /tests/lib.sh
mode=${1:-bitmap}
case $mode in
bitmap) accel=kvm,dirty-wp-all=on ;;
ring) accel=kvm,dirty-wp-all=on,dirty-ring-size=4096 ;;
*) fail "MODE: bitmap or ring" ;;
esac
SOURCE_CORRUPTED="source memory corrupted, not a dirty-tracking loss"
. /tests/migrate_lib.sh
knob=/sys/module/kvm_dirty/parameters/fail_wp_all
[ -w $knob ] || fail "kvm_dirty.ko has no fail_wp_all parameter"
bind_vms 1
echo 0 > $knob
# The guest's defaults (migrate_lib.sh): one vCPU, 64 MiB.
region=$REGION size=$((64 * 1048576))
w=/tmp/migrate-failed.$$ passed=
rm -rf $w
mkdir -p $w
payload_image $w/guest.img 1 0 64
common="-accel $accel $(vm_args $w/guest.img 1 64)"
mkfifo $w/src.in
exec 3<> $w/src.in
# The source traces each VM ioctl with its return value (tools/qemu/0005).
$Q $common $(console_args $w/src.con) -monitor stdio \
	-trace kvm_vm_ioctl_done -D $w/src.trace \
	< $w/src.in > $w/src.out 2>&1 &
src=$!
dst=
cleanup() {
	echo 0 > $knob
	stop_qemus
}
trap cleanup EXIT
trap "exit 143" TERM INT
# last NAME KEY: the value of the last "KEY: value" line of QEMU NAME's monitor.
last() { sed -n "s/^$2: *//p" $w/$1.out | tail -1 | tr -d '\r'; }
die() {
	echo "--- source monitor:"
	tail -20 $w/src.out | tr -d '\033\r' | grep -av '^(qemu)' | cut -c1-200
	[ -z "$dst" ] || {
		echo "--- destination monitor:"
		tail -10 $w/dst$n.out | tr -d '\033\r' | grep -av '^(qemu)' | cut -c1-200
	}
	echo "--- source console: $(head -c 200 $w/src.con)"
	fail "$*"
}
# source_sound: the source QEMU alive, its guest running and sound (one P,
# then S's only: no BAD page, no return to its reset vector).
source_sound() {
	kill -0 $src 2>/dev/null || die "the source QEMU died ($1)"
	grep -q 'KVM internal error' $w/src.out &&
		die "the source's vCPU stopped on a KVM error ($1, $SOURCE_CORRUPTED)"
	[ "$(tr -d '\n' < $w/src.con | sed 's/^PS*//')" = "" ] ||
		die "the source guest went wrong ($1): its console reads '$(tr '\n' ' ' < $w/src.con | tail -c 80)' ($SOURCE_CORRUPTED)"
}
# source_runs WHAT: the source guest makes 2 x 16 more sweeps, each page
# checked before it is written again, and QEMU says it is running.
source_runs() {
	base=$(sweeps src) t=0
	while [ "$(sweeps src)" -lt $((base + 2)) ]; do
		source_sound "$1"
		[ $t -lt 300 ] || die "the source guest made no 2 x 16 sweeps in 300 s ($1)"
		sleep 1
		t=$((t + 1))
	done
	source_sound "$1"
	mon_src "info status"
	sleep 1
	[ "$(last src "VM status")" = running ] ||
		die "the source VM is not running ($1): '$(last src "VM status")'"
	echo "ok: the source guest runs on ($1): $(($(sweeps src) - base)) x 16 sweeps, every page as expected; VM status running"
}
# start_dst N: destination N, reading stream N.
start_dst() {
	n=$1
	mkfifo $w/dst$n.in $w/stream$n
	exec 4<> $w/dst$n.in
	$Q $common -S $(console_args $w/dst$n.con) -monitor stdio \
		-incoming "exec:cat $w/stream$n" < $w/dst$n.in > $w/dst$n.out 2>&1 &
	dst=$!
}
# status_in STATES: $status matches one of STATES (a case pattern).
status_in() { eval "case \"\$status\" in $1) return 0 ;; esac"; return 1; }
# migrate_until N STATES ARM: migration N until its status is one of
# STATES (a case pattern), at most 300 s; with ARM, fail_wp_all=1 once the
# migration has made its first dirty sync and is active.
migrate_until() {
	mon_src "migrate -d exec:cat>$w/stream$1"
	armed= t=0
	while :; do
		mon_src "info migrate"
		sleep 1
		status=$(last src "Migration status")
		status_in "$2" && break
		kill -0 $src 2>/dev/null || die "the source QEMU died during migration $1"
		if [ -n "$3" ] && [ -z "$armed" ] && [ "${status%% *}" = active ] &&
			[ "$(last src "dirty sync count")" -ge 1 ] 2>/dev/null; then
			echo 1 > $knob
			armed=$(last src "dirty sync count")
			echo "migration $1 active, $armed dirty sync(s) made: fail_wp_all=1"
		fi
		t=$((t + 1))
		[ $t -lt 300 ] || die "migration $1 not over after 300 s (status $status)"
	done
}
# want_failed N: migration N failed with the error of a failed WP-all,
# the knob used up, the failed call in the trace; the destination gone.
want_failed() {
	case $status in
	"failed ("*"KVM_WRITE_PROTECT_ALL_MEM failed (errno 5): Input/output error"*")")
		echo "ok: migration $1: Migration status: $status" ;;
	failed*) die "migration $1 failed, but not with the ioctl and its errno: '$status'" ;;
	*) die "migration $1 did not fail: '$status'" ;;
	esac
	want_eq "fail_wp_all after migration $1" "$(cat $knob)" 0
	nfail=$(grep -c 'kvm_vm_ioctl_done type 0xaef0, ret -5,' $w/src.trace)
	want_eq "failed KVM_WRITE_PROTECT_ALL_MEM calls traced after migration $1" "$nfail" "$1"
	t=0
	while kill -0 $dst 2>/dev/null; do
		[ $t -lt 30 ] || { kill $dst; break; }
		sleep 1
		t=$((t + 1))
	done
	wait $dst 2>/dev/null
	dst=
}

t=0
while [ "$(sweeps src)" -lt 2 ]; do
	kill -0 $src 2>/dev/null || die "source QEMU died"
	[ $t -lt 300 ] || die "the source guest made no 2 x 16 sweeps in 300 s"
	sleep 1
	t=$((t + 1))
done
echo "source guest running: $(sweeps src) x 16 sweeps in about $t s"
snap before
# Slow enough that migration 2 is still sending when its knob is armed: a
# 128 MiB guest at 16 MiB/s takes seconds for its first pass.
mon_src "migrate_set_parameter max-bandwidth 16M"
mon_src "migrate_set_parameter downtime-limit 300"

# 1. The first WP-all of the migration fails: its setup's sync.
start_dst 1
echo 1 > $knob
migrate_until 1 "failed*|completed|cancelled"
want_failed 1
source_runs "after migration 1"

# 2. A later WP-all fails, once the migration has synced and is sending.
start_dst 2
migrate_until 2 "failed*|completed|cancelled" arm
want_failed 2
want_gt "KVM_WRITE_PROTECT_ALL_MEM calls that succeeded before migration 2 failed" \
	"$(grep -c 'kvm_vm_ioctl_done type 0xaef0, ret 0,' $w/src.trace)" 0
source_runs "after migration 2"
# Served by the module: its successful WP-alls counted, the failed not.
want_eq "WP-alls counted by the module (the successful ones)" \
	"$(delta before wp_all_calls)" \
	"$(grep -c 'kvm_vm_ioctl_done type 0xaef0, ret 0,' $w/src.trace)"

# 3. Nothing fails: the migration completes and copies every write.
start_dst 3
mon_src "migrate_set_parameter max-bandwidth 1G"
mon_src "migrate_set_parameter downtime-limit 60000"
migrate_until 3 "completed|failed*|cancelled"
[ "$status" = completed ] || die "migration 3, with nothing failing: $status"
source_sound "during migration 3"
echo "pmemsave $region $size \"$w/src.mem\"" >&3
echo "pmemsave $region $size \"$w/dst.mem\"" >&4
t=0
until [ "$(stat -c %s $w/src.mem 2>/dev/null)" = $((size)) ] &&
	[ "$(stat -c %s $w/dst.mem 2>/dev/null)" = $((size)) ]; do
	[ $t -lt 60 ] || die "pmemsave did not finish"
	sleep 1
	t=$((t + 1))
done
sleep 1
cmp -s $w/src.mem $w/dst.mem ||
	die "migration 3: destination memory differs from the source's in $(cmp -l $w/src.mem $w/dst.mem | wc -l) bytes: pages lost"
echo "ok: migration 3 completed; the destination's $((size / 4096)) test pages equal the source's"
base=$(sweeps dst3)
echo cont >&4
t=0
while [ "$(sweeps dst3)" -lt $((base + 2)) ]; do
	grep -q BAD $w/dst3.con && die "the destination guest found a stale page"
	kill -0 $dst 2>/dev/null || die "destination QEMU died"
	[ $t -lt 300 ] || die "the destination guest made no 2 x 16 sweeps in 300 s"
	sleep 1
	t=$((t + 1))
done
grep -q BAD $w/dst3.con && die "the destination guest found a stale page"
echo "ok: the destination guest ran $(($(sweeps dst3) - base)) x 16 sweeps, every page as expected"
mon_src quit
echo quit >&4
passed=1
echo "PASS: migrate_failed_sync.sh $mode"
