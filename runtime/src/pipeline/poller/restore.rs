//! Recovery as the poll thread sees it: partitions whose state is being
//! restored (or whose committed offsets are being looked up after an
//! abort) are paused and their events held back, while the recovery thread
//! ([`crate::pipeline::recovery`]) does the reading; its answer hands each
//! partition's state to its worker, moves a rewound partition back to its
//! committed offset, and lets the partition go on.
//!
//! [`Recovering`] is the bookkeeping alone, with no Kafka in it: which
//! partition numbers wait for which job, and the events the consumer
//! returned for them before their pause took effect.

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use super::Poller;
use crate::pipeline::pressure::set_paused;
use crate::pipeline::recovery::{Job, Recovered};
use crate::pipeline::tracker::Tp;
use crate::pipeline::worker::WorkerMsg;
use crate::plugin::Event;

/// Partition numbers waiting for a recovery job, and what was read of
/// them meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Recovering {
    last_epoch: u64,
    /// Partition number → the latest job that covers it.
    pending: FxHashMap<i32, u64>,
    /// Jobs that rewind (after an abort): their partitions are read again
    /// from the committed offset, so nothing is held for them.
    rewinds: FxHashMap<u64, ()>,
    /// Events of pending partitions returned before the pause took effect,
    /// in offset order: handed on once the partition is recovered. Bounded
    /// by what the consumer had fetched when the partition was paused.
    held: FxHashMap<Tp, Vec<Event>>,
}

/// What an answer means for one partition number.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The latest job for it: apply the answer.
    Current,
    /// A later job covers it, or it was revoked: ignore the answer.
    Stale,
}

impl Recovering {
    /// Partition numbers `numbers` wait for a new job from now on; its
    /// epoch. A rewinding job drops what was held of them.
    pub fn start(&mut self, numbers: &[i32], rewind: bool) -> u64 {
        self.last_epoch += 1;
        let epoch = self.last_epoch;
        for number in numbers {
            self.pending.insert(*number, epoch);
        }
        if rewind {
            self.rewinds.insert(epoch, ());
            self.held.retain(|tp, _| !numbers.contains(&tp.partition));
        }
        epoch
    }

    /// Whether partition number `number` waits for a job.
    pub fn is_pending(&self, number: i32) -> bool {
        self.pending.contains_key(&number)
    }

