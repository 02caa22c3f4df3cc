//! A SQL session: the tables created so far, the `SET` configuration, and the DataFusion context
//! that plans queries. Executing a statement returns what the front end should show or run; jobs
//! themselves are run by [`crate::runtime`].

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::TableReference;
use datafusion::config::ConfigOptions;
use datafusion::execution::context::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use crate::changelog::{ChangelogMode, Retractions};
use crate::connectors::options::parse_duration;
use crate::connectors::{open_table, ConnectorTable, Sink, SourceContext, SourceIdentity};
use crate::error::{Error, Result};
use crate::operators::ComputedColumns;
use crate::plan::{
    check_sink_key, computed_columns, insert_target, plan_insert, reads_a_table, ChangelogTableProvider, CompiledQuery,
    SinkTarget,
};
use crate::runtime::{
    dead_letters, restart, Dataflow, InputSpec, Job, JobConfig, PipelineSpec, RestartStrategy, SinkFactory,
    SourceFactory,
};
use crate::sql::temporal::LookupName;
use crate::sql::types::flink_type_name;
use crate::sql::{Declared, LocatedStatement, Statement, TableSpec};

const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
const CHECKPOINT_MODE: &str = "execution.checkpointing.mode";
const CHECKPOINT_DIR: &str = "state.checkpoints.dir";
const CHECKPOINTS_RETAINED: &str = "state.checkpoints.num-retained";
const PIPELINE_NAME: &str = "pipeline.name";
/// cdc-sql's own: where rows the job cannot process go (see [`crate::runtime::dead_letters`]).
const DEAD_LETTER_PATH: &str = dead_letters::PATH_KEY;
const DEAD_LETTER_TABLE: &str = dead_letters::TABLE_KEY;
/// Flink's REST keys (`rest.bind-*` are the server-side spellings): where the job serves HTTP.
const REST_ADDRESS_KEYS: &[&str] = &["rest.bind-address", "rest.address"];
const REST_PORT_KEYS: &[&str] = &["rest.bind-port", "rest.port"];

const RUNTIME_MODE: &str = "execution.runtime-mode";
/// How long a stateful operator keeps state no change touched; 0 (Flink's default): for ever.
const STATE_TTL: &str = "table.exec.state.ttl";
/// Flink's choice of an upsert materializer before a keyed sink: AUTO, NONE or FORCE.
const UPSERT_MATERIALIZE: &str = "table.exec.sink.upsert-materialize";
/// Flink's session time zone, kept in DataFusion's: the time functions (FROM_UNIXTIME,
/// UNIX_TIMESTAMP, LOCALTIMESTAMP, DATE_FORMAT of a TIMESTAMP_LTZ…) read it from there.
const LOCAL_TIME_ZONE: &str = "table.local-time-zone";
const DATAFUSION_TIME_ZONE: &str = "datafusion.execution.time_zone";

/// Flink settings that cdc-sql accepts so job files run unchanged, although they change nothing
/// here; each with the reason shown to the user.
const NO_EFFECT: &[(&str, &str)] = &[
    ("parallelism.default", "each INSERT runs as one pipeline; snapshot parallelism is a source option"),
    (
        "table.exec.resource.default-parallelism",
        "each INSERT runs as one pipeline; snapshot parallelism is a source option",
    ),
    ("sql-client.execution.result-mode", "query results always print as tables (tableau mode)"),
    ("sql-client.verbose", "errors are always printed in full"),
    (
        "table.exec.sink.not-null-enforcer",
        "a NULL reaching a NOT NULL sink column always stops the job and shows the row (Flink's 'ERROR')",
    ),
    ("table.exec.mini-batch.enabled", "a GROUP BY always works per source batch, as Flink's mini-batch does"),
    ("table.exec.mini-batch.allow-latency", "a GROUP BY always works per source batch, as Flink's mini-batch does"),
    ("table.exec.mini-batch.size", "a GROUP BY always works per source batch ('datafusion.execution.batch_size' rows)"),
    // Checkpoint settings Flink CDC's job files and quickstarts carry.
    (
        "execution.checkpointing.checkpoints-after-tasks-finish.enabled",
        "a pipeline whose bounded source is done takes its final checkpoint as it ends (see docs/checkpoints.md)",
    ),
    (
        "execution.checkpointing.externalized-checkpoint-retention",
        "checkpoint records stay in the state directory after the job stops or fails ('state.checkpoints.num-retained' \
         of them)",
    ),
    (
        "execution.checkpointing.max-concurrent-checkpoints",
        "a pipeline takes its checkpoints one at a time, between two batches",
    ),
];

/// Flink keys whose meaning cdc-sql reads under another (Flink's other) name: ignoring them with
/// a warning would drop a setting the job relies on, so they are refused with the name to use.
const RENAMED: &[(&str, &str)] = &[
    ("execution.checkpointing.dir", CHECKPOINT_DIR),
    ("execution.checkpointing.num-retained", CHECKPOINTS_RETAINED),
    ("restart-strategy", "restart-strategy.type"),
];

/// A key this close (edits, ignoring case) to one cdc-sql reads is taken for a typo of it and
/// refused; farther ones that look like Flink keys are other Flink settings (`pipeline.jars` is
/// three edits from `pipeline.name`).
const TYPO_DISTANCE: usize = 2;

struct CatalogEntry {
    spec: TableSpec,
    table: Arc<dyn ConnectorTable>,
    /// The table as queried, when it declares computed columns.
    computed: Option<Arc<ComputedColumns>>,
}

/// What executing a statement produced.
pub enum Outcome {
    /// A confirmation, like Flink's `[INFO] Execute statement succeeded.`
    Info(String),
    /// A warning the statement raised but which did not stop it.
    Warning(String),
    /// Rows to show as a table.
    Table(Vec<RecordBatch>),
    /// Text to show as is (SHOW CREATE TABLE, HELP).
    Text(String),
    /// INSERTs to run.
    Job(Job),
    /// A SELECT over a changelog table; the front end provides where the rows go.
    Query(Box<QueryJob>),
    Quit,
}

