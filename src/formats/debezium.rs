//! `debezium-json`: Debezium's change events as Kafka Connect's JSON converter writes them,
//! `{"before": {…}, "after": {…}, "op": "u", "source": {…}, "ts_ms": …}`, wrapped in
//! `{"schema": …, "payload": …}` when the converter includes schemas
//! (`'debezium-json.schema-include' = 'true'`).
//!
//! Rows, as Flink's `DebeziumJsonDeserializationSchema`: `c`/`r` → +I of `after`; `u` → -U of
//! `before` then +U of `after`; `d` → -D of `before`; a null or empty value (the tombstone after a
//! delete) → nothing. An update or delete whose `before` is null fails with Flink's hint about
//! PostgreSQL's REPLICA IDENTITY. Fields may come in any order: `before` and `after` are decoded
//! into two sets of columns and interleaved at `finish`, so -U always precedes its +U.
//!
//! Beyond Flink: with the schema included, each column's Kafka Connect logical type decides how
//! its value is read (base64 `Decimal` with its `scale`, `VariableScaleDecimal`, `Date` days,
//! `Timestamp`/`MicroTimestamp`/`NanoTimestamp` epochs, `Time`/`MicroTime`/`NanoTime`,
//! `ZonedTimestamp`/`ZonedTime` text with an offset). The interpreted schema is kept while the
//! next message's schema bytes are identical. Without a schema, a number in a DATE column counts
//! days, in a TIMESTAMP(p) column milliseconds (p ≤ 3) or microseconds since the epoch, in a
//! TIME column microseconds since midnight: Debezium's default `adaptive_time_microseconds`.
//!
//! Writing, as Flink's `DebeziumJsonSerializationSchema`: +I and +U → `{"before":null,
//! "after":{…},"op":"c"}`, -U and -D → `{"before":{…},"after":null,"op":"d"}`.

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::{interleave, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::json::column::{columns_of, Column, Names};
use super::json::decode::{read_fields, read_value, Cx, Enc, PLAIN};
use super::json::parser::{compact, Parser, Token};
use super::json::write::{check_schema, field_keys, RowWriter, Style};
use super::json::{cx, finish_all, style, truncate_all};
use super::{DecodeError, Decoder, Encoder, JsonOptions, Messages};
use crate::changelog::RowKind;
use crate::error::{Error, Result};

const BEFORE: usize = 0;
const AFTER: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Schema,
    IngestionTimestamp,
    SourceTimestamp,
    SourceDatabase,
    SourceSchema,
    SourceTable,
    SourceProperties,
}

impl Meta {
    fn of(key: &str) -> Option<Meta> {
        Some(match key {
            "schema" => Meta::Schema,
            "ingestion-timestamp" => Meta::IngestionTimestamp,
            "source.timestamp" => Meta::SourceTimestamp,
            "source.database" => Meta::SourceDatabase,
            "source.schema" => Meta::SourceSchema,
            "source.table" => Meta::SourceTable,
            "source.properties" => Meta::SourceProperties,
            _ => return None,
        })
    }

    /// The key inside `source` the metadata reads.
    fn source_key(self) -> Option<&'static str> {
        match self {
            Meta::SourceTimestamp => Some("ts_ms"),
            Meta::SourceDatabase => Some("db"),
            Meta::SourceSchema => Some("schema"),
            Meta::SourceTable => Some("table"),
            _ => None,
        }
    }
}

/// Where in the message the values metadata reads are.
#[derive(Default)]
struct Spans {
    schema: Option<(usize, usize)>,
    source: Option<usize>,
    ts_ms: Option<usize>,
}

pub(crate) struct DebeziumDecoder {
    names: Names,
    /// The column types, to interpret schemas against.
    types: Vec<DataType>,
    /// `[before, after]`: one row per decoded message each.
    sets: [Vec<Column>; 2],
    meta: Vec<(Meta, Column)>,
    messages: usize,
    /// Output rows: (set, message).
    picks: Vec<(usize, usize)>,
    schema_include: bool,
    cx: Cx,
    schema_cache: SchemaCache,
    /// No schema: every column plain.
    plain: Enc,
}

