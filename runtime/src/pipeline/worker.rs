//! A pipeline worker: a thread that owns one instance of every chain step,
//! takes batches of events (all from one partition, in offset order),
//! processes them, retries what may pass, and hands outputs, dead letters
//! and the batch's state changes (for the changelog) to the sink. A batch
//! of a partition this member no longer owns, or of a generation an abort
//! ended, is skipped. Partitions map to workers by hash (by number in a
//! stateful pipeline), so one partition's batches are always handled in
//! order by the same worker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::batch::Ticket;
use super::chain::Chain;
use super::control::{Control, ControlTx};
use super::live::Live;
use super::refused::RefusedOutputs;
use super::rules::{Processed, Waited, dead_letter, origin, output_record, process};
use super::sink::{Delivery, Payload, Sink};
use crate::changelog::{self, Change, Restored};
use crate::config::PipelineConfig;
use crate::failure::FailureKind;

/// What a worker is told to do.
pub(crate) enum WorkerMsg {
    /// Process a batch (events of one partition, in offset order).
    Batch(Ticket),
    /// Use these plugin instances from the next batch on (hot reload);
    /// they take over the old ones' state.
    Swap(Chain),
    /// Partition `partition`'s state, restored from the changelog: set it
    /// before the partition's first batch.
    Restore { partition: i32, state: Restored },
    /// Partition `partition` is gone: drop its state.
    Forget(i32),
    /// Answer (with `Control::BarrierPassed`) once everything before this
    /// in the inbox is handled: an abort waits for batches in progress to
    /// be done writing.
    Barrier(u64),
    /// Finish: everything before this in the inbox has been handled.
    Stop,
}

/// What every worker of a pipeline shares.
pub(crate) struct WorkerShared {
    pub config: PipelineConfig,
    /// The pipeline's name, for dead letters and spans.
    pub pipeline: Arc<str>,
    pub sink: Arc<Sink>,
    /// Where the worker's ticket of each batch is released to.
    pub control: ControlTx,
    pub metrics: crate::metrics::PipelineMetrics,
    /// Which batches may still be processed.
    pub live: Arc<Live>,
    /// Each step's name in the changelog (see
    /// [`PipelineConfig::state_names`]).
    pub state_names: Vec<String>,
    /// Exactly-once: events to dead-letter instead of writing their
    /// outputs again.
    pub refused: Arc<RefusedOutputs>,
}

/// The worker thread's body: runs until told to stop or its channel
/// closes (shutdown drains whatever was queued first).
pub(crate) fn run(mut chain: Chain, inbox: Receiver<WorkerMsg>, shared: Arc<WorkerShared>) {
    // What arrived while a batch waited out a retry backoff, in order:
    // handled before anything else.
    let mut deferred: VecDeque<WorkerMsg> = VecDeque::new();
    loop {
        let Some(msg) = deferred.pop_front().or_else(|| inbox.recv().ok()) else {
            return;
        };
        match msg {
            WorkerMsg::Batch(ticket) => {
                let batch = ticket.batch();
                let mut inbox = Backoff {
                    inbox: &inbox,
                    deferred: &mut deferred,
                    shared: &shared,
                    ticket: &ticket,
                    stopping: false,
                };
                if shared.live.is_live(&batch.tp, batch.generation)
                    && handle(&mut chain, &ticket, &shared, &mut |d| inbox.wait(d))
                        == Waited::GiveUp
                    && inbox.stopping
                {
                    // Given up because the pipeline stops: the ticket is
                    // dropped unreleased, so the batch stays in flight and
                    // its offsets are never committed; it is processed
                    // again after the restart.
                    continue;
                }
                // The worker's own ticket: the batch is done once this and
                // every record's ticket are released. A batch given up
                // because its generation ended is done too: the tracker
                // ignores generations it ended.
                shared.control.release(ticket);
            }
            WorkerMsg::Swap(mut next) => {
                next.adopt_state(&mut chain);
                chain = next;
            }
            WorkerMsg::Restore { partition, state } => chain.restore(partition, state),
            WorkerMsg::Forget(partition) => chain.forget(partition),
            WorkerMsg::Barrier(epoch) => shared.control.send(Control::BarrierPassed(epoch)),
            WorkerMsg::Stop => return,
        }
    }
}

/// A batch's retry backoff: it waits on the inbox, so whatever arrives
/// meanwhile is seen at once. A stop, or the end of the batch's
/// generation (its partition revoked, its transaction aborted, both of
/// which come with a message), gives the batch up; anything else waits
/// its turn in `deferred`.
struct Backoff<'a> {
    inbox: &'a Receiver<WorkerMsg>,
    deferred: &'a mut VecDeque<WorkerMsg>,
    shared: &'a WorkerShared,
    ticket: &'a Ticket,
    /// Whether a stop came.
    stopping: bool,
}

