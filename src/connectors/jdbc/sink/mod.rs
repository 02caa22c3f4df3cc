//! The jdbc sink. Batches go to a writer task that owns the connection, so encoding and writing
//! overlap with the pipeline reading and transforming the next batches. The task flushes as soon
//! as it is free and has changes, taking everything queued into one flush, and on every
//! checkpoint (`prepare`); with `sink.buffer-flush.max-rows` and `.interval` both `0` it flushes
//! at checkpoints only, as in Flink. A flush compacts its changes by key (the last change
//! of a key wins, or with `sink.version-column` the newest version; a key change deletes the old
//! key) and applies them in one transaction, retried
//! with backoff on connection loss, deadlocks and serialization failures; the buffer is kept
//! until the transaction commits, so a retry never loses or duplicates a change.
//!
//! Permanent rejections: when a flush fails with an error the user must act on and the job has a
//! dead-letter destination, the flush is applied again row by row in one transaction, each row
//! under a savepoint; the rows whose values the database refuses (a NOT NULL violation, a value
//! too long or out of range) go to the dead letters, the rest commit (with the offsets row) as
//! usual. Any other refusal (a missing privilege) still stops the job.
//!
//! Exactly-once hook: when `sink.offsets-table` is set and the runtime hands the checkpoint's
//! source position over with [`Sink::stage_position`], `prepare` commits that position in the
//! offsets table in the same transaction as the data, and [`Sink::stored_position`] reads it back.

use std::sync::Arc;
use std::time::Duration;

mod mysql;
mod postgres;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, Int8Array};
use datafusion::arrow::compute::{concat, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::dialect::{
    connect_mysql, connect_postgres, mysql_error, mysql_key_share, pg_error, refuses_the_row, Dialect,
};
use super::{DeleteMode, JdbcConfig};
use crate::changelog::{compact_by_key, ChangeBatch, RowKind, TableId, Ties, Versioned};
use crate::connectors::{Position, PreparedCommit, Sink};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime::{DeadLetters, Stage};
use mysql::MyWriter;
use postgres::PgWriter;

/// A source position to store with the next flush.
#[derive(Debug, Clone)]
pub(super) struct OffsetRow {
    job: String,
    pipeline: String,
    checkpoint_id: u64,
    position: String,
}

enum Command {
    /// Changes, with the input position that covers them (for their dead letters).
    Write(ChangeBatch, Option<Position>),
    Flush {
        offset: Option<OffsetRow>,
        reply: oneshot::Sender<Result<()>>,
    },
}

pub struct JdbcSink {
    config: Arc<JdbcConfig>,
    commands: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<()>>>,
    staged: Option<(String, String, Position)>,
    dead_letters: Option<DeadLetters>,
}

impl JdbcSink {
    pub fn new(config: Arc<JdbcConfig>) -> Self {
        JdbcSink { config, commands: None, task: None, staged: None, dead_letters: None }
    }

    /// The writer task's error once it has stopped.
    async fn task_error(&mut self) -> Error {
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => Error::internal("jdbc writer stopped early"),
                Err(e) => Error::internal(format!("jdbc writer task failed: {e}")),
            },
            None => Error::internal("jdbc sink used before open or after a failure"),
        }
    }
}

/// An error's copy for a second receiver (the writer task reports a failure both to the caller
/// waiting on a flush and as its own result).
fn copy_error(e: &Error) -> Error {
    match e.kind() {
        ErrorKind::User => Error::user(e.to_string()),
        ErrorKind::External => Error::external(e.to_string()),
        ErrorKind::Internal => Error::internal(e.to_string()),
    }
}

#[async_trait]
impl Sink for JdbcSink {
    fn set_dead_letters(&mut self, dead_letters: DeadLetters) {
        self.dead_letters = Some(dead_letters).filter(DeadLetters::enabled);
    }

