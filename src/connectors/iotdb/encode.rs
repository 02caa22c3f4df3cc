//! Arrow → IoTDB: the type mapping, time conversion and the JSON request bodies, written straight
//! from the Arrow arrays (no intermediate JSON values). Pure, no I/O.
//!
//! | Flink / Arrow                          | IoTDB                                             |
//! |----------------------------------------|---------------------------------------------------|
//! | BOOLEAN                                | BOOLEAN                                           |
//! | TINYINT, SMALLINT, INT, TINYINT/SMALLINT UNSIGNED | INT32                                  |
//! | BIGINT, INT UNSIGNED                   | INT64                                             |
//! | BIGINT UNSIGNED                        | INT64 (a value above 2^63-1 is an error)          |
//! | FLOAT / DOUBLE                         | FLOAT / DOUBLE (NaN and ±Infinity kept)           |
//! | DECIMAL(p, s)                          | DOUBLE (default) or TEXT (`decimal-mapping`)      |
//! | CHAR, VARCHAR, STRING                  | TEXT (tree model), STRING (table model)           |
//! | DATE                                   | DATE                                              |
//! | TIMESTAMP(p), TIMESTAMP_LTZ(p)         | TIMESTAMP in `time-precision` units               |

use std::io::Write;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Decimal256Type, DecimalType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};

use crate::error::{Error, Result};

/// `time-precision`: the unit of IoTDB timestamps on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Millis,
    Micros,
    Nanos,
}

