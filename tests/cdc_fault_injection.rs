//! Real CDC sources killed at random points: `mysql-cdc` reading the harness's MariaDB and
//! `postgres-cdc` reading its PostgreSQL, each under a concurrent write load (inserts, updates,
//! primary-key changes and swaps, deletes, multi-row and range transactions), through the real
//! binary into jdbc sinks (keyed upserts, with and without `sink.offsets-table`).
//!
//! Every seed SIGKILLs the job nine times and restarts it from its state directory each time:
//! shortly after start, mid-snapshot (200,000 rows in some 800 chunks, so that checkpoints fall
//! inside it), mid-stream, and while a checkpoint record is being written — every sink has
//! prepared (the offsets-table sink has committed the position with its data), the record is not
//! stored yet: the job is frozen with SIGSTOP until it is seen holding the record's temporary
//! file open. At the end, with the writer done and the job caught up and stopped gracefully
//! (SIGTERM, exit 0), the sink table must equal the source table row for row.
//!
//! The write load and the kill plan follow from a seed printed first; only the timing of kills
//! is left to the clock, and what each kill hit is printed, with the checkpoint the restart
//! resumes from. `FAULT_SEED=<seed>` replays one seed, `FAULT_SEEDS=<n>` runs n seeds per test
//! (default 2).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdc_sql_testkit::{
    Database, ServerKind, MARIADB_ROOT_PASSWORD, MARIADB_ROOT_USER, POSTGRES_PASSWORD, POSTGRES_SUPERUSER,
};
use serde_json::Value;

use common::{difference, drop_slot, newest_record, read_table, seeds, start_writer, JobProcess, Load, Rng, Table};

/// Rows in the source table before the job starts.
const ROWS: i64 = 200_000;
/// `scan.incremental.snapshot.chunk.size`: some 800 chunks, so that kills land inside.
const CHUNK_SIZE: u64 = 250;
/// Transactions the writer commits while the job is killed and restarted.
const TRANSACTIONS: usize = 1_500;
const CHECKPOINT_INTERVAL: &str = "100ms";
const DEADLINE: Duration = Duration::from_secs(240);

#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after start, wherever the job is (connecting, creating its slot, reading).
    After(Duration),
    /// Once a checkpoint of this run shows at least `percent` of the chunks this run has to
    /// read as read (or the snapshot over), `delay` later.
    MidSnapshot { percent: u64, delay: Duration },
    /// Once this run has stored `checkpoints` checkpoints past the snapshot, `delay` later.
    MidStream { checkpoints: u64, delay: Duration },
    /// `after` this long, at the next checkpoint while its record is being written: every
    /// sink has prepared and the record is not stored.
    WhileStoringRecord { after: Duration },
}

/// A first kill soon after start (before or around the first checkpoint), three mid-snapshot,
/// one while a record is written (mid-snapshot too, unless the snapshot is over), then the
/// rest in a seeded order.
fn kill_plan(seed: u64) -> Vec<Kill> {
    let mut rng = Rng(seed ^ 0x0000_D1CE);
    let mut plan = vec![Kill::After(rng.millis(50, 700))];
    for _ in 0..3 {
        plan.push(Kill::MidSnapshot { percent: rng.range(10, 90), delay: rng.millis(0, 100) });
    }
    plan.push(Kill::WhileStoringRecord { after: rng.millis(0, 300) });
    let mut later = vec![
        Kill::MidStream { checkpoints: rng.range(1, 5), delay: rng.millis(0, 200) },
        Kill::MidStream { checkpoints: rng.range(1, 5), delay: rng.millis(0, 200) },
        Kill::WhileStoringRecord { after: rng.millis(0, 1500) },
        Kill::After(rng.millis(100, 4000)),
    ];
    for i in (1..later.len()).rev() {
        later.swap(i, rng.below(i as u64 + 1) as usize);
    }
    plan.extend(later);
    plan
}

