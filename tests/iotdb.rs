//! The `iotdb` sink end to end: job files run by the real binary against the IoTDB REST emulator
//! (`tests/emulators/iotdb.rs`). The scenario of `sql/examples/mysql_to_iotdb.sql` runs that file
//! against the harness's MariaDB, once with `scan.startup.mode` = 'snapshot' and once with
//! 'initial' while the table changes, and compares IoTDB with the MySQL table point by point.
//! The other tests use datagen sources (bounded vs changelog) with one sink table and INSERT; each
//! job also prints the source changelog, from which the expected IoTDB content is computed.

#[path = "emulators/iotdb.rs"]
mod emulator;

use std::collections::BTreeMap;
use std::process::Command;

use emulator::{Fault, IotdbEmulator, Val};

const USER: &str = "root";
const PASSWORD: &str = "s3cret";

fn run_job(sql: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    std::fs::write(&path, sql).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const FIELDS: &str = "'seed' = '42', \
    'fields.ts_offset.min' = '0', 'fields.ts_offset.max' = '999', \
    'fields.temp.min' = '-40', 'fields.temp.max' = '120', \
    'fields.status.length' = '6', 'fields.status.null-rate' = '0.25', \
    'fields.level.min' = '0', 'fields.level.max' = '9'";

const COLUMNS: &str = "id BIGINT, ts_offset INT, temp DOUBLE, status STRING, level INT, PRIMARY KEY (id) NOT ENFORCED";

/// A bounded backfill: every id once.
fn backfill_source(rows: u32) -> String {
    format!(
        "CREATE TABLE readings ({COLUMNS}) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}', \
         'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}', {FIELDS});"
    )
}

/// A changelog: inserts, updates (which move the point when ts_offset changes) and deletes.
fn cdc_source(events: u32) -> String {
    format!(
        "CREATE TABLE readings ({COLUMNS}) WITH ('connector' = 'datagen', 'changelog-mode' = 'all', \
         'changelog.key-space' = '40', 'changelog.delete-ratio' = '0.25', 'number-of-rows' = '{events}', {FIELDS});"
    )
}

/// The job body shared by both modes: device from a column (needing backticks), time from the key
/// and `ts_offset`, so most updates move their point. Small source batches make the changes of one
/// key span several flushes.
fn job(source: &str, url: &str, extra: &str) -> String {
    job_with_time(source, url, extra, "id * 1000 + ts_offset")
}

fn job_with_time(source: &str, url: &str, extra: &str, time: &str) -> String {
    format!(
        "SET 'datafusion.execution.batch_size' = '16';
{source}
CREATE TABLE iot (device STRING, ts BIGINT, temp DOUBLE, status STRING, level INT) WITH (
  'connector' = 'iotdb', 'url' = '{url}', 'user' = '{USER}', 'password' = '{PASSWORD}',
  'device' = 'root.plant.{{device}}', 'time-column' = 'ts',
  'sink.buffer-flush.max-rows' = '64'{extra}
);
CREATE TABLE changes (id BIGINT, ts_offset INT, temp DOUBLE, status STRING, level INT)
  WITH ('connector' = 'print', 'print-identifier' = 'src');
INSERT INTO iot SELECT CONCAT('line-', CAST(id % 4 AS STRING)), {time}, temp, status, level FROM readings;
INSERT INTO changes SELECT id, ts_offset, temp, status, level FROM readings;
"
    )
}

type Points = BTreeMap<(String, i64), BTreeMap<String, Val>>;

/// The source table after applying the printed changelog, mapped as the sink maps it.
fn expected_points(stdout: &str) -> (Points, usize) {
    expected_points_with(stdout, |id, offset| id * 1000 + offset)
}

fn expected_points_with(stdout: &str, time_of: impl Fn(i64, i64) -> i64) -> (Points, usize) {
    let mut table: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut changes = 0;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("src> ") else { continue };
        let (kind, values) = rest.split_at(2);
        let values: Vec<String> =
            values.trim_start_matches('[').trim_end_matches(']').split(", ").map(str::to_string).collect();
        let id: i64 = values[0].parse().unwrap();
        changes += 1;
        match kind {
            "+I" | "+U" => {
                table.insert(id, values);
            }
            "-D" => {
                table.remove(&id);
            }
            "-U" => {}
            other => panic!("unexpected row kind {other}"),
        }
    }
    let mut points = Points::new();
    for (id, v) in table {
        let device = format!("root.plant.`line-{}`", id % 4);
        let time = time_of(id, v[1].parse::<i64>().unwrap());
        let mut m = BTreeMap::new();
        if v[2] != "null" {
            m.insert("temp".to_string(), Val::Float(v[2].parse().unwrap()));
        }
        if v[3] != "null" {
            m.insert("status".to_string(), Val::Text(v[3].clone()));
        }
        if v[4] != "null" {
            m.insert("level".to_string(), Val::Int(v[4].parse().unwrap()));
        }
        points.insert((device, time), m);
    }
    (points, changes)
}

