//! Java date-time patterns (`yyyy-MM-dd HH:mm:ss.SSS`), the one translator every Flink time
//! function here formats and parses with.
//!
//! Flink uses two Java classes whose patterns mostly agree, and the functions keep the one Flink
//! uses ([`Flavor`]):
//! - `java.time.format.DateTimeFormatter` (DATE_FORMAT of a timestamp, TO_TIMESTAMP): `S…` is the
//!   fraction of the second (`SSSSSS` = microseconds), `u` the year; parsing must consume the
//!   whole text and values must be valid dates.
//! - `java.text.SimpleDateFormat` (FROM_UNIXTIME, UNIX_TIMESTAMP, TO_DATE with a format,
//!   DATE_FORMAT of a string, CONVERT_TZ): `S` is a count of milliseconds, `u` the day number of
//!   the week; parsing stops where the pattern ends (trailing text is ignored) and out-of-range
//!   values roll over (`2020-02-30` is March 1st), as the lenient Java parser does.
//!
//! Letters: `G y u M L d D E Q a H k K h m s S z Z X x`, `'quoted text'` and `''` for a quote;
//! any other letter is refused with the list of supported ones. Month and day names are English.

use chrono::{Datelike, Duration, FixedOffset, Months, NaiveDate, NaiveDateTime, Timelike};

use crate::zone::{parse_offset, Zone};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `java.time.format.DateTimeFormatter`.
    Modern,
    /// `java.text.SimpleDateFormat`.
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Letter {
    Era,
    Year,
    Month,
    Day,
    DayOfYear,
    DayName,
    /// SimpleDateFormat's `u`: 1 = Monday … 7 = Sunday.
    DayNumber,
    Quarter,
    AmPm,
    /// `H` 0–23, `k` 1–24, `K` 0–11, `h` 1–12.
    Hour23,
    Hour24,
    Hour11,
    Hour12,
    Minute,
    Second,
    /// DateTimeFormatter's `S`: leading digits of the fraction of the second.
    Fraction,
    /// SimpleDateFormat's `S`: milliseconds as a number.
    Millis,
    ZoneName,
    /// `Z`: `+0800`.
    OffsetRfc,
    /// `X`: `Z` for zero, else `+08` / `+0800` / `+08:00`.
    OffsetIso,
    /// `x`: like `X` but `+00` for zero.
    OffsetIsoNoZ,
}

impl Letter {
    fn numeric(self) -> bool {
        !matches!(
            self,
            Letter::Era
                | Letter::DayName
                | Letter::AmPm
                | Letter::ZoneName
                | Letter::OffsetRfc
                | Letter::OffsetIso
                | Letter::OffsetIsoNoZ
        )
    }

    fn is_zone(self) -> bool {
        matches!(self, Letter::ZoneName | Letter::OffsetRfc | Letter::OffsetIso | Letter::OffsetIsoNoZ)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Field(Letter, usize),
}

const SUPPORTED: &str = "G y u M L d D E Q a H k K h m s S z Z X x";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    items: Vec<Item>,
    flavor: Flavor,
}

/// What parsing a text found: a wall-clock time and, when the text carried one, its offset/zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) local: NaiveDateTime,
    pub(crate) zone: Option<Zone>,
}

impl Parsed {
    /// The instant: the text's own zone if it had one, else `default`.
    pub(crate) fn to_utc(self, default: &Zone) -> NaiveDateTime {
        self.zone.unwrap_or(*default).to_utc(&self.local)
    }
}

