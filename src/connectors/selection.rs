//! Which tables of a server a CDC source captures. The SQL connectors name them by one regular
//! expression per level ('database-name' and 'table-name'); Flink CDC's pipeline sources by a
//! comma-separated list of dotted patterns (`tables: app_db.\.*, db1.user_[0-9]+`), where the
//! dot separates the levels (database and table; for PostgreSQL database, schema and table) and
//! `\.` is the regular expression's "any character". Every level matches a whole name, as Java's
//! `Pattern.matches` does. Names that contain a dot cannot be told apart from two levels, as in
//! Flink CDC.

use regex::Regex;

use super::ConnectorOptions;
use crate::error::Result;

/// One pattern: a regular expression per level.
#[derive(Debug, Clone)]
pub struct TablePattern {
    levels: Vec<Regex>,
    /// The levels as one expression over the dotted name, for capture groups (`$1`).
    whole: Regex,
    text: String,
}

/// What a source captures: every table some included pattern matches and no excluded one does.
#[derive(Debug, Clone)]
pub struct TableSelection {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
    text: String,
    /// The options that select, as the user wrote them, for messages.
    written: String,
}

fn anchored(text: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{text})$")).map_err(|e| e.to_string().replace('\n', " "))
}

/// Splits `text` at `separator` where it stands outside brackets, braces and parentheses (and,
/// for dots, is not escaped), so `[a,b]`, `x{1,3}` and `a\.b` stay whole.
fn split_outside_groups(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0i32;
    let mut escaped = false;
    for c in text.chars() {
        let part = parts.last_mut().expect("parts starts non-empty");
        if escaped {
            escaped = false;
            part.push(c);
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth -= 1,
            _ if c == separator && depth <= 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
    parts
}

impl TablePattern {
    /// One dotted pattern of `levels` levels (`db.table`), `\.` meaning any character.
    pub fn parse(text: &str, levels: usize, shape: &str) -> Result<Self, String> {
        let text = text.trim();
        let parts: Vec<String> = split_outside_groups(text, '.').into_iter().map(|p| p.replace("\\.", ".")).collect();
        if parts.len() != levels || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "'{text}' is not a table pattern of the form {shape}: the dot separates the names (write `\\.` for \
                 the regular expression's any character, e.g. app_db.\\.*)"
            ));
        }
        let levels = parts
            .iter()
            .map(|p| anchored(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("'{text}' is not a valid table pattern: {e}"))?;
        let whole = anchored(&parts.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("\\."))
            .map_err(|e| format!("'{text}' is not a valid table pattern: {e}"))?;
        Ok(TablePattern { levels, whole, text: text.to_string() })
    }

    /// The pattern of the SQL connectors' 'database-name' and 'table-name' options.
    pub fn of_levels(levels: Vec<Regex>, whole: Regex, text: String) -> Self {
        TablePattern { levels, whole, text }
    }

    pub fn matches(&self, names: &[&str]) -> bool {
        names.len() == self.levels.len() && self.levels.iter().zip(names).all(|(re, name)| re.is_match(name))
    }

    /// The capture groups of the pattern over `qualified` (the dotted name): `$0` is the whole
    /// name, `$1`… the groups in the order written. `None` when the pattern does not match it.
    pub fn captures<'n>(&self, qualified: &'n str) -> Option<regex::Captures<'n>> {
        self.whole.captures(qualified)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The name level `level` spells out, when it is a plain name (letters, digits and `_`)
    /// rather than an expression matching several.
    fn literal(&self, level: usize) -> Option<&str> {
        let re = self.levels.get(level)?.as_str();
        let name = re.strip_prefix("^(?:")?.strip_suffix(")$")?;
        (!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some(name)
    }
}

impl TableSelection {
    /// Flink CDC's `tables` and `tables.exclude`: comma-separated dotted patterns of `levels`
    /// levels. The error says what is wrong with which pattern.
    /// A pipeline source's `tables` and `tables.exclude`, consumed from `o`: patterns of `levels`
    /// dotted parts (`shape` in messages). Also gives `tables` as written, for later messages.
    pub(crate) fn from_pipeline_options(
        o: &mut ConnectorOptions,
        levels: usize,
        shape: &str,
    ) -> Result<(TableSelection, String)> {
        let tables = o.required("tables")?;
        let exclude = o.string("tables.exclude");
        let invalid = |o: &ConnectorOptions, key: &str, value: &str, why: String| {
            o.invalid(key, value, &format!("comma-separated {shape} patterns: {why}"))
        };
        let selection = |exclude: Option<&str>| TableSelection::parse(&tables, exclude, levels, shape);
        selection(None).map_err(|why| invalid(o, "tables", &tables, why))?;
        let selected = selection(exclude.as_deref())
            .map_err(|why| invalid(o, "tables.exclude", exclude.as_deref().unwrap_or_default(), why))?;
        Ok((selected, tables))
    }

