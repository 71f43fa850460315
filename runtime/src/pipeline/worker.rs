//! A pipeline worker: a thread that owns one instance of every chain step,
//! takes batches of events (all from one partition, in offset order),
//! processes them, retries what may pass, and hands outputs and dead
//! letters to the sink. Partitions map to workers by hash, so one
//! partition's batches are always handled in order by the same worker.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use rdkafka::message::OwnedHeaders;

use super::batch::Ticket;
use super::chain::{Chain, ChainOutcome, StepFailure};
use super::sink::{
    Control, DIGEST_HEADER, Delivery, Origin, PLUGIN_HEADER, Payload, RecordRef, Sink,
    owned_headers,
};
use crate::config::RetryPolicy;
use crate::dlq::{Culprit, DeadLetter};
use crate::plugin::{Event, Failure, FailureKind};

/// What a worker is told to do.
pub enum WorkerMsg {
    /// Process a batch (events of one partition, in offset order).
    Batch(Ticket),
    /// Use these plugin instances from the next batch on (hot reload).
    Swap(Chain),
    /// Finish: everything before this in the inbox has been handled.
    Stop,
}

/// What every worker of a pipeline shares.
pub struct WorkerShared {
    pub pipeline: Arc<str>,
    pub output_topic: String,
    pub allowed_outputs: BTreeSet<String>,
    /// Whether outputs carry the origin headers.
    pub origin_headers: bool,
    pub retry: RetryPolicy,
    pub sink: Arc<Sink>,
    /// Where the worker's ticket of each batch is released to.
    pub control: SyncSender<Control>,
    pub metrics: crate::metrics::PipelineMetrics,
}

impl WorkerShared {
    fn allows(&self, topic: &str) -> bool {
        topic == self.output_topic || self.allowed_outputs.contains(topic)
    }
}

/// The worker thread's body: runs until told to stop or its channel
/// closes (shutdown drains whatever was queued first).
pub fn run(mut chain: Chain, inbox: Receiver<WorkerMsg>, shared: Arc<WorkerShared>) {
    while let Ok(msg) = inbox.recv() {
        match msg {
            WorkerMsg::Batch(ticket) => {
                handle(&mut chain, &ticket, &shared);
                // The worker's own ticket: the batch is done once this and
                // every record's ticket are released.
                ticket.release(&shared.control);
            }
            WorkerMsg::Swap(next) => chain = next,
            WorkerMsg::Stop => return,
        }
    }
}

fn handle(chain: &mut Chain, ticket: &Ticket, shared: &WorkerShared) {
    let batch = ticket.batch();
    let events = &batch.events;
    let first = events.first().map_or(-1, |e| e.offset);
    let span = tracing::debug_span!(
        "batch",
        pipeline = &*shared.pipeline,
        topic = &*batch.tp.topic,
        partition = batch.tp.partition,
        offset = first,
        events = events.len(),
        plugin = chain.label(),
    );
    let _entered = span.enter();

    shared.metrics.events.inc_by(events.len() as u64);
    let mut outcomes = chain.process(events);
    let attempts = retry(chain, events, &mut outcomes, &shared.retry);
    for outcome in outcomes.iter_mut() {
        reject_disallowed(outcome, chain, shared);
    }

    let Some(last) = chain.last_plugin() else {
        return;
    };
    let origin = Arc::new(Origin {
        pipeline: shared.pipeline.clone(),
        plugin: last.name().clone(),
        digest: last.digest().clone(),
    });
    for (index, ((outcome, attempts), event)) in
        outcomes.into_iter().zip(attempts).zip(events).enumerate()
    {
        match outcome {
            Ok(outputs) => {
                shared.metrics.outputs.inc_by(outputs.len() as u64);
                for output in &outputs {
                    let topic = output.topic.as_deref().unwrap_or(&shared.output_topic);
                    let key = output.key.as_deref().or(event.key.as_deref());
                    let headers = output.headers.as_ref().unwrap_or(&event.headers);
                    let record = RecordRef {
                        topic,
                        key,
                        value: output.value.as_deref(),
                        headers: output_headers(headers, shared.origin_headers.then_some(&*origin)),
                        timestamp_ms: event.timestamp_ms,
                    };
                    let delivery = Box::new(Delivery {
                        ticket: ticket.another(),
                        index,
                        payload: Payload::Output(origin.clone()),
                    });
                    shared.sink.send(record, delivery);
                }
            }
            Err(StepFailure { failure, step }) => {
                let plugin = chain.plugin(step).or(chain.last_plugin());
                let (name, digest) = plugin.map_or(("?", "?"), |p| (&**p.name(), &**p.digest()));
                let culprit = Culprit {
                    pipeline: &shared.pipeline,
                    plugin: name,
                    digest,
                };
                tracing::debug!(offset = event.offset, plugin = name, %failure, "dead-lettering event");
                shared.metrics.dead_letter(failure.kind.as_str());
                let dl = DeadLetter::new(event, &failure, &culprit, attempts);
                shared
                    .sink
                    .send_dead_letter(ticket.another(), index, Arc::new(dl));
            }
        }
    }
}

