//! The operator that turns a source's `TRUNCATE` into deletes of the rows the table held, for
//! sources that ask for it (postgres-cdc `'truncate.mode' = 'delete'`): it keeps every row the
//! source delivered and still holds, by captured table and key.
//!
//! A truncation arrives without its rows, and the source cannot read them afterwards: the only
//! record of what the table held is the changelog itself. The pipeline — not the source — keeps
//! it because the source reads ahead of the sink: kept here, the rows are exactly those of the
//! batches that reached the sink, so the state stored with a checkpoint matches the checkpoint's
//! position. Rows are held in Arrow's row format; the checkpoint state is one Arrow batch of the
//! source's columns behind a leading column naming each row's table.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::{Operator, OperatorSnapshot};
use crate::changelog::{ChangeBatch, RowKind};
use crate::connectors::RowOrigins;
use crate::error::{Error, Result};

/// The name of the state's leading column, which holds each row's captured table.
const TABLE_COLUMN: &str = "__table";

/// One table's rows as checkpoint format version 1 stored them (inline in the record).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapturedTableState {
    pub table: String,
    /// The rows as an Arrow IPC stream in the source's schema, base64-encoded.
    pub rows: String,
}

/// A table's rows in Arrow's row format, by their key in Arrow's row format.
type HeldRows = HashMap<Box<[u8]>, Box<[u8]>>;

pub struct TruncateAsDeletes {
    name: String,
    schema: SchemaRef,
    key: Vec<usize>,
    keys: RowConverter,
    rows: RowConverter,
    tables: HashMap<Arc<str>, HeldRows>,
    /// Rows changed since the last snapshot or restore: an idle operator's state is not
    /// encoded and written again at every checkpoint.
    changed: bool,
}

fn converter(schema: &SchemaRef, columns: &[usize]) -> Result<RowConverter> {
    let fields = columns.iter().map(|i| SortField::new(schema.field(*i).data_type().clone())).collect();
    Ok(RowConverter::new(fields)?)
}

impl TruncateAsDeletes {
    /// Rows of `schema` identified by the columns at `key`; `name` names its state.
    pub fn new(name: &str, schema: SchemaRef, key: Vec<usize>) -> Result<Self> {
        if key.is_empty() || key.iter().any(|i| *i >= schema.fields().len()) {
            return Err(Error::internal(format!("captured rows need key columns of the source schema, got {key:?}")));
        }
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        Ok(TruncateAsDeletes {
            name: name.to_string(),
            keys: converter(&schema, &key)?,
            rows: converter(&schema, &all)?,
            schema,
            key,
            tables: HashMap::new(),
            changed: true,
        })
    }

