//! A table as declared by `CREATE TABLE`: columns with Flink and Arrow types, primary key, metadata
//! columns and the connector options of its WITH clause.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast;

/// `col TYPE METADATA [FROM 'key'] [VIRTUAL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumn {
    pub key: String,
    /// Read-only: not part of what an INSERT writes.
    pub is_virtual: bool,
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// The type as the user wrote it, normalised (`DECIMAL(10, 2)`, `STRING`).
    pub type_text: String,
    pub metadata: Option<MetadataColumn>,
    pub comment: Option<String>,
}

/// `name AS expression [COMMENT '…']`: Flink's computed column, evaluated for every row the table's
/// source reads (`proc AS PROCTIME()`, `total AS price * qty`). A source never reads it and an
/// INSERT never writes it; its expression may use the table's other columns, not computed ones.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    pub name: String,
    pub expr: ast::Expr,
    /// Its place among all declared columns, computed ones included.
    pub position: usize,
    pub comment: Option<String>,
}

/// A declared column: read by the source or computed from those.
#[derive(Debug, Clone, Copy)]
pub enum Declared<'a> {
    Column(&'a ColumnSpec),
    Computed(&'a ComputedColumn),
}

/// One WITH option: its value after `${VAR}` substitution and as written in the job file.
#[derive(Debug, Clone)]
pub struct TableOption {
    pub key: String,
    pub value: String,
    pub written: String,
}

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    pub primary_key: Vec<String>,
    pub options: Vec<TableOption>,
    pub comment: Option<String>,
    /// Computed columns, each with its place among `columns`.
    pub computed: Vec<ComputedColumn>,
}

/// Option keys whose values are secrets: never shown in logs, errors or SHOW CREATE TABLE.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "credential", "jaas"].iter().any(|s| k.contains(s))
}

pub const MASK: &str = "******";

impl TableSpec {
    /// Every declared column, as a source produces them.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable)).collect::<Vec<_>>(),
        ))
    }

    /// Every column in declared order, computed ones at their places.
    pub fn declared(&self) -> Vec<Declared<'_>> {
        let mut all: Vec<Declared<'_>> = self.columns.iter().map(Declared::Column).collect();
        for c in &self.computed {
            all.insert(c.position.min(all.len()), Declared::Computed(c));
        }
        all
    }

    /// The columns an INSERT writes: all but VIRTUAL metadata columns.
    pub fn persisted_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| !c.metadata.as_ref().is_some_and(|m| m.is_virtual))
    }

    pub fn persisted_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.persisted_columns().map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable)).collect::<Vec<_>>(),
        ))
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|o| o.key == key).map(|o| o.value.as_str())
    }

    pub fn connector(&self) -> Option<&str> {
        self.option("connector")
    }

    /// `CREATE TABLE` text that recreates this table, with secrets masked and `${VAR}`
    /// references shown as written rather than resolved.
    pub fn show_create(&self) -> String {
        let mut lines: Vec<String> = self
            .declared()
            .into_iter()
            .map(|d| {
                let c = match d {
                    Declared::Column(c) => c,
                    Declared::Computed(c) => {
                        let mut s = format!("  `{}` AS {}", c.name, c.expr);
                        if let Some(comment) = &c.comment {
                            s.push_str(&format!(" COMMENT {}", quote(comment)));
                        }
                        return s;
                    }
                };
                let mut s = format!("  `{}` {}", c.name, c.type_text);
                if !c.nullable {
                    s.push_str(" NOT NULL");
                }
                if let Some(m) = &c.metadata {
                    s.push_str(&format!(" METADATA FROM {}", quote(&m.key)));
                    if m.is_virtual {
                        s.push_str(" VIRTUAL");
                    }
                }
                if let Some(comment) = &c.comment {
                    s.push_str(&format!(" COMMENT {}", quote(comment)));
                }
                s
            })
            .collect();
        if !self.primary_key.is_empty() {
            let cols: Vec<String> = self.primary_key.iter().map(|c| format!("`{c}`")).collect();
            lines.push(format!("  PRIMARY KEY ({}) NOT ENFORCED", cols.join(", ")));
        }
        let mut out = format!("CREATE TABLE `{}` (\n{}\n)", self.name, lines.join(",\n"));
        if let Some(comment) = &self.comment {
            out.push_str(&format!("\nCOMMENT {}", quote(comment)));
        }
        let options: Vec<String> = self
            .options
            .iter()
            .map(|o| {
                let v = if is_secret_key(&o.key) { MASK } else { o.written.as_str() };
                format!("  {} = {}", quote(&o.key), quote(v))
            })
            .collect();
        out.push_str(&format!(" WITH (\n{}\n)", options.join(",\n")));
        out
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
