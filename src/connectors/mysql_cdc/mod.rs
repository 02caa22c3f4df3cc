//! `mysql-cdc`: reads MySQL and MariaDB tables as a changelog — a lock-free snapshot followed by
//! the binlog — with Flink CDC's `mysql-cdc` options (docs/connectors/mysql-cdc.md).
//!
//! Protocol: `mysql_async` for queries (text protocol) and the binlog dump (`COM_BINLOG_DUMP`,
//! registering as a replica with 'server-id'); row images are decoded by our own parser
//! ([`cell`]) straight into Arrow builders of the declared types ([`builders`]).
//!
//! Snapshot ([`snapshot`]): tables matching 'database-name'/'table-name' (regular expressions)
//! are split into chunks by integer key ranges and read by several connections in parallel,
//! without locks. Each chunk is pinned to a binlog position: on MariaDB the exact position of
//! its consistent-snapshot transaction, on MySQL a low/high watermark pair with the binlog
//! between them applied to the chunk (DBLog / Flink CDC incremental snapshot). Streaming then
//! starts where the snapshot started and skips, per chunk, what that chunk already contains. Transactions are never split across batches; every
//! batch carries the position after it (binlog file and offset, MariaDB GTIDs, and snapshot
//! progress per chunk while it matters), from which `start` resumes exactly.
//!
//! Limits: tables whose chunk key is not an integer are snapshotted as one chunk; schema
//! changes of captured tables while streaming stop the job with an error; 'scan.startup.mode' =
//! 'timestamp' and the lock-based legacy snapshot are not implemented (rejected); GTID start
//! positions are MariaDB's (MySQL starts from file and position); resume uses file and position.

mod builders;
mod cell;
mod config;
mod rows;
mod schema;
mod server;
mod snapshot;
mod stream;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use mysql_async::prelude::Queryable;
use serde_json::json;
use tokio::task::JoinSet;

use super::{Connector, ConnectorOptions, ConnectorTable, Position, ResumeFrom, Source, SourceBatch, SourceContext};
use crate::changelog::{ChangeBatch, ChangelogMode};
use crate::error::{Error, Result};
use crate::sql::TableSpec;
use config::{MySqlCdcConfig, StartupMode};
use rows::ChangeBuilder;
use schema::CapturedTable;
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
        let config = MySqlCdcConfig::parse(spec, options)?;
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
        Ok(Some(Box::new(MySqlCdcSource {
            config: self.config.clone(),
            spec: self.spec.clone(),
            schema: self.spec.schema(),
            batch_size: ctx.batch_size.max(1),
            state: State::NotStarted,
        })))
    }

    fn source_changelog_mode(&self) -> ChangelogMode {
        if self.config.startup == StartupMode::Snapshot {
            ChangelogMode::InsertOnly
        } else {
            ChangelogMode::All
        }
    }
}

struct SnapshotRun {
    ctx: Arc<ChunkContext>,
    chunks: Vec<Chunk>,
    /// Where streaming starts: before every chunk's low watermark.
    start: BinlogPos,
    gtid: GtidState,
    queue: VecDeque<usize>,
    running: JoinSet<(usize, Result<(ChangeBatch, BinlogPos)>)>,
    /// This run continues a snapshot that an earlier run, maybe killed, began. That run may
    /// have delivered an unfinished chunk already, read at an older point that no checkpoint
    /// covers; rows it held that are gone since are not in the new read. So a chunk read now
    /// gets the snapshot's start as its watermark: every change to its keys since then is
    /// streamed after its rows, the deletes retracting such rows among them.
    stream_chunks_from_start: bool,
}

struct StreamRun {
    reader: BinlogReader,
    tables: Vec<Arc<CapturedTable>>,
    /// Chunks whose rows the snapshot already delivered, while the stream is before their watermarks.
    snapshot: Option<(Vec<Chunk>, SnapshotFilter)>,
    builder: ChangeBuilder,
}

enum State {
    NotStarted,
    Snapshot(Box<SnapshotRun>),
    Streaming(Box<StreamRun>),
    Done,
}