/// A SELECT to run over its sources.
pub struct QueryJob {
    pub inputs: Vec<InputSpec>,
    pub query: CompiledQuery,
    /// Every source is bounded: the query ends.
    pub bounded: bool,
    pub changelog: ChangelogMode,
    pub config: JobConfig,
}

/// The settings that shape a job rather than its queries (checkpoints, restarts, the REST
/// API): a pipeline definition's `pipeline` block takes them too.
pub fn job_setting_keys() -> Vec<&'static str> {
    let mut keys = vec![CHECKPOINT_INTERVAL, CHECKPOINT_DIR, CHECKPOINTS_RETAINED];
    keys.extend(restart::KEYS);
    keys.extend(REST_ADDRESS_KEYS);
    keys.extend(REST_PORT_KEYS);
    keys
}

pub struct Session {
    ctx: SessionContext,
    tables: BTreeMap<String, CatalogEntry>,
    settings: BTreeMap<String, String>,
    /// INSERTs collected between `BEGIN STATEMENT SET;` and `END;`.
    statement_set: Option<Vec<PipelineSpec>>,
    /// The job's name when `pipeline.name` is not set (e.g. the job file's name).
    default_job_name: String,
    /// What identifies this job across runs (its job file's path, or its statements), so the
    /// default state directories of two different jobs never meet.
    job_identity: String,
}

fn session_config() -> SessionConfig {
    SessionConfig::new()
        // Flink identifiers are case-sensitive.
        .set_str("datafusion.sql_parser.enable_ident_normalization", "false")
        // One string type everywhere: STRING columns and CAST(… AS STRING) are both Utf8.
        .set_str("datafusion.sql_parser.map_string_types_to_utf8view", "false")
        // Flink orders NULL below every value: first in ascending order, last in descending order
        // (its planner's NullCollation.LOW), where DataFusion follows PostgreSQL. Decides which row
        // an `ORDER BY ts DESC` deduplication keeps when ts is NULL.
        .set_str("datafusion.sql_parser.default_null_ordering", "nulls_min")
        // Batches of a changelog must keep their order.
        .with_target_partitions(1)
        .set_str("datafusion.optimizer.enable_round_robin_repartition", "false")
}

