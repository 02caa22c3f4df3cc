//! The `jdbc` connector against real MariaDB and PostgreSQL servers (testkit), through the real
//! binary: type zoos both ways (jdbc scan → jdbc sink), changelogs with updates, deletes and key
//! changes compared with the expected final state, partitioned scans covering every row once,
//! and failures that are clear, never print the password and apply nothing half-way.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use cdc_sql::changelog::{ChangeBatch, RowKind};
use cdc_sql_testkit::{Database, MARIADB_ROOT_PASSWORD, MARIADB_ROOT_USER, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_job(sql: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    std::fs::write(&path, sql).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cdc-sql");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "job failed:\n{}\n{}", run.stdout, run.stderr);
    run
}

/// WITH options reaching `db` as its administrator (the sinks write).
fn with_admin(db: &Database, table: &str) -> String {
    let (user, password) = match db.kind() {
        cdc_sql_testkit::ServerKind::MariaDb => (MARIADB_ROOT_USER, MARIADB_ROOT_PASSWORD),
        cdc_sql_testkit::ServerKind::Postgres => (POSTGRES_SUPERUSER, POSTGRES_PASSWORD),
    };
    format!(
        "'connector' = 'jdbc', 'url' = '{}', 'table-name' = '{table}', 'username' = '{user}', 'password' = '{password}'",
        db.jdbc_url()
    )
}

/// WITH options reaching `db` as the read-only CDC user (the scans read).
fn with_reader(db: &Database, table: &str) -> String {
    let c = db.connection();
    format!(
        "'connector' = 'jdbc', 'url' = '{}', 'table-name' = '{table}', 'username' = '{}', 'password' = '{}'",
        db.jdbc_url(),
        c.user,
        c.password
    )
}

const ZOO_COLUMNS: &str = "id INT, flag BOOLEAN, tiny BOOLEAN, tiny_num SMALLINT, u32 BIGINT, u64 DECIMAL(20, 0), \
     amount DECIMAL(20, 4), dt TIMESTAMP(6), ts TIMESTAMP_LTZ(6), d DATE, t TIME(6), doc STRING, mood STRING, \
     tags STRING, name STRING, raw BYTES, dbl DOUBLE, flt FLOAT, PRIMARY KEY (id) NOT ENFORCED";

#[test]
fn mariadb_type_zoo_lands_in_postgres() {
    let my = cdc_sql_testkit::mariadb().create_database("zoo_src");
    my.exec(
        "SET SESSION sql_mode = ''; SET time_zone = '+00:00';
         CREATE TABLE zoo (id INT PRIMARY KEY, flag BIT(1), tiny TINYINT(1), tiny_num TINYINT(1), u32 INT UNSIGNED,
           u64 BIGINT UNSIGNED, amount DECIMAL(20,4), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, d DATE,
           t TIME(6), doc JSON, mood ENUM('happy','sad'), tags SET('a','b','c'), name VARCHAR(100), raw BLOB,
           dbl DOUBLE, flt FLOAT);
         INSERT INTO zoo VALUES
           (1, b'1', 1, 7, 4294967295, 18446744073709551615, -1234567890123456.7891, '2024-02-29 23:59:59.123456',
            '2038-01-19 03:14:07.999999', '1999-12-31', '23:59:59.5', '{\"a\": [1, 2]}', 'sad', 'a,c',
            'it''s a \\\\ \"quote\" ünïcødé', X'00FF10', 0.1, 1.5),
           (2, b'0', 0, -3, 0, 0, 0, '0000-00-00 00:00:00', NULL, '0000-00-00', '00:00:00', 'null', 'happy', '',
            '', X'', -1e300, -0.25),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let pg = cdc_sql_testkit::postgres().create_database("zoo_dst");
    pg.exec(
        "CREATE TABLE zoo (id int PRIMARY KEY, flag boolean, tiny boolean, tiny_num smallint, u32 bigint,
           u64 numeric(20,0), amount numeric(20,4), dt timestamp(6), ts timestamptz(6), d date, t time(6),
           doc jsonb, mood text, tags text, name varchar(100), raw bytea, dbl double precision, flt real)",
    );
    ok(run_job(&format!(
        "CREATE TABLE src ({ZOO_COLUMNS}) WITH ({}, 'scan.partition.column' = 'id', 'scan.partition.num' = '2',
            'scan.partition.lower-bound' = '1', 'scan.partition.upper-bound' = '3');
         CREATE TABLE dst ({ZOO_COLUMNS}) WITH ({});
         INSERT INTO dst SELECT * FROM src;",
        with_reader(&my, "zoo"),
        with_admin(&pg, "zoo")
    )));
    let rows = pg.query_opt(
        "SELECT id, flag, tiny, tiny_num, u32, u64, amount, dt, ts AT TIME ZONE 'UTC', d, t, doc, mood, tags, name,
                raw, dbl, flt FROM zoo ORDER BY id",
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            vec![
                s("1"),
                s("t"),
                s("t"),
                s("7"),
                s("4294967295"),
                s("18446744073709551615"),
                s("-1234567890123456.7891"),
                s("2024-02-29 23:59:59.123456"),
                s("2038-01-19 03:14:07.999999"),
                s("1999-12-31"),
                s("23:59:59.5"),
                s("{\"a\": [1, 2]}"),
                s("sad"),
                s("a,c"),
                s("it's a \\ \"quote\" ünïcødé"),
                s("\\x00ff10"),
                s("0.1"),
                s("1.5"),
            ],
            vec![
                s("2"),
                s("f"),
                s("f"),
                s("-3"),
                s("0"),
                s("0"),
                s("0.0000"),
                None,
                None,
                None,
                s("00:00:00"),
                s("null"),
                s("happy"),
                s(""),
                s(""),
                s("\\x"),
                s("-1e+300"),
                s("-0.25"),
            ],
            vec![
                s("3"),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ],
        ]
    );
}

