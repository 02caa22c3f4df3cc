//! What a source emits and a pipeline's operators pass along, in order: changes of a table, a
//! truncation of one, or a change of its columns. Events name their table, so one source can
//! carry several tables (each `Changes` event in its own table's columns), and an operator can
//! keep state per table.

use std::sync::Arc;

use datafusion::scalar::ScalarValue;

use super::ChangeBatch;

/// Names a captured table within its source (e.g. `schema.table`); `None` for the one table a
/// source was declared for, when it does not tell its tables apart.
pub type TableId = Option<Arc<str>>;

#[derive(Debug, Clone)]
pub enum Event {
    /// Changes of one table.
    Changes { table: TableId, changes: ChangeBatch },
    /// The table was emptied (`TRUNCATE`), without a delete for each of its rows.
    Truncated(Truncation),
    /// The table's columns changed (`ALTER TABLE`): the table's changes after this event are of
    /// its new shape.
    SchemaChanged(SchemaChange),
}

#[derive(Debug, Clone)]
pub struct Truncation {
    pub table: TableId,
    /// Values for the columns (by index) that describe a change rather than a row — metadata
    /// such as `op_ts` or `row_kind` — in the deletes the truncation becomes; the other columns
    /// keep the values of the rows deleted.
    pub change_columns: Vec<(usize, ScalarValue)>,
}

/// A captured table's columns before and after an `ALTER TABLE`, in the source database's own
/// terms, as the source learnt of it while reading the log: it precedes the table's first change
/// in its new shape (a change that no row follows is not seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    pub table: TableId,
    pub before: Vec<SourceColumn>,
    pub after: Vec<SourceColumn>,
}

/// A column as the source database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// The type as the database names it, e.g. `int(11)`, `varchar(20)`, `numeric(10,2)`.
    pub data_type: String,
}

impl SchemaChange {
    /// What changed, for people: `added `note` text; dropped `legacy`; `price` int → bigint`.
    /// Columns are matched by name; a column renamed shows as one dropped and one added.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for column in &self.after {
            match self.before.iter().find(|b| b.name == column.name) {
                None => parts.push(format!("added `{}` {}", column.name, column.data_type)),
                Some(b) if b.data_type != column.data_type => {
                    parts.push(format!("`{}` {} → {}", column.name, b.data_type, column.data_type))
                }
                Some(_) => {}
            }
        }
        for column in &self.before {
            if !self.after.iter().any(|a| a.name == column.name) {
                parts.push(format!("dropped `{}`", column.name));
            }
        }
        fn names(columns: &[SourceColumn]) -> Vec<&str> {
            columns.iter().map(|c| c.name.as_str()).collect()
        }
        if parts.is_empty() && names(&self.before) != names(&self.after) {
            parts.push(format!("columns reordered to ({})", names(&self.after).join(", ")));
        }
        if parts.is_empty() {
            // Only what the description above leaves out changed (e.g. a default or a comment).
            parts.push("column attributes changed".to_string());
        }
        parts.join("; ")
    }
}

impl Event {
    /// Changes of the table a source was declared for.
    pub fn changes(changes: ChangeBatch) -> Self {
        Event::Changes { table: None, changes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(spec: &[(&str, &str)]) -> Vec<SourceColumn> {
        spec.iter().map(|(n, t)| SourceColumn { name: n.to_string(), data_type: t.to_string() }).collect()
    }

    #[test]
    fn a_schema_change_names_each_added_dropped_and_retyped_column() {
        let change = SchemaChange {
            table: Some("shop.orders".into()),
            before: columns(&[("id", "int(11)"), ("price", "int(11)"), ("legacy", "text")]),
            after: columns(&[("id", "int(11)"), ("price", "bigint(20)"), ("note", "varchar(20)")]),
        };
        assert_eq!(change.describe(), "`price` int(11) → bigint(20); added `note` varchar(20); dropped `legacy`");
    }

    #[test]
    fn a_schema_change_of_order_only_says_so() {
        let change = SchemaChange {
            table: None,
            before: columns(&[("a", "int"), ("b", "int")]),
            after: columns(&[("b", "int"), ("a", "int")]),
        };
        assert_eq!(change.describe(), "columns reordered to (b, a)");
    }
}
