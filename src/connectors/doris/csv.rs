//! CSV for Stream Load (`format = csv`), written straight from Arrow arrays by the rules Doris
//! reads it with (apache/doris `be/src/vec/exec/format/csv/csv_reader.cpp`,
//! `file_reader/new_plain_text_line_reader.cpp`, the string serde's `escape_string_for_csv`, and
//! the FE's `Separator.convertSeparator` for the property texts):
//!
//! - rows end with `line_delimiter` (default `\n`) and fields are split by `column_separator`
//!   (default `\t`), both searched for literally: without `enclose` nothing protects them;
//! - NULL is `\N`; the delete sign, when sent, is the last field (`0` or `1`);
//! - with `enclose` (one byte, e.g. `"`), a field starting with it runs to the next `enclose`
//!   not preceded by `escape` and not doubled, so separators and delimiters inside are data; the
//!   enclosing bytes are trimmed;
//! - with `escape` (one byte, e.g. `\`), Doris removes the escape byte in front of any byte of a
//!   string column (and reads a doubled `enclose` as one). Doris applies no escape by default;
//! - Doris skips empty lines, drops a UTF-8 byte order mark at the start of a load and a `\r`
//!   before a `\n` line end, and reads NUL bytes inside an enclosed field as escapes when no
//!   `escape` is set.
//!
//! The encoder encloses every string when `enclose` is set (escaping `escape` and `enclose` bytes
//! when `escape` is set), and other values only when they contain the separator or delimiter. A
//! value Doris would read back differently fails the write, naming the row, the column and the
//! property that fixes it: nothing is loaded corrupted. Values are written as the JSON encoder
//! writes them, unquoted; BOOLEAN as `true`/`false` (as the Flink connector does). ARRAY, MAP and
//! ROW have no CSV form here (JSON only).

use datafusion::arrow::array::{Array, AsArray, BooleanArray, GenericStringArray, PrimitiveArray, StringViewArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;

use super::encode::is_scalar;
use crate::error::{Error, Result};
use crate::formats::json::write::{unit_scale, write_date, write_scaled, write_time_of_day, Fraction};
use crate::sql::types::flink_type_name;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const NULL: &[u8] = b"\\N";

/// Doris' CSV settings as the bytes Doris uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFormat {
    pub column_separator: Vec<u8>,
    pub line_delimiter: Vec<u8>,
    pub enclose: Option<u8>,
    pub escape: Option<u8>,
}

/// A Stream Load property that cannot be used, and what it should be.
#[derive(Debug)]
pub struct BadProperty {
    pub key: &'static str,
    pub expected: String,
}

impl Default for CsvFormat {
    fn default() -> Self {
        CsvFormat { column_separator: b"\t".to_vec(), line_delimiter: b"\n".to_vec(), enclose: None, escape: None }
    }
}

impl CsvFormat {
    /// From the texts of the `column_separator`, `line_delimiter`, `enclose` and `escape`
    /// properties, read as Doris' FE reads them. Beyond Doris' own rules, `enclose` and `escape`
    /// must be characters that never occur in numbers, dates and times (so only strings need
    /// escaping) and must not be part of the separator or delimiter, which must share no byte.
    pub fn from_properties(
        column_separator: Option<&str>,
        line_delimiter: Option<&str>,
        enclose: Option<&str>,
        escape: Option<&str>,
    ) -> std::result::Result<Self, BadProperty> {
        let bad = |key: &'static str, expected: String| BadProperty { key, expected };
        let mut format = CsvFormat::default();
        if let Some(text) = column_separator {
            format.column_separator = convert_separator(text).map_err(|e| bad("column_separator", e))?;
        }
        if let Some(text) = line_delimiter {
            format.line_delimiter = convert_separator(text).map_err(|e| bad("line_delimiter", e))?;
        }
        if let Some(b) = format.column_separator.iter().find(|b| format.line_delimiter.contains(b)) {
            return Err(bad(
                "column_separator",
                format!(
                    "a separator sharing no character with the line delimiter {} (both contain {})",
                    show_bytes(&format.line_delimiter),
                    show_bytes(&[*b])
                ),
            ));
        }
        for (key, text) in [("enclose", enclose), ("escape", escape)] {
            let Some(text) = text.filter(|t| !t.is_empty()) else { continue };
            let byte = match text.as_bytes() {
                [b] if *b != 0 && b.is_ascii() => *b,
                _ => return Err(bad(key, "one ASCII character, e.g. '\"' for enclose or '\\' for escape".into())),
            };
            if byte.is_ascii_alphanumeric() || b"-+.: ".contains(&byte) {
                return Err(bad(
                    key,
                    "a character that cannot occur in numbers, dates or times (not a letter, digit, '-', '+', '.', ':' or space)"
                        .into(),
                ));
            }
            if format.column_separator.contains(&byte) || format.line_delimiter.contains(&byte) {
                return Err(bad(key, "a character that is not part of the column separator or line delimiter".into()));
            }
            if key == "enclose" {
                if byte == b'\\' {
                    return Err(bad(key, "a character other than '\\', which starts \\N (NULL)".into()));
                }
                format.enclose = Some(byte);
            } else {
                if format.enclose == Some(byte) {
                    return Err(bad(key, "a character different from 'enclose'".into()));
                }
                format.escape = Some(byte);
            }
        }
        Ok(format)
    }
}

