//! Runs jobs: one pipeline per INSERT (its sources → operators → sink, see [`crate::operators`]),
//! all pipelines of a job side by side, and the checkpoint protocol of DESIGN.md §3 across them.
//!
//! A coordinator triggers checkpoint *n* every `execution.checkpointing.interval`: each pipeline
//! finishes the batch at hand, its sink prepares (flushes, pre-commits), and it reports its source
//! position and what the sink prepared; once every pipeline has reported, the record is written
//! atomically to the job's state directory; only then do sinks commit and sources learn that the
//! position is safe (e.g. a PostgreSQL slot may release WAL). A pipeline that ends — its bounded
//! sources are done, a LIMIT is reached, or the job is asked to stop — takes a final checkpoint the
//! same way. On start, a stored record resumes every pipeline: each input's source from its
//! position, operators from their state files, sinks recover what was prepared but maybe not
//! committed. A record applies only to the same job: the same pipelines, sinks, and inputs whose
//! sources read the same things from the same places (see [`resume`]). Without a checkpoint interval nothing is
//! stored (as in Flink): sinks still prepare and commit at the end.
//!
//! Failures of the outside world restart the job from its last checkpoint as the restart strategy
//! allows; problems the user must fix stop it at once.

pub mod checkpoint;
pub mod dead_letters;
pub mod metrics;
mod pipeline;
pub mod restart;
mod resume;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use checkpoint::{CheckpointRecord, CheckpointStore, InputState, PipelineState};
pub use dead_letters::{DeadLetters, Stage};
pub use metrics::{JobMetrics, JobState};
pub use restart::{RestartStrategy, RestartTracker};

use crate::connectors::{ReplicationSlot, Sink, Source, SourceIdentity};
use crate::error::{Error, ErrorKind, Result};
use crate::operators::{ComputedColumns, OperatorSnapshot};
use crate::plan::CompiledQuery;

pub type SourceFactory = Arc<dyn Fn() -> Result<Box<dyn Source>> + Send + Sync>;
pub type SinkFactory = Arc<dyn Fn() -> Result<Box<dyn Sink>> + Send + Sync>;

/// One source table an INSERT reads, able to open a fresh source for every (re)start.
#[derive(Clone)]
pub struct InputSpec {
    /// The source table: the input's id within its pipeline and its checkpoints.
    pub table: String,
    /// What the source's positions are positions in: a checkpoint resumes only the same.
    pub identity: SourceIdentity,
    pub open_source: SourceFactory,
    /// The replication slot the source holds for the job, shown to the user.
    pub slot: Option<ReplicationSlot>,
    /// The table's computed columns, added to every batch its source reads.
    pub computed: Option<Arc<ComputedColumns>>,
}

/// What a pipeline makes of its inputs' changes before they reach its sink.
#[derive(Clone)]
pub enum Dataflow {
    /// An INSERT's query: its rows are of the sink's one table, handed over in `sink_schema`.
    Query { query: Arc<CompiledQuery>, sink_schema: SchemaRef },
    /// A pipeline definition's tables: each table's changes go to the sink as they are, under the
    /// table's id and in its own columns, for the sink to route.
    Tables,
}

impl Dataflow {
    /// The query, if there is one.
    pub fn query(&self) -> Option<&Arc<CompiledQuery>> {
        match self {
            Dataflow::Query { query, .. } => Some(query),
            Dataflow::Tables => None,
        }
    }

    /// Whether operators keep state of what they were given (a GROUP BY, a join).
    pub fn is_stateful(&self) -> bool {
        self.query().is_some_and(|q| q.is_stateful())
    }
}

/// Inputs → query → sink, able to open fresh connectors for every (re)start.
#[derive(Clone)]
pub struct PipelineSpec {
    /// The pipeline's identity in the job, stable across runs and unique in it, also shown in
    /// logs: `INSERT INTO orders_sink`, and `INSERT INTO orders_sink (2)` for a second INSERT
    /// into the same sink. Exactly-once sinks store positions under it.
    pub name: String,
    /// The sink table and its connector (`orders_sink (jdbc)`): a checkpoint applies only to the
    /// same.
    pub sink: String,
    /// The tables the query reads, in the order of [`CompiledQuery::inputs`].
    pub inputs: Vec<InputSpec>,
    pub open_sink: SinkFactory,
    pub dataflow: Dataflow,
    /// Name of the sink table, for messages.
    pub sink_table: String,
}

impl PipelineSpec {
    /// The tables of its inputs, in input order.
    pub fn input_tables(&self) -> Vec<String> {
        self.inputs.iter().map(|i| i.table.clone()).collect()
    }

