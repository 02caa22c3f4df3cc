//! Dead letters: rows a job cannot process — a value the sink's database refuses for good, a
//! lookup that finds no row where the job says a miss is an error, a source record that does not
//! parse — set aside with why and where they came from, so the job goes on (`SET
//! 'dead-letter.path'` for a JSON-lines file, `SET 'dead-letter.table'` for a jdbc table; see
//! docs/operations.md, *Dead letters*). Without a destination a rejection stops the job with its
//! error, as before.
//!
//! The seam is one handle per pipeline, [`DeadLetters`], which the runtime hands to the pipeline's
//! sources and sink (`set_dead_letters` of [`crate::connectors::Source`] and
//! [`crate::connectors::Sink`]) and to its query's operators. Whoever rejects a row calls
//! [`DeadLetters::reject`]; the handle renders the row as JSON, stamps it with the pipeline, the
//! input position and the time, counts it in the pipeline's metrics and hands it to the job's
//! destination. The destination is made durable ([`DeadLetters::sync`]: the file flushed and
//! fsynced, the table's transaction committed) before a checkpoint that covers the rows is stored
//! (and before a sink commits a source position with its data), so after a crash a dead row is in
//! the destination or is processed again: at least once.

mod file;
mod table;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

pub use file::check_path;
pub use table::check_table;

use super::metrics::{now_ms, PipelineMetrics};
use super::SinkFactory;
use crate::changelog::RowKind;
use crate::connectors::Position;
use crate::error::{Error, Result};
use crate::formats::{Format, FormatKind, Messages};

/// The `SET` key naming the job's dead-letter file.
pub const PATH_KEY: &str = "dead-letter.path";
/// The `SET` key naming the job's dead-letter table.
pub const TABLE_KEY: &str = "dead-letter.table";

/// Where a job's dead letters go, as planned.
#[derive(Clone)]
pub enum Target {
    /// A JSON-lines file, appended to.
    File(PathBuf),
    /// A declared jdbc table (checked by [`check_table`]), appended to through its sink.
    Table(Arc<TableTarget>),
}

/// A dead-letter table as planned: its name, a factory of its sink, its declared columns.
pub struct TableTarget {
    pub name: String,
    pub open: SinkFactory,
    pub schema: SchemaRef,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(path) => f.debug_tuple("File").field(path).finish(),
            Target::Table(table) => f.debug_struct("Table").field("name", &table.name).finish_non_exhaustive(),
        }
    }
}

/// A job's open dead-letter destination, shared by its pipelines.
#[derive(Debug)]
pub struct Destination(Opened);

#[derive(Debug)]
enum Opened {
    File(file::LetterFile),
    Table(table::LetterTable),
}

impl Destination {
    pub async fn open(target: &Target) -> Result<Arc<Destination>> {
        Ok(Arc::new(Destination(match target {
            Target::File(path) => Opened::File(file::LetterFile::open(path)?),
            Target::Table(target) => {
                Opened::Table(table::LetterTable::open((target.open)()?, target.schema.clone()).await.map_err(|e| {
                    e.context(format!("opening the dead-letter table `{}` ('{TABLE_KEY}')", target.name))
                })?)
            }
        })))
    }

    fn append(&self, letters: &[Letter]) -> Result<()> {
        match &self.0 {
            Opened::File(f) => f.append(letters),
            Opened::Table(t) => t.append(letters),
        }
    }

    async fn sync(&self) -> Result<()> {
        match &self.0 {
            Opened::File(f) => f.sync(),
            Opened::Table(t) => t.commit().await,
        }
    }
}

/// One dead row, as every destination records it.
#[derive(Debug)]
struct Letter {
    job: String,
    pipeline: String,
    stage: Stage,
    table: String,
    /// The error text, secrets masked.
    error: String,
    position: Option<Position>,
    row_kind: Option<RowKind>,
    row: serde_json::Value,
    time_ms: i64,
}

impl Letter {
    /// When it was set aside, as RFC 3339 UTC with milliseconds.
    fn time(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.time_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

/// The part of the job that rejected a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The sink's system refused the row for good.
    Sink,
    /// A lookup join found no row for the change's key ('lookup.missing-key' = 'error').
    Lookup,
    /// A source's record did not parse in its table's format.
    Format,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Sink => "sink",
            Stage::Lookup => "lookup",
            Stage::Format => "format",
        }
    }
}

/// One pipeline's way to set rows aside; cheap to clone. Without a destination every rejection
/// is returned as the error that stops the job.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    destination: Option<Arc<Destination>>,
    job: String,
    pipeline: Arc<PipelineMetrics>,
    /// The pipeline's input position as its next checkpoint would store it, updated per batch.
    position: Arc<Mutex<Option<Position>>>,
}

impl DeadLetters {
    pub fn new(destination: Option<Arc<Destination>>, job: &str, pipeline: Arc<PipelineMetrics>) -> Self {
        DeadLetters { destination, job: job.to_string(), pipeline, position: Arc::new(Mutex::new(None)) }
    }

    /// No destination: every rejection stops the job (an operator run outside a job's pipelines).
    pub fn none() -> Self {
        DeadLetters::new(None, "", Arc::new(PipelineMetrics::new("", &[], "")))
    }

