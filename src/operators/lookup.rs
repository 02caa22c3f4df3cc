//! The lookup join: each change of the table joined from is paired with the rows the looked-up
//! table holds for its key when the change is processed (Flink's processing-time lookup join).
//! Per batch, the keys not in the cache are looked up with one query for all of them (Flink's JDBC
//! lookup asks once per row); what is found goes through the steps the query puts over the
//! looked-up table (columns picked, filters) and, with `lookup.cache` = `PARTIAL`, into the cache.
//!
//! A change keeps its row kind. An update whose old and new rows each meet exactly one row stays
//! an update (`-U`/`+U`); otherwise its old rows are retracted (`-D`) and its new ones added
//! (`+I`), keeping the changelog contract. Like Flink's, the join is not deterministic under
//! updates: a retraction looks its key up again, and finds what the table holds then.
//!
//! The lookup is I/O inside the pipeline's one task, which processes batch by batch: the batch
//! cannot go on without its rows, so the task waits for the query where it runs
//! (`block_in_place`, which moves the worker's other tasks elsewhere). Nothing is checkpointed:
//! the cache is refilled after a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, Int8Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast_with_options, concat_batches, take, take_record_batch, CastOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::changelog::{ChangeBatch, Event, RowKind};
use crate::connectors::lookup::{CacheOptions, Lookup, LookupTable, MissingKey, MISSING_KEY};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::RowSteps;
use crate::runtime::{DeadLetters, Stage};

/// A lookup join as planned.
#[derive(Debug)]
pub struct LookupSpec {
    /// The looked-up table, as declared.
    pub table: String,
    pub lookup: LookupTable,
    /// The key's values, over the rows joined from.
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The looked-up table's key columns (indices into its declared columns), one per left key.
    pub key_columns: Vec<usize>,
    /// Those columns as declared.
    pub key_fields: Vec<Field>,
    /// From the table's rows to the join's right side.
    pub right: RowSteps,
    /// The key's values, over the right side's rows.
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The rest of the ON condition, over a pair's columns.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// `LEFT JOIN`: a row meeting nothing is kept, with NULLs for the right side.
    pub outer: bool,
    pub left_schema: SchemaRef,
    pub output_schema: SchemaRef,
    /// The left side's unique keys when each row meets at most one row (the lookup key holds the
    /// table's PRIMARY KEY); empty otherwise.
    pub unique_keys: Vec<Vec<usize>>,
    /// Shared with the job's metrics, across restarts.
    pub counters: Arc<LookupCounters>,
}

/// What the lookups of one join did, for `/metrics`.
#[derive(Debug)]
pub struct LookupCounters {
    pub table: String,
    /// Keys found in the cache.
    pub hits: AtomicU64,
    /// Keys looked up in the table.
    pub misses: AtomicU64,
    /// Queries sent (one per batch with misses, plus retries).
    pub queries: AtomicU64,
}

impl LookupCounters {
    pub fn new(table: &str) -> Self {
        LookupCounters {
            table: table.to_string(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            queries: AtomicU64::new(0),
        }
    }
}

struct Entry {
    /// The right side's rows for the key, in their row encoding (none: the table has no row for
    /// it). Rows rather than a small Arrow batch per key: a batch's buffers and headers cost
    /// several times a short row's bytes.
    rows: Vec<OwnedRow>,
    written: Instant,
    accessed: Instant,
}

/// Flink's `PARTIAL` cache: keys looked up, dropped when they expire or, beyond `max_rows`, the
/// least recently used first.
struct Cache {
    options: CacheOptions,
    entries: HashMap<OwnedRow, Entry>,
    /// The right side's rows, encoded and decoded.
    rows: RowConverter,
}

impl Cache {
    fn get(&mut self, key: &OwnedRow, now: Instant) -> Option<Vec<OwnedRow>> {
        let expired = {
            let entry = self.entries.get(key)?;
            let older = |since: Instant, limit: Option<Duration>| limit.is_some_and(|l| now.duration_since(since) >= l);
            older(entry.written, self.options.expire_after_write)
                || older(entry.accessed, self.options.expire_after_access)
        };
        if expired {
            self.entries.remove(key);
            return None;
        }
        let entry = self.entries.get_mut(key)?;
        entry.accessed = now;
        Some(entry.rows.clone())
    }

