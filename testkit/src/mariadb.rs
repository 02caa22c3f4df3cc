//! MariaDB test servers; see [`MariaDb`].

use crate::bins;
use crate::client::{
    unique_database_name, Client, ConnectionInfo, Database, CDC_PASSWORD, CDC_USER, HOST, MARIADB_ROOT_PASSWORD,
    MARIADB_ROOT_USER,
};
use crate::error::{Error, Result, ServerKind};
use crate::process::{self, DirGuard, ServerProcess, SpawnOptions, Startup};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable naming a directory that holds `mariadbd`, `mariadb-install-db`,
/// `mariadb` and `mariadb-admin` (overrides the search of `$PATH`, `/usr/sbin`, …).
pub const MARIADB_BIN_DIR_ENV: &str = "CDC_SQL_MARIADB_BIN_DIR";

const KIND: ServerKind = ServerKind::MariaDb;
const INNODB_LOG_FILE_SIZE: &str = "--innodb-log-file-size=16M";
const PORT_ATTEMPTS: u32 = 5;

/// Set-up run as root after every start (idempotent; not binlogged).
const SETUP_SQL: &str = "
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'cdc_user'@'%' IDENTIFIED BY 'cdc_password';
ALTER USER 'cdc_user'@'%' IDENTIFIED BY 'cdc_password';
GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, SHOW DATABASES ON *.* TO 'cdc_user'@'%';
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY 'root_password';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'root_password';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
";

/// How to start a MariaDB server. `MariaDbConfig::default()` is what [`crate::mariadb`] uses.
#[derive(Clone, Debug)]
pub struct MariaDbConfig {
    /// Directory holding `mariadbd`, `mariadb-install-db`, `mariadb` and `mariadb-admin`.
    /// `None`: [`MARIADB_BIN_DIR_ENV`] if set, else `$PATH`, `/usr/sbin`, `/usr/local/sbin`,
    /// `/usr/bin`, `/usr/local/bin`.
    pub bin_dir: Option<PathBuf>,
    /// `None` (tests): a fresh temporary directory, removed when the server stops.
    /// `Some(dir)` (dev services): a persistent directory; initialised on first use, reused
    /// afterwards, and the server keeps running when the handle is dropped.
    pub dir: Option<PathBuf>,
    /// TCP port on 127.0.0.1; `None` picks a free one (retrying if another process takes it
    /// first).
    pub port: Option<u16>,
    /// `server_id` (a CDC reader registers as a replica with a different id).
    pub server_id: u32,
    /// How long to wait for the server to accept connections.
    pub startup_timeout: Duration,
    /// Have the kernel SIGKILL a temporary server when the test process dies, however it dies
    /// (`PR_SET_PDEATHSIG`). Default `true`; switch off only to exercise [`crate::cleanup_stale`].
    /// Ignored for persistent directories.
    pub die_with_process: bool,
}

impl Default for MariaDbConfig {
    fn default() -> Self {
        MariaDbConfig {
            bin_dir: None,
            dir: None,
            port: None,
            server_id: 1,
            startup_timeout: Duration::from_secs(60),
            die_with_process: true,
        }
    }
}

struct Tools {
    mariadbd: PathBuf,
    install_db: PathBuf,
    client: PathBuf,
    admin: PathBuf,
}

impl Tools {
    fn find(bin_dir: Option<&Path>) -> Result<Tools> {
        let dirs = match bins::configured_dir(bin_dir, MARIADB_BIN_DIR_ENV) {
            Some(dir) => vec![dir],
            None => {
                let mut dirs = bins::path_dirs();
                bins::push_unique(
                    &mut dirs,
                    ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from),
                );
                dirs
            }
        };
        let find = |name: &str| bins::find_in(&dirs, name).ok_or_else(|| bins::missing(KIND, name, &dirs));
        Ok(Tools {
            mariadbd: find("mariadbd")?,
            install_db: find("mariadb-install-db")?,
            client: find("mariadb")?,
            admin: find("mariadb-admin")?,
        })
    }
}

