//! Prometheus metrics: a process-wide registry with low-cardinality labels
//! (pipeline, plugin, failure kind, reload kind and outcome, replacement
//! reason, pipeline state; topic and partition only for the consumer lag
//! of the input partitions. Never topics of plugins' choosing or keys).
//!
//! Every series that can be known in advance exists from the start at
//! zero (a pipeline's counters for every failure kind, every reload kind
//! and outcome, ...), so dashboards and alerts see `0`, not "no data".
//! Hot paths hold resolved handles: counting an event is one atomic add,
//! and histograms are observed once per batch, never per event.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets_range};
use prometheus_client::registry::Registry;

use crate::failure::FailureKind;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// What `kind` of reload `sluice_reloads_total` counts...
pub const RELOAD_KINDS: [&str; 2] = ["plugin", "config"];
/// ...and their outcomes (see [`crate::status::Outcome`]).
pub const RELOAD_OUTCOMES: [&str; 4] = ["ok", "failed", "refused", "partial"];

/// The values of `sluice_pipeline_state`'s `state` label: a pipeline is
/// `starting` until it joins its group, then `running`; `failed` when it
/// is configured but could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineState {
    Starting,
    Running,
    Failed,
}

impl PipelineState {
    const ALL: [PipelineState; 3] = [
        PipelineState::Starting,
        PipelineState::Running,
        PipelineState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Starting => "starting",
            PipelineState::Running => "running",
            PipelineState::Failed => "failed",
        }
    }
}

/// Why a worker's plugin instance was replaced by a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// It trapped (or broke the contract).
    Trap,
    /// A call ran past its deadline.
    Timeout,
    /// It hit its memory cap.
    Memory,
    /// Its memory neared the cap (replaced between batches).
    MemoryHigh,
    /// A hot reload swapped in a new version.
    Reload,
}

impl Replacement {
    const ALL: [Replacement; 5] = [
        Replacement::Trap,
        Replacement::Timeout,
        Replacement::Memory,
        Replacement::MemoryHigh,
        Replacement::Reload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Replacement::Trap => "trap",
            Replacement::Timeout => "timeout",
            Replacement::Memory => "memory",
            Replacement::MemoryHigh => "memory-high",
            Replacement::Reload => "reload",
        }
    }

    /// Why an instance that failed a call as `kind` is dropped.
    pub fn of(kind: FailureKind) -> Replacement {
        match kind {
            FailureKind::Timeout => Replacement::Timeout,
            FailureKind::Memory => Replacement::Memory,
            _ => Replacement::Trap,
        }
    }
}

/// Every metric Sluice exports.
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    outputs: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    instances: Family<Labels, Counter>,
    replacements: Family<Labels, Counter>,
    memory: Family<Labels, Gauge>,
    state: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    lag: Family<Labels, Gauge>,
    restarts: Family<Labels, Counter>,
    transactions: Family<Labels, Counter>,
    restored_keys: Family<Labels, Counter>,
    call_seconds: Histograms,
    batch_size: Histograms,
    restore_seconds: Histograms,
}

/// What became of an exactly-once transaction, as the `outcome` label of
/// `sluice_transactions_total`.
pub const TRANSACTION_OUTCOMES: [&str; 2] = ["committed", "aborted"];

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// 10 µs to 10 s, three buckets per decade.
fn call_seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets_range(1e-5, 10.0, 19))
}

/// 1 ms to ~4.4 minutes, powers of four.
fn restore_seconds_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 4.0, 10,
    ))
}

