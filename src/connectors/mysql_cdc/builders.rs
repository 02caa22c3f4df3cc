//! Appends [`Cell`]s to Arrow builders of the *declared* column types, converting exactly or
//! failing with a message that names the column and the type to declare instead.
//!
//! Rules (documented in docs/connectors/mysql-cdc.md):
//! - integers go to any integer type they fit, DECIMAL, FLOAT/DOUBLE, BOOLEAN (0 = false) or text;
//! - DATETIME is a wall-clock time: as is into TIMESTAMP, read in `server-time-zone` into
//!   TIMESTAMP_LTZ; TIMESTAMP is an instant: as is into TIMESTAMP_LTZ, shown in `server-time-zone`
//!   into TIMESTAMP;
//! - zero dates (month or day 0, TIMESTAMP 0) become NULL;
//! - TIME outside 00:00:00–23:59:59.999999 (negative or ≥ 24 h) only fits a STRING column;
//! - FLOAT/DOUBLE into DECIMAL as Flink converts them ([`crate::connectors::float_decimal`]);
//! - SET into ARRAY<STRING> (its members) or STRING (comma-separated);
//! - spatial values into STRING as Flink CDC's JSON text, into BYTES as WKB
//!   ([`crate::connectors::spatial`]).

use std::sync::Arc;

