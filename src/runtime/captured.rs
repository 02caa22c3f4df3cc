//! Every row a source delivered and still holds, by captured table and key, kept by the runtime
//! for sources that turn a `TRUNCATE` into deletes (postgres-cdc `'truncate.mode' = 'delete'`).
//!
//! A truncation arrives without its rows, and the source cannot read them afterwards: the only
//! record of what the table held is the changelog itself. The runtime — not the source — keeps
//! it because the source reads ahead of the sink: kept here, the rows are exactly those of the
//! batches that reached the sink, so the state stored with a checkpoint matches the checkpoint's
//! position. Rows are held in Arrow's row format; in checkpoints they are Arrow IPC streams, one
//! per table, which stay readable across versions.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use crate::changelog::{ChangeBatch, RowKind};
use crate::connectors::RowOrigins;
use crate::error::{Error, Result};

/// One table's rows as stored in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapturedTableState {
    pub table: String,
    /// The rows as an Arrow IPC stream in the source's schema, base64-encoded.
    pub rows: String,
}

/// A table's rows in Arrow's row format, by their key in Arrow's row format.
type HeldRows = HashMap<Box<[u8]>, Box<[u8]>>;

pub struct CapturedRows {
    schema: SchemaRef,
    key: Vec<usize>,
    keys: RowConverter,
    rows: RowConverter,
    tables: HashMap<Arc<str>, HeldRows>,
    /// The checkpoint form of tables unchanged since it was made: an idle table is not encoded
    /// again at every checkpoint.
    encoded: HashMap<Arc<str>, CapturedTableState>,
}

fn converter(schema: &SchemaRef, columns: &[usize]) -> Result<RowConverter> {
    let fields = columns.iter().map(|i| SortField::new(schema.field(*i).data_type().clone())).collect();
    Ok(RowConverter::new(fields)?)
}

impl CapturedRows {
    /// Rows of `schema` identified by the columns at `key`.
    pub fn new(schema: SchemaRef, key: Vec<usize>) -> Result<Self> {
        if key.is_empty() || key.iter().any(|i| *i >= schema.fields().len()) {
            return Err(Error::internal(format!("captured rows need key columns of the source schema, got {key:?}")));
        }
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        Ok(CapturedRows {
            keys: converter(&schema, &key)?,
            rows: converter(&schema, &all)?,
            schema,
            key,
            tables: HashMap::new(),
            encoded: HashMap::new(),
        })
    }

