//! `UNION ALL` of two CDC sources on different servers into one sink, killed at random points:
//! `mysql-cdc` reading `orders` on the harness's MariaDB (region `eu`) and `postgres-cdc` reading
//! `orders` on its PostgreSQL (region `us`), each under its own concurrent write load (inserts,
//! updates, primary-key changes, deletes, multi-row and range transactions), merged by
//!
//! ```sql
//! INSERT INTO all_orders
//! SELECT 'eu' AS region, id, v, note FROM orders_eu UNION ALL SELECT 'us' AS region, id, v, note FROM orders_us
//! ```
//!
//! into a jdbc sink on PostgreSQL keyed by `(region, id)`. Both sources start with the same ids,
//! so a row that lands under the wrong region, or one source's delete applied to the other's
//! row, shows up as a difference. Beside it, in the same job (a statement set, so the same
//! checkpoints and kills), a join and a GROUP BY keep per-tier figures of the MariaDB orders
//! current, each order joined to the customer its `v` points at:
//!
//! ```sql
//! INSERT INTO eu_tiers
//! SELECT c.tier, COUNT(*), SUM(o.v), MIN(o.id), MAX(o.id)
//! FROM orders_eu_agg o JOIN customers_eu c ON o.v % 100 = c.id GROUP BY c.tier
//! ```
//!
//! into a sink keyed by the tier. Between kills customers change tier, come and go, so the join
//! retracts and re-emits rows from both sides. Its state (both sides' rows) and the GROUP BY's
//! (every id of every tier, for MIN and MAX under retractions) are checkpointed and restored across
//! the kills, and at the end the sink must equal the same query run directly on MariaDB.
//!
//! Every seed SIGKILLs the job five times and restarts it from its state directory each time:
//! soon after start, a few checkpoints in (the snapshots are small chunks, so this is usually
//! inside them), some checkpoints after both inputs' positions in the record show them past their
//! snapshots, and while a checkpoint record is being written — the job
//! is frozen with SIGSTOP until it is seen holding the record's temporary file open, so every
//! input has reached the checkpoint and the sink has prepared, but the record is not stored. At
//! the end, with both writers done and the job caught up and stopped gracefully (SIGTERM, exit
//! 0), the sink must equal the union of the two source tables row for row: nothing lost, nothing
//! doubled, nothing left over from a key that moved; and the join and GROUP BY's sink the query's answer.
//!
//! This is a smaller sibling of `tests/cdc_fault_injection.rs` (20,000 rows per source, five
//! kills per seed) so that it adds minutes, not tens of minutes, to the suite; that file covers
//! the single-source cases at scale. The write load, the sink variant (with or without
//! `sink.offsets-table`, the PostgreSQL source's replica identity) and the kill plan follow from
//! a seed printed first; only the timing of kills is left to the clock, and what each kill hit is
//! printed with the checkpoint the restart resumes from. `FAULT_SEED=<seed>` replays one seed,
//! `FAULT_SEEDS=<n>` runs n seeds (default 3; consecutive seeds alternate the offsets table).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdc_sql_testkit::{Database, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};
use serde_json::Value;

use common::{drop_slot, newest_record, seeds, start_writer, JobProcess, Load, Rng, Table};

/// Rows in each source table before the job starts (ids 1..=ROWS in both).
const ROWS: i64 = 20_000;
/// `scan.incremental.snapshot.chunk.size`: 200 chunks per source, so that the snapshots span
/// many checkpoints and kills land inside them, yet end soon enough for kills in the stream.
const CHUNK_SIZE: u64 = 100;
/// Transactions each writer commits while the job is killed and restarted.
const TRANSACTIONS: usize = 700;
const CHECKPOINT_INTERVAL: &str = "100ms";
/// `server-id` range of the mysql-cdc source (unique among this process's jobs on the server).
const SERVER_IDS: &str = "5721-5725";
/// `server-id` range of the GROUP BY's mysql-cdc source.
const AGGREGATE_SERVER_IDS: &str = "5730-5733";
/// `server-id` range of the customers' mysql-cdc source.
const CUSTOMER_SERVER_IDS: &str = "5734-5737";
/// The join and GROUP BY, as the job runs it over `orders_eu_agg` and `customers_eu` and as
/// MariaDB answers it over `orders` and `customers`.
const TIERS: &str = "SELECT c.tier AS tier, COUNT(*) AS n, SUM(o.v) AS total, MIN(o.id) AS lo, MAX(o.id) AS hi";
const TIERS_GROUP: &str = "o JOIN {customers} c ON o.v % 100 = c.id GROUP BY c.tier";
const DEADLINE: Duration = Duration::from_secs(180);