    /// The replication slots the pipeline's sources hold.
    pub fn slots(&self) -> impl Iterator<Item = &ReplicationSlot> {
        self.inputs.iter().filter_map(|i| i.slot.as_ref())
    }
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub name: String,
    pub checkpoint_interval: Option<Duration>,
    /// Where checkpoint records go; `None` when checkpointing is off.
    pub state_dir: Option<PathBuf>,
    pub retained_checkpoints: usize,
    pub restart: RestartStrategy,
    /// `host:port` for the REST API from `SET 'rest.address'` / `'rest.port'`; `None` when unset.
    pub rest_address: Option<String>,
    /// Where rows the job cannot process go (`SET 'dead-letter.path'` or `'dead-letter.table'`);
    /// `None`: they stop it.
    pub dead_letters: Option<dead_letters::Target>,
}

pub struct Job {
    pub config: JobConfig,
    pub pipelines: Vec<PipelineSpec>,
}

/// Where a job starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// From the newest checkpoint in the state directory, if there is one.
    Latest,
    /// From this checkpoint file (or the newest in this directory).
    From(PathBuf),
    /// From nothing: stored checkpoints are deleted.
    Fresh,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    pub name: String,
    pub rows_read: u64,
    pub rows_written: u64,
    pub checkpoints: u64,
}

impl Job {
    /// A metrics registry for this job's pipelines.
    pub fn new_metrics(&self) -> Arc<JobMetrics> {
        let pipelines: Vec<(String, Vec<String>, String)> =
            self.pipelines.iter().map(|p| (p.name.clone(), p.input_tables(), p.sink_table.clone())).collect();
        let metrics = JobMetrics::new(&self.config.name, &pipelines);
        for (spec, pipeline) in self.pipelines.iter().zip(&metrics.pipelines) {
            for slot in spec.slots() {
                pipeline.add_slot(slot.clone());
            }
            for counters in spec.dataflow.query().map(|q| q.lookup_counters()).unwrap_or_default() {
                pipeline.add_lookup(counters);
            }
        }
        metrics
    }
}

/// Runs `job` until every pipeline is done, `stop` is cancelled (final checkpoint, then `Ok`), or
/// a failure the restart strategy does not cover.
pub async fn run(job: Job, resume: Resume, stop: CancellationToken) -> Result<Vec<PipelineReport>> {
    let metrics = job.new_metrics();
    run_with_metrics(job, resume, stop, metrics).await
}

/// [`run`], keeping `metrics` (made by [`Job::new_metrics`]) up to date for observers.
pub async fn run_with_metrics(
    job: Job,
    resume: Resume,
    stop: CancellationToken,
    metrics: Arc<JobMetrics>,
) -> Result<Vec<PipelineReport>> {
    let result = run_observed(&job, resume, stop.clone(), &metrics).await;
    metrics.set_state(match &result {
        Err(_) => JobState::Failed,
        Ok(_) if stop.is_cancelled() && !metrics.stopped_by_request() => JobState::Canceled,
        Ok(_) => JobState::Finished,
    });
    result
}

