//! Flink CDC's legacy snapshot (`'scan.incremental.snapshot.enabled' = 'false'`): every captured
//! table read in one pass by one connection, inside one consistent-snapshot transaction whose
//! binlog position is exact, so streaming from that position afterwards neither loses nor repeats
//! a change. Nothing is split or matched by key, so tables without a primary key work.
//!
//! MariaDB reports the transaction's binlog position itself (`binlog_snapshot_file/position`), no
//! lock is taken. MySQL has no such status: as `mysqldump --single-transaction --master-data`
//! does, a global read lock (`FLUSH TABLES WITH READ LOCK`, needs RELOAD) is held only while the
//! transaction starts and the position is read.
//!
//! Limits: not resumable mid-way — a restart during the snapshot reads it again from the start;
//! the transaction stays open for the whole snapshot (the server keeps old row versions).

use std::sync::Arc;

use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::MySqlCdcConfig;
use super::rows::ChangeBuilder;
use super::schema::CapturedTable;
use super::server::{self, server_error, BinlogPos};
use super::snapshot::{append_row, prepare_session};
use super::stream::GtidState;
use crate::changelog::ChangeBatch;
use crate::error::{Error, Result};
use crate::sql::TableSpec;

enum Message {
    Batch(ChangeBatch),
    /// Every row of the next table was sent.
    TableDone,
    Done,
    Failed(Error),
}

/// A running legacy snapshot; its reader task holds the snapshot transaction.
pub struct LegacySnapshot {
    /// The binlog position the snapshot shows, where streaming starts.
    pub start: BinlogPos,
    pub gtid: GtidState,
    batches: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
    config: Arc<MySqlCdcConfig>,
    /// The reader's server connection id.
    connection_id: u32,
    /// Tables to read, and tables whose rows were all handed out.
    tables: usize,
    tables_done: usize,
}

impl LegacySnapshot {
    /// Opens the snapshot transaction and starts reading `tables` in the background, `+I` rows
    /// in batches of at most 'scan.snapshot.fetch.size'.
    pub async fn begin(
        config: Arc<MySqlCdcConfig>,
        spec: Arc<TableSpec>,
        tables: Vec<Arc<CapturedTable>>,
        version: server::ServerVersion,
    ) -> Result<Self> {
        let mut conn = server::connect(&config).await?;
        let opened = open_transaction(&config, &mut conn, version).await;
        let (start, gtid) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                conn.disconnect().await.ok();
                return Err(e);
            }
        };
        tracing::info!(table = %config.table, %start, gtid = %gtid, tables = tables.len(), "legacy snapshot started");
        // One batch in flight: the server waits (TCP back-pressure) while the job is busy.
        let (tx, batches) = mpsc::channel(1);
        let connection_id = conn.id();
        let table_count = tables.len();
        let reader_config = config.clone();
        let task = tokio::spawn(async move {
            let result = read_tables(&reader_config, &spec, &tables, &mut conn, &tx).await;
            conn.disconnect().await.ok();
            let _ = tx.send(result.map_or_else(Message::Failed, |()| Message::Done)).await;
        });
        Ok(LegacySnapshot { start, gtid, batches, task, config, connection_id, tables: table_count, tables_done: 0 })
    }

    /// The next batch; `None` once every table is read and the transaction ended.
    pub async fn next(&mut self) -> Result<Option<ChangeBatch>> {
        loop {
            match self.batches.recv().await {
                Some(Message::Batch(batch)) => return Ok(Some(batch)),
                Some(Message::TableDone) => self.tables_done += 1,
                Some(Message::Done) => return Ok(None),
                Some(Message::Failed(e)) => return Err(e),
                None => return Err(Error::internal("the legacy snapshot reader stopped without finishing")),
            }
        }
    }

    /// (tables whose rows were all handed out, tables to read).
    pub fn tables(&self) -> (usize, usize) {
        (self.tables_done, self.tables)
    }

    /// Stops the reader. Its connection is killed on the server: dropped in the middle of a
    /// result, `mysql_async` would read the rest of the table before closing it.
    pub async fn close(self) {
        self.task.abort();
        if let Ok(mut conn) = server::connect(&self.config).await {
            // A user may kill its own connections; a finished reader's is gone already.
            let _ = conn.query_drop(format!("KILL {}", self.connection_id)).await;
            let _ = conn.disconnect().await;
        }
    }
}

