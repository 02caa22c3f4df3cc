//! `mysql-cdc` against a real MariaDB 10.11 (testkit): through the real binary (job file →
//! `print`) and, for restarts, through the source API with positions handed back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_sql::changelog::{format_rows, ChangeBatch, Event, RowKind};
use cdc_sql::connectors::{open_table, Position, ResumeFrom, Source, SourceContext};
use cdc_sql::sql::{parse_script, Statement, TableSpec};
use cdc_sql_testkit::{Database, MariaDb, MariaDbConfig};

const DEADLINE: Duration = Duration::from_secs(90);

fn with_options(db: &Database, extra: &str) -> String {
    let c = db.connection();
    format!(
        "'connector' = 'mysql-cdc', 'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}'{extra}",
        c.host, c.port, c.user, c.password
    )
}

/// A running `cdc-sql -f job.sql`, its stdout collected line by line.
struct Job {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Job {
    fn start(sql: &str) -> Job {
        Job::start_logging(sql, "warn,cdc_sql::connectors::mysql_cdc=debug")
    }

    /// [`Job::start`] with another log filter.
    fn start_logging(sql: &str, log: &str) -> Job {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.sql"), sql).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .current_dir(dir.path())
            .args(["-f", "job.sql"])
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Job { child, stdout, stderr, _dir: dir }
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Polls until `count` lines arrived; panics with what arrived after the deadline.
    fn wait_lines(&mut self, count: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if lines.len() >= count {
                return lines;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cdc-sql exited ({status}) after {lines:?}; stderr:\n{}", self.stderr.lock().unwrap());
            }
            if start.elapsed() > DEADLINE {
                let stderr = self.stderr.lock().unwrap().clone();
                let tail: Vec<&str> = stderr.lines().filter(|l| !l.contains("binlog event")).rev().take(40).collect();
                panic!(
                    "waited for {count} lines, got {lines:#?}; stderr ends with:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port of the REST API, from its log line (`cdc_sql::cli=info`).
    fn rest_port(&self) -> u16 {
        let start = Instant::now();
        loop {
            let text = self.stderr.lock().unwrap().clone();
            if let Some(port) =
                text.split("on http://127.0.0.1:").nth(1).and_then(|r| r.split('/').next()?.parse().ok())
            {
                return port;
            }
            assert!(start.elapsed() < DEADLINE, "no REST address logged: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        self.lines()
    }

    /// Waits for the job to end on its own; (exit code, stdout lines, stderr).
    fn wait_exit(mut self) -> (i32, Vec<String>, String) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let err = self.stderr.lock().unwrap().clone();
                return (status.code().unwrap_or(-1), self.lines(), err);
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("job did not end; stdout {:?}", self.lines());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn job_with_sink(db: &Database, columns: &str, key: &str, sink_columns: &str, extra: &str) -> String {
    let table = if extra.contains("'table-name'") { "" } else { ", 'table-name' = 't'" };
    format!(
        "CREATE TABLE src ({columns}, PRIMARY KEY ({key}) NOT ENFORCED) WITH ({}, 'database-name' = '{}'{table}{extra});\n\
         CREATE TABLE out ({sink_columns}) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT * FROM src;\n",
        with_options(db, ""),
        db.name()
    )
}

const ZOO_MYSQL: &str = "CREATE TABLE t (
    id INT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED, b1 TINYINT(1),
    d10 DECIMAL(10,2), d65 DECIMAL(65,30), f FLOAT, dbl DOUBLE,
    bit1 BIT(1), bit10 BIT(10),
    c CHAR(5), vc VARCHAR(300), txt TEXT, l1 VARCHAR(10) CHARACTER SET latin1,
    bn BINARY(4), vb VARBINARY(10), bl BLOB,
    dt DATE, tm TIME(6), dtm DATETIME(3), ts TIMESTAMP(6) NULL DEFAULT NULL, yr YEAR,
    e ENUM('red','green','blue'), st SET('a','b','c'), js JSON
)";

const ZOO_FLINK: &str =
    "id INT, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi INT, mu INT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED, b1 TINYINT,
    d10 DECIMAL(10, 2), d65 DECIMAL(65, 30), f FLOAT, dbl DOUBLE,
    bit1 BOOLEAN, bit10 BYTES,
    c STRING, vc STRING, txt STRING, l1 STRING,
    bn BYTES, vb BYTES, bl BYTES,
    dt DATE, tm STRING, dtm TIMESTAMP(3), ts TIMESTAMP_LTZ(6), yr INT,
    e STRING, st STRING, js STRING";

fn zoo_values(id: i32) -> Vec<String> {
    vec![
        format!("({id}, -128, 255, -32768, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, 1, \
          -12345678.91, -12345678901234567890123456789012345.123456789012345678901234567891, 3.1415927, -2.25e300, \
          b'1', b'1100000001', 'ab', REPEAT('x', 300), 'text ✓ ünïcode', 'café', \
          x'0102', x'00ff', x'deadbeef', '2024-02-29', '-838:59:59.000000', '2024-02-29 23:59:59.999', \
          '2038-01-19 03:14:07.499999', 0, 'green', 'a,c', '{{\"k\": [1, 2.5, null, \"s\"]}}')"),
        format!("({}, 127, 0, 32767, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, 0, \
          0.05, 0.000000000000000000000000000001, -0.0, 0, b'0', b'0', '', '', '', '', x'', x'', x'', \
          '0000-00-00', '12:34:56.789012', '0000-00-00 00:00:00', '1970-01-01 00:00:01', 2155, '', '', 'null')", id + 1),
        format!("({}, {})", id + 2, vec!["NULL"; 31].join(", ")),
    ]
}

fn strip_id(line: &str) -> String {
    // "+I[7, …]" → "+I[…]"
    let (kind, rest) = line.split_at(3);
    format!("{kind}{}", rest.split_once(", ").map(|(_, r)| r).unwrap_or(rest))
}

/// A row of more than 16 MiB reaches the client in several packets; the snapshot's own sessions
/// put it together, multi-byte characters across the cut included.
#[test]
fn a_snapshot_row_longer_than_one_packet_arrives_whole() {
    cdc_sql_testkit::mariadb().admin().exec("SET GLOBAL max_allowed_packet = 67108864");
    let db = cdc_sql_testkit::mariadb().create_database("longrow");
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, b LONGTEXT CHARACTER SET utf8mb4);
         INSERT INTO t VALUES (1, CONCAT(REPEAT('x', 16777200), REPEAT('ü', 100), 'end')), (2, 'short');",
    );
    let expected = db.query("SELECT id, CHAR_LENGTH(b), MD5(b) FROM t ORDER BY id");
    let sql = job_with_sink(
        &db,
        "id INT, b STRING",
        "id",
        "id INT, n BIGINT, h STRING",
        ", 'scan.startup.mode' = 'snapshot'",
    )
    .replace("SELECT * FROM src", "SELECT id, CAST(character_length(b) AS BIGINT), md5(b) FROM src");
    let (code, mut lines, stderr) = Job::start(&sql).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    lines.sort();
    let expected: Vec<String> = expected.iter().map(|r| format!("+I[{}, {}, {}]", r[0], r[1], r[2])).collect();
    assert_eq!(lines, expected);
}

/// An empty password is an empty auth response, still sent as a packet of its own.
#[test]
fn a_user_without_a_password_reads_the_snapshot() {
    let db = cdc_sql_testkit::mariadb().create_database("nopw");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a'), (2, NULL);");
    let admin = cdc_sql_testkit::mariadb().admin();
    admin.exec(&format!(
        "CREATE USER IF NOT EXISTS 'cdc_nopw'@'%'; GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, \
         REPLICATION CLIENT ON *.* TO 'cdc_nopw'@'%'; GRANT ALL ON `{}`.* TO 'cdc_nopw'@'%';",
        db.name()
    ));
    let c = db.connection();
    let sql = job_with_sink(&db, "id INT, v STRING", "id", "id INT, v STRING", ", 'scan.startup.mode' = 'snapshot'")
        .replace(
            &format!("'username' = '{}', 'password' = '{}'", c.user, c.password),
            "'username' = 'cdc_nopw', 'password' = ''",
        );
    assert!(sql.contains("cdc_nopw"));
    let (code, mut lines, stderr) = Job::start(&sql).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("session=\"own\""), "{stderr}");
    lines.sort();
    assert_eq!(lines, ["+I[1, a]", "+I[2, null]"]);
}

/// Own sessions read chunks as prepared statements; a server that prepares none
/// (`max_prepared_stmt_count` = 0) has them read as text queries, FLOATs still exact.
#[test]
fn a_server_without_prepared_statements_still_gives_exact_snapshots() {
    // Its own server: the setting is global.
    let server = MariaDb::start().unwrap();
    server.admin().exec("SET GLOBAL max_prepared_stmt_count = 0");
    let db = server.create_database("noprep");
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, f FLOAT, ts TIMESTAMP(3) NULL, d DECIMAL(5,2));
         INSERT INTO t VALUES (1, 3.1415927, '2023-11-14 22:13:20.125', -1.5), (2, NULL, NULL, NULL);",
    );
    let sql = job_with_sink(
        &db,
        "id INT, f FLOAT, ts TIMESTAMP_LTZ(3), d DECIMAL(5, 2)",
        "id",
        "id INT, f FLOAT, ts TIMESTAMP_LTZ(3), d DECIMAL(5, 2)",
        ", 'scan.startup.mode' = 'snapshot', 'server-time-zone' = 'UTC'",
    );
    let (code, mut lines, stderr) = Job::start(&sql).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("the server prepares no statements"), "{stderr}");
    lines.sort();
    assert_eq!(lines, ["+I[1, 3.1415927, 2023-11-14T22:13:20.125Z, -1.50]", "+I[2, null, null, null]"]);
}

#[test]
fn type_zoo_snapshot_and_binlog_give_identical_values() {
    let db = cdc_sql_testkit::mariadb().create_database("zoo");
    db.exec(&format!(
        "{ZOO_MYSQL}; SET time_zone = '+00:00'; SET SESSION sql_mode = ''; INSERT INTO t VALUES {}",
        zoo_values(1).join(", ")
    ));
    let job = job_with_sink(&db, ZOO_FLINK, "id", ZOO_FLINK, ", 'server-id' = '5501', 'server-time-zone' = 'UTC'");
    let mut job = Job::start(&job);
    let snapshot = job.wait_lines(3);
    db.exec(&format!(
        "SET time_zone = '+00:00'; SET SESSION sql_mode = ''; INSERT INTO t VALUES {}",
        zoo_values(101).join(", ")
    ));
    let all = job.wait_lines(6);
    let stderr = job.stderr.lock().unwrap().clone();
    assert!(stderr.contains("session=\"own\""), "the snapshot was not read over our own sessions: {stderr}");
    job.stop();
    let (snap, bin): (Vec<String>, Vec<String>) = (all[..3].to_vec(), all[3..6].to_vec());
    assert_eq!(snapshot.len(), 3);
    for (s, b) in snap.iter().zip(&bin) {
        assert!(s.starts_with("+I[") && b.starts_with("+I["), "{s} / {b}");
        assert_eq!(strip_id(s), strip_id(b), "snapshot and binlog differ");
    }
    let expected_first = "+I[1, -128, 255, -32768, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, 1, \
-12345678.91, -12345678901234567890123456789012345.123456789012345678901234567891, 3.1415927, -2.25e300, true, [3, 1], ab, ";
    assert!(snap[0].starts_with(expected_first), "{}", snap[0]);
    let first_tail = "text ✓ ünïcode, café, [1, 2, 0, 0], [0, -1], [-34, -83, -66, -17], 2024-02-29, -838:59:59.000000, \
                      2024-02-29T23:59:59.999, 2038-01-19T03:14:07.499999Z, 0, green, a,c, {\"k\": [1, 2.5, null, \"s\"]}]";
    assert!(snap[0].ends_with(first_tail), "{}", snap[0]);
    // Zero dates are NULL; BINARY(4) of '' is four zero bytes.
    let second =
        "0.05, 0.000000000000000000000000000001, 0.0, 0.0, false, [0, 0], , , , , [0, 0, 0, 0], [], [], null, \
                  12:34:56.789012, null, 1970-01-01T00:00:01Z, 2155, , , null]";
    assert!(snap[1].ends_with(second), "{}", snap[1]);
    assert_eq!(snap[2], format!("+I[3, {}]", vec!["null"; 31].join(", ")));

    // The legacy snapshot reads through mysql_async's text protocol, where a FLOAT's text has
    // six digits (3.1415927 reads `3.14159`); it must read the same values too.
    let legacy = job_with_sink(
        &db,
        ZOO_FLINK,
        "id",
        ZOO_FLINK,
        ", 'server-time-zone' = 'UTC', 'scan.startup.mode' = 'snapshot', 'scan.incremental.snapshot.enabled' = 'false'",
    );
    let (code, mut lines, stderr) = Job::start(&legacy).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    lines.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(lines, expected, "the legacy snapshot differs");
}

#[test]
fn inserts_updates_key_changes_deletes_and_transactions() {
    let db = cdc_sql_testkit::mariadb().create_database("dml");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    let job = job_with_sink(&db, "id INT, name STRING", "id", "id INT, name STRING", ", 'server-id' = '5502'");
    let mut job = Job::start(&job);
    job.wait_lines(2);
    db.exec("INSERT INTO t VALUES (3, 'c')");
    db.exec("UPDATE t SET name = 'B' WHERE id = 2");
    db.exec("UPDATE t SET id = 20 WHERE id = 2");
    db.exec("DELETE FROM t WHERE id = 1");
    db.exec("START TRANSACTION; INSERT INTO t VALUES (4, 'd'), (5, 'e'); UPDATE t SET name = 'cc' WHERE id = 3; DELETE FROM t WHERE id = 20; COMMIT");
    let lines = job.wait_lines(13);
    job.stop();
    let mut snapshot = lines[..2].to_vec();
    snapshot.sort();
    assert_eq!(snapshot, vec!["+I[1, a]", "+I[2, b]"]);
    assert_eq!(
        lines[2..].to_vec(),
        vec![
            "+I[3, c]",
            "-U[2, b]",
            "+U[2, B]",
            "-U[2, B]",
            "+U[20, B]",
            "-D[1, a]",
            "+I[4, d]",
            "+I[5, e]",
            "-U[3, c]",
            "+U[3, cc]",
            "-D[20, B]"
        ]
    );
}

#[test]
fn regex_over_databases_and_tables_with_metadata_columns() {
    let server = cdc_sql_testkit::mariadb();
    let a = server.create_database("shard");
    let b = server.create_database("shard");
    for (db, base) in [(&a, 0), (&b, 100)] {
        db.exec(&format!(
            "CREATE TABLE user_1 (id INT PRIMARY KEY, v INT); CREATE TABLE user_2 (id INT PRIMARY KEY, v INT); \
             CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO user_1 VALUES ({}, 1); INSERT INTO user_2 VALUES ({}, 2); INSERT INTO other VALUES (9, 9)",
            base + 1,
            base + 2
        ));
    }
    let sql = format!(
        "CREATE TABLE src (db STRING METADATA FROM 'database_name' VIRTUAL, tbl STRING METADATA FROM 'table_name' VIRTUAL, \
           kind STRING METADATA FROM 'row_kind' VIRTUAL, id INT, v INT, PRIMARY KEY (id) NOT ENFORCED) \
         WITH ({}, 'database-name' = '{}|{}', 'table-name' = 'user_[0-9]+', 'server-id' = '5503');\n\
         CREATE TABLE out (db STRING, tbl STRING, kind STRING, id INT, v INT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT db, tbl, kind, id, v FROM src;\n",
        with_options(&a, ""),
        a.name(),
        b.name()
    );
    let mut job = Job::start(&sql);
    let mut snapshot = job.wait_lines(4);
    snapshot.sort();
    let (an, bn) = (a.name(), b.name());
    assert_eq!(
        snapshot,
        vec![
            format!("+I[{an}, user_1, +I, 1, 1]"),
            format!("+I[{an}, user_2, +I, 2, 2]"),
            format!("+I[{bn}, user_1, +I, 101, 1]"),
            format!("+I[{bn}, user_2, +I, 102, 2]"),
        ]
    );
    b.exec("INSERT INTO other VALUES (10, 10); UPDATE user_2 SET v = 3 WHERE id = 102");
    a.exec("DELETE FROM user_1");
    let lines = job.wait_lines(7);
    job.stop();
    assert_eq!(
        lines[4..].to_vec(),
        vec![
            format!("-U[{bn}, user_2, -U, 102, 2]"),
            format!("+U[{bn}, user_2, +U, 102, 3]"),
            format!("-D[{an}, user_1, -D, 1, 1]"),
        ]
    );
}

/// Flink CDC's `scan.read-changelog-as-append-only.enabled`: every change is an insert whose
/// `row_kind` says what it was, so a sink without a key keeps every version (soft deletes); a
/// Flink CDC option without effect here is named in a warning and the job runs.
#[test]
fn read_as_append_only_every_change_is_an_insert_naming_its_kind() {
    let db = cdc_sql_testkit::mariadb().create_database("append");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a')");
    let sql = format!(
        "CREATE TABLE src (kind STRING METADATA FROM 'row_kind' VIRTUAL, id INT, v STRING, PRIMARY KEY (id) NOT ENFORCED) \
         WITH ({}, 'database-name' = '{}', 'table-name' = 't', 'server-id' = '5630', \
               'scan.read-changelog-as-append-only.enabled' = 'true', \
               'scan.incremental.close-idle-reader.enabled' = 'true');\n\
         CREATE TABLE out (kind STRING, id INT, v STRING) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT kind, id, v FROM src;\n",
        with_options(&db, ""),
        db.name()
    );
    let mut job = Job::start(&sql);
    job.wait_lines(1);
    db.exec("UPDATE t SET v = 'b' WHERE id = 1; DELETE FROM t WHERE id = 1");
    job.wait_lines(4);
    let stderr = job.stderr.lock().unwrap().clone();
    let lines = job.stop();
    assert_eq!(lines, ["+I[+I, 1, a]", "+I[-U, 1, a]", "+I[+U, 1, b]", "+I[-D, 1, b]"]);
    assert!(
        stderr.contains("'scan.incremental.close-idle-reader.enabled' has no effect in cdc-sql: snapshot readers end"),
        "{stderr}"
    );
}

#[test]
fn snapshot_mode_ends_the_job() {
    let db = cdc_sql_testkit::mariadb().create_database("bounded");
    // Sparse keys: chunk bounds come from the index (dense tables are split arithmetically).
    db.exec("CREATE TABLE t (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(5)); INSERT INTO t SELECT seq * 7919, 'x' FROM seq_1_to_250");
    let job = job_with_sink(
        &db,
        "id BIGINT UNSIGNED, v STRING",
        "id",
        "id BIGINT UNSIGNED, v STRING",
        ", 'scan.startup.mode' = 'snapshot', 'scan.incremental.snapshot.chunk.size' = '16', 'server-id' = '5504-5507'",
    );
    let (code, lines, err) = Job::start(&job).wait_exit();
    assert_eq!(code, 0, "{err}");
    let mut ids: Vec<u64> = lines.iter().map(|l| l[3..].split(',').next().unwrap().parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=250).map(|i| i * 7919).collect::<Vec<u64>>());
}

