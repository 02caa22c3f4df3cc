//! One pipeline: its source read in a task of its own (so reading overlaps writing), every batch
//! run through the compiled query into the sink, checkpoints taken when the coordinator asks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::captured::CapturedRows;
use super::metrics::{now_ms, PipelineMetrics};
use super::{PipelineReport, PipelineSpec, PipelineState, Report};
use crate::changelog::{format_rows, ChangeBatch};
use crate::connectors::{Position, PreparedCommit, ResumeFrom, Sink, Source, SourceBatch};
use crate::error::{Error, Result};

pub(super) struct Context {
    /// The job's name, under which exactly-once sinks store positions with their data.
    pub job: String,
    /// Checkpoint records are stored (a state directory and an interval are set).
    pub stores_checkpoints: bool,
    /// Whether a position a sink stored with its data may override the checkpoint's (not after
    /// `--fresh`, which asks to start over).
    pub trust_sink_position: bool,
    pub index: usize,
    pub spec: PipelineSpec,
    pub restored: Option<PipelineState>,
    pub triggers: mpsc::UnboundedReceiver<u64>,
    pub reports: mpsc::UnboundedSender<Report>,
    pub stored: watch::Receiver<u64>,
    pub stop: CancellationToken,
    pub metrics: Arc<PipelineMetrics>,
}

/// A batch read, with the event time of its newest change when the source knows it.
type Read = (Result<Option<SourceBatch>>, Option<i64>);

pub(super) async fn run(ctx: Context) {
    let index = ctx.index;
    let reports = ctx.reports.clone();
    let name = ctx.spec.name.clone();
    let metrics = ctx.metrics.clone();
    match drive(ctx).await {
        Ok((report, source)) => {
            tracing::info!(pipeline = %name, rows_read = report.rows_read, rows_written = report.rows_written, "pipeline finished");
            metrics.finished.store(true, Ordering::Relaxed);
            let _ = reports.send(Report::Done { index, report, source });
        }
        Err(e) => {
            metrics.errors.fetch_add(1, Ordering::Relaxed);
            let _ = reports.send(Report::Failed { error: e.context(&name) });
        }
    }
}

/// Owns the source: forwards its batches, applies acknowledgements between reads, and hands the
/// closed source back.
async fn read_source(
    mut source: Box<dyn Source>,
    batches: mpsc::Sender<Read>,
    mut acks: mpsc::UnboundedReceiver<Position>,
    stop: CancellationToken,
    metrics: Arc<PipelineMetrics>,
) -> Result<Box<dyn Source>> {
    loop {
        while let Ok(p) = acks.try_recv() {
            source.acknowledge(&p).await?;
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = source.next_batch() => next,
        };
        let last = !matches!(next, Ok(Some(_)));
        let progress = source.progress();
        let event_time = progress.as_ref().and_then(|p| p.event_time_ms);
        metrics.set_progress(progress);
        if batches.send((next, event_time)).await.is_err() || last {
            break;
        }
    }
    // The pipeline's final checkpoint may acknowledge after reading stopped.
    while let Some(p) = acks.recv().await {
        source.acknowledge(&p).await?;
    }
    source.close().await?;
    Ok(source)
}

struct Progress {
    report: PipelineReport,
    position: Option<Position>,
    acked: Option<Position>,
    /// Set once the pipeline asked for its final checkpoint: `true` when its source is done.
    ending: Option<bool>,
    /// The rows kept for a source that turns truncations into deletes, as of `position`.
    captured: Option<CapturedRows>,
}

