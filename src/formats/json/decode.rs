//! JSON values → columns, as Flink's `JsonToRowDataConverters` converts them: objects into ROW
//! columns by field name (unknown fields skipped, missing ones NULL), arrays into ARRAY, objects
//! into MAP (keys are text), numbers and strings into the scalar types, numbers written as strings
//! included ("101" into INT, as Canal sends every value). A value the column cannot take is an
//! error naming it, or NULL with `ignore-parse-errors` (Flink's per-field NULL).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use smallvec::{smallvec, SmallVec};

use super::column::{Column, Data, Names};
use super::parser::{compact, Parser, Token};
use super::text::{
    convert_units, parse_bool, parse_date, parse_f32, parse_f64, parse_integer, parse_time, parse_timestamp,
    unit_per_second, unscaled_from_be_bytes, DecimalText,
};
use crate::formats::{excerpt, DecodeError};
use crate::sql::types::flink_type_name;

/// Base64 as Jackson reads it: the standard alphabet, padding optional.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a value is encoded, when a Debezium message's schema says (Kafka Connect logical types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Enc {
    /// Nothing known: JSON as it is.
    Plain,
    /// Days since 1970-01-01 (`io.debezium.time.Date`, Connect's `Date`).
    EpochDays,
    /// A count of units since 1970-01-01 00:00 (`Timestamp`, `MicroTimestamp`, `NanoTimestamp`).
    Epoch(TimeUnit),
    /// A count of units since midnight (`Time`, `MicroTime`, `NanoTime`).
    TimeOfDay(TimeUnit),
    /// Base64 of a big-endian two's-complement unscaled value (Connect's `Decimal`).
    DecimalBytes(i64),
    /// `{"scale": s, "value": base64}` (`io.debezium.data.VariableScaleDecimal`).
    VariableScaleDecimal,
    /// The encoding of an array's elements.
    Items(Box<Enc>),
    /// The encodings of a struct's fields, in the column's field order.
    Fields(Vec<Enc>),
}

pub(crate) static PLAIN: Enc = Enc::Plain;

impl Enc {
    fn field(&self, i: usize) -> &Enc {
        match self {
            Enc::Fields(f) => f.get(i).unwrap_or(&PLAIN),
            _ => &PLAIN,
        }
    }
}

/// Decoding settings shared by the formats.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cx {
    /// A value a column cannot take becomes NULL instead of failing the message.
    pub ignore_parse_errors: bool,
    /// A field absent from an object fails the message instead of being NULL.
    pub fail_on_missing_field: bool,
    /// Debezium's defaults: a number in a DATE / TIME / TIMESTAMP column whose schema does not
    /// say otherwise counts days / µs since midnight / ms (precision ≤ 3) or µs since the epoch,
    /// and a DECIMAL given as base64 text gets a hint about Debezium's `precise` mode.
    pub debezium: bool,
}

/// Which fields an object held.
pub(crate) type Seen = SmallVec<[bool; 64]>;

/// Reads an object's fields into `columns` (one value each; the columns hold `row` values
/// before). Keys are matched exactly; a repeated key's last value wins, as in Jackson. Returns
/// which fields the object held.
pub(crate) fn read_fields(
    p: &mut Parser<'_>,
    names: &Names,
    columns: &mut [Column],
    row: usize,
    enc: &Enc,
    cx: &Cx,
) -> Result<Seen, DecodeError> {
    p.begin_object()?;
    let mut seen: Seen = smallvec![false; columns.len()];
    let mut first = true;
    let mut hint = 0;
    loop {
        let index = match p.next_key(first)? {
            None => break,
            Some(key) => names.find(key, hint),
        };
        first = false;
        let Some(i) = index else {
            p.skip()?;
            continue;
        };
        if seen[i] {
            columns[i].truncate(row);
        }
        seen[i] = true;
        hint = i + 1;
        read_value(p, &mut columns[i], enc.field(i), cx).map_err(|e| e.in_field(names.name(i)))?;
    }
    for (i, column) in columns.iter_mut().enumerate() {
        if seen[i] {
            continue;
        }
        if cx.fail_on_missing_field {
            return Err(
                DecodeError::new("missing from the message (fail-on-missing-field is set)").in_field(names.name(i))
            );
        }
        column.push_null().map_err(|e| DecodeError::new(e).in_field(names.name(i)))?;
    }
    Ok(seen)
}

