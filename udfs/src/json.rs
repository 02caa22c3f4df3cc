//! `json_value`, `json_query` and `json_exists` with Flink's default ON EMPTY / ON ERROR behaviour.
//!
//! Documents are not parsed into a tree: one pass over the bytes validates the whole document
//! (Flink answers NULL/FALSE for invalid JSON even when the path was found before the error) and
//! records the byte range of the value at the path. Nothing is allocated per row; the container
//! stack and the key buffer are reused across the batch, and results are written straight into
//! the Arrow builder. The walk is iterative, so deeply nested input cannot overflow the stack.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, BooleanBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::types::logical_string;
use datafusion::common::utils::take_function_args;
use datafusion::common::{exec_datafusion_err, internal_err, plan_err, Result};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_OTHER;
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    TypeSignatureClass, Volatility,
};

use crate::{finish, StrArg};

const SUPPORTED_PATHS: &str = "Supported: '$', '.key', '.\"key\"', '['key']', '[\"key\"]', \
     '[N]' with N >= 0, optionally prefixed by 'lax' or 'strict'";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum JsonKind {
    Value,
    Query,
    Exists,
}

impl JsonKind {
    fn name(self) -> &'static str {
        match self {
            Self::Value => "json_value",
            Self::Query => "json_query",
            Self::Exists => "json_exists",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct JsonFunc {
    kind: JsonKind,
    signature: Signature,
}

impl JsonFunc {
    pub(crate) fn new(kind: JsonKind) -> Self {
        let string = Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        Self { kind, signature: Signature::coercible(vec![string.clone(), string], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonFunc {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            JsonKind::Value | JsonKind::Query => DataType::Utf8,
            JsonKind::Exists => DataType::Boolean,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // A literal path is checked here so a typo fails the job when it is planned, not when the
        // first change event arrives hours later.
        if let Some(Some(path)) = args.scalar_arguments.get(1) {
            if let Some(Some(path)) = path.try_as_str() {
                if let Err(reason) = parse_path(path) {
                    return plan_err!("{}", path_error(self.name(), path, &reason));
                }
            }
        }
        let data_type = self.return_type(&[])?;
        Ok(Arc::new(Field::new(self.name(), data_type, true)))
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let [json, path] = take_function_args(name, args.args.iter())?;
        let json = StrArg::new(name, json)?;
        let path = StrArg::new(name, path)?;
        let scalar = json.is_scalar() && path.is_scalar();
        let rows = if scalar { 1 } else { args.number_rows };
        let array = match self.kind {
            JsonKind::Value | JsonKind::Query => {
                let mut out = StringBuilder::with_capacity(rows, json.data_len().min(1 << 20));
                eval(self.kind, json, path, rows, |_, doc, found| {
                    write_string_result(self.kind, &mut out, doc, found)
                })?;
                Arc::new(out.finish()) as ArrayRef
            }
            JsonKind::Exists => {
                let mut out = BooleanBuilder::with_capacity(rows);
                eval(self.kind, json, path, rows, |row, _, found| {
                    match (row, found) {
                        (Row::Null, _) => out.append_null(),
                        (Row::Invalid, _) => out.append_value(false),
                        (Row::Valid, found) => out.append_value(found.is_some()),
                    }
                    Ok(())
                })?;
                Arc::new(out.finish()) as ArrayRef
            }
        };
        finish(array, scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: [OnceLock<Documentation>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let (slot, description, example) = match self.kind {
            JsonKind::Value => (
                &DOCS[0],
                "Flink JSON_VALUE: the scalar at the JSON path as a string (NULL if missing, \
                 JSON null, an object/array, or invalid JSON).",
                "json_value('{\"a\":{\"b\":[1,2]}}', '$.a.b[1]')",
            ),
            JsonKind::Query => (
                &DOCS[1],
                "Flink JSON_QUERY: the object or array at the JSON path as compact JSON (NULL if \
                 missing, a scalar, or invalid JSON).",
                "json_query('{\"a\":{\"b\":[1,2]}}', '$.a')",
            ),
            JsonKind::Exists => (
                &DOCS[2],
                "Flink JSON_EXISTS: whether the JSON path exists (true even for JSON null; false \
                 for invalid JSON).",
                "json_exists('{\"a\":null}', '$.a')",
            ),
        };
        Some(slot.get_or_init(|| {
            Documentation::builder(DOC_SECTION_OTHER, description, example)
                .with_argument("json", "JSON text (string expression).")
                .with_argument("path", SUPPORTED_PATHS)
                .build()
        }))
    }
}

/// What became of one row, so each function can apply its own ON ERROR behaviour.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Row {
    Null,
    Invalid,
    Valid,
}

fn eval<'a>(
    kind: JsonKind,
    json: StrArg<'a>,
    path: StrArg<'a>,
    rows: usize,
    mut emit: impl FnMut(Row, &'a str, Option<Range<usize>>) -> Result<()>,
) -> Result<()> {
    let name = kind.name();
    let mut walker = Walker::default();
    let parse = |p: &'a str| parse_path(p).map_err(|r| exec_datafusion_err!("{}", path_error(name, p, &r)));

    // Constant path: parsed and validated once per batch, even if every document is NULL.
    let constant_steps = match path {
        StrArg::Scalar(Some(p)) => Some(parse(p)?),
        _ => None,
    };
    // Path column: consecutive rows usually repeat the same path, so keep the last parse.
    let mut cached: Option<(&'a str, Vec<Step<'a>>)> = None;

    for i in 0..rows {
        let (Some(doc), Some(p)) = (json.get(i), path.get(i)) else {
            emit(Row::Null, "", None)?;
            continue;
        };
        let steps: &[Step<'a>] = match &constant_steps {
            Some(steps) => steps,
            None => {
                if cached.as_ref().is_none_or(|(raw, _)| *raw != p) {
                    cached = Some((p, parse(p)?));
                }
                match &cached {
                    Some((_, steps)) => steps,
                    None => return internal_err!("{name}: path cache empty"),
                }
            }
        };
        match walker.find(doc, steps) {
            Ok(found) => emit(Row::Valid, doc, found)?,
            Err(Invalid) => emit(Row::Invalid, doc, None)?,
        }
    }
    Ok(())
}

fn write_string_result(kind: JsonKind, out: &mut StringBuilder, doc: &str, found: Option<Range<usize>>) -> Result<()> {
    let Some(range) = found else {
        out.append_null();
        return Ok(());
    };
    let Some(value) = doc.get(range) else {
        return internal_err!("{}: value range outside the document", kind.name());
    };
    let first = value.as_bytes().first().copied();
    let written = match (kind, first) {
        (JsonKind::Value, Some(b'"')) => {
            let inner = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or_default();
            if inner.contains('\\') {
                unescape_into(inner, out)
            } else {
                out.write_str(inner)
            }
        }
        (JsonKind::Value, Some(b'n' | b'{' | b'['))
        | (JsonKind::Query, Some(b'"' | b'n' | b't' | b'f' | b'-' | b'0'..=b'9')) => {
            out.append_null();
            return Ok(());
        }
        (JsonKind::Value, Some(_)) => out.write_str(value),
        (JsonKind::Query, Some(b'{' | b'[')) => minify_into(value, out),
        _ => return internal_err!("{}: unexpected JSON value {value:?}", kind.name()),
    };
    written.map_err(|e| exec_datafusion_err!("{}: writing result failed: {e}", kind.name()))?;
    out.append_value("");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JSON path

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

fn path_error(function: &str, path: &str, reason: &str) -> String {
    format!("{function}: invalid JSON path '{path}': {reason}. {SUPPORTED_PATHS}")
}

/// Parses the supported JSONPath subset; the error is the reason, without the path itself.
pub(crate) fn parse_path(path: &str) -> std::result::Result<Vec<Step<'_>>, String> {
    let mut s = path.trim();
    for mode in ["lax", "strict"] {
        if s.len() > mode.len()
            && s.as_bytes()[..mode.len()].eq_ignore_ascii_case(mode.as_bytes())
            && s.as_bytes()[mode.len()].is_ascii_whitespace()
        {
            s = s[mode.len()..].trim_start();
            break;
        }
    }
    let Some(mut rest) = s.strip_prefix('$') else {
        return Err("a path must start with '$'".into());
    };
    let mut steps = Vec::new();
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => {
                rest = &rest[1..];
                match rest.chars().next() {
                    // `$.["a.b"]`, `$.['a b']`: Flink's documented spelling of a bracketed key.
                    Some('[') => {}
                    Some('"') => {
                        let (key, after) = quoted(rest)?;
                        steps.push(Step::Key(key));
                        rest = after;
                    }
                    Some('*') => return Err("wildcard '.*' is not supported".into()),
                    Some('.') => return Err("recursive descent '..' is not supported".into()),
                    _ => {
                        let end = rest.find(|c: char| c == '.' || c == '[' || c.is_whitespace()).unwrap_or(rest.len());
                        let key = &rest[..end];
                        if key.is_empty() {
                            return Err("expected a key after '.'".into());
                        }
                        if let Some(bad) = key.chars().find(|c| "]'\"()*?@,:".contains(*c)) {
                            return Err(format!("unexpected '{bad}' in key '{key}'"));
                        }
                        steps.push(Step::Key(Cow::Borrowed(key)));
                        rest = &rest[end..];
                    }
                }
            }
            '[' => {
                let inner = rest[1..].trim_start();
                let (step, after) = match inner.chars().next() {
                    Some('\'' | '"') => {
                        let (key, after) = quoted(inner)?;
                        (Step::Key(key), after)
                    }
                    Some('0'..='9') => {
                        let end = inner.find(|c: char| !c.is_ascii_digit()).unwrap_or(inner.len());
                        let index = inner[..end]
                            .parse::<usize>()
                            .map_err(|_| format!("array index {} is too large", &inner[..end]))?;
                        (Step::Index(index), &inner[end..])
                    }
                    Some('*') => return Err("wildcard '[*]' is not supported".into()),
                    Some('-') => return Err("negative array indexes are not supported".into()),
                    Some('?') => return Err("filter expressions are not supported".into()),
                    Some(c) if c.is_alphabetic() => {
                        return Err("'last' and other keywords in '[...]' are not supported".into())
                    }
                    _ => return Err("expected a quoted key or an index after '['".into()),
                };
                let after = after.trim_start();
                rest = match after.chars().next() {
                    Some(']') => &after[1..],
                    Some(',') => return Err("multiple subscripts '[a, b]' are not supported".into()),
                    Some(':') => return Err("array slices '[a:b]' are not supported".into()),
                    _ => return Err("expected ']'".into()),
                };
                steps.push(step);
            }
            c => return Err(format!("unexpected '{c}' where '.' or '[' was expected")),
        }
    }
    Ok(steps)
}

/// Reads a key quoted with `'` or `"` (the first character of `s`); a backslash escapes the next
/// character. Returns the key and what follows the closing quote.
fn quoted(s: &str) -> std::result::Result<(Cow<'_, str>, &str), String> {
    let mut chars = s.char_indices();
    let Some((_, quote)) = chars.next() else {
        return Err("expected a quoted key".into());
    };
    let mut owned: Option<String> = None;
    let mut start = quote.len_utf8();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            let key = match owned {
                Some(mut o) => {
                    o.push_str(&s[start..i]);
                    Cow::Owned(o)
                }
                None => Cow::Borrowed(&s[start..i]),
            };
            return Ok((key, &s[i + c.len_utf8()..]));
        }
        if c == '\\' {
            let o = owned.get_or_insert_with(String::new);
            o.push_str(&s[start..i]);
            match chars.next() {
                Some((j, escaped)) => {
                    o.push(escaped);
                    start = j + escaped.len_utf8();
                }
                None => break,
            }
        }
    }
    Err(format!("unterminated quoted key {s}"))
}

// ---------------------------------------------------------------------------------------------
// Document walk

/// The document is not valid JSON.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

#[derive(Debug)]
struct Frame {
    object: bool,
    /// This container is the value the path points at, or lies on the way to it.
    on_path: bool,
    /// This container is the value the path points at.
    target: bool,
    /// Index of the current element (arrays only).
    index: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Walker {
    stack: Vec<Frame>,
    /// Decoded object key, used only for keys containing escapes.
    key: String,
}

impl Walker {
    /// Validates `doc` and returns the byte range of the value at `steps`.
    ///
    /// A value is "on the path" when its ancestors matched the first steps; entering an on-path
    /// value discards whatever was found so far, which makes a later duplicate key win.
    pub(crate) fn find(&mut self, doc: &str, steps: &[Step]) -> std::result::Result<Option<Range<usize>>, Invalid> {
        let b = doc.as_bytes();
        self.stack.clear();
        let mut pos = 0;
        let mut found = None;
        let mut target_start = 0;
        let mut on_path = true;
        'value: loop {
            pos = skip_ws(b, pos);
            let depth = self.stack.len();
            let target = on_path && depth == steps.len();
            if on_path {
                found = None;
            }
            if target {
                target_start = pos;
            }
            match b.get(pos) {
                Some(b'{') => {
                    pos = skip_ws(b, pos + 1);
                    if b.get(pos) == Some(&b'}') {
                        pos += 1;
                    } else {
                        self.stack.push(Frame { object: true, on_path, target, index: 0 });
                        (pos, on_path) = self.member(doc, pos, steps)?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    pos = skip_ws(b, pos + 1);
                    if b.get(pos) == Some(&b']') {
                        pos += 1;
                    } else {
                        self.stack.push(Frame { object: false, on_path, target, index: 0 });
                        on_path = on_path && steps.get(depth) == Some(&Step::Index(0));
                        continue 'value;
                    }
                }
                Some(b'"') => pos = string(b, pos)?.end + 1,
                Some(b't') => pos = literal(b, pos, b"true")?,
                Some(b'f') => pos = literal(b, pos, b"false")?,
                Some(b'n') => pos = literal(b, pos, b"null")?,
                Some(b'-' | b'0'..=b'9') => pos = number(b, pos)?,
                _ => return Err(Invalid),
            }
            if target {
                found = Some(target_start..pos);
            }
            // After a complete value: close finished containers until the next element starts.
            loop {
                let depth = self.stack.len().saturating_sub(1);
                let Some(top) = self.stack.last_mut() else {
                    break 'value;
                };
                pos = skip_ws(b, pos);
                match b.get(pos) {
                    Some(b',') if top.object => {
                        (pos, on_path) = self.member(doc, pos + 1, steps)?;
                        continue 'value;
                    }
                    Some(b',') => {
                        top.index += 1;
                        on_path = top.on_path && steps.get(depth) == Some(&Step::Index(top.index));
                        pos += 1;
                        continue 'value;
                    }
                    Some(b'}') if top.object => {}
                    Some(b']') if !top.object => {}
                    _ => return Err(Invalid),
                }
                pos += 1;
                if let Some(frame) = self.stack.pop() {
                    if frame.target {
                        found = Some(target_start..pos);
                    }
                }
            }
        }
        if skip_ws(b, pos) != b.len() {
            return Err(Invalid);
        }
        Ok(found)
    }

    /// Reads `"key" :` at `pos` inside the object on top of the stack; returns the position of
    /// the member's value and whether that value is on the path.
    fn member(&mut self, doc: &str, pos: usize, steps: &[Step]) -> std::result::Result<(usize, bool), Invalid> {
        let b = doc.as_bytes();
        let pos = skip_ws(b, pos);
        if b.get(pos) != Some(&b'"') {
            return Err(Invalid);
        }
        let key = string(b, pos)?;
        let after = skip_ws(b, key.end + 1);
        if b.get(after) != Some(&b':') {
            return Err(Invalid);
        }
        let depth = self.stack.len() - 1;
        let parent_on_path = self.stack.last().is_some_and(|f| f.on_path);
        let on_path = parent_on_path
            && match steps.get(depth) {
                Some(Step::Key(want)) => {
                    let raw = doc.get(key.start..key.end).ok_or(Invalid)?;
                    if raw.contains('\\') {
                        self.key.clear();
                        unescape_into(raw, &mut self.key).map_err(|_| Invalid)?;
                        self.key == *want
                    } else {
                        raw == want
                    }
                }
                _ => false,
            };
        Ok((after + 1, on_path))
    }
}

#[inline]
fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(pos) {
        pos += 1;
    }
    pos
}

/// Validates the string starting with the quote at `pos`; returns the range between the quotes.
fn string(b: &[u8], pos: usize) -> std::result::Result<Range<usize>, Invalid> {
    let start = pos + 1;
    let mut i = start;
    loop {
        match b.get(i) {
            Some(b'"') => return Ok(start..i),
            Some(b'\\') => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = b.get(i + 2..i + 6).ok_or(Invalid)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Invalid);
                    }
                    i += 6;
                }
                _ => return Err(Invalid),
            },
            Some(0x00..=0x1f) | None => return Err(Invalid),
            Some(_) => i += 1,
        }
    }
}

