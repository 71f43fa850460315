//! The poll loop: the thread that owns the consumer and the at-least-once
//! bookkeeping. It reads events, hands them to workers in batches, applies
//! the news of done batches and failed records, stores offsets, and on
//! stop drains everything in flight and commits. It never blocks on
//! anything but the consumer's poll, the control channel or a call to the
//! transactional producer, so rebalances and acknowledgements are always
//! served: restores and committed-offset lookups run on the recovery
//! thread ([`crate::pipeline::recovery`]), with their partitions paused.
//!
//! - this module: the read loop, the news of done batches and failed
//!   records, offsets (at-least-once), shutdown;
//! - [`news`]: what the control channel reports: done batches, and
//!   records the broker refused, dead-lettered or written again;
//! - [`transactions`]: exactly-once: committing the open transaction with
//!   its offsets, or aborting it and going back to the last commit;
//! - [`restore`]: partitions waiting for their state (or their committed
//!   offsets), and the recovery thread's answers.

mod news;
mod restore;
mod transactions;

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashSet;
use tokio_util::sync::CancellationToken;

use super::control::Control;
use super::dispatch::Dispatcher;
use super::group::{Assignment, GroupContext, GroupNews};
use super::live::Live;
use super::pressure::{Load, Pressure};
use super::recovery::Recovery;
use super::refused::RefusedOutputs;
use super::sink::Sink;
use super::tracker::Tracker;
use super::worker::WorkerMsg;
use crate::kafka::event_of;
use crate::metrics::PipelineMetrics;
use crate::status::PipelineStatus;
use restore::Recovering;
use transactions::Txn;

/// How long a consumer poll waits for the first event of a round when
/// nothing is in flight.
const POLL_WAIT: Duration = Duration::from_millis(50);
/// The same while records are in flight or partitions are paused: delivery
/// reports wait in the control channel while the poll blocks, holding back
/// offsets, resumes and a stop. Also how long a held-off poll thread waits
/// for news on the control channel.
const BUSY_POLL_WAIT: Duration = Duration::from_millis(1);
/// How long shutdown waits for outstanding records before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay before a refused dead letter or state change is written again.
/// librdkafka has already retried it for `message.timeout.ms` by then.
const DLQ_RETRY: Duration = Duration::from_millis(500);
/// How long a transaction call (commit, abort, offsets) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The poll thread's state.
pub(crate) struct Poller {
    name: String,
    consumer: BaseConsumer<GroupContext>,
    sink: Arc<Sink>,
    control: Receiver<Control>,
    dispatcher: Dispatcher,
    worker_threads: Vec<JoinHandle<()>>,
    tracker: Tracker,
    assignment: Assignment,
    pressure: Pressure,
    rewrites: Vec<news::Rewrite>,
    status: Arc<PipelineStatus>,
    /// Its `sluice_events_in_flight` is set once per round.
    metrics: PipelineMetrics,
    cancel: CancellationToken,
    live: Arc<Live>,
    /// Restores state and reads committed offsets (a stateful or an
    /// exactly-once pipeline's).
    recovery: Option<Recovery>,
    /// Whether the chain keeps state.
    keeps_state: bool,
    /// Partitions waiting for the recovery thread.
    recovering: Recovering,
    /// Partition numbers whose state could not be restored: their events
    /// are left unread until the partition is assigned again.
    stopped: FxHashSet<i32>,
    /// Exactly-once.
    txn: Option<Txn>,
    refused: Arc<RefusedOutputs>,
}

/// What the poll thread is given: the consumer (subscribed), the sink and
/// the control channel's receiving end, the workers, and its stop signal.
pub(crate) struct PollerParts {
    pub name: String,
    pub consumer: BaseConsumer<GroupContext>,
    pub sink: Arc<Sink>,
    pub control: Receiver<Control>,
    pub dispatcher: Dispatcher,
    pub worker_threads: Vec<JoinHandle<()>>,
    pub status: Arc<PipelineStatus>,
    pub cancel: CancellationToken,
    /// The pipeline's `max_in_flight`.
    pub max_in_flight: usize,
    pub live: Arc<Live>,
    pub recovery: Option<Recovery>,
    pub keeps_state: bool,
    /// Exactly-once: the commit interval (the sink's producer is
    /// transactional, with a transaction begun).
    pub commit_interval: Option<Duration>,
    pub refused: Arc<RefusedOutputs>,
}

