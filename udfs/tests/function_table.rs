//! docs/sql.md lists every Flink built-in function with its status here; this test keeps that
//! table and the functions cdc-sql registers in step, so the documentation cannot drift:
//! - a function listed as `UDF` is registered by cdc-sql (`cdc_sql_udfs::all()`), and every
//!   function cdc-sql registers is listed as `UDF` or `rewrite` (or is a rewrite's helper);
//! - a function listed as `native` is DataFusion's own and cdc-sql does not replace it;
//! - every syntax rewrite (`cdc_sql_udfs::syntax::REWRITTEN`) is listed, and every `rewrite` row
//!   names one;
//! - a function listed as `aggregate` is one of DataFusion's aggregate functions (the GROUP BY
//!   operator keeps it under retractions; tests/stateful_differential.rs holds it to DataFusion's
//!   answer);
//! - a `not supported` row names no implementation.

use std::collections::BTreeSet;

use datafusion::prelude::SessionContext;

struct Row {
    flink: String,
    status: String,
    names: Vec<String>,
}

/// The rows of the tables under `## Functions`.
fn function_rows() -> Vec<Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sql.md");
    let doc = std::fs::read_to_string(path).expect("docs/sql.md");
    let section = doc.split("\n## Functions\n").nth(1).expect("a '## Functions' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Flink |")) {
        // `\|` inside a cell is an escaped bar, not a separator.
        let cells: Vec<String> =
            line.replace("\\|", "\u{0}").split('|').map(|c| c.trim().replace('\u{0}', "|")).collect();
        assert_eq!(cells.len(), 6, "a function row has 4 cells: {line}");
        let names = cells[3].split('`').skip(1).step_by(2).map(str::to_string).collect();
        rows.push(Row { flink: cells[1].clone(), status: cells[2].clone(), names });
    }
    assert!(rows.len() > 100, "found only {} function rows", rows.len());
    rows
}

fn registered_by_cdc_sql() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for udf in cdc_sql_udfs::all() {
        names.insert(udf.name().to_string());
        names.extend(udf.aliases().iter().cloned());
    }
    names
}

#[test]
fn docs_function_table_matches_the_registered_functions() {
    let ours = registered_by_cdc_sql();
    let datafusion: BTreeSet<String> = SessionContext::new().state().scalar_functions().keys().cloned().collect();
    let aggregates: BTreeSet<String> = SessionContext::new().state().aggregate_functions().keys().cloned().collect();
    let rows = function_rows();
    let mut listed = BTreeSet::new();
    let mut problems = Vec::new();
    for row in &rows {
        match row.status.as_str() {
            "UDF" => {
                if row.names.is_empty() {
                    problems.push(format!("{}: a UDF row must name its functions", row.flink));
                }
                for n in &row.names {
                    if !ours.contains(n) {
                        problems
                            .push(format!("{}: `{n}` is listed as a UDF but cdc-sql does not register it", row.flink));
                    }
                }
            }
            "native" => {
                for n in &row.names {
                    if !datafusion.contains(n) {
                        problems.push(format!(
                            "{}: `{n}` is listed as native but DataFusion has no such function",
                            row.flink
                        ));
                    }
                    if ours.contains(n) {
                        problems.push(format!("{}: `{n}` is listed as native but cdc-sql replaces it", row.flink));
                    }
                }
            }
            "rewrite" => {
                for n in &row.names {
                    if !ours.contains(n) && !datafusion.contains(n) && !aggregates.contains(n) {
                        problems.push(format!("{}: the rewrite calls `{n}`, which does not exist", row.flink));
                    }
                }
                let upper = row.flink.to_uppercase();
                if !cdc_sql_udfs::syntax::REWRITTEN.iter().any(|r| upper.contains(r)) {
                    problems
                        .push(format!("{}: listed as a rewrite, but syntax::REWRITTEN has no such form", row.flink));
                }
            }
            "aggregate" => {
                if row.names.is_empty() {
                    problems.push(format!("{}: an aggregate row must name its functions", row.flink));
                }
                for n in &row.names {
                    if !aggregates.contains(n) {
                        problems.push(format!(
                            "{}: `{n}` is listed as an aggregate but DataFusion has no such aggregate function",
                            row.flink
                        ));
                    }
                }
            }
            "not supported" => {
                if !row.names.is_empty() {
                    problems.push(format!("{}: an unsupported function names an implementation", row.flink));
                }
            }
            other => problems.push(format!("{}: unknown status '{other}'", row.flink)),
        }
        if matches!(row.status.as_str(), "UDF" | "rewrite") {
            listed.extend(row.names.iter().cloned());
        }
    }
    for n in ours.difference(&listed) {
        problems.push(format!("cdc-sql registers `{n}`, which docs/sql.md does not list as a UDF or rewrite"));
    }
    for r in cdc_sql_udfs::syntax::REWRITTEN {
        if !rows.iter().any(|row| row.flink.to_uppercase().contains(r)) {
            problems.push(format!("the rewrite of {r} is not listed in docs/sql.md"));
        }
    }
    assert!(problems.is_empty(), "docs/sql.md and the registered functions disagree:\n{}", problems.join("\n"));
}
