//! `mysql-cdc`: reads MySQL and MariaDB tables as a changelog — a lock-free snapshot followed by
//! the binlog — with Flink CDC's `mysql-cdc` options (docs/connectors/mysql-cdc.md).
//!
//! Protocol: `mysql_async` for queries (text protocol) and the binlog dump (`COM_BINLOG_DUMP`,
//! registering as a replica with 'server-id'); row images are decoded by our own parser
//! ([`cell`]) straight into Arrow builders of the declared types ([`builders`]). Snapshot chunks
//! are read over sessions of our own (`connectors::mysql_session`) whose text result rows
//! go from the read buffer into the same builders; TLS or an authentication they do not speak
//! falls back to `mysql_async`.
//!
//! Snapshot ([`snapshot`]): tables matching 'database-name'/'table-name' (regular expressions)
//! are split into chunks by integer key ranges and read by several connections in parallel,
//! without locks. Each chunk is pinned to a binlog position: on MariaDB the exact position of
//! its consistent-snapshot transaction, on MySQL a low/high watermark pair with the binlog
//! between them applied to the chunk (DBLog / Flink CDC incremental snapshot). Streaming then
//! starts where the snapshot started and skips, per chunk, what that chunk already contains.
//! Chunks are handed out in key-range pieces of at most 'scan.snapshot.fetch.size' rows. With
//! 'scan.incremental.snapshot.enabled' = 'false' the [`legacy`] snapshot reads every table in
//! one consistent transaction instead (keyless tables allowed, restarted from scratch if
//! interrupted). Transactions are never split across batches; every batch carries the position
//! after it (binlog file and offset, MariaDB GTIDs, and snapshot progress per chunk while it
//! matters), from which `start` resumes exactly.
//!
//! In 'snapshot' mode the last position is complete — every chunk with its watermark, or the
//! legacy snapshot's exact position without its marker — so a streaming run of the same tables
//! given it streams on from where the snapshot was taken, as 'initial' does after its snapshot.
//!
//! 'scan.startup.mode' = 'timestamp' finds its binlog file by the files' start times and skips
//! whole transactions committed before the requested second ([`stream`]).
//!
//! Monitoring ([`progress`]): snapshot chunks and tables, the binlog position, event times and
//! changelog rows, kept as batches are handed out.
//!
//! On MariaDB a streaming position is resumed from its GTID position (which survives a failover
//! to a replica); during the incremental snapshot and on MySQL from file and offset.
//!
//! A change of a captured table's columns (DDL) is an [`Event::SchemaChanged`] before the
//! table's next row in its new shape; the declared columns go on being read.
//!
//! Limits: tables whose chunk key is not an integer are snapshotted as one chunk; a table is
//! described from the server, not from the binlog's DDL history, so events of a table from before
//! a later ALTER stop the job with an error; GTID start and resume
//! positions are MariaDB's (MySQL uses file and position).

mod binary_text;
mod builders;
mod cell;
mod charset;
mod charset_tables;
mod config;
mod discovered;
mod legacy;
mod pipeline;
mod position;
mod progress;
mod rows;
mod schema;
mod server;
mod snapshot;
mod stream;

#[doc(hidden)]
pub use charset::decode_stored_text;
/// Flink CDC option texts postgres-cdc shares.
pub(crate) use config::{CHUNK_META, CHUNK_ORDER, CLOSE_IDLE_READERS, DEBEZIUM, NO_NEWLY_ADDED_TABLES, NO_POOL};
pub(crate) use pipeline::MySqlTables;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use mysql_async::prelude::Queryable;
use tokio::task::JoinSet;

use super::{
    Connector, ConnectorOptions, ConnectorTable, Position, ResumeFrom, SnapshotProgress, Source, SourceBatch,
    SourceContext, SourceIdentity, SourceProgress,
};
use crate::changelog::{ChangeBatch, ChangelogMode, Event};
use crate::error::{Error, Result};
use crate::sql::TableSpec;
use config::{MySqlCdcConfig, StartupMode};
use legacy::LegacySnapshot;
use position::{ChunkList, MySqlPosition};
use progress::ChunkCounts;
use rows::{ChangeBuilder, TableChanges};
use schema::{CapturedTable, Declared};
use server::BinlogPos;
use snapshot::{Chunk, ChunkContext, SnapshotFilter};
use stream::{BinlogReader, GtidState, KeepAll, RowFilter, StreamStart};