#[test]
fn postgres_type_zoo_lands_in_mariadb_created_from_the_declaration() {
    let pg = cdc_sql_testkit::postgres().create_database("zoo_pg");
    pg.exec(
        "CREATE TABLE zoo (id int PRIMARY KEY, flag boolean, small smallint, big bigint, amount numeric(20,4),
           dt timestamp(6), ts timestamptz(6), d date, t time(6), doc jsonb, name text, raw bytea,
           dbl double precision, flt real, uid uuid);
         INSERT INTO zoo VALUES
           (1, true, -32768, 9223372036854775807, 12.3456, '1900-01-01 00:00:00.000001', '2024-06-01 12:00:00+02',
            '0001-01-01', '12:34:56.789', '{\"k\": \"v\"}', E'tab\\there ''q''', '\\xdeadbeef', 2.5, -0.5,
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
           (2, false, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, '', '', 0, 0, NULL),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let columns = "id INT, flag BOOLEAN, small SMALLINT, big BIGINT, amount DECIMAL(20, 4), dt TIMESTAMP(6), \
         ts TIMESTAMP_LTZ(6), d DATE, t TIME(3), doc STRING, name STRING, raw BYTES, dbl DOUBLE, flt FLOAT, uid STRING, \
         PRIMARY KEY (id) NOT ENFORCED";
    let my = cdc_sql_testkit::mariadb().create_database("zoo_my");
    ok(run_job(&format!(
        "CREATE TABLE src ({columns}) WITH ({}, 'scan.partition.column' = 'id', 'scan.partition.num' = '3',
            'scan.partition.lower-bound' = '0', 'scan.partition.upper-bound' = '10', 'scan.fetch-size' = '1');
         CREATE TABLE dst ({columns}) WITH ({}, 'sink.auto-create-table' = 'true');
         INSERT INTO dst SELECT * FROM src;",
        with_reader(&pg, "zoo"),
        with_admin(&my, "zoo")
    )));
    let rows = my.query_opt(
        "SELECT id, flag, small, big, amount, dt, ts, d, t, doc, name, HEX(raw), dbl, flt, uid FROM zoo ORDER BY id",
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            vec![
                s("1"),
                s("1"),
                s("-32768"),
                s("9223372036854775807"),
                s("12.3456"),
                s("1900-01-01 00:00:00.000001"),
                s("2024-06-01 10:00:00.000000"),
                s("0001-01-01"),
                s("12:34:56.789"),
                s("{\"k\": \"v\"}"),
                s("tab\there 'q'"),
                s("DEADBEEF"),
                s("2.5"),
                s("-0.5"),
                s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ],
            vec![
                s("2"),
                s("0"),
                s("0"),
                s("0"),
                s("0.0000"),
                None,
                None,
                None,
                None,
                None,
                s(""),
                s(""),
                s("0"),
                s("0"),
                None,
            ],
            vec![s("3"), None, None, None, None, None, None, None, None, None, None, None, None, None, None],
        ]
    );
    let key = my.query_one(
        "SELECT GROUP_CONCAT(COLUMN_NAME) FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'zoo' AND CONSTRAINT_NAME = 'PRIMARY'",
    );
    assert_eq!(key, "id");
}

/// The final table a changelog leaves when applied row by row with the sink's key `key_of`.
fn expected_state(printed: &str, key_of: impl Fn(&[String]) -> String) -> BTreeMap<String, Vec<String>> {
    let mut state = BTreeMap::new();
    let mut changes = 0;
    for line in printed.lines() {
        let Some((kind, rest)) = line.split_once('[') else { continue };
        let fields: Vec<String> = rest.trim_end_matches(']').split(", ").map(|s| s.to_string()).collect();
        changes += 1;
        match kind.trim() {
            "+I" | "+U" => {
                state.insert(key_of(&fields), fields);
            }
            "-U" | "-D" => {
                state.remove(&key_of(&fields));
            }
            other => panic!("unexpected row kind {other} in {line}"),
        }
    }
    assert!(changes > 1000, "the changelog should be long: {changes} changes");
    state
}

#[test]
fn changelog_with_updates_deletes_and_key_changes_ends_in_the_expected_state() {
    // Keyed by `name` in the sinks while the source is keyed by `id`: an update that changes the
    // name changes the sink key (the old name must disappear). 40 ids and 3000 changes make
    // repeated keys within one flush common.
    let gen = "CREATE TABLE gen (id BIGINT, name STRING, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
        'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '40', 'number-of-rows' = '3000',
        'seed' = '11', 'rows-per-second' = '1000000', 'fields.name.length' = '6', 'fields.v.min' = '0', 'fields.v.max' = '1000')";
    let printed = ok(run_job(&format!(
        "{gen}; CREATE TABLE out (id BIGINT, name STRING, v INT) WITH ('connector' = 'print');
         INSERT INTO out SELECT * FROM gen;"
    )))
    .stdout;
    let expected = expected_state(&printed, |f| f[1].clone());

    let pg = cdc_sql_testkit::postgres().create_database("changes_pg");
    pg.exec("CREATE TABLE t (id bigint, name text PRIMARY KEY, v int)");
    let my = cdc_sql_testkit::mariadb().create_database("changes_my");
    my.exec("CREATE TABLE t (id BIGINT, name VARCHAR(20) COLLATE utf8mb4_bin PRIMARY KEY, v INT)");
    let sink_columns = "id BIGINT, name STRING, v INT, PRIMARY KEY (name) NOT ENFORCED";
    ok(run_job(&format!(
        "{gen};
         CREATE TABLE pg_t ({sink_columns}) WITH ({}, 'sink.buffer-flush.max-rows' = '500');
         CREATE TABLE my_t ({sink_columns}) WITH ({}, 'sink.buffer-flush.max-rows' = '500');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO pg_t SELECT * FROM gen;
           INSERT INTO my_t SELECT * FROM gen;
         END;",
        with_admin(&pg, "t"),
        with_admin(&my, "t")
    )));
    let as_state = |rows: Vec<Vec<String>>| -> BTreeMap<String, Vec<String>> {
        rows.into_iter().map(|r| (r[1].clone(), r)).collect()
    };
    assert_eq!(as_state(pg.query("SELECT id, name, v FROM t")), expected);
    assert_eq!(as_state(my.query("SELECT id, name, v FROM t")), expected);
}

