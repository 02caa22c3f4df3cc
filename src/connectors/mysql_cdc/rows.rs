//! Fills changelog batches of the declared schema from binlog row images and snapshot rows.
//! Pure: bytes in, Arrow out.

use std::sync::Arc;

use chrono_tz::Tz;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::builders::ColumnBuilder;
use super::cell::{read_binary_cell, read_binlog_cell, read_text_cell, Cell};
use super::schema::{CapturedTable, Fill, SourceColumn};
use crate::changelog::{ChangeBatch, Event, RowKind, TableId};
use crate::error::{Error, Result};
use crate::sql::TableSpec;

/// A column of a table map event: binlog type and metadata (see [`super::cell::read_binlog_cell`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMeta {
    pub column_type: u8,
    pub meta: u16,
}

impl ColumnMeta {
    /// From the type byte and the raw metadata bytes of a table map event.
    pub fn from_table_map(column_type: u8, raw: &[u8]) -> Self {
        use super::cell::column_type as t;
        let meta = match (column_type, raw) {
            // STRING, ENUM and SET store the real type first, then the length.
            (t::STRING | t::ENUM | t::SET, [a, b]) => ((*a as u16) << 8) | *b as u16,
            (_, [a]) => *a as u16,
            (_, [a, b, ..]) => u16::from_le_bytes([*a, *b]),
            _ => 0,
        };
        ColumnMeta { column_type, meta }
    }
}

/// Rows being collected into one changelog batch.
pub struct ChangeBuilder {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    kinds: Vec<RowKind>,
    tz: Tz,
}

impl ChangeBuilder {
    pub fn new(schema: SchemaRef, tz: Tz, capacity: usize) -> Result<Self> {
        let builders = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.name(), f.data_type(), capacity))
            .collect::<Result<Vec<_>>>()?;
        Ok(ChangeBuilder { schema, builders, kinds: Vec::with_capacity(capacity), tz })
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    fn append_metadata(&mut self, table: &CapturedTable, kind: RowKind, op_ts_millis: i64) -> Result<()> {
        for (builder, fill) in self.builders.iter_mut().zip(&table.fills) {
            match fill {
                Fill::Column(_) => {}
                Fill::DatabaseName => builder.append_str(&table.database)?,
                Fill::TableName => builder.append_str(&table.table)?,
                Fill::RowKind => builder.append_str(kind.short())?,
                Fill::OpTs => builder.append_timestamp_millis(op_ts_millis)?,
            }
        }
        self.kinds.push(kind);
        Ok(())
    }

    /// Appends the row image at `*at` of a rows event (all columns present: `binlog_row_image=FULL`).
    pub fn append_binlog_row(
        &mut self,
        table: &CapturedTable,
        columns: &[ColumnMeta],
        buf: &[u8],
        at: &mut usize,
        kind: RowKind,
        op_ts_millis: i64,
    ) -> Result<()> {
        let n = columns.len();
        let null_bytes = n.div_ceil(8);
        let nulls = buf
            .get(*at..*at + null_bytes)
            .ok_or_else(|| Error::internal("binlog row image ends inside its NULL bitmap"))?;
        *at += null_bytes;
        for (i, meta) in columns.iter().enumerate() {
            let cell = if nulls[i / 8] & (1 << (i % 8)) != 0 {
                Cell::Null
            } else {
                let unsigned = table.columns.get(i).is_some_and(|c| c.unsigned);
                read_binlog_cell(buf, at, meta.column_type, meta.meta, unsigned)?
            };
            let Some(source) = table.columns.get(i) else { continue };
            // INET4/INET6/UUID: the stored bytes as the text a snapshot reads.
            let text;
            let cell = match (cell, source.binary_text) {
                (Cell::Bytes(stored), Some(kind)) => {
                    text = kind.text(stored).map_err(|why| {
                        Error::internal(format!(
                            "binlog value of MariaDB `{}` {}: {why}",
                            source.name, source.column_type
                        ))
                    })?;
                    Cell::Bytes(text.as_bytes())
                }
                (cell, _) => cell,
            };
            for (d, fill) in table.fills.iter().enumerate() {
                if *fill == Fill::Column(i) {
                    self.builders[d].append(cell.clone(), source, &self.tz)?;
                }
            }
        }
        self.append_metadata(table, kind, op_ts_millis)
    }

    /// Appends a snapshot row read over the text protocol: `value(i)` is MySQL column `i` (in
    /// table order), `None` for NULL.
    pub fn append_text_row<'v>(
        &mut self,
        table: &CapturedTable,
        value: impl Fn(usize) -> Option<&'v [u8]>,
    ) -> Result<()> {
        self.append_snapshot_row(table, |i, source| match value(i) {
            None => Ok(Cell::Null),
            Some(text) => read_text_cell(text, source.text_kind, source.unsigned, &source.data_type),
        })
    }

    /// Appends a snapshot row read over the binary protocol: `value(i)` is MySQL column `i` (in
    /// table order) with its wire type, `None` for NULL.
    pub fn append_binary_row<'v>(
        &mut self,
        table: &CapturedTable,
        value: impl Fn(usize) -> Option<(u8, &'v [u8])>,
    ) -> Result<()> {
        self.append_snapshot_row(table, |i, source| match value(i) {
            None => Ok(Cell::Null),
            Some((wire_type, bytes)) => {
                read_binary_cell(bytes, wire_type, source.text_kind, source.unsigned, &source.data_type)
            }
        })
    }

    fn append_snapshot_row<'v>(
        &mut self,
        table: &CapturedTable,
        cell: impl Fn(usize, &SourceColumn) -> Result<Cell<'v>>,
    ) -> Result<()> {
        for (d, fill) in table.fills.iter().enumerate() {
            if let Fill::Column(i) = fill {
                let source = &table.columns[*i];
                self.builders[d].append(cell(*i, source)?, source, &self.tz)?;
            }
        }
        // Flink CDC stamps snapshot rows with op_ts 0.
        self.append_metadata(table, RowKind::Insert, 0)
    }

    /// The rows collected so far as one batch; the builder is empty and ready again after it.
    pub fn finish(&mut self) -> Result<ChangeBatch> {
        let columns = self.builders.iter_mut().map(|b| b.finish()).collect::<Result<Vec<_>>>()?;
        let rows = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| {
            Error::user(format!(
                "mysql-cdc read a value that the declared columns cannot hold ({e}); a NOT NULL column may receive NULL (zero dates become NULL)"
            ))
        })?;
        let kinds = std::mem::take(&mut self.kinds);
        ChangeBatch::from_kinds(rows, &kinds)
    }
}

