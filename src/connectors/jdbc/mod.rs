//! `jdbc`: writes changelogs into PostgreSQL and MySQL/MariaDB tables and reads whole tables back
//! as a bounded, partitioned scan, with Flink's JDBC connector options (see
//! `docs/connectors/jdbc.md`).
//!
//! Protocols: PostgreSQL through `tokio-postgres` (the sink streams binary `COPY` into a temporary
//! staging table and merges it with one `DELETE … USING` and one `INSERT … SELECT … ON CONFLICT`
//! per flush; the scan decodes binary `COPY (SELECT …) TO STDOUT`); MySQL/MariaDB through
//! `mysql_async`'s text protocol (multi-row `INSERT … ON DUPLICATE KEY UPDATE` and
//! `DELETE … WHERE key IN (…)`; the scan streams `SELECT` rows over `connectors::mysql_session`,
//! falling back to `mysql_async` for logins those cannot do). Every flush is one transaction,
//! retried on connection loss, deadlocks and serialization failures. With `sink.version-column`
//! both writers make every upsert and delete conditional on the version and keep deletes as
//! tombstones in a table of their own (the version guard).
//!
//! Lookup joins (`FOR SYSTEM_TIME AS OF`) read rows by key with one `SELECT … WHERE key IN (…)`
//! per batch (`lookup.rs`).
//!
//! Limits: no TLS (URL parameters other than `sslmode=disable` / `useSSL=false` are refused);
//! ARRAY/MAP/ROW columns are not supported; partitioned scans need an integer
//! partition column; on MySQL/MariaDB each range is its own transaction (PostgreSQL ranges share
//! one exported snapshot); a resumed scan re-reads the ranges that were not finished.

mod columns;
mod dialect;
mod lookup;
mod mysqltext;
mod pgwire;
mod sink;
mod source;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};

use super::lookup::{Lookup, LookupOptions, LookupTable};
use super::{Connector, ConnectorOptions, ConnectorTable, Sink, Source, SourceContext, SourceIdentity};
use crate::changelog::ChangelogMode;
use crate::error::{Error, Result};
use crate::sql::TableSpec;
use dialect::{Endpoint, TableName};

pub struct Jdbc;

