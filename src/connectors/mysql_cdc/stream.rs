//! Reading the binlog: events to changelog rows, transaction boundaries, positions, MariaDB GTIDs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};

use super::cell::{read_binlog_cell, real_type};
use super::config::MySqlCdcConfig;
use super::progress::EventTime;
use super::rows::{ColumnMeta, TableChanges};
use super::schema::{CapturedTable, Declared};
use super::server::{describe_table, server_error, BinlogPos};
use crate::changelog::{self, RowKind, SchemaChange};
use crate::error::{Error, Result};

/// Decides which binlog rows to keep (snapshot reconciliation and chunk backfills).
pub trait RowFilter: Send + Sync {
    /// Whether `keep` needs the row's chunk key for this table.
    fn needs_key(&self, table: &CapturedTable) -> bool;
    fn keep(&self, table: &CapturedTable, key: Option<i128>, event_end: &BinlogPos) -> bool;
}

/// Keeps every row of every captured table.
pub struct KeepAll;

impl RowFilter for KeepAll {
    fn needs_key(&self, _: &CapturedTable) -> bool {
        false
    }
    fn keep(&self, _: &CapturedTable, _: Option<i128>, _: &BinlogPos) -> bool {
        true
    }
}

/// A MariaDB GTID event body: sequence number (u64), domain (u32), flags (u8); the server id is
/// the event header's.
pub fn parse_mariadb_gtid(body: &[u8]) -> Option<(u32, u64, u8)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    Some((domain, seq, *body.get(12)?))
}

/// MariaDB GTID position: per domain, the last server id and sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState(BTreeMap<u32, (u32, u64)>);

impl GtidState {
    pub fn parse(text: &str) -> Option<Self> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let d = it.next()?.parse().ok()?;
            let s = it.next()?.parse().ok()?;
            let n = it.next()?.parse().ok()?;
            map.insert(d, (s, n));
        }
        Some(GtidState(map))
    }

    pub fn set(&mut self, domain: u32, server: u32, seq: u64) {
        self.0.insert(domain, (server, seq));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The domains in which transactions after `self` come before `other`: `other` is where the
    /// server's oldest binlog file begins, so those transactions are purged. Sequence numbers
    /// grow within a domain (gtid_strict_mode).
    pub fn behind(&self, other: &GtidState) -> Vec<u32> {
        other
            .0
            .iter()
            .filter(|(domain, (_, seq))| self.0.get(domain).is_none_or(|(_, mine)| mine < seq))
            .map(|(domain, _)| *domain)
            .collect()
    }
}

impl std::fmt::Display for GtidState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// Where a binlog read starts.
pub enum StreamStart {
    File(BinlogPos),
    /// MariaDB: after this GTID position.
    MariaDbGtid(String),
}

/// What one event meant for the reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Row changes appended (transaction still open).
    Rows,
    /// A transaction (or DDL statement) ended: `committed` moved.
    Commit,
    /// Nothing that moves the position (table maps, format descriptions, …).
    Other,
}

type TableMapping = Option<(Arc<CapturedTable>, Arc<[ColumnMeta]>)>;

/// Whether `statement` may name `table`: whether the name is in its text, whatever the case.
/// Errs on the side of yes (`orders` is in `orders_archive`), which only costs a description.
fn may_name(statement: &str, table: &str) -> bool {
    statement.to_lowercase().contains(&table.to_lowercase())
}

/// A captured table's columns as MySQL names them (`COLUMN_TYPE`).
fn described_columns(table: &CapturedTable) -> Vec<changelog::SourceColumn> {
    table
        .columns
        .iter()
        .map(|c| changelog::SourceColumn { name: c.name.clone(), data_type: c.column_type.clone() })
        .collect()
}

