//! A WHERE clause over a changelog. Rows are kept or dropped one by one, except update pairs: when
//! the old row passes and the new one fails, the downstream table must lose the row (`-D old`);
//! when the old one fails and the new one passes, the row appears for the first time (`+I new`).
//!
//! Some sources send retractions (`-U`, `-D`) with the key only, the other columns NULL because
//! the server did not log them (PostgreSQL under `REPLICA IDENTITY DEFAULT`). Whether such an old
//! row passed cannot be told, and dropping its retraction would leave the row downstream for
//! good; so for those sources every retraction is taken to have passed. Downstream that costs at
//! most the delete of a key it does not hold, a no-op for keyed sinks.

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;

use super::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

/// What the retractions of a changelog carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retractions {
    /// The whole old row.
    WholeRows,
    /// Perhaps only the key (other columns NULL, not sent): a filter cannot judge them.
    MaybeKeyOnly,
}

/// Applies `passes` (NULL counts as false, as in SQL) to `batch` following the changelog rules.
pub fn filter_changes(batch: &ChangeBatch, passes: &BooleanArray, retractions: Retractions) -> Result<ChangeBatch> {
    if passes.len() != batch.num_rows() {
        return Err(Error::internal("filter result length differs from the batch"));
    }
    let judged = |i: usize| passes.is_valid(i) && passes.value(i);
    let pass = |i: usize| judged(i) || retractions == Retractions::MaybeKeyOnly && !batch.kind(i).is_addition();
    if batch.all_inserts() {
        let mask = if passes.null_count() > 0 {
            BooleanArray::from_iter((0..passes.len()).map(|i| Some(pass(i))))
        } else {
            passes.clone()
        };
        let rows = filter_record_batch(batch.rows(), &mask)?;
        return Ok(ChangeBatch::inserts(rows));
    }

    let n = batch.num_rows();
    let mut indices = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let kind = batch.kind(i);
        let is_pair = kind == RowKind::UpdateBefore && i + 1 < n && batch.kind(i + 1) == RowKind::UpdateAfter;
        if is_pair {
            match (pass(i), pass(i + 1)) {
                (true, true) => {
                    indices.extend([i as u32, i as u32 + 1]);
                    kinds.extend([RowKind::UpdateBefore.code(), RowKind::UpdateAfter.code()]);
                }
                (true, false) => {
                    indices.push(i as u32);
                    kinds.push(RowKind::Delete.code());
                }
                (false, true) => {
                    indices.push(i as u32 + 1);
                    kinds.push(RowKind::Insert.code());
                }
                (false, false) => {}
            }
            i += 2;
            continue;
        }
        let keep = match kind {
            RowKind::Insert | RowKind::Delete => pass(i).then_some(kind),
            // A lone -U (upsert streams have none): retract the old row if downstream could have it.
            RowKind::UpdateBefore => pass(i).then_some(RowKind::Delete),
            // A lone +U of an upsert stream: the key's latest row no longer passes, so whatever
            // downstream holds for the key must go. Deleting a key that is absent is a no-op.
            RowKind::UpdateAfter => Some(if pass(i) { RowKind::UpdateAfter } else { RowKind::Delete }),
        };
        if let Some(k) = keep {
            indices.push(i as u32);
            kinds.push(k.code());
        }
        i += 1;
    }
    batch.take(&indices, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::test_util::*;
    use RowKind::*;

    fn run(rows: &[(RowKind, i64, Option<&str>)], pass: &[Option<bool>]) -> Vec<(RowKind, i64, Option<String>)> {
        run_with(Retractions::WholeRows, rows, pass)
    }

    fn run_with(
        retractions: Retractions,
        rows: &[(RowKind, i64, Option<&str>)],
        pass: &[Option<bool>],
    ) -> Vec<(RowKind, i64, Option<String>)> {
        let b = batch(rows);
        rows_of(&filter_changes(&b, &BooleanArray::from(pass.to_vec()), retractions).unwrap())
    }

    #[test]
    fn key_only_retractions_always_pass_the_filter() {
        let key_only = |rows: &[(RowKind, i64, Option<&str>)], pass: &[Option<bool>]| {
            run_with(Retractions::MaybeKeyOnly, rows, pass)
        };
        // A delete whose non-key columns were not sent: NULL there fails `v <> 'x'`.
        assert_eq!(key_only(&[(Delete, 1, None)], &[None]), vec![(Delete, 1, None)]);
        // The old row may have passed: leaving the filter retracts it, staying keeps the pair.
        let pair = [(UpdateBefore, 2, None), (UpdateAfter, 2, Some("x"))];
        assert_eq!(key_only(&pair, &[None, Some(false)]), vec![(Delete, 2, None)]);
        assert_eq!(
            key_only(&pair, &[None, Some(true)]),
            vec![(UpdateBefore, 2, None), (UpdateAfter, 2, Some("x".into()))]
        );
        // Additions are judged as always.
        assert!(key_only(&[(Insert, 3, Some("x"))], &[Some(false)]).is_empty());
        assert_eq!(key_only(&[(UpdateAfter, 4, Some("x"))], &[Some(false)]), vec![(Delete, 4, Some("x".into()))]);
    }

    #[test]
    fn update_pair_leaving_the_filter_becomes_a_delete_of_the_old_row() {
        let out = run(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 1, Some("b"))], &[Some(true), Some(false)]);
        assert_eq!(out, vec![(Delete, 1, Some("a".into()))]);
    }

    #[test]
    fn update_pair_entering_the_filter_becomes_an_insert_of_the_new_row() {
        let out = run(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 1, Some("b"))], &[Some(false), Some(true)]);
        assert_eq!(out, vec![(Insert, 1, Some("b".into()))]);
    }

    #[test]
    fn update_pair_inside_or_outside_the_filter_is_kept_or_dropped_whole() {
        let rows = [(UpdateBefore, 1, Some("a")), (UpdateAfter, 1, Some("b"))];
        assert_eq!(run(&rows, &[Some(true), Some(true)]).len(), 2);
        assert!(run(&rows, &[Some(false), None]).is_empty());
    }

    #[test]
    fn null_predicate_counts_as_false() {
        let out = run(&[(Insert, 1, None), (Insert, 2, None), (Delete, 3, None)], &[None, Some(true), None]);
        assert_eq!(out, vec![(Insert, 2, None)]);
    }

    #[test]
    fn insert_only_fast_path_handles_nulls() {
        let out = run(&[(Insert, 1, None), (Insert, 2, None)], &[None, Some(true)]);
        assert_eq!(out, vec![(Insert, 2, None)]);
    }

    #[test]
    fn lone_update_after_failing_the_filter_deletes_the_key() {
        let out = run(&[(UpdateAfter, 7, Some("x"))], &[Some(false)]);
        assert_eq!(out, vec![(Delete, 7, Some("x".into()))]);
    }
}
