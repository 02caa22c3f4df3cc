//! `kafka` and `upsert-kafka`: read and write Kafka topics with Flink's option names, through the
//! message formats of [`crate::formats`] (`json`, `debezium-json`, `canal-json`, `raw`).
//!
//! Protocol: the Kafka protocol through librdkafka (`rdkafka`, built from its bundled sources).
//! The source assigns itself every partition of its topics (no consumer-group rebalancing, as
//! Flink's source does) at concrete offsets resolved at start, so a checkpoint's position — the
//! next offset of every partition — resumes each partition exactly. Offsets are committed to
//! `properties.group.id` only after a checkpoint (for monitoring tools and `group-offsets`
//! starts). New partitions (and topics of a `topic-pattern`) are found every
//! `scan.topic-partition-discovery.interval` and read from their beginning. `scan.bounded.mode`
//! ends the read at offsets resolved at start.
//!
//! Sinks hand records to librdkafka's producer; a checkpoint waits for the brokers to acknowledge
//! every record handed over (`at-least-once`, the default, with the idempotent producer so a
//! key's records keep their order), so a restart repeats at most what followed the last
//! checkpoint. `upsert-kafka` converges on the latest row per key all the same.
//!
//! Limits: `sink.delivery-guarantee` = `exactly-once` (Kafka transactions) is refused, not
//! offered; TLS/SASL-SSL are not built into this binary's librdkafka (plaintext and SASL PLAIN
//! over plaintext only); a sink writes one topic (no writable `topic` column); custom
//! partitioner classes are Java and refused; `sink.buffer-flush.interval` is checked when rows
//! arrive and at checkpoints, not on an idle stream.

mod batch;
mod client;
mod config;
mod metadata;
mod position;
mod sink;
mod source;

use std::sync::Arc;

use super::{Connector, ConnectorOptions, ConnectorTable, Sink, Source, SourceContext, SourceIdentity};
use crate::changelog::{ChangelogMode, Retractions};
use crate::error::{Error, Result};
use crate::formats::FormatKind;
use crate::sql::TableSpec;
use config::{Config, Flavor};

pub struct Kafka;
pub struct UpsertKafka;

impl Connector for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn metadata_keys(&self) -> &'static [&'static str] {
        metadata::KEYS
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        KafkaTable::open(spec, options, Flavor::Kafka)
    }
}

impl Connector for UpsertKafka {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }

    fn metadata_keys(&self) -> &'static [&'static str] {
        metadata::UPSERT_KEYS
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        KafkaTable::open(spec, options, Flavor::Upsert)
    }
}

struct KafkaTable {
    config: Arc<Config>,
    /// Declared columns an INSERT writes (all but VIRTUAL metadata columns).
    persisted: Vec<usize>,
}

impl KafkaTable {
    fn open(spec: &TableSpec, options: &mut ConnectorOptions, flavor: Flavor) -> Result<Box<dyn ConnectorTable>> {
        let config = Config::parse(spec, options, flavor)?;
        let persisted = spec
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.metadata.as_ref().is_some_and(|m| m.is_virtual))
            .map(|(i, _)| i)
            .collect();
        Ok(Box::new(KafkaTable { config: Arc::new(config), persisted }))
    }
}

impl ConnectorTable for KafkaTable {
    fn source(&self, ctx: &SourceContext) -> Result<Option<Box<dyn Source>>> {
        self.config.check_readable()?;
        Ok(Some(Box::new(source::KafkaSource::new(self.config.clone(), ctx.batch_size))))
    }

    fn source_changelog_mode(&self) -> ChangelogMode {
        self.config.changelog_mode()
    }

    fn source_retractions(&self) -> Retractions {
        match self.config.flavor {
            // A tombstone carries the key only.
            Flavor::Upsert => Retractions::MaybeKeyOnly,
            // Debezium's PostgreSQL connector sends only the key in `before` unless the table has
            // REPLICA IDENTITY FULL; the format says what its retractions may hold.
            Flavor::Kafka => self.config.value_format.source_retractions(),
        }
    }

    fn sink(&self, input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        let config = &self.config;
        if let Some(problem) = &config.write_problem {
            return Err(Error::user(problem.clone()));
        }
        if config.flavor == Flavor::Kafka
            && !input.is_insert_only()
            && matches!(config.value_kind(), FormatKind::Json | FormatKind::Raw)
        {
            return Err(Error::user(format!(
                "sink table `{}` (connector 'kafka', format '{}') is append-only, but the query updates or deletes rows. \
                 Write a changelog format ('debezium-json' or 'canal-json'), or use connector 'upsert-kafka' with a \
                 PRIMARY KEY",
                config.table,
                config.value_format.name()
            )));
        }
        Ok(Some(Box::new(sink::KafkaSink::new(config.clone(), &self.persisted)?)))
    }

    fn source_identity(&self) -> Option<SourceIdentity> {
        Some(SourceIdentity {
            connector: match self.config.flavor {
                Flavor::Kafka => "kafka",
                Flavor::Upsert => "upsert-kafka",
            }
            .into(),
            location: self.config.servers.clone(),
            tables: self.config.topics_text.clone(),
            startup_mode: self.config.start_text.clone(),
        })
    }
}
