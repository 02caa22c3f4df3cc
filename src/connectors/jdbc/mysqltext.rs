//! MySQL/MariaDB values as text, both ways, with no I/O: Arrow values written as SQL literals for
//! multi-row statements (the session runs with `NO_BACKSLASH_ESCAPES` and `time_zone = '+00:00'`,
//! so a string literal only doubles its quotes and timestamps are UTC), and text-protocol result
//! values parsed into Arrow builders (zero dates such as `0000-00-00` become NULL; FLOAT/DOUBLE
//! into DECIMAL and spatial values as mysql-cdc converts them).

use std::fmt::Write as _;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};

use super::columns::{BatchBuilder, ColumnBuilder, SourceKind};
use super::dialect::mysql_error;
use crate::connectors::calendar::{civil_from_days, days_from_civil};
use crate::connectors::float_decimal::Float;
use crate::connectors::mysql_session::wire::column_type;
use crate::connectors::spatial;
use crate::error::{Error, Result};

/// The session mode every statement with literals of [`write_literal`] runs in: a backslash in a
/// string is itself, and a value that does not fit fails instead of being cut.
pub const SQL_MODE: &str =
    "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES', 'NO_BACKSLASH_ESCAPES')";

/// The select-list expression the scan reads a column of declared type `dt` from a source column
/// of `kind` with. BOOLEAN reads `<> 0` so BIT(1) (a raw byte on the text protocol) and
/// TINYINT(1) both arrive as 0/1. A FLOAT read as a number reads as a DOUBLE (`* 1e0`, exact):
/// its own text has six significant digits (3.1415927 reads `3.14159`). A BIT read as anything
/// but bytes reads as its number (as mysql-cdc reads it), not as raw bytes.
pub fn read_expression(quoted_column: &str, dt: &DataType, kind: SourceKind) -> String {
    match (dt, kind) {
        (DataType::Boolean, _) => format!("({quoted_column} <> 0)"),
        (DataType::Binary, SourceKind::Bit) => quoted_column.to_string(),
        (_, SourceKind::Bit) => format!("CAST({quoted_column} AS UNSIGNED)"),
        (
            DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..),
            SourceKind::Float32 | SourceKind::Float32Widened,
        ) => format!("{quoted_column} * 1e0"),
        _ => quoted_column.to_string(),
    }
}

/// What the scan must know of a result column, from its type and decimals in the column
/// definition: FLOAT without (M,D) is a 4-byte float to Flink CDC, FLOAT(M,D) and DOUBLE 8-byte
/// ones (Debezium's mapping), spatial columns hold SRID + WKB.
pub fn source_kind(wire_type: u8, decimals: u8) -> SourceKind {
    // 31 and above: no fixed number of decimals (MySQL's NOT_FIXED_DEC is 31, MariaDB's 39).
    match wire_type {
        column_type::FLOAT if decimals >= 31 => SourceKind::Float32,
        column_type::FLOAT => SourceKind::Float32Widened,
        column_type::DOUBLE => SourceKind::Float64,
        column_type::GEOMETRY => SourceKind::Geometry,
        column_type::BIT => SourceKind::Bit,
        _ => SourceKind::Other,
    }
}

/// What each result column of `describe` (a `SELECT` of the declared columns) is read from, as
/// `mysql_async` describes it.
pub async fn describe_kinds(conn: &mut mysql_async::Conn, describe: &str) -> Result<Vec<SourceKind>> {
    use mysql_async::prelude::Queryable;
    let describing = "reading the columns' types";
    let described = conn.query_iter(format!("{describe} LIMIT 0")).await.map_err(|e| mysql_error(&e, describing))?;
    let kinds = described
        .columns()
        .map(|columns| columns.iter().map(|c| source_kind(c.column_type() as u8, c.decimals())).collect())
        .unwrap_or_default();
    described.drop_result().await.map_err(|e| mysql_error(&e, describing))?;
    Ok(kinds)
}

