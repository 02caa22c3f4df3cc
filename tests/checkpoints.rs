//! Checkpoints and recovery through the real binary: a seeded datagen changelog printed by the
//! print sink, stopped (SIGTERM) or killed (SIGKILL) at random points and restarted. The printed
//! stream of all runs together must be the stream of one uninterrupted run: exactly, after a
//! graceful stop; after a kill, the restarted run repeats at most what followed the last
//! checkpoint and loses nothing. Every random choice comes from a printed seed. A Top-N's state
//! carries over a stop and restart too.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn job(state_dir: &Path, rows: Option<u64>, sink: &str) -> String {
    job_of(
        state_dir,
        rows,
        &format!("CREATE TABLE {sink} (id BIGINT, v INT)"),
        &format!("INSERT INTO {sink} SELECT id, v FROM src"),
    )
}

/// The job over the seeded changelog `src`, printing with `sink` (a CREATE TABLE without its
/// WITH clause) what `insert` writes.
fn job_of(state_dir: &Path, rows: Option<u64>, sink: &str, insert: &str) -> String {
    let bound = rows.map(|r| format!("'number-of-rows' = '{r}', ")).unwrap_or_default();
    format!(
        "SET 'execution.checkpointing.interval' = '100ms';
         SET 'state.checkpoints.dir' = '{}';
         SET 'state.checkpoints.num-retained' = '3';
         CREATE TABLE src (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
           'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '30', 'seed' = '77',
           {bound}'rows-per-second' = '{}', 'fields.v.min' = '0', 'fields.v.max' = '999');
         {sink} WITH ('connector' = 'print');
         {insert};",
        state_dir.display(),
        if rows.is_some() { 100_000_000 } else { 3000 }
    )
}

fn spawn(sql: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .args(extra)
        .arg("-e")
        .arg(sql)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

struct Run {
    lines: Vec<String>,
    code: Option<i32>,
    stderr: String,
}

/// Runs until at least `lines` complete lines were printed, then sends `signal`.
fn run_until(sql: &str, extra: &[&str], lines: usize, signal: &str) -> Run {
    let mut child = spawn(sql, extra);
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut bytes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while bytes.iter().filter(|b| **b == b'\n').count() < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => bytes.extend(chunk),
            Err(_) => panic!("job printed too few lines before the deadline"),
        }
    }
    Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    bytes.extend(rx.try_iter().flatten());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    // A kill can cut the last line short.
    let complete = text.rfind('\n').map(|i| &text[..=i]).unwrap_or("");
    Run { lines: complete.lines().map(String::from).collect(), code: status.code(), stderr }
}

