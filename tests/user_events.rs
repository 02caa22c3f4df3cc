//! `sql/examples/user_events_enriched.sql`, run as shipped (its `${VARS}` pointed at a Tansu
//! broker, a PostgreSQL `plans` table and a MariaDB `users` table from the test kit): Debezium user
//! events, enriched by a lookup join, applied exactly once and in order by the version guard.
//!
//! Every key gets one of the scripts below — create, create+update, create+delete,
//! create+update+delete, and the same with an older event delivered after a newer one — and the
//! job is SIGKILLed and restarted between rounds of events. The oracle is computed from the events
//! alone: per key, the event with the newest time (a delete winning a tie) decides the row, which is
//! absent after a delete, and whose plan columns are the `plans` row of its plan (NULL for an unknown
//! plan). The MariaDB table must end equal to it, row for row.

mod common;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_sql_testkit::{kafka, Record, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};
use common::{JobProcess, Rng};

/// One user as an event carries it.
#[derive(Clone, Debug, PartialEq)]
struct User {
    name: String,
    email: String,
    plan: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Create,
    Update,
    Delete,
}

/// An event of a script: what happens, at which event time (ms after the key's base time).
type Step = (Op, i64);

/// Scripts in produce order; times out of order are events arriving late.
const SCRIPTS: &[&[Step]] = &[
    &[(Op::Create, 10)],
    &[(Op::Create, 10), (Op::Update, 20)],
    &[(Op::Create, 10), (Op::Delete, 20)],
    &[(Op::Create, 10), (Op::Update, 20), (Op::Delete, 30)],
    // An older update after a newer one: the newer stays.
    &[(Op::Create, 10), (Op::Update, 30), (Op::Update, 20)],
    // An older update after the delete: the user stays deleted.
    &[(Op::Create, 10), (Op::Delete, 30), (Op::Update, 20)],
    // The create arrives after its update.
    &[(Op::Update, 20), (Op::Create, 10)],
    // Deleted, then created again later.
    &[(Op::Create, 10), (Op::Delete, 20), (Op::Create, 30)],
];

const PLANS: &[(i64, &str, &str)] = &[(1, "basic", "9.00"), (2, "pro", "29.50"), (3, "team's", "99.99")];

fn envelope(op: Op, before: Option<&(i64, User)>, after: Option<&(i64, User)>, ts_ms: i64) -> String {
    let row = |r: Option<&(i64, User)>| match r {
        None => "null".to_string(),
        Some((id, u)) => {
            format!("{{\"id\":{id},\"name\":\"{}\",\"email\":\"{}\",\"plan_id\":{}}}", u.name, u.email, u.plan)
        }
    };
    let op = match op {
        Op::Create => 'c',
        Op::Update => 'u',
        Op::Delete => 'd',
    };
    format!(
        "{{\"before\":{},\"after\":{},\"source\":{{\"version\":\"2.7.3.Final\",\"connector\":\"mysql\",\"name\":\"app\",\
         \"ts_ms\":{ts_ms},\"db\":\"app\",\"table\":\"users\"}},\"op\":\"{op}\",\"ts_ms\":{}}}",
        row(before),
        row(after),
        ts_ms + 5
    )
}

