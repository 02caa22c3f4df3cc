//! An Apache IoTDB REST service emulator (API v2 tree model and table model v1), written from
//! IoTDB's REST docs and `iotdb-core/datanode/.../protocol/rest` so the `iotdb` sink can be tested
//! without a server. It serves HTTP/1.1 on 127.0.0.1 with a random port, in its own thread.
//!
//! Faithful to: Basic auth on everything but `/ping` (missing header: HTTP 401 code 800; wrong
//! credentials: HTTP 401 code 801; a header that does not split into exactly two non-empty parts
//! on ':': HTTP 400 code 303); answers as HTTP 200 `{"code","message"}`; path syntax (nodes outside
//! `[A-Za-z0-9_]`, numbers and reserved words need backticks, `` ` `` doubled inside; illegal
//! paths give 509); insertTablet value rules per data type (INT32/DATE must be JSON integers in
//! range, FLOAT/DOUBLE parsed from the value's text so "NaN" works, BOOLEAN true/false/1/0);
//! schema auto-creation where the first write fixes a series' type and a conflicting measurement
//! gives 507 while the request's other measurements are still written; last write wins per series
//! and timestamp; NULL = no value written; `DELETE FROM p1, p2 WHERE time …` with only AND-ed time
//! comparisons (OR gives 701); `SELECT * FROM <device>` with column-major results; table model
//! insertTablet (row-major, TAG/ATTRIBUTE/FIELD) and `DELETE FROM t WHERE time = … AND tag = '…'`.
//! Faults can be queued: an HTTP status, an IoTDB code, or a dropped connection.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Series {
    pub data_type: String,
    pub points: BTreeMap<i64, Val>,
}

#[derive(Debug, Clone, Default)]
pub struct Device {
    pub aligned: bool,
    pub series: BTreeMap<String, Series>,
}

/// A table-model row key: tag values (in [`Table::tags`] order) and time.
pub type RowKey = (Vec<Option<String>>, i64);

#[derive(Debug, Clone, Default)]
pub struct Table {
    /// TAG columns in the order they were first written; row keys hold tag values in this order.
    pub tags: Vec<String>,
    /// name → (category, data type)
    pub columns: BTreeMap<String, (String, String)>,
    /// (tag values, time) → field values
    pub rows: BTreeMap<RowKey, BTreeMap<String, Val>>,
    /// tag values → attribute values
    pub attributes: BTreeMap<Vec<Option<String>>, BTreeMap<String, Val>>,
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and a non-JSON body, as a proxy in front of IoTDB would.
    Http(u16),
    /// Answer HTTP 200 with this IoTDB status code.
    Code(i64, String),
    /// Close the connection without answering.
    Drop,
}

#[derive(Default)]
pub struct State {
    pub devices: BTreeMap<Vec<String>, Device>,
    pub tables: BTreeMap<(String, String), Table>,
    pub faults: VecDeque<Fault>,
    /// (endpoint, body) of every authenticated request, in arrival order.
    pub requests: Vec<(String, String)>,
    user: String,
    password: String,
}

