//! PostgreSQL's binary COPY format, both ways, as pure byte work: Arrow columns are encoded into
//! `COPY … FROM STDIN (FORMAT binary)` tuples (the sink's staging table) and `COPY (SELECT …) TO
//! STDOUT (FORMAT binary)` tuples are decoded into Arrow builders (the scan). Each Arrow type has
//! one wire type; the SQL around it casts to and from the real column types.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, Decimal256Array, Float32Array, Float64Array,
    Int64Array, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};

use super::columns::{BatchBuilder, SourceKind};
use crate::connectors::float_decimal::Float;
use crate::connectors::pg_copy::{BinaryTuples, SIGNATURE};
use crate::error::{Error, Result};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i64 = 10_957;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Numeric,
    Date,
    Time,
    Timestamp,
    TimestampTz,
}

impl Wire {
    pub fn of(dt: &DataType) -> Option<Wire> {
        use DataType::*;
        Some(match dt {
            Boolean => Wire::Bool,
            Int8 | Int16 | UInt8 => Wire::Int2,
            Int32 | UInt16 => Wire::Int4,
            Int64 | UInt32 => Wire::Int8,
            UInt64 | Decimal128(..) | Decimal256(..) => Wire::Numeric,
            Float32 => Wire::Float4,
            Float64 => Wire::Float8,
            Utf8 => Wire::Text,
            Binary => Wire::Bytea,
            Date32 => Wire::Date,
            Time32(_) | Time64(_) => Wire::Time,
            Timestamp(_, None) => Wire::Timestamp,
            Timestamp(_, Some(_)) => Wire::TimestampTz,
            _ => return None,
        })
    }

    /// The PostgreSQL type name, as `format_type` spells it.
    pub fn sql_type(self) -> &'static str {
        match self {
            Wire::Bool => "boolean",
            Wire::Int2 => "smallint",
            Wire::Int4 => "integer",
            Wire::Int8 => "bigint",
            Wire::Float4 => "real",
            Wire::Float8 => "double precision",
            Wire::Text => "text",
            Wire::Bytea => "bytea",
            Wire::Numeric => "numeric",
            Wire::Date => "date",
            Wire::Time => "time without time zone",
            Wire::Timestamp => "timestamp without time zone",
            Wire::TimestampTz => "timestamp with time zone",
        }
    }
}

/// The wire type the scan reads a source column of `kind` declared `dt` in: the declared type's,
/// except a floating-point column declared DECIMAL, read as the float it is (then converted as
/// Flink does).
pub fn scan_wire(dt: &DataType, kind: SourceKind) -> Option<Wire> {
    match (dt, kind) {
        (DataType::Decimal128(..) | DataType::Decimal256(..), SourceKind::Float32) => Some(Wire::Float4),
        (DataType::Decimal128(..) | DataType::Decimal256(..), SourceKind::Float64 | SourceKind::Float32Widened) => {
            Some(Wire::Float8)
        }
        _ => Wire::of(dt),
    }
}

/// The select-list expression the scan reads a column of declared type `dt` with: the value cast
/// to its [`scan_wire`] (NUMERIC as text, parsed at the declared scale; times and timestamps
/// rounded by the server to the declared precision).
pub fn read_expression(quoted_column: &str, dt: &DataType, kind: SourceKind) -> Option<String> {
    let precision = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        _ => 6,
    };
    Some(match dt {
        DataType::Time32(u) | DataType::Time64(u) => format!("CAST({quoted_column} AS time({}))", precision(u)),
        DataType::Timestamp(u, None) => format!("CAST({quoted_column} AS timestamp({}))", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("CAST({quoted_column} AS timestamptz({}))", precision(u)),
        other => match scan_wire(other, kind)? {
            Wire::Numeric => format!("CAST(CAST({quoted_column} AS numeric) AS text)"),
            wire => format!("CAST({quoted_column} AS {})", wire.sql_type()),
        },
    })
}

