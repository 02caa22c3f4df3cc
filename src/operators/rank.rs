//! Flink's deduplication and Top-N over a changelog, with retractions: `ROW_NUMBER() OVER
//! (PARTITION BY … ORDER BY …)` kept to `rn <= N` (`rn = 1`: keep the first or the latest row per
//! key), as Flink's Rank operator over an updating input (`RetractableTopNFunction`). Each
//! partition keeps all its rows sorted by the order key, so that when a row of the top N is
//! retracted the next one moves up, and a row that arrives late with a lower order key than the
//! rows shown does not enter. Rows whose order keys are equal rank in arrival order, the earlier
//! first, as in Flink; a retraction takes away the earliest-arrived row equal to it.
//!
//! After each batch, every partition the batch touched emits how its top N changed (Flink's
//! changes folded per batch, as the GROUP BY does: which intermediate results are seen depends on
//! batch boundaries, the final result does not):
//! - when the query shows the row number, per number: `-U old` / `+U new` where the row at that
//!   number changed, `+I` where a number got its first row, `-D` where a number lost its row. A row
//!   entering at number 1 thus updates every number below it, as in Flink; the result is keyed by
//!   the partition key and the number;
//! - when it does not, the rows that left the top N give `-D`, the rows that entered `+I`; with N
//!   = 1 the two are one update of the partition's row, `-U old` / `+U new`, keyed by the
//!   partition key.
//!
//! The result is the input's columns and the row number (BIGINT UNSIGNED, as DataFusion plans the
//! window). When the number is not shown, the column holds the row's number when it was emitted;
//! no step reads it.
//!
//! Limits: the state holds every row of the input, as Flink's does without state TTL; each touch
//! of a partition copies its first N rows, so a very large N costs per batch. A retraction of a row
//! the state does not hold (a job resumed with another run's state) stops the job.
//!
//! State: the rows with their arrival numbers, as typed columns, written whole at a checkpoint
//! after any change, not at all otherwise. Partition and order keys are computed again on restore.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{new_empty_array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt64Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;

use super::StatefulNode;
use crate::changelog::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

/// A planned deduplication or Top-N: over rows of `input_schema`, per partition, the first `limit`
/// rows by the order key.
#[derive(Debug)]
pub struct RankSpec {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    limit: usize,
    /// Whether the query shows the row number: then a row's change of number is a change of the
    /// result.
    numbered: bool,
    input_schema: SchemaRef,
    /// The input's columns, then the row number.
    output_schema: SchemaRef,
}

impl RankSpec {
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
        limit: usize,
        numbered: bool,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let fields = output_schema.fields();
        let shaped = fields.len() == input_schema.fields().len() + 1
            && fields.last().is_some_and(|f| f.data_type() == &DataType::UInt64);
        if !shaped || limit == 0 || order.is_empty() {
            return Err(Error::internal(format!(
                "a ROW_NUMBER planned with {} order keys, limit {limit} and result {output_schema:?} over \
                 {input_schema:?}",
                order.len()
            )));
        }
        let spec = RankSpec { partition, order, limit, numbered, input_schema, output_schema };
        // The rows and keys are kept in arrow's row format; refuse at planning what it cannot
        // encode, naming the columns.
        let unsupported: Vec<String> = spec
            .input_schema
            .fields()
            .iter()
            .filter(|f| !RowConverter::supports_fields(&[SortField::new(f.data_type().clone())]))
            .map(|f| format!("`{}` ({})", f.name(), f.data_type()))
            .collect();
        if !unsupported.is_empty() {
            return Err(Error::user(format!(
                "ROW_NUMBER() OVER … cannot keep rows with column {}: select only the columns the query needs in \
                 the sub-query that numbers the rows",
                unsupported.join(", ")
            )));
        }
        let (partition, order) = spec.key_fields()?;
        if !RowConverter::supports_fields(&partition) || !RowConverter::supports_fields(&order) {
            return Err(Error::user(
                "ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) cannot partition or order by values of these types: \
                 PARTITION BY and ORDER BY plain columns",
            ));
        }
        Ok(spec)
    }

    /// The result's columns that are a unique key of it: the partition key (columns of the input
    /// passed through as they are), and the row number where several rows of a partition are
    /// shown; none when rows without their number are shown several per partition.
    pub fn unique_key(&self) -> Option<Vec<usize>> {
        let mut key = self
            .partition
            .iter()
            .map(|e| e.downcast_ref::<Column>().map(Column::index))
            .collect::<Option<Vec<usize>>>()?;
        if self.limit > 1 {
            if !self.numbered {
                return None;
            }
            key.push(self.input_schema.fields().len());
        }
        Some(key)
    }

    /// What the unique key is made of, for messages.
    pub fn key_columns(&self) -> &'static str {
        if self.limit > 1 {
            "PARTITION BY columns and row number"
        } else {
            "PARTITION BY columns"
        }
    }

    /// The sort fields of the partition key and of the order key.
    fn key_fields(&self) -> Result<(Vec<SortField>, Vec<SortField>)> {
        let partition = self
            .partition
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(&self.input_schema)?)))
            .collect::<Result<Vec<_>>>()?;
        let order = self
            .order
            .iter()
            .map(|(e, options)| Ok(SortField::new_with_options(e.data_type(&self.input_schema)?, *options)))
            .collect::<Result<Vec<_>>>()?;
        Ok((partition, order))
    }

    /// The schema of the state a snapshot stores: the input's columns, then each row's arrival
    /// number.
    fn state_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> =
            self.input_schema.fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), true)).collect();
        fields.push(Field::new("arrival", DataType::UInt64, false));
        Arc::new(Schema::new(fields))
    }
}

