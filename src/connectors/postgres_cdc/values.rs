//! PostgreSQL text values (pgoutput `t` columns and `COPY … TO STDOUT` fields, both in the
//! output format pinned by the session settings in [`super::SESSION_SETTINGS`]) decoded straight
//! into Arrow builders of the declared column types. Pure functions, no I/O.
//!
//! Values are checked, never rounded: a fraction the declared precision cannot hold, an integer
//! out of range or an `infinity` date is an error naming the value, not a silently changed row.

use std::sync::Arc;

use datafusion::arrow::array::{
    make_array, Array, ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Decimal256Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, ListArray, StringBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{i256, DataType, Field, TimeUnit};

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
        scale: i8,
    },
    Decimal256 {
        builder: Decimal256Builder,
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
                scale: *s,
            },
            DataType::Decimal256(p, s) => ColumnBuilder::Decimal256 {
                builder: Decimal256Builder::with_capacity(capacity).with_precision_and_scale(*p, *s).ok()?,
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
            ColumnBuilder::Decimal128 { builder, scale } => {
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
            ColumnBuilder::Decimal256 { builder, scale } => {
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

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    Ok(days_from_civil(year, m, d))
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