    async fn open(&mut self) -> Result<()> {
        let writer = Writer::connect(&self.config).await?;
        let (tx, rx) = mpsc::channel(4);
        self.commands = Some(tx);
        self.task = Some(tokio::spawn(run_writer(writer, rx, self.config.clone(), self.dead_letters.clone())));
        Ok(())
    }

    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        let Some(tx) = &self.commands else {
            return Err(Error::internal("jdbc sink written before open"));
        };
        let position = self.dead_letters.as_ref().and_then(DeadLetters::position);
        if tx.send(Command::Write(batch, position)).await.is_err() {
            self.commands = None;
            return Err(self.task_error().await);
        }
        Ok(())
    }

    fn stage_position(&mut self, job: &str, pipeline: &str, position: &Position) -> bool {
        if self.config.sink.offsets_table.is_none() {
            return false;
        }
        self.staged = Some((job.to_string(), pipeline.to_string(), position.clone()));
        true
    }

    async fn stored_position(&mut self, job: &str, pipeline: &str) -> Result<Option<Position>> {
        let Some(table) = &self.config.sink.offsets_table else { return Ok(None) };
        let c = &self.config;
        let text: Option<String> = match c.endpoint.dialect {
            Dialect::Postgres => {
                let client = connect_postgres(&c.endpoint, c.retry_timeout).await?;
                let sql = format!(
                    "SELECT position::text FROM {} WHERE job = $1 AND pipeline = $2",
                    table.quoted(Dialect::Postgres)
                );
                let rows = client
                    .query(&sql, &[&job, &pipeline])
                    .await
                    .map_err(|e| pg_error(&e, "reading the stored position"))?;
                rows.first()
                    .map(|r| r.try_get::<_, String>(0))
                    .transpose()
                    .map_err(|e| pg_error(&e, "reading the stored position"))?
            }
            Dialect::MySql => {
                use mysql_async::prelude::Queryable;
                let mut conn = connect_mysql(&c.endpoint, c.retry_timeout, &[]).await?;
                let sql = format!(
                    "SELECT CAST(position AS CHAR) FROM {} WHERE job = ? AND pipeline = ?",
                    table.quoted(Dialect::MySql)
                );
                let row: Option<String> = conn
                    .exec_first(sql, (job, pipeline))
                    .await
                    .map_err(|e| mysql_error(&e, "reading the stored position"))?;
                let _ = conn.disconnect().await;
                row
            }
        };
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                Error::user(format!("offsets table {} holds an unreadable position: {e}", table.display()))
            })
        })
        .transpose()
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        let Some(tx) = &self.commands else {
            return Err(Error::internal("jdbc sink prepared before open"));
        };
        let offset = self.staged.take().map(|(job, pipeline, position)| OffsetRow {
            job,
            pipeline,
            checkpoint_id,
            position: position.to_string(),
        });
        let (reply, answer) = oneshot::channel();
        if tx.send(Command::Flush { offset, reply }).await.is_err() {
            self.commands = None;
            return Err(self.task_error().await);
        }
        match answer.await {
            Ok(result) => result?,
            Err(_) => {
                self.commands = None;
                return Err(self.task_error().await);
            }
        }
        // The flush committed: nothing is left for `commit`.
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
    }

    async fn close(&mut self) -> Result<()> {
        self.commands = None;
        match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r,
                Err(e) => Err(Error::internal(format!("jdbc writer task failed: {e}"))),
            },
            None => Ok(()),
        }
    }
}

/// The changes written since the last flush, and the input position that covers them.
#[derive(Default)]
struct Pending {
    batches: Vec<ChangeBatch>,
    position: Option<Position>,
}