/// Applies printed `[id, v]` changes strictly: an insert of a held key, or a retraction of a row
/// not held, is a repeated or lost change.
fn apply_line(state: &mut BTreeMap<i32, i32>, line: &str) {
    let (id, v) = line[3..line.len() - 1].split_once(", ").unwrap();
    let (id, v): (i32, i32) = (id.parse().unwrap(), v.parse().unwrap());
    match &line[..2] {
        "+I" | "+U" => assert!(state.insert(id, v).is_none(), "repeated: {line}"),
        _ => assert_eq!(state.remove(&id), Some(v), "retracts a row not held: {line}"),
    }
}

/// The newest checkpoint record of a state directory.
fn newest_record(dir: &std::path::Path) -> Option<serde_json::Value> {
    let newest = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.strip_suffix(".json")?.parse::<u64>().ok())
        .max()?;
    std::fs::read_to_string(dir.join(format!("chk-{newest}.json"))).ok().and_then(|t| serde_json::from_str(&t).ok())
}

/// A job stopped gracefully mid-snapshot resumes it exactly: its final checkpoint covers all it
/// delivered, so the unfinished chunks are read without repeating changes (as a resume after a
/// kill must). That holds for one start: the record stops saying so once a run resumed from it.
#[test]
fn a_graceful_stop_mid_snapshot_resumes_it_repeating_nothing() {
    let db = cdc_sql_testkit::mariadb().create_database("graceful");
    // Large enough that the snapshot cannot end in the moment between the 3000th line and the
    // stop (20000 rows once did, on a busy machine).
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_100000");
    let state = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '100ms';\nSET 'state.checkpoints.dir' = '{}';\n{}",
        state.path().display(),
        job_with_sink(
            &db,
            "id INT, v INT",
            "id",
            "id INT, v INT",
            ", 'scan.incremental.snapshot.chunk.size' = '200', 'scan.incremental.snapshot.parallelism' = '1', 'server-id' = '5541'",
        )
    );
    let mut job = Job::start(&sql);
    job.wait_lines(3000);
    let first = job.stop();
    let record = newest_record(state.path()).expect("a final checkpoint");
    let pipeline = &record["pipelines"][0];
    assert_eq!(pipeline["exact"], true, "{record}");
    let pending = pipeline["inputs"][0]["position"]["snapshot"]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c[3].is_null())
        .count();
    assert!(pending > 0, "stopped mid-snapshot: {record}");

    // Changes while stopped, to read and unread chunks.
    db.exec(
        "UPDATE t SET v = -1 WHERE id = 5; DELETE FROM t WHERE id = 15000; UPDATE t SET id = 130000 WHERE id = 16000",
    );
    let mut printed = BTreeMap::new();
    for line in &first {
        apply_line(&mut printed, line);
    }
    let expected = table_state(&db);
    let job = Job::start(&sql);
    let start = Instant::now();
    let mut seen = 0;
    while printed != expected {
        assert!(start.elapsed() < DEADLINE, "the resumed job did not catch up");
        let lines = job.lines();
        for line in &lines[seen..] {
            apply_line(&mut printed, line);
        }
        seen = lines.len();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(newest_record(state.path()).unwrap()["pipelines"][0]["exact"], false, "used once");
    let all = job.stop();
    for line in &all[seen..] {
        apply_line(&mut printed, line);
    }
    assert!(printed == expected, "the two runs together are not the table's changelog");
}

/// A job killed before its first regular checkpoint, after delivering part of its snapshot,
/// resumes where the snapshot began (the runtime stores that before anything reaches the sink)
/// rather than taking a new snapshot after the rows it delivered were deleted, which would never
/// retract them.
#[test]
fn a_job_killed_before_its_first_checkpoint_retracts_what_it_delivered() {
    let db = cdc_sql_testkit::mariadb().create_database("early_kill");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_20000");
    let state = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '1h';\nSET 'state.checkpoints.dir' = '{}';\n{}",
        state.path().display(),
        job_with_sink(
            &db,
            "id INT, v INT",
            "id",
            "id INT, v INT",
            ", 'scan.incremental.snapshot.chunk.size' = '200', 'scan.incremental.snapshot.parallelism' = '1', 'server-id' = '5542'",
        )
    );
    let mut job = Job::start(&sql);
    let delivered = job.wait_lines(1000);
    job.child.kill().unwrap();
    job.child.wait().unwrap();
    let record = newest_record(state.path()).expect("the start was checkpointed");
    let chunks = record["pipelines"][0]["inputs"][0]["position"]["snapshot"]["chunks"].as_array().unwrap().clone();
    assert!(chunks.iter().all(|c| c[3].is_null()), "it stored where the snapshot began: {record}");
    let mut sink = BTreeMap::new();
    for line in &delivered {
        upsert_line(&mut sink, line);
    }
    assert!(sink.contains_key(&700) && sink.contains_key(&900));
    db.exec("DELETE FROM t WHERE id = 700; UPDATE t SET id = 90000 WHERE id = 900; DELETE FROM t WHERE id BETWEEN 600 AND 610");

    let expected = table_state(&db);
    let job = Job::start(&sql);
    let start = Instant::now();
    let mut seen = 0;
    while sink != expected {
        assert!(
            start.elapsed() < DEADLINE,
            "the restarted job never caught up: {:?}",
            expected.keys().chain(sink.keys()).filter(|k| expected.get(k) != sink.get(k)).take(10).collect::<Vec<_>>()
        );
        let lines = job.lines();
        for line in &lines[seen..] {
            upsert_line(&mut sink, line);
        }
        seen = lines.len();
        std::thread::sleep(Duration::from_millis(50));
    }
    let all = job.stop();
    for line in &all[seen..] {
        upsert_line(&mut sink, line);
    }
    assert!(sink == expected, "the sink differs from the table after the stop");
}