impl Pattern {
    /// Compiles `pattern`; the error names the offending part.
    pub(crate) fn new(pattern: &str, flavor: Flavor) -> Result<Pattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut items: Vec<Item> = Vec::new();
        let push_literal = |items: &mut Vec<Item>, s: &str| match items.last_mut() {
            Some(Item::Literal(l)) => l.push_str(s),
            _ => items.push(Item::Literal(s.to_string())),
        };
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    push_literal(&mut items, "'");
                    i += 2;
                    continue;
                }
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("pattern '{pattern}' has an unterminated quote")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                push_literal(&mut items, &text);
            } else if c.is_ascii_alphabetic() {
                let mut count = 1;
                while chars.get(i + count) == Some(&c) {
                    count += 1;
                }
                let letter = letter(c, flavor).ok_or_else(|| {
                    format!("pattern letter '{c}' in '{pattern}' is not supported; supported letters: {SUPPORTED}")
                })?;
                if letter == Letter::Fraction && count > 9 {
                    return Err(format!("pattern '{pattern}' asks for more than 9 fraction digits"));
                }
                items.push(Item::Field(letter, count));
                i += count;
            } else if flavor == Flavor::Modern && matches!(c, '[' | ']' | '{' | '}' | '#') {
                return Err(format!(
                    "pattern '{pattern}': optional sections and reserved characters ([ ] {{ }} #) are not supported; quote them as '{c}' to mean the character"
                ));
            } else {
                push_literal(&mut items, &c.to_string());
                i += 1;
            }
        }
        Ok(Pattern { items, flavor })
    }

    /// Whether the pattern prints or reads a time zone.
    pub(crate) fn has_zone(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Field(l, _) if l.is_zone()))
    }

    /// Formats the wall-clock time `local`; `zone` and `utc` say which zone and instant it is
    /// (needed only by the zone letters).
    pub(crate) fn format(&self, local: &NaiveDateTime, zone: &Zone, utc: &NaiveDateTime, out: &mut String) {
        for item in &self.items {
            match item {
                Item::Literal(s) => out.push_str(s),
                Item::Field(letter, n) => self.format_field(*letter, *n, local, zone, utc, out),
            }
        }
    }

    fn format_field(
        &self,
        letter: Letter,
        n: usize,
        t: &NaiveDateTime,
        zone: &Zone,
        utc: &NaiveDateTime,
        out: &mut String,
    ) {
        let num = |out: &mut String, v: i64, width: usize| {
            if v < 0 {
                out.push('-');
            }
            let digits = v.unsigned_abs().to_string();
            for _ in digits.len()..width {
                out.push('0');
            }
            out.push_str(&digits);
        };
        match letter {
            Letter::Era => out.push_str(if t.year() > 0 { "AD" } else { "BC" }),
            Letter::Year => {
                let y = t.year() as i64;
                let year_of_era = if y > 0 { y } else { 1 - y };
                if n == 2 {
                    num(out, year_of_era.rem_euclid(100), 2)
                } else {
                    num(out, year_of_era, n)
                }
            }
            Letter::Month => match n {
                1 | 2 => num(out, t.month() as i64, n),
                3 => out.push_str(&MONTHS[t.month0() as usize][..3]),
                _ => out.push_str(MONTHS[t.month0() as usize]),
            },
            Letter::Day => num(out, t.day() as i64, n),
            Letter::DayOfYear => num(out, t.ordinal() as i64, n),
            Letter::DayName => {
                let name = DAYS[t.weekday().num_days_from_monday() as usize];
                out.push_str(if n <= 3 { &name[..3] } else { name })
            }
            Letter::DayNumber => num(out, t.weekday().number_from_monday() as i64, n),
            Letter::Quarter => {
                let q = t.month0() / 3 + 1;
                match n {
                    1 | 2 => num(out, q as i64, n),
                    3 => out.push_str(&format!("Q{q}")),
                    _ => out.push_str(["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"][q as usize - 1]),
                }
            }
            Letter::AmPm => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Letter::Hour23 => num(out, t.hour() as i64, n),
            Letter::Hour24 => num(out, if t.hour() == 0 { 24 } else { t.hour() as i64 }, n),
            Letter::Hour11 => num(out, (t.hour() % 12) as i64, n),
            Letter::Hour12 => num(out, if t.hour().is_multiple_of(12) { 12 } else { (t.hour() % 12) as i64 }, n),
            Letter::Minute => num(out, t.minute() as i64, n),
            Letter::Second => num(out, t.second() as i64, n),
            Letter::Fraction => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                out.push_str(&nanos[..n]);
            }
            Letter::Millis => num(out, (t.nanosecond() % 1_000_000_000 / 1_000_000) as i64, n),
            Letter::ZoneName => out.push_str(&zone.short_name(utc)),
            Letter::OffsetRfc => {
                let o = zone.offset_at(utc);
                match (self.flavor, n) {
                    (Flavor::Modern, 4) => {
                        if o.local_minus_utc() == 0 {
                            out.push_str("GMT")
                        } else {
                            out.push_str("GMT");
                            offset_text(out, o, true, false);
                        }
                    }
                    (Flavor::Modern, 5) => offset_iso(out, o, 3, true),
                    _ => offset_text(out, o, false, false),
                }
            }
            Letter::OffsetIso => offset_iso(out, zone.offset_at(utc), n, true),
            Letter::OffsetIsoNoZ => offset_iso(out, zone.offset_at(utc), n, false),
        }
    }

    /// Reads `text`; `None` when it does not match (Flink then returns NULL, or Long.MIN_VALUE
    /// for UNIX_TIMESTAMP).
    pub(crate) fn parse(&self, text: &str) -> Option<Parsed> {
        let mut f = Fields::default();
        let mut rest = text;
        for (i, item) in self.items.iter().enumerate() {
            match item {
                Item::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Item::Field(letter, n) => {
                    let next_numeric = matches!(self.items.get(i + 1), Some(Item::Field(l, _)) if l.numeric());
                    rest = self.parse_field(*letter, *n, next_numeric, rest, &mut f)?;
                }
            }
        }
        if self.flavor == Flavor::Modern && !rest.is_empty() {
            return None;
        }
        f.resolve(self.flavor == Flavor::Legacy)
    }

    fn parse_field<'t>(
        &self,
        letter: Letter,
        n: usize,
        next_numeric: bool,
        s: &'t str,
        f: &mut Fields,
    ) -> Option<&'t str> {
        if (letter.numeric() && letter != Letter::Month) || (letter == Letter::Month && n <= 2) {
            let (min, max) = match (self.flavor, letter) {
                _ if next_numeric => (n, n),
                (Flavor::Modern, Letter::Fraction) => (n, n),
                (Flavor::Modern, Letter::Year) if n == 2 => (2, 2),
                (Flavor::Modern, Letter::Year) if n >= 3 => (n, 19),
                (Flavor::Modern, _) if n >= 2 => (n, n),
                _ => (1, 19),
            };
            let digits = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
            if digits < min {
                return None;
            }
            let (d, rest) = s.split_at(digits);
            let v: i64 = d.parse().ok()?;
            match letter {
                Letter::Year => {
                    f.year = Some(if n == 2 && digits == 2 { two_digit_year(v, self.flavor) } else { v });
                }
                Letter::Month => f.month = Some(v),
                Letter::Day => f.day = Some(v),
                Letter::DayOfYear => f.day_of_year = Some(v),
                Letter::DayNumber | Letter::Quarter => {}
                Letter::Hour23 => f.hour = Some(v),
                Letter::Hour24 => f.hour = Some(if v == 24 { 0 } else { v }),
                Letter::Hour11 => f.hour12 = Some(v),
                Letter::Hour12 => f.hour12 = Some(if v == 12 { 0 } else { v }),
                Letter::Minute => f.minute = Some(v),
                Letter::Second => f.second = Some(v),
                Letter::Fraction => f.nanos = Some(v * 10i64.pow(9 - digits as u32)),
                Letter::Millis => f.nanos = Some(v.checked_mul(1_000_000)?),
                _ => return None,
            }
            return Some(rest);
        }
        match letter {
            Letter::Month => {
                let (i, rest) = name_prefix(s, &MONTHS)?;
                f.month = Some(i as i64 + 1);
                Some(rest)
            }
            Letter::DayName => name_prefix(s, &DAYS).map(|(_, rest)| rest),
            Letter::Era => {
                let upper = s.get(..2)?.to_ascii_uppercase();
                match upper.as_str() {
                    "AD" => Some(&s[2..]),
                    "BC" => {
                        f.bc = true;
                        Some(&s[2..])
                    }
                    _ => None,
                }
            }
            Letter::AmPm => {
                let upper = s.get(..2)?.to_ascii_uppercase();
                f.pm = Some(match upper.as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return None,
                });
                Some(&s[2..])
            }
            _ => {
                // Any zone letter reads any zone spelling: Z, +08, +0800, +08:00, GMT+8, UTC,
                // or a region name.
                let (zone, rest) = zone_prefix(s)?;
                f.zone = Some(zone);
                Some(rest)
            }
        }
    }
}

