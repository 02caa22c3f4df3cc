//! The interactive shell. On a terminal it edits lines with history (rustyline); with piped input
//! it reads lines as they come, so the shell can be driven by another program. A statement runs as
//! soon as its `;` arrives; errors are shown and the shell goes on.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::{env_lookup, show, Runner};
use crate::error::Result;
use crate::session::{Outcome, Session};
use crate::sql::parse_statement;
use crate::sql::split::split;

const PROMPT: &str = "cdc-sql> ";
const CONTINUATION: &str = "      -> ";

enum Line {
    Text(String),
    /// Ctrl-C while typing: drop the unfinished statement.
    Interrupted,
    End,
}

trait LineSource {
    fn read(&mut self, prompt: &str) -> Line;
    fn remember(&mut self, _statement: &str) {}
}

struct Terminal {
    editor: DefaultEditor,
    history: Option<PathBuf>,
}

impl LineSource for Terminal {
    fn read(&mut self, prompt: &str) -> Line {
        match tokio::task::block_in_place(|| self.editor.readline(prompt)) {
            Ok(line) => Line::Text(line),
            Err(ReadlineError::Interrupted) => Line::Interrupted,
            Err(_) => Line::End,
        }
    }

    fn remember(&mut self, statement: &str) {
        let _ = self.editor.add_history_entry(statement);
        if let Some(path) = &self.history {
            let _ = self.editor.save_history(path);
        }
    }
}

struct Piped {
    stdin: std::io::StdinLock<'static>,
}

impl LineSource for Piped {
    fn read(&mut self, _prompt: &str) -> Line {
        let mut line = String::new();
        match tokio::task::block_in_place(|| self.stdin.read_line(&mut line)) {
            Ok(0) | Err(_) => Line::End,
            Ok(_) => Line::Text(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

/// Runs `open` (which creates the line editor) and then gives SIGINT back to the handler that had
/// it. rustyline takes SIGINT for as long as its editor lives, but it only needs it while it
/// reads a line, and then the terminal is in raw mode where Ctrl-C arrives as a key anyway; while
/// a query runs, Ctrl-C must reach our handler to cancel it.
fn keep_sigint<T>(open: impl FnOnce() -> T) -> T {
    let mut before: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reading and restoring a signal disposition with valid pointers.
    let saved = unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut before) } == 0;
    let opened = open();
    if saved {
        unsafe { libc::sigaction(libc::SIGINT, &before, std::ptr::null_mut()) };
    }
    opened
}

pub async fn run(session: &mut Session, runner: &Runner) -> Result<()> {
    let mut lines: Box<dyn LineSource> = if std::io::stdin().is_terminal() {
        let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cdc-sql_history"));
        let mut editor = keep_sigint(DefaultEditor::new)
            .map_err(|e| crate::Error::external(format!("cannot open the terminal: {e}")))?;
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        eprintln!("cdc-sql {} — type HELP; for help, Ctrl-D to quit.", env!("CARGO_PKG_VERSION"));
        Box::new(Terminal { editor, history })
    } else {
        Box::new(Piped { stdin: std::io::stdin().lock() })
    };

    read_statements(session, runner, lines.as_mut()).await;
    // Leaving the shell ends its session: tables let go of what their jobs left behind.
    for line in session.end().await {
        match line {
            Ok(text) => eprintln!("[INFO] {text}"),
            Err(text) => eprintln!("[WARNING] {text}"),
        }
    }
    Ok(())
}

/// Runs statements as they are typed, until QUIT or the end of the input.
async fn read_statements(session: &mut Session, runner: &Runner, lines: &mut dyn LineSource) {
    let mut buffer = String::new();
    // Lines read before `buffer` starts, so errors point at the line the user typed.
    let mut lines_before = 0;
    loop {
        let prompt = if buffer.trim().is_empty() { PROMPT } else { CONTINUATION };
        match lines.read(prompt) {
            Line::End => return,
            Line::Interrupted => {
                buffer.clear();
                continue;
            }
            Line::Text(text) => {
                buffer.push_str(&text);
                buffer.push('\n');
            }
        }
        let parts = split(&buffer);
        let numbered = format!("{}{buffer}", "\n".repeat(lines_before));
        for raw in &parts.statements {
            lines.remember(raw.text.trim());
            let mut located = raw.clone();
            located.offset += lines_before;
            let outcome = match parse_statement("<shell>", &numbered, &located, &env_lookup) {
                Ok(statement) => session.execute(&statement).await,
                Err(e) => Err(e),
            };
            let shown = match outcome {
                Ok(Outcome::Quit) => return,
                Ok(outcome) => show(outcome, runner).await,
                Err(e) => Err(e),
            };
            if let Err(e) = shown {
                eprintln!("[ERROR] {}", crate::secrets::redact(&e.to_string()));
            }
        }
        let rest = match parts.incomplete {
            Some(offset) => offset,
            None => buffer.len(),
        };
        lines_before += buffer[..rest].matches('\n').count();
        buffer = buffer[rest..].to_string();
    }
}
