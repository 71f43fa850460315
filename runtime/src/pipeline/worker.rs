//! A pipeline worker: a thread that owns one instance of every chain step,
//! takes batches of events (all from one partition, in offset order),
//! processes them, retries what may pass, and hands outputs, dead letters
//! and the batch's state changes (for the changelog) to the sink. A batch
//! of a partition this member no longer owns, or of a generation an abort
//! ended, is skipped. Partitions map to workers by hash (by number in a
//! stateful pipeline), so one partition's batches are always handled in
//! order by the same worker.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use rdkafka::message::OwnedHeaders;

use super::batch::Ticket;
use super::chain::{Chain, ChainOutcome, Step, StepFailure};
use super::control::ControlTx;
use super::live::Live;
use super::refused::RefusedOutputs;
use super::sink::{Delivery, Origin, Payload, Sink};
use crate::changelog::{self, Change, Restored};
use crate::config::{PipelineConfig, RetryPolicy};
use crate::dlq::{Culprit, DeadLetter};
use crate::headers;
use crate::kafka::writer::{RecordRef, owned_headers};
use crate::plugin::{Event, Failure, FailureKind, Output};

/// What a worker is told to do.
pub(crate) enum WorkerMsg {
    /// Process a batch (events of one partition, in offset order).
    Batch(Ticket),
    /// Use these plugin instances from the next batch on (hot reload);
    /// they take over the old ones' state.
    Swap(Chain),
    /// Partition `partition`'s state, restored from the changelog: set it
    /// before the partition's first batch.
    Restore { partition: i32, state: Restored },
    /// Partition `partition` is gone: drop its state.
    Forget(i32),
    /// Answer once everything before this in the inbox is handled (a
    /// reset waits for batches in progress to be done writing).
    Barrier(SyncSender<()>),
    /// Finish: everything before this in the inbox has been handled.
    Stop,
}

/// What every worker of a pipeline shares.
pub(crate) struct WorkerShared {
    pub config: PipelineConfig,
    /// The pipeline's name, for dead letters and spans.
    pub pipeline: Arc<str>,
    pub sink: Arc<Sink>,
    /// Where the worker's ticket of each batch is released to.
    pub control: ControlTx,
    pub metrics: crate::metrics::PipelineMetrics,
    /// Which batches may still be processed.
    pub live: Arc<Live>,
    /// Each step's name in the changelog (see
    /// [`PipelineConfig::state_names`]).
    pub state_names: Vec<String>,
    /// Exactly-once: events to dead-letter instead of writing their
    /// outputs again.
    pub refused: Arc<RefusedOutputs>,
}

