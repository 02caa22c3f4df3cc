//! Flink's hash, arithmetic and predicate functions that DataFusion lacks or evaluates
//! differently, and the NULL rule Flink applies to GREATEST / LEAST.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Float64Array, Int32Builder, Int64Array, StringBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::{as_decimal128_array, as_float64_array, as_int64_array};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sha1::Digest;

use crate::func::{sig, Call, Func, Returns};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    let s = sig::string;
    let immutable = |lists| sig::one_of(lists, Volatility::Immutable);
    let text_or_bytes = || immutable(vec![vec![s()], vec![sig::bytes()]]);
    vec![
        Func::new("hash_code", sig::strings(1), Returns::Fixed(DataType::Int32), hash_code).udf(),
        Func::new("sha1", text_or_bytes(), Returns::Fixed(DataType::Utf8), |c| digest_hex(c, 1)).udf(),
        Func::new("sha224", text_or_bytes(), Returns::Fixed(DataType::Utf8), |c| digest_hex(c, 224)).udf(),
        Func::new("sha256", text_or_bytes(), Returns::Fixed(DataType::Utf8), |c| digest_hex(c, 256)).udf(),
        Func::new("sha384", text_or_bytes(), Returns::Fixed(DataType::Utf8), |c| digest_hex(c, 384)).udf(),
        Func::new("sha512", text_or_bytes(), Returns::Fixed(DataType::Utf8), |c| digest_hex(c, 512)).udf(),
        Func::new(
            "sha2",
            immutable(vec![vec![s(), sig::int()], vec![sig::bytes(), sig::int()]]),
            Returns::Fixed(DataType::Utf8),
            sha2,
        )
        .check(|lits| match lits.get(1).copied().flatten() {
            Some(ScalarValue::Int64(Some(bits))) if ![224, 256, 384, 512].contains(bits) => {
                Err(format!("hash length {bits} is not supported; use 224, 256, 384 or 512"))
            }
            _ => Ok(()),
        })
        .udf(),
        Func::new(
            "log",
            immutable(vec![vec![sig::double()], vec![sig::double(), sig::double()]]),
            Returns::Fixed(DataType::Float64),
            log,
        )
        .udf(),
        Func::new("sign", Signature::numeric(1, Volatility::Immutable), Returns::Arg(0), sign).udf(),
        Func::new("e", sig::one_of(vec![vec![]], Volatility::Immutable), Returns::Fixed(DataType::Float64), |_| {
            Ok(Arc::new(Float64Array::from(vec![std::f64::consts::E])))
        })
        .udf(),
        Func::new("bin", sig::args(vec![sig::int()]), Returns::Fixed(DataType::Utf8), bin).udf(),
        Func::new(
            "hex",
            immutable(vec![vec![sig::int()], vec![s()], vec![sig::bytes()]]),
            Returns::Fixed(DataType::Utf8),
            hex,
        )
        .udf(),
        Func::new("unhex", sig::strings(1), Returns::Fixed(DataType::Binary), unhex).udf(),
        Func::new("truncate", Signature::user_defined(Volatility::Immutable), Returns::Arg(0), truncate)
            .coerce(truncate_coercion)
            .udf(),
        Func::new("is_alpha", Signature::any(1, Volatility::Immutable), Returns::Fixed(DataType::Boolean), is_alpha)
            .udf(),
        Func::new("is_digit", Signature::any(1, Volatility::Immutable), Returns::Fixed(DataType::Boolean), is_digit)
            .udf(),
        Func::new(
            "is_decimal",
            Signature::any(1, Volatility::Immutable),
            Returns::Fixed(DataType::Boolean),
            is_decimal,
        )
        .udf(),
        Func::new(
            "current_database",
            sig::one_of(vec![vec![]], Volatility::Immutable),
            Returns::Fixed(DataType::Utf8),
            |_| {
                // cdc-sql has no catalogs: every table lives in what Flink calls its default database.
                Ok(Arc::new(datafusion::arrow::array::StringArray::from(vec!["default_database"])))
            },
        )
        .udf(),
        ScalarUDF::new_from_impl(NullIfAnyNull::new(datafusion::functions::core::greatest())),
        ScalarUDF::new_from_impl(NullIfAnyNull::new(datafusion::functions::core::least())),
    ]
}

/// HASH_CODE(string): `Math.abs(s.hashCode())` of the Java string, what Flink's runtime
/// (`SqlFunctionUtils.hashCode`) computes; `abs` of `Integer.MIN_VALUE` stays negative, as in Java.
fn hash_code(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let mut out = Int32Builder::with_capacity(call.rows);
    for row in 0..call.rows {
        out.append_option(input.get(row).map(|s| java_hash(s).wrapping_abs()));
    }
    Ok(Arc::new(out.finish()))
}

