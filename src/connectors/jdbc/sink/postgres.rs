//! The PostgreSQL writer: binary COPY into a temporary staging table merged with one
//! `DELETE … USING` and one `INSERT … SELECT … ON CONFLICT` per flush, or, for rows that are all
//! new, one COPY straight into the target.

use bytes::BytesMut;
use datafusion::arrow::record_batch::RecordBatch;
use futures::SinkExt;
use tokio_postgres::error::SqlState;

use super::{create_table_sql, missing_column, missing_table, sql_string, Changes, OffsetRow};
use crate::connectors::jdbc::dialect::{connect_postgres, pg_error, Dialect};
use crate::connectors::jdbc::pgwire::{put_header, put_trailer, TupleWriter, Wire};
use crate::connectors::jdbc::JdbcConfig;
use crate::error::{Error, Result};

pub(super) struct PgWriter {
    client: tokio_postgres::Client,
    copy_sql: String,
    delete_sql: String,
    upsert_sql: String,
    offsets_sql: Option<String>,
    /// COPY straight into the target, when every column's binary form fits it.
    direct_copy_sql: Option<String>,
    direct_conflicts: u32,
    direct_rest: u32,
}

const PG_STAGE: &str = "cdc_sql_stage";
/// Ends a row applied under the savepoint `cdc_sql_row`: the staging table keeps its rows until
/// the commit, so the next row starts from an empty one.
pub(super) const ROW_APPLIED: &str = "DELETE FROM cdc_sql_stage; RELEASE SAVEPOINT cdc_sql_row";
const DELETE_FLAG: &str = "__cdc_sql_delete";

