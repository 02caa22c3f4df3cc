//! The `doris` sink against the Doris emulator (tests/emulators/doris): through the real binary
//! with job files, and at the Sink API level for 2PC recovery, label reuse, faults and errors.

#[path = "emulators/doris/mod.rs"]
mod emulator;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_sql::changelog::{ChangeBatch, ChangelogMode, RowKind};
use cdc_sql::connectors::{open_table, PreparedCommit, Sink, SourceContext};
use cdc_sql::sql::{ColumnSpec, TableOption, TableSpec};
use cdc_sql::ErrorKind;
use datafusion::arrow::array::{Array, Decimal128Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use emulator::{col, ColumnType, DorisEmulator, Model, Sequence, TableDef, TxnState};
use serde_json::{json, Map, Value};

const USER: &str = "loader";
const PASSWORD: &str = "s3cret-pass";

fn orders_table(model: Model) -> TableDef {
    TableDef {
        database: "shop".into(),
        name: "orders".into(),
        columns: vec![
            col("id", ColumnType::Int, false),
            col("name", ColumnType::Varchar(Some(20)), true),
            col("amount", ColumnType::Decimal(10, 2), true),
        ],
        model,
        sequence: None,
    }
}

fn emulator_with(model: Model) -> DorisEmulator {
    DorisEmulator::start(USER, PASSWORD, vec![orders_table(model)])
}

fn column(name: &str, data_type: DataType, nullable: bool, type_text: &str) -> ColumnSpec {
    ColumnSpec { name: name.into(), data_type, nullable, type_text: type_text.into(), metadata: None, comment: None }
}

/// `orders_sink (id INT NOT NULL, name STRING, amount DECIMAL(10, 2), PRIMARY KEY (id))` with
/// the emulator's FE and `extra` options (which may override the defaults).
fn sink_spec(emulator: &DorisEmulator, keyed: bool, extra: &[(&str, &str)]) -> TableSpec {
    let mut options: BTreeMap<String, String> = [
        ("connector", "doris".to_string()),
        ("fenodes", emulator.fe_address()),
        ("table.identifier", "shop.orders".into()),
        ("username", USER.into()),
        ("password", PASSWORD.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        options.insert(k.to_string(), v.to_string());
    }
    TableSpec {
        name: "orders_sink".into(),
        columns: vec![
            column("id", DataType::Int32, false, "INT"),
            column("name", DataType::Utf8, true, "STRING"),
            column("amount", DataType::Decimal128(10, 2), true, "DECIMAL(10, 2)"),
        ],
        primary_key: if keyed { vec!["id".into()] } else { vec![] },
        options: options.into_iter().map(|(key, value)| TableOption { key, written: value.clone(), value }).collect(),
        comment: None,
        computed: Vec::new(),
    }
}

fn open_sink(spec: &TableSpec, mode: ChangelogMode) -> Box<dyn Sink> {
    open_table(spec).expect("table opens").sink(mode).expect("sink").expect("doris can write")
}

type Row = (RowKind, i32, Option<&'static str>, Option<i128>);

fn batch(rows: &[Row]) -> ChangeBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(10, 2), true),
    ]));
    let amounts =
        Decimal128Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>()).with_precision_and_scale(10, 2).unwrap();
    let rb = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            Arc::new(amounts),
        ],
    )
    .unwrap();
    let kinds: Vec<RowKind> = rows.iter().map(|r| r.0).collect();
    ChangeBatch::from_kinds(rb, &kinds).unwrap()
}

fn row(id: i64, name: &str, amount: &str) -> Map<String, Value> {
    json!({"id": id, "name": name, "amount": amount}).as_object().unwrap().clone()
}

use RowKind::*;

#[tokio::test]
async fn two_phase_commit_shows_rows_only_after_commit() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let mut sink = open_sink(&sink_spec(&emulator, true, &[]), ChangelogMode::All);
    sink.open().await.unwrap();
    sink.recover(vec![]).await.unwrap();
    sink.write(
        &None,
        batch(&[
            (Insert, 1, Some("ann"), Some(1050)),
            (Insert, 2, Some("bob"), None),
            (UpdateBefore, 1, Some("ann"), Some(1050)),
            (UpdateAfter, 1, Some("ann2"), Some(-7)),
            (Insert, 3, Some("cy"), Some(1)),
            (Delete, 3, Some("cy"), Some(1)),
        ]),
    )
    .await
    .unwrap();
    let prepared = sink.prepare(1).await.unwrap();
    let txn = emulator.txn_of_label("shop", "cdc_sql_shop_orders_1").expect("checkpoint label used");
    assert_eq!(txn.state, TxnState::Precommitted);
    assert!(emulator.rows("shop", "orders").is_empty(), "precommitted rows must stay invisible");
    sink.commit(prepared).await.unwrap();
    assert_eq!(
        emulator.rows("shop", "orders"),
        vec![row(1, "ann2", "-0.07"), json!({"id": 2, "name": "bob", "amount": null}).as_object().unwrap().clone()]
    );
    assert_eq!(emulator.txn_of_label("shop", "cdc_sql_shop_orders_1").unwrap().state, TxnState::Visible);
    // Loads went to the FE first and were redirected to the BE.
    let requests = emulator.requests();
    let load = requests.iter().position(|r| r == "FE PUT /api/shop/orders/_stream_load").expect("FE saw the load");
    assert!(
        requests[load + 1].starts_with("BE PUT /api/shop/orders/_stream_load label=cdc_sql_shop_orders_1"),
        "{requests:?}"
    );
    // An empty checkpoint loads nothing.
    let empty = sink.prepare(2).await.unwrap();
    sink.commit(empty).await.unwrap();
    assert!(emulator.txn_of_label("shop", "cdc_sql_shop_orders_2").is_none());
}

#[tokio::test]
async fn deletes_reach_doris_through_the_columns_header() {
    // Doris reads `hidden_columns` only when no `columns` header is sent, so the delete sign must
    // be named in `columns` (as the Flink connector does), also in a `columns` the user gives.
    let user_columns: &[(&str, &str)] = &[("sink.properties.columns", "id,name,amount")];
    for extra in [&[][..], user_columns] {
        let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
        let mut sink = open_sink(&sink_spec(&emulator, true, extra), ChangelogMode::All);
        sink.write(&None, batch(&[(Insert, 1, Some("a"), None), (Insert, 2, Some("b"), None)])).await.unwrap();
        let p = sink.prepare(1).await.unwrap();
        sink.commit(p).await.unwrap();
        sink.write(&None, batch(&[(Delete, 1, Some("a"), None)])).await.unwrap();
        let p = sink.prepare(2).await.unwrap();
        sink.commit(p).await.unwrap();
        assert_eq!(ids_in(&emulator), vec![2], "{extra:?}");
    }
}

