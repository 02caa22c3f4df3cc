//! The MySQL/MariaDB writer: multi-row `INSERT … ON DUPLICATE KEY UPDATE` and
//! `DELETE … WHERE key IN (…)` statements over the text protocol, each flush one transaction.

use datafusion::arrow::record_batch::RecordBatch;

use super::{create_table_sql, missing_column, missing_table, sql_string, Changes, OffsetRow};
use crate::connectors::jdbc::dialect::{connect_mysql, mysql_error, Dialect};
use crate::connectors::jdbc::mysqltext::{self, write_literal};
use crate::connectors::jdbc::JdbcConfig;
use crate::error::{Error, Result};

pub(super) struct MyWriter {
    pub(super) conn: mysql_async::Conn,
    table: String,
    columns: String,
    upsert_suffix: String,
    key_names: Vec<String>,
    offsets_table: Option<String>,
    /// Statement size limit, below the server's max_allowed_packet.
    max_statement: usize,
    config_key: Vec<usize>,
    guard: Option<Guard>,
}

/// The statements of the version guard (see docs/connectors/jdbc.md, *Version guard*). Each
/// reads the flush's rows as a derived table `s` of `SELECT literal AS column UNION ALL …`
/// (portable between MySQL and MariaDB, which differ in their row constructors), joined by key.
#[derive(Clone)]
struct Guard {
    /// The key and version columns' indices: what deletes and tombstones carry.
    key_and_version: Vec<usize>,
    /// Delete target rows not newer than the delete: `prefix` rows `suffix`.
    delete: (String, String),
    /// Tombstones for deleted keys no newer row holds, keeping the newest.
    tombstone: (String, String),
    /// Upserts where no tombstone is as new, over older rows only.
    upsert: (String, String),
    /// Clear tombstones older than an upsert of their key.
    clear: (String, String),
}

impl Guard {
    fn new(table: &str, tombstones: &str, quoted: &[String], key: &[usize], version: usize) -> Guard {
        let v = &quoted[version];
        let keys: Vec<&str> = key.iter().map(|i| quoted[*i].as_str()).collect();
        let same_key = |alias: &str| {
            let parts: Vec<String> = keys.iter().map(|k| format!("{alias}.{k} = s.{k}")).collect();
            parts.join(" AND ")
        };
        let t_key = same_key("t");
        let g_key = same_key("g");
        let key_list = keys.join(", ");
        // Columns are qualified with the table inserted into: the derived table has the same names.
        // MySQL applies the assignments left to right, each seeing the ones before, so the
        // version, which every condition reads, is assigned last.
        let newer = format!("VALUES({v}) >= {table}.{v}");
        let mut updates: Vec<String> = (0..quoted.len())
            .filter(|i| !key.contains(i) && *i != version)
            .map(|i| {
                let c = &quoted[i];
                format!("{table}.{c} = IF({newer}, VALUES({c}), {table}.{c})")
            })
            .collect();
        updates.push(format!("{table}.{v} = IF({newer}, VALUES({v}), {table}.{v})"));
        Guard {
            key_and_version: key.iter().copied().chain([version]).collect(),
            delete: (format!("DELETE t FROM {table} AS t JOIN ("), format!(") AS s ON {t_key} WHERE t.{v} <= s.{v}")),
            tombstone: (
                format!("INSERT INTO {tombstones} ({key_list}, {v}) SELECT * FROM ("),
                format!(
                    ") AS s WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {t_key}) \
                     ON DUPLICATE KEY UPDATE {tombstones}.{v} = IF(VALUES({v}) > {tombstones}.{v}, VALUES({v}), {tombstones}.{v})"
                ),
            ),
            upsert: (
                format!("INSERT INTO {table} ({}) SELECT * FROM (", quoted.join(", ")),
                format!(
                    ") AS s WHERE NOT EXISTS (SELECT 1 FROM {tombstones} AS g WHERE {g_key} AND g.{v} >= s.{v}) \
                     ON DUPLICATE KEY UPDATE {}",
                    updates.join(", ")
                ),
            ),
            clear: (
                format!("DELETE g FROM {tombstones} AS g JOIN ("),
                format!(") AS s ON {g_key} WHERE g.{v} < s.{v}"),
            ),
        }
    }
}

