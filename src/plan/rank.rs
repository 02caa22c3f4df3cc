//! Flink's deduplication and Top-N pattern planned into a [`RankSpec`]: a filter that bounds the
//! number of a `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` from above — `rn = 1`, `rn <= N`,
//! `rn < N`, `rn BETWEEN 1 AND N`, with other conditions joined by `AND` — over the window,
//! directly or through projections (as DataFusion's optimizer leaves them). The other conditions
//! apply to the ranked rows, as in Flink. Every other use of an OVER window is refused, naming the
//! function (RANK, DENSE_RANK, LAG, LEAD, aggregates OVER …), and so are ROW_NUMBER without such a
//! filter (numbering every row would renumber unboundedly many rows on each change) and numbers
//! bounded from below (`rn > 1`).

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, Operator, Window};

use super::{is_column, projected_position};
use crate::error::{Error, Result};
use crate::operators::RankSpec;

/// The form a query must have, for messages.
const PATTERN: &str = "SELECT … FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM t) \
                       WHERE rn <= N (rn = 1 keeps one row per key)";

/// A filter over a `ROW_NUMBER()` window that keeps the first rows of each partition.
pub struct TopN<'a> {
    pub filter: &'a Filter,
    /// The projections and aliases between the filter and the window, from the filter down.
    pub between: Vec<&'a LogicalPlan>,
    pub window: &'a Window,
    /// Where the row number is among the filter's input columns.
    number: usize,
    /// The largest number kept.
    limit: usize,
    /// The filter's conditions other than the bounds of the number.
    pub rest: Option<Expr>,
}

impl TopN<'_> {
    /// Whether `e`, over the filter's result, reads the row number.
    pub fn reads_number(&self, e: &Expr) -> bool {
        e.column_refs().iter().any(|c| is_column(c, self.filter.input.schema(), self.number))
    }

    /// The spec of the operator; `numbered` when the query's result shows the row number.
    pub fn compile(&self, state: &SessionState, numbered: bool) -> Result<RankSpec> {
        let function = row_number(self.window)
            .ok_or_else(|| Error::internal("a Top-N planned over a window without ROW_NUMBER()"))?;
        let params = &function.params;
        if params.order_by.is_empty() {
            return Err(Error::user(format!(
                "ROW_NUMBER() OVER (…) needs an ORDER BY saying which rows come first, e.g. ORDER BY ts DESC to keep \
                 the latest: {PATTERN}"
            )));
        }
        let input = self.window.input.schema();
        let partition = params
            .partition_by
            .iter()
            .map(|e| state.create_physical_expr(e.clone(), input))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let order = params
            .order_by
            .iter()
            .map(|s| {
                let options = SortOptions { descending: !s.asc, nulls_first: s.nulls_first };
                Ok((state.create_physical_expr(s.expr.clone(), input)?, options))
            })
            .collect::<Result<Vec<_>>>()?;
        RankSpec::new(
            partition,
            order,
            self.limit,
            numbered,
            Arc::new(input.as_arrow().clone()),
            Arc::new(self.window.schema.as_arrow().clone()),
        )
    }
}

/// The Top-N `filter` is the top of, if it bounds the number of a `ROW_NUMBER()` window under
/// it; an error when it conditions the number in a way that is not a Top-N.
pub fn recognise(filter: &Filter) -> Result<Option<TopN<'_>>> {
    let mut between = Vec::new();
    let mut plan = filter.input.as_ref();
    let window = loop {
        match plan {
            LogicalPlan::Projection(p) => {
                between.push(plan);
                plan = &p.input;
            }
            LogicalPlan::SubqueryAlias(a) => {
                between.push(plan);
                plan = &a.input;
            }
            LogicalPlan::Window(w) if row_number(w).is_some() => break w,
            _ => return Ok(None),
        }
    };
    // The number is the window's last column; follow it up to the filter.
    let mut number = window.input.schema().fields().len();
    for plan in between.iter().rev() {
        if let LogicalPlan::Projection(p) = plan {
            match projected_position(&p.expr, p.input.schema(), number) {
                Some(position) => number = position,
                None => return Ok(None),
            }
        }
    }
    let schema = filter.input.schema();
    let (mut lower, mut upper) = (1i128, None::<i128>);
    let mut rest = Vec::new();
    let mut bounded = false;
    for conjunct in split_conjunction(&filter.predicate) {
        if !conjunct.column_refs().iter().any(|c| is_column(c, schema, number)) {
            rest.push(conjunct.clone());
            continue;
        }
        let Some((low, high)) = bounds(conjunct, schema, number) else {
            return Err(Error::user(format!(
                "the condition `{conjunct}` on a ROW_NUMBER() is not supported: of the conditions on the row number \
                 only bounds joined by AND (rn = 1, rn <= N, rn < N, rn BETWEEN 1 AND N) are, as in Flink's Top-N: \
                 {PATTERN}"
            )));
        };
        bounded = true;
        lower = lower.max(low.unwrap_or(1));
        upper = match (upper, high) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if !bounded {
        return Ok(None);
    }
    let Some(upper) = upper else {
        return Err(Error::user(format!(
            "a ROW_NUMBER() must be bounded from above to keep the first rows of each partition: {PATTERN}"
        )));
    };
    if lower > 1 {
        return Err(Error::user(format!(
            "keeping the rows numbered {lower} to {upper} is not supported: a Top-N here keeps rows from number 1 \
             on ({PATTERN})"
        )));
    }
    if upper < 1 {
        return Err(Error::user(format!(
            "the condition on the ROW_NUMBER() keeps no row (the numbers start at 1): {PATTERN}"
        )));
    }
    let limit = usize::try_from(upper).map_err(|_| Error::user(format!("a Top-N of {upper} rows is too large")))?;
    Ok(Some(TopN { filter, between, window, number, limit, rest: conjunction(rest) }))
}

