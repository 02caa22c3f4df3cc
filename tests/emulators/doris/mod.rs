//! A protocol-faithful Apache Doris emulator for the `doris` sink's tests and benchmark: an FE and
//! a BE, each a real HTTP/1.1 server (hyper) on a random 127.0.0.1 port.
//!
//! FE: checks Basic auth (a failure is HTTP 200 `{"code":401,…}`, as Doris' FE answers), requires
//! `Expect: 100-continue` on loads, and answers `307` with a BE URL carrying the credentials,
//! without reading the body. BE: parses JSON lines against declared table columns, rejects bad
//! rows (`[DATA_QUALITY_ERROR]` with an ErrorURL whose log quotes them), applies UNIQUE KEY
//! upserts and `__DORIS_DELETE_SIGN__` deletes (ordered by a sequence column where the table has
//! one), keeps labels and transactions
//! (PREPARE → PRECOMMITTED → VISIBLE / ABORTED) with Doris' reply texts, and serves 2PC
//! commit/abort. Faults: publish timeout, `-235` too many versions, a commit applied but its reply
//! lost, commits held (to kill a client between prepare and commit), and a dead BE.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

pub const DELETE_SIGN: &str = "__DORIS_DELETE_SIGN__";

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    TinyInt,
    Int,
    BigInt,
    Double,
    Boolean,
    Decimal(u8, u8),
    Date,
    DateTime,
    /// `VARCHAR(n)`; `None` for STRING.
    Varchar(Option<usize>),
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

pub fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
    Column { name: name.to_string(), ty, nullable }
}

#[derive(Debug, Clone)]
pub enum Model {
    UniqueKey(Vec<String>),
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub database: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub model: Model,
    /// A UNIQUE KEY table's sequence column (Doris' `function_column.*` table properties).
    pub sequence: Option<Sequence>,
}

/// How a UNIQUE KEY table orders the loads of a key (Doris' sequence column manual): a row
/// replaces the stored row of its key only if its sequence value is greater than or equal to the
/// stored one, within a load and across loads; a delete (`__DORIS_DELETE_SIGN__` = 1) is such a
/// row too, so it deletes only a row whose sequence is not greater, and the deleted key keeps its
/// sequence: a later row with a smaller one does not bring the key back.
#[derive(Debug, Clone)]
pub enum Sequence {
    /// `"function_column.sequence_col" = 'column'`: the column's value is the sequence; a load
    /// must load that column, and a `function_column.sequence_col` header changes nothing.
    Column(String),
    /// `"function_column.sequence_type" = '…'`: a hidden column each load fills from the loaded
    /// column its `function_column.sequence_col` header names (a load without it fails).
    Hidden,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Prepare,
    Precommitted,
    Visible,
    Aborted,
}

#[derive(Debug, Clone)]
pub struct Txn {
    pub id: i64,
    pub database: String,
    pub table: String,
    pub label: String,
    pub state: TxnState,
    rows: Vec<LoadedRow>,
}

/// A loaded row: its values, its delete sign and its sequence value (tables with one).
type LoadedRow = (Vec<Value>, bool, Option<Value>);

/// A UNIQUE KEY table's row: values, sequence value, and whether it is deleted (kept only on
/// tables with a sequence, where the deleted key's sequence still orders later loads).
#[derive(Debug, Clone)]
struct Stored {
    values: Vec<Value>,
    sequence: Option<Value>,
    deleted: bool,
}

struct Table {
    def: TableDef,
    /// Unique key tables: rows by the JSON text of their key.
    unique: BTreeMap<String, Stored>,
    duplicate: Vec<Vec<Value>>,
}

#[derive(Default)]
struct Faults {
    publish_timeouts: u32,
    too_many_versions: u32,
    lose_next_commit_reply: bool,
    hold_commits: bool,
}

struct State {
    user: String,
    password: String,
    be_address: SocketAddr,
    tables: HashMap<(String, String), Table>,
    labels: HashMap<(String, String), i64>,
    txns: BTreeMap<i64, Txn>,
    next_txn: i64,
    error_logs: HashMap<String, String>,
    faults: Faults,
    /// `FE …`/`BE …` lines: one per request, for assertions about routing.
    requests: Vec<String>,
    commits_waiting: u32,
}

pub struct DorisEmulator {
    state: Arc<Mutex<State>>,
    fe: SocketAddr,
    be: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    be_task: Option<tokio::task::JoinHandle<()>>,
}