impl Connector for Jdbc {
    fn name(&self) -> &'static str {
        "jdbc"
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        Ok(Box::new(JdbcTable { config: Arc::new(JdbcConfig::parse(spec, options)?) }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteMode {
    Delete,
    Ignore,
}

#[derive(Debug)]
pub(crate) struct SinkOptions {
    /// `sink.buffer-flush.max-rows` and `.interval` both `0`: flush at checkpoints only (the
    /// writer otherwise flushes whenever it is free, see sink.rs).
    pub checkpoints_only: bool,
    pub max_retries: u32,
    pub delete_mode: DeleteMode,
    pub auto_create: bool,
    pub offsets_table: Option<TableName>,
    /// `sink.version-column`: upserts and deletes apply only over older versions.
    pub guard: Option<VersionGuard>,
}

/// The version guard of a keyed sink (see `docs/connectors/jdbc.md`, *Version guard*).
#[derive(Debug)]
pub(crate) struct VersionGuard {
    /// Index of the version column (declared, not in the key, orderable).
    pub column: usize,
    /// Where deletes leave their tombstones: the key columns and the delete's version.
    pub tombstones: TableName,
}

/// The longest identifier PostgreSQL keeps (it cuts longer ones; MySQL allows 64).
const MAX_IDENTIFIER: usize = 63;

#[derive(Debug, Clone)]
pub(crate) struct Partitioning {
    pub column: usize,
    pub num: u32,
    pub lower: i64,
    pub upper: i64,
}

#[derive(Debug)]
pub(crate) struct JdbcConfig {
    /// The table's name in the job file, for messages.
    pub name: String,
    pub endpoint: Endpoint,
    pub table: TableName,
    pub schema: SchemaRef,
    /// Indices of the PRIMARY KEY columns (empty: append-only sink).
    pub key: Vec<usize>,
    pub sink: SinkOptions,
    pub partitioning: Option<Partitioning>,
    pub fetch_size: Option<usize>,
    pub retry_timeout: Duration,
    pub lookup: LookupOptions,
}

impl JdbcConfig {
    fn parse(spec: &TableSpec, o: &mut ConnectorOptions) -> Result<Self> {
        let url = o.required("url")?;
        let (dialect, host, port, database) =
            dialect::parse_url(&url).map_err(|expected| o.invalid("url", &url, &expected))?;
        // Flink jobs name the JDBC driver class; ours is built in, so it only has to match the URL.
        if let Some(driver) = o.string("driver") {
            let matches = match dialect {
                dialect::Dialect::Postgres => driver == "org.postgresql.Driver",
                dialect::Dialect::MySql => {
                    ["com.mysql.cj.jdbc.Driver", "com.mysql.jdbc.Driver", "org.mariadb.jdbc.Driver"]
                        .contains(&driver.as_str())
                }
            };
            if !matches {
                return Err(o.invalid(
                    "driver",
                    &driver,
                    &format!("the {} driver class matching 'url'", dialect.label()),
                ));
            }
        }
        let table_text = o.required("table-name")?;
        let table = TableName::parse(&table_text)
            .ok_or_else(|| o.invalid("table-name", &table_text, "`table` or `schema.table`"))?;
        let user = o.string("username");
        let password = o.string("password");
        if password.is_some() && user.is_none() {
            return Err(Error::user(format!("table `{}`: 'password' is set but 'username' is not", spec.name)));
        }
        let endpoint = Endpoint { dialect, host, port, database, user, password };

        let max_rows = o.parse::<usize>("sink.buffer-flush.max-rows", "a whole number of rows")?.unwrap_or(100);
        let interval = o.duration("sink.buffer-flush.interval")?.unwrap_or(Duration::from_secs(1));
        let max_retries = o.parse::<u32>("sink.max-retries", "a whole number")?.unwrap_or(3);
        let retry_timeout = o.duration("connection.max-retry-timeout")?.unwrap_or(Duration::from_secs(60));
        let delete_mode = match o.choice("sink.delete-mode", &["delete", "ignore"])?.unwrap_or("delete") {
            "ignore" => DeleteMode::Ignore,
            _ => DeleteMode::Delete,
        };
        let auto_create = o.bool("sink.auto-create-table")?.unwrap_or(false);
        let offsets_table = match o.string("sink.offsets-table") {
            None => None,
            Some(t) => Some(
                TableName::parse(&t).ok_or_else(|| o.invalid("sink.offsets-table", &t, "`table` or `schema.table`"))?,
            ),
        };

        let version_column = o.string("sink.version-column");
        let tombstone_table = o.string("sink.tombstone-table");

        let column_index = |name: &str| spec.columns.iter().position(|c| c.name == name);
        let partition_column = o.string("scan.partition.column");
        let partition_num = o.parse::<u32>("scan.partition.num", "a positive whole number")?;
        let lower = o.parse::<i64>("scan.partition.lower-bound", "a whole number")?;
        let upper = o.parse::<i64>("scan.partition.upper-bound", "a whole number")?;
        let partitioning = match (partition_column, partition_num, lower, upper) {
            (None, None, None, None) => None,
            (Some(column), Some(num), Some(lower), Some(upper)) => {
                let index = column_index(&column).ok_or_else(|| {
                    o.invalid("scan.partition.column", &column, "one of the table's declared columns")
                })?;
                if !spec.columns[index].data_type.is_integer() {
                    return Err(o.invalid("scan.partition.column", &column, "a column of an integer type"));
                }
                if num == 0 {
                    return Err(o.invalid("scan.partition.num", "0", "a positive whole number"));
                }
                if lower > upper {
                    return Err(o.invalid(
                        "scan.partition.lower-bound",
                        &lower.to_string(),
                        &format!("a number not above 'scan.partition.upper-bound' ({upper})"),
                    ));
                }
                Some(Partitioning { column: index, num, lower, upper })
            }
            _ => {
                return Err(Error::user(format!(
                    "table `{}`: a partitioned scan needs all four of 'scan.partition.column', 'scan.partition.num', 'scan.partition.lower-bound' and 'scan.partition.upper-bound'",
                    spec.name
                )))
            }
        };
        // Flink's default is 0: no hint, the session's batch size.
        let fetch_size = o.parse::<usize>("scan.fetch-size", "a whole number of rows")?.filter(|n| *n > 0);

        // Flink options that change nothing here.
        o.no_effect("compatible-mode", "the SQL dialect follows the URL (jdbc:postgresql, jdbc:mysql, jdbc:mariadb)");
        o.no_effect(
            "scan.auto-commit",
            "the scan streams each partition's rows in one statement without a client-side cursor, so auto-commit \
             changes nothing in what it reads",
        );
        o.no_effect(
            "filter.handling.policy",
            "filters are never pushed to the database: the scan reads every row of its ranges and the query filters \
             them, with the same result",
        );
        o.no_effect("sink.parallelism", "each sink is written by one writer, in changelog order");
        let lookup = LookupOptions::parse(o)?;

        for column in &spec.columns {
            if !columns::is_supported(&column.data_type) || dialect.column_type(&column.data_type, None).is_none() {
                return Err(Error::user(format!(
                    "column `{}` of table `{}` has type {}, which the jdbc connector does not support for {}",
                    column.name,
                    spec.name,
                    column.type_text,
                    dialect.label()
                )));
            }
        }
        let key = spec
            .primary_key
            .iter()
            .map(|k| {
                column_index(k).ok_or_else(|| Error::internal(format!("primary key column `{k}` is not a column")))
            })
            .collect::<Result<Vec<_>>>()?;

        let guard = match (version_column, tombstone_table) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(Error::user(format!(
                    "table `{}`: 'sink.tombstone-table' is where the version guard keeps deletes, but 'sink.version-column' is not set; set it or remove 'sink.tombstone-table'",
                    spec.name
                )))
            }
            (Some(column), tombstones) => {
                Some(parse_guard(spec, o, &table, &key, &column, tombstones)?)
            }
        };

        Ok(JdbcConfig {
            name: spec.name.clone(),
            endpoint,
            table,
            schema: spec.schema(),
            key,
            sink: SinkOptions {
                checkpoints_only: max_rows == 0 && interval.is_zero(),
                max_retries,
                delete_mode,
                auto_create,
                offsets_table,
                guard,
            },
            partitioning,
            fetch_size,
            retry_timeout,
            lookup,
        })
    }

    /// What the scan's positions (indices of finished ranges) are positions in: the table and
    /// how it is cut into ranges. No user or password: this is stored and shown.
    pub fn source_identity(&self) -> SourceIdentity {
        let e = &self.endpoint;
        let startup_mode = match &self.partitioning {
            None => "scan".to_string(),
            Some(p) => format!(
                "scan partition.column={} num={} lower-bound={} upper-bound={}",
                self.schema.field(p.column).name(),
                p.num,
                p.lower,
                p.upper
            ),
        };
        SourceIdentity {
            connector: "jdbc".into(),
            location: format!("{}:{}/{}", e.host, e.port, e.database),
            tables: self.table.display(),
            startup_mode,
        }
    }

    /// `target` `(database)` for messages: never credentials.
    pub fn describe_target(&self) -> String {
        format!("table {} of {}", self.table.display(), self.endpoint.describe())
    }
}

/// Checks `'sink.version-column' = column` (and `'sink.tombstone-table'`) against the table.
fn parse_guard(
    spec: &TableSpec,
    o: &ConnectorOptions,
    table: &TableName,
    key: &[usize],
    column: &str,
    tombstones: Option<String>,
) -> Result<VersionGuard> {
    if key.is_empty() {
        return Err(Error::user(format!(
            "table `{}`: 'sink.version-column' makes upserts and deletes of a key conditional on its version, but the table has no PRIMARY KEY; declare PRIMARY KEY (…) NOT ENFORCED on `{}` (the target's primary key or a unique index) or remove 'sink.version-column'",
            spec.name, spec.name
        )));
    }
    let index = spec
        .columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| o.invalid("sink.version-column", column, "one of the table's declared columns"))?;
    if key.contains(&index) {
        return Err(o.invalid("sink.version-column", column, "a column that is not part of the PRIMARY KEY"));
    }
    if !is_orderable_version(&spec.columns[index].data_type) {
        return Err(o.invalid(
            "sink.version-column",
            column,
            &format!(
                "a column of an integer, DECIMAL, DATE or TIMESTAMP type (`{column}` is {})",
                spec.columns[index].type_text
            ),
        ));
    }
    let tombstones = match tombstones {
        Some(t) => {
            TableName::parse(&t).ok_or_else(|| o.invalid("sink.tombstone-table", &t, "`table` or `schema.table`"))?
        }
        None => {
            let name = format!("{}__cdc_sql_deleted", table.table);
            if name.len() > MAX_IDENTIFIER {
                return Err(Error::user(format!(
                    "table `{}`: the version guard's tombstone table would be named `{name}`, longer than the {MAX_IDENTIFIER} characters databases keep; name a shorter one with 'sink.tombstone-table'",
                    spec.name
                )));
            }
            TableName { schema: table.schema.clone(), table: name }
        }
    };
    Ok(VersionGuard { column: index, tombstones })
}