/// Applies a printed `[id, v]` change as a keyed sink would.
fn upsert_line(state: &mut BTreeMap<i32, i32>, line: &str) {
    let (id, v) = line[3..line.len() - 1].split_once(", ").unwrap();
    let (id, v): (i32, i32) = (id.parse().unwrap(), v.parse().unwrap());
    match &line[..2] {
        "+I" | "+U" => state.insert(id, v),
        _ => state.remove(&id),
    };
}

fn error_of(db: &Database, columns: &str, key: &str, extra: &str) -> String {
    let job = job_with_sink(db, columns, key, columns, extra);
    let (code, _, err) = Job::start(&job).wait_exit();
    assert_ne!(code, 0, "{err}");
    assert!(!err.contains("cdc_password"), "password leaked: {err}");
    err
}

#[test]
fn clear_errors_before_streaming() {
    let server = cdc_sql_testkit::mariadb();
    let db = server.create_database("errors");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE nopk (v INT)");
    let err = error_of(&db, "id INT, v INT", "id", ", 'table-name' = 'nothing_[0-9]+'");
    assert!(err.contains("no table matches") && err.contains("nothing_[0-9]+"), "{err}");
    let err = error_of(&db, "v INT", "v", ", 'table-name' = 'nopk'");
    assert!(
        err.contains("has no primary key")
            && err.contains("chunk.key-column")
            && err.contains("'scan.incremental.snapshot.enabled' = 'false'"),
        "{err}"
    );
    let err = error_of(
        &db,
        "id INT, v INT",
        "id",
        ", 'scan.incremental.snapshot.enabled' = 'false', 'scan.incremental.snapshot.chunk.size' = '10'",
    );
    assert!(err.contains("only apply to the incremental snapshot"), "{err}");
    let err = error_of(&db, "id INT, v INT", "id", ", 'scan.snapshot.fetch.size' = '0'");
    assert!(err.contains("'scan.snapshot.fetch.size' = '0'") && err.contains("a positive whole number"), "{err}");
    // Binlog timestamps before the oldest file the server has may belong to purged files.
    let err = error_of(
        &db,
        "id INT, v INT",
        "id",
        ", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '1000'",
    );
    assert!(
        err.contains("'scan.startup.timestamp-millis' = 1000 (1970-01-01 00:00:01 UTC)")
            && err.contains("its oldest binlog file, mariadb-bin.")
            && err.contains("'earliest-offset'"),
        "{err}"
    );
    let err = error_of(
        &db,
        "id INT, v INT",
        "id",
        ", 'scan.startup.mode' = 'specific-offset', 'scan.startup.specific-offset.file' = 'mariadb-bin.999999', 'scan.startup.specific-offset.pos' = '4'",
    );
    assert!(err.contains("purged or never existed") && err.contains("'scan.startup.mode' = 'initial'"), "{err}");
    let err = error_of(&db, "id INT, v INT, nope INT", "id", "");
    assert!(err.contains("column `nope`") && err.contains("does not exist"), "{err}");
    // A user without replication privileges.
    db.exec("CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY 'reader_pw'; GRANT SELECT ON *.* TO 'reader'@'%'");
    let sql = job_with_sink(&db, "id INT, v INT", "id", "id INT, v INT", "")
        .replace(&format!("'username' = '{}'", db.connection().user), "'username' = 'reader'")
        .replace(&format!("'password' = '{}'", db.connection().password), "'password' = 'reader_pw'");
    let (code, _, err) = Job::start(&sql).wait_exit();
    assert_ne!(code, 0);
    assert!(
        err.contains("lacks the privilege(s) REPLICATION SLAVE, REPLICATION CLIENT") && err.contains("GRANT"),
        "{err}"
    );
    assert!(!err.contains("reader_pw"), "{err}");
}

#[test]
fn binlog_format_and_row_image_are_checked() {
    let server = MariaDb::start_with(MariaDbConfig::default()).unwrap();
    let db = server.create_database("settings");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    server.admin().exec("SET GLOBAL binlog_row_image = 'MINIMAL'");
    let err = error_of(&db, "id INT", "id", "");
    assert!(err.contains("binlog_row_image is MINIMAL") && err.contains("FULL"), "{err}");
    server.admin().exec("SET GLOBAL binlog_row_image = 'FULL'; SET GLOBAL binlog_format = 'STATEMENT'");
    let err = error_of(&db, "id INT", "id", "");
    assert!(err.contains("binlog_format is STATEMENT") && err.contains("ROW"), "{err}");
}

// ---- through the source API: concurrency and restarts ----

fn spec_for(db: &Database, extra: &str) -> TableSpec {
    let sql = format!(
        "CREATE TABLE src (id INT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ({}, 'database-name' = '{}', 'table-name' = 't'{extra});",
        with_options(db, ""),
        db.name()
    );
    let statements = parse_script("test", &sql, &|_| None).unwrap();
    match statements.into_iter().next().unwrap().statement {
        Statement::CreateTable { spec, .. } => spec,
        _ => panic!("not a CREATE TABLE"),
    }
}

/// Applies changes to a key → value map, checking the changelog contract on the way.
fn apply(state: &mut BTreeMap<i32, i32>, batch: &ChangeBatch) {
    let text = format_rows(batch, "").unwrap();
    for (i, line) in text.lines().enumerate() {
        let inner = &line[3..line.len() - 1];
        let (id, v) = inner.split_once(", ").unwrap();
        let (id, v): (i32, i32) = (id.parse().unwrap(), v.parse().unwrap());
        match batch.kind(i) {
            RowKind::Insert | RowKind::UpdateAfter => {
                let previous = state.insert(id, v);
                if batch.kind(i) == RowKind::Insert {
                    assert!(previous.is_none(), "duplicate +I for key {id}: {line}");
                }
            }
            RowKind::UpdateBefore | RowKind::Delete => {
                assert_eq!(state.remove(&id), Some(v), "retraction of a row not held: {line}");
            }
        }
    }
}

/// Applies changes as a keyed sink does — upsert `+I`/`+U`, delete `-U`/`-D` by key — for
/// reads that may deliver a change again after a restart.
fn upsert(state: &mut BTreeMap<i32, i32>, batch: &ChangeBatch) {
    let text = format_rows(batch, "").unwrap();
    for (i, line) in text.lines().enumerate() {
        let (id, v) = line[3..line.len() - 1].split_once(", ").unwrap();
        let (id, v): (i32, i32) = (id.parse().unwrap(), v.parse().unwrap());
        match batch.kind(i) {
            RowKind::Insert | RowKind::UpdateAfter => state.insert(id, v),
            RowKind::UpdateBefore | RowKind::Delete => state.remove(&id),
        };
    }
}

/// Fails listing the keys where the two differ.
fn assert_same(read: &BTreeMap<i32, i32>, table: &BTreeMap<i32, i32>) {
    let keys: std::collections::BTreeSet<&i32> = read.keys().chain(table.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| read.get(k) != table.get(k))
        .take(20)
        .map(|k| format!("{k}: read {:?}, table {:?}", read.get(k), table.get(k)))
        .collect();
    assert!(diff.is_empty(), "read state differs from the table ({} vs {} rows): {diff:#?}", read.len(), table.len());
}

fn table_state(db: &Database) -> BTreeMap<i32, i32> {
    db.query("SELECT id, v FROM t").into_iter().map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap())).collect()
}

struct Reader {
    source: Box<dyn Source>,
    position: Option<Position>,
    /// How a batch is applied: strictly (`apply`), or as a keyed sink would (`upsert`).
    apply: fn(&mut BTreeMap<i32, i32>, &ChangeBatch),
}

impl Reader {
    /// Reads from the start, or after `from` where the previous reader stopped (as after a
    /// graceful stop: nothing after `from` was delivered), applying the changelog strictly.
    async fn open(spec: &TableSpec, from: Option<Position>) -> Reader {
        Reader::start(spec, from, true, apply, 1000).await
    }

    async fn open_with_batch_size(spec: &TableSpec, from: Option<Position>, batch_size: usize) -> Reader {
        Reader::start(spec, from, true, apply, batch_size).await
    }

    /// Resumes from `checkpoint` after a crash: the previous reader may have delivered more,
    /// so changes may come again; they are applied as a keyed sink would.
    async fn open_after_crash(spec: &TableSpec, checkpoint: Option<Position>) -> Reader {
        Reader::start(spec, checkpoint, false, upsert, 1000).await
    }

    async fn start(
        spec: &TableSpec,
        from: Option<Position>,
        exact: bool,
        apply: fn(&mut BTreeMap<i32, i32>, &ChangeBatch),
        batch_size: usize,
    ) -> Reader {
        let table = open_table(spec).unwrap();
        let mut source = table.source(&SourceContext { batch_size }).unwrap().unwrap();
        source.start(from.clone().map(|position| ResumeFrom { position, exact, stateful: false })).await.unwrap();
        Reader { source, position: from, apply }
    }

    /// Reads batches into `state` until `done(state)`.
    async fn read_until(&mut self, state: &mut BTreeMap<i32, i32>, done: impl Fn(&BTreeMap<i32, i32>) -> bool) {
        let start = Instant::now();
        while !done(state) {
            assert!(start.elapsed() < DEADLINE, "deadline; state has {} rows", state.len());
            let batch = self.source.next_batch().await.unwrap().expect("unbounded");
            (self.apply)(state, &batch.changes().unwrap());
            self.position = Some(batch.position);
        }
    }

    /// Reads a bounded source to its end into `state`.
    async fn read_to_end(&mut self, state: &mut BTreeMap<i32, i32>) {
        let start = Instant::now();
        while let Some(batch) = self.source.next_batch().await.unwrap() {
            assert!(start.elapsed() < DEADLINE, "deadline; state has {} rows", state.len());
            (self.apply)(state, &batch.changes().unwrap());
            self.position = Some(batch.position);
        }
    }

    /// Reads until every change written before `target` has been read.
    async fn read_past(&mut self, state: &mut BTreeMap<i32, i32>, target: &(String, u64)) {
        let start = Instant::now();
        while !streamed_past(&self.position, target) {
            assert!(start.elapsed() < DEADLINE, "deadline; state has {} rows", state.len());
            let batch = self.source.next_batch().await.unwrap().expect("unbounded");
            (self.apply)(state, &batch.changes().unwrap());
            self.position = Some(batch.position);
        }
    }
}

/// The binlog end now, as (file, pos).
fn master_position(db: &Database) -> (String, u64) {
    let row = db.admin().query("SHOW MASTER STATUS").into_iter().next().unwrap();
    (row[0].clone(), row[1].parse().unwrap())
}

/// Whether `position` is past `target` with the snapshot done.
fn streamed_past(position: &Option<Position>, target: &(String, u64)) -> bool {
    let Some(p) = position else { return false };
    let snapshot_pending = p
        .get("snapshot")
        .and_then(|s| s.get("chunks"))
        .and_then(|c| c.as_array())
        .is_some_and(|chunks| chunks.iter().any(|c| c[3].is_null()));
    let at = (p["file"].as_str().unwrap_or_default().to_string(), p["pos"].as_u64().unwrap_or(0));
    !snapshot_pending && at >= *target
}

fn runtime() -> tokio::runtime::Runtime {
    let _ =
        tracing_subscriber::fmt().with_env_filter("cdc_sql::connectors::mysql_cdc=debug").with_test_writer().try_init();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Forty rounds of updates, deletes, inserts and key changes on `t (id, v)` of 20,000 rows,
/// written while a test reads the table.
fn concurrent_writes(db: cdc_sql_testkit::Client) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for round in 1..=40 {
            db.exec(&format!(
                "UPDATE t SET v = {round} WHERE id % 40 = {m}; DELETE FROM t WHERE id = {d}; INSERT INTO t VALUES ({i}, {round}); \
                 UPDATE t SET id = id + 100000 WHERE id = {k}",
                m = round % 40,
                d = round * 397,
                i = 20000 + round,
                k = round * 211 + 5
            ));
        }
    })
}

