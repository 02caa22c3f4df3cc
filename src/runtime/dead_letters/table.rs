//! The table destination of dead letters (`SET 'dead-letter.table'`): a declared jdbc table
//! without a PRIMARY KEY, appended to through the jdbc sink by a task of its own. Making the
//! letters durable is a checkpoint of that sink: `prepare` commits its transaction.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use tokio::sync::{mpsc, oneshot};

use super::{Letter, TABLE_KEY};
use crate::changelog::ChangeBatch;
use crate::connectors::Sink;
use crate::error::{Error, ErrorKind, Result};
use crate::sql::TableSpec;

/// The columns a dead-letter table declares, in any order, and whether each may be NULL.
const COLUMNS: [(&str, bool); 9] = [
    ("job", false),
    ("pipeline", false),
    ("stage", false),
    ("table_name", false),
    ("error", false),
    ("position", true),
    ("row_kind", true),
    ("row_json", false),
    ("created_at", false),
];

/// Checks the table `'dead-letter.table'` names at planning: a jdbc table, without a PRIMARY
/// KEY, of exactly the dead-letter columns: STRING ones, and `created_at` a TIMESTAMP or
/// TIMESTAMP_LTZ; `position` and `row_kind` nullable.
pub fn check_table(spec: &TableSpec) -> Result<()> {
    let name = &spec.name;
    let shape = "job STRING, pipeline STRING, stage STRING, table_name STRING, error STRING, position STRING, \
                 row_kind STRING, row_json STRING, created_at TIMESTAMP_LTZ(3)";
    let bad = |why: String| {
        Error::user(format!("'{TABLE_KEY}' = '{name}': {why}; declare it as CREATE TABLE {name} ({shape}) WITH ('connector' = 'jdbc', …)"))
    };
    if spec.connector() != Some("jdbc") {
        return Err(bad(format!("table `{name}` has connector '{}', not 'jdbc'", spec.connector().unwrap_or(""))));
    }
    if !spec.primary_key.is_empty() {
        return Err(bad(format!("table `{name}` has a PRIMARY KEY; dead letters are appended")));
    }
    for column in &spec.columns {
        let Some((_, nullable)) = COLUMNS.iter().find(|(n, _)| *n == column.name) else {
            return Err(bad(format!("table `{name}` has a column `{}`, which no dead letter fills", column.name)));
        };
        let fits = match column.name.as_str() {
            "created_at" => matches!(column.data_type, DataType::Timestamp(..)),
            _ => column.data_type == DataType::Utf8,
        };
        if !fits {
            return Err(bad(format!("column `{}` of `{name}` has the wrong type", column.name)));
        }
        if *nullable && !column.nullable {
            return Err(bad(format!("column `{}` of `{name}` must allow NULL", column.name)));
        }
    }
    if let Some((missing, _)) = COLUMNS.iter().find(|(n, _)| !spec.columns.iter().any(|c| c.name == *n)) {
        return Err(bad(format!("table `{name}` lacks the column `{missing}`")));
    }
    Ok(())
}

enum Command {
    Write(ChangeBatch),
    Commit(oneshot::Sender<Result<()>>),
}

/// The writing side: letters go to the sink's task as batches of the table's columns.
#[derive(Debug)]
pub(super) struct LetterTable {
    schema: SchemaRef,
    commands: mpsc::UnboundedSender<Command>,
}

impl LetterTable {
    /// Opens `sink` (of the table's columns `schema`) and starts its task.
    pub(super) async fn open(mut sink: Box<dyn Sink>, schema: SchemaRef) -> Result<LetterTable> {
        sink.open().await?;
        sink.recover(Vec::new()).await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(sink, receiver));
        Ok(LetterTable { schema, commands })
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::internal("the dead-letter table's writer stopped"))
    }

    pub(super) fn append(&self, letters: &[Letter]) -> Result<()> {
        let text =
            |f: fn(&Letter) -> Option<String>| -> ArrayRef { Arc::new(letters.iter().map(f).collect::<StringArray>()) };
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let column = match field.name().as_str() {
                "job" => text(|l| Some(l.job.clone())),
                "pipeline" => text(|l| Some(l.pipeline.clone())),
                "stage" => text(|l| Some(l.stage.as_str().to_string())),
                "table_name" => text(|l| Some(l.table.clone())),
                "error" => text(|l| Some(l.error.clone())),
                "position" => text(|l| l.position.as_ref().map(|p| p.to_string())),
                "row_kind" => text(|l| l.row_kind.map(|k| k.short().to_string())),
                "row_json" => text(|l| Some(l.row.to_string())),
                "created_at" => {
                    let ms = TimestampMillisecondArray::from_iter_values(letters.iter().map(|l| l.time_ms))
                        .with_timezone("UTC");
                    cast(&ms, field.data_type())?
                }
                other => return Err(Error::internal(format!("dead-letter table column `{other}` passed planning"))),
            };
            columns.push(column);
        }
        let rows = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.send(Command::Write(ChangeBatch::inserts(rows)))
    }

    /// Commits every letter appended so far.
    pub(super) async fn commit(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Commit(reply))?;
        answer.await.map_err(|_| Error::internal("the dead-letter table's writer stopped"))?
    }
}

/// Writes letters as they come and commits when asked; after a failure, every commit answers
/// with it (the letters since the last commit are lost, and the job must stop).
async fn run(mut sink: Box<dyn Sink>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut failed: Option<(ErrorKind, String)> = None;
    let mut checkpoint = 0u64;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Write(batch) if failed.is_none() => {
                if let Err(e) = sink.write(&None, batch).await {
                    failed = Some((e.kind(), e.to_string()));
                }
            }
            Command::Write(_) => {}
            Command::Commit(reply) => {
                if failed.is_none() {
                    checkpoint += 1;
                    let committed = match sink.prepare(checkpoint).await {
                        Ok(prepared) => sink.commit(prepared).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = committed {
                        failed = Some((e.kind(), e.to_string()));
                    }
                }
                let result = match &failed {
                    None => Ok(()),
                    Some((kind, message)) => {
                        let message = format!("writing the dead-letter table: {message}");
                        Err(match kind {
                            ErrorKind::User => Error::user(message),
                            ErrorKind::External => Error::external(message),
                            ErrorKind::Internal => Error::internal(message),
                        })
                    }
                };
                let _ = reply.send(result);
            }
        }
    }
    if let Err(e) = sink.close().await {
        tracing::warn!(error = %e, "closing the dead-letter table's sink failed");
    }
}
