#!/bin/sh
# counters.sh: print what kvm_dirty.ko has served, one counter a line.
for f in /sys/kernel/debug/kvm_dirty/*; do
	printf '%-22s %s\n' "$(basename "$f")" "$(cat "$f")"
done
