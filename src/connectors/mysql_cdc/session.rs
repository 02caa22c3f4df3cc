//! The snapshot's own sessions: a plain TCP connection speaking just enough of the protocol
//! ([`super::wire`]) to log in and run text queries, whose result rows are handed over as byte
//! ranges of one read buffer. `mysql_async` decodes every value of every row into an allocated
//! `Value` first, which cost the snapshot most of its CPU; here a chunk's rows go from the socket
//! straight into the Arrow builders.
//!
//! Limits: no TLS, and only `mysql_native_password` and the fast path of
//! `caching_sha2_password` (a password the server has cached). A session that needs more — TLS
//! configured, another authentication plugin, the full `caching_sha2_password` exchange — is
//! [`Opened::Unsupported`], and the snapshot reads through `mysql_async` instead.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::{MySqlCdcConfig, SslMode};
use super::server::{error_reply, where_, Statements};
use super::wire::{self, Handshake, Reply, COM_QUERY, MAX_PAYLOAD};
use crate::error::{Error, Result};

const READ_BUFFER: usize = 256 * 1024;

pub struct RowSession {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A payload spread over several packets (16 MiB and more), put together.
    large: Vec<u8>,
    seq: u8,
    capabilities: u32,
    cells: Vec<Option<(usize, usize)>>,
}

pub enum Opened {
    Ready(RowSession),
    /// Why this session cannot be opened by us (a `mysql_async` session can).
    Unsupported(String),
}

/// Where the payload of the packet just read is.
enum Payload {
    Buffered(usize, usize),
    Large,
}

impl RowSession {
    /// Connects and logs in within 'connect.timeout'.
    pub async fn open(config: &MySqlCdcConfig) -> Result<Opened> {
        if config.ssl_mode != SslMode::Disabled {
            return Ok(Opened::Unsupported("TLS is configured".into()));
        }
        match tokio::time::timeout(config.connect_timeout, Self::login(config)).await {
            Ok(opened) => opened,
            Err(_) => Err(Error::external(format!(
                "{}: connecting for the snapshot timed out after {:?} ('connect.timeout')",
                where_(config),
                config.connect_timeout
            ))),
        }
    }

    async fn login(config: &MySqlCdcConfig) -> Result<Opened> {
        let doing = "connecting for the snapshot";
        let stream = TcpStream::connect((config.hostname.as_str(), config.port))
            .await
            .map_err(|e| Error::external(format!("{}: {doing} failed: {e}", where_(config))))?;
        stream.set_nodelay(true).map_err(|e| Error::external(format!("{}: {doing} failed: {e}", where_(config))))?;
        let mut session = RowSession {
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            large: Vec::new(),
            seq: 0,
            capabilities: 0,
            cells: Vec::new(),
        };
        let payload = session.next_packet(config, doing).await?;
        let handshake = Handshake::parse(session.payload(&payload)).map_err(|e| protocol(config, doing, e))?;
        session.capabilities = handshake.capabilities & wire::CLIENT_CAPABILITIES;
        let required = wire::CLIENT_PROTOCOL_41 | wire::CLIENT_SECURE_CONNECTION | wire::CLIENT_PLUGIN_AUTH;
        if session.capabilities & required != required {
            return Ok(Opened::Unsupported(format!(
                "server {} predates protocol 4.1 with auth plugins",
                handshake.server_version
            )));
        }
        let Some(auth) = wire::scramble(&handshake.auth_plugin, &config.password, &handshake.nonce) else {
            return Ok(Opened::Unsupported(format!("authentication plugin {}", handshake.auth_plugin)));
        };
        let response = wire::handshake_response(session.capabilities, &config.username, &auth, &handshake.auth_plugin);
        session.write_packet(config, doing, &response).await?;
        let mut plugin = handshake.auth_plugin;
        loop {
            let payload = session.next_packet(config, doing).await?;
            match Reply::parse(session.payload(&payload), true).map_err(|e| protocol(config, doing, e))? {
                Reply::Ok => return Ok(Opened::Ready(session)),
                Reply::Err { code, message, .. } => return Err(error_reply(config, doing, code, &message)),
                Reply::AuthSwitch { plugin: switched, nonce } => {
                    let Some(auth) = wire::scramble(&switched, &config.password, nonce) else {
                        return Ok(Opened::Unsupported(format!("authentication plugin {switched}")));
                    };
                    plugin = switched;
                    session.write_packet(config, doing, &auth).await?;
                }
                // caching_sha2_password: 3 = the cached password matched (an OK follows); 4 =
                // send the password in full, which needs TLS or the server's RSA key.
                Reply::AuthMoreData([3]) if plugin == "caching_sha2_password" => {}
                Reply::AuthMoreData(_) => {
                    return Ok(Opened::Unsupported(format!(
                        "the full {plugin} exchange (the server has not cached the password)"
                    )))
                }
                Reply::End | Reply::Data => {
                    return Err(Error::external(format!("{}: {doing}: unexpected reply to the login", where_(config))))
                }
            }
        }
    }

    fn payload(&self, payload: &Payload) -> &[u8] {
        match *payload {
            Payload::Buffered(from, to) => &self.buf[from..to],
            Payload::Large => &self.large,
        }
    }

