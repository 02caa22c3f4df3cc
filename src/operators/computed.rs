//! A table's computed columns (`proc AS PROCTIME()`, `total AS price * qty`), evaluated on every
//! batch its source reads, before any query sees the rows: the query reads the table with its
//! computed columns at their declared places, as Flink's planner shows them. A retraction gets its
//! computed values from its own (old) row; a clock (`PROCTIME()`) reads the time the batch is
//! processed, as in Flink.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::changelog::Event;
use crate::error::{Error, Result};

/// Where one column of the table as queried comes from.
#[derive(Debug, Clone)]
pub enum ColumnSource {
    /// Column `n` of what the source reads.
    Read(usize),
    /// A computed column's expression over what the source reads.
    Computed(Arc<dyn PhysicalExpr>),
}

/// The table as queried: what the source reads, with the computed columns in their places.
#[derive(Debug)]
pub struct ComputedColumns {
    /// The table as queried.
    pub schema: SchemaRef,
    pub columns: Vec<ColumnSource>,
}

impl ComputedColumns {
    /// The rows of the table as queried, from rows as the source reads them.
    pub fn apply(&self, read: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .columns
            .iter()
            .zip(self.schema.fields())
            .map(|(source, field)| -> Result<ArrayRef> {
                match source {
                    ColumnSource::Read(i) => Ok(read.column(*i).clone()),
                    ColumnSource::Computed(e) => e
                        .evaluate(read)
                        .and_then(|v| v.into_array(read.num_rows()))
                        .map_err(|err| Error::from(err).context(format!("computing column `{}`", field.name()))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(read.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }
}

/// Adds a table's computed columns to every batch of changes its source reads.
pub struct ComputeColumns {
    columns: Arc<ComputedColumns>,
}

impl ComputeColumns {
    pub fn new(columns: Arc<ComputedColumns>) -> Self {
        ComputeColumns { columns }
    }
}

impl Operator for ComputeColumns {
    fn name(&self) -> &str {
        "computed-columns"
    }

    fn keeps_state(&self) -> bool {
        false
    }

    fn process(&mut self, _: usize, event: Event, out: &mut Vec<Event>) -> Result<()> {
        match event {
            Event::Changes { table, changes } => {
                let rows = self.columns.apply(changes.rows())?;
                out.push(Event::Changes { table, changes: changes.with_rows(rows)? });
            }
            other => out.push(other),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::logical_expr::Operator as BinaryOperator;
    use datafusion::physical_expr::expressions::{col, BinaryExpr};

    use super::*;
    use crate::changelog::ChangeBatch;

    #[test]
    fn computed_columns_take_their_declared_places_and_retractions_compute_from_the_old_row() {
        let read = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let a = col("a", &read).unwrap();
        let doubled = Arc::new(BinaryExpr::new(a.clone(), BinaryOperator::Plus, a));
        let queried = Arc::new(Schema::new(vec![
            Field::new("twice", DataType::Int64, false),
            Field::new("a", DataType::Int64, false),
        ]));
        let columns = Arc::new(ComputedColumns {
            schema: queried,
            columns: vec![ColumnSource::Computed(doubled), ColumnSource::Read(0)],
        });
        let rows = RecordBatch::try_new(read, vec![Arc::new(Int64Array::from(vec![1, 5]))]).unwrap();
        let kinds = datafusion::arrow::array::Int8Array::from(vec![
            crate::changelog::RowKind::Insert as i8,
            crate::changelog::RowKind::Delete as i8,
        ]);
        let mut out = Vec::new();
        ComputeColumns::new(columns)
            .process(0, Event::changes(ChangeBatch::new(rows, kinds).unwrap()), &mut out)
            .unwrap();
        let Event::Changes { changes, .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!(changes.rows().column(0).as_primitive::<Int64Type>().values(), &[2, 10]);
        assert_eq!(changes.rows().column(1).as_primitive::<Int64Type>().values(), &[1, 5]);
        assert_eq!(changes.kind(1), crate::changelog::RowKind::Delete);
    }
}