pub struct IotdbEmulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IotdbEmulator {
    pub fn start(user: &str, password: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind emulator port");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("emulator address");
        let state = Arc::new(Mutex::new(State { user: user.into(), password: password.into(), ..State::default() }));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("emulator runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let state = served.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        IotdbEmulator { addr, state, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inject(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Every point of every series under `device` (written as in IoTDB's SQL, backticks and all):
    /// measurement → time → value.
    pub fn device(&self, device: &str) -> Option<Device> {
        let nodes = parse_path(device).ok()?;
        self.state().devices.get(&nodes).cloned()
    }

    /// Devices as IoTDB would print them.
    pub fn device_paths(&self) -> Vec<String> {
        self.state().devices.keys().map(|n| display_path(n)).collect()
    }

    pub fn table(&self, database: &str, table: &str) -> Option<Table> {
        self.state().tables.get(&(database.to_string(), table.to_string())).cloned()
    }

    /// How many authenticated requests reached `endpoint`.
    pub fn count(&self, endpoint: &str) -> usize {
        self.state().requests.iter().filter(|(e, _)| e == endpoint).count()
    }
}

impl Drop for IotdbEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

fn respond(http: u16, body: Value) -> Answer {
    Ok(Response::builder()
        .status(http)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response"))
}

fn status(code: i64, message: &str) -> Answer {
    respond(200, json!({"code": code, "message": message}))
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    if path == "/ping" {
        return status(200, "SUCCESS_STATUS");
    }
    let auth = req.headers().get("authorization").and_then(|h| h.to_str().ok()).map(str::to_string);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let Some(auth) = auth else {
        return respond(401, json!({"code": 800, "message": "INIT_AUTH_ERROR"}));
    };
    let decoded = base64_decode(auth.trim_start_matches("Basic ")).and_then(|b| String::from_utf8(b).ok());
    // Java's String.split(":") drops trailing empty parts, so "root:" is one part.
    let parts: Vec<&str> = match &decoded {
        Some(d) => {
            let mut p: Vec<&str> = d.split(':').collect();
            while p.last() == Some(&"") {
                p.pop();
            }
            p
        }
        None => vec![],
    };
    if parts.len() != 2 {
        return respond(400, json!({"code": 303, "message": "Illegal format of authorization header."}));
    }
    if parts[0] != st.user || parts[1] != st.password {
        return respond(401, json!({"code": 801, "message": "WRONG_LOGIN_PASSWORD"}));
    }
    if let Some(fault) = st.faults.pop_front() {
        return match fault {
            Fault::Http(code) => Ok(Response::builder()
                .status(code)
                .body(Full::new(Bytes::from_static(b"<html>service unavailable</html>")))
                .expect("response")),
            Fault::Code(code, message) => status(code, &message),
            Fault::Drop => Err(std::io::Error::other("connection dropped by fault injection")),
        };
    }
    st.requests.push((path.clone(), String::from_utf8_lossy(&body).into_owned()));
    let Ok(json) = parse_json(&body) else {
        return respond(400, json!({"code": 303, "message": "request body is not JSON"}));
    };
    match path.as_str() {
        "/rest/v2/insertTablet" => insert_tablet(&mut st, &json),
        "/rest/v2/nonQuery" => match json.get("sql").and_then(Value::as_str) {
            Some(sql) => tree_non_query(&mut st, sql),
            None => status(303, "sql should not be null"),
        },
        "/rest/v2/query" => match json.get("sql").and_then(Value::as_str) {
            Some(sql) => tree_query(&st, sql),
            None => status(303, "sql should not be null"),
        },
        "/rest/table/v1/insertTablet" => table_insert_tablet(&mut st, &json),
        "/rest/table/v1/nonQuery" => {
            match (json.get("sql").and_then(Value::as_str), json.get("database").and_then(Value::as_str)) {
                (Some(sql), Some(db)) => table_non_query(&mut st, db, sql),
                _ => status(303, "sql and database should not be null"),
            }
        }
        _ => respond(404, json!({"code": 404, "message": "not found"})),
    }
}

/// JSON like Jackson reads it: decimal numbers are rounded correctly (serde_json's default
/// parser may be one ulp off, which would make exact DOUBLE comparisons flaky).
fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut p = JsonParser { s: text.as_bytes(), text, i: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing characters at {}", p.i));
    }
    Ok(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        let c = *self.s.get(self.i).ok_or("unexpected end")?;
        match c {
            b'{' => {
                self.i += 1;
                let mut map = serde_json::Map::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Value::Object(map));
                }
                loop {
                    self.ws();
                    let Value::String(key) = self.value()? else { return Err("object key is not a string".into()) };
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(format!("':' expected at {}", self.i));
                    }
                    self.i += 1;
                    let v = self.value()?;
                    map.insert(key, v);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Object(map));
                        }
                        _ => return Err(format!("',' or '}}' expected at {}", self.i)),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(format!("',' or ']' expected at {}", self.i)),
                    }
                }
            }
            b'"' => {
                // Find the closing quote, then let serde_json unescape the literal.
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i] != b'"' {
                    if self.s[self.i] == b'\\' {
                        self.i += 1;
                    }
                    self.i += 1;
                }
                self.i += 1;
                let literal = self.text.get(start..self.i).ok_or("unterminated string")?;
                serde_json::from_str(literal).map_err(|e| e.to_string())
            }
            b't' | b'f' | b'n' => {
                for (word, v) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)] {
                    if self.text[self.i..].starts_with(word) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                Err(format!("unexpected token at {}", self.i))
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let n = &self.text[start..self.i];
                if let Ok(i) = n.parse::<i64>() {
                    return Ok(Value::from(i));
                }
                let f: f64 = n.parse().map_err(|_| format!("bad number '{n}'"))?;
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("bad number '{n}'"))
            }
        }
    }
}

