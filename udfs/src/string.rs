//! Flink's string functions that DataFusion lacks, names differently or evaluates differently.
//!
//! Lengths and positions count Unicode characters; Java counts UTF-16 units, so the two differ
//! only for characters outside the Basic Multilingual Plane (emoji), where Java counts two.

use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Int32Builder, ListBuilder, MapBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::cast::{as_int64_array, as_string_array};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ScalarUDF, Signature, Volatility};
use regex::NoExpand;

use crate::func::{sig, Call, Func, Returns};
use crate::regex::{compile, Regexes};
use crate::StrArg;

pub(crate) fn functions() -> Vec<ScalarUDF> {
    let s = sig::string;
    let i = sig::int;
    let immutable = |lists| sig::one_of(lists, Volatility::Immutable);
    let regex_check = |lits: &[Option<&ScalarValue>]| match lits.get(1).copied().flatten().and_then(|v| v.try_as_str())
    {
        Some(Some(p)) => compile(p).map(|_| ()),
        _ => Ok(()),
    };
    vec![
        Func::new(
            "to_base64",
            immutable(vec![vec![s()], vec![sig::bytes()]]),
            Returns::Fixed(DataType::Utf8),
            to_base64,
        )
        .udf(),
        Func::new("from_base64", sig::strings(1), Returns::Fixed(DataType::Utf8), from_base64).udf(),
        Func::new("encode", sig::strings(2), Returns::Fixed(DataType::Binary), encode)
            .check(|lits| check_charset(lits.get(1)))
            .udf(),
        Func::new("decode", sig::args(vec![sig::bytes(), s()]), Returns::Fixed(DataType::Utf8), decode)
            .check(|lits| check_charset(lits.get(1)))
            .udf(),
        Func::new("concat", Signature::variadic_any(Volatility::Immutable), Returns::Fixed(DataType::Utf8), concat)
            .udf(),
        Func::new(
            "split_index",
            immutable(vec![vec![s(), s(), i()], vec![s(), i(), i()]]),
            Returns::Fixed(DataType::Utf8),
            split_index,
        )
        .udf(),
        Func::new(
            "str_to_map",
            immutable(vec![vec![s()], vec![s(), s(), s()]]),
            Returns::With(|_| Ok(map_type())),
            str_to_map,
        )
        .check(|lits| {
            for d in [lits.get(1), lits.get(2)] {
                if let Some(Some(p)) = d.copied().flatten().and_then(|v| v.try_as_str()) {
                    compile(p)?;
                }
            }
            Ok(())
        })
        .udf(),
        Func::new(
            "regexp_extract",
            immutable(vec![vec![s(), s()], vec![s(), s(), i()]]),
            Returns::Fixed(DataType::Utf8),
            regexp_extract,
        )
        .check(regex_check)
        .udf(),
        Func::new(
            "regexp_extract_all",
            immutable(vec![vec![s(), s()], vec![s(), s(), i()]]),
            Returns::With(|_| Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))))),
            regexp_extract_all,
        )
        .check(regex_check)
        .udf(),
        Func::new("regexp_replace", sig::strings(3), Returns::Fixed(DataType::Utf8), regexp_replace)
            .check(regex_check)
            .udf(),
        Func::new("regexp", sig::strings(2), Returns::Fixed(DataType::Boolean), regexp).check(regex_check).udf(),
        Func::new("regexp_substr", sig::strings(2), Returns::Fixed(DataType::Utf8), regexp_substr)
            .check(regex_check)
            .udf(),
        Func::new("left", sig::args(vec![s(), i()]), Returns::Fixed(DataType::Utf8), left).udf(),
        Func::new("right", sig::args(vec![s(), i()]), Returns::Fixed(DataType::Utf8), right).udf(),
        Func::new(
            "locate",
            immutable(vec![vec![s(), s()], vec![s(), s(), i()]]),
            Returns::Fixed(DataType::Int32),
            locate,
        )
        .udf(),
        Func::new("chr", sig::args(vec![i()]), Returns::Fixed(DataType::Utf8), chr).udf(),
        Func::new("url_encode", sig::strings(1), Returns::Fixed(DataType::Utf8), url_encode).udf(),
        Func::new("url_decode", sig::strings(1), Returns::Fixed(DataType::Utf8), url_decode).udf(),
        Func::new(
            "parse_url",
            immutable(vec![vec![s(), s()], vec![s(), s(), s()]]),
            Returns::Fixed(DataType::Utf8),
            parse_url,
        )
        .udf(),
        Func::new(
            "startswith",
            immutable(vec![vec![s(), s()], vec![sig::bytes(), sig::bytes()]]),
            Returns::Fixed(DataType::Boolean),
            startswith,
        )
        .udf(),
        Func::new(
            "endswith",
            immutable(vec![vec![s(), s()], vec![sig::bytes(), sig::bytes()]]),
            Returns::Fixed(DataType::Boolean),
            endswith,
        )
        .udf(),
        Func::new(
            "split",
            sig::strings(2),
            Returns::With(|_| Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))))),
            split,
        )
        .udf(),
        Func::new("lpad", sig::args(vec![s(), i(), s()]), Returns::Fixed(DataType::Utf8), lpad).udf(),
        Func::new("rpad", sig::args(vec![s(), i(), s()]), Returns::Fixed(DataType::Utf8), rpad).udf(),
        Func::new("elt", Signature::variadic_any(Volatility::Immutable), Returns::With(elt_type), elt).udf(),
        Func::new(
            "substr",
            immutable(vec![vec![s(), i()], vec![s(), i(), i()]]),
            Returns::Fixed(DataType::Utf8),
            substr,
        )
        .alias("substring")
        .udf(),
        Func::new(
            "similar_to",
            immutable(vec![vec![s(), s()], vec![s(), s(), s()]]),
            Returns::Fixed(DataType::Boolean),
            similar_to,
        )
        .check(|lits| match (lits.get(1).copied().flatten(), lits.get(2).copied().flatten()) {
            (Some(p), e) => match (p.try_as_str(), e.map(|e| e.try_as_str())) {
                (Some(Some(p)), None | Some(Some(_))) => {
                    let escape = e.and_then(|e| e.try_as_str()).flatten();
                    similar_regex(p, escape).map(|_| ())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        })
        .udf(),
        Func::new("regexp_count", sig::strings(2), Returns::Fixed(DataType::Int32), regexp_count)
            .check(regex_check)
            .udf(),
        Func::new("regexp_instr", sig::strings(2), Returns::Fixed(DataType::Int32), regexp_instr)
            .check(regex_check)
            .udf(),
    ]
}

