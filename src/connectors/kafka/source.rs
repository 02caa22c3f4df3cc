//! Reading: a thread owns the consumer, assigns itself every partition of the table's topics at
//! concrete offsets, polls records and decodes them straight into the batch under construction,
//! and hands a batch over as soon as nothing more is waiting (or it is full). The async side only
//! passes batches on and sends offset commits back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::client::{self, kafka_error, KafkaConsumer};
use super::config::{ColumnFrom, Config, Flavor, OffsetReset, StartAt, StopAt};
use super::metadata::{Meta, MetaBuilders, RecordMeta};
use super::position::KafkaPosition;
use crate::changelog::{ChangeBatch, RowKind};
use crate::connectors::{Position, ResumeFrom, Source, SourceBatch, SourceProgress};
use crate::error::{Error, Result};
use crate::formats::Decoder;

/// An idle source still hands over its position this often, so checkpoints move on.
const IDLE_BATCH_EVERY: Duration = Duration::from_secs(1);
/// How long one poll waits when the batch under construction is empty.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Bytes of a record that does not parse quoted in the error.
const EXCERPT_BYTES: usize = 64;

enum Read {
    Batch { changes: Option<ChangeBatch>, position: KafkaPosition, newest_ms: Option<i64>, skipped: u64 },
    End,
}

enum Control {
    Commit(KafkaPosition),
}

pub(crate) struct KafkaSource {
    config: Arc<Config>,
    batch_size: usize,
    reads: Option<mpsc::Receiver<Result<Read>>>,
    control: Option<std::sync::mpsc::Sender<Control>>,
    start: Option<KafkaPosition>,
    progress: SourceProgress,
    skipped: u64,
    events: u64,
}

