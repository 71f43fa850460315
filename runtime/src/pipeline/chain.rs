//! A pipeline's plugin chain as one worker runs it: the outputs of one step
//! are the events of the next, in-process. An input event succeeds only if
//! every step succeeds for everything derived from it; otherwise it fails as
//! a whole, named after the step that failed, and none of its outputs are
//! written.

use std::sync::Arc;

use crate::changelog::Restored;
use crate::failure::Failure;
use crate::plugin::compiled::short_digest;
use crate::plugin::{Event, JournalEntry, Outcome, Output, PluginRunner, PluginState};

/// What a chain needs of one step: a batch in, one outcome per event out,
/// and who it is for dead letters and provenance headers.
pub(crate) trait Step {
    fn process(&mut self, events: &[Event]) -> Vec<Outcome>;
    /// The plugin's name.
    fn name(&self) -> &Arc<str>;
    /// `sha256:<hex>` of the plugin's file.
    fn digest(&self) -> &Arc<str>;
    /// The plugin's keyed state, if the step keeps any.
    fn state_mut(&mut self) -> Option<&mut PluginState> {
        None
    }
}

impl Step for PluginRunner {
    fn process(&mut self, events: &[Event]) -> Vec<Outcome> {
        PluginRunner::process(self, events)
    }

    fn name(&self) -> &Arc<str> {
        self.plugin().name()
    }

    fn digest(&self) -> &Arc<str> {
        self.plugin().digest()
    }

    fn state_mut(&mut self) -> Option<&mut PluginState> {
        Some(PluginRunner::state_mut(self))
    }
}

/// A failure and the step (plugin) it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepFailure {
    pub failure: Failure,
    pub step: usize,
}

/// What became of one input event after the whole chain.
pub(crate) type ChainOutcome = Result<Vec<Output>, StepFailure>;

/// One worker's instances of every step.
pub(crate) struct Chain<S = PluginRunner> {
    steps: Vec<S>,
    label: String,
}

impl<S: Step> Chain<S> {
    pub fn new(steps: Vec<S>) -> Self {
        let label = steps
            .iter()
            .map(|s| &**s.name())
            .collect::<Vec<_>>()
            .join(">");
        Chain { steps, label }
    }

    /// The plugin names in order, `a>b` for a chain: the `plugin` field of
    /// batch spans.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `name@digest-prefix` of every step, for logs.
    pub fn versions(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| format!("{}@{}", s.name(), short_digest(s.digest())))
            .collect()
    }

    /// `(name, digest)` of every step.
    pub fn plugins(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .map(|s| (s.name().to_string(), s.digest().to_string()))
            .collect()
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Step `index`, or the last one if there is no such step.
    pub fn step(&self, index: usize) -> Option<&S> {
        self.steps.get(index).or(self.steps.last())
    }

    /// Replaces partition `partition`'s state of every step with what was
    /// restored for it (one map per step, in chain order).
    pub fn restore(&mut self, partition: i32, restored: Restored) {
        for (step, entries) in self.steps.iter_mut().zip(restored) {
            if let Some(state) = step.state_mut() {
                state.restore(partition, entries);
            }
        }
    }

    /// Forgets partition `partition`'s state in every step.
    pub fn forget(&mut self, partition: i32) {
        for step in &mut self.steps {
            if let Some(state) = step.state_mut() {
                state.drop_partition(partition);
            }
        }
    }

    /// Takes over `old`'s state, step by step (a hot swap: the steps are
    /// the same plugins, in new versions).
    pub fn adopt_state(&mut self, old: &mut Chain<S>) {
        for (new, old) in self.steps.iter_mut().zip(&mut old.steps) {
            if let (Some(new), Some(old)) = (new.state_mut(), old.state_mut()) {
                new.adopt(old);
            }
        }
    }

    /// The state changes every step committed since the last call, with
    /// the index of the step that made them.
    pub fn take_changes(&mut self) -> Vec<(usize, JournalEntry)> {
        let mut changes = Vec::new();
        for (index, step) in self.steps.iter_mut().enumerate() {
            if let Some(state) = step.state_mut() {
                changes.extend(state.take_journal().into_iter().map(|c| (index, c)));
            }
        }
        changes
    }

    /// The last step, whose digest marks the outputs.
    pub fn last(&self) -> Option<&S> {
        self.steps.last()
    }

    /// Runs `events` through every step. One outcome per event, in order.
    /// Outputs of the last step may leave `key`/`headers` as `None`,
    /// meaning the input event's.
    pub fn process(&mut self, events: &[Event]) -> Vec<ChainOutcome> {
        let Some((first, rest)) = self.steps.split_first_mut() else {
            return events.iter().map(|_| Ok(Vec::new())).collect();
        };
        let mut outcomes: Vec<ChainOutcome> = first
            .process(events)
            .into_iter()
            .map(|o| o.map_err(|failure| StepFailure { failure, step: 0 }))
            .collect();
        for (index, step) in rest.iter_mut().enumerate() {
            let step_index = index + 1;
            // Flatten the surviving outputs into the next step's events,
            // remembering which input each came from.
            let mut derived = Vec::new();
            let mut origin = Vec::new();
            for (i, outcome) in outcomes.iter_mut().enumerate() {
                if let Ok(outputs) = outcome {
                    for output in std::mem::take(outputs) {
                        derived.push(derive(&events[i], output));
                        origin.push(i);
                    }
                }
            }
            let results = step.process(&derived);
            for ((derived_event, i), result) in derived.iter().zip(origin).zip(results) {
                match (&mut outcomes[i], result) {
                    (Ok(outputs), Ok(next)) => outputs.extend(
                        next.into_iter()
                            .map(|output| resolve(derived_event, output)),
                    ),
                    (slot @ Ok(_), Err(failure)) => {
                        *slot = Err(StepFailure {
                            failure,
                            step: step_index,
                        })
                    }
                    (Err(_), _) => {}
                }
            }
        }
        outcomes
    }
}

