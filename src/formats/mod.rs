//! Message formats: the bytes of one message (a Kafka record value or key) ↔ changelog rows, as
//! Flink's formats define them, for any connector that carries bytes (kafka, upsert-kafka).
//!
//! | format | rows per message | changelog | notes |
//! |---|---|---|---|
//! | `json` | 1 (n for a top-level array) | insert-only | one object per row, keys are column names |
//! | `debezium-json` | 0–2 (`c`/`r` → +I, `u` → -U +U, `d` → -D) | all | Debezium's envelope, with or without Kafka Connect's `schema` |
//! | `canal-json` | n (one per `data` row; UPDATE → -U +U per row) | all | Canal's flat messages, DDL skipped |
//! | `raw` | 1 | insert-only | the whole message is one value of the single column |
//!
//! Decoding is columnar: a pull parser ([`json::parser`]) walks the message once and each value is
//! converted straight into the builder of its column (field names resolved against the columns,
//! unknown fields skipped, missing ones NULL); no `serde_json::Value` is built per row. DECIMAL
//! values are read from the number's text, so they are exact. A message that fails leaves nothing
//! behind: the builders are rolled back to where the message began. Encoding writes JSON straight
//! from Arrow arrays ([`json::write`], shared with the doris sink).
//!
//! Options are read as Flink names them: `{prefix}{format}.{option}`, e.g.
//! `'value.debezium-json.schema-include'`. Every key a format knows is consumed, so a typo is
//! refused by [`ConnectorOptions::finish`] with the nearest valid key.
//!
//! Limits and differences from Flink are listed in `docs/formats.md`; the main ones: reading is a
//! little more lenient than Flink's (timestamps in any of the three standards, `1`/`0` booleans,
//! epoch numbers for Debezium temporal columns, Debezium's Kafka Connect logical types decoded from
//! the message's schema), never silently lossy (an integer or decimal that does not fit is an
//! error, not a truncation or NULL), and trailing bytes after the JSON value are an error.

mod canal;
mod debezium;
pub mod json;
mod raw;

#[cfg(test)]
mod fixtures_test;

use std::fmt;
use std::ops::Range;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::changelog::{ChangelogMode, Retractions, RowKind};
use crate::connectors::ConnectorOptions;
use crate::error::{Error, Result};
use crate::sql::types::{list_of, UTC};

pub use json::{MapNullKeyMode, TimestampStandard};

/// The formats cdc-sql reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatKind {
    Json,
    DebeziumJson,
    CanalJson,
    Raw,
}

impl FormatKind {
    pub const ALL: [FormatKind; 4] =
        [FormatKind::Json, FormatKind::DebeziumJson, FormatKind::CanalJson, FormatKind::Raw];

    /// The name used in `'format' = '…'`.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Json => "json",
            FormatKind::DebeziumJson => "debezium-json",
            FormatKind::CanalJson => "canal-json",
            FormatKind::Raw => "raw",
        }
    }
}

/// Flink formats cdc-sql does not implement, named so the error can say so rather than suggest a
/// look-alike.
const FLINK_ONLY_FORMATS: &[&str] = &[
    "avro",
    "avro-confluent",
    "csv",
    "debezium-avro-confluent",
    "maxwell-json",
    "ogg-json",
    "orc",
    "parquet",
    "protobuf",
];

/// Options of the JSON family (json, debezium-json, canal-json).
#[derive(Debug, Clone)]
pub(crate) struct JsonOptions {
    pub ignore_parse_errors: bool,
    /// json only: a field absent from the message is an error instead of NULL.
    pub fail_on_missing_field: bool,
    pub timestamp_standard: TimestampStandard,
    pub map_null_key_mode: MapNullKeyMode,
    pub map_null_key_literal: String,
    pub decimal_as_plain_number: bool,
    /// json and debezium-json only.
    pub ignore_null_fields: bool,
    /// debezium-json only: messages are `{"schema": …, "payload": …}`.
    pub schema_include: bool,
    /// canal-json only: full-match patterns on the message's `database` / `table`.
    pub database_include: Option<regex::Regex>,
    pub table_include: Option<regex::Regex>,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            ignore_parse_errors: false,
            fail_on_missing_field: false,
            timestamp_standard: TimestampStandard::Sql,
            map_null_key_mode: MapNullKeyMode::Fail,
            map_null_key_literal: "null".into(),
            decimal_as_plain_number: false,
            ignore_null_fields: false,
            schema_include: false,
            database_include: None,
            table_include: None,
        }
    }
}

/// Options of the raw format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawOptions {
    pub charset: raw::Charset,
    pub big_endian: bool,
}