/// Doris' reading of a `column_separator`/`line_delimiter` text: `\x01\x02` as hex bytes, else
/// the text with `\t`, `\n`, `\r`, `\\`, `\'` and `\"` unescaped and any other backslash kept.
fn convert_separator(text: &str) -> std::result::Result<Vec<u8>, String> {
    if text.is_empty() {
        return Err("a non-empty value".into());
    }
    if text.len() >= 2 && text.as_bytes()[..2].eq_ignore_ascii_case(b"\\x") {
        // Doris removes every `\x` and reads the rest as pairs of hex digits.
        let hex: String = text.replace("\\x", "").replace("\\X", "");
        let valid = !hex.is_empty() && hex.len().is_multiple_of(2) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let bytes: Vec<u8> = if valid {
            (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
        } else {
            Vec::new()
        };
        // Doris turns each hex byte into one Java char and sends it on as UTF-8, so only ASCII
        // bytes arrive as themselves.
        if !valid || bytes.iter().any(|b| *b == 0 || !b.is_ascii()) {
            return Err("hex bytes from \\x01 to \\x7f, e.g. '\\x01' or '\\x01\\x02'".into());
        }
        return Ok(bytes);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('\\'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out.into_bytes())
}

/// Bytes as a user would write them in a property: `\t`, `\n`, `\r`, `\xHH`, else the character.
fn show_bytes(bytes: &[u8]) -> String {
    let mut shown = String::from("'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\t' => shown.push_str("\\t"),
                '\n' => shown.push_str("\\n"),
                '\r' => shown.push_str("\\r"),
                c if c.is_control() => shown.push_str(&format!("\\x{:02x}", c as u32)),
                c => shown.push(c),
            }
        }
        for b in chunk.invalid() {
            shown.push_str(&format!("\\x{b:02x}"));
        }
    }
    shown.push('\'');
    shown
}

/// Why a value cannot be written as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Separator,
    SeparatorStart,
    Delimiter,
    DelimiterStart,
    CarriageReturn,
    ByteOrderMark,
    EmptyLine,
    NullText,
    Enclose,
    Nul,
}

impl Problem {
    fn what(self, format: &CsvFormat) -> String {
        let sep = show_bytes(&format.column_separator);
        let delim = show_bytes(&format.line_delimiter);
        match self {
            Problem::Separator => format!("contains the column separator {sep}"),
            Problem::SeparatorStart => format!("ends with the start of the column separator {sep}"),
            Problem::Delimiter => format!("contains the line delimiter {delim}"),
            Problem::DelimiterStart => format!("ends with the start of the line delimiter {delim}"),
            Problem::CarriageReturn => "ends with a carriage return, which Doris drops before a '\\n' line end".into(),
            Problem::ByteOrderMark => {
                "starts with a UTF-8 byte order mark, which Doris drops at the start of a load".into()
            }
            Problem::EmptyLine => "is empty and alone on its line, and Doris skips empty lines".into(),
            Problem::NullText => "is the text \\N, which Doris reads as NULL".into(),
            Problem::Enclose => {
                format!("contains the enclose character {}", show_bytes(&[format.enclose.unwrap_or_default()]))
            }
            Problem::Nul => "contains a NUL byte, which Doris reads as an escape when no escape is set".into(),
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Problem::NullText | Problem::Enclose | Problem::Nul => {
                "set 'sink.properties.escape' (e.g. '\\') so Doris reads such strings as written, or use 'sink.properties.format' = 'json'"
            }
            _ => {
                "set 'sink.properties.enclose' (e.g. '\"', with 'sink.properties.escape' = '\\' when strings may contain it) so Doris reads such values whole, use a column_separator/line_delimiter that never occurs in the data, or use 'sink.properties.format' = 'json'"
            }
        }
    }
}

