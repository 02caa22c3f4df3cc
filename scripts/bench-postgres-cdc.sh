#!/usr/bin/env bash
# postgres-cdc benchmark: 1M-row snapshot and 1M streamed changes into Arrow batches, next to the
# reference tools on the same server in the same run:
#   snapshot: cdc-sql ('scan.startup.mode' = 'snapshot', parallel chunked COPY) vs
#             `COPY t TO STDOUT (FORMAT binary)` through psql;
#   stream:   cdc-sql ('committed-offset', until the slot confirms the last change) vs
#             `pg_recvlogical` (pgoutput, proto_version 1, --endpos);
#   the same stream again with 'truncate.mode' = 'delete' (the runtime keeps every row delivered
#             and stores them with each checkpoint, every 1 s here): its rate, memory and the size
#             of the last checkpoint record.
# The snapshot and the stream are each measured REPS times (default 3), the reference tool and
# cdc-sql alternating, every stream run from its own slot created before the load, so all of
# them decode the same changes; the summary gives the medians and their ratio.
# Reports wall seconds, rows/s, CPU seconds (user+sys) per million rows and peak RSS
# (/usr/bin/time -v) for each.
#
#   [REPS=3] scripts/bench-postgres-cdc.sh [path/to/cdc-sql] [rows]
#
# Starts its own PostgreSQL (wal_level=logical) in a temporary directory and removes it after.
# The cdc-sql stream time runs until the slot confirms the last change, so it includes up to one
# checkpoint interval (200 ms here) on top of reading (the confirmation goes out at once). One
# psql session polls the slot every 20 ms: a new psql per poll would cost the server a backend
# start each time, CPU the walsender being measured needs.
set -euo pipefail

BIN=${1:-target/release/cdc-sql}
ROWS=${2:-1000000}
REPS=${REPS:-3}
[[ -x "$BIN" ]] || { echo "no cdc-sql binary at $BIN (cargo build --release --bin cdc-sql)" >&2; exit 2; }
BIN=$(realpath "$BIN")
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/cdc-sql-bench.XXXXXX)
chmod 755 "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AS=()
if [[ $(id -u) == 0 ]]; then chown postgres "$WORK"; AS=(runuser -u postgres --); fi

cleanup() {
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"${AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres --no-locale -E UTF8 --auth=trust >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = logical
max_wal_size = 4GB
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
CONF
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d bench -v ON_ERROR_STOP=1 -qtA)
"$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE bench"

ROW_SQL="SELECT i, 'customer-' || i, (i % 100000) / 100.0, timestamptz '2024-01-01' + i * interval '1 second', i % 2 = 0"
"${PSQL[@]}" <<SQL
CREATE TABLE snap (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz, flag boolean);
INSERT INTO snap $ROW_SQL FROM generate_series(1, $ROWS) i;
VACUUM ANALYZE snap;
CREATE TABLE stream (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz, flag boolean);
CREATE PUBLICATION dbz_publication FOR TABLE stream;
SELECT pg_create_logical_replication_slot('bench_keep', 'pgoutput');
SELECT pg_create_logical_replication_slot('bench_' || kind || '_' || k, 'pgoutput')
  FROM generate_series(1, $REPS) k, unnest(ARRAY['cdc', 'recv']) kind;
SQL

COLUMNS="id BIGINT, name STRING, amount DECIMAL(12, 2), created TIMESTAMP_LTZ(6), flag BOOLEAN, PRIMARY KEY (id) NOT ENFORCED"
job() { # table mode [slot extra-options settings]
  cat <<JOB
SET 'execution.checkpointing.interval' = '200ms';
${5:-}
CREATE TABLE src ($COLUMNS) WITH (
  'connector' = 'postgres-cdc', 'hostname' = '127.0.0.1', 'port' = '$PORT', 'username' = 'postgres',
  'password' = 'unused', 'database-name' = 'bench', 'schema-name' = 'public', 'table-name' = '$1',
  'slot.name' = '${3:-bench_cdc}', 'scan.startup.mode' = '$2', 'heartbeat.interval.ms' = '200ms'${4:-}
);
CREATE TABLE sink (id BIGINT, name STRING, amount DECIMAL(12, 2), created TIMESTAMP_LTZ(6), flag BOOLEAN) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT * FROM src;
JOB
}

# `label wall cpu rss` from a /usr/bin/time -v report and a wall time.
report() { # label wall timefile [kind recorded for the summary]
  local label=$1 wall=$2 timefile=$3 kind=${4:-}
  local user sys rss
  user=$(awk -F': ' '/User time/ {print $2}' "$timefile")
  sys=$(awk -F': ' '/System time/ {print $2}' "$timefile")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$timefile")
  python3 - "$label" "$wall" "$user" "$sys" "$rss" "$ROWS" "$kind" "$WORK/runs" <<'PY'
import sys
label, wall, user, sys_, rss, rows = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
kind, runs = sys.argv[7], sys.argv[8]
cpu = user + sys_
print(f"{label:<34} {wall:8.2f} s {rows / wall:12,.0f} rows/s {cpu / rows * 1e6:8.2f} CPU s/M rows {rss / 1024:8.1f} MiB peak RSS")
if kind:
    with open(runs, "a") as f:
        f.write(f"{kind} {rows / wall} {cpu / rows * 1e6}\n")
PY
}

now() { date +%s.%N; }

