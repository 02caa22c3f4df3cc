//! Routing a changelog by key, for keyed operators and for fanning one stream out to parallel
//! workers. Two things the changelog contract needs here that plain hash partitioning breaks:
//!
//! - An update pair must stay an adjacent `-U`/`+U` pair. When both rows have the same key they go
//!   to the same place together. When the key changes (an `UPDATE … SET id = …`), the two rows
//!   belong to different keys and possibly different partitions; a lone `-U` or `+U` there would
//!   break the contract downstream, so the pair becomes `-D old` in the old key's partition and
//!   `+I new` in the new key's. A keyed consumer ends with the same table either way.
//! - All changes of one key must go to one partition and keep their order, or a later change could
//!   overtake an earlier one.
//!
//! Upsert changelogs (`ChangelogMode::Upsert`, e.g. postgres-cdc under `REPLICA IDENTITY DEFAULT`)
//! carry `+U` rows without a `-U` before them: each is the key's latest row, an upsert, and passes
//! through unchanged. In the other modes such a row, or a `-U` not immediately followed by a `+U`,
//! means an operator upstream split a pair: that is a bug, reported as an internal error rather
//! than guessed around.
//!
//! The partition of a key is a pure function of the key's values (see [`KeyPartitioner`]), so it
//! is the same in every batch, every run and every process.

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use super::{ChangeBatch, ChangelogMode, RowKind};
use crate::error::{Error, Result};

/// Splits changelog batches by the values of some key columns.
///
/// The partition of a key is `fmix64(fnv1a64(bytes)) % partitions`, where `bytes` is the key's
/// encoding in Arrow's row format (the same key bytes `compact_by_key` compares), FNV-1a is the
/// 64-bit variant and `fmix64` is MurmurHash3's finalizer (FNV-1a alone leaves the low bits, which
/// the modulo uses, poorly mixed). Nothing in it is seeded per process. The row format is Arrow's
/// and not promised stable by Arrow itself; the unit test
/// `key_hash_is_pinned_for_known_keys` pins the hashes of known keys, so an Arrow upgrade that
/// changes them fails there instead of silently moving keys between partitions.
#[derive(Debug)]
pub struct KeyPartitioner {
    key_columns: Vec<usize>,
    converter: RowConverter,
    mode: ChangelogMode,
}

impl KeyPartitioner {
    /// A partitioner for batches of `schema` keyed by the columns at `key_columns`, for a changelog
    /// of `mode` (only `Upsert` allows a `+U` without its `-U`).
    pub fn new(schema: &Schema, key_columns: &[usize], mode: ChangelogMode) -> Result<Self> {
        if key_columns.is_empty() {
            return Err(Error::internal("partition by key was given no key columns"));
        }
        let mut fields = Vec::with_capacity(key_columns.len());
        for &index in key_columns {
            let field = schema.fields().get(index).ok_or_else(|| {
                Error::internal(format!(
                    "partition by key: key column {index} is beyond the {} columns of the schema",
                    schema.fields().len()
                ))
            })?;
            fields.push(SortField::new(field.data_type().clone()));
        }
        Ok(KeyPartitioner { key_columns: key_columns.to_vec(), converter: RowConverter::new(fields)?, mode })
    }

    /// Splits `batch` into `partitions` batches (index = partition; empty ones included). Each
    /// key's rows land in one partition in their input order; key-changing update pairs become
    /// `-D old` / `+I new`.
    pub fn partition(&self, batch: &ChangeBatch, partitions: usize) -> Result<Vec<ChangeBatch>> {
        if partitions == 0 {
            return Err(Error::internal("partition by key into 0 partitions"));
        }
        let keys = self.keys(batch)?;
        let mut routed: Vec<(Vec<u32>, Vec<i8>)> = vec![(Vec::new(), Vec::new()); partitions];
        self.route(batch, &keys, |row, kind| {
            let (indices, kinds) = &mut routed[partition_of(keys.row(row).data(), partitions)];
            indices.push(row as u32);
            kinds.push(kind.code());
        })?;
        routed.into_iter().map(|(indices, kinds)| batch.take(&indices, kinds)).collect()
    }

    /// The one-partition form, what a keyed operator needs: `batch` with its key-changing update
    /// pairs turned into `-D old` / `+I new`, in input order.
    pub fn normalize(&self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        if batch.all_inserts() {
            return Ok(batch.clone());
        }
        let keys = self.keys(batch)?;
        let mut indices = Vec::with_capacity(batch.num_rows());
        let mut kinds = Vec::with_capacity(batch.num_rows());
        let mut changed = false;
        self.route(batch, &keys, |row, kind| {
            changed |= kind != batch.kind(row);
            indices.push(row as u32);
            kinds.push(kind.code());
        })?;
        if changed {
            batch.take(&indices, kinds)
        } else {
            Ok(batch.clone())
        }
    }

