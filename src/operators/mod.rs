//! The steps of a pipeline's dataflow between its sources and its sink. An operator takes
//! changelog batches from one of its inputs and emits changelog batches; a stateful one can
//! snapshot its state for a checkpoint and be restored from it.
//!
//! A pipeline is `inputs → per-input operators → query → sink`: each source table of an INSERT is
//! one input (its own source, position and reader); operators that belong to one input (turning a
//! source's truncations into deletes) run on that input's batches; the compiled query is one
//! operator over all inputs (its `UNION ALL` branches); its output goes to the sink. The pipeline
//! runs its operators in one task, batch by batch, so a checkpoint taken between two batches sees
//! every operator's state and every input's position as of the same batches; the checkpoint
//! barrier reaches each operator in dataflow order, which snapshots at it.
//!
//! Every operator keeps the changelog contract on its output: an update is a `-U` immediately
//! followed by its `+U`.

mod query;
mod truncate;

use datafusion::arrow::array::RecordBatch;

pub use query::QueryOperator;
pub use truncate::{CapturedTableState, TruncateAsDeletes};

use crate::changelog::ChangeBatch;
use crate::connectors::RowOrigins;
use crate::error::Result;

/// What a stateful operator hands to a checkpoint.
#[derive(Debug, Clone)]
pub enum OperatorSnapshot {
    /// The state is what the previous checkpoint (or the restore) stored: its file is kept.
    Unchanged,
    /// The whole state, as one Arrow batch (stored as an Arrow IPC file).
    Changed(RecordBatch),
}

pub trait Operator: Send {
    /// Names the operator's state in checkpoints: stable across runs of the same job file.
    fn name(&self) -> &str;

    /// Takes the changes of input `input` (with where their rows come from, when the source
    /// says), returns the changes the operator emits.
    fn process(&mut self, input: usize, changes: ChangeBatch, origins: Option<&RowOrigins>) -> Result<ChangeBatch>;

    /// The state for a checkpoint; `None` for an operator that keeps none.
    fn snapshot(&mut self) -> Result<Option<OperatorSnapshot>> {
        Ok(None)
    }

    /// Takes back a state [`Operator::snapshot`] gave.
    fn restore(&mut self, state: RecordBatch) -> Result<()> {
        let _ = state;
        Err(crate::error::Error::internal(format!("operator `{}` keeps no state to restore", self.name())))
    }
}