impl PgWriter {
    pub(super) async fn connect(config: &JdbcConfig) -> Result<PgWriter> {
        let d = Dialect::Postgres;
        let client = connect_postgres(&config.endpoint, config.retry_timeout).await?;
        let target = config.table.quoted(d);
        let what = format!("preparing {}", config.describe_target());
        let columns_sql = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
        let mut existing = client.query(columns_sql, &[&target]).await.map_err(|e| pg_error(&e, &what))?;
        if existing.is_empty() {
            if !config.sink.auto_create {
                return Err(missing_table(config));
            }
            client.batch_execute(&create_table_sql(config, d)).await.map_err(|e| pg_error(&e, &what))?;
            existing = client.query(columns_sql, &[&target]).await.map_err(|e| pg_error(&e, &what))?;
        }
        let present: Vec<(String, String)> = existing
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
            .collect::<std::result::Result<_, tokio_postgres::Error>>()
            .map_err(|e| pg_error(&e, &what))?;
        let names: Vec<String> = present.iter().map(|(n, _)| n.clone()).collect();

        let mut stage_defs = Vec::new();
        let mut columns = Vec::new();
        let mut values = Vec::new();
        let mut target_types = Vec::new();
        let mut direct = true;
        for field in config.schema.fields() {
            let Some((_, target_type)) = present.iter().find(|(n, _)| n == field.name()) else {
                return Err(missing_column(config, field.name(), &names));
            };
            let wire =
                Wire::of(field.data_type()).ok_or_else(|| Error::internal("unsupported type passed validation"))?;
            let q = d.quote(field.name());
            stage_defs.push(format!("{q} {}", wire.sql_type()));
            direct &= copies_directly(wire, target_type);
            columns.push(q.clone());
            values.push(staged_value(&format!("s.{q}"), wire, target_type));
            target_types.push(target_type.clone());
        }
        // `alias.key = staged key AND …`: the rows of `alias` with a staged row's key.
        let same_key = |alias: &str| {
            let parts: Vec<String> =
                config.key.iter().map(|i| format!("{alias}.{} = {}", columns[*i], values[*i])).collect();
            parts.join(" AND ")
        };
        let stage_columns = columns.join(", ");
        client
            .batch_execute(&format!(
                "SET standard_conforming_strings = on; CREATE TEMP TABLE IF NOT EXISTS {PG_STAGE} ({}, {DELETE_FLAG} boolean NOT NULL) ON COMMIT DELETE ROWS",
                stage_defs.join(", ")
            ))
            .await
            .map_err(|e| pg_error(&e, &what))?;
        let copy_sql = format!("COPY {PG_STAGE} ({stage_columns}, {DELETE_FLAG}) FROM STDIN (FORMAT binary)");
        let (delete_sql, upsert_sql) = if config.key.is_empty() {
            (
                String::new(),
                format!("INSERT INTO {target} ({stage_columns}) SELECT {} FROM {PG_STAGE} AS s;", values.join(", ")),
            )
        } else {
            let keys: Vec<String> = config.key.iter().map(|i| d.quote(config.schema.field(*i).name())).collect();
            let updates: Vec<String> = columns
                .iter()
                .enumerate()
                .filter(|(i, _)| !config.key.contains(i))
                .map(|(_, c)| format!("{c} = EXCLUDED.{c}"))
                .collect();
            let on_conflict = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            let t_key = same_key("t");
            match &config.sink.guard {
                None => (
                    format!("DELETE FROM {target} AS t USING {PG_STAGE} AS s WHERE s.{DELETE_FLAG} AND {t_key};"),
                    format!(
                        "INSERT INTO {target} ({stage_columns}) SELECT {} FROM {PG_STAGE} AS s WHERE NOT s.{DELETE_FLAG} ON CONFLICT ({}) {on_conflict};",
                        values.join(", "),
                        keys.join(", ")
                    ),
                ),
                Some(guard) => {
                    // See docs/connectors/jdbc.md, *Version guard*: a delete removes a row whose
                    // version is not newer and leaves a tombstone where no newer row stays; an
                    // upsert applies over an older row and where no tombstone is as new, and
                    // clears older tombstones of its key.
                    let tombstones = guard.tombstones.quoted(d);
                    let v = &columns[guard.column];
                    let staged_v = &values[guard.column];
                    let g_key = same_key("g");
                    let key_values: Vec<&str> = config.key.iter().map(|i| values[*i].as_str()).collect();
                    let defs: Vec<String> = config
                        .key
                        .iter()
                        .chain([&guard.column])
                        .map(|i| format!("{} {} NOT NULL", columns[*i], target_types[*i]))
                        .collect();
                    client
                        .batch_execute(&format!(
                            "CREATE TABLE IF NOT EXISTS {tombstones} ({}, PRIMARY KEY ({}))",
                            defs.join(", "),
                            keys.join(", ")
                        ))
                        .await
                        .map_err(|e| {
                            pg_error(&e, &format!("creating tombstone table {}", guard.tombstones.display()))
                        })?;
                    (
                        format!(
                            "DELETE FROM {target} AS t USING {PG_STAGE} AS s WHERE s.{DELETE_FLAG} AND {t_key} AND t.{v} <= {staged_v}; \
                             INSERT INTO {tombstones} AS g ({keys}, {v}) SELECT {key_values}, {staged_v} FROM {PG_STAGE} AS s \
                             WHERE s.{DELETE_FLAG} AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {t_key}) \
                             ON CONFLICT ({keys}) DO UPDATE SET {v} = EXCLUDED.{v} WHERE g.{v} < EXCLUDED.{v};",
                            keys = keys.join(", "),
                            key_values = key_values.join(", "),
                        ),
                        format!(
                            "INSERT INTO {target} AS t ({stage_columns}) SELECT {} FROM {PG_STAGE} AS s WHERE NOT s.{DELETE_FLAG} \
                             AND NOT EXISTS (SELECT 1 FROM {tombstones} AS g WHERE {g_key} AND g.{v} >= {staged_v}) \
                             ON CONFLICT ({}) {on_conflict} WHERE t.{v} <= EXCLUDED.{v}; \
                             DELETE FROM {tombstones} AS g USING {PG_STAGE} AS s WHERE NOT s.{DELETE_FLAG} AND {g_key} AND g.{v} < {staged_v};",
                            values.join(", "),
                            keys.join(", ")
                        ),
                    )
                }
            }
        };
        let offsets_sql = match &config.sink.offsets_table {
            None => None,
            Some(t) => {
                let table = t.quoted(d);
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (job text NOT NULL, pipeline text NOT NULL, checkpoint_id bigint NOT NULL, position jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, pipeline))"
                    ))
                    .await
                    .map_err(|e| pg_error(&e, &format!("creating offsets table {}", t.display())))?;
                Some(format!(
                    "INSERT INTO {table} (job, pipeline, checkpoint_id, position) VALUES ({{job}}, {{pipeline}}, {{id}}, {{position}}::jsonb) \
                     ON CONFLICT (job, pipeline) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id, position = EXCLUDED.position, updated_at = now();"
                ))
            }
        };
        // Dry-run the merge on the empty staging table: type mismatches and a missing unique
        // constraint for ON CONFLICT show up now, not at the first flush.
        let check = format!(
            "BEGIN; {delete_sql} {upsert_sql} ROLLBACK;",
            delete_sql = if delete_sql.is_empty() { "" } else { &delete_sql }
        );
        if let Err(e) = client.batch_execute(&check).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(pg_error(
                &e,
                &format!("table `{}`: checking the merge into {}", config.name, config.describe_target()),
            ));
        }
        let direct_copy_sql = direct.then(|| format!("COPY {target} ({stage_columns}) FROM STDIN (FORMAT binary)"));
        Ok(PgWriter {
            client,
            copy_sql,
            delete_sql,
            upsert_sql,
            offsets_sql,
            direct_copy_sql,
            direct_conflicts: 0,
            direct_rest: 0,
        })
    }

    pub(super) async fn apply(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        self.execute("BEGIN", "starting a transaction").await?;
        let result = self.apply_in_transaction(changes, offset).await;
        if result.is_err() {
            self.rollback().await;
        }
        result
    }

    pub(super) async fn execute(&mut self, sql: &str, what: &str) -> Result<()> {
        self.client.batch_execute(sql).await.map_err(|e| pg_error(&e, what))
    }

    pub(super) async fn rollback(&mut self) {
        if !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
    }

    async fn apply_in_transaction(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        if !self.copied_into_target(changes).await? {
            self.merge(changes).await?;
        }
        self.commit(offset).await
    }

    /// Stages `changes` and merges them into the target, inside the open transaction.
    pub(super) async fn merge(&mut self, changes: &Changes) -> Result<()> {
        let changes = changes.compacted()?;
        let (upserts, deletes) = match &*changes {
            Changes::Keyed { upserts, deletes } => (upserts, Some(deletes)),
            Changes::Append(rows) | Changes::Inserts { rows, .. } => (rows, None),
        };
        let delete_count = deletes.map_or(0, |d| d.num_rows());
        if upserts.num_rows() + delete_count > 0 {
            let mut parts = vec![(upserts, Some(false))];
            parts.extend(deletes.map(|d| (d, Some(true))));
            copy_rows(&self.client, &self.copy_sql, &parts)
                .await
                .map_err(|e| e.into_error("copying into the staging table"))?;
        }
        let mut sql = String::new();
        if delete_count > 0 {
            sql.push_str(&self.delete_sql);
        }
        if upserts.num_rows() > 0 {
            sql.push_str(&self.upsert_sql);
        }
        self.client.batch_execute(&sql).await.map_err(|e| pg_error(&e, "applying the changes"))
    }

    /// Bulk loaders' fast path: rows that are all new go by one binary COPY straight into the
    /// target, half the server's work of staging and merging them. Taken for append sinks, and
    /// for keyed sinks when the flush holds only inserts; a key that already exists makes the
    /// COPY fail with a unique violation, which is rolled back to a savepoint and the flush goes
    /// through the merge instead. After such a conflict the fast path rests for a growing
    /// number of flushes, so a stream of re-inserted keys (a restarted snapshot) does not pay
    /// for every attempt twice. True when the rows are in the target.
    async fn copied_into_target(&mut self, changes: &Changes) -> Result<bool> {
        let Some(direct_copy_sql) = &self.direct_copy_sql else { return Ok(false) };
        let (rows, keyed) = match changes {
            Changes::Append(rows) => (rows, false),
            Changes::Inserts { rows, .. } => (rows, true),
            Changes::Keyed { .. } => return Ok(false),
        };
        if rows.num_rows() == 0 {
            return Ok(false);
        }
        if keyed && self.direct_rest > 0 {
            self.direct_rest -= 1;
            return Ok(false);
        }
        if keyed {
            self.client.batch_execute("SAVEPOINT cdc_sql_direct").await.map_err(|e| pg_error(&e, "starting COPY"))?;
        }
        match copy_rows(&self.client, direct_copy_sql, &[(rows, None)]).await {
            Ok(()) => Ok(true),
            Err(CopyFailure::Server(e))
                if keyed && e.as_db_error().is_some_and(|d| d.code() == &SqlState::UNIQUE_VIOLATION) =>
            {
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT cdc_sql_direct")
                    .await
                    .map_err(|e| pg_error(&e, "rolling back COPY"))?;
                self.direct_conflicts = (self.direct_conflicts + 1).min(10);
                self.direct_rest = 1 << self.direct_conflicts;
                Ok(false)
            }
            Err(e) => Err(e.into_error("copying into the target")),
        }
    }

    pub(super) async fn commit(&mut self, offset: Option<&OffsetRow>) -> Result<()> {
        let mut sql = String::new();
        if let (Some(template), Some(o)) = (&self.offsets_sql, offset) {
            sql.push_str(
                &template
                    .replace("{job}", &sql_string(&o.job))
                    .replace("{pipeline}", &sql_string(&o.pipeline))
                    .replace("{id}", &o.checkpoint_id.to_string())
                    .replace("{position}", &sql_string(&o.position)),
            );
        }
        sql.push_str("COMMIT;");
        self.client.batch_execute(&sql).await.map_err(|e| pg_error(&e, "applying the changes"))
    }
}

