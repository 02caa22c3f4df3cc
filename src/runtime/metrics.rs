//! What a running job exposes about itself: a registry of atomics shared (`Arc`) between the
//! runtime, which updates it once per batch and once per checkpoint (never per row), and the
//! readers — the REST API, `/metrics` and the terminal status line — which take snapshots.
//!
//! Exception messages pass through [`crate::secrets::redact`] before they are kept, so a secret an
//! error might quote (a URL with a password) is masked in every place that shows them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::connectors::{ReplicationSlot, SnapshotProgress, SourceProgress};
use crate::error::Error;
use crate::operators::LookupCounters;

/// Checkpoints kept for `/jobs/{id}/checkpoints` (Flink's `web.checkpoints.history` default).
const CHECKPOINT_HISTORY: usize = 10;
/// Exceptions kept for `/jobs/{id}/exceptions` (Flink's `web.exception-history-size` default is 16).
const EXCEPTION_HISTORY: usize = 16;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A job's state, named as Flink names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Initializing,
    Running,
    Restarting,
    Finished,
    Failed,
    Canceled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Initializing,
        JobState::Running,
        JobState::Restarting,
        JobState::Finished,
        JobState::Failed,
        JobState::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Initializing => "INITIALIZING",
            JobState::Running => "RUNNING",
            JobState::Restarting => "RESTARTING",
            JobState::Finished => "FINISHED",
            JobState::Failed => "FAILED",
            JobState::Canceled => "CANCELED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Finished | JobState::Failed | JobState::Canceled)
    }

    fn from_code(code: u8) -> JobState {
        JobState::ALL.get(code as usize).copied().unwrap_or(JobState::Failed)
    }

    fn code(self) -> u8 {
        JobState::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }
}

/// Several inputs' progress as one (see [`PipelineMetrics::progress`]); `None` for none.
fn combine(parts: &[(String, SourceProgress)]) -> Option<SourceProgress> {
    match parts {
        [] => None,
        [(_, one)] => Some(one.clone()),
        _ => {
            let all = || parts.iter().map(|(_, p)| p);
            let sum = |f: fn(&SourceProgress) -> Option<u64>| all().filter_map(f).reduce(|a, b| a + b);
            let snapshots: Vec<&SnapshotProgress> = all().filter_map(|p| p.snapshot.as_ref()).collect();
            let snapshot = (!snapshots.is_empty()).then(|| SnapshotProgress {
                tables_done: snapshots.iter().map(|s| s.tables_done).sum(),
                tables_remaining: snapshots.iter().map(|s| s.tables_remaining).sum(),
                chunks_done: snapshots.iter().map(|s| s.chunks_done).sum(),
                chunks_remaining: snapshots.iter().map(|s| s.chunks_remaining).sum(),
                finished: snapshots.iter().all(|s| s.finished),
            });
            let positions: Vec<String> = parts
                .iter()
                .filter_map(|(table, p)| p.position.as_ref().map(|pos| format!("{table}: {pos}")))
                .collect();
            Some(SourceProgress {
                event_time_ms: all().filter_map(|p| p.event_time_ms).max(),
                fetch_event_time_lag_ms: all().filter_map(|p| p.fetch_event_time_lag_ms).max(),
                snapshot,
                position: (!positions.is_empty()).then(|| positions.join("; ")),
                slot_lag_bytes: sum(|p| p.slot_lag_bytes),
                events: sum(|p| p.events),
                // A total only when every input knows its own.
                events_total: all().map(|p| p.events_total).sum::<Option<u64>>(),
                skipped: sum(|p| p.skipped),
            })
        }
    }
}

