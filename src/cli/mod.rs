//! The command line: `-f job.sql` and `-e "…"` run statements, `-f sync.yaml` a Flink CDC pipeline
//! definition, no arguments opens the REPL.
//! Statements of a job file are all parsed before anything runs; INSERTs are planned as they come
//! and run together at the end as one job (as a statement set), until their sources end or the
//! process is asked to stop (Ctrl-C, SIGTERM), which finishes with a final checkpoint.

mod repl;
pub mod status;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use tokio_util::sync::CancellationToken;

use crate::changelog::{format_rows, ChangeBatch, TableId};
use crate::connectors::options::parse_duration;
use crate::connectors::{PreparedCommit, Sink};
use crate::error::{Error, Result};
use crate::http::HttpServer;
use crate::runtime::{self, Dataflow, Job, PipelineSpec, Resume};
use crate::session::{Outcome, QueryJob, Session};
use crate::sql::parse_script;

#[derive(Debug, clap::Parser)]
#[command(
    name = "cdc-sql",
    version,
    about = "Runs Flink SQL change-data-capture jobs in one small process",
    long_about = "Runs Flink SQL change-data-capture jobs in one small process.\n\n\
        With -f or -e, runs the statements and exits when the job ends: bounded jobs end when their\n\
        sources are done; streaming jobs run until Ctrl-C or SIGTERM, which stop them cleanly with a\n\
        final checkpoint. With 'execution.checkpointing.interval' set, checkpoints are stored in the\n\
        job's state directory ('state.checkpoints.dir', by default ~/.local/state/cdc-sql/checkpoints/<job>-<id>)\n\
        and a restarted job resumes from the newest one; --fresh and --from-checkpoint choose otherwise. Without arguments, opens an interactive SQL shell: statements end with ';'\n\
        and may span lines, Ctrl-C cancels the running query (or the line being typed), Ctrl-D exits,\n\
        history is kept in ~/.cdc-sql_history. Type HELP; in the shell for the statements.",
    after_help = "Option values may use ${NAME} to take environment variables.\n\
        Log level: RUST_LOG (e.g. RUST_LOG=debug).\n\
        While a job runs it serves Flink's REST API, Prometheus /metrics and a dashboard on\n\
        http://127.0.0.1:8081/ (--http-addr, SET 'rest.address' / 'rest.port', --no-http).\n\
        Exit codes: 0 done, 1 a problem in the SQL or its options, 3 an outside system failed, 70 a bug in cdc-sql."
)]
pub struct Args {
    /// Run the statements of this job file.
    #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with = "execute")]
    pub file: Option<PathBuf>,
    /// Run these statements.
    #[arg(short = 'e', long = "execute", value_name = "SQL")]
    pub execute: Option<String>,
    /// Run this file first (e.g. shared CREATE TABLEs), then -f, -e or the shell, as Flink's -i.
    #[arg(short = 'i', long = "init", value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Resume from this checkpoint (a chk-<id>.json file, or a state directory for its newest one)
    /// instead of the newest checkpoint in the job's state directory.
    #[arg(long = "from-checkpoint", value_name = "PATH", conflicts_with = "fresh")]
    pub from_checkpoint: Option<PathBuf>,
    /// Start from scratch: delete the job's stored checkpoints first.
    #[arg(long = "fresh")]
    pub fresh: bool,
    /// Serve the REST API, /metrics and the dashboard here while a job runs (port 0 picks a free
    /// one). Overrides SET 'rest.address' / 'rest.port'. [default: 127.0.0.1:8081]
    #[arg(long = "http-addr", value_name = "HOST:PORT", env = "CDC_SQL_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Serve no HTTP at all (wins over --http-addr and CDC_SQL_HTTP_ADDR).
    #[arg(long = "no-http")]
    pub no_http: bool,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// When stderr is not a terminal, log the job's status this often (on a terminal a status
    /// line is redrawn every second instead).
    #[arg(long = "status-interval", value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub status_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_interval(text: &str) -> std::result::Result<Duration, String> {
    parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a duration; write e.g. '10s' or '1 min'"))
}