pub struct MySqlCdc;

impl Connector for MySqlCdc {
    fn name(&self) -> &'static str {
        "mysql-cdc"
    }

    fn metadata_keys(&self) -> &'static [&'static str] {
        &["database_name", "table_name", "op_ts", "row_kind"]
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        let config = MySqlCdcConfig::parse(spec, options, None)?;
        for column in &spec.columns {
            // Fail at planning time rather than at the first row.
            builders::ColumnBuilder::new(&column.name, &column.data_type, 0)?;
        }
        Ok(Box::new(MySqlCdcTable { config: Arc::new(config), spec: Arc::new(spec.clone()) }))
    }
}

struct MySqlCdcTable {
    config: Arc<MySqlCdcConfig>,
    spec: Arc<TableSpec>,
}

impl ConnectorTable for MySqlCdcTable {
    fn source(&self, ctx: &SourceContext) -> Result<Option<Box<dyn Source>>> {
        let source: Box<dyn Source> = Box::new(MySqlCdcSource {
            config: self.config.clone(),
            declared: Declared::Table(self.spec.clone()),
            schema: self.spec.schema(),
            batch_size: ctx.batch_size.max(1),
            state: State::NotStarted,
            events: 0,
            snapshot_done: None,
        });
        Ok(Some(if self.config.append_only { Box::new(super::append_only::AppendOnly(source)) } else { source }))
    }

    fn source_changelog_mode(&self) -> ChangelogMode {
        if self.config.startup == StartupMode::Snapshot || self.config.append_only {
            ChangelogMode::InsertOnly
        } else {
            ChangelogMode::All
        }
    }

    fn source_identity(&self) -> Option<SourceIdentity> {
        Some(self.config.source_identity())
    }
}

struct SnapshotRun {
    ctx: Arc<ChunkContext>,
    chunks: ChunkList,
    /// The captured tables' names as positions list them, built once rather than per batch.
    names: Vec<String>,
    /// Chunks and tables read and left, for [`Source::progress`].
    counts: ChunkCounts,
    /// Where streaming starts: before every chunk's low watermark.
    start: BinlogPos,
    gtid: GtidState,
    queue: VecDeque<usize>,
    running: JoinSet<(usize, Result<(ChangeBatch, BinlogPos)>)>,
    /// A read chunk larger than 'scan.snapshot.fetch.size', being handed out piece by piece.
    emitting: Option<Pieces>,
    /// This run continues a snapshot that an earlier run, maybe killed, began. That run may
    /// have delivered an unfinished chunk already, read at an older point that no checkpoint
    /// covers; rows it held that are gone since are not in the new read. So a chunk read now
    /// gets the snapshot's start as its watermark: every change to its keys since then is
    /// streamed after its rows, the deletes retracting such rows among them.
    stream_chunks_from_start: bool,
}

/// The rows of chunk `index`, sorted by key and cut into key ranges. While pieces remain, the
/// chunk's entry records the part handed out (done at `high`) and one more entry, the last of
/// the list, the rest (to read again after a restart).
struct Pieces {
    index: usize,
    original: Chunk,
    high: BinlogPos,
    rows: RecordBatch,
    /// Row offsets where pieces start, with their first key.
    cuts: VecDeque<(usize, i128)>,
    next: usize,
    rest_entry: Option<usize>,
}

impl Pieces {
    /// The next piece, updating the chunk list to say what has been handed out.
    fn take(&mut self, chunks: &mut ChunkList) -> ChangeBatch {
        let (end, boundary) = match self.cuts.pop_front() {
            Some((at, key)) => (at, Some(key)),
            None => (self.rows.num_rows(), None),
        };
        let piece = ChangeBatch::inserts(self.rows.slice(self.next, end - self.next));
        self.next = end;
        let done = Chunk { hi: boundary.or(self.original.hi), high: Some(self.high.clone()), ..self.original.clone() };
        chunks.set(self.index, done);
        let rest = |lo: i128| Chunk { lo: Some(lo), high: None, ..self.original.clone() };
        match (boundary, self.rest_entry) {
            (Some(key), Some(entry)) => chunks.set(entry, rest(key)),
            (Some(key), None) => {
                self.rest_entry = Some(chunks.len());
                chunks.push(rest(key));
            }
            // Nothing else joins the list while pieces are handed out: the rest is its last entry.
            (None, Some(_)) => chunks.pop(),
            (None, None) => {}
        }
        piece
    }