/// What the scan must know of each column of `SELECT <columns> FROM <table>`, from the types
/// PostgreSQL gives the prepared statement's result columns; PostGIS columns are refused.
pub fn source_kinds(columns: &[tokio_postgres::Column]) -> Result<Vec<SourceKind>> {
    columns
        .iter()
        .map(|c| match c.type_().name() {
            "float4" => Ok(SourceKind::Float32),
            "float8" => Ok(SourceKind::Float64),
            "geometry" | "geography" | "_geometry" | "_geography" => Err(Error::user(format!(
                "column `{}` is a PostGIS {} column, which the jdbc scan does not read (its text would be PostGIS's \
                 hex EWKB, and PostGIS is not available to test against); leave it out of the table declaration",
                c.name(),
                c.type_().name()
            ))),
            _ => Ok(SourceKind::Other),
        })
        .collect()
}

/// Appends the SQL literal of `array[row]` to `out`, for a session with
/// `standard_conforming_strings` on and in UTC: MySQL's literal text (see
/// [`super::mysqltext::write_literal`]: quoted strings with quotes doubled, bare numbers, quoted
/// dates and times) except booleans and bytes, whose literals differ.
pub fn write_literal(out: &mut String, array: &ArrayRef, row: usize, column: &str) -> Result<()> {
    match array.data_type() {
        _ if array.is_null(row) => out.push_str("NULL"),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) { "TRUE" } else { "FALSE" }),
        DataType::Binary => {
            out.push_str("'\\x");
            for b in array.as_binary::<i32>().value(row) {
                let _ = write!(out, "{b:02x}");
            }
            out.push_str("'::bytea");
        }
        _ => super::mysqltext::write_literal(out, array, row, column)?,
    }
    Ok(())
}

pub fn put_header(buf: &mut BytesMut) {
    buf.put_slice(SIGNATURE);
    buf.put_i32(0);
    buf.put_i32(0);
}

pub fn put_trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// One Arrow column, ready to be written as wire values.
enum Encoder {
    Bool(BooleanArray),
    /// Any integer column, widened to i64 and written at the wire width.
    Int(Int64Array, Wire),
    UInt64(datafusion::arrow::array::UInt64Array),
    F32(Float32Array),
    F64(Float64Array),
    Text(StringArray),
    Bytes(BinaryArray),
    Dec128(Decimal128Array, u32),
    Dec256(Decimal256Array, u32),
    Date(Int64Array),
    /// Times and timestamps in the declared unit, with the factor to microseconds
    /// (positive: multiply, negative: divide).
    Micros(Int64Array, i64, Wire),
}

fn micros_factor(u: &TimeUnit) -> i64 {
    match u {
        TimeUnit::Second => 1_000_000,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1,
        TimeUnit::Nanosecond => -1_000,
    }
}

