//! The MySQL/MariaDB writer: multi-row `INSERT … ON DUPLICATE KEY UPDATE` and
//! `DELETE … WHERE key IN (…)` statements over the text protocol, each flush one transaction.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{create_table_sql, missing_column, missing_table, sql_string, Changes, OffsetRow};
use crate::connectors::jdbc::dialect::{connect_mysql, mysql_error, Dialect};
use crate::connectors::jdbc::mysqltext::write_literal;
use crate::connectors::jdbc::JdbcConfig;
use crate::error::Result;

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
}

impl MyWriter {
    pub(super) async fn connect(config: &JdbcConfig) -> Result<MyWriter> {
        use mysql_async::prelude::Queryable;
        let d = Dialect::MySql;
        let strict =
            "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES', 'NO_BACKSLASH_ESCAPES')";
        let mut conn = connect_mysql(&config.endpoint, config.retry_timeout, &[strict]).await?;
        let what = format!("preparing {}", config.describe_target());
        let schema = config.table.schema.clone();
        let columns_sql = "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
        let mut present: Vec<String> = conn
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
            if !present.iter().any(|p| p.eq_ignore_ascii_case(field.name())) {
                return Err(missing_column(config, field.name(), &present));
            }
        }
        let quoted: Vec<String> = config.schema.fields().iter().map(|f| d.quote(f.name())).collect();
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
            table: config.table.quoted(d),
            columns: quoted.join(", "),
            upsert_suffix,
            key_names: config.key.iter().map(|i| config.schema.field(*i).name().clone()).collect(),
            offsets_table,
            max_statement,
            config_key: config.key.clone(),
        })
    }

    pub(super) async fn apply(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        use mysql_async::prelude::Queryable;
        self.conn.query_drop("START TRANSACTION").await.map_err(|e| mysql_error(&e, "starting a transaction"))?;
        let result = self.apply_in_transaction(changes, offset).await;
        if result.is_err() {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        result
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

    async fn apply_in_transaction(&mut self, changes: &Changes, offset: Option<&OffsetRow>) -> Result<()> {
        use mysql_async::prelude::Queryable;
        let changes = changes.compacted()?;
        let (upserts, deletes) = match &*changes {
            Changes::Keyed { upserts, deletes } => (upserts, Some(deletes)),
            Changes::Append(rows) | Changes::Inserts { rows, .. } => (rows, None),
        };
        if let Some(deletes) = deletes.filter(|d| d.num_rows() > 0) {
            let key_columns: Vec<ArrayRef> = self.config_key.iter().map(|i| deletes.column(*i).clone()).collect();
            let quoted_keys: Vec<String> = self.key_names.iter().map(|k| Dialect::MySql.quote(k)).collect();
            let prefix = if quoted_keys.len() == 1 {
                format!("DELETE FROM {} WHERE {} IN (", self.table, quoted_keys[0])
            } else {
                format!("DELETE FROM {} WHERE ({}) IN (", self.table, quoted_keys.join(", "))
            };
            let mut sql = prefix.clone();
            let mut first = 0;
            for row in 0..deletes.num_rows() {
                if row > first {
                    sql.push_str(", ");
                }
                if key_columns.len() > 1 {
                    sql.push('(');
                }
                for (j, (array, name)) in key_columns.iter().zip(&self.key_names).enumerate() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    write_literal(&mut sql, array, row, name)?;
                }
                if key_columns.len() > 1 {
                    sql.push(')');
                }
                if sql.len() >= self.max_statement || row + 1 == deletes.num_rows() {
                    sql.push(')');
                    self.run(&sql, deletes, first).await?;
                    sql = prefix.clone();
                    first = row + 1;
                }
            }
        }
        if upserts.num_rows() > 0 {
            let prefix = format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns);
            let names: Vec<String> = upserts.schema().fields().iter().map(|f| f.name().clone()).collect();
            let mut sql = prefix.clone();
            let mut first = 0;
            for row in 0..upserts.num_rows() {
                if row > first {
                    sql.push(',');
                }
                sql.push('(');
                for (j, array) in upserts.columns().iter().enumerate() {
                    if j > 0 {
                        sql.push(',');
                    }
                    write_literal(&mut sql, array, row, &names[j])?;
                }
                sql.push(')');
                if sql.len() >= self.max_statement || row + 1 == upserts.num_rows() {
                    sql.push_str(&self.upsert_suffix);
                    self.run(&sql, upserts, first).await?;
                    sql = prefix.clone();
                    first = row + 1;
                }
            }
        }
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
