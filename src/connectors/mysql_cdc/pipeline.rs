//! The mysql-cdc reader as a pipeline definition's `type: mysql` source (docs/pipeline.md): the
//! tables Flink CDC's `tables` / `tables.exclude` select, each read into its own columns as the
//! server describes them, all through one binlog reader and one parallel chunked snapshot.

use std::sync::Arc;

use super::config::MySqlCdcConfig;
use super::discovered::TypeChoices;
use super::schema::Declared;
use super::{server, MySqlCdcSource, State};
use crate::connectors::selection::TableSelection;
use crate::connectors::{
    refuse_unbuilt_pipeline_source_options, ConnectorOptions, DescribedTable, Source, SourceIdentity, TablesSource,
};
use crate::error::{Error, Result};
use crate::sql::TableSpec;

pub struct MySqlTables {
    config: Arc<MySqlCdcConfig>,
    choices: TypeChoices,
}

impl MySqlTables {
    /// Reads the source's options, consuming each from `o`. No I/O.
    pub fn open(spec: &TableSpec, o: &mut ConnectorOptions) -> Result<Self> {
        let (tables, _) = TableSelection::from_pipeline_options(o, 2, "database.table")?;
        let choices = TypeChoices { tinyint1_as_boolean: o.bool("treat-tinyint1-as-boolean.enabled")?.unwrap_or(true) };
        refuse_unbuilt_pipeline_source_options(o)?;
        o.refused(
            "scan.incremental.snapshot.chunk.key-column",
            "a pipeline source splits each table by its primary key, and tables without one are refused (see \
             docs/pipeline.md)",
        )?;
        let config = MySqlCdcConfig::parse(spec, o, Some(tables))?;
        if !config.incremental {
            return Err(Error::user(
                "'scan.incremental.snapshot.enabled' = 'false' is not offered by a pipeline source: its tables are \
                 read in chunks, each table by its primary key; remove the option",
            ));
        }
        if config.append_only {
            return Err(Error::user(
                "'scan.read-changelog-as-append-only.enabled' is not offered by a pipeline source: the sink's tables \
                 are kept equal to the source's; remove the option",
            ));
        }
        Ok(MySqlTables { config: Arc::new(config), choices })
    }
}

#[async_trait::async_trait]
impl TablesSource for MySqlTables {
    async fn describe(&self) -> Result<Vec<DescribedTable>> {
        let mut conn = server::connect(&self.config).await?;
        let result = async {
            server::check_server(&self.config, &mut conn).await?;
            server::discover_tables(&self.config, &Declared::PerTable(self.choices), &mut conn).await
        }
        .await;
        conn.disconnect().await.ok();
        let tables = result?;
        tables
            .iter()
            .map(|t| {
                let id =
                    t.id.as_deref().ok_or_else(|| Error::internal("a table read into its own columns has no id"))?;
                Ok(DescribedTable { id: id.to_string(), spec: t.spec.clone() })
            })
            .collect()
    }

    fn source(&self, batch_size: usize) -> Box<dyn Source> {
        Box::new(MySqlCdcSource {
            config: self.config.clone(),
            declared: Declared::PerTable(self.choices),
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            batch_size: batch_size.max(1),
            state: State::NotStarted,
            events: 0,
            snapshot_done: None,
        })
    }

    fn identity(&self) -> SourceIdentity {
        self.config.source_identity()
    }
}
