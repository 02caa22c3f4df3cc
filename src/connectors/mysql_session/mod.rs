//! Sessions of our own with a MySQL or MariaDB server, for bulk reads (the mysql-cdc snapshot,
//! the jdbc scan): a plain TCP connection speaking just enough of the protocol ([`wire`]) to log
//! in and run text queries and prepared statements, whose result rows are handed over as byte
//! ranges of one read buffer. `mysql_async` decodes every value of every row into an allocated
//! `Value` first, which cost the bulk reads most of their CPU; here rows go from the socket
//! straight into Arrow builders. Prepared statements answer in the binary protocol, which spares
//! the server formatting numbers and dates as text and us parsing them back.
//!
//! Limits: no TLS, and only `mysql_native_password` and the fast path of
//! `caching_sha2_password` (a password the server has cached). A login that needs more is
//! [`Opened::Unsupported`], and the caller reads through `mysql_async` instead.

pub mod wire;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use wire::{Handshake, Prepared, Reply, COM_QUERY, COM_STMT_CLOSE, COM_STMT_PREPARE, MAX_PAYLOAD};

/// Where to log in, and how the caller words and classifies errors.
pub struct Login {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The session's default database.
    pub database: Option<String>,
    pub connect_timeout: Duration,
    /// Who we talk to, opening every message (e.g. "MySQL server db:3306 (table `t`)").
    pub place: String,
    /// The server's error `code` with `message` during `doing`, as the caller classifies it:
    /// `server_error(place, doing, code, message)`.
    pub server_error: fn(&str, &str, u16, &str) -> Error,
}

const READ_BUFFER: usize = 256 * 1024;

