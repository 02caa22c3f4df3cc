//! Arrow values → JSON text, written straight into a byte buffer: one writer per column, resolved
//! once per batch, no intermediate `serde_json::Value`. Shared by the JSON formats and the doris
//! sink; where they differ (DECIMAL quoted or a number, BYTES refused or base64, timestamp shape)
//! is a [`Style`].
//!
//! Common to all: integers and booleans as JSON numbers/booleans; floats as the shortest decimal
//! that reads back the same, NaN and ±Infinity as the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"` (Jackson's default); DATE `"yyyy-MM-dd"`; strings escaped per RFC 8259; ARRAY as
//! an array, ROW as an object, MAP as an object whose keys are the map keys' text.

use base64::Engine;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, GenericBinaryArray, GenericListArray,
    GenericStringArray, MapArray, OffsetSizeTrait, PrimitiveArray, StringViewArray, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::*;

use crate::connectors::calendar::civil_from_days;
use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;

/// How DECIMAL values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalStyle {
    /// An exact string, `"12.30"` (doris: no reader goes through a double).
    Quoted,
    /// A number as Java's `BigDecimal.toString` writes it: plain, or `2.7E-8` when the exponent
    /// is below -6 (Flink's default).
    Number,
    /// A number, always plain (`0.000000027`): Flink's `encode.decimal-as-plain-number`.
    PlainNumber,
}

/// How fractions of seconds are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// All digits of the column's unit (`12:00:00.100`).
    Fixed,
    /// As few digits as needed, none for a whole second (`12:00:00.1`): Java's formatters.
    Minimal,
}

/// What to do with a NULL map key (Flink's `map-null-key.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapNullKeyMode {
    Fail,
    Drop,
    Literal,
}

/// The shape of written values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    pub decimal: DecimalStyle,
    /// BYTES as base64 text; when false a BYTES column is refused.
    pub bytes_as_base64: bool,
    /// Between date and time: `b' '` or `b'T'`.
    pub timestamp_separator: u8,
    pub fraction: Fraction,
    /// TIMESTAMP_LTZ ends with `Z`.
    pub instant_suffix: bool,
    /// TIMESTAMP (without zone) ends with `Z` too (Flink's ISO-8601-WITH-OFFSET).
    pub local_suffix: bool,
    pub map_null_key: MapNullKeyMode,
    pub map_null_key_literal: String,
    /// ROW fields that are NULL are left out.
    pub ignore_null_fields: bool,
}

impl Style {
    /// The doris sink's JSON lines.
    pub fn doris() -> Style {
        Style {
            decimal: DecimalStyle::Quoted,
            bytes_as_base64: false,
            timestamp_separator: b' ',
            fraction: Fraction::Fixed,
            instant_suffix: false,
            local_suffix: false,
            map_null_key: MapNullKeyMode::Fail,
            map_null_key_literal: "null".into(),
            ignore_null_fields: false,
        }
    }
}

/// The name of a type inside `dt` that `style` cannot write, if any.
pub fn unsupported_type(dt: &DataType, style: &Style) -> Option<String> {
    match dt {
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
        | DataType::Utf8View => None,
        DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) if style.bytes_as_base64 => None,
        DataType::List(f) | DataType::LargeList(f) => unsupported_type(f.data_type(), style),
        DataType::Struct(fields) => fields.iter().find_map(|f| unsupported_type(f.data_type(), style)),
        DataType::Map(entries, _) => unsupported_type(entries.data_type(), style),
        other => Some(flink_type_name(other)),
    }
}

