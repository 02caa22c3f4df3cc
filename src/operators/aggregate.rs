//! `GROUP BY` over a changelog, with retractions, as Flink's group aggregate: each group keeps its
//! accumulators and a count of its rows; `+I`/`+U` rows add to their group, `-U`/`-D` rows take
//! away. After each batch every group the batch touched emits what changed about it: `+I new` for
//! a group that appeared, `-U old` / `+U new` for one whose result changed, `-D old` for one whose
//! last row was retracted, nothing for one whose result is the same (Flink's mini-batch
//! behaviour; which intermediate results are seen depends on batch boundaries, the final result
//! does not). A global aggregate (no GROUP BY) is the one group with no key; like Flink's, it gives
//! no row before its first input row and retracts its row when the last input row is retracted.
//! `SELECT DISTINCT` and `UNION` are groupings without aggregate functions.
//!
//! Functions: `COUNT(*)`, `COUNT(x)`, `SUM`, `AVG`, `MIN`, `MAX`, each also `DISTINCT`, and a
//! `FILTER (WHERE …)`; `FIRST_VALUE`, `LAST_VALUE` and `LISTAGG` (with `FILTER`), which keep the
//! group's non-NULL values in arrival order (a retraction takes away the earliest equal value, as
//! Flink's retracting versions do). Result types are DataFusion's (what the planner typed them as): SUM of
//! integers is BIGINT, AVG of integers DOUBLE, AVG of DECIMAL(p, s) DECIMAL(p + 4, s + 4)
//! truncated. MIN and MAX keep every value of the group with its multiplicity, so a retracted
//! extreme gives way to the next one; a DISTINCT aggregate keeps its distinct values likewise.
//! Sums of DOUBLE values drift in the last digits under retractions, as in Flink.
//!
//! State: one row per group (key columns, row count, when it was last touched, accumulators;
//! value multisets as lists), written whole at a checkpoint after any change, not at all
//! otherwise. With a state TTL (Flink's `table.exec.state.ttl`) a group not touched for that long
//! is dropped without a retraction (the sink keeps its last row), and a retraction that finds no
//! row or value to take back is ignored rather than refused, as in Flink: results of groups that
//! expired and came back may be wrong, which is the documented price of a TTL.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, ListArray, RecordBatch,
    RecordBatchOptions, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Fields, Float64Type, Int64Type, Schema, SchemaRef, UInt64Type,
};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::HashMap;
use datafusion::physical_expr::PhysicalExpr;

use super::StatefulNode;
use crate::changelog::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

/// An aggregate function of a GROUP BY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// `FIRST_VALUE(x)`: the earliest non-NULL value still in the group.
    First,
    /// `LAST_VALUE(x)`: the latest non-NULL value still in the group.
    Last,
    /// `LISTAGG(x, sep)` (planned as DataFusion's `string_agg`): the group's non-NULL values in
    /// arrival order, joined.
    ListAgg,
}

impl AggregateFunction {
    /// Whether its result depends on the order values arrived in.
    fn is_ordered(self) -> bool {
        matches!(self, AggregateFunction::First | AggregateFunction::Last | AggregateFunction::ListAgg)
    }

    /// Its name in Flink SQL, for messages.
    pub fn sql_name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "COUNT",
            AggregateFunction::Sum => "SUM",
            AggregateFunction::Avg => "AVG",
            AggregateFunction::Min => "MIN",
            AggregateFunction::Max => "MAX",
            AggregateFunction::First => "FIRST_VALUE",
            AggregateFunction::Last => "LAST_VALUE",
            AggregateFunction::ListAgg => "LISTAGG",
        }
    }

    /// The function DataFusion's planner named `name`, if it is one we keep with retractions.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggregateFunction::Count,
            "sum" => AggregateFunction::Sum,
            "avg" | "mean" => AggregateFunction::Avg,
            "min" => AggregateFunction::Min,
            "max" => AggregateFunction::Max,
            "first_value" => AggregateFunction::First,
            "last_value" => AggregateFunction::Last,
            "string_agg" => AggregateFunction::ListAgg,
            _ => return None,
        })
    }
}

/// One aggregate function call of a GROUP BY, planned.
#[derive(Debug)]
pub struct AggregateCall {
    function: AggregateFunction,
    /// The argument; `None` for `COUNT(*)`.
    argument: Option<Arc<dyn PhysicalExpr>>,
    distinct: bool,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// The result's type, as DataFusion typed it.
    output: DataType,
    /// What the accumulator adds up, and the type the argument is cast to for it.
    sum: SumKind,
    /// The argument's type after that cast: the type of the values MIN/MAX/DISTINCT keep.
    value_type: DataType,
    /// LISTAGG's separator.
    separator: String,
}

/// How a SUM or AVG adds its values up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SumKind {
    /// Not a sum (COUNT, MIN, MAX).
    None,
    /// BIGINT values, exactly (in 128 bits).
    Signed,
    /// BIGINT UNSIGNED values, exactly.
    Unsigned,
    Float,
    /// DECIMAL unscaled values at the argument's scale.
    Decimal {
        scale: i8,
    },
}

impl AggregateCall {
    /// Plans a call; `argument_type` is the argument's type before any cast, `output` the
    /// result type the planner gave the call.
    pub fn new(
        function: AggregateFunction,
        argument: Option<(Arc<dyn PhysicalExpr>, DataType)>,
        distinct: bool,
        filter: Option<Arc<dyn PhysicalExpr>>,
        output: DataType,
    ) -> Result<Self> {
        if distinct && function.is_ordered() {
            return Err(Error::user(format!(
                "{}(DISTINCT …) is not supported over a changelog; deduplicate in a sub-query (SELECT DISTINCT …) first",
                function.sql_name()
            )));
        }
        let unsupported = |what: &str| {
            Error::user(format!("{function:?}({what}) over a changelog is not supported: its result type is {output}"))
        };
        let argument_type = argument.as_ref().map(|(_, t)| t.clone());
        let (sum, value_type) = match (function, &output) {
            (AggregateFunction::Count, _) => (SumKind::None, argument_type.clone().unwrap_or(DataType::Null)),
            (
                AggregateFunction::Min | AggregateFunction::Max | AggregateFunction::First | AggregateFunction::Last,
                out,
            ) => (SumKind::None, out.clone()),
            // The values are kept as the strings they are joined as.
            (AggregateFunction::ListAgg, _) => (SumKind::None, DataType::Utf8),
            (AggregateFunction::Sum, DataType::Int64) => (SumKind::Signed, DataType::Int64),
            (AggregateFunction::Sum, DataType::UInt64) => (SumKind::Unsigned, DataType::UInt64),
            (AggregateFunction::Sum | AggregateFunction::Avg, DataType::Float64) => (SumKind::Float, DataType::Float64),
            (AggregateFunction::Sum | AggregateFunction::Avg, DataType::Decimal128(_, _)) => match &argument_type {
                Some(DataType::Decimal128(_, s)) => (SumKind::Decimal { scale: *s }, DataType::Decimal128(38, *s)),
                Some(other) => return Err(unsupported(&other.to_string())),
                None => return Err(unsupported("*")),
            },
            (_, _) => return Err(unsupported(&argument_type.map(|t| t.to_string()).unwrap_or_default())),
        };
        if function != AggregateFunction::Count && argument.is_none() {
            return Err(Error::internal(format!("{function:?} planned without an argument")));
        }
        Ok(AggregateCall {
            function,
            argument: argument.map(|(e, _)| e),
            distinct,
            filter,
            output,
            sum,
            value_type,
            separator: ",".into(),
        })
    }

