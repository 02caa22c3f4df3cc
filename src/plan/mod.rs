//! SQL → DataFusion logical plan → per-batch operators. DataFusion plans and optimizes the query
//! once (type coercion, constant folding, function resolution); the stateless part is then
//! compiled into physical expressions that run on every changelog batch, carrying the row kinds
//! through and applying the changelog rules for filters. `UNION ALL` makes one branch per
//! `SELECT`; each branch reads one input table and the branches' results are merged in arrival
//! order. Stateful operators (GROUP BY with retractions, joins) are not built yet: such queries
//! are rejected at planning with a clear error.

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
    /// The same columns under the schema of the `UNION ALL` the branch feeds (its first branch's
    /// names, nullable where any branch is).
    Rename(SchemaRef),
}

/// One `SELECT … FROM table` of a query: the steps that turn a batch of the table into rows of the
/// query's result. A query without `UNION ALL` has one branch; each branch of a union has one.
#[derive(Debug)]
struct Branch {
    /// Index into [`CompiledQuery::inputs`].
    input: usize,
    steps: Vec<Step>,
    /// `LIMIT n` inside this branch of a union: the branch is done after n rows.
    limit: Option<usize>,
}

/// A query over changelog tables, compiled to run batch by batch: each input table's batches go
/// through the branches that read it; what they give is the query's result, in arrival order.
#[derive(Debug)]
pub struct CompiledQuery {
    /// The tables the query reads, each once, in the order the query names them. A table read by
    /// several branches of a `UNION ALL` is still one input (one source, one position).
    pub inputs: Vec<String>,
    branches: Vec<Branch>,
    /// Schema of the batches [`CompiledQuery::apply`] returns.
    pub output_schema: SchemaRef,
    /// `LIMIT n` over the whole result: the query is done after n rows.
    pub limit: Option<usize>,
    /// What each input's retractions carry, which filters must respect.
    retractions: Vec<Retractions>,
}

/// How many more rows each limited branch of a query may give, and the query as a whole; kept
/// by whoever runs the query.
#[derive(Debug, Clone)]
pub struct Limits {
    branches: Vec<Option<usize>>,
    total: Option<usize>,
}

impl Limits {
    /// Nothing more can come out: the query's limit, or every branch's, is reached.
    pub fn exhausted(&self) -> bool {
        self.total == Some(0) || self.branches.iter().all(|b| *b == Some(0))
    }
}

impl CompiledQuery {
    /// Compiles an optimized logical plan. Fails for plans that read no table or need state.
    pub fn compile(state: &SessionState, plan: &LogicalPlan) -> Result<Self> {
        let mut limit = None;
        let mut inputs = Vec::new();
        let branches = compile_node(state, plan, &mut inputs, &mut limit)?;
        let retractions = vec![Retractions::WholeRows; inputs.len()];
        Ok(CompiledQuery {
            inputs,
            branches,
            output_schema: Arc::new(plan.schema().as_arrow().clone()),
            limit,
            retractions,
        })
    }

    /// Tells the query what an input's retractions carry (whole rows unless told otherwise).
    pub fn set_retractions(&mut self, input: usize, retractions: Retractions) {
        if let Some(r) = self.retractions.get_mut(input) {
            *r = retractions;
        }
    }

    /// Whether any `LIMIT` bounds the query or one of its branches.
    pub fn has_limit(&self) -> bool {
        self.limit.is_some() || self.branches.iter().any(|b| b.limit.is_some())
    }

    /// The limits of a fresh run of the query.
    pub fn limits(&self) -> Limits {
        Limits { branches: self.branches.iter().map(|b| b.limit).collect(), total: self.limit }
    }

    /// Whether an input can still contribute rows under `limits`.
    pub fn input_wanted(&self, input: usize, limits: &Limits) -> bool {
        limits.total != Some(0)
            && self.branches.iter().zip(&limits.branches).any(|(b, l)| b.input == input && *l != Some(0))
    }

    /// Runs the query on one batch of input `input`, within `limits` (which it counts down).
    pub fn apply(&self, input: usize, batch: &ChangeBatch, limits: &mut Limits) -> Result<ChangeBatch> {
        let retractions = self.retractions.get(input).copied().unwrap_or(Retractions::WholeRows);
        let mut parts = Vec::new();
        for (branch, left) in self.branches.iter().zip(limits.branches.iter_mut()) {
            if branch.input != input || *left == Some(0) || limits.total == Some(0) {
                continue;
            }
            let mut out = run_steps(&branch.steps, batch, retractions)?;
            for limit in [left, &mut limits.total] {
                if let Some(n) = limit.as_mut() {
                    out = out.head(*n);
                    *n = n.saturating_sub(out.num_rows());
                }
            }
            if !out.is_empty() {
                parts.push(out);
            }
        }
        match parts.len() {
            0 => Ok(ChangeBatch::inserts(RecordBatch::new_empty(self.output_schema.clone()))),
            1 => Ok(parts.remove(0)),
            _ => ChangeBatch::concat(&self.output_schema, &parts),
        }
    }
}