impl DebeziumDecoder {
    pub(crate) fn new(columns: &SchemaRef, metadata: &[String], options: &JsonOptions) -> Result<Self> {
        let names = Names::new(columns.fields().iter().map(|f| f.name().clone()).collect());
        let types = columns.fields().iter().map(|f| f.data_type().clone()).collect();
        let sets = [columns_of(columns.fields())?, columns_of(columns.fields())?];
        let meta = metadata
            .iter()
            .map(|key| {
                let m = Meta::of(key).ok_or_else(|| Error::internal(format!("debezium-json metadata '{key}'")))?;
                let (_, dt) = super::DEBEZIUM_METADATA
                    .iter()
                    .find(|(k, _)| k == key)
                    .ok_or_else(|| Error::internal(format!("debezium-json metadata '{key}' has no type")))?;
                Ok((m, Column::new(&dt(), true)?))
            })
            .collect::<Result<_>>()?;
        let mut cx = cx(options);
        cx.debezium = true;
        cx.fail_on_missing_field = false;
        Ok(DebeziumDecoder {
            plain: Enc::Fields(vec![Enc::Plain; names.len()]),
            names,
            types,
            sets,
            meta,
            messages: 0,
            picks: Vec::new(),
            schema_include: options.schema_include,
            cx,
            schema_cache: SchemaCache::default(),
        })
    }

    fn rollback(&mut self, messages: usize, picks: usize) {
        for set in &mut self.sets {
            truncate_all(set, messages);
        }
        self.meta.iter_mut().for_each(|(_, c)| c.truncate(messages));
        self.picks.truncate(picks);
        self.messages = messages;
    }

    fn message(&mut self, bytes: &[u8], kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        let mut p = Parser::new(bytes);
        let mut spans = Spans::default();
        let outcome = if self.schema_include {
            if p.peek()? != Token::Object {
                return Err(DecodeError::new(format!("expected a JSON object, found {}", p.peek()?.describe())));
            }
            p.begin_object()?;
            let mut payload = None;
            let mut first = true;
            let mut root_keys = RootKeys::default();
            loop {
                let key = match p.next_key(first)? {
                    None => break,
                    Some(k) => root_keys.note(k),
                };
                first = false;
                match key {
                    RootKey::Schema => {
                        p.peek()?;
                        let start = p.pos();
                        p.skip()?;
                        spans.schema = Some((start, p.pos()));
                    }
                    RootKey::Payload => {
                        payload = if p.peek()? == Token::Null { None } else { Some(p.pos()) };
                        p.skip()?;
                    }
                    _ => p.skip()?,
                }
            }
            p.finish()?;
            let Some(payload) = payload else {
                if root_keys.payload {
                    // `{"schema": null, "payload": null}`: a tombstone with the envelope around it.
                    return Ok(0);
                }
                return Err(DecodeError::new(if root_keys.envelope {
                    "the message has no \"payload\" but holds \"op\"/\"before\"/\"after\" itself: it was written without a schema; set 'debezium-json.schema-include' = 'false'"
                } else {
                    "the message has no \"payload\" field ('debezium-json.schema-include' is true)"
                }));
            };
            let enc = match spans.schema {
                Some((s, e)) => encoding(&mut self.schema_cache, &self.names, &self.types, &bytes[s..e])?,
                None => &self.plain,
            };
            let mut p = Parser::at(bytes, payload);
            read_payload(&mut p, &self.names, &mut self.sets, self.messages, enc, &self.cx, &mut spans)
                .map_err(|e| e.in_field("payload"))?
        } else {
            let outcome =
                read_payload(&mut p, &self.names, &mut self.sets, self.messages, &self.plain, &self.cx, &mut spans)?;
            p.finish()?;
            outcome
        };
        let m = self.messages;
        let (rows, emitted): (&[(usize, RowKind)], usize) = match outcome.op.as_deref() {
            Some("c" | "r") => {
                if outcome.after_null {
                    return Err(DecodeError::new(format!(
                        "\"op\" is \"{}\" but \"after\" is null",
                        outcome.op.as_deref().unwrap_or("")
                    )));
                }
                (&[(AFTER, RowKind::Insert)], 1)
            }
            Some("u") => {
                if outcome.before_null {
                    return Err(replica_identity("UPDATE"));
                }
                if outcome.after_null {
                    return Err(DecodeError::new("\"op\" is \"u\" but \"after\" is null"));
                }
                (&[(BEFORE, RowKind::UpdateBefore), (AFTER, RowKind::UpdateAfter)], 2)
            }
            Some("d") => {
                if outcome.before_null {
                    return Err(replica_identity("DELETE"));
                }
                (&[(BEFORE, RowKind::Delete)], 1)
            }
            Some(other) => {
                let what = match other {
                    "t" => " (a TRUNCATE, which has no rows to emit)",
                    "m" => " (a logical decoding message, which has no rows to emit)",
                    _ => "",
                };
                return Err(DecodeError::new(format!(
                    "unknown \"op\" value \"{}\"{what}; expected c, r, u or d",
                    super::excerpt(other.as_bytes(), 20)
                )));
            }
            None => {
                return Err(DecodeError::new(if outcome.envelope_inside {
                    "the message has no \"op\" field but holds \"schema\" and \"payload\": it was written with a schema; set 'debezium-json.schema-include' = 'true'"
                } else {
                    "the message has no \"op\" field (not a Debezium change event?)"
                }))
            }
        };
        self.read_metadata(bytes, &spans)?;
        for (set, kind) in rows {
            self.picks.push((*set, m));
            kinds.push(*kind);
        }
        self.messages += 1;
        Ok(emitted)
    }

