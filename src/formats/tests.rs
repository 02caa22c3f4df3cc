//! Unit tests of the formats: options, every type both ways, Debezium's encodings, Canal's
//! updates, errors and roll-back.

use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;

use super::*;
use crate::changelog::{format_rows, ChangeBatch, RowKind};
use crate::sql::{parse_script, Statement, TableSpec};

// ---------------------------------------------------------------------------------------------
// Helpers shared with the fixture tests.

/// The table of a `CREATE TABLE` statement.
pub(super) fn table(sql: &str) -> TableSpec {
    let statements = parse_script("test.sql", sql, &|_| None).unwrap_or_else(|e| panic!("{sql}: {e}"));
    match statements.into_iter().next().map(|s| s.statement) {
        Some(Statement::CreateTable { spec, .. }) => spec,
        _ => panic!("not a CREATE TABLE: {sql}"),
    }
}

/// A table's value format, its physical columns and its metadata keys (without `value.`); every
/// option must be consumed.
pub(super) fn value_format(spec: &TableSpec) -> Result<(Format, SchemaRef, Vec<String>)> {
    let mut options = ConnectorOptions::new(spec)?;
    let format = match spec.option("value.format") {
        Some(_) => Format::from_options(&mut options, "value.format", "value.")?,
        None => Format::from_options(&mut options, "format", "")?,
    }
    .expect("the table declares a format");
    options.finish()?;
    let physical = Arc::new(Schema::new(
        spec.columns
            .iter()
            .filter(|c| c.metadata.is_none())
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<_>>(),
    ));
    let metadata = spec
        .columns
        .iter()
        .filter_map(|c| c.metadata.as_ref())
        .map(|m| m.key.strip_prefix("value.").unwrap_or(&m.key).to_string())
        .collect();
    Ok((format, physical, metadata))
}

/// Decodes `messages` and shows the rows as the print sink does; errors as `ERROR: …` lines.
pub(super) fn decode_to_text(sql: &str, messages: &[Option<&[u8]>]) -> String {
    let spec = table(sql);
    let (format, physical, metadata) = value_format(&spec).unwrap();
    let mut decoder = format.decoder(physical.clone(), &metadata).unwrap();
    let mut kinds = Vec::new();
    let mut errors = String::new();
    for m in messages {
        if let Err(e) = decoder.decode(*m, &mut kinds) {
            errors.push_str(&format!("ERROR: {e}\n"));
        }
    }
    let columns = decoder.finish().unwrap();
    let mut fields: Vec<Field> = physical.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    for key in &metadata {
        let (_, dt) = format.metadata().iter().find(|(k, _)| k == key).unwrap();
        fields.push(Field::new(key, dt(), true));
    }
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(kinds.len())),
    )
    .unwrap();
    let rows = format_rows(&ChangeBatch::from_kinds(batch, &kinds).unwrap(), "").unwrap();
    rows + &errors
}