enum CopyFailure {
    Server(tokio_postgres::Error),
    Encode(Error),
}

impl CopyFailure {
    fn into_error(self, what: &str) -> Error {
        match self {
            CopyFailure::Server(e) => pg_error(&e, what),
            CopyFailure::Encode(e) => e,
        }
    }
}

/// Streams `parts` as one binary COPY: each batch's rows, with the staging table's delete flag
/// appended when given.
async fn copy_rows(
    client: &tokio_postgres::Client,
    sql: &str,
    parts: &[(&RecordBatch, Option<bool>)],
) -> std::result::Result<(), CopyFailure> {
    let sink = client.copy_in::<_, bytes::Bytes>(sql).await?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(1 << 20);
    put_header(&mut buf);
    for (batch, flag) in parts {
        let writer = TupleWriter::new(batch.columns(), *flag).map_err(CopyFailure::Encode)?;
        for row in 0..batch.num_rows() {
            writer.write_row(row, &mut buf).map_err(CopyFailure::Encode)?;
            if buf.len() >= 1 << 20 {
                sink.send(buf.split().freeze()).await?;
            }
        }
    }
    put_trailer(&mut buf);
    sink.send(buf.split().freeze()).await?;
    sink.finish().await?;
    Ok(())
}

impl From<tokio_postgres::Error> for CopyFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        CopyFailure::Server(e)
    }
}