/// Counters of one pipeline (one INSERT).
#[derive(Debug)]
pub struct PipelineMetrics {
    pub name: String,
    pub source_table: String,
    pub sink_table: String,
    pub records_read: AtomicU64,
    pub records_written: AtomicU64,
    /// Arrow in-memory size of the batches read and written (Flink's numBytesIn/Out counts
    /// serialized bytes; there is no serialization here).
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub batches: AtomicU64,
    pub errors: AtomicU64,
    /// Rows set aside as dead letters (see [`super::dead_letters`]).
    pub dead_letters: AtomicU64,
    /// Milliseconds from the newest change's event time to its hand-over to the sink; -1 unknown.
    pub emit_lag_ms: AtomicI64,
    pub finished: AtomicBool,
    /// The tables of the pipeline's inputs, in input order.
    pub inputs: Vec<String>,
    /// What each input's source last told of its progress.
    progress: Mutex<Vec<Option<SourceProgress>>>,
    slots: Mutex<Vec<ReplicationSlot>>,
    /// What the pipeline's lookup joins did.
    lookups: Mutex<Vec<Arc<LookupCounters>>>,
}

impl PipelineMetrics {
    /// Counters of pipeline `name` reading the tables `inputs` into `sink_table`.
    pub fn new(name: &str, inputs: &[String], sink_table: &str) -> Self {
        PipelineMetrics {
            name: name.to_string(),
            source_table: inputs.join(", "),
            sink_table: sink_table.to_string(),
            records_read: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            emit_lag_ms: AtomicI64::new(-1),
            finished: AtomicBool::new(false),
            inputs: inputs.to_vec(),
            progress: Mutex::new(vec![None; inputs.len()]),
            slots: Mutex::new(Vec::new()),
            lookups: Mutex::new(Vec::new()),
        }
    }

