//! Checkpoint records on disk: one JSON file per checkpoint (`chk-<id>.json`) in the job's state
//! directory, written atomically (temporary file, fsync, rename, fsync of the directory) so a crash
//! leaves either the previous record or the new one, never half of one. The newest
//! `state.checkpoints.num-retained` records are kept.
//!
//! Format version 2: the record holds, per pipeline, one typed entry per input (which source
//! table, the [`SourceIdentity`] its positions belong to, its position) and names one state file
//! per stateful operator under `state/` (Arrow IPC). State files are written before the record
//! that names them, so the record stays the one commit point; an operator whose state did not
//! change since the last checkpoint keeps its file, which the new record names again. Files no
//! retained record names are removed. Version 1 records (one source per pipeline, captured rows
//! inline) are read and resumed as version 2.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use crate::connectors::{Position, SourceIdentity};
use crate::error::{Error, Result};
use crate::operators::CapturedTableState;

const VERSION: u32 = 2;
/// Under the state directory: the operators' state files.
const STATE_FILES: &str = "state";

/// Where one input of a pipeline was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputState {
    /// The source table: the input's id within its pipeline.
    pub table: String,
    /// What `position` is a position in; `None` in records of format version 1, which did not
    /// say.
    pub identity: Option<SourceIdentity>,
    pub position: Option<Position>,
    /// The input's bounded source was done.
    pub finished: bool,
}

/// A stateful operator's state file, as a record names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperatorFile {
    /// The operator's name, stable within its pipeline.
    pub operator: String,
    /// The file under the state directory's `state/`.
    pub file: String,
}

/// What one pipeline needs to resume: where its inputs were, what its operators held, and what
/// its sink prepared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineState {
    /// The pipeline's identity within the job (`INSERT INTO sink`, `INSERT INTO sink (2)` for a
    /// second INSERT into the same sink).
    pub name: String,
    /// The sink table and its connector, e.g. `orders_sink (jdbc)`.
    pub sink: String,
    pub inputs: Vec<InputState>,
    /// The checkpoint id and state of the sink's last `prepare`, handed to `recover` on restart.
    pub prepared_checkpoint: Option<u64>,
    pub prepared: serde_json::Value,
    /// The pipeline was done (every input finished, or its LIMIT reached): a restart does not run
    /// it again.
    pub finished: bool,
    /// The run that stored this stopped right after it (its final checkpoint): nothing after the
    /// inputs' positions reached the sink. It holds for one resume only, so the runtime clears
    /// it in the stored record before resuming (a run killed later may have delivered more).
    #[serde(default)]
    pub exact: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorFile>,
    /// Format version 1 kept a truncating source's captured rows inline; resumed once, then
    /// stored as an operator's state file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<Vec<CapturedTableState>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRecord {
    pub version: u32,
    pub job: String,
    pub checkpoint_id: u64,
    pub created_at_ms: u64,
    /// One entry per pipeline, in the job's INSERT order; `None` before its first checkpoint.
    pub pipelines: Vec<Option<PipelineState>>,
}

/// A pipeline of a version 1 record: one source, named only in a fingerprint string.
#[derive(Debug, Deserialize)]
struct PipelineStateV1 {
    name: String,
    /// `source (connector) -> sink (connector)`.
    fingerprint: String,
    position: Option<Position>,
    prepared_checkpoint: Option<u64>,
    prepared: serde_json::Value,
    finished: bool,
    #[serde(default)]
    exact: bool,
    #[serde(default)]
    captured: Option<Vec<CapturedTableState>>,
}

#[derive(Debug, Deserialize)]
struct CheckpointRecordV1 {
    job: String,
    checkpoint_id: u64,
    created_at_ms: u64,
    pipelines: Vec<Option<PipelineStateV1>>,
}