impl MyWriter {
    pub(super) async fn connect(config: &JdbcConfig) -> Result<MyWriter> {
        use mysql_async::prelude::Queryable;
        let d = Dialect::MySql;
        let mut conn = connect_mysql(&config.endpoint, config.retry_timeout, &[mysqltext::SQL_MODE]).await?;
        let what = format!("preparing {}", config.describe_target());
        let schema = config.table.schema.clone();
        let columns_sql = "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(COLLATION_NAME AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION";
        let mut present: Vec<(String, String, Option<String>)> = conn
            .exec(columns_sql, (schema.clone(), config.table.table.clone()))
            .await
            .map_err(|e| mysql_error(&e, &what))?;
        if present.is_empty() {
            if !config.sink.auto_create {
                return Err(missing_table(config));
            }
            conn.query_drop(create_table_sql(config, d)).await.map_err(|e| mysql_error(&e, &what))?;
            present = conn
                .exec(columns_sql, (schema, config.table.table.clone()))
                .await
                .map_err(|e| mysql_error(&e, &what))?;
        }
        for field in config.schema.fields() {
            // MySQL column names compare without case.
            if !present.iter().any(|p| p.0.eq_ignore_ascii_case(field.name())) {
                let names: Vec<String> = present.into_iter().map(|p| p.0).collect();
                return Err(missing_column(config, field.name(), &names));
            }
        }
        let quoted: Vec<String> = config.schema.fields().iter().map(|f| d.quote(f.name())).collect();
        let table = config.table.quoted(d);
        let updates: Vec<String> = quoted
            .iter()
            .enumerate()
            .filter(|(i, _)| !config.key.contains(i))
            .map(|(_, c)| format!("{c} = VALUES({c})"))
            .collect();
        let upsert_suffix = if config.key.is_empty() {
            String::new()
        } else if updates.is_empty() {
            let k = &quoted[config.key[0]];
            format!(" ON DUPLICATE KEY UPDATE {k} = {k}")
        } else {
            format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
        };
        let guard = match &config.sink.guard {
            None => None,
            Some(g) => {
                let tombstones = g.tombstones.quoted(d);
                // The tombstone table's columns are the target's key and version columns, with
                // their types and collations, so keys compare as they do in the target.
                let defs: Vec<String> = config
                    .key
                    .iter()
                    .chain([&g.column])
                    .map(|i| {
                        let name = config.schema.field(*i).name();
                        let (_, ty, collation) = present
                            .iter()
                            .find(|p| p.0.eq_ignore_ascii_case(name))
                            .ok_or_else(|| Error::internal("a checked column is missing"))?;
                        let collate = collation.as_ref().map(|c| format!(" COLLATE {c}")).unwrap_or_default();
                        Ok(format!("{} {ty}{collate} NOT NULL", d.quote(name)))
                    })
                    .collect::<Result<_>>()?;
                let keys: Vec<&str> = config.key.iter().map(|i| quoted[*i].as_str()).collect();
                conn.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {tombstones} ({}, PRIMARY KEY ({}))",
                    defs.join(", "),
                    keys.join(", ")
                ))
                .await
                .map_err(|e| mysql_error(&e, &format!("creating tombstone table {}", g.tombstones.display())))?;
                Some(Guard::new(&table, &tombstones, &quoted, &config.key, g.column))
            }
        };
        let offsets_table = match &config.sink.offsets_table {
            None => None,
            Some(t) => {
                let table = t.quoted(d);
                conn.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (job VARCHAR(255) NOT NULL, pipeline VARCHAR(255) NOT NULL, checkpoint_id BIGINT NOT NULL, position JSON NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (job, pipeline))"
                ))
                .await
                .map_err(|e| mysql_error(&e, &format!("creating offsets table {}", t.display())))?;
                Some(table)
            }
        };
        let packet: Option<u64> =
            conn.query_first("SELECT @@max_allowed_packet").await.map_err(|e| mysql_error(&e, &what))?;
        let max_statement = (packet.unwrap_or(4 << 20) as usize / 2).clamp(64 << 10, 8 << 20);
        Ok(MyWriter {
            conn,
            table,
            columns: quoted.join(", "),
            upsert_suffix,
            key_names: config.key.iter().map(|i| config.schema.field(*i).name().clone()).collect(),
            offsets_table,
            max_statement,
            config_key: config.key.clone(),
            guard,
        })
    }

    pub(super) async fn apply(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        self.execute("START TRANSACTION", "starting a transaction").await?;
        let result = async {
            self.merge(changes).await?;
            self.commit(offset).await
        }
        .await;
        if result.is_err() {
            self.rollback().await;
        }
        result
    }

    pub(super) async fn execute(&mut self, sql: &str, what: &str) -> Result<()> {
        use mysql_async::prelude::Queryable;
        self.conn.query_drop(sql).await.map_err(|e| mysql_error(&e, what))
    }

    pub(super) async fn rollback(&mut self) {
        use mysql_async::prelude::Queryable;
        let _ = self.conn.query_drop("ROLLBACK").await;
    }

    /// `key = value, …` of row `row`, for error messages.
    fn describe_key(&self, batch: &RecordBatch, row: usize) -> String {
        let parts: Vec<String> = self
            .config_key
            .iter()
            .zip(&self.key_names)
            .map(|(i, name)| {
                let mut v = String::new();
                let _ = write_literal(&mut v, batch.column(*i), row, name);
                format!("{name} = {v}")
            })
            .collect();
        parts.join(", ")
    }

    async fn run(&mut self, sql: &str, batch: &RecordBatch, first_row: usize) -> Result<()> {
        use mysql_async::prelude::Queryable;
        match self.conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut err = mysql_error(&e, "applying the changes");
                // Strict-mode data errors say "at row N" of the statement: name the key.
                if let mysql_async::Error::Server(s) = &e {
                    if let Some(n) = s.message.rsplit("at row ").next().and_then(|n| n.trim().parse::<usize>().ok()) {
                        if n >= 1 && first_row + n - 1 < batch.num_rows() && !self.config_key.is_empty() {
                            err = err.context(format!("row with key {}", self.describe_key(batch, first_row + n - 1)));
                        }
                    }
                }
                Err(err)
            }
        }
    }

    /// Runs `prefix`, `piece` of every row of `batch` joined by `separator`, then `suffix`, as
    /// statements of about `max_statement` bytes at most.
    async fn run_rows(
        &mut self,
        batch: &RecordBatch,
        (prefix, suffix): (&str, &str),
        separator: &str,
        piece: impl Fn(&mut String, usize) -> Result<()>,
    ) -> Result<()> {
        let mut sql = prefix.to_string();
        let mut first = 0;
        for row in 0..batch.num_rows() {
            if row > first {
                sql.push_str(separator);
            }
            piece(&mut sql, row)?;
            if sql.len() >= self.max_statement || row + 1 == batch.num_rows() {
                sql.push_str(suffix);
                self.run(&sql, batch, first).await?;
                sql = prefix.to_string();
                first = row + 1;
            }
        }
        Ok(())
    }

    /// Applies `changes` inside the open transaction.
    pub(super) async fn merge(&mut self, changes: &Changes) -> Result<()> {
        let changes = changes.compacted()?;
        let (upserts, deletes) = match &*changes {
            Changes::Keyed { upserts, deletes } => (upserts, Some(deletes).filter(|d| d.num_rows() > 0)),
            Changes::Append(rows) | Changes::Inserts { rows, .. } => (rows, None),
        };
        if let Some(guard) = self.guard.clone() {
            let kv = &guard.key_and_version;
            if let Some(deletes) = deletes {
                let piece = |sql: &mut String, row: usize| select_row(sql, deletes, row, kv);
                self.run_rows(deletes, pair(&guard.delete), " UNION ALL ", piece).await?;
                self.run_rows(deletes, pair(&guard.tombstone), " UNION ALL ", piece).await?;
            }
            if upserts.num_rows() > 0 {
                let all: Vec<usize> = (0..upserts.num_columns()).collect();
                let piece = |sql: &mut String, row: usize| select_row(sql, upserts, row, &all);
                self.run_rows(upserts, pair(&guard.upsert), " UNION ALL ", piece).await?;
                let piece = |sql: &mut String, row: usize| select_row(sql, upserts, row, kv);
                self.run_rows(upserts, pair(&guard.clear), " UNION ALL ", piece).await?;
            }
        } else {
            if let Some(deletes) = deletes {
                let quoted_keys: Vec<String> = self.key_names.iter().map(|k| Dialect::MySql.quote(k)).collect();
                let prefix = if quoted_keys.len() == 1 {
                    format!("DELETE FROM {} WHERE {} IN (", self.table, quoted_keys[0])
                } else {
                    format!("DELETE FROM {} WHERE ({}) IN (", self.table, quoted_keys.join(", "))
                };
                let key = self.config_key.clone();
                let composite = key.len() > 1;
                let piece = |sql: &mut String, row: usize| {
                    if composite {
                        sql.push('(');
                    }
                    write_literals(sql, deletes, row, &key, ", ")?;
                    if composite {
                        sql.push(')');
                    }
                    Ok(())
                };
                self.run_rows(deletes, (&prefix, ")"), ", ", piece).await?;
            }
            if upserts.num_rows() > 0 {
                let prefix = format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns);
                let suffix = self.upsert_suffix.clone();
                let all: Vec<usize> = (0..upserts.num_columns()).collect();
                let piece = |sql: &mut String, row: usize| {
                    sql.push('(');
                    write_literals(sql, upserts, row, &all, ",")?;
                    sql.push(')');
                    Ok(())
                };
                self.run_rows(upserts, (&prefix, &suffix), ",", piece).await?;
            }
        }
        Ok(())
    }

    /// Stores the offsets row and commits the open transaction.
    pub(super) async fn commit(&mut self, offset: Option<&OffsetRow>) -> Result<()> {
        use mysql_async::prelude::Queryable;
        if let (Some(table), Some(o)) = (&self.offsets_table, offset) {
            let sql = format!(
                "INSERT INTO {table} (job, pipeline, checkpoint_id, position) VALUES ({}, {}, {}, {}) \
                 ON DUPLICATE KEY UPDATE checkpoint_id = VALUES(checkpoint_id), position = VALUES(position), updated_at = CURRENT_TIMESTAMP(6)",
                sql_string(&o.job),
                sql_string(&o.pipeline),
                o.checkpoint_id,
                sql_string(&o.position)
            );
            self.conn.query_drop(sql).await.map_err(|e| mysql_error(&e, "storing the source position"))?;
        }
        self.conn.query_drop("COMMIT").await.map_err(|e| mysql_error(&e, "committing"))
    }
}

fn pair(statement: &(String, String)) -> (&str, &str) {
    (&statement.0, &statement.1)
}

/// The literals of `columns` of row `row`, joined by `separator`.
fn write_literals(sql: &mut String, batch: &RecordBatch, row: usize, columns: &[usize], separator: &str) -> Result<()> {
    let schema = batch.schema();
    for (j, i) in columns.iter().enumerate() {
        if j > 0 {
            sql.push_str(separator);
        }
        write_literal(sql, batch.column(*i), row, schema.field(*i).name())?;
    }
    Ok(())
}

/// `SELECT literal AS column, …` of `columns` of row `row`: one row of a derived table.
fn select_row(sql: &mut String, batch: &RecordBatch, row: usize, columns: &[usize]) -> Result<()> {
    let schema = batch.schema();
    sql.push_str("SELECT ");
    for (j, i) in columns.iter().enumerate() {
        if j > 0 {
            sql.push_str(", ");
        }
        let name = schema.field(*i).name();
        write_literal(sql, batch.column(*i), row, name)?;
        sql.push_str(" AS ");
        sql.push_str(&Dialect::MySql.quote(name));
    }
    Ok(())
}
