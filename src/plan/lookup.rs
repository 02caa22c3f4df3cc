//! A join whose right side is a table's lookup side (`JOIN dim FOR SYSTEM_TIME AS OF s.proc ON
//! s.k = dim.id`), planned into a [`LookupSpec`]: the equi-join keys split into the other side's
//! values and the looked-up table's columns (the lookup key), the steps the optimizer put over the
//! looked-up table (columns picked, filters) to run on the rows found, and the residual predicate
//! over the pairs. As in Flink, only `INNER` and `LEFT` joins, with the looked-up table on the
//! right, and every condition on the looked-up table's key must be an equality.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::catalog::TableProvider;
use datafusion::common::{JoinType, NullEquality};
use datafusion::datasource::DefaultTableSource;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Join as LogicalJoin, LogicalPlan};

use super::table::ChangelogTableProvider;
use super::{column_of, refuse_sub_query, RowSteps, Step};
use crate::connectors::lookup::{MissingKey, MISSING_KEY};
use crate::error::{Error, Result};
use crate::operators::{LookupCounters, LookupSpec};

/// The lookup side a plan reads, when it is one (perhaps under an alias, a projection or filters).
pub fn lookup_side(plan: &LogicalPlan) -> Option<&ChangelogTableProvider> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => lookup_side(&a.input),
        LogicalPlan::Projection(p) => lookup_side(&p.input),
        LogicalPlan::Filter(f) => lookup_side(&f.input),
        LogicalPlan::TableScan(scan) => scan
            .source
            .as_ref()
            .downcast_ref::<DefaultTableSource>()
            .and_then(|s| s.table_provider.as_ref().downcast_ref::<ChangelogTableProvider>())
            .filter(|t| t.lookup().is_some()),
        _ => None,
    }
}

/// Plans `join`, whose right side reads `provider`, over a left side with the unique keys
/// `left_keys`.
pub fn compile(
    state: &SessionState,
    join: &LogicalJoin,
    provider: &ChangelogTableProvider,
    left_keys: &[Vec<usize>],
) -> Result<LookupSpec> {
    let table = provider.name();
    let lookup = provider.lookup().ok_or_else(|| Error::internal(format!("`{table}` is no lookup side")))?;
    let outer = match join.join_type {
        JoinType::Inner => false,
        JoinType::Left => true,
        other => {
            return Err(Error::user(format!(
                "a lookup join (FOR SYSTEM_TIME AS OF) of `{table}` is an INNER JOIN or a LEFT JOIN with the looked-up \
                 table on the right, as in Flink; this one is a {other} join"
            )))
        }
    };
    if outer && lookup.options.missing_key == MissingKey::Error {
        return Err(Error::user(format!(
            "'{MISSING_KEY}' = 'error' of `{table}` is for INNER lookup joins: this LEFT JOIN keeps a change whose key \
             `{table}` lacks, with NULLs for its columns. Use JOIN to make a missing key an error, or remove the option"
        )));
    }
    if join.null_equality == NullEquality::NullEqualsNull {
        return Err(Error::user(format!(
            "a lookup join of `{table}` cannot match NULL keys (IS NOT DISTINCT FROM): a database lookup never finds \
             NULL; compare with =",
        )));
    }
    let mut steps = Vec::new();
    let columns = right_steps(state, &join.right, &mut steps, table)?;
    let [left_schema, right_schema] = [join.left.schema(), join.right.schema()];
    let mut left = Vec::new();
    let mut right = Vec::new();
    let mut key_columns = Vec::new();
    for (l, r) in &join.on {
        let column = column_of(r, right_schema)
            .and_then(|c| right_schema.index_of_column(c).ok())
            .and_then(|i| columns[i])
            .ok_or_else(|| {
                Error::user(format!(
                    "the ON condition of the lookup join of `{table}` compares {r} with {l}: a lookup finds rows by \
                     columns of `{table}` as they are (ON s.k = {table}.id); compute on the other side instead"
                ))
            })?;
        left.push(state.create_physical_expr(l.clone(), left_schema)?);
        right.push(state.create_physical_expr(r.clone(), right_schema)?);
        key_columns.push(column);
    }
    if key_columns.is_empty() {
        return Err(Error::user(format!(
            "the lookup join of `{table}` needs an equality between a column of `{table}` and a value of the table \
             joined from in its ON condition (ON s.k = {table}.id), as in Flink"
        )));
    }
    let pair = left_schema.join(right_schema)?;
    let filter = join.filter.as_ref().map(|f| state.create_physical_expr(f.clone(), &pair)).transpose()?;
    // Each row meets at most one row of the table when the lookup key holds its PRIMARY KEY.
    let unique = provider.primary_key().is_some_and(|pk| pk.iter().all(|c| key_columns.contains(c)));
    let table_schema = provider.schema();
    let key_fields: Vec<Field> = key_columns.iter().map(|c| table_schema.field(*c).clone()).collect();
    Ok(LookupSpec {
        table: table.to_string(),
        lookup: lookup.clone(),
        left_keys: left,
        key_columns,
        key_fields,
        right: RowSteps::new(steps, Arc::new(right_schema.as_arrow().clone())),
        right_keys: right,
        filter,
        outer,
        left_schema: Arc::new(left_schema.as_arrow().clone()),
        output_schema: Arc::new(join.schema.as_arrow().clone()),
        unique_keys: if unique { left_keys.to_vec() } else { Vec::new() },
        counters: Arc::new(LookupCounters::new(table)),
    })
}

/// The steps over the looked-up table's rows that give the join's right side, added to `steps`;
/// for each column of the right side, the table's column it is, if it is one as it is.
fn right_steps(
    state: &SessionState,
    plan: &LogicalPlan,
    steps: &mut Vec<Step>,
    table: &str,
) -> Result<Vec<Option<usize>>> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => right_steps(state, &a.input, steps, table),
        LogicalPlan::TableScan(scan) => {
            if !scan.filters.is_empty() {
                return Err(Error::internal("filters were pushed into a lookup table scan"));
            }
            if scan.fetch.is_some() {
                return Err(Error::user(format!("a LIMIT on the looked-up table `{table}` is not supported")));
            }
            Ok(match &scan.projection {
                Some(p) => {
                    steps.push(Step::Select(p.clone()));
                    p.iter().map(|c| Some(*c)).collect()
                }
                None => (0..scan.source.schema().fields().len()).map(Some).collect(),
            })
        }
        LogicalPlan::Filter(f) => {
            let columns = right_steps(state, &f.input, steps, table)?;
            refuse_sub_query(&f.predicate)?;
            steps.push(Step::Filter(state.create_physical_expr(f.predicate.clone(), f.input.schema())?));
            Ok(columns)
        }
        LogicalPlan::Projection(p) => {
            let columns = right_steps(state, &p.input, steps, table)?;
            p.expr.iter().try_for_each(refuse_sub_query)?;
            let exprs = p
                .expr
                .iter()
                .map(|e| state.create_physical_expr(e.clone(), p.input.schema()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            steps.push(Step::Project(exprs, Arc::new(p.schema.as_arrow().clone())));
            let input = p.input.schema();
            Ok(p.expr
                .iter()
                .map(|e| column_of(e, input).and_then(|c| input.index_of_column(c).ok()).and_then(|i| columns[i]))
                .collect())
        }
        other => Err(Error::user(format!(
            "the looked-up side of a lookup join must be the table `{table}` itself (its columns, filtered), not {}",
            other.display()
        ))),
    }
}