/// Where a job serves HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpChoice {
    Off,
    /// Given on the command line (or in CDC_SQL_HTTP_ADDR): wins over the job's SET keys.
    At(String),
    /// From the job's SET 'rest.*' keys, else Flink's default.
    FromJob,
}

/// How jobs of this process run: stopped by signals, resumed as the command line says.
pub struct Runner {
    pub signal: StopSignal,
    pub resume: Resume,
    pub http: HttpChoice,
    pub status_interval: Duration,
}

/// Cancels whatever job currently runs when the process gets Ctrl-C or SIGTERM.
#[derive(Clone, Default)]
pub struct StopSignal {
    current: Arc<Mutex<Option<CancellationToken>>>,
    /// A SIGTERM that came while no job was armed (e.g. while a job was still starting): the
    /// next job stops at once instead of the request being lost.
    terminate_pending: Arc<std::sync::atomic::AtomicBool>,
}

impl StopSignal {
    /// Installs the handlers now, not in a task that runs later: the shell must find them in
    /// place when it takes SIGINT back from its line editor.
    pub fn install() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let failed = |e: std::io::Error| Error::internal(format!("cannot install signal handlers: {e}"));
        let mut interrupt = signal(SignalKind::interrupt()).map_err(failed)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(failed)?;
        let signal = StopSignal::default();
        let handle = signal.clone();
        tokio::spawn(async move {
            loop {
                let terminating = tokio::select! {
                    Some(()) = interrupt.recv() => false,
                    Some(()) = terminate.recv() => true,
                    else => return,
                };
                handle.deliver(terminating);
            }
        });
        Ok(signal)
    }

    /// A signal came: stop the armed job, or remember a SIGTERM for the next one.
    fn deliver(&self, terminating: bool) {
        if let Ok(current) = self.current.lock() {
            match current.as_ref() {
                Some(token) => token.cancel(),
                None if terminating => self.terminate_pending.store(true, std::sync::atomic::Ordering::SeqCst),
                None => {}
            }
        }
    }

    /// A token cancelled by the next signal.
    pub fn arm(&self) -> CancellationToken {
        let token = CancellationToken::new();
        if let Ok(mut current) = self.current.lock() {
            if self.terminate_pending.swap(false, std::sync::atomic::Ordering::SeqCst) {
                token.cancel();
            }
            *current = Some(token.clone());
        }
        token
    }

    pub fn disarm(&self) {
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn read_file(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::user(format!("cannot read job file {}: {e}", path.display())))
}

pub async fn run(args: Args) -> Result<()> {
    let signal = StopSignal::install()?;
    let resume = match (&args.from_checkpoint, args.fresh) {
        (Some(path), _) => Resume::From(path.clone()),
        (None, true) => Resume::Fresh,
        (None, false) => Resume::Latest,
    };
    let http = match (&args.http_addr, args.no_http) {
        (_, true) => HttpChoice::Off,
        (Some(addr), false) => HttpChoice::At(addr.clone()),
        (None, false) => HttpChoice::FromJob,
    };
    let runner = Runner { signal, resume, http, status_interval: args.status_interval };
    let mut session = Session::new();
    if let Some(stem) = args.file.as_ref().and_then(|f| f.file_stem()).and_then(|s| s.to_str()) {
        session.set_default_job_name(stem);
    }
    match (&args.file, &args.execute) {
        (Some(file), _) => {
            let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
            session.set_job_identity(&path.display().to_string());
        }
        (None, Some(sql)) => session.set_job_identity(sql),
        (None, None) => {}
    }
    if let Some(init) = &args.init {
        run_script(&mut session, &init.display().to_string(), &read_file(init)?, &runner).await?;
    }
    if let Some(file) = &args.file {
        let text = read_file(file)?;
        if crate::pipeline::is_pipeline(file, &text) {
            if args.init.is_some() {
                return Err(Error::user(format!(
                    "{} is a pipeline definition: -i runs SQL before a SQL job file and has nothing to prepare for it",
                    file.display()
                )));
            }
            return run_pipeline(&mut session, &file.display().to_string(), &text, &runner).await;
        }
        return run_script(&mut session, &file.display().to_string(), &text, &runner).await;
    }
    if let Some(sql) = &args.execute {
        return run_script(&mut session, "<command line>", sql, &runner).await;
    }
    repl::run(&mut session, &runner).await
}

