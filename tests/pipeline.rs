//! Pipeline definitions (`cdc-sql -f sync.yaml`) end to end against real servers (testkit): a
//! MariaDB database of many tables of mixed types and keys into PostgreSQL, and a PostgreSQL
//! database into MariaDB, each through one YAML pipeline with an allowlist and a route renaming
//! the database, under a write load, killed (SIGKILL) and restarted; the oracle is the source
//! tables themselves, compared row for row as text. And the located errors of definitions that
//! cannot run.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_sql_testkit::{Database, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};

const DEADLINE: Duration = Duration::from_secs(120);

/// Each table: its DDL, initial rows (in the source server's SQL), and the same rows as text from
/// MariaDB and from PostgreSQL (`{}` is the table, qualified by the caller), ordered by key.
struct Table {
    name: &'static str,
    ddl: &'static str,
    fill: &'static str,
    mariadb: &'static str,
    postgres: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "orders",
        ddl: "id INT AUTO_INCREMENT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DECIMAL(12,2), \
              status ENUM('new','paid','shipped'), created DATETIME(6), paid TINYINT(1), note TEXT",
        fill: "INSERT INTO orders (customer_id, amount, status, created, paid, note) \
               SELECT seq % 97, seq * 1.25, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), \
                      '2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL seq MICROSECOND, seq % 2, \
                      IF(seq % 5 = 0, NULL, CONCAT('note ', seq)) FROM seq_1_to_3000",
        mariadb: "SELECT id, customer_id, amount, status, DATE_FORMAT(created, '%Y-%m-%d %H:%i:%s.%f'), paid, note \
                  FROM {} ORDER BY id",
        postgres: "SELECT id, customer_id, amount, status, to_char(created, 'YYYY-MM-DD HH24:MI:SS.US'), paid::int, \
                   note FROM {} ORDER BY id",
    },
    Table {
        name: "customers",
        ddl: "id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100), born DATE, score DOUBLE",
        fill: "INSERT INTO customers SELECT seq, CONCAT('customer ', seq), CONCAT('c', seq, '@example.com'), \
               '1970-01-01' + INTERVAL seq * 37 DAY, seq * 0.5 FROM seq_1_to_500",
        mariadb: "SELECT id, name, email, born, score FROM {} ORDER BY id",
        postgres: "SELECT id, name, email, born, score FROM {} ORDER BY id",
    },
    Table {
        name: "order_items",
        ddl: "order_id INT, line SMALLINT, sku CHAR(8), qty INT UNSIGNED, price DECIMAL(10,2), \
              PRIMARY KEY (order_id, line)",
        fill: "INSERT INTO order_items SELECT 1 + seq DIV 4, seq % 4, CONCAT('SKU', seq % 50), seq % 7, seq * 0.75 \
               FROM seq_0_to_1999",
        mariadb: "SELECT order_id, line, sku, qty, price FROM {} ORDER BY order_id, line",
        postgres: "SELECT order_id, line, sku, qty, price FROM {} ORDER BY order_id, line",
    },
    Table {
        name: "events",
        ddl: "id BIGINT UNSIGNED PRIMARY KEY, kind VARCHAR(20), payload JSON, at TIMESTAMP(3) NULL DEFAULT NULL",
        fill: "INSERT INTO events SELECT 18446744073709551000 + seq, 'click', \
               JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', seq)), FROM_UNIXTIME(1700000000 + seq + 0.125) \
               FROM seq_1_to_300",
        mariadb: "SELECT id, kind, payload, CAST(UNIX_TIMESTAMP(at) * 1000 AS SIGNED) FROM {} ORDER BY id",
        postgres: "SELECT id, kind, payload, (extract(epoch FROM at) * 1000)::bigint FROM {} ORDER BY id",
    },
    Table {
        name: "blobs",
        ddl: "id INT PRIMARY KEY, data BLOB, fixed BINARY(4)",
        fill: "INSERT INTO blobs SELECT seq, UNHEX(REPEAT(HEX(seq % 256), 1 + seq % 5)), UNHEX(LPAD(HEX(seq), 4, '0')) \
               FROM seq_1_to_200",
        mariadb: "SELECT id, HEX(data), HEX(fixed) FROM {} ORDER BY id",
        postgres: "SELECT id, upper(encode(data, 'hex')), upper(encode(fixed, 'hex')) FROM {} ORDER BY id",
    },
    Table {
        name: "times",
        ddl: "id INT PRIMARY KEY, t TIME(3), y YEAR, d DATE",
        fill: "INSERT INTO times SELECT seq, SEC_TO_TIME(seq * 97 + 0.5), 1990 + seq % 50, '2000-02-29' + INTERVAL seq DAY \
               FROM seq_1_to_200",
        mariadb: "SELECT id, TIME_FORMAT(t, '%H:%i:%s.%f'), y, d FROM {} ORDER BY id",
        postgres: "SELECT id, to_char(t, 'HH24:MI:SS.US'), y, d FROM {} ORDER BY id",
    },
    Table {
        name: "measures",
        ddl: "id INT PRIMARY KEY, f FLOAT, big DECIMAL(40,10), u8 TINYINT UNSIGNED, m MEDIUMINT",
        fill: "INSERT INTO measures SELECT seq, seq * 0.25 - 10, CONCAT(REPEAT('9', 29), '.', LPAD(seq, 10, '0')), \
               seq % 256, -CAST(seq AS SIGNED) * 1000 FROM seq_1_to_200",
        mariadb: "SELECT id, f, big, u8, m FROM {} ORDER BY id",
        postgres: "SELECT id, f, big, u8, m FROM {} ORDER BY id",
    },
    Table {
        name: "flags",
        ddl: "id INT PRIMARY KEY, tags SET('a','b','c'), flag BIT(1), bits BIT(8)",
        fill: "INSERT INTO flags SELECT seq, MAKE_SET(seq % 8, 'a', 'b', 'c'), seq % 2, seq % 256 FROM seq_1_to_100",
        mariadb: "SELECT id, tags, flag + 0, LPAD(HEX(bits), 2, '0') FROM {} ORDER BY id",
        postgres: "SELECT id, tags, flag::int, upper(encode(bits, 'hex')) FROM {} ORDER BY id",
    },
    Table {
        name: "small",
        ddl: "id TINYINT PRIMARY KEY, label VARCHAR(10), u16 SMALLINT UNSIGNED",
        fill: "INSERT INTO small SELECT CAST(seq AS SIGNED) - 100, CONCAT('l', seq), seq * 500 FROM seq_1_to_120",
        mariadb: "SELECT id, label, u16 FROM {} ORDER BY id",
        postgres: "SELECT id, label, u16 FROM {} ORDER BY id",
    },
    Table {
        name: "texts",
        ddl: "code VARCHAR(20) PRIMARY KEY, body MEDIUMTEXT, lang CHAR(2)",
        fill: "INSERT INTO texts SELECT CONCAT('k', seq), CONCAT('ünïcødé ', REPEAT('x', seq), ' \\'quoted\\''), \
               ELT(1 + seq % 2, 'de', 'fr') FROM seq_1_to_150",
        mariadb: "SELECT code, body, lang FROM {} ORDER BY code COLLATE utf8mb4_bin",
        postgres: "SELECT code, body, lang FROM {} ORDER BY code COLLATE \"C\"",
    },
    Table {
        name: "accounts",
        ddl: "id INT PRIMARY KEY, balance DECIMAL(20,4) NOT NULL, opened DATETIME, vip TINYINT(1)",
        fill: "INSERT INTO accounts SELECT seq, seq * 100.0001, '2020-06-01 12:00:00' + INTERVAL seq HOUR, seq % 3 = 0 \
               FROM seq_1_to_250",
        mariadb: "SELECT id, balance, DATE_FORMAT(opened, '%Y-%m-%d %H:%i:%s'), vip FROM {} ORDER BY id",
        postgres: "SELECT id, balance, to_char(opened, 'YYYY-MM-DD HH24:MI:SS'), vip::int FROM {} ORDER BY id",
    },
];

