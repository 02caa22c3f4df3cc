//! Checkpoint records on disk: one JSON file per checkpoint (`chk-<id>.json`) in the job's state
//! directory, written atomically (temporary file, fsync, rename, fsync of the directory) so a crash
//! leaves either the previous record or the new one, never half of one. The newest
//! `state.checkpoints.num-retained` records are kept.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::captured::CapturedTableState;
use crate::connectors::Position;
use crate::error::{Error, Result};

const VERSION: u32 = 1;

/// What one pipeline needs to resume: where its source was, and what its sink prepared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineState {
    pub name: String,
    /// Identifies the pipeline's source and sink; a record does not apply to another job.
    pub fingerprint: String,
    pub position: Option<Position>,
    /// The checkpoint id and state of the sink's last `prepare`, handed to `recover` on restart.
    pub prepared_checkpoint: Option<u64>,
    pub prepared: serde_json::Value,
    /// The pipeline's bounded source was done: a restart does not run it again.
    pub finished: bool,
    /// The run that stored this stopped right after it (its final checkpoint): nothing after
    /// `position` reached the sink. It holds for one resume only, so the runtime clears it in
    /// the stored record before resuming (a run killed later may have delivered more).
    #[serde(default)]
    pub exact: bool,
    /// The rows the runtime keeps for a source that turns truncations into deletes, as of
    /// `position`.
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

impl CheckpointRecord {
    pub fn new(job: &str, checkpoint_id: u64, pipelines: Vec<Option<PipelineState>>) -> Self {
        let created_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        CheckpointRecord { version: VERSION, job: job.to_string(), checkpoint_id, created_at_ms, pipelines }
    }

    /// Refuses a record that was not written for these pipelines.
    pub fn check_applies_to(&self, fingerprints: &[String]) -> Result<()> {
        let mismatch = |detail: String| {
            Error::user(format!(
                "the stored checkpoint {} of job '{}' does not fit this job: {detail}. The job's INSERTs, or their source \
                 or sink tables, changed since it was taken. Restore the previous job file, or start over with --fresh \
                 (the sources then begin as their scan.startup.mode says)",
                self.checkpoint_id, self.job
            ))
        };
        if self.pipelines.len() != fingerprints.len() {
            return Err(mismatch(format!(
                "it has {} pipelines, the job has {}",
                self.pipelines.len(),
                fingerprints.len()
            )));
        }
        for (i, (state, fingerprint)) in self.pipelines.iter().zip(fingerprints).enumerate() {
            if let Some(state) = state {
                if &state.fingerprint != fingerprint {
                    return Err(mismatch(format!(
                        "pipeline {} was `{}` and is now `{fingerprint}`",
                        i + 1,
                        state.fingerprint
                    )));
                }
            }
        }
        Ok(())
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

    /// The newest record, if any.
    pub fn latest(&self) -> Result<Option<CheckpointRecord>> {
        match self.records()?.pop() {
            Some((_, path)) => Ok(Some(Self::load(&path)?)),
            None => Ok(None),
        }
    }

    /// Reads a record file, or the newest record of a state directory.
    pub fn load(path: &Path) -> Result<CheckpointRecord> {
        if path.is_dir() {
            return CheckpointStore { dir: path.to_path_buf(), retained: 1 }
                .latest()?
                .ok_or_else(|| Error::user(format!("{} holds no checkpoint (chk-<id>.json)", path.display())));
        }
        let text = fs::read_to_string(path)
            .map_err(|e| Error::user(format!("cannot read checkpoint {}: {e}", path.display())))?;
        let record: CheckpointRecord = serde_json::from_str(&text)
            .map_err(|e| Error::user(format!("{} is not a cdc-sql checkpoint: {e}", path.display())))?;
        if record.version != VERSION {
            return Err(Error::user(format!(
                "checkpoint {} has format version {}, this cdc-sql reads version {VERSION}",
                path.display(),
                record.version
            )));
        }
        Ok(record)
    }

    /// Stores a record atomically, then drops records beyond the retention count.
    pub fn write(&self, record: &CheckpointRecord) -> Result<PathBuf> {
        let path = self.dir.join(format!("chk-{}.json", record.checkpoint_id));
        let temp = self.dir.join(format!(".chk-{}.json.tmp", record.checkpoint_id));
        let body =
            serde_json::to_vec_pretty(record).map_err(|e| Error::internal(format!("checkpoint encoding: {e}")))?;
        {
            let mut file = fs::File::create(&temp).map_err(|e| io_error("create", &temp, e))?;
            file.write_all(&body).map_err(|e| io_error("write", &temp, e))?;
            file.sync_all().map_err(|e| io_error("sync", &temp, e))?;
        }
        fs::rename(&temp, &path).map_err(|e| io_error("rename", &temp, e))?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io_error("sync", &self.dir, e))?;
        let records = self.records()?;
        let excess = records.len().saturating_sub(self.retained);
        for (_, old) in records.into_iter().take(excess) {
            fs::remove_file(&old).map_err(|e| io_error("remove", &old, e))?;
        }
        Ok(path)
    }

    /// Forgets every record (`--fresh`).
    pub fn clear(&self) -> Result<()> {
        for (_, path) in self.records()? {
            fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str, events: u64) -> Option<PipelineState> {
        Some(PipelineState {
            name: name.into(),
            fingerprint: format!("fp-{name}"),
            position: Some(serde_json::json!({ "events": events })),
            prepared_checkpoint: Some(events),
            prepared: serde_json::Value::Null,
            finished: false,
            exact: false,
            captured: None,
        })
    }

    #[test]
    fn records_round_trip_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("job"), 2).unwrap();
        assert_eq!(store.latest().unwrap(), None);
        for id in 1..=3 {
            store.write(&CheckpointRecord::new("job", id, vec![state("a", id)])).unwrap();
        }
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.checkpoint_id, 3);
        assert_eq!(latest.pipelines[0], state("a", 3));
        let names: Vec<_> = fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(CheckpointStore::load(store.dir()).unwrap().checkpoint_id, 3);
        store.clear().unwrap();
        assert_eq!(store.latest().unwrap(), None);
    }

    #[test]
    fn a_record_of_other_pipelines_is_refused() {
        let record = CheckpointRecord::new("job", 7, vec![state("a", 1), None]);
        assert!(record.check_applies_to(&["fp-a".into(), "anything".into()]).is_ok());
        let err = record.check_applies_to(&["fp-b".into(), "x".into()]).unwrap_err().to_string();
        assert!(err.contains("pipeline 1 was `fp-a` and is now `fp-b`") && err.contains("--fresh"), "{err}");
        assert!(record.check_applies_to(&["fp-a".into()]).is_err());
    }

    #[test]
    fn garbage_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-1.json");
        fs::write(&path, "{").unwrap();
        assert!(CheckpointStore::load(&path).unwrap_err().to_string().contains("is not a cdc-sql checkpoint"));
    }
}