/// A DataFusion context that plans queries as jobs do (settings, Flink's functions); tests run
/// DataFusion's own batch answers in one too.
pub fn planning_context() -> SessionContext {
    let ctx = SessionContext::new_with_config(session_config());
    for udf in cdc_sql_udfs::all() {
        ctx.register_udf(udf);
    }
    ctx
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Session {
            ctx: planning_context(),
            tables: BTreeMap::new(),
            settings: BTreeMap::new(),
            statement_set: None,
            default_job_name: "cdc-sql-job".into(),
            job_identity: String::new(),
        }
    }

    /// Names jobs that set no `pipeline.name`; it also names their default state directory.
    pub fn set_default_job_name(&mut self, name: &str) {
        self.default_job_name = name.to_string();
    }

    /// Sets what identifies the job across runs: the canonical path of its job file, or the
    /// statements given with `-e`.
    pub fn set_job_identity(&mut self, identity: &str) {
        self.job_identity = identity.to_string();
    }

    fn state(&self) -> SessionState {
        self.ctx.state()
    }

    pub fn job_config(&self) -> Result<JobConfig> {
        let checkpoint_interval = match self.settings.get(CHECKPOINT_INTERVAL) {
            None => None,
            Some(v) => Some(parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                Error::user(format!(
                    "'{CHECKPOINT_INTERVAL}' = '{v}' is not a valid interval; write e.g. '5s' or '1 min'"
                ))
            })?),
        };
        let name = self.settings.get(PIPELINE_NAME).cloned().unwrap_or_else(|| self.default_job_name.clone());
        let state_dir = match (checkpoint_interval, self.settings.get(CHECKPOINT_DIR)) {
            (None, _) => None,
            (Some(_), Some(dir)) => Some(checkpoint_dir(dir)?),
            (Some(_), None) => Some(default_state_dir(&name, &self.job_identity)),
        };
        let retained_checkpoints = match self.settings.get(CHECKPOINTS_RETAINED) {
            None => 1,
            Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::user(format!("'{CHECKPOINTS_RETAINED}' = '{v}' is not valid; expected a positive whole number"))
            })?,
        };
        let restart = RestartStrategy::from_settings(&self.settings, checkpoint_interval.is_some())?;
        Ok(JobConfig {
            name,
            checkpoint_interval,
            state_dir,
            retained_checkpoints,
            restart,
            rest_address: self.rest_address()?,
            dead_letters: self.dead_letter_file()?,
        })
    }

    /// The dead-letter file `SET 'dead-letter.path'` names, refusing a table named as well.
    fn dead_letter_file(&self) -> Result<Option<dead_letters::Target>> {
        let path = self.settings.get(DEAD_LETTER_PATH);
        if path.is_some() && self.settings.contains_key(DEAD_LETTER_TABLE) {
            return Err(Error::user(format!(
                "'{DEAD_LETTER_PATH}' and '{DEAD_LETTER_TABLE}' are both set; a job has one dead-letter destination: \
                 RESET one of them"
            )));
        }
        Ok(path.map(|v| dead_letters::check_path(v)).transpose()?.map(dead_letters::Target::File))
    }

    /// A job of `pipelines` under the session's configuration. The dead-letter table is looked up
    /// now, not at SET: it may be declared after the SET, as long as it is before the INSERT.
    fn job(&self, pipelines: Vec<PipelineSpec>) -> Result<Job> {
        let mut config = self.job_config()?;
        if let Some(name) = self.settings.get(DEAD_LETTER_TABLE) {
            let entry = self.tables.get(name).ok_or_else(|| {
                Error::user(format!(
                    "'{DEAD_LETTER_TABLE}' = '{name}' names no declared table; declare it with CREATE TABLE before \
                     the INSERT (see docs/operations.md, Dead letters)"
                ))
            })?;
            dead_letters::check_table(&entry.spec)?;
            let table = entry.table.clone();
            let mode = ChangelogMode::InsertOnly;
            let _: Box<dyn Sink> =
                table.sink(mode)?.ok_or_else(|| Error::internal("a jdbc table cannot be written"))?;
            let schema = Arc::new(Schema::new(
                entry
                    .spec
                    .columns
                    .iter()
                    .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                    .collect::<Vec<_>>(),
            ));
            config.dead_letters = Some(dead_letters::Target::Table(Arc::new(dead_letters::TableTarget {
                name: name.clone(),
                open: Arc::new(move || table.sink(mode)?.ok_or_else(|| Error::internal("sink stopped being writable"))),
                schema,
            })));
        }
        Ok(Job { config, pipelines })
    }

    fn rest_address(&self) -> Result<Option<String>> {
        let first = |keys: &[&'static str]| keys.iter().find_map(|k| self.settings.get(*k).map(|v| (*k, v.trim())));
        let port = match first(REST_PORT_KEYS) {
            None => None,
            Some((key, v)) => Some(v.parse::<u16>().map_err(|_| {
                Error::user(format!(
                    "'{key}' = '{v}' is not a port; expected a number from 0 to 65535 (0 picks a free one)"
                ))
            })?),
        };
        let address = first(REST_ADDRESS_KEYS).map(|(_, v)| v.to_string());
        if address.is_none() && port.is_none() {
            return Ok(None);
        }
        let host = address.unwrap_or_else(|| crate::http::DEFAULT_ADDRESS.to_string());
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
        Ok(Some(format!("{host}:{}", port.unwrap_or(crate::http::DEFAULT_PORT))))
    }

    /// Whether `BEGIN STATEMENT SET;` is open.
    pub fn in_statement_set(&self) -> bool {
        self.statement_set.is_some()
    }

    /// Executes one statement; errors carry the statement's location.
    pub async fn execute(&mut self, statement: &LocatedStatement) -> Result<Outcome> {
        self.execute_inner(&statement.statement).await.map_err(|e| e.at(statement.location.clone()))
    }

    async fn execute_inner(&mut self, statement: &Statement) -> Result<Outcome> {
        if self.statement_set.is_some() && !matches!(statement, Statement::Insert(_) | Statement::End) {
            return Err(Error::user(
                "only INSERT INTO statements can be added to a statement set; finish it with END;",
            ));
        }
        match statement {
            Statement::CreateTable { spec, if_not_exists } => self.create_table(spec, *if_not_exists),
            Statement::DropTable { name, if_exists } => self.drop_table(name, *if_exists).await,
            Statement::Set { entry: None } => Ok(Outcome::Table(vec![key_value_batch(&self.settings)?])),
            Statement::Set { entry: Some((key, value)) } => self.set(key, value),
            Statement::Reset { key } => self.reset(key.as_deref()),
            Statement::ShowTables => {
                let names = StringArray::from_iter_values(self.tables.keys());
                let schema = Arc::new(Schema::new(vec![Field::new("table name", DataType::Utf8, false)]));
                Ok(Outcome::Table(vec![RecordBatch::try_new(schema, vec![Arc::new(names)])?]))
            }
            Statement::Describe { name } => {
                let entry = self.entry(name)?;
                Ok(Outcome::Table(vec![describe(&entry.spec, entry.computed.as_deref())?]))
            }
            Statement::ShowCreateTable { name } => Ok(Outcome::Text(self.entry(name)?.spec.show_create())),
            Statement::Insert(stmt) => {
                let ast::Statement::Insert(insert) = stmt.as_ref() else {
                    return Err(Error::internal("INSERT statement without an insert"));
                };
                let taken: Vec<String> =
                    self.statement_set.iter().flatten().map(|p: &PipelineSpec| p.name.clone()).collect();
                let pipeline = self.plan_pipeline(insert, &taken).await?;
                if let Some(set) = self.statement_set.as_mut() {
                    set.push(pipeline);
                    return Ok(Outcome::Info("Add SQL update statement to the statement set.".into()));
                }
                Ok(Outcome::Job(self.job(vec![pipeline])?))
            }
            Statement::StatementSet(inserts) => {
                let mut pipelines = Vec::with_capacity(inserts.len());
                for insert in inserts {
                    let Statement::Insert(stmt) = &insert.statement else {
                        return Err(Error::internal("statement set holds a non-INSERT"));
                    };
                    let ast::Statement::Insert(i) = stmt.as_ref() else {
                        return Err(Error::internal("INSERT statement without an insert"));
                    };
                    let taken: Vec<String> = pipelines.iter().map(|p: &PipelineSpec| p.name.clone()).collect();
                    pipelines.push(self.plan_pipeline(i, &taken).await.map_err(|e| e.at(insert.location.clone()))?);
                }
                Ok(Outcome::Job(self.job(pipelines)?))
            }
            Statement::BeginStatementSet => {
                self.statement_set = Some(Vec::new());
                Ok(Outcome::Info("Begin a statement set.".into()))
            }
            Statement::End => {
                let Some(pipelines) = self.statement_set.take() else {
                    return Err(Error::user("END without BEGIN STATEMENT SET"));
                };
                if pipelines.is_empty() {
                    return Ok(Outcome::Info("Empty statement set: nothing to run.".into()));
                }
                Ok(Outcome::Job(self.job(pipelines)?))
            }
            Statement::Query(stmt) => self.query(stmt).await,
            Statement::Help => Ok(Outcome::Text(help())),
            Statement::Quit => Ok(Outcome::Quit),
        }
    }

    fn entry(&self, name: &str) -> Result<&CatalogEntry> {
        self.tables.get(name).ok_or_else(|| self.unknown_table(name))
    }

    fn unknown_table(&self, name: &str) -> Error {
        let known: Vec<&str> = self.tables.keys().map(|k| k.as_str()).collect();
        let hint = if known.is_empty() {
            "no tables are defined yet".to_string()
        } else {
            format!("tables: {}", known.join(", "))
        };
        let case = match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(same) => format!(". Identifiers are case-sensitive, as in Flink: write `{same}`"),
            None => String::new(),
        };
        Error::user(format!("table `{name}` does not exist ({hint}){case}"))
    }

    /// DataFusion names a table a query reads but no CREATE TABLE declared by its full path
    /// (`table 'datafusion.public.orders' not found`): say it as for any other unknown table.
    fn explain_unknown_table(&self, e: Error) -> Error {
        let Error::User(message) = &e else { return e };
        let name = message.strip_prefix("table 'datafusion.public.").and_then(|rest| rest.strip_suffix("' not found"));
        match name {
            Some(name) => self.unknown_table(name),
            None => e,
        }
    }

    /// Makes the lookup sides a statement names (`dim FOR SYSTEM_TIME AS OF s.proc`, see
    /// `sql::temporal`) known to the planner, once the table can be looked up and the time
    /// attribute is a processing-time column of a table the statement reads.
    fn register_lookups(&self, statement: &impl ast::Visit) -> Result<()> {
        let mut relations = Relations(Vec::new());
        let _ = statement.visit(&mut relations);
        for (name, _) in &relations.0 {
            let Some(lookup) = LookupName::parse(name) else { continue };
            let entry = self.entry(&lookup.table)?;
            let connector = entry.spec.connector().unwrap_or("?");
            let Some(table) = entry.table.lookup() else {
                return Err(Error::user(format!(
                    "table `{}` (connector '{connector}') cannot be looked up: FOR SYSTEM_TIME AS OF needs a table \
                     whose connector finds rows by key ('jdbc')",
                    lookup.table
                )));
            };
            if !entry.spec.computed.is_empty() {
                return Err(Error::user(format!(
                    "table `{}` declares computed columns, which a looked-up table cannot have: compute them in the \
                     query instead",
                    lookup.table
                )));
            }
            self.check_time_attribute(&lookup, &relations.0)?;
            let schema = entry.spec.schema();
            let primary_key = entry.spec.primary_key.iter().filter_map(|k| schema.index_of(k).ok()).collect();
            let reference = TableReference::bare(name.as_str());
            self.ctx.deregister_table(reference.clone())?;
            let side = ChangelogTableProvider::lookup_side(&lookup.table, schema, primary_key, table);
            self.ctx.register_table(reference, side)?;
        }
        Ok(())
    }

    /// Fails unless the column `FOR SYSTEM_TIME AS OF` names is a processing-time column
    /// (`proc AS PROCTIME()`) of a table read by the statement (`relations`: names and aliases).
    fn check_time_attribute(&self, lookup: &LookupName, relations: &[(String, Option<String>)]) -> Result<()> {
        let (qualifier, column) = match lookup.time.as_slice() {
            [column] => (None, column),
            [qualifier, column] => (Some(qualifier), column),
            _ => (None, &lookup.time[lookup.time.len() - 1]),
        };
        let proctime = relations.iter().filter(|(name, alias)| {
            LookupName::parse(name).is_none()
                && qualifier.is_none_or(|q| alias.as_ref().unwrap_or(name) == q)
                && self.tables.get(name).is_some_and(|e| {
                    e.spec.computed.iter().any(|c| c.name == *column && crate::sql::temporal::is_proctime(&c.expr))
                })
        });
        if proctime.count() > 0 {
            return Ok(());
        }
        Err(Error::user(format!(
            "FOR SYSTEM_TIME AS OF {}: `{column}` is not a processing-time column of the table joined from; declare \
             `{column} AS PROCTIME()` in its CREATE TABLE. Lookup joins are processing-time joins: event-time temporal \
             joins (AS OF a time column of the row, against a versioned table) are not supported",
            lookup.time.join(".")
        )))
    }

    fn create_table(&mut self, spec: &TableSpec, if_not_exists: bool) -> Result<Outcome> {
        if self.tables.contains_key(&spec.name) {
            if if_not_exists {
                return Ok(Outcome::Info("Execute statement succeeded.".into()));
            }
            return Err(Error::user(format!(
                "table `{}` already exists; DROP TABLE it first or use CREATE TABLE IF NOT EXISTS",
                spec.name
            )));
        }
        // Before anything can fail: an error must not quote a secret of this table either.
        crate::secrets::register(
            spec.options.iter().filter(|o| crate::sql::table::is_secret_key(&o.key)).map(|o| o.value.clone()),
        );
        let table: Arc<dyn ConnectorTable> = Arc::from(open_table(spec)?);
        let computed = computed_columns(&self.state(), spec)?;
        let schema = computed.as_ref().map_or_else(|| spec.schema(), |c| c.schema.clone());
        let primary_key =
            spec.primary_key.iter().map(|k| schema.index_of(k).ok()).collect::<Option<Vec<usize>>>().ok_or_else(
                || Error::internal(format!("table `{}` has a PRIMARY KEY column it does not have", spec.name)),
            )?;
        self.ctx.register_table(
            TableReference::bare(spec.name.as_str()),
            ChangelogTableProvider::new(&spec.name, schema, primary_key),
        )?;
        self.tables.insert(spec.name.clone(), CatalogEntry { spec: spec.clone(), table, computed });
        Ok(Outcome::Info("Execute statement succeeded.".into()))
    }

    async fn drop_table(&mut self, name: &str, if_exists: bool) -> Result<Outcome> {
        let Some(entry) = self.tables.remove(name) else {
            if if_exists {
                return Ok(Outcome::Info("Execute statement succeeded.".into()));
            }
            return Err(self.unknown_table(name));
        };
        self.ctx.deregister_table(TableReference::bare(name))?;
        // The table is gone either way; what it held on its server is reported, not a failure.
        let mut lines = vec!["Execute statement succeeded.".to_string()];
        match entry.table.on_drop().await {
            Ok(done) => lines.extend(done),
            Err(e) => return Ok(Outcome::Warning(format!("table `{name}` dropped, but: {e}"))),
        }
        Ok(Outcome::Info(lines.join("\n")))
    }

    /// The session ends (the shell is left): every table is released as DROP TABLE would.
    /// Returns what happened, line by line; a failure to release one table does not stop the
    /// others.
    pub async fn end(&mut self) -> Vec<std::result::Result<String, String>> {
        let mut lines = Vec::new();
        for (name, entry) in std::mem::take(&mut self.tables) {
            match entry.table.on_drop().await {
                Ok(done) => lines.extend(done.into_iter().map(Ok)),
                Err(e) => lines.push(Err(format!("table `{name}`: {e}"))),
            }
        }
        lines
    }

    /// `SET 'key' = 'value'`; also a pipeline definition's job settings.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<Outcome> {
        if key.starts_with("datafusion.") {
            self.ctx.state_ref().write().config_mut().options_mut().set(key, value)?;
        } else if key == CHECKPOINT_INTERVAL && parse_duration(value).is_none_or(|d| d.is_zero()) {
            return Err(Error::user(format!(
                "'{key}' = '{value}' is not a valid interval; write e.g. '5s' or '1 min'"
            )));
        } else if key == UPSERT_MATERIALIZE
            && !["AUTO", "NONE", "FORCE"].contains(&value.trim().to_ascii_uppercase().as_str())
        {
            return Err(Error::user(format!("'{key}' = '{value}' is not valid; expected AUTO, NONE or FORCE")));
        } else if key == STATE_TTL && parse_duration(value).is_none() {
            return Err(Error::user(format!(
                "'{key}' = '{value}' is not a valid duration; write e.g. '1 h', '36 h' or '0' (no expiry)"
            )));
        } else if key == LOCAL_TIME_ZONE {
            let zone = cdc_sql_udfs::session_time_zone(value).map_err(|e| Error::user(format!("'{key}': {e}")))?;
            self.ctx.state_ref().write().config_mut().options_mut().set(DATAFUSION_TIME_ZONE, &zone)?;
        } else if key == CHECKPOINT_MODE {
            let warning = checkpointing_mode_warning(value)?;
            self.settings.insert(key.to_string(), value.to_string());
            return Ok(match warning {
                Some(w) => Outcome::Warning(w),
                None => Outcome::Info("Execute statement succeeded.".into()),
            });
        } else if key == RUNTIME_MODE {
            let warning = runtime_mode_warning(value)?;
            self.settings.insert(key.to_string(), value.to_string());
            return Ok(Outcome::Warning(warning));
        } else if let Some((_, why)) = NO_EFFECT.iter().find(|(k, _)| *k == key) {
            self.settings.insert(key.to_string(), value.to_string());
            return Ok(Outcome::Warning(format!("'{key}' has no effect in cdc-sql: {why}")));
        } else if let Some((_, ours)) = RENAMED.iter().find(|(k, _)| *k == key) {
            return Err(Error::user(format!(
                "'{key}' is not read by cdc-sql, which takes this setting from '{ours}' (Flink's other name for it); write SET '{ours}' = '{value}'"
            )));
        } else if ![
            CHECKPOINT_INTERVAL,
            PIPELINE_NAME,
            CHECKPOINT_DIR,
            CHECKPOINTS_RETAINED,
            LOCAL_TIME_ZONE,
            STATE_TTL,
            DEAD_LETTER_PATH,
            DEAD_LETTER_TABLE,
            UPSERT_MATERIALIZE,
        ]
        .contains(&key)
            && !restart::KEYS.contains(&key)
            && !REST_ADDRESS_KEYS.contains(&key)
            && !REST_PORT_KEYS.contains(&key)
        {
            let mut known: Vec<&str> = vec![
                LOCAL_TIME_ZONE,
                CHECKPOINT_INTERVAL,
                CHECKPOINT_MODE,
                CHECKPOINT_DIR,
                CHECKPOINTS_RETAINED,
                PIPELINE_NAME,
                RUNTIME_MODE,
                STATE_TTL,
                DEAD_LETTER_PATH,
                DEAD_LETTER_TABLE,
                UPSERT_MATERIALIZE,
            ];
            known.extend(restart::KEYS);
            known.extend(REST_ADDRESS_KEYS);
            known.extend(REST_PORT_KEYS);
            known.extend(NO_EFFECT.iter().map(|(k, _)| *k));
            let lowercase = key.to_ascii_lowercase();
            // A typo of a renamed key is pointed at the name cdc-sql reads.
            let nearest = known
                .iter()
                .map(|k| (*k, *k))
                .chain(RENAMED.iter().copied())
                .map(|(k, suggested)| (strsim::levenshtein(k, &lowercase), suggested))
                .min();
            // Another Flink setting (state backend, memory, timeouts…): it is named so the user
            // sees it is not honoured, and the job file still runs. An ignored credential (an S3
            // secret key) has no reason to be shown back by `SET;`.
            if nearest.is_none_or(|(d, _)| d > TYPO_DISTANCE) && looks_like_a_flink_key(key) {
                let shown = if crate::sql::table::is_secret_key(key) { crate::sql::table::MASK } else { value };
                self.settings.insert(key.to_string(), shown.to_string());
                return Ok(Outcome::Warning(format!("'{key}' has no meaning in cdc-sql, ignored")));
            }
            let hint =
                nearest.filter(|(d, _)| *d <= 4).map(|(_, k)| format!("did you mean '{k}'? ")).unwrap_or_default();
            return Err(Error::user(format!(
                "unknown configuration key '{key}'; {hint}cdc-sql understands {} and every 'datafusion.*' key",
                known.join(", ")
            )));
        }
        self.settings.insert(key.to_string(), value.to_string());
        // Surface a bad companion value (a restart delay, a directory) now rather than at INSERT.
        if let Err(e) = self.job_config() {
            self.settings.remove(key);
            return Err(e);
        }
        Ok(Outcome::Info("Execute statement succeeded.".into()))
    }

    fn reset(&mut self, key: Option<&str>) -> Result<Outcome> {
        let keys: Vec<String> = match key {
            Some(k) => vec![k.to_string()],
            None => self.settings.keys().cloned().collect(),
        };
        let defaults = ConfigOptions::new();
        for k in keys {
            let k = if k == LOCAL_TIME_ZONE {
                self.settings.remove(&k);
                DATAFUSION_TIME_ZONE.to_string()
            } else {
                k
            };
            if k == DATAFUSION_TIME_ZONE {
                // Unset (UTC), which a string value cannot say.
                self.ctx.state_ref().write().config_mut().options_mut().execution.time_zone = None;
            } else if k.starts_with("datafusion.") {
                let default = defaults.entries().into_iter().find(|e| e.key == k).and_then(|e| e.value);
                let session_default =
                    session_config().options().entries().into_iter().find(|e| e.key == k).and_then(|e| e.value);
                if let Some(v) = session_default.or(default) {
                    self.ctx.state_ref().write().config_mut().options_mut().set(&k, &v)?;
                }
            }
            self.settings.remove(&k);
        }
        Ok(Outcome::Info("Execute statement succeeded.".into()))
    }

    /// `table.exec.state.ttl`, validated when it was set; `None` when unset or 0.
    fn state_ttl(&self) -> Option<std::time::Duration> {
        self.settings.get(STATE_TTL).and_then(|v| parse_duration(v)).filter(|d| !d.is_zero())
    }

    /// Preferred rows per batch (`datafusion.execution.batch_size`).
    pub(crate) fn batch_size(&self) -> usize {
        self.state().config().batch_size()
    }

    fn source_context(&self) -> SourceContext {
        SourceContext { batch_size: self.batch_size() }
    }

    /// How to read the table, and what planning needs to know of its source.
    fn source_factory(&self, table: &str) -> Result<SourceInfo> {
        let entry = self.entry(table)?;
        let ctx = self.source_context();
        let probe = entry.table.source(&ctx)?.ok_or_else(|| {
            Error::user(format!(
                "table `{table}` (connector '{}') cannot be read: the connector only writes",
                entry.spec.connector().unwrap_or("?")
            ))
        })?;
        let bounded = probe.is_bounded();
        let connector_table = entry.table.clone();
        let name = table.to_string();
        let factory: SourceFactory = Arc::new(move || {
            connector_table
                .source(&ctx)?
                .ok_or_else(|| Error::internal(format!("table `{name}` stopped being readable")))
        });
        // A connector that does not say what its positions depend on: they are positions in
        // this table of this connector.
        let identity = entry.table.source_identity().unwrap_or_else(|| SourceIdentity {
            connector: entry.spec.connector().unwrap_or("?").to_string(),
            location: "-".into(),
            tables: table.to_string(),
            startup_mode: "-".into(),
        });
        Ok(SourceInfo {
            input: InputSpec {
                table: table.to_string(),
                identity,
                open_source: factory,
                slot: entry.table.replication_slot(),
                computed: entry.computed.clone(),
            },
            changelog: entry.table.source_changelog_mode(),
            retractions: entry.table.source_retractions(),
            bounded,
        })
    }

    /// The inputs of a compiled query, with what their sources tell the query; the changelog of
    /// the query's result (see [`CompiledQuery::changelog`]).
    fn query_inputs(&self, query: &mut CompiledQuery) -> Result<(Vec<InputSpec>, ChangelogMode, bool)> {
        let mut inputs = Vec::with_capacity(query.inputs.len());
        let mut modes = Vec::with_capacity(query.inputs.len());
        let mut bounded = true;
        for (i, table) in query.inputs.clone().iter().enumerate() {
            let source = self.source_factory(table)?;
            query.set_retractions(i, source.retractions);
            modes.push(source.changelog);
            bounded &= source.bounded;
            inputs.push(source.input);
        }
        Ok((inputs, query.changelog(&modes)?, bounded))
    }

    /// Plans one INSERT; `taken` are the names of the pipelines planned before it in the same job.
    async fn plan_pipeline(&self, insert: &ast::Insert, taken: &[String]) -> Result<PipelineSpec> {
        let sink_name = insert_target(insert)?;
        let target = self.entry(&sink_name)?;
        self.register_lookups(insert)?;
        let mut planned = plan_insert(&self.state(), insert, SinkTarget { spec: &target.spec })
            .await
            .map_err(|e| self.explain_unknown_table(e))?;
        planned.query.state_ttl = self.state_ttl();
        if let Some(ttl) = planned.query.state_ttl {
            for spec in planned.query.stateful().iter().filter(|s| s.keeps_state() && !s.expires()) {
                tracing::warn!(
                    "'{STATE_TTL}' = {ttl:?} applies to GROUP BY state only: the state of the {} in the INSERT INTO \
                     {sink_name} does not expire",
                    spec.construct()
                );
            }
        }
        let (mut inputs, mut mode, _) = self.query_inputs(&mut planned.query)?;
        if !mode.is_insert_only() && !target.spec.primary_key.is_empty() {
            let setting = self.settings.get(UPSERT_MATERIALIZE).map(|v| v.trim().to_ascii_uppercase());
            let materialize = match setting.as_deref().unwrap_or("AUTO") {
                // A query without state passes rows on with their source key (and its retractions
                // may hold only the key, which no kept row would match).
                "FORCE" => planned.query.is_stateful(),
                // Flink's NONE: the user vouches that the keys fit.
                "NONE" => {
                    if let Err(e) = check_sink_key(&target.spec, &planned.query) {
                        tracing::warn!("'{UPSERT_MATERIALIZE}' = 'NONE' into {sink_name}: {e}");
                    }
                    false
                }
                _ => check_sink_key(&target.spec, &planned.query).is_err(),
            };
            if materialize {
                planned.query.materialize_upserts(&target.spec)?;
                tracing::info!(
                    "INSERT INTO {sink_name}: an upsert materializer keeps the result's rows per sink PRIMARY KEY ({})",
                    target.spec.primary_key.join(", ")
                );
                (inputs, mode, _) = self.query_inputs(&mut planned.query)?;
            }
        }
        let sink_connector = target.spec.connector().unwrap_or("?").to_string();
        // Validate the sink against this changelog now, at planning, not when the job starts.
        let _: Box<dyn Sink> = target.table.sink(mode)?.ok_or_else(|| {
            Error::user(format!(
                "table `{sink_name}` (connector '{sink_connector}') cannot be written: the connector only reads"
            ))
        })?;
        let checkpointing = self.settings.contains_key(CHECKPOINT_INTERVAL);
        require_checkpoints_for_sink(&sink_name, &sink_connector, target.table.as_ref(), checkpointing)?;
        let sink_table = target.table.clone();
        let open_sink: SinkFactory =
            Arc::new(move || sink_table.sink(mode)?.ok_or_else(|| Error::internal("sink stopped being writable")));
        Ok(PipelineSpec {
            name: pipeline_name(&sink_name, taken),
            sink: format!("{sink_name} ({sink_connector})"),
            inputs,
            open_sink,
            dataflow: Dataflow::Query { query: Arc::new(planned.query), sink_schema: planned.sink_schema },
            sink_table: sink_name,
        })
    }

    async fn query(&self, stmt: &ast::Statement) -> Result<Outcome> {
        self.register_lookups(stmt)?;
        let state = self.state();
        let plan = state
            .statement_to_plan(DFStatement::Statement(Box::new(stmt.clone())))
            .await
            .map_err(|e| self.explain_unknown_table(e.into()))?;
        if !reads_a_table(&plan) {
            let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
            return Ok(Outcome::Table(batches));
        }
        let plan = state.optimize(&plan)?;
        let mut query = CompiledQuery::compile(&state, &plan)?;
        query.state_ttl = self.state_ttl();
        let (inputs, changelog, bounded) = self.query_inputs(&mut query)?;
        // A preview stores nothing (dead letters neither: a row it cannot process stops it) and
        // never restarts.
        let config = JobConfig {
            state_dir: None,
            checkpoint_interval: None,
            restart: RestartStrategy::None,
            dead_letters: None,
            ..self.job_config()?
        };
        Ok(Outcome::Query(Box::new(QueryJob { inputs, query, bounded, changelog, config })))
    }
}

