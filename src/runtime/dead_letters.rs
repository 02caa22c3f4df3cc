//! Dead letters: rows a job cannot process — a value the sink's database refuses for good, a
//! lookup that finds no row where the job says a miss is an error, a source record that does not
//! parse — set aside with why and where
//! they came from, so the job goes on (`SET 'dead-letter.path'`, see docs/operations.md, *Dead
//! letters*). Without a destination a rejection stops the job with its error, as before.
//!
//! The seam is one handle per pipeline, [`DeadLetters`], which the runtime hands to the pipeline's
//! sources and sink (`set_dead_letters` of [`crate::connectors::Source`] and
//! [`crate::connectors::Sink`]) and to its query's operators. Whoever
//! rejects a row calls [`DeadLetters::reject`]; the handle renders the row as JSON, stamps it with
//! the pipeline, the input position and the time, counts it in the pipeline's metrics and appends
//! one JSON line to the job's file. The file is flushed and fsynced ([`DeadLetters::sync`]) before
//! a checkpoint that covers the rows is stored (and before a sink commits a source position with
//! its data), so after a crash a dead row is in the file or is processed again: at least once.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;

use super::metrics::{now_ms, PipelineMetrics};
use crate::changelog::RowKind;
use crate::connectors::Position;
use crate::error::{Error, Result};
use crate::formats::{Format, FormatKind, Messages};

/// The `SET` key naming the job's dead-letter file.
pub const PATH_KEY: &str = "dead-letter.path";

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

/// Checks a `'dead-letter.path'` value at planning: a file (new or existing, appended to) in a
/// directory that exists.
pub fn check_path(value: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::user(format!("'{PATH_KEY}' = '{value}' {why}"));
    if value.trim().is_empty() {
        return Err(bad("is empty; name a file for the dead letters, e.g. '/var/lib/cdc-sql/dead.jsonl'"));
    }
    let path = PathBuf::from(value);
    if path.is_dir() {
        return Err(bad("is a directory; name a file in it, e.g. 'dead.jsonl'"));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(bad(&format!("is in `{}`, which is not a directory; create it first", parent.display())));
    }
    Ok(path)
}

/// The job's dead-letter file, shared by its pipelines: JSON lines appended.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    /// The file, and whether lines were appended since it was last made durable.
    out: Mutex<(BufWriter<File>, bool)>,
}

impl DeadLetterFile {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> Result<Arc<DeadLetterFile>> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Error::user(format!("cannot open the dead-letter file `{}` ('{PATH_KEY}'): {e}", path.display()))
        })?;
        Ok(Arc::new(DeadLetterFile { path: path.to_path_buf(), out: Mutex::new((BufWriter::new(file), false)) }))
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::external(format!("writing the dead-letter file `{}`: {e}", self.path.display()))
    }

    fn append(&self, lines: &[u8]) -> Result<()> {
        let mut out = self.out.lock().map_err(|_| Error::internal("the dead-letter file's lock is poisoned"))?;
        out.1 = true;
        out.0.write_all(lines).map_err(|e| self.io_error(e))
    }

    /// Flushes and fsyncs what was appended since the last time (nothing to do when nothing was).
    fn sync(&self) -> Result<()> {
        let mut out = self.out.lock().map_err(|_| Error::internal("the dead-letter file's lock is poisoned"))?;
        if !out.1 {
            return Ok(());
        }
        out.0.flush().map_err(|e| self.io_error(e))?;
        out.0.get_ref().sync_data().map_err(|e| self.io_error(e))?;
        out.1 = false;
        Ok(())
    }
}

/// One pipeline's way to set rows aside; cheap to clone. Without a destination every rejection
/// is returned as the error that stops the job.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    file: Option<Arc<DeadLetterFile>>,
    job: String,
    pipeline: Arc<PipelineMetrics>,
    /// The pipeline's input position as its next checkpoint would store it, updated per batch.
    position: Arc<Mutex<Option<Position>>>,
}

impl DeadLetters {
    pub fn new(file: Option<Arc<DeadLetterFile>>, job: &str, pipeline: Arc<PipelineMetrics>) -> Self {
        DeadLetters { file, job: job.to_string(), pipeline, position: Arc::new(Mutex::new(None)) }
    }

