//! The options of a `kafka` / `upsert-kafka` table, read and checked before anything connects:
//! topics, client properties, startup and bounded modes, formats, which columns come from the
//! record's key, its value or its metadata, and the sink's delivery guarantee.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use regex::Regex;

use super::metadata::Meta;
use crate::changelog::ChangelogMode;
use crate::connectors::ConnectorOptions;
use crate::error::{Error, Result};
use crate::formats::{Format, FormatKind};
use crate::sql::types::flink_type_name;
use crate::sql::TableSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `kafka`: every record is what its format says (an insert, or a Debezium/Canal change).
    Kafka,
    /// `upsert-kafka`: the record key is the PRIMARY KEY; a value is the latest row of its key,
    /// a null value (tombstone) deletes the key.
    Upsert,
}

#[derive(Debug, Clone)]
pub(crate) enum Topics {
    List(Vec<String>),
    /// `topic-pattern`, anchored; matched against the cluster's topics at start and on discovery.
    Pattern(Regex),
}

/// Where a partition starts when the job starts fresh (`scan.startup.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartAt {
    Earliest,
    Latest,
    /// The consumer group's committed offset; without one, `properties.auto.offset.reset` decides
    /// (Flink's default, `none`, is an error).
    GroupOffsets,
    Timestamp(i64),
    /// Per partition of the (single) topic; unlisted partitions start from the group's committed
    /// offset, else the earliest.
    Specific(BTreeMap<i32, i64>),
}

/// Where a bounded read ends (`scan.bounded.mode`), per partition: the offset it stops before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopAt {
    Unbounded,
    Latest,
    GroupOffsets,
    Timestamp(i64),
    Specific(BTreeMap<i32, i64>),
}

/// What `properties.auto.offset.reset` says to do for a group without a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetReset {
    Earliest,
    Latest,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    None,
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Partitioner {
    /// Kafka's default: murmur2 of the key (as the Java client), spread when there is none.
    Default,
    /// Flink's `fixed`: each sink task writes one partition; cdc-sql runs one task: partition 0.
    Fixed,
    RoundRobin,
}

/// Where one declared column's values come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnFrom {
    /// The n-th field the key format decodes.
    Key(usize),
    /// The n-th field the value format decodes.
    Value(usize),
    Meta(Meta),
}

/// The table's options, validated. Not `Debug`: `properties` may hold credentials.
pub(crate) struct Config {
    pub table: String,
    pub flavor: Flavor,
    pub servers: String,
    pub group: Option<String>,
    /// Client properties for librdkafka (`properties.*` without the prefix, translated).
    pub properties: Vec<(String, String)>,
    pub offset_reset: OffsetReset,
    pub commit_on_checkpoint: bool,
    pub topics: Topics,
    /// As written, for the source's identity and messages.
    pub topics_text: String,
    pub start: StartAt,
    pub start_text: String,
    pub stop: StopAt,
    pub discovery: Option<Duration>,
    pub key_format: Option<Format>,
    pub value_format: Format,
    /// Declared columns, in order, and where each comes from.
    pub schema: SchemaRef,
    pub columns: Vec<ColumnFrom>,
    /// What the key format decodes/encodes: the key fields, named without `key.fields-prefix`.
    pub key_schema: SchemaRef,
    /// Declared column of each key field.
    pub key_columns: Vec<usize>,
    /// What the value format decodes/encodes.
    pub value_schema: SchemaRef,
    pub value_columns: Vec<usize>,
    /// The value format's metadata keys the table reads (without `value.`), in decoder order.
    pub format_metadata: Vec<String>,
    pub delivery: Delivery,
    pub partitioner: Partitioner,
    pub buffer_max_rows: usize,
    pub buffer_interval: Option<Duration>,
    /// Why the table cannot be written (a read-only metadata column that is not VIRTUAL), for
    /// when a query writes it: a table only read may declare such columns.
    pub write_problem: Option<String>,
}

/// Java client properties with no librdkafka equivalent that Flink jobs commonly carry.
const JAVA_ONLY_PROPERTIES: &[(&str, &str)] = &[
    ("key.deserializer", "records are decoded by the table's key.format"),
    ("value.deserializer", "records are decoded by the table's value.format"),
    ("key.serializer", "records are encoded by the table's key.format"),
    ("value.serializer", "records are encoded by the table's value.format"),
    ("partition.discovery.interval.ms", "use 'scan.topic-partition-discovery.interval'"),
    ("client.dns.lookup", "librdkafka resolves every address of a host name itself"),
    ("flink.partition-discovery.interval-millis", "use 'scan.topic-partition-discovery.interval'"),
];