#[test]
fn snapshot_under_concurrent_writes_ends_equal_to_the_source() {
    let db = cdc_sql_testkit::mariadb().create_database("busy");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, 0 FROM seq_1_to_20000");
    let spec = spec_for(&db, ", 'scan.incremental.snapshot.chunk.size' = '700', 'server-id' = '5510-5513'");
    let writer_db = db.admin().clone();
    let writer = concurrent_writes(writer_db);
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        let mut state = BTreeMap::new();
        reader.read_until(&mut state, |s| s.len() > 1000).await;
        writer.join().unwrap();
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

#[test]
fn restart_mid_snapshot_and_mid_binlog_loses_and_repeats_nothing() {
    let db = cdc_sql_testkit::mariadb().create_database("restart");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_5000");
    let spec = spec_for(&db, ", 'scan.incremental.snapshot.chunk.size' = '500', 'server-id' = '5520', 'scan.incremental.snapshot.parallelism' = '1'");
    let rt = runtime();
    rt.block_on(async {
        let mut state = BTreeMap::new();
        // Mid-snapshot: stop after three chunks, write, resume from the last position.
        let mut reader = Reader::open(&spec, None).await;
        reader.read_until(&mut state, |s| s.len() >= 1500).await;
        let position = reader.position.clone();
        reader.source.close().await.unwrap();
        assert!(position.as_ref().unwrap().get("snapshot").is_some(), "{position:?}");
        db.exec(
            "UPDATE t SET v = -1 WHERE id IN (10, 4000); DELETE FROM t WHERE id = 4001; INSERT INTO t VALUES (6000, 6)",
        );
        let mut reader = Reader::open(&spec, position).await;
        db.exec("INSERT INTO t VALUES (7000, 7)");
        reader.read_past(&mut state, &master_position(&db)).await;
        assert_same(&state, &table_state(&db));
        // Mid-binlog: stop, write while stopped, resume.
        let position = reader.position.clone();
        reader.source.close().await.unwrap();
        db.exec("UPDATE t SET v = 42 WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (8000, 8)");
        let mut reader = Reader::open(&spec, position).await;
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

/// A run delivers a chunk (a keyed sink applies it at once) and stops before a checkpoint
/// covers it; rows of that chunk are then deleted or moved away. The resumed run reads the chunk
/// again without them, so the binlog must still retract what the first read delivered.
#[test]
fn a_chunk_read_again_after_a_restart_retracts_rows_the_first_read_delivered() {
    let db = cdc_sql_testkit::mariadb().create_database("reread");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_3000");
    let spec = spec_for(&db, ", 'scan.incremental.snapshot.chunk.size' = '500', 'server-id' = '5540', 'scan.incremental.snapshot.parallelism' = '1'");
    let rt = runtime();
    rt.block_on(async {
        let mut sink = BTreeMap::new();
        let mut reader = Reader::open_after_crash(&spec, None).await;
        reader.read_until(&mut sink, |s| s.len() >= 500).await;
        let checkpoint = reader.position.clone();
        reader.read_until(&mut sink, |s| s.len() >= 1000).await;
        reader.source.close().await.unwrap();
        assert!(sink.contains_key(&700) && sink.contains_key(&900), "the second chunk was delivered");
        db.exec(
            "DELETE FROM t WHERE id = 700; UPDATE t SET id = 90000 WHERE id = 900; UPDATE t SET v = -8 WHERE id = 800; \
             DELETE FROM t WHERE id BETWEEN 600 AND 610",
        );
        let mut reader = Reader::open_after_crash(&spec, checkpoint).await;
        reader.read_past(&mut sink, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&sink, &table_state(&db));
    });
}

#[test]
fn starts_from_a_mariadb_gtid_position_and_from_the_latest_offset() {
    let db = cdc_sql_testkit::mariadb().create_database("gtid");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)");
    let gtid = db.admin().query_one("SELECT @@gtid_binlog_pos");
    db.exec("INSERT INTO t VALUES (2, 2); UPDATE t SET v = 10 WHERE id = 1");
    let from_gtid = job_with_sink(
        &db,
        "id INT, v INT",
        "id",
        "id INT, v INT",
        &format!(", 'scan.startup.mode' = 'specific-offset', 'scan.startup.specific-offset.gtid-set' = '{gtid}', 'server-id' = '5530'"),
    );
    let mut job = Job::start(&from_gtid);
    let lines = job.wait_lines(3);
    job.stop();
    assert_eq!(lines, vec!["+I[2, 2]", "-U[1, 1]", "+U[1, 10]"]);

    let latest = job_with_sink(
        &db,
        "id INT, v INT",
        "id",
        "id INT, v INT",
        ", 'scan.startup.mode' = 'latest-offset', 'server-id' = '5531'",
    );
    let job = Job::start(&latest);
    // The job is streaming once it has printed nothing for the existing rows and takes new ones.
    let start = Instant::now();
    loop {
        db.exec("INSERT INTO t VALUES (100, 0) ON DUPLICATE KEY UPDATE v = v + 1");
        std::thread::sleep(Duration::from_millis(300));
        if !job.lines().is_empty() || start.elapsed() > DEADLINE {
            break;
        }
    }
    let lines = job.stop();
    assert!(!lines.is_empty(), "latest-offset read nothing");
    assert!(lines.iter().all(|l| l.contains("[100, ")), "only changes after the start: {lines:?}");
}

// ---- monitoring ----

/// The body of `GET /metrics`.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    body.to_string()
}

/// The value of the job's only `cdc_sql_<name>{…}` series.
fn series(metrics: &str, name: &str) -> Option<i64> {
    let line = metrics.lines().find(|l| l.starts_with(&format!("cdc_sql_{name}{{")))?;
    line.rsplit_once(' ')?.1.parse().ok()
}

/// The `position` label of `cdc_sql_sourcePosition`.
fn position_label(metrics: &str) -> Option<String> {
    let line = metrics.lines().find(|l| l.starts_with("cdc_sql_sourcePosition{"))?;
    Some(line.split("position=\"").nth(1)?.split('"').next()?.to_string())
}

/// `file:pos` at the start of a streaming position label.
fn binlog_of(label: &str) -> Option<(String, u64)> {
    let (file, rest) = label.split_once(':')?;
    let pos = rest.split(' ').next()?.parse().ok()?;
    Some((file.to_string(), pos))
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What `/metrics` shows of a mysql-cdc source through the real binary: the snapshot's tables
/// and chunks once it is read, then the binlog position after the last transaction, the events
/// handed out and the fetch lag of the newest change.
#[test]
fn metrics_show_the_snapshot_chunks_then_the_binlog_position_events_and_lag() {
    let db = cdc_sql_testkit::mariadb().create_database("progress");
    db.exec(
        "CREATE TABLE t1 (id INT PRIMARY KEY, v INT); CREATE TABLE t2 (id INT PRIMARY KEY, v INT);
         INSERT INTO t1 SELECT seq, seq FROM seq_1_to_1000; INSERT INTO t2 SELECT seq, seq FROM seq_1_to_250;",
    );
    // Chunks of 100 keys over the dense keys 1..=1000 and 1..=250: 10 and 3.
    let sql = format!(
        "CREATE TABLE src (id INT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ({}, 'database-name' = '{}', \
         'table-name' = 't[12]', 'scan.incremental.snapshot.chunk.size' = '100', 'server-id' = '5610-5613');\n\
         CREATE TABLE out (id INT, v INT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT * FROM src;\n",
        with_options(&db, ""),
        db.name()
    );
    let job = Job::start_logging(&sql, "warn,cdc_sql::cli=info");
    let port = job.rest_port();
    let poll = |what: &str, ready: &dyn Fn(&str) -> bool| -> String {
        let start = Instant::now();
        loop {
            let metrics = scrape(port);
            if ready(&metrics) {
                return metrics;
            }
            assert!(start.elapsed() < DEADLINE, "waited for {what}; /metrics:\n{metrics}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let streaming = poll("the snapshot to end", &|m| {
        series(m, "isSnapshotting") == Some(0) && position_label(m).is_some_and(|p| !p.starts_with("snapshot"))
    });
    let snapshot: Vec<Option<i64>> =
        ["numTablesSnapshotted", "numTablesRemaining", "numSnapshotSplitsFinished", "numSnapshotSplitsRemaining"]
            .iter()
            .map(|name| series(&streaming, name))
            .collect();
    assert_eq!(snapshot, [Some(2), Some(0), Some(13), Some(0)], "{streaming}");
    assert_eq!(series(&streaming, "sourceEvents"), Some(1250), "every snapshot row: {streaming}");
    let label = position_label(&streaming).unwrap();
    let started = binlog_of(&label).unwrap_or_else(|| panic!("not a binlog position: {label}"));
    assert!(label.contains(" GTID "), "MariaDB's GTID position: {label}");

    // Two transactions: an insert (one event) and an update (-U and +U).
    let before = epoch_ms();
    db.exec("INSERT INTO t1 VALUES (1001, 1)");
    db.exec("UPDATE t2 SET v = -v WHERE id = 7");
    let written = master_position(&db);
    assert!(written > started, "the writes moved the binlog");
    let after_writes = poll("the writes to be streamed", &|m| {
        series(m, "sourceEvents") == Some(1253)
            && position_label(m).and_then(|p| binlog_of(&p)).is_some_and(|at| at >= written)
    });
    let scraped = epoch_ms();
    assert_eq!(series(&after_writes, "numSnapshotSplitsFinished"), Some(13), "the snapshot stays reported");
    // The update's binlog second is at most a second before `before`; it was fetched before the
    // scrape.
    let lag = series(&after_writes, "currentFetchEventTimeLag").expect("a fetch lag");
    assert!(
        (0..=scraped - before + 1000).contains(&lag),
        "fetch lag {lag} ms, written {} ms before the scrape",
        scraped - before
    );
    assert!(series(&after_writes, "currentEmitEventTimeLag").is_some(), "{after_writes}");
    job.stop();
}

/// Through the source API, after every batch: a chunk counts as read only once all its pieces
/// are handed out, events count every row, and the newest change's event time is the second
/// the server wrote it.
#[test]
fn progress_counts_a_chunk_once_its_last_piece_is_handed_out() {
    let db = cdc_sql_testkit::mariadb().create_database("progress_api");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_1000");
    // Ten chunks of exactly 100 rows, each handed out in pieces of at most 40.
    let spec = spec_for(
        &db,
        ", 'scan.incremental.snapshot.chunk.size' = '100', 'scan.snapshot.fetch.size' = '40', 'server-id' = '5620-5623'",
    );
    let legacy = spec_for(&db, ", 'scan.incremental.snapshot.enabled' = 'false', 'server-id' = '5624'");
    runtime().block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        let mut state = BTreeMap::new();
        let mut rows = 0u64;
        let finished = loop {
            let batch = reader.source.next_batch().await.unwrap().unwrap();
            let changes = batch.changes().unwrap();
            rows += changes.num_rows() as u64;
            apply(&mut state, &changes);
            let progress = reader.source.progress().unwrap();
            assert_eq!(progress.events, Some(rows));
            let snapshot = progress.snapshot.clone().unwrap();
            if snapshot.finished {
                break progress;
            }
            // Only one chunk is handed out in pieces at a time: the others delivered all 100.
            assert_eq!(snapshot.chunks_done, rows / 100, "after {rows} rows: {snapshot:?}");
            assert_eq!(snapshot.chunks_done + snapshot.chunks_remaining, 10);
            assert_eq!(progress.position, Some(format!("snapshot, {}/10 chunks", snapshot.chunks_done)));
        };
        let snapshot = finished.snapshot.unwrap();
        assert_eq!(
            (snapshot.tables_done, snapshot.tables_remaining, snapshot.chunks_done, snapshot.chunks_remaining, rows),
            (1, 0, 10, 0, 1000)
        );
        assert_eq!(finished.event_time_ms, None, "no binlog change read yet");

        let first = server_second(&db);
        db.exec("UPDATE t SET v = 0 WHERE id = 500");
        let last = server_second(&db);
        let target = master_position(&db);
        reader.read_past(&mut state, &target).await;
        let progress = reader.source.progress().unwrap();
        assert_eq!(progress.events, Some(1002), "the update's -U and +U");
        let event_ms = progress.event_time_ms.expect("the update's event time");
        assert!((first as i64 * 1000..=last as i64 * 1000).contains(&event_ms), "{event_ms} not in {first}..={last} s");
        assert!(progress.fetch_event_time_lag_ms.is_some());
        let at = progress.position.unwrap();
        assert!(at.starts_with(&format!("{}:", target.0)), "{at}");
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));

        // The legacy snapshot reads each table whole: one table, one chunk.
        let mut reader = Reader::open(&legacy, None).await;
        let mut rows = 0;
        let snapshot = loop {
            rows += reader.source.next_batch().await.unwrap().unwrap().changes().unwrap().num_rows();
            let snapshot = reader.source.progress().unwrap().snapshot.unwrap();
            if snapshot.finished {
                break snapshot;
            }
            assert_eq!((snapshot.tables_done, snapshot.tables_remaining), (0, 1), "after {rows} rows");
        };
        assert_eq!((snapshot.tables_done, snapshot.chunks_done, snapshot.chunks_remaining, rows), (1, 1, 0, 1000));
        reader.source.close().await.unwrap();
    });
}

