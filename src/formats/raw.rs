//! `raw`: the whole message is the value of the table's single column, as Flink's raw format:
//! STRING as text in `raw.charset` (UTF-8 by default; bytes that are not valid in the charset are
//! an error, never replaced), BYTES as they are, BOOLEAN as one byte 0/1, TINYINT…BIGINT, FLOAT
//! and DOUBLE as fixed-width numbers in `raw.endianness` (big-endian by default). A null message
//! is a NULL value and a NULL value is written as a null message.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;

use super::json::column::{columns_of, Column};
use super::{excerpt, DecodeError, Decoder, Encoder, Messages, RawOptions};
use crate::changelog::RowKind;
use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;

/// The charsets `raw.charset` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    Utf8,
    Ascii,
    Latin1,
}

impl Charset {
    /// Java's names and common aliases, without case.
    pub(crate) fn parse(name: &str) -> Option<Charset> {
        match name.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "UTF-8" | "UTF8" => Some(Charset::Utf8),
            "US-ASCII" | "ASCII" => Some(Charset::Ascii),
            "ISO-8859-1" | "ISO8859-1" | "LATIN1" | "LATIN-1" => Some(Charset::Latin1),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Ascii => "US-ASCII",
            Charset::Latin1 => "ISO-8859-1",
        }
    }
}

const SUPPORTED: &str = "STRING, BYTES, BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT or DOUBLE";

/// Checks the table has exactly one column of a type raw reads and writes.
fn single_column(schema: &SchemaRef) -> Result<&Field> {
    let [field] = schema.fields().as_ref() else {
        return Err(Error::user(format!(
            "the raw format holds exactly one column, but the table declares {} ({}); use the json format for several",
            schema.fields().len(),
            schema.fields().iter().map(|f| format!("`{}`", f.name())).collect::<Vec<_>>().join(", ")
        )));
    };
    match field.data_type() {
        DataType::Utf8
        | DataType::Binary
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64 => Ok(field),
        other => Err(Error::user(format!(
            "column `{}` has type {}, which the raw format cannot hold; it reads and writes {SUPPORTED}",
            field.name(),
            flink_type_name(other)
        ))),
    }
}

pub(crate) struct RawDecoder {
    column: Column,
    options: RawOptions,
}

impl RawDecoder {
    pub(crate) fn new(columns: &SchemaRef, options: RawOptions) -> Result<Self> {
        single_column(columns)?;
        let column = columns_of(columns.fields())?.remove(0);
        Ok(RawDecoder { column, options })
    }

    fn fixed<const N: usize>(&self, bytes: &[u8]) -> std::result::Result<[u8; N], DecodeError> {
        let mut b: [u8; N] = bytes.try_into().map_err(|_| {
            DecodeError::new(format!(
                "expected {N} bytes for {}, found {} (`{}`)",
                flink_type_name(self.column.data_type()),
                bytes.len(),
                excerpt(bytes, 24)
            ))
        })?;
        if !self.options.big_endian {
            b.reverse();
        }
        Ok(b)
    }

    fn value(&mut self, bytes: &[u8]) -> std::result::Result<(), DecodeError> {
        let pushed = match self.column.data_type() {
            DataType::Utf8 => {
                let text = match self.options.charset {
                    Charset::Utf8 => {
                        std::str::from_utf8(bytes).map(std::borrow::Cow::Borrowed).map_err(|e| e.valid_up_to())
                    }
                    Charset::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
                        None => Ok(std::borrow::Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default())),
                        Some(at) => Err(at),
                    },
                    Charset::Latin1 => Ok(std::borrow::Cow::Owned(bytes.iter().map(|b| *b as char).collect())),
                };
                match text {
                    Ok(t) => self.column.push_bytes(t.as_bytes()),
                    Err(at) => {
                        return Err(DecodeError::new(format!(
                            "the message is not {} text: byte {at} (0x{:02x}) is invalid; set 'raw.charset' to the producer's charset, or declare the column BYTES",
                            self.options.charset.name(),
                            bytes[at]
                        )))
                    }
                }
            }
            DataType::Binary => self.column.push_bytes(bytes),
            DataType::Boolean => match self.fixed::<1>(bytes)?[0] {
                0 => self.column.push_bool(false),
                1 => self.column.push_bool(true),
                b => return Err(DecodeError::new(format!("expected byte 0 or 1 for BOOLEAN, found {b}"))),
            },
            DataType::Int8 => self.column.push_int(i8::from_be_bytes(self.fixed::<1>(bytes)?) as i128),
            DataType::Int16 => self.column.push_int(i16::from_be_bytes(self.fixed::<2>(bytes)?) as i128),
            DataType::Int32 => self.column.push_int(i32::from_be_bytes(self.fixed::<4>(bytes)?) as i128),
            DataType::Int64 => self.column.push_int(i64::from_be_bytes(self.fixed::<8>(bytes)?) as i128),
            DataType::Float32 => self.column.push_f32(f32::from_be_bytes(self.fixed::<4>(bytes)?)),
            DataType::Float64 => self.column.push_f64(f64::from_be_bytes(self.fixed::<8>(bytes)?)),
            other => return Err(DecodeError::new(format!("internal: raw decoder met {other}"))),
        };
        pushed.map_err(DecodeError::new)
    }
}

