//! PostgreSQL test servers; see [`Postgres`].

use crate::bins;
use crate::client::{
    unique_database_name, Client, ConnectionInfo, Database, CDC_PASSWORD, CDC_USER, HOST, POSTGRES_PASSWORD,
    POSTGRES_SUPERUSER,
};
use crate::error::{Error, Result, ServerKind};
use crate::process::{self, DirGuard, ServerProcess, SpawnOptions, Startup};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable naming the PostgreSQL binary directory (one holding `postgres`,
/// `initdb`, `pg_isready` and `psql`), overriding the search.
pub const POSTGRES_BIN_DIR_ENV: &str = "CDC_SQL_POSTGRES_BIN_DIR";

const KIND: ServerKind = ServerKind::Postgres;
const PORT_ATTEMPTS: u32 = 5;

const SERVER_CONF: &str = "\
# Written by cdc-sql-testkit on every start.
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
listen_addresses = '127.0.0.1'
max_connections = 100
shared_buffers = 32MB
huge_pages = off
dynamic_shared_memory_type = mmap
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
";

/// Set-up run as `postgres` after every start (idempotent).
const SETUP_SQL: &str = "
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_user') THEN
    CREATE ROLE cdc_user;
  END IF;
END
$$;
ALTER ROLE cdc_user WITH LOGIN REPLICATION NOSUPERUSER PASSWORD 'cdc_password';
ALTER ROLE postgres WITH PASSWORD 'postgres_password';
";

/// How TCP connections authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PgAuth {
    /// `trust`: any password (or none) is accepted. The default.
    #[default]
    Trust,
    /// `scram-sha-256`: the password must be right (for testing password authentication).
    Scram,
}

impl PgAuth {
    fn method(self) -> &'static str {
        match self {
            PgAuth::Trust => "trust",
            PgAuth::Scram => "scram-sha-256",
        }
    }
}

/// How to start a PostgreSQL server. `PostgresConfig::default()` is what [`crate::postgres`]
/// uses.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// Directory holding `postgres`, `initdb`, `pg_isready` and `psql`. `None`:
    /// [`POSTGRES_BIN_DIR_ENV`] if set, else `pg_config --bindir`, else the highest
    /// `/usr/lib/postgresql/<version>/bin`, else `$PATH`.
    pub bin_dir: Option<PathBuf>,
    /// `None` (tests): a fresh temporary directory, removed when the server stops.
    /// `Some(dir)` (dev services): a persistent directory; initialised on first use, reused
    /// afterwards, and the server keeps running when the handle is dropped.
    pub dir: Option<PathBuf>,
    /// TCP port on 127.0.0.1; `None` picks a free one (retrying if another process takes it
    /// first).
    pub port: Option<u16>,
    /// TCP authentication.
    pub auth: PgAuth,
    /// How long to wait for the server to accept connections.
    pub startup_timeout: Duration,
    /// Have the kernel SIGKILL a temporary server when the test process dies, however it dies
    /// (`PR_SET_PDEATHSIG`). Default `true`; switch off only to exercise [`crate::cleanup_stale`].
    /// Ignored for persistent directories.
    pub die_with_process: bool,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            bin_dir: None,
            dir: None,
            port: None,
            auth: PgAuth::Trust,
            startup_timeout: Duration::from_secs(60),
            die_with_process: true,
        }
    }
}

struct Tools {
    postgres: PathBuf,
    initdb: PathBuf,
    pg_isready: PathBuf,
    psql: PathBuf,
}

impl Tools {
    fn find(bin_dir: Option<&Path>) -> Result<Tools> {
        let explicit = bins::configured_dir(bin_dir, POSTGRES_BIN_DIR_ENV);
        let candidates = match &explicit {
            Some(dir) => vec![dir.clone()],
            None => {
                let mut dirs = Vec::new();
                bins::push_unique(&mut dirs, pg_config_bindir());
                bins::push_unique(&mut dirs, highest_debian_bindir());
                bins::push_unique(&mut dirs, bins::path_dirs());
                dirs
            }
        };
        // The server binaries must come from one directory (one version).
        let server_dir = candidates
            .iter()
            .find(|d| bins::is_executable(&d.join("postgres")) && bins::is_executable(&d.join("initdb")))
            .cloned();
        let Some(server_dir) = server_dir else {
            let name = if bins::find_in(&candidates, "postgres").is_some() { "initdb" } else { "postgres" };
            return Err(bins::missing(KIND, name, &candidates));
        };
        let mut client_dirs = vec![server_dir.clone()];
        if explicit.is_none() {
            bins::push_unique(&mut client_dirs, bins::path_dirs());
        }
        let find =
            |name: &str| bins::find_in(&client_dirs, name).ok_or_else(|| bins::missing(KIND, name, &client_dirs));
        Ok(Tools {
            postgres: server_dir.join("postgres"),
            initdb: server_dir.join("initdb"),
            pg_isready: find("pg_isready")?,
            psql: find("psql")?,
        })
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

fn highest_debian_bindir() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version: Vec<u32> = name.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.is_dir())
        .max()
        .map(|(_, bin)| bin)
}