/// Strings that break naive CSV, each under 20 bytes (the emulator's VARCHAR(20)).
const NASTY: &[&str] = &[
    "tab\there",
    "comma,semi;",
    "line\nbreak",
    "cr\r\nlf",
    "ends cr\r",
    "quote\"d\"",
    "'single'",
    "back\\slash",
    "\\N",
    "\"\"",
    "||pipe|",
    "",
    "x\\",
    "\u{2}ctl\u{1}",
    "caret^",
    "é ü",
    "\"",
];

#[tokio::test]
async fn csv_loads_keep_separators_quotes_escapes_and_nulls_in_values() {
    let formats: &[&[(&str, &str)]] = &[
        &[("sink.properties.format", "csv"), ("sink.properties.enclose", "\""), ("sink.properties.escape", "\\")],
        &[
            ("sink.properties.column_separator", ","),
            ("sink.properties.enclose", "'"),
            ("sink.properties.escape", "\\"),
        ],
        &[
            ("sink.properties.format", "CSV"),
            ("sink.properties.column_separator", "||"),
            ("sink.properties.line_delimiter", "\\x02\\x03"),
            ("sink.properties.enclose", "\""),
            ("sink.properties.escape", "^"),
        ],
    ];
    for options in formats {
        let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
        let mut sink = open_sink(&sink_spec(&emulator, true, options), ChangelogMode::All);
        let mut rows: Vec<Row> =
            NASTY.iter().enumerate().map(|(i, s)| (Insert, i as i32, Some(*s), Some(i as i128 * 101 - 300))).collect();
        rows.push((Insert, 100, None, None));
        rows.push((Insert, 101, Some("gone"), None));
        sink.write(&None, batch(&rows)).await.unwrap();
        let p = sink.prepare(1).await.unwrap();
        sink.commit(p).await.unwrap();
        // Updates to other awkward values and a delete, in a second load.
        sink.write(
            &None,
            batch(&[
                (UpdateBefore, 0, Some(NASTY[0]), Some(-300)),
                (UpdateAfter, 0, Some("now,\"\\N\""), Some(1)),
                (UpdateBefore, 100, None, None),
                (UpdateAfter, 100, Some("\\"), None),
                (Delete, 101, Some("gone"), None),
            ]),
        )
        .await
        .unwrap();
        let p = sink.prepare(2).await.unwrap();
        sink.commit(p).await.unwrap();

        let amount = |cents: Option<i128>| match cents {
            Some(c) => json!(format!("{}{}.{:02}", if c < 0 { "-" } else { "" }, c.abs() / 100, c.abs() % 100)),
            None => Value::Null,
        };
        let mut expected: BTreeMap<i64, Value> = NASTY
            .iter()
            .enumerate()
            .map(|(i, s)| (i as i64, json!({"id": i, "name": s, "amount": amount(Some(i as i128 * 101 - 300))})))
            .collect();
        expected.insert(0, json!({"id": 0, "name": "now,\"\\N\"", "amount": "0.01"}));
        expected.insert(100, json!({"id": 100, "name": "\\", "amount": null}));
        let actual: BTreeMap<i64, Value> = emulator
            .rows("shop", "orders")
            .into_iter()
            .map(|r| (r["id"].as_i64().unwrap(), Value::Object(r)))
            .collect();
        assert_eq!(actual, expected, "{options:?}");
    }
}

