//! The connector's bulk sessions, speaking PostgreSQL's frontend/backend protocol directly:
//! startup, password authentication (cleartext, MD5, SCRAM-SHA-256; no TLS, like the rest of
//! this connector), simple queries, `COPY … TO STDOUT` for the snapshot, and the replication
//! session's CopyBoth stream (see [`super::replication`]). Messages are read in place from one
//! large buffer.
//!
//! tokio-postgres splits every backend message into its own reference-counted buffer and passes
//! it through a channel; with one CopyData message per row that was a third of the snapshot's
//! CPU, and handing every replication event from a reader task to the source cost a thread
//! wake-up per event. Ordinary queries (planning, checks) still go through tokio-postgres.

use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::checks::db_error;
use super::{session_options, Config};
use crate::error::{Error, Result};

const READ_BUFFER: usize = 256 * 1024;

pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// What a session is for: a replication session is a walsender (`replication=database`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Snapshot,
    Replication,
}

/// What a query or COPY is doing, for messages.
pub(super) type Doing<'a> = &'a str;

/// Backend messages, read in place from one buffer.
pub(super) struct Inbox<R> {
    stream: R,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> Inbox<R> {
    fn new(stream: R) -> Self {
        Inbox { stream, buf: vec![0; READ_BUFFER], start: 0, end: 0 }
    }

    /// Takes the message at the read position if it is complete: its tag and body range.
    pub fn take_message(&mut self) -> Option<(u8, Range<usize>)> {
        let (tag, body) = self.complete_message()?;
        self.start = body.end;
        Some((tag, body))
    }

    fn complete_message(&self) -> Option<(u8, Range<usize>)> {
        let head = self.buf.get(self.start..self.start + 5).filter(|_| self.end >= self.start + 5)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let end = self.start + 1 + len;
        (len >= 4 && end <= self.end).then_some((head[0], self.start + 5..end))
    }

    pub fn body(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads more bytes, first moving the unread ones to the front (and growing the buffer for a
    /// message larger than it). Cancel-safe: nothing moves after the read.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if let Some(head) = self.buf.get(..5).filter(|_| self.end >= 5) {
            let needed = 1 + u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if needed > self.buf.len() {
                self.buf.resize(needed, 0);
            }
        }
        let read = self.stream.read(&mut self.buf[self.end..]).await?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        self.end += read;
        Ok(read)
    }
}

pub struct Session {
    config: Arc<Config>,
    inbox: Inbox<Box<dyn Stream>>,
    out: BytesMut,
    /// The socket when it is TCP, whose receive low-water mark the replication reader tunes.
    tcp: Option<RawFd>,
}

/// A session in CopyBoth mode, split so status updates can be written while changes are read.
pub(super) struct CopyBoth {
    pub config: Arc<Config>,
    pub inbox: Inbox<ReadHalf<Box<dyn Stream>>>,
    pub out: WriteHalf<Box<dyn Stream>>,
    pub tcp: Option<RawFd>,
}

impl Session {
    /// Connects and authenticates within 'connect.timeout', retrying as 'connect.max-retries'
    /// says; the session is ready for queries.
    pub async fn connect(config: Arc<Config>, purpose: Purpose) -> Result<Session> {
        let doing = match purpose {
            Purpose::Snapshot => "connecting for the snapshot",
            Purpose::Replication => "connecting the replication session",
        };
        super::checks::with_connect_retries(&config, doing, || Session::connect_once(config.clone(), purpose, doing))
            .await
    }

    async fn connect_once(config: Arc<Config>, purpose: Purpose, doing: Doing<'static>) -> Result<Session> {
        let failed = |e: std::io::Error| Error::external(format!("{doing} to {}: {e}", config.where_()));
        let connecting = async {
            Ok::<(Box<dyn Stream>, Option<RawFd>), std::io::Error>(if config.host.starts_with('/') {
                let path = format!("{}/.s.PGSQL.{}", config.host, config.port);
                (Box::new(tokio::net::UnixStream::connect(path).await?), None)
            } else {
                let tcp = tokio::net::TcpStream::connect((config.host.as_str(), config.port)).await?;
                tcp.set_nodelay(true)?;
                let fd = tcp.as_raw_fd();
                (Box::new(tcp), Some(fd))
            })
        };
        let (stream, tcp) = connecting.await.map_err(failed)?;
        let options = session_options();
        let mut parameters = vec![
            ("user", config.user.as_str()),
            ("database", config.database.as_str()),
            ("application_name", "cdc-sql"),
            ("client_encoding", "UTF8"),
            ("options", options.as_str()),
        ];
        if purpose == Purpose::Replication {
            parameters.push(("replication", "database"));
        }
        let mut out = BytesMut::new();
        frontend::startup_message(parameters, &mut out).map_err(failed)?;
        let mut session = Session { config, inbox: Inbox::new(stream), out, tcp };
        session.flush(doing).await?;
        session.authenticate(doing).await?;
        session.until_ready(doing).await?;
        Ok(session)
    }