struct MySqlCdcSource {
    config: Arc<MySqlCdcConfig>,
    spec: Arc<TableSpec>,
    schema: SchemaRef,
    batch_size: usize,
    state: State,
}

fn position_json(
    binlog: &BinlogPos,
    gtid: &GtidState,
    tables: &[Arc<CapturedTable>],
    chunks: Option<&[Chunk]>,
) -> Position {
    let mut p = json!({"file": binlog.file, "pos": binlog.pos});
    if !gtid.is_empty() {
        p["gtid"] = json!(gtid.to_string());
    }
    if let Some(chunks) = chunks {
        p["snapshot"] = json!({
            "tables": tables.iter().map(|t| format!("{}.{}", t.database, t.table)).collect::<Vec<_>>(),
            "chunks": chunks.iter().map(Chunk::to_json).collect::<Vec<_>>(),
        });
    }
    p
}

impl MySqlCdcSource {
    fn bad_position(&self, p: &Position) -> Error {
        Error::user(format!(
            "mysql-cdc table `{}` cannot resume from position {p}: it is not a position this connector wrote; remove the checkpoint to start over",
            self.config.table
        ))
    }

    async fn begin_snapshot(
        &mut self,
        tables: Vec<Arc<CapturedTable>>,
        chunks: Vec<Chunk>,
        start: BinlogPos,
        gtid: GtidState,
        mariadb: bool,
        stream_chunks_from_start: bool,
    ) -> Result<()> {
        let parallelism = self.config.snapshot_parallelism;
        let pool_opts = mysql_async::PoolOpts::default()
            .with_constraints(mysql_async::PoolConstraints::new(0, parallelism).unwrap_or_default());
        let pool = mysql_async::Pool::new(server::connect_opts(&self.config).pool_opts(pool_opts));
        let (first, last) = self.config.server_ids;
        let locks = ((last - first) as usize).max(1);
        let queue = chunks.iter().enumerate().filter(|(_, c)| c.high.is_none()).map(|(i, _)| i).collect();
        let ctx = Arc::new(ChunkContext {
            config: self.config.clone(),
            spec: self.spec.clone(),
            tables,
            pool,
            mariadb,
            backfill_locks: (0..locks).map(|_| tokio::sync::Mutex::new(())).collect(),
        });
        self.state = State::Snapshot(Box::new(SnapshotRun {
            ctx,
            chunks,
            start,
            gtid,
            queue,
            running: JoinSet::new(),
            stream_chunks_from_start,
        }));
        Ok(())
    }

    async fn begin_streaming(
        &mut self,
        tables: Vec<Arc<CapturedTable>>,
        start: StreamStart,
        gtid: GtidState,
        chunks: Option<Vec<Chunk>>,
    ) -> Result<()> {
        let reader = BinlogReader::open(
            self.config.clone(),
            self.spec.clone(),
            &tables,
            start,
            self.config.binlog_server_id(),
            false,
            gtid,
        )
        .await?;
        let snapshot = chunks.and_then(|c| SnapshotFilter::new(&tables, &c).map(|f| (c, f)));
        let builder = ChangeBuilder::new(self.schema.clone(), self.config.server_time_zone, self.batch_size)?;
        self.state = State::Streaming(Box::new(StreamRun { reader, tables, snapshot, builder }));
        Ok(())
    }

    async fn next_snapshot_batch(&mut self) -> Result<Option<SourceBatch>> {
        let State::Snapshot(run) = &mut self.state else { return Err(Error::internal("snapshot state expected")) };
        while run.running.len() < self.config.snapshot_parallelism {
            let Some(index) = run.queue.pop_front() else { break };
            let ctx = run.ctx.clone();
            let chunk = run.chunks[index].clone();
            run.running.spawn(async move { (index, snapshot::read_chunk(ctx, chunk, index).await) });
        }
        match run.running.join_next().await {
            Some(joined) => {
                let (index, result) = joined.map_err(|e| Error::internal(format!("snapshot reader failed: {e}")))?;
                let (batch, high) = result?;
                run.chunks[index].high = Some(if run.stream_chunks_from_start { run.start.clone() } else { high });
                let position = position_json(&run.start, &run.gtid, &run.ctx.tables, Some(&run.chunks));
                Ok(Some(SourceBatch { changes: batch, position }))
            }
            None => {
                // Every chunk is read.
                let tables = run.ctx.tables.clone();
                let chunks = std::mem::take(&mut run.chunks);
                let start = run.start.clone();
                let gtid = run.gtid.clone();
                run.ctx.pool.clone().disconnect().await.ok();
                if self.config.startup == StartupMode::Snapshot {
                    self.state = State::Done;
                    return Ok(None);
                }
                let position = position_json(&start, &gtid, &tables, Some(&chunks));
                self.begin_streaming(tables, StreamStart::File(start), gtid, Some(chunks)).await?;
                let empty = ChangeBuilder::new(self.schema.clone(), self.config.server_time_zone, 0)?.finish()?;
                Ok(Some(SourceBatch { changes: empty, position }))
            }
        }
    }

