//! `iotdb`: writes relational rows as time series into Apache IoTDB over its REST API
//! (`rest_service_port`, default 18080), with the same mapping for bounded backfills and CDC.
//!
//! Tree model (default): a device path (fixed, or a template such as `root.factory.{deviceId}`
//! filled from row values, nodes quoted with backticks where IoTDB requires it), a time column,
//! and the other columns as measurements, written with `POST /rest/v2/insertTablet` (column-major,
//! one request per device per flush, NULL = no value). Table model (`sql-dialect` = `table`,
//! IoTDB 2.x): `POST /rest/table/v1/insertTablet` with TAG/ATTRIBUTE/FIELD columns, row-major.
//!
//! Changelog: the key is (device columns or tags, time). A flush compacts its buffer by that key;
//! `+I`/`+U` overwrite the point (IoTDB keeps the last write of a series + timestamp), `-D` and a
//! `-U` whose `+U` moved to another key delete the point with `DELETE FROM <device>.* WHERE time = t`
//! (`/rest/v2/nonQuery`; table model: `DELETE FROM <table> WHERE time = t AND <tag> = '…'`).
//! Since IoTDB cannot write a NULL over a value, an upsert carrying NULLs in a changelog stream
//! first deletes its point. Transport errors, HTTP 5xx and IoTDB's transient codes are retried
//! with exponential backoff up to `sink.max-retries`; auth failures (800/801) and type conflicts
//! (507/614, after which other measurements of the request may have been written) stop the job.
//!
//! Limits: BYTES, TIME, ARRAY, MAP and ROW columns are rejected (CAST them); BIGINT UNSIGNED above
//! 2^63-1 is an error; timestamps that the chosen `time-precision` would truncate are errors;
//! every batch is written when it arrives (`sink.buffer-flush.*` are never waited for; both `0`:
//! at checkpoints only, as in Flink), and checkpoints flush. Writes
//! are idempotent, so replays after a restart give the same data (at-least-once = exactly-once).

mod encode;
mod path;
mod protocol;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, Int8Array};
use datafusion::arrow::compute::{concat, concat_batches};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use encode::{iotdb_type, is_time_type, json_string, time_of, DecimalMapping, Precision, ValueWriter};
use path::{describe_row, is_template_type, quote_node, DeviceTemplate};
use protocol::{failure, is_missing_target, outcome, Outcome};

use super::{Connector, ConnectorOptions, ConnectorTable, PreparedCommit, Sink};
use crate::changelog::{compact_by_key, ChangeBatch, ChangelogMode, TableId};
use crate::error::{Error, Result};
use crate::sql::TableSpec;

pub struct Iotdb;

impl Connector for Iotdb {
    fn name(&self) -> &'static str {
        "iotdb"
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        Ok(Box::new(IotdbTable { config: Arc::new(Config::parse(spec, options)?) }))
    }
}

#[derive(Debug)]
enum Model {
    Tree { device: DeviceTemplate },
    Table { database: String, table: String, tags: Vec<usize>, attributes: Vec<usize> },
}