    /// One row of each requested metadata column.
    fn read_metadata(&mut self, bytes: &[u8], spans: &Spans) -> std::result::Result<(), DecodeError> {
        let cx = self.cx;
        let ms = Enc::Epoch(TimeUnit::Millisecond);
        for (meta, column) in &mut self.meta {
            let meta = *meta;
            let at = match meta {
                Meta::Schema => {
                    match spans.schema {
                        Some((s, e)) => {
                            let mut text = String::with_capacity(e - s);
                            compact(&bytes[s..e], &mut text);
                            column.push_bytes(text.as_bytes()).map_err(DecodeError::new)?;
                        }
                        None => column.push_null().map_err(DecodeError::new)?,
                    }
                    continue;
                }
                Meta::IngestionTimestamp => spans.ts_ms,
                Meta::SourceProperties => spans.source,
                _ => match (spans.source, meta.source_key()) {
                    (Some(source), Some(key)) => find_key(bytes, source, key)?,
                    _ => None,
                },
            };
            let key = match meta {
                Meta::IngestionTimestamp => "ts_ms",
                Meta::SourceProperties => "source",
                other => other.source_key().unwrap_or("source"),
            };
            match at {
                Some(at) => {
                    let enc =
                        if matches!(meta, Meta::IngestionTimestamp | Meta::SourceTimestamp) { &ms } else { &PLAIN };
                    read_value(&mut Parser::at(bytes, at), column, enc, &cx).map_err(|e| e.in_field(key))?
                }
                None => column.push_null().map_err(DecodeError::new)?,
            }
        }
        Ok(())
    }
}

fn replica_identity(what: &str) -> DecodeError {
    DecodeError::new(format!(
        "the \"before\" field of this {what} message is null; if it comes from Debezium's PostgreSQL connector, set the table's REPLICA IDENTITY to FULL (ALTER TABLE … REPLICA IDENTITY FULL) so updates and deletes carry the old row"
    ))
}

#[derive(Default)]
struct RootKeys {
    /// The object holds `op`, `before` or `after`.
    envelope: bool,
    schema: bool,
    payload: bool,
}

enum RootKey {
    Schema,
    Payload,
    Other,
}

impl RootKeys {
    fn note(&mut self, key: &str) -> RootKey {
        match key {
            "schema" => {
                self.schema = true;
                RootKey::Schema
            }
            "payload" => {
                self.payload = true;
                RootKey::Payload
            }
            "op" | "before" | "after" => {
                self.envelope = true;
                RootKey::Other
            }
            _ => RootKey::Other,
        }
    }
}

struct Outcome {
    op: Option<String>,
    before_null: bool,
    after_null: bool,
    /// The payload looked like `{"schema":…,"payload":…}` itself.
    envelope_inside: bool,
}

