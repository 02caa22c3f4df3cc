//! The source: checks, then the snapshot (see [`super::snapshot`]), then pgoutput changes from
//! the replication slot as changelog batches tagged with resumable positions
//! ([`super::position`]):
//!
//! * snapshot positions while the snapshot runs (progress only: a restart reads the tables
//!   again, then streams from the slot, which has not moved), marked bounded in 'snapshot' mode,
//!   whose run has no slot: no streaming run can continue from it;
//! * stream positions afterwards, at an LSN before which every committed transaction is in this
//!   or an earlier batch. Resuming asks the server to start there, and the slot's confirmed LSN
//!   is raised to it only by [`Source::acknowledge`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::changes::{RowContext, Rows};
use super::checks::{self, pg_error, CapturedTable};
use super::pgoutput::{self, format_lsn, parse_lsn, Cell, Message, OldTuple, Relation};
use super::position::{Lsn, PgPosition};
use super::publication;
use super::replication::{ReplicationStream, SlotSession, WalMessage};
use super::snapshot::{self, SnapshotEvent};
use super::values::{FloatSource, PG_EPOCH_MICROS};
use super::{Columns, Config, StartupMode, TruncateMode};
use crate::changelog::{ChangeBatch, ChangelogMode, Event, RowKind, SchemaChange, SourceColumn, Truncation};
use crate::connectors::{Position, ResumeFrom, SnapshotProgress, Source, SourceBatch, SourceProgress};
use crate::error::{Error, Result};

/// How long an idle stream waits before handing the runtime an empty batch with its position.
const IDLE_RETURN: Duration = Duration::from_secs(1);
/// How long a batch may wait for the commit of the transaction it holds part of.
const OPEN_TRANSACTION_RETURN: Duration = Duration::from_secs(5);
/// Unconfirmed WAL the slot holds back before a warning (at most once a minute).
const SLOT_LAG_WARNING_BYTES: u64 = 256 * 1024 * 1024;
/// How long closing waits for the last confirmation to be sent (status updates go out every
/// 200 ms).
const FINAL_CONFIRMATION_WAIT: Duration = Duration::from_secs(3);

pub struct PostgresCdcSource {
    config: Arc<Config>,
    batch_size: usize,
    phase: Phase,
    /// Shared with the table: whether a job of this process created or streamed from the slot
    /// and has not dropped it.
    left_behind: Arc<AtomicBool>,
    /// The snapshot this run read, once it is done (still reported while streaming).
    snapshot_done: Option<SnapshotProgress>,
    /// Checkpointed LSNs the slot does not confirm yet ('scan.lsn-commit.checkpoints-num-delay').
    delayed: DelayedAcks,
}

/// Flink CDC's `scan.lsn-commit.checkpoints-num-delay`: of the LSNs of completed checkpoints,
/// the one `delay` checkpoints before the newest is the one to confirm, so that the WAL after an
/// older retained checkpoint stays on the server and that checkpoint stays resumable.
#[derive(Debug, Default)]
struct DelayedAcks {
    delay: usize,
    pending: VecDeque<u64>,
}

impl DelayedAcks {
    /// The LSN of a newly completed checkpoint; returns the one to confirm now, if any.
    fn completed(&mut self, lsn: u64) -> Option<u64> {
        self.pending.push_back(lsn);
        if self.pending.len() > self.delay {
            self.pending.pop_front()
        } else {
            None
        }
    }
}

enum Phase {
    NotStarted,
    Snapshot(Box<SnapshotRun>),
    Streaming(Box<Streaming>),
    Finished,
}

/// What keeps the exported snapshot alive until every chunk is read.
enum SnapshotHolder {
    /// The replication session that created the slot; it starts streaming afterwards.
    Slot(SlotSession),
    /// An ordinary transaction (`pg_export_snapshot()`): bounded runs, and a snapshot read again
    /// after a restart (then streaming resumes from the slot's confirmed LSN).
    Transaction(tokio_postgres::Client),
}

struct SnapshotRun {
    holder: SnapshotHolder,
    events: mpsc::Receiver<Result<SnapshotEvent>>,
    tables: Vec<CapturedTable>,
    /// Chunks still to read, by table (`schema.name`).
    chunks_left: HashMap<String, usize>,
    chunks_total: usize,
    chunks_done: usize,
    rows: u64,
    /// Where streaming starts once the snapshot is read; `None` for a bounded run.
    stream_from: Option<u64>,
}

impl PostgresCdcSource {
    pub fn new(config: Arc<Config>, batch_size: usize, left_behind: Arc<AtomicBool>) -> Self {
        let delayed = DelayedAcks { delay: config.lsn_commit_delay, pending: VecDeque::new() };
        PostgresCdcSource { config, batch_size, phase: Phase::NotStarted, left_behind, snapshot_done: None, delayed }
    }
}

/// A new replication session streaming from `from`.
async fn stream_from(config: &Arc<Config>, from: u64) -> Result<ReplicationStream> {
    SlotSession::connect(config.clone()).await?.start(from).await
}

