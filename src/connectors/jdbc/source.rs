//! The bounded jdbc scan. Without partition options it reads the whole table with one `SELECT`.
//! With them, `scan.partition.column` is split into `scan.partition.num` ranges between the
//! bounds; the first range is open below and the last open above (values outside the bounds are
//! read once, by the edge ranges), and NULLs get a range of their own, so every row is read
//! exactly once. Up to [`MAX_CONNECTIONS`] ranges are read at the same time, each over its own
//! connection, and streamed as Arrow batches of `scan.fetch-size` rows (default: the session's
//! batch size); nothing is materialised beyond the batches in flight.
//!
//! On PostgreSQL all ranges read one snapshot: a holder transaction exports it
//! (`pg_export_snapshot()`) and every reader imports it (`SET TRANSACTION SNAPSHOT`). On
//! MySQL/MariaDB each range is its own statement, so ranges may see different instants.
//!
//! Position ([`ScanPosition`]): `{"ranges": n, "done": [indices of finished ranges]}`. Resuming
//! skips finished ranges and re-reads the others from their start.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::columns::{BatchBuilder, SourceKind};
use super::dialect::{connect_mysql, connect_postgres, mysql_error, open_mysql_session, pg_error, Dialect};
use super::{mysqltext, pgwire, JdbcConfig, Partitioning};
use crate::changelog::ChangeBatch;
use crate::connectors::mysql_session::Opened;
use crate::connectors::{Position, ResumeFrom, Source, SourceBatch};
use crate::error::{Error, Result};

/// Connections a scan opens at most, whatever 'scan.partition.num' says.
pub const MAX_CONNECTIONS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRange {
    /// The whole table (no partitioning).
    All,
    /// `lo <= column < hi`, either end open when `None`.
    Between(Option<i64>, Option<i64>),
    /// `column IS NULL`.
    Nulls,
}

impl ScanRange {
    fn condition(&self, column: &str) -> String {
        match self {
            ScanRange::All => String::new(),
            ScanRange::Nulls => format!(" WHERE {column} IS NULL"),
            ScanRange::Between(None, None) => format!(" WHERE {column} IS NOT NULL"),
            ScanRange::Between(Some(lo), None) => format!(" WHERE {column} >= {lo}"),
            ScanRange::Between(None, Some(hi)) => format!(" WHERE {column} < {hi}"),
            ScanRange::Between(Some(lo), Some(hi)) => format!(" WHERE {column} >= {lo} AND {column} < {hi}"),
        }
    }
}

/// The ranges of a scan: `num` slices of `[lower, upper]` (edges open) plus the NULL range.
pub fn scan_ranges(partitioning: Option<&Partitioning>) -> Vec<ScanRange> {
    let Some(p) = partitioning else { return vec![ScanRange::All] };
    let span = p.upper as i128 - p.lower as i128 + 1;
    let mut bounds: Vec<i64> =
        (1..p.num as i128).map(|i| (p.lower as i128 + span * i / p.num as i128) as i64).collect();
    bounds.dedup();
    let mut ranges = Vec::with_capacity(bounds.len() + 2);
    let mut lo = None;
    for b in bounds {
        ranges.push(ScanRange::Between(lo, Some(b)));
        lo = Some(b);
    }
    ranges.push(ScanRange::Between(lo, None));
    ranges.push(ScanRange::Nulls);
    ranges
}

enum Event {
    Rows(RecordBatch),
    Done(usize),
}

/// Which ranges of the scan are finished, out of how many (the partition options decide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScanPosition<'a> {
    ranges: usize,
    done: Cow<'a, BTreeSet<usize>>,
}

impl ScanPosition<'_> {
    /// The position as the runtime stores it.
    fn to_position(&self) -> Position {
        serde_json::to_value(self).expect("a jdbc scan position is plain JSON")
    }
}

impl ScanPosition<'static> {
    /// Reads a stored position of table `table`; one this connector did not write (or that was
    /// edited) is the user's to clear.
    fn from_position(position: &Position, table: &str) -> Result<Self> {
        ScanPosition::deserialize(position).map_err(|e| {
            Error::user(format!(
                "jdbc table `{table}` cannot resume its scan from position {position}: {e}; it is not a position this \
                 connector writes. Start the job over with --fresh"
            ))
        })
    }
}

pub struct JdbcSource {
    config: Arc<JdbcConfig>,
    batch_size: usize,
    ranges: Vec<ScanRange>,
    done: BTreeSet<usize>,
    events: Option<mpsc::Receiver<Result<Event>>>,
    readers: Vec<JoinHandle<()>>,
    /// PostgreSQL: the transaction whose snapshot every range reader imports, open until the
    /// scan is closed, so all ranges see the table at one instant.
    snapshot_holder: Option<tokio_postgres::Client>,
}

