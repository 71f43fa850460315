//! A running pipeline: a consumer-group member that reads its input topics,
//! batches events per partition, fans the batches out to worker threads
//! (one chain of plugin instances each), and stores offsets only when all
//! that an event led to is safely written.
//!
//! Threads and what they own:
//! - the *poll thread* owns the consumer and the [`tracker::Tracker`]; it
//!   never blocks on anything but the consumer's poll, so news of done
//!   batches and rebalances are always served;
//! - each *worker* owns a [`chain::Chain`] and processes the batches of the
//!   partitions hashed to it, in order;
//! - the producer's own thread serves delivery reports: each releases its
//!   record's [`batch::Ticket`], and the last one of a batch tells the poll
//!   thread through the control channel; failed records go there too.
//!
//! Back-pressure: while a partition has too many offsets in flight, or its
//! worker's inbox is full, the poll thread stops reading and only serves
//! the control channel; librdkafka's own bounded prefetch queue holds what
//! arrives meanwhile. Only if that lasts [`PAUSE_AFTER`] are the partitions
//! over their limits paused at the consumer, to be resumed when they drain:
//! librdkafka drops a paused partition's prefetched messages and applies a
//! resume only when its fetcher next wakes up, up to a second later, so
//! pausing for every short burst cut throughput to a few thousand events/s.
//! Every queue is bounded.

pub mod batch;
pub mod chain;
pub mod sink;
pub mod tracker;
pub mod worker;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaConfig, PipelineConfig};
use crate::kafka;
use crate::plugin::{CompiledPlugin, Event, InstanceSettings, PluginRunner};
use batch::{Batch, Ticket};
use chain::Chain;
use sink::{Control, Sink};
use tracker::{Tp, Tracker};
use worker::{WorkerMsg, WorkerShared};

/// Batches a worker may have queued before its partitions are paused.
const WORKER_INBOX: usize = 8;
/// News of done batches and failed records waiting for the poll thread.
const CONTROL_CAPACITY: usize = 1 << 16;
/// How long a consumer poll waits for the first event of a round when
/// nothing is in flight.
const POLL_WAIT: Duration = Duration::from_millis(50);
/// The same while records are in flight or partitions are paused: delivery
/// reports wait in the control channel while the poll blocks, holding back
/// offsets, resumes and a stop. Also how long a held-off poll thread waits
/// for news on the control channel.
const BUSY_POLL_WAIT: Duration = Duration::from_millis(1);
/// How long the poll thread holds off reading before it pauses the
/// partitions over their limits (and goes back to serving rebalances).
const PAUSE_AFTER: Duration = Duration::from_millis(200);
/// Input offsets a pipeline may have in flight (read, not yet done), shared
/// out over its partitions. A record stays in flight for the worker's
/// queue plus `linger.ms` plus a broker round trip, ~20 ms on the mock
/// broker: the old limit of 2048 per partition capped one partition at
/// ~300k events/s; this allows ~1.5M/s. Bounds memory too: 32 MiB of 1 KB
/// events.
const IN_FLIGHT_BUDGET: usize = 32 * 1024;
/// How long shutdown waits for outstanding records before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay before a refused dead letter is written again. librdkafka has
/// already retried it for `message.timeout.ms` by then.
const DLQ_RETRY: Duration = Duration::from_millis(500);

/// New plugin instances for every worker of a pipeline, ready to swap in.
pub struct PreparedSwap {
    chains: Vec<Chain>,
}

/// A pipeline started by [`Pipeline::start`]; stop it with
/// [`Pipeline::stop`] to drain and commit.
pub struct Pipeline {
    config: PipelineConfig,
    cancel: CancellationToken,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    workers: Vec<SyncSender<WorkerMsg>>,
}