/// The tables a statement reads, by name (the last part) and alias.
struct Relations(Vec<(String, Option<String>)>);

impl ast::Visitor for Relations {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &ast::TableFactor) -> std::ops::ControlFlow<()> {
        if let ast::TableFactor::Table { name, alias, .. } = factor {
            let last =
                name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_else(|| name.to_string());
            self.0.push((last, alias.as_ref().map(|a| a.name.value.clone())));
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// What [`Session::source_factory`] finds out about a table's source.
struct SourceInfo {
    input: InputSpec,
    changelog: ChangelogMode,
    retractions: Retractions,
    bounded: bool,
}

/// The pipeline's identity in its job: `INSERT INTO sink`, numbered from the second INSERT into
/// the same sink on, so that the names stay those of earlier releases where they were unique.
fn pipeline_name(sink: &str, taken: &[String]) -> String {
    let base = format!("INSERT INTO {sink}");
    if !taken.contains(&base) {
        return base;
    }
    (2..).map(|n| format!("{base} ({n})")).find(|name| !taken.contains(name)).unwrap_or(base)
}

/// `state.checkpoints.dir` as Flink writes it: a path or a `file://` URI.
fn checkpoint_dir(value: &str) -> Result<std::path::PathBuf> {
    let v = value.trim();
    if let Some(path) = v.strip_prefix("file://") {
        return Ok(path.into());
    }
    if v.contains("://") {
        return Err(Error::user(format!(
            "'{CHECKPOINT_DIR}' = '{value}': only local directories are supported (a path or file:///…)"
        )));
    }
    Ok(v.into())
}

/// `$XDG_STATE_HOME/cdc-sql/checkpoints/<job>` (or `~/.local/state/…`), one directory per job.
fn default_state_dir(job: &str, identity: &str) -> std::path::PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = job.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    // FNV-1a: stable across releases, unlike the standard library's hasher.
    let hash = identity.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    base.join("cdc-sql").join("checkpoints").join(format!("{safe}-{:08x}", hash as u32))
}

fn key_value_batch(entries: &BTreeMap<String, String>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]));
    let keys = StringArray::from_iter_values(entries.keys());
    let values = StringArray::from_iter_values(entries.values());
    Ok(RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(values)])?)
}

