//! The librdkafka clients (through `rdkafka`): their configuration from the table's options, the
//! blocking look-ups a source does before it reads (partitions, watermarks, committed offsets,
//! offsets by time), and how client errors become ours.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::config::{Config, Topics};
use crate::error::{Error, Result};

/// How long a look-up (metadata, watermarks, offsets) may take before the brokers count as
/// unreachable.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The client configuration shared by consumers and producers: servers, then the user's
/// `properties.*` (which win over our defaults, except the ones the connector manages).
pub(crate) fn client_config(config: &Config, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.servers);
    // librdkafka logs through its own logger; keep it quiet, errors reach us as results.
    client.set("log_level", "3");
    for (k, v) in defaults {
        client.set(*k, *v);
    }
    for (k, v) in &config.properties {
        client.set(k, v);
    }
    client
}

/// A client error as ours: what failed and where, classified by who must act.
pub(crate) fn kafka_error(config: &Config, what: &str, e: KafkaError) -> Error {
    if let KafkaError::ClientConfig(_, description, key, _) = &e {
        // The error's own text quotes the value, which may be a password.
        return Error::user(format!(
            "{what}: property '{key}' of table `{}` is not accepted by the Kafka client (librdkafka): {description}",
            config.table
        ));
    }
    let message = format!("{what} (Kafka at {}, table `{}`): {e}", config.servers, config.table);
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::InvalidConfig
            | RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidArgument,
        ) => Error::user(message),
        _ => match e {
            KafkaError::ClientCreation(_) => Error::user(message),
            _ => Error::external(message),
        },
    }
}

/// librdkafka's logs and global errors, into ours with the table's name. The end of a partition
/// (which bounded reads ask to be told of) is no error, and a broker going away is a warning:
/// librdkafka reconnects by itself, and what it cannot recover from reaches us as a result.
pub(crate) fn log_client(table: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(table, "Kafka client: {facility} {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(table, "Kafka client: {facility} {message}"),
        _ => tracing::debug!(table, "Kafka client: {facility} {message}"),
    }
}

pub(crate) fn log_client_error(table: &str, error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        _ if matches!(error, KafkaError::PartitionEOF(_)) => {}
        Some(RDKafkaErrorCode::PartitionEOF) => {}
        // Idle connections closed by the broker: librdkafka reconnects when it needs to.
        Some(RDKafkaErrorCode::BrokerTransportFailure) => tracing::debug!(table, "Kafka client: {error}: {reason}"),
        _ => tracing::warn!(table, "Kafka client: {error}: {reason}"),
    }
}

/// The consumer's context: logs only.
pub(crate) struct Logged {
    table: String,
}

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_client(&self.table, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.table, &error, reason);
    }
}

impl ConsumerContext for Logged {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(table = %self.table, "could not commit offsets to the consumer group (for monitoring only): {e}");
        }
    }
}

pub(crate) type KafkaConsumer = BaseConsumer<Logged>;

/// A consumer that reads partitions it is assigned (no group rebalancing) and commits offsets
/// only when told to.
pub(crate) fn consumer(config: &Config) -> Result<KafkaConsumer> {
    let mut client = client_config(
        config,
        &[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            // An offset the brokers no longer hold (retention) must stop the read, not move it
            // to the partition's end (librdkafka's default) and lose what lay between.
            ("auto.offset.reset", "error"),
            // librdkafka pauses fetching for a second once its queue reaches its thresholds; a
            // source that decodes while the queue refills then idles most of that second. The
            // queue stays bounded by those thresholds all the same.
            ("fetch.queue.backoff.ms", "10"),
        ],
    );
    if let Some(group) = &config.group {
        client.set("group.id", group);
    } else {
        // librdkafka wants a group id even for assigned partitions; nothing is committed.
        client.set("group.id", format!("cdc-sql-{}", config.table));
    }
    client
        .create_with_context(Logged { table: config.table.clone() })
        .map_err(|e| kafka_error(config, "cannot create the Kafka consumer (check the 'properties.*' options)", e))
}