const RESERVED: &[&str] = &["ROOT", "TIME", "TIMESTAMP"];

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || ('\u{2E80}'..='\u{9FFF}').contains(&c))
}

fn is_number(s: &str) -> bool {
    let (m, e) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    digits(m) && e.is_none_or(digits)
}

/// One node as written (quoted or not) → its name, or `None` if IoTDB would reject it.
fn parse_node(text: &str, first: bool) -> Option<String> {
    if let Some(inner) = text.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        // Inside backticks every backtick must be doubled.
        let unescaped = inner.replace("``", "`");
        if inner.is_empty() || unescaped.matches('`').count() * 2 != inner.matches('`').count() {
            return None;
        }
        return Some(unescaped);
    }
    if !is_identifier(text) || is_number(text) {
        return None;
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(text)) && !(first && text == "root") {
        return None;
    }
    Some(text.to_string())
}

fn split_path(path: &str) -> Vec<String> {
    let mut nodes = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                current.push(c);
            }
            '.' if !quoted => nodes.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    nodes.push(current);
    nodes
}

pub fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let raw = split_path(path.trim());
    let mut nodes = Vec::new();
    for (i, node) in raw.iter().enumerate() {
        nodes.push(parse_node(node, i == 0).ok_or_else(|| format!("{path} is not a legal path"))?);
    }
    if nodes.len() < 2 || nodes[0] != "root" {
        return Err(format!("{path} is not a legal path"));
    }
    Ok(nodes)
}

fn display_node(node: &str, first: bool) -> String {
    let reserved = !first && RESERVED.iter().any(|r| r.eq_ignore_ascii_case(node));
    if is_identifier(node) && !is_number(node) && !reserved {
        node.to_string()
    } else {
        format!("`{}`", node.replace('`', "``"))
    }
}

pub fn display_path(nodes: &[String]) -> String {
    nodes.iter().enumerate().map(|(i, n)| display_node(n, i == 0)).collect::<Vec<_>>().join(".")
}

const TYPES: &[&str] = &["BOOLEAN", "INT32", "INT64", "FLOAT", "DOUBLE", "TEXT", "STRING", "BLOB", "TIMESTAMP", "DATE"];

/// Converts one JSON value the way IoTDB's StatementConstructionHandler does for `data_type`.
fn convert(data_type: &str, v: &Value) -> Result<Option<Val>, (i64, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(Some(match (data_type, v) {
        (_, Value::Null) => return Ok(None),
        ("BOOLEAN", Value::Bool(b)) => Val::Bool(*b),
        ("BOOLEAN", other) if text(other) == "1" => Val::Bool(true),
        ("BOOLEAN", other) if text(other) == "0" => Val::Bool(false),
        ("BOOLEAN", other) => return Err((305, format!("class cast: {other} is not a Boolean"))),
        ("INT32" | "DATE", Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
            let i = n.as_i64().unwrap_or_default();
            if data_type == "DATE" {
                let (y, m, d) = (i / 10_000, i / 100 % 100, i % 100);
                if !(1000..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
                    return Err((752, format!("{i} is not a valid DATE (yyyyMMdd)")));
                }
            }
            Val::Int(i)
        }
        ("INT32" | "DATE", other) => return Err((606, format!("unsupported data type: {other}"))),
        ("INT64" | "TIMESTAMP", Value::Number(n)) if n.as_i64().is_some() => Val::Int(n.as_i64().unwrap_or_default()),
        ("INT64" | "TIMESTAMP", other) => return Err((606, format!("unsupported data type: {other}"))),
        ("FLOAT", other) => {
            let f: f32 = text(other).parse().map_err(|_| (305, format!("NumberFormatException: {other}")))?;
            Val::Float(f as f64)
        }
        ("DOUBLE", other) => {
            Val::Float(text(other).parse().map_err(|_| (305, format!("NumberFormatException: {other}")))?)
        }
        (_, other) => Val::Text(text(other)),
    }))
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>, String> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{key} should not be null"))?
        .iter()
        .map(|s| s.as_str().map(str::to_string).ok_or_else(|| format!("{key} must hold strings")))
        .collect()
}