    fn finished(&self) -> bool {
        self.next == self.rows.num_rows()
    }
}

struct StreamRun {
    reader: BinlogReader,
    /// Chunks whose rows the snapshot already delivered, while the stream is before their watermarks.
    snapshot: Option<StreamedSnapshot>,
    changes: TableChanges,
}

struct StreamedSnapshot {
    names: Vec<String>,
    chunks: ChunkList,
    filter: SnapshotFilter,
}

struct LegacyRun {
    snapshot: LegacySnapshot,
    tables: Vec<Arc<CapturedTable>>,
}

enum State {
    NotStarted,
    Snapshot(Box<SnapshotRun>),
    Legacy(Box<LegacyRun>),
    Streaming(Box<StreamRun>),
    Done,
}

struct MySqlCdcSource {
    config: Arc<MySqlCdcConfig>,
    declared: Declared,
    /// The declared table's columns; none when each table is read into its own.
    schema: SchemaRef,
    batch_size: usize,
    state: State,
    /// Changelog rows handed out by this run, snapshot and binlog alike.
    events: u64,
    /// The snapshot this run read or continued, once it is complete (still reported while
    /// streaming).
    snapshot_done: Option<SnapshotProgress>,
}

/// The names of `tables` as positions list them.
fn table_names(tables: &[Arc<CapturedTable>]) -> Vec<String> {
    tables.iter().map(|t| format!("{}.{}", t.database, t.table)).collect()
}

/// A legacy snapshot's position: where it started, marked as still snapshotting.
fn legacy_position(snapshot: &LegacySnapshot) -> Position {
    MySqlPosition { legacy_snapshot: true, ..MySqlPosition::at(&snapshot.start, &snapshot.gtid) }.to_position()
}

/// The incremental snapshot's progress: where it started and the chunk list with each finished
/// chunk's high watermark. Built for every batch of the snapshot (see
/// [`MySqlPosition::to_position`] for what keeps that cheap).
fn snapshot_position(run: &SnapshotRun) -> Position {
    MySqlPosition::at(&run.start, &run.gtid).with_chunks(&run.names, &run.chunks).to_position()
}

fn stream_position(run: &StreamRun) -> Position {
    let position = MySqlPosition {
        skip_before_second: run.reader.skipping_before(),
        ..MySqlPosition::at(&run.reader.committed, &run.reader.gtid)
    };
    match &run.snapshot {
        Some(s) => position.with_chunks(&s.names, &s.chunks),
        None => position,
    }
    .to_position()
}

impl MySqlCdcSource {
    async fn begin_snapshot(
        &mut self,
        tables: Vec<Arc<CapturedTable>>,
        chunks: Vec<Chunk>,
        start: BinlogPos,
        gtid: GtidState,
        version: server::ServerVersion,
        stream_chunks_from_start: bool,
    ) -> Result<()> {
        let parallelism = self.config.snapshot_parallelism;
        let pool_opts = mysql_async::PoolOpts::default()
            .with_constraints(mysql_async::PoolConstraints::new(0, parallelism).unwrap_or_default());
        let pool = mysql_async::Pool::new(server::connect_opts(&self.config).pool_opts(pool_opts));
        let (first, last) = self.config.server_ids;
        let locks = ((last - first) as usize).max(1);
        let queue = chunks.iter().enumerate().filter(|(_, c)| c.high.is_none()).map(|(i, _)| i).collect();
        let counts = ChunkCounts::new(&chunks, tables.len());
        let chunks = ChunkList::new(chunks);
        let names = table_names(&tables);
        let ctx = Arc::new(ChunkContext {
            config: self.config.clone(),
            declared: self.declared.clone(),
            tables,
            pool,
            mariadb: version.mariadb,
            version,
            backfill_locks: (0..locks).map(|_| tokio::sync::Mutex::new(())).collect(),
            own_sessions: std::sync::atomic::AtomicBool::new(true),
            idle_sessions: std::sync::Mutex::new(Vec::new()),
        });
        self.state = State::Snapshot(Box::new(SnapshotRun {
            ctx,
            chunks,
            names,
            counts,
            start,
            gtid,
            queue,
            running: JoinSet::new(),
            emitting: None,
            stream_chunks_from_start,
        }));
        Ok(())
    }

