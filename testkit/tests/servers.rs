//! The test kit against the real servers.

use cdc_sql_testkit::{
    cleanup_stale, mariadb, postgres, ConnectionInfo, Database, Error, MariaDb, MariaDbConfig, PgAuth, Postgres,
    PostgresConfig, ServerKind, CDC_USER,
};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().next();
            !matches!(state, Some("Z" | "X" | "x"))
        }
        Err(_) => false,
    }
}

/// Live children of `pid` (the PostgreSQL postmaster's checkpointer, WAL writer, backends…).
fn children(pid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
                fields[1] == pid.to_string()
            })
        })
        .filter(|&p| alive(p))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mariadb_variables(db: &Database) -> HashMap<String, String> {
    db.query("SHOW GLOBAL VARIABLES").into_iter().map(|row| (row[0].clone(), row[1].clone())).collect()
}

#[test]
fn mariadb_is_cdc_ready() {
    let server = mariadb();
    let db = server.create_database("cdc_ready");

    let vars = mariadb_variables(&db);
    for (name, expected) in [
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
        ("gtid_strict_mode", "ON"),
        ("log_slave_updates", "ON"),
        ("server_id", "1"),
        ("skip_name_resolve", "ON"),
        ("bind_address", "127.0.0.1"),
    ] {
        assert_eq!(vars[name], expected, "{name}");
    }
    assert_eq!(vars["port"], server.port().to_string());

    db.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO t VALUES (1, 'one')");
    let binlog_pos = db.query_one("SELECT @@gtid_binlog_pos");
    let current_pos = db.query_one("SELECT @@gtid_current_pos");
    assert!(binlog_pos.starts_with("0-1-"), "gtid_binlog_pos = {binlog_pos:?}");
    assert!(current_pos.starts_with("0-1-"), "gtid_current_pos = {current_pos:?}");

    // The CDC user, over TCP, as the engine connects.
    let cdc = db.cdc();
    assert!(cdc.socket().is_none());
    assert_eq!(cdc.query_one("SELECT CURRENT_USER()"), "cdc_user@%");
    let status = cdc.query("SHOW MASTER STATUS");
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(status[0][0].starts_with("mariadb-bin."), "{status:?}");
    assert_eq!(cdc.query("SELECT id, name FROM t"), vec![vec!["1", "one"]]);
    assert!(!cdc.query("SHOW BINARY LOGS").is_empty());
    let denied = cdc.try_exec("INSERT INTO t VALUES (2, 'two')").unwrap_err();
    assert!(denied.to_string().contains("denied"), "{denied}");

    // Exactly the documented grants (REPLICATION CLIENT is shown as BINLOG MONITOR).
    let grants = server.admin().query("SHOW GRANTS FOR 'cdc_user'@'%'");
    assert_eq!(grants.len(), 1, "{grants:?}");
    let privileges: Option<BTreeSet<&str>> = grants[0][0]
        .strip_prefix("GRANT ")
        .and_then(|rest| rest.split_once(" ON *.* TO `cdc_user`@`%`"))
        .map(|(list, _)| list.split(", ").collect());
    assert_eq!(
        privileges,
        Some(BTreeSet::from(["SELECT", "SHOW DATABASES", "REPLICATION SLAVE", "BINLOG MONITOR"])),
        "{grants:?}"
    );

    // root over TCP with its password.
    let root = server.client(db.admin_connection());
    assert_eq!(root.query_one("SELECT CURRENT_USER()"), "root@127.0.0.1");
    assert_eq!(root.query_one("SELECT COUNT(*) FROM t"), "1");
}

