//! Connection details and SQL through the `mariadb` / `psql` command-line clients.

use crate::error::{Error, Result, ServerKind};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The address every test server listens on.
pub const HOST: &str = "127.0.0.1";
/// The CDC user created on both servers.
pub const CDC_USER: &str = "cdc_user";
/// Password of [`CDC_USER`] on both servers.
pub const CDC_PASSWORD: &str = "cdc_password";
/// MariaDB administrator (over the unix socket without a password, over TCP with
/// [`MARIADB_ROOT_PASSWORD`]).
pub const MARIADB_ROOT_USER: &str = "root";
/// Password of `root@127.0.0.1` on MariaDB.
pub const MARIADB_ROOT_PASSWORD: &str = "root_password";
/// PostgreSQL superuser (trusted over the unix socket; over TCP it needs
/// [`POSTGRES_PASSWORD`] when the cluster uses [`PgAuth::Scram`](crate::PgAuth::Scram)).
pub const POSTGRES_SUPERUSER: &str = "postgres";
/// Password of the `postgres` superuser.
pub const POSTGRES_PASSWORD: &str = "postgres_password";

/// `psql` prints this for SQL NULL (its default, the empty string, is ambiguous).
const PSQL_NULL: &str = "\u{1}NULL\u{1}";

/// Where and as whom to connect over TCP: everything a connector configuration needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// MariaDB or PostgreSQL.
    pub kind: ServerKind,
    /// Always [`HOST`] (`127.0.0.1`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database, if any.
    pub database: Option<String>,
}

impl ConnectionInfo {
    /// `mysql://user:password@127.0.0.1:port[/database]` or
    /// `postgres://user:password@127.0.0.1:port[/database]` (user, password and database are
    /// percent-encoded).
    pub fn url(&self) -> String {
        let scheme = match self.kind {
            ServerKind::MariaDb => "mysql",
            ServerKind::Postgres => "postgres",
        };
        let mut url = format!(
            "{scheme}://{}:{}@{}:{}",
            percent_encode(&self.user),
            percent_encode(&self.password),
            self.host,
            self.port
        );
        if let Some(db) = &self.database {
            url.push('/');
            url.push_str(&percent_encode(db));
        }
        url
    }

    /// Flink-style JDBC URL without credentials: `jdbc:mysql://127.0.0.1:port[/database]` or
    /// `jdbc:postgresql://127.0.0.1:port[/database]`.
    pub fn jdbc_url(&self) -> String {
        let scheme = match self.kind {
            ServerKind::MariaDb => "mysql",
            ServerKind::Postgres => "postgresql",
        };
        let mut url = format!("jdbc:{scheme}://{}:{}", self.host, self.port);
        if let Some(db) = &self.database {
            url.push('/');
            url.push_str(&percent_encode(db));
        }
        url
    }

    /// The same login in another database.
    pub fn with_database(&self, database: &str) -> ConnectionInfo {
        ConnectionInfo { database: Some(database.to_string()), ..self.clone() }
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs SQL on a server through its command-line client (`mariadb` or `psql`), as one login.
///
/// Each call starts the client once and feeds it the SQL on stdin, so a call may hold several
/// `;`-separated statements; they run in order (each in autocommit unless the SQL says otherwise)
/// and the first error stops the script. Rows of every result set are returned in order, all
/// values as text in the server's text format.
///
/// The `exec`/`query*` methods panic with the error message (for tests); `try_*` return it.
///
/// The SQL is a client script: `psql` interprets backslash meta-commands (`\…`) in it, and
/// `mariadb` its client commands (`DELIMITER`, `\G`, …).
#[derive(Clone, Debug)]
pub struct Client {
    program: PathBuf,
    conn: ConnectionInfo,
    /// Connect over this unix socket (MariaDB: the socket file; PostgreSQL: its directory)
    /// instead of TCP.
    socket: Option<PathBuf>,
}

impl Client {
    pub(crate) fn new(program: &Path, conn: ConnectionInfo, socket: Option<&Path>) -> Client {
        Client { program: program.to_path_buf(), conn, socket: socket.map(Path::to_path_buf) }
    }

    /// The same login in another database.
    pub fn with_database(&self, database: &str) -> Client {
        Client { conn: self.conn.with_database(database), ..self.clone() }
    }

    /// The same client program for another login, over TCP.
    pub(crate) fn over_tcp(&self, login: &ConnectionInfo) -> Client {
        Client { program: self.program.clone(), conn: login.clone(), socket: None }
    }

    /// Who this client connects as, and where. For a unix-socket client (the administrators')
    /// this still describes the TCP port; the socket is [`Client::socket`].
    pub fn connection(&self) -> &ConnectionInfo {
        &self.conn
    }

    /// The unix socket this client uses, `None` for TCP.
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// Runs SQL, discarding any result.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = self.try_exec(sql) {
            panic!("{e}");
        }
    }

