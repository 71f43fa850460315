//! At-least-once bookkeeping for one pipeline: which batches of each
//! partition are still in flight, and the highest offset that may be
//! stored.
//!
//! A partition's batches are dispatched in offset order and numbered in
//! that order. A batch is done when the worker has processed it and the
//! broker has acknowledged every record it led to (see
//! [`super::batch::Ticket`]). An offset is stored only when its batch and
//! every earlier batch of the partition are done, so a crash repeats
//! events but never skips one.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;

/// A topic-partition, cheap to clone and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Tp {
    pub topic: Arc<str>,
    pub partition: i32,
}

/// A dispatched batch, as the tracker remembers it.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    /// The offset after the batch's last event: what to store once done.
    end: i64,
    events: usize,
    done: bool,
}

/// One partition's batches in flight, oldest first.
#[derive(Debug, Default)]
struct PartitionState {
    /// Assignment generation; news of an older one is stale.
    generation: u64,
    next_seq: u64,
    batches: VecDeque<InFlight>,
    /// Events of the batches in `batches`.
    events: usize,
}

/// The bookkeeping of all partitions a pipeline owns.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// FxHash: the keys are our own partitions, not attacker input.
    partitions: FxHashMap<Tp, PartitionState>,
    next_generation: u64,
    /// Offsets that may be stored, per partition, since the last
    /// [`Tracker::take_released`].
    released: FxHashMap<Tp, i64>,
}

impl Tracker {
    /// Starts tracking a newly assigned partition; returns its generation.
    pub fn assign(&mut self, tp: Tp) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.partitions.insert(
            tp,
            PartitionState {
                generation,
                ..PartitionState::default()
            },
        );
        generation
    }

    /// Forgets a revoked partition; late news of its batches is ignored,
    /// and its offsets are no longer ours to store.
    pub fn revoke(&mut self, tp: &Tp) {
        self.partitions.remove(tp);
        self.released.remove(tp);
    }

    /// The generation of an assigned partition.
    pub fn generation(&self, tp: &Tp) -> Option<u64> {
        self.partitions.get(tp).map(|p| p.generation)
    }

    /// Records a batch of `events` events ending before offset `end` as
    /// dispatched; returns its generation and sequence number, or `None`
    /// if the partition is not assigned.
    pub fn dispatched(&mut self, tp: &Tp, events: usize, end: i64) -> Option<(u64, u64)> {
        let p = self.partitions.get_mut(tp)?;
        let seq = p.next_seq;
        p.next_seq += 1;
        p.batches.push_back(InFlight {
            seq,
            end,
            events,
            done: false,
        });
        p.events += events;
        Some((p.generation, seq))
    }

    /// Batch `seq` is done. Returns the offset to store (the next one to
    /// read) if the partition's frontier advanced, and keeps it for
    /// [`Tracker::take_released`].
    pub fn done(&mut self, tp: &Tp, generation: u64, seq: u64) -> Option<i64> {
        let offset = self.advance(tp, generation, seq)?;
        self.released.insert(tp.clone(), offset);
        Some(offset)
    }

    /// The offsets released since the last call, one per partition.
    pub fn take_released(&mut self) -> impl Iterator<Item = (Tp, i64)> + '_ {
        self.released.drain()
    }

    fn advance(&mut self, tp: &Tp, generation: u64, seq: u64) -> Option<i64> {
        let p = self.partitions.get_mut(tp)?;
        if p.generation != generation {
            return None;
        }
        // Sequence numbers are dense and the front is the oldest, so the
        // batch's place is its distance from the front.
        let front = p.batches.front()?.seq;
        let batch = p
            .batches
            .get_mut(usize::try_from(seq.checked_sub(front)?).ok()?)?;
        batch.done = true;
        let mut stored = None;
        while let Some(batch) = p.batches.front().filter(|b| b.done) {
            stored = Some(batch.end);
            p.events -= batch.events;
            p.batches.pop_front();
        }
        stored
    }

    /// Events dispatched and not yet done, for back-pressure.
    pub fn in_flight(&self, tp: &Tp) -> usize {
        self.partitions.get(tp).map_or(0, |p| p.events)
    }

    /// Events dispatched and not yet done, all partitions.
    pub fn events_in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.events).sum()
    }

    /// Whether nothing is in flight anywhere.
    pub fn is_idle(&self) -> bool {
        self.partitions.values().all(|p| p.batches.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> Tp {
        Tp {
            topic: "t".into(),
            partition: 0,
        }
    }

    #[test]
    fn stores_only_after_every_earlier_batch_is_done() {
        let mut t = Tracker::default();
        let g = t.assign(tp());
        let (_, a) = t.dispatched(&tp(), 3, 13).unwrap();
        let (_, b) = t.dispatched(&tp(), 2, 15).unwrap();
        let (_, c) = t.dispatched(&tp(), 1, 16).unwrap();
        assert_eq!(t.in_flight(&tp()), 6);
        // A later batch finishing first stores nothing...
        assert_eq!(t.done(&tp(), g, b), None);
        assert_eq!(t.in_flight(&tp()), 6);
        // ...until the one before it is done: then both are.
        assert_eq!(t.done(&tp(), g, a), Some(15));
        assert_eq!(t.in_flight(&tp()), 1);
        assert!(!t.is_idle());
        assert_eq!(t.done(&tp(), g, c), Some(16));
        assert!(t.is_idle());
        // News of a batch already gone changes nothing.
        assert_eq!(t.done(&tp(), g, a), None);
        assert_eq!(t.done(&tp(), g, 99), None);
        // The latest released offset is what is left to store.
        assert_eq!(t.take_released().collect::<Vec<_>>(), [(tp(), 16)]);
        assert_eq!(t.take_released().count(), 0);
    }

    #[test]
    fn a_revoked_partition_has_nothing_to_store() {
        let mut t = Tracker::default();
        let g = t.assign(tp());
        let (_, a) = t.dispatched(&tp(), 3, 13).unwrap();
        assert_eq!(t.done(&tp(), g, a), Some(13));
        t.revoke(&tp());
        assert_eq!(t.take_released().count(), 0);
    }

    #[test]
    fn ignores_news_of_an_old_assignment() {
        let mut t = Tracker::default();
        let old = t.assign(tp());
        let (g, seq) = t.dispatched(&tp(), 1, 6).unwrap();
        assert_eq!(g, old);
        t.revoke(&tp());
        assert_eq!(t.done(&tp(), old, seq), None);
        assert_eq!(t.dispatched(&tp(), 1, 6), None, "not assigned");
        let new = t.assign(tp());
        let (g, seq) = t.dispatched(&tp(), 1, 6).unwrap();
        assert_eq!(g, new);
        assert_eq!(t.done(&tp(), old, seq), None);
        assert_eq!(t.in_flight(&tp()), 1);
        assert_eq!(t.done(&tp(), new, seq), Some(6));
    }
}
