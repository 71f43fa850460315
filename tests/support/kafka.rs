//! Kafka clients for end-to-end tests (rdkafka, the bundled librdkafka):
//! producing with delivery reports, reading topics back from the beginning,
//! and reading a group's committed offsets.
//!
//! ```ignore
//! let delivered = kafka::produce(&bootstrap, "orders", &records);   // [(partition, offset)]
//! let out = kafka::read_all(&bootstrap, "orders-enriched", 100, Duration::from_secs(30));
//! let mut reader = kafka::Reader::new(&bootstrap, &["out", "dlq"]);
//! reader.wait_count(1000, Duration::from_secs(30));
//! ```
//!
//! tansu's high watermarks are unreliable (see `tests/support/README.md`),
//! so nothing here relies on them: readers count records or wait for an
//! idle period.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// One record read back from a topic; key, value and header values decoded
/// as UTF-8 (invalid bytes replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// The value of the last header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value parsed as JSON; panics (with the record) if it is not.
    pub fn json(&self) -> serde_json::Value {
        let value = self
            .value
            .as_deref()
            .unwrap_or_else(|| panic!("record has no value: {self:?}"));
        serde_json::from_str(value)
            .unwrap_or_else(|e| panic!("record value is not JSON ({e}): {self:?}"))
    }
}

/// Where the broker put a produced record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// Collects delivery reports by the index of the record.
struct Reports {
    slots: Mutex<Vec<Option<Result<Delivered, String>>>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => Ok(Delivered {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.to_string()),
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        slots[index] = Some(outcome);
    }
}

/// A producer that remembers where every record it sent landed.
pub struct TestProducer {
    producer: ThreadedProducer<Reports>,
    sent: usize,
}

impl TestProducer {
    /// A producer with `acks=all` and a short linger.
    pub fn new(bootstrap: &str) -> TestProducer {
        TestProducer::with_settings(bootstrap, &[])
    }

