//! Properties of `KeyPartitioner` (partition by key) on long random changelogs, several printed
//! seeds, `all` and `upsert` changelogs, single and composite keys, 1 to 8 partitions:
//! - the union of the tables the partitions build equals the table the input builds;
//! - every partition keeps the changelog contract (each `-U` immediately followed by the `+U` of
//!   the same key; no lone `+U` unless the changelog is upsert);
//! - each key lives in one partition, in every batch, with its changes in input order (a
//!   key-changing pair counted as `-D old` / `+I new`);
//! - the same input always gives the same output, and one partition equals `normalize`.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_sql::changelog::{ChangeBatch, ChangelogMode, KeyPartitioner, RowKind};
use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

/// splitmix64: small, deterministic, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    tag: Option<String>,
    v: Option<i64>,
}

type Change = (RowKind, Row);
type Key = (i64, Option<String>);

/// Which columns form the key: `id` alone, or `id` and `tag` (a string that may be NULL).
#[derive(Debug, Clone, Copy)]
enum Keying {
    Id,
    IdAndTag,
}

impl Keying {
    fn columns(self) -> &'static [usize] {
        match self {
            Keying::Id => &[0],
            Keying::IdAndTag => &[0, 1],
        }
    }

    fn key(self, row: &Row) -> Key {
        match self {
            Keying::Id => (row.id, None),
            Keying::IdAndTag => (row.id, row.tag.clone()),
        }
    }
}

/// Ids range over `0..IDS`.
const IDS: u64 = 40;
const TAGS: [Option<&str>; 4] =
    [None, Some("a"), Some("b"), Some("München, a longer tag than one block of the row format")];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn to_batch(changes: &[Change]) -> ChangeBatch {
    let ids = Int64Array::from_iter_values(changes.iter().map(|c| c.1.id));
    let tags = StringArray::from_iter(changes.iter().map(|c| c.1.tag.as_deref()));
    let vs = Int64Array::from_iter(changes.iter().map(|c| c.1.v));
    let rows = RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(tags), Arc::new(vs)]).unwrap();
    let kinds: Vec<RowKind> = changes.iter().map(|c| c.0).collect();
    ChangeBatch::from_kinds(rows, &kinds).unwrap()
}

fn from_batch(batch: &ChangeBatch) -> Vec<Change> {
    let rows = batch.rows();
    let ids = rows.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    let tags = rows.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    let vs = rows.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
    (0..batch.num_rows())
        .map(|i| {
            let row = Row {
                id: ids.value(i),
                tag: (!tags.is_null(i)).then(|| tags.value(i).to_string()),
                v: (!vs.is_null(i)).then(|| vs.value(i)),
            };
            (batch.kind(i), row)
        })
        .collect()
}

