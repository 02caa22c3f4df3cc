//! `print`: writes every change as a line in Flink's format, `+I[1, alice]`, prefixed with
//! `<print-identifier>> ` when one is set, to standard output or (`standard-error` = 'true')
//! standard error. Accepts any changelog.
//! Values are formatted by [`crate::changelog::format_rows`].

use std::io::Write;

use async_trait::async_trait;

use super::{Connector, ConnectorOptions, ConnectorTable, PreparedCommit, Sink};
use crate::changelog::{format_rows, ChangeBatch, ChangelogMode, TableId};
use crate::error::{Error, Result};
use crate::sql::TableSpec;

pub struct Print;

impl Connector for Print {
    fn name(&self) -> &'static str {
        "print"
    }

    fn open_table(&self, _spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        let identifier = options.string("print-identifier");
        let standard_error = options.bool("standard-error")?.unwrap_or(false);
        Ok(Box::new(PrintTable { identifier, standard_error }))
    }
}

struct PrintTable {
    identifier: Option<String>,
    standard_error: bool,
}

impl ConnectorTable for PrintTable {
    fn sink(&self, _input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        let prefix = match &self.identifier {
            Some(id) if !id.is_empty() => format!("{id}> "),
            _ => String::new(),
        };
        Ok(Some(Box::new(PrintSink { prefix, standard_error: self.standard_error })))
    }
}

struct PrintSink {
    prefix: String,
    standard_error: bool,
}

#[async_trait]
impl Sink for PrintSink {
    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        let text = format_rows(&batch, &self.prefix)?;
        let written = if self.standard_error {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        };
        written.map_err(|e| Error::external(format!("print sink cannot write: {e}")))
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
    }
}