    /// LISTAGG's separator (`,` unless told).
    pub fn with_separator(mut self, separator: String) -> Self {
        self.separator = separator;
        self
    }

    /// Whether the call keeps the values it saw (MIN, MAX and DISTINCT calls).
    fn keeps_values(&self) -> bool {
        self.distinct
            || self.function.is_ordered()
            || matches!(self.function, AggregateFunction::Min | AggregateFunction::Max)
    }

    fn new_accumulator(&self) -> Accumulator {
        let plain = match (self.function, self.sum) {
            (AggregateFunction::Count, _) => Accumulator::Count(0),
            (AggregateFunction::Min | AggregateFunction::Max, _) => Accumulator::Values(BTreeMap::new()),
            (f, _) if f.is_ordered() => Accumulator::Sequence(VecDeque::new()),
            (_, SumKind::Float) => Accumulator::Float { sum: 0.0, n: 0 },
            (_, _) => Accumulator::Exact { sum: 0, n: 0 },
        };
        match (self.distinct, plain) {
            (true, Accumulator::Values(v)) => Accumulator::Values(v),
            (true, inner) => Accumulator::Distinct { seen: BTreeMap::new(), inner: Box::new(inner) },
            (false, plain) => plain,
        }
    }
}

/// A planned GROUP BY: its key expressions and aggregate calls over the input's rows; its
/// output is the key columns, then one column per call.
#[derive(Debug)]
pub struct AggregateSpec {
    group: Vec<Arc<dyn PhysicalExpr>>,
    calls: Vec<AggregateCall>,
    output_schema: SchemaRef,
}

impl AggregateSpec {
    pub fn new(group: Vec<Arc<dyn PhysicalExpr>>, calls: Vec<AggregateCall>, output_schema: SchemaRef) -> Result<Self> {
        if output_schema.fields().len() != group.len() + calls.len() {
            return Err(Error::internal("an aggregate's schema does not match its keys and calls"));
        }
        Ok(AggregateSpec { group, calls, output_schema })
    }

    /// The number of key columns, which lead the output.
    pub fn key_len(&self) -> usize {
        self.group.len()
    }

    /// Whether it has no aggregate function: `SELECT DISTINCT`, `UNION`.
    pub fn is_distinct_only(&self) -> bool {
        self.calls.is_empty()
    }

    fn key_types(&self) -> Vec<DataType> {
        self.output_schema.fields()[..self.group.len()].iter().map(|f| f.data_type().clone()).collect()
    }

    /// The schema of the state a snapshot stores.
    fn state_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.output_schema.fields()[..self.group.len()]
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("key{i}"), f.data_type().clone(), true))
            .collect();
        fields.push(Field::new("rows", DataType::Int64, false));
        fields.push(Field::new("touched", DataType::Int64, false));
        for (i, call) in self.calls.iter().enumerate() {
            if call.keeps_values() {
                fields.push(Field::new(format!("values{i}"), values_type(&call.value_type), false));
            } else if call.sum == SumKind::Float {
                fields.push(Field::new(format!("sum{i}"), DataType::Float64, false));
                fields.push(Field::new(format!("n{i}"), DataType::Int64, false));
            } else if call.function == AggregateFunction::Count {
                fields.push(Field::new(format!("n{i}"), DataType::Int64, false));
            } else {
                fields.push(Field::new(format!("sum{i}"), DataType::Decimal128(38, 0), false));
                fields.push(Field::new(format!("n{i}"), DataType::Int64, false));
            }
        }
        Arc::new(Schema::new(fields))
    }
}

/// A multiset of values in a state file: per group, a list of (value, multiplicity).
fn values_type(value: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_struct("item", entry_fields(value), false)))
}

fn entry_fields(value: &DataType) -> Fields {
    Fields::from(vec![Field::new("value", value.clone(), true), Field::new("count", DataType::Int64, false)])
}

/// What one call has gathered of one group.
#[derive(Debug, Clone)]
enum Accumulator {
    /// Non-NULL values (rows for `COUNT(*)`).
    Count(i64),
    /// A sum of integers or unscaled decimals, and how many values it adds.
    Exact {
        sum: i128,
        n: i64,
    },
    Float {
        sum: f64,
        n: i64,
    },
    /// Each value (in the value type's row encoding, which sorts as the values do) and how many
    /// times it is there.
    Values(BTreeMap<Bytes, i64>),
    /// The distinct values with their multiplicities; `inner` sees each distinct value once.
    Distinct {
        seen: BTreeMap<Bytes, i64>,
        inner: Box<Accumulator>,
    },
    /// Values in arrival order (FIRST_VALUE, LAST_VALUE, LISTAGG); a retraction takes away the
    /// earliest equal value, as Flink's retracting LISTAGG and FIRST_VALUE do.
    Sequence(VecDeque<Bytes>),
}

/// A key or value in its row encoding: inline up to 16 bytes (an integer, a short string), so
/// that groups and MIN/MAX values of such types cost no allocation of their own.
type Bytes = smallvec::SmallVec<[u8; 16]>;

/// One value of an argument, as a sum takes it (MIN, MAX and DISTINCT take its row encoding).
#[derive(Clone, Copy)]
enum Value {
    /// Only counted.
    Present,
    Exact(i128),
    Float(f64),
}

