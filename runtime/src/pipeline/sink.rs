//! Writing records: one producer per pipeline, whose delivery reports feed
//! the at-least-once bookkeeping. An output the broker refuses turns into a
//! dead letter (`produce-failed`); a dead letter the broker refuses is
//! retried until it lands, holding its partition's offsets back meanwhile.
//! A dead letter that lands is recorded in the pipeline's status, with
//! where it landed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::batch::Ticket;
use super::control::{Control, ControlTx};
use crate::changelog::Change;
use crate::envelope::{Culprit, DeadLetter};
use crate::failure::{Failure, FailureKind};
use crate::kafka::writer::{RecordRef, send_waiting};
use crate::status::{Coordinates, PipelineStatus};

/// Which plugin produced a record, for headers and dead letters.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub pipeline: Arc<str>,
    pub plugin: Arc<str>,
    pub digest: Arc<str>,
}

/// What a delivery report is about: a record written for event `index` of
/// the ticket's batch.
pub(crate) struct Delivery {
    pub ticket: Ticket,
    pub index: usize,
    pub payload: Payload,
}

/// The record a delivery report is about, kept for what a failure needs.
pub(crate) enum Payload {
    /// An output; on failure, its event goes to the DLQ.
    Output(Arc<Origin>),
    /// A dead letter; on failure it is written again.
    DeadLetter(Arc<DeadLetter>),
    /// A state change; on failure it is written again.
    Change(Arc<Change>),
}

/// Routes delivery reports to the pipeline's bookkeeping.
pub(crate) struct SinkContext {
    control: ControlTx,
    status: Arc<PipelineStatus>,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        match result {
            Ok(message) => {
                if let Payload::DeadLetter(dead_letter) = &delivery.payload {
                    let dlq = Coordinates {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    self.status.dead_lettered(dead_letter, dlq);
                }
                self.control.release(delivery.ticket)
            }
            Err((error, _)) => {
                if let Some(control) = failure_control(*delivery, error) {
                    self.control.send(control);
                }
            }
        }
    }
}

/// The control message for a record that could not be written; `None`
/// only if the record's event is not in its batch, and then the dropped
/// ticket holds the batch's offsets back.
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
        Payload::Change(change) => Some(Control::ChangeFailed {
            ticket,
            change,
            error: error.to_string(),
        }),
    }
}

/// A pipeline's producer.
pub(crate) struct Sink {
    producer: ThreadedProducer<SinkContext>,
    control: ControlTx,
    dlq_topic: String,
    changelog: String,
}

impl Sink {
    pub fn new(
        config: &ClientConfig,
        control: ControlTx,
        topics: (String, String),
        status: Arc<PipelineStatus>,
    ) -> Result<Self, KafkaError> {
        let producer = config.create_with_context(SinkContext {
            control: control.clone(),
            status,
        })?;
        let (dlq_topic, changelog) = topics;
        Ok(Sink {
            producer,
            control,
            dlq_topic,
            changelog,
        })
    }

    /// Queues a state change of the ticket's batch for the changelog.
    pub fn send_change(&self, ticket: Ticket, change: Arc<Change>) {
        let record = change.record(&self.changelog);
        let delivery = Box::new(Delivery {
            ticket,
            index: 0,
            payload: Payload::Change(change.clone()),
        });
        self.send(record, delivery);
    }

    /// The producer, for transactions.
    pub fn producer(&self) -> &ThreadedProducer<SinkContext> {
        &self.producer
    }

    /// Queues a record. Waits while the producer's queue is full; any other
    /// refusal is handled like a failed delivery.
    pub fn send(&self, record: RecordRef<'_>, delivery: Box<Delivery>) {
        if let Err((error, refused)) = send_waiting(&self.producer, record.into_base(delivery))
            && let Some(control) = failure_control(*refused.delivery_opaque, &error)
        {
            self.control.send(control);
        }
    }

    /// Queues the dead letter of event `index` of the ticket's batch.
    pub fn send_dead_letter(&self, ticket: Ticket, index: usize, dl: Arc<DeadLetter>) {
        let record = dl.record(&self.dlq_topic);
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
        let deadline = Instant::now() + timeout;
        loop {
            let in_flight = self.producer.in_flight_count();
            if in_flight == 0 || Instant::now() >= deadline {
                return in_flight;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers;
    use crate::pipeline::batch::Batch;
    use crate::pipeline::chain::tests::event;
    use crate::pipeline::tracker::Tp;
    use rdkafka::error::RDKafkaErrorCode;

    fn ticket() -> Ticket {
        let tp = Tp {
            topic: "in".into(),
            partition: 0,
        };
        Batch::dispatch(tp, 1, 0, vec![event(5, "a"), event(6, "b")])
    }

    fn origin() -> Arc<Origin> {
        Arc::new(Origin {
            pipeline: "p".into(),
            plugin: "enrich".into(),
            digest: "sha256:ab".into(),
        })
    }

    fn header<'a>(dl: &'a DeadLetter, name: &str) -> Option<&'a str> {
        dl.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    const REFUSED: KafkaError =
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);

    #[test]
    fn a_failed_output_dead_letters_its_event_under_the_same_ticket() {
        let delivery = Delivery {
            ticket: ticket(),
            index: 1,
            payload: Payload::Output(origin()),
        };
        let Some(Control::OutputFailed {
            ticket,
            index,
            dead_letter,
        }) = failure_control(delivery, &REFUSED)
        else {
            panic!("expected OutputFailed");
        };
        assert_eq!((ticket.batch().seq, index), (0, 1));
        assert_eq!(dead_letter.value.as_deref(), Some(&b"b"[..]));
        assert_eq!(header(&dead_letter, headers::KIND), Some("produce-failed"));
        assert_eq!(header(&dead_letter, headers::PLUGIN), Some("enrich"));
        assert_eq!(header(&dead_letter, headers::DIGEST), Some("sha256:ab"));
        assert_eq!(header(&dead_letter, headers::SOURCE_OFFSET), Some("6"));
        assert!(
            header(&dead_letter, headers::MESSAGE).is_some_and(|m| m.contains("too large")),
            "{dead_letter:?}"
        );
    }

    #[test]
    fn a_failed_dead_letter_is_handed_back_to_be_written_again() {
        let dl = Arc::new(DeadLetter {
            key: None,
            value: Some(b"x".to_vec()),
            headers: Vec::new(),
            timestamp_ms: None,
        });
        let delivery = Delivery {
            ticket: ticket(),
            index: 0,
            payload: Payload::DeadLetter(dl.clone()),
        };
        match failure_control(delivery, &REFUSED) {
            Some(Control::DeadLetterFailed {
                index,
                dead_letter,
                error,
                ..
            }) => {
                assert_eq!(index, 0);
                assert!(Arc::ptr_eq(&dead_letter, &dl));
                assert!(error.contains("too large"), "{error}");
            }
            other => panic!("expected DeadLetterFailed, got {other:?}"),
        }
    }

    #[test]
    fn a_record_of_no_event_holds_its_batch_back() {
        let worker = ticket();
        let delivery = Delivery {
            ticket: worker.another(),
            index: 9,
            payload: Payload::Output(origin()),
        };
        assert!(failure_control(delivery, &REFUSED).is_none());
        assert_eq!(worker.release(), None, "the dropped ticket is still owed");
    }
}