/// A running PostgreSQL server, set up for logical decoding.
///
/// A cluster is created with `initdb` (`--no-locale -E UTF8`, superuser `postgres`) and started
/// as `postgres -D <dir>/data` with:
///
/// * `wal_level=logical`, `max_replication_slots=20`, `max_wal_senders=20` (logical decoding
///   with `pgoutput`);
/// * TCP on `listen_addresses=127.0.0.1`, port from the config or a free one, and the unix socket
///   in the server directory;
/// * speed over durability: `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`, and
///   `dynamic_shared_memory_type=mmap` (segments live in the data directory, so a killed server
///   leaves nothing in `/dev/shm`).
///
/// The settings are written to `data/testkit.conf` (included from `postgresql.conf`);
/// `pg_hba.conf` is rewritten on every start according to [`PgAuth`]:
///
/// * unix socket: `trust` for everybody (the administrator client uses it);
/// * TCP (`127.0.0.1/32`, `::1/128`), databases and `replication`: `trust` with
///   [`PgAuth::Trust`], `scram-sha-256` with [`PgAuth::Scram`].
///
/// # Users
///
/// * `postgres`: superuser, password [`POSTGRES_PASSWORD`] (matters only with
///   [`PgAuth::Scram`]).
/// * [`CDC_USER`], password [`CDC_PASSWORD`]: `LOGIN REPLICATION`, not a superuser. It may create
///   and drop logical replication slots. Each database made by [`Postgres::create_database`] is
///   owned by `postgres` and grants `cdc_user` `SELECT` on the tables `postgres` creates in schema
///   `public` (`ALTER DEFAULT PRIVILEGES`); anything else (publications, other schemas) is up to
///   the test.
///
/// # Running as root
///
/// PostgreSQL refuses to run as root. When the effective uid is 0, `initdb` and `postgres` run as
/// the `postgres` system user (created by the Debian package): the server directory is chowned
/// to it and the processes switch uid/gid before `exec`. `psql` and `pg_isready` run as the
/// caller.
///
/// # Lifetime
///
/// A temporary server (the default) is stopped and its directory removed when the handle is
/// dropped, or at process exit for the shared one ([`crate::postgres`]).
#[derive(Debug)]
pub struct Postgres {
    process: Arc<ServerProcess>,
    port: u16,
    auth: PgAuth,
    admin: Client,
    cdc: Client,
}

impl Postgres {
    /// Starts a private temporary server with the default configuration.
    pub fn start() -> Result<Postgres> {
        Self::start_with(PostgresConfig::default())
    }

