//! A logical `Join` planned into a [`JoinSpec`]: its equi-join keys compiled against each side,
//! its residual predicate against the pair, and the unique keys of its result derived from its
//! inputs' as Flink derives them (`FlinkRelMdUniqueKeys`). Inner and outer joins, and the semi
//! and anti joins DataFusion makes of `EXISTS`, `IN (sub-query)` and `NOT EXISTS`; `NOT IN
//! (sub-query)`, whose NULL rules need more than an anti join, and sub-queries under `OR` are
//! refused.

use std::sync::Arc;

use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{DFSchema, JoinType, NullEquality};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{ExprSchemable, Join as LogicalJoin};

use super::column_of;
use crate::error::{Error, Result};
use crate::operators::{JoinKind, JoinParts, JoinSpec};
use crate::sql::types::flink_type_name;

/// What the join gives. Fails for the joins that are not built.
pub fn kind(join: &LogicalJoin) -> Result<JoinKind> {
    Ok(match join.join_type {
        JoinType::Inner => JoinKind::Pairs { outer: [false, false] },
        JoinType::Left => JoinKind::Pairs { outer: [true, false] },
        JoinType::Right => JoinKind::Pairs { outer: [false, true] },
        JoinType::Full => JoinKind::Pairs { outer: [true, true] },
        JoinType::LeftSemi => JoinKind::Filter { side: 0, anti: false },
        JoinType::RightSemi => JoinKind::Filter { side: 1, anti: false },
        JoinType::LeftAnti | JoinType::RightAnti if join.null_aware => {
            return Err(Error::user(
                "NOT IN (sub-query) is not supported on a changelog stream: one NULL in the sub-query's result would \
                 empty the whole result, and bring it back when that row goes; write NOT EXISTS (SELECT … WHERE \
                 <column> = <value>), which treats NULLs as not matching",
            ))
        }
        JoinType::LeftAnti => JoinKind::Filter { side: 0, anti: true },
        JoinType::RightAnti => JoinKind::Filter { side: 1, anti: true },
        JoinType::LeftMark | JoinType::RightMark => {
            return Err(Error::user(
                "EXISTS or IN (sub-query) combined with OR (or under NOT other than NOT EXISTS) is not supported on a \
                 changelog stream; use it as a condition of its own in the WHERE clause (… AND EXISTS (…))",
            ))
        }
    })
}

/// Plans `join`, which gives what `kind` says, over sides with the unique keys `input_keys`.
pub fn compile(
    state: &SessionState,
    join: &LogicalJoin,
    kind: JoinKind,
    input_keys: [&[Vec<usize>]; 2],
) -> Result<JoinSpec> {
    let schemas: [&DFSchema; 2] = [join.left.schema(), join.right.schema()];
    for schema in schemas {
        for field in schema.fields() {
            if !RowConverter::supports_fields(&[SortField::new(field.data_type().clone())]) {
                return Err(Error::user(format!(
                    "a JOIN cannot keep column `{}` of type {} in its state",
                    field.name(),
                    flink_type_name(field.data_type())
                )));
            }
        }
    }
    let mut keys = [Vec::new(), Vec::new()];
    let mut key_types = Vec::with_capacity(join.on.len());
    // The columns each side's equi-keys are (a key may also be computed: `ON a.x + 1 = b.y`).
    let mut key_columns = [Vec::new(), Vec::new()];
    for (left, right) in &join.on {
        let types = [left.get_type(schemas[0])?, right.get_type(schemas[1])?];
        if !types[0].equals_datatype(&types[1]) {
            return Err(Error::internal(format!(
                "join keys {left} and {right} were planned with types {} and {}",
                types[0], types[1]
            )));
        }
        for (side, e) in [left, right].into_iter().enumerate() {
            keys[side].push(state.create_physical_expr(e.clone(), schemas[side])?);
            if let Some(c) = column_of(e, schemas[side]).and_then(|c| schemas[side].index_of_column(c).ok()) {
                key_columns[side].push(c);
            }
        }
        key_types.push(types[0].clone());
    }
    // Over a pair's columns, which a semi or anti join's output does not have.
    let pair = schemas[0].join(schemas[1])?;
    let filter = join.filter.as_ref().map(|f| state.create_physical_expr(f.clone(), &pair)).transpose()?;
    let [left_keys, right_keys] = keys;
    let left_width = schemas[0].fields().len();
    JoinSpec::new(JoinParts {
        left_keys,
        right_keys,
        key_types,
        nulls_match: join.null_equality == NullEquality::NullEqualsNull,
        filter,
        kind,
        left: Arc::new(schemas[0].as_arrow().clone()),
        right: Arc::new(schemas[1].as_arrow().clone()),
        output_schema: Arc::new(join.schema.as_arrow().clone()),
        unique_keys: match kind {
            JoinKind::Pairs { outer } => unique_keys(outer, input_keys, &key_columns, left_width),
            // Some of the side's rows, as they are.
            JoinKind::Filter { side, .. } => input_keys[side].to_vec(),
        },
    })
}

