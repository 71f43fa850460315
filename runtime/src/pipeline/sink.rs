//! Writing records: one producer per pipeline, whose delivery reports feed
//! the at-least-once bookkeeping. An output the broker refuses turns into a
//! dead letter (`produce-failed`); a dead letter the broker refuses is
//! retried until it lands, holding its partition's offsets back meanwhile.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::tracker::Tp;
use crate::dlq::{Culprit, DeadLetter};
use crate::plugin::{Event, Failure, FailureKind};

/// Header naming the plugin whose output a record is.
pub const PLUGIN_HEADER: &str = "sluice.plugin";
/// Header with the digest of the plugin version that produced a record.
pub const DIGEST_HEADER: &str = "sluice.plugin.digest";

/// News for the pipeline's bookkeeping, from workers and delivery reports.
#[derive(Debug)]
pub enum Control {
    /// A worker finished a batch: per offset, how many records it wrote.
    Processed {
        tp: Tp,
        generation: u64,
        counts: Vec<(i64, u32)>,
    },
    /// The broker acknowledged one record of the delivery's offset. The
    /// delivery itself travels back so that the poll thread, which
    /// allocated the events, also frees them: freeing on the producer's
    /// thread defeated the allocator's per-thread caches.
    Delivered(Box<Delivery>),
    /// An output of `offset` could not be written; its event must be
    /// dead-lettered instead.
    OutputFailed {
        tp: Tp,
        generation: u64,
        offset: i64,
        dead_letter: Arc<DeadLetter>,
    },
    /// A dead letter of `offset` could not be written; try again.
    DeadLetterFailed {
        tp: Tp,
        generation: u64,
        offset: i64,
        dead_letter: Arc<DeadLetter>,
        error: String,
    },
}

/// Which plugin produced a record, for headers and dead letters.
#[derive(Debug, Clone)]
pub struct Origin {
    pub pipeline: Arc<str>,
    pub plugin: Arc<str>,
    pub digest: Arc<str>,
}

/// What a delivery report is about.
pub struct Delivery {
    pub tp: Tp,
    pub generation: u64,
    pub offset: i64,
    pub payload: Payload,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("tp", &self.tp)
            .field("generation", &self.generation)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// An input event as the records it led to keep it: its batch, shared by
/// all of the batch's records (one allocation per batch, not per record),
/// and its place in it.
pub struct BatchEvent {
    events: Arc<Vec<Event>>,
    index: usize,
}

impl BatchEvent {
    /// Event `index` of `events`, or `None` if there is none.
    pub fn new(events: &Arc<Vec<Event>>, index: usize) -> Option<Self> {
        (index < events.len()).then(|| BatchEvent {
            events: events.clone(),
            index,
        })
    }

    pub fn event(&self) -> &Event {
        // In range: checked in `new`, and the batch never changes.
        &self.events[self.index]
    }
}

/// The record a delivery report is about, kept for what a failure needs.
pub enum Payload {
    /// An output of `event`; on failure, `event` goes to the DLQ.
    Output { event: BatchEvent, by: Arc<Origin> },
    /// A dead letter; on failure it is written again.
    DeadLetter(Arc<DeadLetter>),
}

/// Routes delivery reports to the pipeline's bookkeeping.
pub struct SinkContext {
    control: SyncSender<Control>,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        let control = match result {
            Ok(_) => Control::Delivered(delivery),
            Err((error, _)) => failure_control(*delivery, error),
        };
        // The receiver only goes away when the pipeline is gone, and then
        // nobody needs the report.
        let _ = self.control.send(control);
    }
}

/// The control message for a record that could not be written.
fn failure_control(delivery: Delivery, error: &KafkaError) -> Control {
    match delivery.payload {
        Payload::Output { event, by } => {
            let failure = Failure::new(
                FailureKind::ProduceFailed,
                format!("cannot write output: {error}"),
            );
            let culprit = Culprit {
                pipeline: &by.pipeline,
                plugin: &by.plugin,
                digest: &by.digest,
            };
            Control::OutputFailed {
                tp: delivery.tp,
                generation: delivery.generation,
                offset: delivery.offset,
                dead_letter: Arc::new(DeadLetter::new(event.event(), &failure, &culprit, 1)),
            }
        }
        Payload::DeadLetter(dead_letter) => Control::DeadLetterFailed {
            tp: delivery.tp,
            generation: delivery.generation,
            offset: delivery.offset,
            dead_letter,
            error: error.to_string(),
        },
    }
}

/// A pipeline's producer.
pub struct Sink {
    producer: ThreadedProducer<SinkContext>,
    control: SyncSender<Control>,
    dlq_topic: String,
}

/// A record to write, borrowing its parts.
pub struct RecordRef<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: OwnedHeaders,
    pub timestamp_ms: Option<i64>,
}

impl Sink {
    pub fn new(
        config: &ClientConfig,
        control: SyncSender<Control>,
        dlq_topic: String,
    ) -> Result<Self, KafkaError> {
        let producer = config.create_with_context(SinkContext {
            control: control.clone(),
        })?;
        Ok(Sink {
            producer,
            control,
            dlq_topic,
        })
    }

    /// Queues a record. Waits while the producer's queue is full; any other
    /// refusal is handled like a failed delivery.
    pub fn send(&self, record: RecordRef<'_>, delivery: Box<Delivery>) {
        let mut base = BaseRecord::with_opaque_to(record.topic, delivery).headers(record.headers);
        if let Some(key) = record.key {
            base = base.key(key);
        }
        if let Some(value) = record.value {
            base = base.payload(value);
        }
        if let Some(ts) = record.timestamp_ms {
            base = base.timestamp(ts);
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, back)) => {
                    let _ = self
                        .control
                        .send(failure_control(*back.delivery_opaque, &error));
                    return;
                }
            }
        }
    }

    /// Queues a dead letter for `offset` of `tp`.
    pub fn send_dead_letter(&self, tp: Tp, generation: u64, offset: i64, dl: Arc<DeadLetter>) {
        let headers = owned_headers(dl.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        let record = RecordRef {
            topic: &self.dlq_topic,
            key: dl.key.as_deref(),
            value: dl.value.as_deref(),
            headers,
            timestamp_ms: dl.timestamp_ms,
        };
        // The record borrows from `dl`, which the delivery keeps alive too.
        let delivery = Box::new(Delivery {
            tp,
            generation,
            offset,
            payload: Payload::DeadLetter(dl.clone()),
        });
        self.send(record, delivery);
    }

    /// Waits up to `timeout` for queued records to be acknowledged; returns
    /// how many are still in flight.
    pub fn flush(&self, timeout: Duration) -> i32 {
        // rdkafka's `flush` polls for delivery reports itself, in slices of
        // up to 100 ms; the `ThreadedProducer`'s own thread usually takes
        // them first, so every call slept out its whole slice. That thread
        // serves the reports anyway: watch the count instead.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let in_flight = self.producer.in_flight_count();
            if in_flight == 0 || std::time::Instant::now() >= deadline {
                return in_flight;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Builds Kafka headers from name/value pairs.
pub fn owned_headers<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> OwnedHeaders {
    let (lower, _) = pairs.size_hint();
    let mut headers = OwnedHeaders::new_with_capacity(lower);
    for (key, value) in pairs {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}
