use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cdc_sql::cli::status::LogWriter;
use cdc_sql::cli::{self, Args, LogFormat};
use cdc_sql::ErrorKind;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let default_level = if args.file.is_some() || args.execute.is_some() { "info" } else { "warn" };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // sqlparser logs every statement it parses, secrets included, before any table (and so any
    // secret to mask) is known: never let its debug output through.
    if let Ok(quiet) = "sqlparser=info".parse() {
        filter = filter.add_directive(quiet);
    }
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(LogWriter);
    match args.log_format {
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("[ERROR] cannot start the async runtime: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[ERROR] {}", cdc_sql::secrets::redact(&e.to_string()));
            std::process::ExitCode::from(match e.kind() {
                ErrorKind::User => 1,
                ErrorKind::External => 3,
                ErrorKind::Internal => 70,
            })
        }
    }
}
