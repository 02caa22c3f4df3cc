//! A PostgreSQL table's own columns as Flink columns, for a source that reads every captured
//! table into its own columns (a pipeline definition's `source`) rather than into one declared
//! table. Each type gets its faithful type ([`checks::faithful_type`], the SQL connector's type
//! table), the primary key keys the table, and NOT NULL is kept where every change carries the
//! column's value.

use super::checks::{self, is_postgis, SourceColumn};
use super::values::ColumnBuilder;
use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;
use crate::sql::{ColumnSpec, TableSpec};

/// The table `schema`.`table` (replica identity `identity`, `relreplident`) as Flink columns,
/// keyed by its primary key.
///
/// Its key does three jobs in a pipeline — splitting nothing here (chunks are block ranges) but
/// matching each update and delete to its row and keying the sink table so they apply — so a
/// table without one is refused. Under REPLICA IDENTITY DEFAULT, deletes and the old rows of
/// updates carry only the key, so the other columns must take NULL there: they are nullable
/// unless the identity is FULL.
pub fn table_spec(schema: &str, table: &str, identity: char, columns: &[SourceColumn]) -> Result<TableSpec> {
    let shown = format!("{schema}.{table}");
    let primary_key: Vec<String> = {
        let mut keyed: Vec<(i32, &str)> =
            columns.iter().filter_map(|c| Some((c.key_position?, c.name.as_str()))).collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, name)| name.to_string()).collect()
    };
    if primary_key.is_empty() {
        return Err(Error::user(format!(
            "PostgreSQL table {shown} has no primary key, which a pipeline source needs (to match its updates and \
             deletes to rows and key the table it is written to); add a primary key to it, or leave it out with \
             `tables.exclude: <database>.{shown}`"
        )));
    }
    if identity == 'n' || identity == 'i' {
        return Err(Error::user(format!(
            "PostgreSQL table {shown} has REPLICA IDENTITY {}, so its deletes and updates do not carry the primary key \
             ({}) that its sink table is keyed by; run ALTER TABLE {}.{} REPLICA IDENTITY DEFAULT (or FULL), or leave \
             it out with `tables.exclude`",
            if identity == 'n' { "NOTHING" } else { "USING INDEX" },
            primary_key.join(", "),
            checks::quote_ident(schema),
            checks::quote_ident(table)
        )));
    }
    let mut specs = Vec::with_capacity(columns.len());
    for column in columns {
        let unreadable = |why: &str| {
            Error::user(format!(
                "column `{}` of PostgreSQL table {shown} has type {}, {why}; leave the table out with `tables.exclude`",
                column.name, column.pg_type
            ))
        };
        if is_postgis(&column.pg_type) {
            return Err(unreadable(
                "a PostGIS type, whose values would arrive as PostGIS's hex EWKB rather than the JSON Flink CDC writes",
            ));
        }
        let data_type = checks::faithful_type(&column.pg_type);
        if ColumnBuilder::new(&data_type, 0).is_none() {
            return Err(unreadable(&format!("which a pipeline source cannot read as {}", flink_type_name(&data_type))));
        }
        // Every change carries a key column's value; the others' only under FULL identity.
        let not_null = primary_key.contains(&column.name) || column.not_null && identity == 'f';
        specs.push(ColumnSpec {
            name: column.name.clone(),
            type_text: flink_type_name(&data_type),
            data_type,
            nullable: !not_null,
            metadata: None,
            comment: None,
        });
    }
    Ok(TableSpec { name: shown, columns: specs, primary_key, options: Vec::new(), comment: None, computed: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, pg_type: &str, not_null: bool, key_position: Option<i32>) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            pg_type: pg_type.into(),
            is_key: key_position.is_some(),
            not_null,
            key_position,
        }
    }

    /// The mapping docs/pipeline.md documents for a postgres source, row by row.
    #[test]
    fn postgres_types_map_as_documented() {
        let cases = [
            ("smallint", "SMALLINT"),
            ("integer", "INT"),
            ("bigint", "BIGINT"),
            ("real", "FLOAT"),
            ("double precision", "DOUBLE"),
            ("boolean", "BOOLEAN"),
            ("numeric(12,3)", "DECIMAL(12, 3)"),
            ("numeric(50,10)", "DECIMAL(50, 10)"),
            ("numeric(100,2)", "STRING"),
            ("numeric", "STRING"),
            ("character varying(20)", "STRING"),
            ("character(3)", "STRING"),
            ("text", "STRING"),
            ("bytea", "BYTES"),
            ("date", "DATE"),
            ("time without time zone", "TIME(6)"),
            ("time(3) without time zone", "TIME(3)"),
            ("time(0) without time zone", "TIME(0)"),
            ("time with time zone", "STRING"),
            ("timestamp without time zone", "TIMESTAMP(6)"),
            ("timestamp(3) without time zone", "TIMESTAMP(3)"),
            ("timestamp with time zone", "TIMESTAMP_LTZ(6)"),
            ("interval", "STRING"),
            ("uuid", "STRING"),
            ("jsonb", "STRING"),
            ("integer[]", "ARRAY<INT>"),
            ("mood", "STRING"),
        ];
        for (pg, flink) in cases {
            let spec =
                table_spec("s", "t", 'd', &[column("id", "integer", true, Some(1)), column("c", pg, false, None)])
                    .unwrap();
            assert_eq!(spec.columns[1].type_text, flink, "{pg}");
        }
    }

    #[test]
    fn keys_order_the_key_and_identity_decides_not_null() {
        let columns = [
            column("line", "integer", true, Some(2)),
            column("order_id", "bigint", true, Some(1)),
            column("qty", "integer", true, None),
            column("note", "text", false, None),
        ];
        let nullable = |spec: &TableSpec| spec.columns.iter().map(|c| c.nullable).collect::<Vec<_>>();
        let default = table_spec("s", "items", 'd', &columns).unwrap();
        assert_eq!(default.primary_key, ["order_id", "line"]);
        assert_eq!(nullable(&default), [false, false, true, true], "DEFAULT: deletes carry only the key");
        let full = table_spec("s", "items", 'f', &columns).unwrap();
        assert_eq!(nullable(&full), [false, false, false, true]);
        assert_eq!(default.name, "s.items");
    }

    #[test]
    fn tables_a_pipeline_cannot_key_are_refused_with_the_way_out() {
        let error =
            |identity, columns: &[SourceColumn]| table_spec("s", "t", identity, columns).unwrap_err().to_string();
        let keyless = error('f', &[column("v", "integer", false, None)]);
        assert!(keyless.contains("s.t has no primary key") && keyless.contains("tables.exclude"), "{keyless}");
        let keyed = [column("id", "integer", true, Some(1))];
        let nothing = error('n', &keyed);
        assert!(
            nothing.contains("REPLICA IDENTITY NOTHING") && nothing.contains("REPLICA IDENTITY DEFAULT"),
            "{nothing}"
        );
        assert!(error('i', &keyed).contains("USING INDEX"));
        let postgis = error('d', &[keyed[0].clone(), column("g", "geometry(Point,4326)", false, None)]);
        assert!(
            postgis.contains("`g`") && postgis.contains("PostGIS") && postgis.contains("tables.exclude"),
            "{postgis}"
        );
    }
}