/// The unique keys of a join's pairs (columns of the left side, then of the right), as Flink's
/// `FlinkRelMdUniqueKeys` gives them: a unique key of the left side together with one of the
/// right is one of the result; and when a side's equi-key columns hold one of its unique keys,
/// each row of the other side meets at most one of its rows, so a unique key of the other side
/// alone is a key of the result — unless the first side is outer, whose padded rows would all
/// share NULLs there.
fn unique_keys(
    outer: [bool; 2],
    input_keys: [&[Vec<usize>]; 2],
    key_columns: &[Vec<usize>; 2],
    left_width: usize,
) -> Vec<Vec<usize>> {
    let shift = |side: usize, key: &[usize]| key.iter().map(|c| c + side * left_width).collect::<Vec<_>>();
    let mut keys = Vec::new();
    for left in input_keys[0] {
        for right in input_keys[1] {
            keys.push([left.clone(), shift(1, right)].concat());
        }
    }
    for side in [0, 1] {
        let other = 1 - side;
        let other_unique = input_keys[other].iter().any(|k| k.iter().all(|c| key_columns[other].contains(c)));
        if other_unique && !outer[other] {
            keys.extend(input_keys[side].iter().map(|k| shift(side, k)));
        }
    }
    for key in &mut keys {
        key.sort_unstable();
        key.dedup();
    }
    keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::unique_keys;

    const INNER: [bool; 2] = [false, false];
    const LEFT: [bool; 2] = [true, false];
    const RIGHT: [bool; 2] = [false, true];

    #[test]
    fn looking_up_the_other_sides_key_keeps_this_sides_key_unless_that_side_is_outer() {
        // orders (id, customer) ⋈ customers (id, name) ON orders.customer = customers.id.
        let orders = vec![vec![0]];
        let customers = vec![vec![0]];
        let on = [vec![1], vec![0]];
        assert_eq!(unique_keys(LEFT, [&orders, &customers], &on, 2), vec![vec![0], vec![0, 2]]);
        assert_eq!(unique_keys(INNER, [&orders, &customers], &on, 2), vec![vec![0], vec![0, 2]]);
        // A RIGHT JOIN pads customers without orders: NULL order ids, many of them.
        assert_eq!(unique_keys(RIGHT, [&orders, &customers], &on, 2), vec![vec![0, 2]]);
        // Without a key on one side there is none.
        assert!(unique_keys(INNER, [&orders, &[]], &on, 2).is_empty());
    }

    #[test]
    fn a_one_to_one_inner_join_is_keyed_by_either_side() {
        let keys = vec![vec![0]];
        assert_eq!(unique_keys(INNER, [&keys, &keys], &[vec![0], vec![0]], 3), vec![vec![0], vec![3], vec![0, 3]]);
    }
}
