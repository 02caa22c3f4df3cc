//! Flink CDC pipeline definitions (`cdc-sql -f sync.yaml`, docs/pipeline.md) compiled to the
//! same dataflow as SQL jobs: one source reading every selected table through one reader, each
//! table's changes passed on under its id in its own columns ([`crate::runtime::Dataflow::Tables`]),
//! and a sink that writes each table into the sink tables its routes name.
//!
//! Planning ([`plan`]) checks every option without I/O first (the source's and sink's through
//! their connectors, so option names, defaults and errors are the SQL connectors'), then asks the
//! source server for the selected tables' columns and keys, routes them, and opens each sink
//! table once — creating a missing one from the source table's columns and primary key, checking
//! an existing one's columns — so that no data moves before every table is known to fit.

pub mod definition;
mod route;
mod sink;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use definition::{is_pipeline, parse};
use definition::{Block, BlockOption, Definition, Route};

use crate::changelog::ChangelogMode;
use crate::connectors::{self, ConnectorOptions, ConnectorTable, MySqlTables, PostgresTables, Sink, TablesSource};
use crate::error::{Error, Result};
use crate::runtime::{Dataflow, InputSpec, Job, PipelineSpec};
use crate::session::{Outcome, Session};
use crate::sql::{ColumnSpec, TableOption, TableSpec};

/// The input's id in the job's checkpoints.
const SOURCE: &str = "source";

fn option(key: &str, value: &str) -> TableOption {
    TableOption { key: key.to_string(), value: value.to_string(), written: value.to_string() }
}

fn options(block: &Block, connector: &str) -> Vec<TableOption> {
    let mut options = vec![option("connector", connector)];
    options.extend(block.options.iter().map(|o| option(&o.key, &o.value)));
    options
}

fn block_option<'b>(block: &'b Block, key: &str) -> Option<&'b BlockOption> {
    block.options.iter().find(|o| o.key == key)
}

/// The `pipeline` block's `parallelism`: the snapshot's parallel readers.
fn parallelism(def: &Definition) -> Result<Option<usize>> {
    let Some((text, at)) = &def.settings.parallelism else { return Ok(None) };
    let readers = text.trim().parse::<usize>().ok().filter(|n| (1..=64).contains(n)).ok_or_else(|| {
        Error::user(format!("`parallelism: {text}` is not valid; expected a whole number from 1 to 64")).at(at.clone())
    })?;
    Ok(Some(readers))
}

/// The source as its SQL connector (mysql-cdc, postgres-cdc) reads its options; `parallelism`
/// of the `pipeline` block sets its snapshot readers (for mysql, unless the source sets
/// 'scan.incremental.snapshot.parallelism' itself).
fn open_source(def: &Definition) -> Result<Box<dyn TablesSource>> {
    let readers = parallelism(def)?;
    let postgres = def.source.kind == "postgres";
    let mut options = options(&def.source, if postgres { "postgres-cdc" } else { "mysql-cdc" });
    if let (Some(readers), false) = (readers, postgres) {
        if block_option(&def.source, "scan.incremental.snapshot.parallelism").is_none() {
            options.push(option("scan.incremental.snapshot.parallelism", &readers.to_string()));
        }
    }
    let spec = TableSpec {
        name: def.source.name.clone().unwrap_or_else(|| SOURCE.to_string()),
        columns: Vec::new(),
        primary_key: Vec::new(),
        options,
        comment: None,
        computed: Vec::new(),
    };
    let locate = |e| def.source.locate(e);
    let mut o = ConnectorOptions::new(&spec).map_err(locate)?;
    let tables: Box<dyn TablesSource> = match postgres {
        true => Box::new(PostgresTables::open(&spec, &mut o, readers).map_err(locate)?),
        false => Box::new(MySqlTables::open(&spec, &mut o).map_err(locate)?),
    };
    o.finish().map_err(locate)?;
    Ok(tables)
}

/// One sink table of the sink connector: the sink block's options for `table` with `columns`.
fn sink_spec(sink: &Block, table: &str, columns: Vec<ColumnSpec>, primary_key: Vec<String>) -> Result<TableSpec> {
    let mut options = options(sink, &sink.kind);
    match sink.kind.as_str() {
        "jdbc" => {
            for key in ["table-name", "sink.offsets-table"] {
                if let Some(o) = block_option(sink, key) {
                    let why = match key {
                        "table-name" => "the sink's tables are named by the source's tables and the routes",
                        _ => "positions are kept in the pipeline's checkpoints: one transaction per sink table cannot hold them",
                    };
                    return Err(Error::user(format!("`{key}` is not offered by a pipeline's jdbc sink: {why}"))
                        .at(o.at.clone()));
                }
            }
            options.push(option("table-name", table));
            if block_option(sink, "sink.auto-create-table").is_none() {
                options.push(option("sink.auto-create-table", "true"));
            }
        }
        _ => {
            let prefix = block_option(sink, "print-identifier").map(|o| format!("{} ", o.value)).unwrap_or_default();
            options.retain(|o| o.key != "print-identifier");
            options.push(option("print-identifier", &format!("{prefix}{table}")));
        }
    }
    Ok(TableSpec { name: table.to_string(), columns, primary_key, options, comment: None, computed: Vec::new() })
}