/// A partition's rows in rank order: by order key (its row encoding, which sorts as the ORDER BY
/// says), then by arrival; each row in the input's row encoding.
type Ranked = BTreeMap<(Box<[u8]>, u64), Box<[u8]>>;

/// A partition's first rows, in rank order.
type Top = Vec<Box<[u8]>>;

/// A change of the result: its kind, the row's number, the row.
type Change = (RowKind, u64, Box<[u8]>);

/// The running deduplication or Top-N of one query node.
pub struct Rank {
    name: String,
    spec: Arc<RankSpec>,
    /// `None` without PARTITION BY: all rows are one partition.
    partition_keys: Option<RowConverter>,
    order_keys: RowConverter,
    rows: RowConverter,
    partitions: HashMap<Box<[u8]>, Ranked>,
    /// The arrival number of the next row added.
    next_arrival: u64,
    /// Whether the rows changed since the last snapshot or restore.
    changed: bool,
}

/// The encodings of a batch's rows: partition key (`None` without PARTITION BY), order key, row.
struct Encoded {
    partitions: Option<Rows>,
    orders: Rows,
    rows: Rows,
}

impl Encoded {
    fn partition(&self, row: usize) -> &[u8] {
        self.partitions.as_ref().map_or(&[], |p| p.row(row).data())
    }
}

impl Rank {
    /// `name` identifies its state in checkpoints (stable across runs of the job file).
    pub fn new(name: String, spec: Arc<RankSpec>) -> Result<Self> {
        let (partition, order) = spec.key_fields()?;
        let partition_keys = if partition.is_empty() { None } else { Some(RowConverter::new(partition)?) };
        let rows = RowConverter::new(
            spec.input_schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect(),
        )?;
        // Changed from the start: the first checkpoint stores the (empty) state, so that a resume
        // finds a state for every operator.
        Ok(Rank {
            name,
            partition_keys,
            order_keys: RowConverter::new(order)?,
            rows,
            spec,
            partitions: HashMap::new(),
            next_arrival: 0,
            changed: true,
        })
    }

    /// How many rows it holds, over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Takes one batch of changes, gives the changes of the result.
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        if batch.is_empty() {
            return self.output(&[]);
        }
        let encoded = self.encode(batch.rows())?;

