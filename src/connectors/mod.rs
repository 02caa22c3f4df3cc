//! Connectors: one folder each, registered by one line in [`CONNECTORS`]. A connector turns a
//! `CREATE TABLE … WITH (…)` into a [`ConnectorTable`] (options parsed and validated, no I/O), which
//! later opens [`Source`]s and [`Sink`]s that speak the changelog contract of DESIGN.md §3,
//! including its checkpoint protocol: sources tag every batch with a resumable [`Position`] and
//! learn which positions are durable; sinks prepare, commit and recover.

/// `scan.read-changelog-as-append-only.enabled` of the CDC sources (not a connector).
mod append_only;
mod blackhole;
/// Date arithmetic shared by the connectors that convert dates per value (not a connector).
pub(crate) mod calendar;
mod datagen;
pub mod doris;
/// The connector pages' tables of Flink options, checked against the code.
#[cfg(test)]
mod flink_options;
/// FLOAT/DOUBLE values into DECIMAL columns, as Flink converts them (not a connector).
mod float_decimal;
mod iotdb;
mod jdbc;
mod kafka;
/// Finding rows by key for lookup joins, and Flink's lookup options (not a connector).
pub mod lookup;
mod mysql_cdc;
/// Bulk-read sessions with MySQL/MariaDB shared by mysql-cdc and jdbc (not a connector).
mod mysql_session;
pub mod options;
/// PostgreSQL binary COPY framing shared by postgres-cdc and jdbc (not a connector).
mod pg_copy;
mod postgres_cdc;
mod print;
/// Which tables a CDC source captures: the SQL connectors' patterns and Flink CDC's (not a connector).
pub mod selection;
/// Spatial values: WKB, MySQL's stored form, Flink CDC's JSON text (not a connector).
mod spatial;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;

pub use lookup::{Lookup, LookupTable};
#[doc(hidden)]
pub use mysql_cdc::decode_stored_text;
/// A pipeline definition's sources (see `crate::pipeline`).
pub(crate) use mysql_cdc::MySqlTables;
pub use options::ConnectorOptions;
pub(crate) use postgres_cdc::PostgresTables;

use crate::changelog::{ChangeBatch, ChangelogMode, Event, Retractions, SchemaChange, TableId};
use crate::error::{Error, Result};
use crate::runtime::DeadLetters;
use crate::sql::TableSpec;

/// Every connector, by the name used in `'connector' = '…'`.
static CONNECTORS: &[&dyn Connector] = &[
    &datagen::Datagen,
    &print::Print,
    &blackhole::Blackhole,
    &doris::Doris,
    &iotdb::Iotdb,
    &jdbc::Jdbc,
    &kafka::Kafka,
    &kafka::UpsertKafka,
    &mysql_cdc::MySqlCdc,
    &postgres_cdc::PostgresCdc,
];

/// The names of every connector, in registry order, for help texts and error messages.
pub fn connector_names() -> Vec<&'static str> {
    CONNECTORS.iter().map(|c| c.name()).collect()
}

pub trait Connector: Sync {
    fn name(&self) -> &'static str;

    /// The keys a table may declare as `METADATA FROM 'key'` columns.
    fn metadata_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Reads and validates the table's options (consuming each key it knows). No I/O.
    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>>;
}

/// Opens a table declared with `CREATE TABLE`: finds its connector and validates its options.
pub fn open_table(spec: &TableSpec) -> Result<Box<dyn ConnectorTable>> {
    let mut options = ConnectorOptions::new(spec)?;
    let name = options.connector().to_string();
    let Some(connector) = CONNECTORS.iter().find(|c| c.name() == name) else {
        let names = connector_names();
        let nearest = names
            .iter()
            .map(|n| (strsim::levenshtein(n, &name), *n))
            .min()
            .filter(|(d, _)| *d <= 3)
            .map(|(_, n)| format!(" (did you mean '{n}'?)"))
            .unwrap_or_default();
        return Err(Error::user(format!(
            "unknown connector '{name}' in table `{}`{nearest}. Available connectors: {}",
            spec.name,
            names.join(", ")
        )));
    };
    for column in &spec.columns {
        let Some(metadata) = &column.metadata else { continue };
        let keys = connector.metadata_keys();
        if !keys.contains(&metadata.key.as_str()) {
            let offered = if keys.is_empty() { "none".to_string() } else { keys.join(", ") };
            return Err(Error::user(format!(
                "column `{}` of table `{}` reads metadata '{}', which connector '{name}' does not offer (it offers: {offered})",
                column.name, spec.name, metadata.key
            )));
        }
    }
    let table = connector.open_table(spec, &mut options)?;
    options.finish()?;
    Ok(table)
}

