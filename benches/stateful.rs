//! GROUP BY over a changelog, incremental against DataFusion's batch answer, same process, same
//! data: a 10M-row changelog (inserts, update pairs — half of them moving the row to another
//! group — and deletes) over 1M group keys, through the query a job compiles for
//!
//! ```sql
//! SELECT g, COUNT(*), SUM(v), MIN(v), MAX(v) FROM src GROUP BY g
//! ```
//!
//! Prints, for the incremental operator: rows/s, CPU µs per row, peak RSS, the checkpoint of its
//! state (snapshot into Arrow, written as an Arrow IPC file: ms and bytes) and the cost of one
//! later change (µs); for DataFusion: the same GROUP BY as a batch query over the same 10M rows,
//! and over the table they leave, with its peak RSS (reset in between through
//! `/proc/self/clear_refs`).
//!
//! Then a two-table join, `SELECT l.id, l.v, r.name FROM l JOIN r ON l.k = r.id`, over 1M rows
//! per side (the right side first, then the left side's rows each finding one match): rows/s,
//! CPU µs per row, the state's bytes per row held (as its checkpoint file) and peak RSS. No
//! reference runs for the join: a batch hash join answers a different question (no state kept).
//!
//! `cargo bench --bench stateful` (release); `GROUP_BY_ROWS`, `GROUP_BY_KEYS` and `JOIN_ROWS`
//! change the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_sql::changelog::{ChangeBatch, Event, RowKind};
use cdc_sql::operators::{Operator, OperatorSnapshot, QueryOperator};
use cdc_sql::session::{Outcome, Session};
use cdc_sql::sql::parse_script;
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::datasource::MemTable;

const QUERY: &str = "SELECT g, COUNT(*), SUM(v), MIN(v), MAX(v) FROM src GROUP BY g";
const BATCH: usize = 8192;

const JOIN: &str = "SELECT l.id, l.v, r.name FROM l JOIN r ON l.k = r.id";

fn join_job() -> String {
    format!(
        "CREATE TABLE l (id BIGINT, k BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '1');
         CREATE TABLE r (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '1');
         CREATE TABLE out (id BIGINT, v BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('connector' = 'blackhole');
         INSERT INTO out {JOIN};"
    )
}

fn job() -> String {
    format!(
        "CREATE TABLE src (id BIGINT, g BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '1');
         CREATE TABLE out (g BIGINT, n BIGINT, s BIGINT, lo BIGINT, hi BIGINT, PRIMARY KEY (g) NOT ENFORCED)
           WITH ('connector' = 'blackhole');
         INSERT INTO out {QUERY};"
    )
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Rows of the batch being built.
#[derive(Default)]
struct Pending {
    ids: Vec<i64>,
    gs: Vec<i64>,
    vs: Vec<i64>,
    kinds: Vec<RowKind>,
}

impl Pending {
    fn push(&mut self, row: (i64, i64, i64), kind: RowKind) {
        self.ids.push(row.0);
        self.gs.push(row.1);
        self.vs.push(row.2);
        self.kinds.push(kind);
    }

    fn take(&mut self) -> ChangeBatch {
        let p = std::mem::take(self);
        let rb = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from(p.ids)), Arc::new(Int64Array::from(p.gs)), Arc::new(Int64Array::from(p.vs))],
        )
        .unwrap();
        ChangeBatch::from_kinds(rb, &p.kinds).unwrap()
    }
}

/// The changelog in batches of `BATCH` rows (update pairs kept together), and the rows alive
/// at its end.
fn changelog(rows: usize, keys: u64) -> (Vec<ChangeBatch>, Vec<(i64, i64, i64)>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut alive: Vec<(i64, i64, i64)> = Vec::new();
    let mut next_id = 0i64;
    let mut batches = Vec::new();
    let mut pending = Pending::default();
    let mut total = 0;
    while total < rows {
        let roll = rng.below(100);
        if alive.is_empty() || roll < 60 {
            let row = (next_id, rng.below(keys) as i64, rng.below(1_000_000) as i64);
            next_id += 1;
            alive.push(row);
            pending.push(row, RowKind::Insert);
        } else if roll < 90 {
            let i = rng.below(alive.len() as u64) as usize;
            let old = alive[i];
            // Half of the updates move the row to another group.
            let g = if rng.below(2) == 0 { old.1 } else { rng.below(keys) as i64 };
            let new = (old.0, g, rng.below(1_000_000) as i64);
            alive[i] = new;
            pending.push(old, RowKind::UpdateBefore);
            pending.push(new, RowKind::UpdateAfter);
        } else {
            let i = rng.below(alive.len() as u64) as usize;
            pending.push(alive.swap_remove(i), RowKind::Delete);
        }
        if pending.ids.len() >= BATCH || total + pending.ids.len() >= rows {
            total += pending.ids.len();
            batches.push(pending.take());
        }
    }
    (batches, alive)
}

