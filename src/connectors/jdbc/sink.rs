//! The jdbc sink. Batches go to a writer task that owns the connection, so encoding and writing
//! overlap with the pipeline reading and transforming the next batches. The task flushes as soon
//! as it is free and has changes, taking everything queued into one flush, and on every
//! checkpoint (`prepare`); with `sink.buffer-flush.max-rows` and `.interval` both `0` it flushes
//! at checkpoints only, as in Flink. A flush compacts its changes by key (the last change
//! of a key wins; a key change deletes the old key) and applies them in one transaction, retried
//! with backoff on connection loss, deadlocks and serialization failures; the buffer is kept
//! until the transaction commits, so a retry never loses or duplicates a change.
//!
//! Exactly-once hook: when `sink.offsets-table` is set and the runtime hands the checkpoint's
//! source position over with [`Sink::stage_position`], `prepare` commits that position in the
//! offsets table in the same transaction as the data, and [`Sink::stored_position`] reads it back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int8Array};
use datafusion::arrow::compute::{concat, concat_batches, filter_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use futures::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use super::dialect::{connect_mysql, connect_postgres, mysql_error, pg_error, Dialect};
use super::mysqltext::{self, write_literal};
use super::pgwire::{put_header, put_trailer, TupleWriter, Wire};
use super::{DeleteMode, JdbcConfig};
use crate::changelog::{compact_by_key, ChangeBatch, RowKind, TableId};
use crate::connectors::{Position, PreparedCommit, Sink};
use crate::error::{Error, ErrorKind, Result};

/// A source position to store with the next flush.
#[derive(Debug, Clone)]
struct OffsetRow {
    job: String,
    pipeline: String,
    checkpoint_id: u64,
    position: String,
}

enum Command {
    Write(ChangeBatch),
    Flush { offset: Option<OffsetRow>, reply: oneshot::Sender<Result<()>> },
}

pub struct JdbcSink {
    config: Arc<JdbcConfig>,
    commands: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<()>>>,
    staged: Option<(String, String, Position)>,
}

impl JdbcSink {
    pub fn new(config: Arc<JdbcConfig>) -> Self {
        JdbcSink { config, commands: None, task: None, staged: None }
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
    async fn open(&mut self) -> Result<()> {
        let writer = Writer::connect(&self.config).await?;
        let (tx, rx) = mpsc::channel(4);
        self.commands = Some(tx);
        self.task = Some(tokio::spawn(run_writer(writer, rx, self.config.clone())));
        Ok(())
    }

    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        let Some(tx) = &self.commands else {
            return Err(Error::internal("jdbc sink written before open"));
        };
        if tx.send(Command::Write(batch)).await.is_err() {
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

async fn run_writer(mut writer: Writer, mut commands: mpsc::Receiver<Command>, config: Arc<JdbcConfig>) -> Result<()> {
    let checkpoints_only = config.sink.checkpoints_only;
    let mut pending: Vec<ChangeBatch> = Vec::new();
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
                    flush(&mut writer, &config, &mut pending, None).await?;
                }
                writer.close().await;
                return Ok(());
            }
            Some(Command::Write(batch)) => {
                pending.push(batch);
                // The writer is free: whatever is already queued joins this flush, and it goes
                // now. Changes never wait for company; under load the queue fills while a flush
                // runs, so flushes grow with the load (bigger transactions, same semantics).
                while let Ok(c) = commands.try_recv() {
                    match c {
                        Command::Write(b) => pending.push(b),
                        flush_command => {
                            stashed = Some(flush_command);
                            break;
                        }
                    }
                }
                if !checkpoints_only && stashed.is_none() {
                    flush(&mut writer, &config, &mut pending, None).await?;
                }
            }
            Some(Command::Flush { offset, reply }) => {
                let result = flush(&mut writer, &config, &mut pending, offset.as_ref()).await;
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
enum Changes {
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

    /// These changes with inserts compacted by key.
    fn compacted(&self) -> Result<std::borrow::Cow<'_, Changes>> {
        Ok(match self {
            Changes::Inserts { rows, key } => {
                let compacted = compact_by_key(&ChangeBatch::inserts(rows.clone()), key)?;
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
    if batch.kinds().values().iter().all(|k| *k == RowKind::Insert as i8) {
        return Ok(Changes::Inserts { rows: batch.rows().clone(), key: config.key.clone() });
    }
    let compacted = compact_by_key(&batch, &config.key)?;
    let deletes = match config.sink.delete_mode {
        DeleteMode::Delete => compacted.deletes,
        DeleteMode::Ignore => compacted.deletes.slice(0, 0),
    };
    Ok(Changes::Keyed { upserts: compacted.upserts, deletes })
}

async fn flush(
    writer: &mut Writer,
    config: &JdbcConfig,
    pending: &mut Vec<ChangeBatch>,
    offset: Option<&OffsetRow>,
) -> Result<()> {
    if pending.is_empty() && offset.is_none() {
        return Ok(());
    }
    let started = Instant::now();
    let changes = net_changes(config, pending)?;
    // Only PostgreSQL can take inserts uncompacted: compact once, not on every retry.
    let changes = match writer {
        Writer::MySql(_) => changes.compacted()?.into_owned(),
        Writer::Postgres(_) => changes,
    };
    let prepared_in = started.elapsed();
    let mut attempt = 0u32;
    loop {
        let result = match writer {
            Writer::Postgres(w) => w.apply(&changes, offset).await,
            Writer::MySql(w) => w.apply(&changes, offset).await,
        };
        match result {
            Ok(()) => break,
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
    pending.clear();
    Ok(())
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

    async fn close(self) {
        if let Writer::MySql(w) = self {
            let _ = w.conn.disconnect().await;
        }
    }
}

/// `CREATE TABLE` for `sink.auto-create-table`.
fn create_table_sql(config: &JdbcConfig, dialect: Dialect) -> String {
    let mut defs: Vec<String> = config
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ty = dialect.column_type(f.data_type(), config.key.contains(&i)).unwrap_or_default();
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

fn missing_table(config: &JdbcConfig) -> Error {
    Error::user(format!(
        "table `{}`: {} does not exist; create it, or set 'sink.auto-create-table' = 'true' to create it from the declared columns",
        config.name,
        config.describe_target()
    ))
}

fn missing_column(config: &JdbcConfig, column: &str, present: &[String]) -> Error {
    Error::user(format!(
        "table `{}`: column `{column}` is declared but {} has no such column (it has: {})",
        config.name,
        config.describe_target(),
        present.join(", ")
    ))
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct PgWriter {
    client: tokio_postgres::Client,
    copy_sql: String,
    delete_sql: String,
    upsert_sql: String,
    offsets_sql: Option<String>,
    /// COPY straight into the target, when every column's binary form fits it.
    direct_copy_sql: Option<String>,
    direct_conflicts: u32,
    direct_rest: u32,
}

const PG_STAGE: &str = "cdc_sql_stage";
const DELETE_FLAG: &str = "__cdc_sql_delete";

impl PgWriter {
    async fn connect(config: &JdbcConfig) -> Result<PgWriter> {
        let d = Dialect::Postgres;
        let client = connect_postgres(&config.endpoint, config.retry_timeout).await?;
        let target = config.table.quoted(d);
        let what = format!("preparing {}", config.describe_target());
        let columns_sql = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
        let mut existing = client.query(columns_sql, &[&target]).await.map_err(|e| pg_error(&e, &what))?;
        if existing.is_empty() {
            if !config.sink.auto_create {
                return Err(missing_table(config));
            }
            client.batch_execute(&create_table_sql(config, d)).await.map_err(|e| pg_error(&e, &what))?;
            existing = client.query(columns_sql, &[&target]).await.map_err(|e| pg_error(&e, &what))?;
        }
        let present: Vec<(String, String)> = existing
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
            .collect::<std::result::Result<_, tokio_postgres::Error>>()
            .map_err(|e| pg_error(&e, &what))?;
        let names: Vec<String> = present.iter().map(|(n, _)| n.clone()).collect();

        let mut stage_defs = Vec::new();
        let mut columns = Vec::new();
        let mut values = Vec::new();
        let mut conditions = Vec::new();
        let mut direct = true;
        for (i, field) in config.schema.fields().iter().enumerate() {
            let Some((_, target_type)) = present.iter().find(|(n, _)| n == field.name()) else {
                return Err(missing_column(config, field.name(), &names));
            };
            let wire =
                Wire::of(field.data_type()).ok_or_else(|| Error::internal("unsupported type passed validation"))?;
            let q = d.quote(field.name());
            stage_defs.push(format!("{q} {}", wire.sql_type()));
            direct &= copies_directly(wire, target_type);
            columns.push(q.clone());
            let value = staged_value(&format!("s.{q}"), wire, target_type);
            if config.key.contains(&i) {
                conditions.push(format!("t.{q} = {value}"));
            }
            values.push(value);
        }
        let stage_columns = columns.join(", ");
        client
            .batch_execute(&format!(
                "SET standard_conforming_strings = on; CREATE TEMP TABLE IF NOT EXISTS {PG_STAGE} ({}, {DELETE_FLAG} boolean NOT NULL) ON COMMIT DELETE ROWS",
                stage_defs.join(", ")
            ))
            .await
            .map_err(|e| pg_error(&e, &what))?;
        let copy_sql = format!("COPY {PG_STAGE} ({stage_columns}, {DELETE_FLAG}) FROM STDIN (FORMAT binary)");
        let (delete_sql, upsert_sql) = if config.key.is_empty() {
            (
                String::new(),
                format!("INSERT INTO {target} ({stage_columns}) SELECT {} FROM {PG_STAGE} AS s;", values.join(", ")),
            )
        } else {
            let keys: Vec<String> = config.key.iter().map(|i| d.quote(config.schema.field(*i).name())).collect();
            let updates: Vec<String> = columns
                .iter()
                .enumerate()
                .filter(|(i, _)| !config.key.contains(i))
                .map(|(_, c)| format!("{c} = EXCLUDED.{c}"))
                .collect();
            let on_conflict = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            (
                format!(
                    "DELETE FROM {target} AS t USING {PG_STAGE} AS s WHERE s.{DELETE_FLAG} AND {};",
                    conditions.join(" AND ")
                ),
                format!(
                    "INSERT INTO {target} ({stage_columns}) SELECT {} FROM {PG_STAGE} AS s WHERE NOT s.{DELETE_FLAG} ON CONFLICT ({}) {on_conflict};",
                    values.join(", "),
                    keys.join(", ")
                ),
            )
        };
        let offsets_sql = match &config.sink.offsets_table {
            None => None,
            Some(t) => {
                let table = t.quoted(d);
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (job text NOT NULL, pipeline text NOT NULL, checkpoint_id bigint NOT NULL, position jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, pipeline))"
                    ))
                    .await
                    .map_err(|e| pg_error(&e, &format!("creating offsets table {}", t.display())))?;
                Some(format!(
                    "INSERT INTO {table} (job, pipeline, checkpoint_id, position) VALUES ({{job}}, {{pipeline}}, {{id}}, {{position}}::jsonb) \
                     ON CONFLICT (job, pipeline) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id, position = EXCLUDED.position, updated_at = now();"
                ))
            }
        };
        // Dry-run the merge on the empty staging table: type mismatches and a missing unique
        // constraint for ON CONFLICT show up now, not at the first flush.
        let check = format!(
            "BEGIN; {delete_sql} {upsert_sql} ROLLBACK;",
            delete_sql = if delete_sql.is_empty() { "" } else { &delete_sql }
        );
        if let Err(e) = client.batch_execute(&check).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(pg_error(
                &e,
                &format!("table `{}`: checking the merge into {}", config.name, config.describe_target()),
            ));
        }
        let direct_copy_sql = direct.then(|| format!("COPY {target} ({stage_columns}) FROM STDIN (FORMAT binary)"));
        Ok(PgWriter {
            client,
            copy_sql,
            delete_sql,
            upsert_sql,
            offsets_sql,
            direct_copy_sql,
            direct_conflicts: 0,
            direct_rest: 0,
        })
    }

    async fn apply(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        self.client.batch_execute("BEGIN").await.map_err(|e| pg_error(&e, "starting a transaction"))?;
        let result = self.apply_in_transaction(changes, offset).await;
        if result.is_err() && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        result
    }

    async fn apply_in_transaction(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        if self.copied_into_target(changes).await? {
            return self.commit(offset).await;
        }
        let changes = changes.compacted()?;
        let (upserts, deletes) = match &*changes {
            Changes::Keyed { upserts, deletes } => (upserts, Some(deletes)),
            Changes::Append(rows) | Changes::Inserts { rows, .. } => (rows, None),
        };
        let delete_count = deletes.map_or(0, |d| d.num_rows());
        if upserts.num_rows() + delete_count > 0 {
            let mut parts = vec![(upserts, Some(false))];
            parts.extend(deletes.map(|d| (d, Some(true))));
            copy_rows(&self.client, &self.copy_sql, &parts)
                .await
                .map_err(|e| e.into_error("copying into the staging table"))?;
        }
        let mut sql = String::new();
        if delete_count > 0 {
            sql.push_str(&self.delete_sql);
        }
        if upserts.num_rows() > 0 {
            sql.push_str(&self.upsert_sql);
        }
        self.client.batch_execute(&sql).await.map_err(|e| pg_error(&e, "applying the changes"))?;
        self.commit(offset).await
    }

    /// Bulk loaders' fast path: rows that are all new go by one binary COPY straight into the
    /// target, half the server's work of staging and merging them. Taken for append sinks, and
    /// for keyed sinks when the flush holds only inserts; a key that already exists makes the
    /// COPY fail with a unique violation, which is rolled back to a savepoint and the flush goes
    /// through the merge instead. After such a conflict the fast path rests for a growing
    /// number of flushes, so a stream of re-inserted keys (a restarted snapshot) does not pay
    /// for every attempt twice. True when the rows are in the target.
    async fn copied_into_target(&mut self, changes: &Changes) -> Result<bool> {
        let Some(direct_copy_sql) = &self.direct_copy_sql else { return Ok(false) };
        let (rows, keyed) = match changes {
            Changes::Append(rows) => (rows, false),
            Changes::Inserts { rows, .. } => (rows, true),
            Changes::Keyed { .. } => return Ok(false),
        };
        if rows.num_rows() == 0 {
            return Ok(false);
        }
        if keyed && self.direct_rest > 0 {
            self.direct_rest -= 1;
            return Ok(false);
        }
        if keyed {
            self.client.batch_execute("SAVEPOINT cdc_sql_direct").await.map_err(|e| pg_error(&e, "starting COPY"))?;
        }
        match copy_rows(&self.client, direct_copy_sql, &[(rows, None)]).await {
            Ok(()) => Ok(true),
            Err(CopyFailure::Server(e))
                if keyed && e.as_db_error().is_some_and(|d| d.code() == &SqlState::UNIQUE_VIOLATION) =>
            {
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT cdc_sql_direct")
                    .await
                    .map_err(|e| pg_error(&e, "rolling back COPY"))?;
                self.direct_conflicts = (self.direct_conflicts + 1).min(10);
                self.direct_rest = 1 << self.direct_conflicts;
                Ok(false)
            }
            Err(e) => Err(e.into_error("copying into the target")),
        }
    }

    async fn commit(&mut self, offset: Option<&OffsetRow>) -> Result<()> {
        let mut sql = String::new();
        if let (Some(template), Some(o)) = (&self.offsets_sql, offset) {
            sql.push_str(
                &template
                    .replace("{job}", &sql_string(&o.job))
                    .replace("{pipeline}", &sql_string(&o.pipeline))
                    .replace("{id}", &o.checkpoint_id.to_string())
                    .replace("{position}", &sql_string(&o.position)),
            );
        }
        sql.push_str("COMMIT;");
        self.client.batch_execute(&sql).await.map_err(|e| pg_error(&e, "applying the changes"))
    }
}

enum CopyFailure {
    Server(tokio_postgres::Error),
    Encode(Error),
}

impl CopyFailure {
    fn into_error(self, what: &str) -> Error {
        match self {
            CopyFailure::Server(e) => pg_error(&e, what),
            CopyFailure::Encode(e) => e,
        }
    }
}

/// Streams `parts` as one binary COPY: each batch's rows, with the staging table's delete flag
/// appended when given.
async fn copy_rows(
    client: &tokio_postgres::Client,
    sql: &str,
    parts: &[(&RecordBatch, Option<bool>)],
) -> std::result::Result<(), CopyFailure> {
    let sink = client.copy_in::<_, bytes::Bytes>(sql).await?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(1 << 20);
    put_header(&mut buf);
    for (batch, flag) in parts {
        let writer = TupleWriter::new(batch.columns(), *flag).map_err(CopyFailure::Encode)?;
        for row in 0..batch.num_rows() {
            writer.write_row(row, &mut buf).map_err(CopyFailure::Encode)?;
            if buf.len() >= 1 << 20 {
                sink.send(buf.split().freeze()).await?;
            }
        }
    }
    put_trailer(&mut buf);
    sink.send(buf.split().freeze()).await?;
    sink.finish().await?;
    Ok(())
}

impl From<tokio_postgres::Error> for CopyFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        CopyFailure::Server(e)
    }
}

/// Whether binary COPY of `wire` values can go straight into a column of `target_type` (as
/// `format_type` prints it): the receive function of the column's own type reads them, with
/// the column's modifiers applied, so the base types must be the same (text also feeds
/// varchar/char, whose binary form is the same bytes).
fn copies_directly(wire: Wire, target_type: &str) -> bool {
    let mut base = String::with_capacity(target_type.len());
    let mut depth = 0;
    for c in target_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => base.push(c),
            _ => {}
        }
    }
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    base == wire.sql_type() || (wire == Wire::Text && matches!(base.as_str(), "character varying" | "character"))
}

/// How a staged value goes into a target column: as is when PostgreSQL has an assignment cast
/// (so e.g. a too long string for varchar(n) is an error, not a silent cut), through an explicit
/// cast for text into json/jsonb/uuid/enum/…, and `<> 0` for integers into boolean (TINYINT(1)).
fn staged_value(column: &str, wire: Wire, target_type: &str) -> String {
    let stringish = target_type == "text"
        || target_type.starts_with("character")
        || target_type == "name"
        || target_type == "\"char\"";
    match wire {
        _ if target_type == wire.sql_type() => column.to_string(),
        Wire::Int2 | Wire::Int4 | Wire::Int8 if target_type == "boolean" => format!("({column} <> 0)"),
        Wire::Text if !stringish => format!("CAST({column} AS {target_type})"),
        _ => column.to_string(),
    }
}

struct MyWriter {
    conn: mysql_async::Conn,
    table: String,
    columns: String,
    upsert_suffix: String,
    key_names: Vec<String>,
    offsets_table: Option<String>,
    /// Statement size limit, below the server's max_allowed_packet.
    max_statement: usize,
    config_key: Vec<usize>,
}

impl MyWriter {
    async fn connect(config: &JdbcConfig) -> Result<MyWriter> {
        use mysql_async::prelude::Queryable;
        let d = Dialect::MySql;
        let mut conn = connect_mysql(&config.endpoint, config.retry_timeout, &[mysqltext::SQL_MODE]).await?;
        let what = format!("preparing {}", config.describe_target());
        let schema = config.table.schema.clone();
        let columns_sql = "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
        let mut present: Vec<String> = conn
            .exec(columns_sql, (schema.clone(), config.table.table.clone()))
            .await
            .map_err(|e| mysql_error(&e, &what))?;
        if present.is_empty() {
            if !config.sink.auto_create {
                return Err(missing_table(config));
            }
            conn.query_drop(create_table_sql(config, d)).await.map_err(|e| mysql_error(&e, &what))?;
            present = conn
                .exec(columns_sql, (schema, config.table.table.clone()))
                .await
                .map_err(|e| mysql_error(&e, &what))?;
        }
        for field in config.schema.fields() {
            // MySQL column names compare without case.
            if !present.iter().any(|p| p.eq_ignore_ascii_case(field.name())) {
                return Err(missing_column(config, field.name(), &present));
            }
        }
        let quoted: Vec<String> = config.schema.fields().iter().map(|f| d.quote(f.name())).collect();
        let updates: Vec<String> = quoted
            .iter()
            .enumerate()
            .filter(|(i, _)| !config.key.contains(i))
            .map(|(_, c)| format!("{c} = VALUES({c})"))
            .collect();
        let upsert_suffix = if config.key.is_empty() {
            String::new()
        } else if updates.is_empty() {
            let k = &quoted[config.key[0]];
            format!(" ON DUPLICATE KEY UPDATE {k} = {k}")
        } else {
            format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
        };
        let offsets_table = match &config.sink.offsets_table {
            None => None,
            Some(t) => {
                let table = t.quoted(d);
                conn.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (job VARCHAR(255) NOT NULL, pipeline VARCHAR(255) NOT NULL, checkpoint_id BIGINT NOT NULL, position JSON NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (job, pipeline))"
                ))
                .await
                .map_err(|e| mysql_error(&e, &format!("creating offsets table {}", t.display())))?;
                Some(table)
            }
        };
        let packet: Option<u64> =
            conn.query_first("SELECT @@max_allowed_packet").await.map_err(|e| mysql_error(&e, &what))?;
        let max_statement = (packet.unwrap_or(4 << 20) as usize / 2).clamp(64 << 10, 8 << 20);
        Ok(MyWriter {
            conn,
            table: config.table.quoted(d),
            columns: quoted.join(", "),
            upsert_suffix,
            key_names: config.key.iter().map(|i| config.schema.field(*i).name().clone()).collect(),
            offsets_table,
            max_statement,
            config_key: config.key.clone(),
        })
    }

    async fn apply(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        use mysql_async::prelude::Queryable;
        self.conn.query_drop("START TRANSACTION").await.map_err(|e| mysql_error(&e, "starting a transaction"))?;
        let result = self.apply_in_transaction(changes, offset).await;
        if result.is_err() {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        result
    }

    /// `key = value, …` of row `row`, for error messages.
    fn describe_key(&self, batch: &RecordBatch, row: usize) -> String {
        let parts: Vec<String> = self
            .config_key
            .iter()
            .zip(&self.key_names)
            .map(|(i, name)| {
                let mut v = String::new();
                let _ = write_literal(&mut v, batch.column(*i), row, name);
                format!("{name} = {v}")
            })
            .collect();
        parts.join(", ")
    }

    async fn run(&mut self, sql: &str, batch: &RecordBatch, first_row: usize) -> Result<()> {
        use mysql_async::prelude::Queryable;
        match self.conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut err = mysql_error(&e, "applying the changes");
                // Strict-mode data errors say "at row N" of the statement: name the key.
                if let mysql_async::Error::Server(s) = &e {
                    if let Some(n) = s.message.rsplit("at row ").next().and_then(|n| n.trim().parse::<usize>().ok()) {
                        if n >= 1 && first_row + n - 1 < batch.num_rows() && !self.config_key.is_empty() {
                            err = err.context(format!("row with key {}", self.describe_key(batch, first_row + n - 1)));
                        }
                    }
                }
                Err(err)
            }
        }
    }

    async fn apply_in_transaction(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        use mysql_async::prelude::Queryable;
        let changes = changes.compacted()?;
        let (upserts, deletes) = match &*changes {
            Changes::Keyed { upserts, deletes } => (upserts, Some(deletes)),
            Changes::Append(rows) | Changes::Inserts { rows, .. } => (rows, None),
        };
        if let Some(deletes) = deletes.filter(|d| d.num_rows() > 0) {
            let key_columns: Vec<ArrayRef> = self.config_key.iter().map(|i| deletes.column(*i).clone()).collect();
            let quoted_keys: Vec<String> = self.key_names.iter().map(|k| Dialect::MySql.quote(k)).collect();
            let prefix = if quoted_keys.len() == 1 {
                format!("DELETE FROM {} WHERE {} IN (", self.table, quoted_keys[0])
            } else {
                format!("DELETE FROM {} WHERE ({}) IN (", self.table, quoted_keys.join(", "))
            };
            let mut sql = prefix.clone();
            let mut first = 0;
            for row in 0..deletes.num_rows() {
                if row > first {
                    sql.push_str(", ");
                }
                if key_columns.len() > 1 {
                    sql.push('(');
                }
                for (j, (array, name)) in key_columns.iter().zip(&self.key_names).enumerate() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    write_literal(&mut sql, array, row, name)?;
                }
                if key_columns.len() > 1 {
                    sql.push(')');
                }
                if sql.len() >= self.max_statement || row + 1 == deletes.num_rows() {
                    sql.push(')');
                    self.run(&sql, deletes, first).await?;
                    sql = prefix.clone();
                    first = row + 1;
                }
            }
        }
        if upserts.num_rows() > 0 {
            let prefix = format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns);
            let names: Vec<String> = upserts.schema().fields().iter().map(|f| f.name().clone()).collect();
            let mut sql = prefix.clone();
            let mut first = 0;
            for row in 0..upserts.num_rows() {
                if row > first {
                    sql.push(',');
                }
                sql.push('(');
                for (j, array) in upserts.columns().iter().enumerate() {
                    if j > 0 {
                        sql.push(',');
                    }
                    write_literal(&mut sql, array, row, &names[j])?;
                }
                sql.push(')');
                if sql.len() >= self.max_statement || row + 1 == upserts.num_rows() {
                    sql.push_str(&self.upsert_suffix);
                    self.run(&sql, upserts, first).await?;
                    sql = prefix.clone();
                    first = row + 1;
                }
            }
        }
        if let (Some(table), Some(o)) = (&self.offsets_table, offset) {
            let sql = format!(
                "INSERT INTO {table} (job, pipeline, checkpoint_id, position) VALUES ({}, {}, {}, {}) \
                 ON DUPLICATE KEY UPDATE checkpoint_id = VALUES(checkpoint_id), position = VALUES(position), updated_at = CURRENT_TIMESTAMP(6)",
                sql_string(&o.job),
                sql_string(&o.pipeline),
                o.checkpoint_id,
                sql_string(&o.position)
            );
            self.conn.query_drop(sql).await.map_err(|e| mysql_error(&e, "storing the source position"))?;
        }
        self.conn.query_drop("COMMIT").await.map_err(|e| mysql_error(&e, "committing"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::RowKind;

    #[test]
    fn staged_values_cast_only_where_postgres_needs_it() {
        assert_eq!(staged_value("s.x", Wire::Text, "jsonb"), "CAST(s.x AS jsonb)");
        assert_eq!(staged_value("s.x", Wire::Text, "character varying(10)"), "s.x");
        assert_eq!(staged_value("s.x", Wire::Int2, "boolean"), "(s.x <> 0)");
        assert_eq!(staged_value("s.x", Wire::Int8, "numeric(20,0)"), "s.x");
        assert_eq!(staged_value("s.x", Wire::Bool, "boolean"), "s.x");
    }

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
}
