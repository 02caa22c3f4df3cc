//! Tree-model device paths: a `device` option such as `root.factory.{deviceId}` is parsed once
//! into nodes of literal text and column placeholders, then filled per row. Every node is quoted
//! with backticks exactly when IoTDB's syntax convention requires it (characters outside
//! `[A-Za-z0-9_]` and CJK ideographs, a node that reads as a number, or a reserved word), with
//! backticks inside doubled. Pure string work, no I/O.

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Column(usize),
}

/// A device path with `{column}` placeholders, split into nodes.
#[derive(Debug, Clone)]
pub struct DeviceTemplate {
    nodes: Vec<Vec<Piece>>,
    columns: Vec<usize>,
}

/// Words IoTDB reserves in paths; as node names they must be quoted.
const RESERVED: &[&str] = &["ROOT", "TIME", "TIMESTAMP"];

/// Whether `node` can stand unquoted in a path.
fn is_plain_node(node: &str) -> bool {
    !node.is_empty()
        && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || ('\u{2E80}'..='\u{9FFF}').contains(&c))
        && !reads_as_number(node)
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(node))
}

/// `123`, `0011`, `1e5`: IoTDB parses such nodes as numbers.
fn reads_as_number(node: &str) -> bool {
    let (mantissa, exponent) = match node.find(['e', 'E']) {
        Some(i) => (&node[..i], Some(&node[i + 1..])),
        None => (node, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(mantissa) && exponent.is_none_or(digits)
}

/// One path node as IoTDB's SQL and REST paths expect it.
pub fn quote_node(node: &str) -> String {
    if is_plain_node(node) {
        node.to_string()
    } else {
        format!("`{}`", node.replace('`', "``"))
    }
}

impl DeviceTemplate {
    /// Parses `template`; `column_index` resolves a placeholder name to a column (and checks its type).
    pub fn parse(template: &str, mut column_index: impl FnMut(&str) -> Result<usize>) -> Result<Self> {
        let invalid = |why: &str| {
            Error::user(format!(
                "option 'device' = '{template}' is not a valid device path: {why}. Expected a path such as 'root.factory.line1' or a template such as 'root.factory.{{deviceId}}'"
            ))
        };
        let mut nodes: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        let flush_text = |text: &mut String, node: &mut Vec<Piece>| {
            if !text.is_empty() {
                node.push(Piece::Text(std::mem::take(text)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let node = nodes.last_mut().ok_or_else(|| invalid("empty"))?;
                    flush_text(&mut text, node);
                    nodes.push(Vec::new());
                }
                '`' => loop {
                    match chars.next() {
                        Some('`') if chars.peek() == Some(&'`') => {
                            chars.next();
                            text.push('`');
                        }
                        Some('`') => break,
                        Some(other) => text.push(other),
                        None => return Err(invalid("a backtick is not closed")),
                    }
                },
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(other) => name.push(other),
                            None => return Err(invalid("a '{' placeholder is not closed")),
                        }
                    }
                    let node = nodes.last_mut().ok_or_else(|| invalid("empty"))?;
                    flush_text(&mut text, node);
                    node.push(Piece::Column(column_index(name.trim())?));
                }
                '}' => return Err(invalid("'}' without '{'")),
                other => text.push(other),
            }
        }
        if let Some(node) = nodes.last_mut() {
            flush_text(&mut text, node);
        }
        if nodes.iter().any(|n| n.is_empty()) {
            return Err(invalid("it has an empty node (two dots in a row, or a dot at an end)"));
        }
        if nodes.len() < 2 || nodes[0] != [Piece::Text("root".into())] {
            return Err(invalid("it must start with 'root.' and name at least a database below root"));
        }
        let mut columns: Vec<usize> = Vec::new();
        for piece in nodes.iter().flatten() {
            if let Piece::Column(i) = piece {
                if !columns.contains(i) {
                    columns.push(*i);
                }
            }
        }
        Ok(DeviceTemplate { nodes, columns })
    }

    /// The columns the template reads, in order of first use.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// The path when the template has no placeholders.
    pub fn fixed(&self) -> Option<String> {
        if !self.columns.is_empty() {
            return None;
        }
        self.render(|_| Err(Error::internal("a fixed device path has no placeholders"))).ok()
    }

    fn render(&self, mut value: impl FnMut(usize) -> Result<String>) -> Result<String> {
        let mut path = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut name = String::new();
            for piece in node {
                match piece {
                    Piece::Text(t) => name.push_str(t),
                    Piece::Column(c) => name.push_str(&value(*c)?),
                }
            }
            if i == 0 {
                // Checked to be `root` when parsed: the one place a reserved word stands bare.
                path.push_str(&name);
            } else {
                path.push('.');
                path.push_str(&quote_node(&name));
            }
        }
        Ok(path)
    }

    /// A filler for the rows of `batch`.
    pub fn filler<'a>(&'a self, batch: &'a RecordBatch) -> Result<DeviceFiller<'a>> {
        let options = FormatOptions::default();
        let mut formatters = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let array = batch.column(*c);
            formatters.push((*c, array.as_ref(), ArrayFormatter::try_new(array.as_ref(), &options)?));
        }
        Ok(DeviceFiller { template: self, batch, formatters })
    }
}

