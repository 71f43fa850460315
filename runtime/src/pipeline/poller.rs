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
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::batch::Ticket;
use super::control::Control;
use super::dispatch::Dispatcher;
use super::group::{Assignment, GroupContext, GroupNews};
use super::pressure::{Load, Pressure};
use super::sink::Sink;
use super::tracker::{Tp, Tracker};
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
/// Delay before a refused dead letter is written again. librdkafka has
/// already retried it for `message.timeout.ms` by then.
const DLQ_RETRY: Duration = Duration::from_millis(500);

/// A dead letter waiting to be written again.
struct DlqRetry {
    at: Instant,
    ticket: Ticket,
    index: usize,
    dead_letter: Arc<DeadLetter>,
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
    dlq_retries: Vec<DlqRetry>,
    status: Arc<PipelineStatus>,
    /// Its `sluice_events_in_flight` is set once per round.
    metrics: PipelineMetrics,
    cancel: CancellationToken,
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
            dlq_retries: Vec::new(),
            status,
            cancel,
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
            self.retry_dead_letters();
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
                    for (topic, partition) in list {
                        tracing::info!(pipeline = %self.name, topic, partition, "partition assigned");
                        let tp = self.assignment.assign(topic, partition);
                        self.tracker.assign(tp.clone());
                        self.pressure.assigned(&tp, &self.consumer);
                    }
                }
                GroupNews::Revoked(list) => {
                    for (topic, partition) in list {
                        if let Some(tp) = self.assignment.revoke(topic, partition) {
                            tracing::info!(pipeline = %self.name, topic = &*tp.topic, partition, "partition revoked");
                            self.status.revoked(&tp.topic, partition);
                            self.tracker.revoke(&tp);
                            self.dispatcher.forget(&tp);
                            self.pressure.revoked(&tp);
                            crate::metrics::global()
                                .consumer_lag(&self.name, &tp.topic, partition, None);
                        }
                    }
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
