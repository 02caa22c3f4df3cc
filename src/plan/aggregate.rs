//! A logical `Aggregate` (GROUP BY, `SELECT DISTINCT`, `UNION`) planned into an
//! [`AggregateSpec`]: its key and argument expressions compiled against its input, each function
//! checked against what the changelog operator keeps with retractions.

use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Aggregate as LogicalAggregate, Expr, ExprSchemable};

use crate::error::{Error, Result};
use crate::operators::{AggregateCall, AggregateFunction, AggregateSpec};

pub fn compile(state: &SessionState, aggregate: &LogicalAggregate) -> Result<AggregateSpec> {
    let input = aggregate.input.schema();
    let mut group = Vec::with_capacity(aggregate.group_expr.len());
    for e in &aggregate.group_expr {
        if let Expr::GroupingSet(_) = e {
            return Err(Error::user(
                "GROUPING SETS, ROLLUP and CUBE are not supported on a changelog stream yet; use one GROUP BY per \
                 grouping (UNION ALL of them)",
            ));
        }
        group.push(state.create_physical_expr(e.clone(), input)?);
    }
    let schema = aggregate.schema.as_arrow();
    let mut calls = Vec::with_capacity(aggregate.aggr_expr.len());
    for (i, e) in aggregate.aggr_expr.iter().enumerate() {
        let mut e = e;
        while let Expr::Alias(a) = e {
            e = &a.expr;
        }
        let Expr::AggregateFunction(f) = e else {
            return Err(Error::internal(format!("an aggregate expression that is not a function call: {e}")));
        };
        let name = f.func.name();
        let Some(function) = AggregateFunction::from_name(name) else {
            return Err(Error::user(format!(
                "aggregate function {} is not supported over a changelog yet; supported: COUNT, SUM, AVG, MIN, MAX \
                 (each also with DISTINCT and FILTER), FIRST_VALUE, LAST_VALUE, LISTAGG",
                name.to_uppercase()
            )));
        };
        let params = &f.params;
        if !params.order_by.is_empty() {
            return Err(Error::user(format!(
                "{}(… ORDER BY …) is not supported over a changelog",
                name.to_uppercase()
            )));
        }
        if params.null_treatment == Some(datafusion::logical_expr::expr::NullTreatment::RespectNulls) {
            return Err(Error::user(format!(
                "{}(…) RESPECT NULLS is not supported over a changelog: NULL values are skipped, as in Flink",
                function.sql_name()
            )));
        }
        let mut separator = None;
        let argument = match params.args.as_slice() {
            [] => None,
            [arg] => Some((state.create_physical_expr(arg.clone(), input)?, arg.get_type(input)?)),
            [arg, sep] if function == AggregateFunction::ListAgg => {
                let Expr::Literal(value, _) = sep else {
                    return Err(Error::user(format!(
                        "LISTAGG's separator must be a constant string over a changelog, not {sep}"
                    )));
                };
                separator = Some(if value.is_null() { String::new() } else { value.to_string() });
                Some((state.create_physical_expr(arg.clone(), input)?, arg.get_type(input)?))
            }
            _ => {
                return Err(Error::user(format!(
                    "{} with {} arguments is not supported over a changelog",
                    name.to_uppercase(),
                    params.args.len()
                )))
            }
        };
        let filter = params.filter.as_ref().map(|f| state.create_physical_expr((**f).clone(), input)).transpose()?;
        let output = schema.field(group.len() + i).data_type().clone();
        let call = AggregateCall::new(function, argument, params.distinct, filter, output)?;
        calls.push(match separator {
            Some(separator) => call.with_separator(separator),
            None => call,
        });
    }
    AggregateSpec::new(group, calls, std::sync::Arc::new(schema.clone()))
}
