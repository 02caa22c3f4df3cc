//! The captured tables as MySQL describes them (`information_schema`), and how their columns map
//! onto the declared columns of the Flink table.

use std::sync::Arc;

use super::binary_text::BinaryText;
use super::cell::TextKind;
use super::charset::Charset;
use super::discovered::{self, TypeChoices};
use crate::changelog::TableId;
use crate::error::{Error, Result};
use crate::sql::TableSpec;

/// One MySQL column, with what decoding needs to know beyond the binlog's type byte.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `json`, …).
    pub data_type: String,
    /// `COLUMN_TYPE` (`int(10) unsigned`, `enum('a','b')`, …).
    pub column_type: String,
    pub unsigned: bool,
    /// ENUM or SET members in declaration order.
    pub enum_values: Vec<String>,
    /// How its character data becomes text.
    pub charset: Charset,
    /// `BINARY(n)`: n (the binlog strips trailing zero bytes).
    pub binary_length: Option<usize>,
    /// Fractional-second digits of TIME/DATETIME/TIMESTAMP.
    pub fraction_digits: u8,
    /// MariaDB INET4/INET6/UUID: stored (and in the binlog) as binary, selected as text.
    pub binary_text: Option<BinaryText>,
    /// `FLOAT(M,D)`: Flink CDC (Debezium) reads a FLOAT with a scale as a DOUBLE, so its
    /// decimal form is the widened double's, not the float's.
    pub float_as_double: bool,
    /// How its values read in snapshot rows: in the text protocol, and those the binary protocol
    /// sends as text.
    pub text_kind: TextKind,
    /// `IS_NULLABLE`: the column may hold NULL.
    pub nullable: bool,
}

impl SourceColumn {
    /// The column's name as an SQL identifier.
    pub fn quoted_name(&self) -> String {
        format!("`{}`", self.name.replace('`', "``"))
    }

    /// Builds a column from `information_schema.COLUMNS` fields.
    pub fn new(
        name: String,
        data_type: &str,
        column_type: &str,
        charset: Option<&str>,
        octet_length: Option<u64>,
        datetime_precision: Option<u64>,
    ) -> Self {
        let data_type = data_type.to_ascii_lowercase();
        let lower = column_type.to_ascii_lowercase();
        let enum_values = if data_type == "enum" || data_type == "set" { parse_members(column_type) } else { vec![] };
        SourceColumn {
            name,
            unsigned: lower.contains("unsigned"),
            enum_values,
            charset: Charset::of(charset),
            binary_length: if data_type == "binary" { octet_length.map(|n| n as usize) } else { None },
            fraction_digits: datetime_precision.unwrap_or(0).min(6) as u8,
            float_as_double: data_type == "float" && column_type.contains(','),
            binary_text: BinaryText::of(&data_type),
            text_kind: TextKind::of(&data_type),
            nullable: true,
            data_type,
            column_type: column_type.to_string(),
        }
    }

    #[cfg(test)]
    pub fn for_tests(name: &str, column_type: &str) -> Self {
        let data_type = column_type.split(['(', ' ']).next().unwrap_or(column_type);
        let digits = column_type.split_once('(').and_then(|(_, r)| r.trim_end_matches(')').parse().ok());
        SourceColumn::new(name.into(), data_type, column_type, Some("utf8mb4"), None, digits)
    }

    /// The column in a snapshot's select list.
    fn selected(&self) -> String {
        if self.text_kind == TextKind::Set {
            format!("CAST({} AS UNSIGNED)", self.quoted_name())
        } else {
            self.quoted_name()
        }
    }

    pub fn is_integer(&self) -> bool {
        matches!(self.data_type.as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "bigint")
    }

    /// Whether a binlog column of `real_type` (the table map's type, ENUM and SET resolved) can
    /// be this column: a description of the table from after a later ALTER would give the
    /// events before it another shape. Types this cannot judge (those of plugins) fit.
    pub fn fits_binlog_type(&self, real_type: u8) -> bool {
        use super::cell::column_type as t;
        let expected: &[u8] = match self.data_type.as_str() {
            "tinyint" | "bool" | "boolean" => &[t::TINY],
            "smallint" => &[t::SHORT],
            "mediumint" => &[t::INT24],
            "int" | "integer" => &[t::LONG],
            "bigint" => &[t::LONGLONG],
            "float" => &[t::FLOAT],
            "double" | "real" => &[t::DOUBLE],
            "decimal" | "numeric" => &[t::NEWDECIMAL],
            "year" => &[t::YEAR],
            "date" => &[t::DATE, t::NEWDATE],
            "time" => &[t::TIME, t::TIME2],
            "datetime" => &[t::DATETIME, t::DATETIME2],
            "timestamp" => &[t::TIMESTAMP, t::TIMESTAMP2],
            "bit" => &[t::BIT],
            "enum" => &[t::ENUM],
            "set" => &[t::SET],
            "char" | "varchar" | "binary" | "varbinary" => &[t::STRING, t::VARCHAR, t::VAR_STRING],
            "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                &[t::BLOB, t::TINY_BLOB, t::MEDIUM_BLOB, t::LONG_BLOB]
            }
            // MySQL's JSON has its own type; MariaDB's is LONGTEXT.
            "json" => &[t::JSON, t::BLOB],
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
            | "geometrycollection" => &[t::GEOMETRY],
            _ => return true,
        };
        expected.contains(&real_type)
    }
}

