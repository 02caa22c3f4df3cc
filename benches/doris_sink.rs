//! Doris sink throughput: 1M changelog rows encoded as JSON lines and as CSV and sent with Stream
//! Load (two-phase commit, one load per 100k-row checkpoint) to the Doris emulator, against
//! encoding the same batches with a generic serializer (arrow-json's `LineDelimitedWriter`) in
//! the same run. CSV is measured plain (tab-separated, every value checked against the
//! separators) and enclosed (`enclose` `"`, `escape` `\`: every string quoted and escaped).
//!
//! Run: `cargo bench --bench doris_sink` (rows via `DORIS_BENCH_ROWS`, default 1000000).
//! Reports rows/s, MB/s and CPU milliseconds per million rows. CPU of the encoders and of the
//! sink is the calling thread's (`/proc/thread-self/schedstat`); the sink runs on a current-thread
//! runtime, so its figure covers encoding, compaction and the HTTP client, while the emulator's
//! parsing runs on its own threads and is not counted.

#[path = "../tests/emulators/doris/mod.rs"]
mod emulator;

use std::sync::Arc;
use std::time::Instant;

use cdc_sql::changelog::{ChangeBatch, ChangelogMode};
use cdc_sql::connectors::doris::csv::{CsvEncoder, CsvFormat};
use cdc_sql::connectors::doris::encode::JsonLinesEncoder;
use cdc_sql::connectors::open_table;
use cdc_sql::sql::{ColumnSpec, TableOption, TableSpec};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use emulator::{col, ColumnType, DorisEmulator, Model, TableDef};

const BATCH: usize = 8192;
const ROWS_PER_CHECKPOINT: usize = 100_000;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn batches(rows: usize) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("updated_at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("active", DataType::Boolean, true),
        Field::new("score", DataType::Float64, true),
    ]));
    (0..rows)
        .step_by(BATCH)
        .map(|start| {
            let n = BATCH.min(rows - start);
            let ids: Vec<i64> = (start..start + n).map(|i| i as i64).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("customer-{i:08}")))),
                Arc::new(
                    Decimal128Array::from_iter_values(ids.iter().map(|i| (*i as i128 * 7919) % 10_000_000))
                        .with_precision_and_scale(12, 2)
                        .expect("decimal"),
                ),
                Arc::new(TimestampMillisecondArray::from_iter_values(ids.iter().map(|i| 1_700_000_000_000 + i * 1000))),
                Arc::new(BooleanArray::from_iter(ids.iter().map(|i| Some(i % 3 == 0)))),
                Arc::new(Float64Array::from_iter_values(ids.iter().map(|i| *i as f64 / 7.0))),
            ];
            RecordBatch::try_new(schema.clone(), columns).expect("batch")
        })
        .collect()
}

struct Figure {
    name: &'static str,
    rows: usize,
    bytes: usize,
    seconds: f64,
    cpu_ns: u64,
}

impl Figure {
    fn print(&self) {
        // Per CPU-second too: on a shared machine wall-clock rates mostly measure the neighbours.
        let cpu_seconds = self.cpu_ns as f64 / 1e9;
        println!(
            "{:<44} {:>10.0} rows/s {:>8.1} MB/s (wall) | {:>10.0} rows/s {:>8.1} MB/s per CPU-second | {:>6.0} ms CPU per 1M rows  ({} rows, {:.1} MB, {:.2} s)",
            self.name,
            self.rows as f64 / self.seconds,
            self.bytes as f64 / 1e6 / self.seconds,
            self.rows as f64 / cpu_seconds,
            self.bytes as f64 / 1e6 / cpu_seconds,
            self.cpu_ns as f64 / 1e6 / (self.rows as f64 / 1e6),
            self.rows,
            self.bytes as f64 / 1e6,
            self.seconds
        );
    }
}

fn measure(name: &'static str, rows: usize, f: impl FnOnce() -> usize) -> Figure {
    let cpu = thread_cpu_ns();
    let start = Instant::now();
    let bytes = f();
    Figure { name, rows, bytes, seconds: start.elapsed().as_secs_f64(), cpu_ns: thread_cpu_ns() - cpu }
}

fn sink_spec(emulator: &DorisEmulator, extra: &[(&str, &str)]) -> TableSpec {
    let column = |name: &str, data_type: DataType, type_text: &str| ColumnSpec {
        name: name.into(),
        data_type,
        nullable: name != "id",
        type_text: type_text.into(),
        metadata: None,
        comment: None,
    };
    let mut options = vec![
        ("connector", "doris".to_string()),
        ("fenodes", emulator.fe_address()),
        ("table.identifier", "bench.orders".into()),
        ("username", "root".into()),
        ("password", "".into()),
    ];
    options.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    TableSpec {
        name: "orders_sink".into(),
        columns: vec![
            column("id", DataType::Int64, "BIGINT"),
            column("name", DataType::Utf8, "STRING"),
            column("amount", DataType::Decimal128(12, 2), "DECIMAL(12, 2)"),
            column("updated_at", DataType::Timestamp(TimeUnit::Millisecond, None), "TIMESTAMP(3)"),
            column("active", DataType::Boolean, "BOOLEAN"),
            column("score", DataType::Float64, "DOUBLE"),
        ],
        primary_key: vec!["id".into()],
        options: options
            .into_iter()
            .map(|(k, v)| TableOption { key: k.into(), written: v.clone(), value: v })
            .collect(),
        comment: None,
        computed: Vec::new(),
    }
}

