#!/bin/sh
# migrate_wrong_order.sh: the migration test must catch lost writes.  A
# QEMU that write-protects before it harvests (migrate.sh wpall-first,
# tools/qemu/0005) loses the writes of the pages it harvested writable, if
# the guest rewrites one of them after it was sent and before the final
# stop; likely in a migration, not certain.  Up to 3 migrations: the first
# that loses writes must be seen by both checks (cmp of the memories and
# the destination guest's own); 3 without a loss fail.
. /tests/lib.sh
for try in 1 2 3; do
	/tests/migrate.sh wpall-first rust
	rc=$?
	case $rc in
	0) echo "PASS: migrate_wrong_order.sh (migration $try)"; exit 0 ;;
	3) echo "migration $try lost nothing; again" ;;
	*) fail "migrate.sh wpall-first failed (rc $rc)" ;;
	esac
done
fail "3 wrong-order migrations lost no write: is the check blind?"
