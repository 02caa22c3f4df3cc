//! A floating-point source value (MySQL FLOAT/DOUBLE, PostgreSQL `real`/`double precision`)
//! written into a column declared DECIMAL(p, s), the way Flink CDC does it: the value's
//! shortest decimal form (Java's `Float.toString` for a 4-byte float, `Double.toString` for an
//! 8-byte one, read into a `BigDecimal`), rounded HALF_UP to the declared scale
//! (`DecimalData.fromBigDecimal`). So FLOAT 1.1 is 1.100 in DECIMAL(10, 3), not the
//! 1.10000002384… of the float's exact binary value. Rust's `{:e}` gives the same shortest
//! digits (those Java 19+ prints; older JVMs print a longer form for a few rare values).
//!
//! Where Flink differs from us: a rounded value that needs more digits than the precision
//! becomes NULL in Flink (`fromBigDecimal` returns null); we stop with an error naming the
//! value instead, as for every other value a declared column cannot hold. NaN and ±Infinity
//! fail in Flink too (`BigDecimal` has no such values), and here.
//!
//! Shared by mysql-cdc, postgres-cdc and the jdbc scan (not a connector). Pure.

use std::fmt;

use datafusion::arrow::datatypes::i256;

/// A floating-point value with the width it was stored in, which decides its shortest form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Float {
    F32(f32),
    F64(f64),
}

impl fmt::Display for Float {
    /// The shortest form, in exponent notation where Rust's `Debug` uses it (`1e30`, `0.5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Float::F32(v) => write!(f, "{v:?}"),
            Float::F64(v) => write!(f, "{v:?}"),
        }
    }
}

/// Why a value cannot be written into the declared DECIMAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// NaN or ±Infinity.
    NotFinite,
    /// Rounded to the scale, it needs more digits than the precision.
    TooManyDigits,
}

/// `value` in DECIMAL(`precision`, `scale`), as the unscaled integer (value × 10^scale).
pub fn float_to_decimal(value: Float, precision: u8, scale: i8) -> Result<i256, Unfit> {
    let shortest = match value {
        Float::F32(v) if v.is_finite() => format!("{v:e}"),
        Float::F64(v) if v.is_finite() => format!("{v:e}"),
        _ => return Err(Unfit::NotFinite),
    };
    // `[-]d[.ddd]e[-]x`: the value is the digits × 10^(x - digits after the point).
    let (negative, body) = match shortest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest.as_str()),
    };
    let (mantissa, exponent) = body.split_once('e').ok_or(Unfit::NotFinite)?;
    let exponent: i32 = exponent.parse().map_err(|_| Unfit::NotFinite)?;
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    if digits.iter().all(|d| *d == 0) {
        return Ok(i256::ZERO);
    }
    let shift = exponent - (digits.len() as i32 - 1) + scale as i32;
    let ten = i256::from_i128(10);
    let number = |digits: &[u8]| -> Option<i256> {
        digits.iter().try_fold(i256::ZERO, |v, d| v.checked_mul(ten)?.checked_add(i256::from_i128(*d as i128)))
    };
    let magnitude = if shift >= 0 {
        // 10^77 exceeds every precision a DECIMAL can have.
        let factor = u32::try_from(shift).ok().filter(|s| *s <= 77).ok_or(Unfit::TooManyDigits)?;
        number(&digits).and_then(|n| n.checked_mul(ten.checked_pow(factor)?)).ok_or(Unfit::TooManyDigits)?
    } else {
        // HALF_UP: away from zero when the first dropped digit is 5 or more.
        let dropped = (-shift) as usize;
        let kept = digits.len().saturating_sub(dropped);
        let first_dropped = if dropped <= digits.len() { digits[kept] } else { 0 };
        let truncated = number(&digits[..kept]).ok_or(Unfit::TooManyDigits)?;
        if first_dropped >= 5 {
            truncated.checked_add(i256::ONE).ok_or(Unfit::TooManyDigits)?
        } else {
            truncated
        }
    };
    let limit = ten.checked_pow(precision as u32).ok_or(Unfit::TooManyDigits)?;
    if magnitude >= limit {
        return Err(Unfit::TooManyDigits);
    }
    Ok(if negative { magnitude.wrapping_neg() } else { magnitude })
}

