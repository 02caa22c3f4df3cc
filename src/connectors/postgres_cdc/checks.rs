//! Checks made before anything is read, each failing with what is wrong, where, and the fix:
//! server settings, privileges, captured tables and their columns' types, replica identity,
//! the slot (the publication is [`super::publication`]'s). Also classifies PostgreSQL errors by
//! who must act.

use std::time::Duration;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{discovered, Columns, Config, Shape, StartupMode};
use crate::changelog::ChangelogMode;
use crate::error::{Error, Result};
use crate::sql::types::{flink_type_name, list_of, time_unit_for_precision, UTC};

/// One source column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `numeric(10,2)`, `timestamp with time zone`.
    pub pg_type: String,
    /// Part of the key updates and deletes identify rows by (primary key or identity index).
    pub is_key: bool,
    pub not_null: bool,
    /// Its place in the primary key (1 first), if it is part of it.
    pub key_position: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct CapturedTable {
    pub schema: String,
    pub name: String,
    /// `relreplident`: `d` default, `f` full, `i` index, `n` nothing.
    pub identity: char,
    pub columns: Vec<SourceColumn>,
    /// Estimated rows (`reltuples`), to decide whether to split the snapshot.
    pub estimated_rows: f64,
    /// The columns its rows are read into: the declared table's, or its own.
    pub shape: Arc<Shape>,
}

impl CapturedTable {
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    pub fn shown(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The single integer key column, which allows chunking the snapshot by ranges.
    pub fn integer_key(&self) -> Option<&SourceColumn> {
        let mut keys = self.columns.iter().filter(|c| c.is_key);
        let key = keys.next()?;
        (keys.next().is_none() && matches!(key.pg_type.as_str(), "smallint" | "integer" | "bigint")).then_some(key)
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A PostgreSQL error as one of ours: `doing` says what was attempted.
pub fn pg_error(config: &Config, doing: &str, e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => db_error(config, doing, db.code().code(), db.message()),
        None => Error::external(format!("{doing} on {}: {e}", config.where_())),
    }
}

/// A server's error report (SQLSTATE `code`): the user's to fix when it is about credentials,
/// privileges or names, the outside world's otherwise.
pub fn db_error(config: &Config, doing: &str, code: &str, message: &str) -> Error {
    let text = format!("{doing} on {}: {message} (SQLSTATE {code})", config.where_());
    let code = SqlState::from_code(code);
    let user = code == SqlState::INVALID_PASSWORD
        || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        || code == SqlState::INSUFFICIENT_PRIVILEGE
        || code == SqlState::INVALID_CATALOG_NAME
        || code == SqlState::UNDEFINED_OBJECT
        || code == SqlState::UNDEFINED_TABLE
        || code == SqlState::UNDEFINED_COLUMN
        || code == SqlState::OBJECT_IN_USE
        || code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
        || code.code().starts_with("42");
    if user {
        let hint = if code == SqlState::INVALID_PASSWORD || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            "; check 'username' and 'password' and the server's pg_hba.conf"
        } else if code == SqlState::INVALID_CATALOG_NAME {
            "; check 'database-name'"
        } else if code == SqlState::OBJECT_IN_USE {
            "; another session holds it: if it is the replication slot, each job needs its own 'slot.name'"
        } else {
            ""
        };
        Error::user(format!("{text}{hint}"))
    } else {
        Error::external(text)
    }
}

/// Runs `attempt` (a whole connection: TCP, startup, authentication) within 'connect.timeout',
/// and again up to 'connect.max-retries' times, with growing pauses, when it failed for a reason
/// that may pass; a user error (wrong password, unknown database) is returned at once.
pub async fn with_connect_retries<T, F, Fut>(config: &Config, doing: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut retries = 0;
    loop {
        let error = match tokio::time::timeout(config.connect_timeout, attempt()).await {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(e)) => e,
            Err(_) => Error::external(format!(
                "{doing} to {} timed out after {:?} ('connect.timeout')",
                config.where_(),
                config.connect_timeout
            )),
        };
        if error.kind() == crate::error::ErrorKind::User || retries >= config.connect_max_retries {
            return Err(error);
        }
        retries += 1;
        tracing::warn!(table = %config.table, "{error}; retry {retries} of {} ('connect.max-retries')", config.connect_max_retries);
        tokio::time::sleep(std::time::Duration::from_millis(200 << retries.min(5))).await;
    }
}

