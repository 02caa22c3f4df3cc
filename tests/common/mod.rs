//! The harness the fault-injection tests share: a seeded RNG, a write load with its model of the
//! table, the job process they kill, and the checkpoint records they read.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_sql_testkit::{Client, Database};
use serde_json::Value;

/// splitmix64: every choice of a test follows from its seed.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// id → (v, note)
pub type Table = BTreeMap<i64, (i64, String)>;

/// The rows of `table` (columns `id`, `v`, `note`) in `db`, by id.
pub fn read_table(db: &Database, table: &str) -> Table {
    db.query_opt(&format!("SELECT id, v, note FROM {table} ORDER BY id"))
        .into_iter()
        .map(|r| {
            let text = |i: usize| r[i].clone().unwrap_or_else(|| "<NULL>".into());
            (text(0).parse().unwrap(), (text(1).parse().unwrap_or(i64::MIN), text(2)))
        })
        .collect()
}

/// The first keys where the two tables differ, for a failure message.
pub fn difference(expected: &Table, actual: &Table) -> String {
    let keys: std::collections::BTreeSet<&i64> = expected.keys().chain(actual.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| expected.get(k) != actual.get(k))
        .take(20)
        .map(|k| format!("id {k}: source {:?}, sink {:?}", expected.get(k), actual.get(k)))
        .collect();
    format!(
        "{} rows in the source, {} in the sink; first differences:\n{}",
        expected.len(),
        actual.len(),
        diff.join("\n")
    )
}

/// The row the source table holds for `id` before the load (create it with
/// `id * 7 % 1000, 'row-' || id`).
pub fn initial_row(id: i64) -> (i64, String) {
    (id * 7 % 1000, format!("row-{id}"))
}

/// The writer's model of a source table `(id, v, note)`, so that every statement it sends is
/// valid (no duplicate keys) and the load is the same for a seed whatever the timing. The SQL is
/// common to MariaDB and PostgreSQL.
pub struct Load {
    /// The table's name in SQL.
    name: &'static str,
    table: Table,
    /// Keys not in the table that were in it once: reused so that deleted keys come back.
    free: Vec<i64>,
    next_id: i64,
    counter: u64,
    rng: Rng,
}

impl Load {
    /// The load on table `name`, which holds `initial_row` for ids 1 to `rows`.
    pub fn new(name: &'static str, rows: i64, seed: u64) -> Load {
        Load {
            name,
            table: (1..=rows).map(|id| (id, initial_row(id))).collect(),
            free: Vec::new(),
            next_id: rows + 1,
            counter: 0,
            rng: Rng(seed),
        }
    }

    /// A key in the table (spread over the whole key range, so every chunk sees changes).
    fn existing(&mut self) -> i64 {
        let probe = self.rng.range(1, self.next_id as u64) as i64;
        match self.table.range(probe..).next().or_else(|| self.table.iter().next()) {
            Some((k, _)) => *k,
            None => panic!("the writer emptied the table"),
        }
    }

    /// A key not in the table: a deleted one half of the time, else a new one.
    fn unused(&mut self) -> i64 {
        if !self.free.is_empty() && self.rng.below(2) == 0 {
            let i = self.rng.below(self.free.len() as u64) as usize;
            return self.free.swap_remove(i);
        }
        self.next_id += 1;
        self.next_id - 1
    }

    fn fresh_row(&mut self) -> (i64, String) {
        self.counter += 1;
        let v = self.rng.below(1_000_000) as i64;
        let note = match self.rng.below(8) {
            0 => format!("it's #{} ✓", self.counter),
            1 => String::new(),
            _ => format!("w{}-{v}", self.counter),
        };
        (v, note)
    }

    fn remove(&mut self, id: i64) -> (i64, String) {
        let row = self.table.remove(&id).expect("the model holds the key");
        self.free.push(id);
        row
    }

    /// Appends one change (one or a few statements) to `sql`.
    fn change(&mut self, sql: &mut Vec<String>) {
        let name = self.name;
        match self.rng.below(100) {
            0..=24 => {
                let id = self.unused();
                let (v, note) = self.fresh_row();
                sql.push(format!("INSERT INTO {name} VALUES ({id}, {v}, {})", quote(&note)));
                self.table.insert(id, (v, note));
            }
            25..=52 => {
                let id = self.existing();
                let (v, note) = self.fresh_row();
                sql.push(format!("UPDATE {name} SET v = {v}, note = {} WHERE id = {id}", quote(&note)));
                self.table.insert(id, (v, note));
            }
            53..=62 => {
                let (old, new) = (self.existing(), self.unused());
                sql.push(format!("UPDATE {name} SET id = {new} WHERE id = {old}"));
                let row = self.remove(old);
                self.table.insert(new, row);
            }
            63..=66 => {
                // Two keys swap their rows through a third.
                let (a, b) = (self.existing(), self.existing());
                if a == b {
                    return;
                }
                let via = self.unused();
                sql.push(format!("UPDATE {name} SET id = {via} WHERE id = {a}"));
                sql.push(format!("UPDATE {name} SET id = {a} WHERE id = {b}"));
                sql.push(format!("UPDATE {name} SET id = {b} WHERE id = {via}"));
                self.free.push(via);
                let row_a = self.table.remove(&a).expect("held");
                let row_b = self.table.remove(&b).expect("held");
                self.table.insert(a, row_b);
                self.table.insert(b, row_a);
            }
            67..=71 => {
                // A key moves away and a new row takes the old key at once.
                let (old, new) = (self.existing(), self.unused());
                let (v, note) = self.fresh_row();
                sql.push(format!("UPDATE {name} SET id = {new} WHERE id = {old}"));
                sql.push(format!("INSERT INTO {name} VALUES ({old}, {v}, {})", quote(&note)));
                let row = self.table.remove(&old).expect("held");
                self.table.insert(new, row);
                self.table.insert(old, (v, note));
            }
            72..=86 => {
                let id = self.existing();
                sql.push(format!("DELETE FROM {name} WHERE id = {id}"));
                self.remove(id);
            }
            87..=93 => {
                let a = self.existing();
                let b = a + self.rng.range(1, 60) as i64;
                sql.push(format!("UPDATE {name} SET v = v + 1 WHERE id BETWEEN {a} AND {b}"));
                for (_, (v, _)) in self.table.range_mut(a..=b) {
                    *v += 1;
                }
            }
            _ => {
                let a = self.existing();
                let b = a + self.rng.range(0, 8) as i64;
                sql.push(format!("DELETE FROM {name} WHERE id BETWEEN {a} AND {b}"));
                let ids: Vec<i64> = self.table.range(a..=b).map(|(k, _)| *k).collect();
                for id in ids {
                    self.remove(id);
                }
            }
        }
    }