/// `DESCRIBE`: one row per declared column; a computed column's type is as planned (`queried`).
fn describe(spec: &TableSpec, queried: Option<&ComputedColumns>) -> Result<RecordBatch> {
    let declared = spec.declared();
    let text = |f: &dyn Fn(usize, Declared) -> String| {
        StringArray::from_iter_values(declared.iter().enumerate().map(|(i, d)| f(i, *d)))
    };
    let names = text(&|_, d| match d {
        Declared::Column(c) => c.name.clone(),
        Declared::Computed(c) => c.name.clone(),
    });
    let types = text(&|i, d| match (d, queried) {
        (Declared::Column(c), _) => c.type_text.clone(),
        (Declared::Computed(_), Some(q)) => flink_type_name(q.schema.field(i).data_type()),
        (Declared::Computed(_), None) => String::new(),
    });
    let nulls = text(&|i, d| {
        let nullable = match (d, queried) {
            (Declared::Column(c), _) => c.nullable,
            (Declared::Computed(_), Some(q)) => q.schema.field(i).is_nullable(),
            (Declared::Computed(_), None) => true,
        };
        if nullable { "TRUE" } else { "FALSE" }.to_string()
    });
    let keys = text(&|_, d| match d {
        Declared::Column(c) if spec.primary_key.contains(&c.name) => format!("PRI({})", spec.primary_key.join(", ")),
        _ => String::new(),
    });
    let extras = text(&|_, d| match d {
        Declared::Column(c) => match &c.metadata {
            Some(m) => format!("METADATA FROM '{}'{}", m.key, if m.is_virtual { " VIRTUAL" } else { "" }),
            None => String::new(),
        },
        Declared::Computed(c) => format!("AS {}", c.expr),
    });
    let comments = text(&|_, d| match d {
        Declared::Column(c) => c.comment.clone().unwrap_or_default(),
        Declared::Computed(c) => c.comment.clone().unwrap_or_default(),
    });
    let schema = Arc::new(Schema::new(
        ["name", "type", "null", "key", "extras", "comment"]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(names), Arc::new(types), Arc::new(nulls), Arc::new(keys), Arc::new(extras), Arc::new(comments)],
    )?)
}