fn actual_points(iotdb: &IotdbEmulator) -> Points {
    let mut points = Points::new();
    for path in iotdb.device_paths() {
        let device = iotdb.device(&path).unwrap();
        for (name, series) in device.series {
            for (t, v) in series.points {
                points.entry((path.clone(), t)).or_default().insert(name.clone(), v);
            }
        }
    }
    points
}

fn assert_same(expected: &Points, actual: &Points) {
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .map(|(k, v)| (k, v, actual.get(k)))
        .take(5)
        .collect();
    let extra: Vec<_> = actual.iter().filter(|(k, _)| !expected.contains_key(*k)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && expected.len() == actual.len(),
        "IoTDB differs from the source: {} expected points, {} actual; (expected, actual) wrong or missing {missing:?}; extra {extra:?}",
        expected.len(),
        actual.len()
    );
}

#[test]
fn backfill_then_cdc_with_the_same_job_body() {
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    let (code, stdout, stderr) = run_job(&job(&backfill_source(300), &iotdb.url(), ""));
    assert_eq!(code, 0, "{stderr}");
    let (expected, changes) = expected_points(&stdout);
    assert_eq!(changes, 300);
    assert_eq!(expected.len(), 300);
    assert_same(&expected, &actual_points(&iotdb));
    // Batching: one insertTablet per device per flush (at most one flush per 16-row source
    // batch), not one per row.
    let tablets = iotdb.count("/rest/v2/insertTablet");
    assert!((4..=4 * 300usize.div_ceil(16)).contains(&tablets), "{tablets} insertTablet requests for 300 rows");
    // A bounded insert-only stream never deletes.
    assert_eq!(iotdb.count("/rest/v2/nonQuery"), 0);

    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    let (code, stdout, stderr) = run_job(&job(&cdc_source(600), &iotdb.url(), ""));
    assert_eq!(code, 0, "{stderr}");
    let (expected, changes) = expected_points(&stdout);
    assert!(changes > 600, "an update is two changes: {changes}");
    assert!(stdout.contains("src> -D[") && stdout.contains("src> -U["), "the changelog must hold deletes and updates");
    assert_same(&expected, &actual_points(&iotdb));
    assert!(iotdb.count("/rest/v2/nonQuery") > 0, "deletes and moved points must reach IoTDB as DELETE");
}

#[test]
fn in_place_updates_overwrite_and_clear_nulls() {
    // The time depends on the id only: every update rewrites its point, some set `status` NULL.
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    let (code, stdout, stderr) = run_job(&job_with_time(&cdc_source(600), &iotdb.url(), "", "id * 1000"));
    assert_eq!(code, 0, "{stderr}");
    let (expected, _) = expected_points_with(&stdout, |id, _| id * 1000);
    assert_same(&expected, &actual_points(&iotdb));
}

#[test]
fn example_mysql_job_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/mysql_to_iotdb.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |name: &str| Some(format!("<{name}>"));
    let statements = cdc_sql::sql::parse_script("mysql_to_iotdb.sql", &text, &env).unwrap();
    assert!(statements.len() >= 3, "{} statements", statements.len());
    assert!(text.contains("'connector' = 'iotdb'") && text.contains("'connector' = 'mysql-cdc'"));
}