fn strings_out(call: &Call, mut f: impl FnMut(usize, &mut String) -> Result<bool>) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(call.rows, call.rows * 8);
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

// ---------------------------------------------------------------------------------------------
// Base64 and charsets

/// Java's basic Base64 decoder: padding optional, nothing outside the alphabet.
const JAVA_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn to_base64(call: &Call) -> Result<ArrayRef> {
    let input = call.bytes(0)?;
    strings_out(call, |row, out| {
        let Some(b) = input.get(row) else { return Ok(false) };
        STANDARD.encode_string(b, out);
        Ok(true)
    })
}

/// FROM_BASE64 → STRING; text that is not Base64 stops the job, as in Flink (Java throws).
fn from_base64(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    strings_out(call, |row, out| {
        let Some(s) = input.get(row) else { return Ok(false) };
        let bytes = JAVA_BASE64.decode(s).map_err(|e| call.error(format!("'{}' is not Base64: {e}", shorten(s))))?;
        out.push_str(&String::from_utf8_lossy(&bytes));
        Ok(true)
    })
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Charset {
    Ascii,
    Latin1,
    Utf8,
    Utf16Be,
    Utf16Le,
    /// UTF-16 with a byte-order mark: written big-endian with `FE FF`, read by its mark.
    Utf16,
}

fn charset(name: &str) -> Result<Charset, String> {
    Ok(match name.trim().to_ascii_uppercase().replace('_', "-").as_str() {
        "US-ASCII" | "ASCII" => Charset::Ascii,
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" => Charset::Latin1,
        "UTF-8" | "UTF8" => Charset::Utf8,
        "UTF-16BE" => Charset::Utf16Be,
        "UTF-16LE" => Charset::Utf16Le,
        "UTF-16" => Charset::Utf16,
        _ => {
            return Err(format!(
                "unsupported character set '{name}'; use one of 'US-ASCII', 'ISO-8859-1', 'UTF-8', 'UTF-16BE', 'UTF-16LE', 'UTF-16'"
            ))
        }
    })
}

fn check_charset(lit: Option<&Option<&ScalarValue>>) -> std::result::Result<(), String> {
    match lit.copied().flatten().and_then(|v| v.try_as_str()).flatten() {
        Some(name) => charset(name).map(|_| ()),
        None => Ok(()),
    }
}

/// ENCODE(string, charset) → BYTES; characters the charset cannot hold become `?`, as in Java.
fn encode(call: &Call) -> Result<ArrayRef> {
    let (input, names) = (call.str(0)?, call.str(1)?);
    let mut out = BinaryBuilder::with_capacity(call.rows, call.rows * 8);
    let mut buf = Vec::new();
    for row in 0..call.rows {
        let (Some(s), Some(name)) = (input.get(row), names.get(row)) else {
            out.append_null();
            continue;
        };
        buf.clear();
        match charset(name).map_err(|e| call.error(e))? {
            Charset::Utf8 => buf.extend_from_slice(s.as_bytes()),
            Charset::Ascii => buf.extend(s.chars().map(|c| if c.is_ascii() { c as u8 } else { b'?' })),
            Charset::Latin1 => buf.extend(s.chars().map(|c| u8::try_from(c as u32).unwrap_or(b'?'))),
            Charset::Utf16Be => buf.extend(s.encode_utf16().flat_map(u16::to_be_bytes)),
            Charset::Utf16 => {
                buf.extend_from_slice(&[0xFE, 0xFF]);
                buf.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
            }
            Charset::Utf16Le => buf.extend(s.encode_utf16().flat_map(u16::to_le_bytes)),
        }
        out.append_value(&buf);
    }
    Ok(Arc::new(out.finish()))
}

/// DECODE(bytes, charset) → STRING; bytes that are not valid in the charset become U+FFFD.
fn decode(call: &Call) -> Result<ArrayRef> {
    let (input, names) = (call.bytes(0)?, call.str(1)?);
    strings_out(call, |row, out| {
        let (Some(b), Some(name)) = (input.get(row), names.get(row)) else { return Ok(false) };
        match charset(name).map_err(|e| call.error(e))? {
            Charset::Utf8 => out.push_str(&String::from_utf8_lossy(b)),
            Charset::Ascii => out.extend(b.iter().map(|&x| if x.is_ascii() { x as char } else { '\u{FFFD}' })),
            Charset::Latin1 => out.extend(b.iter().map(|&x| x as char)),
            cs => {
                let (body, little) = match (cs, b) {
                    (Charset::Utf16, [0xFF, 0xFE, rest @ ..]) => (rest, true),
                    (Charset::Utf16, [0xFE, 0xFF, rest @ ..]) => (rest, false),
                    (Charset::Utf16Le, _) => (b, true),
                    _ => (b, false),
                };
                let units = body.chunks(2).map(|p| match p {
                    [a, b] if little => u16::from_le_bytes([*a, *b]),
                    [a, b] => u16::from_be_bytes([*a, *b]),
                    _ => 0xFFFD,
                });
                out.extend(char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')));
            }
        }
        Ok(true)
    })
}

// ---------------------------------------------------------------------------------------------
// Concatenation and splitting

/// CONCAT: NULL when any argument is NULL (DataFusion's skips NULLs).
fn concat(call: &Call) -> Result<ArrayRef> {
    let arrays = (0..call.arg_count())
        .map(|i| cast(&call.array(i)?, &DataType::Utf8).map_err(Into::into))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let strs = arrays.iter().map(|a| Ok(StrArg::Utf8(as_string_array(a)?))).collect::<Result<Vec<StrArg>>>()?;
    strings_out(call, |row, out| {
        for s in &strs {
            match s.get(row) {
                Some(v) => out.push_str(v),
                None => return Ok(false),
            }
        }
        Ok(true)
    })
}

/// SPLIT_INDEX(string, separator, index): the index-th (0-based) piece, NULL when the index is
/// negative or past the end. An empty separator splits on whitespace, an empty string has no
/// pieces (Apache Commons' `splitByWholeSeparatorPreserveAllTokens`, which Flink uses). The
/// separator may be given as a character code 1–255.
fn split_index(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let index = call.int(2)?;
    let by_code = call.arg_type(1) == DataType::Int64;
    let (sep_str, sep_code) = if by_code { (None, Some(call.int(1)?)) } else { (Some(call.str(1)?), None) };
    strings_out(call, |row, out| {
        let (Some(s), Some(idx)) = (input.get(row), index.get(row)) else { return Ok(false) };
        let Ok(idx) = usize::try_from(idx) else { return Ok(false) };
        if s.is_empty() {
            return Ok(false);
        }
        let piece = match (&sep_str, &sep_code) {
            (Some(sep), _) => match sep.get(row) {
                None => return Ok(false),
                Some("") => s.split(char::is_whitespace).nth(idx),
                Some(sep) => s.split(sep).nth(idx),
            },
            (_, Some(code)) => match code.get(row).filter(|c| (1..=255).contains(c)) {
                None => return Ok(false),
                Some(c) => s.split(char::from(c as u8)).nth(idx),
            },
            _ => None,
        };
        match piece {
            Some(p) => {
                out.push_str(p);
                Ok(true)
            }
            None => Ok(false),
        }
    })
}

fn map_type() -> DataType {
    let entries = DataType::Struct(
        vec![Field::new("keys", DataType::Utf8, false), Field::new("values", DataType::Utf8, true)].into(),
    );
    DataType::Map(Arc::new(Field::new("entries", entries, false)), false)
}

/// Java's `String.split(regex)`: trailing empty pieces dropped; with `limit` 2, at most two
/// pieces and nothing dropped.
fn java_split<'t>(re: &regex::Regex, s: &'t str, limit2: bool) -> Vec<&'t str> {
    if limit2 {
        return re.splitn(s, 2).collect();
    }
    let mut pieces: Vec<&str> = re.split(s).collect();
    // A zero-width match at the start gives no leading empty piece in Java.
    if pieces.len() > 1 && pieces[0].is_empty() && re.find(s).is_some_and(|m| m.start() == 0 && m.end() == 0) {
        pieces.remove(0);
    }
    while pieces.len() > 1 && pieces.last() == Some(&"") {
        pieces.pop();
    }
    if pieces == [""] && !s.is_empty() {
        pieces.clear();
    }
    pieces
}

