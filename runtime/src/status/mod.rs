//! What is running, as `/api/status` and the status page show it: every
//! configured pipeline with its state, plugin versions, assigned partitions
//! and their lag, counts of events and dead letters, its latest dead
//! letters ([`dead_letters`]), and the recent reloads with their outcomes.
//! Operators read it; tests wait on it instead of on log wording.
//!
//! It also answers the probes: [`Status::readiness`] (`/readyz`) and
//! [`Status::liveness`] (`/healthz`).
//!
//! Everything here changes rarely (a start, a rebalance, a reload, a dead
//! letter), so a mutex per piece is cheap; nothing on the per-event success
//! path touches it. The one exception, the poll thread's heartbeat, is an
//! atomic store per poll round. Counts and lag are the metrics' own
//! numbers, read when a view is made.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::metrics::PipelineState;

mod dead_letters;
mod pipeline;

pub use dead_letters::{
    Coordinates, DEAD_LETTER_HISTORY, DeadLetterRing, HeaderPreview, PREVIEW_CHARS, Preview,
    RecentDeadLetter,
};
pub use pipeline::{PipelineStatus, PluginVersion};

/// How many reloads the history keeps.
const RELOAD_HISTORY: usize = 64;
/// How long a poll thread may go without a heartbeat before the process
/// is unhealthy. A poll round waits at most 50 ms and never blocks on
/// plugins or the producer, so this only trips on a thread that hangs.
pub const HEARTBEAT_BOUND_MS: i64 = 30_000;
/// How long a pipeline may be between giving up partitions and getting its
/// new share before the process is not ready. A rebalance normally takes
/// seconds; one that waits on a member up to its `max.poll.interval.ms` is
/// an outage worth showing.
pub const REBALANCE_BOUND_MS: i64 = 30_000;

/// What became of a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Applied.
    Ok,
    /// Nothing changed: the new file or plugin was refused.
    Failed,
    /// Nothing changed: the edit needs a restart.
    Refused,
    /// Applied, but some pipelines could not start and are not running.
    Partial,
}

impl Outcome {
    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
            Outcome::Partial => "partial",
        }
    }
}

/// One reload, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reload {
    /// A plugin file changed.
    Plugin {
        at_ms: i64,
        outcome: Outcome,
        plugin: String,
        /// The digest that ran before.
        old: String,
        /// The digest of the new file, when it could be read.
        new: Option<String>,
        /// The pipelines that switched.
        pipelines: Vec<String>,
        error: Option<String>,
    },
    /// The config file changed.
    Config {
        at_ms: i64,
        outcome: Outcome,
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
        error: Option<String>,
    },
}

/// The status of one process: its pipelines and its reloads.
#[derive(Debug, Default)]
pub struct Status {
    running: Mutex<BTreeMap<String, Arc<PipelineStatus>>>,
    /// Pipelines that are configured but could not start, with why.
    failed: Mutex<BTreeMap<String, (PipelineConfig, String)>>,
    reloads: Mutex<VecDeque<Reload>>,
    /// Set once the process is stopping: it drains and takes no new work.
    draining: AtomicBool,
    /// The running config's `kafka.instance_id`.
    instance_id: Mutex<String>,
}

/// What a probe found: `Ok`, or why not, one reason per line.
pub type Probe = Result<(), String>;

impl Status {
    /// The running config's `kafka.instance_id` (set at start and when a
    /// reload applies a config).
    pub fn instance(&self, id: &str) {
        id.clone_into(&mut self.instance_id.lock());
    }

