//! A pipeline's plugin chain as one worker runs it: the outputs of one step
//! are the events of the next, in-process. An input event succeeds only if
//! every step succeeds for everything derived from it; otherwise it fails as
//! a whole, named after the step that failed, and none of its outputs are
//! written.

use std::sync::Arc;

use crate::plugin::{CompiledPlugin, Event, Failure, Output, PluginRunner};

/// A failure and the step (plugin) it happened in.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub failure: Failure,
    pub step: usize,
}

/// What became of one input event after the whole chain.
pub type ChainOutcome = Result<Vec<Output>, StepFailure>;

/// One worker's instances of every step.
pub struct Chain {
    steps: Vec<PluginRunner>,
    label: String,
}

impl Chain {
    pub fn new(steps: Vec<PluginRunner>) -> Self {
        let label = steps
            .iter()
            .map(|s| &**s.plugin().name())
            .collect::<Vec<_>>()
            .join(">");
        Chain { steps, label }
    }

    /// The plugin names in order, `a>b` for a chain: the `plugin` field of
    /// batch spans.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the chain has no step (never true for a validated pipeline).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The compiled plugin of step `index`.
    pub fn plugin(&self, index: usize) -> Option<&Arc<CompiledPlugin>> {
        self.steps.get(index).map(PluginRunner::plugin)
    }

    /// The last step, whose digest marks the outputs.
    pub fn last_plugin(&self) -> Option<&Arc<CompiledPlugin>> {
        self.steps.last().map(PluginRunner::plugin)
    }

    /// Runs `events` through every step. One outcome per event, in order.
    /// Outputs may leave `key`/`headers` as `None`, meaning the input
    /// event's.
    pub fn process(&mut self, events: &[Event]) -> Vec<ChainOutcome> {
        let Some((first, rest)) = self.steps.split_first_mut() else {
            return events.iter().map(|_| Ok(Vec::new())).collect();
        };
        let mut outcomes: Vec<ChainOutcome> = first
            .process(events)
            .into_iter()
            .map(|o| o.map_err(|failure| StepFailure { failure, step: 0 }))
            .collect();
        for (index, runner) in rest.iter_mut().enumerate() {
            let step = index + 1;
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
            let results = runner.process(&derived);
            for ((derived_event, i), result) in derived.iter().zip(origin).zip(results) {
                match (&mut outcomes[i], result) {
                    (Ok(outputs), Ok(next)) => outputs.extend(
                        next.into_iter()
                            .map(|output| resolve(derived_event, output)),
                    ),
                    (slot @ Ok(_), Err(failure)) => *slot = Err(StepFailure { failure, step }),
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