/// STR_TO_MAP(text[, pair_delimiter, key_value_delimiter]): both delimiters are regular
/// expressions (defaults `,` and `=`). A pair without the key-value delimiter maps its text to
/// NULL; a repeated key keeps its first position and its last value (Flink builds a Java
/// `HashMap`, whose printed order is arbitrary; here it is the text's order).
fn str_to_map(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    let pair_delims = call.str_or(1, ",")?;
    let kv_delims = call.str_or(2, "=")?;
    let (mut pair_re, mut kv_re) = (Regexes::default(), Regexes::default());
    let mut out = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for row in 0..call.rows {
        let (Some(s), Some(pd), Some(kd)) = (input.get(row), pair_delims.get(row), kv_delims.get(row)) else {
            out.append(false)?;
            continue;
        };
        let mut entries: Vec<(&str, Option<&str>)> = Vec::new();
        if !s.is_empty() {
            let pair_re = pair_re.get(pd).map_err(|e| call.error(e))?;
            let kv_re = kv_re.get(kd).map_err(|e| call.error(e))?;
            for pair in java_split(pair_re, s, false) {
                let mut kv = java_split(kv_re, pair, true).into_iter();
                let (key, value) = match (kv.next(), kv.next()) {
                    (Some(k), Some(v)) => (k, Some(v)),
                    _ => (pair, None),
                };
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some(e) => e.1 = value,
                    None => entries.push((key, value)),
                }
            }
        }
        for (k, v) in entries {
            out.keys().append_value(k);
            out.values().append_option(v);
        }
        out.append(true)?;
    }
    Ok(Arc::new(out.finish()))
}

