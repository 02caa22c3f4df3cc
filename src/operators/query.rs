//! An INSERT's query as an operator over all its inputs: filters, projections, casts and scalar
//! functions per `UNION ALL` branch, the GROUP BYs above them ([`CompiledQuery`]), with the
//! query's `LIMIT`s counted down as rows go out. Each stateful node's state is an operator of
//! its own, snapshotted and restored as an operator of the pipeline.

use std::sync::Arc;

use super::Operator;
use crate::changelog::Event;
use crate::error::{Error, Result};
use crate::plan::{CompiledQuery, Limits};
use crate::runtime::DeadLetters;

pub struct QueryOperator {
    query: Arc<CompiledQuery>,
    limits: Limits,
    /// One per [`CompiledQuery::stateful`], in order.
    stateful: Vec<Box<dyn Operator>>,
}

impl QueryOperator {
    /// The query's operators; a row they cannot process stops them with its error.
    pub fn new(query: Arc<CompiledQuery>) -> Result<Self> {
        Self::with_dead_letters(query, &DeadLetters::none())
    }

    /// The query's operators, setting rows they cannot process aside through `dead_letters`.
    pub fn with_dead_letters(query: Arc<CompiledQuery>, dead_letters: &DeadLetters) -> Result<Self> {
        let limits = query.limits();
        let stateful = query
            .stateful()
            .iter()
            .zip(query.state_names())
            .map(|(spec, name)| spec.instantiate(name, query.state_ttl, dead_letters))
            .collect::<Result<_>>()?;
        Ok(QueryOperator { query, limits, stateful })
    }

    /// The operators that keep the query's state, each under a name stable across runs of the
    /// same job file.
    pub fn stateful_operators(&mut self) -> impl Iterator<Item = &mut dyn Operator> {
        self.stateful.iter_mut().map(|op| op.as_mut() as &mut dyn Operator)
    }

    /// Nothing more can come out: the query's `LIMIT`s are reached.
    pub fn exhausted(&self) -> bool {
        self.limits.exhausted()
    }

    /// Whether input `input` can still contribute rows.
    pub fn wants(&self, input: usize) -> bool {
        self.query.input_wanted(input, &self.limits)
    }
}

impl Operator for QueryOperator {
    fn name(&self) -> &str {
        "query"
    }

    /// The query's rows are of the sink's one table: what they came from is not passed on. Nor is
    /// a change of a source table's columns: the query reads the columns its table declares, which
    /// the source still finds after it (a source fails when a declared column goes), so the sink's
    /// columns stay as they are — Flink SQL's behaviour, where a declared schema is fixed.
    fn process(&mut self, input: usize, event: Event, out: &mut Vec<Event>) -> Result<()> {
        match event {
            Event::Changes { changes, .. } => {
                let result = self.query.apply(input, &changes, &mut self.limits, &mut self.stateful)?;
                if !result.is_empty() {
                    out.push(Event::changes(result));
                }
                Ok(())
            }
            Event::SchemaChanged(change) => {
                // Worth a warning: a column added at the source is not copied.
                tracing::warn!(
                    "source table `{}` changed: {}. The job goes on reading the columns its table declares, as Flink SQL \
                     does; to copy new columns, declare them in the job file (source and sink) and restart it",
                    change.table.as_deref().unwrap_or("?"),
                    change.describe()
                );
                Ok(())
            }
            Event::Truncated(t) => Err(Error::internal(format!(
                "a truncation of {:?} reached the query without an operator to turn it into deletes",
                t.table
            ))),
        }
    }
}