/// Creates every table of [`TABLES`] in `db`, filled, and the tables the allowlist leaves out: a
/// keyless one (which a pipeline source refuses, so it must be excluded) and a scratch one.
fn create_source(db: &Database) {
    for t in TABLES {
        db.exec(&format!("CREATE TABLE {} ({}); {};", t.name, t.ddl, t.fill));
    }
    db.exec(
        "CREATE TABLE audit_log (at DATETIME, what TEXT); INSERT INTO audit_log VALUES (NOW(), 'kept out');
         CREATE TABLE tmp_scratch (id INT PRIMARY KEY); INSERT INTO tmp_scratch VALUES (1);",
    );
}

/// The definition: every table of `src` but the excluded ones, into schema `app` of `dst`.
fn definition(src: &Database, dst: &Database, state: &std::path::Path, server_ids: &str) -> String {
    let c = src.connection();
    let db = src.name();
    format!(
        "# whole-database sync
source:
  type: mysql
  name: MariaDB {db}
  hostname: {host}
  port: {port}
  username: {user}
  password: {password}
  tables: {db}.\\.*
  tables.exclude: {db}.audit_log, {db}.tmp_\\.*
  server-id: {server_ids}
  server-time-zone: UTC
  scan.incremental.snapshot.chunk.size: 250

route:
  - source-table: {db}.\\.*
    sink-table: app.<>
    replace-symbol: <>
    description: the database becomes schema app

sink:
  type: jdbc
  url: {url}
  username: {pg_user}
  password: {pg_password}

pipeline:
  name: sync-{db}
  parallelism: 2
  execution.checkpointing.interval: 1s
  state.checkpoints.dir: {state}
",
        host = c.host,
        port = c.port,
        user = c.user,
        password = c.password,
        url = dst.jdbc_url(),
        pg_user = POSTGRES_SUPERUSER,
        pg_password = POSTGRES_PASSWORD,
        state = state.display(),
    )
}

