//! The `kafka` and `upsert-kafka` connectors against a real Kafka-compatible broker (Tansu,
//! started by the testkit on a loopback port), with records produced and read back by an
//! independent client (Python's confluent-kafka). The oracle is always what was produced (or the
//! source database's table), never what the engine says.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cdc_sql_testkit::{kafka, Database, Record, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};
use common::{difference, read_table, JobProcess, Rng, Table};

const DEADLINE: Duration = Duration::from_secs(120);

fn job_file(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, sql).unwrap();
    path
}

fn run(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cdc-sql")).arg("-f").arg(path).env("RUST_LOG", "warn").output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn pg_sink(prefix: &str, ddl: &str) -> Database {
    let db = cdc_sql_testkit::postgres().create_database(prefix);
    db.exec(ddl);
    db
}

fn jdbc(db: &Database, table: &str) -> String {
    format!(
        "'connector' = 'jdbc', 'url' = '{}', 'table-name' = '{table}', 'username' = '{POSTGRES_SUPERUSER}', \
         'password' = '{POSTGRES_PASSWORD}'",
        db.jdbc_url()
    )
}

/// Polls until the sink table equals `expected`, failing with the difference and the jobs' logs.
fn wait_equal(db: &Database, table: &str, expected: &Table, jobs: &mut [&mut JobProcess]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let actual = read_table(db, table);
        if &actual == expected {
            return;
        }
        for job in jobs.iter_mut() {
            job.assert_running(0);
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not converge: {}\n{}",
            difference(expected, &actual),
            jobs.iter().map(|j| j.log_tail()).collect::<Vec<_>>().join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A bounded read ('scan.bounded.mode' = 'latest-offset') of a three-partition JSON topic ends
/// on its own, and every record arrives once, with its key fields and the record's metadata.
#[test]
fn a_json_topic_read_to_its_end_reaches_postgres_with_key_and_metadata() {
    let broker = kafka();
    let topic = broker.create_topic("json_bounded", 3);
    let mut records = Vec::new();
    for id in 1..=60i64 {
        let mut r =
            Record::keyed(format!("{{\"id\":{id}}}"), Some(&format!("{{\"v\":{},\"note\":\"n{id}\"}}", id * 3)));
        r.headers = vec![("origin".into(), format!("h{id}").into_bytes())];
        r.timestamp = Some(1_700_000_000_000 + id);
        records.push(r);
    }
    broker.produce(&topic, &records);
    let produced = broker.read_all(&topic);
    assert_eq!(produced.len(), 60);

    let sink = pg_sink(
        "kafka_json",
        "CREATE TABLE t (id bigint PRIMARY KEY, v bigint, note text, part int, off bigint, ts timestamptz, origin bytea)",
    );
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE src (
  id BIGINT, v BIGINT, note STRING,
  part INT METADATA FROM 'partition' VIRTUAL, off BIGINT METADATA FROM 'offset' VIRTUAL,
  ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', hs MAP<STRING, BYTES> METADATA FROM 'headers'
) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
  'key.format' = 'json', 'key.fields' = 'id', 'value.format' = 'json', 'value.fields-include' = 'EXCEPT_KEY');
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, part INT, off BIGINT, ts TIMESTAMP_LTZ(3), origin BYTES,
  PRIMARY KEY (id) NOT ENFORCED) WITH ({});
INSERT INTO dst SELECT id, v, note, part, off, ts, hs['origin'] FROM src;
",
        broker.bootstrap(),
        jdbc(&sink, "t")
    );
    let output = run(&job_file(dir.path(), "job.sql", &sql));
    assert!(output.status.success(), "{}", text(&output));

    let rows = sink.query(
        "SELECT id, v, note, part, off, (extract(epoch from ts) * 1000)::bigint, convert_from(origin, 'UTF8') FROM t ORDER BY id",
    );
    assert_eq!(rows.len(), 60, "{rows:?}");
    for consumed in &produced {
        let key = consumed.key_text().unwrap();
        let id: i64 = key.trim_start_matches("{\"id\":").trim_end_matches('}').parse().unwrap();
        let row = &rows[(id - 1) as usize];
        assert_eq!(
            row,
            &vec![
                id.to_string(),
                (id * 3).to_string(),
                format!("n{id}"),
                consumed.partition.to_string(),
                consumed.offset.to_string(),
                (1_700_000_000_000 + id).to_string(),
                format!("h{id}"),
            ]
        );
    }
}