        // The partitions touched, in the order first touched, with their top rows before the batch.
        let mut touched: Vec<(&[u8], Top)> = Vec::new();
        let mut seen = HashSet::new();
        for row in 0..batch.num_rows() {
            let key = encoded.partition(row);
            if seen.insert(key) {
                touched.push((key, self.top(key)));
            }
            let order = encoded.orders.row(row).data();
            let bytes = encoded.rows.row(row).data();
            if batch.kind(row).is_addition() {
                let ranked = match self.partitions.get_mut(key) {
                    Some(ranked) => ranked,
                    None => self.partitions.entry(key.into()).or_default(),
                };
                ranked.insert((order.into(), self.next_arrival), bytes.into());
                self.next_arrival += 1;
            } else {
                self.retract(key, order, bytes)?;
            }
        }
        self.changed = true;

        let mut changes: Vec<Change> = Vec::new();
        for (key, before) in touched {
            let after = self.top(key);
            diff(before, after, self.spec.numbered, self.spec.limit == 1, &mut changes);
            if self.partitions.get(key).is_some_and(BTreeMap::is_empty) {
                self.partitions.remove(key);
            }
        }
        self.output(&changes)
    }

    fn encode(&self, rows: &RecordBatch) -> Result<Encoded> {
        let n = rows.num_rows();
        let evaluate = |e: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> { Ok(e.evaluate(rows)?.into_array(n)?) };
        let partitions = match &self.partition_keys {
            Some(converter) => {
                let columns = self.spec.partition.iter().map(evaluate).collect::<Result<Vec<_>>>()?;
                Some(converter.convert_columns(&columns)?)
            }
            None => None,
        };
        let columns = self.spec.order.iter().map(|(e, _)| evaluate(e)).collect::<Result<Vec<_>>>()?;
        let orders = self.order_keys.convert_columns(&columns)?;
        Ok(Encoded { partitions, orders, rows: self.rows.convert_columns(rows.columns())? })
    }

    /// The first `limit` rows of a partition, in rank order.
    fn top(&self, key: &[u8]) -> Top {
        self.partitions.get(key).map_or_else(Vec::new, |r| r.values().take(self.spec.limit).cloned().collect())
    }

    /// Takes away the earliest-arrived row of the partition equal to `row`.
    fn retract(&mut self, key: &[u8], order: &[u8], row: &[u8]) -> Result<()> {
        let ranked = self.partitions.get_mut(key);
        let found = ranked.as_ref().and_then(|ranked| {
            let order: Box<[u8]> = order.into();
            ranked.range((order.clone(), 0)..=(order, u64::MAX)).find(|(_, r)| ***r == *row).map(|(at, _)| at.clone())
        });
        match (ranked, found) {
            (Some(ranked), Some(at)) => {
                ranked.remove(&at);
                Ok(())
            }
            _ => Err(Error::user(
                "a ROW_NUMBER() OVER … received a retraction of a row it never received, which happens when a job \
                 resumes with state of another run; restart it with --fresh",
            )),
        }
    }

    /// The changes as a batch of the result: the rows' columns, then their numbers.
    fn output(&self, changes: &[Change]) -> Result<ChangeBatch> {
        let mut columns = if changes.is_empty() {
            self.spec.input_schema.fields().iter().map(|f| new_empty_array(f.data_type())).collect()
        } else {
            let parser = self.rows.parser();
            self.rows.convert_rows(changes.iter().map(|(_, _, row)| parser.parse(row)))?
        };
        columns.push(Arc::new(UInt64Array::from_iter_values(changes.iter().map(|(_, number, _)| *number))));
        let options = RecordBatchOptions::new().with_row_count(Some(changes.len()));
        let rows = RecordBatch::try_new_with_options(self.spec.output_schema.clone(), columns, &options)?;
        ChangeBatch::from_kinds(rows, &changes.iter().map(|(kind, _, _)| *kind).collect::<Vec<_>>())
    }

    /// The rows of all partitions, by partition, rank and arrival, with their arrival numbers.
    fn state(&self) -> Result<RecordBatch> {
        let mut partitions: Vec<(&Box<[u8]>, &Ranked)> = self.partitions.iter().collect();
        partitions.sort_by(|a, b| a.0.cmp(b.0));
        let entries: Vec<(u64, &[u8])> = partitions
            .iter()
            .flat_map(|(_, ranked)| ranked.iter().map(|((_, arrival), row)| (*arrival, &row[..])))
            .collect();
        let mut columns = if entries.is_empty() {
            self.spec.input_schema.fields().iter().map(|f| new_empty_array(f.data_type())).collect()
        } else {
            let parser = self.rows.parser();
            self.rows.convert_rows(entries.iter().map(|(_, row)| parser.parse(row)))?
        };
        columns.push(Arc::new(UInt64Array::from_iter_values(entries.iter().map(|(arrival, _)| *arrival))));
        let options = RecordBatchOptions::new().with_row_count(Some(entries.len()));
        Ok(RecordBatch::try_new_with_options(self.spec.state_schema(), columns, &options)?)
    }

    fn load(&mut self, state: &RecordBatch) -> Result<()> {
        let width = self.spec.input_schema.fields().len();
        let options = RecordBatchOptions::new().with_row_count(Some(state.num_rows()));
        let rows = RecordBatch::try_new_with_options(
            self.spec.input_schema.clone(),
            state.columns()[..width].to_vec(),
            &options,
        )?;
        let arrivals = state.column(width).as_primitive::<UInt64Type>();
        let encoded = self.encode(&rows)?;
        let mut partitions: HashMap<Box<[u8]>, Ranked> = HashMap::new();
        for row in 0..rows.num_rows() {
            let arrival = arrivals.value(row);
            partitions
                .entry(encoded.partition(row).into())
                .or_default()
                .insert((encoded.orders.row(row).data().into(), arrival), encoded.rows.row(row).data().into());
        }
        self.next_arrival = arrivals.values().iter().max().map_or(0, |a| a + 1);
        self.partitions = partitions;
        Ok(())
    }
}