async fn run_observed(
    job: &Job,
    resume: Resume,
    stop: CancellationToken,
    metrics: &Arc<JobMetrics>,
) -> Result<Vec<PipelineReport>> {
    let config = &job.config;
    let store = match &config.state_dir {
        Some(dir) => Some(CheckpointStore::open(dir.clone(), config.retained_checkpoints)?),
        None => None,
    };
    // The record to resume from, and where it was read (its operators' state files are beside it).
    let mut restored = match (&resume, &store) {
        (Resume::From(path), _) => {
            let record = CheckpointStore::load(path)?;
            if let Some(store) = &store {
                store.adopt_state(path, &record)?;
            }
            Some((record, path.clone()))
        }
        (Resume::Fresh, Some(store)) => {
            store.clear()?;
            None
        }
        (Resume::Latest, Some(store)) => store.latest()?.map(|r| (r, store.dir().to_path_buf())),
        (_, None) => None,
    };
    // The record as stored: what the check revives (a snapshot to continue) is for this run
    // and is not written back, should the source then refuse to continue it.
    let as_stored = restored.as_ref().map(|(record, _)| record.clone());
    if let Some((record, _)) = restored.as_mut() {
        if let Err(e) = resume::check(record, &job.pipelines) {
            metrics.record_exception(&e);
            return Err(e);
        }
        tracing::info!(job = %config.name, checkpoint = record.checkpoint_id, "resuming from checkpoint");
        let path = match (&resume, &store) {
            (Resume::From(path), _) => Some(path.display().to_string()),
            (_, Some(store)) => {
                Some(store.dir().join(format!("chk-{}.json", record.checkpoint_id)).display().to_string())
            }
            _ => None,
        };
        metrics.checkpoint_restored(record.checkpoint_id, path);
    }
    let not_exact = |record: &CheckpointRecord| {
        let mut used = record.clone();
        for state in used.pipelines.iter_mut().flatten() {
            state.exact = false;
        }
        used
    };
    if let Some((record, _)) = restored.as_mut().filter(|(r, _)| r.pipelines.iter().flatten().any(|s| s.exact)) {
        match (&resume, &store, &as_stored) {
            // Exact for this start only: should it be killed, what it delivers after the record
            // is not covered by it, so the record must no longer say so.
            (Resume::Latest, Some(store), Some(stored)) => {
                store.write(&not_exact(stored))?;
            }
            // A record elsewhere cannot be marked used: it resumes as after a crash.
            _ => *record = not_exact(record),
        }
    }
    tracing::info!(job = %config.name, pipelines = job.pipelines.len(), "job started");
    let mut restarts = RestartTracker::new(config.restart.clone());
    let mut trust_sink_position = resume != Resume::Fresh;
    loop {
        metrics.set_state(JobState::Running);
        let result = attempt(job, restored.clone(), store.as_ref(), stop.clone(), metrics, trust_sink_position).await;
        trust_sink_position = true;
        if let Err(e) = &result {
            metrics.record_exception(e);
        }
        match result {
            Ok((reports, sources)) => {
                tracing::info!(job = %config.name, "job finished");
                // Not part of an attempt: the job is over, a restart could not help.
                release(&config.name, sources).await?;
                return Ok(reports);
            }
            Err(e) if e.kind() == ErrorKind::External => {
                let Some(wait) = restarts.on_failure(Instant::now()) else {
                    tracing::error!(job = %config.name, error = %e, "job failed; the restart strategy allows no more restarts");
                    return Err(e);
                };
                tracing::warn!(job = %config.name, error = %e, wait_ms = wait.as_millis() as u64, "job failed; restarting from the last checkpoint");
                metrics.record_restart();
                tokio::select! {
                    _ = stop.cancelled() => return Err(e),
                    _ = tokio::time::sleep(wait) => {}
                }
                if let Some(store) = &store {
                    restored = match store.latest()? {
                        Some(mut record) => {
                            resume::check(&mut record, &job.pipelines)?;
                            Some((record, store.dir().to_path_buf()))
                        }
                        None => None,
                    };
                }
            }
            Err(e) => {
                tracing::error!(job = %config.name, error = %e, "job failed");
                return Err(e);
            }
        }
    }
}

/// What pipelines tell the coordinator.
enum Report {
    /// The pipeline's sink prepared checkpoint `id`; its stateful operators' state comes along, by
    /// name, for the coordinator to store before the record.
    Prepared {
        index: usize,
        id: u64,
        state: PipelineState,
        operators: Vec<(String, OperatorSnapshot)>,
    },
    /// The pipeline needs a checkpoint now: a final one before it ends, or the one storing
    /// where its source started before it writes anything.
    WantsCheckpoint {
        index: usize,
    },
    Done {
        index: usize,
        report: PipelineReport,
        /// The pipeline's closed sources, to release once the whole job ended gracefully.
        sources: Vec<Box<dyn Source>>,
    },
    Failed {
        error: Error,
    },
}

struct InFlight {
    id: u64,
    waiting: Vec<usize>,
    pipelines: usize,
    started: Instant,
    trigger_ms: i64,
}

