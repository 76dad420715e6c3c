#!/bin/sh
# migrate.sh MODE PATH [-v VCPUS] [-r RATE] [-s MIB] [-T exec|tcp] [-c CHANNELS]
#            [-w SECS]: a live migration between two QEMUs of this VM (the
# patched QEMU of scripts/build-qemu, on L1's KVM; x86_64 or arm64), the
# guest writing all the time (tools/migration/: every page of its test
# region carries its address and the sweep that last wrote it, and the
# guest checks each page before it writes it again).  At completion the
# stopped source's and the paused destination's test regions and status
# pages must be identical byte for byte (a page the dirty tracking lost
# differs); then the destination runs on and its guest checks every page
# against its own sweep count.
#
# MODE: bitmap (QEMU's default: manual protect + CLEAR), classic (the
# bitmap without manual protect: GET clears and protects), ring
# (dirty-ring-size=4096; on arm64 QEMU keeps the bitmap beside the ring,
# KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP), all three with dirty-wp-all=off;
# wpall (dirty-wp-all=on: one KVM_WRITE_PROTECT_ALL_MEM per sync); default
# (no option: dirty-wp-all=auto, write-protect-all on the Rust path,
# bitmap on the C path, whose VM does not offer it); shared
# (dirty-wp-all=on,dirty-shared-bitmap=on: each logged memslot's dirty
# bitmap mapped into QEMU, each sync a scan of the mappings and one
# KVM_WRITE_PROTECT_ALL_MEM, no KVM_GET_DIRTY_LOG; tools/qemu/0010, rust
# only: the C path offers neither).  wpall-skip, a test of
# this test: harvests without write-protect and never write-protects
# (tools/qemu/0006), which loses writes; passes (exit 0) when both checks
# see the loss, exits 3 when the migration lost nothing.
#
# PATH: rust (VMs bound to kvm_dirty.ko: its counters must show it served
# the syncs), c (KVM's own paths: the module's counters must not move) or
# none (kvm_dirty.ko not loaded at all: vm-run --no-module).
#
# The guest: -v VCPUS (1-4, default 1) sweep a region of -s MIB (default
# 64) at -r RATE pages per second for the whole guest (default 0: as fast
# as they can).  Its write rate is measured from its status page twice:
# over -w SECS (default 3) before the migration, and from the migration's
# start to its end (minus the downtime): rate_before and rate_during of the
# MIGRATE line, in pages per second.
#
# The stream: -T tcp (default), tcp:127.0.0.1 (the test VM's loopback)
# with multifd and -c CHANNELS channels (default 2), as migrations run
# between hosts; -T exec, a FIFO between the source's "exec:" writer and
# the destination's reader, QEMU's single-channel stream.
. /tests/lib.sh
mode=$1 path=$2 expect_loss=
[ $# -ge 2 ] && shift 2
vcpus=1 rate=0 mib=64 transport=tcp channels=2 window=3
while getopts v:r:s:T:c:w: o; do
	case $o in
	v) vcpus=$OPTARG ;;
	r) rate=$OPTARG ;;
	s) mib=$OPTARG ;;
	T) transport=$OPTARG ;;
	c) channels=$OPTARG ;;
	w) window=$OPTARG ;;
	*) fail "usage: migrate.sh MODE PATH [-v VCPUS] [-r RATE] [-s MIB] [-T exec|tcp] [-c CHANNELS] [-w SECS]" ;;
	esac
done
. /tests/migrate_lib.sh
SOURCE_CORRUPTED="source memory corrupted, not a dirty-tracking loss"
case $path in
rust) bind_vms 1 ;;
c) bind_vms 0 ;;
none) [ ! -d "$KD" ] || fail "PATH none: kvm_dirty.ko is loaded" ;;
*) fail "PATH: rust, c or none" ;;
esac
case $mode in
bitmap) accel=kvm,dirty-wp-all=off ;;
classic) accel=kvm,dirty-wp-all=off,dirty-log-manual-protect=off ;;
ring) accel=kvm,dirty-wp-all=off,dirty-ring-size=4096 ;;
wpall) accel=kvm,dirty-wp-all=on ;;
shared)
	accel=kvm,dirty-wp-all=on,dirty-shared-bitmap=on
	[ "$path" = rust ] || fail "MODE shared: PATH rust only (KVM's C path has no shared bitmap)"
	;;
