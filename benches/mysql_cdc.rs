//! mysql-cdc throughput against the reference readers, in one run on one private MariaDB:
//!
//! * snapshot: our parallel chunked snapshot (Arrow batches of the declared types) vs
//!   `mariadb --quick --batch -e 'SELECT * …' > /dev/null`, run just before and just after ours,
//!   once InnoDB has flushed the load;
//! * binlog: our binlog reader from the position before the load vs
//!   `mariadb-binlog -v --read-from-remote-server` over the same events.
//!
//! `cargo bench --bench mysql_cdc` (release); `BENCH_ROWS` sets the table size (default 1M).
//! docs/connectors/mysql-cdc.md shows the cheaper profile used on the shared build machine.
//! Reports rows/s, CPU seconds (the reader's and the server's meanwhile) and peak RSS for each,
//! and our/reference ratios.

use std::process::{Command, Stdio};
use std::time::Instant;

use cdc_sql::connectors::{open_table, Source, SourceContext};
use cdc_sql::sql::{parse_script, Statement, TableSpec};
use cdc_sql_testkit::{ConnectionInfo, Database, MariaDb};

/// User + system CPU seconds of process `pid` (`self` for this one) so far.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command name: state is 0, utime 11, stime 12 (clock ticks, 100 per second).
    (ticks(11) + ticks(12)) / 100.0
}

/// (user + system CPU seconds, peak RSS in MiB) of this process so far.
fn own_usage() -> (f64, f64) {
    let cpu = cpu_seconds("self");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

/// Runs a MariaDB client tool logged in as `login` under `/usr/bin/time`: (wall s, CPU s,
/// peak RSS MiB).
fn timed(program: &str, login: &ConnectionInfo, args: &[String]) -> (f64, f64, f64) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg(program)
        .arg("--no-defaults")
        .args([
            format!("--host={}", login.host),
            format!("--port={}", login.port),
            format!("--user={}", login.user),
            format!("--password={}", login.password),
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run /usr/bin/time");
    let wall = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} failed: {text}");
    let last = text.lines().last().unwrap_or_default().to_string();
    let v: Vec<f64> = last.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (wall, v.first().unwrap_or(&0.0) + v.get(1).unwrap_or(&0.0), v.get(2).unwrap_or(&0.0) / 1024.0)
}

fn spec(db: &Database, extra: &str) -> TableSpec {
    let c = db.connection();
    let sql = format!(
        "CREATE TABLE src (id BIGINT, a INT, b STRING, c DECIMAL(12, 2), d TIMESTAMP(6), PRIMARY KEY (id) NOT ENFORCED) WITH (
           'connector' = 'mysql-cdc', 'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}',
           'database-name' = '{}', 'table-name' = 't', 'server-id' = '6000-6004'{extra});",
        c.host,
        c.port,
        c.user,
        c.password,
        db.name()
    );
    match parse_script("bench", &sql, &|_| None).expect("job").into_iter().next().map(|s| s.statement) {
        Some(Statement::CreateTable { spec, .. }) => spec,
        _ => panic!("not a CREATE TABLE"),
    }
}

fn master_position(db: &Database) -> (String, u64) {
    let row = db.admin().query("SHOW MASTER STATUS").into_iter().next().expect("binlog on");
    (row[0].clone(), row[1].parse().expect("position"))
}

async fn read_all(spec: &TableSpec, until: Option<&(String, u64)>) -> u64 {
    let table = open_table(spec).expect("table");
    let mut source: Box<dyn Source> =
        table.source(&SourceContext { batch_size: 8192 }).expect("source").expect("readable");
    source.start(None).await.expect("start");
    let mut rows = 0u64;
    while let Some(batch) = source.next_batch().await.expect("batch") {
        rows += batch.changes().unwrap().num_rows() as u64;
        if let Some((file, pos)) = until {
            let at = (
                batch.position["file"].as_str().unwrap_or_default().to_string(),
                batch.position["pos"].as_u64().unwrap_or(0),
            );
            if at >= (file.clone(), *pos) {
                break;
            }
        }
    }
    source.close().await.expect("close");
    rows
}

