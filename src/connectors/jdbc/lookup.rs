//! Lookups into a jdbc table for `FOR SYSTEM_TIME AS OF` joins: one `SELECT <declared columns>
//! FROM <table> WHERE (<key>) IN ((…), …)` per batch of keys, read with the scan's decoders (a
//! binary `COPY (SELECT …) TO STDOUT` on PostgreSQL, the text protocol on MySQL/MariaDB), so a
//! looked-up value is the value the scan reads. Keys go as literals: PostgreSQL's COPY takes no
//! parameters, and one statement per batch is the point.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use futures::StreamExt;

use super::columns::{BatchBuilder, SourceKind};
use super::dialect::{connect_mysql, connect_postgres, mysql_error, pg_error, Dialect};
use super::{mysqltext, pgwire, JdbcConfig};
use crate::connectors::lookup::Lookup;
use crate::error::{Error, Result};

pub struct JdbcLookup {
    config: Arc<JdbcConfig>,
    connection: Option<Connection>,
}

struct Connection {
    client: Client,
    /// What the declared columns are read from (see `columns::SourceKind`).
    kinds: Vec<SourceKind>,
    /// `SELECT <declared columns> FROM <table>`, read as `kinds` need.
    select: String,
}

enum Client {
    Postgres(tokio_postgres::Client),
    MySql(mysql_async::Conn),
}

impl JdbcLookup {
    pub fn new(config: Arc<JdbcConfig>) -> Self {
        JdbcLookup { config, connection: None }
    }

    /// `SELECT <declared columns as the scan reads them> FROM <table>`, the start of every lookup.
    fn select(&self, kinds: &[SourceKind]) -> String {
        let d = self.config.endpoint.dialect;
        let list: Vec<String> = self
            .config
            .schema
            .fields()
            .iter()
            .zip(kinds.iter().copied().chain(std::iter::repeat(SourceKind::Other)))
            .map(|(f, kind)| {
                let quoted = d.quote(f.name());
                match d {
                    Dialect::Postgres => pgwire::read_expression(&quoted, f.data_type(), kind).unwrap_or(quoted),
                    Dialect::MySql => mysqltext::read_expression(&quoted, f.data_type(), kind),
                }
            })
            .collect();
        format!("SELECT {} FROM {}", list.join(", "), self.config.table.quoted(d))
    }

    /// ` WHERE (k1, k2) IN ((v1, v2), …)` (a single key column without the parentheses).
    fn condition(&self, key: &[usize], keys: &RecordBatch) -> Result<String> {
        let d = self.config.endpoint.dialect;
        let names: Vec<String> = key.iter().map(|k| d.quote(self.config.schema.field(*k).name())).collect();
        let mut sql = String::with_capacity(32 + keys.num_rows() * 8 * key.len());
        let single = key.len() == 1;
        sql.push_str(" WHERE ");
        sql.push_str(&if single { names[0].clone() } else { format!("({})", names.join(", ")) });
        sql.push_str(" IN (");
        for row in 0..keys.num_rows() {
            if row > 0 {
                sql.push_str(", ");
            }
            if !single {
                sql.push('(');
            }
            for (i, column) in keys.columns().iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let name = self.config.schema.field(key[i]).name();
                match d {
                    Dialect::Postgres => pgwire::write_literal(&mut sql, column, row, name)?,
                    Dialect::MySql => mysqltext::write_literal(&mut sql, column, row, name)?,
                }
            }
            if !single {
                sql.push(')');
            }
        }
        sql.push(')');
        Ok(sql)
    }

    async fn connect(&self) -> Result<Connection> {
        let config = &self.config;
        let describe = self.select(&[]);
        match config.endpoint.dialect {
            Dialect::Postgres => {
                let client = connect_postgres(&config.endpoint, config.retry_timeout).await?;
                // Literals are written as the SQL standard reads them, and timestamps in UTC.
                client
                    .batch_execute("SET standard_conforming_strings = on; SET TimeZone = 'UTC'")
                    .await
                    .map_err(|e| pg_error(&e, "preparing the lookup session"))?;
                let described =
                    client.prepare(&describe).await.map_err(|e| pg_error(&e, "reading the columns' types"))?;
                let kinds = pgwire::source_kinds(described.columns())?;
                Ok(Connection { select: self.select(&kinds), kinds, client: Client::Postgres(client) })
            }
            Dialect::MySql => {
                let mut conn = connect_mysql(&config.endpoint, config.retry_timeout, &[mysqltext::SQL_MODE]).await?;
                let kinds = mysqltext::describe_kinds(&mut conn, &describe).await?;
                Ok(Connection { select: self.select(&kinds), kinds, client: Client::MySql(conn) })
            }
        }
    }
}

#[async_trait]
impl Lookup for JdbcLookup {
    async fn lookup(&mut self, key: &[usize], keys: &RecordBatch) -> Result<RecordBatch> {
        let schema = self.config.schema.clone();
        if keys.num_rows() == 0 {
            return Ok(RecordBatch::new_empty(schema));
        }
        if self.connection.is_none() {
            self.connection = Some(self.connect().await?);
        }
        let condition = self.condition(key, keys)?;
        let Some(Connection { client, kinds, select }) = self.connection.as_mut() else {
            return Err(Error::internal("jdbc lookup without a connection"));
        };
        let result = match client {
            Client::Postgres(client) => {
                let sql = format!("COPY ({select}{condition}) TO STDOUT (FORMAT binary)");
                read_postgres(client, &sql, &schema, kinds).await
            }
            Client::MySql(conn) => read_mysql(conn, &format!("{select}{condition}"), &schema, kinds).await,
        };
        // A connection that failed is not used again: the next lookup (a retry) connects afresh.
        if result.as_ref().is_err_and(|e| e.kind() == crate::error::ErrorKind::External) {
            self.connection = None;
        }
        result.map_err(|e| {
            e.context(format!("table `{}`: looking up {}", self.config.name, self.config.describe_target()))
        })
    }
}

async fn read_postgres(
    client: &tokio_postgres::Client,
    sql: &str,
    schema: &Arc<Schema>,
    kinds: &[SourceKind],
) -> Result<RecordBatch> {
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    let stream = client.copy_out(sql).await.map_err(|e| pg_error(&e, "starting the lookup"))?;
    futures::pin_mut!(stream);
    let mut decoder = pgwire::CopyDecoder::new(&types, kinds)?;
    let mut builder = BatchBuilder::new(schema.clone(), 16)?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| pg_error(&e, "reading looked-up rows"))?;
        decoder.feed(&chunk, &mut builder)?;
    }
    if !decoder.is_ended() {
        return Err(Error::external("PostgreSQL ended the COPY stream early"));
    }
    builder.finish()
}

async fn read_mysql(
    conn: &mut mysql_async::Conn,
    sql: &str,
    schema: &Arc<Schema>,
    kinds: &[SourceKind],
) -> Result<RecordBatch> {
    use mysql_async::prelude::Queryable;
    let mut builder = BatchBuilder::new(schema.clone(), 16)?;
    let mut result = conn.query_iter(sql).await.map_err(|e| mysql_error(&e, "starting the lookup"))?;
    while let Some(row) = result.next().await.map_err(|e| mysql_error(&e, "reading looked-up rows"))? {
        mysqltext::append_row(&mut builder, &row, kinds)?;
    }
    drop(result);
    builder.finish()
}
