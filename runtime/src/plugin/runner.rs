//! The per-worker plugin driver: keeps one instance alive across batches,
//! replaces it after a trap or when its memory nears the cap, and when a
//! batch fails as a whole, retries its events one by one so only the
//! culprit fails. It keeps the plugin's state across instances, one
//! transaction per call.

use std::sync::Arc;

use super::PluginError;
use super::bindings::{Event, Output, ProcessError};
use super::compiled::CompiledPlugin;
use super::instance::{Instance, InstanceSettings};
use super::state::PluginState;
use crate::failure::{Failure, FailureKind};
use crate::metrics::Replacement;

/// What became of one event: the records to write (empty = filtered out),
/// or why it failed.
pub type Outcome = Result<Vec<Output>, Failure>;

/// Drives one plugin for one worker. Not shared between threads: each
/// partition worker owns its runner, so calls never contend.
pub struct PluginRunner {
    plugin: Arc<CompiledPlugin>,
    settings: Arc<InstanceSettings>,
    instance: Option<Instance>,
    /// The plugin's state; it outlives instances. Empty for a plugin that
    /// does not import `state`.
    state: PluginState,
}

impl PluginRunner {
    /// Starts the first instance (running `init`), so a plugin that cannot
    /// start is reported before any event is read.
    pub fn start(
        plugin: Arc<CompiledPlugin>,
        settings: Arc<InstanceSettings>,
    ) -> Result<Self, PluginError> {
        Self::with_state(plugin, settings, PluginState::default())
    }

    /// Like [`PluginRunner::start`], with this state (seeded or restored,
    /// and its limits).
    pub fn with_state(
        plugin: Arc<CompiledPlugin>,
        settings: Arc<InstanceSettings>,
        state: PluginState,
    ) -> Result<Self, PluginError> {
        let instance = Instance::start(&plugin, &settings)?;
        Ok(PluginRunner {
            plugin,
            settings,
            instance: Some(instance),
            state,
        })
    }

    /// The plugin's committed state.
    pub fn state(&self) -> &PluginState {
        &self.state
    }

    /// The plugin's committed state, to restore or drop a partition.
    pub fn state_mut(&mut self) -> &mut PluginState {
        &mut self.state
    }

    /// The plugin this runner drives.
    pub fn plugin(&self) -> &Arc<CompiledPlugin> {
        &self.plugin
    }