/// Whether binary COPY of `wire` values can go straight into a column of `target_type` (as
/// `format_type` prints it): the receive function of the column's own type reads them, with
/// the column's modifiers applied, so the base types must be the same (text also feeds
/// varchar/char, whose binary form is the same bytes).
fn copies_directly(wire: Wire, target_type: &str) -> bool {
    let mut base = String::with_capacity(target_type.len());
    let mut depth = 0;
    for c in target_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => base.push(c),
            _ => {}
        }
    }
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    base == wire.sql_type() || (wire == Wire::Text && matches!(base.as_str(), "character varying" | "character"))
}

/// How a staged value goes into a target column: as is when PostgreSQL has an assignment cast
/// (so e.g. a too long string for varchar(n) is an error, not a silent cut), through an explicit
/// cast for text into json/jsonb/uuid/enum/…, and `<> 0` for integers into boolean (TINYINT(1)).
fn staged_value(column: &str, wire: Wire, target_type: &str) -> String {
    let stringish = target_type == "text"
        || target_type.starts_with("character")
        || target_type == "name"
        || target_type == "\"char\"";
    match wire {
        _ if target_type == wire.sql_type() => column.to_string(),
        Wire::Int2 | Wire::Int4 | Wire::Int8 if target_type == "boolean" => format!("({column} <> 0)"),
        Wire::Text if !stringish => format!("CAST({column} AS {target_type})"),
        _ => column.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_values_cast_only_where_postgres_needs_it() {
        assert_eq!(staged_value("s.x", Wire::Text, "jsonb"), "CAST(s.x AS jsonb)");
        assert_eq!(staged_value("s.x", Wire::Text, "character varying(10)"), "s.x");
        assert_eq!(staged_value("s.x", Wire::Int2, "boolean"), "(s.x <> 0)");
        assert_eq!(staged_value("s.x", Wire::Int8, "numeric(20,0)"), "s.x");
        assert_eq!(staged_value("s.x", Wire::Bool, "boolean"), "s.x");
    }
}
