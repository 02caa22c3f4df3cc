//! `canal-json`: Alibaba Canal's flat messages, `{"data": [{…}, …], "old": [{…}, …], "type":
//! "UPDATE", "database": …, "table": …, "isDdl": false, …}`. Canal writes every value as a string
//! (`"id": "111"`), which the JSON readers accept for every type.
//!
//! Rows, as Flink's `CanalJsonDeserializationSchema`: INSERT → +I per `data` row; UPDATE → per
//! row a -U (the `data` row with the fields listed in the matching `old` row replaced by their old
//! values: Canal lists only the changed fields there) then a +U (the `data` row); DELETE → -D per
//! row. DDL (`"isDdl": true`, or a `type` such as CREATE, ALTER, ERASE, TRUNCATE, QUERY) is
//! skipped, as are messages whose `database` / `table` do not fully match
//! `canal-json.database.include` / `canal-json.table.include`.
//!
//! Writing, as Flink's `CanalJsonSerializationSchema`: +I and +U → `{"data":[{…}],"type":"INSERT"}`,
//! -U and -D → `{"data":[{…}],"type":"DELETE"}`.

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::{interleave, take};
use datafusion::arrow::datatypes::{SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::json::column::{columns_of, Column, Names};
use super::json::decode::{read_fields, read_value, Cx, Enc, PLAIN};
use super::json::parser::{Parser, Token};
use super::json::write::{check_schema, field_keys, RowWriter, Style};
use super::json::{cx, finish_all, style, truncate_all};
use super::{DecodeError, Decoder, Encoder, JsonOptions, Messages};
use crate::changelog::RowKind;
use crate::error::{Error, Result};

/// Canal's event types that change no rows.
const NON_ROW_TYPES: &[&str] = &[
    "CREATE",
    "ALTER",
    "ERASE",
    "QUERY",
    "TRUNCATE",
    "RENAME",
    "CINDEX",
    "DINDEX",
    "GTID",
    "XACOMMIT",
    "XAROLLBACK",
    "MHEARTBEAT",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Database,
    Table,
    SqlType,
    PkNames,
    IngestionTimestamp,
    EventTimestamp,
}

impl Meta {
    fn of(key: &str) -> Option<Meta> {
        Some(match key {
            "database" => Meta::Database,
            "table" => Meta::Table,
            "sql-type" => Meta::SqlType,
            "pk-names" => Meta::PkNames,
            "ingestion-timestamp" => Meta::IngestionTimestamp,
            "event-timestamp" => Meta::EventTimestamp,
            _ => return None,
        })
    }

    /// The message field the metadata reads.
    fn field(self) -> &'static str {
        match self {
            Meta::Database => "database",
            Meta::Table => "table",
            Meta::SqlType => "sqlType",
            Meta::PkNames => "pkNames",
            Meta::IngestionTimestamp => "ts",
            Meta::EventTimestamp => "es",
        }
    }
}

pub(crate) struct CanalDecoder {
    names: Names,
    data: Vec<Column>,
    /// Aligned with `data`: the old values of UPDATE rows (NULL rows otherwise).
    old: Vec<Column>,
    /// Row-major, `names.len()` per row: whether the `old` row listed the field.
    old_listed: Vec<bool>,
    rows: usize,
    meta: Vec<(Meta, Column)>,
    messages: usize,
    /// Output rows: (row of `data`/`old`, kind, message).
    picks: Vec<(usize, RowKind, usize)>,
    database_include: Option<regex::Regex>,
    table_include: Option<regex::Regex>,
    cx: Cx,
}

