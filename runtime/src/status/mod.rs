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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::PipelineConfig;
use crate::dlq::DeadLetter;
use crate::metrics::{PipelineMetrics, PipelineState};

mod dead_letters;

pub use dead_letters::{
    Coordinates, DEAD_LETTER_HISTORY, DeadLetterRing, HeaderPreview, PREVIEW_CHARS, Preview,
    RecentDeadLetter,
};

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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

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
        *lock(&self.plugins) = versions(plugins, now_ms());
    }

    /// A rebalance gave it these partitions. They appear together, so a
    /// reader never sees part of one assignment.
    pub fn assigned<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        lock(&self.assigned).extend(partitions.into_iter().map(|(t, p)| (t.to_owned(), p)));
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
    fn unhealthy(&self, now_ms: i64) -> Option<String> {
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
        lock(&self.assigned).remove(&(topic.to_owned(), partition));
        self.revocations.fetch_add(1, Ordering::Relaxed);
        let _ = self.rebalancing_since_ms.compare_exchange(
            0,
            now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
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
    fn unready(&self, now_ms: i64) -> Option<String> {
        if !self.joined.load(Ordering::Relaxed) {
            return Some(format!(
                "pipeline `{}` has not joined its group yet",
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
        let assigned: Vec<Partition> = lock(&self.assigned)
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
            plugins: lock(&self.plugins)
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
}

/// What a probe found: `Ok`, or why not, one reason per line.
pub type Probe = Result<(), String>;

impl Status {
    /// The process is stopping (a stop signal came).
    pub fn draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// `/readyz` at `now_ms`: ready when not draining, no configured
    /// pipeline failed, and every running one has its plugins loaded (it
    /// exists only then), has joined its group and is not stuck in a
    /// rebalance for longer than [`REBALANCE_BOUND_MS`].
    pub fn readiness(&self, now_ms: i64) -> Probe {
        let mut why = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            why.push("draining: the process is stopping".to_owned());
        }
        why.extend(
            lock(&self.failed)
                .keys()
                .map(|name| format!("pipeline `{name}` is not running")),
        );
        why.extend(
            lock(&self.running)
                .values()
                .filter_map(|p| p.unready(now_ms)),
        );
        verdict(why)
    }

    /// `/healthz` at `now_ms`: healthy while every running pipeline's poll
    /// thread is alive and made progress within [`HEARTBEAT_BOUND_MS`].
    pub fn liveness(&self, now_ms: i64) -> Probe {
        verdict(
            lock(&self.running)
                .values()
                .filter_map(|p| p.unhealthy(now_ms))
                .collect(),
        )
    }

    /// A pipeline is running.
    pub fn started(&self, pipeline: Arc<PipelineStatus>) {
        lock(&self.failed).remove(pipeline.name());
        lock(&self.running).insert(pipeline.name().to_owned(), pipeline);
    }

    /// A pipeline stopped (removed, or about to restart).
    pub fn stopped(&self, name: &str) {
        lock(&self.running).remove(name);
        lock(&self.failed).remove(name);
        crate::metrics::global().pipeline_state(name, None);
    }

    /// A configured pipeline could not start.
    pub fn failed(&self, config: &PipelineConfig, error: String) {
        lock(&self.running).remove(&config.name);
        lock(&self.failed).insert(config.name.clone(), (config.clone(), error));
        crate::metrics::global().pipeline_state(&config.name, Some(PipelineState::Failed));
    }

    /// Why a configured pipeline is not running, if it failed.
    pub fn failure(&self, name: &str) -> Option<String> {
        lock(&self.failed).get(name).map(|(_, error)| error.clone())
    }

    /// A running pipeline's status.
    pub fn pipeline(&self, name: &str) -> Option<Arc<PipelineStatus>> {
        lock(&self.running).get(name).cloned()
    }

    /// Records a reload (the oldest are forgotten).
    pub fn reloaded(&self, reload: Reload) {
        let mut reloads = lock(&self.reloads);
        if reloads.len() == RELOAD_HISTORY {
            reloads.pop_front();
        }
        reloads.push_back(reload);
    }

    /// Everything, for `/api/status`.
    pub fn view(&self) -> StatusView {
        let mut pipelines: Vec<PipelineView> =
            lock(&self.running).values().map(|p| p.view()).collect();
        pipelines.extend(lock(&self.failed).values().map(|(config, error)| {
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
            pipelines,
            reloads: lock(&self.reloads).iter().cloned().collect(),
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

/// The consumer lag of an assigned partition: `sluice_consumer_lag`.
#[derive(Debug, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// `None` until librdkafka's statistics reported it.
    pub lag: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> PipelineConfig {
        PipelineConfig::new(name, vec!["in".into()], Vec::new(), "out", "dlq")
    }

    #[test]
    fn pipelines_show_their_partitions_plugins_and_failures() {
        let status = Status::default();
        let a = Arc::new(PipelineStatus::new(
            &config("a"),
            vec![("p".into(), "sha256:1".into())],
        ));
        status.started(a.clone());
        a.assigned([("in", 1), ("in", 0)]);
        a.revoked("in", 1);
        a.swapped(vec![("p".into(), "sha256:2".into())]);
        status.failed(&config("b"), "no luck".into());

        let view = serde_json::to_value(status.view()).expect("serializes");
        let pipelines = view["pipelines"].as_array().expect("a list");
        assert_eq!(pipelines.len(), 2);
        assert_eq!(pipelines[0]["name"], "a");
        assert_eq!(pipelines[0]["state"], "running");
        assert_eq!(
            pipelines[0]["assigned"],
            serde_json::json!([{"topic": "in", "partition": 0}])
        );
        assert_eq!(pipelines[0]["revocations"], 1);
        assert_eq!(pipelines[0]["plugins"][0]["digest"], "sha256:2");
        assert_eq!(pipelines[1]["state"], "failed");
        assert_eq!(pipelines[1]["error"], "no luck");

        status.started(Arc::new(PipelineStatus::new(&config("b"), Vec::new())));
        status.stopped("a");
        let view = status.view();
        let names: Vec<(&str, &str)> = view
            .pipelines
            .iter()
            .map(|p| (p.name.as_str(), p.state))
            .collect();
        assert_eq!(names, [("b", "running")]);
    }

    #[test]
    fn ready_once_every_pipeline_joined_and_not_while_failed_or_draining() {
        let status = Status::default();
        assert_eq!(status.readiness(now_ms()), Ok(()), "nothing configured");
        let a = Arc::new(PipelineStatus::new(&config("a"), Vec::new()));
        status.started(a.clone());
        assert_eq!(
            status.readiness(now_ms()),
            Err("pipeline `a` has not joined its group yet".into())
        );
        // Joined with no partitions (another member holds them all).
        a.joined();
        assert_eq!(status.readiness(now_ms()), Ok(()));
        assert_eq!(
            serde_json::to_value(status.view()).expect("serializes")["pipelines"][0]["joined"],
            true
        );

        status.failed(&config("b"), "no luck".into());
        assert_eq!(
            status.readiness(now_ms()),
            Err("pipeline `b` is not running".into())
        );
        status.stopped("b");

        // A rebalance took its partition; a short one keeps it ready.
        a.assigned([("in", 0)]);
        a.revoked("in", 0);
        assert_eq!(status.readiness(now_ms()), Ok(()));
        let later = now_ms() + REBALANCE_BOUND_MS + 2_000;
        let long = status.readiness(later).expect_err("rebalancing for long");
        assert!(
            long.starts_with("pipeline `a` has been rebalancing for 3"),
            "{long}"
        );
        a.joined();
        assert_eq!(status.readiness(later), Ok(()), "assigned again");

        status.draining();
        assert_eq!(
            status.readiness(now_ms()),
            Err("draining: the process is stopping".into())
        );
    }

    #[test]
    fn unhealthy_when_a_poll_thread_ends_or_stops_beating() {
        let status = Status::default();
        let a = Arc::new(PipelineStatus::new(&config("a"), Vec::new()));
        status.started(a.clone());
        let now = now_ms();
        a.heartbeat();
        assert_eq!(status.liveness(now), Ok(()));
        let later = now_ms() + HEARTBEAT_BOUND_MS + 1_000;
        let stuck = status
            .liveness(later)
            .expect_err("no heartbeat for too long");
        assert!(
            stuck.starts_with("pipeline `a`: its poll thread is stuck"),
            "{stuck}"
        );
        a.poll_thread_ended();
        assert_eq!(
            status.liveness(now),
            Err("pipeline `a`: its poll thread ended".into())
        );
    }

    #[test]
    fn the_reload_history_is_bounded_and_tagged_by_kind() {
        let status = Status::default();
        for i in 0..RELOAD_HISTORY + 3 {
            status.reloaded(Reload::Config {
                at_ms: i as i64,
                outcome: Outcome::Ok,
                added: Vec::new(),
                removed: Vec::new(),
                changed: Vec::new(),
                error: None,
            });
        }
        let view = serde_json::to_value(status.view()).expect("serializes");
        let reloads = view["reloads"].as_array().expect("a list");
        assert_eq!(reloads.len(), RELOAD_HISTORY);
        assert_eq!(reloads[0]["at_ms"], 3, "the oldest went first");
        assert_eq!(reloads[0]["kind"], "config");
        assert_eq!(reloads[0]["outcome"], "ok");
    }
}