/// (region, id) → (v, note): the sink, or the union of the sources.
type Union = BTreeMap<(String, i64), (i64, String)>;

#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after start, wherever the job is (connecting, creating its slot, reading).
    After(Duration),
    /// Once this run has stored `checkpoints` checkpoint records, `delay` later.
    Checkpoints { checkpoints: u64, delay: Duration },
    /// Once a record of this run shows both inputs streaming (snapshots over) and `checkpoints`
    /// more records are stored, `delay` later.
    MidStream { checkpoints: u64, delay: Duration },
    /// `after` this long, at the next checkpoint while its record is being written: every input
    /// reached the checkpoint, the sink prepared, the record is not stored.
    WhileStoringRecord { after: Duration },
}

/// A kill soon after start, one a few checkpoints in (inside the snapshots, mostly), one while
/// a record is written, then one mid-stream and one of the other kinds in a seeded order.
fn kill_plan(seed: u64) -> Vec<Kill> {
    let mut rng = Rng(seed ^ 0x0000_D1CE);
    let mut plan = vec![
        Kill::After(rng.millis(50, 700)),
        Kill::Checkpoints { checkpoints: rng.range(1, 5), delay: rng.millis(0, 100) },
        Kill::WhileStoringRecord { after: rng.millis(0, 300) },
    ];
    let stream = Kill::MidStream { checkpoints: rng.range(1, 10), delay: rng.millis(0, 200) };
    let other = if rng.below(2) == 0 {
        Kill::WhileStoringRecord { after: rng.millis(0, 1500) }
    } else {
        Kill::After(rng.millis(100, 4000))
    };
    if rng.below(2) == 0 {
        plan.extend([stream, other]);
    } else {
        plan.extend([other, stream]);
    }
    plan
}

/// Where one input of a checkpoint record was.
struct InputPhase {
    /// What the kill report says about it.
    text: String,
    /// Past its snapshot (mysql-cdc: every chunk read, the stream catching up).
    streaming: bool,
}

