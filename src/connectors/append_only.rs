//! Flink CDC's `scan.read-changelog-as-append-only.enabled`: every change a CDC source reads
//! arrives as an insert (`+I`), updates' old and new rows and deletes alike, so that a job can keep
//! deleted rows downstream (soft deletes). The change's own kind stays readable in the `row_kind`
//! metadata column, which the source fills before the kinds are rewritten here.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;

use super::{Position, ResumeFrom, Source, SourceBatch, SourceProgress};
use crate::changelog::{ChangeBatch, Event};
use crate::error::Result;

/// Wraps a source so that every row it delivers is `+I`; truncations and schema changes pass.
pub(crate) struct AppendOnly(pub Box<dyn Source>);

#[async_trait]
impl Source for AppendOnly {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn is_bounded(&self) -> bool {
        self.0.is_bounded()
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        self.0.start(resume_from).await
    }

    fn captured_row_key(&self) -> Option<Vec<usize>> {
        self.0.captured_row_key()
    }

    fn start_position(&self) -> Option<Position> {
        self.0.start_position()
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        let Some(mut batch) = self.0.next_batch().await? else { return Ok(None) };
        for event in &mut batch.events {
            if let Event::Changes { changes, .. } = event {
                *changes = ChangeBatch::inserts(changes.rows().clone());
            }
        }
        Ok(Some(batch))
    }

    async fn acknowledge(&mut self, position: &Position) -> Result<()> {
        self.0.acknowledge(position).await
    }

    async fn close(&mut self) -> Result<()> {
        self.0.close().await
    }

    async fn release(&mut self) -> Result<()> {
        self.0.release().await
    }

    fn progress(&self) -> Option<SourceProgress> {
        self.0.progress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::RowKind;
    use datafusion::arrow::array::{Int32Array, Int8Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    struct Changes(Option<ChangeBatch>);

    #[async_trait]
    impl Source for Changes {
        fn schema(&self) -> SchemaRef {
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]))
        }
        fn is_bounded(&self) -> bool {
            true
        }
        async fn start(&mut self, _: Option<ResumeFrom>) -> Result<()> {
            Ok(())
        }
        async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
            Ok(self.0.take().map(|c| SourceBatch::new(c, Position::default())))
        }
    }

    #[tokio::test]
    async fn every_kind_becomes_an_insert_with_the_rows_unchanged() {
        let schema = Changes(None).schema();
        let rows = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3, 4]))]).unwrap();
        let kinds = [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete];
        let changes = ChangeBatch::new(rows.clone(), Int8Array::from_iter_values(kinds.map(|k| k.code()))).unwrap();
        let mut source = AppendOnly(Box::new(Changes(Some(changes))));
        let batch = source.next_batch().await.unwrap().unwrap().changes().unwrap();
        assert_eq!(batch.rows(), &rows);
        assert!(batch.kinds().values().iter().all(|k| *k == RowKind::Insert.code()));
        assert!(source.next_batch().await.unwrap().is_none());
    }
}
