#!/bin/sh
# tracepoints.sh [DIRTY_LOG_TEST ARGS...]: the tracepoints of dirty tracking,
# read through tracefs, against what the module's counters and upstream
# dirty_log_test say happened (ARGS, e.g. -m 6, a guest mode, are passed on).
#
# - Upstream KVM's kvm:kvm_dirty_ring_push, kvm_dirty_ring_reset and
#   kvm_dirty_ring_exit, from dirty_log_test's dirty-ring mode on the Rust
#   path (a bound VM: the module pushes and resets, kernel/0012 lets it emit
#   them) and on KVM's C path (bind_vms=0), with the same checks on both:
#   one push event per entry pushed, each with the ring's dirty index one
#   past the previous one's; one reset event per KVM_RESET_DIRTY_RINGS (one
#   vCPU), the last with a reset index equal to the entries the test
#   collected; one exit event per KVM_EXIT_DIRTY_RING_FULL the test saw,
#   for vCPU 0.  On the Rust path the push and reset events equal the
#   counters exactly.
# - The module's kvm_dirty:kvm_dirty_harvest, from dirty-log mode (one event
#   per GET, words and pages equal to the counters) and clear-log mode (one
#   per CLEAR, none for the manual-protect GETs); kvm_dirty_wp_all and
#   kvm_dirty_push_down from wp-all mode (one event per write-protect-all
#   and per push-down, level by level, entries as counted), where the
#   kernel's MMU serves it.  None of them on the C path.
#
# Every run must fit in the trace buffer: a lost event fails the test.
. /tests/lib.sh
[ -d "$KD" ] || fail "kvm_dirty.ko is not loaded"
T=/sys/kernel/tracing
[ -e $T/trace ] || mount -t tracefs tracefs $T ||
	fail "no tracefs (the test kernel needs CONFIG_TRACING)"
for e in kvm/kvm_dirty_ring_push kvm/kvm_dirty_ring_reset kvm/kvm_dirty_ring_exit \
	kvm_dirty/kvm_dirty_harvest kvm_dirty/kvm_dirty_wp_all kvm_dirty/kvm_dirty_push_down; do
	[ -d $T/events/$e ] || fail "no event $e in $T/events"
done
echo 8192 > $T/buffer_size_kb
# One clock for every CPU's buffer, so that events merge in order.
echo global > $T/trace_clock
# Iterations of each run, and the dirty ring's size: small enough that the
# guest fills it between two harvests, so that it exits.
iters=4 ring=256

# trace EVENT...: start a trace of only these events, from an empty buffer.
trace() {
	echo 0 > $T/tracing_on
	echo 0 > $T/events/enable
	echo > $T/trace
	for e in "$@"; do
		echo 1 > $T/events/$e/enable
	done
	echo 1 > $T/tracing_on
}