    /// Opens the binlog at `start`; `chunks` are the incremental snapshot's (their rows are
    /// skipped up to their watermarks), `skip_before` a 'timestamp' start's second.
    async fn begin_streaming(
        &mut self,
        tables: Vec<Arc<CapturedTable>>,
        start: StreamStart,
        gtid: GtidState,
        chunks: Option<Vec<Chunk>>,
        skip_before: Option<u32>,
    ) -> Result<()> {
        let mut reader = BinlogReader::open(
            self.config.clone(),
            self.declared.clone(),
            &tables,
            start,
            self.config.binlog_server_id(),
            false,
            gtid,
        )
        .await?;
        if let Some(second) = skip_before {
            reader.skip_transactions_before(second);
        }
        let snapshot = chunks.and_then(|chunks| {
            let filter = SnapshotFilter::new(&tables, &chunks)?;
            Some(StreamedSnapshot { names: table_names(&tables), chunks: ChunkList::new(chunks), filter })
        });
        let changes = TableChanges::new(self.config.server_time_zone, self.batch_size);
        self.state = State::Streaming(Box::new(StreamRun { reader, snapshot, changes }));
        Ok(())
    }

    /// A batch of no changes at `position`: for a declared table an empty batch of its columns,
    /// as its readers expect one; otherwise no event at all, there being no one set of columns.
    fn no_changes(&self, position: Position) -> Result<SourceBatch> {
        match &self.declared {
            Declared::Table(_) => {
                let empty = ChangeBuilder::new(self.schema.clone(), self.config.server_time_zone, 0)?.finish()?;
                Ok(SourceBatch::new(empty, position))
            }
            Declared::PerTable(_) => Ok(SourceBatch { events: Vec::new(), position }),
        }
    }

    async fn next_snapshot_batch(&mut self) -> Result<Option<SourceBatch>> {
        let fetch = self.config.fetch_size;
        let State::Snapshot(run) = &mut self.state else { return Err(Error::internal("snapshot state expected")) };
        // Readers are kept busy while a finished chunk is handed out in pieces: started only
        // after its last piece, the next chunk's query left the server idle for that long.
        while run.running.len() < self.config.snapshot_parallelism {
            let Some(index) = run.queue.pop_front() else { break };
            let ctx = run.ctx.clone();
            let chunk = run.chunks[index].clone();
            run.running.spawn(async move { (index, snapshot::read_chunk(ctx, chunk, index).await) });
        }
        if let Some(pieces) = run.emitting.as_mut() {
            let changes = pieces.take(&mut run.chunks);
            let table = run.ctx.tables[pieces.original.table].id.clone();
            if pieces.finished() {
                run.counts.chunk_done(pieces.original.table);
                run.emitting = None;
            }
            return Ok(Some(SourceBatch {
                events: vec![Event::Changes { table, changes }],
                position: snapshot_position(run),
            }));
        }
        match run.running.join_next().await {
            Some(joined) => {
                let (index, result) = joined.map_err(|e| Error::internal(format!("snapshot reader failed: {e}")))?;
                let (batch, high) = result?;
                let high = if run.stream_chunks_from_start { run.start.clone() } else { high };
                let table = run.ctx.tables[run.chunks[index].table].clone();
                let split = match table.declared_chunk_key() {
                    Some(key) if batch.num_rows() > fetch => snapshot::split_by_key(batch.rows(), key, fetch)?,
                    _ => None,
                };
                let changes = match split {
                    Some((rows, cuts)) => {
                        let mut pieces = Pieces {
                            index,
                            original: run.chunks[index].clone(),
                            high,
                            rows,
                            cuts: cuts.into(),
                            next: 0,
                            rest_entry: None,
                        };
                        let first = pieces.take(&mut run.chunks);
                        if pieces.finished() {
                            run.counts.chunk_done(pieces.original.table);
                        } else {
                            run.emitting = Some(pieces);
                        }
                        first
                    }
                    None => {
                        run.counts.chunk_done(run.chunks[index].table);
                        run.chunks.set(index, Chunk { high: Some(high), ..run.chunks[index].clone() });
                        batch
                    }
                };
                let events = vec![Event::Changes { table: table.id.clone(), changes }];
                Ok(Some(SourceBatch { events, position: snapshot_position(run) }))
            }
            None => {
                // Every chunk is read.
                run.ctx.pool.clone().disconnect().await.ok();
                self.snapshot_done = Some(run.counts.progress(true));
                if self.config.startup == StartupMode::Snapshot {
                    self.state = State::Done;
                    return Ok(None);
                }
                let position = snapshot_position(run);
                let tables = run.ctx.tables.clone();
                let chunks = run.chunks.to_vec();
                let (start, gtid) = (run.start.clone(), run.gtid.clone());
                self.begin_streaming(tables, StreamStart::File(start), gtid, Some(chunks), None).await?;
                self.no_changes(position).map(Some)
            }
        }
    }

