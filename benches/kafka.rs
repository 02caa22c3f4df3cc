//! kafka connector throughput against a reference client, in one run on one private broker
//! (Tansu, in-memory storage, loopback):
//!
//! * consume: our `kafka` source decoding `BENCH_ROWS` (default 1M) Debezium envelopes
//!   (`debezium-json`, one partition, bounded by offset) into changelog batches, vs a librdkafka
//!   consumer reading the same records to nowhere (Python's confluent-kafka, batch `consume`);
//! * produce: our `kafka` sink encoding and producing the same number of rows as `json`, vs the
//!   same client producing pre-encoded records.
//!
//! The issue asks for `kcat` as the reference; Debian's kcat (librdkafka 2.0.2) cannot talk to
//! Tansu (its ApiVersions request fails), so the reference is librdkafka 2.x through
//! confluent-kafka: the same C client kcat is, plus a Python loop per batch of records.
//!
//! `cargo bench --bench kafka` (release). Needs the tools `scripts/test` installs. Reports
//! rows/s, CPU seconds and CPU µs per row, and peak RSS.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use cdc_sql::changelog::ChangeBatch;
use cdc_sql::connectors::{open_table, SourceContext};
use cdc_sql::sql::{parse_script, Statement, TableSpec};
use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;

fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn spec(sql: &str) -> TableSpec {
    match parse_script("bench", sql, &|_| None).expect("job").into_iter().next().map(|s| s.statement) {
        Some(Statement::CreateTable { spec, .. }) => spec,
        _ => panic!("not a CREATE TABLE"),
    }
}

/// The reference client (Python confluent-kafka) under /usr/bin/time: (wall s, CPU s, RSS MiB).
fn reference(script: &str, args: &[String]) -> (f64, f64, f64) {
    let python = std::env::var("CDC_SQL_KAFKA_PYTHONPATH")
        .unwrap_or_else(|_| format!("{}/.cache/cdc-sql/tools/python", std::env::var("HOME").unwrap_or_default()));
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M", "python3", "-c", script])
        .args(args)
        .env("PYTHONPATH", python)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run /usr/bin/time python3");
    let wall = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reference client failed: {text}");
    let v: Vec<f64> =
        text.lines().last().unwrap_or_default().split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (wall, v.first().unwrap_or(&0.0) + v.get(1).unwrap_or(&0.0), v.get(2).unwrap_or(&0.0) / 1024.0)
}

const PRODUCE: &str = r#"
import sys
from confluent_kafka import Producer
servers, topic, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({"bootstrap.servers": servers, "linger.ms": 5, "batch.num.messages": 10000,
              "queue.buffering.max.messages": 1000000})
