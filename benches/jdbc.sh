#!/usr/bin/env bash
# jdbc connector benchmark, reference tools measured in the same run on the same servers:
#
#  1. Snapshot: N rows (default 1,000,000) MariaDB → PostgreSQL
#     a. cdc-sql: jdbc scan (SCAN_PARTITIONS ranges, default 1 — one SELECT, as the pipe and as a
#        Flink job without scan.partition options; on two cores parallel ranges measured slower)
#        → jdbc sink (binary COPY + merge), keyed target
#     b. the plain pipe: mariadb --quick -N -e 'SELECT …' | psql -c '\copy t FROM STDIN', run
#        just before and just after cdc-sql; each tool starts once both servers have written
#        back what the step before left dirty
#     c. pgloader, when installed (apt-get install -y pgloader)
#  2. CDC upserts: a datagen upsert changelog (M changes over K keys) into PostgreSQL and MariaDB
#     vs a hand-written batched upsert script (1000 rows per INSERT … ON CONFLICT /
#     ON DUPLICATE KEY UPDATE statement, fed to psql / mariadb).
#
# Reported per tool: wall seconds, rows/s, client CPU seconds (user+sys) and peak RSS of the
# client process tree as /usr/bin/time sees it (server CPU is not included for anyone).
#
# usage: [SCAN_PARTITIONS=n] benches/jdbc.sh [rows] [changes]
# Needs: a release build (cargo build --release --bin cdc-sql; CDC_SQL_BIN overrides the path),
# the dev servers (scripts/dev-services start), /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
CHANGES=${2:-500000}
PARTITIONS=${SCAN_PARTITIONS:-1}
KEYS=100000
BIN=${CDC_SQL_BIN:-${CARGO_TARGET_DIR:-target}/release/cdc-sql}
[ -x "$BIN" ] || { echo "no release binary at $BIN (cargo build --release --bin cdc-sql)"; exit 1; }
scripts/dev-services start >/dev/null
MY_PORT=${CDC_SQL_DEV_MARIADB_PORT:-13306}
PG_PORT=${CDC_SQL_DEV_POSTGRES_PORT:-15432}
MY="mariadb -h127.0.0.1 -P$MY_PORT -uroot -proot_password"
export PGPASSWORD=postgres_password
PG="psql -q -h 127.0.0.1 -p $PG_PORT -U postgres -v ON_ERROR_STOP=1"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

$MY -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench"
$PG -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
PGB="$PG -d bench"
MYB="$MY bench"

echo "# preparing $ROWS rows in MariaDB"
$MYB -e "CREATE TABLE src (id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(12,2),
           qty INT, created DATETIME(6), note TEXT) ENGINE=InnoDB;
         INSERT INTO src SELECT seq, CONCAT('customer-', seq % 9973), (seq % 100000) / 100, seq % 1000,
           TIMESTAMP('2024-01-01') + INTERVAL seq SECOND, REPEAT('x', seq % 50) FROM seq_1_to_$ROWS;"
TARGET_DDL="CREATE TABLE t (id bigint PRIMARY KEY, customer text, amount numeric(12,2), qty int,
           created timestamp(6), note text)"

# measure NAME ROWS CMD… : runs CMD under /usr/bin/time, prints one result line.
measure() {
  local name=$1 rows=$2; shift 2
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" bash -c "$*" >"$WORK/out" 2>"$WORK/err" || {
    echo "$name FAILED"; tail -5 "$WORK/err"; return 0; }
  read -r wall user sys rss <"$WORK/time"
  awk -v n="$name" -v r="$rows" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" 'BEGIN {
    printf "%-34s %9d rows %8.2f s %10.0f rows/s  cpu %7.2f s  peak RSS %7.1f MB\n", n, r, w, r / w, u + s, m / 1024 }'
}

# settle: lets both servers write back what the previous step left dirty (InnoDB pages of the
# load, PostgreSQL's checkpoint of the last copy), so that work does not land on the next tool.
settle() {
  $PGB -c CHECKPOINT
  $MY -e "SET GLOBAL innodb_max_dirty_pages_pct = 0"
  for _ in $(seq 600); do
    [ "$($MY -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | cut -f2)" = 0 ] && break
    sleep 0.2
  done
}

pipe_copy() {
  $PGB -c "DROP TABLE IF EXISTS t" -c "$TARGET_DDL"
  settle
  measure "mariadb --quick | psql copy" "$ROWS" \
    "$MYB --quick -N -e 'SELECT id, customer, amount, qty, created, note FROM src' | $PGB -c '\\copy t FROM STDIN'"
  echo "  rows in target: $($PGB -Atc 'SELECT count(*) FROM t')"
}