    async fn next_legacy_batch(&mut self) -> Result<Option<SourceBatch>> {
        let State::Legacy(run) = &mut self.state else { return Err(Error::internal("legacy snapshot state expected")) };
        if let Some(changes) = run.snapshot.next().await? {
            return Ok(Some(SourceBatch::new(changes, legacy_position(&run.snapshot))));
        }
        let tables = std::mem::take(&mut run.tables);
        let (start, gtid) = (run.snapshot.start.clone(), run.snapshot.gtid.clone());
        let (done, total) = run.snapshot.tables();
        self.snapshot_done = Some(progress::legacy_progress(done, total, true));
        if self.config.startup == StartupMode::Snapshot {
            // The last position says the snapshot is complete (no legacy marker): where it was
            // taken, from which a streaming run of the same tables continues without a gap.
            self.state = State::Done;
            return self.no_changes(MySqlPosition::at(&start, &gtid).to_position()).map(Some);
        }
        tracing::info!(table = %self.config.table, %start, "legacy snapshot done; streaming the binlog from its position");
        let position = MySqlPosition::at(&start, &gtid).to_position();
        self.begin_streaming(tables, StreamStart::File(start), gtid, None, None).await?;
        self.no_changes(position).map(Some)
    }

    async fn next_stream_batch(&mut self) -> Result<Option<SourceBatch>> {
        let State::Streaming(run) = &mut self.state else { return Err(Error::internal("streaming state expected")) };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut events = Vec::new();
        // Committed changes are in hand: they leave as soon as no further event is already
        // waiting on the socket. Under load one always is, and batches still fill.
        let mut committed_changes = false;
        loop {
            let now = tokio::time::Instant::now();
            let open = run.reader.in_transaction();
            if now >= deadline && !open {
                break;
            }
            let wait = if open {
                Duration::from_secs(5)
            } else if committed_changes {
                // A zero timeout still polls the stream once: an event already read or waiting
                // in the socket is taken, nothing is waited for.
                Duration::ZERO
            } else {
                deadline - now
            };
            let filter: &dyn RowFilter = match &run.snapshot {
                Some(s) => &s.filter,
                None => &KeepAll,
            };
            let step = run.reader.next(wait, &mut run.changes, filter).await?;
            let schema_changes = run.reader.take_schema_changes();
            if !schema_changes.is_empty() {
                // The rows read so far are of the tables' old shape: they go first.
                events.extend(run.changes.take()?);
                events.extend(schema_changes.into_iter().map(Event::SchemaChanged));
            }
            match step {
                None if open => {}
                None => break,
                Some(stream::Step::Commit) if run.changes.len() >= self.batch_size => break,
                Some(stream::Step::Commit) => committed_changes = run.changes.len() > 0 || !events.is_empty(),
                Some(_) => {}
            }
        }
        if run.snapshot.as_ref().is_some_and(|s| run.reader.committed >= s.filter.max_high) {
            run.snapshot = None;
        }
        events.extend(run.changes.take()?);
        let position = stream_position(run);
        if events.is_empty() {
            return self.no_changes(position).map(Some);
        }
        Ok(Some(SourceBatch { events, position }))
    }

