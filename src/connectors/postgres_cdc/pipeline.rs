//! The postgres-cdc reader as a pipeline definition's `type: postgres` source (docs/pipeline.md):
//! the tables Flink CDC's `tables` / `tables.exclude` select (`database.schema.table`, in the one
//! database every pattern names), each read into its own columns as the catalog describes them,
//! all through one replication slot and one publication, snapshotted in parallel chunks.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use async_trait::async_trait;

use super::checks;
use super::discovered;
use super::stream::PostgresCdcSource;
use super::{Config, PipelineTables};
use crate::connectors::selection::TableSelection;
use crate::connectors::{
    refuse_unbuilt_pipeline_source_options, ConnectorOptions, DescribedTable, ReplicationSlot, Source, SourceIdentity,
    TablesSource,
};
use crate::error::Result;
use crate::sql::TableSpec;

const SHAPE: &str = "database.schema.table";

pub struct PostgresTables {
    config: Arc<Config>,
    /// Whether a run of this process created or streamed from the slot (as the SQL table keeps).
    left_behind: Arc<AtomicBool>,
}

impl PostgresTables {
    /// Reads the source's options, consuming each from `o`; `readers` is the pipeline's
    /// `parallelism`. No I/O.
    pub fn open(spec: &TableSpec, o: &mut ConnectorOptions, readers: Option<usize>) -> Result<Self> {
        let (tables, tables_text) = TableSelection::from_pipeline_options(o, 3, SHAPE)?;
        let database = tables.literal_level(0).ok_or_else(|| {
            o.invalid(
                "tables",
                &tables_text,
                &format!(
                    "comma-separated {SHAPE} patterns: each pattern's first part is the database to connect to, \
                     spelled out and the same in every pattern (one replication slot reads one database), e.g. \
                     app_db.public.\\.*"
                ),
            )
        })?;
        o.refused(
            "changelog-mode",
            "a pipeline source passes every change as it is (an update as its old and new row), which the sink \
             applies by key",
        )?;
        o.refused_unless(
            "truncate.mode",
            &["fail"],
            "a TRUNCATE of a captured table stops the pipeline, as a schema change does: the sink table would \
             otherwise keep rows the source no longer has",
        )?;
        o.refused_unless(
            "scan.read-changelog-as-append-only.enabled",
            &["false"],
            "the sink's tables are kept equal to the source's",
        )?;
        refuse_unbuilt_pipeline_source_options(o)?;
        o.refused_prefix("jdbc.properties.", "connection properties are not passed on; TLS is not offered yet")?;
        let config = Config::parse(spec, o, Some(PipelineTables { tables, database, readers }))?;
        Ok(PostgresTables { config: Arc::new(config), left_behind: Arc::new(AtomicBool::new(false)) })
    }
}

#[async_trait]
impl TablesSource for PostgresTables {
    async fn describe(&self) -> Result<Vec<DescribedTable>> {
        let client = checks::connect(&self.config).await?;
        checks::check_server(&self.config, &client).await?;
        let tables = checks::captured_tables(&self.config, &client).await?;
        tables
            .iter()
            .map(|t| {
                let spec = discovered::table_spec(&t.schema, &t.name, t.identity, &t.columns)?;
                Ok(DescribedTable { id: t.shown(), spec: Arc::new(spec) })
            })
            .collect()
    }

    fn source(&self, batch_size: usize) -> Box<dyn Source> {
        Box::new(PostgresCdcSource::new(self.config.clone(), batch_size.max(1), self.left_behind.clone()))
    }

    fn identity(&self) -> SourceIdentity {
        self.config.source_identity()
    }

    fn replication_slot(&self) -> Option<ReplicationSlot> {
        self.config.replication_slot()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::connectors::postgres_cdc::Columns;
    use crate::sql::TableOption;

    fn open(extra: &[(&str, &str)], readers: Option<usize>) -> Result<PostgresTables> {
        let mut options = vec![
            ("connector", "postgres-cdc"),
            ("hostname", "h"),
            ("username", "u"),
            ("password", "secret-pw"),
            ("tables", "shop.public.\\.*, shop.sales.orders_[0-9]+"),
            ("slot.name", "pipe"),
        ];
        for (k, v) in extra {
            options.retain(|(key, _)| key != k);
            options.push((k, v));
        }
        let spec = TableSpec {
            name: "source".into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            options: options
                .into_iter()
                .map(|(k, v)| TableOption { key: k.into(), value: v.into(), written: v.into() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        };
        let mut o = ConnectorOptions::new(&spec)?;
        let tables = PostgresTables::open(&spec, &mut o, readers)?;
        o.finish()?;
        Ok(tables)
    }

    #[test]
    fn flink_cdc_pipeline_options_are_read() {
        let tables = open(
            &[
                ("tables.exclude", "shop.public.tmp_\\.*"),
                ("heartbeat.interval", "2s"),
                ("scan.incremental.snapshot.chunk.size", "100"),
                ("decoding.plugin.name", "pgoutput"),
                ("debezium.publication.name", "pipe_pub"),
            ],
            Some(3),
        )
        .unwrap();
        let c = &tables.config;
        assert_eq!((c.database.as_str(), c.heartbeat, c.chunk_size), ("shop", Duration::from_secs(2), 100));
        assert_eq!((c.snapshot_readers, c.publication.as_str()), (3, "pipe_pub"));
        assert!(matches!(c.columns, Columns::PerTable));
        assert!(c.tables.matches(&["shop", "public", "orders"]) && c.tables.matches(&["shop", "sales", "orders_7"]));
        assert!(!c.tables.matches(&["shop", "public", "tmp_1"]) && !c.tables.matches(&["shop", "sales", "x"]));
        let identity = tables.identity();
        assert_eq!(identity.tables, "shop.public.\\.*, shop.sales.orders_[0-9]+ excluding shop.public.tmp_\\.*");
        assert_eq!(identity.startup_mode, "initial slot=pipe");
        assert_eq!(tables.replication_slot().map(|s| s.name), Some("pipe".to_string()));
    }

    #[test]
    fn options_a_pipeline_source_does_not_offer_are_refused_by_name() {
        let error = |extra: &[(&str, &str)]| open(extra, None).err().map(|e| e.to_string()).unwrap_or_default();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("tables", "shop_[0-9].public.t")], "spelled out"),
            (&[("tables", "shop.public.a, other.public.b")], "the same in every pattern"),
            (&[("tables", "shop.t")], "database.schema.table"),
            (&[("changelog-mode", "upsert")], "'changelog-mode'"),
            (&[("truncate.mode", "delete")], "stops the pipeline"),
            (&[("scan.read-changelog-as-append-only.enabled", "true")], "kept equal"),
            (&[("schema-change.enabled", "false")], "'schema-change.enabled'"),
            (&[("metadata.list", "op_ts")], "no metadata columns"),
            (&[("jdbc.properties.ssl", "true")], "'jdbc.properties.ssl'"),
            (&[("decoding.plugin.name", "wal2json")], "'pgoutput'"),
            (&[("debezium.snapshot.mode", "never")], "'debezium.snapshot.mode'"),
            (&[("heartbeat.interval.ms", "1s")], "did you mean 'heartbeat.interval'?"),
            (&[("database-name", "shop")], "'database-name'"),
        ];
        for (extra, says) in cases {
            let text = error(extra);
            assert!(text.contains(says) && !text.contains("secret-pw"), "{extra:?}: {text}");
        }
        assert!(open(&[("truncate.mode", "fail"), ("schema-change.enabled", "true")], None).is_ok());
    }
}