/// Reads `{"before":…,"after":…,"op":…}` into the two sets (one row each), noting where the
/// metadata values are.
fn read_payload(
    p: &mut Parser<'_>,
    names: &Names,
    sets: &mut [Vec<Column>; 2],
    row: usize,
    enc: &Enc,
    cx: &Cx,
    spans: &mut Spans,
) -> std::result::Result<Outcome, DecodeError> {
    match p.peek()? {
        Token::Object => {}
        other => return Err(DecodeError::new(format!("expected a JSON object, found {}", other.describe()))),
    }
    p.begin_object()?;
    let mut op = None;
    let mut seen = [false; 2];
    let mut null = [true; 2];
    let mut root_keys = RootKeys::default();
    let mut first = true;
    loop {
        enum Key {
            Set(usize),
            Op,
            Source,
            TsMs,
            Other,
        }
        let key = match p.next_key(first)? {
            None => break,
            Some(k) => {
                root_keys.note(k);
                match k {
                    "before" => Key::Set(BEFORE),
                    "after" => Key::Set(AFTER),
                    "op" => Key::Op,
                    "source" => Key::Source,
                    "ts_ms" => Key::TsMs,
                    _ => Key::Other,
                }
            }
        };
        first = false;
        match key {
            Key::Set(s) => {
                let name = if s == BEFORE { "before" } else { "after" };
                if seen[s] {
                    truncate_all(&mut sets[s], row);
                }
                seen[s] = true;
                match p.peek()? {
                    Token::Null => {
                        p.null()?;
                        null[s] = true;
                        push_null_row(&mut sets[s]).map_err(|e| e.in_field(name))?;
                    }
                    Token::Object => {
                        null[s] = false;
                        read_fields(p, names, &mut sets[s], row, enc, cx).map_err(|e| e.in_field(name))?;
                    }
                    other => {
                        return Err(DecodeError::new(format!("expected an object or null, found {}", other.describe()))
                            .in_field(name))
                    }
                }
            }
            Key::Op => match p.peek()? {
                Token::String => op = Some(p.string()?.to_string()),
                _ => {
                    p.skip()?;
                    op = None;
                }
            },
            Key::Source => {
                p.peek()?;
                spans.source = Some(p.pos());
                p.skip()?;
            }
            Key::TsMs => {
                p.peek()?;
                spans.ts_ms = Some(p.pos());
                p.skip()?;
            }
            Key::Other => p.skip()?,
        }
    }
    for s in [BEFORE, AFTER] {
        if !seen[s] {
            push_null_row(&mut sets[s])?;
        }
    }
    Ok(Outcome {
        op,
        before_null: null[BEFORE],
        after_null: null[AFTER],
        envelope_inside: root_keys.schema && root_keys.payload,
    })
}

fn push_null_row(columns: &mut [Column]) -> std::result::Result<(), DecodeError> {
    columns.iter_mut().try_for_each(|c| c.push_null()).map_err(DecodeError::new)
}

/// Where the value of `key` starts inside the object at `at`, if it has one.
fn find_key(bytes: &[u8], at: usize, key: &str) -> std::result::Result<Option<usize>, DecodeError> {
    let mut p = Parser::at(bytes, at);
    if p.peek()? != Token::Object {
        return Ok(None);
    }
    p.begin_object()?;
    let mut first = true;
    loop {
        let found = match p.next_key(first)? {
            None => return Ok(None),
            Some(k) => k == key,
        };
        first = false;
        if found {
            p.peek()?;
            return Ok(Some(p.pos()));
        }
        p.skip()?;
    }
}

/// The last schema's bytes and what it says about the columns.
#[derive(Default)]
struct SchemaCache {
    bytes: Vec<u8>,
    enc: Option<Enc>,
    /// How many schemas were interpreted (each distinct one once in a row).
    interpreted: usize,
}

/// What the message's schema says about the columns: the cached answer when its bytes are
/// those of the previous message's schema.
fn encoding<'c>(
    cache: &'c mut SchemaCache,
    names: &Names,
    types: &[DataType],
    schema: &[u8],
) -> std::result::Result<&'c Enc, DecodeError> {
    if cache.enc.is_none() || cache.bytes != schema {
        cache.enc = None;
        let enc = interpret(schema, names, types).map_err(|e| e.in_field("schema"))?;
        cache.bytes.clear();
        cache.bytes.extend_from_slice(schema);
        cache.interpreted += 1;
        cache.enc = Some(enc);
    }
    cache.enc.as_ref().ok_or_else(|| DecodeError::new("internal: schema cache is empty"))
}