    /// Rows held, over all tables.
    pub fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }

    /// The batch's changes after the deletes its truncations stand for, and the rows held updated.
    fn track(&mut self, changes: ChangeBatch, origins: &RowOrigins) -> Result<ChangeBatch> {
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
        ChangeBatch::concat(&self.schema, &parts)
    }

    fn apply(&mut self, changes: &ChangeBatch, tables: &[Arc<str>]) -> Result<()> {
        let columns = changes.rows().columns();
        let key_columns: Vec<ArrayRef> = self.key.iter().map(|i| columns[*i].clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let additions = (0..changes.num_rows()).any(|i| changes.kind(i).is_addition());
        let rows = if additions { Some(self.rows.convert_columns(columns)?) } else { None };
        self.changed |= !tables.is_empty();
        for (i, table) in tables.iter().enumerate() {
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
        let Some(held) = self.tables.remove(table) else { return Ok(None) };
        self.changed = true;
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

    /// Holds the rows of a checkpoint of format version 1 (added to what is held).
    pub fn restore_v1(&mut self, state: &[CapturedTableState]) -> Result<()> {
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
        }
        // Stored again, in this format, at the next checkpoint.
        self.changed = true;
        Ok(())
    }

    fn state_schema(&self) -> SchemaRef {
        let mut fields = vec![Arc::new(Field::new(TABLE_COLUMN, DataType::Utf8, false))];
        fields.extend(self.schema.fields().iter().cloned());
        Arc::new(Schema::new(fields))
    }
}

impl Operator for TruncateAsDeletes {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, _: usize, changes: ChangeBatch, origins: Option<&RowOrigins>) -> Result<ChangeBatch> {
        match origins {
            Some(origins) => self.track(changes, origins),
            None if changes.is_empty() => Ok(changes),
            None => Err(Error::internal("a source that keeps its captured rows sent a batch without their origins")),
        }
    }

    fn snapshot(&mut self) -> Result<Option<OperatorSnapshot>> {
        if !self.changed {
            return Ok(Some(OperatorSnapshot::Unchanged));
        }
        let mut tables: Vec<&Arc<str>> = self.tables.keys().collect();
        tables.sort();
        let parser = self.rows.parser();
        let names: StringArray =
            tables.iter().flat_map(|t| std::iter::repeat_n(Some(t.as_ref()), self.tables[*t].len())).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(names)];
        columns.extend(
            self.rows.convert_rows(tables.iter().flat_map(|t| self.tables[*t].values()).map(|row| parser.parse(row)))?,
        );
        let state = RecordBatch::try_new(self.state_schema(), columns)?;
        self.changed = false;
        Ok(Some(OperatorSnapshot::Changed(state)))
    }

    fn restore(&mut self, state: RecordBatch) -> Result<()> {
        let expected = self.state_schema();
        if state.schema().fields() != expected.fields() {
            return Err(Error::user(format!(
                "the checkpoint's captured rows for `{}` have columns {:?}, the source has {:?}; start over with --fresh",
                self.name,
                state.schema(),
                expected
            )));
        }
        let names = state
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::internal("the captured rows' table column is not a string column"))?;
        let tables: Vec<Arc<str>> = names.iter().map(|n| Arc::from(n.unwrap_or_default())).collect();
        let rows = RecordBatch::try_new(self.schema.clone(), state.columns()[1..].to_vec())?;
        self.apply(&ChangeBatch::inserts(rows), &tables)?;
        self.changed = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Truncation;
    use datafusion::arrow::array::Array;
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
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
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

    fn changed(held: &mut TruncateAsDeletes) -> Option<RecordBatch> {
        match held.snapshot().unwrap() {
            Some(OperatorSnapshot::Changed(state)) => Some(state),
            Some(OperatorSnapshot::Unchanged) => None,
            None => panic!("a stateful operator gave no state"),
        }
    }

    #[test]
    fn held_rows_survive_a_checkpoint_round_trip() {
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        let rows = batch(&[(I, 1, Some("ü")), (I, 2, None), (I, 7, Some(""))]);
        held.track(rows, &origins(&["s.t", "s.t", "s.u"], &[])).unwrap();
        let state = changed(&mut held).expect("new rows are a changed state");
        assert!(changed(&mut held).is_none(), "nothing changed since the last snapshot");
        held.track(batch(&[]), &origins(&[], &[])).unwrap();
        assert!(changed(&mut held).is_none(), "an empty batch changes nothing");

        let mut restored = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        restored.restore(state.clone()).unwrap();
        assert!(changed(&mut restored).is_none(), "a restored state is the stored one");
        let out = restored.track(batch(&[]), &origins(&[], &["s.t", "s.u"])).unwrap();
        assert_eq!(
            shown(&out),
            [(D, 1, Some("ü".into()), "-D".into()), (D, 2, None, "-D".into()), (D, 7, Some("".into()), "-D".into()),]
        );
        assert!(changed(&mut restored).is_some(), "a truncation changes the state");

        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let err = TruncateAsDeletes::new("t", other, vec![0]).unwrap().restore(state).unwrap_err().to_string();
        assert!(err.contains("--fresh"), "{err}");
    }

    /// Format version 1 stored each table's rows inline as a base64 Arrow IPC stream.
    #[test]
    fn rows_stored_by_checkpoint_format_1_are_restored() {
        let rows = batch(&[(I, 1, Some("a")), (I, 2, None)]);
        let mut ipc = Vec::new();
        let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &schema()).unwrap();
        writer.write(rows.rows()).unwrap();
        writer.finish().unwrap();
        drop(writer);
        let v1 = [CapturedTableState {
            table: "s.t".into(),
            rows: base64::engine::general_purpose::STANDARD.encode(&ipc),
        }];
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        held.restore_v1(&v1).unwrap();
        assert!(changed(&mut held).is_some(), "rows of format 1 are stored again in format 2");
        let out = held.track(batch(&[]), &origins(&[], &["s.t"])).unwrap();
        assert_eq!(shown(&out), [(D, 1, Some("a".into()), "-D".into()), (D, 2, None, "-D".into())]);
    }

    #[test]
    fn a_batch_whose_tables_do_not_match_its_rows_is_a_bug() {
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        let err = held.track(batch(&[(I, 1, None)]), &origins(&[], &[])).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Internal);
    }
}