/// Properties the connector sets itself.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("enable.auto.commit", "offsets are committed after each checkpoint ('properties.commit.offsets.on.checkpoint')"),
    ("enable.auto.offset.store", "offsets are committed after each checkpoint"),
    ("transactional.id", "exactly-once delivery is not offered by this sink yet"),
    ("enable.idempotence", "set by 'sink.delivery-guarantee'"),
];

fn split_list(text: &str) -> Vec<String> {
    text.split(';').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// `partition:0,offset:42;partition:1,offset:300`.
fn parse_specific(o: &ConnectorOptions, key: &str, text: &str) -> Result<BTreeMap<i32, i64>> {
    let expected = "'partition:0,offset:42;partition:1,offset:300'";
    let mut offsets = BTreeMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            let (k, v) = kv.split_once(':').ok_or_else(|| o.invalid(key, text, expected))?;
            match k.trim() {
                "partition" => partition = v.trim().parse::<i32>().ok().filter(|p| *p >= 0),
                "offset" => offset = v.trim().parse::<i64>().ok().filter(|o| *o >= 0),
                _ => return Err(o.invalid(key, text, expected)),
            }
        }
        match (partition, offset) {
            (Some(p), Some(off)) => {
                offsets.insert(p, off);
            }
            _ => return Err(o.invalid(key, text, expected)),
        }
    }
    if offsets.is_empty() {
        return Err(o.invalid(key, text, expected));
    }
    Ok(offsets)
}

/// Java's `sasl.jaas.config` for PLAIN and SCRAM (`… required username="u" password="p";`) as
/// librdkafka's `sasl.username` / `sasl.password`.
fn translate_jaas(o: &ConnectorOptions, value: &str) -> Result<Vec<(String, String)>> {
    let field = |name: &str| -> Option<String> {
        let at = value.find(&format!("{name}="))? + name.len() + 1;
        let rest = value[at..].trim_start();
        let quoted = rest.strip_prefix('"')?;
        Some(quoted[..quoted.find('"')?].to_string())
    };
    let known = ["PlainLoginModule", "ScramLoginModule"].iter().any(|m| value.contains(m));
    match (known, field("username"), field("password")) {
        (true, Some(user), Some(password)) => {
            Ok(vec![("sasl.username".into(), user), ("sasl.password".into(), password)])
        }
        _ => Err(o.invalid(
            "properties.sasl.jaas.config",
            value,
            "a PlainLoginModule or ScramLoginModule entry with username=\"…\" password=\"…\" (other login modules: set \
             librdkafka's properties, e.g. 'properties.sasl.oauthbearer.config')",
        )),
    }
}

/// Checks every pass-through property against librdkafka before anything connects; an error
/// names the key, never the value (it may be a password).
fn validate_properties(spec: &TableSpec, properties: &[(String, String)]) -> Result<()> {
    for (key, value) in properties {
        let mut one = rdkafka::config::ClientConfig::new();
        one.set(key, value);
        if let Err(e) = one.create_native_config() {
            let why = match &e {
                rdkafka::error::KafkaError::ClientConfig(_, description, _, _) => description.clone(),
                _ => "not accepted".to_string(),
            };
            return Err(Error::user(format!(
                "'properties.{key}' of table `{}` is not a setting the Kafka client (librdkafka) accepts: {why}. Most \
                 Java client settings have the same name there; see docs/connectors/kafka.md",
                spec.name
            )));
        }
    }
    Ok(())
}

impl Config {
    pub fn parse(spec: &TableSpec, o: &mut ConnectorOptions, flavor: Flavor) -> Result<Config> {
        let connector = o.connector().to_string();
        let servers = o.required("properties.bootstrap.servers")?;
        let group = o.string("properties.group.id");
        let offset_reset = match o.choice(
            "properties.auto.offset.reset",
            &["earliest", "smallest", "beginning", "latest", "largest", "end", "none", "error"],
        )? {
            Some("earliest" | "smallest" | "beginning") => OffsetReset::Earliest,
            Some("latest" | "largest" | "end") => OffsetReset::Latest,
            _ => OffsetReset::Fail,
        };
        let commit_on_checkpoint = o.bool("properties.commit.offsets.on.checkpoint")?.unwrap_or(true);
        let mut properties = Vec::new();
        for (key, value) in o.prefixed("properties.") {
            if let Some((_, why)) = JAVA_ONLY_PROPERTIES.iter().find(|(k, _)| *k == key) {
                tracing::warn!("'properties.{key}' of table `{}` has no effect in cdc-sql: {why}", spec.name);
            } else if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == key) {
                return Err(o.invalid(&format!("properties.{key}"), &value, &format!("no value: {why}")));
            } else if key == "sasl.jaas.config" {
                properties.extend(translate_jaas(o, &value)?);
            } else if key.starts_with("ssl.")
                || (key == "security.protocol" && value.to_ascii_lowercase().contains("ssl"))
            {
                return Err(Error::user(format!(
                    "'properties.{key}' of table `{}` asks for TLS, which this build's Kafka client (librdkafka \
                     without OpenSSL) does not offer; use a PLAINTEXT or SASL_PLAINTEXT listener",
                    spec.name
                )));
            } else {
                properties.push((key, value));
            }
        }
        validate_properties(spec, &properties)?;