/// What one message said besides its rows.
#[derive(Default)]
struct Header {
    kind: Option<String>,
    is_ddl: bool,
    database: Option<String>,
    table: Option<String>,
    /// Where the values metadata reads start (by [`Meta`] field).
    spans: Vec<(&'static str, usize)>,
}

impl CanalDecoder {
    pub(crate) fn new(columns: &SchemaRef, metadata: &[String], options: &JsonOptions) -> Result<Self> {
        let names = Names::new(columns.fields().iter().map(|f| f.name().clone()).collect());
        let meta = metadata
            .iter()
            .map(|key| {
                let m = Meta::of(key).ok_or_else(|| Error::internal(format!("canal-json metadata '{key}'")))?;
                let (_, dt) = super::CANAL_METADATA
                    .iter()
                    .find(|(k, _)| k == key)
                    .ok_or_else(|| Error::internal(format!("canal-json metadata '{key}' has no type")))?;
                Ok((m, Column::new(&dt(), true)?))
            })
            .collect::<Result<_>>()?;
        let mut cx = cx(options);
        cx.fail_on_missing_field = false;
        Ok(CanalDecoder {
            data: columns_of(columns.fields())?,
            old: columns_of(columns.fields())?,
            old_listed: Vec::new(),
            names,
            rows: 0,
            meta,
            messages: 0,
            picks: Vec::new(),
            database_include: options.database_include.clone(),
            table_include: options.table_include.clone(),
            cx,
        })
    }

    fn rollback(&mut self, rows: usize, messages: usize, picks: usize) {
        truncate_all(&mut self.data, rows);
        truncate_all(&mut self.old, rows);
        self.old_listed.truncate(rows * self.names.len());
        self.meta.iter_mut().for_each(|(_, c)| c.truncate(messages));
        self.rows = rows;
        self.messages = messages;
        self.picks.truncate(picks);
    }

    /// Reads `"data"` or `"old"`: an array of row objects, or null.
    fn read_rows(&mut self, p: &mut Parser<'_>, old: bool, start: usize) -> std::result::Result<(), DecodeError> {
        let name = if old { "old" } else { "data" };
        let n = self.names.len();
        // A repeated key: its last value wins.
        if old {
            truncate_all(&mut self.old, start);
            self.old_listed.truncate(start * n);
        } else {
            truncate_all(&mut self.data, start);
        }
        match p.peek()? {
            Token::Null => return p.null(),
            Token::Array => {}
            other => {
                return Err(
                    DecodeError::new(format!("expected an array of rows, found {}", other.describe())).in_field(name)
                )
            }
        }
        p.begin_array()?;
        let mut first = true;
        let mut i = 0;
        while p.next_item(first)? {
            first = false;
            let columns = if old { &mut self.old } else { &mut self.data };
            let row = columns.first().map_or(start + i, |c| c.len());
            if p.peek()? != Token::Object {
                return Err(DecodeError::new(format!("expected a row object, found {}", p.peek()?.describe()))
                    .at_index(i)
                    .in_field(name));
            }
            let seen = read_fields(p, &self.names, columns, row, &PLAIN, &self.cx)
                .map_err(|e| e.at_index(i).in_field(name))?;
            if old {
                self.old_listed.extend_from_slice(&seen);
            }
            i += 1;
        }
        Ok(())
    }