impl InFlight {
    fn stats(&self, status: metrics::CheckpointStatus) -> metrics::CheckpointStats {
        metrics::CheckpointStats {
            id: self.id,
            status,
            trigger_ms: self.trigger_ms,
            ack_ms: metrics::now_ms(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            size_bytes: 0,
            path: None,
            pipelines: self.pipelines,
            acknowledged: self.pipelines - self.waiting.len(),
            failure: None,
        }
    }
}

/// One run of the job's pipelines, coordinated checkpoint by checkpoint. When it ends well, the
/// pipelines' closed sources come back with the reports, to be released.
async fn attempt(
    job: &Job,
    restored: Option<(CheckpointRecord, std::path::PathBuf)>,
    store: Option<&CheckpointStore>,
    stop: CancellationToken,
    metrics: &Arc<JobMetrics>,
    trust_sink_position: bool,
) -> Result<(Vec<PipelineReport>, Vec<Box<dyn Source>>)> {
    // Opened for each run: a table whose writer failed (its server went away) starts afresh after
    // the restart, which processes again what its lost letters came from.
    let dead_letters = match &job.config.dead_letters {
        Some(target) => Some(dead_letters::Destination::open(target).await?),
        None => None,
    };
    let n = job.pipelines.len();
    let (restored, restored_from) = restored.unzip();
    let mut states: Vec<Option<PipelineState>> = match &restored {
        Some(r) => r.pipelines.clone(),
        None => vec![None; n],
    };
    // Without a record to continue from, ids start from the clock: transactional sinks name
    // their transactions after checkpoint ids (Doris labels), and a rerun that counted from 1
    // again would meet the finished transactions of the previous run and skip its own loads.
    // After the newest record in the store too: resuming an older record (--from-checkpoint)
    // must not write over the records, and the state files, of the ids after it.
    let newest = match store {
        Some(store) => store.newest_id()?,
        None => None,
    };
    let mut next_id = match (&restored, newest) {
        (None, _) => fresh_checkpoint_id(),
        (Some(r), newest) => r.checkpoint_id.max(newest.unwrap_or(0)) + 1,
    };
    let run_stop = stop.child_token();
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let (stored_tx, stored_rx) = watch::channel(next_id - 1);
    let mut triggers = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, spec) in job.pipelines.iter().enumerate() {
        let (trigger_tx, trigger_rx) = mpsc::unbounded_channel();
        triggers.push(trigger_tx);
        let pipeline_metrics = metrics.pipelines.get(index).cloned().unwrap_or_else(|| {
            Arc::new(metrics::PipelineMetrics::new(&spec.name, &spec.input_tables(), &spec.sink_table))
        });
        let ctx = pipeline::Context {
            job: job.config.name.clone(),
            stores_checkpoints: store.is_some(),
            trust_sink_position,
            index,
            spec: spec.clone(),
            restored: states[index].clone(),
            restored_from: restored_from.clone(),
            triggers: trigger_rx,
            reports: report_tx.clone(),
            stored: stored_rx.clone(),
            stop: run_stop.clone(),
            dead_letters: DeadLetters::new(dead_letters.clone(), &job.config.name, pipeline_metrics.clone()),
            metrics: pipeline_metrics,
        };
        tasks.spawn(pipeline::run(ctx));
    }
    drop(report_tx);
    // `exact` is for this start only: a later checkpoint that covers some pipelines writes the
    // others' states again, and those must not claim to be exact once rows went out after them.
    for state in states.iter_mut().flatten() {
        state.exact = false;
    }

    let mut ticker = job.config.checkpoint_interval.map(|d| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut active = vec![true; n];
    let mut wants_checkpoint = vec![false; n];
    let mut in_flight: Option<InFlight> = None;
    let mut done: Vec<(usize, PipelineReport)> = Vec::new();
    let mut ended_sources: Vec<Box<dyn Source>> = Vec::new();

    let outcome: Result<()> = async {
        while active.iter().any(|a| *a) {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tick, if in_flight.is_none() => {
                    let all: Vec<usize> = (0..n).filter(|i| active[*i]).collect();
                    in_flight = start_checkpoint(&mut next_id, all, &triggers, metrics);
                }
                report = reports.recv() => {
                    let Some(report) = report else {
                        return Err(Error::internal("every pipeline stopped without reporting"));
                    };
                    match report {
                        Report::Failed { error } => return Err(error),
                        Report::Done { index, report, sources } => {
                            active[index] = false;
                            done.push((index, report));
                            ended_sources.extend(sources);
                            if let Some(flight) = in_flight.as_mut() {
                                flight.waiting.retain(|i| *i != index);
                            }
                        }
                        Report::WantsCheckpoint { index } => {
                            wants_checkpoint[index] = true;
                        }
                        Report::Prepared { index, id, mut state, operators } => {
                            let Some(flight) = in_flight.as_mut().filter(|f| f.id == id) else {
                                return Err(Error::internal(format!("pipeline {index} prepared checkpoint {id}, which is not in flight")));
                            };
                            flight.waiting.retain(|i| *i != index);
                            // Whatever checkpoint a pipeline takes after asking for one is it (after
                            // asking to end, its last).
                            wants_checkpoint[index] = false;
                            let previous = states[index].take();
                            state.operators = store_operators(store, id, index, operators, previous.as_ref())?;
                            states[index] = Some(state);
                        }
                    }
                    if let Some(flight) = in_flight.take_if(|f| f.waiting.is_empty()) {
                        let record = CheckpointRecord::new(&job.config.name, flight.id, states.clone());
                        let mut stats = flight.stats(metrics::CheckpointStatus::Completed);
                        if let Some(store) = store {
                            match store.write(&record) {
                                Ok(path) => {
                                    stats.size_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                                    stats.path = Some(path.display().to_string());
                                }
                                Err(e) => {
                                    metrics.checkpoint_failed(metrics::CheckpointStats {
                                        failure: Some(crate::secrets::redact(&e.to_string())),
                                        ..flight.stats(metrics::CheckpointStatus::Failed)
                                    });
                                    return Err(e);
                                }
                            }
                        }
                        stats.duration_ms = flight.started.elapsed().as_millis() as u64;
                        tracing::debug!(checkpoint = flight.id, duration_ms = stats.duration_ms, "checkpoint stored");
                        metrics.checkpoint_completed(stats);
                        let _ = stored_tx.send(flight.id);
                    }
                }
            }
            if in_flight.is_none() {
                let wanting: Vec<usize> = (0..n).filter(|i| wants_checkpoint[*i] && active[*i]).collect();
                if !wanting.is_empty() {
                    in_flight = start_checkpoint(&mut next_id, wanting, &triggers, metrics);
                }
            }
        }
        Ok(())
    }
    .await;