/// What the runtime tells a source when it starts it.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Preferred number of rows per batch (`datafusion.execution.batch_size`).
    pub batch_size: usize,
}

/// A captured table as a pipeline source reads it: its id in the changes (`database.table`
/// for MySQL, `schema.table` for PostgreSQL) and its columns and primary key.
#[derive(Debug, Clone)]
pub struct DescribedTable {
    pub id: String,
    pub spec: std::sync::Arc<TableSpec>,
}

/// A source that reads many tables, each into its own columns, through one reader (a pipeline
/// definition's `source`): its options were read when it was made, without I/O.
#[async_trait]
pub(crate) trait TablesSource: Send + Sync {
    /// The captured tables as the server describes them now, in name order.
    async fn describe(&self) -> Result<Vec<DescribedTable>>;

    /// A reader of every captured table, each table's changes tagged with its id.
    fn source(&self, batch_size: usize) -> Box<dyn Source>;

    /// What the reader's positions are positions in.
    fn identity(&self) -> SourceIdentity;

    /// The replication slot the reader holds, if any.
    fn replication_slot(&self) -> Option<ReplicationSlot> {
        None
    }
}

/// Consumes the options of Flink CDC's pipeline sources that no pipeline source here offers yet,
/// refusing each with why (the mysql and postgres sources share them).
pub(crate) fn refuse_unbuilt_pipeline_source_options(o: &mut ConnectorOptions) -> Result<()> {
    o.refused_unless(
        "schema-change.enabled",
        &["true"],
        "a change of a captured table's columns is always passed on, and stops the pipeline (see docs/pipeline.md)",
    )?;
    o.refused_unless("include-comments.enabled", &["false"], "comments are not copied to the sink's tables")?;
    o.refused("metadata.list", "pipeline sources offer no metadata columns yet")?;
    o.refused_unless(
        "scan.binlog.newly-added-table.enabled",
        &["false"],
        "tables created while the pipeline runs are not picked up yet; restart the pipeline with --fresh to capture \
         them",
    )
    .map(|_| ())
}

/// A replication slot a table's source holds on its server for the job, shown to the user (job
/// start, REST job details, dashboard) so it is clear what outlives the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSlot {
    pub name: String,
    /// `user@host:port/database` (never the password).
    pub server: String,
    /// Dropped once the job stopped gracefully (`'debezium.slot.drop.on.stop' = 'true'`);
    /// otherwise it stays for the next run.
    pub drop_on_stop: bool,
}

impl ReplicationSlot {
    /// One line for people: which slot, where, and what happens to it when the job stops.
    pub fn describe(&self) -> String {
        let fate = if self.drop_on_stop {
            "dropped when the job stops gracefully ('debezium.slot.drop.on.stop' = 'true'; kept after a crash so a restart can resume)"
        } else {
            "kept when the job stops, for the next run to resume from"
        };
        format!("replication slot '{}' on {}: {fate}", self.name, self.server)
    }
}

/// A declared table, ready to be read or written.
#[async_trait]
pub trait ConnectorTable: Send + Sync {
    /// A reader over the table's full declared schema, or `None` if the connector cannot read.
    fn source(&self, ctx: &SourceContext) -> Result<Option<Box<dyn Source>>> {
        let _ = ctx;
        Ok(None)
    }

    /// The changelog the table's source emits (known before reading, for planning).
    fn source_changelog_mode(&self) -> ChangelogMode {
        ChangelogMode::InsertOnly
    }

    /// What the source's `-U`/`-D` rows carry: whole old rows, or perhaps only the key.
    fn source_retractions(&self) -> Retractions {
        Retractions::WholeRows
    }

    /// A writer taking batches of the table's persisted columns, or `None` if the connector cannot
    /// write. `input` is the changelog the query produces; a sink that cannot apply it (e.g. an
    /// append-only sink and deletes) returns a user error.
    fn sink(&self, input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        let _ = input;
        Ok(None)
    }