// ---- 'scan.startup.mode' = 'timestamp' ----

/// The server's clock, epoch seconds.
fn server_second(db: &Database) -> u64 {
    db.admin().query_one("SELECT UNIX_TIMESTAMP()").parse().unwrap()
}

#[test]
fn timestamp_start_takes_whole_transactions_committed_from_that_second_on() {
    let db = cdc_sql_testkit::mariadb().create_database("from_ts");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    // Binlog times come from the session clock (SET TIMESTAMP), which makes every event's time
    // exact. The start lies ahead of the server's clock, so the job also waits for it.
    let base = server_second(&db) + 100_000;
    let from_millis = (base + 1500) * 1000 + 999;
    db.exec(&format!(
        "SET TIMESTAMP = {a}; INSERT INTO t VALUES (1, 1);
         SET TIMESTAMP = {early}; BEGIN; INSERT INTO t VALUES (2, 2); SET TIMESTAMP = {just_before}; COMMIT;
         SET TIMESTAMP = {early}; BEGIN; INSERT INTO t VALUES (3, 3); SET TIMESTAMP = {from}; UPDATE t SET v = 30 WHERE id = 3; COMMIT;
         SET TIMESTAMP = {later}; DELETE FROM t WHERE id = 1;
         SET TIMESTAMP = {back}; INSERT INTO t VALUES (4, 4)",
        a = base + 1000,
        early = base + 1400,
        just_before = base + 1499,
        from = base + 1500,
        later = base + 2000,
        back = base + 1200,
    ));
    let job = job_with_sink(
        &db,
        "id INT, v INT",
        "id",
        "id INT, v INT",
        &format!(", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{from_millis}', 'server-id' = '5540'"),
    );
    let mut job = Job::start(&job);
    let lines = job.wait_lines(5);
    std::thread::sleep(Duration::from_millis(500));
    let lines_after = job.stop();
    // The transaction committed in the start's second is taken whole, although it began earlier
    // and the start's milliseconds are later; everything after it follows, whatever its time.
    assert_eq!(lines, vec!["+I[3, 3]", "-U[3, 3]", "+U[3, 30]", "-D[1, 1]", "+I[4, 4]"]);
    assert_eq!(lines_after, lines);
}

#[test]
fn timestamp_start_keeps_skipping_across_a_restart() {
    // Its own server: a transaction dated after the start ends the skipping for every database,
    // and the other timestamp test writes such transactions.
    let server = MariaDb::start().unwrap();
    let db = server.create_database("ts_restart");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    let from = server_second(&db) + 200_000;
    let spec = spec_for(
        &db,
        &format!(
            ", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}', 'server-id' = '5541'",
            from * 1000
        ),
    );
    let rt = runtime();
    rt.block_on(async {
        let mut state = BTreeMap::new();
        let mut reader = Reader::open(&spec, None).await;
        db.exec(&format!("SET TIMESTAMP = {}; INSERT INTO t VALUES (1, 1)", from - 1));
        reader.read_past(&mut state, &master_position(&db)).await;
        let position = reader.position.clone().unwrap();
        reader.source.close().await.unwrap();
        assert!(state.is_empty(), "{state:?}");
        assert_eq!(position["skip_before_second"], from, "{position}");
        db.exec(&format!(
            "SET TIMESTAMP = {}; INSERT INTO t VALUES (2, 2); SET TIMESTAMP = {from}; INSERT INTO t VALUES (3, 3)",
            from - 1
        ));
        let mut reader = Reader::open(&spec, Some(position)).await;
        reader.read_past(&mut state, &master_position(&db)).await;
        let position = reader.position.clone().unwrap();
        reader.source.close().await.unwrap();
        assert_eq!(state, BTreeMap::from([(3, 3)]));
        assert!(position.get("skip_before_second").is_none(), "{position}");
    });
}

#[test]
fn savepoints_do_not_split_a_transaction() {
    let db = cdc_sql_testkit::mariadb().create_database("savepoint");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    let spec = spec_for(&db, ", 'scan.startup.mode' = 'latest-offset', 'server-id' = '5542'");
    let rt = runtime();
    rt.block_on(async {
        // Batches of one row: a batch may end at any commit the reader sees.
        let mut reader = Reader::open_with_batch_size(&spec, None, 1).await;
        db.exec(
            "BEGIN; INSERT INTO t VALUES (1, 1); SAVEPOINT s; INSERT INTO t VALUES (2, 2); \
             ROLLBACK TO SAVEPOINT s; INSERT INTO t VALUES (3, 3); COMMIT",
        );
        let start = Instant::now();
        let batch = loop {
            assert!(start.elapsed() < DEADLINE, "nothing read");
            let batch = reader.source.next_batch().await.unwrap().unwrap();
            if !batch.changes().unwrap().is_empty() {
                break batch;
            }
        };
        reader.source.close().await.unwrap();
        assert_eq!(format_rows(&batch.changes().unwrap(), "").unwrap(), "+I[1, 1]\n+I[3, 3]\n");
    });
}

/// Reads batches until one holds a change, shown as `schema: …` / `rows: …` lines in order.
async fn events_until_rows(source: &mut Box<dyn Source>) -> Vec<String> {
    let start = Instant::now();
    let mut shown = Vec::new();
    loop {
        assert!(start.elapsed() < DEADLINE, "nothing read; so far {shown:?}");
        let batch = source.next_batch().await.unwrap().unwrap();
        let mut rows = false;
        for event in batch.events {
            match event {
                Event::SchemaChanged(change) => {
                    shown.push(format!("schema: {:?} {}", change.table.as_deref(), change.describe()))
                }
                Event::Changes { changes, .. } if !changes.is_empty() => {
                    rows = true;
                    shown.push(format!("rows: {}", format_rows(&changes, "").unwrap().trim_end()));
                }
                Event::Changes { .. } => {}
                Event::Truncated(t) => panic!("a truncation of {:?}", t.table),
            }
        }
        if rows {
            return shown;
        }
    }
}

/// The dataflow's schema-change event: an ALTER TABLE while streaming is reported in order,
/// before the first row in the table's new shape, and the declared columns go on being read.
#[test]
fn an_alter_table_while_streaming_is_an_event_before_the_rows_of_the_new_shape() {
    let db = cdc_sql_testkit::mariadb().create_database("alter_stream");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT, legacy TEXT)");
    let spec = spec_for(&db, ", 'scan.startup.mode' = 'latest-offset', 'server-id' = '5581'");
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        db.exec("INSERT INTO t VALUES (1, 10, 'x')");
        assert_eq!(events_until_rows(&mut reader.source).await, ["rows: +I[1, 10]"]);
        db.exec(
            "ALTER TABLE t ADD COLUMN note VARCHAR(20), MODIFY v BIGINT, DROP COLUMN legacy; \
             INSERT INTO t VALUES (2, 20, 'n')",
        );
        let change = format!(
            "schema: Some(\"{}.t\") `v` int(11) → bigint(20); added `note` varchar(20); dropped `legacy`",
            db.name()
        );
        assert_eq!(events_until_rows(&mut reader.source).await, [change, "rows: +I[2, 20]".to_string()]);
        // A declared column dropped: the source stops and says which.
        db.exec("ALTER TABLE t DROP COLUMN v; INSERT INTO t VALUES (3, 'gone')");
        let error = next_error(&mut reader.source).await;
        assert!(error.contains("`v`"), "{error}");
        let _ = reader.source.close().await;
    });
}

async fn next_error(source: &mut Box<dyn Source>) -> String {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < DEADLINE, "no error came");
        if let Err(e) = source.next_batch().await {
            return e.to_string();
        }
    }
}

/// The binlog has no column names: a table is described from the server when first mapped after
/// DDL naming it. Events written before a later ALTER, read after it, would get the new shape;
/// where their column types say so, the source stops instead of decoding them wrongly.
#[test]
fn events_older_than_the_tables_description_are_refused_not_misread() {
    let db = cdc_sql_testkit::mariadb().create_database("alter_behind");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT, w VARCHAR(10))");
    let spec = spec_for(&db, ", 'scan.startup.mode' = 'latest-offset', 'server-id' = '5582'");
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        db.exec("INSERT INTO t VALUES (1, 10, 'a')");
        assert_eq!(events_until_rows(&mut reader.source).await, ["rows: +I[1, 10]"]);
        // Not read until all of it is written: the first ALTER makes the reader describe `t`
        // for the insert after it, when the second has already changed a column's type.
        db.exec(
            "ALTER TABLE t COMMENT 'first'; INSERT INTO t VALUES (2, 20, 'b'); \
             ALTER TABLE t MODIFY v VARCHAR(10); INSERT INTO t VALUES (3, '30', 'c')",
        );
        let error = next_error(&mut reader.source).await;
        assert!(error.contains("column 2 `v` of type varchar(10) now") && error.contains("--fresh"), "{error}");
        let _ = reader.source.close().await;
    });
}

// ---- 'scan.incremental.snapshot.enabled' = 'false' (legacy snapshot) ----