/// A running MariaDB server, set up for binlog CDC.
///
/// A server is initialised with `mariadb-install-db` and started as `mariadbd --no-defaults`
/// (no `my.cnf` is read) with everything a binlog CDC reader needs:
///
/// * `log_bin` (`mariadb-bin.*` in the data directory), `binlog_format=ROW`,
///   `binlog_row_image=FULL`, `binlog_row_metadata=FULL` (column names and types in the
///   table-map events), `server_id` ([`MariaDbConfig::server_id`], default 1);
/// * GTIDs: MariaDB always assigns them; `gtid_strict_mode=ON` and `log_slave_updates=ON`.
///   `@@gtid_binlog_pos` / `@@gtid_current_pos` become non-empty with the first logged write
///   (the set-up of users below is not binlogged, so a fresh server starts with an empty
///   position);
/// * `--skip-name-resolve`, TCP on `127.0.0.1:<port>` and a unix socket in the server directory;
/// * speed over durability: `innodb_flush_log_at_trx_commit=2`, `sync_binlog=0`, a small buffer
///   pool, no performance schema.
///
/// # Users
///
/// * `root@localhost`: over the unix socket, no password (used by [`MariaDb::admin`]).
/// * `root@127.0.0.1`: over TCP, password [`MARIADB_ROOT_PASSWORD`], all privileges.
/// * [`CDC_USER`]`@'%'`, password [`CDC_PASSWORD`], with exactly the grants the user documentation
///   asks for:
///
///   ```sql
///   GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, SHOW DATABASES ON *.* TO 'cdc_user'@'%';
///   ```
///
///   `SELECT` reads snapshots, `SHOW DATABASES` lists databases, `REPLICATION SLAVE` lets the
///   user request the binlog stream (`COM_BINLOG_DUMP`), and `REPLICATION CLIENT` covers
///   `SHOW MASTER STATUS` / `SHOW BINARY LOGS`. Since MariaDB 10.5.2 `REPLICATION CLIENT` is an
///   alias of `BINLOG MONITOR`, the privilege those statements check, so no separate
///   `BINLOG MONITOR` grant is needed: granting the alias *is* granting `BINLOG MONITOR`, and
///   `SHOW GRANTS` prints it under that name
///   (`GRANT SELECT, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR ON *.* …`). We keep the
///   old name in the grant because it also works on MySQL and older MariaDB, so the docs can
///   give one statement. The tests check that `SHOW MASTER STATUS` works with exactly this.
///
/// # Lifetime
///
/// A temporary server (the default) is stopped and its directory removed when the handle is
/// dropped, or at process exit for the shared one ([`crate::mariadb`]).
#[derive(Debug)]
pub struct MariaDb {
    process: Arc<ServerProcess>,
    port: u16,
    socket: PathBuf,
    admin: Client,
    cdc: Client,
}

impl MariaDb {
    /// Starts a private temporary server with the default configuration.
    pub fn start() -> Result<MariaDb> {
        Self::start_with(MariaDbConfig::default())
    }

