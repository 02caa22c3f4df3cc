//! Stream Load wire facts as pure functions over bytes (no I/O): the JSON replies of the FE, of a
//! BE load and of a 2PC commit/abort, what their messages mean, labels, and Basic auth.
//!
//! Reply shapes (apache/doris `be/src/http/action/stream_load.cpp`, `stream_load_2pc.cpp`,
//! `fe/…/httpv2/rest/LoadAction.java`): every reply is HTTP 200 with a JSON body. A BE load
//! answers `{"TxnId":…,"Label":…,"Status":"Success"|"Publish Timeout"|"Label Already Exists"|
//! "Fail","ExistingJobStatus":…,"Message":…,"ErrorURL":…}`; a 2PC operation answers
//! `{"status":"Success"|"Fail","msg":…}`; the FE answers its own failures (authentication
//! included) as `{"code":401,"msg":…}` or `{"status":"FAILED","msg":…}`.

use serde_json::Value;

/// What a load reply says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadStatus {
    Success,
    /// Committed; only the publish to replicas is late. The data will become visible.
    PublishTimeout,
    LabelAlreadyExists(ExistingJob),
    Fail,
}

/// The state of the load that already holds a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingJob {
    Running,
    Precommitted,
    Finished,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadResponse {
    pub txn_id: Option<i64>,
    pub label: String,
    pub status: LoadStatus,
    pub message: String,
    pub error_url: Option<String>,
    pub loaded_rows: u64,
    pub filtered_rows: u64,
}

/// A reply to a load request: from a BE, or an FE refusing before any BE was involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadReply {
    Load(LoadResponse),
    Frontend(FrontendError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendError {
    pub code: Option<i64>,
    pub message: String,
}

impl FrontendError {
    pub fn is_unauthorized(&self) -> bool {
        self.code == Some(401) || mentions_access_denied(&self.message)
    }
}

fn mentions_access_denied(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("access denied") || m.contains("unauthorized") || m.contains("password is wrong")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parses the body of a reply to `PUT …/_stream_load`.
pub fn parse_load_reply(body: &[u8]) -> Result<LoadReply, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("reply is not JSON ({e}): {}", preview(body)))?;
    let Some(object) = value.as_object() else {
        return Err(format!("reply is not a JSON object: {}", preview(body)));
    };
    let Some(status) = object.get("Status") else {
        let code = object.get("code").and_then(Value::as_i64);
        let message = object.get("msg").or_else(|| object.get("data")).map(text).unwrap_or_default();
        let failed = code.is_some_and(|c| c != 0) || object.get("status").map(text).is_some_and(|s| s != "OK");
        if failed {
            let data = object.get("data").map(text).unwrap_or_default();
            let message =
                if data.is_empty() || message.contains(&data) { message } else { format!("{message}: {data}") };
            return Ok(LoadReply::Frontend(FrontendError { code, message }));
        }
        return Err(format!("reply has no Status: {}", preview(body)));
    };
    let status = match text(status).as_str() {
        "Success" => LoadStatus::Success,
        "Publish Timeout" => LoadStatus::PublishTimeout,
        "Label Already Exists" => {
            let existing = object.get("ExistingJobStatus").map(text).unwrap_or_default();
            LoadStatus::LabelAlreadyExists(match existing.as_str() {
                "RUNNING" => ExistingJob::Running,
                "PRECOMMITTED" => ExistingJob::Precommitted,
                "FINISHED" => ExistingJob::Finished,
                _ => ExistingJob::Other(existing),
            })
        }
        _ => LoadStatus::Fail,
    };
    let count = |key: &str| object.get(key).and_then(Value::as_u64).unwrap_or(0);
    Ok(LoadReply::Load(LoadResponse {
        txn_id: object.get("TxnId").and_then(Value::as_i64).filter(|id| *id > 0),
        label: object.get("Label").map(text).unwrap_or_default(),
        status,
        message: object.get("Message").map(text).unwrap_or_default(),
        error_url: object.get("ErrorURL").map(text).filter(|u| !u.is_empty()),
        loaded_rows: count("NumberLoadedRows"),
        filtered_rows: count("NumberFilteredRows"),
    }))
}

