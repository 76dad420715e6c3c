#!/bin/sh
# migrate_lost_writes.sh: the migration test's checks must catch lost
# writes.  migrate.sh wpall-skip runs a QEMU that harvests without
# write-protect and never write-protects (tools/qemu/0006): after its
# first write fault a page stays writable, and its later writes are never
# logged.  The memories compared at switchover must differ in the test
# pages and the destination guest must find a stale page (migrate.sh
# sends it at 16 MiB/s; why, there).
. /tests/lib.sh
/tests/migrate.sh wpall-skip rust
case $? in
0) echo "PASS: migrate_lost_writes.sh" ;;
3) fail "a migration that never write-protects lost no write: are the checks blind?" ;;
*) fail "migrate.sh wpall-skip failed" ;;
esac