/// One change of the model table as Debezium's MySQL connector writes it without a schema
/// (`decimal.handling.mode` aside: the values here are integers and strings).
fn envelope(op: char, before: Option<(i64, i64, &str)>, after: Option<(i64, i64, &str)>, ts_ms: i64) -> String {
    let row = |r: Option<(i64, i64, &str)>| match r {
        None => "null".to_string(),
        Some((id, v, note)) => format!("{{\"id\":{id},\"v\":{v},\"note\":\"{note}\"}}"),
    };
    format!(
        "{{\"before\":{},\"after\":{},\"source\":{{\"version\":\"2.7.3.Final\",\"connector\":\"mysql\",\"name\":\"app\",\
         \"ts_ms\":{ts_ms},\"db\":\"app\",\"table\":\"t\",\"server_id\":1,\"file\":\"binlog.000003\",\"pos\":4711,\
         \"row\":0}},\"op\":\"{op}\",\"ts_ms\":{}}}",
        row(before),
        row(after),
        ts_ms + 3
    )
}

/// A random run of inserts, updates (some moving the key) and deletes on the model, as Debezium
/// envelopes keyed by the row's id (so one key's changes stay in one partition, in order).
fn changes(rng: &mut Rng, model: &mut Table, next_id: &mut i64, count: usize) -> Vec<Record> {
    let mut out = Vec::new();
    let key = |id: i64| format!("{{\"id\":{id}}}");
    for _ in 0..count {
        let ts = 1_760_000_000_000 + out.len() as i64;
        let existing: Vec<i64> = model.keys().copied().collect();
        let choice = if existing.len() < 20 { 0 } else { rng.below(10) };
        if choice < 5 {
            *next_id += 1;
            let id = *next_id;
            let row = (rng.below(1000) as i64, format!("i{}", rng.below(1000)));
            out.push(Record::keyed(key(id), Some(&envelope('c', None, Some((id, row.0, &row.1)), ts))));
            model.insert(id, row);
        } else if choice < 9 {
            let id = existing[rng.below(existing.len() as u64) as usize];
            let old = model[&id].clone();
            let new = (rng.below(1000) as i64, format!("u{}", rng.below(1000)));
            out.push(Record::keyed(
                key(id),
                Some(&envelope('u', Some((id, old.0, &old.1)), Some((id, new.0, &new.1)), ts)),
            ));
            model.insert(id, new);
        } else {
            let id = existing[rng.below(existing.len() as u64) as usize];
            let old = model.remove(&id).unwrap();
            out.push(Record::keyed(key(id), Some(&envelope('d', Some((id, old.0, &old.1)), None, ts))));
            // Debezium follows a delete with a tombstone for log compaction: skipped.
            out.push(Record::keyed(key(id), None));
        }
    }
    out
}

/// A debezium-json topic into a keyed PostgreSQL table, the job SIGKILLed and restarted from its
/// checkpoints while changes keep arriving: the table ends equal to the model row for row.
#[test]
fn a_debezium_topic_converges_on_postgres_after_sigkills() {
    for seed in common::seeds(1) {
        let broker = kafka();
        let topic = broker.create_topic("dbz_kill", 3);
        let sink = pg_sink("kafka_dbz", "CREATE TABLE t (id bigint PRIMARY KEY, v bigint, note text)");
        let dir = tempfile::tempdir().unwrap();
        let sql = format!(
            "SET 'execution.checkpointing.interval' = '300ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'properties.group.id' = 'dbz-kill', 'scan.startup.mode' = 'earliest-offset', 'format' = 'debezium-json');
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
INSERT INTO dst SELECT id, v, note FROM src;
",
            dir.path().join("state").display(),
            broker.bootstrap(),
            jdbc(&sink, "t")
        );
        let path = job_file(dir.path(), "job.sql", &sql);
        let mut rng = Rng(seed);
        let mut model = Table::new();
        let mut next_id = 0;
        let mut job = JobProcess::spawn(&path);
        for round in 0..6 {
            let batch = changes(&mut rng, &mut model, &mut next_id, 120);
            broker.produce(&topic, &batch);
            std::thread::sleep(rng.millis(50, 600));
            job.assert_running(seed);
            if round % 2 == 1 {
                job.sigkill();
                job = JobProcess::spawn(&path);
            }
        }
        // Changes only the last run can deliver.
        broker.produce(&topic, &changes(&mut rng, &mut model, &mut next_id, 40));
        wait_equal(&sink, "t", &model, &mut [&mut job]);
        job.stop_gracefully(seed);
    }
}