/// Why a load failed, as far as its message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFailure {
    /// `-235`: the tablet has too many versions (loads too frequent); back off and batch more.
    TooManyVersions,
    /// Rows were rejected (type, length, NULL into NOT NULL…); the ErrorURL names them.
    DataQuality,
    UnknownTable,
    UnknownColumn,
    UnknownDatabase,
    AccessDenied,
    /// Anything else: treated as the server's trouble, retried.
    Other,
}

pub fn classify_failure(message: &str) -> LoadFailure {
    let m = message.to_ascii_lowercase();
    if m.contains("-235") || m.contains("too many versions") || m.contains("too_many_version") {
        LoadFailure::TooManyVersions
    } else if m.contains("data_quality") || m.contains("too many filtered rows") || m.contains("filtered rows") {
        LoadFailure::DataQuality
    } else if m.contains("unknown table") || m.contains("table not found") {
        LoadFailure::UnknownTable
    } else if m.contains("unknown column") {
        LoadFailure::UnknownColumn
    } else if m.contains("unknown database") {
        LoadFailure::UnknownDatabase
    } else if mentions_access_denied(&m) {
        LoadFailure::AccessDenied
    } else {
        LoadFailure::Other
    }
}

/// The transaction holding a label, from `… Label [l] has already been used, relate to txn [N]`.
pub fn txn_of_existing_label(message: &str) -> Option<i64> {
    let start = message.find("relate to txn [")? + "relate to txn [".len();
    let end = message[start..].find(']')? + start;
    message[start..end].trim().parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOperation {
    Commit,
    Abort,
}

impl TxnOperation {
    pub fn header_value(self) -> &'static str {
        match self {
            TxnOperation::Commit => "commit",
            TxnOperation::Abort => "abort",
        }
    }
}

/// What a 2PC commit or abort achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwoPcOutcome {
    Done,
    /// An earlier attempt (whose reply may have been lost) already did it.
    AlreadyDone(String),
    /// The transaction can no longer reach the wanted state (a commit of an aborted or expired
    /// transaction), or the server refused.
    Failed(String),
    Unauthorized(String),
}

/// Parses the reply to `PUT /api/{db}/_stream_load_2pc`.
pub fn parse_two_pc_reply(body: &[u8], operation: TxnOperation) -> Result<TwoPcOutcome, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("reply is not JSON ({e}): {}", preview(body)))?;
    let status = value.get("status").map(text).unwrap_or_default();
    let message = value.get("msg").map(text).unwrap_or_default();
    if let Some(code) = value.get("code").and_then(Value::as_i64) {
        if code == 401 || mentions_access_denied(&message) {
            return Ok(TwoPcOutcome::Unauthorized(message));
        }
        if code != 0 && status.is_empty() {
            return Ok(TwoPcOutcome::Failed(message));
        }
    }
    if status.eq_ignore_ascii_case("success") {
        return Ok(TwoPcOutcome::Done);
    }
    if mentions_access_denied(&message) {
        return Ok(TwoPcOutcome::Unauthorized(message));
    }
    let m = message.to_ascii_lowercase();
    let already = match operation {
        TxnOperation::Commit => m.contains("already visible") || m.contains("already committed"),
        TxnOperation::Abort => m.contains("already aborted") || m.contains("not found"),
    };
    Ok(if already { TwoPcOutcome::AlreadyDone(message) } else { TwoPcOutcome::Failed(message) })
}

/// Doris' label rule: `^[-_A-Za-z0-9:]{1,128}$`.
pub fn is_valid_label(label: &str) -> bool {
    (1..=128).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
}

/// Characters a label may not hold (a database or table name can) become `_`.
pub fn label_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':') { c } else { '_' }).collect()
}

