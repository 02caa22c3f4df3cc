//! `dev-services`: one persistent MariaDB and one PostgreSQL for working on cdc-sql by hand,
//! configured exactly like the test servers (same library code).
//!
//! ```text
//! scripts/dev-services start    # start both (initialising them on first use), then return
//! scripts/dev-services status   # running or not, pid, port
//! scripts/dev-services env      # export lines and example commands: eval "$(scripts/dev-services env)"
//! scripts/dev-services stop     # stop both (data is kept)
//! ```
//!
//! Data lives in `$CDC_SQL_DEV_DIR`, default `./.dev-services` (`mariadb/`, `postgres/`).
//! Ports: `$CDC_SQL_DEV_MARIADB_PORT` (default 13306) and `$CDC_SQL_DEV_POSTGRES_PORT`
//! (default 15432), on 127.0.0.1.

use cdc_sql_testkit::{
    running_server, stop_server, ConnectionInfo, MariaDb, MariaDbConfig, PgAuth, Postgres, PostgresConfig,
    RunningServer, ServerKind, CDC_PASSWORD, CDC_USER, HOST, MARIADB_ROOT_PASSWORD, MARIADB_ROOT_USER,
    POSTGRES_PASSWORD, POSTGRES_SUPERUSER,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_MARIADB_PORT: u16 = 13306;
const DEFAULT_POSTGRES_PORT: u16 = 15432;
const DIR_ENV: &str = "CDC_SQL_DEV_DIR";
const MARIADB_PORT_ENV: &str = "CDC_SQL_DEV_MARIADB_PORT";
const POSTGRES_PORT_ENV: &str = "CDC_SQL_DEV_POSTGRES_PORT";
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "\
usage: dev-services <start|stop|status|env>

Runs one persistent MariaDB and one PostgreSQL on 127.0.0.1, configured like the test servers
(binlog ROW + GTID; wal_level=logical; user cdc_user / cdc_password on both).

  start   start both servers (initialise on first use); they keep running after this returns
  stop    stop both servers (the data is kept)
  status  show whether they run (exit status 0 only if both do)
  env     print export lines and example client commands: eval \"$(scripts/dev-services env)\"

environment:
  CDC_SQL_DEV_DIR             data directory (default: ./.dev-services)
  CDC_SQL_DEV_MARIADB_PORT    MariaDB port (default: 13306)
  CDC_SQL_DEV_POSTGRES_PORT   PostgreSQL port (default: 15432)
";

struct Settings {
    dir: PathBuf,
    mariadb_port: u16,
    postgres_port: u16,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let dir = match std::env::var_os(DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(".dev-services"),
        };
        let dir = std::path::absolute(&dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
        Ok(Settings {
            dir,
            mariadb_port: port_from_env(MARIADB_PORT_ENV, DEFAULT_MARIADB_PORT)?,
            postgres_port: port_from_env(POSTGRES_PORT_ENV, DEFAULT_POSTGRES_PORT)?,
        })
    }

    fn server_dir(&self, kind: ServerKind) -> PathBuf {
        self.dir.join(kind.as_str())
    }

    fn configured_port(&self, kind: ServerKind) -> u16 {
        match kind {
            ServerKind::MariaDb => self.mariadb_port,
            ServerKind::Postgres => self.postgres_port,
        }
    }
}

fn port_from_env(var: &str, default: u16) -> Result<u16, String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("{var}={v:?} is not a TCP port"))
        }
        _ => Ok(default),
    }
}