impl SnapshotRun {
    fn progress(&self, finished: bool) -> SnapshotProgress {
        snapshot_progress(&self.chunks_left, self.chunks_done, self.chunks_total, finished)
    }
}

fn snapshot_progress(
    chunks_left: &HashMap<String, usize>,
    done: usize,
    total: usize,
    finished: bool,
) -> SnapshotProgress {
    let tables_done = chunks_left.values().filter(|left| **left == 0).count() as u64;
    SnapshotProgress {
        tables_done,
        tables_remaining: chunks_left.len() as u64 - tables_done,
        chunks_done: done as u64,
        chunks_remaining: total.saturating_sub(done) as u64,
        finished,
    }
}

impl PostgresCdcSource {
    fn snapshot_position(config: &Config, run: &SnapshotRun) -> Position {
        PgPosition::Snapshot {
            slot: config.slot.clone(),
            chunks_done: run.chunks_done,
            chunks_total: run.chunks_total,
            rows: run.rows,
            bounded: config.is_bounded(),
        }
        .to_position()
    }

    async fn begin_snapshot(
        &mut self,
        holder: SnapshotHolder,
        name: String,
        tables: Vec<CapturedTable>,
        stream_from: Option<u64>,
    ) -> Result<()> {
        let (chunks_left, events) = snapshot::start(self.config.clone(), name, &tables, self.batch_size).await?;
        let chunks_total = chunks_left.values().sum();
        self.phase = Phase::Snapshot(Box::new(SnapshotRun {
            holder,
            events,
            tables,
            chunks_left,
            chunks_total,
            chunks_done: 0,
            rows: 0,
            stream_from,
        }));
        Ok(())
    }

    /// Reads every table under a fresh snapshot of an ordinary transaction.
    async fn snapshot_in_transaction(&mut self, tables: Vec<CapturedTable>, stream_from: Option<u64>) -> Result<()> {
        let config = self.config.clone();
        let exporter = checks::connect(&config).await?;
        exporter
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| pg_error(&config, "opening the snapshot transaction", e))?;
        let name: String = exporter
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| pg_error(&config, "exporting a snapshot", e))?
            .get(0);
        self.begin_snapshot(SnapshotHolder::Transaction(exporter), name, tables, stream_from).await
    }

    fn stream(&mut self, wal: ReplicationStream, tables: Vec<CapturedTable>, from: u64) -> Result<()> {
        self.left_behind.store(true, Ordering::Relaxed);
        let rows = Rows::new(&self.config.columns, self.batch_size)?;
        tracing::info!(table = %self.config.table, slot = %self.config.slot, lsn = %format_lsn(from), "postgres-cdc streaming");
        let state = StreamState {
            config: self.config.clone(),
            tables: tables.into_iter().map(Arc::new).collect(),
            relations: HashMap::new(),
            rows,
            in_transaction: false,
            commit_millis: 0,
            committed: from,
            idle: from,
            acked: from,
            last_lag_warning: None,
            server_wal_end: None,
            transaction_fetch_lag_ms: 0,
            batch_event: None,
            last_event_ms: None,
            fetch_lag_ms: None,
            origins: self.config.keeps_captured_rows().then(RowOrigins::default),
            leading: Vec::new(),
            deferred: Vec::new(),
        };
        self.phase = Phase::Streaming(Box::new(Streaming { wal, state }));
        Ok(())
    }

    async fn slot_confirmed_lsn(&self, client: &tokio_postgres::Client) -> Result<u64> {
        let row = client
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.config.slot],
            )
            .await
            .map_err(|e| pg_error(&self.config, "reading the slot's confirmed LSN", e))?;
        let text: Option<String> = row.get(0);
        text.as_deref().and_then(parse_lsn).ok_or_else(|| {
            Error::user(format!(
                "replication slot '{}' has no confirmed LSN yet; drop it and start again",
                self.config.slot
            ))
        })
    }

    async fn finish_snapshot(&mut self) -> Result<Option<SourceBatch>> {
        let Phase::Snapshot(run) = std::mem::replace(&mut self.phase, Phase::Finished) else {
            return Err(Error::internal("postgres-cdc snapshot finished outside the snapshot phase"));
        };
        let run = *run;
        if run.chunks_done != run.chunks_total {
            return Err(Error::internal(format!(
                "postgres-cdc snapshot ended after {} of {} chunks",
                run.chunks_done, run.chunks_total
            )));
        }
        tracing::info!(table = %self.config.table, rows = run.rows, "postgres-cdc snapshot finished");
        self.snapshot_done = Some(run.progress(true));
        let Some(from) = run.stream_from else {
            if let SnapshotHolder::Transaction(client) = run.holder {
                client.batch_execute("COMMIT").await.map_err(|e| pg_error(&self.config, "ending the snapshot", e))?;
            }
            return Ok(None);
        };
        let stream = match run.holder {
            SnapshotHolder::Slot(session) => session.start(from).await?,
            SnapshotHolder::Transaction(client) => {
                drop(client);
                stream_from(&self.config, from).await?
            }
        };
        self.stream(stream, run.tables, from)?;
        let position = stream_position(&self.config, from);
        Ok(Some(match &self.config.columns {
            Columns::Declared(shape) => {
                SourceBatch::new(ChangeBatch::inserts(RecordBatch::new_empty(shape.schema.clone())), position)
            }
            // Tables read into their own columns: a batch of no table's changes.
            Columns::PerTable => SourceBatch { events: Vec::new(), position },
        }))
    }
}

