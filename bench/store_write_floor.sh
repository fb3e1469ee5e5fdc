#!/usr/bin/env bash
# The least time SQLite itself takes to write what a first full sync
# wrote: every row of a kept benchmark store (`ldap_bench --keep`) copied
# into an empty store with the same schema (indexes and CHECKs included),
# in one transaction, by the sqlite3 shell, with no orgsync code involved.
# Prints the statements' time (without the shell's closing checkpoint),
# with and without the audit log and the outbox.
#
#   build-release/bench/ldap_bench --runs 1 --keep   # prints "kept DIR"
#   bench/store_write_floor.sh DIR/orgsync.db
set -euo pipefail

store=${1:?usage: store_write_floor.sh KEPT_STORE.db}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sqlite3 "$store" .schema | grep -v sqlite_sequence > "$work/schema.sql"
# Rows the run wrote (not the store's own bookkeeping).
tables=$(sqlite3 "$store" "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN \
  ('sqlite_sequence', 'store_generation', 'sync_runs')")

replay() {
  local label=$1 skip=$2
  {
    echo ".timer on"
    echo "PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;"
    echo "ATTACH '$store' AS kept; BEGIN;"
    for table in $tables; do
      if [[ -n $skip && $table =~ $skip ]]; then continue; fi
      echo "INSERT INTO main.\"$table\" SELECT * FROM kept.\"$table\";"
    done
    echo "COMMIT;"
  } > "$work/replay.sql"
  rm -f "$work"/copy.db*
  { echo "PRAGMA journal_mode = WAL;"; cat "$work/schema.sql"; } | sqlite3 "$work/copy.db" > /dev/null
  sqlite3 "$work/copy.db" < "$work/replay.sql" 2>&1 |
    awk -v label="$label" '/Run Time/ { real += $4; user += $6; sys += $8 }
      END { printf "%-28s real %.2f s  user %.2f s  sys %.2f s\n", label, real, user, sys }'
}

rows=$(for table in $tables; do sqlite3 "$store" "SELECT COUNT(*) FROM \"$table\""; done |
  awk '{ n += $1 } END { print n }')
echo "rows: $rows in $(echo $tables | wc -w) tables"
replay "every row" ""
replay "without audit_log, outbox" "^(audit_log|outbox)$"
