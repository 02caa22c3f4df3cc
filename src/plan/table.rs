//! How a changelog table looks to DataFusion's planner: a schema and nothing to scan. Queries over
//! these tables are compiled into per-batch operators and fed by the runtime, never executed by
//! DataFusion, so planning never touches the source. The table's PRIMARY KEY is kept for the
//! planner (the unique keys of a join's result derive from it), not told to DataFusion, whose
//! optimizer would act on it beyond Flink's SQL.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct ChangelogTableProvider {
    name: String,
    schema: SchemaRef,
    /// The PRIMARY KEY's columns (indices into `schema`); empty without one.
    primary_key: Vec<usize>,
}

impl ChangelogTableProvider {
    pub fn new(name: &str, schema: SchemaRef, primary_key: Vec<usize>) -> Arc<Self> {
        Arc::new(ChangelogTableProvider { name: name.to_string(), schema, primary_key })
    }

    /// The PRIMARY KEY's columns, `None` without one.
    pub fn primary_key(&self) -> Option<&[usize]> {
        (!self.primary_key.is_empty()).then_some(&self.primary_key[..])
    }
}

#[async_trait]
impl TableProvider for ChangelogTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(format!(
            "changelog table `{}` was scheduled for a DataFusion scan; the cdc-sql runtime reads it",
            self.name
        )))
    }
}
