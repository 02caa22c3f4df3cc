//! The error type of the test kit.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which database server a value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// MariaDB (`mariadbd`), spoken to with the `mariadb` client.
    MariaDb,
    /// PostgreSQL (`postgres`), spoken to with `psql`.
    Postgres,
}

impl ServerKind {
    /// Short lowercase name, used in file and directory names (`mariadb`, `postgres`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::MariaDb => "mariadb",
            ServerKind::Postgres => "postgres",
        }
    }

    /// The Debian package that provides the server and its command-line tools.
    pub fn debian_package(self) -> &'static str {
        match self {
            ServerKind::MariaDb => "mariadb-server",
            ServerKind::Postgres => "postgresql",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::MariaDb => "MariaDB",
            ServerKind::Postgres => "PostgreSQL",
        })
    }
}

/// Everything that can go wrong while starting, using or stopping a test server.
///
/// Messages are written to be read in a failed test's output: they name the binary, the command,
/// the SQL or the log file involved, and start-up failures carry the tail of the server's log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server or client binary could not be found.
    #[error(
        "{server} binary `{binary}` not found (looked in: {searched}); \
         install it with `apt-get install -y {package}`"
    )]
    MissingBinary {
        /// The server the binary belongs to.
        server: ServerKind,
        /// File name of the missing binary, e.g. `mariadbd`.
        binary: String,
        /// The directories that were searched, comma separated.
        searched: String,
        /// The Debian package to install.
        package: &'static str,
    },

    /// A tool that does not come from a Debian package could not be found (the Kafka-compatible
    /// broker and the independent Kafka client of the kafka tests).
    #[error("{tool} not found (looked in: {searched}); {install}")]
    MissingTool {
        /// What is missing.
        tool: String,
        /// Where it was looked for.
        searched: String,
        /// How to get it.
        install: String,
    },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper command (`mariadb-install-db`, `initdb`, …) exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its output (stderr, then stdout), trimmed.
        output: String,
    },

    /// The server process exited before it accepted connections.
    #[error("{server} exited during start-up ({status}); last lines of {}:\n{tail}", log.display())]
    ServerExited {
        /// The server.
        server: ServerKind,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log file.
        tail: String,
    },

    /// The server did not accept connections before the deadline.
    #[error("{server} did not become ready within {timeout:?}; last lines of {}:\n{tail}", log.display())]
    StartTimeout {
        /// The server.
        server: ServerKind,
        /// How long we waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log file.
        tail: String,
    },

    /// The requested TCP port is taken (for a fixed port, or after several retries).
    #[error("{server} could not listen on 127.0.0.1:{port}: address already in use; last lines of {}:\n{tail}", log.display())]
    PortInUse {
        /// The server.
        server: ServerKind,
        /// The port.
        port: u16,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log file.
        tail: String,
    },

    /// A server already runs in the requested (persistent) directory.
    #[error("{server} is already running in {} (pid {pid})", dir.display())]
    AlreadyRunning {
        /// The server.
        server: ServerKind,
        /// Its directory.
        dir: PathBuf,
        /// Its process id.
        pid: u32,
    },

    /// A SQL statement sent through the command-line client failed.
    #[error("SQL failed on {server} (user {user}, database {database}): {message}\n--- SQL ---\n{sql}")]
    Sql {
        /// The server.
        server: ServerKind,
        /// The user the statement ran as.
        user: String,
        /// The database it ran in (empty: none).
        database: String,
        /// The client's error output.
        message: String,
        /// The SQL text.
        sql: String,
    },

    /// The output of a command-line client could not be understood.
    #[error("unexpected output from {client}: {message}")]
    Output {
        /// The client binary.
        client: String,
        /// What was wrong.
        message: String,
    },

    /// The environment cannot host the server (no `postgres` system user, path too long, …).
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// `Result` with the test kit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