impl Decoder for RawDecoder {
    fn decode(&mut self, value: Option<&[u8]>, kinds: &mut Vec<RowKind>) -> std::result::Result<usize, DecodeError> {
        match value {
            None => self.column.push_null().map_err(DecodeError::new)?,
            Some(bytes) => self.value(bytes)?,
        }
        kinds.push(RowKind::Insert);
        Ok(1)
    }

    fn finish(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.column.finish()?])
    }
}

pub(crate) struct RawEncoder {
    options: RawOptions,
    name: String,
}

impl RawEncoder {
    pub(crate) fn new(schema: SchemaRef, options: RawOptions) -> Result<Self> {
        let name = single_column(&schema)?.name().clone();
        Ok(RawEncoder { options, name })
    }

    fn put<const N: usize>(&self, out: &mut Vec<u8>, mut b: [u8; N]) {
        if !self.options.big_endian {
            b.reverse();
        }
        out.extend_from_slice(&b);
    }
}

impl Encoder for RawEncoder {
    fn encode(&mut self, rows: &RecordBatch, _kinds: &[RowKind], out: &mut Messages) -> Result<()> {
        let [array] = rows.columns() else {
            return Err(Error::internal(format!("raw encoder got {} columns", rows.num_columns())));
        };
        let mark = (out.bytes.len(), out.messages.len());
        for row in 0..rows.num_rows() {
            if array.is_null(row) {
                out.messages.push((row as u32, None));
                continue;
            }
            let start = out.start();
            let b = &mut out.bytes;
            match array.data_type() {
                DataType::Utf8 => {
                    let text = array.as_string::<i32>().value(row);
                    match self.options.charset {
                        Charset::Utf8 => b.extend_from_slice(text.as_bytes()),
                        Charset::Ascii | Charset::Latin1 => {
                            let limit = if self.options.charset == Charset::Ascii { 0x7F } else { 0xFF };
                            for c in text.chars() {
                                if c as u32 > limit {
                                    b.truncate(mark.0);
                                    out.messages.truncate(mark.1);
                                    return Err(Error::user(format!(
                                        "column `{}` row {row}: '{c}' cannot be written in {} ('raw.charset'); use UTF-8",
                                        self.name,
                                        self.options.charset.name()
                                    )));
                                }
                                b.push(c as u8);
                            }
                        }
                    }
                }
                DataType::Binary => b.extend_from_slice(array.as_binary::<i32>().value(row)),
                DataType::Boolean => b.push(array.as_boolean().value(row) as u8),
                DataType::Int8 => b.push(array.as_primitive::<Int8Type>().value(row) as u8),
                DataType::Int16 => self.put(b, array.as_primitive::<Int16Type>().value(row).to_be_bytes()),
                DataType::Int32 => self.put(b, array.as_primitive::<Int32Type>().value(row).to_be_bytes()),
                DataType::Int64 => self.put(b, array.as_primitive::<Int64Type>().value(row).to_be_bytes()),
                DataType::Float32 => self.put(b, array.as_primitive::<Float32Type>().value(row).to_be_bytes()),
                DataType::Float64 => self.put(b, array.as_primitive::<Float64Type>().value(row).to_be_bytes()),
                other => return Err(Error::internal(format!("raw encoder met {other}"))),
            }
            out.push_from(row, start);
        }
        Ok(())
    }
}