/// The server's answers to `COM_STMT_PREPARE` when it prepares no statements.
const ER_UNSUPPORTED_PS: u16 = 1295;
const ER_MAX_PREPARED_STMT_COUNT_REACHED: u16 = 1461;

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
    /// Columns of the result set being read; 0 when none is.
    columns: usize,
    place: String,
    server_error: fn(&str, &str, u16, &str) -> Error,
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
    /// Connects and logs in within `login.connect_timeout`.
    pub async fn open(login: &Login) -> Result<Opened> {
        match tokio::time::timeout(login.connect_timeout, Self::login(login)).await {
            Ok(opened) => opened,
            Err(_) => {
                Err(Error::external(format!("{}: connecting timed out after {:?}", login.place, login.connect_timeout)))
            }
        }
    }

    async fn login(login: &Login) -> Result<Opened> {
        let doing = "connecting";
        let io = |e: std::io::Error| Error::external(format!("{}: {doing} failed: {e}", login.place));
        let stream = TcpStream::connect((login.host.as_str(), login.port)).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut session = RowSession {
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            large: Vec::new(),
            seq: 0,
            capabilities: 0,
            cells: Vec::new(),
            columns: 0,
            place: login.place.clone(),
            server_error: login.server_error,
        };
        let payload = session.next_packet(doing).await?;
        let handshake = Handshake::parse(session.payload(&payload)).map_err(|e| session.protocol(doing, e))?;
        let mut wanted = wire::CLIENT_CAPABILITIES;
        if login.database.is_some() {
            wanted |= wire::CLIENT_CONNECT_WITH_DB;
        }
        session.capabilities = handshake.capabilities & wanted;
        let required = wire::CLIENT_PROTOCOL_41 | wire::CLIENT_SECURE_CONNECTION | wire::CLIENT_PLUGIN_AUTH;
        if session.capabilities & required != required {
            return Ok(Opened::Unsupported(format!(
                "server {} predates protocol 4.1 with auth plugins",
                handshake.server_version
            )));
        }
        let Some(auth) = wire::scramble(&handshake.auth_plugin, &login.password, &handshake.nonce) else {
            return Ok(Opened::Unsupported(format!("authentication plugin {}", handshake.auth_plugin)));
        };
        let response = wire::handshake_response(
            session.capabilities,
            &login.user,
            &auth,
            login.database.as_deref(),
            &handshake.auth_plugin,
        );
        session.write_packet(doing, &response).await?;
        let mut plugin = handshake.auth_plugin;
        loop {
            let payload = session.next_packet(doing).await?;
            match Reply::parse(session.payload(&payload), true).map_err(|e| session.protocol(doing, e))? {
                Reply::Ok => return Ok(Opened::Ready(session)),
                Reply::Err { code, message, .. } => {
                    return Err((login.server_error)(&login.place, doing, code, &message));
                }
                Reply::AuthSwitch { plugin: switched, nonce } => {
                    let Some(auth) = wire::scramble(&switched, &login.password, nonce) else {
                        return Ok(Opened::Unsupported(format!("authentication plugin {switched}")));
                    };
                    plugin = switched;
                    session.write_packet(doing, &auth).await?;
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
                    return Err(Error::external(format!("{}: {doing}: unexpected reply to the login", login.place)))
                }
            }
        }
    }

    fn protocol(&self, doing: &str, e: wire::Malformed) -> Error {
        Error::external(format!("{}: {doing} failed: {e}", self.place))
    }

    fn payload(&self, payload: &Payload) -> &[u8] {
        match *payload {
            Payload::Buffered(from, to) => &self.buf[from..to],
            Payload::Large => &self.large,
        }
    }

    /// Makes at least `n` unread bytes available in `buf[start..]`.
    async fn fill(&mut self, doing: &str, n: usize) -> Result<()> {
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
                .map_err(|e| Error::external(format!("{}: {doing} failed: {e}", self.place)))?;
            if read == 0 {
                return Err(Error::external(format!(
                    "{}: {doing} failed: the server closed the connection",
                    self.place
                )));
            }
            self.end += read;
        }
        Ok(())
    }

    /// The next packet's payload, put together when it spans several packets.
    async fn next_packet(&mut self, doing: &str) -> Result<Payload> {
        self.large.clear();
        loop {
            self.fill(doing, 4).await?;
            let h = &self.buf[self.start..self.start + 4];
            let len = h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16;
            self.seq = h[3].wrapping_add(1);
            self.fill(doing, 4 + len).await?;
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

    async fn write_packet(&mut self, doing: &str, payload: &[u8]) -> Result<()> {
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
        self.stream.write_all(&out).await.map_err(|e| Error::external(format!("{}: {doing} failed: {e}", self.place)))
    }

    /// Runs `sql` and calls `row` with each result row and the byte ranges of its cells in it
    /// (`None` = NULL), in the order of the select list.
    pub async fn query_rows(
        &mut self,
        sql: &str,
        doing: &str,
        mut row: impl FnMut(&[u8], &[Option<(usize, usize)>]) -> Result<()>,
    ) -> Result<()> {
        if self.query(sql, doing).await? {
            while self.rows(doing, usize::MAX, &mut row).await? {}
        }
        Ok(())
    }

    /// Sends `sql`; `true` when a result set follows, to be read with [`RowSession::rows`]
    /// before the next query.
    pub async fn query(&mut self, sql: &str, doing: &str) -> Result<bool> {
        self.command(doing, &[&[COM_QUERY][..], sql.as_bytes()].concat()).await?;
        let columns = self.result_columns(doing).await?;
        self.definitions(doing, columns, None).await?;
        self.columns = columns;
        Ok(columns > 0)
    }

    /// Sends a command, which starts a new exchange.
    async fn command(&mut self, doing: &str, payload: &[u8]) -> Result<()> {
        if self.columns > 0 {
            return Err(Error::internal(format!("{}: a query was sent before the last result was read", self.place)));
        }
        self.seq = 0;
        self.write_packet(doing, payload).await
    }

    /// Reads the reply to a query or a statement's execution: how many columns its result set
    /// has, whose definitions follow; 0 when there is none.
    async fn result_columns(&mut self, doing: &str) -> Result<usize> {
        let payload = self.next_packet(doing).await?;
        let first = self.payload(&payload);
        match Reply::parse(first, false).map_err(|e| self.protocol(doing, e))? {
            Reply::Ok => Ok(0),
            Reply::Err { code, message, .. } => Err((self.server_error)(&self.place, doing, code, &message)),
            Reply::Data => match wire::lenenc_int(first, &mut 0) {
                Some(n) if n > 0 => Ok(n as usize),
                _ => Err(Error::external(format!("{}: {doing}: the server asked for a local file", self.place))),
            },
            Reply::End | Reply::AuthSwitch { .. } | Reply::AuthMoreData(_) => {
                Err(Error::external(format!("{}: {doing}: unexpected reply to a query", self.place)))
            }
        }
    }

    /// Calls `row` for up to `limit` rows of the result set [`RowSession::query`] started;
    /// `true` while more may follow.
    pub async fn rows(
        &mut self,
        doing: &str,
        limit: usize,
        mut row: impl FnMut(&[u8], &[Option<(usize, usize)>]) -> Result<()>,
    ) -> Result<bool> {
        let columns = self.columns;
        let mut cells = std::mem::take(&mut self.cells);
        let mut taken = 0;
        let outcome = loop {
            if taken == limit {
                break Ok(true);
            }
            let payload = match self.next_row(doing).await {
                Ok(Some(payload)) => payload,
                Ok(None) => break Ok(false),
                Err(e) => break Err(e),
            };
            let p = self.payload(&payload);
            if let Err(e) = wire::row_cells(p, columns, &mut cells) {
                break Err(self.protocol(doing, e));
            }
            if let Err(e) = row(p, &cells) {
                break Err(e);
            }
            taken += 1;
        };
        self.cells = cells;
        outcome
    }

    /// Runs `sql`, a statement without parameters, as a prepared statement and calls `row` with
    /// each binary result row, the byte ranges of its values in it as [`wire::binary_row_cells`]
    /// gives them (`None` = NULL), and the column types, in the order of the select list.
    /// `false` when the server prepares no statements (`max_prepared_stmt_count` = 0 or reached,
    /// a proxy without them): then nothing was read, and the caller may send a text query.
    pub async fn prepared_rows(
        &mut self,
        sql: &str,
        doing: &str,
        mut row: impl FnMut(&[u8], &[Option<(usize, usize)>], &[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.command(doing, &[&[COM_STMT_PREPARE][..], sql.as_bytes()].concat()).await?;
        let payload = self.next_packet(doing).await?;
        let first = self.payload(&payload);
        if let Reply::Err { code, message, .. } = Reply::parse(first, false).map_err(|e| self.protocol(doing, e))? {
            return match code {
                ER_UNSUPPORTED_PS | ER_MAX_PREPARED_STMT_COUNT_REACHED => Ok(false),
                _ => Err((self.server_error)(&self.place, doing, code, &message)),
            };
        }
        let prepared = Prepared::parse(first).map_err(|e| self.protocol(doing, e))?;
        for count in [prepared.params, prepared.columns] {
            self.definitions(doing, count as usize, None).await?;
        }
        self.command(doing, &wire::execute_command(prepared.id)).await?;
        self.binary_rows(doing, &mut row).await?;
        // A statement left open would count against the server's max_prepared_stmt_count for
        // as long as the session lives; closing it has no reply. (A session whose read failed
        // is dropped, which closes its statements.)
        let mut close = vec![COM_STMT_CLOSE];
        close.extend_from_slice(&prepared.id.to_le_bytes());
        self.command(doing, &close).await?;
        Ok(true)
    }

    /// Runs `sql` and returns its result columns' definitions, skipping any rows (for a
    /// `SELECT … LIMIT 0` that describes a table's columns).
    pub async fn result_definitions(&mut self, sql: &str, doing: &str) -> Result<Vec<wire::ColumnDefinition>> {
        self.command(doing, &[&[COM_QUERY][..], sql.as_bytes()].concat()).await?;
        let columns = self.result_columns(doing).await?;
        let mut definitions = Vec::with_capacity(columns);
        self.definitions(doing, columns, Some(&mut definitions)).await?;
        self.columns = columns;
        while self.rows(doing, usize::MAX, |_, _| Ok(())).await? {}
        Ok(definitions)
    }

    /// Reads `count` column (or parameter) definitions and, without `CLIENT_DEPRECATE_EOF`, the
    /// EOF after them; they go to `definitions` when given.
    async fn definitions(
        &mut self,
        doing: &str,
        count: usize,
        mut definitions: Option<&mut Vec<wire::ColumnDefinition>>,
    ) -> Result<()> {
        for _ in 0..count {
            let payload = self.next_packet(doing).await?;
            if let Some(definitions) = definitions.as_deref_mut() {
                definitions.push(wire::column_definition(self.payload(&payload)).map_err(|e| self.protocol(doing, e))?);
            }
        }
        if count > 0 && self.capabilities & wire::CLIENT_DEPRECATE_EOF == 0 {
            self.next_packet(doing).await?;
        }
        Ok(())
    }

    async fn binary_rows(
        &mut self,
        doing: &str,
        row: &mut impl FnMut(&[u8], &[Option<(usize, usize)>], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let columns = self.result_columns(doing).await?;
        let mut definitions = Vec::with_capacity(columns);
        self.definitions(doing, columns, Some(&mut definitions)).await?;
        let types: Vec<u8> = definitions.iter().map(|d| d.column_type).collect();
        self.columns = columns;
        let mut cells = std::mem::take(&mut self.cells);
        let outcome = loop {
            let payload = match self.next_row(doing).await {
                Ok(Some(payload)) => payload,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let p = self.payload(&payload);
            if let Err(e) = wire::binary_row_cells(p, &types, &mut cells) {
                break Err(self.protocol(doing, e));
            }
            if let Err(e) = row(p, &cells, &types) {
                break Err(e);
            }
        };
        self.cells = cells;
        outcome
    }

    /// The next row of the result set being read; `None` after its last.
    async fn next_row(&mut self, doing: &str) -> Result<Option<Payload>> {
        if self.columns == 0 {
            return Ok(None);
        }
        let payload = self.next_packet(doing).await?;
        let p = self.payload(&payload);
        let end = match p.first() {
            // A row starting with 0xFE is at least 16 MiB long: its first value is that long.
            Some(0xFE) if p.len() < MAX_PAYLOAD => Ok(None),
            Some(0xFF) => Err(match Reply::parse(p, false) {
                Ok(Reply::Err { code, message, .. }) => (self.server_error)(&self.place, doing, code, &message),
                _ => self.protocol(doing, wire::Malformed { what: "error" }),
            }),
            _ => return Ok(Some(payload)),
        };
        self.columns = 0;
        end
    }
}
