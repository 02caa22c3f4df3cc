//! The job's HTTP endpoint: Flink's REST API shapes (`/overview`, `/jobs/overview`, `/jobs/{id}`,
//! `/jobs/{id}/checkpoints`, `/jobs/{id}/exceptions`, `POST /jobs/{id}/stop`), Prometheus
//! `/metrics`, and a dashboard at `/` (static HTML and JavaScript compiled into the binary).
//!
//! A minimal HTTP/1.1 server over tokio's `TcpListener`: one request per connection
//! (`Connection: close`), request heads up to 16 KiB, bodies up to 64 KiB, 10 s to send a
//! request. Enough for curl, Prometheus and browsers; nothing here is on the data path.

mod flink;
mod prometheus;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::runtime::metrics::JobMetrics;

pub use flink::VERSION;

/// Flink's default REST address and port.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8081;

const DASHBOARD: &str = include_str!("dashboard.html");
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener, ready to serve a job.
pub struct HttpServer {
    listener: TcpListener,
}

impl HttpServer {
    /// Binds `address`; `option` names the setting that chose it, for the error message.
    pub async fn bind(address: &str, option: &str) -> Result<HttpServer> {
        let listener = TcpListener::bind(address).await.map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "the port is already in use (another cdc-sql job or Flink?)".to_string()
            } else {
                e.to_string()
            };
            Error::user(format!(
                "cannot serve the REST API on {address}: {why}. Choose another address with {option}, \
                 or disable it with --no-http"
            ))
        })?;
        Ok(HttpServer { listener })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| Error::external(format!("REST API listener: {e}")))
    }

    /// Serves `metrics` until `shutdown` is cancelled; `stop` is cancelled by `POST …/stop`.
    pub async fn serve(self, metrics: Arc<JobMetrics>, stop: CancellationToken, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else {
                // Out of file descriptors and the like: let the moment pass rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let metrics = metrics.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                if let Ok(Ok(())) = tokio::time::timeout(REQUEST_TIMEOUT, connection(stream, &metrics, &stop)).await {
                    return;
                }
                tracing::debug!("REST API: a connection timed out or broke off");
            });
        }
    }
}

/// A request as far as routing needs it.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, value: &Value) -> Response {
        Response { status, content_type: "application/json; charset=utf-8", body: value.to_string().into_bytes() }
    }

    fn error(status: u16, message: &str) -> Response {
        Response::json(status, &flink::error(message))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Error",
    }
}

async fn connection(mut stream: TcpStream, metrics: &JobMetrics, stop: &CancellationToken) -> std::io::Result<()> {
    let response = match read_request(&mut stream).await? {
        Ok(request) => handle(&request, metrics, stop),
        Err(response) => response,
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<std::result::Result<Request, Response>> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Err(Response::error(413, "request head too large")));
        }
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut request = match parse_head(&head) {
        Ok(r) => r,
        Err(message) => return Ok(Err(Response::error(400, &message))),
    };
    let length = content_length(&head);
    if length > MAX_BODY {
        return Ok(Err(Response::error(413, "request body too large")));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(Ok(request))
}

fn content_length(head: &str) -> usize {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Parses `METHOD target HTTP/1.x`.
pub fn parse_head(head: &str) -> std::result::Result<Request, String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("malformed request line: {line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported protocol {version:?}"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request { method: method.to_string(), path: path.to_string(), query: query.to_string(), body: Vec::new() })
}