/// The events of key `id` following `script`, and the row the newest of them leaves (`None`:
/// deleted), with its event time.
fn events(rng: &mut Rng, id: i64, script: &[Step]) -> (Vec<Record>, Option<(User, i64)>) {
    let base = 1_760_000_000_000 + id * 1_000;
    let mut records = Vec::new();
    let mut last: Option<(i64, User)> = None;
    let mut newest: Option<(i64, Op, Option<User>)> = None;
    for (step, (op, at)) in script.iter().enumerate() {
        let ts = base + at;
        let user = User {
            name: format!("n{id}-{step}"),
            email: format!("u{id}.{step}@example.com"),
            plan: rng.range(1, 5) as i64,
        };
        let after = (id, user.clone());
        let value = match op {
            Op::Create => envelope(*op, None, Some(&after), ts),
            Op::Update => envelope(*op, Some(last.as_ref().unwrap_or(&after)), Some(&after), ts),
            Op::Delete => envelope(*op, Some(last.as_ref().unwrap_or(&after)), None, ts),
        };
        records.push(Record::keyed(format!("{{\"id\":{id}}}"), Some(&value)));
        if *op == Op::Delete {
            // Debezium's tombstone after a delete, for log compaction: skipped by the format.
            records.push(Record::keyed(format!("{{\"id\":{id}}}"), None));
        }
        let wins = match &newest {
            None => true,
            Some((t, newest_op, _)) => ts > *t || (ts == *t && *op == Op::Delete && *newest_op != Op::Delete),
        };
        if wins {
            newest = Some((ts, *op, (*op != Op::Delete).then(|| user.clone())));
        }
        last = (*op != Op::Delete).then_some(after);
    }
    let state = newest.and_then(|(ts, _, user)| user.map(|u| (u, ts)));
    (records, state)
}

/// The users table as text rows by id: name, email, plan name, price, event time (ms).
fn read_users(db: &cdc_sql_testkit::Database) -> BTreeMap<i64, Vec<String>> {
    db.query_opt(
        "SELECT id, name, email, plan_name, monthly_price,
                TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', updated_at) DIV 1000 FROM users",
    )
    .into_iter()
    .map(|r| {
        let text: Vec<String> = r.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect();
        (text[0].parse().unwrap(), text[1..].to_vec())
    })
    .collect()
}

fn expected_row(user: &User, ts: i64) -> Vec<String> {
    let plan = PLANS.iter().find(|p| p.0 == user.plan);
    vec![
        user.name.clone(),
        user.email.clone(),
        plan.map_or("NULL".into(), |p| p.1.to_string()),
        plan.map_or("NULL".into(), |p| p.2.to_string()),
        ts.to_string(),
    ]
}