/// The label of the one exactly-once load of a checkpoint: the same on every attempt and after
/// a restart, which is what lets Doris refuse a second load of it.
pub fn checkpoint_label(prefix: &str, database: &str, table: &str, checkpoint_id: u64) -> String {
    format!("{prefix}_{}_{}_{checkpoint_id}", label_safe(database), label_safe(table))
}

/// The first lines of a load's error log, which quote the rejected rows.
pub fn error_log_excerpt(log: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).take(max_lines).collect();
    let mut out = lines.join("\n");
    const LIMIT: usize = 2000;
    if out.len() > LIMIT {
        let mut cut = LIMIT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// `Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(6 + bytes.len().div_ceil(3) * 4);
    out.push_str("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if body.len() > 300 {
        format!("{text}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Replies as Doris 2.1 sends them (doris-website stream-load manual, 2PC section).
    const SUCCESS_2PC: &[u8] = br#"{
    "TxnId": 18036,
    "Label": "55c8ffc9-1c40-4d51-b75e-f2265b3602ef",
    "TwoPhaseCommit": "true",
    "Status": "Success",
    "Message": "OK",
    "NumberTotalRows": 100,
    "NumberLoadedRows": 100,
    "NumberFilteredRows": 0,
    "NumberUnselectedRows": 0,
    "LoadBytes": 1031,
    "LoadTimeMs": 77,
    "BeginTxnTimeMs": 1,
    "StreamLoadPutTimeMs": 1,
    "ReadDataTimeMs": 0,
    "WriteDataTimeMs": 58,
    "CommitAndPublishTimeMs": 0
}"#;

    const LABEL_EXISTS: &[u8] = br#"{"TxnId":-1,"Label":"cdc_db_t_7","TwoPhaseCommit":"true","Status":"Label Already Exists","ExistingJobStatus":"PRECOMMITTED","Message":"errCode = 2, detailMessage = Label [cdc_db_t_7] has already been used, relate to txn [19650]","NumberTotalRows":0,"NumberLoadedRows":0,"NumberFilteredRows":0}"#;

    const DATA_QUALITY: &[u8] = br#"{"TxnId":1003,"Label":"x","TwoPhaseCommit":"false","Status":"Fail","Message":"[DATA_QUALITY_ERROR]too many filtered rows","NumberTotalRows":2,"NumberLoadedRows":1,"NumberFilteredRows":1,"ErrorURL":"http://192.168.1.1:8040/api/_load_error_log?file=__shard_0/error_log_insert_stmt_a1-b2_a1_b2"}"#;

    #[test]
    fn parses_a_precommitted_load() {
        let LoadReply::Load(r) = parse_load_reply(SUCCESS_2PC).unwrap() else { panic!("not a load reply") };
        assert_eq!(r.status, LoadStatus::Success);
        assert_eq!(r.txn_id, Some(18036));
        assert_eq!(r.loaded_rows, 100);
        assert_eq!(r.error_url, None);
    }

    #[test]
    fn label_already_exists_names_its_transaction() {
        let LoadReply::Load(r) = parse_load_reply(LABEL_EXISTS).unwrap() else { panic!("not a load reply") };
        assert_eq!(r.status, LoadStatus::LabelAlreadyExists(ExistingJob::Precommitted));
        assert_eq!(r.txn_id, None);
        assert_eq!(txn_of_existing_label(&r.message), Some(19650));
    }

    #[test]
    fn data_quality_failure_carries_the_error_url() {
        let LoadReply::Load(r) = parse_load_reply(DATA_QUALITY).unwrap() else { panic!("not a load reply") };
        assert_eq!(r.status, LoadStatus::Fail);
        assert_eq!(classify_failure(&r.message), LoadFailure::DataQuality);
        assert!(r.error_url.unwrap().contains("_load_error_log"));
    }

    #[test]
    fn frontend_refusals_come_back_as_http_200_bodies() {
        let auth = br#"{"msg":"Unauthorized","code":401,"data":"Access denied for user 'root'@'10.0.0.1' (using password: YES)","count":0}"#;
        let LoadReply::Frontend(e) = parse_load_reply(auth).unwrap() else { panic!("not an FE reply") };
        assert!(e.is_unauthorized());
        assert!(e.message.contains("Access denied"), "{}", e.message);
        let failed = br#"{"status":"FAILED","msg":"There is no 100-continue header"}"#;
        let LoadReply::Frontend(e) = parse_load_reply(failed).unwrap() else { panic!("not an FE reply") };
        assert!(!e.is_unauthorized());
        assert_eq!(e.message, "There is no 100-continue header");
        assert!(parse_load_reply(b"<html>").is_err());
    }

    #[test]
    fn two_pc_replies_treat_repeats_as_done() {
        let ok = br#"{"status":"Success","msg":"transaction [18036] commit successfully."}"#;
        assert_eq!(parse_two_pc_reply(ok, TxnOperation::Commit).unwrap(), TwoPcOutcome::Done);
        let visible = br#"{"status":"Fail","msg":"errCode = 2, detailMessage = transaction [18036] is already visible, not pre-committed."}"#;
        assert!(matches!(parse_two_pc_reply(visible, TxnOperation::Commit).unwrap(), TwoPcOutcome::AlreadyDone(_)));
        let aborted = br#"{"status":"Fail","msg":"errCode = 2, detailMessage = transaction [18036] is already aborted, abort reason: User Abort"}"#;
        assert!(matches!(parse_two_pc_reply(aborted, TxnOperation::Commit).unwrap(), TwoPcOutcome::Failed(_)));
        assert!(matches!(parse_two_pc_reply(aborted, TxnOperation::Abort).unwrap(), TwoPcOutcome::AlreadyDone(_)));
        let missing = br#"{"status":"Fail","msg":"errCode = 2, detailMessage = transaction [19650] not found"}"#;
        assert!(matches!(parse_two_pc_reply(missing, TxnOperation::Abort).unwrap(), TwoPcOutcome::AlreadyDone(_)));
        assert!(matches!(parse_two_pc_reply(missing, TxnOperation::Commit).unwrap(), TwoPcOutcome::Failed(_)));
        let auth = br#"{"msg":"Unauthorized","code":401,"data":null,"count":0}"#;
        assert!(matches!(parse_two_pc_reply(auth, TxnOperation::Commit).unwrap(), TwoPcOutcome::Unauthorized(_)));
    }

    #[test]
    fn classifies_failures() {
        let versions = "[E-235]failed to init rowset builder. version count: 2001, exceed limit: 2000, tablet: 10086";
        assert_eq!(classify_failure(versions), LoadFailure::TooManyVersions);
        assert_eq!(classify_failure("errCode = 2, detailMessage = Unknown table 'orders'"), LoadFailure::UnknownTable);
        assert_eq!(
            classify_failure("errCode = 2, detailMessage = Unknown column 'x' in 'orders'"),
            LoadFailure::UnknownColumn
        );
        assert_eq!(classify_failure("[INTERNAL_ERROR]cancelled: rpc timeout"), LoadFailure::Other);
    }

    #[test]
    fn labels_follow_the_doris_rule() {
        assert_eq!(checkpoint_label("cdc", "my-db", "dim users", 12), "cdc_my-db_dim_users_12");
        assert!(is_valid_label("cdc_db_t_1"));
        assert!(!is_valid_label("a b"));
        assert!(!is_valid_label(""));
        assert!(!is_valid_label(&"x".repeat(129)));
    }

    #[test]
    fn basic_auth_is_rfc_7617() {
        assert_eq!(basic_auth("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(basic_auth("root", ""), "Basic cm9vdDo=");
    }

    #[test]
    fn error_log_excerpt_keeps_the_first_lines() {
        let log = b"Reason: column(k) is null. src line [{\"k\":null}]; \n\nReason: two\nReason: three\n";
        assert_eq!(error_log_excerpt(log, 2), "Reason: column(k) is null. src line [{\"k\":null}];\nReason: two");
    }
}