    /// Records a replication slot one of the pipeline's sources holds (when the job is made).
    pub fn add_slot(&self, slot: ReplicationSlot) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.push(slot);
        }
    }

    /// Counts the lookups of one of the pipeline's lookup joins.
    pub fn add_lookup(&self, counters: Arc<LookupCounters>) {
        if let Ok(mut lookups) = self.lookups.lock() {
            lookups.push(counters);
        }
    }

    /// The counters of the pipeline's lookup joins.
    pub fn lookups(&self) -> Vec<Arc<LookupCounters>> {
        self.lookups.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The replication slots the pipeline's sources hold.
    pub fn slots(&self) -> Vec<ReplicationSlot> {
        self.slots.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What input `input`'s source tells of its progress now.
    pub fn set_progress(&self, input: usize, progress: Option<SourceProgress>) {
        if let Ok(mut p) = self.progress.lock() {
            if let Some(slot) = p.get_mut(input) {
                *slot = progress;
            }
        }
    }

    /// Each input's progress, with its table, for inputs whose source tells it.
    pub fn input_progress(&self) -> Vec<(String, SourceProgress)> {
        let Ok(p) = self.progress.lock() else { return Vec::new() };
        self.inputs.iter().zip(p.iter()).filter_map(|(table, p)| Some((table.clone(), p.clone()?))).collect()
    }

    /// The progress of all the pipeline's inputs as one: counts added up, the largest lag, the
    /// newest event time, each input's position named by its table when there are several.
    pub fn progress(&self) -> Option<SourceProgress> {
        combine(&self.input_progress())
    }

    pub fn emit_lag(&self) -> Option<u64> {
        u64::try_from(self.emit_lag_ms.load(Ordering::Relaxed)).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointStatus {
    InProgress,
    Completed,
    Failed,
}

impl CheckpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointStats {
    pub id: u64,
    pub status: CheckpointStatus,
    pub trigger_ms: i64,
    /// When the last pipeline reported (or the record was stored).
    pub ack_ms: i64,
    pub duration_ms: u64,
    /// Size of the stored record file; 0 when checkpoints are not stored.
    pub size_bytes: u64,
    pub path: Option<String>,
    pub pipelines: usize,
    pub acknowledged: usize,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestoredCheckpoint {
    pub id: u64,
    pub restore_ms: i64,
    pub path: Option<String>,
}

#[derive(Debug, Default)]
struct Checkpoints {
    history: VecDeque<CheckpointStats>,
    latest_completed: Option<CheckpointStats>,
    latest_failed: Option<CheckpointStats>,
    restored: Option<RestoredCheckpoint>,
    completed: u64,
    failed: u64,
}

/// A snapshot of the checkpoint statistics.
#[derive(Debug, Clone, Default)]
pub struct CheckpointSummary {
    pub completed: u64,
    pub failed: u64,
    pub in_progress: u64,
    pub restored: u64,
    pub history: Vec<CheckpointStats>,
    pub latest_completed: Option<CheckpointStats>,
    pub latest_failed: Option<CheckpointStats>,
    pub restored_from: Option<RestoredCheckpoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionEntry {
    pub time_ms: i64,
    /// Who must act: `user`, `external` or `internal` (see `Error`).
    pub kind: &'static str,
    pub message: String,
}

/// Everything the job exposes, shared by the runtime and its observers.
#[derive(Debug)]
pub struct JobMetrics {
    /// 32 hex digits, like a Flink JobID.
    pub job_id: String,
    pub name: String,
    pub pipelines: Vec<Arc<PipelineMetrics>>,
    state: AtomicU8,
    start_ms: i64,
    end_ms: AtomicI64,
    last_modification_ms: AtomicI64,
    /// When each state was entered, by state code; 0 never.
    state_timestamps: [AtomicI64; 6],
    restarts: AtomicU64,
    checkpoint_in_flight: AtomicBool,
    checkpoints: Mutex<Checkpoints>,
    exceptions: Mutex<VecDeque<ExceptionEntry>>,
    stopped_by_request: AtomicBool,
}

impl JobMetrics {
    /// A registry for a job named `name` with these pipelines (name, input tables, sink table).
    pub fn new(name: &str, pipelines: &[(String, Vec<String>, String)]) -> Arc<Self> {
        let start_ms = now_ms();
        let metrics = JobMetrics {
            job_id: job_id(name, start_ms),
            name: name.to_string(),
            pipelines: pipelines.iter().map(|(n, s, t)| Arc::new(PipelineMetrics::new(n, s, t))).collect(),
            state: AtomicU8::new(JobState::Initializing.code()),
            start_ms,
            end_ms: AtomicI64::new(-1),
            last_modification_ms: AtomicI64::new(start_ms),
            state_timestamps: Default::default(),
            restarts: AtomicU64::new(0),
            checkpoint_in_flight: AtomicBool::new(false),
            checkpoints: Mutex::new(Checkpoints::default()),
            exceptions: Mutex::new(VecDeque::new()),
            stopped_by_request: AtomicBool::new(false),
        };
        metrics.state_timestamps[JobState::Initializing.code() as usize].store(start_ms, Ordering::Relaxed);
        Arc::new(metrics)
    }

    pub fn state(&self) -> JobState {
        JobState::from_code(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, state: JobState) {
        let now = now_ms();
        self.state.store(state.code(), Ordering::Relaxed);
        self.state_timestamps[state.code() as usize].store(now, Ordering::Relaxed);
        self.last_modification_ms.store(now, Ordering::Relaxed);
        if state.is_terminal() {
            self.end_ms.store(now, Ordering::Relaxed);
        }
    }

    /// When `state` was last entered, if ever.
    pub fn state_timestamp(&self, state: JobState) -> Option<i64> {
        Some(self.state_timestamps[state.code() as usize].load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// -1 while the job runs, as in Flink.
    pub fn end_ms(&self) -> i64 {
        self.end_ms.load(Ordering::Relaxed)
    }

    pub fn last_modification_ms(&self) -> i64 {
        self.last_modification_ms.load(Ordering::Relaxed)
    }

    pub fn duration_ms(&self) -> i64 {
        let end = self.end_ms();
        (if end < 0 { now_ms() } else { end }) - self.start_ms
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.set_state(JobState::Restarting);
    }

    /// Marks that a stop was asked for over the REST API (Flink's stop-with-savepoint ends the
    /// job FINISHED; a signal ends it CANCELED).
    pub fn request_stop(&self) {
        self.stopped_by_request.store(true, Ordering::Relaxed);
    }

    pub fn stopped_by_request(&self) -> bool {
        self.stopped_by_request.load(Ordering::Relaxed)
    }

    pub fn record_exception(&self, error: &Error) {
        let kind = match error.kind() {
            crate::ErrorKind::User => "user",
            crate::ErrorKind::External => "external",
            crate::ErrorKind::Internal => "internal",
        };
        let entry = ExceptionEntry { time_ms: now_ms(), kind, message: crate::secrets::redact(&error.to_string()) };
        if let Ok(mut e) = self.exceptions.lock() {
            if e.len() == EXCEPTION_HISTORY {
                e.pop_front();
            }
            e.push_back(entry);
        }
        self.last_modification_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Newest first.
    pub fn exceptions(&self) -> Vec<ExceptionEntry> {
        self.exceptions.lock().map(|e| e.iter().rev().cloned().collect()).unwrap_or_default()
    }

    pub fn checkpoint_restored(&self, id: u64, path: Option<String>) {
        if let Ok(mut c) = self.checkpoints.lock() {
            c.restored = Some(RestoredCheckpoint { id, restore_ms: now_ms(), path });
        }
    }

    pub fn checkpoint_triggered(&self) {
        self.checkpoint_in_flight.store(true, Ordering::Relaxed);
    }

    pub fn checkpoint_completed(&self, stats: CheckpointStats) {
        self.checkpoint_in_flight.store(false, Ordering::Relaxed);
        if let Ok(mut c) = self.checkpoints.lock() {
            c.completed += 1;
            c.latest_completed = Some(stats.clone());
            push_history(&mut c.history, stats);
        }
    }

    pub fn checkpoint_failed(&self, stats: CheckpointStats) {
        self.checkpoint_in_flight.store(false, Ordering::Relaxed);
        if let Ok(mut c) = self.checkpoints.lock() {
            c.failed += 1;
            c.latest_failed = Some(stats.clone());
            push_history(&mut c.history, stats);
        }
    }

    pub fn checkpoints(&self) -> CheckpointSummary {
        let in_progress = u64::from(self.checkpoint_in_flight.load(Ordering::Relaxed));
        let Ok(c) = self.checkpoints.lock() else { return CheckpointSummary::default() };
        CheckpointSummary {
            completed: c.completed,
            failed: c.failed,
            in_progress,
            restored: u64::from(c.restored.is_some()),
            history: c.history.iter().rev().cloned().collect(),
            latest_completed: c.latest_completed.clone(),
            latest_failed: c.latest_failed.clone(),
            restored_from: c.restored.clone(),
        }
    }

    /// Time since the last completed checkpoint, if there was one.
    pub fn last_checkpoint_age(&self) -> Option<Duration> {
        let c = self.checkpoints.lock().ok()?;
        let at = c.latest_completed.as_ref()?.ack_ms;
        Some(Duration::from_millis(now_ms().saturating_sub(at).max(0) as u64))
    }

    pub fn records_read(&self) -> u64 {
        self.pipelines.iter().map(|p| p.records_read.load(Ordering::Relaxed)).sum()
    }

    pub fn records_written(&self) -> u64 {
        self.pipelines.iter().map(|p| p.records_written.load(Ordering::Relaxed)).sum()
    }
}

fn push_history(history: &mut VecDeque<CheckpointStats>, stats: CheckpointStats) {
    if history.len() == CHECKPOINT_HISTORY {
        history.pop_front();
    }
    history.push_back(stats);
}

/// A Flink-like JobID: 32 hex digits, different for every run of the same job.
fn job_id(name: &str, start_ms: i64) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let high = h.finish();
    (start_ms, std::process::id(), SystemTime::now()).hash(&mut h);
    format!("{high:016x}{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(id: u64, status: CheckpointStatus) -> CheckpointStats {
        CheckpointStats {
            id,
            status,
            trigger_ms: 1,
            ack_ms: now_ms(),
            duration_ms: 3,
            size_bytes: 10,
            path: None,
            pipelines: 1,
            acknowledged: 1,
            failure: None,
        }
    }

    /// Each input of a UNION ALL keeps its own progress; the pipeline's adds them up instead of
    /// showing whichever input read last.
    #[test]
    fn a_pipelines_progress_combines_every_inputs_own() {
        let p = PipelineMetrics::new("INSERT INTO s", &["eu".into(), "us".into()], "s");
        let snapshot = |done, remaining, finished: bool| SnapshotProgress {
            tables_done: u64::from(finished),
            tables_remaining: u64::from(!finished),
            chunks_done: done,
            chunks_remaining: remaining,
            finished,
        };
        p.set_progress(
            0,
            Some(SourceProgress {
                events: Some(10),
                events_total: Some(10),
                fetch_event_time_lag_ms: Some(5),
                snapshot: Some(snapshot(4, 0, true)),
                position: Some("mysql-bin.000003:4711".into()),
                ..Default::default()
            }),
        );
        assert_eq!(p.progress().and_then(|s| s.position).as_deref(), Some("mysql-bin.000003:4711"));
        p.set_progress(
            1,
            Some(SourceProgress {
                events: Some(7),
                fetch_event_time_lag_ms: Some(40),
                snapshot: Some(snapshot(1, 2, false)),
                position: Some("LSN 0/16B3748".into()),
                slot_lag_bytes: Some(100),
                ..Default::default()
            }),
        );
        let all = p.progress().unwrap();
        assert_eq!(
            (all.events, all.events_total, all.fetch_event_time_lag_ms, all.slot_lag_bytes),
            (Some(17), None, Some(40), Some(100))
        );
        assert_eq!(
            all.snapshot,
            Some(SnapshotProgress {
                tables_done: 1,
                tables_remaining: 1,
                chunks_done: 5,
                chunks_remaining: 2,
                finished: false
            })
        );
        assert_eq!(all.position.as_deref(), Some("eu: mysql-bin.000003:4711; us: LSN 0/16B3748"));
        let tables: Vec<String> = p.input_progress().into_iter().map(|(t, _)| t).collect();
        assert_eq!(tables, ["eu", "us"]);
    }

    #[test]
    fn states_carry_their_timestamps_and_end_time() {
        let m = JobMetrics::new("j", &[("INSERT INTO s".into(), vec!["src".into()], "s".into())]);
        assert_eq!(m.job_id.len(), 32);
        assert!(m.job_id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(m.state(), JobState::Initializing);
        assert_eq!(m.end_ms(), -1);
        m.set_state(JobState::Running);
        assert!(m.state_timestamp(JobState::Running).is_some());
        assert_eq!(m.state_timestamp(JobState::Failed), None);
        m.record_restart();
        assert_eq!((m.state(), m.restarts()), (JobState::Restarting, 1));
        m.set_state(JobState::Finished);
        assert!(m.end_ms() >= m.start_ms());
    }

    #[test]
    fn checkpoint_history_is_bounded_and_newest_first() {
        let m = JobMetrics::new("j", &[]);
        for id in 1..=12 {
            m.checkpoint_triggered();
            m.checkpoint_completed(stats(id, CheckpointStatus::Completed));
        }
        m.checkpoint_failed(CheckpointStats { failure: Some("boom".into()), ..stats(13, CheckpointStatus::Failed) });
        let s = m.checkpoints();
        assert_eq!((s.completed, s.failed, s.in_progress), (12, 1, 0));
        assert_eq!(s.history.len(), CHECKPOINT_HISTORY);
        assert_eq!(s.history[0].id, 13);
        assert_eq!(s.latest_completed.map(|c| c.id), Some(12));
        assert!(m.last_checkpoint_age().is_some());
    }

    #[test]
    fn exceptions_are_kept_newest_first_and_bounded() {
        let m = JobMetrics::new("j", &[]);
        for i in 0..20 {
            m.record_exception(&Error::external(format!("failure {i}")));
        }
        let e = m.exceptions();
        assert_eq!(e.len(), EXCEPTION_HISTORY);
        assert_eq!((e[0].message.as_str(), e[0].kind), ("failure 19", "external"));
    }
}