/// Why a streaming run cannot continue a 'snapshot' mode run. That run read under an exported
/// snapshot of an ordinary transaction and made no replication slot, so nothing kept the WAL from
/// its snapshot point (and logical decoding can start only at a slot's creation): the changes
/// since that snapshot are unreadable.
fn continuing_a_bounded_snapshot(config: &Config) -> Error {
    Error::user(format!(
        "postgres-cdc table `{}` cannot continue its checkpoint, taken by a 'scan.startup.mode' = 'snapshot' run, by          streaming: that run created no replication slot, so PostgreSQL kept no WAL from the point its snapshot was          taken and the changes made since cannot be read. Run the job with --fresh: it takes a new snapshot with          replication slot '{}' on {} and streams from it (keyed sinks overwrite the rows the snapshot run wrote)",
        config.table,
        config.slot,
        config.where_()
    ))
}

fn stream_position(config: &Config, lsn: u64) -> Position {
    PgPosition::Stream { slot: config.slot.clone(), lsn: Lsn(lsn) }.to_position()
}

#[async_trait]
impl Source for PostgresCdcSource {
    fn schema(&self) -> SchemaRef {
        match &self.config.columns {
            Columns::Declared(shape) => shape.schema.clone(),
            Columns::PerTable => Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        }
    }

    fn is_bounded(&self) -> bool {
        self.config.is_bounded()
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        let config = self.config.clone();
        // A snapshot is read again in full even after a graceful stop (nothing else is
        // aligned with the slot), so exactness changes nothing here.
        let resume = match resume_from.as_ref().map(|r| &r.position) {
            None => None,
            Some(p) => match PgPosition::from_position(p, &config.table)? {
                PgPosition::Snapshot { bounded: true, .. } if !config.is_bounded() => {
                    return Err(continuing_a_bounded_snapshot(&config));
                }
                PgPosition::Snapshot { .. } if resume_from.as_ref().is_some_and(|r| r.stateful) => {
                    return Err(Error::user(format!(
                        "postgres-cdc table `{}` cannot resume its interrupted snapshot under a stateful query (GROUP \
                         BY, DISTINCT, UNION): the snapshot is read again in full, and the rows the checkpoint's state \
                         already holds would be counted twice. Start the job over with --fresh (a keyed sink's rows are \
                         overwritten as the results come again)",
                        config.table
                    )))
                }
                PgPosition::Snapshot { .. } => Some(None),
                PgPosition::Stream { lsn, .. } if !config.is_bounded() => Some(Some(lsn.0)),
                PgPosition::Stream { .. } => {
                    return Err(Error::user(format!(
                    "postgres-cdc table `{}` reads a bounded snapshot ('scan.startup.mode' = 'snapshot') and cannot \
                         resume from streaming position {p}, taken by a streaming run. Start the job over with --fresh",
                    config.table
                )))
                }
            },
        };
        let client = checks::connect(&config).await?;
        checks::check_server(&config, &client).await?;
        let tables = checks::captured_tables(&config, &client).await?;
        if config.startup == StartupMode::Snapshot {
            return self.snapshot_in_transaction(tables, None).await;
        }
        let slot_exists = checks::check_slot(&config, &client, resume.is_some()).await?;
        // The publication is settled (created or extended, and committed) before the slot is
        // created, its snapshot exported or the current WAL end read below: pgoutput decodes each
        // change against the publication as it was when the change was written, so a table added
        // after the point this job streams from would have its changes in between never sent.
        // Where the stream starts at an existing slot's older position, what is added now cannot
        // cover that stretch; `StreamFrom` tells the publication which case this is.
        let from = match (&resume, config.startup) {
            (Some(Some(_)), _) | (None, StartupMode::CommittedOffset) => publication::StreamFrom::Slot,
            (Some(None), _) => publication::StreamFrom::SlotUnderNewSnapshot,
            (None, StartupMode::Initial) if slot_exists => publication::StreamFrom::SlotUnderNewSnapshot,
            // A new slot, or latest-offset's current WAL end.
            _ => publication::StreamFrom::Later,
        };
        publication::ensure_publication(&config, &client, &tables, from).await?;
        match resume {
            Some(Some(lsn)) => {
                let stream = stream_from(&config, lsn).await?;
                self.stream(stream, tables, lsn)
            }
            Some(None) => {
                let from = self.slot_confirmed_lsn(&client).await?;
                tracing::warn!(table = %config.table, "postgres-cdc resumes an interrupted snapshot: reading every table again, then streaming from the slot");
                self.snapshot_in_transaction(tables, Some(from)).await
            }
            // A job restarted without checkpointing, or killed between creating its slot and
            // storing where it started, comes back here. As after a kill mid-snapshot (and as
            // Flink CDC reuses an existing slot), read the tables again and stream from the
            // slot, which converges on keyed sinks.
            None if config.startup == StartupMode::Initial && slot_exists => {
                let from = self.slot_confirmed_lsn(&client).await?;
                tracing::warn!(
                    table = %config.table,
                    "replication slot '{}' exists but no checkpoint of this job does (an earlier run stopped before its first \
                     checkpoint, or another job made the slot): reading every table again, then streaming from the slot's \
                     confirmed LSN {}; changes after it are delivered again. Drop the slot before starting for a snapshot \
                     without repeated changes",
                    config.slot,
                    format_lsn(from)
                );
                self.snapshot_in_transaction(tables, Some(from)).await
            }
            None => match config.startup {
                StartupMode::Initial => {
                    let mut session = SlotSession::connect(config.clone()).await?;
                    let (consistent, name) = session.create_slot(true).await?;
                    self.left_behind.store(true, Ordering::Relaxed);
                    self.begin_snapshot(SnapshotHolder::Slot(session), name, tables, Some(consistent)).await
                }
                StartupMode::LatestOffset => {
                    let (session, from) = if slot_exists {
                        let row = client
                            .query_one("SELECT pg_current_wal_lsn()::text", &[])
                            .await
                            .map_err(|e| pg_error(&config, "reading the current WAL position", e))?;
                        let text: String = row.get(0);
                        let now =
                            parse_lsn(&text).ok_or_else(|| Error::external(format!("unreadable LSN '{text}'")))?;
                        (SlotSession::connect(config.clone()).await?, now)
                    } else {
                        let mut session = SlotSession::connect(config.clone()).await?;
                        let (consistent, _) = session.create_slot(false).await?;
                        self.left_behind.store(true, Ordering::Relaxed);
                        (session, consistent)
                    };
                    let stream = session.start(from).await?;
                    self.stream(stream, tables, from)
                }
                StartupMode::CommittedOffset => {
                    let from = self.slot_confirmed_lsn(&client).await?;
                    let stream = stream_from(&config, from).await?;
                    self.stream(stream, tables, from)
                }
                StartupMode::Snapshot => Err(Error::internal("bounded snapshot handled above")),
            },
        }
    }