#[test]
fn transient_failures_are_retried() {
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    iotdb.inject(Fault::Http(503));
    iotdb.inject(Fault::Drop);
    iotdb.inject(Fault::Code(606, "memory is not enough, write rejected".into()));
    let (code, stdout, stderr) = run_job(&job(&backfill_source(50), &iotdb.url(), ", 'sink.max-retries' = '5'"));
    assert_eq!(code, 0, "{stderr}");
    assert!(iotdb.state().faults.is_empty());
    assert_same(&expected_points(&stdout).0, &actual_points(&iotdb));
}

#[test]
fn wrong_password_is_a_clear_error() {
    let iotdb = IotdbEmulator::start(USER, "another");
    let (code, _, stderr) = run_job(&job(&backfill_source(5), &iotdb.url(), ""));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("authentication failed") && stderr.contains("801"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

#[test]
fn type_conflict_fails_the_job_and_names_the_series() {
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    // `level` exists as TEXT under every device the job writes.
    for line in 0..4 {
        let nodes = vec!["root".to_string(), "plant".to_string(), format!("line-{line}")];
        let mut state = iotdb.state();
        let device = state.devices.entry(nodes).or_default();
        device.series.insert("level".into(), emulator::Series { data_type: "TEXT".into(), points: BTreeMap::new() });
    }
    let (code, _, stderr) = run_job(&job(&backfill_source(20), &iotdb.url(), ""));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("data type conflict") && stderr.contains("507") && stderr.contains("level"), "{stderr}");
    // IoTDB wrote the request's other measurements: the error says so.
    assert!(stderr.contains("may have been written"), "{stderr}");
    let written = iotdb.device("root.plant.`line-1`").unwrap();
    assert!(!written.series["temp"].points.is_empty());
}

#[test]
fn null_device_value_names_the_row() {
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    let sql = format!(
        "CREATE TABLE src (site STRING, t BIGINT, v DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '50', \
           'seed' = '1', 'fields.site.null-rate' = '0.5', 'fields.t.kind' = 'sequence', 'fields.t.start' = '1', 'fields.t.end' = '50');
         CREATE TABLE iot (site STRING, t BIGINT, v DOUBLE) WITH ('connector' = 'iotdb', 'url' = '{}',
           'user' = '{USER}', 'password' = '{PASSWORD}', 'device' = 'root.sg.{{site}}', 'time-column' = 't');
         INSERT INTO iot SELECT * FROM src;",
        iotdb.url()
    );
    let (code, _, stderr) = run_job(&sql);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("`site` is NULL in the row (site=NULL, t="), "{stderr}");
}

