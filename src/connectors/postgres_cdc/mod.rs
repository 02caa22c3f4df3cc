//! `postgres-cdc`: reads PostgreSQL tables as a changelog — a consistent snapshot, then every
//! committed change from logical replication — with Flink CDC's option names.
//!
//! Protocol: checks and planning queries over `tokio-postgres`; the snapshot's `COPY … TO STDOUT`
//! and the replication session (`replication=database`, `CREATE_REPLICATION_SLOT … LOGICAL
//! pgoutput EXPORT_SNAPSHOT`, `START_REPLICATION`, CopyBoth, standby status updates and keepalive
//! replies) over our own [`session`] and [`replication`] on `postgres-protocol`; pgoutput v1
//! messages decoded by [`pgoutput`] and values decoded straight into Arrow builders by
//! [`values`].
//!
//! Columns: a SQL table reads every captured table into its declared columns ([`Shape`]); a
//! pipeline definition's `type: postgres` source ([`pipeline`]) reads each into its own, as the
//! catalog describes it ([`discovered`]), its changes tagged `schema.table`.
//!
//! Publication: Debezium's `publication.name` and `publication.autocreate.mode`, settled before
//! the slot is created (see [`publication`]), so that one job per table shares one publication.
//!
//! Consistency: the slot is created first and exports its snapshot; every table is read in
//! chunks, in parallel, by sessions that all import that snapshot, and streaming then starts at
//! the slot's consistent point — no gap and no overlap, no reconciliation needed. The slot's
//! confirmed LSN only moves in [`Source::acknowledge`], i.e. after a checkpoint covering it.
//!
//! Slot lifetime: permanent by default; with `'debezium.slot.drop.on.stop' = 'true'` it is
//! dropped in [`Source::release`], which the runtime calls only once the whole job stopped
//! gracefully, so a crash or failure keeps it for the restart (and a restart from a checkpoint
//! whose slot is gone is refused, never continued with a gap).
//!
//! Limits: pgoutput protocol v1 (no streaming of in-progress transactions, so a transaction is
//! decoded once it commits); a snapshot interrupted by a restart is read again from the start
//! (it converges on keyed sinks, see the docs); a change of a captured table's columns while
//! streaming (a new relation message) is an [`crate::changelog::Event::SchemaChanged`], and the
//! job fails when a declared column disappears; TLS is not offered yet.

mod changes;
mod checks;
mod discovered;
mod pgoutput;
mod pipeline;
mod position;
mod publication;
mod replication;
mod session;
mod snapshot;
mod stream;
mod values;

pub(crate) use pipeline::PostgresTables;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use regex::Regex;

use super::mysql_cdc;
use super::selection::{TablePattern, TableSelection};
use super::{Connector, ConnectorOptions, ConnectorTable, ReplicationSlot, Source, SourceContext, SourceIdentity};
use crate::changelog::{ChangelogMode, Retractions};
use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;
use crate::sql::TableSpec;
use changes::{ColumnSource, MetadataKey};

/// Session settings that pin the text output format of every value, for the snapshot and the
/// replication session alike, so one decoder reads both.
pub(crate) const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "iso_8601"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// Debezium's default publication name, which Flink CDC jobs use unless they name another.
const DEFAULT_PUBLICATION: &str = "dbz_publication";

pub struct PostgresCdc;

