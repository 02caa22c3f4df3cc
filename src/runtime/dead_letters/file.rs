//! The JSON-lines destination of dead letters (`SET 'dead-letter.path'`): one JSON object per
//! line, appended; flushed and fsynced when asked.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Letter, PATH_KEY};
use crate::error::{Error, Result};

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

#[derive(Debug)]
pub(super) struct LetterFile {
    path: PathBuf,
    /// The file, and whether lines were appended since it was last made durable.
    out: Mutex<(BufWriter<File>, bool)>,
}

impl LetterFile {
    /// Opens `path` for appending, creating it.
    pub(super) fn open(path: &Path) -> Result<LetterFile> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Error::user(format!("cannot open the dead-letter file `{}` ('{PATH_KEY}'): {e}", path.display()))
        })?;
        Ok(LetterFile { path: path.to_path_buf(), out: Mutex::new((BufWriter::new(file), false)) })
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::external(format!("writing the dead-letter file `{}`: {e}", self.path.display()))
    }

    pub(super) fn append(&self, letters: &[Letter]) -> Result<()> {
        let mut lines = Vec::new();
        for letter in letters {
            let json = serde_json::json!({
                "job": letter.job,
                "pipeline": letter.pipeline,
                "stage": letter.stage.as_str(),
                "table": letter.table,
                "error": letter.error,
                "position": letter.position,
                "row_kind": letter.row_kind.map(|k| k.short()),
                "row": letter.row,
                "time": letter.time(),
            });
            serde_json::to_writer(&mut lines, &json)
                .map_err(|e| Error::internal(format!("writing a dead letter: {e}")))?;
            lines.push(b'\n');
        }
        let mut out = self.out.lock().map_err(|_| Error::internal("the dead-letter file's lock is poisoned"))?;
        out.1 = true;
        out.0.write_all(&lines).map_err(|e| self.io_error(e))
    }

    /// Flushes and fsyncs what was appended since the last time (nothing to do when nothing was).
    pub(super) fn sync(&self) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