    /// Rows held, over all tables.
    pub fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }

    /// The batch's changes after the deletes its truncations stand for, and the rows held updated.
    pub fn track(&mut self, changes: ChangeBatch, origins: &RowOrigins) -> Result<ChangeBatch> {
        if origins.tables.len() != changes.num_rows() {
            return Err(Error::internal(format!(
                "a source batch of {} rows named the table of {}",
                changes.num_rows(),
                origins.tables.len()
            )));
        }
        let mut parts = Vec::with_capacity(origins.truncated.len() + 1);
        for truncation in &origins.truncated {
            if let Some(deletes) = self.truncate(&truncation.table, &truncation.change_columns)? {
                parts.push(deletes);
            }
        }
        if !changes.is_empty() {
            self.apply(&changes, &origins.tables)?;
        }
        if parts.is_empty() {
            return Ok(changes);
        }
        parts.push(changes);
        concat(&self.schema, &parts)
    }

    fn apply(&mut self, changes: &ChangeBatch, tables: &[Arc<str>]) -> Result<()> {
        let columns = changes.rows().columns();
        let key_columns: Vec<ArrayRef> = self.key.iter().map(|i| columns[*i].clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let additions = (0..changes.num_rows()).any(|i| changes.kind(i).is_addition());
        let rows = if additions { Some(self.rows.convert_columns(columns)?) } else { None };
        let mut changed: Option<&Arc<str>> = None;
        for (i, table) in tables.iter().enumerate() {
            if changed != Some(table) {
                self.encoded.remove(table);
                changed = Some(table);
            }
            let key = keys.row(i);
            match (changes.kind(i).is_addition(), &rows) {
                (true, Some(rows)) => {
                    let held = self.tables.entry(table.clone()).or_default();
                    held.insert(key.as_ref().into(), rows.row(i).as_ref().into());
                }
                _ => {
                    if let Some(held) = self.tables.get_mut(table) {
                        held.remove(key.as_ref());
                    }
                }
            }
        }
        Ok(())
    }

    /// `-D` for every row `table` holds, with `change_columns` set as given; the table is then
    /// empty.
    fn truncate(
        &mut self,
        table: &str,
        change_columns: &[(usize, datafusion::scalar::ScalarValue)],
    ) -> Result<Option<ChangeBatch>> {
        self.encoded.remove(table);
        let Some(held) = self.tables.remove(table) else { return Ok(None) };
        if held.is_empty() {
            return Ok(None);
        }
        tracing::info!(table, rows = held.len(), "a truncation becomes deletes of the rows the table held");
        let parser = self.rows.parser();
        let mut columns = self.rows.convert_rows(held.values().map(|row| parser.parse(row)))?;
        for (index, value) in change_columns {
            let column = columns
                .get_mut(*index)
                .ok_or_else(|| Error::internal(format!("truncation sets column {index}, beyond the source schema")))?;
            *column = value.to_array_of_size(held.len())?;
        }
        let rows = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(Some(ChangeBatch::from_kinds(rows, &vec![RowKind::Delete; held.len()])?))
    }

    /// The rows, for a checkpoint.
    pub fn state(&mut self) -> Result<Vec<CapturedTableState>> {
        let mut tables: Vec<Arc<str>> = self.tables.keys().cloned().collect();
        tables.sort();
        let mut state = Vec::with_capacity(tables.len());
        for table in tables {
            if let Some(encoded) = self.encoded.get(&table) {
                state.push(encoded.clone());
                continue;
            }
            let held = &self.tables[&table];
            let parser = self.rows.parser();
            let ipc = (|| {
                let columns = self.rows.convert_rows(held.values().map(|row| parser.parse(row)))?;
                let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
                let mut ipc = Vec::new();
                let mut writer = StreamWriter::try_new(&mut ipc, &self.schema)?;
                writer.write(&batch)?;
                writer.finish()?;
                drop(writer);
                Ok::<_, datafusion::arrow::error::ArrowError>(ipc)
            })()
            .map_err(|e| Error::internal(format!("encoding the captured rows of {table} for a checkpoint: {e}")))?;
            let encoded = CapturedTableState {
                table: table.to_string(),
                rows: base64::engine::general_purpose::STANDARD.encode(&ipc),
            };
            self.encoded.insert(table, encoded.clone());
            state.push(encoded);
        }
        Ok(state)
    }

    /// Holds the rows of a checkpoint's state (added to what is held).
    pub fn restore(&mut self, state: &[CapturedTableState]) -> Result<()> {
        for table in state {
            let unreadable = |why: String| {
                Error::user(format!(
                    "the checkpoint's captured rows of table {} are unreadable ({why}); start over with --fresh",
                    table.table
                ))
            };
            let ipc =
                base64::engine::general_purpose::STANDARD.decode(&table.rows).map_err(|e| unreadable(e.to_string()))?;
            let reader = StreamReader::try_new(Cursor::new(ipc), None).map_err(|e| unreadable(e.to_string()))?;
            if reader.schema().fields() != self.schema.fields() {
                return Err(unreadable(format!(
                    "they have columns {:?}, the source has {:?}",
                    reader.schema(),
                    self.schema
                )));
            }
            let name: Arc<str> = table.table.as_str().into();
            for batch in reader {
                let batch = batch.map_err(|e| unreadable(e.to_string()))?;
                let tables = vec![name.clone(); batch.num_rows()];
                self.apply(&ChangeBatch::inserts(batch), &tables)?;
            }
            self.encoded.insert(name, table.clone());
        }
        Ok(())
    }
}