    if let Err(e) = &outcome {
        if let Some(flight) = in_flight.take() {
            metrics.checkpoint_failed(metrics::CheckpointStats {
                failure: Some(crate::secrets::redact(&e.to_string())),
                ..flight.stats(metrics::CheckpointStatus::Failed)
            });
        }
        run_stop.cancel();
    }
    drop(triggers);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            return Err(Error::internal(format!("pipeline task failed: {e}")));
        }
    }
    outcome?;
    done.sort_by_key(|(i, _)| *i);
    Ok((done.into_iter().map(|(_, r)| r).collect(), ended_sources))
}

/// Lets the closed sources of a job that ended gracefully release what they kept for a restart
/// (a slot to drop on stop). Only now is every pipeline's final checkpoint committed: a pipeline
/// that ended early waits for the others, so a failing commit elsewhere still finds every slot
/// in place for the restart. Every source is tried; the first failure is returned.
async fn release(job: &str, sources: Vec<Box<dyn Source>>) -> Result<()> {
    let mut released = Ok(());
    for mut source in sources {
        if let Err(e) = source.release().await {
            tracing::error!(job = %job, error = %e, "releasing a source after the job stopped failed");
            if released.is_ok() {
                released = Err(e);
            }
        }
    }
    released
}

/// Where each operator's state of a prepared checkpoint is: a new file for a changed state, the
/// previous checkpoint's file for an unchanged one. Without a state directory nothing is stored.
fn store_operators(
    store: Option<&CheckpointStore>,
    id: u64,
    pipeline: usize,
    operators: Vec<(String, OperatorSnapshot)>,
    previous: Option<&PipelineState>,
) -> Result<Vec<checkpoint::OperatorFile>> {
    let Some(store) = store else { return Ok(Vec::new()) };
    let mut files = Vec::with_capacity(operators.len());
    for (operator, snapshot) in operators {
        let file = match snapshot {
            OperatorSnapshot::Changed(state) => store.write_state(id, pipeline, &operator, &state)?,
            OperatorSnapshot::Unchanged => previous
                .and_then(|p| p.operators.iter().find(|o| o.operator == operator))
                .map(|o| o.file.clone())
                .ok_or_else(|| {
                    Error::internal(format!("operator `{operator}` kept its state, but no checkpoint stored it before"))
                })?,
        };
        files.push(checkpoint::OperatorFile { operator, file });
    }
    Ok(files)
}

fn fresh_checkpoint_id() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1).max(1)
}