/// Kafka Connect's schema of the envelope → the encoding of each column's values.
fn interpret(schema: &[u8], names: &Names, types: &[DataType]) -> std::result::Result<Enc, DecodeError> {
    let v: Value = serde_json::from_slice(schema).map_err(|e| DecodeError::new(format!("not a JSON schema: {e}")))?;
    if v.is_null() {
        return Ok(Enc::Fields(vec![Enc::Plain; names.len()]));
    }
    let envelope = v.get("fields").and_then(Value::as_array);
    let row = envelope.and_then(|fields| {
        let find = |name: &str| fields.iter().find(|f| f.get("field").and_then(Value::as_str) == Some(name));
        find("after").or_else(|| find("before"))
    });
    let fields = row.and_then(|r| r.get("fields")).and_then(Value::as_array);
    let encs = (0..names.len())
        .map(|i| {
            fields
                .and_then(|fs| fs.iter().find(|f| f.get("field").and_then(Value::as_str) == Some(names.name(i))))
                .map(|f| enc_of(f, &types[i]))
                .unwrap_or(Enc::Plain)
        })
        .collect();
    Ok(Enc::Fields(encs))
}

/// The encoding one field's Connect schema announces, for a column of type `dt`.
fn enc_of(field: &Value, dt: &DataType) -> Enc {
    let name = field.get("name").and_then(Value::as_str).unwrap_or("");
    match name {
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => return Enc::EpochDays,
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
            return Enc::Epoch(TimeUnit::Millisecond)
        }
        "io.debezium.time.MicroTimestamp" => return Enc::Epoch(TimeUnit::Microsecond),
        "io.debezium.time.NanoTimestamp" => return Enc::Epoch(TimeUnit::Nanosecond),
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => return Enc::TimeOfDay(TimeUnit::Millisecond),
        "io.debezium.time.MicroTime" => return Enc::TimeOfDay(TimeUnit::Microsecond),
        "io.debezium.time.NanoTime" => return Enc::TimeOfDay(TimeUnit::Nanosecond),
        "io.debezium.data.VariableScaleDecimal" => return Enc::VariableScaleDecimal,
        "org.apache.kafka.connect.data.Decimal" => {
            let scale = field.get("parameters").and_then(|p| p.get("scale")).and_then(|s| match s {
                Value::String(t) => t.trim().parse::<i64>().ok(),
                Value::Number(n) => n.as_i64(),
                _ => None,
            });
            return Enc::DecimalBytes(scale.unwrap_or(0));
        }
        // ZonedTimestamp, ZonedTime, IsoDate, IsoTime, IsoTimestamp are text the readers parse.
        _ => {}
    }
    match (field.get("type").and_then(Value::as_str), dt) {
        (Some("array"), DataType::List(item)) => match field.get("items") {
            Some(items) => Enc::Items(Box::new(enc_of(items, item.data_type()))),
            None => Enc::Plain,
        },
        (Some("struct"), DataType::Struct(children)) => {
            let fields = field.get("fields").and_then(Value::as_array);
            Enc::Fields(
                children
                    .iter()
                    .map(|c| {
                        fields
                            .and_then(|fs| fs.iter().find(|f| f.get("field").and_then(Value::as_str) == Some(c.name())))
                            .map(|f| enc_of(f, c.data_type()))
                            .unwrap_or(Enc::Plain)
                    })
                    .collect(),
            )
        }
        _ => Enc::Plain,
    }
}

impl Decoder for DebeziumDecoder {
    fn decode(&mut self, value: Option<&[u8]>, kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        let Some(bytes) = value else { return Ok(0) };
        if Parser::new(bytes).at_end() {
            // Flink skips empty messages as it skips tombstones.
            return Ok(0);
        }
        let (messages, picks, kinds_len) = (self.messages, self.picks.len(), kinds.len());
        let result = self.message(bytes, kinds);
        if result.is_err() {
            self.rollback(messages, picks);
            kinds.truncate(kinds_len);
        }
        result
    }