default) accel=kvm ;;
wpall-skip) accel=kvm,dirty-wp-all=on,x-dirty-wp-all-skip=on expect_loss=1 ;;
*) fail "MODE: bitmap, classic, ring, wpall, shared, default or wpall-skip" ;;
esac
case $vcpus in 1 | 2 | 3 | 4) ;; *) fail "-v: 1 to 4 vCPUs" ;; esac
case $transport in exec | tcp) ;; *) fail "-T: exec or tcp" ;; esac
size=$((mib * 1048576))
w=/tmp/migrate.$$ passed=
rm -rf $w
mkdir -p $w
# Room for the compare's chunks (64 MiB from each side) and the trace:
# say so rather than time out later.
chunk=$((64 * 1048576))
[ $chunk -le $size ] || chunk=$size
free_kb=$(df -k /tmp | awk 'NR == 2 { print $4 }')
[ "$free_kb" -ge $((3 * chunk / 1024)) ] ||
	fail "/tmp has $free_kb KiB free, the compare needs $((2 * chunk / 1024)) KiB: $(du -sk /tmp/* 2>/dev/null | sort -n | tail -3 | tr '\n' ' ')"
payload_image $w/guest.img "$vcpus" "$rate" "$mib"
common="-accel $accel $(vm_args $w/guest.img "$vcpus" "$mib")"

# vm NAME ARGS...: a QEMU whose monitor reads $w/NAME.in (kept open on fd
# 3 or 4) and writes $w/NAME.out; its guest's console is $w/NAME.con.
mkfifo $w/src.in $w/dst.in
exec 3<> $w/src.in 4<> $w/dst.in
# Both QEMUs enable their capabilities as they start: counted from here.
[ "$path" = none ] || snap start
# The source traces each VM ioctl's time in the kernel (tools/qemu/0005)
# and the start and end of each dirty sync.
$Q $common $(console_args $w/src.con) -monitor stdio \
	-trace kvm_vm_ioctl_done -trace migration_bitmap_sync_start \
	-trace migration_bitmap_sync_end -D $w/src.trace \
	< $w/src.in > $w/src.out 2>&1 &
src=$!
if [ $transport = tcp ]; then
	# A port of its own per run; the destination listens once its
	# multifd settings are in (-incoming defer).
	port=$((20000 + $$ % 20000))
	uri=tcp:127.0.0.1:$port
	incoming=defer
else
	mkfifo $w/stream
	uri="exec:cat>$w/stream"
	incoming="exec:cat $w/stream"
fi
$Q $common -S $(console_args $w/dst.con) -monitor stdio \
	-incoming "$incoming" < $w/dst.in > $w/dst.out 2>&1 &