impl JdbcSource {
    pub fn new(config: Arc<JdbcConfig>, batch_size: usize) -> Self {
        let ranges = scan_ranges(config.partitioning.as_ref());
        JdbcSource {
            config,
            batch_size,
            ranges,
            done: BTreeSet::new(),
            events: None,
            readers: Vec::new(),
            snapshot_holder: None,
        }
    }

    fn position(&self) -> Position {
        ScanPosition { ranges: self.ranges.len(), done: Cow::Borrowed(&self.done) }.to_position()
    }
}

#[async_trait]
impl Source for JdbcSource {
    fn schema(&self) -> SchemaRef {
        self.config.schema.clone()
    }

    fn is_bounded(&self) -> bool {
        true
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        if let Some(p) = resume_from.as_ref().map(|r| &r.position) {
            let stored = ScanPosition::from_position(p, &self.config.name)?;
            if stored.ranges != self.ranges.len() || stored.done.iter().any(|i| *i >= self.ranges.len()) {
                return Err(Error::user(format!(
                    "jdbc table `{}` cannot resume its scan from position {p}: it was taken with other partition options (now {} ranges). Restore them, or start the job over with --fresh",
                    self.config.name,
                    self.ranges.len()
                )));
            }
            self.done = stored.done.into_owned();
            // A range is read again from its start; rows of it delivered before the checkpoint
            // are in the state of a stateful query already.
            if resume_from.as_ref().is_some_and(|r| r.stateful) && self.done.len() < self.ranges.len() {
                return Err(Error::user(format!(
                    "jdbc table `{}` cannot resume its interrupted scan under a stateful query (GROUP BY, DISTINCT, \
                     UNION, JOIN, Top-N): its unfinished ranges are read again from their start, and rows the \
                     checkpoint's state already holds would be counted twice. Start the job over with --fresh",
                    self.config.name
                )));
            }
        }
        let todo: VecDeque<usize> = (0..self.ranges.len()).filter(|i| !self.done.contains(i)).collect();
        let snapshot = if self.config.endpoint.dialect == Dialect::Postgres && todo.len() > 1 {
            let holder = connect_postgres(&self.config.endpoint, self.config.retry_timeout).await?;
            let what =
                format!("table `{}`: exporting a snapshot of {}", self.config.name, self.config.describe_target());
            holder
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(|e| pg_error(&e, &what))?;
            let row = holder.query_one("SELECT pg_export_snapshot()", &[]).await.map_err(|e| pg_error(&e, &what))?;
            let id: String = row.try_get(0).map_err(|e| pg_error(&e, &what))?;
            self.snapshot_holder = Some(holder);
            Some(id)
        } else {
            None
        };
        let parallelism = todo.len().clamp(1, MAX_CONNECTIONS);
        let (tx, rx) = mpsc::channel(parallelism * 2);
        let queue = Arc::new(Mutex::new(todo));
        let fetch = self.config.fetch_size.unwrap_or(self.batch_size).max(1);
        for _ in 0..parallelism {
            let reader = RangeReader {
                config: self.config.clone(),
                ranges: self.ranges.clone(),
                queue: queue.clone(),
                events: tx.clone(),
                fetch,
                snapshot: snapshot.clone(),
            };
            self.readers.push(tokio::spawn(reader.run()));
        }
        self.events = Some(rx);
        Ok(())
    }

    fn start_position(&self) -> Option<Position> {
        Some(self.position())
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.done.len() == self.ranges.len() {
            return Ok(None);
        }
        let Some(events) = self.events.as_mut() else {
            return Err(Error::internal("jdbc scan read before start"));
        };
        match events.recv().await {
            Some(Ok(Event::Rows(rows))) => Ok(Some(SourceBatch::new(ChangeBatch::inserts(rows), self.position()))),
            Some(Ok(Event::Done(range))) => {
                self.done.insert(range);
                // An empty batch carries the progress, so a checkpoint can record the range as done.
                let empty = RecordBatch::new_empty(self.config.schema.clone());
                Ok(Some(SourceBatch::new(ChangeBatch::inserts(empty), self.position())))
            }
            Some(Err(e)) => Err(e),
            None => Err(Error::internal("jdbc scan readers stopped before finishing their ranges")),
        }
    }

    async fn close(&mut self) -> Result<()> {
        self.events = None;
        for reader in self.readers.drain(..) {
            reader.abort();
        }
        self.snapshot_holder = None;
        Ok(())
    }
}

struct RangeReader {
    config: Arc<JdbcConfig>,
    ranges: Vec<ScanRange>,
    queue: Arc<Mutex<VecDeque<usize>>>,
    events: mpsc::Sender<Result<Event>>,
    fetch: usize,
    snapshot: Option<String>,
}

