//! The lock-free incremental snapshot (DBLog / Flink CDC): each table is split into chunks by
//! ranges of an integer key; each chunk is read at a known binlog position — MariaDB reports
//! the exact position of a consistent-snapshot transaction; on MySQL the chunk is read between
//! a low and a high watermark and corrected with the binlog events between them — so it is
//! exactly the table's content at that position. Streaming later skips, per chunk, the events
//! up to that position.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take_record_batch, SortOptions};
use datafusion::arrow::datatypes::{DataType, Decimal128Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::Conn;

use super::config::MySqlCdcConfig;
use super::rows::{ChangeBuilder, TableChanges};
use super::schema::{CapturedTable, Declared};
use super::server::{current_position, query_strings, server_error, BinlogPos, ServerVersion, Statements};
use super::stream::{BinlogReader, GtidState, RowFilter, StreamStart};
use crate::changelog::{ChangeBatch, Event, RowKind};
use crate::connectors::mysql_session::{Opened, RowSession};
use crate::error::{Error, Result};

/// One key range of one table; `high` is set once the chunk has been read and reconciled. Stored
/// in positions as an array (see `super::position`).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub table: usize,
    /// Inclusive lower bound, exclusive upper bound; `None` is unbounded.
    pub lo: Option<i128>,
    pub hi: Option<i128>,
    pub high: Option<BinlogPos>,
}

impl Chunk {
    /// Whether a row whose chunk key is `key` belongs here; a NULL key (`None`) belongs to the
    /// first chunk, whose query reads NULLs too.
    pub fn contains(&self, key: Option<i128>) -> bool {
        match key {
            Some(k) => self.lo.is_none_or(|lo| k >= lo) && self.hi.is_none_or(|hi| k < hi),
            None => self.lo.is_none(),
        }
    }
}

/// Splits a table into chunks of about 'scan.incremental.snapshot.chunk.size' rows by its chunk
/// key. Tables whose chunk key is not an integer are read as one chunk.
pub async fn plan_chunks(
    config: &MySqlCdcConfig,
    conn: &mut Conn,
    index: usize,
    table: &CapturedTable,
) -> Result<Vec<Chunk>> {
    let whole = vec![Chunk { table: index, lo: None, hi: None, high: None }];
    let Some(key) = table.chunk_key else { return Ok(whole) };
    let column = &table.columns[key];
    if !column.is_integer() {
        return Ok(whole);
    }
    let k = column.quoted_name();
    let t = table.qualified();
    let sql = format!(
        "SELECT MIN({k}), MAX({k}), (SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}) FROM {t}",
        sql_string(&table.database),
        sql_string(&table.table)
    );
    let stats = query_strings(config, conn, &sql, "splitting the snapshot into chunks").await?;
    let number =
        |i: usize| stats.first().and_then(|r| r.get(i).cloned().flatten()).and_then(|v| v.parse::<i128>().ok());
    let (Some(min), Some(max)) = (number(0), number(1)) else {
        return Ok(whole);
    };
    let estimated_rows = number(2).unwrap_or(0).max(1);
    let size = config.chunk_size as i128;
    let bounds: Vec<i128> = if max - min < 2 * estimated_rows {
        // Dense keys (Flink CDC's even distribution): split the key range arithmetically,
        // without scanning the index.
        (1..).map(|i| min + i * size).take_while(|b| *b <= max).collect()
    } else {
        let mut bounds = Vec::new();
        let mut cursor = min;
        loop {
            let sql =
                format!("SELECT {k} FROM {t} WHERE {k} >= {cursor} ORDER BY {k} LIMIT 1 OFFSET {}", config.chunk_size);
            let next = query_strings(config, conn, &sql, "splitting the snapshot into chunks").await?;
            match next.first().and_then(|r| r.first().cloned().flatten()).and_then(|v| v.parse::<i128>().ok()) {
                Some(n) => {
                    bounds.push(n);
                    cursor = n;
                }
                None => break,
            }
        }
        bounds
    };
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    let mut lo = None;
    for b in bounds {
        chunks.push(Chunk { table: index, lo, hi: Some(b), high: None });
        lo = Some(b);
    }
    chunks.push(Chunk { table: index, lo, hi: None, high: None });
    Ok(chunks)
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Keeps the binlog rows of one chunk up to its high watermark.
struct ChunkFilter<'a> {
    table: &'a CapturedTable,
    chunk: &'a Chunk,
    high: &'a BinlogPos,
}

