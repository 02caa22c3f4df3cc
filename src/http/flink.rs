//! JSON bodies in the shapes of Flink's REST API (`JobDetailsInfo`, `MultipleJobsDetails`,
//! `CheckpointingStatistics`, `JobExceptionsInfoWithHistory`, `ClusterOverviewWithVersion`), so
//! scripts written against a Flink JobManager read a cdc-sql job unchanged. A cdc-sql process runs
//! one job with one task per pipeline (INSERT), at parallelism 1.

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use crate::runtime::metrics::{CheckpointStats, CheckpointStatus, JobMetrics, JobState, PipelineMetrics};

/// Every Flink `JobStatus`, for the `timestamps` map of a job.
const FLINK_JOB_STATES: &[&str] = &[
    "INITIALIZING",
    "CREATED",
    "RUNNING",
    "FAILING",
    "FAILED",
    "CANCELLING",
    "CANCELED",
    "FINISHED",
    "RESTARTING",
    "SUSPENDED",
    "RECONCILING",
];

/// Every Flink `ExecutionState`, for task counts.
const EXECUTION_STATES: &[&str] = &[
    "CREATED",
    "SCHEDULED",
    "DEPLOYING",
    "RUNNING",
    "FINISHED",
    "CANCELING",
    "CANCELED",
    "FAILED",
    "RECONCILING",
    "INITIALIZING",
];

pub const VERSION: &str = concat!("cdc-sql ", env!("CARGO_PKG_VERSION"));

/// The execution state of a pipeline's task.
fn task_state(job: &JobMetrics, pipeline: &PipelineMetrics) -> &'static str {
    if pipeline.finished.load(Ordering::Relaxed) {
        return "FINISHED";
    }
    match job.state() {
        JobState::Initializing => "INITIALIZING",
        JobState::Running => "RUNNING",
        JobState::Restarting => "CANCELED",
        JobState::Finished => "FINISHED",
        JobState::Failed => "FAILED",
        JobState::Canceled => "CANCELED",
    }
}

fn task_counts(job: &JobMetrics, upper_case: bool) -> Value {
    let mut counts = Map::new();
    for state in EXECUTION_STATES {
        let key = if upper_case { state.to_string() } else { state.to_ascii_lowercase() };
        counts.insert(key, json!(0));
    }
    for p in &job.pipelines {
        let state = task_state(job, p);
        let key = if upper_case { state.to_string() } else { state.to_ascii_lowercase() };
        let n = counts.get(&key).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(key, json!(n + 1));
    }
    if !upper_case {
        counts.insert("total".into(), json!(job.pipelines.len()));
    }
    Value::Object(counts)
}

/// `GET /jobs/overview` entry (`JobDetails`).
fn job_details(job: &JobMetrics) -> Value {
    json!({
        "jid": job.job_id,
        "name": job.name,
        "state": job.state().as_str(),
        "start-time": job.start_ms(),
        "end-time": job.end_ms(),
        "duration": job.duration_ms(),
        "last-modification": job.last_modification_ms(),
        "tasks": task_counts(job, false),
        "pending-operators": 0,
    })
}

pub fn jobs_overview(job: &JobMetrics) -> Value {
    json!({ "jobs": [job_details(job)] })
}

/// `GET /jobs`.
pub fn jobs(job: &JobMetrics) -> Value {
    json!({ "jobs": [{ "id": job.job_id, "status": job.state().as_str() }] })
}

/// `GET /overview`: the "cluster" is this process.
pub fn overview(job: &JobMetrics) -> Value {
    let state = job.state();
    let count = |s: JobState| u64::from(state == s);
    json!({
        "taskmanagers": 1,
        "slots-total": job.pipelines.len(),
        "slots-available": 0,
        "jobs-running": u64::from(matches!(state, JobState::Running | JobState::Restarting | JobState::Initializing)),
        "jobs-finished": count(JobState::Finished),
        "jobs-cancelled": count(JobState::Canceled),
        "jobs-failed": count(JobState::Failed),
        "flink-version": VERSION,
        "flink-commit": "",
    })
}

