//! A regular (non-windowed) join of two changelogs, as Flink's streaming join: each side keeps
//! its rows, by join key, as a multiset; a row arriving on one side (`+I`/`+U` adds it, `-U`/`-D`
//! retracts it) is matched against the rows the other side holds under the same key that pass the
//! residual (non-equi) predicate, and what it joins with is added or retracted with it.
//!
//! `INNER`, `LEFT`, `RIGHT` and `FULL OUTER` joins give pairs of rows. An outer side's row without
//! a match comes out padded with NULLs; when its first match arrives the padded row is retracted
//! (`-D`), and when its last match goes it is added again (`+I`). Semi and anti joins (what
//! DataFusion makes of `EXISTS`, `IN (sub-query)`, `NOT EXISTS`) give the rows of one side that
//! have a match (that have none), each as often as the side holds it: a row appears with its
//! first match and goes with its last (the other way round for an anti join).
//!
//! Every change comes out as `+I` (an addition) or `-D` (a retraction), never as `-U`/`+U`: an
//! update of an input row retracts its joined rows and adds the new ones, which need not pair up
//! (the old row may match three rows, the new one none). Flink does the same for outer joins; for
//! inner joins it forwards the input's `-U`/`+U` kinds, which downstream tables apply alike.
//!
//! Join keys follow SQL: a NULL key matches nothing (`=`), unless the join compares with
//! `IS NOT DISTINCT FROM`. A row whose key can match nothing needs no state: it comes out padded
//! on an outer side (by itself on an anti join's side) and not at all otherwise. A join without
//! any equality keeps every row under one key and pairs each arriving row with all of the other
//! side's rows (Flink's nested-loop join), which is as expensive as it sounds.
//!
//! State: every row each side holds, with its multiplicity and its number of matches (the other
//! side's rows it joins with, counted with theirs), written whole at a checkpoint after any change,
//! not at all otherwise. Rows are kept in Arrow's row encoding in memory, and stored as typed
//! columns.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int64Array, Int8Array, RecordBatch, RecordBatchOptions,
    UInt32Array,
};
use datafusion::arrow::compute::{filter, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Int8Type, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::StatefulNode;
use crate::changelog::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

/// Input 0 of a join is its left side, input 1 its right side.
const SIDES: [usize; 2] = [0, 1];

/// What a join gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Pairs of rows, the left columns then the right ones (`[INNER|LEFT|RIGHT|FULL] JOIN`); an
    /// outer side's rows without a match come out by themselves, padded with NULLs.
    Pairs { outer: [bool; 2] },
    /// The rows of side `side` (0 left, 1 right) that have a match — a semi join, which
    /// DataFusion makes of `EXISTS` and `IN (sub-query)` — or, `anti`, that have none
    /// (`NOT EXISTS`); each row as often as the side holds it, however many matches it has.
    Filter { side: usize, anti: bool },
}

/// A planned join: per side, its key expressions; the residual predicate over a pair; what it
/// gives.
#[derive(Debug)]
pub struct JoinSpec {
    /// Per side, the equi-join key expressions over that side's rows; pairwise of one type.
    keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    key_types: Vec<DataType>,
    /// Whether NULL keys match each other (`IS NOT DISTINCT FROM`) rather than nothing (`=`).
    nulls_match: bool,
    /// The non-equi part of the join condition, over a pair's columns (left's, then right's).
    filter: Option<Arc<dyn PhysicalExpr>>,
    kind: JoinKind,
    inputs: [SchemaRef; 2],
    /// A pair's columns: the left side's, then the right side's.
    pair_schema: SchemaRef,
    output_schema: SchemaRef,
    /// The output's columns that are unique keys of it, smallest first.
    unique_keys: Vec<Vec<usize>>,
}

/// What the planner knows of a join, for [`JoinSpec::new`].
pub struct JoinParts {
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub key_types: Vec<DataType>,
    pub nulls_match: bool,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub kind: JoinKind,
    pub left: SchemaRef,
    pub right: SchemaRef,
    pub output_schema: SchemaRef,
    pub unique_keys: Vec<Vec<usize>>,
}