    fn message(&mut self, bytes: &[u8], kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        let mut p = Parser::new(bytes);
        match p.peek()? {
            Token::Object => {}
            other => return Err(DecodeError::new(format!("expected a JSON object, found {}", other.describe()))),
        }
        let start = self.rows;
        let mut header = Header::default();
        p.begin_object()?;
        let mut first = true;
        loop {
            enum Key {
                Data,
                Old,
                Type,
                IsDdl,
                Database,
                Table,
                Meta(&'static str),
                Other,
            }
            let key = match p.next_key(first)? {
                None => break,
                Some("data") => Key::Data,
                Some("old") => Key::Old,
                Some("type") => Key::Type,
                Some("isDdl") => Key::IsDdl,
                Some("database") => Key::Database,
                Some("table") => Key::Table,
                Some(k) => match self.meta.iter().find(|(m, _)| m.field() == k) {
                    Some((m, _)) => Key::Meta(m.field()),
                    None => Key::Other,
                },
            };
            first = false;
            match key {
                Key::Data => self.read_rows(&mut p, false, start)?,
                Key::Old => self.read_rows(&mut p, true, start)?,
                Key::Type => header.kind = optional_string(&mut p).map_err(|e| e.in_field("type"))?,
                Key::IsDdl => {
                    header.is_ddl = match p.peek()? {
                        Token::True | Token::False => p.boolean()?,
                        _ => {
                            p.skip()?;
                            false
                        }
                    }
                }
                Key::Database => header.database = optional_string(&mut p).map_err(|e| e.in_field("database"))?,
                Key::Table => header.table = optional_string(&mut p).map_err(|e| e.in_field("table"))?,
                Key::Meta(field) => {
                    p.peek()?;
                    header.spans.push((field, p.pos()));
                    p.skip()?;
                }
                Key::Other => p.skip()?,
            }
        }
        p.finish()?;
        let data_rows = self.data.first().map_or(0, |c| c.len()) - start;
        let matches = |pattern: &Option<regex::Regex>, value: &Option<String>| {
            pattern.as_ref().is_none_or(|re| re.is_match(value.as_deref().unwrap_or("")))
        };
        let kind = match header.kind.as_deref() {
            _ if header.is_ddl => None,
            _ if !matches(&self.database_include, &header.database) || !matches(&self.table_include, &header.table) => {
                None
            }
            Some("INSERT") => Some(RowKind::Insert),
            Some("UPDATE") => Some(RowKind::UpdateAfter),
            Some("DELETE") => Some(RowKind::Delete),
            Some(t) if NON_ROW_TYPES.contains(&t) => None,
            Some(t) => {
                return Err(DecodeError::new(format!(
                    "unknown \"type\" value \"{}\"; expected INSERT, UPDATE, DELETE or a DDL type",
                    super::excerpt(t.as_bytes(), 20)
                )))
            }
            None => return Err(DecodeError::new("the message has no \"type\" field (not a Canal message?)")),
        };
        let Some(kind) = kind else {
            // Skipped: leave nothing behind.
            self.rollback(start, self.messages, self.picks.len());
            return Ok(0);
        };
        // `old` gets exactly one row per `data` row: missing ones list no fields.
        let n = self.names.len();
        let old_rows = self.old.first().map_or(0, |c| c.len()) - start;
        if old_rows > data_rows {
            truncate_all(&mut self.old, start + data_rows);
            self.old_listed.truncate((start + data_rows) * n);
        }
        for _ in old_rows..data_rows {
            self.old.iter_mut().try_for_each(|c| c.push_null()).map_err(DecodeError::new)?;
            self.old_listed.extend(std::iter::repeat_n(false, n));
        }
        if self.names.len() == 0 {
            // No columns to count rows by: nothing to emit.
            return Ok(0);
        }
        self.read_metadata(bytes, &header)?;
        let m = self.messages;
        for r in start..start + data_rows {
            if kind == RowKind::UpdateAfter {
                self.picks.push((r, RowKind::UpdateBefore, m));
                kinds.push(RowKind::UpdateBefore);
            }
            self.picks.push((r, kind, m));
            kinds.push(kind);
        }
        self.rows = start + data_rows;
        self.messages += 1;
        Ok(if kind == RowKind::UpdateAfter { 2 * data_rows } else { data_rows })
    }

    fn read_metadata(&mut self, bytes: &[u8], header: &Header) -> std::result::Result<(), DecodeError> {
        let ms = Enc::Epoch(TimeUnit::Millisecond);
        for (meta, column) in &mut self.meta {
            let text = match meta {
                Meta::Database => Some(&header.database),
                Meta::Table => Some(&header.table),
                _ => None,
            };
            if let Some(text) = text {
                match text {
                    Some(t) => column.push_bytes(t.as_bytes()),
                    None => column.push_null(),
                }
                .map_err(DecodeError::new)?;
                continue;
            }
            let field = meta.field();
            match header.spans.iter().rev().find(|(f, _)| *f == field) {
                Some((_, at)) => {
                    let enc =
                        if matches!(meta, Meta::IngestionTimestamp | Meta::EventTimestamp) { &ms } else { &PLAIN };
                    read_value(&mut Parser::at(bytes, *at), column, enc, &self.cx).map_err(|e| e.in_field(field))?
                }
                None => column.push_null().map_err(DecodeError::new)?,
            }
        }
        Ok(())
    }
}

fn optional_string(p: &mut Parser<'_>) -> std::result::Result<Option<String>, DecodeError> {
    match p.peek()? {
        Token::String => Ok(Some(p.string()?.to_string())),
        Token::Null => p.null().map(|_| None),
        other => Err(DecodeError::new(format!("expected a string, found {}", other.describe()))),
    }
}

impl Decoder for CanalDecoder {
    fn decode(&mut self, value: Option<&[u8]>, kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        let Some(bytes) = value else { return Ok(0) };
        if Parser::new(bytes).at_end() {
            return Ok(0);
        }
        let (rows, messages, picks, kinds_len) = (self.rows, self.messages, self.picks.len(), kinds.len());
        let result = self.message(bytes, kinds);
        if result.is_err() {
            self.rollback(rows, messages, picks);
            kinds.truncate(kinds_len);
        }
        result
    }