#[test]
fn the_emulator_reads_csv_as_the_doris_manual_says() {
    // The examples of doris-website `data-operate/import/file-format/csv.md`.
    let enclosed = |escape: u8| emulator::CsvSettings::new(Some(","), None, b'\'', escape).unwrap();
    let read = |body: &str, settings: &emulator::CsvSettings| {
        emulator::read_csv(body.as_bytes(), settings)
            .into_iter()
            .map(|l| l.into_iter().map(|f| f.unwrap_or_else(|| "NULL".into())).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(read("a,'b,c',d\n", &enclosed(0)), [["a", "b,c", "d"]]);
    assert_eq!(read("a,'b\nc',d\n", &enclosed(0)), [["a", "b\nc", "d"]]);
    assert_eq!(read("a,'b,c\nd,e',f\n", &enclosed(0)), [["a", "b,c\nd,e", "f"]]);
    assert_eq!(read("a,'b,\\'c',d\n", &enclosed(b'\\')), [["a", "b,'c", "d"]]);
    assert_eq!(read("a,'b\\\\c',d\n", &enclosed(b'\\')), [["a", "b\\c", "d"]]);
    let double = emulator::CsvSettings::new(Some(","), None, b'"', b'\\').unwrap();
    assert_eq!(read("a,\"b,\\\"c\\\"d\",e\n", &double), [["a", "b,\"c\"d", "e"]]);
    // Multi-character separators and delimiters, `\x` notation, empty lines, `\N`, CRLF.
    let hive = emulator::CsvSettings::new(Some("\\x01"), Some("||"), 0, 0).unwrap();
    assert_eq!(read("John\x0125||||Mary\x01\\N||", &hive), [["John", "25"], ["Mary", "NULL"]]);
    let tabs = emulator::CsvSettings::new(None, None, 0, 0).unwrap();
    assert_eq!(read("\u{feff}a\tb\r\n\n\\N\t\n", &tabs), [["a", "b"], ["NULL", ""]]);
}

#[tokio::test]
async fn csv_without_enclose_refuses_a_value_with_the_separator_and_loads_nothing() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let mut sink = open_sink(&sink_spec(&emulator, true, &[("sink.properties.format", "csv")]), ChangelogMode::All);
    let err = sink
        .write(&None, batch(&[(Insert, 1, Some("fine"), None), (Insert, 7, Some("tab\there"), Some(5))]))
        .await
        .expect_err("a tab in a value cannot be loaded as tab-separated CSV");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::User, "{text}");
    assert!(
        text.starts_with("doris sink `orders_sink` (shop.orders): CSV load: in the row with id = 7, the value \"tab\\there\" of column `name` contains the column separator '\\t'"),
        "{text}"
    );
    assert!(text.contains("'sink.properties.enclose'") && text.contains("'sink.properties.format' = 'json'"), "{text}");
    assert!(emulator.txns().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn commit_whose_reply_was_lost_counts_as_done() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let mut sink = open_sink(&sink_spec(&emulator, true, &[("sink.max-retries", "2")]), ChangelogMode::All);
    sink.write(&None, batch(&[(Insert, 1, Some("a"), Some(100))])).await.unwrap();
    let prepared = sink.prepare(7).await.unwrap();
    emulator.lose_next_commit_reply();
    sink.commit(prepared.clone()).await.unwrap();
    assert_eq!(emulator.rows("shop", "orders"), vec![row(1, "a", "1.00")]);
    // Committing again (e.g. after a restart) is still fine and changes nothing.
    sink.commit(prepared).await.unwrap();
    assert_eq!(emulator.rows("shop", "orders"), vec![row(1, "a", "1.00")]);
}

fn inserts(ids: std::ops::Range<i32>) -> ChangeBatch {
    let rows: Vec<Row> = ids.map(|i| (Insert, i, Some("x"), Some(i as i128))).collect();
    batch(&rows)
}

fn ids_in(emulator: &DorisEmulator) -> Vec<i64> {
    let mut ids: Vec<i64> = emulator.rows("shop", "orders").iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn recovery_commits_stored_checkpoints_and_aborts_later_ones() {
    // A DUPLICATE KEY table keeps every loaded row, so a duplicate load would show.
    let emulator = emulator_with(Model::Duplicate);
    let spec = sink_spec(&emulator, false, &[("sink.label-prefix", "job-a")]);
    let mut first = open_sink(&spec, ChangelogMode::InsertOnly);
    first.write(&None, inserts(0..10)).await.unwrap();
    let p1 = first.prepare(1).await.unwrap();
    first.commit(p1).await.unwrap();
    first.write(&None, inserts(10..20)).await.unwrap();
    let p2 = first.prepare(2).await.unwrap();
    first.write(&None, inserts(20..30)).await.unwrap();
    let _p3 = first.prepare(3).await.unwrap();
    // The process dies: checkpoint 2 was stored but not committed, checkpoint 3 never stored.
    drop(first);
    assert_eq!(ids_in(&emulator), (0..10).collect::<Vec<_>>());

    let mut second = open_sink(&spec, ChangelogMode::InsertOnly);
    second.recover(vec![p2]).await.unwrap();
    assert_eq!(emulator.txn_of_label("shop", "job-a_shop_orders_2").unwrap().state, TxnState::Visible);
    assert_eq!(emulator.txn_of_label("shop", "job-a_shop_orders_3").unwrap().state, TxnState::Aborted);
    assert!(emulator.txns().iter().all(|t| t.state != TxnState::Precommitted), "no transaction left precommitted");
    assert_eq!(ids_in(&emulator), (0..20).collect::<Vec<_>>());
    // The source replays from checkpoint 2: checkpoint 3's label is reused after its abort.
    second.write(&None, inserts(20..30)).await.unwrap();
    let p3 = second.prepare(3).await.unwrap();
    second.commit(p3).await.unwrap();
    assert_eq!(ids_in(&emulator), (0..30).collect::<Vec<_>>());
    assert_eq!(emulator.txn_of_label("shop", "job-a_shop_orders_3").unwrap().state, TxnState::Visible);
}

#[tokio::test]
async fn a_finished_label_is_never_loaded_twice() {
    let emulator = emulator_with(Model::Duplicate);
    let spec = sink_spec(&emulator, false, &[]);
    let mut first = open_sink(&spec, ChangelogMode::InsertOnly);
    first.write(&None, inserts(0..5)).await.unwrap();
    let p = first.prepare(1).await.unwrap();
    first.commit(p).await.unwrap();
    let mut again = open_sink(&spec, ChangelogMode::InsertOnly);
    again.write(&None, inserts(0..5)).await.unwrap();
    let p = again.prepare(1).await.unwrap();
    assert_eq!(p.state["finished"], json!(true), "{:?}", p.state);
    again.commit(p).await.unwrap();
    assert_eq!(ids_in(&emulator), (0..5).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_lingering_precommitted_label_is_aborted_and_loaded_again() {
    let emulator = emulator_with(Model::Duplicate);
    let spec = sink_spec(&emulator, false, &[]);
    let mut first = open_sink(&spec, ChangelogMode::InsertOnly);
    first.write(&None, inserts(0..5)).await.unwrap();
    let _never_stored = first.prepare(1).await.unwrap();
    drop(first);
    let lingering = emulator.txn_of_label("shop", "cdc_sql_shop_orders_1").unwrap();
    let mut second = open_sink(&spec, ChangelogMode::InsertOnly);
    second.write(&None, inserts(0..5)).await.unwrap();
    let p = second.prepare(1).await.unwrap();
    second.commit(p).await.unwrap();
    let txns = emulator.txns();
    assert_eq!(txns.iter().find(|t| t.id == lingering.id).unwrap().state, TxnState::Aborted);
    assert_eq!(ids_in(&emulator), (0..5).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_mode_retries_with_new_labels_and_slows_down_on_too_many_versions() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let spec = sink_spec(
        &emulator,
        true,
        &[("sink.enable.batch-mode", "true"), ("sink.buffer-flush.max-rows", "3"), ("sink.label-prefix", "batch")],
    );
    let mut sink = open_sink(&spec, ChangelogMode::All);
    emulator.inject_too_many_versions(2);
    emulator.inject_publish_timeouts(1);
    sink.write(&None, inserts(0..4)).await.unwrap();
    // The first flush went through after two -235 replies; a publish timeout counts as loaded.
    assert_eq!(ids_in(&emulator), (0..4).collect::<Vec<_>>());
    sink.write(&None, batch(&[(Delete, 0, Some("x"), Some(0)), (Insert, 9, Some("nine"), None)])).await.unwrap();
    let p = sink.prepare(1).await.unwrap();
    sink.commit(p).await.unwrap();
    assert_eq!(ids_in(&emulator), vec![1, 2, 3, 9]);
    let txns = emulator.txns();
    let labels: Vec<&str> = txns.iter().map(|t| t.label.as_str()).collect();
    let mut distinct = labels.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), labels.len(), "every attempt has its own label: {labels:?}");
    assert!(labels.iter().all(|l| l.starts_with("batch_shop_orders_")), "{labels:?}");
    assert_eq!(txns.iter().filter(|t| t.state == TxnState::Aborted).count(), 2, "two loads refused with -235");
    assert!(txns.iter().all(|t| t.state != TxnState::Precommitted));
}

async fn prepare_error(spec: &TableSpec, rows: &[Row]) -> cdc_sql::Error {
    let mut sink = open_sink(spec, ChangelogMode::All);
    sink.write(&None, batch(rows)).await.unwrap();
    sink.prepare(1).await.expect_err("the load must fail")
}

#[tokio::test]
async fn wrong_password_is_a_user_error_that_never_shows_the_password() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let spec = sink_spec(&emulator, true, &[("password", "wrong-horse-battery")]);
    let err = prepare_error(&spec, &[(Insert, 1, None, None)]).await;
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::User, "{text}");
    assert!(text.contains("refused user 'loader'") && text.contains("Access denied"), "{text}");
    assert!(!text.contains("wrong-horse-battery") && !text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn unknown_table_and_column_mismatch_are_user_errors() {
    let emulator = DorisEmulator::start(
        USER,
        PASSWORD,
        vec![
            orders_table(Model::UniqueKey(vec!["id".into()])),
            TableDef {
                database: "shop".into(),
                name: "narrow".into(),
                columns: vec![col("id", ColumnType::Int, false), col("name", ColumnType::Varchar(None), true)],
                model: Model::UniqueKey(vec!["id".into()]),
                sequence: None,
            },
        ],
    );
    let spec = sink_spec(&emulator, true, &[("table.identifier", "shop.nope")]);
    let err = prepare_error(&spec, &[(Insert, 1, None, None)]).await;
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(err.to_string().contains("Doris has no table shop.nope"), "{err}");

    let spec = sink_spec(&emulator, true, &[("table.identifier", "nodb.orders")]);
    let err = prepare_error(&spec, &[(Insert, 1, None, None)]).await;
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(
        err.to_string().contains("Doris has no table nodb.orders")
            && err.to_string().contains("Unknown database 'nodb'"),
        "{err}"
    );

    let spec = sink_spec(&emulator, true, &[("table.identifier", "shop.narrow")]);
    let err = prepare_error(&spec, &[(Insert, 1, None, None)]).await;
    assert_eq!(err.kind(), ErrorKind::User);
    let text = err.to_string();
    assert!(
        text.contains("columns (id, name, amount) do not match") && text.contains("Unknown column 'amount'"),
        "{text}"
    );
}

#[tokio::test]
async fn deletes_into_a_duplicate_key_table_say_what_to_change() {
    let emulator = emulator_with(Model::Duplicate);
    let err = prepare_error(&sink_spec(&emulator, true, &[]), &[(Delete, 1, None, None)]).await;
    assert!(err.to_string().contains("'sink.enable-delete' = 'false'"), "{err}");
    // With deletes disabled the same stream loads (its deletes are dropped).
    let mut sink = open_sink(&sink_spec(&emulator, true, &[("sink.enable-delete", "false")]), ChangelogMode::All);
    sink.write(&None, batch(&[(Insert, 1, Some("a"), None), (Delete, 2, Some("b"), None)])).await.unwrap();
    let p = sink.prepare(1).await.unwrap();
    sink.commit(p).await.unwrap();
    assert_eq!(ids_in(&emulator), vec![1]);
}

#[tokio::test]
async fn rejected_rows_are_quoted_from_the_error_log() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let spec = sink_spec(&emulator, true, &[]);
    let err = prepare_error(
        &spec,
        &[(Insert, 1, Some("fine"), None), (Insert, 2, Some("a name far longer than twenty"), None)],
    )
    .await;
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::User, "{text}");
    assert!(text.contains("DATA_QUALITY_ERROR") && text.contains("1 rows filtered"), "{text}");
    assert!(
        text.contains(
            r#"src line [{"id":2,"name":"a name far longer than twenty","amount":null,"__DORIS_DELETE_SIGN__":0}]"#
        ),
        "{text}"
    );
    assert!(emulator.rows("shop", "orders").is_empty(), "a failed load applies nothing");
}

#[tokio::test]
async fn a_dead_be_is_an_external_error_and_other_bes_take_over() {
    let mut emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let be = emulator.be_address();
    // A node that refuses connections first: the load goes to the next one.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let spec = sink_spec(&emulator, true, &[("auto-redirect", "false"), ("benodes", &format!("{closed},{be}"))]);
    let mut sink = open_sink(&spec, ChangelogMode::All);
    sink.write(&None, batch(&[(Insert, 1, Some("a"), None)])).await.unwrap();
    let p = sink.prepare(1).await.unwrap();
    sink.commit(p).await.unwrap();
    assert_eq!(ids_in(&emulator), vec![1]);
    assert!(emulator.requests().iter().all(|r| !r.starts_with("FE")), "benodes bypass the FE");

    emulator.kill_be();
    let spec = sink_spec(&emulator, true, &[("sink.max-retries", "1")]);
    let err = prepare_error(&spec, &[(Insert, 2, None, None)]).await;
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::External, "{text}");
    assert!(text.contains("cannot connect") && text.contains(&be) && text.contains("after 1 retries"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn options_are_validated_before_connecting() {
    let emulator = emulator_with(Model::Duplicate);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("sink.label-prefix", "bad prefix")], "'sink.label-prefix' = 'bad prefix'"),
        (&[("sink.enable.batch-mode", "true"), ("sink.enable-2pc", "true")], "cannot use two-phase commit"),
        (&[("sink.buffer-flush.max-rows", "10")], "apply to batch mode only"),
        (&[("doris.enable.tls", "true")], "not supported yet"),
        (&[("sink.properties.format", "parquet")], "expected 'json' or 'csv'"),
        (&[("sink.properties.format", "json"), ("sink.properties.column_separator", ",")], "applies to CSV loads"),
        (&[("sink.properties.format", "csv"), ("sink.properties.read_json_by_line", "true")], "applies to JSON loads"),
        (
            &[("sink.properties.enclose", "\"\"")],
            "'sink.properties.enclose' = '\"\"' of table `orders_sink` is not valid",
        ),
        (&[("sink.properties.column_separator", "\\x0")], "hex bytes from \\x01 to \\x7f"),
        (&[("sink.properties.format", "csv"), ("sink.properties.trim_double_quotes", "true")], "strip quotes"),
        (&[("sink.properties.compress_type", "gz")], "uncompressed"),
        (&[("sink.properties.two_phase_commit", "false")], "use 'sink.enable-2pc'"),
        (&[("auto-redirect", "false")], "needs 'benodes'"),
        (&[("benodes", "be:8040")], "'benodes' is only used with 'auto-redirect' = 'false'"),
        (&[("table.identifier", "orders")], "'database.table'"),
        (&[("sink.enable-2pcc", "true")], "did you mean 'sink.enable-2pc'?"),
        (&[("fenodes", "fe:port")], "invalid port"),
    ];
    for (options, expected) in cases {
        let err = match open_table(&sink_spec(&emulator, true, options)) {
            Ok(_) => panic!("{options:?} must be refused"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::User);
        assert!(err.to_string().contains(expected), "{options:?}: {err}");
        assert!(!err.to_string().contains(PASSWORD), "{err}");
    }
    // Stream Load properties pass through as headers.
    assert!(open_table(&sink_spec(&emulator, true, &[("sink.properties.max_filter_ratio", "0.1")])).is_ok());
}

#[tokio::test]
async fn stream_load_properties_become_headers() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let spec = sink_spec(&emulator, true, &[("sink.properties.max_filter_ratio", "0.5"), ("sink.enable-2pc", "false")]);
    let mut sink = open_sink(&spec, ChangelogMode::All);
    sink.write(
        &None,
        batch(&[(Insert, 1, Some("ok"), None), (Insert, 2, Some("a name far longer than twenty"), None)]),
    )
    .await
    .unwrap();
    let p = sink.prepare(1).await.unwrap();
    sink.commit(p).await.unwrap();
    assert_eq!(ids_in(&emulator), vec![1], "the bad row is filtered, within the allowed ratio");
}

