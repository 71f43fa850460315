//! Kafka for tests: the library's own client tools (`sluice::kafka`) in the
//! shape tests want. Failures panic with what went wrong; records read back
//! are text (invalid UTF-8 replaced); readers keep what they read and wait
//! for counts.
//!
//! ```ignore
//! let delivered = kafka::produce(&bootstrap, "orders", &records);   // [Delivered]
//! let out = kafka::read_all(&bootstrap, "orders-enriched", 100, Duration::from_secs(30));
//! let mut reader = kafka::Reader::new(&bootstrap, &["out", "dlq"]);
//! reader.wait_count(1000, Duration::from_secs(30));
//! ```
//!
//! tansu's high watermarks are unreliable (see `tests/kit/README.md`), so
//! nothing here relies on them: readers count records or wait for an idle
//! period.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice::kafka::writer::owned_headers;
use sluice::kafka::{GroupOffsets, RecordRef, TopicReader, Writer};
use sluice::plugin::Event;

pub use sluice::kafka::Delivered;

/// How long a topic may take to show up in the metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// One record read back from a topic; key, value and header values as
/// UTF-8 text (invalid bytes replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl From<Event> for Record {
    fn from(event: Event) -> Self {
        let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
        Record {
            topic: event.topic,
            partition: event.partition,
            offset: event.offset,
            key: text(event.key),
            value: text(event.value),
            headers: event
                .headers
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
        }
    }
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

    /// The value parsed as JSON with every number as a float (see
    /// [`numbers_as_floats`]); panics if it is not JSON.
    pub fn json_value(&self) -> serde_json::Value {
        numbers_as_floats(self.json())
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

/// A producer that remembers where every record it sent landed.
pub struct TestProducer {
    writer: Writer,
}

impl TestProducer {
    /// A producer with `acks=all` and a short linger.
    pub fn new(bootstrap: &str) -> TestProducer {
        TestProducer::with_settings(bootstrap, &[])
    }

    /// A producer with `acks=all`, a short linger and librdkafka `settings`
    /// on top (e.g. `("enable.idempotence", "true")`).
    pub fn with_settings(bootstrap: &str, settings: &[(&str, &str)]) -> TestProducer {
        let mut all = vec![("message.timeout.ms", "30000")];
        all.extend_from_slice(settings);
        let writer =
            Writer::to(bootstrap, &all).unwrap_or_else(|e| panic!("create the test producer: {e}"));
        TestProducer { writer }
    }

    /// Queues one record; returns its index for [`TestProducer::flush`].
    pub fn send(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
        self.send_to(topic, None, key, value, &[])
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
        let record = RecordRef {
            partition,
            key,
            value,
            headers: owned_headers(headers.iter().map(|(k, v)| (*k, v.as_bytes()))),
            ..RecordRef::to(topic)
        };
        self.writer
            .send(record)
            .unwrap_or_else(|e| panic!("cannot queue a record for `{topic}`: {e}"))
    }

    /// Waits until every record sent so far is acknowledged and returns
    /// where each landed, by index; panics if any delivery failed.
    pub fn flush(&self) -> Vec<Delivered> {
        self.writer
            .flush(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("test producer: {e}"))
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
    reader: TopicReader,
    records: Vec<Record>,
}

impl Reader {
    /// Assigns every partition of `topics` from the beginning. The topics
    /// must exist.
    pub fn new(bootstrap: &str, topics: &[&str]) -> Reader {
        Reader::with_settings(bootstrap, topics, &[])
    }

    /// A reader that also sees what open and aborted transactions wrote
    /// (`isolation.level = read_uncommitted`; the default reads committed
    /// records only).
    pub fn uncommitted(bootstrap: &str, topics: &[&str]) -> Reader {
        Reader::with_settings(
            bootstrap,
            topics,
            &[("isolation.level", "read_uncommitted")],
        )
    }

    fn with_settings(bootstrap: &str, topics: &[&str], settings: &[(&str, &str)]) -> Reader {
        let reader = TopicReader::with_settings(bootstrap, topics, METADATA_TIMEOUT, settings)
            .unwrap_or_else(|e| panic!("create the test reader: {e}"));
        Reader {
            reader,
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
        while let Some(record) = self.reader.poll(wait) {
            wait = Duration::ZERO;
            // Transient errors (a partition not ready yet) are skipped.
            if let Ok(event) = record {
                self.records.push(event.into());
                got = true;
            }
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

/// The offsets `group` committed on each partition of `topic`; `None` where
/// nothing is committed.
pub fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    GroupOffsets::new(bootstrap, group)
        .map_err(|e| e.to_string())
        .and_then(|g| {
            g.committed_all(topic, METADATA_TIMEOUT)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| panic!("cannot read the offsets of group `{group}`: {e}"))
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

/// `value` with every number as a float, so that JSON from different
/// languages compares by value: JavaScript writes `13` where Rust writes
/// `13.0`.
pub fn numbers_as_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n), Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}
