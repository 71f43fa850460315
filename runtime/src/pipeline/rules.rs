//! The rules an event is judged by, wherever it runs: through the chain,
//! retried while it may pass, failed when an output goes to a topic the
//! pipeline does not allow; its outputs made into records (topic, key,
//! headers, origin) and its failure into a dead letter. A pipeline
//! worker applies them to each batch, `sluice dlq redrive` to each dead
//! letter it runs again, so a redriven event is judged as a live one is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::OwnedHeaders;

use super::chain::{Chain, ChainOutcome, Step, StepFailure};
use super::sink::Origin;
use crate::config::{PipelineConfig, RetryPolicy};
use crate::envelope::{Culprit, DeadLetter};
use crate::failure::{Failure, FailureKind};
use crate::headers;
use crate::kafka::writer::{RecordRef, owned_headers};
use crate::plugin::{Event, Output};

/// What a batch became: one outcome and attempt count per event, in order.
pub(crate) struct Processed {
    pub outcomes: Vec<ChainOutcome>,
    pub attempts: Vec<u32>,
    /// How long the first pass through the chain took (retries wait out
    /// backoffs, which are not the plugins' time).
    pub first_pass: Duration,
}

/// How a retry backoff ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// It was waited out: retry.
    Elapsed,
    /// The batch is no longer wanted (its partition is gone, its
    /// transaction aborted, the pipeline stops): give it up.
    GiveUp,
}

/// Waits out a backoff by sleeping: for callers that have nothing else to
/// listen to (`sluice dlq redrive`).
pub(crate) fn sleep(backoff: Duration) -> Waited {
    std::thread::sleep(backoff);
    Waited::Elapsed
}

/// Runs `events` through the chain as a worker of `config` does: retries
/// what may pass, waiting out each backoff with `wait`, then fails events
/// whose outputs go to topics the pipeline does not allow. `None` when
/// `wait` gave the batch up. `sluice dlq redrive` runs dead letters
/// through this too, so a redriven event is judged by the same rules.
pub(crate) fn process<S: Step>(
    chain: &mut Chain<S>,
    events: &[Event],
    config: &PipelineConfig,
    wait: &mut dyn FnMut(Duration) -> Waited,
) -> Option<Processed> {
    let started = Instant::now();
    let mut outcomes = chain.process(events);
    let first_pass = started.elapsed();
    let attempts = retry(chain, events, &mut outcomes, &config.retry, wait)?;
    for outcome in outcomes.iter_mut() {
        reject_disallowed(outcome, chain.len(), config);
    }
    Some(Processed {
        outcomes,
        attempts,
        first_pass,
    })
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
/// took; `None` when `wait` gave the batch up during a backoff.
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
    wait: &mut dyn FnMut(Duration) -> Waited,
) -> Option<Vec<u32>> {
    let mut attempts = vec![1u32; events.len()];
    for attempt in 1..policy.attempts {
        let due: Vec<usize> = (0..events.len())
            .filter(|&i| is_retryable(&outcomes[i]))
            .collect();
        if due.is_empty() {
            break;
        }
        if wait(policy.backoff_for(attempt)) == Waited::GiveUp {
            return None;
        }
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
    Some(attempts)
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
        let attempts = retry(&mut chain, &events, &mut outcomes, &policy(5), &mut sleep).unwrap();
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
        let attempts = retry(&mut chain, &events, &mut outcomes, &policy(3), &mut sleep).unwrap();
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
    fn a_batch_given_up_during_a_backoff_is_not_retried_further() {
        let mut chain = scripted(&[("a", &[true, true, true])]);
        let events = [event(0, "a")];
        let mut outcomes = chain.process(&events);
        let mut backoffs = Vec::new();
        let mut wait = |backoff: Duration| {
            backoffs.push(backoff);
            if backoffs.len() == 2 {
                Waited::GiveUp
            } else {
                Waited::Elapsed
            }
        };
        let policy = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        assert_eq!(
            retry(&mut chain, &events, &mut outcomes, &policy, &mut wait),
            None
        );
        // Asked to wait 1 s, then 2 s, and given up during the second: two
        // calls in all, the first and one retry.
        assert_eq!(backoffs, [Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(chain.step(0).map(|s| s.calls.len()), Some(2));
    }

    #[test]
    fn invalid_events_are_not_retried() {
        let mut chain = Chain::new(vec![FnStep::new("no", |_| {
            Err(Failure::new(FailureKind::Invalid, "never"))
        })]);
        let events = [event(0, "a")];
        let mut outcomes = chain.process(&events);
        assert_eq!(
            retry(&mut chain, &events, &mut outcomes, &policy(5), &mut sleep),
            Some(vec![1])
        );
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
