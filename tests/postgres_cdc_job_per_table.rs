//! One `postgres-cdc` job per table of one database — the deployment the compose file shows and
//! Flink CDC users run: five `cdc-sql` processes started at the same moment, each with its own
//! replication slot and none naming a publication, so all five settle the default
//! `dbz_publication` at once (racing to create it, then to extend it). Each copies its table
//! into its own sink table (jdbc, on another database of the same server) while a writer per
//! table inserts, updates, moves keys and deletes; every sink must end equal to its source row
//! for row, and the publication must cover all five tables.
//!
//! Two modes of 'debezium.publication.autocreate.mode': the default `all_tables` with a superuser
//! login (the compose file's), and `filtered` with a user that owns the tables, where each job
//! adds its table to the publication the first one created — and none drops another's.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdc_sql_testkit::{Database, CDC_PASSWORD, CDC_USER, POSTGRES_PASSWORD, POSTGRES_SUPERUSER};

use common::{difference, drop_slot, read_table, start_writer, JobProcess, Load, Table};

const TABLES: [&str; 5] = ["t_a", "t_b", "t_c", "t_d", "t_e"];
/// Rows in each source table before the jobs start (ids 1..=ROWS).
const ROWS: i64 = 2_000;
/// Transactions each writer commits while the jobs start, snapshot and stream (a few seconds).
const TRANSACTIONS: usize = 600;
const SEED: u64 = 0x5EED_0005;
const DEADLINE: Duration = Duration::from_secs(180);

struct Deployment {
    source: Database,
    sink: Database,
    jobs: Vec<(PathBuf, String)>,
    _dir: tempfile::TempDir,
}