#[derive(Debug)]
struct Measurement {
    column: usize,
    /// As sent: quoted for the tree model when IoTDB requires it.
    name: String,
    iotdb_type: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DeleteMode {
    Delete,
    Ignore,
}

#[derive(Debug)]
struct Config {
    table_name: String,
    schema: SchemaRef,
    urls: Vec<String>,
    user: String,
    password: String,
    model: Model,
    time_column: usize,
    precision: Precision,
    aligned: bool,
    measurements: Vec<Measurement>,
    key_columns: Vec<usize>,
    decimals: DecimalMapping,
    /// `sink.buffer-flush.max-rows` and `.interval` both `0`: flush at checkpoints only.
    checkpoints_only: bool,
    max_retries: u32,
    delete_mode: DeleteMode,
}

/// A column by name: exact first, then ignoring case.
fn find_column(schema: &SchemaRef, table: &str, name: &str, option: &str) -> Result<usize> {
    let fields = schema.fields();
    fields
        .iter()
        .position(|f| f.name() == name)
        .or_else(|| fields.iter().position(|f| f.name().eq_ignore_ascii_case(name)))
        .ok_or_else(|| {
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            Error::user(format!(
                "option '{option}' of table `{table}` names column `{name}`, which the table does not have (columns: {})",
                names.join(", ")
            ))
        })
}

fn parse_urls(text: &str, options: &ConnectorOptions, key: &str) -> Result<Vec<String>> {
    let mut urls = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let url = if part.contains("://") { part.to_string() } else { format!("http://{part}") };
        let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
            return Err(options.invalid(
                key,
                text,
                "http:// or https:// URLs of IoTDB's REST service, e.g. 'http://iotdb:18080'",
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(options.invalid(
                key,
                text,
                "URLs with a host and port and without credentials (give them in 'user' and 'password')",
            ));
        }
        urls.push(url.trim_end_matches('/').to_string());
    }
    if urls.is_empty() {
        return Err(options.invalid(key, text, "at least one URL such as 'http://iotdb:18080'"));
    }
    Ok(urls)
}

fn column_list(text: Option<String>) -> Vec<String> {
    text.map(|t| t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

impl Config {
    fn parse(spec: &TableSpec, o: &mut ConnectorOptions) -> Result<Self> {
        let table_name = spec.name.clone();
        let schema = spec.persisted_schema();
        let urls = match (o.string("url"), o.string("nodeUrls")) {
            (Some(_), Some(_)) => {
                return Err(Error::user(format!(
                    "table `{table_name}` sets both 'url' and 'nodeUrls'; 'nodeUrls' is an alias of 'url', keep one"
                )))
            }
            (Some(u), None) => parse_urls(&u, o, "url")?,
            (None, Some(u)) => parse_urls(&u, o, "nodeUrls")?,
            (None, None) => {
                return Err(Error::user(format!(
                    "table `{table_name}` (connector 'iotdb') needs option 'url', the REST endpoint such as 'http://iotdb:18080'"
                )))
            }
        };
        let user = o.string("user").unwrap_or_else(|| "root".into());
        let password = o.string("password").unwrap_or_else(|| "root".into());
        // IoTDB's REST filter splits the Basic credentials on ':' and rejects anything but two
        // non-empty parts, so such accounts cannot log in over REST at all.
        if user.is_empty() || user.contains(':') || password.is_empty() || password.contains(':') {
            return Err(Error::user(format!(
                "table `{table_name}`: IoTDB's REST service cannot log in with an empty user or password, or one containing ':'; use another account"
            )));
        }
        let dialect = o.choice("sql-dialect", &["tree", "table"])?.unwrap_or("tree");
        let precision = match o.choice("time-precision", &["ms", "us", "ns"])?.unwrap_or("ms") {
            "us" => Precision::Micros,
            "ns" => Precision::Nanos,
            _ => Precision::Millis,
        };
        let aligned = o.bool("aligned")?;
        // The Flink IoTDB connector's read and lookup options change nothing in a sink.
        for key in [
            "mode",
            "cdc.port",
            "cdc.task.name",
            "cdc.pattern",
            "cdc.mode",
            "sql",
            "scan.bounded.lower-bound",
            "scan.bounded.upper-bound",
        ] {
            o.no_effect(
                key,
                "the iotdb connector is a sink here: reading IoTDB is refused, so read options have nothing to configure",
            );
        }
        for key in ["lookup.cache.max-rows", "lookup.cache.ttl-sec"] {
            o.no_effect(key, super::lookup::NOT_OFFERED);
        }
        let decimals = match o.choice("decimal-mapping", &["double", "text"])?.unwrap_or("double") {
            "text" => DecimalMapping::Text,
            _ => DecimalMapping::Double,
        };
        // Flushes never wait for these (see the module header); Flink's `0` for both turns the
        // flush triggers off, leaving checkpoints.
        let max_rows = o.parse::<usize>("sink.buffer-flush.max-rows", "a whole number of rows")?.unwrap_or(10_000);
        let interval = o.duration("sink.buffer-flush.interval")?.unwrap_or(Duration::from_secs(1));
        let checkpoints_only = max_rows == 0 && interval.is_zero();
        let max_retries = o.parse::<u32>("sink.max-retries", "a whole number")?.unwrap_or(3);
        let delete_mode = match o.choice("sink.delete-mode", &["delete", "ignore"])?.unwrap_or("delete") {
            "ignore" => DeleteMode::Ignore,
            _ => DeleteMode::Delete,
        };

        let time_option = o.string("time-column");
        let time_column = match &time_option {
            Some(name) => find_column(&schema, &table_name, name, "time-column")?,
            // The Flink IoTDB connector's fixed time column name.
            None => schema.fields().iter().position(|f| f.name() == "Time_").ok_or_else(|| {
                Error::user(format!(
                    "table `{table_name}` (connector 'iotdb') needs option 'time-column', the column holding each point's time"
                ))
            })?,
        };
        let time_type = schema.field(time_column).data_type();
        if !is_time_type(time_type) {
            return Err(Error::user(format!(
                "time column `{}` of table `{table_name}` has type {time_type}; expected TIMESTAMP, TIMESTAMP_LTZ, DATE, INT or BIGINT (epoch in 'time-precision' units)",
                schema.field(time_column).name()
            )));
        }

        let (model, mut reserved) = if dialect == "table" {
            if o.string("device").is_some() {
                return Err(Error::user(format!(
                    "table `{table_name}`: 'device' is for the tree model; with 'sql-dialect' = 'table' use 'database', 'table', 'tag-columns' and 'attribute-columns'"
                )));
            }
            if aligned.is_some() {
                return Err(Error::user(format!(
                    "table `{table_name}`: 'aligned' is for the tree model; table-model columns are always aligned"
                )));
            }
            let database = o.required("database")?;
            let table = o.required("table")?;
            let string_columns = |key: &str, list: Vec<String>| -> Result<Vec<usize>> {
                list.iter()
                    .map(|name| {
                        let i = find_column(&schema, &table_name, name, key)?;
                        match schema.field(i).data_type() {
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(i),
                            other => Err(Error::user(format!(
                                "column `{name}` in '{key}' of table `{table_name}` has type {other}; IoTDB tags and attributes are STRING, CAST it to STRING"
                            ))),
                        }
                    })
                    .collect()
            };
            let tags = string_columns("tag-columns", column_list(o.string("tag-columns")))?;
            let attributes = string_columns("attribute-columns", column_list(o.string("attribute-columns")))?;
            let mut reserved = tags.clone();
            reserved.extend(&attributes);
            (Model::Table { database, table, tags, attributes }, reserved)
        } else {
            for key in ["database", "table", "tag-columns", "attribute-columns"] {
                if o.string(key).is_some() {
                    return Err(Error::user(format!(
                        "table `{table_name}`: '{key}' is for the table model ('sql-dialect' = 'table'); the tree model writes to the path in 'device'"
                    )));
                }
            }
            let template = o.required("device")?;
            let device = DeviceTemplate::parse(&template, |name| {
                let i = find_column(&schema, &table_name, name, "device")?;
                let dt = schema.field(i).data_type();
                if is_template_type(dt) {
                    Ok(i)
                } else {
                    Err(Error::user(format!(
                        "column `{name}` used in 'device' of table `{table_name}` has type {dt}; device templates take STRING or integer columns"
                    )))
                }
            })?;
            let reserved = device.columns().to_vec();
            (Model::Tree { device }, reserved)
        };
        if reserved.contains(&time_column) {
            return Err(Error::user(format!(
                "time column `{}` of table `{table_name}` cannot also be part of the device or a tag",
                schema.field(time_column).name()
            )));
        }
        reserved.push(time_column);
        let mut key_columns: Vec<usize> = match &model {
            Model::Tree { device } => device.columns().to_vec(),
            Model::Table { tags, .. } => tags.clone(),
        };
        key_columns.push(time_column);

        let mut renames: HashMap<usize, String> = HashMap::new();
        for pair in column_list(o.string("measurements")) {
            let Some((column, name)) = pair.split_once(':') else {
                return Err(Error::user(format!(
                    "option 'measurements' of table `{table_name}` has '{pair}'; expected 'column:measurement' pairs separated by commas"
                )));
            };
            let i = find_column(&schema, &table_name, column.trim(), "measurements")?;
            if reserved.contains(&i) {
                return Err(Error::user(format!(
                    "option 'measurements' of table `{table_name}` renames `{}`, which is the time, device, tag or attribute column, not a measurement",
                    column.trim()
                )));
            }
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::user(format!(
                    "option 'measurements' of table `{table_name}` gives `{}` an empty name",
                    column.trim()
                )));
            }
            renames.insert(i, name.to_string());
        }
        let table_model = matches!(model, Model::Table { .. });
        let mut measurements = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if reserved.contains(&i) {
                continue;
            }
            let Some(iotdb_type) = iotdb_type(field.data_type(), decimals, table_model) else {
                return Err(Error::user(format!(
                    "column `{}` of table `{table_name}` has type {}, which the iotdb sink cannot write; CAST it to STRING, BIGINT, DOUBLE or TIMESTAMP",
                    field.name(),
                    crate::sql::types::flink_type_name(field.data_type())
                )));
            };
            let raw = renames.get(&i).cloned().unwrap_or_else(|| field.name().clone());
            let name = if table_model { raw } else { quote_node(&raw) };
            if measurements.iter().any(|m: &Measurement| m.name == name) {
                return Err(Error::user(format!(
                    "table `{table_name}` writes two columns to measurement '{name}'; rename one with 'measurements'"
                )));
            }
            measurements.push(Measurement { column: i, name, iotdb_type });
        }
        if measurements.is_empty() {
            return Err(Error::user(format!(
                "table `{table_name}` has no measurement columns: every column is the time, device, tag or attribute column"
            )));
        }
        Ok(Config {
            table_name,
            schema,
            urls,
            user,
            password,
            model,
            time_column,
            precision,
            aligned: aligned.unwrap_or(false),
            measurements,
            key_columns,
            decimals,
            checkpoints_only,
            max_retries,
            delete_mode,
        })
    }
}

