//! Prometheus metrics: a process-wide registry with low-cardinality labels
//! (pipeline, failure kind, reload kind and outcome; never topics of
//! plugins' choosing, partitions or keys). Hot paths hold resolved counters,
//! so counting an event is one atomic add.

use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric Sluice exports.
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    outputs: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    instances: Family<Labels, Counter>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let events = Family::<Labels, Counter>::default();
        let outputs = Family::<Labels, Counter>::default();
        let dead_letters = Family::<Labels, Counter>::default();
        let reloads = Family::<Labels, Counter>::default();
        let instances = Family::<Labels, Counter>::default();
        registry.register("events", "Events consumed and processed", events.clone());
        registry.register("outputs", "Output records written", outputs.clone());
        registry.register(
            "dead_letters",
            "Events sent to the dead-letter topic, by failure kind",
            dead_letters.clone(),
        );
        registry.register(
            "reloads",
            "Plugin and config reloads, by kind (plugin, config) and outcome (ok, failed, refused, partial)",
            reloads.clone(),
        );
        registry.register(
            "plugin_instances",
            "Plugin instances started (each ran `init`), by pipeline and plugin: at start, \
             for a hot reload, and to replace one that trapped",
            instances.clone(),
        );
        Metrics {
            registry,
            events,
            outputs,
            dead_letters,
            reloads,
            instances,
        }
    }

    /// Counters of one pipeline, resolved once.
    pub fn pipeline(&self, pipeline: &str) -> PipelineMetrics {
        let labels = vec![("pipeline".to_owned(), pipeline.to_owned())];
        PipelineMetrics {
            pipeline: pipeline.to_owned(),
            events: self.events.get_or_create_owned(&labels),
            outputs: self.outputs.get_or_create_owned(&labels),
        }
    }

    /// The counter of instances of `plugin` started for `pipeline`.
    pub fn instances(&self, pipeline: &str, plugin: &str) -> Counter {
        self.instances.get_or_create_owned(&vec![
            ("pipeline".to_owned(), pipeline.to_owned()),
            ("plugin".to_owned(), plugin.to_owned()),
        ])
    }

    /// Counts a reload attempt.
    pub fn reload(&self, kind: &str, outcome: &str) {
        self.reloads
            .get_or_create(&vec![
                ("kind".to_owned(), kind.to_owned()),
                ("outcome".to_owned(), outcome.to_owned()),
            ])
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One pipeline's counters.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pipeline: String,
    pub events: Counter,
    pub outputs: Counter,
}

impl PipelineMetrics {
    /// Counts a dead letter of `kind` (rare: resolved on use).
    pub fn dead_letter(&self, kind: &str) {
        global()
            .dead_letters
            .get_or_create(&vec![
                ("pipeline".to_owned(), self.pipeline.clone()),
                ("kind".to_owned(), kind.to_owned()),
            ])
            .inc();
    }
}
