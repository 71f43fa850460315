//! A batch in flight: one partition's events as dispatched to a worker,
//! shared by the worker and by every record written for them, with a count
//! of the records not yet acknowledged.
//!
//! Acknowledgements are counted per batch, not per event: every record
//! written for the batch holds a [`Ticket`], and only the release of the
//! last ticket sends news to the poll thread. Per-event bookkeeping there
//! (an ordered map insert and removal and a channel message for every
//! record) was a quarter of the pipeline's CPU with small events; a batch
//! is done as a whole, which is also the only granularity a commit needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::tracker::Tp;
use crate::plugin::Event;

/// Events of one partition, in offset order, and what is still owed for
/// them.
pub(crate) struct Batch {
    pub tp: Tp,
    /// The partition's assignment generation when the batch was read.
    pub generation: u64,
    /// Dispatch order within the partition (see [`super::tracker`]).
    pub seq: u64,
    pub events: Vec<Event>,
    /// Tickets not yet released.
    unreleased: AtomicU32,
}

/// One unit of a batch's outstanding work: the worker's processing, or one
/// record (output or dead letter) until the broker acknowledges it. The
/// batch is done when its last ticket is released.
///
/// A ticket dropped without [`Ticket::release`] keeps its batch in flight
/// for good, so its offsets are never stored: a record that was not
/// written means redelivery, never loss. A failed record's ticket moves on
/// to the dead letter written in its place.
pub(crate) struct Ticket {
    batch: Arc<Batch>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("tp", &self.batch.tp)
            .field("generation", &self.batch.generation)
            .field("seq", &self.batch.seq)
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// A new batch and the worker's ticket for it.
    pub fn dispatch(tp: Tp, generation: u64, seq: u64, events: Vec<Event>) -> Ticket {
        Ticket {
            batch: Arc::new(Batch {
                tp,
                generation,
                seq,
                events,
                unreleased: AtomicU32::new(1),
            }),
        }
    }
}

impl Ticket {
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Event `index` of the batch.
    pub fn event(&self, index: usize) -> Option<&Event> {
        self.batch.events.get(index)
    }

    /// A further ticket of the same batch, for one more record to write.
    pub fn another(&self) -> Ticket {
        // Relaxed suffices, as for `Arc::clone`: this ticket keeps the
        // count above zero meanwhile.
        self.batch.unreleased.fetch_add(1, Ordering::Relaxed);
        Ticket {
            batch: self.batch.clone(),
        }
    }

    /// Its work is done. Releasing the last ticket of a batch returns the
    /// news that the batch is done, for the poll thread.
    #[must_use = "the last release must reach the poll thread"]
    pub fn release(self) -> Option<Done> {
        (self.batch.unreleased.fetch_sub(1, Ordering::AcqRel) == 1).then(|| Done {
            tp: self.batch.tp.clone(),
            generation: self.batch.generation,
            seq: self.batch.seq,
        })
    }
}

/// Every record of batch `seq` of `tp` is written (see
/// [`Ticket::release`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    pub tp: Tp,
    pub generation: u64,
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        let tp = Tp {
            topic: "t".into(),
            partition: 3,
        };
        Batch::dispatch(tp, 7, 42, Vec::new())
    }

    #[test]
    fn only_the_last_release_reports_the_batch_done() {
        let worker = ticket();
        let a = worker.another();
        let b = a.another();
        assert_eq!(a.release(), None);
        assert_eq!(worker.release(), None, "one ticket is still out");
        let done = b.release().expect("the last release reports");
        assert_eq!((done.tp.partition, done.generation, done.seq), (3, 7, 42));
    }

    #[test]
    fn a_dropped_ticket_keeps_the_batch_in_flight() {
        let worker = ticket();
        drop(worker.another());
        assert_eq!(worker.release(), None);
    }
}