/// The error for a window that is not the window of a Top-N, naming its function.
pub fn refusal(window: &Window) -> Error {
    for e in &window.window_expr {
        if let Expr::WindowFunction(f) = unaliased(e) {
            if f.fun.name() != "row_number" {
                return Error::user(format!(
                    "{}(…) OVER (…) is not supported on a changelog stream; of the OVER windows only ROW_NUMBER() \
                     in Flink's deduplication and Top-N pattern is: {PATTERN}",
                    f.fun.name().to_uppercase()
                ));
            }
        }
    }
    Error::user(format!(
        "ROW_NUMBER() OVER (…) is supported only in Flink's deduplication and Top-N pattern, {PATTERN}: numbering \
         every row would renumber unboundedly many rows on each change"
    ))
}

/// The window's function when it is a lone `ROW_NUMBER()`.
fn row_number(window: &Window) -> Option<&WindowFunction> {
    match window.window_expr.as_slice() {
        [e] => match unaliased(e) {
            Expr::WindowFunction(f) if f.fun.name() == "row_number" => Some(f),
            _ => None,
        },
        _ => None,
    }
}

fn unaliased(mut e: &Expr) -> &Expr {
    while let Expr::Alias(a) = e {
        e = &a.expr;
    }
    e
}

/// The lowest and highest number `e` keeps, when it compares the number with an integer (`=`, `<=`,
/// `<`, `>=`, `>`, the number on either side).
fn bounds(e: &Expr, schema: &DFSchema, number: usize) -> Option<(Option<i128>, Option<i128>)> {
    let Expr::BinaryExpr(b) = e else { return None };
    let is_number = |e: &Expr| {
        let mut e = e;
        loop {
            match e {
                Expr::Cast(c) => e = &c.expr,
                Expr::TryCast(c) => e = &c.expr,
                Expr::Column(c) => return is_column(c, schema, number),
                _ => return false,
            }
        }
    };
    // As the comparison reads with the number on the left.
    let (op, value) = if is_number(&b.left) {
        (b.op, integer(&b.right)?)
    } else if is_number(&b.right) {
        (b.op.swap()?, integer(&b.left)?)
    } else {
        return None;
    };
    Some(match op {
        Operator::Eq => (Some(value), Some(value)),
        Operator::LtEq => (None, Some(value)),
        Operator::Lt => (None, Some(value - 1)),
        Operator::GtEq => (Some(value), None),
        Operator::Gt => (Some(value + 1), None),
        _ => return None,
    })
}

/// An integer literal's value.
fn integer(e: &Expr) -> Option<i128> {
    let Expr::Literal(value, _) = e else { return None };
    Some(match value {
        ScalarValue::Int8(Some(v)) => *v as i128,
        ScalarValue::Int16(Some(v)) => *v as i128,
        ScalarValue::Int32(Some(v)) => *v as i128,
        ScalarValue::Int64(Some(v)) => *v as i128,
        ScalarValue::UInt8(Some(v)) => *v as i128,
        ScalarValue::UInt16(Some(v)) => *v as i128,
        ScalarValue::UInt32(Some(v)) => *v as i128,
        ScalarValue::UInt64(Some(v)) => *v as i128,
        _ => return None,
    })
}