dst=$!
trap stop_qemus EXIT
trap "exit 143" TERM INT
# guest_sweeps NAME FD: the fewest sweeps a vCPU of guest NAME has made.
guest_sweeps() {
	status_read $2 $w/$1.st || die "QEMU $1 did not save its status page"
	status_sweeps $w/$1.st $vcpus
}
# kvm_error NAME: QEMU NAME's report of a vCPU whose KVM_RUN failed
# (KVM_EXIT_INTERNAL_ERROR, an emulation failure: QEMU stops the VM in
# runstate internal-error, which a destination inherits) with its
# registers.  The x86 payload runs 32-bit below 1 MiB (EIP=000f....): a
# 64-bit RIP in the kernel half is L1's state in the L2 vCPU, the emulator
# issue of Documentation/known-issues.rst.
kvm_error() {
	grep -q -e 'KVM internal error' -e 'emulation failure' -e 'KVM_RUN failed' \
		-e 'kvm run failed' $w/$1.out || return 1
	echo "--- $1 QEMU: a vCPU stopped on a KVM error:"
	grep -A 30 -e 'KVM internal error' -e 'emulation failure' -e 'KVM_RUN failed' \
		-e 'kvm run failed' $w/$1.out | head -40
	grep -q 'RIP=ffff' $w/$1.out &&
		echo "L2 runs on L1's state: the $1 vCPU's RIP is in L1's kernel (Documentation/known-issues.rst)"
	# f000ff53 is SeaBIOS's interrupt vector in L1's physical page 0; the
	# payload has no SeaBIOS and never holds it: its accesses reached L1's
	# physical memory untranslated.
	grep -q 'f000ff53' $w/$1.out &&
		echo "L2 runs on L1's state: the $1 vCPU holds L1's SeaBIOS vector f000ff53 (Documentation/known-issues.rst)"
	return 0
}
# bad_page NAME: the page a guest found wrong ("BAD <addr>" on its
# console) as QEMU NAME reads it now, beside the status page's first
# entry (vCPU 0's pages and sweeps).
bad_page() {
	a=$(sed -n 's/.*BAD \([0-9a-f]*\).*/\1/p' $w/$1.con | head -1)
	[ -n "$a" ] || return 0
	echo "--- $1 guest: BAD page 0x$a, as QEMU $1 reads it (address, sweep), and vCPU 0's status (pages, sweeps):"
	echo "xp $XP_FMT 0x$a" >&$2
	echo "xp /2wx $STATUS" >&$2
	sleep 1
	tail -4 $w/$1.out | tr -d '\r' | grep -a ': 0x'
}
# mon_tail NAME: QEMU NAME's last monitor lines without HMP's echo of our
# commands (one long line of escape sequences each, which cut the
# console's lines).
mon_tail() {
	tail -20 $w/$1.out | tr -d '\033\r' | grep -av '^(qemu)' | cut -c1-200
}
die() {
	kvm_error src
	kvm_error dst
	bad_page src 3
	bad_page dst 4
	echo "--- source monitor:"
	mon_tail src
	echo "--- destination monitor:"
	mon_tail dst
	echo "--- source console: $(head -c 200 $w/src.con)"
	echo "--- destination console: $(head -c 200 $w/dst.con)"
	fail "$*"
}
# console_sound NAME: guest NAME printed one P per vCPU and otherwise S's
# only: no BAD page, no vCPU back at its reset vector.
console_sound() {
	[ "$(tr -d 'S\n' < $w/$1.con)" = "$(printf "%${vcpus}s" | tr ' ' P)" ]
}

# progress: the source's last dirty sync count, remaining RAM and dirty
# page rate, from its last 'info migrate'.
progress() {
	for k in "dirty sync count" "remaining ram" "dirty pages rate" "transferred ram"; do
		printf '%s=%s ' "$(echo "$k" | tr ' ' _)" \
			"$(sed -n "s/^$k: *//p" $w/src.out | tail -1 | tr -d '\r ')"
	done
}

# The guest runs: its first two sweeps fault every page in.
t=0
while [ "$(guest_sweeps src 3)" -lt 2 ]; do
	kill -0 $src 2>/dev/null || die "source QEMU died"
	[ $t -lt 300 ] || die "the source guest's vCPUs made no 2 sweeps each in 300 s"
	sleep 1
	t=$((t + 1))
done
console_sound src || die "the source guest went wrong before the migration: its console reads '$(tr '\n' ' ' < $w/src.con | tail -c 80)'"
# Its write rate before the migration, over the window.
status_read 3 $w/src.st0 || die "QEMU src did not save its status page"
t0=$(now_ms)
sleep "$window"
status_read 3 $w/src.st1 || die "QEMU src did not save its status page"
t1=$(now_ms)
pages_before=$(($(status_pages $w/src.st1 $vcpus) - $(status_pages $w/src.st0 $vcpus)))
rate_before=$((pages_before * 1000 / (t1 - t0)))
echo "source guest running: $vcpus vCPU(s), ${mib} MiB, target rate $rate pages/s (0: as fast as they can);" \
	"$rate_before pages/s over $((t1 - t0)) ms; $(guest_sweeps src 3) sweeps"