/// Checks the sink block's options before any I/O, on a table of one column.
fn check_sink(sink: &Block) -> Result<()> {
    let probe = ColumnSpec {
        name: "id".into(),
        data_type: datafusion::arrow::datatypes::DataType::Int64,
        nullable: false,
        type_text: "BIGINT".into(),
        metadata: None,
        comment: None,
    };
    let spec = sink_spec(sink, "probe", vec![probe], vec!["id".into()])?;
    connectors::open_table(&spec).map(|_| ()).map_err(|e| sink.locate(e))
}

/// A sink table and what goes into it.
struct SinkTable {
    spec: TableSpec,
    /// The source tables routed into it, with the rule that did.
    sources: Vec<String>,
    route: Option<Route>,
}

/// The sink tables of the described source tables, by name, checking that tables merged into one
/// have the same columns.
fn route_tables(def: &Definition, described: &[connectors::DescribedTable]) -> Result<BTreeMap<String, SinkTable>> {
    let mut tables: BTreeMap<String, SinkTable> = BTreeMap::new();
    for table in described {
        for (name, route) in route::sink_tables(&def.routes, &table.id) {
            match tables.get_mut(&name) {
                Some(existing) => {
                    let (a, b) = (existing.spec.schema(), table.spec.schema());
                    if a.fields() != b.fields() || existing.spec.primary_key != table.spec.primary_key {
                        let at = route.map(|r| r.at.clone()).unwrap_or_else(|| def.sink.at.clone());
                        return Err(Error::user(format!(
                            "the routes merge `{}` and `{}` into sink table `{name}`, but their columns or primary \
                             keys differ ({} vs {}); route them to different tables",
                            existing.sources[0],
                            table.id,
                            describe_columns(&existing.spec),
                            describe_columns(&table.spec)
                        ))
                        .at(at));
                    }
                    existing.sources.push(table.id.clone());
                }
                None => {
                    let spec = sink_spec(&def.sink, &name, table.spec.columns.clone(), table.spec.primary_key.clone())?;
                    tables.insert(name, SinkTable { spec, sources: vec![table.id.clone()], route: route.cloned() });
                }
            }
        }
    }
    Ok(tables)
}

fn describe_columns(spec: &TableSpec) -> String {
    let columns: Vec<String> = spec.columns.iter().map(|c| format!("{} {}", c.name, c.type_text)).collect();
    format!("({}; key {})", columns.join(", "), spec.primary_key.join(", "))
}

/// Plans the pipeline `def` as a job of `session`'s name and identity: its settings through
/// `session`, the source's tables described and routed, every sink table opened once.
pub async fn plan(def: &Definition, session: &mut Session) -> Result<Job> {
    if let Some(name) = &def.settings.name {
        session.set("pipeline.name", name)?;
    }
    for setting in &def.settings.job {
        match session.set(&setting.key, &setting.value).map_err(|e| e.at(setting.at.clone()))? {
            Outcome::Warning(warning) => tracing::warn!("{warning}"),
            _ => continue,
        }
    }
    let config = session.job_config()?;
    let source = open_source(def)?;
    check_sink(&def.sink)?;

    let described = source.describe().await.map_err(|e| e.at(def.source.at.clone()))?;
    let routed = route_tables(def, &described)?;
    let mut targets: Vec<(String, Arc<dyn ConnectorTable>)> = Vec::with_capacity(routed.len());
    let mut routes: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, (name, table)) in routed.into_iter().enumerate() {
        let at = table.route.as_ref().map(|r| r.at.clone()).unwrap_or_else(|| def.sink.at.clone());
        let context = format!("sink table `{name}` (of source table `{}`)", table.sources.join("`, `"));
        let connector: Arc<dyn ConnectorTable> =
            Arc::from(connectors::open_table(&table.spec).map_err(|e| e.context(&context).at(at.clone()))?);
        // Creates the table if missing, checks its columns if not: before any data moves.
        let mut sink = writer(connector.as_ref())?;
        let opened = sink.open().await;
        sink.close().await.ok();
        opened.map_err(|e| e.context(&context).at(at.clone()))?;
        tracing::info!(sink_table = %name, sources = %table.sources.join(", "), "sink table ready");
        for source in table.sources {
            routes.entry(source).or_default().push(index);
        }
        targets.push((name, connector));
    }

    let batch_size = session.batch_size();
    let identity = source.identity();
    let slot = source.replication_slot();
    let source: Arc<dyn TablesSource> = Arc::from(source);
    let sink_name = def.sink.name.clone().unwrap_or_else(|| format!("{} sink", def.sink.kind));
    let pipeline = PipelineSpec {
        name: format!("pipeline into {sink_name}"),
        sink: format!("{sink_name} ({})", def.sink.kind),
        inputs: vec![InputSpec {
            table: SOURCE.to_string(),
            identity,
            open_source: Arc::new(move || Ok(source.source(batch_size))),
            slot,
            computed: None,
        }],
        open_sink: Arc::new(move || {
            let sinks = targets
                .iter()
                .map(|(name, table)| Ok((name.clone(), writer(table.as_ref())?)))
                .collect::<Result<_>>()?;
            Ok(Box::new(sink::RoutedSink::new(routes.clone(), sinks)) as Box<dyn Sink>)
        }),
        dataflow: Dataflow::Tables,
        sink_table: sink_name,
    };
    Ok(Job { config, pipelines: vec![pipeline] })
}

/// A writer of one sink table: the source's changelog has updates and deletes.
fn writer(table: &dyn ConnectorTable) -> Result<Box<dyn Sink>> {
    table.sink(ChangelogMode::All)?.ok_or_else(|| Error::internal("a pipeline's sink connector cannot write"))
}