/// The query of the job's INSERT, planned as a job plans it.
fn plan(rt: &tokio::runtime::Runtime, job: &str) -> Arc<cdc_sql::plan::CompiledQuery> {
    rt.block_on(async {
        let mut session = Session::new();
        let mut query = None;
        for stmt in parse_script("bench", job, &|_| None).unwrap() {
            if let Outcome::Job(mut job) = session.execute(&stmt).await.unwrap() {
                query = job.pipelines.remove(0).dataflow.query().cloned();
            }
        }
        query.expect("the INSERT planned a pipeline")
    })
}

/// The state of the query's stateful operators, written as the runtime writes it: ms and bytes.
fn checkpoint(op: &mut QueryOperator) -> (usize, f64, u64) {
    let started = Instant::now();
    let states: Vec<RecordBatch> = op
        .stateful_operators()
        .map(|s| match s.snapshot().unwrap() {
            Some(OperatorSnapshot::Changed(state)) => state,
            other => panic!("{other:?}"),
        })
        .collect();
    let mut bytes = 0;
    for state in &states {
        let path = std::env::temp_dir().join(format!("cdc-sql-stateful-bench-{}.arrow", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = FileWriter::try_new(file, &state.schema()).unwrap();
        writer.write(state).unwrap();
        writer.finish().unwrap();
        writer.into_inner().unwrap().sync_all().unwrap();
        bytes += std::fs::metadata(&path).unwrap().len();
        let _ = std::fs::remove_file(&path);
    }
    (states.iter().map(RecordBatch::num_rows).sum(), started.elapsed().as_secs_f64() * 1e3, bytes)
}

fn join(rt: &tokio::runtime::Runtime, rows: usize) {
    let query = plan(rt, &join_job());
    let (l, r) =
        (query.inputs.iter().position(|t| t == "l").unwrap(), query.inputs.iter().position(|t| t == "r").unwrap());
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let right: Vec<ChangeBatch> = (0..rows)
        .step_by(BATCH)
        .map(|start| {
            let ids: Vec<i64> = (start..(start + BATCH).min(rows)).map(|i| i as i64).collect();
            let names =
                datafusion::arrow::array::StringArray::from_iter_values(ids.iter().map(|i| format!("customer-{i}")));
            let schema = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, false),
            ]));
            ChangeBatch::inserts(
                RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), Arc::new(names)]).unwrap(),
            )
        })
        .collect();
    let left: Vec<ChangeBatch> = (0..rows)
        .step_by(BATCH)
        .map(|start| {
            let n = (start + BATCH).min(rows) - start;
            let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
            let ks = Int64Array::from_iter_values((0..n).map(|_| rng.below(rows as u64) as i64));
            let vs = Int64Array::from_iter_values((0..n).map(|_| rng.below(1_000_000) as i64));
            ChangeBatch::inserts(
                RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(ks), Arc::new(vs)]).unwrap(),
            )
        })
        .collect();
    reset_peak_rss();
    let base = peak_rss_mib();
    let mut op = QueryOperator::new(query).unwrap();
    let (cpu0, started) = (cpu(), Instant::now());
    let mut emitted = 0;
    for (input, b) in right.iter().map(|b| (r, b)).chain(left.iter().map(|b| (l, b))) {
        let mut out = Vec::new();
        op.process(input, Event::changes(b.clone()), &mut out).unwrap();
        for e in out {
            if let Event::Changes { changes, .. } = e {
                emitted += changes.num_rows();
            }
        }
    }
    let (wall, cpu_used) = (started.elapsed(), cpu() - cpu0);
    let peak = peak_rss_mib();
    let (held, ms, bytes) = checkpoint(&mut op);
    println!(
        "JOIN, {rows} rows per side: {:.2} s, {:.0} rows/s, {:.2} CPU µs/row, {emitted} rows out, peak RSS {:.0} MiB \
         ({:.0} MiB with the input batches only); state {held} rows as a {:.1} MiB checkpoint file ({:.0} bytes per \
         row held), written in {ms:.0} ms",
        wall.as_secs_f64(),
        (2 * rows) as f64 / wall.as_secs_f64(),
        cpu_used.as_secs_f64() * 1e6 / (2 * rows) as f64,
        peak,
        base,
        bytes as f64 / 1048576.0,
        bytes as f64 / held.max(1) as f64,
    );
}

