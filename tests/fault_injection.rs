//! A job killed with SIGKILL at random points and restarted until its bounded source is done
//! leaves the sink equal to the source, row for row: a seeded datagen changelog (inserts,
//! updates, deletes) through the real binary into real PostgreSQL and MariaDB tables (jdbc
//! upserts), with checkpoints every 100 ms. Kills land mid-batch, mid-flush and between a
//! sink's prepare and the checkpoint record, wherever the clock puts them. Every random choice
//! comes from a seed printed first, so a failure can be replayed with FAULT_SEED=<seed>.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdc_sql_testkit::{Database, MARIADB_ROOT_PASSWORD, MARIADB_ROOT_USER, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};

const EVENTS: u64 = 12_000;

fn source() -> String {
    format!(
        "CREATE TABLE src (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
           'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '300', 'seed' = '2024',
           'number-of-rows' = '{EVENTS}', 'rows-per-second' = '6000', 'fields.v.min' = '0', 'fields.v.max' = '9999');"
    )
}

/// The table the source's changelog builds, from one uninterrupted run printed.
fn expected() -> BTreeMap<i64, i64> {
    let sql = format!(
        "{} CREATE TABLE out (id BIGINT, v INT) WITH ('connector' = 'print'); INSERT INTO out SELECT id, v FROM src;",
        source().replace("'rows-per-second' = '6000'", "'rows-per-second' = '100000000'")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql")).arg("-e").arg(sql).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut table = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (kind, rest) = line.split_at(2);
        let (id, v) = rest.trim_matches(['[', ']']).split_once(", ").unwrap();
        let (id, v): (i64, i64) = (id.parse().unwrap(), v.parse().unwrap());
        match kind {
            "+I" | "+U" => {
                table.insert(id, v);
            }
            _ => {
                table.remove(&id);
            }
        }
    }
    table
}

fn job(db: &Database, state: &Path) -> String {
    job_with(db, state, "")
}

fn job_with(db: &Database, state: &Path, sink_options: &str) -> String {
    let (user, password) = match db.kind() {
        cdc_sql_testkit::ServerKind::MariaDb => (MARIADB_ROOT_USER, MARIADB_ROOT_PASSWORD),
        cdc_sql_testkit::ServerKind::Postgres => (POSTGRES_SUPERUSER, POSTGRES_PASSWORD),
    };
    format!(
        "SET 'execution.checkpointing.interval' = '100ms';
         SET 'state.checkpoints.dir' = '{}';
         {}
         CREATE TABLE target (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
           'connector' = 'jdbc', 'url' = '{}', 'table-name' = 'target', 'username' = '{user}', 'password' = '{password}',
           'sink.buffer-flush.max-rows' = '500'{sink_options});
         INSERT INTO target SELECT id, v FROM src;",
        state.display(),
        source(),
        db.jdbc_url()
    )
}

fn checkpoints_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("chk-")).count())
        .unwrap_or(0)
}

fn newest_checkpoint(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_prefix("chk-")?.strip_suffix(".json")?.parse().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn kill_and_restart_until_done(db: &Database, seed: u64) {
    let state = tempfile::tempdir().unwrap();
    let sql = job(db, state.path());
    let mut rng = seed;
    let mut next = || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        rng >> 33
    };
    for round in 0.. {
        assert!(round < 40, "seed {seed}: the job never finished");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
            .arg("-e")
            .arg(&sql)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kill once the job has taken a random number (1–4) of further checkpoints, or let it
        // finish when the dice say so after a few rounds.
        let let_it_finish = round >= 3 && next() % 3 == 0;
        let target = newest_checkpoint(state.path()) + 1 + next() % 4;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                assert!(status.success(), "seed {seed}, round {round}: {status}\n{stderr}");
                return;
            }
            if !let_it_finish && newest_checkpoint(state.path()) >= target {
                child.kill().unwrap();
                child.wait().unwrap();
                break;
            }
            assert!(Instant::now() < deadline, "seed {seed}: round {round} made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(checkpoints_in(state.path()) >= 1);
    }
}

