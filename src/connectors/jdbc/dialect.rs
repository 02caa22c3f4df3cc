//! The two SQL dialects the connector speaks: JDBC URL parsing, identifier quoting, the column
//! types `sink.auto-create-table` uses, connecting (with retries until
//! `connection.max-retry-timeout`) and turning driver errors into classified errors that never
//! carry the password.

use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, TimeUnit};

use crate::connectors::mysql_session::{Login, Opened, RowSession};
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    pub fn label(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL/MariaDB",
        }
    }

    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    /// The column type a table created by `sink.auto-create-table` gets for an Arrow type.
    /// `key_bytes`: for a key column, the bytes it may take ([`mysql_key_share`]): MySQL cannot
    /// index TEXT/BLOB without a prefix length, so key columns get bounded VARCHAR/VARBINARY.
    pub fn column_type(self, dt: &DataType, key_bytes: Option<u32>) -> Option<String> {
        use DataType::*;
        let frac = |u: &TimeUnit| match u {
            TimeUnit::Second => 0,
            TimeUnit::Millisecond => 3,
            _ => 6,
        };
        Some(match self {
            Dialect::Postgres => match dt {
                Boolean => "boolean".into(),
                Int8 | Int16 | UInt8 => "smallint".into(),
                Int32 | UInt16 => "integer".into(),
                Int64 | UInt32 => "bigint".into(),
                UInt64 => "numeric(20,0)".into(),
                Float32 => "real".into(),
                Float64 => "double precision".into(),
                Utf8 => "text".into(),
                Binary => "bytea".into(),
                Decimal128(p, s) | Decimal256(p, s) => format!("numeric({p},{s})"),
                Date32 => "date".into(),
                Time32(u) | Time64(u) => format!("time({})", frac(u)),
                Timestamp(u, None) => format!("timestamp({})", frac(u)),
                Timestamp(u, Some(_)) => format!("timestamptz({})", frac(u)),
                _ => return None,
            },
            Dialect::MySql => match dt {
                Boolean => "BOOLEAN".into(),
                Int8 => "TINYINT".into(),
                Int16 => "SMALLINT".into(),
                Int32 => "INT".into(),
                Int64 => "BIGINT".into(),
                UInt8 => "TINYINT UNSIGNED".into(),
                UInt16 => "SMALLINT UNSIGNED".into(),
                UInt32 => "INT UNSIGNED".into(),
                UInt64 => "BIGINT UNSIGNED".into(),
                Float32 => "FLOAT".into(),
                Float64 => "DOUBLE".into(),
                // Four bytes a character in utf8mb4.
                Utf8 => match key_bytes {
                    Some(bytes) => format!("VARCHAR({})", bytes / 4),
                    None => "LONGTEXT".into(),
                },
                Binary => match key_bytes {
                    Some(bytes) => format!("VARBINARY({bytes})"),
                    None => "LONGBLOB".into(),
                },
                Decimal128(p, s) | Decimal256(p, s) if *p <= 65 && *s <= 30 => format!("DECIMAL({p},{s})"),
                Date32 => "DATE".into(),
                Time32(u) | Time64(u) => format!("TIME({})", frac(u)),
                // DATETIME, not TIMESTAMP: no 2038 limit; the session time zone is UTC, so a
                // TIMESTAMP_LTZ column holds UTC wall-clock time.
                Timestamp(u, _) => format!("DATETIME({})", frac(u)),
                _ => return None,
            },
        })
    }
}

/// InnoDB's limit on the bytes of one key.
const MYSQL_KEY_BYTES: u32 = 3072;
/// What a key column of a fixed-size type takes at most (DECIMAL(65,30) 30 bytes; integers,
/// dates and times at most 8): reserved before the string and binary ones share the rest.
const MYSQL_FIXED_KEY_BYTES: u32 = 32;

/// The bytes each string or binary column of a MySQL key of `key_types` may take, so that the
/// whole key fits InnoDB's limit: a key of one string column gets all of it (VARCHAR(768)),
/// a composite key's string columns share what its other columns leave.
pub fn mysql_key_share(key_types: &[&DataType]) -> u32 {
    let variable = key_types.iter().filter(|t| matches!(t, DataType::Utf8 | DataType::Binary)).count() as u32;
    let fixed = key_types.len() as u32 - variable;
    MYSQL_KEY_BYTES.saturating_sub(fixed * MYSQL_FIXED_KEY_BYTES) / variable.max(1)
}

/// Where to connect, parsed from the JDBC URL plus `username`/`password`.
#[derive(Clone)]
pub struct Endpoint {
    pub dialect: Dialect,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "{}://{}:{}/{}", self.dialect.label(), self.host, self.port, self.database)
    }
}

