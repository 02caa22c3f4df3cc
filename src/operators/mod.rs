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

mod aggregate;
mod computed;
mod join;
mod lookup;
mod materialize;
mod query;
mod rank;
mod truncate;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};

pub use aggregate::{Aggregate, AggregateCall, AggregateFunction, AggregateSpec};
pub use computed::{ColumnSource, ComputeColumns, ComputedColumns};
pub use join::{Join, JoinKind, JoinParts, JoinSpec};
pub use lookup::{LookupCounters, LookupJoin, LookupSpec};
pub use materialize::{MaterializeSpec, UpsertMaterializer};
pub use query::QueryOperator;
pub use rank::{Rank, RankSpec};

pub use truncate::{CapturedTableState, TruncateAsDeletes};

use crate::changelog::{ChangeBatch, ChangelogMode, Event};
use crate::error::{Error, Result};

/// A stateful node of a query, as planned; the runtime makes the operator that runs it and keeps
/// its state.
#[derive(Debug, Clone)]
pub enum StatefulSpec {
    /// GROUP BY, `SELECT DISTINCT`, `UNION`: one input.
    Aggregate(Arc<AggregateSpec>),
    /// Flink's deduplication and Top-N (`ROW_NUMBER() OVER …` filtered to `rn <= N`): one input.
    Rank(Arc<RankSpec>),
    /// `[INNER|LEFT|RIGHT|FULL] JOIN`, and the semi and anti joins of `EXISTS` and `IN`: two
    /// inputs, the left and the right side.
    Join(Arc<JoinSpec>),
    /// `JOIN dim FOR SYSTEM_TIME AS OF s.proc`: one input, the left side; the right side is looked
    /// up, and nothing is kept but a cache.
    Lookup(Arc<LookupSpec>),
    /// Flink's upsert materializer before a sink keyed by other columns than the result: one input.
    Materialize(Arc<MaterializeSpec>),
}

impl StatefulSpec {
    /// The SQL construct, for messages and the state's name.
    pub fn construct(&self) -> &'static str {
        match self {
            StatefulSpec::Aggregate(_) => "GROUP BY",
            StatefulSpec::Rank(_) => "ROW_NUMBER",
            StatefulSpec::Join(_) => "JOIN",
            StatefulSpec::Lookup(_) => "LOOKUP JOIN",
            StatefulSpec::Materialize(_) => "UPSERT MATERIALIZE",
        }
    }

    /// Whether its operator keeps state that checkpoints hold.
    pub fn keeps_state(&self) -> bool {
        !matches!(self, StatefulSpec::Lookup(_))
    }

    /// An operator that runs the node from empty state; `name` names its state in checkpoints,
    /// `ttl` is Flink's `table.exec.state.ttl`; rows it cannot process go to `dead_letters`.
    pub fn instantiate(
        &self,
        name: String,
        ttl: Option<std::time::Duration>,
        dead_letters: &crate::runtime::DeadLetters,
    ) -> Result<Box<dyn Operator>> {
        Ok(match self {
            StatefulSpec::Aggregate(spec) => Box::new(Aggregate::new(name, spec.clone(), ttl)?),
            StatefulSpec::Rank(spec) => Box::new(Rank::new(name, spec.clone())?),
            StatefulSpec::Join(spec) => Box::new(Join::new(name, spec.clone())?),
            StatefulSpec::Lookup(spec) => Box::new(LookupJoin::new(name, spec.clone(), dead_letters.clone())?),
            StatefulSpec::Materialize(spec) => Box::new(UpsertMaterializer::new(name, spec.clone())?),
        })
    }

    /// Whether its state honours `table.exec.state.ttl`.
    pub fn expires(&self) -> bool {
        match self {
            StatefulSpec::Aggregate(_) => true,
            StatefulSpec::Rank(_) | StatefulSpec::Join(_) | StatefulSpec::Lookup(_) | StatefulSpec::Materialize(_) => {
                false
            }
        }
    }

    /// The changelog of the node's result, given its inputs' changelogs.
    pub fn changelog(&self, inputs: &[ChangelogMode]) -> ChangelogMode {
        match self {
            // A grouping without functions over inserts only ever adds groups.
            StatefulSpec::Aggregate(spec) if spec.is_distinct_only() && inputs.iter().all(|m| m.is_insert_only()) => {
                ChangelogMode::InsertOnly
            }
            StatefulSpec::Aggregate(_) => ChangelogMode::All,
            // Even over inserts only: the order key is a column, not the arrival order (cdc-sql has
            // no time attributes), so a later row can outrank the one shown, which is then
            // retracted — Flink's Rank over a regular column (AppendOnlyTopNFunction) does the same.
            StatefulSpec::Rank(_) => ChangelogMode::All,
            // Rows that are only ever added; an outer join retracts its padded rows, an anti join
            // the rows a match arrives for.
            StatefulSpec::Join(spec) if spec.only_adds() && inputs.iter().all(|m| m.is_insert_only()) => {
                ChangelogMode::InsertOnly
            }
            StatefulSpec::Join(_) => ChangelogMode::All,
            // Each change keeps its kind.
            StatefulSpec::Lookup(_) => inputs.first().copied().unwrap_or(ChangelogMode::InsertOnly),
            // The row a key shows now, replacing the one before.
            StatefulSpec::Materialize(_) => ChangelogMode::Upsert,
        }
    }

    /// The sets of the result's columns that are each a unique key of it, smallest first.
    pub fn unique_keys(&self) -> Vec<Vec<usize>> {
        match self {
            StatefulSpec::Aggregate(spec) => vec![(0..spec.key_len()).collect()],
            StatefulSpec::Rank(spec) => spec.unique_key().into_iter().collect(),
            StatefulSpec::Join(spec) => spec.unique_keys().to_vec(),
            StatefulSpec::Lookup(spec) => spec.unique_keys.clone(),
            StatefulSpec::Materialize(spec) => vec![spec.key.clone()],
        }
    }

    /// What the result's unique key is made of, for messages: "GROUP BY columns".
    pub fn key_columns(&self) -> &'static str {
        match self {
            StatefulSpec::Aggregate(_) => "GROUP BY columns",
            StatefulSpec::Rank(spec) => spec.key_columns(),
            StatefulSpec::Join(_) => "joined tables' PRIMARY KEY columns",
            StatefulSpec::Lookup(_) => "the PRIMARY KEY columns of the table joined from",
            StatefulSpec::Materialize(_) => "sink's PRIMARY KEY columns",
        }
    }
}