    /// One transaction: usually a few changes, now and then a large one.
    fn transaction(&mut self) -> String {
        let changes = if self.rng.below(40) == 0 { self.rng.range(30, 120) } else { self.rng.range(1, 5) };
        let mut sql = Vec::new();
        for _ in 0..changes {
            self.change(&mut sql);
        }
        format!("START TRANSACTION;\n{};\nCOMMIT;\n", sql.join(";\n"))
    }
}

pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs `transactions` of the load in bursts through `client`; returns the model at the end.
pub fn start_writer(client: Client, mut load: Load, transactions: usize) -> std::thread::JoinHandle<Table> {
    std::thread::spawn(move || {
        let mut done = 0;
        while done < transactions {
            let burst = (load.rng.range(1, 7) as usize).min(transactions - done);
            let script: String = (0..burst).map(|_| load.transaction()).collect();
            client.exec(&script);
            done += burst;
            std::thread::sleep(load.rng.millis(0, 40));
        }
        load.table
    })
}

/// A running `cdc-sql -f job.sql`, its stderr collected.
pub struct JobProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl JobProcess {
    pub fn spawn(job_file: &Path) -> JobProcess {
        JobProcess::spawn_with(job_file, &[])
    }

    /// With extra environment variables (e.g. `CDC_SQL_HTTP_ADDR` to know the REST port).
    pub fn spawn_with(job_file: &Path, env: &[(&str, &str)]) -> JobProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .arg("-f")
            .arg(job_file)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        JobProcess { child, log, started: Instant::now() }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(40)..].join("\n")
    }

    /// Fails the test (with what the job logged) if the job has ended.
    pub fn assert_running(&mut self, seed: u64) {
        if let Some(status) = self.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            panic!("FAULT_SEED={seed}: the job ended on its own ({status}); it logged:\n{}", self.log_tail());
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the job must stop cleanly (exit 0).
    pub fn stop_gracefully(&mut self, seed: u64) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "FAULT_SEED={seed}: SIGTERM ended the job with {status}:\n{}", self.log_tail());
    }

    /// Warnings and errors the job logged, for the kill report.
    pub fn notable(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for line in self.log.lock().unwrap().iter() {
            if line.contains("WARN") || line.contains("ERROR") {
                let short: String = line.chars().take(220).collect();
                if !seen.contains(&short) {
                    seen.push(short);
                }
            }
        }
        seen
    }

    /// Stopped by the kernel (SIGSTOP took effect).
    pub fn is_stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T') || rest.starts_with('t')))
            .unwrap_or(false)
    }

    /// The checkpoint record temporary files (`.chk-<n>.json.tmp`) the job holds open; files of
    /// the same name left in the directory by killed runs do not count.
    pub fn open_record_temp_files(&self) -> Vec<String> {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.pid())) else { return Vec::new() };
        fds.filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|name| name.starts_with(".chk-") && name.ends_with(".json.tmp"))
            .collect()
    }
}

/// A test that fails must not leave its job running (and holding its ports and slots).
impl Drop for JobProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The newest checkpoint record (`chk-<n>.json`) of the state directory: its id and content.
pub fn newest_record(dir: &Path) -> Option<(u64, Value)> {
    for _ in 0..20 {
        let newest = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("chk-")?.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .max()?;
        // Retention may remove it between listing and reading; list again then.
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("chk-{newest}.json"))) {
            return Some((newest, serde_json::from_str(&text).unwrap()));
        }
    }
    panic!("the newest checkpoint record of {} kept disappearing", dir.display())
}

/// Drops a replication slot once its last reader let go of it.
pub fn drop_slot(db: &Database, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db
        .try_exec(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ))
        .is_err()
    {
        assert!(Instant::now() < deadline, "slot {slot} stayed in use");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `FAULT_SEED=<seed>` replays one seed, `FAULT_SEEDS=<n>` runs n (default `default_count`).
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count: u64 = std::env::var("FAULT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_count);
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    (0..count).map(|i| base.wrapping_add(i.wrapping_mul(0x9E37_79B9))).collect()
}