use chrono::{NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;
use datafusion::arrow::array::{
    make_array, Array, ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Decimal256Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, ListBuilder, StringBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use datafusion::arrow::datatypes::{i256, DataType, TimeUnit};

use super::cell::Cell;
use super::schema::SourceColumn;
use crate::connectors::float_decimal::{float_to_decimal, unfit_message, Float};
use crate::connectors::{calendar, spatial};
use crate::error::{Error, Result};

enum Target {
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
    D128(Decimal128Builder, u8, i8),
    D256(Decimal256Builder, u8, i8),
    Utf8(StringBuilder),
    /// ARRAY<STRING>: the members of a SET.
    StringList(ListBuilder<StringBuilder>),
    Binary(BinaryBuilder),
    /// Date32 and Time32: days or seconds/milliseconds, retyped at finish.
    Days(Int32Builder),
    Time32(Int32Builder, TimeUnit),
    Time64(Int64Builder, TimeUnit),
    Timestamp(Int64Builder, TimeUnit, bool),
}

/// One declared column being filled.
pub struct ColumnBuilder {
    name: String,
    data_type: DataType,
    target: Target,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn micros_to_unit(micros: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => micros.div_euclid(1_000_000),
        TimeUnit::Millisecond => micros.div_euclid(1_000),
        TimeUnit::Microsecond => micros,
        TimeUnit::Nanosecond => micros.saturating_mul(1_000),
    }
}

fn pow10(n: u32) -> i256 {
    i256::from_i128(10).wrapping_pow(n)
}

impl ColumnBuilder {
    pub fn new(name: &str, data_type: &DataType, capacity: usize) -> Result<Self> {
        let target = match data_type {
            DataType::Boolean => Target::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Target::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Target::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Target::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Target::I64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => Target::U8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => Target::U16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => Target::U32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Target::U64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Target::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Target::F64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => Target::D128(
                Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?,
                *p,
                *s,
            ),
            DataType::Decimal256(p, s) => Target::D256(
                Decimal256Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?,
                *p,
                *s,
            ),
            DataType::Utf8 => Target::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Binary => Target::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            DataType::List(item) if item.data_type() == &DataType::Utf8 => Target::StringList(
                ListBuilder::with_capacity(StringBuilder::new(), capacity).with_field(item.clone()),
            ),
            DataType::Date32 => Target::Days(Int32Builder::with_capacity(capacity)),
            DataType::Time32(u) => Target::Time32(Int32Builder::with_capacity(capacity), *u),
            DataType::Time64(u) => Target::Time64(Int64Builder::with_capacity(capacity), *u),
            DataType::Timestamp(u, tz) => Target::Timestamp(Int64Builder::with_capacity(capacity), *u, tz.is_some()),
            other => {
                return Err(Error::user(format!(
                    "column `{name}` is declared as {}, which mysql-cdc cannot fill from a MySQL column; declare a scalar type, or ARRAY<STRING> for a SET (see docs/connectors/mysql-cdc.md)",
                    crate::sql::types::flink_type_name(other)
                )))
            }
        };
        Ok(ColumnBuilder { name: name.to_string(), data_type: data_type.clone(), target })
    }

    pub fn append_null(&mut self) {
        match &mut self.target {
            Target::Bool(b) => b.append_null(),
            Target::I8(b) => b.append_null(),
            Target::I16(b) => b.append_null(),
            Target::I32(b) | Target::Days(b) | Target::Time32(b, _) => b.append_null(),
            Target::I64(b) | Target::Time64(b, _) | Target::Timestamp(b, _, _) => b.append_null(),
            Target::U8(b) => b.append_null(),
            Target::U16(b) => b.append_null(),
            Target::U32(b) => b.append_null(),
            Target::U64(b) => b.append_null(),
            Target::F32(b) => b.append_null(),
            Target::F64(b) => b.append_null(),
            Target::D128(b, _, _) => b.append_null(),
            Target::D256(b, _, _) => b.append_null(),
            Target::Utf8(b) => b.append_null(),
            Target::StringList(b) => b.append_null(),
            Target::Binary(b) => b.append_null(),
        }
    }

    pub fn append_str(&mut self, text: &str) -> Result<()> {
        match &mut self.target {
            Target::Utf8(b) => b.append_value(text),
            Target::Binary(b) => b.append_value(text.as_bytes()),
            _ => return Err(self.mismatch("text", text)),
        }
        Ok(())
    }

    pub fn append_timestamp_millis(&mut self, millis: i64) -> Result<()> {
        match &mut self.target {
            Target::Timestamp(b, unit, _) => b.append_value(micros_to_unit(millis.saturating_mul(1000), *unit)),
            _ => return Err(self.mismatch("a timestamp", &millis.to_string())),
        }
        Ok(())
    }

    fn mismatch(&self, what: &str, value: &str) -> Error {
        Error::user(format!(
            "mysql-cdc cannot store {what} {value} in column `{}` declared as {}; declare the column with a type that holds it (see the type table in docs/connectors/mysql-cdc.md)",
            self.name,
            crate::sql::types::flink_type_name(&self.data_type)
        ))
    }

    /// Appends `cell`, read from MySQL column `source`.
    pub fn append(&mut self, cell: Cell<'_>, source: &SourceColumn, tz: &Tz) -> Result<()> {
        match cell {
            Cell::Null => self.append_null(),
            Cell::Int(v) => self.append_int(v as i128)?,
            Cell::UInt(v) => self.append_int(v as i128)?,
            Cell::Year(v) => self.append_int(v as i128)?,
            Cell::Float(v) if source.float_as_double => self.append_float(Float::F64(v as f64), &v.to_string())?,
            Cell::Float(v) => self.append_float(Float::F32(v), &v.to_string())?,
            Cell::Double(v) => self.append_float(Float::F64(v), &v.to_string())?,
            Cell::Decimal(v, scale) => self.append_decimal(v, scale)?,
            Cell::Bytes(bytes) => self.append_bytes(bytes, source)?,
            Cell::EnumIndex(i) => {
                let text = match i {
                    0 => "",
                    i => source.enum_values.get(i as usize - 1).map(String::as_str).ok_or_else(|| {
                        Error::internal(format!("ENUM index {i} out of range for column `{}`", source.name))
                    })?,
                };
                self.append_str(text)?
            }
            Cell::SetBits(bits) => {
                let members = source
                    .enum_values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && bits & (1 << i) != 0)
                    .map(|(_, v)| v.as_str());
                match &mut self.target {
                    Target::StringList(b) => {
                        for member in members {
                            b.values().append_value(member);
                        }
                        b.append(true);
                    }
                    _ => self.append_str(&members.collect::<Vec<_>>().join(","))?,
                }
            }
            Cell::Geometry(bytes) => self.append_geometry(bytes, source)?,
            Cell::Bits(bytes) => self.append_bits(bytes)?,
            Cell::JsonBinary(bytes) => {
                let text = json_binary_to_text(bytes).map_err(|e| {
                    Error::internal(format!("JSON value of column `{}` cannot be decoded: {e}", source.name))
                })?;
                self.append_str(&text)?
            }
            Cell::Date { year, month, day } => {
                if month == 0 || day == 0 {
                    self.append_null();
                    return Ok(());
                }
                let days = days_from_civil(year, month, day)
                    .ok_or_else(|| self.mismatch("the invalid date", &format!("{year:04}-{month:02}-{day:02}")))?;
                self.append_days(days, source)?
            }
            Cell::DateTime { year, month, day, hour, minute, second, micros } => {
                if month == 0 || day == 0 {
                    self.append_null();
                    return Ok(());
                }
                let text = || format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}");
                let days =
                    days_from_civil(year, month, day).ok_or_else(|| self.mismatch("the invalid date", &text()))?;
                let wall = days as i64 * MICROS_PER_DAY
                    + ((hour as i64 * 60 + minute as i64) * 60 + second as i64) * 1_000_000
                    + micros as i64;
                self.append_wall_clock(wall, source, tz)?
            }
            Cell::Timestamp { seconds, micros } => {
                if seconds == 0 && micros == 0 {
                    self.append_null();
                    return Ok(());
                }
                self.append_instant(seconds * 1_000_000 + micros as i64, source, tz)?
            }
            Cell::Time { negative, micros } => self.append_time(negative, micros, source)?,
        }
        Ok(())
    }

    fn append_int(&mut self, v: i128) -> Result<()> {
        macro_rules! fit {
            ($b:expr, $t:ty) => {
                match <$t>::try_from(v) {
                    Ok(x) => $b.append_value(x),
                    Err(_) => return Err(self.mismatch("the integer", &v.to_string())),
                }
            };
        }
        match &mut self.target {
            Target::I8(b) => fit!(b, i8),
            Target::I16(b) => fit!(b, i16),
            Target::I32(b) => fit!(b, i32),
            Target::I64(b) => fit!(b, i64),
            Target::U8(b) => fit!(b, u8),
            Target::U16(b) => fit!(b, u16),
            Target::U32(b) => fit!(b, u32),
            Target::U64(b) => fit!(b, u64),
            Target::Bool(b) => b.append_value(v != 0),
            Target::F32(b) => b.append_value(v as f32),
            Target::F64(b) => b.append_value(v as f64),
            Target::Utf8(b) => b.append_value(v.to_string()),
            Target::D128(..) | Target::D256(..) => return self.append_decimal(i256::from_i128(v), 0),
            _ => return Err(self.mismatch("the integer", &v.to_string())),
        }
        Ok(())
    }

    fn append_float(&mut self, v: Float, text: &str) -> Result<()> {
        let wide = match v {
            Float::F32(v) => v as f64,
            Float::F64(v) => v,
        };
        match &mut self.target {
            Target::D128(_, p, s) | Target::D256(_, p, s) => {
                let (p, s) = (*p, *s);
                let unscaled = float_to_decimal(v, p, s).map_err(|unfit| {
                    Error::user(format!(
                        "mysql-cdc cannot fill column `{}`: {}",
                        self.name,
                        unfit_message(v, p, s, unfit)
                    ))
                })?;
                return self.append_decimal(unscaled, s.max(0) as u8);
            }
            Target::F32(b) => b.append_value(wide as f32),
            Target::F64(b) => b.append_value(wide),
            Target::Utf8(b) => b.append_value(text),
            _ => return Err(self.mismatch("the floating-point number", text)),
        }
        Ok(())
    }

    /// A spatial value: Flink CDC's JSON text into STRING, its WKB (without the SRID) into BYTES.
    fn append_geometry(&mut self, stored: &[u8], source: &SourceColumn) -> Result<()> {
        let unreadable = |why: String| {
            Error::user(format!(
                "column `{}` (MySQL `{}` {}) holds a spatial value mysql-cdc cannot read: {why}",
                self.name, source.name, source.column_type
            ))
        };
        match &mut self.target {
            Target::Utf8(b) => b.append_value(spatial::mysql_to_flink_json(stored).map_err(unreadable)?),
            Target::Binary(b) => b.append_value(spatial::mysql_to_wkb(stored).map_err(unreadable)?),
            _ => {
                return Err(Error::user(format!(
                    "column `{}` is declared as {}, but MySQL `{}` is {}, a spatial type: declare it STRING (JSON text, as Flink CDC writes) or BYTES (WKB)",
                    self.name,
                    crate::sql::types::flink_type_name(&self.data_type),
                    source.name,
                    source.column_type
                )))
            }
        }
        Ok(())
    }

    fn append_decimal(&mut self, v: i256, scale: u8) -> Result<()> {
        let text = || decimal_text(v, scale);
        let rescale = |to: i8| -> Option<i256> {
            let to = to.max(0) as u8;
            if to >= scale {
                v.checked_mul(pow10((to - scale) as u32))
            } else {
                let div = pow10((scale - to) as u32);
                // Only exact: dropping non-zero digits would change the value.
                (v.wrapping_rem(div) == i256::ZERO).then(|| v.wrapping_div(div))
            }
        };
        match &mut self.target {
            Target::D128(b, p, s) => {
                // Values mostly come at the column's own scale: no i256 arithmetic for them.
                let scaled =
                    if *s as i16 == scale as i16 { v.to_i128() } else { rescale(*s).and_then(|x| x.to_i128()) };
                let scaled = scaled.filter(|x| x.unsigned_abs() < 10u128.pow(*p as u32));
                match scaled {
                    Some(x) => b.append_value(x),
                    None => return Err(self.mismatch("the decimal", &text())),
                }
            }
            Target::D256(b, p, s) => {
                let limit = pow10(*p as u32);
                match rescale(*s).filter(|x| *x < limit && x.wrapping_neg() < limit) {
                    Some(x) => b.append_value(x),
                    None => return Err(self.mismatch("the decimal", &text())),
                }
            }
            Target::Utf8(b) => b.append_value(text()),
            Target::F64(b) => b.append_value(text().parse::<f64>().unwrap_or(f64::NAN)),
            _ => {
                if scale == 0 || rescale(0).is_some() {
                    if let Some(int) = rescale(0).and_then(|x| x.to_i128()) {
                        return self.append_int(int);
                    }
                }
                return Err(self.mismatch("the decimal", &text()));
            }
        }
        Ok(())
    }

    fn append_bytes(&mut self, bytes: &[u8], source: &SourceColumn) -> Result<()> {
        match &mut self.target {
            Target::Binary(b) => {
                // The server strips trailing 0x00 from BINARY(n) in the binlog; the column always holds n bytes.
                match source.binary_length {
                    Some(n) if bytes.len() < n => {
                        let mut padded = bytes.to_vec();
                        padded.resize(n, 0);
                        b.append_value(&padded)
                    }
                    _ => b.append_value(bytes),
                }
            }
            Target::Utf8(b) => match source.charset.decode(bytes) {
                Ok(text) => b.append_value(text),
                Err(why) => {
                    return Err(Error::user(format!(
                        "column `{}` (MySQL `{}` {}) holds {why}, so it cannot be read into STRING column `{}`; declare it BYTES",
                        source.name, source.name, source.column_type, self.name
                    )))
                }
            },
            _ => return Err(self.mismatch("the string", &String::from_utf8_lossy(bytes))),
        }
        Ok(())
    }

    fn append_bits(&mut self, bytes: &[u8]) -> Result<()> {
        let as_int = || (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64));
        match &mut self.target {
            Target::Bool(b) => b.append_value(bytes.iter().any(|x| *x != 0)),
            Target::Binary(b) => b.append_value(bytes),
            _ => match as_int() {
                Some(v) => return self.append_int(v as i128),
                None => return Err(self.mismatch("the BIT value", &format!("{bytes:02x?}"))),
            },
        }
        Ok(())
    }

    fn append_days(&mut self, days: i32, source: &SourceColumn) -> Result<()> {
        match &mut self.target {
            Target::Days(b) => b.append_value(days),
            Target::Timestamp(b, unit, _) => b.append_value(micros_to_unit(days as i64 * MICROS_PER_DAY, *unit)),
            Target::Utf8(b) => b.append_value(format_wall_clock(days as i64 * MICROS_PER_DAY, None)),
            _ => return Err(self.mismatch("the date of", &source.name)),
        }
        Ok(())
    }

    /// A DATETIME: local wall-clock time in microseconds since 1970-01-01 00:00.
    fn append_wall_clock(&mut self, wall: i64, source: &SourceColumn, tz: &Tz) -> Result<()> {
        match &mut self.target {
            Target::Timestamp(b, unit, false) => b.append_value(micros_to_unit(wall, *unit)),
            Target::Timestamp(b, unit, true) => b.append_value(micros_to_unit(wall - offset_of_wall(tz, wall), *unit)),
            Target::Utf8(b) => b.append_value(format_wall_clock(wall, Some(source.fraction_digits))),
            Target::Days(b) if wall.rem_euclid(MICROS_PER_DAY) == 0 => {
                b.append_value(wall.div_euclid(MICROS_PER_DAY) as i32)
            }
            _ => return Err(self.mismatch("the DATETIME value", &format_wall_clock(wall, Some(6)))),
        }
        Ok(())
    }

    /// A TIMESTAMP: microseconds since the epoch, UTC.
    fn append_instant(&mut self, instant: i64, source: &SourceColumn, tz: &Tz) -> Result<()> {
        let wall = || instant + offset_of_instant(tz, instant);
        match &mut self.target {
            Target::Timestamp(b, unit, true) => b.append_value(micros_to_unit(instant, *unit)),
            Target::Timestamp(b, unit, false) => b.append_value(micros_to_unit(wall(), *unit)),
            Target::Utf8(b) => b.append_value(format_wall_clock(wall(), Some(source.fraction_digits))),
            Target::I64(b) => b.append_value(instant.div_euclid(1000)),
            _ => return Err(self.mismatch("the TIMESTAMP value", &format_wall_clock(wall(), Some(6)))),
        }
        Ok(())
    }

    fn append_time(&mut self, negative: bool, micros: i64, source: &SourceColumn) -> Result<()> {
        let text = || format_time(micros, source.fraction_digits);
        let in_day = !negative && micros < MICROS_PER_DAY;
        match &mut self.target {
            Target::Utf8(b) => b.append_value(text()),
            Target::Time32(b, unit) if in_day => b.append_value(micros_to_unit(micros, *unit) as i32),
            Target::Time64(b, unit) if in_day => b.append_value(micros_to_unit(micros, *unit)),
            Target::I64(b) => b.append_value(micros),
            _ => return Err(self.mismatch("the TIME value", &text())),
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<ArrayRef> {
        let retype = |array: ArrayRef, dt: &DataType| -> Result<ArrayRef> {
            let data = array.into_data().into_builder().data_type(dt.clone()).build()?;
            Ok(make_array(data))
        };
        Ok(match &mut self.target {
            Target::Bool(b) => Arc::new(b.finish()),
            Target::I8(b) => Arc::new(b.finish()),
            Target::I16(b) => Arc::new(b.finish()),
            Target::I32(b) => Arc::new(b.finish()),
            Target::I64(b) => Arc::new(b.finish()),
            Target::U8(b) => Arc::new(b.finish()),
            Target::U16(b) => Arc::new(b.finish()),
            Target::U32(b) => Arc::new(b.finish()),
            Target::U64(b) => Arc::new(b.finish()),
            Target::F32(b) => Arc::new(b.finish()),
            Target::F64(b) => Arc::new(b.finish()),
            Target::D128(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Target::D256(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Target::Utf8(b) => Arc::new(b.finish()),
            Target::StringList(b) => Arc::new(b.finish()),
            Target::Binary(b) => Arc::new(b.finish()),
            Target::Days(b) | Target::Time32(b, _) => retype(Arc::new(b.finish()), &self.data_type)?,
            Target::Time64(b, _) | Target::Timestamp(b, _, _) => retype(Arc::new(b.finish()), &self.data_type)?,
        })
    }
}

/// Days since 1970-01-01 of a date; `None` when there is no such day.
pub(super) fn days_from_civil(year: u16, month: u8, day: u8) -> Option<i32> {
    let (year, month, day) = (year as i64, month as u32, day as u32);
    calendar::is_valid_date(year, month, day).then(|| calendar::days_from_civil(year, month, day) as i32)
}

fn offset_of_instant(tz: &Tz, instant_micros: i64) -> i64 {
    // The default 'server-time-zone': spares every TIMESTAMP value a search of the zone's rules.
    if matches!(tz, Tz::UTC | Tz::Etc__UTC) {
        return 0;
    }
    let secs = instant_micros.div_euclid(1_000_000);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(utc) => tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc() as i64 * 1_000_000,
        None => 0,
    }
}

/// The zone's offset at a local wall-clock time; in a gap or overlap the earlier offset, as MySQL
/// does when it converts.
fn offset_of_wall(tz: &Tz, wall_micros: i64) -> i64 {
    let secs = wall_micros.div_euclid(1_000_000);
    let Some(naive) = chrono::DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc()) else { return 0 };
    let offset = match tz.offset_from_local_datetime(&naive) {
        chrono::LocalResult::Single(o) | chrono::LocalResult::Ambiguous(o, _) => o.fix(),
        chrono::LocalResult::None => tz.offset_from_utc_datetime(&naive).fix(),
    };
    offset.local_minus_utc() as i64 * 1_000_000
}

/// `YYYY-MM-DD[ hh:mm:ss[.f…]]` as MySQL prints it; `fraction_digits` None prints the date only.
fn format_wall_clock(wall: i64, fraction_digits: Option<u8>) -> String {
    let days = wall.div_euclid(MICROS_PER_DAY);
    let in_day = wall.rem_euclid(MICROS_PER_DAY);
    let date = NaiveDate::from_ymd_opt(1970, 1, 1).and_then(|d| d.checked_add_signed(chrono::Duration::days(days)));
    let date = date.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
    match fraction_digits {
        None => date,
        Some(digits) => format!("{date} {}", format_time(in_day, digits)),
    }
}

fn format_time(micros: i64, digits: u8) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let a = micros.unsigned_abs();
    let secs = a / 1_000_000;
    let mut out = format!("{sign}{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if digits > 0 {
        let frac = format!("{:06}", a % 1_000_000);
        out.push('.');
        out.push_str(&frac[..digits.min(6) as usize]);
    }
    out
}