    /// No destination: every rejection stops the job (an operator run outside a job's pipelines).
    pub fn none() -> Self {
        DeadLetters::new(None, "", Arc::new(PipelineMetrics::new("", &[], "")))
    }

    /// Whether rejected rows go somewhere (else they stop the job).
    pub fn enabled(&self) -> bool {
        self.file.is_some()
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
        let Some(file) = &self.file else { return Err(error) };
        let mut messages = Messages::new();
        Format::new(FormatKind::Json)
            .encoder(rows.schema())
            .and_then(|mut encoder| encoder.encode(rows, kinds, &mut messages))
            .map_err(|e| e.context(format!("rendering a row of `{table}` for the dead-letter file")))?;
        let mut letters = Vec::with_capacity(messages.len());
        for (at, bytes) in messages.iter() {
            let row: serde_json::Value = match bytes {
                Some(b) => serde_json::from_slice(b)
                    .map_err(|e| Error::internal(format!("the json format wrote a row that does not parse: {e}")))?,
                None => serde_json::Value::Null,
            };
            letters.push((kinds.get(at as usize).copied(), row));
        }
        self.append(file, stage, table, &error, position, letters)
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
        let Some(file) = &self.file else { return Err(error) };
        self.append(file, stage, table, &error, position, vec![(None, record)])
    }

    /// Appends one line per letter, counting them.
    fn append(
        &self,
        file: &DeadLetterFile,
        stage: Stage,
        table: &str,
        error: &Error,
        position: Option<&Position>,
        letters: Vec<(Option<RowKind>, serde_json::Value)>,
    ) -> Result<()> {
        let text = crate::secrets::redact(&error.to_string());
        let time = chrono::DateTime::from_timestamp_millis(now_ms())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let mut lines = Vec::new();
        for (kind, row) in &letters {
            let letter = serde_json::json!({
                "job": self.job,
                "pipeline": self.pipeline.name,
                "stage": stage.as_str(),
                "table": table,
                "error": text,
                "position": position,
                "row_kind": kind.map(RowKind::short),
                "row": row,
                "time": time,
            });
            serde_json::to_writer(&mut lines, &letter)
                .map_err(|e| Error::internal(format!("writing a dead letter: {e}")))?;
            lines.push(b'\n');
        }
        file.append(&lines)?;
        self.pipeline.dead_letters.fetch_add(letters.len() as u64, Ordering::Relaxed);
        tracing::warn!(pipeline = %self.pipeline.name, stage = stage.as_str(), table, rows = letters.len(), error = %text, "rows sent to the dead-letter file");
        Ok(())
    }

    /// Makes every dead letter sent so far durable (flushed and fsynced).
    pub fn sync(&self) -> Result<()> {
        match &self.file {
            Some(file) => file.sync(),
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

    #[test]
    fn a_rejected_row_becomes_one_json_line_with_its_error_position_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let metrics = Arc::new(PipelineMetrics::new("INSERT INTO out", &["src".into()], "out"));
        let dead = DeadLetters::new(Some(DeadLetterFile::open(&path).unwrap()), "job", metrics.clone());
        crate::secrets::register(["s3cr3t-pw".to_string()]);
        let position = serde_json::json!({ "lsn": 42 });
        let error = Error::user("value too long for password s3cr3t-pw");
        dead.reject(Stage::Sink, "out", &rows(), &[RowKind::Insert, RowKind::Delete], error, Some(&position)).unwrap();
        dead.sync().unwrap();
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

    #[test]
    fn bad_paths_are_refused_at_planning() {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().display().to_string();
        assert!(check_path("").unwrap_err().to_string().contains("is empty"));
        assert!(check_path(&dir_text).unwrap_err().to_string().contains("is a directory"));
        let missing = format!("{dir_text}/nope/dead.jsonl");
        assert!(check_path(&missing).unwrap_err().to_string().contains("not a directory; create it first"));
        assert_eq!(check_path(&format!("{dir_text}/dead.jsonl")).unwrap(), dir.path().join("dead.jsonl"));
    }
}
