//! Key compaction for keyed sinks: within one batch only the last change of each key matters,
//! or, for a sink guarded by a version column, the change with the newest version.
//! A `-U` followed by a `+U` of the same key is an in-place update (no delete); a `-U` whose `+U`
//! has another key (the primary key changed) deletes the old key.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::arrow::util::display::array_value_to_string;

use super::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

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

impl Action {
    fn row(self) -> usize {
        match self {
            Action::Upsert(i) | Action::Delete(i) => i as usize,
        }
    }
}

/// Which change of a key survives when a sink orders changes by a version column.
#[derive(Debug, Clone, Copy)]
pub struct Versioned {
    /// The version column's index.
    pub column: usize,
    /// What wins between a delete and an upsert of the same version: the delete whatever the
    /// order (the jdbc guard: a delete's version is usually the deleted row's own, so a late
    /// copy of that row must not bring it back), or the later change (Doris' sequence column,
    /// whose load order decides ties).
    pub ties: Ties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ties {
    DeleteWins,
    LaterWins,
}

/// Compacts `batch` by the columns at `key_columns`: the last change of a key wins, or with
/// `versioned` the change with the greatest version (ties as [`Versioned::ties`] says, otherwise
/// the later change). A NULL version is an error naming the key: it cannot be ordered.
pub fn compact_by_key(
    batch: &ChangeBatch,
    key_columns: &[usize],
    versioned: Option<Versioned>,
) -> Result<KeyedChanges> {
    let rows = batch.rows();
    let keys = row_keys(rows, key_columns)?;
    let versions = match versioned {
        Some(v) => {
            check_versions(rows, key_columns, v.column)?;
            let column = rows.column(v.column).clone();
            Some((RowConverter::new(vec![SortField::new(column.data_type().clone())])?.convert_columns(&[column])?, v))
        }
        None => None,
    };
    // Whether `new` (a later change) replaces `old` of the same key.
    let replaces = |old: Action, new: Action| match &versions {
        None => true,
        Some((versions, v)) => match versions.row(new.row()).cmp(&versions.row(old.row())) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                !(v.ties == Ties::DeleteWins && matches!((old, new), (Action::Delete(_), Action::Upsert(_))))
            }
        },
    };

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
        match last.get_mut(key) {
            None => {
                last.insert(key, action);
                order.push(key);
            }
            Some(old) => {
                if replaces(*old, action) {
                    *old = action;
                }
            }
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

fn row_keys(rows: &RecordBatch, key_columns: &[usize]) -> Result<Rows> {
    let key_arrays: Vec<_> = key_columns.iter().map(|i| rows.column(*i).clone()).collect();
    let fields = key_arrays.iter().map(|a| SortField::new(a.data_type().clone())).collect();
    Ok(RowConverter::new(fields)?.convert_columns(&key_arrays)?)
}

/// An error naming the key of the first row whose version column is NULL: a sink ordering changes
/// by version cannot place such a change.
pub fn check_versions(rows: &RecordBatch, key_columns: &[usize], version_column: usize) -> Result<()> {
    let versions = rows.column(version_column);
    let Some(row) = (0..rows.num_rows()).find(|i| versions.is_null(*i)) else { return Ok(()) };
    let schema = rows.schema();
    let key = key_columns
        .iter()
        .map(|k| {
            let value = array_value_to_string(rows.column(*k), row).unwrap_or_else(|_| "?".into());
            format!("{} = {value}", schema.field(*k).name())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let name = schema.field(version_column).name();
    Err(Error::user(format!(
        "the change of key {key} has NULL in the version column `{name}`, so it cannot be ordered against other \
         changes of that key; give every row a version (e.g. COALESCE(`{name}`, …) in the query) or filter such rows out"
    )))
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
        let c = compact_by_key(&b, &[0], None).unwrap();
        assert_eq!(ids(&c.upserts), vec![1]);
        let names = c.upserts.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "b");
        assert_eq!(ids(&c.deletes), vec![2]);
    }

    #[test]
    fn update_of_the_same_key_is_not_a_delete() {
        let b = batch(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 1, Some("b"))]);
        let c = compact_by_key(&b, &[0], None).unwrap();
        assert_eq!(ids(&c.upserts), vec![1]);
        assert_eq!(c.deletes.num_rows(), 0);
    }

    #[test]
    fn primary_key_change_deletes_the_old_key() {
        let b = batch(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 2, Some("a"))]);
        let c = compact_by_key(&b, &[0], None).unwrap();
        assert_eq!(ids(&c.upserts), vec![2]);
        assert_eq!(ids(&c.deletes), vec![1]);
    }

    #[test]
    fn reinsert_after_delete_is_an_upsert() {
        let b = batch(&[(Delete, 5, None), (Insert, 5, Some("new"))]);
        let c = compact_by_key(&b, &[0], None).unwrap();
        assert_eq!(ids(&c.upserts), vec![5]);
        assert!(c.deletes.column(0).is_empty());
    }

    type Pairs = Vec<(i64, String)>;

    /// (id, name) rows whose name is the version: "a" < "b" < "c". Upserts and deletes.
    fn newest(b: &ChangeBatch, ties: Ties) -> (Pairs, Pairs) {
        let c = compact_by_key(b, &[0], Some(Versioned { column: 1, ties })).unwrap();
        let pairs = |r: &RecordBatch| {
            let names = r.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            ids(r).into_iter().enumerate().map(|(i, id)| (id, names.value(i).to_string())).collect()
        };
        (pairs(&c.upserts), pairs(&c.deletes))
    }

    fn owned(rows: &[(i64, &str)]) -> Pairs {
        rows.iter().map(|(i, s)| (*i, s.to_string())).collect()
    }

    #[test]
    fn with_a_version_the_newest_change_of_a_key_wins_whatever_the_order() {
        let b = batch(&[
            // Updated to b, then a late +I of the older a.
            (Insert, 1, Some("b")),
            (Insert, 1, Some("a")),
            // In order: create, update, update.
            (Insert, 2, Some("a")),
            (UpdateBefore, 2, Some("a")),
            (UpdateAfter, 2, Some("b")),
            (UpdateBefore, 2, Some("b")),
            (UpdateAfter, 2, Some("c")),
            // Deleted at b; the older insert arrives after the delete.
            (Delete, 3, Some("b")),
            (Insert, 3, Some("a")),
            // An update to c arrives before the delete of b: the update is newer.
            (Insert, 4, Some("a")),
            (UpdateBefore, 4, Some("a")),
            (UpdateAfter, 4, Some("c")),
            (Delete, 4, Some("b")),
            // Equal versions of upserts: the later one.
            (Insert, 5, Some("a")),
            (UpdateBefore, 5, Some("a")),
            (UpdateAfter, 5, Some("a")),
        ]);
        let (upserts, deletes) = newest(&b, Ties::DeleteWins);
        assert_eq!(upserts, owned(&[(1, "b"), (2, "c"), (4, "c"), (5, "a")]));
        assert_eq!(deletes, owned(&[(3, "b")]));
        // The same by arrival only: the last change of each key.
        let last = compact_by_key(&b, &[0], None).unwrap();
        assert_eq!((ids(&last.upserts), ids(&last.deletes)), (vec![1, 2, 3, 5], vec![4]));
    }

    #[test]
    fn a_delete_and_an_upsert_of_the_same_version_follow_the_tie_rule() {
        // The upsert the delete removed, delivered again after the delete; and the other order.
        let late_copy = batch(&[(Delete, 1, Some("b")), (Insert, 1, Some("b"))]);
        let in_order = batch(&[(Insert, 1, Some("b")), (Delete, 1, Some("b"))]);
        for b in [&late_copy, &in_order] {
            assert_eq!(newest(b, Ties::DeleteWins), (vec![], owned(&[(1, "b")])));
        }
        assert_eq!(newest(&late_copy, Ties::LaterWins), (owned(&[(1, "b")]), vec![]));
        assert_eq!(newest(&in_order, Ties::LaterWins), (vec![], owned(&[(1, "b")])));
    }

    #[test]
    fn a_null_version_is_refused_naming_the_key() {
        let b = batch(&[(Insert, 1, Some("a")), (Insert, 7, None)]);
        let err = compact_by_key(&b, &[0], Some(Versioned { column: 1, ties: Ties::DeleteWins })).unwrap_err();
        assert!(err.to_string().contains("key id = 7") && err.to_string().contains("`name`"), "{err}");
        assert_eq!(err.kind(), crate::error::ErrorKind::User);
    }
}
