//! Talking to the server outside the binlog stream: connecting (timeout, retries, TLS), the
//! checks made before streaming, table discovery from `information_schema`, binlog positions.

use std::cmp::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder, SslOpts};

use super::config::{MySqlCdcConfig, SslMode};
use super::schema::{CapturedTable, Declared, SourceColumn};
use super::stream::GtidState;
use crate::connectors::mysql_session::{Login, RowSession};
use crate::error::{Error, Result};

/// A binlog file and byte offset; ordered as the server writes them. Stored in positions as
/// `{"file": …, "pos": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogPos {
    fn cmp(&self, other: &Self) -> Ordering {
        // Binlog files share a base name and a zero-padded sequence number.
        (file_sequence(&self.file), &self.file, self.pos).cmp(&(file_sequence(&other.file), &other.file, other.pos))
    }
}

fn file_sequence(file: &str) -> u64 {
    file.rsplit_once('.').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

impl std::fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

pub fn where_(config: &MySqlCdcConfig) -> String {
    format!("MySQL server {}:{} (table `{}`)", config.hostname, config.port, config.table)
}

/// A server error during `doing`, classified: authentication, privileges and missing objects are
/// the user's to fix; everything else may pass.
pub fn server_error(config: &MySqlCdcConfig, doing: &str, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(se) => error_reply(&where_(config), doing, se.code, &se.message),
        _ => Error::external(format!("{}: {doing} failed: {e}", where_(config))),
    }
}

/// The server's error `code` with `message` during `doing`, classified as [`server_error`] says.
pub fn error_reply(place: &str, doing: &str, code: u16, message: &str) -> Error {
    let hint = match code {
        1045 => " — check 'username' and 'password'",
        1044 | 1142 | 1143 | 1227 => {
            " — grant the CDC user: GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, SHOW DATABASES ON *.* TO '<user>'@'%'"
        }
        1236 => " — the requested binlog position is not available on the server (purged or never written); restart with 'scan.startup.mode' = 'initial' to take a new snapshot",
        _ => "",
    };
    let text = format!("{place}: {doing} failed: {message} (error {code}){hint}");
    match code {
        1040 | 1053 | 1205 | 1213 | 2006 | 2013 => Error::external(text),
        _ => Error::user(text),
    }
}

/// Statements and small text results over either kind of session: a `mysql_async` connection or
/// one of our own ([`RowSession`]).
#[async_trait::async_trait]
pub trait Statements: Send {
    async fn run(&mut self, config: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<()>;
    /// Every row as text (`None` = NULL).
    async fn strings(&mut self, config: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<Vec<Vec<Option<String>>>>;
}

#[async_trait::async_trait]
impl Statements for Conn {
    async fn run(&mut self, config: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<()> {
        self.query_drop(sql).await.map_err(|e| server_error(config, doing, e))
    }

    async fn strings(&mut self, config: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<Vec<Vec<Option<String>>>> {
        let rows: Vec<mysql_async::Row> = self.query(sql).await.map_err(|e| server_error(config, doing, e))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| match row.as_ref(i) {
                        Some(mysql_async::Value::NULL) | None => None,
                        Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                        Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
                    })
                    .collect()
            })
            .collect())
    }
}

pub fn connect_opts(config: &MySqlCdcConfig) -> OptsBuilder {
    let ssl = match config.ssl_mode {
        SslMode::Disabled => None,
        SslMode::Required => {
            Some(SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true))
        }
        SslMode::VerifyCa => Some(SslOpts::default().with_danger_skip_domain_validation(true)),
        SslMode::VerifyIdentity => Some(SslOpts::default()),
    };
    OptsBuilder::default()
        .ip_or_hostname(config.hostname.clone())
        .tcp_port(config.port)
        .user(Some(config.username.clone()))
        .pass(Some(config.password.clone()))
        .prefer_socket(false)
        .stmt_cache_size(0)
        .ssl_opts(ssl)
}

