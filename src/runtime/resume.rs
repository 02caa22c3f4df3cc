//! Whether a stored checkpoint belongs to the job about to resume from it. A record applies only
//! to the same pipelines (by position in the job and by name), writing the same sinks, reading
//! the same tables through sources whose positions mean the same thing ([`SourceIdentity`]).
//! One change is not a mismatch but a continuation: a finished bounded snapshot
//! (`'scan.startup.mode' = 'snapshot'`) followed by the same job in a streaming mode, which goes
//! on from the snapshot's position — the log from where the snapshot was taken — instead of
//! finding the pipeline finished and reading nothing.

use super::{CheckpointRecord, PipelineSpec};
use crate::connectors::SourceIdentity;
use crate::error::{Error, Result};

/// Refuses a record that was not written for `pipelines`, naming what changed; revives the inputs
/// (and their pipelines) that continue a finished snapshot.
pub(super) fn check(record: &mut CheckpointRecord, pipelines: &[PipelineSpec]) -> Result<()> {
    let id = record.checkpoint_id;
    let job = record.job.clone();
    let mismatch = |detail: String| {
        Error::user(format!(
            "the stored checkpoint {id} of job '{job}' does not fit this job: {detail}. Run the job file the checkpoint \
             was taken with, start over with --fresh (the sources then begin as their 'scan.startup.mode' says), or \
             resume another checkpoint with --from-checkpoint <path>"
        ))
    };
    if record.pipelines.len() != pipelines.len() {
        return Err(mismatch(format!(
            "it has {} pipelines (INSERTs), the job has {}",
            record.pipelines.len(),
            pipelines.len()
        )));
    }
    for (i, (state, spec)) in record.pipelines.iter_mut().zip(pipelines).enumerate() {
        let Some(state) = state else { continue };
        let which = format!("pipeline {} (`{}`)", i + 1, spec.name);
        if state.name != spec.name {
            return Err(mismatch(format!("pipeline {} was `{}` and is now `{}`", i + 1, state.name, spec.name)));
        }
        if state.sink != spec.sink {
            return Err(mismatch(format!("{which} wrote `{}` and now writes `{}`", state.sink, spec.sink)));
        }
        let tables: Vec<&str> = state.inputs.iter().map(|i| i.table.as_str()).collect();
        let now: Vec<&str> = spec.inputs.iter().map(|i| i.table.as_str()).collect();
        if tables != now {
            return Err(mismatch(format!("{which} read {} and now reads {}", tables.join(", "), now.join(", "))));
        }
        for (input, now) in state.inputs.iter_mut().zip(&spec.inputs) {
            let Some(was) = &input.identity else { continue };
            if *was == now.identity {
                continue;
            }
            if !now.identity.continues_snapshot(was) {
                return Err(mismatch(format!("{which} read `{}` {}", input.table, changes(was, &now.identity))));
            }
            tracing::info!(
                pipeline = %spec.name,
                input = %input.table,
                startup_mode = %now.identity.startup_mode,
                "the checkpoint holds a bounded snapshot of this input ('scan.startup.mode' = 'snapshot'): \
                 continuing it by streaming the changes since that snapshot was taken, without a new snapshot"
            );
            if input.finished {
                input.finished = false;
                // A LIMIT that ended the pipeline is not counted across runs: only a pipeline its
                // finished inputs ended is taken up again.
                if !spec.dataflow.query().is_some_and(|q| q.has_limit()) {
                    state.finished = false;
                }
            }
        }
    }
    Ok(())
}

/// What differs between two identities, for people.
fn changes(was: &SourceIdentity, now: &SourceIdentity) -> String {
    let fields = [
        ("connector", &was.connector, &now.connector),
        ("location", &was.location, &now.location),
        ("tables", &was.tables, &now.tables),
        ("startup mode", &was.startup_mode, &now.startup_mode),
    ];
    fields
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| format!("with {what} '{a}' and now with '{b}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