fn decode_one(sql: &str, message: &str) -> String {
    decode_to_text(sql, &[Some(message.as_bytes())])
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

fn decoder(kind: FormatKind, fields: Vec<Field>) -> Box<dyn Decoder> {
    Format::new(kind).decoder(schema(fields), &[]).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Options.

fn options(opts: &[(&str, &str)]) -> ConnectorOptions {
    let mut all = vec![("connector", "kafka")];
    all.extend_from_slice(opts);
    let spec = TableSpec {
        name: "t".into(),
        columns: vec![],
        primary_key: vec![],
        options: all
            .iter()
            .map(|(k, v)| crate::sql::TableOption { key: k.to_string(), value: v.to_string(), written: v.to_string() })
            .collect(),
        comment: None,
        computed: Vec::new(),
    };
    ConnectorOptions::new(&spec).unwrap()
}

#[test]
fn value_format_options_carry_the_value_prefix_and_are_all_consumed() {
    let mut o = options(&[
        ("value.format", "debezium-json"),
        ("value.debezium-json.schema-include", "true"),
        ("value.debezium-json.ignore-parse-errors", "true"),
        ("value.debezium-json.timestamp-format.standard", "ISO-8601"),
        ("value.debezium-json.map-null-key.mode", "literal"),
        ("value.debezium-json.map-null-key.literal", "N/A"),
        ("value.debezium-json.encode.decimal-as-plain-number", "true"),
        ("value.debezium-json.encode.ignore-null-fields", "true"),
    ]);
    let f = Format::from_options(&mut o, "value.format", "value.").unwrap().unwrap();
    o.finish().unwrap();
    assert_eq!(f.kind(), FormatKind::DebeziumJson);
    assert_eq!(f.name(), "debezium-json");
    assert!(f.ignore_parse_errors() && f.json.schema_include && f.json.decimal_as_plain_number);
    assert_eq!(f.json.timestamp_standard, TimestampStandard::Iso8601);
    assert_eq!(f.json.map_null_key_mode, MapNullKeyMode::Literal);
    assert_eq!(f.json.map_null_key_literal, "N/A");
    assert_eq!(f.changelog_mode(), ChangelogMode::All);
    assert_eq!(f.option_key("schema-include"), "value.debezium-json.schema-include");
}

#[test]
fn an_absent_format_key_is_none_and_consumes_nothing() {
    let mut o = options(&[("json.ignore-parse-errors", "true")]);
    assert!(Format::from_options(&mut o, "format", "").unwrap().is_none());
    let err = o.finish().unwrap_err().to_string();
    assert!(err.contains("unsupported option 'json.ignore-parse-errors'"), "{err}");
}

#[test]
fn a_misspelt_format_option_is_refused_with_the_nearest_key() {
    let mut o = options(&[("format", "json"), ("json.fail-on-missing-feild", "true")]);
    Format::from_options(&mut o, "format", "").unwrap();
    let err = o.finish().unwrap_err().to_string();
    assert!(
        err.contains("'json.fail-on-missing-feild'") && err.contains("did you mean 'json.fail-on-missing-field'"),
        "{err}"
    );
}

#[test]
fn options_of_another_prefix_are_not_taken() {
    // 'format' options are `json.…`; a `value.json.…` key belongs to 'value.format'.
    let mut o = options(&[("format", "json"), ("value.json.ignore-parse-errors", "true")]);
    let f = Format::from_options(&mut o, "format", "").unwrap().unwrap();
    assert!(!f.ignore_parse_errors());
    assert!(o.finish().is_err());
}

#[test]
fn unknown_formats_name_the_nearest_and_flink_only_ones_say_so() {
    let mut o = options(&[("format", "debezium-jsn")]);
    let err = Format::from_options(&mut o, "format", "").unwrap_err().to_string();
    assert!(err.contains("'debezium-jsn'") && err.contains("did you mean 'debezium-json'"), "{err}");
    assert!(err.contains("json, debezium-json, canal-json, raw"), "{err}");
    let mut o = options(&[("value.format", "avro-confluent")]);
    let err = Format::from_options(&mut o, "value.format", "value.").unwrap_err().to_string();
    assert!(err.contains("does not implement Flink's 'avro-confluent' format"), "{err}");
}

#[test]
fn invalid_option_values_are_user_errors_quoting_them() {
    let mut o = options(&[("format", "json"), ("json.timestamp-format.standard", "RFC")]);
    let err = Format::from_options(&mut o, "format", "").unwrap_err().to_string();
    assert!(err.contains("'RFC'") && err.contains("SQL, ISO-8601, ISO-8601-WITH-OFFSET"), "{err}");
    let mut o = options(&[("format", "canal-json"), ("canal-json.timestamp-format.standard", "ISO-8601-WITH-OFFSET")]);
    assert!(Format::from_options(&mut o, "format", "").is_err(), "only json has the offset standard, as in Flink");
    let mut o = options(&[("format", "canal-json"), ("canal-json.table.include", "orders(")]);
    let err = Format::from_options(&mut o, "format", "").unwrap_err().to_string();
    assert!(err.contains("canal-json.table.include") && err.contains("regular expression"), "{err}");
    let mut o = options(&[("format", "raw"), ("raw.charset", "EBCDIC")]);
    let err = Format::from_options(&mut o, "format", "").unwrap_err().to_string();
    assert!(err.contains("UTF-8, US-ASCII or ISO-8859-1"), "{err}");
    let mut o = options(&[("format", "raw"), ("raw.endianness", "middle")]);
    assert!(Format::from_options(&mut o, "format", "").is_err());
}

#[test]
fn fail_on_missing_field_and_ignore_parse_errors_exclude_each_other() {
    let mut o =
        options(&[("format", "json"), ("json.fail-on-missing-field", "true"), ("json.ignore-parse-errors", "true")]);
    let err = Format::from_options(&mut o, "format", "").unwrap_err().to_string();
    assert!(err.contains("cannot both be true"), "{err}");
}

#[test]
fn the_json_parser_switch_is_accepted_without_effect() {
    let mut o = options(&[("format", "json"), ("json.decode.json-parser.enabled", "false")]);
    Format::from_options(&mut o, "format", "").unwrap().unwrap();
    o.finish().unwrap();
}

#[test]
fn debezium_json_refuses_to_write_schemas() {
    let mut o = options(&[("format", "debezium-json"), ("debezium-json.schema-include", "true")]);
    let f = Format::from_options(&mut o, "format", "").unwrap().unwrap();
    let err = f.encoder(schema(vec![Field::new("a", DataType::Int32, true)])).err().unwrap().to_string();
    assert!(err.contains("'debezium-json.schema-include' = 'true' is for reading"), "{err}");
}

#[test]
fn metadata_keys_are_checked_against_the_format() {
    let f = Format::new(FormatKind::Json);
    let err = f.decoder(schema(vec![]), &["table".into()]).err().unwrap().to_string();
    assert!(err.contains("has no metadata 'table'") && err.contains("offers: none"), "{err}");
    let f = Format::new(FormatKind::CanalJson);
    assert!(f.decoder(schema(vec![]), &["source.table".into()]).is_err());
    assert_eq!(f.metadata().len(), 6);
    assert_eq!(Format::new(FormatKind::DebeziumJson).metadata().len(), 7);
}

/// The option keys each format reads, as `ConnectorOptions` recorded them.
fn consumed_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for kind in FormatKind::ALL {
        let mut o = options(&[("format", kind.name())]);
        Format::from_options(&mut o, "format", "").unwrap();
        keys.extend(o.known_keys().iter().filter(|k| *k != "connector" && *k != "format").cloned());
    }
    keys
}

#[test]
fn every_option_the_code_reads_is_documented_and_every_documented_one_is_read() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/formats.md")).unwrap();
    let consumed = consumed_keys();
    for key in &consumed {
        assert!(doc.contains(&format!("| `{key}` |")), "docs/formats.md has no table row for '{key}'");
    }
    let prefixes = ["json.", "debezium-json.", "canal-json.", "raw."];
    let documented: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
        .collect();
    assert!(documented.len() >= 20, "{documented:?}");
    for key in documented {
        assert!(consumed.iter().any(|k| k == key), "docs/formats.md documents '{key}', which no format reads");
    }
}

// ---------------------------------------------------------------------------------------------
// Every type both ways.

fn utc() -> Option<Arc<str>> {
    Some("UTC".into())
}

fn struct_type() -> Fields {
    Fields::from(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)])
}

fn map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Int32, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// Three rows of every type the project maps, with edge values and NULLs (NULL struct rows have
/// NULL children so that logical equality holds).
fn every_type() -> RecordBatch {
    let dec128 = Decimal128Array::from(vec![Some(12_345_678_901_234_567_890_123_456_789i128), Some(-1), None])
        .with_precision_and_scale(38, 9)
        .unwrap();
    let dec256 = Decimal256Array::from(vec![
        Some(i256::from_string("123456789012345678901234567890123456789012345678901234567890").unwrap()),
        Some(i256::from_i128(-5)),
        None,
    ])
    .with_precision_and_scale(60, 10)
    .unwrap();
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), Some(vec![]), None]);
    let strukt = StructArray::try_new(
        struct_type(),
        vec![
            Arc::new(Int32Array::from(vec![Some(7), None, None])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("x"), None, None])),
        ],
        Some(NullBuffer::from(vec![true, true, false])),
    )
    .unwrap();
    let entries = StructArray::from(vec![
        (Arc::new(Field::new("key", DataType::Utf8, false)), Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
        (
            Arc::new(Field::new("value", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef,
        ),
    ]);
    let DataType::Map(entries_field, _) = map_type() else { unreachable!() };
    let map = MapArray::new(
        entries_field,
        OffsetBuffer::new(vec![0, 2, 2, 2].into()),
        entries,
        Some(NullBuffer::from(vec![true, true, false])),
        false,
    );
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("bool", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]))),
        ("i8", Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(i8::MAX), None]))),
        ("i16", Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(0), None]))),
        ("i32", Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None]))),
        ("i64", Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None]))),
        ("u8", Arc::new(UInt8Array::from(vec![Some(u8::MAX), Some(0), None]))),
        ("u16", Arc::new(UInt16Array::from(vec![Some(u16::MAX), Some(0), None]))),
        ("u32", Arc::new(UInt32Array::from(vec![Some(u32::MAX), Some(0), None]))),
        ("u64", Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None]))),
        ("f32", Arc::new(Float32Array::from(vec![Some(0.1), Some(-3.4e38), None]))),
        ("f64", Arc::new(Float64Array::from(vec![Some(0.1), Some(-1.7e308), None]))),
        ("dec", Arc::new(dec128)),
        ("dec256", Arc::new(dec256)),
        ("s", Arc::new(StringArray::from(vec![Some("a\"b\\c\n\u{1}é😀"), Some(""), None]))),
        ("bytes", Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff\x10"[..]), Some(&b""[..]), None]))),
        ("d", Arc::new(Date32Array::from(vec![Some(19_000), Some(-719_162), None]))),
        ("t0", Arc::new(Time32SecondArray::from(vec![Some(0), Some(86_399), None]))),
        ("t3", Arc::new(Time32MillisecondArray::from(vec![Some(45_296_789), Some(100), None]))),
        ("t6", Arc::new(Time64MicrosecondArray::from(vec![Some(45_296_000_001), Some(0), None]))),
        ("t9", Arc::new(Time64NanosecondArray::from(vec![Some(86_399_999_999_999), Some(1), None]))),
        ("ts0", Arc::new(TimestampSecondArray::from(vec![Some(1_700_000_000), Some(-1), None]))),
        ("ts3", Arc::new(TimestampMillisecondArray::from(vec![Some(1_700_000_000_123), Some(-1), None]))),
        ("ts6", Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), Some(-1), None]))),
        ("ts9", Arc::new(TimestampNanosecondArray::from(vec![Some(1_700_000_000_123_456_789), Some(-1), None]))),
        (
            "ltz3",
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_700_000_000_120), Some(0), None]).with_timezone_opt(utc()),
            ),
        ),
        ("ltz6", Arc::new(TimestampMicrosecondArray::from(vec![Some(-1), Some(1), None]).with_timezone_opt(utc()))),
        ("list", Arc::new(list)),
        ("map", Arc::new(map)),
        ("row", Arc::new(strukt)),
    ];
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true))).unwrap()
}