/// A format with its parsed options; makes decoders and encoders.
#[derive(Debug, Clone)]
pub struct Format {
    kind: FormatKind,
    /// The prefix of its option keys (`''`, `'value.'`, `'key.'`), for messages.
    prefix: String,
    json: JsonOptions,
    raw: RawOptions,
}

/// A metadata key a format offers and the Arrow type of its column.
pub type MetadataKey = (&'static str, fn() -> DataType);

fn utf8() -> DataType {
    DataType::Utf8
}

fn ltz3() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
}

fn map_of(value: DataType) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", value, true),
        ])),
        false,
    );
    DataType::Map(std::sync::Arc::new(entries), false)
}

fn string_map() -> DataType {
    map_of(DataType::Utf8)
}

fn int_map() -> DataType {
    map_of(DataType::Int32)
}

fn string_list() -> DataType {
    list_of(DataType::Utf8, true)
}

const DEBEZIUM_METADATA: &[MetadataKey] = &[
    ("schema", utf8),
    ("ingestion-timestamp", ltz3),
    ("source.timestamp", ltz3),
    ("source.database", utf8),
    ("source.schema", utf8),
    ("source.table", utf8),
    ("source.properties", string_map),
];

const CANAL_METADATA: &[MetadataKey] = &[
    ("database", utf8),
    ("table", utf8),
    ("sql-type", int_map),
    ("pk-names", string_list),
    ("ingestion-timestamp", ltz3),
    ("event-timestamp", ltz3),
];

impl Format {
    /// Reads the format named by option `format_key` (`format`, `value.format`, `key.format`) and
    /// consumes its own options, which Flink names `{prefix}{format}.{option}`. `Ok(None)` when
    /// `format_key` is absent.
    pub fn from_options(options: &mut ConnectorOptions, format_key: &str, prefix: &str) -> Result<Option<Format>> {
        let Some(name) = options.string(format_key) else {
            return Ok(None);
        };
        let kind = match FormatKind::ALL.iter().find(|k| k.name() == name.trim()) {
            Some(k) => *k,
            None => return Err(unknown_format(options, format_key, &name)),
        };
        let key = |option: &str| format!("{prefix}{}.{option}", kind.name());
        let mut json = JsonOptions::default();
        let mut raw = RawOptions { charset: raw::Charset::Utf8, big_endian: true };
        match kind {
            FormatKind::Raw => {
                if let Some(v) = options.string(&key("charset")) {
                    raw.charset = raw::Charset::parse(&v).ok_or_else(|| {
                        options.invalid(
                            &key("charset"),
                            &v,
                            "a charset cdc-sql implements: UTF-8, US-ASCII or ISO-8859-1",
                        )
                    })?;
                }
                if let Some(v) = options.choice(&key("endianness"), &["big-endian", "little-endian"])? {
                    raw.big_endian = v == "big-endian";
                }
            }
            _ => {
                json.ignore_parse_errors = options.bool(&key("ignore-parse-errors"))?.unwrap_or(false);
                let standards: &[&'static str] = if kind == FormatKind::Json {
                    &["SQL", "ISO-8601", "ISO-8601-WITH-OFFSET"]
                } else {
                    &["SQL", "ISO-8601"]
                };
                if let Some(v) = options.choice(&key("timestamp-format.standard"), standards)? {
                    json.timestamp_standard = match v {
                        "SQL" => TimestampStandard::Sql,
                        "ISO-8601" => TimestampStandard::Iso8601,
                        _ => TimestampStandard::Iso8601WithOffset,
                    };
                }
                if let Some(v) = options.choice(&key("map-null-key.mode"), &["FAIL", "DROP", "LITERAL"])? {
                    json.map_null_key_mode = match v {
                        "FAIL" => MapNullKeyMode::Fail,
                        "DROP" => MapNullKeyMode::Drop,
                        _ => MapNullKeyMode::Literal,
                    };
                }
                if let Some(v) = options.string(&key("map-null-key.literal")) {
                    json.map_null_key_literal = v;
                }
                json.decimal_as_plain_number = options.bool(&key("encode.decimal-as-plain-number"))?.unwrap_or(false);
            }
        }
        match kind {
            FormatKind::Json => {
                json.fail_on_missing_field = options.bool(&key("fail-on-missing-field"))?.unwrap_or(false);
                json.ignore_null_fields = options.bool(&key("encode.ignore-null-fields"))?.unwrap_or(false);
                options.no_effect(
                    &key("decode.json-parser.enabled"),
                    "cdc-sql has one JSON reader, a streaming one like Flink's JsonParser",
                );
                if json.fail_on_missing_field && json.ignore_parse_errors {
                    return Err(Error::user(format!(
                        "options '{}' and '{}' of table `{}` cannot both be true (as in Flink): a missing field either fails the message or becomes NULL",
                        key("fail-on-missing-field"),
                        key("ignore-parse-errors"),
                        options.table()
                    )));
                }
            }
            FormatKind::DebeziumJson => {
                json.schema_include = options.bool(&key("schema-include"))?.unwrap_or(false);
                json.ignore_null_fields = options.bool(&key("encode.ignore-null-fields"))?.unwrap_or(false);
            }
            FormatKind::CanalJson => {
                json.database_include = include_pattern(options, &key("database.include"))?;
                json.table_include = include_pattern(options, &key("table.include"))?;
            }
            FormatKind::Raw => {}
        }
        Ok(Some(Format { kind, prefix: prefix.to_string(), json, raw }))
    }