/// Connects an ordinary session.
pub async fn connect(config: &Config) -> Result<Client> {
    let (client, connection) = with_connect_retries(config, "connecting", || async {
        config.pg_config().connect(tokio_postgres::NoTls).await.map_err(|e| pg_error(config, "connecting", e))
    })
    .await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres-cdc session ended");
        }
    });
    Ok(client)
}

/// Server settings and privileges the startup mode needs.
pub async fn check_server(config: &Config, client: &Client) -> Result<()> {
    if config.startup == StartupMode::Snapshot {
        return Ok(());
    }
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), r.rolreplication, r.rolsuper \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| pg_error(config, "reading wal_level and the user's privileges", e))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(Error::user(format!(
            "PostgreSQL at {} has wal_level = '{wal_level}'; change data capture needs 'logical': \
             set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server",
            config.where_()
        )));
    }
    let (replication, superuser): (bool, bool) = (row.get(1), row.get(2));
    if !replication && !superuser {
        return Err(Error::user(format!(
            "user '{}' may not stream changes from {}: it needs the REPLICATION attribute \
             (ALTER ROLE \"{}\" WITH REPLICATION) — or use 'scan.startup.mode' = 'snapshot' for a one-off read",
            config.user,
            config.where_(),
            config.user
        )));
    }
    Ok(())
}

/// The captured tables (`schema-name` and `table-name`, or a pipeline's `tables`), with their
/// columns, checked against the columns they are read into.
pub async fn captured_tables(config: &Config, client: &Client) -> Result<Vec<CapturedTable>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.oid, c.relreplident::text, c.reltuples::float8, \
                    has_table_privilege(c.oid, 'SELECT') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| pg_error(config, "listing tables", e))?;
    let mut all = Vec::new();
    let mut tables = Vec::new();
    for row in &rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        all.push(format!("{schema}.{name}"));
        if !config.tables.matches(&[&config.database, &schema, &name]) {
            continue;
        }
        let oid: u32 = row.get(2);
        let identity: String = row.get(3);
        let estimated_rows: f64 = row.get(4);
        let readable: bool = row.get(5);
        if !readable {
            return Err(Error::user(format!(
                "user '{}' may not read table {schema}.{name}: GRANT SELECT ON {}.{} TO \"{}\"",
                config.user,
                quote_ident(&schema),
                quote_ident(&name),
                config.user
            )));
        }
        let identity = identity.chars().next().unwrap_or('d');
        let columns = source_columns(config, client, oid, identity).await?;
        let shape = match &config.columns {
            Columns::Declared(shape) => shape.clone(),
            Columns::PerTable => {
                let spec = discovered::table_spec(&schema, &name, identity, &columns)?;
                Arc::new(Shape::declared(&spec)?)
            }
        };
        tables.push(CapturedTable { schema, name, identity, columns, estimated_rows, shape });
    }
    if tables.is_empty() {
        let shown: Vec<&str> = all.iter().take(20).map(String::as_str).collect();
        return Err(Error::user(format!(
            "no table of database '{}' matches {}; tables user '{}' can see: {}",
            config.database,
            config.tables.written(),
            config.user,
            if shown.is_empty() { "none".to_string() } else { shown.join(", ") }
        )));
    }
    for table in &tables {
        check_table(config, table)?;
    }
    Ok(tables)
}

async fn source_columns(config: &Config, client: &Client, oid: u32, identity: char) -> Result<Vec<SourceColumn>> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    COALESCE(a.attnum = ANY(i.indkey::int2[]), false), a.attnotnull, \
                    array_position(p.indkey::int2[], a.attnum) \
             FROM pg_attribute a \
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid \
               AND ((($2::text = 'd' OR $2::text = 'f') AND i.indisprimary) OR ($2::text = 'i' AND i.indisreplident)) \
             LEFT JOIN pg_index p ON p.indrelid = a.attrelid AND p.indisprimary \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid, &identity.to_string()],
        )
        .await
        .map_err(|e| pg_error(config, "reading table columns", e))?;
    Ok(rows
        .iter()
        .map(|r| SourceColumn {
            name: r.get(0),
            pg_type: r.get(1),
            is_key: r.get(2),
            not_null: r.get(3),
            key_position: r.get(4),
        })
        .collect())
}

