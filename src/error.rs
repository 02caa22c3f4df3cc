//! Errors, split by who must act (DESIGN.md §5): the user (SQL, options, server settings), the
//! outside world (a server is down or slow: retrying may help) or cdc-sql itself (a bug).

use std::fmt;

use datafusion::common::{Column, SchemaError};
use datafusion::error::DataFusionError;

/// Where in a job file something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user must fix something: the SQL, an option, a privilege, a server setting.
    #[error("{0}")]
    User(String),
    /// The outside world failed (connection refused, timeout); retrying later may succeed.
    #[error("{0}")]
    External(String),
    /// An internal invariant broke.
    #[error("internal error (a bug in cdc-sql, please report it): {0}")]
    Internal(String),
    /// Any of the above, pinned to the statement or token of the job file that caused it.
    #[error("{location}: {source}")]
    At {
        location: Location,
        #[source]
        source: Box<Error>,
    },
}

/// Who has to act on an error; decides the exit code and whether a restart may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    User,
    External,
    Internal,
}

impl Error {
    pub fn user(message: impl Into<String>) -> Self {
        Error::User(message.into())
    }

    pub fn external(message: impl Into<String>) -> Self {
        Error::External(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::User(_) => ErrorKind::User,
            Error::External(_) => ErrorKind::External,
            Error::Internal(_) => ErrorKind::Internal,
            Error::At { source, .. } => source.kind(),
        }
    }

    /// Pins the error to a place in the job file, unless it already has a more precise one.
    pub fn at(self, location: Location) -> Self {
        match self {
            Error::At { .. } => self,
            other => Error::At { location, source: Box::new(other) },
        }
    }

    /// Adds what was being done to the message, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        match self {
            Error::User(m) => Error::User(format!("{what}: {m}")),
            Error::External(m) => Error::External(format!("{what}: {m}")),
            Error::Internal(m) => Error::Internal(format!("{what}: {m}")),
            Error::At { location, source } => Error::At { location, source: Box::new(source.context(what)) },
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        let root = e.find_root();
        match root {
            DataFusionError::Internal(m) => Error::Internal(m.clone()),
            DataFusionError::IoError(io) => Error::External(io.to_string()),
            DataFusionError::ResourcesExhausted(m) => Error::External(m.clone()),
            DataFusionError::Plan(m)
            | DataFusionError::Execution(m)
            | DataFusionError::NotImplemented(m)
            | DataFusionError::Configuration(m) => Error::User(m.clone()),
            DataFusionError::ArrowError(a, _) => Error::User(a.to_string()),
            DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
                SchemaError::FieldNotFound { field, valid_fields } => {
                    Error::User(column_not_found(field, valid_fields))
                }
                _ => Error::User(root.strip_backtrace()),
            },
            other => Error::User(other.strip_backtrace()),
        }
    }
}

/// The candidate `name` is most likely a misspelling of: within a third of the longer name's
/// length in edits (at least 2).
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(c, name), c))
        .min()
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(2))
        .map(|(_, c)| c)
}

/// DataFusion's message suggests double quotes and a setting; a Flink user writes backticks, and
/// identifiers are matched exactly, as in Flink.
fn column_not_found(field: &Column, valid: &[Column]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for c in valid {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    let hint = match names.iter().find(|n| n.eq_ignore_ascii_case(&field.name)) {
        Some(same) => format!(
            " Identifiers are case-sensitive, as in Flink: write `{same}` (a column declared `{}` would be a different one).",
            field.name
        ),
        None => match nearest(&field.name, names.iter().copied()) {
            Some(n) => format!(" Did you mean `{n}`?"),
            None => String::new(),
        },
    };
    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("column `{}` not found.{hint} Columns here: {}", field.name, listed.join(", "))
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::User(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