fn run_to_end(sql: &str, extra: &[&str]) -> Run {
    let out = spawn(sql, extra).wait_with_output().unwrap();
    Run {
        lines: String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect(),
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The stream of one uninterrupted run, long enough for every test here.
fn reference() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let run = run_to_end(&job(dir.path(), Some(20_000), "out"), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.lines
}

/// Where `piece` continues `reference`: the index it starts at.
fn position_in(reference: &[String], piece: &[String]) -> Option<usize> {
    (0..=reference.len().saturating_sub(piece.len())).find(|&start| reference[start..start + piece.len()] == *piece)
}

fn seeds() -> Vec<u64> {
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    (0..4).map(|i| base.wrapping_add(i * 7919)).collect()
}

fn pick(seed: u64, lo: usize, hi: usize) -> usize {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    lo + (x as usize) % (hi - lo)
}

#[test]
fn graceful_stop_and_restart_continue_the_stream_exactly() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let sql = job(dir.path(), None, "out");
    let first = run_until(&sql, &[], 300, "TERM");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let second = run_until(&sql, &[], 300, "TERM");
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let both: Vec<String> = first.lines.iter().chain(&second.lines).cloned().collect();
    assert_eq!(both[..], reference[..both.len()], "the two runs together are not one uninterrupted stream");
}

/// A join's output depends on the rows both sides hold: a restart without them would fail on
/// the first retraction of a row it never saw, or pad rows that have matches. Which changes a
/// self-join prints depends on batch boundaries (each batch goes to one side, then the other),
/// so the two runs are not compared with one uninterrupted run line by line: their changelog
/// together must apply cleanly and leave the join of the table it leaves.
#[test]
fn a_join_stopped_and_restarted_continues_from_its_checkpointed_state() {
    let sink = "CREATE TABLE out (id BIGINT, v INT, other BIGINT)";
    let insert = "INSERT INTO out SELECT a.id, a.v, b.id FROM src a LEFT JOIN src b ON a.v % 30 + 1 = b.id";
    let dir = tempfile::tempdir().unwrap();
    let sql = job_of(dir.path(), None, sink, insert);
    let first = run_until(&sql, &[], 300, "TERM");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let second = run_until(&sql, &[], 300, "TERM");
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let mut result: Vec<&str> = Vec::new();
    for line in first.lines.iter().chain(&second.lines) {
        let (kind, row) = line.split_at(2);
        match kind {
            "+I" | "+U" => result.push(row),
            _ => {
                let i = result.iter().position(|r| *r == row).unwrap_or_else(|| panic!("{line} retracts no row"));
                result.swap_remove(i);
            }
        }
    }
    let rows: Vec<Vec<Option<i64>>> =
        result.iter().map(|r| r.trim_matches(['[', ']']).split(", ").map(|v| v.parse().ok()).collect()).collect();
    let ids: std::collections::BTreeSet<i64> = rows.iter().filter_map(|r| r[0]).collect();
    assert_eq!(ids.len(), rows.len(), "each row of src once: {result:?}");
    for row in &rows {
        let looked_up = row[1].map(|v| v % 30 + 1).filter(|id| ids.contains(id));
        assert_eq!(row[2], looked_up, "{row:?}");
    }
}

#[test]
fn killed_job_resumes_from_its_last_checkpoint_losing_nothing() {
    let reference = reference();
    for seed in seeds() {
        eprintln!("seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let sql = job(dir.path(), None, "out");
        let mut printed: Vec<String> = Vec::new();
        for round in 0..3 {
            let wanted = pick(seed.wrapping_add(round), 50, 600);
            let run = run_until(&sql, &[], wanted, "KILL");
            let start = position_in(&reference, &run.lines)
                .unwrap_or_else(|| panic!("seed {seed}: run {round} printed rows that are not the source's stream"));
            assert!(start <= printed.len(), "seed {seed}: run {round} skipped rows {}..{start}", printed.len());
            assert_eq!(reference[..start], printed[..start], "seed {seed}");
            printed.truncate(start);
            printed.extend(run.lines);
        }
        assert_eq!(printed[..], reference[..printed.len()], "seed {seed}");
    }
}

/// The datagen position (`events`) a stored record resumes from.
fn events_in(record: &Path) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(record).unwrap()).unwrap();
    json["pipelines"][0]["inputs"][0]["position"]["events"].as_u64().unwrap()
}

#[test]
fn fresh_starts_over_and_from_checkpoint_picks_an_older_one() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let sql = job(dir.path(), None, "out");
    let first = run_until(&sql, &[], 1500, "TERM");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let records: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    let newest = records.iter().map(|r| events_in(r)).max().unwrap();
    let oldest = records.iter().min_by_key(|r| events_in(r)).unwrap();
    // Read now: the resumed run's records come after the newest, so the oldest may be retired.
    let oldest_events = events_in(oldest);

    let older = run_until(&sql, &["--from-checkpoint", oldest.to_str().unwrap()], 50, "TERM");
    assert_eq!(older.code, Some(0), "{}", older.stderr);
    let start = position_in(&reference, &older.lines).expect("resumed rows are the source's stream");
    assert!(start <= first.lines.len(), "resumed after the end of what was delivered");
    if oldest_events < newest {
        assert!(start < first.lines.len(), "an older checkpoint resumes before the newest one");
    }

    let fresh = run_until(&sql, &["--fresh"], 50, "TERM");
    assert_eq!(fresh.code, Some(0), "{}", fresh.stderr);
    assert_eq!(fresh.lines[..], reference[..fresh.lines.len()], "--fresh starts from the beginning");
}

#[test]
fn a_changed_job_refuses_the_stored_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_until(&job(dir.path(), None, "out"), &[], 20, "TERM");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let changed = run_to_end(&job(dir.path(), None, "other_sink"), &[]);
    assert_eq!(changed.code, Some(1));
    assert!(
        changed.stderr.contains("does not fit this job") && changed.stderr.contains("--fresh"),
        "{}",
        changed.stderr
    );
}

#[test]
fn a_finished_bounded_job_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let sql = job(dir.path(), Some(200), "out");
    let first = run_to_end(&sql, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(first.lines.len() >= 200);
    let again = run_to_end(&sql, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.lines.is_empty(), "the finished job ran again: {:?}", &again.lines[..3.min(again.lines.len())]);
}

