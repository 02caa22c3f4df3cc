//! `doris`: writes a changelog into an Apache Doris (or VeloDB) table through HTTP Stream Load,
//! with the Doris Flink connector's options and semantics.
//!
//! Protocol: `PUT /api/{db}/{table}/_stream_load` with Basic auth and `Expect: 100-continue`,
//! to an FE (which answers `307` to a BE; we follow it ourselves, re-sending the body with our
//! credentials) or straight to `benodes`. Bodies are JSON lines ([`encode`], the default) or CSV
//! ([`csv`], `format = csv`, or CSV properties without a `format`, as in the Flink connector whose
//! default is CSV), encoded straight from Arrow, with `columns` naming our columns, ending with `__DORIS_DELETE_SIGN__` when the
//! input has deletes (as the Flink connector does; Doris ignores `hidden_columns` next to
//! `columns`). On a keyed table each batch is first compacted by key, so `-U` only becomes a
//! delete when the key changed; with a sequence column (`sink.version-column`, sent as the
//! `function_column.sequence_col` header) the compaction keeps the row Doris would keep. Every
//! reply is HTTP 200 JSON ([`protocol`]).
//!
//! Exactly-once (default, `sink.enable-2pc`): one load per checkpoint labelled
//! `{prefix}_{db}_{table}_{checkpoint}` with `two_phase_commit: true`, precommitted in `prepare`
//! and committed (`PUT /api/{db}/_stream_load_2pc`, `txn_operation: commit`) in `commit`; a
//! commit that finds the transaction already visible counts as done. `recover` commits what a
//! stored checkpoint prepared, then aborts precommitted loads of later checkpoints (probing their
//! labels like the Flink connector, with empty loads). A label that is already FINISHED is never
//! loaded again. At-least-once (`sink.enable-2pc = false` or `sink.enable.batch-mode = true`):
//! plain loads with fresh labels, at checkpoints and, in batch mode, when a buffer limit or the
//! flush interval is reached; failures retry with backoff and a new label; `-235` (too many
//! versions) slows flushing down instead of failing. Idempotent on UNIQUE KEY tables.
//!
//! Limits: plain HTTP only (no TLS), uncompressed bodies; CSV has no ARRAY/MAP/ROW; the rows of one checkpoint (or one
//! batch-mode buffer) are held in memory, encoded, until they are loaded; the interval flush of
//! batch mode happens when rows arrive, not on an idle stream (checkpoints still flush);
//! `auto-redirect = false` needs `benodes` (the BE list is not fetched from the FE).

pub mod csv;
pub mod encode;
mod http;
mod protocol;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::json;

use csv::{CsvEncoder, CsvFormat};
use encode::JsonLinesEncoder;
use http::{HttpError, Request, Target, Timeouts};
use protocol::{ExistingJob, LoadFailure, LoadReply, LoadResponse, LoadStatus, TwoPcOutcome, TxnOperation};

use super::{Connector, ConnectorOptions, ConnectorTable, PreparedCommit, Sink};
use crate::changelog::{check_versions, compact_by_key, ChangeBatch, ChangelogMode, RowKind, TableId, Ties, Versioned};
use crate::error::{Error, Result};
use crate::sql::TableSpec;

pub struct Doris;

impl Connector for Doris {
    fn name(&self) -> &'static str {
        "doris"
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        Ok(Box::new(DorisTable { config: Arc::new(DorisConfig::parse(spec, options)?) }))
    }
}

const DEFAULT_LABEL_PREFIX: &str = "cdc_sql";
/// Stream Load properties the sink manages; a `sink.properties.*` copy would contradict it.
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("label", "labels are generated from 'sink.label-prefix'"),
    ("two_phase_commit", "use 'sink.enable-2pc'"),
    (
        "hidden_columns",
        "the delete sign is named in 'columns' when the input has deletes, and Doris ignores hidden_columns next to columns; use 'sink.enable-delete'",
    ),
];

struct DorisConfig {
    table_name: String,
    frontends: Vec<(String, u16)>,
    backends: Vec<(String, u16)>,
    database: String,
    table: String,
    username: String,
    password: String,
    label_prefix: String,
    exactly_once: bool,
    enable_delete: bool,
    ignore_update_before: bool,
    /// Stream Load headers from `sink.properties.*`.
    properties: Vec<(String, String)>,
    format: Format,
    batch_mode: bool,
    flush_max_rows: usize,
    flush_max_bytes: usize,
    flush_interval: Duration,
    max_retries: u32,
    /// `doris.request.connect.timeout`: the most connecting to an FE or BE may take.
    connect_timeout: Duration,
    schema: SchemaRef,
    key_columns: Vec<usize>,
    /// The sequence column (`sink.version-column` or the Stream Load property
    /// `function_column.sequence_col`): Doris keeps the row with the greatest value of a key, and
    /// the sink's compaction must keep that row too.
    version_column: Option<usize>,
}

fn parse_nodes(options: &ConnectorOptions, key: &str, value: &str) -> Result<Vec<(String, u16)>> {
    let nodes: Vec<(String, u16)> = value
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            let n = n.trim();
            let n = n.strip_prefix("http://").unwrap_or(n);
            http::parse_host_port(n, 8030)
                .map_err(|e| options.invalid(key, value, &format!("host:port[,host:port…] ({e})")))
        })
        .collect::<Result<_>>()?;
    if nodes.is_empty() {
        return Err(options.invalid(key, value, "host:port[,host:port…]"));
    }
    Ok(nodes)
}