impl Pending {
    fn push(&mut self, batch: ChangeBatch, position: Option<Position>) {
        self.batches.push(batch);
        self.position = position.or(self.position.take());
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

async fn run_writer(
    mut writer: Writer,
    mut commands: mpsc::Receiver<Command>,
    config: Arc<JdbcConfig>,
    dead_letters: Option<DeadLetters>,
) -> Result<()> {
    let checkpoints_only = config.sink.checkpoints_only;
    let dead = dead_letters.as_ref();
    let mut pending = Pending::default();
    let mut stashed: Option<Command> = None;
    loop {
        let command = match stashed.take() {
            Some(c) => Some(c),
            None => commands.recv().await,
        };
        match command {
            None => {
                // Closed without a final checkpoint (the job failed elsewhere): keep what we have.
                if !pending.is_empty() {
                    flush(&mut writer, &config, &mut pending, None, dead).await?;
                }
                writer.close().await;
                return Ok(());
            }
            Some(Command::Write(batch, position)) => {
                pending.push(batch, position);
                // The writer is free: whatever is already queued joins this flush, and it goes
                // now. Changes never wait for company; under load the queue fills while a flush
                // runs, so flushes grow with the load (bigger transactions, same semantics).
                while let Ok(c) = commands.try_recv() {
                    match c {
                        Command::Write(b, position) => pending.push(b, position),
                        flush_command => {
                            stashed = Some(flush_command);
                            break;
                        }
                    }
                }
                if !checkpoints_only && stashed.is_none() {
                    flush(&mut writer, &config, &mut pending, None, dead).await?;
                }
            }
            Some(Command::Flush { offset, reply }) => {
                let result = flush(&mut writer, &config, &mut pending, offset.as_ref(), dead).await;
                match result {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let copy = copy_error(&e);
                        let _ = reply.send(Err(e));
                        return Err(copy);
                    }
                }
            }
        }
    }
}

/// The net effect of a flush.
#[derive(Clone)]
pub(super) enum Changes {
    /// Upserts and deletes by key, the last change of a key winning.
    Keyed {
        upserts: RecordBatch,
        deletes: RecordBatch,
    },
    /// A keyed flush of nothing but `+I` (a snapshot, an insert-only stream), not compacted: the
    /// keys are probably new, so one COPY straight into the target may take the rows as they
    /// are (a repeated or existing key makes it fail); [`Changes::compacted`] otherwise.
    Inserts {
        rows: RecordBatch,
        key: Vec<usize>,
    },
    Append(RecordBatch),
}

impl Changes {
    fn len(&self) -> usize {
        match self {
            Changes::Keyed { upserts, deletes } => upserts.num_rows() + deletes.num_rows(),
            Changes::Inserts { rows, .. } | Changes::Append(rows) => rows.num_rows(),
        }
    }

    /// These changes one row at a time (compacted), each with the kind of change it is: `-D` for
    /// a delete, `+U` for an upsert, `+I` for a row of an append table.
    fn singles(&self) -> Result<Vec<(Changes, RowKind)>> {
        let compacted = self.compacted()?;
        let one = |rows: &RecordBatch, i: usize| rows.slice(i, 1);
        Ok(match &*compacted {
            Changes::Keyed { upserts, deletes } => {
                let none = upserts.slice(0, 0);
                let deletes = (0..deletes.num_rows())
                    .map(|i| (Changes::Keyed { upserts: none.clone(), deletes: one(deletes, i) }, RowKind::Delete));
                let upserts = (0..upserts.num_rows()).map(|i| {
                    (Changes::Keyed { upserts: one(upserts, i), deletes: none.clone() }, RowKind::UpdateAfter)
                });
                deletes.chain(upserts).collect()
            }
            Changes::Append(rows) | Changes::Inserts { rows, .. } => {
                (0..rows.num_rows()).map(|i| (Changes::Append(one(rows, i)), RowKind::Insert)).collect()
            }
        })
    }

    /// The one row of a [`Changes::singles`] part.
    fn row(&self) -> &RecordBatch {
        match self {
            Changes::Keyed { upserts, deletes } if upserts.num_rows() == 0 => deletes,
            Changes::Keyed { upserts, .. } => upserts,
            Changes::Append(rows) | Changes::Inserts { rows, .. } => rows,
        }
    }