fn timestamps(v: &Value) -> Result<Vec<i64>, String> {
    v.get("timestamps")
        .and_then(Value::as_array)
        .ok_or("timestamps should not be null")?
        .iter()
        .map(|t| t.as_i64().ok_or_else(|| format!("timestamp {t} is not a long")))
        .collect()
}

fn insert_tablet(st: &mut State, body: &Value) -> Answer {
    let parsed = (|| -> Result<_, String> {
        let device = body.get("device").and_then(Value::as_str).ok_or("device should not be null")?.to_string();
        let aligned = body.get("is_aligned").and_then(Value::as_bool).ok_or("is_aligned should not be null")?;
        let ts = timestamps(body)?;
        let measurements = strings(body, "measurements")?;
        let types = strings(body, "data_types")?;
        let values = body.get("values").and_then(Value::as_array).ok_or("values should not be null")?.clone();
        if measurements.len() != types.len() || measurements.len() != values.len() {
            return Err("measurements, data_types and values should have the same size".into());
        }
        for (i, column) in values.iter().enumerate() {
            if column.as_array().map(Vec::len) != Some(ts.len()) {
                return Err(format!("values[{i}] should have as many values as timestamps"));
            }
        }
        if ts.is_empty() {
            return Err("timestamps should not be empty".into());
        }
        Ok((device, aligned, ts, measurements, types, values))
    })();
    let (device, aligned, ts, measurements, types, values) = match parsed {
        Ok(p) => p,
        Err(e) => return status(303, &e),
    };
    let nodes = match parse_path(&device) {
        Ok(n) => n,
        Err(e) => return status(509, &e),
    };
    let mut names = Vec::new();
    for m in &measurements {
        match parse_node(m, false) {
            Some(n) => names.push(n),
            None => return status(509, &format!("{device}.{m} is not a legal path")),
        }
    }
    for t in &types {
        if !TYPES.contains(&t.to_uppercase().as_str()) {
            return status(303, &format!("The {t} data type of {device} is illegal"));
        }
    }
    // Values are converted before anything is written, as the statement is built first.
    let mut columns = Vec::new();
    for (column, t) in values.iter().zip(&types) {
        let mut converted = Vec::new();
        for v in column.as_array().into_iter().flatten() {
            match convert(&t.to_uppercase(), v) {
                Ok(c) => converted.push(c),
                Err((code, msg)) => return status(code, &msg),
            }
        }
        columns.push(converted);
    }
    let existing = st.devices.get(&nodes).map(|d| d.aligned);
    if existing.is_some_and(|a| a != aligned) && st.devices.get(&nodes).is_some_and(|d| !d.series.is_empty()) {
        return status(
            609,
            &format!(
                "timeseries under this device {device} are {}aligned, please use the matching insertion",
                if aligned { "not " } else { "" }
            ),
        );
    }
    let dev = st.devices.entry(nodes.clone()).or_insert_with(|| Device { aligned, series: BTreeMap::new() });
    let mut conflicts = Vec::new();
    for ((name, t), column) in names.iter().zip(&types).zip(columns) {
        let t = t.to_uppercase();
        let series =
            dev.series.entry(name.clone()).or_insert_with(|| Series { data_type: t.clone(), points: BTreeMap::new() });
        if series.data_type != t {
            conflicts.push(format!(
                "data type of {}.{name} is not consistent, registered type {}, inserting type {t}",
                display_path(&nodes),
                series.data_type
            ));
            continue;
        }
        for (time, v) in ts.iter().zip(column) {
            if let Some(v) = v {
                series.points.insert(*time, v);
            }
        }
    }
    if conflicts.is_empty() {
        status(200, "SUCCESS_STATUS")
    } else {
        status(507, &conflicts.join("; "))
    }
}