    /// Whether rejected rows go somewhere (else they stop the job).
    pub fn enabled(&self) -> bool {
        self.destination.is_some()
    }

    /// The position of the batch being processed (see [`DeadLetters::set_position`]).
    pub fn position(&self) -> Option<Position> {
        self.position.lock().ok().and_then(|p| p.clone())
    }

    /// The pipeline read up to `position`: rows rejected from now on came from there or before.
    pub(super) fn set_position(&self, position: Option<Position>) {
        if let Ok(mut p) = self.position.lock() {
            *p = position;
        }
    }

    /// Sets `rows` (of the changes `kinds`), which `table`'s `stage` refused with `error`, aside,
    /// noting `position` (the input position that covers them); without a destination returns
    /// `error`. Each row becomes one line, in order.
    pub fn reject(
        &self,
        stage: Stage,
        table: &str,
        rows: &RecordBatch,
        kinds: &[RowKind],
        error: Error,
        position: Option<&Position>,
    ) -> Result<()> {
        let Some(destination) = &self.destination else { return Err(error) };
        let mut messages = Messages::new();
        Format::new(FormatKind::Json)
            .encoder(rows.schema())
            .and_then(|mut encoder| encoder.encode(rows, kinds, &mut messages))
            .map_err(|e| e.context(format!("rendering a row of `{table}` as a dead letter")))?;
        let mut letters = Vec::with_capacity(messages.len());
        for (at, bytes) in messages.iter() {
            let row: serde_json::Value = match bytes {
                Some(b) => serde_json::from_slice(b)
                    .map_err(|e| Error::internal(format!("the json format wrote a row that does not parse: {e}")))?,
                None => serde_json::Value::Null,
            };
            letters.push((kinds.get(at as usize).copied(), row));
        }
        self.append(destination, stage, table, &error, position, letters)
    }

    /// Sets aside a record of `table` that gave no row (it did not parse), described by `record`
    /// as JSON; without a destination returns `error`.
    pub fn reject_record(
        &self,
        stage: Stage,
        table: &str,
        record: serde_json::Value,
        error: Error,
        position: Option<&Position>,
    ) -> Result<()> {
        let Some(destination) = &self.destination else { return Err(error) };
        self.append(destination, stage, table, &error, position, vec![(None, record)])
    }

    /// Hands one letter per row to the destination, counting them.
    fn append(
        &self,
        destination: &Destination,
        stage: Stage,
        table: &str,
        error: &Error,
        position: Option<&Position>,
        rows: Vec<(Option<RowKind>, serde_json::Value)>,
    ) -> Result<()> {
        let text = crate::secrets::redact(&error.to_string());
        let time_ms = now_ms();
        let letters: Vec<Letter> = rows
            .into_iter()
            .map(|(row_kind, row)| Letter {
                job: self.job.clone(),
                pipeline: self.pipeline.name.clone(),
                stage,
                table: table.to_string(),
                error: text.clone(),
                position: position.cloned(),
                row_kind,
                row,
                time_ms,
            })
            .collect();
        destination.append(&letters)?;
        self.pipeline.dead_letters.fetch_add(letters.len() as u64, Ordering::Relaxed);
        tracing::warn!(pipeline = %self.pipeline.name, stage = stage.as_str(), table, rows = letters.len(), error = %text, "rows set aside as dead letters");
        Ok(())
    }

    /// Makes every dead letter sent so far durable (the file flushed and fsynced, the table's
    /// rows committed).
    pub async fn sync(&self) -> Result<()> {
        match &self.destination {
            Some(destination) => destination.sync().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![7, 8])), Arc::new(StringArray::from(vec![Some("x"), None]))],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_rejected_row_becomes_one_json_line_with_its_error_position_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let metrics = Arc::new(PipelineMetrics::new("INSERT INTO out", &["src".into()], "out"));
        let destination = Destination::open(&Target::File(path.clone())).await.unwrap();
        let dead = DeadLetters::new(Some(destination), "job", metrics.clone());
        crate::secrets::register(["s3cr3t-pw".to_string()]);
        let position = serde_json::json!({ "lsn": 42 });
        let error = Error::user("value too long for password s3cr3t-pw");
        dead.reject(Stage::Sink, "out", &rows(), &[RowKind::Insert, RowKind::Delete], error, Some(&position)).unwrap();
        dead.sync().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["pipeline"], "INSERT INTO out");
        assert_eq!(lines[0]["stage"], "sink");
        assert_eq!(lines[0]["error"], "value too long for password ******");
        assert_eq!(lines[0]["position"], position);
        assert_eq!(lines[0]["row"], serde_json::json!({ "id": 7, "name": "x" }));
        assert_eq!(lines[1]["row_kind"], "-D");
        assert_eq!(lines[1]["row"], serde_json::json!({ "id": 8, "name": null }));
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(metrics.dead_letters.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn without_a_destination_the_rejection_is_the_error() {
        let metrics = Arc::new(PipelineMetrics::new("p", &[], "out"));
        let dead = DeadLetters::new(None, "job", metrics.clone());
        let err = dead.reject(Stage::Lookup, "dim", &rows(), &[RowKind::Insert; 2], Error::user("no row"), None);
        assert_eq!(err.unwrap_err().to_string(), "no row");
        assert_eq!(metrics.dead_letters.load(Ordering::Relaxed), 0);
    }
}