    /// Starts a server.
    pub fn start_with(config: PostgresConfig) -> Result<Postgres> {
        let tools = Tools::find(config.bin_dir.as_deref())?;
        let run_as = if process::is_root() {
            Some(process::lookup_user("postgres").ok_or_else(|| {
                Error::Setup(
                    "PostgreSQL cannot run as root and there is no `postgres` system user to run \
                     it as; install it with `apt-get install -y postgresql` (which creates the \
                     user) or run the tests as a normal user"
                        .to_string(),
                )
            })?)
        } else {
            None
        };
        process::cleanup_stale_once();
        let (dir, temporary) = process::server_dir(KIND, config.dir.as_deref())?;
        let mut guard = DirGuard::new(&dir, temporary);
        let probe_socket = dir.join(".s.PGSQL.65535");
        process::check_socket_path(&probe_socket)?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {} to postgres", dir.display()), e))?;
        }
        let data = process::data_dir(&dir);
        let log = dir.join("postgres.log");
        let options =
            SpawnOptions { run_as, new_session: true, die_with_process: temporary && config.die_with_process };
        if !data.join("PG_VERSION").is_file() {
            let initdb_options = SpawnOptions { new_session: false, ..options };
            initdb(&tools, &dir, &data, initdb_options)?;
        }
        write_config(&data, config.auth)?;

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
            let mut cmd = Command::new(&tools.postgres);
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&dir)
                .args(["-c", "listen_addresses=127.0.0.1"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let mut child = process::spawn(cmd, options)
                .map_err(|e| Error::io(format!("starting {}", tools.postgres.display()), e))?;
            if let Err(e) = process::write_server_record(&dir, KIND, child.id(), port) {
                process::kill_child(&mut child);
                return Err(e);
            }
            let ready = process::wait_until_ready(&mut child, config.startup_timeout, || {
                is_ready(&tools.pg_isready, &dir, port)
            });
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

        let socket_dir = dir.clone();
        let process = ServerProcess::new(KIND, dir, child, temporary);
        let admin_conn = ConnectionInfo {
            kind: KIND,
            host: HOST.to_string(),
            port,
            user: POSTGRES_SUPERUSER.to_string(),
            password: String::new(),
            database: Some("postgres".to_string()),
        };
        let cdc_conn =
            ConnectionInfo { user: CDC_USER.to_string(), password: CDC_PASSWORD.to_string(), ..admin_conn.clone() };
        let server = Postgres {
            admin: Client::new(&tools.psql, admin_conn, Some(&socket_dir)),
            cdc: Client::new(&tools.psql, cdc_conn, None),
            process,
            port,
            auth: config.auth,
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

    /// The directory holding the unix socket (`.s.PGSQL.<port>`): the server directory.
    pub fn socket_dir(&self) -> &Path {
        &self.process.dir
    }

    /// The server directory (data directory, log, socket).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// The server's log (its stderr).
    pub fn log_file(&self) -> PathBuf {
        self.process.dir.join("postgres.log")
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// How TCP connections authenticate.
    pub fn auth(&self) -> PgAuth {
        self.auth
    }

    /// `postgres` over the unix socket, database `postgres`.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// [`CDC_USER`] over TCP, database `postgres`.
    pub fn cdc(&self) -> &Client {
        &self.cdc
    }

    /// [`CDC_USER`]'s TCP login, database `postgres`.
    pub fn connection(&self) -> ConnectionInfo {
        self.cdc.connection().clone()
    }

    /// `postgres`'s TCP login (password [`POSTGRES_PASSWORD`]), database `postgres`.
    pub fn admin_connection(&self) -> ConnectionInfo {
        ConnectionInfo { password: POSTGRES_PASSWORD.to_string(), ..self.admin.connection().clone() }
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

    /// Creates a database with a unique name starting with (a sanitised) `prefix`, owned by
    /// `postgres`, where tables `postgres` creates in `public` are readable by [`CDC_USER`].
    pub fn try_create_database(&self, prefix: &str) -> Result<Database> {
        let name = unique_database_name(prefix);
        self.admin.try_exec(&format!("CREATE DATABASE \"{name}\""))?;
        let db = Database::new(name, &self.admin, &self.cdc, &self.admin_connection());
        db.try_exec("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO cdc_user;")?;
        Ok(db)
    }

    /// Stops the server now (what dropping a temporary handle does). For a persistent
    /// directory this stops the server too (fast shutdown), keeping the directory.
    pub fn stop(self) {
        if !self.process.temporary {
            self.process.stop();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.process.temporary {
            self.process.stop();
        }
    }
}

fn initdb(tools: &Tools, dir: &Path, data: &Path, options: SpawnOptions) -> Result<()> {
    let mut cmd = Command::new(&tools.initdb);
    cmd.arg("-D")
        .arg(data)
        .args(["-U", POSTGRES_SUPERUSER, "--no-locale", "-E", "UTF8", "--auth=trust", "--no-sync", "--no-instructions"])
        .current_dir(dir)
        .env_remove("PGDATA");
    process::run_command(cmd, options)?;
    let conf = data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).map_err(|e| Error::io(format!("reading {}", conf.display()), e))?;
    text.push_str("\n# cdc-sql-testkit settings\ninclude_if_exists = 'testkit.conf'\n");
    fs::write(&conf, text).map_err(|e| Error::io(format!("writing {}", conf.display()), e))
}

fn write_config(data: &Path, auth: PgAuth) -> Result<()> {
    let write = |name: &str, text: &str| {
        let path = data.join(name);
        fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    write("testkit.conf", SERVER_CONF)?;
    let method = auth.method();
    write(
        "pg_hba.conf",
        &format!(
            "# Written by cdc-sql-testkit on every start.\n\
             # TYPE  DATABASE     USER  ADDRESS       METHOD\n\
             local   all          all                 trust\n\
             local   replication  all                 trust\n\
             host    all          all   127.0.0.1/32  {method}\n\
             host    replication  all   127.0.0.1/32  {method}\n\
             host    all          all   ::1/128       {method}\n\
             host    replication  all   ::1/128       {method}\n"
        ),
    )
}

/// `pg_isready` over the socket: succeeds once the server accepts connections.
fn is_ready(pg_isready: &Path, socket_dir: &Path, port: u16) -> bool {
    Command::new(pg_isready)
        .arg("-q")
        .arg("-h")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", POSTGRES_SUPERUSER, "-d", "postgres", "-t", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