    /// Why the table's sink cannot work without checkpoints (it writes only when one is taken,
    /// so without them it would hold every row until the job ends), and what else the table
    /// could be told to do instead, as sentences for the user; `None` (the default) for sinks
    /// that also write on their own. Planning refuses such a sink in a job that takes none.
    fn sink_needs_checkpoints(&self) -> Option<String> {
        None
    }

    /// How the table is looked up by key for lookup joins, or `None` if the connector cannot.
    fn lookup(&self) -> Option<LookupTable> {
        None
    }

    /// The replication slot the table's source holds for its job, if it holds one.
    fn replication_slot(&self) -> Option<ReplicationSlot> {
        None
    }

    /// What determines the positions the table's source emits, so that a checkpoint's position
    /// resumes only a source that reads the same thing from the same place. `None` (the default)
    /// for connectors that cannot read, or whose positions depend on nothing but the table.
    fn source_identity(&self) -> Option<SourceIdentity> {
        None
    }

    /// The table leaves the session (DROP TABLE, or the shell ends): release what jobs of this
    /// session left behind for it and the table declares not to outlive its job (a slot with
    /// 'debezium.slot.drop.on.stop' whose job failed). Returns what happened, for the user.
    async fn on_drop(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// What a source's positions are positions *in*: a position stored in a checkpoint applies to a
/// later run only when these are the same (the startup mode aside: a finished bounded snapshot
/// may be continued by a streaming run, see [`SourceIdentity::continues_snapshot`]). Never holds
/// credentials: it is stored in checkpoint records and quoted in messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceIdentity {
    /// The connector's name, e.g. `mysql-cdc`.
    pub connector: String,
    /// Where it reads: server and database (`host:port/database`), or `-` for none.
    pub location: String,
    /// What it reads: the captured tables as configured (patterns as written).
    pub tables: String,
    /// How a fresh start begins (`scan.startup.mode` and its offset options, as written).
    pub startup_mode: String,
}

impl SourceIdentity {
    /// The startup mode of a bounded snapshot run (`'scan.startup.mode' = 'snapshot'`).
    pub const SNAPSHOT: &'static str = "snapshot";

    /// A run of `self` may continue the finished bounded snapshot run `earlier` by streaming the
    /// log from where that snapshot was taken: same connector, place and tables, and only the
    /// startup mode moved from `snapshot` to a streaming one.
    pub fn continues_snapshot(&self, earlier: &SourceIdentity) -> bool {
        earlier.startup_mode == Self::SNAPSHOT
            && self.startup_mode != Self::SNAPSHOT
            && self.connector == earlier.connector
            && self.location == earlier.location
            && self.tables == earlier.tables
    }
}

/// Where a source is, in its own terms (binlog GTID set, LSN, snapshot chunk, rows generated).
/// Stored in checkpoints and handed back to resume.
pub type Position = serde_json::Value;

/// Where a source resumes: a position it emitted, from a checkpoint (or stored by a sink with
/// its data).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeFrom {
    pub position: Position,
    /// The run that stored `position` stopped right after it (the final checkpoint of a
    /// graceful stop): nothing after it reached a sink. Otherwise the run may have been killed
    /// after delivering more, which a source must allow for where repeating its changes from
    /// `position` would not repeat what was delivered (mysql-cdc's unfinished snapshot chunks).
    pub exact: bool,
    /// Operators after the source keep state as of `position` (a GROUP BY): what the source
    /// delivers again is counted again, so it must deliver what follows `position` exactly once
    /// (as if `exact`), or refuse to resume.
    pub stateful: bool,
}

/// What a source read, and its position right after it.
#[derive(Debug)]
pub struct SourceBatch {
    /// In order: changes of a table, truncations. Sources of one table emit changes of their
    /// declared table (see [`SourceBatch::new`]); sources of several tag each event with its
    /// table.
    pub events: Vec<Event>,
    pub position: Position,
}

impl SourceBatch {
    /// Changes of the table the source was declared for.
    pub fn new(changes: ChangeBatch, position: Position) -> Self {
        SourceBatch { events: vec![Event::changes(changes)], position }
    }

