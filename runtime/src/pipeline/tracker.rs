//! At-least-once bookkeeping for one pipeline: which input offsets are still
//! in flight, and the highest offset of each partition that may be stored.
//!
//! Every dispatched input offset is pending until the worker has processed
//! it and the broker has acknowledged each record it led to (outputs or the
//! dead letter). An offset is stored only when it and every earlier
//! dispatched offset of its partition are done, so a crash repeats events
//! but never skips one.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

/// A topic-partition, cheap to clone and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tp {
    pub topic: Arc<str>,
    pub partition: i32,
}

/// One partition's in-flight offsets.
#[derive(Debug, Default)]
struct PartitionState {
    /// Assignment generation; acknowledgements of an older one are stale.
    generation: u64,
    /// Offset → records still unacknowledged, plus one while the worker
    /// has not yet reported how many records the offset led to.
    pending: BTreeMap<i64, u32>,
}

/// The bookkeeping of all partitions a pipeline owns.
#[derive(Debug, Default)]
pub struct Tracker {
    /// FxHash: looked up for every event and every record acknowledged,
    /// where SipHash of the topic name was a visible share of the poll
    /// thread's time; the keys are our own partitions, not attacker input.
    partitions: FxHashMap<Tp, PartitionState>,
    next_generation: u64,
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
                pending: BTreeMap::new(),
            },
        );
        generation
    }

    /// Forgets a revoked partition; late acknowledgements are ignored.
    pub fn revoke(&mut self, tp: &Tp) {
        self.partitions.remove(tp);
    }

    /// The generation of an assigned partition.
    pub fn generation(&self, tp: &Tp) -> Option<u64> {
        self.partitions.get(tp).map(|p| p.generation)
    }

    /// Marks `offset` as dispatched to a worker.
    pub fn dispatched(&mut self, tp: &Tp, offset: i64) {
        self.dispatched_all(tp, [offset]);
    }

    /// Marks every offset of a batch as dispatched (one lookup per batch).
    pub fn dispatched_all(&mut self, tp: &Tp, offsets: impl IntoIterator<Item = i64>) {
        if let Some(p) = self.partitions.get_mut(tp) {
            for offset in offsets {
                p.pending.insert(offset, 1);
            }
        }
    }

    /// The worker processed `offset`, which led to `records` writes.
    /// Returns the offset to store, if the partition's frontier advanced.
    pub fn processed(
        &mut self,
        tp: &Tp,
        generation: u64,
        offset: i64,
        records: u32,
    ) -> Option<i64> {
        self.adjust(tp, generation, offset, |count| {
            *count = (*count + records).saturating_sub(1)
        })
    }

    /// [`Tracker::processed`] for every `(offset, records)` of a batch, with
    /// one lookup; returns the offset to store, if the frontier advanced.
    pub fn processed_all(
        &mut self,
        tp: &Tp,
        generation: u64,
        counts: &[(i64, u32)],
    ) -> Option<i64> {
        let p = self.partitions.get_mut(tp)?;
        if p.generation != generation {
            return None;
        }
        for (offset, records) in counts {
            if let Some(count) = p.pending.get_mut(offset) {
                *count = (*count + records).saturating_sub(1);
            }
        }
        advance(p)
    }

    /// One more record of `offset` is to be written (a dead letter for an
    /// output that could not be written).
    pub fn added(&mut self, tp: &Tp, generation: u64, offset: i64) {
        self.adjust(tp, generation, offset, |count| *count += 1);
    }

    /// The broker acknowledged one record of `offset`.
    pub fn acknowledged(&mut self, tp: &Tp, generation: u64, offset: i64) -> Option<i64> {
        self.adjust(tp, generation, offset, |count| {
            *count = count.saturating_sub(1)
        })
    }

    /// Offsets dispatched and not yet done, for back-pressure.
    pub fn in_flight(&self, tp: &Tp) -> usize {
        self.partitions.get(tp).map_or(0, |p| p.pending.len())
    }

    /// Whether nothing is in flight anywhere.
    pub fn is_idle(&self) -> bool {
        self.partitions.values().all(|p| p.pending.is_empty())
    }

    fn adjust(
        &mut self,
        tp: &Tp,
        generation: u64,
        offset: i64,
        f: impl FnOnce(&mut u32),
    ) -> Option<i64> {
        let p = self.partitions.get_mut(tp)?;
        if p.generation != generation {
            return None;
        }
        f(p.pending.get_mut(&offset)?);
        advance(p)
    }
}

/// Advances a partition's frontier over every finished offset at its
/// front; returns the new frontier (the next offset to read) if it moved.
fn advance(p: &mut PartitionState) -> Option<i64> {
    let mut stored = None;
    while let Some(entry) = p.pending.first_entry() {
        if *entry.get() != 0 {
            break;
        }
        stored = Some(*entry.key() + 1);
        entry.remove();
    }
    stored
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
    fn stores_only_a_contiguous_prefix_of_finished_offsets() {
        let mut t = Tracker::default();
        let g = t.assign(tp());
        for o in 10..13 {
            t.dispatched(&tp(), o);
        }
        // 11 is filtered out (no records) but 10 is not done yet.
        assert_eq!(t.processed(&tp(), g, 11, 0), None);
        assert_eq!(t.processed(&tp(), g, 10, 2), None);
        assert_eq!(t.acknowledged(&tp(), g, 10), None);
        assert_eq!(t.acknowledged(&tp(), g, 10), Some(12));
        assert_eq!(t.in_flight(&tp()), 1);
        assert_eq!(t.processed(&tp(), g, 12, 1), None);
        // A failed output turns into a dead letter: one more record.
        t.added(&tp(), g, 12);
        assert_eq!(t.acknowledged(&tp(), g, 12), None);
        assert_eq!(t.acknowledged(&tp(), g, 12), Some(13));
        assert!(t.is_idle());
    }

    #[test]
    fn batch_calls_match_single_ones() {
        let mut one = Tracker::default();
        let mut all = Tracker::default();
        let (g1, g2) = (one.assign(tp()), all.assign(tp()));
        for o in 0..4 {
            one.dispatched(&tp(), o);
        }
        all.dispatched_all(&tp(), 0..4);
        let counts = [(0, 1), (1, 0), (2, 2), (3, 0)];
        let mut stored = None;
        for &(o, r) in &counts {
            stored = one.processed(&tp(), g1, o, r).or(stored);
        }
        assert_eq!(all.processed_all(&tp(), g2, &counts), stored);
        assert_eq!(all.in_flight(&tp()), one.in_flight(&tp()));
        assert_eq!(
            all.processed_all(&tp(), g2 + 1, &counts),
            None,
            "stale generation"
        );
        assert_eq!(all.acknowledged(&tp(), g2, 0), Some(2));
    }

    #[test]
    fn ignores_acknowledgements_of_an_old_assignment() {
        let mut t = Tracker::default();
        let old = t.assign(tp());
        t.dispatched(&tp(), 5);
        t.revoke(&tp());
        let new = t.assign(tp());
        t.dispatched(&tp(), 5);
        assert_eq!(t.processed(&tp(), old, 5, 0), None);
        assert_eq!(t.in_flight(&tp()), 1);
        assert_eq!(t.processed(&tp(), new, 5, 0), Some(6));
    }
}