/// Encodes batches of one schema as CSV lines.
pub struct CsvEncoder {
    format: CsvFormat,
    names: Vec<String>,
    /// Named in errors to say which row failed.
    key_columns: Vec<usize>,
    with_delete_sign: bool,
    fields: usize,
    /// Bytes that make a value worth a closer look when it contains one: the first bytes of the
    /// separator and of the delimiter, `\r`, and the first byte of a byte order mark.
    watch: [bool; 256],
}

impl CsvEncoder {
    /// Fails, naming the column, if a column's type has no CSV form.
    pub fn new(schema: &Schema, key_columns: &[usize], with_delete_sign: bool, format: CsvFormat) -> Result<Self> {
        for field in schema.fields() {
            if !is_scalar(field.data_type()) {
                return Err(Error::user(format!(
                    "column `{}` has type {}, which the doris sink writes as JSON only; use 'sink.properties.format' = 'json' (the default) or CAST it, e.g. to STRING",
                    field.name(),
                    flink_type_name(field.data_type())
                )));
            }
        }
        let mut watch = [false; 256];
        watch[format.column_separator[0] as usize] = true;
        watch[format.line_delimiter[0] as usize] = true;
        watch[b'\r' as usize] = true;
        watch[BOM[0] as usize] = true;
        Ok(CsvEncoder {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            key_columns: key_columns.to_vec(),
            with_delete_sign,
            fields: schema.fields().len() + usize::from(with_delete_sign),
            watch,
            format,
        })
    }

    /// Appends every row of `batch` with the given delete sign.
    pub fn encode_all(&self, batch: &RecordBatch, delete: bool, out: &mut Vec<u8>) -> Result<()> {
        self.encode_rows(batch, (0..batch.num_rows()).map(|row| (row, delete)), out)
    }

    /// Appends the chosen rows, each with its delete sign. On error, `out` is left as it was
    /// before the failing row.
    pub fn encode_rows(
        &self,
        batch: &RecordBatch,
        rows: impl Iterator<Item = (usize, bool)>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let cells: Vec<Cell<'_>> = batch.columns().iter().map(|c| Cell::new(c.as_ref())).collect::<Result<_>>()?;
        for (row, delete) in rows {
            let row_start = out.len();
            for (index, cell) in cells.iter().enumerate() {
                if index > 0 {
                    out.extend_from_slice(&self.format.column_separator);
                }
                if let Err(problem) = self.write_cell(cell, row, index, out) {
                    out.truncate(row_start);
                    return Err(self.error(&cells, row, index, problem));
                }
            }
            if self.with_delete_sign {
                if !cells.is_empty() {
                    out.extend_from_slice(&self.format.column_separator);
                }
                out.push(if delete { b'1' } else { b'0' });
            }
            out.extend_from_slice(&self.format.line_delimiter);
        }
        Ok(())
    }

    fn write_cell(
        &self,
        cell: &Cell<'_>,
        row: usize,
        index: usize,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), Problem> {
        if cell.is_null(row) {
            out.extend_from_slice(NULL);
            return Ok(());
        }
        if let Some(text) = cell.str_value(row) {
            return self.write_string(text.as_bytes(), index, out);
        }
        let start = out.len();
        cell.write_text(row, out);
        if let Some(problem) = self.plain_problem(&out[start..], index) {
            // Numbers, dates and times never contain `enclose` or `escape` (see `CsvFormat`).
            let Some(enclose) = self.format.enclose else { return Err(problem) };
            out.insert(start, enclose);
            out.push(enclose);
        }
        Ok(())
    }