// ---- the sequence column ('sink.version-column') -------------------------------------------

/// One change of a key (an update is its `-U`/`+U` pair): versions 1, 2, 3 carry payloads a, b, c.
#[derive(Clone, Copy, Debug)]
enum Event {
    Insert(i64),
    Update(i64, i64),
    Delete(i64),
}

/// Each key's changes in delivery order: in order, and with older changes after newer ones.
const SEQUENCE_SCENARIOS: &[&[Event]] = {
    use Event::*;
    &[
        &[Insert(1)],
        &[Insert(1), Update(1, 2)],
        &[Insert(1), Delete(1)],
        &[Insert(1), Update(1, 2), Delete(2)],
        &[Update(1, 2), Insert(1)],
        &[Insert(1), Update(1, 3), Update(1, 2)],
        &[Delete(1), Insert(1)],
        &[Insert(1), Delete(2), Update(1, 2)],
        &[Insert(3), Delete(3), Insert(1)],
        &[Insert(1), Delete(1), Insert(2)],
        &[Insert(1), Delete(3), Update(1, 2)],
    ]
};

fn payload(version: i64) -> String {
    ((b'a' + (version - 1) as u8) as char).to_string()
}

/// What Doris keeps of each key, from the events alone: the change with the greatest sequence,
/// the later one between equal sequences (a delete and an upsert alike).
fn newest_by_sequence() -> BTreeMap<i64, Map<String, Value>> {
    let mut table = BTreeMap::new();
    for (key, events) in SEQUENCE_SCENARIOS.iter().enumerate() {
        let key = key as i64 + 1;
        let mut winner: Option<(i64, bool)> = None;
        for event in *events {
            let candidate = match *event {
                Event::Insert(v) | Event::Update(_, v) => (v, false),
                Event::Delete(v) => (v, true),
            };
            if winner.is_none_or(|(v, _)| candidate.0 >= v) {
                winner = Some(candidate);
            }
        }
        if let Some((v, false)) = winner {
            table.insert(key, json!({"id": key, "v": v, "payload": payload(v)}).as_object().unwrap().clone());
        }
    }
    table
}

