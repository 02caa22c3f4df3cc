//! The `json` format: one JSON object per row, keyed by column name (a top-level array holds
//! several rows, as Flink reads it). Also the JSON machinery the other JSON formats share: the
//! pull [`parser`], value conversion ([`decode`], [`text`]), the growable [`column`]s and the
//! Arrow → JSON [`write`]r (used by the doris sink too).

pub(crate) mod column;
pub(crate) mod decode;
pub(crate) mod parser;
pub(crate) mod text;
pub mod write;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use self::column::{columns_of, Column, Names};
use self::decode::{read_fields, Cx, PLAIN};
use self::parser::{Parser, Token};
pub use self::write::MapNullKeyMode;
use self::write::{check_schema, field_keys, DecimalStyle, Fraction, RowWriter, Style};
use super::{DecodeError, Decoder, Encoder, JsonOptions, Messages};
use crate::changelog::RowKind;
use crate::error::Result;

/// Flink's `timestamp-format.standard`: how TIMESTAMP and TIMESTAMP_LTZ values are written.
/// (Reading accepts all three shapes.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStandard {
    /// `2020-12-30 12:13:14.123`, LTZ with a trailing `Z`.
    Sql,
    /// `2020-12-30T12:13:14.123`, LTZ with a trailing `Z`.
    Iso8601,
    /// `2020-12-30T12:13:14.123Z` for both.
    Iso8601WithOffset,
}

/// The written shape of the JSON formats' values.
pub(crate) fn style(options: &JsonOptions) -> Style {
    Style {
        decimal: if options.decimal_as_plain_number { DecimalStyle::PlainNumber } else { DecimalStyle::Number },
        bytes_as_base64: true,
        timestamp_separator: if options.timestamp_standard == TimestampStandard::Sql { b' ' } else { b'T' },
        fraction: Fraction::Minimal,
        instant_suffix: true,
        local_suffix: options.timestamp_standard == TimestampStandard::Iso8601WithOffset,
        map_null_key: options.map_null_key_mode,
        map_null_key_literal: options.map_null_key_literal.clone(),
        ignore_null_fields: options.ignore_null_fields,
    }
}

pub(crate) fn cx(options: &JsonOptions) -> Cx {
    Cx {
        ignore_parse_errors: options.ignore_parse_errors,
        fail_on_missing_field: options.fail_on_missing_field,
        debezium: false,
    }
}

/// Names and columns of a schema's fields.
pub(crate) fn physical(columns: &SchemaRef) -> Result<(Names, Vec<Column>)> {
    let names = Names::new(columns.fields().iter().map(|f| f.name().clone()).collect());
    Ok((names, columns_of(columns.fields())?))
}

/// Rolls `columns` back to `len` rows.
pub(crate) fn truncate_all(columns: &mut [Column], len: usize) {
    columns.iter_mut().for_each(|c| c.truncate(len));
}

pub(crate) fn finish_all(columns: &mut [Column]) -> Result<Vec<ArrayRef>> {
    columns.iter_mut().map(|c| c.finish()).collect()
}

pub(crate) struct JsonDecoder {
    names: Names,
    columns: Vec<Column>,
    rows: usize,
    cx: Cx,
}

impl JsonDecoder {
    pub(crate) fn new(columns: &SchemaRef, options: &JsonOptions) -> Result<Self> {
        let (names, columns) = physical(columns)?;
        Ok(JsonDecoder { names, columns, rows: 0, cx: cx(options) })
    }

    fn row(&mut self, p: &mut Parser<'_>) -> std::result::Result<(), DecodeError> {
        read_fields(p, &self.names, &mut self.columns, self.rows, &PLAIN, &self.cx)?;
        self.rows += 1;
        Ok(())
    }

    fn message(&mut self, p: &mut Parser<'_>, kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        let start = self.rows;
        match p.peek()? {
            Token::Object => self.row(p)?,
            // Flink reads a top-level array as one row per element.
            Token::Array => {
                p.begin_array()?;
                let mut first = true;
                let mut i = 0;
                while p.next_item(first)? {
                    first = false;
                    match p.peek()? {
                        Token::Null => p.null()?,
                        Token::Object => self.row(p).map_err(|e| e.at_index(i))?,
                        other => {
                            return Err(DecodeError::new(format!(
                                "expected an object (one row) at index {i} of the top-level array, found {}",
                                other.describe()
                            )))
                        }
                    }
                    i += 1;
                }
            }
            Token::Null => p.null()?,
            other => {
                return Err(DecodeError::new(format!(
                    "expected a JSON object (one row), found {} at the top level",
                    other.describe()
                )))
            }
        }
        p.finish()?;
        let n = self.rows - start;
        kinds.extend(std::iter::repeat_n(RowKind::Insert, n));
        Ok(n)
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, value: Option<&[u8]>, kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        let Some(bytes) = value else { return Ok(0) };
        let mut p = Parser::new(bytes);
        if p.at_end() {
            return Ok(0);
        }
        let (rows, kinds_len) = (self.rows, kinds.len());
        let result = self.message(&mut p, kinds);
        if result.is_err() {
            truncate_all(&mut self.columns, rows);
            self.rows = rows;
            kinds.truncate(kinds_len);
        }
        result
    }

    fn finish(&mut self) -> Result<Vec<ArrayRef>> {
        self.rows = 0;
        finish_all(&mut self.columns)
    }
}

pub(crate) struct JsonEncoder {
    keys: Vec<Vec<u8>>,
    style: Style,
}

impl JsonEncoder {
    pub(crate) fn new(schema: SchemaRef, options: &JsonOptions) -> Result<Self> {
        let style = style(options);
        check_schema(&schema, &style, "the json format")?;
        Ok(JsonEncoder { keys: field_keys(&schema), style })
    }
}

impl Encoder for JsonEncoder {
    fn encode(&mut self, rows: &RecordBatch, _kinds: &[RowKind], out: &mut Messages) -> Result<()> {
        let writer = RowWriter::new(&self.keys, rows.columns(), &self.style)?;
        let mark = (out.bytes.len(), out.messages.len());
        for row in 0..rows.num_rows() {
            let start = out.start();
            if let Err(e) = writer.write(row, &mut out.bytes) {
                out.bytes.truncate(mark.0);
                out.messages.truncate(mark.1);
                return Err(e.context(format!("row {row}")));
            }
            out.push_from(row, start);
        }
        Ok(())
    }
}