/// Java's `String.hashCode`: `h = 31 * h + c` over the UTF-16 code units.
pub(crate) fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

fn hex_of(bytes: &[u8], upper: bool, out: &mut String) {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    let digits = if upper { UPPER } else { LOWER };
    for b in bytes {
        out.push(digits[(b >> 4) as usize] as char);
        out.push(digits[(b & 0xF) as usize] as char);
    }
}

fn digest(bits: i64, data: &[u8], out: &mut String) -> bool {
    match bits {
        1 => hex_of(&sha1::Sha1::digest(data), false, out),
        224 => hex_of(&sha2::Sha224::digest(data), false, out),
        256 => hex_of(&sha2::Sha256::digest(data), false, out),
        384 => hex_of(&sha2::Sha384::digest(data), false, out),
        512 => hex_of(&sha2::Sha512::digest(data), false, out),
        _ => return false,
    }
    true
}

fn strings(call: &Call, mut f: impl FnMut(usize, &mut String) -> Result<bool>) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(call.rows, call.rows * 16);
    let mut text = String::new();
    for row in 0..call.rows {
        text.clear();
        if f(row, &mut text)? {
            out.append_value(&text);
        } else {
            out.append_null();
        }
    }
    Ok(Arc::new(out.finish()))
}

/// SHA1 / SHA224 / … → lower-case hex text (DataFusion's return raw bytes).
fn digest_hex(call: &Call, bits: i64) -> Result<ArrayRef> {
    let input = call.bytes(0)?;
    strings(call, |row, out| Ok(input.get(row).is_some_and(|b| digest(bits, b, out))))
}

fn sha2(call: &Call) -> Result<ArrayRef> {
    let (input, lengths) = (call.bytes(0)?, call.int(1)?);
    strings(call, |row, out| {
        let (Some(b), Some(bits)) = (input.get(row), lengths.get(row)) else { return Ok(false) };
        if bits == 1 || !digest(bits, b, out) {
            return Err(call.error(format!("hash length {bits} is not supported; use 224, 256, 384 or 512")));
        }
        Ok(true)
    })
}

/// LOG(x) is the natural logarithm (DataFusion's one-argument `log` is base 10); LOG(b, x) is
/// `ln(x) / ln(b)`, as Java computes it.
fn log(call: &Call) -> Result<ArrayRef> {
    let first = call.float(0)?;
    let second = if call.arg_count() > 1 { Some(call.float(1)?) } else { None };
    let values: Float64Array = (0..call.rows)
        .map(|row| match &second {
            None => first.get(row).map(f64::ln),
            Some(x) => Some(x.get(row)?.ln() / first.get(row)?.ln()),
        })
        .collect();
    Ok(Arc::new(values))
}

/// SIGN(n): -1, 0 or 1 in the type of `n` (NaN stays NaN).
fn sign(call: &Call) -> Result<ArrayRef> {
    let input = call.array(0)?;
    let t = input.data_type().clone();
    if matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64) {
        let f = cast(&input, &DataType::Float64)?;
        let signs: Float64Array =
            as_float64_array(&f)?.iter().map(|v| v.map(|v| if v == 0.0 { v } else { v.signum() })).collect();
        return Ok(cast(&signs, &t)?);
    }
    let f = cast(&input, &DataType::Float64)?;
    let signs: Int64Array = as_float64_array(&f)?
        .iter()
        .map(|v| {
            v.map(|v| {
                if v > 0.0 {
                    1
                } else if v < 0.0 {
                    -1
                } else {
                    0
                }
            })
        })
        .collect();
    Ok(cast(&signs, &t)?)
}

/// BIN(n): Java's `Long.toBinaryString` (two's complement for negatives).
fn bin(call: &Call) -> Result<ArrayRef> {
    let input = call.int(0)?;
    strings(call, |row, out| {
        let Some(n) = input.get(row) else { return Ok(false) };
        out.push_str(&format!("{:b}", n as u64));
        Ok(true)
    })
}

/// HEX(n) is Java's `Long.toHexString` upper-cased; HEX(string) the upper-case hex of its UTF-8.
fn hex(call: &Call) -> Result<ArrayRef> {
    if call.arg_type(0) == DataType::Int64 {
        let input = call.int(0)?;
        return strings(call, |row, out| {
            let Some(n) = input.get(row) else { return Ok(false) };
            out.push_str(&format!("{:X}", n as u64));
            Ok(true)
        });
    }
    let input = call.bytes(0)?;
    strings(call, |row, out| {
        let Some(b) = input.get(row) else { return Ok(false) };
        hex_of(b, true, out);
        Ok(true)
    })
}