/// Appends one text-protocol row of `mysql_async` to `builder`, its columns read as `kinds` say.
pub fn append_row(builder: &mut BatchBuilder, row: &mysql_async::Row, kinds: &[SourceKind]) -> Result<()> {
    for (i, column) in builder.columns.iter_mut().enumerate() {
        let kind = kinds.get(i).copied().unwrap_or(SourceKind::Other);
        match row.as_ref(i) {
            None | Some(mysql_async::Value::NULL) => column.append_null(),
            Some(mysql_async::Value::Bytes(b)) => append_text(column, Some(b), kind)?,
            Some(other) => return Err(Error::internal(format!("jdbc: MySQL text protocol sent {other:?}"))),
        }
    }
    builder.row_done();
    Ok(())
}

/// Appends the SQL literal of `array[row]` to `out`. `column` names the column in errors.
pub fn write_literal(out: &mut String, array: &ArrayRef, row: usize, column: &str) -> Result<()> {
    if array.is_null(row) {
        out.push_str("NULL");
        return Ok(());
    }
    macro_rules! int {
        ($t:ty) => {{
            let _ = write!(out, "{}", array.as_primitive::<$t>().value(row));
        }};
    }
    match array.data_type() {
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) { "1" } else { "0" }),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => float(out, array.as_primitive::<Float32Type>().value(row) as f64, column)?,
        DataType::Float64 => float(out, array.as_primitive::<Float64Type>().value(row), column)?,
        DataType::Utf8 => {
            let v = array.as_string::<i32>().value(row);
            out.reserve(v.len() + 2);
            out.push('\'');
            for (i, part) in v.split('\'').enumerate() {
                if i > 0 {
                    out.push_str("''");
                }
                out.push_str(part);
            }
            out.push('\'');
        }
        DataType::Binary => {
            let v = array.as_binary::<i32>().value(row);
            out.reserve(v.len() * 2 + 3);
            out.push_str("X'");
            for b in v {
                let _ = write!(out, "{b:02x}");
            }
            out.push('\'');
        }
        DataType::Decimal128(_, s) => {
            let v = array.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>().value(row);
            decimal(out, v < 0, &v.unsigned_abs().to_string(), *s);
        }
        DataType::Decimal256(_, s) => {
            let text = array.as_primitive::<datafusion::arrow::datatypes::Decimal256Type>().value(row).to_string();
            match text.strip_prefix('-') {
                Some(d) => decimal(out, true, d, *s),
                None => decimal(out, false, &text, *s),
            }
        }
        DataType::Date32 => {
            let (y, m, d) = civil_from_days(array.as_primitive::<Date32Type>().value(row) as i64);
            let _ = write!(out, "'{y:04}-{m:02}-{d:02}'");
        }
        DataType::Time32(TimeUnit::Second) => {
            time(out, array.as_primitive::<Time32SecondType>().value(row) as i64 * 1_000_000)
        }
        DataType::Time32(_) => time(out, array.as_primitive::<Time32MillisecondType>().value(row) as i64 * 1_000),
        DataType::Time64(TimeUnit::Microsecond) => time(out, array.as_primitive::<Time64MicrosecondType>().value(row)),
        DataType::Time64(_) => time(out, array.as_primitive::<Time64NanosecondType>().value(row) / 1_000),
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row).saturating_mul(1_000_000),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row).saturating_mul(1_000)
                }
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row).div_euclid(1_000),
            };
            timestamp(out, micros);
        }
        other => {
            return Err(Error::internal(format!("jdbc: no MySQL literal for column `{column}` of type {other}")));
        }
    }
    Ok(())
}

fn float(out: &mut String, v: f64, column: &str) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::user(format!(
            "column `{column}` holds {v}, which MySQL/MariaDB cannot store; filter it out or map it with CASE"
        )));
    }
    // Exponent notation makes it a floating-point literal whatever its size.
    let _ = write!(out, "{v:e}");
    Ok(())
}

fn decimal(out: &mut String, negative: bool, digits: &str, scale: i8) {
    if negative {
        out.push('-');
    }
    let scale = scale.max(0) as usize;
    if scale == 0 {
        out.push_str(digits);
    } else if digits.len() > scale {
        out.push_str(&digits[..digits.len() - scale]);
        out.push('.');
        out.push_str(&digits[digits.len() - scale..]);
    } else {
        let _ = write!(out, "0.{digits:0>scale$}");
    }
}

