//! Assembles changelog batches from tuples: each declared column is either a source column
//! (looked up by name in the captured table) or a metadata value; and, for a source whose tables
//! are read into their own columns, one batch per run of one table's rows ([`Rows`]).

use std::sync::Arc;

use datafusion::arrow::array::Int8Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;

use super::pgoutput::Cell;
use super::values::{BinaryForm, ColumnBuilder, FloatSource};
use super::{Columns, Shape};
use crate::changelog::{ChangeBatch, Event, RowKind};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey {
    DatabaseName,
    SchemaName,
    TableName,
    OpTs,
    RowKind,
}

impl MetadataKey {
    pub const KEYS: &'static [&'static str] = &["database_name", "schema_name", "table_name", "op_ts", "row_kind"];

    pub fn parse(key: &str) -> Option<MetadataKey> {
        Some(match key {
            "database_name" => MetadataKey::DatabaseName,
            "schema_name" => MetadataKey::SchemaName,
            "table_name" => MetadataKey::TableName,
            "op_ts" => MetadataKey::OpTs,
            "row_kind" => MetadataKey::RowKind,
            _ => return None,
        })
    }
}

/// Where a declared column's values come from.
#[derive(Debug, Clone)]
pub enum ColumnSource {
    /// The source column of this name, at this index among the declared source columns.
    Physical {
        name: String,
        index: usize,
    },
    Metadata(MetadataKey),
}

/// What the metadata columns say about one row.
pub struct RowContext<'a> {
    pub database: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
    /// Commit time of the change in milliseconds since the epoch; 0 for snapshot rows, as in
    /// Flink CDC.
    pub op_ts_millis: i64,
}

pub struct ChangeBuilder {
    schema: SchemaRef,
    sources: Arc<Vec<ColumnSource>>,
    columns: Vec<ColumnBuilder>,
    kinds: Vec<i8>,
    capacity: usize,
}

impl ChangeBuilder {
    pub fn new(schema: SchemaRef, sources: Arc<Vec<ColumnSource>>, capacity: usize) -> Result<Self> {
        let columns = Self::builders(&schema, capacity)?;
        Ok(ChangeBuilder { schema, sources, columns, kinds: Vec::with_capacity(capacity), capacity })
    }