impl Precision {
    fn per_second(self) -> i64 {
        match self {
            Precision::Millis => 1_000,
            Precision::Micros => 1_000_000,
            Precision::Nanos => 1_000_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMapping {
    Double,
    Text,
}

/// Names IoTDB's REST API uses for data types.
pub fn iotdb_type(dt: &DataType, decimals: DecimalMapping, table_model: bool) -> Option<&'static str> {
    Some(match dt {
        DataType::Boolean => "BOOLEAN",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "INT32",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "INT64",
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Decimal128(..) | DataType::Decimal256(..) => match decimals {
            DecimalMapping::Double => "DOUBLE",
            DecimalMapping::Text if table_model => "STRING",
            DecimalMapping::Text => "TEXT",
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if table_model => "STRING",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT",
        DataType::Date32 => "DATE",
        DataType::Timestamp(..) => "TIMESTAMP",
        _ => return None,
    })
}

/// Column types the time column may have.
pub fn is_time_type(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(..) | DataType::Date32 | DataType::Int32 | DataType::Int64 | DataType::UInt32)
}

/// `value` in `unit` converted to `to`; `None` if it overflows or would lose digits.
fn convert_instant(value: i64, unit: TimeUnit, to: Precision) -> Option<i64> {
    let from_per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let to_per_second = to.per_second();
    if to_per_second >= from_per_second {
        value.checked_mul(to_per_second / from_per_second)
    } else {
        let factor = from_per_second / to_per_second;
        (value % factor == 0).then_some(value / factor)
    }
}

fn timestamp_value(array: &dyn Array, row: usize, to: Precision) -> Option<i64> {
    let (unit, raw) = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            (TimeUnit::Second, array.as_primitive::<TimestampSecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            (TimeUnit::Millisecond, array.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            (TimeUnit::Microsecond, array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            (TimeUnit::Nanosecond, array.as_primitive::<TimestampNanosecondType>().value(row))
        }
        _ => return None,
    };
    convert_instant(raw, unit, to)
}

/// The IoTDB timestamp of `row` of the time column, or why there is none.
pub fn time_of(array: &dyn Array, row: usize, precision: Precision) -> std::result::Result<i64, &'static str> {
    if array.is_null(row) {
        return Err("is NULL");
    }
    let value = match array.data_type() {
        DataType::Timestamp(..) => timestamp_value(array, row, precision),
        DataType::Date32 => {
            let days = array.as_any().downcast_ref::<Date32Array>().map(|a| a.value(row) as i64);
            days.and_then(|d| d.checked_mul(86_400)).and_then(|s| s.checked_mul(precision.per_second()))
        }
        DataType::Int32 => array.as_any().downcast_ref::<Int32Array>().map(|a| a.value(row) as i64),
        DataType::Int64 => array.as_any().downcast_ref::<Int64Array>().map(|a| a.value(row)),
        DataType::UInt32 => array.as_any().downcast_ref::<UInt32Array>().map(|a| a.value(row) as i64),
        _ => None,
    };
    value.ok_or("does not fit the time precision without losing digits (choose a finer 'time-precision')")
}

/// Days since 1970-01-01 → IoTDB's DATE integer `yyyyMMdd` (years 1000–9999 only).
pub fn date_int(days: i32) -> Option<i32> {
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (1000..=9999).contains(&year).then(|| (year * 10_000 + month * 100 + day) as i32)
}

/// Appends `s` as a JSON string.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes the values of one column as JSON, typed once per request.
pub enum ValueWriter<'a> {
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Decimal128 { array: &'a dyn Array, precision: u8, scale: i8, text: bool },
    Decimal256 { array: &'a dyn Array, precision: u8, scale: i8, text: bool },
    Str(&'a dyn Array),
    Date(&'a Date32Array),
    Timestamp(&'a dyn Array, Precision),
}

impl<'a> ValueWriter<'a> {
    pub fn new(array: &'a ArrayRef, decimals: DecimalMapping, precision: Precision) -> Result<Self> {
        let text = decimals == DecimalMapping::Text;
        let wrong = || Error::internal(format!("iotdb sink: unexpected array type {}", array.data_type()));
        Ok(match array.data_type() {
            DataType::Boolean => ValueWriter::Bool(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Int8 => ValueWriter::I8(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Int16 => ValueWriter::I16(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Int32 => ValueWriter::I32(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Int64 => ValueWriter::I64(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::UInt8 => ValueWriter::U8(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::UInt16 => ValueWriter::U16(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::UInt32 => ValueWriter::U32(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::UInt64 => ValueWriter::U64(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Float32 => ValueWriter::F32(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Float64 => ValueWriter::F64(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Decimal128(p, s) => {
                ValueWriter::Decimal128 { array: array.as_ref(), precision: *p, scale: *s, text }
            }
            DataType::Decimal256(p, s) => {
                ValueWriter::Decimal256 { array: array.as_ref(), precision: *p, scale: *s, text }
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ValueWriter::Str(array.as_ref()),
            DataType::Date32 => ValueWriter::Date(array.as_any().downcast_ref().ok_or_else(wrong)?),
            DataType::Timestamp(..) => ValueWriter::Timestamp(array.as_ref(), precision),
            other => return Err(Error::internal(format!("iotdb sink: no writer for {other}"))),
        })
    }

    /// Appends the JSON value of `row` (`null` for NULL); `Err` says why the value cannot be sent.
    pub fn write(&self, out: &mut Vec<u8>, row: usize) -> std::result::Result<(), String> {
        macro_rules! int {
            ($a:expr) => {{
                if $a.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let _ = write!(out, "{}", $a.value(row));
                }
            }};
        }
        macro_rules! float {
            ($a:expr) => {{
                if $a.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let v = $a.value(row);
                    // JSON has no NaN/Infinity; IoTDB parses float values from their text.
                    if v.is_nan() {
                        out.extend_from_slice(b"\"NaN\"");
                    } else if v.is_infinite() {
                        out.extend_from_slice(if v > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
                    } else {
                        let _ = write!(out, "{v:?}");
                    }
                }
            }};
        }
        match self {
            ValueWriter::Bool(a) => {
                if a.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    out.extend_from_slice(if a.value(row) { b"true" } else { b"false" });
                }
            }
            ValueWriter::I8(a) => int!(a),
            ValueWriter::I16(a) => int!(a),
            ValueWriter::I32(a) => int!(a),
            ValueWriter::I64(a) => int!(a),
            ValueWriter::U8(a) => int!(a),
            ValueWriter::U16(a) => int!(a),
            ValueWriter::U32(a) => int!(a),
            ValueWriter::U64(a) => {
                if !a.is_null(row) && a.value(row) > i64::MAX as u64 {
                    return Err(format!("BIGINT UNSIGNED value {} exceeds IoTDB's INT64", a.value(row)));
                }
                int!(a)
            }
            ValueWriter::F32(a) => float!(a),
            ValueWriter::F64(a) => float!(a),
            ValueWriter::Decimal128 { array, precision, scale, text } => {
                if array.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let v = array.as_primitive::<Decimal128Type>().value(row);
                    let s = Decimal128Type::format_decimal(v, *precision, *scale);
                    if *text {
                        json_string(out, &s);
                    } else {
                        out.extend_from_slice(s.as_bytes());
                    }
                }
            }
            ValueWriter::Decimal256 { array, precision, scale, text } => {
                if array.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let v = array.as_primitive::<Decimal256Type>().value(row);
                    let s = Decimal256Type::format_decimal(v, *precision, *scale);
                    if *text {
                        json_string(out, &s);
                    } else {
                        out.extend_from_slice(s.as_bytes());
                    }
                }
            }
            ValueWriter::Str(a) => {
                if a.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let s = match a.data_type() {
                        DataType::Utf8 => a.as_string::<i32>().value(row),
                        DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                        _ => a.as_string_view().value(row),
                    };
                    json_string(out, s);
                }
            }
            ValueWriter::Date(a) => {
                if a.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let days = a.value(row);
                    let v = date_int(days).ok_or_else(|| {
                        format!("DATE {days} days from 1970-01-01 is outside IoTDB's years 1000-9999")
                    })?;
                    let _ = write!(out, "{v}");
                }
            }
            ValueWriter::Timestamp(a, precision) => {
                if a.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    let v = timestamp_value(*a, row, *precision).ok_or_else(|| {
                        "TIMESTAMP does not fit the time precision without losing digits (choose a finer 'time-precision')"
                            .to_string()
                    })?;
                    let _ = write!(out, "{v}");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{Decimal128Array, StringArray, TimestampMicrosecondArray};

    fn written(array: ArrayRef, decimals: DecimalMapping) -> Vec<String> {
        let w = ValueWriter::new(&array, decimals, Precision::Millis).unwrap();
        (0..array.len())
            .map(|i| {
                let mut out = Vec::new();
                match w.write(&mut out, i) {
                    Ok(()) => String::from_utf8(out).unwrap(),
                    Err(e) => format!("ERR {e}"),
                }
            })
            .collect()
    }

    #[test]
    fn values_are_json_iotdb_accepts() {
        let floats: ArrayRef =
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(f64::NAN), Some(f64::NEG_INFINITY)]));
        assert_eq!(written(floats, DecimalMapping::Double), ["1.5", "null", "\"NaN\"", "\"-Infinity\""]);
        let f32s: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32]));
        assert_eq!(written(f32s, DecimalMapping::Double), ["0.1"]);
        let dec: ArrayRef =
            Arc::new(Decimal128Array::from(vec![Some(12345), Some(-5), None]).with_precision_and_scale(10, 2).unwrap());
        assert_eq!(written(dec.clone(), DecimalMapping::Double), ["123.45", "-0.05", "null"]);
        assert_eq!(written(dec, DecimalMapping::Text), ["\"123.45\"", "\"-0.05\"", "null"]);
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a\"b\\c\n\u{1}é"), None]));
        assert_eq!(written(s, DecimalMapping::Double), ["\"a\\\"b\\\\c\\n\\u0001é\"", "null"]);
        let big: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 5]));
        let out = written(big, DecimalMapping::Double);
        assert!(out[0].starts_with("ERR") && out[1] == "5", "{out:?}");
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![0, 19_723, -1_000_000]));
        let out = written(dates, DecimalMapping::Double);
        assert_eq!(&out[..2], ["19700101", "20240101"]);
        assert!(out[2].starts_with("ERR"));
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_500_000, 1_500_001]));
        let out = written(ts, DecimalMapping::Double);
        assert!(out[0] == "1500" && out[1].starts_with("ERR"), "{out:?}");
    }

    #[test]
    fn time_conversion_is_exact() {
        assert_eq!(convert_instant(3, TimeUnit::Second, Precision::Nanos), Some(3_000_000_000));
        assert_eq!(convert_instant(3_000, TimeUnit::Microsecond, Precision::Millis), Some(3));
        assert_eq!(convert_instant(3_001, TimeUnit::Microsecond, Precision::Millis), None);
        assert_eq!(convert_instant(i64::MAX, TimeUnit::Second, Precision::Nanos), None);
        let days: ArrayRef = Arc::new(Date32Array::from(vec![Some(1), None]));
        assert_eq!(time_of(days.as_ref(), 0, Precision::Millis), Ok(86_400_000));
        assert!(time_of(days.as_ref(), 1, Precision::Millis).is_err());
        assert_eq!(date_int(-719_162), None, "year 1 is before IoTDB's DATE range");
    }
}
