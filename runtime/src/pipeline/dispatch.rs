//! Handing events to workers: events read are gathered per partition into
//! batches, and each batch goes to the worker that owns its partition.
//! A batch that does not fit its worker's bounded inbox is parked, in
//! order, until there is room; a parked batch is the poll thread's signal
//! to stop reading (see [`super::pressure`]).

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{SyncSender, TrySendError};

use rustc_hash::FxHashMap;

use super::batch::Batch;
use super::tracker::{Tp, Tracker};
use super::worker::WorkerMsg;
use crate::plugin::Event;

/// Pending events, parked batches and the workers' inboxes.
pub(crate) struct Dispatcher {
    workers: Vec<SyncSender<WorkerMsg>>,
    /// Events read but not yet dispatched, per partition.
    pending: FxHashMap<Tp, Vec<Event>>,
    /// Batches (and state news) that did not fit a worker's inbox, per
    /// worker, in order.
    parked: Vec<VecDeque<WorkerMsg>>,
    batch_size: usize,
    /// Whether a partition's worker is chosen by partition number alone:
    /// a stateful chain keeps a partition's state in one worker, which
    /// every input topic's partition of that number must reach.
    by_partition: bool,
}

impl Dispatcher {
    pub fn new(workers: Vec<SyncSender<WorkerMsg>>, batch_size: usize, by_partition: bool) -> Self {
        Dispatcher {
            parked: workers.iter().map(|_| VecDeque::new()).collect(),
            workers,
            pending: FxHashMap::default(),
            batch_size: batch_size.max(1),
            by_partition,
        }
    }

    /// Most events per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Adds an event of `tp`, dispatching the partition's batch once full.
    pub fn push(&mut self, tp: &Tp, event: Event, tracker: &mut Tracker) {
        // Sized once: growing it to a batch re-copied ~30 KB per batch.
        let batch_size = self.batch_size;
        let batch = self
            .pending
            .entry(tp.clone())
            .or_insert_with(|| Vec::with_capacity(batch_size));
        batch.push(event);
        if batch.len() >= batch_size {
            self.dispatch(tp, tracker);
        }
    }

    /// Dispatches every partition's pending events, then moves parked
    /// batches on where there is room.
    pub fn dispatch_all(&mut self, tracker: &mut Tracker) {
        let tps: Vec<Tp> = self.pending.keys().cloned().collect();
        for tp in tps {
            self.dispatch(&tp, tracker);
        }
        self.unpark();
    }

    /// Hands a partition's pending events to its worker.
    fn dispatch(&mut self, tp: &Tp, tracker: &mut Tracker) {
        let Some(events) = self.pending.remove(tp).filter(|e| !e.is_empty()) else {
            return;
        };
        let end = events.last().map_or(0, |e| e.offset + 1);
        let Some((generation, seq)) = tracker.dispatched(tp, events.len(), end) else {
            return;
        };
        let batch = Batch::dispatch(tp.clone(), generation, seq, events);
        // Only after `close` is there no worker: the dropped ticket keeps
        // the batch in flight, so its events are read again.
        self.send(self.worker_of(tp), WorkerMsg::Batch(batch));
    }

    /// Hands `msg` to the worker that owns partition number `partition`
    /// (a stateful chain's state news), after what it was sent before.
    pub fn tell_owner(&mut self, partition: i32, msg: WorkerMsg) {
        let worker = worker_of_partition(partition, self.workers.len());
        self.send(worker, msg);
    }

    fn send(&mut self, worker: usize, msg: WorkerMsg) {
        let (Some(inbox), Some(parked)) = (self.workers.get(worker), self.parked.get_mut(worker))
        else {
            return;
        };
        if !parked.is_empty() {
            parked.push_back(msg);
            return;
        }
        match inbox.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => parked.push_back(msg),
            Err(_) => tracing::error!(worker, "a worker is gone"),
        }
    }

    /// Drops every parked message (a reset: they belong to a generation
    /// that is over).
    pub fn drop_parked(&mut self) {
        for queue in &mut self.parked {
            queue.clear();
        }
    }

    /// Moves parked batches into worker inboxes as room frees up.
    pub fn unpark(&mut self) {
        for (worker, queue) in self.parked.iter_mut().enumerate() {
            while let Some(msg) = queue.pop_front() {
                let Some(inbox) = self.workers.get(worker) else {
                    queue.push_front(msg);
                    break;
                };
                match inbox.try_send(msg) {
                    Ok(()) => {}
                    Err(TrySendError::Full(msg)) => {
                        queue.push_front(msg);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }

    /// Drops a revoked partition's pending events: its new owner reads
    /// them again.
    pub fn forget(&mut self, tp: &Tp) {
        self.pending.remove(tp);
    }

    /// Whether the worker of `tp` has batches waiting for room.
    pub fn is_parked(&self, tp: &Tp) -> bool {
        self.parked
            .get(self.worker_of(tp))
            .is_some_and(|q| !q.is_empty())
    }

    /// Whether any batch waits for room.
    pub fn has_parked(&self) -> bool {
        self.parked.iter().any(|q| !q.is_empty())
    }

    /// The partitions of the parked batches.
    pub fn parked_tps(&self) -> Vec<Tp> {
        self.parked
            .iter()
            .flat_map(|q| {
                q.iter().filter_map(|msg| match msg {
                    WorkerMsg::Batch(ticket) => Some(ticket.batch().tp.clone()),
                    _ => None,
                })
            })
            .collect()
    }

    /// Tells worker `index` to finish after its inbox; `false` while the
    /// inbox is full.
    pub fn try_stop(&self, index: usize) -> bool {
        self.try_tell(index, WorkerMsg::Stop)
    }

    /// Sends `msg` to worker `index` unless its inbox is full; `false`
    /// while it is (a worker that is gone counts as told).
    pub fn try_tell(&self, index: usize, msg: WorkerMsg) -> bool {
        !matches!(
            self.workers.get(index).map(|w| w.try_send(msg)),
            Some(Err(TrySendError::Full(_)))
        )
    }

    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Lets go of the inboxes, so workers also end when their inbox closes.
    pub fn close(&mut self) {
        self.workers.clear();
    }

    fn worker_of(&self, tp: &Tp) -> usize {
        if self.by_partition {
            worker_of_partition(tp.partition, self.workers.len())
        } else {
            worker_of(tp, self.workers.len())
        }
    }
}

/// The worker that owns a partition.
pub(crate) fn worker_of(tp: &Tp, workers: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tp.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}

/// The worker that owns every input partition numbered `partition`, in a
/// stateful pipeline.
fn worker_of_partition(partition: i32, workers: usize) -> usize {
    (partition.unsigned_abs() as usize) % workers.max(1)
}