#[test]
fn postgres_is_cdc_ready() {
    let server = postgres();
    let db = server.create_database("cdc_ready");
    assert_eq!(db.query_one("SHOW wal_level"), "logical");
    assert_eq!(db.query_one("SHOW max_replication_slots"), "20");
    assert_eq!(db.query_one("SHOW max_wal_senders"), "20");
    assert_eq!(db.query_one("SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(db.query_one("SHOW port"), server.port().to_string());

    db.exec("CREATE TABLE t (id INT PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'one')");
    let cdc = db.cdc();
    assert_eq!(
        cdc.query(
            "SELECT current_user, current_database(), rolsuper, rolreplication \
             FROM pg_roles WHERE rolname = current_user"
        ),
        vec![vec![CDC_USER, db.name(), "f", "t"]]
    );
    assert_eq!(cdc.query("SELECT id, name FROM t"), vec![vec!["1", "one"]]);

    let slot = format!("slot_{}", db.name());
    assert_eq!(
        cdc.query(&format!("SELECT slot_name FROM pg_create_logical_replication_slot('{slot}', 'pgoutput')")),
        vec![vec![slot.as_str()]]
    );
    assert_eq!(
        db.query(&format!("SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = '{slot}'")),
        vec![vec!["pgoutput", "logical", db.name()]]
    );
    cdc.exec(&format!("SELECT pg_drop_replication_slot('{slot}')"));
    assert_eq!(db.query_one(&format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")), "0");

    // The superuser over TCP.
    let admin = server.client(db.admin_connection());
    assert_eq!(admin.query_one("SELECT current_user"), "postgres");
}

#[test]
fn shared_servers_give_each_test_its_own_database() {
    assert!(std::ptr::eq(mariadb(), mariadb()));
    assert!(std::ptr::eq(postgres(), postgres()));
    for (kind, a, b) in [
        (ServerKind::MariaDb, mariadb().create_database("Same Name"), mariadb().create_database("Same Name")),
        (ServerKind::Postgres, postgres().create_database("Same Name"), postgres().create_database("Same Name")),
    ] {
        assert_ne!(a.name(), b.name());
        assert!(a.name().starts_with("same_name_"), "{}", a.name());
        assert_eq!(a.kind(), kind);
        a.exec("CREATE TABLE t (v INT); INSERT INTO t VALUES (1)");
        b.exec("CREATE TABLE t (v INT); INSERT INTO t VALUES (2)");
        assert_eq!(a.query("SELECT v FROM t"), vec![vec!["1"]]);
        assert_eq!(b.cdc().query("SELECT v FROM t"), vec![vec!["2"]]);

        let conn = a.connection();
        assert_eq!(conn.host, "127.0.0.1");
        assert_eq!(conn.user, CDC_USER);
        assert_eq!(conn.database.as_deref(), Some(a.name()));
        let (scheme, jdbc) = match kind {
            ServerKind::MariaDb => ("mysql", "mysql"),
            ServerKind::Postgres => ("postgres", "postgresql"),
        };
        assert_eq!(a.url(), format!("{scheme}://cdc_user:cdc_password@127.0.0.1:{}/{}", a.port(), a.name()));
        assert_eq!(a.jdbc_url(), format!("jdbc:{jdbc}://127.0.0.1:{}/{}", a.port(), a.name()));
    }
}

#[test]
fn query_results_keep_null_apart_from_text() {
    let tricky = "tab\there, \"quoted\", <xml/> & 'apostrophe'\nsecond line";
    for db in [mariadb().create_database("nulls"), postgres().create_database("nulls")] {
        db.exec("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)");
        db.exec(&format!(
            "INSERT INTO t VALUES (1, 'NULL'), (2, NULL), (3, ''), (4, '{}')",
            tricky.replace('\'', "''")
        ));
        let sql = "SELECT id, v FROM t ORDER BY id";
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            db.query_opt(sql),
            vec![
                vec![some("1"), some("NULL")],
                vec![some("2"), None],
                vec![some("3"), some("")],
                vec![some("4"), some(tricky)],
            ],
            "{:?}",
            db.kind()
        );
        assert_eq!(db.cdc().query(sql)[1], vec!["2", "NULL"]);
        assert!(db.query("SELECT id FROM t WHERE id > 100").is_empty());
        let err = db.try_exec("SELECT * FROM no_such_table").unwrap_err();
        assert!(matches!(err, Error::Sql { .. }), "{err}");
        assert!(err.to_string().contains("no_such_table"), "{err}");
    }
}

#[test]
fn private_servers_started_in_parallel_are_independent() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(MariaDb::start);
        let b = s.spawn(MariaDb::start);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    assert!(a.dir().starts_with(cdc_sql_testkit::temp_root()));
    for server in [&a, &b] {
        // The users' set-up is not binlogged: a fresh server has no GTID position yet.
        assert_eq!(server.admin().query_one("SELECT @@gtid_binlog_pos"), "");
        assert_eq!(server.admin().query_one("SELECT 1"), "1");
        assert_eq!(server.cdc().query_one("SELECT CURRENT_USER()"), "cdc_user@%");
    }
    a.admin().exec("CREATE DATABASE only_in_a");
    assert!(b.admin().query("SHOW DATABASES LIKE 'only_in_a'").is_empty());

    let (pid, dir) = (a.pid(), a.dir().to_path_buf());
    assert!(alive(pid) && dir.is_dir());
    drop(a);
    assert!(!alive(pid), "mariadbd {pid} still running after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    let (pid, dir) = (b.pid(), b.dir().to_path_buf());
    b.stop();
    assert!(!alive(pid) && !dir.exists());
}

#[test]
fn postgres_with_scram_checks_passwords() {
    let server = Postgres::start_with(PostgresConfig { auth: PgAuth::Scram, ..PostgresConfig::default() }).unwrap();
    assert_eq!(server.auth(), PgAuth::Scram);
    let db = server.create_database("scram");
    assert_eq!(db.cdc().query_one("SELECT current_user"), CDC_USER);
    assert_eq!(server.client(db.admin_connection()).query_one("SELECT current_user"), "postgres");
    let wrong = ConnectionInfo { password: "wrong".to_string(), ..db.connection().clone() };
    let err = server.client(&wrong).try_query("SELECT 1").unwrap_err();
    assert!(err.to_string().contains("password authentication failed"), "{err}");
    // The shared server trusts TCP logins.
    let shared = postgres();
    assert_eq!(
        shared
            .client(&ConnectionInfo { password: "wrong".to_string(), ..shared.connection() })
            .query_one("SELECT current_user"),
        CDC_USER
    );
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    let kids = children(pid);
    assert!(kids.len() >= 4, "postmaster children: {kids:?}");
    drop(db);
    drop(server);
    assert!(!alive(pid) && !dir.exists());
    assert!(kids.iter().all(|&k| !alive(k)), "left behind: {kids:?}");
}

#[test]
fn a_missing_binary_names_the_package() {
    let nowhere = PathBuf::from("/nonexistent/cdc-sql-bin");
    let err =
        MariaDb::start_with(MariaDbConfig { bin_dir: Some(nowhere.clone()), ..MariaDbConfig::default() }).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::MissingBinary { .. }), "{message}");
    for part in ["`mariadbd`", "/nonexistent/cdc-sql-bin", "apt-get install -y mariadb-server"] {
        assert!(message.contains(part), "{message}");
    }

    let err = Postgres::start_with(PostgresConfig { bin_dir: Some(nowhere), ..PostgresConfig::default() }).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::MissingBinary { .. }), "{message}");
    for part in ["`postgres`", "/nonexistent/cdc-sql-bin", "apt-get install -y postgresql"] {
        assert!(message.contains(part), "{message}");
    }
}