    fn keys(&self, batch: &ChangeBatch) -> Result<Rows> {
        let rows = batch.rows();
        let mut columns = Vec::with_capacity(self.key_columns.len());
        for &index in &self.key_columns {
            if index >= rows.num_columns() {
                return Err(Error::internal(format!(
                    "partition by key: key column {index} is beyond the {} columns of the batch",
                    rows.num_columns()
                )));
            }
            columns.push(rows.column(index).clone());
        }
        Ok(self.converter.convert_columns(&columns)?)
    }

    /// Calls `emit(row, kind)` for every row to pass on, in input order, with the kind it passes
    /// on as. The two rows of a same-key pair are emitted one right after the other.
    fn route(&self, batch: &ChangeBatch, keys: &Rows, mut emit: impl FnMut(usize, RowKind)) -> Result<()> {
        let n = batch.num_rows();
        let mut i = 0;
        while i < n {
            match batch.kind(i) {
                RowKind::UpdateBefore => {
                    if i + 1 >= n || batch.kind(i + 1) != RowKind::UpdateAfter {
                        let next = if i + 1 < n { batch.kind(i + 1).short() } else { "the end of the batch" };
                        return Err(Error::internal(format!(
                            "partition by key: row {i} of a {n}-row changelog batch is a -U followed by {next}, \
                             not by its +U; an operator upstream split an update pair"
                        )));
                    }
                    if keys.row(i) == keys.row(i + 1) {
                        emit(i, RowKind::UpdateBefore);
                        emit(i + 1, RowKind::UpdateAfter);
                    } else {
                        emit(i, RowKind::Delete);
                        emit(i + 1, RowKind::Insert);
                    }
                    i += 2;
                }
                RowKind::UpdateAfter if self.mode != ChangelogMode::Upsert => {
                    return Err(Error::internal(format!(
                        "partition by key: row {i} of a {n}-row changelog batch is a +U without its -U before it, \
                         in a changelog declared {:?} (only upsert changelogs carry lone +U rows)",
                        self.mode
                    )));
                }
                kind => {
                    emit(i, kind);
                    i += 1;
                }
            }
        }
        Ok(())
    }
}

/// The partition of the key whose row-format bytes are `key`.
fn partition_of(key: &[u8], partitions: usize) -> usize {
    (key_hash(key) % partitions as u64) as usize
}

fn key_hash(key: &[u8]) -> u64 {
    fmix64(fnv1a64(key))
}

