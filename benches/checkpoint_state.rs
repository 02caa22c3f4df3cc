//! What a checkpoint costs the job for its operators' state: each stateful operator's snapshot,
//! the state files of the changed ones (Arrow IPC, written and synced) and the record naming them
//! (written and synced, then older records and unnamed files removed) — the work the coordinator
//! does between the pipelines' reports and the sinks' commit. Sinks' own prepare/commit is not
//! included (it is the sink's, measured in its benchmark).
//!
//! Two shapes, as issue #19 asks: ten stateful operators holding no state, and one operator
//! holding 1M keys (a `'truncate.mode' = 'delete'` source's rows: (id BIGINT, name STRING,
//! amount DOUBLE)). Each is measured when nothing changed since the previous checkpoint (the
//! files are kept) and when the state changed (the 1M-key state is encoded and written whole).
//! There is no reference tool to run beside it here (Flink's RocksDB/heap state backends need a
//! JVM cluster); compare with the checkpoint interval you run with.
//!
//! Run: `cargo bench --bench checkpoint_state` (keys via `CHECKPOINT_BENCH_KEYS`, default 1000000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_sql::changelog::ChangeBatch;
use cdc_sql::connectors::RowOrigins;
use cdc_sql::operators::{Operator, OperatorSnapshot, TruncateAsDeletes};
use cdc_sql::runtime::checkpoint::OperatorFile;
use cdc_sql::runtime::{CheckpointRecord, CheckpointStore, InputState, PipelineState};
use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

fn rows(from: i64, n: i64) -> (ChangeBatch, RowOrigins) {
    let ids = Int64Array::from_iter_values(from..from + n);
    let names = StringArray::from_iter_values((from..from + n).map(|i| format!("customer-{i:08}")));
    let amounts = Float64Array::from_iter_values((from..from + n).map(|i| i as f64 * 0.25));
    let batch = RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(names), Arc::new(amounts)]).unwrap();
    let origins = RowOrigins { tables: vec![Arc::from("public.customers"); n as usize], truncated: Vec::new() };
    (ChangeBatch::inserts(batch), origins)
}

/// One checkpoint of `operators` (all of pipeline 0) into `store`, as the coordinator takes it.
fn checkpoint(store: &CheckpointStore, id: u64, operators: &mut [TruncateAsDeletes], previous: &mut Vec<OperatorFile>) {
    let mut files = Vec::with_capacity(operators.len());
    for (i, op) in operators.iter_mut().enumerate() {
        let name = format!("t{i}.{}", op.name());
        let file = match op.snapshot().unwrap().unwrap() {
            OperatorSnapshot::Changed(state) => store.write_state(id, 0, &name, &state).unwrap(),
            OperatorSnapshot::Unchanged => previous.iter().find(|f| f.operator == name).unwrap().file.clone(),
        };
        files.push(OperatorFile { operator: name, file });
    }
    let state = PipelineState {
        name: "INSERT INTO out".into(),
        sink: "out (jdbc)".into(),
        inputs: vec![InputState {
            table: "customers".into(),
            identity: None,
            position: Some(serde_json::json!({ "lsn": id })),
            finished: false,
        }],
        prepared_checkpoint: Some(id),
        prepared: serde_json::Value::Null,
        finished: false,
        exact: false,
        operators: files.clone(),
        captured: None,
    };
    store.write(&CheckpointRecord::new("bench", id, vec![Some(state)])).unwrap();
    *previous = files;
}

fn measure(label: &str, runs: usize, mut one: impl FnMut(u64)) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            let started = Instant::now();
            one(i as u64);
            started.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{label:<58} median {:>9.2} ms   min {:>9.2} ms   max {:>9.2} ms", ms(times[runs / 2]), ms(times[0]), ms(times[runs - 1]));
}

fn main() {
    let keys: i64 = std::env::var("CHECKPOINT_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();

    let store = CheckpointStore::open(dir.path().join("empty"), 1).unwrap();
    let mut empty: Vec<TruncateAsDeletes> =
        (0..10).map(|_| TruncateAsDeletes::new("truncate-as-deletes", schema(), vec![0]).unwrap()).collect();
    let mut files = Vec::new();
    let mut id = 1;
    checkpoint(&store, id, &mut empty, &mut files);
    measure("10 operators, no state, unchanged", 50, |_| {
        id += 1;
        checkpoint(&store, id, &mut empty, &mut files);
    });

    let store = CheckpointStore::open(dir.path().join("large"), 1).unwrap();
    let mut large = vec![TruncateAsDeletes::new("truncate-as-deletes", schema(), vec![0]).unwrap()];
    let started = Instant::now();
    for from in (0..keys).step_by(8192) {
        let (changes, origins) = rows(from, 8192.min(keys - from));
        large[0].process(0, changes, Some(&origins)).unwrap();
    }
    println!("(holding {keys} keys took {:.2} s to build)", started.elapsed().as_secs_f64());
    let mut files = Vec::new();
    checkpoint(&store, 1, &mut large, &mut files);
    let size = std::fs::metadata(dir.path().join("large/state").join(&files[0].file)).unwrap().len();
    let mut id = 1;
    measure(&format!("1 operator, {keys} keys, unchanged"), 20, |_| {
        id += 1;
        checkpoint(&store, id, &mut large, &mut files);
    });
    measure(&format!("1 operator, {keys} keys, one row changed (rewritten)"), 5, |i| {
        let (changes, origins) = rows(keys + i as i64, 1);
        large[0].process(0, changes, Some(&origins)).unwrap();
        id += 1;
        checkpoint(&store, id, &mut large, &mut files);
    });
    println!("(state file of {keys} keys: {:.1} MiB)", size as f64 / (1024.0 * 1024.0));
}
