//! Flink's JSON construction functions: JSON_STRING, JSON_OBJECT, JSON_ARRAY, JSON_QUOTE,
//! JSON_UNQUOTE.
//!
//! JSON_OBJECT and JSON_ARRAY have SQL syntax of their own (`KEY k VALUE v`, `NULL ON NULL`);
//! [`crate::syntax`] turns it into calls `json_object('NULL ON NULL', k1, v1, …)` and
//! `json_array('ABSENT ON NULL', v1, …)`. A value built by another JSON_OBJECT / JSON_ARRAY is
//! inserted as JSON, not as a string (Flink's rule for nesting): their results carry a field
//! metadata mark the outer call reads.
//!
//! Values are written as Jackson writes them for Flink: numbers as Java prints them (`1.0E10`),
//! DECIMAL in plain notation, BYTES as Base64, ARRAY as arrays, MAP and ROW as objects, dates
//! and times as their ISO text.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ScalarUDF, Signature, Volatility};

use crate::func::{sig, Call, Func, Returns};

/// Field metadata marking a value as JSON built by JSON_OBJECT / JSON_ARRAY.
const JSON_MARK: &str = "cdc-sql.json";

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        Func::new("json_string", Signature::any(1, Volatility::Immutable), Returns::Fixed(DataType::Utf8), json_string)
            .udf(),
        Func::new(
            "json_object",
            Signature::variadic_any(Volatility::Immutable),
            Returns::Fixed(DataType::Utf8),
            json_object,
        )
        .check(|lits| on_null_mode(lits.first()).map(|_| ()))
        .metadata(JSON_MARK, "true")
        .udf(),
        Func::new(
            "json_array",
            Signature::variadic_any(Volatility::Immutable),
            Returns::Fixed(DataType::Utf8),
            json_array,
        )
        .check(|lits| on_null_mode(lits.first()).map(|_| ()))
        .metadata(JSON_MARK, "true")
        .udf(),
        Func::new("json_quote", sig::strings(1), Returns::Fixed(DataType::Utf8), json_quote).udf(),
        Func::new("json_unquote", sig::strings(1), Returns::Fixed(DataType::Utf8), json_unquote).udf(),
    ]
}

/// The first argument of `json_object` / `json_array`: what a NULL value becomes.
fn on_null_mode(lit: Option<&Option<&ScalarValue>>) -> std::result::Result<Option<bool>, String> {
    match lit.copied().flatten().and_then(|v| v.try_as_str()).flatten() {
        Some(m) if m.eq_ignore_ascii_case("NULL ON NULL") => Ok(Some(true)),
        Some(m) if m.eq_ignore_ascii_case("ABSENT ON NULL") => Ok(Some(false)),
        Some(m) => Err(format!("'{m}' is not an ON NULL behaviour; expected 'NULL ON NULL' or 'ABSENT ON NULL'")),
        None => Err("the first argument must be 'NULL ON NULL' or 'ABSENT ON NULL'; write JSON_OBJECT(KEY k VALUE v …) / JSON_ARRAY(v …)".into()),
    }
}

/// A JSON string literal. `escape_slash` follows JSON_QUOTE, which also escapes `/`.
fn quote_into(s: &str, escape_slash: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape_slash => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Java's `Double.toString` / `Float.toString`: plain from 10⁻³ to 10⁷, else `d.dddE±n`.
fn java_float(v: f64, shortest: String, scientific: String, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if v == 0.0 || (1e-3..1e7).contains(&v.abs()) {
        out.push_str(&shortest);
        if !shortest.contains('.') {
            out.push_str(".0");
        }
    } else {
        let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        out.push_str(mantissa);
        if !mantissa.contains('.') {
            out.push_str(".0");
        }
        out.push('E');
        out.push_str(exp);
    }
}

/// Writes the value at `row` as JSON.
fn write_value(array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
    if array.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::Null => out.push_str("null"),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) { "true" } else { "false" }),
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            java_float(v, format!("{v}"), format!("{v:e}"), out)
        }
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            java_float(v as f64, format!("{v}"), format!("{v:e}"), out)
        }
        t if t.is_integer()
            || matches!(
                t,
                DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..)
            ) =>
        {
            let f = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            let _ = write!(out, "{}", f.value(row));
        }
        DataType::Utf8 => quote_into(array.as_string::<i32>().value(row), false, out),
        DataType::LargeUtf8 => quote_into(array.as_string::<i64>().value(row), false, out),
        DataType::Utf8View => quote_into(array.as_string_view().value(row), false, out),
        DataType::Binary => quote_into(&STANDARD.encode(array.as_binary::<i32>().value(row)), false, out),
        DataType::LargeBinary => quote_into(&STANDARD.encode(array.as_binary::<i64>().value(row)), false, out),
        DataType::List(_) => write_list(array.as_list::<i32>().value(row).as_ref(), out)?,
        DataType::LargeList(_) => write_list(array.as_list::<i64>().value(row).as_ref(), out)?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, (field, column)) in fields.iter().zip(s.columns()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote_into(field.name(), false, out);
                out.push(':');
                write_value(column.as_ref(), row, out)?;
            }
            out.push('}');
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let key_text = ArrayFormatter::try_new(keys.as_ref(), &FormatOptions::default())?;
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                quote_into(&key_text.value(i).to_string(), false, out);
                out.push(':');
                write_value(values.as_ref(), i, out)?;
            }
            out.push('}');
        }
        _ => {
            let f = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            quote_into(&f.value(row).to_string(), false, out);
        }
    }
    Ok(())
}