#[test]
fn partitioned_scan_reads_every_row_exactly_once() {
    let my = cdc_sql_testkit::mariadb().create_database("scan_src");
    // 1000 rows: partition values skewed towards 15, NULLs, and values far outside the bounds.
    my.exec(
        "CREATE TABLE s (id INT PRIMARY KEY, p BIGINT NULL);
         INSERT INTO s SELECT seq, CASE WHEN seq % 10 = 0 THEN NULL WHEN seq % 10 = 1 THEN -1000000 - CAST(seq AS SIGNED)
           WHEN seq % 10 = 2 THEN 1000000 + seq WHEN seq % 10 < 8 THEN 15 ELSE seq % 23 END FROM seq_1_to_1000;",
    );
    let pg = cdc_sql_testkit::postgres().create_database("scan_dst");
    pg.exec("CREATE TABLE s (id int, p bigint)");
    ok(run_job(&format!(
        "CREATE TABLE src (id INT, p BIGINT) WITH ({}, 'scan.partition.column' = 'p', 'scan.partition.num' = '4',
            'scan.partition.lower-bound' = '10', 'scan.partition.upper-bound' = '20', 'scan.fetch-size' = '64');
         CREATE TABLE dst (id INT, p BIGINT) WITH ({}, 'sink.buffer-flush.max-rows' = '100');
         INSERT INTO dst SELECT * FROM src;",
        with_reader(&my, "s"),
        with_admin(&pg, "s")
    )));
    assert_eq!(
        pg.query("SELECT count(*), count(DISTINCT id), count(p), sum(id), sum(p) FROM s"),
        my.query("SELECT count(*), count(DISTINCT id), count(p), sum(id), sum(p) FROM s")
    );
    assert_eq!(pg.query_one("SELECT count(*) FROM s"), "1000");
}

#[test]
fn failures_are_clear_apply_nothing_half_way_and_hide_the_password() {
    let pg = cdc_sql_testkit::postgres().create_database("errors_pg");
    pg.exec("CREATE TABLE t (id int PRIMARY KEY, v int CHECK (v < 50))");
    let gen = "CREATE TABLE gen (id INT, v INT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence',
        'fields.id.start' = '1', 'fields.id.end' = '60', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1',
        'fields.v.end' = '60')";
    let columns = "id INT, v INT, PRIMARY KEY (id) NOT ENFORCED";

    // A constraint violation: the message names the table, the failing row's key and the
    // constraint; the flush holding it is rolled back as a whole.
    let run = run_job(&format!(
        "{gen}; CREATE TABLE dst ({columns}) WITH ({}, 'sink.buffer-flush.max-rows' = '1000',
            'sink.buffer-flush.interval' = '0');
         INSERT INTO dst SELECT * FROM gen;",
        with_admin(&pg, "t")
    ));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("table `dst`") && run.stderr.contains("t_v_check"), "{}", run.stderr);
    assert!(run.stderr.contains("(50, 50)"), "the failing row should be named: {}", run.stderr);
    assert_eq!(pg.query_one("SELECT count(*) FROM t"), "0");

    // A missing table.
    let run = run_job(&format!(
        "{gen}; CREATE TABLE dst ({columns}) WITH ({}); INSERT INTO dst SELECT * FROM gen;",
        with_admin(&pg, "no_such_table")
    ));
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("table no_such_table of PostgreSQL")
            && run.stderr.contains("does not exist")
            && run.stderr.contains("sink.auto-create-table"),
        "{}",
        run.stderr
    );

    // An unreachable server.
    let run = run_job(&format!(
        "{gen}; CREATE TABLE dst ({columns}) WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/x',
           'table-name' = 't', 'username' = 'u', 'password' = 'pw-unreachable', 'connection.max-retry-timeout' = '1s');
         INSERT INTO dst SELECT * FROM gen;"
    ));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("connecting to PostgreSQL at 127.0.0.1:1"), "{}", run.stderr);
    assert!(!run.stderr.contains("pw-unreachable"), "{}", run.stderr);

    // A wrong password (MariaDB checks passwords; the shared PostgreSQL trusts local logins).
    let my = cdc_sql_testkit::mariadb().create_database("errors_my");
    my.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    let run = run_job(&format!(
        "{gen}; CREATE TABLE dst ({columns}) WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 't',
           'username' = 'root', 'password' = 'not-the-password-42'); INSERT INTO dst SELECT * FROM gen;",
        my.jdbc_url()
    ));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("Access denied"), "{}", run.stderr);
    assert!(!run.stderr.contains("not-the-password-42") && !run.stdout.contains("not-the-password-42"));

    // A value MariaDB rejects in strict mode names the key of its row; nothing of the flush stays.
    my.exec("CREATE TABLE narrow (id INT PRIMARY KEY, name VARCHAR(3))");
    let run = run_job(&format!(
        "CREATE TABLE gen (id INT, name STRING) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence',
           'fields.id.start' = '1', 'fields.id.end' = '20', 'fields.name.length' = '3');
         CREATE TABLE dst (id INT, name STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({}, 'sink.buffer-flush.max-rows' = '100');
         INSERT INTO dst SELECT id, CASE WHEN id = 17 THEN 'toolong' ELSE name END FROM gen;",
        with_admin(&my, "narrow")
    ));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("row with key id = 17") && run.stderr.contains("'name'"), "{}", run.stderr);
    assert_eq!(my.query_one("SELECT count(*) FROM narrow"), "0");

    // An append-only table cannot take a changelog with deletes: a planning error.
    let run = run_job(&format!(
        "CREATE TABLE gen (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen',
           'changelog-mode' = 'all', 'number-of-rows' = '10');
         CREATE TABLE dst (id BIGINT, v INT) WITH ({}); INSERT INTO dst SELECT * FROM gen;",
        with_admin(&pg, "t")
    ));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no PRIMARY KEY") && run.stderr.contains("sink.delete-mode"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_commit_the_source_position_with_the_data() {
    let pg = cdc_sql_testkit::postgres().create_database("offsets_pg");
    pg.exec("CREATE TABLE t (id int PRIMARY KEY, v int)");
    let my = cdc_sql_testkit::mariadb().create_database("offsets_my");
    my.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    let columns = "id INT, v INT, PRIMARY KEY (id) NOT ENFORCED";
    let pg_with = format!("{}, 'sink.offsets-table' = 'cdc_sql_offsets'", with_admin(&pg, "t"));
    let my_with = format!("{}, 'sink.offsets-table' = 'cdc_sql_offsets'", with_admin(&my, "t"));
    ok(run_job(&format!(
        "SET 'pipeline.name' = 'offsets-test';
         SET 'execution.checkpointing.interval' = '50ms';
         CREATE TABLE gen (id INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '50', 'seed' = '3',
           'rows-per-second' = '40',
           'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000');
         CREATE TABLE pg_dst ({columns}) WITH ({pg_with});
         CREATE TABLE my_dst ({columns}) WITH ({my_with});
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO pg_dst SELECT * FROM gen;
           INSERT INTO my_dst SELECT * FROM gen;
         END;"
    )));
    assert_eq!(pg.query_one("SELECT count(*) FROM t"), "50");
    assert_eq!(
        pg.query("SELECT job, pipeline, position->>'events' FROM cdc_sql_offsets"),
        vec![vec!["offsets-test".to_string(), "INSERT INTO pg_dst".to_string(), "50".to_string()]]
    );
    assert_eq!(
        my.query("SELECT job, pipeline, JSON_EXTRACT(position, '$.events') FROM cdc_sql_offsets"),
        vec![vec!["offsets-test".to_string(), "INSERT INTO my_dst".to_string(), "50".to_string()]]
    );

    // What a restarted job reads back to resume from.
    for (db, with) in [(&pg, &pg_with), (&my, &my_with)] {
        let spec = cdc_sql::sql::TableSpec {
            name: "dst".into(),
            columns: vec![],
            primary_key: vec![],
            options: with
                .split("', '")
                .map(|kv| {
                    let kv = kv.trim_matches('\'');
                    let (k, v) = kv.split_once("' = '").unwrap();
                    cdc_sql::sql::TableOption { key: k.into(), value: v.into(), written: v.into() }
                })
                .collect(),
            comment: None,
            computed: Vec::new(),
        };
        let table = cdc_sql::connectors::open_table(&spec).unwrap();
        let mut sink = table.sink(cdc_sql::changelog::ChangelogMode::InsertOnly).unwrap().unwrap();
        let pipeline = if db.kind() == cdc_sql_testkit::ServerKind::Postgres {
            "INSERT INTO pg_dst"
        } else {
            "INSERT INTO my_dst"
        };
        let stored = sink.stored_position("offsets-test", pipeline).await.unwrap().expect("a stored position");
        assert_eq!(stored["events"], 50);
        assert_eq!(sink.stored_position("another-job", pipeline).await.unwrap(), None);
    }
}

