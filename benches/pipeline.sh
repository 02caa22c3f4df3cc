#!/usr/bin/env bash
# datagen → filter/projection → blackhole through the release binary: rows/s, CPU and peak RSS
# for 10M rows, and the same job at batch sizes 1, 100 and 8192 to show the per-batch overhead
# end to end. Usage: benches/pipeline.sh [rows]   (default 10000000; CDC_SQL_BIN=path to measure
# another build's binary)
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-10000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdc-sql/target-release}"
# CDC_SQL_BIN measures a binary built elsewhere (e.g. the previous commit's, side by side).
if [ -n "${CDC_SQL_BIN:-}" ]; then
  bin="$CDC_SQL_BIN"
else
  cargo build --release -q -p cdc-sql --bin cdc-sql
  bin="$CARGO_TARGET_DIR/release/cdc-sql"
fi

job() { # $1 rows, $2 batch size
  cat <<SQL
SET 'datafusion.execution.batch_size' = '$2';
CREATE TABLE src (id BIGINT, email STRING, score INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'datagen', 'number-of-rows' = '$1', 'rows-per-second' = '1000000000', 'seed' = '1',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '$1',
  'fields.email.length' = '12', 'fields.score.min' = '0', 'fields.score.max' = '100');
CREATE TABLE out (id BIGINT, email STRING, tier STRING) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id, lower(email), CASE WHEN score >= 50 THEN 'gold' ELSE 'basic' END FROM src WHERE score > 10;
SQL
}

measure() { # $1 rows, $2 batch size
  local file; file=$(mktemp --suffix=.sql)
  job "$1" "$2" > "$file"
  local log; log=$(mktemp)
  /usr/bin/time -v "$bin" -f "$file" 2> "$log" > /dev/null
  python3 - "$1" "$2" "$log" <<'PY'
import re, sys
rows, batch, log = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3]).read()
def field(name):
    return re.search(re.escape(name) + r": (.*)", log).group(1).strip()
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
parts = [float(p) for p in wall.split(":")]
secs = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) > 2 else 0)
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)")) / 1024
print(f"{rows:>10} {batch:>6} {secs:>8.2f} {rows/secs:>12.0f} {cpu:>8.2f} {rss:>9.1f} {secs/(rows/batch)*1e6:>10.2f}")
PY
  rm -f "$file" "$log"
}

echo "      rows  batch   wall_s       rows/s    cpu_s   rss_MiB  µs/batch"
measure "$rows" 8192
measure "$((rows / 10))" 100
measure "$((rows / 50))" 1