    /// These changes with inserts compacted by key.
    pub(super) fn compacted(&self) -> Result<std::borrow::Cow<'_, Changes>> {
        Ok(match self {
            Changes::Inserts { rows, key } => {
                let compacted = compact_by_key(&ChangeBatch::inserts(rows.clone()), key, None)?;
                std::borrow::Cow::Owned(Changes::Keyed { upserts: compacted.upserts, deletes: compacted.deletes })
            }
            other => std::borrow::Cow::Borrowed(other),
        })
    }
}

fn net_changes(config: &JdbcConfig, pending: &[ChangeBatch]) -> Result<Changes> {
    if pending.is_empty() {
        // A checkpoint with no new changes still commits its position.
        let none = RecordBatch::new_empty(config.schema.clone());
        return Ok(match config.key.is_empty() {
            true => Changes::Append(none),
            false => Changes::Keyed { upserts: none.clone(), deletes: none },
        });
    }
    let rows = concat_batches(&config.schema, pending.iter().map(|b| b.rows()))?;
    let kinds: Vec<&dyn Array> = pending.iter().map(|b| b.kinds() as &dyn Array).collect();
    let kinds = concat(&kinds)?;
    let kinds =
        kinds.as_any().downcast_ref::<Int8Array>().ok_or_else(|| Error::internal("row kinds are not Int8"))?.clone();
    let batch = ChangeBatch::new(rows, kinds)?;
    if config.key.is_empty() {
        // Append-only: planning allowed retractions only with 'sink.delete-mode' = 'ignore'.
        let keep = BooleanArray::from_iter((0..batch.num_rows()).map(|i| Some(batch.kind(i).is_addition())));
        return Ok(Changes::Append(filter_record_batch(batch.rows(), &keep)?));
    }
    // With a version guard even inserts are compacted (by version) and merged: only the merge
    // checks versions and tombstones.
    let versioned = config.sink.guard.as_ref().map(|g| Versioned { column: g.column, ties: Ties::DeleteWins });
    if versioned.is_none() && batch.kinds().values().iter().all(|k| *k == RowKind::Insert as i8) {
        return Ok(Changes::Inserts { rows: batch.rows().clone(), key: config.key.clone() });
    }
    let compacted =
        compact_by_key(&batch, &config.key, versioned).map_err(|e| e.context(format!("table `{}`", config.name)))?;
    let deletes = match config.sink.delete_mode {
        DeleteMode::Delete => compacted.deletes,
        DeleteMode::Ignore => compacted.deletes.slice(0, 0),
    };
    Ok(Changes::Keyed { upserts: compacted.upserts, deletes })
}