const STATEMENTS_HELP: &str = "\
Statements (end each with ';'):
  CREATE TABLE name (col TYPE, …, PRIMARY KEY (col) NOT ENFORCED) WITH ('connector' = '…', …)
  DROP TABLE [IF EXISTS] name
  SHOW TABLES | DESCRIBE name | SHOW CREATE TABLE name
  SET; | SET 'key' = 'value' | RESET; | RESET 'key'
  INSERT INTO sink SELECT … FROM source [WHERE …]
  EXECUTE STATEMENT SET BEGIN INSERT …; INSERT …; END
  SELECT … FROM source [WHERE …] [LIMIT n]   (Ctrl-C stops a streaming query)
  HELP | QUIT";

/// What `HELP;` shows: the statements, and the connectors as registered.
fn help() -> String {
    format!("{STATEMENTS_HELP}\nConnectors: {}.", crate::connectors::connector_names().join(", "))
}

/// `execution.checkpointing.mode`: Flink's choice between aligned (exactly-once state) and
/// unaligned-at-least-once barriers. Checkpoints here are always aligned, so `EXACTLY_ONCE` is
/// what happens anyway and `AT_LEAST_ONCE` is accepted with a warning that it weakens nothing;
/// what a sink delivers again after a restart is the sink's own guarantee either way.
fn checkpointing_mode_warning(value: &str) -> Result<Option<String>> {
    if value.trim().eq_ignore_ascii_case("EXACTLY_ONCE") {
        Ok(None)
    } else if value.trim().eq_ignore_ascii_case("AT_LEAST_ONCE") {
        Ok(Some(format!(
            "'{CHECKPOINT_MODE}' = '{value}' has no effect in cdc-sql: checkpoints are always aligned (exactly-once); what a restart delivers again depends on the sink (see docs/checkpoints.md)"
        )))
    } else {
        Err(Error::user(format!(
            "'{CHECKPOINT_MODE}' = '{value}' is not valid; expected 'EXACTLY_ONCE' or 'AT_LEAST_ONCE'"
        )))
    }
}