/// Adds the changes that turn a partition's top rows `before` into `after` (both in rank order) to
/// `out`, each with its row number: per number when the result shows them (`numbered`), else the
/// rows that left and entered, as one update when a partition shows one row (`single`).
fn diff(before: Top, after: Top, numbered: bool, single: bool, out: &mut Vec<Change>) {
    if numbered {
        let mut before = before.into_iter();
        let mut after = after.into_iter();
        for number in 1.. {
            match (before.next(), after.next()) {
                (Some(old), Some(new)) if old != new => {
                    out.push((RowKind::UpdateBefore, number, old));
                    out.push((RowKind::UpdateAfter, number, new));
                }
                (Some(_), Some(_)) => {}
                (Some(old), None) => out.push((RowKind::Delete, number, old)),
                (None, Some(new)) => out.push((RowKind::Insert, number, new)),
                (None, None) => break,
            }
        }
        return;
    }
    let left = unmatched(&before, &after);
    let entered = unmatched(&after, &before);
    if single && left.len() == 1 && entered.len() == 1 {
        out.push((RowKind::UpdateBefore, 1, before[left[0]].clone()));
        out.push((RowKind::UpdateAfter, 1, after[entered[0]].clone()));
        return;
    }
    out.extend(left.into_iter().map(|i| (RowKind::Delete, i as u64 + 1, before[i].clone())));
    out.extend(entered.into_iter().map(|i| (RowKind::Insert, i as u64 + 1, after[i].clone())));
}