struct IotdbTable {
    config: Arc<Config>,
}

impl ConnectorTable for IotdbTable {
    fn sink(&self, input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        Ok(Some(Box::new(IotdbSink {
            config: self.config.clone(),
            client: None,
            url: 0,
            changelog: !input.is_insert_only(),
            buffer: Vec::new(),
        })))
    }
}

struct IotdbSink {
    config: Arc<Config>,
    client: Option<reqwest::Client>,
    /// Index into `config.urls` of the endpoint in use; moves on when one cannot be reached.
    url: usize,
    /// The input may update and delete: NULLs then have to clear old values.
    changelog: bool,
    buffer: Vec<ChangeBatch>,
}

/// One point to delete: the tree-model device path or the table-model tag values, and its time.
struct PointDelete {
    target: Vec<String>,
    time: i64,
}

impl IotdbSink {
    fn client(&mut self) -> Result<reqwest::Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        // reqwest is built without a bundled crypto provider; ring is ours. An error only means
        // another part of the process installed one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::internal(format!("iotdb sink: cannot build the HTTP client: {e}")))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// POSTs `body` to `path`, retrying transport errors and transient answers with backoff.
    /// `deleting`: a missing path or table means there was nothing to delete.
    async fn post(&mut self, path: &str, body: Vec<u8>, what: &str, deleting: bool) -> Result<()> {
        let client = self.client()?;
        let attempts = self.config.max_retries + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let backoff =
                    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5));
                tracing::warn!(table = %self.config.table_name, "iotdb sink: {what} failed ({last}); retry {attempt} of {} in {backoff:?}", self.config.max_retries);
                tokio::time::sleep(backoff).await;
            }
            let base = &self.config.urls[self.url % self.config.urls.len()];
            let sent = client
                .post(format!("{base}{path}"))
                .basic_auth(&self.config.user, Some(&self.config.password))
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = format!("cannot reach {base}: {}", error_chain(&e));
                    self.url += 1;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let bytes = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = format!("connection to {base} broke while reading the answer: {}", error_chain(&e));
                    continue;
                }
            };
            match outcome(status, &bytes) {
                Outcome::Success => return Ok(()),
                Outcome::Transient(detail) => last = format!("{base} answered {detail}"),
                Outcome::Failed(_, _) if deleting && is_missing_target(&bytes) => return Ok(()),
                Outcome::Failed(class, detail) => return Err(failure(class, what, &detail)),
            }
        }
        Err(Error::external(format!(
            "iotdb sink (table `{}`): {what} failed after {attempts} attempts: {last}",
            self.config.table_name
        )))
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.buffer);
        let rows = concat_batches(&self.config.schema, batches.iter().map(|b| b.rows()))?;
        let kinds: Vec<&dyn Array> = batches.iter().map(|b| b.kinds() as &dyn Array).collect();
        let kinds = concat(&kinds)?;
        let kinds = kinds
            .as_any()
            .downcast_ref::<Int8Array>()
            .ok_or_else(|| Error::internal("row kinds are not Int8"))?
            .clone();
        let changes = ChangeBatch::new(rows, kinds)?;
        let compacted = compact_by_key(&changes, &self.config.key_columns, None)?;

        let mut deletes = Vec::new();
        if self.config.delete_mode == DeleteMode::Delete {
            for row in 0..compacted.deletes.num_rows() {
                deletes.push(self.point_of(&compacted.deletes, row)?);
            }
        }
        let upserts = &compacted.upserts;
        let config = self.config.clone();
        if self.changelog {
            // IoTDB keeps the old value where a write carries NULL: clear such points first.
            for row in 0..upserts.num_rows() {
                if config.measurements.iter().any(|m| upserts.column(m.column).is_null(row)) {
                    deletes.push(self.point_of(upserts, row)?);
                }
            }
        }
        self.send_deletes(deletes).await?;
        match &config.model {
            Model::Tree { device } => self.write_tree(device, upserts).await,
            Model::Table { database, table, tags, attributes } => {
                self.write_table(database, table, tags, attributes, upserts).await
            }
        }
    }

    fn time(&self, batch: &RecordBatch, row: usize) -> Result<i64> {
        time_of(batch.column(self.config.time_column).as_ref(), row, self.config.precision).map_err(|why| {
            Error::user(format!(
                "iotdb sink: the time column `{}` {why} in the row ({})",
                self.config.schema.field(self.config.time_column).name(),
                describe_row(batch, row)
            ))
        })
    }

    fn point_of(&self, batch: &RecordBatch, row: usize) -> Result<PointDelete> {
        let time = self.time(batch, row)?;
        let target = match &self.config.model {
            Model::Tree { device } => vec![device.filler(batch)?.path(row)?],
            Model::Table { tags, .. } => tags.iter().map(|t| tag_value(batch, *t, row)).collect::<Result<Vec<_>>>()?,
        };
        Ok(PointDelete { target, time })
    }

    async fn send_deletes(&mut self, deletes: Vec<PointDelete>) -> Result<()> {
        if deletes.is_empty() {
            return Ok(());
        }
        let config = self.config.clone();
        match &config.model {
            Model::Tree { .. } => {
                // IoTDB's DELETE takes several paths but only AND-ed time conditions, so one
                // statement per distinct timestamp covers all devices deleted at that time.
                let mut by_time: HashMap<i64, Vec<String>> = HashMap::new();
                let mut order = Vec::new();
                for d in deletes {
                    let paths = by_time.entry(d.time).or_insert_with(|| {
                        order.push(d.time);
                        Vec::new()
                    });
                    if let Some(path) = d.target.into_iter().next() {
                        if !paths.contains(&path) {
                            paths.push(path);
                        }
                    }
                }
                for time in order {
                    for chunk in by_time[&time].chunks(500) {
                        let targets: Vec<String> = chunk.iter().map(|p| format!("{p}.*")).collect();
                        let sql = format!("DELETE FROM {} WHERE time = {time}", targets.join(", "));
                        self.run_delete("/rest/v2/nonQuery", &sql, None).await?;
                    }
                }
            }
            Model::Table { database, table, tags, .. } => {
                for d in deletes {
                    let mut sql = format!("DELETE FROM {} WHERE time = {}", quote_identifier(table), d.time);
                    for (tag, value) in tags.iter().zip(&d.target) {
                        let name = config.schema.field(*tag).name();
                        sql.push_str(&format!(" AND {} = '{}'", quote_identifier(name), value.replace('\'', "''")));
                    }
                    self.run_delete("/rest/table/v1/nonQuery", &sql, Some(database)).await?;
                }
            }
        }
        Ok(())
    }

    async fn run_delete(&mut self, path: &str, sql: &str, database: Option<&str>) -> Result<()> {
        let mut body = Vec::with_capacity(sql.len() + 32);
        body.extend_from_slice(b"{\"sql\":");
        json_string(&mut body, sql);
        if let Some(db) = database {
            body.extend_from_slice(b",\"database\":");
            json_string(&mut body, db);
        }
        body.push(b'}');
        self.post(path, body, &format!("`{sql}`"), true).await
    }

    fn writers<'a>(&self, batch: &'a RecordBatch) -> Result<Vec<ValueWriter<'a>>> {
        self.config
            .measurements
            .iter()
            .map(|m| ValueWriter::new(batch.column(m.column), self.config.decimals, self.config.precision))
            .collect()
    }

    fn value_error(&self, batch: &RecordBatch, m: &Measurement, row: usize, why: String) -> Error {
        Error::user(format!(
            "iotdb sink: column `{}` cannot be written in the row ({}): {why}",
            self.config.schema.field(m.column).name(),
            describe_row(batch, row)
        ))
    }

    async fn write_tree(&mut self, device: &DeviceTemplate, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        if let Some(path) = device.fixed() {
            groups.push((path, (0..batch.num_rows()).collect()));
        } else {
            let filler = device.filler(batch)?;
            let mut index: HashMap<String, usize> = HashMap::new();
            for row in 0..batch.num_rows() {
                let path = filler.path(row)?;
                match index.get(&path) {
                    Some(g) => groups[*g].1.push(row),
                    None => {
                        index.insert(path.clone(), groups.len());
                        groups.push((path, vec![row]));
                    }
                }
            }
        }
        let config = self.config.clone();
        let writers = self.writers(batch)?;
        for (path, rows) in groups {
            let mut body = Vec::with_capacity(64 + rows.len() * (12 + 10 * config.measurements.len()));
            body.extend_from_slice(b"{\"device\":");
            json_string(&mut body, &path);
            body.extend_from_slice(if config.aligned { b",\"is_aligned\":true" } else { b",\"is_aligned\":false" });
            body.extend_from_slice(b",\"timestamps\":[");
            for (n, row) in rows.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                let t = self.time(batch, *row)?;
                body.extend_from_slice(t.to_string().as_bytes());
            }
            body.extend_from_slice(b"],\"measurements\":[");
            for (n, m) in config.measurements.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                json_string(&mut body, &m.name);
            }
            body.extend_from_slice(b"],\"data_types\":[");
            for (n, m) in config.measurements.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                json_string(&mut body, m.iotdb_type);
            }
            body.extend_from_slice(b"],\"values\":[");
            for (n, (m, w)) in config.measurements.iter().zip(&writers).enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                body.push(b'[');
                for (k, row) in rows.iter().enumerate() {
                    if k > 0 {
                        body.push(b',');
                    }
                    w.write(&mut body, *row).map_err(|why| self.value_error(batch, m, *row, why))?;
                }
                body.push(b']');
            }
            body.extend_from_slice(b"]}");
            let what = format!("insertTablet of {} rows into {path}", rows.len());
            self.post("/rest/v2/insertTablet", body, &what, false).await?;
        }
        Ok(())
    }

    async fn write_table(
        &mut self,
        database: &str,
        table: &str,
        tags: &[usize],
        attributes: &[usize],
        batch: &RecordBatch,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let config = self.config.clone();
        let schema = &config.schema;
        let mut body = Vec::with_capacity(128 + batch.num_rows() * 12 * (1 + config.measurements.len()));
        body.extend_from_slice(b"{\"database\":");
        json_string(&mut body, database);
        body.extend_from_slice(b",\"table\":");
        json_string(&mut body, table);
        let mut names: Vec<&str> = Vec::new();
        let mut categories: Vec<&str> = Vec::new();
        let mut types: Vec<&str> = Vec::new();
        for t in tags {
            names.push(schema.field(*t).name());
            categories.push("TAG");
            types.push("STRING");
        }
        for a in attributes {
            names.push(schema.field(*a).name());
            categories.push("ATTRIBUTE");
            types.push("STRING");
        }
        for m in &config.measurements {
            names.push(&m.name);
            categories.push("FIELD");
            types.push(m.iotdb_type);
        }
        for (key, list) in [("column_names", &names), ("column_categories", &categories), ("data_types", &types)] {
            body.extend_from_slice(format!(",\"{key}\":[").as_bytes());
            for (n, item) in list.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                json_string(&mut body, item);
            }
            body.push(b']');
        }
        body.extend_from_slice(b",\"timestamps\":[");
        for row in 0..batch.num_rows() {
            if row > 0 {
                body.push(b',');
            }
            let t = self.time(batch, row)?;
            body.extend_from_slice(t.to_string().as_bytes());
        }
        let mut leading: Vec<ValueWriter> = Vec::new();
        for c in tags.iter().chain(attributes) {
            leading.push(ValueWriter::new(batch.column(*c), config.decimals, config.precision)?);
        }
        let writers = self.writers(batch)?;
        body.extend_from_slice(b"],\"values\":[");
        for row in 0..batch.num_rows() {
            if row > 0 {
                body.push(b',');
            }
            for t in tags {
                tag_value(batch, *t, row)?;
            }
            body.push(b'[');
            for (n, w) in leading.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                w.write(&mut body, row).map_err(Error::user)?;
            }
            for (n, (m, w)) in config.measurements.iter().zip(&writers).enumerate() {
                if n > 0 || !leading.is_empty() {
                    body.push(b',');
                }
                w.write(&mut body, row).map_err(|why| self.value_error(batch, m, row, why))?;
            }
            body.push(b']');
        }
        body.extend_from_slice(b"]}");
        let what = format!("table-model insertTablet of {} rows into {database}.{table}", batch.num_rows());
        self.post("/rest/table/v1/insertTablet", body, &what, false).await
    }
}

