//! How a changelog table looks to DataFusion's planner: a schema and nothing to scan. Queries over
//! these tables are compiled into per-batch operators and fed by the runtime, never executed by
//! DataFusion, so planning never touches the source. The table's PRIMARY KEY is kept for the
//! planner (the unique keys of a join's result derive from it), not told to DataFusion, whose
//! optimizer would act on it beyond Flink's SQL. A table's lookup side (`dim FOR SYSTEM_TIME AS OF
//! s.proc`, see `sql::temporal`) is the same, with how the table is looked up; the planner turns
//! the join reading it into a lookup join.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::DFSchema;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::ExprWithAlias as SQLExprWithAlias;

use crate::connectors::LookupTable;
use crate::operators::{ColumnSource, ComputedColumns};
use crate::sql::{Declared, TableSpec};

#[derive(Debug)]
pub struct ChangelogTableProvider {
    name: String,
    schema: SchemaRef,
    /// The PRIMARY KEY's columns (indices into `schema`); empty without one.
    primary_key: Vec<usize>,
    /// For a table's lookup side: how it is looked up.
    lookup: Option<LookupTable>,
}

impl ChangelogTableProvider {
    pub fn new(name: &str, schema: SchemaRef, primary_key: Vec<usize>) -> Arc<Self> {
        Arc::new(ChangelogTableProvider { name: name.to_string(), schema, primary_key, lookup: None })
    }

    /// The lookup side of table `name`.
    pub fn lookup_side(name: &str, schema: SchemaRef, primary_key: Vec<usize>, lookup: LookupTable) -> Arc<Self> {
        Arc::new(ChangelogTableProvider { name: name.to_string(), schema, primary_key, lookup: Some(lookup) })
    }

    /// The table, as declared.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the table is looked up, when this is its lookup side.
    pub fn lookup(&self) -> Option<&LookupTable> {
        self.lookup.as_ref()
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
            "changelog table `{}` was scheduled for a DataFusion scan; the cdc-sql runtime (or a lookup join) reads it",
            self.name
        )))
    }
}

/// The table as queried, when it declares computed columns: their expressions planned over the
/// columns its source reads. `None` without computed columns (the source's rows are the table's).
pub fn computed_columns(state: &SessionState, spec: &TableSpec) -> crate::error::Result<Option<Arc<ComputedColumns>>> {
    if spec.computed.is_empty() {
        return Ok(None);
    }
    let read = spec.schema();
    let df = DFSchema::try_from(read.as_ref().clone())?;
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for declared in spec.declared() {
        match declared {
            Declared::Column(c) => {
                let i = read.index_of(&c.name)?;
                fields.push(read.field(i).clone());
                columns.push(ColumnSource::Read(i));
            }
            Declared::Computed(c) => {
                let planned = state
                    .create_logical_expr_from_sql_expr(SQLExprWithAlias { expr: c.expr.clone(), alias: None }, &df)
                    .and_then(|e| ExprSimplifier::new(SimplifyContext::default()).coerce(e, &df))
                    .map_err(|e| {
                        crate::error::Error::from(e)
                            .context(format!("computed column `{}` of table `{}` ({})", c.name, spec.name, c.expr))
                    })?;
                let aggregates =
                    planned.exists(|e| Ok(matches!(e, Expr::AggregateFunction(_) | Expr::WindowFunction(_))))?;
                if aggregates {
                    return Err(crate::error::Error::user(format!(
                        "computed column `{}` of table `{}` uses an aggregate or window function; a computed column \
                         is computed from one row",
                        c.name, spec.name
                    )));
                }
                let (_, field) = planned.to_field(&df)?;
                fields.push(Field::new(&c.name, field.data_type().clone(), field.is_nullable()));
                columns.push(ColumnSource::Computed(state.create_physical_expr(planned, &df)?));
            }
        }
    }
    Ok(Some(Arc::new(ComputedColumns { schema: Arc::new(Schema::new(fields)), columns })))
}