fn concat(schema: &SchemaRef, parts: &[ChangeBatch]) -> Result<ChangeBatch> {
    let rows = datafusion::arrow::compute::concat_batches(schema, parts.iter().map(|p| p.rows()))?;
    let kinds: Vec<&dyn Array> = parts.iter().map(|p| p.kinds() as &dyn Array).collect();
    let kinds = datafusion::arrow::compute::concat(&kinds)?;
    let kinds = kinds
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int8Array>()
        .ok_or_else(|| Error::internal("row kinds are not Int8"))?
        .clone();
    ChangeBatch::new(rows, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Truncation;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::scalar::ScalarValue;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(RowKind, i64, Option<&str>)]) -> ChangeBatch {
        let ids = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
        let vs: StringArray = rows.iter().map(|r| r.2).collect();
        let kinds: StringArray = rows.iter().map(|r| Some(r.0.short())).collect();
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(vs), Arc::new(kinds)]).unwrap();
        ChangeBatch::from_kinds(batch, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
    }

    fn origins(tables: &[&str], truncated: &[&str]) -> RowOrigins {
        RowOrigins {
            tables: tables.iter().map(|t| Arc::from(*t)).collect(),
            truncated: truncated
                .iter()
                .map(|t| Truncation {
                    table: Arc::from(*t),
                    change_columns: vec![(2, ScalarValue::Utf8(Some("-D".into())))],
                })
                .collect(),
        }
    }

    /// (kind, id, v, kind column) of each change, sorted.
    fn shown(changes: &ChangeBatch) -> Vec<(RowKind, i64, Option<String>, String)> {
        let ids = changes.rows().column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let vs = changes.rows().column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let ks = changes.rows().column(2).as_any().downcast_ref::<StringArray>().unwrap();
        let mut rows: Vec<_> = (0..changes.num_rows())
            .map(|i| {
                (
                    changes.kind(i),
                    ids.value(i),
                    vs.is_valid(i).then(|| vs.value(i).to_string()),
                    ks.value(i).to_string(),
                )
            })
            .collect();
        rows.sort_by_key(|r| (r.1, r.0.code()));
        rows
    }

    use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};

    #[test]
    fn a_truncation_deletes_exactly_the_rows_its_table_holds_then() {
        let mut held = CapturedRows::new(schema(), vec![0]).unwrap();
        let first = batch(&[(I, 1, Some("a")), (I, 2, Some("b")), (I, 3, None), (I, 1, Some("other table"))]);
        let out = held.track(first.clone(), &origins(&["s.t", "s.t", "s.t", "s.u"], &[])).unwrap();
        assert_eq!(shown(&out), shown(&first), "without truncations a batch passes unchanged");
        let changes =
            batch(&[(UB, 2, Some("b")), (UA, 2, Some("b2")), (D, 3, None), (UB, 1, Some("a")), (UA, 9, Some("a"))]);
        held.track(changes, &origins(&["s.t"; 5], &[])).unwrap();
        assert_eq!(held.len(), 3);

        let after = batch(&[(I, 5, Some("new"))]);
        let out = held.track(after, &origins(&["s.t"], &["s.t"])).unwrap();
        assert_eq!(
            shown(&out),
            [
                (D, 2, Some("b2".into()), "-D".into()),
                (I, 5, Some("new".into()), "+I".into()),
                (D, 9, Some("a".into()), "-D".into()),
            ],
            "the rows held at the truncation, changed columns set, then the batch's own rows"
        );
        assert_eq!(held.len(), 2, "s.u's row and the row inserted after the truncation");
        let out = held.track(batch(&[]), &origins(&[], &["s.t", "s.x"])).unwrap();
        assert_eq!(shown(&out), [(D, 5, Some("new".into()), "-D".into())]);
    }

    #[test]
    fn held_rows_survive_a_checkpoint_round_trip() {
        let mut held = CapturedRows::new(schema(), vec![0]).unwrap();
        let rows = batch(&[(I, 1, Some("ü")), (I, 2, None), (I, 7, Some(""))]);
        held.track(rows, &origins(&["s.t", "s.t", "s.u"], &[])).unwrap();
        let state = held.state().unwrap();
        held.track(batch(&[(I, 8, None)]), &origins(&["s.u"], &[])).unwrap();
        let later = held.state().unwrap();
        assert_eq!(later[0], state[0], "s.t did not change");
        assert_ne!(later[1], state[1], "s.u is encoded again after its change");
        let text = serde_json::to_string(&state).unwrap();
        let mut restored = CapturedRows::new(schema(), vec![0]).unwrap();
        restored.restore(&serde_json::from_str::<Vec<CapturedTableState>>(&text).unwrap()).unwrap();
        let out = restored.track(batch(&[]), &origins(&[], &["s.t", "s.u"])).unwrap();
        assert_eq!(
            shown(&out),
            [(D, 1, Some("ü".into()), "-D".into()), (D, 2, None, "-D".into()), (D, 7, Some("".into()), "-D".into()),]
        );
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let err = CapturedRows::new(other, vec![0]).unwrap().restore(&state).unwrap_err().to_string();
        assert!(err.contains("unreadable") && err.contains("--fresh"), "{err}");
    }

    #[test]
    fn a_batch_whose_tables_do_not_match_its_rows_is_a_bug() {
        let mut held = CapturedRows::new(schema(), vec![0]).unwrap();
        let err = held.track(batch(&[(I, 1, None)]), &origins(&[], &[])).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Internal);
    }
}