/// Exactly-once into MariaDB through the jdbc sink's offsets table: the Kafka positions are
/// committed in the same transaction as the rows, so an append-only table without a key (where
/// a repeat would show as a duplicate) holds every record exactly once after SIGKILLs. (Flushes
/// happen at checkpoints only, as docs/connectors/jdbc.md asks of append-only tables.)
#[test]
fn exactly_once_into_mariadb_with_kafka_positions_in_the_offsets_table() {
    let broker = kafka();
    let topic = broker.create_topic("eo_mariadb", 2);
    let sink = cdc_sql_testkit::mariadb().create_database("kafka_eo");
    sink.exec("CREATE TABLE events (id BIGINT NOT NULL, note VARCHAR(32))");
    let dir = tempfile::tempdir().unwrap();
    let c = sink.admin_connection();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '200ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (id BIGINT, note STRING) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
CREATE TABLE dst (id BIGINT, note STRING) WITH ('connector' = 'jdbc', 'url' = 'jdbc:mysql://{}:{}/{}',
  'table-name' = 'events', 'username' = '{}', 'password' = '{}', 'sink.offsets-table' = 'cdc_offsets',
  'sink.buffer-flush.max-rows' = '0', 'sink.buffer-flush.interval' = '0');
INSERT INTO dst SELECT id, note FROM src;
",
        dir.path().join("state").display(),
        broker.bootstrap(),
        c.host,
        c.port,
        sink.name(),
        c.user,
        c.password
    );
    let path = job_file(dir.path(), "job.sql", &sql);
    let mut job = JobProcess::spawn(&path);
    let mut rng = Rng(0xE0);
    let mut produced = 0i64;
    for round in 0..5 {
        let values: Vec<String> =
            (0..150).map(|i| format!("{{\"id\":{},\"note\":\"r{round}\"}}", produced + i + 1)).collect();
        produced += 150;
        broker.produce_values(&topic, &values.iter().map(String::as_str).collect::<Vec<_>>());
        std::thread::sleep(rng.millis(100, 500));
        job.assert_running(0);
        job.sigkill();
        job = JobProcess::spawn(&path);
    }
    // Records only the last run can deliver: the count below then also says it is running.
    let values: Vec<String> = (1..=50).map(|i| format!("{{\"id\":{},\"note\":\"last\"}}", produced + i)).collect();
    produced += 50;
    broker.produce_values(&topic, &values.iter().map(String::as_str).collect::<Vec<_>>());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let count: i64 = sink.query_one("SELECT COUNT(*) FROM events").parse().unwrap();
        if count >= produced {
            break;
        }
        job.assert_running(0);
        assert!(Instant::now() < deadline, "{count} of {produced} rows arrived:\n{}", job.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    job.stop_gracefully(0);
    let duplicates = sink.query("SELECT id, COUNT(*) FROM events GROUP BY id HAVING COUNT(*) <> 1 LIMIT 5");
    assert!(duplicates.is_empty(), "rows delivered twice: {duplicates:?}");
    assert_eq!(sink.query_one("SELECT COUNT(DISTINCT id) FROM events"), produced.to_string());
}

/// CDC source → upsert-kafka (buffering the last change per key) → kafka source (upsert) →
/// PostgreSQL: the second job's table ends equal to the source table, deletes travel as
/// tombstones, and each key stays in one partition.
#[test]
fn upsert_kafka_round_trip_from_postgres_cdc_back_to_postgres() {
    let broker = kafka();
    let topic = broker.create_topic("upsert_rt", 2);
    let source = cdc_sql_testkit::postgres().create_database("kafka_up_src");
    source.exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL, note text NOT NULL);
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t SELECT i, i * 7 % 1000, 'row-' || i FROM generate_series(1, 300) i;",
    );
    let sink = pg_sink("kafka_up_dst", "CREATE TABLE t (id bigint PRIMARY KEY, v bigint, note text)");
    let dir = tempfile::tempdir().unwrap();
    let c = source.connection();
    let slot = format!("s_{}", source.name()).to_lowercase();
    let to_kafka = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'postgres-cdc', 'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}',
  'database-name' = '{}', 'schema-name' = 'public', 'table-name' = 't', 'slot.name' = '{slot}');