    fn write_string(&self, bytes: &[u8], index: usize, out: &mut Vec<u8>) -> std::result::Result<(), Problem> {
        let CsvFormat { enclose, escape, .. } = self.format;
        if let Some(e) = enclose {
            out.push(e);
        }
        let start = out.len();
        match escape {
            Some(x) => {
                // Doris' escape handling reads a doubled quote as one; without `enclose` its quote
                // byte is NUL.
                let quote = enclose.unwrap_or(0);
                let mut from = 0;
                for (i, &b) in bytes.iter().enumerate() {
                    if b == x || b == quote {
                        out.extend_from_slice(&bytes[from..i]);
                        out.push(x);
                        from = i;
                    }
                }
                out.extend_from_slice(&bytes[from..]);
                if &out[start..] == NULL {
                    // Only an escape that is not `\` leaves `\N` as it is: escape its backslash.
                    out.insert(start, x);
                }
            }
            None => {
                if bytes == NULL {
                    return Err(Problem::NullText);
                }
                if let Some(e) = enclose {
                    if bytes.contains(&e) {
                        return Err(Problem::Enclose);
                    }
                    if bytes.contains(&0) {
                        return Err(Problem::Nul);
                    }
                }
                out.extend_from_slice(bytes);
            }
        }
        match enclose {
            Some(e) => out.push(e),
            None => {
                if out.len() == start && self.fields == 1 {
                    return Err(Problem::EmptyLine);
                }
                if let Some(problem) = self.plain_problem(&out[start..], index) {
                    return Err(problem);
                }
            }
        }
        Ok(())
    }

    /// What keeps Doris from reading `value` back as field `index` when it is not enclosed.
    fn plain_problem(&self, value: &[u8], index: usize) -> Option<Problem> {
        if !value.iter().any(|b| self.watch[*b as usize]) {
            return None;
        }
        let sep = &self.format.column_separator;
        let delim = &self.format.line_delimiter;
        let last = index + 1 == self.fields;
        if find(value, sep).is_some() {
            return Some(Problem::Separator);
        }
        if find(value, delim).is_some() {
            return Some(Problem::Delimiter);
        }
        if !last && runs_into(value, sep) {
            return Some(Problem::SeparatorStart);
        }
        if last && runs_into(value, delim) {
            return Some(Problem::DelimiterStart);
        }
        if last && delim.as_slice() == b"\n" && value.last() == Some(&b'\r') {
            return Some(Problem::CarriageReturn);
        }
        if index == 0 && value.starts_with(BOM) {
            return Some(Problem::ByteOrderMark);
        }
        None
    }