enum Shape {
    Struct,
    List,
    Map,
    Scalar,
}

/// Reads the next value into `column`.
pub(crate) fn read_value(p: &mut Parser<'_>, column: &mut Column, enc: &Enc, cx: &Cx) -> Result<(), DecodeError> {
    let token = p.peek()?;
    if token == Token::Null {
        p.null()?;
        return column.push_null().map_err(DecodeError::new);
    }
    let shape = match column.data {
        Data::Struct { .. } => Shape::Struct,
        Data::List { .. } => Shape::List,
        Data::Map { .. } => Shape::Map,
        _ => Shape::Scalar,
    };
    match (shape, token) {
        (Shape::Struct, Token::Object) => {
            let row = column.len();
            let Data::Struct { fields, children } = &mut column.data else { return Err(shape_changed()) };
            read_fields(p, fields, children, row, enc, cx)?;
            column.end_struct();
            Ok(())
        }
        (Shape::List, Token::Array) => {
            let item_enc = match enc {
                Enc::Items(e) => e,
                _ => &PLAIN,
            };
            let Data::List { item, .. } = &mut column.data else { return Err(shape_changed()) };
            p.begin_array()?;
            let mut first = true;
            let mut i = 0;
            while p.next_item(first)? {
                first = false;
                read_value(p, item, item_enc, cx).map_err(|e| e.at_index(i))?;
                i += 1;
            }
            column.end_nested().map_err(DecodeError::new)
        }
        (Shape::Map, Token::Object) => {
            let Data::Map { keys, values, .. } = &mut column.data else { return Err(shape_changed()) };
            p.begin_object()?;
            let mut first = true;
            let mut key = String::new();
            while let Some(k) = p.next_key(first)? {
                first = false;
                key.clear();
                key.push_str(k);
                scalar_text(keys, &key, false, &PLAIN, cx)
                    .map_err(|e| DecodeError::new(format!("key {e}")).in_field(&key))?;
                read_value(p, values, &PLAIN, cx).map_err(|e| e.in_field(&key))?;
            }
            column.end_nested().map_err(DecodeError::new)
        }
        (Shape::Scalar, _) => read_scalar(p, column, token, enc, cx),
        (_, token) => mismatch(p, column, token, cx),
    }
}

/// A value of the wrong JSON kind for its column: skipped, and NULL or an error.
fn mismatch(p: &mut Parser<'_>, column: &mut Column, token: Token, cx: &Cx) -> Result<(), DecodeError> {
    p.skip()?;
    let wanted = match column.data {
        Data::Struct { .. } | Data::Map { .. } => "an object",
        Data::List { .. } => "an array",
        _ => "a number, string or boolean",
    };
    let message = format!("expected {wanted} for {}, found {}", flink_type_name(column.data_type()), token.describe());
    if cx.ignore_parse_errors {
        column.push_null().map_err(DecodeError::new)
    } else {
        Err(DecodeError::new(message))
    }
}

fn read_scalar(p: &mut Parser<'_>, column: &mut Column, token: Token, enc: &Enc, cx: &Cx) -> Result<(), DecodeError> {
    let result = match token {
        Token::True | Token::False => {
            let b = p.boolean()?;
            scalar_text(column, if b { "true" } else { "false" }, true, enc, cx)
        }
        Token::Number => {
            let text = p.number()?;
            scalar_text(column, text, true, enc, cx)
        }
        Token::String => {
            let text = p.string()?;
            scalar_text(column, text, false, enc, cx)
        }
        Token::Object if *enc == Enc::VariableScaleDecimal && is_decimal(column.data_type()) => {
            variable_scale_decimal(p, column)?
        }
        Token::Array | Token::Object if *column.data_type() == DataType::Utf8 => {
            // Flink keeps an object or array read into a STRING column as its JSON text.
            let raw = p.raw()?;
            let mut text = String::with_capacity(raw.len());
            compact(raw, &mut text);
            column.push_bytes(text.as_bytes()).map_err(|e| format!("the JSON text {e}"))
        }
        Token::Null | Token::Array | Token::Object => return mismatch(p, column, token, cx),
    };
    match result {
        Ok(()) => Ok(()),
        Err(_) if cx.ignore_parse_errors => column.push_null().map_err(DecodeError::new),
        Err(message) => Err(DecodeError::new(message)),
    }
}