CREATE TABLE topic (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'upsert-kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'key.format' = 'json', 'value.format' = 'json',
  'sink.buffer-flush.max-rows' = '64', 'sink.buffer-flush.interval' = '1s');
INSERT INTO topic SELECT * FROM src;
",
        dir.path().join("state1").display(),
        c.host,
        c.port,
        // A superuser creates Debezium's default publication FOR ALL TABLES.
        POSTGRES_SUPERUSER,
        POSTGRES_PASSWORD,
        source.name(),
        broker.bootstrap()
    );
    let from_kafka = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE topic (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'upsert-kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'key.format' = 'json', 'value.format' = 'json');
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
INSERT INTO dst SELECT * FROM topic;
",
        dir.path().join("state2").display(),
        broker.bootstrap(),
        jdbc(&sink, "t")
    );
    let mut producer = JobProcess::spawn(&job_file(dir.path(), "to_kafka.sql", &to_kafka));
    let mut consumer = JobProcess::spawn(&job_file(dir.path(), "from_kafka.sql", &from_kafka));
    // The snapshot first: changes made while it is taken would show in it, not as events.
    wait_equal(&sink, "t", &read_table(&source, "t"), &mut [&mut producer, &mut consumer]);
    source.exec(
        "UPDATE t SET v = v + 1 WHERE id % 3 = 0;
         DELETE FROM t WHERE id % 10 = 0;
         UPDATE t SET note = 'moved' WHERE id % 7 = 0;
         UPDATE t SET id = id + 1000 WHERE id % 11 = 0;
         INSERT INTO t SELECT i, i, 'late-' || i FROM generate_series(301, 350) i;",
    );
    wait_equal(&sink, "t", &read_table(&source, "t"), &mut [&mut producer, &mut consumer]);
    producer.stop_gracefully(0);
    consumer.stop_gracefully(0);
    common::drop_slot(&source, &slot);

    let records = broker.read_all(&topic);
    let tombstones = records.iter().filter(|r| r.value.is_none()).count();
    // 30 deleted keys, and the 25 keys the key move left (multiples of 11 not deleted before).
    assert_eq!(tombstones, 55, "one tombstone per deleted or moved key");
    // Each key's records sit in one partition.
    let mut partition_of = BTreeMap::new();
    for r in &records {
        let previous = partition_of.insert(r.key_text().unwrap(), r.partition);
        assert!(previous.is_none() || previous == Some(r.partition), "key {:?} in two partitions", r.key_text());
    }
}

/// A record that does not parse stops the job, naming topic, partition, offset and the bytes;
/// with 'json.ignore-parse-errors' it is skipped and the rest arrives.
#[test]
fn a_record_that_does_not_parse_stops_the_job_or_is_skipped_when_asked() {
    let broker = kafka();
    let topic = broker.create_topic("bad_json", 1);
    broker.produce_values(&topic, &["{\"id\":1,\"note\":\"a\"}", "{\"id\":2,\"note\":", "{\"id\":3,\"note\":\"c\"}"]);
    let dir = tempfile::tempdir().unwrap();
    let job = |extra: &str| {
        format!(
            "CREATE TABLE src (id BIGINT, note STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}',
  'properties.bootstrap.servers' = '{}', 'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset', 'format' = 'json'{extra});
CREATE TABLE out (id BIGINT, note STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT * FROM src;
",
            broker.bootstrap()
        )
    };
    let output = run(&job_file(dir.path(), "strict.sql", &job("")));
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains(&format!("{topic}[0] offset 1")), "{message}");
    assert!(message.contains("{\\\"id\\\":2,\\\"note\\\":"), "{message}");
    assert!(message.contains("ignore-parse-errors"), "{message}");

    let output = run(&job_file(dir.path(), "lenient.sql", &job(", 'json.ignore-parse-errors' = 'true'")));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    assert!(printed.contains("+I[1, a]") && printed.contains("+I[3, c]"), "{printed}");
    assert!(!printed.contains("+I[2"), "{printed}");

    // With a dead-letter file (and no 'ignore-parse-errors') it is set aside with its bytes.
    let dead = dir.path().join("dead.jsonl");
    let set = format!("SET 'dead-letter.path' = '{}';\n", dead.display());
    let output = run(&job_file(dir.path(), "lettered.sql", &format!("{set}{}", job(""))));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    assert!(printed.contains("+I[1, a]") && printed.contains("+I[3, c]"), "{printed}");
    let letters: Vec<serde_json::Value> =
        std::fs::read_to_string(&dead).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["stage"], "format");
    assert_eq!(letters[0]["table"], "src");
    assert_eq!(letters[0]["row"]["offset"], 1);
    assert_eq!(letters[0]["row"]["value"], "{\"id\":2,\"note\":");
    assert!(!letters[0]["position"].is_null(), "{}", letters[0]);
}