fn run_steps(steps: &[Step], batch: &ChangeBatch, retractions: Retractions) -> Result<ChangeBatch> {
    let mut current = batch.clone();
    for step in steps {
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
                filter_changes(&current, passes, retractions)?
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
            Step::Rename(schema) => {
                let options = RecordBatchOptions::new().with_row_count(Some(current.num_rows()));
                let columns = current.rows().columns().to_vec();
                current.with_rows(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)?
            }
        };
    }
    Ok(current)
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

/// The branches of `plan`; `limit` collects a limit over all of them.
fn compile_node(
    state: &SessionState,
    plan: &LogicalPlan,
    inputs: &mut Vec<String>,
    limit: &mut Option<usize>,
) -> Result<Vec<Branch>> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if !scan.filters.is_empty() {
                return Err(Error::internal("filters were pushed into a changelog table scan"));
            }
            let table = scan.table_name.table().to_string();
            let input = match inputs.iter().position(|t| *t == table) {
                Some(i) => i,
                None => {
                    inputs.push(table);
                    inputs.len() - 1
                }
            };
            let steps = scan.projection.iter().map(|p| Step::Select(p.clone())).collect();
            if let Some(fetch) = scan.fetch {
                *limit = Some(limit.map_or(fetch, |l| l.min(fetch)));
            }
            Ok(vec![Branch { input, steps, limit: None }])
        }
        LogicalPlan::Filter(filter) => {
            let mut branches = compile_node(state, &filter.input, inputs, limit)?;
            let predicate = state.create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
            for branch in &mut branches {
                branch.steps.push(Step::Filter(predicate.clone()));
            }
            Ok(branches)
        }
        LogicalPlan::Projection(projection) => {
            let mut branches = compile_node(state, &projection.input, inputs, limit)?;
            let exprs = projection
                .expr
                .iter()
                .map(|e| state.create_physical_expr(e.clone(), projection.input.schema()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let schema = Arc::new(projection.schema.as_arrow().clone());
            for branch in &mut branches {
                branch.steps.push(Step::Project(exprs.clone(), schema.clone()));
            }
            Ok(branches)
        }
        LogicalPlan::SubqueryAlias(alias) => compile_node(state, &alias.input, inputs, limit),
        LogicalPlan::Limit(l) => {
            if !matches!(l.get_skip_type()?, SkipType::Literal(0)) {
                return Err(Error::user("OFFSET is not supported on a changelog stream"));
            }
            let branches = compile_node(state, &l.input, inputs, limit)?;
            if let FetchType::Literal(Some(fetch)) = l.get_fetch_type()? {
                *limit = Some(limit.map_or(fetch, |x| x.min(fetch)));
            }
            Ok(branches)
        }
        LogicalPlan::Union(union) => {
            let schema = Arc::new(union.schema.as_arrow().clone());
            let mut branches = Vec::new();
            for child in &union.inputs {
                // A limit inside one branch bounds that branch only.
                let mut branch_limit = None;
                let mut children = compile_node(state, child, inputs, &mut branch_limit)?;
                if children.len() > 1 && branch_limit.is_some() {
                    // It would bound each inner branch on its own, not the inner union's rows.
                    return Err(Error::user(
                        "a LIMIT over a UNION ALL that is itself one branch of a UNION ALL is not supported; \
                         put the LIMIT over the whole query or inside single SELECTs",
                    ));
                }
                let child_schema = child.schema().as_arrow();
                let same_types = child_schema.fields().len() == schema.fields().len()
                    && child_schema.fields().iter().zip(schema.fields()).all(|(a, b)| same_type(a.data_type(), b.data_type()));
                if !same_types {
                    return Err(Error::internal(format!(
                        "a UNION ALL branch gives {child_schema:?} where the union has {schema:?}"
                    )));
                }
                for branch in &mut children {
                    branch.steps.push(Step::Rename(schema.clone()));
                    branch.limit = match (branch.limit, branch_limit) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                branches.extend(children);
            }
            Ok(branches)
        }
        // The optimizer plans `SELECT DISTINCT` and `UNION` (without ALL) as a grouping with no
        // aggregate function.
        LogicalPlan::Aggregate(aggregate) if aggregate.aggr_expr.is_empty() => {
            let what = match aggregate.input.as_ref() {
                LogicalPlan::Union(_) => "UNION without ALL removes duplicates, which needs state; UNION ALL is supported",
                _ => "SELECT DISTINCT is not supported on a changelog stream yet",
            };
            Err(Error::user(what))
        }
        LogicalPlan::Aggregate(_) => Err(Error::user(
            "GROUP BY and aggregate functions over a changelog are not supported yet: cdc-sql runs stateless \
             queries (projection, WHERE, CAST, CASE, scalar functions, UNION ALL)",
        )),
        LogicalPlan::Join(_) => Err(Error::user("joins are not supported yet: an INSERT reads its tables through UNION ALL only")),
        LogicalPlan::Sort(_) => Err(Error::user("ORDER BY is not supported on a changelog stream")),
        LogicalPlan::Distinct(_) => Err(Error::user(
            "SELECT DISTINCT (and UNION without ALL, which removes duplicates) is not supported on a changelog stream yet; \
             UNION ALL is",
        )),
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