impl Backoff<'_> {
    fn wait(&mut self, backoff: Duration) -> Waited {
        let until = Instant::now() + backoff;
        loop {
            let batch = self.ticket.batch();
            if self.stopping || !self.shared.live.is_live(&batch.tp, batch.generation) {
                return Waited::GiveUp;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Elapsed;
            }
            match self.inbox.recv_timeout(left) {
                Ok(msg) => {
                    self.stopping |= matches!(msg, WorkerMsg::Stop);
                    self.deferred.push_back(msg);
                }
                Err(RecvTimeoutError::Timeout) => return Waited::Elapsed,
                // Only the pipeline's end closes the inbox.
                Err(RecvTimeoutError::Disconnected) => {
                    self.stopping = true;
                    return Waited::GiveUp;
                }
            }
        }
    }
}

/// Processes a batch and writes what it led to; `GiveUp` (and nothing
/// written) when `wait` gave it up during a retry backoff.
fn handle(
    chain: &mut Chain,
    ticket: &Ticket,
    shared: &WorkerShared,
    wait: &mut dyn FnMut(Duration) -> Waited,
) -> Waited {
    let batch = ticket.batch();
    let events = &batch.events;
    let first = events.first().map_or(-1, |e| e.offset);
    let span = tracing::debug_span!(
        "batch",
        pipeline = &*shared.pipeline,
        topic = &*batch.tp.topic,
        partition = batch.tp.partition,
        offset = first,
        events = events.len(),
        plugin = chain.label(),
    );
    let _entered = span.enter();

    shared.metrics.events.inc_by(events.len() as u64);
    let Some(Processed {
        outcomes,
        attempts,
        first_pass,
    }) = process(chain, events, &shared.config, wait)
    else {
        tracing::debug!("batch given up during a retry backoff");
        return Waited::GiveUp;
    };
    shared.metrics.batch(events.len(), first_pass);
    let retries: u32 = attempts.iter().map(|a| a.saturating_sub(1)).sum();
    if retries > 0 {
        shared.metrics.retries.inc_by(u64::from(retries));
    }

    let Some(origin) = origin(chain, &shared.pipeline) else {
        return Waited::Elapsed;
    };
    let origin = Arc::new(origin);
    let stamp = shared.config.origin_headers.then_some(&*origin);
    for (index, ((outcome, attempts), event)) in
        outcomes.into_iter().zip(attempts).zip(events).enumerate()
    {
        match outcome {
            Ok(_) if let Some(dl) = shared.refused.get(&batch.tp.topic, event) => {
                shared
                    .metrics
                    .dead_letter(FailureKind::ProduceFailed.as_str());
                shared.sink.send_dead_letter(ticket.another(), index, dl);
            }
            Ok(outputs) => {
                shared.metrics.outputs.inc_by(outputs.len() as u64);
                for output in &outputs {
                    let record = output_record(event, output, &shared.config, stamp, None);
                    let delivery = Box::new(Delivery {
                        ticket: ticket.another(),
                        index,
                        payload: Payload::Output(origin.clone()),
                    });
                    shared.sink.send(record, delivery);
                }
            }
            Err(failed) => {
                let dl = dead_letter(chain, &shared.pipeline, event, &failed, attempts);
                tracing::debug!(offset = event.offset, failure = %failed.failure, "dead-lettering event");
                shared.metrics.dead_letter(failed.failure.kind.as_str());
                shared
                    .sink
                    .send_dead_letter(ticket.another(), index, Arc::new(dl));
            }
        }
    }
    write_changes(chain, ticket, shared);
    Waited::Elapsed
}

/// Writes the state changes of a batch to the changelog, under its ticket:
/// its offsets are stored only once they are acknowledged.
fn write_changes(chain: &mut Chain, ticket: &Ticket, shared: &WorkerShared) {
    let changes = chain.take_changes();
    let batch = ticket.batch();
    let Some(last) = batch.events.last() else {
        return;
    };
    let source_offset = last.offset.to_string();
    for (step, (partition, key, value)) in changes {
        let Some(name) = shared.state_names.get(step) else {
            continue;
        };
        let change = Change {
            partition,
            key: changelog::record_key(name, &key),
            value,
            source_topic: batch.tp.topic.clone(),
            source_offset: source_offset.clone(),
        };
        shared.sink.send_change(ticket.another(), Arc::new(change));
    }
}