/// A topic that does not exist and brokers that cannot be reached are clear errors, and a
/// password in 'properties.sasl.jaas.config' never shows.
#[test]
fn missing_topics_and_unreachable_brokers_are_clear_errors_without_secrets() {
    let broker = kafka();
    let dir = tempfile::tempdir().unwrap();
    let sql = |servers: &str, topic: &str| {
        format!(
            "CREATE TABLE src (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
  'properties.bootstrap.servers' = '{servers}', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json',
  'properties.sasl.mechanism' = 'PLAIN', 'properties.security.protocol' = 'PLAINTEXT',
  'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT * FROM src;
"
        )
    };
    let output = run(&job_file(dir.path(), "missing.sql", &sql(&broker.bootstrap(), "no_such_topic_here")));
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("topic 'no_such_topic_here'") && message.contains("does not exist"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = run(&job_file(dir.path(), "down.sql", &sql(&format!("127.0.0.1:{closed}"), "t")));
    let message = text(&output);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(message.contains("cannot reach the Kafka brokers"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let shown = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-e")
        .arg(format!(
            "{} SHOW CREATE TABLE src;",
            sql(&broker.bootstrap(), "t").lines().take(4).collect::<Vec<_>>().join("\n")
        ))
        .output()
        .unwrap();
    let shown = text(&shown);
    assert!(shown.contains("sasl.jaas.config") && !shown.contains("hunter2"), "{shown}");
}

/// MariaDB → mysql-cdc → kafka (debezium-json, as Flink writes it: `-U` as op `d`, `+U` as op
/// `c`) → kafka source (debezium-json) → PostgreSQL: the changelog survives the trip through
/// Kafka and the PostgreSQL table ends equal to the MariaDB table, key moves and deletes included.
#[test]
fn a_changelog_written_as_debezium_json_reads_back_into_an_equal_table() {
    let broker = kafka();
    let topic = broker.create_topic("dbz_rt", 3);
    let source = cdc_sql_testkit::mariadb().create_database("kafka_dbz_src");
    source.exec(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(32) NOT NULL);
         INSERT INTO t SELECT seq, seq * 7 % 1000, CONCAT('row-', seq) FROM seq_1_to_200;",
    );
    let sink = pg_sink("kafka_dbz_rt", "CREATE TABLE t (id bigint PRIMARY KEY, v bigint, note text)");
    let dir = tempfile::tempdir().unwrap();
    let c = source.connection();
    let to_kafka = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'mysql-cdc', 'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}',
  'database-name' = '{}', 'table-name' = 't', 'server-id' = '5950');
CREATE TABLE topic (id BIGINT, v BIGINT, note STRING) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'key.format' = 'json', 'key.fields' = 'id', 'value.format' = 'debezium-json');
INSERT INTO topic SELECT * FROM src;
",
        dir.path().join("state1").display(),
        c.host,
        c.port,
        c.user,
        c.password,
        source.name(),
        broker.bootstrap()
    );
    let from_kafka = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE topic (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}',
  'scan.startup.mode' = 'earliest-offset', 'value.format' = 'debezium-json');
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
INSERT INTO dst SELECT * FROM topic;
",
        dir.path().join("state2").display(),
        broker.bootstrap(),
        jdbc(&sink, "t")
    );
    let mut producer = JobProcess::spawn(&job_file(dir.path(), "to_kafka.sql", &to_kafka));
    let mut consumer = JobProcess::spawn(&job_file(dir.path(), "from_kafka.sql", &from_kafka));
    wait_equal(&sink, "t", &read_table(&source, "t"), &mut [&mut producer, &mut consumer]);
    source.exec(
        "UPDATE t SET v = v + 1 WHERE id % 3 = 0;
         DELETE FROM t WHERE id % 10 = 0;
         UPDATE t SET id = id + 1000 WHERE id % 7 = 0;
         INSERT INTO t SELECT seq, seq, CONCAT('late-', seq) FROM seq_201_to_250;",
    );
    wait_equal(&sink, "t", &read_table(&source, "t"), &mut [&mut producer, &mut consumer]);
    producer.stop_gracefully(0);
    consumer.stop_gracefully(0);

    // What Flink writes for an update: a `d` of the old row, then a `c` of the new one.
    let values: Vec<String> = broker.read_all(&topic).iter().filter_map(|r| r.value_text()).collect();
    let moved = values.iter().filter(|v| v.contains("\"op\":\"d\"") && v.contains("\"id\":7,")).count();
    assert_eq!(moved, 1, "the key move of id 7 is one delete of the old row: {values:?}");
}

