//! The changelog contract (DESIGN.md §3): a batch of rows of the table's declared columns plus one
//! row kind per row, using Flink's RowKind codes. An update is a `-U` row immediately followed by
//! its `+U` row in the same batch. The row kinds travel beside the user's columns so they never
//! appear in the user's schema.

mod compact;
mod display;
mod event;
mod filter;
mod partition;

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int8Array, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

pub use compact::{check_versions, compact_by_key, KeyedChanges, Ties, Versioned};
pub use display::format_rows;
pub use event::{Event, SchemaChange, SourceColumn, TableId, Truncation};
pub use filter::{filter_changes, Retractions};
pub(crate) use partition::fnv1a64;
pub use partition::KeyPartitioner;

use crate::error::{Error, Result};

/// Flink's RowKind, with its byte codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    Insert = 0,
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl RowKind {
    pub fn code(self) -> i8 {
        self as i8
    }

    pub fn from_code(code: i8) -> Option<RowKind> {
        match code {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            _ => None,
        }
    }

    /// Flink's short string: `+I`, `-U`, `+U`, `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// `+I` and `+U` add a row; `-U` and `-D` retract one.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// Which row kinds a stream may carry; decides which sinks can take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogMode {
    /// Only `+I`.
    InsertOnly,
    /// `+I`, `-U`/`+U` pairs and `-D`.
    All,
    /// `+I`, `+U` and `-D` without `-U`: the latest row per key (e.g. REPLICA IDENTITY DEFAULT).
    Upsert,
}

impl ChangelogMode {
    pub fn is_insert_only(self) -> bool {
        self == ChangelogMode::InsertOnly
    }
}

/// Name of the row-kind column when a changelog batch is shown as one `RecordBatch`.
pub const ROW_KIND_COLUMN: &str = "op";

/// Rows of a table plus the row kind of each.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    rows: RecordBatch,
    kinds: Int8Array,
}

impl ChangeBatch {
    pub fn new(rows: RecordBatch, kinds: Int8Array) -> Result<Self> {
        if rows.num_rows() != kinds.len() {
            return Err(Error::internal(format!(
                "changelog batch has {} rows but {} row kinds",
                rows.num_rows(),
                kinds.len()
            )));
        }
        if kinds.null_count() > 0 || kinds.values().iter().any(|k| RowKind::from_code(*k).is_none()) {
            return Err(Error::internal("changelog batch carries an invalid row kind"));
        }
        Ok(ChangeBatch { rows, kinds })
    }

    /// A batch of `+I` rows.
    pub fn inserts(rows: RecordBatch) -> Self {
        let kinds = Int8Array::from(vec![RowKind::Insert.code(); rows.num_rows()]);
        ChangeBatch { rows, kinds }
    }

    pub fn from_kinds(rows: RecordBatch, kinds: &[RowKind]) -> Result<Self> {
        let kinds = Int8Array::from_iter_values(kinds.iter().map(|k| k.code()));
        ChangeBatch::new(rows, kinds)
    }

    pub fn rows(&self) -> &RecordBatch {
        &self.rows
    }

    pub fn kinds(&self) -> &Int8Array {
        &self.kinds
    }

    pub fn num_rows(&self) -> usize {
        self.rows.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.num_rows() == 0
    }

    pub fn kind(&self, row: usize) -> RowKind {
        // The constructor checked every code.
        RowKind::from_code(self.kinds.value(row)).unwrap_or(RowKind::Insert)
    }

    pub fn all_inserts(&self) -> bool {
        self.kinds.values().iter().all(|k| *k == RowKind::Insert.code())
    }

    /// The same changes over other columns (a projection of these rows).
    pub fn with_rows(&self, rows: RecordBatch) -> Result<Self> {
        ChangeBatch::new(rows, self.kinds.clone())
    }