#[async_trait::async_trait]
impl Statements for RowSession {
    async fn run(&mut self, _: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<()> {
        self.query_rows(sql, doing, |_, _| Ok(())).await
    }

    async fn strings(&mut self, _: &MySqlCdcConfig, sql: &str, doing: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        self.query_rows(sql, doing, |row, cells| {
            rows.push(cells.iter().map(|c| c.map(|(s, e)| String::from_utf8_lossy(&row[s..e]).into_owned())).collect());
            Ok(())
        })
        .await?;
        Ok(rows)
    }
}

/// Our own session's login, or `None` when TLS is configured (which it does not speak).
pub fn own_login(config: &MySqlCdcConfig) -> Option<Login> {
    (config.ssl_mode == SslMode::Disabled).then(|| Login {
        host: config.hostname.clone(),
        port: config.port,
        user: config.username.clone(),
        password: config.password.clone(),
        database: None,
        connect_timeout: config.connect_timeout,
        place: where_(config),
        server_error: error_reply,
    })
}

/// Connects within 'connect.timeout', retrying 'connect.max-retries' times on failures that may pass.
pub async fn connect(config: &MySqlCdcConfig) -> Result<Conn> {
    let mut attempt = 0;
    loop {
        let result = tokio::time::timeout(config.connect_timeout, Conn::new(connect_opts(config))).await;
        let error = match result {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => server_error(config, "connecting", e),
            Err(_) => Error::external(format!(
                "{}: connecting timed out after {:?} ('connect.timeout')",
                where_(config),
                config.connect_timeout
            )),
        };
        if error.kind() == crate::error::ErrorKind::User || attempt >= config.connect_max_retries {
            return Err(error);
        }
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200 * (1 << attempt.min(5)))).await;
    }
}

pub async fn query_strings<S: Statements + ?Sized>(
    config: &MySqlCdcConfig,
    conn: &mut S,
    sql: &str,
    doing: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    conn.strings(config, sql, doing).await
}

/// Where the binlog ends now (`SHOW MASTER STATUS`, or `SHOW BINARY LOG STATUS` on MySQL 8.2+).
pub async fn current_position<S: Statements + ?Sized>(
    config: &MySqlCdcConfig,
    conn: &mut S,
    server: ServerVersion,
) -> Result<BinlogPos> {
    let statement = server.binlog_status_statement();
    let rows = query_strings(config, conn, statement, &format!("reading the binlog position ({statement})")).await?;
    let row = rows.first().ok_or_else(|| {
        Error::user(format!(
            "{}: {statement} returned nothing: the binary log is off; start the server with log_bin",
            where_(config)
        ))
    })?;
    match (row.first().cloned().flatten(), row.get(1).cloned().flatten().and_then(|p| p.parse().ok())) {
        (Some(file), Some(pos)) => Ok(BinlogPos { file, pos }),
        _ => Err(Error::internal(format!("{statement} returned no file and position"))),
    }
}

/// MariaDB: opens a consistent-snapshot transaction and returns the binlog position it sees
/// exactly (`binlog_snapshot_file/position`), without locks. The caller reads inside the
/// transaction and then commits. SHOW MASTER STATUS cannot serve here: under group commit it
/// may already count transactions whose rows are not visible yet.
pub async fn consistent_snapshot_position<S: Statements + ?Sized>(
    config: &MySqlCdcConfig,
    conn: &mut S,
) -> Result<BinlogPos> {
    conn.run(config, "START TRANSACTION WITH CONSISTENT SNAPSHOT", "starting a consistent snapshot").await?;
    let rows =
        query_strings(config, conn, "SHOW STATUS LIKE 'binlog_snapshot_%'", "reading the snapshot's binlog position")
            .await?;
    let value = |name: &str| {
        rows.iter()
            .find(|r| r.first().cloned().flatten().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|r| r.get(1).cloned().flatten())
    };
    match (value("Binlog_snapshot_file"), value("Binlog_snapshot_position").and_then(|p| p.parse().ok())) {
        (Some(file), Some(pos)) if !file.is_empty() => Ok(BinlogPos { file, pos }),
        _ => Err(Error::internal("SHOW STATUS LIKE 'binlog_snapshot_%' returned no position")),
    }
}

/// MariaDB: the GTID position at a binlog position (`BINLOG_GTID_POS`); empty before the first GTID.
pub async fn mariadb_gtid_at(config: &MySqlCdcConfig, conn: &mut Conn, pos: &BinlogPos) -> Result<GtidState> {
    let sql = format!("SELECT BINLOG_GTID_POS({}, {})", quote(&pos.file), pos.pos);
    let rows = query_strings(config, conn, &sql, "reading the GTID position").await?;
    Ok(rows.first().and_then(|r| r.first().cloned().flatten()).and_then(|g| GtidState::parse(&g)).unwrap_or_default())
}

/// The server's kind and version (`SELECT VERSION()`).
pub async fn server_version(config: &MySqlCdcConfig, conn: &mut Conn) -> Result<ServerVersion> {
    let rows = query_strings(config, conn, "SELECT VERSION()", "reading the server version").await?;
    Ok(ServerVersion::parse(&rows.first().and_then(|r| r.first().cloned().flatten()).unwrap_or_default()))
}

