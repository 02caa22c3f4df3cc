//! The "Flink options" table of each connector page against the code. Every row names one option
//! of the Flink connector the page's connector stands in for, a value to try, and its status
//! here: `implemented`, `no effect: <why>` or `refused: <why>`. Each row is tried on a table
//! declared with that option: an implemented one must be accepted without a warning, one without
//! effect accepted with a warning that gives the page's reason, a refused one refused with an
//! error that gives it. And every key the connector reads must be on its page, so an option added
//! to the code without documentation fails too.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;

use super::{ConnectorOptions, CONNECTORS};
use crate::sql::{ColumnSpec, TableOption, TableSpec};

#[derive(Debug, PartialEq)]
enum Status {
    Implemented,
    NoEffect(String),
    Refused(String),
}

#[derive(Debug)]
struct Row {
    key: String,
    value: String,
    status: Status,
}

/// A companion value that removes a base option instead of setting it.
const UNSET: &str = "(unset)";

/// What one connector's rows are tried on.
struct Setup {
    connector: &'static str,
    /// The options every table of the connector needs.
    base: &'static [(&'static str, &'static str)],
    columns: Vec<(&'static str, DataType)>,
    primary_key: &'static [&'static str],
    /// Options a row's option needs beside it (a start offset needs its startup mode).
    companions: &'static [(&'static str, &'static [(&'static str, &'static str)])],
}

fn setups() -> Vec<Setup> {
    let id_v = || vec![("id", DataType::Int64), ("v", DataType::Utf8)];
    vec![
        Setup {
            connector: "mysql-cdc",
            base: &[
                ("hostname", "mysql"),
                ("username", "flinkuser"),
                ("password", "flinkpw"),
                ("database-name", "inventory"),
                ("table-name", "products"),
            ],
            columns: id_v(),
            primary_key: &["id"],
            companions: &[
                (
                    "scan.startup.specific-offset.file",
                    &[("scan.startup.mode", "specific-offset"), ("scan.startup.specific-offset.pos", "4")],
                ),
                (
                    "scan.startup.specific-offset.pos",
                    &[
                        ("scan.startup.mode", "specific-offset"),
                        ("scan.startup.specific-offset.file", "mysql-bin.000003"),
                    ],
                ),
                ("scan.startup.specific-offset.gtid-set", &[("scan.startup.mode", "specific-offset")]),
                ("scan.startup.timestamp-millis", &[("scan.startup.mode", "timestamp")]),
            ],
        },
        Setup {
            connector: "postgres-cdc",
            base: &[
                ("hostname", "postgres"),
                ("username", "postgres"),
                ("password", "postgres"),
                ("database-name", "postgres"),
                ("schema-name", "public"),
                ("table-name", "shipments"),
                ("slot.name", "flink"),
            ],
            columns: id_v(),
            primary_key: &["id"],
            companions: &[],
        },
        Setup {
            connector: "jdbc",
            base: &[("url", "jdbc:postgresql://postgres:5432/shop"), ("table-name", "orders")],
            columns: id_v(),
            primary_key: &["id"],
            companions: &[
                ("lookup.cache", &[("lookup.partial-cache.max-rows", "10000")]),
                ("lookup.partial-cache.max-rows", &[("lookup.cache", "PARTIAL")]),
                ("lookup.partial-cache.expire-after-write", &[("lookup.cache", "PARTIAL")]),
                ("lookup.partial-cache.expire-after-access", &[("lookup.cache", "PARTIAL")]),
                (
                    "lookup.partial-cache.cache-missing-key",
                    &[("lookup.cache", "PARTIAL"), ("lookup.partial-cache.max-rows", "10")],
                ),
                ("lookup.cache.max-rows", &[("lookup.cache.ttl", "10s")]),
                ("lookup.cache.ttl", &[("lookup.cache.max-rows", "10000")]),
                (
                    "lookup.cache.caching-missing-key",
                    &[("lookup.cache.max-rows", "10000"), ("lookup.cache.ttl", "10s")],
                ),
                ("password", &[("username", "writer")]),
                (
                    "scan.partition.column",
                    &[
                        ("scan.partition.num", "4"),
                        ("scan.partition.lower-bound", "0"),
                        ("scan.partition.upper-bound", "999"),
                    ],
                ),
                (
                    "scan.partition.num",
                    &[
                        ("scan.partition.column", "id"),
                        ("scan.partition.lower-bound", "0"),
                        ("scan.partition.upper-bound", "999"),
                    ],
                ),
                (
                    "scan.partition.lower-bound",
                    &[
                        ("scan.partition.column", "id"),
                        ("scan.partition.num", "4"),
                        ("scan.partition.upper-bound", "999"),
                    ],
                ),
                (
                    "scan.partition.upper-bound",
                    &[
                        ("scan.partition.column", "id"),
                        ("scan.partition.num", "4"),
                        ("scan.partition.lower-bound", "0"),
                    ],
                ),
            ],
        },
        Setup {
            connector: "doris",
            base: &[("fenodes", "doris-fe:8030"), ("table.identifier", "db.orders"), ("username", "root")],
            columns: id_v(),
            primary_key: &["id"],
            companions: &[
                ("benodes", &[("auto-redirect", "false")]),
                ("auto-redirect", &[("benodes", "doris-be:8040")]),
                ("sink.buffer-flush.max-rows", &[("sink.enable.batch-mode", "true")]),
                ("sink.buffer-flush.max-bytes", &[("sink.enable.batch-mode", "true")]),
                ("sink.buffer-flush.interval", &[("sink.enable.batch-mode", "true")]),
            ],
        },
        Setup {
            connector: "iotdb",
            base: &[("url", "http://iotdb:18080"), ("device", "root.sg.d1")],
            columns: vec![("Time_", DataType::Int64), ("temperature", DataType::Float64)],
            primary_key: &[],
            // 'nodeUrls' is an alias of 'url': one of the two.
            companions: &[("nodeUrls", &[("url", UNSET)])],
        },
    ]
}

