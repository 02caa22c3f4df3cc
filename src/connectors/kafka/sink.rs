//! Writing: rows encoded by the table's formats and handed to librdkafka's producer (which
//! batches, compresses and retries on its own thread); a checkpoint waits until every record
//! handed over is acknowledged by the brokers, so what a checkpoint covers is in Kafka.
//!
//! `kafka`: one record per row the value format encodes (`json`/`raw`: inserts only;
//! `debezium-json`/`canal-json`: every row kind, as Flink writes them). `upsert-kafka`: the key
//! is the PRIMARY KEY; `+I`/`+U` write the row, `-D` a tombstone, `-U` nothing; with
//! `sink.buffer-flush.*` only the last change per key within a buffer is written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, MapArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::client::{self, kafka_error, LOOKUP_TIMEOUT};
use super::config::{ColumnFrom, Config, Delivery, Flavor, Partitioner};
use super::metadata::Meta;
use crate::changelog::{ChangeBatch, RowKind, TableId};
use crate::connectors::{PreparedCommit, Sink};
use crate::error::{Error, Result};
use crate::formats::{Encoder, Messages};

/// How long a checkpoint waits for the brokers to acknowledge what was handed over.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Collects the first failed delivery: librdkafka reports deliveries on its own thread.
struct Deliveries {
    table: String,
    failed: Mutex<Option<(String, Option<RDKafkaErrorCode>)>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        client::log_client(&self.table, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client::log_client_error(&self.table, &error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, message)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.is_none() {
                let what = format!("a record for {}[{}] was not delivered: {e}", message.topic(), message.partition());
                *failed = Some((what, e.rdkafka_error_code()));
            }
        }
    }
}

/// The record timestamp and headers columns of a batch being written.
struct WrittenMeta {
    timestamps: Option<TimestampMillisecondArray>,
    headers: Option<MapArray>,
}

impl WrittenMeta {
    fn at(&self, row: usize) -> (Option<i64>, Option<OwnedHeaders>) {
        let timestamp = self.timestamps.as_ref().and_then(|t| t.is_valid(row).then(|| t.value(row)));
        let headers = self.headers.as_ref().filter(|m| m.is_valid(row)).map(|map| {
            let entries = map.value(row);
            let keys = entries.column(0).as_string::<i32>();
            let values = entries.column(1).as_binary::<i32>();
            let mut headers = OwnedHeaders::new_with_capacity(keys.len());
            for i in 0..keys.len() {
                let value = values.is_valid(i).then(|| values.value(i));
                headers = headers.insert(Header { key: keys.value(i), value });
            }
            headers
        });
        (timestamp, headers)
    }
}

/// One record to produce.
struct Record {
    key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
    headers: Option<OwnedHeaders>,
}

pub(crate) struct KafkaSink {
    config: Arc<Config>,
    topic: String,
    producer: Option<Arc<ThreadedProducer<Deliveries>>>,
    partitions: i32,
    round_robin: i32,
    value: Box<dyn Encoder>,
    key: Option<Box<dyn Encoder>>,
    /// Declared column → column of the written batch (VIRTUAL metadata columns are not written).
    written: Vec<Option<usize>>,
    messages: Messages,
    key_messages: Messages,
    /// upsert-kafka with `sink.buffer-flush.*`: the last record per key, in first-seen order.
    buffer: Vec<Record>,
    buffered: HashMap<Vec<u8>, usize>,
    buffer_since: Option<Instant>,
}

impl KafkaSink {
    pub fn new(config: Arc<Config>, persisted: &[usize]) -> Result<Self> {
        let topic = config.sink_topic()?.to_string();
        let value = config.value_format.encoder(config.value_schema.clone())?;
        let key = match &config.key_format {
            Some(f) if !config.key_columns.is_empty() => Some(f.encoder(config.key_schema.clone())?),
            _ => None,
        };
        let mut written = vec![None; config.columns.len()];
        for (w, &declared) in persisted.iter().enumerate() {
            written[declared] = Some(w);
        }
        Ok(KafkaSink {
            config,
            topic,
            producer: None,
            partitions: 1,
            round_robin: 0,
            value,
            key,
            written,
            messages: Messages::default(),
            key_messages: Messages::default(),
            buffer: Vec::new(),
            buffered: HashMap::new(),
            buffer_since: None,
        })
    }

    fn producer(&self) -> Result<&Arc<ThreadedProducer<Deliveries>>> {
        self.producer.as_ref().ok_or_else(|| Error::internal("kafka sink written before open"))
    }