/// A record written by the release before checkpoint format version 2 (one source per pipeline,
/// its position at the top of the pipeline's entry, a fingerprint string) still resumes the job.
#[test]
fn a_checkpoint_of_format_version_1_resumes_under_version_2() {
    let reference = reference();
    // How many printed lines the first 100 generated events make.
    let dir = tempfile::tempdir().unwrap();
    let first_100 = run_to_end(&job(dir.path(), Some(100), "out"), &[]);
    assert_eq!(first_100.code, Some(0), "{}", first_100.stderr);

    let dir = tempfile::tempdir().unwrap();
    let v1 = serde_json::json!({
        "version": 1, "job": "cdc-sql-job", "checkpoint_id": 41, "created_at_ms": 1,
        "pipelines": [{
            "name": "INSERT INTO out", "fingerprint": "src (datagen) -> out (print)",
            "position": { "seed": 77, "events": 100 }, "prepared_checkpoint": 41, "prepared": null,
            "finished": false, "exact": true
        }]
    });
    std::fs::write(dir.path().join("chk-41.json"), v1.to_string()).unwrap();
    let resumed = run_until(&job(dir.path(), None, "out"), &[], 50, "TERM");
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(
        position_in(&reference, &resumed.lines),
        Some(first_100.lines.len()),
        "the run did not continue right after the 100 events the version 1 record covers"
    );
    let newest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max_by_key(|p| p.metadata().unwrap().modified().unwrap())
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&newest).unwrap()).unwrap();
    assert_eq!(record["version"], 2, "{record}");
    assert!(events_in(&newest) > 100, "{record}");
}

/// The rows a print sink's changelog leaves, per print identifier, from `id> ±X[…]` lines.
fn materialized(lines: &[String]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut tables: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in lines {
        let Some((id, change)) = line.split_once("> ") else { continue };
        let (kind, row) = change.split_at(2);
        let rows = tables.entry(id.to_string()).or_default();
        if kind.starts_with('+') {
            rows.push(row.to_string());
        } else {
            let at = rows.iter().position(|r| r == row).unwrap_or_else(|| panic!("{line} retracts a row not there"));
            rows.swap_remove(at);
        }
    }
    tables
}

/// A Top-N keeps every row of its input as state: stopped mid-stream and started again, it goes on
/// from the checkpoint's state (a row it lost would be retracted later, stopping the job), and
/// its final result is the Top-N of the rows the source's changes leave.
#[test]
fn a_stopped_top_n_resumes_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '100ms';
         SET 'state.checkpoints.dir' = '{}';
         SET 'datafusion.execution.batch_size' = '5';
         CREATE TABLE events (id BIGINT, k INT, ts INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
           'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '40', 'seed' = '5',
           'number-of-rows' = '3000', 'rows-per-second' = '2000',
           'fields.k.min' = '0', 'fields.k.max' = '4', 'fields.ts.min' = '0', 'fields.ts.max' = '999');
         CREATE TABLE src (id BIGINT, k INT, ts INT) WITH ('connector' = 'print', 'print-identifier' = 'src');
         CREATE TABLE top2 (k INT, rn BIGINT, ts INT, id BIGINT, PRIMARY KEY (k, rn) NOT ENFORCED)
           WITH ('connector' = 'print', 'print-identifier' = 'top2');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO src SELECT * FROM events;
           INSERT INTO top2 SELECT k, rn, ts, id FROM (
             SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC, id) AS rn FROM events) WHERE rn <= 2;
         END;",
        dir.path().display()
    );
    let first = run_until(&sql, &[], 600, "TERM");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let second = run_to_end(&sql, &[]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(!second.lines.is_empty(), "the second run had nothing left to do: stop the first one earlier");
    let tables = materialized(&first.lines.iter().chain(&second.lines).cloned().collect::<Vec<_>>());
    let mut by_k: std::collections::BTreeMap<i64, Vec<(i64, i64)>> = Default::default();
    for row in &tables["src"] {
        let v: Vec<i64> = row.trim_matches(['[', ']']).split(", ").map(|x| x.parse().unwrap()).collect();
        by_k.entry(v[1]).or_default().push((-v[2], v[0]));
    }
    let mut expected: Vec<String> = by_k
        .iter_mut()
        .flat_map(|(k, rows)| {
            rows.sort();
            rows.iter()
                .take(2)
                .enumerate()
                .map(|(i, (ts, id))| format!("[{k}, {}, {}, {id}]", i + 1, -ts))
                .collect::<Vec<_>>()
        })
        .collect();
    expected.sort();
    let mut actual = tables["top2"].clone();
    actual.sort();
    assert_eq!(actual, expected);
}