    /// Runs SQL and returns the rows, SQL NULL as the text `NULL` (use [`Client::query_opt`]
    /// where NULL and the string `'NULL'` must be told apart).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.query_opt(sql)
            .into_iter()
            .map(|row| row.into_iter().map(|v| v.unwrap_or_else(|| "NULL".to_string())).collect())
            .collect()
    }

    /// Runs SQL and returns the rows, SQL NULL as `None`.
    pub fn query_opt(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_query(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first column of the first row (`NULL` as the text `NULL`); panics if there is no row.
    pub fn query_one(&self, sql: &str) -> String {
        let rows = self.query(sql);
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(value) => value,
            None => panic!("query returned no rows: {sql}"),
        }
    }

    /// Runs SQL, discarding any result.
    pub fn try_exec(&self, sql: &str) -> Result<()> {
        self.run(sql).map(|_| ())
    }

    /// Runs SQL and returns the rows, SQL NULL as `None`.
    pub fn try_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let output = self.run(sql)?;
        match self.conn.kind {
            ServerKind::MariaDb => parse_mariadb_xml(&output),
            ServerKind::Postgres => Ok(parse_csv(&output, PSQL_NULL)),
        }
        .map_err(|message| Error::Output { client: self.program.display().to_string(), message })
    }

    fn command(&self) -> Command {
        let c = &self.conn;
        let mut cmd = Command::new(&self.program);
        match c.kind {
            ServerKind::MariaDb => {
                for var in ["MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT", "MYSQL_PWD"] {
                    cmd.env_remove(var);
                }
                cmd.args(["--no-defaults", "--xml", "--default-character-set=utf8mb4", "--connect-timeout=10"]);
                match &self.socket {
                    Some(socket) => {
                        cmd.arg("--protocol=SOCKET");
                        cmd.arg(format!("--socket={}", socket.display()));
                    }
                    None => {
                        cmd.arg("--protocol=TCP");
                        cmd.arg(format!("--host={}", c.host));
                        cmd.arg(format!("--port={}", c.port));
                    }
                }
                cmd.arg(format!("--user={}", c.user));
                if !c.password.is_empty() {
                    cmd.arg(format!("--password={}", c.password));
                }
                if let Some(db) = &c.database {
                    cmd.arg(format!("--database={db}"));
                }
            }
            ServerKind::Postgres => {
                for var in [
                    "PGSERVICE",
                    "PGSERVICEFILE",
                    "PGOPTIONS",
                    "PGPASSFILE",
                    "PGSSLMODE",
                    "PGTARGETSESSIONATTRS",
                    "PGHOSTADDR",
                ] {
                    cmd.env_remove(var);
                }
                if c.password.is_empty() {
                    cmd.env_remove("PGPASSWORD");
                } else {
                    cmd.env("PGPASSWORD", &c.password);
                }
                cmd.env("PGCONNECT_TIMEOUT", "10");
                cmd.env("PGCLIENTENCODING", "UTF8");
                cmd.env("PGAPPNAME", "cdc-sql-testkit");
                cmd.args(["-X", "-q", "-t", "--csv", "-v", "ON_ERROR_STOP=1", "-P"]);
                cmd.arg(format!("null={PSQL_NULL}"));
                match &self.socket {
                    Some(dir) => cmd.arg("-h").arg(dir),
                    None => cmd.arg("-h").arg(&c.host),
                };
                cmd.arg("-p").arg(c.port.to_string());
                cmd.arg("-U").arg(&c.user);
                cmd.arg("-d").arg(c.database.as_deref().unwrap_or(POSTGRES_SUPERUSER));
                cmd.args(["-f", "-"]);
            }
        }
        cmd
    }

    fn run(&self, sql: &str) -> Result<String> {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::io(format!("starting `{}`", self.program.display()), e))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = sql.to_string();
        // Feed stdin from another thread: a client producing output before it has read all of
        // a large script would otherwise deadlock against us.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
            let _ = stdin.write_all(b"\n");
        });
        let output =
            child.wait_with_output().map_err(|e| Error::io(format!("running `{}`", self.program.display()), e))?;
        let _ = writer.join();
        if !output.status.success() {
            let mut message = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if message.is_empty() {
                message = format!("{} exited with {}", self.program.display(), output.status);
            }
            return Err(Error::Sql {
                server: self.conn.kind,
                user: self.conn.user.clone(),
                database: self.conn.database.clone().unwrap_or_default(),
                message,
                sql: sql.to_string(),
            });
        }
        String::from_utf8(output.stdout).map_err(|e| Error::Output {
            client: self.program.display().to_string(),
            message: format!("not UTF-8: {e}"),
        })
    }
}

