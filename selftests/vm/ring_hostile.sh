#!/bin/sh
# ring_hostile.sh: a VMM that scribbles over its dirty ring (ring_hostile),
# bound to the module: the resets were served in Rust and rejected garbage.
. /tests/lib.sh
bind_vms 1
snap before
/tests/ring_hostile || fail "ring_hostile"
want_gt "ring resets served" "$(delta before ring_resets)" 2000
want_gt "ring pushes" "$(delta before ring_pushes)" 0
want_gt "garbage batches rejected" "$(delta before ring_invalid)" 0
want_eq "ring overflows" "$(delta before ring_full)" 0