impl Deployment {
    /// The five tables with `ROWS` rows each, their sink tables, and one job file per table
    /// logging in as `user` with `extra` WITH options.
    fn new(prefix: &str, user: (&str, &str), extra: &str) -> Deployment {
        let source = cdc_sql_testkit::postgres().create_database(prefix);
        let sink = cdc_sql_testkit::postgres().create_database(&format!("{prefix}_dst"));
        let dir = tempfile::tempdir().unwrap();
        let c = source.connection();
        let mut jobs = Vec::new();
        for table in TABLES {
            source.exec(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint NOT NULL, note varchar(64) NOT NULL);
                 INSERT INTO {table} SELECT i, i * 7 % 1000, 'row-' || i FROM generate_series(1, {ROWS}) i;"
            ));
            sink.exec(&format!("CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint, note varchar(64))"));
            let slot = format!("s_{}_{table}", source.name()).to_lowercase();
            let state = dir.path().join(format!("state_{table}"));
            let sql = format!(
                "SET 'pipeline.name' = 'cdc-{table}';
SET 'execution.checkpointing.interval' = '200ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'postgres-cdc', 'hostname' = '{}', 'port' = '{}', 'username' = '{}', 'password' = '{}',
  'database-name' = '{}', 'schema-name' = 'public', 'table-name' = '{table}', 'slot.name' = '{slot}',
  'decoding.plugin.name' = 'pgoutput', 'heartbeat.interval.ms' = '1s',
  'scan.incremental.snapshot.chunk.size' = '500'{extra});
CREATE TABLE dst (id BIGINT, v BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH (
  'connector' = 'jdbc', 'url' = '{}', 'table-name' = '{table}', 'username' = '{POSTGRES_SUPERUSER}',
  'password' = '{POSTGRES_PASSWORD}', 'sink.buffer-flush.max-rows' = '200');
INSERT INTO dst SELECT id, v, note FROM src;
",
                state.display(),
                c.host,
                c.port,
                user.0,
                user.1,
                source.name(),
                sink.jdbc_url()
            );
            let path = dir.path().join(format!("{table}.sql"));
            std::fs::write(&path, sql).unwrap();
            jobs.push((path, slot));
        }
        Deployment { source, sink, jobs, _dir: dir }
    }

    /// Starts the five jobs at once and the writers, waits for every sink to equal its source,
    /// stops the jobs gracefully and compares again.
    fn run(&self) {
        let gate = self.hold_the_publication();
        let mut jobs: Vec<JobProcess> = self.jobs.iter().map(|(path, _)| JobProcess::spawn(path)).collect();
        let writers: Vec<_> = TABLES
            .iter()
            .enumerate()
            .map(|(i, table)| {
                start_writer(self.source.admin().clone(), Load::new(table, ROWS, SEED + i as u64), TRANSACTIONS)
            })
            .collect();
        gate.join().expect("the jobs did not all try to create the publication");
        let models: Vec<Table> = writers.into_iter().map(|w| w.join().expect("a writer failed")).collect();
        for (table, model) in TABLES.iter().zip(&models) {
            assert!(
                read_table(&self.source, table) == *model,
                "{table}: the source differs from the writer's model (a test bug)"
            );
        }
        let started = Instant::now();
        let mut pending: Vec<usize> = (0..TABLES.len()).collect();
        while !pending.is_empty() {
            for job in jobs.iter_mut() {
                job.assert_running(SEED);
            }
            pending.retain(|&i| read_table(&self.sink, TABLES[i]) != models[i]);
            if started.elapsed() > DEADLINE {
                let i = pending[0];
                panic!(
                    "{}: the sink never caught up: {}\njob log:\n{}",
                    TABLES[i],
                    difference(&models[i], &read_table(&self.sink, TABLES[i])),
                    jobs[i].log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        for (table, job) in TABLES.iter().zip(jobs.iter_mut()) {
            job.stop_gracefully(SEED);
            // A lost race is settled inside the start, not by failing and restarting the job.
            let failures: Vec<String> = job.notable().into_iter().filter(|l| l.contains("job failed")).collect();
            assert!(failures.is_empty(), "{table}: {failures:#?}");
        }
        for (table, model) in TABLES.iter().zip(&models) {
            let sink = read_table(&self.sink, table);
            assert!(sink == *model, "{table}: after the final stop: {}", difference(model, &sink));
        }
        for (_, slot) in &self.jobs {
            drop_slot(&self.source, slot);
        }
    }

    /// Makes the jobs' creations of the publication race for real, whatever their start-up
    /// times: an uncommitted `CREATE PUBLICATION dbz_publication` of another session is held
    /// until all five jobs, having found no publication, wait behind it with their own `CREATE`,
    /// then rolled back. One job's `CREATE` then commits and the other four fail with
    /// `unique_violation`, read the publication again and use it (`all_tables`) or add their
    /// table to it (`filtered`). Returns once the gate is in place; its thread ends after the
    /// rollback.
    fn hold_the_publication(&self) -> std::thread::JoinHandle<()> {
        let admin = self.source.admin().clone();
        let jobs = self.jobs.len();
        let gate = std::thread::spawn(move || {
            admin.exec(&format!(
                "SET application_name = 'publication_gate';
                 BEGIN;
                 CREATE PUBLICATION dbz_publication;
                 DO $$
                 DECLARE
                   waiting int;
                   deadline timestamptz := clock_timestamp() + interval '{} seconds';
                 BEGIN
                   LOOP
                     PERFORM pg_stat_clear_snapshot();
                     SELECT count(*) INTO waiting FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()
                         AND wait_event_type = 'Lock' AND query LIKE 'CREATE PUBLICATION%';
                     EXIT WHEN waiting >= {jobs};
                     IF clock_timestamp() > deadline THEN
                       RAISE EXCEPTION 'only % of the {jobs} jobs tried to create the publication', waiting;
                     END IF;
                     PERFORM pg_sleep(0.02);
                   END LOOP;
                 END $$;
                 ROLLBACK;",
                DEADLINE.as_secs()
            ))
        });
        let started = Instant::now();
        while self.source.query_one(
            // This database's gate only: the other test's runs in parallel on the same server.
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'publication_gate' AND query ~ '^\\s*DO'",
        ) != "1"
        {
            assert!(!gate.is_finished() && started.elapsed() < DEADLINE, "the publication gate did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        gate
    }

    /// The tables `dbz_publication` publishes, and whether it is FOR ALL TABLES.
    fn publication(&self) -> (bool, Vec<String>) {
        let all = self.source.query_one("SELECT puballtables FROM pg_publication WHERE pubname = 'dbz_publication'");
        let tables = self
            .source
            .query("SELECT tablename FROM pg_publication_tables WHERE pubname = 'dbz_publication' ORDER BY 1")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        (all == "t", tables)
    }
}

#[test]
fn five_jobs_on_five_tables_of_one_database_share_the_default_publication_for_all_tables() {
    let deployment = Deployment::new("pub_all", (POSTGRES_SUPERUSER, POSTGRES_PASSWORD), "");
    deployment.run();
    let (all_tables, _) = deployment.publication();
    assert!(all_tables, "the default mode made dbz_publication FOR ALL TABLES");
}

#[test]
fn five_jobs_in_filtered_mode_each_add_their_table_and_drop_none() {
    let extra = ", 'debezium.publication.autocreate.mode' = 'filtered'";
    let deployment = Deployment::new("pub_filtered", (CDC_USER, CDC_PASSWORD), extra);
    // The CDC user owns the tables and may create in the database: all 'filtered' needs.
    let owned: Vec<String> = TABLES.iter().map(|t| format!("ALTER TABLE {t} OWNER TO {CDC_USER}")).collect();
    deployment.source.exec(&format!(
        "{}; GRANT CREATE ON DATABASE \"{}\" TO {CDC_USER}",
        owned.join("; "),
        deployment.source.name()
    ));
    deployment.run();
    assert_eq!(deployment.publication(), (false, TABLES.iter().map(|t| t.to_string()).collect()));
}
