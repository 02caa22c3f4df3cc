//! IoTDB REST responses and statements. Every endpoint but `/ping` answers with a JSON
//! `{"code": N, "message": "…"}` (HTTP 200, code 200 = success; HTTP 401 with code 800/801 when
//! authentication fails). Which codes are worth retrying is decided here. Pure, no I/O.

use serde::Deserialize;

use crate::error::Error;

#[derive(Debug, Deserialize)]
pub struct Status {
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
}

/// What to do with a response.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Success,
    /// Worth retrying (server busy, restarting, overloaded).
    Transient(String),
    Failed(ErrorClass, String),
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub enum ErrorClass {
    /// Wrong user or password, missing privilege.
    Auth,
    /// A series already has another data type: other measurements of the request may be written.
    TypeConflict,
    /// Anything else the server refused.
    Rejected,
}

/// Status codes that describe a passing condition on the server (TSStatusCode).
const TRANSIENT_CODES: &[i64] = &[
    602,  // STORAGE_ENGINE_NOT_READY
    606,  // WRITE_PROCESS_REJECT (memory pressure)
    712,  // INTERNAL_REQUEST_TIME_OUT
    713,  // INTERNAL_REQUEST_RETRY_ERROR
    717,  // TOO_MANY_CONCURRENT_QUERIES_ERROR
    719,  // QUERY_EXECUTION_MEMORY_NOT_ENOUGH
    720,  // QUERY_TIMEOUT
    721,  // PLAN_FAILED_NETWORK_PARTITION
    905,  // REGION_LEADER_CHANGE_ERROR
    906,  // NO_AVAILABLE_REGION_GROUP
    1007, // CAN_NOT_CONNECT_DATANODE
    1010, // CAN_NOT_CONNECT_CONFIGNODE
    1012, // NO_AVAILABLE_REPLICA
    1701, // NUM_REQUESTS_EXCEEDED
    1704, // NUM_WRITE_REQUESTS_EXCEEDED
    1705, // WRITE_SIZE_EXCEEDED
];

/// Classifies an HTTP answer from its status and body.
pub fn outcome(http_status: u16, body: &[u8]) -> Outcome {
    let status: Option<Status> = serde_json::from_slice(body).ok();
    let text = || match &status {
        Some(s) => format!("code {}: {}", s.code, s.message.as_deref().unwrap_or("")),
        None => format!("HTTP {http_status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]).trim()),
    };
    match (http_status, &status) {
        (200, Some(s)) if s.code == 200 => Outcome::Success,
        (401 | 403, _) => Outcome::Failed(ErrorClass::Auth, text()),
        (_, Some(s)) if (800..=822).contains(&s.code) => Outcome::Failed(ErrorClass::Auth, text()),
        (_, Some(s)) if s.code == 507 || s.code == 614 => Outcome::Failed(ErrorClass::TypeConflict, text()),
        (_, Some(s)) if TRANSIENT_CODES.contains(&s.code) => Outcome::Transient(text()),
        (500..=599 | 429, _) => Outcome::Transient(text()),
        _ => Outcome::Failed(ErrorClass::Rejected, text()),
    }
}

/// Whether a DELETE failed only because its path or table does not exist yet (PATH_NOT_EXIST 508,
/// TABLE_NOT_EXISTS 550): there is nothing to delete, which is what the DELETE wanted.
pub fn is_missing_target(body: &[u8]) -> bool {
    serde_json::from_slice::<Status>(body).is_ok_and(|s| s.code == 508 || s.code == 550)
}

/// The error the job stops with for a failed request to `what`.
pub fn failure(class: ErrorClass, what: &str, detail: &str) -> Error {
    match class {
        ErrorClass::Auth => Error::user(format!(
            "iotdb sink: {what} was refused: authentication failed ({detail}); check the 'user' and 'password' options and the user's privileges"
        )),
        ErrorClass::TypeConflict => Error::user(format!(
            "iotdb sink: {what} hit a data type conflict ({detail}). A series keeps the type of its first write; the request's other measurements may have been written. Drop or rename the series in IoTDB, or CAST the column to the registered type"
        )),
        ErrorClass::Rejected => Error::user(format!("iotdb sink: {what} was rejected by IoTDB ({detail})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_classified() {
        assert_eq!(outcome(200, br#"{"code":200,"message":"SUCCESS_STATUS"}"#), Outcome::Success);
        assert!(matches!(
            outcome(401, br#"{"code":801,"message":"WRONG_LOGIN_PASSWORD"}"#),
            Outcome::Failed(ErrorClass::Auth, m) if m.contains("801")
        ));
        assert!(matches!(outcome(401, b""), Outcome::Failed(ErrorClass::Auth, _)));
        assert!(matches!(
            outcome(200, br#"{"code":507,"message":"data type conflict"}"#),
            Outcome::Failed(ErrorClass::TypeConflict, _)
        ));
        assert!(matches!(outcome(200, br#"{"code":606,"message":"busy"}"#), Outcome::Transient(_)));
        assert!(matches!(outcome(503, b"<html>down</html>"), Outcome::Transient(m) if m.contains("HTTP 503")));
        assert!(matches!(
            outcome(200, br#"{"code":509,"message":"bad path"}"#),
            Outcome::Failed(ErrorClass::Rejected, _)
        ));
        assert!(matches!(outcome(200, b"not json"), Outcome::Failed(ErrorClass::Rejected, _)));
        assert!(is_missing_target(br#"{"code":550,"message":"Table 'db.t' does not exist."}"#));
        assert!(!is_missing_target(br#"{"code":507,"message":"x"}"#));
    }
}