fn start_checkpoint(
    next_id: &mut u64,
    pipelines: Vec<usize>,
    triggers: &[mpsc::UnboundedSender<u64>],
    metrics: &JobMetrics,
) -> Option<InFlight> {
    if pipelines.is_empty() {
        return None;
    }
    metrics.checkpoint_triggered();
    let id = *next_id;
    *next_id += 1;
    for i in &pipelines {
        // A pipeline that already ended has reported Done; its report arrives next.
        let _ = triggers[*i].send(id);
    }
    let count = pipelines.len();
    Some(InFlight { id, waiting: pipelines, pipelines: count, started: Instant::now(), trigger_ms: metrics::now_ms() })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use datafusion::arrow::array::RecordBatch;

    use super::*;
    use crate::changelog::ChangeBatch;
    use crate::connectors::{PreparedCommit, SourceBatch};
    use crate::session::{Outcome, Session};

    #[derive(Default)]
    struct Calls {
        batches: AtomicUsize,
        closed: AtomicUsize,
        released: AtomicUsize,
    }

    /// A source of empty batches that counts what the runtime calls; unbounded unless it ends
    /// after `end_after` batches.
    struct Counted {
        schema: SchemaRef,
        calls: Arc<Calls>,
        end_after: Option<usize>,
    }

    #[async_trait]
    impl Source for Counted {
        fn schema(&self) -> SchemaRef {
            self.schema.clone()
        }

        fn is_bounded(&self) -> bool {
            self.end_after.is_some()
        }

        async fn start(&mut self, _: Option<crate::connectors::ResumeFrom>) -> Result<()> {
            Ok(())
        }

        async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.end_after.is_some_and(|end| self.calls.batches.load(Ordering::SeqCst) >= end) {
                return Ok(None);
            }
            let n = self.calls.batches.fetch_add(1, Ordering::SeqCst);
            let changes = ChangeBatch::inserts(RecordBatch::new_empty(self.schema.clone()));
            Ok(Some(SourceBatch::new(changes, serde_json::json!({ "n": n }))))
        }

        async fn close(&mut self) -> Result<()> {
            self.calls.closed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn release(&mut self) -> Result<()> {
            assert_eq!(self.calls.closed.load(Ordering::SeqCst), 1, "released after it was closed");
            self.calls.released.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A sink whose commits fail from the `fail_from`-th on.
    struct Committing {
        commits: usize,
        fail_from: usize,
    }

    #[async_trait]
    impl Sink for Committing {
        async fn write(&mut self, _: &crate::changelog::TableId, _: crate::changelog::ChangeBatch) -> Result<()> {
            Ok(())
        }

        async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
            Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
        }

        async fn commit(&mut self, _: PreparedCommit) -> Result<()> {
            self.commits += 1;
            if self.commits >= self.fail_from {
                return Err(Error::user("the sink refuses this commit"));
            }
            Ok(())
        }
    }

    /// A planned job with one INSERT per entry of `calls`, its sources and sinks replaced by
    /// counted ones (the sink of pipeline i fails its commits from the `sink_fails_from[i]`-th on).
    async fn job(calls: &[Arc<Calls>], sink_fails_from: &[usize]) -> Job {
        let mut session = Session::new();
        let mut script = String::from(
            "SET 'execution.checkpointing.interval' = '1h';
             CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen');
             CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
             EXECUTE STATEMENT SET BEGIN ",
        );
        script.push_str(&"INSERT INTO out SELECT id FROM src; ".repeat(calls.len()));
        script.push_str("END;");
        let mut planned = None;
        for statement in crate::sql::parse_script("test", &script, &|_| None).unwrap() {
            if let Outcome::Job(j) = session.execute(&statement).await.unwrap() {
                planned = Some(j);
            }
        }
        let mut job = planned.unwrap();
        job.config.state_dir = None;
        for ((pipeline, calls), fail_from) in job.pipelines.iter_mut().zip(calls).zip(sink_fails_from) {
            let Dataflow::Query { sink_schema: schema, .. } = pipeline.dataflow.clone() else { panic!("an INSERT") };
            let calls = calls.clone();
            pipeline.inputs[0].open_source = Arc::new(move || {
                Ok(Box::new(Counted { schema: schema.clone(), calls: calls.clone(), end_after: None })
                    as Box<dyn Source>)
            });
            let fail_from = *fail_from;
            pipeline.open_sink = Arc::new(move || Ok(Box::new(Committing { commits: 0, fail_from }) as Box<dyn Sink>));
        }
        job
    }

    async fn stop_after_batches(job: Job, calls: &[Arc<Calls>]) -> Result<Vec<PipelineReport>> {
        let stop = CancellationToken::new();
        let running = tokio::spawn(run(job, Resume::Fresh, stop.clone()));
        while calls.iter().any(|c| c.batches.load(Ordering::SeqCst) < 3) && !running.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        running.await.unwrap()
    }

    #[tokio::test]
    async fn sources_are_released_once_the_whole_job_stopped_gracefully() {
        let calls = [Arc::new(Calls::default()), Arc::new(Calls::default())];
        let reports = stop_after_batches(job(&calls, &[usize::MAX, usize::MAX]).await, &calls).await.unwrap();
        assert_eq!(reports.len(), 2);
        for c in &calls {
            assert_eq!((c.closed.load(Ordering::SeqCst), c.released.load(Ordering::SeqCst)), (1, 1));
        }
    }

    #[tokio::test]
    async fn no_source_is_released_when_any_final_commit_fails() {
        // The only checkpoint is the final one at the stop: the first pipeline commits it and
        // ends well, the second pipeline's sink fails its commit. The job failed, so the first
        // pipeline's source must keep what a restart needs too.
        let calls = [Arc::new(Calls::default()), Arc::new(Calls::default())];
        let result = stop_after_batches(job(&calls, &[usize::MAX, 1]).await, &calls).await;
        assert!(result.unwrap_err().to_string().contains("refuses this commit"));
        for c in &calls {
            assert_eq!(c.released.load(Ordering::SeqCst), 0, "released after a failure");
        }
        assert_eq!(calls[0].closed.load(Ordering::SeqCst), 1);
    }

    /// A resumed record's `exact` marks hold for that start only: a checkpoint taken later for
    /// one pipeline (here the final one of a bounded source) must not store the other
    /// pipeline's restored state as exact, since that pipeline delivered rows after it.
    #[tokio::test]
    async fn a_resumed_exact_mark_does_not_reach_later_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let calls = [Arc::new(Calls::default()), Arc::new(Calls::default())];
        let mut job = job(&calls, &[usize::MAX, usize::MAX]).await;
        job.config.state_dir = Some(dir.path().to_path_buf());
        job.config.retained_checkpoints = 10;
        let Dataflow::Query { sink_schema: schema, .. } = job.pipelines[0].dataflow.clone() else {
            panic!("an INSERT")
        };
        let ending = calls[0].clone();
        job.pipelines[0].inputs[0].open_source = Arc::new(move || {
            Ok(Box::new(Counted { schema: schema.clone(), calls: ending.clone(), end_after: Some(3) })
                as Box<dyn Source>)
        });
        let exact_state = |spec: &PipelineSpec| PipelineState {
            name: spec.name.clone(),
            sink: spec.sink.clone(),
            inputs: vec![InputState {
                table: spec.inputs[0].table.clone(),
                identity: Some(spec.inputs[0].identity.clone()),
                position: Some(serde_json::json!({ "n": 0 })),
                finished: false,
            }],
            prepared_checkpoint: Some(1),
            prepared: serde_json::Value::Null,
            finished: false,
            exact: true,
            operators: Vec::new(),
            captured: None,
        };
        let store = CheckpointStore::open(dir.path().to_path_buf(), 10).unwrap();
        let states = job.pipelines.iter().map(|p| Some(exact_state(p))).collect();
        store.write(&CheckpointRecord::new(&job.config.name, 1, states)).unwrap();

        let stop = CancellationToken::new();
        let running = tokio::spawn(run(job, Resume::Latest, stop.clone()));
        let second = dir.path().join("chk-2.json");
        while !second.exists() && !running.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        running.await.unwrap().unwrap();
        let record = CheckpointStore::load(&second).unwrap();
        let (ended, other) = (record.pipelines[0].as_ref().unwrap(), record.pipelines[1].as_ref().unwrap());
        assert!(ended.finished, "checkpoint 2 is the bounded pipeline's final one");
        assert!(!other.exact, "the other pipeline's restored state was stored as exact: {other:?}");
    }

    fn stored(spec: &PipelineSpec, identity: SourceIdentity, finished: bool) -> PipelineState {
        PipelineState {
            name: spec.name.clone(),
            sink: spec.sink.clone(),
            inputs: vec![InputState {
                table: spec.inputs[0].table.clone(),
                identity: Some(identity),
                position: Some(serde_json::json!({ "n": 5 })),
                finished,
            }],
            prepared_checkpoint: Some(1),
            prepared: serde_json::Value::Null,
            finished,
            exact: true,
            operators: Vec::new(),
            captured: None,
        }
    }

    fn with_mode(identity: &SourceIdentity, mode: &str) -> SourceIdentity {
        SourceIdentity { startup_mode: mode.into(), ..identity.clone() }
    }

    /// The backfill-then-CDC workflow: the same job file run with 'scan.startup.mode' =
    /// 'snapshot', then in a streaming mode, continues the finished snapshot instead of finding the
    /// pipeline finished and reading nothing.
    #[tokio::test]
    async fn a_finished_snapshot_is_continued_by_a_streaming_run_of_the_same_source() {
        let calls = [Arc::new(Calls::default())];
        let mut job = job(&calls, &[usize::MAX]).await;
        let streaming = with_mode(&job.pipelines[0].inputs[0].identity, "initial");
        job.pipelines[0].inputs[0].identity = streaming.clone();
        let mut record = CheckpointRecord::new(
            "j",
            1,
            vec![Some(stored(&job.pipelines[0], with_mode(&streaming, "snapshot"), true))],
        );
        resume::check(&mut record, &job.pipelines).unwrap();
        let state = record.pipelines[0].as_ref().unwrap();
        assert!(!state.finished && !state.inputs[0].finished, "{state:?}");
        assert_eq!(state.inputs[0].position, Some(serde_json::json!({ "n": 5 })), "it goes on from there");
    }

    /// Any other change to what a source's positions mean is refused, naming what changed.
    #[tokio::test]
    async fn a_checkpoint_of_another_source_identity_is_refused_naming_the_change() {
        let calls = [Arc::new(Calls::default())];
        let job = job(&calls, &[usize::MAX]).await;
        let now = job.pipelines[0].inputs[0].identity.clone();
        let cases = [
            (SourceIdentity { location: "db1:3306/shop".into(), ..now.clone() }, "with location 'db1:3306/shop'"),
            (with_mode(&now, "latest-offset"), "with startup mode 'latest-offset'"),
            // Streaming to a snapshot is no continuation: the snapshot would be skipped.
            (with_mode(&now, "initial"), "with startup mode 'initial'"),
        ];
        for (was, said) in cases {
            let mut current = job.pipelines.clone();
            if was.startup_mode == "initial" {
                current[0].inputs[0].identity = with_mode(&now, SourceIdentity::SNAPSHOT);
            }
            let mut record = CheckpointRecord::new("j", 3, vec![Some(stored(&current[0], was, false))]);
            let err = resume::check(&mut record, &current).unwrap_err().to_string();
            assert!(err.contains(said) && err.contains("--fresh") && err.contains("--from-checkpoint"), "{err}");
        }
        // A record of format version 1 did not store identities: matched by tables.
        let mut state = stored(&job.pipelines[0], now, false);
        state.inputs[0].identity = None;
        resume::check(&mut CheckpointRecord::new("j", 3, vec![Some(state)]), &job.pipelines).unwrap();
    }

    #[tokio::test]
    async fn two_inserts_into_one_sink_are_two_pipelines_by_name() {
        let calls = [Arc::new(Calls::default()), Arc::new(Calls::default())];
        let job = job(&calls, &[usize::MAX, usize::MAX]).await;
        let names: Vec<&str> = job.pipelines.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["INSERT INTO out", "INSERT INTO out (2)"]);
        // A record whose pipelines came in the other order does not fit.
        let states = job.pipelines.iter().rev().map(|p| Some(stored(p, p.inputs[0].identity.clone(), false))).collect();
        let err = resume::check(&mut CheckpointRecord::new("j", 3, states), &job.pipelines).unwrap_err().to_string();
        assert!(err.contains("pipeline 1 was `INSERT INTO out (2)` and is now `INSERT INTO out`"), "{err}");
    }

    /// Resuming an older record of the store (--from-checkpoint) continues with ids after the
    /// newest one: the records after it, and the state files they name, are not written over.
    #[tokio::test]
    async fn resuming_an_older_record_never_reuses_the_ids_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let calls = [Arc::new(Calls::default())];
        let mut job = job(&calls, &[usize::MAX]).await;
        job.config.state_dir = Some(dir.path().to_path_buf());
        job.config.retained_checkpoints = 10;
        let store = CheckpointStore::open(dir.path().to_path_buf(), 10).unwrap();
        let spec = &job.pipelines[0];
        for id in 1..=3 {
            store
                .write(&CheckpointRecord::new(
                    &job.config.name,
                    id,
                    vec![Some(stored(spec, spec.inputs[0].identity.clone(), false))],
                ))
                .unwrap();
        }
        let second = std::fs::read(dir.path().join("chk-2.json")).unwrap();
        let from = dir.path().join("chk-1.json");
        let stop = CancellationToken::new();
        let running = tokio::spawn(run(job, Resume::From(from), stop.clone()));
        while calls[0].batches.load(Ordering::SeqCst) < 3 && !running.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        running.await.unwrap().unwrap();
        assert!(dir.path().join("chk-4.json").exists(), "the final checkpoint follows the newest record");
        assert_eq!(std::fs::read(dir.path().join("chk-2.json")).unwrap(), second, "record 2 was written over");
    }
}