/// FNV-1a, 64 bits: a hash pinned by its definition (unlike std's), for what must stay the same
/// across releases.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};

    use super::*;
    use crate::changelog::test_util::*;
    use RowKind::*;

    fn partitioner(mode: ChangelogMode) -> KeyPartitioner {
        let schema = batch(&[]).rows().schema();
        KeyPartitioner::new(&schema, &[0], mode).unwrap()
    }

    fn hash_of(column: ArrayRef) -> Vec<u64> {
        let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())]).unwrap();
        let rows = converter.convert_columns(&[column]).unwrap();
        rows.iter().map(|r| key_hash(r.data())).collect()
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Checkpointed keyed state may be laid out by partition: a key must never move. Fails when
    /// Arrow's row encoding or the hash changes; such a change needs a state migration. The values
    /// were computed apart from this code, from the row format as arrow-row 59 documents it: an
    /// Int64 is `01` + big-endian with the sign bit flipped (NULL: `00` + 8 zero bytes); a string
    /// of up to 8 bytes is `02` + the bytes zero-padded to 8 + their length (empty: `01`, NULL: `00`).
    #[test]
    fn key_hash_is_pinned_for_known_keys() {
        let ints = hash_of(Arc::new(Int64Array::from(vec![Some(0), Some(1), Some(-1), Some(42), None])));
        let strings = hash_of(Arc::new(StringArray::from(vec![Some(""), Some("a"), Some("München"), None])));
        assert_eq!(
            ints,
            vec![
                2367140522139129587,
                5211917862608783853,
                1342635462938071101,
                2834522192422945309,
                17662770132820967445
            ],
            "Int64 key hashes changed"
        );
        assert_eq!(
            strings,
            vec![971909191830961740, 7688148644769855393, 8650485417720985400, 13331581593930102267],
            "Utf8 key hashes changed"
        );
    }

    #[test]
    fn same_key_update_pair_stays_adjacent_in_its_partition() {
        let p = partitioner(ChangelogMode::All);
        let b = batch(&[
            (Insert, 1, Some("a")),
            (Insert, 2, Some("b")),
            (UpdateBefore, 1, Some("a")),
            (UpdateAfter, 1, Some("c")),
            (Delete, 2, Some("b")),
        ]);
        for n in [1, 2, 3, 7] {
            let parts = p.partition(&b, n).unwrap();
            assert_eq!(parts.len(), n);
            let one = &parts[partition_of(p.keys(&b).unwrap().row(0).data(), n)];
            let of_one: Vec<_> = rows_of(one).into_iter().filter(|r| r.1 == 1).collect();
            assert_eq!(
                of_one,
                vec![
                    (Insert, 1, Some("a".into())),
                    (UpdateBefore, 1, Some("a".into())),
                    (UpdateAfter, 1, Some("c".into()))
                ]
            );
            let pair_at = rows_of(one).iter().position(|r| r.0 == UpdateBefore).unwrap();
            assert_eq!(rows_of(one)[pair_at + 1].0, UpdateAfter);
            assert_eq!(parts.iter().map(ChangeBatch::num_rows).sum::<usize>(), 5);
        }
    }

    #[test]
    fn key_changing_update_becomes_delete_and_insert() {
        let p = partitioner(ChangelogMode::All);
        let b = batch(&[(UpdateBefore, 1, Some("a")), (UpdateAfter, 2, Some("a"))]);
        assert_eq!(
            rows_of(&p.normalize(&b).unwrap()),
            vec![(Delete, 1, Some("a".into())), (Insert, 2, Some("a".into()))]
        );
        // Find a partition count that puts keys 1 and 2 apart, so the split is visible.
        let keys = p.keys(&b).unwrap();
        let n = (2..64).find(|n| partition_of(keys.row(0).data(), *n) != partition_of(keys.row(1).data(), *n)).unwrap();
        let parts = p.partition(&b, n).unwrap();
        assert_eq!(rows_of(&parts[partition_of(keys.row(0).data(), n)]), vec![(Delete, 1, Some("a".into()))]);
        assert_eq!(rows_of(&parts[partition_of(keys.row(1).data(), n)]), vec![(Insert, 2, Some("a".into()))]);
    }

    #[test]
    fn normalize_keeps_same_key_pairs_and_order() {
        let p = partitioner(ChangelogMode::All);
        let rows = [(Insert, 3, None), (UpdateBefore, 3, None), (UpdateAfter, 3, Some("x")), (Delete, 3, Some("x"))];
        let out = p.normalize(&batch(&rows)).unwrap();
        assert_eq!(out.kinds().values().to_vec(), vec![0, 1, 2, 3]);
        assert_eq!(rows_of(&out).len(), 4);
    }

    #[test]
    fn lone_update_before_is_an_internal_error() {
        let p = partitioner(ChangelogMode::All);
        for rows in [
            vec![(Insert, 1, None), (UpdateBefore, 1, None)],
            vec![(UpdateBefore, 1, None), (Insert, 1, None)],
            vec![(UpdateBefore, 1, None), (UpdateBefore, 1, None), (UpdateAfter, 1, None)],
        ] {
            let err = p.partition(&batch(&rows), 4).unwrap_err();
            assert!(matches!(err, Error::Internal(_)), "{err}");
            assert!(err.to_string().contains("-U followed by"), "{err}");
            assert!(p.normalize(&batch(&rows)).is_err());
        }
        // Also in an upsert changelog: a -U there has no +U to pair with either.
        assert!(partitioner(ChangelogMode::Upsert).normalize(&batch(&[(UpdateBefore, 1, None)])).is_err());
    }

    #[test]
    fn lone_update_after_is_an_internal_error_unless_the_changelog_is_upsert() {
        let rows = [(Insert, 1, None), (UpdateAfter, 1, Some("x"))];
        for mode in [ChangelogMode::All, ChangelogMode::InsertOnly] {
            let err = partitioner(mode).partition(&batch(&rows), 2).unwrap_err();
            assert!(matches!(err, Error::Internal(_)), "{err}");
            assert!(err.to_string().contains("+U without its -U"), "{err}");
        }
        let upsert = partitioner(ChangelogMode::Upsert);
        assert_eq!(
            rows_of(&upsert.normalize(&batch(&rows)).unwrap()),
            vec![(Insert, 1, None), (UpdateAfter, 1, Some("x".into()))]
        );
        let parts = upsert.partition(&batch(&rows), 3).unwrap();
        assert_eq!(parts.iter().filter(|p| !p.is_empty()).count(), 1);
    }

    #[test]
    fn zero_partitions_and_missing_key_columns_are_internal_errors() {
        let p = partitioner(ChangelogMode::All);
        assert!(p.partition(&batch(&[(Insert, 1, None)]), 0).is_err());
        let schema = batch(&[]).rows().schema();
        assert!(KeyPartitioner::new(&schema, &[2], ChangelogMode::All).is_err());
        assert!(KeyPartitioner::new(&schema, &[], ChangelogMode::All).is_err());
    }
}