/// Fills a [`DeviceTemplate`] from the rows of one batch.
pub struct DeviceFiller<'a> {
    template: &'a DeviceTemplate,
    batch: &'a RecordBatch,
    formatters: Vec<(usize, &'a dyn Array, ArrayFormatter<'a>)>,
}

impl DeviceFiller<'_> {
    /// The device path of `row`; a NULL or empty value is an error naming the row.
    pub fn path(&self, row: usize) -> Result<String> {
        self.template.render(|c| {
            let Some((_, array, formatter)) = self.formatters.iter().find(|f| f.0 == c) else {
                return Err(Error::internal("device template column without formatter"));
            };
            let name = self.batch.schema().field(c).name().clone();
            if array.is_null(row) {
                return Err(Error::user(format!(
                    "iotdb sink: column `{name}` is NULL in the row ({}), so its device path cannot be built; filter such rows out or use COALESCE",
                    self.describe_row(row)
                )));
            }
            let value = formatter.value(row).to_string();
            if value.is_empty() {
                return Err(Error::user(format!(
                    "iotdb sink: column `{name}` is empty in the row ({}), which is not a valid device path node",
                    self.describe_row(row)
                )));
            }
            Ok(value)
        })
    }

    fn describe_row(&self, row: usize) -> String {
        describe_row(self.batch, row)
    }
}

/// `a=1, b='x'`: a row for error messages.
pub fn describe_row(batch: &RecordBatch, row: usize) -> String {
    let options = FormatOptions::default().with_null("NULL");
    let schema = batch.schema();
    let mut parts = Vec::new();
    for (i, field) in schema.fields().iter().enumerate().take(8) {
        let value = ArrayFormatter::try_new(batch.column(i).as_ref(), &options)
            .map(|f| f.value(row).to_string())
            .unwrap_or_else(|_| "?".into());
        parts.push(format!("{}={value}", field.name()));
    }
    parts.join(", ")
}

/// Column types a device template may read.
pub fn is_template_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn cols(name: &str) -> Result<usize> {
        match name {
            "site" => Ok(0),
            "id" => Ok(1),
            other => Err(Error::user(format!("no column {other}"))),
        }
    }

    #[test]
    fn quoting_follows_iotdb_rules() {
        assert_eq!(quote_node("d_1"), "d_1");
        assert_eq!(quote_node("温度"), "温度");
        assert_eq!(quote_node("d-1"), "`d-1`");
        assert_eq!(quote_node("a.b"), "`a.b`");
        assert_eq!(quote_node("123"), "`123`");
        assert_eq!(quote_node("1e5"), "`1e5`");
        assert_eq!(quote_node("e5"), "e5");
        assert_eq!(quote_node("time"), "`time`");
        assert_eq!(quote_node("a`b"), "`a``b`");
        assert_eq!(quote_node("with space"), "`with space`");
    }

    #[test]
    fn templates_fill_and_quote_each_node() {
        let t = DeviceTemplate::parse("root.`my-sg`.{site}.d{id}", cols).unwrap();
        assert_eq!(t.columns(), &[0, 1]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("site", DataType::Utf8, true),
            Field::new("id", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("north.1"), Some("plain"), None, Some("")])),
                Arc::new(Int32Array::from(vec![Some(7), Some(8), Some(9), Some(1)])),
            ],
        )
        .unwrap();
        let f = t.filler(&batch).unwrap();
        assert_eq!(f.path(0).unwrap(), "root.`my-sg`.`north.1`.d7");
        assert_eq!(f.path(1).unwrap(), "root.`my-sg`.plain.d8");
        let err = f.path(2).unwrap_err().to_string();
        assert!(err.contains("`site` is NULL in the row (site=NULL, id=9)"), "{err}");
        assert!(f.path(3).unwrap_err().to_string().contains("empty in the row (site=, id=1)"));
    }

    #[test]
    fn fixed_and_invalid_templates() {
        assert_eq!(DeviceTemplate::parse("root.sg.d1", cols).unwrap().fixed().unwrap(), "root.sg.d1");
        assert!(DeviceTemplate::parse("root.sg.{id}", cols).unwrap().fixed().is_none());
        for bad in ["sg.d1", "root", "root..d1", "root.sg.{id", "root.`sg", "root.sg.{nope}", "root.sg.}"] {
            assert!(DeviceTemplate::parse(bad, cols).is_err(), "{bad}");
        }
    }
}
