# What the migration tests share (sourced after lib.sh; busybox sh): the
# VMM and the guest of this architecture (tools/migration/), the guest's
# parameters and its status page.
#
# The guest (tools/migration/payload.S on x86_64, payload-arm64.S on
# arm64): every vCPU sweeps its slice of the test region, each page
# holding its address and the sweep that last wrote it, checked before it
# is written again.  The region starts 16 MiB into RAM; the page below it
# is the status page: per vCPU n, at offset 64 * n, the pages it has
# written and the sweeps it has completed (4 bytes each).
case $(uname -m) in
x86_64)
	Q=/usr/bin/qemu-system-x86_64
	# KD_PAYLOAD: payload-nopaging.bin reproduces known-issues.rst's
	# emulator issue (one vCPU).
	PAYLOAD=/tests/${KD_PAYLOAD:-payload.bin}
	RAM_BASE=0
	# HMP's xp: the page's address and sweep, 4 bytes each.
	XP_FMT=/2wx
	;;
aarch64)
	Q=/usr/bin/qemu-system-aarch64
	PAYLOAD=/tests/payload-arm64.bin
	RAM_BASE=$((0x40000000)) # -M virt's RAM
	XP_FMT=/2gx
	;;
*) fail "no migration test on $(uname -m)" ;;
esac
REGION=$((RAM_BASE + 0x1000000))
STATUS=$((REGION - 4096))
[ -x $Q ] || fail "no QEMU in the test VM (scripts/build-qemu)"
[ -r "$PAYLOAD" ] || fail "no guest image $PAYLOAD (scripts/build-qemu)"

# put_le FILE OFFSET BYTES VALUE: VALUE little-endian into FILE.
put_le() {
	_s= _i=0
	while [ $_i -lt "$3" ]; do
		_s="$_s\\$(printf %03o $((($4 >> (8 * _i)) & 255)))"
		_i=$((_i + 1))
	done
	printf "$_s" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# payload_image OUT VCPUS RATE MIB: a copy of the guest image with its
# parameters (at offset 0x40 of either image): the region's start and
# size, the vCPUs that sweep it, the whole guest's write rate in pages
# per second (0: as fast as possible).
payload_image() {
	cp "$PAYLOAD" "$1"
	put_le "$1" $((0x40)) 8 $REGION
	put_le "$1" $((0x48)) 8 $(($4 * 1048576))
	put_le "$1" $((0x50)) 4 "$2"
	put_le "$1" $((0x54)) 4 "$3"
}

# vm_args IMAGE VCPUS MIB: the machine, its memory (16 MiB below the
# region, the region, 16 MiB above), its vCPUs and the guest image.
# x86_64: one address space (no SMM): one memory listener, one WP-all per
# sync; no firmware but ours, no option ROM (the vapic's kvmvapic.bin).
# arm64: GICv3 (L1's KVM emulates no other), no ITS (nothing uses MSIs).
vm_args() {
	_mem=$(($3 + 32))
	case $(uname -m) in
	x86_64)
		echo "-M pc,smm=off -m ${_mem}M -smp $2 -bios $1 -global kvm-apic.vapic=false"
		;;
	aarch64)
		echo "-M virt,gic-version=3,its=off -cpu host -m ${_mem}M -smp $2 -kernel $1"
		;;
	esac
	echo "-nodefaults -no-user-config -display none"
}

# console_args FILE: the guest's console device, into FILE.
console_args() {
	case $(uname -m) in
	x86_64) echo "-debugcon file:$1" ;;
	aarch64) echo "-serial file:$1" ;;
	esac
}

# status_read FD FILE: the status page, through the monitor whose input
# is on fd FD, into FILE (at most 30 s).
status_read() {
	rm -f "$2"
	echo "pmemsave $STATUS 4096 \"$2\"" >&"$1"
	_t=0
	until [ "$(stat -c %s "$2" 2>/dev/null)" = 4096 ]; do
		[ $_t -lt 300 ] || return 1
		sleep 0.1
		_t=$((_t + 1))
	done
}

# status_fields FILE VCPUS: one line per vCPU: pages written, sweeps completed.
status_fields() {
	hexdump -v -e '16/4 "%u " "\n"' "$1" | head -n "$2" | awk '{ print $1, $2 }'
}

# status_pages FILE VCPUS: the pages all vCPUs have written.
status_pages() {
	status_fields "$1" "$2" | awk '{ p += $1 } END { printf "%d", p }'
}

# status_sweeps FILE VCPUS: the fewest sweeps a vCPU has completed.
status_sweeps() {
	status_fields "$1" "$2" | awk 'NR == 1 || $2 < m { m = $2 } END { printf "%d", m }'
}

# The tests' work directory $w holds each QEMU's console (NAME.con),
# monitor output (NAME.out) and memory images; $src and $dst are the
# source and destination QEMUs' pids, $passed is set once the test passed.

# stop_qemus: at exit, both QEMUs stopped and the work directory removed,
# /tmp being a tmpfs in RAM (half of it at most).  A failed run keeps its
# monitor, console and trace files, not the memory images.
stop_qemus() {
	kill $src $dst 2>/dev/null
	wait $src $dst 2>/dev/null
	rm -f $w/*.mem
	[ -n "$passed" ] && rm -rf $w
}

# mon_src, mon_dst CMD: a monitor command to the source (fd 3) or the
# destination (fd 4).
mon_src() { echo "$*" >&3; }
mon_dst() { echo "$*" >&4; }

# sweeps NAME: the sweeps QEMU NAME's guest has printed on its console.
sweeps() { cat $w/$1.con 2>/dev/null | tr -cd S | wc -c; }

# now_ms: L1's uptime in milliseconds (10 ms steps).
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