fn letter(c: char, flavor: Flavor) -> Option<Letter> {
    Some(match (c, flavor) {
        ('G', _) => Letter::Era,
        ('y', _) | ('u', Flavor::Modern) => Letter::Year,
        ('u', Flavor::Legacy) => Letter::DayNumber,
        ('M' | 'L', _) => Letter::Month,
        ('d', _) => Letter::Day,
        ('D', _) => Letter::DayOfYear,
        ('E', _) => Letter::DayName,
        ('Q' | 'q', Flavor::Modern) => Letter::Quarter,
        ('a', _) => Letter::AmPm,
        ('H', _) => Letter::Hour23,
        ('k', _) => Letter::Hour24,
        ('K', _) => Letter::Hour11,
        ('h', _) => Letter::Hour12,
        ('m', _) => Letter::Minute,
        ('s', _) => Letter::Second,
        ('S', Flavor::Modern) => Letter::Fraction,
        ('S', Flavor::Legacy) => Letter::Millis,
        ('z', _) => Letter::ZoneName,
        ('Z', _) => Letter::OffsetRfc,
        ('X', _) => Letter::OffsetIso,
        ('x', Flavor::Modern) => Letter::OffsetIsoNoZ,
        _ => return None,
    })
}

/// A two-digit year: java.time reads it in 2000–2099; SimpleDateFormat within 80 years before
/// and 20 years after today.
fn two_digit_year(v: i64, flavor: Flavor) -> i64 {
    match flavor {
        Flavor::Modern => 2000 + v,
        Flavor::Legacy => {
            let now = chrono::Utc::now().year() as i64;
            let start = now - 80;
            let candidate = start - start.rem_euclid(100) + v;
            if candidate < start {
                candidate + 100
            } else {
                candidate
            }
        }
    }
}