impl RangeReader {
    fn next_range(&self) -> Option<usize> {
        self.queue.lock().ok()?.pop_front()
    }

    async fn run(self) {
        let result = match self.config.endpoint.dialect {
            Dialect::Postgres => self.read_postgres().await,
            Dialect::MySql => self.read_mysql().await,
        };
        if let Err(e) = result {
            let e = e.context(format!("table `{}`: scanning {}", self.config.name, self.config.describe_target()));
            let _ = self.events.send(Err(e)).await;
        }
    }

    /// The declared columns, quoted.
    fn columns(&self) -> Vec<String> {
        let d = self.config.endpoint.dialect;
        self.config.schema.fields().iter().map(|f| d.quote(f.name())).collect()
    }

    /// `SELECT <the declared columns as they are> FROM <table>`, whose result columns tell the
    /// source columns' types.
    fn describe(&self) -> String {
        let d = self.config.endpoint.dialect;
        format!("SELECT {} FROM {}", self.columns().join(", "), self.config.table.quoted(d))
    }

    /// The scan of one range; `read` gives each column's select-list expression from its
    /// quoted name, declared type and source kind.
    fn select(
        &self,
        range: &ScanRange,
        kinds: &[SourceKind],
        read: impl Fn(&str, &DataType, SourceKind) -> String,
    ) -> String {
        let d = self.config.endpoint.dialect;
        let list: Vec<String> = self
            .columns()
            .iter()
            .zip(self.config.schema.fields())
            .zip(kinds.iter().copied().chain(std::iter::repeat(SourceKind::Other)))
            .map(|((quoted, field), kind)| read(quoted, field.data_type(), kind))
            .collect();
        let column = match &self.config.partitioning {
            Some(p) => d.quote(self.config.schema.field(p.column).name()),
            None => String::new(),
        };
        format!("SELECT {} FROM {}{}", list.join(", "), self.config.table.quoted(d), range.condition(&column))
    }

    /// Sends a batch; false when the scan was closed.
    async fn send(&self, builder: &mut BatchBuilder) -> Result<bool> {
        let batch = builder.finish()?;
        Ok(self.events.send(Ok(Event::Rows(batch))).await.is_ok())
    }

    /// Sends a range's last rows and its end; false when the scan was closed.
    async fn finish_range(&self, builder: &mut BatchBuilder, index: usize) -> Result<bool> {
        if builder.rows() > 0 && !self.send(builder).await? {
            return Ok(false);
        }
        Ok(self.events.send(Ok(Event::Done(index))).await.is_ok())
    }