        let topic = o.string("topic");
        let pattern = o.string("topic-pattern");
        let (topics, topics_text) = match (topic, pattern) {
            (Some(_), Some(_)) => {
                return Err(Error::user(format!(
                    "table `{}` sets both 'topic' and 'topic-pattern'; keep one",
                    spec.name
                )))
            }
            (Some(t), None) => {
                let list = split_list(&t);
                if list.is_empty() {
                    return Err(o.invalid("topic", &t, "a topic name, or several separated by ';'"));
                }
                (Topics::List(list), t)
            }
            (None, Some(p)) => {
                let re = Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| o.invalid("topic-pattern", &p, &format!("a regular expression ({e})")))?;
                (Topics::Pattern(re), format!("pattern {p}"))
            }
            (None, None) => {
                return Err(Error::user(format!(
                    "table `{}` (connector '{connector}') needs option 'topic' (or 'topic-pattern' for a source)",
                    spec.name
                )))
            }
        };
        if flavor == Flavor::Upsert && !matches!(&topics, Topics::List(l) if l.len() == 1) {
            return Err(Error::user(format!(
                "table `{}`: connector 'upsert-kafka' reads and writes one topic; set 'topic' to one name",
                spec.name
            )));
        }

        // Startup and bounded modes (sources).
        let mode = o.choice(
            "scan.startup.mode",
            &["earliest-offset", "latest-offset", "group-offsets", "timestamp", "specific-offsets"],
        )?;
        let start_offsets = o.string("scan.startup.specific-offsets");
        let start_millis = o.parse::<i64>("scan.startup.timestamp-millis", "milliseconds since 1970-01-01 UTC")?;
        let default_mode = if flavor == Flavor::Upsert { "earliest-offset" } else { "group-offsets" };
        let start = match mode.unwrap_or(default_mode) {
            "earliest-offset" => StartAt::Earliest,
            "latest-offset" => StartAt::Latest,
            "group-offsets" => StartAt::GroupOffsets,
            "timestamp" => StartAt::Timestamp(start_millis.ok_or_else(|| {
                Error::user(format!(
                    "table `{}`: 'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'",
                    spec.name
                ))
            })?),
            _ => {
                let text = start_offsets.clone().ok_or_else(|| {
                    Error::user(format!(
                        "table `{}`: 'scan.startup.mode' = 'specific-offsets' needs 'scan.startup.specific-offsets', \
                         e.g. 'partition:0,offset:42;partition:1,offset:300'",
                        spec.name
                    ))
                })?;
                StartAt::Specific(parse_specific(o, "scan.startup.specific-offsets", &text)?)
            }
        };
        let start_text = match &start {
            StartAt::Earliest => "earliest-offset".to_string(),
            StartAt::Latest => "latest-offset".to_string(),
            StartAt::GroupOffsets => format!("group-offsets group={}", group.as_deref().unwrap_or("")),
            StartAt::Timestamp(ms) => format!("timestamp {ms}"),
            StartAt::Specific(_) => format!("specific-offsets {}", start_offsets.as_deref().unwrap_or("")),
        };
        if matches!(start, StartAt::Specific(_)) && !matches!(&topics, Topics::List(l) if l.len() == 1) {
            return Err(Error::user(format!(
                "table `{}`: 'scan.startup.specific-offsets' names partitions of one topic; set 'topic' to one name",
                spec.name
            )));
        }
        let bounded = o.choice(
            "scan.bounded.mode",
            &["unbounded", "latest-offset", "group-offsets", "timestamp", "specific-offsets"],
        )?;
        let stop_offsets = o.string("scan.bounded.specific-offsets");
        let stop_millis = o.parse::<i64>("scan.bounded.timestamp-millis", "milliseconds since 1970-01-01 UTC")?;
        let stop = match bounded.unwrap_or("unbounded") {
            "unbounded" => StopAt::Unbounded,
            "latest-offset" => StopAt::Latest,
            "group-offsets" => StopAt::GroupOffsets,
            "timestamp" => StopAt::Timestamp(stop_millis.ok_or_else(|| {
                Error::user(format!(
                    "table `{}`: 'scan.bounded.mode' = 'timestamp' needs 'scan.bounded.timestamp-millis'",
                    spec.name
                ))
            })?),
            _ => {
                let text = stop_offsets.ok_or_else(|| {
                    Error::user(format!(
                        "table `{}`: 'scan.bounded.mode' = 'specific-offsets' needs 'scan.bounded.specific-offsets'",
                        spec.name
                    ))
                })?;
                StopAt::Specific(parse_specific(o, "scan.bounded.specific-offsets", &text)?)
            }
        };
        if matches!(stop, StopAt::Specific(_)) && !matches!(&topics, Topics::List(l) if l.len() == 1) {
            return Err(Error::user(format!(
                "table `{}`: 'scan.bounded.specific-offsets' names partitions of one topic; set 'topic' to one name",
                spec.name
            )));
        }
        // Flink's default since 1.x: discover new partitions every 5 minutes; '0' turns it off.
        let discovery = match o.duration("scan.topic-partition-discovery.interval")? {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => Some(Duration::from_secs(300)),
        };
        for key in ["scan.parallelism", "sink.parallelism"] {
            o.no_effect(key, "a pipeline runs as one task");
        }

        // Formats.
        let format = Format::from_options(o, "format", "")?;
        let value_format = Format::from_options(o, "value.format", "value.")?;
        let key_format = Format::from_options(o, "key.format", "key.")?;
        let value_format = match (format, value_format) {
            (Some(_), Some(_)) => {
                return Err(Error::user(format!(
                    "table `{}` sets both 'format' and 'value.format'; keep one",
                    spec.name
                )))
            }
            (Some(f), None) | (None, Some(f)) => f,
            (None, None) => {
                return Err(Error::user(format!(
                    "table `{}` (connector '{connector}') needs 'value.format' (or 'format'), e.g. 'json' or 'debezium-json'",
                    spec.name
                )))
            }
        };
        if flavor == Flavor::Upsert && value_format.changelog_mode() != ChangelogMode::InsertOnly {
            return Err(Error::user(format!(
                "table `{}`: connector 'upsert-kafka' keeps one row per key in each value; '{}' values are changelogs \
                 of their own — read them with connector 'kafka'",
                spec.name,
                value_format.name()
            )));
        }
        if let Some(k) = &key_format {
            if k.changelog_mode() != ChangelogMode::InsertOnly {
                return Err(o.invalid("key.format", k.name(), "a format of plain rows, such as 'json' or 'raw'"));
            }
        }
        let fields_include = o.choice("value.fields-include", &["ALL", "EXCEPT_KEY"])?.unwrap_or("ALL");
        let key_prefix = o.string("key.fields-prefix").unwrap_or_default();
        let key_fields_text = o.string("key.fields");

        let name_index = |name: &str| spec.columns.iter().position(|c| c.name == name);
        let primary_key: Vec<usize> = spec
            .primary_key
            .iter()
            .map(|k| name_index(k).ok_or_else(|| Error::internal(format!("primary key column `{k}` is not declared"))))
            .collect::<Result<_>>()?;
        let key_columns: Vec<usize> = match flavor {
            Flavor::Upsert => {
                if key_fields_text.is_some() {
                    return Err(Error::user(format!(
                        "table `{}`: connector 'upsert-kafka' takes its key fields from the PRIMARY KEY; remove 'key.fields'",
                        spec.name
                    )));
                }
                if primary_key.is_empty() {
                    return Err(Error::user(format!(
                        "table `{}`: connector 'upsert-kafka' needs a PRIMARY KEY (…) NOT ENFORCED: it is the record key",
                        spec.name
                    )));
                }
                if key_format.is_none() {
                    return Err(Error::user(format!(
                        "table `{}`: connector 'upsert-kafka' needs 'key.format' (e.g. 'json') for its record keys",
                        spec.name
                    )));
                }
                primary_key.clone()
            }
            Flavor::Kafka => match &key_fields_text {
                None => {
                    if key_format.is_some() {
                        return Err(Error::user(format!(
                            "table `{}` sets 'key.format' but no 'key.fields'; name the columns the record key holds",
                            spec.name
                        )));
                    }
                    Vec::new()
                }
                Some(text) => {
                    if key_format.is_none() {
                        return Err(Error::user(format!(
                            "table `{}` sets 'key.fields' but no 'key.format'; add 'key.format' = 'json' (or 'raw')",
                            spec.name
                        )));
                    }
                    split_list(text)
                        .iter()
                        .map(|name| {
                            name_index(name).filter(|&i| spec.columns[i].metadata.is_none()).ok_or_else(|| {
                                o.invalid("key.fields", text, "names of declared physical columns, separated by ';'")
                            })
                        })
                        .collect::<Result<_>>()?
                }
            },
        };
        if !key_prefix.is_empty() && fields_include != "EXCEPT_KEY" {
            return Err(Error::user(format!(
                "table `{}`: 'key.fields-prefix' needs 'value.fields-include' = 'EXCEPT_KEY' (as in Flink): with ALL the \
                 value would carry the prefixed names too",
                spec.name
            )));
        }
        let mut key_fields = Vec::new();
        for &i in &key_columns {
            let column = &spec.columns[i];
            let Some(name) = column.name.strip_prefix(key_prefix.as_str()) else {
                return Err(Error::user(format!(
                    "key column `{}` of table `{}` does not start with 'key.fields-prefix' '{key_prefix}'",
                    column.name, spec.name
                )));
            };
            key_fields.push(Field::new(name, column.data_type.clone(), true));
        }

        let mut columns = Vec::with_capacity(spec.columns.len());
        let mut value_fields = Vec::new();
        let mut value_columns = Vec::new();
        let mut format_metadata = Vec::new();
        let mut write_problem = None;
        for (i, column) in spec.columns.iter().enumerate() {
            if let Some(m) = &column.metadata {
                let meta = match m.key.strip_prefix("value.") {
                    Some(format_key) => {
                        let offered = value_format.metadata();
                        let Some((_, data_type)) = offered.iter().find(|(k, _)| *k == format_key) else {
                            let names: Vec<String> = offered.iter().map(|(k, _)| format!("value.{k}")).collect();
                            return Err(Error::user(format!(
                                "column `{}` of table `{}` reads metadata '{}', which value format '{}' does not offer \
                                 (it offers: {})",
                                column.name,
                                spec.name,
                                m.key,
                                value_format.name(),
                                if names.is_empty() { "none".to_string() } else { names.join(", ") }
                            )));
                        };
                        check_metadata_type(spec, &column.name, &m.key, &column.data_type, &data_type())?;
                        if !m.is_virtual {
                            write_problem.get_or_insert_with(|| read_only_written(spec, &column.name, &m.key));
                        }
                        format_metadata.push(format_key.to_string());
                        Meta::Format(format_metadata.len() - 1)
                    }
                    None => {
                        let meta = Meta::parse(&m.key)
                            .ok_or_else(|| Error::internal(format!("metadata key '{}' passed the registry", m.key)))?;
                        check_metadata_type(spec, &column.name, &m.key, &column.data_type, &meta.data_type())?;
                        if !m.is_virtual && !meta.writable() {
                            write_problem.get_or_insert_with(|| read_only_written(spec, &column.name, &m.key));
                        }
                        meta
                    }
                };
                columns.push(ColumnFrom::Meta(meta));
            } else {
                let key = key_columns.iter().position(|&c| c == i);
                // upsert-kafka reads key columns from the key even when the value holds them
                // too: a tombstone has no value.
                match key {
                    Some(k) if fields_include == "EXCEPT_KEY" || flavor == Flavor::Upsert => {
                        columns.push(ColumnFrom::Key(k))
                    }
                    _ => columns.push(ColumnFrom::Value(value_fields.len())),
                }
                if key.is_none() || fields_include == "ALL" {
                    value_fields.push(Field::new(&column.name, column.data_type.clone(), true));
                    value_columns.push(i);
                }
            }
        }
        if flavor == Flavor::Upsert {
            if let Some(column) = spec
                .columns
                .iter()
                .enumerate()
                .find(|(i, c)| !c.nullable && c.metadata.is_none() && !key_columns.contains(i))
                .map(|(_, c)| c)
            {
                return Err(Error::user(format!(
                    "column `{}` of upsert-kafka table `{}` is NOT NULL, but a tombstone (a delete) carries only the key: \
                     declare the column nullable",
                    column.name, spec.name
                )));
            }
        }
        if fields_include == "EXCEPT_KEY" && key_columns.is_empty() {
            return Err(Error::user(format!(
                "table `{}`: 'value.fields-include' = 'EXCEPT_KEY' needs key fields ('key.fields', or the PRIMARY KEY of \
                 'upsert-kafka')",
                spec.name
            )));
        }

        // Sink.
        let semantic = o.choice("sink.semantic", &["none", "at-least-once", "exactly-once"])?;
        let guarantee = o.choice("sink.delivery-guarantee", &["none", "at-least-once", "exactly-once"])?;
        // The refusal names the key the table set ('sink.semantic' is the older name).
        let guarantee_key =
            if semantic.is_some() && guarantee.is_none() { "sink.semantic" } else { "sink.delivery-guarantee" };
        let delivery =
            match guarantee.or(semantic).unwrap_or("at-least-once") {
                "none" => Delivery::None,
                "at-least-once" => Delivery::AtLeastOnce,
                _ => return Err(o.invalid(
                    guarantee_key,
                    "exactly-once",
                    "'at-least-once' or 'none': Kafka transactions are not offered by this sink yet (a restart can \
                     repeat what the last checkpoint did not cover; an upsert-kafka topic converges on the latest row \
                     per key all the same)",
                )),
            };
        o.no_effect("sink.transactional-id-prefix", "the sink does not use Kafka transactions");
        let partitioner = match o.string("sink.partitioner").as_deref().map(str::trim) {
            None | Some("default") => Partitioner::Default,
            Some("fixed") => Partitioner::Fixed,
            Some("round-robin") => Partitioner::RoundRobin,
            Some(other) => {
                return Err(o.invalid(
                    "sink.partitioner",
                    other,
                    "'default', 'fixed' or 'round-robin' (custom partitioner classes are Java)",
                ))
            }
        };
        if partitioner == Partitioner::RoundRobin && key_format.is_some() {
            return Err(Error::user(format!(
                "table `{}`: 'sink.partitioner' = 'round-robin' spreads records without regard to their key (as in Flink, \
                 it only works without key fields), so one key's changes could be read out of order; use 'default'",
                spec.name
            )));
        }
        if flavor == Flavor::Upsert && partitioner != Partitioner::Default {
            return Err(Error::user(format!(
                "table `{}`: connector 'upsert-kafka' partitions by key so each key's changes stay in order; remove \
                 'sink.partitioner'",
                spec.name
            )));
        }
        let buffer_max_rows = o.parse::<usize>("sink.buffer-flush.max-rows", "a whole number of rows")?.unwrap_or(0);
        let buffer_interval = o.duration("sink.buffer-flush.interval")?.filter(|d| !d.is_zero());
        if flavor == Flavor::Kafka && (buffer_max_rows > 0 || buffer_interval.is_some()) {
            return Err(Error::user(format!(
                "table `{}`: 'sink.buffer-flush.*' belongs to connector 'upsert-kafka' (it keeps the last change per key)",
                spec.name
            )));
        }
        if (buffer_max_rows > 0) != buffer_interval.is_some() {
            return Err(Error::user(format!(
                "table `{}`: set 'sink.buffer-flush.max-rows' and 'sink.buffer-flush.interval' together (as in Flink), \
                 or neither",
                spec.name
            )));
        }

        Ok(Config {
            table: spec.name.clone(),
            flavor,
            servers,
            group,
            properties,
            offset_reset,
            commit_on_checkpoint,
            topics,
            topics_text,
            start,
            start_text,
            stop,
            discovery,
            key_format,
            value_format,
            schema: spec.schema(),
            columns,
            key_schema: Arc::new(Schema::new(key_fields)),
            key_columns,
            value_schema: Arc::new(Schema::new(value_fields)),
            value_columns,
            format_metadata,
            delivery,
            partitioner,
            buffer_max_rows,
            buffer_interval,
            write_problem,
        })
    }

    /// What the source emits.
    pub fn changelog_mode(&self) -> ChangelogMode {
        match self.flavor {
            Flavor::Upsert => ChangelogMode::Upsert,
            Flavor::Kafka => self.value_format.changelog_mode(),
        }
    }

    /// What keeps the table from being read, checked when a source is made (a table that is only
    /// written needs no consumer group).
    pub fn check_readable(&self) -> Result<()> {
        if self.group.is_none() && (self.start == StartAt::GroupOffsets || self.stop == StopAt::GroupOffsets) {
            let key = if self.start == StartAt::GroupOffsets { "scan.startup.mode" } else { "scan.bounded.mode" };
            return Err(Error::user(format!(
                "table `{}`: '{key}' = 'group-offsets'{} reads the committed offsets of a consumer group; set \
                 'properties.group.id', or choose another '{key}' such as 'earliest-offset'",
                self.table,
                if key == "scan.startup.mode" { " (the default)" } else { "" }
            )));
        }
        Ok(())
    }

    pub fn is_bounded(&self) -> bool {
        self.stop != StopAt::Unbounded
    }

    /// The one topic a sink writes.
    pub fn sink_topic(&self) -> Result<&str> {
        match &self.topics {
            Topics::List(list) if list.len() == 1 => Ok(&list[0]),
            _ => Err(Error::user(format!(
                "table `{}` is written to, so its 'topic' must name exactly one topic ('topic-pattern' and topic lists \
                 can only be read)",
                self.table
            ))),
        }
    }

    pub fn value_kind(&self) -> FormatKind {
        self.value_format.kind()
    }
}

