//! Operations through the real binary: the REST API compared with Flink's documented shapes, the
//! Prometheus endpoint scraped during a running job, the dashboard rendered by headless Chromium,
//! stopping over REST, port conflicts, and the status output on a terminal and off it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

fn streaming_job(name: &str, state_dir: &Path) -> String {
    format!(
        "SET 'pipeline.name' = '{name}';
         SET 'execution.checkpointing.interval' = '200ms';
         SET 'state.checkpoints.dir' = '{}';
         CREATE TABLE src (id BIGINT, v INT) WITH ('connector' = 'datagen', 'rows-per-second' = '2000');
         CREATE TABLE out (id BIGINT, v INT) WITH ('connector' = 'blackhole');
         INSERT INTO out SELECT id, v FROM src;",
        state_dir.display()
    )
}

/// A running `cdc-sql` whose stderr is collected in the background.
struct Job {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Job {
    fn start(sql: &str, args: &[&str]) -> Job {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .args(args)
            .arg("-e")
            .arg(sql)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Job { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The port from the "REST API … on http://127.0.0.1:PORT/" log line.
    fn port(&mut self) -> u16 {
        let found = poll(|| {
            let text = self.stderr();
            let rest = text.split("on http://127.0.0.1:").nth(1)?;
            rest.split('/').next()?.parse::<u16>().ok()
        });
        found.unwrap_or_else(|| panic!("no REST address logged: {}", self.stderr()))
    }

    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the job did not end: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it gives a value or the deadline passes.
fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, head, body) = request(port, "GET", path, "");
    assert_eq!(status, 200, "{path}: {body}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

/// Checks that `value` has every `(field, type)` of Flink's documented schema.
fn assert_shape(what: &str, value: &Value, fields: &[(&str, &str)]) {
    for (field, kind) in fields {
        let v = value.get(field).unwrap_or_else(|| panic!("{what} lacks `{field}`: {value}"));
        let ok = match *kind {
            "int" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "bool" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string?" => v.is_string() || v.is_null(),
            "int?" => v.is_i64() || v.is_u64() || v.is_null(),
            "object?" => v.is_object() || v.is_null(),
            other => panic!("unknown kind {other}"),
        };
        assert!(ok, "{what}.{field} should be {kind}: {v}");
    }
}

const JOB_STATES: &[&str] = &["INITIALIZING", "RUNNING", "RESTARTING", "FINISHED", "FAILED", "CANCELED"];
const SUMMARY: &[(&str, &str)] = &[
    ("min", "int"),
    ("max", "int"),
    ("avg", "int"),
    ("p50", "number"),
    ("p90", "number"),
    ("p95", "number"),
    ("p99", "number"),
    ("p999", "number"),
];

#[test]
fn rest_api_answers_in_flinks_shapes_and_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(&streaming_job("rest-shapes", dir.path()), &["--http-addr", "127.0.0.1:0"]);
    let port = job.port();

    let overview = get_json(port, "/overview");
    assert_shape(
        "overview",
        &overview,
        &[
            ("taskmanagers", "int"),
            ("slots-total", "int"),
            ("slots-available", "int"),
            ("jobs-running", "int"),
            ("jobs-finished", "int"),
            ("jobs-cancelled", "int"),
            ("jobs-failed", "int"),
            ("flink-version", "string"),
        ],
    );

    let jobs = get_json(port, "/jobs/overview");
    let entry = &jobs["jobs"][0];
    assert_shape(
        "jobs[]",
        entry,
        &[
            ("jid", "string"),
            ("name", "string"),
            ("state", "string"),
            ("start-time", "int"),
            ("end-time", "int"),
            ("duration", "int"),
            ("last-modification", "int"),
            ("tasks", "object"),
        ],
    );
    assert_eq!(entry["name"], "rest-shapes");
    assert_eq!(entry["end-time"], -1, "a running job has no end time in Flink");
    assert!(JOB_STATES.contains(&entry["state"].as_str().unwrap()));
    for key in [
        "running",
        "canceling",
        "canceled",
        "total",
        "created",
        "scheduled",
        "deploying",
        "reconciling",
        "finished",
        "initializing",
        "failed",
    ] {
        assert!(entry["tasks"][key].is_u64(), "tasks.{key}: {entry}");
    }
    let jid = entry["jid"].as_str().unwrap().to_string();
    assert!(jid.len() == 32 && jid.chars().all(|c| c.is_ascii_hexdigit()), "{jid}");
    assert_eq!(get_json(port, "/v1/jobs/overview")["jobs"][0]["jid"], jid.as_str(), "Flink's /v1 prefix");

    // Wait until rows flowed and a checkpoint completed, then read the details.
    let checkpoints = poll(|| {
        let c = get_json(port, &format!("/jobs/{jid}/checkpoints"));
        (c["counts"]["completed"].as_u64()? >= 2).then_some(c)
    })
    .expect("no checkpoint completed");
    assert_shape(
        "checkpoints.counts",
        &checkpoints["counts"],
        &[("restored", "int"), ("total", "int"), ("in_progress", "int"), ("completed", "int"), ("failed", "int")],
    );
    for key in [
        "checkpointed_size",
        "state_size",
        "end_to_end_duration",
        "alignment_buffered",
        "processed_data",
        "persisted_data",
    ] {
        assert_shape(&format!("checkpoints.summary.{key}"), &checkpoints["summary"][key], SUMMARY);
    }
    assert_shape(
        "checkpoints.latest",
        &checkpoints["latest"],
        &[("completed", "object"), ("savepoint", "object?"), ("failed", "object?"), ("restored", "object?")],
    );
    let completed = &checkpoints["latest"]["completed"];
    assert_shape(
        "latest.completed",
        completed,
        &[
            ("className", "string"),
            ("id", "int"),
            ("status", "string"),
            ("is_savepoint", "bool"),
            ("trigger_timestamp", "int"),
            ("latest_ack_timestamp", "int"),
            ("checkpointed_size", "int"),
            ("state_size", "int"),
            ("end_to_end_duration", "int"),
            ("alignment_buffered", "int"),
            ("processed_data", "int"),
            ("persisted_data", "int"),
            ("num_subtasks", "int"),
            ("num_acknowledged_subtasks", "int"),
            ("checkpoint_type", "string"),
            ("tasks", "object"),
            ("external_path", "string"),
            ("discarded", "bool"),
        ],
    );
    assert_eq!((completed["className"].as_str(), completed["status"].as_str()), (Some("completed"), Some("COMPLETED")));
    let stored = completed["external_path"].as_str().unwrap();
    assert!(Path::new(stored).starts_with(dir.path()), "{stored}");
    let history = checkpoints["history"].as_array().unwrap();
    assert!(!history.is_empty() && history.len() <= 10);
    assert!(history[0]["id"].as_u64() >= history[history.len() - 1]["id"].as_u64(), "newest first");

    let details = poll(|| {
        let d = get_json(port, &format!("/jobs/{jid}"));
        (d["vertices"][0]["metrics"]["write-records"].as_u64()? > 0).then_some(d)
    })
    .expect("no rows written");
    assert_shape(
        "job",
        &details,
        &[
            ("jid", "string"),
            ("name", "string"),
            ("isStoppable", "bool"),
            ("state", "string"),
            ("start-time", "int"),
            ("end-time", "int"),
            ("duration", "int"),
            ("now", "int"),
            ("timestamps", "object"),
            ("vertices", "array"),
            ("status-counts", "object"),
            ("plan", "object"),
        ],
    );
    assert_eq!(details["state"], "RUNNING");
    assert!(details["timestamps"]["RUNNING"].as_i64().unwrap() > 0);
    let vertex = &details["vertices"][0];
    assert_shape(
        "vertex",
        vertex,
        &[
            ("id", "string"),
            ("name", "string"),
            ("parallelism", "int"),
            ("status", "string"),
            ("start-time", "int"),
            ("end-time", "int"),
            ("duration", "int"),
            ("tasks", "object"),
            ("metrics", "object"),
        ],
    );
    assert_eq!(vertex["name"], "INSERT INTO out");
    assert_shape(
        "vertex.metrics",
        &vertex["metrics"],
        &[
            ("read-bytes", "int"),
            ("read-bytes-complete", "bool"),
            ("write-bytes", "int"),
            ("write-bytes-complete", "bool"),
            ("read-records", "int"),
            ("read-records-complete", "bool"),
            ("write-records", "int"),
            ("write-records-complete", "bool"),
        ],
    );
    assert_eq!(vertex["tasks"]["RUNNING"], 1);

    let exceptions = get_json(port, &format!("/jobs/{jid}/exceptions"));
    assert_shape(
        "exceptions",
        &exceptions,
        &[("root-exception", "string?"), ("timestamp", "int?"), ("all-exceptions", "array"), ("truncated", "bool")],
    );
    assert!(exceptions["exceptionHistory"]["entries"].as_array().unwrap().is_empty());

    let (status, _, body) = request(port, "GET", "/jobs/00000000000000000000000000000000", "");
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["errors"][0].is_string(), "{body}");

    let (status, _, body) = request(port, "POST", &format!("/jobs/{jid}/stop"), r#"{"drain": false}"#);
    assert_eq!(status, 202, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["request-id"].is_string());
    assert_eq!(job.wait(), 0, "stop ends the job cleanly: {}", job.stderr());
    let stored: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
    assert!(!stored.is_empty(), "the final checkpoint is stored");
    assert!(job.stderr().contains("rows written"), "{}", job.stderr());
}

/// Parses Prometheus text into (series, value), checking every line's syntax.
fn scrape(port: u16) -> Vec<(String, f64)> {
    let (status, head, body) = request(port, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.insert(parts.next().unwrap().to_string());
            assert!(matches!(parts.next(), Some("counter" | "gauge")), "{line}");
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "{name} has no # TYPE line");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        samples.push((series.to_string(), value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}"))));
    }
    samples
}

fn value(samples: &[(String, f64)], prefix: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s.starts_with(prefix)).map(|(_, v)| *v)
}

#[test]
fn prometheus_counters_increase_while_the_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(&streaming_job("scraped", dir.path()), &["--http-addr", "127.0.0.1:0"]);
    let port = job.port();
    let records_in = r#"cdc_sql_numRecordsIn{job="scraped",pipeline="INSERT INTO out",table="src"}"#;
    let records_out = r#"cdc_sql_numRecordsOut{job="scraped",pipeline="INSERT INTO out",table="out"}"#;
    let first = poll(|| {
        let s = scrape(port);
        (value(&s, records_in)? > 0.0 && value(&s, "cdc_sql_numberOfCompletedCheckpoints")? > 0.0).then_some(s)
    })
    .expect("no rows or checkpoints");
    let later = poll(|| {
        let s = scrape(port);
        (value(&s, records_in)? > value(&first, records_in)?
            && value(&s, "cdc_sql_numberOfCompletedCheckpoints")?
                > value(&first, "cdc_sql_numberOfCompletedCheckpoints")?)
        .then_some(s)
    })
    .expect("counters did not increase");
    assert!(value(&later, records_out).unwrap() >= value(&first, records_out).unwrap());
    assert_eq!(value(&later, r#"cdc_sql_job_state{job="scraped",state="RUNNING"}"#), Some(1.0));
    assert_eq!(value(&later, r#"cdc_sql_job_state{job="scraped",state="FAILED"}"#), Some(0.0));
    for name in [
        "cdc_sql_numRestarts",
        "cdc_sql_lastCheckpointDuration",
        "cdc_sql_lastCompletedCheckpointAge",
        "cdc_sql_currentEmitEventTimeLag",
        "cdc_sql_currentFetchEventTimeLag",
        "cdc_sql_sourceEvents",
        "cdc_sql_numBytesIn",
        "cdc_sql_numErrors",
    ] {
        assert!(value(&later, name).is_some(), "{name} missing");
    }
    let _ =
        request(port, "PATCH", &format!("/jobs/{}", get_json(port, "/jobs")["jobs"][0]["id"].as_str().unwrap()), "");
    assert_eq!(job.wait(), 0);
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| {
        Command::new(b).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

#[test]
fn dashboard_renders_a_running_job_in_headless_chromium() {
    let Some(browser) = chromium() else {
        // CI runs scripts/test, which installs chromium: a missing browser there is a failure.
        assert!(std::env::var_os("CI").is_none(), "no chromium installed; scripts/test installs it");
        eprintln!("SKIPPED: no chromium installed (scripts/test installs it: apt-get install -y chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(&streaming_job("dashboard-demo", dir.path()), &["--http-addr", "127.0.0.1:0"]);
    let port = job.port();
    poll(|| (get_json(port, "/jobs/overview")["jobs"][0]["state"] == "RUNNING").then_some(())).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let dom = poll(|| {
        let out = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=6000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout).to_string();
        let canvas = dom.split(r#"<canvas id="throughput""#).nth(1)?.split('>').next()?.to_string();
        let points: u64 = canvas.split(r#"data-points=""#).nth(1)?.split('"').next()?.parse().ok()?;
        let charted = points > 0;
        (dom.contains(r#"<span id="job-state" class="state RUNNING">RUNNING</span>"#) && charted).then_some(dom)
    })
    .unwrap_or_else(|| panic!("the dashboard never showed the running job"));
    assert!(dom.contains(r#"<h1 id="job-name">dashboard-demo</h1>"#), "{dom}");
    let rows = dom.split(r#"<b id="rows-written">"#).nth(1).and_then(|r| r.split('<').next()).unwrap();
    let rows: u64 = rows.replace(',', "").parse().unwrap_or_else(|_| panic!("rows {rows:?}"));
    assert!(rows > 0, "{dom}");
    assert!(dom.contains("<td>INSERT INTO out</td>"), "the pipeline table lists the INSERT: {dom}");
    assert!(dom.contains("events="), "the source position is shown: {dom}");
    let _ = request(
        port,
        "POST",
        &format!("/jobs/{}/stop", get_json(port, "/jobs")["jobs"][0]["id"].as_str().unwrap()),
        "",
    );
    assert_eq!(job.wait(), 0);
}

#[test]
fn a_taken_port_fails_naming_the_option() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let sql = "CREATE TABLE s (n INT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
               CREATE TABLE o (n INT) WITH ('connector' = 'blackhole'); INSERT INTO o SELECT n FROM s;";
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .args(["--http-addr", &format!("127.0.0.1:{port}"), "-e", sql])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already in use") && stderr.contains("--http-addr") && stderr.contains("--no-http"),
        "{stderr}"
    );

    let with_set = format!("SET 'rest.port' = '{port}'; {sql}");
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .env_remove("CDC_SQL_HTTP_ADDR")
        .args(["-e", &with_set])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("'rest.port'"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .env_remove("CDC_SQL_HTTP_ADDR")
        .args(["--no-http", "-e", &with_set])
        .output()
        .unwrap();
    assert!(out.status.success(), "--no-http serves nothing: {}", String::from_utf8_lossy(&out.stderr));
    drop(taken);
}

#[test]
fn set_rest_keys_choose_the_address() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'rest.address' = '127.0.0.1'; SET 'rest.port' = '{port}'; {}",
        streaming_job("set-port", dir.path())
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .env_remove("CDC_SQL_HTTP_ADDR")
        .env("RUST_LOG", "warn")
        .args(["-e", &sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = poll(|| {
        TcpStream::connect(("127.0.0.1", port)).ok()?;
        get_json(port, "/jobs/overview")["jobs"][0]["name"].as_str().map(String::from)
    });
    let id = get_json(port, "/jobs")["jobs"][0]["id"].as_str().unwrap().to_string();
    let _ = request(port, "POST", &format!("/jobs/{id}/stop"), "");
    let status = child.wait().unwrap();
    assert_eq!(name.as_deref(), Some("set-port"));
    assert!(status.success());

    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql")).args(["-e", "SET 'rest.port' = 'eighty';"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'rest.port' = 'eighty' is not a port"));
}

const BOUNDED: &str =
    "CREATE TABLE s (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2500', 'rows-per-second' = '1000');
    CREATE TABLE o (n BIGINT) WITH ('connector' = 'blackhole'); INSERT INTO o SELECT n FROM s;";

#[test]
fn a_terminal_gets_a_live_status_line() {
    let command = format!("{} --no-http -e \"{}\"", env!("CARGO_BIN_EXE_cdc-sql"), BOUNDED.replace('\n', " "));
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\r\x1b[2KRUNNING · "), "no redrawn status line: {text:?}");
    assert!(text.contains(" rows read · ") && text.contains(" rows/s"), "{text:?}");
    assert!(
        text.contains("events ") && text.contains("/2,500 ") && text.contains(" ETA "),
        "bounded progress: {text:?}"
    );
}

#[test]
fn without_a_terminal_status_goes_to_plain_or_json_log_lines() {
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .args(["--status-interval", "300ms", "-e", BOUNDED])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no terminal escapes off a terminal: {stderr:?}");
    let status: Vec<&str> = stderr.lines().filter(|l| l.contains("cdc_sql::status")).collect();
    assert!(status.len() >= 2, "{stderr}");
    assert!(status.iter().all(|l| l.contains(" INFO ") && l.contains("rows read")), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .args(["--log-format", "json", "--status-interval", "300ms", "-e", BOUNDED])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.iter().any(|e| e["target"] == "cdc_sql::status" && e["message"].as_str().is_some_and(|m| m.contains("rows read"))), "{stderr}");
    assert!(events.iter().all(|e| e["level"].is_string() && e["timestamp"].is_string()), "{stderr}");
}

#[test]
fn a_secret_never_appears_in_errors_or_logs() {
    let secret = "Zq9-never-print-me";
    let sql = format!("CREATE TABLE s (n INT) WITH ('connector' = 'datagen', 'password' = '{secret}');");
    for format in ["text", "json"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .args(["--log-format", format, "-e", &sql])
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(all.contains("password") && !all.contains(secret), "{all}");
    }
}