/// SPLIT(string, delimiter) → ARRAY<STRING>: every piece, empty ones included; an empty
/// delimiter splits into characters.
fn split(call: &Call) -> Result<ArrayRef> {
    let (input, delims) = (call.str(0)?, call.str(1)?);
    let mut out = ListBuilder::new(StringBuilder::new());
    for row in 0..call.rows {
        let (Some(s), Some(d)) = (input.get(row), delims.get(row)) else {
            out.append(false);
            continue;
        };
        if d.is_empty() {
            let mut buf = [0u8; 4];
            for c in s.chars() {
                out.values().append_value(c.encode_utf8(&mut buf));
            }
        } else {
            for piece in s.split(d) {
                out.values().append_value(piece);
            }
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

// ---------------------------------------------------------------------------------------------
// Regular expressions (Java syntax, see crate::regex). A pattern given per row that does not
// compile gives NULL (FALSE for REGEXP), as in Flink; a literal one fails at planning.

fn regexp_extract(call: &Call) -> Result<ArrayRef> {
    let (input, patterns) = (call.str(0)?, call.str(1)?);
    let groups = if call.arg_count() > 2 { Some(call.int(2)?) } else { None };
    let mut cache = Regexes::default();
    strings_out(call, |row, out| {
        let (Some(s), Some(p)) = (input.get(row), patterns.get(row)) else { return Ok(false) };
        let group = match &groups {
            Some(g) => match g.get(row) {
                Some(g) => g,
                None => return Ok(false),
            },
            None => 0,
        };
        let (Ok(re), Ok(group)) = (cache.get(p), usize::try_from(group)) else { return Ok(false) };
        match re.captures(s).and_then(|c| c.get(group)) {
            Some(m) => {
                out.push_str(m.as_str());
                Ok(true)
            }
            None => Ok(false),
        }
    })
}

fn regexp_extract_all(call: &Call) -> Result<ArrayRef> {
    let (input, patterns) = (call.str(0)?, call.str(1)?);
    let groups = if call.arg_count() > 2 { Some(call.int(2)?) } else { None };
    let mut cache = Regexes::default();
    let mut out = ListBuilder::new(StringBuilder::new());
    for row in 0..call.rows {
        let group = match &groups {
            Some(g) => g.get(row),
            None => Some(1),
        };
        let (Some(s), Some(p), Some(group)) = (input.get(row), patterns.get(row), group) else {
            out.append(false);
            continue;
        };
        let (re, group) = match (cache.get(p), usize::try_from(group)) {
            (Ok(re), Ok(g)) if g < re.captures_len() => (re, g),
            _ => {
                out.append(false);
                continue;
            }
        };
        for caps in re.captures_iter(s) {
            out.values().append_option(caps.get(group).map(|m| m.as_str()));
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

/// REGEXP_REPLACE: every match replaced by the replacement taken literally (Flink quotes it, so
/// `$1` is not a group reference).
fn regexp_replace(call: &Call) -> Result<ArrayRef> {
    let (input, patterns, replacements) = (call.str(0)?, call.str(1)?, call.str(2)?);
    let mut cache = Regexes::default();
    strings_out(call, |row, out| {
        let (Some(s), Some(p), Some(r)) = (input.get(row), patterns.get(row), replacements.get(row)) else {
            return Ok(false);
        };
        let Ok(re) = cache.get(p) else { return Ok(false) };
        out.push_str(&re.replace_all(s, NoExpand(r)));
        Ok(true)
    })
}

fn regexp(call: &Call) -> Result<ArrayRef> {
    let (input, patterns) = (call.str(0)?, call.str(1)?);
    let mut cache = Regexes::default();
    let mut out = BooleanBuilder::with_capacity(call.rows);
    for row in 0..call.rows {
        let (Some(s), Some(p)) = (input.get(row), patterns.get(row)) else {
            out.append_null();
            continue;
        };
        out.append_value(!p.is_empty() && cache.get(p).is_ok_and(|re| re.is_match(s)));
    }
    Ok(Arc::new(out.finish()))
}

fn regexp_substr(call: &Call) -> Result<ArrayRef> {
    let (input, patterns) = (call.str(0)?, call.str(1)?);
    let mut cache = Regexes::default();
    strings_out(call, |row, out| {
        let (Some(s), Some(p)) = (input.get(row), patterns.get(row)) else { return Ok(false) };
        match cache.get(p).ok().and_then(|re| re.find(s)) {
            Some(m) => {
                out.push_str(m.as_str());
                Ok(true)
            }
            None => Ok(false),
        }
    })
}

fn regex_ints(call: &Call, f: impl Fn(&regex::Regex, &str) -> usize) -> Result<ArrayRef> {
    let (input, patterns) = (call.str(0)?, call.str(1)?);
    let mut cache = Regexes::default();
    let mut out = Int32Builder::with_capacity(call.rows);
    for row in 0..call.rows {
        let (Some(s), Some(p)) = (input.get(row), patterns.get(row)) else {
            out.append_null();
            continue;
        };
        match cache.get(p) {
            Ok(re) => out.append_value(i32::try_from(f(re, s)).unwrap_or(i32::MAX)),
            Err(_) => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// REGEXP_COUNT(str, regex): the number of matches.
fn regexp_count(call: &Call) -> Result<ArrayRef> {
    regex_ints(call, |re, s| re.find_iter(s).count())
}

/// REGEXP_INSTR(str, regex): 1-based character position of the first match, 0 when none.
fn regexp_instr(call: &Call) -> Result<ArrayRef> {
    regex_ints(call, |re, s| re.find(s).map_or(0, |m| s[..m.start()].chars().count() + 1))
}

/// A SQL `SIMILAR TO` pattern as an anchored regular expression: `%` is any text, `_` any
/// character, `| * + ? {m,n} ( ) [ ]` keep their regex meaning, everything else is literal; the
/// escape character makes the next character literal.
fn similar_regex(pattern: &str, escape: Option<&str>) -> Result<regex::Regex, String> {
    let escape = match escape {
        None => None,
        Some(e) => {
            let mut chars = e.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => return Err(format!("the ESCAPE must be one character, got '{e}'")),
            }
        }
    };
    let mut out = String::from("(?s)^(?:");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => out.push_str(&regex::escape(&next.to_string())),
                None => return Err(format!("SIMILAR TO pattern '{pattern}' ends with its escape character")),
            }
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '|' | '*' | '+' | '?' | '{' | '}' | '(' | ')' | '[' | ']' | ',' | '-' | '^' => out.push(c),
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push_str(")$");
    regex::Regex::new(&out).map_err(|e| format!("invalid SIMILAR TO pattern '{pattern}': {e}"))
}

/// `s SIMILAR TO pattern [ESCAPE e]`.
fn similar_to(call: &Call) -> Result<ArrayRef> {
    let (input, patterns) = (call.str(0)?, call.str(1)?);
    let escapes = if call.arg_count() > 2 { Some(call.str(2)?) } else { None };
    let mut last: Option<(String, Option<String>, regex::Regex)> = None;
    let mut out = BooleanBuilder::with_capacity(call.rows);
    for row in 0..call.rows {
        let escape = match &escapes {
            Some(e) => match e.get(row) {
                Some(e) => Some(e),
                None => {
                    out.append_null();
                    continue;
                }
            },
            None => None,
        };
        let (Some(s), Some(p)) = (input.get(row), patterns.get(row)) else {
            out.append_null();
            continue;
        };
        if !matches!(&last, Some((lp, le, _)) if lp == p && le.as_deref() == escape) {
            let re = similar_regex(p, escape).map_err(|e| call.error(e))?;
            last = Some((p.to_string(), escape.map(str::to_string), re));
        }
        out.append_option(last.as_ref().map(|(_, _, re)| re.is_match(s)));
    }
    Ok(Arc::new(out.finish()))
}

// ---------------------------------------------------------------------------------------------
// Substrings and characters

/// SUBSTRING / SUBSTR(s, pos[, len]): Flink's positions: 1 is the first character, 0 counts as
/// 1, a negative position counts from the end; a negative length gives NULL.
fn substr(call: &Call) -> Result<ArrayRef> {
    let (input, positions) = (call.str(0)?, call.int(1)?);
    let lengths = if call.arg_count() > 2 { Some(call.int(2)?) } else { None };
    strings_out(call, |row, out| {
        let len = match &lengths {
            Some(l) => match l.get(row) {
                Some(l) => l,
                None => return Ok(false),
            },
            None => i64::MAX,
        };
        let (Some(s), Some(pos)) = (input.get(row), positions.get(row)) else { return Ok(false) };
        if len < 0 {
            return Ok(false);
        }
        let chars = s.chars().count() as i64;
        let start = match pos {
            p if p > 0 => p - 1,
            p if p < 0 => chars + p,
            _ => 0,
        };
        if start < 0 || start >= chars {
            return Ok(true);
        }
        out.extend(s.chars().skip(start as usize).take(len.min(chars - start) as usize));
        Ok(true)
    })
}

/// LEFT / RIGHT: a negative count gives the empty string (DataFusion's cuts from the other end).
fn left(call: &Call) -> Result<ArrayRef> {
    take_chars(call, false)
}

fn right(call: &Call) -> Result<ArrayRef> {
    take_chars(call, true)
}

fn take_chars(call: &Call, from_end: bool) -> Result<ArrayRef> {
    let (input, counts) = (call.str(0)?, call.int(1)?);
    strings_out(call, |row, out| {
        let (Some(s), Some(n)) = (input.get(row), counts.get(row)) else { return Ok(false) };
        let n = usize::try_from(n).unwrap_or(0);
        if from_end {
            let len = s.chars().count();
            out.extend(s.chars().skip(len.saturating_sub(n)));
        } else {
            out.extend(s.chars().take(n));
        }
        Ok(true)
    })
}

/// LOCATE(needle, haystack[, start]): 1-based position of the first occurrence at or after
/// `start`, 0 when there is none.
fn locate(call: &Call) -> Result<ArrayRef> {
    let (needles, hays) = (call.str(0)?, call.str(1)?);
    let starts = if call.arg_count() > 2 { Some(call.int(2)?) } else { None };
    let mut out = Int32Builder::with_capacity(call.rows);
    for row in 0..call.rows {
        let start = match &starts {
            Some(s) => s.get(row),
            None => Some(1),
        };
        let (Some(needle), Some(hay), Some(start)) = (needles.get(row), hays.get(row), start) else {
            out.append_null();
            continue;
        };
        let skip = usize::try_from(start.saturating_sub(1)).unwrap_or(0);
        let offset = hay.char_indices().nth(skip).map(|(i, _)| i);
        let pos = match offset {
            Some(byte) => hay[byte..].find(needle).map(|i| skip + hay[byte..byte + i].chars().count() + 1),
            None if needle.is_empty() => Some(hay.chars().count() + 1),
            None => None,
        };
        out.append_value(i32::try_from(pos.unwrap_or(0)).unwrap_or(i32::MAX));
    }
    Ok(Arc::new(out.finish()))
}

/// CHR(n): the character of `n & 0xFF` (Flink's rule: CHR(353) = 'a'); negative gives ''.
fn chr(call: &Call) -> Result<ArrayRef> {
    let codes = call.int(0)?;
    strings_out(call, |row, out| {
        let Some(n) = codes.get(row) else { return Ok(false) };
        if n >= 0 {
            out.push(char::from((n & 0xFF) as u8));
        }
        Ok(true)
    })
}

/// LPAD / RPAD: NULL for a negative length or an empty pad; a longer string is cut.
fn lpad(call: &Call) -> Result<ArrayRef> {
    pad(call, true)
}

fn rpad(call: &Call) -> Result<ArrayRef> {
    pad(call, false)
}

fn pad(call: &Call, leading: bool) -> Result<ArrayRef> {
    let (input, lens, pads) = (call.str(0)?, call.int(1)?, call.str(2)?);
    strings_out(call, |row, out| {
        let (Some(s), Some(len), Some(p)) = (input.get(row), lens.get(row), pads.get(row)) else {
            return Ok(false);
        };
        let Ok(len) = usize::try_from(len) else { return Ok(false) };
        if p.is_empty() {
            return Ok(false);
        }
        let have = s.chars().count();
        let fill = p.chars().cycle().take(len.saturating_sub(have));
        if leading {
            out.extend(fill);
            out.extend(s.chars().take(len));
        } else {
            out.extend(s.chars().take(len));
            out.extend(fill);
        }
        Ok(true)
    })
}

fn starts_or_ends(call: &Call, ends: bool) -> Result<ArrayRef> {
    let (a, b) = (call.bytes(0)?, call.bytes(1)?);
    let mut out = BooleanBuilder::with_capacity(call.rows);
    for row in 0..call.rows {
        out.append_option(match (a.get(row), b.get(row)) {
            (Some(x), Some(y)) => Some(if ends { x.ends_with(y) } else { x.starts_with(y) }),
            _ => None,
        });
    }
    Ok(Arc::new(out.finish()))
}

fn startswith(call: &Call) -> Result<ArrayRef> {
    starts_or_ends(call, false)
}

fn endswith(call: &Call) -> Result<ArrayRef> {
    starts_or_ends(call, true)
}

/// ELT(index, e1, e2, …): the index-th (1-based) expression; NULL when out of range.
fn elt_type(types: &[DataType]) -> Result<DataType> {
    if types.len() < 2 {
        return datafusion::common::plan_err!("ELT expects an index and at least one expression");
    }
    if !types[0].is_integer() && types[0] != DataType::Null {
        return datafusion::common::plan_err!("ELT: the index must be an integer, got {}", types[0]);
    }
    let binary = types[1..]
        .iter()
        .all(|t| matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null))
        && types[1..].iter().any(|t| t != &DataType::Null);
    Ok(if binary { DataType::Binary } else { DataType::Utf8 })
}

fn elt(call: &Call) -> Result<ArrayRef> {
    let index = cast(&call.array(0)?, &DataType::Int64)?;
    let index = as_int64_array(&index)?;
    let values = (1..call.arg_count())
        .map(|i| cast(&call.array(i)?, call.return_type).map_err(Into::into))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let picks: Vec<Option<(usize, usize)>> = (0..call.rows)
        .map(|row| {
            let i = index.is_valid(row).then(|| index.value(row))?;
            let i = usize::try_from(i).ok()?.checked_sub(1)?;
            (i < values.len()).then_some((i, row))
        })
        .collect();
    let refs: Vec<&dyn Array> = values.iter().map(|a| a.as_ref()).collect();
    // Rows without a pick take a NULL from an all-NULL column appended at the end.
    let nulls = datafusion::arrow::array::new_null_array(call.return_type, 1);
    let mut all = refs;
    all.push(nulls.as_ref());
    let indices: Vec<(usize, usize)> = picks.into_iter().map(|p| p.unwrap_or((values.len(), 0))).collect();
    Ok(datafusion::arrow::compute::interleave(&all, &indices)?)
}

// ---------------------------------------------------------------------------------------------
// URLs

/// URL_ENCODE: `application/x-www-form-urlencoded` in UTF-8, as Java's `URLEncoder`.
fn url_encode(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    strings_out(call, |row, out| {
        let Some(s) = input.get(row) else { return Ok(false) };
        for b in s.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        Ok(true)
    })
}

/// URL_DECODE: `+` is a space, `%XX` a byte; an invalid escape gives NULL.
fn url_decode(call: &Call) -> Result<ArrayRef> {
    let input = call.str(0)?;
    strings_out(call, |row, out| {
        let Some(s) = input.get(row) else { return Ok(false) };
        let b = s.as_bytes();
        let mut bytes = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => bytes.push(b' '),
                b'%' => {
                    let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => bytes.push(v),
                        None => return Ok(false),
                    }
                    i += 2;
                }
                other => bytes.push(other),
            }
            i += 1;
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        Ok(true)
    })
}

/// The parts of a URL as `java.net.URL` sees them.
struct Url<'u> {
    protocol: &'u str,
    authority: Option<&'u str>,
    path: &'u str,
    query: Option<&'u str>,
    reference: Option<&'u str>,
}

/// Java's `URL` knows these protocols; any other is a malformed URL (NULL).
const PROTOCOLS: &[&str] = &["http", "https", "ftp", "file", "jar", "mailto"];

fn parse_url_parts(url: &str) -> Option<Url<'_>> {
    let (protocol, rest) = url.split_once(':')?;
    if !PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(protocol)) {
        return None;
    }
    let (rest, reference) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), ""),
        },
        None => (None, rest),
    };
    Some(Url { protocol, authority, path, query, reference })
}

