//! One pipeline: each of its inputs' sources read in a task of its own (so reading overlaps
//! writing), every batch run through the dataflow's operators into the sink in arrival order,
//! checkpoints taken when the coordinator asks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointStore, InputState};
use super::dead_letters::DeadLetters;
use super::metrics::{now_ms, PipelineMetrics};
use super::{Dataflow, PipelineReport, PipelineSpec, PipelineState, Report};
use crate::changelog::{format_rows, ChangeBatch, Event, TableId};
use crate::connectors::{Position, PreparedCommit, ResumeFrom, Sink, Source, SourceBatch};
use crate::error::{Error, Result};
use crate::operators::{ComputeColumns, Operator, QueryOperator, TruncateAsDeletes};

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
    /// Where the restored record was read from, to find its operators' state files.
    pub restored_from: Option<std::path::PathBuf>,
    pub triggers: mpsc::UnboundedReceiver<u64>,
    pub reports: mpsc::UnboundedSender<Report>,
    pub stored: watch::Receiver<u64>,
    pub stop: CancellationToken,
    pub metrics: Arc<PipelineMetrics>,
    /// Where the sources, the sink and the query's operators set aside rows they cannot process.
    pub dead_letters: DeadLetters,
}

/// A batch read by input `.0`, with the event time of its newest change when the source knows it.
type Read = (usize, Result<Option<SourceBatch>>, Option<i64>);

pub(super) async fn run(ctx: Context) {
    let index = ctx.index;
    let reports = ctx.reports.clone();
    let name = ctx.spec.name.clone();
    let metrics = ctx.metrics.clone();
    match drive(ctx).await {
        Ok((report, sources)) => {
            tracing::info!(pipeline = %name, rows_read = report.rows_read, rows_written = report.rows_written, "pipeline finished");
            metrics.finished.store(true, Ordering::Relaxed);
            let _ = reports.send(Report::Done { index, report, sources });
        }
        Err(e) => {
            metrics.errors.fetch_add(1, Ordering::Relaxed);
            let _ = reports.send(Report::Failed { error: e.context(&name) });
        }
    }
}