[ "$path" = none ] || snap before
# A QEMU that never write-protects (wpall-skip) loses only the writes to a
# page made after its one logged write fault and after its last copy.
# Every write fault is an exit to L1 here, so the guest's first sweep after
# logging starts takes about as long as a migration at 1G: most pages are
# written once before they are copied, and the loss is a page or none
# (seen: only the status page, which the guest does not check).  At 16M
# the copy takes seconds after that sweep, and the guest rewrites every
# page many times over, unlogged.
bw=1G
[ -z "$expect_loss" ] || bw=16M
mon_src "migrate_set_parameter max-bandwidth $bw"
# Pre-copy rounds first: with a 1 ms downtime limit QEMU does not stop the
# guest while it dirties pages, so each round's dirty sync (harvest,
# write-protect, copy) is exercised; after KD_MIN_SYNCS dirty syncs (default
# 6) or KD_CONVERGE_S seconds (default 45) the limit goes to 60 s and the
# migration completes.  Over the loopback a limit of seconds would let QEMU
# stop the guest at once and copy everything stopped, testing nothing.
mon_src "migrate_set_parameter downtime-limit 1"
if [ $transport = tcp ]; then
	for fd in 3 4; do
		echo "migrate_set_capability multifd on" >&$fd
		echo "migrate_set_parameter multifd-channels $channels" >&$fd
	done
	mon_dst "migrate_incoming $uri"
	# Listening (state 0A in /proc/net/tcp) before the source connects.
	hexport=$(printf '%04X' $port)
	t=0
	until grep -q ":$hexport 00000000:0000 0A" /proc/net/tcp; do
		kill -0 $dst 2>/dev/null || die "destination QEMU died before it listened"
		[ $t -lt 100 ] || die "the destination does not listen on $uri after 10 s"
		sleep 0.1
		t=$((t + 1))
	done
fi
status_read 3 $w/src.st2 || die "QEMU src did not save its status page"
st=$(date +%s)
mon_src "migrate -d $uri"
# Until the source says completed (or failed), at most 600 s.  What this
# test checks is the copy, not the convergence: the guest dirties faster
# than any stream sends, so the downtime limit is raised (above) once the
# rounds are done.
status= raised= next=30
t=0
while :; do
	mon_src "info migrate"
	sleep 1
	status=$(sed -n 's/^Migration status: *//p' $w/src.out | tail -1 | tr -d '\r')
	case $status in completed | failed | cancelled) break ;; esac
	kill -0 $src 2>/dev/null || die "source QEMU died during the migration"
	kill -0 $dst 2>/dev/null || die "destination QEMU died during the migration"
	t=$(($(date +%s) - st))
	n=$(sed -n 's/^dirty sync count: *//p' $w/src.out | tail -1 | tr -d '\r ')
	if [ -z "$raised" ] && { [ "${n:-0}" -ge "${KD_MIN_SYNCS:-6}" ] ||
		[ $t -ge "${KD_CONVERGE_S:-45}" ]; }; then
		raised=1
		echo "after $t s ($(progress)): downtime-limit 60000 ms"
		mon_src "migrate_set_parameter downtime-limit 60000"
	fi
	# Every 30 s where it stands: a migration that does not converge
	# (the guest dirties faster than the stream sends) shows it here.
	if [ $t -ge $next ]; then
		echo "migrating for $t s: $(progress)"
		next=$((next + 30))
	fi
	[ $t -lt 600 ] || die "migration not complete after 600 s (status $status)"
done
secs=$(($(date +%s) - st))
[ "$status" = completed ] || die "migration $status"
# A source whose vCPU stopped on a KVM error completes its migration too
# (nothing more to copy), and the destination inherits its runstate.  It,
# and a source guest that finds a stale page in its own memory, are the
# source's memory going wrong under it, not a dirty page lost: harvesting
# and write-protecting never write guest memory, and a lost dirty page
# shows on the destination only.  It was the nested-SVM emulator corruption
# of Documentation/known-issues.rst; a failure either way.
grep -q 'KVM internal error' $w/src.out &&
	die "the source's vCPU stopped on a KVM error during the migration" \
		"($SOURCE_CORRUPTED)"
grep -q BAD $w/src.con &&
	die "the source guest found a stale page in its own memory ($SOURCE_CORRUPTED)"
# A sound source prints one P per vCPU and then S's.  Another P is a vCPU
# back at its reset vector; a bare address is a BAD report with "BAD "
# read from the wrong memory (seen 2026-12-02: "P...SP04871000"); either
# way it then halts, and the destination inherits a stopped guest.
console_sound src ||
	die "the source guest went wrong: its console reads '$(tr '\n' ' ' < $w/src.con | tail -c 80)' ($SOURCE_CORRUPTED)"