/// MySQL or MariaDB, and which version: the statements that read binlog state were renamed in
/// MySQL 8.x (`SHOW MASTER STATUS` became `SHOW BINARY LOG STATUS` in 8.2.0 and was removed in
/// 8.4.0); MariaDB keeps the old names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerVersion {
    pub mariadb: bool,
    /// Major, minor, patch; zeros where the text has none.
    pub version: (u32, u32, u32),
}

impl ServerVersion {
    /// From `SELECT VERSION()` (`8.4.0`, `5.7.44-log`, `10.11.6-MariaDB-0+deb12u1`) or the
    /// handshake's version, where MariaDB puts `5.5.5-` in front for old clients.
    pub fn parse(text: &str) -> ServerVersion {
        let mariadb = text.to_ascii_lowercase().contains("mariadb");
        let text = if mariadb { text.strip_prefix("5.5.5-").unwrap_or(text) } else { text };
        let digits = text.split(|c: char| !c.is_ascii_digit() && c != '.').next().unwrap_or_default();
        let mut parts = digits.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        ServerVersion { mariadb, version: (next(), next(), next()) }
    }

    /// The statement that shows the binlog file and position being written.
    pub fn binlog_status_statement(&self) -> &'static str {
        if !self.mariadb && self.version >= (8, 2, 0) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }
}

/// The checks Flink CDC makes before reading, each with the fix in its message.
pub async fn check_server(config: &MySqlCdcConfig, conn: &mut Conn) -> Result<()> {
    let place = where_(config);
    let rows =
        query_strings(config, conn, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image", "reading binlog settings")
            .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    if !matches!(get(0).as_str(), "1" | "ON") {
        return Err(Error::user(format!(
            "{place}: the binary log is off (log_bin = {}); mysql-cdc reads changes from it: start the server with log_bin (e.g. --log-bin) and binlog_format=ROW",
            get(0)
        )));
    }
    if !get(1).eq_ignore_ascii_case("ROW") {
        return Err(Error::user(format!(
            "{place}: binlog_format is {}, but mysql-cdc needs ROW: SET GLOBAL binlog_format = 'ROW' (and in the server configuration)",
            get(1)
        )));
    }
    if !get(2).eq_ignore_ascii_case("FULL") {
        return Err(Error::user(format!(
            "{place}: binlog_row_image is {}, but mysql-cdc needs FULL (whole rows before and after each change): SET GLOBAL binlog_row_image = 'FULL'",
            get(2)
        )));
    }
    let grants = query_strings(config, conn, "SHOW GRANTS", "reading the CDC user's privileges").await?;
    let text: String = grants.iter().flatten().flatten().map(|g| g.to_ascii_uppercase()).collect::<Vec<_>>().join("\n");
    let has = |p: &str| text.contains(p) || text.contains("ALL PRIVILEGES");
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") && !has("SUPER") {
        missing.push("REPLICATION CLIENT");
    }
    if !missing.is_empty() {
        return Err(Error::user(format!(
            "{place}: user '{}' lacks the privilege(s) {}; grant them: GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, SHOW DATABASES ON *.* TO '{}'@'%'",
            config.username,
            missing.join(", "),
            config.username
        )));
    }
    Ok(())
}

/// The binlog files the server has, oldest first (`SHOW BINARY LOGS`).
pub async fn binlog_files(config: &MySqlCdcConfig, conn: &mut Conn) -> Result<Vec<String>> {
    let rows = query_strings(config, conn, "SHOW BINARY LOGS", "listing binlog files (SHOW BINARY LOGS)").await?;
    Ok(rows.iter().filter_map(|r| r.first().cloned().flatten()).collect())
}

/// Fails if `pos` is no longer (or not yet) in the server's binlog.
pub async fn check_position_available(config: &MySqlCdcConfig, conn: &mut Conn, pos: &BinlogPos) -> Result<()> {
    let files = binlog_files(config, conn).await?;
    if files.contains(&pos.file) {
        return Ok(());
    }
    let range = match (files.first(), files.last()) {
        (Some(a), Some(b)) => format!("the server has {a} to {b}"),
        _ => "the server has no binlog files".to_string(),
    };
    Err(Error::user(format!(
        "{}: cannot resume from binlog position {pos}: that file has been purged or never existed ({range}). Changes since then are lost from the binlog; take a new snapshot with 'scan.startup.mode' = 'initial' (and a fresh checkpoint directory), or start from 'earliest-offset' / 'latest-offset' accepting the gap",
        where_(config)
    )))
}