/// Matches a full or three-letter English name at the start of `s`, any case.
fn name_prefix<'t>(s: &'t str, names: &[&str]) -> Option<(usize, &'t str)> {
    for (i, name) in names.iter().enumerate() {
        for candidate in [*name, &name[..3]] {
            if s.get(..candidate.len()).is_some_and(|p| p.eq_ignore_ascii_case(candidate)) {
                return Some((i, &s[candidate.len()..]));
            }
        }
    }
    None
}

/// A zone at the start of `s`.
fn zone_prefix(s: &str) -> Option<(Zone, &str)> {
    if let Some(rest) = s.strip_prefix('Z') {
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Some((Zone::UTC, rest));
        }
    }
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | ':' | '/' | '_')))
        .map_or(s.len(), |(i, _)| i);
    let token = &s[..end];
    if token.starts_with(['+', '-']) {
        return parse_offset(token).map(|o| (Zone::Fixed(o), &s[end..]));
    }
    Zone::parse(token).ok().map(|z| (z, &s[end..]))
}

fn offset_text(out: &mut String, o: FixedOffset, colon: bool, z_for_zero: bool) {
    let secs = o.local_minus_utc();
    if secs == 0 && z_for_zero {
        out.push('Z');
        return;
    }
    let m = secs.unsigned_abs() / 60;
    out.push(if secs < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", m / 60));
    if colon {
        out.push(':');
    }
    out.push_str(&format!("{:02}", m % 60));
}

/// `X`/`x`: one letter prints `+08` (or `+0530`), two `+0800`, three or more `+08:00`.
fn offset_iso(out: &mut String, o: FixedOffset, n: usize, z_for_zero: bool) {
    let secs = o.local_minus_utc();
    if secs == 0 && z_for_zero {
        out.push('Z');
        return;
    }
    let m = secs.unsigned_abs() / 60;
    match n {
        1 if m.is_multiple_of(60) => {
            out.push(if secs < 0 { '-' } else { '+' });
            out.push_str(&format!("{:02}", m / 60));
        }
        1 | 2 => offset_text(out, o, false, false),
        _ => offset_text(out, o, true, false),
    }
}

/// The fields a text gave; what it did not give defaults to 1970-01-01 00:00:00, as in Flink.
#[derive(Default)]
struct Fields {
    year: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour: Option<i64>,
    hour12: Option<i64>,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    nanos: Option<i64>,
    zone: Option<Zone>,
}

impl Fields {
    fn resolve(&self, lenient: bool) -> Option<Parsed> {
        let mut year = self.year.unwrap_or(1970);
        if self.bc {
            year = 1 - year;
        }
        let year = i32::try_from(year).ok()?;
        let hour = match (self.hour, self.hour12) {
            (Some(h), _) => h,
            (None, Some(h)) => h + if self.pm == Some(true) { 12 } else { 0 },
            (None, None) => {
                if self.pm == Some(true) {
                    12
                } else {
                    0
                }
            }
        };
        let (minute, second, nanos) = (self.minute.unwrap_or(0), self.second.unwrap_or(0), self.nanos.unwrap_or(0));
        let local = if lenient {
            let mut date = NaiveDate::from_ymd_opt(year, 1, 1)?;
            if let (Some(doy), None, None) = (self.day_of_year, self.month, self.day) {
                date = date.checked_add_signed(Duration::days(doy - 1))?;
            } else {
                let months = self.month.unwrap_or(1) - 1;
                date = if months >= 0 {
                    date.checked_add_months(Months::new(u32::try_from(months).ok()?))?
                } else {
                    date.checked_sub_months(Months::new(u32::try_from(-months).ok()?))?
                };
                date = date.checked_add_signed(Duration::days(self.day.unwrap_or(1) - 1))?;
            }
            let time = Duration::try_hours(hour)?
                .checked_add(&Duration::try_minutes(minute)?)?
                .checked_add(&Duration::try_seconds(second)?)?
                .checked_add(&Duration::nanoseconds(nanos))?;
            date.and_hms_opt(0, 0, 0)?.checked_add_signed(time)?
        } else {
            let date = match (self.day_of_year, self.month, self.day) {
                (Some(doy), None, None) => NaiveDate::from_yo_opt(year, u32::try_from(doy).ok()?)?,
                _ => NaiveDate::from_ymd_opt(
                    year,
                    u32::try_from(self.month.unwrap_or(1)).ok()?,
                    u32::try_from(self.day.unwrap_or(1)).ok()?,
                )?,
            };
            date.and_hms_nano_opt(
                u32::try_from(hour).ok()?,
                u32::try_from(minute).ok()?,
                u32::try_from(second).ok()?,
                u32::try_from(nanos).ok()?,
            )?
        };
        Some(Parsed { local, zone: self.zone })
    }
}

/// Flink's default timestamp text, `yyyy-M-d[ H:m:s[.fraction]]` with one- or two-digit fields
/// and up to nine fraction digits (what `TO_TIMESTAMP(string)` reads, and what Flink falls back
/// to when a format does not match). Surrounding blanks are ignored.
pub(crate) fn parse_default_timestamp(text: &str) -> Option<NaiveDateTime> {
    let s = text.trim();
    let (date, time) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t.trim_start())),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let year = parts.next()?;
    if year.len() < 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let small = |p: Option<&str>| -> Option<u32> {
        let p = p?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let date = NaiveDate::from_ymd_opt(year.parse().ok()?, small(parts.next())?, small(parts.next())?)?;
    let Some(time) = time else {
        return date.and_hms_opt(0, 0, 0);
    };
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut hms = hms.splitn(3, ':');
    let (h, m, sec) = (small(hms.next())?, small(hms.next())?, small(hms.next())?);
    let nanos = match fraction {
        None => 0,
        Some(f) if f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            if f.is_empty() {
                0
            } else {
                f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
            }
        }
        Some(_) => return None,
    };
    date.and_hms_nano_opt(h, m, sec, nanos)
}

