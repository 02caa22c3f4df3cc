//! The snapshot: every captured table read with `COPY (SELECT …) TO STDOUT` by several sessions
//! that import one exported snapshot, so all reads see the database exactly as of the slot's
//! consistent point. Tables with a single integer key and more estimated rows than
//! `scan.incremental.snapshot.chunk.size` are split into key ranges read in parallel.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::changes::{ChangeBuilder, RowContext};
use super::checks::{connect, pg_error, quote_ident, quote_literal, CapturedTable};
use super::pgoutput::Cell;
use super::Config;
use crate::changelog::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

/// Sessions reading the snapshot side by side.
const MAX_READERS: usize = 4;

#[derive(Debug, Clone)]
pub struct Chunk {
    pub table: Arc<CapturedTable>,
    /// `key >= from AND key < to`; `None` bounds are open.
    pub range: Option<(Option<i64>, Option<i64>)>,
}

pub enum SnapshotEvent {
    Batch(ChangeBatch),
    /// A chunk of this table (`schema.name`) is read.
    ChunkDone(String),
}

/// Opens a session inside the exported snapshot `name`.
async fn session_in_snapshot(config: &Config, name: &str) -> Result<Client> {
    let client = connect(config).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(name)
        ))
        .await
        .map_err(|e| pg_error(config, "importing the exported snapshot", e))?;
    Ok(client)
}

/// Splits the tables into chunks, reading key bounds inside the snapshot.
async fn plan_chunks(config: &Config, client: &Client, tables: &[CapturedTable]) -> Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    for table in tables {
        let table = Arc::new(table.clone());
        let key = table.integer_key().map(|k| k.name.clone());
        let split = table.estimated_rows > config.chunk_size as f64;
        let (Some(key), true) = (key, split) else {
            chunks.push(Chunk { table, range: None });
            continue;
        };
        let row = client
            .query_one(
                &format!("SELECT min({k})::int8, max({k})::int8 FROM {}", table.qualified(), k = quote_ident(&key)),
                &[],
            )
            .await
            .map_err(|e| pg_error(config, &format!("reading the key range of {}", table.shown()), e))?;
        let (Some(min), Some(max)): (Option<i64>, Option<i64>) = (row.get(0), row.get(1)) else {
            chunks.push(Chunk { table, range: None });
            continue;
        };
        let count = (table.estimated_rows / config.chunk_size as f64).ceil().max(1.0) as i128;
        let span = max as i128 - min as i128 + 1;
        let width = ((span + count - 1) / count).max(1);
        let mut from: Option<i64> = None;
        let mut at = min as i128 + width;
        while at <= max as i128 {
            let to = at as i64;
            chunks.push(Chunk { table: table.clone(), range: Some((from, Some(to))) });
            from = Some(to);
            at += width;
        }
        chunks.push(Chunk { table, range: Some((from, None)) });
    }
    Ok(chunks)
}

/// Reads every chunk under snapshot `name` with up to [`MAX_READERS`] sessions, sending batches
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
    let total = chunks.len();
    let mut per_table = HashMap::new();
    for chunk in &chunks {
        *per_table.entry(chunk.table.shown()).or_insert(0) += 1;
    }
    let readers = total.clamp(1, MAX_READERS);
    tracing::info!(table = %config.table, chunks = total, readers, "postgres-cdc snapshot started");
    let queue = Arc::new(Mutex::new(VecDeque::from(chunks)));
    let (tx, rx) = mpsc::channel(readers * 2);
    let mut planner = Some(planner);
    for _ in 0..readers {
        let (config, name, queue, tx) = (config.clone(), name.clone(), queue.clone(), tx.clone());
        let session = planner.take();
        tokio::spawn(async move {
            let outcome = read_chunks(&config, &name, session, &queue, batch_size, &tx).await;
            if let Err(e) = outcome {
                let _ = tx.send(Err(e)).await;
            }
        });
    }
    Ok((per_table, rx))
}

async fn read_chunks(
    config: &Config,
    name: &str,
    session: Option<Client>,
    queue: &Mutex<VecDeque<Chunk>>,
    batch_size: usize,
    tx: &mpsc::Sender<Result<SnapshotEvent>>,
) -> Result<()> {
    let client = match session {
        Some(c) => c,
        None => session_in_snapshot(config, name).await?,
    };
    loop {
        let next = queue.lock().map_err(|_| Error::internal("snapshot queue poisoned"))?.pop_front();
        let Some(chunk) = next else { break };
        if !read_chunk(config, &client, &chunk, batch_size, tx).await? {
            return Ok(());
        }
        if tx.send(Ok(SnapshotEvent::ChunkDone(chunk.table.shown()))).await.is_err() {
            return Ok(());
        }
    }
    client.batch_execute("COMMIT").await.map_err(|e| pg_error(config, "ending the snapshot transaction", e))
}

/// `false` when the receiver is gone (the source was closed).
async fn read_chunk(
    config: &Config,
    client: &Client,
    chunk: &Chunk,
    batch_size: usize,
    tx: &mpsc::Sender<Result<SnapshotEvent>>,
) -> Result<bool> {
    let table = &chunk.table;
    let columns: Vec<String> = config.physical.iter().map(|(n, _, _)| quote_ident(n)).collect();
    let mut sql = format!("COPY (SELECT {} FROM {}", columns.join(", "), table.qualified());
    if let Some((from, to)) = chunk.range {
        let key = table.integer_key().map(|k| quote_ident(&k.name)).unwrap_or_default();
        let mut conditions = Vec::new();
        if let Some(from) = from {
            conditions.push(format!("{key} >= {from}"));
        }
        if let Some(to) = to {
            conditions.push(format!("{key} < {to}"));
        }
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
    }
    sql.push_str(") TO STDOUT");
    let mut builder = ChangeBuilder::new(config.schema.clone(), config.sources.clone(), batch_size)?;
    let mapping: Vec<usize> = (0..config.physical.len()).collect();
    let context = RowContext { database: &config.database, schema: &table.schema, table: &table.name, op_ts_millis: 0 };
    let reading = format!("reading {}", table.shown());
    let stream = client.copy_out(sql.as_str()).await.map_err(|e| pg_error(config, &reading, e))?;
    futures::pin_mut!(stream);
    let mut pending: Vec<u8> = Vec::new();
    let mut line = CopyLine::default();
    while let Some(data) = stream.next().await {
        let data = data.map_err(|e| pg_error(config, &reading, e))?;
        // The server sends each row in a message of its own: read it in place, and carry bytes
        // over only when a message ends inside a row.
        let in_place = pending.is_empty() && data.ends_with(b"\n");
        if !in_place {
            pending.extend_from_slice(&data);
        }
        let rows: &[u8] = if in_place { &data } else { &pending };
        let mut start = 0;
        while let Some(end) = rows[start..].iter().position(|b| *b == b'\n') {
            let cells = line.split(&rows[start..start + end])?;
            builder.append(RowKind::Insert, &cells, &mapping, &context)?;
            start += end + 1;
            if builder.len() >= batch_size && tx.send(Ok(SnapshotEvent::Batch(builder.finish()?))).await.is_err() {
                return Ok(false);
            }
        }
        if !in_place {
            pending.drain(..start);
        }
    }
    if !pending.is_empty() {
        return Err(Error::external(format!("{reading}: COPY output ended inside a row")));
    }
    if !builder.is_empty() && tx.send(Ok(SnapshotEvent::Batch(builder.finish()?))).await.is_err() {
        return Ok(false);
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