/// Binlog rows of the captured tables in the order read: each run of rows of one table (in one
/// shape) becomes one `Changes` event of that table, in its columns. The tables of a source of
/// one declared table share its columns and carry no id, so their rows stay one run.
pub struct TableChanges {
    tz: Tz,
    capacity: usize,
    /// The table rows are being collected for: its columns, its id and its builder.
    current: Option<(Arc<TableSpec>, TableId, ChangeBuilder)>,
    events: Vec<Event>,
    rows: usize,
}

impl TableChanges {
    pub fn new(tz: Tz, capacity: usize) -> Self {
        TableChanges { tz, capacity, current: None, events: Vec::new(), rows: 0 }
    }

    /// Rows collected since the last [`TableChanges::take`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// [`ChangeBuilder::append_binlog_row`] into `table`'s run.
    pub fn append_binlog_row(
        &mut self,
        table: &CapturedTable,
        columns: &[ColumnMeta],
        buf: &[u8],
        at: &mut usize,
        kind: RowKind,
        op_ts_millis: i64,
    ) -> Result<()> {
        let same = matches!(&self.current, Some((spec, id, _)) if Arc::ptr_eq(spec, &table.spec) && *id == table.id);
        if !same {
            self.end_run()?;
            let builder = ChangeBuilder::new(table.spec.schema(), self.tz, self.capacity)?;
            self.current = Some((table.spec.clone(), table.id.clone(), builder));
        }
        let Some((_, _, builder)) = self.current.as_mut() else {
            return Err(Error::internal("no run of rows to append to"));
        };
        builder.append_binlog_row(table, columns, buf, at, kind, op_ts_millis)?;
        self.rows += 1;
        Ok(())
    }

    fn end_run(&mut self) -> Result<()> {
        if let Some((_, id, builder)) = self.current.as_mut().filter(|(_, _, b)| b.len() > 0) {
            self.events.push(Event::Changes { table: id.clone(), changes: builder.finish()? });
        }
        Ok(())
    }