/// Runs the pipeline to its end; with its report comes its closed source (`None` when the source
/// was not opened because the pipeline had finished in an earlier run).
async fn drive(mut ctx: Context) -> Result<(PipelineReport, Option<Box<dyn Source>>)> {
    let spec = ctx.spec.clone();
    let mut progress = Progress {
        report: PipelineReport { name: spec.name.clone(), rows_read: 0, rows_written: 0, checkpoints: 0 },
        position: ctx.restored.as_ref().and_then(|s| s.position.clone()),
        acked: None,
        ending: None,
        captured: None,
    };
    if ctx.restored.as_ref().is_some_and(|s| s.finished) {
        tracing::info!(pipeline = %spec.name, "already finished before the checkpoint it resumes from");
        return Ok((progress.report, None));
    }

    let mut sink = (spec.open_sink)()?;
    sink.open().await?;
    let pending: Vec<PreparedCommit> = ctx
        .restored
        .as_ref()
        .and_then(|s| s.prepared_checkpoint.map(|id| PreparedCommit { checkpoint_id: id, state: s.prepared.clone() }))
        .into_iter()
        .collect();
    sink.recover(pending).await?;
    let mut exact = ctx.restored.as_ref().is_some_and(|s| s.exact);
    let mut source = (spec.open_source)()?;
    progress.captured = captured_rows(&ctx, source.as_ref())?;
    // The captured rows are those of the checkpoint's position: a newer position the sink
    // stored would skip changes they lack. Repeating changes a keyed sink already took is
    // harmless, and a source that deletes on truncation only feeds keyed sinks.
    if ctx.trust_sink_position && progress.captured.is_none() {
        // Committed together with the data, so at least as new as the checkpoint record, which
        // is written after the sink prepared.
        if let Some(position) = sink.stored_position(&ctx.job, &spec.name).await? {
            exact &= progress.position.as_ref() == Some(&position);
            progress.position = Some(position);
        }
    }
    source.start(progress.position.clone().map(|position| ResumeFrom { position, exact })).await?;
    // Without a stored position, a kill would make the next run start over (a new snapshot, a
    // new seed) rather than deliver again what this one delivered: rows it delivered and that
    // are gone by then would stay in the sink. So where the source started is checkpointed
    // before anything is written.
    let mut awaiting_start_checkpoint = false;
    if progress.position.is_none() {
        progress.position = source.start_position();
        awaiting_start_checkpoint = ctx.stores_checkpoints && progress.position.is_some();
    }

    let (batch_tx, mut batch_rx) = mpsc::channel(4);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let reader_stop = CancellationToken::new();
    let reader = tokio::spawn(read_source(source, batch_tx, ack_rx, reader_stop.clone(), ctx.metrics.clone()));
    let mut remaining = spec.query.limit;
    if awaiting_start_checkpoint {
        let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
    }

    let outcome: Result<()> = async {
        loop {
            tokio::select! {
                biased;
                id = ctx.triggers.recv() => {
                    let Some(id) = id else {
                        return Err(Error::internal("the checkpoint coordinator stopped"));
                    };
                    checkpoint(id, &mut ctx, &spec, sink.as_mut(), &ack_tx, &mut progress).await?;
                    awaiting_start_checkpoint = false;
                    if progress.ending.is_some() {
                        return Ok(());
                    }
                }
                _ = ctx.stop.cancelled(), if progress.ending.is_none() => {
                    progress.ending = Some(false);
                    let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
                }
                next = batch_rx.recv(), if progress.ending.is_none() && !awaiting_start_checkpoint => {
                    let (next, event_time) = match next {
                        Some((next, event_time)) => (Some(next), event_time),
                        None => (None, None),
                    };
                    let batch = match next {
                        Some(Ok(Some(batch))) => batch,
                        Some(Err(e)) => return Err(e),
                        None | Some(Ok(None)) => {
                            progress.ending = Some(true);
                            let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
                            continue;
                        }
                    };
                    let changes = match (progress.captured.as_mut(), batch.origins) {
                        (Some(captured), Some(origins)) => captured.track(batch.changes, &origins)?,
                        (Some(_), None) if batch.changes.is_empty() => batch.changes,
                        (Some(_), None) => {
                            return Err(Error::internal("a source that keeps its captured rows sent a batch without their origins"));
                        }
                        (None, _) => batch.changes,
                    };
                    let read = changes.num_rows() as u64;
                    progress.report.rows_read += read;
                    let metrics = &ctx.metrics;
                    metrics.batches.fetch_add(1, Ordering::Relaxed);
                    metrics.records_read.fetch_add(read, Ordering::Relaxed);
                    if read > 0 {
                        metrics.bytes_read.fetch_add(changes.rows().get_array_memory_size() as u64, Ordering::Relaxed);
                    }
                    let mut out = spec.query.apply(&changes)?;
                    if let Some(left) = remaining.as_mut() {
                        out = out.head(*left);
                        *left = left.saturating_sub(out.num_rows());
                    }
                    progress.position = Some(batch.position);
                    if !out.is_empty() {
                        let out = conform(out, &spec.sink_schema, &spec.sink_table)?;
                        let written = out.num_rows() as u64;
                        let bytes = out.rows().get_array_memory_size() as u64;
                        progress.report.rows_written += written;
                        sink.write(out).await?;
                        metrics.records_written.fetch_add(written, Ordering::Relaxed);
                        metrics.bytes_written.fetch_add(bytes, Ordering::Relaxed);
                    }
                    if let Some(t) = event_time.filter(|_| read > 0) {
                        metrics.emit_lag_ms.store((now_ms() - t).max(0), Ordering::Relaxed);
                    }
                    if remaining == Some(0) {
                        progress.ending = Some(true);
                        let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
                    }
                }
            }
        }
    }
    .await;

    reader_stop.cancel();
    drop(ack_tx);
    drop(batch_rx);
    let closed = sink.close().await;
    let read = match reader.await {
        Ok(r) => r,
        Err(e) => Err(Error::internal(format!("source task failed: {e}"))),
    };
    outcome?;
    closed?;
    Ok((progress.report, Some(read?)))
}