    /// The process is stopping (a stop signal came).
    pub fn draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// `/readyz` at `now_ms`: ready when not draining, no configured
    /// pipeline failed, and every running one has its plugins loaded (it
    /// exists only then), has joined its group, has no partition stopped
    /// and is not stuck in a rebalance for longer than
    /// [`REBALANCE_BOUND_MS`].
    pub fn readiness(&self, now_ms: i64) -> Probe {
        let mut why = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            why.push("draining: the process is stopping".to_owned());
        }
        why.extend(
            self.failed
                .lock()
                .keys()
                .map(|name| format!("pipeline `{name}` is not running")),
        );
        why.extend(
            self.running
                .lock()
                .values()
                .filter_map(|p| p.unready(now_ms)),
        );
        verdict(why)
    }

    /// `/healthz` at `now_ms`: healthy while every running pipeline's poll
    /// thread is alive and made progress within [`HEARTBEAT_BOUND_MS`].
    pub fn liveness(&self, now_ms: i64) -> Probe {
        verdict(
            self.running
                .lock()
                .values()
                .filter_map(|p| p.unhealthy(now_ms))
                .collect(),
        )
    }

    /// A pipeline is running.
    pub fn started(&self, pipeline: Arc<PipelineStatus>) {
        self.failed.lock().remove(pipeline.name());
        self.running
            .lock()
            .insert(pipeline.name().to_owned(), pipeline);
    }

    /// A pipeline stopped (removed, or about to restart).
    pub fn stopped(&self, name: &str) {
        self.running.lock().remove(name);
        self.failed.lock().remove(name);
        crate::metrics::global().pipeline_state(name, None);
    }

    /// A configured pipeline could not start.
    pub fn failed(&self, config: &PipelineConfig, error: String) {
        self.running.lock().remove(&config.name);
        self.failed
            .lock()
            .insert(config.name.clone(), (config.clone(), error));
        crate::metrics::global().pipeline_state(&config.name, Some(PipelineState::Failed));
    }

    /// Why a configured pipeline is not running, if it failed.
    pub fn failure(&self, name: &str) -> Option<String> {
        self.failed.lock().get(name).map(|(_, error)| error.clone())
    }

    /// A running pipeline's status.
    pub fn pipeline(&self, name: &str) -> Option<Arc<PipelineStatus>> {
        self.running.lock().get(name).cloned()
    }

    /// Records a reload (the oldest are forgotten).
    pub fn reloaded(&self, reload: Reload) {
        let mut reloads = self.reloads.lock();
        if reloads.len() == RELOAD_HISTORY {
            reloads.pop_front();
        }
        reloads.push_back(reload);
    }

    /// Everything, for `/api/status`.
    pub fn view(&self) -> StatusView {
        let mut pipelines: Vec<PipelineView> =
            self.running.lock().values().map(|p| p.view()).collect();
        pipelines.extend(self.failed.lock().values().map(|(config, error)| {
            let dead_letters_by_kind = crate::metrics::global().dead_letters_by_kind(&config.name);
            PipelineView {
                name: config.name.clone(),
                state: "failed",
                error: Some(error.clone()),
                inputs: config.inputs.clone(),
                output: config.output.clone(),
                dlq: config.dlq.clone(),
                group_id: config.group_id.clone(),
                started_at_ms: None,
                plugins: Vec::new(),
                assigned: Vec::new(),
                restoring: Vec::new(),
                stopped: Vec::new(),
                lag: Vec::new(),
                revocations: 0,
                joined: false,
                events: 0,
                outputs: 0,
                dead_letters: dead_letters_by_kind.values().sum(),
                dead_letters_by_kind,
                restarts: crate::metrics::global()
                    .pipeline(&config.name)
                    .restarts
                    .get(),
            }
        }));
        pipelines.sort_by(|a, b| a.name.cmp(&b.name));
        StatusView {
            instance_id: self.instance_id.lock().clone(),
            pipelines,
            reloads: self.reloads.lock().iter().cloned().collect(),
        }
    }
}

fn verdict(why: Vec<String>) -> Probe {
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("\n"))
    }
}

/// `/api/status`.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// `kafka.instance_id`: what tells this process apart in its groups'
    /// exactly-once transactional ids.
    pub instance_id: String,
    pub pipelines: Vec<PipelineView>,
    /// Oldest first.
    pub reloads: Vec<Reload>,
}

/// One pipeline in `/api/status`.
#[derive(Debug, Serialize)]
pub struct PipelineView {
    pub name: String,
    /// `running`, or `failed` (configured but not running; see `error`).
    pub state: &'static str,
    pub error: Option<String>,
    pub inputs: Vec<String>,
    pub output: String,
    pub dlq: String,
    pub group_id: String,
    pub started_at_ms: Option<i64>,
    /// The chain, in order.
    pub plugins: Vec<PluginVersion>,
    /// The partitions this process owns now.
    pub assigned: Vec<Partition>,
    /// Those of them that wait for their state to be restored (or, under
    /// exactly-once after an abort, for their committed offsets): paused
    /// meanwhile, while the others go on.
    pub restoring: Vec<Partition>,
    /// Those of them whose state could not be restored (a changelog
    /// record Sluice cannot read), with why: their events stay unread
    /// until they are assigned again, and `/readyz` says so.
    pub stopped: Vec<StoppedPartition>,
    /// The consumer lag of each of them, once librdkafka's statistics
    /// reported it.
    pub lag: Vec<PartitionLag>,
    /// How many partitions rebalances took away since it started.
    pub revocations: u64,
    /// Whether it has joined its consumer group (had its first assignment).
    pub joined: bool,
    /// Events processed and outputs written (since the process started).
    pub events: u64,
    pub outputs: u64,
    /// Dead letters since the process started, and by failure kind (every
    /// kind, 0 included): `sluice_dead_letters_total`.
    pub dead_letters: u64,
    pub dead_letters_by_kind: BTreeMap<&'static str, u64>,
    /// Times it was started again after it died or failed to start.
    pub restarts: u64,
}

/// A topic partition.
#[derive(Debug, Serialize)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
}

/// An assigned partition that stopped, and why.
#[derive(Debug, Serialize)]
pub struct StoppedPartition {
    pub topic: String,
    pub partition: i32,
    pub why: String,
}

/// The consumer lag of an assigned partition: `sluice_consumer_lag`.
#[derive(Debug, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// `None` until librdkafka's statistics reported it.
    pub lag: Option<i64>,
}

#[cfg(test)]
mod tests;