/// Runs a whole script: everything is parsed first, so a syntax error anywhere stops it before
/// anything runs; INSERT jobs run together once every statement has been executed.
pub async fn run_script(session: &mut Session, source: &str, script: &str, runner: &Runner) -> Result<()> {
    let statements = parse_script(source, script, &env_lookup)?;
    let mut job: Option<Job> = None;
    for statement in &statements {
        match session.execute(statement).await? {
            Outcome::Job(j) => match job.as_mut() {
                Some(existing) => existing.pipelines.extend(j.pipelines),
                None => job = Some(j),
            },
            Outcome::Quit => break,
            other => show(other, runner).await?,
        }
    }
    if session.in_statement_set() {
        let last = statements.last().map(|s| s.location.clone());
        let err = Error::user("BEGIN STATEMENT SET is never closed: add END; after its INSERTs");
        return Err(match last {
            Some(l) => err.at(l),
            None => err,
        });
    }
    if let Some(job) = job {
        run_job(job, runner).await?;
    }
    Ok(())
}

/// Runs a Flink CDC pipeline definition (docs/pipeline.md): all of it is read and checked, and
/// every sink table made ready, before the job starts.
pub async fn run_pipeline(session: &mut Session, source: &str, text: &str, runner: &Runner) -> Result<()> {
    let definition = crate::pipeline::parse(source, text, &env_lookup, &crate::session::job_setting_keys())?;
    let job = crate::pipeline::plan(&definition, session).await?;
    run_job(job, runner).await
}

pub async fn run_job(job: Job, runner: &Runner) -> Result<()> {
    let address = match &runner.http {
        HttpChoice::Off => None,
        HttpChoice::At(addr) => Some((addr.clone(), "--http-addr (or CDC_SQL_HTTP_ADDR)")),
        HttpChoice::FromJob => Some(match &job.config.rest_address {
            Some(addr) => (addr.clone(), "SET 'rest.address' / 'rest.port' or --http-addr"),
            None => (
                format!("{}:{}", crate::http::DEFAULT_ADDRESS, crate::http::DEFAULT_PORT),
                "--http-addr or SET 'rest.port'",
            ),
        }),
    };
    let server = match address {
        Some((addr, option)) => Some(HttpServer::bind(&addr, option).await?),
        None => None,
    };
    let metrics = job.new_metrics();
    announce_slots(&job.pipelines);
    let token = runner.signal.arm();
    let observers = CancellationToken::new();
    let mut serving = None;
    if let Some(server) = server {
        let local = server.local_addr()?;
        tracing::info!(job = %job.config.name, job_id = %metrics.job_id, "REST API, /metrics and dashboard on http://{local}/");
        serving = Some(tokio::spawn(server.serve(metrics.clone(), token.clone(), observers.clone())));
    }
    let status = tokio::spawn(status::run(metrics.clone(), runner.status_interval, observers.clone()));
    let result = runtime::run_with_metrics(job, runner.resume.clone(), token, metrics.clone()).await;
    observers.cancel();
    let _ = status.await;
    // The port is free again once this returns, for the next job of the shell.
    if let Some(serving) = serving {
        let _ = serving.await;
    }
    runner.signal.disarm();
    let reports = result?;
    for r in reports {
        eprintln!("[INFO] {}: {} rows read, {} rows written", r.name, r.rows_read, r.rows_written);
    }
    for pipeline in &metrics.pipelines {
        for c in pipeline.lookups() {
            let count = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "[INFO] {}: lookups of `{}`: {} keys found in the cache, {} looked up, {} queries",
                pipeline.name,
                c.table,
                count(&c.hits),
                count(&c.misses),
                count(&c.queries)
            );
        }
    }
    Ok(())
}

