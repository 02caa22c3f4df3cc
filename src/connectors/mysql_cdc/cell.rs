//! One MySQL value, borrowed from the bytes it came in: the binlog's binary row image or the
//! text protocol of a snapshot query. Both paths produce the same [`Cell`]s, so snapshot and
//! binlog give identical values; [`super::builders`] appends cells to Arrow builders.
//!
//! Pure parsing, no I/O. It corrects what `mysql_common`'s row decoder gets wrong (negative
//! MEDIUMINT, YEAR 0, BINARY(n) trailing zero bytes stripped by the server).

use datafusion::arrow::datatypes::i256;

use super::builders::days_from_civil;
use crate::error::{Error, Result};

pub use crate::connectors::mysql_session::wire::column_type;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Unscaled value and scale.
    Decimal(i256, u8),
    /// Character or binary data, in the column's character set.
    Bytes(&'a [u8]),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// A duration up to ±838:59:59.999999.
    Time {
        negative: bool,
        micros: i64,
    },
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// An instant (MySQL TIMESTAMP) in UTC.
    Timestamp {
        seconds: i64,
        micros: u32,
    },
    Year(u16),
    /// 1-based index into the column's ENUM values (0: the empty error value).
    EnumIndex(u16),
    /// Bit mask over the column's SET values.
    SetBits(u64),
    /// BIT(n), big-endian.
    Bits(&'a [u8]),
    /// MySQL's binary JSON (MariaDB sends JSON as text in a BLOB).
    JsonBinary(&'a [u8]),
    /// A spatial value as the server stores it: SRID (4 bytes, little-endian), then WKB.
    Geometry(&'a [u8]),
}

fn short(what: &str) -> Error {
    Error::internal(format!("binlog row image ends inside a {what} value"))
}

fn take<'a>(buf: &'a [u8], at: &mut usize, n: usize, what: &str) -> Result<&'a [u8]> {
    let end = at.checked_add(n).filter(|e| *e <= buf.len()).ok_or_else(|| short(what))?;
    let s = &buf[*at..end];
    *at = end;
    Ok(s)
}

fn le_uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64)
}

fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)
}

/// Bytes of the fractional-seconds part for a precision (MySQL's TIME2/DATETIME2/TIMESTAMP2).
fn fsp_bytes(fsp: u16) -> usize {
    (fsp as usize).div_ceil(2)
}

fn fsp_micros(b: &[u8], fsp: u16) -> u32 {
    match fsp {
        1 | 2 => b[0] as u32 * 10_000,
        3 | 4 => be_uint(b) as u32 * 100,
        5 | 6 => be_uint(b) as u32,
        _ => 0,
    }
}

/// The real type and metadata of a column as the binlog's row image stores it: `STRING` columns
/// hide ENUM and SET in their metadata.
pub fn real_type(column_type: u8, meta: u16) -> (u8, u16) {
    if column_type == column_type::STRING && meta >= 256 {
        let real = (meta >> 8) as u8;
        if real == column_type::ENUM || real == column_type::SET {
            return (real, meta & 0xff);
        }
        // Lengths above 255 borrow two bits of the type byte.
        let length = (((meta >> 4) & 0x300) ^ 0x300) + (meta & 0xff);
        return (real | 0x30, length);
    }
    (column_type, meta)
}

