//! Flink's ARRAY and MAP functions where DataFusion's differ: argument order (ARRAY_PREPEND),
//! what "not found" gives (ARRAY_POSITION: 0, not NULL), NULL elements (ARRAY_CONTAINS finds
//! them), ARRAY_REMOVE removing every match, ELEMENT; and Flink's names for DataFusion's own
//! functions (CEILING, MAP_FROM_ARRAYS).

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int32Builder, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::kernels::cmp::not_distinct;
use datafusion::arrow::compute::{concat, interleave};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::func::{Call, Func, Returns};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    let user = || Signature::user_defined(Volatility::Immutable);
    vec![
        Func::new("element", user(), Returns::With(element_type), element).coerce(one_list).udf(),
        Func::new("array_contains", user(), Returns::Fixed(DataType::Boolean), array_contains)
            .coerce(list_and_element)
            .udf(),
        Func::new("array_position", user(), Returns::Fixed(DataType::Int32), array_position)
            .coerce(list_and_element)
            .udf(),
        Func::new("array_prepend", user(), Returns::Arg(0), array_prepend).coerce(list_and_element).udf(),
        ScalarUDF::new_from_impl(Renamed {
            name: "array_remove",
            inner: datafusion::functions_nested::remove::array_remove_all_udf(),
        }),
        (*datafusion::functions::math::ceil()).clone().with_aliases(["ceiling"]),
        (*datafusion::functions_nested::map::map_udf()).clone().with_aliases(["map_from_arrays"]),
    ]
}

fn element_of(t: &DataType) -> Option<&FieldRef> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => Some(f),
        _ => None,
    }
}

fn one_list(types: &[DataType]) -> Result<Vec<DataType>> {
    match types {
        [t] if element_of(t).is_some() => Ok(vec![list_of(t)]),
        _ => plan_err!("expects one ARRAY argument, got {types:?}"),
    }
}

/// Any list as a `List` (what the row loops read).
fn list_of(t: &DataType) -> DataType {
    match element_of(t) {
        Some(f) => DataType::List(Arc::clone(f)),
        None => t.clone(),
    }
}

/// `(array, element)`: the element is cast to the array's element type, as in Flink.
fn list_and_element(types: &[DataType]) -> Result<Vec<DataType>> {
    match types {
        [t, _] => match element_of(t) {
            Some(f) => Ok(vec![list_of(t), f.data_type().clone()]),
            None => plan_err!("expects an ARRAY and an element, got {t} first"),
        },
        _ => plan_err!("expects an ARRAY and an element, got {} arguments", types.len()),
    }
}

fn element_type(types: &[DataType]) -> Result<DataType> {
    match types.first().and_then(element_of) {
        Some(f) => Ok(f.data_type().clone()),
        None => plan_err!("ELEMENT expects an ARRAY"),
    }
}

/// ELEMENT(array): the only element; NULL for an empty array; more than one is an error.
fn element(call: &Call) -> Result<ArrayRef> {
    let lists = call.array(0)?;
    let lists = lists.as_list::<i32>();
    let values = lists.values();
    let nulls = new_null_array(values.data_type(), 1);
    let mut picks = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let (start, end) = (lists.value_offsets()[row] as usize, lists.value_offsets()[row + 1] as usize);
        picks.push(match (lists.is_valid(row), end - start) {
            (true, 1) => (0, start),
            (true, 0) | (false, _) => (1, 0),
            (true, n) => return Err(call.error(format!("the array has {n} elements; ELEMENT needs at most one"))),
        });
    }
    Ok(interleave(&[values.as_ref(), nulls.as_ref()], &picks)?)
}

/// For each row, which elements equal the needle (NULL equals NULL here).
fn matches(call: &Call) -> Result<(ListArray, ArrayRef, Vec<Option<BooleanArray>>)> {
    let lists = call.array(0)?;
    let lists = lists.as_list::<i32>().clone();
    let needles = call.array(1)?;
    let mut out = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        if lists.is_null(row) {
            out.push(None);
            continue;
        }
        let items = lists.value(row);
        let needle = datafusion::arrow::array::Scalar::new(needles.slice(row, 1));
        out.push(Some(not_distinct(&items, &needle)?));
    }
    Ok((lists, needles, out))
}

/// ARRAY_CONTAINS(array, x): NULL only when the array is; finds a NULL element for a NULL x.
fn array_contains(call: &Call) -> Result<ArrayRef> {
    let (_, _, found) = matches(call)?;
    let out: BooleanArray = found.into_iter().map(|m| m.map(|m| m.true_count() > 0)).collect();
    Ok(Arc::new(out))
}

/// ARRAY_POSITION(array, x): 1-based position of the first match, 0 when there is none, NULL
/// when either argument is NULL.
fn array_position(call: &Call) -> Result<ArrayRef> {
    let (_, needles, found) = matches(call)?;
    let mut out = Int32Builder::with_capacity(call.rows);
    for (row, m) in found.into_iter().enumerate() {
        match m {
            Some(m) if needles.is_valid(row) => {
                let pos = m.iter().position(|b| b == Some(true)).map_or(0, |p| p + 1);
                out.append_value(i32::try_from(pos).unwrap_or(i32::MAX));
            }
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// ARRAY_PREPEND(array, x): x first (DataFusion's `array_prepend` takes the element first).
fn array_prepend(call: &Call) -> Result<ArrayRef> {
    let lists = call.array(0)?;
    let lists = lists.as_list::<i32>();
    let needles = call.array(1)?;
    let field = match call.return_type {
        DataType::List(f) => Arc::clone(f),
        other => return Err(call.error(format!("unexpected result type {other}"))),
    };
    let mut pieces: Vec<ArrayRef> = Vec::with_capacity(call.rows * 2);
    let mut lengths = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        if lists.is_null(row) {
            lengths.push(0);
            continue;
        }
        let items = lists.value(row);
        lengths.push(items.len() + 1);
        pieces.push(needles.slice(row, 1));
        pieces.push(items);
    }
    let refs: Vec<&dyn Array> = pieces.iter().map(|a| a.as_ref()).collect();
    let values = if refs.is_empty() { new_null_array(field.data_type(), 0) } else { concat(&refs)? };
    let list = ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), values, lists.nulls().cloned())?;
    Ok(Arc::new(list))
}

/// A DataFusion function under Flink's name for it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Renamed {
    name: &'static str,
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for Renamed {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }
}
