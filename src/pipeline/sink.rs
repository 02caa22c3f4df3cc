//! The sink of a pipeline definition: each source table's changes go to the sink tables its
//! routes name, each sink table written by the sink connector's own writer for that table (a
//! jdbc writer with its own connection and transactions, a print writer), taking part in
//! checkpoints together. A table's changes are in its own columns; tables merged into one sink
//! table were checked to share them when the pipeline was planned.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::changelog::{ChangeBatch, SchemaChange, TableId};
use crate::connectors::{PreparedCommit, Sink};
use crate::error::{Error, Result};

pub struct RoutedSink {
    /// Per source table id, the indices of its sink tables in `sinks`.
    routes: HashMap<String, Vec<usize>>,
    /// Each sink table's name and writer.
    sinks: Vec<(String, Box<dyn Sink>)>,
}

impl RoutedSink {
    pub fn new(routes: HashMap<String, Vec<usize>>, sinks: Vec<(String, Box<dyn Sink>)>) -> Self {
        RoutedSink { routes, sinks }
    }

    /// Each sink table's part of a checkpoint's prepared state (stored as one object by name).
    fn part(prepared: &PreparedCommit, name: &str) -> PreparedCommit {
        PreparedCommit {
            checkpoint_id: prepared.checkpoint_id,
            state: prepared.state.get(name).cloned().unwrap_or(serde_json::Value::Null),
        }
    }
}

#[async_trait]
impl Sink for RoutedSink {
    async fn open(&mut self) -> Result<()> {
        for (name, sink) in &mut self.sinks {
            sink.open().await.map_err(|e| e.context(format!("sink table `{name}`")))?;
        }
        Ok(())
    }

    async fn recover(&mut self, pending: Vec<PreparedCommit>) -> Result<()> {
        for (name, sink) in &mut self.sinks {
            let mine = pending.iter().map(|p| Self::part(p, name)).collect();
            sink.recover(mine).await.map_err(|e| e.context(format!("sink table `{name}`")))?;
        }
        Ok(())
    }

    async fn write(&mut self, table: &TableId, batch: ChangeBatch) -> Result<()> {
        let Some(id) = table.as_deref() else {
            return Err(Error::internal("a pipeline definition's sink was given changes of no table"));
        };
        let Some(targets) = self.routes.get(id) else {
            return Err(Error::user(format!(
                "source table `{id}` was created after the pipeline started, and has no sink table yet. Restart the \
                 pipeline (without --fresh): it resumes from its last checkpoint, creates the sink table and writes \
                 the new table's changes; or leave it out with `tables.exclude`"
            )));
        };
        for index in targets {
            let (name, sink) = &mut self.sinks[*index];
            sink.write(&None, batch.clone()).await.map_err(|e| e.context(format!("sink table `{name}`")))?;
        }
        Ok(())
    }

    /// Pipelines do not follow schema changes yet (`schema.change.behavior: exception`): the
    /// pipeline stops before the first change of the table's new shape is written.
    async fn apply_schema_change(&mut self, _sink: &str, change: &SchemaChange) -> Result<()> {
        let id = change.table.as_deref().unwrap_or("?");
        let targets: Vec<&str> = self.routes.get(id).into_iter().flatten().map(|i| self.sinks[*i].0.as_str()).collect();
        Err(Error::user(format!(
            "the columns of source table `{id}` changed ({}); pipelines do not follow schema changes yet \
             (schema.change.behavior: exception), so the pipeline stopped before writing any change of the new \
             shape. Change sink table `{}` to match and start the pipeline again with --fresh",
            change.describe(),
            targets.join("`, `")
        )))
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        let mut state = serde_json::Map::new();
        for (name, sink) in &mut self.sinks {
            let prepared = sink.prepare(checkpoint_id).await.map_err(|e| e.context(format!("sink table `{name}`")))?;
            if !prepared.state.is_null() {
                state.insert(name.clone(), prepared.state);
            }
        }
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Object(state) })
    }

    async fn commit(&mut self, prepared: PreparedCommit) -> Result<()> {
        for (name, sink) in &mut self.sinks {
            sink.commit(Self::part(&prepared, name)).await.map_err(|e| e.context(format!("sink table `{name}`")))?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let mut closed = Ok(());
        for (name, sink) in &mut self.sinks {
            if let Err(e) = sink.close().await {
                closed = closed.and(Err(e.context(format!("sink table `{name}`"))));
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use datafusion::arrow::array::{Int32Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Records what it is given, by its name.
    struct Recording {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl Sink for Recording {
        async fn write(&mut self, _: &TableId, batch: ChangeBatch) -> Result<()> {
            self.log.lock().unwrap().push(format!("{} got {} rows", self.name, batch.num_rows()));
            Ok(())
        }

        async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
            Ok(PreparedCommit { checkpoint_id, state: serde_json::json!(self.name) })
        }

        async fn commit(&mut self, prepared: PreparedCommit) -> Result<()> {
            self.log.lock().unwrap().push(format!("{} commits {}", self.name, prepared.state));
            Ok(())
        }
    }

    #[tokio::test]
    async fn changes_go_to_every_routed_table_and_commits_find_their_own_state() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = |name| Box::new(Recording { name, log: log.clone() }) as Box<dyn Sink>;
        let routes = HashMap::from([("db.a".to_string(), vec![0, 1]), ("db.b".to_string(), vec![1])]);
        let mut routed = RoutedSink::new(routes, vec![("s.a".into(), sink("a")), ("s.all".into(), sink("all"))]);
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2]))]).unwrap();
        routed.write(&Some("db.a".into()), ChangeBatch::inserts(rows.clone())).await.unwrap();
        routed.write(&Some("db.b".into()), ChangeBatch::inserts(rows.clone())).await.unwrap();
        let prepared = routed.prepare(7).await.unwrap();
        routed.commit(prepared).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["a got 2 rows", "all got 2 rows", "all got 2 rows", "a commits \"a\"", "all commits \"all\""]
        );
        let error = routed.write(&Some("db.new".into()), ChangeBatch::inserts(rows)).await.unwrap_err();
        assert!(error.to_string().contains("`db.new` was created after the pipeline started"), "{error}");
    }
}