#[test]
fn legacy_snapshot_reads_tables_without_a_key_then_streams_whole_row_images() {
    let db = cdc_sql_testkit::mariadb().create_database("keyless");
    db.exec(
        "CREATE TABLE k (v INT, s VARCHAR(10)); \
         INSERT INTO k SELECT seq % 100, 'x' FROM seq_1_to_250; INSERT INTO k VALUES (1000, 'twin'), (1000, 'twin')",
    );
    let sql = format!(
        "CREATE TABLE src (v INT, s STRING) WITH ({}, 'database-name' = '{}', 'table-name' = 'k', \
           'scan.incremental.snapshot.enabled' = 'false', 'scan.snapshot.fetch.size' = '64', 'server-id' = '5550');\n\
         CREATE TABLE out (v INT, s STRING) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT * FROM src;\n",
        with_options(&db, ""),
        db.name()
    );
    let mut job = Job::start(&sql);
    let snapshot = job.wait_lines(252);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in &snapshot {
        *counts.entry(line.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 101, "{counts:?}");
    assert_eq!(counts["+I[1000, twin]"], 2);
    assert!(
        (0..100).all(|v| counts[&format!("+I[{v}, x]")] == if (1..=50).contains(&v) { 3 } else { 2 }),
        "{counts:?}"
    );
    db.exec("UPDATE k SET s = 'one' WHERE v = 1000 LIMIT 1; DELETE FROM k WHERE v = 1000 AND s = 'twin'; INSERT INTO k VALUES (NULL, NULL)");
    let lines = job.wait_lines(256);
    job.stop();
    assert_eq!(lines[252..], ["-U[1000, twin]", "+U[1000, one]", "-D[1000, twin]", "+I[null, null]"]);
}

#[test]
fn legacy_snapshot_under_concurrent_writes_ends_equal_to_the_source() {
    let db = cdc_sql_testkit::mariadb().create_database("legacy_busy");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, 0 FROM seq_1_to_20000");
    let spec = spec_for(
        &db,
        ", 'scan.incremental.snapshot.enabled' = 'false', 'scan.snapshot.fetch.size' = '500', 'server-id' = '5551'",
    );
    let writer_db = db.admin().clone();
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        // The snapshot transaction is open: everything written now comes from the binlog.
        let writer = concurrent_writes(writer_db);
        let mut state = BTreeMap::new();
        let mut snapshot_batches = 0;
        let start = Instant::now();
        while reader.position.as_ref().is_none_or(|p| p.get("legacy_snapshot").is_some()) {
            assert!(start.elapsed() < DEADLINE, "deadline; state has {} rows", state.len());
            let batch = reader.source.next_batch().await.unwrap().expect("unbounded");
            assert!(
                batch.changes().unwrap().num_rows() <= 500,
                "a batch of {} rows",
                batch.changes().unwrap().num_rows()
            );
            snapshot_batches += batch.position.get("legacy_snapshot").is_some() as usize;
            apply(&mut state, &batch.changes().unwrap());
            reader.position = Some(batch.position);
        }
        assert_eq!(snapshot_batches, 40);
        writer.join().unwrap();
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

#[test]
fn restart_mid_legacy_snapshot_reads_it_again_from_the_start() {
    let db = cdc_sql_testkit::mariadb().create_database("legacy_restart");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_3000");
    let spec = spec_for(
        &db,
        ", 'scan.incremental.snapshot.enabled' = 'false', 'scan.snapshot.fetch.size' = '1000', 'server-id' = '5552'",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        let mut state = BTreeMap::new();
        reader.read_until(&mut state, |s| !s.is_empty()).await;
        let position = reader.position.clone().unwrap();
        reader.source.close().await.unwrap();
        assert_eq!(position["legacy_snapshot"], true, "{position}");
        db.exec("UPDATE t SET v = -1 WHERE id = 1; DELETE FROM t WHERE id = 3000; INSERT INTO t VALUES (5000, 5)");
        // Every row comes again, as of the new snapshot.
        let mut reader = Reader::open(&spec, Some(position)).await;
        let mut state = BTreeMap::new();
        reader.read_past(&mut state, &master_position(&db)).await;
        db.exec("UPDATE t SET v = 7 WHERE id = 2");
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

#[test]
fn legacy_snapshot_mode_ends_the_job() {
    let db = cdc_sql_testkit::mariadb().create_database("legacy_bounded");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(5)); INSERT INTO t SELECT seq, 'x' FROM seq_1_to_300");
    let job = job_with_sink(
        &db,
        "id INT, v STRING",
        "id",
        "id INT, v STRING",
        ", 'scan.startup.mode' = 'snapshot', 'scan.incremental.snapshot.enabled' = 'false', 'server-id' = '5553'",
    );
    let (code, lines, err) = Job::start(&job).wait_exit();
    assert_eq!(code, 0, "{err}");
    let mut ids: Vec<u32> = lines.iter().map(|l| l[3..].split(',').next().unwrap().parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=300).collect::<Vec<u32>>());
}

// ---- 'scan.snapshot.fetch.size' and chunk keys ----

#[test]
fn restart_between_the_pieces_of_a_chunk_loses_and_repeats_nothing() {
    let db = cdc_sql_testkit::mariadb().create_database("pieces");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_5000");
    let spec = spec_for(
        &db,
        ", 'scan.incremental.snapshot.chunk.size' = '1000', 'scan.snapshot.fetch.size' = '300', \
         'scan.incremental.snapshot.parallelism' = '1', 'server-id' = '5560'",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut state = BTreeMap::new();
        let mut reader = Reader::open(&spec, None).await;
        let start = Instant::now();
        // The second chunk, ids 1001–2000, stops after its pieces 1001–1300 and 1301–1600.
        while state.len() < 1600 {
            assert!(start.elapsed() < DEADLINE);
            let batch = reader.source.next_batch().await.unwrap().unwrap();
            assert!(batch.changes().unwrap().num_rows() <= 300, "a batch of {} rows", batch.changes().unwrap().num_rows());
            apply(&mut state, &batch.changes().unwrap());
            reader.position = Some(batch.position);
        }
        assert_eq!(state.len(), 1600);
        let position = reader.position.clone().unwrap();
        reader.source.close().await.unwrap();
        let chunks = position["snapshot"]["chunks"].as_array().unwrap();
        assert_eq!(chunks[1][2], "1601", "{position}");
        assert!(chunks.last().unwrap()[1] == "1601" && chunks.last().unwrap()[3].is_null(), "{position}");
        db.exec("UPDATE t SET v = -1 WHERE id IN (1500, 1700); DELETE FROM t WHERE id = 1601; INSERT INTO t VALUES (6000, 6)");
        let mut reader = Reader::open(&spec, Some(position)).await;
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

#[test]
fn rows_with_a_null_chunk_key_are_snapshotted() {
    let db = cdc_sql_testkit::mariadb().create_database("null_key");
    db.exec(
        "CREATE TABLE n (u INT NULL UNIQUE, v INT); \
         INSERT INTO n SELECT seq, seq FROM seq_1_to_100; INSERT INTO n VALUES (NULL, -1), (NULL, -2)",
    );
    let sql = format!(
        "CREATE TABLE src (u INT, v INT) WITH ({}, 'database-name' = '{}', 'table-name' = 'n', \
           'scan.startup.mode' = 'snapshot', 'scan.incremental.snapshot.chunk.key-column' = 'u', \
           'scan.incremental.snapshot.chunk.size' = '10', 'scan.snapshot.fetch.size' = '4', 'server-id' = '5561');\n\
         CREATE TABLE out (u INT, v INT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT * FROM src;\n",
        with_options(&db, ""),
        db.name()
    );
    let (code, mut lines, err) = Job::start(&sql).wait_exit();
    assert_eq!(code, 0, "{err}");
    lines.sort();
    let mut expected: Vec<String> = (1..=100).map(|i| format!("+I[{i}, {i}]")).collect();
    expected.extend(["+I[null, -1]".to_string(), "+I[null, -2]".to_string()]);
    expected.sort();
    assert_eq!(lines, expected);
}

// ---- resuming by GTID ----

#[test]
fn resume_right_after_a_gtid_start_repeats_nothing() {
    let db = cdc_sql_testkit::mariadb().create_database("gtid_resume");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1); INSERT INTO t VALUES (2, 2)");
    let gtid = db.admin().query_one("SELECT @@gtid_binlog_pos");
    let spec = spec_for(
        &db,
        &format!(", 'scan.startup.mode' = 'specific-offset', 'scan.startup.specific-offset.gtid-set' = '{gtid}', 'server-id' = '5570'"),
    );
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        // Nothing committed yet: the position is the start of the binlog file holding the GTID.
        let batch = reader.source.next_batch().await.unwrap().unwrap();
        assert!(batch.changes().unwrap().is_empty());
        reader.source.close().await.unwrap();
        db.exec("INSERT INTO t VALUES (3, 3)");
        let mut state = BTreeMap::new();
        let mut reader = Reader::open(&spec, Some(batch.position)).await;
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_eq!(state, BTreeMap::from([(3, 3)]));
    });
}

/// The job's table on another server.
fn spec_on(server: &MariaDb, database: &str, extra: &str) -> TableSpec {
    let c = server.connection();
    let sql = format!(
        "CREATE TABLE src (id INT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'mysql-cdc', \
         'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}', 'database-name' = '{database}', \
         'table-name' = 't'{extra});",
        c.host, c.port, c.user, c.password
    );
    match parse_script("test", &sql, &|_| None).unwrap().into_iter().next().unwrap().statement {
        Statement::CreateTable { spec, .. } => spec,
        _ => panic!("not a CREATE TABLE"),
    }
}

#[test]
fn resume_by_gtid_survives_a_failover_to_a_replica() {
    let primary = MariaDb::start().unwrap();
    let replica = MariaDb::start_with(MariaDbConfig { server_id: 2, ..MariaDbConfig::default() }).unwrap();
    // The primary's binlog files are numbered well past the replica's, so the checkpoint's file
    // does not exist on the replica.
    primary.admin().exec("FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS");
    replica.admin().exec(&format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'cdc_user', \
         MASTER_PASSWORD = 'cdc_password', MASTER_USE_GTID = slave_pos; START SLAVE",
        primary.port()
    ));
    let db = primary.create_database("failover");
    let name = db.name().to_string();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_100");
    let caught_up = |gtid: &str| {
        let start = Instant::now();
        while replica.admin().query_one("SELECT @@gtid_slave_pos") != gtid {
            assert!(start.elapsed() < DEADLINE, "the replica does not catch up with {gtid}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let rt = runtime();
    rt.block_on(async {
        let mut state = BTreeMap::new();
        let mut reader = Reader::open(&spec_on(&primary, &name, ", 'server-id' = '5571'"), None).await;
        db.exec("UPDATE t SET v = -1 WHERE id = 1; INSERT INTO t VALUES (101, 101)");
        reader.read_past(&mut state, &master_position(&db)).await;
        let position = reader.position.clone().unwrap();
        reader.source.close().await.unwrap();
        assert!(position.get("snapshot").is_none(), "{position}");
        // Written on the primary after the checkpoint, then the primary is gone.
        db.exec("DELETE FROM t WHERE id = 2; UPDATE t SET v = 55 WHERE id = 5");
        caught_up(&primary.admin().query_one("SELECT @@gtid_binlog_pos"));
        replica.admin().exec("STOP SLAVE");
        drop(db);
        primary.stop();
        let files: Vec<String> = replica.admin().query("SHOW BINARY LOGS").into_iter().map(|r| r[0].clone()).collect();
        assert!(!files.contains(&position["file"].as_str().unwrap().to_string()), "{files:?} / {position}");
        replica.admin().exec(&format!("INSERT INTO `{name}`.t VALUES (200, 200)"));
        let mut reader = Reader::open(&spec_on(&replica, &name, ", 'server-id' = '5571'"), Some(position)).await;
        // Positions from here on are the replica's.
        reader.position = None;
        let target = {
            let row = replica.admin().query("SHOW MASTER STATUS").into_iter().next().unwrap();
            (row[0].clone(), row[1].parse().unwrap())
        };
        reader.read_past(&mut state, &target).await;
        reader.source.close().await.unwrap();
        let table: BTreeMap<i32, i32> = replica
            .admin()
            .query(&format!("SELECT id, v FROM `{name}`.t"))
            .into_iter()
            .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
            .collect();
        assert_same(&state, &table);
    });
}

#[test]
fn resume_from_a_purged_gtid_position_is_refused_clearly() {
    let server = MariaDb::start().unwrap();
    let db = server.create_database("gtid_purged");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)");
    let spec = spec_on(&server, db.name(), ", 'scan.startup.mode' = 'latest-offset', 'server-id' = '5572'");
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        let batch = reader.source.next_batch().await.unwrap().unwrap();
        reader.source.close().await.unwrap();
        db.exec("INSERT INTO t VALUES (2, 2)");
        server.admin().exec("FLUSH BINARY LOGS");
        let current = master_position(&db).0;
        // The server keeps a file until the storage engine's binlog checkpoint has passed it.
        let start = Instant::now();
        while server.admin().query_one("SHOW BINARY LOGS") != current {
            assert!(start.elapsed() < DEADLINE, "cannot purge the binlog files before {current}");
            server.admin().exec(&format!("PURGE BINARY LOGS TO '{current}'"));
            std::thread::sleep(Duration::from_millis(50));
        }
        let table = open_table(&spec).unwrap();
        let mut source = table.source(&SourceContext { batch_size: 1000 }).unwrap().unwrap();
        let err = source
            .start(Some(ResumeFrom { position: batch.position.clone(), exact: true, stateful: false }))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("cannot resume from GTID position {}", batch.position["gtid"].as_str().unwrap()))
                && err.contains(&format!("the oldest binlog file the server has, {current}"))
                && err.contains("domain(s) 0")
                && err.contains("'scan.startup.mode' = 'initial'"),
            "{err}"
        );
    });
}

#[test]
fn an_incremental_snapshot_checkpoint_is_not_resumed_by_the_legacy_snapshot() {
    let db = cdc_sql_testkit::mariadb().create_database("switch");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_100");
    let spec = spec_for(&db, ", 'scan.incremental.snapshot.chunk.size' = '10', 'server-id' = '5573'");
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        let batch = reader.source.next_batch().await.unwrap().unwrap();
        reader.source.close().await.unwrap();
        assert!(batch.position.get("snapshot").is_some(), "{}", batch.position);
        let legacy = spec_for(&db, ", 'scan.incremental.snapshot.enabled' = 'false', 'server-id' = '5573'");
        let table = open_table(&legacy).unwrap();
        let mut source = table.source(&SourceContext { batch_size: 1000 }).unwrap().unwrap();
        let err = source
            .start(Some(ResumeFrom { position: batch.position, exact: true, stateful: false }))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checkpoint was taken during the incremental snapshot") && err.contains("back to 'true'"),
            "{err}"
        );
    });
}