async fn flush(
    writer: &mut Writer,
    config: &JdbcConfig,
    pending: &mut Pending,
    offset: Option<&OffsetRow>,
    dead_letters: Option<&DeadLetters>,
) -> Result<()> {
    if pending.is_empty() && offset.is_none() {
        return Ok(());
    }
    let started = Instant::now();
    let changes = net_changes(config, &pending.batches)?;
    // Only PostgreSQL can take inserts uncompacted: compact once, not on every retry.
    let changes = match writer {
        Writer::MySql(_) => changes.compacted()?.into_owned(),
        Writer::Postgres(_) => changes,
    };
    let prepared_in = started.elapsed();
    let mut attempt = 0u32;
    // Once the database refused the flush for good, it goes row by row (and stays so on retries).
    let mut isolating = false;
    loop {
        let result = match (isolating, dead_letters) {
            (true, Some(dead)) => isolate(writer, config, &changes, offset, dead, pending.position.as_ref()).await,
            _ => writer.apply(&changes, offset).await,
        };
        match result {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::User && !isolating && dead_letters.is_some() => {
                tracing::warn!(table = %config.name, error = %e, changes = changes.len(), "jdbc flush refused; applying its changes row by row to find the rows to set aside");
                isolating = true;
            }
            Err(e) if e.kind() == ErrorKind::External && attempt < config.sink.max_retries => {
                attempt += 1;
                let backoff = Duration::from_secs(attempt as u64);
                tracing::warn!(table = %config.name, error = %e, attempt, retry_in = ?backoff, "jdbc flush failed; retrying");
                tokio::time::sleep(backoff).await;
                match Writer::connect(config).await {
                    Ok(w) => *writer = w,
                    Err(e) if e.kind() == ErrorKind::External => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => {
                return Err(e.context(format!(
                    "table `{}`: writing {} changes to {}{}",
                    config.name,
                    changes.len(),
                    config.describe_target(),
                    if attempt > 0 { format!(" (after {attempt} retries)") } else { String::new() }
                )))
            }
        }
    }
    tracing::debug!(
        table = %config.name,
        changes = changes.len(),
        prepare_ms = prepared_in.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "jdbc flush committed"
    );
    pending.batches.clear();
    Ok(())
}

/// Applies `changes` one row at a time in one transaction, each under a savepoint: a row the
/// database refuses for good is rolled back alone and goes to `dead_letters`, noting `position`
/// (which covers every change of the flush); the rest commits with the offsets row. The dead
/// letters are durable before the commit, which may store the position that skips their rows.
async fn isolate(
    writer: &mut Writer,
    config: &JdbcConfig,
    changes: &Changes,
    offset: Option<&OffsetRow>,
    dead_letters: &DeadLetters,
    position: Option<&Position>,
) -> Result<()> {
    writer.begin().await?;
    let result = async {
        let mut refused = Vec::new();
        for (one, kind) in changes.singles()? {
            if let Some(e) = writer.apply_row(&one).await? {
                refused.push((one, kind, e));
            }
        }
        for (one, kind, e) in refused {
            let e = e.context(format!("table `{}`: writing to {}", config.name, config.describe_target()));
            dead_letters.reject(Stage::Sink, &config.name, one.row(), &[kind], e, position)?;
        }
        dead_letters.sync().await?;
        writer.commit(offset).await
    }
    .await;
    if result.is_err() {
        writer.rollback().await;
    }
    result
}

enum Writer {
    Postgres(PgWriter),
    MySql(MyWriter),
}

impl Writer {
    async fn connect(config: &JdbcConfig) -> Result<Writer> {
        match config.endpoint.dialect {
            Dialect::Postgres => Ok(Writer::Postgres(PgWriter::connect(config).await?)),
            Dialect::MySql => Ok(Writer::MySql(MyWriter::connect(config).await?)),
        }
    }

    /// Applies `changes` in one transaction of their own, with the offsets row.
    async fn apply(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        match self {
            Writer::Postgres(w) => w.apply(changes, offset).await,
            Writer::MySql(w) => w.apply(changes, offset).await,
        }
    }

    async fn begin(&mut self) -> Result<()> {
        match self {
            Writer::Postgres(w) => w.execute("BEGIN", "starting a transaction").await,
            Writer::MySql(w) => w.execute("START TRANSACTION", "starting a transaction").await,
        }
    }

    /// Applies one row's change inside the open transaction under a savepoint: `Some(error)`
    /// when the database refused the row's values for good (the row is rolled back, the
    /// transaction goes on); an `Err` for anything else — also a refusal no row would escape (a
    /// missing privilege or column), which must stop the job rather than set every row aside.
    async fn apply_row(&mut self, one: &Changes) -> Result<Option<Error>> {
        let applied = match self {
            Writer::Postgres(w) => {
                w.execute("SAVEPOINT cdc_sql_row", "isolating a row").await?;
                // The staging table keeps its rows until the commit: the next row starts afresh.
                w.merge(one).await.map(|()| postgres::ROW_APPLIED)
            }
            Writer::MySql(w) => {
                w.execute("SAVEPOINT cdc_sql_row", "isolating a row").await?;
                w.merge(one).await.map(|()| "RELEASE SAVEPOINT cdc_sql_row")
            }
        };
        let (sql, refused) = match applied {
            Ok(release) => (release, None),
            Err(e) if refuses_the_row(&e) => ("ROLLBACK TO SAVEPOINT cdc_sql_row", Some(e)),
            Err(e) => return Err(e),
        };
        match self {
            Writer::Postgres(w) => w.execute(sql, "isolating a row").await?,
            Writer::MySql(w) => w.execute(sql, "isolating a row").await?,
        }
        Ok(refused)
    }

    /// Stores the offsets row and commits the open transaction.
    async fn commit(&mut self, offset: Option<&OffsetRow>) -> Result<()> {
        match self {
            Writer::Postgres(w) => w.commit(offset).await,
            Writer::MySql(w) => w.commit(offset).await,
        }
    }

    /// Rolls the open transaction back, when the connection still stands.
    async fn rollback(&mut self) {
        match self {
            Writer::Postgres(w) => w.rollback().await,
            Writer::MySql(w) => w.rollback().await,
        }
    }

    async fn close(self) {
        if let Writer::MySql(w) = self {
            let _ = w.conn.disconnect().await;
        }
    }
}

/// `CREATE TABLE` for `sink.auto-create-table`.
pub(super) fn create_table_sql(config: &JdbcConfig, dialect: Dialect) -> String {
    let key_types: Vec<&DataType> = config.key.iter().map(|i| config.schema.field(*i).data_type()).collect();
    let key_bytes = mysql_key_share(&key_types);
    let mut defs: Vec<String> = config
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ty =
                dialect.column_type(f.data_type(), config.key.contains(&i).then_some(key_bytes)).unwrap_or_default();
            let null = if f.is_nullable() && !config.key.contains(&i) { "" } else { " NOT NULL" };
            format!("{} {ty}{null}", dialect.quote(f.name()))
        })
        .collect();
    if !config.key.is_empty() {
        let keys: Vec<String> = config.key.iter().map(|i| dialect.quote(config.schema.field(*i).name())).collect();
        defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    }
    format!("CREATE TABLE IF NOT EXISTS {} ({})", config.table.quoted(dialect), defs.join(", "))
}