/// UNHEX(string) → BYTES; an odd length reads as if a `0` led it; NULL for any non-hex digit.
fn unhex(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let mut out = BinaryBuilder::with_capacity(call.rows, call.rows * 8);
    let mut buf = Vec::new();
    for row in 0..call.rows {
        let Some(s) = input.get(row) else {
            out.append_null();
            continue;
        };
        buf.clear();
        let digits: Option<Vec<u8>> = s.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect();
        let Some(mut digits) = digits else {
            out.append_null();
            continue;
        };
        if digits.len() % 2 == 1 {
            digits.insert(0, 0);
        }
        buf.extend(digits.chunks(2).map(|p| p[0] << 4 | p[1]));
        out.append_value(&buf);
    }
    Ok(Arc::new(out.finish()))
}

fn truncate_coercion(types: &[DataType]) -> Result<Vec<DataType>> {
    let first = match types.first() {
        Some(t @ (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64)) => t.clone(),
        Some(DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64) => DataType::Int64,
        Some(t @ (DataType::Float32 | DataType::Float64)) => t.clone(),
        Some(DataType::Float16) => DataType::Float32,
        Some(t @ DataType::Decimal128(..)) => t.clone(),
        Some(DataType::Decimal32(p, s) | DataType::Decimal64(p, s)) => DataType::Decimal128(*p, *s),
        Some(DataType::Null) => DataType::Float64,
        Some(DataType::Decimal256(p, _)) => {
            return plan_err!("TRUNCATE of a DECIMAL with precision {p} (over 38) is not supported");
        }
        Some(other) => return plan_err!("TRUNCATE: expected a number, got {other}"),
        None => return plan_err!("TRUNCATE expects 1 or 2 arguments"),
    };
    match types.len() {
        1 => Ok(vec![first]),
        2 if types[1].is_integer() || types[1] == DataType::Null => Ok(vec![first, DataType::Int64]),
        2 => plan_err!("TRUNCATE: the number of decimal places must be an integer, got {}", types[1]),
        n => plan_err!("TRUNCATE expects 1 or 2 arguments, got {n}"),
    }
}

/// TRUNCATE(n[, d]): `n` cut toward zero to `d` decimal places (default 0; negative cuts
/// integer digits), in the type of `n`.
fn truncate(call: &Call) -> Result<ArrayRef> {
    let input = call.array(0)?;
    let places = if call.arg_count() > 1 { Some(call.int(1)?) } else { None };
    let place = |row: usize| match &places {
        Some(p) => p.get(row),
        None => Some(0),
    };
    let t = input.data_type().clone();
    match &t {
        DataType::Decimal128(_, scale) => {
            let a = as_decimal128_array(&input)?;
            let cut: Vec<Option<i128>> = (0..call.rows)
                .map(|row| {
                    let (v, d) = (a.is_valid(row).then(|| a.value(row))?, place(row)?);
                    let drop = (*scale as i64 - d).clamp(0, 38) as u32;
                    let unit = 10i128.pow(drop);
                    Some(v / unit * unit)
                })
                .collect();
            let array = datafusion::arrow::array::Decimal128Array::from(cut).with_data_type(t.clone());
            Ok(Arc::new(array))
        }
        DataType::Float32 | DataType::Float64 => {
            let f = cast(&input, &DataType::Float64)?;
            let f = as_float64_array(&f)?;
            let cut: Float64Array = (0..call.rows)
                .map(|row| {
                    let (v, d) = (f.is_valid(row).then(|| f.value(row))?, place(row)?);
                    if !v.is_finite() {
                        return Some(v);
                    }
                    // Through the shortest decimal text of the double, as Java's BigDecimal.valueOf.
                    let text = format!("{v}");
                    Some(cut_decimal_text(&text, d).parse().unwrap_or(v))
                })
                .collect();
            Ok(cast(&cut, &t)?)
        }
        _ => {
            let i = cast(&input, &DataType::Int64)?;
            let i = as_int64_array(&i)?;
            let cut: Int64Array = (0..call.rows)
                .map(|row| {
                    let (v, d) = (i.is_valid(row).then(|| i.value(row))?, place(row)?);
                    if d >= 0 {
                        return Some(v);
                    }
                    let unit = 10i64.checked_pow(u32::try_from(-d).ok()?).unwrap_or(i64::MAX);
                    Some(v / unit * unit)
                })
                .collect();
            Ok(cast(&cut, &t)?)
        }
    }
}

/// Cuts a plain decimal text to `d` places (negative: zeroes integer digits).
fn cut_decimal_text(text: &str, d: i64) -> String {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if d >= 0 {
        let keep = (d as usize).min(frac.len());
        if keep == 0 {
            return int.to_string();
        }
        return format!("{int}.{}", &frac[..keep]);
    }
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", int),
    };
    let zeros = (-d as usize).min(digits.len());
    let kept = &digits[..digits.len() - zeros];
    if kept.is_empty() {
        return "0".into();
    }
    format!("{sign}{kept}{}", "0".repeat(zeros))
}

