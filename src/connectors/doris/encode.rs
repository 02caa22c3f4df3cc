//! JSON lines for Stream Load, written straight from Arrow arrays: one object per row keyed by
//! column name, plus `__DORIS_DELETE_SIGN__` (0 or 1) when deletes are sent. Column writers are
//! resolved once per batch; each value is formatted into the output buffer with no intermediate
//! `serde_json::Value`.
//!
//! Value shapes (what Doris' JSON reader converts into the column type):
//! integers and booleans as JSON numbers/booleans; floats as numbers, NaN and ±Infinity as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"`; DECIMAL as an exact quoted string (`"12.30"`, so
//! no reader goes through a double); DATE `"YYYY-MM-DD"`; TIMESTAMP `"YYYY-MM-DD hh:mm:ss[.f…]"`
//! with the fraction digits of its precision (TIMESTAMP_LTZ in UTC); TIME `"hh:mm:ss[.f…]"`;
//! strings escaped per RFC 8259; ARRAY as a JSON array, ROW as an object, MAP as an object whose
//! keys are the map keys as strings. BYTES has no JSON form Doris reads back unchanged: refused.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericListArray, GenericStringArray, MapArray, OffsetSizeTrait,
    PrimitiveArray, StringViewArray, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::calendar::civil_from_days;
use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;

pub const DELETE_SIGN: &str = "__DORIS_DELETE_SIGN__";

/// Encodes batches of one schema.
pub struct JsonLinesEncoder {
    /// `{"a":` for the first column, `,"b":` for the others.
    keys: Vec<Vec<u8>>,
    delete_key: Option<Vec<u8>>,
}