/// 1 to 4096 events, powers of two.
fn batch_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets_range(1.0, 4096.0, 13))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn lag_labels(pipeline: &str, topic: &str, partition: i32) -> Labels {
    labels(&[
        ("pipeline", pipeline),
        ("topic", topic),
        ("partition", &partition.to_string()),
    ])
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            events: Family::default(),
            outputs: Family::default(),
            dead_letters: Family::default(),
            retries: Family::default(),
            reloads: Family::default(),
            instances: Family::default(),
            replacements: Family::default(),
            memory: Family::default(),
            state: Family::default(),
            in_flight: Family::default(),
            lag: Family::default(),
            restarts: Family::default(),
            transactions: Family::default(),
            restored_keys: Family::default(),
            call_seconds: Family::new_with_constructor(call_seconds_histogram),
            batch_size: Family::new_with_constructor(batch_size_histogram),
            restore_seconds: Family::new_with_constructor(restore_seconds_histogram),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("events", "Events consumed and processed", m.events.clone());
        r.register("outputs", "Output records written", m.outputs.clone());
        r.register(
            "dead_letters",
            "Events sent to the dead-letter topic, by failure kind",
            m.dead_letters.clone(),
        );
        r.register(
            "retries",
            "Event retries (one per event per extra attempt)",
            m.retries.clone(),
        );
        r.register(
            "reloads",
            "Plugin and config reloads, by kind (plugin, config) and outcome (ok, failed, refused, partial)",
            m.reloads.clone(),
        );
        r.register(
            "plugin_instances",
            "Plugin instances started (each ran `init`), by pipeline and plugin: at start, \
             for a hot reload, and to replace one that trapped",
            m.instances.clone(),
        );
        r.register(
            "instance_replacements",
            "Plugin instances replaced by a fresh one, by reason \
             (trap, timeout, memory, memory-high, reload)",
            m.replacements.clone(),
        );
        r.register(
            "plugin_memory_bytes",
            "Linear memory of a plugin's instance, sampled at the end of each batch",
            m.memory.clone(),
        );
        r.register(
            "pipeline_state",
            "1 for a pipeline's current state (starting, running, failed), 0 for the others",
            m.state.clone(),
        );
        r.register(
            "events_in_flight",
            "Events read and not yet done (processed and every record acknowledged)",
            m.in_flight.clone(),
        );
        r.register(
            "consumer_lag",
            "Messages between the group's committed offset and the high watermark, \
             per assigned input partition (librdkafka statistics, every 5 s)",
            m.lag.clone(),
        );
        r.register(
            "pipeline_restarts",
            "Pipelines started again after their poll thread died, or after they failed \
             to start (with backoff)",
            m.restarts.clone(),
        );
        r.register(
            "plugin_call_duration_seconds",
            "Time the plugin chain took for one batch",
            m.call_seconds.clone(),
        );
        r.register(
            "batch_size",
            "Events per batch handed to a worker",
            m.batch_size.clone(),
        );
        r.register(
            "transactions",
            "Exactly-once transactions, by outcome (committed, aborted)",
            m.transactions.clone(),
        );
        r.register(
            "state_restore_duration_seconds",
            "Time to restore the state of newly assigned partitions from the changelog \
             (one observation per assignment or abort)",
            m.restore_seconds.clone(),
        );
        r.register(
            "state_restored_keys",
            "Keys restored from the changelog",
            m.restored_keys.clone(),
        );
        for kind in RELOAD_KINDS {
            for outcome in RELOAD_OUTCOMES {
                // Created at zero; the handle is not needed.
                let _ = m
                    .reloads
                    .get_or_create_owned(&labels(&[("kind", kind), ("outcome", outcome)]));
            }
        }
        Metrics { registry, ..m }
    }

    /// The handles of one pipeline, resolved once; every series of the
    /// pipeline exists from now on.
    pub fn pipeline(&self, pipeline: &str) -> PipelineMetrics {
        let by_pipeline = labels(&[("pipeline", pipeline)]);
        for kind in FailureKind::ALL {
            let _ = self
                .dead_letters
                .get_or_create_owned(&labels(&[("pipeline", pipeline), ("kind", kind.as_str())]));
        }
        PipelineMetrics {
            pipeline: pipeline.to_owned(),
            events: self.events.get_or_create_owned(&by_pipeline),
            outputs: self.outputs.get_or_create_owned(&by_pipeline),
            retries: self.retries.get_or_create_owned(&by_pipeline),
            restarts: self.restarts.get_or_create_owned(&by_pipeline),
            in_flight: self.in_flight.get_or_create_owned(&by_pipeline),
            call_seconds: self.call_seconds.get_or_create_owned(&by_pipeline),
            batch_size: self.batch_size.get_or_create_owned(&by_pipeline),
            transactions: TRANSACTION_OUTCOMES.map(|outcome| {
                self.transactions
                    .get_or_create_owned(&labels(&[("pipeline", pipeline), ("outcome", outcome)]))
            }),
            restore_seconds: self.restore_seconds.get_or_create_owned(&by_pipeline),
            restored_keys: self.restored_keys.get_or_create_owned(&by_pipeline),
        }
    }

    /// The handles of the instances of `plugin` in `pipeline`.
    pub fn instance(&self, pipeline: &str, plugin: &str) -> InstanceMetrics {
        let pair = [("pipeline", pipeline), ("plugin", plugin)];
        InstanceMetrics {
            starts: self.instances.get_or_create_owned(&labels(&pair)),
            memory: self.memory.get_or_create_owned(&labels(&pair)),
            replaced: Replacement::ALL.map(|reason| {
                let mut l = labels(&pair);
                l.push(("reason".to_owned(), reason.as_str().to_owned()));
                self.replacements.get_or_create_owned(&l)
            }),
        }
    }

    /// Counts a reload attempt.
    pub fn reload(&self, kind: &str, outcome: &str) {
        self.reloads
            .get_or_create(&labels(&[("kind", kind), ("outcome", outcome)]))
            .inc();
    }

    /// Sets a pipeline's state; `None` when it is gone (all states 0).
    pub fn pipeline_state(&self, pipeline: &str, now: Option<PipelineState>) {
        for state in PipelineState::ALL {
            self.state
                .get_or_create(&labels(&[
                    ("pipeline", pipeline),
                    ("state", state.as_str()),
                ]))
                .set(i64::from(now == Some(state)));
        }
    }

    /// The consumer lag of an input partition of `pipeline`; `None` when
    /// it is no longer assigned (the series goes).
    pub fn consumer_lag(&self, pipeline: &str, topic: &str, partition: i32, lag: Option<i64>) {
        let key = lag_labels(pipeline, topic, partition);
        match lag {
            Some(lag) => {
                self.lag.get_or_create(&key).set(lag);
            }
            None => {
                self.lag.remove(&key);
            }
        }
    }

    /// The consumer lag of an input partition of `pipeline`, if the
    /// statistics reported it since it was assigned.
    pub fn consumer_lag_of(&self, pipeline: &str, topic: &str, partition: i32) -> Option<i64> {
        self.lag
            .get(&lag_labels(pipeline, topic, partition))
            .map(|gauge| gauge.get())
    }

    /// `pipeline`'s dead letters so far, by failure kind (every kind).
    pub fn dead_letters_by_kind(&self, pipeline: &str) -> BTreeMap<&'static str, u64> {
        FailureKind::ALL
            .iter()
            .map(|kind| {
                let key = labels(&[("pipeline", pipeline), ("kind", kind.as_str())]);
                let count = self.dead_letters.get(&key).map_or(0, |c| c.get());
                (kind.as_str(), count)
            })
            .collect()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One pipeline's handles.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pipeline: String,
    pub events: Counter,
    pub outputs: Counter,
    pub retries: Counter,
    /// Times the supervisor started the pipeline again.
    pub restarts: Counter,
    pub in_flight: Gauge,
    call_seconds: Histogram,
    batch_size: Histogram,
    transactions: [Counter; TRANSACTION_OUTCOMES.len()],
    restore_seconds: Histogram,
    restored_keys: Counter,
}