    /// Starts a server.
    pub fn start_with(config: MariaDbConfig) -> Result<MariaDb> {
        let tools = Tools::find(config.bin_dir.as_deref())?;
        process::cleanup_stale_once();
        let (dir, temporary) = process::server_dir(KIND, config.dir.as_deref())?;
        let mut guard = DirGuard::new(&dir, temporary);
        let socket = dir.join("mariadbd.sock");
        process::check_socket_path(&socket)?;
        let data = process::data_dir(&dir);
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let log = dir.join("mariadbd.log");
        if !data.join("mysql").is_dir() {
            install(&tools, &dir, &data, temporary && config.die_with_process)?;
        }

        let options =
            SpawnOptions { run_as: None, new_session: true, die_with_process: temporary && config.die_with_process };
        let mut attempt = 0;
        let (child, port) = loop {
            attempt += 1;
            let port = match config.port {
                Some(port) => port,
                None => process::free_port()?,
            };
            let offset = process::file_len(&log);
            let out = process::open_log(&log)?;
            let err = out.try_clone().map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
            let mut cmd = Command::new(&tools.mariadbd);
            cmd.args(server_args(&dir, &socket, &log, port, config.server_id))
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let mut child = process::spawn(cmd, options)
                .map_err(|e| Error::io(format!("starting {}", tools.mariadbd.display()), e))?;
            if let Err(e) = process::write_server_record(&dir, KIND, child.id(), port) {
                process::kill_child(&mut child);
                return Err(e);
            }
            let ready = process::wait_until_ready(&mut child, config.startup_timeout, || ping(&tools.admin, &socket));
            match ready {
                Ok(Startup::Ready) => break (child, port),
                Ok(Startup::Exited(status)) => {
                    let tail = process::log_tail(&log, offset, 30);
                    if tail.contains("Address already in use") {
                        if config.port.is_none() && attempt < PORT_ATTEMPTS {
                            continue;
                        }
                        return Err(Error::PortInUse { server: KIND, port, log, tail });
                    }
                    return Err(Error::ServerExited { server: KIND, status: status.to_string(), log, tail });
                }
                Ok(Startup::TimedOut) => {
                    process::kill_child(&mut child);
                    return Err(Error::StartTimeout {
                        server: KIND,
                        timeout: config.startup_timeout,
                        tail: process::log_tail(&log, offset, 30),
                        log,
                    });
                }
                Err(e) => {
                    process::kill_child(&mut child);
                    return Err(e);
                }
            }
        };

        let process = ServerProcess::new(KIND, dir, child, temporary);
        let admin_conn = ConnectionInfo {
            kind: KIND,
            host: HOST.to_string(),
            port,
            user: MARIADB_ROOT_USER.to_string(),
            password: String::new(),
            database: None,
        };
        let cdc_conn =
            ConnectionInfo { user: CDC_USER.to_string(), password: CDC_PASSWORD.to_string(), ..admin_conn.clone() };
        let server = MariaDb {
            admin: Client::new(&tools.client, admin_conn, Some(&socket)),
            cdc: Client::new(&tools.client, cdc_conn, None),
            process,
            port,
            socket,
        };
        if let Err(e) = server.admin.try_exec(SETUP_SQL) {
            server.process.stop();
            return Err(e);
        }
        guard.disarm();
        Ok(server)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server directory (data directory, log, socket).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// The server's error log.
    pub fn log_file(&self) -> PathBuf {
        self.process.dir.join("mariadbd.log")
    }

    /// Process id of `mariadbd`.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// `root` over the unix socket, no database selected.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// [`CDC_USER`] over TCP, no database selected.
    pub fn cdc(&self) -> &Client {
        &self.cdc
    }

    /// [`CDC_USER`]'s TCP login, no database selected.
    pub fn connection(&self) -> ConnectionInfo {
        self.cdc.connection().clone()
    }

    /// `root`'s TCP login (password [`MARIADB_ROOT_PASSWORD`]), no database selected.
    pub fn admin_connection(&self) -> ConnectionInfo {
        ConnectionInfo { password: MARIADB_ROOT_PASSWORD.to_string(), ..self.admin.connection().clone() }
    }

    /// A client for any TCP login on this server, e.g. the administrator's
    /// ([`Self::admin_connection`]) or a deliberately wrong password.
    pub fn client(&self, login: &ConnectionInfo) -> Client {
        self.admin.over_tcp(login)
    }

    /// Creates a database with a unique name starting with (a sanitised) `prefix`; panics on
    /// failure.
    pub fn create_database(&self, prefix: &str) -> Database {
        self.try_create_database(prefix).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a database with a unique name starting with (a sanitised) `prefix`.
    pub fn try_create_database(&self, prefix: &str) -> Result<Database> {
        let name = unique_database_name(prefix);
        self.admin.try_exec(&format!("CREATE DATABASE `{name}`"))?;
        Ok(Database::new(name, &self.admin, &self.cdc, &self.admin_connection()))
    }

    /// Stops the server now (what dropping a temporary handle does). For a persistent
    /// directory this stops the server too (SIGTERM), keeping the directory.
    pub fn stop(self) {
        if !self.process.temporary {
            self.process.stop();
        }
        // A temporary server stops in Drop.
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if self.process.temporary {
            self.process.stop();
        }
    }
}

fn install(tools: &Tools, dir: &Path, data: &Path, die_with_process: bool) -> Result<()> {
    let mut cmd = Command::new(&tools.install_db);
    // `--tmpdir` is passed on to the bootstrap server. It must not be the shared /tmp: every
    // starting server deletes the `#sql*` files it finds in its tmpdir, including those of other
    // servers bootstrapping at the same time.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            INNODB_LOG_FILE_SIZE,
        ])
        .current_dir(dir);
    if process::is_root() {
        cmd.arg("--user=root");
    }
    let options = SpawnOptions { run_as: None, new_session: false, die_with_process };
    process::run_command(cmd, options).map(|_| ())
}

fn server_args(dir: &Path, socket: &Path, log: &Path, port: u16, server_id: u32) -> Vec<String> {
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", process::data_dir(dir).display()),
        format!("--socket={}", socket.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".to_string(),
        format!("--pid-file={}", dir.join("mariadbd.pid").display()),
        format!("--log-error={}", log.display()),
        format!("--tmpdir={}", dir.join("tmp").display()),
        "--skip-name-resolve".to_string(),
        format!("--server-id={server_id}"),
        "--log-bin=mariadb-bin".to_string(),
        "--binlog-format=ROW".to_string(),
        "--binlog-row-image=FULL".to_string(),
        "--binlog-row-metadata=FULL".to_string(),
        "--log-slave-updates=ON".to_string(),
        "--gtid-strict-mode=ON".to_string(),
        "--character-set-server=utf8mb4".to_string(),
        "--innodb-buffer-pool-size=64M".to_string(),
        INNODB_LOG_FILE_SIZE.to_string(),
        "--innodb-flush-log-at-trx-commit=2".to_string(),
        "--sync-binlog=0".to_string(),
        "--performance-schema=OFF".to_string(),
        "--max-connections=200".to_string(),
    ];
    if process::is_root() {
        args.push("--user=root".to_string());
    }
    args
}

/// `mariadb-admin ping` over the socket: succeeds once the server accepts connections.
fn ping(admin: &Path, socket: &Path) -> bool {
    Command::new(admin)
        .arg("--no-defaults")
        .arg("--protocol=SOCKET")
        .arg(format!("--socket={}", socket.display()))
        .args(["--user=root", "--connect-timeout=2", "ping"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