    fn error(&self, cells: &[Cell<'_>], row: usize, column: usize, problem: Problem) -> Error {
        let which = if self.key_columns.is_empty() {
            "a row".to_string()
        } else {
            let keys: Vec<String> =
                self.key_columns.iter().map(|k| format!("{} = {}", self.names[*k], cells[*k].preview(row))).collect();
            format!("the row with {}", keys.join(", "))
        };
        Error::user(format!(
            "CSV load: in {which}, the value {} of column `{}` {}, so Doris would not read it back as written. To fix: {}",
            cells[column].preview(row),
            self.names[column],
            problem.what(&self.format),
            problem.fix()
        ))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return haystack.iter().position(|b| *b == needle[0]);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `value` followed by `pattern` shows `pattern` before its end (a value ending with
/// `|` before the separator `||`).
fn runs_into(value: &[u8], pattern: &[u8]) -> bool {
    if pattern.len() < 2 {
        return false;
    }
    let tail = &value[value.len().saturating_sub(pattern.len() - 1)..];
    let mut joined = tail.to_vec();
    joined.extend_from_slice(pattern);
    find(&joined, pattern).is_some_and(|at| at < tail.len())
}

/// One column of a batch, resolved once per batch.
struct Cell<'a> {
    nulls: Option<&'a NullBuffer>,
    value: Value<'a>,
}

enum Value<'a> {
    Null,
    Bool(&'a BooleanArray),
    Int8(&'a PrimitiveArray<Int8Type>),
    Int16(&'a PrimitiveArray<Int16Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    UInt8(&'a PrimitiveArray<UInt8Type>),
    UInt16(&'a PrimitiveArray<UInt16Type>),
    UInt32(&'a PrimitiveArray<UInt32Type>),
    UInt64(&'a PrimitiveArray<UInt64Type>),
    Float32(&'a PrimitiveArray<Float32Type>),
    Float64(&'a PrimitiveArray<Float64Type>),
    Decimal128(&'a PrimitiveArray<Decimal128Type>, i8),
    Decimal256(&'a PrimitiveArray<Decimal256Type>, i8),
    Date32(&'a PrimitiveArray<Date32Type>),
    Date64(&'a PrimitiveArray<Date64Type>),
    /// A time of day as an integer count of `unit`.
    Time(Vec<i64>, TimeUnit),
    Timestamp(&'a [i64], TimeUnit),
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
}

impl<'a> Cell<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        let value = match array.data_type() {
            DataType::Null => Value::Null,
            DataType::Boolean => Value::Bool(array.as_boolean()),
            DataType::Int8 => Value::Int8(array.as_primitive()),
            DataType::Int16 => Value::Int16(array.as_primitive()),
            DataType::Int32 => Value::Int32(array.as_primitive()),
            DataType::Int64 => Value::Int64(array.as_primitive()),
            DataType::UInt8 => Value::UInt8(array.as_primitive()),
            DataType::UInt16 => Value::UInt16(array.as_primitive()),
            DataType::UInt32 => Value::UInt32(array.as_primitive()),
            DataType::UInt64 => Value::UInt64(array.as_primitive()),
            DataType::Float32 => Value::Float32(array.as_primitive()),
            DataType::Float64 => Value::Float64(array.as_primitive()),
            DataType::Decimal128(_, s) => Value::Decimal128(array.as_primitive(), *s),
            DataType::Decimal256(_, s) => Value::Decimal256(array.as_primitive(), *s),
            DataType::Date32 => Value::Date32(array.as_primitive()),
            DataType::Date64 => Value::Date64(array.as_primitive()),
            DataType::Time32(unit) => {
                let values: Vec<i64> = match unit {
                    TimeUnit::Second => {
                        array.as_primitive::<Time32SecondType>().values().iter().map(|v| *v as i64).collect()
                    }
                    _ => array.as_primitive::<Time32MillisecondType>().values().iter().map(|v| *v as i64).collect(),
                };
                Value::Time(values, *unit)
            }
            DataType::Time64(unit) => {
                let values = match unit {
                    TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().values().to_vec(),
                    _ => array.as_primitive::<Time64MicrosecondType>().values().to_vec(),
                };
                Value::Time(values, *unit)
            }
            DataType::Timestamp(unit, _) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
                };
                Value::Timestamp(values, *unit)
            }
            DataType::Utf8 => Value::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Value::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Value::Utf8View(array.as_string_view()),
            other => return Err(Error::internal(format!("doris CSV encoder met type {other} that its checks refuse"))),
        };
        Ok(Cell { nulls: array.nulls(), value })
    }

    fn is_null(&self, row: usize) -> bool {
        matches!(self.value, Value::Null) || self.nulls.is_some_and(|n| n.is_null(row))
    }

    fn str_value(&self, row: usize) -> Option<&'a str> {
        match self.value {
            Value::Utf8(a) => Some(a.value(row)),
            Value::LargeUtf8(a) => Some(a.value(row)),
            Value::Utf8View(a) => Some(a.value(row)),
            _ => None,
        }
    }

    /// The text of a non-null value that is not a string.
    fn write_text(&self, row: usize, out: &mut Vec<u8>) {
        let mut ints = itoa::Buffer::new();
        match &self.value {
            Value::Null | Value::Utf8(_) | Value::LargeUtf8(_) | Value::Utf8View(_) => {}
            Value::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Value::Int8(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::Int16(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::Int32(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::Int64(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::UInt8(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::UInt16(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::UInt32(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::UInt64(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Value::Float32(a) => {
                let v = a.value(row);
                match v.is_finite() {
                    true => out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes()),
                    false => write_non_finite(out, v.is_nan(), v > 0.0),
                }
            }
            Value::Float64(a) => {
                let v = a.value(row);
                match v.is_finite() {
                    true => out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes()),
                    false => write_non_finite(out, v.is_nan(), v > 0.0),
                }
            }
            Value::Decimal128(a, scale) => write_scaled(out, ints.format(a.value(row)), *scale),
            Value::Decimal256(a, scale) => write_scaled(out, &a.value(row).to_string(), *scale),
            Value::Date32(a) => write_date(out, a.value(row) as i64),
            Value::Date64(a) => write_date(out, a.value(row).div_euclid(86_400_000)),
            Value::Time(values, unit) => {
                let (per_second, digits) = unit_scale(*unit);
                let value = values[row];
                write_time_of_day(
                    out,
                    value.div_euclid(per_second),
                    value.rem_euclid(per_second),
                    digits,
                    Fraction::Fixed,
                );
            }
            Value::Timestamp(values, unit) => {
                let (per_second, digits) = unit_scale(*unit);
                let value = values[row];
                let seconds = value.div_euclid(per_second);
                write_date(out, seconds.div_euclid(86_400));
                out.push(b' ');
                write_time_of_day(
                    out,
                    seconds.rem_euclid(86_400),
                    value.rem_euclid(per_second),
                    digits,
                    Fraction::Fixed,
                );
            }
        }
    }

    /// The value for an error message: strings quoted and cut short, NULL as NULL.
    fn preview(&self, row: usize) -> String {
        if self.is_null(row) {
            return "NULL".into();
        }
        if let Some(text) = self.str_value(row) {
            let cut: String = text.chars().take(60).collect();
            return if cut.len() < text.len() { format!("{cut:?}…") } else { format!("{cut:?}") };
        }
        let mut out = Vec::new();
        self.write_text(row, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// NaN and infinities as Doris' float parser reads them.
fn write_non_finite(out: &mut Vec<u8>, nan: bool, positive: bool) {
    out.extend_from_slice(match (nan, positive) {
        (true, _) => b"NaN".as_slice(),
        (false, true) => b"Infinity",
        (false, false) => b"-Infinity",
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::*;

    use super::*;

    fn format(sep: Option<&str>, delim: Option<&str>, enclose: Option<&str>, escape: Option<&str>) -> CsvFormat {
        CsvFormat::from_properties(sep, delim, enclose, escape).unwrap()
    }

    fn encode_with(
        columns: Vec<(&str, ArrayRef)>,
        keys: &[usize],
        delete: Option<bool>,
        format: CsvFormat,
    ) -> std::result::Result<String, String> {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let delimiter = format.line_delimiter.clone();
        let encoder = CsvEncoder::new(&batch.schema(), keys, delete.is_some(), format).unwrap();
        let mut out = b"before".to_vec();
        out.extend_from_slice(&delimiter);
        match encoder.encode_all(&batch, delete.unwrap_or(false), &mut out) {
            Ok(()) => Ok(String::from_utf8(out[6 + delimiter.len()..].to_vec()).unwrap()),
            Err(e) => {
                assert!(out.ends_with(&delimiter), "a failed row leaves only whole rows before it");
                assert_eq!(e.kind(), crate::error::ErrorKind::User);
                Err(e.to_string())
            }
        }
    }

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn defaults_are_tab_and_newline_with_null_as_backslash_n_and_the_delete_sign_last() {
        let text = encode_with(
            vec![
                ("id", Arc::new(Int64Array::from(vec![Some(-7), None])) as ArrayRef),
                ("ok", Arc::new(BooleanArray::from(vec![Some(true), Some(false)]))),
                ("f", Arc::new(Float64Array::from(vec![1.5, f64::NAN]))),
                ("g", Arc::new(Float32Array::from(vec![f32::INFINITY, f32::NEG_INFINITY]))),
                ("d", Arc::new(Decimal128Array::from(vec![1230, -5]).with_precision_and_scale(10, 2).unwrap())),
                ("day", Arc::new(Date32Array::from(vec![19_723, -1]))),
                ("ts", Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_123_456, 0]))),
                ("s", strings(&[Some("héllo"), Some("")])),
            ],
            &[],
            Some(true),
            CsvFormat::default(),
        )
        .unwrap();
        assert_eq!(
            text,
            "-7\ttrue\t1.5\tInfinity\t12.30\t2024-01-01\t2023-11-14 22:13:20.123456\théllo\t1\n\
             \\N\tfalse\tNaN\t-Infinity\t-0.05\t1969-12-31\t1970-01-01 00:00:00.000000\t\t1\n"
        );
    }

    #[test]
    fn a_separator_in_a_value_without_enclose_fails_naming_the_row_column_and_fix() {
        let err = encode_with(
            vec![
                ("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
                ("name", strings(&[Some("fine"), Some("tab\there")])),
            ],
            &[0],
            Some(false),
            CsvFormat::default(),
        )
        .unwrap_err();
        assert!(err.contains("the row with id = 2") && err.contains("\"tab\\there\""), "{err}");
        assert!(err.contains("column `name` contains the column separator '\\t'"), "{err}");
        assert!(err.contains("'sink.properties.enclose'") && err.contains("'json'"), "{err}");
        let err =
            encode_with(vec![("name", strings(&[Some("two\nlines")]))], &[], None, CsvFormat::default()).unwrap_err();
        assert!(err.contains("contains the line delimiter '\\n'") && err.contains("in a row"), "{err}");
    }

    #[test]
    fn enclose_and_escape_protect_any_string() {
        let fmt = format(Some(","), None, Some("\""), Some("\\"));
        let text = encode_with(
            vec![
                ("a", strings(&[Some("x,y"), Some("\\N"), Some("say \"hi\"\\"), None, Some("")])),
                ("b", strings(&[Some("l1\nl2"), Some("\"\""), Some("\0"), Some("\\"), Some("\"")])),
            ],
            &[],
            None,
            fmt,
        )
        .unwrap();
        assert_eq!(
            text,
            "\"x,y\",\"l1\nl2\"\n\
             \"\\\\N\",\"\\\"\\\"\"\n\
             \"say \\\"hi\\\"\\\\\",\"\0\"\n\
             \\N,\"\\\\\"\n\
             \"\",\"\\\"\"\n"
        );
    }

    #[test]
    fn an_escape_other_than_backslash_still_keeps_the_text_backslash_n_a_string() {
        let text = encode_with(
            vec![("a", strings(&[Some("\\N"), Some("a^b")]))],
            &[],
            None,
            format(None, None, Some("'"), Some("^")),
        )
        .unwrap();
        assert_eq!(text, "'^\\N'\n'a^^b'\n");
        let text =
            encode_with(vec![("a", strings(&[Some("\\N")]))], &[], None, format(None, None, None, Some("^"))).unwrap();
        assert_eq!(text, "^\\N\n");
    }

    #[test]
    fn without_escape_what_doris_would_misread_is_refused() {
        let enclosed = format(Some(","), None, Some("\""), None);
        for (value, expected) in [
            ("\\N", "is the text \\N, which Doris reads as NULL"),
            ("a\"b", "contains the enclose character '\"'"),
            ("a\0b", "contains a NUL byte"),
        ] {
            let err = encode_with(vec![("a", strings(&[Some(value)]))], &[], None, enclosed.clone()).unwrap_err();
            assert!(err.contains(expected) && err.contains("'sink.properties.escape'"), "{value:?}: {err}");
        }
        // Without enclose, separators and delimiters inside values are fine enclosed.
        assert_eq!(encode_with(vec![("a", strings(&[Some("a,b\nc")]))], &[], None, enclosed).unwrap(), "\"a,b\nc\"\n");
        let err = encode_with(vec![("a", strings(&[Some("\\N")]))], &[], None, CsvFormat::default()).unwrap_err();
        assert!(err.contains("reads as NULL"), "{err}");
    }

    #[test]
    fn escape_without_enclose_doubles_escape_bytes_but_cannot_protect_separators() {
        let fmt = format(Some(","), None, None, Some("\\"));
        let text =
            encode_with(vec![("a", strings(&[Some("c:\\dir"), Some("\\N"), Some("\0\0")]))], &[], None, fmt.clone())
                .unwrap();
        assert_eq!(text, "c:\\\\dir\n\\\\N\n\\\0\\\0\n");
        let err = encode_with(vec![("a", strings(&[Some("a,b")]))], &[], None, fmt).unwrap_err();
        assert!(err.contains("contains the column separator ','"), "{err}");
    }

    #[test]
    fn multi_byte_separators_also_catch_values_running_into_them() {
        let fmt = format(Some("||"), Some("\\x02"), None, None);
        let ok =
            encode_with(vec![("a", strings(&[Some("a|b")])), ("b", strings(&[Some("|c")]))], &[], None, fmt.clone())
                .unwrap();
        assert_eq!(ok, "a|b|||c\x02");
        let err =
            encode_with(vec![("a", strings(&[Some("a|")])), ("b", strings(&[Some("c")]))], &[], None, fmt.clone())
                .unwrap_err();
        assert!(err.contains("ends with the start of the column separator '||'"), "{err}");
        // The last column is followed by the delimiter, not the separator.
        assert!(encode_with(vec![("a", strings(&[Some("c")])), ("b", strings(&[Some("a|")]))], &[], None, fmt).is_ok());
        let fmt = format(None, Some(";;"), None, None);
        let err = encode_with(vec![("a", strings(&[Some("x;")]))], &[], None, fmt).unwrap_err();
        assert!(err.contains("ends with the start of the line delimiter ';;'"), "{err}");
        // `\r` before `\r\n` is no such overlap: Doris finds the delimiter after it.
        let fmt = format(None, Some("\\r\\n"), None, None);
        assert_eq!(encode_with(vec![("a", strings(&[Some("x\r")]))], &[], None, fmt).unwrap(), "x\r\r\n");
    }

    #[test]
    fn what_doris_drops_around_lines_is_refused_unless_enclosed() {
        let default = CsvFormat::default();
        let err = encode_with(vec![("a", strings(&[Some("cr\r")]))], &[], None, default.clone()).unwrap_err();
        assert!(err.contains("carriage return"), "{err}");
        // Not last (the delete sign follows): the carriage return is kept by Doris.
        assert!(encode_with(vec![("a", strings(&[Some("cr\r")]))], &[], Some(false), default.clone()).is_ok());
        let err = encode_with(vec![("a", strings(&[Some("\u{feff}x")]))], &[], None, default.clone()).unwrap_err();
        assert!(err.contains("byte order mark"), "{err}");
        let err = encode_with(vec![("a", strings(&[Some("")]))], &[], None, default).unwrap_err();
        assert!(err.contains("Doris skips empty lines"), "{err}");
        let enclosed = format(None, None, Some("\""), None);
        assert_eq!(
            encode_with(vec![("a", strings(&[Some("cr\r"), Some("\u{feff}x"), Some("")]))], &[], None, enclosed)
                .unwrap(),
            "\"cr\r\"\n\"\u{feff}x\"\n\"\"\n"
        );
    }

    #[test]
    fn other_values_are_enclosed_only_when_they_contain_the_separator() {
        let ts = || Arc::new(TimestampSecondArray::from(vec![0])) as ArrayRef;
        let err = encode_with(vec![("t", ts())], &[], None, format(Some(" "), None, None, None)).unwrap_err();
        assert!(err.contains("value 1970-01-01 00:00:00 of column `t` contains the column separator ' '"), "{err}");
        let text = encode_with(
            vec![("t", ts()), ("n", Arc::new(Int32Array::from(vec![5])))],
            &[],
            None,
            format(Some(" "), None, Some("\""), None),
        )
        .unwrap();
        assert_eq!(text, "\"1970-01-01 00:00:00\" 5\n");
    }

    #[test]
    fn separators_are_read_as_doris_reads_them() {
        let cases: &[(&str, &[u8])] = &[
            ("\\t", b"\t"),
            ("\\x01", b"\x01"),
            ("\\X01\\x02", b"\x01\x02"),
            ("||", b"||"),
            ("\\\\", b"\\"),
            ("\\|", b"\\|"),
            ("a\\", b"a\\"),
            ("\\r\\n", b"\r\n"),
            ("§", "§".as_bytes()),
        ];
        for (text, bytes) in cases {
            assert_eq!(convert_separator(text).unwrap(), *bytes, "{text}");
        }
        for bad in ["", "\\x1", "\\xZZ", "\\x80", "\\x00"] {
            assert!(convert_separator(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unusable_settings_name_the_property() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: &[Case<'_>] = &[
            (None, None, Some("ab"), None, "enclose"),
            (None, None, Some("a"), None, "enclose"),
            (None, None, Some("-"), None, "enclose"),
            (None, None, Some("\\"), None, "enclose"),
            (Some("\""), None, Some("\""), None, "enclose"),
            (None, None, Some("'"), Some("'"), "escape"),
            (None, None, None, Some("é"), "escape"),
            (Some("\\n"), None, None, None, "column_separator"),
            (Some(";\\r"), Some("\\r\\n"), None, None, "column_separator"),
            (None, Some("\\x"), None, None, "line_delimiter"),
        ];
        for (sep, delim, enclose, escape, key) in cases {
            let bad = CsvFormat::from_properties(*sep, *delim, *enclose, *escape).unwrap_err();
            assert_eq!(bad.key, *key, "{sep:?} {delim:?} {enclose:?} {escape:?}: {}", bad.expected);
        }
    }

    #[test]
    fn nested_types_are_json_only() {
        let schema = Schema::new(vec![Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )]);
        let err = CsvEncoder::new(&schema, &[], false, CsvFormat::default()).err().unwrap().to_string();
        assert!(err.contains("`tags`") && err.contains("ARRAY") && err.contains("'json'"), "{err}");
    }
}