fn write_list(values: &dyn Array, out: &mut String) -> Result<()> {
    out.push('[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        write_value(values, i, out)?;
    }
    out.push(']');
    Ok(())
}

/// Writes argument value `row` of `array`: raw when it is JSON built by JSON_OBJECT/JSON_ARRAY.
fn write_arg(array: &dyn Array, raw: bool, row: usize, out: &mut String) -> Result<()> {
    if raw && !array.is_null(row) {
        if let Some(s) = array.as_string_opt::<i32>() {
            out.push_str(s.value(row));
            return Ok(());
        }
    }
    write_value(array, row, out)
}

fn finish_strings(rows: Vec<Option<String>>) -> ArrayRef {
    let mut out = StringBuilder::with_capacity(rows.len(), rows.iter().flatten().map(String::len).sum());
    for r in rows {
        out.append_option(r);
    }
    Arc::new(out.finish())
}

/// JSON_STRING(value): the value as JSON text; NULL stays NULL.
fn json_string(call: &Call) -> Result<ArrayRef> {
    let input = call.array(0)?;
    let mut rows = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        if input.is_null(row) {
            rows.push(None);
            continue;
        }
        let mut text = String::new();
        write_value(input.as_ref(), row, &mut text)?;
        rows.push(Some(text));
    }
    Ok(finish_strings(rows))
}

fn mode(call: &Call) -> Result<bool> {
    let lit = call.scalar(0);
    on_null_mode(Some(&lit)).map_err(|e| call.error(e))?.ok_or_else(|| call.error("missing ON NULL behaviour"))
}

/// `json_object(on_null, key1, value1, …)`.
fn json_object(call: &Call) -> Result<ArrayRef> {
    let null_on_null = mode(call)?;
    if call.arg_count().is_multiple_of(2) {
        return Err(call.error("expects KEY … VALUE … pairs"));
    }
    let args = (1..call.arg_count()).map(|i| call.array(i)).collect::<Result<Vec<ArrayRef>>>()?;
    let raw: Vec<bool> = (1..call.arg_count()).map(|i| call.arg_metadata(i, JSON_MARK).is_some()).collect();
    let keys = (0..args.len())
        .step_by(2)
        .map(|i| datafusion::arrow::compute::cast(&args[i], &DataType::Utf8).map_err(Into::into))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let mut rows = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let mut text = String::from("{");
        let mut first = true;
        for (pair, key) in keys.iter().enumerate() {
            let value = &args[pair * 2 + 1];
            if value.is_null(row) && !null_on_null {
                continue;
            }
            let key = key.as_string::<i32>();
            if key.is_null(row) {
                return Err(call.error("a key is NULL; JSON object keys must be non-NULL strings"));
            }
            if !first {
                text.push(',');
            }
            first = false;
            quote_into(key.value(row), false, &mut text);
            text.push(':');
            write_arg(value.as_ref(), raw[pair * 2 + 1], row, &mut text)?;
        }
        text.push('}');
        rows.push(Some(text));
    }
    Ok(finish_strings(rows))
}

/// `json_array(on_null, value1, …)`.
fn json_array(call: &Call) -> Result<ArrayRef> {
    let null_on_null = mode(call)?;
    let args = (1..call.arg_count()).map(|i| call.array(i)).collect::<Result<Vec<ArrayRef>>>()?;
    let raw: Vec<bool> = (1..call.arg_count()).map(|i| call.arg_metadata(i, JSON_MARK).is_some()).collect();
    let mut rows = Vec::with_capacity(call.rows);
    for row in 0..call.rows {
        let mut text = String::from("[");
        let mut first = true;
        for (value, raw) in args.iter().zip(&raw) {
            if value.is_null(row) && !null_on_null {
                continue;
            }
            if !first {
                text.push(',');
            }
            first = false;
            write_arg(value.as_ref(), *raw, row, &mut text)?;
        }
        text.push(']');
        rows.push(Some(text));
    }
    Ok(finish_strings(rows))
}

/// JSON_QUOTE(string): a JSON string literal, escaping `"` `\` `/` and control characters.
fn json_quote(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let rows = (0..call.rows)
        .map(|row| {
            input.get(row).map(|s| {
                let mut text = String::with_capacity(s.len() + 2);
                quote_into(s, true, &mut text);
                text
            })
        })
        .collect();
    Ok(finish_strings(rows))
}

/// JSON_UNQUOTE(string): the text of a JSON string literal; anything that is not one is
/// returned unchanged.
fn json_unquote(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let rows = (0..call.rows)
        .map(|row| {
            input.get(row).map(|s| {
                let mut text = String::with_capacity(s.len());
                match crate::json::unquote_into(s, &mut text) {
                    true => text,
                    false => s.to_string(),
                }
            })
        })
        .collect();
    Ok(finish_strings(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(v: f64) -> String {
        let mut out = String::new();
        java_float(v, format!("{v}"), format!("{v:e}"), &mut out);
        out
    }

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(double(1.0), "1.0");
        assert_eq!(double(0.998), "0.998");
        assert_eq!(double(1e10), "1.0E10");
        assert_eq!(double(1.25e-5), "1.25E-5");
        assert_eq!(double(1234567.0), "1234567.0");
        assert_eq!(double(12345678.9), "1.23456789E7");
        assert_eq!(double(0.0), "0.0");
    }

    #[test]
    fn quoting() {
        let mut out = String::new();
        quote_into("a\"b\\c/d\n\u{1}", true, &mut out);
        assert_eq!(out, r#""a\"b\\c\/d\n\u0001""#);
        out.clear();
        quote_into("a/b", false, &mut out);
        assert_eq!(out, r#""a/b""#);
    }
}