/// Retries events that failed as `retryable` until they succeed, fail
/// otherwise, or run out of attempts. Returns how many attempts each event
/// took.
///
/// All of a batch's retryable events are retried together, one backoff and
/// one plugin call per round: when a dependency is down and every event
/// asks to be retried, the batch waits out the backoff schedule once, not
/// once per event. Their outcomes keep their places, so outputs are still
/// written in offset order.
fn retry(
    chain: &mut Chain,
    events: &[Event],
    outcomes: &mut [ChainOutcome],
    policy: &RetryPolicy,
) -> Vec<u32> {
    let mut attempts = vec![1u32; events.len()];
    for attempt in 1..policy.attempts {
        let due: Vec<usize> = (0..events.len())
            .filter(|&i| is_retryable(&outcomes[i]))
            .collect();
        if due.is_empty() {
            break;
        }
        std::thread::sleep(policy.backoff_for(attempt));
        // Retries are the exception: copying their events into one slice
        // costs nothing next to the backoff.
        let again: Vec<Event> = due.iter().map(|&i| events[i].clone()).collect();
        for (i, outcome) in due.into_iter().zip(chain.process(&again)) {
            outcomes[i] = outcome;
            attempts[i] = attempt + 1;
        }
    }
    for (outcome, attempts) in outcomes.iter_mut().zip(&attempts) {
        if let Err(StepFailure { failure, .. }) = outcome
            && failure.kind == FailureKind::Retryable
        {
            *failure = Failure::new(
                FailureKind::RetriesExhausted,
                format!("gave up after {attempts} attempts: {}", failure.message),
            );
        }
    }
    attempts
}

fn is_retryable(outcome: &ChainOutcome) -> bool {
    matches!(outcome, Err(StepFailure { failure, .. }) if failure.kind == FailureKind::Retryable)
}

/// Fails an event whose outputs go to a topic the pipeline does not allow;
/// none of its outputs are written.
fn reject_disallowed(outcome: &mut ChainOutcome, chain: &Chain, shared: &WorkerShared) {
    let Ok(outputs) = outcome else { return };
    let Some(topic) = outputs
        .iter()
        .filter_map(|o| o.topic.as_deref())
        .find(|t| !shared.allows(t))
    else {
        return;
    };
    let message = format!(
        "output to topic `{topic}`, which pipeline `{}` does not allow (allowed: {})",
        shared.pipeline,
        std::iter::once(shared.output_topic.as_str())
            .chain(shared.allowed_outputs.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    );
    *outcome = Err(StepFailure {
        failure: Failure::new(FailureKind::OutputRejected, message),
        step: chain.len().saturating_sub(1),
    });
}

/// The headers of an output record: the plugin's (or inherited) headers
/// without stale Sluice origin headers, then which plugin version made it
/// (unless the pipeline leaves that out).
fn output_headers(headers: &[(String, Vec<u8>)], origin: Option<&Origin>) -> Option<OwnedHeaders> {
    let origin = origin.map(|o| {
        [
            (PLUGIN_HEADER, o.plugin.as_bytes()),
            (DIGEST_HEADER, o.digest.as_bytes()),
        ]
    });
    let kept = headers
        .iter()
        .filter(|(key, _)| key != PLUGIN_HEADER && key != DIGEST_HEADER)
        .map(|(key, value)| (key.as_str(), value.as_slice()));
    owned_headers(kept.chain(origin.into_iter().flatten()))
}