fn round_trip(format: &Format, batch: &RecordBatch, kinds: &[RowKind]) -> (Vec<ArrayRef>, Vec<RowKind>, Messages) {
    let mut encoder = format.encoder(batch.schema()).unwrap();
    let mut out = Messages::new();
    encoder.encode(batch, kinds, &mut out).unwrap();
    let mut decoder = format.decoder(batch.schema(), &[]).unwrap();
    let mut decoded_kinds = Vec::new();
    for (row, value) in out.iter() {
        decoder
            .decode(value, &mut decoded_kinds)
            .unwrap_or_else(|e| panic!("row {row}: {e}\n{}", String::from_utf8_lossy(value.unwrap_or_default())));
    }
    (decoder.finish().unwrap(), decoded_kinds, out)
}

fn assert_same_columns(batch: &RecordBatch, decoded: &[ArrayRef], what: &str) {
    for (i, field) in batch.schema().fields().iter().enumerate() {
        assert_eq!(decoded[i].to_data(), batch.column(i).to_data(), "{what}: column `{}`", field.name());
    }
}

#[test]
fn json_reads_back_every_type_it_writes_in_every_timestamp_standard() {
    let batch = every_type();
    let inserts = vec![RowKind::Insert; batch.num_rows()];
    for standard in [TimestampStandard::Sql, TimestampStandard::Iso8601, TimestampStandard::Iso8601WithOffset] {
        for plain in [false, true] {
            let mut format = Format::new(FormatKind::Json);
            format.json.timestamp_standard = standard;
            format.json.decimal_as_plain_number = plain;
            let (decoded, kinds, out) = round_trip(&format, &batch, &inserts);
            assert_eq!(kinds, inserts);
            assert_eq!(out.len(), 3);
            assert_same_columns(&batch, &decoded, &format!("{standard:?}, plain {plain}"));
        }
    }
}

#[test]
fn debezium_and_canal_read_back_every_type_and_kind_they_write() {
    let batch = every_type();
    let kinds = [RowKind::Insert, RowKind::Delete, RowKind::Insert];
    for kind in [FormatKind::DebeziumJson, FormatKind::CanalJson] {
        let (decoded, decoded_kinds, _) = round_trip(&Format::new(kind), &batch, &kinds);
        assert_eq!(decoded_kinds, kinds, "{kind:?}");
        assert_same_columns(&batch, &decoded, kind.name());
    }
}