    /// A format with default options (tests, and connectors that fix the format).
    pub fn new(kind: FormatKind) -> Format {
        Format {
            kind,
            prefix: String::new(),
            json: JsonOptions::default(),
            raw: RawOptions { charset: raw::Charset::Utf8, big_endian: true },
        }
    }

    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The full key of one of this format's options, as the table spells it.
    pub fn option_key(&self, option: &str) -> String {
        format!("{}{}.{option}", self.prefix, self.name())
    }

    /// The rows a source reading this format produces.
    pub fn changelog_mode(&self) -> ChangelogMode {
        match self.kind {
            FormatKind::Json | FormatKind::Raw => ChangelogMode::InsertOnly,
            FormatKind::DebeziumJson | FormatKind::CanalJson => ChangelogMode::All,
        }
    }

    /// What the `-U`/`-D` rows carry. Debezium's PostgreSQL connector sends only the key columns
    /// in `before` unless the table has REPLICA IDENTITY FULL, so its retractions may be key-only.
    pub fn source_retractions(&self) -> Retractions {
        match self.kind {
            FormatKind::DebeziumJson => Retractions::MaybeKeyOnly,
            _ => Retractions::WholeRows,
        }
    }

    /// Whether a message that cannot be decoded is skipped (`{format}.ignore-parse-errors`); the
    /// decoders themselves already turn a bad field into NULL under this option, as Flink does.
    pub fn ignore_parse_errors(&self) -> bool {
        self.json.ignore_parse_errors
    }

    /// The format's own metadata keys and the types of their columns (the kafka connector
    /// exposes them as `value.<key>`).
    pub fn metadata(&self) -> &'static [MetadataKey] {
        match self.kind {
            FormatKind::DebeziumJson => DEBEZIUM_METADATA,
            FormatKind::CanalJson => CANAL_METADATA,
            FormatKind::Json | FormatKind::Raw => &[],
        }
    }

    /// A decoder filling `columns` (the physical fields, by name) and then the requested
    /// `metadata` columns (keys of [`Format::metadata`]), in that order.
    pub fn decoder(&self, columns: SchemaRef, metadata: &[String]) -> Result<Box<dyn Decoder>> {
        for key in metadata {
            if !self.metadata().iter().any(|(k, _)| k == key) {
                let offered: Vec<&str> = self.metadata().iter().map(|(k, _)| *k).collect();
                return Err(Error::user(format!(
                    "format '{}' has no metadata '{key}' (it offers: {})",
                    self.name(),
                    if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
                )));
            }
        }
        Ok(match self.kind {
            FormatKind::Json => Box::new(json::JsonDecoder::new(&columns, &self.json)?),
            FormatKind::DebeziumJson => Box::new(debezium::DebeziumDecoder::new(&columns, metadata, &self.json)?),
            FormatKind::CanalJson => Box::new(canal::CanalDecoder::new(&columns, metadata, &self.json)?),
            FormatKind::Raw => Box::new(raw::RawDecoder::new(&columns, self.raw)?),
        })
    }

    /// An encoder of rows of `schema`; fails naming a column whose type the format cannot write.
    pub fn encoder(&self, schema: SchemaRef) -> Result<Box<dyn Encoder>> {
        Ok(match self.kind {
            FormatKind::Json => Box::new(json::JsonEncoder::new(schema, &self.json)?),
            FormatKind::DebeziumJson => {
                if self.json.schema_include {
                    return Err(Error::user(format!(
                        "'{}' = 'true' is for reading: like Flink, the debezium-json writer does not write Kafka Connect schemas; remove the option from the sink table",
                        self.option_key("schema-include")
                    )));
                }
                Box::new(debezium::DebeziumEncoder::new(schema, &self.json)?)
            }
            FormatKind::CanalJson => Box::new(canal::CanalEncoder::new(schema, &self.json)?),
            FormatKind::Raw => Box::new(raw::RawEncoder::new(schema, self.raw)?),
        })
    }
}