pub struct BinlogReader {
    stream: Option<BinlogStream>,
    config: Arc<MySqlCdcConfig>,
    declared: Declared,
    /// For describing tables first seen in the binlog.
    describe_conn: Option<Conn>,
    tables: HashMap<(String, String), Option<Arc<CapturedTable>>>,
    table_ids: HashMap<u64, TableMapping>,
    /// The columns each captured table had when last described, to tell when they change.
    columns: HashMap<(String, String), Vec<changelog::SourceColumn>>,
    /// Changes of captured tables' columns seen since the last [`BinlogReader::take_schema_changes`].
    schema_changes: Vec<SchemaChange>,
    file: String,
    /// After the last complete transaction: where a restart resumes.
    pub committed: BinlogPos,
    /// End of the last event read.
    pub last_event_end: BinlogPos,
    in_transaction: bool,
    pub gtid: GtidState,
    /// The newest row event of a captured table read: its time and fetch lag, for monitoring.
    pub last_event: Option<EventTime>,
    pending_gtid: Option<(u32, u32, u64)>,
    non_blocking: bool,
    server_id: u32,
    /// The Rotate event sent before the first format description is decoded without knowing
    /// about checksums, so its file name ends with the 4 checksum bytes.
    rotate_has_checksum: bool,
    /// 'timestamp' startup: transactions committed before this second (epoch seconds) are
    /// skipped, until the first one committed at or after it.
    skip_before: Option<u32>,
    /// While skipping: the events of the open transaction, decoded only if its commit is late enough.
    held: Vec<Event>,
}

impl BinlogReader {
    /// Opens a binlog stream. `non_blocking` ends the stream at the binlog's current end (backfills).
    pub async fn open(
        config: Arc<MySqlCdcConfig>,
        declared: Declared,
        known: &[Arc<CapturedTable>],
        start: StreamStart,
        server_id: u32,
        non_blocking: bool,
        gtid: GtidState,
    ) -> Result<Self> {
        let mut conn = super::server::connect(&config).await?;
        let mariadb = super::server::server_version(&config, &mut conn).await?.mariadb;
        let period_ns = config.heartbeat_interval.as_nanos().min(u32::MAX as u128 * 1_000_000);
        // MySQL 8.0.26+ reads the variable's new name first; MariaDB and older MySQL the old one.
        let mut setup =
            vec![format!("SET @master_heartbeat_period = {period_ns}, @source_heartbeat_period = {period_ns}")];
        if mariadb {
            // Without capability 4 the server hides its GTID events behind "BEGIN" queries.
            setup.push("SET @mariadb_slave_capability = 4".into());
        }
        let (request_file, request_pos) = match &start {
            StreamStart::File(p) => (p.file.clone(), p.pos),
            StreamStart::MariaDbGtid(g) => {
                if !mariadb {
                    return Err(Error::user(format!(
                        "table `{}`: 'scan.startup.specific-offset.gtid-set' is supported on MariaDB only; on MySQL use 'scan.startup.specific-offset.file' and '.pos'",
                        config.table
                    )));
                }
                setup.push(format!("SET @slave_connect_state = '{}'", g.replace('\'', "")));
                setup.push("SET @slave_gtid_strict_mode = 0".into());
                setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
                (String::new(), 4)
            }
        };
        for sql in &setup {
            conn.query_drop(sql).await.map_err(|e| server_error(&config, "preparing the binlog stream", e))?;
        }
        let checksum: Option<String> = conn
            .query_first("SELECT @@global.binlog_checksum")
            .await
            .map_err(|e| server_error(&config, "reading binlog_checksum", e))?;
        let checksummed = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        let mut request = BinlogStreamRequest::new(server_id);
        if !request_file.is_empty() {
            request = request.with_filename(request_file.as_bytes()).with_pos(request_pos);
        }
        if non_blocking {
            request = request.with_non_blocking();
        }
        let stream = conn.get_binlog_stream(request).await.map_err(|e| {
            server_error(&config, &format!("requesting the binlog from {request_file}:{request_pos}"), e)
        })?;
        tracing::debug!(table = %config.table, server_id, file = %request_file, pos = request_pos, non_blocking, "binlog stream opened");
        let tables = known.iter().map(|t| ((t.database.clone(), t.table.clone()), Some(t.clone()))).collect();
        let columns = known.iter().map(|t| ((t.database.clone(), t.table.clone()), described_columns(t))).collect();
        let committed = BinlogPos { file: request_file.clone(), pos: request_pos };
        Ok(BinlogReader {
            stream: Some(stream),
            config,
            declared,
            describe_conn: None,
            tables,
            table_ids: HashMap::new(),
            columns,
            schema_changes: Vec::new(),
            file: request_file,
            last_event_end: committed.clone(),
            committed,
            in_transaction: false,
            gtid,
            last_event: None,
            pending_gtid: None,
            non_blocking,
            server_id,
            rotate_has_checksum: checksummed,
            skip_before: None,
            held: Vec::new(),
        })
    }