#[test]
fn unreachable_server_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, stderr) =
        run_job(&job(&backfill_source(5), &format!("http://127.0.0.1:{port}"), ", 'sink.max-retries' = '1'"));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("failed after 2 attempts") && stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn table_model_writes_rows_and_deletes() {
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    let sql = format!(
        "{}
CREATE TABLE iot (region STRING, line STRING, ts BIGINT, temp DOUBLE, level INT) WITH (
  'connector' = 'iotdb', 'url' = '{}', 'user' = '{USER}', 'password' = '{PASSWORD}',
  'sql-dialect' = 'table', 'database' = 'plant', 'table' = 'readings',
  'tag-columns' = 'line', 'attribute-columns' = 'region', 'time-column' = 'ts',
  'measurements' = 'level:lvl'
);
CREATE TABLE changes (id BIGINT, ts_offset INT, temp DOUBLE, status STRING, level INT)
  WITH ('connector' = 'print', 'print-identifier' = 'src');
INSERT INTO iot SELECT 'north', CONCAT('line-', CAST(id % 4 AS STRING)), id * 1000 + ts_offset, temp, level FROM readings;
INSERT INTO changes SELECT id, ts_offset, temp, status, level FROM readings;
",
        cdc_source(300),
        iotdb.url()
    );
    let (code, stdout, stderr) = run_job(&sql);
    assert_eq!(code, 0, "{stderr}");
    let (expected, _) = expected_points(&stdout);
    let table = iotdb.table("plant", "readings").unwrap();
    assert_eq!(table.columns["line"].0, "TAG");
    assert_eq!(table.columns["region"].0, "ATTRIBUTE");
    assert_eq!(table.columns["lvl"], ("FIELD".to_string(), "INT32".to_string()));
    let mut actual = Points::new();
    for ((tags, time), fields) in &table.rows {
        let line = tags[0].clone().unwrap();
        let mut m = BTreeMap::new();
        for (k, v) in fields {
            m.insert(if k == "lvl" { "level".to_string() } else { k.clone() }, v.clone());
        }
        actual.insert((format!("root.plant.`{line}`"), *time), m);
    }
    let expected: Points = expected
        .into_iter()
        .map(|(k, mut v)| {
            v.remove("status");
            (k, v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_same(&expected, &actual);
    assert!(iotdb.count("/rest/table/v1/nonQuery") > 0);
    assert_eq!(table.attributes.values().next().unwrap()["region"], Val::Text("north".into()));
}

/// The emulator itself keeps to IoTDB's rules (so the tests above can fail).
mod emulator_rules {
    use super::*;
    use serde_json::{json, Value};

    fn post(url: &str, path: &str, auth: Option<(&str, &str)>, body: Value) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new().post(format!("{url}{path}")).body(body.to_string());
            if let Some((u, p)) = auth {
                req = req.basic_auth(u, Some(p));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null))
        })
    }

    #[test]
    fn auth_codes() {
        let iotdb = IotdbEmulator::start(USER, PASSWORD);
        let body = json!({"sql": "DELETE FROM root.sg.d1.* WHERE time = 1"});
        assert_eq!(post(&iotdb.url(), "/rest/v2/nonQuery", None, body.clone()).1["code"], 800);
        let (http, v) = post(&iotdb.url(), "/rest/v2/nonQuery", Some((USER, "nope")), body.clone());
        assert_eq!((http, v["code"].as_i64()), (401, Some(801)));
        assert_eq!(post(&iotdb.url(), "/rest/v2/nonQuery", Some((USER, PASSWORD)), body).1["code"], 200);
    }

    #[test]
    fn tablets_conflicts_deletes_and_queries() {
        let iotdb = IotdbEmulator::start(USER, PASSWORD);
        let url = iotdb.url();
        let auth = Some((USER, PASSWORD));
        let tablet = json!({"device": "root.sg.`d-1`", "is_aligned": false, "timestamps": [1, 2, 3],
            "measurements": ["s1", "s2"], "data_types": ["INT64", "TEXT"],
            "values": [[10, null, 30], ["a", "b", "c"]]});
        assert_eq!(post(&url, "/rest/v2/insertTablet", auth, tablet).1["code"], 200);
        // s1 is INT64 now: a DOUBLE write conflicts (507), s2 is still written.
        let conflict = json!({"device": "root.sg.`d-1`", "is_aligned": false, "timestamps": [2],
            "measurements": ["s1", "s2"], "data_types": ["DOUBLE", "TEXT"], "values": [[2.5], ["B"]]});
        assert_eq!(post(&url, "/rest/v2/insertTablet", auth, conflict).1["code"], 507);
        let d = iotdb.device("root.sg.`d-1`").unwrap();
        assert_eq!(d.series["s2"].points[&2], Val::Text("B".into()));
        assert_eq!(d.series["s1"].points.get(&2), None);
        // Unquoted illegal node.
        let bad = json!({"device": "root.sg.d-1", "is_aligned": false, "timestamps": [1],
            "measurements": ["s1"], "data_types": ["INT64"], "values": [[1]]});
        assert_eq!(post(&url, "/rest/v2/insertTablet", auth, bad).1["code"], 509);
        let or = json!({"sql": "DELETE FROM root.sg.`d-1`.* WHERE time = 1 OR time = 3"});
        assert_eq!(post(&url, "/rest/v2/nonQuery", auth, or).1["code"], 701);
        let delete = json!({"sql": "DELETE FROM root.sg.`d-1`.* WHERE time >= 1 AND time <= 1"});
        assert_eq!(post(&url, "/rest/v2/nonQuery", auth, delete).1["code"], 200);
        let (_, q) = post(&url, "/rest/v2/query", auth, json!({"sql": "SELECT * FROM root.sg.`d-1`"}));
        assert_eq!(q["timestamps"], json!([2, 3]));
        assert_eq!(q["values"], json!([[null, 30], ["B", "c"]]));
        assert_eq!(q["expressions"], json!(["root.sg.`d-1`.s1", "root.sg.`d-1`.s2"]));
    }
}