    /// All the batch's changes as one batch, whichever tables they are of: for sources whose
    /// tables share the declared columns. A truncation has no rows to give; a schema change
    /// leaves the declared columns as they are, and adds none.
    pub fn changes(&self) -> Result<ChangeBatch> {
        let mut parts = Vec::with_capacity(self.events.len());
        for event in &self.events {
            match event {
                Event::Changes { changes, .. } => parts.push(changes.clone()),
                Event::SchemaChanged(_) => {}
                Event::Truncated(t) => {
                    return Err(Error::internal(format!("a truncation of {:?} has no changes to give", t.table)))
                }
            }
        }
        match parts.as_slice() {
            [] => Err(Error::internal("a source batch without changes")),
            [one] => Ok(one.clone()),
            [first, ..] => ChangeBatch::concat(&first.rows().schema(), &parts),
        }
    }
}

#[async_trait]
pub trait Source: Send {
    fn schema(&self) -> SchemaRef;

    /// Bounded sources end (`next_batch` gives `None`) and so end their job.
    fn is_bounded(&self) -> bool;

    /// Starts reading after `resume_from`, or as configured when `None`.
    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()>;

    /// The key columns (indices into [`Source::schema`]) by which the runtime keeps every row
    /// this source delivered, to turn the truncations it reports into deletes. A source that
    /// names them tags every [`Event`] with its table; `None` (the default) for the others.
    fn captured_row_key(&self) -> Option<Vec<usize>> {
        None
    }

    /// Right after `start`, the position to resume from if nothing were read: where a fresh
    /// start began (the binlog position and chunk plan of a new snapshot, a datagen seed). The
    /// runtime stores it before anything reaches a sink, so that a job killed before its first
    /// regular checkpoint resumes there — delivering again what it delivered — instead of
    /// starting over somewhere else. `None` when the source cannot say.
    fn start_position(&self) -> Option<Position> {
        None
    }

    /// Where records that do not parse may go instead of stopping the job (when the table's
    /// format does not skip them with 'ignore-parse-errors'); called once, before `start`. By
    /// default a source has no such records to set aside.
    fn set_dead_letters(&mut self, dead_letters: DeadLetters) {
        let _ = dead_letters;
    }

    /// The next batch; `None` when a bounded source is done. Unbounded sources return at least
    /// every few seconds (an empty batch carrying the current position when idle) so the runtime
    /// can checkpoint and acknowledge.
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>>;

    /// Everything up to `position` is durably stored downstream: upstream may release it (for
    /// example a PostgreSQL slot's confirmed LSN).
    async fn acknowledge(&mut self, position: &Position) -> Result<()> {
        let _ = position;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// The job ended gracefully: every pipeline's final checkpoint is stored and committed, and
    /// this source (already closed) acknowledged its last position. Release what the source kept
    /// for a restart if its table asks for that (a PostgreSQL slot declared
    /// 'debezium.slot.drop.on.stop'). Never called after a failure: a restart must still find it.
    async fn release(&mut self) -> Result<()> {
        Ok(())
    }

    /// Where the source stands, for the REST API, `/metrics` and the status line. The runtime asks
    /// once per batch, right after `next_batch`, so this must be cheap (no I/O: report what the
    /// source already knows). `None` (the default) when the source can tell nothing.
    fn progress(&self) -> Option<SourceProgress> {
        None
    }
}

/// What a source can tell about its progress; every field is optional, fill in what is known.
///
/// CDC sources: `event_time_ms` is the commit timestamp of the newest change in the batch just
/// returned (binlog event header, pgoutput commit time), `fetch_event_time_lag_ms` the time between
/// that commit and its arrival (Flink's `currentFetchEventTimeLag`); the runtime derives
/// `currentEmitEventTimeLag` itself when the batch reaches the sink. During a snapshot, `snapshot`
/// counts tables and chunks. `position` is a short human-readable form of the position (e.g.
/// `mysql-bin.000003:4711` or a GTID set, `LSN 0/16B3748`); `slot_lag_bytes` the WAL a PostgreSQL
/// slot retains (current WAL LSN − confirmed flush LSN) when the source knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceProgress {
    pub event_time_ms: Option<i64>,
    pub fetch_event_time_lag_ms: Option<u64>,
    pub snapshot: Option<SnapshotProgress>,
    pub position: Option<String>,
    pub slot_lag_bytes: Option<u64>,
    /// Changes produced so far, and how many there will be in all when a bounded source knows.
    pub events: Option<u64>,
    pub events_total: Option<u64>,
    /// Records skipped because they did not parse (a format's `ignore-parse-errors`).
    pub skipped: Option<u64>,
}