impl JoinSpec {
    pub fn new(parts: JoinParts) -> Result<Self> {
        let pair_schema = Arc::new(Schema::new([parts.left.fields().to_vec(), parts.right.fields().to_vec()].concat()));
        let width = match parts.kind {
            JoinKind::Pairs { .. } => pair_schema.fields().len(),
            JoinKind::Filter { side: 0, .. } => parts.left.fields().len(),
            JoinKind::Filter { .. } => parts.right.fields().len(),
        };
        if parts.output_schema.fields().len() != width
            || parts.left_keys.len() != parts.key_types.len()
            || parts.right_keys.len() != parts.key_types.len()
        {
            return Err(Error::internal("a join's schema does not match its inputs or its keys"));
        }
        Ok(JoinSpec {
            keys: [parts.left_keys, parts.right_keys],
            key_types: parts.key_types,
            nulls_match: parts.nulls_match,
            filter: parts.filter,
            kind: parts.kind,
            inputs: [parts.left, parts.right],
            pair_schema,
            output_schema: parts.output_schema,
            unique_keys: parts.unique_keys,
        })
    }

    /// Whether a row only ever comes out when rows arrive (nothing is padded, nothing shows for
    /// want of a match): an inner or semi join.
    pub fn only_adds(&self) -> bool {
        matches!(self.kind, JoinKind::Pairs { outer: [false, false] } | JoinKind::Filter { anti: false, .. })
    }

    /// Whether a row of side `side` with `matches` matches comes out by itself: padded, for an
    /// outer side without a match; as it is, for the side a semi (anti) join keeps, with (without)
    /// a match.
    fn alone(&self, side: usize, matches: i64) -> bool {
        match self.kind {
            JoinKind::Pairs { outer } => outer[side] && matches == 0,
            JoinKind::Filter { side: kept, anti } => side == kept && (matches == 0) == anti,
        }
    }

    pub fn unique_keys(&self) -> &[Vec<usize>] {
        &self.unique_keys
    }

    /// The schema of the state a snapshot stores: which side a row is of, both sides' columns
    /// (the other side's NULL), the row's multiplicity and its number of matches.
    fn state_schema(&self) -> SchemaRef {
        let mut fields = vec![Field::new("side", DataType::Int8, false)];
        for (name, input) in ["left", "right"].iter().zip(&self.inputs) {
            fields.extend(
                input
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Field::new(format!("{name}{i}"), f.data_type().clone(), true)),
            );
        }
        fields.push(Field::new("count", DataType::Int64, false));
        fields.push(Field::new("matches", DataType::Int64, false));
        Arc::new(Schema::new_with_metadata(fields, HashMap::from([(CONDITION.to_string(), self.condition())])))
    }

    /// What the join gives and on what condition, as text, stored with its state: a job whose
    /// join changed to another over columns of the same types must not resume with state whose
    /// match counts were made by the old one.
    fn condition(&self) -> String {
        let list = |e: &[Arc<dyn PhysicalExpr>]| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ");
        let kind = match self.kind {
            JoinKind::Pairs { outer: [false, false] } => "INNER JOIN",
            JoinKind::Pairs { outer: [true, false] } => "LEFT JOIN",
            JoinKind::Pairs { outer: [false, true] } => "RIGHT JOIN",
            JoinKind::Pairs { .. } => "FULL JOIN",
            JoinKind::Filter { side: 0, anti: false } => "LEFT SEMI JOIN",
            JoinKind::Filter { side: 0, anti: true } => "LEFT ANTI JOIN",
            JoinKind::Filter { anti: false, .. } => "RIGHT SEMI JOIN",
            JoinKind::Filter { .. } => "RIGHT ANTI JOIN",
        };
        format!(
            "{kind} ON ({}) = ({}){}{}",
            list(&self.keys[0]),
            list(&self.keys[1]),
            if self.nulls_match { " (NULLs match)" } else { "" },
            self.filter.as_ref().map(|f| format!(" AND {f}")).unwrap_or_default()
        )
    }
}