/// Why `value` does not fit DECIMAL(`precision`, `scale`), and what to do, for the connectors'
/// error messages (which add the column).
pub fn unfit_message(value: Float, precision: u8, scale: i8, unfit: Unfit) -> String {
    match unfit {
        Unfit::NotFinite => format!(
            "the floating-point value {value} has no DECIMAL({precision}, {scale}) form (Flink fails on it too); \
             declare the column DOUBLE, or keep such values out of the source column"
        ),
        Unfit::TooManyDigits => format!(
            "the floating-point value {value}, rounded half-up to {scale} fraction digits, needs more than {precision} \
             digits, so DECIMAL({precision}, {scale}) cannot hold it (Flink would write NULL; cdc-sql stops rather than \
             lose the value); declare a larger precision, or DOUBLE"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(value: Float, precision: u8, scale: i8) -> Result<String, Unfit> {
        float_to_decimal(value, precision, scale).map(|v| {
            let text = v.to_string();
            let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
            let scale = scale.max(0) as usize;
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            if scale == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            }
        })
    }

    // Expected values: `new BigDecimal(Float.toString(f))` / `BigDecimal.valueOf(d)` then
    // `setScale(s, RoundingMode.HALF_UP)`, as Flink CDC's decimal converter computes them.
    #[test]
    fn shortest_form_then_half_up() {
        assert_eq!(dec(Float::F32(0.5), 10, 3), Ok("0.500".into()));
        // Float.toString(1.1f) = "1.1": the float's own shortest form, not 1.10000002384185791015625.
        assert_eq!(dec(Float::F32(1.1), 10, 3), Ok("1.100".into()));
        assert_eq!(dec(Float::F32(1.1), 12, 9), Ok("1.100000000".into()));
        // The same float widened to a double reads 1.100000023841858 (Double.toString).
        assert_eq!(dec(Float::F64(1.1f32 as f64), 20, 15), Ok("1.100000023841858".into()));
        assert_eq!(dec(Float::F64(123.4565), 10, 3), Ok("123.457".into()));
        assert_eq!(dec(Float::F64(-123.4565), 10, 3), Ok("-123.457".into()));
        assert_eq!(dec(Float::F64(123.4564), 10, 3), Ok("123.456".into()));
        // 2.675 is 2.67499999999999982236431605997495353221893310546875 in binary, but its
        // shortest form is 2.675, which rounds half-up to 2.68.
        assert_eq!(dec(Float::F64(2.675), 10, 2), Ok("2.68".into()));
        assert_eq!(dec(Float::F64(0.0005), 10, 3), Ok("0.001".into()));
        assert_eq!(dec(Float::F64(0.0004), 10, 3), Ok("0.000".into()));
        assert_eq!(dec(Float::F64(0.00049), 10, 3), Ok("0.000".into()));
        assert_eq!(dec(Float::F64(-0.0), 10, 3), Ok("0.000".into()));
        assert_eq!(dec(Float::F64(1e20), 25, 2), Ok("100000000000000000000.00".into()));
        assert_eq!(dec(Float::F64(1.5e-7), 10, 7), Ok("0.0000002".into()));
        assert_eq!(dec(Float::F64(9.9995), 4, 3), Err(Unfit::TooManyDigits), "rounds up to 10.000");
        assert_eq!(dec(Float::F64(9.9994), 4, 3), Ok("9.999".into()));
        assert_eq!(dec(Float::F64(125.0), 5, -1), Ok("13".into()), "negative scale: tens");
    }

    #[test]
    fn overflow_and_non_finite_values_are_refused() {
        assert_eq!(dec(Float::F64(1e30), 10, 3), Err(Unfit::TooManyDigits));
        assert_eq!(dec(Float::F64(-12345678.5), 10, 3), Err(Unfit::TooManyDigits));
        assert_eq!(dec(Float::F64(f64::MAX), 76, 0), Err(Unfit::TooManyDigits));
        assert_eq!(dec(Float::F64(f64::NAN), 10, 3), Err(Unfit::NotFinite));
        assert_eq!(dec(Float::F32(f32::NEG_INFINITY), 10, 3), Err(Unfit::NotFinite));
        let text = unfit_message(Float::F64(1e30), 10, 3, Unfit::TooManyDigits);
        assert!(text.contains("1e30") && text.contains("DECIMAL(10, 3)") && text.contains("NULL"), "{text}");
        assert!(unfit_message(Float::F32(f32::NAN), 10, 3, Unfit::NotFinite).contains("NaN"));
    }

    #[test]
    fn wide_decimals_and_tiny_values() {
        assert_eq!(dec(Float::F64(1.7976931348623157e308), 76, 0), Err(Unfit::TooManyDigits));
        assert_eq!(dec(Float::F64(1e60), 76, 10), Ok(format!("1{}.{}", "0".repeat(60), "0".repeat(10))));
        assert_eq!(dec(Float::F64(5e-324), 10, 3), Ok("0.000".into()));
        assert_eq!(dec(Float::F32(16777216.0), 10, 0), Ok("16777216".into()));
        assert_eq!(dec(Float::F32(3.4028235e38), 38, 0), Err(Unfit::TooManyDigits));
        assert_eq!(dec(Float::F32(3.4028235e38), 39, 0), Ok(format!("34028235{}", "0".repeat(31))));
    }
}