fn spec(setup: &Setup, options: &[(String, String)]) -> TableSpec {
    TableSpec {
        name: "t".into(),
        columns: setup
            .columns
            .iter()
            .map(|(name, data_type)| ColumnSpec {
                name: name.to_string(),
                data_type: data_type.clone(),
                nullable: !setup.primary_key.contains(name),
                type_text: String::new(),
                metadata: None,
                comment: None,
            })
            .collect(),
        primary_key: setup.primary_key.iter().map(|k| k.to_string()).collect(),
        options: options
            .iter()
            .map(|(k, v)| TableOption { key: k.clone(), value: v.clone(), written: v.clone() })
            .collect(),
        comment: None,
        computed: Vec::new(),
    }
}

/// The warnings given (key, message) or the error, and the keys the connector read.
type Opened = (Result<Vec<(String, String)>, String>, Vec<String>);

/// Opens a table of the setup's connector with `extra` over its base options.
fn open(setup: &Setup, extra: &[(String, String)]) -> Opened {
    let mut options: Vec<(String, String)> = vec![("connector".into(), setup.connector.into())];
    for (k, v) in setup.base.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(extra.iter().cloned()) {
        options.retain(|(key, _)| *key != k);
        if v != UNSET {
            options.push((k, v));
        }
    }
    let spec = spec(setup, &options);
    let connector = CONNECTORS.iter().find(|c| c.name() == setup.connector).expect("a registered connector");
    let mut o = ConnectorOptions::new(&spec).unwrap();
    let opened = connector.open_table(&spec, &mut o).map(|_| ());
    let known = o.known_keys().to_vec();
    let warned = o.warned().to_vec();
    let result = opened.and_then(|_| o.finish()).map(|_| warned).map_err(|e| e.to_string());
    (result, known)
}

/// The rows of the page's "Flink options" table.
fn rows(page: &str, name: &str) -> Vec<Row> {
    let section =
        page.split("\n## Flink options\n").nth(1).unwrap_or_else(|| panic!("{name} has no '## Flink options'"));
    let section = section.split("\n## ").next().unwrap_or_default();
    let code = |cell: &str| -> String {
        let cell = cell.trim();
        assert!(cell.starts_with('`') && cell.ends_with('`') && cell.len() > 2, "{name}: `{cell}` is not in backticks");
        cell[1..cell.len() - 1].to_string()
    };
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 3, "{name}: a row needs option | tried with | status: {line}");
            let key = code(cells[0]);
            let value = code(cells[1]);
            let status = cells[2].trim();
            let reason = |prefix: &str| {
                let why = status[prefix.len()..].trim().to_string();
                assert!(why.len() >= 20, "{name}: '{key}' needs a reason that says why: {status}");
                why
            };
            let status = if status.starts_with("implemented") {
                Status::Implemented
            } else if status.starts_with("no effect:") {
                Status::NoEffect(reason("no effect:"))
            } else if status.starts_with("refused:") {
                Status::Refused(reason("refused:"))
            } else {
                panic!("{name}: '{key}' has status '{status}'; expected implemented, 'no effect: …' or 'refused: …'")
            };
            Row { key, value, status }
        })
        .collect()
}

