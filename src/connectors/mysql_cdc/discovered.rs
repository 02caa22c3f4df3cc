//! A MySQL table's own columns as Flink columns, for a source that reads every captured table
//! into its own columns (a pipeline definition's `source`) rather than into one declared table.
//! Each type gets the Flink type that holds all its values exactly — the choice the type table
//! of docs/connectors/mysql-cdc.md marks as the faithful one, and the one docs/pipeline.md lists.

use datafusion::arrow::datatypes::{DataType, TimeUnit};

use super::schema::SourceColumn;
use crate::error::{Error, Result};
use crate::sql::types::{flink_type_name, time_unit_for_precision, UTC};
use crate::sql::{ColumnSpec, TableSpec};

/// How a pipeline source types the columns it discovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeChoices {
    /// `treat-tinyint1-as-boolean.enabled` (Flink CDC's default: true).
    pub tinyint1_as_boolean: bool,
}

/// `(p, s)` of `decimal(p,s)`.
fn precision_scale(column_type: &str) -> Option<(u8, i8)> {
    let inner = column_type.split_once('(')?.1.split_once(')')?.0;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The Arrow type of one MySQL column, or `None` for a type with no faithful mapping.
fn column_type(column: &SourceColumn, choices: TypeChoices) -> Option<DataType> {
    let unsigned = column.unsigned;
    let lower = column.column_type.to_ascii_lowercase();
    Some(match column.data_type.as_str() {
        "tinyint" if choices.tinyint1_as_boolean && lower.starts_with("tinyint(1)") && !unsigned => DataType::Boolean,
        "bool" | "boolean" => DataType::Boolean,
        "tinyint" if unsigned => DataType::UInt8,
        "tinyint" => DataType::Int8,
        "smallint" if unsigned => DataType::UInt16,
        "smallint" => DataType::Int16,
        "mediumint" | "int" | "integer" if unsigned => DataType::UInt32,
        "mediumint" | "int" | "integer" => DataType::Int32,
        "bigint" if unsigned => DataType::UInt64,
        "bigint" => DataType::Int64,
        "decimal" | "numeric" | "fixed" => {
            let (p, s) = precision_scale(&lower)?;
            if p <= 38 {
                DataType::Decimal128(p, s)
            } else {
                DataType::Decimal256(p, s)
            }
        }
        // Flink CDC reads a FLOAT with a scale as a DOUBLE (its values are the widened double's).
        "float" if column.float_as_double => DataType::Float64,
        "float" => DataType::Float32,
        "double" | "real" => DataType::Float64,
        "bit" if lower == "bit(1)" => DataType::Boolean,
        "bit" => DataType::Binary,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" | "json" => {
            DataType::Utf8
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => DataType::Binary,
        "inet4" | "inet6" | "uuid" => DataType::Utf8,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" => DataType::Utf8,
        "date" => DataType::Date32,
        "time" => match time_unit_for_precision(column.fraction_digits.into()) {
            unit @ (TimeUnit::Second | TimeUnit::Millisecond) => DataType::Time32(unit),
            unit => DataType::Time64(unit),
        },
        "datetime" => DataType::Timestamp(time_unit_for_precision(column.fraction_digits.into()), None),
        "timestamp" => DataType::Timestamp(time_unit_for_precision(column.fraction_digits.into()), Some(UTC.into())),
        "year" => DataType::Int32,
        _ => return None,
    })
}

/// The table `database`.`table` as Flink columns, keyed by its primary key.
pub fn table_spec(
    database: &str,
    table: &str,
    columns: &[SourceColumn],
    primary_key: &[String],
    choices: TypeChoices,
) -> Result<TableSpec> {
    let mut specs = Vec::with_capacity(columns.len());
    for column in columns {
        let data_type = column_type(column, choices).ok_or_else(|| {
            Error::user(format!(
                "column `{}` of MySQL table `{database}`.`{table}` has type {}, which a pipeline source cannot read yet; \
                 leave the table out with `tables.exclude`",
                column.name, column.column_type
            ))
        })?;
        specs.push(ColumnSpec {
            name: column.name.clone(),
            type_text: flink_type_name(&data_type),
            data_type,
            nullable: column.nullable && !primary_key.contains(&column.name),
            metadata: None,
            comment: None,
        });
    }
    Ok(TableSpec {
        name: format!("{database}.{table}"),
        columns: specs,
        primary_key: primary_key.to_vec(),
        options: Vec::new(),
        comment: None,
        computed: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(column_type: &str, tinyint1_as_boolean: bool) -> Option<String> {
        let column = SourceColumn::for_tests("c", column_type);
        column_type_of(&column, tinyint1_as_boolean)
    }

    fn column_type_of(column: &SourceColumn, tinyint1_as_boolean: bool) -> Option<String> {
        column_type(column, TypeChoices { tinyint1_as_boolean }).map(|t| flink_type_name(&t))
    }

    /// The mapping docs/pipeline.md documents, row by row.
    #[test]
    fn mysql_types_map_as_documented() {
        let cases = [
            ("tinyint(1)", "BOOLEAN"),
            ("tinyint(4)", "TINYINT"),
            ("tinyint(3) unsigned", "TINYINT UNSIGNED"),
            ("smallint(6)", "SMALLINT"),
            ("smallint(5) unsigned", "SMALLINT UNSIGNED"),
            ("mediumint(9)", "INT"),
            ("int(11)", "INT"),
            ("int(10) unsigned", "INT UNSIGNED"),
            ("bigint(20)", "BIGINT"),
            ("bigint(20) unsigned", "BIGINT UNSIGNED"),
            ("decimal(10,2)", "DECIMAL(10, 2)"),
            ("decimal(65,30)", "DECIMAL(65, 30)"),
            ("float", "FLOAT"),
            ("float(10,3)", "DOUBLE"),
            ("double", "DOUBLE"),
            ("bit(1)", "BOOLEAN"),
            ("bit(12)", "BYTES"),
            ("varchar(20)", "STRING"),
            ("longtext", "STRING"),
            ("enum('a','b')", "STRING"),
            ("set('a','b')", "STRING"),
            ("json", "STRING"),
            ("binary(4)", "BYTES"),
            ("blob", "BYTES"),
            ("date", "DATE"),
            ("time", "TIME(0)"),
            ("time(3)", "TIME(3)"),
            ("time(6)", "TIME(6)"),
            ("datetime", "TIMESTAMP(0)"),
            ("datetime(6)", "TIMESTAMP(6)"),
            ("timestamp(3)", "TIMESTAMP_LTZ(3)"),
            ("year(4)", "INT"),
            ("point", "STRING"),
            ("uuid", "STRING"),
        ];
        for (mysql, flink) in cases {
            assert_eq!(typed(mysql, true).as_deref(), Some(flink), "{mysql}");
        }
        assert_eq!(typed("tinyint(1)", false).as_deref(), Some("TINYINT"));
        assert_eq!(typed("vector(3)", true), None);
    }

    #[test]
    fn key_columns_are_not_null_and_unknown_types_name_the_way_out() {
        let mut id = SourceColumn::for_tests("id", "int(11)");
        id.nullable = true;
        let spec = table_spec("db", "t", &[id], &["id".into()], TypeChoices { tinyint1_as_boolean: true }).unwrap();
        assert!(!spec.columns[0].nullable);
        assert_eq!(spec.primary_key, ["id"]);
        let error = table_spec(
            "db",
            "t",
            &[SourceColumn::for_tests("v", "vector(3)")],
            &[],
            TypeChoices { tinyint1_as_boolean: true },
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`v` of MySQL table `db`.`t` has type vector(3)") && error.contains("tables.exclude"),
            "{error}"
        );
    }
}
