//! Time zones as Flink names them, and the session time zone.
//!
//! Flink evaluates FROM_UNIXTIME, UNIX_TIMESTAMP, LOCALTIMESTAMP, CURRENT_DATE… in the session
//! time zone `table.local-time-zone`. Here that is `datafusion.execution.time_zone` (which
//! `SET 'table.local-time-zone'` sets too); unset, it is UTC.
//!
//! Zone names follow Java's `TimeZone`/`ZoneId`: IANA names (`Asia/Shanghai`), `UTC`/`GMT`/`Z`,
//! offsets with or without a `GMT`/`UTC` prefix (`+08:00`, `GMT+8`, `UTC-05:30`, `+0800`) and
//! Java's three-letter short IDs (`PST`, `CTT`, `EST`…). Java silently reads an unknown name as
//! GMT; here it is an error, so a typo cannot shift every timestamp of a job.

use std::str::FromStr;

use chrono::{Duration, FixedOffset, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{OffsetName, Tz};
use datafusion::common::config::ConfigOptions;

/// Java's `ZoneId.SHORT_IDS` (the three-letter IDs `TimeZone.getTimeZone` also accepts).
const SHORT_IDS: &[(&str, &str)] = &[
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("EST", "-05:00"),
    ("HST", "-10:00"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("MST", "-07:00"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Zone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl Zone {
    pub(crate) const UTC: Zone = Zone::Named(Tz::UTC);

    /// Reads a zone name; the error says what is accepted.
    pub(crate) fn parse(name: &str) -> Result<Zone, String> {
        let n = name.trim();
        let upper = n.to_ascii_uppercase();
        if matches!(upper.as_str(), "UTC" | "GMT" | "Z" | "UT") {
            return Ok(Zone::UTC);
        }
        if let Some((_, target)) = SHORT_IDS.iter().find(|(id, _)| *id == upper) {
            return Zone::parse(target);
        }
        let offset_text = ["GMT", "UTC", "UT"].iter().find_map(|p| upper.strip_prefix(p)).unwrap_or(&upper);
        if offset_text.starts_with(['+', '-']) {
            if let Some(offset) = parse_offset(offset_text) {
                return Ok(Zone::Fixed(offset));
            }
        }
        if let Ok(tz) = Tz::from_str(n) {
            return Ok(Zone::Named(tz));
        }
        // IANA names are case-sensitive in chrono-tz but not in Java.
        if let Some(tz) = chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(n)) {
            return Ok(Zone::Named(*tz));
        }
        Err(format!(
            "unknown time zone '{name}'; use a region name like 'Asia/Shanghai', 'UTC', or an offset like '+08:00' / 'GMT+8'"
        ))
    }

    /// The session time zone: `datafusion.execution.time_zone`, UTC when unset.
    pub(crate) fn of_session(config: &ConfigOptions) -> Result<Zone, String> {
        match config.execution.time_zone.as_deref() {
            None | Some("") => Ok(Zone::UTC),
            Some(name) => Zone::parse(name).map_err(|e| format!("session time zone: {e}")),
        }
    }

    /// The offset from UTC in effect at the instant `utc`.
    pub(crate) fn offset_at(&self, utc: &NaiveDateTime) -> FixedOffset {
        match self {
            Zone::Fixed(o) => *o,
            Zone::Named(tz) => tz.offset_from_utc_datetime(utc).fix(),
        }
    }

    /// The wall-clock time in this zone at the instant `utc`.
    pub(crate) fn to_local(self, utc: &NaiveDateTime) -> NaiveDateTime {
        *utc + Duration::seconds(self.offset_at(utc).local_minus_utc() as i64)
    }

    /// The instant of the wall-clock time `local` in this zone, resolved as `java.time` does: in
    /// a repeated hour the earlier offset wins; a time skipped by a gap moves later by the gap.
    pub(crate) fn to_utc(self, local: &NaiveDateTime) -> NaiveDateTime {
        match self {
            Zone::Fixed(o) => *local - Duration::seconds(o.local_minus_utc() as i64),
            Zone::Named(tz) => match tz.offset_from_local_datetime(local) {
                chrono::LocalResult::Single(o) | chrono::LocalResult::Ambiguous(o, _) => {
                    *local - Duration::seconds(o.fix().local_minus_utc() as i64)
                }
                chrono::LocalResult::None => {
                    // In a gap: the offset before the transition.
                    let before = tz.offset_from_utc_datetime(&(*local - Duration::days(1))).fix();
                    *local - Duration::seconds(before.local_minus_utc() as i64)
                }
            },
        }
    }

    /// The zone's short name at `utc`, as Java's pattern letter `z` prints it.
    pub(crate) fn short_name(&self, utc: &NaiveDateTime) -> String {
        match self {
            Zone::Named(tz) => match tz.offset_from_utc_datetime(utc).abbreviation() {
                Some(a) if !a.starts_with(['+', '-']) => a.to_string(),
                _ => gmt_name(self.offset_at(utc)),
            },
            Zone::Fixed(o) => gmt_name(*o),
        }
    }
}

/// `GMT+08:00`, Java's display name of an offset zone.
fn gmt_name(offset: FixedOffset) -> String {
    let secs = offset.local_minus_utc();
    if secs == 0 {
        return "GMT".into();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.unsigned_abs() / 60;
    format!("GMT{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `+8`, `+08`, `+0800`, `+08:00`, `+08:00:00` (and `-`).
pub(crate) fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.is_empty() {
        return None;
    }
    let colons = rest.matches(':').count();
    let (h, m, s) = match (digits.len(), colons) {
        (1 | 2, 0) => (digits.parse::<i32>().ok()?, 0, 0),
        (3, 1) => (rest[..1].parse().ok()?, rest[2..].parse().ok()?, 0),
        (4, 0 | 1) => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 0),
        (6, 0 | 2) => (digits[..2].parse().ok()?, digits[2..4].parse().ok()?, digits[4..].parse().ok()?),
        _ => return None,
    };
    if h > 18 || m > 59 || s > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60 + s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).and_then(|d| d.and_hms_opt(h, mi, 0)).expect("valid date")
    }

    #[test]
    fn names_offsets_and_short_ids() {
        assert_eq!(Zone::parse("UTC"), Ok(Zone::UTC));
        assert_eq!(Zone::parse("gmt"), Ok(Zone::UTC));
        assert_eq!(Zone::parse("Asia/Tokyo"), Ok(Zone::Named(Tz::Asia__Tokyo)));
        assert_eq!(Zone::parse("asia/tokyo"), Ok(Zone::Named(Tz::Asia__Tokyo)));
        assert_eq!(Zone::parse("PST"), Ok(Zone::Named(Tz::America__Los_Angeles)));
        let plus8 = Zone::Fixed(FixedOffset::east_opt(8 * 3600).expect("offset"));
        for name in ["+08:00", "+8", "GMT+8", "GMT+08:00", "UTC+0800", "+08"] {
            assert_eq!(Zone::parse(name), Ok(plus8), "{name}");
        }
        assert_eq!(Zone::parse("EST"), Ok(Zone::Fixed(FixedOffset::west_opt(5 * 3600).expect("offset"))));
        assert!(Zone::parse("Mars/Olympus").unwrap_err().contains("unknown time zone 'Mars/Olympus'"));
        assert!(Zone::parse("+25:00").is_err());
    }

    #[test]
    fn local_and_utc_round_trip_and_dst_rules() {
        let berlin = Zone::parse("Europe/Berlin").expect("zone");
        assert_eq!(berlin.to_local(&at(1970, 1, 1, 0, 0)), at(1970, 1, 1, 1, 0));
        assert_eq!(berlin.to_utc(&at(1970, 1, 1, 8, 0)), at(1970, 1, 1, 7, 0));
        // 2021-03-28 02:30 does not exist in Berlin: java.time moves it one hour later.
        assert_eq!(berlin.to_utc(&at(2021, 3, 28, 2, 30)), at(2021, 3, 28, 1, 30));
        // 2021-10-31 02:30 happens twice: the earlier offset (+02:00) wins.
        assert_eq!(berlin.to_utc(&at(2021, 10, 31, 2, 30)), at(2021, 10, 31, 0, 30));
        assert_eq!(berlin.short_name(&at(2021, 7, 1, 0, 0)), "CEST");
        assert_eq!(Zone::parse("+05:30").expect("zone").short_name(&at(2021, 7, 1, 0, 0)), "GMT+05:30");
    }
}