for i in range(rows):
    v = ('{"before":null,"after":{"id":%d,"name":"name-%d","amount":"%d.%02d","qty":%d},'
         '"source":{"version":"2.7.3.Final","connector":"mysql","name":"app","ts_ms":1760000000000,"db":"app",'
         '"table":"orders","server_id":1,"file":"binlog.000003","pos":%d,"row":0},"op":"c","ts_ms":1760000000003}'
         % (i, i, i // 100, i % 100, i % 17, i))
    while True:
        try:
            p.produce(topic, value=v.encode(), partition=0)
            break
        except BufferError:
            p.poll(0.01)
p.flush(120)
"#;

const CONSUME: &str = r#"
import sys
from confluent_kafka import Consumer, TopicPartition
servers, topic, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": servers, "group.id": "bench-reference", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
seen = 0
while seen < rows:
    for m in c.consume(10000, 5):
        if m.error() is None:
            seen += 1
c.close()
"#;

fn report(what: &str, rows: u64, wall: f64, cpu: f64, rss: f64) -> f64 {
    let rate = rows as f64 / wall;
    println!(
        "{what:<58} {rows:>9} rows {wall:>7.2} s {rate:>10.0} rows/s  CPU {cpu:>6.2} s ({:>5.2} µs/row)  peak RSS {rss:>7.1} MiB",
        cpu * 1e6 / rows as f64
    );
    rate
}

fn main() {
    let rows: u64 = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let broker = cdc_sql_testkit::Kafka::start().expect("Kafka (Tansu): run scripts/test once to install it");
    let servers = broker.bootstrap();
    let topic = broker.create_topic("bench_dbz", 1);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("kafka benchmark, {rows} records, broker Tansu 0.6 (memory storage) on {servers}");

    // Load the topic with the reference producer; its rate is the produce reference.
    let (w, cpu, rss) = reference(PRODUCE, &[servers.clone(), topic.clone(), rows.to_string()]);
    let produce_reference = report("reference produce (librdkafka, confluent-kafka)", rows, w, cpu, rss);

    let (w, cpu, rss) = reference(CONSUME, &[servers.clone(), topic.clone(), rows.to_string()]);
    let consume_reference = report("reference consume (librdkafka, confluent-kafka)", rows, w, cpu, rss);

    // Ours: the kafka source with debezium-json, bounded by offset.
    let source_spec = spec(&format!(
        "CREATE TABLE src (id BIGINT, name STRING, amount DECIMAL(12, 2), qty INT) WITH ('connector' = 'kafka',
           'topic' = '{topic}', 'properties.bootstrap.servers' = '{servers}', 'scan.startup.mode' = 'earliest-offset',
           'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:{rows}',
           'format' = 'debezium-json');"
    ));
    let cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let read = rt.block_on(async {
        let table = open_table(&source_spec).expect("table");
        let mut source = table.source(&SourceContext { batch_size: 8192 }).expect("source").expect("readable");
        source.start(None).await.expect("start");
        let mut n = 0u64;
        while let Some(batch) = source.next_batch().await.expect("batch") {
            n += batch.changes().expect("changes").num_rows() as u64;
        }
        source.close().await.expect("close");
        n
    });
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(read, rows, "every record decoded once");
    let ours = report(
        "cdc-sql kafka source, debezium-json → changelog",
        rows,
        wall,
        cpu_seconds("self") - cpu0,
        peak_rss_mib(),
    );
    println!("  consume: ours / reference = {:.2}", ours / consume_reference);

    // Ours: the kafka sink writing json values from Arrow batches.
    let out_topic = broker.create_topic("bench_out", 1);
    let sink_spec = spec(&format!(
        "CREATE TABLE dst (id BIGINT, name STRING) WITH ('connector' = 'kafka', 'topic' = '{out_topic}',
           'properties.bootstrap.servers' = '{servers}', 'format' = 'json');"
    ));
    let schema = sink_spec.persisted_schema();
    let batches: Vec<RecordBatch> = (0..rows.div_ceil(8192))
        .map(|b| {
            let ids: Vec<i64> = (b * 8192..((b + 1) * 8192).min(rows)).map(|i| i as i64).collect();
            let names: Vec<String> = ids.iter().map(|i| format!("name-{i}")).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))],
            )
            .expect("batch")
        })
        .collect();
    let cpu0 = cpu_seconds("self");
    let start = Instant::now();
    rt.block_on(async {
        let table = open_table(&sink_spec).expect("table");
        let mut sink = table.sink(cdc_sql::changelog::ChangelogMode::InsertOnly).expect("sink").expect("writable");
        sink.open().await.expect("open");
        for batch in &batches {
            sink.write(&None, ChangeBatch::inserts(batch.clone())).await.expect("write");
        }
        sink.prepare(1).await.expect("flush");
        sink.close().await.expect("close");
    });
    let wall = start.elapsed().as_secs_f64();
    let ours =
        report("cdc-sql kafka sink, Arrow → json records", rows, wall, cpu_seconds("self") - cpu0, peak_rss_mib());
    println!("  produce: ours / reference = {:.2}", ours / produce_reference);
}