/// Progress of an initial snapshot (Flink CDC's `numTablesSnapshotted`, `numTablesRemaining`,
/// `numSnapshotSplitsFinished`, `numSnapshotSplitsRemaining`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotProgress {
    pub tables_done: u64,
    pub tables_remaining: u64,
    pub chunks_done: u64,
    pub chunks_remaining: u64,
    /// Whether the snapshot phase is over (the source streams the log now).
    pub finished: bool,
}

/// What a sink prepared for a checkpoint: kept in the checkpoint record and handed to `commit`
/// (or to `recover` after a restart), e.g. Doris transaction ids.
#[derive(Debug, Clone)]
pub struct PreparedCommit {
    pub checkpoint_id: u64,
    pub state: serde_json::Value,
}

#[async_trait]
pub trait Sink: Send {
    /// Where rows the sink's system refuses for good (a value its column cannot hold) may go
    /// instead of stopping the job; called once, before `open`. A sink that can tell the refused
    /// rows from the rest sends them there ([`DeadLetters::reject`]) when it is enabled, and before
    /// committing a source position with its data makes them durable ([`DeadLetters::sync`]). By
    /// default a sink cannot, and a refusal stops the job.
    fn set_dead_letters(&mut self, dead_letters: DeadLetters) {
        let _ = dead_letters;
    }

    /// Connects. After a restart, `recover` is called next.
    async fn open(&mut self) -> Result<()> {
        Ok(())
    }

    /// Commits or aborts what a previous run prepared but may not have committed.
    async fn recover(&mut self, pending: Vec<PreparedCommit>) -> Result<()> {
        let _ = pending;
        Ok(())
    }

    /// Changes of `table`: `None` for the table the sink was declared for, which is all a sink of
    /// one declared table is given (a query's output is of its sink's table).
    async fn write(&mut self, table: &TableId, batch: ChangeBatch) -> Result<()>;

    /// The columns of `change.table`'s source table changed, and the pipeline passes the change
    /// on: the sink's table should follow it before the changes that come next. By default a
    /// sink cannot, and refuses with what the user can do.
    async fn apply_schema_change(&mut self, sink_table: &str, change: &SchemaChange) -> Result<()> {
        Err(Error::user(format!(
            "the columns of source table `{}` changed ({}), and sink `{sink_table}` cannot follow schema changes. \
             Change the sink table to match, then restart the job from its last checkpoint",
            change.table.as_deref().unwrap_or("?"),
            change.describe()
        )))
    }

    /// Exactly-once hook: the source position the next `prepare` covers. A sink that stores it
    /// in the same transaction as the data (e.g. jdbc with 'sink.offsets-table') keeps it and
    /// returns true; others return false.
    fn stage_position(&mut self, job: &str, pipeline: &str, position: &Position) -> bool {
        let _ = (job, pipeline, position);
        false
    }

    /// The position a previous run stored with its data through `stage_position`, to resume from.
    async fn stored_position(&mut self, job: &str, pipeline: &str) -> Result<Option<Position>> {
        let _ = (job, pipeline);
        Ok(None)
    }

    /// Flushes everything written so far and makes it ready to commit.
    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit>;

    /// Makes prepared data visible; called once the checkpoint is stored.
    async fn commit(&mut self, prepared: PreparedCommit) -> Result<()> {
        let _ = prepared;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::SourceColumn;

    struct Plain;

    #[async_trait]
    impl Sink for Plain {
        async fn write(&mut self, _: &TableId, _: ChangeBatch) -> Result<()> {
            Ok(())
        }

        async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
            Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
        }
    }

    /// A sink that does not follow schema changes refuses one, saying what changed and what to do.
    #[tokio::test]
    async fn a_sink_refuses_a_schema_change_by_default_naming_it_and_the_fix() {
        let column = |name: &str| SourceColumn { name: name.into(), data_type: "int".into() };
        let change = SchemaChange {
            table: Some("shop.orders".into()),
            before: vec![column("id")],
            after: vec![column("id"), column("qty")],
        };
        let error = Plain.apply_schema_change("orders_copy", &change).await.unwrap_err();
        assert_eq!(error.kind(), crate::error::ErrorKind::User, "{error:?}");
        assert_eq!(
            error.to_string(),
            "the columns of source table `shop.orders` changed (added `qty` int), and sink `orders_copy` cannot follow \
             schema changes. Change the sink table to match, then restart the job from its last checkpoint"
        );
    }
}