    async fn next_stream_batch(&mut self) -> Result<Option<SourceBatch>> {
        let State::Streaming(run) = &mut self.state else { return Err(Error::internal("streaming state expected")) };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let now = tokio::time::Instant::now();
            let open = run.reader.in_transaction();
            if now >= deadline && !open {
                break;
            }
            let wait = if open { Duration::from_secs(5) } else { deadline - now };
            let filter: &dyn RowFilter = match &run.snapshot {
                Some((_, f)) => f,
                None => &KeepAll,
            };
            match run.reader.next(wait, &mut run.builder, filter).await? {
                None if open => {}
                None => break,
                Some(stream::Step::Commit) if run.builder.len() >= self.batch_size => break,
                Some(_) => {}
            }
        }
        if run.snapshot.as_ref().is_some_and(|(_, f)| run.reader.committed >= f.max_high) {
            run.snapshot = None;
        }
        let changes = run.builder.finish()?;
        let chunks = run.snapshot.as_ref().map(|(c, _)| c.as_slice());
        let position = position_json(&run.reader.committed, &run.reader.gtid, &run.tables, chunks);
        Ok(Some(SourceBatch { changes, position }))
    }

    async fn start_fresh(&mut self, conn: &mut mysql_async::Conn, tables: Vec<Arc<CapturedTable>>) -> Result<()> {
        let mariadb = server::is_mariadb(&self.config, conn).await?;
        let gtid_at =
            |pos: &BinlogPos| format!("SELECT BINLOG_GTID_POS('{}', {})", pos.file.replace('\'', ""), pos.pos);
        let gtid_of = |rows: Vec<Vec<Option<String>>>| {
            rows.first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|g| GtidState::parse(&g))
                .unwrap_or_default()
        };
        match self.config.startup.clone() {
            StartupMode::Initial | StartupMode::Snapshot => {
                let start = if mariadb {
                    let start = server::consistent_snapshot_position(&self.config, conn).await?;
                    conn.query_drop("COMMIT")
                        .await
                        .map_err(|e| server::server_error(&self.config, "ending a snapshot transaction", e))?;
                    start
                } else {
                    server::current_position(&self.config, conn).await?
                };
                let gtid = if mariadb {
                    gtid_of(
                        server::query_strings(&self.config, conn, &gtid_at(&start), "reading the GTID position")
                            .await?,
                    )
                } else {
                    GtidState::default()
                };
                let mut chunks = Vec::new();
                for (i, t) in tables.iter().enumerate() {
                    chunks.extend(snapshot::plan_chunks(&self.config, conn, i, t).await?);
                }
                self.begin_snapshot(tables, chunks, start, gtid, mariadb, false).await
            }
            StartupMode::LatestOffset | StartupMode::EarliestOffset | StartupMode::SpecificFile { .. } => {
                let start = match self.config.startup.clone() {
                    StartupMode::LatestOffset => server::current_position(&self.config, conn).await?,
                    StartupMode::EarliestOffset => server::earliest_position(&self.config, conn).await?,
                    StartupMode::SpecificFile { file, pos } => BinlogPos { file, pos },
                    _ => return Err(Error::internal("unexpected startup mode")),
                };
                server::check_position_available(&self.config, conn, &start).await?;
                let gtid = if mariadb {
                    gtid_of(
                        server::query_strings(&self.config, conn, &gtid_at(&start), "reading the GTID position")
                            .await?,
                    )
                } else {
                    GtidState::default()
                };
                self.begin_streaming(tables, StreamStart::File(start), gtid, None).await
            }
            StartupMode::SpecificGtid(g) => {
                let gtid = GtidState::parse(&g).ok_or_else(|| {
                    Error::user(format!(
                        "'scan.startup.specific-offset.gtid-set' = '{g}' of table `{}` is not a MariaDB GTID position such as '0-1-42' (domain-server-sequence, comma-separated per domain)",
                        self.config.table
                    ))
                })?;
                self.begin_streaming(tables, StreamStart::MariaDbGtid(g), gtid, None).await
            }
        }
    }

    async fn resume(
        &mut self,
        conn: &mut mysql_async::Conn,
        tables: Vec<Arc<CapturedTable>>,
        from: &ResumeFrom,
    ) -> Result<()> {
        let p = &from.position;
        let binlog = BinlogPos::from_json(p).ok_or_else(|| self.bad_position(p))?;
        server::check_position_available(&self.config, conn, &binlog).await?;
        let gtid = p.get("gtid").and_then(|g| g.as_str()).and_then(GtidState::parse).unwrap_or_default();
        let Some(snap) = p.get("snapshot") else {
            return self.begin_streaming(tables, StreamStart::File(binlog), gtid, None).await;
        };
        // Chunk indices refer to the table list of the position; map them to today's tables.
        let names: Vec<String> = snap
            .get("tables")
            .and_then(|t| t.as_array())
            .map(|a| a.iter().filter_map(|n| n.as_str().map(String::from)).collect())
            .ok_or_else(|| self.bad_position(p))?;
        let mut ordered = Vec::with_capacity(names.len());
        for name in &names {
            let table = tables.iter().find(|t| format!("{}.{}", t.database, t.table) == *name).ok_or_else(|| {
                Error::user(format!(
                    "mysql-cdc table `{}` cannot resume its snapshot: MySQL table {name} no longer exists or no longer matches; remove the checkpoint to take a new snapshot",
                    self.config.table
                ))
            })?;
            ordered.push(table.clone());
        }
        let chunks: Vec<Chunk> = snap
            .get("chunks")
            .and_then(|c| c.as_array())
            .and_then(|a| a.iter().map(Chunk::from_json).collect::<Option<Vec<_>>>())
            .filter(|c| c.iter().all(|c| c.table < ordered.len()))
            .ok_or_else(|| self.bad_position(p))?;
        if chunks.iter().any(|c| c.high.is_none()) {
            let mariadb = server::is_mariadb(&self.config, conn).await?;
            // After a graceful stop no unfinished chunk was delivered: read them exactly.
            self.begin_snapshot(ordered, chunks, binlog, gtid, mariadb, !from.exact).await
        } else if self.config.startup == StartupMode::Snapshot {
            self.state = State::Done;
            Ok(())
        } else {
            self.begin_streaming(ordered, StreamStart::File(binlog), gtid, Some(chunks)).await
        }
    }
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
            let tables = server::discover_tables(&self.config, &self.spec, &mut conn).await?;
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
            State::Snapshot(run) => Some(position_json(&run.start, &run.gtid, &run.ctx.tables, Some(&run.chunks))),
            // A stream started from a GTID learns its file and offset from the first event.
            State::Streaming(run) if !run.reader.committed.file.is_empty() => Some(position_json(
                &run.reader.committed,
                &run.reader.gtid,
                &run.tables,
                run.snapshot.as_ref().map(|(c, _)| c.as_slice()),
            )),
            _ => None,
        }
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        match &self.state {
            State::NotStarted => Err(Error::internal("mysql-cdc read before start")),
            State::Snapshot(_) => self.next_snapshot_batch().await,
            State::Streaming(_) => self.next_stream_batch().await,
            State::Done => Ok(None),
        }
    }

    async fn close(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Streaming(mut run) => run.reader.close().await,
            State::Snapshot(mut run) => {
                run.running.abort_all();
                run.ctx.pool.clone().disconnect().await.ok();
            }
            _ => {}
        }
        Ok(())
    }
}