impl KafkaSource {
    pub fn new(config: Arc<Config>, batch_size: usize) -> Self {
        KafkaSource {
            config,
            batch_size: batch_size.max(1),
            reads: None,
            control: None,
            start: None,
            progress: SourceProgress::default(),
            skipped: 0,
            events: 0,
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        self.config.schema.clone()
    }

    fn is_bounded(&self) -> bool {
        self.config.is_bounded()
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        let resume = resume_from.map(|r| KafkaPosition::from_position(&r.position)).transpose()?;
        let (reads_tx, reads) = mpsc::channel(2);
        let (control_tx, control) = std::sync::mpsc::channel();
        let (started_tx, started) = oneshot::channel();
        let config = self.config.clone();
        let batch_size = self.batch_size;
        std::thread::Builder::new()
            .name(format!("kafka {}", config.table))
            .spawn(move || {
                let reader = match Reader::open(config, batch_size, resume) {
                    Ok(reader) => {
                        let _ = started_tx.send(Ok(reader.position.clone()));
                        reader
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let errors = reads_tx.clone();
                // A panic is a bug; the job must hear of it rather than wait for a reader that is gone.
                if let Err(panic) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.run(reads_tx, control)))
                {
                    let what = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("a panic");
                    let _ = errors.blocking_send(Err(Error::internal(format!("the kafka reader failed: {what}"))));
                }
            })
            .map_err(|e| Error::external(format!("cannot start the kafka reader thread: {e}")))?;
        let start = started.await.map_err(|_| Error::internal("the kafka reader thread ended before starting"))??;
        self.progress.position = Some(start.describe());
        self.start = Some(start);
        self.reads = Some(reads);
        self.control = Some(control_tx);
        Ok(())
    }

    fn start_position(&self) -> Option<Position> {
        self.start.as_ref().map(KafkaPosition::to_position)
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        let reads = self.reads.as_mut().ok_or_else(|| Error::internal("kafka source read before start"))?;
        match reads.recv().await {
            None => Err(Error::internal("the kafka reader thread stopped without a word")),
            Some(Err(e)) => Err(e),
            Some(Ok(Read::End)) => Ok(None),
            Some(Ok(Read::Batch { changes, position, newest_ms, skipped })) => {
                self.skipped += skipped;
                self.progress.position = Some(position.describe());
                self.progress.skipped = Some(self.skipped);
                if let Some(ms) = newest_ms {
                    self.progress.event_time_ms = Some(ms);
                    let now = chrono::Utc::now().timestamp_millis();
                    self.progress.fetch_event_time_lag_ms = Some(now.saturating_sub(ms).max(0) as u64);
                }
                let changes = match changes {
                    Some(c) => c,
                    None => ChangeBatch::inserts(RecordBatch::new_empty(self.config.schema.clone())),
                };
                self.events += changes.num_rows() as u64;
                self.progress.events = Some(self.events);
                Ok(Some(SourceBatch::new(changes, position.to_position())))
            }
        }
    }

    async fn acknowledge(&mut self, position: &Position) -> Result<()> {
        if self.config.group.is_none() || !self.config.commit_on_checkpoint {
            return Ok(());
        }
        if let Some(control) = &self.control {
            // The reader ends with the job; a commit it no longer takes is for monitoring only.
            let _ = control.send(Control::Commit(KafkaPosition::from_position(position)?));
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        // Dropping both channels ends the reader thread at its next poll.
        self.control = None;
        self.reads = None;
        Ok(())
    }

    fn progress(&self) -> Option<SourceProgress> {
        Some(self.progress.clone())
    }
}

/// The thread's side: the consumer, where each partition stands, and the batch being built.
struct Reader {
    config: Arc<Config>,
    consumer: KafkaConsumer,
    batch_size: usize,
    position: KafkaPosition,
    /// Bounded reads: the offset each partition stops before; partitions done are removed.
    stop: Option<BTreeMap<(String, i32), i64>>,
    builder: BatchBuilder,
    next_discovery: Option<Instant>,
}

impl Reader {
    fn open(config: Arc<Config>, batch_size: usize, resume: Option<KafkaPosition>) -> Result<Reader> {
        let consumer = client::consumer(&config)?;
        let topics = client::partitions(&config, &consumer)?;
        let partitions: Vec<(String, i32)> =
            topics.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect();
        if partitions.is_empty() {
            tracing::warn!(
                "table `{}`: no topic matches {} yet; new topics are picked up by partition discovery",
                config.table,
                config.topics_text
            );
        }
        let mut position = KafkaPosition::default();
        let starts = match &resume {
            Some(resumed) => {
                let mut starts = BTreeMap::new();
                for (t, p) in &partitions {
                    let offset = match resumed.get(t, *p) {
                        Some(o) => o,
                        // A partition that appeared after the checkpoint: all of it is new.
                        None => client::watermarks(&config, &consumer, t, *p)?.0,
                    };
                    starts.insert((t.clone(), *p), offset);
                }
                starts
            }
            None => fresh_starts(&config, &consumer, &partitions)?,
        };
        for ((t, p), offset) in &starts {
            position.set(t, *p, *offset);
        }
        let stop = match &config.stop {
            StopAt::Unbounded => None,
            stop => Some(stop_offsets(&config, &consumer, &partitions, stop)?),
        };
        let mut tpl = TopicPartitionList::new();
        for ((t, p), offset) in &starts {
            tpl.add_partition_offset(t, *p, Offset::Offset(*offset))
                .map_err(|e| kafka_error(&config, "cannot assign partitions", e))?;
        }
        consumer.assign(&tpl).map_err(|e| kafka_error(&config, "cannot assign partitions", e))?;
        let builder = BatchBuilder::new(&config)?;
        let next_discovery = config.discovery.map(|d| Instant::now() + d);
        let mut reader = Reader { config, consumer, batch_size, position, stop, builder, next_discovery };
        reader.finish_reached_partitions();
        Ok(reader)
    }

    fn run(mut self, reads: mpsc::Sender<Result<Read>>, control: std::sync::mpsc::Receiver<Control>) {
        if let Err(e) = self.read(&reads, &control) {
            let _ = reads.blocking_send(Err(e));
        }
    }

    fn read(&mut self, reads: &mpsc::Sender<Result<Read>>, control: &std::sync::mpsc::Receiver<Control>) -> Result<()> {
        let mut last_sent = Instant::now();
        loop {
            loop {
                match control.try_recv() {
                    Ok(Control::Commit(position)) => self.commit(&position),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(()),
                }
            }
            if self.stop.as_ref().is_some_and(BTreeMap::is_empty) {
                if self.builder.rows() > 0 || self.builder.skipped > 0 {
                    self.send(reads)?;
                }
                let _ = reads.blocking_send(Ok(Read::End));
                return Ok(());
            }
            if self.next_discovery.is_some_and(|at| Instant::now() >= at) {
                self.discover()?;
            }
            let wait = if self.builder.rows() > 0 { Duration::ZERO } else { POLL_WAIT };
            match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    let check =
                        Self::take(&self.config, &mut self.builder, &mut self.position, self.stop.as_ref(), &message)?;
                    drop(message);
                    if check {
                        self.finish_reached_partitions();
                    }
                    if self.builder.rows() >= self.batch_size {
                        self.send(reads)?;
                        last_sent = Instant::now();
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => self.finish_reached_partitions(),
                Some(Err(e)) => self.consumer_error(e)?,
                None => {
                    if self.builder.rows() > 0 || last_sent.elapsed() >= IDLE_BATCH_EVERY {
                        self.send(reads)?;
                        last_sent = Instant::now();
                    }
                }
            }
            if reads.is_closed() {
                return Ok(());
            }
        }
    }

    /// Takes one record into the batch; returns whether a bounded read should check which
    /// partitions are done. A free function of the fields: the message borrows the consumer.
    fn take(
        config: &Config,
        builder: &mut BatchBuilder,
        position: &mut KafkaPosition,
        stop: Option<&BTreeMap<(String, i32), i64>>,
        message: &BorrowedMessage<'_>,
    ) -> Result<bool> {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        if let Some(stop) = stop {
            match stop.get(&(topic.to_string(), partition)) {
                // Already done: a record past the end of a bounded read.
                None => return Ok(false),
                Some(&end) if offset >= end => return Ok(true),
                Some(_) => {}
            }
        }
        builder.add(config, message)?;
        position.set(topic, partition, offset + 1);
        Ok(stop.is_some())
    }

    /// Bounded reads: drops (and pauses) every partition whose next offset reached its end.
    fn finish_reached_partitions(&mut self) {
        let Some(stop) = &mut self.stop else { return };
        let fetch_positions = self.consumer.position().ok();
        let mut done = Vec::new();
        for ((t, p), end) in stop.iter() {
            let next = self.position.get(t, *p).unwrap_or(0);
            // The consumer's own position (last consumed + 1, or the end a partition-EOF reported)
            // stands past control records of transactions, which give no record.
            let fetched = fetch_positions.as_ref().and_then(|tpl| match tpl.find_partition(t, *p)?.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            if next >= *end || fetched.is_some_and(|f| f >= *end) {
                done.push((t.clone(), *p));
            }
        }
        for key in done {
            stop.remove(&key);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&key.0, key.1);
            let _ = self.consumer.pause(&tpl);
        }
    }

    fn send(&mut self, reads: &mpsc::Sender<Result<Read>>) -> Result<()> {
        let (changes, newest_ms, skipped) = self.builder.finish(&self.config)?;
        reads
            .blocking_send(Ok(Read::Batch { changes, position: self.position.clone(), newest_ms, skipped }))
            .map_err(|_| Error::internal("kafka source dropped while reading"))
    }

    fn commit(&self, position: &KafkaPosition) {
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in &position.next {
            for (p, next) in partitions {
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*next));
            }
        }
        // Committed offsets only inform monitoring tools (and 'group-offsets' starts): a commit
        // that fails is reported, never fatal.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!("table `{}`: could not commit offsets to the consumer group: {e}", self.config.table);
        }
    }

    /// New partitions (and, for a pattern, new topics) are read from their beginning.
    fn discover(&mut self) -> Result<()> {
        self.next_discovery = self.config.discovery.map(|d| Instant::now() + d);
        let topics = match client::partitions(&self.config, &self.consumer) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("table `{}`: partition discovery failed, trying again later: {e}", self.config.table);
                return Ok(());
            }
        };
        let mut tpl = TopicPartitionList::new();
        for (t, partitions) in &topics {
            for p in partitions {
                if self.position.get(t, *p).is_none() {
                    let low = client::watermarks(&self.config, &self.consumer, t, *p)?.0;
                    tracing::info!("table `{}`: reading new partition {t}[{p}] from offset {low}", self.config.table);
                    self.position.set(t, *p, low);
                    tpl.add_partition_offset(t, *p, Offset::Offset(low))
                        .map_err(|e| kafka_error(&self.config, "cannot assign a new partition", e))?;
                }
            }
        }
        if tpl.count() > 0 {
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| kafka_error(&self.config, "cannot assign a new partition", e))?;
        }
        Ok(())
    }

    fn consumer_error(&self, e: KafkaError) -> Result<()> {
        let code = e.rdkafka_error_code();
        match code {
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange) => Err(Error::user(format!(
                "table `{}`: a partition's next offset is no longer held by the brokers at {} ({e}); the records \
                 between were deleted (retention) before this job read them. Restart with --fresh and a \
                 'scan.startup.mode' to read what is left",
                self.config.table, self.config.servers
            ))),
            Some(
                RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed,
            ) => Err(kafka_error(&self.config, "cannot read", e)),
            _ if matches!(e, KafkaError::MessageConsumptionFatal(_)) => {
                Err(kafka_error(&self.config, "the Kafka consumer failed", e))
            }
            // Brokers going away and coming back: librdkafka reconnects by itself.
            _ => {
                tracing::warn!("table `{}`: Kafka consumer: {e}", self.config.table);
                Ok(())
            }
        }
    }
}