/// `enum('a','it''s')` → ["a", "it's"].
pub fn parse_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else { return vec![] };
    let body = &column_type[open + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                Some('\'') | None => break,
                Some('\\') => {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                }
                Some(ch) => value.push(ch),
            }
        }
        out.push(value);
    }
    out
}

/// How one declared column is filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// From the MySQL column at this ordinal (0-based).
    Column(usize),
    DatabaseName,
    TableName,
    OpTs,
    RowKind,
}

/// Which columns the captured tables are read into.
#[derive(Debug, Clone)]
pub enum Declared {
    /// A Flink table's declared columns: every captured table is read into them, as that one
    /// table (its changes carry no table id).
    Table(Arc<TableSpec>),
    /// Each table into its own columns as the server describes them (a pipeline definition's
    /// source); its changes carry its id, `database.table`.
    PerTable(TypeChoices),
}

/// A captured MySQL table.
#[derive(Debug, Clone)]
pub struct CapturedTable {
    /// The columns its rows are read into: one shared declaration, or its own.
    pub spec: Arc<TableSpec>,
    /// What its changes are tagged with.
    pub id: TableId,
    pub database: String,
    pub table: String,
    pub columns: Vec<SourceColumn>,
    /// Per declared column, where its value comes from.
    pub fills: Vec<Fill>,
    /// The MySQL column that splits the snapshot into chunks, if any.
    pub chunk_key: Option<usize>,
    /// Declared columns that identify a row (declared PRIMARY KEY, else the chunk key), for the
    /// incremental snapshot's reconciliation; empty for the legacy snapshot.
    pub key_columns: Vec<usize>,
}

impl CapturedTable {
    pub fn qualified(&self) -> String {
        format!("`{}`.`{}`", self.database.replace('`', "``"), self.table.replace('`', "``"))
    }