/// Types whose values both databases order as the versions they stand for.
fn is_orderable_version(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::Date32 | DataType::Timestamp(..)
        )
}

struct JdbcTable {
    config: Arc<JdbcConfig>,
}

impl ConnectorTable for JdbcTable {
    fn source(&self, ctx: &SourceContext) -> Result<Option<Box<dyn Source>>> {
        Ok(Some(Box::new(source::JdbcSource::new(self.config.clone(), ctx.batch_size))))
    }

    fn source_identity(&self) -> Option<SourceIdentity> {
        Some(self.config.source_identity())
    }

    fn lookup(&self) -> Option<LookupTable> {
        let config = self.config.clone();
        Some(LookupTable {
            open: Arc::new(move || Ok(Box::new(lookup::JdbcLookup::new(config.clone())) as Box<dyn Lookup>)),
            options: self.config.lookup.clone(),
        })
    }

    fn sink(&self, input: ChangelogMode) -> Result<Option<Box<dyn Sink>>> {
        let c = &self.config;
        if c.key.is_empty() && !input.is_insert_only() && c.sink.delete_mode == DeleteMode::Delete {
            return Err(Error::user(format!(
                "table `{}` has no PRIMARY KEY, so the jdbc sink can only append rows, but the query produces updates or deletes; declare PRIMARY KEY (…) NOT ENFORCED on `{}` or set 'sink.delete-mode' = 'ignore' to append inserts and drop retractions",
                c.name, c.name
            )));
        }
        Ok(Some(Box::new(sink::JdbcSink::new(self.config.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use crate::connectors::{open_table, SourceIdentity};
    use crate::sql::{parse_script, Statement};

    fn identity(with: &str) -> SourceIdentity {
        let sql = format!(
            "CREATE TABLE t (id BIGINT, v STRING) WITH ('connector' = 'jdbc', 'username' = 'u', 'password' = 'secret-pw'{with});"
        );
        let statement = parse_script("test", &sql, &|_| None).unwrap().into_iter().next().unwrap().statement;
        let Statement::CreateTable { spec, .. } = statement else { panic!("not a CREATE TABLE") };
        open_table(&spec).unwrap().source_identity().unwrap()
    }

    #[test]
    fn the_scan_identity_names_table_and_ranges_without_credentials() {
        let whole = identity(", 'url' = 'jdbc:postgresql://db:5433/shop', 'table-name' = 'public.orders'");
        assert_eq!(
            whole,
            SourceIdentity {
                connector: "jdbc".into(),
                location: "db:5433/shop".into(),
                tables: "public.orders".into(),
                startup_mode: "scan".into(),
            }
        );
        let shown = serde_json::to_string(&whole).unwrap();
        assert!(!shown.contains("secret-pw") && !shown.contains("\"u\""), "{shown}");
        let partitioned = identity(
            ", 'url' = 'jdbc:postgresql://db:5433/shop', 'table-name' = 'public.orders', 'scan.partition.column' = 'id', \
             'scan.partition.num' = '4', 'scan.partition.lower-bound' = '0', 'scan.partition.upper-bound' = '99'",
        );
        assert_eq!(partitioned.startup_mode, "scan partition.column=id num=4 lower-bound=0 upper-bound=99");
        assert!(
            !partitioned.continues_snapshot(&whole) && !whole.continues_snapshot(&partitioned),
            "a scan never streams on"
        );
        let mysql = identity(", 'url' = 'jdbc:mysql://db/shop', 'table-name' = 'orders', 'scan.fetch-size' = '10'");
        assert_eq!((mysql.location.as_str(), mysql.tables.as_str()), ("db:3306/shop", "orders"));
    }
}