/// `time = 5 AND time >= 3`: the time range it keeps, or an error as IoTDB reports it.
fn time_range(condition: Option<&str>) -> Result<(i64, i64), (i64, String)> {
    let Some(condition) = condition else { return Ok((i64::MIN, i64::MAX)) };
    let tokens: Vec<String> = condition
        .replace(">=", " >= ")
        .replace("<=", " <= ")
        .replace("!=", " != ")
        .replace('=', " = ")
        .replace("<  =", "<=")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // Re-join split two-character operators.
    let mut merged: Vec<String> = Vec::new();
    for t in tokens {
        if t == "=" && merged.last().is_some_and(|l| l == ">" || l == "<" || l == "!") {
            let last = merged.pop().unwrap_or_default();
            merged.push(format!("{last}="));
        } else {
            merged.push(t);
        }
    }
    if merged.iter().any(|t| t.eq_ignore_ascii_case("or")) {
        return Err((701, "Only support AND operator in deletion".into()));
    }
    let (mut low, mut high) = (i64::MIN, i64::MAX);
    for clause in merged.split(|t| t.eq_ignore_ascii_case("and")) {
        let [field, op, value] = clause else {
            return Err((700, format!("line 1: cannot parse condition '{}'", clause.join(" "))));
        };
        if !field.eq_ignore_ascii_case("time") {
            return Err((701, format!("The condition of DELETE can only be on time, not {field}")));
        }
        let v: i64 = value.parse().map_err(|_| (700, format!("'{value}' is not a timestamp")))?;
        match op.as_str() {
            "=" => {
                low = low.max(v);
                high = high.min(v);
            }
            ">" => low = low.max(v.saturating_add(1)),
            ">=" => low = low.max(v),
            "<" => high = high.min(v.saturating_sub(1)),
            "<=" => high = high.min(v),
            other => return Err((701, format!("operator {other} is not supported in deletion"))),
        }
    }
    Ok((low, high))
}

/// Splits `DELETE FROM a, b WHERE c` into its paths and condition.
fn split_delete(sql: &str) -> Option<(Vec<String>, Option<String>)> {
    let trimmed = sql.trim().trim_end_matches(';');
    let upper = trimmed.to_uppercase();
    if !upper.starts_with("DELETE FROM ") {
        return None;
    }
    let rest = &trimmed["DELETE FROM ".len()..];
    let (targets, condition) = match rest.to_uppercase().find(" WHERE ") {
        Some(i) => (&rest[..i], Some(rest[i + " WHERE ".len()..].to_string())),
        None => (rest, None),
    };
    let mut list = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in targets.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => list.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    list.push(current.trim().to_string());
    Some((list, condition))
}

fn tree_non_query(st: &mut State, sql: &str) -> Answer {
    let Some((paths, condition)) = split_delete(sql) else {
        return status(700, &format!("line 1:0 unsupported statement in the emulator: {sql}"));
    };
    let (low, high) = match time_range(condition.as_deref()) {
        Ok(r) => r,
        Err((code, msg)) => return status(code, &msg),
    };
    for path in paths {
        // `device.*` covers its measurements; `device.m` one series.
        let (prefix, leaf) = match path.rsplit_once('.') {
            Some((p, "*")) => (p.to_string(), None),
            Some((p, leaf)) => (p.to_string(), Some(leaf.to_string())),
            None => return status(509, &format!("{path} is not a legal path")),
        };
        let nodes = match parse_path(&prefix) {
            Ok(n) => n,
            Err(e) => return status(509, &e),
        };
        let leaf = match leaf.map(|l| parse_node(&l, false)) {
            None => None,
            Some(Some(l)) => Some(l),
            Some(None) => return status(509, &format!("{path} is not a legal path")),
        };
        if let Some(dev) = st.devices.get_mut(&nodes) {
            for (name, series) in dev.series.iter_mut() {
                if leaf.as_ref().is_none_or(|l| l == name) {
                    series.points.retain(|t, _| *t < low || *t > high);
                }
            }
        }
    }
    status(200, "SUCCESS_STATUS")
}