    async fn start_fresh(&mut self, conn: &mut mysql_async::Conn, tables: Vec<Arc<CapturedTable>>) -> Result<()> {
        let version = server::server_version(&self.config, conn).await?;
        let mariadb = version.mariadb;
        if self.config.startup.snapshots() && !self.config.incremental {
            let Declared::Table(spec) = &self.declared else {
                return Err(Error::internal("a source of tables in their own columns reached the legacy snapshot"));
            };
            let snapshot = LegacySnapshot::begin(self.config.clone(), spec.clone(), tables.clone(), version).await?;
            self.state = State::Legacy(Box::new(LegacyRun { snapshot, tables }));
            return Ok(());
        }
        let (start, skip_before) = match self.config.startup.clone() {
            StartupMode::Initial | StartupMode::Snapshot => {
                let start = if mariadb {
                    let start = server::consistent_snapshot_position(&self.config, conn).await?;
                    conn.query_drop("COMMIT")
                        .await
                        .map_err(|e| server::server_error(&self.config, "ending a snapshot transaction", e))?;
                    start
                } else {
                    server::current_position(&self.config, conn, version).await?
                };
                let gtid = if mariadb {
                    server::mariadb_gtid_at(&self.config, conn, &start).await?
                } else {
                    GtidState::default()
                };
                let mut chunks = Vec::new();
                for (i, t) in tables.iter().enumerate() {
                    chunks.extend(snapshot::plan_chunks(&self.config, conn, i, t).await?);
                }
                return self.begin_snapshot(tables, chunks, start, gtid, version, false).await;
            }
            StartupMode::SpecificGtid(g) => {
                let gtid = GtidState::parse(&g).ok_or_else(|| {
                    Error::user(format!(
                        "'scan.startup.specific-offset.gtid-set' = '{g}' of table `{}` is not a MariaDB GTID position such as '0-1-42' (domain-server-sequence, comma-separated per domain)",
                        self.config.table
                    ))
                })?;
                return self.begin_streaming(tables, StreamStart::MariaDbGtid(g), gtid, None, None).await;
            }
            StartupMode::LatestOffset => (server::current_position(&self.config, conn, version).await?, None),
            StartupMode::EarliestOffset => (server::earliest_position(&self.config, conn).await?, None),
            StartupMode::SpecificFile { file, pos } => (BinlogPos { file, pos }, None),
            StartupMode::Timestamp { millis } => {
                let second = (millis / 1000) as u32;
                (self.timestamp_start(conn, millis, second).await?, Some(second))
            }
        };
        server::check_position_available(&self.config, conn, &start).await?;
        let gtid =
            if mariadb { server::mariadb_gtid_at(&self.config, conn, &start).await? } else { GtidState::default() };
        self.begin_streaming(tables, StreamStart::File(start), gtid, None, skip_before).await
    }

    /// Where a 'timestamp' start reads from: the start of the last binlog file begun before
    /// `second`; the reader then skips the transactions committed before it.
    async fn timestamp_start(&self, conn: &mut mysql_async::Conn, millis: i64, second: u32) -> Result<BinlogPos> {
        let config = &self.config;
        let files = server::binlog_files(config, conn).await?;
        let id = config.binlog_server_id();
        let started = |i: usize| server::binlog_file_started(config, id, &files[i]);
        let Some(index) = server::last_file_started_before(files.len(), second, started).await? else {
            let oldest = match files.first() {
                Some(file) => {
                    let at = server::binlog_file_started(config, id, file).await?;
                    format!("its oldest binlog file, {file}, was started at {} (epoch second {at})", utc(at))
                }
                None => "it has no binlog files".to_string(),
            };
            return Err(Error::user(format!(
                "MySQL server {}:{} (table `{}`) cannot start from 'scan.startup.timestamp-millis' = {} ({}): {oldest}, so changes committed from that second on may have been purged with older files. Choose a later timestamp, 'earliest-offset' (everything the server still has) or 'initial' (a new snapshot)",
                config.hostname,
                config.port,
                config.table,
                millis,
                utc(second)
            )));
        };
        let now: Option<u64> = conn
            .query_first("SELECT UNIX_TIMESTAMP()")
            .await
            .map_err(|e| server::server_error(config, "reading the server's clock", e))?;
        if now.is_some_and(|now| u64::from(second) > now) {
            tracing::warn!(table = %config.table, from = %utc(second), "'scan.startup.timestamp-millis' is ahead of the server's clock: no change is read until transactions commit at that time");
        }
        tracing::info!(table = %config.table, file = %files[index], from = %utc(second), "starting from a timestamp");
        Ok(BinlogPos { file: files[index].clone(), pos: 4 })
    }

