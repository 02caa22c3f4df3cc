//! The snapshot's bulk-read sessions, speaking PostgreSQL's frontend/backend protocol directly:
//! startup, password authentication (cleartext, MD5, SCRAM-SHA-256; no TLS, like the rest of
//! this connector), simple queries, and `COPY … TO STDOUT` whose CopyData payloads are handed over
//! in place from one large read buffer.
//!
//! tokio-postgres splits every backend message into its own reference-counted buffer and passes
//! it through a channel; with one CopyData message per row that was a third of the snapshot's
//! CPU. Ordinary queries (planning, checks) still go through tokio-postgres.

use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::checks::db_error;
use super::{session_options, Config};
use crate::error::{Error, Result};

const READ_BUFFER: usize = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct CopySession<'c> {
    config: &'c Config,
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    out: BytesMut,
}

/// What a simple query or COPY is doing, for messages.
type Doing<'a> = &'a str;

impl<'c> CopySession<'c> {
    /// Connects and authenticates; the session is ready for queries.
    pub async fn connect(config: &'c Config) -> Result<CopySession<'c>> {
        let doing = "connecting for the snapshot";
        let failed = |e: std::io::Error| Error::external(format!("{doing} to {}: {e}", config.where_()));
        let connecting = async {
            Ok::<Box<dyn Stream>, std::io::Error>(if config.host.starts_with('/') {
                let path = format!("{}/.s.PGSQL.{}", config.host, config.port);
                Box::new(tokio::net::UnixStream::connect(path).await?)
            } else {
                let tcp = tokio::net::TcpStream::connect((config.host.as_str(), config.port)).await?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            })
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| Error::external(format!("{doing} to {} timed out", config.where_())))?
            .map_err(failed)?;
        let mut session =
            CopySession { config, stream, buf: vec![0; READ_BUFFER], start: 0, end: 0, out: BytesMut::new() };
        let options = session_options();
        let parameters = [
            ("user", config.user.as_str()),
            ("database", config.database.as_str()),
            ("application_name", "cdc-sql"),
            ("client_encoding", "UTF8"),
            ("options", options.as_str()),
        ];
        frontend::startup_message(parameters, &mut session.out).map_err(failed)?;
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
            let body = &self.buf[body];
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

    /// Runs `sql` (one or more statements) and waits for the server to be ready again.
    pub async fn execute(&mut self, sql: &str, doing: Doing<'_>) -> Result<()> {
        self.query(sql, doing).await?;
        self.until_ready(doing).await
    }

    /// Starts `sql`, a `COPY … TO STDOUT`; then [`CopySession::copy_data`] until it returns false.
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
        if self.complete_message().is_none() {
            self.fill(doing).await?;
        }
        while let Some((tag, body)) = self.complete_message() {
            self.start = body.end;
            match tag {
                b'd' => data(&self.buf[body])?,
                b'c' | b'N' | b'S' | b'C' => {}
                b'Z' => return Ok(false),
                b'E' => return Err(self.server_error(doing, body)),
                other => return Err(self.unexpected(doing, other)),
            }
        }
        Ok(true)
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
        self.stream.write_all(&out).await.map_err(|e| self.io_error(doing, e))?;
        self.stream.flush().await.map_err(|e| self.io_error(doing, e))
    }

    /// The next message (tag, body range in `buf`); ErrorResponse becomes the error it reports.
    async fn message(&mut self, doing: Doing<'_>) -> Result<(u8, std::ops::Range<usize>)> {
        loop {
            if let Some((tag, body)) = self.complete_message() {
                self.start = body.end;
                if tag == b'E' {
                    return Err(self.server_error(doing, body));
                }
                return Ok((tag, body));
            }
            self.fill(doing).await?;
        }
    }

    /// The message at the read position if it is complete.
    fn complete_message(&self) -> Option<(u8, std::ops::Range<usize>)> {
        let head = self.buf.get(self.start..self.start + 5).filter(|_| self.end >= self.start + 5)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let end = self.start + 1 + len;
        (len >= 4 && end <= self.end).then_some((head[0], self.start + 5..end))
    }

    /// Reads more bytes, first moving the unread ones to the front (and growing the buffer for a
    /// message larger than it).
    async fn fill(&mut self, doing: Doing<'_>) -> Result<()> {
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
        let read = self.stream.read(&mut self.buf[self.end..]).await.map_err(|e| self.io_error(doing, e))?;
        if read == 0 {
            return Err(Error::external(format!(
                "{doing} on {}: the server closed the connection",
                self.config.where_()
            )));
        }
        self.end += read;
        Ok(())
    }

    fn io_error(&self, doing: Doing<'_>, e: std::io::Error) -> Error {
        Error::external(format!("{doing} on {}: {e}", self.config.where_()))
    }

    fn unexpected(&self, doing: Doing<'_>, tag: u8) -> Error {
        Error::external(format!(
            "{doing} on {}: unexpected protocol message '{}'",
            self.config.where_(),
            tag.escape_ascii()
        ))
    }

    /// An ErrorResponse's SQLSTATE, message, detail and hint as the error they describe.
    fn server_error(&self, doing: Doing<'_>, body: std::ops::Range<usize>) -> Error {
        let (mut code, mut message, mut extra) = (String::new(), String::new(), String::new());
        for field in self.buf[body].split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let value = String::from_utf8_lossy(&field[1..]);
            match field[0] {
                b'C' => code = value.into_owned(),
                b'M' => message = value.into_owned(),
                b'D' | b'H' => extra.push_str(&format!("; {value}")),
                _ => {}
            }
        }
        db_error(self.config, doing, &code, &format!("{message}{extra}"))
    }
}