# The last 'info migrate' after completion: its figures.
mon_src "info migrate"
sleep 1
# QEMU's own account: the last info migrate, up to its sync count.
awk '/^Migration status:/ { n = 0 } { b[n++] = $0 } /^dirty sync count:/ { k = n }
	END { for (i = 0; i < k; i++) print "  info migrate| " b[i] }' $w/src.out | tr -d '\r'
# figure NAME: the number of the last "NAME: N unit" line of info migrate.
figure() {
	sed -n "s/^$1: *\([0-9]*\).*/\1/p" $w/src.out | tail -1
}
syncs=$(figure "dirty sync count")
total_ms=$(figure "total time")
downtime_ms=$(figure downtime)
# The guest's write rate during the migration: the pages it wrote from just
# before the migration's start to its stop for the switchover, over the
# time it ran (the total time less the downtime).
status_read 3 $w/src.st3 || die "QEMU src did not save its status page"
pages_during=$(($(status_pages $w/src.st3 $vcpus) - $(status_pages $w/src.st2 $vcpus)))
ran_ms=$((total_ms - downtime_ms))
[ $ran_ms -gt 0 ] || ran_ms=1
rate_during=$((pages_during * 1000 / ran_ms))
# The time the source's dirty-log ioctls spent in the kernel, in us, and
# their number: GET_DIRTY_LOG 0x4010ae42, CLEAR_DIRTY_LOG 0xc018aec0,
# RESET_DIRTY_RINGS 0xaec7, WRITE_PROTECT_ALL_MEM 0xaef0; those of the
# first dirty sync (between the first migration_bitmap_sync_start and its
# end: the whole memory's first harvest, and its write-protect unless
# manual protect defers it to CLEARs); and the memslot updates
# (0x4020ae46: dirty logging on, which write-protects all memory on the
# classic paths, and off).
ioctls=$(awk '/migration_bitmap_sync_start/ { sync++ }
	/migration_bitmap_sync_end/ { if (sync == 1) first_done = 1 }
	/kvm_vm_ioctl_done/ {
		t = $0; sub(/.*type /, "", t); sub(/,.*/, "", t)
		ns = $0; sub(/ ns.*/, "", ns); sub(/.* /, "", ns)
		if (t == "0x4010ae42" || t == "0xc018aec0" || t == "0xaec7" || t == "0xaef0") {
			s += ns; n++
			if (sync == 1 && !first_done) f += ns
		}
		if (t == "0x4020ae46") { m += ns; mn++ }
	} END { printf "sync_ioctl_us=%d sync_ioctls=%d first_sync_us=%d memslot_us=%d memslots=%d",
		s / 1000, n, f / 1000, m / 1000, mn }' \
	$w/src.trace)
echo "MIGRATE mode=$mode path=$path vcpus=$vcpus mib=$mib rate=$rate transport=$transport" \
	"channels=$([ $transport = tcp ] && echo $channels || echo 0)" \
	"total_ms=$total_ms downtime_ms=$downtime_ms syncs=$syncs $ioctls" \
	"normal_pages=$(figure normal) zero_pages=$(figure duplicate)" \
	"transferred_kb=$(figure "transferred ram") wall_s=$secs" \
	"rate_before=$rate_before rate_during=$rate_during" | tee $w/figures
case $ioctls in *" sync_ioctls=0 "*) die "no dirty-log ioctl traced (QEMU without tools/qemu/0005?)" ;; esac
# At least two pre-copy rounds after the setup's sync (a QEMU that never
# write-protects, wpall-skip, finds nothing dirty after its first round and
# stops the guest there: that is the loss its test must see).
min_syncs=4
[ -z "$expect_loss" ] || min_syncs=2
[ "${syncs:-0}" -ge $min_syncs ] || die "only ${syncs:-0} dirty syncs: too few pre-copy rounds to check"