#[test]
fn types_map_as_documented() {
    let iotdb = IotdbEmulator::start(USER, PASSWORD);
    let sql = format!(
        "CREATE TABLE src (ts TIMESTAMP(6), b BOOLEAN, small SMALLINT, u INT UNSIGNED, big BIGINT UNSIGNED,
           f FLOAT, d DOUBLE, price DECIMAL(10, 2), day DATE, seen TIMESTAMP_LTZ(3), note STRING)
         WITH ('connector' = 'datagen', 'number-of-rows' = '20', 'seed' = '3',
           'fields.big.min' = '0', 'fields.big.max' = '1000000', 'fields.day.max-past' = '3650 d',
           'fields.ts.max-past' = '1 h');
         CREATE TABLE iot (ts TIMESTAMP(6), b BOOLEAN, small SMALLINT, u INT UNSIGNED, big BIGINT UNSIGNED,
           f FLOAT, d DOUBLE, price DECIMAL(10, 2), day DATE, seen TIMESTAMP_LTZ(3), note STRING)
         WITH ('connector' = 'iotdb', 'url' = '{}', 'user' = '{USER}', 'password' = '{PASSWORD}',
           'device' = 'root.types.`all`', 'time-column' = 'ts', 'time-precision' = 'us', 'aligned' = 'true',
           'decimal-mapping' = 'text');
         INSERT INTO iot SELECT * FROM src;",
        iotdb.url()
    );
    let (code, _, stderr) = run_job(&sql);
    assert_eq!(code, 0, "{stderr}");
    let device = iotdb.device("root.types.`all`").unwrap();
    assert!(device.aligned);
    let types: BTreeMap<&str, &str> = device.series.iter().map(|(k, s)| (k.as_str(), s.data_type.as_str())).collect();
    let expected: BTreeMap<&str, &str> = [
        ("b", "BOOLEAN"),
        ("small", "INT32"),
        ("u", "INT64"),
        ("big", "INT64"),
        ("f", "FLOAT"),
        ("d", "DOUBLE"),
        ("price", "TEXT"),
        ("day", "DATE"),
        ("seen", "TIMESTAMP"),
        ("note", "TEXT"),
    ]
    .into_iter()
    .collect();
    assert_eq!(types, expected);
    let prices = &device.series["price"].points;
    assert_eq!(prices.len(), 20);
    assert!(prices.values().all(|v| matches!(v, Val::Text(t) if t.contains('.'))), "{prices:?}");
    // Microsecond time column in 'us' precision: 20 distinct points.
    assert_eq!(device.series["d"].points.len(), 20);
}

// ---- MySQL → IoTDB: the example job file with the real mysql-cdc source ----------------------

mod mysql_to_iotdb {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use cdc_sql_testkit::Database;

    use super::emulator::{display_path, IotdbEmulator, Val};
    use super::{actual_points, assert_same, Points, PASSWORD};

    const DEADLINE: Duration = Duration::from_secs(120);

    /// A running `cdc-sql -f job.sql`, its output in files of its temporary directory.
    struct Job {
        child: Child,
        dir: tempfile::TempDir,
    }

    impl Job {
        /// The example job file, pointed at the test servers (connection settings only), in
        /// `mode`: the same file for the backfill and for CDC.
        fn start_example(db: &Database, iotdb: &IotdbEmulator, mode: &str) -> Job {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/mysql_to_iotdb.sql");
            let mut sql = std::fs::read_to_string(path).unwrap();
            let c = db.connection();
            for (from, to) in [
                ("'port' = '3306'".to_string(), format!("'port' = '{}'", c.port)),
                ("'username' = 'cdc'".to_string(), format!("'username' = '{}'", c.user)),
                ("'database-name' = 'factory'".to_string(), format!("'database-name' = '{}'", db.name())),
                ("'scan.startup.mode' = 'initial'".to_string(), format!("'scan.startup.mode' = '{mode}'")),
                ("'url' = 'http://${IOTDB_HOST}:18080'".to_string(), format!("'url' = '{}'", iotdb.url())),
            ] {
                assert!(sql.contains(&from), "the example job no longer contains {from}");
                sql = sql.replace(&from, &to);
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("job.sql"), &sql).unwrap();
            let file = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
                .current_dir(dir.path())
                .args(["-f", "job.sql"])
                .env("MYSQL_HOST", &c.host)
                .env("MYSQL_PASSWORD", &c.password)
                .env("IOTDB_PASSWORD", PASSWORD)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::from(file("stdout")))
                .stderr(Stdio::from(file("stderr")))
                .spawn()
                .unwrap();
            Job { child, dir }
        }