impl Accumulator {
    /// Adds (`sign` 1) or takes away (`sign` -1) one value; `encoded` is the value's row encoding
    /// where the call keeps values, `value` what a sum adds.
    /// `lenient`: a value to take away that is not there is ignored (it expired).
    fn update(&mut self, sign: i64, value: Value, encoded: Option<&[u8]>, lenient: bool) -> Result<()> {
        match self {
            Accumulator::Count(n) => *n += sign,
            Accumulator::Exact { sum, n } => {
                if let Value::Exact(v) = value {
                    // Only 38-digit decimals come near: the sum is past any result type's range.
                    *sum = sum.checked_add(sign as i128 * v).ok_or_else(|| {
                        Error::user(
                            "a SUM or AVG of DECIMAL values went past 38 digits; CAST the argument to DOUBLE, or to \
                             a DECIMAL with fewer digits after the point",
                        )
                    })?;
                    *n += sign;
                }
            }
            Accumulator::Float { sum, n } => {
                if let Value::Float(v) = value {
                    *sum += sign as f64 * v;
                    *n += sign;
                }
            }
            Accumulator::Values(values) => {
                if let Some(bytes) = encoded {
                    if !(lenient && sign < 0 && !values.contains_key(bytes)) {
                        multiset_update(values, bytes, sign);
                    }
                }
            }
            Accumulator::Sequence(values) => {
                if let Some(bytes) = encoded {
                    if sign > 0 {
                        values.push_back(Bytes::from_slice(bytes));
                    } else if let Some(at) = values.iter().position(|v| v.as_slice() == bytes) {
                        values.remove(at);
                    }
                    // A value to take away that is not there expired with its group (under a TTL);
                    // otherwise the group's row count, checked after the batch, reports it.
                }
            }
            Accumulator::Distinct { seen, inner } => {
                let Some(bytes) = encoded else { return Ok(()) };
                let before = seen.get(bytes).copied().unwrap_or(0);
                if lenient && sign < 0 && before == 0 {
                    return Ok(());
                }
                multiset_update(seen, bytes, sign);
                let after = before + sign;
                if before <= 0 && after > 0 {
                    inner.update(1, value, encoded, lenient)?;
                } else if before > 0 && after <= 0 {
                    inner.update(-1, value, encoded, lenient)?;
                }
            }
        }
        Ok(())
    }
}

fn multiset_update(values: &mut BTreeMap<Bytes, i64>, bytes: &[u8], sign: i64) {
    match values.get_mut(bytes) {
        Some(n) => {
            *n += sign;
            if *n == 0 {
                values.remove(bytes);
            }
        }
        None => {
            values.insert(Bytes::from_slice(bytes), sign);
        }
    }
}

/// A group's result columns, one per call.
type Results = Vec<Cell>;

/// One result value of a group: cheap to compare with the group's previous result, and turned
/// into Arrow a column at a time.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Unscaled, at the result's scale.
    Decimal(i128),
    /// A MIN/MAX/FIRST_VALUE/LAST_VALUE value in its row encoding.
    Encoded(Bytes),
    /// LISTAGG's values in their row encoding, in order.
    Sequence(Vec<Bytes>),
}

/// A group: how many rows it holds now, when a change last touched it (ms since the epoch), and
/// its accumulators.
#[derive(Debug, Clone)]
struct Group {
    rows: i64,
    touched: i64,
    accumulators: Vec<Accumulator>,
}

/// The running GROUP BY of one query node.
pub struct Aggregate {
    name: String,
    spec: Arc<AggregateSpec>,
    keys: RowConverter,
    /// Per call that keeps values, the converter of its value type.
    values: Vec<Option<RowConverter>>,
    groups: HashMap<Bytes, Group>,
    /// Whether the groups changed since the last snapshot or restore.
    changed: bool,
    /// How long an untouched group is kept (ms); `None`: for ever.
    ttl: Option<i64>,
    /// When groups were last checked for expiry (ms since the epoch).
    swept: i64,
}

impl Aggregate {
    /// `name` identifies its state in checkpoints (stable across runs of the job file); `ttl`
    /// is how long a group no change touches is kept.
    pub fn new(name: String, spec: Arc<AggregateSpec>, ttl: Option<std::time::Duration>) -> Result<Self> {
        let keys = RowConverter::new(spec.key_types().into_iter().map(SortField::new).collect())?;
        let values = spec
            .calls
            .iter()
            .map(|c| {
                c.keeps_values().then(|| RowConverter::new(vec![SortField::new(c.value_type.clone())])).transpose()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Changed from the start: the first checkpoint stores the (empty) state, so that a resume
        // finds a state for every GROUP BY.
        let ttl = ttl.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1));
        Ok(Aggregate { name, spec, keys, values, groups: HashMap::default(), changed: true, ttl, swept: 0 })
    }