#[test]
fn delete_mode_ignore_appends_additions_and_drops_retractions() {
    let gen = "CREATE TABLE gen (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen',
        'changelog-mode' = 'all', 'changelog.key-space' = '20', 'number-of-rows' = '300', 'seed' = '5',
        'rows-per-second' = '1000000')";
    let printed = ok(run_job(&format!(
        "{gen}; CREATE TABLE out (id BIGINT, v INT) WITH ('connector' = 'print'); INSERT INTO out SELECT * FROM gen;"
    )))
    .stdout;
    let additions = printed.lines().filter(|l| l.starts_with("+I[") || l.starts_with("+U[")).count();
    let retractions = printed.lines().filter(|l| l.starts_with("-U[") || l.starts_with("-D[")).count();
    assert!(additions > 0 && retractions > 0);

    let pg = cdc_sql_testkit::postgres().create_database("ignore_pg");
    pg.exec("CREATE TABLE log (id bigint, v int)");
    ok(run_job(&format!(
        "{gen}; CREATE TABLE log (id BIGINT, v INT) WITH ({}, 'sink.delete-mode' = 'ignore');
         INSERT INTO log SELECT * FROM gen;",
        with_admin(&pg, "log")
    )));
    assert_eq!(pg.query_one("SELECT count(*) FROM log"), additions.to_string());
}

/// Runs a slow 600-row job into `db`'s table `t`, cuts the sink's connection from the server side
/// once rows arrive (`cut` returns how many connections it cut), and checks the job retries and
/// ends with every row.
fn survives_a_cut_connection(db: &Database, cut: impl Fn() -> usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    std::fs::write(
        &path,
        format!(
            "CREATE TABLE gen (id INT, v INT) WITH ('connector' = 'datagen', 'rows-per-second' = '200',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '600');
             CREATE TABLE dst (id INT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ({},
               'sink.buffer-flush.max-rows' = '20');
             INSERT INTO dst SELECT * FROM gen;",
            with_admin(db, "t")
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while db.query_one("SELECT count(*) FROM t") == "0" {
        assert!(std::time::Instant::now() < deadline, "no rows arrived");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(cut(), 1);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("retrying"), "the retry should be logged: {stderr}");
    assert_eq!(db.query("SELECT count(*), min(id), max(id) FROM t"), vec![vec!["600", "1", "600"]]);
}

#[test]
fn a_lost_connection_is_retried_without_losing_changes() {
    let pg = cdc_sql_testkit::postgres().create_database("retry_pg");
    pg.exec("CREATE TABLE t (id int PRIMARY KEY, v int)");
    survives_a_cut_connection(&pg, || {
        pg.query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'cdc-sql' AND datname = current_database()",
        )
        .parse()
        .unwrap()
    });

    let my = cdc_sql_testkit::mariadb().create_database("retry_my");
    my.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    survives_a_cut_connection(&my, || {
        let ids =
            my.query("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND HOST LIKE '127.0.0.1:%'");
        for id in &ids {
            my.exec(&format!("KILL CONNECTION {}", id[0]));
        }
        ids.len()
    });
}

/// Insert-only flushes go by COPY straight into a PostgreSQL target; keys already there must
/// still be upserts (the COPY's unique violation falls back to the merge), and the rows the job
/// does not touch stay.
#[test]
fn bulk_inserts_into_existing_keys_still_upsert() {
    let my = cdc_sql_testkit::mariadb().create_database("bulk_src");
    my.exec(
        "CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(10, 2));
         INSERT INTO s SELECT seq, CONCAT('new-', seq), seq / 4 FROM seq_1_to_3000;",
    );
    let pg = cdc_sql_testkit::postgres().create_database("bulk_dst");
    pg.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), n numeric(10, 2));
         INSERT INTO t SELECT i, 'old', 0 FROM generate_series(1, 50) i;
         INSERT INTO t SELECT i, 'old', 0 FROM generate_series(2500, 2510) i;
         INSERT INTO t SELECT i, 'untouched', 0 FROM generate_series(5000, 5004) i;",
    );
    ok(run_job(&format!(
        "CREATE TABLE src (id INT, v STRING, n DECIMAL(10, 2), PRIMARY KEY (id) NOT ENFORCED) WITH ({});
         CREATE TABLE dst (id INT, v STRING, n DECIMAL(10, 2), PRIMARY KEY (id) NOT ENFORCED)
           WITH ({}, 'sink.buffer-flush.max-rows' = '100');
         INSERT INTO dst SELECT * FROM src;",
        with_reader(&my, "s"),
        with_admin(&pg, "t")
    )));
    assert_eq!(
        pg.query("SELECT id, v, n FROM t WHERE id < 5000 ORDER BY id"),
        my.query("SELECT id, v, CAST(n AS CHAR) FROM s ORDER BY id")
    );
    assert_eq!(pg.query_one("SELECT count(*) FROM t WHERE v = 'untouched'"), "5");
}