#[test]
fn a_taken_fixed_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Postgres::start_with(PostgresConfig { port: Some(port), ..PostgresConfig::default() }).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::PortInUse { port: p, .. } if p == port), "{message}");
    // The tail of the server's log explains it.
    assert!(message.contains("Address already in use"), "{message}");
}

const STALE_CHILD_ENV: &str = "CDC_SQL_TESTKIT_STALE_CHILD";

/// Run by `stale_servers_of_a_killed_process_are_cleaned_up` in a child process: starts servers,
/// reports them in the file named by `$CDC_SQL_TESTKIT_STALE_CHILD`, and waits to be SIGKILLed.
#[test]
#[ignore = "helper process of stale_servers_of_a_killed_process_are_cleaned_up"]
fn stale_cleanup_child() {
    let Some(report) = std::env::var_os(STALE_CHILD_ENV) else {
        return;
    };
    let (orphan_mariadb, orphan_postgres, tied_postgres) = std::thread::scope(|s| {
        let m = s.spawn(|| MariaDb::start_with(MariaDbConfig { die_with_process: false, ..MariaDbConfig::default() }));
        let p =
            s.spawn(|| Postgres::start_with(PostgresConfig { die_with_process: false, ..PostgresConfig::default() }));
        let t = s.spawn(Postgres::start);
        (m.join().unwrap().unwrap(), p.join().unwrap().unwrap(), t.join().unwrap().unwrap())
    });
    let text = format!(
        "orphan {} {}\norphan {} {}\ntied {} {}\n",
        orphan_mariadb.pid(),
        orphan_mariadb.dir().display(),
        orphan_postgres.pid(),
        orphan_postgres.dir().display(),
        tied_postgres.pid(),
        tied_postgres.dir().display(),
    );
    let tmp = PathBuf::from(&report).with_extension("tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, &report).unwrap();
    // Wait to be SIGKILLed; give up (stopping the servers) if the parent test died or forgot us.
    let parent = std::os::unix::process::parent_id();
    let give_up = Instant::now() + Duration::from_secs(600);
    while std::os::unix::process::parent_id() == parent && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The System V shared memory id PostgreSQL recorded in `postmaster.pid`.
fn postgres_shmid(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
    Some(text.lines().nth(6)?.split_whitespace().nth(1)?.to_string())
}

fn shm_exists(shmid: &str) -> bool {
    fs::read_to_string("/proc/sysvipc/shm").unwrap().lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(shmid))
}

#[test]
fn stale_servers_of_a_killed_process_are_cleaned_up() {
    // This process's own servers must survive the cleanup.
    let (own_mariadb, own_postgres) = (mariadb(), postgres());
    let report = std::env::temp_dir().join(format!("cdc-sql-testkit-stale-child-{}.txt", std::process::id()));
    let _ = fs::remove_file(&report);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["stale_cleanup_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(STALE_CHILD_ENV, &report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);

    let deadline = Instant::now() + Duration::from_secs(180);
    let text = loop {
        if let Ok(text) = fs::read_to_string(&report) {
            break text;
        }
        if child.0.try_wait().unwrap().is_some() {
            let output =
                std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
            panic!(
                "helper exited early: {}\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(Instant::now() < deadline, "the helper did not start its servers");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = fs::remove_file(&report);
    let servers: Vec<(bool, u32, PathBuf)> = text
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let orphan = parts.next() == Some("orphan");
            let pid = parts.next().unwrap().parse().unwrap();
            (orphan, pid, PathBuf::from(parts.next().unwrap()))
        })
        .collect();
    assert_eq!(servers.len(), 3);
    let mut kids = Vec::new();
    for (_, pid, dir) in &servers {
        assert!(alive(*pid) && dir.is_dir());
        kids.extend(children(*pid));
    }
    assert!(kids.len() >= 8, "postmaster children: {kids:?}");
    let shmids: Vec<String> = servers.iter().filter_map(|(_, _, dir)| postgres_shmid(dir)).collect();
    assert_eq!(shmids.len(), 2);

    // SIGKILL: no atexit hook, no destructors.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    for (orphan, pid, _) in &servers {
        if *orphan {
            assert!(alive(*pid), "server {pid} should outlive its owner");
        } else {
            // PR_SET_PDEATHSIG: the kernel kills it together with its owner.
            wait_for(&format!("server {pid} to die with its owner"), Duration::from_secs(30), || !alive(*pid));
        }
    }
    for (_, _, dir) in &servers {
        assert!(dir.is_dir(), "nobody removed {} yet", dir.display());
    }

    // Another test process starting its first server may run the same cleanup concurrently
    // (nextest runs every test in its own process), so check the outcome, not who did it.
    let cleanup = cleanup_stale().unwrap();
    for (_, pid, dir) in &servers {
        assert!(!alive(*pid), "server {pid} still running; {cleanup:?}");
        assert!(!dir.exists(), "{} still exists; {cleanup:?}", dir.display());
    }
    wait_for("the servers' children to exit", Duration::from_secs(30), || kids.iter().all(|&k| !alive(k)));
    for shmid in &shmids {
        assert!(!shm_exists(shmid), "shared memory segment {shmid} left behind");
    }
    assert!(!cleanup.removed_dirs.iter().any(|d| d == own_mariadb.dir() || d == own_postgres.dir()));
    assert_eq!(own_mariadb.admin().query_one("SELECT 1"), "1");
    assert_eq!(own_postgres.admin().query_one("SELECT 1"), "1");
}

const CONCURRENT_CHILD_ENV: &str = "CDC_SQL_TESTKIT_CONCURRENT_CHILD";

/// Run by `two_test_processes_at_once_do_not_collide` in child processes: uses the shared servers
/// like any test binary, writes a table, and reports the servers it got.
#[test]
#[ignore = "helper process of two_test_processes_at_once_do_not_collide"]
fn concurrent_run_child() {
    let Some(report) = std::env::var_os(CONCURRENT_CHILD_ENV) else {
        return;
    };
    let (m, p) = (mariadb(), postgres());
    let mdb = m.create_database("concurrent");
    mdb.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);");
    let pdb = p.create_database("concurrent");
    pdb.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);");
    let text = format!(
        "{} {} {} {} {} {}\n",
        m.port(),
        m.dir().display(),
        p.port(),
        p.dir().display(),
        mdb.query_one("SELECT COUNT(*) FROM t"),
        pdb.query_one("SELECT COUNT(*) FROM t")
    );
    fs::write(&report, text).unwrap();
}

