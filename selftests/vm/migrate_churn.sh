#!/bin/sh
# migrate_churn.sh MODE PATH: migrate.sh MODE PATH under memory churn
# (churn.sh: THP splits, collapses and compaction move the guest's memory
# while the module harvests and write-protects it).
. /tests/lib.sh
mode=$1 path=$2
[ -n "$path" ] || fail "usage: migrate_churn.sh MODE PATH"
/tests/churn.sh /tests/migrate.sh "$mode" "$path" ||
	fail "migrate.sh $mode $path under memory churn"
echo "PASS: migrate_churn.sh $mode $path"