# stop FILE: stop tracing, save the events in FILE; fail if any was lost.
stop() {
	echo 0 > $T/tracing_on
	echo 0 > $T/events/enable
	lost=$(cat $T/per_cpu/cpu*/stats | awk '/^(overrun|commit overrun|dropped events):/ { n += $NF }
		END { print n + 0 }')
	want_eq "events lost (buffer overruns)" "$lost" 0
	grep -v '^#' $T/trace > "$1"
}

# dlt OUT MODE: dirty_log_test in MODE, output in OUT.
dlt() {
	run_out "$1" /tests/dirty_log_test -M "$2" -i $iters -I 10 -c $ring $args ||
		fail "dirty_log_test -M $2"
	want_eq "VMs dirty_log_test ran" "$(grep -c 'Testing guest mode' "$1")" 1
}
args="$*"

# ring_events PATH: dirty-ring mode on PATH (rust or c), its upstream
# events checked against the test's own account.  Sets pushes and resets.
ring_events() {
	trace kvm/kvm_dirty_ring_push kvm/kvm_dirty_ring_reset kvm/kvm_dirty_ring_exit \
		kvm_dirty
	dlt /tmp/tp-ring.out dirty-ring
	stop /tmp/tp-ring.trace
	collected=$(awk '/Iteration .* collected/ { n += $(NF - 1) } END { print n + 0 }' \
		/tmp/tp-ring.out)
	fulls=$(grep -c 'vcpu stops because dirty ring is full' /tmp/tp-ring.out)
	# One line of figures from the events (fields as TP_printk prints them).
	set -- $(awk -v size=$ring '
		function hex(s,   n, i) {
			s = tolower(s); sub(/^0x/, "", s); n = 0
			for (i = 1; i <= length(s); i++)
				n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
			return n
		}
		function field(name,   i) {
			for (i = 1; i < NF; i++) if ($i == name) return $(i + 1)
		}
		/ kvm_dirty_ring_push: / {
			pushes++
			# "ring 0:": the only vCPU; the test memory is slot 1; used
			# never above the ring size; the dirty index of each push is
			# one more, so the indices are 1..pushes, once each.
			d = hex(field("dirty"))
			if (field("ring") != "0:" || field("slot") != 1 ||
			    d - hex(field("reset")) > size || seen[d]++)
				bad_push++
		}
		/ kvm_dirty_ring_reset: / {
			resets++
			r = hex(field("reset"))
			if (field("ring") != "0:" || r > hex(field("dirty")))
				bad_reset++
			if (r > last_reset)
				last_reset = r
		}
		/ kvm_dirty_ring_exit: / { exits++; if (field("vcpu") != 0) bad_exit++ }
		/ kvm_dirty_(harvest|wp_all|push_down): / { module++ }
		END {
			for (d = 1; d <= pushes; d++)
				if (!(d in seen))
					bad_push++
			print pushes + 0, bad_push + 0, resets + 0, bad_reset + 0,
				last_reset + 0, exits + 0, bad_exit + 0, module + 0
		}' /tmp/tp-ring.trace)
	pushes=$1 resets=$3
	echo "$path: $pushes pushes, $resets resets (last index $5), $6 exits;" \
		"the test collected $collected entries in $(grep -c 'Iteration .* collected' /tmp/tp-ring.out)" \
		"harvests and saw $fulls ring-full exits"
	want_gt "$path: kvm_dirty_ring_push events" "$1" 0
	want_eq "$path: push events whose ring, dirty index, slot or use is wrong" "$2" 0
	want_eq "$path: kvm_dirty_ring_reset events (one per harvest)" "$3" \
		"$(grep -c 'Iteration .* collected' /tmp/tp-ring.out)"
	want_eq "$path: reset events whose indices are wrong" "$4" 0
	want_eq "$path: the highest reset index (entries collected)" "$5" "$collected"
	want_gt "$path: kvm_dirty_ring_exit events" "$6" 0
	want_eq "$path: kvm_dirty_ring_exit events (ring-full exits)" "$6" "$fulls"
	want_eq "$path: exit events of another vCPU" "$7" 0
	want_eq "$path: module events" "$8" 0
}

bind_vms 1
snap before
path=rust
ring_events
want_eq "ring pushes refused (ring_full)" "$(delta before ring_full)" 0
want_eq "ring pushes (counter) = push events" "$(delta before ring_pushes)" "$pushes"
want_eq "ring resets (counter) = reset events" "$(delta before ring_resets)" "$resets"

bind_vms 0
snap before
path=c
ring_events
bind_vms 1
for k in ring_pushes ring_resets vms_bound; do
	want_eq "$k moved by the C path's VM" "$(delta before $k)" 0
done

# The harvest event: one per GET (dirty-log), one per CLEAR (clear-log)
# and none for a manual-protect GET.  Fields: "get|clear slot S first F
# words W pages P", and " (not protected)" for write-protect-all's
# harvests without write-protect.
harvests() { # FILE OP: events, their words, their pages, unprotected ones
	awk -v op="$2" '/ kvm_dirty_harvest: / {
		for (i = 1; i < NF; i++) if ($i == "kvm_dirty_harvest:") break
		if ($(i + 1) != op) { other++; next }
		n++; w += $(i + 7); p += $(i + 9); if (/not protected/) np++
	} END { print n + 0, w + 0, p + 0, np + 0, other + 0 }' "$1"
}
snap before
trace kvm_dirty
dlt /tmp/tp-get.out dirty-log
stop /tmp/tp-get.trace
set -- $(harvests /tmp/tp-get.trace get)
want_eq "GET harvest events" "$1" "$(delta before get_dirty_log)"
want_eq "their words (words_scanned)" "$2" "$(delta before words_scanned)"
want_eq "their pages (pages_harvested)" "$3" "$(delta before pages_harvested)"
want_gt "pages harvested" "$3" 0
want_eq "GET harvests without write-protect" "$4" 0
want_eq "other harvest events" "$5" 0

snap before
trace kvm_dirty
dlt /tmp/tp-clear.out clear-log
stop /tmp/tp-clear.trace
set -- $(harvests /tmp/tp-clear.trace clear)
want_gt "manual-protect GETs" "$(delta before get_dirty_log)" 0
want_eq "CLEAR harvest events" "$1" "$(delta before clear_dirty_log)"
want_eq "their pages (pages_cleared)" "$3" "$(delta before pages_cleared)"
want_gt "pages cleared" "$3" 0
want_eq "harvest events of manual-protect GETs" "$5" 0

# Write-protect-all, where the MMU serves it (dirty_log_test skips wp-all
# elsewhere).
snap before
trace kvm_dirty
dlt /tmp/tp-wpall.out wp-all
stop /tmp/tp-wpall.trace
set -- $(awk '
	/ kvm_dirty_wp_all: / {
		for (i = 1; i < NF; i++) if ($i == "roots") break
		wp++; roots += $(i + 1); entries += $(i + 3); if (/log enable/) le++
	}
	/ kvm_dirty_push_down: / {
		for (i = 1; i < NF; i++) if ($i == "level") break
		l = $(i + 1); if (l > 4) l = 4
		pd[l]++; prot += $(i + 3); pend += $(i + 5)
	}
	/ kvm_dirty_harvest: .*not protected/ { nowp++ }
	END {
		print wp + 0, roots + 0, entries + 0, le + 0, pd[0] + 0, pd[1] + 0,
			pd[2] + 0, pd[3] + 0, pd[4] + 0, prot + 0, pend + 0, nowp + 0
	}' /tmp/tp-wpall.trace)
echo "wp-all: $1 write-protect-alls of $2 roots, $3 entries; push-downs by level" \
	"0-4: $5 $6 $7 $8 $9; protected ${10}, pended ${11}"
want_gt "kvm_dirty_wp_all events" "$1" 0
want_eq "kvm_dirty_wp_all events (wp_all_calls + wp_all_log_enables)" "$1" \
	$(($(delta before wp_all_calls) + $(delta before wp_all_log_enables)))
want_eq "their log enables" "$4" "$(delta before wp_all_log_enables)"
want_eq "their entries (wp_all_root_entries)" "$3" "$(delta before wp_all_root_entries)"
want_gt "kvm_dirty_push_down events into leaf tables" "$6" 0
want_eq "push-downs of shadow roots at load (wp_root_loads)" "$5" "$(delta before wp_root_loads)"
want_eq "push-downs into level 1 (wp_push_l1)" "$6" "$(delta before wp_push_l1)"
want_eq "push-downs into level 2 (wp_push_l2)" "$7" "$(delta before wp_push_l2)"
want_eq "push-downs into level 3 (wp_push_l3)" "$8" "$(delta before wp_push_l3)"
want_eq "push-downs into level 4 and up (wp_push_l4)" "$9" "$(delta before wp_push_l4)"
want_eq "entries they protected (wp_push_protected)" "${10}" "$(delta before wp_push_protected)"
want_eq "descriptors they made pending (wp_push_pended)" "${11}" "$(delta before wp_push_pended)"
want_eq "harvests without write-protect (harvest_no_wp)" "${12}" "$(delta before harvest_no_wp)"