/// The example's servers and the environment that points it at them.
struct Setup {
    topic: String,
    users: cdc_sql_testkit::Database,
    _plans: cdc_sql_testkit::Database,
    _dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let broker = kafka();
        let topic = broker.create_topic(name, 2);
        let plans = cdc_sql_testkit::postgres().create_database("plans");
        let values: Vec<String> =
            PLANS.iter().map(|(id, n, p)| format!("({id}, '{}', {p})", n.replace('\'', "''"))).collect();
        plans.exec(&format!(
            "CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL, monthly_price numeric(10,2) NOT NULL);
             INSERT INTO plans VALUES {};",
            values.join(", ")
        ));
        let users = cdc_sql_testkit::mariadb().create_database("users");
        users.exec(
            "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), plan_name VARCHAR(50),
               monthly_price DECIMAL(10,2), updated_at DATETIME(3))",
        );
        let dir = tempfile::tempdir().unwrap();
        let login = users.admin_connection().clone();
        let env = vec![
            ("CHECKPOINT_DIR", dir.path().join("state").display().to_string()),
            ("USER_EVENTS_TOPIC", topic.clone()),
            ("KAFKA_BOOTSTRAP", broker.bootstrap()),
            ("PLANS_URL", plans.jdbc_url()),
            ("PLANS_USER", POSTGRES_SUPERUSER.to_string()),
            ("PLANS_PASSWORD", POSTGRES_PASSWORD.to_string()),
            ("USERS_URL", users.jdbc_url()),
            ("USERS_USER", login.user.clone()),
            ("USERS_PASSWORD", login.password.clone()),
        ];
        Setup { topic, users, _plans: plans, _dir: dir, env }
    }

    /// The example as shipped, with `extra` environment too.
    fn spawn(&self, extra: &[(&str, &str)]) -> JobProcess {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/user_events_enriched.sql");
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        JobProcess::spawn_with(&example, &env)
    }

    /// Events for keys `ids`, each key following a random script; what they leave goes into
    /// `expected`.
    fn produce(&self, rng: &mut Rng, ids: std::ops::RangeInclusive<i64>, expected: &mut BTreeMap<i64, Vec<String>>) {
        let mut records = Vec::new();
        for id in ids {
            let script = SCRIPTS[rng.below(SCRIPTS.len() as u64) as usize];
            let (events, state) = events(rng, id, script);
            records.extend(events);
            if let Some((user, ts)) = state {
                expected.insert(id, expected_row(&user, ts));
            }
        }
        kafka().produce(&self.topic, &records);
    }

    /// Waits until `users` equals `expected`, failing with the first differences.
    fn wait_equal(&self, expected: &BTreeMap<i64, Vec<String>>, job: &mut JobProcess) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let actual = read_users(&self.users);
            if &actual == expected {
                return;
            }
            job.assert_running(0);
            if Instant::now() > deadline {
                let differ: Vec<String> = expected
                    .keys()
                    .chain(actual.keys())
                    .filter(|k| expected.get(k) != actual.get(k))
                    .take(10)
                    .map(|k| format!("id {k}: expected {:?}, got {:?}", expected.get(k), actual.get(k)))
                    .collect();
                panic!("users did not converge:\n{}\n{}", differ.join("\n"), job.log_tail());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn the_user_events_example_applies_every_key_exactly_once_and_in_order_across_sigkills() {
    let setup = Setup::new("user_events");
    let mut rng = Rng(0x05E);
    let mut expected = BTreeMap::new();
    let mut job = setup.spawn(&[]);
    for round in 0..3i64 {
        setup.produce(&mut rng, round * 120 + 1..=round * 120 + 120, &mut expected);
        std::thread::sleep(rng.millis(200, 900));
        job.assert_running(0);
        if round < 2 {
            job.sigkill();
            job = setup.spawn(&[]);
        }
    }
    // A user whose email is longer than MariaDB's column: refused, set aside with its position,
    // the other keys unaffected (the comparison below).
    let long = "x".repeat(250);
    let refused = (9_999, User { name: "refused".into(), email: long.clone(), plan: 1 });
    kafka().produce(
        &setup.topic,
        &[Record::keyed("{\"id\":9999}", Some(&envelope(Op::Create, None, Some(&refused), 1_760_000_000_000)))],
    );
    setup.wait_equal(&expected, &mut job);
    // Letters are committed at checkpoints (every second here).
    let deadline = Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters = setup
            .users
            .try_query("SELECT stage, table_name, error, position, row_kind, row_json FROM dead_letters")
            .unwrap_or_default();
        if !letters.is_empty() {
            break letters;
        }
        job.assert_running(0);
        assert!(Instant::now() < deadline, "no dead letter arrived:\n{}", job.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    };
    setup.wait_equal(&expected, &mut job);
    job.stop_gracefully(0);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter: Vec<String> = letters[0].iter().map(|v| v.clone().unwrap_or_default()).collect();
    assert_eq!((letter[0].as_str(), letter[1].as_str(), letter[4].as_str()), ("sink", "users", "+U"), "{letter:?}");
    assert!(letter[2].contains("email") && letter[2].to_lowercase().contains("too long"), "the error: {letter:?}");
    assert!(letter[3].contains(&setup.topic), "the Kafka position: {letter:?}");
    assert!(letter[5].contains("\"id\":9999") && letter[5].contains(&long), "the row: {letter:?}");
    // Every kind of script ran: some keys are gone, some have an unknown plan.
    assert!(expected.len() > 150 && expected.len() < 300, "{} users", expected.len());
    assert!(expected.values().any(|r| r[2] == "NULL"), "an unknown plan was exercised");
}

/// `GET path` on the job's REST port: the body, or nothing while the port does not answer.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// A TCP proxy to a server that can be taken down (connections refused, open ones cut) and
/// brought back on the same port: the database going away, as the job sees it.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (flag, streams) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            loop {
                match (&listener, flag.load(Ordering::SeqCst)) {
                    (Some(l), true) => {
                        l.set_nonblocking(true).unwrap();
                        match l.accept() {
                            Ok((client, _)) => {
                                client.set_nonblocking(false).unwrap();
                                let Ok(server) = TcpStream::connect((target.0.as_str(), target.1)) else { continue };
                                for (from, to) in [(&client, &server), (&server, &client)] {
                                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                                    std::thread::spawn(move || {
                                        let _ = std::io::copy(&mut from, &mut to);
                                        let _ = to.shutdown(Shutdown::Both);
                                    });
                                }
                                streams.lock().unwrap().extend([client, server]);
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                    // Down: nothing listens, every open connection is cut.
                    (Some(_), false) => {
                        listener = None;
                        for s in streams.lock().unwrap().drain(..) {
                            let _ = s.shutdown(Shutdown::Both);
                        }
                    }
                    (None, true) => listener = TcpListener::bind(("127.0.0.1", port)).ok(),
                    (None, false) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, up, open }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            // Wait until the cut happened, so that the outage has begun when this returns.
            while !self.open.lock().unwrap().is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The target database goes away for longer than the sink's connection retries last (the example
/// with 'connection.max-retry-timeout' and 'sink.max-retries' shortened from 60 s and 3 so that
/// the test is short): the job fails, the restart strategy restarts it, REST shows RESTARTING with
/// the cause, and once the database is back the table converges on every event.
#[test]
fn the_user_events_example_converges_after_the_target_database_went_away() {
    let setup = Setup::new("user_events_outage");
    let login = setup.users.admin_connection().clone();
    let proxy = Proxy::start((login.host.clone(), login.port));
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/user_events_enriched.sql"))
            .unwrap();
    let shortened = example.replace(
        "'sink.offsets-table' = 'cdc_offsets',",
        "'sink.offsets-table' = 'cdc_offsets', 'connection.max-retry-timeout' = '1s', 'sink.max-retries' = '1',",
    );
    assert_ne!(shortened, example, "the example's sink options moved");
    let dir = tempfile::tempdir().unwrap();
    let job_file = dir.path().join("user_events_outage.sql");
    std::fs::write(&job_file, shortened).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("jdbc:mysql://127.0.0.1:{}/{}", proxy.port, setup.users.name());
    let mut env: Vec<(&str, &str)> =
        setup.env.iter().filter(|(k, _)| *k != "USERS_URL").map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([("USERS_URL", url.as_str()), ("CDC_SQL_HTTP_ADDR", address.as_str())]);
    let mut job = JobProcess::spawn_with(&job_file, &env);
    let mut rng = Rng(0x0A7);
    let mut expected = BTreeMap::new();
    setup.produce(&mut rng, 1..=60, &mut expected);
    setup.wait_equal(&expected, &mut job);

    // The outage: new events arrive while the database cannot be reached.
    proxy.set_up(false);
    setup.produce(&mut rng, 61..=120, &mut expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    let exceptions = loop {
        let overview = get(port, "/jobs/overview");
        if overview.contains("\"RESTARTING\"") {
            let jid = overview.split("\"jid\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
            break get(port, &format!("/jobs/{jid}/exceptions"));
        }
        job.assert_running(0);
        assert!(Instant::now() < deadline, "the job never showed RESTARTING:\n{}", job.log_tail());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exceptions.contains("root-exception") && exceptions.contains("users"), "the cause: {exceptions}");
    assert!(!exceptions.contains(&login.password) || login.password.is_empty(), "a secret in: {exceptions}");
    std::thread::sleep(Duration::from_secs(2));
    proxy.set_up(true);
    setup.produce(&mut rng, 121..=180, &mut expected);
    setup.wait_equal(&expected, &mut job);
    job.stop_gracefully(0);
}