/// A row's option as set on a table: a family (`debezium.*`) is tried with the key and value
/// its row gives as `key=value`.
fn setting(row: &Row) -> (String, String) {
    if row.key.contains('*') || row.key.contains('[') {
        let (key, value) = row.value.split_once('=').unwrap_or_else(|| panic!("'{}' needs `key=value`", row.key));
        (key.trim().to_string(), value.trim().to_string())
    } else {
        (row.key.clone(), row.value.clone())
    }
}

#[test]
fn every_flink_option_on_a_connector_page_does_what_its_status_says_and_every_key_read_is_on_the_page() {
    for setup in setups() {
        let name = format!("docs/connectors/{}.md", setup.connector);
        let page = std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let table = rows(&page, &name);
        assert!(table.len() >= 15, "{name}: only {} Flink options", table.len());
        let (plain, mut read) = open(&setup, &[]);
        assert_eq!(plain, Ok(vec![]), "{name}: the base options alone");
        for row in &table {
            let (key, value) = setting(row);
            let mut extra: Vec<(String, String)> = setup
                .companions
                .iter()
                .filter(|(k, _)| *k == key)
                .flat_map(|(_, c)| c.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            extra.push((key.clone(), value.clone()));
            let (result, known) = open(&setup, &extra);
            read.extend(known);
            let what = format!("{name}: '{key}' = '{value}'");
            match (&row.status, result) {
                (Status::Implemented, Ok(warned)) => assert_eq!(warned, vec![], "{what} is implemented but warned"),
                (Status::NoEffect(why), Ok(warned)) => {
                    let warning = warned.iter().find(|(k, _)| *k == key).map(|(_, w)| w.clone()).unwrap_or_default();
                    assert!(warning.contains(why.as_str()), "{what}: the warning '{warning}' does not say '{why}'");
                }
                (Status::Refused(why), Err(err)) => {
                    assert!(
                        err.contains(&key) && err.contains(why.as_str()),
                        "{what}: the error '{err}' does not say '{why}'"
                    )
                }
                (status, result) => panic!("{what} is {status:?} on the page, but the code gives {result:?}"),
            }
        }
        // The keys named in the first cell of a row of a table of options (one whose header
        // starts with "option"): `username`, `password`; a family written with placeholders
        // (`overrides.[schema].[table]`) is the code's `overrides.*`.
        let mut first_cells = Vec::new();
        let mut in_options_table = false;
        let mut previous = "";
        for line in page.lines() {
            let cell = line.strip_prefix('|').and_then(|l| l.split('|').next());
            match cell {
                Some(header) if !previous.starts_with('|') => {
                    let header = header.trim().to_ascii_lowercase();
                    in_options_table = header.starts_with("option") || header.starts_with("flink option");
                }
                Some(cell) if in_options_table => first_cells.push(cell),
                _ => {}
            }
            previous = line;
        }
        let documented: BTreeSet<String> = first_cells
            .into_iter()
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .map(|k| match k.find('[') {
                Some(at) => format!("{}*", &k[..at]),
                None => k.to_string(),
            })
            .collect();
        let read: BTreeSet<String> = read.into_iter().filter(|k| k != "connector").collect();
        for key in &read {
            assert!(documented.contains(key), "{name} does not document '{key}', which the connector reads");
        }
    }
}

#[test]
fn rows_need_a_known_status_and_a_reason() {
    let page = "x\n## Flink options\n\n| option | tried with | status |\n|---|---|---|\n\
                | `a` | `1` | implemented |\n| `b.*` | `b.c=2` | no effect: nothing is read for it here |\n## next\n| `z` | `1` | maybe |\n";
    let parsed = rows(page, "p");
    assert_eq!(parsed.len(), 2);
    assert_eq!(setting(&parsed[1]), ("b.c".to_string(), "2".to_string()));
    assert_eq!(parsed[1].status, Status::NoEffect("nothing is read for it here".into()));
    let short = "\n## Flink options\n| `a` | `1` | refused: no |\n";
    assert!(std::panic::catch_unwind(|| rows(short, "p")).is_err());
    let unknown = "\n## Flink options\n| `a` | `1` | maybe |\n";
    assert!(std::panic::catch_unwind(|| rows(unknown, "p")).is_err());
}
