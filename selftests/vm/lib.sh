# Helpers for the in-VM test scripts (sourced; busybox sh).
KD=/sys/kernel/debug/kvm_dirty

c() { cat "$KD/$1"; }

# snap NAME: remember every counter as NAME_<counter>
snap() {
	for f in "$KD"/*; do
		eval "$1_$(basename "$f")=$(cat "$f")"
	done
}

# delta NAME COUNTER: how much COUNTER moved since snap NAME
delta() {
	eval "echo \$(( \$(c $2) - \$$1_$2 ))"
}

fail() { echo "FAIL: $*"; exit 1; }

# emulator_signature FILE: says so when a failed test's output shows what
# the nested-SVM emulator corruption (tools/qemu/0007,
# Documentation/known-issues.rst) looked like: an L2 guest shut down by a
# triple fault, an L2 vCPU on L1's registers, a migration's source guest
# whose memory went wrong.  A failure either way, never retried: with the
# fixed emulator, the signature means a bug to find.
emulator_signature() {
	grep -q -e 'exit_reason=SHUTDOWN' -e 'exit reason SHUTDOWN' \
		-e "L2 runs on L1's state" \
		-e 'source memory corrupted, not a dirty-tracking loss' "$1" || return 0
	echo "NOTE: this failure has the signature of the nested-SVM emulator corruption (Documentation/known-issues.rst); is the test VM on the emulator scripts/build-qemu builds (KD_L0)?"
}

# run_out OUT CMD...: runs CMD (a command or a function), its output in OUT
# and printed, and returns its status.
run_out() {
	_out=$1
	shift
	"$@" > "$_out" 2>&1
	_rc=$?
	cat "$_out"
	[ $_rc = 0 ] || emulator_signature "$_out"
	return $_rc
}

# want_eq WHAT GOT WANT
want_eq() {
	[ "$2" = "$3" ] || fail "$1: got $2, want $3"
	echo "ok: $1 = $2"
}

# want_gt WHAT GOT MIN
want_gt() {
	[ "$2" -gt "$3" ] || fail "$1: got $2, want > $3"
	echo "ok: $1 = $2 (> $3)"
}

# want_ge WHAT GOT MIN
want_ge() {
	[ "$2" -ge "$3" ] || fail "$1: got $2, want >= $3"
	echo "ok: $1 = $2 (>= $3)"
}

bind_vms() { echo "$1" > /sys/module/kvm_dirty/parameters/bind_vms; }

# kmemleak_clean WHAT: scan for leaks (when kmemleak is on) and fail if a
# report names WHAT (a module or symbol prefix).
kmemleak_clean() {
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	echo scan > /sys/kernel/debug/kmemleak
	! grep -q "$1" /sys/kernel/debug/kmemleak || {
		grep -A20 "$1" /sys/kernel/debug/kmemleak | head -40
		fail "kmemleak names $1"
	}
	echo "ok: kmemleak names nothing of $1"
}

# want_lost_pages WHAT ARGS...: a test of dirty_stress's check.  dirty_stress
# ARGS runs a protocol that loses writes; it must fail, and for that reason
# (differences in its byte-for-byte compare), not another.
want_lost_pages() {
	what=$1
	shift
	run_out /tmp/lost.out /tests/dirty_stress "$@"
	[ $? != 0 ] ||
		fail "dirty_stress $* passed: its check cannot see a lost page"
	grep -q '^STRESS .* diffs=[1-9]' /tmp/lost.out ||
		fail "dirty_stress $* failed for another reason (its output above)"
	echo "ok: $what loses pages, and dirty_stress says so"
}