impl Pipeline {
    /// Starts one instance of every step per worker (running `init`), then
    /// the consumer. Plugin problems are reported before joining the group.
    pub fn start(
        config: &PipelineConfig,
        kafka: &KafkaConfig,
        brokers: &str,
        plugins: &[Arc<CompiledPlugin>],
    ) -> anyhow::Result<Pipeline> {
        let chains = (0..config.workers.max(1))
            .map(|_| build_chain(config, plugins))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let (control_tx, control_rx) = mpsc::sync_channel(CONTROL_CAPACITY);
        let sink = Arc::new(
            Sink::new(
                &kafka::producer_config(kafka, brokers),
                control_tx.clone(),
                config.dlq.clone(),
            )
            .with_context(|| format!("pipeline {}: cannot create the producer", config.name))?,
        );
        let context = GroupContext::default();
        let consumer: BaseConsumer<GroupContext> =
            kafka::consumer_config(kafka, brokers, &config.group_id)
                .create_with_context(context)
                .with_context(|| format!("pipeline {}: cannot create the consumer", config.name))?;
        let topics: Vec<&str> = config.inputs.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .with_context(|| format!("pipeline {}: cannot subscribe to {topics:?}", config.name))?;

        let shared = Arc::new(WorkerShared {
            pipeline: config.name.as_str().into(),
            output_topic: config.output.clone(),
            allowed_outputs: config.allowed_outputs.clone(),
            origin_headers: config.origin_headers,
            retry: config.retry.clone(),
            sink: sink.clone(),
            control: control_tx,
            metrics: crate::metrics::global().pipeline(&config.name),
        });
        let mut worker_txs = Vec::new();
        let mut worker_threads = Vec::new();
        for (index, chain) in chains.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(WORKER_INBOX);
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sluice-{}-w{index}", config.name))
                .spawn(move || worker::run(chain, rx, shared))
                .context("cannot start a worker thread")?;
            worker_txs.push(tx);
            worker_threads.push(thread);
        }
        drop(shared);

