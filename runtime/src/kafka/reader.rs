//! Reading topics as they are: every partition assigned from the
//! beginning, no consumer group joined and nothing committed, so reading
//! disturbs no one. The demo reads its results back this way, and so do
//! the tests. Also the one place a Kafka message becomes the [`Event`] a
//! plugin sees.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::plugin::Event;

/// How long a read to the end may go without a record from any unfinished
/// partition before those count as at their end.
pub const END_IDLE: Duration = Duration::from_secs(2);

/// Where each partition of a read to the end stands. Kafka's high
/// watermark says where a partition ends, but tansu's (and other young
/// brokers') is wrong, so a partition is at its end when
/// - the client reports its end after at least one record of it was read
///   (an end before any record is not trusted: on tansu it can come from a
///   wrong watermark in the middle of a batch), or
/// - nothing arrived from any unfinished partition for the idle time, or
/// - the reader stopped it.
#[derive(Debug)]
pub struct PartitionEnds {
    open: BTreeSet<i32>,
    read_from: BTreeSet<i32>,
    last_record: Instant,
    idle: Duration,
}

impl PartitionEnds {
    /// `partitions`, none at its end yet.
    pub fn new(partitions: impl IntoIterator<Item = i32>, idle: Duration) -> Self {
        PartitionEnds {
            open: partitions.into_iter().collect(),
            read_from: BTreeSet::new(),
            last_record: Instant::now(),
            idle,
        }
    }

    /// Whether some partition is not at its end and the read has not gone
    /// quiet.
    pub fn reading(&self) -> bool {
        !self.open.is_empty() && self.last_record.elapsed() < self.idle
    }

    /// The partitions not at their end.
    pub fn open(&self) -> &BTreeSet<i32> {
        &self.open
    }

    /// The client reported the end of `partition`.
    pub fn end_reported(&mut self, partition: i32) {
        if self.read_from.contains(&partition) {
            self.open.remove(&partition);
        }
    }

    /// A record of `partition` arrived; whether to take it (`false` for a
    /// partition already at its end, fetched before it was stopped).
    pub fn record(&mut self, partition: i32) -> bool {
        if !self.open.contains(&partition) {
            return false;
        }
        self.last_record = Instant::now();
        self.read_from.insert(partition);
        true
    }

    /// Ends `partition` here.
    pub fn stop(&mut self, partition: i32) {
        self.open.remove(&partition);
    }
}

/// The context of a consumer that reads partitions to their end: an end
/// of partition is news the reader acts on, not an error to log.
#[derive(Debug, Default, Clone, Copy)]
pub struct EndReaderContext;

impl rdkafka::ClientContext for EndReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_)
            | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF) => {}
            error => tracing::error!(%error, reason, "librdkafka"),
        }
    }
}

impl ConsumerContext for EndReaderContext {}

/// Copies a Kafka message into the event a plugin sees.
pub fn event_of(message: &BorrowedMessage<'_>) -> Event {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Event {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Why a topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot create a reader: {0}")]
    Client(#[source] KafkaError),
    #[error("topic `{topic}` has no partitions in the metadata after {waited:?}: {reason}")]
    NoSuchTopic {
        topic: String,
        waited: Duration,
        reason: String,
    },
    #[error("cannot assign the partitions of {topics:?}: {error}")]
    Assign {
        topics: Vec<String>,
        error: KafkaError,
    },
}

/// Reads whole topics from the beginning.
pub struct TopicReader {
    consumer: BaseConsumer,
}

impl TopicReader {
    /// Assigns every partition of `topics` from its beginning, waiting up
    /// to `timeout` for each topic to appear in the metadata.
    pub fn new(brokers: &str, topics: &[&str], timeout: Duration) -> Result<Self, ReadError> {
        Self::with_settings(brokers, topics, timeout, &[])
    }

    /// Like [`TopicReader::new`], with more client properties (e.g.
    /// `isolation.level`; librdkafka's default is `read_committed`).
    pub fn with_settings(
        brokers: &str,
        topics: &[&str],
        timeout: Duration,
        settings: &[(&str, &str)],
    ) -> Result<Self, ReadError> {
        let mut config = ClientConfig::new();
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let consumer: BaseConsumer = config
            .set("bootstrap.servers", brokers)
            // librdkafka wants a group for a consumer; it is never joined.
            .set("group.id", "sluice-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .map_err(ReadError::Client)?;
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            for partition in 0..partition_count(&consumer, topic, timeout)? {
                // Only fails for a name librdkafka cannot hold, which the
                // metadata just returned.
                let _ = tpl.add_partition_offset(topic, partition, Offset::Beginning);
            }
        }
        consumer.assign(&tpl).map_err(|source| ReadError::Assign {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            error: source,
        })?;
        Ok(TopicReader { consumer })
    }

    /// The next record, waiting up to `wait`; `None` if none came.
    pub fn poll(&self, wait: Duration) -> Option<Result<Event, KafkaError>> {
        self.consumer
            .poll(wait)
            .map(|message| message.map(|m| event_of(&m)))
    }
}

/// The partition count of an existing topic, waiting up to `timeout` for
/// it to appear in the metadata.
pub fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, ReadError> {
    let deadline = Instant::now() + timeout;
    loop {
        let reason = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    return Ok(t.partitions().len() as i32);
                }
                Some(t) => match t.error() {
                    Some(e) => format!("{e:?}"),
                    None => "no partitions".to_owned(),
                },
                None => "not in the metadata".to_owned(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(ReadError::NoSuchTopic {
                topic: topic.to_owned(),
                waited: timeout,
                reason,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