fn time(out: &mut String, micros: i64) {
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let _ = write!(out, "'{:02}:{:02}:{:02}.{frac:06}'", secs / 3600, secs / 60 % 60, secs % 60);
}

fn timestamp(out: &mut String, micros: i64) {
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "'{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}'",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    );
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.iter().fold(0i64, |acc, b| acc * 10 + (b - b'0') as i64))
}

/// `YYYY-MM-DD` → days since the epoch; `Ok(None)` for zero dates (a zero year, month or day).
fn parse_date(s: &[u8]) -> Option<Option<i64>> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    if y == 0 || m == 0 || d == 0 {
        return Some(None);
    }
    if m > 12 || d > 31 {
        return None;
    }
    Some(Some(days_from_civil(y, m as u32, d as u32)))
}

/// `HH:MM:SS[.ffffff]` (hours may exceed 24 or be negative in MySQL TIME) → microseconds.
fn parse_time(s: &[u8]) -> Option<i64> {
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let text = std::str::from_utf8(s).ok()?;
    let (hms, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = hms.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || frac.len() > 6 {
        return None;
    }
    let (h, m, sec) = (digits(h.as_bytes())?, digits(m.as_bytes())?, digits(sec.as_bytes())?);
    let frac = if frac.is_empty() { 0 } else { digits(frac.as_bytes())? * 10i64.pow(6 - frac.len() as u32) };
    let micros = ((h * 60 + m) * 60 + sec) * 1_000_000 + frac;
    Some(if negative { -micros } else { micros })
}

/// Appends one text-protocol value (`None` = SQL NULL) of a source column of `kind` to a column
/// of its declared type.
pub fn append_text(column: &mut ColumnBuilder, value: Option<&[u8]>, kind: SourceKind) -> Result<()> {
    let Some(v) = value else {
        column.append_null();
        return Ok(());
    };
    match (kind, column.data_type()) {
        (SourceKind::Geometry, DataType::Utf8) => {
            let json = spatial::mysql_to_flink_json(v).map_err(|why| column.unreadable_spatial(&why))?;
            return column.append_bytes(json.as_bytes());
        }
        (SourceKind::Geometry, DataType::Binary) => {
            return column.append_bytes(spatial::mysql_to_wkb(v).map_err(|why| column.unreadable_spatial(&why))?);
        }
        (SourceKind::Geometry, other) => {
            return Err(Error::user(format!(
                "column `{}` is declared {other} but holds MySQL spatial values: declare it STRING (JSON text, as Flink CDC writes) or BYTES (WKB)",
                column.name()
            )))
        }
        (
            SourceKind::Float32 | SourceKind::Float32Widened | SourceKind::Float64,
            DataType::Decimal128(..) | DataType::Decimal256(..),
        ) => {
            let Some(double) = std::str::from_utf8(v).ok().and_then(|s| s.parse::<f64>().ok()) else {
                return Err(column.out_of_range(String::from_utf8_lossy(v)));
            };
            // The FLOAT was read as a DOUBLE (`* 1e0`), exactly: back to the float it is.
            let value = if kind == SourceKind::Float32 { Float::F32(double as f32) } else { Float::F64(double) };
            return column.append_float(value);
        }
        _ => {}
    }
    let invalid = |column: &ColumnBuilder| {
        Error::user(format!(
            "value '{}' cannot be read as {}: {}",
            String::from_utf8_lossy(v),
            column.data_type(),
            "declare a matching type"
        ))
    };
    match column.data_type() {
        DataType::Utf8 | DataType::Binary => column.append_bytes(v),
        DataType::Boolean => match v {
            b"0" => column.append_bool(false),
            b"1" => column.append_bool(true),
            _ => Err(invalid(column)),
        },
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => match std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok()) {
            Some(n) => column.append_i64(n),
            None => Err(column.out_of_range(String::from_utf8_lossy(v))),
        },
        DataType::UInt64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Float32
        | DataType::Float64 => match std::str::from_utf8(v) {
            Ok(s) => column.append_decimal_text(s),
            Err(_) => Err(invalid(column)),
        },
        DataType::Date32 => match parse_date(v) {
            Some(Some(days)) => column.append_i64(days),
            Some(None) => {
                column.append_null();
                Ok(())
            }
            None => Err(invalid(column)),
        },
        DataType::Time32(_) | DataType::Time64(_) => match parse_time(v) {
            Some(micros) if (0..86_400_000_000).contains(&micros) => column.append_micros(micros),
            Some(_) => Err(column.out_of_range(String::from_utf8_lossy(v))),
            None => Err(invalid(column)),
        },
        DataType::Timestamp(..) => {
            if v.len() < 19 || v[10] != b' ' {
                return Err(invalid(column));
            }
            let days = match parse_date(&v[..10]) {
                Some(Some(days)) => days,
                Some(None) => {
                    column.append_null();
                    return Ok(());
                }
                None => return Err(invalid(column)),
            };
            match parse_time(&v[11..]) {
                Some(micros) => column.append_micros(days * 86_400_000_000 + micros),
                None => Err(invalid(column)),
            }
        }
        _ => Err(invalid(column)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BinaryArray, Date32Array, Decimal128Array, Float64Array, StringArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn floats_into_decimals_and_spatial_values_as_mysql_cdc_reads_them() {
        use datafusion::arrow::datatypes::Decimal128Type;
        assert_eq!(source_kind(column_type::FLOAT, 31), SourceKind::Float32);
        assert_eq!(source_kind(column_type::FLOAT, 39), SourceKind::Float32);
        assert_eq!(source_kind(column_type::FLOAT, 3), SourceKind::Float32Widened, "FLOAT(10,3)");
        assert_eq!(source_kind(column_type::DOUBLE, 31), SourceKind::Float64);
        assert_eq!(read_expression("`w`", &DataType::Decimal128(20, 12), SourceKind::Float32Widened), "`w` * 1e0");
        assert_eq!(source_kind(column_type::GEOMETRY, 0), SourceKind::Geometry);
        assert_eq!(read_expression("`w`", &DataType::Decimal128(10, 3), SourceKind::Float32), "`w` * 1e0");
        assert_eq!(read_expression("`w`", &DataType::Utf8, SourceKind::Float32), "`w`");
        assert_eq!(source_kind(column_type::BIT, 0), SourceKind::Bit);
        assert_eq!(read_expression("`b`", &DataType::Utf8, SourceKind::Bit), "CAST(`b` AS UNSIGNED)");
        assert_eq!(read_expression("`b`", &DataType::Binary, SourceKind::Bit), "`b`");
        assert_eq!(read_expression("`b`", &DataType::Boolean, SourceKind::Bit), "(`b` <> 0)");
        let mut d = ColumnBuilder::new("w", &DataType::Decimal128(10, 3), 3).unwrap();
        // FLOAT 1.1 selected as `w * 1e0`.
        append_text(&mut d, Some(b"1.100000023841858"), SourceKind::Float32).unwrap();
        append_text(&mut d, Some(b"123.4565"), SourceKind::Float64).unwrap();
        assert!(append_text(&mut d, Some(b"1e30"), SourceKind::Float64).is_err());
        let a = d.finish().unwrap();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!((a.value(0), a.value(1)), (1_100, 123_457));

        let mut stored = vec![0u8, 0, 0, 0, 1, 1, 0, 0, 0];
        stored.extend_from_slice(&3f64.to_le_bytes());
        stored.extend_from_slice(&0f64.to_le_bytes());
        let mut s = ColumnBuilder::new("g", &DataType::Utf8, 1).unwrap();
        append_text(&mut s, Some(&stored), SourceKind::Geometry).unwrap();
        let a = s.finish().unwrap();
        assert_eq!(a.as_string::<i32>().value(0), r#"{"coordinates":[3,0],"type":"Point","srid":0}"#);
        let mut b = ColumnBuilder::new("g", &DataType::Binary, 1).unwrap();
        append_text(&mut b, Some(&stored), SourceKind::Geometry).unwrap();
        assert_eq!(b.finish().unwrap().as_binary::<i32>().value(0), &stored[4..]);
        let mut i = ColumnBuilder::new("g", &DataType::Int32, 1).unwrap();
        assert!(append_text(&mut i, Some(&stored), SourceKind::Geometry).unwrap_err().to_string().contains("spatial"));
        let mut s = ColumnBuilder::new("g", &DataType::Utf8, 1).unwrap();
        let err = append_text(&mut s, Some(&stored[..7]), SourceKind::Geometry).unwrap_err().to_string();
        assert!(err.contains("`g`") && err.contains("spatial"), "{err}");
    }

    fn lit(a: ArrayRef) -> Vec<String> {
        (0..a.len())
            .map(|i| {
                let mut s = String::new();
                write_literal(&mut s, &a, i, "c").unwrap();
                s
            })
            .collect()
    }

    #[test]
    fn literals_are_safe_and_exact() {
        assert_eq!(lit(Arc::new(StringArray::from(vec![Some("it's \\"), None]))), vec!["'it''s \\'", "NULL"]);
        assert_eq!(lit(Arc::new(BinaryArray::from(vec![&[0u8, 255][..]]))), vec!["X'00ff'"]);
        let d = Decimal128Array::from(vec![-5, 12345]).with_precision_and_scale(10, 3).unwrap();
        assert_eq!(lit(Arc::new(d)), vec!["-0.005", "12.345"]);
        assert_eq!(lit(Arc::new(Float64Array::from(vec![0.1, 1e300]))), vec!["1e-1", "1e300"]);
        assert_eq!(lit(Arc::new(Date32Array::from(vec![0, -1]))), vec!["'1970-01-01'", "'1969-12-31'"]);
        assert_eq!(
            lit(Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_000_001, -1]))),
            vec!["'2023-11-14 22:13:20.000001'", "'1969-12-31 23:59:59.999999'"]
        );
        let mut s = String::new();
        assert!(write_literal(&mut s, &(Arc::new(Float64Array::from(vec![f64::NAN])) as ArrayRef), 0, "x").is_err());
    }

    #[test]
    fn text_values_parse_with_zero_dates_as_null() {
        let mut ts = ColumnBuilder::new("ts", &DataType::Timestamp(TimeUnit::Microsecond, None), 4).unwrap();
        append_text(&mut ts, Some(b"2024-02-29 23:59:59.5"), SourceKind::Other).unwrap();
        append_text(&mut ts, Some(b"0000-00-00 00:00:00"), SourceKind::Other).unwrap();
        append_text(&mut ts, None, SourceKind::Other).unwrap();
        let a = ts.finish().unwrap();
        let a = a.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(a.value(0), 1_709_251_199_500_000);
        assert!(a.is_null(1) && a.is_null(2));

        let mut d = ColumnBuilder::new("d", &DataType::Date32, 2).unwrap();
        append_text(&mut d, Some(b"2020-00-10"), SourceKind::Other).unwrap();
        assert!(append_text(&mut d, Some(b"yesterday"), SourceKind::Other).is_err());

        let mut t = ColumnBuilder::new("t", &DataType::Time64(TimeUnit::Microsecond), 2).unwrap();
        append_text(&mut t, Some(b"12:00:01.25"), SourceKind::Other).unwrap();
        assert!(append_text(&mut t, Some(b"-01:00:00"), SourceKind::Other).is_err());
        let mut u = ColumnBuilder::new("u", &DataType::UInt64, 1).unwrap();
        append_text(&mut u, Some(b"18446744073709551615"), SourceKind::Other).unwrap();
        let mut b = ColumnBuilder::new("b", &DataType::Boolean, 1).unwrap();
        append_text(&mut b, Some(b"1"), SourceKind::Other).unwrap();
        assert!(append_text(&mut b, Some(b"2"), SourceKind::Other).is_err());
    }
}