        let cancel = CancellationToken::new();
        let mut poller = Poller {
            name: config.name.clone(),
            consumer,
            sink,
            control: control_rx,
            workers: worker_txs.clone(),
            worker_threads,
            parked: (0..worker_txs.len()).map(|_| VecDeque::new()).collect(),
            tracker: Tracker::default(),
            assigned: FxHashMap::default(),
            last_tp: None,
            pending: FxHashMap::default(),
            paused: FxHashMap::default(),
            held_since: None,
            to_store: FxHashMap::default(),
            dlq_retries: Vec::new(),
            batch_size: config.batch_size.max(1),
            min_in_flight: (config.batch_size.max(1) * 8).max(1024),
            cancel: cancel.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("sluice-{}-poll", config.name))
            .spawn(move || poller.run())
            .context("cannot start the poll thread")?;
        tracing::info!(
            pipeline = %config.name,
            inputs = ?config.inputs,
            output = %config.output,
            dlq = %config.dlq,
            plugins = ?plugins.iter().map(|p| format!("{}@{}", p.name(), short(p.digest()))).collect::<Vec<_>>(),
            workers = config.workers,
            "pipeline started"
        );
        Ok(Pipeline {
            config: config.clone(),
            cancel,
            thread: Some(thread),
            workers: worker_txs,
        })
    }

    /// The configuration it runs.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Starts fresh instances of `plugins` (running `init`) for every
    /// worker, off the hot path. Nothing changes until [`Pipeline::swap`].
    pub fn prepare(&self, plugins: &[Arc<CompiledPlugin>]) -> anyhow::Result<PreparedSwap> {
        let chains = (0..self.workers.len())
            .map(|_| build_chain(&self.config, plugins))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(PreparedSwap { chains })
    }

    /// Hands each worker its new instances; each switches between two
    /// batches, so every partition (owned by one worker) switches at one
    /// point in its stream.
    pub fn swap(&self, prepared: PreparedSwap) -> anyhow::Result<()> {
        for (tx, chain) in self.workers.iter().zip(prepared.chains) {
            tx.send(WorkerMsg::Swap(chain))
                .map_err(|_| anyhow::anyhow!("pipeline {} is stopping", self.config.name))?;
        }
        Ok(())
    }

    /// Asks the pipeline to stop without waiting; [`Pipeline::stop`] waits.
    pub fn begin_stop(&self) {
        self.cancel.cancel();
    }

    /// Stops fetching, finishes the batches in flight, waits for their
    /// records to be acknowledged, commits and leaves the group.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.workers.clear();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("pipeline {}: poll thread panicked", self.config.name),
            None => Ok(()),
        }
    }

    /// Whether the pipeline stopped by itself (a fatal error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn build_chain(config: &PipelineConfig, plugins: &[Arc<CompiledPlugin>]) -> anyhow::Result<Chain> {
    let runners = config
        .steps
        .iter()
        .zip(plugins)
        .map(|(step, plugin)| {
            let settings = Arc::new(InstanceSettings {
                limits: config.limits.clone(),
                sandbox: config.sandbox.clone(),
                config: step.config.clone(),
            });
            PluginRunner::start(plugin.clone(), settings)
                .with_context(|| format!("pipeline {}", config.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Chain::new(runners))
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Rebalance news, collected in the consumer's callbacks (which run inside
/// `poll` on the poll thread) and handled right after.
#[derive(Default)]
struct GroupContext {
    news: Mutex<Vec<GroupNews>>,
}

enum GroupNews {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.push(GroupNews::Revoked(partitions_of(tpl)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.push(GroupNews::Assigned(partitions_of(tpl))),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl GroupContext {
    fn push(&self, news: GroupNews) {
        self.news
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(news);
    }

    fn take(&self) -> Vec<GroupNews> {
        std::mem::take(&mut *self.news.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A dead letter waiting to be written again.
struct DlqRetry {
    at: Instant,
    ticket: Ticket,
    index: usize,
    dead_letter: Arc<crate::dlq::DeadLetter>,
}

/// The poll thread's state.
struct Poller {
    name: String,
    consumer: BaseConsumer<GroupContext>,
    sink: Arc<Sink>,
    control: Receiver<Control>,
    workers: Vec<SyncSender<WorkerMsg>>,
    worker_threads: Vec<JoinHandle<()>>,
    /// Batches that did not fit a worker's inbox, per worker, in order.
    parked: Vec<VecDeque<Ticket>>,
    tracker: Tracker,
    /// Assigned partitions by (topic, partition), with their `Tp`.
    assigned: FxHashMap<(String, i32), Tp>,
    /// The partition of the last event read (see `accept`).
    last_tp: Option<Tp>,
    /// Events read but not yet dispatched, per partition.
    pending: FxHashMap<Tp, Vec<Event>>,
    /// Partitions paused for back-pressure.
    paused: FxHashMap<Tp, ()>,
    /// Since when reading has been held off for back-pressure.
    held_since: Option<Instant>,
    /// Offsets released by the tracker, to store at the end of a drain.
    to_store: FxHashMap<Tp, i64>,
    dlq_retries: Vec<DlqRetry>,
    batch_size: usize,
    /// The in-flight limit of a partition never goes below this.
    min_in_flight: usize,
    cancel: CancellationToken,
}

impl Poller {
    fn run(&mut self) -> anyhow::Result<()> {
        while !self.cancel.is_cancelled() {
            if self.must_hold_off() {
                self.hold_off();
            } else {
                self.held_since = None;
                self.poll_round();
            }
            self.handle_group_news();
            self.dispatch_all();
            self.drain_control();
            self.retry_dead_letters();
            self.update_pauses();
        }
        self.shutdown()
    }

    /// Whether a partition still being read is over its limits.
    fn must_hold_off(&self) -> bool {
        self.assigned
            .values()
            .any(|tp| !self.paused.contains_key(tp) && self.over_limit(tp))
    }

    /// Its worker has batches waiting for room, or it has too many offsets
    /// in flight.
    fn over_limit(&self, tp: &Tp) -> bool {
        !self.parked[worker_of(tp, self.workers.len())].is_empty()
            || self.tracker.in_flight(tp) > self.max_in_flight()
    }

    /// Offsets a partition may have in flight: its share of
    /// [`IN_FLIGHT_BUDGET`], at least `min_in_flight`.
    fn max_in_flight(&self) -> usize {
        (IN_FLIGHT_BUDGET / self.assigned.len().max(1)).max(self.min_in_flight)
    }

    /// Back-pressure without touching the consumer: waits for the next
    /// control message and hands parked batches on as room frees up. If
    /// that has gone on for [`PAUSE_AFTER`], pauses the partitions over
    /// their limits so the others (and rebalances) are served again.
    fn hold_off(&mut self) {
        let since = *self.held_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= PAUSE_AFTER {
            let over: Vec<Tp> = self
                .assigned
                .values()
                .filter(|tp| !self.paused.contains_key(*tp) && self.over_limit(tp))
                .cloned()
                .collect();
            for tp in over {
                self.pause(&tp);
            }
            self.held_since = None;
            return;
        }
        if let Ok(control) = self.control.recv_timeout(BUSY_POLL_WAIT) {
            self.apply(control);
            self.drain_control();
        }
        self.unpark();
    }

    /// Reads what is available, up to a few batches' worth.
    fn poll_round(&mut self) {
        let mut wait = if self.paused.is_empty() && self.tracker.is_idle() {
            POLL_WAIT
        } else {
            BUSY_POLL_WAIT
        };
        for _ in 0..self.batch_size * 4 {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    let event = to_event(&message);
                    drop(message);
                    self.accept(event);
                }
                Some(Err(e)) => {
                    tracing::warn!(pipeline = %self.name, error = %e, "consumer error");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
    }

    fn accept(&mut self, event: Event) {
        // Rebalance callbacks run inside poll; apply them before routing.
        self.handle_group_news();
        // Events come in runs of one partition: remember the last one's
        // `Tp` rather than build a `(String, i32)` key for every event.
        let tp = match &self.last_tp {
            Some(tp) if tp.partition == event.partition && *tp.topic == *event.topic => tp.clone(),
            _ => {
                let key = (event.topic.clone(), event.partition);
                let Some(tp) = self.assigned.get(&key).cloned() else {
                    // Only possible for a partition just revoked: its offsets
                    // are no longer ours to store, so its new owner reads it
                    // again.
                    tracing::debug!(
                        topic = key.0,
                        partition = key.1,
                        "event of an unassigned partition; left to its owner"
                    );
                    return;
                };
                self.last_tp = Some(tp.clone());
                tp
            }
        };
        // Sized once: growing it to a batch re-copied ~30 KB per batch.
        let batch_size = self.batch_size;
        let batch = self
            .pending
            .entry(tp.clone())
            .or_insert_with(|| Vec::with_capacity(batch_size));
        batch.push(event);
        if batch.len() >= self.batch_size {
            self.dispatch(&tp);
        }
    }

    fn handle_group_news(&mut self) {
        for news in self.consumer.context().take() {
            match news {
                GroupNews::Assigned(list) => {
                    for (topic, partition) in list {
                        let tp = Tp {
                            topic: topic.as_str().into(),
                            partition,
                        };
                        self.tracker.assign(tp.clone());
                        // A partition we paused and lost may come back still
                        // paused in librdkafka; we no longer track it as
                        // paused, so make sure it is read.
                        self.set_paused(&tp, false);
                        tracing::info!(pipeline = %self.name, topic, partition, "partition assigned");
                        self.assigned.insert((topic, partition), tp);
                    }
                }
                GroupNews::Revoked(list) => {
                    for (topic, partition) in list {
                        self.last_tp = None;
                        if let Some(tp) = self.assigned.remove(&(topic.clone(), partition)) {
                            self.tracker.revoke(&tp);
                            self.to_store.remove(&tp);
                            self.pending.remove(&tp);
                            self.paused.remove(&tp);
                            tracing::info!(pipeline = %self.name, topic, partition, "partition revoked");
                        }
                    }
                }
            }
        }
    }

    fn dispatch_all(&mut self) {
        let tps: Vec<Tp> = self.pending.keys().cloned().collect();
        for tp in tps {
            self.dispatch(&tp);
        }
        self.unpark();
    }

    /// Hands a partition's pending events to its worker.
    fn dispatch(&mut self, tp: &Tp) {
        let Some(events) = self.pending.remove(tp).filter(|e| !e.is_empty()) else {
            return;
        };
        let end = events.last().map_or(0, |e| e.offset + 1);
        let Some((generation, seq)) = self.tracker.dispatched(tp, events.len(), end) else {
            return;
        };
        let batch = Batch::dispatch(tp.clone(), generation, seq, events);
        // A parked batch makes the poll thread hold off reading (see
        // `must_hold_off`); pausing here would cost far more.
        let worker = worker_of(tp, self.workers.len());
        if !self.parked[worker].is_empty() {
            self.parked[worker].push_back(batch);
            return;
        }
        match self.workers[worker].try_send(WorkerMsg::Batch(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(WorkerMsg::Batch(batch))) => {
                self.parked[worker].push_back(batch);
            }
            Err(_) => tracing::error!(pipeline = %self.name, "a worker is gone"),
        }
    }

    /// Moves parked batches into worker inboxes as room frees up.
    fn unpark(&mut self) {
        for (worker, queue) in self.parked.iter_mut().enumerate() {
            while let Some(batch) = queue.pop_front() {
                match self.workers[worker].try_send(WorkerMsg::Batch(batch)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(WorkerMsg::Batch(batch))) => {
                        queue.push_front(batch);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }

    fn drain_control(&mut self) {
        while let Ok(control) = self.control.try_recv() {
            self.apply(control);
        }
        self.store_offsets();
    }

    /// Hands the offsets the tracker released to librdkafka, one call for
    /// all partitions. Storing per acknowledgement cost a topic handle
    /// lookup and a lock in librdkafka for every record written.
    fn store_offsets(&mut self) {
        if self.to_store.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(self.to_store.len());
        for (tp, offset) in self.to_store.drain() {
            // `offset` is the next one to read, which is what a list
            // stores (unlike `store_offset`, which adds one).
            if let Err(e) =
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
            {
                tracing::debug!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, error = %e, "cannot store offset");
            }
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::debug!(pipeline = %self.name, error = %e, offsets = ?tpl, "cannot store offsets");
        }
        // librdkafka pins the partitions of a list it stored from; drop it
        // now, never after the consumer.
        drop(tpl);
    }

    fn apply(&mut self, control: Control) {
        match control {
            Control::Done {
                tp,
                generation,
                seq,
            } => {
                // `offset` is the next one to read; stored with the others
                // at the end of the drain (see `store_offsets`).
                if let Some(offset) = self.tracker.done(&tp, generation, seq) {
                    self.to_store.insert(tp, offset);
                }
            }
            Control::OutputFailed {
                ticket,
                index,
                dead_letter,
            } => {
                let (tp, offset) = located(&ticket, index);
                tracing::warn!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, "an output could not be written; dead-lettering its event");
                self.sink.send_dead_letter(ticket, index, dead_letter);
            }
            Control::DeadLetterFailed {
                ticket,
                index,
                dead_letter,
                error,
            } => {
                let (tp, offset) = located(&ticket, index);
                tracing::error!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, %error, "cannot write to the DLQ; the partition waits and retries");
                self.dlq_retries.push(DlqRetry {
                    at: Instant::now() + DLQ_RETRY,
                    ticket,
                    index,
                    dead_letter,
                });
            }
        }
    }

    fn retry_dead_letters(&mut self) {
        let now = Instant::now();
        let due: Vec<DlqRetry>;
        (due, self.dlq_retries) = std::mem::take(&mut self.dlq_retries)
            .into_iter()
            .partition(|r| r.at <= now);
        for retry in due {
            let batch = retry.ticket.batch();
            if self.tracker.generation(&batch.tp) != Some(batch.generation) {
                // Revoked: the partition's new owner reads the event again.
                continue;
            }
            self.sink
                .send_dead_letter(retry.ticket, retry.index, retry.dead_letter);
        }
    }

    /// Resumes paused partitions that have drained. (Partitions are paused
    /// by `hold_off`.)
    fn update_pauses(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let parked: Vec<Tp> = self
            .parked
            .iter()
            .flat_map(|q| q.iter().map(|t| t.batch().tp.clone()))
            .collect();
        let resumable: Vec<Tp> = self
            .paused
            .keys()
            .filter(|tp| {
                !parked.contains(tp) && self.tracker.in_flight(tp) <= self.max_in_flight() / 2
            })
            .cloned()
            .collect();
        for tp in resumable {
            self.paused.remove(&tp);
            self.set_paused(&tp, false);
        }
    }

    fn pause(&mut self, tp: &Tp) {
        if self.paused.insert(tp.clone(), ()).is_none() {
            self.set_paused(tp, true);
        }
    }

    fn set_paused(&self, tp: &Tp, paused: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.topic, tp.partition);
        let result = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        if let Err(e) = result {
            tracing::debug!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, paused, error = %e, "cannot pause/resume");
        }
    }

    /// Drains: dispatches what was read, lets workers finish, waits for
    /// every record to be acknowledged, stores and commits offsets.
    fn shutdown(&mut self) -> anyhow::Result<()> {
        tracing::info!(pipeline = %self.name, "stopping: draining in-flight events");
        self.handle_group_news();
        self.dispatch_all();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // Parked batches still need a worker; feed them while draining.
        while self.parked.iter().any(|q| !q.is_empty()) && Instant::now() < deadline {
            self.unpark();
            self.drain_control();
            std::thread::sleep(Duration::from_millis(5));
        }
        // Tell each worker to finish once its inbox is done. Dropping our
        // senders is not enough: `Pipeline` holds senders too (for swaps)
        // until `stop`, so after `begin_stop` the drain would wait for it.
        for tx in self.workers.clone() {
            loop {
                match tx.try_send(WorkerMsg::Stop) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                    Err(TrySendError::Full(_)) if Instant::now() < deadline => {
                        self.drain_control();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(TrySendError::Full(_)) => break,
                }
            }
        }
        self.workers.clear();
        for thread in std::mem::take(&mut self.worker_threads) {
            while !thread.is_finished() {
                self.drain_control();
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = thread.join();
        }
        loop {
            self.drain_control();
            self.retry_dead_letters();
            let in_flight = self.sink.flush(Duration::from_millis(100));
            self.drain_control();
            if (in_flight == 0 && self.dlq_retries.is_empty()) || Instant::now() >= deadline {
                if !self.tracker.is_idle() {
                    tracing::warn!(pipeline = %self.name, "stopping with events still in flight; they will be processed again");
                }
                break;
            }
        }
        match self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            Ok(()) => {}
            // Nothing stored since the last commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => tracing::warn!(pipeline = %self.name, error = %e, "final commit failed"),
        }
        self.consumer.unsubscribe();
        tracing::info!(pipeline = %self.name, "stopped");
        Ok(())
    }
}

/// The partition and offset of event `index` of a ticket's batch, for logs.
fn located(ticket: &Ticket, index: usize) -> (&Tp, i64) {
    (
        &ticket.batch().tp,
        ticket.event(index).map_or(-1, |e| e.offset),
    )
}

/// The worker that owns a partition.
fn worker_of(tp: &Tp, workers: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tp.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}

/// Copies a Kafka message into the event a plugin sees.
fn to_event(message: &BorrowedMessage<'_>) -> Event {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Event {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}
