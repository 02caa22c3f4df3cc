//! Reading: a thread owns the consumer, assigns itself every partition of the table's topics at
//! concrete offsets, polls records and decodes them straight into the batch under construction,
//! and hands a batch over as soon as nothing more is waiting (or it is full). The async side only
//! passes batches on and sends offset commits back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::batch::{BatchBuilder, Finished, Record};
use super::client::{self, kafka_error, KafkaConsumer};
use super::config::{Config, OffsetReset, StartAt, StopAt, Topics};
use super::metadata::RecordMeta;
use super::position::KafkaPosition;
use crate::changelog::ChangeBatch;
use crate::connectors::{Position, ResumeFrom, Source, SourceBatch, SourceProgress};
use crate::error::{Error, Result};
use crate::runtime::DeadLetters;

/// An idle source still hands over its position this often, so checkpoints move on.
const IDLE_BATCH_EVERY: Duration = Duration::from_secs(1);
/// How long one poll waits when the batch under construction is empty.
const POLL_WAIT: Duration = Duration::from_millis(100);

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
    /// Where records that do not parse go, when the job has a dead-letter destination.
    dead_letters: Option<DeadLetters>,
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
            dead_letters: None,
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

    fn set_dead_letters(&mut self, dead_letters: DeadLetters) {
        self.dead_letters = Some(dead_letters).filter(DeadLetters::enabled);
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        let resume = resume_from.map(|r| KafkaPosition::from_position(&r.position)).transpose()?;
        let (reads_tx, reads) = mpsc::channel(2);
        let (control_tx, control) = std::sync::mpsc::channel();
        let (started_tx, started) = oneshot::channel();
        let config = self.config.clone();
        let batch_size = self.batch_size;
        let dead_letters = self.dead_letters.clone();
        std::thread::Builder::new()
            .name(format!("kafka {}", config.table))
            .spawn(move || {
                let reader = match Reader::open(config, batch_size, resume, dead_letters) {
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

/// Where a bounded read ends in one partition.
#[derive(Debug, Clone, Copy)]
struct End {
    /// The offset it stops before.
    offset: i64,
    /// The end was already in the partition at start: reaching the partition's end (an
    /// end-of-partition event) then means every record before it was read, even where the last
    /// offsets are transaction markers that give no record.
    present_at_start: bool,
}

/// The thread's side: the consumer, where each partition stands, and the batch being built.
struct Reader {
    config: Arc<Config>,
    consumer: KafkaConsumer,
    batch_size: usize,
    /// The next offset of every partition read, or to be read again once it is found (a topic
    /// of a pattern that a restart could not see for a moment).
    position: KafkaPosition,
    assigned: BTreeSet<(String, i32)>,
    /// Bounded reads: where each partition ends; partitions done are removed.
    stop: Option<BTreeMap<(String, i32), End>>,
    builder: BatchBuilder,
    next_discovery: Option<Instant>,
}

impl Reader {
    fn open(
        config: Arc<Config>,
        batch_size: usize,
        resume: Option<KafkaPosition>,
        dead_letters: Option<DeadLetters>,
    ) -> Result<Reader> {
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
        let (mut position, starts) = match resume {
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
                // Partitions of the checkpoint not found now keep their offsets for discovery.
                (resumed, starts)
            }
            None => (KafkaPosition::default(), fresh_starts(&config, &consumer, &partitions)?),
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
        let builder = BatchBuilder::new(&config, dead_letters)?;
        // A bounded read reads the partitions it found at start (as Flink's does).
        let next_discovery = config.discovery.filter(|_| stop.is_none()).map(|d| Instant::now() + d);
        let mut reader = Reader {
            config,
            consumer,
            batch_size,
            position,
            assigned: starts.into_keys().collect(),
            stop,
            builder,
            next_discovery,
        };
        reader.finish_reached_partitions(None);
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
                if self.builder.records() > 0 {
                    self.send(reads)?;
                }
                let _ = reads.blocking_send(Ok(Read::End));
                return Ok(());
            }
            if self.next_discovery.is_some_and(|at| Instant::now() >= at) {
                self.discover()?;
            }
            let wait = if self.builder.rows() > 0 { Duration::ZERO } else { POLL_WAIT };
            let nothing_waiting = match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    let reached =
                        Self::take(&mut self.builder, &self.config, &mut self.position, self.stop.as_ref(), &message)?;
                    drop(message);
                    if reached {
                        self.finish_reached_partitions(None);
                    }
                    false
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.finish_reached_partitions(Some(p));
                    false
                }
                Some(Err(e)) => {
                    self.consumer_error(e)?;
                    false
                }
                None => true,
            };
            // Hand over as soon as nothing more is waiting, when full, and at least every
            // second even while records give no rows (a filtered canal topic), so checkpoints
            // and the position move on.
            let full = self.builder.rows() >= self.batch_size || self.builder.records() >= self.batch_size;
            if full || (nothing_waiting && self.builder.rows() > 0) || last_sent.elapsed() >= IDLE_BATCH_EVERY {
                self.send(reads)?;
                last_sent = Instant::now();
            }
            if reads.is_closed() {
                return Ok(());
            }
        }
    }

    /// Takes one record into the batch; returns whether it was the last before a bounded end.
    /// A free function of the fields: the message borrows the consumer.
    fn take(
        builder: &mut BatchBuilder,
        config: &Config,
        position: &mut KafkaPosition,
        stop: Option<&BTreeMap<(String, i32), End>>,
        message: &BorrowedMessage<'_>,
    ) -> Result<bool> {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let mut last = false;
        if let Some(stop) = stop {
            match stop.get(&(topic.to_string(), partition)) {
                // Already done: a record past the end of a bounded read.
                None => return Ok(false),
                Some(end) if offset >= end.offset => return Ok(true),
                Some(end) => last = offset + 1 >= end.offset,
            }
        }
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) => Some((ms, "CreateTime")),
            Timestamp::LogAppendTime(ms) => Some((ms, "LogAppendTime")),
            Timestamp::NotAvailable => None,
        };
        let headers = match (builder.needs_headers(), message.headers()) {
            (true, Some(h)) => h.iter().map(|h| (h.key, h.value)).collect(),
            _ => Vec::new(),
        };
        // SAFETY: the message pointer is valid for the borrow of `message`; the call only reads it.
        let epoch = unsafe { rdkafka::bindings::rd_kafka_message_leader_epoch(message.ptr()) };
        let record = Record {
            meta: RecordMeta {
                topic,
                partition,
                offset,
                timestamp,
                headers,
                leader_epoch: (epoch >= 0).then_some(epoch),
            },
            key: message.key(),
            value: message.payload(),
        };
        builder.add(config, &record, position)?;
        position.set(topic, partition, offset + 1);
        Ok(last)
    }

    /// Bounded reads: drops (and pauses) every partition whose next offset reached its end, and
    /// with `eof`, the partition of that number that reached the end of what the brokers hold
    /// (end-of-partition events name no topic: only a table of one topic can tell which).
    fn finish_reached_partitions(&mut self, eof: Option<i32>) {
        let Some(stop) = &mut self.stop else { return };
        let single_topic = matches!(&self.config.topics, Topics::List(list) if list.len() == 1);
        let mut done = Vec::new();
        for ((t, p), end) in stop.iter() {
            let next = self.position.get(t, *p).unwrap_or(0);
            let at_end = eof == Some(*p) && single_topic && end.present_at_start;
            if next >= end.offset || at_end {
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
        let Finished { changes, newest_ms, skipped } = self.builder.finish(&self.config)?;
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
        // that fails is reported (by the consumer context), never fatal.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!("table `{}`: could not commit offsets to the consumer group: {e}", self.config.table);
        }
    }

    /// Partitions not read yet — new ones (and, for a pattern, new topics) from their beginning,
    /// ones of the checkpoint that were not found at start from their checkpointed offset.
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
        let mut found = Vec::new();
        for (t, partitions) in &topics {
            for p in partitions {
                if self.assigned.contains(&(t.clone(), *p)) {
                    continue;
                }
                let offset = match self.position.get(t, *p) {
                    Some(o) => o,
                    None => match client::watermarks(&self.config, &self.consumer, t, *p) {
                        Ok((low, _)) => low,
                        Err(e) => {
                            tracing::warn!(
                                "table `{}`: cannot read the offsets of new partition {t}[{p}], trying again later: {e}",
                                self.config.table
                            );
                            continue;
                        }
                    },
                };
                tracing::info!("table `{}`: reading partition {t}[{p}] from offset {offset}", self.config.table);
                tpl.add_partition_offset(t, *p, Offset::Offset(offset))
                    .map_err(|e| kafka_error(&self.config, "cannot assign a new partition", e))?;
                found.push((t.clone(), *p, offset));
            }
        }
        if tpl.count() > 0 {
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| kafka_error(&self.config, "cannot assign a new partition", e))?;
            for (t, p, offset) in found {
                self.position.set(&t, p, offset);
                self.assigned.insert((t, p));
            }
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
) -> Result<BTreeMap<(String, i32), End>> {
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
        ends.insert(key, End { offset: end, present_at_start: end <= high });
    }
    Ok(ends)
}