impl Encoder {
    fn new(array: &ArrayRef) -> Result<Encoder> {
        use DataType::*;
        let as_i64 = |a: &ArrayRef| -> Result<Int64Array> {
            let wide = match a.data_type() {
                Date32 | Time32(_) => cast(&cast(a, &Int32)?, &Int64)?,
                _ => cast(a, &Int64)?,
            };
            Ok(wide.as_primitive::<datafusion::arrow::datatypes::Int64Type>().clone())
        };
        let dt = array.data_type();
        Ok(match dt {
            Boolean => Encoder::Bool(array.as_boolean().clone()),
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => {
                let wire = Wire::of(dt).unwrap_or(Wire::Int8);
                Encoder::Int(as_i64(array)?, wire)
            }
            UInt64 => Encoder::UInt64(array.as_primitive().clone()),
            Float32 => Encoder::F32(array.as_primitive().clone()),
            Float64 => Encoder::F64(array.as_primitive().clone()),
            Utf8 => Encoder::Text(array.as_string::<i32>().clone()),
            Binary => Encoder::Bytes(array.as_binary::<i32>().clone()),
            Decimal128(_, s) => Encoder::Dec128(array.as_primitive().clone(), (*s).max(0) as u32),
            Decimal256(_, s) => Encoder::Dec256(array.as_primitive().clone(), (*s).max(0) as u32),
            Date32 => Encoder::Date(as_i64(array)?),
            Time32(u) | Time64(u) => Encoder::Micros(as_i64(array)?, micros_factor(u), Wire::Time),
            Timestamp(u, tz) => Encoder::Micros(
                as_i64(array)?,
                micros_factor(u),
                if tz.is_some() { Wire::TimestampTz } else { Wire::Timestamp },
            ),
            other => return Err(Error::internal(format!("jdbc: no PostgreSQL wire encoding for {other}"))),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Encoder::Bool(a) => a.is_null(row),
            Encoder::Int(a, _) | Encoder::Date(a) | Encoder::Micros(a, _, _) => a.is_null(row),
            Encoder::UInt64(a) => a.is_null(row),
            Encoder::F32(a) => a.is_null(row),
            Encoder::F64(a) => a.is_null(row),
            Encoder::Text(a) => a.is_null(row),
            Encoder::Bytes(a) => a.is_null(row),
            Encoder::Dec128(a, _) => a.is_null(row),
            Encoder::Dec256(a, _) => a.is_null(row),
        }
    }

    fn write(&self, row: usize, buf: &mut BytesMut) -> Result<()> {
        if self.is_null(row) {
            buf.put_i32(-1);
            return Ok(());
        }
        match self {
            Encoder::Bool(a) => {
                buf.put_i32(1);
                buf.put_u8(a.value(row) as u8);
            }
            Encoder::Int(a, wire) => {
                let v = a.value(row);
                match wire {
                    Wire::Int2 => {
                        buf.put_i32(2);
                        buf.put_i16(v as i16);
                    }
                    Wire::Int4 => {
                        buf.put_i32(4);
                        buf.put_i32(v as i32);
                    }
                    _ => {
                        buf.put_i32(8);
                        buf.put_i64(v);
                    }
                }
            }
            Encoder::UInt64(a) => put_numeric(buf, false, &a.value(row).to_string(), 0),
            Encoder::F32(a) => {
                buf.put_i32(4);
                buf.put_f32(a.value(row));
            }
            Encoder::F64(a) => {
                buf.put_i32(8);
                buf.put_f64(a.value(row));
            }
            Encoder::Text(a) => {
                let v = a.value(row).as_bytes();
                buf.put_i32(v.len() as i32);
                buf.put_slice(v);
            }
            Encoder::Bytes(a) => {
                let v = a.value(row);
                buf.put_i32(v.len() as i32);
                buf.put_slice(v);
            }
            Encoder::Dec128(a, scale) => {
                let v = a.value(row);
                put_numeric_u128(buf, v < 0, v.unsigned_abs(), *scale);
            }
            Encoder::Dec256(a, scale) => {
                let text = a.value(row).to_string();
                let (negative, digits) = match text.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, text.as_str()),
                };
                put_numeric(buf, negative, digits, *scale);
            }
            Encoder::Date(a) => {
                buf.put_i32(4);
                buf.put_i32((a.value(row) - PG_EPOCH_DAYS) as i32);
            }
            Encoder::Micros(a, factor, wire) => {
                let v = a.value(row);
                // PostgreSQL keeps microseconds: nanoseconds are truncated toward the past.
                let micros = if *factor > 0 { v.saturating_mul(*factor) } else { v.div_euclid(-factor) };
                let micros = if *wire == Wire::Time { micros } else { micros - PG_EPOCH_MICROS };
                buf.put_i32(8);
                buf.put_i64(micros);
            }
        }
        Ok(())
    }
}

/// Writes rows of `columns` as binary COPY tuples; `extra` adds a trailing boolean field to each
/// tuple (the staging table's delete flag). Calls `flush` whenever `buf` passes `chunk` bytes so
/// the caller can stream it.
pub struct TupleWriter {
    encoders: Vec<Encoder>,
    extra: Option<bool>,
}

impl TupleWriter {
    pub fn new(columns: &[ArrayRef], extra: Option<bool>) -> Result<Self> {
        Ok(TupleWriter { encoders: columns.iter().map(Encoder::new).collect::<Result<_>>()?, extra })
    }

    pub fn write_row(&self, row: usize, buf: &mut BytesMut) -> Result<()> {
        buf.put_i16((self.encoders.len() + self.extra.is_some() as usize) as i16);
        for e in &self.encoders {
            e.write(row, buf)?;
        }
        if let Some(flag) = self.extra {
            buf.put_i32(1);
            buf.put_u8(flag as u8);
        }
        Ok(())
    }
}

