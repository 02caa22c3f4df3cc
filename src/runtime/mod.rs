//! Runs jobs: one pipeline per INSERT (source → compiled query → sink), all pipelines of a job
//! side by side. Each pipeline reads its source in a task of its own (so reading overlaps
//! writing) and runs the checkpoint cycle of DESIGN.md §3 every
//! `execution.checkpointing.interval` and once more at the end: the sink prepares, then commits,
//! then the source learns that the position is safe. A bounded job ends when its sources end; an
//! unbounded one when it is stopped (Ctrl-C, SIGTERM) or fails.
//!
//! Not yet here: persisting checkpoint records and resuming from them, restart strategies.

use std::time::Duration;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::changelog::{format_rows, ChangeBatch};
use crate::connectors::{Position, Sink, Source, SourceBatch};
use crate::error::{Error, Result};
use crate::plan::CompiledQuery;

/// Source → query → sink.
pub struct Pipeline {
    /// Shown in logs, e.g. `INSERT INTO orders_sink`.
    pub name: String,
    pub source: Box<dyn Source>,
    pub query: CompiledQuery,
    pub sink: Box<dyn Sink>,
    /// Name of the sink table, for messages.
    pub sink_table: String,
    /// The sink's columns: batches are handed over with exactly this schema.
    pub sink_schema: SchemaRef,
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub name: String,
    pub checkpoint_interval: Option<Duration>,
}

pub struct Job {
    pub config: JobConfig,
    pub pipelines: Vec<Pipeline>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    pub name: String,
    pub rows_read: u64,
    pub rows_written: u64,
    pub checkpoints: u64,
}

/// Runs every pipeline of `job` until all are done, `stop` is cancelled, or one fails (which
/// stops the others).
pub async fn run(job: Job, stop: CancellationToken) -> Result<Vec<PipelineReport>> {
    let job_stop = stop.child_token();
    tracing::info!(job = %job.config.name, pipelines = job.pipelines.len(), "job started");
    let mut tasks = tokio::task::JoinSet::new();
    for (index, pipeline) in job.pipelines.into_iter().enumerate() {
        let config = job.config.clone();
        let stop = job_stop.clone();
        tasks.spawn(async move { (index, run_pipeline(pipeline, config, stop).await) });
    }
    let mut reports = Vec::new();
    let mut failure: Option<Error> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(report))) => reports.push((index, report)),
            Ok((_, Err(e))) => {
                job_stop.cancel();
                failure.get_or_insert(e);
            }
            Err(join_error) => {
                job_stop.cancel();
                failure.get_or_insert(Error::internal(format!("pipeline task failed: {join_error}")));
            }
        }
    }
    if let Some(e) = failure {
        tracing::error!(job = %job.config.name, error = %e, "job failed");
        return Err(e);
    }
    reports.sort_by_key(|(i, _)| *i);
    tracing::info!(job = %job.config.name, "job finished");
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

enum Ack {
    Position(Position),
}

/// Owns the source: forwards its batches, applies acknowledgements between reads.
async fn read_source(
    mut source: Box<dyn Source>,
    batches: mpsc::Sender<Result<Option<SourceBatch>>>,
    mut acks: mpsc::UnboundedReceiver<Ack>,
    stop: CancellationToken,
) -> Result<()> {
    loop {
        while let Ok(Ack::Position(p)) = acks.try_recv() {
            source.acknowledge(&p).await?;
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = source.next_batch() => next,
        };
        let last = !matches!(next, Ok(Some(_)));
        if batches.send(next).await.is_err() || last {
            break;
        }
    }
    // The pipeline's final checkpoint may acknowledge after reading stopped.
    while let Some(Ack::Position(p)) = acks.recv().await {
        source.acknowledge(&p).await?;
    }
    source.close().await
}

struct Progress {
    checkpoint_id: u64,
    last_position: Option<Position>,
    acked: Option<Position>,
    report: PipelineReport,
}