/// A random changelog of about `len` changes over a small key space, cut into batches of random
/// sizes that never split an update pair. In `all` mode some retractions carry the key only, as
/// from a source whose server does not log old rows.
fn generate(seed: u64, mode: ChangelogMode, keying: Keying, len: usize) -> Vec<Vec<Change>> {
    let mut rng = Rng(seed);
    let mut live: BTreeMap<Key, Row> = BTreeMap::new();
    let mut log: Vec<Change> = Vec::new();
    let upsert = mode == ChangelogMode::Upsert;

    let fresh_row = |rng: &mut Rng, live: &BTreeMap<Key, Row>| loop {
        let row = Row {
            id: rng.below(IDS) as i64,
            tag: TAGS[rng.below(TAGS.len() as u64) as usize].map(String::from),
            v: Some(rng.below(100) as i64),
        };
        if !live.contains_key(&keying.key(&row)) {
            return row;
        }
    };
    let retraction = |rng: &mut Rng, row: &Row| {
        if upsert || rng.below(4) != 0 {
            return row.clone();
        }
        // Key only: every non-key column NULL.
        let tag = match keying {
            Keying::Id => None,
            Keying::IdAndTag => row.tag.clone(),
        };
        Row { id: row.id, tag, v: None }
    };

    // At most half the keys live, so a free key for an insert is found in a few draws.
    let key_space = match keying {
        Keying::Id => IDS as usize,
        Keying::IdAndTag => IDS as usize * TAGS.len(),
    };
    while log.len() < len {
        let mut roll = rng.below(100);
        if live.len() * 2 >= key_space && roll >= 35 {
            roll = 55 + roll % 20;
        }
        let picked = (!live.is_empty()).then(|| {
            let nth = rng.below(live.len() as u64) as usize;
            live.iter().nth(nth).map(|(k, r)| (k.clone(), r.clone())).unwrap()
        });
        match picked {
            Some((key, old)) if roll < 35 => {
                // Update in place: same key, new non-key values.
                let mut new = old.clone();
                new.v = Some(rng.below(100) as i64);
                if let Keying::Id = keying {
                    new.tag = TAGS[rng.below(TAGS.len() as u64) as usize].map(String::from);
                }
                if !upsert {
                    log.push((RowKind::UpdateBefore, retraction(&mut rng, &old)));
                }
                log.push((RowKind::UpdateAfter, new.clone()));
                live.insert(key, new);
            }
            Some((key, old)) if roll < 55 => {
                // The key changes (UPDATE … SET id = …).
                let mut new = fresh_row(&mut rng, &live);
                if rng.below(2) == 0 {
                    new.v = old.v;
                }
                if upsert {
                    // What postgres-cdc sends in upsert mode for a key change.
                    log.push((RowKind::Delete, old.clone()));
                } else {
                    log.push((RowKind::UpdateBefore, retraction(&mut rng, &old)));
                }
                log.push((RowKind::UpdateAfter, new.clone()));
                live.remove(&key);
                live.insert(keying.key(&new), new);
            }
            Some((key, old)) if roll < 75 => {
                log.push((RowKind::Delete, retraction(&mut rng, &old)));
                live.remove(&key);
            }
            _ => {
                let row = fresh_row(&mut rng, &live);
                log.push((RowKind::Insert, row.clone()));
                live.insert(keying.key(&row), row);
            }
        }
    }

    let mut batches = Vec::new();
    let mut start = 0;
    while start < log.len() {
        let mut end = (start + 1 + rng.below(40) as usize).min(log.len());
        if log[end - 1].0 == RowKind::UpdateBefore {
            end += 1;
        }
        batches.push(log[start..end].to_vec());
        start = end;
    }
    batches
}

/// The keyed table a changelog builds: additions upsert their key, retractions delete it.
fn materialize<'a>(log: impl IntoIterator<Item = &'a Change>, keying: Keying) -> BTreeMap<Key, Row> {
    let mut table = BTreeMap::new();
    for (kind, row) in log {
        if kind.is_addition() {
            table.insert(keying.key(row), row.clone());
        } else {
            table.remove(&keying.key(row));
        }
    }
    table
}

/// Each key's changes in order, a key-changing pair counted as `-D old` and `+I new`.
fn per_key<'a>(log: impl IntoIterator<Item = &'a Change>, keying: Keying) -> BTreeMap<Key, Vec<Change>> {
    let log: Vec<&Change> = log.into_iter().collect();
    let mut by_key: BTreeMap<Key, Vec<Change>> = BTreeMap::new();
    let mut i = 0;
    while i < log.len() {
        let (kind, row) = log[i];
        if *kind == RowKind::UpdateBefore && keying.key(row) != keying.key(&log[i + 1].1) {
            by_key.entry(keying.key(row)).or_default().push((RowKind::Delete, row.clone()));
            let new = &log[i + 1].1;
            by_key.entry(keying.key(new)).or_default().push((RowKind::Insert, new.clone()));
            i += 2;
            continue;
        }
        by_key.entry(keying.key(row)).or_default().push((*kind, row.clone()));
        i += 1;
    }
    by_key
}

/// Each `-U` is immediately followed by a `+U`, of the same key if `same_key` (as partitions must
/// be; their input may change keys); a `+U` without `-U` only in upsert changelogs.
fn assert_contract(batch: &[Change], mode: ChangelogMode, keying: Keying, same_key: bool, what: &str) {
    for (i, (kind, row)) in batch.iter().enumerate() {
        match kind {
            RowKind::UpdateBefore => {
                let next = batch.get(i + 1);
                assert!(
                    next.is_some_and(|(k, r)| {
                        *k == RowKind::UpdateAfter && (!same_key || keying.key(r) == keying.key(row))
                    }),
                    "{what}: -U {row:?} at {i} not followed by its +U, but by {next:?}"
                );
            }
            RowKind::UpdateAfter if mode != ChangelogMode::Upsert => {
                let before = i.checked_sub(1).map(|p| &batch[p]);
                assert!(
                    before.is_some_and(|(k, _)| *k == RowKind::UpdateBefore),
                    "{what}: +U {row:?} at {i} without its -U"
                );
            }
            _ => {}
        }
    }
}

