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

use super::batch::Ticket;
use super::tracker::Tp;
use crate::dlq::{Culprit, DeadLetter};
use crate::plugin::{Failure, FailureKind};

/// Header naming the plugin whose output a record is.
pub const PLUGIN_HEADER: &str = "sluice.plugin";
/// Header with the digest of the plugin version that produced a record.
pub const DIGEST_HEADER: &str = "sluice.plugin.digest";

/// News for the poll thread, from workers and delivery reports.
#[derive(Debug)]
pub enum Control {
    /// Every record of batch `seq` of `tp` is written (see
    /// [`Ticket::release`]).
    Done { tp: Tp, generation: u64, seq: u64 },
    /// An output of event `index` could not be written; the event must be
    /// dead-lettered instead, under the output's ticket.
    OutputFailed {
        ticket: Ticket,
        index: usize,
        dead_letter: Arc<DeadLetter>,
    },
    /// The dead letter of event `index` could not be written; try again.
    DeadLetterFailed {
        ticket: Ticket,
        index: usize,
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

/// What a delivery report is about: a record written for event `index` of
/// the ticket's batch.
pub struct Delivery {
    pub ticket: Ticket,
    pub index: usize,
    pub payload: Payload,
}

/// The record a delivery report is about, kept for what a failure needs.
pub enum Payload {
    /// An output; on failure, its event goes to the DLQ.
    Output(Arc<Origin>),
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
        match result {
            Ok(_) => delivery.ticket.release(&self.control),
            // The receiver only goes away when the pipeline is gone, and
            // then nobody needs the report.
            Err((error, _)) => {
                if let Some(control) = failure_control(*delivery, error) {
                    let _ = self.control.send(control);
                }
            }
        }
    }
}

/// The control message for a record that could not be written.
fn failure_control(delivery: Delivery, error: &KafkaError) -> Option<Control> {
    let Delivery {
        ticket,
        index,
        payload,
    } = delivery;
    match payload {
        Payload::Output(by) => {
            let failure = Failure::new(
                FailureKind::ProduceFailed,
                format!("cannot write output: {error}"),
            );
            let culprit = Culprit {
                pipeline: &by.pipeline,
                plugin: &by.plugin,
                digest: &by.digest,
            };
            // Indices come from the batch itself, so the event is there;
            // were it not, the dropped ticket holds the offset back.
            let event = ticket.event(index)?;
            let dead_letter = Arc::new(DeadLetter::new(event, &failure, &culprit, 1));
            Some(Control::OutputFailed {
                ticket,
                index,
                dead_letter,
            })
        }
        Payload::DeadLetter(dead_letter) => Some(Control::DeadLetterFailed {
            ticket,
            index,
            dead_letter,
            error: error.to_string(),
        }),
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
    pub headers: Option<OwnedHeaders>,
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
        let mut base = BaseRecord::with_opaque_to(record.topic, delivery);
        if let Some(headers) = record.headers {
            base = base.headers(headers);
        }
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
                    if let Some(control) = failure_control(*back.delivery_opaque, &error) {
                        let _ = self.control.send(control);
                    }
                    return;
                }
            }
        }
    }

    /// Queues the dead letter of event `index` of the ticket's batch.
    pub fn send_dead_letter(&self, ticket: Ticket, index: usize, dl: Arc<DeadLetter>) {
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
            ticket,
            index,
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
