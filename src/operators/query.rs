//! The stateless part of an INSERT's query as an operator over all its inputs: filters,
//! projections, casts and scalar functions per `UNION ALL` branch ([`CompiledQuery`]), with the
//! query's `LIMIT`s counted down as rows go out.

use std::sync::Arc;

use super::Operator;
use crate::changelog::ChangeBatch;
use crate::connectors::RowOrigins;
use crate::error::Result;
use crate::plan::{CompiledQuery, Limits};

pub struct QueryOperator {
    query: Arc<CompiledQuery>,
    limits: Limits,
}

impl QueryOperator {
    pub fn new(query: Arc<CompiledQuery>) -> Self {
        let limits = query.limits();
        QueryOperator { query, limits }
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

    fn process(&mut self, input: usize, changes: ChangeBatch, _: Option<&RowOrigins>) -> Result<ChangeBatch> {
        self.query.apply(input, &changes, &mut self.limits)
    }
}