/// The event a later step sees for an output of an earlier one.
fn derive(input: &Event, output: Output) -> Event {
    Event {
        topic: output.topic.unwrap_or_else(|| input.topic.clone()),
        partition: input.partition,
        offset: input.offset,
        timestamp_ms: input.timestamp_ms,
        key: output.key.or_else(|| input.key.clone()),
        value: output.value,
        headers: output.headers.unwrap_or_else(|| input.headers.clone()),
    }
}

/// Pins an output's inherited key and headers to the derived event it came
/// from, so the result no longer depends on which event it is read against.
fn resolve(derived: &Event, mut output: Output) -> Output {
    if output.key.is_none() {
        output.key.clone_from(&derived.key);
    }
    if output.headers.is_none() {
        output.headers = Some(derived.headers.clone());
    }
    output
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::failure::FailureKind;

    /// A step made of a function over one event's value, for unit tests.
    pub(crate) struct FnStep {
        name: Arc<str>,
        digest: Arc<str>,
        f: Box<dyn FnMut(&Event) -> Outcome + Send>,
        /// The batches it was called with, as values.
        pub calls: Vec<Vec<String>>,
    }

    impl FnStep {
        pub fn new(name: &str, f: impl FnMut(&Event) -> Outcome + Send + 'static) -> Self {
            FnStep {
                name: name.into(),
                digest: format!("sha256:{name}").into(),
                f: Box::new(f),
                calls: Vec::new(),
            }
        }
    }

    impl Step for FnStep {
        fn process(&mut self, events: &[Event]) -> Vec<Outcome> {
            self.calls.push(events.iter().map(value_of).collect());
            events.iter().map(|e| (self.f)(e)).collect()
        }

        fn name(&self) -> &Arc<str> {
            &self.name
        }

        fn digest(&self) -> &Arc<str> {
            &self.digest
        }
    }

    pub(crate) fn event(offset: i64, value: &str) -> Event {
        Event {
            topic: "in".into(),
            partition: 0,
            offset,
            timestamp_ms: Some(1000 + offset),
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![("h".into(), b"1".to_vec())],
        }
    }

    pub(crate) fn value_of(e: &Event) -> String {
        String::from_utf8_lossy(e.value.as_deref().unwrap_or_default()).into_owned()
    }

    pub(crate) fn output(value: &str) -> Output {
        Output {
            topic: None,
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: None,
        }
    }

    fn values(outcome: &ChainOutcome) -> Vec<String> {
        match outcome {
            Ok(outputs) => outputs
                .iter()
                .map(|o| String::from_utf8_lossy(o.value.as_deref().unwrap_or_default()).into())
                .collect(),
            Err(f) => panic!("failed: {f:?}"),
        }
    }

    /// `split` turns "a b" into two outputs; `upper` fails "bad".
    fn split_then_upper() -> Chain<FnStep> {
        let split = FnStep::new("split", |e| {
            Ok(value_of(e).split(' ').map(output).collect())
        });
        let upper = FnStep::new("upper", |e| match value_of(e).as_str() {
            "bad" => Err(Failure::new(FailureKind::Invalid, "bad word")),
            v => Ok(vec![output(&v.to_uppercase())]),
        });
        Chain::new(vec![split, upper])
    }

    #[test]
    fn outputs_of_one_step_feed_the_next_and_keep_their_input() {
        let mut chain = split_then_upper();
        assert_eq!(chain.label(), "split>upper");
        let outcomes = chain.process(&[event(0, "a b"), event(1, "c")]);
        assert_eq!(values(&outcomes[0]), ["A", "B"]);
        assert_eq!(values(&outcomes[1]), ["C"]);
        // One call per step, the second over everything the first made.
        assert_eq!(chain.steps[1].calls, [vec!["a", "b", "c"]]);
        // Inherited key and headers are pinned to the input's.
        let Ok(outputs) = &outcomes[0] else {
            unreachable!()
        };
        assert_eq!(outputs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(outputs[0].headers, Some(vec![("h".into(), b"1".to_vec())]));
    }

    #[test]
    fn a_failure_in_a_later_step_fails_the_whole_input_and_names_the_step() {
        let mut chain = split_then_upper();
        let outcomes = chain.process(&[event(0, "good bad"), event(1, "fine")]);
        // No partial outputs of a failed input.
        let want = StepFailure {
            failure: Failure::new(FailureKind::Invalid, "bad word"),
            step: 1,
        };
        assert!(
            matches!(&outcomes[0], Err(f) if *f == want),
            "{:?}",
            outcomes[0]
        );
        assert_eq!(values(&outcomes[1]), ["FINE"]);
        let step = chain.step(1).map(|s| &**s.name());
        assert_eq!(step, Some("upper"));
    }

    #[test]
    fn a_failure_in_the_first_step_skips_the_rest() {
        let first = FnStep::new("first", |e| match value_of(e).as_str() {
            "x" => Err(Failure::new(FailureKind::Retryable, "later")),
            v => Ok(vec![output(v)]),
        });
        let second = FnStep::new("second", |e| Ok(vec![output(&value_of(e))]));
        let mut chain = Chain::new(vec![first, second]);
        let outcomes = chain.process(&[event(0, "x"), event(1, "y")]);
        assert!(matches!(&outcomes[0], Err(StepFailure { step: 0, .. })));
        assert_eq!(values(&outcomes[1]), ["y"]);
        assert_eq!(chain.steps[1].calls, [vec!["y"]], "x never reached it");
    }

    #[test]
    fn a_filtered_event_succeeds_with_no_outputs() {
        let drop_all = FnStep::new("drop", |_| Ok(Vec::new()));
        let never = FnStep::new("never", |_| panic!("nothing to process"));
        let mut chain = Chain::new(vec![drop_all, never]);
        let outcomes = chain.process(&[event(0, "a")]);
        assert!(matches!(&outcomes[..], [Ok(v)] if v.is_empty()));
    }

    #[test]
    fn an_output_to_another_topic_is_seen_there_by_the_next_step() {
        let route = FnStep::new("route", |e| {
            let mut o = output(&value_of(e));
            o.topic = Some("vip".into());
            Ok(vec![o])
        });
        let topic_of = FnStep::new("topic", |e| Ok(vec![output(&e.topic)]));
        let mut chain = Chain::new(vec![route, topic_of]);
        assert_eq!(values(&chain.process(&[event(0, "a")])[0]), ["vip"]);
    }
}