/// `topic-pattern` picks up a topic created while the job runs (partition discovery), reading it
/// from its beginning.
#[test]
fn a_topic_pattern_picks_up_new_topics() {
    let broker = kafka();
    let prefix = format!("disc_{}", std::process::id());
    broker.create_named_topic(&format!("{prefix}_a"), 1);
    broker.produce_values(&format!("{prefix}_a"), &["{\"id\":1,\"v\":1,\"note\":\"a\"}"]);
    let sink = pg_sink("kafka_disc", "CREATE TABLE t (id bigint PRIMARY KEY, v bigint, note text)");
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE src (id BIGINT, v BIGINT, note STRING) WITH (
  'connector' = 'kafka', 'topic-pattern' = '{prefix}_.*', 'properties.bootstrap.servers' = '{}',
  'scan.startup.mode' = 'earliest-offset', 'scan.topic-partition-discovery.interval' = '300ms', 'format' = 'json');
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
INSERT INTO dst SELECT * FROM src;
",
        broker.bootstrap(),
        jdbc(&sink, "t")
    );
    let mut job = JobProcess::spawn(&job_file(dir.path(), "job.sql", &sql));
    let mut expected = Table::new();
    expected.insert(1, (1, "a".into()));
    wait_equal(&sink, "t", &expected, &mut [&mut job]);
    broker.create_named_topic(&format!("{prefix}_b"), 2);
    broker.produce_values(
        &format!("{prefix}_b"),
        &["{\"id\":2,\"v\":2,\"note\":\"b\"}", "{\"id\":3,\"v\":3,\"note\":\"c\"}"],
    );
    expected.insert(2, (2, "b".into()));
    expected.insert(3, (3, "c".into()));
    wait_equal(&sink, "t", &expected, &mut [&mut job]);
    job.stop_gracefully(0);
}

/// The body of `GET /metrics` on `port`.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// /metrics shows what the source read, the records it skipped under 'ignore-parse-errors', and
/// each partition's next offset.
#[test]
fn metrics_show_events_skipped_records_and_partition_offsets() {
    let broker = kafka();
    let topic = broker.create_topic("metrics", 1);
    broker.produce_values(&topic, &["{\"id\":1}", "not json", "{\"id\":3}"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE src (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
  'properties.bootstrap.servers' = '{}', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json',
  'json.ignore-parse-errors' = 'true');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT * FROM src;
",
        broker.bootstrap()
    );
    let address = format!("127.0.0.1:{port}");
    let mut job = JobProcess::spawn_with(&job_file(dir.path(), "job.sql", &sql), &[("CDC_SQL_HTTP_ADDR", &address)]);
    let deadline = Instant::now() + DEADLINE;
    let wanted = [
        "cdc_sql_sourceEvents{job=\"job\",pipeline=\"INSERT INTO out\",table=\"src\"} 2".to_string(),
        "cdc_sql_sourceRecordsSkipped{job=\"job\",pipeline=\"INSERT INTO out\",table=\"src\"} 1".to_string(),
        format!("position=\"{topic}[0]=3\""),
    ];
    loop {
        let metrics = scrape(port);
        if wanted.iter().all(|w| metrics.contains(w.as_str())) {
            break;
        }
        job.assert_running(0);
        assert!(Instant::now() < deadline, "metrics never showed {wanted:?}:\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    job.stop_gracefully(0);
}