/// Where each partition starts on a fresh start, as concrete offsets, so the first checkpoint
/// (and a restart before it) knows exactly.
fn fresh_starts(
    config: &Config,
    consumer: &KafkaConsumer,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), i64>> {
    let committed = match &config.start {
        StartAt::GroupOffsets | StartAt::Specific(_) if config.group.is_some() => {
            client::committed(config, consumer, partitions)?
        }
        _ => BTreeMap::new(),
    };
    let by_time = match &config.start {
        StartAt::Timestamp(ms) => client::offsets_for_time(config, consumer, partitions, *ms)?,
        _ => BTreeMap::new(),
    };
    let mut starts = BTreeMap::new();
    for (t, p) in partitions {
        let key = (t.clone(), *p);
        let (low, high) = client::watermarks(config, consumer, t, *p)?;
        let offset = match &config.start {
            StartAt::Earliest => low,
            StartAt::Latest => high,
            StartAt::Timestamp(_) => by_time.get(&key).copied().flatten().unwrap_or(high),
            StartAt::Specific(offsets) => match offsets.get(p) {
                Some(o) => *o,
                None => committed.get(&key).copied().flatten().unwrap_or(low),
            },
            StartAt::GroupOffsets => match committed.get(&key).copied().flatten() {
                Some(o) => o,
                None => match config.offset_reset {
                    OffsetReset::Earliest => low,
                    OffsetReset::Latest => high,
                    OffsetReset::Fail => {
                        return Err(Error::user(format!(
                            "table `{}`: consumer group '{}' has no committed offset for {t}[{p}], and \
                             'scan.startup.mode' = 'group-offsets' (the default) needs one. Set \
                             'properties.auto.offset.reset' = 'earliest' (or 'latest') for partitions without one, or \
                             choose another 'scan.startup.mode'",
                            config.table,
                            config.group.as_deref().unwrap_or("")
                        )))
                    }
                },
            },
        };
        starts.insert(key, offset);
    }
    Ok(starts)
}

