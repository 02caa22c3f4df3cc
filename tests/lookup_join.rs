//! Lookup joins (`JOIN dim FOR SYSTEM_TIME AS OF s.proc`) against real PostgreSQL and MariaDB
//! tables, through the real binary. The oracle is DataFusion's batch answer for the same join over
//! the tables as they stand (the looked-up tables do not change during the run, so a lookup at any
//! time finds what the batch join joins).

use std::process::Command;
use std::sync::Arc;

use cdc_sql_testkit::{Database, MARIADB_ROOT_PASSWORD, MARIADB_ROOT_USER, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

mod common;
use common::Rng;

fn run_job(sql: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    std::fs::write(&path, sql).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cdc-sql");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn with(db: &Database, table: &str) -> String {
    let (user, password) = match db.kind() {
        cdc_sql_testkit::ServerKind::MariaDb => (MARIADB_ROOT_USER, MARIADB_ROOT_PASSWORD),
        cdc_sql_testkit::ServerKind::Postgres => (POSTGRES_SUPERUSER, POSTGRES_PASSWORD),
    };
    format!(
        "'connector' = 'jdbc', 'url' = '{}', 'table-name' = '{table}', 'username' = '{user}', 'password' = '{password}'",
        db.jdbc_url()
    )
}

/// A table of the oracle: rows as the database prints them, cast to the declared types.
fn mem_table(rows: &[Vec<Option<String>>], fields: &[(&str, DataType)]) -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()));
    let columns: Vec<ArrayRef> = fields
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            let text: StringArray = rows.iter().map(|r| r[i].clone()).collect();
            cast(&text, t).unwrap()
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

/// Rows as sorted text lines, NULL as `NULL`.
fn lines(rows: impl Iterator<Item = Vec<Option<String>>>) -> Vec<String> {
    let mut out: Vec<String> = rows
        .map(|r| r.into_iter().map(|v| v.unwrap_or_else(|| "NULL".into())).collect::<Vec<_>>().join(" | "))
        .collect();
    out.sort();
    out
}