/// The rows of `events` (key, event) in one batch.
fn sequence_batch(events: &[(i64, Event)]) -> ChangeBatch {
    let rows: Vec<(RowKind, i64, i64)> = events
        .iter()
        .flat_map(|(key, event)| match *event {
            Event::Insert(v) => vec![(Insert, *key, v)],
            Event::Update(old, new) => vec![(UpdateBefore, *key, old), (UpdateAfter, *key, new)],
            Event::Delete(v) => vec![(Delete, *key, v)],
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let rb = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| payload(r.2)))),
        ],
    )
    .unwrap();
    ChangeBatch::from_kinds(rb, &rows.iter().map(|r| r.0).collect::<Vec<_>>()).unwrap()
}

fn sequence_table(sequence: Option<Sequence>) -> TableDef {
    TableDef {
        database: "shop".into(),
        name: "versions".into(),
        columns: vec![
            col("id", ColumnType::BigInt, false),
            col("v", ColumnType::BigInt, true),
            col("payload", ColumnType::Varchar(None), true),
        ],
        model: Model::UniqueKey(vec!["id".into()]),
        sequence,
    }
}

fn sequence_spec(emulator: &DorisEmulator, option: (&str, &str)) -> TableSpec {
    let options = [
        ("connector", "doris".to_string()),
        ("fenodes", emulator.fe_address()),
        ("table.identifier", "shop.versions".into()),
        ("username", USER.into()),
        ("password", PASSWORD.into()),
        // At-least-once: every load has a label of its own, so a replay loads again.
        ("sink.enable-2pc", "false".into()),
        (option.0, option.1.into()),
    ];
    TableSpec {
        name: "versions_sink".into(),
        columns: vec![
            column("id", DataType::Int64, false, "BIGINT"),
            column("v", DataType::Int64, true, "BIGINT"),
            column("payload", DataType::Utf8, true, "STRING"),
        ],
        primary_key: vec!["id".into()],
        options: options
            .into_iter()
            .map(|(key, value)| TableOption { key: key.into(), written: value.clone(), value })
            .collect(),
        comment: None,
        computed: Vec::new(),
    }
}