fn main() {
    let rows: usize = std::env::var("DORIS_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let data = batches(rows);
    println!("doris sink benchmark: {rows} rows of (BIGINT, STRING, DECIMAL(12,2), TIMESTAMP(3), BOOLEAN, DOUBLE), batches of {BATCH}");

    let ours = measure("encode: cdc-sql JsonLinesEncoder", rows, || {
        let encoder = JsonLinesEncoder::new(&data[0].schema(), false).expect("encoder");
        let mut total = 0;
        let mut out = Vec::with_capacity(16 << 20);
        for b in &data {
            encoder.encode_all(b, false, &mut out).expect("encode");
            if out.len() > 12 << 20 {
                total += out.len();
                out.clear();
            }
        }
        total + out.len()
    });
    let csv = |name, format: CsvFormat| {
        measure(name, rows, || {
            let encoder = CsvEncoder::new(&data[0].schema(), &[0], false, format).expect("encoder");
            let mut total = 0;
            let mut out = Vec::with_capacity(16 << 20);
            for b in &data {
                encoder.encode_all(b, false, &mut out).expect("encode");
                if out.len() > 12 << 20 {
                    total += out.len();
                    out.clear();
                }
            }
            total + out.len()
        })
    };
    let csv_plain = csv("encode: cdc-sql CsvEncoder (tab)", CsvFormat::default());
    let enclosed = CsvFormat::from_properties(None, None, Some("\""), Some("\\")).expect("format");
    let csv_enclosed = csv("encode: cdc-sql CsvEncoder (enclose+escape)", enclosed);
    let generic = measure("encode: arrow-json LineDelimitedWriter", rows, || {
        let mut total = 0;
        let mut out = Vec::with_capacity(16 << 20);
        for b in &data {
            let mut writer = LineDelimitedWriter::new(&mut out);
            writer.write(b).expect("arrow-json");
            writer.finish().expect("arrow-json");
            drop(writer);
            if out.len() > 12 << 20 {
                total += out.len();
                out.clear();
            }
        }
        total + out.len()
    });

    let json_sent = send(rows, &data, "sink: JSON + Stream Load 2PC to emulator", &[]);
    let csv_sent = send(rows, &data, "sink: CSV + Stream Load 2PC to emulator", &[("sink.properties.format", "csv")]);
    let json_sent = Figure { bytes: ours.bytes, ..json_sent };
    let csv_sent = Figure { bytes: csv_plain.bytes, ..csv_sent };

    ours.print();
    csv_plain.print();
    csv_enclosed.print();
    generic.print();
    json_sent.print();
    csv_sent.print();
    println!(
        "JSON bytes: ours {} vs arrow-json {} (ours quotes decimals and writes timestamps as Doris DATETIME text); encode CPU ratio arrow-json/ours {:.2}x",
        ours.bytes,
        generic.bytes,
        generic.cpu_ns as f64 / ours.cpu_ns as f64
    );
    println!(
        "CSV bytes: plain {} / enclosed {} vs JSON {}; encode CPU ratio JSON/CSV plain {:.2}x, JSON/CSV enclosed {:.2}x",
        csv_plain.bytes,
        csv_enclosed.bytes,
        ours.bytes,
        ours.cpu_ns as f64 / csv_plain.cpu_ns as f64,
        ours.cpu_ns as f64 / csv_enclosed.cpu_ns as f64
    );
}

/// Sends `data` through the sink (2PC, a checkpoint every 100k rows) to a fresh emulator.
fn send(rows: usize, data: &[RecordBatch], name: &'static str, extra: &[(&str, &str)]) -> Figure {
    let emulator = DorisEmulator::start(
        "root",
        "",
        vec![TableDef {
            database: "bench".into(),
            name: "orders".into(),
            columns: vec![
                col("id", ColumnType::BigInt, false),
                col("name", ColumnType::Varchar(None), true),
                col("amount", ColumnType::Decimal(12, 2), true),
                col("updated_at", ColumnType::DateTime, true),
                col("active", ColumnType::Boolean, true),
                col("score", ColumnType::Double, true),
            ],
            model: Model::Duplicate,
            sequence: None,
        }],
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let spec = sink_spec(&emulator, extra);
    let changes: Vec<ChangeBatch> = data.iter().map(|b| ChangeBatch::inserts(b.clone())).collect();
    let sent = measure(name, rows, || {
        runtime.block_on(async {
            let mut sink =
                open_table(&spec).expect("table").sink(ChangelogMode::InsertOnly).expect("sink").expect("sink");
            sink.recover(vec![]).await.expect("recover");
            let mut since_checkpoint = 0;
            let mut checkpoint = 0;
            for batch in changes {
                since_checkpoint += batch.num_rows();
                sink.write(&None, batch).await.expect("write");
                if since_checkpoint >= ROWS_PER_CHECKPOINT {
                    checkpoint += 1;
                    let prepared = sink.prepare(checkpoint).await.expect("prepare");
                    sink.commit(prepared).await.expect("commit");
                    since_checkpoint = 0;
                }
            }
            let prepared = sink.prepare(checkpoint + 1).await.expect("prepare");
            sink.commit(prepared).await.expect("commit");
        });
        0
    });
    assert_eq!(emulator.row_count("bench", "orders"), rows, "every row reached the emulator");
    sent
}