fn literal(b: &[u8], pos: usize, word: &[u8]) -> std::result::Result<usize, Invalid> {
    if b.get(pos..pos + word.len()) == Some(word) {
        Ok(pos + word.len())
    } else {
        Err(Invalid)
    }
}

/// RFC 8259 number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number(b: &[u8], mut pos: usize) -> std::result::Result<usize, Invalid> {
    let digits = |pos: usize| {
        let mut end = pos;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        end
    };
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match b.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = digits(pos),
        _ => return Err(Invalid),
    }
    if b.get(pos) == Some(&b'.') {
        let end = digits(pos + 1);
        if end == pos + 1 {
            return Err(Invalid);
        }
        pos = end;
    }
    if let Some(b'e' | b'E') = b.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = b.get(pos) {
            pos += 1;
        }
        let end = digits(pos);
        if end == pos {
            return Err(Invalid);
        }
        pos = end;
    }
    Ok(pos)
}

/// Writes the text of `s` when it is exactly one JSON string literal (quotes included); false
/// otherwise.
pub(crate) fn unquote_into(s: &str, out: &mut String) -> bool {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'"' {
        return false;
    }
    match string(b, 0) {
        Ok(body) if body.end + 1 == b.len() => s.get(body).is_some_and(|raw| unescape_into(raw, out).is_ok()),
        _ => false,
    }
}