/// A state-keeping node of a query (GROUP BY, join, Top-N). The [`Operator`] around it is one,
/// shared: changes of an input in, changes of the result out; a snapshot only when the state
/// changed since the last one; a restore only of state with the columns this node keeps.
pub trait StatefulNode: Send {
    /// Names its state in checkpoints.
    fn node_name(&self) -> &str;

    /// The SQL construct, for messages.
    fn construct(&self) -> &'static str;

    /// The changes of the result for a batch of changes of input `input`.
    fn apply_input(&mut self, input: usize, changes: &ChangeBatch) -> Result<ChangeBatch>;

    /// Whether the state changed since the last snapshot or restore.
    fn changed(&mut self) -> &mut bool;

    /// The columns of [`StatefulNode::state_batch`].
    fn state_schema(&self) -> SchemaRef;

    /// The whole state, as one Arrow batch.
    fn state_batch(&self) -> Result<RecordBatch>;

    /// Takes back a state of [`StatefulNode::state_schema`]'s columns.
    fn load_state(&mut self, state: &RecordBatch) -> Result<()>;
}

impl<T: StatefulNode> Operator for T {
    fn name(&self) -> &str {
        self.node_name()
    }

    fn process(&mut self, input: usize, event: Event, out: &mut Vec<Event>) -> Result<()> {
        match event {
            Event::Changes { changes, .. } => {
                let result = self.apply_input(input, &changes)?;
                if !result.is_empty() {
                    out.push(Event::changes(result));
                }
            }
            other => out.push(other),
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Option<OperatorSnapshot>> {
        if !*self.changed() {
            return Ok(Some(OperatorSnapshot::Unchanged));
        }
        let state = self.state_batch()?;
        *self.changed() = false;
        Ok(Some(OperatorSnapshot::Changed(state)))
    }

    fn restore(&mut self, state: RecordBatch) -> Result<()> {
        check_state_schema(self.node_name(), self.construct(), &state, &self.state_schema())?;
        self.load_state(&state)?;
        *self.changed() = false;
        Ok(())
    }
}

/// Fails, telling the user to start over, when a checkpoint's state of operator `name` does not
/// have the columns `expected`: the job's `construct` changed since the checkpoint.
fn check_state_schema(name: &str, construct: &str, state: &RecordBatch, expected: &Schema) -> Result<()> {
    let same = state.schema().fields().len() == expected.fields().len()
        && state
            .schema()
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(a, b)| a.data_type().equals_datatype(b.data_type()));
    if same {
        return Ok(());
    }
    Err(Error::user(format!(
        "the checkpoint's state of `{name}` has columns {:?} where this query keeps {:?}: the job's {construct} \
         changed since the checkpoint; start over with --fresh",
        state.schema().fields().iter().map(|f| f.data_type().to_string()).collect::<Vec<_>>(),
        expected.fields().iter().map(|f| f.data_type().to_string()).collect::<Vec<_>>()
    )))
}

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

    /// Takes one event of input `input`, adds the events it emits to `out`.
    fn process(&mut self, input: usize, event: Event, out: &mut Vec<Event>) -> Result<()>;

    /// Whether the operator keeps state that checkpoints hold (and a resumed job needs back).
    fn keeps_state(&self) -> bool {
        true
    }

    /// The state for a checkpoint; `None` for an operator that keeps none.
    fn snapshot(&mut self) -> Result<Option<OperatorSnapshot>> {
        Ok(None)
    }

    /// Takes back a state [`Operator::snapshot`] gave.
    fn restore(&mut self, state: RecordBatch) -> Result<()> {
        let _ = state;
        Err(Error::internal(format!("operator `{}` keeps no state to restore", self.name())))
    }
}
