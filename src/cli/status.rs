//! What a running job shows on stderr: on a terminal, one status line redrawn every second
//! (state, rows, throughput, checkpoints, lag; snapshot or bounded-source progress with an ETA);
//! otherwise a plain log line every `--status-interval`. Log lines go through [`LogWriter`], which
//! clears the status line before printing (the next tick redraws it) and masks secrets.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::connectors::SourceProgress;
use crate::runtime::JobMetrics;

/// Whether a status line is on screen (log lines must clear it first).
static STATUS_SHOWN: AtomicBool = AtomicBool::new(false);
const CLEAR_LINE: &str = "\r\x1b[2K";
const TTY_REFRESH: Duration = Duration::from_secs(1);

/// A `tracing_subscriber` writer for stderr: one event per write-out, secrets masked.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let text = crate::secrets::redact(&String::from_utf8_lossy(&self.0));
        let mut err = std::io::stderr().lock();
        if STATUS_SHOWN.load(Ordering::Relaxed) {
            let _ = err.write_all(CLEAR_LINE.as_bytes());
        }
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::with_capacity(256))
    }
}

/// Totals at one moment, to derive rates between two ticks.
struct Sample {
    at: Instant,
    read: u64,
    written: u64,
    events: u64,
    chunks: u64,
}

fn take_sample(job: &JobMetrics) -> Sample {
    let progress: Vec<SourceProgress> = job.pipelines.iter().filter_map(|p| p.progress()).collect();
    Sample {
        at: Instant::now(),
        read: job.records_read(),
        written: job.records_written(),
        events: progress.iter().filter_map(|p| p.events).sum(),
        chunks: progress.iter().filter_map(|p| p.snapshot.as_ref()).map(|s| s.chunks_done).sum(),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn rate(delta: u64, elapsed: Duration) -> f64 {
    delta as f64 / elapsed.as_secs_f64().max(0.001)
}

/// `done/total` with a percentage and, when there is a rate, the time left.
fn eta(done: u64, total: u64, per_second: f64) -> String {
    let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let left = total.saturating_sub(done);
    let eta = if left == 0 {
        String::new()
    } else if per_second > 0.0 {
        format!(" ETA {}", duration(Duration::from_secs_f64(left as f64 / per_second)))
    } else {
        " ETA ?".to_string()
    };
    format!("{}/{} {pct}%{eta}", thousands(done), thousands(total))
}

/// The status as text: shared by the terminal line and the log line.
fn describe(job: &JobMetrics, before: &Sample, now: &Sample) -> String {
    let elapsed = now.at.duration_since(before.at);
    let mut parts = vec![
        job.state().as_str().to_string(),
        format!("{} rows read", thousands(now.read)),
        format!("{} written", thousands(now.written)),
        format!("{:.0} rows/s", rate(now.written.saturating_sub(before.written), elapsed)),
    ];
    let checkpoints = job.checkpoints();
    let mut checkpoint = format!("{} checkpoints", checkpoints.completed);
    if let Some(age) = job.last_checkpoint_age() {
        checkpoint.push_str(&format!(" (last {} ago)", duration(age)));
    }
    parts.push(checkpoint);
    let progress: Vec<SourceProgress> = job.pipelines.iter().filter_map(|p| p.progress()).collect();
    let snapshots: Vec<_> = progress.iter().filter_map(|p| p.snapshot.as_ref()).filter(|s| !s.finished).collect();
    if !snapshots.is_empty() {
        let done: u64 = snapshots.iter().map(|s| s.chunks_done).sum();
        let total: u64 = snapshots.iter().map(|s| s.chunks_done + s.chunks_remaining).sum();
        let tables_done: u64 = snapshots.iter().map(|s| s.tables_done).sum();
        let tables: u64 = snapshots.iter().map(|s| s.tables_done + s.tables_remaining).sum();
        let per_second = rate(now.chunks.saturating_sub(before.chunks), elapsed);
        parts.push(format!("snapshot {tables_done}/{tables} tables, chunks {}", eta(done, total, per_second)));
    } else {
        let bounded: Vec<(u64, u64)> =
            progress.iter().filter_map(|p| Some((p.events.unwrap_or(0), p.events_total?))).collect();
        if !bounded.is_empty() {
            let done = bounded.iter().map(|b| b.0).sum();
            let total = bounded.iter().map(|b| b.1).sum();
            let per_second = rate(now.events.saturating_sub(before.events), elapsed);
            parts.push(format!("events {}", eta(done, total, per_second)));
        }
    }
    let fetch = progress.iter().filter_map(|p| p.fetch_event_time_lag_ms).max();
    let emit = job.pipelines.iter().filter_map(|p| p.emit_lag()).max();
    match (fetch, emit) {
        (None, None) => {}
        (f, e) => {
            let ms = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "?".into());
            parts.push(format!("lag fetch {} emit {}", ms(f), ms(e)));
        }
    }
    if job.restarts() > 0 {
        parts.push(format!("{} restarts", job.restarts()));
    }
    parts.join(" · ")
}

/// Shows the job's status until `done` is cancelled.
pub async fn run(job: Arc<JobMetrics>, log_interval: Duration, done: CancellationToken) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty { TTY_REFRESH } else { log_interval };
    let mut before = take_sample(&job);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = take_sample(&job);
        let line = describe(&job, &before, &now);
        before = now;
        if tty {
            let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse::<usize>().ok()).unwrap_or(160);
            let shown: String = line.chars().take(width.saturating_sub(1)).collect();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{CLEAR_LINE}{shown}");
            let _ = err.flush();
            STATUS_SHOWN.store(true, Ordering::Relaxed);
        } else {
            tracing::info!(target: "cdc_sql::status", job = %job.name, "{line}");
        }
    }
    if STATUS_SHOWN.swap(false, Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(CLEAR_LINE.as_bytes());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_etas_read_well() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(eta(25, 100, 5.0), "25/100 25% ETA 15s");
        assert_eq!(eta(100, 100, 0.0), "100/100 100%");
        assert_eq!(eta(0, 10, 0.0), "0/10 0% ETA ?");
        assert_eq!(duration(Duration::from_secs(3725)), "1h02m");
    }

    #[test]
    fn a_snapshot_shows_tables_chunks_and_eta_then_lag() {
        use crate::connectors::SnapshotProgress;
        let job = JobMetrics::new("j", &[("INSERT INTO s".into(), vec!["src".into()], "s".into())]);
        job.set_state(crate::runtime::JobState::Running);
        let pipeline = &job.pipelines[0];
        let snapshot = |chunks_done| SnapshotProgress {
            tables_done: 1,
            tables_remaining: 2,
            chunks_done,
            chunks_remaining: 40 - chunks_done,
            finished: false,
        };
        pipeline.set_progress(0, Some(SourceProgress { snapshot: Some(snapshot(10)), ..Default::default() }));
        let before = take_sample(&job);
        pipeline.set_progress(
            0,
            Some(SourceProgress {
                snapshot: Some(snapshot(20)),
                fetch_event_time_lag_ms: Some(42),
                ..Default::default()
            }),
        );
        pipeline.records_written.store(500, Ordering::Relaxed);
        let now = Sample { at: before.at + Duration::from_secs(10), ..take_sample(&job) };
        let line = describe(&job, &before, &now);
        assert!(line.starts_with("RUNNING · 0 rows read · 500 written · 50 rows/s · 0 checkpoints"), "{line}");
        assert!(line.contains("snapshot 1/3 tables, chunks 20/40 50% ETA 20s"), "{line}");
        assert!(line.contains("lag fetch 42 ms emit ?"), "{line}");
    }
}
