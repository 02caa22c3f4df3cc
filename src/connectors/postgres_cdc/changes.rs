//! Assembles changelog batches from tuples: each declared column is either a source column
//! (looked up by name in the captured table) or a metadata value.

use std::sync::Arc;

use datafusion::arrow::array::Int8Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;

use super::pgoutput::Cell;
use super::values::{BinaryForm, ColumnBuilder, FloatSource};
use crate::changelog::{ChangeBatch, RowKind};
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