/// The worker thread's body: runs until told to stop or its channel
/// closes (shutdown drains whatever was queued first).
pub(crate) fn run(mut chain: Chain, inbox: Receiver<WorkerMsg>, shared: Arc<WorkerShared>) {
    while let Ok(msg) = inbox.recv() {
        match msg {
            WorkerMsg::Batch(ticket) => {
                let batch = ticket.batch();
                if shared.live.is_live(&batch.tp, batch.generation) {
                    handle(&mut chain, &ticket, &shared);
                }
                // The worker's own ticket: the batch is done once this and
                // every record's ticket are released.
                shared.control.release(ticket);
            }
            WorkerMsg::Swap(mut next) => {
                next.adopt_state(&mut chain);
                chain = next;
            }
            WorkerMsg::Restore { partition, state } => chain.restore(partition, state),
            WorkerMsg::Forget(partition) => chain.forget(partition),
            WorkerMsg::Barrier(done) => {
                let _ = done.send(());
            }
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
    let Processed {
        outcomes,
        attempts,
        first_pass,
    } = process(chain, events, &shared.config);
    shared.metrics.batch(events.len(), first_pass);
    let retries: u32 = attempts.iter().map(|a| a.saturating_sub(1)).sum();
    if retries > 0 {
        shared.metrics.retries.inc_by(u64::from(retries));
    }

    let Some(origin) = origin(chain, &shared.pipeline) else {
        return;
    };
    let origin = Arc::new(origin);
    let stamp = shared.config.origin_headers.then_some(&*origin);
    for (index, ((outcome, attempts), event)) in
        outcomes.into_iter().zip(attempts).zip(events).enumerate()
    {
        match outcome {
            Ok(_) if let Some(dl) = shared.refused.get(&batch.tp.topic, event) => {
                shared
                    .metrics
                    .dead_letter(FailureKind::ProduceFailed.as_str());
                shared.sink.send_dead_letter(ticket.another(), index, dl);
            }
            Ok(outputs) => {
                shared.metrics.outputs.inc_by(outputs.len() as u64);
                for output in &outputs {
                    let record = output_record(event, output, &shared.config, stamp, None);
                    let delivery = Box::new(Delivery {
                        ticket: ticket.another(),
                        index,
                        payload: Payload::Output(origin.clone()),
                    });
                    shared.sink.send(record, delivery);
                }
            }
            Err(failed) => {
                let dl = dead_letter(chain, &shared.pipeline, event, &failed, attempts);
                tracing::debug!(offset = event.offset, failure = %failed.failure, "dead-lettering event");
                shared.metrics.dead_letter(failed.failure.kind.as_str());
                shared
                    .sink
                    .send_dead_letter(ticket.another(), index, Arc::new(dl));
            }
        }
    }
    write_changes(chain, ticket, shared);
}

/// Writes the state changes of a batch to the changelog, under its ticket:
/// its offsets are stored only once they are acknowledged.
fn write_changes(chain: &mut Chain, ticket: &Ticket, shared: &WorkerShared) {
    let changes = chain.take_changes();
    let batch = ticket.batch();
    let Some(last) = batch.events.last() else {
        return;
    };
    let source_offset = last.offset.to_string();
    for (step, (partition, key, value)) in changes {
        let Some(name) = shared.state_names.get(step) else {
            continue;
        };
        let change = Change {
            partition,
            key: changelog::record_key(name, &key),
            value,
            source_topic: batch.tp.topic.clone(),
            source_offset: source_offset.clone(),
        };
        shared.sink.send_change(ticket.another(), Arc::new(change));
    }
}

/// What a batch became: one outcome and attempt count per event, in order.
pub(crate) struct Processed {
    pub outcomes: Vec<ChainOutcome>,
    pub attempts: Vec<u32>,
    /// How long the first pass through the chain took (retries wait out
    /// backoffs, which are not the plugins' time).
    pub first_pass: Duration,
}

/// Runs `events` through the chain as a worker of `config` does: retries
/// what may pass, then fails events whose outputs go to topics the
/// pipeline does not allow. `sluice dlq redrive` runs dead letters through
/// this too, so a redriven event is judged by the same rules.
pub(crate) fn process<S: Step>(
    chain: &mut Chain<S>,
    events: &[Event],
    config: &PipelineConfig,
) -> Processed {
    let started = Instant::now();
    let mut outcomes = chain.process(events);
    let first_pass = started.elapsed();
    let attempts = retry(chain, events, &mut outcomes, &config.retry);
    for outcome in outcomes.iter_mut() {
        reject_disallowed(outcome, chain.len(), config);
    }
    Processed {
        outcomes,
        attempts,
        first_pass,
    }
}

/// Who made a chain's outputs: its last step; `None` for an empty chain.
pub(crate) fn origin<S: Step>(chain: &Chain<S>, pipeline: &Arc<str>) -> Option<Origin> {
    let last = chain.last()?;
    Some(Origin {
        pipeline: pipeline.clone(),
        plugin: last.name().clone(),
        digest: last.digest().clone(),
    })
}

/// The record of `output`, made from `event`: the pipeline's output topic
/// unless it names one, the event's key and headers unless it sets its
/// own, the event's timestamp; `stamp` adds the origin headers, `extra`
/// one more header after them.
pub(crate) fn output_record<'a>(
    event: &'a Event,
    output: &'a Output,
    config: &'a PipelineConfig,
    stamp: Option<&Origin>,
    extra: Option<(&str, &[u8])>,
) -> RecordRef<'a> {
    let topic = output.topic.as_deref().unwrap_or(&config.output);
    let headers = output.headers.as_ref().unwrap_or(&event.headers);
    RecordRef {
        key: output.key.as_deref().or(event.key.as_deref()),
        value: output.value.as_deref(),
        headers: output_headers(headers, stamp, extra),
        timestamp_ms: event.timestamp_ms,
        ..RecordRef::to(topic)
    }
}