impl Poller {
    pub fn new(parts: PollerParts) -> Self {
        let PollerParts {
            name,
            consumer,
            sink,
            control,
            dispatcher,
            worker_threads,
            status,
            cancel,
            max_in_flight,
            live,
            recovery,
            keeps_state,
            commit_interval,
            refused,
        } = parts;
        Poller {
            metrics: crate::metrics::global().pipeline(&name),
            pressure: Pressure::new(dispatcher.batch_size(), max_in_flight),
            name,
            consumer,
            sink,
            control,
            dispatcher,
            worker_threads,
            tracker: Tracker::default(),
            assignment: Assignment::default(),
            rewrites: Vec::new(),
            status,
            cancel,
            live,
            recovery,
            keeps_state,
            recovering: Recovering::default(),
            stopped: FxHashSet::default(),
            txn: commit_interval.map(|interval| Txn::new(interval, Instant::now())),
            refused,
        }
    }

    /// Runs until cancelled, then drains and commits.
    pub fn run(&mut self) {
        // Dropped on the way out, panics included, so `/healthz` notices a
        // dead poll thread at once.
        let _ended = Ended(self.status.clone());
        while !self.cancel.is_cancelled() {
            self.status.heartbeat();
            let load = Load::of(&self.assignment, &self.tracker, &self.dispatcher);
            if self.pressure.must_hold_off(&load) {
                if !self.pressure.hold(&load, &self.consumer) {
                    self.wait_for_control();
                }
            } else {
                self.pressure.reading();
                self.poll_round();
            }
            self.handle_group_news();
            self.dispatcher.dispatch_all(&mut self.tracker);
            self.drain_control();
            self.retry_rewrites();
            self.end_transaction_if_due();
            let load = Load::of(&self.assignment, &self.tracker, &self.dispatcher);
            self.pressure.resume_drained(&load, &self.consumer);
            self.metrics
                .in_flight
                .set(self.tracker.events_in_flight() as i64);
        }
        self.shutdown();
    }

    /// Back-pressure without touching the consumer: waits for the next
    /// control message and hands parked batches on as room frees up.
    fn wait_for_control(&mut self) {
        if let Ok(control) = self.control.recv_timeout(BUSY_POLL_WAIT) {
            self.apply(control);
            self.drain_control();
        }
        self.dispatcher.unpark();
    }

