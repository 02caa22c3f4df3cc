//! PostgreSQL values decoded straight into Arrow builders of the declared column types: text
//! (pgoutput `t` columns and `COPY … TO STDOUT` fields, in the output format pinned by the session
//! settings in [`super::SESSION_SETTINGS`]) and, for the snapshot, the binary send format of the
//! common types (`COPY … (FORMAT binary)`), which gives the same values. Pure functions, no I/O.
//!
//! Values are checked, never rounded: a fraction the declared precision cannot hold, an integer
//! out of range or an `infinity` date is an error naming the value, not a silently changed row.
//! The one rounding is Flink's own, of a `real` or `double precision` value declared DECIMAL
//! ([`crate::connectors::float_decimal`]): such values are inexact to begin with.

use std::sync::Arc;

use crate::connectors::calendar::days_from_civil;
use datafusion::arrow::array::{
    make_array, Array, ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Decimal256Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, ListArray, StringBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{i256, ArrowNativeTypeOp, DataType, Field, TimeUnit};

use crate::connectors::float_decimal::{float_to_decimal, unfit_message, Float};

/// A floating-point source column, whose values a DECIMAL column receives through Flink's
/// conversion (shortest decimal form of the value at this width, rounded half-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatSource {
    /// `real` (`float4`).
    Real,
    /// `double precision` (`float8`).
    Double,
}

impl FloatSource {
    /// By the type's name as `format_type` spells it.
    pub fn of_type(pg_type: &str) -> Option<FloatSource> {
        match pg_type {
            "real" => Some(FloatSource::Real),
            "double precision" => Some(FloatSource::Double),
            _ => None,
        }
    }

    /// By type OID, as pgoutput's relation messages describe columns (`float4` 700, `float8` 701).
    pub fn of_oid(oid: u32) -> Option<FloatSource> {
        match oid {
            700 => Some(FloatSource::Real),
            701 => Some(FloatSource::Double),
            _ => None,
        }
    }
}
/// A source column's value in `COPY … TO STDOUT (FORMAT binary)`: the type's own binary send
/// format, which the snapshot decodes without the server formatting text or us parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryForm {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Date,
    /// `time without time zone`: microseconds since midnight.
    Time,
    /// `timestamp` and `timestamptz`: microseconds since 2000-01-01 (UTC for `timestamptz`).
    Timestamp,
    /// `text`, `varchar`, `char(n)` (padded, as its text output) and `json`: the bytes as they are.
    Text,
    Bytea,
    /// A version byte (1), then the text form.
    Jsonb,
    Uuid,
}

