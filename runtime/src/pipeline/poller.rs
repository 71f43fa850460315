//! The poll loop: the thread that owns the consumer and the at-least-once
//! bookkeeping. It reads events, hands them to workers in batches, applies
//! the news of done batches and failed records, stores offsets, and on
//! stop drains everything in flight and commits. It never blocks on
//! anything but the consumer's poll or the control channel, so rebalances
//! and acknowledgements are always served.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio_util::sync::CancellationToken;

use super::batch::Ticket;
use super::control::Control;
use super::dispatch::Dispatcher;
use super::group::{Assignment, GroupContext, GroupNews};
use super::live::Live;
use super::pressure::{Load, Pressure, set_paused};
use super::refused::RefusedOutputs;
use super::sink::Sink;
use super::tracker::{Tp, Tracker};
use super::worker::WorkerMsg;
use crate::changelog::{Change, Restorer};
use crate::dlq::DeadLetter;
use crate::kafka::event_of;
use crate::metrics::PipelineMetrics;
use crate::plugin::FailureKind;
use crate::status::PipelineStatus;

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

/// A record waiting to be written again.
struct Rewrite {
    at: Instant,
    ticket: Ticket,
    record: Refused,
}

/// What was refused: nothing is skipped, so it is written again.
enum Refused {
    DeadLetter {
        index: usize,
        dead_letter: Arc<DeadLetter>,
    },
    Change(Arc<Change>),
}