    async fn read_postgres(&self) -> Result<()> {
        let client = connect_postgres(&self.config.endpoint, self.config.retry_timeout).await?;
        if let Some(id) = &self.snapshot {
            // The id comes from pg_export_snapshot(): hex digits and dashes, safe to inline.
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
                ))
                .await
                .map_err(|e| pg_error(&e, "importing the scan's snapshot"))?;
        }
        let types: Vec<_> = self.config.schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let described =
            client.prepare(&self.describe()).await.map_err(|e| pg_error(&e, "reading the columns' types"))?;
        let kinds = pgwire::source_kinds(described.columns())?;
        while let Some(index) = self.next_range() {
            let select = self
                .select(&self.ranges[index], &kinds, |c, t, k| pgwire::read_expression(c, t, k).unwrap_or_default());
            let sql = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
            let stream = client.copy_out(&sql).await.map_err(|e| pg_error(&e, "starting the scan"))?;
            futures::pin_mut!(stream);
            let mut decoder = pgwire::CopyDecoder::new(&types, &kinds)?;
            let mut builder = BatchBuilder::new(self.config.schema.clone(), self.fetch)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| pg_error(&e, "reading rows"))?;
                decoder.feed(&chunk, &mut builder)?;
                if builder.rows() >= self.fetch && !self.send(&mut builder).await? {
                    return Ok(());
                }
            }
            if !decoder.is_ended() {
                return Err(Error::external("PostgreSQL ended the COPY stream early"));
            }
            if !self.finish_range(&mut builder, index).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn read_mysql(&self) -> Result<()> {
        let mut session = match open_mysql_session(&self.config.endpoint, self.config.retry_timeout).await? {
            Opened::Ready(session) => session,
            Opened::Unsupported(why) => {
                tracing::info!(table = %self.config.name, reason = %why, "jdbc scans MySQL through mysql_async");
                return self.read_mysql_async().await;
            }
        };
        let kinds: Vec<SourceKind> = session
            .result_definitions(&format!("{} LIMIT 0", self.describe()), "reading the columns' types")
            .await?
            .iter()
            .map(|d| mysqltext::source_kind(d.column_type, d.decimals))
            .collect();
        while let Some(index) = self.next_range() {
            let sql = self.select(&self.ranges[index], &kinds, mysqltext::read_expression);
            let mut builder = BatchBuilder::new(self.config.schema.clone(), self.fetch)?;
            let mut more = session.query(&sql, "starting the scan").await?;
            while more {
                more = session
                    .rows("reading rows", self.fetch, |row, cells| {
                        for ((column, cell), kind) in builder.columns.iter_mut().zip(cells).zip(&kinds) {
                            match cell {
                                None => column.append_null(),
                                Some((start, end)) => mysqltext::append_text(column, Some(&row[*start..*end]), *kind)?,
                            }
                        }
                        builder.row_done();
                        Ok(())
                    })
                    .await?;
                if builder.rows() >= self.fetch && !self.send(&mut builder).await? {
                    return Ok(());
                }
            }
            if !self.finish_range(&mut builder, index).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn read_mysql_async(&self) -> Result<()> {
        use mysql_async::prelude::Queryable;
        let mut conn = connect_mysql(&self.config.endpoint, self.config.retry_timeout, &[]).await?;
        let kinds = mysqltext::describe_kinds(&mut conn, &self.describe()).await?;
        while let Some(index) = self.next_range() {
            let sql = self.select(&self.ranges[index], &kinds, mysqltext::read_expression);
            let mut builder = BatchBuilder::new(self.config.schema.clone(), self.fetch)?;
            let mut result = conn.query_iter(sql).await.map_err(|e| mysql_error(&e, "starting the scan"))?;
            while let Some(row) = result.next().await.map_err(|e| mysql_error(&e, "reading rows"))? {
                mysqltext::append_row(&mut builder, &row, &kinds)?;
                if builder.rows() >= self.fetch && !self.send(&mut builder).await? {
                    return Ok(());
                }
            }
            drop(result);
            if !self.finish_range(&mut builder, index).await? {
                return Ok(());
            }
        }
        let _ = conn.disconnect().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScanRange::*;

    fn p(num: u32, lower: i64, upper: i64) -> Partitioning {
        Partitioning { column: 0, num, lower, upper }
    }

    #[test]
    fn ranges_cover_everything_once() {
        assert_eq!(scan_ranges(None), vec![All]);
        assert_eq!(
            scan_ranges(Some(&p(3, 1, 10))),
            vec![Between(None, Some(4)), Between(Some(4), Some(7)), Between(Some(7), None), Nulls]
        );
        assert_eq!(scan_ranges(Some(&p(1, 5, 5))), vec![Between(None, None), Nulls]);
        // More partitions than values: empty slices are merged away.
        assert_eq!(
            scan_ranges(Some(&p(4, 1, 2))),
            vec![Between(None, Some(1)), Between(Some(1), Some(2)), Between(Some(2), None), Nulls]
        );
        let extreme = scan_ranges(Some(&p(2, i64::MIN, i64::MAX)));
        assert_eq!(extreme, vec![Between(None, Some(0)), Between(Some(0), None), Nulls]);
    }

    #[test]
    fn conditions_are_half_open() {
        assert_eq!(Between(Some(4), Some(7)).condition("`id`"), " WHERE `id` >= 4 AND `id` < 7");
        assert_eq!(Nulls.condition("\"id\""), " WHERE \"id\" IS NULL");
        assert_eq!(All.condition(""), "");
    }

    #[test]
    fn positions_stored_by_the_previous_release_read_and_write_back_identically() {
        let done: BTreeSet<usize> = [4, 0, 2].into();
        // The previous release's builder, as it stood.
        let old = serde_json::json!({ "ranges": 5, "done": done.iter().collect::<Vec<_>>() }).to_string();
        assert_eq!(old, r#"{"done":[0,2,4],"ranges":5}"#);
        for stored in [old.as_str(), r#"{"done":[],"ranges":1}"#] {
            let read = ScanPosition::from_position(&serde_json::from_str(stored).unwrap(), "t").unwrap();
            assert_eq!(read.to_position().to_string(), stored);
        }
        let written = ScanPosition { ranges: 5, done: Cow::Borrowed(&done) };
        assert_eq!(written.to_position().to_string(), old);
    }

    #[test]
    fn an_unreadable_position_names_the_table_and_the_fix() {
        for text in [r#"{"ranges":5}"#, r#"{"ranges":5,"done":["0"]}"#, r#"{"seed":1,"events":2}"#] {
            let err = ScanPosition::from_position(&serde_json::from_str(text).unwrap(), "orders").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::User(_)), "{err:?}");
            assert!(message.contains("table `orders`") && message.contains("--fresh"), "{message}");
        }
    }
}