/// Declared columns against one captured table.
fn check_table(config: &Config, table: &CapturedTable) -> Result<()> {
    let t = table.shown();
    let keys: Vec<&str> = table.columns.iter().filter(|c| c.is_key).map(|c| c.name.as_str()).collect();
    let unidentified = table.identity == 'n' || (table.identity == 'd' && keys.is_empty());
    if config.startup != StartupMode::Snapshot && unidentified {
        return Err(Error::user(format!(
            "table {t} has no primary key and REPLICA IDENTITY {}: PostgreSQL cannot log which row an update or delete touched. \
             Add a primary key, or run ALTER TABLE {} REPLICA IDENTITY FULL",
            if table.identity == 'n' { "NOTHING" } else { "DEFAULT" },
            table.qualified()
        )));
    }
    let shape = &table.shape;
    for (name, declared, not_null) in &shape.physical {
        let Some(column) = table.columns.iter().find(|c| &c.name == name) else {
            let have: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::user(format!(
                "column `{name}` of table `{}` does not exist in {t} (its columns: {}); names must match exactly",
                config.table,
                have.join(", ")
            )));
        };
        if is_postgis(&column.pg_type) {
            return Err(Error::user(format!(
                "column `{name}` of table `{}` reads {t}.{name}, a PostGIS {} column, which postgres-cdc does not read: \
                 its values would arrive as PostGIS's hex EWKB, not the JSON Flink CDC writes, and PostGIS is not \
                 available to test against. Leave the column out of the table declaration",
                config.table, column.pg_type
            )));
        }
        if let Err(why) = type_fits(&column.pg_type, declared) {
            return Err(Error::user(format!(
                "column `{name}` of table `{}` is declared {} but {t}.{name} is {}: {why}; declare it {}",
                config.table,
                flink_type_name(declared),
                column.pg_type,
                suggested_type(&column.pg_type)
            )));
        }
        let key_only_images = table.identity != 'f' && config.startup != StartupMode::Snapshot;
        if *not_null && key_only_images && !column.is_key {
            return Err(Error::user(format!(
                "column `{name}` of table `{}` is NOT NULL, but with REPLICA IDENTITY {} deletes{} of {t} carry only the key, so it would be NULL there. \
                 Declare it nullable, or run ALTER TABLE {} REPLICA IDENTITY FULL",
                config.table,
                if table.identity == 'i' { "USING INDEX" } else { "DEFAULT" },
                if config.changelog_mode == ChangelogMode::All { " and update-befores" } else { "" },
                table.qualified()
            )));
        }
    }
    if table.identity != 'f' && config.startup != StartupMode::Snapshot && !shape.primary_key.is_empty() {
        let mut declared: Vec<&str> = shape.primary_key.iter().map(String::as_str).collect();
        let mut source = keys.clone();
        declared.sort_unstable();
        source.sort_unstable();
        if declared != source {
            return Err(Error::user(format!(
                "table `{}` declares PRIMARY KEY ({}) but {t} identifies rows by ({}); declare the same key, \
                 or run ALTER TABLE {} REPLICA IDENTITY FULL",
                config.table,
                shape.primary_key.join(", "),
                keys.join(", "),
                table.qualified()
            )));
        }
        for key in &keys {
            if !shape.physical.iter().any(|(n, _, _)| n == key) {
                return Err(Error::user(format!(
                    "key column `{key}` of {t} is not declared in table `{}`; updates and deletes are identified by it",
                    config.table
                )));
            }
        }
    }
    Ok(())
}

/// The type name without modifiers: `timestamp(3) with time zone` → `timestamp`.
fn base_type(pg_type: &str) -> &str {
    pg_type.split(['(', ' ']).next().unwrap_or(pg_type)
}

/// PostGIS's `geometry` and `geography` (with a type modifier or as arrays too).
pub fn is_postgis(pg_type: &str) -> bool {
    matches!(base_type(pg_type.trim_end_matches("[]")), "geometry" | "geography")
}