fn val_json(v: &Val) -> Value {
    match v {
        Val::Bool(b) => json!(b),
        Val::Int(i) => json!(i),
        Val::Float(f) => json!(f),
        Val::Text(s) => json!(s),
    }
}

fn tree_query(st: &State, sql: &str) -> Answer {
    let trimmed = sql.trim().trim_end_matches(';');
    let upper = trimmed.to_uppercase();
    let Some(rest) = upper.strip_prefix("SELECT * FROM ").map(|_| &trimmed["SELECT * FROM ".len()..]) else {
        return status(700, &format!("the emulator only answers SELECT * FROM <device>, not: {sql}"));
    };
    let nodes = match parse_path(rest) {
        Ok(n) => n,
        Err(e) => return status(509, &e),
    };
    let Some(dev) = st.devices.get(&nodes) else {
        return respond(200, json!({"expressions": [], "column_names": null, "timestamps": [], "values": []}));
    };
    let times: std::collections::BTreeSet<i64> = dev.series.values().flat_map(|s| s.points.keys().copied()).collect();
    let expressions: Vec<String> =
        dev.series.keys().map(|m| format!("{}.{}", display_path(&nodes), display_node(m, false))).collect();
    let values: Vec<Vec<Value>> = dev
        .series
        .values()
        .map(|s| times.iter().map(|t| s.points.get(t).map(val_json).unwrap_or(Value::Null)).collect())
        .collect();
    respond(
        200,
        json!({"expressions": expressions, "column_names": null, "timestamps": times.into_iter().collect::<Vec<_>>(), "values": values}),
    )
}

fn table_insert_tablet(st: &mut State, body: &Value) -> Answer {
    let parsed = (|| -> Result<_, String> {
        let database = body.get("database").and_then(Value::as_str).ok_or("database should not be null")?.to_string();
        let table = body.get("table").and_then(Value::as_str).ok_or("table should not be null")?.to_string();
        let names = strings(body, "column_names")?;
        let categories = strings(body, "column_categories")?;
        let types = strings(body, "data_types")?;
        let ts = timestamps(body)?;
        let rows = body.get("values").and_then(Value::as_array).ok_or("values should not be null")?.clone();
        let mut errors = Vec::new();
        if categories.is_empty() || categories.len() != names.len() {
            errors.push("column_names and column_categories should have the same size".to_string());
        }
        if categories.len() != types.len() {
            errors.push("column_categories and data_types should have the same size".to_string());
        }
        if ts.len() != rows.len() {
            errors.push("values and timestamps should have the same size".to_string());
        }
        for t in &types {
            if !TYPES.contains(&t.to_uppercase().as_str()) {
                errors.push(format!("The {t} data type of {table} is illegal"));
            }
        }
        for (i, row) in rows.iter().enumerate() {
            if row.as_array().map(Vec::len) != Some(types.len()) {
                errors.push(format!("The number of values in the {}th row is not equal to the data_types size", i + 1));
            }
        }
        if !errors.is_empty() {
            return Err(errors.join(","));
        }
        Ok((database, table, names, categories, types, ts, rows))
    })();
    let (database, table_name, names, categories, types, ts, rows) = match parsed {
        Ok(p) => p,
        Err(e) => return status(305, &e),
    };
    for c in &categories {
        if !["TAG", "ATTRIBUTE", "FIELD"].contains(&c.as_str()) {
            return status(305, &format!("No enum constant ColumnCategory.{c}"));
        }
    }
    let table = st.tables.entry((database, table_name.clone())).or_default();
    for ((n, c), t) in names.iter().zip(&categories).zip(&types) {
        let t = t.to_uppercase();
        match table.columns.get(n) {
            Some((cat, _)) if cat != c => return status(615, &format!("column {n} is a {cat}, not a {c}")),
            Some((_, ty)) if *ty != t => {
                return status(
                    614,
                    &format!(
                        "data type of {table_name}.{n} is not consistent, registered type {ty}, inserting type {t}"
                    ),
                )
            }
            Some(_) => {}
            None => {
                if c != "FIELD" && t != "STRING" {
                    return status(614, &format!("{c} column {n} must be STRING, not {t}"));
                }
                if c == "TAG" {
                    table.tags.push(n.clone());
                }
                table.columns.insert(n.clone(), (c.clone(), t));
            }
        }
    }
    let mut converted_rows = Vec::new();
    for row in &rows {
        let mut converted = Vec::new();
        for (v, t) in row.as_array().into_iter().flatten().zip(&types) {
            match convert(&t.to_uppercase(), v) {
                Ok(c) => converted.push(c),
                Err((code, msg)) => return status(code, &msg),
            }
        }
        converted_rows.push(converted);
    }
    for (time, row) in ts.iter().zip(converted_rows) {
        let tags: Vec<Option<String>> = table
            .tags
            .iter()
            .map(|tag| {
                let i = names.iter().position(|n| n == tag)?;
                match row.get(i)? {
                    Some(Val::Text(s)) => Some(s.clone()),
                    Some(other) => Some(format!("{other:?}")),
                    None => None,
                }
            })
            .collect();
        for ((v, c), n) in row.into_iter().zip(&categories).zip(&names) {
            let Some(v) = v else { continue };
            match c.as_str() {
                "ATTRIBUTE" => {
                    table.attributes.entry(tags.clone()).or_default().insert(n.clone(), v);
                }
                "FIELD" => {
                    table.rows.entry((tags.clone(), *time)).or_default().insert(n.clone(), v);
                }
                _ => {}
            }
        }
    }
    status(200, "SUCCESS_STATUS")
}