/// Parses `mariadb --xml` output: `<row>`s of `<field name="…">value</field>` or
/// `<field name="…" xsi:nil="true" />` for NULL. Every `<` inside names and values is escaped,
/// so searching for tags is safe.
fn parse_mariadb_xml(out: &str) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let mut rows = Vec::new();
    let mut rest = out;
    while let Some(start) = rest.find("<row>") {
        rest = &rest[start + "<row>".len()..];
        let end = rest.find("</row>").ok_or("unterminated <row>")?;
        let mut row_text = &rest[..end];
        let mut row = Vec::new();
        while let Some(field) = row_text.find("<field") {
            row_text = &row_text[field + "<field".len()..];
            let close = row_text.find('>').ok_or("unterminated <field> tag")?;
            let attributes = &row_text[..close];
            let after = &row_text[close + 1..];
            if attributes.ends_with('/') {
                row.push(None);
                row_text = after;
            } else {
                let value_end = after.find("</field>").ok_or("unterminated <field>")?;
                row.push(Some(xml_unescape(&after[..value_end])));
                row_text = &after[value_end + "</field>".len()..];
            }
        }
        rows.push(row);
        rest = &rest[end + "</row>".len()..];
    }
    Ok(rows)
}

fn xml_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses `psql --csv` output (RFC 4180 quoting); an unquoted field equal to `null` is NULL.
fn parse_csv(out: &str, null: &str) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = out.chars().peekable();
    let finish_field = |row: &mut Vec<Option<String>>, field: &mut String, quoted: &mut bool| {
        let value = std::mem::take(field);
        row.push(if !*quoted && value == null { None } else { Some(value) });
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            ',' => finish_field(&mut row, &mut field, &mut quoted),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                finish_field(&mut row, &mut field, &mut quoted);
                rows.push(std::mem::take(&mut row));
            }
            '"' => {
                in_quotes = true;
                quoted = true;
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || quoted || !row.is_empty() {
        finish_field(&mut row, &mut field, &mut quoted);
        rows.push(row);
    }
    rows
}

/// A database of its own on a test server, for one test.
///
/// It is not dropped when the handle goes away (a failed test's data stays inspectable); it
/// disappears with its server.
#[derive(Clone, Debug)]
pub struct Database {
    name: String,
    admin: Client,
    cdc: Client,
    admin_tcp: ConnectionInfo,
}

impl Database {
    pub(crate) fn new(name: String, admin: &Client, cdc: &Client, admin_tcp: &ConnectionInfo) -> Self {
        Database {
            admin: admin.with_database(&name),
            cdc: cdc.with_database(&name),
            admin_tcp: admin_tcp.with_database(&name),
            name,
        }
    }

    /// The database name (lowercase letters, digits and `_`; no quoting needed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// MariaDB or PostgreSQL.
    pub fn kind(&self) -> ServerKind {
        self.cdc.conn.kind
    }

    /// The administrator in this database (MariaDB `root` / PostgreSQL `postgres`, over the unix
    /// socket): for creating tables and writing test data.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// [`CDC_USER`] in this database, over TCP: sees exactly what the CDC engine sees.
    pub fn cdc(&self) -> &Client {
        &self.cdc
    }