/// PARSE_URL(url, part[, key]): HOST, PATH, QUERY, REF, PROTOCOL, FILE, AUTHORITY, USERINFO;
/// with a key, the value of that query parameter. NULL for an unknown part or a malformed URL.
fn parse_url(call: &Call) -> Result<ArrayRef> {
    let (urls, parts) = (call.str(0)?, call.str(1)?);
    let keys = if call.arg_count() > 2 { Some(call.str(2)?) } else { None };
    strings_out(call, |row, out| {
        let (Some(url), Some(part)) = (urls.get(row), parts.get(row)) else { return Ok(false) };
        let Some(u) = parse_url_parts(url) else { return Ok(false) };
        let user_info = u.authority.and_then(|a| a.rsplit_once('@')).map(|(ui, _)| ui);
        let host = u.authority.map(|a| a.rsplit_once('@').map_or(a, |(_, h)| h)).map(|h| {
            // An IPv6 literal keeps its brackets; a port is cut.
            match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => &h[..i],
                _ => h,
            }
        });
        let value: Option<String> = match &keys {
            Some(keys) => {
                let Some(key) = keys.get(row) else { return Ok(false) };
                if part != "QUERY" {
                    None
                } else {
                    u.query.and_then(|q| {
                        q.split('&')
                            .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                            .map(str::to_string)
                    })
                }
            }
            None => match part {
                "HOST" => Some(host.unwrap_or("").to_string()),
                "PATH" => Some(u.path.to_string()),
                "QUERY" => u.query.map(str::to_string),
                "REF" => u.reference.map(str::to_string),
                "PROTOCOL" => Some(u.protocol.to_string()),
                "FILE" => Some(match u.query {
                    Some(q) => format!("{}?{q}", u.path),
                    None => u.path.to_string(),
                }),
                "AUTHORITY" => u.authority.map(str::to_string),
                "USERINFO" => user_info.map(str::to_string),
                _ => None,
            },
        };
        match value {
            Some(v) => {
                out.push_str(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_split_rules() {
        let comma = compile(",").expect("re");
        assert_eq!(java_split(&comma, "a,b,,", false), vec!["a", "b"]);
        assert_eq!(java_split(&comma, ",a", false), vec!["", "a"]);
        assert_eq!(java_split(&comma, "a=b=c", false), vec!["a=b=c"]);
        let eq = compile("=").expect("re");
        assert_eq!(java_split(&eq, "a=b=c", true), vec!["a", "b=c"]);
        assert_eq!(java_split(&eq, "a=", true), vec!["a", ""]);
    }

    #[test]
    fn similar_to_patterns() {
        let m = |p: &str, e: Option<&str>, s: &str| similar_regex(p, e).expect("pattern").is_match(s);
        assert!(m("a_c", None, "abc"));
        assert!(!m("a.c", None, "abc"));
        assert!(m("a.c", None, "a.c"));
        assert!(m("(ab|cd)%", None, "cdxx"));
        assert!(!m("ab", None, "abc"));
        assert!(m("a!%", Some("!"), "a%"));
        assert!(!m("a!%", Some("!"), "ab"));
        assert!(similar_regex("a!", Some("!")).is_err());
    }

    #[test]
    fn url_parts() {
        let u = parse_url_parts("http://user:pw@facebook.com:8080/path1/p.php?k1=v1&k2=v2#Ref1").expect("url");
        assert_eq!(u.protocol, "http");
        assert_eq!(u.authority, Some("user:pw@facebook.com:8080"));
        assert_eq!(u.path, "/path1/p.php");
        assert_eq!(u.query, Some("k1=v1&k2=v2"));
        assert_eq!(u.reference, Some("Ref1"));
        assert!(parse_url_parts("foo://x").is_none());
    }
}