fn check(seed: u64, mode: ChangelogMode, keying: Keying) {
    println!("seed {seed}, {mode:?} changelog, key {keying:?}");
    let batches = generate(seed, mode, keying, 3000);
    let input: Vec<Change> = batches.concat();
    let expected_table = materialize(&input, keying);
    let expected_per_key = per_key(&input, keying);
    for batch in &batches {
        assert_contract(batch, mode, keying, false, &format!("seed {seed}: the generated input"));
    }
    let schema = schema();

    for partitions in [1, 2, 3, 8] {
        let what = format!("seed {seed}, {mode:?}, {keying:?}, {partitions} partitions");
        let partitioner = KeyPartitioner::new(&schema, keying.columns(), mode).unwrap();
        let mut streams: Vec<Vec<Change>> = vec![Vec::new(); partitions];
        let mut home: BTreeMap<Key, usize> = BTreeMap::new();
        for batch in &batches {
            let parts = partitioner.partition(&to_batch(batch), partitions).unwrap();
            assert_eq!(parts.len(), partitions, "{what}");
            let out_rows: usize = parts.iter().map(ChangeBatch::num_rows).sum();
            assert_eq!(out_rows, batch.len(), "{what}: rows appeared or vanished");
            for (p, part) in parts.iter().enumerate() {
                let part = from_batch(part);
                assert_contract(&part, mode, keying, true, &format!("{what}, partition {p}"));
                for (_, row) in &part {
                    let at = *home.entry(keying.key(row)).or_insert(p);
                    assert_eq!(at, p, "{what}: key {:?} in partitions {at} and {p}", keying.key(row));
                }
                streams[p].extend(part);
            }
        }

        // Keys are disjoint across partitions, so the union of their tables is a plain merge.
        let mut union = BTreeMap::new();
        for stream in &streams {
            union.extend(materialize(stream, keying));
        }
        assert_eq!(union, expected_table, "{what}: the partitions build another table");

        let mut got_per_key = BTreeMap::new();
        for stream in &streams {
            got_per_key.extend(per_key(stream, keying));
        }
        assert_eq!(got_per_key, expected_per_key, "{what}: a key's changes differ or moved in order");

        // A fresh partitioner, the same input: the same output, batch for batch.
        let again = KeyPartitioner::new(&schema, keying.columns(), mode).unwrap();
        let mut streams_again: Vec<Vec<Change>> = vec![Vec::new(); partitions];
        for batch in &batches {
            for (p, part) in again.partition(&to_batch(batch), partitions).unwrap().iter().enumerate() {
                streams_again[p].extend(from_batch(part));
            }
        }
        assert_eq!(streams_again, streams, "{what}: the same input partitioned differently");

        if partitions == 1 {
            let normalized: Vec<Change> =
                batches.iter().flat_map(|b| from_batch(&partitioner.normalize(&to_batch(b)).unwrap())).collect();
            assert_eq!(normalized, streams[0], "{what}: normalize differs from one partition");
        }
    }
}

#[test]
fn partitioned_changelog_builds_the_same_table_and_keeps_the_contract() {
    for seed in [1, 2, 3, 42, 20260] {
        check(seed, ChangelogMode::All, Keying::Id);
        check(seed, ChangelogMode::All, Keying::IdAndTag);
    }
}

#[test]
fn partitioned_upsert_changelog_builds_the_same_table_and_keeps_the_contract() {
    for seed in [5, 6, 7] {
        check(seed, ChangelogMode::Upsert, Keying::Id);
        check(seed, ChangelogMode::Upsert, Keying::IdAndTag);
    }
}

/// A pair split upstream must stop the job, not reach a keyed operator as a lone row.
#[test]
fn split_update_pair_is_an_internal_error() {
    let row = |id| Row { id, tag: None, v: Some(1) };
    let partitioner = KeyPartitioner::new(&schema(), &[0], ChangelogMode::All).unwrap();
    let lone_before = to_batch(&[(RowKind::Insert, row(1)), (RowKind::UpdateBefore, row(1))]);
    let lone_after = to_batch(&[(RowKind::UpdateAfter, row(1)), (RowKind::Insert, row(2))]);
    for batch in [&lone_before, &lone_after] {
        let err = partitioner.partition(batch, 4).unwrap_err();
        assert!(err.to_string().starts_with("internal error"), "{err}");
        assert!(partitioner.normalize(batch).is_err());
    }
}