/// `(precision, scale)` of `numeric(p,s)`; `None` for unconstrained `numeric`.
fn numeric_bounds(pg_type: &str) -> Option<(i16, i16)> {
    let inner = pg_type.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

fn integer_digits(pg_type: &str) -> Option<i16> {
    match pg_type {
        "smallint" => Some(5),
        "integer" => Some(10),
        "bigint" => Some(19),
        _ => None,
    }
}

/// Whether every value of PostgreSQL type `pg_type` fits the declared type (values are checked
/// again one by one where the catalog cannot say, e.g. unconstrained numeric or fractional
/// seconds beyond the declared precision).
fn type_fits(pg_type: &str, declared: &DataType) -> std::result::Result<(), String> {
    let base = base_type(pg_type);
    let ok = match declared {
        DataType::Utf8 => true,
        DataType::Boolean => pg_type == "boolean",
        DataType::Int16 => pg_type == "smallint",
        DataType::Int32 => matches!(pg_type, "smallint" | "integer"),
        DataType::Int64 => matches!(pg_type, "smallint" | "integer" | "bigint"),
        DataType::Float32 => pg_type == "real",
        DataType::Float64 => matches!(pg_type, "real" | "double precision"),
        DataType::Binary => pg_type == "bytea",
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            let (p, s) = (*p as i16, *s as i16);
            // Floating-point values are rounded half-up to the scale as Flink does; one that
            // needs more digits than the precision stops the job (values/float_decimal).
            if matches!(pg_type, "numeric" | "real" | "double precision") {
                true
            } else if let Some((sp, ss)) = numeric_bounds(pg_type) {
                s >= ss && p - s >= sp - ss
            } else if let Some(d) = integer_digits(pg_type) {
                p - s >= d
            } else {
                false
            }
        }
        DataType::Date32 => pg_type == "date",
        DataType::Time32(_) | DataType::Time64(_) => base == "time" && pg_type.ends_with("without time zone"),
        DataType::Timestamp(_, None) => base == "timestamp" && pg_type.ends_with("without time zone"),
        DataType::Timestamp(_, Some(_)) => {
            base == "timestamp" && pg_type.ends_with("with time zone") && !pg_type.ends_with("without time zone")
        }
        DataType::List(item) => match pg_type.strip_suffix("[]") {
            Some(element) => return type_fits(element, item.data_type()),
            None => false,
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else if matches!(declared, DataType::Timestamp(_, None)) && pg_type.ends_with("with time zone") {
        Err("a timestamptz is a point in time, TIMESTAMP a wall-clock time".into())
    } else {
        Err("not every value would survive unchanged".into())
    }
}

/// The faithful type of a PostgreSQL type (`format_type` spelling): the one that holds every
/// value exactly, as the type table of docs/connectors/postgres-cdc.md lists it. A pipeline
/// source reads each column into it; the SQL connector suggests it.
pub fn faithful_type(pg_type: &str) -> DataType {
    if let Some(element) = pg_type.strip_suffix("[]") {
        return list_of(faithful_type(element), true);
    }
    let precision = |default: u64| -> u64 {
        pg_type
            .split_once('(')
            .and_then(|(_, rest)| rest.split(')').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(default)
    };
    match base_type(pg_type) {
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "bytea" => DataType::Binary,
        "date" => DataType::Date32,
        "numeric" => match numeric_bounds(pg_type) {
            Some((p, s)) if (0..=38).contains(&s) && p <= 38 => DataType::Decimal128(p as u8, s as i8),
            Some((p, s)) if (0..=76).contains(&s) && p <= 76 => DataType::Decimal256(p as u8, s as i8),
            // Unconstrained (NaN and any number of digits) or beyond Arrow's decimals: its text.
            _ => DataType::Utf8,
        },
        "time" if pg_type.ends_with("without time zone") => match time_unit_for_precision(precision(6)) {
            unit @ (TimeUnit::Second | TimeUnit::Millisecond) => DataType::Time32(unit),
            unit => DataType::Time64(unit),
        },
        "timestamp" if pg_type.ends_with("without time zone") => {
            DataType::Timestamp(time_unit_for_precision(precision(6)), None)
        }
        "timestamp" => DataType::Timestamp(time_unit_for_precision(precision(6)), Some(UTC.into())),
        _ => DataType::Utf8,
    }
}

/// The faithful Flink type for a PostgreSQL type, for error messages.
pub fn suggested_type(pg_type: &str) -> String {
    if base_type(pg_type) == "numeric" && numeric_bounds(pg_type).is_none() {
        return "STRING (unconstrained numeric: or a DECIMAL(p, s) wide enough for every value)".into();
    }
    flink_type_name(&faithful_type(pg_type))
}

/// The slot as the startup mode needs it. `Ok(true)` if it exists (and may be used).
///
/// A slot another session holds is waited for (up to `config.slot_wait`): after a crash the
/// restarted job often finds its predecessor's walsender still ending, or a slot that
/// predecessor was killed while creating, which vanishes once that creation returns.
pub async fn check_slot(config: &Config, client: &Client, resuming: bool) -> Result<bool> {
    let announce = |pid: i32| {
        tracing::warn!(
            slot = %config.slot,
            pid,
            "replication slot '{}' is held by PostgreSQL backend pid {pid}; waiting up to {} s for it to let go (an \
             earlier run's session still ending, or another job reading the same slot)",
            config.slot,
            config.slot_wait.as_secs()
        )
    };
    let row = match released_slot(config, client, config.slot_wait, announce).await? {
        Released::Free(row) => Some(row),
        Released::Missing => None,
        Released::Held { pid, waited } => {
            return Err(Error::user(format!(
                "replication slot '{}' is in use by another process (PostgreSQL backend pid {pid}), still after {:.1} s of waiting \
                 for it to let go ('debezium.slot.max.retries' × 'debezium.slot.retry.delay.ms'); each job needs its own \
                 'slot.name', or stop the other reader first",
                config.slot,
                waited.as_secs_f64()
            )));
        }
    };
    let Some(row) = row else {
        if resuming {
            let dropped_by = if config.drop_slot_on_stop {
                "The job dropped it when it last stopped, as 'debezium.slot.drop.on.stop' = 'true' asks"
            } else {
                "Someone dropped it ('debezium.slot.drop.on.stop' is not set, so no job of this table did)"
            };
            return Err(Error::user(format!(
                "the job resumes from a stored checkpoint, but replication slot '{}' no longer exists on {}, so the changes made \
                 since that checkpoint cannot be read any more (resuming without it would silently miss them). {dropped_by}. \
                 To start over: empty the sink table(s), then run the job with --fresh, which takes a new snapshot",
                config.slot,
                config.where_()
            )));
        }
        if config.startup == StartupMode::CommittedOffset {
            return Err(Error::user(format!(
                "replication slot '{}' does not exist on {}, so there is no committed offset to resume from: \
                 start with 'scan.startup.mode' = 'initial' (snapshot, then stream) or 'latest-offset'",
                config.slot,
                config.where_()
            )));
        }
        return Ok(false);
    };
    let plugin: Option<String> = row.get(0);
    let database: Option<String> = row.get(1);
    let slot_type: String = row.get(3);
    if slot_type != "logical"
        || plugin.as_deref() != Some("pgoutput")
        || database.as_deref() != Some(config.database.as_str())
    {
        return Err(Error::user(format!(
            "replication slot '{}' exists but is a {slot_type} slot of plugin {} in database {}; postgres-cdc needs a logical pgoutput slot in '{}': \
             choose another 'slot.name' or drop it with SELECT pg_drop_replication_slot('{}')",
            config.slot,
            plugin.as_deref().unwrap_or("-"),
            database.as_deref().unwrap_or("-"),
            config.database,
            config.slot
        )));
    }
    Ok(true)
}

/// How often a wait for a held slot looks again.
const SLOT_POLL: Duration = Duration::from_millis(100);

/// The slot once no session holds it, as [`released_slot`] finds it.
enum Released {
    /// Its row: plugin, database, active_pid (NULL), slot_type.
    Free(tokio_postgres::Row),
    Missing,
    /// Still held after the wait.
    Held {
        pid: i32,
        waited: Duration,
    },
}

/// Waits up to `wait` for the session holding the slot, if any, to let go; `waiting` hears of
/// the holder once, when there is one.
async fn released_slot(
    config: &Config,
    client: &Client,
    wait: Duration,
    waiting: impl FnOnce(i32),
) -> Result<Released> {
    let started = Instant::now();
    let mut waiting = Some(waiting);
    loop {
        let row = client
            .query_opt(
                "SELECT plugin::text, database::text, active_pid, slot_type::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&config.slot],
            )
            .await
            .map_err(|e| pg_error(config, "reading replication slots", e))?;
        let Some(row) = row else { return Ok(Released::Missing) };
        let Some(pid) = row.get::<_, Option<i32>>(2) else { return Ok(Released::Free(row)) };
        let waited = started.elapsed();
        if waited >= wait {
            return Ok(Released::Held { pid, waited });
        }
        if let Some(waiting) = waiting.take() {
            waiting(pid);
        }
        tokio::time::sleep(SLOT_POLL).await;
    }
}

/// How long dropping a slot waits for the server to end the session that held it (a walsender
/// exits shortly after its client left).
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Drops the slot if it exists; `Ok(false)` if it did not. Waits (up to [`SLOT_RELEASE_WAIT`])
/// for a session still holding it to end, as the job's own replication session just did.
pub async fn drop_slot(config: &Config) -> Result<bool> {
    let client = connect(config).await?;
    let deadline = Instant::now() + SLOT_RELEASE_WAIT;
    let still_in_use = |holder: Option<i32>| {
        Error::external(format!(
            "replication slot '{}' on {} is still in use{} {} s after the job let go of it, so it was not dropped and keeps \
             holding WAL: stop whatever reads it, then run SELECT pg_drop_replication_slot('{}')",
            config.slot,
            config.where_(),
            holder.map(|pid| format!(" by PostgreSQL backend pid {pid}")).unwrap_or_default(),
            SLOT_RELEASE_WAIT.as_secs(),
            config.slot
        ))
    };
    loop {
        match released_slot(config, &client, deadline.saturating_duration_since(Instant::now()), |_| {}).await? {
            Released::Missing => return Ok(false),
            Released::Held { pid, .. } => return Err(still_in_use(Some(pid))),
            Released::Free(_) => match client.execute("SELECT pg_drop_replication_slot($1)", &[&config.slot]).await {
                Ok(_) => {
                    tracing::info!(slot = %config.slot, server = %config.where_(), "postgres-cdc dropped the replication slot");
                    return Ok(true);
                }
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => return Ok(false),
                // Taken again between the two statements: wait as for any holder.
                Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                    if Instant::now() >= deadline {
                        return Err(still_in_use(None));
                    }
                    tokio::time::sleep(SLOT_POLL).await;
                }
                Err(e) => return Err(pg_error(config, &format!("dropping replication slot '{}'", config.slot), e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn lossless_types_fit_and_lossy_ones_do_not() {
        assert!(type_fits("integer", &DataType::Int64).is_ok());
        assert!(type_fits("bigint", &DataType::Int32).is_err());
        assert!(type_fits("numeric(10,2)", &DataType::Decimal128(12, 2)).is_ok());
        assert!(type_fits("numeric(10,2)", &DataType::Decimal128(10, 1)).is_err());
        assert!(type_fits("numeric", &DataType::Decimal256(60, 10)).is_ok());
        assert!(type_fits("bigint", &DataType::Decimal128(19, 0)).is_ok());
        assert!(type_fits("double precision", &DataType::Float32).is_err());
        assert!(type_fits("jsonb", &DataType::Utf8).is_ok());
        assert!(type_fits("timestamp with time zone", &DataType::Timestamp(TimeUnit::Microsecond, None))
            .unwrap_err()
            .contains("point in time"));
        assert!(type_fits("timestamp(3) without time zone", &DataType::Timestamp(TimeUnit::Millisecond, None)).is_ok());
        assert!(type_fits("timestamp without time zone", &DataType::Timestamp(TimeUnit::Microsecond, None)).is_ok());
        assert!(type_fits("time without time zone", &DataType::Time64(TimeUnit::Microsecond)).is_ok());
        assert!(type_fits("time with time zone", &DataType::Time64(TimeUnit::Microsecond)).is_err());
        assert!(type_fits("integer[]", &crate::sql::types::list_of(DataType::Int64, true)).is_ok());
        assert!(type_fits("text[]", &crate::sql::types::list_of(DataType::Int64, true)).is_err());
        // Flink's conversion, rounded half-up; overflow is checked per value.
        assert!(type_fits("double precision", &DataType::Decimal128(10, 3)).is_ok());
        assert!(type_fits("real", &DataType::Decimal256(50, 10)).is_ok());
    }

    #[test]
    fn postgis_columns_are_recognised_whatever_their_modifier() {
        for pg_type in ["geometry", "geometry(Point,4326)", "geography(MultiPolygon,4326)", "geometry[]"] {
            assert!(is_postgis(pg_type), "{pg_type}");
        }
        assert!(!is_postgis("point") && !is_postgis("bytea"));
    }

    #[test]
    fn suggestions_are_faithful() {
        assert_eq!(suggested_type("numeric(12,3)"), "DECIMAL(12, 3)");
        assert_eq!(suggested_type("timestamp(3) with time zone"), "TIMESTAMP_LTZ(3)");
        assert_eq!(suggested_type("timestamp without time zone"), "TIMESTAMP(6)");
        assert_eq!(suggested_type("integer[]"), "ARRAY<INT>");
        assert_eq!(suggested_type("uuid"), "STRING");
        assert_eq!(suggested_type("double precision"), "DOUBLE");
        assert_eq!(suggested_type("time(3) without time zone"), "TIME(3)");
    }
}