/// `execution.runtime-mode`: every job runs as a stream here (a bounded source ends it). Flink's
/// batch execution emits final results only, which a changelog job does not, so asking for it
/// (or for `automatic`, batch whenever all sources are bounded) is refused rather than ignored.
fn runtime_mode_warning(value: &str) -> Result<String> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("streaming") {
        Ok(format!("'{RUNTIME_MODE}' has no effect in cdc-sql: every job runs in streaming mode"))
    } else if v.eq_ignore_ascii_case("batch") || v.eq_ignore_ascii_case("automatic") {
        Err(Error::user(format!(
            "'{RUNTIME_MODE}' = '{value}' is not supported: cdc-sql runs every job in streaming mode, emitting changes as they happen (a bounded source such as jdbc or 'scan.startup.mode' = 'snapshot' still ends the job); remove the SET or write 'streaming'"
        )))
    } else {
        Err(Error::user(format!(
            "'{RUNTIME_MODE}' = '{value}' is not valid; expected 'streaming' (the only mode cdc-sql runs), 'batch' or 'automatic'"
        )))
    }
}

/// Whether `key` is spelled like a Flink configuration key (`state.backend.type`,
/// `taskmanager.numberOfTaskSlots`): dot-separated words of letters, digits, `-` and `_`.
fn looks_like_a_flink_key(key: &str) -> bool {
    key.contains('.')
        && key.split('.').all(|word| {
            word.starts_with(|c: char| c.is_ascii_alphabetic())
                && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Refuses a sink that writes only at checkpoints in a job that takes none: it would show
/// nothing before the job ends and hold every row in memory until then.
fn require_checkpoints_for_sink(
    sink: &str,
    connector: &str,
    table: &dyn ConnectorTable,
    checkpointing: bool,
) -> Result<()> {
    match table.sink_needs_checkpoints() {
        Some(why) if !checkpointing => Err(Error::user(format!(
            "table `{sink}` (connector '{connector}') writes only at checkpoints, and this job takes none: set '{CHECKPOINT_INTERVAL}' before the INSERT (e.g. to '10s'). {why}"
        ))),
        _ => Ok(()),
    }
}