# Both sides stopped: the source after completion, the destination by -S.
mon_src "info status"
mon_dst "info status"
# save NAME FD ADDR BYTES: guest memory through QEMU NAME's monitor into
# $w/NAME.mem.  The file name quoted: unquoted, HMP reads "/tmp" as a
# division.
save() {
	rm -f $w/$1.mem
	echo "pmemsave $3 $4 \"$w/$1.mem\"" >&$2
}
# compare ADDR BYTES: the source's and the destination's guest memory
# there; prints the number of differing bytes, with the first few.
compare() {
	save src 3 $1 $2
	save dst 4 $1 $2
	_t=0
	until [ "$(stat -c %s $w/src.mem 2>/dev/null)" = $(($2)) ] &&
		[ "$(stat -c %s $w/dst.mem 2>/dev/null)" = $(($2)) ]; do
		[ $_t -lt 120 ] || die "pmemsave did not finish"
		sleep 1
		_t=$((_t + 1))
	done
	sleep 1
	if cmp -s $w/src.mem $w/dst.mem; then
		echo 0
	else
		cmp -l $w/src.mem $w/dst.mem | wc -l
		cmp -l $w/src.mem $w/dst.mem | head -5 >&2
	fi
	rm -f $w/src.mem $w/dst.mem
}
# The status page and the region, 64 MiB at a time (/tmp is in RAM).
differ=$(compare $STATUS 4096)
case $differ in '' | *[!0-9]*) die "the compare of the status page failed: $differ" ;; esac
[ "$differ" = 0 ] || echo "  $differ bytes differ in the status page"
off=0 region_differ=0
while [ $off -lt $size ]; do
	n=$(compare $((REGION + off)) $chunk)
	case $n in '' | *[!0-9]*) die "the compare at $(printf %#x $((REGION + off))) failed: $n" ;; esac
	[ "$n" = 0 ] || echo "  $n bytes differ in the 64 MiB at $(printf %#x $((REGION + off)))"
	region_differ=$((region_differ + n))
	off=$((off + chunk))
done
differ=$((differ + region_differ))
# A loss the destination's guest can see: in the test pages, which it
# checks, not only in the status page, which it does not.
if [ -n "$expect_loss" ] && [ "$region_differ" = 0 ]; then
	echo "NO LOSS: the migration lost no write to the test pages ($differ bytes of the status page differ)"
	exit 3
fi
if [ "$differ" = 0 ]; then
	echo "ok: the destination's $((size / 4096)) test pages and status page equal the source's"
else
	[ -n "$expect_loss" ] ||
		die "destination memory differs from the source's in $differ bytes: pages lost"
	echo "ok: the migration lost writes, seen by cmp: $differ bytes differ"
fi

# The destination's guest checks every page as it goes on: two more sweeps
# of every vCPU read each page once at least.
base=$(guest_sweeps dst 4)
mon_dst "cont"
if [ -n "$expect_loss" ]; then
	t=0
	until grep -q BAD $w/dst.con; do
		[ $t -lt 120 ] || die "the destination guest did not see the lost writes in 120 s"
		sleep 1
		t=$((t + 1))
	done
	echo "ok: the destination guest saw them too: $(grep -o 'BAD [0-9a-fA-Fx]*' $w/dst.con | head -1)"
	passed=1
	echo "PASS: migrate.sh $mode $path (lost writes detected)"
	exit 0
fi
t=0
while [ "$(guest_sweeps dst 4)" -lt $((base + 2)) ]; do
	grep -q BAD $w/dst.con && die "the destination guest found a stale page"
	kill -0 $dst 2>/dev/null || die "destination QEMU died"
	grep -q 'KVM internal error' $w/dst.out &&
		die "the destination's vCPU stopped on a KVM error"
	[ $t -lt 300 ] || die "the destination guest's vCPUs made no 2 sweeps each in 300 s"
	sleep 1
	t=$((t + 1))
done
grep -q BAD $w/dst.con && die "the destination guest found a stale page"
[ -z "$(tr -d 'S\n' < $w/dst.con)" ] ||
	die "the destination guest went wrong: its console reads '$(tr '\n' ' ' < $w/dst.con | tail -c 80)'"
echo "ok: the destination guest's vCPUs ran $(($(guest_sweeps dst 4) - base)) sweeps or more each, every page as expected"

