//! Text of one value → the value a column holds: integers, floats, exact decimals, dates, times
//! and timestamps. Pure functions; each error says what the text is not, for the caller to put in
//! context.

use datafusion::arrow::datatypes::{i256, TimeUnit};
use smallvec::SmallVec;

use crate::connectors::calendar::{days_from_civil, is_valid_date};

/// `true`/`false` in any case, or `1`/`0` (MySQL's booleans as Canal and Debezium send them).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Some(false)
    } else {
        None
    }
}

/// An integer: plain digits, or a number with a fraction or exponent whose value is integral
/// (`1.0`, `1e3`). A fraction is never dropped.
pub(crate) fn parse_integer(text: &str) -> Result<i128, String> {
    let t = text.trim();
    if let Ok(v) = t.parse::<i128>() {
        return Ok(v);
    }
    let d = DecimalText::parse(t).ok_or_else(|| "not an integer".to_string())?;
    let (v, exact) = d.unscaled(39, 0).map_err(|_| "out of range".to_string())?;
    if !exact {
        return Err("not a whole number".into());
    }
    v.to_i128().ok_or_else(|| "out of range".into())
}

/// A double: a decimal number, or `NaN` / `Infinity` / `-Infinity`.
pub(crate) fn parse_f64(text: &str) -> Option<f64> {
    let t = text.trim();
    match t {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) => t.parse().ok(),
        _ => None,
    }
}

pub(crate) fn parse_f32(text: &str) -> Option<f32> {
    let t = text.trim();
    match t {
        "NaN" => Some(f32::NAN),
        "Infinity" | "+Infinity" => Some(f32::INFINITY),
        "-Infinity" => Some(f32::NEG_INFINITY),
        _ if t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) => t.parse().ok(),
        _ => None,
    }
}

/// A decimal number as Java's `BigDecimal(String)` reads it: its significant digits and the
/// power of ten they are scaled by (value = digits × 10^exp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecimalText {
    negative: bool,
    /// Digit values without leading zeros (empty for zero).
    digits: SmallVec<[u8; 40]>,
    exp: i64,
}

impl DecimalText {
    /// `[+-]digits[.digits][(e|E)[+-]digits]`, with at least one digit; surrounding blanks allowed.
    pub(crate) fn parse(text: &str) -> Option<DecimalText> {
        let b = text.trim().as_bytes();
        let mut i = 0;
        let negative = match b.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut digits: SmallVec<[u8; 40]> = SmallVec::new();
        let mut seen_digit = false;
        let mut frac_len: i64 = 0;
        let mut in_frac = false;
        while i < b.len() {
            match b[i] {
                c @ b'0'..=b'9' => {
                    seen_digit = true;
                    if !(digits.is_empty() && c == b'0') {
                        digits.push(c - b'0');
                    }
                    if in_frac {
                        frac_len += 1;
                    }
                }
                b'.' if !in_frac => in_frac = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        let mut exp: i64 = 0;
        if i < b.len() {
            // b[i] is the exponent marker.
            let e = std::str::from_utf8(&b[i + 1..]).ok()?;
            let (negative_exp, e_digits) = match e.as_bytes().first() {
                Some(b'-') => (true, &e[1..]),
                Some(b'+') => (false, &e[1..]),
                _ => (false, e),
            };
            if e_digits.is_empty() || !e_digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Exponents beyond any DECIMAL saturate: the value is then zero or too large.
            let magnitude = e_digits.parse::<i64>().unwrap_or(i64::MAX / 4).min(i64::MAX / 4);
            exp = if negative_exp { -magnitude } else { magnitude };
        }
        let exp = exp.saturating_sub(frac_len);
        Some(DecimalText { negative, digits, exp })
    }

    /// From an unscaled integer and its scale (Kafka Connect's Decimal).
    pub(crate) fn from_unscaled(unscaled: i256, scale: i64) -> DecimalText {
        let text = unscaled.to_string();
        let (negative, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text.as_str()),
        };
        let digits = body.bytes().skip_while(|c| *c == b'0').map(|c| c - b'0').collect();
        DecimalText { negative, digits, exp: -scale }
    }

    /// The unscaled value at `scale`, rounded HALF_UP as Flink's `DecimalData.fromBigDecimal`
    /// rounds, and whether no digit was dropped. Fails if it needs more than `precision` digits.
    pub(crate) fn unscaled(&self, precision: u8, scale: i8) -> Result<(i256, bool), String> {
        let k = self.exp.saturating_add(scale as i64);
        let n = self.digits.len() as i64;
        if self.digits.is_empty() {
            return Ok((i256::ZERO, true));
        }
        let (kept, zeros, round_up, exact): (&[u8], i64, bool, bool) = if k >= 0 {
            (&self.digits, k, false, true)
        } else {
            let keep = n + k;
            if keep < 0 {
                (&[], 0, false, false)
            } else {
                let keep = keep as usize;
                let dropped = &self.digits[keep..];
                (&self.digits[..keep], 0, dropped[0] >= 5, dropped.iter().all(|d| *d == 0))
            }
        };
        let too_large = || format!("needs more than the {precision} digits of DECIMAL({precision}, {scale})");
        if kept.len() as i64 + zeros > precision as i64 {
            return Err(too_large());
        }
        let ten = i256::from_i128(10);
        let mut v = i256::ZERO;
        for d in kept {
            v = v.wrapping_mul(ten).wrapping_add(i256::from_i128(*d as i128));
        }
        for _ in 0..zeros {
            v = v.wrapping_mul(ten);
        }
        if round_up {
            v = v.wrapping_add(i256::ONE);
        }
        if precision < 77 && v >= ten.wrapping_pow(precision as u32) {
            return Err(too_large());
        }
        Ok((if self.negative { v.wrapping_neg() } else { v }, exact))
    }
}

/// A two's-complement big-endian integer (Kafka Connect's Decimal bytes).
pub(crate) fn unscaled_from_be_bytes(bytes: &[u8]) -> Option<i256> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xFF } else { 0x00 };
    // Leading sign bytes beyond 32 carry no value.
    let mut b = bytes;
    while b.len() > 32 && b[0] == fill {
        b = &b[1..];
    }
    if b.len() > 32 {
        return None;
    }
    let mut full = [fill; 32];
    full[32 - b.len()..].copy_from_slice(b);
    Some(i256::from_be_bytes(full))
}