    /// How the CDC engine connects: [`CDC_USER`] over TCP, this database.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.cdc.conn
    }

    /// The administrator's TCP login for this database (`root`/[`MARIADB_ROOT_PASSWORD`] or
    /// `postgres`/[`POSTGRES_PASSWORD`]).
    pub fn admin_connection(&self) -> &ConnectionInfo {
        &self.admin_tcp
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        &self.cdc.conn.host
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.cdc.conn.port
    }

    /// URL of the CDC login, see [`ConnectionInfo::url`].
    pub fn url(&self) -> String {
        self.connection().url()
    }

    /// JDBC URL of this database, see [`ConnectionInfo::jdbc_url`].
    pub fn jdbc_url(&self) -> String {
        self.connection().jdbc_url()
    }

    /// Runs SQL as the administrator in this database.
    pub fn exec(&self, sql: &str) {
        self.admin.exec(sql)
    }

    /// Runs SQL as the administrator; NULL as the text `NULL`.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.admin.query(sql)
    }

    /// Runs SQL as the administrator; NULL as `None`.
    pub fn query_opt(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.admin.query_opt(sql)
    }

    /// First column of the first row, as the administrator.
    pub fn query_one(&self, sql: &str) -> String {
        self.admin.query_one(sql)
    }

    /// Runs SQL as the administrator, returning errors.
    pub fn try_exec(&self, sql: &str) -> Result<()> {
        self.admin.try_exec(sql)
    }

    /// Runs SQL as the administrator, returning errors; NULL as `None`.
    pub fn try_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.admin.try_query(sql)
    }
}

/// A fresh database name: sanitised prefix, pid and a per-process counter.
pub(crate) fn unique_database_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut base: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(32).collect();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base.insert_str(0, "db_");
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{base}_{}_{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mariadb_xml() {
        let out = "<?xml version=\"1.0\"?>\n\n<resultset statement=\"select * from t where a &lt; 3\" xmlns:xsi=\"x\">\n  <row>\n\t<field name=\"a\">1</field>\n\t<field name=\"b\">NULL</field>\n  </row>\n\n  <row>\n\t<field name=\"a\">2</field>\n\t<field name=\"b\" xsi:nil=\"true\" />\n  </row>\n  <row>\n\t<field name=\"a/\">a&lt;b&amp;&quot;c&quot; \ttab\nnl&#65;</field>\n\t<field name=\"e\"></field>\n  </row>\n</resultset>\n";
        let rows = parse_mariadb_xml(out).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("NULL".into())],
                vec![Some("2".into()), None],
                vec![Some("a<b&\"c\" \ttab\nnlA".into()), Some(String::new())],
            ]
        );
        assert!(parse_mariadb_xml("").unwrap().is_empty());
    }

    #[test]
    fn parses_psql_csv() {
        let out = format!("1,NULL\n2,{PSQL_NULL}\n3,\"x,\"\"y\"\"\nz\"\n4,\n\"\"\n");
        assert_eq!(
            parse_csv(&out, PSQL_NULL),
            vec![
                vec![Some("1".into()), Some("NULL".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into()), Some("x,\"y\"\nz".into())],
                vec![Some("4".into()), Some(String::new())],
                vec![Some(String::new())],
            ]
        );
        assert!(parse_csv("", PSQL_NULL).is_empty());
    }

    #[test]
    fn urls() {
        let c = ConnectionInfo {
            kind: ServerKind::Postgres,
            host: HOST.into(),
            port: 5,
            user: "u".into(),
            password: "p@ss word".into(),
            database: Some("db".into()),
        };
        assert_eq!(c.url(), "postgres://u:p%40ss%20word@127.0.0.1:5/db");
        assert_eq!(c.jdbc_url(), "jdbc:postgresql://127.0.0.1:5/db");
        let m = ConnectionInfo { kind: ServerKind::MariaDb, database: None, ..c };
        assert_eq!(m.url(), "mysql://u:p%40ss%20word@127.0.0.1:5");
        assert_eq!(m.jdbc_url(), "jdbc:mysql://127.0.0.1:5");
    }

    #[test]
    fn database_names() {
        let a = unique_database_name("Orders-Test");
        let b = unique_database_name("Orders-Test");
        assert_ne!(a, b);
        assert!(a.starts_with("orders_test_"), "{a}");
        assert!(unique_database_name("1x").starts_with("db_1x_"));
        assert!(unique_database_name(&"x".repeat(100)).len() < 60);
    }
}