    pub fn parse(tables: &str, exclude: Option<&str>, levels: usize, shape: &str) -> Result<Self, String> {
        let list = |text: &str| -> Result<Vec<TablePattern>, String> {
            split_outside_groups(text, ',')
                .iter()
                .filter(|p| !p.trim().is_empty())
                .map(|p| TablePattern::parse(p, levels, shape))
                .collect()
        };
        let include = list(tables)?;
        if include.is_empty() {
            return Err("no table pattern given".to_string());
        }
        let exclude = exclude.map(list).transpose()?.unwrap_or_default();
        let text = match exclude.is_empty() {
            true => tables.trim().to_string(),
            false => format!("{} excluding {}", tables.trim(), exclude_text(&exclude)),
        };
        let written = match exclude.is_empty() {
            true => format!("`tables: {}`", tables.trim()),
            false => format!("`tables: {}` and `tables.exclude: {}`", tables.trim(), exclude_text(&exclude)),
        };
        Ok(TableSelection { include, exclude, text, written })
    }

    /// One pattern, as the SQL connectors name their tables; `text` is how identities show it,
    /// `written` the options as the user wrote them.
    pub fn single(pattern: TablePattern, text: String, written: String) -> Self {
        TableSelection { include: vec![pattern], exclude: Vec::new(), text, written }
    }

    /// Whether the table named by its levels (`[database, table]`) is captured.
    pub fn matches(&self, names: &[&str]) -> bool {
        self.include.iter().any(|p| p.matches(names)) && !self.exclude.iter().any(|p| p.matches(names))
    }

    /// The one name level `level` of every included pattern spells out, if they all spell the
    /// same plain name (a PostgreSQL source connects to one database, which its patterns name).
    pub fn literal_level(&self, level: usize) -> Option<String> {
        let mut names = self.include.iter().map(|p| p.literal(level));
        let first = names.next()??;
        names.all(|n| n == Some(first)).then(|| first.to_string())
    }

    /// The selection as configured, for identities.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The options that select, as written, for messages.
    pub fn written(&self) -> &str {
        &self.written
    }
}

fn exclude_text(exclude: &[TablePattern]) -> String {
    exclude.iter().map(|p| p.text()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(tables: &str, exclude: Option<&str>) -> TableSelection {
        TableSelection::parse(tables, exclude, 2, "database.table").unwrap()
    }

    #[test]
    fn flink_cdc_patterns_select_as_documented() {
        // (tables, exclude, [(database, table, selected)])
        type Case<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str, bool)]);
        let cases: &[Case] = &[
            ("app_db.\\.*", None, &[("app_db", "orders", true), ("app_db2", "orders", false)]),
            (
                "db0.\\.*, db1.user_table_[0-9]+",
                None,
                &[
                    ("db0", "x", true),
                    ("db1", "user_table_7", true),
                    ("db1", "user_table_x", false),
                    ("db1", "x", false),
                ],
            ),
            ("db[1-2].[app|web]order_\\.*", None, &[("db1", "aorder_x", true), ("db3", "aorder_x", false)]),
            ("shop.t_[0-9]{1,3}", None, &[("shop", "t_12", true), ("shop", "t_1234", false)]),
            (
                "shop.\\.*",
                Some("shop.audit_\\.*, shop.tmp"),
                &[("shop", "orders", true), ("shop", "audit_1", false), ("shop", "tmp", false), ("shop", "tmp2", true)],
            ),
            (
                "shop.orders",
                None,
                &[("shop", "orders", true), ("shop", "orders_old", false), ("xshop", "orders", false)],
            ),
        ];
        for (tables, exclude, expectations) in cases {
            let s = selection(tables, *exclude);
            for (db, table, selected) in *expectations {
                assert_eq!(s.matches(&[db, table]), *selected, "{tables} / {exclude:?}: {db}.{table}");
            }
        }
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let cases = [
            ("orders", "'orders' is not a table pattern of the form database.table"),
            ("a.b.c", "'a.b.c' is not a table pattern of the form database.table"),
            ("shop.(", "'shop.(' is not a valid table pattern: regex parse error"),
            (" , ", "no table pattern given"),
        ];
        for (tables, expected) in cases {
            let error = TableSelection::parse(tables, None, 2, "database.table").unwrap_err();
            assert!(error.starts_with(expected), "{tables}: {error}");
        }
    }

    #[test]
    fn a_level_every_pattern_spells_out_is_its_name() {
        let level =
            |tables: &str| TableSelection::parse(tables, None, 3, "database.schema.table").unwrap().literal_level(0);
        assert_eq!(level("shop.public.\\.*, shop.sales_[0-9].orders").as_deref(), Some("shop"));
        assert_eq!(level("shop.public.a, other.public.b"), None, "two databases");
        assert_eq!(level("shop_[0-9].public.a"), None, "an expression");
        assert_eq!(level("\\.*.public.a"), None);
    }

    #[test]
    fn capture_groups_number_across_the_levels() {
        let p = TablePattern::parse("app_(\\w+).order_([0-9]+)", 2, "database.table").unwrap();
        let c = p.captures("app_eu.order_12").unwrap();
        assert_eq!((&c[1], &c[2]), ("eu", "12"));
        assert!(p.captures("app_eu.orders").is_none());
    }
}