/// MariaDB: fails if transactions after GTID position `gtid` were purged from the binlog.
pub async fn check_gtid_available(config: &MySqlCdcConfig, conn: &mut Conn, gtid: &GtidState) -> Result<()> {
    let Some(oldest) = binlog_files(config, conn).await?.into_iter().next() else { return Ok(()) };
    let begins_at = mariadb_gtid_at(config, conn, &BinlogPos { file: oldest.clone(), pos: 4 }).await?;
    let behind = gtid.behind(&begins_at);
    if behind.is_empty() {
        return Ok(());
    }
    Err(Error::user(format!(
        "{}: cannot resume from GTID position {gtid}: the oldest binlog file the server has, {oldest}, begins at GTID position {begins_at}, so transactions of domain(s) {} in between have been purged. Changes since then are lost from the binlog; take a new snapshot with 'scan.startup.mode' = 'initial' (and a fresh checkpoint directory), or start from 'earliest-offset' / 'latest-offset' accepting the gap",
        where_(config),
        behind.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )))
}

/// The earliest binlog position the server still has.
pub async fn earliest_position(config: &MySqlCdcConfig, conn: &mut Conn) -> Result<BinlogPos> {
    let file = binlog_files(config, conn).await?.into_iter().next().ok_or_else(|| {
        Error::user(format!("{}: the server lists no binlog files: the binary log is off", where_(config)))
    })?;
    Ok(BinlogPos { file, pos: 4 })
}

/// When `file` was started: the timestamp of its first event (the format description), epoch
/// seconds. Every transaction in it committed at or after that second, every one in earlier
/// files at or before it.
pub async fn binlog_file_started(config: &MySqlCdcConfig, server_id: u32, file: &str) -> Result<u32> {
    let conn = connect(config).await?;
    let request = mysql_async::BinlogStreamRequest::new(server_id)
        .with_filename(file.as_bytes())
        .with_pos(4u64)
        .with_non_blocking();
    let doing = format!("reading the start of binlog file {file}");
    let mut stream = conn.get_binlog_stream(request).await.map_err(|e| server_error(config, &doing, e))?;
    let result = async {
        loop {
            let event = match tokio::time::timeout(config.connect_timeout, stream.next()).await {
                Err(_) => return Err(Error::external(format!("{}: {doing} timed out", where_(config)))),
                Ok(None) => return Err(Error::internal(format!("binlog file {file} has no timestamped event"))),
                Ok(Some(event)) => event.map_err(|e| server_error(config, &doing, e))?,
            };
            // The Rotate event the server sends first is not in the file and has no time.
            if event.header().timestamp() > 0 {
                return Ok(event.header().timestamp());
            }
        }
    }
    .await;
    let _ = stream.close().await;
    result
}

/// Of `count` files started in order, the last one started strictly before `second` (its
/// predecessors hold only transactions committed before then; a file started in that very
/// second may follow transactions of that second), found by bisection as Flink CDC does.
/// `None`: even the oldest started at or after `second`.
pub async fn last_file_started_before<F, Fut>(count: usize, second: u32, mut started: F) -> Result<Option<usize>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<u32>>,
{
    // The number of files started before `second`.
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if started(mid).await? < second {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo.checked_sub(1))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Describes one table from `information_schema`.
pub async fn describe_table(
    config: &MySqlCdcConfig,
    declared: &Declared,
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<CapturedTable> {
    let sql = format!(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, CHARACTER_OCTET_LENGTH, DATETIME_PRECISION, \
         IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
        quote(database),
        quote(table)
    );
    let rows = query_strings(config, conn, &sql, "reading column definitions").await?;
    let columns: Vec<SourceColumn> = rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten();
            let mut column = SourceColumn::new(
                get(0).unwrap_or_default(),
                &get(1).unwrap_or_default(),
                &get(2).unwrap_or_default(),
                get(3).as_deref(),
                get(4).and_then(|v| v.parse().ok()),
                get(5).and_then(|v| v.parse().ok()),
            );
            column.nullable = get(6).is_none_or(|n| n.eq_ignore_ascii_case("YES"));
            column
        })
        .collect();
    if columns.is_empty() {
        return Err(Error::user(format!(
            "{}: table `{database}`.`{table}` not found (or the user cannot see it)",
            where_(config)
        )));
    }
    let sql = format!(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = 'PRIMARY' \
         AND TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
        quote(database),
        quote(table)
    );
    let primary_key: Vec<String> = query_strings(config, conn, &sql, "reading the primary key")
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    CapturedTable::new(
        declared,
        database.to_string(),
        table.to_string(),
        columns,
        &primary_key,
        config.chunk_key_column.as_deref(),
        config.incremental,
    )
}