    /// How many groups it holds.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Takes one batch of changes, gives the changes of the result.
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.apply_at(batch, now)
    }

    /// Drops the groups no change touched for the TTL, looking at most twice per TTL.
    fn expire(&mut self, now: i64) {
        let Some(ttl) = self.ttl else { return };
        if now - self.swept < (ttl / 2).max(1) {
            return;
        }
        self.swept = now;
        let before = self.groups.len();
        self.groups.retain(|_, g| now - g.touched < ttl);
        if self.groups.len() != before {
            tracing::debug!(operator = %self.name, expired = before - self.groups.len(), "state TTL: groups expired");
            self.changed = true;
        }
    }

    /// [`Aggregate::apply`] at time `now` (ms since the epoch).
    fn apply_at(&mut self, batch: &ChangeBatch, now: i64) -> Result<ChangeBatch> {
        self.expire(now);
        let n = batch.num_rows();
        if n == 0 {
            return Ok(ChangeBatch::inserts(RecordBatch::new_empty(self.spec.output_schema.clone())));
        }
        let rows = batch.rows();
        let key_columns =
            self.spec.group.iter().map(|e| Ok(e.evaluate(rows)?.into_array(n)?)).collect::<Result<Vec<ArrayRef>>>()?;
        let keys = if key_columns.is_empty() { None } else { Some(self.keys.convert_columns(&key_columns)?) };
        let arguments = self.evaluate_arguments(rows)?;

        // The groups touched, in the order first touched, with their result before the batch; keys
        // are borrowed from the batch's rows.
        let mut touched: Vec<(&[u8], Option<Results>)> = Vec::new();
        let mut seen: datafusion::common::HashSet<&[u8]> = Default::default();
        let expiring = self.ttl.is_some();
        for row in 0..n {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            let existing = self.groups.get_mut(key);
            if seen.insert(key) {
                let before = match &existing {
                    Some(g) if g.rows > 0 => Some(results(&self.spec.calls, g)?),
                    _ => None,
                };
                touched.push((key, before));
            }
            let sign = if batch.kind(row).is_addition() { 1 } else { -1 };
            let group = match existing {
                // Under a TTL the row it retracts may have expired with its group: ignored.
                Some(g) if expiring && sign < 0 && g.rows == 0 => continue,
                Some(g) => g,
                None if expiring && sign < 0 => continue,
                None => {
                    let accumulators = self.spec.calls.iter().map(AggregateCall::new_accumulator).collect();
                    self.groups.entry(Bytes::from_slice(key)).or_insert(Group { rows: 0, touched: now, accumulators })
                }
            };
            group.rows += sign;
            group.touched = now;
            for (accumulator, argument) in group.accumulators.iter_mut().zip(&arguments) {
                if let Some(value) = argument.value(row) {
                    let encoded = argument.encoded.as_ref().map(|r| r.row(row).data());
                    accumulator.update(sign, value, encoded, expiring)?;
                }
            }
        }
        self.changed = true;

        let mut out_keys: Vec<&[u8]> = Vec::new();
        let mut out_values: Vec<Results> = Vec::new();
        let mut kinds = Vec::new();
        let mut emptied = Vec::new();
        for (key, before) in touched {
            // Not there: only retractions of an expired group touched it, all ignored.
            let Some(group) = self.groups.get(key) else { continue };
            if group.rows < 0 {
                return Err(Error::user(format!(
                    "a GROUP BY received more retractions than rows for a group ({} rows): its input retracted rows it \
                     never added, which happens when a job resumes with state of another run; restart it with --fresh",
                    group.rows
                )));
            }
            let after = if group.rows > 0 { Some(results(&self.spec.calls, group)?) } else { None };
            match (before, after) {
                (None, Some(new)) => {
                    out_keys.push(key);
                    out_values.push(new);
                    kinds.push(RowKind::Insert);
                }
                (Some(old), None) => {
                    out_keys.push(key);
                    out_values.push(old);
                    kinds.push(RowKind::Delete);
                }
                (Some(old), Some(new)) if old != new => {
                    out_keys.extend([key, key]);
                    out_values.extend([old, new]);
                    kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
                }
                _ => {}
            }
            if group.rows == 0 {
                emptied.push(key);
            }
        }
        let result = self.output(&out_keys, out_values, &kinds)?;
        for key in emptied {
            self.groups.remove(key);
        }
        Ok(result)
    }

    fn evaluate_arguments(&self, rows: &RecordBatch) -> Result<Vec<Argument>> {
        let n = rows.num_rows();
        self.spec
            .calls
            .iter()
            .zip(&self.values)
            .map(|(call, converter)| {
                let values = match &call.argument {
                    None => None,
                    Some(e) => {
                        let a = e.evaluate(rows)?.into_array(n)?;
                        let a = if call.function == AggregateFunction::Count || a.data_type() == &call.value_type {
                            a
                        } else {
                            cast(&a, &call.value_type)?
                        };
                        Some(a)
                    }
                };
                let filter = match &call.filter {
                    None => None,
                    Some(f) => Some(
                        f.evaluate(rows)?
                            .into_array(n)?
                            .as_boolean_opt()
                            .cloned()
                            .ok_or_else(|| Error::internal("an aggregate's FILTER did not give booleans"))?,
                    ),
                };
                let encoded = match (converter, &values) {
                    (Some(c), Some(v)) => Some(c.convert_columns(std::slice::from_ref(v))?),
                    _ => None,
                };
                Ok(Argument { values, filter, encoded, sum: call.sum })
            })
            .collect()
    }

    fn output(&self, keys: &[&[u8]], values: Vec<Results>, kinds: &[RowKind]) -> Result<ChangeBatch> {
        let schema = &self.spec.output_schema;
        let mut columns: Vec<ArrayRef> = if self.spec.group.is_empty() {
            Vec::new()
        } else {
            let parser = self.keys.parser();
            self.keys.convert_rows(keys.iter().map(|k| parser.parse(k)))?
        };
        for (i, (call, converter)) in self.spec.calls.iter().zip(&self.values).enumerate() {
            let cells = values.iter().map(|v| &v[i]);
            let column = column(call, converter.as_ref(), cells, values.len())?;
            columns.push(if column.data_type() == &call.output { column } else { cast(&column, &call.output)? });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(kinds.len()));
        let rows = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
        ChangeBatch::from_kinds(rows, kinds)
    }

    fn state(&self) -> Result<RecordBatch> {
        let schema = self.spec.state_schema();
        let mut groups: Vec<(&Bytes, &Group)> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        let mut columns: Vec<ArrayRef> = if self.spec.group.is_empty() {
            Vec::new()
        } else {
            let parser = self.keys.parser();
            self.keys.convert_rows(groups.iter().map(|(k, _)| parser.parse(k)))?
        };
        columns.push(Arc::new(Int64Array::from_iter_values(groups.iter().map(|(_, g)| g.rows))));
        columns.push(Arc::new(Int64Array::from_iter_values(groups.iter().map(|(_, g)| g.touched))));
        for (i, (call, converter)) in self.spec.calls.iter().zip(&self.values).enumerate() {
            let accs = groups.iter().map(|(_, g)| &g.accumulators[i]);
            match converter {
                Some(converter) => columns.push(multisets_to_list(&call.value_type, converter, accs)?),
                None => match call.sum {
                    SumKind::Float => {
                        let (sums, ns): (Vec<f64>, Vec<i64>) = accs
                            .map(|a| match a {
                                Accumulator::Float { sum, n } => (*sum, *n),
                                _ => (0.0, 0),
                            })
                            .unzip();
                        columns.push(Arc::new(Float64Array::from(sums)));
                        columns.push(Arc::new(Int64Array::from(ns)));
                    }
                    _ if call.function == AggregateFunction::Count => {
                        columns.push(Arc::new(Int64Array::from_iter_values(accs.map(|a| match a {
                            Accumulator::Count(n) => *n,
                            _ => 0,
                        }))));
                    }
                    _ => {
                        let (sums, ns): (Vec<i128>, Vec<i64>) = accs
                            .map(|a| match a {
                                Accumulator::Exact { sum, n } => (*sum, *n),
                                _ => (0, 0),
                            })
                            .unzip();
                        columns.push(Arc::new(Decimal128Array::from(sums).with_precision_and_scale(38, 0)?));
                        columns.push(Arc::new(Int64Array::from(ns)));
                    }
                },
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(groups.len()));
        Ok(RecordBatch::try_new_with_options(schema, columns, &options)?)
    }

    fn load(&mut self, state: &RecordBatch) -> Result<()> {
        let n = state.num_rows();
        let key_len = self.spec.group.len();
        let keys = if key_len == 0 { None } else { Some(self.keys.convert_columns(&state.columns()[..key_len])?) };
        let rows = state.column(key_len).as_primitive::<Int64Type>();
        let touched = state.column(key_len + 1).as_primitive::<Int64Type>();
        let mut groups: Vec<Group> = (0..n)
            .map(|i| Group {
                rows: rows.value(i),
                touched: touched.value(i),
                accumulators: Vec::with_capacity(self.spec.calls.len()),
            })
            .collect();
        let mut column = key_len + 2;
        for (call, converter) in self.spec.calls.iter().zip(&self.values) {
            match converter {
                Some(converter) => {
                    let lists = state.column(column).as_list::<i32>();
                    column += 1;
                    for (g, group) in groups.iter_mut().enumerate() {
                        let entries = lists.value(g);
                        let entries = entries.as_struct();
                        let encoded = converter.convert_columns(&[entries.column(0).clone()])?;
                        let counts = entries.column(1).as_primitive::<Int64Type>();
                        let mut acc = call.new_accumulator();
                        let sums = Argument::single(entries.column(0).clone(), call.sum);
                        for e in 0..entries.len() {
                            let bytes = encoded.row(e).data();
                            let count = counts.value(e);
                            match &mut acc {
                                Accumulator::Values(values) => multiset_update(values, bytes, count),
                                Accumulator::Sequence(values) => {
                                    values.extend((0..count).map(|_| Bytes::from_slice(bytes)))
                                }
                                Accumulator::Distinct { seen, inner } => {
                                    multiset_update(seen, bytes, count);
                                    if let Some(value) = sums.value(e) {
                                        inner.update(1, value, Some(bytes), false)?;
                                    }
                                }
                                _ => return Err(Error::internal("a call that keeps values has no multiset")),
                            }
                        }
                        group.accumulators.push(acc);
                    }
                }
                None if call.sum == SumKind::Float => {
                    let sums = state.column(column).as_primitive::<Float64Type>();
                    let ns = state.column(column + 1).as_primitive::<Int64Type>();
                    column += 2;
                    for (g, group) in groups.iter_mut().enumerate() {
                        group.accumulators.push(Accumulator::Float { sum: sums.value(g), n: ns.value(g) });
                    }
                }
                None if call.function == AggregateFunction::Count => {
                    let ns = state.column(column).as_primitive::<Int64Type>();
                    column += 1;
                    for (g, group) in groups.iter_mut().enumerate() {
                        group.accumulators.push(Accumulator::Count(ns.value(g)));
                    }
                }
                None => {
                    let sums = state.column(column).as_primitive::<Decimal128Type>();
                    let ns = state.column(column + 1).as_primitive::<Int64Type>();
                    column += 2;
                    for (g, group) in groups.iter_mut().enumerate() {
                        group.accumulators.push(Accumulator::Exact { sum: sums.value(g), n: ns.value(g) });
                    }
                }
            }
        }
        self.groups = groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| (keys.as_ref().map_or_else(Bytes::new, |k| Bytes::from_slice(k.row(i).data())), g))
            .collect();
        Ok(())
    }
}