/// Every scenario's events, interleaved across keys: each event its own batch and load, or all
/// in one batch (compacted by the sink) and one load.
async fn deliver_sequenced(spec: &TableSpec, one_load: bool) {
    let mut sink = open_sink(spec, ChangelogMode::All);
    sink.open().await.unwrap();
    sink.recover(vec![]).await.unwrap();
    let mut events = Vec::new();
    for i in 0..SEQUENCE_SCENARIOS.iter().map(|e| e.len()).max().unwrap() {
        for (key, scenario) in SEQUENCE_SCENARIOS.iter().enumerate() {
            events.extend(scenario.get(i).map(|event| (key as i64 + 1, *event)));
        }
    }
    let mut checkpoint = 0;
    if one_load {
        sink.write(&None, sequence_batch(&events)).await.unwrap();
    } else {
        for event in events {
            sink.write(&None, sequence_batch(&[event])).await.unwrap();
            checkpoint += 1;
            let prepared = sink.prepare(checkpoint).await.unwrap();
            sink.commit(prepared).await.unwrap();
        }
    }
    let prepared = sink.prepare(checkpoint + 1).await.unwrap();
    sink.commit(prepared).await.unwrap();
    sink.close().await.unwrap();
}

/// The sequence column orders every key's rows, in any delivery order and on a replay: with
/// the table's own mapped column named by 'sink.version-column', and with a hidden one filled
/// from the `function_column.sequence_col` header the option sends or a Flink job sets.
#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_column_keeps_the_newest_row_of_every_key_in_any_order_and_on_replay() {
    let setups = [
        (Sequence::Column("v".into()), ("sink.version-column", "v")),
        (Sequence::Hidden, ("sink.version-column", "v")),
        (Sequence::Hidden, ("sink.properties.function_column.sequence_col", "v")),
    ];
    for (sequence, option) in setups {
        for one_load in [false, true] {
            let what = format!("{sequence:?}, {option:?}, one load: {one_load}");
            let emulator = DorisEmulator::start(USER, PASSWORD, vec![sequence_table(Some(sequence.clone()))]);
            let spec = sequence_spec(&emulator, option);
            deliver_sequenced(&spec, one_load).await;
            let rows = |emulator: &DorisEmulator| -> BTreeMap<i64, Map<String, Value>> {
                emulator.rows("shop", "versions").into_iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect()
            };
            assert_eq!(rows(&emulator), newest_by_sequence(), "{what}");
            deliver_sequenced(&spec, !one_load).await;
            assert_eq!(rows(&emulator), newest_by_sequence(), "{what}, replayed");
        }
    }
}

#[tokio::test]
async fn a_sequence_column_must_exist_in_doris_and_rows_need_a_version() {
    let emulator = DorisEmulator::start(USER, PASSWORD, vec![sequence_table(None)]);
    for (option, expected) in [
        (("sink.version-column", "id"), "a column that is not part of the PRIMARY KEY"),
        (("sink.version-column", "payload"), "a column of an integer, DATE or TIMESTAMP type"),
        (("sink.properties.function_column.sequence_col", "nope"), "one of the table's written columns"),
    ] {
        let err = open_table(&sequence_spec(&emulator, option)).err().expect("refused").to_string();
        assert!(err.contains(option.0) && err.contains(expected), "{option:?}: {err}");
    }
    let spec = sequence_spec(&emulator, ("sink.version-column", "v"));
    let mut sink = open_sink(&spec, ChangelogMode::All);
    sink.write(&None, sequence_batch(&[(1, Event::Insert(1))])).await.unwrap();
    let err = sink.prepare(1).await.unwrap_err().to_string();
    assert!(err.contains("There is no sequence column in the table versions"), "{err}");

    let emulator = DorisEmulator::start(USER, PASSWORD, vec![sequence_table(Some(Sequence::Hidden))]);
    let mut sink = open_sink(&sequence_spec(&emulator, ("sink.version-column", "v")), ChangelogMode::All);
    let mut no_version = sequence_batch(&[(7, Event::Insert(1))]);
    let rows = no_version.rows().clone();
    let columns =
        vec![rows.column(0).clone(), Arc::new(Int64Array::from(vec![None::<i64>])) as _, rows.column(2).clone()];
    no_version = ChangeBatch::from_kinds(RecordBatch::try_new(rows.schema(), columns).unwrap(), &[Insert]).unwrap();
    let err = sink.write(&None, no_version).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(err.to_string().contains("key id = 7") && err.to_string().contains("`v`"), "{err}");
}

// ---- through the binary -------------------------------------------------------------------

fn job_file(dir: &tempfile::TempDir, sql: &str) -> std::path::PathBuf {
    let path = dir.path().join("job.sql");
    std::fs::File::create(&path).unwrap().write_all(sql.as_bytes()).unwrap();
    path
}

const SOURCE_DDL: &str = "CREATE TABLE src (
    id INT, name STRING, amount DECIMAL(10, 2),
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'seed' = '42', 'number-of-rows' = 'ROWS',
    'rows-per-second' = 'RATE', 'changelog.key-space' = '300', 'fields.name.length' = '12',
    'fields.name.null-rate' = '0.2'
)";

/// The final state of the datagen changelog, by key: what the Doris table must hold.
async fn expected_state(rows: u64) -> BTreeMap<i64, Map<String, Value>> {
    expected_state_with(rows, "").await
}

