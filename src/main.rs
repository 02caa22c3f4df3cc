use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cdc_sql::cli::{self, Args};
use cdc_sql::ErrorKind;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let default_level = if args.file.is_some() || args.execute.is_some() { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
            eprintln!("[ERROR] {e}");
            std::process::ExitCode::from(match e.kind() {
                ErrorKind::User => 1,
                ErrorKind::External => 3,
                ErrorKind::Internal => 70,
            })
        }
    }
}