/// The source positions of a record, found anywhere in it by the fields the two CDC sources
/// write, so that only a change of the positions themselves (not of the record around them)
/// needs this to change.
fn inputs_of(record: &Value) -> Vec<InputPhase> {
    fn walk(value: &Value, found: &mut Vec<InputPhase>) {
        match value {
            Value::Object(map) => {
                if let Some(phase) = map.get("phase").and_then(Value::as_str) {
                    // postgres-cdc
                    found.push(match phase {
                        "snapshot" => InputPhase {
                            text: format!(
                                "postgres-cdc snapshot, {}/{} chunks read",
                                map.get("chunks_done").and_then(Value::as_u64).unwrap_or(0),
                                map.get("chunks_total").and_then(Value::as_u64).unwrap_or(0)
                            ),
                            streaming: false,
                        },
                        _ => InputPhase {
                            text: format!(
                                "postgres-cdc stream, WAL at {}",
                                map.get("lsn").and_then(Value::as_str).unwrap_or("?")
                            ),
                            streaming: true,
                        },
                    });
                } else if let (Some(file), Some(pos)) = (map.get("file"), map.get("pos")) {
                    // mysql-cdc
                    let at = format!("binlog at {}:{pos}", file.as_str().unwrap_or("?"));
                    found.push(match value["snapshot"]["chunks"].as_array() {
                        Some(chunks) => {
                            let done = chunks.iter().filter(|c| !c[3].is_null()).count();
                            let streaming = done == chunks.len();
                            let text = if streaming {
                                format!("mysql-cdc stream, {at}, before the last chunk's watermark")
                            } else {
                                format!("mysql-cdc snapshot, {done}/{} chunks read, {at}", chunks.len())
                            };
                            InputPhase { text, streaming }
                        }
                        None => InputPhase { text: format!("mysql-cdc stream, {at}"), streaming: true },
                    });
                } else {
                    map.values().for_each(|v| walk(v, found));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(record, &mut found);
    found
}

fn describe(inputs: &[InputPhase]) -> String {
    if inputs.is_empty() {
        return "no source position yet".into();
    }
    inputs.iter().map(|i| i.text.as_str()).collect::<Vec<_>>().join("; ")
}

/// Every input (the union's two and the join's two) is past its snapshot.
fn all_streaming(record: &Value) -> bool {
    let inputs = inputs_of(record);
    inputs.len() == 4 && inputs.iter().all(|i| i.streaming)
}

/// The join's query over `orders` and `customers` as named in the job or on MariaDB.
fn tiers(orders: &str, customers: &str) -> String {
    format!("{TIERS} FROM {orders} {}", TIERS_GROUP.replace("{customers}", customers))
}

/// Sources, sink and job file of one seed.
struct Scenario {
    eu: Database,
    us: Database,
    sink: Database,
    slot: String,
    offsets_table: bool,
    job: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        let eu = cdc_sql_testkit::mariadb().create_database("union_eu");
        let us = cdc_sql_testkit::postgres().create_database("union_us");
        let sink = cdc_sql_testkit::postgres().create_database("union_sink");
        let offsets_table = seed.is_multiple_of(2);
        let full_identity = (seed >> 1).is_multiple_of(2);
        eu.exec(&format!(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(64) NOT NULL) CHARACTER SET utf8mb4;
             INSERT INTO orders SELECT seq, seq * 7 % 1000, CONCAT('row-', seq) FROM seq_1_to_{ROWS};
             CREATE TABLE customers (id BIGINT PRIMARY KEY, tier VARCHAR(8) NOT NULL);
             INSERT INTO customers SELECT seq, ELT(seq % 3 + 1, 'gold', 'silver', 'bronze') FROM seq_0_to_99;"
        ));
        us.exec(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, v bigint NOT NULL, note varchar(64) NOT NULL);
             {}
             INSERT INTO orders SELECT i, i * 7 % 1000, 'row-' || i FROM generate_series(1, {ROWS}) i;
             ANALYZE orders;
             CREATE PUBLICATION dbz_publication FOR TABLE orders;",
            if full_identity { "ALTER TABLE orders REPLICA IDENTITY FULL;" } else { "" }
        ));
        sink.exec(
            "CREATE TABLE all_orders (region varchar(2), id bigint, v bigint, note varchar(64), PRIMARY KEY (region, id));
             CREATE TABLE eu_tiers (tier varchar(8) PRIMARY KEY, n bigint, total bigint, lo bigint, hi bigint)",
        );
        let login_to = |db: &Database, table: &str| {
            let c = db.connection();
            format!(
                "'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}', 'database-name' = '{}', \
                 'table-name' = '{table}', 'scan.incremental.snapshot.chunk.size' = '{CHUNK_SIZE}'",
                c.host,
                c.port,
                c.user,
                c.password,
                db.name()
            )
        };
        let login = |db: &Database| login_to(db, "orders");
        let slot = format!("s_{}", us.name()).to_lowercase();
        let offsets = if offsets_table { ", 'sink.offsets-table' = 'cdc_sql_offsets'" } else { "" };
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let columns = "id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED";
        let sql = format!(
            "SET 'pipeline.name' = 'union-faults';
SET 'execution.checkpointing.interval' = '{CHECKPOINT_INTERVAL}';
SET 'state.checkpoints.dir' = '{state}';
CREATE TABLE orders_eu ({columns}) WITH ('connector' = 'mysql-cdc', {eu_login}, 'server-id' = '{SERVER_IDS}');
CREATE TABLE orders_us ({columns}) WITH ('connector' = 'postgres-cdc', {us_login}, 'schema-name' = 'public',
  'slot.name' = '{slot}', 'decoding.plugin.name' = 'pgoutput', 'heartbeat.interval.ms' = '1s');
CREATE TABLE all_orders (region STRING, id BIGINT, v BIGINT, note STRING, PRIMARY KEY (region, id) NOT ENFORCED) WITH (
  'connector' = 'jdbc', 'url' = '{url}', 'table-name' = 'all_orders',
  'username' = '{POSTGRES_SUPERUSER}', 'password' = '{POSTGRES_PASSWORD}',
  'sink.buffer-flush.max-rows' = '500'{offsets});
CREATE TABLE orders_eu_agg ({columns}) WITH ('connector' = 'mysql-cdc', {eu_login}, 'server-id' = '{AGGREGATE_SERVER_IDS}');
CREATE TABLE customers_eu (id BIGINT, tier STRING, PRIMARY KEY (id) NOT ENFORCED)
  WITH ('connector' = 'mysql-cdc', {customers_login}, 'server-id' = '{CUSTOMER_SERVER_IDS}');
CREATE TABLE eu_tiers (tier STRING, n BIGINT, total BIGINT, lo BIGINT, hi BIGINT, PRIMARY KEY (tier) NOT ENFORCED)
  WITH ('connector' = 'jdbc', 'url' = '{url}', 'table-name' = 'eu_tiers',
  'username' = '{POSTGRES_SUPERUSER}', 'password' = '{POSTGRES_PASSWORD}', 'sink.buffer-flush.max-rows' = '500');
EXECUTE STATEMENT SET BEGIN
INSERT INTO all_orders
SELECT 'eu' AS region, id, v, note FROM orders_eu
UNION ALL
SELECT 'us' AS region, id, v, note FROM orders_us;
INSERT INTO eu_tiers {tiers};
END;
",
            state = state.display(),
            eu_login = login(&eu),
            customers_login = login_to(&eu, "customers"),
            tiers = tiers("orders_eu_agg", "customers_eu"),
            us_login = login(&us),
            url = sink.jdbc_url(),
        );
        let job = dir.path().join("job.sql");
        std::fs::write(&job, sql).unwrap();
        eprintln!(
            "[union] FAULT_SEED={seed}: {ROWS} rows per source, sink {} sink.offsets-table, orders_us REPLICA IDENTITY {}",
            if offsets_table { "with" } else { "without" },
            if full_identity { "FULL" } else { "DEFAULT" }
        );
        Scenario { eu, us, sink, slot, offsets_table, job, state, _dir: dir }
    }

    /// The newest checkpoint id the sink committed with its data (offsets table).
    fn sink_checkpoint(&self) -> Option<u64> {
        if !self.offsets_table {
            return None;
        }
        let rows = self.sink.try_query("SELECT max(checkpoint_id) FROM cdc_sql_offsets").ok()?;
        rows.first().and_then(|r| r[0].as_ref()).and_then(|v| v.parse().ok())
    }

    /// Carries out one kill; says what it hit.
    fn kill(&self, kill: Kill, job: &mut JobProcess, seed: u64) -> String {
        let since = newest_record(&self.state).map(|(id, _)| id);
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
            Kill::Checkpoints { checkpoints, delay } => {
                let target = since.unwrap_or(0) + checkpoints;
                while newest_record(&self.state).is_none_or(|(id, _)| id < target) {
                    wait(job, "checkpoints");
                }
                std::thread::sleep(delay);
                job.sigkill();
                format!("{} ms after this run's checkpoint {checkpoints}", delay.as_millis())
            }
            Kill::MidStream { checkpoints, delay } => {
                let streaming_since = loop {
                    if let Some((id, record)) = newest_record(&self.state) {
                        if Some(id) > since && all_streaming(&record) {
                            break id;
                        }
                    }
                    wait(job, "every input streaming");
                };
                while newest_record(&self.state).is_none_or(|(id, _)| id < streaming_since + checkpoints) {
                    wait(job, "checkpoints in the stream phase");
                }
                std::thread::sleep(delay);
                job.sigkill();
                format!("{} ms after checkpoint {checkpoints} with every input streaming", delay.as_millis())
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
                    let writing = job.open_record_temp_files();
                    if !writing.is_empty() {
                        job.sigkill();
                        let writing = writing.join(", ");
                        break format!("while it wrote {writing} (probe {tries}), after the sink prepared");
                    }
                    job.signal(libc::SIGCONT);
                    // Vary where in the checkpoint cycle the next probe lands.
                    std::thread::sleep(Duration::from_micros(500 + (tries * 997) % 2500));
                }
            }
        }
    }

    /// One seed: the writers start, the plan's kills and restarts run, then the job catches up
    /// and the sink is compared with the union of the sources.
    fn run(&self, seed: u64) {
        let eu_writer =
            start_writer(self.eu.admin().clone(), Load::new("orders", ROWS, seed ^ 0x00E0_0E00), TRANSACTIONS);
        let us_writer =
            start_writer(self.us.admin().clone(), Load::new("orders", ROWS, seed ^ 0x0000_05A5), TRANSACTIONS);
        let plan = kill_plan(seed);
        // How the kills left the job: resuming with an input mid-snapshot, both streaming, with
        // nothing stored.
        let (mut snapshot, mut stream, mut nothing) = (0, 0, 0);
        for (i, kill) in plan.iter().enumerate() {
            // Customers change tier, go and come back: the join's other side moves too.
            let k = i as u64 + seed % 5;
            self.eu.exec(&format!(
                "UPDATE customers SET tier = ELT((id + {k}) % 3 + 1, 'gold', 'silver', 'bronze') WHERE id % 5 = {};
                 DELETE FROM customers WHERE id = {};
                 INSERT INTO customers VALUES ({}, 'silver') ON DUPLICATE KEY UPDATE tier = 'gold'",
                k % 5,
                k * 7 % 100,
                (k * 13 + 3) % 100
            ));
            let mut job = JobProcess::spawn(&self.job);
            let what = self.kill(*kill, &mut job, seed);
            let elapsed = job.started.elapsed().as_secs_f64();
            let newest = newest_record(&self.state);
            let inputs = newest.as_ref().map(|(_, record)| inputs_of(record)).unwrap_or_default();
            let resumes = match &newest {
                Some((id, _)) => format!("chk-{id}: {}", describe(&inputs)),
                None => "no checkpoint: starts over".into(),
            };
            if inputs.is_empty() {
                nothing += 1;
            } else if inputs.iter().all(|i| i.streaming) {
                stream += 1;
            } else {
                snapshot += 1;
            }
            let ahead = match (self.sink_checkpoint(), newest.map(|(id, _)| id)) {
                (Some(sink), Some(record)) if sink > record => {
                    format!("; the sink had committed checkpoint {sink} with its data, the record is {record}")
                }
                _ => String::new(),
            };
            eprintln!(
                "[union] kill {}/{}: {kill:?}: killed {elapsed:.2} s after start, {what}; resumes from {resumes}{ahead}",
                i + 1,
                plan.len()
            );
            for line in job.notable().iter().take(6) {
                eprintln!("[union]     {line}");
            }
        }
        eprintln!(
            "[union] {} kills: {snapshot} resumed with an input mid-snapshot, {stream} with all streaming, {nothing} \
             without a stored position",
            plan.len()
        );
        let eu_model = eu_writer.join().unwrap_or_else(|_| panic!("FAULT_SEED={seed}: the MariaDB writer failed"));
        let us_model = us_writer.join().unwrap_or_else(|_| panic!("FAULT_SEED={seed}: the PostgreSQL writer failed"));
        let (eu, us) = (read_source(&self.eu), read_source(&self.us));
        // Test bugs, not engine bugs: the writers' SQL did not do what their models say.
        assert!(eu == eu_model, "FAULT_SEED={seed}: orders on MariaDB differs from its writer's model");
        assert!(us == us_model, "FAULT_SEED={seed}: orders on PostgreSQL differs from its writer's model");
        let expected: Union = [("eu", eu), ("us", us)]
            .into_iter()
            .flat_map(|(region, table)| table.into_iter().map(move |(id, row)| ((region.to_string(), id), row)))
            .collect();
        let buckets = read_buckets(&self.eu, &tiers("orders", "customers"));
        self.converge(seed, &expected, &buckets);
        drop_slot(&self.us, &self.slot);
    }

    /// Runs the job until the sinks equal the union and the GROUP BY's answer, stops it
    /// gracefully and compares again.
    fn converge(&self, seed: u64, expected: &Union, buckets: &[Vec<String>]) {
        let mut job = JobProcess::spawn(&self.job);
        let deadline = Instant::now() + DEADLINE;
        let sink_buckets = || read_buckets(&self.sink, "SELECT tier, n, total, lo, hi FROM eu_tiers");
        while read_sink(&self.sink) != *expected || sink_buckets() != buckets {
            job.assert_running(seed);
            if Instant::now() > deadline {
                job.sigkill();
                panic!(
                    "FAULT_SEED={seed}: the sinks never caught up with the union of the sources: {}\nGROUP BY on \
                     MariaDB:\n{buckets:?}\nits sink:\n{:?}\njob log:\n{}",
                    difference(expected, &read_sink(&self.sink)),
                    sink_buckets(),
                    job.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        job.stop_gracefully(seed);
        let actual = read_sink(&self.sink);
        assert!(
            actual == *expected,
            "FAULT_SEED={seed}: after the final stop the sink differs from the union of the sources: {}",
            difference(expected, &actual)
        );
        assert!(
            sink_buckets() == buckets,
            "FAULT_SEED={seed}: after the final stop the join and GROUP BY's sink differs from MariaDB's answer:\n{buckets:?}\n{:?}",
            sink_buckets()
        );
        eprintln!(
            "[union] FAULT_SEED={seed}: the sink equals the union of the sources ({} rows), the join and GROUP BY's sink \
             MariaDB's answer ({} groups)",
            expected.len(),
            buckets.len()
        );
    }
}

/// The rows of a query's answer as text, sorted; NULL as `<NULL>`.
fn read_buckets(db: &Database, sql: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = db
        .query_opt(sql)
        .into_iter()
        .map(|r| r.into_iter().map(|v| v.unwrap_or_else(|| "<NULL>".into())).collect())
        .collect();
    rows.sort();
    rows
}

fn read_source(db: &Database) -> Table {
    db.query("SELECT id, v, note FROM orders ORDER BY id")
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), (r[1].parse().unwrap(), r[2].clone())))
        .collect()
}