/// The multisets of a call over the groups, as one list column of (value, count) entries.
fn multisets_to_list<'a>(
    value_type: &DataType,
    converter: &RowConverter,
    accs: impl Iterator<Item = &'a Accumulator>,
) -> Result<ArrayRef> {
    let parser = converter.parser();
    let mut offsets = vec![0i32];
    let mut encoded: Vec<&[u8]> = Vec::new();
    let mut counts: Vec<i64> = Vec::new();
    for acc in accs {
        match acc {
            Accumulator::Values(v) | Accumulator::Distinct { seen: v, .. } => {
                for (bytes, count) in v {
                    encoded.push(bytes);
                    counts.push(*count);
                }
            }
            // In order, one entry per value.
            Accumulator::Sequence(values) => {
                for bytes in values {
                    encoded.push(bytes);
                    counts.push(1);
                }
            }
            _ => return Err(Error::internal("a call that keeps values has no multiset")),
        }
        offsets.push(encoded.len() as i32);
    }
    let values = if encoded.is_empty() {
        datafusion::arrow::array::new_empty_array(value_type)
    } else {
        converter.convert_rows(encoded.iter().map(|b| parser.parse(b)))?.remove(0)
    };
    let entries = StructArray::try_new(
        entry_fields(value_type),
        vec![values, Arc::new(Int64Array::from(counts)) as ArrayRef],
        None,
    )?;
    let field = Arc::new(Field::new_struct("item", entry_fields(value_type), false));
    Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), Arc::new(entries), None)?))
}

/// One call's argument over a batch.
struct Argument {
    /// `None` for `COUNT(*)`.
    values: Option<ArrayRef>,
    filter: Option<BooleanArray>,
    /// The values' row encoding, for calls that keep values.
    encoded: Option<Rows>,
    sum: SumKind,
}

impl Argument {
    fn single(values: ArrayRef, sum: SumKind) -> Self {
        Argument { values: Some(values), filter: None, encoded: None, sum }
    }

    /// The value of row `row` as its accumulator takes it; `None` when the row does not count
    /// (a NULL argument, or the FILTER is not true).
    fn value(&self, row: usize) -> Option<Value> {
        if let Some(f) = &self.filter {
            if !(f.is_valid(row) && f.value(row)) {
                return None;
            }
        }
        let Some(values) = &self.values else { return Some(Value::Present) };
        if values.is_null(row) {
            return None;
        }
        Some(match self.sum {
            SumKind::None => Value::Present,
            SumKind::Signed => Value::Exact(values.as_primitive::<Int64Type>().value(row) as i128),
            SumKind::Unsigned => Value::Exact(values.as_primitive::<UInt64Type>().value(row) as i128),
            SumKind::Decimal { .. } => Value::Exact(values.as_primitive::<Decimal128Type>().value(row)),
            SumKind::Float => Value::Float(values.as_primitive::<Float64Type>().value(row)),
        })
    }
}

