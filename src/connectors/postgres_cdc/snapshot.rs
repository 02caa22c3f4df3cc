//! The snapshot: every captured table read with `COPY (SELECT …) TO STDOUT` by several sessions
//! that import one exported snapshot, so all reads see the database exactly as of the slot's
//! consistent point. Tables with more estimated rows than `scan.incremental.snapshot.chunk.size`
//! are split into chunks read in parallel: ranges of heap blocks (`ctid`) on PostgreSQL 14 and
//! later, whose TID range scans read a chunk as sequentially as `COPY table` reads the whole
//! table and need no key; ranges of a single integer key on older servers.
//!
//! A table whose every column pairs with a binary decoder ([`BinaryForm::of`]) is read in
//! `FORMAT binary`, which spares the server formatting numbers and timestamps as text and us
//! parsing them back; any other table (arrays, intervals, a value read as STRING, …) is read as
//! text, the form the stream delivers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::changes::{ChangeBuilder, RowContext};
use super::checks::{connect, pg_error, quote_ident, quote_literal, CapturedTable};
use super::pgoutput::Cell;
use super::session::{Purpose, Session};
use super::values::{BinaryForm, FloatSource};
use super::Config;
use crate::changelog::{ChangeBatch, RowKind};
use crate::connectors::pg_copy::BinaryTuples;
use crate::error::{Error, Result};

/// Sessions reading the snapshot side by side unless a pipeline's `parallelism` says: one per
/// core here, at least two and at most four. Each keeps a server backend busy; measured on 2
/// cores, four backends cost the server half as much CPU again per row as two, for no faster a
/// snapshot.
pub(crate) fn readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4)
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub table: Arc<CapturedTable>,
    pub range: ChunkRange,
}

/// The rows of a table one chunk reads; `None` bounds are open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChunkRange {
    Whole,
    /// Heap blocks `from..to`: `ctid >= '(from,0)' AND ctid < '(to,0)'`. Rows cannot move out of
    /// a block under the snapshot every reader imports, and the last range is open, so the
    /// ranges cover every row visible to it exactly once.
    Blocks {
        from: Option<u32>,
        to: Option<u32>,
    },
    /// Values `from..to` of the table's single integer key.
    Keys {
        from: Option<i64>,
        to: Option<i64>,
    },
}

impl ChunkRange {
    /// The `WHERE` condition selecting the chunk, `None` for the whole table.
    fn condition(&self, table: &CapturedTable) -> Option<String> {
        let (column, from, to) = match *self {
            ChunkRange::Whole => return None,
            ChunkRange::Blocks { from, to } => {
                ("ctid".to_string(), from.map(|b| format!("'({b},0)'::tid")), to.map(|b| format!("'({b},0)'::tid")))
            }
            ChunkRange::Keys { from, to } => (
                table.integer_key().map(|k| quote_ident(&k.name)).unwrap_or_default(),
                from.map(|k| k.to_string()),
                to.map(|k| k.to_string()),
            ),
        };
        let bounds: Vec<String> = [from.map(|f| format!("{column} >= {f}")), to.map(|t| format!("{column} < {t}"))]
            .into_iter()
            .flatten()
            .collect();
        (!bounds.is_empty()).then(|| bounds.join(" AND "))
    }
}

/// Splits `first..=last` into `count` ranges of equal width (the last one open), as `(from, to)`
/// bounds with `None` open.
fn split_range(first: i128, last: i128, count: i128) -> Vec<(Option<i128>, Option<i128>)> {
    let width = ((last - first + 1 + count - 1) / count).max(1);
    let mut ranges = Vec::new();
    let mut from = None;
    let mut at = first + width;
    while at <= last {
        ranges.push((from, Some(at)));
        from = Some(at);
        at += width;
    }
    ranges.push((from, None));
    ranges
}

pub enum SnapshotEvent {
    /// Rows of one table (`schema.name`).
    Batch(ChangeBatch, Arc<str>),
    /// A chunk of this table (`schema.name`) is read.
    ChunkDone(String),
}

/// The statements that put a session inside the exported snapshot `name`.
fn import_snapshot(name: &str) -> String {
    format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}", quote_literal(name))
}

/// Opens a session inside the exported snapshot `name`.
async fn session_in_snapshot(config: &Config, name: &str) -> Result<Client> {
    let client = connect(config).await?;
    client
        .batch_execute(&import_snapshot(name))
        .await
        .map_err(|e| pg_error(config, "importing the exported snapshot", e))?;
    Ok(client)
}