/// The newest checkpoint record of the state directory: (id, the first pipeline's position).
fn newest_position(dir: &Path) -> Option<(u64, Value)> {
    newest_record(dir).map(|(id, record)| (id, record["pipelines"][0]["inputs"][0]["position"].clone()))
}

enum Phase {
    NoPosition,
    Snapshot { done: u64, total: u64 },
    Stream(String),
}

fn phase_of(position: &Value) -> Phase {
    if position.is_null() {
        return Phase::NoPosition;
    }
    if let Some(phase) = position["phase"].as_str() {
        // postgres-cdc
        return match phase {
            "snapshot" => Phase::Snapshot {
                done: position["chunks_done"].as_u64().unwrap_or(0),
                total: position["chunks_total"].as_u64().unwrap_or(0),
            },
            _ => Phase::Stream(format!("WAL at {}", position["lsn"].as_str().unwrap_or("?"))),
        };
    }
    // mysql-cdc
    let at = format!("binlog at {}:{}", position["file"].as_str().unwrap_or("?"), position["pos"]);
    match position["snapshot"]["chunks"].as_array() {
        Some(chunks) => {
            let done = chunks.iter().filter(|c| !c[3].is_null()).count() as u64;
            if done < chunks.len() as u64 {
                Phase::Snapshot { done, total: chunks.len() as u64 }
            } else {
                Phase::Stream(format!("{at}, before the last chunk's watermark"))
            }
        }
        None => Phase::Stream(at),
    }
}

fn describe(position: &Value) -> String {
    match phase_of(position) {
        Phase::NoPosition => "no position yet (nothing read before it)".into(),
        Phase::Snapshot { done, total } => format!("snapshot, {done}/{total} chunks read"),
        Phase::Stream(at) => format!("stream, {at}"),
    }
}

/// A newer record than `since`, of this run.
fn record_of_run(dir: &Path, since: Option<u64>) -> Option<(u64, Value)> {
    newest_position(dir).filter(|(id, _)| Some(*id) > since)
}

/// What one test run reads, writes and checks.
struct Scenario {
    name: &'static str,
    /// Prefixes what this scenario prints (tests run side by side).
    tag: &'static str,
    source: Database,
    sink: Database,
    /// The job file.
    job: PathBuf,
    state: PathBuf,
    offsets_table: bool,
    slot: Option<String>,
    _dir: tempfile::TempDir,
}

fn admin_login(db: &Database) -> (&'static str, &'static str) {
    match db.kind() {
        ServerKind::MariaDb => (MARIADB_ROOT_USER, MARIADB_ROOT_PASSWORD),
        ServerKind::Postgres => (POSTGRES_SUPERUSER, POSTGRES_PASSWORD),
    }
}

/// The source table with `ROWS` rows; returns its WITH options and the slot (PostgreSQL).
fn create_source(db: &Database, server_ids: &str, full_identity: bool) -> (String, Option<String>) {
    let c = db.connection();
    let login = format!(
        "'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}', 'database-name' = '{}', 'table-name' = 't', \
         'scan.incremental.snapshot.chunk.size' = '{CHUNK_SIZE}'",
        c.host,
        c.port,
        c.user,
        c.password,
        db.name()
    );
    match db.kind() {
        ServerKind::MariaDb => {
            db.exec(&format!(
                "CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(64) NOT NULL) CHARACTER SET utf8mb4;
                 INSERT INTO t SELECT seq, seq * 7 % 1000, CONCAT('row-', seq) FROM seq_1_to_{ROWS};"
            ));
            (format!("'connector' = 'mysql-cdc', {login}, 'server-id' = '{server_ids}'"), None)
        }
        ServerKind::Postgres => {
            db.exec(&format!(
                "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL, note varchar(64) NOT NULL);
                 {}
                 INSERT INTO t SELECT i, i * 7 % 1000, 'row-' || i FROM generate_series(1, {ROWS}) i;
                 ANALYZE t;
                 CREATE PUBLICATION dbz_publication FOR TABLE t;",
                if full_identity { "ALTER TABLE t REPLICA IDENTITY FULL;" } else { "" }
            ));
            let slot = format!("s_{}", db.name()).to_lowercase();
            (
                format!(
                    "'connector' = 'postgres-cdc', {login}, 'schema-name' = 'public', 'slot.name' = '{slot}', \
                     'decoding.plugin.name' = 'pgoutput', 'heartbeat.interval.ms' = '1s'"
                ),
                Some(slot),
            )
        }
    }
}

