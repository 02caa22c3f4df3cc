//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4). Names are Flink's
//! metric names with a `cdc_sql_` prefix, so a Flink dashboard's queries carry over by renaming
//! the prefix; labels say which job, pipeline and table a series is about.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::operators::LookupCounters;
use crate::runtime::metrics::{JobMetrics, JobState, PipelineMetrics};

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Exposition {
    out: String,
    job: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP cdc_sql_{name} {help}");
        let _ = writeln!(self.out, "# TYPE cdc_sql_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "cdc_sql_{name}{{job=\"{}\"", self.job);
        for (k, v) in labels {
            let _ = write!(self.out, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    /// One sample per pipeline, labelled with the pipeline and the table `table` picks.
    fn per_pipeline(
        &mut self,
        job: &JobMetrics,
        name: &str,
        kind: &str,
        help: &str,
        table: fn(&PipelineMetrics) -> &str,
        value: fn(&PipelineMetrics) -> Option<u64>,
    ) {
        let values: Vec<(String, String, u64)> =
            job.pipelines.iter().filter_map(|p| value(p).map(|v| (p.name.clone(), table(p).to_string(), v))).collect();
        if values.is_empty() {
            return;
        }
        self.family(name, kind, help);
        for (pipeline, table, v) in values {
            self.sample(name, &[("pipeline", &pipeline), ("table", &table)], v);
        }
    }
}

/// The lookup joins' cache counters, named as Flink's lookup cache metrics (FLIP-221), one sample
/// per looked-up table of each pipeline.
fn lookups(e: &mut Exposition, job: &JobMetrics) {
    type Count = fn(&LookupCounters) -> &std::sync::atomic::AtomicU64;
    let families: [(&str, &str, Count); 3] = [
        ("lookupHitCount", "Keys a lookup join found in its cache.", |c| &c.hits),
        ("lookupMissCount", "Keys a lookup join looked up in the table.", |c| &c.misses),
        ("lookupQueryCount", "Queries lookup joins sent to their tables (one per batch with misses).", |c| &c.queries),
    ];
    for (name, help, count) in families {
        let samples: Vec<(String, String, u64)> = job
            .pipelines
            .iter()
            .flat_map(|p| {
                p.lookups()
                    .into_iter()
                    .map(move |c| (p.name.clone(), c.table.clone(), count(&c).load(Ordering::Relaxed)))
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        e.family(name, "counter", help);
        for (pipeline, table, value) in samples {
            e.sample(name, &[("pipeline", &pipeline), ("table", &table)], value);
        }
    }
}

fn source(p: &PipelineMetrics) -> &str {
    &p.source_table
}

fn sink(p: &PipelineMetrics) -> &str {
    &p.sink_table
}

pub fn render(job: &JobMetrics) -> String {
    let mut e = Exposition { out: String::with_capacity(4096), job: escape(&job.name) };
    let state = job.state();
    e.family("job_state", "gauge", "1 for the state the job is in (Flink job states), 0 for the others.");
    for s in JobState::ALL {
        e.sample("job_state", &[("state", s.as_str())], u8::from(s == state));
    }
    e.family("uptime", "gauge", "Milliseconds the job has been running (Flink's uptime).");
    e.sample("uptime", &[], job.duration_ms());
    e.family("numRestarts", "counter", "Restarts after failures of the outside world (Flink's numRestarts).");
    e.sample("numRestarts", &[], job.restarts());

    e.per_pipeline(job, "numRecordsIn", "counter", "Changelog rows read from the source table.", source, |p| {
        Some(p.records_read.load(Ordering::Relaxed))
    });
    e.per_pipeline(job, "numRecordsOut", "counter", "Changelog rows written to the sink table.", sink, |p| {
        Some(p.records_written.load(Ordering::Relaxed))
    });
    e.per_pipeline(job, "numBytesIn", "counter", "In-memory (Arrow) bytes of the rows read.", source, |p| {
        Some(p.bytes_read.load(Ordering::Relaxed))
    });
    e.per_pipeline(job, "numBytesOut", "counter", "In-memory (Arrow) bytes of the rows written.", sink, |p| {
        Some(p.bytes_written.load(Ordering::Relaxed))
    });
    e.per_pipeline(job, "numBatches", "counter", "Batches read from the source.", source, |p| {
        Some(p.batches.load(Ordering::Relaxed))
    });
    e.per_pipeline(
        job,
        "numErrors",
        "counter",
        "Failures of the pipeline (each one fails or restarts the job).",
        source,
        |p| Some(p.errors.load(Ordering::Relaxed)),
    );
    e.per_pipeline(
        job,
        "numDeadLetters",
        "counter",
        "Rows set aside as dead letters ('dead-letter.path' or 'dead-letter.table') instead of stopping the job.",
        sink,
        |p| Some(p.dead_letters.load(Ordering::Relaxed)),
    );
    e.per_pipeline(
        job,
        "currentFetchEventTimeLag",
        "gauge",
        "Milliseconds between a change's commit in the source and its fetch, where the source knows.",
        source,
        |p| p.progress().and_then(|s| s.fetch_event_time_lag_ms),
    );
    e.per_pipeline(
        job,
        "currentEmitEventTimeLag",
        "gauge",
        "Milliseconds between a change's commit in the source and its hand-over to the sink, where known.",
        source,
        |p| p.emit_lag(),
    );
    e.per_pipeline(
        job,
        "sourceEvents",
        "counter",
        "Change events the source produced so far, where it counts them.",
        source,
        |p| p.progress().and_then(|s| s.events),
    );
    e.per_pipeline(
        job,
        "sourceRecordsSkipped",
        "counter",
        "Records the source skipped because they did not parse (a format's 'ignore-parse-errors').",
        source,
        |p| p.progress().and_then(|s| s.skipped),
    );
    e.per_pipeline(
        job,
        "replicationSlotLagBytes",
        "gauge",
        "WAL bytes the PostgreSQL replication slot retains.",
        source,
        |p| p.progress().and_then(|s| s.slot_lag_bytes),
    );
    lookups(&mut e, job);
    e.per_pipeline(job, "isSnapshotting", "gauge", "1 while the source reads its initial snapshot.", source, |p| {
        p.progress().and_then(|s| s.snapshot).map(|s| u64::from(!s.finished))
    });
    e.per_pipeline(job, "numTablesSnapshotted", "gauge", "Tables whose snapshot is done.", source, |p| {
        p.progress().and_then(|s| s.snapshot).map(|s| s.tables_done)
    });
    e.per_pipeline(job, "numTablesRemaining", "gauge", "Tables whose snapshot is still to read.", source, |p| {
        p.progress().and_then(|s| s.snapshot).map(|s| s.tables_remaining)
    });
    e.per_pipeline(job, "numSnapshotSplitsFinished", "gauge", "Snapshot chunks read.", source, |p| {
        p.progress().and_then(|s| s.snapshot).map(|s| s.chunks_done)
    });
    e.per_pipeline(job, "numSnapshotSplitsRemaining", "gauge", "Snapshot chunks still to read.", source, |p| {
        p.progress().and_then(|s| s.snapshot).map(|s| s.chunks_remaining)
    });
    // One sample per input, labelled with its table: a UNION ALL's inputs each have their own.
    let positions: Vec<(String, String, String)> = job
        .pipelines
        .iter()
        .flat_map(|p| {
            p.input_progress().into_iter().filter_map(|(table, s)| Some((p.name.clone(), table, s.position?)))
        })
        .collect();
    if !positions.is_empty() {
        e.family("sourcePosition", "gauge", "Where the source is (binlog file:pos or GTID set, LSN, …), as a label.");
        for (pipeline, table, position) in positions {
            e.sample("sourcePosition", &[("pipeline", &pipeline), ("table", &table), ("position", &position)], 1);
        }
    }

    let c = job.checkpoints();
    e.family("numberOfCompletedCheckpoints", "counter", "Checkpoints stored (Flink's numberOfCompletedCheckpoints).");
    e.sample("numberOfCompletedCheckpoints", &[], c.completed);
    e.family("numberOfFailedCheckpoints", "counter", "Checkpoints that failed (Flink's numberOfFailedCheckpoints).");
    e.sample("numberOfFailedCheckpoints", &[], c.failed);
    e.family("numberOfInProgressCheckpoints", "gauge", "Checkpoints in progress.");
    e.sample("numberOfInProgressCheckpoints", &[], c.in_progress);
    if let Some(last) = &c.latest_completed {
        e.family("lastCheckpointDuration", "gauge", "Milliseconds the last completed checkpoint took.");
        e.sample("lastCheckpointDuration", &[], last.duration_ms);
        e.family("lastCheckpointSize", "gauge", "Bytes of the last stored checkpoint record.");
        e.sample("lastCheckpointSize", &[], last.size_bytes);
        e.family("lastCompletedCheckpointId", "gauge", "Id of the last completed checkpoint.");
        e.sample("lastCompletedCheckpointId", &[], last.id);
    }
    if let Some(age) = job.last_checkpoint_age() {
        e.family("lastCompletedCheckpointAge", "gauge", "Milliseconds since the last checkpoint completed.");
        e.sample("lastCompletedCheckpointAge", &[], age.as_millis());
    }
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::{SnapshotProgress, SourceProgress};

    #[test]
    fn every_sample_line_is_well_formed_and_labelled() {
        let job = JobMetrics::new("job \"q\"", &[("INSERT INTO s".into(), vec!["src".into()], "s".into())]);
        job.pipelines[0].records_read.store(5, Ordering::Relaxed);
        job.pipelines[0].dead_letters.store(3, Ordering::Relaxed);
        job.pipelines[0].set_progress(
            0,
            Some(SourceProgress {
                fetch_event_time_lag_ms: Some(12),
                snapshot: Some(SnapshotProgress { tables_done: 1, tables_remaining: 2, ..Default::default() }),
                position: Some("mysql-bin.000001:4".into()),
                ..Default::default()
            }),
        );
        let text = render(&job);
        assert!(text.lines().any(|l| l.contains("numDeadLetters{") && l.ends_with(" 3")), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("cdc_sql_") && series.ends_with('}'), "{line}");
        }
        assert!(
            text.contains(r#"cdc_sql_numRecordsIn{job="job \"q\"",pipeline="INSERT INTO s",table="src"} 5"#),
            "{text}"
        );
        assert!(text.contains("cdc_sql_currentFetchEventTimeLag{") && text.contains("cdc_sql_numTablesRemaining{"));
        assert!(text.contains(r#"position="mysql-bin.000001:4""#));
        assert!(!text.contains("currentEmitEventTimeLag"), "unknown lag must not be reported: {text}");
        assert!(!text.contains("lookupHitCount"), "a job without lookup joins reports no lookups: {text}");
    }

    #[test]
    fn lookup_counters_are_reported_per_looked_up_table() {
        let job = JobMetrics::new("j", &[("INSERT INTO s".into(), vec!["src".into()], "s".into())]);
        let counters = std::sync::Arc::new(LookupCounters::new("plans"));
        counters.hits.store(90, Ordering::Relaxed);
        counters.misses.store(10, Ordering::Relaxed);
        counters.queries.store(2, Ordering::Relaxed);
        job.pipelines[0].add_lookup(counters);
        let text = render(&job);
        for (name, value) in [("lookupHitCount", 90), ("lookupMissCount", 10), ("lookupQueryCount", 2)] {
            let line = format!(r#"cdc_sql_{name}{{job="j",pipeline="INSERT INTO s",table="plans"}} {value}"#);
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