/// Owns one input's source: forwards its batches, applies acknowledgements between reads, and
/// hands the closed source back.
async fn read_source(
    input: usize,
    mut source: Box<dyn Source>,
    batches: mpsc::Sender<Read>,
    mut acks: mpsc::UnboundedReceiver<Position>,
    stop: CancellationToken,
    metrics: Arc<PipelineMetrics>,
) -> Result<Box<dyn Source>> {
    loop {
        while let Ok(p) = acks.try_recv() {
            if let Err(e) = source.acknowledge(&p).await {
                // The pipeline learns of it now, not when every other input has ended.
                let _ = batches.send((input, Err(e.context("acknowledging a checkpoint")), None)).await;
                return Err(Error::internal("the source failed to acknowledge a checkpoint; reported"));
            }
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = source.next_batch() => next,
        };
        let last = !matches!(next, Ok(Some(_)));
        let progress = source.progress();
        let event_time = progress.as_ref().and_then(|p| p.event_time_ms);
        metrics.set_progress(input, progress);
        if batches.send((input, next, event_time)).await.is_err() || last {
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

/// One input as the pipeline runs it.
struct Input {
    state: InputState,
    /// The position last acknowledged to the source.
    acked: Option<Position>,
    /// Operators on this input's batches before the query (e.g. truncations into deletes).
    operators: Vec<Box<dyn Operator>>,
    /// To the reader task; `None` for an input that was already finished before this run.
    acks: Option<mpsc::UnboundedSender<Position>>,
    reader_stop: CancellationToken,
    reader: Option<tokio::task::JoinHandle<Result<Box<dyn Source>>>>,
}

struct Progress {
    report: PipelineReport,
    inputs: Vec<Input>,
    /// The INSERT's query; none for a pipeline definition's tables, which pass as they are.
    query: Option<QueryOperator>,
    /// Set once the pipeline asked for its final checkpoint: `true` when it is done (every input
    /// finished, or its LIMIT reached), `false` when it was asked to stop.
    ending: Option<bool>,
}

impl Progress {
    /// The operators of the dataflow in order, with stable names, for checkpoints.
    fn stateful_operators(&mut self) -> impl Iterator<Item = (String, &mut dyn Operator)> {
        let per_input = self.inputs.iter_mut().flat_map(|input| {
            let table = &input.state.table;
            input
                .operators
                .iter_mut()
                .map(move |op| (operator_name(table, op.as_ref()), op.as_mut() as &mut dyn Operator))
        });
        let query = self.query.iter_mut().flat_map(|q| q.stateful_operators()).map(|op| (op.name().to_string(), op));
        per_input.chain(query)
    }

    /// Nothing more can reach the sink: every input finished or is no longer wanted by the
    /// query (its LIMITs are reached).
    fn done(&self) -> bool {
        self.query.as_ref().is_some_and(|q| q.exhausted())
            || self.inputs.iter().enumerate().all(|(i, input)| input.state.finished || !self.wants(i))
    }

    /// Whether input `index` can still contribute rows.
    fn wants(&self, index: usize) -> bool {
        self.query.as_ref().is_none_or(|q| q.wants(index))
    }

    /// The position to stage with a sink's data: the one input's own position (as before inputs
    /// could be several), or every input's by table.
    fn staged_position(&self) -> Option<Position> {
        match self.inputs.as_slice() {
            [one] => one.state.position.clone(),
            inputs => Some(serde_json::json!({
                "inputs": inputs
                    .iter()
                    .map(|i| (i.state.table.clone(), i.state.position.clone().unwrap_or(serde_json::Value::Null)))
                    .collect::<serde_json::Map<_, _>>()
            })),
        }
    }
}

/// Runs the pipeline to its end; with its report come its closed sources (those it opened).
async fn drive(mut ctx: Context) -> Result<(PipelineReport, Vec<Box<dyn Source>>)> {
    let spec = ctx.spec.clone();
    let report = PipelineReport { name: spec.name.clone(), rows_read: 0, rows_written: 0, checkpoints: 0 };
    if ctx.restored.as_ref().is_some_and(|s| s.finished) {
        tracing::info!(pipeline = %spec.name, "already finished before the checkpoint it resumes from");
        return Ok((report, Vec::new()));
    }

    let mut sink = (spec.open_sink)()?;
    sink.set_dead_letters(ctx.dead_letters.clone());
    sink.open().await?;
    let pending: Vec<PreparedCommit> = ctx
        .restored
        .as_ref()
        .and_then(|s| s.prepared_checkpoint.map(|id| PreparedCommit { checkpoint_id: id, state: s.prepared.clone() }))
        .into_iter()
        .collect();
    sink.recover(pending).await?;
    let mut exact = ctx.restored.as_ref().is_some_and(|s| s.exact);
    let mut states: Vec<InputState> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let restored = ctx.restored.as_ref().and_then(|s| s.inputs.get(i));
            InputState {
                table: input.table.clone(),
                identity: Some(input.identity.clone()),
                position: restored.and_then(|r| r.position.clone()),
                finished: restored.is_some_and(|r| r.finished),
            }
        })
        .collect();

    let mut sources: Vec<Option<Box<dyn Source>>> = Vec::with_capacity(states.len());
    let mut operators: Vec<Vec<Box<dyn Operator>>> = Vec::with_capacity(states.len());
    for (input, state) in spec.inputs.iter().zip(&states) {
        let mut source = if state.finished { None } else { Some((input.open_source)()?) };
        if let Some(source) = source.as_mut() {
            source.set_dead_letters(ctx.dead_letters.clone());
        }
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let Some((key, source)) = source.as_ref().and_then(|s| s.captured_row_key().map(|k| (k, s))) {
            let mut truncating = TruncateAsDeletes::new("truncate-as-deletes", source.schema(), key)?;
            // Format version 1 kept these rows inline (one input per pipeline then).
            if let Some(rows) = ctx.restored.as_ref().and_then(|r| r.captured.as_ref()) {
                truncating.restore_v1(rows)?;
            }
            ops.push(Box::new(truncating));
        }
        if let Some(computed) = &input.computed {
            ops.push(Box::new(ComputeColumns::new(computed.clone())));
        }
        sources.push(source);
        operators.push(ops);
    }
    restore_operators(&ctx, &states, &mut operators)?;
    let query = match &spec.dataflow {
        Dataflow::Query { query, .. } => {
            let mut query = QueryOperator::with_dead_letters(query.clone(), &ctx.dead_letters)?;
            restore_query(&ctx, &mut query)?;
            Some(query)
        }
        Dataflow::Tables => None,
    };

    // The operators' state is that of the checkpoint's positions: a newer position the sink
    // stored would skip changes it lacks. Repeating changes a keyed sink already took is
    // harmless, and a source that deletes on truncation only feeds keyed sinks.
    let stateful = operators.iter().flatten().any(|op| op.keeps_state()) || spec.dataflow.is_stateful();
    if ctx.trust_sink_position && !stateful {
        // Committed together with the data, so at least as new as the checkpoint record, which
        // is written after the sink prepared.
        if let Some(position) = sink.stored_position(&ctx.job, &spec.name).await? {
            let staged = unstage(&spec, position)?;
            for (state, position) in states.iter_mut().zip(staged) {
                if let Some(position) = position {
                    exact &= state.position.as_ref() == Some(&position);
                    state.position = Some(position);
                }
            }
        }
    }

    // Without a stored position, a kill would make the next run start over (a new snapshot, a
    // new seed) rather than deliver again what this one delivered: rows it delivered and that
    // are gone by then would stay in the sink. So where each source started is checkpointed
    // before anything is written.
    let mut awaiting_start_checkpoint = false;
    let (batch_tx, mut batch_rx) = mpsc::channel(4 * spec.inputs.len().max(1));
    let mut inputs = Vec::with_capacity(states.len());
    for (i, ((state, source), ops)) in states.into_iter().zip(sources).zip(operators).enumerate() {
        let mut input = Input {
            state,
            acked: None,
            operators: ops,
            acks: None,
            reader_stop: CancellationToken::new(),
            reader: None,
        };
        if let Some(mut source) = source {
            let resume = input.state.position.clone().map(|position| ResumeFrom {
                position,
                exact,
                // Turning truncations into deletes takes repeated rows as they are; a GROUP BY
                // would count them again.
                stateful: spec.dataflow.is_stateful(),
            });
            source.start(resume).await?;
            if input.state.position.is_none() {
                input.state.position = source.start_position();
                awaiting_start_checkpoint |= ctx.stores_checkpoints && input.state.position.is_some();
            }
            let (ack_tx, ack_rx) = mpsc::unbounded_channel();
            input.acks = Some(ack_tx);
            let reading =
                read_source(i, source, batch_tx.clone(), ack_rx, input.reader_stop.clone(), ctx.metrics.clone());
            let failures = batch_tx.clone();
            input.reader = Some(tokio::spawn(async move {
                // A source that panics must stop the pipeline now: with other inputs still
                // flowing, nothing else would notice that this one went quiet.
                match std::panic::AssertUnwindSafe(reading).catch_unwind().await {
                    Ok(result) => result,
                    Err(_) => {
                        let _ = failures.send((i, Err(Error::internal("the source's task panicked")), None)).await;
                        Err(Error::internal("the source's task panicked; reported"))
                    }
                }
            }));
        }
        inputs.push(input);
    }
    drop(batch_tx);
    let mut progress = Progress { report, inputs, query, ending: None };
    if awaiting_start_checkpoint {
        let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
    }
    // Every input finished before this run, but the pipeline was not: only its final checkpoint
    // is left to take.
    if progress.done() {
        progress.ending = Some(true);
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
                    checkpoint(id, &mut ctx, &spec, sink.as_mut(), &mut progress).await?;
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
                    let Some((index, next, event_time)) = next else {
                        return Err(Error::internal("every input's reader stopped before its source ended"));
                    };
                    let batch = match next {
                        Ok(Some(batch)) => batch,
                        Err(e) => return Err(e.context(format!("reading `{}`", spec.inputs[index].table))),
                        Ok(None) => {
                            tracing::info!(pipeline = %spec.name, input = %spec.inputs[index].table, "input finished");
                            progress.inputs[index].state.finished = true;
                            if progress.done() {
                                progress.ending = Some(true);
                                let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
                            }
                            continue;
                        }
                    };
                    process(index, batch, event_time, &ctx, &spec, sink.as_mut(), &mut progress).await?;
                    if progress.done() {
                        progress.ending = Some(true);
                        let _ = ctx.reports.send(Report::WantsCheckpoint { index: ctx.index });
                    }
                }
            }
        }
    }
    .await;

    let mut readers = Vec::new();
    for input in &mut progress.inputs {
        input.reader_stop.cancel();
        input.acks = None;
        readers.extend(input.reader.take());
    }
    drop(batch_rx);
    let closed = sink.close().await;
    let mut sources = Vec::with_capacity(readers.len());
    let mut read = Ok(());
    for reader in readers {
        match reader.await {
            Ok(Ok(source)) => sources.push(source),
            Ok(Err(e)) => read = read.and(Err(e)),
            Err(e) => read = read.and(Err(Error::internal(format!("source task failed: {e}")))),
        }
    }
    outcome?;
    closed?;
    read?;
    Ok((progress.report, sources))
}