    /// Processes a batch: one outcome per event, in order. Never fails as a
    /// whole; every problem is reported against the events it concerns.
    /// A call sees one partition's state, so a batch that mixes partitions
    /// is processed as one call per run of a partition.
    pub fn process(&mut self, events: &[Event]) -> Vec<Outcome> {
        if events.is_empty() {
            return Vec::new();
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for run in events.chunk_by(|a, b| a.partition == b.partition) {
            outcomes.extend(self.process_all(run));
        }
        // Once per batch: the gauge shows a recent size without a cost per
        // event.
        if let Some(instance) = &self.instance {
            let bytes = i64::try_from(instance.memory()).unwrap_or(i64::MAX);
            self.settings.metrics.memory.set(bytes);
        }
        outcomes
    }

    fn process_all(&mut self, events: &[Event]) -> Vec<Outcome> {
        match self.call(events) {
            Ok(outcomes) => outcomes,
            Err(failure) if events.len() == 1 => vec![Err(failure)],
            Err(failure) => {
                tracing::debug!(
                    plugin = &*self.plugin.name().clone(),
                    events = events.len(),
                    %failure,
                    "batch failed; retrying its events one by one"
                );
                events
                    .iter()
                    .map(|event| match self.call(std::slice::from_ref(event)) {
                        Ok(mut outcomes) => outcomes.pop().unwrap_or_else(|| {
                            Err(Failure::new(
                                FailureKind::Trap,
                                "plugin returned no outcome",
                            ))
                        }),
                        Err(failure) => Err(failure),
                    })
                    .collect()
            }
        }
    }

    /// One call into the plugin. A single event that hits the memory cap on
    /// an instance that has processed earlier batches is tried once more on
    /// a fresh instance: the memory may be the earlier events', not its own.
    /// `Err` fails every event of the call.
    fn call(&mut self, events: &[Event]) -> Result<Vec<Outcome>, Failure> {
        let fresh = self.instance.is_none();
        match self.call_once(events) {
            Err(failure) if failure.kind == FailureKind::Memory && !fresh && events.len() == 1 => {
                tracing::debug!(
                    plugin = &*self.plugin.name().clone(),
                    "memory cap hit on a used instance; trying the event on a fresh one"
                );
                self.call_once(events)
            }
            other => other,
        }
    }

    /// One call into the plugin, starting a fresh instance first if the last
    /// one trapped or filled up, in a state transaction of its own over the
    /// events' partition: committed if every event succeeded or failed by
    /// the plugin's own word, discarded otherwise.
    fn call_once(&mut self, events: &[Event]) -> Result<Vec<Outcome>, Failure> {
        let instance = match &mut self.instance {
            Some(instance) => instance,
            slot @ None => {
                slot.insert(Instance::start(&self.plugin, &self.settings).map_err(|e| {
                    Failure::new(FailureKind::Trap, format!("cannot restart the plugin: {e}"))
                })?)
            }
        };
        if self.plugin.keeps_state()
            && let Some(first) = events.first()
        {
            instance.begin_state(self.state.begin(first.partition));
        }
        let result = instance.process(events);
        let transaction = instance.end_state();
        let outcomes = self.outcomes(events, result);
        let Some(transaction) = transaction else {
            return outcomes;
        };
        // An event the host failed (a trap, a broken contract, a rejected
        // output) must leave no trace in the state: the call's writes go,
        // and a batch is retried event by event, each in a call of its own.
        let rejected = outcomes.as_ref().ok().and_then(|outcomes| {
            outcomes.iter().find_map(|outcome| {
                outcome
                    .as_ref()
                    .err()
                    .filter(|f| f.kind == FailureKind::OutputRejected)
                    .cloned()
            })
        });
        match (&outcomes, rejected) {
            (Ok(_), None) => self.state.commit(transaction),
            (Ok(_), Some(failure)) if events.len() > 1 => {
                self.state.abort(transaction);
                return Err(failure);
            }
            _ => self.state.abort(transaction),
        }
        outcomes
    }

    /// The outcome of every event of a call, or the failure of them all.
    fn outcomes(
        &mut self,
        events: &[Event],
        result: Result<Vec<Result<Vec<Output>, ProcessError>>, Failure>,
    ) -> Result<Vec<Outcome>, Failure> {
        let results = match result {
            Ok(results) => results,
            Err(failure) => {
                // A trapped instance may hold half-updated state: never reuse it.
                self.instance = None;
                self.settings
                    .metrics
                    .replaced(Replacement::of(failure.kind));
                return Err(failure);
            }
        };
        if let Some(instance) = &self.instance
            && instance.is_nearly_full()
        {
            tracing::debug!(
                plugin = &*self.plugin.name().clone(),
                memory = instance.memory(),
                "instance memory nears the cap; the next batch gets a fresh instance"
            );
            self.instance = None;
            self.settings.metrics.replaced(Replacement::MemoryHigh);
        }
        if results.len() != events.len() {
            if self.instance.take().is_some() {
                self.settings.metrics.replaced(Replacement::Trap);
            }
            return Err(Failure::new(
                FailureKind::Trap,
                format!(
                    "plugin broke the contract: {} outcomes for {} events",
                    results.len(),
                    events.len()
                ),
            ));
        }
        let limits = &self.settings.limits;
        Ok(results
            .into_iter()
            .zip(events)
            .map(|(result, event)| {
                let outputs = result.map_err(Failure::from)?;
                check_count(&outputs, limits.max_outputs_per_event)?;
                check_sizes(event, &outputs, limits.max_output_bytes)?;
                Ok(outputs)
            })
            .collect())
    }
}

/// Rejects an event with more outputs than the cap.
fn check_count(outputs: &[Output], max: usize) -> Result<(), Failure> {
    if outputs.len() > max {
        return Err(Failure::new(
            FailureKind::OutputRejected,
            format!(
                "{} outputs for one event, over the cap of {max} outputs per event",
                outputs.len()
            ),
        ));
    }
    Ok(())
}

/// Rejects an event whose outputs include a record over the size cap.
fn check_sizes(event: &Event, outputs: &[Output], max: usize) -> Result<(), Failure> {
    for (index, output) in outputs.iter().enumerate() {
        let size = output_size(event, output);
        if size > max {
            return Err(Failure::new(
                FailureKind::OutputRejected,
                format!("output {index} is {size} bytes, over the cap of {max} bytes"),
            ));
        }
    }
    Ok(())
}

/// Bytes the record written for `output` occupies: key, value and headers,
/// counting what it inherits from `event`.
pub fn output_size(event: &Event, output: &Output) -> usize {
    let key = output
        .key
        .as_ref()
        .or(event.key.as_ref())
        .map_or(0, Vec::len);
    let value = output.value.as_ref().map_or(0, Vec::len);
    let headers = output
        .headers
        .as_ref()
        .unwrap_or(&event.headers)
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>();
    key + value + headers
}