/// An insert-only flush goes uncompacted by COPY straight into the target; a key repeated in it
/// fails that COPY, and the compacted merge must then keep the key's last row.
#[test]
fn repeated_keys_in_an_insert_only_flush_keep_the_last_row() {
    let my = cdc_sql_testkit::mariadb().create_database("repeat_src");
    my.exec(
        "CREATE TABLE s (id INT, v VARCHAR(20));
         INSERT INTO s VALUES (1, 'first'), (2, 'only'), (1, 'second'), (3, 'only'), (1, 'third');",
    );
    let pg = cdc_sql_testkit::postgres().create_database("repeat_dst");
    pg.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    ok(run_job(&format!(
        "CREATE TABLE src (id INT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
         CREATE TABLE dst (id INT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
         INSERT INTO dst SELECT * FROM src;",
        with_reader(&my, "s"),
        with_admin(&pg, "t")
    )));
    assert_eq!(pg.query("SELECT id, v FROM t ORDER BY id"), [["1", "third"], ["2", "only"], ["3", "only"]]);
}

/// Prints what a jdbc scan of `with` reads into `columns`, sorted.
fn scan_lines(columns: &str, with: &str) -> Vec<String> {
    let run = ok(run_job(&format!(
        "CREATE TABLE src ({columns}) WITH ({with});
         CREATE TABLE out ({columns}) WITH ('connector' = 'print');
         INSERT INTO out SELECT * FROM src;"
    )));
    let mut lines: Vec<String> = run.stdout.lines().filter(|l| l.starts_with("+I[")).map(String::from).collect();
    lines.sort();
    lines
}

/// The scan converts as mysql-cdc and postgres-cdc do, where Flink's jdbc connector fails
/// (a float declared DECIMAL is a ClassCastException there): FLOAT/DOUBLE/real/double
/// precision → DECIMAL through the value's shortest form rounded HALF_UP (Flink CDC's
/// semantics); a MySQL FLOAT exactly (its text has six digits); MySQL spatial values as Flink
/// CDC's JSON text or WKB; a BIT as its number.
#[test]
fn scans_convert_floats_and_spatial_values_as_the_cdc_sources_do() {
    let my = cdc_sql_testkit::mariadb().create_database("scan_types");
    my.exec(
        "CREATE TABLE ft (id INT PRIMARY KEY, f3 FLOAT, f12 FLOAT, fm FLOAT(10,3), d3 DOUBLE, fp FLOAT, pt POINT,
           gc GEOMETRYCOLLECTION, gb GEOMETRY, bs BIT(10), bi BIT(3));
         INSERT INTO ft VALUES (1, 0.5, 1.1, 1.1, 123.4565, 3.1415927, ST_GeomFromText('POINT(1.5 -2.25)', 4326),
           ST_GeomFromText('GEOMETRYCOLLECTION(POINT(10 10), POINT(30 30), LINESTRING(15 15, 20 20))'),
           ST_GeomFromText('POINT(1 1)'), b'1100000001', b'101'),
           (2, 123.4565, NULL, NULL, -0.0005, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    // A BIT declared STRING or INT is its number, as mysql-cdc reads it (the text protocol
    // sends its raw bytes, which used to reach STRING as control characters).
    let columns = "id INT, f3 DECIMAL(10, 3), f12 DECIMAL(20, 12), fm DECIMAL(20, 12), d3 DECIMAL(10, 3), fp FLOAT, \
                   pt STRING, gc STRING, gb BYTES, bs STRING, bi INT";
    assert_eq!(
        scan_lines(columns, &with_reader(&my, "ft")),
        [
            concat!(
                "+I[1, 0.500, 1.100000000000, 1.100000023842, 123.457, 3.1415927, ",
                r#"{"coordinates":[1.5,-2.25],"type":"Point","srid":4326}, "#,
                r#"{"geometries":[{"type":"Point","coordinates":[10,10]},{"type":"Point","coordinates":[30,30]},{"type":"LineString","coordinates":[[15,15],[20,20]]}],"type":"GeometryCollection","srid":0}, "#,
                "[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, -16, 63, 0, 0, 0, 0, 0, 0, -16, 63], 769, 5]"
            ),
            "+I[2, 123.457, null, null, -0.001, null, null, null, null, null, null]",
        ]
    );

    let pg = cdc_sql_testkit::postgres().create_database("scan_types");
    pg.exec(
        "CREATE TABLE ft (id int PRIMARY KEY, r real, d double precision, r12 real);
         INSERT INTO ft VALUES (1, 0.5, 123.4565, 1.1), (2, -0.0005, 0.30000000000000004, NULL);",
    );
    // 0.30000000000000004 keeps its 17th digit: PostgreSQL's own float8 → numeric cast would
    // round it to 15 (0.300000000000000).
    let columns = "id INT, r DECIMAL(10, 3), d DECIMAL(20, 17), r12 DECIMAL(20, 12)";
    assert_eq!(
        scan_lines(columns, &with_reader(&pg, "ft")),
        ["+I[1, 0.500, 123.45650000000000000, 1.100000000000]", "+I[2, -0.001, 0.30000000000000004, null]"]
    );
}

// ---- the version guard ('sink.version-column') ----

/// One change of a key as the sink receives it (an update is its `-U`/`+U` pair, in one batch):
/// versions 1, 2, 3 carry the payloads a, b, c.
#[derive(Clone, Copy, Debug)]
enum Event {
    Insert(i64),
    Update(i64, i64),
    Delete(i64),
}

/// A key's changes in the order they are delivered.
struct Scenario {
    name: &'static str,
    events: &'static [Event],
}

const SCENARIOS: &[Scenario] = {
    use Event::*;
    &[
        Scenario { name: "create", events: &[Insert(1)] },
        Scenario { name: "create, update", events: &[Insert(1), Update(1, 2)] },
        Scenario { name: "create, delete", events: &[Insert(1), Delete(1)] },
        Scenario { name: "create, update, delete", events: &[Insert(1), Update(1, 2), Delete(2)] },
        Scenario { name: "create, update, update", events: &[Insert(1), Update(1, 2), Update(2, 3)] },
        // Out of order: an older change arrives after a newer one.
        Scenario { name: "update before its create", events: &[Update(1, 2), Insert(1)] },
        Scenario { name: "a newer update before an older one", events: &[Insert(1), Update(1, 3), Update(1, 2)] },
        Scenario { name: "delete before its create", events: &[Delete(1), Insert(1)] },
        Scenario { name: "delete before the update it deletes", events: &[Insert(1), Delete(2), Update(1, 2)] },
        Scenario { name: "delete, then an older insert", events: &[Insert(3), Delete(3), Insert(1)] },
        Scenario { name: "delete, then an older update", events: &[Insert(2), Delete(2), Update(1, 1)] },
        Scenario { name: "delete, then a newer create", events: &[Insert(1), Delete(1), Insert(2)] },
        Scenario { name: "update after a newer delete", events: &[Insert(1), Delete(3), Update(1, 2)] },
    ]
};

fn payload(version: i64) -> String {
    ((b'a' + (version - 1) as u8) as char).to_string()
}

/// What the table must hold for each key: the change with the newest version wins, a delete
/// winning against an upsert of the same version; computed from the events alone.
fn newest_per_key() -> BTreeMap<i64, Option<String>> {
    SCENARIOS
        .iter()
        .enumerate()
        .map(|(key, s)| {
            let mut winner: Option<(i64, bool)> = None;
            for event in s.events {
                let (version, delete) = match *event {
                    Event::Insert(v) | Event::Update(_, v) => (v, false),
                    Event::Delete(v) => (v, true),
                };
                if winner.is_none_or(|w| (version, delete) >= w) {
                    winner = Some((version, delete));
                }
            }
            let state = winner.and_then(|(v, delete)| (!delete).then(|| payload(v)));
            (key as i64 + 1, state)
        })
        .collect()
}

/// The batch of one event of `key`, with the version column as BIGINT or TIMESTAMP(6).
fn event_batch(key: i64, event: Event, timestamps: bool) -> ChangeBatch {
    use RowKind::*;
    let rows: Vec<(RowKind, i64)> = match event {
        Event::Insert(v) => vec![(Insert, v)],
        Event::Update(old, new) => vec![(UpdateBefore, old), (UpdateAfter, new)],
        Event::Delete(v) => vec![(Delete, v)],
    };
    let versions: ArrayRef = if timestamps {
        // Version n is n hours after 2024-01-01.
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|(_, v)| 1_704_067_200_000_000 + v * 3_600_000_000),
        ))
    } else {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, v)| *v)))
    };
    let version_type = versions.data_type().clone();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", version_type, true),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| key))),
            versions,
            Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, v)| payload(*v)))),
        ],
    )
    .unwrap();
    ChangeBatch::from_kinds(batch, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
}

