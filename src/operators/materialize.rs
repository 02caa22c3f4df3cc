//! Flink's upsert materializer (`SinkUpsertMaterializer`, `table.exec.sink.upsert-materialize`):
//! between an updating query and a sink keyed by other columns than the query's unique key. Per
//! sink key it keeps every row of the query's result that currently has that key, in arrival
//! order; the sink shows the latest. An addition appends its row and shows it; a retraction takes
//! away the latest equal row: when that was the one shown, the one before it is shown again, and
//! when none is left the key is deleted. Without it, an update moving a result row from one sink
//! key to another, or two result rows sharing a sink key, would leave the sink with a deleted row
//! another result row still has, or with the wrong one.
//!
//! Its output is an upsert changelog by the sink key: `+I`/`+U` of the row now shown, `-D` of a key
//! left empty (no `-U`: the sink replaces by key).
//!
//! State: every result row, grouped by sink key in arrival order, as typed columns; written whole
//! at a checkpoint after any change, not at all otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};

use super::StatefulNode;
use crate::changelog::{ChangeBatch, RowKind};
use crate::error::{Error, Result};

/// A planned materializer: the sink key's columns in rows of `schema` (the sink's columns).
#[derive(Debug)]
pub struct MaterializeSpec {
    pub key: Vec<usize>,
    pub schema: SchemaRef,
}

/// The running materializer of one pipeline.
pub struct UpsertMaterializer {
    name: String,
    spec: Arc<MaterializeSpec>,
    keys: RowConverter,
    rows: RowConverter,
    /// Per sink key, its rows in arrival order (whole rows, in their row encoding).
    by_key: HashMap<OwnedRow, Vec<OwnedRow>>,
    changed: bool,
}

impl UpsertMaterializer {
    pub fn new(name: String, spec: Arc<MaterializeSpec>) -> Result<Self> {
        let field = |i: usize| SortField::new(spec.schema.field(i).data_type().clone());
        let keys = RowConverter::new(spec.key.iter().map(|k| field(*k)).collect())?;
        let rows = RowConverter::new((0..spec.schema.fields().len()).map(field).collect())?;
        // Changed from the start: the first checkpoint stores the (empty) state.
        Ok(UpsertMaterializer { name, spec, keys, rows, by_key: HashMap::new(), changed: true })
    }

    fn apply(&mut self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let rows = batch.rows();
        let key_columns: Vec<_> = self.spec.key.iter().map(|k| rows.column(*k).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let encoded = self.rows.convert_columns(rows.columns())?;
        // The changes to show, in order: the row shown (or deleted) for a key.
        let mut out: Vec<(RowKind, OwnedRow)> = Vec::new();
        for i in 0..batch.num_rows() {
            let key = keys.row(i).owned();
            let row = encoded.row(i).owned();
            let list = self.by_key.entry(key.clone()).or_default();
            if batch.kind(i).is_addition() {
                let kind = if list.is_empty() { RowKind::Insert } else { RowKind::UpdateAfter };
                list.push(row.clone());
                out.push((kind, row));
            } else {
                let Some(at) = list.iter().rposition(|r| r.row() == row.row()) else {
                    return Err(Error::user(format!(
                        "the upsert materializer of `{}` received a retraction of a row it does not hold: its input \
                         retracted a row it never added, which happens when a job resumes with state of another run; \
                         restart it with --fresh",
                        self.name
                    )));
                };
                let was_shown = at + 1 == list.len();
                list.remove(at);
                if let Some(last) = list.last().filter(|_| was_shown) {
                    out.push((RowKind::UpdateAfter, last.clone()));
                } else if list.is_empty() {
                    self.by_key.remove(&key);
                    out.push((RowKind::Delete, row));
                }
            }
        }
        self.changed = true;
        let (kinds, shown): (Vec<RowKind>, Vec<OwnedRow>) = out.into_iter().unzip();
        let columns = if shown.is_empty() {
            return Ok(ChangeBatch::inserts(RecordBatch::new_empty(self.spec.schema.clone())));
        } else {
            self.rows.convert_rows(shown.iter().map(|r| r.row()))?
        };
        ChangeBatch::from_kinds(RecordBatch::try_new(self.spec.schema.clone(), columns)?, &kinds)
    }
}

impl StatefulNode for UpsertMaterializer {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn construct(&self) -> &'static str {
        "upsert materializer"
    }