/// Splits the tables into chunks, reading table sizes or key bounds inside the snapshot.
async fn plan_chunks(config: &Config, client: &Client, tables: &[CapturedTable]) -> Result<Vec<Chunk>> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| pg_error(config, "reading the server version", e))?
        .get(0);
    // TID range scans came with PostgreSQL 14; before, a ctid condition scans the whole table.
    let by_blocks = version >= 140_000;
    let mut chunks = Vec::new();
    for table in tables {
        let table = Arc::new(table.clone());
        let count = (table.estimated_rows / config.chunk_size as f64).ceil().max(1.0) as i128;
        let whole = Chunk { table: table.clone(), range: ChunkRange::Whole };
        if count < 2 {
            chunks.push(whole);
            continue;
        }
        let reading = |what: &str| format!("reading the {what} of {}", table.shown());
        if by_blocks {
            let blocks: i64 = client
                .query_one(
                    "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::int8",
                    &[&table.qualified()],
                )
                .await
                .map_err(|e| pg_error(config, &reading("size"), e))?
                .get(0);
            let to_block = |b: i128| u32::try_from(b).ok();
            for (from, to) in split_range(0, blocks as i128 - 1, count) {
                let range = ChunkRange::Blocks { from: from.and_then(to_block), to: to.and_then(to_block) };
                chunks.push(Chunk { table: table.clone(), range });
            }
            continue;
        }
        let Some(key) = table.integer_key().map(|k| k.name.clone()) else {
            chunks.push(whole);
            continue;
        };
        let row = client
            .query_one(
                &format!("SELECT min({k})::int8, max({k})::int8 FROM {}", table.qualified(), k = quote_ident(&key)),
                &[],
            )
            .await
            .map_err(|e| pg_error(config, &reading("key range"), e))?;
        let (Some(min), Some(max)): (Option<i64>, Option<i64>) = (row.get(0), row.get(1)) else {
            chunks.push(whole);
            continue;
        };
        let to_key = |k: i128| i64::try_from(k).ok();
        for (from, to) in split_range(min as i128, max as i128, count) {
            let range = ChunkRange::Keys { from: from.and_then(to_key), to: to.and_then(to_key) };
            chunks.push(Chunk { table: table.clone(), range });
        }
    }
    Ok(chunks)
}

/// Reads every chunk under snapshot `name` with up to [`readers`] sessions, sending batches
/// and chunk completions; the channel closes when all is read (or after the first error, which
/// is sent). Returns how many chunks each table (`schema.name`) has, and the events.
pub async fn start(
    config: Arc<Config>,
    name: String,
    tables: &[CapturedTable],
    batch_size: usize,
) -> Result<(HashMap<String, usize>, mpsc::Receiver<Result<SnapshotEvent>>)> {
    let planner = session_in_snapshot(&config, &name).await?;
    let chunks = plan_chunks(&config, &planner, tables).await?;
    planner.batch_execute("COMMIT").await.map_err(|e| pg_error(&config, "ending the planning transaction", e))?;
    let total = chunks.len();
    let mut per_table = HashMap::new();
    for chunk in &chunks {
        *per_table.entry(chunk.table.shown()).or_insert(0) += 1;
    }
    let readers = total.clamp(1, config.snapshot_readers.max(1));
    tracing::info!(table = %config.table, chunks = total, readers, "postgres-cdc snapshot started");
    let queue = Arc::new(Mutex::new(VecDeque::from(chunks)));
    let (tx, rx) = mpsc::channel(readers * 2);
    for _ in 0..readers {
        let (config, name, queue, tx) = (config.clone(), name.clone(), queue.clone(), tx.clone());
        tokio::spawn(async move {
            let outcome = read_chunks(&config, &name, &queue, batch_size, &tx).await;
            if let Err(e) = outcome {
                let _ = tx.send(Err(e)).await;
            }
        });
    }
    Ok((per_table, rx))
}