/// Every base table matching 'database-name' and 'table-name'.
pub async fn discover_tables(
    config: &MySqlCdcConfig,
    declared: &Declared,
    conn: &mut Conn,
) -> Result<Vec<Arc<CapturedTable>>> {
    let rows = query_strings(
        config,
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
         AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        "listing tables",
    )
    .await?;
    let mut tables = Vec::new();
    for row in rows {
        let (Some(db), Some(t)) = (row.first().cloned().flatten(), row.get(1).cloned().flatten()) else { continue };
        if config.matches(&db, &t) {
            tables.push(Arc::new(describe_table(config, declared, conn, &db, &t).await?));
        }
    }
    if tables.is_empty() {
        return Err(Error::user(format!(
            "{}: no table matches {}; check the names and that the user may SELECT the tables",
            where_(config),
            config.tables.written()
        )));
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version strings as the MySQL and MariaDB documentation shows them, and the statement each
    /// server accepts (MySQL 8.2.0 added SHOW BINARY LOG STATUS, 8.4.0 removed SHOW MASTER STATUS).
    #[test]
    fn the_binlog_status_statement_follows_the_server_version() {
        let cases = [
            ("5.7.44", false, (5, 7, 44), "SHOW MASTER STATUS"),
            ("5.7.44-log", false, (5, 7, 44), "SHOW MASTER STATUS"),
            ("8.0.36", false, (8, 0, 36), "SHOW MASTER STATUS"),
            ("8.0.36-28", false, (8, 0, 36), "SHOW MASTER STATUS"),
            ("8.1.0", false, (8, 1, 0), "SHOW MASTER STATUS"),
            ("8.2.0", false, (8, 2, 0), "SHOW BINARY LOG STATUS"),
            ("8.4.0", false, (8, 4, 0), "SHOW BINARY LOG STATUS"),
            ("8.4.3-commercial", false, (8, 4, 3), "SHOW BINARY LOG STATUS"),
            ("9.1.0", false, (9, 1, 0), "SHOW BINARY LOG STATUS"),
            ("10.11.6-MariaDB", true, (10, 11, 6), "SHOW MASTER STATUS"),
            ("10.11.19-MariaDB-0+deb12u1", true, (10, 11, 19), "SHOW MASTER STATUS"),
            ("11.4.3-MariaDB-log", true, (11, 4, 3), "SHOW MASTER STATUS"),
            // MariaDB's handshake version for clients that expect a 5.x server.
            ("5.5.5-10.11.6-MariaDB", true, (10, 11, 6), "SHOW MASTER STATUS"),
            ("5.5.5-11.4.3-MariaDB-ubu2404", true, (11, 4, 3), "SHOW MASTER STATUS"),
        ];
        for (text, mariadb, version, statement) in cases {
            let v = ServerVersion::parse(text);
            assert_eq!((v.mariadb, v.version, v.binlog_status_statement()), (mariadb, version, statement), "{text}");
        }
        // Text with no version: the statement every server but MySQL 8.4+ accepts.
        assert_eq!(ServerVersion::parse("").binlog_status_statement(), "SHOW MASTER STATUS");
    }

    #[test]
    fn positions_order_across_files() {
        let p = |f: &str, pos| BinlogPos { file: f.into(), pos };
        assert!(p("bin.000002", 4) > p("bin.000001", 9999));
        assert!(p("bin.000001", 10) < p("bin.000001", 11));
        assert!(p("bin.1000000", 4) > p("bin.999999", 4));
    }

    #[tokio::test]
    async fn timestamp_search_picks_the_last_file_started_before_the_second() {
        let starts = [100u32, 200, 200, 300, 400];
        let find = |second: u32| last_file_started_before(starts.len(), second, move |i| async move { Ok(starts[i]) });
        assert_eq!(find(50).await.unwrap(), None);
        assert_eq!(find(100).await.unwrap(), None, "a purged file may hold transactions of second 100");
        assert_eq!(find(101).await.unwrap(), Some(0));
        assert_eq!(find(200).await.unwrap(), Some(0), "the files started in second 200 may follow its transactions");
        assert_eq!(find(250).await.unwrap(), Some(2));
        assert_eq!(find(400).await.unwrap(), Some(3));
        assert_eq!(find(u32::MAX).await.unwrap(), Some(4));
        assert_eq!(last_file_started_before(0, 5, |_| async { Ok(0) }).await.unwrap(), None);
    }
}