/// Starts the snapshot transaction; its exact binlog position and GTID position.
async fn open_transaction(
    config: &MySqlCdcConfig,
    conn: &mut Conn,
    version: server::ServerVersion,
) -> Result<(BinlogPos, GtidState)> {
    prepare_session(config, conn).await?;
    // A slow job holds the result stream unread for a while; the server must not give up on it
    // after its default 60 s.
    conn.query_drop("SET SESSION net_write_timeout = 3600")
        .await
        .map_err(|e| server_error(config, "preparing the snapshot session", e))?;
    if version.mariadb {
        let start = server::consistent_snapshot_position(config, conn).await?;
        let gtid = server::mariadb_gtid_at(config, conn, &start).await?;
        return Ok((start, gtid));
    }
    conn.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(|e| match &e {
        mysql_async::Error::Server(se) if matches!(se.code, 1044 | 1045 | 1227) => Error::user(format!(
            "MySQL server {}:{} (table `{}`): the legacy snapshot ('scan.incremental.snapshot.enabled' = 'false') takes a global read lock while it starts, which needs the RELOAD privilege ({}): GRANT RELOAD ON *.* TO '{}'@'%', or use the lock-free incremental snapshot",
            config.hostname, config.port, config.table, se.message, config.username
        )),
        _ => server_error(config, "taking the global read lock (FLUSH TABLES WITH READ LOCK)", e),
    })?;
    let opened = async {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await
            .map_err(|e| server_error(config, "starting a consistent snapshot", e))?;
        server::current_position(config, conn, version).await
    }
    .await;
    conn.query_drop("UNLOCK TABLES").await.map_err(|e| server_error(config, "releasing the global read lock", e))?;
    Ok((opened?, GtidState::default()))
}

async fn read_tables(
    config: &MySqlCdcConfig,
    spec: &TableSpec,
    tables: &[Arc<CapturedTable>],
    conn: &mut Conn,
    tx: &mpsc::Sender<Message>,
) -> Result<()> {
    let fetch = config.fetch_size;
    let mut builder = ChangeBuilder::new(spec.schema(), config.server_time_zone, fetch)?;
    for table in tables {
        let doing = format!("reading the snapshot of {}", table.qualified());
        let sql = format!("SELECT {} FROM {}", table.text_select_list(), table.qualified());
        let mut result = conn.query_iter(sql).await.map_err(|e| server_error(config, &doing, e))?;
        let mut rows = result.stream::<mysql_async::Row>().await.map_err(|e| server_error(config, &doing, e))?;
        if let Some(rows) = rows.as_mut() {
            while let Some(row) = rows.next().await {
                append_row(&mut builder, table, &row.map_err(|e| server_error(config, &doing, e))?)?;
                if builder.len() >= fetch && tx.send(Message::Batch(builder.finish()?)).await.is_err() {
                    // Nobody reads any more: the source was dropped.
                    return Ok(());
                }
            }
        }
        tracing::debug!(table = %table.qualified(), "legacy snapshot read the table");
        // The table's last rows go out on their own, so that progress counts a table as read
        // only once all its rows are handed out.
        if builder.len() > 0 && tx.send(Message::Batch(builder.finish()?)).await.is_err() {
            return Ok(());
        }
        if tx.send(Message::TableDone).await.is_err() {
            return Ok(());
        }
    }
    conn.query_drop("COMMIT").await.map_err(|e| server_error(config, "ending the snapshot transaction", e))?;
    Ok(())
}
