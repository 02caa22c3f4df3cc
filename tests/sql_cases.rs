//! SQL semantics as data: every `tests/cases/*.sql` runs through the real binary
//! (`cdc-sql -f <case>.sql`, from the cases directory) and must produce `<case>.out` on stdout.
//!
//! Directives in a case's leading comment lines:
//! - `-- exit: N`: expected exit code (default 0);
//! - `-- stderr: text`: stderr must contain this text (repeatable);
//! - `-- env: NAME=value`: set for the run;
//! - `-- unordered`: each print sink's lines are compared as a set: a `UNION ALL` of sources read
//!   side by side interleaves their rows in whatever order they arrive, as in Flink.
//! - `-- materialized`: each print sink's changelog is applied (`+I`/`+U` add a row, `-U`/`-D`
//!   take one away, which must be there) and the rows it ends with are compared, sorted, as
//!   `id> +I[…]` lines: which intermediate results an updating query shows depends on batch
//!   boundaries, its final result does not.
//!
//! Lines of different print sinks (`id> +I[…]`) may interleave, so stdout is compared after a
//! stable grouping by print identifier: each sink's lines keep their order.
//! `UPDATE_EXPECTED=1 cargo test --test sql_cases` rewrites the `.out` files (review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    exit: i32,
    stderr: Vec<String>,
    env: Vec<(String, String)>,
    unordered: bool,
    materialized: bool,
}

fn directives(sql: &str) -> Case {
    let mut case = Case { exit: 0, stderr: vec![], env: vec![], unordered: false, materialized: false };
    for line in sql.lines().take_while(|l| l.starts_with("--")) {
        let line = line.trim_start_matches("--").trim();
        if let Some(v) = line.strip_prefix("exit:") {
            case.exit = v.trim().parse().expect("exit code");
        } else if let Some(v) = line.strip_prefix("stderr:") {
            case.stderr.push(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("env:") {
            let (k, val) = v.trim().split_once('=').expect("env: NAME=value");
            case.env.push((k.to_string(), val.to_string()));
        } else if line == "unordered" {
            case.unordered = true;
        } else if line == "materialized" {
            case.materialized = true;
        }
    }
    case
}

fn grouped(stdout: &str, unordered: bool) -> String {
    let mut lines: Vec<(String, &str)> = stdout
        .lines()
        .map(|l| {
            let id = match l.split_once("> ") {
                Some((id, rest)) if !id.contains(' ') && rest.starts_with(['+', '-']) => id.to_string(),
                _ => String::new(),
            };
            (id, l)
        })
        .collect();
    if unordered {
        lines.sort();
    } else {
        lines.sort_by(|a, b| a.0.cmp(&b.0));
    }
    lines.into_iter().map(|(_, l)| format!("{l}\n")).collect()
}

/// The rows each print sink holds at the end of its changelog, as sorted `id> +I[…]` lines; other
/// lines are kept as they are.
fn materialize(stdout: &str) -> Result<String, String> {
    let mut tables: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut other = Vec::new();
    for line in stdout.lines() {
        let Some((id, rest)) = line.split_once("> ").filter(|(id, r)| !id.contains(' ') && r.len() > 2) else {
            other.push(format!("{line}\n"));
            continue;
        };
        let (kind, row) = rest.split_at(2);
        let rows = tables.entry(id.to_string()).or_default();
        match kind {
            "+I" | "+U" => rows.push(row.to_string()),
            "-U" | "-D" => match rows.iter().position(|r| r == row) {
                Some(i) => {
                    rows.swap_remove(i);
                }
                None => return Err(format!("{id}: {line:?} retracts a row the sink does not hold")),
            },
            _ => other.push(format!("{line}\n")),
        }
    }
    let mut out: String = other.concat();
    for (id, mut rows) in tables {
        rows.sort();
        for row in rows {
            out.push_str(&format!("{id}> +I{row}\n"));
        }
    }
    Ok(out)
}

fn run_case(dir: &Path, sql_path: &Path) -> Result<(), String> {
    let sql = std::fs::read_to_string(sql_path).map_err(|e| e.to_string())?;
    let case = directives(&sql);
    let name = sql_path.file_name().unwrap().to_string_lossy().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdc-sql"));
    cmd.current_dir(dir).arg("-f").arg(&name).env("RUST_LOG", "warn");
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let output = cmd.output().map_err(|e| format!("cannot run cdc-sql: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut problems = Vec::new();
    let code = output.status.code().unwrap_or(-1);
    if code != case.exit {
        problems.push(format!("exit code {code}, expected {}", case.exit));
    }
    for want in &case.stderr {
        if !stderr.contains(want.as_str()) {
            problems.push(format!("stderr lacks {want:?}"));
        }
    }
    let out_path = sql_path.with_extension("out");
    let stdout = if case.materialized {
        match materialize(&stdout) {
            Ok(rows) => rows.into(),
            Err(e) => {
                problems.push(e);
                stdout
            }
        }
    } else {
        stdout
    };
    let actual = grouped(&stdout, case.unordered);
    if std::env::var_os("UPDATE_EXPECTED").is_some() {
        std::fs::write(&out_path, stdout.as_bytes()).map_err(|e| e.to_string())?;
    } else {
        let expected = std::fs::read_to_string(&out_path).unwrap_or_default();
        if grouped(&expected, case.unordered) != actual {
            problems.push(format!(
                "stdout differs from {}:\n--- expected\n{expected}--- actual\n{stdout}",
                out_path.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}\n--- stderr\n{stderr}", problems.join("; ")))
    }
}

#[test]
fn job_files_produce_their_expected_changelogs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "expected the case files in {}", dir.display());
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(&dir, c).err()).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}