    /// Whether anything waits for a job.
    pub fn any(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes an event read of `tp` while its number waits (and drops it
    /// if it will be read again, after a rewind); hands it back when its
    /// number does not wait.
    pub fn hold(&mut self, tp: &Tp, event: Event) -> Option<Event> {
        match self.pending.get(&tp.partition) {
            None => Some(event),
            Some(epoch) if self.rewinds.contains_key(epoch) => None,
            Some(_) => {
                self.held.entry(tp.clone()).or_default().push(event);
                None
            }
        }
    }

    /// What job `epoch`'s answer means for `number`; a current answer
    /// ends its wait.
    pub fn answer(&mut self, epoch: u64, number: i32) -> Answer {
        if self.pending.get(&number) == Some(&epoch) {
            self.pending.remove(&number);
            Answer::Current
        } else {
            Answer::Stale
        }
    }

    /// Whether job `epoch` rewinds; forgets it once it is answered.
    pub fn answered(&mut self, epoch: u64) -> bool {
        self.rewinds.remove(&epoch).is_some()
    }

    /// The events held of `tp`, in order.
    pub fn take_held(&mut self, tp: &Tp) -> Vec<Event> {
        self.held.remove(tp).unwrap_or_default()
    }

    /// `tp` was revoked; its number no longer waits once no partition of
    /// that number is assigned (`number_kept`).
    pub fn revoked(&mut self, tp: &Tp, number_kept: bool) {
        self.held.remove(tp);
        if !number_kept {
            self.pending.remove(&tp.partition);
        }
    }
}

impl Poller {
    /// Restores the state of partition numbers `numbers`, just assigned:
    /// they wait, paused, for the recovery thread (which under
    /// exactly-once also reads their committed offsets, to leave out what
    /// uncommitted work wrote).
    pub(super) fn restore(&mut self, numbers: &[i32]) {
        if !self.keeps_state || numbers.is_empty() {
            return;
        }
        let epoch = self.hold_back(numbers, false);
        let committed = if self.txn.is_some() {
            self.assignment
                .tps()
                .filter(|tp| numbers.contains(&tp.partition))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.send_job(Job {
            epoch,
            numbers: numbers.to_vec(),
            committed,
        });
    }

    /// Pauses the assigned partitions of `numbers` until a recovery job
    /// answers for them (`rewind`: what is read of them meanwhile is
    /// dropped, since they are read again from their committed offsets);
    /// the job's epoch.
    pub(super) fn hold_back(&mut self, numbers: &[i32], rewind: bool) -> u64 {
        let epoch = self.recovering.start(numbers, rewind);
        let tps: Vec<Tp> = self
            .assignment
            .tps()
            .filter(|tp| numbers.contains(&tp.partition))
            .cloned()
            .collect();
        for tp in &tps {
            self.pause_for_recovery(tp);
        }
        epoch
    }

    /// Pauses `tp` until its number is recovered.
    pub(super) fn pause_for_recovery(&mut self, tp: &Tp) {
        self.pressure.revoked(tp);
        set_paused(&self.consumer, tp, true);
        self.status.restoring(&tp.topic, tp.partition, true);
    }

    /// Hands a job to the recovery thread.
    pub(super) fn send_job(&self, job: Job) {
        match &self.recovery {
            Some(recovery) => recovery.send(job),
            None => {
                tracing::error!(pipeline = %self.name, "no recovery thread; partitions stay paused")
            }
        }
    }

    /// A recovery job's answer: each partition it is still current for
    /// gets its state (a failed restore stops the partition), is moved
    /// back to its committed offset if the job rewinds, and goes on, its
    /// held events first.
    pub(super) fn recovered(&mut self, recovered: Recovered) {
        let Recovered {
            epoch,
            mut states,
            committed,
            lookup_error,
            keys,
            took,
        } = recovered;
        let rewind = self.recovering.answered(epoch);
        let mut numbers: Vec<i32> = committed
            .keys()
            .map(|tp| tp.partition)
            .chain(states.keys().copied())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let mut seek = TopicPartitionList::new();
        let mut resumed = Vec::new();
        for number in numbers {
            if self.recovering.answer(epoch, number) == Answer::Stale {
                continue;
            }
            let tps: Vec<Tp> = self
                .assignment
                .tps()
                .filter(|tp| tp.partition == number)
                .cloned()
                .collect();
            match states.remove(&number) {
                Some(Err(e)) => {
                    tracing::error!(pipeline = %self.name, partition = number, error = %e, "cannot restore the state of a partition; it stops until it is assigned again");
                    self.stopped.insert(number);
                    for tp in &tps {
                        self.recovering.take_held(tp);
                        self.dispatcher.forget(tp);
                        self.status.restoring(&tp.topic, tp.partition, false);
                        self.status
                            .stopped(&tp.topic, tp.partition, Some(e.to_string()));
                    }
                    continue;
                }
                Some(Ok(state)) => {
                    self.stopped.remove(&number);
                    for tp in &tps {
                        self.status.stopped(&tp.topic, tp.partition, None);
                    }
                    self.dispatcher.tell_owner(
                        number,
                        WorkerMsg::Restore {
                            partition: number,
                            state,
                        },
                    );
                }
                None => {}
            }
            if rewind && lookup_error.is_none() {
                for tp in &tps {
                    let offset = committed
                        .get(tp)
                        .copied()
                        .flatten()
                        .map_or(Offset::Beginning, Offset::Offset);
                    let _ = seek.add_partition_offset(&tp.topic, tp.partition, offset);
                }
            }
            resumed.extend(tps);
        }
        if seek.count() > 0 {
            self.rewind(seek);
        }
        for tp in resumed {
            for event in self.recovering.take_held(&tp) {
                self.dispatcher.push(&tp, event, &mut self.tracker);
            }
            self.pressure.assigned(&tp, &self.consumer);
            self.status.restoring(&tp.topic, tp.partition, false);
        }
        if self.keeps_state {
            self.metrics.restored(keys, took);
            tracing::info!(
                pipeline = %self.name,
                epoch,
                keys,
                took_ms = took.as_millis() as u64,
                "state restored"
            );
        }
    }

    /// Moves partitions back to the offsets in `tpl` (their committed
    /// ones). Paused, they go on from there once resumed.
    fn rewind(&mut self, tpl: TopicPartitionList) {
        // A zero timeout queues the seeks without waiting for them: the
        // resume that follows is queued behind them.
        match self
            .consumer
            .seek_partitions(tpl, std::time::Duration::ZERO)
        {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> Tp {
        Tp {
            topic: "in".into(),
            partition,
        }
    }

    fn event(offset: i64) -> Event {
        Event {
            topic: "in".into(),
            partition: 0,
            offset,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    fn offsets(events: &[Event]) -> Vec<i64> {
        events.iter().map(|e| e.offset).collect()
    }

    #[test]
    fn events_read_while_restoring_are_held_and_handed_on_in_order() {
        let mut r = Recovering::default();
        let epoch = r.start(&[0, 1], false);
        assert!(r.is_pending(0) && r.is_pending(1) && !r.is_pending(2));
        assert!(r.hold(&tp(0), event(5)).is_none());
        assert!(r.hold(&tp(0), event(6)).is_none());
        // Not waiting: handed back, to be processed at once.
        assert_eq!(r.hold(&tp(2), event(9)).map(|e| e.offset), Some(9));

        assert!(!r.answered(epoch), "not a rewind");
        assert_eq!(r.answer(epoch, 0), Answer::Current);
        assert!(!r.is_pending(0) && r.is_pending(1));
        assert_eq!(offsets(&r.take_held(&tp(0))), [5, 6]);
        assert!(r.take_held(&tp(0)).is_empty(), "taken once");
        assert_eq!(r.answer(epoch, 1), Answer::Current);
        assert!(!r.any());
    }

    #[test]
    fn a_later_job_makes_an_earlier_answer_stale() {
        let mut r = Recovering::default();
        let first = r.start(&[0, 1], false);
        // An abort asks again for every partition before the first
        // answer came.
        let second = r.start(&[0, 1, 2], true);
        assert!(!r.answered(first));
        assert_eq!(r.answer(first, 0), Answer::Stale);
        assert!(r.is_pending(0), "still waits for the second job");
        assert!(r.answered(second));
        for n in [0, 1, 2] {
            assert_eq!(r.answer(second, n), Answer::Current);
        }
        assert!(!r.any());
    }

    #[test]
    fn a_rewind_drops_held_events_and_holds_none() {
        let mut r = Recovering::default();
        r.start(&[0], false);
        assert!(r.hold(&tp(0), event(1)).is_none());
        r.start(&[0], true);
        assert!(r.take_held(&tp(0)).is_empty(), "read again from the commit");
        assert!(r.hold(&tp(0), event(2)).is_none());
        assert!(r.take_held(&tp(0)).is_empty());
    }

    #[test]
    fn a_revoked_partition_no_longer_waits_unless_its_number_is_kept() {
        let mut r = Recovering::default();
        let epoch = r.start(&[0], false);
        assert!(r.hold(&tp(0), event(1)).is_none());
        let other = Tp {
            topic: "other".into(),
            partition: 0,
        };
        assert!(r.hold(&other, event(2)).is_none());
        r.revoked(&tp(0), true);
        assert!(r.take_held(&tp(0)).is_empty());
        assert!(r.is_pending(0), "`other` 0 still needs the state");
        r.revoked(&other, false);
        assert!(!r.is_pending(0));
        assert_eq!(r.answer(epoch, 0), Answer::Stale);
    }
}