    /// Reads what is available, up to a few batches' worth.
    fn poll_round(&mut self) {
        let mut wait = if !self.pressure.any_paused() && self.tracker.is_idle() {
            POLL_WAIT
        } else {
            BUSY_POLL_WAIT
        };
        for _ in 0..self.dispatcher.batch_size() * 4 {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    let event = event_of(&message);
                    drop(message);
                    // Rebalance callbacks run inside poll; apply them
                    // before routing.
                    self.handle_group_news();
                    match self.assignment.get(&event.topic, event.partition) {
                        // Its state could not be restored: left unread.
                        Some(_) if self.stopped.contains(&event.partition) => {}
                        // Read before its pause for a recovery took effect.
                        Some(tp) if self.recovering.any() => {
                            if let Some(event) = self.recovering.hold(&tp, event) {
                                self.dispatcher.push(&tp, event, &mut self.tracker);
                            }
                        }
                        Some(tp) => self.dispatcher.push(&tp, event, &mut self.tracker),
                        // Only possible for a partition just revoked: its
                        // offsets are no longer ours to store, so its new
                        // owner reads it again.
                        None => tracing::debug!(
                            topic = event.topic,
                            partition = event.partition,
                            "event of an unassigned partition; left to its owner"
                        ),
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(pipeline = %self.name, error = %e, "consumer error");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
    }

    fn handle_group_news(&mut self) {
        for news in self.consumer.context().take() {
            match news {
                GroupNews::Assigned(list) => {
                    // The whole assignment shows at once, then joined (even
                    // with an empty list: the other members may hold every
                    // partition).
                    self.status
                        .assigned(list.iter().map(|(topic, p)| (topic.as_str(), *p)));
                    self.status.joined();
                    let mut numbers = Vec::new();
                    for (topic, partition) in list {
                        tracing::info!(pipeline = %self.name, topic, partition, "partition assigned");
                        if !self.owns_number(partition) {
                            numbers.push(partition);
                        }
                        let tp = self.assignment.assign(topic, partition);
                        let generation = self.tracker.assign(tp.clone());
                        self.live.set(&tp, generation);
                        self.pressure.assigned(&tp, &self.consumer);
                        // Another topic's partition of the same number is
                        // being recovered: this one waits for it too.
                        if self.recovering.is_pending(partition) {
                            self.pause_for_recovery(&tp);
                        }
                    }
                    // Paused before the partitions' first batch: the
                    // consumer's first fetch is at least a poll away, and
                    // what it returned before the pause is held back.
                    numbers.sort_unstable();
                    numbers.dedup();
                    self.restore(&numbers);
                }
                GroupNews::Revoked(list) => {
                    let mut revoked = false;
                    for (topic, partition) in list {
                        if let Some(tp) = self.assignment.revoke(topic, partition) {
                            revoked = true;
                            tracing::info!(pipeline = %self.name, topic = &*tp.topic, partition, "partition revoked");
                            self.status.revoked(&tp.topic, partition);
                            self.live.remove(&tp);
                            self.tracker.revoke(&tp);
                            self.dispatcher.forget(&tp);
                            self.pressure.revoked(&tp);
                            self.recovering.revoked(&tp, self.owns_number(partition));
                            crate::metrics::global()
                                .consumer_lag(&self.name, &tp.topic, partition, None);
                            if self.keeps_state && !self.owns_number(partition) {
                                self.stopped.remove(&partition);
                                self.dispatcher
                                    .tell_owner(partition, WorkerMsg::Forget(partition));
                            }
                        }
                    }
                    // The open transaction holds work of the revoked
                    // partitions, which are someone else's now: it is
                    // aborted, and the partitions kept go back to their
                    // last commit.
                    if revoked && let Some(txn) = &mut self.txn {
                        txn.doom(|| "partitions were revoked".to_owned());
                    }
                }
            }
        }
    }

    /// Whether an input partition numbered `partition` is assigned.
    fn owns_number(&self, partition: i32) -> bool {
        self.assignment.tps().any(|tp| tp.partition == partition)
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
        if self.txn.is_some() {
            // Exactly-once: offsets go into the transaction when it commits.
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in self.tracker.take_released() {
            // `offset` is the next one to read, which is what a list
            // stores (unlike `store_offset`, which adds one).
            if let Err(e) =
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
            {
                tracing::debug!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, error = %e, "cannot store offset");
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::debug!(pipeline = %self.name, error = %e, offsets = ?tpl, "cannot store offsets");
        }
        // librdkafka pins the partitions of a list it stored from; drop it
        // now, never after the consumer.
        drop(tpl);
    }

    /// Drains: dispatches what was read, lets workers finish, waits for
    /// every record to be acknowledged, stores and commits offsets.
    fn shutdown(&mut self) {
        tracing::info!(pipeline = %self.name, "stopping: draining in-flight events");
        // A restore under way is of no use any more.
        if let Some(recovery) = &mut self.recovery {
            recovery.cancel();
        }
        self.handle_group_news();
        self.dispatcher.dispatch_all(&mut self.tracker);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // Each wait below is on the control channel: news of a batch done
        // (which frees room in an inbox) ends it early.
        // Parked batches still need a worker; feed them while draining.
        while self.dispatcher.has_parked() && Instant::now() < deadline {
            self.wait_for_control();
        }
        // Tell each worker to finish once its inbox is done. Closing the
        // inboxes is not enough: the `Pipeline` handle holds senders too
        // (for swaps) until it is stopped.
        for worker in 0..self.dispatcher.workers() {
            while !self.dispatcher.try_stop(worker) && Instant::now() < deadline {
                self.wait_for_control();
            }
        }
        self.dispatcher.close();
        for thread in std::mem::take(&mut self.worker_threads) {
            while !thread.is_finished() {
                self.wait_for_control();
            }
            if thread.join().is_err() {
                tracing::error!(pipeline = %self.name, "a worker panicked");
            }
        }
        // The recovery thread may be sending an answer: drained meanwhile.
        while self.recovery.as_ref().is_some_and(|r| !r.is_finished()) {
            self.wait_for_control();
        }
        if let Some(recovery) = &mut self.recovery {
            recovery.stop();
        }
        loop {
            self.drain_control();
            self.retry_rewrites();
            let in_flight = self.sink.flush(Duration::from_millis(100));
            self.drain_control();
            if (in_flight == 0 && self.rewrites.is_empty()) || Instant::now() >= deadline {
                if !self.tracker.is_idle() {
                    tracing::warn!(pipeline = %self.name, "stopping with events still in flight; they will be processed again");
                }
                break;
            }
        }
        if self.txn.is_some() {
            if self.txn.as_ref().is_some_and(Txn::is_doomed) {
                let _ = self.sink.producer().abort_transaction(TXN_TIMEOUT);
            } else {
                self.commit_transaction(false);
            }
            self.consumer.unsubscribe();
            tracing::info!(pipeline = %self.name, "stopped");
            return;
        }
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            // `NoOffset`: nothing stored since the last commit.
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(pipeline = %self.name, error = %e, "final commit failed"),
        }
        self.consumer.unsubscribe();
        tracing::info!(pipeline = %self.name, "stopped");
    }
}

/// Marks the poll thread ended when dropped.
struct Ended(Arc<PipelineStatus>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.poll_thread_ended();
    }
}