async fn read_chunks(
    config: &Arc<Config>,
    name: &str,
    queue: &Mutex<VecDeque<Chunk>>,
    batch_size: usize,
    tx: &mpsc::Sender<Result<SnapshotEvent>>,
) -> Result<()> {
    let mut session = Session::connect(config.clone(), Purpose::Snapshot).await?;
    session.execute(&import_snapshot(name), "importing the exported snapshot").await?;
    loop {
        let next = queue.lock().map_err(|_| Error::internal("snapshot queue poisoned"))?.pop_front();
        let Some(chunk) = next else { break };
        if !read_chunk(config, &mut session, &chunk, batch_size, tx).await? {
            return Ok(());
        }
        if tx.send(Ok(SnapshotEvent::ChunkDone(chunk.table.shown()))).await.is_err() {
            return Ok(());
        }
    }
    session.execute("COMMIT", "ending the snapshot transaction").await
}

/// `false` when the receiver is gone (the source was closed).
async fn read_chunk(
    config: &Config,
    session: &mut Session,
    chunk: &Chunk,
    batch_size: usize,
    tx: &mpsc::Sender<Result<SnapshotEvent>>,
) -> Result<bool> {
    let table = &chunk.table;
    let shape = &table.shape;
    let columns: Vec<String> = shape.physical.iter().map(|(n, _, _)| quote_ident(n)).collect();
    let mut sql = format!("COPY (SELECT {} FROM {}", columns.join(", "), table.qualified());
    if let Some(condition) = chunk.range.condition(table) {
        sql.push_str(&format!(" WHERE {condition}"));
    }
    let mut builder = ChangeBuilder::new(shape.schema.clone(), shape.sources.clone(), batch_size)?;
    let context = RowContext { database: &config.database, schema: &table.schema, table: &table.name, op_ts_millis: 0 };
    let reading = format!("reading {}", table.shown());
    let origin: Arc<str> = table.shown().into();
    let forms: Option<Vec<BinaryForm>> = shape
        .physical
        .iter()
        .map(|(name, declared, _)| {
            let column = table.columns.iter().find(|c| &c.name == name)?;
            BinaryForm::of(&column.pg_type, declared)
        })
        .collect();
    let format = if forms.is_some() { "binary" } else { "text" };
    tracing::debug!(table = %table.shown(), range = ?chunk.range, format, "reading a snapshot chunk");
    sql.push_str(if forms.is_some() { ") TO STDOUT (FORMAT binary)" } else { ") TO STDOUT" });
    session.copy_out(&sql, &reading).await?;
    let mut tuples = BinaryTuples::new(shape.physical.len());
    let mapping: Vec<usize> = (0..shape.physical.len()).collect();
    let floats: Vec<Option<FloatSource>> = shape
        .physical
        .iter()
        .map(|(name, _, _)| {
            table.columns.iter().find(|c| &c.name == name).and_then(|c| FloatSource::of_type(&c.pg_type))
        })
        .collect();
    let mut line = CopyLine::default();
    // Text rows come one per message: read in place, carrying bytes over only when a message
    // ends inside a row.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let more = session
            .copy_data(&reading, |data| match &forms {
                Some(forms) => tuples.feed(data, |values| builder.append_binary(values, forms, &context)),
                None => {
                    let in_place = pending.is_empty() && data.ends_with(b"\n");
                    if !in_place {
                        pending.extend_from_slice(data);
                    }
                    let rows: &[u8] = if in_place { data } else { &pending };
                    let mut start = 0;
                    while let Some(end) = rows[start..].iter().position(|b| *b == b'\n') {
                        let cells = line.split(&rows[start..start + end])?;
                        builder.append(RowKind::Insert, &cells, &mapping, &floats, &context)?;
                        start += end + 1;
                    }
                    if !in_place {
                        pending.drain(..start);
                    }
                    Ok(())
                }
            })
            .await?;
        if (builder.len() >= batch_size || !more && !builder.is_empty())
            && tx.send(Ok(SnapshotEvent::Batch(builder.finish()?, origin.clone()))).await.is_err()
        {
            return Ok(false);
        }
        if !more {
            break;
        }
    }
    if forms.is_some() && !tuples.is_ended() {
        return Err(Error::external(format!("{reading}: binary COPY output ended before its trailer")));
    }
    if !pending.is_empty() {
        return Err(Error::external(format!("{reading}: COPY output ended inside a row")));
    }
    Ok(true)
}

/// Splits `COPY … TO STDOUT` text rows into cells, unescaping only fields that need it.
#[derive(Default)]
pub struct CopyLine {
    unescaped: Vec<Vec<u8>>,
    fields: Vec<(usize, usize, Option<usize>)>,
}