/// The keyed jdbc sink of `db`'s table `t` with `'sink.version-column' = 'v'`, flushing only
/// when told (so a test decides which changes share a flush).
async fn guarded_sink(db: &Database, timestamps: bool) -> Box<dyn cdc_sql::connectors::Sink> {
    let version_type = if timestamps { "TIMESTAMP(6)" } else { "BIGINT" };
    let sql = format!(
        "CREATE TABLE t (id BIGINT, v {version_type}, payload STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({},
           'sink.version-column' = 'v', 'sink.buffer-flush.max-rows' = '0', 'sink.buffer-flush.interval' = '0');",
        with_admin(db, "t")
    );
    let statement = cdc_sql::sql::parse_script("test", &sql, &|_| None).unwrap().remove(0).statement;
    let cdc_sql::sql::Statement::CreateTable { spec, .. } = statement else { panic!("not a CREATE TABLE") };
    let table = cdc_sql::connectors::open_table(&spec).unwrap();
    let mut sink = table.sink(cdc_sql::changelog::ChangelogMode::All).unwrap().unwrap();
    sink.open().await.unwrap();
    sink
}

/// Delivers every scenario's events to a fresh sink: each event its own flush, or all in one.
async fn deliver(db: &Database, timestamps: bool, one_flush: bool) {
    let mut sink = guarded_sink(db, timestamps).await;
    let mut checkpoint = 0;
    let longest = SCENARIOS.iter().map(|s| s.events.len()).max().unwrap();
    // Keys interleave: event i of every key, then event i + 1.
    for i in 0..longest {
        for (key, scenario) in SCENARIOS.iter().enumerate() {
            if let Some(event) = scenario.events.get(i) {
                sink.write(&None, event_batch(key as i64 + 1, *event, timestamps)).await.unwrap();
                if !one_flush {
                    checkpoint += 1;
                    sink.prepare(checkpoint).await.unwrap();
                }
            }
        }
    }
    sink.prepare(checkpoint + 1).await.unwrap();
    sink.close().await.unwrap();
}