impl Endpoint {
    pub fn describe(&self) -> String {
        format!("{} at {}:{} (database `{}`)", self.dialect.label(), self.host, self.port, self.database)
    }
}

/// `jdbc:postgresql://host[:port]/db[?sslmode=disable]`, `jdbc:mysql://host[:port]/db`,
/// `jdbc:mariadb://…` (MySQL params `useSSL=false` / `sslMode=DISABLED` are accepted as they
/// describe what we do). Any other parameter is refused rather than ignored.
pub fn parse_url(url: &str) -> std::result::Result<(Dialect, String, u16, String), String> {
    let (dialect, rest) = if let Some(r) = url.strip_prefix("jdbc:postgresql://") {
        (Dialect::Postgres, r)
    } else if let Some(r) = url.strip_prefix("jdbc:mysql://").or_else(|| url.strip_prefix("jdbc:mariadb://")) {
        (Dialect::MySql, r)
    } else {
        return Err("a URL starting with jdbc:postgresql://, jdbc:mysql:// or jdbc:mariadb://".into());
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let Some((authority, database)) = location.split_once('/') else {
        return Err("a database name after the host, e.g. jdbc:postgresql://host:5432/mydb".into());
    };
    if database.is_empty() || database.contains('/') {
        return Err("one database name after the host, e.g. jdbc:mysql://host:3306/mydb".into());
    }
    if authority.contains('@') || authority.contains(',') {
        return Err("host[:port] without credentials or failover hosts (use 'username' and 'password')".into());
    }
    let default_port = if dialect == Dialect::Postgres { 5432 } else { 3306 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| format!("a port number, not '{p}'"))?)
        }
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("a host name, e.g. jdbc:postgresql://localhost:5432/mydb".into());
    }
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        let plaintext = match dialect {
            Dialect::Postgres => k == "sslmode" && v == "disable",
            Dialect::MySql => {
                (k == "useSSL" && v.eq_ignore_ascii_case("false"))
                    || (k == "sslMode" && v.eq_ignore_ascii_case("disabled"))
            }
        };
        if !plaintext {
            return Err(format!(
                "no URL parameter '{k}' (cdc-sql's jdbc connector connects without TLS and takes credentials from 'username'/'password'; only sslmode=disable / useSSL=false are accepted)"
            ));
        }
    }
    Ok((dialect, host.to_string(), port, database.to_string()))
}

/// A `table-name` value: `table` or `schema.table` (PostgreSQL) / `database.table` (MySQL).
#[derive(Debug, Clone)]
pub struct TableName {
    pub schema: Option<String>,
    pub table: String,
}

impl TableName {
    pub fn parse(text: &str) -> Option<TableName> {
        let parts: Vec<&str> = text.split('.').collect();
        let clean = |s: &str| {
            let s = s.trim();
            let unquoted = s.trim_matches(|c| c == '"' || c == '`');
            (!unquoted.is_empty()).then(|| unquoted.to_string())
        };
        match parts.as_slice() {
            [t] => Some(TableName { schema: None, table: clean(t)? }),
            [s, t] => Some(TableName { schema: Some(clean(s)?), table: clean(t)? }),
            _ => None,
        }
    }

    pub fn quoted(&self, dialect: Dialect) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", dialect.quote(s), dialect.quote(&self.table)),
            None => dialect.quote(&self.table),
        }
    }

    pub fn display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => self.table.clone(),
        }
    }
}