fn unknown_format(options: &ConnectorOptions, format_key: &str, name: &str) -> Error {
    let names: Vec<&str> = FormatKind::ALL.iter().map(|k| k.name()).collect();
    if FLINK_ONLY_FORMATS.contains(&name.trim()) {
        return Error::user(format!(
            "option '{format_key}' = '{name}' of table `{}`: cdc-sql does not implement Flink's '{}' format; available formats: {}",
            options.table(),
            name.trim(),
            names.join(", ")
        ));
    }
    let nearest = names
        .iter()
        .map(|n| (strsim::levenshtein(n, &name.trim().to_ascii_lowercase()), *n))
        .min()
        .filter(|(d, _)| *d <= 4)
        .map(|(_, n)| format!(" (did you mean '{n}'?)"))
        .unwrap_or_default();
    Error::user(format!(
        "option '{format_key}' = '{name}' of table `{}` names no format{nearest}; available formats: {}",
        options.table(),
        names.join(", ")
    ))
}

fn include_pattern(options: &mut ConnectorOptions, key: &str) -> Result<Option<regex::Regex>> {
    let Some(text) = options.string(key) else { return Ok(None) };
    // Java's Matcher.matches(): the whole name must match.
    regex::Regex::new(&format!("^(?:{text})$")).map(Some).map_err(|e| {
        options.invalid(key, &text, &format!("a regular expression ({})", e.to_string().replace('\n', " ")))
    })
}

/// Turns message values into changelog rows.
pub trait Decoder: Send {
    /// Decodes one message value (`None`: a null value, a Kafka tombstone), appending the rows it
    /// holds and their kinds to `kinds`; returns how many rows it appended. On error nothing is
    /// appended and the [`DecodeError`] says what is wrong in the message; the caller adds where
    /// the message came from and decides whether to skip it ([`Format::ignore_parse_errors`]).
    fn decode(&mut self, value: Option<&[u8]>, kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError>;

    /// The rows decoded since the last call: the physical columns, then the metadata columns.
    fn finish(&mut self) -> Result<Vec<ArrayRef>>;
}

/// Turns changelog rows into message values.
pub trait Encoder: Send {
    /// Appends one message per row to `out` (rows whose kind the format does not write are left
    /// out: none for json and raw, which write every row given).
    fn encode(&mut self, rows: &RecordBatch, kinds: &[RowKind], out: &mut Messages) -> Result<()>;
}

/// Encoded messages in one buffer: per message the row it came from and its bytes (`None` for a
/// null value, which the raw format writes for a NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Messages {
    pub bytes: Vec<u8>,
    pub messages: Vec<(u32, Option<Range<usize>>)>,
}

impl Messages {
    pub fn new() -> Self {
        Messages::default()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The `i`th message: its row and value.
    pub fn get(&self, i: usize) -> (u32, Option<&[u8]>) {
        let (row, range) = &self.messages[i];
        (*row, range.clone().map(|r| &self.bytes[r]))
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, Option<&[u8]>)> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Starts a message at the end of the buffer; returns its start for [`Messages::push_from`].
    pub(crate) fn start(&self) -> usize {
        self.bytes.len()
    }

    /// Ends the message that began at `start`.
    pub(crate) fn push_from(&mut self, row: usize, start: usize) {
        self.messages.push((row as u32, Some(start..self.bytes.len())));
    }
}

/// What is wrong with one message: the field (path into the message) and what was found there
/// and expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Field names from the innermost out, joined outermost first when shown.
    path: Vec<String>,
    message: String,
}

impl DecodeError {
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError { path: Vec::new(), message: message.into() }
    }

    /// The same error, inside field `name`.
    pub fn in_field(mut self, name: &str) -> Self {
        self.path.push(name.to_string());
        self
    }

    /// The same error, at `index` of an array (`data[2]`).
    pub fn at_index(mut self, index: usize) -> Self {
        match self.path.last_mut() {
            Some(last) if last.starts_with('[') => *last = format!("[{index}]{last}"),
            _ => self.path.push(format!("[{index}]")),
        }
        self
    }

    /// The field path, outermost first (`after.price`), or empty for the message as a whole.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for part in self.path.iter().rev() {
            if !out.is_empty() && !part.starts_with('[') {
                out.push('.');
            }
            out.push_str(part);
        }
        out
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// A user error for a message the job cannot read: `location` says where the message came
    /// from (topic, partition, offset).
    pub fn into_error(self, format: &Format, location: &str) -> Error {
        Error::user(format!(
            "cannot decode the {} message at {location}: {self}. Fix the producer, or set '{}' = 'true' to skip such messages",
            format.name(),
            format.option_key("ignore-parse-errors")
        ))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field `{}`: {}", self.field(), self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

/// Up to `max` characters of `bytes` for a message: invalid UTF-8 and control characters
/// escaped, an ellipsis when cut.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