/// A group's result columns (one per call).
fn results(calls: &[AggregateCall], group: &Group) -> Result<Results> {
    calls.iter().zip(&group.accumulators).map(|(call, acc)| result(call, acc)).collect()
}

/// What a call's accumulator gives as its result.
fn result(call: &AggregateCall, acc: &Accumulator) -> Result<Cell> {
    match acc {
        Accumulator::Count(n) => Ok(Cell::Int(*n)),
        Accumulator::Distinct { inner, .. } => result(call, inner),
        Accumulator::Sequence(values) => Ok(match call.function {
            AggregateFunction::First => values.front().map_or(Cell::Null, |b| Cell::Encoded(b.clone())),
            AggregateFunction::Last => values.back().map_or(Cell::Null, |b| Cell::Encoded(b.clone())),
            _ if values.is_empty() => Cell::Null,
            _ => Cell::Sequence(values.iter().cloned().collect()),
        }),
        Accumulator::Values(values) => {
            let extreme =
                if call.function == AggregateFunction::Min { values.keys().next() } else { values.keys().next_back() };
            Ok(extreme.map_or(Cell::Null, |bytes| Cell::Encoded(bytes.clone())))
        }
        Accumulator::Float { n, .. } | Accumulator::Exact { n, .. } if *n <= 0 => Ok(Cell::Null),
        Accumulator::Float { sum, n } => Ok(Cell::Float(match call.function {
            AggregateFunction::Avg => *sum / *n as f64,
            _ => *sum,
        })),
        Accumulator::Exact { sum, n } => {
            let overflow = || {
                Error::user(format!(
                    "{:?} overflowed its result type {} (the sum is {sum}); CAST the argument to a wider type",
                    call.function, call.output
                ))
            };
            match (&call.output, call.sum) {
                (DataType::Int64, _) => Ok(Cell::Int(i64::try_from(*sum).map_err(|_| overflow())?)),
                (DataType::UInt64, _) => Ok(Cell::UInt(u64::try_from(*sum).map_err(|_| overflow())?)),
                (DataType::Decimal128(p, s), SumKind::Decimal { scale }) => {
                    let value = if call.function == AggregateFunction::Avg {
                        // DataFusion's decimal average: scaled up to the result's scale, then
                        // divided, truncating.
                        let up = 10i128.checked_pow((*s - scale).max(0) as u32).ok_or_else(overflow)?;
                        sum.checked_mul(up).ok_or_else(overflow)? / *n as i128
                    } else {
                        *sum
                    };
                    if value.unsigned_abs() >= 10u128.pow(*p as u32) {
                        return Err(overflow());
                    }
                    Ok(Cell::Decimal(value))
                }
                (other, _) => Err(Error::internal(format!("an exact sum with result type {other}"))),
            }
        }
    }
}

/// A call's result column from its cells: MIN/MAX values decoded together by `converter`.
fn column<'a>(
    call: &AggregateCall,
    converter: Option<&RowConverter>,
    cells: impl Iterator<Item = &'a Cell>,
    len: usize,
) -> Result<ArrayRef> {
    let unexpected =
        |cell: &Cell| Error::internal(format!("a {:?} result of type {} was {cell:?}", call.function, call.output));
    if call.function == AggregateFunction::ListAgg {
        let converter = converter.ok_or_else(|| Error::internal("LISTAGG without a value converter"))?;
        let parser = converter.parser();
        let cells: Vec<&Cell> = cells.collect();
        let mut encoded = Vec::new();
        for cell in &cells {
            match cell {
                Cell::Sequence(values) => encoded.extend(values.iter().map(|b| parser.parse(b))),
                Cell::Null => {}
                other => return Err(unexpected(other)),
            }
        }
        let decoded = if encoded.is_empty() {
            None
        } else {
            Some(converter.convert_rows(encoded)?.remove(0).as_string::<i32>().clone())
        };
        let mut next = 0;
        let joined: datafusion::arrow::array::StringArray = cells
            .iter()
            .map(|cell| match cell {
                Cell::Sequence(values) => {
                    let strings =
                        decoded.as_ref().map(|d| (next..next + values.len()).map(|i| d.value(i)).collect::<Vec<_>>());
                    next += values.len();
                    strings.map(|s| s.join(&call.separator))
                }
                _ => None,
            })
            .collect();
        return Ok(Arc::new(joined));
    }
    if matches!(
        call.function,
        AggregateFunction::Min | AggregateFunction::Max | AggregateFunction::First | AggregateFunction::Last
    ) {
        let converter = converter.ok_or_else(|| Error::internal("MIN/MAX without a value converter"))?;
        let parser = converter.parser();
        // NULL (an empty group of values) in the same encoding, decoded with the rest.
        let null = converter.convert_columns(&[datafusion::arrow::array::new_null_array(&call.value_type, 1)])?;
        let null = null.row(0);
        let mut rows = Vec::with_capacity(len);
        for cell in cells {
            rows.push(match cell {
                Cell::Encoded(bytes) => parser.parse(bytes),
                Cell::Null => null,
                other => return Err(unexpected(other)),
            });
        }
        if rows.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(&call.value_type));
        }
        return Ok(converter.convert_rows(rows)?.remove(0));
    }
    Ok(match &call.output {
        DataType::Int64 => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Int(v) => Ok(Some(*v)),
                    Cell::Null => Ok(None),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<Int64Array>>()?,
        ),
        DataType::UInt64 => Arc::new(
            cells
                .map(|c| match c {
                    Cell::UInt(v) => Ok(Some(*v)),
                    Cell::Null => Ok(None),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<datafusion::arrow::array::UInt64Array>>()?,
        ),
        DataType::Float64 => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Float(v) => Ok(Some(*v)),
                    Cell::Null => Ok(None),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<Float64Array>>()?,
        ),
        DataType::Decimal128(p, s) => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Decimal(v) => Ok(Some(*v)),
                    Cell::Null => Ok(None),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<Decimal128Array>>()?
                .with_precision_and_scale(*p, *s)?,
        ),
        other => return Err(Error::internal(format!("an aggregate result of type {other}"))),
    })
}