    fn builders(schema: &SchemaRef, capacity: usize) -> Result<Vec<ColumnBuilder>> {
        schema
            .fields()
            .iter()
            .map(|field| {
                ColumnBuilder::new(field.data_type(), capacity).ok_or_else(|| {
                    Error::internal(format!("no decoder for column `{}` of type {}", field.name(), field.data_type()))
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Appends one row. `cells[mapping[i]]` is the value of declared source column `i`, and
    /// `floats[i]` says whether that column is `real` or `double precision`.
    pub fn append(
        &mut self,
        kind: RowKind,
        cells: &[Cell<'_>],
        mapping: &[usize],
        floats: &[Option<FloatSource>],
        row: &RowContext<'_>,
    ) -> Result<()> {
        self.append_with(kind, row, |builder, index, name| match mapping.get(index).and_then(|i| cells.get(*i)) {
            Some(Cell::Text(text)) => Ok(match floats.get(index).copied().flatten() {
                Some(source) => builder.append_float_text(text, source),
                None => builder.append_text(text),
            }),
            Some(Cell::Null) | None => {
                builder.append_null();
                Ok(Ok(()))
            }
            Some(Cell::Unchanged) => {
                Err(Error::internal(format!("unchanged TOAST value of column `{name}` reached the batch builder")))
            }
            Some(Cell::Binary(_)) => Err(Error::internal(format!("binary value for column `{name}` in a text stream"))),
        })
    }

    /// Appends one row of a binary `COPY`: `values[i]` is declared source column `i` in
    /// `forms[i]` (`None` is NULL).
    pub fn append_binary(
        &mut self,
        values: &[Option<&[u8]>],
        forms: &[BinaryForm],
        row: &RowContext<'_>,
    ) -> Result<()> {
        self.append_with(RowKind::Insert, row, |builder, index, name| {
            Ok(match (values.get(index), forms.get(index)) {
                (Some(Some(bytes)), Some(form)) => builder.append_binary(*form, bytes),
                (Some(None), _) => {
                    builder.append_null();
                    Ok(())
                }
                _ => Err(format!("the binary COPY row has no value for `{name}`")),
            })
        })
    }

    /// Appends one row whose source columns `physical(builder, index, name)` fills: its error is
    /// ours, its inner error a value that does not fit the declared column.
    fn append_with(
        &mut self,
        kind: RowKind,
        row: &RowContext<'_>,
        mut physical: impl FnMut(&mut ColumnBuilder, usize, &str) -> Result<std::result::Result<(), String>>,
    ) -> Result<()> {
        for (builder, source) in self.columns.iter_mut().zip(self.sources.iter()) {
            let outcome = match source {
                ColumnSource::Physical { name, index } => physical(builder, *index, name)?,
                ColumnSource::Metadata(key) => match key {
                    MetadataKey::DatabaseName => builder.append_text(row.database.as_bytes()),
                    MetadataKey::SchemaName => builder.append_text(row.schema.as_bytes()),
                    MetadataKey::TableName => builder.append_text(row.table.as_bytes()),
                    MetadataKey::RowKind => builder.append_text(kind.short().as_bytes()),
                    MetadataKey::OpTs => builder.append_epoch_millis(row.op_ts_millis),
                },
            };
            outcome.map_err(|why| {
                let column = match source {
                    ColumnSource::Physical { name, .. } => name.as_str(),
                    ColumnSource::Metadata(_) => "metadata",
                };
                Error::user(format!(
                    "cannot read column `{column}` of {}.{}.{}: {why}",
                    row.database, row.schema, row.table
                ))
            })?;
        }
        self.kinds.push(kind.code());
        Ok(())
    }

    /// The values of the columns that describe a change rather than a row (`row_kind`, `op_ts`)
    /// for a `kind` change committed at `op_ts_millis`, by column index.
    pub fn change_columns(&self, kind: RowKind, op_ts_millis: i64) -> Result<Vec<(usize, ScalarValue)>> {
        let mut values = Vec::new();
        for (index, (field, source)) in self.schema.fields().iter().zip(self.sources.iter()).enumerate() {
            let ColumnSource::Metadata(key @ (MetadataKey::RowKind | MetadataKey::OpTs)) = source else { continue };
            let mut builder = ColumnBuilder::new(field.data_type(), 1)
                .ok_or_else(|| Error::internal(format!("no decoder for metadata column `{}`", field.name())))?;
            let appended = match key {
                MetadataKey::RowKind => builder.append_text(kind.short().as_bytes()),
                _ => builder.append_epoch_millis(op_ts_millis),
            };
            appended.map_err(Error::internal)?;
            let array = builder.finish().map_err(Error::internal)?;
            values.push((index, ScalarValue::try_from_array(&array, 0)?));
        }
        Ok(values)
    }

    /// The rows so far as a batch; the builder starts over empty (Arrow builders reset on finish).
    pub fn finish(&mut self) -> Result<ChangeBatch> {
        let arrays = self
            .columns
            .iter_mut()
            .map(|c| c.finish().map_err(|e| Error::internal(format!("building a batch: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let rows = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let kinds = Int8Array::from(std::mem::replace(&mut self.kinds, Vec::with_capacity(self.capacity)));
        ChangeBatch::new(rows, kinds)
    }
}

/// The rows of a batch being built from the stream.
pub enum Rows {
    /// Every captured table's rows in the declared columns.
    Declared(ChangeBuilder),
    /// Each table's rows in its own columns: the runs of one table's rows finished so far (as
    /// events tagged with the table), and the run being built with its table.
    PerTable { capacity: usize, done: Vec<Event>, done_rows: usize, run: Option<(Arc<str>, ChangeBuilder)> },
}

impl Rows {
    pub fn new(columns: &Columns, capacity: usize) -> Result<Rows> {
        Ok(match columns {
            Columns::Declared(shape) => {
                Rows::Declared(ChangeBuilder::new(shape.schema.clone(), shape.sources.clone(), capacity)?)
            }
            Columns::PerTable => Rows::PerTable { capacity, done: Vec::new(), done_rows: 0, run: None },
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Declared(builder) => builder.len(),
            Rows::PerTable { done_rows, run, .. } => done_rows + run.as_ref().map_or(0, |(_, b)| b.len()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The builder for a row of `table`, read into `shape`: per table, a new run when the
    /// previous row was another table's, so the batch keeps the stream's order.
    pub fn builder(&mut self, table: &Arc<str>, shape: &Shape) -> Result<&mut ChangeBuilder> {
        match self {
            Rows::Declared(builder) => Ok(builder),
            Rows::PerTable { capacity, done, done_rows, run } => {
                if run.as_ref().is_some_and(|(t, _)| t != table) {
                    if let Some((t, mut builder)) = run.take() {
                        *done_rows += builder.len();
                        done.push(Event::Changes { table: Some(t), changes: builder.finish()? });
                    }
                }
                let (_, builder) = match run {
                    Some(run) => run,
                    None => run.insert((
                        table.clone(),
                        ChangeBuilder::new(shape.schema.clone(), shape.sources.clone(), *capacity)?,
                    )),
                };
                Ok(builder)
            }
        }
    }

    /// Per table, the runs of the batch as events, in order; the rows start over empty.
    pub fn finish_runs(&mut self) -> Result<Vec<Event>> {
        let Rows::PerTable { done, done_rows, run, .. } = self else {
            return Err(Error::internal("the rows of a declared table were taken as runs of tables"));
        };
        if let Some((table, mut builder)) = run.take() {
            done.push(Event::Changes { table: Some(table), changes: builder.finish()? });
        }
        *done_rows = 0;
        Ok(std::mem::take(done))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn shape(column: &str) -> Shape {
        Shape {
            schema: Arc::new(Schema::new(vec![Field::new(column, DataType::Int32, false)])),
            sources: Arc::new(vec![ColumnSource::Physical { name: column.into(), index: 0 }]),
            physical: vec![(column.into(), DataType::Int32, true)],
            primary_key: vec![column.into()],
        }
    }

    /// Rows of several tables become one event per run of one table's rows, each in its
    /// table's own columns, in the order they came.
    #[test]
    fn rows_of_tables_read_into_their_own_columns_become_runs_in_order() {
        let (a, b) = (shape("a_id"), shape("b_id"));
        let (ta, tb): (Arc<str>, Arc<str>) = (Arc::from("s.a"), Arc::from("s.b"));
        let mut rows = Rows::new(&Columns::PerTable, 10).unwrap();
        let row = RowContext { database: "d", schema: "s", table: "x", op_ts_millis: 0 };
        let add = |rows: &mut Rows, table: &Arc<str>, shape: &Shape, value: &[u8]| {
            rows.builder(table, shape)
                .unwrap()
                .append(RowKind::Insert, &[Cell::Text(value)], &[0], &[None], &row)
                .unwrap()
        };
        add(&mut rows, &ta, &a, b"1");
        add(&mut rows, &ta, &a, b"2");
        add(&mut rows, &tb, &b, b"3");
        add(&mut rows, &ta, &a, b"4");
        assert_eq!(rows.len(), 4);
        let shown: Vec<String> = rows
            .finish_runs()
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::Changes { table, changes } => {
                    format!(
                        "{}:{}:{}",
                        table.as_deref().unwrap_or("-"),
                        changes.rows().schema().field(0).name(),
                        changes.num_rows()
                    )
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(shown, ["s.a:a_id:2", "s.b:b_id:1", "s.a:a_id:1"]);
        assert!(rows.is_empty() && rows.finish_runs().unwrap().is_empty());
    }
}
