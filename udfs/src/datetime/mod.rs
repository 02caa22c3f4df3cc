//! Flink's temporal functions: formatting and parsing with Java patterns, Unix times, the clock
//! read per batch, field extraction, arithmetic by unit, floor/ceil to a unit.
//!
//! The session time zone ([`crate::zone`]) is what Flink's `table.local-time-zone` is: FROM_UNIXTIME
//! prints in it, UNIX_TIMESTAMP reads in it, LOCALTIMESTAMP / CURRENT_DATE read the clock in it,
//! and a TIMESTAMP_LTZ value is seen through it wherever a field or a text is taken from it. A
//! TIMESTAMP (without time zone) is a wall-clock value and is never shifted.
//!
//! The clock functions are `Volatile`: DataFusion folds `Stable` ones (its own `current_date`)
//! into a constant when the query is planned, which a job running for months must not do. They
//! read the clock once per batch.

mod now;
mod pattern;
mod values;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{ArrayRef, Int32Builder, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{ScalarUDF, TypeSignatureClass, Volatility};

pub(crate) use now::NowFunc;
use pattern::{parse_default_date, parse_default_timestamp, Flavor, Pattern};
use values::{midnight, temporal_array, Kind, TimeArg};

use crate::func::{sig, Call, Func, Returns};
use crate::zone::Zone;

const TIMESTAMP_FORMAT: &str = "yyyy-MM-dd HH:mm:ss";

fn ts3() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn ltz3() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A temporal argument of any kind (DATE, TIME, TIMESTAMP, TIMESTAMP_LTZ), passed as is.
fn temporal() -> datafusion::logical_expr::Coercion {
    datafusion::logical_expr::Coercion::new_exact(TypeSignatureClass::Any)
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    let s = sig::string;
    let volatile = |lists| sig::one_of(lists, Volatility::Volatile);
    let immutable = |lists| sig::one_of(lists, Volatility::Immutable);
    vec![
        ScalarUDF::new_from_impl(NowFunc::default()),
        Func::new("date_format", sig::args(vec![temporal(), s()]), Returns::Fixed(DataType::Utf8), date_format)
            .check(|lits| check_pattern(lits.get(1), Flavor::Modern).map(|_| ()))
            .udf(),
        Func::new("to_timestamp", immutable(vec![vec![s()], vec![s(), s()]]), Returns::Fixed(ts3()), to_timestamp)
            .check(|lits| check_pattern(lits.get(1), Flavor::Modern).map(|_| ()))
            .udf(),
        Func::new("to_date", immutable(vec![vec![s()], vec![s(), s()]]), Returns::Fixed(DataType::Date32), to_date)
            .check(|lits| check_pattern(lits.get(1), Flavor::Legacy).map(|_| ()))
            .udf(),
        Func::new(
            "from_unixtime",
            immutable(vec![vec![sig::int()], vec![sig::int(), s()]]),
            Returns::Fixed(DataType::Utf8),
            from_unixtime,
        )
        .check(|lits| check_pattern(lits.get(1), Flavor::Legacy).map(|_| ()))
        .udf(),
        Func::new(
            "unix_timestamp",
            volatile(vec![vec![], vec![s()], vec![s(), s()]]),
            Returns::Fixed(DataType::Int64),
            unix_timestamp,
        )
        .check(|lits| check_pattern(lits.get(1), Flavor::Legacy).map(|_| ()))
        .udf(),
        Func::new(
            "to_timestamp_ltz",
            sig::args(vec![sig::double(), sig::int()]),
            Returns::Fixed(ltz3()),
            to_timestamp_ltz,
        )
        .check(|lits| match lits.get(1).copied().flatten() {
            Some(ScalarValue::Int64(Some(p))) if *p != 0 && *p != 3 => {
                Err(format!("precision {p} is not supported; use 0 (epoch seconds) or 3 (epoch milliseconds)"))
            }
            _ => Ok(()),
        })
        .udf(),
        Func::new("convert_tz", sig::strings(3), Returns::Fixed(DataType::Utf8), convert_tz)
            .check(|lits| {
                for z in [lits.get(1), lits.get(2)] {
                    if let Some(Some(name)) = z.copied().flatten().and_then(|v| v.try_as_str()) {
                        Zone::parse(name)?;
                    }
                }
                Ok(())
            })
            .udf(),
        Func::new(
            "timestampadd",
            sig::args(vec![s(), sig::int(), temporal()]),
            Returns::WithLiterals(timestampadd_type),
            timestampadd,
        )
        .udf(),
        Func::new(
            "timestampdiff",
            sig::args(vec![s(), temporal(), temporal()]),
            Returns::Fixed(DataType::Int32),
            timestampdiff,
        )
        .check(|lits| unit_literal(lits.first(), Unit::DIFF).map(|_| ()))
        .udf(),
        Func::new("localtimestamp", volatile(vec![vec![]]), Returns::Fixed(ts3()), localtimestamp).udf(),
        Func::new("localtime", volatile(vec![vec![]]), Returns::Fixed(DataType::Time32(TimeUnit::Second)), localtime)
            .alias("current_time")
            .udf(),
        Func::new("current_date", volatile(vec![vec![]]), Returns::Fixed(DataType::Date32), current_date).udf(),
        Func::new("current_row_timestamp", volatile(vec![vec![]]), Returns::Fixed(ltz3()), current_row_timestamp).udf(),
        // A processing-time attribute is the instant a row is processed: the same clock.
        Func::new("proctime", volatile(vec![vec![]]), Returns::Fixed(ltz3()), current_row_timestamp).udf(),
        Func::new("extract", sig::args(vec![s(), temporal()]), Returns::Fixed(DataType::Int64), extract)
            .check(|lits| unit_literal(lits.first(), Unit::EXTRACT).map(|_| ()))
            .udf(),
        field("year", Unit::Year),
        field("quarter", Unit::Quarter),
        field("month", Unit::Month),
        field("week", Unit::Week),
        field("dayofyear", Unit::DayOfYear),
        field("dayofmonth", Unit::Day),
        field("dayofweek", Unit::DayOfWeek),
        field("hour", Unit::Hour),
        field("minute", Unit::Minute),
        field("second", Unit::Second),
        Func::new("time_floor", sig::args(vec![s(), temporal()]), Returns::Arg(1), time_floor)
            .check(|lits| unit_literal(lits.first(), Unit::FLOOR).map(|_| ()))
            .udf(),
        Func::new("time_ceil", sig::args(vec![s(), temporal()]), Returns::Arg(1), time_ceil)
            .check(|lits| unit_literal(lits.first(), Unit::FLOOR).map(|_| ()))
            .udf(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Patterns

fn check_pattern(lit: Option<&Option<&ScalarValue>>, flavor: Flavor) -> std::result::Result<Option<Pattern>, String> {
    match lit.copied().flatten().and_then(|v| v.try_as_str()).flatten() {
        Some(p) => Pattern::new(p, flavor).map(Some),
        None => Ok(None),
    }
}

/// Compiles the pattern of each row, once when it is the same for all rows.
struct Patterns {
    flavor: Flavor,
    last: Option<(String, Pattern)>,
}

impl Patterns {
    fn new(flavor: Flavor) -> Self {
        Patterns { flavor, last: None }
    }

    fn get(&mut self, call: &Call, text: &str) -> Result<&Pattern> {
        if self.last.as_ref().is_none_or(|(t, _)| t != text) {
            let p = Pattern::new(text, self.flavor).map_err(|e| call.error(e))?;
            self.last = Some((text.to_string(), p));
        }
        match &self.last {
            Some((_, p)) => Ok(p),
            None => exec_err!("{}: pattern cache is empty", call.name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting and parsing

/// DATE_FORMAT(timestamp | string, format): java.time for a timestamp; a string is read as
/// `yyyy-MM-dd HH:mm:ss` and re-printed with SimpleDateFormat, as Flink does.
fn date_format(call: &Call) -> Result<ArrayRef> {
    let zone = call.zone()?;
    let formats = call.str(1)?;
    let mut out = StringBuilder::with_capacity(call.rows, call.rows * 20);
    let mut text = String::new();
    if matches!(call.arg_type(0), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null) {
        let input = call.str(0)?;
        let from = Pattern::new(TIMESTAMP_FORMAT, Flavor::Legacy).map_err(|e| call.error(e))?;
        let mut patterns = Patterns::new(Flavor::Legacy);
        for row in 0..call.rows {
            let (Some(s), Some(f)) = (input.get(row), formats.get(row)) else {
                out.append_null();
                continue;
            };
            let pattern = patterns.get(call, f)?;
            match from.parse(s) {
                Some(p) => {
                    text.clear();
                    let utc = zone.to_utc(&p.local);
                    pattern.format(&p.local, &zone, &utc, &mut text);
                    out.append_value(&text);
                }
                None => out.append_null(),
            }
        }
        return Ok(Arc::new(out.finish()));
    }
    let input = TimeArg::new(call, 0)?;
    let mut patterns = Patterns::new(Flavor::Modern);
    for row in 0..call.rows {
        let (Some(local), Some(utc), Some(f)) = (input.local(row), input.utc(row), formats.get(row)) else {
            out.append_null();
            continue;
        };
        let pattern = patterns.get(call, f)?;
        if pattern.has_zone() && !matches!(input.kind, Kind::Timestamp(_, true)) {
            return Err(call.error(format!(
                "pattern '{f}' prints a time zone, which a {} value does not have (Flink fails the same way)",
                if input.kind == Kind::Date { "DATE" } else { "TIMESTAMP" }
            )));
        }
        text.clear();
        pattern.format(&local, &zone, &utc, &mut text);
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// TO_TIMESTAMP(string[, format]) → TIMESTAMP(3), a wall-clock value; NULL when unreadable.
/// With a format that does not match, Flink still tries its default `yyyy-M-d H:m:s` reading.
fn to_timestamp(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let formats = if call.arg_count() > 1 { Some(call.str(1)?) } else { None };
    let mut patterns = Patterns::new(Flavor::Modern);
    let kind = Kind::Timestamp(TimeUnit::Millisecond, false);
    let mut values = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let Some(s) = input.get(row) else {
            values.push(None);
            continue;
        };
        let parsed = match &formats {
            None => parse_default_timestamp(s),
            Some(f) => match f.get(row) {
                None => None,
                Some(f) => patterns.get(call, f)?.parse(s).map(|p| p.local).or_else(|| parse_default_timestamp(s)),
            },
        };
        // Precision 3: the fraction is cut to milliseconds.
        values.push(parsed.and_then(|t| kind.encode(&t)));
    }
    temporal_array(values, &ts3())
}

/// TO_DATE(string[, format]) → DATE; NULL when unreadable.
fn to_date(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let formats = if call.arg_count() > 1 { Some(call.str(1)?) } else { None };
    let mut patterns = Patterns::new(Flavor::Legacy);
    let mut values = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let Some(s) = input.get(row) else {
            values.push(None);
            continue;
        };
        let date = match &formats {
            None => parse_default_date(s),
            Some(f) => match f.get(row) {
                None => None,
                Some(f) => patterns.get(call, f)?.parse(s).map(|p| p.local.date()),
            },
        };
        values.push(date.and_then(|d| Kind::Date.encode(&midnight(d))));
    }
    temporal_array(values, &DataType::Date32)
}

/// FROM_UNIXTIME(seconds[, format]) → STRING in the session time zone.
fn from_unixtime(call: &Call) -> Result<ArrayRef> {
    let zone = call.zone()?;
    let secs = call.int(0)?;
    let formats = call.str_or(1, TIMESTAMP_FORMAT)?;
    let mut patterns = Patterns::new(Flavor::Legacy);
    let mut out = StringBuilder::with_capacity(call.rows, call.rows * 20);
    let mut text = String::new();
    for row in 0..call.rows {
        let (Some(s), Some(f)) = (secs.get(row), formats.get(row)) else {
            out.append_null();
            continue;
        };
        let Some(utc) = DateTime::from_timestamp(s, 0).map(|t| t.naive_utc()) else {
            return Err(call.error(format!("{s} seconds is outside the supported range of dates")));
        };
        text.clear();
        patterns.get(call, f)?.format(&zone.to_local(&utc), &zone, &utc, &mut text);
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

fn epoch_now(call: &Call) -> Result<std::time::Duration> {
    SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| call.error(format!("system clock is before 1970: {e}")))
}

/// UNIX_TIMESTAMP() → now in seconds; UNIX_TIMESTAMP(string[, format]) → seconds of that time
/// read in the session time zone (or the zone the text names). Unreadable text gives
/// -9223372036854775808 (Long.MIN_VALUE), as Flink documents.
fn unix_timestamp(call: &Call) -> Result<ArrayRef> {
    if call.arg_count() == 0 {
        let secs = i64::try_from(epoch_now(call)?.as_secs()).unwrap_or(i64::MAX);
        let mut out = Int64Builder::with_capacity(1);
        out.append_value(secs);
        return Ok(Arc::new(out.finish()));
    }
    let zone = call.zone()?;
    let input = call.str(0)?;
    let formats = call.str_or(1, TIMESTAMP_FORMAT)?;
    let mut patterns = Patterns::new(Flavor::Legacy);
    let mut out = Int64Builder::with_capacity(call.rows);
    for row in 0..call.rows {
        let (Some(s), Some(f)) = (input.get(row), formats.get(row)) else {
            out.append_null();
            continue;
        };
        match patterns.get(call, f)?.parse(s) {
            Some(p) => out.append_value(p.to_utc(&zone).and_utc().timestamp()),
            None => out.append_value(i64::MIN),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// TO_TIMESTAMP_LTZ(epoch, 0 | 3): epoch seconds or milliseconds → TIMESTAMP_LTZ(3). Values
/// outside years 0000–9999 give NULL, as in Flink.
fn to_timestamp_ltz(call: &Call) -> Result<ArrayRef> {
    const MIN_MILLIS: f64 = -62_167_219_200_000.0;
    const MAX_MILLIS: f64 = 253_402_300_799_999.0;
    let epoch = call.float(0)?;
    let precision = call.int(1)?;
    let mut values = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let (Some(v), Some(p)) = (epoch.get(row), precision.get(row)) else {
            values.push(None);
            continue;
        };
        let millis = match p {
            0 => (v * 1000.0).trunc(),
            3 => v.trunc(),
            other => {
                return Err(call.error(format!(
                    "precision {other} is not supported; use 0 (epoch seconds) or 3 (epoch milliseconds)"
                )))
            }
        };
        values.push((MIN_MILLIS..=MAX_MILLIS).contains(&millis).then_some(millis as i64));
    }
    temporal_array(values, &ltz3())
}

/// CONVERT_TZ(string, from_zone, to_zone): a `yyyy-MM-dd HH:mm:ss` text moved between zones.
fn convert_tz(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let (from, to) = (call.str(1)?, call.str(2)?);
    let pattern = Pattern::new(TIMESTAMP_FORMAT, Flavor::Legacy).map_err(|e| call.error(e))?;
    let mut out = StringBuilder::with_capacity(call.rows, call.rows * 19);
    let mut text = String::new();
    for row in 0..call.rows {
        let (Some(s), Some(f), Some(t)) = (input.get(row), from.get(row), to.get(row)) else {
            out.append_null();
            continue;
        };
        let (from, to) = (Zone::parse(f).map_err(|e| call.error(e))?, Zone::parse(t).map_err(|e| call.error(e))?);
        match pattern.parse(s) {
            Some(p) => {
                let utc = p.to_utc(&from);
                text.clear();
                pattern.format(&to.to_local(&utc), &to, &utc, &mut text);
                out.append_value(&text);
            }
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

// ---------------------------------------------------------------------------------------------
// The clock

fn clock(call: &Call) -> Result<(NaiveDateTime, Zone)> {
    let now = epoch_now(call)?;
    let utc = DateTime::from_timestamp(now.as_secs() as i64, now.subsec_nanos())
        .map(|t| t.naive_utc())
        .ok_or_else(|| call.error("system clock is out of range"))?;
    Ok((utc, call.zone()?))
}

/// LOCALTIMESTAMP → TIMESTAMP(3): the wall clock in the session time zone.
fn localtimestamp(call: &Call) -> Result<ArrayRef> {
    let (utc, zone) = clock(call)?;
    temporal_array(vec![Kind::Timestamp(TimeUnit::Millisecond, false).encode(&zone.to_local(&utc))], &ts3())
}

/// LOCALTIME / CURRENT_TIME → TIME(0) in the session time zone.
fn localtime(call: &Call) -> Result<ArrayRef> {
    let (utc, zone) = clock(call)?;
    let t = DataType::Time32(TimeUnit::Second);
    temporal_array(vec![Kind::Time(TimeUnit::Second).encode(&zone.to_local(&utc))], &t)
}

/// CURRENT_DATE → DATE in the session time zone.
fn current_date(call: &Call) -> Result<ArrayRef> {
    let (utc, zone) = clock(call)?;
    temporal_array(vec![Kind::Date.encode(&zone.to_local(&utc))], &DataType::Date32)
}

/// CURRENT_ROW_TIMESTAMP() → TIMESTAMP_LTZ(3), the instant.
fn current_row_timestamp(call: &Call) -> Result<ArrayRef> {
    let (utc, _) = clock(call)?;
    temporal_array(vec![Kind::Timestamp(TimeUnit::Millisecond, true).encode(&utc)], &ltz3())
}

// ---------------------------------------------------------------------------------------------
// Units, fields, arithmetic

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Millennium,
    Century,
    Decade,
    Year,
    IsoYear,
    Quarter,
    Month,
    Week,
    Day,
    DayOfWeek,
    IsoDayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
    Epoch,
}

impl Unit {
    const EXTRACT: &'static [Unit] = &[
        Unit::Millennium,
        Unit::Century,
        Unit::Decade,
        Unit::Year,
        Unit::IsoYear,
        Unit::Quarter,
        Unit::Month,
        Unit::Week,
        Unit::Day,
        Unit::DayOfWeek,
        Unit::IsoDayOfWeek,
        Unit::DayOfYear,
        Unit::Hour,
        Unit::Minute,
        Unit::Second,
        Unit::Millisecond,
        Unit::Microsecond,
        Unit::Nanosecond,
        Unit::Epoch,
    ];
    const ADD: &'static [Unit] = &[
        Unit::Year,
        Unit::Quarter,
        Unit::Month,
        Unit::Week,
        Unit::Day,
        Unit::Hour,
        Unit::Minute,
        Unit::Second,
        Unit::Millisecond,
        Unit::Microsecond,
        Unit::Nanosecond,
    ];
    const DIFF: &'static [Unit] = Unit::ADD;
    const FLOOR: &'static [Unit] = &[
        Unit::Millennium,
        Unit::Century,
        Unit::Decade,
        Unit::Year,
        Unit::Quarter,
        Unit::Month,
        Unit::Week,
        Unit::Day,
        Unit::Hour,
        Unit::Minute,
        Unit::Second,
        Unit::Millisecond,
    ];

    fn name(self) -> &'static str {
        match self {
            Unit::Millennium => "MILLENNIUM",
            Unit::Century => "CENTURY",
            Unit::Decade => "DECADE",
            Unit::Year => "YEAR",
            Unit::IsoYear => "ISOYEAR",
            Unit::Quarter => "QUARTER",
            Unit::Month => "MONTH",
            Unit::Week => "WEEK",
            Unit::Day => "DAY",
            Unit::DayOfWeek => "DOW",
            Unit::IsoDayOfWeek => "ISODOW",
            Unit::DayOfYear => "DOY",
            Unit::Hour => "HOUR",
            Unit::Minute => "MINUTE",
            Unit::Second => "SECOND",
            Unit::Millisecond => "MILLISECOND",
            Unit::Microsecond => "MICROSECOND",
            Unit::Nanosecond => "NANOSECOND",
            Unit::Epoch => "EPOCH",
        }
    }

    /// Reads a unit name (`DAY`, `SQL_TSI_DAY`, `DAYS`…) among `allowed`.
    fn parse(text: &str, allowed: &[Unit]) -> std::result::Result<Unit, String> {
        let upper = text.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SQL_TSI_").unwrap_or(&upper);
        let bare = match bare {
            "FRAC_SECOND" => "MICROSECOND",
            "DAYOFWEEK" => "DOW",
            "DAYOFYEAR" => "DOY",
            other => other,
        };
        allowed.iter().find(|u| u.name() == bare || format!("{}S", u.name()) == bare).copied().ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|u| u.name()).collect();
            format!("unknown time unit '{text}'; expected one of {}", names.join(", "))
        })
    }

    fn time_of_day(self) -> bool {
        matches!(
            self,
            Unit::Hour | Unit::Minute | Unit::Second | Unit::Millisecond | Unit::Microsecond | Unit::Nanosecond
        )
    }

    /// Months per unit for the calendar units.
    fn months(self) -> Option<u32> {
        match self {
            Unit::Year => Some(12),
            Unit::Quarter => Some(3),
            Unit::Month => Some(1),
            _ => None,
        }
    }

    /// Length of the fixed-length units.
    fn duration(self, n: i64) -> Option<Duration> {
        match self {
            Unit::Week => Duration::try_weeks(n),
            Unit::Day => Duration::try_days(n),
            Unit::Hour => Duration::try_hours(n),
            Unit::Minute => Duration::try_minutes(n),
            Unit::Second => Duration::try_seconds(n),
            Unit::Millisecond => Duration::try_milliseconds(n),
            Unit::Microsecond => Some(Duration::microseconds(n)),
            Unit::Nanosecond => Some(Duration::nanoseconds(n)),
            _ => None,
        }
    }
}

fn unit_literal(lit: Option<&Option<&ScalarValue>>, allowed: &[Unit]) -> std::result::Result<Option<Unit>, String> {
    match lit.copied().flatten().and_then(|v| v.try_as_str()).flatten() {
        Some(u) => Unit::parse(u, allowed).map(Some),
        None => Ok(None),
    }
}

/// The unit of a call: its first argument, the same on every row (the SQL syntax makes it a
/// keyword).
fn unit_of(call: &Call, allowed: &[Unit]) -> Result<Unit> {
    match call.scalar(0).and_then(|v| v.try_as_str()).flatten() {
        Some(u) => Unit::parse(u, allowed).map_err(|e| call.error(e)),
        None => Err(call.error("the time unit must be a literal such as 'DAY'")),
    }
}

/// `EXTRACT(unit FROM t)`, Flink's field numbering: DOW 1 = Sunday … 7 = Saturday, ISODOW
/// 1 = Monday, WEEK the ISO week, MILLISECOND/MICROSECOND/NANOSECOND within the second, EPOCH
/// the seconds since 1970-01-01 00:00:00 of the wall-clock value.
fn field_of(unit: Unit, t: &NaiveDateTime) -> i64 {
    let year = t.year() as i64;
    match unit {
        Unit::Millennium => {
            if year > 0 {
                (year + 999) / 1000
            } else {
                (year - 999) / 1000
            }
        }
        Unit::Century => {
            if year > 0 {
                (year + 99) / 100
            } else {
                (year - 99) / 100
            }
        }
        Unit::Decade => year.div_euclid(10),
        Unit::Year => year,
        Unit::IsoYear => t.iso_week().year() as i64,
        Unit::Quarter => (t.month0() / 3 + 1) as i64,
        Unit::Month => t.month() as i64,
        Unit::Week => t.iso_week().week() as i64,
        Unit::Day => t.day() as i64,
        Unit::DayOfWeek => t.weekday().number_from_sunday() as i64,
        Unit::IsoDayOfWeek => t.weekday().number_from_monday() as i64,
        Unit::DayOfYear => t.ordinal() as i64,
        Unit::Hour => t.hour() as i64,
        Unit::Minute => t.minute() as i64,
        Unit::Second => t.second() as i64,
        Unit::Millisecond => (t.nanosecond() % 1_000_000_000 / 1_000_000) as i64,
        Unit::Microsecond => (t.nanosecond() % 1_000_000_000 / 1_000) as i64,
        Unit::Nanosecond => (t.nanosecond() % 1_000_000_000) as i64,
        Unit::Epoch => t.and_utc().timestamp(),
    }
}

fn extract_rows(call: &Call, unit: Unit, arg: usize) -> Result<ArrayRef> {
    let input = TimeArg::new(call, arg)?;
    match input.kind {
        Kind::Date if unit.time_of_day() => {
            return Err(call.error(format!("{} cannot be taken from a DATE", unit.name())));
        }
        Kind::Time(_) if !unit.time_of_day() => {
            return Err(call.error(format!("{} cannot be taken from a TIME", unit.name())));
        }
        _ => {}
    }
    let mut out = Int64Builder::with_capacity(call.rows);
    for row in 0..call.rows {
        out.append_option(input.local(row).map(|t| field_of(unit, &t)));
    }
    Ok(Arc::new(out.finish()))
}

fn extract(call: &Call) -> Result<ArrayRef> {
    let unit = unit_of(call, Unit::EXTRACT)?;
    extract_rows(call, unit, 1)
}

/// YEAR(d), MONTH(d), HOUR(ts)…: EXTRACT of one unit.
fn field(name: &'static str, unit: Unit) -> ScalarUDF {
    let eval: crate::func::Eval = match unit {
        Unit::Year => |c| extract_rows(c, Unit::Year, 0),
        Unit::Quarter => |c| extract_rows(c, Unit::Quarter, 0),
        Unit::Month => |c| extract_rows(c, Unit::Month, 0),
        Unit::Week => |c| extract_rows(c, Unit::Week, 0),
        Unit::DayOfYear => |c| extract_rows(c, Unit::DayOfYear, 0),
        Unit::Day => |c| extract_rows(c, Unit::Day, 0),
        Unit::DayOfWeek => |c| extract_rows(c, Unit::DayOfWeek, 0),
        Unit::Hour => |c| extract_rows(c, Unit::Hour, 0),
        Unit::Minute => |c| extract_rows(c, Unit::Minute, 0),
        _ => |c| extract_rows(c, Unit::Second, 0),
    };
    Func::new(name, sig::args(vec![temporal()]), Returns::Fixed(DataType::Int64), eval).udf()
}

/// TIMESTAMPADD on a DATE gives a DATE for whole days and longer, a TIMESTAMP otherwise.
fn timestampadd_type(types: &[DataType], lits: &[Option<&ScalarValue>]) -> Result<DataType> {
    let unit = match unit_literal(lits.first(), Unit::ADD) {
        Ok(u) => u,
        Err(e) => return plan_err!("TIMESTAMPADD: {e}"),
    };
    match types.get(2) {
        Some(DataType::Date32) if unit.is_some_and(Unit::time_of_day) => Ok(match unit {
            Some(Unit::Hour | Unit::Minute | Unit::Second) => DataType::Timestamp(TimeUnit::Second, None),
            Some(Unit::Millisecond) => ts3(),
            _ => DataType::Timestamp(TimeUnit::Microsecond, None),
        }),
        Some(t) if Kind::of(t).is_some() => Ok(t.clone()),
        Some(t) => plan_err!("TIMESTAMPADD: expected a DATE, TIME or TIMESTAMP, got {t}"),
        None => plan_err!("TIMESTAMPADD expects 3 arguments"),
    }
}

fn add(unit: Unit, n: i64, t: &NaiveDateTime) -> Option<NaiveDateTime> {
    match unit.months() {
        // Month arithmetic keeps the day, clamped to the end of a shorter month.
        Some(per) => {
            let months = n.checked_mul(per as i64)?;
            let m = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
            if months >= 0 {
                t.checked_add_months(m)
            } else {
                t.checked_sub_months(m)
            }
        }
        None => t.checked_add_signed(unit.duration(n)?),
    }
}

/// TIMESTAMPADD(unit, n, t): a TIMESTAMP_LTZ moves by calendar units in the session time zone.
fn timestampadd(call: &Call) -> Result<ArrayRef> {
    let unit = unit_of(call, Unit::ADD)?;
    let n = call.int(1)?;
    let input = TimeArg::new(call, 2)?;
    let out_kind = Kind::of(call.return_type).ok_or_else(|| call.error("unexpected result type"))?;
    let mut values = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let (Some(n), Some(t)) = (n.get(row), input.local(row)) else {
            values.push(None);
            continue;
        };
        let moved =
            add(unit, n, &t).ok_or_else(|| call.error(format!("{t} plus {n} {} is out of range", unit.name())))?;
        values.push(if out_kind == input.kind { input.store_local(&moved) } else { out_kind.encode(&moved) });
    }
    temporal_array(values, call.return_type)
}

/// TIMESTAMPDIFF(unit, t1, t2): whole units from t1 to t2, truncated toward zero; months count
/// only when the day and time of day have been reached (as Calcite does).
fn timestampdiff(call: &Call) -> Result<ArrayRef> {
    let unit = unit_of(call, Unit::DIFF)?;
    let (a, b) = (TimeArg::new(call, 1)?, TimeArg::new(call, 2)?);
    let mut out = Int32Builder::with_capacity(call.rows);
    for row in 0..call.rows {
        let (Some(t1), Some(t2)) = (a.local(row), b.local(row)) else {
            out.append_null();
            continue;
        };
        let diff = match unit.months() {
            Some(per) => {
                let mut months = (t2.year() as i64 - t1.year() as i64) * 12 + t2.month() as i64 - t1.month() as i64;
                let rest = |t: &NaiveDateTime| (t.day(), t.time());
                if months > 0 && rest(&t2) < rest(&t1) {
                    months -= 1;
                } else if months < 0 && rest(&t2) > rest(&t1) {
                    months += 1;
                }
                months / per as i64
            }
            None => {
                let d = t2.signed_duration_since(t1);
                match unit {
                    Unit::Week => d.num_weeks(),
                    Unit::Day => d.num_days(),
                    Unit::Hour => d.num_hours(),
                    Unit::Minute => d.num_minutes(),
                    Unit::Second => d.num_seconds(),
                    Unit::Millisecond => d.num_milliseconds(),
                    Unit::Microsecond => d.num_microseconds().ok_or_else(|| call.error("difference out of range"))?,
                    _ => d.num_nanoseconds().ok_or_else(|| call.error("difference out of range"))?,
                }
            }
        };
        let diff = i32::try_from(diff)
            .map_err(|_| call.error(format!("{diff} {}S does not fit the INT result", unit.name())))?;
        out.append_value(diff);
    }
    Ok(Arc::new(out.finish()))
}

/// The start of the `unit` containing `t` (weeks start on Sunday, as in Calcite).
fn floor_to(unit: Unit, t: &NaiveDateTime) -> Option<NaiveDateTime> {
    let d = t.date();
    let year = d.year();
    let start_of_year = |y: i32| NaiveDate::from_ymd_opt(y, 1, 1).map(midnight);
    Some(match unit {
        Unit::Millennium => start_of_year(year - (year - 1).rem_euclid(1000))?,
        Unit::Century => start_of_year(year - (year - 1).rem_euclid(100))?,
        Unit::Decade => start_of_year(year - year.rem_euclid(10))?,
        Unit::Year => start_of_year(year)?,
        Unit::Quarter => midnight(NaiveDate::from_ymd_opt(year, d.month0() / 3 * 3 + 1, 1)?),
        Unit::Month => midnight(NaiveDate::from_ymd_opt(year, d.month(), 1)?),
        Unit::Week => midnight(d - Duration::days(d.weekday().num_days_from_sunday() as i64)),
        Unit::Day => midnight(d),
        Unit::Hour => d.and_hms_opt(t.hour(), 0, 0)?,
        Unit::Minute => d.and_hms_opt(t.hour(), t.minute(), 0)?,
        Unit::Second => d.and_hms_opt(t.hour(), t.minute(), t.second())?,
        Unit::Millisecond => {
            d.and_hms_nano_opt(t.hour(), t.minute(), t.second(), t.nanosecond() / 1_000_000 * 1_000_000)?
        }
        _ => return None,
    })
}

fn next_of(unit: Unit, t: &NaiveDateTime) -> Option<NaiveDateTime> {
    match unit {
        Unit::Millennium => t.checked_add_months(Months::new(12_000)),
        Unit::Century => t.checked_add_months(Months::new(1_200)),
        Unit::Decade => t.checked_add_months(Months::new(120)),
        other => add(other, 1, t),
    }
}

fn round_time(call: &Call, up: bool) -> Result<ArrayRef> {
    let unit = unit_of(call, Unit::FLOOR)?;
    let input = TimeArg::new(call, 1)?;
    if let Kind::Time(_) = input.kind {
        if !unit.time_of_day() {
            return Err(call.error(format!("a TIME cannot be rounded to a {}", unit.name())));
        }
    }
    let mut values = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let Some(t) = input.local(row) else {
            values.push(None);
            continue;
        };
        let floor = floor_to(unit, &t).ok_or_else(|| call.error(format!("{t} is out of range")))?;
        let result = if up && floor != t {
            next_of(unit, &floor).ok_or_else(|| call.error(format!("{t} is out of range")))?
        } else {
            floor
        };
        values.push(input.store_local(&result));
    }
    temporal_array(values, call.return_type)
}

/// FLOOR(t TO unit).
fn time_floor(call: &Call) -> Result<ArrayRef> {
    round_time(call, false)
}

/// CEIL(t TO unit).
fn time_ceil(call: &Call) -> Result<ArrayRef> {
    round_time(call, true)
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        for udf in crate::all() {
            ctx.register_udf(udf);
        }
        ctx
    }

    /// A job is planned once and runs for months: the clock functions must stay calls in the
    /// optimized plan, not become the planning time's constant (DataFusion folds its own
    /// `current_date`, `current_time` and `now`).
    #[tokio::test]
    async fn clock_functions_are_not_folded_at_planning() -> datafusion::common::Result<()> {
        let builtin = SessionContext::new().sql("SELECT current_date()").await?.into_optimized_plan()?;
        assert!(builtin.display_indent().to_string().contains("Date32(\""), "{}", builtin.display_indent());
        let ctx = ctx();
        for (sql, call) in [
            ("SELECT LOCALTIMESTAMP", "localtimestamp()"),
            ("SELECT LOCALTIME", "localtime()"),
            ("SELECT CURRENT_TIME", "current_time()"),
            ("SELECT CURRENT_DATE", "current_date()"),
            ("SELECT CURRENT_ROW_TIMESTAMP()", "current_row_timestamp()"),
            ("SELECT PROCTIME()", "proctime()"),
            ("SELECT UNIX_TIMESTAMP()", "unix_timestamp()"),
        ] {
            let plan = ctx.sql(sql).await?.into_optimized_plan()?.display_indent().to_string();
            assert!(plan.contains(call), "{sql}: {plan}");
        }
        Ok(())
    }
}