impl JsonLinesEncoder {
    /// Fails, naming the column, if a column's type cannot be written.
    pub fn new(schema: &Schema, with_delete_sign: bool) -> Result<Self> {
        for field in schema.fields() {
            check_type(field.data_type()).map_err(|t| {
                Error::user(format!(
                    "column `{}` has type {}, which the doris sink cannot write ({t} has no JSON form Doris loads unchanged); CAST it, e.g. to STRING",
                    field.name(),
                    flink_type_name(field.data_type())
                ))
            })?;
        }
        let keys = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                write_str(&mut key, f.name());
                key.push(b':');
                key
            })
            .collect();
        let delete_key = with_delete_sign.then(|| {
            let mut key = vec![if schema.fields().is_empty() { b'{' } else { b',' }];
            write_str(&mut key, DELETE_SIGN);
            key.push(b':');
            key
        });
        Ok(JsonLinesEncoder { keys, delete_key })
    }

    /// Appends every row of `batch` with the given delete sign.
    pub fn encode_all(&self, batch: &RecordBatch, delete: bool, out: &mut Vec<u8>) -> Result<()> {
        self.encode_rows(batch, (0..batch.num_rows()).map(|row| (row, delete)), out)
    }

    /// Appends the chosen rows, each with its delete sign.
    pub fn encode_rows(
        &self,
        batch: &RecordBatch,
        rows: impl Iterator<Item = (usize, bool)>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let writers: Vec<Writer<'_>> =
            batch.columns().iter().map(|c| Writer::new(c.as_ref())).collect::<Result<_>>()?;
        for (row, delete) in rows {
            for (key, writer) in self.keys.iter().zip(&writers) {
                out.extend_from_slice(key);
                writer.write(row, out);
            }
            if let Some(key) = &self.delete_key {
                out.extend_from_slice(key);
                out.push(if delete { b'1' } else { b'0' });
            } else if self.keys.is_empty() {
                out.push(b'{');
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(())
    }
}

/// Types both body formats write as one plain value.
pub(super) fn is_scalar(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

/// The name of an unsupported type inside `dt`, if any.
fn check_type(dt: &DataType) -> std::result::Result<(), String> {
    match dt {
        dt if is_scalar(dt) => Ok(()),
        DataType::List(f) | DataType::LargeList(f) => check_type(f.data_type()),
        DataType::Struct(fields) => fields.iter().try_for_each(|f| check_type(f.data_type())),
        DataType::Map(entries, _) => check_type(entries.data_type()),
        other => Err(flink_type_name(other)),
    }
}

enum Writer<'a> {
    Null,
    Bool(&'a BooleanArray),
    Int8(&'a PrimitiveArray<Int8Type>),
    Int16(&'a PrimitiveArray<Int16Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    UInt8(&'a PrimitiveArray<UInt8Type>),
    UInt16(&'a PrimitiveArray<UInt16Type>),
    UInt32(&'a PrimitiveArray<UInt32Type>),
    UInt64(&'a PrimitiveArray<UInt64Type>),
    Float32(&'a PrimitiveArray<Float32Type>),
    Float64(&'a PrimitiveArray<Float64Type>),
    Decimal128(&'a PrimitiveArray<Decimal128Type>, i8),
    Decimal256(&'a PrimitiveArray<Decimal256Type>, i8),
    Date32(&'a PrimitiveArray<Date32Type>),
    Date64(&'a PrimitiveArray<Date64Type>),
    /// Any time of day or timestamp as an integer count of `unit`.
    Time(Option<&'a NullBuffer>, Vec<i64>, TimeUnit),
    Timestamp(Option<&'a NullBuffer>, &'a [i64], TimeUnit),
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    List(&'a GenericListArray<i32>, Box<Writer<'a>>),
    LargeList(&'a GenericListArray<i64>, Box<Writer<'a>>),
    Struct(&'a StructArray, Vec<(Vec<u8>, Writer<'a>)>),
    Map(&'a MapArray, Box<Writer<'a>>, Box<Writer<'a>>),
}

impl<'a> Writer<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Null => Writer::Null,
            DataType::Boolean => Writer::Bool(array.as_boolean()),
            DataType::Int8 => Writer::Int8(array.as_primitive()),
            DataType::Int16 => Writer::Int16(array.as_primitive()),
            DataType::Int32 => Writer::Int32(array.as_primitive()),
            DataType::Int64 => Writer::Int64(array.as_primitive()),
            DataType::UInt8 => Writer::UInt8(array.as_primitive()),
            DataType::UInt16 => Writer::UInt16(array.as_primitive()),
            DataType::UInt32 => Writer::UInt32(array.as_primitive()),
            DataType::UInt64 => Writer::UInt64(array.as_primitive()),
            DataType::Float32 => Writer::Float32(array.as_primitive()),
            DataType::Float64 => Writer::Float64(array.as_primitive()),
            DataType::Decimal128(_, s) => Writer::Decimal128(array.as_primitive(), *s),
            DataType::Decimal256(_, s) => Writer::Decimal256(array.as_primitive(), *s),
            DataType::Date32 => Writer::Date32(array.as_primitive()),
            DataType::Date64 => Writer::Date64(array.as_primitive()),
            DataType::Time32(unit) => {
                let values: Vec<i64> = match unit {
                    TimeUnit::Second => {
                        array.as_primitive::<Time32SecondType>().values().iter().map(|v| *v as i64).collect()
                    }
                    _ => array.as_primitive::<Time32MillisecondType>().values().iter().map(|v| *v as i64).collect(),
                };
                Writer::Time(array.nulls(), values, *unit)
            }
            DataType::Time64(unit) => {
                let values = match unit {
                    TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().values().to_vec(),
                    _ => array.as_primitive::<Time64MicrosecondType>().values().to_vec(),
                };
                Writer::Time(array.nulls(), values, *unit)
            }
            DataType::Timestamp(unit, _) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
                };
                Writer::Timestamp(array.nulls(), values, *unit)
            }
            DataType::Utf8 => Writer::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Writer::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Writer::Utf8View(array.as_string_view()),
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                Writer::List(list, Box::new(Writer::new(list.values().as_ref())?))
            }
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                Writer::LargeList(list, Box::new(Writer::new(list.values().as_ref())?))
            }
            DataType::Struct(fields) => {
                let strukt = array.as_struct();
                let children = fields
                    .iter()
                    .zip(strukt.columns())
                    .enumerate()
                    .map(|(i, (f, c))| {
                        let mut key = vec![if i == 0 { b'{' } else { b',' }];
                        write_str(&mut key, f.name());
                        key.push(b':');
                        Ok((key, Writer::new(c.as_ref())?))
                    })
                    .collect::<Result<_>>()?;
                Writer::Struct(strukt, children)
            }
            DataType::Map(_, _) => {
                let map = array.as_map();
                let keys: &ArrayRef = map.keys();
                let values: &ArrayRef = map.values();
                Writer::Map(map, Box::new(Writer::new(keys.as_ref())?), Box::new(Writer::new(values.as_ref())?))
            }
            other => {
                return Err(Error::internal(format!("doris encoder met type {other} that its checks refuse")));
            }
        })
    }

    fn is_null(&self, row: usize) -> bool {
        let nulls = match self {
            Writer::Null => return true,
            Writer::Bool(a) => a.nulls(),
            Writer::Int8(a) => a.nulls(),
            Writer::Int16(a) => a.nulls(),
            Writer::Int32(a) => a.nulls(),
            Writer::Int64(a) => a.nulls(),
            Writer::UInt8(a) => a.nulls(),
            Writer::UInt16(a) => a.nulls(),
            Writer::UInt32(a) => a.nulls(),
            Writer::UInt64(a) => a.nulls(),
            Writer::Float32(a) => a.nulls(),
            Writer::Float64(a) => a.nulls(),
            Writer::Decimal128(a, _) => a.nulls(),
            Writer::Decimal256(a, _) => a.nulls(),
            Writer::Date32(a) => a.nulls(),
            Writer::Date64(a) => a.nulls(),
            Writer::Time(n, _, _) | Writer::Timestamp(n, _, _) => *n,
            Writer::Utf8(a) => a.nulls(),
            Writer::LargeUtf8(a) => a.nulls(),
            Writer::Utf8View(a) => a.nulls(),
            Writer::List(a, _) => a.nulls(),
            Writer::LargeList(a, _) => a.nulls(),
            Writer::Struct(a, _) => a.nulls(),
            Writer::Map(a, _, _) => a.nulls(),
        };
        nulls.is_some_and(|n| n.is_null(row))
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(b"null");
            return;
        }
        let mut ints = itoa::Buffer::new();
        match self {
            Writer::Null => out.extend_from_slice(b"null"),
            Writer::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Writer::Int8(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::Int16(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::Int32(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::Int64(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::UInt8(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::UInt16(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::UInt32(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::UInt64(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Writer::Float32(a) => write_float(out, a.value(row)),
            Writer::Float64(a) => write_float(out, a.value(row)),
            Writer::Decimal128(a, scale) => {
                out.push(b'"');
                write_scaled(out, ints.format(a.value(row)), *scale);
                out.push(b'"');
            }
            Writer::Decimal256(a, scale) => {
                out.push(b'"');
                write_scaled(out, &a.value(row).to_string(), *scale);
                out.push(b'"');
            }
            Writer::Date32(a) => {
                out.push(b'"');
                write_date(out, a.value(row) as i64);
                out.push(b'"');
            }
            Writer::Date64(a) => {
                out.push(b'"');
                write_date(out, a.value(row).div_euclid(86_400_000));
                out.push(b'"');
            }
            Writer::Time(_, values, unit) => {
                out.push(b'"');
                let (per_second, digits) = unit_scale(*unit);
                let value = values[row];
                write_time_of_day(out, value.div_euclid(per_second), value.rem_euclid(per_second), digits);
                out.push(b'"');
            }
            Writer::Timestamp(_, values, unit) => {
                out.push(b'"');
                let (per_second, digits) = unit_scale(*unit);
                let value = values[row];
                let seconds = value.div_euclid(per_second);
                write_date(out, seconds.div_euclid(86_400));
                out.push(b' ');
                write_time_of_day(out, seconds.rem_euclid(86_400), value.rem_euclid(per_second), digits);
                out.push(b'"');
            }
            Writer::Utf8(a) => write_str(out, a.value(row)),
            Writer::LargeUtf8(a) => write_str(out, a.value(row)),
            Writer::Utf8View(a) => write_str(out, a.value(row)),
            Writer::List(a, values) => write_list(out, a.value_offsets(), row, values),
            Writer::LargeList(a, values) => write_list(out, a.value_offsets(), row, values),
            Writer::Struct(_, children) => {
                if children.is_empty() {
                    out.push(b'{');
                }
                for (key, child) in children {
                    out.extend_from_slice(key);
                    child.write(row, out);
                }
                out.push(b'}');
            }
            Writer::Map(a, keys, values) => {
                let offsets = a.value_offsets();
                out.push(b'{');
                let mut key_text = Vec::new();
                for (n, i) in (offsets[row] as usize..offsets[row + 1] as usize).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    key_text.clear();
                    keys.write(i, &mut key_text);
                    if key_text.first() == Some(&b'"') {
                        out.extend_from_slice(&key_text);
                    } else {
                        // A non-string key (number, date…) becomes the JSON string of its text.
                        write_str(out, &String::from_utf8_lossy(&key_text));
                    }
                    out.push(b':');
                    values.write(i, out);
                }
                out.push(b'}');
            }
        }
    }
}

fn write_list<O: OffsetSizeTrait>(out: &mut Vec<u8>, offsets: &[O], row: usize, values: &Writer<'_>) {
    out.push(b'[');
    for (n, i) in (offsets[row].as_usize()..offsets[row + 1].as_usize()).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        values.write(i, out);
    }
    out.push(b']');
}

fn write_float<F: ryu::Float + PartialOrd + Default + Copy + IsFinite>(out: &mut Vec<u8>, value: F) {
    if value.finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else if value.nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value > F::default() {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

trait IsFinite {
    fn finite(self) -> bool;
    fn nan(self) -> bool;
}

impl IsFinite for f32 {
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
}

impl IsFinite for f64 {
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
}

/// Writes the integer text `digits` (optionally signed) with `scale` digits after the point.
pub(super) fn write_scaled(out: &mut Vec<u8>, digits: &str, scale: i8) {
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if negative {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        if digits != "0" {
            out.extend(std::iter::repeat_n(b'0', scale.unsigned_abs() as usize));
        }
        return;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

pub(super) fn unit_scale(unit: TimeUnit) -> (i64, usize) {
    match unit {
        TimeUnit::Second => (1, 0),
        TimeUnit::Millisecond => (1_000, 3),
        TimeUnit::Microsecond => (1_000_000, 6),
        TimeUnit::Nanosecond => (1_000_000_000, 9),
    }
}

fn push_digits(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = value.unsigned_abs();
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let used = buf.len() - i;
    if used < width {
        out.extend(std::iter::repeat_n(b'0', width - used));
    }
    out.extend_from_slice(&buf[i..]);
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian).
pub(super) fn write_date(out: &mut Vec<u8>, days: i64) {
    let (year, month, day) = civil_from_days(days);
    if year < 0 {
        out.push(b'-');
    }
    push_digits(out, year, 4);
    out.push(b'-');
    push_digits(out, month.into(), 2);
    out.push(b'-');
    push_digits(out, day.into(), 2);
}

pub(super) fn write_time_of_day(out: &mut Vec<u8>, seconds: i64, fraction: i64, digits: usize) {
    push_digits(out, seconds / 3600, 2);
    out.push(b':');
    push_digits(out, seconds / 60 % 60, 2);
    out.push(b':');
    push_digits(out, seconds % 60, 2);
    if digits > 0 {
        out.push(b'.');
        push_digits(out, fraction, digits);
    }
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::*;
    use datafusion::arrow::buffer::OffsetBuffer;

    use super::*;

    fn encode(columns: Vec<(&str, ArrayRef)>, delete: bool) -> String {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let encoder = JsonLinesEncoder::new(&batch.schema(), true).unwrap();
        let mut out = Vec::new();
        encoder.encode_all(&batch, delete, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        text
    }

    #[test]
    fn scalars_and_nulls() {
        let text = encode(
            vec![
                ("id", Arc::new(Int64Array::from(vec![Some(i64::MIN), None])) as ArrayRef),
                ("u", Arc::new(UInt64Array::from(vec![u64::MAX, 0]))),
                ("ok", Arc::new(BooleanArray::from(vec![Some(true), None]))),
                ("f", Arc::new(Float64Array::from(vec![1.5, f64::NAN]))),
                ("g", Arc::new(Float32Array::from(vec![f32::INFINITY, f32::NEG_INFINITY]))),
            ],
            false,
        );
        assert_eq!(
            text,
            "{\"id\":-9223372036854775808,\"u\":18446744073709551615,\"ok\":true,\"f\":1.5,\"g\":\"Infinity\",\"__DORIS_DELETE_SIGN__\":0}\n\
             {\"id\":null,\"u\":0,\"ok\":null,\"f\":\"NaN\",\"g\":\"-Infinity\",\"__DORIS_DELETE_SIGN__\":0}\n"
        );
    }

    #[test]
    fn decimals_are_exact_strings() {
        let d = Decimal128Array::from(vec![1230, -5, 0, i128::MAX]).with_precision_and_scale(38, 2).unwrap();
        let big = Decimal256Array::from(vec![i256::from_i128(-123456)]).with_precision_and_scale(76, 3).unwrap();
        let text = encode(vec![("d", Arc::new(d) as ArrayRef)], true);
        assert!(text.starts_with("{\"d\":\"12.30\",\"__DORIS_DELETE_SIGN__\":1}\n{\"d\":\"-0.05\""), "{text}");
        assert!(text.contains("\"0.00\"") && text.contains("\"1701411834604692317316873037158841057.27\""), "{text}");
        let text = encode(vec![("d", Arc::new(big) as ArrayRef)], false);
        assert!(text.starts_with("{\"d\":\"-123.456\""), "{text}");
    }

    #[test]
    fn temporal_values() {
        let text = encode(
            vec![
                ("d", Arc::new(Date32Array::from(vec![0, 19_723, -1])) as ArrayRef),
                ("ts", Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_123_456, 0, -1]))),
                ("ltz", Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3]).with_timezone("UTC"))),
                ("t", Arc::new(Time64MicrosecondArray::from(vec![45_296_000_001, 0, 86_399_999_999]))),
            ],
            false,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("\"d\":\"1970-01-01\",\"ts\":\"2023-11-14 22:13:20.123456\",\"ltz\":\"1970-01-01 00:00:00.001\",\"t\":\"12:34:56.000001\""), "{}", lines[0]);
        assert!(lines[1].contains("\"d\":\"2024-01-01\""), "{}", lines[1]);
        assert!(lines[2].contains("\"d\":\"1969-12-31\",\"ts\":\"1969-12-31 23:59:59.999999\""), "{}", lines[2]);
    }

    #[test]
    fn strings_are_escaped() {
        let text = encode(vec![("s", Arc::new(StringArray::from(vec!["a\"b\\c\nd\u{1}é"])) as ArrayRef)], false);
        assert_eq!(text, "{\"s\":\"a\\\"b\\\\c\\nd\\u0001é\",\"__DORIS_DELETE_SIGN__\":0}\n");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["s"], "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn nested_values() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None]);
        let strukt = StructArray::from(vec![
            (Arc::new(Field::new("a", DataType::Int32, true)), Arc::new(Int32Array::from(vec![7, 8])) as ArrayRef),
            (Arc::new(Field::new("b", DataType::Utf8, true)), Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ]);
        let entries = StructArray::from(vec![
            (Arc::new(Field::new("key", DataType::Int32, false)), Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                Arc::new(Field::new("value", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["one", "two"])) as ArrayRef,
            ),
        ]);
        let map = MapArray::new(
            Arc::new(Field::new("entries", entries.data_type().clone(), false)),
            OffsetBuffer::new(vec![0, 2, 2].into()),
            entries,
            None,
            false,
        );
        let text =
            encode(vec![("l", Arc::new(list) as ArrayRef), ("r", Arc::new(strukt)), ("m", Arc::new(map))], false);
        assert_eq!(
            text,
            "{\"l\":[1,null],\"r\":{\"a\":7,\"b\":\"x\"},\"m\":{\"1\":\"one\",\"2\":\"two\"},\"__DORIS_DELETE_SIGN__\":0}\n\
             {\"l\":null,\"r\":{\"a\":8,\"b\":\"y\"},\"m\":{},\"__DORIS_DELETE_SIGN__\":0}\n"
        );
    }

    #[test]
    fn bytes_are_refused_by_name() {
        let schema = Schema::new(vec![Field::new("payload", DataType::Binary, true)]);
        let err = JsonLinesEncoder::new(&schema, false).err().unwrap().to_string();
        assert!(err.contains("`payload`") && err.contains("BYTES"), "{err}");
    }

    #[test]
    fn selected_rows_carry_their_own_sign() {
        let batch =
            RecordBatch::try_from_iter(vec![("k", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef)]).unwrap();
        let encoder = JsonLinesEncoder::new(&batch.schema(), true).unwrap();
        let mut out = Vec::new();
        encoder.encode_rows(&batch, [(2, true), (0, false)].into_iter(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"k\":3,\"__DORIS_DELETE_SIGN__\":1}\n{\"k\":1,\"__DORIS_DELETE_SIGN__\":0}\n"
        );
    }
}