impl RowFilter for ChunkFilter<'_> {
    fn needs_key(&self, _: &CapturedTable) -> bool {
        self.chunk.lo.is_some() || self.chunk.hi.is_some()
    }

    fn keep(&self, table: &CapturedTable, key: Option<i128>, event_end: &BinlogPos) -> bool {
        table.database == self.table.database
            && table.table == self.table.table
            && event_end <= self.high
            && (!self.needs_key(table) || self.chunk.contains(key))
    }
}

/// Skips, after the snapshot, binlog rows already contained in the chunk their key belongs to.
pub struct SnapshotFilter {
    chunks: HashMap<(String, String), Vec<Chunk>>,
    pub max_high: BinlogPos,
}

impl SnapshotFilter {
    pub fn new(tables: &[Arc<CapturedTable>], chunks: &[Chunk]) -> Option<Self> {
        let mut by_table: HashMap<(String, String), Vec<Chunk>> = HashMap::new();
        let mut max_high: Option<BinlogPos> = None;
        for c in chunks {
            let t = &tables[c.table];
            by_table.entry((t.database.clone(), t.table.clone())).or_default().push(c.clone());
            if let Some(h) = &c.high {
                if max_high.as_ref().is_none_or(|m| h > m) {
                    max_high = Some(h.clone());
                }
            }
        }
        Some(SnapshotFilter { chunks: by_table, max_high: max_high? })
    }
}

impl RowFilter for SnapshotFilter {
    fn needs_key(&self, table: &CapturedTable) -> bool {
        self.chunks.get(&(table.database.clone(), table.table.clone())).is_some_and(|c| c.len() > 1)
    }

    fn keep(&self, table: &CapturedTable, key: Option<i128>, event_end: &BinlogPos) -> bool {
        let Some(chunks) = self.chunks.get(&(table.database.clone(), table.table.clone())) else { return true };
        match chunks.iter().find(|c| c.contains(key) || chunks.len() == 1) {
            Some(c) => c.high.as_ref().is_none_or(|h| event_end > h),
            None => true,
        }
    }
}

/// What a chunk reader needs, shared by the parallel readers.
pub struct ChunkContext {
    pub config: Arc<MySqlCdcConfig>,
    /// What the captured tables are read into, for the backfills' binlog readers.
    pub declared: Declared,
    pub tables: Vec<Arc<CapturedTable>>,
    pub pool: mysql_async::Pool,
    /// MariaDB gives each chunk's exact binlog position; MySQL needs the watermark backfill.
    pub mariadb: bool,
    /// The server's version, for the statements MySQL renamed.
    pub version: ServerVersion,
    /// One lock per backfill server id: two dumps with one server id would cut each other off.
    pub backfill_locks: Vec<tokio::sync::Mutex<()>>,
    /// Chunks are read over [`RowSession`]s until one cannot be opened (TLS, another
    /// authentication); from then on over `mysql_async`.
    pub own_sessions: AtomicBool,
    /// Own sessions between chunks: logging in again for every chunk cost a connection,
    /// a server thread and a handshake each.
    pub idle_sessions: std::sync::Mutex<Vec<IdleSession>>,
}

/// How long a MariaDB reader goes on reading chunks in one consistent-snapshot transaction.
///
/// A transaction per chunk cost the server a third more than one scan of the table (start,
/// `SHOW STATUS`, commit for every 8096 rows); one transaction for the whole snapshot would hold
/// back InnoDB's purge for as long as the snapshot runs, which incremental snapshots avoid.
/// Chunks read in one transaction share its binlog position, which is exact for each of them.
const SNAPSHOT_REUSE: Duration = Duration::from_secs(5);

/// A session between chunks, with the consistent snapshot it keeps open (MariaDB).
pub struct IdleSession {
    session: RowSession,
    snapshot: Option<OpenSnapshot>,
}

/// A consistent-snapshot transaction: its exact binlog position and when it began.
struct OpenSnapshot {
    id: u64,
    position: BinlogPos,
    began: Instant,
}

static NEXT_SNAPSHOT_ID: AtomicU64 = AtomicU64::new(0);