/// The rows to keep for a source that names a key to keep them by, as of the checkpoint the
/// pipeline resumes from.
fn captured_rows(ctx: &Context, source: &dyn Source) -> Result<Option<CapturedRows>> {
    let Some(key) = source.captured_row_key() else { return Ok(None) };
    let mut captured = CapturedRows::new(source.schema(), key)?;
    if let Some(state) = ctx.restored.as_ref().filter(|s| s.position.is_some()) {
        let Some(tables) = &state.captured else {
            return Err(Error::user(format!(
                "the checkpoint to resume `{}` from holds none of the rows its source delivered, which the source now needs                  to turn truncations into deletes (postgres-cdc 'truncate.mode' = 'delete' was set after the checkpoint was                  taken). Start the job with --fresh so the source reads its tables again, or restore the previous 'truncate.mode'",
                ctx.spec.name
            )));
        };
        captured.restore(tables)?;
    }
    Ok(Some(captured))
}

/// Prepares the sink, reports to the coordinator, and once the record is stored commits and
/// tells the source its position is safe.
async fn checkpoint(
    id: u64,
    ctx: &mut Context,
    spec: &PipelineSpec,
    sink: &mut dyn Sink,
    acks: &mpsc::UnboundedSender<Position>,
    progress: &mut Progress,
) -> Result<()> {
    if let Some(position) = &progress.position {
        sink.stage_position(&ctx.job, &spec.name, position);
    }
    let prepared = sink.prepare(id).await?;
    if let Some(captured) = &progress.captured {
        tracing::debug!(pipeline = %spec.name, checkpoint = id, rows = captured.len(), "storing the captured rows");
    }
    let state = PipelineState {
        name: spec.name.clone(),
        fingerprint: spec.fingerprint.clone(),
        position: progress.position.clone(),
        prepared_checkpoint: Some(id),
        prepared: prepared.state.clone(),
        finished: progress.ending == Some(true),
        // Once the pipeline asked to end it reads nothing more: this position covers everything.
        exact: progress.ending.is_some(),
        captured: progress.captured.as_mut().map(CapturedRows::state).transpose()?,
    };
    if ctx.reports.send(Report::Prepared { index: ctx.index, id, state }).is_err() {
        return Err(Error::internal("the checkpoint coordinator stopped"));
    }
    ctx.stored
        .wait_for(|stored| *stored >= id)
        .await
        .map_err(|_| Error::external(format!("checkpoint {id} was not stored")))?;
    sink.commit(prepared).await?;
    progress.report.checkpoints += 1;
    if progress.position != progress.acked {
        if let Some(position) = &progress.position {
            // The reader is gone only when the pipeline is ending anyway.
            let _ = acks.send(position.clone());
            progress.acked = Some(position.clone());
        }
    }
    Ok(())
}

/// Gives the batch the sink's schema, refusing NULLs in NOT NULL columns with the offending row.
fn conform(batch: ChangeBatch, schema: &SchemaRef, sink_table: &str) -> Result<ChangeBatch> {
    for (field, column) in schema.fields().iter().zip(batch.rows().columns()) {
        if !field.is_nullable() && column.null_count() > 0 {
            let row = (0..column.len()).find(|i| column.is_null(*i)).unwrap_or(0);
            let shown = format_rows(&batch.take(&[row as u32], vec![batch.kind(row).code()])?, "")?;
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