        fn stderr(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
        }

        /// Waits for the job to end on its own; its exit code.
        fn wait_exit(mut self) -> (i32, String) {
            let start = Instant::now();
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return (status.code().unwrap_or(-1), self.stderr());
                }
                if start.elapsed() > DEADLINE {
                    let _ = self.child.kill();
                    panic!("the snapshot job did not end; stderr:\n{}", self.stderr());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Polls until IoTDB holds exactly `expected`, failing early if the job exits.
        fn wait_for(&mut self, iotdb: &IotdbEmulator, expected: &Points, what: &str) {
            let start = Instant::now();
            loop {
                let actual = actual_points(iotdb);
                if &actual == expected {
                    return;
                }
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("the CDC job exited ({status}) before {what}; stderr:\n{}", self.stderr());
                }
                if start.elapsed() > DEADLINE {
                    eprintln!("stderr of the job:\n{}", self.stderr());
                    assert_same(expected, &actual);
                    panic!("IoTDB did not reach {what}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        fn stop(mut self) {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }

    /// The MySQL table mapped as the example maps it: device `root.factory.<device_id>`, time the
    /// DATETIME's epoch milliseconds (read as UTC), `temperature` as DOUBLE measurement `temp`.
    fn points_of(db: &Database) -> Points {
        let rows = db.query_opt(
            "SELECT device_id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', created_at) DIV 1000, \
                    temperature, humidity, status FROM sensor_readings",
        );
        let mut points = Points::new();
        for row in rows {
            let device = display_path(&["root".into(), "factory".into(), row[0].clone().unwrap()]);
            let time: i64 = row[1].as_deref().unwrap().parse().unwrap();
            let mut values = std::collections::BTreeMap::new();
            if let Some(t) = &row[2] {
                values.insert("temp".to_string(), Val::Float(t.parse().unwrap()));
            }
            if let Some(h) = &row[3] {
                values.insert("humidity".to_string(), Val::Float(h.parse().unwrap()));
            }
            if let Some(s) = &row[4] {
                values.insert("status".to_string(), Val::Text(s.clone()));
            }
            // IoTDB has no point without a value: a row whose measurements are all NULL leaves none.
            if values.is_empty() {
                continue;
            }
            let previous = points.insert((device, time), values);
            assert!(previous.is_none(), "the test data maps two rows to one point");
        }
        points
    }

    fn point_of(db: &Database, id: i64) -> (String, i64) {
        let row = db.query(&format!(
            "SELECT device_id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', created_at) DIV 1000 \
             FROM sensor_readings WHERE id = {id}"
        ));
        (display_path(&["root".into(), "factory".into(), row[0][0].clone()]), row[0][1].parse().unwrap())
    }

    #[test]
    fn example_job_backfills_with_snapshot_then_follows_with_initial() {
        let db = cdc_sql_testkit::mariadb().create_database("factory");
        db.exec(
            "CREATE TABLE sensor_readings (
                id BIGINT PRIMARY KEY, device_id VARCHAR(32) NOT NULL, created_at DATETIME(3) NOT NULL,
                temperature DECIMAL(6, 2), humidity DOUBLE, status VARCHAR(16));
             INSERT INTO sensor_readings
             SELECT seq, ELT(1 + seq % 4, 'line-1', 'press_2', '7', 'oven A'),
                    TIMESTAMP('2024-03-01 00:00:00') + INTERVAL seq * 1001000 MICROSECOND,
                    IF(seq % 7 = 0, NULL, (seq % 400) / 4 - 50),
                    IF(seq % 5 = 0, NULL, seq / 2),
                    IF(seq % 3 = 0, NULL, CONCAT('s', seq % 11))
             FROM seq_1_to_600",
        );
        let iotdb = IotdbEmulator::start("root", PASSWORD);

        // 1. Backfill: the job copies the table and ends; every row is a point.
        let (code, stderr) = Job::start_example(&db, &iotdb, "snapshot").wait_exit();
        assert_eq!(code, 0, "{stderr}");
        let backfilled = points_of(&db);
        assert_eq!(backfilled.len(), 600 - 5, "every row but the five without any measurement is a point");
        assert_same(&backfilled, &actual_points(&iotdb));
        assert_eq!(iotdb.count("/rest/v2/nonQuery"), 0, "a backfill deletes nothing");

        // 2. The same file with 'initial': it snapshots again (rewriting the same points) and
        //    follows the binlog while the table changes under it.
        let moved_in_time = point_of(&db, 70);
        let moved_device = point_of(&db, 80);
        let deleted = point_of(&db, 45);
        let written_before = iotdb.count("/rest/v2/insertTablet");
        let mut job = Job::start_example(&db, &iotdb, "initial");
        let start = Instant::now();
        while iotdb.count("/rest/v2/insertTablet") == written_before {
            assert!(start.elapsed() < DEADLINE, "the initial snapshot never reached IoTDB: {}", job.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        job.wait_for(&iotdb, &backfilled, "the re-snapshot");
        db.exec(
            "INSERT INTO sensor_readings VALUES
                (601, 'line-1', '2024-04-01 10:00:00.123', 21.50, 40.25, 'new'),
                (602, 'oven A', '2024-04-01 10:00:01.000', NULL, NULL, NULL),
                (603, 'time', '2024-04-01 10:00:02.500', -3.75, 1e-3, 'reserved'),
                (604, 'zone.3', '2024-04-01 10:00:03.000', 5.50, 6.5, 'dotted')",
        );
        // Updates overwrite in place; NULLs must clear the old values.
        db.exec("UPDATE sensor_readings SET temperature = temperature + 1, humidity = 99.5 WHERE id BETWEEN 10 AND 30");
        db.exec("UPDATE sensor_readings SET status = NULL, temperature = NULL WHERE id BETWEEN 31 AND 35");
        db.exec("DELETE FROM sensor_readings WHERE id BETWEEN 40 AND 60");
        // Changes of the point's key move it: the old point must go.
        db.exec("UPDATE sensor_readings SET created_at = created_at + INTERVAL 1 HOUR WHERE id BETWEEN 70 AND 75");
        db.exec("UPDATE sensor_readings SET device_id = 'moved-1' WHERE id BETWEEN 80 AND 85");
        db.exec("UPDATE sensor_readings SET created_at = created_at + INTERVAL 1 SECOND WHERE id = 604");
        // A new primary key for the same point keeps the point.
        db.exec("UPDATE sensor_readings SET id = id + 10000, status = 'renumbered' WHERE id BETWEEN 90 AND 92");
        db.exec(
            "START TRANSACTION;
             INSERT INTO sensor_readings VALUES (700, 'press_2', '2024-04-02 00:00:00.000', 1.00, 2, 'tx');
             UPDATE sensor_readings SET status = 'tx2', device_id = 'line-1' WHERE id = 700;
             DELETE FROM sensor_readings WHERE id = 601;
             COMMIT",
        );
        let expected = points_of(&db);
        job.wait_for(&iotdb, &expected, "the MySQL table after the changes");
        job.stop();

        for (point, what) in [
            (&deleted, "deleted row"),
            (&moved_in_time, "row moved in time"),
            (&moved_device, "row moved to another device"),
        ] {
            assert!(!actual_points(&iotdb).contains_key(point), "the point of the {what} is still in IoTDB: {point:?}");
        }
        assert!(expected.len() > 560 && expected.len() < 595, "{} points", expected.len());
        assert!(iotdb.count("/rest/v2/nonQuery") > 0, "deletes reach IoTDB as DELETE statements");
    }
}