/// Closes an idle session whose transaction is still open at `SNAPSHOT_REUSE`, which ends that
/// transaction: while the job waits on its sinks no chunk takes the session, and its read view
/// would otherwise hold back purge for as long as the wait lasts.
async fn end_when_stale(ctx: Weak<ChunkContext>, id: u64, began: Instant) {
    tokio::time::sleep_until((began + SNAPSHOT_REUSE).into()).await;
    let Some(ctx) = ctx.upgrade() else { return };
    let stale = ctx.idle_sessions.lock().ok().and_then(|mut idle| {
        let at = idle.iter().position(|s| s.snapshot.as_ref().is_some_and(|open| open.id == id))?;
        Some(idle.swap_remove(at))
    });
    drop(stale);
}

/// The session a chunk is read over.
enum ChunkSession {
    Own(RowSession),
    Pooled(Conn),
}

impl ChunkSession {
    /// A session for the next chunk, with the snapshot it still has open, if young enough.
    async fn open(ctx: &ChunkContext) -> Result<(ChunkSession, Option<OpenSnapshot>)> {
        let config = &ctx.config;
        let idle = ctx.idle_sessions.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(IdleSession { session, snapshot }) = idle {
            // An older one is ended by the next START TRANSACTION (an implicit commit).
            let snapshot = snapshot.filter(|s| s.began.elapsed() < SNAPSHOT_REUSE);
            return Ok((ChunkSession::Own(session), snapshot));
        }
        if ctx.own_sessions.load(Ordering::Relaxed) {
            let opened = match &super::server::own_login(config) {
                Some(login) => RowSession::open(login).await?,
                None => Opened::Unsupported("TLS is configured".into()),
            };
            match opened {
                Opened::Ready(session) => {
                    let mut session = ChunkSession::Own(session);
                    prepare_session(config, session.statements()).await?;
                    return Ok((session, None));
                }
                Opened::Unsupported(why) => {
                    if ctx.own_sessions.swap(false, Ordering::Relaxed) {
                        tracing::info!(table = %config.table, reason = %why, "mysql-cdc reads the snapshot through mysql_async");
                    }
                }
            }
        }
        let conn = tokio::time::timeout(config.connect_timeout, ctx.pool.get_conn())
            .await
            .map_err(|_| {
                Error::external(format!("connecting to {}:{} for the snapshot timed out", config.hostname, config.port))
            })?
            .map_err(|e| server_error(config, "connecting for the snapshot", e))?;
        let mut session = ChunkSession::Pooled(conn);
        prepare_session(config, session.statements()).await?;
        Ok((session, None))
    }

    fn statements(&mut self) -> &mut dyn Statements {
        match self {
            ChunkSession::Own(session) => session,
            ChunkSession::Pooled(conn) => conn,
        }
    }

