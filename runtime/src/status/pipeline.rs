//! The live state of one running pipeline, shared by its threads: its
//! plugin versions, assignment, rebalances, heartbeat and latest dead
//! letters, and its view for `/api/status`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use super::{
    Coordinates, DeadLetterRing, HEARTBEAT_BOUND_MS, Partition, PartitionLag, PipelineView,
    REBALANCE_BOUND_MS, RecentDeadLetter, StoppedPartition,
};
use crate::clock::now_ms;
use crate::config::PipelineConfig;
use crate::envelope::DeadLetter;
use crate::metrics::{PipelineMetrics, PipelineState};

/// One plugin version a pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginVersion {
    pub name: String,
    pub digest: String,
    /// When this version started running in the pipeline.
    pub loaded_at_ms: i64,
    /// Instances of this plugin the pipeline has started since the process
    /// started, all versions: one per worker at start and at each reload,
    /// plus one to replace each instance that trapped.
    pub instances: u64,
}

/// The live state of one running pipeline, shared by its threads.
#[derive(Debug)]
pub struct PipelineStatus {
    config: PipelineConfig,
    started_at_ms: i64,
    plugins: Mutex<Vec<PluginVersion>>,
    assigned: Mutex<BTreeSet<(String, i32)>>,
    /// Assigned partitions that wait for their state (or, after an
    /// abort, their committed offsets): paused until recovered.
    restoring: Mutex<BTreeSet<(String, i32)>>,
    /// Assigned partitions whose state could not be restored, with why:
    /// their events stay unread until they are assigned again.
    stopped: Mutex<BTreeMap<(String, i32), String>>,
    revocations: AtomicU64,
    /// Set by the first rebalance that assigned it partitions (possibly
    /// none: another member may hold them all). Until then it is starting.
    joined: AtomicBool,
    /// When its poll thread last went round its loop (ms since the epoch).
    heartbeat_ms: AtomicI64,
    /// When a rebalance took partitions away and no assignment followed
    /// yet (ms since the epoch), or 0.
    rebalancing_since_ms: AtomicI64,
    /// Cleared when its poll thread ends, even by a panic.
    polling: AtomicBool,
    dead_letters: DeadLetterRing,
    metrics: PipelineMetrics,
}