/// The partitions of every topic the table reads, by topic. A named topic that does not exist
/// is an error; a pattern may match none yet.
pub(crate) fn partitions(config: &Config, consumer: &KafkaConsumer) -> Result<BTreeMap<String, Vec<i32>>> {
    let mut found: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    match &config.topics {
        Topics::List(list) => {
            for topic in list {
                let metadata = consumer
                    .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
                    .map_err(|e| kafka_error(config, "cannot reach the Kafka brokers", e))?;
                let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                    return Err(missing_topic(config, topic));
                };
                if let Some(e) = t.error() {
                    let code = RDKafkaErrorCode::from(e);
                    if code == RDKafkaErrorCode::TopicAuthorizationFailed {
                        return Err(Error::user(format!(
                            "the Kafka brokers at {} do not let table `{}` describe topic '{topic}' ({code}); grant \
                             the job's principal DESCRIBE and READ (or WRITE) on it",
                            config.servers, config.table
                        )));
                    }
                    if code != RDKafkaErrorCode::UnknownTopicOrPartition && code != RDKafkaErrorCode::UnknownTopic {
                        return Err(Error::external(format!(
                            "the Kafka brokers at {} answer for topic '{topic}' of table `{}`: {code}",
                            config.servers, config.table
                        )));
                    }
                    return Err(missing_topic(config, topic));
                }
                if t.partitions().is_empty() {
                    return Err(missing_topic(config, topic));
                }
                found.insert(topic.clone(), t.partitions().iter().map(|p| p.id()).collect());
            }
        }
        Topics::Pattern(re) => {
            let metadata = consumer
                .fetch_metadata(None, LOOKUP_TIMEOUT)
                .map_err(|e| kafka_error(config, "cannot reach the Kafka brokers", e))?;
            for t in metadata.topics() {
                // Kafka's own topics (`__consumer_offsets`, …) are never a table's, as in Flink.
                let internal = t.name().starts_with("__");
                if !internal && re.is_match(t.name()) && t.error().is_none() && !t.partitions().is_empty() {
                    found.insert(t.name().to_string(), t.partitions().iter().map(|p| p.id()).collect());
                }
            }
        }
    }
    for partitions in found.values_mut() {
        partitions.sort_unstable();
    }
    Ok(found)
}

fn missing_topic(config: &Config, topic: &str) -> Error {
    Error::user(format!(
        "topic '{topic}' of table `{}` does not exist on the Kafka brokers at {}; create it, or check 'topic'",
        config.table, config.servers
    ))
}

/// (low, high) watermarks: the first offset still held and the offset the next record gets.
pub(crate) fn watermarks(config: &Config, consumer: &KafkaConsumer, topic: &str, partition: i32) -> Result<(i64, i64)> {
    consumer
        .fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)
        .map_err(|e| kafka_error(config, &format!("cannot read the offsets of {topic}[{partition}]"), e))
}

/// The group's committed offset of each partition (`None` where it has none).
pub(crate) fn committed(
    config: &Config,
    consumer: &KafkaConsumer,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, LOOKUP_TIMEOUT)
        .map_err(|e| kafka_error(config, "cannot read the consumer group's committed offsets", e))?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            ((e.topic().to_string(), e.partition()), offset)
        })
        .collect())
}

/// The offset of the first record at or after `millis` in each partition (`None` where there is
/// none yet: the partition's end).
pub(crate) fn offsets_for_time(
    config: &Config,
    consumer: &KafkaConsumer,
    partitions: &[(String, i32)],
    millis: i64,
) -> Result<BTreeMap<(String, i32), Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition_offset(t, *p, Offset::Offset(millis))
            .map_err(|e| kafka_error(config, "cannot look up offsets by time", e))?;
    }
    let found = consumer
        .offsets_for_times(tpl, LOOKUP_TIMEOUT)
        .map_err(|e| kafka_error(config, "cannot look up offsets by time ('scan.*.timestamp-millis')", e))?;
    Ok(found
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            ((e.topic().to_string(), e.partition()), offset)
        })
        .collect())
}
