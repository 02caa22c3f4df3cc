//! SQL → DataFusion logical plan → per-batch operators. DataFusion plans and optimizes the query
//! once (type coercion, constant folding, function resolution); the stateless part is then
//! compiled into physical expressions that run on every changelog batch, carrying the row kinds
//! through and applying the changelog rules for filters. Stateful operators (GROUP BY with
//! retractions, joins) are not built yet: such queries are rejected at planning with a clear error.

mod insert;
mod table;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{FetchType, LogicalPlan, SkipType};
use datafusion::physical_expr::PhysicalExpr;

pub use insert::{insert_target, plan_insert, PlannedInsert, SinkTarget};
pub use table::ChangelogTableProvider;

use crate::changelog::{filter_changes, ChangeBatch, Retractions};
use crate::error::{Error, Result};

#[derive(Debug)]
enum Step {
    /// Keep the columns at these indices (the table scan's projection).
    Select(Vec<usize>),
    Filter(Arc<dyn PhysicalExpr>),
    Project(Vec<Arc<dyn PhysicalExpr>>, SchemaRef),
}

/// A query over one changelog table, compiled to run batch by batch.
#[derive(Debug)]
pub struct CompiledQuery {
    /// The table the query reads.
    pub source_table: String,
    steps: Vec<Step>,
    /// Schema of the batches [`CompiledQuery::apply`] returns.
    pub output_schema: SchemaRef,
    /// `LIMIT n`: the query is done after n rows.
    pub limit: Option<usize>,
    /// What the source's retractions carry, which filters must respect.
    retractions: Retractions,
}

impl CompiledQuery {
    /// Compiles an optimized logical plan. Fails for plans that read no table or need state.
    pub fn compile(state: &SessionState, plan: &LogicalPlan) -> Result<Self> {
        let mut steps = Vec::new();
        let mut limit = None;
        let source_table = compile_node(state, plan, &mut steps, &mut limit)?;
        Ok(CompiledQuery {
            source_table,
            steps,
            output_schema: Arc::new(plan.schema().as_arrow().clone()),
            limit,
            retractions: Retractions::WholeRows,
        })
    }

    /// Tells the query what its source's retractions carry (whole rows unless told otherwise).
    pub fn with_retractions(mut self, retractions: Retractions) -> Self {
        self.retractions = retractions;
        self
    }

    /// Runs the query on one batch of the source table.
    pub fn apply(&self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let mut current = batch.clone();
        for step in &self.steps {
            if current.is_empty() {
                break;
            }
            current = match step {
                Step::Select(indices) => current.with_rows(current.rows().project(indices)?)?,
                Step::Filter(predicate) => {
                    let result = predicate.evaluate(current.rows())?.into_array(current.num_rows())?;
                    let passes = result.as_boolean_opt().ok_or_else(|| {
                        Error::internal(format!("filter gave {} instead of booleans", result.data_type()))
                    })?;
                    filter_changes(&current, passes, self.retractions)?
                }
                Step::Project(exprs, schema) => {
                    let rows = current.rows();
                    let columns = exprs
                        .iter()
                        .zip(schema.fields())
                        .map(|(e, field)| {
                            e.evaluate(rows)
                                .and_then(|v| v.into_array(rows.num_rows()))
                                .map_err(|err| Error::from(err).context(format!("computing column `{}`", field.name())))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
                    current.with_rows(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)?
                }
            };
        }
        if current.is_empty() && current.rows().schema() != self.output_schema {
            return Ok(ChangeBatch::inserts(RecordBatch::new_empty(self.output_schema.clone())));
        }
        Ok(current)
    }
}

/// Whether a plan reads any table (a query like `SELECT 1 + 1` does not).
pub fn reads_a_table(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if matches!(node, LogicalPlan::TableScan(_)) {
            found = true;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn compile_node(
    state: &SessionState,
    plan: &LogicalPlan,
    steps: &mut Vec<Step>,
    limit: &mut Option<usize>,
) -> Result<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if !scan.filters.is_empty() {
                return Err(Error::internal("filters were pushed into a changelog table scan"));
            }
            if let Some(projection) = &scan.projection {
                steps.push(Step::Select(projection.clone()));
            }
            if let Some(fetch) = scan.fetch {
                *limit = Some(limit.map_or(fetch, |l| l.min(fetch)));
            }
            Ok(scan.table_name.table().to_string())
        }
        LogicalPlan::Filter(filter) => {
            let table = compile_node(state, &filter.input, steps, limit)?;
            let predicate = state.create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
            steps.push(Step::Filter(predicate));
            Ok(table)
        }
        LogicalPlan::Projection(projection) => {
            let table = compile_node(state, &projection.input, steps, limit)?;
            let exprs = projection
                .expr
                .iter()
                .map(|e| state.create_physical_expr(e.clone(), projection.input.schema()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            steps.push(Step::Project(exprs, Arc::new(projection.schema.as_arrow().clone())));
            Ok(table)
        }
        LogicalPlan::SubqueryAlias(alias) => compile_node(state, &alias.input, steps, limit),
        LogicalPlan::Limit(l) => {
            if !matches!(l.get_skip_type()?, SkipType::Literal(0)) {
                return Err(Error::user("OFFSET is not supported on a changelog stream"));
            }
            let table = compile_node(state, &l.input, steps, limit)?;
            if let FetchType::Literal(Some(fetch)) = l.get_fetch_type()? {
                *limit = Some(limit.map_or(fetch, |x| x.min(fetch)));
            }
            Ok(table)
        }
        LogicalPlan::Aggregate(_) => Err(Error::user(
            "GROUP BY and aggregate functions over a changelog are not supported yet: cdc-sql runs stateless \
             queries (projection, WHERE, CAST, CASE, scalar functions)",
        )),
        LogicalPlan::Join(_) => Err(Error::user("joins are not supported yet: an INSERT reads one table")),
        LogicalPlan::Sort(_) => Err(Error::user("ORDER BY is not supported on a changelog stream")),
        LogicalPlan::Distinct(_) => Err(Error::user("SELECT DISTINCT is not supported on a changelog stream yet")),
        LogicalPlan::Union(_) => {
            Err(Error::user("UNION is not supported yet: use one INSERT per source in a statement set"))
        }
        LogicalPlan::Window(_) => Err(Error::user("OVER windows are not supported on a changelog stream")),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
            Err(Error::user("an INSERT must read a table: SELECT … FROM <source table>"))
        }
        other => Err(Error::user(format!("{} is not supported on a changelog stream", other.display()))),
    }
}

/// Arrow's `DataType` equality also compares field names of nested types; sinks only care that
/// the values fit.
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    a.equals_datatype(b)
}