/// Writes the values of one column.
pub enum Writer<'a> {
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
    Decimal128(&'a PrimitiveArray<Decimal128Type>, i8, DecimalStyle),
    Decimal256(&'a PrimitiveArray<Decimal256Type>, i8, DecimalStyle),
    Date32(&'a PrimitiveArray<Date32Type>),
    Date64(&'a PrimitiveArray<Date64Type>),
    /// Any time of day as an integer count of `unit`.
    Time(Option<&'a NullBuffer>, Vec<i64>, TimeUnit, Fraction),
    /// A timestamp: the values, their unit, the separator and the suffix.
    Timestamp(Option<&'a NullBuffer>, &'a [i64], TimeUnit, u8, Fraction, bool),
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    Binary(&'a GenericBinaryArray<i32>),
    LargeBinary(&'a GenericBinaryArray<i64>),
    FixedBinary(&'a FixedSizeBinaryArray),
    List(&'a GenericListArray<i32>, Box<Writer<'a>>),
    LargeList(&'a GenericListArray<i64>, Box<Writer<'a>>),
    Struct(&'a StructArray, Vec<(Vec<u8>, Writer<'a>)>, bool),
    Map(&'a MapArray, Box<Writer<'a>>, Box<Writer<'a>>, MapNullKeyMode, &'a str),
}

impl<'a> Writer<'a> {
    /// A writer for `array`; the caller has checked its type with [`unsupported_type`].
    pub fn new(array: &'a dyn Array, style: &'a Style) -> Result<Self> {
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
            DataType::Decimal128(_, s) => Writer::Decimal128(array.as_primitive(), *s, style.decimal),
            DataType::Decimal256(_, s) => Writer::Decimal256(array.as_primitive(), *s, style.decimal),
            DataType::Date32 => Writer::Date32(array.as_primitive()),
            DataType::Date64 => Writer::Date64(array.as_primitive()),
            DataType::Time32(unit) => {
                let values: Vec<i64> = match unit {
                    TimeUnit::Second => {
                        array.as_primitive::<Time32SecondType>().values().iter().map(|v| *v as i64).collect()
                    }
                    _ => array.as_primitive::<Time32MillisecondType>().values().iter().map(|v| *v as i64).collect(),
                };
                Writer::Time(array.nulls(), values, *unit, style.fraction)
            }
            DataType::Time64(unit) => {
                let values = match unit {
                    TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().values().to_vec(),
                    _ => array.as_primitive::<Time64MicrosecondType>().values().to_vec(),
                };
                Writer::Time(array.nulls(), values, *unit, style.fraction)
            }
            DataType::Timestamp(unit, tz) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
                };
                let suffix = if tz.is_some() { style.instant_suffix } else { style.local_suffix };
                Writer::Timestamp(array.nulls(), values, *unit, style.timestamp_separator, style.fraction, suffix)
            }
            DataType::Utf8 => Writer::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Writer::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Writer::Utf8View(array.as_string_view()),
            DataType::Binary if style.bytes_as_base64 => Writer::Binary(array.as_binary::<i32>()),
            DataType::LargeBinary if style.bytes_as_base64 => Writer::LargeBinary(array.as_binary::<i64>()),
            DataType::FixedSizeBinary(_) if style.bytes_as_base64 => Writer::FixedBinary(array.as_fixed_size_binary()),
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                Writer::List(list, Box::new(Writer::new(list.values().as_ref(), style)?))
            }
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                Writer::LargeList(list, Box::new(Writer::new(list.values().as_ref(), style)?))
            }
            DataType::Struct(fields) => {
                let strukt = array.as_struct();
                let children = fields
                    .iter()
                    .zip(strukt.columns())
                    .map(|(f, c)| {
                        let mut key = Vec::with_capacity(f.name().len() + 3);
                        write_str(&mut key, f.name());
                        key.push(b':');
                        Ok((key, Writer::new(c.as_ref(), style)?))
                    })
                    .collect::<Result<_>>()?;
                Writer::Struct(strukt, children, style.ignore_null_fields)
            }
            DataType::Map(_, _) => {
                let map = array.as_map();
                let keys: &ArrayRef = map.keys();
                let values: &ArrayRef = map.values();
                Writer::Map(
                    map,
                    Box::new(Writer::new(keys.as_ref(), style)?),
                    Box::new(Writer::new(values.as_ref(), style)?),
                    style.map_null_key,
                    &style.map_null_key_literal,
                )
            }
            other => {
                return Err(Error::internal(format!("JSON writer met type {other} that its checks refuse")));
            }
        })
    }

    pub fn is_null(&self, row: usize) -> bool {
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
            Writer::Decimal128(a, _, _) => a.nulls(),
            Writer::Decimal256(a, _, _) => a.nulls(),
            Writer::Date32(a) => a.nulls(),
            Writer::Date64(a) => a.nulls(),
            Writer::Time(n, _, _, _) | Writer::Timestamp(n, _, _, _, _, _) => *n,
            Writer::Utf8(a) => a.nulls(),
            Writer::LargeUtf8(a) => a.nulls(),
            Writer::Utf8View(a) => a.nulls(),
            Writer::Binary(a) => a.nulls(),
            Writer::LargeBinary(a) => a.nulls(),
            Writer::FixedBinary(a) => a.nulls(),
            Writer::List(a, _) => a.nulls(),
            Writer::LargeList(a, _) => a.nulls(),
            Writer::Struct(a, _, _) => a.nulls(),
            Writer::Map(a, _, _, _, _) => a.nulls(),
        };
        nulls.is_some_and(|n| n.is_null(row))
    }

    /// Appends the JSON of row `row`'s value. Fails only for a NULL map key under
    /// [`MapNullKeyMode::Fail`].
    pub fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<()> {
        if self.is_null(row) {
            out.extend_from_slice(b"null");
            return Ok(());
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
            Writer::Decimal128(a, scale, style) => write_decimal(out, ints.format(a.value(row)), *scale, *style),
            Writer::Decimal256(a, scale, style) => write_decimal(out, &a.value(row).to_string(), *scale, *style),
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
            Writer::Time(_, values, unit, fraction) => {
                out.push(b'"');
                let (per_second, digits) = unit_scale(*unit);
                let value = values[row];
                write_time_of_day(out, value.div_euclid(per_second), value.rem_euclid(per_second), digits, *fraction);
                out.push(b'"');
            }
            Writer::Timestamp(_, values, unit, separator, fraction, suffix) => {
                out.push(b'"');
                let (per_second, digits) = unit_scale(*unit);
                let value = values[row];
                let seconds = value.div_euclid(per_second);
                write_date(out, seconds.div_euclid(86_400));
                out.push(*separator);
                write_time_of_day(out, seconds.rem_euclid(86_400), value.rem_euclid(per_second), digits, *fraction);
                if *suffix {
                    out.push(b'Z');
                }
                out.push(b'"');
            }
            Writer::Utf8(a) => write_str(out, a.value(row)),
            Writer::LargeUtf8(a) => write_str(out, a.value(row)),
            Writer::Utf8View(a) => write_str(out, a.value(row)),
            Writer::Binary(a) => write_base64(out, a.value(row)),
            Writer::LargeBinary(a) => write_base64(out, a.value(row)),
            Writer::FixedBinary(a) => write_base64(out, a.value(row)),
            Writer::List(a, values) => write_list(out, a.value_offsets(), row, values)?,
            Writer::LargeList(a, values) => write_list(out, a.value_offsets(), row, values)?,
            Writer::Struct(_, children, ignore_null_fields) => {
                out.push(b'{');
                let mut first = true;
                for (key, child) in children {
                    if *ignore_null_fields && child.is_null(row) {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend_from_slice(key);
                    child.write(row, out)?;
                }
                out.push(b'}');
            }
            Writer::Map(a, keys, values, null_keys, literal) => {
                let offsets = a.value_offsets();
                out.push(b'{');
                let mut key_text = Vec::new();
                let mut first = true;
                for i in offsets[row] as usize..offsets[row + 1] as usize {
                    key_text.clear();
                    if keys.is_null(i) {
                        match null_keys {
                            MapNullKeyMode::Drop => continue,
                            MapNullKeyMode::Literal => write_str(&mut key_text, literal),
                            MapNullKeyMode::Fail => {
                                return Err(Error::user(
                                    "a MAP value has a NULL key, which JSON cannot hold; set 'map-null-key.mode' of the format to 'DROP' or 'LITERAL'",
                                ))
                            }
                        }
                    } else {
                        keys.write(i, &mut key_text)?;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    if key_text.first() == Some(&b'"') {
                        out.extend_from_slice(&key_text);
                    } else {
                        // A non-string key (number, boolean…) becomes the JSON string of its text.
                        write_str(out, &String::from_utf8_lossy(&key_text));
                    }
                    out.push(b':');
                    values.write(i, out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}

fn write_list<O: OffsetSizeTrait>(out: &mut Vec<u8>, offsets: &[O], row: usize, values: &Writer<'_>) -> Result<()> {
    out.push(b'[');
    for (n, i) in (offsets[row].as_usize()..offsets[row + 1].as_usize()).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        values.write(i, out)?;
    }
    out.push(b']');
    Ok(())
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
    let written = base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
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

fn write_decimal(out: &mut Vec<u8>, digits: &str, scale: i8, style: DecimalStyle) {
    match style {
        DecimalStyle::Quoted => {
            out.push(b'"');
            write_scaled(out, digits, scale);
            out.push(b'"');
        }
        DecimalStyle::PlainNumber => write_scaled(out, digits, scale),
        DecimalStyle::Number => write_java_decimal(out, digits, scale),
    }
}

/// Java's `BigDecimal.toString`: plain when the scale is ≥ 0 and the adjusted exponent is ≥ -6,
/// else one digit, the rest after a point, and `E±n`.
fn write_java_decimal(out: &mut Vec<u8>, digits: &str, scale: i8) {
    let (negative, body) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    let adjusted = -(scale as i64) + body.len() as i64 - 1;
    if scale >= 0 && adjusted >= -6 {
        write_scaled(out, digits, scale);
        return;
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&body.as_bytes()[..1]);
    if body.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&body.as_bytes()[1..]);
    }
    out.push(b'E');
    if adjusted > 0 {
        out.push(b'+');
    }
    out.extend_from_slice(itoa::Buffer::new().format(adjusted).as_bytes());
}

/// Writes the integer text `digits` (optionally signed) with `scale` digits after the point.
pub(crate) fn write_scaled(out: &mut Vec<u8>, digits: &str, scale: i8) {
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

/// Units per second and fraction digits of a time unit.
pub(crate) fn unit_scale(unit: TimeUnit) -> (i64, usize) {
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
pub(crate) fn write_date(out: &mut Vec<u8>, days: i64) {
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

/// `hh:mm:ss` and the fraction: `digits` digits, or with [`Fraction::Minimal`] only those up to
/// the last non-zero one (none for a whole second).
pub(crate) fn write_time_of_day(out: &mut Vec<u8>, seconds: i64, fraction: i64, digits: usize, style: Fraction) {
    push_digits(out, seconds / 3600, 2);
    out.push(b':');
    push_digits(out, seconds / 60 % 60, 2);
    out.push(b':');
    push_digits(out, seconds % 60, 2);
    if digits == 0 || style == Fraction::Minimal && fraction == 0 {
        return;
    }
    out.push(b'.');
    let start = out.len();
    push_digits(out, fraction, digits);
    if style == Fraction::Minimal {
        while out.len() > start + 1 && out.last() == Some(&b'0') {
            out.pop();
        }
    }
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
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

/// `{"a":…,"b":…}` for rows of a batch, the keys written once.
pub(crate) struct RowWriter<'a> {
    writers: Vec<(&'a [u8], Writer<'a>)>,
    ignore_null_fields: bool,
}

impl<'a> RowWriter<'a> {
    /// `keys[i]` is `"name":` of column `i`.
    pub(crate) fn new(keys: &'a [Vec<u8>], columns: &'a [ArrayRef], style: &'a Style) -> Result<Self> {
        let writers = keys
            .iter()
            .zip(columns)
            .map(|(k, c)| Ok((k.as_slice(), Writer::new(c.as_ref(), style)?)))
            .collect::<Result<_>>()?;
        Ok(RowWriter { writers, ignore_null_fields: style.ignore_null_fields })
    }

    pub(crate) fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<()> {
        out.push(b'{');
        let mut first = true;
        for (key, writer) in &self.writers {
            if self.ignore_null_fields && writer.is_null(row) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            writer.write(row, out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// `"name":` for each field of a schema.
pub(crate) fn field_keys(schema: &Schema) -> Vec<Vec<u8>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let mut key = Vec::with_capacity(f.name().len() + 3);
            write_str(&mut key, f.name());
            key.push(b':');
            key
        })
        .collect()
}

/// Fails, naming the column, if `style` cannot write one of `schema`'s types; `who` names the
/// writer in the message.
pub(crate) fn check_schema(schema: &Schema, style: &Style, who: &str) -> Result<()> {
    for field in schema.fields() {
        if let Some(t) = unsupported_type(field.data_type(), style) {
            return Err(Error::user(format!(
                "column `{}` has type {}, which {who} cannot write ({t} has no JSON form it writes); CAST it, e.g. to STRING",
                field.name(),
                flink_type_name(field.data_type())
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn java(digits: &str, scale: i8) -> String {
        let mut out = Vec::new();
        write_java_decimal(&mut out, digits, scale);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_print_as_java_big_decimal_to_string() {
        assert_eq!(java("1230", 2), "12.30");
        assert_eq!(java("27", 9), "2.7E-8");
        assert_eq!(java("0", 9), "0E-9");
        assert_eq!(java("0", 2), "0.00");
        assert_eq!(java("-27", 9), "-2.7E-8");
        assert_eq!(java("1", 7), "1E-7");
        assert_eq!(java("1", 6), "0.000001");
        assert_eq!(java("123", 0), "123");
        assert_eq!(java("123", -2), "1.23E+4");
    }

    #[test]
    fn minimal_fractions_drop_trailing_zeros() {
        let mut out = Vec::new();
        write_time_of_day(&mut out, 45_296, 100_000, 6, Fraction::Minimal);
        assert_eq!(out, b"12:34:56.1");
        out.clear();
        write_time_of_day(&mut out, 45_296, 0, 6, Fraction::Minimal);
        assert_eq!(out, b"12:34:56");
        out.clear();
        write_time_of_day(&mut out, 45_296, 100_000, 6, Fraction::Fixed);
        assert_eq!(out, b"12:34:56.100000");
    }
}