    fn apply_input(&mut self, _input: usize, changes: &ChangeBatch) -> Result<ChangeBatch> {
        self.apply(changes)
    }

    fn changed(&mut self) -> &mut bool {
        &mut self.changed
    }

    fn state_schema(&self) -> SchemaRef {
        self.spec.schema.clone()
    }

    /// Every row held, a key's rows together and in their order.
    fn state_batch(&self) -> Result<RecordBatch> {
        let rows: Vec<_> = self.by_key.values().flatten().map(|r| r.row()).collect();
        if rows.is_empty() {
            return Ok(RecordBatch::new_empty(self.spec.schema.clone()));
        }
        Ok(RecordBatch::try_new(self.spec.schema.clone(), self.rows.convert_rows(rows)?)?)
    }

    fn load_state(&mut self, state: &RecordBatch) -> Result<()> {
        // Typed as the checkpoint stored them; the schema check already matched the types.
        let state = RecordBatch::try_new(self.spec.schema.clone(), state.columns().to_vec())?;
        let key_columns: Vec<_> = self.spec.key.iter().map(|k| state.column(*k).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let rows = self.rows.convert_columns(state.columns())?;
        self.by_key.clear();
        for i in 0..state.num_rows() {
            self.by_key.entry(keys.row(i).owned()).or_default().push(rows.row(i).owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::changelog::format_rows;
    use crate::operators::{Operator, OperatorSnapshot};
    use RowKind::*;

    /// Rows `(id, email)` into a sink keyed by `email`.
    fn materializer() -> UpsertMaterializer {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("email", DataType::Utf8, true),
        ]));
        UpsertMaterializer::new("m".into(), Arc::new(MaterializeSpec { key: vec![1], schema })).unwrap()
    }

    fn run(m: &mut UpsertMaterializer, rows: &[(RowKind, i64, &str)]) -> String {
        let schema = m.spec.schema.clone();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        let changes = ChangeBatch::from_kinds(batch, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap();
        format_rows(&m.apply(&changes).unwrap(), "").unwrap()
    }

    #[test]
    fn the_latest_row_of_a_sink_key_is_shown_and_the_one_before_comes_back_when_it_goes() {
        let mut m = materializer();
        // Two result rows share the sink key `a`: the later is shown.
        assert_eq!(run(&mut m, &[(Insert, 1, "a"), (Insert, 2, "a")]), "+I[1, a]\n+U[2, a]\n");
        // Row 2 moves to `b`: `a` shows row 1 again instead of being deleted.
        assert_eq!(run(&mut m, &[(UpdateBefore, 2, "a"), (UpdateAfter, 2, "b")]), "+U[1, a]\n+I[2, b]\n");
        // A retraction of a row not shown changes nothing visible.
        assert_eq!(run(&mut m, &[(Insert, 3, "b"), (Delete, 2, "b")]), "+U[3, b]\n");
        let Some(OperatorSnapshot::Changed(state)) = m.snapshot().unwrap() else { panic!("no state") };
        let mut restored = materializer();
        restored.restore(state).unwrap();
        for m in [&mut m, &mut restored] {
            assert_eq!(run(m, &[(Delete, 1, "a"), (Delete, 3, "b")]), "-D[1, a]\n-D[3, b]\n");
        }
        let err = m.apply_input(0, &ChangeBatch::inserts(RecordBatch::new_empty(m.spec.schema.clone()))).unwrap();
        assert!(err.is_empty());
        let schema = m.spec.schema.clone();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![9])), Arc::new(StringArray::from(vec!["z"]))],
        )
        .unwrap();
        let changes = ChangeBatch::from_kinds(batch, &[Delete]).unwrap();
        assert!(m.apply(&changes).unwrap_err().to_string().contains("--fresh"));
    }
}