/// The positions of the rows of `rows` that `other` does not hold (counting duplicates).
fn unmatched(rows: &[Box<[u8]>], other: &[Box<[u8]>]) -> Vec<usize> {
    let mut available: HashMap<&[u8], usize> = HashMap::new();
    for row in other {
        *available.entry(row).or_default() += 1;
    }
    (0..rows.len())
        .filter(|i| match available.get_mut(&rows[*i][..]) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

impl StatefulNode for Rank {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn construct(&self) -> &'static str {
        "ROW_NUMBER() OVER …"
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
    use datafusion::physical_expr::expressions::col;
    use RowKind::*;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("ts", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]))
    }

    /// Per `k`, the first `limit` rows by `ts DESC NULLS LAST`.
    fn rank(limit: usize, numbered: bool) -> Rank {
        let schema = input_schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("rn", DataType::UInt64, false));
        let spec = RankSpec::new(
            vec![col("k", &schema).unwrap()],
            vec![(col("ts", &schema).unwrap(), SortOptions { descending: true, nulls_first: false })],
            limit,
            numbered,
            schema,
            Arc::new(Schema::new(fields)),
        )
        .unwrap();
        Rank::new("test".into(), Arc::new(spec)).unwrap()
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

    fn run(rank: &mut Rank, rows: &[(RowKind, i64, Option<i64>, &str)]) -> String {
        format_rows(&rank.apply(&batch(rows)).unwrap(), "").unwrap()
    }

    #[test]
    fn deduplication_keeps_the_latest_version_and_ignores_an_older_one_arriving_late() {
        let mut dedup = rank(1, false);
        assert_eq!(
            run(&mut dedup, &[(Insert, 1, Some(5), "a"), (Insert, 2, Some(1), "x")]),
            "+I[1, 5, a, 1]\n+I[2, 1, x, 1]\n"
        );
        assert_eq!(run(&mut dedup, &[(Insert, 1, Some(3), "late")]), "", "an older version arriving late");
        assert_eq!(run(&mut dedup, &[(Insert, 1, Some(7), "b")]), "-U[1, 5, a, 1]\n+U[1, 7, b, 1]\n");
        // NULL orders lowest: last in descending order.
        assert_eq!(run(&mut dedup, &[(Insert, 1, None, "null")]), "");
        // Within one batch only the net change of the partition shows.
        assert_eq!(
            run(&mut dedup, &[(Insert, 1, Some(9), "c"), (Insert, 1, Some(8), "d"), (Delete, 1, Some(9), "c")]),
            "-U[1, 7, b, 1]\n+U[1, 8, d, 1]\n"
        );
    }

    #[test]
    fn a_retracted_top_row_lets_the_next_one_in() {
        let mut dedup = rank(1, false);
        run(&mut dedup, &[(Insert, 1, Some(5), "a"), (Insert, 1, Some(3), "b"), (Insert, 1, None, "n")]);
        assert_eq!(run(&mut dedup, &[(Delete, 1, Some(5), "a")]), "-U[1, 5, a, 1]\n+U[1, 3, b, 1]\n");
        // An update of the top row that keeps it on top.
        assert_eq!(
            run(&mut dedup, &[(UpdateBefore, 1, Some(3), "b"), (UpdateAfter, 1, Some(4), "b2")]),
            "-U[1, 3, b, 1]\n+U[1, 4, b2, 1]\n"
        );
        // A retraction below the top changes nothing shown.
        assert_eq!(run(&mut dedup, &[(Delete, 1, None, "n")]), "");
        assert_eq!(run(&mut dedup, &[(Delete, 1, Some(4), "b2")]), "-D[1, 4, b2, 1]\n");
        assert!(dedup.is_empty());
    }

    #[test]
    fn a_numbered_top_n_updates_every_number_a_row_moves_past() {
        let mut top = rank(2, true);
        assert_eq!(run(&mut top, &[(Insert, 1, Some(5), "a")]), "+I[1, 5, a, 1]\n");
        assert_eq!(run(&mut top, &[(Insert, 1, Some(3), "b")]), "+I[1, 3, b, 2]\n");
        assert_eq!(run(&mut top, &[(Insert, 1, Some(1), "c")]), "", "below the top 2");
        assert_eq!(
            run(&mut top, &[(Insert, 1, Some(9), "d")]),
            "-U[1, 5, a, 1]\n+U[1, 9, d, 1]\n-U[1, 3, b, 2]\n+U[1, 5, a, 2]\n"
        );
        assert_eq!(
            run(&mut top, &[(Delete, 1, Some(9), "d")]),
            "-U[1, 9, d, 1]\n+U[1, 5, a, 1]\n-U[1, 5, a, 2]\n+U[1, 3, b, 2]\n"
        );
        assert_eq!(run(&mut top, &[(Delete, 1, Some(3), "b")]), "-U[1, 3, b, 2]\n+U[1, 1, c, 2]\n");
        assert_eq!(run(&mut top, &[(Delete, 1, Some(5), "a")]), "-U[1, 5, a, 1]\n+U[1, 1, c, 1]\n-D[1, 1, c, 2]\n");
    }

    #[test]
    fn an_unnumbered_top_n_shows_only_rows_entering_and_leaving() {
        let mut top = rank(2, false);
        run(&mut top, &[(Insert, 1, Some(5), "a"), (Insert, 1, Some(3), "b")]);
        assert_eq!(run(&mut top, &[(Insert, 1, Some(9), "d")]), "-D[1, 3, b, 2]\n+I[1, 9, d, 1]\n");
        assert_eq!(run(&mut top, &[(Delete, 1, Some(9), "d")]), "-D[1, 9, d, 1]\n+I[1, 3, b, 2]\n");
        // A row moving from number 2 to 1 is no change of the rows shown.
        assert_eq!(run(&mut top, &[(Delete, 1, Some(5), "a")]), "-D[1, 5, a, 1]\n");
    }

    #[test]
    fn equal_order_keys_rank_in_arrival_order() {
        let mut top = rank(2, true);
        run(&mut top, &[(Insert, 1, Some(5), "first"), (Insert, 1, Some(5), "second")]);
        assert_eq!(run(&mut top, &[(Insert, 1, Some(5), "third")]), "");
        assert_eq!(
            run(&mut top, &[(Delete, 1, Some(5), "first")]),
            "-U[1, 5, first, 1]\n+U[1, 5, second, 1]\n-U[1, 5, second, 2]\n+U[1, 5, third, 2]\n"
        );
        // A retraction takes away the earliest-arrived of equal rows.
        run(&mut top, &[(Insert, 1, Some(5), "second")]);
        assert_eq!(
            run(&mut top, &[(Delete, 1, Some(5), "second")]),
            "-U[1, 5, second, 1]\n+U[1, 5, third, 1]\n-U[1, 5, third, 2]\n+U[1, 5, second, 2]\n"
        );
    }

    #[test]
    fn a_retraction_of_a_row_never_received_asks_for_a_fresh_start() {
        let mut dedup = rank(1, false);
        run(&mut dedup, &[(Insert, 1, Some(5), "a")]);
        let err = dedup.apply(&batch(&[(Delete, 1, Some(5), "other")])).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }

    #[test]
    fn a_restored_state_continues_exactly_as_the_original() {
        let mut top = rank(2, true);
        run(
            &mut top,
            &[
                (Insert, 1, Some(5), "a"),
                (Insert, 1, Some(5), "tie"),
                (Insert, 2, None, "n"),
                (Insert, 1, Some(1), "c"),
            ],
        );
        let Some(OperatorSnapshot::Changed(state)) = top.snapshot().unwrap() else { panic!("no state") };
        assert!(matches!(top.snapshot().unwrap(), Some(OperatorSnapshot::Unchanged)));
        let mut restored = rank(2, true);
        restored.restore(state).unwrap();
        assert!(matches!(restored.snapshot().unwrap(), Some(OperatorSnapshot::Unchanged)));
        assert_eq!(restored.len(), 4);
        for next in [
            &[(Delete, 1, Some(5), "a"), (Insert, 2, Some(8), "b")][..],
            &[(Insert, 1, Some(5), "tie2"), (Delete, 1, Some(5), "tie")][..],
            &[(Delete, 2, None, "n"), (Delete, 2, Some(8), "b")][..],
        ] {
            assert_eq!(run(&mut restored, next), run(&mut top, next));
        }

        let mut other = Rank::new(
            "other".into(),
            Arc::new(
                RankSpec::new(
                    vec![],
                    vec![(col("k", &input_schema()).unwrap(), SortOptions::default())],
                    1,
                    false,
                    Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)])),
                    Arc::new(Schema::new(vec![
                        Field::new("k", DataType::Int64, false),
                        Field::new("rn", DataType::UInt64, false),
                    ])),
                )
                .unwrap(),
            ),
        )
        .unwrap();
        let Some(OperatorSnapshot::Changed(state)) = top.snapshot().unwrap() else { panic!("no state") };
        let err = other.restore(state).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }
}