/// Decodes the body of a validated JSON string. A lone UTF-16 surrogate (which JSON allows but
/// UTF-8 cannot hold) becomes U+FFFD.
fn unescape_into(raw: &str, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.write_str(&rest[..i])?;
        let b = rest.as_bytes();
        let (c, used) = match b.get(i + 1) {
            Some(b'"') => ('"', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'/') => ('/', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => {
                let unit = |at: usize| rest.get(at..at + 4).and_then(|h| u32::from_str_radix(h, 16).ok());
                match unit(i + 2) {
                    Some(hi @ 0xD800..=0xDBFF) => {
                        let lo = (rest.get(i + 6..i + 8) == Some("\\u"))
                            .then(|| unit(i + 8))
                            .flatten()
                            .filter(|lo| (0xDC00..=0xDFFF).contains(lo));
                        match lo {
                            Some(lo) => {
                                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                            }
                            None => ('\u{FFFD}', 6),
                        }
                    }
                    Some(u) => (char::from_u32(u).unwrap_or('\u{FFFD}'), 6),
                    None => return Err(std::fmt::Error),
                }
            }
            _ => return Err(std::fmt::Error),
        };
        out.write_char(c)?;
        rest = &rest[i + used..];
    }
    out.write_str(rest)
}

/// Copies a validated JSON value without the insignificant whitespace.
fn minify_into(value: &str, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let b = value.as_bytes();
    let mut run = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b' ' | b'\t' | b'\n' | b'\r' if !in_string => {
                out.write_str(&value[run..i])?;
                run = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.write_str(&value[run..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, BooleanArray, LargeStringArray, StringArray, StringViewArray};
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::ScalarValue;

    fn invoke(kind: JsonKind, json: ColumnarValue, path: ColumnarValue, rows: usize) -> Result<ColumnarValue> {
        let f = JsonFunc::new(kind);
        let arg_fields = [&json, &path].iter().map(|a| Arc::new(Field::new("a", a.data_type(), true))).collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args: vec![json, path],
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", f.return_type(&[])?, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    fn strings(v: ColumnarValue) -> Vec<Option<String>> {
        let ColumnarValue::Array(a) = v else {
            panic!("expected an array, got {v:?}");
        };
        let a = a.as_any().downcast_ref::<StringArray>().expect("Utf8 result");
        a.iter().map(|s| s.map(str::to_string)).collect()
    }

    fn lit(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_string())))
    }

    /// Runs one function on one document and path through the Arrow entry point.
    fn one(kind: JsonKind, doc: &str, path: &str) -> Result<ScalarValue> {
        match invoke(kind, lit(doc), lit(path), 1)? {
            ColumnarValue::Scalar(s) => Ok(s),
            other => panic!("scalar arguments must give a scalar, got {other:?}"),
        }
    }

    fn value(doc: &str, path: &str) -> Option<String> {
        match one(JsonKind::Value, doc, path).expect("json_value") {
            ScalarValue::Utf8(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn query(doc: &str, path: &str) -> Option<String> {
        match one(JsonKind::Query, doc, path).expect("json_query") {
            ScalarValue::Utf8(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn exists(doc: &str, path: &str) -> Option<bool> {
        match one(JsonKind::Exists, doc, path).expect("json_exists") {
            ScalarValue::Boolean(b) => b,
            other => panic!("{other:?}"),
        }
    }

    const DOC: &str = r#" {
        "id": 42, "price": -1.50e+2, "name": "Zoë \"Z\" \u00e9\ud83d\ude00", "ok": true, "no": false,
        "nil": null, "user": {"tags": ["a", {"k": [10, 20]}], "empty": {}, "list": [],
        "a.b": 1, "it's": 2, "sp ace": "x"}, "esc\u0061ped": "yes"
    } "#;

    #[test]
    fn value_scalars_as_text() {
        assert_eq!(value(DOC, "$.id").as_deref(), Some("42"));
        assert_eq!(value(DOC, "$.price").as_deref(), Some("-1.50e+2"));
        assert_eq!(value(DOC, "$.name").as_deref(), Some("Zoë \"Z\" é😀"));
        assert_eq!(value(DOC, "$.ok").as_deref(), Some("true"));
        assert_eq!(value(DOC, "$.no").as_deref(), Some("false"));
        assert_eq!(value(DOC, "$.nil"), None);
        assert_eq!(value(DOC, "$.user.tags[0]").as_deref(), Some("a"));
        assert_eq!(value(DOC, "$.user.tags[1].k[1]").as_deref(), Some("20"));
        assert_eq!(value(DOC, "$['user'][\"tags\"][1]['k'][0]").as_deref(), Some("10"));
        assert_eq!(value(DOC, "$.user['a.b']").as_deref(), Some("1"));
        assert_eq!(value(DOC, "$.user.\"a.b\"").as_deref(), Some("1"));
        assert_eq!(value(DOC, r"$.user['it\'s']").as_deref(), Some("2"));
        assert_eq!(value(DOC, "$.user['sp ace']").as_deref(), Some("x"));
        assert_eq!(value(DOC, "$.escaped").as_deref(), Some("yes"), "escaped key matches");
        assert_eq!(value(DOC, "  lax $.id ").as_deref(), Some("42"));
        assert_eq!(value(DOC, "STRICT $.id").as_deref(), Some("42"));
        assert_eq!(value("\"top\"", "$").as_deref(), Some("top"));
        assert_eq!(value("7", "$").as_deref(), Some("7"));
    }

    #[test]
    fn value_empty_and_error_are_null() {
        for path in [
            "$.missing",
            "$.user",
            "$.user.tags",
            "$.user.tags[5]",
            "$.id.x",
            "$.user[0]",
            "$[0]",
            "$.user.tags.a",
            "$",
        ] {
            assert_eq!(value(DOC, path), None, "{path}");
        }
        assert_eq!(value("{\"a\":1", "$.a"), None);
        assert_eq!(value("", "$"), None);
    }

    #[test]
    fn query_containers_as_compact_json() {
        assert_eq!(query(DOC, "$.user.tags").as_deref(), Some(r#"["a",{"k":[10,20]}]"#));
        assert_eq!(query(DOC, "$.user.empty").as_deref(), Some("{}"));
        assert_eq!(query(DOC, "$.user.list").as_deref(), Some("[]"));
        assert_eq!(
            query("{ \"a\" : { \"s\" : \"x  y\\\" , z\" } }", "$").as_deref(),
            Some(r#"{"a":{"s":"x  y\" , z"}}"#)
        );
        for path in ["$.id", "$.name", "$.nil", "$.ok", "$.missing"] {
            assert_eq!(query(DOC, path), None, "{path}");
        }
        assert_eq!(query("[1,2", "$"), None);
    }

    #[test]
    fn exists_semantics() {
        assert_eq!(exists(DOC, "$.nil"), Some(true));
        assert_eq!(exists(DOC, "$.user.list"), Some(true));
        assert_eq!(exists(DOC, "$.user.tags[1].k"), Some(true));
        assert_eq!(exists(DOC, "$.user.tags[2]"), Some(false));
        assert_eq!(exists(DOC, "$.nope"), Some(false));
        assert_eq!(exists("{not json}", "$"), Some(false));
        assert_eq!(exists("[]", "$"), Some(true));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        assert_eq!(value(r#"{"a":1,"a":2}"#, "$.a").as_deref(), Some("2"));
        assert_eq!(value(r#"{"a":{"b":1},"a":{"c":2}}"#, "$.a.b"), None);
        assert_eq!(value(r#"{"a":{"b":1},"a":{"b":3}}"#, "$.a.b").as_deref(), Some("3"));
        assert_eq!(value(r#"{"a":{"b":1},"b":{"b":3}}"#, "$.a.b").as_deref(), Some("1"));
    }

    #[test]
    fn invalid_documents() {
        let bad = [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1} x",
            "{\"a\":1}{}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "NaN",
            "'a'",
            "\"a\\x\"",
            "\"\\u12\"",
            "\"tab\there\"",
            "\"open",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "{,}",
            "[,1]",
        ];
        let mut w = Walker::default();
        for doc in bad {
            assert_eq!(w.find(doc, &[]), Err(Invalid), "{doc:?} should be invalid");
            assert_eq!(value(&format!("{{\"k\":1,\"x\":{doc}}}"), "$.k"), None, "{doc:?} nested");
        }
        let good = ["0", "-0.0e-0", "1E+2", "\"\\u00E9\\/\"", " [ ] ", "{\"\":{}}", "[[[]],{}]", "null"];
        for doc in good {
            assert!(w.find(doc, &[]).is_ok(), "{doc:?} should be valid");
        }
        // An error after the match still makes the whole document invalid.
        assert_eq!(value(r#"{"a":1,"b":[}"#, "$.a"), None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let depth = 200_000;
        let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let mut w = Walker::default();
        assert_eq!(w.find(&doc, &[]), Ok(Some(0..doc.len())));
        let open = "[".repeat(depth);
        assert_eq!(w.find(&open, &[]), Err(Invalid));
        let steps = vec![Step::Index(0); 1000];
        assert!(matches!(w.find(&doc, &steps), Ok(Some(_))));
    }

    #[test]
    fn unicode_and_escapes() {
        assert_eq!(value(r#"{"k":"\ud83d\ude00"}"#, "$.k").as_deref(), Some("😀"));
        assert_eq!(value(r#"{"k":"a\ud83db"}"#, "$.k").as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(value(r#"{"k":"\ude00"}"#, "$.k").as_deref(), Some("\u{FFFD}"));
        assert_eq!(value(r#"{"k":"\n\t\\\/\b\f\r"}"#, "$.k").as_deref(), Some("\n\t\\/\u{8}\u{c}\r"));
        assert_eq!(value(r#"{"ключ":"значение"}"#, "$.ключ").as_deref(), Some("значение"));
        assert_eq!(value(r#"{"日本":{"語":"✓"}}"#, "$['日本'].語").as_deref(), Some("✓"));
        assert_eq!(query(r#"{"k":["ü", "\u00fc"]}"#, "$.k").as_deref(), Some(r#"["ü","\u00fc"]"#));
    }

    #[test]
    fn path_parsing() {
        fn ok(p: &str) -> Vec<Step<'_>> {
            parse_path(p).unwrap_or_else(|e| panic!("{p}: {e}"))
        }
        assert_eq!(ok("$"), vec![]);
        assert_eq!(
            ok("$.a[0][ 'b' ].\"c d\"[\"e\"]"),
            vec![
                Step::Key("a".into()),
                Step::Index(0),
                Step::Key("b".into()),
                Step::Key("c d".into()),
                Step::Key("e".into()),
            ]
        );
        assert_eq!(ok(r#"$["a\"b"]"#), vec![Step::Key("a\"b".into())]);
        assert_eq!(ok("lax $.a"), vec![Step::Key("a".into())]);
        // Flink's docs write bracketed keys after a dot.
        assert_eq!(ok(r#"$.["a.b"][0]"#), vec![Step::Key("a.b".into()), Step::Index(0)]);
        let bad = [
            ("", "start with '$'"),
            ("a.b", "start with '$'"),
            ("$.a[*]", "wildcard"),
            ("$.*", "wildcard"),
            ("$..a", "recursive descent"),
            ("$.a[-1]", "negative"),
            ("$.a[last]", "'last'"),
            ("$.a[0,1]", "multiple"),
            ("$.a[0:2]", "slices"),
            ("$[?(@.a)]", "filter"),
            ("$.", "expected a key"),
            ("$.a[0", "expected ']'"),
            ("$['a]", "unterminated"),
            ("$ .a", "unexpected ' '"),
            ("$a", "unexpected 'a'"),
            ("$.a b", "unexpected ' '"),
            ("$[99999999999999999999999]", "too large"),
            ("laxx $.a", "start with '$'"),
        ];
        for (path, reason) in bad {
            match parse_path(path) {
                Ok(steps) => panic!("{path:?} parsed as {steps:?}"),
                Err(e) => assert!(e.contains(reason), "{path:?}: {e}"),
            }
        }
    }

    #[test]
    fn arrays_of_every_string_type_with_nulls() -> Result<()> {
        let docs = [Some(r#"{"a":{"b":"x"}}"#), None, Some("oops"), Some(r#"{"a":{"b":[1]}}"#)];
        let inputs: Vec<ColumnarValue> = vec![
            ColumnarValue::Array(Arc::new(StringArray::from(docs.to_vec()))),
            ColumnarValue::Array(Arc::new(LargeStringArray::from(docs.to_vec()))),
            ColumnarValue::Array(Arc::new(StringViewArray::from(docs.to_vec()))),
        ];
        for json in inputs {
            let got = strings(invoke(JsonKind::Value, json.clone(), lit("$.a.b"), 4)?);
            assert_eq!(got, vec![Some("x".into()), None, None, None]);
            let got = strings(invoke(JsonKind::Query, json.clone(), lit("$.a.b"), 4)?);
            assert_eq!(got, vec![None, None, None, Some("[1]".into())]);
            let ColumnarValue::Array(b) = invoke(JsonKind::Exists, json, lit("$.a.b"), 4)? else {
                panic!("array expected");
            };
            let b = b.as_any().downcast_ref::<BooleanArray>().expect("Boolean result");
            assert_eq!(b.iter().collect::<Vec<_>>(), vec![Some(true), None, Some(false), Some(true)]);
        }
        Ok(())
    }

    #[test]
    fn path_column_and_scalar_document() -> Result<()> {
        let paths = StringViewArray::from(vec![Some("$.a"), Some("$.a"), None, Some("$['b'][1]"), Some("$.c")]);
        let got = strings(invoke(
            JsonKind::Value,
            ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(r#"{"a":"A","b":[0,1]}"#.into()))),
            ColumnarValue::Array(Arc::new(paths)),
            5,
        )?);
        assert_eq!(got, vec![Some("A".into()), Some("A".into()), None, Some("1".into()), None]);

        let bad = StringArray::from(vec![Some("$.a"), Some("$.a[*]")]);
        let err = invoke(JsonKind::Value, lit("{}"), ColumnarValue::Array(Arc::new(bad)), 2)
            .expect_err("a bad path in a column is an error");
        assert!(err.to_string().contains("'$.a[*]'"), "{err}");
        Ok(())
    }

    #[test]
    fn null_scalars_and_scalar_results() -> Result<()> {
        let null = ColumnarValue::Scalar(ScalarValue::Utf8(None));
        let r = invoke(JsonKind::Value, null.clone(), lit("$.a"), 3)?;
        assert!(matches!(r, ColumnarValue::Scalar(ScalarValue::Utf8(None))), "{r:?}");
        let r = invoke(JsonKind::Exists, lit("{}"), null, 3)?;
        assert!(matches!(r, ColumnarValue::Scalar(ScalarValue::Boolean(None))), "{r:?}");
        let r = invoke(JsonKind::Exists, ColumnarValue::Scalar(ScalarValue::Null), lit("$"), 1)?;
        assert!(matches!(r, ColumnarValue::Scalar(ScalarValue::Boolean(None))), "{r:?}");
        Ok(())
    }

    #[test]
    fn constant_invalid_path_fails_even_when_documents_are_null() {
        let docs = ColumnarValue::Array(Arc::new(StringArray::from(vec![None::<&str>; 3])));
        let err = invoke(JsonKind::Exists, docs, lit("$.a..b"), 3).expect_err("invalid path");
        let msg = err.to_string();
        assert!(msg.contains("json_exists") && msg.contains("'$.a..b'") && msg.contains("Supported"), "{msg}");
    }

    #[test]
    fn literal_path_is_checked_at_planning() {
        let f = JsonFunc::new(JsonKind::Value);
        let fields =
            [Arc::new(Field::new("j", DataType::Utf8, true)), Arc::new(Field::new("p", DataType::Utf8, false))];
        let bad = ScalarValue::Utf8(Some("$.a[0:1]".into()));
        let err = f
            .return_field_from_args(ReturnFieldArgs { arg_fields: &fields, scalar_arguments: &[None, Some(&bad)] })
            .expect_err("plan error");
        assert!(err.to_string().starts_with("Error during planning"), "{err}");
        let good = ScalarValue::Utf8(Some("$.a[0]".into()));
        let field = f
            .return_field_from_args(ReturnFieldArgs { arg_fields: &fields, scalar_arguments: &[None, Some(&good)] })
            .expect("valid path");
        assert_eq!(field.data_type(), &DataType::Utf8);
    }
}