/// Reads one non-NULL value of a row image at `*at` and advances past it.
///
/// `column_type`/`meta` come from the table map event (metadata as the table map stores it:
/// little-endian, except STRING whose two bytes are type then length), `unsigned` from its
/// signedness metadata or from `information_schema`.
pub fn read_binlog_cell<'a>(
    buf: &'a [u8],
    at: &mut usize,
    type_byte: u8,
    meta: u16,
    unsigned: bool,
) -> Result<Cell<'a>> {
    use self::column_type as t;
    let (ty, meta) = real_type(type_byte, meta);
    Ok(match ty {
        t::TINY => {
            let v = take(buf, at, 1, "TINYINT")?[0];
            if unsigned {
                Cell::UInt(v as u64)
            } else {
                Cell::Int(v as i8 as i64)
            }
        }
        t::SHORT => {
            let v = le_uint(take(buf, at, 2, "SMALLINT")?);
            if unsigned {
                Cell::UInt(v)
            } else {
                Cell::Int(v as u16 as i16 as i64)
            }
        }
        t::INT24 => {
            let v = le_uint(take(buf, at, 3, "MEDIUMINT")?);
            if unsigned {
                Cell::UInt(v)
            } else {
                // Sign-extend from 24 bits.
                Cell::Int(((v << 40) as i64) >> 40)
            }
        }
        t::LONG => {
            let v = le_uint(take(buf, at, 4, "INT")?);
            if unsigned {
                Cell::UInt(v)
            } else {
                Cell::Int(v as u32 as i32 as i64)
            }
        }
        t::LONGLONG => {
            let v = le_uint(take(buf, at, 8, "BIGINT")?);
            if unsigned {
                Cell::UInt(v)
            } else {
                Cell::Int(v as i64)
            }
        }
        t::FLOAT => Cell::Float(f32::from_bits(le_uint(take(buf, at, 4, "FLOAT")?) as u32)),
        t::DOUBLE => Cell::Double(f64::from_bits(le_uint(take(buf, at, 8, "DOUBLE")?))),
        t::YEAR => {
            let v = take(buf, at, 1, "YEAR")?[0];
            Cell::Year(if v == 0 { 0 } else { 1900 + v as u16 })
        }
        t::NEWDECIMAL => {
            let precision = (meta & 0xff) as u8;
            let scale = (meta >> 8) as u8;
            let len = decimal_bin_size(precision, scale);
            decode_decimal(take(buf, at, len, "DECIMAL")?, precision, scale)?
        }
        t::DATE | t::NEWDATE => {
            let v = le_uint(take(buf, at, 3, "DATE")?);
            Cell::Date { year: (v >> 9) as u16, month: ((v >> 5) & 0xf) as u8, day: (v & 0x1f) as u8 }
        }
        t::TIME2 => {
            // MySQL's my_time_packed_from_binary: a signed "packed" number, hh:mm:ss in the
            // bits above 24 and microseconds below.
            let int = be_uint(take(buf, at, 3, "TIME")?) as i64 - 0x80_0000;
            let frac_bytes = take(buf, at, fsp_bytes(meta), "TIME")?;
            let packed = match meta {
                1 | 2 => {
                    let (mut int, mut frac) = (int, frac_bytes[0] as i64);
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= 0x100;
                    }
                    (int << 24) + frac * 10_000
                }
                3 | 4 => {
                    let (mut int, mut frac) = (int, be_uint(frac_bytes) as i64);
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= 0x1_0000;
                    }
                    (int << 24) + frac * 100
                }
                5 | 6 => ((int + 0x80_0000) << 24 | be_uint(frac_bytes) as i64) - (0x80_0000 << 24),
                _ => int << 24,
            };
            let negative = packed < 0;
            let abs = packed.abs();
            let hms = abs >> 24;
            let (hours, minutes, seconds) = ((hms >> 12) & 0x3ff, (hms >> 6) & 0x3f, hms & 0x3f);
            let micros = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + (abs & 0xff_ffff);
            Cell::Time { negative, micros: if negative { -micros } else { micros } }
        }
        t::DATETIME2 => {
            let v = be_uint(take(buf, at, 5, "DATETIME")?) as i64 - 0x80_0000_0000;
            let micros = fsp_micros(take(buf, at, fsp_bytes(meta), "DATETIME")?, meta);
            let ymd = v >> 17;
            let ym = ymd >> 5;
            let hms = v % (1 << 17);
            Cell::DateTime {
                year: (ym / 13) as u16,
                month: (ym % 13) as u8,
                day: (ymd % (1 << 5)) as u8,
                hour: (hms >> 12) as u8,
                minute: ((hms >> 6) % (1 << 6)) as u8,
                second: (hms % (1 << 6)) as u8,
                micros,
            }
        }
        t::TIMESTAMP2 => {
            let seconds = be_uint(take(buf, at, 4, "TIMESTAMP")?) as i64;
            let micros = fsp_micros(take(buf, at, fsp_bytes(meta), "TIMESTAMP")?, meta);
            Cell::Timestamp { seconds, micros }
        }
        t::TIMESTAMP => Cell::Timestamp { seconds: le_uint(take(buf, at, 4, "TIMESTAMP")?) as i64, micros: 0 },
        t::DATETIME => {
            // Pre-5.6 format: the decimal digits YYYYMMDDhhmmss in a u64.
            let v = le_uint(take(buf, at, 8, "DATETIME")?);
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            Cell::DateTime {
                year: (d / 10_000) as u16,
                month: (d / 100 % 100) as u8,
                day: (d % 100) as u8,
                hour: (t / 10_000) as u8,
                minute: (t / 100 % 100) as u8,
                second: (t % 100) as u8,
                micros: 0,
            }
        }
        t::TIME => {
            let v = le_uint(take(buf, at, 3, "TIME")?) as i64;
            let v = (v << 40) >> 40;
            let (negative, a) = (v < 0, v.abs());
            let micros = ((a / 10_000) * 3600 + (a / 100 % 100) * 60 + a % 100) * 1_000_000;
            Cell::Time { negative, micros: if negative { -micros } else { micros } }
        }
        t::VARCHAR | t::VAR_STRING => {
            let len_bytes = if meta < 256 { 1 } else { 2 };
            let len = le_uint(take(buf, at, len_bytes, "VARCHAR")?) as usize;
            Cell::Bytes(take(buf, at, len, "VARCHAR")?)
        }
        t::STRING => {
            // CHAR/BINARY stored as STRING: length prefix of 1 byte (≤255) or 2 bytes.
            let len_bytes = if meta < 256 { 1 } else { 2 };
            let len = le_uint(take(buf, at, len_bytes, "CHAR")?) as usize;
            Cell::Bytes(take(buf, at, len, "CHAR")?)
        }
        t::ENUM => Cell::EnumIndex(le_uint(take(buf, at, meta as usize, "ENUM")?) as u16),
        t::SET => Cell::SetBits(le_uint(take(buf, at, meta as usize, "SET")?)),
        t::BIT => {
            // Metadata: bits beyond whole bytes in the low byte, whole bytes in the high one.
            let len = (meta >> 8) as usize + usize::from(meta & 0xff > 0);
            Cell::Bits(take(buf, at, len, "BIT")?)
        }
        t::BLOB | t::TINY_BLOB | t::MEDIUM_BLOB | t::LONG_BLOB => {
            let len = le_uint(take(buf, at, meta as usize, "BLOB")?) as usize;
            Cell::Bytes(take(buf, at, len, "BLOB")?)
        }
        t::GEOMETRY => {
            let len = le_uint(take(buf, at, meta as usize, "GEOMETRY")?) as usize;
            Cell::Geometry(take(buf, at, len, "GEOMETRY")?)
        }
        t::JSON => {
            let len = le_uint(take(buf, at, meta as usize, "JSON")?) as usize;
            Cell::JsonBinary(take(buf, at, len, "JSON")?)
        }
        other => {
            return Err(Error::internal(format!("binlog column type {other} (metadata {meta}) is not decoded")));
        }
    })
}