    /// Skips whole transactions committed before `second` (epoch seconds, the binlog's precision),
    /// up to the first one committed at or after it; everything from there on is read.
    pub fn skip_transactions_before(&mut self, second: u32) {
        self.skip_before = Some(second);
    }

    /// The second still being waited for while transactions are skipped.
    pub fn skipping_before(&self) -> Option<u32> {
        self.skip_before
    }

    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// The changes of captured tables' columns read since last asked, in order. Each comes before
    /// the table's first row change in its new shape: rows appended before it are of before.
    pub fn take_schema_changes(&mut self) -> Vec<SchemaChange> {
        std::mem::take(&mut self.schema_changes)
    }

    /// Ends the server's dump thread (a dropped stream would leave it running).
    pub async fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.close().await;
        }
        if let Some(conn) = self.describe_conn.take() {
            let _ = conn.disconnect().await;
        }
    }

    /// Reads the next event within `wait`. `Ok(None)`: nothing arrived in time, or a
    /// non-blocking stream reached the end of the binlog.
    pub async fn next(
        &mut self,
        wait: Duration,
        out: &mut TableChanges,
        filter: &dyn RowFilter,
    ) -> Result<Option<Step>> {
        let Some(stream) = self.stream.as_mut() else { return Ok(None) };
        let event = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => return Ok(None),
            Ok(None) if self.non_blocking => return Ok(None),
            Ok(None) => {
                return Err(Error::external(format!(
                    "MySQL server {}:{} closed the binlog stream of table `{}` (another reader with server-id {} may have taken over; give each job its own 'server-id')",
                    self.config.hostname, self.config.port, self.config.table, self.server_id
                )))
            }
            Ok(Some(Err(e))) => return Err(server_error(&self.config, "reading the binlog", e)),
            Ok(Some(Ok(event))) => event,
        };
        match self.skip_before {
            Some(second) if self.in_transaction => self.hold_or_decide(event, second, out, filter).await,
            _ => self.handle(&event, out, filter).await,
        }
    }

    /// While skipping, a transaction's events are held until its commit, whose timestamp decides
    /// for the whole transaction: a transaction is never split, and it counts from when it
    /// committed (its row events carry the earlier times their statements ran).
    async fn hold_or_decide(
        &mut self,
        event: Event,
        second: u32,
        out: &mut TableChanges,
        filter: &dyn RowFilter,
    ) -> Result<Option<Step>> {
        if !ends_transaction(&event) {
            self.held.push(event);
            return Ok(Some(Step::Other));
        }
        let held = std::mem::take(&mut self.held);
        let committed_at = event.header().timestamp();
        if committed_at >= second {
            tracing::info!(table = %self.config.table, committed_at, from = second, position = %self.committed, "first transaction at or after 'scan.startup.timestamp-millis'; streaming from here");
            self.skip_before = None;
            for e in &held {
                self.handle(e, out, filter).await?;
            }
        }
        self.handle(&event, out, filter).await
    }

    async fn handle(&mut self, event: &Event, out: &mut TableChanges, filter: &dyn RowFilter) -> Result<Option<Step>> {
        let header = event.header();
        let log_pos = header.log_pos() as u64;
        let event_type = header.event_type_raw();
        tracing::trace!(event_type, log_pos, in_transaction = self.in_transaction, "binlog event");
        if log_pos > 0 && event_type != 4 {
            self.last_event_end = BinlogPos { file: self.file.clone(), pos: log_pos };
        }
        let bad = |e: std::io::Error| Error::internal(format!("cannot decode binlog event type {event_type}: {e}"));
        match event_type {
            // Rotate: a new file (also sent first, naming where the stream starts).
            4 => {
                if let Ok(Some(EventData::RotateEvent(rotate))) = event.read_data() {
                    let raw = rotate.name_raw();
                    let name = match self.rotate_has_checksum {
                        true if raw.len() > 4 => &raw[..raw.len() - 4],
                        _ => raw,
                    };
                    self.file = String::from_utf8_lossy(name).into_owned();
                    let at = BinlogPos { file: self.file.clone(), pos: rotate.position() };
                    if !self.in_transaction && (self.committed.file.is_empty() || at > self.committed) {
                        self.committed = at.clone();
                    }
                    self.last_event_end = at;
                }
                Ok(Some(Step::Other))
            }
            // MariaDB GTID: a transaction starts.
            0xa2 => {
                if let Some((domain, seq, flags)) = parse_mariadb_gtid(event.data()) {
                    self.pending_gtid = Some((domain, header.server_id(), seq));
                    // FL_STANDALONE: a single statement (DDL) without BEGIN/COMMIT.
                    self.in_transaction = flags & 1 == 0;
                }
                Ok(Some(Step::Other))
            }
            // Heartbeat: the stream is idle at the master's position.
            27 => {
                let at = BinlogPos { file: self.file.clone(), pos: log_pos };
                if !self.in_transaction && log_pos > 0 && at > self.committed {
                    self.committed = at;
                    return Ok(Some(Step::Commit));
                }
                Ok(Some(Step::Other))
            }
            15 => {
                self.rotate_has_checksum = false;
                Ok(Some(Step::Other))
            }
            // XID: a transactional commit.
            16 => Ok(Some(self.commit())),
            // Query: BEGIN, COMMIT (non-transactional engines) or a statement such as DDL.
            2 => {
                let Ok(Some(EventData::QueryEvent(query))) = event.read_data() else { return Ok(Some(Step::Other)) };
                let text = query.query();
                let trimmed = text.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    self.in_transaction = true;
                    return Ok(Some(Step::Other));
                }
                // ROLLBACK ends a transaction whose non-transactional changes stay.
                if trimmed.eq_ignore_ascii_case("COMMIT") || trimmed.eq_ignore_ascii_case("ROLLBACK") {
                    return Ok(Some(self.commit()));
                }
                if self.in_transaction {
                    // SAVEPOINT and ROLLBACK TO SAVEPOINT are logged inside their transaction.
                    return Ok(Some(Step::Other));
                }
                // DDL may change a captured table: describe the tables it may name again when next
                // mapped. Only those: a table described again while the binlog is behind the server
                // gets the shape of later DDL, so other tables' DDL must not make that happen.
                self.tables.retain(|(_, table), t| t.is_none() || !may_name(trimmed, table));
                self.table_ids.clear();
                Ok(Some(self.commit()))
            }
            19 => {
                if let Some(EventData::TableMapEvent(tme)) = event.read_data().map_err(bad)? {
                    let mapping = self.map_table(&tme).await?;
                    self.table_ids.insert(tme.table_id(), mapping);
                }
                Ok(Some(Step::Other))
            }
            23..=25 | 30..=32 | 39 => {
                let Some(EventData::RowsEvent(rows)) = event.read_data().map_err(bad)? else {
                    return Ok(Some(Step::Other));
                };
                let Some(Some((table, metas))) = self.table_ids.get(&rows.table_id()).cloned() else {
                    return Ok(Some(Step::Other));
                };
                let end = BinlogPos { file: self.file.clone(), pos: log_pos };
                self.last_event = Some(EventTime::at(header.timestamp(), crate::runtime::metrics::now_ms()));
                self.append_rows(&rows, &table, &metas, header.timestamp() as i64 * 1000, &end, out, filter)?;
                Ok(Some(Step::Rows))
            }
            _ => Ok(Some(Step::Other)),
        }
    }

    fn commit(&mut self) -> Step {
        self.in_transaction = false;
        if let Some((d, s, n)) = self.pending_gtid.take() {
            self.gtid.set(d, s, n);
        }
        self.committed = self.last_event_end.clone();
        Step::Commit
    }

    async fn map_table(&mut self, tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> Result<TableMapping> {
        let key = (tme.database_name().to_string(), tme.table_name().to_string());
        if !self.config.matches(&key.0, &key.1) {
            return Ok(None);
        }
        let count = tme.columns_count() as usize;
        let mut table = self.tables.get(&key).cloned().flatten();
        if table.as_ref().is_none_or(|t| t.columns.len() != count) {
            // A table created or altered after the reader started.
            if self.describe_conn.is_none() {
                self.describe_conn = Some(super::server::connect(&self.config).await?);
            }
            let Some(conn) = self.describe_conn.as_mut() else { return Ok(None) };
            let described = Arc::new(describe_table(&self.config, &self.declared, conn, &key.0, &key.1).await?);
            let after = described_columns(&described);
            // Described again after DDL: whether the DDL changed this table's columns.
            if let Some(before) = self.columns.insert(key.clone(), after.clone()).filter(|b| *b != after) {
                let table = Some(Arc::from(format!("{}.{}", key.0, key.1)));
                self.schema_changes.push(SchemaChange { table, before, after });
            }
            self.tables.insert(key.clone(), Some(described.clone()));
            table = Some(described);
        }
        let Some(table) = table else { return Ok(None) };
        if table.columns.len() != count {
            return Err(Error::user(format!(
                "MySQL table `{}`.`{}` has {} columns now but the binlog event has {count}: its schema changed while older events are still being read; cdc-sql's mysql-cdc does not follow schema changes yet — restart from a new snapshot",
                key.0,
                key.1,
                table.columns.len()
            )));
        }
        let mut metas = Vec::with_capacity(count);
        for i in 0..count {
            let column_type = tme
                .get_raw_column_type(i)
                .map_err(|e| Error::internal(format!("table map of `{}`.`{}`: {e}", key.0, key.1)))?
                .map(|t| t as u8)
                .unwrap_or(0);
            let meta = ColumnMeta::from_table_map(column_type, tme.get_column_metadata(i).unwrap_or(&[]));
            let column = &table.columns[i];
            let (real, _) = real_type(meta.column_type, meta.meta);
            if !column.fits_binlog_type(real) {
                return Err(Error::user(format!(
                    "MySQL table `{}`.`{}` has column {} `{}` of type {} now, but the binlog event being read has a column of \
                     another type (binlog type {real}) there: the table changed (ALTER TABLE) after the events still being read, \
                     and cdc-sql's mysql-cdc reads them with the table's description of now, which does not fit them. \
                     Restart the job with --fresh for a new snapshot",
                    key.0,
                    key.1,
                    i + 1,
                    column.name,
                    column.column_type
                )));
            }
            metas.push(meta);
        }
        Ok(Some((table, metas.into())))
    }

    #[allow(clippy::too_many_arguments)]
    fn append_rows(
        &self,
        rows: &RowsEventData<'_>,
        table: &CapturedTable,
        metas: &[ColumnMeta],
        op_ts: i64,
        end: &BinlogPos,
        out: &mut TableChanges,
        filter: &dyn RowFilter,
    ) -> Result<()> {
        let (kind, data, columns) = match rows {
            RowsEventData::WriteRowsEventV1(e) => (0, e.rows_data(), e.num_columns()),
            RowsEventData::WriteRowsEvent(e) => (0, e.rows_data(), e.num_columns()),
            RowsEventData::UpdateRowsEventV1(e) => (1, e.rows_data(), e.num_columns()),
            RowsEventData::UpdateRowsEvent(e) => (1, e.rows_data(), e.num_columns()),
            RowsEventData::DeleteRowsEventV1(e) => (2, e.rows_data(), e.num_columns()),
            RowsEventData::DeleteRowsEvent(e) => (2, e.rows_data(), e.num_columns()),
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(Error::user(format!(
                    "MySQL logs partial JSON updates for `{}`.`{}` (binlog_row_value_options = PARTIAL_JSON); mysql-cdc needs whole rows: SET GLOBAL binlog_row_value_options = ''",
                    table.database, table.table
                )))
            }
        };
        if columns as usize != metas.len() {
            return Err(Error::user(format!(
                "a binlog row event of `{}`.`{}` carries {columns} of {} columns: set binlog_row_image = FULL",
                table.database,
                table.table,
                metas.len()
            )));
        }
        let key_index = if filter.needs_key(table) { table.chunk_key } else { None };
        let mut at = 0;
        while at < data.len() {
            match kind {
                0 | 2 => {
                    let start = at;
                    let key = scan_image(table, metas, data, &mut at, key_index)?;
                    if filter.keep(table, key, end) {
                        let mut again = start;
                        let row_kind = if kind == 0 { RowKind::Insert } else { RowKind::Delete };
                        out.append_binlog_row(table, metas, data, &mut again, row_kind, op_ts)?;
                    }
                }
                _ => {
                    let before = at;
                    let before_key = scan_image(table, metas, data, &mut at, key_index)?;
                    let after = at;
                    let after_key = scan_image(table, metas, data, &mut at, key_index)?;
                    let keep_before = filter.keep(table, before_key, end);
                    let keep_after = filter.keep(table, after_key, end);
                    tracing::trace!(?before_key, ?after_key, %end, keep_before, keep_after, "update row");
                    let (mut b, mut a) = (before, after);
                    match (keep_before, keep_after) {
                        (true, true) => {
                            out.append_binlog_row(table, metas, data, &mut b, RowKind::UpdateBefore, op_ts)?;
                            out.append_binlog_row(table, metas, data, &mut a, RowKind::UpdateAfter, op_ts)?;
                        }
                        // The key moved between a reconciled chunk and one still to reconcile.
                        (true, false) => out.append_binlog_row(table, metas, data, &mut b, RowKind::Delete, op_ts)?,
                        (false, true) => out.append_binlog_row(table, metas, data, &mut a, RowKind::Insert, op_ts)?,
                        (false, false) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `event` ends the open transaction: XID, or a COMMIT / ROLLBACK query (non-transactional
/// engines). Other queries inside a transaction are SAVEPOINT and ROLLBACK TO SAVEPOINT.
fn ends_transaction(event: &Event) -> bool {
    match event.header().event_type_raw() {
        16 => true,
        2 => match event.read_data() {
            Ok(Some(EventData::QueryEvent(q))) => {
                let text = q.query();
                let text = text.trim();
                text.eq_ignore_ascii_case("COMMIT") || text.eq_ignore_ascii_case("ROLLBACK")
            }
            _ => false,
        },
        _ => false,
    }
}

/// Moves past one row image, returning the integer value of column `key_index` if asked.
fn scan_image(
    table: &CapturedTable,
    metas: &[ColumnMeta],
    buf: &[u8],
    at: &mut usize,
    key_index: Option<usize>,
) -> Result<Option<i128>> {
    let n = metas.len();
    let null_bytes = n.div_ceil(8);
    let nulls = buf
        .get(*at..*at + null_bytes)
        .ok_or_else(|| Error::internal("binlog row image ends inside its NULL bitmap"))?;
    *at += null_bytes;
    let mut key = None;
    for (i, meta) in metas.iter().enumerate() {
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            continue;
        }
        let unsigned = table.columns.get(i).is_some_and(|c| c.unsigned);
        let cell = read_binlog_cell(buf, at, meta.column_type, meta.meta, unsigned)?;
        if Some(i) == key_index {
            key = match cell {
                super::cell::Cell::Int(v) => Some(v as i128),
                super::cell::Cell::UInt(v) => Some(v as i128),
                _ => None,
            };
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    /// Only DDL that may name a captured table makes it be described again; quoting, qualifying
    /// and case do not hide a name.
    #[test]
    fn ddl_names_the_tables_it_may_change() {
        let names = super::may_name;
        assert!(names("ALTER TABLE `shop`.`Orders` ADD COLUMN note TEXT", "orders"));
        assert!(names("alter table orders drop column x", "Orders"));
        assert!(names("RENAME TABLE orders_new TO orders", "orders"));
        assert!(names("ALTER TABLE `order items` ADD c INT", "order items"));
        assert!(!names("ALTER TABLE customers ADD COLUMN note TEXT", "orders"));
        assert!(!names("CREATE DATABASE other", "orders"));
    }

    use super::*;

    #[test]
    fn mariadb_gtid_events_and_states() {
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1);
        assert_eq!(parse_mariadb_gtid(&body), Some((3, 42, 1)));
        assert_eq!(parse_mariadb_gtid(&body[..10]), None);
        let mut state = GtidState::parse("0-1-5, 2-7-9").unwrap();
        state.set(0, 2, 6);
        assert_eq!(state.to_string(), "0-2-6,2-7-9");
        assert!(GtidState::parse("0-x-1").is_none());
        let oldest = GtidState::parse("0-1-10,2-7-9").unwrap();
        assert_eq!(GtidState::parse("0-2-10,2-7-9,5-1-1").unwrap().behind(&oldest), Vec::<u32>::new());
        assert_eq!(GtidState::parse("0-1-9,2-7-20").unwrap().behind(&oldest), vec![0]);
        assert_eq!(GtidState::parse("0-1-12").unwrap().behind(&oldest), vec![2]);
        assert_eq!(GtidState::default().behind(&GtidState::default()), Vec::<u32>::new());
    }
}