echo "# 1. snapshot MariaDB → PostgreSQL (the pipe runs just before and just after cdc-sql)"
pipe_copy
$PGB -c "DROP TABLE IF EXISTS t" -c "$TARGET_DDL"
settle
cat >"$WORK/snapshot.sql" <<SQL
CREATE TABLE src (id BIGINT, customer STRING, amount DECIMAL(12, 2), qty INT, created TIMESTAMP(6), note STRING,
  PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'jdbc', 'url' = 'jdbc:mariadb://127.0.0.1:$MY_PORT/bench',
  'table-name' = 'src', 'username' = 'root', 'password' = 'root_password', 'scan.partition.column' = 'id',
  'scan.partition.num' = '$PARTITIONS', 'scan.partition.lower-bound' = '1', 'scan.partition.upper-bound' = '$ROWS');
CREATE TABLE t (id BIGINT, customer STRING, amount DECIMAL(12, 2), qty INT, created TIMESTAMP(6), note STRING,
  PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:$PG_PORT/bench',
  'table-name' = 't', 'username' = 'postgres', 'password' = 'postgres_password',
  'sink.buffer-flush.max-rows' = '50000');
INSERT INTO t SELECT * FROM src;
SQL
measure "cdc-sql jdbc → jdbc, $PARTITIONS ranges" "$ROWS" "$BIN -f $WORK/snapshot.sql"
echo "  rows in target: $($PGB -Atc 'SELECT count(*) FROM t')"

pipe_copy

if command -v pgloader >/dev/null; then
  $PGB -c "DROP TABLE t" -c "$TARGET_DDL"
  settle
  cat >"$WORK/load" <<LOAD
LOAD DATABASE FROM mysql://root:root_password@127.0.0.1:$MY_PORT/bench
  INTO postgresql://postgres:postgres_password@127.0.0.1:$PG_PORT/bench
  WITH data only, truncate
  INCLUDING ONLY TABLE NAMES MATCHING 'src'
  ALTER TABLE NAMES MATCHING 'src' RENAME TO 't'
  ALTER SCHEMA 'bench' RENAME TO 'public';
LOAD
  measure "pgloader" "$ROWS" "pgloader $WORK/load"
  echo "  rows in target: $($PGB -Atc 'SELECT count(*) FROM t')"
else
  echo "pgloader                           not installed (apt-get install -y pgloader)"
fi

echo "# 2. CDC upserts: $CHANGES changes over $KEYS keys"
$PGB -c "DROP TABLE IF EXISTS u" -c "CREATE TABLE u (id bigint PRIMARY KEY, name text, v int)"
$MYB -e "DROP TABLE IF EXISTS u; CREATE TABLE u (id BIGINT PRIMARY KEY, name VARCHAR(20), v INT)"
for db in postgresql mariadb; do
  if [ $db = postgresql ]; then port=$PG_PORT user=postgres pass=postgres_password; else port=$MY_PORT user=root pass=root_password; fi
  cat >"$WORK/cdc-$db.sql" <<SQL
CREATE TABLE gen (id BIGINT, name STRING, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen',
  'changelog-mode' = 'upsert', 'changelog.key-space' = '$KEYS', 'changelog.delete-ratio' = '0',
  'number-of-rows' = '$CHANGES', 'rows-per-second' = '100000000', 'seed' = '1', 'fields.name.length' = '12');
CREATE TABLE u (id BIGINT, name STRING, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'jdbc',
  'url' = 'jdbc:$db://127.0.0.1:$port/bench', 'table-name' = 'u', 'username' = '$user', 'password' = '$pass',
  'sink.buffer-flush.max-rows' = '5000');
INSERT INTO u SELECT * FROM gen;
SQL
  measure "cdc-sql upserts → $db" "$CHANGES" "$BIN -f $WORK/cdc-$db.sql"
done

# The hand-written reference: the same number of upserts, 1000 rows per statement (keys
# i * 7919 mod K: distinct within a statement, as ON CONFLICT requires, and spread over all keys).
awk -v n="$CHANGES" -v k="$KEYS" 'BEGIN {
  for (i = 0; i < n; i++) {
    if (i % 1000 == 0) { if (i) print " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, v = EXCLUDED.v;"; printf "INSERT INTO u VALUES " } else printf ",";
    printf "(%d,'"'"'n%011d'"'"',%d)", (i * 7919) % k + 1, i, i }
  print " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, v = EXCLUDED.v;" }' >"$WORK/upserts-pg.sql"
sed -e 's/ ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, v = EXCLUDED.v;/ ON DUPLICATE KEY UPDATE name = VALUES(name), v = VALUES(v);/' \
  "$WORK/upserts-pg.sql" >"$WORK/upserts-my.sql"
measure "batched ON CONFLICT via psql" "$CHANGES" "$PGB -f $WORK/upserts-pg.sql"
measure "batched ON DUPLICATE KEY via mariadb" "$CHANGES" "$MYB < $WORK/upserts-my.sql"