impl PipelineStateV1 {
    fn upgrade(self) -> Result<PipelineState> {
        let Some((source, sink)) = self.fingerprint.split_once(" -> ") else {
            return Err(Error::user(format!(
                "the version 1 checkpoint of pipeline `{}` has an unreadable fingerprint `{}`; start over with --fresh",
                self.name, self.fingerprint
            )));
        };
        let table = source.rsplit_once(" (").map_or(source, |(t, _)| t).to_string();
        Ok(PipelineState {
            name: self.name,
            sink: sink.to_string(),
            inputs: vec![InputState { table, identity: None, position: self.position, finished: self.finished }],
            prepared_checkpoint: self.prepared_checkpoint,
            prepared: self.prepared,
            finished: self.finished,
            exact: self.exact,
            operators: Vec::new(),
            captured: self.captured,
        })
    }
}

impl CheckpointRecord {
    pub fn new(job: &str, checkpoint_id: u64, pipelines: Vec<Option<PipelineState>>) -> Self {
        let created_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        CheckpointRecord { version: VERSION, job: job.to_string(), checkpoint_id, created_at_ms, pipelines }
    }

    /// The state files the record names.
    fn files(&self) -> impl Iterator<Item = &str> {
        self.pipelines.iter().flatten().flat_map(|p| p.operators.iter().map(|o| o.file.as_str()))
    }
}

/// The state directory of a job.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    retained: usize,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::external(format!("cannot {what} {}: {e}", path.display()))
}

fn checkpoint_id_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("chk-")?.strip_suffix(".json")?.parse().ok()
}

/// Writes `body` to `path` through a temporary file, synced before the rename.
fn write_atomically(path: &Path, body: impl FnOnce(&mut fs::File) -> Result<()>) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut file = fs::File::create(&temp).map_err(|e| io_error("create", &temp, e))?;
        body(&mut file)?;
        file.sync_all().map_err(|e| io_error("sync", &temp, e))?;
    }
    fs::rename(&temp, path).map_err(|e| io_error("rename", &temp, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("sync", dir, e))
}

