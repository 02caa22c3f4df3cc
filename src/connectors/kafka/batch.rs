//! A batch of records under construction: value rows from the value format's decoder, key rows
//! from the key format's (one per record), the record metadata (one per record), and which
//! record and which value row each output row comes from — a record may give no row (a
//! tombstone of a changelog format), one, or several (a Debezium update, a JSON array).

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;

use super::config::{ColumnFrom, Config, Flavor};
use super::metadata::{Meta, MetaBuilders, RecordMeta};
use super::position::KafkaPosition;
use crate::changelog::{ChangeBatch, RowKind};
use crate::error::{Error, Result};
use crate::formats::Decoder;
use crate::runtime::{DeadLetters, Stage};

/// Bytes of a record that does not parse quoted in the error.
const EXCERPT_BYTES: usize = 64;

/// One record as read, independent of the client's message type.
pub(crate) struct Record<'a> {
    pub meta: RecordMeta<'a>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

pub(crate) struct BatchBuilder {
    value: Box<dyn Decoder>,
    key: Option<Box<dyn Decoder>>,
    meta: MetaBuilders,
    /// Whether the table reads any record metadata column.
    reads_meta: bool,
    kinds: Vec<RowKind>,
    /// Per output row: its record; its row of the value decoder's output (`None`: a tombstone's
    /// delete, whose value columns are NULL).
    row_record: Vec<u32>,
    row_value: Vec<Option<u32>>,
    /// Per record: its row of the key decoder's output.
    record_key: Vec<u32>,
    key_rows: u32,
    value_rows: u32,
    records: u32,
    newest_ms: Option<i64>,
    skipped: u64,
    /// Records sent to the dead letters since the last `finish`.
    set_aside: u64,
    /// Where a record that does not parse goes when its format does not skip it.
    dead_letters: Option<DeadLetters>,
}

/// A record that gave no rows, and why.
struct BadRecord<'r, 'a> {
    record: &'r Record<'a>,
    /// The source's position before the record.
    position: &'r KafkaPosition,
    what: String,
    /// `topic[partition] offset n`, for the message.
    where_: String,
}

/// What [`BatchBuilder::finish`] hands over.
pub(crate) struct Finished {
    pub changes: Option<ChangeBatch>,
    pub newest_ms: Option<i64>,
    pub skipped: u64,
}

fn excerpt(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_string(),
        Some(b) => {
            let shown = &b[..b.len().min(EXCERPT_BYTES)];
            let more = if b.len() > EXCERPT_BYTES { "…" } else { "" };
            format!("{:?}{more}", String::from_utf8_lossy(shown))
        }
    }
}

/// `index` unless it maps every position to itself (then nothing needs taking).
fn unless_identity(index: Vec<Option<u32>>) -> Option<UInt32Array> {
    let identity = index.iter().enumerate().all(|(i, v)| *v == Some(i as u32));
    (!identity).then(|| UInt32Array::from(index))
}

impl BatchBuilder {
    pub fn new(config: &Config, dead_letters: Option<DeadLetters>) -> Result<Self> {
        let value = config.value_format.decoder(config.value_schema.clone(), &config.format_metadata)?;
        let needs_key = config.columns.iter().any(|c| matches!(c, ColumnFrom::Key(_)));
        let key = match (&config.key_format, needs_key) {
            (Some(f), true) => Some(f.decoder(config.key_schema.clone(), &[])?),
            _ => None,
        };
        let mut wanted = Vec::new();
        for (i, c) in config.columns.iter().enumerate() {
            if let ColumnFrom::Meta(m) = c {
                if !matches!(m, Meta::Format(_)) {
                    wanted.push((*m, config.schema.field(i).data_type().clone()));
                }
            }
        }
        Ok(BatchBuilder {
            value,
            key,
            reads_meta: !wanted.is_empty(),
            meta: MetaBuilders::new(wanted),
            kinds: Vec::new(),
            row_record: Vec::new(),
            row_value: Vec::new(),
            record_key: Vec::new(),
            key_rows: 0,
            value_rows: 0,
            records: 0,
            newest_ms: None,
            skipped: 0,
            set_aside: 0,
            dead_letters,
        })
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.kinds.len()
    }

    /// Records so far, whether they gave rows or not (and skipped or set aside ones).
    pub fn records(&self) -> usize {
        self.records as usize + (self.skipped + self.set_aside) as usize
    }