/// `cdc-sql -f <definition>` running in the background, its output in files.
struct Job {
    child: Child,
    log: std::path::PathBuf,
}

impl Job {
    fn start(dir: &std::path::Path, definition: &str, run: usize) -> Job {
        let path = dir.join("sync.yaml");
        std::fs::write(&path, definition).unwrap();
        let log = dir.join(format!("run-{run}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .args(["--no-http", "-f"])
            .arg(&path)
            .env("RUST_LOG", "warn,cdc_sql::pipeline=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Job { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the job's output if it ended.
    fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cdc-sql exited ({status}):\n{}", self.output());
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the job to end on its own: (exit code, output).
    fn wait_exit(mut self) -> (i32, String) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code().unwrap_or(-1), self.output());
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("the job did not end:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the job did not stop cleanly ({status}):\n{}", self.output());
    }
}

/// Rows as text, NULL shown as such.
fn rows(result: Vec<Vec<Option<String>>>) -> Vec<String> {
    result
        .into_iter()
        .map(|r| r.into_iter().map(|v| v.unwrap_or_else(|| "<NULL>".into())).collect::<Vec<_>>().join("|"))
        .collect()
}

/// A table compared: its name, and the queries of its rows as text, in key order, on the source
/// and on the sink.
struct Compared {
    name: String,
    source: String,
    sink: String,
}

/// [`TABLES`] from MariaDB to schema `app` of PostgreSQL.
fn mariadb_to_postgres() -> Vec<Compared> {
    TABLES
        .iter()
        .map(|t| Compared {
            name: t.name.to_string(),
            source: t.mariadb.replace("{}", t.name),
            sink: t.postgres.replace("{}", &format!("app.{}", t.name)),
        })
        .collect()
}

/// The first table whose sink rows differ from its source rows, with what differs.
fn first_difference(src: &Database, dst: &Database, tables: &[Compared]) -> Option<String> {
    for t in tables {
        let source = rows(src.query_opt(&t.source));
        let sink = match dst.try_query(&t.sink) {
            Ok(r) => rows(r),
            Err(e) => return Some(format!("{}: {e}", t.name)),
        };
        if source != sink {
            let shown: Vec<String> = source
                .iter()
                .zip(sink.iter())
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(a, b)| format!("source {a}\n  sink {b}"))
                .collect();
            return Some(format!(
                "{}: {} source rows, {} sink rows; first differences:\n{}",
                t.name,
                source.len(),
                sink.len(),
                shown.join("\n")
            ));
        }
    }
    None
}

/// Polls until every table's sink equals its source.
fn wait_equal(src: &Database, dst: &Database, tables: &[Compared], job: &mut Job) {
    let start = Instant::now();
    loop {
        let Some(difference) = first_difference(src, dst, tables) else { return };
        job.check_running();
        if start.elapsed() > DEADLINE {
            panic!("the sink never caught up: {difference}\njob output:\n{}", job.output());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls until the sink table `orders` (qualified) has rows.
fn wait_snapshot_started(dst: &Database, orders: &str, job: &mut Job) {
    let start = Instant::now();
    while dst.try_query(&format!("SELECT 1 FROM {orders} LIMIT 1")).map_or(true, |r| r.is_empty()) {
        job.check_running();
        assert!(start.elapsed() < DEADLINE, "no snapshot rows arrived:\n{}", job.output());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Changes to several tables (a composite key among them) until `stop` is set: inserts,
/// updates (of keys too) and deletes, each statement its own transaction.
fn write_load(src: Database, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut round = 0u64;
        while !stop.load(Ordering::SeqCst) {
            round += 1;
            let n = round as i64;
            src.exec(&format!(
                "INSERT INTO orders (customer_id, amount, status, created, paid, note)
                   VALUES ({n}, {n}.5, 'new', '2025-01-01 00:00:00.000001', 0, 'live {n}');
                 UPDATE orders SET status = 'shipped', paid = 1, amount = amount + 1 WHERE id % 97 = {m};
                 DELETE FROM orders WHERE id = {del};
                 INSERT INTO order_items VALUES (10000 + {n}, 1, 'LIVE', {n}, 1.00)
                   ON DUPLICATE KEY UPDATE qty = qty + 1;
                 UPDATE order_items SET line = line + 10 WHERE order_id = {m} + 1 AND line < 10;
                 DELETE FROM order_items WHERE order_id = {del} AND line = 2;
                 UPDATE customers SET score = score + 1, email = NULL WHERE id = {cust};
                 INSERT INTO texts VALUES (CONCAT('live', {n}), 'new text', 'en');
                 UPDATE accounts SET balance = balance - 0.0001 WHERE id = {acc};",
                m = n % 97,
                del = 1 + (n * 37) % 3000,
                cust = 1 + (n * 13) % 500,
                acc = 1 + n % 250,
            ));
            std::thread::sleep(Duration::from_millis(20));
        }
        round
    })
}

#[test]
fn a_mariadb_database_syncs_into_postgres_through_kills_and_restarts() {
    let src = cdc_sql_testkit::mariadb().create_database("pipe_src");
    create_source(&src);
    let dst = cdc_sql_testkit::postgres().create_database("pipe_dst");
    dst.exec("CREATE SCHEMA app");
    let dir = tempfile::tempdir().unwrap();
    let definition = definition(&src, &dst, &dir.path().join("state"), "6500-6503");
    let compared = mariadb_to_postgres();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = write_load(src.clone(), stop.clone());
    let mut job = Job::start(dir.path(), &definition, 1);
    // Killed as soon as its snapshot's first rows landed (3000 orders in chunks of 250), then
    // again while it streams, under the load.
    wait_snapshot_started(&dst, "app.orders", &mut job);
    job.kill();
    let mut job = Job::start(dir.path(), &definition, 2);
    std::thread::sleep(Duration::from_secs(4));
    job.check_running();
    job.kill();
    let mut job = Job::start(dir.path(), &definition, 3);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    assert!(rounds > 10, "the load ran {rounds} rounds");
    wait_equal(&src, &dst, &compared, &mut job);

    // Streaming goes on after the catch-up.
    src.exec("UPDATE customers SET name = 'renamed' WHERE id = 1; DELETE FROM order_items WHERE order_id = 2;");
    wait_equal(&src, &dst, &compared, &mut job);
    let output = job.output();
    job.stop();
    for excluded in ["audit_log", "tmp_scratch"] {
        let found = dst.query_one(&format!("SELECT count(*) FROM pg_tables WHERE tablename = '{excluded}'"));
        assert_eq!(found, "0", "{excluded} is outside the allowlist");
    }
    // The sink tables were created with the source's keys.
    let key = dst.query_one(
        "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = 'app.order_items'::regclass AND i.indisprimary",
    );
    assert_eq!(key, "order_id,line", "{output}");

    // A changed allowlist does not resume the checkpoint of another one.
    let db = src.name();
    let narrower = definition.replace("tables.exclude: ", &format!("tables.exclude: {db}.small, "));
    let (code, output) = Job::start(dir.path(), &narrower, 4).wait_exit();
    assert!(code == 1 && output.contains("--fresh"), "{output}");

    // A change of a table's columns stops the pipeline before a row of the new shape is written.
    let mut job = Job::start(dir.path(), &definition, 5);
    src.exec("UPDATE small SET label = 'before' WHERE id = 1");
    wait_equal(&src, &dst, &compared, &mut job);
    src.exec("ALTER TABLE small ADD COLUMN extra INT; INSERT INTO small VALUES (101, 'after', 1, 7);");
    let (code, output) = job.wait_exit();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(&format!("the columns of source table `{db}.small` changed (added `extra` int"))
            && output.contains("pipelines do not follow schema changes yet"),
        "{output}"
    );
    assert_eq!(dst.query_one("SELECT count(*) FROM app.small WHERE label = 'after'"), "0");
}

/// Definitions that cannot run stop before anything is read, each error at its line.
#[test]
fn definitions_that_cannot_run_are_located_errors() {
    let src = cdc_sql_testkit::mariadb().create_database("pipe_bad");
    src.exec("CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE nokey (v INT);");
    let dst = cdc_sql_testkit::postgres().create_database("pipe_bad_dst");
    let dir = tempfile::tempdir().unwrap();
    let good = definition(&src, &dst, &dir.path().join("state"), "6510");
    let db = src.name();
    let with_tables =
        good.replace(&format!("tables.exclude: {db}.audit_log, {db}.tmp_\\.*"), &format!("tables.exclude: {db}.nokey"));
    let cases = [
        // A typo of a source option, named with the nearest one.
        (good.replace("  tables.exclude:", "  tables.exclud:"), "sync.yaml:10:3: ", "did you mean 'tables.exclude'?"),
        // A bad regular expression.
        (good.replace("tables: ", "tables: (").replace("tables.exclude", "#"), "sync.yaml:9:3: ", "option 'tables'"),
        // An unknown block.
        (
            format!("{good}transfrom:\n  - source-table: a.b\n"),
            "sync.yaml:32:1: ",
            "unknown block `transfrom` (did you mean `transform`?)",
        ),
        // A route into a schema PostgreSQL does not have.
        (with_tables.replace("sink-table: app.<>", "sink-table: nosuch.<>"), "sync.yaml:16:5: ", "nosuch"),
        // A keyless table the allowlist takes in.
        (
            good.replace(&format!("tables.exclude: {db}.audit_log, {db}.tmp_\\.*"), "tables.exclude: x.y"),
            "sync.yaml:2:1: ",
            "has no primary key",
        ),
    ];
    for (text, at, says) in cases {
        std::fs::write(dir.path().join("sync.yaml"), &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .args(["--no-http", "-f"])
            .arg(dir.path().join("sync.yaml"))
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let line = stderr.lines().find(|l| l.starts_with("[ERROR]")).unwrap_or_default();
        assert!(line.contains(at) && line.contains(says), "expected {at}…{says}, got:\n{stderr}");
        assert!(!line.contains(POSTGRES_PASSWORD) && !line.contains(&src.connection().password), "{line}");
    }
}

/// The PostgreSQL tables (schema `public` unless qualified), as [`TABLES`] is for MariaDB: DDL and
/// rows in PostgreSQL's SQL, `postgres` read on the source, `mariadb` on the sink.
const PG_TABLES: &[Table] = &[
    Table {
        name: "orders",
        ddl: "id serial PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(12,2), status text, \
              created timestamp(6), paid boolean, note text",
        fill: "INSERT INTO orders (customer_id, amount, status, created, paid, note) \
               SELECT seq % 97, seq * 1.25, (ARRAY['new','paid','shipped'])[1 + seq % 3], \
                      '2024-01-01'::timestamp + seq * interval '1.000001 second', seq % 2 = 1, \
                      CASE WHEN seq % 5 = 0 THEN NULL ELSE 'note ' || seq END \
               FROM generate_series(1, 3000) seq",
        postgres: "SELECT id, customer_id, amount, status, to_char(created, 'YYYY-MM-DD HH24:MI:SS.US'), paid::int, note \
                   FROM {} ORDER BY id",
        mariadb: "SELECT id, customer_id, amount, status, DATE_FORMAT(created, '%Y-%m-%d %H:%i:%s.%f'), paid, note \
                  FROM {} ORDER BY id",
    },
    Table {
        name: "customers",
        ddl: "id bigint PRIMARY KEY, name varchar(50) NOT NULL, email varchar(100), born date, score double precision",
        fill: "INSERT INTO customers SELECT seq, 'customer ' || seq, 'c' || seq || '@example.com', \
               date '1970-01-01' + seq * 37, seq * 0.5 FROM generate_series(1, 500) seq",
        postgres: "SELECT id, name, email, born, score FROM {} ORDER BY id",
        mariadb: "SELECT id, name, email, born, score FROM {} ORDER BY id",
    },
    Table {
        name: "order_items",
        ddl: "order_id int, line smallint, sku char(8), qty int, price numeric(10,2), PRIMARY KEY (order_id, line)",
        fill: "INSERT INTO order_items SELECT 1 + seq / 4, seq % 4, 'SKU' || lpad((seq % 50)::text, 5, '0'), seq % 7, \
               seq * 0.75 FROM generate_series(0, 1999) seq",
        postgres: "SELECT order_id, line, sku, qty, price FROM {} ORDER BY order_id, line",
        mariadb: "SELECT order_id, line, sku, qty, price FROM {} ORDER BY order_id, line",
    },
    Table {
        name: "events",
        ddl: "id bigint PRIMARY KEY, kind varchar(20), payload jsonb, at timestamptz(3)",
        fill: "INSERT INTO events SELECT 9000000000000 + seq, 'click', jsonb_build_object('n', seq, 'tags', \
               jsonb_build_array('a', seq)), to_timestamp(1700000000 + seq + 0.125) FROM generate_series(1, 300) seq",
        postgres: "SELECT id, kind, payload::text, (extract(epoch FROM at) * 1000)::bigint FROM {} ORDER BY id",
        mariadb: "SELECT id, kind, payload, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', at) DIV 1000 \
                  FROM {} ORDER BY id",
    },
    Table {
        name: "blobs",
        ddl: "id int PRIMARY KEY, data bytea",
        fill: "INSERT INTO blobs SELECT seq, decode(repeat(lpad(to_hex(seq % 256), 2, '0'), 1 + seq % 5), 'hex') \
               FROM generate_series(1, 200) seq",
        postgres: "SELECT id, upper(encode(data, 'hex')) FROM {} ORDER BY id",
        mariadb: "SELECT id, HEX(data) FROM {} ORDER BY id",
    },
    Table {
        name: "times",
        ddl: "id int PRIMARY KEY, t time(3), d date",
        fill: "INSERT INTO times SELECT seq, time '00:00' + seq * interval '97.5 seconds', date '2000-02-29' + seq \
               FROM generate_series(1, 200) seq",
        postgres: "SELECT id, to_char(t, 'HH24:MI:SS.US'), d FROM {} ORDER BY id",
        mariadb: "SELECT id, TIME_FORMAT(t, '%H:%i:%s.%f'), d FROM {} ORDER BY id",
    },
    Table {
        name: "measures",
        ddl: "id int PRIMARY KEY, f real, big numeric(40,10), i2 smallint",
        fill: "INSERT INTO measures SELECT seq, seq * 0.25 - 10, (repeat('9', 29) || '.' || lpad(seq::text, 10, '0'))::numeric, \
               (seq * 100 - 20000)::smallint FROM generate_series(1, 200) seq",
        postgres: "SELECT id, f, big, i2 FROM {} ORDER BY id",
        mariadb: "SELECT id, f, big, i2 FROM {} ORDER BY id",
    },
    Table {
        name: "moods",
        ddl: "id uuid PRIMARY KEY, feeling mood NOT NULL, level smallint",
        fill: "INSERT INTO moods SELECT md5(seq::text)::uuid, (enum_range(NULL::mood))[1 + seq % 3], seq \
               FROM generate_series(1, 150) seq",
        postgres: "SELECT id::text, feeling::text, level FROM {} ORDER BY id::text COLLATE \"C\"",
        mariadb: "SELECT id, feeling, level FROM {} ORDER BY id COLLATE utf8mb4_bin",
    },
    Table {
        name: "texts",
        ddl: "code varchar(20) PRIMARY KEY, body text, lang char(2)",
        fill: "INSERT INTO texts SELECT 'k' || seq, 'ünïcødé ' || repeat('x', seq) || ' ''quoted''', \
               (ARRAY['de','fr'])[1 + seq % 2] FROM generate_series(1, 150) seq",
        postgres: "SELECT code, body, lang FROM {} ORDER BY code COLLATE \"C\"",
        mariadb: "SELECT code, body, lang FROM {} ORDER BY code COLLATE utf8mb4_bin",
    },
    Table {
        name: "accounts",
        ddl: "id int PRIMARY KEY, balance numeric(20,4) NOT NULL, opened timestamp(0), vip boolean",
        fill: "INSERT INTO accounts SELECT seq, seq * 100.0001, timestamp '2020-06-01 12:00:00' + seq * interval '1 hour', \
               seq % 3 = 0 FROM generate_series(1, 250) seq",
        postgres: "SELECT id, balance, to_char(opened, 'YYYY-MM-DD HH24:MI:SS'), vip::int FROM {} ORDER BY id",
        mariadb: "SELECT id, balance, DATE_FORMAT(opened, '%Y-%m-%d %H:%i:%s'), vip FROM {} ORDER BY id",
    },
    Table {
        name: "sales.regions",
        ddl: "region text, year int, total numeric(14,2), PRIMARY KEY (region, year)",
        fill: "INSERT INTO sales.regions SELECT r, y, y * 10.5 FROM unnest(ARRAY['north','south','east']) r, \
               generate_series(2000, 2019) y",
        postgres: "SELECT region, year, total FROM {} ORDER BY region COLLATE \"C\", year",
        mariadb: "SELECT region, year, total FROM {} ORDER BY region COLLATE utf8mb4_bin, year",
    },
];

/// [`PG_TABLES`]' sink table in MariaDB database `dst`: `public`'s by their name, another schema's
/// prefixed with it (as the definition's routes say).
fn pg_sink_table(dst: &str, name: &str) -> String {
    match name.strip_prefix("public.").or_else(|| (!name.contains('.')).then_some(name)) {
        Some(table) => format!("{dst}.{table}"),
        None => format!("{dst}.{}", name.replace('.', "_")),
    }
}

fn postgres_to_mariadb(dst: &Database) -> Vec<Compared> {
    PG_TABLES
        .iter()
        .map(|t| Compared {
            name: t.name.to_string(),
            source: t.postgres.replace("{}", t.name),
            sink: t.mariadb.replace("{}", &pg_sink_table(dst.name(), t.name)),
        })
        .collect()
}

/// [`PG_TABLES`] in `db`, filled, with the publication the pipeline's user reads (created by an
/// administrator, as its default mode needs a superuser to create one FOR ALL TABLES), and the
/// tables the allowlist leaves out: a keyless one (which a pipeline source refuses) and a scratch
/// one.
fn create_pg_source(db: &Database) {
    db.exec(
        "CREATE TYPE mood AS ENUM ('happy', 'calm', 'grumpy'); CREATE SCHEMA sales; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT SELECT ON TABLES TO cdc_user; \
         GRANT USAGE ON SCHEMA sales TO cdc_user;",
    );
    for t in PG_TABLES {
        db.exec(&format!("CREATE TABLE {} ({}); {};", t.name, t.ddl, t.fill));
    }
    db.exec(
        "CREATE TABLE audit_log (at timestamptz, what text); INSERT INTO audit_log VALUES (now(), 'kept out');
         CREATE TABLE tmp_scratch (id int PRIMARY KEY); INSERT INTO tmp_scratch VALUES (1);
         CREATE PUBLICATION dbz_publication FOR ALL TABLES;",
    );
}

/// The definition: schemas `public` (but the excluded tables) and `sales` of `src`, into MariaDB
/// database `dst`, `sales`' tables prefixed `sales_`.
fn pg_definition(src: &Database, dst: &Database, state: &std::path::Path) -> String {
    let c = src.connection();
    let sink = dst.admin_connection();
    let db = src.name();
    format!(
        "source:
  type: postgres
  name: PostgreSQL {db}
  hostname: {host}
  port: {port}
  username: {user}
  password: {password}
  tables: {db}.public.\\.*, {db}.sales.\\.*
  tables.exclude: {db}.public.audit_log, {db}.public.tmp_\\.*
  slot.name: pipe_{db}
  decoding.plugin.name: pgoutput
  scan.incremental.snapshot.chunk.size: 250
  heartbeat.interval: 1s

route:
  - source-table: public.\\.*
    sink-table: {dst}.<>
    replace-symbol: <>
  - source-table: sales.\\.*
    sink-table: {dst}.sales_<>
    replace-symbol: <>
    description: another schema, prefixed

sink:
  type: jdbc
  url: {url}
  username: {sink_user}
  password: {sink_password}

pipeline:
  name: sync-{db}
  parallelism: 2
  execution.checkpointing.interval: 1s
  state.checkpoints.dir: {state}
",
        host = c.host,
        port = c.port,
        user = c.user,
        password = c.password,
        dst = dst.name(),
        url = sink.jdbc_url(),
        sink_user = sink.user,
        sink_password = sink.password,
        state = state.display(),
    )
}

/// Changes to several PostgreSQL tables until `stop` is set: inserts, updates (of a composite
/// key too) and deletes, each round one transaction.
fn pg_write_load(src: Database, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut round = 0u64;
        while !stop.load(Ordering::SeqCst) {
            round += 1;
            let n = round as i64;
            src.exec(&format!(
                "INSERT INTO orders (customer_id, amount, status, created, paid, note)
                   VALUES ({n}, {n}.5, 'new', '2025-01-01 00:00:00.000001', false, 'live {n}');
                 UPDATE orders SET status = 'shipped', paid = true, amount = amount + 1 WHERE id % 97 = {m};
                 DELETE FROM orders WHERE id = {del};
                 INSERT INTO order_items VALUES (10000 + {n}, 1, 'LIVE0001', {n}, 1.00)
                   ON CONFLICT (order_id, line) DO UPDATE SET qty = order_items.qty + 1;
                 UPDATE order_items SET line = line + 10 WHERE order_id = {m} + 1 AND line < 10;
                 DELETE FROM order_items WHERE order_id = {del} AND line = 2;
                 UPDATE customers SET score = score + 1, email = NULL WHERE id = {cust};
                 INSERT INTO texts VALUES ('live' || {n}, 'new text', 'en');
                 UPDATE accounts SET balance = balance - 0.0001 WHERE id = {acc};
                 UPDATE events SET payload = payload || jsonb_build_object('live', {n}), at = at + interval '1.5 s'
                   WHERE id = 9000000000000 + {ev};
                 INSERT INTO moods VALUES (md5('live' || {n})::uuid, 'grumpy', {n} % 100);
                 UPDATE sales.regions SET total = total + 1 WHERE year = 2000 + {n} % 20;
                 DELETE FROM blobs WHERE id = {blob};",
                m = n % 97,
                del = 1 + (n * 37) % 3000,
                cust = 1 + (n * 13) % 500,
                acc = 1 + n % 250,
                ev = 1 + n % 300,
                blob = 1 + n % 200,
            ));
            std::thread::sleep(Duration::from_millis(20));
        }
        round
    })
}

#[test]
fn a_postgres_database_syncs_into_mariadb_through_kills_and_restarts() {
    let src = cdc_sql_testkit::postgres().create_database("pipe_pg_src");
    create_pg_source(&src);
    let dst = cdc_sql_testkit::mariadb().create_database("pipe_pg_dst");
    let dir = tempfile::tempdir().unwrap();
    let definition = pg_definition(&src, &dst, &dir.path().join("state"));
    let compared = postgres_to_mariadb(&dst);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = pg_write_load(src.clone(), stop.clone());
    let mut job = Job::start(dir.path(), &definition, 1);
    // Killed as soon as its snapshot's first rows landed, then again while it streams, under
    // the load: each restart finds the one slot the killed run held.
    wait_snapshot_started(&dst, &pg_sink_table(dst.name(), "orders"), &mut job);
    job.kill();
    let mut job = Job::start(dir.path(), &definition, 2);
    std::thread::sleep(Duration::from_secs(4));
    job.check_running();
    job.kill();
    let mut job = Job::start(dir.path(), &definition, 3);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    assert!(rounds > 10, "the load ran {rounds} rounds");
    wait_equal(&src, &dst, &compared, &mut job);

    // Streaming goes on after the catch-up.
    src.exec("UPDATE customers SET name = 'renamed' WHERE id = 1; DELETE FROM order_items WHERE order_id = 2;");
    wait_equal(&src, &dst, &compared, &mut job);
    let output = job.output();
    job.stop();
    let slots =
        src.query_one(&format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pipe_{}'", src.name()));
    assert_eq!(slots, "1", "all tables through one slot, kept for the next run:\n{output}");
    let tables = dst.query_one(&format!(
        "SELECT group_concat(table_name ORDER BY BINARY table_name) FROM information_schema.tables WHERE table_schema = '{}'",
        dst.name()
    ));
    assert_eq!(
        tables, "accounts,blobs,customers,events,measures,moods,order_items,orders,sales_regions,texts,times",
        "the allowlist's tables, routed"
    );
    // The sink tables were created with the source's keys, in key order.
    let key = dst.query_one(&format!(
        "SELECT group_concat(column_name ORDER BY seq_in_index) FROM information_schema.statistics
         WHERE table_schema = '{}' AND table_name = 'sales_regions' AND index_name = 'PRIMARY'",
        dst.name()
    ));
    assert_eq!(key, "region,year", "{output}");

    // A keyless table the allowlist takes in is refused, naming the way out; so is a pattern
    // whose database is not spelled out.
    let db = src.name();
    let keyless = definition.replace(&format!("{db}.public.audit_log, "), "");
    let (code, output) = Job::start(dir.path(), &keyless, 4).wait_exit();
    assert!(
        code == 1 && output.contains("public.audit_log has no primary key") && output.contains("tables.exclude"),
        "{output}"
    );
    let any_database = definition.replace(&format!("tables: {db}.public"), "tables: \\.*.public");
    let (code, output) = Job::start(dir.path(), &any_database, 5).wait_exit();
    assert!(code == 1 && output.contains("spelled out"), "{output}");

    // A table `tables` selects, created while the pipeline runs, stops it at its first change;
    // started again, the pipeline creates its sink table and writes all of its rows.
    let mut job = Job::start(dir.path(), &definition, 6);
    src.exec("UPDATE customers SET name = 'streaming' WHERE id = 2");
    wait_equal(&src, &dst, &compared, &mut job);
    src.exec("CREATE TABLE late (id int PRIMARY KEY, v text); INSERT INTO late VALUES (1, 'a'), (2, 'b');");
    let (code, output) = job.wait_exit();
    assert!(
        code == 1 && output.contains("source table `public.late` was created after the pipeline started"),
        "{output}"
    );
    let mut job = Job::start(dir.path(), &definition, 7);
    let mut with_late = postgres_to_mariadb(&dst);
    with_late.push(Compared {
        name: "late".into(),
        source: "SELECT id, v FROM late ORDER BY id".into(),
        sink: format!("SELECT id, v FROM {}.late ORDER BY id", dst.name()),
    });
    wait_equal(&src, &dst, &with_late, &mut job);
    job.stop();
}