/// A tag value of `row`; NULL tags are refused so that every point has a deletable key.
fn tag_value(batch: &RecordBatch, column: usize, row: usize) -> Result<String> {
    let array = batch.column(column);
    if array.is_null(row) {
        return Err(Error::user(format!(
            "iotdb sink: tag column `{}` is NULL in the row ({}); filter such rows out or use COALESCE",
            batch.schema().field(column).name(),
            describe_row(batch, row)
        )));
    }
    let formatter = datafusion::arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())?;
    Ok(formatter.value(row).to_string())
}

/// A table-model identifier in IoTDB's SQL: double quotes, inner quotes doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An error and its causes, which reqwest keeps apart (`connection refused` is a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl Sink for IotdbSink {
    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        self.buffer.push(batch);
        // The sink is free whenever the pipeline hands it a batch: write it now rather than wait
        // for company. Under load the source fills its batches meanwhile, so requests grow.
        if !self.config.checkpoints_only {
            self.flush().await?;
        }
        Ok(())
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        self.flush().await?;
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{ColumnSpec, TableOption};

    fn spec(columns: &[(&str, DataType)], opts: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "sink".into(),
            columns: columns
                .iter()
                .map(|(n, t)| ColumnSpec {
                    name: n.to_string(),
                    data_type: t.clone(),
                    nullable: true,
                    type_text: String::new(),
                    metadata: None,
                    comment: None,
                })
                .collect(),
            primary_key: vec![],
            options: std::iter::once(("connector", "iotdb"))
                .chain(opts.iter().copied())
                .map(|(k, v)| TableOption { key: k.into(), value: v.into(), written: v.into() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        }
    }

    fn open(columns: &[(&str, DataType)], opts: &[(&str, &str)]) -> Result<Config> {
        let spec = spec(columns, opts);
        let mut o = ConnectorOptions::new(&spec)?;
        let config = Config::parse(&spec, &mut o)?;
        o.finish()?;
        Ok(config)
    }

    fn cols() -> Vec<(&'static str, DataType)> {
        vec![
            ("dev", DataType::Utf8),
            ("ts", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None)),
            ("temp", DataType::Float64),
            ("bad-name", DataType::Int32),
        ]
    }

    #[test]
    fn options_build_the_mapping() {
        let c = open(
            &cols(),
            &[
                ("nodeUrls", "iotdb:18080"),
                ("device", "root.sg.{dev}"),
                ("time-column", "ts"),
                ("measurements", "temp:temperature"),
            ],
        )
        .unwrap();
        assert_eq!(c.urls, ["http://iotdb:18080"]);
        assert_eq!(c.key_columns, [0, 1]);
        let names: Vec<&str> = c.measurements.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["temperature", "`bad-name`"]);
        assert_eq!(c.measurements[1].iotdb_type, "INT32");
    }

    #[test]
    fn invalid_options_are_clear() {
        let base = [("url", "http://h:18080"), ("device", "root.sg.{dev}"), ("time-column", "ts")];
        let err = |extra: &[(&str, &str)]| {
            let mut opts: Vec<(&str, &str)> = base.to_vec();
            for (k, v) in extra {
                opts.retain(|(key, _)| key != k);
                opts.push((k, v));
            }
            open(&cols(), &opts).unwrap_err().to_string()
        };
        assert!(err(&[("time-column", "nope")]).contains("`nope`"));
        assert!(err(&[("time-column", "dev")]).contains("has type Utf8"));
        assert!(err(&[("password", "a:b")]).contains("containing ':'"));
        assert!(!err(&[("password", "a:b")]).contains("a:b"));
        assert!(err(&[("url", "http://u:p@h:1")]).contains("without credentials"));
        assert!(err(&[("device", "sg.{dev}")]).contains("must start with 'root.'"));
        assert!(err(&[("sql-dialect", "table")]).contains("'device' is for the tree model"));
        assert!(err(&[("measurements", "ts:x")]).contains("not a measurement"));
        assert!(err(&[("sink.delete-mode", "drop")]).contains("one of delete, ignore"));
        assert!(err(&[("sink.buffer-flush.max-row", "5")]).contains("did you mean 'sink.buffer-flush.max-rows'"));
        let binary = open(
            &[("ts", DataType::Int64), ("b", DataType::Binary)],
            &[("url", "h:1"), ("device", "root.a.b"), ("time-column", "ts")],
        );
        assert!(binary.unwrap_err().to_string().contains("BYTES"));
    }

    #[test]
    fn table_model_options() {
        let c = open(
            &cols(),
            &[
                ("url", "http://h:18080"),
                ("sql-dialect", "table"),
                ("database", "plant"),
                ("table", "readings"),
                ("tag-columns", "dev"),
                ("time-column", "ts"),
            ],
        )
        .unwrap();
        assert!(matches!(&c.model, Model::Table { tags, .. } if tags == &[0]));
        assert_eq!(c.measurements[0].name, "temp");
        assert_eq!(c.measurements[1].name, "bad-name");
    }
}