const DIG_TO_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Bytes of a DECIMAL(precision, scale) in MySQL's binary format.
pub fn decimal_bin_size(precision: u8, scale: u8) -> usize {
    let int = precision.saturating_sub(scale) as usize;
    let frac = scale as usize;
    (int / 9) * 4 + DIG_TO_BYTES[int % 9] + (frac / 9) * 4 + DIG_TO_BYTES[frac % 9]
}

/// MySQL's binary DECIMAL: groups of 9 digits in 4 bytes (big-endian), partial groups in fewer,
/// the sign in the top bit (inverted), negative values stored as one's complement.
pub fn decode_decimal(bytes: &[u8], precision: u8, scale: u8) -> Result<Cell<'static>> {
    if bytes.is_empty() {
        return Err(short("DECIMAL"));
    }
    let negative = bytes[0] & 0x80 == 0;
    let mask: u8 = if negative { 0xff } else { 0 };
    let mut b: Vec<u8> = bytes.iter().map(|x| x ^ mask).collect();
    b[0] ^= 0x80;
    let int_digits = precision.saturating_sub(scale) as usize;
    let frac_digits = scale as usize;
    let mut value = i256::ZERO;
    let mut at = 0usize;
    let push = |value: &mut i256, n: usize, digits: usize, at: &mut usize| {
        if n == 0 {
            return;
        }
        let group = be_uint(&b[*at..*at + n]) as i128;
        *at += n;
        *value = value.wrapping_mul(i256::from_i128(10i128.pow(digits as u32))).wrapping_add(i256::from_i128(group));
    };
    if decimal_bin_size(precision, scale) != b.len() {
        return Err(Error::internal(format!(
            "DECIMAL({precision}, {scale}) value has {} bytes, expected {}",
            b.len(),
            decimal_bin_size(precision, scale)
        )));
    }
    push(&mut value, DIG_TO_BYTES[int_digits % 9], int_digits % 9, &mut at);
    for _ in 0..int_digits / 9 {
        push(&mut value, 4, 9, &mut at);
    }
    for _ in 0..frac_digits / 9 {
        push(&mut value, 4, 9, &mut at);
    }
    push(&mut value, DIG_TO_BYTES[frac_digits % 9], frac_digits % 9, &mut at);
    Ok(Cell::Decimal(if negative { value.wrapping_neg() } else { value }, scale))
}

/// How a column's values read in the text protocol, decided once per column from its
/// `DATA_TYPE` rather than per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Int,
    Float,
    Double,
    Decimal,
    Year,
    Date,
    DateTime,
    Timestamp,
    Time,
    Bit,
    Bytes,
    /// The snapshot selects SET columns as their bit mask (`CAST(c AS UNSIGNED)`): their text
    /// leaves out an empty-string member, the mask (as in the binlog) does not.
    Set,
    /// A spatial value, in the stored form the binlog has too.
    Geometry,
}

