//! Producing records: the one way Sluice queues a record
//! ([`RecordRef`] and [`send_waiting`], used by the pipelines' sink too),
//! and a [`Writer`] that learns where each record it wrote landed, for the
//! demo's orders and the inputs of tests and benchmarks.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::IntoOpaque;

/// A record to write, borrowing its parts.
#[derive(Debug)]
pub struct RecordRef<'a> {
    pub topic: &'a str,
    /// Where the partitioner puts it when `None`.
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Option<OwnedHeaders>,
    pub timestamp_ms: Option<i64>,
}

impl<'a> RecordRef<'a> {
    /// An empty record (no key, a tombstone) for `topic`.
    pub fn to(topic: &'a str) -> Self {
        RecordRef {
            topic,
            partition: None,
            key: None,
            value: None,
            headers: None,
            timestamp_ms: None,
        }
    }

    /// The rdkafka record, carrying `opaque` to its delivery report.
    pub fn into_base<D: IntoOpaque>(self, opaque: D) -> BaseRecord<'a, [u8], [u8], D> {
        let mut base = BaseRecord::with_opaque_to(self.topic, opaque);
        base.partition = self.partition;
        base.key = self.key;
        base.payload = self.value;
        base.headers = self.headers;
        base.timestamp = self.timestamp_ms;
        base
    }
}

/// Builds Kafka headers from name/value pairs; `None` for none, which
/// spares librdkafka an empty header list per record.
pub fn owned_headers<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<OwnedHeaders> {
    let mut pairs = pairs.peekable();
    pairs.peek()?;
    let (lower, upper) = pairs.size_hint();
    let mut headers = OwnedHeaders::new_with_capacity(upper.unwrap_or(lower));
    for (key, value) in pairs {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    Some(headers)
}

/// A record the producer refused, and why.
pub type Refused<'a, D> = (KafkaError, BaseRecord<'a, [u8], [u8], D>);

/// Queues `record`, waiting while the producer's queue is full. Any other
/// refusal is returned with the record, so its delivery opaque can be
/// handled like a failed delivery.
#[allow(clippy::result_large_err)] // rdkafka's own shape: the record comes back.
pub fn send_waiting<'a, C>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'a, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), Refused<'a, C::DeliveryOpaque>>
where
    C: ProducerContext + 'static,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(refused) => return Err(refused),
        }
    }
}

/// Where the broker put a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// Why [`Writer::flush`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Record `index` (in the order sent) was not written.
    #[error("record {index} was not written: {message}")]
    Failed { index: usize, message: String },
    /// Not every record was acknowledged in time.
    #[error("{missing} of {sent} records not acknowledged within {timeout:?}")]
    Timeout {
        missing: usize,
        sent: usize,
        timeout: Duration,
    },
}

/// Delivery reports by the index of the record.
#[derive(Default)]
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
        let mut slots = self.slots.lock();
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        slots[index] = Some(outcome);
    }
}

/// A producer that remembers where every record it wrote landed.
pub struct Writer {
    producer: ThreadedProducer<Reports>,
    sent: usize,
}

impl Writer {
    /// A writer with `config` (which names the brokers).
    pub fn new(config: &ClientConfig) -> Result<Writer, KafkaError> {
        Ok(Writer {
            producer: config.create_with_context(Reports::default())?,
            sent: 0,
        })
    }

    /// A writer to `brokers` with `acks=all`, a short linger, and
    /// `settings` on top.
    pub fn to(brokers: &str, settings: &[(&str, &str)]) -> Result<Writer, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("linger.ms", "5");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        Writer::new(&config)
    }

    /// Queues a record, waiting while the queue is full; returns its index
    /// for [`Writer::flush`].
    pub fn send(&mut self, record: RecordRef<'_>) -> Result<usize, KafkaError> {
        let index = self.sent;
        send_waiting(&self.producer, record.into_base(index)).map_err(|(e, _)| e)?;
        self.sent += 1;
        Ok(index)
    }

    /// Records queued so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Waits until every record sent so far is acknowledged and returns
    /// where each landed, by index.
    pub fn flush(&self, timeout: Duration) -> Result<Vec<Delivered>, WriteError> {
        // rdkafka's `flush` polls for reports itself, competing with the
        // producer's own thread and sleeping out its slices: wait for the
        // reports instead.
        let deadline = Instant::now() + timeout;
        loop {
            {
                let slots = self.producer.context().slots.lock();
                let done = slots.iter().filter(|s| s.is_some()).count();
                if done == self.sent {
                    return slots
                        .iter()
                        .enumerate()
                        .map(|(index, slot)| match slot {
                            Some(Ok(delivered)) => Ok(*delivered),
                            Some(Err(message)) => Err(WriteError::Failed {
                                index,
                                message: message.clone(),
                            }),
                            None => Err(WriteError::Failed {
                                index,
                                message: "no delivery report".into(),
                            }),
                        })
                        .collect();
                }
                if Instant::now() >= deadline {
                    return Err(WriteError::Timeout {
                        missing: self.sent - done,
                        sent: self.sent,
                        timeout,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