fn predicate(call: &Call, on_string: impl Fn(&str) -> bool, on_integer: bool, on_number: bool) -> Result<ArrayRef> {
    let t = call.arg_type(0);
    let mut out = BooleanBuilder::with_capacity(call.rows);
    if matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        let input = call.str(0)?;
        for row in 0..call.rows {
            out.append_value(input.get(row).is_some_and(|s| !s.is_empty() && on_string(s)));
        }
    } else {
        let input = call.array(0)?;
        let yes = (t.is_integer() && on_integer) || (t.is_numeric() && on_number);
        for row in 0..call.rows {
            out.append_value(yes && input.is_valid(row));
        }
    }
    Ok(Arc::new(out.finish()))
}

/// IS_ALPHA: a non-empty string of letters only; FALSE for NULL and non-strings.
fn is_alpha(call: &Call) -> Result<ArrayRef> {
    predicate(call, |s| s.chars().all(char::is_alphabetic), false, false)
}

/// IS_DIGIT: a non-empty string of digits 0–9 only, or any integer; FALSE for NULL.
fn is_digit(call: &Call) -> Result<ArrayRef> {
    predicate(call, |s| s.chars().all(|c| c.is_ascii_digit()), true, false)
}

/// IS_DECIMAL: a string Java reads as an int, long or double (`1`, `-2.5`, `1e3`, ` 7 `, `1.5d`,
/// `NaN`, `Infinity`), or any number; FALSE for NULL.
fn is_decimal(call: &Call) -> Result<ArrayRef> {
    predicate(call, java_parses_as_number, true, true)
}

fn java_parses_as_number(s: &str) -> bool {
    let t = s.trim_matches(|c: char| c <= ' ');
    let body = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    let unsigned = body.strip_prefix(['+', '-']).unwrap_or(body);
    if matches!(unsigned, "NaN" | "Infinity") {
        return true;
    }
    // Rust also reads "inf", "nan", "infinity" in any case, which Java does not.
    if unsigned.chars().any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return false;
    }
    !unsigned.is_empty() && body.parse::<f64>().is_ok()
}

/// Wraps DataFusion's GREATEST / LEAST (which skip NULLs) with Flink's rule: any NULL argument
/// makes the result NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullIfAnyNull {
    inner: Arc<ScalarUDF>,
}

impl NullIfAnyNull {
    fn new(inner: Arc<ScalarUDF>) -> Self {
        NullIfAnyNull { inner }
    }
}

impl ScalarUDFImpl for NullIfAnyNull {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let any_null_scalar = args.args.iter().any(|a| matches!(a, ColumnarValue::Scalar(s) if s.is_null()));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .filter_map(|a| if let ColumnarValue::Array(a) = a { Some(Arc::clone(a)) } else { None })
            .collect();
        let result = self.inner.invoke_with_args(args)?;
        if any_null_scalar {
            let t = result.data_type();
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(&t)?));
        }
        if arrays.is_empty() {
            return Ok(result);
        }
        let mut nulls: Option<NullBuffer> = None;
        for a in &arrays {
            nulls = NullBuffer::union(nulls.as_ref(), a.logical_nulls().as_ref());
        }
        let result = result.into_array(rows)?;
        let Some(nulls) = nulls else { return Ok(ColumnarValue::Array(result)) };
        let combined = NullBuffer::union(Some(&nulls), result.logical_nulls().as_ref());
        let data = result.to_data().into_builder().nulls(combined).build()?;
        Ok(ColumnarValue::Array(datafusion::arrow::array::make_array(data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_hash("😀"), 1_772_899);
    }

    #[test]
    fn java_number_texts() {
        for yes in ["1", "-2.5", "1e3", " 7 ", "1.5d", "NaN", "Infinity", "+3", ".5"] {
            assert!(java_parses_as_number(yes), "{yes}");
        }
        for no in ["", "abc", "inf", "nan", "1,5", "0x10", "--1"] {
            assert!(!java_parses_as_number(no), "{no}");
        }
    }

    #[test]
    fn decimal_text_cuts() {
        assert_eq!(cut_decimal_text("42.324", 2), "42.32");
        assert_eq!(cut_decimal_text("42.324", 0), "42");
        assert_eq!(cut_decimal_text("-42.9", 0), "-42");
        assert_eq!(cut_decimal_text("1234.5", -2), "1200");
        assert_eq!(cut_decimal_text("12", -3), "0");
    }
}