impl TextKind {
    pub fn of(data_type: &str) -> TextKind {
        match data_type {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => TextKind::Int,
            "float" => TextKind::Float,
            "double" | "real" => TextKind::Double,
            "decimal" | "numeric" => TextKind::Decimal,
            "year" => TextKind::Year,
            "date" => TextKind::Date,
            "datetime" => TextKind::DateTime,
            "timestamp" => TextKind::Timestamp,
            "time" => TextKind::Time,
            "bit" => TextKind::Bit,
            "set" => TextKind::Set,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
            | "geometrycollection" | "geomcollection" => TextKind::Geometry,
            _ => TextKind::Bytes,
        }
    }
}

/// A value of a text-protocol result row (snapshot `SELECT`s run with `time_zone = '+00:00'` and
/// binary results, so character data arrives as stored and TIMESTAMP as its UTC instant).
pub fn read_text_cell<'a>(text: &'a [u8], kind: TextKind, unsigned: bool, data_type: &str) -> Result<Cell<'a>> {
    let bad = || {
        Error::internal(format!(
            "MySQL {data_type} value {:?} is not in the expected text form",
            String::from_utf8_lossy(text)
        ))
    };
    let s = || std::str::from_utf8(text).map_err(|_| bad());
    Ok(match kind {
        TextKind::Int if unsigned => Cell::UInt(parse_digits(text).ok_or_else(bad)?),
        TextKind::Int => Cell::Int(parse_i64(text).ok_or_else(bad)?),
        TextKind::Float => Cell::Float(s()?.parse().map_err(|_| bad())?),
        TextKind::Double => Cell::Double(s()?.parse().map_err(|_| bad())?),
        TextKind::Decimal => parse_decimal_text(text).ok_or_else(bad)?,
        TextKind::Year => Cell::Year(s()?.parse().map_err(|_| bad())?),
        TextKind::Date => {
            let (year, month, day) = parse_ymd(text).ok_or_else(bad)?;
            Cell::Date { year, month, day }
        }
        TextKind::DateTime | TextKind::Timestamp => {
            let space = text.iter().position(|b| *b == b' ').ok_or_else(bad)?;
            let (year, month, day) = parse_ymd(&text[..space]).ok_or_else(bad)?;
            let (negative, micros) = parse_hms(&text[space + 1..]).ok_or_else(bad)?;
            if negative {
                return Err(bad());
            }
            let secs = micros / 1_000_000;
            let (hour, minute, second) = ((secs / 3600) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8);
            let micros = (micros % 1_000_000) as u32;
            let wall = Cell::DateTime { year, month, day, hour, minute, second, micros };
            if kind == TextKind::Timestamp {
                utc_instant(wall).ok_or_else(bad)?
            } else {
                wall
            }
        }
        TextKind::Time => {
            let (negative, micros) = parse_hms(text).ok_or_else(bad)?;
            Cell::Time { negative, micros: if negative { -micros } else { micros } }
        }
        TextKind::Bit => Cell::Bits(text),
        TextKind::Bytes => Cell::Bytes(text),
        TextKind::Set => Cell::SetBits(parse_digits(text).ok_or_else(bad)?),
        TextKind::Geometry => Cell::Geometry(text),
    })
}