async fn checkpoint(
    job: &str,
    sink: &mut dyn Sink,
    acks: &mpsc::UnboundedSender<Ack>,
    progress: &mut Progress,
) -> Result<()> {
    progress.checkpoint_id += 1;
    if let Some(position) = &progress.last_position {
        sink.stage_position(job, &progress.report.name, position);
    }
    let prepared = sink.prepare(progress.checkpoint_id).await?;
    sink.commit(prepared).await?;
    progress.report.checkpoints += 1;
    if progress.last_position != progress.acked {
        if let Some(position) = &progress.last_position {
            // The reader is gone only when the pipeline is ending anyway.
            let _ = acks.send(Ack::Position(position.clone()));
            progress.acked = Some(position.clone());
        }
    }
    tracing::debug!(checkpoint = progress.checkpoint_id, "checkpoint completed");
    Ok(())
}

async fn run_pipeline(pipeline: Pipeline, config: JobConfig, stop: CancellationToken) -> Result<PipelineReport> {
    let name = pipeline.name.clone();
    let result = drive(pipeline, &config, stop).await;
    match &result {
        Ok(r) => {
            tracing::info!(pipeline = %name, rows_read = r.rows_read, rows_written = r.rows_written, "pipeline finished")
        }
        Err(e) => tracing::error!(pipeline = %name, error = %e, "pipeline failed"),
    }
    result.map_err(|e| e.context(&name))
}

async fn drive(pipeline: Pipeline, config: &JobConfig, stop: CancellationToken) -> Result<PipelineReport> {
    let Pipeline { name, mut source, query, mut sink, sink_table, sink_schema } = pipeline;
    let sink = sink.as_mut();
    sink.open().await?;
    sink.recover(Vec::new()).await?;
    source.start(None).await?;
    let (batch_tx, mut batch_rx) = mpsc::channel(4);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let reader_stop = CancellationToken::new();
    let reader = tokio::spawn(read_source(source, batch_tx, ack_rx, reader_stop.clone()));

    let mut progress = Progress {
        checkpoint_id: 0,
        last_position: None,
        acked: None,
        report: PipelineReport { name, rows_read: 0, rows_written: 0, checkpoints: 0 },
    };
    let mut ticker = config.checkpoint_interval.map(|d| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut remaining = query.limit;

    let outcome: Result<()> = async {
        loop {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                _ = tick => checkpoint(&config.name, sink, &ack_tx, &mut progress).await?,
                next = batch_rx.recv() => {
                    let Some(next) = next else { return Ok(()) };
                    let Some(batch) = next? else { return Ok(()) };
                    progress.report.rows_read += batch.changes.num_rows() as u64;
                    let mut out = query.apply(&batch.changes)?;
                    if let Some(left) = remaining.as_mut() {
                        out = out.head(*left);
                        *left = left.saturating_sub(out.num_rows());
                    }
                    progress.last_position = Some(batch.position);
                    if !out.is_empty() {
                        let out = conform(out, &sink_schema, &sink_table)?;
                        progress.report.rows_written += out.num_rows() as u64;
                        sink.write(out).await?;
                    }
                    if remaining == Some(0) {
                        return Ok(());
                    }
                }
            }
        }
    }
    .await;

    let finished = match outcome {
        Ok(()) => checkpoint(&config.name, sink, &ack_tx, &mut progress).await.and(Ok(())),
        Err(e) => Err(e),
    };
    reader_stop.cancel();
    drop(ack_tx);
    drop(batch_rx);
    let closed = sink.close().await;
    let read = match reader.await {
        Ok(r) => r,
        Err(e) => Err(Error::internal(format!("source task failed: {e}"))),
    };
    finished?;
    closed?;
    read?;
    Ok(progress.report)
}

/// Gives the batch the sink's schema, refusing NULLs in NOT NULL columns with the offending row.
fn conform(batch: ChangeBatch, schema: &SchemaRef, sink_table: &str) -> Result<ChangeBatch> {
    for (field, column) in schema.fields().iter().zip(batch.rows().columns()) {
        if !field.is_nullable() && column.null_count() > 0 {
            let row = (0..column.len()).find(|i| column.is_null(*i)).unwrap_or(0);
            let shown = format_rows(&batch.head(row + 1).take(&[row as u32], vec![batch.kind(row).code()])?, "")?;
            return Err(Error::user(format!(
                "column `{}` of sink `{sink_table}` is NOT NULL but the query produced NULL for it, in {}",
                field.name(),
                shown.trim_end()
            )));
        }
    }
    let rows = RecordBatch::try_new(schema.clone(), batch.rows().columns().to_vec())?;
    batch.with_rows(rows)
}
