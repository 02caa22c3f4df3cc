//! The Kafka record's own metadata as columns (Flink's keys and types), and the builders that
//! collect them per record while a batch is read.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, MapBuilder, MapFieldNames, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use crate::error::{Error, Result};

/// One metadata key of the record (the format's own keys are [`Meta::Format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meta {
    Topic,
    Partition,
    Offset,
    Timestamp,
    TimestampType,
    Headers,
    LeaderEpoch,
    /// The n-th metadata column the value format decodes.
    Format(usize),
}

/// Every key a kafka table may declare: the record's, then the value formats' (`value.` + the
/// format's key; which ones a table may use depends on its value format).
pub(crate) const KEYS: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp-type",
    "headers",
    "leader-epoch",
    "value.schema",
    "value.ingestion-timestamp",
    "value.source.timestamp",
    "value.source.database",
    "value.source.schema",
    "value.source.table",
    "value.source.properties",
    "value.database",
    "value.table",
    "value.sql-type",
    "value.pk-names",
    "value.event-timestamp",
];

/// `upsert-kafka` tables: Flink offers the record's keys only.
pub(crate) const UPSERT_KEYS: &[&str] =
    &["topic", "partition", "offset", "timestamp", "timestamp-type", "headers", "leader-epoch"];

pub(crate) fn headers_type() -> DataType {
    let entries =
        Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Binary, true)]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
}

impl Meta {
    pub fn parse(key: &str) -> Option<Meta> {
        Some(match key {
            "topic" => Meta::Topic,
            "partition" => Meta::Partition,
            "offset" => Meta::Offset,
            "timestamp" => Meta::Timestamp,
            "timestamp-type" => Meta::TimestampType,
            "headers" => Meta::Headers,
            "leader-epoch" => Meta::LeaderEpoch,
            _ => return None,
        })
    }

    /// Flink's type of the key.
    pub fn data_type(self) -> DataType {
        match self {
            Meta::Topic | Meta::TimestampType => DataType::Utf8,
            Meta::Partition | Meta::LeaderEpoch => DataType::Int32,
            Meta::Offset => DataType::Int64,
            Meta::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Meta::Headers => headers_type(),
            Meta::Format(_) => DataType::Null,
        }
    }

    /// Whether a sink writes it (Flink: `topic`, `headers` and `timestamp`); the sink writes
    /// headers and timestamp, and refuses a `topic` column (one topic per sink table).
    pub fn writable(self) -> bool {
        matches!(self, Meta::Headers | Meta::Timestamp)
    }
}

/// One record's metadata, borrowed from the client's message.
pub(crate) struct RecordMeta<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// (milliseconds, `CreateTime` / `LogAppendTime`), or `None` for `NoTimestampType`.
    pub timestamp: Option<(i64, &'static str)>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub leader_epoch: Option<i32>,
}

/// Builders of the record metadata columns a table reads, one value per record.
pub(crate) struct MetaBuilders {
    wanted: Vec<(Meta, DataType)>,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    timestamp_type: StringBuilder,
    headers: MapBuilder<StringBuilder, BinaryBuilder>,
    leader_epoch: Int32Builder,
    needs_headers: bool,
}

impl MetaBuilders {
    /// `wanted`: each record-metadata column the table declares, with its declared type.
    pub fn new(wanted: Vec<(Meta, DataType)>) -> Self {
        let names = MapFieldNames { entry: "entries".into(), key: "key".into(), value: "value".into() };
        let needs_headers = wanted.iter().any(|(m, _)| *m == Meta::Headers);
        MetaBuilders {
            wanted,
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            timestamp_type: StringBuilder::new(),
            headers: MapBuilder::new(Some(names), StringBuilder::new(), BinaryBuilder::new()),
            leader_epoch: Int32Builder::new(),
            needs_headers,
        }
    }

    pub fn needs_headers(&self) -> bool {
        self.needs_headers
    }

    /// Appends one record's values (only the kinds the table reads are kept, at `finish`).
    pub fn append(&mut self, meta: &RecordMeta<'_>) -> Result<()> {
        self.topic.append_value(meta.topic);
        self.partition.append_value(meta.partition);
        self.offset.append_value(meta.offset);
        match meta.timestamp {
            Some((ms, kind)) => {
                self.timestamp.append_value(ms);
                self.timestamp_type.append_value(kind);
            }
            None => {
                self.timestamp.append_null();
                self.timestamp_type.append_value("NoTimestampType");
            }
        }
        if self.needs_headers {
            for (key, value) in &meta.headers {
                self.headers.keys().append_value(key);
                match value {
                    Some(v) => self.headers.values().append_value(v),
                    None => self.headers.values().append_null(),
                }
            }
            self.headers.append(true).map_err(|e| Error::internal(format!("headers map: {e}")))?;
        }
        self.leader_epoch.append_option(meta.leader_epoch);
        Ok(())
    }

    /// The columns of the records appended since the last call, in the order of `wanted`, one
    /// value per record, cast to each column's declared type.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>> {
        let topic: ArrayRef = Arc::new(self.topic.finish());
        let partition: ArrayRef = Arc::new(self.partition.finish());
        let offset: ArrayRef = Arc::new(self.offset.finish());
        let timestamp: ArrayRef = Arc::new(self.timestamp.finish());
        let timestamp_type: ArrayRef = Arc::new(self.timestamp_type.finish());
        let headers: ArrayRef = Arc::new(self.headers.finish());
        let leader_epoch: ArrayRef = Arc::new(self.leader_epoch.finish());
        self.wanted
            .iter()
            .map(|(meta, declared)| {
                let array = match meta {
                    Meta::Topic => &topic,
                    Meta::Partition => &partition,
                    Meta::Offset => &offset,
                    Meta::Timestamp => &timestamp,
                    Meta::TimestampType => &timestamp_type,
                    Meta::Headers => &headers,
                    Meta::LeaderEpoch => &leader_epoch,
                    Meta::Format(_) => return Err(Error::internal("format metadata among the record's")),
                };
                if array.data_type() == declared {
                    Ok(array.clone())
                } else {
                    cast(array, declared).map_err(|e| Error::internal(format!("metadata column as {declared}: {e}")))
                }
            })
            .collect()
    }
}