/// User + system CPU time of this process.
fn cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// Peak resident memory (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn reset_peak_rss() {
    // "5" resets the peak resident set size (Linux 4.0 and later).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let rows: usize = std::env::var("GROUP_BY_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let keys: u64 = std::env::var("GROUP_BY_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let query = plan(&rt, &job());
    let (batches, alive) = changelog(rows, keys);
    let input_rows: usize = batches.iter().map(ChangeBatch::num_rows).sum();
    let count =
        |k: RowKind| batches.iter().flat_map(|b| (0..b.num_rows()).map(move |i| b.kind(i))).filter(|x| *x == k).count();
    println!(
        "changelog: {input_rows} rows ({} +I, {} -U/+U pairs, {} -D) over {keys} keys, {} rows alive at the end",
        count(RowKind::Insert),
        count(RowKind::UpdateBefore),
        count(RowKind::Delete),
        alive.len()
    );

    reset_peak_rss();
    let base_rss = peak_rss_mib();
    let mut op = QueryOperator::new(query.clone()).unwrap();
    let (cpu0, started) = (cpu(), Instant::now());
    let mut emitted = 0;
    for b in &batches {
        let mut out = Vec::new();
        op.process(0, Event::changes(b.clone()), &mut out).unwrap();
        for e in out {
            if let Event::Changes { changes, .. } = e {
                emitted += changes.num_rows();
            }
        }
    }
    let (wall, cpu_used) = (started.elapsed(), cpu() - cpu0);
    let incremental_rss = peak_rss_mib();
    println!(
        "incremental GROUP BY: {:.2} s, {:.0} rows/s, {:.2} CPU µs/row, {emitted} changelog rows out, peak RSS {:.0} MiB \
         (the input batches held: {:.0} MiB before it started)",
        wall.as_secs_f64(),
        input_rows as f64 / wall.as_secs_f64(),
        cpu_used.as_secs_f64() * 1e6 / input_rows as f64,
        incremental_rss,
        base_rss
    );

    // A checkpoint: the state as Arrow, written as the runtime writes it (one IPC file).
    let (groups, ms, bytes) = checkpoint(&mut op);
    let started = Instant::now();
    let unchanged = op.stateful_operators().map(|s| s.snapshot().unwrap()).count();
    println!(
        "checkpoint of {groups} groups: snapshot, Arrow IPC write and fsync {ms:.0} ms, {:.1} MiB ({:.0} bytes per \
         group); unchanged state: {:.3} ms for {unchanged} operator",
        bytes as f64 / 1048576.0,
        bytes as f64 / groups as f64,
        started.elapsed().as_secs_f64() * 1e3
    );

    // One later change: an update of one row, as a batch of its own.
    let mut latencies = Vec::new();
    for (i, row) in alive.iter().take(1000).enumerate() {
        let new = (row.0, row.1, row.2 + 1 + i as i64);
        let rb = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![row.0, new.0])),
                Arc::new(Int64Array::from(vec![row.1, new.1])),
                Arc::new(Int64Array::from(vec![row.2, new.2])),
            ],
        )
        .unwrap();
        let batch = ChangeBatch::from_kinds(rb, &[RowKind::UpdateBefore, RowKind::UpdateAfter]).unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        op.process(0, Event::changes(batch), &mut out).unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "one later change (an update pair, its own batch): median {:.1} µs, p99 {:.1} µs",
        latencies[latencies.len() / 2].as_secs_f64() * 1e6,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e6
    );
    drop(op);

    // The reference: DataFusion's batch GROUP BY over the same rows, and over the final table.
    let all: Vec<RecordBatch> = batches.iter().map(|b| b.rows().clone()).collect();
    let final_rows: Vec<RecordBatch> = alive
        .chunks(BATCH)
        .map(|c| {
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.0))),
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.2))),
                ],
            )
            .unwrap()
        })
        .collect();
    drop(batches);
    for (what, data) in [("the same changelog rows", all), ("the table they leave", final_rows)] {
        reset_peak_rss();
        let n: usize = data.iter().map(RecordBatch::num_rows).sum();
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_table("src", Arc::new(MemTable::try_new(schema(), vec![data]).unwrap())).unwrap();
        let (cpu0, started) = (cpu(), Instant::now());
        let groups: usize = rt.block_on(async {
            ctx.sql(QUERY).await.unwrap().collect().await.unwrap().iter().map(RecordBatch::num_rows).sum()
        });
        let (wall, cpu_used) = (started.elapsed(), cpu() - cpu0);
        println!(
            "DataFusion batch GROUP BY over {what} ({n} rows): {:.2} s, {:.0} rows/s, {:.2} CPU µs/row, {groups} groups, \
             peak RSS {:.0} MiB",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            cpu_used.as_secs_f64() * 1e6 / n as f64,
            peak_rss_mib()
        );
    }
    let join_rows: usize = std::env::var("JOIN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    join(&rt, join_rows);
}