fn stop_offsets(
    config: &Config,
    consumer: &KafkaConsumer,
    partitions: &[(String, i32)],
    stop: &StopAt,
) -> Result<BTreeMap<(String, i32), i64>> {
    let committed = match stop {
        StopAt::GroupOffsets => client::committed(config, consumer, partitions)?,
        _ => BTreeMap::new(),
    };
    let by_time = match stop {
        StopAt::Timestamp(ms) => client::offsets_for_time(config, consumer, partitions, *ms)?,
        _ => BTreeMap::new(),
    };
    let mut ends = BTreeMap::new();
    for (t, p) in partitions {
        let key = (t.clone(), *p);
        let high = client::watermarks(config, consumer, t, *p)?.1;
        let end = match stop {
            StopAt::Unbounded => continue,
            StopAt::Latest => high,
            StopAt::Timestamp(_) => by_time.get(&key).copied().flatten().unwrap_or(high),
            StopAt::GroupOffsets => committed.get(&key).copied().flatten().unwrap_or(high),
            // Partitions without an end of their own are read to the end present at start.
            StopAt::Specific(offsets) => offsets.get(p).copied().unwrap_or(high),
        };
        ends.insert(key, end);
    }
    Ok(ends)
}

/// The batch under construction: value rows from the value decoder, key rows from the key
/// decoder (one per record), the record's metadata (one per record), and which record and
/// which value row each output row comes from.
struct BatchBuilder {
    value: Box<dyn Decoder>,
    key: Option<Box<dyn Decoder>>,
    meta: MetaBuilders,
    /// Record metadata columns, in `config.columns` order of `Meta` (not `Meta::Format`).
    meta_order: Vec<Meta>,
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
}

