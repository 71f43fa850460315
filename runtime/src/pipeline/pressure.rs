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
/// Input offsets a pipeline may have in flight (read, not yet done), shared
/// out over its partitions. A record stays in flight for the worker's
/// queue plus `linger.ms` plus a broker round trip, ~20 ms on the mock
/// broker: a limit of 2048 per partition capped one partition at ~300k
/// events/s; this allows ~1.5M/s. Bounds memory too: 32 MiB of 1 KB
/// events.
const IN_FLIGHT_BUDGET: usize = 32 * 1024;

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

    /// Offsets a partition may have in flight: its share of
    /// [`IN_FLIGHT_BUDGET`], at least `floor`.
    fn max_in_flight(&self, floor: usize) -> usize {
        (IN_FLIGHT_BUDGET / self.assignment.len().max(1)).max(floor)
    }
}

/// Paused partitions and how long reading has been held off.
pub(crate) struct Pressure {
    paused: FxHashSet<Tp>,
    /// Since when reading has been held off.
    held_since: Option<Instant>,
    /// The in-flight limit of a partition never goes below this.
    min_in_flight: usize,
}

impl Pressure {
    pub fn new(batch_size: usize) -> Self {
        Pressure {
            paused: FxHashSet::default(),
            held_since: None,
            min_in_flight: (batch_size * 8).max(1024),
        }
    }

    /// Its worker has batches waiting for room, or it has too many offsets
    /// in flight.
    fn over_limit(&self, tp: &Tp, load: &Load<'_>) -> bool {
        load.dispatcher.is_parked(tp)
            || load.tracker.in_flight(tp) > load.max_in_flight(self.min_in_flight)
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
        let limit = load.max_in_flight(self.min_in_flight) / 2;
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

fn set_paused(consumer: &BaseConsumer<GroupContext>, tp: &Tp, paused: bool) {
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