/// Says up front which replication slots the job holds and whether they outlive it.
fn announce_slots(pipelines: &[PipelineSpec]) {
    for pipeline in pipelines {
        for slot in pipeline.slots() {
            eprintln!("[INFO] {} reads {}", pipeline.name, slot.describe());
        }
    }
}

/// Prints what a statement produced: confirmations to stderr, results to stdout.
pub async fn show(outcome: Outcome, runner: &Runner) -> Result<()> {
    match outcome {
        Outcome::Info(m) => m.lines().for_each(|line| eprintln!("[INFO] {line}")),
        Outcome::Warning(m) => m.lines().for_each(|line| eprintln!("[WARNING] {line}")),
        Outcome::Text(t) => println!("{t}"),
        Outcome::Table(batches) => print_table(&batches)?,
        Outcome::Job(job) => run_job(job, runner).await?,
        Outcome::Query(query) => run_query(*query, runner).await?,
        Outcome::Quit => {}
    }
    Ok(())
}

fn print_table(batches: &[RecordBatch]) -> Result<()> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        println!("Empty set");
        return Ok(());
    }
    println!("{}", pretty_format_batches(batches)?);
    println!("{rows} row{} in set", if rows == 1 { "" } else { "s" });
    Ok(())
}

/// Collects or streams the rows of a SELECT.
struct ConsoleSink {
    stream: bool,
    collected: Arc<Mutex<Vec<ChangeBatch>>>,
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        if self.stream {
            let text = format_rows(&batch, "")?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Error::external(format!("cannot write query results: {e}")))?;
        } else if let Ok(mut c) = self.collected.lock() {
            c.push(batch);
        }
        Ok(())
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
    }
}

async fn run_query(query: QueryJob, runner: &Runner) -> Result<()> {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let schema = query.query.output_schema.clone();
    let stream = !query.bounded;
    let sink_rows = collected.clone();
    let pipeline = PipelineSpec {
        name: "SELECT".into(),
        sink: "query result".into(),
        inputs: query.inputs,
        open_sink: Arc::new(
            move || Ok(Box::new(ConsoleSink { stream, collected: sink_rows.clone() }) as Box<dyn Sink>),
        ),
        dataflow: Dataflow::Query { query: Arc::new(query.query), sink_schema: schema },
        sink_table: "query result".into(),
    };
    let pipelines = [pipeline];
    announce_slots(&pipelines);
    let token = runner.signal.arm();
    let result = runtime::run(Job { config: query.config, pipelines: pipelines.into() }, Resume::Fresh, token).await;
    runner.signal.disarm();
    result?;
    if stream {
        return Ok(());
    }
    let batches = collected.lock().map(|c| c.clone()).unwrap_or_default();
    let only_inserts = batches.iter().all(|b| b.all_inserts());
    let tables = batches
        .iter()
        .map(|b| if only_inserts { Ok(b.rows().clone()) } else { b.to_display_batch() })
        .collect::<Result<Vec<_>>>()?;
    print_table(&tables)
}

#[cfg(test)]
mod tests {
    use super::StopSignal;

    /// A SIGTERM that arrives while a job is still starting (before it is armed) stops that job
    /// once it is armed, instead of being lost; a Ctrl-C at an idle shell does not carry over.
    #[test]
    fn a_sigterm_before_the_job_is_armed_stops_it() {
        let signal = StopSignal::default();
        signal.deliver(true);
        assert!(signal.arm().is_cancelled());
        signal.disarm();
        assert!(!signal.arm().is_cancelled(), "remembered once only");
        signal.disarm();
        signal.deliver(false);
        assert!(!signal.arm().is_cancelled());
        signal.deliver(false);
        assert!(signal.current.lock().unwrap().as_ref().unwrap().is_cancelled());
    }
}
