//! Per-batch cost of a compiled query (filter + projection with CAST, CASE and UDFs) at batch sizes
//! 1, 100 and 8192: what every micro-batch pays on top of the work proportional to its rows.
//! `cargo bench --bench per_batch` prints µs per batch and rows/s for each size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_sql::changelog::{ChangeBatch, Event, RowKind};
use cdc_sql::operators::{Operator, QueryOperator};
use cdc_sql::session::{Outcome, Session};
use cdc_sql::sql::parse_script;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

const JOB: &str = "
CREATE TABLE src (id BIGINT, email STRING, score BIGINT, PRIMARY KEY (id) NOT ENFORCED)
  WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id BIGINT, email STRING, tier STRING, score_text STRING) WITH ('connector' = 'blackhole');
INSERT INTO out
SELECT id, mask_email(lower(email)), CASE WHEN score >= 50 THEN 'gold' ELSE 'basic' END, CAST(score * 2 AS STRING)
FROM src WHERE score > 10;";

fn batch(rows: usize, offset: usize) -> ChangeBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("score", DataType::Int64, true),
    ]));
    let ids = Int64Array::from_iter_values((offset..offset + rows).map(|i| i as i64));
    let emails = StringArray::from_iter_values((offset..offset + rows).map(|i| format!("User{i}@Example.com")));
    let scores = Int64Array::from_iter_values((offset..offset + rows).map(|i| (i * 37 % 100) as i64));
    let rb = RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(emails), Arc::new(scores)]).unwrap();
    // A changelog shape: inserts and update pairs, so the filter's pair rules are exercised.
    let kinds: Vec<RowKind> = (0..rows)
        .map(|i| match i % 4 {
            1 if i + 1 < rows => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            _ => RowKind::Insert,
        })
        .map(|k| if rows == 1 { RowKind::Insert } else { k })
        .collect();
    let kinds: Vec<RowKind> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| match k {
            RowKind::UpdateAfter if i == 0 || kinds[i - 1] != RowKind::UpdateBefore => RowKind::Insert,
            k => *k,
        })
        .collect();
    ChangeBatch::from_kinds(rb, &kinds).unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let query = rt.block_on(async {
        let mut session = Session::new();
        let mut query = None;
        for stmt in parse_script("bench", JOB, &|_| None).unwrap() {
            if let Outcome::Job(mut job) = session.execute(&stmt).await.unwrap() {
                query = job.pipelines.remove(0).dataflow.query().cloned();
            }
        }
        query.unwrap()
    });
    // The operator the pipeline runs the query as.
    let mut query = QueryOperator::new(query).unwrap();
    let mut out = Vec::with_capacity(1);
    println!("{:>10} {:>14} {:>14} {:>14}", "batch rows", "µs per batch", "ns per row", "rows/s");
    for size in [1usize, 100, 8192] {
        let batches: Vec<ChangeBatch> = (0..64).map(|i| batch(size, i * size)).collect();
        // Warm up, then run for about two seconds.
        for b in &batches {
            query.process(0, Event::changes(b.clone()), &mut out).unwrap();
            out.clear();
        }
        let started = Instant::now();
        let mut n = 0usize;
        while started.elapsed() < Duration::from_secs(2) {
            for b in &batches {
                query.process(0, Event::changes(b.clone()), &mut out).unwrap();
                std::hint::black_box(out.drain(..));
            }
            n += batches.len();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let per_batch = elapsed / n as f64;
        println!(
            "{:>10} {:>14.2} {:>14.1} {:>14.0}",
            size,
            per_batch * 1e6,
            per_batch * 1e9 / size as f64,
            (n * size) as f64 / elapsed
        );
    }
}