fn is_decimal(dt: &DataType) -> bool {
    matches!(dt, DataType::Decimal128(_, _) | DataType::Decimal256(_, _))
}

/// How a value is quoted in messages: numbers as they are, strings in quotes.
fn shown(text: &str, bare: bool) -> String {
    if bare {
        excerpt(text.as_bytes(), 60)
    } else {
        format!("\"{}\"", excerpt(text.as_bytes(), 60))
    }
}

/// Converts the text of a number (`bare`), boolean (`bare`) or string into `column`.
pub(crate) fn scalar_text(column: &mut Column, text: &str, bare: bool, enc: &Enc, cx: &Cx) -> Result<(), String> {
    let fail = |column: &Column, reason: &str| {
        format!("cannot read {} as {}: {reason}", shown(text, bare), flink_type_name(column.data_type()))
    };
    let result: Result<(), String> = match column.data_type() {
        DataType::Null => column.push_null(),
        DataType::Boolean => match parse_bool(text) {
            Some(b) => column.push_bool(b),
            None => Err("not a boolean (true, false, 1 or 0)".into()),
        },
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => parse_integer(text).and_then(|v| column.push_int(v)),
        DataType::Float32 => match parse_f32(text) {
            Some(v) => column.push_f32(v),
            None => Err("not a number".into()),
        },
        DataType::Float64 => match parse_f64(text) {
            Some(v) => column.push_f64(v),
            None => Err("not a number".into()),
        },
        DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
            let (precision, scale) = (*precision, *scale);
            decimal(text, bare, enc, precision, scale, cx.debezium).and_then(|v| column.push_decimal(v))
        }
        DataType::Utf8 => column.push_bytes(text.as_bytes()),
        DataType::Binary => {
            if bare {
                Err("not base64 text".into())
            } else {
                match BASE64.decode(text.trim()) {
                    Ok(bytes) => column.push_bytes(&bytes),
                    Err(e) => Err(format!("not base64 text ({e})")),
                }
            }
        }
        DataType::Date32 => {
            if bare {
                numeric_temporal(column.data_type(), text, enc, cx).and_then(|v| column.push_temporal(v))
            } else {
                parse_date(text).and_then(|v| column.push_temporal(v as i64))
            }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            let unit = *unit;
            if bare {
                numeric_temporal(column.data_type(), text, enc, cx).and_then(|v| column.push_temporal(v))
            } else {
                parse_time(text, unit).and_then(|v| column.push_temporal(v))
            }
        }
        DataType::Timestamp(unit, _) => {
            let unit = *unit;
            if bare {
                numeric_temporal(column.data_type(), text, enc, cx).and_then(|v| column.push_temporal(v))
            } else {
                parse_timestamp(text, unit).and_then(|v| column.push_temporal(v))
            }
        }
        _ => Err("expected an object or array".into()),
    };
    result.map_err(|reason| fail(column, &reason))
}

/// The unscaled value of a DECIMAL(precision, scale) from a number, decimal text, or (with the
/// schema saying so) Kafka Connect's base64 bytes.
fn decimal(
    text: &str,
    bare: bool,
    enc: &Enc,
    precision: u8,
    scale: i8,
    debezium: bool,
) -> Result<datafusion::arrow::datatypes::i256, String> {
    if let (Enc::DecimalBytes(source_scale), false) = (enc, bare) {
        let bytes = BASE64.decode(text.trim()).map_err(|e| format!("not base64 text ({e})"))?;
        let unscaled = unscaled_from_be_bytes(&bytes).ok_or("more than 32 bytes of unscaled value")?;
        return Ok(DecimalText::from_unscaled(unscaled, *source_scale).unscaled(precision, scale)?.0);
    }
    match DecimalText::parse(text) {
        Some(d) => Ok(d.unscaled(precision, scale)?.0),
        None if debezium && !bare && BASE64.decode(text.trim()).is_ok_and(|b| !b.is_empty()) => Err(
            "not a decimal number; it looks like Debezium's base64 bytes (decimal.handling.mode=precise), whose scale only the message's schema gives: \
             set 'debezium-json.schema-include' = 'true' with schemas enabled in Kafka Connect, or use decimal.handling.mode=string"
                .into(),
        ),
        None => Err("not a decimal number".into()),
    }
}

