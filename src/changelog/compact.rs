//! Key compaction for keyed sinks: within one batch only the last change of each key matters.
//! A `-U` followed by a `+U` of the same key is an in-place update (no delete); a `-U` whose `+U`
//! has another key (the primary key changed) deletes the old key.

use std::collections::HashMap;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use super::{ChangeBatch, RowKind};
use crate::error::Result;

/// The net effect of a batch on a keyed table: rows to upsert and rows whose keys to delete,
/// each key at most once across both.
#[derive(Debug)]
pub struct KeyedChanges {
    pub upserts: RecordBatch,
    pub deletes: RecordBatch,
}

#[derive(Clone, Copy)]
enum Action {
    Upsert(u32),
    Delete(u32),
}

/// Compacts `batch` by the columns at `key_columns`.
pub fn compact_by_key(batch: &ChangeBatch, key_columns: &[usize]) -> Result<KeyedChanges> {
    let rows = batch.rows();
    let key_arrays: Vec<_> = key_columns.iter().map(|i| rows.column(*i).clone()).collect();
    let fields = key_arrays.iter().map(|a| SortField::new(a.data_type().clone())).collect();
    let converter = RowConverter::new(fields)?;
    let keys = converter.convert_columns(&key_arrays)?;

    let n = batch.num_rows();
    // Remember first-seen order so the output is deterministic.
    let mut order: Vec<&[u8]> = Vec::new();
    let mut last: HashMap<&[u8], Action> = HashMap::with_capacity(n);
    for i in 0..n {
        let key = keys.row(i).data();
        let action = match batch.kind(i) {
            RowKind::Insert | RowKind::UpdateAfter => Action::Upsert(i as u32),
            RowKind::Delete => Action::Delete(i as u32),
            RowKind::UpdateBefore => {
                let same_key_follows =
                    i + 1 < n && batch.kind(i + 1) == RowKind::UpdateAfter && keys.row(i + 1).data() == key;
                if same_key_follows {
                    continue;
                }
                Action::Delete(i as u32)
            }
        };
        if last.insert(key, action).is_none() {
            order.push(key);
        }
    }

    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for key in order {
        match last[key] {
            Action::Upsert(i) => upserts.push(i),
            Action::Delete(i) => deletes.push(i),
        }
    }
    Ok(KeyedChanges {
        upserts: take_record_batch(rows, &UInt32Array::from(upserts))?,
        deletes: take_record_batch(rows, &UInt32Array::from(deletes))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::test_util::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use RowKind::*;

    fn ids(b: &RecordBatch) -> Vec<i64> {
        b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
    }

    #[test]
    fn last_change_of_a_key_wins() {
        let b = batch(&[
            (Insert, 1, Some("a")),
            (UpdateBefore, 1, Some("a")),
            (UpdateAfter, 1, Some("b")),
            (Insert, 2, Some("x")),
            (Delete, 2, Some("x")),
        ]);
        let c = compact_by_key(&b, &[0]).unwrap();
        assert_eq!(ids(&c.upserts), vec![1]);
        let names = c.upserts.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "b");
        assert_eq!(ids(&c.deletes), vec![2]);
    }

    #[test]
    fn update_of_the_same_key_is_not_a_delete() {
        let b = batch(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 1, Some("b"))]);
        let c = compact_by_key(&b, &[0]).unwrap();
        assert_eq!(ids(&c.upserts), vec![1]);
        assert_eq!(c.deletes.num_rows(), 0);
    }

    #[test]
    fn primary_key_change_deletes_the_old_key() {
        let b = batch(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 2, Some("a"))]);
        let c = compact_by_key(&b, &[0]).unwrap();
        assert_eq!(ids(&c.upserts), vec![2]);
        assert_eq!(ids(&c.deletes), vec![1]);
    }

    #[test]
    fn reinsert_after_delete_is_an_upsert() {
        let b = batch(&[(Delete, 5, None), (Insert, 5, Some("new"))]);
        let c = compact_by_key(&b, &[0]).unwrap();
        assert_eq!(ids(&c.upserts), vec![5]);
        assert!(c.deletes.column(0).is_empty());
    }
}