impl PipelineStatus {
    /// A pipeline starting now with `plugins` (name, digest) in chain order.
    pub fn new(config: &PipelineConfig, plugins: Vec<(String, String)>) -> Self {
        let now = now_ms();
        crate::metrics::global().pipeline_state(&config.name, Some(PipelineState::Starting));
        PipelineStatus {
            metrics: crate::metrics::global().pipeline(&config.name),
            config: config.clone(),
            started_at_ms: now,
            plugins: Mutex::new(versions(plugins, now)),
            assigned: Mutex::new(BTreeSet::new()),
            restoring: Mutex::new(BTreeSet::new()),
            stopped: Mutex::new(BTreeMap::new()),
            revocations: AtomicU64::new(0),
            joined: AtomicBool::new(false),
            heartbeat_ms: AtomicI64::new(now),
            rebalancing_since_ms: AtomicI64::new(0),
            polling: AtomicBool::new(true),
            dead_letters: DeadLetterRing::default(),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// New plugin versions run from now on.
    pub fn swapped(&self, plugins: Vec<(String, String)>) {
        *self.plugins.lock() = versions(plugins, now_ms());
    }

    /// A rebalance gave it these partitions. They appear together, so a
    /// reader never sees part of one assignment.
    pub fn assigned<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        self.assigned
            .lock()
            .extend(partitions.into_iter().map(|(t, p)| (t.to_owned(), p)));
    }

    /// A rebalance gave it its share of the group's partitions, maybe none.
    pub fn joined(&self) {
        self.rebalancing_since_ms.store(0, Ordering::Relaxed);
        if !self.joined.swap(true, Ordering::Relaxed) {
            crate::metrics::global().pipeline_state(self.name(), Some(PipelineState::Running));
        }
    }

    /// Its poll thread is alive and going round its loop.
    pub fn heartbeat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Its poll thread ended (stopped, or panicked).
    pub fn poll_thread_ended(&self) {
        self.polling.store(false, Ordering::Relaxed);
    }

    /// Why it is not healthy at `now_ms`, if it is not.
    pub(super) fn unhealthy(&self, now_ms: i64) -> Option<String> {
        if !self.polling.load(Ordering::Relaxed) {
            return Some(format!("pipeline `{}`: its poll thread ended", self.name()));
        }
        let silent = now_ms - self.heartbeat_ms.load(Ordering::Relaxed);
        (silent > HEARTBEAT_BOUND_MS).then(|| {
            format!(
                "pipeline `{}`: its poll thread is stuck (no progress for {silent} ms)",
                self.name()
            )
        })
    }

    /// A rebalance took a partition away; it is rebalancing until its
    /// next assignment (under either protocol one follows, maybe empty).
    pub fn revoked(&self, topic: &str, partition: i32) {
        self.assigned.lock().remove(&(topic.to_owned(), partition));
        self.restoring.lock().remove(&(topic.to_owned(), partition));
        self.stopped.lock().remove(&(topic.to_owned(), partition));
        self.revocations.fetch_add(1, Ordering::Relaxed);
        let _ = self.rebalancing_since_ms.compare_exchange(
            0,
            now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// An assigned partition waits for its recovery (`true`), or is
    /// recovered (`false`).
    pub fn restoring(&self, topic: &str, partition: i32, waits: bool) {
        let key = (topic.to_owned(), partition);
        let mut restoring = self.restoring.lock();
        if waits {
            restoring.insert(key);
        } else {
            restoring.remove(&key);
        }
    }

    /// An assigned partition stopped because its state could not be
    /// restored (`Some(why)`), or goes on (`None`).
    pub fn stopped(&self, topic: &str, partition: i32, why: Option<String>) {
        let key = (topic.to_owned(), partition);
        let mut stopped = self.stopped.lock();
        match why {
            Some(why) => stopped.insert(key, why),
            None => stopped.remove(&key),
        };
    }

    /// The broker acknowledged `dead_letter` at `dlq`.
    pub fn dead_lettered(&self, dead_letter: &DeadLetter, dlq: Coordinates) {
        self.dead_letters
            .push(RecentDeadLetter::of(dead_letter, dlq));
    }

    /// Its latest dead letters since it started, newest first.
    pub fn dead_letters(&self) -> Vec<RecentDeadLetter> {
        self.dead_letters.latest()
    }

    /// When it started its run, in ms since the epoch.
    pub fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }

    /// Why it is not ready at `now_ms`, if it is not.
    pub(super) fn unready(&self, now_ms: i64) -> Option<String> {
        if !self.joined.load(Ordering::Relaxed) {
            return Some(format!(
                "pipeline `{}` has not joined its group yet",
                self.name()
            ));
        }
        if let Some(((topic, partition), why)) = self.stopped.lock().iter().next() {
            return Some(format!(
                "pipeline `{}`: partition {topic}/{partition} is stopped: {why}",
                self.name()
            ));
        }
        let since = self.rebalancing_since_ms.load(Ordering::Relaxed);
        let took = now_ms - since;
        (since != 0 && took > REBALANCE_BOUND_MS).then(|| {
            format!(
                "pipeline `{}` has been rebalancing for {} s",
                self.name(),
                took / 1000
            )
        })
    }

    /// What `/api/status` shows of it.
    pub fn view(&self) -> PipelineView {
        let metrics = crate::metrics::global();
        let assigned: Vec<Partition> = self
            .assigned
            .lock()
            .iter()
            .map(|(topic, partition)| Partition {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        let dead_letters_by_kind = metrics.dead_letters_by_kind(self.name());
        PipelineView {
            name: self.config.name.clone(),
            state: "running",
            error: None,
            inputs: self.config.inputs.clone(),
            output: self.config.output.clone(),
            dlq: self.config.dlq.clone(),
            group_id: self.config.group_id.clone(),
            started_at_ms: Some(self.started_at_ms),
            plugins: self
                .plugins
                .lock()
                .iter()
                .map(|p| PluginVersion {
                    instances: crate::metrics::global()
                        .instance(&self.config.name, &p.name)
                        .starts
                        .get(),
                    ..p.clone()
                })
                .collect(),
            lag: assigned
                .iter()
                .map(|p| PartitionLag {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    lag: metrics.consumer_lag_of(self.name(), &p.topic, p.partition),
                })
                .collect(),
            assigned,
            restoring: self
                .restoring
                .lock()
                .iter()
                .map(|(topic, partition)| Partition {
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect(),
            stopped: self
                .stopped
                .lock()
                .iter()
                .map(|((topic, partition), why)| StoppedPartition {
                    topic: topic.clone(),
                    partition: *partition,
                    why: why.clone(),
                })
                .collect(),
            revocations: self.revocations.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            events: self.metrics.events.get(),
            outputs: self.metrics.outputs.get(),
            dead_letters: dead_letters_by_kind.values().sum(),
            dead_letters_by_kind,
            restarts: self.metrics.restarts.get(),
        }
    }
}

fn versions(plugins: Vec<(String, String)>, at: i64) -> Vec<PluginVersion> {
    plugins
        .into_iter()
        .map(|(name, digest)| PluginVersion {
            name,
            digest,
            loaded_at_ms: at,
            instances: 0,
        })
        .collect()
}
