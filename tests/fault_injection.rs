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
           'sink.buffer-flush.max-rows' = '500');
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