    fn put(&mut self, key: OwnedRow, rows: Vec<OwnedRow>, now: Instant) {
        if rows.is_empty() && !self.options.cache_missing_key {
            return;
        }
        self.entries.insert(key, Entry { rows, written: now, accessed: now });
        if let Some(max) = self.options.max_rows {
            if self.entries.len() > max {
                // Evicting in bulk (a tenth) keeps this rare; the order is that of last access.
                let mut by_access: Vec<(Instant, OwnedRow)> =
                    self.entries.iter().map(|(k, e)| (e.accessed, k.clone())).collect();
                by_access.sort_by_key(|(at, _)| *at);
                let excess = self.entries.len() - max + max / 10;
                for (_, key) in by_access.into_iter().take(excess) {
                    self.entries.remove(&key);
                }
            }
        }
    }
}

pub struct LookupJoin {
    name: String,
    spec: Arc<LookupSpec>,
    client: Option<Box<dyn Lookup>>,
    cache: Option<Cache>,
    /// Rows of the lookup key, as the table's columns hold them.
    keys: RowConverter,
    keys_schema: SchemaRef,
    dead_letters: DeadLetters,
}

impl LookupJoin {
    pub fn new(name: String, spec: Arc<LookupSpec>, dead_letters: DeadLetters) -> Result<Self> {
        let keys = RowConverter::new(spec.key_fields.iter().map(|f| SortField::new(f.data_type().clone())).collect())?;
        let keys_schema = Arc::new(Schema::new(spec.key_fields.clone()));
        let cache = match spec.lookup.options.cache.clone() {
            None => None,
            Some(options) => {
                let fields: Vec<SortField> =
                    spec.right.schema().fields().iter().map(|f| SortField::new(f.data_type().clone())).collect();
                if !RowConverter::supports_fields(&fields) {
                    return Err(Error::user(format!(
                        "the lookup cache of `{}` cannot hold the columns the query reads from it; set 'lookup.cache' \
                         = 'NONE'",
                        spec.table
                    )));
                }
                Some(Cache { options, entries: HashMap::new(), rows: RowConverter::new(fields)? })
            }
        };
        Ok(LookupJoin { name, spec, client: None, cache, keys, keys_schema, dead_letters })
    }

    /// `values` (one array per key column, as the other side gives them) as the table's key
    /// columns hold them: a value no such column can hold becomes NULL, which meets nothing.
    fn as_table_keys(&self, values: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
        let options = CastOptions { safe: true, ..Default::default() };
        values
            .iter()
            .zip(&self.spec.key_fields)
            .map(|(v, f)| Ok(cast_with_options(v, f.data_type(), &options)?))
            .collect()
    }

    fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], rows: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs.iter().map(|e| Ok(e.evaluate(rows)?.into_array(rows.num_rows())?)).collect()
    }

    /// The table's rows for `keys`, through the right side's steps, retrying a failure of the
    /// outside world `lookup.max-retries` times.
    fn look_up(&mut self, keys: &RecordBatch) -> Result<RecordBatch> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| Error::internal("a lookup join runs outside a multi-threaded tokio runtime"))?;
        let retries = self.spec.lookup.options.max_retries;
        let mut attempt = 0;
        loop {
            if self.client.is_none() {
                self.client = Some((self.spec.lookup.open)()?);
            }
            let client = self.client.as_mut().ok_or_else(|| Error::internal("lookup client lost"))?;
            self.spec.counters.queries.fetch_add(1, Ordering::Relaxed);
            let key_columns = &self.spec.key_columns;
            let found = tokio::task::block_in_place(|| handle.block_on(client.lookup(key_columns, keys)));
            match found {
                Ok(rows) => return self.spec.right.apply(&rows),
                Err(e) if e.kind() == ErrorKind::External && attempt < retries => {
                    attempt += 1;
                    let wait = Duration::from_millis(200 << attempt.min(5));
                    tracing::warn!(table = %self.spec.table, error = %e, attempt, retry_in = ?wait, "lookup failed; retrying");
                    tokio::task::block_in_place(|| std::thread::sleep(wait));
                }
                Err(e) => {
                    let tried = if attempt > 0 {
                        format!(" (after {attempt} retries, 'lookup.max-retries')")
                    } else {
                        String::new()
                    };
                    return Err(e.context(format!("lookup join of `{}`{tried}", self.spec.table)));
                }
            }
        }
    }

    fn join(&mut self, changes: &ChangeBatch) -> Result<ChangeBatch> {
        let spec = self.spec.clone();
        let rows = changes.rows();
        let n = rows.num_rows();
        let keys = self.as_table_keys(Self::evaluate(&spec.left_keys, rows)?)?;
        let converted = self.keys.convert_columns(&keys)?;
        let now = Instant::now();
        // Per row, the group of right rows it meets; per group, its rows once known.
        let mut group_of: Vec<Option<usize>> = vec![None; n];
        let mut groups: Vec<Option<RecordBatch>> = Vec::new();
        let mut index: HashMap<OwnedRow, usize> = HashMap::new();
        let mut missing: Vec<(usize, OwnedRow)> = Vec::new();
        // The groups the cache had, with their rows, decoded together below.
        let mut from_cache: Vec<(usize, Vec<OwnedRow>)> = Vec::new();
        for (row, group) in group_of.iter_mut().enumerate() {
            if keys.iter().any(|k| k.is_null(row)) {
                continue;
            }
            let key = converted.row(row).owned();
            if let Some(g) = index.get(&key) {
                *group = Some(*g);
                continue;
            }
            let g = groups.len();
            match self.cache.as_mut().and_then(|c| c.get(&key, now)) {
                Some(rows) => from_cache.push((g, rows)),
                None => missing.push((row, key.clone())),
            }
            groups.push(None);
            index.insert(key, g);
            *group = Some(g);
        }
        spec.counters.hits.fetch_add(from_cache.len() as u64, Ordering::Relaxed);
        if let Some(cache) = &self.cache {
            let encoded: Vec<_> = from_cache.iter().flat_map(|(_, rows)| rows.iter().map(|r| r.row())).collect();
            let decoded = if encoded.is_empty() {
                RecordBatch::new_empty(spec.right.schema().clone())
            } else {
                RecordBatch::try_new(spec.right.schema().clone(), cache.rows.convert_rows(encoded)?)?
            };
            let mut offset = 0;
            for (g, rows) in &from_cache {
                groups[*g] = Some(decoded.slice(offset, rows.len()));
                offset += rows.len();
            }
        }
        if !missing.is_empty() {
            spec.counters.misses.fetch_add(missing.len() as u64, Ordering::Relaxed);
            let at = UInt32Array::from_iter_values(missing.iter().map(|(row, _)| *row as u32));
            let columns = keys.iter().map(|k| Ok(take(k, &at, None)?)).collect::<Result<Vec<_>>>()?;
            let found = self.look_up(&RecordBatch::try_new(self.keys_schema.clone(), columns)?)?;
            // Which key each row found belongs to, by the right side's own key values.
            let found_keys = self.as_table_keys(Self::evaluate(&spec.right_keys, &found)?)?;
            let found_rows = self.keys.convert_columns(&found_keys)?;
            let encoded = match &self.cache {
                Some(cache) => Some(cache.rows.convert_columns(found.columns())?),
                None => None,
            };
            let mut by_key: HashMap<OwnedRow, Vec<u32>> = HashMap::new();
            for i in 0..found.num_rows() {
                if found_keys.iter().all(|k| k.is_valid(i)) {
                    by_key.entry(found_rows.row(i).owned()).or_default().push(i as u32);
                }
            }
            for (_, key) in missing {
                let at = by_key.remove(&key).unwrap_or_default();
                let g = index[&key];
                if let (Some(cache), Some(encoded)) = (self.cache.as_mut(), &encoded) {
                    cache.put(key, at.iter().map(|i| encoded.row(*i as usize).owned()).collect(), now);
                }
                groups[g] = Some(take_record_batch(&found, &UInt32Array::from(at))?);
            }
        }
        if spec.lookup.options.missing_key == MissingKey::Error {
            self.reject_missing(changes, &keys, &group_of, &groups)?;
        }
        // All right rows met, one batch; per group, where its rows start in it.
        let right_schema = spec.right.schema().clone();
        let mut starts = Vec::with_capacity(groups.len());
        let mut parts = Vec::with_capacity(groups.len());
        let mut total = 0u32;
        for g in &groups {
            let g = g.as_ref().ok_or_else(|| Error::internal("a looked-up key was left without rows"))?;
            starts.push(total);
            total += g.num_rows() as u32;
            parts.push(g);
        }
        let right_all = concat_batches(&right_schema, parts)?;
        // Every candidate pair, in row order; then the rest of the ON condition.
        let mut left_at = Vec::new();
        let mut right_at = Vec::new();
        for (row, group) in group_of.iter().enumerate() {
            if let Some(g) = group {
                let len = groups[*g].as_ref().map_or(0, RecordBatch::num_rows) as u32;
                for j in 0..len {
                    left_at.push(row as u32);
                    right_at.push(starts[*g] + j);
                }
            }
        }
        let pairs = self.pairs(rows, &right_all, &left_at, &right_at.iter().map(|r| Some(*r)).collect::<Vec<_>>())?;
        let passes: Vec<bool> = match &spec.filter {
            None => vec![true; left_at.len()],
            Some(f) => {
                let result = f.evaluate(&pairs)?.into_array(pairs.num_rows())?;
                let result = result
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                    .ok_or_else(|| Error::internal("a lookup join's condition gave no booleans"))?;
                (0..result.len()).map(|i| result.is_valid(i) && result.value(i)).collect()
            }
        };
        // The output, in row order: the pairs that pass, or the padded row of an outer join.
        let mut out_left = Vec::new();
        let mut out_right: Vec<Option<u32>> = Vec::new();
        let mut counts = vec![0usize; n];
        let mut p = 0;
        for (row, count) in counts.iter_mut().enumerate() {
            while p < left_at.len() && left_at[p] as usize == row {
                if passes[p] {
                    out_left.push(row as u32);
                    out_right.push(Some(right_at[p]));
                    *count += 1;
                }
                p += 1;
            }
            if *count == 0 && spec.outer {
                out_left.push(row as u32);
                out_right.push(None);
                *count = 1;
            }
        }
        let kinds = Int8Array::from_iter_values(out_left.iter().map(|row| {
            let row = *row as usize;
            let kind = changes.kind(row);
            // An update stays one where its old and new rows each give one row.
            let paired = match kind {
                RowKind::UpdateBefore => row + 1 < n && counts[row] == 1 && counts[row + 1] == 1,
                RowKind::UpdateAfter => row > 0 && counts[row] == 1 && counts[row - 1] == 1,
                _ => true,
            };
            match kind {
                RowKind::UpdateBefore if !paired => RowKind::Delete.code(),
                RowKind::UpdateAfter if !paired => RowKind::Insert.code(),
                k => k.code(),
            }
        }));
        let out = self.pairs(rows, &right_all, &out_left, &out_right)?;
        ChangeBatch::new(out, kinds)
    }

    /// With `'lookup.missing-key' = 'error'`: each change whose key the table has no row for (a
    /// NULL key included, which no row has) goes to the dead letters, naming its key, or stops the
    /// job without them. It gives no output either way, as in an INNER join.
    fn reject_missing(
        &self,
        changes: &ChangeBatch,
        keys: &[ArrayRef],
        group_of: &[Option<usize>],
        groups: &[Option<RecordBatch>],
    ) -> Result<()> {
        let table = &self.spec.table;
        let position = self.dead_letters.position();
        for (row, group) in group_of.iter().enumerate() {
            if group.and_then(|g| groups[g].as_ref()).is_some_and(|rows| rows.num_rows() > 0) {
                continue;
            }
            let key: Vec<String> = self
                .spec
                .key_fields
                .iter()
                .zip(keys)
                .map(|(field, values)| {
                    let value = datafusion::arrow::util::display::array_value_to_string(values, row)
                        .unwrap_or_else(|_| "?".into());
                    let value = if values.is_null(row) { "NULL".to_string() } else { value };
                    format!("{} = {value}", field.name())
                })
                .collect();
            let mut message = format!(
                "lookup join of `{table}`: `{table}` has no row for {} ('{MISSING_KEY}' = 'error')",
                key.join(", ")
            );
            if !self.dead_letters.enabled() {
                message.push_str(&format!(
                    "; set '{}' (or '{}') to set such changes aside and go on, or '{MISSING_KEY}' = 'drop' to skip them",
                    crate::runtime::dead_letters::PATH_KEY,
                    crate::runtime::dead_letters::TABLE_KEY
                ));
            }
            let one = changes.take(&[row as u32], vec![changes.kind(row).code()])?;
            self.dead_letters.reject(
                Stage::Lookup,
                table,
                one.rows(),
                &[changes.kind(row)],
                Error::user(message),
                position.as_ref(),
            )?;
        }
        Ok(())
    }

    /// Rows of the join's output: left row `left[i]` with right row `right[i]` (NULLs for none).
    fn pairs(
        &self,
        left: &RecordBatch,
        right: &RecordBatch,
        left_at: &[u32],
        right_at: &[Option<u32>],
    ) -> Result<RecordBatch> {
        let (left_at, right_at) = (UInt32Array::from(left_at.to_vec()), UInt32Array::from(right_at.to_vec()));
        // Column by column: a padded row's NULLs may go where the table's columns are NOT NULL.
        let columns = left
            .columns()
            .iter()
            .map(|c| take(c, &left_at, None))
            .chain(right.columns().iter().map(|c| take(c, &right_at, None)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(left_at.len()));
        Ok(RecordBatch::try_new_with_options(self.spec.output_schema.clone(), columns, &options)?)
    }
}

impl Operator for LookupJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn keeps_state(&self) -> bool {
        false
    }

    fn process(&mut self, _: usize, event: Event, out: &mut Vec<Event>) -> Result<()> {
        match event {
            Event::Changes { changes, .. } => {
                if changes.is_empty() {
                    return Ok(());
                }
                let result = self.join(&changes)?;
                if !result.is_empty() {
                    out.push(Event::changes(result));
                }
            }
            other => out.push(other),
        }
        Ok(())
    }
}