/// Routes a request. Paths may carry Flink's `/v1` version prefix.
pub fn handle(request: &Request, metrics: &JobMetrics, stop: &CancellationToken) -> Response {
    let path = request.path.strip_prefix("/v1").filter(|p| p.starts_with('/')).unwrap_or(&request.path);
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = request.method.as_str();
    let get = method == "GET";
    match segments.as_slice() {
        [] | [""] | ["index.html"] if get => {
            Response { status: 200, content_type: "text/html; charset=utf-8", body: DASHBOARD.as_bytes().to_vec() }
        }
        ["metrics"] if get => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus::render(metrics).into_bytes(),
        },
        ["overview"] if get => Response::json(200, &flink::overview(metrics)),
        ["config"] if get => Response::json(
            200,
            &serde_json::json!({
                "refresh-interval": 3000,
                "timezone-name": "UTC",
                "timezone-offset": 0,
                "flink-version": VERSION,
                "flink-revision": "",
                "features": { "web-submit": false, "web-cancel": true, "web-rescale": false, "web-history": false },
            }),
        ),
        ["jobs"] if get => Response::json(200, &flink::jobs(metrics)),
        ["jobs", "overview"] if get => Response::json(200, &flink::jobs_overview(metrics)),
        ["jobs", id, rest @ ..] => {
            if *id != metrics.job_id {
                return Response::error(404, &format!("Job {id} not found; this process runs job {}", metrics.job_id));
            }
            match (method, rest) {
                ("GET", []) => Response::json(200, &flink::job(metrics)),
                ("GET", ["checkpoints"]) => Response::json(200, &flink::checkpoints(metrics)),
                ("GET", ["exceptions"]) => Response::json(200, &flink::exceptions(metrics)),
                ("POST", ["stop"]) => stop_job(request, metrics, stop),
                // `flink cancel` sends PATCH /jobs/{id}?mode=cancel.
                ("PATCH", []) => {
                    stop.cancel();
                    Response::json(202, &serde_json::json!({}))
                }
                (_, [] | ["checkpoints"] | ["exceptions"] | ["stop"]) => {
                    Response::error(405, &format!("{method} is not allowed on {path}"))
                }
                _ => Response::error(404, &format!("Not found: {path}")),
            }
        }
        _ if !get && method != "POST" && method != "PATCH" => {
            Response::error(405, &format!("{method} is not allowed on {path}"))
        }
        _ => Response::error(404, &format!("Not found: {path}")),
    }
}