impl BinaryForm {
    /// The form a column of `pg_type` (as `format_type` spells it) is decoded from into a
    /// `declared` column, when that pair has a decoder giving exactly the value the text form
    /// gives; `None` sends the table through the text path.
    pub fn of(pg_type: &str, declared: &DataType) -> Option<BinaryForm> {
        if pg_type.ends_with("[]") {
            return None;
        }
        let base = pg_type.split(['(', ' ']).next().unwrap_or(pg_type);
        let source = match base {
            "boolean" => BinaryForm::Bool,
            "smallint" => BinaryForm::Int2,
            "integer" => BinaryForm::Int4,
            "bigint" => BinaryForm::Int8,
            "real" => BinaryForm::Float4,
            "double" if pg_type == "double precision" => BinaryForm::Float8,
            "numeric" => BinaryForm::Numeric,
            "date" => BinaryForm::Date,
            "time" if pg_type.ends_with("without time zone") => BinaryForm::Time,
            "timestamp" => BinaryForm::Timestamp,
            "text" | "json" | "bpchar" => BinaryForm::Text,
            "character" => BinaryForm::Text,
            "bytea" => BinaryForm::Bytea,
            "jsonb" => BinaryForm::Jsonb,
            "uuid" => BinaryForm::Uuid,
            _ => return None,
        };
        use BinaryForm::*;
        let fits = match declared {
            DataType::Boolean => source == Bool,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => matches!(source, Int2 | Int4 | Int8),
            DataType::Decimal128(..) | DataType::Decimal256(..) => {
                matches!(source, Numeric | Int2 | Int4 | Int8 | Float4 | Float8)
            }
            DataType::Float32 => source == Float4,
            // `real` into DOUBLE goes as text: the stream's shortest text of the float, read as
            // a double, is not the float widened.
            DataType::Float64 => source == Float8,
            DataType::Utf8 => matches!(source, Text | Jsonb | Uuid),
            DataType::Binary => source == Bytea,
            DataType::Date32 => source == Date,
            DataType::Time32(_) | DataType::Time64(_) => source == Time,
            DataType::Timestamp(..) => source == Timestamp,
            _ => false,
        };
        fits.then_some(source)
    }
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
pub(super) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// A NUMERIC in its binary form (digit count, weight of the first base-10000 digit, sign,
/// display scale, digits) as an integer scaled by `10^scale`. Refuses NaN and infinities, a
/// non-zero digit beyond `scale`, and a value the integer type cannot hold.
fn numeric_scaled<T: ArrowNativeTypeOp>(bytes: &[u8], scale: i8) -> Result<T, String> {
    let word = |i: usize| bytes.get(2 * i..2 * i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (Some(ndigits), Some(weight), Some(sign)) = (word(0), word(1), word(2)) else {
        return Err("PostgreSQL sent a truncated NUMERIC".into());
    };
    if bytes.len() != 8 + 2 * ndigits as usize {
        return Err("PostgreSQL sent a NUMERIC of the wrong length".into());
    }
    let weight = weight as i16 as i64;
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => {
            return Err(format!(
                "{} is not a finite decimal number (NaN and Infinity need a STRING or DOUBLE column)",
                numeric_text(bytes)
            ))
        }
    };
    let scale = scale.max(0) as i64;
    let too_big = || format!("'{}' does not fit DECIMAL", numeric_text(bytes));
    let mut value = T::ZERO;
    for i in 0..ndigits as usize {
        let digit = word(4 + i).unwrap_or(0) as i64;
        if digit == 0 {
            continue;
        }
        let exponent = 4 * (weight - i as i64) + scale;
        let part = if exponent >= 0 {
            let factor = u32::try_from(exponent).ok().and_then(|e| T::usize_as(10).pow_checked(e).ok());
            T::usize_as(digit as usize).mul_checked(factor.ok_or_else(too_big)?).map_err(|_| too_big())?
        } else {
            let divisor = 10i64.pow((-exponent).min(4) as u32);
            if -exponent >= 4 || digit % divisor != 0 {
                return Err(format!(
                    "'{}' has more than {scale} fraction digits; declare a larger DECIMAL scale",
                    numeric_text(bytes)
                ));
            }
            T::usize_as((digit / divisor) as usize)
        };
        value = value.add_checked(part).map_err(|_| too_big())?;
    }
    Ok(if negative { value.neg_wrapping() } else { value })
}

/// A binary NUMERIC as PostgreSQL prints it, for messages.
fn numeric_text(bytes: &[u8]) -> String {
    let word = |i: usize| bytes.get(2 * i..2 * i + 2).map_or(0, |w| u16::from_be_bytes([w[0], w[1]]));
    let (ndigits, weight, sign, dscale) = (word(0) as i64, word(1) as i16 as i64, word(2), word(3) as usize);
    match sign {
        0xC000 => return "NaN".into(),
        0xD000 => return "Infinity".into(),
        0xF000 => return "-Infinity".into(),
        _ => {}
    }
    // The base-10000 digit worth 10000^power.
    let digit =
        |power: i64| if (0..ndigits).contains(&(weight - power)) { word(4 + (weight - power) as usize) } else { 0 };
    let mut text = String::from(if sign == 0x4000 { "-" } else { "" });
    if weight < 0 {
        text.push('0');
    }
    for power in (0..=weight).rev() {
        if power == weight {
            text.push_str(&digit(power).to_string());
        } else {
            text.push_str(&format!("{:04}", digit(power)));
        }
    }
    if dscale > 0 {
        let mut fraction: String = (1..=dscale.div_ceil(4) as i64).map(|k| format!("{:04}", digit(-k))).collect();
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    text
}

/// Microseconds as `unit`s, refusing to drop a non-zero fraction; `shown` renders the value for
/// the message.
fn micros_in_unit(micros: i64, unit: TimeUnit, shown: impl Fn() -> String) -> Result<i64, String> {
    let precise = |per: i64, digits: u32| {
        if micros % per == 0 {
            Ok(micros / per)
        } else {
            Err(format!(
                "'{}' has more fractional-second digits than the declared precision ({digits}) holds; declare a larger precision",
                shown()
            ))
        }
    };
    match unit {
        TimeUnit::Second => precise(1_000_000, 0),
        TimeUnit::Millisecond => precise(1_000, 3),
        TimeUnit::Microsecond => Ok(micros),
        TimeUnit::Nanosecond => {
            micros.checked_mul(1_000).ok_or_else(|| format!("'{}' is outside the range of TIMESTAMP(9)", shown()))
        }
    }
}

fn shown_timestamp(micros_since_1970: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros_since_1970)
        .map_or_else(|| format!("{micros_since_1970} µs"), |t| t.naive_utc().to_string())
}

fn shown_time(micros: i64) -> String {
    let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
    format!("{:02}:{:02}:{:02}.{fraction:06}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn fixed<const N: usize>(bytes: &[u8], form: BinaryForm) -> Result<[u8; N], String> {
    bytes.try_into().map_err(|_| format!("PostgreSQL sent {} bytes for a {form:?} value, expected {N}", bytes.len()))
}

fn binary_integer(bytes: &[u8], form: BinaryForm) -> Result<i64, String> {
    Ok(match form {
        BinaryForm::Int2 => i16::from_be_bytes(fixed(bytes, form)?) as i64,
        BinaryForm::Int4 => i32::from_be_bytes(fixed(bytes, form)?) as i64,
        _ => i64::from_be_bytes(fixed(bytes, form)?),
    })
}

fn narrow<T: TryFrom<i64>>(v: i64) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("'{v}' is not a whole number within the declared type's range"))
}