    /// A producer with `acks=all`, a short linger and librdkafka `settings`
    /// on top (e.g. `("enable.idempotence", "true")`).
    pub fn with_settings(bootstrap: &str, settings: &[(&str, &str)]) -> TestProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let producer = config
            .create_with_context(Reports {
                slots: Mutex::new(Vec::new()),
            })
            .expect("create the test producer");
        TestProducer { producer, sent: 0 }
    }

    /// Queues one record; returns its index for [`TestProducer::flush`].
    pub fn send(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
        self.send_with_headers(topic, key, value, &[])
    }

    /// Queues one record with headers; returns its index.
    pub fn send_with_headers(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> usize {
        self.send_to(topic, None, key, value, headers)
    }

    /// Queues one record with headers to `partition`, or where the
    /// partitioner puts it if `None`; returns its index.
    pub fn send_to(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> usize {
        let index = self.sent;
        self.sent += 1;
        let mut record = BaseRecord::with_opaque_to(topic, index);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        if !headers.is_empty() {
            let mut owned = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in headers {
                owned = owned.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            record = record.headers(owned);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return index,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => panic!("cannot queue a record for `{topic}`: {e}"),
            }
        }
    }

    /// Waits until every record sent so far is acknowledged and returns
    /// where each landed, by index; panics if any delivery failed.
    pub fn flush(&self) -> Vec<Delivered> {
        self.producer
            .flush(Duration::from_secs(60))
            .expect("flush the test producer");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let slots = self
                    .producer
                    .context()
                    .slots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if slots.len() == self.sent && slots.iter().all(Option::is_some) {
                    return slots
                        .iter()
                        .enumerate()
                        .map(|(i, s)| match s {
                            Some(Ok(d)) => *d,
                            Some(Err(e)) => panic!("record {i} was not delivered: {e}"),
                            None => unreachable!(),
                        })
                        .collect();
                }
            }
            assert!(
                Instant::now() < deadline,
                "delivery reports missing after flush ({} sent)",
                self.sent
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Produces `(key, value)` records to `topic` and returns where each landed,
/// in the same order.
pub fn produce(bootstrap: &str, topic: &str, records: &[(String, String)]) -> Vec<Delivered> {
    let mut producer = TestProducer::new(bootstrap);
    for (key, value) in records {
        producer.send(topic, Some(key.as_bytes()), Some(value.as_bytes()));
    }
    producer.flush()
}

/// Reads whole topics from the beginning (every partition assigned
/// directly, no consumer group) and keeps what it read.
pub struct Reader {
    consumer: BaseConsumer,
    records: Vec<Record>,
}

impl Reader {
    /// Assigns every partition of `topics` from the beginning. The topics
    /// must exist.
    pub fn new(bootstrap: &str, topics: &[&str]) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "sluice-e2e-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .expect("create the test reader");
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            for partition in 0..partition_count(&consumer, topic) {
                tpl.add_partition_offset(topic, partition, Offset::Beginning)
                    .expect("add a partition");
            }
        }
        consumer.assign(&tpl).expect("assign the partitions");
        Reader {
            consumer,
            records: Vec::new(),
        }
    }

    /// Everything read so far, in the order it arrived.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Everything read so far from `topic`.
    pub fn of(&self, topic: &str) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| r.topic == topic)
            .cloned()
            .collect()
    }

    /// Reads what arrives within `duration`; returns how many records.
    pub fn poll_for(&mut self, duration: Duration) -> usize {
        let before = self.records.len();
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.poll_once(left.min(Duration::from_millis(100)));
        }
        self.records.len() - before
    }

    /// Reads until `done` holds for what was read, or `timeout` passes;
    /// returns whether `done` held.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&[Record]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(&self.records) {
            if Instant::now() >= deadline {
                return false;
            }
            self.poll_once(Duration::from_millis(100));
        }
        true
    }

    /// Reads until at least `count` records in all were read; returns
    /// whether they were within `timeout`.
    pub fn wait_count(&mut self, count: usize, timeout: Duration) -> bool {
        self.read_until(timeout, |records| records.len() >= count)
    }

    /// Reads until at least `count` distinct values in all were read (a
    /// duplicate counts once); returns whether they were within `timeout`.
    pub fn wait_distinct_values(&mut self, count: usize, timeout: Duration) -> bool {
        self.read_until(timeout, |records| {
            records
                .iter()
                .filter_map(|r| r.value.as_deref())
                .collect::<BTreeSet<_>>()
                .len()
                >= count
        })
    }

    /// Reads until nothing has arrived for `idle` (or `timeout` in all).
    pub fn settle(&mut self, idle: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = Instant::now();
        while last.elapsed() < idle && Instant::now() < deadline {
            if self.poll_once(Duration::from_millis(100)) {
                last = Instant::now();
            }
        }
    }

    /// Serves one poll; returns whether a record arrived. All records
    /// available right away are taken.
    fn poll_once(&mut self, wait: Duration) -> bool {
        let mut got = false;
        let mut wait = wait;
        while let Some(message) = self.consumer.poll(wait) {
            wait = Duration::ZERO;
            let message = match message {
                Ok(m) => m,
                // Transient (e.g. a partition not ready yet); keep going.
                Err(_) => continue,
            };
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            let headers = message
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_owned(), v.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.records.push(Record {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                key: text(message.key()),
                value: text(message.payload()),
                headers,
            });
            got = true;
        }
        got
    }
}

/// Reads `topic` from the beginning until `expected` records arrived (or
/// `timeout` passed), then for a short while longer so that extra records
/// (duplicates) show up too.
pub fn read_all(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let mut reader = Reader::new(bootstrap, &[topic]);
    reader.wait_count(expected, timeout);
    reader.settle(Duration::from_millis(500), Duration::from_secs(5));
    reader.records
}

/// The partition count of an existing topic.
pub fn partition_count<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
            && let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
        {
            return t.partitions().len() as i32;
        }
        assert!(
            Instant::now() < deadline,
            "topic `{topic}` has no partitions in the metadata (create it first)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The offsets `group` committed on each partition of `topic`; `None` where
/// nothing is committed.
pub fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create the offsets reader");
    let mut tpl = TopicPartitionList::new();
    for partition in 0..partition_count(&consumer, topic) {
        tpl.add_partition(topic, partition);
    }
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("cannot read the offsets of group `{group}`: {e}"));
    offsets
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect()
}

/// For every partition that received records, the offset a consumer group
/// must have committed to have processed them all (last offset + 1).
pub fn ends(delivered: &[Delivered]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for d in delivered {
        let end = ends.entry(d.partition).or_insert(0);
        *end = (*end).max(d.offset + 1);
    }
    ends
}