/// [`put_numeric`] of `magnitude / 10^scale`, computed with integer arithmetic (the per-value
/// digit string cost the snapshot copy a tenth of its CPU).
pub fn put_numeric_u128(buf: &mut BytesMut, negative: bool, magnitude: u128, scale: u32) {
    // The fraction is padded to whole base-10000 digits; 10^36 still fits a u128.
    if scale > 32 {
        return put_numeric(buf, negative, &magnitude.to_string(), scale);
    }
    let pow = 10u128.pow(scale);
    let (mut int, fraction) = (magnitude / pow, magnitude % pow);
    let mut int_groups = [0i16; 10];
    let mut int_count = 0;
    while int > 0 {
        int_groups[int_count] = (int % 10_000) as i16;
        int /= 10_000;
        int_count += 1;
    }
    let mut groups = [0i16; 18];
    for (slot, group) in groups.iter_mut().zip(int_groups[..int_count].iter().rev()) {
        *slot = *group;
    }
    let fraction_count = scale.div_ceil(4) as usize;
    let mut padded = fraction * 10u128.pow(fraction_count as u32 * 4 - scale);
    for slot in groups[int_count..int_count + fraction_count].iter_mut().rev() {
        *slot = (padded % 10_000) as i16;
        padded /= 10_000;
    }
    put_numeric_groups(buf, &groups[..int_count + fraction_count], int_count, negative, scale);
}

/// Writes a NUMERIC of base-10000 `groups`, the first `int_count` of them before the point,
/// without its leading and trailing zero groups (zero is positive with no digits).
fn put_numeric_groups(buf: &mut BytesMut, groups: &[i16], int_count: usize, negative: bool, scale: u32) {
    let (digits, weight, negative) = match groups.iter().position(|g| *g != 0) {
        None => (&groups[0..0], 0, false),
        Some(first) => {
            let last = groups.iter().rposition(|g| *g != 0).unwrap_or(first);
            (&groups[first..=last], int_count as i16 - 1 - first as i16, negative)
        }
    };
    buf.put_i32(8 + 2 * digits.len() as i32);
    buf.put_i16(digits.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if negative { 0x4000 } else { 0 });
    buf.put_u16(scale as u16);
    for g in digits {
        buf.put_i16(*g);
    }
}

/// NUMERIC's binary form: base-10000 digits, a weight (power of 10000 of the first digit), a
/// sign and the display scale. `digits` is the unscaled absolute value in decimal.
pub fn put_numeric(buf: &mut BytesMut, negative: bool, digits: &str, scale: u32) {
    let scale = scale as usize;
    let (int_part, frac_part): (&str, String) = if digits.len() > scale {
        (&digits[..digits.len() - scale], digits[digits.len() - scale..].to_string())
    } else {
        ("", format!("{:0>width$}", digits, width = scale))
    };
    let group = |s: &str| -> i16 { s.bytes().fold(0i16, |acc, b| acc * 10 + (b - b'0') as i16) };
    let mut groups: Vec<i16> = Vec::with_capacity((int_part.len() + frac_part.len()) / 4 + 2);
    let lead = (4 - int_part.len() % 4) % 4;
    let padded_int = format!("{}{}", "0".repeat(lead), int_part);
    for chunk in padded_int.as_bytes().chunks(4) {
        groups.push(group(std::str::from_utf8(chunk).unwrap_or("0")));
    }
    let int_count = groups.len();
    let trail = (4 - frac_part.len() % 4) % 4;
    let padded_frac = format!("{}{}", frac_part, "0".repeat(trail));
    for chunk in padded_frac.as_bytes().chunks(4) {
        groups.push(group(std::str::from_utf8(chunk).unwrap_or("0")));
    }
    put_numeric_groups(buf, &groups, int_count, negative, scale as u32);
}

/// Decodes a `COPY … TO STDOUT (FORMAT binary)` stream into a [`BatchBuilder`] whose columns were
/// selected with [`read_expression`]. Chunks may split tuples anywhere.
pub struct CopyDecoder {
    wires: Vec<Wire>,
    tuples: BinaryTuples,
}