    fn check_deliveries(&self) -> Result<()> {
        let producer = self.producer()?;
        let failed = producer.context().failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((what, code)) = failed else { return Ok(()) };
        let message = format!("table `{}`: {what} (Kafka at {})", self.config.table, self.config.servers);
        // A record the brokers refuse for what it is fails again on every retry: the user acts.
        Err(match code {
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopicOrPartition,
            ) => Error::user(message),
            _ => Error::external(message),
        })
    }

    /// The written batch's columns of `declared` columns, as one batch.
    fn project(
        &self,
        batch: &RecordBatch,
        declared: &[usize],
        schema: &datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<RecordBatch> {
        let columns = declared
            .iter()
            .map(|&d| {
                self.written[d]
                    .map(|w| batch.column(w).clone())
                    .ok_or_else(|| Error::internal("a key or value column is not written"))
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::internal(format!("kafka sink columns: {e}")))
    }

    fn meta_column(&self, meta: Meta) -> Option<usize> {
        self.config.columns.iter().position(|c| *c == ColumnFrom::Meta(meta)).and_then(|d| self.written[d])
    }

    /// The writable metadata columns of a batch, prepared once for its rows.
    fn written_meta(&self, batch: &RecordBatch) -> Result<WrittenMeta> {
        let timestamps = match self.meta_column(Meta::Timestamp) {
            Some(c) => {
                let millis = cast(batch.column(c), &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))
                    .map_err(|e| Error::internal(format!("timestamp metadata: {e}")))?;
                Some(millis.as_primitive::<TimestampMillisecondType>().clone())
            }
            None => None,
        };
        let headers = self.meta_column(Meta::Headers).map(|c| batch.column(c).as_map().clone());
        Ok(WrittenMeta { timestamps, headers })
    }

    async fn produce(&mut self, record: Record) -> Result<()> {
        let partition = match self.config.partitioner {
            Partitioner::Default => None,
            Partitioner::Fixed => Some(0),
            Partitioner::RoundRobin => {
                let partition = self.round_robin;
                self.round_robin = (self.round_robin + 1) % self.partitions.max(1);
                Some(partition)
            }
        };
        let producer = self.producer()?.clone();
        let mut headers = record.headers;
        loop {
            let mut base = BaseRecord::<Vec<u8>, Vec<u8>>::to(&self.topic);
            if let Some(k) = &record.key {
                base = base.key(k);
            }
            if let Some(v) = &record.value {
                base = base.payload(v);
            }
            if let Some(p) = partition {
                base = base.partition(p);
            }
            if let Some(ts) = record.timestamp {
                base = base.timestamp(ts);
            }
            if let Some(h) = headers.take() {
                base = base.headers(h);
            }
            match producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's queue is full: wait for deliveries to make room.
                    headers = returned.headers;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    self.check_deliveries()?;
                }
                Err((e, _)) => return Err(kafka_error(&self.config, "cannot hand a record to the Kafka producer", e)),
            }
        }
    }

    async fn flush_buffer(&mut self) -> Result<()> {
        self.buffered.clear();
        self.buffer_since = None;
        for record in std::mem::take(&mut self.buffer) {
            self.produce(record).await?;
        }
        Ok(())
    }

    async fn write_upsert(&mut self, batch: &ChangeBatch) -> Result<()> {
        let rows = batch.rows();
        let key_batch = self.project(rows, &self.config.key_columns, &self.config.key_schema)?;
        let key_kinds = vec![RowKind::Insert; rows.num_rows()];
        self.key_messages.clear();
        self.key.as_mut().ok_or_else(|| Error::internal("upsert-kafka without a key encoder"))?.encode(
            &key_batch,
            &key_kinds,
            &mut self.key_messages,
        )?;
        let mut keys: Vec<Option<Vec<u8>>> = vec![None; rows.num_rows()];
        for (row, bytes) in self.key_messages.iter() {
            keys[row as usize] = bytes.map(<[u8]>::to_vec);
        }
        let upserts: Vec<u32> =
            (0..rows.num_rows()).filter(|&r| batch.kind(r).is_addition()).map(|r| r as u32).collect();
        let value_rows = take_record_batch(
            &self.project(rows, &self.config.value_columns, &self.config.value_schema)?,
            &UInt32Array::from(upserts.clone()),
        )
        .map_err(|e| Error::internal(format!("upsert-kafka rows: {e}")))?;
        self.messages.clear();
        self.value.encode(&value_rows, &vec![RowKind::Insert; upserts.len()], &mut self.messages)?;
        let mut values: Vec<Option<Vec<u8>>> = vec![None; rows.num_rows()];
        for (i, bytes) in self.messages.iter() {
            values[upserts[i as usize] as usize] = bytes.map(<[u8]>::to_vec);
        }
        let meta = self.written_meta(rows)?;
        for row in 0..rows.num_rows() {
            let kind = batch.kind(row);
            if kind == RowKind::UpdateBefore {
                // An update within its key writes the new row only; one that moves the key also
                // deletes the old key (DESIGN §3), or readers keep it for ever.
                let next_same_key = row + 1 < rows.num_rows()
                    && batch.kind(row + 1) == RowKind::UpdateAfter
                    && keys[row] == keys[row + 1];
                if next_same_key {
                    continue;
                }
            }
            let key = keys[row].take().ok_or_else(|| Error::internal("upsert-kafka row without a key"))?;
            let (timestamp, headers) = meta.at(row);
            let value = if kind.is_addition() { values[row].take() } else { None };
            let record = Record { value, key: Some(key.clone()), timestamp, headers };
            if self.config.buffer_max_rows == 0 {
                self.produce(record).await?;
                continue;
            }
            match self.buffered.get(&key) {
                Some(&at) => self.buffer[at] = record,
                None => {
                    self.buffered.insert(key, self.buffer.len());
                    self.buffer.push(record);
                }
            }
            self.buffer_since.get_or_insert_with(Instant::now);
        }
        let interval_passed =
            self.buffer_since.zip(self.config.buffer_interval).is_some_and(|(since, every)| since.elapsed() >= every);
        if self.config.buffer_max_rows > 0 && (self.buffer.len() >= self.config.buffer_max_rows || interval_passed) {
            self.flush_buffer().await?;
        }
        Ok(())
    }

    async fn write_changes(&mut self, batch: &ChangeBatch) -> Result<()> {
        let rows = batch.rows();
        let kinds: Vec<RowKind> = (0..rows.num_rows()).map(|r| batch.kind(r)).collect();
        let value_batch = self.project(rows, &self.config.value_columns, &self.config.value_schema)?;
        self.messages.clear();
        self.value.encode(&value_batch, &kinds, &mut self.messages)?;
        let mut keys: Vec<Option<Vec<u8>>> = vec![None; rows.num_rows()];
        if self.key.is_some() {
            let key_batch = self.project(rows, &self.config.key_columns, &self.config.key_schema)?;
            let key = self.key.as_mut().ok_or_else(|| Error::internal("kafka key encoder"))?;
            self.key_messages.clear();
            key.encode(&key_batch, &vec![RowKind::Insert; rows.num_rows()], &mut self.key_messages)?;
            for (row, bytes) in self.key_messages.iter() {
                keys[row as usize] = bytes.map(<[u8]>::to_vec);
            }
        }
        let planned: Vec<(u32, Option<Vec<u8>>)> =
            self.messages.iter().map(|(row, bytes)| (row, bytes.map(<[u8]>::to_vec))).collect();
        let meta = self.written_meta(rows)?;
        for (row, value) in planned {
            let (timestamp, headers) = meta.at(row as usize);
            let key = keys[row as usize].clone();
            self.produce(Record { key, value, timestamp, headers }).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self) -> Result<()> {
        let mut defaults = vec![("partitioner", "murmur2_random")];
        if self.config.delivery == Delivery::AtLeastOnce {
            // Retries must not reorder or duplicate a key's records.
            defaults.push(("enable.idempotence", "true"));
        }
        let config = client::client_config(&self.config, &defaults);
        let producer: ThreadedProducer<Deliveries> = config
            .create_with_context(Deliveries { table: self.config.table.clone(), failed: Mutex::new(None) })
            .map_err(|e| {
                kafka_error(&self.config, "cannot create the Kafka producer (check the 'properties.*' options)", e)
            })?;
        let metadata = producer
            .client()
            .fetch_metadata(Some(&self.topic), LOOKUP_TIMEOUT)
            .map_err(|e| kafka_error(&self.config, "cannot reach the Kafka brokers", e))?;
        match metadata.topics().iter().find(|t| t.name() == self.topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                self.partitions = t.partitions().len() as i32;
            }
            _ => {
                return Err(Error::user(format!(
                "topic '{}' of sink table `{}` does not exist on the Kafka brokers at {}; create it, or check 'topic'",
                self.topic, self.config.table, self.config.servers
            )))
            }
        }
        self.producer = Some(Arc::new(producer));
        Ok(())
    }

    async fn write(&mut self, _table: &TableId, batch: ChangeBatch) -> Result<()> {
        self.check_deliveries()?;
        if batch.is_empty() {
            return Ok(());
        }
        match self.config.flavor {
            Flavor::Upsert => self.write_upsert(&batch).await,
            Flavor::Kafka => self.write_changes(&batch).await,
        }
    }

    async fn prepare(&mut self, checkpoint_id: u64) -> Result<PreparedCommit> {
        self.flush_buffer().await?;
        if self.config.delivery == Delivery::AtLeastOnce {
            let producer = self.producer()?.clone();
            tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT))
                .await
                .map_err(|e| Error::internal(format!("kafka flush task: {e}")))?
                .map_err(|e| {
                    kafka_error(&self.config, "the brokers did not acknowledge the checkpoint's records", e)
                })?;
        }
        self.check_deliveries()?;
        Ok(PreparedCommit { checkpoint_id, state: serde_json::Value::Null })
    }

    async fn close(&mut self) -> Result<()> {
        self.flush_buffer().await?;
        if let Some(producer) = self.producer.take() {
            let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT).map(|_| producer))
                .await
                .map_err(|e| Error::internal(format!("kafka flush task: {e}")))?;
            let producer =
                flushed.map_err(|e| kafka_error(&self.config, "records were not delivered before closing", e))?;
            self.producer = Some(producer);
            self.check_deliveries()?;
            self.producer = None;
        }
        Ok(())
    }
}