#[test]
fn debezium_writes_updates_as_flink_does() {
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int32Array::from(vec![1, 1, 2, 3])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec![Some("a"), Some("b"), None, Some("c")]))),
    ])
    .unwrap();
    let kinds = [RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete, RowKind::Insert];
    let mut out = Messages::new();
    Format::new(FormatKind::DebeziumJson).encoder(batch.schema()).unwrap().encode(&batch, &kinds, &mut out).unwrap();
    let texts: Vec<String> = out.iter().map(|(_, v)| String::from_utf8(v.unwrap().to_vec()).unwrap()).collect();
    assert_eq!(
        texts,
        [
            r#"{"before":{"id":1,"name":"a"},"after":null,"op":"d"}"#,
            r#"{"before":null,"after":{"id":1,"name":"b"},"op":"c"}"#,
            r#"{"before":{"id":2,"name":null},"after":null,"op":"d"}"#,
            r#"{"before":null,"after":{"id":3,"name":"c"},"op":"c"}"#,
        ]
    );
    let mut format = Format::new(FormatKind::DebeziumJson);
    format.json.ignore_null_fields = true;
    out.clear();
    format.encoder(batch.schema()).unwrap().encode(&batch, &kinds, &mut out).unwrap();
    assert_eq!(out.get(2).1.unwrap(), br#"{"before":{"id":2},"op":"d"}"#);
    assert_eq!(out.get(3).1.unwrap(), br#"{"after":{"id":3,"name":"c"},"op":"c"}"#);
    let mut out = Messages::new();
    Format::new(FormatKind::CanalJson).encoder(batch.schema()).unwrap().encode(&batch, &kinds, &mut out).unwrap();
    assert_eq!(out.get(0).1.unwrap(), br#"{"data":[{"id":1,"name":"a"}],"type":"DELETE"}"#);
    assert_eq!(out.get(1).1.unwrap(), br#"{"data":[{"id":1,"name":"b"}],"type":"INSERT"}"#);
    assert_eq!(out.get(3).0, 3);
}

#[test]
fn json_writes_values_in_flinks_shapes() {
    let batch = every_type();
    let mut out = Messages::new();
    Format::new(FormatKind::Json)
        .encoder(batch.schema())
        .unwrap()
        .encode(&batch.slice(0, 1), &[RowKind::Insert], &mut out)
        .unwrap();
    let text = String::from_utf8(out.get(0).1.unwrap().to_vec()).unwrap();
    for part in [
        r#""dec":12345678901234567890.123456789"#,
        r#""bytes":"AP8Q""#,
        r#""d":"2022-01-08""#,
        r#""t0":"00:00:00""#,
        r#""t3":"12:34:56.789""#,
        r#""t6":"12:34:56.000001""#,
        r#""ts0":"2023-11-14 22:13:20""#,
        r#""ts3":"2023-11-14 22:13:20.123""#,
        r#""ltz3":"2023-11-14 22:13:20.12Z""#,
        r#""list":[1,null]"#,
        r#""map":{"a":1,"b":null}"#,
        r#""row":{"a":7,"b":"x"}"#,
        r#""u64":18446744073709551615"#,
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["s"], "a\"b\\c\n\u{1}é😀");
    // Java's BigDecimal.toString, or plain with encode.decimal-as-plain-number.
    let small = RecordBatch::try_from_iter(vec![(
        "d",
        Arc::new(Decimal128Array::from(vec![27, 0]).with_precision_and_scale(10, 9).unwrap()) as ArrayRef,
    )])
    .unwrap();
    let mut format = Format::new(FormatKind::Json);
    let mut out = Messages::new();
    format.encoder(small.schema()).unwrap().encode(&small, &[RowKind::Insert; 2], &mut out).unwrap();
    assert_eq!(out.get(0).1.unwrap(), br#"{"d":2.7E-8}"#);
    assert_eq!(out.get(1).1.unwrap(), br#"{"d":0E-9}"#);
    format.json.decimal_as_plain_number = true;
    out.clear();
    format.encoder(small.schema()).unwrap().encode(&small, &[RowKind::Insert; 2], &mut out).unwrap();
    assert_eq!(out.get(0).1.unwrap(), br#"{"d":0.000000027}"#);
}

#[test]
fn json_ignore_null_fields_leaves_nulls_out_at_every_level() {
    let batch = every_type();
    let mut format = Format::new(FormatKind::Json);
    format.json.ignore_null_fields = true;
    let mut out = Messages::new();
    format.encoder(batch.schema()).unwrap().encode(&batch.slice(1, 2), &[RowKind::Insert; 2], &mut out).unwrap();
    assert_eq!(out.get(1).1.unwrap(), b"{}");
    let second = String::from_utf8(out.get(0).1.unwrap().to_vec()).unwrap();
    assert!(second.contains(r#""row":{}"#) && !second.contains("null"), "{second}");
}

#[test]
fn floats_that_json_cannot_hold_travel_as_strings() {
    let batch = RecordBatch::try_from_iter(vec![(
        "f",
        Arc::new(Float64Array::from(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY])) as ArrayRef,
    )])
    .unwrap();
    let (decoded, _, out) = round_trip(&Format::new(FormatKind::Json), &batch, &[RowKind::Insert; 3]);
    assert_eq!(out.get(0).1.unwrap(), br#"{"f":"NaN"}"#);
    let f = decoded[0].as_primitive::<Float64Type>();
    assert!(f.value(0).is_nan() && f.value(1) == f64::INFINITY && f.value(2) == f64::NEG_INFINITY);
}

#[test]
fn encoders_name_a_column_they_cannot_write() {
    let s = schema(vec![Field::new("span", DataType::Interval(IntervalUnit::DayTime), true)]);
    let err = Format::new(FormatKind::Json).encoder(s.clone()).err().unwrap().to_string();
    assert!(err.contains("column `span`"), "{err}");
    let err = Format::new(FormatKind::Raw).encoder(schema(vec![])).err().unwrap().to_string();
    assert!(err.contains("exactly one column"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Reading JSON.

const PRODUCTS: &str = "CREATE TABLE t (id INT, name STRING, price DECIMAL(10, 2), tags ARRAY<STRING>) WITH ('connector' = 'kafka', 'format' = 'json');";

#[test]
fn decimals_are_exact_from_numbers_and_strings() {
    let sql = "CREATE TABLE t (d DECIMAL(38, 9)) WITH ('connector' = 'kafka', 'format' = 'json');";
    let out = decode_to_text(
        sql,
        &[
            Some(br#"{"d": 12345678901234567890.123456789}"#),
            Some(br#"{"d": "12345678901234567890.123456789"}"#),
            Some(br#"{"d": 1.0000000005}"#),
            Some(br#"{"d": 2.7E-8}"#),
        ],
    );
    assert_eq!(
        out,
        "+I[12345678901234567890.123456789]\n+I[12345678901234567890.123456789]\n+I[1.000000001]\n+I[0.000000027]\n"
    );
}

#[test]
fn numbers_written_as_strings_are_read_as_numbers() {
    let sql = "CREATE TABLE t (a TINYINT, b INT, c BIGINT, d DOUBLE, e BOOLEAN, f BOOLEAN, g DATE) WITH ('connector' = 'kafka', 'format' = 'json');";
    let out = decode_one(
        sql,
        r#"{"a":"-5","b":" 101 ","c":"9223372036854775807","d":"1.5e3","e":"1","f":"false","g":"2024-02-29"}"#,
    );
    assert_eq!(out, "+I[-5, 101, 9223372036854775807, 1500.0, true, false, 2024-02-29]\n");
}

#[test]
fn fields_are_matched_by_name_unknown_ones_skipped_missing_ones_null() {
    let out = decode_one(PRODUCTS, r#"{"extra": {"deep": [1, {"x": null}]}, "name": "pen", "id": 7}"#);
    assert_eq!(out, "+I[7, pen, null, null]\n");
}

#[test]
fn a_repeated_key_keeps_its_last_value_as_jackson_does() {
    let out = decode_one(PRODUCTS, r#"{"id": 1, "tags": ["a", "b"], "id": 2, "tags": ["c"]}"#);
    assert_eq!(out, "+I[2, null, null, [c]]\n");
}

#[test]
fn objects_and_arrays_read_into_string_keep_their_json_text() {
    let sql = "CREATE TABLE t (s STRING, n STRING, b STRING) WITH ('connector' = 'kafka', 'format' = 'json');";
    let out = decode_one(sql, r#"{"s": { "k" : [1, "a b"] }, "n": 1.50, "b": true}"#);
    assert_eq!(out, "+I[{\"k\":[1,\"a b\"]}, 1.50, true]\n");
}

#[test]
fn a_top_level_array_holds_several_rows() {
    let out = decode_one(PRODUCTS, r#"[{"id": 1}, null, {"id": 2, "name": "x"}]"#);
    assert_eq!(out, "+I[1, null, null, null]\n+I[2, x, null, null]\n");
}

#[test]
fn a_bad_value_names_the_field_the_value_and_the_type() {
    let out = decode_one(PRODUCTS, r#"{"id": 1, "price": "12.x"}"#);
    assert_eq!(out, "ERROR: field `price`: cannot read \"12.x\" as DECIMAL(10, 2): not a decimal number\n");
    let out = decode_one(PRODUCTS, r#"{"id": 3000000000}"#);
    assert_eq!(out, "ERROR: field `id`: cannot read 3000000000 as INT: is out of range\n");
    let out = decode_one(PRODUCTS, r#"{"id": 1.5}"#);
    assert_eq!(out, "ERROR: field `id`: cannot read 1.5 as INT: not a whole number\n");
    let out = decode_one(PRODUCTS, r#"{"tags": ["a", {"b": 1}, 3]}"#);
    assert_eq!(out, "+I[null, null, null, [a, {\"b\":1}, 3]]\n", "anything reads into STRING");
    let out = decode_one(PRODUCTS, r#"{"tags": "a"}"#);
    assert_eq!(out, "ERROR: field `tags`: expected an array for ARRAY<STRING>, found a string\n");
    let out = decode_one(
        "CREATE TABLE t (r ROW<a ARRAY<INT>>) WITH ('connector' = 'kafka', 'format' = 'json');",
        r#"{"r": {"a": [1, "x"]}}"#,
    );
    assert_eq!(out, "ERROR: field `r.a[1]`: cannot read \"x\" as INT: not an integer\n");
}

#[test]
fn malformed_json_says_where() {
    let out = decode_one(PRODUCTS, r#"{"id": 1 "name": "x"}"#);
    assert_eq!(
        out,
        "ERROR: malformed JSON at byte 9: expected ',' or '}', found `\"name\": \"x\"}` after `{\"id\": 1 `\n"
    );
    let out = decode_one(PRODUCTS, r#"{"id": 1} trailing"#);
    assert!(out.contains("expected the end of the message after the JSON value"), "{out}");
    let out = decode_one(PRODUCTS, "42");
    assert_eq!(out, "ERROR: expected a JSON object (one row), found a number at the top level\n");
}

#[test]
fn a_failed_message_leaves_no_rows_behind() {
    // The bad message fails in its last field, after the others were appended.
    let out = decode_to_text(
        PRODUCTS,
        &[
            Some(br#"{"id": 1, "name": "a", "tags": ["x"]}"#),
            Some(br#"{"id": 2, "name": "b", "tags": ["y", "z"], "price": "oops"}"#),
            Some(br#"[{"id": 3}, {"id": "bad"}]"#),
            Some(br#"{"id": 4, "tags": []}"#),
        ],
    );
    assert_eq!(
        out,
        "+I[1, a, null, [x]]\n+I[4, null, null, []]\n\
         ERROR: field `price`: cannot read \"oops\" as DECIMAL(10, 2): not a decimal number\n\
         ERROR: field `[1].id`: cannot read \"bad\" as INT: not an integer\n"
    );
}

#[test]
fn ignore_parse_errors_turns_bad_fields_into_null_as_flink_does() {
    let sql = "CREATE TABLE t (id INT, price DECIMAL(10, 2), tags ARRAY<INT>, r ROW<a INT>) WITH ('connector' = 'kafka', 'format' = 'json', 'json.ignore-parse-errors' = 'true');";
    let out = decode_one(sql, r#"{"id": "x", "price": 1e20, "tags": [1, "two", 3], "r": [1]}"#);
    assert_eq!(out, "+I[null, null, [1, null, 3], null]\n");
    // Malformed JSON is still an error: the caller skips the message.
    let out = decode_one(sql, r#"{"id": 1,"#);
    assert!(out.starts_with("ERROR: malformed JSON"), "{out}");
}

#[test]
fn fail_on_missing_field_fails_the_message_at_any_depth() {
    let sql = "CREATE TABLE t (id INT, r ROW<a INT, b INT>) WITH ('connector' = 'kafka', 'format' = 'json', 'json.fail-on-missing-field' = 'true');";
    assert_eq!(decode_one(sql, r#"{"id": 1, "r": {"a": 1, "b": null}}"#), "+I[1, {a: 1, b: null}]\n");
    assert_eq!(
        decode_one(sql, r#"{"id": 1, "r": {"a": 1}}"#),
        "ERROR: field `r.b`: missing from the message (fail-on-missing-field is set)\n"
    );
    assert_eq!(
        decode_one(sql, r#"{"r": null}"#),
        "ERROR: field `id`: missing from the message (fail-on-missing-field is set)\n"
    );
}

#[test]
fn null_and_empty_values_carry_no_rows() {
    assert_eq!(decode_to_text(PRODUCTS, &[None, Some(b""), Some(b"  "), Some(b"null")]), "");
}

#[test]
fn not_null_nested_fields_refuse_null() {
    let sql = "CREATE TABLE t (r ROW<a INT NOT NULL>) WITH ('connector' = 'kafka', 'format' = 'json');";
    assert_eq!(decode_one(sql, r#"{"r": {"a": 1}}"#), "+I[{a: 1}]\n");
    assert_eq!(decode_one(sql, r#"{"r": null}"#), "+I[null]\n");
    assert_eq!(
        decode_one(sql, r#"{"r": {}}"#),
        "ERROR: field `r.a`: is declared NOT NULL but the message has no value for it\n"
    );
}

#[test]
fn timestamps_are_read_in_any_standard_and_zones_are_applied() {
    let sql = "CREATE TABLE t (ts TIMESTAMP(3), ltz TIMESTAMP_LTZ(6), t TIME(0)) WITH ('connector' = 'kafka', 'format' = 'json');";
    let out = decode_to_text(
        sql,
        &[
            Some(br#"{"ts": "2020-12-30 12:13:14.123", "ltz": "2020-12-30 12:13:14.123456Z", "t": "12:13:14"}"#),
            Some(br#"{"ts": "2020-12-30T12:13:14.1239", "ltz": "2020-12-30T14:13:14+02:00", "t": "12:13"}"#),
            Some(br#"{"ts": 1609330394123}"#),
        ],
    );
    assert_eq!(
        out,
        "+I[2020-12-30T12:13:14.123, 2020-12-30T12:13:14.123456Z, 12:13:14]\n\
         +I[2020-12-30T12:13:14.123, 2020-12-30T12:13:14Z, 12:13:00]\n\
         ERROR: field `ts`: cannot read 1609330394123 as TIMESTAMP(3): expected text yyyy-MM-dd HH:mm:ss[.fff], not a number\n"
    );
}

#[test]
fn maps_read_object_keys_as_text() {
    let sql =
        "CREATE TABLE t (m MAP<STRING, INT>, n MAP<INT, STRING>) WITH ('connector' = 'kafka', 'format' = 'json');";
    let out = decode_one(sql, r#"{"m": {"a": 1, "b": null}, "n": {"10": "x"}}"#);
    assert_eq!(out, "+I[{a: 1, b: null}, {10: x}]\n");
    let out = decode_one(sql, r#"{"n": {"ten": "x"}}"#);
    assert_eq!(out, "ERROR: field `n.ten`: key cannot read \"ten\" as INT: not an integer\n");
}

// ---------------------------------------------------------------------------------------------
// Debezium.

const CUSTOMERS: &str =
    "CREATE TABLE t (id INT, name STRING) WITH ('connector' = 'kafka', 'format' = 'debezium-json');";

#[test]
fn debezium_ops_become_row_kinds_whatever_the_field_order() {
    let out = decode_to_text(
        CUSTOMERS,
        &[
            Some(br#"{"op": "r", "after": {"id": 1, "name": "a"}, "before": null}"#),
            Some(br#"{"after": {"id": 1, "name": "b"}, "op": "u", "before": {"id": 1, "name": "a"}}"#),
            Some(br#"{"op": "d", "after": null, "before": {"id": 1, "name": "b"}}"#),
            None,
            Some(br#"{"before": null, "after": {"id": 2, "name": "c"}, "op": "c"}"#),
        ],
    );
    assert_eq!(out, "+I[1, a]\n-U[1, a]\n+U[1, b]\n-D[1, b]\n+I[2, c]\n");
}

#[test]
fn debezium_updates_without_before_point_at_replica_identity() {
    let out = decode_one(CUSTOMERS, r#"{"before": null, "after": {"id": 1}, "op": "u"}"#);
    assert!(
        out.starts_with("ERROR: the \"before\" field of this UPDATE message is null")
            && out.contains("REPLICA IDENTITY"),
        "{out}"
    );
    let out = decode_one(CUSTOMERS, r#"{"after": null, "op": "d"}"#);
    assert!(out.contains("this DELETE message is null"), "{out}");
    // REPLICA IDENTITY DEFAULT: the key only; the other columns are NULL.
    let out = decode_one(CUSTOMERS, r#"{"before": {"id": 1}, "after": null, "op": "d"}"#);
    assert_eq!(out, "-D[1, null]\n");
}

#[test]
fn debezium_unknown_or_missing_ops_are_errors_with_hints() {
    let out = decode_one(CUSTOMERS, r#"{"before": null, "after": null, "op": "t"}"#);
    assert!(out.contains("unknown \"op\" value \"t\" (a TRUNCATE"), "{out}");
    let out = decode_one(CUSTOMERS, r#"{"schema": {}, "payload": {"op": "c", "after": {"id": 1}}}"#);
    assert!(out.contains("set 'debezium-json.schema-include' = 'true'"), "{out}");
    let with_schema = CUSTOMERS.replace("'debezium-json'", "'debezium-json', 'debezium-json.schema-include' = 'true'");
    let out = decode_one(&with_schema, r#"{"op": "c", "after": {"id": 1}}"#);
    assert!(out.contains("set 'debezium-json.schema-include' = 'false'"), "{out}");
    assert_eq!(decode_one(&with_schema, r#"{"schema": null, "payload": null}"#), "", "an enveloped tombstone");
}

#[test]
fn debezium_failed_message_rolls_back_both_sets_and_metadata() {
    let sql = "CREATE TABLE t (id INT, name STRING, tbl STRING METADATA FROM 'value.source.table') WITH ('connector' = 'kafka', 'format' = 'debezium-json');";
    let out = decode_to_text(
        sql,
        &[
            Some(br#"{"before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"}, "op": "u", "source": {"table": "x"}}"#),
            Some(br#"{"before": {"id": 2}, "after": {"id": "bad"}, "op": "u", "source": {"table": "y"}}"#),
            Some(br#"{"before": {"id": 3}, "after": {"id": 3}, "op": "x", "source": {"table": "y"}}"#),
            Some(br#"{"after": {"id": 4}, "op": "c", "source": {"table": "z"}}"#),
        ],
    );
    assert_eq!(
        out,
        "-U[1, a, x]\n+U[1, b, x]\n+I[4, null, z]\n\
         ERROR: field `after.id`: cannot read \"bad\" as INT: not an integer\n\
         ERROR: unknown \"op\" value \"x\"; expected c, r, u or d\n"
    );
}

/// A Debezium message with a schema whose `after` columns have the given Connect schemas.
fn with_schema(fields: &str, after: &str, op: &str) -> String {
    format!(
        r#"{{"schema": {{"type": "struct", "fields": [{{"type": "struct", "field": "before", "optional": true, "fields": [{fields}]}}, {{"type": "struct", "field": "after", "optional": true, "fields": [{fields}]}}, {{"type": "string", "field": "op"}}]}}, "payload": {{"before": null, "after": {after}, "op": "{op}"}}}}"#
    )
}

const SCHEMA_INCLUDED: &str = "CREATE TABLE t (price DECIMAL(10, 2), vs DECIMAL(10, 3), d DATE, ts TIMESTAMP(6), mts TIMESTAMP(3), nts TIMESTAMP(9), zts TIMESTAMP_LTZ(3), t TIME(6), zt TIME(0)) WITH ('connector' = 'kafka', 'format' = 'debezium-json', 'debezium-json.schema-include' = 'true');";

const CONNECT_FIELDS: &str = r#"
    {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "price"},
    {"type": "struct", "optional": true, "name": "io.debezium.data.VariableScaleDecimal", "field": "vs"},
    {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "field": "d"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "field": "ts"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.Timestamp", "field": "mts"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.NanoTimestamp", "field": "nts"},
    {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "field": "zts"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTime", "field": "t"},
    {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTime", "field": "zt"}"#;

#[test]
fn debezium_schema_logical_types_decide_how_values_are_read() {
    // 12345 unscaled is "MDk=" (0x3039); -12345 at scale 4 is "z8c=" (0xCFC7).
    let after = r#"{"price": "MDk=", "vs": {"scale": 4, "value": "z8c="}, "d": 19723, "ts": 1700000000123456, "mts": 1700000000123, "nts": 1700000000123456789, "zts": "2023-11-14T23:13:20.123+01:00", "t": 45296000001, "zt": "13:00:00+02:00"}"#;
    let out = decode_one(SCHEMA_INCLUDED, &with_schema(CONNECT_FIELDS, after, "c"));
    assert_eq!(
        out,
        "+I[123.45, -1.235, 2024-01-01, 2023-11-14T22:13:20.123456, 2023-11-14T22:13:20.123, 2023-11-14T22:13:20.123456789, 2023-11-14T22:13:20.123Z, 12:34:56.000001, 11:00:00]\n"
    );
}

#[test]
fn debezium_without_schema_reads_numbers_as_debezium_defaults() {
    let sql = "CREATE TABLE t (d DATE, ts3 TIMESTAMP(3), ts6 TIMESTAMP(6), ltz TIMESTAMP_LTZ(3), t TIME(3), price DECIMAL(5, 2)) WITH ('connector' = 'kafka', 'format' = 'debezium-json');";
    let out = decode_one(
        sql,
        r#"{"op": "c", "after": {"d": 1, "ts3": 1000, "ts6": 1000, "ltz": "2018-06-20T13:37:03Z", "t": 1500000, "price": "1.5"}}"#,
    );
    assert_eq!(
        out,
        "+I[1970-01-02, 1970-01-01T00:00:01, 1970-01-01T00:00:00.001, 2018-06-20T13:37:03Z, 00:00:01.500, 1.50]\n"
    );
    let out = decode_one(sql, r#"{"op": "c", "after": {"price": "AJ8="}}"#);
    assert!(out.contains("looks like Debezium's base64 bytes") && out.contains("schema-include"), "{out}");
}

#[test]
fn debezium_schema_changes_are_noticed_and_same_schemas_reused() {
    let fields = |scale: &str| {
        format!(
            r#"{{"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {{"scale": "{scale}"}}, "field": "price"}}"#
        )
    };
    let sql = "CREATE TABLE t (price DECIMAL(10, 3)) WITH ('connector' = 'kafka', 'format' = 'debezium-json', 'debezium-json.schema-include' = 'true');";
    let m1 = with_schema(&fields("2"), r#"{"price": "MDk="}"#, "c");
    let m2 = with_schema(&fields("3"), r#"{"price": "MDk="}"#, "c");
    let out =
        decode_to_text(sql, &[Some(m1.as_bytes()), Some(m1.as_bytes()), Some(m2.as_bytes()), Some(m1.as_bytes())]);
    assert_eq!(out, "+I[123.450]\n+I[123.450]\n+I[12.345]\n+I[123.450]\n");
}

#[test]
fn debezium_payload_before_schema_is_read_with_that_schema() {
    let message = r#"{"payload": {"op": "c", "after": {"price": "MDk="}}, "schema": {"type": "struct", "fields": [{"type": "struct", "field": "after", "fields": [{"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}, "field": "price"}]}]}}"#;
    let sql = "CREATE TABLE t (price DECIMAL(10, 2)) WITH ('connector' = 'kafka', 'format' = 'debezium-json', 'debezium-json.schema-include' = 'true');";
    assert_eq!(decode_one(sql, message), "+I[123.45]\n");
}

#[test]
fn debezium_metadata_comes_from_the_envelope() {
    let sql = "CREATE TABLE t (id INT, \
        s STRING METADATA FROM 'value.schema' VIRTUAL, \
        ingested TIMESTAMP_LTZ(3) METADATA FROM 'value.ingestion-timestamp' VIRTUAL, \
        changed TIMESTAMP_LTZ(3) METADATA FROM 'value.source.timestamp' VIRTUAL, \
        db STRING METADATA FROM 'value.source.database' VIRTUAL, \
        sch STRING METADATA FROM 'value.source.schema' VIRTUAL, \
        tbl STRING METADATA FROM 'value.source.table' VIRTUAL, \
        props MAP<STRING, STRING> METADATA FROM 'value.source.properties' VIRTUAL) \
        WITH ('connector' = 'kafka', 'format' = 'debezium-json', 'debezium-json.schema-include' = 'true');";
    let message = r#"{"schema": {"type": "struct", "fields": []}, "payload": {"before": {"id": 1}, "after": {"id": 2}, "op": "u", "ts_ms": 1700000000123,
        "source": {"version": "2.7", "ts_ms": 1700000000000, "db": "inventory", "schema": "public", "table": "customers", "snapshot": false, "lsn": 24023128, "xmin": null}}}"#;
    let out = decode_one(sql, message);
    let row = "2023-11-14T22:13:20.123Z, 2023-11-14T22:13:20Z, inventory, public, customers, {version: 2.7, ts_ms: 1700000000000, db: inventory, schema: public, table: customers, snapshot: false, lsn: 24023128, xmin: null}";
    assert_eq!(out, format!("-U[1, {{\"type\":\"struct\",\"fields\":[]}}, {row}]\n+U[2, {{\"type\":\"struct\",\"fields\":[]}}, {row}]\n"));
}

// ---------------------------------------------------------------------------------------------
// Canal.

const CANAL: &str = "CREATE TABLE t (id BIGINT, name STRING, weight DECIMAL(10, 2)) WITH ('connector' = 'kafka', 'format' = 'canal-json');";

#[test]
fn canal_updates_overlay_old_fields_on_the_new_rows() {
    let out = decode_one(
        CANAL,
        r#"{"data": [{"id": "1", "name": "a", "weight": "1.5"}, {"id": "2", "name": "b", "weight": null}],
            "old": [{"weight": "1.0"}, {"name": null, "weight": "2"}], "type": "UPDATE", "isDdl": false}"#,
    );
    assert_eq!(out, "-U[1, a, 1.00]\n+U[1, a, 1.50]\n-U[2, null, 2.00]\n+U[2, b, null]\n");
}

#[test]
fn canal_field_order_does_not_matter_and_ddl_is_skipped() {
    let out = decode_to_text(
        CANAL,
        &[
            Some(br#"{"type": "DELETE", "data": [{"id": "3"}]}"#),
            Some(br#"{"type": "CREATE", "isDdl": true, "data": null, "sql": "CREATE TABLE x (a INT)"}"#),
            Some(br#"{"data": [{"id": "9"}], "type": "INSERT", "isDdl": true}"#),
            Some(br#"{"old": [{"name": "x"}], "type": "UPDATE", "data": [{"id": "4", "name": "y"}]}"#),
            Some(br#"{"type": "TRUNCATE", "data": null}"#),
            Some(br#"{"type": "INSERT", "data": [{"id": "5"}, {"id": "6"}]}"#),
        ],
    );
    assert_eq!(out, "-D[3, null, null]\n-U[4, x, null]\n+U[4, y, null]\n+I[5, null, null]\n+I[6, null, null]\n");
}

#[test]
fn canal_include_patterns_must_match_whole_names() {
    let sql = "CREATE TABLE t (id BIGINT) WITH ('connector' = 'kafka', 'format' = 'canal-json', 'canal-json.database.include' = 'inv.*', 'canal-json.table.include' = 'orders');";
    let out = decode_to_text(
        sql,
        &[
            Some(br#"{"database": "inventory", "table": "orders", "type": "INSERT", "data": [{"id": "1"}]}"#),
            Some(br#"{"database": "inventory", "table": "orders_old", "type": "INSERT", "data": [{"id": "2"}]}"#),
            Some(br#"{"database": "shop", "table": "orders", "type": "INSERT", "data": [{"id": "3"}]}"#),
            Some(br#"{"type": "INSERT", "data": [{"id": "4"}]}"#),
        ],
    );
    assert_eq!(out, "+I[1]\n");
}

#[test]
fn canal_metadata_is_repeated_on_every_row_of_its_message() {
    let sql = "CREATE TABLE t (id BIGINT, \
        db STRING METADATA FROM 'value.database' VIRTUAL, tbl STRING METADATA FROM 'value.table' VIRTUAL, \
        types MAP<STRING, INT> METADATA FROM 'value.sql-type' VIRTUAL, pks ARRAY<STRING> METADATA FROM 'value.pk-names' VIRTUAL, \
        ts TIMESTAMP_LTZ(3) METADATA FROM 'value.ingestion-timestamp' VIRTUAL, es TIMESTAMP_LTZ(3) METADATA FROM 'value.event-timestamp' VIRTUAL) \
        WITH ('connector' = 'kafka', 'format' = 'canal-json');";
    let out = decode_to_text(
        sql,
        &[
            Some(br#"{"data": [{"id": "1"}], "database": "d1", "table": "t1", "type": "INSERT", "ts": 1589373560798, "es": 1589373560000, "sqlType": {"id": 4}, "pkNames": ["id"]}"#),
            Some(br#"{"data": [{"id": "2"}], "old": [{"id": "1"}], "database": "d2", "table": "t2", "type": "UPDATE"}"#),
        ],
    );
    assert_eq!(
        out,
        "+I[1, d1, t1, {id: 4}, [id], 2020-05-13T12:39:20.798Z, 2020-05-13T12:39:20Z]\n\
         -U[1, d2, t2, null, null, null, null]\n+U[2, d2, t2, null, null, null, null]\n"
    );
}

#[test]
fn canal_errors_roll_back_every_row_of_the_message() {
    let out = decode_to_text(
        CANAL,
        &[
            Some(br#"{"type": "INSERT", "data": [{"id": "1"}, {"id": "x"}]}"#),
            Some(br#"{"type": "UPSERT", "data": [{"id": "2"}]}"#),
            Some(br#"{"data": [{"id": "3"}]}"#),
            Some(br#"{"type": "INSERT", "data": [{"id": "4"}]}"#),
        ],
    );
    assert_eq!(
        out,
        "+I[4, null, null]\n\
         ERROR: field `data[1].id`: cannot read \"x\" as BIGINT: not an integer\n\
         ERROR: unknown \"type\" value \"UPSERT\"; expected INSERT, UPDATE, DELETE or a DDL type\n\
         ERROR: the message has no \"type\" field (not a Canal message?)\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Raw.

#[test]
fn raw_strings_must_be_valid_in_their_charset() {
    let mut d = decoder(FormatKind::Raw, vec![Field::new("line", DataType::Utf8, true)]);
    let mut kinds = Vec::new();
    assert_eq!(d.decode(Some("héllo".as_bytes()), &mut kinds).unwrap(), 1);
    let err = d.decode(Some(b"ab\xffc"), &mut kinds).unwrap_err().to_string();
    assert!(err.contains("not UTF-8 text: byte 2 (0xff)"), "{err}");
    assert_eq!(d.decode(None, &mut kinds).unwrap(), 1);
    let out = d.finish().unwrap();
    let s = out[0].as_string::<i32>();
    assert_eq!((s.value(0), s.is_null(1), s.len()), ("héllo", true, 2));
    let mut format = Format::new(FormatKind::Raw);
    format.raw.charset = raw::Charset::Latin1;
    let mut d = format.decoder(schema(vec![Field::new("line", DataType::Utf8, true)]), &[]).unwrap();
    d.decode(Some(b"caf\xe9"), &mut kinds).unwrap();
    assert_eq!(d.finish().unwrap()[0].as_string::<i32>().value(0), "café");
}

#[test]
fn raw_numbers_follow_the_endianness() {
    let batch =
        RecordBatch::try_from_iter(vec![("n", Arc::new(Int32Array::from(vec![Some(1), None, Some(-2)])) as ArrayRef)])
            .unwrap();
    let (decoded, kinds, out) = round_trip(&Format::new(FormatKind::Raw), &batch, &[RowKind::Insert; 3]);
    assert_eq!(out.get(0).1.unwrap(), [0, 0, 0, 1]);
    assert_eq!(out.get(1).1, None, "NULL is a null message");
    assert_eq!(kinds.len(), 3);
    assert_eq!(decoded[0].to_data(), batch.column(0).to_data());
    let mut little = Format::new(FormatKind::Raw);
    little.raw.big_endian = false;
    let (decoded, _, out) = round_trip(&little, &batch, &[RowKind::Insert; 3]);
    assert_eq!(out.get(0).1.unwrap(), [1, 0, 0, 0]);
    assert_eq!(decoded[0].to_data(), batch.column(0).to_data());
    let mut d = decoder(FormatKind::Raw, vec![Field::new("n", DataType::Int64, true)]);
    let err = d.decode(Some(&[1, 2, 3]), &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("expected 8 bytes for BIGINT, found 3"), "{err}");
}

#[test]
fn raw_reads_back_every_type_it_writes() {
    let batch = RecordBatch::try_from_iter(vec![(
        "b",
        Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), None])) as ArrayRef,
    )])
    .unwrap();
    for column in [
        Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), None])) as ArrayRef,
        Arc::new(StringArray::from(vec![Some("ü"), None])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
        Arc::new(Int8Array::from(vec![Some(-1), None])),
        Arc::new(Int16Array::from(vec![Some(-300), None])),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), None])),
        Arc::new(Float32Array::from(vec![Some(1.5), None])),
        Arc::new(Float64Array::from(vec![Some(-0.1), None])),
    ] {
        let batch = RecordBatch::try_from_iter(vec![("v", column)]).unwrap();
        let (decoded, _, _) = round_trip(&Format::new(FormatKind::Raw), &batch, &[RowKind::Insert; 2]);
        assert_eq!(decoded[0].to_data(), batch.column(0).to_data(), "{}", batch.column(0).data_type());
    }
    drop(batch);
    let err = Format::new(FormatKind::Raw)
        .decoder(schema(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Int32, true)]), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("exactly one column") && err.contains("`a`, `b`"), "{err}");
    let err = Format::new(FormatKind::Raw)
        .decoder(schema(vec![Field::new("d", DataType::Date32, true)]), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`d` has type DATE"), "{err}");
}

#[test]
fn raw_refuses_text_its_charset_cannot_write() {
    let batch =
        RecordBatch::try_from_iter(vec![("s", Arc::new(StringArray::from(vec!["ok", "€"])) as ArrayRef)]).unwrap();
    let mut format = Format::new(FormatKind::Raw);
    format.raw.charset = raw::Charset::Latin1;
    let mut out = Messages::new();
    let err = format
        .encoder(batch.schema())
        .unwrap()
        .encode(&batch, &[RowKind::Insert; 2], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'€' cannot be written in ISO-8859-1"), "{err}");
    assert!(out.is_empty() && out.bytes.is_empty(), "nothing of the failed batch stays");
}

#[test]
fn decode_errors_become_user_errors_naming_the_option_to_skip() {
    let format = Format::new(FormatKind::CanalJson);
    let err = DecodeError::new("bad").in_field("id").into_error(&format, "topic t partition 0 offset 7");
    assert_eq!(err.kind(), crate::error::ErrorKind::User);
    let text = err.to_string();
    assert!(text.contains("canal-json message at topic t partition 0 offset 7: field `id`: bad"), "{text}");
    assert!(text.contains("'canal-json.ignore-parse-errors' = 'true'"), "{text}");
}