fn assert_newest(db: &Database, what: &str) {
    let actual: BTreeMap<i64, String> =
        db.query("SELECT id, payload FROM t").into_iter().map(|r| (r[0].parse().unwrap(), r[1].clone())).collect();
    for ((key, expected), scenario) in newest_per_key().into_iter().zip(SCENARIOS) {
        assert_eq!(actual.get(&key), expected.as_ref(), "{what}: key {key} ({}: {:?})", scenario.name, scenario.events);
    }
    assert_eq!(actual.len(), newest_per_key().values().flatten().count(), "{what}: {actual:?}");
    // A tombstone only stands where no row is.
    let tombstones = db.query("SELECT id FROM t__cdc_sql_deleted");
    for key in &tombstones {
        assert!(!actual.contains_key(&key[0].parse::<i64>().unwrap()), "{what}: tombstone of a live key {key:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn version_guard_keeps_the_newest_change_of_every_key_in_any_order_and_on_replay() {
    let pg_table = |v: &str| format!("CREATE TABLE t (id bigint PRIMARY KEY, v {v} NOT NULL, payload text)");
    let my_table = |v: &str| format!("CREATE TABLE t (id BIGINT PRIMARY KEY, v {v} NOT NULL, payload VARCHAR(20))");
    for timestamps in [false, true] {
        for one_flush in [false, true] {
            let name =
                format!("guard_{}_{}", if timestamps { "ts" } else { "int" }, if one_flush { "one" } else { "each" });
            let pg = cdc_sql_testkit::postgres().create_database(&name);
            pg.exec(&pg_table(if timestamps { "timestamp(6)" } else { "bigint" }));
            let my = cdc_sql_testkit::mariadb().create_database(&name);
            my.exec(&my_table(if timestamps { "DATETIME(6)" } else { "BIGINT" }));
            for db in [&pg, &my] {
                let what = format!("{:?} {name}", db.kind());
                deliver(db, timestamps, one_flush).await;
                assert_newest(db, &what);
                // A replay of everything from the start changes nothing.
                let before = db.query("SELECT id, v, payload FROM t ORDER BY id");
                deliver(db, timestamps, !one_flush).await;
                assert_eq!(db.query("SELECT id, v, payload FROM t ORDER BY id"), before, "{what}: replay");
                assert_newest(db, &format!("{what}, replayed"));
            }
        }
    }
}

/// The final table a changelog leaves under the version guard, computed from the changelog
/// alone: per key, the change with the greatest version `v` (field `version_at`), a delete
/// winning against an upsert of the same version, the later change between equals otherwise.
fn newest_state(printed: &str, version_at: usize) -> BTreeMap<String, Vec<String>> {
    let changes: Vec<(&str, Vec<String>)> = printed
        .lines()
        .filter_map(|line| line.split_once('['))
        .map(|(kind, rest)| (kind.trim(), rest.trim_end_matches(']').split(", ").map(String::from).collect()))
        .collect();
    // Per key: the rank (version, is a delete) of the winning change and the row it leaves.
    type Winner = ((i64, bool), Option<Vec<String>>);
    let mut newest: BTreeMap<String, Winner> = BTreeMap::new();
    for (i, (kind, fields)) in changes.iter().enumerate() {
        let delete = match *kind {
            "+I" | "+U" => false,
            "-D" => true,
            // An update's before image, followed by its after image of the same key.
            "-U" if changes.get(i + 1).is_some_and(|(k, f)| *k == "+U" && f[0] == fields[0]) => continue,
            "-U" => true,
            other => panic!("unexpected row kind {other}"),
        };
        let rank = (fields[version_at].parse::<i64>().unwrap(), delete);
        let row = (!delete).then(|| fields.clone());
        match newest.get_mut(&fields[0]) {
            Some(current) if current.0 > rank => {}
            Some(current) => *current = (rank, row),
            None => {
                newest.insert(fields[0].clone(), (rank, row));
            }
        }
    }
    assert!(changes.len() > 1000, "the changelog should be long: {} changes", changes.len());
    newest.into_iter().filter_map(|(key, (_, row))| row.map(|r| (key, r))).collect()
}

/// A datagen changelog whose versions are random, so that most changes of a key arrive out of
/// version order, through the real binary into both databases; then the same job again from
/// the start (a replay), which must leave both tables as they are.
#[test]
fn version_guard_applies_a_random_changelog_and_a_replay_by_version() {
    let gen = "CREATE TABLE gen (id BIGINT, v INT, payload STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
        'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '40', 'number-of-rows' = '3000',
        'seed' = '23', 'rows-per-second' = '1000000', 'fields.v.min' = '0', 'fields.v.max' = '100000',
        'fields.payload.length' = '6')";
    let printed = ok(run_job(&format!(
        "{gen}; CREATE TABLE out (id BIGINT, v INT, payload STRING) WITH ('connector' = 'print');
         INSERT INTO out SELECT * FROM gen;"
    )))
    .stdout;
    let expected = newest_state(&printed, 1);
    let last_wins = expected_state(&printed, |f| f[0].clone());
    assert_ne!(expected, last_wins, "the changelog should have changes out of version order");

    let pg = cdc_sql_testkit::postgres().create_database("guard_gen_pg");
    pg.exec("CREATE TABLE t (id bigint PRIMARY KEY, v int NOT NULL, payload text)");
    let my = cdc_sql_testkit::mariadb().create_database("guard_gen_my");
    my.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, payload VARCHAR(20))");
    let job = format!(
        "{gen};
         CREATE TABLE pg_t (id BIGINT, v INT, payload STRING, PRIMARY KEY (id) NOT ENFORCED)
           WITH ({}, 'sink.version-column' = 'v');
         CREATE TABLE my_t (id BIGINT, v INT, payload STRING, PRIMARY KEY (id) NOT ENFORCED)
           WITH ({}, 'sink.version-column' = 'v');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO pg_t SELECT * FROM gen;
           INSERT INTO my_t SELECT * FROM gen;
         END;",
        with_admin(&pg, "t"),
        with_admin(&my, "t")
    );
    let as_state = |rows: Vec<Vec<String>>| -> BTreeMap<String, Vec<String>> {
        rows.into_iter().map(|r| (r[0].clone(), r)).collect()
    };
    for round in ["first run", "replay"] {
        ok(run_job(&job));
        assert_eq!(as_state(pg.query("SELECT id, v, payload FROM t")), expected, "PostgreSQL, {round}");
        assert_eq!(as_state(my.query("SELECT id, v, payload FROM t")), expected, "MariaDB, {round}");
    }
}