    async fn resume(
        &mut self,
        conn: &mut mysql_async::Conn,
        tables: Vec<Arc<CapturedTable>>,
        from: &ResumeFrom,
    ) -> Result<()> {
        let p = MySqlPosition::from_position(&from.position, &self.config.table)?;
        if p.legacy_snapshot && from.stateful {
            return Err(Error::user(format!(
                "mysql-cdc table `{}` cannot resume its interrupted legacy snapshot ('scan.incremental.snapshot.enabled' \
                 = 'false') under a stateful query (GROUP BY, DISTINCT, UNION, JOIN, Top-N): it is read again from the \
                 start, and rows the checkpoint's state already holds would be counted twice. Start the job over with \
                 --fresh, or use the incremental snapshot, which resumes exactly",
                self.config.table
            )));
        }
        if p.legacy_snapshot {
            tracing::warn!(table = %self.config.table, "the legacy snapshot was interrupted; it cannot continue where it stopped, so it is read again from the start (keyed sinks overwrite the rows they have; others receive them twice)");
            return self.start_fresh(conn, tables).await;
        }
        let binlog = p.binlog();
        if self.config.startup == StartupMode::Snapshot && p.snapshot.is_none() {
            // Snapshot mode writes such a position only when its legacy snapshot is complete.
            self.state = State::Done;
            return Ok(());
        }
        let gtid = p.gtid.into_owned();
        let skip_before = p.skip_before_second;
        if p.snapshot.is_none() && !gtid.is_empty() && server::server_version(&self.config, conn).await?.mariadb {
            // A GTID names the same transaction on every server of a replication topology and
            // in renamed binlog files; file and offset do not. (Chunk watermarks during a
            // snapshot are file offsets, so those positions stay on file and offset.)
            server::check_gtid_available(&self.config, conn, &gtid).await?;
            tracing::info!(table = %self.config.table, %gtid, "resuming from the GTID position");
            let start = StreamStart::MariaDbGtid(gtid.to_string());
            return self.begin_streaming(tables, start, gtid, None, skip_before).await;
        }
        server::check_position_available(&self.config, conn, &binlog).await?;
        let Some(snap) = p.snapshot else {
            return self.begin_streaming(tables, StreamStart::File(binlog), gtid, None, skip_before).await;
        };
        // Chunk indices refer to the table list of the position; map them to today's tables.
        let mut ordered = Vec::with_capacity(snap.tables.len());
        for name in snap.tables.iter() {
            let table = tables.iter().find(|t| format!("{}.{}", t.database, t.table) == *name).ok_or_else(|| {
                Error::user(format!(
                    "mysql-cdc table `{}` cannot resume its snapshot: MySQL table {name} no longer exists or no longer matches; start the job over with --fresh to take a new snapshot",
                    self.config.table
                ))
            })?;
            ordered.push(table.clone());
        }
        let chunks = snap.chunks.to_vec();
        if let Some(c) = chunks.iter().find(|c| c.table >= ordered.len()) {
            return Err(Error::user(format!(
                "mysql-cdc table `{}` cannot resume from position {}: a chunk refers to table number {} of the {} it lists; it is not a position this connector writes. Start the job over with --fresh",
                self.config.table,
                from.position,
                c.table,
                ordered.len()
            )));
        }
        if chunks.iter().any(|c| c.high.is_none()) {
            if !self.config.incremental {
                return Err(Error::user(format!(
                    "mysql-cdc table `{}` cannot resume: its checkpoint was taken during the incremental snapshot, which 'scan.incremental.snapshot.enabled' = 'false' cannot continue (it matches binlog changes to chunks by key); set the option back to 'true' until the snapshot is done, or start the job over with --fresh",
                    self.config.table
                )));
            }
            let version = server::server_version(&self.config, conn).await?;
            // After a graceful stop no unfinished chunk was delivered: read them exactly. So too
            // under a stateful query, whose state holds only what the position covers: a chunk's
            // changes streamed from the snapshot's start would count its rows twice (what a killed
            // run delivered past the checkpoint its sink may keep, see docs/connectors/mysql-cdc.md).
            self.begin_snapshot(ordered, chunks, binlog, gtid, version, !from.exact && !from.stateful).await
        } else if self.config.startup == StartupMode::Snapshot {
            self.snapshot_done = Some(ChunkCounts::new(&chunks, ordered.len()).progress(true));
            self.state = State::Done;
            Ok(())
        } else {
            self.snapshot_done = Some(ChunkCounts::new(&chunks, ordered.len()).progress(true));
            // Every chunk is read (by this job in 'initial' mode, or by a finished 'snapshot'
            // run it continues): stream on from the position, at first where the snapshot
            // began, each chunk's changes skipped up to the binlog point its rows were read at,
            // so nothing is lost or repeated.
            tracing::info!(table = %self.config.table, from = %binlog, "the snapshot is complete; streaming the binlog, skipping per chunk the changes its rows already hold");
            self.begin_streaming(ordered, StreamStart::File(binlog), gtid, Some(chunks), None).await
        }
    }
}