pub(super) fn missing_table(config: &JdbcConfig) -> Error {
    Error::user(format!(
        "table `{}`: {} does not exist; create it, or set 'sink.auto-create-table' = 'true' to create it from the declared columns",
        config.name,
        config.describe_target()
    ))
}

pub(super) fn missing_column(config: &JdbcConfig, column: &str, present: &[String]) -> Error {
    Error::user(format!(
        "table `{}`: column `{column}` is declared but {} has no such column (it has: {})",
        config.name,
        config.describe_target(),
        present.join(", ")
    ))
}

pub(super) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::RowKind;

    #[test]
    fn key_changes_and_repeats_compact_per_flush() {
        use crate::changelog::test_util::batch;
        use crate::sql::{ColumnSpec, TableOption, TableSpec};
        use RowKind::*;
        let col = |n: &str, t| ColumnSpec {
            name: n.into(),
            data_type: t,
            nullable: n != "id",
            type_text: String::new(),
            metadata: None,
            comment: None,
        };
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![
                col("id", datafusion::arrow::datatypes::DataType::Int64),
                col("name", datafusion::arrow::datatypes::DataType::Utf8),
            ],
            primary_key: vec!["id".into()],
            options: [("connector", "jdbc"), ("url", "jdbc:postgresql://h/db"), ("table-name", "t")]
                .iter()
                .map(|(k, v)| TableOption { key: k.to_string(), value: v.to_string(), written: v.to_string() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        };
        let mut o = crate::connectors::ConnectorOptions::new(&spec).unwrap();
        let config = JdbcConfig::parse(&spec, &mut o).unwrap();
        let pending = vec![
            batch(&[(Insert, 1, Some("a")), (Insert, 2, Some("b"))]),
            batch(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 3, Some("a")), (Insert, 2, Some("c"))]),
        ];
        let Changes::Keyed { upserts, deletes, .. } = net_changes(&config, &pending).unwrap() else { panic!("keyed") };
        assert_eq!(net_changes(&config, &[]).unwrap().len(), 0);
        let ids = |b: &RecordBatch| {
            b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap().values().to_vec()
        };
        assert_eq!(ids(&upserts), vec![2, 3]);
        assert_eq!(ids(&deletes), vec![1]);
        // Inserts only: kept as they came for a direct COPY, compacted (last wins) for a merge.
        let inserts = vec![batch(&[(Insert, 1, Some("a")), (Insert, 2, Some("b")), (Insert, 1, Some("c"))])];
        let changes = net_changes(&config, &inserts).unwrap();
        assert!(matches!(&changes, Changes::Inserts { rows, .. } if rows.num_rows() == 3));
        let compacted = changes.compacted().unwrap();
        let Changes::Keyed { upserts, deletes } = &*compacted else { panic!("compacted") };
        assert_eq!((ids(upserts).len(), deletes.num_rows()), (2, 0));
        let names = upserts.column(1).as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
        let last_of_1 = (0..upserts.num_rows()).find(|&i| ids(upserts)[i] == 1).unwrap();
        assert_eq!(names.value(last_of_1), "c");
    }

    /// A flush under `'sink.version-column'`: per key the newest change survives, inserts included
    /// (they are merged, never copied straight into the target), a delete beating an upsert of
    /// its version.
    #[test]
    fn a_guarded_flush_keeps_the_newest_change_of_each_key() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use RowKind::*;
        let sql = "CREATE TABLE t (id BIGINT, v BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (\
                   'connector' = 'jdbc', 'url' = 'jdbc:postgresql://h/db', 'table-name' = 't', 'sink.version-column' = 'v');";
        let statement = crate::sql::parse_script("test", sql, &|_| None).unwrap().remove(0).statement;
        let crate::sql::Statement::CreateTable { spec, .. } = statement else { panic!("not a CREATE TABLE") };
        let config = JdbcConfig::parse(&spec, &mut crate::connectors::ConnectorOptions::new(&spec).unwrap()).unwrap();
        let guard = config.sink.guard.as_ref().unwrap();
        assert_eq!((guard.column, guard.tombstones.display()), (1, "t__cdc_sql_deleted".to_string()));
        let changes = |rows: &[(RowKind, i64, i64, &str)]| {
            let batch = RecordBatch::try_new(
                config.schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
                ],
            )
            .unwrap();
            ChangeBatch::from_kinds(batch, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
        };
        let ids_and_names = |b: &RecordBatch| -> Vec<(i64, String)> {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let names = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
            (0..b.num_rows()).map(|i| (ids.value(i), names.value(i).to_string())).collect()
        };
        let inserts = vec![changes(&[(Insert, 1, 5, "new"), (Insert, 2, 1, "x")]), changes(&[(Insert, 1, 4, "late")])];
        let Changes::Keyed { upserts, deletes } = net_changes(&config, &inserts).unwrap() else { panic!("merged") };
        assert_eq!(ids_and_names(&upserts), [(1, "new".to_string()), (2, "x".to_string())]);
        assert_eq!(deletes.num_rows(), 0);
        let mixed = vec![
            changes(&[(Delete, 1, 5, "new"), (Insert, 1, 5, "new"), (Insert, 2, 3, "c")]),
            changes(&[(Delete, 2, 2, "b")]),
        ];
        let Changes::Keyed { upserts, deletes } = net_changes(&config, &mixed).unwrap() else { panic!("merged") };
        assert_eq!(ids_and_names(&upserts), [(2, "c".to_string())]);
        assert_eq!(ids_and_names(&deletes), [(1, "new".to_string())]);
    }
}