fn unquote_identifier(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_lowercase(),
    }
}

fn table_non_query(st: &mut State, database: &str, sql: &str) -> Answer {
    let trimmed = sql.trim().trim_end_matches(';');
    if !trimmed.to_uppercase().starts_with("DELETE FROM ") {
        return status(700, &format!("the emulator only runs DELETE in the table model, not: {sql}"));
    }
    let rest = &trimmed["DELETE FROM ".len()..];
    let (table, condition) = match rest.to_uppercase().find(" WHERE ") {
        Some(i) => (unquote_identifier(&rest[..i]), Some(&rest[i + " WHERE ".len()..])),
        None => (unquote_identifier(rest), None),
    };
    let Some(t) = st.tables.get_mut(&(database.to_string(), table.clone())) else {
        return status(550, &format!("Table '{database}.{table}' does not exist."));
    };
    let mut low = i64::MIN;
    let mut high = i64::MAX;
    let mut tag_filter: Vec<(String, String)> = Vec::new();
    if let Some(condition) = condition {
        if condition.to_uppercase().split_whitespace().any(|w| w == "OR") {
            return status(701, "Only support AND operator in deletion");
        }
        let upper = condition.to_uppercase();
        let mut clauses = Vec::new();
        let mut start = 0;
        for (i, _) in upper.match_indices(" AND ") {
            clauses.push(&condition[start..i]);
            start = i + 5;
        }
        clauses.push(&condition[start..]);
        for clause in clauses {
            let Some((left, right)) = clause.split_once('=') else {
                return status(700, &format!("cannot parse condition '{clause}'"));
            };
            let column = unquote_identifier(left);
            let right = right.trim();
            if column.eq_ignore_ascii_case("time") {
                match right.parse::<i64>() {
                    Ok(v) => {
                        low = low.max(v);
                        high = high.min(v);
                    }
                    Err(_) => return status(700, &format!("'{right}' is not a timestamp")),
                }
            } else {
                let Some(value) = right.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) else {
                    return status(700, &format!("'{right}' is not a string literal"));
                };
                if t.columns.get(&column).is_none_or(|(c, _)| c != "TAG") {
                    return status(701, &format!("The column '{column}' in DELETE is not a TAG"));
                }
                tag_filter.push((column, value.replace("''", "'")));
            }
        }
    }
    let order = t.tags.clone();
    t.rows.retain(|(tags, time), _| {
        let in_range = *time >= low && *time <= high;
        let tags_match = tag_filter.iter().all(|(name, value)| {
            order
                .iter()
                .position(|n| n == name)
                .and_then(|i| tags.get(i))
                .is_some_and(|v| v.as_deref() == Some(value.as_str()))
        });
        !(in_range && tags_match)
    });
    status(200, "SUCCESS_STATUS")
}
