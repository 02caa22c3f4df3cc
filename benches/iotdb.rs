//! `iotdb` sink throughput: 1M rows × 5 measurements (5M points) from datagen through the release
//! binary into the IoTDB REST emulator (tests/emulators/iotdb.rs, running in this process), over
//! 100 devices from a template. Reports points/s and the cdc-sql process's CPU seconds per million
//! points, next to the same job into `blackhole` (the engine without the sink) measured in the
//! same run. No IoTDB server or Flink IoTDB connector can run here, so there is no external
//! reference tool; the emulator parses and stores every point, so its cost is in the wall time.
//! Usage: `cargo bench --bench iotdb [-- rows]` (release); `cargo bench --profile dev --bench iotdb`
//! reuses the test build when a release build of DataFusion is not at hand.

#[path = "../tests/emulators/iotdb.rs"]
mod emulator;

use std::process::Command;

fn job(rows: u64, sink: &str) -> String {
    format!(
        "CREATE TABLE src (id BIGINT, temp DOUBLE, humidity DOUBLE, level INT, status STRING, ok BOOLEAN) WITH (
  'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '1000000000', 'seed' = '1',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
  'fields.status.length' = '8', 'fields.level.min' = '0', 'fields.level.max' = '1000');
CREATE TABLE out (dev BIGINT, ts BIGINT, temp DOUBLE, humidity DOUBLE, level INT, status STRING, ok BOOLEAN) WITH ({sink});
INSERT INTO out SELECT id % 100, id, temp, humidity, level, status, ok FROM src;
"
    )
}

/// (wall seconds, CPU seconds) of one run of the binary.
fn run(sql: &str) -> (f64, f64) {
    let dir = std::env::temp_dir().join(format!("cdc-sql-iotdb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let file = dir.join("job.sql");
    std::fs::write(&file, sql).expect("job file");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S")
        .arg(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&file)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run /usr/bin/time cdc-sql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "job failed: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let f: Vec<f64> = last.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert_eq!(f.len(), 3, "cannot read /usr/bin/time output: {stderr}");
    (f[0], f[1] + f[2])
}

fn main() {
    let rows: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let points = rows * 5;
    let iotdb = emulator::IotdbEmulator::start("root", "bench");
    let sink = format!(
        "'connector' = 'iotdb', 'url' = '{}', 'password' = 'bench', 'device' = 'root.bench.d{{dev}}', \
         'time-column' = 'ts', 'sink.buffer-flush.max-rows' = '50000'",
        iotdb.url()
    );
    let (wall, cpu) = run(&job(rows, &sink));
    let stored: usize = iotdb
        .device_paths()
        .iter()
        .filter_map(|p| iotdb.device(p))
        .map(|d| d.series.values().map(|s| s.points.len()).sum::<usize>())
        .sum();
    assert_eq!(stored as u64, points, "every point must arrive");
    let (bh_wall, bh_cpu) = run(&job(rows, "'connector' = 'blackhole'"));
    let profile = if cfg!(debug_assertions) { "dev profile: unoptimized binary and emulator" } else { "release" };
    println!("iotdb sink, {rows} rows x 5 measurements, 100 devices ({profile})");
    println!("{:<22} {:>9} {:>14} {:>16}", "run", "wall s", "points/s", "cpu s / M points");
    println!(
        "{:<22} {:>9.2} {:>14.0} {:>16.3}",
        "iotdb (emulator)",
        wall,
        points as f64 / wall,
        cpu / (points as f64 / 1e6)
    );
    println!(
        "{:<22} {:>9.2} {:>14.0} {:>16.3}",
        "blackhole (baseline)",
        bh_wall,
        points as f64 / bh_wall,
        bh_cpu / (points as f64 / 1e6)
    );
    println!("emulator requests: {} insertTablet", iotdb.count("/rest/v2/insertTablet"));
}