/// Snapshot sessions keep reading chunks in one consistent-snapshot transaction for a few
/// seconds. Guards two things: a job that stops consuming (its sink stalls) holds no such
/// transaction open past that time, and the server's default isolation cannot weaken the
/// snapshot (under READ COMMITTED each later `SELECT` of a kept transaction would see rows
/// committed after its position, which streaming then delivers again).
#[test]
fn a_paused_snapshot_on_a_read_committed_server_holds_no_old_transaction_and_stays_exact() {
    let server = MariaDb::start().unwrap();
    server.admin().exec("SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED");
    let db = server.create_database("paused");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, 0 FROM seq_1_to_20000");
    let spec = spec_on(&server, db.name(), ", 'scan.incremental.snapshot.chunk.size' = '1000'");
    let open_transactions = |older_than_s: u32| {
        db.admin()
            .query_one(&format!(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_started <= NOW() - INTERVAL {older_than_s} SECOND"
            ))
            .parse::<u32>()
            .unwrap()
    };
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Reader::open(&spec, None).await;
        let mut state = BTreeMap::new();
        reader.read_until(&mut state, |s| !s.is_empty()).await;
        assert!(open_transactions(0) > 0, "the readers keep their snapshots open between chunks");
        // Written while the snapshot is read: later chunks of a kept transaction must not see it.
        db.exec(
            "UPDATE t SET v = 1 WHERE id % 7 = 0; DELETE FROM t WHERE id BETWEEN 15000 AND 15100; \
             INSERT INTO t SELECT seq, 2 FROM seq_20001_to_20500",
        );
        reader.read_until(&mut state, |s| s.len() > 10_000).await;
        // The job stops consuming, as behind a stalled sink.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(open_transactions(6), 0, "no snapshot transaction outlives the reuse window");
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

// ---- a backfill ('scan.startup.mode' = 'snapshot') continued by a streaming run ----

/// Runs `backfill` (a 'snapshot' mode table) to its end, changes the table, and starts `cdc`
/// (the same table in 'initial' mode) from the backfill's last position, as the runtime does
/// when the same job file runs first for a backfill, then for CDC. Returns what the streaming
/// run delivered up to the changes, which must be exactly those changes.
async fn continue_backfill(db: &Database, backfill: &TableSpec, cdc: &TableSpec) -> Vec<String> {
    let mut reader = Reader::open(backfill, None).await;
    let mut state = BTreeMap::new();
    reader.read_to_end(&mut state).await;
    reader.source.close().await.unwrap();
    assert_same(&state, &table_state(db));
    let last = reader.position.clone().expect("the backfill read something");
    // A snapshot-mode run resumed from its own last position has nothing left to read.
    let mut again = Reader::open(backfill, Some(last.clone())).await;
    assert!(again.source.next_batch().await.unwrap().is_none(), "the backfill was read again from {last}");
    db.exec(
        "UPDATE t SET v = -1 WHERE id = 10; DELETE FROM t WHERE id = 20; INSERT INTO t VALUES (5000, 5); \
         UPDATE t SET id = 6000 WHERE id = 30",
    );
    let target = master_position(db);
    let mut reader = Reader::open(cdc, Some(last)).await;
    let mut delivered = Vec::new();
    let start = Instant::now();
    while !streamed_past(&reader.position, &target) {
        assert!(start.elapsed() < DEADLINE, "deadline; delivered {delivered:?}");
        let batch = reader.source.next_batch().await.unwrap().expect("unbounded");
        delivered.extend(format_rows(&batch.changes().unwrap(), "").unwrap().lines().map(String::from));
        apply(&mut state, &batch.changes().unwrap());
        reader.position = Some(batch.position);
    }
    assert_same(&state, &table_state(db));
    // And it goes on streaming.
    db.exec("INSERT INTO t VALUES (7000, 7)");
    reader.read_past(&mut state, &master_position(db)).await;
    reader.source.close().await.unwrap();
    assert_same(&state, &table_state(db));
    delivered
}

const CHANGES_AFTER_THE_BACKFILL: [&str; 6] =
    ["-U[10, 10]", "+U[10, -1]", "-D[20, 20]", "+I[5000, 5]", "-U[30, 30]", "+U[6000, 30]"];

#[test]
fn a_streaming_run_continues_a_finished_snapshot_mode_run_from_where_its_snapshot_was_taken() {
    let db = cdc_sql_testkit::mariadb().create_database("backfill");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_2000");
    let options = ", 'scan.incremental.snapshot.chunk.size' = '300', 'server-id' = '5590'";
    let backfill = spec_for(&db, &format!(", 'scan.startup.mode' = 'snapshot'{options}"));
    let cdc = spec_for(&db, options);
    let delivered = runtime().block_on(continue_backfill(&db, &backfill, &cdc));
    assert_eq!(delivered, CHANGES_AFTER_THE_BACKFILL, "no snapshot row again, no change missed");
}

#[test]
fn a_streaming_run_continues_a_finished_legacy_snapshot_mode_run() {
    let db = cdc_sql_testkit::mariadb().create_database("legacy_backfill");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_2000");
    let options =
        ", 'scan.incremental.snapshot.enabled' = 'false', 'scan.snapshot.fetch.size' = '300', 'server-id' = '5591'";
    let backfill = spec_for(&db, &format!(", 'scan.startup.mode' = 'snapshot'{options}"));
    let cdc = spec_for(&db, options);
    let delivered = runtime().block_on(continue_backfill(&db, &backfill, &cdc));
    assert_eq!(delivered, CHANGES_AFTER_THE_BACKFILL, "no snapshot row again, no change missed");
}

/// Each chunk of the backfill is read at its own binlog point; the streaming run that continues
/// it must deliver every change made while the backfill ran exactly once: those a chunk already
/// holds are skipped, the others are not.
#[test]
fn changes_made_during_a_snapshot_mode_run_reach_the_run_continuing_it_exactly_once() {
    let db = cdc_sql_testkit::mariadb().create_database("backfill_busy");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, 0 FROM seq_1_to_20000");
    let options = ", 'scan.incremental.snapshot.chunk.size' = '700', 'server-id' = '5592-5595'";
    let backfill = spec_for(&db, &format!(", 'scan.startup.mode' = 'snapshot'{options}"));
    let cdc = spec_for(&db, options);
    let writer_db = db.admin().clone();
    runtime().block_on(async {
        let mut reader = Reader::open(&backfill, None).await;
        let writer = concurrent_writes(writer_db);
        let mut state = BTreeMap::new();
        reader.read_to_end(&mut state).await;
        reader.source.close().await.unwrap();
        writer.join().unwrap();
        db.exec("UPDATE t SET v = -1 WHERE id % 1000 = 1; DELETE FROM t WHERE id % 1000 = 2; INSERT INTO t VALUES (50000, 5)");
        let mut reader = Reader::open(&cdc, reader.position.clone()).await;
        reader.read_past(&mut state, &master_position(&db)).await;
        reader.source.close().await.unwrap();
        assert_same(&state, &table_state(&db));
    });
}

/// The MySQL columns of [`flink_cdc_declarations_read_alike_in_snapshot_and_binlog`]: the
/// declarations of Flink CDC's quickstart and all-types tests that used to be refused or mangled.
const FLINK_TYPES_MYSQL: &str = "CREATE TABLE t (
    id INT PRIMARY KEY, f3 FLOAT, f12 FLOAT, fm FLOAT(10,3), d3 DOUBLE,
    s SET('a','b','c'), s2 SET('a','b','c'), se SET('','x'),
    pt POINT, ls LINESTRING, pg POLYGON, mp MULTIPOINT, ml MULTILINESTRING, mpg MULTIPOLYGON, g GEOMETRY,
    gc GEOMETRYCOLLECTION, gb GEOMETRY, i6 INET6
)";

const FLINK_TYPES_FLINK: &str = "id INT, f3 DECIMAL(10, 3), f12 DECIMAL(20, 12), fm DECIMAL(20, 12), d3 DECIMAL(10, 3),
    s ARRAY<STRING>, s2 STRING, se ARRAY<STRING>,
    pt STRING, ls STRING, pg STRING, mp STRING, ml STRING, mpg STRING, g STRING, gc STRING, gb BYTES, i6 STRING";

fn flink_types_values(id: i32) -> String {
    let geometries = "ST_GeomFromText('POINT(1 1)'), ST_GeomFromText('LINESTRING(3 0, 3 3, 3 5)'), \
        ST_GeomFromText('POLYGON((1 1, 2 1, 2 2,  1 2, 1 1))'), ST_GeomFromText('MULTIPOINT(1 1, 2 2)'), \
        ST_GeomFromText('MultiLineString((1 1,2 2,3 3),(4 4,5 5))'), \
        ST_GeomFromText('MULTIPOLYGON(((0 0, 10 0, 10 10, 0 10, 0 0)), ((5 5, 7 5, 7 7, 5 7, 5 5)))'), \
        ST_GeomFromText('POLYGON((0 0, 0 10, 10 10, 10 0, 0 0))', 4326), \
        ST_GeomFromText('GEOMETRYCOLLECTION(POINT(10 10), POINT(30 30), LINESTRING(15 15, 20 20))'), \
        ST_GeomFromText('POINT(1 1)')";
    format!(
        "({id}, 0.5, 1.1, 1.1, 123.4565, 'a,c', 'a,c', ',x', {geometries}, '::1'), \
         ({}, 1.1, NULL, NULL, -123.4565, '', '', '', ST_GeomFromText('POINT(1.5 -2.25)', 4326), NULL, NULL, NULL, \
           NULL, NULL, NULL, ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'), NULL, '1::'), \
         ({}, 123.4565, NULL, NULL, 0.0005, {})",
        id + 1,
        id + 2,
        vec!["NULL"; 13].join(", ")
    )
}

/// Expected values (without the id), from Flink CDC's semantics (the geometries are those of
/// Flink CDC's `column_type_test.sql`; MariaDB spells its `MULTIPOINT((1 1),(2 2))` without the
/// inner parentheses):
/// - FLOAT/DOUBLE → DECIMAL(p, s): the value's shortest decimal form (`Float.toString` for a
///   FLOAT, `Double.toString` for a DOUBLE or FLOAT(M,D), which Debezium reads as a double),
///   rounded HALF_UP (`DecimalData.fromBigDecimal`): FLOAT 1.1 is 1.100 and 1.100000000000, the
///   FLOAT(10,3) 1.1 widened 1.100000023842;
/// - SET → ARRAY<STRING>: its members (`MySqlDeserializationConverterFactory`); the empty set an
///   empty array (Flink CDC: `"".split(",")`, one empty string — we differ, see the docs);
/// - spatial → STRING: the JSON of Flink CDC's `MySqlConnectorITCase.testAllDataTypes`; the
///   clockwise polygon comes out counter-clockwise, as Esri writes it; BYTES: the WKB;
/// - INET6: the text the server prints.
const FLINK_TYPES_EXPECTED: [&str; 3] = [
    concat!(
        "0.500, 1.100000000000, 1.100000023842, 123.457, [a, c], a,c, [, x], ",
        r#"{"coordinates":[1,1],"type":"Point","srid":0}, "#,
        r#"{"coordinates":[[3,0],[3,3],[3,5]],"type":"LineString","srid":0}, "#,
        r#"{"coordinates":[[[1,1],[2,1],[2,2],[1,2],[1,1]]],"type":"Polygon","srid":0}, "#,
        r#"{"coordinates":[[1,1],[2,2]],"type":"MultiPoint","srid":0}, "#,
        r#"{"coordinates":[[[1,1],[2,2],[3,3]],[[4,4],[5,5]]],"type":"MultiLineString","srid":0}, "#,
        r#"{"coordinates":[[[[0,0],[10,0],[10,10],[0,10],[0,0]]],[[[5,5],[7,5],[7,7],[5,7],[5,5]]]],"type":"MultiPolygon","srid":0}, "#,
        r#"{"coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]],"type":"Polygon","srid":4326}, "#,
        r#"{"geometries":[{"type":"Point","coordinates":[10,10]},{"type":"Point","coordinates":[30,30]},{"type":"LineString","coordinates":[[15,15],[20,20]]}],"type":"GeometryCollection","srid":0}, "#,
        "[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, -16, 63, 0, 0, 0, 0, 0, 0, -16, 63], ::1]"
    ),
    concat!(
        "1.100, null, null, -123.457, [], , [], ",
        r#"{"coordinates":[1.5,-2.25],"type":"Point","srid":4326}, null, null, null, null, null, null, "#,
        r#"{"geometries":[],"type":"GeometryCollection","srid":0}, null, 1::]"#
    ),
    "123.457, null, null, 0.001, null, null, null, null, null, null, null, null, null, null, null, null, null]",
];