const KINDS: [ServerKind; 2] = [ServerKind::MariaDb, ServerKind::Postgres];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.as_slice() {
        [command] => command.as_str(),
        [] => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
        _ => "",
    };
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("dev-services: {message}");
            return ExitCode::from(2);
        }
    };
    match command {
        "start" => start(&settings),
        "stop" => stop(&settings),
        "status" => status(&settings),
        "env" => env(&settings),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("dev-services: unknown arguments {args:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn start(settings: &Settings) -> ExitCode {
    let mut ok = true;
    for kind in KINDS {
        let dir = settings.server_dir(kind);
        if let Some(running) = running_server(&dir) {
            println!("{kind} already running: pid {}, port {}, {}", running.pid, running.port, dir.display());
            continue;
        }
        let port = Some(settings.configured_port(kind));
        // Persistent directories: the servers keep running when these handles are dropped.
        let started = match kind {
            ServerKind::MariaDb => {
                MariaDb::start_with(MariaDbConfig { dir: Some(dir.clone()), port, ..MariaDbConfig::default() })
                    .map(|s| (s.pid(), s.port()))
            }
            ServerKind::Postgres => Postgres::start_with(PostgresConfig {
                dir: Some(dir.clone()),
                port,
                auth: PgAuth::Trust,
                ..PostgresConfig::default()
            })
            .map(|s| (s.pid(), s.port())),
        };
        match started {
            Ok((pid, port)) => {
                println!("{kind} started: pid {pid}, port {port}, {}", dir.display())
            }
            Err(e) => {
                eprintln!("dev-services: cannot start {kind}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        println!("connection details: scripts/dev-services env");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn stop(settings: &Settings) -> ExitCode {
    let mut ok = true;
    for kind in KINDS {
        match stop_server(&settings.server_dir(kind), STOP_TIMEOUT) {
            Ok(Some(stopped)) => println!("{kind} stopped (pid {})", stopped.pid),
            Ok(None) => println!("{kind} was not running"),
            Err(e) => {
                eprintln!("dev-services: cannot stop {kind}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn status(settings: &Settings) -> ExitCode {
    let mut all_running = true;
    for kind in KINDS {
        let dir = settings.server_dir(kind);
        match running_server(&dir) {
            Some(RunningServer { pid, port, .. }) => {
                println!("{kind}: running, pid {pid}, port {port}, {}", dir.display())
            }
            None => {
                all_running = false;
                println!("{kind}: stopped ({})", dir.display());
            }
        }
    }
    if all_running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

fn env(settings: &Settings) -> ExitCode {
    let mariadb_dir = settings.server_dir(ServerKind::MariaDb);
    let postgres_dir = settings.server_dir(ServerKind::Postgres);
    let mariadb = running_server(&mariadb_dir);
    let postgres = running_server(&postgres_dir);
    let state = |r: &Option<RunningServer>| {
        if r.is_some() {
            "running"
        } else {
            "not running"
        }
    };
    let port = |r: &Option<RunningServer>, kind| r.as_ref().map_or_else(|| settings.configured_port(kind), |r| r.port);
    let conn = |kind, port, user: &str, password: &str, database: Option<&str>| ConnectionInfo {
        kind,
        host: HOST.to_string(),
        port,
        user: user.to_string(),
        password: password.to_string(),
        database: database.map(str::to_string),
    };

    let m_port = port(&mariadb, ServerKind::MariaDb);
    let m_cdc = conn(ServerKind::MariaDb, m_port, CDC_USER, CDC_PASSWORD, None);
    let m_socket = mariadb_dir.join("mariadbd.sock");
    let p_port = port(&postgres, ServerKind::Postgres);
    let p_cdc = conn(ServerKind::Postgres, p_port, CDC_USER, CDC_PASSWORD, Some("postgres"));
    let p_admin = conn(ServerKind::Postgres, p_port, POSTGRES_SUPERUSER, POSTGRES_PASSWORD, Some("postgres"));

    println!(
        "# cdc-sql dev services in {} (MariaDB: {}, PostgreSQL: {})",
        settings.dir.display(),
        state(&mariadb),
        state(&postgres)
    );
    let vars: [(&str, String); 18] = [
        ("CDC_SQL_DEV_MARIADB_HOST", HOST.to_string()),
        (MARIADB_PORT_ENV, m_port.to_string()),
        ("CDC_SQL_DEV_MARIADB_USER", CDC_USER.to_string()),
        ("CDC_SQL_DEV_MARIADB_PASSWORD", CDC_PASSWORD.to_string()),
        ("CDC_SQL_DEV_MARIADB_ROOT_USER", MARIADB_ROOT_USER.to_string()),
        ("CDC_SQL_DEV_MARIADB_ROOT_PASSWORD", MARIADB_ROOT_PASSWORD.to_string()),
        ("CDC_SQL_DEV_MARIADB_SOCKET", m_socket.display().to_string()),
        ("CDC_SQL_DEV_MARIADB_URL", m_cdc.url()),
        ("CDC_SQL_DEV_MARIADB_JDBC_URL", m_cdc.jdbc_url()),
        ("CDC_SQL_DEV_POSTGRES_HOST", HOST.to_string()),
        (POSTGRES_PORT_ENV, p_port.to_string()),
        ("CDC_SQL_DEV_POSTGRES_USER", CDC_USER.to_string()),
        ("CDC_SQL_DEV_POSTGRES_PASSWORD", CDC_PASSWORD.to_string()),
        ("CDC_SQL_DEV_POSTGRES_SUPERUSER", POSTGRES_SUPERUSER.to_string()),
        ("CDC_SQL_DEV_POSTGRES_SUPERUSER_PASSWORD", POSTGRES_PASSWORD.to_string()),
        ("CDC_SQL_DEV_POSTGRES_SOCKET_DIR", postgres_dir.display().to_string()),
        ("CDC_SQL_DEV_POSTGRES_URL", p_cdc.url()),
        ("CDC_SQL_DEV_POSTGRES_JDBC_URL", p_cdc.jdbc_url()),
    ];
    for (name, value) in vars {
        println!("export {name}={}", sh_quote(&value));
    }
    println!("# Examples:");
    println!("#   mariadb --no-defaults -h {HOST} -P {m_port} -u {MARIADB_ROOT_USER} -p{MARIADB_ROOT_PASSWORD}");
    println!("#   mariadb --no-defaults -S {} -u {MARIADB_ROOT_USER}", sh_quote(&m_socket.display().to_string()));
    println!("#   mariadb --no-defaults -h {HOST} -P {m_port} -u {CDC_USER} -p{CDC_PASSWORD} -e 'SHOW MASTER STATUS'");
    println!("#   psql {}", sh_quote(&p_admin.url()));
    println!(
        "#   psql -h {} -p {p_port} -U {POSTGRES_SUPERUSER} postgres",
        sh_quote(&postgres_dir.display().to_string())
    );
    println!("#   psql {}", sh_quote(&p_cdc.url()));
    ExitCode::SUCCESS
}

/// Quotes a value for POSIX sh when needed.
fn sh_quote(value: &str) -> String {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/a/b-c"), "/a/b-c");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