    /// Maps the declared columns onto this table's columns. `mysql_primary_key` lists its primary
    /// key columns in key order. The incremental snapshot needs a chunk key (the first primary key
    /// column or `chunk_key_option`) to split and reconcile the table; the legacy one needs none.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        declared: &Declared,
        database: String,
        table: String,
        columns: Vec<SourceColumn>,
        mysql_primary_key: &[String],
        chunk_key_option: Option<&str>,
        incremental: bool,
    ) -> Result<Self> {
        let (spec, id) = match declared {
            Declared::Table(spec) => (spec.clone(), None),
            // Its key splits the snapshot, matches the binlog to it and keys the sink's table.
            Declared::PerTable(_) if mysql_primary_key.is_empty() => {
                return Err(Error::user(format!(
                    "MySQL table `{database}`.`{table}` has no primary key, which a pipeline source needs (to read it \
                     in chunks, match its changes and key the table it is written to); add a primary key to it, or \
                     leave it out with `tables.exclude: {database}.{table}`"
                )))
            }
            Declared::PerTable(choices) => (
                Arc::new(discovered::table_spec(&database, &table, &columns, mysql_primary_key, *choices)?),
                Some(Arc::from(format!("{database}.{table}"))),
            ),
        };
        let position = |name: &str| columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
        let mut fills = Vec::with_capacity(spec.columns.len());
        for column in &spec.columns {
            let fill = match &column.metadata {
                Some(m) => match m.key.as_str() {
                    "database_name" => Fill::DatabaseName,
                    "table_name" => Fill::TableName,
                    "op_ts" => Fill::OpTs,
                    "row_kind" => Fill::RowKind,
                    other => return Err(Error::internal(format!("unexpected metadata key '{other}'"))),
                },
                None => Fill::Column(position(&column.name).ok_or_else(|| {
                    Error::user(format!(
                        "column `{}` of table `{}` does not exist in MySQL table `{database}`.`{table}` (its columns: {}); declare only existing columns, or read it as metadata",
                        column.name,
                        spec.name,
                        columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?),
            };
            fills.push(fill);
        }
        if !incremental {
            // One consistent read at one binlog position: nothing is split or matched by key, so
            // keyless tables work (their changes are whole row images).
            return Ok(CapturedTable {
                spec,
                id,
                database,
                table,
                columns,
                fills,
                chunk_key: None,
                key_columns: Vec::new(),
            });
        }
        let chunk_key = match chunk_key_option {
            Some(name) => Some(position(name).ok_or_else(|| {
                Error::user(format!(
                    "'scan.incremental.snapshot.chunk.key-column' = '{name}' of table `{}` is not a column of MySQL table `{database}`.`{table}`",
                    spec.name
                ))
            })?),
            None => mysql_primary_key.first().and_then(|k| position(k)),
        };
        let Some(chunk_key) = chunk_key else {
            return Err(Error::user(format!(
                "MySQL table `{database}`.`{table}` has no primary key, so table `{}` cannot be snapshotted in chunks and its changes cannot be matched; add a primary key to the MySQL table, set 'scan.incremental.snapshot.chunk.key-column' to a unique column, or read it with the single-pass snapshot ('scan.incremental.snapshot.enabled' = 'false')",
                spec.name
            )));
        };
        let declared_of = |mysql: usize| fills.iter().position(|f| *f == Fill::Column(mysql));
        let declared_key: Vec<usize> =
            spec.primary_key.iter().filter_map(|k| spec.columns.iter().position(|c| &c.name == k)).collect();
        let key_columns: Vec<usize> = if declared_key.is_empty() {
            let mysql_keys: Vec<usize> = if chunk_key_option.is_some() {
                vec![chunk_key]
            } else {
                mysql_primary_key.iter().filter_map(|k| position(k)).collect()
            };
            mysql_keys.iter().map(|k| declared_of(*k)).collect::<Option<Vec<_>>>().unwrap_or_default()
        } else {
            declared_key
        };
        if key_columns.is_empty() || declared_of(chunk_key).is_none() {
            return Err(Error::user(format!(
                "table `{}` must declare the key column `{}` of MySQL table `{database}`.`{table}` (and its PRIMARY KEY … NOT ENFORCED): the snapshot is reconciled with the binlog by key",
                spec.name, columns[chunk_key].name
            )));
        }
        Ok(CapturedTable { spec, id, database, table, columns, fills, chunk_key: Some(chunk_key), key_columns })
    }

    /// The declared column holding an integer chunk key, by which a chunk's rows can be cut
    /// into smaller key ranges.
    pub fn declared_chunk_key(&self) -> Option<usize> {
        let key = self.chunk_key.filter(|k| self.columns[*k].is_integer())?;
        self.fills.iter().position(|f| *f == Fill::Column(key))
    }

    /// The column list of snapshot queries answered in the binary protocol: every MySQL column,
    /// in table order, so that snapshot rows line up with binlog row images. SET columns are
    /// selected as their bit mask, as the binlog has them (their text leaves out an
    /// empty-string member).
    pub fn select_list(&self) -> String {
        self.columns.iter().map(SourceColumn::selected).collect::<Vec<_>>().join(", ")
    }

    /// [`CapturedTable::select_list`] for queries answered in the text protocol. The text of a
    /// FLOAT has six significant digits (3.1415927 reads `3.14159`, 16777216 `16777200`), while
    /// the binlog holds all its bits; as a DOUBLE (`* 1e0`, exact, sign of zero kept) its text
    /// reads back to the same FLOAT.
    pub fn text_select_list(&self) -> String {
        let column = |c: &SourceColumn| {
            if c.data_type == "float" {
                format!("{} * 1e0", c.quoted_name())
            } else {
                c.selected()
            }
        };
        self.columns.iter().map(column).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_members_with_quotes() {
        assert_eq!(parse_members("enum('a','it''s','x,y')"), vec!["a", "it's", "x,y"]);
        assert_eq!(parse_members("set('')"), vec![""]);
        assert!(parse_members("int(11)").is_empty());
    }

    #[test]
    fn snapshots_select_sets_as_masks_and_floats_as_doubles_in_text() {
        use datafusion::arrow::datatypes::DataType;
        let column = |name: &str, data_type: DataType| crate::sql::ColumnSpec {
            name: name.into(),
            data_type,
            nullable: true,
            type_text: String::new(),
            metadata: None,
            comment: None,
        };
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![
                column("id", DataType::Int32),
                column("s", crate::sql::types::list_of(DataType::Utf8, true)),
                column("f", DataType::Float64),
            ],
            primary_key: vec![],
            options: vec![],
            comment: None,
            computed: Vec::new(),
        };
        let columns = vec![
            SourceColumn::for_tests("id", "int"),
            SourceColumn::for_tests("s", "set('a','b')"),
            SourceColumn::for_tests("f", "float"),
        ];
        let declared = Declared::Table(Arc::new(spec));
        let table =
            CapturedTable::new(&declared, "db".into(), "t".into(), columns, &["id".into()], None, false).unwrap();
        assert_eq!(table.select_list(), "`id`, CAST(`s` AS UNSIGNED), `f`");
        assert_eq!(table.text_select_list(), "`id`, CAST(`s` AS UNSIGNED), `f` * 1e0");
        assert!(SourceColumn::for_tests("w", "float(10,3)").float_as_double);
        assert!(!SourceColumn::for_tests("w", "float").float_as_double);
    }
}
