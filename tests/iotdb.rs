//! The `iotdb` sink end to end: job files run by the real binary against the IoTDB REST emulator
//! (`tests/emulators/iotdb.rs`). The backfill and the CDC run use the same sink table and INSERT;
//! only the source differs (datagen bounded vs datagen changelog, standing in for
//! `mysql-cdc` with `scan.startup.mode` = 'snapshot' vs 'initial'). Each job also prints the
//! source changelog, from which the expected IoTDB content is computed and compared point by point.

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
    // Batching: one insertTablet per device per flush, not one per row.
    let tablets = iotdb.count("/rest/v2/insertTablet");
    assert!((4..300 / 4).contains(&tablets), "{tablets} insertTablet requests for 300 rows");
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