    /// The changes collected so far, in order, one event per run.
    pub fn take(&mut self) -> Result<Vec<Event>> {
        self.end_run()?;
        self.rows = 0;
        Ok(std::mem::take(&mut self.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{ColumnSpec, MetadataColumn, TableSpec};
    use datafusion::arrow::datatypes::DataType;

    use super::super::cell::column_type as t;
    use super::super::schema::SourceColumn;

    fn spec() -> TableSpec {
        let col = |name: &str, dt: DataType, meta: Option<&str>| ColumnSpec {
            name: name.into(),
            data_type: dt,
            nullable: true,
            type_text: String::new(),
            metadata: meta.map(|k| MetadataColumn { key: k.into(), is_virtual: true }),
            comment: None,
        };
        TableSpec {
            name: "t".into(),
            columns: vec![
                col("id", DataType::Int32, None),
                col("name", DataType::Utf8, None),
                col("tbl", DataType::Utf8, Some("table_name")),
                col("kind", DataType::Utf8, Some("row_kind")),
            ],
            primary_key: vec!["id".into()],
            options: vec![],
            comment: None,
            computed: Vec::new(),
        }
    }

    #[test]
    fn binlog_and_snapshot_rows_fill_the_same_columns() {
        let spec = spec();
        let columns = vec![SourceColumn::for_tests("id", "int"), SourceColumn::for_tests("name", "varchar(10)")];
        let table = CapturedTable::new(
            &super::super::schema::Declared::Table(Arc::new(spec.clone())),
            "db".into(),
            "users".into(),
            columns,
            &["id".into()],
            None,
            true,
        )
        .unwrap();
        let mut b = ChangeBuilder::new(spec.schema(), Tz::UTC, 4).unwrap();
        let metas = [ColumnMeta { column_type: t::LONG, meta: 0 }, ColumnMeta { column_type: t::VARCHAR, meta: 40 }];
        // Row 1: id = -2, name = 'ab'; row 2: id = 7, name NULL.
        let image = [0u8, 0xfe, 0xff, 0xff, 0xff, 2, b'a', b'b', 0b10, 7, 0, 0, 0];
        let mut at = 0;
        b.append_binlog_row(&table, &metas, &image, &mut at, RowKind::UpdateBefore, 5).unwrap();
        b.append_binlog_row(&table, &metas, &image, &mut at, RowKind::UpdateAfter, 5).unwrap();
        assert_eq!(at, image.len());
        let values: [&[u8]; 2] = [b"-2", b"ab"];
        b.append_text_row(&table, |i| values.get(i).copied()).unwrap();
        let batch = b.finish().unwrap();
        let text = crate::changelog::format_rows(&batch, "").unwrap();
        assert_eq!(text, "-U[-2, ab, users, -U]\n+U[7, null, users, +U]\n+I[-2, ab, users, +I]\n");
    }

    #[test]
    fn mariadb_inet6_reads_as_text_from_the_binlog_as_in_snapshots() {
        let spec = spec();
        let columns = vec![SourceColumn::for_tests("id", "int"), SourceColumn::for_tests("name", "inet6")];
        let table = CapturedTable::new(
            &super::super::schema::Declared::Table(Arc::new(spec.clone())),
            "db".into(),
            "hosts".into(),
            columns,
            &["id".into()],
            None,
            true,
        )
        .unwrap();
        let mut b = ChangeBuilder::new(spec.schema(), Tz::UTC, 2).unwrap();
        // INET6 is a STRING(16) of the binary charset in the table map; `1::` arrives as 00 01.
        let metas = [ColumnMeta { column_type: t::LONG, meta: 0 }, ColumnMeta { column_type: t::STRING, meta: 0xfe10 }];
        let image = [0u8, 1, 0, 0, 0, 2, 0x00, 0x01];
        let mut at = 0;
        b.append_binlog_row(&table, &metas, &image, &mut at, RowKind::Insert, 5).unwrap();
        let values: [&[u8]; 2] = [b"1", b"1::"];
        b.append_text_row(&table, |i| values.get(i).copied()).unwrap();
        let text = crate::changelog::format_rows(&b.finish().unwrap(), "").unwrap();
        assert_eq!(text, "+I[1, 1::, hosts, +I]\n+I[1, 1::, hosts, +I]\n");
    }

    #[test]
    fn table_map_metadata() {
        assert_eq!(ColumnMeta::from_table_map(t::STRING, &[0xfe, 40]).meta, 0xfe28);
        assert_eq!(ColumnMeta::from_table_map(t::VARCHAR, &[0x2c, 0x01]).meta, 300);
        assert_eq!(ColumnMeta::from_table_map(t::NEWDECIMAL, &[10, 2]).meta, 10 | (2 << 8));
        assert_eq!(ColumnMeta::from_table_map(t::BLOB, &[2]).meta, 2);
    }
}