/// The id of a pipeline's vertex: 32 hex digits, stable for the job.
pub fn vertex_id(job: &JobMetrics, index: usize) -> String {
    format!("{}{:08x}", &job.job_id[..24.min(job.job_id.len())], index)
}

/// `GET /jobs/{id}` (`JobDetailsInfo`).
pub fn job(job: &JobMetrics) -> Value {
    let now = crate::runtime::metrics::now_ms();
    let mut timestamps = Map::new();
    for name in FLINK_JOB_STATES {
        let at = JobState::ALL.iter().find(|s| s.as_str() == *name).and_then(|s| job.state_timestamp(*s));
        timestamps.insert(name.to_string(), json!(at.unwrap_or(0)));
    }
    let vertices: Vec<Value> = job
        .pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let state = task_state(job, p);
            let mut tasks = Map::new();
            for s in EXECUTION_STATES {
                tasks.insert(s.to_string(), json!(u64::from(*s == state)));
            }
            let end = if matches!(state, "FINISHED" | "FAILED" | "CANCELED") { job.end_ms().max(0) } else { -1 };
            let mut vertex = json!({
                "id": vertex_id(job, i),
                "name": p.name,
                "maxParallelism": 1,
                "parallelism": 1,
                "status": state,
                "start-time": job.start_ms(),
                "end-time": end,
                "duration": (if end < 0 { now } else { end }) - job.start_ms(),
                "tasks": tasks,
                "metrics": {
                    "read-bytes": p.bytes_read.load(Ordering::Relaxed),
                    "read-bytes-complete": true,
                    "write-bytes": p.bytes_written.load(Ordering::Relaxed),
                    "write-bytes-complete": true,
                    "read-records": p.records_read.load(Ordering::Relaxed),
                    "read-records-complete": true,
                    "write-records": p.records_written.load(Ordering::Relaxed),
                    "write-records-complete": true,
                    // Not in Flink's schema: rows set aside (see docs/operations.md, *Dead letters*).
                    "dead-letters": p.dead_letters.load(Ordering::Relaxed),
                },
            });
            // Not in Flink's schema (extra fields do not disturb its clients): what the job's
            // sources hold on their servers and whether it outlives the job.
            let slots: Vec<Value> = p
                .slots()
                .iter()
                .map(|slot| json!({ "name": slot.name, "server": slot.server, "drop-on-stop": slot.drop_on_stop }))
                .collect();
            if let Some(fields) = vertex.as_object_mut() {
                match <[Value; 1]>::try_from(slots) {
                    Ok([one]) => {
                        fields.insert("replication-slot".into(), one);
                    }
                    Err(slots) if !slots.is_empty() => {
                        fields.insert("replication-slots".into(), Value::Array(slots));
                    }
                    Err(_) => {}
                }
            }
            vertex
        })
        .collect();
    let nodes: Vec<Value> = job
        .pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "id": vertex_id(job, i),
                "parallelism": 1,
                "operator": "",
                "operator_strategy": "",
                "description": format!("{} (from {})", p.name, p.source_table),
                "optimizer_properties": {},
            })
        })
        .collect();
    json!({
        "jid": job.job_id,
        "name": job.name,
        "isStoppable": true,
        "state": job.state().as_str(),
        "job-type": "STREAMING",
        "start-time": job.start_ms(),
        "end-time": job.end_ms(),
        "duration": job.duration_ms(),
        "maxParallelism": -1,
        "now": now,
        "timestamps": timestamps,
        "vertices": vertices,
        "status-counts": task_counts(job, true),
        "plan": { "jid": job.job_id, "name": job.name, "type": "STREAMING", "nodes": nodes },
    })
}