    pub fn needs_headers(&self) -> bool {
        self.meta.needs_headers()
    }

    /// Adds `record`, read at `position` (the source's position before it).
    pub fn add(&mut self, config: &Config, record: &Record<'_>, position: &KafkaPosition) -> Result<()> {
        let m = &record.meta;
        let where_ = || format!("{}[{}] offset {}", m.topic, m.partition, m.offset);
        let bad = |what: String| BadRecord { record, position, what, where_: where_() };
        // The key first: when the value then fails, the key's rows are left unreferenced.
        let key_row = match (&mut self.key, &config.key_format) {
            (Some(decoder), Some(format)) => {
                let mut kinds = Vec::with_capacity(1);
                let decoded = decoder.decode(record.key, &mut kinds);
                if let Ok(n) = decoded {
                    self.key_rows += n as u32;
                }
                match decoded {
                    Ok(1) => Some(self.key_rows - 1),
                    Ok(n) => {
                        return self.bad_record(
                            config,
                            format.ignore_parse_errors(),
                            bad(format!("its key holds {n} rows, not one: {}", excerpt(record.key))),
                        )
                    }
                    Err(e) => {
                        return self.bad_record(
                            config,
                            format.ignore_parse_errors(),
                            bad(format!(
                                "its key does not parse as '{}' ({e}): {}",
                                format.name(),
                                excerpt(record.key)
                            )),
                        )
                    }
                }
            }
            _ => None,
        };
        let before = self.kinds.len();
        if config.flavor == Flavor::Upsert && record.value.is_none() {
            // A tombstone: the key's row is deleted; only its key columns are known.
            self.kinds.push(RowKind::Delete);
            self.row_value.push(None);
        } else {
            match self.value.decode(record.value, &mut self.kinds) {
                Ok(n) => {
                    for _ in 0..n {
                        self.row_value.push(Some(self.value_rows));
                        self.value_rows += 1;
                    }
                }
                Err(e) => {
                    self.kinds.truncate(before);
                    return self.bad_record(
                        config,
                        config.value_format.ignore_parse_errors(),
                        bad(format!(
                            "its value does not parse as '{}' ({e}): {}",
                            config.value_format.name(),
                            excerpt(record.value)
                        )),
                    );
                }
            }
        }
        if let Some((ms, _)) = m.timestamp {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
        if self.reads_meta {
            self.meta.append(m)?;
        }
        for _ in before..self.kinds.len() {
            self.row_record.push(self.records);
        }
        if let Some(k) = key_row {
            self.record_key.push(k);
        }
        self.records += 1;
        Ok(())
    }

    /// A record that gives no rows: skipped under the format's 'ignore-parse-errors', else set
    /// aside in the dead letters (its bytes as text, and the position after it) or the error that
    /// stops the job.
    fn bad_record(&mut self, config: &Config, ignore: bool, bad: BadRecord<'_, '_>) -> Result<()> {
        if ignore {
            self.skipped += 1;
            return Ok(());
        }
        let BadRecord { record, position, what, where_ } = bad;
        let hint = if self.dead_letters.is_some() {
            ""
        } else {
            ". Fix the producer, set the format's 'ignore-parse-errors' option to skip such records (they are \
             counted in /metrics), or SET 'dead-letter.path' (or 'dead-letter.table') to set them aside"
        };
        let error =
            Error::user(format!("table `{}`: the record at {where_} cannot be read: {what}{hint}", config.table));
        let Some(dead_letters) = &self.dead_letters else { return Err(error) };
        let m = &record.meta;
        let mut after = position.clone();
        after.set(m.topic, m.partition, m.offset + 1);
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
        let described = serde_json::json!({
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "key": text(record.key),
            "value": text(record.value),
        });
        dead_letters.reject_record(Stage::Format, &config.table, described, error, Some(&after.to_position()))?;
        self.set_aside += 1;
        Ok(())
    }

    /// Everything added since the last call.
    pub fn finish(&mut self, config: &Config) -> Result<Finished> {
        let skipped = std::mem::take(&mut self.skipped);
        self.set_aside = 0;
        let newest_ms = self.newest_ms.take();
        // The decoders may hold rows no output row references (a key whose value failed).
        let value_arrays = self.value.finish()?;
        let key_arrays = match &mut self.key {
            Some(k) => k.finish()?,
            None => Vec::new(),
        };
        let meta_arrays = if self.reads_meta { self.meta.finish()? } else { Vec::new() };
        self.records = 0;
        self.key_rows = 0;
        self.value_rows = 0;
        let row_record = std::mem::take(&mut self.row_record);
        let row_value = std::mem::take(&mut self.row_value);
        let record_key = std::mem::take(&mut self.record_key);
        let kinds = std::mem::take(&mut self.kinds);
        if kinds.is_empty() {
            return Ok(Finished { changes: None, newest_ms, skipped });
        }
        let by_value = unless_identity(row_value);
        let by_key = (!record_key.is_empty())
            .then(|| unless_identity(row_record.iter().map(|&r| Some(record_key[r as usize])).collect()))
            .flatten();
        let by_record = unless_identity(row_record.into_iter().map(Some).collect());
        let pick = |array: &ArrayRef, index: Option<&UInt32Array>| -> Result<ArrayRef> {
            match index {
                Some(i) => take(array.as_ref(), i, None).map_err(|e| Error::internal(format!("kafka batch: {e}"))),
                None => Ok(array.clone()),
            }
        };
        let physical = config.value_schema.fields().len();
        let mut columns = Vec::with_capacity(config.columns.len());
        let mut meta_arrays = meta_arrays.iter();
        for from in &config.columns {
            let array = match from {
                ColumnFrom::Value(v) => pick(&value_arrays[*v], by_value.as_ref())?,
                ColumnFrom::Key(k) => pick(&key_arrays[*k], by_key.as_ref())?,
                ColumnFrom::Meta(Meta::Format(f)) => pick(&value_arrays[physical + f], by_value.as_ref())?,
                ColumnFrom::Meta(_) => pick(
                    meta_arrays.next().ok_or_else(|| Error::internal("a record metadata column was not built"))?,
                    by_record.as_ref(),
                )?,
            };
            columns.push(array);
        }
        let batch = RecordBatch::try_new(config.schema.clone(), columns).map_err(|e| {
            Error::user(format!(
                "table `{}`: a record gives NULL for a NOT NULL column, or a value of another type ({e}); declare the \
                 column nullable or fix the producer",
                config.table
            ))
        })?;
        Ok(Finished { changes: Some(ChangeBatch::from_kinds(batch, &kinds)?), newest_ms, skipped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::ConnectorOptions;
    use crate::sql::{parse_script, Statement, TableSpec};

    fn config(columns: &str, options: &str) -> Config {
        let sql = format!("CREATE TABLE t ({columns}) WITH ({options});");
        let spec: TableSpec =
            match parse_script("test", &sql, &|_| None).unwrap().into_iter().next().map(|s| s.statement) {
                Some(Statement::CreateTable { spec, .. }) => spec,
                _ => panic!("not a CREATE TABLE"),
            };
        let mut o = ConnectorOptions::new(&spec).unwrap();
        let flavor = if o.connector() == "upsert-kafka" { Flavor::Upsert } else { Flavor::Kafka };
        let config = Config::parse(&spec, &mut o, flavor).unwrap();
        o.finish().unwrap();
        config
    }

    fn record<'a>(offset: i64, key: Option<&'a str>, value: Option<&'a str>) -> Record<'a> {
        Record {
            meta: RecordMeta {
                topic: "t",
                partition: 0,
                offset,
                timestamp: Some((1_000 + offset, "CreateTime")),
                headers: Vec::new(),
                leader_epoch: Some(0),
            },
            key: key.map(str::as_bytes),
            value: value.map(str::as_bytes),
        }
    }

    fn shown(changes: &ChangeBatch) -> Vec<String> {
        crate::changelog::format_rows(changes, "").unwrap().lines().map(str::to_string).collect()
    }

    /// Records giving one, none and two rows side by side: each row keeps its own record's
    /// offset, though there are as many rows as records.
    #[test]
    fn metadata_follows_each_row_to_its_own_record() {
        let c = config(
            "id BIGINT, v STRING, off BIGINT METADATA FROM 'offset' VIRTUAL",
            "'connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'k:1', \
             'scan.startup.mode' = 'earliest-offset', 'format' = 'debezium-json'",
        );
        let mut b = BatchBuilder::new(&c, None).unwrap();
        b.add(
            &c,
            &record(10, None, Some(r#"{"before":{"id":1,"v":"a"},"after":null,"op":"d"}"#)),
            &KafkaPosition::default(),
        )
        .unwrap();
        b.add(&c, &record(11, None, None), &KafkaPosition::default()).unwrap();
        b.add(
            &c,
            &record(12, None, Some(r#"{"before":{"id":2,"v":"b"},"after":{"id":2,"v":"c"},"op":"u"}"#)),
            &KafkaPosition::default(),
        )
        .unwrap();
        let done = b.finish(&c).unwrap();
        assert_eq!(shown(&done.changes.unwrap()), vec!["-D[1, a, 10]", "-U[2, b, 12]", "+U[2, c, 12]"]);
        assert_eq!(done.newest_ms, Some(1_012));
    }

    /// A key that decodes to several rows, skipped under ignore-parse-errors, must not shift the
    /// keys of the records after it; tombstones delete by their own key.
    #[test]
    fn a_skipped_key_does_not_shift_the_keys_after_it() {
        let c = config(
            "id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED",
            "'connector' = 'upsert-kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'k:1', \
             'key.format' = 'json', 'key.json.ignore-parse-errors' = 'true', 'value.format' = 'json'",
        );
        let mut b = BatchBuilder::new(&c, None).unwrap();
        b.add(&c, &record(0, Some(r#"[{"id":7},{"id":8}]"#), Some(r#"{"id":7,"v":"x"}"#)), &KafkaPosition::default())
            .unwrap();
        b.add(&c, &record(1, Some(r#"{"id":1}"#), Some(r#"{"id":1,"v":"a"}"#)), &KafkaPosition::default()).unwrap();
        b.add(&c, &record(2, Some(r#"{"id":2}"#), None), &KafkaPosition::default()).unwrap();
        let done = b.finish(&c).unwrap();
        assert_eq!(done.skipped, 1);
        assert_eq!(shown(&done.changes.unwrap()), vec!["+I[1, a]", "-D[2, null]"]);
    }

    /// With a dead-letter destination a record that does not parse is set aside, with its bytes
    /// and the position after it, and the records around it give their rows.
    #[tokio::test]
    async fn a_bad_record_goes_to_the_dead_letters_when_there_are_some() {
        use crate::runtime::dead_letters::{Destination, Target};
        use crate::runtime::metrics::PipelineMetrics;
        let c = config(
            "id BIGINT",
            "'connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'k:1', \
             'scan.startup.mode' = 'earliest-offset', 'format' = 'json'",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let metrics = std::sync::Arc::new(PipelineMetrics::new("p", &["t".into()], "out"));
        let destination = Destination::open(&Target::File(path.clone())).await.unwrap();
        let dead = DeadLetters::new(Some(destination), "job", metrics);
        let mut b = BatchBuilder::new(&c, Some(dead.clone())).unwrap();
        let mut at = KafkaPosition::default();
        for (offset, value) in [(4, r#"{"id":4}"#), (5, r#"{"id":"#), (6, r#"{"id":6}"#)] {
            b.add(&c, &record(offset, None, Some(value)), &at).unwrap();
            at.set("t", 0, offset + 1);
        }
        assert_eq!(b.records(), 3);
        let done = b.finish(&c).unwrap();
        assert_eq!((shown(&done.changes.unwrap()), done.skipped), (vec!["+I[4]".to_string(), "+I[6]".to_string()], 0));
        dead.sync().await.unwrap();
        let letter: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(letter["stage"], "format");
        assert_eq!(
            letter["row"],
            serde_json::json!({"topic": "t", "partition": 0, "offset": 5, "key": null, "value": "{\"id\":"})
        );
        assert_eq!(letter["position"], serde_json::json!({"kafka": {"next": {"t": {"0": 6}}}}));
        assert!(letter["error"].as_str().unwrap().contains("t[0] offset 5 cannot be read"), "{letter}");
        assert!(letter["row_kind"].is_null());
    }

    /// A value that does not parse stops the read, saying where and showing the bytes.
    #[test]
    fn a_bad_value_names_its_place_and_bytes() {
        let c = config(
            "id BIGINT",
            "'connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'k:1', \
             'scan.startup.mode' = 'earliest-offset', 'format' = 'json'",
        );
        let mut b = BatchBuilder::new(&c, None).unwrap();
        let e = b.add(&c, &record(5, None, Some(r#"{"id":"#)), &KafkaPosition::default()).unwrap_err().to_string();
        assert!(e.contains("t[0] offset 5") && e.contains(r#"{\"id\":"#), "{e}");
        assert!(b.finish(&c).unwrap().changes.is_none());
    }
}
