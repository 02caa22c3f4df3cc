//! The property behind the changelog rules: applying a filtered changelog to a keyed table gives
//! the same table as filtering the table the unfiltered changelog builds. Checked on long random
//! changelogs (several seeds) through the real binary, for `all` and `upsert` changelogs.

use std::collections::BTreeMap;
use std::process::Command;

type Table = BTreeMap<i64, i64>;

/// Parses `id> +U[3, 42]` lines of one print identifier into (kind, id, v).
fn changes(stdout: &str, id: &str) -> Vec<(String, i64, i64)> {
    let prefix = format!("{id}> ");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            let (kind, rest) = l.split_at(2);
            let inner = rest.trim_start_matches('[').trim_end_matches(']');
            let (a, b) = inner.split_once(", ").unwrap();
            (kind.to_string(), a.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

fn materialize(log: &[(String, i64, i64)]) -> Table {
    let mut table = Table::new();
    for (kind, id, v) in log {
        match kind.as_str() {
            "+I" | "+U" => {
                table.insert(*id, *v);
            }
            "-U" | "-D" => {
                table.remove(id);
            }
            other => panic!("unknown row kind {other}"),
        }
    }
    table
}

fn check(mode: &str, seed: u64) {
    let job = format!(
        "CREATE TABLE src (id BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen', \
           'changelog-mode' = '{mode}', 'changelog.key-space' = '40', 'changelog.delete-ratio' = '0.15', \
           'number-of-rows' = '3000', 'rows-per-second' = '100000000', 'seed' = '{seed}', \
           'fields.v.min' = '0', 'fields.v.max' = '99'); \
         SET 'datafusion.execution.batch_size' = '37'; \
         CREATE TABLE all_rows (id BIGINT, v BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'all'); \
         CREATE TABLE hot (id BIGINT, v BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'hot'); \
         EXECUTE STATEMENT SET BEGIN \
           INSERT INTO all_rows SELECT id, v FROM src; \
           INSERT INTO hot SELECT id, v FROM src WHERE v >= 60 OR v % 7 = 0; \
         END;"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-sql")).arg("-e").arg(job).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = changes(&stdout, "all");
    let hot = changes(&stdout, "hot");
    assert!(all.len() >= 3000, "seed {seed}: only {} changes", all.len());

    // Every -U is immediately followed by the +U of the same key.
    for (i, (kind, id, _)) in all.iter().enumerate() {
        if kind == "-U" {
            let next = &all[i + 1];
            assert!(next.0 == "+U" && next.1 == *id, "seed {seed}: -U of {id} at {i} not followed by its +U");
        }
    }
    let expected: Table = materialize(&all).into_iter().filter(|(_, v)| *v >= 60 || v % 7 == 0).collect();
    assert_eq!(materialize(&hot), expected, "mode {mode}, seed {seed}");
}

#[test]
fn filtered_changelog_builds_the_filtered_table() {
    for seed in [1, 2, 3, 42] {
        check("all", seed);
    }
}

#[test]
fn filtered_upsert_changelog_builds_the_filtered_table() {
    for seed in [5, 6, 7] {
        check("upsert", seed);
    }
}