# Medians of the recorded runs of <ours> and <reference>, and their ratio.
summary() { # what ours reference
  python3 - "$1" "$2" "$3" "$WORK/runs" <<'PY'
import statistics, sys
what, ours, reference, runs = sys.argv[1:5]
by = {}
for line in open(runs):
    kind, rate, cpu = line.split()
    by.setdefault(kind, []).append((float(rate), float(cpu)))
o, r = by[ours], by[reference]
ratios = " ".join(f"{a[0] / b[0]:.2f}" for a, b in zip(o, r))
mo, mr = statistics.median(x[0] for x in o), statistics.median(x[0] for x in r)
co, cr = statistics.median(x[1] for x in o), statistics.median(x[1] for x in r)
print(f"-- {what}: median {mo:,.0f} vs {mr:,.0f} rows/s, ratio {mo / mr:.2f} (runs: {ratios}); "
      f"median CPU {co:.2f} vs {cr:.2f} s/M rows")
PY
}

# Runs the job file $WORK/<name>.sql until slot <slot> confirms $END_LSN, then stops it and
# reports it as <label>.
stream_until_confirmed() { # label slot name [kind]
  local label=$1 slot=$2 name=$3 t0 t1 timepid answer
  t0=$(now)
  RUST_LOG=warn /usr/bin/time -v -o "$WORK/t_$name" "$BIN" -f "$WORK/$name.sql" >/dev/null 2>>"$WORK/cdc-sql.log" &
  timepid=$!
  while read -r answer; do
    [[ $answer == t ]] && break
    kill -0 "$timepid" 2>/dev/null || { echo "cdc-sql stopped before the slot confirmed the changes:" >&2; tail -5 "$WORK/cdc-sql.log" >&2; exit 1; }
  done < <(printf "SELECT confirmed_flush_lsn >= '%s' FROM pg_replication_slots WHERE slot_name = '%s'\n\\watch 0.02\n" "$END_LSN" "$slot" | "${PSQL[@]}")
  t1=$(now)
  kill -TERM "$(pgrep -P "$timepid")" || true
  wait "$timepid" || true
  report "$label" "$(echo "$t1 - $t0" | bc)" "$WORK/t_$name" "${4:-}"
}

echo "== snapshot of $ROWS rows, $REPS runs each"
for k in $(seq 1 "$REPS"); do
  job snap snapshot bench_snap "" "SET 'state.checkpoints.dir' = '$WORK/state-snap-$k';" > "$WORK/snap.sql"
  t0=$(now); /usr/bin/time -v -o "$WORK/t_copy" "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d bench -qc "COPY snap TO STDOUT (FORMAT binary)" >/dev/null; t1=$(now)
  report "psql COPY (FORMAT binary)" "$(echo "$t1 - $t0" | bc)" "$WORK/t_copy" copy
  t0=$(now); RUST_LOG=warn /usr/bin/time -v -o "$WORK/t_snap" "$BIN" -f "$WORK/snap.sql" >/dev/null 2>>"$WORK/cdc-sql.log"; t1=$(now)
  report "cdc-sql snapshot (chunked COPY)" "$(echo "$t1 - $t0" | bc)" "$WORK/t_snap" snapshot
done
summary "snapshot, cdc-sql vs COPY" snapshot copy

echo "== $ROWS streamed inserts (100 transactions), $REPS runs each"
BATCH=$((ROWS / 100))
for k in $(seq 0 99); do
  echo "INSERT INTO stream $ROW_SQL FROM generate_series($((k * BATCH + 1)), $(((k + 1) * BATCH))) i;"
done | "${PSQL[@]}"
END_LSN=$("${PSQL[@]}" -c "SELECT pg_current_wal_insert_lsn()")
# Vacuumed now, autovacuum would land on whichever reader runs a minute after the load.
"${PSQL[@]}" -c "VACUUM ANALYZE stream"
"${PSQL[@]}" -c "CHECKPOINT"
for k in $(seq 1 "$REPS"); do
  t0=$(now)
  /usr/bin/time -v -o "$WORK/t_recv" "$PGBIN/pg_recvlogical" -h 127.0.0.1 -p "$PORT" -U postgres -d bench \
    --slot "bench_recv_$k" --start -o proto_version=1 -o publication_names=dbz_publication --endpos "$END_LSN" -f /dev/null
  t1=$(now)
  report "pg_recvlogical (pgoutput v1)" "$(echo "$t1 - $t0" | bc)" "$WORK/t_recv" recv
  job stream committed-offset "bench_cdc_$k" "" "SET 'state.checkpoints.dir' = '$WORK/state-stream-$k';" > "$WORK/stream.sql"
  stream_until_confirmed "cdc-sql stream (until confirmed)" "bench_cdc_$k" stream stream
done
summary "stream, cdc-sql vs pg_recvlogical" stream recv

echo "== the same stream with 'truncate.mode' = 'delete' (every row kept and checkpointed, 1 s interval)"
job stream committed-offset bench_keep ", 'truncate.mode' = 'delete'" \
  "SET 'execution.checkpointing.interval' = '1s'; SET 'state.checkpoints.dir' = '$WORK/state-keep';" > "$WORK/keep.sql"
stream_until_confirmed "cdc-sql stream, truncate.mode=delete" bench_keep keep
echo "   last checkpoint record: $(du -h "$(ls -t "$WORK"/state-keep/chk-*.json | head -1)" | cut -f1)"