    fn captured_row_key(&self) -> Option<Vec<usize>> {
        let Columns::Declared(shape) = &self.config.columns else { return None };
        self.config
            .keeps_captured_rows()
            .then(|| shape.primary_key.iter().filter_map(|k| shape.schema.index_of(k).ok()).collect())
    }

    fn start_position(&self) -> Option<Position> {
        match &self.phase {
            Phase::Snapshot(run) => Some(Self::snapshot_position(&self.config, run)),
            Phase::Streaming(stream) => Some(stream.state.position()),
            _ => None,
        }
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        loop {
            match &mut self.phase {
                Phase::NotStarted => return Err(Error::internal("postgres-cdc read before start")),
                Phase::Finished => return Ok(None),
                Phase::Snapshot(run) => match run.events.recv().await {
                    Some(Ok(SnapshotEvent::Batch(changes, table))) => {
                        run.rows += changes.num_rows() as u64;
                        let position = Self::snapshot_position(&self.config, run);
                        let events = vec![Event::Changes { table: Some(table), changes }];
                        return Ok(Some(SourceBatch { events, position }));
                    }
                    Some(Ok(SnapshotEvent::ChunkDone(table))) => {
                        run.chunks_done += 1;
                        if let Some(left) = run.chunks_left.get_mut(&table) {
                            *left = left.saturating_sub(1);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return self.finish_snapshot().await,
                },
                Phase::Streaming(stream) => return stream.next_batch(self.batch_size).await.map(Some),
            }
        }
    }

    async fn acknowledge(&mut self, position: &Position) -> Result<()> {
        let Phase::Streaming(stream) = &mut self.phase else { return Ok(()) };
        let lsn = match PgPosition::from_position(position, &self.config.table) {
            Ok(PgPosition::Stream { lsn, .. }) => lsn.0,
            Ok(PgPosition::Snapshot { .. }) => return Ok(()),
            Err(e) => {
                return Err(Error::internal(format!("postgres-cdc acknowledged a position it did not write: {e}")))
            }
        };
        let Some(lsn) = self.delayed.completed(lsn) else { return Ok(()) };
        if lsn > stream.state.acked {
            stream.wal.acknowledge(lsn);
            stream.state.acked = lsn;
        }
        Ok(())
    }

    fn progress(&self) -> Option<SourceProgress> {
        match &self.phase {
            Phase::Snapshot(run) => Some(SourceProgress {
                snapshot: Some(run.progress(false)),
                position: Some(format!("snapshot, {}/{} chunks", run.chunks_done, run.chunks_total)),
                ..SourceProgress::default()
            }),
            Phase::Streaming(stream) => Some(SourceProgress {
                event_time_ms: stream.state.last_event_ms,
                fetch_event_time_lag_ms: stream.state.fetch_lag_ms,
                snapshot: self.snapshot_done.clone(),
                position: Some(format!("LSN {}", format_lsn(stream.state.committed.max(stream.state.idle)))),
                slot_lag_bytes: stream.state.server_wal_end.map(|end| end.saturating_sub(stream.state.acked)),
                ..SourceProgress::default()
            }),
            Phase::NotStarted | Phase::Finished => None,
        }
    }

    async fn release(&mut self) -> Result<()> {
        self.close().await?;
        if self.config.is_bounded() || !self.left_behind.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.config.drop_slot_on_stop {
            tracing::info!(slot = %self.config.slot, server = %self.config.where_(), "postgres-cdc keeps the replication slot for the next run");
            return Ok(());
        }
        let slot = &self.config.slot;
        checks::drop_slot(&self.config).await.map_err(|e| {
            e.context(format!(
                "the job stopped, but its replication slot '{slot}' ('debezium.slot.drop.on.stop' = 'true') could not be dropped and \
                 keeps holding WAL; once the cause is fixed, run SELECT pg_drop_replication_slot('{slot}')"
            ))
        })?;
        self.left_behind.store(false, Ordering::Relaxed);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Phase::Streaming(stream) = std::mem::replace(&mut self.phase, Phase::Finished) {
            // The final checkpoint's confirmation must reach the server before the session ends,
            // or a restart would replay what is already safe.
            stream.wal.close(FINAL_CONFIRMATION_WAIT).await;
        }
        Ok(())
    }
}

/// A captured relation as the stream announced it; cloned per change (shared parts only) so
/// the batch builder can be borrowed mutably beside it.
struct RelationState {
    table: Arc<CapturedTable>,
    relation: Arc<Relation>,
    /// Index in the relation's columns of each declared source column.
    mapping: Arc<Vec<usize>>,
    /// Per declared source column, whether the relation has it as `real` or `double precision`.
    floats: Arc<Vec<Option<FloatSource>>>,
    /// Whether a relation column is declared (an unchanged TOAST value there matters).
    declared: Arc<Vec<bool>>,
    /// Relation indices of the declared primary key.
    key: Arc<Vec<usize>>,
    /// `schema.name`, naming the table of its rows for the runtime.
    origin: Arc<str>,
}

struct Streaming {
    wal: ReplicationStream,
    state: StreamState,
}

/// What the stream has told so far, and the batch being built.
struct StreamState {
    config: Arc<Config>,
    tables: Vec<Arc<CapturedTable>>,
    /// `None`: a relation of the publication that this table does not capture.
    relations: HashMap<u32, Option<Arc<RelationState>>>,
    rows: Rows,
    in_transaction: bool,
    commit_millis: i64,
    /// End LSN of the last transaction whose changes are all in the builder or emitted.
    committed: u64,
    /// The server's WAL position from the last keepalive seen between transactions.
    idle: u64,
    acked: u64,
    last_lag_warning: Option<Instant>,
    /// The server's WAL end from its last keepalive: what the slot retains is this minus `acked`.
    server_wal_end: Option<u64>,
    /// How long after its commit the current transaction arrived.
    transaction_fetch_lag_ms: u64,
    /// Commit time and fetch lag of the newest change in the batch being built.
    batch_event: Option<(i64, u64)>,
    /// Commit time of the newest change handed over, and how long after the commit it was.
    last_event_ms: Option<i64>,
    fetch_lag_ms: Option<u64>,
    /// The batch being built, with 'truncate.mode' = 'delete': the table of each row.
    origins: Option<RowOrigins>,
    /// Events of the batch being built before its first row (truncations, schema changes).
    leading: Vec<Event>,
    /// Such events after rows of the batch being built: they open the next batch.
    deferred: Vec<Event>,
}

impl Streaming {
    async fn next_batch(&mut self, batch_size: usize) -> Result<SourceBatch> {
        let state = &mut self.state;
        let started = Instant::now();
        state.leading.append(&mut state.deferred);
        loop {
            if !state.deferred.is_empty() {
                break;
            }
            let full = state.rows.len() >= batch_size;
            if full && !state.in_transaction || state.rows.len() >= batch_size * 4 {
                break;
            }
            if let Some(message) = self.wal.next_buffered()? {
                state.on_wal(message)?;
                continue;
            }
            let deadline = if state.in_transaction { started + OPEN_TRANSACTION_RETURN } else { started + IDLE_RETURN };
            // Under load more of the stream has already arrived: read it without arming a timer.
            match self.wal.fill().now_or_never() {
                Some(read) => read?,
                // Committed changes and nothing more waiting: they leave now rather than wait
                // for company. Under load more is always waiting, and batches still fill.
                None if !(state.in_transaction || state.rows.is_empty() && state.leading.is_empty()) => break,
                None => match tokio::time::timeout_at(deadline, self.wal.fill()).await {
                    Err(_) => break,
                    Ok(read) => read?,
                },
            }
        }
        if let Some((event_ms, fetch_lag_ms)) = state.batch_event.take() {
            state.last_event_ms = Some(event_ms);
            state.fetch_lag_ms = Some(fetch_lag_ms);
        }
        let mut events = std::mem::take(&mut state.leading);
        let Rows::Declared(builder) = &mut state.rows else {
            events.extend(state.rows.finish_runs()?);
            return Ok(SourceBatch { events, position: state.position() });
        };
        let changes = builder.finish()?;
        match state.origins.as_mut() {
            Some(origins) if !changes.is_empty() => events.extend(std::mem::take(origins).events(changes)?),
            // An empty batch still carries the position.
            _ if events.is_empty() || !changes.is_empty() => events.push(Event::changes(changes)),
            _ => {}
        }
        Ok(SourceBatch { events, position: state.position() })
    }
}

/// The batch being built, with 'truncate.mode' = 'delete': the table of each row.
#[derive(Debug, Default)]
struct RowOrigins {
    tables: Vec<Arc<str>>,
}

impl RowOrigins {
    /// The rows of `changes` as one event per run of rows of one table.
    fn events(self, changes: ChangeBatch) -> Result<Vec<Event>> {
        if self.tables.len() != changes.num_rows() {
            return Err(Error::internal(format!(
                "a batch of {} rows named the table of {}",
                changes.num_rows(),
                self.tables.len()
            )));
        }
        let mut events = Vec::new();
        let mut start = 0;
        for end in 1..=self.tables.len() {
            if end == self.tables.len() || self.tables[end] != self.tables[start] {
                let table = Some(self.tables[start].clone());
                events.push(Event::Changes { table, changes: changes.slice(start, end - start) });
                start = end;
            }
        }
        Ok(events)
    }
}

impl StreamState {
    fn position(&self) -> Position {
        stream_position(&self.config, self.committed.max(self.idle))
    }

    fn on_wal(&mut self, message: WalMessage<'_>) -> Result<()> {
        match message {
            WalMessage::XLogData(data) => {
                let message = pgoutput::decode(data).map_err(|e| Error::external(e.to_string()))?;
                self.on_message(message)
            }
            WalMessage::KeepAlive { wal_end, .. } => {
                self.on_keepalive(wal_end);
                Ok(())
            }
        }
    }

    fn on_keepalive(&mut self, wal_end: u64) {
        self.server_wal_end = Some(self.server_wal_end.unwrap_or(0).max(wal_end));
        if !self.in_transaction {
            self.idle = self.idle.max(wal_end);
        }
        let lag = wal_end.saturating_sub(self.acked);
        let due = self.last_lag_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if lag > SLOT_LAG_WARNING_BYTES && due {
            self.last_lag_warning = Some(Instant::now());
            tracing::warn!(
                slot = %self.config.slot,
                unconfirmed_mib = lag / (1024 * 1024),
                "postgres-cdc: the replication slot holds back WAL that no completed checkpoint covers yet; \
                 check that checkpoints complete ('execution.checkpointing.interval') and that the sink keeps up"
            );
        }
    }

    fn on_begin(&mut self, commit_time_micros: i64) {
        self.in_transaction = true;
        self.commit_millis = (commit_time_micros + PG_EPOCH_MICROS).div_euclid(1000);
        // pgoutput v1 sends a transaction once it committed: its Begin arrives with its changes.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(self.commit_millis);
        self.transaction_fetch_lag_ms = now_ms.saturating_sub(self.commit_millis).max(0) as u64;
    }

    fn on_commit(&mut self, end_lsn: u64) {
        self.in_transaction = false;
        self.committed = self.committed.max(end_lsn);
    }

    fn on_message(&mut self, message: Message<'_>) -> Result<()> {
        match message {
            Message::Begin { commit_time_micros, .. } => self.on_begin(commit_time_micros),
            Message::Commit { end_lsn, .. } => self.on_commit(end_lsn),
            Message::Relation(relation) => self.on_relation(relation)?,
            Message::Insert { relation_id, new } => {
                if let Some(rel) = self.relation(relation_id)? {
                    self.append(&rel, RowKind::Insert, &new)?;
                }
            }
            Message::Update { relation_id, old, new } => {
                if let Some(rel) = self.relation(relation_id)? {
                    self.on_update(&rel, old, new)?;
                }
            }
            Message::Delete { relation_id, old } => {
                if let Some(rel) = self.relation(relation_id)? {
                    let cells = match &old {
                        OldTuple::Key(cells) | OldTuple::Full(cells) => cells,
                    };
                    self.append(&rel, RowKind::Delete, cells)?;
                }
            }
            Message::Truncate { relation_ids, .. } => {
                let mut truncated = Vec::new();
                for id in relation_ids {
                    if let Some(rel) = self.relation(id)? {
                        truncated.push(rel.table.shown());
                    }
                }
                if !truncated.is_empty() {
                    match self.config.truncate {
                        TruncateMode::Fail => {
                            return Err(Error::user(format!(
                                "{} was truncated; the stream has no row-level deletes for a TRUNCATE, so the target would keep rows the source no longer has. \
                                 Stopped without confirming it ('truncate.mode' = 'fail'): empty the target, drop the slot \
                                 (SELECT pg_drop_replication_slot('{}')) and start the job with --fresh for a new snapshot, \
                                 or set 'truncate.mode' = 'ignore' to skip truncations",
                                truncated.join(", "),
                                self.config.slot
                            )))
                        }
                        TruncateMode::Ignore => tracing::warn!(
                            tables = %truncated.join(", "),
                            "postgres-cdc ignored a TRUNCATE ('truncate.mode' = 'ignore')"
                        ),
                        TruncateMode::Delete => {
                            tracing::info!(
                                tables = %truncated.join(", "),
                                "postgres-cdc: a TRUNCATE becomes deletes of the rows the job delivered from the tables ('truncate.mode' = 'delete')"
                            );
                            let Rows::Declared(builder) = &self.rows else {
                                return Err(Error::internal("'truncate.mode' = 'delete' reached tables read into their own columns"));
                            };
                            let change_columns = builder.change_columns(RowKind::Delete, self.commit_millis)?;
                            let truncations = truncated.into_iter().map(|table| Truncation {
                                table: Some(table.into()),
                                change_columns: change_columns.clone(),
                            });
                            self.push_event(truncations.map(Event::Truncated));
                        }
                    }
                }
            }
            Message::Type { .. } | Message::Origin { .. } | Message::Logical { .. } => {}
        }
        Ok(())
    }

    /// Events between rows: rows already in the batch came before them, so then they open the
    /// next batch.
    fn push_event(&mut self, events: impl IntoIterator<Item = Event>) {
        if self.rows.is_empty() {
            self.leading.extend(events);
        } else {
            self.deferred.extend(events);
        }
    }

    fn on_relation(&mut self, relation: Relation) -> Result<()> {
        let table = self.tables.iter().find(|t| t.schema == relation.namespace && t.name == relation.name).cloned();
        let Some(table) = table else {
            // A pipeline's table must not be passed over silently (a SQL table reads what its
            // declaration matched at the start).
            let names = [self.config.database.as_str(), &relation.namespace, &relation.name];
            if matches!(self.config.columns, Columns::PerTable) && self.config.tables.matches(&names) {
                return Err(Error::user(format!(
                    "source table `{}.{}` was created after the pipeline started, and has no sink table yet. Restart \
                     the pipeline (without --fresh): it resumes from its last checkpoint, creates the sink table and \
                     writes the new table's changes; or leave it out with `tables.exclude`",
                    relation.namespace, relation.name
                )));
            }
            self.relations.insert(relation.id, None);
            return Ok(());
        };
        let index_of = |name: &str| relation.columns.iter().position(|c| c.name == name);
        let shape = table.shape.clone();
        let mut mapping = Vec::with_capacity(shape.physical.len());
        for (name, _, _) in &shape.physical {
            mapping.push(index_of(name).ok_or_else(|| {
                Error::user(format!(
                    "column `{name}` of table `{}` no longer exists in {}: its schema changed while streaming. \
                     Update the table declaration and restart the job",
                    self.config.table,
                    table.shown()
                ))
            })?);
        }
        let mut declared = vec![false; relation.columns.len()];
        for i in &mapping {
            declared[*i] = true;
        }
        let key = shape.primary_key.iter().filter_map(|k| index_of(k)).collect();
        // pgoutput describes a relation again after it changed (and after other cache
        // invalidations, which leave its columns as they were).
        if let Some(Some(before)) = self.relations.get(&relation.id) {
            let columns = |r: &Relation| -> Vec<SourceColumn> {
                r.columns.iter().map(|c| SourceColumn { name: c.name.clone(), data_type: c.type_name() }).collect()
            };
            let (before, after) = (columns(&before.relation), columns(&relation));
            if before != after {
                let table = Some(Arc::from(table.shown()));
                self.push_event([Event::SchemaChanged(SchemaChange { table, before, after })]);
            }
        }
        let floats = mapping.iter().map(|i| FloatSource::of_oid(relation.columns[*i].type_oid)).collect();
        let state = RelationState {
            origin: table.shown().into(),
            table,
            relation: Arc::new(relation),
            mapping: Arc::new(mapping),
            floats: Arc::new(floats),
            declared: Arc::new(declared),
            key: Arc::new(key),
        };
        self.relations.insert(state.relation.id, Some(Arc::new(state)));
        Ok(())
    }

    fn relation(&self, id: u32) -> Result<Option<Arc<RelationState>>> {
        match self.relations.get(&id) {
            Some(state) => Ok(state.clone()),
            None => Err(Error::external(format!("pgoutput sent a change of relation {id} before describing it"))),
        }
    }

    fn append(&mut self, rel: &RelationState, kind: RowKind, cells: &[Cell<'_>]) -> Result<()> {
        let context = RowContext {
            database: &self.config.database,
            schema: &rel.table.schema,
            table: &rel.table.name,
            op_ts_millis: self.commit_millis,
        };
        self.batch_event = Some((self.commit_millis, self.transaction_fetch_lag_ms));
        self.rows.builder(&rel.origin, &rel.table.shape)?.append(kind, cells, &rel.mapping, &rel.floats, &context)?;
        if let Some(origins) = self.origins.as_mut() {
            origins.tables.push(rel.origin.clone());
        }
        Ok(())
    }

    fn on_update<'a>(&mut self, rel: &RelationState, old: Option<OldTuple<'a>>, mut new: Vec<Cell<'a>>) -> Result<()> {
        let full_old = match &old {
            Some(OldTuple::Full(cells)) => Some(cells),
            _ => None,
        };
        for (i, cell) in new.iter_mut().enumerate() {
            if *cell != Cell::Unchanged || !rel.declared.get(i).copied().unwrap_or(false) {
                continue;
            }
            match full_old.and_then(|o| o.get(i)) {
                Some(&old @ (Cell::Text(_) | Cell::Null)) => *cell = old,
                _ => {
                    let column = rel.relation.columns.get(i).map(|c| c.name.as_str()).unwrap_or("?");
                    return Err(Error::user(format!(
                        "an update of {} left column `{column}` unchanged and stored out of line (TOAST), so PostgreSQL did not send its value, \
                         and REPLICA IDENTITY {} carries no old value to take it from. Run ALTER TABLE {} REPLICA IDENTITY FULL, \
                         then restart from a new snapshot (nothing after this change was confirmed)",
                        rel.table.shown(),
                        if rel.table.identity == 'i' { "USING INDEX" } else { "DEFAULT" },
                        rel.table.qualified()
                    )));
                }
            }
        }
        match self.config.changelog_mode {
            ChangelogMode::Upsert => {
                let old_cells = match &old {
                    Some(OldTuple::Key(cells)) | Some(OldTuple::Full(cells)) => Some(cells),
                    None => None,
                };
                if let Some(old_cells) = old_cells {
                    let key_changed = rel.key.iter().any(|i| old_cells.get(*i) != new.get(*i));
                    if key_changed {
                        self.append(rel, RowKind::Delete, old_cells)?;
                    }
                }
                self.append(rel, RowKind::UpdateAfter, &new)
            }
            _ => {
                let before: Vec<Cell<'a>> = match old {
                    Some(OldTuple::Key(cells)) | Some(OldTuple::Full(cells)) => cells,
                    // DEFAULT identity and an unchanged key: the before image is the key.
                    None => new
                        .iter()
                        .zip(&rel.relation.columns)
                        .map(|(cell, column)| if column.is_key { *cell } else { Cell::Null })
                        .collect(),
                };
                self.append(rel, RowKind::UpdateBefore, &before)?;
                self.append(rel, RowKind::UpdateAfter, &new)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_confirms_the_checkpoint_delay_checkpoints_before_the_newest() {
        let mut now = DelayedAcks::default();
        assert_eq!((now.completed(10), now.completed(20)), (Some(10), Some(20)));
        let mut delayed = DelayedAcks { delay: 2, ..DelayedAcks::default() };
        let confirmed: Vec<Option<u64>> = [10, 20, 20, 30, 40].into_iter().map(|l| delayed.completed(l)).collect();
        assert_eq!(confirmed, [None, None, Some(10), Some(20), Some(20)]);
    }

    #[test]
    fn snapshot_progress_counts_tables_whose_chunks_are_all_read() {
        let left: HashMap<String, usize> = [("public.a".to_string(), 0), ("public.b".to_string(), 3)].into();
        let p = snapshot_progress(&left, 2, 5, false);
        assert_eq!((p.tables_done, p.tables_remaining, p.chunks_done, p.chunks_remaining), (1, 1, 2, 3));
        assert!(!p.finished);
    }

    /// Rows of several tables in one batch become one event per run of one table's rows.
    #[test]
    fn a_batch_of_several_tables_becomes_events_tagged_with_each_table() {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let ids = Int64Array::from_iter_values([1, 2, 3, 4]);
        let changes = ChangeBatch::inserts(RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap());
        let t = |name: &str| -> Arc<str> { Arc::from(name) };
        let origins = RowOrigins { tables: vec![t("s.a"), t("s.a"), t("s.b"), t("s.a")] };
        let shown: Vec<String> = origins
            .events(changes.clone())
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::Changes { table, changes } => format!("{table:?}:{}", changes.num_rows()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(shown, [r#"Some("s.a"):2"#, r#"Some("s.b"):1"#, r#"Some("s.a"):1"#]);
        let wrong = RowOrigins { tables: vec![t("s.a")] };
        assert!(wrong.events(changes).is_err(), "a row without its table is a bug");
    }
}