/// An epoch second as UTC date and time, for messages.
fn utc(second: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(second), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| second.to_string())
}

#[async_trait]
impl Source for MySqlCdcSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn is_bounded(&self) -> bool {
        self.config.startup == StartupMode::Snapshot
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        let mut conn = server::connect(&self.config).await?;
        let result = async {
            server::check_server(&self.config, &mut conn).await?;
            let tables = server::discover_tables(&self.config, &self.declared, &mut conn).await?;
            match &resume_from {
                Some(p) => self.resume(&mut conn, tables, p).await,
                None => self.start_fresh(&mut conn, tables).await,
            }
        }
        .await;
        conn.disconnect().await.ok();
        result
    }

    fn start_position(&self) -> Option<Position> {
        match &self.state {
            State::Snapshot(run) => Some(snapshot_position(run)),
            State::Legacy(run) => Some(legacy_position(&run.snapshot)),
            // A stream started from a GTID learns its file and offset from the first event.
            State::Streaming(run) if !run.reader.committed.file.is_empty() => Some(stream_position(run)),
            _ => None,
        }
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        let batch = match &self.state {
            State::NotStarted => Err(Error::internal("mysql-cdc read before start")),
            State::Snapshot(_) => self.next_snapshot_batch().await,
            State::Legacy(_) => self.next_legacy_batch().await,
            State::Streaming(_) => self.next_stream_batch().await,
            State::Done => Ok(None),
        }?;
        if let Some(batch) = &batch {
            for event in &batch.events {
                if let Event::Changes { changes, .. } = event {
                    self.events += changes.num_rows() as u64;
                }
            }
        }
        Ok(batch)
    }

    /// What is known without asking the server: snapshot chunks and tables, the binlog position
    /// reached (file:pos, and the GTID position on MariaDB), the newest change's event time and
    /// fetch lag, and the changelog rows handed out.
    fn progress(&self) -> Option<SourceProgress> {
        let events = Some(self.events);
        match &self.state {
            State::Snapshot(run) => Some(SourceProgress {
                snapshot: Some(run.counts.progress(false)),
                position: Some(run.counts.describe()),
                events,
                ..SourceProgress::default()
            }),
            State::Legacy(run) => {
                let (done, total) = run.snapshot.tables();
                Some(SourceProgress {
                    snapshot: Some(progress::legacy_progress(done, total, false)),
                    position: Some(format!("snapshot, {done}/{total} tables")),
                    events,
                    ..SourceProgress::default()
                })
            }
            State::Streaming(run) => Some(SourceProgress {
                event_time_ms: run.reader.last_event.map(|e| e.event_ms),
                fetch_event_time_lag_ms: run.reader.last_event.map(|e| e.fetch_lag_ms),
                snapshot: self.snapshot_done.clone(),
                position: Some(progress::describe_binlog(&run.reader.committed, &run.reader.gtid)),
                events,
                ..SourceProgress::default()
            }),
            // A bounded snapshot that ended: its final counts.
            State::Done => self.snapshot_done.clone().map(|snapshot| SourceProgress {
                snapshot: Some(snapshot),
                events,
                ..SourceProgress::default()
            }),
            State::NotStarted => None,
        }
    }

    async fn close(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Streaming(mut run) => run.reader.close().await,
            State::Snapshot(mut run) => {
                run.running.abort_all();
                run.ctx.pool.clone().disconnect().await.ok();
            }
            State::Legacy(run) => run.snapshot.close().await,
            _ => {}
        }
        Ok(())
    }
}
