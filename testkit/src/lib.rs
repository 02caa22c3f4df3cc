//! Real MariaDB and PostgreSQL servers for cdc-sql's tests, started on demand from the locally
//! installed server binaries (no Docker).
//!
//! Each server runs from its own temporary directory
//! (`<temp dir>/cdc-sql-testkit/<pid>-<n>-<kind>/`) on a free port of `127.0.0.1`, set up for
//! change data capture:
//!
//! * **MariaDB**: binlog on, `ROW` format, `FULL` row image and row metadata, GTIDs (strict mode),
//!   a `cdc_user` with the documented replication grants; see [`mariadb`](crate::mariadb()) and
//!   the [`MariaDb`] page for details.
//! * **PostgreSQL**: `wal_level=logical`, replication slots and WAL senders, a `cdc_user` with
//!   `LOGIN REPLICATION`; see [`Postgres`].
//! * **Kafka**: a Kafka-compatible broker (Tansu) with in-memory storage, and an independent
//!   client to produce and read records; see [`kafka()`] and [`Kafka`].
//!
//! # Using it from a test
//!
//! ```no_run
//! #[test]
//! fn reads_orders() {
//!     // One server of each kind per test process, started by the first test that asks for it.
//!     let db = cdc_sql_testkit::mariadb().create_database("orders"); // e.g. `orders_4711_3`
//!     db.exec("CREATE TABLE t (id INT PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a')");
//!     assert_eq!(db.query("SELECT id, name FROM t"), vec![vec!["1", "a"]]);
//!
//!     // What a connector needs: the CDC user's login over TCP.
//!     let conn = db.connection();
//!     let _ = (&conn.host, conn.port, &conn.user, &conn.password, &conn.database);
//!     let _ = db.url(); // mysql://cdc_user:cdc_password@127.0.0.1:<port>/orders_4711_3
//!     let _ = db.jdbc_url(); // jdbc:mysql://127.0.0.1:<port>/orders_4711_3
//!
//!     // The same on PostgreSQL.
//!     let pg = cdc_sql_testkit::postgres().create_database("orders");
//!     pg.exec("CREATE TABLE t (id INT PRIMARY KEY)");
//!     pg.cdc().query("SELECT pg_create_logical_replication_slot('s1', 'pgoutput')");
//! }
//! ```
//!
//! * [`mariadb()`] / [`postgres()`] return `&'static` handles to servers shared by all tests of
//!   the process (start-up takes a second or two). Tests stay independent by each using its own
//!   database from `create_database(prefix)`; they may run in parallel threads.
//! * [`MariaDb::start`] / [`Postgres::start`] (or `start_with` a config) give a private server,
//!   stopped when the handle is dropped; use them for tests that restart, reconfigure or break a
//!   server, or need password authentication ([`PgAuth::Scram`]).
//! * SQL goes through the servers' own command-line clients (`mariadb`, `psql`): see [`Client`].
//!   [`Database::exec`]/[`Database::query`] run as the administrator;
//!   [`Database::cdc`] runs as the CDC user over TCP, exactly as the engine connects.
//!
//! # Stopping and cleaning up
//!
//! * The shared servers are stopped by an `atexit` hook when the test process exits; private
//!   ones when their handle is dropped. Either way the directory is deleted.
//! * Temporary servers are spawned with `PR_SET_PDEATHSIG`, so the kernel SIGKILLs them when
//!   the test process dies in any other way (SIGKILL, Ctrl-C, abort).
//! * What that leaves behind (directories, or servers started with
//!   `die_with_process: false`) is removed by [`cleanup_stale`], which runs once per process
//!   before the first server starts: every directory whose recorded owner process is gone has
//!   its server killed (after checking the process's command line names that directory) and is
//!   deleted.
//!
//! # Requirements
//!
//! Linux, and the Debian packages `mariadb-server` and `postgresql` (binaries are looked up in
//! `$PATH`, `/usr/sbin`, `pg_config --bindir`, `/usr/lib/postgresql/<version>/bin`, or the
//! directories named by [`MARIADB_BIN_DIR_ENV`] / [`POSTGRES_BIN_DIR_ENV`]). A missing binary is
//! an [`Error::MissingBinary`] whose message names it and the package to install. Under root,
//! PostgreSQL runs as the `postgres` system user.
//!
//! Waiting is always polling with a deadline; a server that does not come up produces an error
//! carrying the tail of its log.
//!
//! # Developer services
//!
//! The `dev-services` binary of this crate (`scripts/dev-services start|stop|status|env`) uses
//! the same code to run one persistent server of each kind from `.dev-services/` for manual
//! work.

mod bins;
mod client;
mod error;
mod kafka;
mod mariadb;
mod postgres;
mod process;

pub use client::{
    Client, ConnectionInfo, Database, CDC_PASSWORD, CDC_USER, HOST, MARIADB_ROOT_PASSWORD, MARIADB_ROOT_USER,
    POSTGRES_PASSWORD, POSTGRES_SUPERUSER,
};
pub use error::{Error, Result, ServerKind};
pub use kafka::{kafka, Consumed, Kafka, Record, KAFKA_PYTHONPATH_ENV, TANSU_ENV};
pub use mariadb::{MariaDb, MariaDbConfig, MARIADB_BIN_DIR_ENV};
pub use postgres::{PgAuth, Postgres, PostgresConfig, POSTGRES_BIN_DIR_ENV};
pub use process::{cleanup_stale, running_server, stop_server, temp_root, RunningServer, StaleCleanup};

use std::sync::OnceLock;

/// The MariaDB server shared by all tests of this process, started on first use and stopped at
/// process exit.
///
/// # Panics
///
/// If the server cannot be started (the message says why, e.g. which package to install); every
/// later call panics with the same message without trying again.
pub fn mariadb() -> &'static MariaDb {
    static SHARED: OnceLock<std::result::Result<MariaDb, String>> = OnceLock::new();
    match SHARED.get_or_init(|| MariaDb::start().map_err(|e| e.to_string())) {
        Ok(server) => server,
        Err(message) => panic!("cannot start the shared MariaDB test server: {message}"),
    }
}

/// The PostgreSQL server ([`PgAuth::Trust`]) shared by all tests of this process, started on
/// first use and stopped at process exit.
///
/// # Panics
///
/// If the server cannot be started (the message says why, e.g. which package to install); every
/// later call panics with the same message without trying again.
pub fn postgres() -> &'static Postgres {
    static SHARED: OnceLock<std::result::Result<Postgres, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Postgres::start().map_err(|e| e.to_string())) {
        Ok(server) => server,
        Err(message) => panic!("cannot start the shared PostgreSQL test server: {message}"),
    }
}