/// Exactly-once: the transaction open on the sink's producer.
struct Txn {
    /// How often it commits.
    interval: Duration,
    opened: Instant,
    /// Why it cannot commit, once a record of it failed.
    doomed: Option<String>,
}

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
    rewrites: Vec<Rewrite>,
    status: Arc<PipelineStatus>,
    /// Its `sluice_events_in_flight` is set once per round.
    metrics: PipelineMetrics,
    cancel: CancellationToken,
    live: Arc<Live>,
    /// A stateful pipeline's: restores partitions' state on assignment.
    restorer: Option<Restorer>,
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
    pub restorer: Option<Restorer>,
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
            restorer,
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
            restorer,
            stopped: FxHashSet::default(),
            txn: commit_interval.map(|interval| Txn {
                interval,
                opened: Instant::now(),
                doomed: None,
            }),
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
                    }
                    // Before the partitions' first batch: the consumer's
                    // first fetch is at least a poll away.
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
                            crate::metrics::global()
                                .consumer_lag(&self.name, &tp.topic, partition, None);
                            if self.restorer.is_some() && !self.owns_number(partition) {
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
                        txn.doomed
                            .get_or_insert_with(|| "partitions were revoked".to_owned());
                    }
                }
            }
        }
    }

    /// Whether an input partition numbered `partition` is assigned.
    fn owns_number(&self, partition: i32) -> bool {
        self.assignment.tps().any(|tp| tp.partition == partition)
    }

    /// Restores the state of partition numbers `numbers` and hands it to
    /// their worker, ahead of their first batch. A partition whose state
    /// cannot be restored stops (see [`Poller::stopped`]).
    fn restore(&mut self, numbers: &[i32]) {
        let Some(restorer) = &self.restorer else {
            return;
        };
        if numbers.is_empty() {
            return;
        }
        let started = Instant::now();
        let committed = self
            .txn
            .as_ref()
            .map(|_| self.committed(|tp| numbers.contains(&tp.partition)));
        let lookup = |topic: &str, partition: i32| {
            committed
                .as_ref()
                .and_then(|c| c.get(&(topic.to_owned(), partition)).copied().flatten())
        };
        let results = restorer.restore(
            numbers,
            committed
                .is_some()
                .then_some(&lookup as &dyn Fn(&str, i32) -> Option<i64>),
        );
        let mut keys = 0;
        for (partition, result) in results {
            match result {
                Ok(state) => {
                    keys += state.iter().map(|s| s.len()).sum::<usize>();
                    self.stopped.remove(&partition);
                    self.dispatcher
                        .tell_owner(partition, WorkerMsg::Restore { partition, state });
                }
                Err(e) => {
                    tracing::error!(pipeline = %self.name, partition, error = %e, "cannot restore the state of a partition; it stops until it is assigned again");
                    self.stopped.insert(partition);
                    let tps: Vec<Tp> = self
                        .assignment
                        .tps()
                        .filter(|tp| tp.partition == partition)
                        .cloned()
                        .collect();
                    for tp in tps {
                        self.dispatcher.forget(&tp);
                        set_paused(&self.consumer, &tp, true);
                    }
                }
            }
        }
        self.metrics.restored(keys, started.elapsed());
        tracing::info!(
            pipeline = %self.name,
            changelog = restorer.topic(),
            partitions = ?numbers,
            keys,
            took_ms = started.elapsed().as_millis() as u64,
            "state restored"
        );
    }

    /// The group's committed offsets of the assigned partitions `which`
    /// picks (`None`: nothing committed), as stable as the broker makes
    /// them: a `read_committed` consumer waits out pending transactional
    /// offset commits (KIP-447).
    fn committed(&self, which: impl Fn(&Tp) -> bool) -> FxHashMap<(String, i32), Option<i64>> {
        let mut tpl = TopicPartitionList::new();
        for tp in self.assignment.tps().filter(|tp| which(tp)) {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let mut offsets = FxHashMap::default();
        match self.consumer.committed_offsets(tpl, TXN_TIMEOUT) {
            Ok(tpl) => {
                for e in tpl.elements() {
                    let offset = match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    };
                    offsets.insert((e.topic().to_owned(), e.partition()), offset);
                }
            }
            Err(e) => {
                tracing::warn!(pipeline = %self.name, error = %e, "cannot read the committed offsets");
            }
        }
        offsets
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

    fn apply(&mut self, control: Control) {
        match control {
            Control::Done(done) => {
                // Stored with the others at the end of the drain (see
                // `store_offsets`).
                let _ = self.tracker.done(&done.tp, done.generation, done.seq);
            }
            Control::OutputFailed {
                ticket,
                index,
                dead_letter,
            } if self.txn.is_some() => {
                // After the abort, the event goes to the DLQ instead. What
                // an abort purged (of a generation it ended) was not
                // refused.
                let batch = ticket.batch();
                if self.tracker.generation(&batch.tp) == Some(batch.generation)
                    && let Some(event) = ticket.event(index)
                {
                    self.refused.insert(&batch.tp.topic, event, dead_letter);
                }
                self.doom_for(&ticket);
            }
            Control::DeadLetterFailed { ticket, .. } | Control::ChangeFailed { ticket, .. }
                if self.txn.is_some() =>
            {
                self.doom_for(&ticket);
            }
            Control::OutputFailed {
                ticket,
                index,
                dead_letter,
            } => {
                let (tp, offset) = located(&ticket, index);
                tracing::warn!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, "an output could not be written; dead-lettering its event");
                // Workers count the dead letters they make; this one is
                // made here.
                self.metrics
                    .dead_letter(FailureKind::ProduceFailed.as_str());
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
                self.rewrites.push(Rewrite {
                    at: Instant::now() + DLQ_RETRY,
                    ticket,
                    record: Refused::DeadLetter { index, dead_letter },
                });
            }
            Control::ChangeFailed {
                ticket,
                change,
                error,
            } => {
                let tp = &ticket.batch().tp;
                tracing::error!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, %error, "cannot write to the state changelog; the partition waits and retries");
                self.rewrites.push(Rewrite {
                    at: Instant::now() + DLQ_RETRY,
                    ticket,
                    record: Refused::Change(change),
                });
            }
        }
    }

    fn retry_rewrites(&mut self) {
        let now = Instant::now();
        let due: Vec<Rewrite>;
        (due, self.rewrites) = std::mem::take(&mut self.rewrites)
            .into_iter()
            .partition(|r| r.at <= now);
        for retry in due {
            let batch = retry.ticket.batch();
            if self.tracker.generation(&batch.tp) != Some(batch.generation) {
                // Revoked: the partition's new owner reads the event again.
                continue;
            }
            match retry.record {
                Refused::DeadLetter { index, dead_letter } => {
                    self.sink.send_dead_letter(retry.ticket, index, dead_letter)
                }
                Refused::Change(change) => self.sink.send_change(retry.ticket, change),
            }
        }
    }

    /// Exactly-once: commits the open transaction once its interval is up,
    /// or aborts it if it cannot commit.
    fn end_transaction_if_due(&mut self) {
        let Some(txn) = &self.txn else {
            return;
        };
        if txn.doomed.is_some() {
            self.reset();
        } else if txn.opened.elapsed() >= txn.interval {
            self.commit_transaction(true);
        }
    }

    /// Exactly-once: waits until every batch dispatched is done (nothing
    /// new is dispatched meanwhile), then commits the transaction with the
    /// offsets that follow them, and opens the next one if `reopen`. A
    /// transaction that cannot commit is aborted ([`Poller::reset`]).
    fn commit_transaction(&mut self, reopen: bool) {
        let deadline = Instant::now() + TXN_TIMEOUT;
        while !self.tracker.is_idle() {
            if self.txn.as_ref().is_some_and(|t| t.doomed.is_some()) {
                return self.reset();
            }
            if Instant::now() >= deadline {
                self.doom("its batches took too long to be written".to_owned());
                return self.reset();
            }
            self.wait_for_control();
            self.retry_rewrites();
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in self.tracker.take_released() {
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset));
        }
        if tpl.count() == 0 {
            // Nothing was processed: there is nothing to commit.
            if let Some(txn) = &mut self.txn {
                txn.opened = Instant::now();
            }
            if !reopen {
                let _ = self.sink.producer().abort_transaction(TXN_TIMEOUT);
            }
            return;
        }
        let sink = self.sink.clone();
        let producer = sink.producer();
        let committed = match self.consumer.group_metadata() {
            Some(group) => producer
                .send_offsets_to_transaction(&tpl, &group, TXN_TIMEOUT)
                .and_then(|()| producer.commit_transaction(TXN_TIMEOUT)),
            // Only a consumer without a group has none.
            None => Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::State)),
        };
        if committed.is_ok() {
            self.metrics.transaction(true);
            self.refused.clear();
            // The same offsets once more, outside the transaction: a
            // no-op for Kafka, which keeps the transaction's, and what
            // lets a broker that drops transactional offset commits
            // (librdkafka's mock cluster, the embedded broker) restart
            // from them too. The group's generation still fences it.
            let mode = if reopen {
                CommitMode::Async
            } else {
                CommitMode::Sync
            };
            if let Err(e) = self.consumer.commit(&tpl, mode) {
                tracing::debug!(pipeline = %self.name, error = %e, "cannot commit the offsets outside the transaction");
            }
        }
        drop(tpl);
        match committed {
            Ok(()) if !reopen => {}
            Ok(()) => match producer.begin_transaction() {
                Ok(()) => {
                    if let Some(txn) = &mut self.txn {
                        txn.opened = Instant::now();
                    }
                }
                Err(e) => self.fatal(&e),
            },
            Err(e) => {
                self.doom(format!("the commit failed: {e}"));
                if reopen {
                    self.reset();
                } else {
                    let _ = producer.abort_transaction(TXN_TIMEOUT);
                }
            }
        }
    }

    /// A record of the open transaction, of `ticket`'s batch, failed: it
    /// cannot commit. The batch is processed again after the abort.
    fn doom_for(&mut self, ticket: &Ticket) {
        let batch = ticket.batch();
        if self.tracker.generation(&batch.tp) == Some(batch.generation) {
            self.doom(format!(
                "a record of {}/{} could not be written",
                batch.tp.topic, batch.tp.partition
            ));
        }
    }

    fn doom(&mut self, why: String) {
        if let Some(txn) = &mut self.txn {
            txn.doomed.get_or_insert(why);
        }
    }

    /// A transactional producer error that leaves it unusable (fenced by a
    /// newer instance with the same transactional id): the pipeline stops.
    fn fatal(&mut self, error: &KafkaError) {
        tracing::error!(pipeline = %self.name, %error, "the transactional producer cannot go on (is another process running with the same SLUICE_INSTANCE_ID?); the pipeline stops");
        self.cancel.cancel();
    }

    /// Exactly-once: aborts the open transaction and goes back to the last
    /// commit: batches in progress finish writing into the doomed
    /// transaction first, then every assigned partition starts a new
    /// generation, its state is restored and its reading restarts at the
    /// committed offset.
    fn reset(&mut self) {
        let why = self
            .txn
            .as_mut()
            .and_then(|t| t.doomed.take())
            .unwrap_or_default();
        tracing::warn!(pipeline = %self.name, why, "aborting the transaction; processing again from the last commit");
        self.metrics.transaction(false);
        self.live.clear();
        self.dispatcher.drop_parked();
        self.rewrites.clear();
        self.barrier();
        if let Err(e) = self.sink.clone().producer().abort_transaction(TXN_TIMEOUT) {
            return self.fatal(&e);
        }
        let tps: Vec<Tp> = self.assignment.tps().cloned().collect();
        for tp in &tps {
            self.tracker.revoke(tp);
            self.dispatcher.forget(tp);
            let generation = self.tracker.assign(tp.clone());
            self.live.set(tp, generation);
        }
        let mut numbers: Vec<i32> = tps.iter().map(|tp| tp.partition).collect();
        numbers.sort_unstable();
        numbers.dedup();
        self.restore(&numbers);
        self.rewind();
        if let Err(e) = self.sink.clone().producer().begin_transaction() {
            return self.fatal(&e);
        }
        if let Some(txn) = &mut self.txn {
            txn.opened = Instant::now();
        }
    }

    /// Waits until every worker has handled what it was sent so far.
    fn barrier(&mut self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(self.dispatcher.workers());
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        for worker in 0..self.dispatcher.workers() {
            while !self
                .dispatcher
                .try_tell(worker, WorkerMsg::Barrier(tx.clone()))
                && Instant::now() < deadline
            {
                self.drain_control();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(tx);
        let mut answered = 0;
        while answered < self.dispatcher.workers() && Instant::now() < deadline {
            match rx.recv_timeout(BUSY_POLL_WAIT) {
                Ok(()) => answered += 1,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => self.drain_control(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Moves every assigned partition's reading back to its committed
    /// offset (the beginning where nothing is committed).
    fn rewind(&mut self) {
        let committed = self.committed(|_| true);
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in committed {
            let offset = offset.map_or(Offset::Beginning, Offset::Offset);
            let _ = tpl.add_partition_offset(&topic, partition, offset);
        }
        if tpl.count() == 0 {
            return;
        }
        match self.consumer.seek_partitions(tpl, TXN_TIMEOUT) {
            Ok(sought) => {
                for e in sought.elements() {
                    if let Err(error) = e.error() {
                        tracing::error!(pipeline = %self.name, topic = e.topic(), partition = e.partition(), %error, "cannot move back to the committed offset");
                    } else {
                        tracing::debug!(pipeline = %self.name, topic = e.topic(), partition = e.partition(), offset = ?e.offset(), "moved back to the committed offset");
                    }
                }
            }
            Err(e) => {
                tracing::error!(pipeline = %self.name, error = %e, "cannot move back to the committed offsets");
            }
        }
    }

    /// Drains: dispatches what was read, lets workers finish, waits for
    /// every record to be acknowledged, stores and commits offsets.
    fn shutdown(&mut self) {
        tracing::info!(pipeline = %self.name, "stopping: draining in-flight events");
        self.handle_group_news();
        self.dispatcher.dispatch_all(&mut self.tracker);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // Parked batches still need a worker; feed them while draining.
        while self.dispatcher.has_parked() && Instant::now() < deadline {
            self.dispatcher.unpark();
            self.drain_control();
            std::thread::sleep(Duration::from_millis(5));
        }
        // Tell each worker to finish once its inbox is done. Closing the
        // inboxes is not enough: the `Pipeline` handle holds senders too
        // (for swaps) until it is stopped.
        for worker in 0..self.dispatcher.workers() {
            while !self.dispatcher.try_stop(worker) && Instant::now() < deadline {
                self.drain_control();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.dispatcher.close();
        for thread in std::mem::take(&mut self.worker_threads) {
            while !thread.is_finished() {
                self.drain_control();
                std::thread::sleep(Duration::from_millis(2));
            }
            if thread.join().is_err() {
                tracing::error!(pipeline = %self.name, "a worker panicked");
            }
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
            if self.txn.as_ref().is_some_and(|t| t.doomed.is_some()) {
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

/// The partition and offset of event `index` of a ticket's batch, for logs.
fn located(ticket: &Ticket, index: usize) -> (&Tp, i64) {
    (
        &ticket.batch().tp,
        ticket.event(index).map_or(-1, |e| e.offset),
    )
}
