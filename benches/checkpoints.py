#!/usr/bin/env python3
"""Checkpoint cost and recovery time, through the release binary.

1. Throughput of datagen → filter/projection → blackhole with checkpointing off, every 1 s and
   every 10 s, and the checkpoint durations the job logs.
2. Recovery: a streaming job (checkpoints every 1 s) is killed with SIGKILL; the time from
   restarting it to its first delivered row, next to a cold start of the same job.

Usage: benches/checkpoints.py [rows]   (default 60000000; the binary is built in release first)
"""
import os, re, signal, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/cdc-sql/target-release"))
subprocess.run(["cargo", "build", "--release", "-q", "-p", "cdc-sql", "--bin", "cdc-sql"], cwd=root, check=True,
               env={**os.environ, "CARGO_TARGET_DIR": target})
binary = os.path.join(target, "release", "cdc-sql")
rows = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000_000


def job(interval, state_dir, bounded_rows=None, sink="blackhole"):
    settings = ""
    if interval:
        settings = f"SET 'execution.checkpointing.interval' = '{interval}';\nSET 'state.checkpoints.dir' = '{state_dir}';\n"
    bound = f"'number-of-rows' = '{bounded_rows}', " if bounded_rows else ""
    rate = "1000000000" if bounded_rows else "100000"
    return settings + f"""
CREATE TABLE src (id BIGINT, email STRING, score INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'datagen', {bound}'rows-per-second' = '{rate}', 'seed' = '1',
  'fields.email.length' = '12', 'fields.score.min' = '0', 'fields.score.max' = '100');
CREATE TABLE out (id BIGINT, email STRING, tier STRING) WITH ('connector' = '{sink}');
INSERT INTO out SELECT id, lower(email), CASE WHEN score >= 50 THEN 'gold' ELSE 'basic' END FROM src WHERE score > 10;
"""


if os.environ.get("ONLY_RECOVERY"):
    rows = 0
print(f"throughput, {rows} rows (datagen → filter/projection → blackhole)")
print(f"{'checkpointing':>14} {'wall_s':>8} {'rows/s':>12} {'checkpoints':>12} {'avg_ms':>8} {'max_ms':>8}")
for interval in ([None, "1s", "10s"] if rows else []):
    with tempfile.TemporaryDirectory() as state:
        started = time.monotonic()
        out = subprocess.run([binary, "-e", job(interval, state, rows)], capture_output=True, text=True,
                             env={**os.environ, "RUST_LOG": "cdc_sql::runtime=debug"})
        wall = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        durations = [int(m) for m in re.findall(r"checkpoint stored.*?duration_ms=(\d+)", out.stderr)]
        avg = sum(durations) / len(durations) if durations else 0
        print(f"{interval or 'off':>14} {wall:>8.2f} {rows / wall:>12.0f} {len(durations):>12} {avg:>8.1f} {max(durations or [0]):>8}")


def first_line_after_start(sql, extra=()):
    started = time.monotonic()
    proc = subprocess.Popen([binary, *extra, "-e", sql], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdout.readline()
    elapsed = time.monotonic() - started
    return proc, elapsed


print("\nrecovery (checkpoints every 1 s, print sink, killed with SIGKILL after 3 s)")
with tempfile.TemporaryDirectory() as state:
    sql = job("1s", state, sink="print")
    proc, cold = first_line_after_start(sql, ["--fresh"])
    time.sleep(3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc, recovered = first_line_after_start(sql)
    # Nobody reads the rows, so the job cannot drain to a graceful stop: kill it.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    print(f"cold start to first row: {cold * 1000:.0f} ms; restart after kill to first row: {recovered * 1000:.0f} ms")