if [ "$path" = rust ]; then
	case $mode in
	bitmap)
		want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
		want_gt "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" 0
		;;
	classic)
		want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
		want_gt "pages write-protected by GET" "$(delta before pages_protected)" 0
		want_eq "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" 0
		;;
	ring)
		want_gt "ring resets served" "$(delta before ring_resets)" 0
		want_gt "ring pushes" "$(delta before ring_pushes)" 0
		;;
	wpall | default)
		want_gt "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
		want_eq "write-protect-alls, one per sync" \
			"$(delta before wp_all_calls)" "$syncs"
		;;
	shared)
		# The syncs scanned the mappings: no GET, no CLEAR, one
		# write-protect-all each; both QEMUs enabled the capability,
		# the source mapped its logged slots' bitmaps and touched
		# their pages, and no access found a retired mapping.
		want_eq "GET_DIRTY_LOG served (bitmaps mapped instead)" \
			"$(delta before get_dirty_log)" 0
		want_eq "CLEAR_DIRTY_LOG served" "$(delta before clear_dirty_log)" 0
		want_eq "write-protect-alls, one per sync" \
			"$(delta before wp_all_calls)" "$syncs"
		want_eq "VMs with the shared bitmap (source and destination)" \
			"$(delta start shared_bitmap_vms)" 2
		want_gt "shared bitmaps allocated" "$(delta before shared_bitmap_allocs)" 0
		want_gt "bitmap descriptors handed out" "$(delta before shared_bitmap_fds)" 0
		want_gt "bitmaps mapped" "$(delta before shared_bitmap_maps)" 0
		want_gt "bitmap pages mapped by faults (the scans)" \
			"$(delta before shared_bitmap_faults)" 0
		want_eq "mappings refused" "$(delta before shared_bitmap_map_refused)" 0
		want_eq "faults refused (SIGBUS)" "$(delta before shared_bitmap_sigbus)" 0
		;;
	esac
	case $mode in
	wpall | default | shared) ;;
	*)
		want_eq "write-protect-alls (dirty-wp-all=off)" \
			"$(delta before wp_all_calls)" 0
		;;
	esac
elif [ "$path" = c ]; then
	want_eq "GET_DIRTY_LOG served by the module" "$(delta before get_dirty_log)" 0
	want_eq "ring resets served by the module" "$(delta before ring_resets)" 0
	want_eq "write-protect-alls by the module" "$(delta before wp_all_calls)" 0
fi
if [ "$mode" = shared ]; then
	# The source resumed (the migration is over, the destination runs
	# its own copy): QEMU stops the dirty logging it postponed while the
	# source was stopped, which retires every logged slot's bitmap; QEMU
	# drains each with read(2), unmaps it and closes its file, and the
	# module frees it once both the slot and the file have let go.
	mon_src cont
	t=0
	until [ "$(delta before shared_bitmap_frees)" -ge "$(delta before shared_bitmap_allocs)" ]; do
		kill -0 $src 2>/dev/null || die "source QEMU died after it resumed"
		[ $t -lt 30 ] || break
		sleep 1
		t=$((t + 1))
	done
	# tools/qemu/0010's errors name the bitmap or its ioctl.
	grep -qi -e 'dirty bitmap' -e 'DIRTY_BITMAP_FD' $w/src.out &&
		die "the source reported a shared bitmap error:" \
			"$(grep -i -e 'dirty bitmap' -e 'DIRTY_BITMAP_FD' $w/src.out | head -1)"
	want_eq "bitmaps retired (dirty logging stopped), as allocated" \
		"$(delta before shared_bitmap_retired)" "$(delta before shared_bitmap_allocs)"
	want_eq "files zapped at retirement, one per descriptor" \
		"$(delta before shared_bitmap_zaps)" "$(delta before shared_bitmap_fds)"
	want_gt "words drained with read(2)" "$(delta before shared_bitmap_read_words)" 0
	want_eq "bitmaps freed (QEMU unmapped and closed them), as allocated" \
		"$(delta before shared_bitmap_frees)" "$(delta before shared_bitmap_allocs)"
	want_eq "faults refused (SIGBUS)" "$(delta before shared_bitmap_sigbus)" 0
	want_eq "GET_DIRTY_LOG served" "$(delta before get_dirty_log)" 0
fi
mon_src quit
mon_dst quit
passed=1
echo "PASS: migrate.sh $mode $path"
# For the demo's summary (demo_summary.sh): the verdict and the figures.
grep '^MIGRATE ' $w/figures 2>/dev/null | tail -1 >> /tmp/kd-migrations