/// As [`expected_state`], with `suffix` appended to every name that is not NULL.
async fn expected_state_with(rows: u64, suffix: &str) -> BTreeMap<i64, Map<String, Value>> {
    let ddl = format!("{};", SOURCE_DDL.replace("ROWS", &rows.to_string()).replace("RATE", "1000000"));
    let statements = cdc_sql::sql::parse_script("expected", &ddl, &|_| None).unwrap();
    let spec = match &statements[0].statement {
        cdc_sql::sql::Statement::CreateTable { spec, .. } => spec.clone(),
        other => panic!("not a CREATE TABLE: {other:?}"),
    };
    let mut source = open_table(&spec).unwrap().source(&SourceContext { batch_size: 1000 }).unwrap().unwrap();
    source.start(None).await.unwrap();
    let mut state = BTreeMap::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        let b = &batch.changes().unwrap();
        let ids = b.rows().column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let names = b.rows().column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let amounts = b.rows().column(2).as_any().downcast_ref::<Decimal128Array>().unwrap();
        for i in 0..b.num_rows() {
            let id = ids.value(i) as i64;
            match b.kind(i) {
                Insert | UpdateAfter => {
                    let name =
                        if names.is_null(i) { Value::Null } else { json!(format!("{}{suffix}", names.value(i))) };
                    let amount = if amounts.is_null(i) { Value::Null } else { json!(amounts.value_as_string(i)) };
                    state.insert(id, json!({"id": id, "name": name, "amount": amount}).as_object().unwrap().clone());
                }
                UpdateBefore | Delete => {
                    state.remove(&id);
                }
            }
        }
    }
    state
}

fn run_job(emulator: &DorisEmulator, rows: u64, extra_options: &str) -> std::process::Output {
    run_job_with(emulator, rows, extra_options, "")
}