impl StatefulNode for Aggregate {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn construct(&self) -> &'static str {
        "GROUP BY"
    }

    fn apply_input(&mut self, _input: usize, changes: &ChangeBatch) -> Result<ChangeBatch> {
        self.apply(changes)
    }

    fn changed(&mut self) -> &mut bool {
        &mut self.changed
    }

    fn state_schema(&self) -> SchemaRef {
        self.spec.state_schema()
    }

    fn state_batch(&self) -> Result<RecordBatch> {
        self.state()
    }

    fn load_state(&mut self, state: &RecordBatch) -> Result<()> {
        self.load(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::format_rows;
    use crate::operators::{Operator, OperatorSnapshot};
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::physical_expr::expressions::{col, lit};
    use RowKind::*;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(RowKind, i64, Option<i64>, &str)]) -> ChangeBatch {
        let rb = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .unwrap();
        ChangeBatch::from_kinds(rb, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
    }

    /// `g, COUNT(*), SUM(v), MIN(v), MAX(v), COUNT(DISTINCT s), AVG(v)` grouped by `g` (or over
    /// everything when `grouped` is false).
    fn aggregate(grouped: bool) -> Aggregate {
        let schema = input_schema();
        let v = || Some((col("v", &schema).unwrap(), DataType::Int64));
        let calls = vec![
            AggregateCall::new(AggregateFunction::Count, None, false, None, DataType::Int64).unwrap(),
            AggregateCall::new(AggregateFunction::Sum, v(), false, None, DataType::Int64).unwrap(),
            AggregateCall::new(AggregateFunction::Min, v(), false, None, DataType::Int64).unwrap(),
            AggregateCall::new(AggregateFunction::Max, v(), false, None, DataType::Int64).unwrap(),
            AggregateCall::new(
                AggregateFunction::Count,
                Some((col("s", &schema).unwrap(), DataType::Utf8)),
                true,
                None,
                DataType::Int64,
            )
            .unwrap(),
            AggregateCall::new(AggregateFunction::Avg, v(), false, None, DataType::Float64).unwrap(),
        ];
        let mut fields = vec![];
        let mut group = vec![];
        if grouped {
            fields.push(Field::new("g", DataType::Int64, true));
            group.push(col("g", &schema).unwrap());
        }
        for name in ["n", "sum", "lo", "hi", "ds"] {
            fields.push(Field::new(name, DataType::Int64, true));
        }
        fields.push(Field::new("avg", DataType::Float64, true));
        let spec = AggregateSpec::new(group, calls, Arc::new(Schema::new(fields))).unwrap();
        Aggregate::new("test".into(), Arc::new(spec), None).unwrap()
    }

    fn run(agg: &mut Aggregate, rows: &[(RowKind, i64, Option<i64>, &str)]) -> String {
        format_rows(&agg.apply(&batch(rows)).unwrap(), "").unwrap()
    }

    #[test]
    fn min_and_max_give_way_when_the_extreme_is_retracted() {
        let mut agg = aggregate(true);
        let out = run(&mut agg, &[(Insert, 1, Some(5), "a"), (Insert, 1, Some(3), "b"), (Insert, 1, Some(9), "a")]);
        assert_eq!(out, "+I[1, 3, 17, 3, 9, 2, 5.666666666666667]\n");
        let out = run(&mut agg, &[(Delete, 1, Some(3), "b")]);
        assert_eq!(out, "-U[1, 3, 17, 3, 9, 2, 5.666666666666667]\n+U[1, 2, 14, 5, 9, 1, 7.0]\n");
        let out = run(&mut agg, &[(UpdateBefore, 1, Some(9), "a"), (UpdateAfter, 1, Some(1), "a")]);
        assert_eq!(out, "-U[1, 2, 14, 5, 9, 1, 7.0]\n+U[1, 2, 6, 1, 5, 1, 3.0]\n");
    }

    /// `g, FIRST_VALUE(s), LAST_VALUE(v), LISTAGG(s, '|')` grouped by `g`.
    fn ordered() -> Aggregate {
        let schema = input_schema();
        let s = || Some((col("s", &schema).unwrap(), DataType::Utf8));
        let calls = vec![
            AggregateCall::new(AggregateFunction::First, s(), false, None, DataType::Utf8).unwrap(),
            AggregateCall::new(
                AggregateFunction::Last,
                Some((col("v", &schema).unwrap(), DataType::Int64)),
                false,
                None,
                DataType::Int64,
            )
            .unwrap(),
            AggregateCall::new(AggregateFunction::ListAgg, s(), false, None, DataType::Utf8)
                .unwrap()
                .with_separator("|".into()),
        ];
        let fields = vec![
            Field::new("g", DataType::Int64, true),
            Field::new("first", DataType::Utf8, true),
            Field::new("last", DataType::Int64, true),
            Field::new("list", DataType::Utf8, true),
        ];
        let spec = AggregateSpec::new(vec![col("g", &schema).unwrap()], calls, Arc::new(Schema::new(fields))).unwrap();
        Aggregate::new("ordered".into(), Arc::new(spec), None).unwrap()
    }

    #[test]
    fn first_last_and_listagg_follow_arrival_order_and_retractions_take_the_earliest_equal_value() {
        let mut agg = ordered();
        let out = run(&mut agg, &[(Insert, 1, Some(5), "a"), (Insert, 1, None, "b"), (Insert, 1, Some(7), "a")]);
        // A NULL value is skipped: LAST_VALUE(v) is 7, the last non-NULL one.
        assert_eq!(out, "+I[1, a, 7, a|b|a]\n");
        // The first `a` goes; the later one stays, so the list keeps its order.
        let out = run(&mut agg, &[(Delete, 1, Some(5), "a")]);
        assert_eq!(out, "-U[1, a, 7, a|b|a]\n+U[1, b, 7, b|a]\n");
        // An update's new row arrives last.
        let out = run(&mut agg, &[(UpdateBefore, 1, None, "b"), (UpdateAfter, 1, Some(2), "c")]);
        assert_eq!(out, "-U[1, b, 7, b|a]\n+U[1, a, 2, a|c]\n");
        let Some(OperatorSnapshot::Changed(state)) = agg.snapshot().unwrap() else { panic!("no state") };
        let mut restored = ordered();
        restored.restore(state).unwrap();
        let next = [(Insert, 1, Some(1), "d"), (Delete, 1, Some(7), "a")];
        assert_eq!(run(&mut restored, &next), "-U[1, a, 2, a|c]\n+U[1, c, 1, c|d]\n");
        assert_eq!(run(&mut agg, &next), "-U[1, a, 2, a|c]\n+U[1, c, 1, c|d]\n");
        assert_eq!(run(&mut agg, &[(Delete, 1, Some(2), "c"), (Delete, 1, Some(1), "d")]), "-D[1, c, 1, c|d]\n");
    }

    #[test]
    fn a_group_whose_last_row_goes_is_deleted_and_an_unchanged_result_emits_nothing() {
        let mut agg = aggregate(true);
        run(&mut agg, &[(Insert, 1, Some(5), "a"), (Insert, 2, Some(7), "a")]);
        // An update that leaves every result as it was.
        assert_eq!(run(&mut agg, &[(UpdateBefore, 1, Some(5), "a"), (UpdateAfter, 1, Some(5), "a")]), "");
        assert_eq!(run(&mut agg, &[(Delete, 2, Some(7), "a")]), "-D[2, 1, 7, 7, 7, 1, 7.0]\n");
        assert_eq!(agg.len(), 1);
        // NULL arguments count as rows, not as values.
        assert_eq!(
            run(&mut agg, &[(Insert, 3, None, "x")]),
            "+I[3, 1, null, null, null, 1, null]\n",
            "a group of NULL values"
        );
    }

    #[test]
    fn a_global_aggregate_appears_with_its_first_row_and_goes_with_its_last() {
        let mut agg = aggregate(false);
        assert_eq!(run(&mut agg, &[(Insert, 1, Some(2), "a"), (Insert, 2, Some(4), "b")]), "+I[2, 6, 2, 4, 2, 3.0]\n");
        assert_eq!(run(&mut agg, &[(Delete, 1, Some(2), "a"), (Delete, 2, Some(4), "b")]), "-D[2, 6, 2, 4, 2, 3.0]\n");
    }

    #[test]
    fn more_retractions_than_rows_is_an_error_not_a_negative_count() {
        let mut agg = aggregate(true);
        let err = agg.apply(&batch(&[(Delete, 1, Some(2), "a")])).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }

    #[test]
    fn a_restored_state_continues_exactly_as_the_original() {
        let mut agg = aggregate(true);
        run(
            &mut agg,
            &[(Insert, 1, Some(5), "a"), (Insert, 1, Some(5), "a"), (Insert, 2, None, "b"), (Insert, 1, Some(-4), "c")],
        );
        let Some(OperatorSnapshot::Changed(state)) = agg.snapshot().unwrap() else { panic!("no state") };
        assert!(matches!(agg.snapshot().unwrap(), Some(OperatorSnapshot::Unchanged)));
        let mut restored = aggregate(true);
        restored.restore(state).unwrap();
        let next = [(Delete, 1, Some(-4), "c"), (Delete, 1, Some(5), "a"), (Insert, 2, Some(8), "b")];
        assert_eq!(run(&mut restored, &next), run(&mut agg, &next));
        let next = [(Delete, 1, Some(5), "a")];
        assert_eq!(run(&mut restored, &next), run(&mut agg, &next));
        assert_eq!(restored.len(), 1);

        let mut other = aggregate(false);
        let Some(OperatorSnapshot::Changed(state)) = agg.snapshot().unwrap() else { panic!("no state") };
        let err = other.restore(state).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }

    #[test]
    fn under_a_ttl_untouched_groups_expire_and_retractions_of_what_expired_are_ignored() {
        let spec = aggregate(true).spec;
        let mut agg = Aggregate::new("ttl".into(), spec, Some(std::time::Duration::from_millis(1000))).unwrap();
        let at = |agg: &mut Aggregate, rows: &[(RowKind, i64, Option<i64>, &str)], now: i64| {
            format_rows(&agg.apply_at(&batch(rows), now).unwrap(), "").unwrap()
        };
        at(&mut agg, &[(Insert, 1, Some(5), "a"), (Insert, 2, Some(7), "b")], 10_000);
        // Group 2 is touched again before its TTL; group 1 is not.
        at(&mut agg, &[(Insert, 2, Some(9), "b")], 10_800);
        assert_eq!(at(&mut agg, &[], 11_500), "");
        assert_eq!(agg.len(), 1, "group 1 expired without a retraction");
        // Its row's delete arrives after it expired: ignored, not an error.
        assert_eq!(at(&mut agg, &[(Delete, 1, Some(5), "a")], 11_600), "");
        // The group comes back; the delete of a row that expired with it still takes a row away
        // (it cannot be told from one of the new rows: Flink's price of a TTL), but no value
        // the group never had.
        at(&mut agg, &[(Insert, 1, Some(3), "c")], 13_000);
        assert_eq!(at(&mut agg, &[(Delete, 1, Some(5), "a")], 13_100), "-D[1, 1, 3, 3, 3, 1, 3.0]\n");
        // The TTL's time survives a checkpoint.
        let Some(OperatorSnapshot::Changed(state)) = agg.snapshot().unwrap() else { panic!("no state") };
        let mut restored =
            Aggregate::new("ttl".into(), agg.spec.clone(), Some(std::time::Duration::from_millis(1000))).unwrap();
        restored.restore(state).unwrap();
        at(&mut restored, &[], 14_200);
        assert_eq!(restored.len(), 0, "both groups were last touched more than a TTL ago");
    }

    #[test]
    fn a_filter_decides_which_rows_a_call_sees() {
        let schema = input_schema();
        let filter = datafusion::physical_expr::expressions::binary(
            col("v", &schema).unwrap(),
            datafusion::logical_expr::Operator::Gt,
            lit(3i64),
            &schema,
        )
        .unwrap();
        let call = AggregateCall::new(AggregateFunction::Count, None, false, Some(filter), DataType::Int64).unwrap();
        let out = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut agg =
            Aggregate::new("f".into(), Arc::new(AggregateSpec::new(vec![], vec![call], out).unwrap()), None).unwrap();
        assert_eq!(run(&mut agg, &[(Insert, 1, Some(5), "a"), (Insert, 1, Some(2), "a")]), "+I[1]\n");
    }
}