    /// Runs the chunk's `SELECT` of the table's columns with `filter`, appending its rows.
    async fn read(
        &mut self,
        config: &MySqlCdcConfig,
        filter: &str,
        table: &CapturedTable,
        builder: &mut ChangeBuilder,
    ) -> Result<()> {
        let doing = format!("reading snapshot chunk of {}", table.qualified());
        let kind = if matches!(self, ChunkSession::Own(_)) { "own" } else { "mysql_async" };
        tracing::debug!(table = %table.qualified(), session = kind, "reading a snapshot chunk");
        match self {
            ChunkSession::Own(session) => {
                let sql = format!("SELECT {} FROM {}{filter}", table.select_list(), table.qualified());
                let prepared = session
                    .prepared_rows(&sql, &doing, |row, cells, types| {
                        builder.append_binary_row(table, |i| {
                            cells.get(i).copied().flatten().map(|(s, e)| (types[i], &row[s..e]))
                        })
                    })
                    .await?;
                if prepared {
                    return Ok(());
                }
                tracing::debug!(table = %table.qualified(), "the server prepares no statements: a text query reads the chunk");
                let sql = format!("SELECT {} FROM {}{filter}", table.text_select_list(), table.qualified());
                session
                    .query_rows(&sql, &doing, |row, cells| {
                        builder.append_text_row(table, |i| cells.get(i).copied().flatten().map(|(s, e)| &row[s..e]))
                    })
                    .await
            }
            ChunkSession::Pooled(conn) => {
                let sql = format!("SELECT {} FROM {}{filter}", table.text_select_list(), table.qualified());
                let mut result = conn.query_iter(sql).await.map_err(|e| server_error(config, &doing, e))?;
                let mut rows =
                    result.stream::<mysql_async::Row>().await.map_err(|e| server_error(config, &doing, e))?;
                if let Some(rows) = rows.as_mut() {
                    while let Some(row) = rows.next().await {
                        append_row(builder, table, &row.map_err(|e| server_error(config, &doing, e))?)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Snapshot sessions read raw bytes in each column's character set, like the binlog, and
/// TIMESTAMP values in UTC. They read at REPEATABLE READ whatever the server's default: under
/// READ COMMITTED a `SELECT` would see rows committed after the consistent snapshot's position.
pub async fn prepare_session<S: Statements + ?Sized>(config: &MySqlCdcConfig, conn: &mut S) -> Result<()> {
    conn.run(
        config,
        "SET time_zone = '+00:00', NAMES utf8mb4, character_set_results = binary",
        "preparing the snapshot session",
    )
    .await?;
    conn.run(config, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "preparing the snapshot session").await
}

/// Appends a row of a snapshot `SELECT` of [`CapturedTable::text_select_list`].
pub fn append_row(builder: &mut ChangeBuilder, table: &CapturedTable, row: &mysql_async::Row) -> Result<()> {
    builder.append_text_row(table, |i| match row.as_ref(i) {
        Some(mysql_async::Value::Bytes(b)) => Some(b.as_slice()),
        _ => None,
    })
}

/// Reads one chunk and reconciles it with the binlog between its watermarks: `+I` rows of the
/// chunk as of its high watermark, and that watermark.
pub async fn read_chunk(ctx: Arc<ChunkContext>, chunk: Chunk, reader: usize) -> Result<(ChangeBatch, BinlogPos)> {
    let config = &ctx.config;
    let table = &ctx.tables[chunk.table];
    let (mut session, open) = ChunkSession::open(&ctx).await?;
    let begun_here = open.is_none();
    let snapshot = match open {
        Some(open) => open,
        None => {
            let began = Instant::now();
            let position = if ctx.mariadb {
                super::server::consistent_snapshot_position(config, session.statements()).await?
            } else {
                current_position(config, session.statements(), ctx.version).await?
            };
            OpenSnapshot { id: NEXT_SNAPSHOT_ID.fetch_add(1, Ordering::Relaxed), position, began }
        }
    };
    let low = snapshot.position.clone();
    let mut conditions = Vec::new();
    if let Some(key) = table.chunk_key {
        let k = table.columns[key].quoted_name();
        if let Some(lo) = chunk.lo {
            conditions.push(format!("{k} >= {lo}"));
        }
        match (chunk.lo, chunk.hi) {
            // A unique chunk key may still hold NULLs (chunk.key-column of a keyless table).
            (None, Some(hi)) => conditions.push(format!("({k} < {hi} OR {k} IS NULL)")),
            (_, Some(hi)) => conditions.push(format!("{k} < {hi}")),
            (_, None) => {}
        }
    }
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    // Room for a whole chunk up front: growing the builders by doubling copied each chunk's
    // strings several times.
    let capacity = config.chunk_size.min(16_384) as usize;
    let mut builder = ChangeBuilder::new(table.spec.schema(), config.server_time_zone, capacity)?;
    session.read(config, &filter, table, &mut builder).await?;
    // Only own sessions are kept between chunks; a pooled one goes back to the pool.
    let keep_open = ctx.mariadb && matches!(session, ChunkSession::Own(_)) && snapshot.began.elapsed() < SNAPSHOT_REUSE;
    let high = if ctx.mariadb {
        if !keep_open {
            session.statements().run(config, "COMMIT", "ending the snapshot transaction").await?;
        }
        low.clone()
    } else {
        current_position(config, session.statements(), ctx.version).await?
    };
    if let ChunkSession::Own(session) = session {
        // One timer per transaction: it finds the session by the transaction's id, however often
        // the session went back to the idle list meanwhile.
        if keep_open && begun_here {
            tokio::spawn(end_when_stale(Arc::downgrade(&ctx), snapshot.id, snapshot.began));
        }
        if let Ok(mut idle) = ctx.idle_sessions.lock() {
            idle.push(IdleSession { session, snapshot: keep_open.then_some(snapshot) });
        }
    }
    let snapshot = builder.finish()?;
    if high == low {
        return Ok((snapshot, high));
    }
    let mut changes = TableChanges::new(config.server_time_zone, 64);
    {
        let slot = reader % ctx.backfill_locks.len();
        let _lock = ctx.backfill_locks[slot].lock().await;
        let mut stream = BinlogReader::open(
            config.clone(),
            ctx.declared.clone(),
            &ctx.tables,
            StreamStart::File(low.clone()),
            config.backfill_server_id(slot),
            true,
            GtidState::default(),
        )
        .await?;
        let filter = ChunkFilter { table, chunk: &chunk, high: &high };
        let result = async {
            while stream.last_event_end < high || stream.in_transaction() {
                if stream.next(Duration::from_secs(30), &mut changes, &filter).await?.is_none() {
                    break;
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        stream.close().await;
        result?;
    }
    // The filter keeps this chunk's table's rows only, read in its current columns.
    let parts = changes
        .take()?
        .into_iter()
        .map(|event| match event {
            Event::Changes { changes, .. } => Ok(changes),
            _ => Err(Error::internal("a backfill collected an event other than changes")),
        })
        .collect::<Result<Vec<_>>>()?;
    let changes = ChangeBatch::concat(snapshot.rows().schema_ref(), &parts)?;
    tracing::debug!(table = %table.qualified(), lo = ?chunk.lo, hi = ?chunk.hi, %low, %high, backfill = changes.num_rows(), "chunk backfilled");
    let merged = reconcile(snapshot.rows(), &changes, &table.key_columns)?;
    Ok((ChangeBatch::inserts(merged), high))
}

/// Where a piece of a chunk starts: its first row and that row's key.
pub type Cut = (usize, i128);

/// A chunk's rows sorted by chunk key (NULL first), and where to cut them into pieces of at most
/// `piece_rows` rows — each cut at a key change, with the key its piece starts at — so every piece
/// is itself a key range. `None` when the declared chunk key column is not an integer type.
pub fn split_by_key(
    rows: &RecordBatch,
    key_column: usize,
    piece_rows: usize,
) -> Result<Option<(RecordBatch, Vec<Cut>)>> {
    let column = rows.column(key_column);
    if !column.data_type().is_integer() {
        return Ok(None);
    }
    let keys = cast(column, &DataType::Decimal128(38, 0))?;
    let keys = keys.as_primitive::<Decimal128Type>();
    // A primary-key range comes back in key order from InnoDB: sort only when it did not.
    let in_order =
        (1..keys.len()).all(|i| keys.is_null(i - 1) || keys.is_valid(i) && keys.value(i - 1) <= keys.value(i));
    let order = if in_order {
        None
    } else {
        Some(sort_to_indices(keys, Some(SortOptions { descending: false, nulls_first: true }), None)?)
    };
    let sorted = match &order {
        Some(order) => take_record_batch(rows, order)?,
        None => rows.clone(),
    };
    let key_at = |i: usize| {
        let row = order.as_ref().map_or(i, |o| o.value(i) as usize);
        keys.is_valid(row).then(|| keys.value(row))
    };
    let mut cuts = Vec::new();
    let mut at = piece_rows;
    while at < sorted.num_rows() {
        // Rows sharing a key (a composite primary key's first column) stay in one piece.
        match (at..sorted.num_rows()).find(|&i| key_at(i) != key_at(i - 1)) {
            Some(cut) => {
                let Some(key) = key_at(cut) else {
                    return Err(Error::internal("chunk rows not sorted by key"));
                };
                cuts.push((cut, key));
                at = cut + piece_rows;
            }
            None => break,
        }
    }
    Ok(Some((sorted, cuts)))
}

/// Applies binlog changes (in order) to snapshot rows by key: the rows as they are after the changes.
pub fn reconcile(snapshot: &RecordBatch, changes: &ChangeBatch, key_columns: &[usize]) -> Result<RecordBatch> {
    if changes.is_empty() {
        return Ok(snapshot.clone());
    }
    let fields: Vec<SortField> =
        key_columns.iter().map(|i| SortField::new(snapshot.schema().field(*i).data_type().clone())).collect();
    let converter = RowConverter::new(fields)?;
    let keys_of = |batch: &RecordBatch| -> Result<datafusion::arrow::row::Rows> {
        let columns: Vec<ArrayRef> = key_columns.iter().map(|i| batch.column(*i).clone()).collect();
        Ok(converter.convert_columns(&columns)?)
    };
    let change_keys = keys_of(changes.rows())?;
    let mut latest: HashMap<Vec<u8>, Option<u32>> = HashMap::new();
    for i in 0..changes.num_rows() {
        let row = change_keys.row(i).as_ref().to_vec();
        let state = match changes.kind(i) {
            RowKind::Insert | RowKind::UpdateAfter => Some(i as u32),
            RowKind::UpdateBefore | RowKind::Delete => None,
        };
        latest.insert(row, state);
    }
    let snapshot_keys = keys_of(snapshot)?;
    let kept: UInt32Array = (0..snapshot.num_rows())
        .filter(|i| !latest.contains_key(snapshot_keys.row(*i).as_ref()))
        .map(|i| i as u32)
        .collect();
    let mut added: Vec<u32> = latest.values().flatten().copied().collect();
    added.sort_unstable();
    let added = UInt32Array::from(added);
    let parts = [take_record_batch(snapshot, &kept)?, take_record_batch(changes.rows(), &added)?];
    Ok(concat_batches(&snapshot.schema(), &parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch(ids: &[i32], names: &[&str]) -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true), Field::new("n", DataType::Utf8, true)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int32Array::from(ids.to_vec())), Arc::new(StringArray::from(names.to_vec()))],
        )
        .unwrap()
    }

    #[test]
    fn reconcile_applies_changes_by_key() {
        let snapshot = batch(&[1, 2, 3], &["a", "b", "c"]);
        let changes = ChangeBatch::from_kinds(
            batch(&[2, 2, 3, 4, 5, 5], &["b", "B", "c", "d", "e", "e"]),
            &[
                RowKind::UpdateBefore,
                RowKind::UpdateAfter,
                RowKind::Delete,
                RowKind::Insert,
                RowKind::Insert,
                RowKind::Delete,
            ],
        )
        .unwrap();
        let merged = reconcile(&snapshot, &changes, &[0]).unwrap();
        let text = crate::changelog::format_rows(&ChangeBatch::inserts(merged), "").unwrap();
        assert_eq!(text, "+I[1, a]\n+I[2, B]\n+I[4, d]\n");
    }

    #[test]
    fn pieces_are_key_ranges_of_at_most_the_fetch_size() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::UInt64, true), Field::new("n", DataType::Utf8, true)]));
        let keys = [Some(u64::MAX), Some(3), None, Some(1), Some(3), Some(3), Some(2), None, Some(4)];
        let names: Vec<String> = (0..keys.len()).map(|i| format!("r{i}")).collect();
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(datafusion::arrow::array::UInt64Array::from(keys.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        let (sorted, cuts) = split_by_key(&rows, 0, 2).unwrap().unwrap();
        let text = crate::changelog::format_rows(&ChangeBatch::inserts(sorted), "").unwrap();
        let keys: Vec<&str> = text.lines().map(|l| l[3..].split(',').next().unwrap()).collect();
        assert_eq!(keys, ["null", "null", "1", "2", "3", "3", "3", "4", "18446744073709551615"]);
        // Pieces: [null, null] [1, 2] [3, 3, 3] (one key stays together) [4, max].
        assert_eq!(cuts, vec![(2, 1), (4, 3), (7, 4)]);
        assert_eq!(split_by_key(&rows, 0, 100).unwrap().unwrap().1, vec![]);
        assert!(split_by_key(&rows, 1, 2).unwrap().is_none(), "a string key is not split");
    }

    #[test]
    fn chunks_cover_every_key_once_and_round_trip() {
        let chunks = [
            Chunk { table: 0, lo: None, hi: Some(10), high: None },
            Chunk { table: 0, lo: Some(10), hi: Some(20), high: Some(BinlogPos { file: "b.000001".into(), pos: 9 }) },
            Chunk { table: 0, lo: Some(20), hi: None, high: None },
        ];
        for key in [-5, 9, 10, 19, 20, 1_000_000] {
            assert_eq!(chunks.iter().filter(|c| c.contains(Some(key))).count(), 1, "{key}");
        }
        assert_eq!(chunks.iter().position(|c| c.contains(None)), Some(0), "a NULL key is read with the first chunk");
        for c in &chunks {
            assert_eq!(&serde_json::from_value::<Chunk>(serde_json::to_value(c).unwrap()).unwrap(), c);
        }
    }
}
