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
use crate::changelog::{ChangeBatch, Event, RowKind, Truncation};
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
    fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }

    /// Holds the rows `changes` adds and forgets those it retracts; `table_of(i)` names row i's
    /// table.
    fn apply<'a>(&mut self, changes: &ChangeBatch, table_of: impl Fn(usize) -> &'a Arc<str>) -> Result<()> {
        let columns = changes.rows().columns();
        let key_columns: Vec<ArrayRef> = self.key.iter().map(|i| columns[*i].clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let additions = (0..changes.num_rows()).any(|i| changes.kind(i).is_addition());
        let rows = if additions { Some(self.rows.convert_columns(columns)?) } else { None };
        self.changed |= !changes.is_empty();
        for i in 0..changes.num_rows() {
            let table = table_of(i);
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
                self.apply(&ChangeBatch::inserts(batch), |_| &name)?;
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

    /// Passes changes on as they are, holding their rows; a truncation becomes the deletes of
    /// every row its table holds then. A schema change passes: the rows held are in the declared
    /// columns, which the source still reads after it.
    fn process(&mut self, _: usize, event: Event, out: &mut Vec<Event>) -> Result<()> {
        match event {
            Event::Changes { table: Some(table), changes } => {
                self.apply(&changes, |_| &table)?;
                out.push(Event::Changes { table: Some(table), changes });
            }
            Event::Changes { table: None, changes } if changes.is_empty() => {}
            Event::Changes { table: None, .. } => {
                return Err(Error::internal("a source that keeps its captured rows sent changes without their table"))
            }
            Event::Truncated(Truncation { table: Some(table), change_columns }) => {
                if let Some(changes) = self.truncate(&table, &change_columns)? {
                    out.push(Event::Changes { table: Some(table), changes });
                }
            }
            Event::Truncated(Truncation { table: None, .. }) => {
                return Err(Error::internal("a source that keeps its captured rows truncated a table it did not name"))
            }
            Event::SchemaChanged(change) => out.push(Event::SchemaChanged(change)),
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Option<OperatorSnapshot>> {
        if !self.changed {
            return Ok(Some(OperatorSnapshot::Unchanged));
        }
        tracing::debug!(operator = %self.name, rows = self.len(), "storing the rows the source delivered");
        let mut tables: Vec<&Arc<str>> = self.tables.keys().collect();
        tables.sort();
        let parser = self.rows.parser();
        let names: StringArray =
            tables.iter().flat_map(|t| std::iter::repeat_n(Some(t.as_ref()), self.tables[*t].len())).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(names)];
        columns.extend(
            self.rows
                .convert_rows(tables.iter().flat_map(|t| self.tables[*t].values()).map(|row| parser.parse(row)))?,
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
        self.apply(&ChangeBatch::inserts(rows), |i| &tables[i])?;
        self.changed = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn of(table: &str, changes: ChangeBatch) -> Event {
        Event::Changes { table: Some(Arc::from(table)), changes }
    }

    fn truncation(table: &str) -> Event {
        Event::Truncated(Truncation {
            table: Some(Arc::from(table)),
            change_columns: vec![(2, ScalarValue::Utf8(Some("-D".into())))],
        })
    }

    /// Runs `events` through the operator: the changes it emits, as one batch.
    fn track(held: &mut TruncateAsDeletes, events: Vec<Event>) -> ChangeBatch {
        let mut out = Vec::new();
        for event in events {
            held.process(0, event, &mut out).unwrap();
        }
        let parts: Vec<ChangeBatch> = out
            .into_iter()
            .map(|e| match e {
                Event::Changes { changes, .. } => changes,
                other => panic!("{other:?} came out"),
            })
            .collect();
        ChangeBatch::concat(&schema(), &parts).unwrap()
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
        let out = track(&mut held, vec![of("s.t", first.slice(0, 3)), of("s.u", first.slice(3, 1))]);
        assert_eq!(shown(&out), shown(&first), "without truncations a batch passes unchanged");
        let changes =
            batch(&[(UB, 2, Some("b")), (UA, 2, Some("b2")), (D, 3, None), (UB, 1, Some("a")), (UA, 9, Some("a"))]);
        track(&mut held, vec![of("s.t", changes)]);
        assert_eq!(held.len(), 3);

        let after = batch(&[(I, 5, Some("new"))]);
        let out = track(&mut held, vec![truncation("s.t"), of("s.t", after)]);
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
        let out = track(&mut held, vec![truncation("s.t"), truncation("s.x")]);
        assert_eq!(shown(&out), [(D, 5, Some("new".into()), "-D".into())]);
    }

    fn changed(held: &mut TruncateAsDeletes) -> Option<RecordBatch> {
        match held.snapshot().unwrap() {
            Some(OperatorSnapshot::Changed(state)) => Some(state),
            Some(OperatorSnapshot::Unchanged) => None,
            None => panic!("a stateful operator gave no state"),
        }
    }

    /// A schema change keeps its place between the changes around it, and the rows held stay.
    #[test]
    fn a_schema_change_passes_in_order_and_leaves_the_held_rows() {
        use crate::changelog::SchemaChange;
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        let change = SchemaChange { table: Some(Arc::from("s.a")), before: Vec::new(), after: Vec::new() };
        let mut out = Vec::new();
        for event in [
            of("s.a", batch(&[(RowKind::Insert, 1, Some("x"))])),
            Event::SchemaChanged(change.clone()),
            of("s.a", batch(&[(RowKind::Insert, 2, Some("y"))])),
        ] {
            held.process(0, event, &mut out).unwrap();
        }
        assert!(
            matches!(&out[..], [Event::Changes { .. }, Event::SchemaChanged(c), Event::Changes { .. }] if *c == change),
            "{out:?}"
        );
        assert_eq!(track(&mut held, vec![truncation("s.a")]).num_rows(), 2);
    }

    #[test]
    fn held_rows_survive_a_checkpoint_round_trip() {
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        let rows = batch(&[(I, 1, Some("ü")), (I, 2, None), (I, 7, Some(""))]);
        track(&mut held, vec![of("s.t", rows.slice(0, 2)), of("s.u", rows.slice(2, 1))]);
        let state = changed(&mut held).expect("new rows are a changed state");
        assert!(changed(&mut held).is_none(), "nothing changed since the last snapshot");
        track(&mut held, vec![of("s.t", batch(&[]))]);
        assert!(changed(&mut held).is_none(), "an empty batch changes nothing");

        let mut restored = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        restored.restore(state.clone()).unwrap();
        assert!(changed(&mut restored).is_none(), "a restored state is the stored one");
        let out = track(&mut restored, vec![truncation("s.t"), truncation("s.u")]);
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
        let v1 =
            [CapturedTableState { table: "s.t".into(), rows: base64::engine::general_purpose::STANDARD.encode(&ipc) }];
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        held.restore_v1(&v1).unwrap();
        assert!(changed(&mut held).is_some(), "rows of format 1 are stored again in format 2");
        let out = track(&mut held, vec![truncation("s.t")]);
        assert_eq!(shown(&out), [(D, 1, Some("a".into()), "-D".into()), (D, 2, None, "-D".into())]);
    }

    #[test]
    fn changes_without_their_table_are_a_bug() {
        let mut held = TruncateAsDeletes::new("t", schema(), vec![0]).unwrap();
        let err = held.process(0, Event::changes(batch(&[(I, 1, None)])), &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Internal);
    }
}