fn decimal_text(v: i256, scale: u8) -> String {
    let negative = v < i256::ZERO;
    let digits = if negative { v.wrapping_neg() } else { v }.to_string();
    let scale = scale as usize;
    let padded =
        if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn json_binary_to_text(bytes: &[u8]) -> std::result::Result<String, String> {
    use mysql_async::binlog::jsonb;
    use mysql_common::proto::MyDeserialize;
    if bytes.is_empty() {
        return Ok("null".into());
    }
    let mut buf = mysql_common::io::ParseBuf(bytes);
    let value = jsonb::Value::deserialize((), &mut buf).map_err(|e| e.to_string())?;
    let json = serde_json::Value::try_from(value).map_err(|e| e.to_string())?;
    Ok(json.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Date32Type, Decimal256Type, TimestampMicrosecondType};

    fn source(column_type: &str) -> SourceColumn {
        SourceColumn::for_tests("c", column_type)
    }

    fn one(dt: DataType, cell: Cell<'_>, column_type: &str, tz: Tz) -> Result<ArrayRef> {
        let mut b = ColumnBuilder::new("c", &dt, 1)?;
        b.append(cell, &source(column_type), &tz)?;
        b.finish()
    }

    #[test]
    fn integers_fit_or_fail_clearly() {
        let a = one(DataType::UInt64, Cell::UInt(u64::MAX), "bigint unsigned", Tz::UTC).unwrap();
        assert_eq!(a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>().value(0), u64::MAX);
        let err = one(DataType::Int32, Cell::UInt(3_000_000_000), "int unsigned", Tz::UTC).unwrap_err().to_string();
        assert!(err.contains("3000000000") && err.contains("`c` declared as INT"), "{err}");
        let a = one(DataType::Boolean, Cell::Int(1), "tinyint(1)", Tz::UTC).unwrap();
        assert!(a.as_boolean().value(0));
    }

    #[test]
    fn decimals_rescale_exactly() {
        let v = i256::from_string(&"9".repeat(65)).unwrap();
        let a = one(DataType::Decimal256(65, 0), Cell::Decimal(v, 0), "decimal(65,0)", Tz::UTC).unwrap();
        assert_eq!(a.as_primitive::<Decimal256Type>().value(0), v);
        let a = one(DataType::Utf8, Cell::Decimal(i256::from_i128(-5), 2), "decimal(10,2)", Tz::UTC).unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "-0.05");
        assert!(
            one(DataType::Decimal128(10, 1), Cell::Decimal(i256::from_i128(-5), 2), "decimal(10,2)", Tz::UTC).is_err()
        );
        let a =
            one(DataType::Decimal128(10, 3), Cell::Decimal(i256::from_i128(-5), 2), "decimal(10,2)", Tz::UTC).unwrap();
        assert_eq!(a.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>().value(0), -50);
    }

    #[test]
    fn datetime_is_wall_clock_and_timestamp_an_instant() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let dt = Cell::DateTime { year: 2024, month: 1, day: 1, hour: 8, minute: 0, second: 0, micros: 0 };
        let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
        let ltz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let at = |a: ArrayRef| a.as_primitive::<TimestampMicrosecondType>().value(0);
        let midnight_utc = 1_704_067_200_000_000;
        assert_eq!(at(one(naive.clone(), dt.clone(), "datetime", shanghai).unwrap()), midnight_utc + 8 * 3_600_000_000);
        assert_eq!(at(one(ltz.clone(), dt, "datetime", shanghai).unwrap()), midnight_utc);
        let ts = Cell::Timestamp { seconds: 1_704_067_200, micros: 5 };
        assert_eq!(at(one(ltz, ts.clone(), "timestamp", shanghai).unwrap()), midnight_utc + 5);
        assert_eq!(at(one(naive, ts, "timestamp", shanghai).unwrap()), midnight_utc + 8 * 3_600_000_000 + 5);
    }

    #[test]
    fn days_from_civil_agrees_with_chrono_and_rejects_impossible_days() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for year in (0..=9999u16).step_by(7).chain([1600, 1900, 2000, 2024, 2100]) {
            for month in 0..=13u8 {
                for day in 0..=32u8 {
                    let chrono = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)
                        .map(|d| (d - epoch).num_days() as i32);
                    assert_eq!(days_from_civil(year, month, day), chrono, "{year}-{month}-{day}");
                }
            }
        }
    }

    #[test]
    fn zero_dates_are_null_and_times_beyond_a_day_need_strings() {
        let a = one(DataType::Date32, Cell::Date { year: 0, month: 0, day: 0 }, "date", Tz::UTC).unwrap();
        assert!(a.is_null(0));
        let a = one(DataType::Date32, Cell::Date { year: 1970, month: 1, day: 2 }, "date", Tz::UTC).unwrap();
        assert_eq!(a.as_primitive::<Date32Type>().value(0), 1);
        let zero = Cell::Timestamp { seconds: 0, micros: 0 };
        assert!(one(DataType::Timestamp(TimeUnit::Second, None), zero, "timestamp", Tz::UTC).unwrap().is_null(0));
        let neg = Cell::Time { negative: true, micros: -1_500_000 };
        let err = one(DataType::Time64(TimeUnit::Microsecond), neg.clone(), "time(6)", Tz::UTC).unwrap_err();
        assert!(err.to_string().contains("-00:00:01.500000"), "{err}");
        let a = one(DataType::Utf8, neg, "time(6)", Tz::UTC).unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "-00:00:01.500000");
    }

    #[test]
    fn binary_padding_bits_enums_and_latin1() {
        let mut s = source("binary(4)");
        s.binary_length = Some(4);
        let mut b = ColumnBuilder::new("c", &DataType::Binary, 1).unwrap();
        b.append(Cell::Bytes(b"ab"), &s, &Tz::UTC).unwrap();
        assert_eq!(b.finish().unwrap().as_binary::<i32>().value(0), b"ab\0\0");
        let a = one(DataType::Boolean, Cell::Bits(&[1]), "bit(1)", Tz::UTC).unwrap();
        assert!(a.as_boolean().value(0));
        let a = one(DataType::Int64, Cell::Bits(&[1, 0]), "bit(10)", Tz::UTC).unwrap();
        assert_eq!(a.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0), 256);
        let mut s = source("set('a','b','c')");
        s.enum_values = vec!["a".into(), "b".into(), "c".into()];
        let mut b = ColumnBuilder::new("c", &DataType::Utf8, 2).unwrap();
        b.append(Cell::SetBits(5), &s, &Tz::UTC).unwrap();
        b.append(Cell::EnumIndex(2), &s, &Tz::UTC).unwrap();
        let a = b.finish().unwrap();
        assert_eq!((a.as_string::<i32>().value(0), a.as_string::<i32>().value(1)), ("a,c", "b"));
        let mut s = source("varchar(10)");
        s.charset = super::super::charset::Charset::of(Some("latin1"));
        let mut b = ColumnBuilder::new("c", &DataType::Utf8, 1).unwrap();
        b.append(Cell::Bytes(&[0x63, 0x61, 0x66, 0xe9, 0x80]), &s, &Tz::UTC).unwrap();
        assert_eq!(b.finish().unwrap().as_string::<i32>().value(0), "café€");
    }

    #[test]
    fn floats_into_decimals_round_half_up_from_their_shortest_form() {
        use datafusion::arrow::datatypes::Decimal128Type;
        let dec = |cell: Cell<'_>, column_type: &str| {
            one(DataType::Decimal128(10, 3), cell, column_type, Tz::UTC)
                .map(|a| a.as_primitive::<Decimal128Type>().value_as_string(0))
        };
        // Flink CDC: new BigDecimal(Float.toString(1.1f)) → 1.1 → 1.100 in DECIMAL(10, 3).
        assert_eq!(dec(Cell::Float(1.1), "float").unwrap(), "1.100");
        assert_eq!(dec(Cell::Float(0.5), "float").unwrap(), "0.500");
        assert_eq!(dec(Cell::Double(123.4565), "double").unwrap(), "123.457");
        assert_eq!(dec(Cell::Double(-123.4565), "double").unwrap(), "-123.457");
        // FLOAT(M,D) is a DOUBLE to Debezium: 1.1f widened is 1.100000023841858.
        let wide = one(DataType::Decimal128(20, 12), Cell::Float(1.1), "float(10,3)", Tz::UTC).unwrap();
        assert_eq!(wide.as_primitive::<Decimal128Type>().value_as_string(0), "1.100000023842");
        let narrow = one(DataType::Decimal128(20, 12), Cell::Float(1.1), "float", Tz::UTC).unwrap();
        assert_eq!(narrow.as_primitive::<Decimal128Type>().value_as_string(0), "1.100000000000");
        let err = dec(Cell::Double(1e30), "double").unwrap_err().to_string();
        assert!(err.contains("column `c`") && err.contains("1e30") && err.contains("DECIMAL(10, 3)"), "{err}");
        let big = one(DataType::Decimal256(50, 2), Cell::Double(-1e40), "double", Tz::UTC).unwrap();
        assert_eq!(big.as_primitive::<Decimal256Type>().value_as_string(0), format!("-1{}.00", "0".repeat(40)));
    }

    #[test]
    fn sets_fill_string_arrays_and_spatial_values_become_json_or_wkb() {
        let mut s = source("set('a','b','c')");
        s.enum_values = vec!["a".into(), "b".into(), "c".into()];
        let dt = crate::sql::types::list_of(DataType::Utf8, true);
        let mut b = ColumnBuilder::new("c", &dt, 3).unwrap();
        b.append(Cell::SetBits(5), &s, &Tz::UTC).unwrap();
        b.append(Cell::SetBits(0), &s, &Tz::UTC).unwrap();
        b.append(Cell::Null, &s, &Tz::UTC).unwrap();
        assert!(b.append(Cell::EnumIndex(1), &s, &Tz::UTC).is_err(), "only a SET fills ARRAY<STRING>");
        let a = b.finish().unwrap();
        let list = a.as_list::<i32>();
        let first = list.value(0);
        assert_eq!(first.as_string::<i32>().iter().collect::<Vec<_>>(), [Some("a"), Some("c")]);
        assert_eq!((list.value(1).len(), list.is_null(1), list.is_null(2)), (0, false, true));
        assert!(ColumnBuilder::new("c", &crate::sql::types::list_of(DataType::Int32, true), 1).is_err());

        // POINT(3 0) with SRID 4326 as the server stores it.
        let mut stored = 4326u32.to_le_bytes().to_vec();
        stored.extend_from_slice(&[1, 1, 0, 0, 0]);
        stored.extend_from_slice(&3f64.to_le_bytes());
        stored.extend_from_slice(&0f64.to_le_bytes());
        let point = source("point");
        let a = one(DataType::Utf8, Cell::Geometry(&stored), "point", Tz::UTC).unwrap();
        assert_eq!(a.as_string::<i32>().value(0), r#"{"coordinates":[3,0],"type":"Point","srid":4326}"#);
        let mut b = ColumnBuilder::new("c", &DataType::Binary, 1).unwrap();
        b.append(Cell::Geometry(&stored), &point, &Tz::UTC).unwrap();
        assert_eq!(b.finish().unwrap().as_binary::<i32>().value(0), &stored[4..]);
        let err = one(DataType::Int32, Cell::Geometry(&stored), "point", Tz::UTC).unwrap_err().to_string();
        assert!(err.contains("spatial") && err.contains("STRING"), "{err}");
        let err = one(DataType::Utf8, Cell::Geometry(&stored[..10]), "point", Tz::UTC).unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("WKB"), "{err}");
    }
}