/// Rows the database refuses for good (a NULL into NOT NULL, a value too long, an integer out of
/// range) among good ones: with a dead-letter file the good rows land, committed with the
/// source position, and each bad one is a line with its error and position; without it the job
/// stops with the database's error and nothing of the flush stays.
fn refused_rows_go_to_the_dead_letters(db: &Database) {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let gen = "CREATE TABLE gen (id INT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence',
        'fields.id.start' = '1', 'fields.id.end' = '20')";
    let job = |set: &str, table: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '1h'; {set}
             {gen};
             CREATE TABLE dst (id INT, name STRING, n BIGINT, PRIMARY KEY (id) NOT ENFORCED)
               WITH ({}, 'sink.offsets-table' = 'cdc_offsets');
             INSERT INTO dst SELECT id,
               CASE WHEN id = 5 THEN CAST(NULL AS STRING) WHEN id = 9 THEN 'toolong' ELSE 'ok' END,
               CASE WHEN id = 13 THEN CAST(3000000000 AS BIGINT) ELSE CAST(id AS BIGINT) END FROM gen;",
            with_admin(db, table)
        )
    };
    db.exec("CREATE TABLE plain (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, n INT)");
    let run = run_job(&job("", "plain"));
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("table `dst`: writing"), "{}", run.stderr);
    assert_eq!(db.query_one("SELECT count(*) FROM plain"), "0");

    db.exec("CREATE TABLE lettered (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, n INT)");
    ok(run_job(&job(&format!("SET 'dead-letter.path' = '{}';", dead.display()), "lettered")));
    let landed: Vec<String> =
        db.query("SELECT id FROM lettered ORDER BY id").into_iter().map(|r| r[0].clone()).collect();
    let expected: Vec<String> = (1..=20).filter(|i| ![5, 9, 13].contains(i)).map(|i| i.to_string()).collect();
    assert_eq!(landed, expected);
    assert_eq!(db.query_one("SELECT count(*) FROM cdc_offsets"), "1", "the position is committed with the data");
    let letters: Vec<serde_json::Value> =
        std::fs::read_to_string(&dead).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_id = |id: i64| {
        letters.iter().find(|l| l["row"]["id"] == id).unwrap_or_else(|| panic!("no dead letter for {id}: {letters:?}"))
    };
    assert_eq!(letters.len(), 3, "{letters:?}");
    let (null, long, overflow) = match db.kind() {
        cdc_sql_testkit::ServerKind::Postgres => ("23502", "22001", "22003"),
        cdc_sql_testkit::ServerKind::MariaDb => ("error 1048", "error 1406", "error 1264"),
    };
    for (id, says) in [(5, null), (9, long), (13, overflow)] {
        let letter = by_id(id);
        assert_eq!(letter["stage"], "sink", "{letter}");
        assert_eq!(letter["table"], "dst", "{letter}");
        assert_eq!(letter["pipeline"], "INSERT INTO dst", "{letter}");
        assert_eq!(letter["row_kind"], "+U", "{letter}");
        assert!(letter["error"].as_str().unwrap().contains(says), "{id}: {letter}");
        assert!(!letter["position"].is_null(), "{letter}");
        assert!(!letter["error"].as_str().unwrap().contains(POSTGRES_PASSWORD), "{letter}");
    }
    assert_eq!(by_id(9)["row"]["name"], "toolong");
    assert_eq!(by_id(13)["row"]["n"], 3000000000i64);

    // A refusal that is not about a row's values (here a trigger denying every insert as a
    // missing privilege would) meets every row alike: the job stops rather than set all aside.
    db.exec("CREATE TABLE denied (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, n INT)");
    match db.kind() {
        cdc_sql_testkit::ServerKind::Postgres => db.exec(
            "CREATE FUNCTION deny() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
               RAISE EXCEPTION 'denied by trigger' USING ERRCODE = '42501'; END $$;
             CREATE TRIGGER deny BEFORE INSERT ON denied FOR EACH ROW EXECUTE FUNCTION deny();",
        ),
        cdc_sql_testkit::ServerKind::MariaDb => db.exec(
            "CREATE TRIGGER deny BEFORE INSERT ON denied FOR EACH ROW
               SIGNAL SQLSTATE '42000' SET MESSAGE_TEXT = 'denied by trigger'",
        ),
    }
    // A job of its own name: the previous one's position in the offsets table says it is done.
    let set = format!("SET 'pipeline.name' = 'denied'; SET 'dead-letter.path' = '{}';", dead.display());
    let run = run_job(&job(&set, "denied"));
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("denied by trigger"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 3, "nothing more was set aside");
}

#[test]
fn postgres_refused_rows_go_to_the_dead_letters() {
    refused_rows_go_to_the_dead_letters(&cdc_sql_testkit::postgres().create_database("dead_pg"));
}

#[test]
fn mariadb_refused_rows_go_to_the_dead_letters() {
    refused_rows_go_to_the_dead_letters(&cdc_sql_testkit::mariadb().create_database("dead_my"));
}

/// The same into a dead-letter table: a declared jdbc table (here created from the declaration)
/// gets one row per refused row, committed with the rest of the job's checkpoint.
#[test]
fn refused_rows_go_to_a_dead_letter_table() {
    let pg = cdc_sql_testkit::postgres().create_database("dead_table_pg");
    pg.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL)");
    ok(run_job(&format!(
        "SET 'execution.checkpointing.interval' = '1h';
         SET 'dead-letter.table' = 'dlq';
         CREATE TABLE gen (id INT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence',
           'fields.id.start' = '1', 'fields.id.end' = '10');
         CREATE TABLE dlq (job STRING, pipeline STRING, stage STRING, table_name STRING, error STRING,
           position STRING, row_kind STRING, row_json STRING, created_at TIMESTAMP_LTZ(3))
           WITH ({}, 'sink.auto-create-table' = 'true');
         CREATE TABLE dst (id INT, name STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
         INSERT INTO dst SELECT id, CASE WHEN id IN (3, 7) THEN 'toolong' ELSE 'ok' END FROM gen;",
        with_admin(&pg, "dead_letters"),
        with_admin(&pg, "t")
    )));
    assert_eq!(pg.query_one("SELECT count(*) FROM t"), "8");
    let letters = pg.query(
        "SELECT pipeline, stage, table_name, row_kind, row_json::jsonb ->> 'id', error LIKE '%22001%',
           position IS NOT NULL, created_at > now() - interval '1 hour' FROM dead_letters ORDER BY 5",
    );
    let expected = |id: &str| {
        ["INSERT INTO dst", "sink", "dst", "+U", id, "t", "t", "t"].iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(letters, [expected("3"), expected("7")]);
}