impl Connector for PostgresCdc {
    fn name(&self) -> &'static str {
        "postgres-cdc"
    }

    fn metadata_keys(&self) -> &'static [&'static str] {
        MetadataKey::KEYS
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        Ok(Box::new(PostgresCdcTable {
            config: Arc::new(Config::parse(spec, options, None)?),
            left_behind: Arc::new(AtomicBool::new(false)),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartupMode {
    Initial,
    LatestOffset,
    CommittedOffset,
    Snapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TruncateMode {
    Fail,
    Ignore,
    /// Deletes of every row the job delivered from the table and the table still held: the
    /// runtime keeps those rows (see `runtime::captured`).
    Delete,
}

/// The table's options, validated. Deliberately not `Debug`: it holds the password.
pub(crate) struct Config {
    pub table: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    /// The captured tables, by `[database, schema, table]`: 'schema-name' and 'table-name' in
    /// 'database-name', or a pipeline source's `tables`.
    pub tables: TableSelection,
    pub slot: String,
    pub changelog_mode: ChangelogMode,
    pub startup: StartupMode,
    pub chunk_size: u64,
    pub heartbeat: Duration,
    /// `debezium.publication.name`, by default [`DEFAULT_PUBLICATION`].
    pub publication: String,
    /// `debezium.publication.autocreate.mode`: how the publication is made (see [`publication`]).
    pub publication_mode: publication::AutoCreate,
    pub truncate: TruncateMode,
    /// `debezium.slot.drop.on.stop`: drop the slot once the job stopped gracefully.
    pub drop_slot_on_stop: bool,
    /// `connect.timeout`: the most one connection (TCP, startup and authentication) may take.
    pub connect_timeout: Duration,
    /// `connect.max-retries`: further attempts of a connection that failed for a reason that
    /// may pass (never for a user error such as a wrong password).
    pub connect_max_retries: u32,
    /// `scan.lsn-commit.checkpoints-num-delay`: the slot confirms the position of the checkpoint
    /// this many checkpoints before the newest, so older checkpoints stay resumable.
    pub lsn_commit_delay: usize,
    /// `scan.read-changelog-as-append-only.enabled`: every change arrives as `+I`.
    pub append_only: bool,
    /// How long a start waits for another session to let go of the slot: Debezium's
    /// `slot.max.retries` × `slot.retry.delay.ms`.
    pub slot_wait: Duration,
    /// Sessions reading the snapshot side by side.
    pub snapshot_readers: usize,
    pub columns: Columns,
}

/// The columns captured tables are read into, and the key their updates and deletes apply to.
#[derive(Debug)]
pub(crate) struct Shape {
    pub schema: SchemaRef,
    pub sources: Arc<Vec<ColumnSource>>,
    /// Source columns: (name, type read into, NOT NULL).
    pub physical: Vec<(String, DataType, bool)>,
    pub primary_key: Vec<String>,
}

/// Which columns the captured tables are read into.
pub(crate) enum Columns {
    /// A Flink table's declared columns: every captured table is read into them.
    Declared(Arc<Shape>),
    /// Each table into its own columns as the catalog describes them (a pipeline definition's
    /// source); its changes carry its id, `schema.table`.
    PerTable,
}

/// A pipeline source's own reading of the options (see [`pipeline`]).
pub(crate) struct PipelineTables {
    /// `tables` / `tables.exclude`, three levels: database, schema, table.
    pub tables: TableSelection,
    /// The one database every pattern names.
    pub database: String,
    /// The pipeline's `parallelism`: snapshot readers.
    pub readers: Option<usize>,
}

/// A whole-string match of a Flink CDC name pattern.
fn anchored(o: &ConnectorOptions, key: &str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| o.invalid(key, pattern, &format!("a regular expression ({e})")))
}

impl Config {
    /// Reads the options of a table declared `spec`, or of a pipeline source when `pipeline` is
    /// given (whose tables are read into their own columns).
    fn parse(spec: &TableSpec, o: &mut ConnectorOptions, pipeline: Option<PipelineTables>) -> Result<Config> {
        let host = o.required("hostname")?;
        let port = o.parse::<u16>("port", "a TCP port number")?.unwrap_or(5432);
        let user = o.required("username")?;
        let password = o.required("password")?;
        let per_table = pipeline.is_some();
        let (database, tables, readers) = match pipeline {
            Some(p) => (p.database, p.tables, p.readers),
            None => {
                let database = o.required("database-name")?;
                let schema_text = o.required("schema-name")?;
                let table_text = o.required("table-name")?;
                let levels = vec![
                    anchored(o, "database-name", &regex::escape(&database))?,
                    anchored(o, "schema-name", &schema_text)?,
                    anchored(o, "table-name", &table_text)?,
                ];
                let whole = anchored(
                    o,
                    "table-name",
                    &format!("{}\\.(?:{schema_text})\\.(?:{table_text})", regex::escape(&database)),
                )?;
                // The identity's text, as stored in checkpoints before pipelines existed.
                let text = format!("{schema_text}.{table_text}");
                let written = format!(
                    "'schema-name' = '{schema_text}' and 'table-name' = '{table_text}' (whole-name regular expressions)"
                );
                (
                    database,
                    TableSelection::single(TablePattern::of_levels(levels, whole, text.clone()), text, written),
                    None,
                )
            }
        };
        let slot = o.required("slot.name")?;
        let changelog = o.choice("changelog-mode", &["all", "upsert"])?.unwrap_or("all");
        let startup = match o
            .choice("scan.startup.mode", &["initial", "latest-offset", "committed-offset", "snapshot"])?
            .unwrap_or("initial")
        {
            "initial" => StartupMode::Initial,
            "latest-offset" => StartupMode::LatestOffset,
            "committed-offset" => StartupMode::CommittedOffset,
            _ => StartupMode::Snapshot,
        };
        let chunk_size =
            o.parse::<u64>("scan.incremental.snapshot.chunk.size", "a positive whole number")?.unwrap_or(8096);
        // Flink CDC's pipeline source names it `heartbeat.interval`, its SQL connector
        // `heartbeat.interval.ms`; both take a duration.
        let heartbeat_key = if per_table { "heartbeat.interval" } else { "heartbeat.interval.ms" };
        let heartbeat = o.duration(heartbeat_key)?.unwrap_or(Duration::from_secs(30));
        let named_publication = o.string("debezium.publication.name");
        let publication_mode = publication::AutoCreate::parse(
            o.choice("debezium.publication.autocreate.mode", publication::AutoCreate::CHOICES)?.unwrap_or("all_tables"),
        );
        let truncate = match o.choice("truncate.mode", &["fail", "ignore", "delete"])?.unwrap_or("fail") {
            "fail" => TruncateMode::Fail,
            "ignore" => TruncateMode::Ignore,
            _ => TruncateMode::Delete,
        };
        // Flink CDC passes Debezium's properties under `debezium.`; this one is Debezium's
        // `slot.drop.on.stop`, with its meaning: drop the slot when the connector stops gracefully.
        let drop_slot_on_stop = o.bool("debezium.slot.drop.on.stop")?.unwrap_or(false);
        // Debezium's patience with a slot another session holds: a killed predecessor's walsender
        // can hold it for a moment after the restart (or, killed mid-creation, hold an unfinished
        // slot until its CREATE_REPLICATION_SLOT returns).
        let slot_retries = o.parse::<u32>("debezium.slot.max.retries", "a whole number of attempts")?.unwrap_or(6);
        let slot_retry_delay =
            o.parse::<u64>("debezium.slot.retry.delay.ms", "a whole number of milliseconds")?.unwrap_or(10_000);

        let connect_timeout = o.duration("connect.timeout")?.unwrap_or(Duration::from_secs(30));
        if connect_timeout.is_zero() {
            return Err(o.invalid("connect.timeout", "0", "a positive duration such as '30s'"));
        }
        let connect_max_retries = o.parse::<u32>("connect.max-retries", "a whole number")?.unwrap_or(3);
        let lsn_commit_delay =
            o.parse::<usize>("scan.lsn-commit.checkpoints-num-delay", "a whole number of checkpoints")?.unwrap_or(0);
        let append_only = o.bool("scan.read-changelog-as-append-only.enabled")?.unwrap_or(false);
        if append_only && truncate == TruncateMode::Delete {
            return Err(Error::user(format!(
                "table `{}`: 'truncate.mode' = 'delete' turns a TRUNCATE into deletes, which \
                 'scan.read-changelog-as-append-only.enabled' = 'true' cannot deliver; keep one of the two",
                spec.name
            )));
        }
        // Flink CDC options that change nothing here, or that are refused because ignoring them
        // would change what the job delivers.
        o.no_effect(
            "scan.incremental.snapshot.enabled",
            "the snapshot is always read in parallel chunks under the slot's exported snapshot: consistent, without \
             locks or backfill, whatever this says",
        );
        o.no_effect("scan.incremental.close-idle-reader.enabled", mysql_cdc::CLOSE_IDLE_READERS);
        o.no_effect("scan.incremental.snapshot.unbounded-chunk-first.enabled", mysql_cdc::CHUNK_ORDER);
        o.no_effect(
            "scan.incremental.snapshot.backfill.skip",
            "the snapshot needs no backfill: every chunk is read under the slot's exported snapshot, and streaming \
             starts exactly where it ends",
        );
        o.no_effect("chunk-meta.group.size", mysql_cdc::CHUNK_META);
        let chunks = "chunks are ranges of heap blocks (ctid) on PostgreSQL 14 and later, of the table's single \
                      integer key before; how they are cut changes nothing in what is delivered";
        for key in [
            "scan.incremental.snapshot.chunk.key-column",
            "chunk-key.even-distribution.factor.upper-bound",
            "chunk-key.even-distribution.factor.lower-bound",
        ] {
            o.no_effect(key, chunks);
        }
        o.no_effect(
            "scan.snapshot.fetch.size",
            "the snapshot reads each chunk with COPY, which has no fetch size; its batches hold up to \
             'datafusion.execution.batch_size' rows",
        );
        o.no_effect("connection.pool.size", mysql_cdc::NO_POOL);
        o.refused(
            "connect.pool.size",
            "Flink CDC's postgres-cdc does not read it either (its page misnames the option): use \
             'connection.pool.size'",
        )?;
        o.refused_unless("scan.newly-added-table.enabled", &["false"], mysql_cdc::NO_NEWLY_ADDED_TABLES)?;
        o.refused_unless(
            "scan.include-partitioned-tables.enabled",
            &["false"],
            "partitioned tables are not read through their root here: select their partitions by name instead \
             ('table-name' = 'orders_.*' in a CREATE TABLE, 'tables' = 'db.public.orders_.*' in a pipeline)",
        )?;
        let overrides = "the snapshot reads whole tables; to skip the existing rows start with 'scan.startup.mode' = \
                         'latest-offset', to leave rows out filter them in the query";
        o.refused("debezium.snapshot.select.statement.overrides", overrides)?;
        o.refused_prefix("debezium.snapshot.select.statement.overrides.", overrides)?;
        o.refused_prefix("debezium.", mysql_cdc::DEBEZIUM)?;

        o.refused_unless(
            "decoding.plugin.name",
            &["pgoutput"],
            "only PostgreSQL's built-in 'pgoutput' plugin (PostgreSQL 10 and later) is read, not decoderbufs or \
             wal2json; the changes are the same: set 'decoding.plugin.name' = 'pgoutput'",
        )?;
        if chunk_size == 0 {
            return Err(o.invalid("scan.incremental.snapshot.chunk.size", "0", "a positive whole number"));
        }
        if heartbeat.is_zero() {
            return Err(o.invalid(heartbeat_key, "0", "a positive duration such as '30s'"));
        }
        let valid_slot = !slot.is_empty()
            && slot.len() <= 63
            && slot.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_slot {
            return Err(o.invalid("slot.name", &slot, "1 to 63 lower-case letters, digits or underscores"));
        }
        if let Some(p) = &named_publication {
            if p.is_empty() || p.len() > 63 || p.contains('"') || p.contains('\'') {
                return Err(o.invalid(
                    "debezium.publication.name",
                    p,
                    "a publication name of at most 63 characters without quotes",
                ));
            }
        }
        let changelog_mode = if changelog == "all" { ChangelogMode::All } else { ChangelogMode::Upsert };
        if changelog_mode == ChangelogMode::Upsert && spec.primary_key.is_empty() {
            return Err(Error::user(format!(
                "table `{}`: 'changelog-mode' = 'upsert' needs a PRIMARY KEY (…) NOT ENFORCED, the key updates and deletes apply to",
                spec.name
            )));
        }

        if truncate == TruncateMode::Delete && spec.primary_key.is_empty() {
            return Err(Error::user(format!(
                "table `{}`: 'truncate.mode' = 'delete' needs a PRIMARY KEY (…) NOT ENFORCED: the rows a TRUNCATE deletes are \
                 kept by key",
                spec.name
            )));
        }

        let columns = if per_table { Columns::PerTable } else { Columns::Declared(Arc::new(Shape::declared(spec)?)) };
        Ok(Config {
            table: spec.name.clone(),
            host,
            port,
            user,
            password,
            database,
            tables,
            slot,
            changelog_mode,
            startup,
            chunk_size,
            heartbeat,
            publication: named_publication.unwrap_or_else(|| DEFAULT_PUBLICATION.to_string()),
            publication_mode,
            truncate,
            drop_slot_on_stop,
            connect_timeout,
            connect_max_retries,
            lsn_commit_delay,
            append_only,
            slot_wait: Duration::from_millis(slot_retry_delay.saturating_mul(u64::from(slot_retries))),
            snapshot_readers: readers.unwrap_or_else(snapshot::readers),
            columns,
        })
    }
}

impl Shape {
    /// The declared columns of a Flink table: source columns and metadata columns.
    fn declared(spec: &TableSpec) -> Result<Shape> {
        let mut sources = Vec::with_capacity(spec.columns.len());
        let mut physical = Vec::new();
        for column in &spec.columns {
            match &column.metadata {
                Some(m) => {
                    let key = MetadataKey::parse(&m.key).ok_or_else(|| {
                        Error::internal(format!("metadata key '{}' passed the registry but is unknown", m.key))
                    })?;
                    let fits = match key {
                        MetadataKey::OpTs => matches!(column.data_type, DataType::Timestamp(_, Some(_))),
                        _ => column.data_type == DataType::Utf8,
                    };
                    if !fits {
                        let wanted = if key == MetadataKey::OpTs { "TIMESTAMP_LTZ(3)" } else { "STRING" };
                        return Err(Error::user(format!(
                            "metadata column `{}` of table `{}` reads '{}', which is {wanted}; it is declared {}",
                            column.name,
                            spec.name,
                            m.key,
                            flink_type_name(&column.data_type)
                        )));
                    }
                    sources.push(ColumnSource::Metadata(key));
                }
                None => {
                    if values::ColumnBuilder::new(&column.data_type, 0).is_none() {
                        return Err(Error::user(format!(
                            "column `{}` of table `{}` is declared {}, which postgres-cdc cannot produce; declare it STRING",
                            column.name,
                            spec.name,
                            flink_type_name(&column.data_type)
                        )));
                    }
                    sources.push(ColumnSource::Physical { name: column.name.clone(), index: physical.len() });
                    physical.push((column.name.clone(), column.data_type.clone(), !column.nullable));
                }
            }
        }
        if physical.is_empty() {
            return Err(Error::user(format!("table `{}` declares no column read from PostgreSQL", spec.name)));
        }
        Ok(Shape { schema: spec.schema(), sources: Arc::new(sources), physical, primary_key: spec.primary_key.clone() })
    }
}

impl Config {
    pub fn is_bounded(&self) -> bool {
        self.startup == StartupMode::Snapshot
    }

    /// The login for ordinary sessions (no password in any `Debug`/`Display` of ours).
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(&self.database)
            .application_name("cdc-sql")
            .options(session_options())
            .connect_timeout(self.connect_timeout);
        c
    }

    /// Whether the runtime keeps the rows this source delivers, for truncations to delete.
    pub fn keeps_captured_rows(&self) -> bool {
        self.truncate == TruncateMode::Delete && !self.is_bounded()
    }

    /// What the source's positions are positions in. LSNs are the server's, resumed through the
    /// slot, which a streaming start names (a checkpoint's LSN read through another slot could
    /// skip what that slot already released). No user or password: this is stored and shown.
    pub fn source_identity(&self) -> SourceIdentity {
        let startup_mode = match self.startup {
            StartupMode::Snapshot => SourceIdentity::SNAPSHOT.to_string(),
            StartupMode::Initial => format!("initial slot={}", self.slot),
            StartupMode::LatestOffset => format!("latest-offset slot={}", self.slot),
            StartupMode::CommittedOffset => format!("committed-offset slot={}", self.slot),
        };
        SourceIdentity {
            connector: "postgres-cdc".into(),
            location: format!("{}:{}/{}", self.host, self.port, self.database),
            tables: self.tables.text().to_string(),
            startup_mode,
        }
    }

    /// The slot a streaming run holds, shown to the user; a bounded run has none.
    pub fn replication_slot(&self) -> Option<ReplicationSlot> {
        (!self.is_bounded()).then(|| ReplicationSlot {
            name: self.slot.clone(),
            server: self.where_(),
            drop_on_stop: self.drop_slot_on_stop,
        })
    }

    /// Where, for messages: `user@host:port/database`.
    pub fn where_(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

/// [`SESSION_SETTINGS`] as a startup `options` value.
pub(crate) fn session_options() -> String {
    SESSION_SETTINGS.iter().map(|(k, v)| format!("-c {k}={}", v.replace(' ', "\\ "))).collect::<Vec<_>>().join(" ")
}

struct PostgresCdcTable {
    config: Arc<Config>,
    /// Set while a job of this process has created or streamed from the slot and not dropped
    /// it: leaving the session then has something to say (or, on request, to drop).
    left_behind: Arc<AtomicBool>,
}

#[async_trait]
impl ConnectorTable for PostgresCdcTable {
    fn source(&self, ctx: &SourceContext) -> Result<Option<Box<dyn Source>>> {
        let source: Box<dyn Source> = Box::new(stream::PostgresCdcSource::new(
            self.config.clone(),
            ctx.batch_size.max(1),
            self.left_behind.clone(),
        ));
        Ok(Some(if self.config.append_only { Box::new(super::append_only::AppendOnly(source)) } else { source }))
    }

    /// Under any identity but FULL, deletes and old rows of updates carry only the key; which
    /// identity each captured table has is known only when the job starts. (Read as append-only,
    /// there are no retractions: those rows arrive as inserts, as in Flink CDC.)
    fn source_retractions(&self) -> Retractions {
        if self.config.is_bounded() || self.config.append_only {
            Retractions::WholeRows
        } else {
            Retractions::MaybeKeyOnly
        }
    }

    fn source_identity(&self) -> Option<SourceIdentity> {
        Some(self.config.source_identity())
    }

    fn replication_slot(&self) -> Option<ReplicationSlot> {
        self.config.replication_slot()
    }

    async fn on_drop(&self) -> Result<Vec<String>> {
        if !self.left_behind.swap(false, Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let config = &self.config;
        if !config.drop_slot_on_stop {
            return Ok(vec![format!(
                "replication slot '{}' on {} stays for the next run of table `{}` ('debezium.slot.drop.on.stop' is false); \
                 if no job will resume from it, drop it with SELECT pg_drop_replication_slot('{}')",
                config.slot,
                config.where_(),
                config.table,
                config.slot
            )]);
        }
        Ok(match checks::drop_slot(config).await? {
            true => vec![format!(
                "dropped replication slot '{}' on {} left behind by an earlier job of table `{}` that did not stop gracefully ('debezium.slot.drop.on.stop' = 'true')",
                config.slot,
                config.where_(),
                config.table
            )],
            false => Vec::new(),
        })
    }

    fn source_changelog_mode(&self) -> ChangelogMode {
        if self.config.is_bounded() || self.config.append_only {
            ChangelogMode::InsertOnly
        } else {
            self.config.changelog_mode
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::sql::{ColumnSpec, MetadataColumn, TableOption};

    fn spec(extra: &[(&str, &str)], pk: &[&str]) -> TableSpec {
        let mut options = vec![
            ("connector", "postgres-cdc"),
            ("hostname", "h"),
            ("username", "u"),
            ("password", "secret-pw"),
            ("database-name", "d"),
            ("schema-name", "public"),
            ("table-name", "t_.*"),
            ("slot.name", "s1"),
        ];
        for (k, v) in extra {
            options.retain(|(key, _)| key != k);
            options.push((k, v));
        }
        let column = |name: &str, dt: DataType, meta: Option<&str>| ColumnSpec {
            name: name.into(),
            data_type: dt,
            nullable: true,
            type_text: String::new(),
            metadata: meta.map(|k| MetadataColumn { key: k.into(), is_virtual: true }),
            comment: None,
        };
        TableSpec {
            name: "src".into(),
            columns: vec![
                column("id", DataType::Int64, None),
                column("tbl", DataType::Utf8, Some("table_name")),
                column(
                    "ts",
                    DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())),
                    Some("op_ts"),
                ),
            ],
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            options: options
                .into_iter()
                .map(|(k, v)| TableOption { key: k.into(), value: v.into(), written: v.into() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        }
    }

    /// The columns of the test table, as a captured table is read into them.
    pub(super) fn shape() -> Arc<Shape> {
        let Columns::Declared(shape) = parse(&[], &["id"]).unwrap().columns else { unreachable!("declared") };
        shape
    }

    pub(super) fn parse(extra: &[(&str, &str)], pk: &[&str]) -> Result<Config> {
        let spec = spec(extra, pk);
        let mut o = ConnectorOptions::new(&spec)?;
        let config = Config::parse(&spec, &mut o, None)?;
        o.finish()?;
        Ok(config)
    }

    #[test]
    fn flink_defaults() {
        let c = parse(&[], &[]).unwrap();
        assert_eq!((c.port, c.chunk_size, c.heartbeat), (5432, 8096, Duration::from_secs(30)));
        assert_eq!(
            (c.startup, c.changelog_mode, c.truncate),
            (StartupMode::Initial, ChangelogMode::All, TruncateMode::Fail)
        );
        assert!(!c.drop_slot_on_stop, "slots are permanent unless asked otherwise (Debezium's default)");
        assert_eq!(c.slot_wait, Duration::from_secs(60), "Debezium's 6 retries 10 s apart");
        assert_eq!(c.publication, "dbz_publication");
        assert_eq!(c.publication_mode, publication::AutoCreate::AllTables, "Debezium's default");
        assert!(
            c.tables.matches(&["d", "public", "t_1"]) && !c.tables.matches(&["d", "public", "xt_1"]),
            "patterns match whole names"
        );
        assert!(!c.tables.matches(&["d2", "public", "t_1"]), "in the one database");
        let Columns::Declared(shape) = &c.columns else { panic!("a declared table") };
        assert_eq!(shape.physical.len(), 1);
    }

    /// A server that accepts connections and never answers: each attempt is cut at
    /// 'connect.timeout', and 'connect.max-retries' more are made, for ordinary sessions and our
    /// own (snapshot, replication) alike.
    #[tokio::test]
    async fn connections_are_cut_at_connect_timeout_and_retried_connect_max_retries_times() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let config = Arc::new(
            parse(
                &[
                    ("hostname", "127.0.0.1"),
                    ("port", &port),
                    ("connect.timeout", "200ms"),
                    ("connect.max-retries", "2"),
                ],
                &[],
            )
            .unwrap(),
        );
        let attempts = |listener: &std::net::TcpListener| {
            let mut n = 0;
            while listener.accept().is_ok() {
                n += 1;
            }
            n
        };
        let err = checks::connect(&config).await.err().unwrap().to_string();
        assert!(
            err.contains("connecting to u@127.0.0.1:") && err.contains("timed out after 200ms ('connect.timeout')")
        );
        assert_eq!(attempts(&listener), 3);
        let err = session::Session::connect(config.clone(), session::Purpose::Replication).await.err().unwrap();
        assert!(err.to_string().contains("connecting the replication session to u@127.0.0.1"), "{err}");
        assert_eq!(attempts(&listener), 3);
        let once = Arc::new(
            parse(
                &[
                    ("hostname", "127.0.0.1"),
                    ("port", &port),
                    ("connect.timeout", "100ms"),
                    ("connect.max-retries", "0"),
                ],
                &[],
            )
            .unwrap(),
        );
        assert!(checks::connect(&once).await.is_err());
        assert_eq!(attempts(&listener), 1);
        assert_eq!(
            parse(&[], &[]).map(|c| (c.connect_timeout, c.connect_max_retries)).unwrap(),
            (Duration::from_secs(30), 3)
        );
    }

    #[test]
    fn rejected_values_say_what_is_expected() {
        let err = |extra: &[(&str, &str)]| parse(extra, &["id"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&[("decoding.plugin.name", "decoderbufs")]).contains("'pgoutput'"));
        assert!(err(&[("scan.startup.mode", "timestamp")])
            .contains("one of initial, latest-offset, committed-offset, snapshot"));
        assert!(err(&[("changelog-mode", "retract")]).contains("one of all, upsert"));
        assert!(err(&[("slot.name", "My-Slot")]).contains("lower-case"));
        assert!(err(&[("table-name", "t(")]).contains("regular expression"));
        assert!(err(&[("scan.incremental.snapshot.chunk.size", "0")]).contains("positive"));
        assert!(err(&[("heartbeat.interval.ms", "0")]).contains("positive"));
        assert!(err(&[("truncate.mode", "deletes")]).contains("one of fail, ignore, delete"));
        assert!(err(&[("debezium.publication.autocreate.mode", "no_tables")])
            .contains("one of all_tables, filtered, disabled"));
        assert!(parse(&[("truncate.mode", "delete")], &[])
            .err()
            .is_some_and(|e| e.to_string().contains("'truncate.mode' = 'delete' needs a PRIMARY KEY")));
        assert!(err(&[("debezium.slot.drop.on.stp", "true")]).contains("did you mean 'debezium.slot.drop.on.stop'?"));
        assert!(err(&[("debezium.slot.drop.on.stop", "yes")]).contains("true or false"));
        assert!(err(&[("debezium.slot.max.retries", "-1")]).contains("a whole number of attempts"));
        assert!(err(&[("debezium.slot.retry.delay.ms", "10s")]).contains("a whole number of milliseconds"));
        assert!(parse(&[("changelog-mode", "upsert")], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("PRIMARY KEY"));
        let shown = err(&[("password", "hunter2"), ("port", "x")]);
        assert!(shown.contains("'port' = 'x'") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_slot_is_announced_unless_the_run_is_bounded() {
        let table = |extra: &[(&str, &str)]| PostgresCdcTable {
            config: Arc::new(parse(extra, &["id"]).unwrap()),
            left_behind: Arc::new(AtomicBool::new(false)),
        };
        let slot = table(&[("debezium.slot.drop.on.stop", "true")]).replication_slot().unwrap();
        assert_eq!((slot.name.as_str(), slot.server.as_str(), slot.drop_on_stop), ("s1", "u@h:5432/d", true));
        assert!(slot.describe().contains("dropped when the job stops gracefully"), "{}", slot.describe());
        assert!(!table(&[]).replication_slot().unwrap().drop_on_stop);
        assert_eq!(table(&[("scan.startup.mode", "snapshot")]).replication_slot(), None, "a bounded run has no slot");
    }

    #[test]
    fn the_source_identity_names_server_tables_and_start_without_credentials() {
        let identity = |extra: &[(&str, &str)]| parse(extra, &["id"]).unwrap().source_identity();
        let initial = identity(&[("port", "6543")]);
        assert_eq!(
            initial,
            SourceIdentity {
                connector: "postgres-cdc".into(),
                location: "h:6543/d".into(),
                tables: "public.t_.*".into(),
                startup_mode: "initial slot=s1".into(),
            }
        );
        let shown = serde_json::to_string(&initial).unwrap();
        assert!(!shown.contains("secret-pw") && !shown.contains("u@"), "{shown}");
        let snapshot = identity(&[("port", "6543"), ("scan.startup.mode", "snapshot")]);
        assert_eq!(snapshot.startup_mode, SourceIdentity::SNAPSHOT);
        assert!(initial.continues_snapshot(&snapshot), "the connector, not the identity, refuses this continuation");
        assert_eq!(identity(&[("scan.startup.mode", "latest-offset")]).startup_mode, "latest-offset slot=s1");
        assert_eq!(identity(&[("scan.startup.mode", "committed-offset")]).startup_mode, "committed-offset slot=s1");
        assert_ne!(identity(&[("port", "6543"), ("slot.name", "s2")]), initial, "another slot holds other WAL");
        assert_ne!(identity(&[("port", "6543"), ("schema-name", "shop")]), initial);
        assert_ne!(identity(&[("port", "6543"), ("database-name", "d2")]), initial);
        let login =
            identity(&[("port", "6543"), ("username", "v"), ("password", "p2"), ("heartbeat.interval.ms", "5s")]);
        assert_eq!(login, initial, "logins and tuning do not move positions");
    }

    /// Checked before any connection: `h` resolves nowhere, so reaching the server would fail
    /// differently.
    #[tokio::test]
    async fn a_streaming_run_refuses_the_position_of_a_snapshot_mode_run_naming_the_fix() {
        let config = Arc::new(parse(&[], &["id"]).unwrap());
        let mut source = stream::PostgresCdcSource::new(config, 100, Arc::new(AtomicBool::new(false)));
        let position = serde_json::json!({
            "phase": "snapshot", "slot": "s1", "chunks_done": 3, "chunks_total": 3, "rows": 10, "bounded": true
        });
        let err = source
            .start(Some(crate::connectors::ResumeFrom { position, exact: true, stateful: false }))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::User(_)), "{err:?}");
        assert!(
            text.contains("'scan.startup.mode' = 'snapshot'")
                && text.contains("created no replication slot")
                && text.contains("--fresh")
                && text.contains("slot 's1'"),
            "{text}"
        );
    }

    #[test]
    fn options_are_read() {
        let c = parse(
            &[
                ("port", "6543"),
                ("scan.startup.mode", "committed-offset"),
                ("changelog-mode", "upsert"),
                ("scan.incremental.snapshot.chunk.size", "100"),
                ("heartbeat.interval.ms", "1s"),
                ("debezium.publication.name", "my_pub"),
                ("debezium.publication.autocreate.mode", "FILTERED"),
                ("truncate.mode", "ignore"),
                ("debezium.slot.drop.on.stop", "TRUE"),
                ("debezium.slot.max.retries", "0"),
                ("debezium.slot.retry.delay.ms", "500"),
            ],
            &["id"],
        )
        .unwrap();
        assert!(c.drop_slot_on_stop);
        assert_eq!(c.slot_wait, Duration::ZERO, "no retries: a held slot fails at once");
        assert_eq!((c.port, c.chunk_size, c.heartbeat), (6543, 100, Duration::from_secs(1)));
        assert_eq!(
            (c.startup, c.changelog_mode, c.truncate),
            (StartupMode::CommittedOffset, ChangelogMode::Upsert, TruncateMode::Ignore)
        );
        assert_eq!((c.publication.as_str(), c.publication_mode), ("my_pub", publication::AutoCreate::Filtered));
    }
}