/// One batch of input `index` through the dataflow into the sink.
async fn process(
    index: usize,
    batch: SourceBatch,
    event_time: Option<i64>,
    ctx: &Context,
    spec: &PipelineSpec,
    sink: &mut dyn Sink,
    progress: &mut Progress,
) -> Result<()> {
    let input = &mut progress.inputs[index];
    let mut events = batch.events;
    for op in &mut input.operators {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            op.process(0, event, &mut out)?;
        }
        events = out;
    }
    input.state.position = Some(batch.position);
    if ctx.dead_letters.enabled() {
        ctx.dead_letters.set_position(progress.staged_position());
    }
    let metrics = &ctx.metrics;
    metrics.batches.fetch_add(1, Ordering::Relaxed);
    let mut read = 0;
    let mut results = Vec::with_capacity(1);
    for event in events {
        match &event {
            Event::Changes { changes, .. } if !changes.is_empty() => {
                read += changes.num_rows() as u64;
                metrics.bytes_read.fetch_add(changes.rows().get_array_memory_size() as u64, Ordering::Relaxed);
            }
            _ => {}
        }
        match progress.query.as_mut() {
            Some(query) => query.process(index, event, &mut results)?,
            None => results.push(event),
        }
    }
    progress.report.rows_read += read;
    metrics.records_read.fetch_add(read, Ordering::Relaxed);
    // In order: runs of changes of one table become one write; a schema change goes between.
    let mut parts: Vec<ChangeBatch> = Vec::new();
    let mut table: TableId = None;
    for event in results {
        match event {
            Event::Changes { table: t, changes } => {
                if t != table {
                    write(std::mem::take(&mut parts), &table, spec, sink, progress, metrics).await?;
                    table = t;
                }
                parts.push(changes);
            }
            Event::SchemaChanged(change) => {
                write(std::mem::take(&mut parts), &table, spec, sink, progress, metrics).await?;
                tracing::info!(pipeline = %spec.name, table = ?change.table, change = %change.describe(), "passing a schema change to the sink");
                sink.apply_schema_change(&spec.sink_table, &change).await?;
            }
            Event::Truncated(t) => {
                return Err(Error::internal(format!(
                    "a truncation of {:?} reached the sink of `{}`: no operator turned it into deletes",
                    t.table, spec.name
                )))
            }
        }
    }
    write(parts, &table, spec, sink, progress, metrics).await?;
    if let Some(t) = event_time.filter(|_| read > 0) {
        metrics.emit_lag_ms.store((now_ms() - t).max(0), Ordering::Relaxed);
    }
    // An input no branch wants any more (its LIMIT is reached) is read no further.
    if !progress.wants(index) && !progress.inputs[index].state.finished {
        progress.inputs[index].reader_stop.cancel();
    }
    Ok(())
}