impl BatchBuilder {
    fn new(config: &Config) -> Result<Self> {
        let value = config.value_format.decoder(config.value_schema.clone(), &config.format_metadata)?;
        let needs_key = config.columns.iter().any(|c| matches!(c, ColumnFrom::Key(_)));
        let key = match (&config.key_format, needs_key) {
            (Some(f), true) => Some(f.decoder(config.key_schema.clone(), &[])?),
            _ => None,
        };
        let mut wanted = Vec::new();
        let mut meta_order = Vec::new();
        for (i, c) in config.columns.iter().enumerate() {
            if let ColumnFrom::Meta(m) = c {
                if !matches!(m, Meta::Format(_)) {
                    wanted.push((*m, config.schema.field(i).data_type().clone()));
                    meta_order.push(*m);
                }
            }
        }
        Ok(BatchBuilder {
            value,
            key,
            meta: MetaBuilders::new(wanted),
            meta_order,
            kinds: Vec::new(),
            row_record: Vec::new(),
            row_value: Vec::new(),
            record_key: Vec::new(),
            key_rows: 0,
            value_rows: 0,
            records: 0,
            newest_ms: None,
            skipped: 0,
        })
    }

    fn rows(&self) -> usize {
        self.kinds.len()
    }

    fn add(&mut self, config: &Config, message: &BorrowedMessage<'_>) -> Result<()> {
        let excerpt_of = |bytes: Option<&[u8]>| match bytes {
            None => "null".to_string(),
            Some(b) => {
                let shown = &b[..b.len().min(EXCERPT_BYTES)];
                let more = if b.len() > EXCERPT_BYTES { "…" } else { "" };
                format!("{:?}{more}", String::from_utf8_lossy(shown))
            }
        };
        let where_ = || format!("{}[{}] offset {}", message.topic(), message.partition(), message.offset());
        // The key first: when the value then fails, the key row is left unreferenced.
        let key_row = match (&mut self.key, &config.key_format) {
            (Some(decoder), Some(format)) => {
                let mut kinds = Vec::with_capacity(1);
                match decoder.decode(message.key(), &mut kinds) {
                    Ok(1) => {
                        self.key_rows += 1;
                        Some(self.key_rows - 1)
                    }
                    Ok(n) => {
                        return self.bad_record(
                            config,
                            format.ignore_parse_errors(),
                            format!("its key holds {n} rows, not one: {}", excerpt_of(message.key())),
                            where_(),
                        )
                    }
                    Err(e) => {
                        return self.bad_record(
                            config,
                            format.ignore_parse_errors(),
                            format!(
                                "its key does not parse as '{}' ({e}): {}",
                                format.name(),
                                excerpt_of(message.key())
                            ),
                            where_(),
                        )
                    }
                }
            }
            _ => None,
        };
        let before = self.kinds.len();
        if config.flavor == Flavor::Upsert && message.payload().is_none() {
            // A tombstone: the key's row is deleted; only its key columns are known.
            self.kinds.push(RowKind::Delete);
            self.row_value.push(None);
        } else {
            match self.value.decode(message.payload(), &mut self.kinds) {
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
                        format!(
                            "its value does not parse as '{}' ({e}): {}",
                            config.value_format.name(),
                            excerpt_of(message.payload())
                        ),
                        where_(),
                    );
                }
            }
        }
        let rows = self.kinds.len() - before;
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) => Some((ms, "CreateTime")),
            Timestamp::LogAppendTime(ms) => Some((ms, "LogAppendTime")),
            Timestamp::NotAvailable => None,
        };
        if let Some((ms, _)) = timestamp {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
        if !self.meta_order.is_empty() {
            let headers = match (self.meta.needs_headers(), message.headers()) {
                (true, Some(h)) => h.iter().map(|h| (h.key, h.value)).collect(),
                _ => Vec::new(),
            };
            // SAFETY: the message pointer is valid for the borrow of `message`; the call only reads it.
            let epoch = unsafe { rdkafka::bindings::rd_kafka_message_leader_epoch(message.ptr()) };
            self.meta.append(&RecordMeta {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp,
                headers,
                leader_epoch: (epoch >= 0).then_some(epoch),
            })?;
        }
        for _ in 0..rows {
            self.row_record.push(self.records);
        }
        if let Some(k) = key_row {
            self.record_key.push(k);
        }
        self.records += 1;
        Ok(())
    }

    fn bad_record(&mut self, config: &Config, ignore: bool, what: String, where_: String) -> Result<()> {
        if ignore {
            self.skipped += 1;
            return Ok(());
        }
        Err(Error::user(format!(
            "table `{}`: the record at {where_} cannot be read: {what}. Fix the producer, or set the format's \
             'ignore-parse-errors' option to skip such records (they are counted in /metrics)",
            config.table
        )))
    }

    /// The batch of everything added since the last call (`None` when nothing was), the newest
    /// record timestamp, and how many records were skipped.
    fn finish(&mut self, config: &Config) -> Result<(Option<ChangeBatch>, Option<i64>, u64)> {
        let skipped = std::mem::take(&mut self.skipped);
        let newest = self.newest_ms.take();
        let rows = self.kinds.len();
        // The decoders may hold rows no output row references (a key whose value failed).
        let value_arrays = self.value.finish()?;
        let key_arrays = match &mut self.key {
            Some(k) => k.finish()?,
            None => Vec::new(),
        };
        let meta_arrays = if self.meta_order.is_empty() { Vec::new() } else { self.meta.finish()? };
        let records = std::mem::take(&mut self.records);
        let row_record = std::mem::take(&mut self.row_record);
        let row_value = std::mem::take(&mut self.row_value);
        let record_key = std::mem::take(&mut self.record_key);
        let kinds = std::mem::take(&mut self.kinds);
        let value_rows = std::mem::take(&mut self.value_rows);
        self.key_rows = 0;
        if rows == 0 {
            return Ok((None, newest, skipped));
        }
        let by_value = (value_rows as usize != rows || row_value.iter().any(Option::is_none))
            .then(|| UInt32Array::from(row_value.clone()));
        let by_record = (records as usize != rows).then(|| UInt32Array::from(row_record.clone()));
        let key_index = (!record_key.is_empty())
            .then(|| UInt32Array::from(row_record.iter().map(|&r| record_key[r as usize]).collect::<Vec<u32>>()));
        let pick = |array: &ArrayRef, index: Option<&UInt32Array>| -> Result<ArrayRef> {
            match index {
                Some(i) => take(array.as_ref(), i, None).map_err(|e| Error::internal(format!("kafka batch: {e}"))),
                None => Ok(array.clone()),
            }
        };
        let mut columns = Vec::with_capacity(config.columns.len());
        let mut meta_i = 0;
        let physical = config.value_schema.fields().len();
        for from in &config.columns {
            let array = match from {
                ColumnFrom::Value(v) => pick(&value_arrays[*v], by_value.as_ref())?,
                ColumnFrom::Key(k) => pick(&key_arrays[*k], key_index.as_ref())?,
                ColumnFrom::Meta(Meta::Format(f)) => pick(&value_arrays[physical + f], by_value.as_ref())?,
                ColumnFrom::Meta(_) => {
                    meta_i += 1;
                    pick(&meta_arrays[meta_i - 1], by_record.as_ref())?
                }
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
        debug_assert_eq!(batch.num_rows(), rows);
        Ok((Some(ChangeBatch::from_kinds(batch, &kinds)?), newest, skipped))
    }
}