impl DorisEmulator {
    /// Starts an FE and a BE knowing `tables`, accepting `user`/`password`.
    pub fn start(user: &str, password: &str, tables: Vec<TableDef>) -> DorisEmulator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("emulator runtime");
        // Bound here (not inside the runtime) so this works from sync and async callers alike.
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        };
        let (fe_listener, be_listener) = (bind(), bind());
        let fe = fe_listener.local_addr().expect("FE address");
        let be = be_listener.local_addr().expect("BE address");
        let tables = tables
            .into_iter()
            .map(|def| {
                (
                    (def.database.clone(), def.name.clone()),
                    Table { def, unique: BTreeMap::new(), duplicate: Vec::new() },
                )
            })
            .collect();
        let state = Arc::new(Mutex::new(State {
            user: user.to_string(),
            password: password.to_string(),
            be_address: be,
            tables,
            labels: HashMap::new(),
            txns: BTreeMap::new(),
            next_txn: 1000,
            error_logs: HashMap::new(),
            faults: Faults::default(),
            requests: Vec::new(),
            commits_waiting: 0,
        }));
        runtime.spawn(serve(fe_listener, state.clone(), Role::Frontend));
        let be_task = runtime.spawn(serve(be_listener, state.clone(), Role::Backend));
        DorisEmulator { state, fe, be, runtime: Some(runtime), be_task: Some(be_task) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fe_address(&self) -> String {
        self.fe.to_string()
    }

    pub fn be_address(&self) -> String {
        self.be.to_string()
    }

    /// The table's rows as JSON objects: by key for UNIQUE KEY tables, in load order otherwise.
    pub fn rows(&self, database: &str, table: &str) -> Vec<Map<String, Value>> {
        let state = self.lock();
        let Some(t) = state.tables.get(&(database.to_string(), table.to_string())) else { return Vec::new() };
        let to_object = |row: &Vec<Value>| -> Map<String, Value> {
            t.def.columns.iter().zip(row).map(|(c, v)| (c.name.clone(), v.clone())).collect()
        };
        match t.def.model {
            Model::UniqueKey(_) => t.unique.values().filter(|r| !r.deleted).map(|r| to_object(&r.values)).collect(),
            Model::Duplicate => t.duplicate.iter().map(to_object).collect(),
        }
    }

    pub fn row_count(&self, database: &str, table: &str) -> usize {
        let state = self.lock();
        state
            .tables
            .get(&(database.to_string(), table.to_string()))
            .map_or(0, |t| t.unique.values().filter(|r| !r.deleted).count() + t.duplicate.len())
    }

    pub fn txns(&self) -> Vec<Txn> {
        self.lock().txns.values().cloned().collect()
    }

    pub fn txn_of_label(&self, database: &str, label: &str) -> Option<Txn> {
        let state = self.lock();
        let id = state.labels.get(&(database.to_string(), label.to_string()))?;
        state.txns.get(id).cloned()
    }

    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    pub fn inject_publish_timeouts(&self, n: u32) {
        self.lock().faults.publish_timeouts = n;
    }

    pub fn inject_too_many_versions(&self, n: u32) {
        self.lock().faults.too_many_versions = n;
    }

    /// The next commit is applied, but the connection closes before its reply.
    pub fn lose_next_commit_reply(&self) {
        self.lock().faults.lose_next_commit_reply = true;
    }

    /// While held, 2PC commits wait without answering.
    pub fn hold_commits(&self, hold: bool) {
        self.lock().faults.hold_commits = hold;
    }

    /// Commit requests currently waiting because commits are held.
    pub fn commits_waiting(&self) -> u32 {
        self.lock().commits_waiting
    }

    /// Stops the BE: connections to it are refused from now on (the FE still redirects to it).
    pub fn kill_be(&mut self) {
        if let Some(task) = self.be_task.take() {
            task.abort();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.be).is_ok() {
            assert!(std::time::Instant::now() < deadline, "BE still accepts connections");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DorisEmulator {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Clone, Copy)]
enum Role {
    Frontend,
    Backend,
}

async fn serve(listener: std::net::TcpListener, state: Arc<Mutex<State>>, role: Role) {
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move {
                    match role {
                        Role::Frontend => Ok::<_, LostReply>(frontend(&state, req)),
                        Role::Backend => backend(&state, req).await,
                    }
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Returned by the BE to close a connection without replying.
#[derive(Debug)]
struct LostReply;

impl std::fmt::Display for LostReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reply deliberately lost")
    }
}

impl std::error::Error for LostReply {}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json; charset=utf-8".parse().expect("header"));
    r
}

fn ok_json(body: Value) -> Response<Full<Bytes>> {
    reply(StatusCode::OK, body.to_string())
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `Some(user)` when the Basic credentials are right.
fn authenticated(state: &State, req: &Request<Incoming>) -> Result<(), String> {
    let Some(value) = header(req, "authorization") else { return Err("anonymous".into()) };
    let Some(encoded) = value.strip_prefix("Basic ") else { return Err("anonymous".into()) };
    let decoded = decode_base64(encoded).ok_or("anonymous")?;
    let (user, password) = decoded.split_once(':').ok_or("anonymous")?;
    if user == state.user && password == state.password {
        Ok(())
    } else {
        Err(user.to_string())
    }
}

fn decode_base64(text: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn unauthorized(user: &str) -> Response<Full<Bytes>> {
    ok_json(json!({
        "msg": "Unauthorized",
        "code": 401,
        "data": format!("Access denied for user '{user}'@'127.0.0.1' (using password: YES)"),
        "count": 0
    }))
}

fn frontend(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut state = lock(state);
    let path = req.uri().path().to_string();
    state.requests.push(format!("FE {} {path}", req.method()));
    if let Err(user) = authenticated(&state, &req) {
        return unauthorized(&user);
    }
    let is_load = path.ends_with("/_stream_load");
    if !is_load && !path.ends_with("/_stream_load_2pc") {
        return reply(StatusCode::NOT_FOUND, json!({"msg": "Not Found", "code": 404}).to_string());
    }
    if is_load && !header(&req, "expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        return ok_json(json!({"status": "FAILED", "msg": "There is no 100-continue header"}));
    }
    let database = path.trim_start_matches("/api/").split('/').next().unwrap_or_default().to_string();
    if !state.tables.keys().any(|(d, _)| *d == database) {
        return ok_json(
            json!({"status": "FAILED", "msg": format!("errCode = 2, detailMessage = Unknown database '{database}'")}),
        );
    }
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("http://{}:{}@{}{path_and_query}", state.user, state.password, state.be_address);
    let mut r = reply(StatusCode::TEMPORARY_REDIRECT, String::new());
    r.headers_mut().insert("location", location.parse().expect("location header"));
    r
}

async fn backend(state: &Mutex<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, LostReply> {
    let path = req.uri().path().to_string();
    if path == "/api/_load_error_log" {
        let file = req.uri().query().and_then(|q| q.strip_prefix("file=")).unwrap_or_default().to_string();
        let state = lock(state);
        return Ok(match state.error_logs.get(&file) {
            Some(log) => reply(StatusCode::OK, log.clone()),
            None => reply(StatusCode::NOT_FOUND, "no such error log".into()),
        });
    }
    if path.ends_with("/_stream_load_2pc") {
        return two_phase(state, req).await;
    }
    if path.ends_with("/_stream_load") {
        return Ok(stream_load(state, req).await);
    }
    Ok(reply(StatusCode::NOT_FOUND, "not found".into()))
}

fn load_reply(
    txn: i64,
    label: &str,
    two_phase: bool,
    status: &str,
    message: &str,
    extra: Value,
) -> Response<Full<Bytes>> {
    let mut body = json!({
        "TxnId": txn,
        "Label": label,
        "Comment": "",
        "TwoPhaseCommit": if two_phase { "true" } else { "false" },
        "Status": status,
        "Message": message,
        "NumberTotalRows": 0,
        "NumberLoadedRows": 0,
        "NumberFilteredRows": 0,
        "NumberUnselectedRows": 0,
        "LoadBytes": 0,
        "LoadTimeMs": 1,
        "BeginTxnTimeMs": 0,
        "StreamLoadPutTimeMs": 0,
        "ReadDataTimeMs": 0,
        "WriteDataTimeMs": 0,
        "CommitAndPublishTimeMs": 0
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    ok_json(body)
}

fn is_valid_label(label: &str) -> bool {
    (1..=128).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
}

async fn stream_load(state_lock: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    let (database, table) =
        (parts.first().copied().unwrap_or_default().to_string(), parts.get(1).copied().unwrap_or_default().to_string());
    let two_phase = header(&req, "two_phase_commit").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let label = header(&req, "label").map(str::to_string);
    let columns_header = header(&req, "columns").map(str::to_string);
    let hidden = header(&req, "hidden_columns").map(str::to_string);
    let sequence_header = header(&req, "function_column.sequence_col").map(|s| s.trim().to_string());
    let by_line = header(&req, "read_json_by_line").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let format = header(&req, "format").unwrap_or("csv").to_ascii_lowercase();
    let csv_settings = CsvSettings::from_headers(&req);
    let max_filter_ratio: f64 = header(&req, "max_filter_ratio").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let auth;
    {
        let mut state = lock(state_lock);
        let label_text = label.clone().unwrap_or_default();
        state.requests.push(format!("BE PUT {path} label={label_text} format={format}"));
        auth = authenticated(&state, &req);
    }
    let label = label.unwrap_or_else(|| format!("emulated_{}", lock(state_lock).next_txn));
    if let Err(user) = auth {
        return load_reply(
            -1,
            &label,
            two_phase,
            "Fail",
            &format!("errCode = 2, detailMessage = Access denied for user '{user}'@'127.0.0.1' (using password: YES)"),
            json!({}),
        );
    }
    if !is_valid_label(&label) {
        return load_reply(
            -1,
            &label,
            two_phase,
            "Fail",
            &format!(
                "errCode = 2, detailMessage = Label format error. regex: ^[-_A-Za-z0-9:]{{1,128}}$, label: {label}"
            ),
            json!({}),
        );
    }
    // Reading the body is what makes hyper send `100 Continue`.
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return load_reply(-1, &label, two_phase, "Fail", &format!("failed to read body: {e}"), json!({})),
    };
    let mut guard = lock(state_lock);
    let state = &mut *guard;
    let key = (database.clone(), table.clone());
    if !state.tables.contains_key(&key) {
        return load_reply(
            -1,
            &label,
            two_phase,
            "Fail",
            &format!("errCode = 2, detailMessage = Unknown table '{table}'"),
            json!({}),
        );
    }
    if let Some(existing) = state.labels.get(&(database.clone(), label.clone())).and_then(|id| state.txns.get(id)) {
        let job = match existing.state {
            TxnState::Prepare => Some("RUNNING"),
            TxnState::Precommitted => Some("PRECOMMITTED"),
            TxnState::Visible => Some("FINISHED"),
            TxnState::Aborted => None,
        };
        if let Some(job) = job {
            let message = format!(
                "errCode = 2, detailMessage = Label [{label}] has already been used, relate to txn [{}]",
                existing.id
            );
            return load_reply(
                -1,
                &label,
                two_phase,
                "Label Already Exists",
                &message,
                json!({"ExistingJobStatus": job}),
            );
        }
    }
    let txn_id = state.next_txn;
    state.next_txn += 1;
    state.labels.insert((database.clone(), label.clone()), txn_id);
    let mut txn = Txn {
        id: txn_id,
        database: database.clone(),
        table: table.clone(),
        label: label.clone(),
        state: TxnState::Aborted,
        rows: Vec::new(),
    };
    let fail = |state: &mut State, txn: Txn, message: String, extra: Value| {
        state.txns.insert(txn.id, txn);
        load_reply(txn_id, &label, two_phase, "Fail", &message, extra)
    };
    if state.faults.too_many_versions > 0 {
        state.faults.too_many_versions -= 1;
        let message = "[E-235]failed to init rowset builder. version count: 2001, exceed limit: 2000, tablet: 10086. Please reduce the frequency of loading data or adjust the max_tablet_version_num in be.conf to a larger value.".to_string();
        return fail(state, txn, message, json!({}));
    }
    let csv = match (format.as_str(), csv_settings) {
        ("json", _) if by_line => None,
        ("json", _) => {
            return fail(state, txn, "emulator: JSON is implemented with read_json_by_line=true only".into(), json!({}))
        }
        ("csv", Ok(settings)) => Some(settings),
        ("csv", Err(message)) => return fail(state, txn, format!("errCode = 2, detailMessage = {message}"), json!({})),
        (other, _) => {
            return fail(state, txn, format!("errCode = 2, detailMessage = unknown data format: {other}"), json!({}))
        }
    };
    let def = state.tables[&key].def.clone();
    let unique = matches!(def.model, Model::UniqueKey(_));
    // As Doris' FE (Load.initColumns): `hidden_columns` adds hidden columns that exist (the delete
    // sign, on UNIQUE KEY tables) to the table's columns only when no `columns` header is given.
    let columns: Vec<String> = match &columns_header {
        Some(c) => c.split(',').map(|n| n.trim().trim_matches('`').to_string()).filter(|n| !n.is_empty()).collect(),
        None => {
            let mut all: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
            let hidden = hidden.as_deref().unwrap_or_default();
            if unique && hidden.split(',').any(|h| h.trim() == DELETE_SIGN) {
                all.push(DELETE_SIGN.to_string());
            }
            all
        }
    };
    for name in &columns {
        let known = def.columns.iter().any(|c| &c.name == name) || (unique && name == DELETE_SIGN);
        if !known {
            return fail(
                state,
                txn,
                format!("errCode = 2, detailMessage = Unknown column '{name}' in '{table}'"),
                json!({}),
            );
        }
    }
    let with_delete_sign = columns.iter().any(|c| c == DELETE_SIGN);
    // Which column's value is each row's sequence, checked as Doris' FE does before reading rows
    // (its messages): a table whose properties map the sequence to a column uses that column
    // whatever the header says; a hidden one needs the header.
    let missing =
        format!("errCode = 2, detailMessage = Table {table} has sequence column, need to specify the sequence column");
    let sequence_name = match (&def.sequence, &sequence_header) {
        (None, None) => None,
        (None, Some(_)) => {
            let message = format!("errCode = 2, detailMessage = There is no sequence column in the table {table}");
            return fail(state, txn, message, json!({}));
        }
        (Some(Sequence::Hidden), None) => return fail(state, txn, missing, json!({})),
        (Some(Sequence::Hidden), Some(name)) | (Some(Sequence::Column(name)), _) => Some(name.clone()),
    };
    let sequence_column = match sequence_name {
        None => None,
        Some(name) if columns.contains(&name) => def.columns.iter().position(|c| c.name == name),
        Some(_) => return fail(state, txn, missing, json!({})),
    };
    let mut filtered = Vec::new();
    let mut total = 0u64;
    let mut take = |line: &[u8], parsed: Result<(Vec<Value>, bool), String>| {
        total += 1;
        let with_sequence = parsed.and_then(|(row, delete)| match sequence_column {
            None => Ok((row, delete, None)),
            Some(i) if row[i].is_null() => Err(format!("the sequence column {} is NULL", def.columns[i].name)),
            Some(i) => {
                let sequence = row[i].clone();
                Ok((row, delete, Some(sequence)))
            }
        });
        match with_sequence {
            Ok(row) => txn.rows.push(row),
            Err(reason) => filtered.push(format!("Reason: {reason}. src line [{}]; ", String::from_utf8_lossy(line))),
        }
    };
    match &csv {
        None => {
            for line in body.split(|b| *b == b'\n') {
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                take(line, parse_json_row(&def, &columns, with_delete_sign, line));
            }
        }
        Some(settings) => {
            for line in settings.lines(&body) {
                take(line.raw, parse_csv_row(&def, &columns, with_delete_sign, settings, &line.fields));
            }
        }
    }
    let loaded = txn.rows.len() as u64;
    if !filtered.is_empty() && filtered.len() as f64 > max_filter_ratio * total as f64 {
        let file = format!("__shard_0/error_log_insert_stmt_{txn_id}");
        let url = format!("http://{}/api/_load_error_log?file={file}", state.be_address);
        state.error_logs.insert(file, filtered.join("\n"));
        let extra = json!({"NumberTotalRows": total, "NumberLoadedRows": loaded, "NumberFilteredRows": filtered.len(), "ErrorURL": url});
        txn.rows.clear();
        return fail(state, txn, "[DATA_QUALITY_ERROR]too many filtered rows".into(), extra);
    }
    let extra = json!({"NumberTotalRows": total, "NumberLoadedRows": loaded, "NumberFilteredRows": filtered.len(), "LoadBytes": body.len()});
    if two_phase {
        txn.state = TxnState::Precommitted;
        state.txns.insert(txn_id, txn);
        return load_reply(txn_id, &label, true, "Success", "OK", extra);
    }
    apply(state, &mut txn);
    state.txns.insert(txn_id, txn);
    if state.faults.publish_timeouts > 0 {
        state.faults.publish_timeouts -= 1;
        return load_reply(
            txn_id,
            &label,
            false,
            "Publish Timeout",
            "transaction commit successfully, BUT data will be visible later",
            extra,
        );
    }
    load_reply(txn_id, &label, false, "Success", "OK", extra)
}

/// One JSON line as the table's row (columns not loaded are NULL) and its delete sign.
fn parse_json_row(
    def: &TableDef,
    columns: &[String],
    with_delete_sign: bool,
    line: &[u8],
) -> Result<(Vec<Value>, bool), String> {
    let object: Map<String, Value> = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    table_row(def, columns, with_delete_sign, &object)
}

/// One CSV line's fields as the table's row: fields map to `columns` by position, `\N` is NULL,
/// and string columns lose their escape bytes (Doris' `escape_string_for_csv`).
fn parse_csv_row(
    def: &TableDef,
    columns: &[String],
    with_delete_sign: bool,
    settings: &CsvSettings,
    fields: &[&[u8]],
) -> Result<(Vec<Value>, bool), String> {
    if fields.len() != columns.len() {
        return Err(format!("Column count mismatch: expected {}, but found {}", columns.len(), fields.len()));
    }
    let mut object = Map::new();
    for (name, field) in columns.iter().zip(fields) {
        if *field == b"\\N" {
            object.insert(name.clone(), Value::Null);
            continue;
        }
        let is_string = def.columns.iter().any(|c| &c.name == name && matches!(c.ty, ColumnType::Varchar(_)));
        let bytes = if is_string && settings.escape != 0 {
            unescape_csv(field, settings.escape, settings.enclose)
        } else {
            field.to_vec()
        };
        let text =
            String::from_utf8(bytes).map_err(|_| "Invalid file encoding: all CSV files must be UTF-8 encoded")?;
        object.insert(name.clone(), Value::String(text));
    }
    table_row(def, columns, with_delete_sign, &object)
}

/// The table's row from loaded values by column name (columns not loaded are NULL) and its
/// delete sign.
fn table_row(
    def: &TableDef,
    columns: &[String],
    with_delete_sign: bool,
    object: &Map<String, Value>,
) -> Result<(Vec<Value>, bool), String> {
    let mut row = vec![Value::Null; def.columns.len()];
    for (i, column) in def.columns.iter().enumerate() {
        let value = if columns.contains(&column.name) {
            object.get(&column.name).cloned().unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        row[i] = convert(column, value)?;
    }
    let delete = if with_delete_sign {
        match object.get(DELETE_SIGN) {
            None | Some(Value::Null) => false,
            Some(v) if v == &json!(0) || v == &json!("0") => false,
            Some(v) if v == &json!(1) || v == &json!("1") => true,
            Some(v) => return Err(format!("column({DELETE_SIGN}) value {v} is not 0 or 1")),
        }
    } else {
        false
    };
    if let Model::UniqueKey(keys) = &def.model {
        for k in keys {
            let i = def.columns.iter().position(|c| &c.name == k).ok_or("bad key")?;
            if row[i].is_null() {
                return Err(format!("column({k}) values is null while columns is not nullable"));
            }
        }
    }
    Ok((row, delete))
}

fn convert(column: &Column, value: Value) -> Result<Value, String> {
    let name = &column.name;
    if value.is_null() {
        return if column.nullable {
            Ok(Value::Null)
        } else {
            Err(format!("column({name}) values is null while columns is not nullable"))
        };
    }
    let as_text = || match &value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bad = || format!("column({name}) value '{}' cannot be converted to {:?}", as_text(), column.ty);
    Ok(match &column.ty {
        ColumnType::TinyInt | ColumnType::Int | ColumnType::BigInt => {
            let v: i64 = as_text().parse().map_err(|_| bad())?;
            let (lo, hi) = match column.ty {
                ColumnType::TinyInt => (i8::MIN as i64, i8::MAX as i64),
                ColumnType::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if v < lo || v > hi {
                return Err(format!("column({name}) value {v} is out of range"));
            }
            json!(v)
        }
        ColumnType::Double => json!(as_text().parse::<f64>().map_err(|_| bad())?),
        ColumnType::Boolean => match &value {
            Value::Bool(b) => json!(b),
            _ => match as_text().as_str() {
                "true" | "1" => json!(true),
                "false" | "0" => json!(false),
                _ => return Err(bad()),
            },
        },
        ColumnType::Decimal(p, s) => {
            let text = as_text();
            let (int, frac) =
                text.trim_start_matches('-').split_once('.').unwrap_or((text.trim_start_matches('-'), ""));
            if !int.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
                || frac.len() > *s as usize
            {
                return Err(bad());
            }
            if int.trim_start_matches('0').len() > (*p - *s) as usize {
                return Err(format!("column({name}) value {text} is out of range"));
            }
            json!(text)
        }
        ColumnType::Date => {
            let text = as_text();
            if text.len() != 10 || text.as_bytes()[4] != b'-' || text.as_bytes()[7] != b'-' {
                return Err(bad());
            }
            json!(text)
        }
        ColumnType::DateTime => {
            let text = as_text();
            if text.len() < 19 || text.as_bytes()[10] != b' ' {
                return Err(bad());
            }
            json!(text)
        }
        ColumnType::Varchar(max) => {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if max.is_some_and(|m| text.len() > m) {
                return Err(format!("column_name[{name}], the length of input is longer than schema. first 32 bytes of input str: [{}] schema length: {}; actual length: {}", text.chars().take(32).collect::<String>(), max.unwrap_or_default(), text.len()));
            }
            json!(text)
        }
    })
}

fn apply(state: &mut State, txn: &mut Txn) {
    txn.state = TxnState::Visible;
    let Some(table) = state.tables.get_mut(&(txn.database.clone(), txn.table.clone())) else { return };
    let key_indices: Vec<usize> = match &table.def.model {
        Model::UniqueKey(keys) => {
            keys.iter().filter_map(|k| table.def.columns.iter().position(|c| &c.name == k)).collect()
        }
        Model::Duplicate => Vec::new(),
    };
    for (row, delete, sequence) in txn.rows.drain(..) {
        match table.def.model {
            Model::UniqueKey(_) => {
                let key = Value::Array(key_indices.iter().map(|i| row[*i].clone()).collect()).to_string();
                if let Some(sequence) = sequence {
                    let older = table
                        .unique
                        .get(&key)
                        .and_then(|stored| stored.sequence.as_ref())
                        .is_some_and(|stored| compare_sequences(&sequence, stored).is_lt());
                    if !older {
                        table.unique.insert(key, Stored { values: row, sequence: Some(sequence), deleted: delete });
                    }
                } else if delete {
                    table.unique.remove(&key);
                } else {
                    table.unique.insert(key, Stored { values: row, sequence: None, deleted: false });
                }
            }
            Model::Duplicate => table.duplicate.push(row),
        }
    }
}

/// Orders two sequence values of one column: integers by value, DATE/DATETIME texts (fixed
/// width up to the fraction) as text.
fn compare_sequences(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => a.as_str().unwrap_or_default().cmp(b.as_str().unwrap_or_default()),
    }
}

async fn two_phase(state_lock: &Mutex<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, LostReply> {
    let path = req.uri().path().to_string();
    let database = path.trim_start_matches("/api/").split('/').next().unwrap_or_default().to_string();
    let operation = header(&req, "txn_operation").unwrap_or_default().to_ascii_lowercase();
    let txn_header = header(&req, "txn_id").map(str::to_string);
    let label_header = header(&req, "label").map(str::to_string);
    {
        let mut state = lock(state_lock);
        state.requests.push(format!(
            "BE PUT {path} {operation} txn_id={} label={}",
            txn_header.clone().unwrap_or_default(),
            label_header.clone().unwrap_or_default()
        ));
        if let Err(user) = authenticated(&state, &req) {
            return Ok(unauthorized(&user));
        }
    }
    if operation == "commit" {
        let mut counted = false;
        loop {
            let held = {
                let mut state = lock(state_lock);
                let held = state.faults.hold_commits;
                if held && !counted {
                    state.commits_waiting += 1;
                    counted = true;
                } else if !held && counted {
                    state.commits_waiting -= 1;
                }
                held
            };
            if !held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut guard = lock(state_lock);
    let state = &mut *guard;
    let id = match (&txn_header, &label_header) {
        (Some(t), _) => t.trim().parse::<i64>().ok(),
        (None, Some(l)) => state.labels.get(&(database.clone(), l.clone())).copied(),
        (None, None) => None,
    };
    let shown = id.map(|i| i.to_string()).or(txn_header.clone()).or(label_header.clone()).unwrap_or_default();
    let fail = |msg: String| Ok(ok_json(json!({"status": "Fail", "msg": msg})));
    let Some(mut txn) = id.and_then(|i| state.txns.get(&i).cloned()).filter(|t| t.database == database) else {
        return fail(format!("errCode = 2, detailMessage = transaction [{shown}] not found"));
    };
    match (operation.as_str(), txn.state) {
        ("commit", TxnState::Precommitted) => {
            apply(state, &mut txn);
            state.txns.insert(txn.id, txn.clone());
            if std::mem::take(&mut state.faults.lose_next_commit_reply) {
                return Err(LostReply);
            }
            Ok(ok_json(json!({"status": "Success", "msg": format!("transaction [{}] commit successfully.", txn.id)})))
        }
        ("commit", TxnState::Visible) => fail(format!(
            "errCode = 2, detailMessage = transaction [{}] is already visible, not pre-committed.",
            txn.id
        )),
        ("commit", TxnState::Aborted) => fail(format!(
            "errCode = 2, detailMessage = transaction [{}] is already aborted, abort reason: User Abort",
            txn.id
        )),
        ("abort", TxnState::Precommitted | TxnState::Prepare) => {
            txn.state = TxnState::Aborted;
            txn.rows.clear();
            state.txns.insert(txn.id, txn.clone());
            Ok(ok_json(json!({"status": "Success", "msg": format!("transaction [{}] abort successfully.", txn.id)})))
        }
        ("abort", TxnState::Aborted) => fail(format!(
            "errCode = 2, detailMessage = transaction [{}] is already aborted, abort reason: User Abort",
            txn.id
        )),
        ("abort", TxnState::Visible) => {
            fail(format!("errCode = 2, detailMessage = transaction [{}] is already VISIBLE, could not abort.", txn.id))
        }
        (_, TxnState::Prepare) => {
            fail(format!("errCode = 2, detailMessage = transaction [{}] is in PREPARE, not pre-committed.", txn.id))
        }
        (other, _) => fail(format!("errCode = 2, detailMessage = unsupported txn_operation [{other}]")),
    }
}

/// Doris' CSV text settings, read from a load's headers as its FE does.
pub struct CsvSettings {
    separator: Vec<u8>,
    delimiter: Vec<u8>,
    /// 0 when not set, as in Doris.
    enclose: u8,
    escape: u8,
}

/// One CSV line: its bytes (for the error log) and its fields, enclosing bytes trimmed.
pub struct CsvLine<'a> {
    pub raw: &'a [u8],
    pub fields: Vec<&'a [u8]>,
}

impl CsvSettings {
    fn from_headers(req: &Request<Incoming>) -> Result<Self, String> {
        let one_byte = |name: &str, error: &str| -> Result<u8, String> {
            match header(req, name) {
                None | Some("") => Ok(0),
                Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
                Some(_) => Err(error.to_string()),
            }
        };
        Self::new(
            header(req, "column_separator"),
            header(req, "line_delimiter"),
            one_byte("enclose", "enclose should not be longer than one byte.")?,
            one_byte("escape", "escape must be single-char")?,
        )
    }

    /// From the texts of the properties (absent: Doris' defaults `\t` and `\n`).
    pub fn new(separator: Option<&str>, delimiter: Option<&str>, enclose: u8, escape: u8) -> Result<Self, String> {
        Ok(CsvSettings {
            separator: convert_separator(separator.unwrap_or("\t"))?,
            delimiter: convert_separator(delimiter.unwrap_or("\n"))?,
            enclose,
            escape,
        })
    }

    /// The body's lines as Doris' text line readers split them: empty lines skipped, a byte
    /// order mark dropped from the first line, a `\r` before a `\n` line end dropped
    /// (keep_carriage_return = false); with `enclose`, fields found by its state machine.
    pub fn lines<'a>(&self, body: &'a [u8]) -> Vec<CsvLine<'a>> {
        let mut lines = Vec::new();
        let mut pos = 0;
        if body.starts_with(b"\xEF\xBB\xBF") {
            pos = 3;
        }
        while pos < body.len() {
            let (mut fields, end, next) =
                if self.enclose == 0 { self.plain_line(body, pos) } else { self.enclosed_line(body, pos) };
            let mut raw = &body[pos..end];
            if self.delimiter == b"\n" && raw.last() == Some(&b'\r') {
                raw = &raw[..raw.len() - 1];
                if let Some(last) = fields.last_mut() {
                    *last = &last[..last.len().saturating_sub(1)];
                }
            }
            pos = next;
            if raw.is_empty() {
                continue;
            }
            if self.enclose != 0 {
                for field in &mut fields {
                    if field.len() > 1 && field[0] == self.enclose && field[field.len() - 1] == self.enclose {
                        *field = &field[1..field.len() - 1];
                    }
                }
            }
            lines.push(CsvLine { raw, fields });
        }
        lines
    }

    /// Fields of the line at `start`, its end and where the next line starts: the delimiter
    /// ends the line, the separator (leftmost, not overlapping) ends a field.
    fn plain_line<'a>(&self, body: &'a [u8], start: usize) -> (Vec<&'a [u8]>, usize, usize) {
        let (end, next) = match find_bytes(&body[start..], &self.delimiter) {
            Some(at) => (start + at, start + at + self.delimiter.len()),
            None => (body.len(), body.len()),
        };
        let mut fields = Vec::new();
        let mut from = start;
        while let Some(at) = find_bytes(&body[from..end], &self.separator) {
            fields.push(&body[from..from + at]);
            from += at + self.separator.len();
        }
        fields.push(&body[from..end]);
        (fields, end, next)
    }

    /// Doris' `EncloseCsvLineReaderCtx`: a field starting with `enclose` runs, across separators
    /// and delimiters, until an `enclose` that is neither escaped (the escape byte toggles; with
    /// no escape set that byte is NUL) nor doubled; then on to the next separator.
    fn enclosed_line<'a>(&self, body: &'a [u8], start: usize) -> (Vec<&'a [u8]>, usize, usize) {
        #[derive(PartialEq)]
        enum State {
            Start,
            Plain,
            Enclosed,
            Closed,
        }
        let mut fields = Vec::new();
        let mut state = State::Start;
        let mut field_start = start;
        let (mut should_escape, mut quote_escape) = (false, false);
        let mut i = start;
        while i < body.len() {
            match state {
                State::Start => {
                    if body[i] == self.enclose {
                        state = State::Enclosed;
                        i += 1;
                    } else {
                        state = State::Plain;
                    }
                }
                State::Plain | State::Closed => {
                    if body[i..].starts_with(&self.delimiter) {
                        fields.push(&body[field_start..i]);
                        return (fields, i, i + self.delimiter.len());
                    }
                    if body[i..].starts_with(&self.separator) {
                        fields.push(&body[field_start..i]);
                        i += self.separator.len();
                        field_start = i;
                        state = State::Start;
                    } else {
                        i += 1;
                    }
                }
                State::Enclosed => {
                    let b = body[i];
                    if b == self.escape {
                        should_escape = !should_escape;
                    } else if should_escape {
                        should_escape = false;
                    } else if quote_escape {
                        quote_escape = false;
                        if b != self.enclose {
                            state = State::Closed;
                            continue;
                        }
                    } else if b == self.enclose {
                        quote_escape = true;
                    }
                    i += 1;
                }
            }
        }
        fields.push(&body[field_start..]);
        (fields, body.len(), body.len())
    }
}

/// The fields of each line of `body` as Doris reads them into string columns (NULL as `None`).
pub fn read_csv(body: &[u8], settings: &CsvSettings) -> Vec<Vec<Option<String>>> {
    settings
        .lines(body)
        .into_iter()
        .map(|line| {
            line.fields
                .iter()
                .map(|f| {
                    let bytes = if settings.escape != 0 {
                        unescape_csv(f, settings.escape, settings.enclose)
                    } else {
                        f.to_vec()
                    };
                    (*f != b"\\N").then(|| String::from_utf8_lossy(&bytes).into_owned())
                })
                .collect()
        })
        .collect()
}

/// Doris' `Separator.convertSeparator`: `\x..` hex bytes, else `\t \n \r \\ \' \"` unescaped.
fn convert_separator(text: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Err("Column separator is null or empty".into());
    }
    if text.len() >= 2 && text.as_bytes()[..2].eq_ignore_ascii_case(b"\\x") {
        let hex = text.replace("\\x", "").replace("\\X", "");
        if hex.is_empty() {
            return Err("Hex str is empty".into());
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("Hex str format error".into());
        }
        if !hex.len().is_multiple_of(2) {
            return Err("Hex str length error".into());
        }
        return Ok((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)).collect());
    }
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(c @ ('\\' | '\'' | '"')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out.into_bytes())
}

/// Doris' `escape_string_for_csv`: drops each escape byte (a run of them halves) and reads a
/// doubled quote as one.
fn unescape_csv(field: &[u8], escape: u8, quote: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut escape_next = false;
    for (i, &b) in field.iter().enumerate() {
        let doubled_quote = b == quote && field.get(i + 1) == Some(&quote);
        if doubled_quote || b == escape {
            escape_next = !escape_next;
        } else {
            escape_next = false;
        }
        if !escape_next {
            out.push(b);
        }
    }
    out
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