/// Flink's stop-with-savepoint: here the final checkpoint goes to the job's state directory, then
/// the process exits 0.
fn stop_job(request: &Request, metrics: &JobMetrics, stop: &CancellationToken) -> Response {
    if !request.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, &format!("the request body is not JSON: {e}")),
        };
        if body.get("targetDirectory").is_some_and(|d| !d.is_null()) {
            return Response::error(
                400,
                "targetDirectory is not supported: the final checkpoint is written to the job's state directory \
                 ('state.checkpoints.dir'); send the request without it",
            );
        }
    }
    metrics.request_stop();
    stop.cancel();
    Response::json(202, &serde_json::json!({ "request-id": format!("{}-stop", metrics.job_id) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request {
        Request { method: "GET".into(), path: path.into(), query: String::new(), body: Vec::new() }
    }

    fn job() -> Arc<JobMetrics> {
        JobMetrics::new("orders", &[("INSERT INTO out".into(), vec!["src".into()], "out".into())])
    }

    fn json(r: &Response) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn request_lines_parse() {
        let r = parse_head("GET /v1/jobs/overview?x=1 HTTP/1.1\r\nHost: a").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.query.as_str()), ("GET", "/v1/jobs/overview", "x=1"));
        assert!(parse_head("GET /").is_err());
        assert!(parse_head("GET / SPDY/3").is_err());
        assert_eq!(content_length("POST / HTTP/1.1\r\ncontent-length: 12"), 12);
    }

    #[test]
    fn routes_answer_in_flinks_shapes() {
        let m = job();
        let stop = CancellationToken::new();
        let overview = json(&handle(&get("/v1/jobs/overview"), &m, &stop));
        assert_eq!(overview["jobs"][0]["jid"], m.job_id.as_str());
        assert_eq!(overview["jobs"][0]["tasks"]["total"], 1);
        let id = m.job_id.clone();
        for path in [format!("/jobs/{id}"), format!("/jobs/{id}/checkpoints"), format!("/jobs/{id}/exceptions")] {
            assert_eq!(handle(&get(&path), &m, &stop).status, 200, "{path}");
        }
        assert_eq!(handle(&get("/jobs/0123/checkpoints"), &m, &stop).status, 404);
        assert_eq!(handle(&get("/nothing"), &m, &stop).status, 404);
        assert_eq!(handle(&get("/"), &m, &stop).content_type, "text/html; charset=utf-8");
        let delete = Request { method: "DELETE".into(), ..get(&format!("/jobs/{id}")) };
        assert_eq!(handle(&delete, &m, &stop).status, 405);
        assert!(json(&handle(&get(&format!("/jobs/{id}")), &m, &stop))["vertices"][0]
            .get("replication-slot")
            .is_none());
    }

    #[test]
    fn job_details_name_the_replication_slot_a_pipeline_holds() {
        let m = job();
        m.pipelines[0].add_slot(crate::connectors::ReplicationSlot {
            name: "cdc_orders".into(),
            server: "cdc@db:5432/shop".into(),
            drop_on_stop: true,
        });
        let details = json(&handle(&get(&format!("/jobs/{}", m.job_id)), &m, &CancellationToken::new()));
        assert_eq!(
            details["vertices"][0]["replication-slot"],
            serde_json::json!({ "name": "cdc_orders", "server": "cdc@db:5432/shop", "drop-on-stop": true })
        );
    }

    #[test]
    fn stop_cancels_the_job_and_refuses_a_target_directory() {
        let m = job();
        let stop = CancellationToken::new();
        let post = |body: &str| Request {
            method: "POST".into(),
            path: format!("/jobs/{}/stop", m.job_id),
            query: String::new(),
            body: body.as_bytes().to_vec(),
        };
        let refused = handle(&post(r#"{"targetDirectory": "/tmp/sp"}"#), &m, &stop);
        assert_eq!(refused.status, 400);
        assert!(!stop.is_cancelled());
        assert_eq!(handle(&post("not json"), &m, &stop).status, 400);
        let accepted = handle(&post(r#"{"drain": false}"#), &m, &stop);
        assert_eq!(accepted.status, 202);
        assert!(json(&accepted)["request-id"].is_string());
        assert!(stop.is_cancelled() && m.stopped_by_request());
    }

    #[test]
    fn secrets_in_errors_never_reach_an_endpoint() {
        crate::secrets::register(["Pa55-endpoint-secret".to_string()]);
        let m = job();
        m.record_exception(&Error::external("cannot connect to mysql://root:Pa55-endpoint-secret@db:3306"));
        m.checkpoint_failed(crate::runtime::metrics::CheckpointStats {
            id: 1,
            status: crate::runtime::metrics::CheckpointStatus::Failed,
            trigger_ms: 0,
            ack_ms: 0,
            duration_ms: 0,
            size_bytes: 0,
            path: None,
            pipelines: 1,
            acknowledged: 0,
            failure: Some(crate::secrets::redact("sink said Pa55-endpoint-secret")),
        });
        let stop = CancellationToken::new();
        let id = m.job_id.clone();
        for path in ["/", "/metrics", "/overview", "/jobs/overview", "/config"].into_iter().map(String::from).chain([
            format!("/jobs/{id}"),
            format!("/jobs/{id}/checkpoints"),
            format!("/jobs/{id}/exceptions"),
        ]) {
            let body = String::from_utf8(handle(&get(&path), &m, &stop).body).unwrap();
            assert!(!body.contains("Pa55-endpoint-secret"), "{path} leaks the secret: {body}");
        }
        let exceptions = json(&handle(&get(&format!("/jobs/{id}/exceptions")), &m, &stop));
        assert!(exceptions["root-exception"].as_str().unwrap().contains("root:******@db"));
    }
}
