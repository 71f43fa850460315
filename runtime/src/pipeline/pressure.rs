//! Back-pressure: when a partition has too many events in flight, or its
//! worker's inbox is full, the poll thread stops reading and only serves
//! the control channel; librdkafka's own bounded prefetch queue holds what
//! arrives meanwhile. Only if that lasts [`PAUSE_AFTER`] are the partitions
//! over their limits paused at the consumer, to be resumed when they
//! drain: librdkafka drops a paused partition's prefetched messages and
//! applies a resume only when its fetcher next wakes up, up to a second
//! later, so pausing for every short burst cut throughput to a few
//! thousand events/s.

use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rustc_hash::FxHashSet;

use super::dispatch::Dispatcher;
use super::group::{Assignment, GroupContext};
use super::tracker::{Tp, Tracker};

/// How long the poll thread holds off reading before it pauses the
/// partitions over their limits (and goes back to serving rebalances).
pub(crate) const PAUSE_AFTER: Duration = Duration::from_millis(200);

/// What the limits are checked against.
pub(crate) struct Load<'a> {
    assignment: &'a Assignment,
    tracker: &'a Tracker,
    dispatcher: &'a Dispatcher,
}

impl<'a> Load<'a> {
    pub fn of(
        assignment: &'a Assignment,
        tracker: &'a Tracker,
        dispatcher: &'a Dispatcher,
    ) -> Self {
        Load {
            assignment,
            tracker,
            dispatcher,
        }
    }
}

/// Paused partitions and how long reading has been held off.
pub(crate) struct Pressure {
    paused: FxHashSet<Tp>,
    /// Since when reading has been held off.
    held_since: Option<Instant>,
    /// The pipeline's `max_in_flight`, shared out over its partitions.
    budget: usize,
    /// The in-flight limit of a partition never goes below this.
    min_in_flight: usize,
}

impl Pressure {
    /// Limits for batches of `batch_size` and `budget` events in flight.
    pub fn new(batch_size: usize, budget: usize) -> Self {
        let budget = budget.max(1);
        Pressure {
            paused: FxHashSet::default(),
            held_since: None,
            budget,
            // Eight batches keep a partition's worker busy while earlier
            // ones are being written, unless the whole budget is smaller.
            min_in_flight: (batch_size * 8).max(1024).min(budget),
        }
    }

    /// Offsets a partition may have in flight: its share of the budget,
    /// at least `min_in_flight`.
    fn max_in_flight(&self, load: &Load<'_>) -> usize {
        self.limit(load.assignment.len())
    }

    /// A partition's limit when `partitions` are assigned.
    fn limit(&self, partitions: usize) -> usize {
        (self.budget / partitions.max(1)).max(self.min_in_flight)
    }

    /// Its worker has batches waiting for room, or it has too many offsets
    /// in flight.
    fn over_limit(&self, tp: &Tp, load: &Load<'_>) -> bool {
        load.dispatcher.is_parked(tp) || load.tracker.in_flight(tp) > self.max_in_flight(load)
    }

    /// Whether a partition still being read is over its limits.
    pub fn must_hold_off(&self, load: &Load<'_>) -> bool {
        load.assignment
            .tps()
            .any(|tp| !self.paused.contains(tp) && self.over_limit(tp, load))
    }

    /// Reading is held off for another round. Once that has lasted
    /// [`PAUSE_AFTER`], pauses the partitions over their limits, so the
    /// others (and rebalances) are served again, and returns true.
    pub fn hold(&mut self, load: &Load<'_>, consumer: &BaseConsumer<GroupContext>) -> bool {
        let since = *self.held_since.get_or_insert_with(Instant::now);
        if since.elapsed() < PAUSE_AFTER {
            return false;
        }
        let over: Vec<Tp> = load
            .assignment
            .tps()
            .filter(|tp| !self.paused.contains(*tp) && self.over_limit(tp, load))
            .cloned()
            .collect();
        for tp in over {
            set_paused(consumer, &tp, true);
            self.paused.insert(tp);
        }
        self.held_since = None;
        true
    }

    /// Reading goes on.
    pub fn reading(&mut self) {
        self.held_since = None;
    }

    /// Resumes paused partitions that have drained.
    pub fn resume_drained(&mut self, load: &Load<'_>, consumer: &BaseConsumer<GroupContext>) {
        if self.paused.is_empty() {
            return;
        }
        let parked = load.dispatcher.parked_tps();
        let limit = self.max_in_flight(load) / 2;
        let resumable: Vec<Tp> = self
            .paused
            .iter()
            .filter(|tp| !parked.contains(tp) && load.tracker.in_flight(tp) <= limit)
            .cloned()
            .collect();
        for tp in resumable {
            self.paused.remove(&tp);
            set_paused(consumer, &tp, false);
        }
    }

    /// Whether any partition is paused.
    pub fn any_paused(&self) -> bool {
        !self.paused.is_empty()
    }

    /// A newly assigned partition is read, whatever it was before: one we
    /// paused and lost may come back still paused in librdkafka.
    pub fn assigned(&mut self, tp: &Tp, consumer: &BaseConsumer<GroupContext>) {
        self.paused.remove(tp);
        set_paused(consumer, tp, false);
    }

    /// Forgets a revoked partition.
    pub fn revoked(&mut self, tp: &Tp) {
        self.paused.remove(tp);
    }
}

pub(crate) fn set_paused(consumer: &BaseConsumer<GroupContext>, tp: &Tp, paused: bool) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.topic, tp.partition);
    let result = if paused {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = result {
        tracing::debug!(topic = &*tp.topic, partition = tp.partition, paused, error = %e, "cannot pause/resume");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_out_down_to_eight_batches_a_partition() {
        let default = Pressure::new(256, 32 * 1024);
        let limits: Vec<usize> = [1, 8, 16, 64].map(|n| default.limit(n)).into();
        assert_eq!(limits, [32768, 4096, 2048, 2048]);
        // A small budget bounds even one partition's eight batches.
        let small = Pressure::new(256, 1000);
        assert_eq!((small.limit(1), small.limit(8)), (1000, 1000));
        // Small batches still keep 1024 events a partition.
        let fine = Pressure::new(16, 4096);
        assert_eq!((fine.limit(2), fine.limit(8)), (2048, 1024));
    }
}