impl CopyDecoder {
    /// A decoder of columns of `types` read from sources of `kinds` (see [`scan_wire`]).
    pub fn new(types: &[DataType], kinds: &[SourceKind]) -> Result<Self> {
        let wires: Vec<Wire> = types
            .iter()
            .zip(kinds.iter().copied().chain(std::iter::repeat(SourceKind::Other)))
            .map(|(t, kind)| {
                scan_wire(t, kind).ok_or_else(|| Error::internal(format!("jdbc: no PostgreSQL wire type for {t}")))
            })
            .collect::<Result<_>>()?;
        let tuples = BinaryTuples::new(wires.len());
        Ok(CopyDecoder { wires, tuples })
    }

    pub fn is_ended(&self) -> bool {
        self.tuples.is_ended()
    }

    /// Decodes every complete tuple of `chunk` (plus what earlier chunks left over).
    pub fn feed(&mut self, chunk: &[u8], out: &mut BatchBuilder) -> Result<()> {
        let wires = &self.wires;
        self.tuples.feed(chunk, |values| {
            Self::decode_tuple(wires, values, out)?;
            out.row_done();
            Ok(())
        })
    }

    fn decode_tuple(wires: &[Wire], values: &[Option<&[u8]>], out: &mut BatchBuilder) -> Result<()> {
        for ((wire, value), column) in wires.iter().zip(values).zip(out.columns.iter_mut()) {
            let Some(v) = *value else {
                column.append_null();
                continue;
            };
            let fixed = |n: usize| -> Result<&[u8]> {
                if v.len() == n {
                    Ok(v)
                } else {
                    Err(Error::internal(format!("jdbc: PostgreSQL sent {} bytes for a {wire:?} value", v.len())))
                }
            };
            match wire {
                Wire::Bool => column.append_bool(fixed(1)?[0] != 0)?,
                Wire::Int2 => column.append_i64(i16::from_be_bytes(fixed(2)?.try_into().unwrap_or_default()) as i64)?,
                Wire::Int4 => column.append_i64(i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default()) as i64)?,
                Wire::Int8 => column.append_i64(i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default()))?,
                Wire::Float4 => {
                    column.append_float(Float::F32(f32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default())))?
                }
                Wire::Float8 => {
                    column.append_float(Float::F64(f64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())))?
                }
                Wire::Text | Wire::Bytea => column.append_bytes(v)?,
                Wire::Numeric => match std::str::from_utf8(v) {
                    Ok(text) => column.append_decimal_text(text)?,
                    Err(_) => return Err(Error::internal("jdbc: PostgreSQL sent a NUMERIC text that is not UTF-8")),
                },
                Wire::Date => {
                    let days = i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default());
                    if days == i32::MAX || days == i32::MIN {
                        return Err(column.out_of_range(if days > 0 { "'infinity'" } else { "'-infinity'" }));
                    }
                    column.append_i64(days as i64 + PG_EPOCH_DAYS)?
                }
                Wire::Time => column.append_micros(i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default()))?,
                Wire::Timestamp | Wire::TimestampTz => {
                    let micros = i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default());
                    if micros == i64::MAX || micros == i64::MIN {
                        return Err(column.out_of_range(if micros > 0 { "'infinity'" } else { "'-infinity'" }));
                    }
                    column.append_micros(micros + PG_EPOCH_MICROS)?
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn numeric(negative: bool, digits: &str, scale: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_numeric(&mut b, negative, digits, scale);
        b.to_vec()
    }

    #[test]
    fn numeric_binary_matches_postgres() {
        // Bytes as `SELECT numeric_send(12.50)` returns them: 2 digits, weight 0, +, dscale 2, 12, 5000.
        assert_eq!(numeric(false, "1250", 2), vec![0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]);
        // 0.01: 1 digit, weight -1, dscale 2, digit 100.
        assert_eq!(numeric(false, "1", 2), vec![0, 0, 0, 10, 0, 1, 0xff, 0xff, 0, 0, 0, 2, 0, 100]);
        // -20000: 1 digit (2), weight 1, negative.
        assert_eq!(numeric(true, "20000", 0), vec![0, 0, 0, 10, 0, 1, 0, 1, 0x40, 0, 0, 0, 0, 2]);
        // Zero is positive with no digits.
        assert_eq!(numeric(true, "0", 3), vec![0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn integer_numeric_encoding_matches_the_digit_string_one() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut samples: Vec<u128> = vec![0, 1, 9_999, 10_000, 10_001, 100_000_000, u128::MAX / 7, 10u128.pow(38) - 1];
        for _ in 0..2_000 {
            let digits = next() % 39;
            samples.push(((next() as u128) << 64 | next() as u128) % 10u128.pow(digits as u32).max(1));
        }
        for magnitude in samples {
            for scale in [0, 1, 2, 3, 4, 5, 8, 9, 18, 32, 33, 38] {
                for negative in [false, true] {
                    let (mut fast, mut text) = (BytesMut::new(), BytesMut::new());
                    put_numeric_u128(&mut fast, negative, magnitude, scale);
                    put_numeric(&mut text, negative, &magnitude.to_string(), scale);
                    assert_eq!(fast, text, "{magnitude} scale {scale} negative {negative}");
                }
            }
        }
    }

    #[test]
    fn tuples_round_trip_through_the_decoder_in_pieces() {
        let ids: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(-7)]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("ü'\\"), None]));
        let ts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(-1), Some(1_700_000_000_123_456)]));
        let writer = TupleWriter::new(&[ids.clone(), names.clone(), ts.clone()], None).unwrap();
        let mut buf = BytesMut::new();
        put_header(&mut buf);
        for row in 0..3 {
            writer.write_row(row, &mut buf).unwrap();
        }
        put_trailer(&mut buf);

        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let mut decoder = CopyDecoder::new(&types, &[]).unwrap();
        let mut out = BatchBuilder::new(schema, 4).unwrap();
        for piece in buf.chunks(5) {
            decoder.feed(piece, &mut out).unwrap();
        }
        assert!(decoder.is_ended());
        let batch = out.finish().unwrap();
        assert_eq!(batch.column(0).as_ref(), ids.as_ref());
        assert_eq!(batch.column(1).as_ref(), names.as_ref());
        assert_eq!(batch.column(2).as_ref(), ts.as_ref());
    }

    #[test]
    fn read_expressions_cast_to_the_wire_type() {
        let other = SourceKind::Other;
        assert_eq!(
            read_expression("\"n\"", &DataType::Decimal128(10, 2), other).unwrap(),
            "CAST(CAST(\"n\" AS numeric) AS text)"
        );
        assert_eq!(
            read_expression("\"t\"", &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), other).unwrap(),
            "CAST(\"t\" AS timestamptz(3))"
        );
        assert_eq!(read_expression("\"b\"", &DataType::UInt8, other).unwrap(), "CAST(\"b\" AS smallint)");
        // A float declared DECIMAL is read as the float (PostgreSQL's own float → numeric cast
        // keeps 15 digits), then converted as Flink does.
        assert_eq!(
            read_expression("\"w\"", &DataType::Decimal128(10, 3), SourceKind::Float32).unwrap(),
            "CAST(\"w\" AS real)"
        );
        assert_eq!(scan_wire(&DataType::Decimal256(50, 3), SourceKind::Float64), Some(Wire::Float8));
    }

    #[test]
    fn floats_decode_into_decimal_columns() {
        let mut buf = BytesMut::new();
        put_header(&mut buf);
        buf.put_i16(2);
        buf.put_i32(4);
        buf.put_f32(1.1);
        buf.put_i32(8);
        buf.put_f64(123.4565);
        put_trailer(&mut buf);
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Decimal128(10, 3), true),
            Field::new("d", DataType::Decimal128(10, 3), true),
        ]));
        let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let mut decoder = CopyDecoder::new(&types, &[SourceKind::Float32, SourceKind::Float64]).unwrap();
        let mut out = BatchBuilder::new(schema, 1).unwrap();
        decoder.feed(&buf, &mut out).unwrap();
        let batch = out.finish().unwrap();
        let value = |i: usize| batch.column(i).as_primitive::<datafusion::arrow::datatypes::Decimal128Type>().value(0);
        assert_eq!((value(0), value(1)), (1_100, 123_457));
    }
}