impl CheckpointStore {
    pub fn open(dir: PathBuf, retained: usize) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(|e| {
            Error::user(format!(
                "cannot create the checkpoint directory {} ({e}); set 'state.checkpoints.dir' to a writable directory",
                dir.display()
            ))
        })?;
        Ok(CheckpointStore { dir, retained: retained.max(1) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn records(&self) -> Result<Vec<(u64, PathBuf)>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error("read", &self.dir, e))?;
        let mut records: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| checkpoint_id_of(&p).map(|id| (id, p)))
            .collect();
        records.sort();
        Ok(records)
    }

    /// The id of the newest record, if any (without reading it).
    pub fn newest_id(&self) -> Result<Option<u64>> {
        Ok(self.records()?.last().map(|(id, _)| *id))
    }

    /// The newest record, if any.
    pub fn latest(&self) -> Result<Option<CheckpointRecord>> {
        match self.records()?.pop() {
            Some((_, path)) => Ok(Some(Self::load(&path)?)),
            None => Ok(None),
        }
    }

    /// Reads a record file, or the newest record of a state directory; records of format
    /// version 1 come back as version 2.
    pub fn load(path: &Path) -> Result<CheckpointRecord> {
        if path.is_dir() {
            return CheckpointStore { dir: path.to_path_buf(), retained: 1 }
                .latest()?
                .ok_or_else(|| Error::user(format!("{} holds no checkpoint (chk-<id>.json)", path.display())));
        }
        let text = fs::read_to_string(path)
            .map_err(|e| Error::user(format!("cannot read checkpoint {}: {e}", path.display())))?;
        let not_ours =
            |e: serde_json::Error| Error::user(format!("{} is not a cdc-sql checkpoint: {e}", path.display()));
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        match serde_json::from_str::<Version>(&text).map_err(not_ours)?.version {
            1 => {
                let v1: CheckpointRecordV1 = serde_json::from_str(&text).map_err(not_ours)?;
                let mut pipelines = v1
                    .pipelines
                    .into_iter()
                    .map(|p| p.map(PipelineStateV1::upgrade).transpose())
                    .collect::<Result<Vec<_>>>()?;
                // Version 1 named every INSERT into one sink alike; they are numbered now, in
                // the same order (see the session's pipeline names).
                let mut seen: Vec<String> = Vec::new();
                for state in pipelines.iter_mut().flatten() {
                    let base = state.name.clone();
                    if seen.contains(&base) {
                        let n = seen.iter().filter(|s| **s == base).count() + 1;
                        state.name = format!("{base} ({n})");
                    }
                    seen.push(base);
                }
                Ok(CheckpointRecord {
                    version: VERSION,
                    job: v1.job,
                    checkpoint_id: v1.checkpoint_id,
                    created_at_ms: v1.created_at_ms,
                    pipelines,
                })
            }
            VERSION => serde_json::from_str(&text).map_err(not_ours),
            other => Err(Error::user(format!(
                "checkpoint {} has format version {other}, this cdc-sql reads versions 1 and {VERSION}",
                path.display()
            ))),
        }
    }

    /// Stores an operator's state for checkpoint `checkpoint_id`; the returned name goes into the
    /// record. Written and synced before the record is, so a record never names a missing file.
    pub fn write_state(
        &self,
        checkpoint_id: u64,
        pipeline: usize,
        operator: &str,
        state: &RecordBatch,
    ) -> Result<String> {
        let dir = self.dir.join(STATE_FILES);
        fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        let safe: String =
            operator.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        // FNV-1a of the operator's own name: two names the sanitising maps together (`a b`,
        // `a_b`) still get files of their own.
        let hash = crate::changelog::fnv1a64(operator.as_bytes());
        let name = format!("chk-{checkpoint_id}-p{pipeline}-{safe}-{:08x}.arrow", hash as u32);
        write_atomically(&dir.join(&name), |file| {
            let mut writer = FileWriter::try_new(file, &state.schema())?;
            writer.write(state)?;
            writer.finish()?;
            Ok(())
        })?;
        sync_dir(&dir)?;
        Ok(name)
    }

    /// Reads an operator's state file named by a record loaded from `record_path` (the record
    /// file, or the state directory it was the newest of).
    pub fn read_state(record_path: &Path, file: &str) -> Result<RecordBatch> {
        let dir = if record_path.is_dir() { record_path } else { record_path.parent().unwrap_or(Path::new(".")) };
        let path = dir.join(STATE_FILES).join(file);
        let unreadable = |why: String| {
            Error::user(format!(
                "the operator state {} the checkpoint names is unreadable ({why}); start over with --fresh",
                path.display()
            ))
        };
        let reader = FileReader::try_new(fs::File::open(&path).map_err(|e| unreadable(e.to_string()))?, None)
            .map_err(|e| unreadable(e.to_string()))?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| unreadable(e.to_string()))?;
        datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| unreadable(e.to_string()))
    }

    /// Copies the state files of a record read from elsewhere (`--from-checkpoint`) into this
    /// directory, so that the records this job writes next, which name the files of operators
    /// whose state did not change, name files that are here.
    pub fn adopt_state(&self, record_path: &Path, record: &CheckpointRecord) -> Result<()> {
        let from = if record_path.is_dir() { record_path } else { record_path.parent().unwrap_or(Path::new(".")) };
        let (from, to) = (from.join(STATE_FILES), self.dir.join(STATE_FILES));
        if record.files().next().is_none() || fs::canonicalize(&from).ok() == fs::canonicalize(&to).ok() {
            return Ok(());
        }
        fs::create_dir_all(&to).map_err(|e| io_error("create", &to, e))?;
        for file in record.files() {
            let target = to.join(file);
            write_atomically(&target, |out| {
                let mut source = fs::File::open(from.join(file)).map_err(|e| io_error("read", &from.join(file), e))?;
                std::io::copy(&mut source, out).map_err(|e| io_error("copy into", &target, e))?;
                Ok(())
            })?;
        }
        sync_dir(&to)
    }

    /// Stores a record atomically, then drops records beyond the retention count and the state
    /// files no retained record names.
    pub fn write(&self, record: &CheckpointRecord) -> Result<PathBuf> {
        let path = self.dir.join(format!("chk-{}.json", record.checkpoint_id));
        let body =
            serde_json::to_vec_pretty(record).map_err(|e| Error::internal(format!("checkpoint encoding: {e}")))?;
        write_atomically(&path, |file| file.write_all(&body).map_err(|e| io_error("write", &path, e)))?;
        sync_dir(&self.dir)?;
        let records = self.records()?;
        let excess = records.len().saturating_sub(self.retained);
        for (_, old) in records.iter().take(excess) {
            fs::remove_file(old).map_err(|e| io_error("remove", old, e))?;
        }
        self.remove_unnamed_state(records.iter().skip(excess).map(|(_, p)| p))?;
        Ok(path)
    }

    fn remove_unnamed_state<'a>(&self, records: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
        let dir = self.dir.join(STATE_FILES);
        if !dir.is_dir() {
            return Ok(());
        }
        let mut named = HashSet::new();
        for record in records {
            named.extend(Self::load(record)?.files().map(str::to_string));
        }
        let entries = fs::read_dir(&dir).map_err(|e| io_error("read", &dir, e))?;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            // Temporary files belong to a write in progress or to a crash; both may go.
            if !named.contains(name) {
                fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
            }
        }
        Ok(())
    }

    /// Forgets every record (`--fresh`).
    pub fn clear(&self) -> Result<()> {
        for (_, path) in self.records()? {
            fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
        }
        self.remove_unnamed_state(std::iter::empty())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    use super::*;

    fn state(name: &str, events: u64, operators: Vec<OperatorFile>) -> Option<PipelineState> {
        Some(PipelineState {
            name: name.into(),
            sink: "out (print)".into(),
            inputs: vec![InputState {
                table: "src".into(),
                identity: None,
                position: Some(serde_json::json!({ "events": events })),
                finished: false,
            }],
            prepared_checkpoint: Some(events),
            prepared: serde_json::Value::Null,
            finished: false,
            exact: false,
            operators,
            captured: None,
        })
    }

    fn state_batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("__table", DataType::Utf8, false),
            Field::new("id", DataType::Int64, false),
        ]));
        let tables = StringArray::from_iter_values((0..rows).map(|_| "s.t"));
        RecordBatch::try_new(schema, vec![Arc::new(tables), Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn records_round_trip_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("job"), 2).unwrap();
        assert_eq!(store.latest().unwrap(), None);
        for id in 1..=3 {
            store.write(&CheckpointRecord::new("job", id, vec![state("a", id, vec![])])).unwrap();
        }
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.checkpoint_id, 3);
        assert_eq!(latest.pipelines[0], state("a", 3, vec![]));
        assert_eq!(names(store.dir()).len(), 2, "{:?}", names(store.dir()));
        assert_eq!(CheckpointStore::load(store.dir()).unwrap().checkpoint_id, 3);
        store.clear().unwrap();
        assert_eq!(store.latest().unwrap(), None);
    }

    /// An unchanged operator state keeps its file, named by each new record; a file is removed
    /// once no retained record names it.
    #[test]
    fn operator_state_files_are_shared_by_records_and_removed_when_unnamed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().to_path_buf(), 1).unwrap();
        let first = store.write_state(1, 0, "src.truncate-as-deletes", &state_batch(3)).unwrap();
        let files = |name: &str| vec![OperatorFile { operator: "src.truncate-as-deletes".into(), file: name.into() }];
        store.write(&CheckpointRecord::new("job", 1, vec![state("a", 1, files(&first))])).unwrap();
        // Checkpoint 2: the state did not change, so the record names the same file.
        store.write(&CheckpointRecord::new("job", 2, vec![state("a", 2, files(&first))])).unwrap();
        assert_eq!(names(&dir.path().join(STATE_FILES)), std::slice::from_ref(&first));
        let read = CheckpointStore::read_state(dir.path(), &first).unwrap();
        assert_eq!(read, state_batch(3));
        let record_path = dir.path().join("chk-2.json");
        assert_eq!(CheckpointStore::read_state(&record_path, &first).unwrap(), state_batch(3));
        // Checkpoint 3: a changed state gets a new file; the old one is named by no record now.
        let third = store.write_state(3, 0, "src.truncate-as-deletes", &state_batch(5)).unwrap();
        store.write(&CheckpointRecord::new("job", 3, vec![state("a", 3, files(&third))])).unwrap();
        assert_eq!(names(&dir.path().join(STATE_FILES)), std::slice::from_ref(&third));
        store.clear().unwrap();
        assert!(names(&dir.path().join(STATE_FILES)).is_empty());
    }

    /// A record of format version 1 (one source per pipeline, named in a fingerprint; captured
    /// rows inline) is read as version 2.
    #[test]
    fn a_record_of_format_version_1_reads_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-7.json");
        fs::write(
            &path,
            r#"{"version":1,"job":"job","checkpoint_id":7,"created_at_ms":1,"pipelines":[{"name":"INSERT INTO out",
               "fingerprint":"src (postgres-cdc) -> out (jdbc)","position":{"lsn":"0/16B3748"},
               "prepared_checkpoint":7,"prepared":null,"finished":false,"exact":true,
               "captured":[{"table":"public.t","rows":"AAAA"}]},null,
              {"name":"INSERT INTO out","fingerprint":"src (postgres-cdc) -> out (jdbc)","position":null,
               "prepared_checkpoint":7,"prepared":null,"finished":false}]}"#,
        )
        .unwrap();
        let record = CheckpointStore::load(&path).unwrap();
        assert_eq!(record.version, VERSION);
        let p = record.pipelines[0].as_ref().unwrap();
        assert_eq!((p.name.as_str(), p.sink.as_str()), ("INSERT INTO out", "out (jdbc)"));
        assert_eq!(
            p.inputs,
            [InputState {
                table: "src".into(),
                identity: None,
                position: Some(serde_json::json!({"lsn": "0/16B3748"})),
                finished: false
            }]
        );
        assert!(p.exact && p.operators.is_empty());
        assert_eq!(p.captured.as_ref().unwrap()[0].table, "public.t");
        assert_eq!(record.pipelines[1], None);
        let second = record.pipelines[2].as_ref().unwrap();
        assert_eq!(
            second.name, "INSERT INTO out (2)",
            "a second INSERT into one sink is numbered as the job names it now"
        );
    }

    /// Sanitising maps `a b` and `a_b` to one name; their state files must still differ.
    #[test]
    fn operators_whose_names_sanitise_alike_get_files_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().to_path_buf(), 1).unwrap();
        let a = store.write_state(1, 0, "orders eu.truncate-as-deletes", &state_batch(1)).unwrap();
        let b = store.write_state(1, 0, "orders_eu.truncate-as-deletes", &state_batch(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(CheckpointStore::read_state(dir.path(), &a).unwrap(), state_batch(1));
    }

    #[test]
    fn garbage_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-1.json");
        fs::write(&path, "{").unwrap();
        assert!(CheckpointStore::load(&path).unwrap_err().to_string().contains("is not a cdc-sql checkpoint"));
        fs::write(&path, r#"{"version": 9}"#).unwrap();
        assert!(CheckpointStore::load(&path).unwrap_err().to_string().contains("format version 9"));
    }
}