    /// The rows at `indices`, with the given kinds.
    pub fn take(&self, indices: &[u32], kinds: Vec<i8>) -> Result<Self> {
        let indices = UInt32Array::from(indices.to_vec());
        let rows = take_record_batch(&self.rows, &indices)?;
        ChangeBatch::new(rows, Int8Array::from(kinds))
    }

    /// `len` rows from `offset` (the caller keeps update pairs together).
    pub fn slice(&self, offset: usize, len: usize) -> ChangeBatch {
        ChangeBatch { rows: self.rows.slice(offset, len), kinds: self.kinds.slice(offset, len) }
    }

    /// The first `n` rows, never splitting an update pair.
    pub fn head(&self, n: usize) -> ChangeBatch {
        let mut n = n.min(self.num_rows());
        if n > 0 && n < self.num_rows() && self.kind(n - 1) == RowKind::UpdateBefore {
            n += 1;
        }
        ChangeBatch { rows: self.rows.slice(0, n), kinds: self.kinds.slice(0, n) }
    }

    /// The changes of `parts`, in order, as one batch of `schema`.
    pub fn concat(schema: &datafusion::arrow::datatypes::SchemaRef, parts: &[ChangeBatch]) -> Result<Self> {
        if parts.is_empty() {
            return Ok(ChangeBatch::inserts(RecordBatch::new_empty(schema.clone())));
        }
        let rows = datafusion::arrow::compute::concat_batches(schema, parts.iter().map(|p| &p.rows))?;
        let kinds: Vec<&dyn Array> = parts.iter().map(|p| &p.kinds as &dyn Array).collect();
        let kinds = datafusion::arrow::compute::concat(&kinds)?;
        let kinds = kinds
            .as_any()
            .downcast_ref::<Int8Array>()
            .ok_or_else(|| Error::internal("row kinds are not Int8"))?
            .clone();
        ChangeBatch::new(rows, kinds)
    }

    /// The rows as one `RecordBatch` with the row kind as a leading `op` column holding `+I`, `-U`, ….
    pub fn to_display_batch(&self) -> Result<RecordBatch> {
        let ops: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from_iter_values(
            (0..self.num_rows()).map(|i| self.kind(i).short()),
        ));
        let mut fields = vec![Arc::new(Field::new(ROW_KIND_COLUMN, DataType::Utf8, false))];
        fields.extend(self.rows.schema().fields().iter().cloned());
        let mut columns = vec![ops];
        columns.extend(self.rows.columns().iter().cloned());
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    /// A batch of (id BIGINT, name STRING) rows with the given kinds.
    pub fn batch(rows: &[(RowKind, i64, Option<&str>)]) -> ChangeBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let ids = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
        let names = StringArray::from_iter(rows.iter().map(|r| r.2));
        let rb = RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(names)]).unwrap();
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.0).collect();
        ChangeBatch::from_kinds(rb, &kinds).unwrap()
    }

    /// The batch as `(kind, id, name)` tuples.
    pub fn rows_of(batch: &ChangeBatch) -> Vec<(RowKind, i64, Option<String>)> {
        let ids = batch.rows().column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let names = batch.rows().column(1).as_any().downcast_ref::<StringArray>().unwrap();
        (0..batch.num_rows())
            .map(|i| {
                let name = (!names.is_null(i)).then(|| names.value(i).to_string());
                (batch.kind(i), ids.value(i), name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::RowKind::*;

    #[test]
    fn head_never_splits_an_update_pair() {
        let b = batch(&[(Insert, 1, None), (UpdateBefore, 1, None), (UpdateAfter, 1, Some("x"))]);
        assert_eq!(b.head(2).num_rows(), 3);
        assert_eq!(b.head(1).num_rows(), 1);
        assert_eq!(b.head(10).num_rows(), 3);
    }

    #[test]
    fn rejects_row_kind_count_mismatch() {
        let b = batch(&[(Insert, 1, None)]);
        let kinds = datafusion::arrow::array::Int8Array::from(vec![0i8, 0]);
        assert!(super::ChangeBatch::new(b.rows().clone(), kinds).is_err());
    }
}