    async fn authenticate(&mut self, doing: Doing<'_>) -> Result<()> {
        let password = self.config.password.clone();
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = self.message(doing).await?;
            if tag != b'R' {
                return Err(self.unexpected(doing, tag));
            }
            let body = self.inbox.body(body);
            let Some(code) = body.get(..4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])) else {
                return Err(self.unexpected(doing, tag));
            };
            let data = body[4..].to_vec();
            let protocol = |e: std::io::Error| Error::external(format!("{doing}: authentication failed: {e}"));
            match code {
                0 => return Ok(()),
                3 => frontend::password_message(password.as_bytes(), &mut self.out).map_err(protocol)?,
                5 => {
                    let salt: [u8; 4] = data.get(..4).and_then(|s| s.try_into().ok()).unwrap_or_default();
                    let hash = md5_hash(self.config.user.as_bytes(), password.as_bytes(), salt);
                    frontend::password_message(hash.as_bytes(), &mut self.out).map_err(protocol)?;
                }
                10 => {
                    let offered = data.split(|b| *b == 0).any(|m| m == SCRAM_SHA_256.as_bytes());
                    if !offered {
                        return Err(Error::user(format!(
                            "{doing} to {}: the server offers no SASL mechanism cdc-sql speaks (SCRAM-SHA-256 without channel binding)",
                            self.config.where_()
                        )));
                    }
                    let exchange = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut self.out)
                        .map_err(protocol)?;
                    scram = Some(exchange);
                }
                11 => {
                    let exchange = scram.as_mut().ok_or_else(|| self.unexpected(doing, tag))?;
                    exchange.update(&data).map_err(protocol)?;
                    frontend::sasl_response(exchange.message(), &mut self.out).map_err(protocol)?;
                }
                12 => {
                    let exchange = scram.as_mut().ok_or_else(|| self.unexpected(doing, tag))?;
                    exchange.finish(&data).map_err(protocol)?;
                    continue;
                }
                other => {
                    return Err(Error::user(format!(
                    "{doing} to {}: the server asks for authentication method {other}, which cdc-sql does not speak; \
                         allow password, md5 or scram-sha-256 for this user in pg_hba.conf",
                    self.config.where_()
                )))
                }
            }
            self.flush(doing).await?;
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Runs `sql` (one or more statements) and waits for the server to be ready again.
    pub async fn execute(&mut self, sql: &str, doing: Doing<'_>) -> Result<()> {
        self.query(sql, doing).await?;
        self.until_ready(doing).await
    }

    /// Runs `sql`, one statement, and returns its rows as text values.
    pub async fn query_rows(&mut self, sql: &str, doing: Doing<'_>) -> Result<Vec<Vec<Option<String>>>> {
        self.query(sql, doing).await?;
        let mut rows = Vec::new();
        loop {
            match self.message(doing).await? {
                (b'Z', _) => return Ok(rows),
                (b'D', body) => {
                    let row = data_row(self.inbox.body(body)).ok_or_else(|| self.unexpected(doing, b'D'))?;
                    rows.push(row);
                }
                (b'C' | b'N' | b'S' | b'T' | b'I', _) => {}
                (tag, _) => return Err(self.unexpected(doing, tag)),
            }
        }
    }

    /// Starts `sql`, a `COPY … TO STDOUT`; then [`Session::copy_data`] until it returns false.
    pub async fn copy_out(&mut self, sql: &str, doing: Doing<'_>) -> Result<()> {
        self.query(sql, doing).await?;
        loop {
            match self.message(doing).await? {
                (b'H', _) => return Ok(()),
                (b'N' | b'S', _) => {}
                (tag, _) => return Err(self.unexpected(doing, tag)),
            }
        }
    }

    /// Hands every CopyData payload that is already buffered, or else arrives with the next read,
    /// to `data`. `false` once the COPY has ended and the session is ready for the next query.
    pub async fn copy_data(&mut self, doing: Doing<'_>, mut data: impl FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        if self.inbox.complete_message().is_none() {
            self.fill(doing).await?;
        }
        while let Some((tag, body)) = self.inbox.take_message() {
            match tag {
                b'd' => data(self.inbox.body(body))?,
                b'c' | b'N' | b'S' | b'C' => {}
                b'Z' => return Ok(false),
                b'E' => return Err(server_error(&self.config, doing, self.inbox.body(body))),
                other => return Err(self.unexpected(doing, other)),
            }
        }
        Ok(true)
    }

    /// Starts `sql`, which answers with CopyBothResponse (`START_REPLICATION`).
    pub async fn into_copy_both(mut self, sql: &str, doing: Doing<'_>) -> Result<CopyBoth> {
        self.query(sql, doing).await?;
        loop {
            match self.message(doing).await? {
                (b'W', _) => break,
                (b'N' | b'S', _) => {}
                (tag, _) => return Err(self.unexpected(doing, tag)),
            }
        }
        let Inbox { stream, buf, start, end } = self.inbox;
        let (read, out) = tokio::io::split(stream);
        Ok(CopyBoth { config: self.config, inbox: Inbox { stream: read, buf, start, end }, out, tcp: self.tcp })
    }

    async fn query(&mut self, sql: &str, doing: Doing<'_>) -> Result<()> {
        frontend::query(sql, &mut self.out).map_err(|e| Error::internal(format!("{doing}: {e}")))?;
        self.flush(doing).await
    }

    /// Reads past CommandComplete and the like up to ReadyForQuery.
    async fn until_ready(&mut self, doing: Doing<'_>) -> Result<()> {
        loop {
            match self.message(doing).await? {
                (b'Z', _) => return Ok(()),
                (b'C' | b'N' | b'S' | b'K' | b'I' | b'T' | b'D', _) => {}
                (tag, _) => return Err(self.unexpected(doing, tag)),
            }
        }
    }

    async fn flush(&mut self, doing: Doing<'_>) -> Result<()> {
        let out = self.out.split();
        let stream = &mut self.inbox.stream;
        let written = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        written.await.map_err(|e| io_error(&self.config, doing, e))
    }

    /// The next message (tag, body range in the inbox); ErrorResponse becomes the error it
    /// reports.
    async fn message(&mut self, doing: Doing<'_>) -> Result<(u8, Range<usize>)> {
        loop {
            if let Some((tag, body)) = self.inbox.take_message() {
                if tag == b'E' {
                    return Err(server_error(&self.config, doing, self.inbox.body(body)));
                }
                return Ok((tag, body));
            }
            self.fill(doing).await?;
        }
    }

    async fn fill(&mut self, doing: Doing<'_>) -> Result<()> {
        self.inbox.fill().await.map(drop).map_err(|e| io_error(&self.config, doing, e))
    }

    fn unexpected(&self, doing: Doing<'_>, tag: u8) -> Error {
        unexpected(&self.config, doing, tag)
    }
}