fn units_per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

fn two_digits(b: &[u8]) -> Option<i64> {
    match b {
        [h @ b'0'..=b'9', l @ b'0'..=b'9'] => Some(((h - b'0') * 10 + (l - b'0')) as i64),
        _ => None,
    }
}

/// `yyyy-MM-dd` (a year beyond 9999 with a sign), optionally followed by `Z` (Debezium's
/// IsoDate) → days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Result<i32, String> {
    let t = text.trim();
    let t = t.strip_suffix(['Z', 'z']).unwrap_or(t);
    let days = date_days(t.as_bytes()).ok_or_else(|| "not a date (expected yyyy-MM-dd)".to_string())?;
    i32::try_from(days).map_err(|_| "outside the DATE range".into())
}

fn date_days(b: &[u8]) -> Option<i64> {
    let (sign, body) = match b.first() {
        Some(b'-') => (-1, &b[1..]),
        Some(b'+') => (1, &b[1..]),
        _ => (1, b),
    };
    let dash = body.iter().position(|c| *c == b'-')?;
    let (y, rest) = body.split_at(dash);
    if y.len() < 4 || y.len() > 9 || !y.iter().all(u8::is_ascii_digit) || rest.len() != 6 || rest[3] != b'-' {
        return None;
    }
    let year = sign * std::str::from_utf8(y).ok()?.parse::<i64>().ok()?;
    let month = two_digits(&rest[1..3])? as u32;
    let day = two_digits(&rest[4..6])? as u32;
    if !is_valid_date(year, month, day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Splits a zone suffix (`Z`, `+HH`, `+HH:MM`, `+HHMM`, `+HH:MM:SS`) off a time of day; returns
/// the time text and the offset east of UTC in seconds.
fn split_zone(t: &[u8]) -> Option<(&[u8], i64)> {
    if let Some(rest) = t.strip_suffix(b"Z").or_else(|| t.strip_suffix(b"z")) {
        return Some((rest, 0));
    }
    let Some(at) = t.iter().position(|c| *c == b'+' || *c == b'-') else {
        return Some((t, 0));
    };
    let sign = if t[at] == b'-' { -1 } else { 1 };
    let zone: Vec<u8> = t[at + 1..].iter().copied().filter(|c| *c != b':').collect();
    let (h, m, s) = match zone.len() {
        2 => (two_digits(&zone[0..2])?, 0, 0),
        4 => (two_digits(&zone[0..2])?, two_digits(&zone[2..4])?, 0),
        6 => (two_digits(&zone[0..2])?, two_digits(&zone[2..4])?, two_digits(&zone[4..6])?),
        _ => return None,
    };
    if h > 18 || m > 59 || s > 59 {
        return None;
    }
    Some((&t[..at], sign * (h * 3600 + m * 60 + s)))
}

/// `HH:mm[:ss[.fffffffff]]` → units of `unit` since midnight; fraction digits beyond the unit are
/// dropped.
fn time_units(b: &[u8], unit: TimeUnit) -> Option<i64> {
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let h = two_digits(&b[0..2])?;
    let m = two_digits(&b[3..5])?;
    let (s, frac) = match b.get(5) {
        None => (0, &[][..]),
        Some(b':') => {
            let s = two_digits(b.get(6..8)?)?;
            match b.get(8) {
                None => (s, &[][..]),
                Some(b'.') => (s, &b[9..]),
                _ => return None,
            }
        }
        _ => return None,
    };
    if h > 23 || m > 59 || s > 59 || (b.get(8) == Some(&b'.') && frac.is_empty()) {
        return None;
    }
    if frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let per_second = units_per_second(unit);
    let digits = per_second.ilog10() as usize;
    let mut fraction = 0i64;
    for i in 0..digits {
        fraction = fraction * 10 + frac.get(i).map_or(0, |d| (d - b'0') as i64);
    }
    Some((h * 3600 + m * 60 + s) * per_second + fraction)
}

/// A time of day, optionally with a zone (Debezium's ZonedTime, IsoTime), which is applied:
/// the result is the UTC time of day.
pub(crate) fn parse_time(text: &str, unit: TimeUnit) -> Result<i64, String> {
    let bad = || "not a time of day (expected HH:mm:ss[.fffffffff])".to_string();
    let (time, offset) = split_zone(text.trim().as_bytes()).ok_or_else(bad)?;
    let v = time_units(time, unit).ok_or_else(bad)?;
    let day = 86_400 * units_per_second(unit);
    Ok((v - offset * units_per_second(unit)).rem_euclid(day))
}

/// A timestamp `yyyy-MM-dd[ T]HH:mm[:ss[.f…]]` with an optional zone (`Z`, `+02:00`), which is
/// applied: the result counts `unit`s since 1970-01-01 00:00 UTC (for a TIMESTAMP without a
/// zone: of the wall-clock time, normalised to UTC when a zone is given).
pub(crate) fn parse_timestamp(text: &str, unit: TimeUnit) -> Result<i64, String> {
    let bad = || "not a timestamp (expected yyyy-MM-dd HH:mm:ss[.fffffffff], 'T' or ' ' between)".to_string();
    let b = text.trim().as_bytes();
    let sep = b.iter().enumerate().position(|(i, c)| i >= 8 && matches!(c, b' ' | b'T' | b't')).ok_or_else(bad)?;
    let days = date_days(&b[..sep]).ok_or_else(bad)?;
    let (time, offset) = split_zone(&b[sep + 1..]).ok_or_else(bad)?;
    let in_day = time_units(time, unit).ok_or_else(bad)?;
    let per_second = units_per_second(unit);
    days.checked_mul(86_400 * per_second)
        .and_then(|v| v.checked_add(in_day))
        .and_then(|v| v.checked_sub(offset * per_second))
        .ok_or_else(|| "outside the range of the column's precision".to_string())
}

/// Converts a count of `from` units to `to` units, flooring when `to` is coarser.
pub(crate) fn convert_units(value: i64, from: TimeUnit, to: TimeUnit) -> Option<i64> {
    let (f, t) = (units_per_second(from), units_per_second(to));
    if f == t {
        Some(value)
    } else if f < t {
        value.checked_mul(t / f)
    } else {
        Some(value.div_euclid(f / t))
    }
}

pub(crate) fn unit_per_second(unit: TimeUnit) -> i64 {
    units_per_second(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str, p: u8, s: i8) -> Result<String, String> {
        let d = DecimalText::parse(text).ok_or("unparsable")?;
        d.unscaled(p, s).map(|(v, _)| v.to_string())
    }

    #[test]
    fn decimals_are_exact_and_round_half_up() {
        assert_eq!(dec("12345678901234567890.123456789", 38, 9).unwrap(), "12345678901234567890123456789");
        assert_eq!(dec("1.005", 10, 2).unwrap(), "101");
        assert_eq!(dec("-1.005", 10, 2).unwrap(), "-101");
        assert_eq!(dec("1.004", 10, 2).unwrap(), "100");
        assert_eq!(dec("2.7E-8", 10, 9).unwrap(), "27");
        assert_eq!(dec("1e3", 10, 2).unwrap(), "100000");
        assert_eq!(dec("0.0000", 5, 2).unwrap(), "0");
        assert_eq!(dec("0.5", 5, 0).unwrap(), "1");
        assert_eq!(dec("0.05", 5, 0).unwrap(), "0");
        assert_eq!(dec("99.995", 4, 2).unwrap_err(), "needs more than the 4 digits of DECIMAL(4, 2)");
        assert!(dec("123456", 5, 0).is_err());
        assert_eq!(dec("+007.50", 3, 1).unwrap(), "75");
        assert_eq!(dec("1e-400", 10, 2).unwrap(), "0");
        assert!(dec("1e400", 38, 2).is_err());
        let max76 = "9".repeat(76);
        assert_eq!(dec(&max76, 76, 0).unwrap(), max76);
        for bad in ["", ".", "-", "1e", "1.2.3", "abc", "1e+", "0x10", "1,5"] {
            assert!(DecimalText::parse(bad).is_none(), "{bad}");
        }
        assert!(DecimalText::parse(" 1.5 ").is_some());
        assert!(DecimalText::parse(".5").is_some() && DecimalText::parse("5.").is_some());
    }

    #[test]
    fn integers_accept_only_whole_values() {
        assert_eq!(parse_integer(" 101 ").unwrap(), 101);
        assert_eq!(parse_integer("-9223372036854775808").unwrap(), i64::MIN as i128);
        assert_eq!(parse_integer("1.0").unwrap(), 1);
        assert_eq!(parse_integer("1e3").unwrap(), 1000);
        assert_eq!(parse_integer("1.5").unwrap_err(), "not a whole number");
        assert!(parse_integer("x").is_err());
        assert_eq!(parse_integer("18446744073709551615").unwrap(), u64::MAX as i128);
    }

    #[test]
    fn connect_decimal_bytes_are_twos_complement() {
        assert_eq!(unscaled_from_be_bytes(&[0x30, 0x39]).unwrap(), i256::from_i128(12345));
        assert_eq!(unscaled_from_be_bytes(&[0xCF, 0xC7]).unwrap(), i256::from_i128(-12345));
        assert_eq!(unscaled_from_be_bytes(&[0x00, 0x80]).unwrap(), i256::from_i128(128));
        assert_eq!(unscaled_from_be_bytes(&[]).unwrap(), i256::ZERO);
        let mut long = vec![0xFF; 40];
        long[39] = 0xFE;
        assert_eq!(unscaled_from_be_bytes(&long).unwrap(), i256::from_i128(-2));
        assert!(unscaled_from_be_bytes(&[0x01; 33]).is_none());
        let d = DecimalText::from_unscaled(i256::from_i128(-12345), 2);
        assert_eq!(d.unscaled(10, 3).unwrap().0, i256::from_i128(-123450));
    }

    #[test]
    fn dates_times_and_timestamps() {
        assert_eq!(parse_date("1970-01-02").unwrap(), 1);
        assert_eq!(parse_date("2017-09-15Z").unwrap(), 17424);
        assert!(parse_date("2021-02-29").is_err());
        assert!(parse_date("2021-2-3").is_err());
        assert_eq!(parse_time("12:34:56.789", TimeUnit::Millisecond).unwrap(), 45_296_789);
        assert_eq!(parse_time("12:34", TimeUnit::Second).unwrap(), 45_240);
        assert_eq!(parse_time("04:05:11.789Z", TimeUnit::Microsecond).unwrap(), 14_711_789_000);
        assert_eq!(parse_time("01:00:00+02:00", TimeUnit::Second).unwrap(), 23 * 3600);
        assert_eq!(parse_time("12:00:00.123456789", TimeUnit::Millisecond).unwrap(), 43_200_123);
        assert!(parse_time("24:00:00", TimeUnit::Second).is_err());
        assert!(parse_time("12:00:00.", TimeUnit::Second).is_err());
        let ms = TimeUnit::Millisecond;
        assert_eq!(parse_timestamp("2020-12-30 12:13:14.123", ms).unwrap(), 1_609_330_394_123);
        assert_eq!(parse_timestamp("2020-12-30T12:13:14.123", ms).unwrap(), 1_609_330_394_123);
        assert_eq!(parse_timestamp("2020-12-30T12:13:14.123Z", ms).unwrap(), 1_609_330_394_123);
        assert_eq!(parse_timestamp("2020-12-30 12:13:14.123Z", ms).unwrap(), 1_609_330_394_123);
        assert_eq!(parse_timestamp("2020-12-30T14:13:14.123+02:00", ms).unwrap(), 1_609_330_394_123);
        assert_eq!(parse_timestamp("2018-06-20T13:37:03Z", TimeUnit::Second).unwrap(), 1_529_501_823);
        assert_eq!(parse_timestamp("1969-12-31 23:59:59.999999", TimeUnit::Microsecond).unwrap(), -1);
        assert!(parse_timestamp("2020-12-30", ms).is_err());
        assert!(parse_timestamp("2020-12-30X12:00:00", ms).is_err());
        assert!(parse_timestamp("3000-01-01 00:00:00", TimeUnit::Nanosecond).is_err());
    }

    #[test]
    fn booleans_and_floats() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_f64("1.5e3"), Some(1500.0));
        assert!(parse_f64("NaN").unwrap().is_nan());
        assert_eq!(parse_f64("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64("inf"), None);
        assert_eq!(parse_f32("0.1"), Some(0.1f32));
    }
}