/// The instant of a TIMESTAMP read as its UTC wall time (snapshot sessions run with
/// `time_zone = '+00:00'`); the zero TIMESTAMP is stored as second 0, as the binlog has it.
fn utc_instant(wall: Cell<'_>) -> Option<Cell<'static>> {
    let Cell::DateTime { year, month, day, hour, minute, second, micros } = wall else { return None };
    if month == 0 || day == 0 {
        return Some(Cell::Timestamp { seconds: 0, micros: 0 });
    }
    let days = days_from_civil(year, month, day)? as i64;
    let seconds = days * 86_400 + (hour as i64) * 3600 + (minute as i64) * 60 + second as i64;
    Some(Cell::Timestamp { seconds, micros })
}

/// A value of a binary-protocol result row (a prepared snapshot `SELECT`, in a session like
/// [`read_text_cell`]'s) of wire type `wire_type`, its bytes as
/// [`crate::connectors::mysql_session::wire::binary_row_cells`] splits them. Values the binary
/// protocol sends as text (DECIMAL, character and binary data, BIT, ENUM, JSON, spatial values)
/// read as in the text protocol.
pub fn read_binary_cell<'a>(
    bytes: &'a [u8],
    wire_type: u8,
    kind: TextKind,
    unsigned: bool,
    data_type: &str,
) -> Result<Cell<'a>> {
    use column_type as t;
    let bad = || Error::internal(format!("MySQL {data_type} value {bytes:02x?} is not in the expected binary form"));
    let int = |signed: i64, raw: u64| if unsigned { Cell::UInt(raw) } else { Cell::Int(signed) };
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| u32_at(at) as u64 | (u32_at(at + 4) as u64) << 32;
    Ok(match (wire_type, bytes.len()) {
        (t::LONGLONG, 8) if kind == TextKind::Set => Cell::SetBits(u64_at(0)),
        (t::TINY, 1) => int(bytes[0] as i8 as i64, bytes[0] as u64),
        (t::SHORT, 2) => int(u16_at(0) as i16 as i64, u16_at(0) as u64),
        // MEDIUMINT comes in four bytes, sign-extended.
        (t::LONG | t::INT24, 4) => int(u32_at(0) as i32 as i64, u32_at(0) as u64),
        (t::LONGLONG, 8) => int(u64_at(0) as i64, u64_at(0)),
        (t::YEAR, 2) => Cell::Year(u16_at(0)),
        (t::FLOAT, 4) => Cell::Float(f32::from_bits(u32_at(0))),
        (t::DOUBLE, 8) => Cell::Double(f64::from_bits(u64_at(0))),
        // Fields the value leaves out are zero: a zero value has none, a midnight no time.
        (t::DATE | t::DATETIME | t::TIMESTAMP, 0 | 4 | 7 | 11) => {
            let field = |at: usize| bytes.get(at).copied().unwrap_or(0);
            let (year, month, day) = if bytes.is_empty() { (0, 0, 0) } else { (u16_at(0), field(2), field(3)) };
            let micros = if bytes.len() == 11 { u32_at(7) } else { 0 };
            let wall = Cell::DateTime { year, month, day, hour: field(4), minute: field(5), second: field(6), micros };
            match kind {
                TextKind::Date => Cell::Date { year, month, day },
                TextKind::DateTime => wall,
                TextKind::Timestamp => utc_instant(wall).ok_or_else(bad)?,
                _ => return Err(bad()),
            }
        }
        (t::TIME, 0 | 8 | 12) => {
            let field = |at: usize| bytes.get(at).copied().unwrap_or(0) as i64;
            let days = if bytes.is_empty() { 0 } else { u32_at(1) as i64 };
            let fraction = if bytes.len() == 12 { u32_at(8) as i64 } else { 0 };
            let micros = (((days * 24 + field(5)) * 60 + field(6)) * 60 + field(7)) * 1_000_000 + fraction;
            let negative = field(0) == 1;
            Cell::Time { negative, micros: if negative { -micros } else { micros } }
        }
        (t::TINY | t::SHORT | t::LONG | t::INT24 | t::LONGLONG | t::YEAR | t::FLOAT | t::DOUBLE, _)
        | (t::DATE | t::DATETIME | t::TIMESTAMP | t::TIME, _) => return Err(bad()),
        _ => return read_text_cell(bytes, kind, unsigned, data_type),
    })
}

/// Unsigned decimal digits, none of them missing, without overflow (ZEROFILL pads with any
/// number of leading zeros).
fn parse_digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |v, b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v.checked_mul(10)?.checked_add(d as u64)
    })
}

fn parse_i64(text: &[u8]) -> Option<i64> {
    match text.split_first() {
        Some((b'-', digits)) => {
            let v = parse_digits(digits)?;
            if v == 1 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(v).ok().map(|v| -v)
            }
        }
        _ => i64::try_from(parse_digits(text)?).ok(),
    }
}

/// `YYYY-MM-DD`, zero parts allowed (zero dates are the builders' to judge).
fn parse_ymd(text: &[u8]) -> Option<(u16, u8, u8)> {
    let mut it = text.splitn(3, |b| *b == b'-');
    let year = u16::try_from(parse_digits(it.next()?)?).ok()?;
    let month = u8::try_from(parse_digits(it.next()?)?).ok()?;
    let day = u8::try_from(parse_digits(it.next()?)?).ok()?;
    Some((year, month, day))
}