fn read_only_written(spec: &TableSpec, column: &str, key: &str) -> String {
    format!(
        "metadata column `{column}` of table `{}` reads '{key}', which a Kafka sink cannot write; declare it VIRTUAL \
         (`{column} … METADATA FROM '{key}' VIRTUAL`) to write into the table",
        spec.name
    )
}

fn check_metadata_type(
    spec: &TableSpec,
    column: &str,
    key: &str,
    declared: &DataType,
    offered: &DataType,
) -> Result<()> {
    let fits = match (declared, offered) {
        (DataType::Timestamp(d, dz), DataType::Timestamp(_, oz)) => {
            dz.is_some() == oz.is_some() && *d != TimeUnit::Second
        }
        (DataType::Map(..), DataType::Map(..)) => flink_type_name(declared) == flink_type_name(offered),
        (d, o) => d == o,
    };
    if fits {
        Ok(())
    } else {
        Err(Error::user(format!(
            "metadata column `{column}` of table `{}` reads '{key}', which is {}; it is declared {}",
            spec.name,
            flink_type_name(offered),
            flink_type_name(declared)
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::connectors::open_table;
    use crate::sql::{parse_script, Statement};

    fn open(columns: &str, options: &str) -> crate::error::Result<Box<dyn crate::connectors::ConnectorTable>> {
        let sql = format!("CREATE TABLE t ({columns}) WITH ({options});");
        match parse_script("test", &sql, &|_| None).unwrap().into_iter().next().map(|s| s.statement) {
            Some(Statement::CreateTable { spec, .. }) => open_table(&spec),
            _ => panic!("not a CREATE TABLE"),
        }
    }

    fn error(columns: &str, options: &str) -> String {
        match open(columns, options) {
            Ok(_) => panic!("accepted: {options}"),
            Err(e) => e.to_string(),
        }
    }

    const BASE: &str = "'connector' = 'kafka', 'topic' = 'orders', 'properties.bootstrap.servers' = 'k:9092', \
                        'scan.startup.mode' = 'earliest-offset', 'format' = 'json'";

    #[test]
    fn a_valid_table_opens_without_connecting() {
        open("id BIGINT, note STRING", BASE).unwrap();
        open(
            "id BIGINT, note STRING, p INT METADATA FROM 'partition' VIRTUAL, h MAP<STRING, BYTES> METADATA FROM 'headers'",
            &format!("{BASE}, 'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:42;partition:1,offset:7'"),
        )
        .unwrap();
    }

    #[test]
    fn specific_offsets_must_follow_flinks_syntax() {
        let e = error(
            "id BIGINT",
            "'connector' = 'kafka', 'topic' = 'o', 'properties.bootstrap.servers' = 'k:9092', 'format' = 'json', \
             'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = 'partition:0;offset:42'",
        );
        assert!(e.contains("'partition:0,offset:42;partition:1,offset:300'"), "{e}");
    }

    /// Reading by the default startup mode needs a group; writing does not.
    #[test]
    fn group_offsets_by_default_needs_a_group_to_read_and_says_so() {
        let table = open(
            "id BIGINT",
            "'connector' = 'kafka', 'topic' = 'o', 'properties.bootstrap.servers' = 'k:9092', 'format' = 'json'",
        )
        .unwrap();
        let e = table.source(&crate::connectors::SourceContext { batch_size: 10 }).err().expect("refused").to_string();
        assert!(e.contains("'properties.group.id'") && e.contains("'earliest-offset'"), "{e}");
        assert!(table.sink(crate::changelog::ChangelogMode::InsertOnly).is_ok());
    }

    #[test]
    fn topic_and_topic_pattern_exclude_each_other() {
        let e = error("id BIGINT", &format!("{BASE}, 'topic-pattern' = 'orders_.*'"));
        assert!(e.contains("both 'topic' and 'topic-pattern'"), "{e}");
    }

    #[test]
    fn a_jaas_password_is_translated_and_never_quoted() {
        open(
            "id BIGINT",
            &format!("{BASE}, 'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";'"),
        )
        .unwrap();
        let e = error(
            "id BIGINT",
            &format!("{BASE}, 'properties.sasl.jaas.config' = 'com.example.Custom required password=\"hunter2\";'"),
        );
        assert!(e.contains("PlainLoginModule") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn exactly_once_is_refused_not_downgraded() {
        let e = error("id BIGINT", &format!("{BASE}, 'sink.delivery-guarantee' = 'exactly-once'"));
        assert!(e.contains("'at-least-once' or 'none'"), "{e}");
    }

    #[test]
    fn upsert_kafka_needs_a_primary_key_and_a_key_format() {
        let up = "'connector' = 'upsert-kafka', 'topic' = 'o', 'properties.bootstrap.servers' = 'k:9092', 'value.format' = 'json'";
        let e = error("id BIGINT, v STRING", &format!("{up}, 'key.format' = 'json'"));
        assert!(e.contains("PRIMARY KEY"), "{e}");
        let e = error("id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED", up);
        assert!(e.contains("'key.format'"), "{e}");
        open("id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED", &format!("{up}, 'key.format' = 'json'")).unwrap();
    }

    #[test]
    fn a_changelog_value_format_is_refused_by_upsert_kafka() {
        let e = error(
            "id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED",
            "'connector' = 'upsert-kafka', 'topic' = 'o', 'properties.bootstrap.servers' = 'k:9092', 'key.format' = 'json', \
             'value.format' = 'debezium-json'",
        );
        assert!(e.contains("connector 'kafka'"), "{e}");
    }

    #[test]
    fn format_metadata_must_be_offered_by_the_value_format() {
        let e = error("id BIGINT, tb STRING METADATA FROM 'value.source.table' VIRTUAL", BASE);
        assert!(e.contains("value format 'json' does not offer"), "{e}");
        open(
            "id BIGINT, tb STRING METADATA FROM 'value.source.table' VIRTUAL",
            &BASE.replace("'format' = 'json'", "'format' = 'debezium-json'"),
        )
        .unwrap();
    }

    #[test]
    fn an_unknown_option_names_the_nearest() {
        let e = error("id BIGINT", &format!("{BASE}, 'scan.startup.specific-offset' = 'x'"));
        assert!(e.contains("did you mean 'scan.startup.specific-offsets'"), "{e}");
    }

    /// A read-only metadata column that is not VIRTUAL may be read, but not written.
    #[test]
    fn a_read_only_metadata_column_must_be_virtual_to_write() {
        let table = open("id BIGINT, off BIGINT METADATA FROM 'offset'", BASE).unwrap();
        assert!(table.source(&crate::connectors::SourceContext { batch_size: 10 }).is_ok());
        let e = table.sink(crate::changelog::ChangelogMode::InsertOnly).err().expect("refused").to_string();
        assert!(e.contains("declare it VIRTUAL"), "{e}");
    }

    #[test]
    fn an_upsert_kafka_value_column_may_not_be_not_null() {
        let e = error(
            "id BIGINT, v STRING NOT NULL, PRIMARY KEY (id) NOT ENFORCED",
            "'connector' = 'upsert-kafka', 'topic' = 'o', 'properties.bootstrap.servers' = 'k:9092', \
             'key.format' = 'json', 'value.format' = 'json'",
        );
        assert!(e.contains("`v`") && e.contains("tombstone"), "{e}");
    }

    /// A property librdkafka refuses is a user error naming the key, never the value.
    #[test]
    fn a_bad_client_property_names_its_key_not_its_value() {
        let e = error("id BIGINT", &format!("{BASE}, 'properties.sasl.secret.thing' = 'hunter2'"));
        assert!(e.contains("'properties.sasl.secret.thing'") && !e.contains("hunter2"), "{e}");
        let e = error("id BIGINT", &format!("{BASE}, 'properties.ssl.truststore.password' = 'hunter2'"));
        assert!(e.contains("TLS") && !e.contains("hunter2"), "{e}");
    }
}