#[test]
fn two_test_processes_at_once_do_not_collide() {
    let reports: Vec<PathBuf> = (0..2)
        .map(|i| std::env::temp_dir().join(format!("cdc-sql-testkit-concurrent-{}-{i}.txt", std::process::id())))
        .collect();
    let children: Vec<KillOnDrop> = reports
        .iter()
        .map(|report| {
            let _ = fs::remove_file(report);
            KillOnDrop(
                Command::new(std::env::current_exe().unwrap())
                    .args(["concurrent_run_child", "--exact", "--ignored", "--test-threads=1"])
                    .env(CONCURRENT_CHILD_ENV, report)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let mut seen = Vec::new();
    for (mut child, report) in children.into_iter().zip(&reports) {
        let status = child.0.wait().unwrap();
        assert!(status.success(), "a concurrent test process failed: {status}");
        let text = fs::read_to_string(report).unwrap();
        let _ = fs::remove_file(report);
        let parts: Vec<String> = text.split_whitespace().map(String::from).collect();
        assert_eq!(&parts[4..], ["2", "2"], "{text}");
        // The shared servers of a process are stopped and removed when it exits.
        assert!(!Path::new(&parts[1]).exists() && !Path::new(&parts[3]).exists(), "{text}");
        seen.push(parts);
    }
    assert_ne!(seen[0][0], seen[1][0], "both processes got the same MariaDB port");
    assert_ne!(seen[0][2], seen[1][2], "both processes got the same PostgreSQL port");
    assert_ne!(seen[0][1], seen[1][1]);
}
