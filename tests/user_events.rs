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
use std::path::Path;
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

#[test]
fn the_user_events_example_applies_every_key_exactly_once_and_in_order_across_sigkills() {
    let broker = kafka();
    let topic = broker.create_topic("user_events", 2);
    let plans = cdc_sql_testkit::postgres().create_database("plans");
    plans.exec(&format!(
        "CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL, monthly_price numeric(10,2) NOT NULL);
         INSERT INTO plans VALUES {};",
        PLANS
            .iter()
            .map(|(id, n, p)| format!("({id}, '{}', {p})", n.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let users = cdc_sql_testkit::mariadb().create_database("users");
    users.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), plan_name VARCHAR(50),
           monthly_price DECIMAL(10,2), updated_at DATETIME(3))",
    );
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/user_events_enriched.sql");
    let state = dir.path().join("state").display().to_string();
    let bootstrap = broker.bootstrap();
    let users_login = users.admin_connection();
    let env = [
        ("CHECKPOINT_DIR", state.as_str()),
        ("USER_EVENTS_TOPIC", topic.as_str()),
        ("KAFKA_BOOTSTRAP", bootstrap.as_str()),
        ("PLANS_URL", &plans.jdbc_url()),
        ("PLANS_USER", POSTGRES_SUPERUSER),
        ("PLANS_PASSWORD", POSTGRES_PASSWORD),
        ("USERS_URL", &users.jdbc_url()),
        ("USERS_USER", &users_login.user),
        ("USERS_PASSWORD", &users_login.password),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut rng = Rng(0x05E);
    let mut expected: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut job = JobProcess::spawn_with(&example, &env);
    for round in 0..3i64 {
        let mut records = Vec::new();
        for id in round * 120 + 1..=round * 120 + 120 {
            let script = SCRIPTS[rng.below(SCRIPTS.len() as u64) as usize];
            let (events, state) = events(&mut rng, id, script);
            records.extend(events);
            if let Some((user, ts)) = state {
                expected.insert(id, expected_row(&user, ts));
            }
        }
        broker.produce(&topic, &records);
        std::thread::sleep(rng.millis(200, 900));
        job.assert_running(0);
        if round < 2 {
            job.sigkill();
            job = JobProcess::spawn_with(&example, &env);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let actual = read_users(&users);
        if actual == expected {
            break;
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
    job.stop_gracefully(0);
    // Every script ran, and some keys went through each kind of late event.
    assert!(expected.len() > 150 && expected.len() < 300, "{} users", expected.len());
    assert!(expected.values().any(|r| r[2] == "NULL"), "an unknown plan was exercised");
}