/// Waits (up to two minutes) until InnoDB has written back the pages the load dirtied: its
/// background flushing would otherwise land on whichever reader is measured first.
fn quiesce(db: &Database) {
    db.admin().exec("SET GLOBAL innodb_max_dirty_pages_pct = 0");
    let started = Instant::now();
    while started.elapsed().as_secs() < 120 {
        let dirty = db.admin().query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'");
        if dirty.first().and_then(|r| r.get(1)).is_some_and(|v| v == "0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!("(waited {:.1} s for InnoDB to flush the load)", started.elapsed().as_secs_f64());
}

/// Prints one reader's figures; `server_cpu` is what the MariaDB server spent meanwhile.
fn report(what: &str, rows: u64, wall: f64, cpu: f64, server_cpu: f64, rss: f64) -> f64 {
    let rate = rows as f64 / wall;
    println!(
        "{what:<44} {rows:>9} rows {wall:>7.2} s {rate:>11.0} rows/s  CPU {cpu:>6.2} s  server CPU {server_cpu:>5.2} s  peak RSS {rss:>7.1} MiB"
    );
    rate
}

fn main() {
    let rows: u64 = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let server = MariaDb::start().expect("MariaDB");
    let db = server.create_database("bench");
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, b VARCHAR(32), c DECIMAL(12,2), d TIMESTAMP(6) NULL)");
    let before = master_position(&db);
    db.exec(&format!(
        "INSERT INTO t SELECT seq, seq % 1000, CONCAT('name-', seq), seq / 100, FROM_UNIXTIME(1700000000 + seq) FROM seq_1_to_{rows}"
    ));
    let after = master_position(&db);
    assert_eq!(before.0, after.0, "the load must stay in one binlog file");
    let c = db.connection();
    let server_pid = server.pid().to_string();
    let server_cpu = || cpu_seconds(&server_pid);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    println!("mysql-cdc benchmark, {rows} rows, MariaDB {}", db.query("SELECT VERSION()")[0][0]);
    quiesce(&db);
    // The reference scans just before and just after ours, so a drift of the machine during the
    // run shows instead of tilting the ratio.
    let mariadb_scan = || {
        let server0 = server_cpu();
        let (w, cpu, rss) = timed(
            "mariadb",
            c,
            &["--quick".into(), "--batch".into(), "-e".into(), format!("SELECT * FROM `{}`.t", db.name())],
        );
        report("mariadb --quick -e 'SELECT *' > /dev/null", rows, w, cpu, server_cpu() - server0, rss)
    };
    let before_ours = mariadb_scan();
    let server0 = server_cpu();
    let (cpu0, _) = own_usage();
    let start = Instant::now();
    // BENCH_SNAPSHOT_OPTIONS adds WITH options to the snapshot run, e.g.
    // ", 'scan.incremental.snapshot.parallelism' = '2'".
    let extra = std::env::var("BENCH_SNAPSHOT_OPTIONS").unwrap_or_default();
    let read = rt.block_on(read_all(&spec(&db, &format!(", 'scan.startup.mode' = 'snapshot'{extra}")), None));
    let wall = start.elapsed().as_secs_f64();
    let (cpu1, rss1) = own_usage();
    assert_eq!(read, rows);
    let ours =
        report("cdc-sql snapshot (parallel chunk readers)", read, wall, cpu1 - cpu0, server_cpu() - server0, rss1);
    let after_ours = mariadb_scan();
    println!(
        "snapshot ratio cdc-sql / mariadb: {:.2} (against the scan before) {:.2} (after)",
        ours / before_ours,
        ours / after_ours
    );

    let offset = format!(
        ", 'scan.startup.mode' = 'specific-offset', 'scan.startup.specific-offset.file' = '{}', 'scan.startup.specific-offset.pos' = '{}'",
        before.0, before.1
    );
    let server0 = server_cpu();
    let (cpu0, _) = own_usage();
    let start = Instant::now();
    let read = rt.block_on(read_all(&spec(&db, &offset), Some(&after)));
    let wall = start.elapsed().as_secs_f64();
    let (cpu1, rss2) = own_usage();
    assert_eq!(read, rows);
    let ours = report("cdc-sql binlog (+I batches)", read, wall, cpu1 - cpu0, server_cpu() - server0, rss2);
    let server0 = server_cpu();
    let (w, cpu, rss) = timed(
        "mariadb-binlog",
        c,
        &[
            "-v".into(),
            "--read-from-remote-server".into(),
            format!("--start-position={}", before.1),
            format!("--stop-position={}", after.1),
            before.0.clone(),
        ],
    );
    let reference = report("mariadb-binlog -v (remote) > /dev/null", rows, w, cpu, server_cpu() - server0, rss);
    println!("binlog ratio cdc-sql / mariadb-binlog: {:.2}", ours / reference);
    println!("(cdc-sql CPU and RSS are this process's: peak RSS is the high-water mark so far)");
}