/// `[-]h:mm:ss[.ffffff]` → (negative, micros ≥ 0).
fn parse_hms(text: &[u8]) -> Option<(bool, i64)> {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (whole, frac) = match text.iter().position(|b| *b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    let mut it = whole.splitn(3, |b| *b == b':');
    let h = parse_digits(it.next()?)? as i64;
    let m = parse_digits(it.next()?)? as i64;
    let sec = parse_digits(it.next()?)? as i64;
    if frac.len() > 6 {
        return None;
    }
    let micros = if frac.is_empty() { 0 } else { parse_digits(frac)? as i64 * 10i64.pow(6 - frac.len() as u32) };
    Some((negative, ((h.checked_mul(60)? + m) * 60 + sec).checked_mul(1_000_000)? + micros))
}

/// `[-]digits[.digits]`, accumulated in i128 while it fits (any DECIMAL up to 38 digits).
fn parse_decimal_text(text: &[u8]) -> Option<Cell<'static>> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (int, frac) = match digits.iter().position(|b| *b == b'.') {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &[][..]),
    };
    if int.is_empty() && frac.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let value = if int.len() + frac.len() <= 38 {
        i256::from_i128(int.iter().chain(frac).fold(0i128, |v, b| v * 10 + (b - b'0') as i128))
    } else {
        let ten = i256::from_i128(10);
        let mut v = i256::ZERO;
        for b in int.iter().chain(frac) {
            v = v.checked_mul(ten)?.checked_add(i256::from_i128((b - b'0') as i128))?;
        }
        v
    };
    Some(Cell::Decimal(if negative { value.wrapping_neg() } else { value }, frac.len() as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use column_type as t;

    fn one(buf: &[u8], ty: u8, meta: u16, unsigned: bool) -> Cell<'_> {
        let mut at = 0;
        let cell = read_binlog_cell(buf, &mut at, ty, meta, unsigned).unwrap();
        assert_eq!(at, buf.len(), "whole value consumed");
        cell
    }

    #[test]
    fn integers_keep_sign_and_width() {
        assert_eq!(one(&[0xff], t::TINY, 0, false), Cell::Int(-1));
        assert_eq!(one(&[0xff], t::TINY, 0, true), Cell::UInt(255));
        // mysql_common gives 16777215 for this (-1 as MEDIUMINT).
        assert_eq!(one(&[0xff, 0xff, 0xff], t::INT24, 0, false), Cell::Int(-1));
        assert_eq!(one(&[0x00, 0x00, 0x80], t::INT24, 0, false), Cell::Int(-8_388_608));
        assert_eq!(one(&[0xff, 0xff, 0xff], t::INT24, 0, true), Cell::UInt(16_777_215));
        assert_eq!(one(&[0xff; 8], t::LONGLONG, 0, true), Cell::UInt(u64::MAX));
        assert_eq!(one(&[0, 0, 0, 0, 0, 0, 0, 0x80], t::LONGLONG, 0, false), Cell::Int(i64::MIN));
        assert_eq!(one(&[0x00, 0x80], t::SHORT, 0, false), Cell::Int(-32768));
    }

    #[test]
    fn year_zero_stays_zero() {
        assert_eq!(one(&[0], t::YEAR, 0, true), Cell::Year(0));
        assert_eq!(one(&[124], t::YEAR, 0, true), Cell::Year(2024));
        assert_eq!(one(&[255], t::YEAR, 0, true), Cell::Year(2155));
    }

    #[test]
    fn decimals_of_any_precision() {
        // DECIMAL(10,2) 1234.56 and -1234.56, as the server writes them.
        let pos = [0x80, 0x00, 0x04, 0xd2, 0x38];
        assert_eq!(one(&pos, t::NEWDECIMAL, 10 | (2 << 8), false), Cell::Decimal(i256::from_i128(123456), 2));
        let neg: Vec<u8> = pos.iter().map(|b| !b).collect();
        assert_eq!(one(&neg, t::NEWDECIMAL, 10 | (2 << 8), false), Cell::Decimal(i256::from_i128(-123456), 2));
        // DECIMAL(65,0) of 65 nines: 7 full groups plus 2 digits.
        let mut nines = vec![0x80 | 99];
        for _ in 0..7 {
            nines.extend_from_slice(&999_999_999u32.to_be_bytes());
        }
        assert_eq!(decimal_bin_size(65, 0), nines.len());
        let expected = i256::from_string(&"9".repeat(65)).unwrap();
        assert_eq!(one(&nines, t::NEWDECIMAL, 65, false), Cell::Decimal(expected, 0));
        assert_eq!(
            read_text_cell(b"-0.50", TextKind::Decimal, false, "decimal").unwrap(),
            Cell::Decimal(i256::from_i128(-50), 2)
        );
        // ZEROFILL pads the text to the display width, up to 255 digits.
        let padded = format!("{}42", "0".repeat(60));
        assert_eq!(read_text_cell(padded.as_bytes(), TextKind::Int, true, "bigint").unwrap(), Cell::UInt(42));
        assert_eq!(read_text_cell(b"-000042", TextKind::Int, false, "int").unwrap(), Cell::Int(-42));
    }

    #[test]
    fn temporal_values() {
        // DATE 2024-02-29: day | month << 5 | year << 9.
        let v: u32 = 29 | (2 << 5) | (2024 << 9);
        assert_eq!(one(&v.to_le_bytes()[..3], t::DATE, 0, false), Cell::Date { year: 2024, month: 2, day: 29 });
        // DATETIME2(6) 2024-02-29 13:14:15.123456.
        let ym = 2024 * 13 + 2;
        let packed: i64 = ((((ym << 5) | 29) << 17) | (13 << 12) | (14 << 6) | 15) + 0x80_0000_0000;
        let mut buf = packed.to_be_bytes()[3..].to_vec();
        buf.extend_from_slice(&123456u32.to_be_bytes()[1..]);
        assert_eq!(
            one(&buf, t::DATETIME2, 6, false),
            Cell::DateTime { year: 2024, month: 2, day: 29, hour: 13, minute: 14, second: 15, micros: 123456 }
        );
        // TIMESTAMP2(3) 1700000000.123.
        let mut buf = 1_700_000_000u32.to_be_bytes().to_vec();
        buf.extend_from_slice(&1230u16.to_be_bytes());
        assert_eq!(one(&buf, t::TIMESTAMP2, 3, false), Cell::Timestamp { seconds: 1_700_000_000, micros: 123_000 });
        // TIME2(0) 838:59:59 and -838:59:59.
        let int: i64 = (838 << 12) | (59 << 6) | 59;
        let pos = (int + 0x80_0000).to_be_bytes()[5..].to_vec();
        let micros = (838 * 3600 + 59 * 60 + 59) * 1_000_000;
        assert_eq!(one(&pos, t::TIME2, 0, false), Cell::Time { negative: false, micros });
        let neg = (0x80_0000 - int).to_be_bytes()[5..].to_vec();
        assert_eq!(one(&neg, t::TIME2, 0, false), Cell::Time { negative: true, micros: -micros });
        // TIME2(6) -00:00:01.5: packed = -(1 << 24 | 500000) + offset.
        let packed: i64 = -((1i64 << 24) | 500_000) + (0x80_0000i64 << 24);
        let buf = packed.to_be_bytes()[2..].to_vec();
        assert_eq!(one(&buf, t::TIME2, 6, false), Cell::Time { negative: true, micros: -1_500_000 });
        assert_eq!(
            read_text_cell(b"-00:00:01.500000", TextKind::Time, false, "time").unwrap(),
            Cell::Time { negative: true, micros: -1_500_000 }
        );
        assert_eq!(
            read_text_cell(b"2023-11-14 22:13:20.123", TextKind::Timestamp, false, "timestamp").unwrap(),
            Cell::Timestamp { seconds: 1_700_000_000, micros: 123_000 }
        );
    }

    #[test]
    fn strings_enums_sets_bits_blobs() {
        assert_eq!(one(&[3, b'a', b'b', b'c'], t::VARCHAR, 30, false), Cell::Bytes(b"abc"));
        assert_eq!(one(&[3, 0, b'a', b'b', b'c'], t::VARCHAR, 300, false), Cell::Bytes(b"abc"));
        // CHAR(10) in utf8mb4 (40 bytes): STRING with meta 0xfe28.
        assert_eq!(one(&[2, b'h', b'i'], t::STRING, 0xfe28, false), Cell::Bytes(b"hi"));
        // CHAR(100) utf8mb4 = 400 bytes: two length bits folded into the type byte.
        let meta = (((0xfe ^ 0x10) as u16) << 8) | (400 & 0xff);
        assert_eq!(real_type(t::STRING, meta), (t::STRING, 400));
        assert_eq!(one(&[1, 0, b'x'], t::STRING, meta, false), Cell::Bytes(b"x"));
        assert_eq!(one(&[2], t::STRING, 0xf701, false), Cell::EnumIndex(2));
        assert_eq!(one(&[5], t::STRING, 0xf801, false), Cell::SetBits(5));
        // BIT(10): 2 bits + 1 byte in the metadata → 2 bytes.
        assert_eq!(one(&[0x03, 0xff], t::BIT, 0x0102, false), Cell::Bits(&[0x03, 0xff]));
        assert_eq!(one(&[2, 0, 0xde, 0xad], t::BLOB, 2, false), Cell::Bytes(&[0xde, 0xad]));
        let mut at = 0;
        assert!(read_binlog_cell(&[9, b'a'], &mut at, t::VARCHAR, 30, false).is_err());
    }

    #[test]
    fn spatial_values_and_set_masks_read_alike_from_binlog_and_snapshot() {
        // POINT(3 0), SRID 0, as the server stores it; GEOMETRY's metadata is its length bytes (4).
        let stored = hex_bytes("00000000010100000000000000000008400000000000000000");
        let mut image = (stored.len() as u32).to_le_bytes().to_vec();
        image.extend_from_slice(&stored);
        assert_eq!(one(&image, t::GEOMETRY, 4, false), Cell::Geometry(&stored));
        assert_eq!(read_text_cell(&stored, TextKind::of("point"), false, "point").unwrap(), Cell::Geometry(&stored));
        assert_eq!(
            read_binary_cell(&stored, t::GEOMETRY, TextKind::of("geometry"), false, "geometry").unwrap(),
            Cell::Geometry(&stored)
        );
        // A SET read as `CAST(c AS UNSIGNED)`: text, or an 8-byte integer in the binary protocol.
        assert_eq!(read_text_cell(b"5", TextKind::of("set"), false, "set").unwrap(), Cell::SetBits(5));
        assert_eq!(
            read_binary_cell(&5u64.to_le_bytes(), t::LONGLONG, TextKind::Set, false, "set").unwrap(),
            Cell::SetBits(5)
        );
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn binary_and_text_rows_of_one_server_read_as_the_same_cells() {
        use crate::connectors::mysql_session::wire::tests::*;
        use crate::connectors::mysql_session::wire::{binary_row_cells, row_cells};
        let columns = [
            ("tinyint", false),
            ("smallint", true),
            ("mediumint", false),
            ("int", false),
            ("bigint", true),
            ("float", false),
            ("double", false),
            ("decimal", false),
            ("year", false),
            ("date", false),
            ("datetime", false),
            ("timestamp", false),
            ("time", false),
            ("varchar", false),
            ("bit", false),
            ("longtext", false),
        ];
        let (mut binary_cells, mut text_cells) = (Vec::new(), Vec::new());
        for (binary, text) in [(BINARY_ROW, TEXT_ROW), (BINARY_ROW_OF_NULLS, TEXT_ROW_OF_NULLS)] {
            let (binary, text) = (hex(binary), hex(text));
            binary_row_cells(&binary, &TYPES, &mut binary_cells).unwrap();
            row_cells(&text, TYPES.len(), &mut text_cells).unwrap();
            for (i, (data_type, unsigned)) in columns.into_iter().enumerate() {
                let kind = TextKind::of(data_type);
                let from_binary = binary_cells[i]
                    .map(|(s, e)| read_binary_cell(&binary[s..e], TYPES[i], kind, unsigned, data_type).unwrap());
                let from_text =
                    text_cells[i].map(|(s, e)| read_text_cell(&text[s..e], kind, unsigned, data_type).unwrap());
                assert_eq!(from_binary, from_text, "column {i} ({data_type})");
            }
        }
        let first = hex(BINARY_ROW);
        binary_row_cells(&first, &TYPES, &mut binary_cells).unwrap();
        let cell = |i: usize| {
            let (s, e) = binary_cells[i].unwrap();
            read_binary_cell(&first[s..e], TYPES[i], TextKind::of(columns[i].0), columns[i].1, columns[i].0).unwrap()
        };
        assert_eq!(cell(2), Cell::Int(-8_388_608));
        assert_eq!(cell(4), Cell::UInt(u64::MAX));
        assert_eq!(cell(11), Cell::Timestamp { seconds: 1_700_000_000, micros: 500_000 });
        assert_eq!(cell(12), Cell::Time { negative: true, micros: -3_020_399_000_001 });
    }

    #[test]
    fn binary_values_of_the_wrong_width_are_errors() {
        assert!(read_binary_cell(&[1, 2, 3], t::LONG, TextKind::Int, false, "int").is_err());
        assert!(read_binary_cell(&[1, 2, 3], t::DATETIME, TextKind::DateTime, false, "datetime").is_err());
        assert!(
            read_binary_cell(&[0xe8, 0x07, 2, 29], t::DATE, TextKind::Int, false, "int").is_err(),
            "a date for a number"
        );
        assert_eq!(
            read_binary_cell(&[0xe8, 0x07, 2, 29], t::DATETIME, TextKind::DateTime, false, "datetime").unwrap(),
            Cell::DateTime { year: 2024, month: 2, day: 29, hour: 0, minute: 0, second: 0, micros: 0 },
            "midnight leaves the time out"
        );
        assert_eq!(
            read_binary_cell(&[0, 1, 0, 0, 0, 2, 3, 4], t::TIME, TextKind::Time, false, "time").unwrap(),
            Cell::Time { negative: false, micros: ((26 * 60 + 3) * 60 + 4) * 1_000_000 },
            "days of a TIME count 24 hours"
        );
    }
}