impl PipelineMetrics {
    /// Counts a dead letter of `kind` (rare: resolved on use).
    pub fn dead_letter(&self, kind: &str) {
        global()
            .dead_letters
            .get_or_create(&labels(&[("pipeline", &self.pipeline), ("kind", kind)]))
            .inc();
    }

    /// An exactly-once transaction committed (`true`) or was aborted.
    pub fn transaction(&self, committed: bool) {
        self.transactions[usize::from(!committed)].inc();
    }

    /// A restore of `keys` keys took `took`.
    pub fn restored(&self, keys: usize, took: Duration) {
        self.restore_seconds.observe(took.as_secs_f64());
        self.restored_keys.inc_by(keys as u64);
    }

    /// A batch of `events` events went through the chain in `took`.
    pub fn batch(&self, events: usize, took: Duration) {
        self.batch_size.observe(events as f64);
        self.call_seconds.observe(took.as_secs_f64());
    }
}

/// The handles of one plugin's instances in one pipeline. The default is
/// registered nowhere (`sluice exec`, tests).
#[derive(Debug, Clone, Default)]
pub struct InstanceMetrics {
    /// Instances started (`init` succeeded).
    pub starts: Counter,
    /// The latest sample of an instance's linear memory (any worker's).
    pub memory: Gauge,
    replaced: [Counter; Replacement::ALL.len()],
}

impl InstanceMetrics {
    /// Counts an instance replaced for `reason`.
    pub fn replaced(&self, reason: Replacement) {
        if let Some(counter) = self.replaced.get(reason as usize) {
            counter.inc();
        }
    }
}