    /// Makes at least `n` unread bytes available in `buf[start..]`.
    async fn fill(&mut self, config: &MySqlCdcConfig, doing: &str, n: usize) -> Result<()> {
        if self.end - self.start >= n {
            return Ok(());
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if n > self.buf.len() {
                self.buf.resize(n, 0);
            }
        }
        while self.end - self.start < n {
            let read = self
                .stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| Error::external(format!("{}: {doing} failed: {e}", where_(config))))?;
            if read == 0 {
                return Err(Error::external(format!(
                    "{}: {doing} failed: the server closed the connection",
                    where_(config)
                )));
            }
            self.end += read;
        }
        Ok(())
    }

    /// The next packet's payload, put together when it spans several packets.
    async fn next_packet(&mut self, config: &MySqlCdcConfig, doing: &str) -> Result<Payload> {
        self.large.clear();
        loop {
            self.fill(config, doing, 4).await?;
            let h = &self.buf[self.start..self.start + 4];
            let len = h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16;
            self.seq = h[3].wrapping_add(1);
            self.fill(config, doing, 4 + len).await?;
            let (from, to) = (self.start + 4, self.start + 4 + len);
            self.start = to;
            if len < MAX_PAYLOAD && self.large.is_empty() {
                return Ok(Payload::Buffered(from, to));
            }
            self.large.extend_from_slice(&self.buf[from..to]);
            if len < MAX_PAYLOAD {
                return Ok(Payload::Large);
            }
        }
    }

    async fn write_packet(&mut self, config: &MySqlCdcConfig, doing: &str, payload: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        // The last packet is shorter than the maximum: empty after a payload of an exact
        // multiple of it, or for an empty payload (an empty password's auth response).
        let mut at = 0;
        loop {
            let chunk = &payload[at..(at + MAX_PAYLOAD).min(payload.len())];
            out.extend_from_slice(&(chunk.len() as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(chunk);
            at += chunk.len();
            if chunk.len() < MAX_PAYLOAD {
                break;
            }
        }
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| Error::external(format!("{}: {doing} failed: {e}", where_(config))))
    }

    /// Runs `sql` and calls `row` with each result row and the byte ranges of its cells in it
    /// (`None` = NULL), in the order of the select list.
    pub async fn query_rows(
        &mut self,
        config: &MySqlCdcConfig,
        sql: &str,
        doing: &str,
        mut row: impl FnMut(&[u8], &[Option<(usize, usize)>]) -> Result<()>,
    ) -> Result<()> {
        self.seq = 0;
        let command = [&[COM_QUERY][..], sql.as_bytes()].concat();
        self.write_packet(config, doing, &command).await?;
        let payload = self.next_packet(config, doing).await?;
        let first = self.payload(&payload);
        let columns = match Reply::parse(first, false).map_err(|e| protocol(config, doing, e))? {
            Reply::Ok => return Ok(()),
            Reply::Err { code, message, .. } => return Err(error_reply(config, doing, code, &message)),
            Reply::Data => {
                let mut at = 0;
                match wire::lenenc_int(first, &mut at) {
                    Some(n) if n > 0 => n as usize,
                    _ => {
                        return Err(Error::external(format!(
                            "{}: {doing}: the server asked for a local file",
                            where_(config)
                        )))
                    }
                }
            }
            Reply::End | Reply::AuthSwitch { .. } | Reply::AuthMoreData(_) => {
                return Err(Error::external(format!("{}: {doing}: unexpected reply to a query", where_(config))))
            }
        };
        for _ in 0..columns {
            self.next_packet(config, doing).await?;
        }
        if self.capabilities & wire::CLIENT_DEPRECATE_EOF == 0 {
            self.next_packet(config, doing).await?;
        }
        let mut cells = std::mem::take(&mut self.cells);
        let outcome = loop {
            let payload = self.next_packet(config, doing).await?;
            let p = self.payload(&payload);
            match p.first() {
                Some(0xFE) if p.len() < MAX_PAYLOAD => break Ok(()),
                Some(0xFF) => {
                    if let Ok(Reply::Err { code, message, .. }) = Reply::parse(p, false) {
                        break Err(error_reply(config, doing, code, &message));
                    }
                    break Err(protocol(config, doing, wire::Malformed { what: "error" }));
                }
                _ => {
                    if let Err(e) = wire::row_cells(p, columns, &mut cells) {
                        break Err(protocol(config, doing, e));
                    }
                    if let Err(e) = row(p, &cells) {
                        break Err(e);
                    }
                }
            }
        };
        self.cells = cells;
        outcome
    }
}

fn protocol(config: &MySqlCdcConfig, doing: &str, e: wire::Malformed) -> Error {
    Error::external(format!("{}: {doing} failed: {e}", where_(config)))
}

#[async_trait::async_trait]
impl Statements for RowSession {
    async fn run(&mut self, config: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<()> {
        self.query_rows(config, sql, doing, |_, _| Ok(())).await
    }

    async fn strings(&mut self, config: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        self.query_rows(config, sql, doing, |row, cells| {
            rows.push(cells.iter().map(|c| c.map(|(s, e)| String::from_utf8_lossy(&row[s..e]).into_owned())).collect());
            Ok(())
        })
        .await?;
        Ok(rows)
    }
}