async fn oracle(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in &batches {
        let formatters: Vec<_> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for row in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    lines(rows.into_iter())
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_joins_into_postgres_and_mariadb_equal_datafusions_batch_join() {
    let my = cdc_sql_testkit::mariadb().create_database("lookup_src");
    let pg = cdc_sql_testkit::postgres().create_database("lookup_dim");
    let mut rng = Rng(7);
    let mut events = Vec::new();
    for id in 1..=3000 {
        let plan = match rng.below(17) {
            0 => "NULL".to_string(),
            _ => format!("'P{}'", rng.below(45)),
        };
        let country = ["DE", "FR", "US"][rng.below(3) as usize];
        events.push(format!(
            "({id}, {}, {plan}, '{country}', {}, {}.{:02})",
            rng.below(500),
            rng.below(10),
            rng.below(900),
            rng.below(100)
        ));
    }
    my.exec(&format!(
        "CREATE TABLE events (id INT PRIMARY KEY, user_id INT, plan_code VARCHAR(10), country CHAR(2), region_code INT,
           amount DECIMAL(10,2));
         INSERT INTO events VALUES {};
         CREATE TABLE regions (country CHAR(2), code INT, label VARCHAR(40), PRIMARY KEY (country, code));
         INSERT INTO regions SELECT c.country, n.code, CONCAT(c.country, '-', n.code, ' it''s \\\\ ü')
           FROM (SELECT 'DE' AS country UNION SELECT 'FR' UNION SELECT 'US') c,
                (SELECT 0 AS code UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5
                 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) n
           WHERE (n.code + LENGTH(c.country) + ASCII(c.country)) % 4 <> 0;",
        events.join(", ")
    ));
    pg.exec(
        "CREATE TABLE plans (code text PRIMARY KEY, name text, price numeric(10,2), active boolean);
         INSERT INTO plans SELECT 'P' || i, 'plan ''' || i || '''', i * 1.25, i % 5 <> 0 FROM generate_series(0, 39) i;",
    );
    let query = "SELECT e.id, e.user_id, p.name, p.price, r.label, e.amount FROM events AS e
        JOIN plans FOR SYSTEM_TIME AS OF e.proc AS p ON e.plan_code = p.code AND p.active
        LEFT JOIN regions FOR SYSTEM_TIME AS OF e.proc AS r ON e.country = r.country AND e.region_code = r.code";

    // The same tables, as DataFusion joins them in one batch.
    let ctx = SessionContext::new();
    let decimal = DataType::Decimal128(10, 2);
    let events_rows = my.query_opt("SELECT id, user_id, plan_code, country, region_code, amount FROM events");
    let regions_rows = my.query_opt("SELECT country, code, label FROM regions");
    let plans_rows = pg.query_opt("SELECT code, name, price, active FROM plans");
    let int = DataType::Int32;
    let text = DataType::Utf8;
    ctx.register_table(
        "events",
        mem_table(
            &events_rows,
            &[
                ("id", int.clone()),
                ("user_id", int.clone()),
                ("plan_code", text.clone()),
                ("country", text.clone()),
                ("region_code", int.clone()),
                ("amount", decimal.clone()),
            ],
        ),
    )
    .unwrap();
    ctx.register_table(
        "plans",
        mem_table(
            &plans_rows,
            &[
                ("code", text.clone()),
                ("name", text.clone()),
                ("price", decimal.clone()),
                ("active", DataType::Boolean),
            ],
        ),
    )
    .unwrap();
    ctx.register_table(
        "regions",
        mem_table(&regions_rows, &[("country", text.clone()), ("code", int.clone()), ("label", text.clone())]),
    )
    .unwrap();
    let expected = oracle(&ctx, &query.replace("FOR SYSTEM_TIME AS OF e.proc", "")).await;
    assert!(expected.len() > 1500 && expected.iter().any(|l| l.contains("| NULL |")), "the data exercises too little");

    // Without a cache, with a small one that evicts, with the deprecated options.
    for (run, cache) in [
        ("none", ""),
        ("partial", ", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '7'"),
        ("legacy", ", 'lookup.cache.max-rows' = '100', 'lookup.cache.ttl' = '10 min'"),
    ] {
        let sink = format!("enriched_{run}");
        let (code, output) = run_job(&format!(
            "SET 'datafusion.execution.batch_size' = '128';
             CREATE TABLE events (id INT, user_id INT, plan_code STRING, country STRING, region_code INT,
               amount DECIMAL(10, 2), proc AS PROCTIME(), PRIMARY KEY (id) NOT ENFORCED) WITH ({});
             CREATE TABLE plans (code STRING, name STRING, price DECIMAL(10, 2), active BOOLEAN,
               PRIMARY KEY (code) NOT ENFORCED) WITH ({}{cache});
             CREATE TABLE regions (country STRING, code INT, label STRING, PRIMARY KEY (country, code) NOT ENFORCED)
               WITH ({}{cache});
             CREATE TABLE sink (id INT, user_id INT, plan_name STRING, price DECIMAL(10, 2), label STRING,
               amount DECIMAL(10, 2), PRIMARY KEY (id) NOT ENFORCED) WITH ({}, 'sink.auto-create-table' = 'true');
             INSERT INTO sink {query};",
            with(&my, "events"),
            with(&pg, "plans"),
            with(&my, "regions"),
            with(&pg, &sink)
        ));
        assert_eq!(code, 0, "{run}: {output}");
        let got = lines(
            pg.query_opt(&format!(
                "SELECT id::text, user_id::text, plan_name, price::text, label, amount::text FROM {sink}"
            ))
            .into_iter(),
        );
        assert_eq!(got.len(), expected.len(), "{run}");
        assert_eq!(got, expected, "{run}");
    }
}

/// `'lookup.missing-key' = 'error'`: a change whose key the looked-up table lacks stops the job,
/// naming the key; with a dead-letter file it goes there with its position and the other changes
/// are joined as usual. A LEFT JOIN, which keeps such changes, refuses the option.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_is_an_error_or_a_dead_letter() {
    let my = cdc_sql_testkit::mariadb().create_database("missing_src");
    let pg = cdc_sql_testkit::postgres().create_database("missing_dim");
    my.exec(
        "CREATE TABLE events (id INT PRIMARY KEY, user_id INT);
         INSERT INTO events SELECT seq, seq % 12 + 1 FROM seq_1_to_60;",
    );
    pg.exec(
        "CREATE TABLE users (id int PRIMARY KEY, name text);
         INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 12) i WHERE i NOT IN (4, 7);",
    );
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let job = |set: &str, join: &str, sink: &str| {
        format!(
            "{set}
             CREATE TABLE events (id INT, user_id INT, proc AS PROCTIME(), PRIMARY KEY (id) NOT ENFORCED) WITH ({});
             CREATE TABLE users (id INT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
               WITH ({}, 'lookup.missing-key' = 'error');
             CREATE TABLE sink (id INT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
               WITH ({}, 'sink.auto-create-table' = 'true');
             INSERT INTO sink SELECT e.id, u.name FROM events AS e
               {join} users FOR SYSTEM_TIME AS OF e.proc AS u ON e.user_id = u.id;",
            with(&my, "events"),
            with(&pg, "users"),
            with(&pg, sink)
        )
    };

    let (code, output) = run_job(&job("", "JOIN", "stopped"));
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("`users` has no row for id = 4") || output.contains("`users` has no row for id = 7"),
        "{output}"
    );
    assert!(output.contains("dead-letter.path"), "the message says how to go on: {output}");

    let (code, output) = run_job(&job("", "LEFT JOIN", "padded"));
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("is for INNER lookup joins"), "{output}");

    let (code, output) = run_job(&job(&format!("SET 'dead-letter.path' = '{}';", dead.display()), "JOIN", "lettered"));
    assert_eq!(code, 0, "{output}");
    let joined: Vec<String> =
        pg.query("SELECT id FROM lettered ORDER BY id").into_iter().map(|r| r[0].clone()).collect();
    let (missing, found): (Vec<i32>, Vec<i32>) = (1..=60).partition(|id| [4, 7].contains(&(id % 12 + 1)));
    assert_eq!(joined, found.iter().map(|i| i.to_string()).collect::<Vec<_>>(), "the other keys are joined");
    let letters: Vec<serde_json::Value> =
        std::fs::read_to_string(&dead).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut ids: Vec<i64> = letters.iter().map(|l| l["row"]["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, missing.iter().map(|i| *i as i64).collect::<Vec<_>>());
    for letter in &letters {
        let user = letter["row"]["user_id"].as_i64().unwrap();
        assert_eq!(letter["stage"], "lookup", "{letter}");
        assert_eq!(letter["table"], "users", "{letter}");
        assert_eq!(letter["row_kind"], "+I", "{letter}");
        assert!(letter["error"].as_str().unwrap().contains(&format!("has no row for id = {user}")), "{letter}");
        assert!(!letter["position"].is_null(), "{letter}");
    }
}