#[test]
fn flink_cdc_declarations_read_alike_in_snapshot_and_binlog() {
    let db = cdc_sql_testkit::mariadb().create_database("flinktypes");
    db.exec(&format!("{FLINK_TYPES_MYSQL}; INSERT INTO t VALUES {}", flink_types_values(1)));
    let sql = job_with_sink(&db, FLINK_TYPES_FLINK, "id", FLINK_TYPES_FLINK, ", 'server-id' = '5580'");
    let mut job = Job::start(&sql);
    job.wait_lines(3);
    db.exec(&format!("INSERT INTO t VALUES {}", flink_types_values(101)));
    let all = job.wait_lines(6);
    job.stop();
    let (mut snapshot, binlog) = (all[..3].to_vec(), all[3..6].to_vec());
    snapshot.sort();
    for (i, (s, b)) in snapshot.iter().zip(&binlog).enumerate() {
        assert_eq!(strip_id(s), format!("+I[{}", FLINK_TYPES_EXPECTED[i]), "snapshot row {i}");
        assert_eq!(strip_id(b), format!("+I[{}", FLINK_TYPES_EXPECTED[i]), "binlog row {i}");
    }
    // The legacy snapshot reads the text protocol through mysql_async: the same values.
    let legacy = job_with_sink(
        &db,
        FLINK_TYPES_FLINK,
        "id",
        FLINK_TYPES_FLINK,
        ", 'scan.startup.mode' = 'snapshot', 'scan.incremental.snapshot.enabled' = 'false'",
    );
    let (code, mut lines, stderr) = Job::start(&legacy).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    lines.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(lines, expected, "the legacy snapshot differs");
}

/// A float whose rounded value needs more digits than the declared precision stops the job
/// (Flink CDC writes NULL), in the snapshot and in the binlog alike.
#[test]
fn a_float_too_large_for_its_decimal_stops_the_job_naming_column_and_value() {
    let db = cdc_sql_testkit::mariadb().create_database("floatoverflow");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, w FLOAT, d DOUBLE); INSERT INTO t VALUES (1, 1e12, 0.5)");
    let columns = "id INT, w DECIMAL(10, 3), d DECIMAL(10, 3)";
    let sql = job_with_sink(&db, columns, "id", columns, ", 'scan.startup.mode' = 'snapshot'");
    let (code, _, stderr) = Job::start(&sql).wait_exit();
    assert_ne!(code, 0);
    assert!(
        stderr.contains("column `w`") && stderr.contains("1000000000000.0") && stderr.contains("DECIMAL(10, 3)"),
        "{stderr}"
    );

    db.exec("DELETE FROM t");
    let sql = job_with_sink(&db, columns, "id", columns, ", 'server-id' = '5581'");
    let mut job = Job::start(&sql);
    db.exec("INSERT INTO t VALUES (2, 0.25, 0.125)");
    assert_eq!(job.wait_lines(1), ["+I[2, 0.250, 0.125]"]);
    db.exec("INSERT INTO t VALUES (3, 1, -1e300)");
    let (code, lines, stderr) = job.wait_exit();
    assert_ne!(code, 0);
    assert_eq!(lines, ["+I[2, 0.250, 0.125]"], "nothing after the value that does not fit");
    assert!(stderr.contains("column `d`") && stderr.contains("-1e300"), "{stderr}");
}

/// Character data arrives as stored: UTF-16 columns are decoded, and a character set mysql-cdc
/// does not decode is read only where a value is plain ASCII — its other values stop the job
/// rather than be read as UTF-8 (GBK's `系统` is valid UTF-8 for `ϵͳ`).
/// Columns in legacy character sets, written by a utf8mb4 client (the server converts), with
/// the Unicode text each must read as.
const CHARSET_TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY,
    g VARCHAR(40) CHARACTER SET gbk, b VARCHAR(40) CHARACTER SET big5, s VARCHAR(40) CHARACTER SET sjis,
    k VARCHAR(40) CHARACTER SET euckr, c VARCHAR(40) CHARACTER SET cp1250, r VARCHAR(40) CHARACTER SET koi8r,
    e VARCHAR(40) CHARACTER SET greek, l VARCHAR(40) CHARACTER SET latin2, u VARCHAR(40) CHARACTER SET utf16,
    a VARCHAR(40) CHARACTER SET cp852)";
const CHARSET_COLUMNS: &str =
    "id INT, g STRING, b STRING, s STRING, k STRING, c STRING, r STRING, e STRING, l STRING, u STRING, a STRING";
const CHARSET_ROWS: [[&str; 10]; 2] = [
    [
        "中文字符集",
        "中文資料庫",
        "日本語ﾃｷｽﾄ〜",
        "한국어 텍스트",
        "Zażółć gęślą jaźń",
        "Съешь же ещё",
        "Καλημέρα κόσμε",
        "Łódź, Kraków",
        "a✓😀",
        "ascii",
    ],
    ["系统", "繁體中文", "ｶﾀｶﾅとかな", "안녕하세요", "Żółw", "Привет", "Ελληνικά", "Gdańsk", "ü", "plain"],
];

fn charset_insert(id: usize) -> String {
    let values: Vec<String> = CHARSET_ROWS[id - 1].iter().map(|v| format!("'{v}'")).collect();
    format!("SET NAMES utf8mb4; INSERT INTO t VALUES ({id}, {})", values.join(", "))
}

fn charset_line(kind: &str, id: usize) -> String {
    format!("{kind}[{id}, {}]", CHARSET_ROWS[id - 1].join(", "))
}

#[test]
fn text_in_other_character_sets_is_decoded_or_refused_never_misread() {
    let db = cdc_sql_testkit::mariadb().create_database("charsets");
    db.exec(&format!("{CHARSET_TABLE}; {}", charset_insert(1)));
    // The server converted the text into each set: check its stored bytes are that set's.
    assert_eq!(db.query_one("SELECT HEX(g) FROM t WHERE id = 1"), "D6D0CEC4D7D6B7FBBCAF");
    let sql = job_with_sink(&db, CHARSET_COLUMNS, "id", CHARSET_COLUMNS, ", 'server-id' = '5582'");
    let mut job = Job::start(&sql);
    // The snapshot (the binary protocol of our own session), then binlog rows.
    assert_eq!(job.wait_lines(1), [charset_line("+I", 1)]);
    db.exec(&charset_insert(2));
    db.exec("UPDATE t SET a = 'still ascii' WHERE id = 1");
    let lines = job.wait_lines(4);
    assert_eq!(lines[1], charset_line("+I", 2));
    assert_eq!(lines[2], charset_line("-U", 1));
    assert_eq!(lines[3], charset_line("+U", 1).replace("ascii]", "still ascii]"));
    // Bytes gbk allows (A1 40) but the server has no character for (it converts them to '?'):
    // refused, naming the column, never read as what another table says.
    db.exec("INSERT INTO t (id, g) VALUES (3, _binary 0xA140)");
    assert_eq!(db.query_one("SELECT HEX(CONVERT(g USING utf8mb4)) FROM t WHERE id = 3"), "3F");
    let (code, lines, stderr) = job.wait_exit();
    assert_ne!(code, 0);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        stderr.contains("column `g`") && stderr.contains("A1 40") && stderr.contains("character set gbk"),
        "{stderr}"
    );
}

#[test]
fn legacy_snapshot_and_jdbc_scan_read_other_character_sets_as_the_snapshot_does() {
    let db = cdc_sql_testkit::mariadb().create_database("charsets_scan");
    db.exec(&format!("{CHARSET_TABLE}; {}; {}", charset_insert(1), charset_insert(2)));
    let expected = vec![charset_line("+I", 1), charset_line("+I", 2)];
    let legacy = job_with_sink(
        &db,
        CHARSET_COLUMNS,
        "id",
        CHARSET_COLUMNS,
        ", 'scan.startup.mode' = 'snapshot', 'scan.incremental.snapshot.enabled' = 'false'",
    );
    let (code, mut lines, stderr) = Job::start(&legacy).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    lines.sort();
    assert_eq!(lines, expected, "the legacy snapshot");
    // The jdbc scan reads in utf8mb4: the server converts.
    let c = db.connection();
    let jdbc = format!(
        "CREATE TABLE src ({CHARSET_COLUMNS}) WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 't', \
         'username' = '{}', 'password' = '{}');\n\
         CREATE TABLE out ({CHARSET_COLUMNS}) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT * FROM src;\n",
        db.jdbc_url(),
        c.user,
        c.password
    );
    let (code, mut lines, stderr) = Job::start(&jdbc).wait_exit();
    assert_eq!(code, 0, "{stderr}");
    lines.sort();
    assert_eq!(lines, expected, "the jdbc scan");
}

#[test]
fn a_set_without_a_faithful_decoder_is_refused_naming_the_column_and_the_fix() {
    let db = cdc_sql_testkit::mariadb().create_database("charsets_refused");
    db.exec(&format!("{CHARSET_TABLE}; {}; UPDATE t SET a = 'čš' WHERE id = 1", charset_insert(1)));
    let sql = job_with_sink(&db, CHARSET_COLUMNS, "id", CHARSET_COLUMNS, ", 'server-id' = '6301'");
    let (code, lines, stderr) = Job::start(&sql).wait_exit();
    assert_ne!(code, 0);
    assert!(lines.is_empty(), "{lines:?}");
    assert!(
        stderr.contains("column `a`") && stderr.contains("character set cp852") && stderr.contains("utf8mb4"),
        "{stderr}"
    );
}

/// Whether the server's conversion of `input` failed: it gave NULL, U+FFFD, or more `?` than
/// `input` holds.
fn server_failed(input: &[u8], converted: Option<&str>) -> Option<String> {
    let hex = converted?;
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let text = String::from_utf8(bytes).unwrap();
    let questions = |b: &[u8]| b.iter().filter(|c| **c == b'?').count();
    (questions(text.as_bytes()) <= questions(input) && !text.contains('\u{fffd}')).then_some(text)
}

/// Every character of every set mysql-cdc decodes (each byte of the single-byte sets; each byte
/// from 0x80, each two-byte sequence led by one, and each `8F`-led three-byte sequence of the
/// multi-byte ones) reads as the server
/// converts it to utf8mb4, or is refused where the server has no character: never as another
/// character, and never refused where the server reads one.
#[test]
fn every_character_reads_as_the_server_converts_it() {
    let db = cdc_sql_testkit::mariadb().create_database("charset_tables");
    let single = [
        "latin1", "latin2", "latin5", "latin7", "cp1250", "cp1251", "cp1256", "cp1257", "koi8r", "koi8u", "greek",
        "hebrew", "tis620", "cp866", "macroman", "ascii",
    ];
    let multi = ["big5", "gbk", "gb2312", "sjis", "cp932", "euckr", "ujis", "eucjpms"];
    let mut queries: Vec<(&str, String)> = Vec::new();
    for set in single {
        queries.push((
            set,
            format!("SELECT HEX(CHAR(seq)), HEX(CONVERT(CHAR(seq USING {set}) USING utf8mb4)) FROM seq_0_to_255"),
        ));
    }
    for set in multi {
        queries.push((
            set,
            format!("SELECT HEX(CHAR(seq)), HEX(CONVERT(CHAR(seq USING {set}) USING utf8mb4)) FROM seq_128_to_255"),
        ));
        let two = "UNHEX(HEX(seq))";
        queries.push((
            set,
            format!(
                "SELECT HEX({two}), HEX(CONVERT(CAST({two} AS CHAR CHARACTER SET {set}) USING utf8mb4)) \
                 FROM seq_32768_to_65535"
            ),
        ));
        if set == "ujis" || set == "eucjpms" {
            let three = "UNHEX(CONCAT('8F', HEX(seq)))";
            queries.push((
                set,
                format!(
                    "SELECT HEX({three}), HEX(CONVERT(CAST({three} AS CHAR CHARACTER SET {set}) USING utf8mb4)) \
                     FROM seq_41377_to_65278"
                ),
            ));
        }
    }
    let (mut misread, mut refused, mut compared) = (Vec::new(), Vec::new(), 0);
    for (set, sql) in queries {
        for row in db.query_opt(&sql) {
            let hex = row[0].clone().unwrap();
            let input: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let server = server_failed(&input, row[1].as_deref());
            compared += 1;
            match (cdc_sql::connectors::decode_stored_text(set, &input), server) {
                (Ok(ours), Some(server)) if ours == server => {}
                (Err(_), None) => {}
                (Ok(ours), server) => misread.push(format!("{set} {hex}: {ours:?}, the server {server:?}")),
                (Err(why), Some(server)) => refused.push(format!("{set} {hex}: the server reads {server:?}; {why}")),
            }
        }
    }
    assert!(compared > 300_000, "{compared}");
    assert!(misread.is_empty(), "{} misread, e.g. {:#?}", misread.len(), &misread[..misread.len().min(20)]);
    assert!(refused.is_empty(), "{} refused, e.g. {:#?}", refused.len(), &refused[..refused.len().min(20)]);
}