    fn finish(&mut self) -> Result<Vec<ArrayRef>> {
        let picks = std::mem::take(&mut self.picks);
        self.messages = 0;
        let inserts_only = picks.iter().enumerate().all(|(i, (set, m))| *set == AFTER && *m == i);
        let [before, after] = &mut self.sets;
        let before = finish_all(before)?;
        let after = finish_all(after)?;
        let mut out = Vec::with_capacity(before.len() + self.meta.len());
        for (b, a) in before.iter().zip(after) {
            out.push(if inserts_only && a.len() == picks.len() {
                a
            } else {
                interleave(&[b.as_ref(), a.as_ref()], &picks)?
            });
        }
        let one_per_message = picks.iter().enumerate().all(|(i, (_, m))| *m == i);
        let indices = UInt32Array::from_iter_values(picks.iter().map(|(_, m)| *m as u32));
        for (_, column) in &mut self.meta {
            let values = column.finish()?;
            out.push(if one_per_message && values.len() == picks.len() {
                values
            } else {
                take(values.as_ref(), &indices, None)?
            });
        }
        Ok(out)
    }
}

pub(crate) struct DebeziumEncoder {
    keys: Vec<Vec<u8>>,
    style: Style,
}

impl DebeziumEncoder {
    pub(crate) fn new(schema: SchemaRef, options: &JsonOptions) -> Result<Self> {
        let style = style(options);
        check_schema(&schema, &style, "the debezium-json format")?;
        Ok(DebeziumEncoder { keys: field_keys(&schema), style })
    }
}

impl Encoder for DebeziumEncoder {
    fn encode(&mut self, rows: &RecordBatch, kinds: &[RowKind], out: &mut Messages) -> Result<()> {
        if kinds.len() != rows.num_rows() {
            return Err(Error::internal(format!(
                "debezium-json encoder got {} rows and {} row kinds",
                rows.num_rows(),
                kinds.len()
            )));
        }
        let writer = RowWriter::new(&self.keys, rows.columns(), &self.style)?;
        let mark = (out.bytes.len(), out.messages.len());
        let skip_nulls = self.style.ignore_null_fields;
        for (row, kind) in kinds.iter().enumerate() {
            let start = out.start();
            let b = &mut out.bytes;
            let written = if kind.is_addition() {
                b.extend_from_slice(if skip_nulls { b"{\"after\":" } else { b"{\"before\":null,\"after\":" });
                let r = writer.write(row, b);
                b.extend_from_slice(b",\"op\":\"c\"}");
                r
            } else {
                b.extend_from_slice(b"{\"before\":");
                let r = writer.write(row, b);
                b.extend_from_slice(if skip_nulls { b",\"op\":\"d\"}" } else { b",\"after\":null,\"op\":\"d\"}" });
                r
            };
            if let Err(e) = written {
                out.bytes.truncate(mark.0);
                out.messages.truncate(mark.1);
                return Err(e.context(format!("row {row}")));
            }
            out.push_from(row, start);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn an_identical_schema_is_interpreted_once() {
        let columns = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
        let options = JsonOptions { schema_include: true, ..JsonOptions::default() };
        let mut d = DebeziumDecoder::new(&columns, &[], &options).unwrap();
        let schema = |name: &str| {
            format!(
                r#"{{"type":"struct","fields":[{{"type":"struct","field":"after","fields":[{{"type":"int32","name":"{name}","field":"d"}}]}}]}}"#
            )
        };
        let message = |schema: &str| format!(r#"{{"schema":{schema},"payload":{{"op":"c","after":{{"d":1}}}}}}"#);
        let days = message(&schema("io.debezium.time.Date"));
        let mut kinds = Vec::new();
        for m in [&days, &days, &days] {
            d.decode(Some(m.as_bytes()), &mut kinds).unwrap();
        }
        assert_eq!(d.schema_cache.interpreted, 1);
        d.decode(Some(message(&schema("org.apache.kafka.connect.data.Date")).as_bytes()), &mut kinds).unwrap();
        d.decode(Some(days.as_bytes()), &mut kinds).unwrap();
        assert_eq!(d.schema_cache.interpreted, 3);
        assert_eq!(d.finish().unwrap()[0].len(), 5);
    }
}