/// How a declared column is filled from PostgreSQL text.
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Utf8(StringBuilder),
    /// `bytea`, hex-encoded (`\x…`): the only source type the checks let into BYTES.
    Binary(BinaryBuilder),
    Decimal128 {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Decimal256 {
        builder: Decimal256Builder,
        precision: u8,
        scale: i8,
    },
    Date(Int32Builder),
    /// Time of day in `unit`s, Time32 for seconds/milliseconds.
    Time {
        values: Int64Builder,
        unit: TimeUnit,
        data_type: DataType,
    },
    /// `timestamp` (no zone) or `timestamptz` (UTC offset in the text) in `unit`s.
    Timestamp {
        values: Int64Builder,
        unit: TimeUnit,
        data_type: DataType,
    },
    List {
        item: Box<ColumnBuilder>,
        field: Arc<Field>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
}

impl ColumnBuilder {
    /// A builder for `data_type`, or `None` when the Arrow type cannot be filled from text.
    pub fn new(data_type: &DataType, capacity: usize) -> Option<ColumnBuilder> {
        Some(match data_type {
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => ColumnBuilder::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => ColumnBuilder::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => ColumnBuilder::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => ColumnBuilder::I64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => ColumnBuilder::U8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => ColumnBuilder::U16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => ColumnBuilder::U32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => ColumnBuilder::U64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => ColumnBuilder::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::F64(Float64Builder::with_capacity(capacity)),
            DataType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Binary => ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal128 {
                builder: Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s).ok()?,
                precision: *p,
                scale: *s,
            },
            DataType::Decimal256(p, s) => ColumnBuilder::Decimal256 {
                builder: Decimal256Builder::with_capacity(capacity).with_precision_and_scale(*p, *s).ok()?,
                precision: *p,
                scale: *s,
            },
            DataType::Date32 => ColumnBuilder::Date(Int32Builder::with_capacity(capacity)),
            DataType::Time32(unit) | DataType::Time64(unit) => ColumnBuilder::Time {
                values: Int64Builder::with_capacity(capacity),
                unit: *unit,
                data_type: data_type.clone(),
            },
            DataType::Timestamp(unit, _) => ColumnBuilder::Timestamp {
                values: Int64Builder::with_capacity(capacity),
                unit: *unit,
                data_type: data_type.clone(),
            },
            DataType::List(field) => ColumnBuilder::List {
                item: Box::new(ColumnBuilder::new(field.data_type(), capacity)?),
                field: field.clone(),
                offsets: vec![0],
                valid: Vec::with_capacity(capacity),
            },
            _ => return None,
        })
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I8(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) => b.append_null(),
            ColumnBuilder::U8(b) => b.append_null(),
            ColumnBuilder::U16(b) => b.append_null(),
            ColumnBuilder::U32(b) => b.append_null(),
            ColumnBuilder::U64(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Binary(builder) => builder.append_null(),
            ColumnBuilder::Decimal128 { builder, .. } => builder.append_null(),
            ColumnBuilder::Decimal256 { builder, .. } => builder.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time { values, .. } | ColumnBuilder::Timestamp { values, .. } => values.append_null(),
            ColumnBuilder::List { offsets, valid, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                valid.push(false);
            }
        }
    }

    /// Appends one value given in PostgreSQL's text output format.
    pub fn append_text(&mut self, text: &[u8]) -> Result<(), String> {
        match self {
            ColumnBuilder::Bool(b) => match text {
                b"t" => b.append_value(true),
                b"f" => b.append_value(false),
                _ => return Err(format!("'{}' is not a boolean", shown(text))),
            },
            ColumnBuilder::I8(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::I16(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::I32(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::I64(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::U8(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::U16(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::U32(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::U64(b) => b.append_value(parse_int(text)?),
            ColumnBuilder::F32(b) => b.append_value(parse_float(text)?),
            ColumnBuilder::F64(b) => b.append_value(parse_float(text)?),
            ColumnBuilder::Utf8(b) => b.append_value(utf8(text)?),
            ColumnBuilder::Binary(builder) => builder.append_value(decode_bytea(text)?),
            ColumnBuilder::Decimal128 { builder, scale, .. } => {
                let (digits, negative) = parse_decimal_digits(text, *scale)?;
                let mut value: i128 = 0;
                for d in digits {
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(d as i128))
                        .ok_or_else(|| format!("{} does not fit DECIMAL", shown(text)))?;
                }
                let value = if negative { -value } else { value };
                builder.append_value(value);
            }
            ColumnBuilder::Decimal256 { builder, scale, .. } => {
                let (digits, negative) = parse_decimal_digits(text, *scale)?;
                let ten = i256::from_i128(10);
                let mut value = i256::ZERO;
                for d in digits {
                    value = value
                        .checked_mul(ten)
                        .and_then(|v| v.checked_add(i256::from_i128(d as i128)))
                        .ok_or_else(|| format!("{} does not fit DECIMAL", shown(text)))?;
                }
                builder.append_value(if negative { value.wrapping_neg() } else { value });
            }
            ColumnBuilder::Date(b) => b.append_value(parse_date(text)?),
            ColumnBuilder::Time { values, unit, .. } => values.append_value(parse_time(text, *unit)?),
            ColumnBuilder::Timestamp { values, unit, .. } => values.append_value(parse_timestamp(text, *unit)?),
            ColumnBuilder::List { item, offsets, valid, .. } => {
                let elements = parse_array(text)?;
                for element in &elements {
                    match element {
                        Some(e) => item.append_text(e)?,
                        None => item.append_null(),
                    }
                }
                let end = offsets.last().copied().unwrap_or(0) + elements.len() as i32;
                offsets.push(end);
                valid.push(true);
            }
        }
        Ok(())
    }

    /// Appends one value, given in PostgreSQL's text output format, of a floating-point source
    /// column: a DECIMAL column receives it through Flink's conversion, any other as text.
    pub fn append_float_text(&mut self, text: &[u8], source: FloatSource) -> Result<(), String> {
        if !matches!(self, ColumnBuilder::Decimal128 { .. } | ColumnBuilder::Decimal256 { .. }) {
            return self.append_text(text);
        }
        let value = match source {
            FloatSource::Real => Float::F32(parse_float(text)?),
            FloatSource::Double => Float::F64(parse_float(text)?),
        };
        self.append_float_decimal(value)
    }

    /// A floating-point value into a DECIMAL column, as Flink converts it.
    fn append_float_decimal(&mut self, value: Float) -> Result<(), String> {
        let fit = |p: u8, s: i8| float_to_decimal(value, p, s).map_err(|unfit| unfit_message(value, p, s, unfit));
        match self {
            ColumnBuilder::Decimal128 { builder, precision, scale } => {
                let unscaled = fit(*precision, *scale)?;
                // Within 38 digits, checked by the conversion.
                builder.append_value(unscaled.to_i128().ok_or("a DECIMAL beyond 38 digits")?)
            }
            ColumnBuilder::Decimal256 { builder, precision, scale } => builder.append_value(fit(*precision, *scale)?),
            _ => return Err(format!("the floating-point value {value} needs a DECIMAL, FLOAT or DOUBLE column")),
        }
        Ok(())
    }

    /// Appends one value in the binary form [`BinaryForm::of`] chose for this column.
    pub fn append_binary(&mut self, form: BinaryForm, bytes: &[u8]) -> Result<(), String> {
        use BinaryForm as F;
        match (self, form) {
            (ColumnBuilder::Bool(b), F::Bool) => b.append_value(fixed::<1>(bytes, form)?[0] != 0),
            (ColumnBuilder::I8(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::I16(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::I32(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::I64(b), F::Int2 | F::Int4 | F::Int8) => b.append_value(binary_integer(bytes, form)?),
            (ColumnBuilder::U8(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::U16(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::U32(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::U64(b), F::Int2 | F::Int4 | F::Int8) => {
                b.append_value(narrow(binary_integer(bytes, form)?)?)
            }
            (ColumnBuilder::F32(b), F::Float4) => b.append_value(f32::from_be_bytes(fixed(bytes, form)?)),
            (ColumnBuilder::F64(b), F::Float8) => b.append_value(f64::from_be_bytes(fixed(bytes, form)?)),
            (ColumnBuilder::Utf8(b), F::Text) => b.append_value(utf8(bytes)?),
            (ColumnBuilder::Utf8(b), F::Jsonb) => match bytes.split_first() {
                Some((1, text)) => b.append_value(utf8(text)?),
                _ => return Err("PostgreSQL sent a jsonb value in an unknown binary version".into()),
            },
            (ColumnBuilder::Utf8(b), F::Uuid) => {
                let id: [u8; 16] = fixed(bytes, form)?;
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut text = [b'-'; 36];
                let mut at = 0;
                for (i, byte) in id.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        at += 1;
                    }
                    text[at] = HEX[(byte >> 4) as usize];
                    text[at + 1] = HEX[(byte & 15) as usize];
                    at += 2;
                }
                b.append_value(std::str::from_utf8(&text).map_err(|e| e.to_string())?);
            }
            (ColumnBuilder::Binary(b), F::Bytea) => b.append_value(bytes),
            (ColumnBuilder::Decimal128 { builder, scale, .. }, F::Numeric) => {
                builder.append_value(numeric_scaled::<i128>(bytes, *scale)?)
            }
            (ColumnBuilder::Decimal256 { builder, scale, .. }, F::Numeric) => {
                builder.append_value(numeric_scaled::<i256>(bytes, *scale)?)
            }
            (decimal @ (ColumnBuilder::Decimal128 { .. } | ColumnBuilder::Decimal256 { .. }), F::Float4) => {
                decimal.append_float_decimal(Float::F32(f32::from_be_bytes(fixed(bytes, form)?)))?
            }
            (decimal @ (ColumnBuilder::Decimal128 { .. } | ColumnBuilder::Decimal256 { .. }), F::Float8) => {
                decimal.append_float_decimal(Float::F64(f64::from_be_bytes(fixed(bytes, form)?)))?
            }
            (ColumnBuilder::Decimal128 { builder, scale, .. }, F::Int2 | F::Int4 | F::Int8) => {
                let v = binary_integer(bytes, form)?;
                let scaled = 10i128.checked_pow((*scale).max(0) as u32).and_then(|f| (v as i128).checked_mul(f));
                builder.append_value(scaled.ok_or_else(|| format!("'{v}' does not fit DECIMAL"))?)
            }
            (ColumnBuilder::Decimal256 { builder, scale, .. }, F::Int2 | F::Int4 | F::Int8) => {
                let v = binary_integer(bytes, form)?;
                let scaled = i256::from_i128(10)
                    .checked_pow((*scale).max(0) as u32)
                    .and_then(|f| i256::from_i128(v as i128).checked_mul(f));
                builder.append_value(scaled.ok_or_else(|| format!("'{v}' does not fit DECIMAL"))?)
            }
            (ColumnBuilder::Date(b), F::Date) => {
                let days = i32::from_be_bytes(fixed(bytes, form)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("'infinity' is not a finite ISO date (infinity needs a STRING column)".into());
                }
                let days = days.checked_add(PG_EPOCH_DAYS).ok_or("a date outside the DATE range")?;
                b.append_value(days)
            }
            (ColumnBuilder::Time { values, unit, .. }, F::Time) => {
                let micros = i64::from_be_bytes(fixed(bytes, form)?);
                values.append_value(micros_in_unit(micros, *unit, || shown_time(micros))?)
            }
            (ColumnBuilder::Timestamp { values, unit, .. }, F::Timestamp) => {
                let micros = i64::from_be_bytes(fixed(bytes, form)?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("'infinity' is not a finite timestamp (infinity needs a STRING column)".into());
                }
                let since_1970 =
                    micros.checked_add(PG_EPOCH_MICROS).ok_or("a timestamp outside the supported range")?;
                values.append_value(micros_in_unit(since_1970, *unit, || shown_timestamp(since_1970))?)
            }
            (_, form) => return Err(format!("no decoder for binary {form:?} into this column")),
        }
        Ok(())
    }

    /// Appends a point in time given in milliseconds since the epoch (the `op_ts` metadata).
    pub fn append_epoch_millis(&mut self, millis: i64) -> Result<(), String> {
        match self {
            ColumnBuilder::Timestamp { values, unit, .. } => {
                let v = match unit {
                    TimeUnit::Second => millis.div_euclid(1000),
                    TimeUnit::Millisecond => millis,
                    TimeUnit::Microsecond => millis.saturating_mul(1000),
                    TimeUnit::Nanosecond => millis.saturating_mul(1_000_000),
                };
                values.append_value(v);
                Ok(())
            }
            _ => Err("a point in time needs a TIMESTAMP_LTZ column".to_string()),
        }
    }

    pub fn finish(&mut self) -> Result<ArrayRef, String> {
        Ok(match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I8(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::U8(b) => Arc::new(b.finish()),
            ColumnBuilder::U16(b) => Arc::new(b.finish()),
            ColumnBuilder::U32(b) => Arc::new(b.finish()),
            ColumnBuilder::U64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Decimal128 { builder, .. } => Arc::new(builder.finish()),
            ColumnBuilder::Decimal256 { builder, .. } => Arc::new(builder.finish()),
            ColumnBuilder::Date(b) => retype(Arc::new(b.finish()), &DataType::Date32)?,
            ColumnBuilder::Time { values, data_type, .. } => {
                let values = values.finish();
                if matches!(data_type, DataType::Time32(_)) {
                    // Time32 holds at most 86 400 000 ms, checked when parsed.
                    let narrow: Vec<Option<i32>> = values.iter().map(|v| v.map(|v| v as i32)).collect();
                    retype(Arc::new(datafusion::arrow::array::Int32Array::from(narrow)), data_type)?
                } else {
                    retype(Arc::new(values), data_type)?
                }
            }
            ColumnBuilder::Timestamp { values, data_type, .. } => retype(Arc::new(values.finish()), data_type)?,
            ColumnBuilder::List { item, field, offsets, valid } => {
                let values = item.finish()?;
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(valid));
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(ListArray::try_new(field.clone(), offsets, values, nulls).map_err(|e| e.to_string())?)
            }
        })
    }
}

fn retype(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef, String> {
    let data = array.to_data().into_builder().data_type(data_type.clone()).build().map_err(|e| e.to_string())?;
    Ok(make_array(data))
}

/// The value for messages, shortened.
fn shown(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    if s.chars().count() > 60 {
        format!("'{}…'", s.chars().take(60).collect::<String>())
    } else {
        format!("'{s}'")
    }
}

fn utf8(text: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(text).map_err(|_| format!("{} is not valid UTF-8", shown(text)))
}

fn parse_int<T: std::str::FromStr>(text: &[u8]) -> Result<T, String> {
    utf8(text)?.parse().map_err(|_| format!("{} is not a whole number within the declared type's range", shown(text)))
}

fn parse_float<T: std::str::FromStr>(text: &[u8]) -> Result<T, String> {
    utf8(text)?.parse().map_err(|_| format!("{} is not a floating-point number", shown(text)))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_bytea(text: &[u8]) -> Result<Vec<u8>, String> {
    let Some(hex) = text.strip_prefix(b"\\x") else {
        return Err(format!("bytea {} is not in hex format (bytea_output = 'hex')", shown(text)));
    };
    if hex.len() % 2 != 0 {
        return Err(format!("bytea {} has an odd number of hex digits", shown(text)));
    }
    hex.chunks_exact(2)
        .map(|p| match (hex_digit(p[0]), hex_digit(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(format!("bytea {} has a non-hex digit", shown(text))),
        })
        .collect()
}

/// The digits of a decimal scaled to exactly `scale` fraction digits, and its sign. Fails rather
/// than drop a non-zero digit.
fn parse_decimal_digits(text: &[u8], scale: i8) -> Result<(Vec<u8>, bool), String> {
    let (negative, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match body.iter().position(|b| *b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &[][..]),
    };
    if int_part.is_empty() && frac_part.is_empty() || !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return Err(format!(
            "{} is not a finite decimal number (NaN and Infinity need a STRING or DOUBLE column)",
            shown(text)
        ));
    }
    let scale = scale.max(0) as usize;
    if frac_part.len() > scale && frac_part[scale..].iter().any(|d| *d != b'0') {
        return Err(format!("{} has more than {scale} fraction digits; declare a larger DECIMAL scale", shown(text)));
    }
    let mut digits: Vec<u8> = int_part.iter().map(|d| d - b'0').collect();
    digits.extend(frac_part.iter().take(scale).map(|d| d - b'0'));
    digits.extend(std::iter::repeat_n(0, scale.saturating_sub(frac_part.len())));
    Ok((digits, negative))
}

fn digits_value(text: &[u8]) -> Option<i64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) || text.len() > 18 {
        return None;
    }
    Some(text.iter().fold(0i64, |v, d| v * 10 + (d - b'0') as i64))
}

/// `YYYY-MM-DD` with an optional ` BC` (year 1 BC is year 0).
fn parse_date_days(text: &[u8]) -> Result<i64, String> {
    let (body, bc) = match text.strip_suffix(b" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let mut parts = body.splitn(3, |b| *b == b'-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{} is not a finite ISO date (infinity needs a STRING column)", shown(text)));
    };
    let (Some(y), Some(m), Some(d)) = (digits_value(y), digits_value(m), digits_value(d)) else {
        return Err(format!("{} is not a finite ISO date (infinity needs a STRING column)", shown(text)));
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("{} is not a valid date", shown(text)));
    }
    let year = if bc { 1 - y } else { y };
    Ok(days_from_civil(year, m as u32, d as u32))
}

fn parse_date(text: &[u8]) -> Result<i32, String> {
    let days = parse_date_days(text)?;
    i32::try_from(days).map_err(|_| format!("{} is outside the DATE range", shown(text)))
}

fn units_per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// `HH:MM:SS[.ffffff]` as `unit`s since midnight; `24:00:00` is allowed as in PostgreSQL.
fn parse_time_units(text: &[u8], unit: TimeUnit, whole: &[u8]) -> Result<i64, String> {
    let bad = || format!("{} is not a time of day", shown(whole));
    let (hms, frac) = match text.iter().position(|b| *b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    let mut parts = hms.splitn(3, |b| *b == b':');
    let (Some(h), Some(m), Some(s)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    let (Some(h), Some(m), Some(s)) = (digits_value(h), digits_value(m), digits_value(s)) else {
        return Err(bad());
    };
    if h > 24 || m > 59 || s > 60 {
        return Err(bad());
    }
    let per_second = units_per_second(unit);
    let digits = per_second.ilog10() as usize;
    if !frac.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if frac.len() > digits && frac[digits..].iter().any(|d| *d != b'0') {
        return Err(format!(
            "{} has more fractional-second digits than the declared precision ({digits}) holds; declare a larger precision",
            shown(whole)
        ));
    }
    let mut fraction = 0i64;
    for i in 0..digits {
        fraction = fraction * 10 + frac.get(i).map_or(0, |d| (d - b'0') as i64);
    }
    Ok((h * 3600 + m * 60 + s) * per_second + fraction)
}

fn parse_time(text: &[u8], unit: TimeUnit) -> Result<i64, String> {
    parse_time_units(text, unit, text)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]`: `timestamp` has no offset, `timestamptz`
/// (printed in the session's UTC) has one, which is applied.
fn parse_timestamp(text: &[u8], unit: TimeUnit) -> Result<i64, String> {
    let (body, bc) = match text.strip_suffix(b" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let Some(space) = body.iter().position(|b| *b == b' ') else {
        return Err(format!("{} is not a finite timestamp (infinity needs a STRING column)", shown(text)));
    };
    let date = &body[..space];
    let mut days = parse_date_days(date)?;
    if bc {
        let mut with_bc = date.to_vec();
        with_bc.extend_from_slice(b" BC");
        days = parse_date_days(&with_bc)?;
    }
    let rest = &body[space + 1..];
    let (time, offset_seconds) = match rest.iter().position(|b| *b == b'+' || *b == b'-') {
        Some(sign_at) => {
            let sign = if rest[sign_at] == b'-' { -1 } else { 1 };
            let mut seconds = 0i64;
            for (i, part) in rest[sign_at + 1..].split(|b| *b == b':').enumerate() {
                let Some(v) = digits_value(part) else {
                    return Err(format!("{} has an unreadable UTC offset", shown(text)));
                };
                seconds += v * [3600, 60, 1].get(i).copied().unwrap_or(0);
            }
            (&rest[..sign_at], sign * seconds)
        }
        None => (rest, 0),
    };
    let per_second = units_per_second(unit);
    let in_day = parse_time_units(time, unit, text)?;
    days.checked_mul(86_400 * per_second)
        .and_then(|v| v.checked_add(in_day))
        .and_then(|v| v.checked_sub(offset_seconds * per_second))
        .ok_or_else(|| format!("{} is outside the range of the declared TIMESTAMP precision", shown(text)))
}

/// The elements of a one-dimensional array literal (`{1,NULL,"a b","x\"y"}`); `None` is NULL.
fn parse_array(text: &[u8]) -> Result<Vec<Option<Vec<u8>>>, String> {
    let bad = |why: &str| format!("array {} {why}", shown(text));
    let inner = match text.strip_prefix(b"{").and_then(|t| t.strip_suffix(b"}")) {
        Some(inner) => inner,
        None if text.first() == Some(&b'[') => {
            return Err(bad("has explicit bounds, which are not supported; declare the column STRING"))
        }
        None => return Err(bad("is not an array literal")),
    };
    let mut elements = Vec::new();
    if inner.is_empty() {
        return Ok(elements);
    }
    let mut i = 0;
    loop {
        if inner.get(i) == Some(&b'{') {
            return Err(bad("has more than one dimension; declare the column STRING"));
        }
        if inner.get(i) == Some(&b'"') {
            let mut value = Vec::new();
            i += 1;
            loop {
                match inner.get(i) {
                    Some(b'\\') => {
                        value.push(*inner.get(i + 1).ok_or_else(|| bad("ends inside an escape"))?);
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b) => {
                        value.push(*b);
                        i += 1;
                    }
                    None => return Err(bad("ends inside a quoted element")),
                }
            }
            elements.push(Some(value));
        } else {
            let end = inner[i..].iter().position(|b| *b == b',').map_or(inner.len(), |p| i + p);
            let raw = &inner[i..end];
            elements.push(if raw == b"NULL" { None } else { Some(raw.to_vec()) });
            i = end;
        }
        match inner.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(bad("has text after a quoted element")),
        }
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};

    fn one(dt: DataType, text: &str) -> Result<ArrayRef, String> {
        let mut b = ColumnBuilder::new(&dt, 1).ok_or("no builder")?;
        b.append_text(text.as_bytes())?;
        b.finish()
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(
            one(DataType::Int64, "-9223372036854775808").unwrap().as_primitive::<Int64Type>().value(0),
            i64::MIN
        );
        assert!(one(DataType::Int16, "40000").unwrap_err().contains("'40000'"));
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        let a = one(DataType::Decimal128(10, 3), "-12.5").unwrap();
        assert_eq!(a.as_primitive::<Decimal128Type>().value(0), -12_500);
        assert!(one(DataType::Decimal128(10, 1), "1.25").unwrap_err().contains("fraction digits"));
        assert!(one(DataType::Decimal128(10, 1), "NaN").unwrap_err().contains("NaN"));
        let big = "1234567890123456789012345678901234567890.5";
        let a = one(DataType::Decimal256(60, 2), big).unwrap();
        assert_eq!(
            a.as_primitive::<datafusion::arrow::datatypes::Decimal256Type>().value_as_string(0),
            "1234567890123456789012345678901234567890.50"
        );
    }

    #[test]
    fn dates_times_and_timestamps() {
        assert_eq!(one(DataType::Date32, "1970-01-02").unwrap().as_primitive::<Date32Type>().value(0), 1);
        assert_eq!(one(DataType::Date32, "0001-01-01 BC").unwrap().as_primitive::<Date32Type>().value(0), -719_528);
        assert!(one(DataType::Date32, "infinity").is_err());
        let us = DataType::Timestamp(TimeUnit::Microsecond, None);
        let a = one(us.clone(), "2024-02-29 12:34:56.789012").unwrap();
        assert_eq!(a.as_primitive::<TimestampMicrosecondType>().value(0), 1_709_210_096_789_012);
        let tz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let a = one(tz, "2024-02-29 14:34:56.789012+02").unwrap();
        assert_eq!(a.as_primitive::<TimestampMicrosecondType>().value(0), 1_709_210_096_789_012);
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert!(one(ms, "2024-02-29 12:34:56.789012").unwrap_err().contains("precision"));
        let t = one(DataType::Time64(TimeUnit::Microsecond), "24:00:00").unwrap();
        assert_eq!(t.as_primitive::<datafusion::arrow::datatypes::Time64MicrosecondType>().value(0), 86_400_000_000);
        let t = one(DataType::Time32(TimeUnit::Millisecond), "01:00:00.5").unwrap();
        assert_eq!(t.as_primitive::<datafusion::arrow::datatypes::Time32MillisecondType>().value(0), 3_600_500);
    }

    #[test]
    fn bytea_floats_and_booleans() {
        let a = one(DataType::Binary, "\\x00ff10").unwrap();
        assert_eq!(a.as_binary::<i32>().value(0), [0, 255, 16]);
        assert!(one(DataType::Binary, "ab").unwrap_err().contains("hex format"));
        let a = one(DataType::Float64, "-Infinity").unwrap();
        assert_eq!(a.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0), f64::NEG_INFINITY);
        assert!(one(DataType::Boolean, "yes").is_err());
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    /// Decodes `send` (the hex PostgreSQL's `*_send` function printed for a value) into `dt`.
    fn binary(dt: DataType, form: BinaryForm, send: &str) -> Result<ArrayRef, String> {
        let mut b = ColumnBuilder::new(&dt, 1).ok_or("no builder")?;
        b.append_binary(form, &hex(send))?;
        b.finish()
    }

    #[test]
    fn binary_numerics_are_exact_or_refused() {
        let dec = |p, s, send: &str| {
            binary(DataType::Decimal128(p, s), BinaryForm::Numeric, send)
                .map(|a| a.as_primitive::<Decimal128Type>().value(0))
        };
        // numeric_send(-12.5), (123.45), (0.0001), (10000), (0.00), (-0.000012), (1.25)
        assert_eq!(dec(10, 3, "0002000040000001000c1388"), Ok(-12_500));
        assert_eq!(dec(12, 2, "0002000000000002007b1194"), Ok(12_345));
        assert_eq!(dec(10, 4, "0001ffff000000040001"), Ok(1));
        assert_eq!(dec(10, 0, "00010001000000000001"), Ok(10_000));
        assert_eq!(dec(10, 2, "0000000000000002"), Ok(0));
        assert_eq!(dec(10, 6, "0001fffe4000000604b0"), Ok(-12));
        assert!(dec(10, 1, "0002000000000002000109c4").unwrap_err().contains("'1.25' has more than 1 fraction digits"));
        assert!(dec(10, 5, "0001fffe4000000604b0").unwrap_err().contains("'-0.000012'"));
        assert!(dec(10, 2, "00000000c0000000").unwrap_err().contains("NaN"));
        let big = binary(
            DataType::Decimal256(60, 2),
            BinaryForm::Numeric,
            "000b00090000000104d2162e23340d801ed204d2162e23340d801ed21388",
        )
        .unwrap();
        assert_eq!(
            big.as_primitive::<datafusion::arrow::datatypes::Decimal256Type>().value_as_string(0),
            "1234567890123456789012345678901234567890.50"
        );
        let overflow = dec(38, 2, "000b00090000000104d2162e23340d801ed204d2162e23340d801ed21388").unwrap_err();
        assert!(overflow.contains("'1234567890123456789012345678901234567890.5' does not fit"), "{overflow}");
    }

    #[test]
    fn binary_times_match_the_text_path() {
        let us = DataType::Timestamp(TimeUnit::Microsecond, None);
        // timestamp_send('2024-02-29 12:34:56.789012'); timestamptz_send of the same instant.
        let a = binary(us.clone(), BinaryForm::Timestamp, "0002b58341728614").unwrap();
        assert_eq!(a.as_primitive::<TimestampMicrosecondType>().value(0), 1_709_210_096_789_012);
        assert_eq!(a.to_data(), one(us, "2024-02-29 12:34:56.789012").unwrap().to_data());
        let ms = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let refused = binary(ms, BinaryForm::Timestamp, "0002b58341728614").unwrap_err();
        assert!(refused.contains("'2024-02-29 12:34:56.789012' has more fractional-second digits"), "{refused}");
        assert!(binary(DataType::Date32, BinaryForm::Date, "7fffffff").unwrap_err().contains("infinity"));
        // date_send('1970-01-02'), time_send('01:00:00.5')
        assert_eq!(
            binary(DataType::Date32, BinaryForm::Date, "ffffd534").unwrap().to_data(),
            one(DataType::Date32, "1970-01-02").unwrap().to_data()
        );
        let t = DataType::Time32(TimeUnit::Millisecond);
        assert_eq!(
            binary(t.clone(), BinaryForm::Time, "00000000d69b4520").unwrap().to_data(),
            one(t, "01:00:00.5").unwrap().to_data()
        );
    }

    #[test]
    fn binary_integers_texts_and_ids() {
        assert!(binary(DataType::Int16, BinaryForm::Int4, "00009c40").unwrap_err().contains("'40000'"));
        let d = binary(DataType::Decimal128(7, 2), BinaryForm::Int4, "00000007").unwrap();
        assert_eq!(d.as_primitive::<Decimal128Type>().value(0), 700);
        let id = binary(DataType::Utf8, BinaryForm::Uuid, "a0eebc999c0b4ef8bb6d6bb9bd380a11").unwrap();
        assert_eq!(id.as_string::<i32>().value(0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        let json = binary(DataType::Utf8, BinaryForm::Jsonb, "017b2261223a205b312c20325d7d").unwrap();
        assert_eq!(json.as_string::<i32>().value(0), r#"{"a": [1, 2]}"#);
        assert!(binary(DataType::Utf8, BinaryForm::Text, "ff").unwrap_err().contains("UTF-8"));
    }

    // Expected values: Flink CDC's decimal converter, `BigDecimal.valueOf(double)` (real:
    // `new BigDecimal(Float.toString(f))`) rounded HALF_UP to the scale.
    #[test]
    fn floats_into_decimals_as_flink_converts_them() {
        let dt = DataType::Decimal128(10, 3);
        let text = |source: FloatSource, value: &str| {
            let mut b = ColumnBuilder::new(&dt, 1).unwrap();
            b.append_float_text(value.as_bytes(), source)?;
            Ok::<_, String>(b.finish()?.as_primitive::<Decimal128Type>().value_as_string(0))
        };
        assert_eq!(text(FloatSource::Double, "0.5"), Ok("0.500".into()));
        assert_eq!(text(FloatSource::Real, "1.1"), Ok("1.100".into()));
        assert_eq!(text(FloatSource::Double, "123.4565"), Ok("123.457".into()));
        assert_eq!(text(FloatSource::Double, "-123.4565"), Ok("-123.457".into()));
        assert_eq!(text(FloatSource::Double, "1.5e-05"), Ok("0.000".into()));
        assert!(text(FloatSource::Double, "1e+30").unwrap_err().contains("DECIMAL(10, 3)"));
        assert!(text(FloatSource::Double, "NaN").unwrap_err().contains("NaN"));
        assert!(text(FloatSource::Double, "-Infinity").unwrap_err().contains("inf"));
        // Into a FLOAT/DOUBLE/STRING column the text goes as it is.
        let mut s = ColumnBuilder::new(&DataType::Utf8, 1).unwrap();
        s.append_float_text(b"1.1", FloatSource::Real).unwrap();
        assert_eq!(s.finish().unwrap().as_string::<i32>().value(0), "1.1");
        // The snapshot's binary form: float4_send(1.1), float8_send(123.4565).
        assert_eq!(BinaryForm::of("real", &dt), Some(BinaryForm::Float4));
        let a = binary(dt.clone(), BinaryForm::Float4, "3f8ccccd").unwrap();
        assert_eq!(a.as_primitive::<Decimal128Type>().value_as_string(0), "1.100");
        let a = binary(DataType::Decimal256(40, 3), BinaryForm::Float8, "405edd374bc6a7f0").unwrap();
        assert_eq!(a.as_primitive::<datafusion::arrow::datatypes::Decimal256Type>().value_as_string(0), "123.457");
        assert_eq!(FloatSource::of_oid(701), Some(FloatSource::Double));
        assert_eq!(FloatSource::of_type("double precision"), Some(FloatSource::Double));
        assert_eq!(FloatSource::of_type("numeric"), None);
    }

    #[test]
    fn binary_forms_only_for_exact_pairs() {
        assert_eq!(BinaryForm::of("numeric(12,2)", &DataType::Decimal128(12, 2)), Some(BinaryForm::Numeric));
        assert_eq!(BinaryForm::of("character varying(20)", &DataType::Utf8), Some(BinaryForm::Text));
        assert_eq!(
            BinaryForm::of(
                "timestamp(3) with time zone",
                &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            ),
            Some(BinaryForm::Timestamp)
        );
        // Read as text where the text form is what the stream gives: a number read as STRING,
        // arrays, intervals, a double narrowed to FLOAT, time with time zone.
        assert_eq!(BinaryForm::of("bigint", &DataType::Utf8), None);
        assert_eq!(BinaryForm::of("integer[]", &crate::sql::types::list_of(DataType::Int32, true)), None);
        assert_eq!(BinaryForm::of("interval", &DataType::Utf8), None);
        assert_eq!(BinaryForm::of("double precision", &DataType::Float32), None);
        assert_eq!(BinaryForm::of("real", &DataType::Float64), None);
        assert_eq!(BinaryForm::of("time with time zone", &DataType::Utf8), None);
    }

    #[test]
    fn arrays_with_quotes_and_nulls() {
        let dt = crate::sql::types::list_of(DataType::Utf8, true);
        let mut b = ColumnBuilder::new(&dt, 3).unwrap();
        b.append_text(br#"{a,"b c","x\"y",NULL,"NULL"}"#).unwrap();
        b.append_null();
        b.append_text(b"{}").unwrap();
        let a = b.finish().unwrap();
        let list = a.as_list::<i32>();
        let first = list.value(0);
        let s = first.as_string::<i32>();
        assert_eq!(s.iter().collect::<Vec<_>>(), [Some("a"), Some("b c"), Some("x\"y"), None, Some("NULL")]);
        assert!(list.is_null(1));
        assert_eq!(list.value(2).len(), 0);
        assert!(one(crate::sql::types::list_of(DataType::Int32, true), "{{1},{2}}").unwrap_err().contains("dimension"));
    }
}