/// The dead letter of `event`, which failed at a step of `chain` after
/// `attempts` attempts.
pub(crate) fn dead_letter<S: Step>(
    chain: &Chain<S>,
    pipeline: &str,
    event: &Event,
    failed: &StepFailure,
    attempts: u32,
) -> DeadLetter {
    let (plugin, digest) = chain
        .step(failed.step)
        .map_or(("?", "?"), |s| (&**s.name(), &**s.digest()));
    let culprit = Culprit {
        pipeline,
        plugin,
        digest,
    };
    DeadLetter::new(event, &failed.failure, &culprit, attempts)
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
fn retry<S: Step>(
    chain: &mut Chain<S>,
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

/// Fails an event whose outputs go to a topic the pipeline does not allow,
/// naming the last of the chain's `steps`; none of its outputs are written.
fn reject_disallowed(outcome: &mut ChainOutcome, steps: usize, config: &PipelineConfig) {
    let Ok(outputs) = outcome else { return };
    let Some(topic) = outputs
        .iter()
        .filter_map(|o| o.topic.as_deref())
        .find(|t| !config.allows(t))
    else {
        return;
    };
    let message = format!(
        "output to topic `{topic}`, which pipeline `{}` does not allow (allowed: {})",
        config.name,
        config.allowed_topics().collect::<Vec<_>>().join(", ")
    );
    *outcome = Err(StepFailure {
        failure: Failure::new(FailureKind::OutputRejected, message),
        step: steps.saturating_sub(1),
    });
}

/// The headers of an output record: the plugin's (or inherited) headers
/// without stale Sluice origin headers, then which plugin version made it
/// (unless the pipeline leaves that out).
fn output_headers(
    headers: &[(String, Vec<u8>)],
    origin: Option<&Origin>,
    extra: Option<(&str, &[u8])>,
) -> Option<OwnedHeaders> {
    let origin = origin.map(|o| {
        [
            (headers::PLUGIN, o.plugin.as_bytes()),
            (headers::DIGEST, o.digest.as_bytes()),
        ]
    });
    let kept = headers
        .iter()
        .filter(|(key, _)| !headers::ORIGIN.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value.as_slice()));
    owned_headers(kept.chain(origin.into_iter().flatten()).chain(extra))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use rdkafka::message::Headers;

    use super::*;
    use crate::pipeline::chain::tests::{FnStep, event, output, value_of};

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        }
    }

    fn retryable() -> Failure {
        Failure::new(FailureKind::Retryable, "try later")
    }

    /// A step that answers event `v` with the next of `script[v]`, then
    /// with success.
    fn scripted(script: &[(&str, &[bool])]) -> Chain<FnStep> {
        let mut plans: std::collections::HashMap<String, VecDeque<bool>> = script
            .iter()
            .map(|(v, fails)| ((*v).to_owned(), fails.iter().copied().collect()))
            .collect();
        Chain::new(vec![FnStep::new("flaky", move |e| {
            let v = value_of(e);
            match plans.get_mut(&v).and_then(VecDeque::pop_front) {
                Some(true) => Err(retryable()),
                _ => Ok(vec![output(&v)]),
            }
        })])
    }

    #[test]
    fn retries_run_in_rounds_and_keep_each_event_in_its_place() {
        // a fails twice, b once, c never.
        let mut chain = scripted(&[("a", &[true, true]), ("b", &[true])]);
        let events = [event(0, "a"), event(1, "b"), event(2, "c")];
        let mut outcomes = chain.process(&events);
        let attempts = retry(&mut chain, &events, &mut outcomes, &policy(5));
        assert_eq!(attempts, [3, 2, 1]);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        // One call per round, with only the events still due.
        let calls: Vec<Vec<String>> = chain.step(0).map(|s| s.calls.clone()).unwrap_or_default();
        assert_eq!(calls, [vec!["a", "b", "c"], vec!["a", "b"], vec!["a"]]);
    }

    #[test]
    fn retries_that_run_out_become_retries_exhausted() {
        let mut chain = scripted(&[("a", &[true, true, true])]);
        let events = [event(0, "a"), event(1, "b")];
        let mut outcomes = chain.process(&events);
        let attempts = retry(&mut chain, &events, &mut outcomes, &policy(3));
        assert_eq!(attempts, [3, 1]);
        match &outcomes[0] {
            Err(StepFailure { failure, step: 0 }) => {
                assert_eq!(failure.kind, FailureKind::RetriesExhausted);
                assert_eq!(failure.message, "gave up after 3 attempts: try later");
            }
            other => panic!("expected retries-exhausted, got {other:?}"),
        }
        assert!(outcomes[1].is_ok());
    }

    #[test]
    fn invalid_events_are_not_retried() {
        let mut chain = Chain::new(vec![FnStep::new("no", |_| {
            Err(Failure::new(FailureKind::Invalid, "never"))
        })]);
        let events = [event(0, "a")];
        let mut outcomes = chain.process(&events);
        assert_eq!(retry(&mut chain, &events, &mut outcomes, &policy(5)), [1]);
        assert_eq!(chain.step(0).map(|s| s.calls.len()), Some(1));
    }

    fn pipeline() -> PipelineConfig {
        let mut config = PipelineConfig::new("orders", vec!["in".into()], Vec::new(), "out", "dlq");
        config.allowed_outputs.insert("vip".into());
        config
    }

    fn to_topic(topic: Option<&str>) -> Output {
        let mut o = output("x");
        o.topic = topic.map(str::to_owned);
        o
    }

    #[test]
    fn outputs_to_topics_the_pipeline_does_not_allow_fail_the_event() {
        let config = pipeline();
        let mut allowed: ChainOutcome = Ok(vec![to_topic(None), to_topic(Some("vip"))]);
        reject_disallowed(&mut allowed, 2, &config);
        assert!(allowed.is_ok());

        let mut rejected: ChainOutcome = Ok(vec![to_topic(None), to_topic(Some("orders"))]);
        reject_disallowed(&mut rejected, 2, &config);
        match rejected {
            Err(StepFailure { failure, step: 1 }) => {
                assert_eq!(failure.kind, FailureKind::OutputRejected);
                assert_eq!(
                    failure.message,
                    "output to topic `orders`, which pipeline `orders` does not allow \
                     (allowed: out, vip)"
                );
            }
            other => panic!("expected output-rejected at the last step, got {other:?}"),
        }
    }

    fn pairs(headers: Option<OwnedHeaders>) -> Vec<(String, String)> {
        let Some(headers) = headers else {
            return Vec::new();
        };
        headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn output_headers_replace_inherited_origin_headers() {
        let inherited = vec![
            ("trace".to_owned(), b"t1".to_vec()),
            (headers::PLUGIN.to_owned(), b"upstream".to_vec()),
            (headers::DIGEST.to_owned(), b"sha256:old".to_vec()),
        ];
        let origin = Origin {
            pipeline: "p".into(),
            plugin: "enrich".into(),
            digest: "sha256:new".into(),
        };
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            pairs(output_headers(&inherited, Some(&origin), None)),
            [
                s("trace", "t1"),
                s(headers::PLUGIN, "enrich"),
                s(headers::DIGEST, "sha256:new")
            ]
        );
        // Without origin headers, stale ones are dropped too.
        assert_eq!(
            pairs(output_headers(&inherited, None, None)),
            [s("trace", "t1")]
        );
        assert!(
            output_headers(&[], None, None).is_none(),
            "no empty header list"
        );
    }
}