    fn finish(&mut self) -> Result<Vec<ArrayRef>> {
        let picks = std::mem::take(&mut self.picks);
        let listed = std::mem::take(&mut self.old_listed);
        self.rows = 0;
        self.messages = 0;
        let n = self.names.len();
        let data = finish_all(&mut self.data)?;
        let old = finish_all(&mut self.old)?;
        let plain = picks.iter().enumerate().all(|(i, (r, kind, _))| *r == i && *kind != RowKind::UpdateBefore);
        let mut out = Vec::with_capacity(n + self.meta.len());
        for (c, (d, o)) in data.iter().zip(&old).enumerate() {
            if plain && d.len() == picks.len() {
                out.push(d.clone());
                continue;
            }
            let indices: Vec<(usize, usize)> = picks
                .iter()
                .map(|(r, kind, _)| {
                    if *kind == RowKind::UpdateBefore && listed.get(r * n + c).copied().unwrap_or(false) {
                        (1, *r)
                    } else {
                        (0, *r)
                    }
                })
                .collect();
            out.push(interleave(&[d.as_ref(), o.as_ref()], &indices)?);
        }
        let one_per_message = picks.iter().enumerate().all(|(i, (_, _, m))| *m == i);
        let indices = UInt32Array::from_iter_values(picks.iter().map(|(_, _, m)| *m as u32));
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

pub(crate) struct CanalEncoder {
    keys: Vec<Vec<u8>>,
    style: Style,
}

impl CanalEncoder {
    pub(crate) fn new(schema: SchemaRef, options: &JsonOptions) -> Result<Self> {
        let style = style(options);
        check_schema(&schema, &style, "the canal-json format")?;
        Ok(CanalEncoder { keys: field_keys(&schema), style })
    }
}

impl Encoder for CanalEncoder {
    fn encode(&mut self, rows: &RecordBatch, kinds: &[RowKind], out: &mut Messages) -> Result<()> {
        if kinds.len() != rows.num_rows() {
            return Err(Error::internal(format!(
                "canal-json encoder got {} rows and {} row kinds",
                rows.num_rows(),
                kinds.len()
            )));
        }
        let writer = RowWriter::new(&self.keys, rows.columns(), &self.style)?;
        let mark = (out.bytes.len(), out.messages.len());
        for (row, kind) in kinds.iter().enumerate() {
            let start = out.start();
            out.bytes.extend_from_slice(b"{\"data\":[");
            if let Err(e) = writer.write(row, &mut out.bytes) {
                out.bytes.truncate(mark.0);
                out.messages.truncate(mark.1);
                return Err(e.context(format!("row {row}")));
            }
            out.bytes.extend_from_slice(if kind.is_addition() {
                b"],\"type\":\"INSERT\"}"
            } else {
                b"],\"type\":\"DELETE\"}"
            });
            out.push_from(row, start);
        }
        Ok(())
    }
}