/// Flink's `parseDate(string)`: `y[-m[-d]]` before the first blank, each part an integer.
pub(crate) fn parse_default_date(text: &str) -> Option<NaiveDate> {
    let s = text.split(' ').next().unwrap_or(text);
    let mut parts = s.splitn(3, '-').map(|p| p.trim().parse::<i32>().ok());
    let year = parts.next()??;
    let month = parts.next().unwrap_or(Some(1))?;
    let day = parts.next().unwrap_or(Some(1))?;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).and_then(|d| d.and_hms_milli_opt(h, mi, s, ms)).expect("valid")
    }

    fn fmt(p: &str, flavor: Flavor, t: NaiveDateTime, zone: &str) -> String {
        let zone = Zone::parse(zone).expect("zone");
        let mut out = String::new();
        let utc = zone.to_utc(&t);
        Pattern::new(p, flavor).expect("pattern").format(&t, &zone, &utc, &mut out);
        out
    }

    #[test]
    fn formats_the_common_patterns() {
        let t = at(2024, 3, 5, 7, 8, 9, 45);
        assert_eq!(fmt("yyyy-MM-dd HH:mm:ss", Flavor::Modern, t, "UTC"), "2024-03-05 07:08:09");
        assert_eq!(fmt("yyyy-MM-dd HH:mm:ss.SSS", Flavor::Modern, t, "UTC"), "2024-03-05 07:08:09.045");
        assert_eq!(fmt("yyyyMMdd", Flavor::Modern, t, "UTC"), "20240305");
        assert_eq!(fmt("yy/M/d h:mm a", Flavor::Modern, t, "UTC"), "24/3/5 7:08 AM");
        assert_eq!(fmt("EEE, d MMM yyyy", Flavor::Legacy, t, "UTC"), "Tue, 5 Mar 2024");
        assert_eq!(fmt("EEEE MMMM", Flavor::Legacy, t, "UTC"), "Tuesday March");
        assert_eq!(fmt("'week' u, 'day' D, 'o''clock'", Flavor::Legacy, t, "UTC"), "week 2, day 65, o'clock");
        assert_eq!(fmt("QQQ yyyy", Flavor::Modern, t, "UTC"), "Q1 2024");
        assert_eq!(fmt("SSSSSS", Flavor::Modern, t, "UTC"), "045000");
        assert_eq!(fmt("SSSSSS", Flavor::Legacy, t, "UTC"), "000045");
        assert_eq!(fmt("Z X XXX z", Flavor::Legacy, t, "Asia/Tokyo"), "+0900 +09 +09:00 JST");
        assert_eq!(fmt("X x", Flavor::Modern, t, "UTC"), "Z +00");
        assert_eq!(fmt("kk KK", Flavor::Modern, at(2024, 1, 1, 0, 0, 0, 0), "UTC"), "24 00");
    }

    #[test]
    fn refuses_unsupported_letters_and_sections() {
        let e = Pattern::new("yyyy-ww", Flavor::Modern).unwrap_err();
        assert!(e.contains("pattern letter 'w'") && e.contains("supported letters"), "{e}");
        assert!(Pattern::new("yyyy[-MM]", Flavor::Modern).unwrap_err().contains("optional sections"));
        assert!(Pattern::new("'abc", Flavor::Legacy).unwrap_err().contains("unterminated quote"));
        assert!(Pattern::new("Q", Flavor::Legacy).is_err());
    }

    #[test]
    fn parses_like_java() {
        let p = |pat: &str, flavor, text: &str| Pattern::new(pat, flavor).expect("pattern").parse(text);
        let local = |pat: &str, flavor, text: &str| p(pat, flavor, text).map(|r| r.local);
        assert_eq!(
            local("yyyy-MM-dd HH:mm:ss", Flavor::Modern, "2024-03-05 07:08:09"),
            Some(at(2024, 3, 5, 7, 8, 9, 0))
        );
        assert_eq!(local("yyyyMMddHHmmss", Flavor::Modern, "20240305070809"), Some(at(2024, 3, 5, 7, 8, 9, 0)));
        assert_eq!(local("dd/MM/yyyy", Flavor::Modern, "05/03/2024"), Some(at(2024, 3, 5, 0, 0, 0, 0)));
        // java.time wants the exact widths, the whole text, and a real date.
        assert_eq!(local("yyyy-MM-dd", Flavor::Modern, "2024-3-5"), None);
        assert_eq!(local("yyyy-MM-dd", Flavor::Modern, "2024-03-05 x"), None);
        assert_eq!(local("yyyy-MM-dd", Flavor::Modern, "2024-02-30"), None);
        // SimpleDateFormat: any width, trailing text ignored, dates roll over.
        assert_eq!(local("yyyy-MM-dd", Flavor::Legacy, "2024-3-5 x"), Some(at(2024, 3, 5, 0, 0, 0, 0)));
        assert_eq!(local("yyyy-MM-dd", Flavor::Legacy, "2024-02-30"), Some(at(2024, 3, 1, 0, 0, 0, 0)));
        assert_eq!(
            local("yyyy-MM-dd HH:mm:ss.SSS", Flavor::Legacy, "1970-01-01 08:00:01.001"),
            Some(at(1970, 1, 1, 8, 0, 1, 1))
        );
        assert_eq!(
            local("dd MMM yyyy hh:mm a", Flavor::Legacy, "05 mar 2024 07:08 pm"),
            Some(at(2024, 3, 5, 19, 8, 0, 0))
        );
        assert_eq!(local("HH:mm", Flavor::Legacy, "07:08"), Some(at(1970, 1, 1, 7, 8, 0, 0)));
        let with_zone =
            p("yyyy-MM-dd HH:mm:ss.SSS X", Flavor::Legacy, "1970-01-01 08:00:01.001 +0800").expect("parsed");
        assert_eq!(with_zone.to_utc(&Zone::UTC), at(1970, 1, 1, 0, 0, 1, 1));
        assert_eq!(p("yyyy-MM-dd HH:mm:ss.SSS X", Flavor::Legacy, "1970-01-01 08:00:01.001"), None);
        assert_eq!(
            p("yyyy-MM-dd'T'HH:mm:ssXXX", Flavor::Modern, "2024-03-05T07:08:09Z").map(|r| r.zone),
            Some(Some(Zone::UTC))
        );
    }

    #[test]
    fn default_texts() {
        assert_eq!(parse_default_timestamp("1999-9-10 05:20:10"), Some(at(1999, 9, 10, 5, 20, 10, 0)));
        assert_eq!(parse_default_timestamp(" 2024-03-05 "), Some(at(2024, 3, 5, 0, 0, 0, 0)));
        assert_eq!(parse_default_timestamp("2024-03-05 07:08:09.123456789").map(|t| t.nanosecond()), Some(123_456_789));
        assert_eq!(parse_default_timestamp("2024-03-05T07:08:09"), None);
        assert_eq!(parse_default_timestamp("2024-13-05"), None);
        assert_eq!(parse_default_date("2017-12-12 09:30:00.0"), NaiveDate::from_ymd_opt(2017, 12, 12));
        assert_eq!(parse_default_date("2017"), NaiveDate::from_ymd_opt(2017, 1, 1));
        assert_eq!(parse_default_date("2017-02-30"), None);
    }
}
