//! A minimal HTTP/1.1 client for Stream Load, written for what generic clients do not do:
//! a real `Expect: 100-continue` exchange (headers first; the body only after `100 Continue`, so
//! an FE's `307` or an early refusal costs no upload) and redirects followed by re-sending the
//! same body with our own credentials (the FE's `Location` carries `user:password@`, which is
//! dropped, never logged). One connection per request (`Connection: close`): a load is large
//! and rare, so connection reuse would save nothing worth its state.
//!
//! Plain HTTP only. Response heads and chunked bodies are parsed by pure functions.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where a request goes. Userinfo of a URL is dropped on parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// `host:port` and path, without credentials: safe for messages.
    pub fn display(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Parses `http://[user[:password]@]host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err("https is not supported (plain HTTP only)".into());
    } else {
        return Err("not an http:// URL".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let (host, port) = parse_host_port(host_port, 80)?;
    Ok(Target { host, port, path: path.to_string() })
}

/// `host[:port]`, IPv6 in brackets.
pub fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in host")?;
        let host = &rest[..end];
        match rest[end + 1..].strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None => (host, None),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("invalid port '{p}'"))?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }
}

/// Why a request failed before a complete response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Nothing was sent: the server is down or unreachable.
    Connect(String),
    /// The request may or may not have reached the server (e.g. a reply lost after a commit).
    Exchange(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(m) => write!(f, "cannot connect: {m}"),
            HttpError::Exchange(m) => write!(f, "no complete reply: {m}"),
        }
    }
}

pub struct Request<'a> {
    pub method: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Send `Expect: 100-continue` and hold the body back until the server agrees. Doris' FE
    /// refuses a Stream Load without this header, even an empty one.
    pub expect_continue: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// How long to wait for `100 Continue` before sending the body anyway (RFC 9110 §10.1.1).
    pub expect_continue: Duration,
    /// The whole exchange, from connecting to the last byte of the reply.
    pub total: Duration,
}

/// Largest reply body kept; error logs are quoted only by their first lines.
const MAX_BODY: usize = 4 << 20;

/// Sends `request` to `target` and returns the final response (not following redirects).
pub async fn send(target: &Target, request: &Request<'_>, timeouts: Timeouts) -> Result<Response, HttpError> {
    match tokio::time::timeout(timeouts.total, exchange(target, request, timeouts)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Exchange(format!(
            "{} {} timed out after {:?}",
            request.method,
            target.display(),
            timeouts.total
        ))),
    }
}

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    eof: bool,
}

impl Connection {
    /// Reads more bytes into the buffer. Cancel-safe: bytes read stay in `buffer`.
    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            self.eof = true;
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn read_head(&mut self) -> Result<ResponseHead, HttpError> {
        loop {
            if let Some((head, consumed)) = parse_head(&self.buffer).map_err(HttpError::Exchange)? {
                self.buffer.drain(..consumed);
                return Ok(head);
            }
            if self.eof {
                return Err(HttpError::Exchange("connection closed before a reply".into()));
            }
            self.fill().await.map_err(|e| HttpError::Exchange(e.to_string()))?;
        }
    }

    async fn read_body(&mut self, head: &ResponseHead) -> Result<Vec<u8>, HttpError> {
        if let Some(length) = head.content_length {
            while self.buffer.len() < length.min(MAX_BODY) && !self.eof {
                self.fill().await.map_err(|e| HttpError::Exchange(e.to_string()))?;
            }
            if self.buffer.len() < length.min(MAX_BODY) {
                return Err(HttpError::Exchange("connection closed in the middle of the reply".into()));
            }
            self.buffer.truncate(length.min(MAX_BODY));
            return Ok(std::mem::take(&mut self.buffer));
        }
        if head.chunked {
            loop {
                if let Some(body) = decode_chunked(&self.buffer).map_err(HttpError::Exchange)? {
                    return Ok(body);
                }
                if self.eof || self.buffer.len() > MAX_BODY {
                    return Err(HttpError::Exchange("chunked reply ended early".into()));
                }
                self.fill().await.map_err(|e| HttpError::Exchange(e.to_string()))?;
            }
        }
        while !self.eof && self.buffer.len() < MAX_BODY {
            self.fill().await.map_err(|e| HttpError::Exchange(e.to_string()))?;
        }
        Ok(std::mem::take(&mut self.buffer))
    }

    async fn read_final(&mut self) -> Result<Response, HttpError> {
        loop {
            let head = self.read_head().await?;
            if (100..200).contains(&head.status) {
                continue;
            }
            let body = self.read_body(&head).await?;
            return Ok(Response { status: head.status, headers: head.headers, body });
        }
    }
}

async fn exchange(target: &Target, request: &Request<'_>, timeouts: Timeouts) -> Result<Response, HttpError> {
    let address = (target.host.as_str(), target.port);
    let stream = match tokio::time::timeout(timeouts.connect, TcpStream::connect(address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(HttpError::Connect(format!("{}:{}: {e}", target.host, target.port))),
        Err(_) => {
            return Err(HttpError::Connect(format!(
                "{}:{}: timed out after {:?}",
                target.host, target.port, timeouts.connect
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    let mut conn = Connection { stream, buffer: Vec::new(), eof: false };
    let expect_continue = request.expect_continue;
    let head = request_head(target, request, expect_continue);
    conn.stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| HttpError::Connect(format!("{}: {e}", target.display())))?;
    if !expect_continue {
        return conn.read_final().await;
    }
    // Wait for the server's verdict on the headers before uploading.
    let interim = match tokio::time::timeout(timeouts.expect_continue, conn.read_head()).await {
        Ok(head) => Some(head?),
        Err(_) => None,
    };
    if let Some(head) = interim {
        if !(100..200).contains(&head.status) {
            // A final answer (redirect, refusal) to the headers alone: the body is never sent.
            let body = conn.read_body(&head).await?;
            return Ok(Response { status: head.status, headers: head.headers, body });
        }
    }
    if let Err(e) = conn.stream.write_all(request.body).await {
        // The server may have answered and closed while we were uploading: prefer its answer.
        return conn.read_final().await.map_err(|_| HttpError::Exchange(format!("{}: {e}", target.display())));
    }
    conn.read_final().await
}

fn request_head(target: &Target, request: &Request<'_>, expect_continue: bool) -> String {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\nConnection: close\r\n",
        request.method,
        target.path,
        target.host,
        target.port,
        request.body.len()
    );
    if expect_continue {
        head.push_str("Expect: 100-continue\r\n");
    }
    for (name, value) in request.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

#[derive(Debug, PartialEq, Eq)]
struct ResponseHead {
    status: u16,
    headers: Vec<(String, String)>,
    content_length: Option<usize>,
    chunked: bool,
}

/// Parses a response head from the start of `buffer`: `None` until it is complete, else the
/// head and how many bytes it took.
fn parse_head(buffer: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buffer.len() > 64 * 1024 {
            return Err("reply head larger than 64 KiB".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buffer[..end]).map_err(|_| "reply head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x reply: {status_line:?}"));
    }
    let status = parts.next().and_then(|s| s.parse::<u16>().ok()).ok_or(format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(format!("bad header line {line:?}"))?;
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| format!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
        headers.push((name, value));
    }
    if chunked {
        content_length = None;
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        content_length = Some(0);
    }
    Ok(Some((ResponseHead { status, headers, content_length, chunked }, end + 4)))
}

/// Decodes a complete chunked body; `None` while the terminating chunk has not arrived.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size".to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        let t = parse_url("http://root:secret@10.0.0.7:8040/api/db/t/_stream_load?").unwrap();
        assert_eq!(t, Target { host: "10.0.0.7".into(), port: 8040, path: "/api/db/t/_stream_load?".into() });
        assert!(!t.display().contains("secret"));
        assert_eq!(parse_url("http://be").unwrap().port, 80);
        assert_eq!(parse_url("http://[::1]:8040/x").unwrap().host, "::1");
        assert!(parse_url("https://be:8040/").unwrap_err().contains("https"));
        assert!(parse_url("be:8040").is_err());
    }

    #[test]
    fn host_ports() {
        assert_eq!(parse_host_port("fe:8030", 1).unwrap(), ("fe".into(), 8030));
        assert_eq!(parse_host_port(" fe ", 8030).unwrap(), ("fe".into(), 8030));
        assert!(parse_host_port("fe:x", 1).is_err());
        assert!(parse_host_port(":8030", 1).is_err());
    }

    #[test]
    fn parses_heads_of_redirects_and_interim_replies() {
        let redirect = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://root:@be:8040/api/d/t/_stream_load\r\nContent-Length: 0\r\n\r\n";
        let (head, used) = parse_head(redirect).unwrap().unwrap();
        assert_eq!(head.status, 307);
        assert_eq!(used, redirect.len());
        assert_eq!(head.content_length, Some(0));
        let (cont, used) = parse_head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK").unwrap().unwrap();
        assert_eq!((cont.status, used), (100, 25));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-").unwrap(), None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        let (chunked, _) =
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n").unwrap().unwrap();
        assert!(chunked.chunked && chunked.content_length.is_none());
    }

    #[test]
    fn decodes_chunked_bodies() {
        assert_eq!(decode_chunked(b"4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n").unwrap(), Some(b"{\"a\":1}".to_vec()));
        assert_eq!(decode_chunked(b"4\r\n{\"a").unwrap(), None);
        assert!(decode_chunked(b"zz\r\n").is_err());
    }
}