impl DorisConfig {
    fn parse(spec: &TableSpec, o: &mut ConnectorOptions) -> Result<Self> {
        let fenodes = o.string("fenodes");
        let benodes = o.string("benodes");
        let frontends = match &fenodes {
            Some(v) => parse_nodes(o, "fenodes", v)?,
            None => Vec::new(),
        };
        let backends = match &benodes {
            Some(v) => parse_nodes(o, "benodes", v)?,
            None => Vec::new(),
        };
        let auto_redirect = o.bool("auto-redirect")?.unwrap_or(true);
        // As in the Flink connector: loads go through the FE unless `auto-redirect` is off, then
        // to the BEs. `fenodes` stays accepted without use then, since Flink requires it.
        if auto_redirect && frontends.is_empty() {
            return Err(Error::user(format!(
                "table `{}` (connector 'doris') needs 'fenodes' (the FE HTTP address, e.g. 'doris-fe:8030'), or 'auto-redirect' = 'false' with 'benodes'",
                spec.name
            )));
        }
        if auto_redirect && !backends.is_empty() {
            return Err(Error::user(format!(
                "table `{}`: 'benodes' is only used with 'auto-redirect' = 'false' (loads otherwise go through the FE, which picks the BE); add it or remove 'benodes'",
                spec.name
            )));
        }
        if !auto_redirect && backends.is_empty() {
            return Err(Error::user(format!(
                "table `{}`: 'auto-redirect' = 'false' sends loads straight to BEs, which needs 'benodes' (e.g. 'doris-be:8040'); fetching the BE list from the FE is not supported",
                spec.name
            )));
        }
        let identifier = o.required("table.identifier")?;
        let (database, table) = match identifier.split_once('.') {
            Some((d, t)) if !d.trim().is_empty() && !t.trim().is_empty() && !t.contains('.') => {
                (d.trim().to_string(), t.trim().to_string())
            }
            _ => return Err(o.invalid("table.identifier", &identifier, "'database.table'")),
        };
        let username = o.required("username")?;
        let password = o.string("password").unwrap_or_default();
        let label_prefix = o.string("sink.label-prefix").unwrap_or_else(|| DEFAULT_LABEL_PREFIX.to_string());
        // Room for `_{db}_{table}_{20-digit checkpoint}` within Doris' 128 characters.
        let longest = protocol::checkpoint_label(&label_prefix, &database, &table, u64::MAX);
        if label_prefix.is_empty() || !protocol::is_valid_label(&longest) {
            return Err(o.invalid(
                "sink.label-prefix",
                &label_prefix,
                "letters, digits, '-', '_' or ':', short enough that labels `{prefix}_{db}_{table}_{checkpoint}` stay within 128 characters",
            ));
        }
        let enable_2pc = o.bool("sink.enable-2pc")?;
        // The Flink connector's `sink.write-mode` = `stream_load_batch` is its batch mode.
        let write_mode = o.refused_unless(
            "sink.write-mode",
            &["stream_load", "stream_load_batch"],
            "the sink loads with Stream Load ('stream_load', or 'stream_load_batch' for batch mode); COPY INTO is not \
             offered",
        )?;
        let batch_mode = o.bool("sink.enable.batch-mode")?.unwrap_or(false)
            || write_mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("stream_load_batch"));
        if batch_mode && enable_2pc == Some(true) {
            return Err(Error::user(format!(
                "table `{}`: 'sink.enable.batch-mode' = 'true' is at-least-once and cannot use two-phase commit; remove 'sink.enable-2pc' = 'true' or batch mode",
                spec.name
            )));
        }
        let exactly_once = enable_2pc.unwrap_or(true) && !batch_mode;
        let enable_delete = o.bool("sink.enable-delete")?.unwrap_or(true);
        let ignore_update_before = o.bool("sink.ignore.update-before")?.unwrap_or(true);
        let max_rows = o.parse::<usize>("sink.buffer-flush.max-rows", "a positive whole number")?;
        let max_bytes = o.memory_size("sink.buffer-flush.max-bytes")?.map(|b| usize::try_from(b).unwrap_or(usize::MAX));
        let interval = o.duration("sink.buffer-flush.interval")?;
        if !batch_mode && (max_rows.is_some() || max_bytes.is_some() || interval.is_some()) {
            return Err(Error::user(format!(
                "table `{}`: the 'sink.buffer-flush.*' options apply to batch mode only; add 'sink.enable.batch-mode' = 'true' or remove them (without batch mode the sink loads once per checkpoint)",
                spec.name
            )));
        }
        if max_rows == Some(0) {
            return Err(o.invalid("sink.buffer-flush.max-rows", "0", "a positive whole number"));
        }
        if max_bytes == Some(0) {
            return Err(o.invalid("sink.buffer-flush.max-bytes", "0", "a positive whole number of bytes"));
        }
        let max_retries = o.parse::<u32>("sink.max-retries", "a whole number")?.unwrap_or(3);
        let connect_timeout = o.duration("doris.request.connect.timeout")?.unwrap_or(Duration::from_secs(10));
        if connect_timeout.is_zero() {
            return Err(o.invalid("doris.request.connect.timeout", "0", "a positive duration such as '30s'"));
        }
        o.refused_unless(
            "doris.enable.tls",
            &["false"],
            "TLS is not supported yet (the doris sink speaks plain HTTP); reach Doris over a trusted network or a \
             TLS-terminating proxy",
        )?;
        o.refused_unless(
            "sink.ignore.commit-error",
            &["false"],
            "a commit that fails would lose the checkpoint's rows without a word; such a failure stops the job \
             instead (if the transaction cannot be recovered, start afresh with --fresh)",
        )?;
        // Flink options that change nothing here.
        for key in
            ["doris.tls.ca-certificate-path", "doris.tls.skip-hostname-verification", "doris.tls.excluded-protocols"]
        {
            o.no_effect(
                key,
                "TLS is not offered ('doris.enable.tls' = 'true' is refused), so there is nothing to configure",
            );
        }
        o.no_effect(
            "jdbc-url",
            "the Flink connector uses it for reads, lookups and schema changes; the sink here loads over HTTP only",
        );
        o.no_effect("doris.request.retries", "the sink retries loads and 2PC requests as 'sink.max-retries' says");
        o.no_effect(
            "doris.request.read.timeout",
            "a load may take as long as Doris needs to apply it (up to 10 minutes), other requests up to 60 s; those \
             limits are not configurable",
        );
        for key in [
            "doris.filter.query",
            "doris.read.field",
            "doris.request.tablet.size",
            "doris.request.query.timeout",
            "doris.deserialize.arrow.async",
            "doris.deserialize.queue.size",
            "doris.batch.size",
            "doris.exec.mem.limit",
            "doris.thrift.max.message.size",
            "source.use-old-api",
            "source.use-flight-sql",
            "source.flight-sql-port",
            "source.scan.mode",
            "source.scan.timestamp",
            "source.binlog.increment-type",
            "source.binlog.poll-interval",
            "source.binlog.offset-table",
            "source.binlog.consumer-id",
        ] {
            o.no_effect(
                key,
                "the doris connector is a sink here: reading a Doris table is refused, so read options have nothing to \
                 configure",
            );
        }
        for key in [
            "lookup.cache.max-rows",
            "lookup.cache.ttl",
            "lookup.max-retries",
            "lookup.jdbc.async",
            "lookup.jdbc.read.batch.size",
            "lookup.jdbc.read.batch.queue-size",
            "lookup.jdbc.read.thread-size",
        ] {
            o.no_effect(key, super::lookup::NOT_OFFERED);
        }
        o.no_effect("sink.check-interval", "a failed load is seen in its reply; no checker thread is needed");
        for key in ["sink.buffer-size", "sink.buffer-count"] {
            o.no_effect(key, "each load is sent from the encoded rows at once; there are no fixed buffers to size");
        }
        o.no_effect(
            "sink.flush.queue-size",
            "how many loads wait to be sent is the sink's own matter; it changes nothing in what is written",
        );
        o.no_effect(
            "sink.use-cache",
            "after a failure the job resumes from its last checkpoint and the source reads the rows again, so no copy \
             is kept in memory",
        );
        o.no_effect("sink.parallelism", "each sink is written by one writer, in changelog order");
        o.no_effect("sink.http-utf8-charset", "header values (Stream Load properties) are always sent as UTF-8");
        let version_option = o.string("sink.version-column");
        let mut properties = Vec::new();
        for (key, value) in o.prefixed("sink.properties.") {
            let lower = key.to_ascii_lowercase();
            if let Some((_, why)) = RESERVED_PROPERTIES.iter().find(|(k, _)| *k == lower) {
                return Err(Error::user(format!(
                    "table `{}`: 'sink.properties.{key}' is managed by the sink ({why})",
                    spec.name
                )));
            }
            if value.contains(['\r', '\n']) {
                return Err(o.invalid(&format!("sink.properties.{key}"), &value, "a value on one line"));
            }
            properties.push((lower, value));
        }
        let format = parse_format(o, &spec.name, &properties)?;
        let schema = spec.persisted_schema();
        let key_columns = spec
            .primary_key
            .iter()
            .map(|k| {
                schema.index_of(k).map_err(|_| {
                    Error::user(format!("primary key column `{k}` of table `{}` is not a written column", spec.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let version_column = sequence_column(o, spec, &schema, &key_columns, version_option, &mut properties)?;
        // Checked now so a job with an unwritable column fails before it starts.
        Encoder::new(&format, &schema, &key_columns, false)?;
        Ok(DorisConfig {
            table_name: spec.name.clone(),
            frontends,
            backends,
            database,
            table,
            username,
            password,
            label_prefix,
            exactly_once,
            enable_delete,
            ignore_update_before,
            properties,
            format,
            batch_mode,
            flush_max_rows: max_rows.unwrap_or(500_000),
            flush_max_bytes: max_bytes.unwrap_or(100 * 1024 * 1024),
            flush_interval: interval.unwrap_or(Duration::from_secs(10)),
            max_retries,
            connect_timeout,
            schema,
            key_columns,
            version_column,
        })
    }

    fn qualified(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }
}

/// The sequence column named by `sink.version-column` (sent as the Stream Load header
/// `function_column.sequence_col`) or by that header as a `sink.properties.*` option: a written,
/// non-key column of a type Doris accepts for sequences (integers, DATE, DATETIME).
fn sequence_column(
    o: &ConnectorOptions,
    spec: &TableSpec,
    schema: &SchemaRef,
    key_columns: &[usize],
    version_option: Option<String>,
    properties: &mut Vec<(String, String)>,
) -> Result<Option<usize>> {
    const HEADER: &str = "function_column.sequence_col";
    let header = properties.iter().find(|(k, _)| k == HEADER).map(|(_, v)| v.clone());
    let (key, column) = match (version_option, header) {
        (None, None) => return Ok(None),
        (Some(option), Some(header)) if option != header => {
            return Err(Error::user(format!(
                "table `{}`: 'sink.version-column' = '{option}' and 'sink.properties.{HEADER}' = '{header}' name different sequence columns; keep one of them",
                spec.name
            )))
        }
        (Some(option), None) => {
            properties.push((HEADER.to_string(), option.clone()));
            ("sink.version-column".to_string(), option)
        }
        (_, Some(header)) => (format!("sink.properties.{HEADER}"), header),
    };
    if key_columns.is_empty() {
        return Err(Error::user(format!(
            "table `{}`: '{key}' orders the rows of a key by a Doris sequence column, which only UNIQUE KEY tables have, but the table has no PRIMARY KEY; declare PRIMARY KEY (…) NOT ENFORCED on `{}` (the Doris table's unique key) or remove '{key}'",
            spec.name, spec.name
        )));
    }
    let index = schema.index_of(&column).map_err(|_| o.invalid(&key, &column, "one of the table's written columns"))?;
    if key_columns.contains(&index) {
        return Err(o.invalid(&key, &column, "a column that is not part of the PRIMARY KEY"));
    }
    let data_type = schema.field(index).data_type();
    if !(data_type.is_integer() || matches!(data_type, DataType::Date32 | DataType::Timestamp(..))) {
        return Err(o.invalid(
            &key,
            &column,
            "a column of an integer, DATE or TIMESTAMP type (the types Doris accepts for a sequence column)",
        ));
    }
    Ok(Some(index))
}

/// The body format of the loads.
enum Format {
    Json,
    Csv(CsvFormat),
}

/// Stream Load properties that only mean something for CSV, or for JSON, bodies.
const CSV_PROPERTIES: &[&str] =
    &["column_separator", "line_delimiter", "enclose", "escape", "trim_double_quotes", "skip_lines"];
const JSON_PROPERTIES: &[&str] =
    &["read_json_by_line", "strip_outer_array", "jsonpaths", "json_root", "fuzzy_parse", "num_as_string"];

/// JSON lines unless `format` says `csv`, or CSV properties are given without a `format` (the
/// Flink connector's default format is CSV, so such a job file means CSV).
fn parse_format(o: &ConnectorOptions, table: &str, properties: &[(String, String)]) -> Result<Format> {
    let get = |key: &str| properties.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let invalid = |key: &str, expected: &str| {
        o.invalid(&format!("sink.properties.{key}"), get(key).unwrap_or_default(), expected)
    };
    let given = |keys: &[&'static str]| keys.iter().copied().find(|k| get(k).is_some());
    if get("compress_type").is_some_and(|v| !v.eq_ignore_ascii_case("plain")) {
        return Err(invalid("compress_type", "'plain' (the sink sends uncompressed bodies)"));
    }
    let csv = match get("format") {
        None => given(CSV_PROPERTIES).is_some(),
        Some(f) if f.eq_ignore_ascii_case("json") => false,
        Some(f) if f.eq_ignore_ascii_case("csv") => true,
        Some(_) => return Err(invalid("format", "'json' or 'csv'")),
    };
    let misplaced = |key: &str, applies: &str, other: &str| {
        Error::user(format!(
            "table `{table}`: 'sink.properties.{key}' applies to {applies} loads, but the sink writes {other}; remove it or set 'sink.properties.format' = '{}'",
            applies.to_ascii_lowercase()
        ))
    };
    if !csv {
        if let Some(key) = given(CSV_PROPERTIES) {
            return Err(misplaced(key, "CSV", "JSON ('sink.properties.format' = 'json')"));
        }
        if get("read_json_by_line").is_some_and(|v| !v.eq_ignore_ascii_case("true")) {
            return Err(invalid("read_json_by_line", "'true' (the sink writes JSON lines)"));
        }
        if get("strip_outer_array").is_some_and(|v| !v.eq_ignore_ascii_case("false")) {
            return Err(invalid("strip_outer_array", "'false' (the sink writes JSON lines)"));
        }
        return Ok(Format::Json);
    }
    if let Some(key) = given(JSON_PROPERTIES) {
        return Err(misplaced(key, "JSON", "CSV"));
    }
    if get("trim_double_quotes").is_some_and(|v| !v.eq_ignore_ascii_case("false")) {
        return Err(invalid(
            "trim_double_quotes",
            "'false' (Doris would strip quotes that belong to the data; 'sink.properties.enclose' protects values instead)",
        ));
    }
    if get("skip_lines").is_some_and(|v| v.trim() != "0") {
        return Err(invalid("skip_lines", "'0' (the sink writes no header lines)"));
    }
    CsvFormat::from_properties(get("column_separator"), get("line_delimiter"), get("enclose"), get("escape"))
        .map(Format::Csv)
        .map_err(|bad| invalid(bad.key, &bad.expected))
}

/// The encoder of the configured format.
enum Encoder {
    Json(JsonLinesEncoder),
    Csv(Box<CsvEncoder>),
}

impl Encoder {
    fn new(format: &Format, schema: &SchemaRef, key_columns: &[usize], with_delete_sign: bool) -> Result<Self> {
        Ok(match format {
            Format::Json => Encoder::Json(JsonLinesEncoder::new(schema, with_delete_sign)?),
            Format::Csv(csv) => {
                Encoder::Csv(Box::new(CsvEncoder::new(schema, key_columns, with_delete_sign, csv.clone())?))
            }
        })
    }

    fn encode_all(&self, batch: &RecordBatch, delete: bool, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Encoder::Json(e) => e.encode_all(batch, delete, out),
            Encoder::Csv(e) => e.encode_all(batch, delete, out),
        }
    }

    fn encode_rows(
        &self,
        batch: &RecordBatch,
        rows: impl Iterator<Item = (usize, bool)>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match self {
            Encoder::Json(e) => e.encode_rows(batch, rows, out),
            Encoder::Csv(e) => e.encode_rows(batch, rows, out),
        }
    }
}

struct DorisTable {
    config: Arc<DorisConfig>,
}

impl ConnectorTable for DorisTable {
    /// Outside batch mode loads happen only in `prepare`, i.e. at checkpoints (the Flink
    /// connector, too, requires checkpointing for two-phase commit).
    fn sink_needs_checkpoints(&self) -> Option<String> {
        if self.config.batch_mode {
            return None;
        }
        let mode = if self.config.exactly_once {
            "In exactly-once mode ('sink.enable-2pc', on by default) each checkpoint's rows are one two-phase-commit load"
        } else {
            "With 'sink.enable-2pc' = 'false' and without batch mode each checkpoint's rows are one load"
        };
        Some(format!(
            "{mode}: without checkpoints nothing would reach Doris before the job ends, and every row would wait in memory until then. To load at-least-once by size and time instead, add 'sink.enable.batch-mode' = 'true'."
        ))
    }

    fn sink(&self, input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        let config = self.config.clone();
        // Only a stream that can delete needs the delete sign, which exists on UNIQUE KEY tables
        // only: insert-only streams can go to DUPLICATE KEY tables too.
        let with_delete_sign = config.enable_delete && !input.is_insert_only();
        let encoder = Encoder::new(&config.format, &config.schema, &config.key_columns, with_delete_sign)?;
        let loader = Loader::new(&config, with_delete_sign);
        Ok(Some(Box::new(DorisSink {
            config,
            loader,
            encoder,
            with_delete_sign,
            buffer: Vec::new(),
            buffered_rows: 0,
            last_flush: Instant::now(),
            flush_gap: Duration::ZERO,
            run_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default(),
            loads: 0,
        })))
    }
}

const LOAD_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    expect_continue: Duration::from_secs(3),
    total: Duration::from_secs(600),
};
const CONTROL_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    expect_continue: Duration::from_secs(3),
    total: Duration::from_secs(60),
};
const REACHABILITY_HINT: &str =
    "Check that Doris is up and that its FE and BE HTTP ports are reachable from here ('fenodes', 'benodes'); raise 'sink.max-retries' to wait longer";
/// Consecutive `-235` replies tolerated for one load before giving up.
const MAX_VERSION_BACKOFFS: u32 = 20;
/// Labels of later checkpoints probed on recovery, at most.
const MAX_PROBED_LABELS: u64 = 10_000;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Sends loads and 2PC operations to the nodes of one table, following FE redirects.
struct Loader {
    /// 'doris.request.connect.timeout'.
    connect_timeout: Duration,
    nodes: Vec<(String, u16)>,
    next_node: usize,
    database: String,
    table: String,
    authorization: String,
    load_headers: Vec<(String, String)>,
}

/// A request's outcome when no reply could be read.
struct Unreachable {
    error: HttpError,
    /// Whether the request may have reached a server that acted on it.
    maybe_applied: bool,
}

impl Loader {
    fn new(config: &DorisConfig, with_delete_sign: bool) -> Self {
        let nodes = if config.backends.is_empty() { config.frontends.clone() } else { config.backends.clone() };
        let mut load_headers = match config.format {
            Format::Json => {
                vec![("format".to_string(), "json".to_string()), ("read_json_by_line".to_string(), "true".to_string())]
            }
            Format::Csv(_) => vec![("format".to_string(), "csv".to_string())],
        };
        for (key, value) in config.properties.iter().filter(|(k, _)| k != "columns") {
            load_headers.retain(|(k, _)| k != key);
            load_headers.push((key.clone(), value.clone()));
        }
        load_headers.push(("columns".to_string(), columns_header(config, with_delete_sign)));
        Loader {
            connect_timeout: config.connect_timeout,
            nodes,
            next_node: 0,
            database: config.database.clone(),
            table: config.table.clone(),
            authorization: protocol::basic_auth(&config.username, &config.password),
            load_headers,
        }
    }

    /// `base` with the table's connect timeout.
    fn timeouts(&self, base: Timeouts) -> Timeouts {
        Timeouts { connect: self.connect_timeout, ..base }
    }

    /// Sends `method path` to the nodes in turn until one answers, following redirects.
    async fn request(
        &mut self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        expect_continue: bool,
        timeouts: Timeouts,
    ) -> std::result::Result<http::Response, Unreachable> {
        let mut last = None;
        for _ in 0..self.nodes.len() {
            let (host, port) = self.nodes[self.next_node % self.nodes.len()].clone();
            let mut target = Target { host, port, path: path.to_string() };
            let request = Request { method: "PUT", headers, body, expect_continue };
            let mut hops = 0;
            let outcome = loop {
                match http::send(&target, &request, timeouts).await {
                    Ok(response) if response.is_redirect() && hops < 3 => {
                        let Some(location) = response.header("location") else { break Ok(response) };
                        match http::parse_url(location) {
                            Ok(next) => target = next,
                            Err(e) => {
                                break Err(Unreachable {
                                    error: HttpError::Exchange(format!(
                                        "{} redirected to an unusable address ({e})",
                                        target.display()
                                    )),
                                    maybe_applied: false,
                                })
                            }
                        }
                        hops += 1;
                    }
                    Ok(response) => break Ok(response),
                    Err(error) => {
                        let maybe_applied = matches!(error, HttpError::Exchange(_));
                        // A redirect target that is down is as good as a node that is down.
                        break Err(Unreachable { error, maybe_applied });
                    }
                }
            };
            match outcome {
                Err(Unreachable { error: HttpError::Connect(m), maybe_applied: false }) => {
                    tracing::warn!(node = %target.display(), error = %m, "Doris node unreachable, trying the next one");
                    self.next_node += 1;
                    last = Some(Unreachable { error: HttpError::Connect(m), maybe_applied: false });
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Unreachable {
            error: HttpError::Connect("no Doris node configured".into()),
            maybe_applied: false,
        }))
    }

    async fn load(&mut self, label: &str, two_phase: bool, body: &[u8]) -> std::result::Result<LoadReply, LoadTrouble> {
        let path = format!("/api/{}/{}/_stream_load", self.database, self.table);
        let mut headers =
            vec![("Authorization".to_string(), self.authorization.clone()), ("label".to_string(), label.to_string())];
        headers.extend(self.load_headers.iter().cloned());
        if two_phase {
            headers.push(("two_phase_commit".to_string(), "true".to_string()));
        }
        let response = self
            .request(&path, &headers, body, true, self.timeouts(LOAD_TIMEOUTS))
            .await
            .map_err(LoadTrouble::Unreachable)?;
        if response.status != 200 {
            return Err(LoadTrouble::Http(
                response.status,
                String::from_utf8_lossy(&response.body).chars().take(300).collect(),
            ));
        }
        protocol::parse_load_reply(&response.body).map_err(LoadTrouble::BadReply)
    }

    async fn two_pc(
        &mut self,
        txn_id: Option<i64>,
        label: &str,
        operation: TxnOperation,
    ) -> std::result::Result<TwoPcOutcome, LoadTrouble> {
        let path = format!("/api/{}/_stream_load_2pc", self.database);
        let mut headers = vec![
            ("Authorization".to_string(), self.authorization.clone()),
            ("txn_operation".to_string(), operation.header_value().to_string()),
        ];
        match txn_id {
            Some(id) => headers.push(("txn_id".to_string(), id.to_string())),
            None => headers.push(("label".to_string(), label.to_string())),
        }
        let response = self
            .request(&path, &headers, b"", false, self.timeouts(CONTROL_TIMEOUTS))
            .await
            .map_err(LoadTrouble::Unreachable)?;
        if response.status != 200 {
            return Err(LoadTrouble::Http(
                response.status,
                String::from_utf8_lossy(&response.body).chars().take(300).collect(),
            ));
        }
        protocol::parse_two_pc_reply(&response.body, operation).map_err(LoadTrouble::BadReply)
    }

    /// The first lines of a failed load's error log, or why they could not be read.
    async fn error_log(&self, url: &str) -> String {
        let target = match http::parse_url(url) {
            Ok(t) => t,
            Err(e) => return format!("(error log {url} not readable: {e})"),
        };
        let request = Request { method: "GET", headers: &[], body: b"", expect_continue: false };
        match http::send(&target, &request, self.timeouts(CONTROL_TIMEOUTS)).await {
            Ok(r) if r.status == 200 => protocol::error_log_excerpt(&r.body, 3),
            Ok(r) => format!("(error log {} answered HTTP {})", target.display(), r.status),
            Err(e) => format!("(error log {} not readable: {e})", target.display()),
        }
    }
}

/// The `columns` header: the user's, or our columns in order; with deletes, ending with the delete
/// sign as in the Flink connector. (Doris reads `hidden_columns` only when no `columns` header is
/// sent, so the delete sign must be named here.)
fn columns_header(config: &DorisConfig, with_delete_sign: bool) -> String {
    let mut columns = match config.properties.iter().find(|(k, _)| k == "columns") {
        Some((_, given)) => given.clone(),
        None => config.schema.fields().iter().map(|f| quote_column(f.name())).collect::<Vec<_>>().join(","),
    };
    let names_delete_sign = columns.split(',').any(|entry| {
        let name = entry.split('=').next().unwrap_or_default().trim().trim_matches('`');
        name.eq_ignore_ascii_case(encode::DELETE_SIGN)
    });
    if with_delete_sign && !names_delete_sign {
        columns.push(',');
        columns.push_str(encode::DELETE_SIGN);
    }
    columns
}

/// Quotes a column name for the `columns` header when it is not a plain identifier.
fn quote_column(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

enum LoadTrouble {
    Unreachable(Unreachable),
    Http(u16, String),
    BadReply(String),
}

impl LoadTrouble {
    fn describe(&self) -> String {
        match self {
            LoadTrouble::Unreachable(u) => u.error.to_string(),
            LoadTrouble::Http(status, body) => format!("HTTP {status}: {body}"),
            LoadTrouble::BadReply(m) => format!("unreadable reply: {m}"),
        }
    }
}

/// What a load attempt means for the caller.
enum Attempt {
    Loaded(LoadResponse),
    LabelTaken(LoadResponse, ExistingJob),
    /// Worth retrying (counted against `sink.max-retries`).
    Retry(String),
    /// Too many versions: back off without counting a retry.
    SlowDown(String),
}

struct DorisSink {
    config: Arc<DorisConfig>,
    loader: Loader,
    encoder: Encoder,
    with_delete_sign: bool,
    buffer: Vec<u8>,
    buffered_rows: usize,
    last_flush: Instant,
    /// Minimum time between batch-mode flushes; grows on `-235`, shrinks on success.
    flush_gap: Duration,
    run_id: u128,
    loads: u64,
}

impl DorisSink {
    fn origin(&self) -> String {
        format!("doris sink `{}` ({})", self.config.table_name, self.config.qualified())
    }

    fn user_error_of_frontend(&self, e: &protocol::FrontendError) -> Error {
        if e.is_unauthorized() {
            Error::user(format!(
                "{}: Doris refused user '{}' ({}); check 'username' and 'password' and the user's LOAD privilege on {}",
                self.origin(),
                self.config.username,
                e.message,
                self.config.qualified()
            ))
        } else {
            Error::external(format!("{}: Doris FE refused the load: {}", self.origin(), e.message))
        }
    }

    /// Turns a reply into what to do next; errors that retrying cannot fix are returned.
    async fn judge(&self, label: &str, reply: std::result::Result<LoadReply, LoadTrouble>) -> Result<Attempt> {
        let response = match reply {
            Ok(LoadReply::Load(r)) => r,
            Ok(LoadReply::Frontend(e)) => {
                if e.is_unauthorized() {
                    return Err(self.user_error_of_frontend(&e));
                }
                if matches!(
                    protocol::classify_failure(&e.message),
                    LoadFailure::UnknownDatabase | LoadFailure::UnknownTable
                ) {
                    return Err(Error::user(format!(
                        "{}: Doris has no table {}: {}. Check 'table.identifier' or create the table",
                        self.origin(),
                        self.config.qualified(),
                        e.message
                    )));
                }
                return Ok(Attempt::Retry(format!("FE refused load {label}: {}", e.message)));
            }
            Err(trouble) => return Ok(Attempt::Retry(format!("load {label}: {}", trouble.describe()))),
        };
        match response.status.clone() {
            LoadStatus::Success | LoadStatus::PublishTimeout => Ok(Attempt::Loaded(response)),
            LoadStatus::LabelAlreadyExists(existing) => Ok(Attempt::LabelTaken(response, existing)),
            LoadStatus::Fail => {
                let message = response.message.clone();
                let qualified = self.config.qualified();
                match protocol::classify_failure(&message) {
                    LoadFailure::TooManyVersions => Ok(Attempt::SlowDown(message)),
                    LoadFailure::DataQuality => {
                        let rows = match &response.error_url {
                            Some(url) => self.loader.error_log(url).await,
                            None => "(Doris gave no ErrorURL)".to_string(),
                        };
                        Err(Error::user(format!(
                            "{}: Doris rejected rows of load {label}: {message} ({} rows filtered). First rejected rows:\n{rows}\nFix the data or the Doris column types (NOT NULL, lengths, ranges), or let Doris skip bad rows with 'sink.properties.max_filter_ratio'",
                            self.origin(),
                            response.filtered_rows
                        )))
                    }
                    LoadFailure::UnknownTable | LoadFailure::UnknownDatabase => Err(Error::user(format!(
                        "{}: Doris has no table {qualified}: {message}. Check 'table.identifier' or create the table",
                        self.origin()
                    ))),
                    LoadFailure::UnknownColumn => {
                        let names: Vec<&str> = self.config.schema.fields().iter().map(|f| f.name().as_str()).collect();
                        Err(Error::user(format!(
                            "{}: the sink's columns ({}) do not match Doris table {qualified}: {message}{}",
                            self.origin(),
                            names.join(", "),
                            if self.with_delete_sign {
                                ". Deletes need a UNIQUE KEY table (with __DORIS_DELETE_SIGN__); for other tables set 'sink.enable-delete' = 'false'"
                            } else {
                                ""
                            }
                        )))
                    }
                    LoadFailure::AccessDenied => Err(Error::user(format!(
                        "{}: Doris refused user '{}': {message}; check 'username', 'password' and the LOAD privilege",
                        self.origin(),
                        self.config.username
                    ))),
                    LoadFailure::Other => Ok(Attempt::Retry(format!("load {label} failed: {message}"))),
                }
            }
        }
    }

    /// Precommits the buffered rows as the checkpoint's one load. Returns its transaction id
    /// (`None` when Doris did not say) or that the label was already FINISHED.
    async fn precommit(&mut self, label: &str, body: &[u8]) -> Result<Precommitted> {
        let mut retries = 0;
        let mut slowdowns = 0;
        let mut sent = false;
        let mut aborted_lingering = false;
        loop {
            let reply = self.loader.load(label, true, body).await;
            let maybe_applied = match &reply {
                Err(LoadTrouble::Unreachable(u)) => u.maybe_applied,
                _ => true,
            };
            let attempt = self.judge(label, reply).await?;
            let problem = match attempt {
                Attempt::Loaded(r) => return Ok(Precommitted::Txn(r.txn_id)),
                Attempt::LabelTaken(_, ExistingJob::Finished) => {
                    tracing::warn!(label, table = %self.config.qualified(), "label already FINISHED in Doris: this checkpoint was loaded before, not loading it again");
                    return Ok(Precommitted::AlreadyFinished);
                }
                Attempt::LabelTaken(r, ExistingJob::Precommitted) => {
                    let txn = protocol::txn_of_existing_label(&r.message);
                    if sent {
                        // Our own earlier attempt got through but its reply was lost.
                        return Ok(Precommitted::Txn(txn));
                    }
                    if aborted_lingering {
                        return Err(Error::external(format!(
                            "{}: label {label} is still precommitted after aborting it: {}",
                            self.origin(),
                            r.message
                        )));
                    }
                    tracing::warn!(label, ?txn, "aborting a precommitted load left by an earlier run");
                    self.finish_txn(txn, label, TxnOperation::Abort).await?;
                    aborted_lingering = true;
                    continue;
                }
                Attempt::LabelTaken(r, _) => format!("label {label} is held by a running load: {}", r.message),
                Attempt::Retry(m) => m,
                Attempt::SlowDown(m) => {
                    slowdowns += 1;
                    if slowdowns > MAX_VERSION_BACKOFFS {
                        return Err(Error::external(format!(
                            "{}: Doris kept answering 'too many versions': {m}",
                            self.origin()
                        )));
                    }
                    tracing::warn!(label, message = %m, "Doris has too many versions: backing off");
                    tokio::time::sleep(backoff(slowdowns)).await;
                    sent |= maybe_applied;
                    continue;
                }
            };
            sent |= maybe_applied;
            retries += 1;
            if retries > self.config.max_retries {
                return Err(Error::external(format!(
                    "{}: precommit of {label} failed after {} retries: {problem}. {REACHABILITY_HINT}",
                    self.origin(),
                    self.config.max_retries
                )));
            }
            tracing::warn!(label, problem = %problem, retry = retries, "Doris precommit failed, retrying");
            tokio::time::sleep(backoff(retries)).await;
        }
    }

    /// Commits or aborts a precommitted load; repeating an operation that already happened is
    /// success.
    async fn finish_txn(&mut self, txn_id: Option<i64>, label: &str, operation: TxnOperation) -> Result<()> {
        let mut retries = 0;
        loop {
            let problem = match self.loader.two_pc(txn_id, label, operation).await {
                Ok(TwoPcOutcome::Done) => return Ok(()),
                Ok(TwoPcOutcome::AlreadyDone(m)) => {
                    tracing::info!(label, message = %m, "Doris transaction was already {}", operation.header_value());
                    return Ok(());
                }
                Ok(TwoPcOutcome::Unauthorized(m)) => {
                    return Err(Error::user(format!(
                        "{}: Doris refused user '{}' for {} of {label}: {m}; check 'username' and 'password'",
                        self.origin(),
                        self.config.username,
                        operation.header_value()
                    )))
                }
                Ok(TwoPcOutcome::Failed(m)) if operation == TxnOperation::Commit => {
                    return Err(Error::external(format!(
                        "{}: transaction {} (label {label}) cannot be committed: {m}. Its rows are not in Doris; it was probably aborted after the precommit timeout (stream_load_default_precommit_timeout_second) or by hand",
                        self.origin(),
                        txn_id.map(|t| t.to_string()).unwrap_or_else(|| "?".into())
                    )))
                }
                Ok(TwoPcOutcome::Failed(m)) => m,
                Err(trouble) => trouble.describe(),
            };
            retries += 1;
            if retries > self.config.max_retries {
                return Err(Error::external(format!(
                    "{}: {} of {label} failed after {} retries: {problem}. {REACHABILITY_HINT}",
                    self.origin(),
                    operation.header_value(),
                    self.config.max_retries
                )));
            }
            tracing::warn!(label, problem = %problem, retry = retries, "Doris {} failed, retrying", operation.header_value());
            tokio::time::sleep(backoff(retries)).await;
        }
    }

    /// Loads the buffer at least once (batch mode and `sink.enable-2pc = false`).
    async fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let body = std::mem::take(&mut self.buffer);
        let rows = std::mem::take(&mut self.buffered_rows);
        let mut retries = 0;
        let mut slowdowns = 0;
        loop {
            self.loads += 1;
            let label = format!(
                "{}_{}_{}_{}_{}",
                self.config.label_prefix,
                protocol::label_safe(&self.config.database),
                protocol::label_safe(&self.config.table),
                self.run_id,
                self.loads
            );
            let reply = self.loader.load(&label, false, &body).await;
            let problem = match self.judge(&label, reply).await? {
                Attempt::Loaded(r) => {
                    tracing::debug!(label, rows, loaded = r.loaded_rows, "Doris load done");
                    break;
                }
                Attempt::LabelTaken(_, ExistingJob::Finished) => break,
                Attempt::LabelTaken(r, _) => format!("label {label} is taken: {}", r.message),
                Attempt::Retry(m) => m,
                Attempt::SlowDown(m) => {
                    slowdowns += 1;
                    if slowdowns > MAX_VERSION_BACKOFFS {
                        return Err(Error::external(format!(
                            "{}: Doris kept answering 'too many versions': {m}",
                            self.origin()
                        )));
                    }
                    self.flush_gap = (self.flush_gap * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                    tracing::warn!(label, message = %m, gap = ?self.flush_gap, "Doris has too many versions: flushing less often");
                    tokio::time::sleep(self.flush_gap).await;
                    continue;
                }
            };
            retries += 1;
            if retries > self.config.max_retries {
                return Err(Error::external(format!(
                    "{}: load failed after {} retries: {problem}. {REACHABILITY_HINT}",
                    self.origin(),
                    self.config.max_retries
                )));
            }
            tracing::warn!(label, problem = %problem, retry = retries, "Doris load failed, retrying with a new label");
            tokio::time::sleep(backoff(retries)).await;
        }
        self.last_flush = Instant::now();
        self.flush_gap /= 2;
        Ok(())
    }

    fn flush_due(&self) -> bool {
        let since = self.last_flush.elapsed();
        self.buffered_rows > 0
            && since >= self.flush_gap
            && (self.buffered_rows >= self.config.flush_max_rows
                || self.buffer.len() >= self.config.flush_max_bytes
                || since >= self.config.flush_interval)
    }

    fn label_of(&self, checkpoint_id: u64) -> String {
        protocol::checkpoint_label(&self.config.label_prefix, &self.config.database, &self.config.table, checkpoint_id)
    }

    /// Aborts precommitted loads of checkpoints after `after`, left by a run that stopped between
    /// prepare and commit, probing their labels with empty loads until one is unused.
    async fn abort_lingering(&mut self, after: u64) -> Result<()> {
        let mut waits = 0;
        let mut checkpoint = after + 1;
        while checkpoint <= after + MAX_PROBED_LABELS {
            let label = self.label_of(checkpoint);
            let reply = self.loader.load(&label, true, b"").await;
            match self.judge(&label, reply).await? {
                Attempt::LabelTaken(r, ExistingJob::Precommitted) => {
                    let txn = protocol::txn_of_existing_label(&r.message);
                    tracing::info!(label, ?txn, "aborting a precommitted load of an unfinished checkpoint");
                    self.finish_txn(txn, &label, TxnOperation::Abort).await?;
                    checkpoint += 1;
                }
                Attempt::LabelTaken(_, ExistingJob::Finished) => checkpoint += 1,
                Attempt::LabelTaken(r, _) => {
                    waits += 1;
                    if waits > self.config.max_retries.max(3) {
                        return Err(Error::external(format!(
                            "{}: label {label} stays held by a running load: {}",
                            self.origin(),
                            r.message
                        )));
                    }
                    tokio::time::sleep(backoff(waits)).await;
                }
                Attempt::Loaded(r) => {
                    // The label was free: our empty probe started a load; undo it.
                    self.finish_txn(r.txn_id, &label, TxnOperation::Abort).await?;
                    return Ok(());
                }
                Attempt::Retry(m) | Attempt::SlowDown(m) => {
                    waits += 1;
                    if waits > self.config.max_retries {
                        return Err(Error::external(format!(
                            "{}: recovery probe of {label} failed: {m}",
                            self.origin()
                        )));
                    }
                    tokio::time::sleep(backoff(waits)).await;
                }
            }
        }
        Ok(())
    }

    fn encode(&mut self, batch: &ChangeBatch) -> Result<()> {
        let rows = batch.rows();
        // Doris keeps the row with the greatest sequence of a key, the later one between equals
        // (within a load and across loads), so compaction keeps the same row.
        let versioned = self.config.version_column.map(|column| Versioned { column, ties: Ties::LaterWins });
        if let Some(v) = &versioned {
            check_versions(rows, &self.config.key_columns, v.column)?;
        }
        if !self.config.key_columns.is_empty() && !batch.all_inserts() {
            let compacted = compact_by_key(batch, &self.config.key_columns, versioned)?;
            self.encoder.encode_all(&compacted.upserts, false, &mut self.buffer)?;
            self.buffered_rows += compacted.upserts.num_rows();
            if self.with_delete_sign {
                self.encoder.encode_all(&compacted.deletes, true, &mut self.buffer)?;
                self.buffered_rows += compacted.deletes.num_rows();
            }
            return Ok(());
        }
        let deletes = self.with_delete_sign;
        let update_before_deletes = deletes && !self.config.ignore_update_before;
        let mut count = 0;
        let selected = (0..batch.num_rows()).filter_map(|i| {
            let row = match batch.kind(i) {
                RowKind::Insert | RowKind::UpdateAfter => Some((i, false)),
                RowKind::Delete => deletes.then_some((i, true)),
                RowKind::UpdateBefore => update_before_deletes.then_some((i, true)),
            };
            count += usize::from(row.is_some());
            row
        });
        self.encoder.encode_rows(rows, selected, &mut self.buffer)?;
        self.buffered_rows += count;
        Ok(())
    }
}

enum Precommitted {
    Txn(Option<i64>),
    AlreadyFinished,
}

#[async_trait]
impl Sink for DorisSink {
    async fn recover(&mut self, pending: Vec<PreparedCommit>) -> Result<()> {
        let mut last = 0;
        let mut pending = pending;
        pending.sort_by_key(|p| p.checkpoint_id);
        for prepared in pending {
            last = last.max(prepared.checkpoint_id);
            self.commit(prepared).await?;
        }
        if self.config.exactly_once {
            self.abort_lingering(last).await?;
        }
        Ok(())
    }

    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        self.encode(&batch).map_err(|e| e.context(self.origin()))?;
        if self.config.batch_mode && self.flush_due() {
            self.flush().await?;
        }
        Ok(())
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        if !self.config.exactly_once {
            self.flush().await?;
            return Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null });
        }
        if self.buffer.is_empty() {
            return Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null });
        }
        let label = self.label_of(checkpoint_id);
        let body = std::mem::take(&mut self.buffer);
        let rows = std::mem::take(&mut self.buffered_rows);
        let state = match self.precommit(&label, &body).await? {
            Precommitted::Txn(txn_id) => {
                tracing::debug!(label, rows, ?txn_id, "Doris load precommitted");
                json!({ "label": label, "txn_id": txn_id })
            }
            Precommitted::AlreadyFinished => json!({ "label": label, "finished": true }),
        };
        Ok(PreparedCommit { checkpoint_id, state })
    }