pub(super) fn io_error(config: &Config, doing: Doing<'_>, e: std::io::Error) -> Error {
    Error::external(format!("{doing} on {}: {e}", config.where_()))
}

pub(super) fn unexpected(config: &Config, doing: Doing<'_>, tag: u8) -> Error {
    Error::external(format!("{doing} on {}: unexpected protocol message '{}'", config.where_(), tag.escape_ascii()))
}

/// An ErrorResponse's SQLSTATE, message, detail and hint as the error they describe.
pub(super) fn server_error(config: &Config, doing: Doing<'_>, body: &[u8]) -> Error {
    let (mut code, mut message, mut extra) = (String::new(), String::new(), String::new());
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]);
        match field[0] {
            b'C' => code = value.into_owned(),
            b'M' => message = value.into_owned(),
            b'D' | b'H' => extra.push_str(&format!("; {value}")),
            _ => {}
        }
    }
    db_error(config, doing, &code, &format!("{message}{extra}"))
}

/// A DataRow's values as text (`None` for NULL).
fn data_row(body: &[u8]) -> Option<Vec<Option<String>>> {
    let count = u16::from_be_bytes(body.get(..2)?.try_into().ok()?) as usize;
    let mut at = 2;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let value = body.get(at..at + len as usize)?;
        at += len as usize;
        values.push(Some(String::from_utf8_lossy(value).into_owned()));
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_row_reads_values_and_nulls() {
        let body = [0, 3, 0, 0, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(data_row(&body), Some(vec![Some("ab".into()), None, Some(String::new())]));
        assert_eq!(data_row(&body[..7]), None, "a value cut short");
    }
}
