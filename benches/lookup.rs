//! Lookup join throughput (issue #25): 1M events with 100k distinct keys, read by a jdbc scan from a
//! private PostgreSQL and enriched from a 100k-row PostgreSQL table through
//!
//! ```sql
//! INSERT INTO out SELECT e.id, e.v, d.name FROM events AS e
//!   JOIN dims FOR SYSTEM_TIME AS OF e.proc AS d ON e.k = d.id
//! ```
//!
//! into `blackhole`, by the release `cdc-sql` binary: with the cache off, with a PARTIAL cache
//! holding every key, and with one holding a tenth of them. Next to it in the same run, the per-row
//! lookup Flink's JDBC lookup function does (one prepared `SELECT … WHERE id = $1` per event, one
//! at a time, over one connection), without a cache and with an unbounded cache (one query per
//! distinct key), reading the same events in the same order. And the scan alone (the same job
//! without the join), to show what the scan costs of each run.
//!
//! Each line: wall seconds, events/s, queries sent to the looked-up table (cdc-sql's own count from
//! its closing report, the loop's for the per-row lookup), and for cdc-sql its CPU seconds and
//! peak RSS. Every cdc-sql run's output is checked: all events that find their key (every one here)
//! come out, or the benchmark fails.
//!
//! `cargo bench --bench lookup` (release); `LOOKUP_EVENTS` and `LOOKUP_KEYS` change the sizes.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use cdc_sql_testkit::{Database, Postgres, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};

fn size(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Run {
    wall: f64,
    cpu: f64,
    rss_mib: f64,
    /// Rows the job wrote, from its closing report.
    written: u64,
    /// Queries its lookup join sent, from its closing report.
    queries: u64,
}

/// Runs the job under /usr/bin/time.
fn cdc_sql(job: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    std::fs::write(&path, job).unwrap();
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M"])
        .arg(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "job failed: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let f: Vec<f64> = last.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let written = stderr
        .lines()
        .find_map(|l| l.strip_suffix(" rows written"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no closing report in: {stderr}"));
    let queries = stderr
        .lines()
        .find_map(|l| l.strip_suffix(" queries"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Run { wall, cpu: f[0] + f[1], rss_mib: f[2] / 1024.0, written, queries }
}

fn with(db: &Database, table: &str) -> String {
    format!(
        "'connector' = 'jdbc', 'url' = '{}', 'table-name' = '{table}', 'username' = '{POSTGRES_SUPERUSER}', \
         'password' = '{POSTGRES_PASSWORD}'",
        db.jdbc_url()
    )
}

fn main() {
    let events = size("LOOKUP_EVENTS", 1_000_000);
    let keys = size("LOOKUP_KEYS", 100_000);
    let server = Postgres::start().expect("PostgreSQL");
    let db = server.create_database("lookup_bench");
    db.exec(&format!(
        "CREATE TABLE dims (id int PRIMARY KEY, name text NOT NULL, tier int NOT NULL);
         INSERT INTO dims SELECT i, 'customer ' || i, i % 7 FROM generate_series(0, {keys} - 1) i;
         CREATE TABLE events (id bigint PRIMARY KEY, k int NOT NULL, v int NOT NULL);
         INSERT INTO events SELECT i, (hashint8(i) & 2147483647) % {keys}, i % 1000 FROM generate_series(1, {events}) i;
         VACUUM ANALYZE dims; VACUUM ANALYZE events;"
    ));
    let distinct: u64 = db.query_one("SELECT count(DISTINCT k) FROM events").parse().unwrap();
    println!("lookup join: {events} events, {distinct} distinct keys, a {keys}-row looked-up table, PostgreSQL");
    println!("{:<44} {:>7} {:>10} {:>10} {:>7} {:>8}", "run", "wall s", "events/s", "queries", "CPU s", "RSS MiB");
    let line = |name: &str, wall: f64, queries: u64, usage: Option<(f64, f64)>| {
        let (cpu, rss) = usage.map(|(c, r)| (format!("{c:.2}"), format!("{r:.0}"))).unwrap_or(("-".into(), "-".into()));
        println!("{name:<44} {wall:>7.2} {:>10.0} {queries:>10} {cpu:>7} {rss:>8}", events as f64 / wall);
    };

    let source = format!(
        "CREATE TABLE events (id BIGINT, k INT, v INT, proc AS PROCTIME(), PRIMARY KEY (id) NOT ENFORCED) WITH ({});",
        with(&db, "events")
    );
    let scan_only = format!(
        "{source}
         CREATE TABLE out (id BIGINT, v INT) WITH ('connector' = 'blackhole');
         INSERT INTO out SELECT id, v FROM events;"
    );
    let r = cdc_sql(&scan_only);
    assert_eq!(r.written, events, "the scan alone");
    line("cdc-sql: the scan alone (no join)", r.wall, 0, Some((r.cpu, r.rss_mib)));

    for (name, cache) in [
        ("cdc-sql: lookup join, cache off", String::new()),
        (
            "cdc-sql: lookup join, PARTIAL cache of all keys",
            format!(", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '{keys}'"),
        ),
        (
            "cdc-sql: lookup join, PARTIAL cache of 1/10",
            format!(", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '{}'", keys / 10),
        ),
    ] {
        let job = format!(
            "{source}
             CREATE TABLE dims (id INT, name STRING, tier INT, PRIMARY KEY (id) NOT ENFORCED) WITH ({}{cache});
             CREATE TABLE out (id BIGINT, v INT, name STRING) WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT e.id, e.v, d.name FROM events AS e
               JOIN dims FOR SYSTEM_TIME AS OF e.proc AS d ON e.k = d.id;",
            with(&db, "dims")
        );
        let r = cdc_sql(&job);
        assert_eq!(r.written, events, "{name}: every event finds its key");
        line(name, r.wall, r.queries, Some((r.cpu, r.rss_mib)));
    }

    // Flink's JDBC lookup function: one prepared query per row, synchronously.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (name, cached) in
        [("per-row lookup (Flink JDBC), no cache", false), ("per-row lookup (Flink JDBC), cache of all keys", true)]
    {
        let (wall, found, queries) = rt.block_on(per_row(&db, cached));
        assert_eq!(found, events, "{name}: every event finds its key");
        line(name, wall, queries, None);
    }
}

/// Reads the events in the scan's order and looks each key up with its own query (or in a cache
/// that keeps every key found): (wall seconds, events that found their key, queries sent).
async fn per_row(db: &Database, cached: bool) -> (f64, u64, u64) {
    let c = db.admin_connection();
    let (client, connection) = tokio_postgres::connect(&c.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let start = Instant::now();
    let rows = client.query("SELECT k FROM events", &[]).await.unwrap();
    let lookup = client.prepare("SELECT id, name, tier FROM dims WHERE id = $1").await.unwrap();
    let mut cache: HashMap<i32, (i32, String, i32)> = HashMap::new();
    let mut found = 0;
    let mut queries = 0;
    for row in rows {
        let k: i32 = row.get(0);
        if cached {
            if let Some(hit) = cache.get(&k) {
                std::hint::black_box(hit);
                found += 1;
                continue;
            }
        }
        queries += 1;
        for r in client.query(&lookup, &[&k]).await.unwrap() {
            let value: (i32, String, i32) = (r.get(0), r.get(1), r.get(2));
            found += 1;
            if cached {
                cache.insert(k, value);
            } else {
                std::hint::black_box(value);
            }
        }
    }
    (start.elapsed().as_secs_f64(), found, queries)
}