fn checkpoint(stats: &CheckpointStats) -> Value {
    let class = match stats.status {
        CheckpointStatus::Completed => "completed",
        CheckpointStatus::Failed => "failed",
        CheckpointStatus::InProgress => "in_progress",
    };
    let mut v = json!({
        "className": class,
        "id": stats.id,
        "status": stats.status.as_str(),
        "is_savepoint": false,
        "savepointFormat": null,
        "trigger_timestamp": stats.trigger_ms,
        "latest_ack_timestamp": stats.ack_ms,
        "checkpointed_size": stats.size_bytes,
        "state_size": stats.size_bytes,
        "end_to_end_duration": stats.duration_ms,
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": 0,
        "num_subtasks": stats.pipelines,
        "num_acknowledged_subtasks": stats.acknowledged,
        "checkpoint_type": "CHECKPOINT",
        "tasks": {},
    });
    if let Some(obj) = v.as_object_mut() {
        match stats.status {
            CheckpointStatus::Completed => {
                obj.insert("external_path".into(), json!(stats.path.clone().unwrap_or_else(|| "<not stored>".into())));
                obj.insert("discarded".into(), json!(false));
            }
            CheckpointStatus::Failed => {
                obj.insert("failure_timestamp".into(), json!(stats.ack_ms));
                obj.insert("failure_message".into(), json!(stats.failure));
            }
            CheckpointStatus::InProgress => {}
        }
    }
    v
}

/// Flink's `StatsSummaryDto` over some values.
fn summary(mut values: Vec<u64>) -> Value {
    if values.is_empty() {
        return json!({ "min": 0, "max": 0, "avg": 0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "p999": 0.0 });
    }
    values.sort_unstable();
    let n = values.len();
    let quantile = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1] as f64;
    json!({
        "min": values[0],
        "max": values[n - 1],
        "avg": values.iter().sum::<u64>() / n as u64,
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "p999": quantile(0.999),
    })
}

/// `GET /jobs/{id}/checkpoints` (`CheckpointingStatistics`).
pub fn checkpoints(job: &JobMetrics) -> Value {
    let s = job.checkpoints();
    let completed: Vec<&CheckpointStats> =
        s.history.iter().filter(|c| c.status == CheckpointStatus::Completed).collect();
    let sizes: Vec<u64> = completed.iter().map(|c| c.size_bytes).collect();
    let zeros = vec![0; completed.len()];
    json!({
        "counts": {
            "restored": s.restored,
            "total": s.completed + s.failed + s.in_progress,
            "in_progress": s.in_progress,
            "completed": s.completed,
            "failed": s.failed,
        },
        "summary": {
            "checkpointed_size": summary(sizes.clone()),
            "state_size": summary(sizes),
            "end_to_end_duration": summary(completed.iter().map(|c| c.duration_ms).collect()),
            "alignment_buffered": summary(zeros.clone()),
            "processed_data": summary(zeros.clone()),
            "persisted_data": summary(zeros),
        },
        "latest": {
            "completed": s.latest_completed.as_ref().map(checkpoint),
            "savepoint": null,
            "failed": s.latest_failed.as_ref().map(checkpoint),
            "restored": s.restored_from.as_ref().map(|r| json!({
                "id": r.id,
                "restore_timestamp": r.restore_ms,
                "is_savepoint": false,
                "external_path": r.path,
            })),
        },
        "history": s.history.iter().map(checkpoint).collect::<Vec<_>>(),
    })
}

/// `GET /jobs/{id}/exceptions` (`JobExceptionsInfoWithHistory`, with the legacy root fields that
/// older scripts read).
pub fn exceptions(job: &JobMetrics) -> Value {
    let entries = job.exceptions();
    let history: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "exceptionName": format!("cdc-sql {} error", e.kind),
                "stacktrace": e.message,
                "timestamp": e.time_ms,
                "taskName": null,
                "location": null,
                "endpoint": null,
                "taskManagerId": null,
                "failureLabels": { "kind": e.kind },
                "concurrentExceptions": [],
            })
        })
        .collect();
    let root = entries.first();
    json!({
        "root-exception": root.map(|e| e.message.clone()),
        "timestamp": root.map(|e| e.time_ms),
        "all-exceptions": [],
        "truncated": false,
        "exceptionHistory": { "entries": history, "truncated": false },
    })
}

/// Flink's error body.
pub fn error(message: &str) -> Value {
    json!({ "errors": [message] })
}