fn seed() -> u64 {
    std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

fn check(db: &Database, create: &str, expected: &BTreeMap<i64, i64>) {
    let seed = seed();
    eprintln!("FAULT_SEED={seed} ({:?})", db.kind());
    db.exec(create);
    kill_and_restart_until_done(db, seed);
    let rows = db.query("SELECT id, v FROM target ORDER BY id");
    let actual: BTreeMap<i64, i64> = rows.iter().map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap())).collect();
    assert_eq!(actual.len(), expected.len(), "FAULT_SEED={seed}: row count differs");
    assert_eq!(&actual, expected, "FAULT_SEED={seed}: the sink differs from the source");
}

#[test]
fn killed_jobs_leave_postgres_equal_to_the_source() {
    let expected = expected();
    for _ in 0..2 {
        let db = cdc_sql_testkit::postgres().create_database("faults");
        check(&db, "CREATE TABLE target (id BIGINT PRIMARY KEY, v INT)", &expected);
    }
}

#[test]
fn killed_jobs_leave_mariadb_equal_to_the_source() {
    let expected = expected();
    for _ in 0..2 {
        let db = cdc_sql_testkit::mariadb().create_database("faults");
        check(&db, "CREATE TABLE target (id BIGINT PRIMARY KEY, v INT)", &expected);
    }
}

/// Stops a persistent test server however the test ends.
struct StopOnDrop(std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = cdc_sql_testkit::stop_server(&self.0, Duration::from_secs(30));
    }
}

/// The sink's server goes away mid-run and comes back: the job fails, restarts from its last
/// checkpoint as its restart strategy allows until the server answers again, and the table
/// still ends equal to the source.
#[test]
fn a_sink_server_stopped_and_started_mid_run_leaves_it_equal_to_the_source() {
    use cdc_sql_testkit::{Postgres, PostgresConfig};
    use std::io::BufRead;

    let expected = expected();
    let seed = seed();
    eprintln!("FAULT_SEED={seed}");
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("postgres");
    let server = Postgres::start_with(PostgresConfig { dir: Some(data.clone()), ..PostgresConfig::default() }).unwrap();
    let _stop = StopOnDrop(data.clone());
    let port = server.port();
    let db = server.create_database("outage");
    db.exec("CREATE TABLE target (id BIGINT PRIMARY KEY, v INT)");

    let state = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'restart-strategy.type' = 'fixed-delay';
         SET 'restart-strategy.fixed-delay.attempts' = '1000';
         SET 'restart-strategy.fixed-delay.delay' = '200ms';
         {}",
        // The sink gives up at once, so the outage reaches the job's restart strategy.
        job_with(&db, state.path(), ", 'sink.max-retries' = '0', 'connection.max-retry-timeout' = '1s'")
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-e")
        .arg(&sql)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    let outage_at = 2 + seed % 5;
    while newest_checkpoint(state.path()) < outage_at {
        assert!(child.try_wait().unwrap().is_none(), "FAULT_SEED={seed}: the job ended before the outage");
        assert!(Instant::now() < deadline, "FAULT_SEED={seed}: no checkpoints");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.stop();
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("restarting from the last checkpoint")) {
        let left = deadline.saturating_duration_since(Instant::now());
        log.push(rx.recv_timeout(left).unwrap_or_else(|_| panic!("FAULT_SEED={seed}: no restart logged: {log:?}")));
    }
    let server =
        Postgres::start_with(PostgresConfig { dir: Some(data.clone()), port: Some(port), ..PostgresConfig::default() })
            .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            log.extend(rx.try_iter());
            assert!(status.success(), "FAULT_SEED={seed}: {status}\n{}", log.join("\n"));
            break;
        }
        assert!(Instant::now() < deadline + Duration::from_secs(120), "FAULT_SEED={seed}: the job never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows = db.query("SELECT id, v FROM target ORDER BY id");
    let actual: BTreeMap<i64, i64> = rows.iter().map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap())).collect();
    assert_eq!(actual, expected, "FAULT_SEED={seed}: the sink differs from the source after the outage");
    server.stop();
}