    async fn commit(&mut self, prepared: PreparedCommit) -> Result<()> {
        let state = &prepared.state;
        if state.is_null() || state.get("finished").and_then(|f| f.as_bool()) == Some(true) {
            return Ok(());
        }
        let Some(label) = state.get("label").and_then(|l| l.as_str()).map(str::to_string) else {
            return Err(Error::internal(format!(
                "{}: checkpoint {} carries no Doris label: {state}",
                self.origin(),
                prepared.checkpoint_id
            )));
        };
        let txn_id = state.get("txn_id").and_then(|t| t.as_i64());
        self.finish_txn(txn_id, &label, TxnOperation::Commit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{ColumnSpec, TableOption};
    use datafusion::arrow::datatypes::DataType;

    fn parse(extra: &[(&str, &str)]) -> Result<DorisConfig> {
        let options = [("connector", "doris"), ("fenodes", "fe:8030"), ("table.identifier", "db.t"), ("username", "u")];
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![ColumnSpec {
                name: "id".into(),
                data_type: DataType::Int64,
                nullable: false,
                type_text: "BIGINT".into(),
                metadata: None,
                comment: None,
            }],
            primary_key: vec!["id".into()],
            options: options
                .iter()
                .chain(extra)
                .map(|(k, v)| TableOption { key: k.to_string(), value: v.to_string(), written: v.to_string() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        };
        let mut o = ConnectorOptions::new(&spec)?;
        let config = DorisConfig::parse(&spec, &mut o)?;
        o.finish()?;
        Ok(config)
    }

    #[test]
    fn the_connect_timeout_applies_to_every_request() {
        let loader = Loader::new(&parse(&[]).unwrap(), false);
        assert_eq!(loader.timeouts(LOAD_TIMEOUTS).connect, Duration::from_secs(10));
        let loader = Loader::new(&parse(&[("doris.request.connect.timeout", "30s")]).unwrap(), false);
        for (base, timeouts) in
            [(LOAD_TIMEOUTS, loader.timeouts(LOAD_TIMEOUTS)), (CONTROL_TIMEOUTS, loader.timeouts(CONTROL_TIMEOUTS))]
        {
            assert_eq!((timeouts.connect, timeouts.total), (Duration::from_secs(30), base.total));
        }
        assert!(parse(&[("doris.request.connect.timeout", "0")]).is_err());
    }

    #[test]
    fn write_mode_stream_load_batch_is_batch_mode_and_copy_is_refused() {
        assert!(!parse(&[("sink.write-mode", "stream_load")]).unwrap().batch_mode);
        let c = parse(&[("sink.write-mode", "STREAM_LOAD_BATCH"), ("sink.buffer-flush.max-rows", "10")]).unwrap();
        assert!(c.batch_mode && !c.exactly_once && c.flush_max_rows == 10);
        let err = parse(&[("sink.write-mode", "copy")]).err().unwrap().to_string();
        assert!(err.contains("'sink.write-mode' = 'copy'") && err.contains("COPY INTO is not offered"), "{err}");
    }
}