impl Scenario {
    fn new(
        name: &'static str,
        source: Database,
        sink: Database,
        server_ids: &str,
        full_identity: bool,
        offsets_table: bool,
    ) -> Scenario {
        let (source_with, slot) = create_source(&source, server_ids, full_identity);
        sink.exec(match sink.kind() {
            ServerKind::MariaDb => {
                "CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT, note VARCHAR(64)) CHARACTER SET utf8mb4"
            }
            ServerKind::Postgres => "CREATE TABLE t (id bigint PRIMARY KEY, v bigint, note varchar(64))",
        });
        let (user, password) = admin_login(&sink);
        let offsets = if offsets_table { ", 'sink.offsets-table' = 'cdc_sql_offsets'" } else { "" };
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let sql = format!(
            "SET 'pipeline.name' = 'cdc-faults';
SET 'execution.checkpointing.interval' = '{CHECKPOINT_INTERVAL}';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({source_with});
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'jdbc', 'url' = '{}', 'table-name' = 't', 'username' = '{user}', 'password' = '{password}',
  'sink.buffer-flush.max-rows' = '500'{offsets});
INSERT INTO dst SELECT id, v, note FROM src;
",
            state.display(),
            sink.jdbc_url()
        );
        let job = dir.path().join("job.sql");
        std::fs::write(&job, sql).unwrap();
        let tag = match (source.kind(), sink.kind()) {
            (ServerKind::MariaDb, ServerKind::Postgres) => "mysql→pg",
            (ServerKind::MariaDb, ServerKind::MariaDb) => "mysql→mariadb",
            (ServerKind::Postgres, ServerKind::MariaDb) => "pg→mariadb",
            (ServerKind::Postgres, ServerKind::Postgres) => "pg→pg",
        };
        Scenario { name, tag, source, sink, job, state, offsets_table, slot, _dir: dir }
    }

    /// The checkpoint id whose position the sink committed with its data (offsets table).
    fn sink_checkpoint(&self) -> Option<u64> {
        if !self.offsets_table {
            return None;
        }
        let rows = self.sink.try_query("SELECT checkpoint_id FROM cdc_sql_offsets").ok()?;
        rows.first().and_then(|r| r[0].as_ref()).and_then(|v| v.parse().ok())
    }

    /// Carries out one kill; says what the job was doing.
    fn kill(&self, kill: Kill, job: &mut JobProcess, seed: u64) -> String {
        let since = newest_position(&self.state).map(|(id, _)| id);
        let deadline = Instant::now() + DEADLINE;
        let wait = |job: &mut JobProcess, what: &str| {
            job.assert_running(seed);
            assert!(Instant::now() < deadline, "FAULT_SEED={seed}: waited too long for {what}:\n{}", job.log_tail());
            std::thread::sleep(Duration::from_millis(5));
        };
        match kill {
            Kill::After(after) => {
                while job.started.elapsed() < after {
                    wait(job, "the kill time");
                }
                job.sigkill();
                "as planned".to_string()
            }
            Kill::MidSnapshot { percent, delay } => {
                // mysql-cdc resumes a snapshot with its unread chunks, postgres-cdc reads it all again.
                let already = match since.and_then(|_| newest_position(&self.state)) {
                    Some((_, position)) if position["phase"].is_null() => match phase_of(&position) {
                        Phase::Snapshot { done, .. } => done,
                        _ => 0,
                    },
                    _ => 0,
                };
                let reached = loop {
                    if let Some((_, position)) = record_of_run(&self.state, since) {
                        match phase_of(&position) {
                            Phase::Snapshot { done, total }
                                if total > 0 && done > already && (done - already) * 100 >= (total - already) * percent =>
                            {
                                break format!(
                                    "snapshot at {done}/{total} chunks (this run started at {already}, aimed at {percent}% of the rest)"
                                )
                            }
                            Phase::Stream(_) => break format!("snapshot already over (aimed at {percent}%)"),
                            _ => {}
                        }
                    }
                    wait(job, "snapshot progress");
                };
                std::thread::sleep(delay);
                job.sigkill();
                format!("{} ms after a checkpoint with the {reached}", delay.as_millis())
            }
            Kill::MidStream { checkpoints, delay } => {
                let streaming_since = loop {
                    if let Some((id, position)) = record_of_run(&self.state, since) {
                        if let Phase::Stream(_) = phase_of(&position) {
                            break id;
                        }
                    }
                    wait(job, "the stream phase");
                };
                while newest_position(&self.state).is_none_or(|(id, _)| id < streaming_since + checkpoints) {
                    wait(job, "checkpoints in the stream phase");
                }
                std::thread::sleep(delay);
                job.sigkill();
                format!("{} ms after checkpoint {checkpoints} of the stream phase", delay.as_millis())
            }
            Kill::WhileStoringRecord { after } => {
                std::thread::sleep(after);
                let mut tries = 0;
                loop {
                    job.assert_running(seed);
                    assert!(
                        Instant::now() < deadline,
                        "FAULT_SEED={seed}: never caught the job writing a checkpoint record:\n{}",
                        job.log_tail()
                    );
                    tries += 1;
                    job.signal(libc::SIGSTOP);
                    while !job.is_stopped() {
                        std::thread::yield_now();
                    }
                    if !job.open_record_temp_files().is_empty() {
                        let writing = std::fs::read_dir(&self.state)
                            .unwrap()
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| n.ends_with(".json.tmp"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        job.sigkill();
                        break format!("while it wrote {writing} (probe {tries}), after every sink prepared");
                    }
                    job.signal(libc::SIGCONT);
                    std::thread::sleep(Duration::from_micros(500 + (tries * 997) % 2500));
                }
            }
        }
    }

    /// One seed: the writer starts, the plan's kills and restarts run, then the job catches up
    /// and the two tables are compared.
    fn run(&self, seed: u64) {
        eprintln!("[{}] FAULT_SEED={seed} ({})", self.tag, self.name);
        let writer = start_writer(self.source.admin().clone(), Load::new("t", ROWS, seed ^ 0x00C0_FFEE), TRANSACTIONS);
        let plan = kill_plan(seed);
        let mut previous: Option<u64> = None;
        // How the kills left the job: resuming mid-snapshot, mid-stream, with nothing stored.
        let (mut snapshot, mut stream, mut nothing) = (0, 0, 0);
        for (i, kill) in plan.iter().enumerate() {
            let mut job = JobProcess::spawn(&self.job);
            let what = self.kill(*kill, &mut job, seed);
            let elapsed = job.started.elapsed().as_secs_f64();
            let newest = newest_position(&self.state);
            let resumes = match &newest {
                Some((id, position)) => format!("chk-{id}: {}", describe(position)),
                None => "no checkpoint: starts over".into(),
            };
            match newest.as_ref().map(|(_, p)| phase_of(p)) {
                Some(Phase::Snapshot { .. }) => snapshot += 1,
                Some(Phase::Stream(_)) => stream += 1,
                Some(Phase::NoPosition) | None => nothing += 1,
            }
            let record = newest.map(|(id, _)| id);
            let ahead = match (self.sink_checkpoint(), record) {
                (Some(sink), Some(record)) if sink > record => {
                    format!("; the sink had committed checkpoint {sink} with its data, the record is {record}")
                }
                _ => String::new(),
            };
            let progress = if record == previous { " (no new checkpoint in this run)" } else { "" };
            previous = record;
            eprintln!(
                "[{}] kill {}/{}: {kill:?}: killed {elapsed:.2} s after start, {what}; resumes from {resumes}{progress}{ahead}",
                self.tag,
                i + 1,
                plan.len()
            );
            for line in job.notable().iter().take(6) {
                eprintln!("[{}]     {line}", self.tag);
            }
        }
        eprintln!(
            "[{}] {} kills: {snapshot} resumed mid-snapshot, {stream} mid-stream, {nothing} without a stored position",
            self.tag,
            plan.len()
        );
        let model = writer.join().unwrap_or_else(|_| panic!("FAULT_SEED={seed}: the writer failed"));
        let expected = read_table(&self.source, "t");
        assert!(expected == model, "FAULT_SEED={seed}: the source differs from the writer's model (a test bug)");
        self.converge(seed, &expected);
        if let Some(slot) = &self.slot {
            drop_slot(&self.source, slot);
        }
    }

    /// Runs the job until the sink equals the source, stops it gracefully and compares again.
    fn converge(&self, seed: u64, expected: &Table) {
        let mut job = JobProcess::spawn(&self.job);
        let deadline = Instant::now() + DEADLINE;
        let summary = |db: &Database| db.query("SELECT COUNT(*), SUM(id), SUM(v) FROM t");
        let expected_summary = summary(&self.source);
        loop {
            job.assert_running(seed);
            // The full comparison only once the cheap one agrees.
            if summary(&self.sink) == expected_summary && read_table(&self.sink, "t") == *expected {
                break;
            }
            if Instant::now() > deadline {
                job.sigkill();
                panic!(
                    "FAULT_SEED={seed}: the sink never caught up with the source: {}\njob log:\n{}",
                    difference(expected, &read_table(&self.sink, "t")),
                    job.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        job.stop_gracefully(seed);
        let actual = read_table(&self.sink, "t");
        assert!(
            actual == *expected,
            "FAULT_SEED={seed}: after the final stop the sink differs from the source: {}",
            difference(expected, &actual)
        );
        eprintln!("[{}] FAULT_SEED={seed}: the sink equals the source ({} rows)", self.tag, expected.len());
    }
}

#[test]
fn mysql_cdc_killed_anywhere_leaves_postgres_upserts_equal_to_the_source() {
    for seed in seeds(2) {
        let source = cdc_sql_testkit::mariadb().create_database("faults_src");
        let sink = cdc_sql_testkit::postgres().create_database("faults_dst");
        Scenario::new("mysql-cdc → jdbc PostgreSQL", source, sink, "5701-5705", false, false).run(seed);
    }
}

#[test]
fn mysql_cdc_killed_anywhere_leaves_mariadb_with_offsets_table_equal_to_the_source() {
    for seed in seeds(2) {
        let source = cdc_sql_testkit::mariadb().create_database("faults_src");
        let sink = cdc_sql_testkit::mariadb().create_database("faults_dst");
        Scenario::new("mysql-cdc → jdbc MariaDB, offsets table", source, sink, "5711-5715", false, true).run(seed);
    }
}

#[test]
fn postgres_cdc_killed_anywhere_leaves_mariadb_upserts_equal_to_the_source() {
    for seed in seeds(2) {
        let source = cdc_sql_testkit::postgres().create_database("faults_src");
        let sink = cdc_sql_testkit::mariadb().create_database("faults_dst");
        Scenario::new("postgres-cdc (REPLICA IDENTITY FULL) → jdbc MariaDB", source, sink, "", true, false).run(seed);
    }
}

#[test]
fn postgres_cdc_killed_anywhere_leaves_postgres_with_offsets_table_equal_to_the_source() {
    for seed in seeds(2) {
        let source = cdc_sql_testkit::postgres().create_database("faults_src");
        let sink = cdc_sql_testkit::postgres().create_database("faults_dst");
        Scenario::new(
            "postgres-cdc (REPLICA IDENTITY DEFAULT) → jdbc PostgreSQL, offsets table",
            source,
            sink,
            "",
            false,
            true,
        )
        .run(seed);
    }
}