/// Changes of one table as one write, in the sink's columns.
async fn write(
    parts: Vec<ChangeBatch>,
    table: &TableId,
    spec: &PipelineSpec,
    sink: &mut dyn Sink,
    progress: &mut Progress,
    metrics: &PipelineMetrics,
) -> Result<()> {
    if parts.is_empty() {
        return Ok(());
    }
    let out = match <[ChangeBatch; 1]>::try_from(parts) {
        Ok([one]) => one,
        // A run of one table's changes: all in that table's columns.
        Err(parts) => ChangeBatch::concat(parts[0].rows().schema_ref(), &parts)?,
    };
    let out = match &spec.dataflow {
        Dataflow::Query { sink_schema, .. } => conform(out, sink_schema, &spec.sink_table)?,
        // The sink routes each table to its own table, and checks its columns there.
        Dataflow::Tables => out,
    };
    let written = out.num_rows() as u64;
    let bytes = out.rows().get_array_memory_size() as u64;
    progress.report.rows_written += written;
    sink.write(table, out).await?;
    metrics.records_written.fetch_add(written, Ordering::Relaxed);
    metrics.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

/// The position a sink stored with its data, split per input (see [`Progress::staged_position`]).
fn unstage(spec: &PipelineSpec, position: Position) -> Result<Vec<Option<Position>>> {
    if let [_] = spec.inputs.as_slice() {
        return Ok(vec![Some(position)]);
    }
    let by_table = position.get("inputs").and_then(|v| v.as_object()).ok_or_else(|| {
        Error::user(format!(
            "the position stored with the data of `{}` was written by a pipeline with one input, and it now has {}; \
             start over with --fresh",
            spec.name,
            spec.inputs.len()
        ))
    })?;
    Ok(spec.inputs.iter().map(|i| by_table.get(&i.table).filter(|p| !p.is_null()).cloned()).collect())
}

/// Gives the operators of a resumed pipeline the state its checkpoint stored.
fn restore_operators(ctx: &Context, states: &[InputState], operators: &mut [Vec<Box<dyn Operator>>]) -> Result<()> {
    let Some(restored) = ctx.restored.as_ref() else { return Ok(()) };
    for (state, ops) in states.iter().zip(operators.iter_mut()) {
        if state.position.is_none() {
            continue;
        }
        for op in ops.iter_mut().filter(|op| op.keeps_state()) {
            let name = operator_name(&state.table, op.as_ref());
            if let Some(file) = restored.operators.iter().find(|o| o.operator == name) {
                let path = ctx.restored_from.as_deref().ok_or_else(|| {
                    Error::internal("a restored checkpoint names operator state but not where it was read")
                })?;
                op.restore(CheckpointStore::read_state(path, &file.file)?)?;
            } else if restored.captured.is_none() {
                return Err(Error::user(format!(
                    "the checkpoint to resume `{}` from holds no state for its operator `{name}`, which the input \
                     `{}` now needs (for a source that turns truncations into deletes, postgres-cdc 'truncate.mode' = \
                     'delete' was set after the checkpoint was taken). Start the job with --fresh so its sources read \
                     their tables again, or restore the previous job file",
                    ctx.spec.name, state.table
                )));
            }
        }
    }
    Ok(())
}

/// Gives the query's stateful operators (its GROUP BYs, Top-Ns and joins) the state the resumed
/// checkpoint stored.
fn restore_query(ctx: &Context, query: &mut QueryOperator) -> Result<()> {
    let Some(restored) = ctx.restored.as_ref() else { return Ok(()) };
    for op in query.stateful_operators().filter(|op| op.keeps_state()) {
        let name = op.name().to_string();
        let Some(file) = restored.operators.iter().find(|o| o.operator == name) else {
            return Err(Error::user(format!(
                "the checkpoint to resume `{}` from holds no state for `{name}`: the job's query keeps state it did not \
                 keep when the checkpoint was taken, or keeps it for another computation (a GROUP BY, DISTINCT, \
                 UNION, JOIN or ROW_NUMBER() Top-N was added, or it or what feeds it changed). Start the job with \
                 --fresh so its sources read their tables again, or restore the previous job file",
                ctx.spec.name
            )));
        };
        let path = ctx
            .restored_from
            .as_deref()
            .ok_or_else(|| Error::internal("a restored checkpoint names operator state but not where it was read"))?;
        op.restore(CheckpointStore::read_state(path, &file.file)?)?;
    }
    Ok(())
}

/// An operator's name in checkpoints: its input's table, then its own name.
fn operator_name(table: &str, op: &dyn Operator) -> String {
    format!("{table}.{}", op.name())
}

/// Prepares the sink, snapshots the operators, reports to the coordinator, and once the record is
/// stored commits and tells the sources their positions are safe.
async fn checkpoint(
    id: u64,
    ctx: &mut Context,
    spec: &PipelineSpec,
    sink: &mut dyn Sink,
    progress: &mut Progress,
) -> Result<()> {
    if let Some(position) = progress.staged_position() {
        sink.stage_position(&ctx.job, &spec.name, &position);
    }
    // What the sources and operators set aside must be on disk before the sink's prepare, which
    // may commit the position after their rows with its data (jdbc 'sink.offsets-table'); what the
    // sink sets aside while preparing, before the record that covers it is stored.
    ctx.dead_letters.sync().await?;
    let prepared = sink.prepare(id).await?;
    ctx.dead_letters.sync().await?;
    let mut operators = Vec::new();
    for (name, op) in progress.stateful_operators() {
        if let Some(snapshot) = op.snapshot()? {
            operators.push((name, snapshot));
        }
    }
    let finished = progress.ending == Some(true);
    let state = PipelineState {
        name: spec.name.clone(),
        sink: spec.sink.clone(),
        inputs: progress.inputs.iter().map(|i| i.state.clone()).collect(),
        prepared_checkpoint: Some(id),
        prepared: prepared.state.clone(),
        finished,
        // Once the pipeline asked to end it reads nothing more: these positions cover everything.
        exact: progress.ending.is_some(),
        operators: Vec::new(),
        captured: None,
    };
    if ctx.reports.send(Report::Prepared { index: ctx.index, id, state, operators }).is_err() {
        return Err(Error::internal("the checkpoint coordinator stopped"));
    }
    ctx.stored
        .wait_for(|stored| *stored >= id)
        .await
        .map_err(|_| Error::external(format!("checkpoint {id} was not stored")))?;
    sink.commit(prepared).await?;
    progress.report.checkpoints += 1;
    for input in &mut progress.inputs {
        if input.state.position != input.acked {
            if let (Some(position), Some(acks)) = (&input.state.position, &input.acks) {
                // The reader is gone only when the pipeline is ending anyway.
                let _ = acks.send(position.clone());
                input.acked = Some(position.clone());
            }
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