/// Runs the datagen → doris job, appending `suffix` (an SQL string literal's text) to the names.
fn run_job_with(emulator: &DorisEmulator, rows: u64, extra_options: &str, suffix: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';\n{};\n\
         CREATE TABLE orders_sink (id INT, name STRING, amount DECIMAL(10, 2), PRIMARY KEY (id) NOT ENFORCED)\n\
         WITH ('connector' = 'doris', 'fenodes' = '{}', 'table.identifier' = 'shop.orders',\n\
               'username' = '{USER}', 'password' = '${{DORIS_PASSWORD}}'{extra_options});\n\
         INSERT INTO orders_sink SELECT id, name || '{suffix}', amount FROM src;\n",
        SOURCE_DDL.replace("ROWS", &rows.to_string()).replace("RATE", "5000"),
        emulator.fe_address()
    );
    let path = job_file(&dir, &sql);
    Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(&path)
        .env("DORIS_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn emulator_for_jobs() -> DorisEmulator {
    DorisEmulator::start(
        USER,
        PASSWORD,
        vec![TableDef {
            database: "shop".into(),
            name: "orders".into(),
            columns: vec![
                col("id", ColumnType::Int, false),
                col("name", ColumnType::Varchar(Some(64)), true),
                col("amount", ColumnType::Decimal(10, 2), true),
            ],
            model: Model::UniqueKey(vec!["id".into()]),
            sequence: None,
        }],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn job_with_upserts_and_deletes_ends_equal_to_the_source() {
    for extra in ["", ", 'sink.enable.batch-mode' = 'true', 'sink.buffer-flush.max-rows' = '500'"] {
        let emulator = emulator_for_jobs();
        let output = run_job(&emulator, 6000, extra);
        assert!(output.status.success(), "{extra}: {}", String::from_utf8_lossy(&output.stderr));
        let expected = expected_state(6000).await;
        assert!(expected.len() > 50, "the changelog leaves rows behind");
        let actual: BTreeMap<i64, Map<String, Value>> =
            emulator.rows("shop", "orders").into_iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect();
        assert_eq!(actual, expected, "options: {extra}");
        let txns = emulator.txns();
        let visible = txns.iter().filter(|t| t.state == TxnState::Visible).count();
        assert!(visible > 1, "{extra}: several loads, got {visible}");
        assert!(txns.iter().all(|t| t.state != TxnState::Precommitted), "{extra}: nothing left precommitted");
    }
}

/// Tab, comma, double quote, backslash, newline and pipe: what CSV separators are made of.
const AWKWARD: &str = "\t,\"\\\n|";

#[tokio::test(flavor = "multi_thread")]
async fn csv_job_with_upserts_deletes_nulls_and_separators_in_values_ends_equal_to_the_source() {
    let cases = [
        // Separators, quotes and newlines inside values, protected by enclose and escape.
        r#", 'sink.properties.format' = 'csv', 'sink.properties.column_separator' = ',',
             'sink.properties.enclose' = '"', 'sink.properties.escape' = '\'"#,
        // Invisible separators that never occur in the data; the format follows from them, as
        // in the Flink connector (whose default format is CSV).
        r#", 'sink.properties.column_separator' = '\x01', 'sink.properties.line_delimiter' = '\x02',
             'sink.enable.batch-mode' = 'true', 'sink.buffer-flush.max-rows' = '500'"#,
    ];
    for extra in cases {
        let emulator = emulator_for_jobs();
        let output = run_job_with(&emulator, 6000, extra, AWKWARD);
        assert!(output.status.success(), "{extra}: {}", String::from_utf8_lossy(&output.stderr));
        let expected = expected_state_with(6000, AWKWARD).await;
        assert!(expected.values().any(|r| r["name"].is_null()), "the changelog leaves NULL names behind");
        let actual: BTreeMap<i64, Map<String, Value>> =
            emulator.rows("shop", "orders").into_iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect();
        assert_eq!(actual, expected, "options: {extra}");
        assert!(emulator.requests().iter().any(|r| r.contains("format=csv")), "{extra}: loads were CSV");
    }
}

#[test]
fn csv_job_without_enclose_fails_naming_the_value_and_the_fix() {
    let emulator = emulator_for_jobs();
    let output = run_job_with(&emulator, 100, ", 'sink.properties.format' = 'csv'", AWKWARD);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("doris sink `orders_sink` (shop.orders)"), "{stderr}");
    assert!(stderr.contains("of column `name` contains the column separator '\\t'"), "{stderr}");
    assert!(stderr.contains("the row with id = ") && stderr.contains("'sink.properties.enclose'"), "{stderr}");
    assert!(emulator.rows("shop", "orders").is_empty(), "nothing half-written is visible");
}

#[test]
fn job_with_a_wrong_password_fails_with_a_clear_message() {
    let emulator = emulator_for_jobs();
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE src (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\
         CREATE TABLE sink (id INT) WITH ('connector' = 'doris', 'fenodes' = '{}', 'table.identifier' = 'shop.orders', 'username' = '{USER}', 'password' = 'not-the-password', 'sink.enable.batch-mode' = 'true');\n\
         INSERT INTO sink SELECT * FROM src;\n",
        emulator.fe_address()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_cdc-sql")).arg("-f").arg(job_file(&dir, &sql)).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Doris refused user 'loader'"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

#[test]
fn only_batch_mode_writes_without_checkpoints() {
    let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
    let needs =
        |options: &[(&str, &str)]| open_table(&sink_spec(&emulator, true, options)).unwrap().sink_needs_checkpoints();
    let two_phase = needs(&[]).expect("2PC loads at checkpoints only");
    assert!(
        two_phase.contains("'sink.enable-2pc', on by default")
            && two_phase.contains("'sink.enable.batch-mode' = 'true'"),
        "{two_phase}"
    );
    let plain = needs(&[("sink.enable-2pc", "false")]).expect("plain loads at checkpoints only");
    assert!(plain.contains("With 'sink.enable-2pc' = 'false' and without batch mode"), "{plain}");
    assert_eq!(needs(&[("sink.enable.batch-mode", "true")]), None);
    assert_eq!(needs(&[("sink.enable.batch-mode", "true"), ("sink.enable-2pc", "false")]), None);
}

#[test]
fn batch_mode_job_without_checkpoints_loads_every_row() {
    let emulator = emulator_for_jobs();
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE src (id INT, name STRING, amount DECIMAL(10, 2)) WITH ('connector' = 'datagen', 'fields.name.length' = '12', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '250');\n\
         CREATE TABLE sink (id INT, name STRING, amount DECIMAL(10, 2), PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'doris', 'fenodes' = '{}', 'table.identifier' = 'shop.orders', 'username' = '{USER}', 'password' = '{PASSWORD}', 'sink.enable.batch-mode' = 'true', 'sink.buffer-flush.max-rows' = '100');\n\
         INSERT INTO sink SELECT * FROM src;\n",
        emulator.fe_address()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_cdc-sql")).arg("-f").arg(job_file(&dir, &sql)).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(ids_in(&emulator), (1..=250).collect::<Vec<i64>>());
}

/// Runs a 2PC job against an emulator that holds commits, and SIGKILLs it (no chance to clean
/// up) as soon as a load waits for its commit; the emulator then lets commits through again.
async fn job_killed_while_a_commit_waits() -> DorisEmulator {
    let emulator = emulator_for_jobs();
    emulator.hold_commits(true);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '200ms';\n{};\n\
         CREATE TABLE orders_sink (id INT, name STRING, amount DECIMAL(10, 2), PRIMARY KEY (id) NOT ENFORCED)\n\
         WITH ('connector' = 'doris', 'fenodes' = '{}', 'table.identifier' = 'shop.orders', 'username' = '{USER}', 'password' = '{PASSWORD}');\n\
         INSERT INTO orders_sink SELECT * FROM src;\n",
        SOURCE_DDL.replace("'number-of-rows' = 'ROWS',", "").replace("RATE", "200"),
        emulator.fe_address()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-sql"))
        .arg("-f")
        .arg(job_file(&dir, &sql))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while emulator.commits_waiting() == 0 {
        assert!(Instant::now() < deadline, "the job never reached a commit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    emulator.hold_commits(false);
    emulator
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_its_first_checkpoint_was_stored_leaves_nothing_visible() {
    let emulator = job_killed_while_a_commit_waits().await;
    let precommitted: Vec<_> = emulator.txns().into_iter().filter(|t| t.state == TxnState::Precommitted).collect();
    assert_eq!(precommitted.len(), 1, "one load precommitted, its commit cut short");
    assert!(emulator.rows("shop", "orders").is_empty());

    // No checkpoint was ever stored, so a restarted job hands its sink nothing to recover, and
    // its checkpoint ids (taken from the clock) cannot meet this label: the load stays
    // precommitted, invisible, until Doris aborts it after its precommit timeout.
    let spec = sink_spec(&emulator, true, &[]);
    let mut sink = open_sink(&spec, ChangelogMode::All);
    sink.recover(Vec::<PreparedCommit>::new()).await.unwrap();
    let txns = emulator.txns();
    assert_eq!(txns.iter().find(|t| t.id == precommitted[0].id).unwrap().state, TxnState::Precommitted);
    assert!(emulator.rows("shop", "orders").is_empty(), "nothing of the killed run is visible");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_checkpoint_was_stored_commits_on_recovery() {
    let emulator = job_killed_while_a_commit_waits().await;
    let txn = emulator.txns().into_iter().find(|t| t.state == TxnState::Precommitted).expect("a precommitted load");
    // What the checkpoint record holds for this sink (persisted checkpoints come from the runtime).
    let checkpoint_id: u64 = txn.label.rsplit('_').next().unwrap().parse().unwrap();
    let stored = PreparedCommit { checkpoint_id, state: json!({"label": txn.label, "txn_id": txn.id}) };
    let mut sink = open_sink(&sink_spec(&emulator, true, &[]), ChangelogMode::All);
    sink.recover(vec![stored.clone()]).await.unwrap();
    assert_eq!(emulator.txn_of_label("shop", &txn.label).unwrap().state, TxnState::Visible);
    let visible = emulator.rows("shop", "orders");
    assert!(!visible.is_empty());
    // Recovering twice (a crash during recovery) changes nothing.
    let mut again = open_sink(&sink_spec(&emulator, true, &[]), ChangelogMode::All);
    again.recover(vec![stored]).await.unwrap();
    assert_eq!(emulator.rows("shop", "orders"), visible);
    assert!(emulator.txns().iter().all(|t| t.state != TxnState::Precommitted));
}

#[tokio::test]
async fn update_before_rows_follow_sink_ignore_update_before_without_a_primary_key() {
    // Without a declared key the sink cannot pair -U with +U: the option decides.
    let changes = [(Insert, 1, Some("a"), None), (UpdateBefore, 1, Some("a"), None), (UpdateAfter, 2, Some("a"), None)];
    for (ignore, expected) in [("true", vec![1, 2]), ("false", vec![2])] {
        let emulator = emulator_with(Model::UniqueKey(vec!["id".into()]));
        let spec = sink_spec(&emulator, false, &[("sink.ignore.update-before", ignore)]);
        let mut sink = open_sink(&spec, ChangelogMode::All);
        sink.write(&None, batch(&changes)).await.unwrap();
        let p = sink.prepare(1).await.unwrap();
        sink.commit(p).await.unwrap();
        assert_eq!(ids_in(&emulator), expected, "sink.ignore.update-before = {ignore}");
    }
}
