//! `blackhole`: accepts any changelog and discards it, for benchmarks and for testing a source on
//! its own. It takes no options.

use async_trait::async_trait;

use super::{Connector, ConnectorOptions, ConnectorTable, PreparedCommit, Sink};
use crate::changelog::{ChangeBatch, ChangelogMode, TableId};
use crate::error::Result;
use crate::sql::TableSpec;

pub struct Blackhole;

impl Connector for Blackhole {
    fn name(&self) -> &'static str {
        "blackhole"
    }

    fn open_table(&self, _spec: &TableSpec, _options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        Ok(Box::new(BlackholeTable))
    }
}

struct BlackholeTable;

impl ConnectorTable for BlackholeTable {
    fn sink(&self, _input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        Ok(Some(Box::new(BlackholeSink)))
    }
}

struct BlackholeSink;

#[async_trait]
impl Sink for BlackholeSink {
    async fn write(&mut self, _table: &TableId, _batch: ChangeBatch) -> Result<()> {
        Ok(())
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
    }
}