/// The sink table; a NULL shows as `<NULL>` (and `i64::MIN` for `v`) so that it differs.
fn read_sink(db: &Database) -> Union {
    db.query_opt("SELECT region, id, v, note FROM all_orders")
        .into_iter()
        .map(|r| {
            let text = |i: usize| r[i].clone().unwrap_or_else(|| "<NULL>".into());
            ((text(0), text(1).parse().unwrap()), (text(2).parse().unwrap_or(i64::MIN), text(3)))
        })
        .collect()
}

/// The first keys where the sink differs from the expected union.
fn difference(expected: &Union, actual: &Union) -> String {
    let keys: BTreeSet<&(String, i64)> = expected.keys().chain(actual.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| expected.get(k) != actual.get(k))
        .take(20)
        .map(|k| format!("{} id {}: sources {:?}, sink {:?}", k.0, k.1, expected.get(k), actual.get(k)))
        .collect();
    format!(
        "{} rows in the sources, {} in the sink; first differences:\n{}",
        expected.len(),
        actual.len(),
        diff.join("\n")
    )
}

#[test]
fn union_all_and_group_by_killed_anywhere_leave_their_sinks_equal_to_the_queries_on_the_sources() {
    for seed in seeds(3) {
        Scenario::new(seed).run(seed);
    }
}