/// Retries `connect` while it fails with an external (retryable) error, until `timeout`.
pub async fn with_connect_retries<T, F, Fut>(timeout: Duration, what: &str, mut connect: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(100);
    loop {
        match connect().await {
            Ok(c) => return Ok(c),
            Err(e)
                if e.kind() == crate::error::ErrorKind::External
                    && tokio::time::Instant::now() + backoff < deadline =>
            {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot connect to {what}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deadlock, lock wait timeout, server shutdown / gone away, too many connections, connection killed.
const MYSQL_RETRYABLE: [u16; 7] = [1213, 1205, 1053, 2006, 2013, 1040, 1927];

/// A MySQL server error of one of our own sessions, classified as [`mysql_error`] does.
fn mysql_reply_error(place: &str, doing: &str, code: u16, message: &str) -> Error {
    let text = format!("{doing} on {place}: {message} (error {code})");
    if MYSQL_RETRYABLE.contains(&code) {
        Error::external(text)
    } else {
        Error::user(text)
    }
}

/// A bulk-read session of our own with the server (see `connectors::mysql_session`), in UTC and
/// utf8mb4 like [`connect_mysql`]'s; [`Opened::Unsupported`] when it needs what only
/// `mysql_async` speaks.
pub async fn open_mysql_session(endpoint: &Endpoint, timeout: Duration) -> Result<Opened> {
    let login = Login {
        host: endpoint.host.clone(),
        port: endpoint.port,
        user: endpoint.user.clone().unwrap_or_default(),
        password: endpoint.password.clone().unwrap_or_default(),
        database: Some(endpoint.database.clone()),
        connect_timeout: timeout.max(Duration::from_secs(1)),
        place: endpoint.describe(),
        server_error: mysql_reply_error,
    };
    let opened = with_connect_retries(timeout, &endpoint.describe(), || RowSession::open(&login)).await?;
    if let Opened::Ready(mut session) = opened {
        session.query_rows("SET NAMES utf8mb4, time_zone = '+00:00'", "preparing the session", |_, _| Ok(())).await?;
        return Ok(Opened::Ready(session));
    }
    Ok(opened)
}

/// Connects to PostgreSQL without TLS; the connection task runs in the background.
pub async fn connect_postgres(endpoint: &Endpoint, timeout: Duration) -> Result<tokio_postgres::Client> {
    with_connect_retries(timeout, &endpoint.describe(), || async {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&endpoint.host)
            .port(endpoint.port)
            .dbname(&endpoint.database)
            .application_name("cdc-sql")
            .connect_timeout(timeout.max(Duration::from_secs(1)));
        if let Some(u) = &endpoint.user {
            config.user(u);
        }
        if let Some(p) = &endpoint.password {
            config.password(p);
        }
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| pg_error(&e, &format!("connecting to {}", endpoint.describe())))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    })
    .await
}

/// Connects to MySQL/MariaDB without TLS, session in UTC with utf8mb4.
pub async fn connect_mysql(endpoint: &Endpoint, timeout: Duration, init: &[&str]) -> Result<mysql_async::Conn> {
    with_connect_retries(timeout, &endpoint.describe(), || async {
        let mut statements = vec!["SET NAMES utf8mb4".to_string(), "SET time_zone = '+00:00'".to_string()];
        statements.extend(init.iter().map(|s| s.to_string()));
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(endpoint.host.clone())
            .tcp_port(endpoint.port)
            .db_name(Some(endpoint.database.clone()))
            .user(endpoint.user.clone())
            .pass(endpoint.password.clone())
            .prefer_socket(false)
            .init(statements);
        let connect = mysql_async::Conn::new(opts);
        match tokio::time::timeout(timeout.max(Duration::from_secs(1)), connect).await {
            Ok(r) => r.map_err(|e| mysql_error(&e, &format!("connecting to {}", endpoint.describe()))),
            Err(_) => Err(Error::external(format!("connecting to {}: timed out", endpoint.describe()))),
        }
    })
    .await
}

/// A PostgreSQL error, classified: connection loss, serialization failures, deadlocks and server
/// shutdown are retryable; everything else (constraints, types, missing objects, login) is the
/// user's to fix.
pub fn pg_error(e: &tokio_postgres::Error, what: &str) -> Error {
    let Some(db) = e.as_db_error() else {
        return Error::external(format!("{what}: {e}"));
    };
    let code = db.code().code();
    let mut message = format!("{what}: {} (SQLSTATE {code})", db.message());
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; {detail}"));
    }
    if let Some(column) = db.column() {
        message.push_str(&format!("; column `{column}`"));
    }
    if let Some(where_) = db.where_() {
        message.push_str(&format!("; {where_}"));
    }
    let retryable = code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "40001"
        || code == "40P01";
    if retryable {
        Error::external(message)
    } else {
        Error::user(message)
    }
}

/// A MySQL/MariaDB error, classified like [`pg_error`].
pub fn mysql_error(e: &mysql_async::Error, what: &str) -> Error {
    match e {
        mysql_async::Error::Server(s) => {
            let message = format!("{what}: {} (error {}, SQLSTATE {})", s.message, s.code, s.state);
            if MYSQL_RETRYABLE.contains(&s.code) {
                Error::external(message)
            } else {
                Error::user(message)
            }
        }
        mysql_async::Error::Url(u) => Error::user(format!("{what}: {u}")),
        other => Error::external(format!("{what}: {other}")),
    }
}

/// MySQL/MariaDB errors about one row's value that the server reports under the generic SQLSTATE
/// HY000: incorrect value for a column (1366), a CHECK constraint violated (MySQL 3819, MariaDB
/// 4025 reports 23000).
const MYSQL_ROW_ERRORS: [u16; 2] = [1366, 3819];

/// Whether `error`, from [`pg_error`] or [`mysql_error`] while writing one row, is the server
/// refusing that row's values for good — a data exception (SQLSTATE class 22: too long, out of
/// range, invalid text for the type) or an integrity constraint violation (class 23: NOT NULL,
/// CHECK, foreign key, unique) — rather than something about the table or the session (a
/// missing column or privilege), which no other row would escape. Reads the SQLSTATE and error
/// code that those two functions put last in their messages (the errors about a table or session
/// quote no row values that could look like one).
pub fn refuses_the_row(error: &Error) -> bool {
    if error.kind() != ErrorKind::User {
        return false;
    }
    let text = error.to_string();
    let state = text.rsplit_once("SQLSTATE ").map(|(_, rest)| rest.get(..5).unwrap_or(rest));
    let mysql_code = text
        .rsplit_once("(error ")
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|code| code.trim().parse::<u16>().ok());
    state.is_some_and(|s| s.starts_with("22") || s.starts_with("23"))
        || mysql_code.is_some_and(|c| MYSQL_ROW_ERRORS.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// InnoDB refuses a key over 3072 bytes: a composite key's string columns share what its
    /// other columns leave.
    #[test]
    fn mysql_key_columns_fit_innodbs_key_limit_together() {
        let mysql = |dt: &DataType, types: &[&DataType]| Dialect::MySql.column_type(dt, Some(mysql_key_share(types)));
        let (text, int, bytes) = (DataType::Utf8, DataType::Int32, DataType::Binary);
        assert_eq!(mysql(&text, &[&text]).as_deref(), Some("VARCHAR(768)"));
        assert_eq!(mysql(&bytes, &[&bytes]).as_deref(), Some("VARBINARY(3072)"));
        assert_eq!(mysql(&text, &[&text, &int]).as_deref(), Some("VARCHAR(760)"));
        assert_eq!(mysql(&text, &[&text, &bytes]).as_deref(), Some("VARCHAR(384)"));
        assert_eq!(Dialect::MySql.column_type(&text, None).as_deref(), Some("LONGTEXT"));
        assert_eq!(mysql(&int, &[&text, &int]).as_deref(), Some("INT"));
    }

    #[test]
    fn only_errors_about_a_rows_values_refuse_the_row() {
        let refused = |m: &str| refuses_the_row(&Error::user(m));
        assert!(refused("applying the changes: value too long for type character varying(5) (SQLSTATE 22001)"));
        assert!(refused("applying the changes: null value in column \"name\" (SQLSTATE 23502); column `name`"));
        assert!(refused("applying the changes: Data too long for column 'name' at row 1 (error 1406, SQLSTATE 22001)"));
        assert!(refused("applying the changes: Check constraint 'c' is violated. (error 3819, SQLSTATE HY000)"));
        assert!(!refused("applying the changes: permission denied for table t (SQLSTATE 42501)"));
        assert!(!refused("applying the changes: Unknown column 'x' in 'field list' (error 1054, SQLSTATE 42S22)"));
        assert!(!refused("column `f` holds NaN, which MySQL/MariaDB cannot store; filter it out or map it with CASE"));
        assert!(!refuses_the_row(&Error::external("applying the changes: deadlock detected (SQLSTATE 40P01)")));
    }

    #[test]
    fn jdbc_urls_parse() {
        assert_eq!(
            parse_url("jdbc:postgresql://db.example:6543/shop?sslmode=disable").unwrap(),
            (Dialect::Postgres, "db.example".into(), 6543, "shop".into())
        );
        assert_eq!(parse_url("jdbc:mysql://h/x").unwrap(), (Dialect::MySql, "h".into(), 3306, "x".into()));
        assert_eq!(parse_url("jdbc:mariadb://[::1]:3307/x").unwrap(), (Dialect::MySql, "::1".into(), 3307, "x".into()));
        assert!(parse_url("jdbc:oracle:thin:@h:1521/x").is_err());
        assert!(parse_url("jdbc:mysql://h:3306").is_err());
        assert!(parse_url("jdbc:mysql://h:port/x").is_err());
        let err = parse_url("jdbc:postgresql://h/x?ssl=true").unwrap_err();
        assert!(err.contains("'ssl'"), "{err}");
    }

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        let t = TableName::parse("public.or\"ders").unwrap();
        assert_eq!(t.quoted(Dialect::Postgres), "\"public\".\"or\"\"ders\"");
        assert_eq!(TableName::parse("a`b").unwrap().quoted(Dialect::MySql), "`a``b`");
        assert!(TableName::parse("a.b.c").is_none());
    }
}