/// The key of the state schema's metadata that holds [`JoinSpec::condition`].
const CONDITION: &str = "join";

/// One row a side holds: how many times, and how many of the other side's rows it joins with.
#[derive(Debug, Clone, Copy)]
struct Held {
    count: i64,
    matches: i64,
}

/// A side's rows: per join key (row-encoded; empty without equi-keys), each distinct row
/// (row-encoded) with its multiplicity and matches.
type SideState = HashMap<Box<[u8]>, HashMap<Box<[u8]>, Held>>;

/// The other side's rows one row joins with: each distinct row (row-encoded) with its
/// multiplicity.
type Matches = Vec<(Box<[u8]>, i64)>;

/// The running join of one query node.
pub struct Join {
    name: String,
    spec: Arc<JoinSpec>,
    /// The join key's converter; `None` without equi-keys.
    keys: Option<RowConverter>,
    /// Per side, the converter of its whole rows.
    rows: [RowConverter; 2],
    state: [SideState; 2],
    /// Whether the state changed since the last snapshot or restore.
    changed: bool,
}

impl Join {
    /// `name` identifies its state in checkpoints (stable across runs of the job file).
    pub fn new(name: String, spec: Arc<JoinSpec>) -> Result<Self> {
        let keys = if spec.key_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(spec.key_types.iter().cloned().map(SortField::new).collect())?)
        };
        let converter = |schema: &SchemaRef| {
            RowConverter::new(schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect())
        };
        let rows = [converter(&spec.inputs[0])?, converter(&spec.inputs[1])?];
        // Changed from the start: the first checkpoint stores the (empty) state, so that a resume
        // finds a state for every join.
        Ok(Join { name, spec, keys, rows, state: [HashMap::new(), HashMap::new()], changed: true })
    }

    /// How many distinct rows both sides hold.
    pub fn len(&self) -> usize {
        self.state.iter().flat_map(|s| s.values()).map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one batch of changes of side `side` (0 left, 1 right), gives the changes of the
    /// joined result.
    pub fn apply(&mut self, side: usize, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let mut out = Output::default();
        if batch.is_empty() {
            return out.finish(self);
        }
        let other = 1 - side;
        let rows = batch.rows();
        let (keys, matchable) = self.keys(side, rows)?;
        let encoded = self.rows[side].convert_columns(rows.columns())?;
        let key = |row: usize| -> &[u8] { keys.as_ref().map_or(&[], |k| k.row(row).data()) };
        let matches = self.matches(side, batch, &keys, &matchable, &encoded)?;

        for (row, matches) in matches.iter().enumerate() {
            let kind = batch.kind(row);
            let this = encoded.row(row).data();
            let total: i64 = matches.iter().map(|(_, n)| n).sum();
            if matchable[row] {
                self.hold(side, key(row), this, kind.is_addition(), total)?;
            }
            let (change, sign) = if kind.is_addition() { (RowKind::Insert, 1) } else { (RowKind::Delete, -1) };
            if self.spec.alone(side, total) {
                out.push(change, side, Some(this), None, 1);
            }
            // Each matching row gains or loses a match: it may stop or start coming out by itself
            // (its padded row, or itself in a semi or anti join), around the pairs the match
            // adds or retracts.
            for (that, n) in matches {
                let held = self.state[other]
                    .get_mut(key(row))
                    .and_then(|bucket| bucket.get_mut(that))
                    .ok_or_else(|| Error::internal("a join matched a row its other side no longer holds"))?;
                let (before, after) = (held.matches, held.matches + sign);
                held.matches = after;
                if self.spec.alone(other, before) && !self.spec.alone(other, after) {
                    out.push(RowKind::Delete, other, Some(that), None, *n);
                }
                if matches!(self.spec.kind, JoinKind::Pairs { .. }) {
                    out.push(change, side, Some(this), Some(that), *n);
                }
                if !self.spec.alone(other, before) && self.spec.alone(other, after) {
                    out.push(RowKind::Insert, other, Some(that), None, *n);
                }
            }
        }
        self.changed = true;
        out.finish(self)
    }

    /// The join key of each row of side `side`, and whether it can match at all (SQL's `=`
    /// matches no NULL).
    fn keys(&self, side: usize, rows: &RecordBatch) -> Result<(Option<Rows>, Vec<bool>)> {
        let n = rows.num_rows();
        let Some(converter) = &self.keys else { return Ok((None, vec![true; n])) };
        let columns = self.spec.keys[side]
            .iter()
            .map(|e| Ok(e.evaluate(rows)?.into_array(n)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let matchable =
            (0..n).map(|row| self.spec.nulls_match || columns.iter().all(|c| c.is_valid(row))).collect::<Vec<_>>();
        Ok((Some(converter.convert_columns(&columns)?), matchable))
    }

    /// For each row of the batch, the other side's rows it joins with (each distinct row with
    /// its multiplicity). The other side does not change while one side's batch goes through, so
    /// all candidate pairs are judged by the residual predicate at once.
    fn matches(
        &self,
        side: usize,
        batch: &ChangeBatch,
        keys: &Option<Rows>,
        matchable: &[bool],
        encoded: &Rows,
    ) -> Result<Vec<Matches>> {
        let other = &self.state[1 - side];
        let mut matches: Vec<Matches> = (0..batch.num_rows())
            .map(|row| {
                if !matchable[row] {
                    return Vec::new();
                }
                let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
                other
                    .get(key)
                    .map(|bucket| bucket.iter().map(|(that, held)| (that.clone(), held.count)).collect())
                    .unwrap_or_default()
            })
            .collect();
        let Some(filter) = &self.spec.filter else { return Ok(matches) };
        let mut pairs = Parts::default();
        for (row, candidates) in matches.iter().enumerate() {
            for (that, _) in candidates {
                pairs.push(side, Some(encoded.row(row).data()), Some(that), 1);
            }
        }
        if pairs.len == 0 {
            return Ok(matches);
        }
        let columns = pairs.columns(&self.rows, &self.spec.inputs)?;
        let options = RecordBatchOptions::new().with_row_count(Some(pairs.len));
        let pairs = RecordBatch::try_new_with_options(self.spec.pair_schema.clone(), columns, &options)?;
        let passes = filter.evaluate(&pairs)?.into_array(pairs.num_rows())?;
        let passes = passes.as_boolean_opt().ok_or_else(|| {
            Error::internal(format!("a join condition gave {} instead of booleans", passes.data_type()))
        })?;
        let mut pair = 0;
        for candidates in &mut matches {
            candidates.retain(|_| {
                let keep = passes.is_valid(pair) && passes.value(pair);
                pair += 1;
                keep
            });
        }
        Ok(matches)
    }

    /// Adds (or retracts) one copy of a row to its side's state; `matches` is its number of
    /// matches, for a row not held yet.
    fn hold(&mut self, side: usize, key: &[u8], row: &[u8], add: bool, matches: i64) -> Result<()> {
        let state = &mut self.state[side];
        if add {
            let bucket = state.entry(key.into()).or_default();
            bucket.entry(row.into()).or_insert(Held { count: 0, matches }).count += 1;
            return Ok(());
        }
        let Some(bucket) = state.get_mut(key) else { return Err(self.retracted_unknown()) };
        let Some(held) = bucket.get_mut(row) else { return Err(self.retracted_unknown()) };
        held.count -= 1;
        if held.count == 0 {
            bucket.remove(row);
            if bucket.is_empty() {
                state.remove(key);
            }
        }
        Ok(())
    }

    fn retracted_unknown(&self) -> Error {
        Error::user(format!(
            "`{}` received a retraction of a row it does not hold: its input retracted rows it never added, which \
             happens when a job resumes with state of another run; restart it with --fresh",
            self.name
        ))
    }

    fn state(&self) -> Result<RecordBatch> {
        let mut parts = Parts::default();
        let mut sides = Vec::new();
        let mut counts = Vec::new();
        let mut matches = Vec::new();
        for side in SIDES {
            let mut held: Vec<(&[u8], &Held)> =
                self.state[side].values().flat_map(|bucket| bucket.iter().map(|(r, h)| (&r[..], h))).collect();
            // Sorted, so that the same state gives the same file.
            held.sort_by(|a, b| a.0.cmp(b.0));
            for (row, h) in held {
                parts.push(side, Some(row), None, 1);
                sides.push(side as i8);
                counts.push(h.count);
                matches.push(h.matches);
            }
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int8Array::from(sides))];
        columns.extend(parts.columns(&self.rows, &self.spec.inputs)?);
        columns.push(Arc::new(Int64Array::from(counts)));
        columns.push(Arc::new(Int64Array::from(matches)));
        let options = RecordBatchOptions::new().with_row_count(Some(parts.len));
        Ok(RecordBatch::try_new_with_options(self.spec.state_schema(), columns, &options)?)
    }

    fn load(&mut self, state: &RecordBatch) -> Result<()> {
        let sides = state.column(0).as_primitive::<Int8Type>();
        let width = [self.spec.inputs[0].fields().len(), self.spec.inputs[1].fields().len()];
        for side in SIDES {
            let mask = BooleanArray::from_iter(sides.iter().map(|s| Some(s == Some(side as i8))));
            let first = 1 + if side == 0 { 0 } else { width[0] };
            let columns = state.columns()[first..first + width[side]]
                .iter()
                .map(|c| filter(c, &mask))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let counts = filter(state.column(1 + width[0] + width[1]), &mask)?;
            let matches = filter(state.column(2 + width[0] + width[1]), &mask)?;
            let (counts, matches) = (counts.as_primitive::<Int64Type>(), matches.as_primitive::<Int64Type>());
            let options = RecordBatchOptions::new().with_row_count(Some(counts.len()));
            let rows = RecordBatch::try_new_with_options(self.spec.inputs[side].clone(), columns, &options)?;
            let (keys, _) = self.keys(side, &rows)?;
            let encoded = self.rows[side].convert_columns(rows.columns())?;
            let mut held = SideState::new();
            for row in 0..rows.num_rows() {
                let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
                let entry = Held { count: counts.value(row), matches: matches.value(row) };
                held.entry(key.into()).or_default().insert(encoded.row(row).data().into(), entry);
            }
            self.state[side] = held;
        }
        Ok(())
    }
}

/// Rows made of a left part and a right part, either of which may be missing (NULL): gathered as
/// row encodings, turned into the columns of both sides at the end.
#[derive(Default)]
struct Parts {
    /// Per side, the distinct encoded rows pushed, and per row the index of its part there.
    rows: [Vec<Box<[u8]>>; 2],
    at: [Vec<Option<u32>>; 2],
    len: usize,
}

impl Parts {
    /// Adds `times` rows of `this` (of side `side`) next to `that` (of the other side; `None`
    /// for NULLs).
    fn push(&mut self, side: usize, this: Option<&[u8]>, that: Option<&[u8]>, times: i64) {
        for (s, part) in [(side, this), (1 - side, that)] {
            let at = part.map(|bytes| {
                self.rows[s].push(bytes.into());
                (self.rows[s].len() - 1) as u32
            });
            self.at[s].extend(std::iter::repeat_n(at, times as usize));
        }
        self.len += times as usize;
    }

    /// The left side's columns, then the right side's.
    fn columns(&self, converters: &[RowConverter; 2], inputs: &[SchemaRef; 2]) -> Result<Vec<ArrayRef>> {
        let mut columns = Vec::new();
        for side in SIDES {
            if self.rows[side].is_empty() {
                columns.extend(inputs[side].fields().iter().map(|f| new_null_array(f.data_type(), self.len)));
                continue;
            }
            let parser = converters[side].parser();
            let values = converters[side].convert_rows(self.rows[side].iter().map(|r| parser.parse(r)))?;
            let indices = UInt32Array::from(self.at[side].clone());
            for column in values {
                columns.push(take(&column, &indices, None)?);
            }
        }
        Ok(columns)
    }
}

/// The changes a batch gives: rows and their kinds.
#[derive(Default)]
struct Output {
    parts: Parts,
    kinds: Vec<RowKind>,
}

impl Output {
    fn push(&mut self, kind: RowKind, side: usize, this: Option<&[u8]>, that: Option<&[u8]>, times: i64) {
        self.parts.push(side, this, that, times);
        self.kinds.extend(std::iter::repeat_n(kind, times as usize));
    }

    fn finish(self, join: &Join) -> Result<ChangeBatch> {
        let mut columns = self.parts.columns(&join.rows, &join.spec.inputs)?;
        if let JoinKind::Filter { side, .. } = join.spec.kind {
            // Only the kept side's columns.
            let left = join.spec.inputs[0].fields().len();
            columns = if side == 0 { columns[..left].to_vec() } else { columns[left..].to_vec() };
        }
        let options = RecordBatchOptions::new().with_row_count(Some(self.kinds.len()));
        let rows = RecordBatch::try_new_with_options(join.spec.output_schema.clone(), columns, &options)?;
        ChangeBatch::from_kinds(rows, &self.kinds)
    }
}

impl StatefulNode for Join {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn construct(&self) -> &'static str {
        "JOIN"
    }

    fn apply_input(&mut self, input: usize, changes: &ChangeBatch) -> Result<ChangeBatch> {
        if input > 1 {
            return Err(Error::internal(format!("a join has two inputs, not input {input}")));
        }
        self.apply(input, changes)
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
        let condition = self.spec.condition();
        let stored = state.schema().metadata().get(CONDITION).cloned().unwrap_or_default();
        if stored != condition {
            return Err(Error::user(format!(
                "the checkpoint's state of `{}` is of the join {stored} where this query's is {condition}: the job's \
                 JOIN changed since the checkpoint; start over with --fresh",
                self.name
            )));
        }
        self.load(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::format_rows;
    use crate::operators::{Operator, OperatorSnapshot};
    use datafusion::arrow::array::StringArray;
    use datafusion::physical_expr::expressions::col;
    use RowKind::*;

    /// orders (id, customer) and customers (id, name).
    fn schemas() -> [SchemaRef; 2] {
        [
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("customer", DataType::Int64, true),
            ])),
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
        ]
    }

    /// `orders [LEFT|FULL] JOIN customers ON orders.customer = customers.id`.
    fn join(outer: [bool; 2]) -> Join {
        let [left, right] = schemas();
        // A side's columns are NULL in the rows that pad the other side.
        let padded = |schema: &SchemaRef, other_outer: bool| -> Vec<Field> {
            schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(f.is_nullable() || other_outer)).collect()
        };
        let fields = [padded(&left, outer[1]), padded(&right, outer[0])].concat();
        join_of(JoinKind::Pairs { outer }, Arc::new(Schema::new(fields)))
    }

    /// The orders that have a customer (`anti`: that have none).
    fn semi(anti: bool) -> Join {
        join_of(JoinKind::Filter { side: 0, anti }, schemas()[0].clone())
    }

    fn join_of(kind: JoinKind, output_schema: SchemaRef) -> Join {
        let [left, right] = schemas();
        let spec = JoinSpec::new(JoinParts {
            left_keys: vec![col("customer", &left).unwrap()],
            right_keys: vec![col("id", &right).unwrap()],
            key_types: vec![DataType::Int64],
            nulls_match: false,
            filter: None,
            kind,
            left,
            right,
            output_schema,
            unique_keys: vec![vec![0]],
        })
        .unwrap();
        Join::new("test".into(), Arc::new(spec)).unwrap()
    }

    fn orders(rows: &[(RowKind, i64, Option<i64>)]) -> ChangeBatch {
        let rb = RecordBatch::try_new(
            schemas()[0].clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        ChangeBatch::from_kinds(rb, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
    }

    fn customers(rows: &[(RowKind, Option<i64>, &str)]) -> ChangeBatch {
        let rb = RecordBatch::try_new(
            schemas()[1].clone(),
            vec![
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        ChangeBatch::from_kinds(rb, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
    }

    fn run(join: &mut Join, side: usize, batch: ChangeBatch) -> String {
        format_rows(&join.apply(side, &batch).unwrap(), "").unwrap()
    }

    #[test]
    fn a_left_join_retracts_the_padded_row_at_the_first_match_and_adds_it_back_after_the_last() {
        let mut j = join([true, false]);
        assert_eq!(run(&mut j, 0, orders(&[(Insert, 1, Some(10))])), "+I[1, 10, null, null]\n");
        assert_eq!(
            run(&mut j, 1, customers(&[(Insert, Some(10), "ann")])),
            "-D[1, 10, null, null]\n+I[1, 10, 10, ann]\n"
        );
        assert_eq!(run(&mut j, 1, customers(&[(Insert, Some(10), "bob")])), "+I[1, 10, 10, bob]\n");
        assert_eq!(run(&mut j, 1, customers(&[(Delete, Some(10), "ann")])), "-D[1, 10, 10, ann]\n");
        // An update of the one match: the padded row comes back in between, as in Flink.
        assert_eq!(
            run(&mut j, 1, customers(&[(UpdateBefore, Some(10), "bob"), (UpdateAfter, Some(10), "cy")])),
            "-D[1, 10, 10, bob]\n+I[1, 10, null, null]\n-D[1, 10, null, null]\n+I[1, 10, 10, cy]\n"
        );
        // An order moving to a customer that does not exist.
        assert_eq!(
            run(&mut j, 0, orders(&[(UpdateBefore, 1, Some(10)), (UpdateAfter, 1, Some(11))])),
            "-D[1, 10, 10, cy]\n+I[1, 11, null, null]\n"
        );
        // A NULL key matches nothing and needs no state; on the inner side it gives nothing.
        assert_eq!(run(&mut j, 0, orders(&[(Insert, 2, None)])), "+I[2, null, null, null]\n");
        assert_eq!(run(&mut j, 1, customers(&[(Insert, None, "nul")])), "");
        assert_eq!(run(&mut j, 0, orders(&[(Delete, 2, None)])), "-D[2, null, null, null]\n");
        assert_eq!(j.len(), 2, "order 1 and customer cy");
    }

    #[test]
    fn a_full_join_pads_both_sides_with_the_multiplicity_of_their_rows() {
        let mut j = join([true, true]);
        let twice = [(Insert, Some(20), "zed"), (Insert, Some(20), "zed")];
        assert_eq!(run(&mut j, 1, customers(&twice)), "+I[null, null, 20, zed]\n+I[null, null, 20, zed]\n");
        assert_eq!(
            run(&mut j, 0, orders(&[(Insert, 3, Some(20))])),
            "-D[null, null, 20, zed]\n-D[null, null, 20, zed]\n+I[3, 20, 20, zed]\n+I[3, 20, 20, zed]\n"
        );
        assert_eq!(run(&mut j, 1, customers(&[(Delete, Some(20), "zed")])), "-D[3, 20, 20, zed]\n");
        assert_eq!(run(&mut j, 0, orders(&[(Delete, 3, Some(20))])), "-D[3, 20, 20, zed]\n+I[null, null, 20, zed]\n");
    }

    #[test]
    fn a_semi_join_shows_a_row_from_its_first_match_to_its_last_and_an_anti_join_the_other_way_round() {
        for anti in [false, true] {
            let mut j = semi(anti);
            let (first_match, last_gone) = if anti { ("-D", "+I") } else { ("+I", "-D") };
            let expect = |kind: &str, rows: &[&str]| rows.iter().map(|r| format!("{kind}[{r}]\n")).collect::<String>();
            let twice = orders(&[(Insert, 1, Some(10)), (Insert, 1, Some(10)), (Insert, 2, None)]);
            let without = if anti { "+I[1, 10]\n+I[1, 10]\n+I[2, null]\n" } else { "" };
            assert_eq!(run(&mut j, 0, twice), without, "anti: {anti}");
            // The first match shows (hides) the order, as often as it is there; a second changes nothing.
            assert_eq!(
                run(&mut j, 1, customers(&[(Insert, Some(10), "ann")])),
                expect(first_match, &["1, 10", "1, 10"])
            );
            assert_eq!(run(&mut j, 1, customers(&[(Insert, Some(10), "bob")])), "");
            assert_eq!(run(&mut j, 1, customers(&[(Delete, Some(10), "ann")])), "");
            assert_eq!(run(&mut j, 1, customers(&[(Delete, Some(10), "bob")])), expect(last_gone, &["1, 10", "1, 10"]));
        }
    }

    #[test]
    fn a_restored_state_continues_exactly_as_the_original() {
        let mut j = join([true, true]);
        run(&mut j, 0, orders(&[(Insert, 1, Some(10)), (Insert, 1, Some(10)), (Insert, 2, Some(11))]));
        run(&mut j, 1, customers(&[(Insert, Some(10), "ann"), (Insert, Some(12), "eve")]));
        let Some(OperatorSnapshot::Changed(state)) = j.snapshot().unwrap() else { panic!("no state") };
        assert!(matches!(j.snapshot().unwrap(), Some(OperatorSnapshot::Unchanged)));
        let mut restored = join([true, true]);
        restored.restore(state).unwrap();
        assert!(matches!(restored.snapshot().unwrap(), Some(OperatorSnapshot::Unchanged)));
        assert_eq!(restored.len(), j.len());
        let next = customers(&[(Delete, Some(10), "ann"), (Insert, Some(11), "bob"), (Insert, Some(12), "eve")]);
        assert_eq!(run(&mut restored, 1, next.clone()), run(&mut j, 1, next));
        let next = orders(&[(Delete, 1, Some(10)), (Delete, 2, Some(11)), (Insert, 4, Some(12))]);
        assert_eq!(run(&mut restored, 0, next.clone()), run(&mut j, 0, next));

        let Some(OperatorSnapshot::Changed(state)) = j.snapshot().unwrap() else { panic!("no state") };
        // Another join over columns of the same types.
        let err = join([true, false]).restore(state.clone()).unwrap_err().to_string();
        assert!(err.contains("FULL JOIN ON (customer@1) = (id@0) where this query's is LEFT JOIN"), "{err}");
        assert!(err.contains("--fresh"), "{err}");
        let [left, _] = schemas();
        let other = JoinSpec::new(JoinParts {
            left_keys: vec![col("id", &left).unwrap()],
            right_keys: vec![col("id", &left).unwrap()],
            key_types: vec![DataType::Int64],
            nulls_match: false,
            filter: None,
            kind: JoinKind::Pairs { outer: [false, false] },
            left: left.clone(),
            right: left.clone(),
            output_schema: Arc::new(Schema::new([left.fields().to_vec(), left.fields().to_vec()].concat())),
            unique_keys: vec![],
        })
        .unwrap();
        let err = Join::new("other".into(), Arc::new(other)).unwrap().restore(state).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }

    #[test]
    fn retracting_a_row_never_added_is_an_error_not_a_negative_count() {
        let mut j = join([false, false]);
        let err = j.apply(0, &orders(&[(Delete, 1, Some(10))])).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }
}