/// A number in a DATE / TIME / TIMESTAMP column: what it counts comes from the Debezium schema
/// (`enc`) or, for Debezium without one, from the column's type; other formats refuse it.
fn numeric_temporal(target: &DataType, text: &str, enc: &Enc, cx: &Cx) -> Result<i64, String> {
    let meaning = match enc {
        Enc::EpochDays | Enc::Epoch(_) | Enc::TimeOfDay(_) => enc.clone(),
        _ if cx.debezium => match target {
            DataType::Date32 => Enc::EpochDays,
            DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _) => Enc::Epoch(TimeUnit::Millisecond),
            DataType::Timestamp(_, _) => Enc::Epoch(TimeUnit::Microsecond),
            _ => Enc::TimeOfDay(TimeUnit::Microsecond),
        },
        _ => {
            return Err(match target {
                DataType::Date32 => "expected text yyyy-MM-dd, not a number".into(),
                DataType::Timestamp(_, _) => "expected text yyyy-MM-dd HH:mm:ss[.fff], not a number".into(),
                _ => "expected text HH:mm:ss[.fff], not a number".into(),
            })
        }
    };
    let n = parse_integer(text)?;
    let n = i64::try_from(n).map_err(|_| "out of range".to_string())?;
    let range = || "out of range".to_string();
    match (target, meaning) {
        (DataType::Date32, Enc::EpochDays) => Ok(n),
        (DataType::Date32, Enc::Epoch(u)) => Ok(n.div_euclid(86_400 * unit_per_second(u))),
        (DataType::Timestamp(to, _), Enc::Epoch(from)) => convert_units(n, from, *to).ok_or_else(range),
        (DataType::Timestamp(to, _), Enc::EpochDays) => n.checked_mul(86_400 * unit_per_second(*to)).ok_or_else(range),
        (DataType::Time32(to) | DataType::Time64(to), Enc::TimeOfDay(from) | Enc::Epoch(from)) => {
            let v = convert_units(n, from, *to).ok_or_else(range)?;
            Ok(v.rem_euclid(86_400 * unit_per_second(*to)))
        }
        (_, Enc::TimeOfDay(_)) => Err("a time of day is not a date or timestamp".into()),
        _ => Err("a date holds no time of day".into()),
    }
}

/// `{"scale": 2, "value": "AeI="}` into a DECIMAL column.
fn variable_scale_decimal(p: &mut Parser<'_>, column: &mut Column) -> Result<Result<(), String>, DecodeError> {
    let (precision, scale) = match column.data_type() {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (*p, *s),
        _ => return Ok(Err("not a DECIMAL column".into())),
    };
    p.begin_object()?;
    let mut source_scale: Option<Result<i64, String>> = None;
    let mut value: Option<Result<Vec<u8>, String>> = None;
    let mut first = true;
    loop {
        let field = match p.next_key(first)? {
            None => break,
            Some("scale") => 0,
            Some("value") => 1,
            Some(_) => 2,
        };
        first = false;
        match (field, p.peek()?) {
            (0, Token::Number) => {
                source_scale =
                    Some(parse_integer(p.number()?).and_then(|s| i64::try_from(s).map_err(|e| e.to_string())))
            }
            (1, Token::String) => {
                value = Some(BASE64.decode(p.string()?.trim()).map_err(|e| format!("value is not base64 ({e})")))
            }
            _ => p.skip()?,
        }
    }
    let type_name = flink_type_name(column.data_type());
    let shown = |what: &str| format!("cannot read a VariableScaleDecimal as {type_name}: {what}");
    let (Some(source_scale), Some(value)) = (source_scale, value) else {
        return Ok(Err(shown("it needs a numeric \"scale\" and a base64 \"value\"")));
    };
    let result = source_scale.and_then(|s| {
        let bytes = value?;
        let unscaled = unscaled_from_be_bytes(&bytes).ok_or("more than 32 bytes of unscaled value")?;
        Ok(DecimalText::from_unscaled(unscaled, s).unscaled(precision, scale)?.0)
    });
    Ok(match result {
        Ok(v) => column.push_decimal(v).map_err(|e| shown(&e)),
        Err(e) => Err(shown(&e)),
    })
}

fn shape_changed() -> DecodeError {
    DecodeError::new("internal error (a bug in cdc-sql, please report it): a column changed its shape while decoding")
}