impl CopyLine {
    pub fn split<'a>(&'a mut self, line: &'a [u8]) -> Result<Vec<Cell<'a>>> {
        self.fields.clear();
        let mut used = 0;
        let mut start = 0;
        for end in line.iter().enumerate().filter(|(_, b)| **b == b'\t').map(|(i, _)| i).chain([line.len()]) {
            let field = &line[start..end];
            let scratch = if field != b"\\N" && field.contains(&b'\\') {
                if self.unescaped.len() <= used {
                    self.unescaped.push(Vec::new());
                }
                unescape(field, &mut self.unescaped[used])?;
                used += 1;
                Some(used - 1)
            } else {
                None
            };
            self.fields.push((start, end, scratch));
            start = end + 1;
        }
        let unescaped = &self.unescaped;
        Ok(self
            .fields
            .iter()
            .map(|&(s, e, scratch)| match scratch {
                Some(i) => Cell::Text(&unescaped[i]),
                None if &line[s..e] == b"\\N" => Cell::Null,
                None => Cell::Text(&line[s..e]),
            })
            .collect())
    }
}

fn unescape(field: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&next) = field.get(i + 1) else {
            return Err(Error::external("COPY output has a dangling backslash"));
        };
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (next - b'0') as u32;
                let mut taken = 1;
                while taken < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + (field[i] - b'0') as u32;
                    i += 1;
                    taken += 1;
                }
                out.push(v as u8);
            }
            b'x' if i < field.len() && field[i].is_ascii_hexdigit() => {
                let mut v = 0u32;
                let mut taken = 0;
                while taken < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    taken += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::postgres_cdc::checks::SourceColumn;

    fn table_keyed_by(pg_type: &str) -> CapturedTable {
        let column = |name: &str, is_key: bool| SourceColumn {
            name: name.into(),
            pg_type: pg_type.into(),
            is_key,
            not_null: is_key,
            key_position: is_key.then_some(1),
        };
        CapturedTable {
            schema: "public".into(),
            name: "t".into(),
            identity: 'd',
            columns: vec![column("Id", true), column("v", false)],
            estimated_rows: 0.0,
            shape: crate::connectors::postgres_cdc::tests::shape(),
        }
    }

    #[test]
    fn chunk_ranges_select_by_blocks_or_by_key() {
        let table = table_keyed_by("bigint");
        let blocks = |from, to| ChunkRange::Blocks { from, to }.condition(&table);
        assert_eq!(blocks(None, Some(10)).as_deref(), Some("ctid < '(10,0)'::tid"));
        assert_eq!(blocks(Some(10), Some(20)).as_deref(), Some("ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid"));
        assert_eq!(blocks(Some(20), None).as_deref(), Some("ctid >= '(20,0)'::tid"));
        assert_eq!(blocks(None, None), None);
        let keys = ChunkRange::Keys { from: Some(-5), to: Some(7) }.condition(&table);
        assert_eq!(keys.as_deref(), Some("\"Id\" >= -5 AND \"Id\" < 7"));
        assert_eq!(ChunkRange::Whole.condition(&table), None);
    }

    #[test]
    fn split_ranges_cover_every_value_once() {
        for (first, last, count) in [(0, 99, 4), (0, 100, 3), (1, 1, 5), (-7, 12, 6), (0, -1, 3), (5, 1_000_003, 7)] {
            let ranges = split_range(first, last, count);
            assert!(ranges.len() as i128 <= count.max(1), "{first}..={last} in {count}: {ranges:?}");
            assert_eq!(ranges.first().map(|r| r.0), Some(None));
            assert_eq!(ranges.last().map(|r| r.1), Some(None));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "{ranges:?} leaves a gap or overlaps");
                assert!(pair[0].0.is_none_or(|from| Some(from) < pair[0].1));
            }
        }
    }

    #[test]
    fn copy_text_rows_split_and_unescape() {
        let mut line = CopyLine::default();
        let row = b"1\t\\N\ta\\tb\\\\c\\nd\t\\x41\\101\t";
        let cells = line.split(row).unwrap();
        assert_eq!(
            cells,
            [Cell::Text(b"1"), Cell::Null, Cell::Text(b"a\tb\\c\nd"), Cell::Text(b"AA"), Cell::Text(b"")]
        );
        // A bytea value arrives as \\x… in COPY text: one backslash after unescaping.
        let cells = line.split(b"\\\\x00ff").unwrap();
        assert_eq!(cells, [Cell::Text(b"\\x00ff")]);
    }
}
