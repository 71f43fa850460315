//! Exactly-once on the poll thread: the open transaction commits with the
//! offsets that follow its batches once its interval is up; a transaction
//! that cannot commit (a record refused, partitions revoked, a failed
//! commit) is aborted, and every assigned partition goes back to its last
//! commit with its state restored.
//!
//! An abort never stops the poll loop: it pauses every partition, tells
//! each worker a barrier and goes on polling until every worker has
//! passed it (so nothing more is written into the doomed transaction);
//! then it aborts, begins the next transaction and hands the partitions to
//! the recovery thread, which restores their state and finds their
//! committed offsets; its answer rewinds and resumes them.
//!
//! [`Txn`] decides what is due (commit, abort, barrier, the abort's end)
//! without touching Kafka, so those rules have unit tests of their own;
//! the poll loop carries its decisions out.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{DRAIN_TIMEOUT, Poller, TXN_TIMEOUT};
use crate::pipeline::batch::Ticket;
use crate::pipeline::recovery::Job;
use crate::pipeline::tracker::Tp;
use crate::pipeline::worker::WorkerMsg;

/// Exactly-once: where the transaction open on the sink's producer
/// stands, and what the poll loop is to do about it. No Kafka in it: the
/// poll loop carries its decisions out.
pub(super) struct Txn {
    /// How often it commits.
    interval: Duration,
    opened: Instant,
    /// Why it cannot commit, once something of it failed.
    doomed: Option<String>,
    /// An abort under way.
    aborting: Option<Aborting>,
}

/// An abort waiting for the workers to pass its barrier.
#[derive(Debug)]
struct Aborting {
    /// The recovery job its partitions wait for; also names the barrier.
    epoch: u64,
    /// Workers told the barrier so far (an inbox may be full).
    told: Vec<bool>,
    /// Workers that passed it.
    passed: usize,
    /// When it stops waiting for the workers.
    deadline: Instant,
}

/// What the poll loop is to do about the transaction now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing yet.
    Nothing,
    /// Its interval is up: commit it.
    Commit,
    /// It cannot commit: start aborting it.
    Abort,
    /// Tell the barrier of abort `epoch` to these workers (not told yet).
    TellBarrier { epoch: u64, workers: Vec<usize> },
    /// Every worker passed the barrier of abort `epoch` (or the wait is
    /// over): abort, and go back to the last commit.
    FinishAbort { epoch: u64, late: bool },
}

impl Txn {
    /// A transaction begun `now`, committed every `interval`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Txn {
            interval,
            opened: now,
            doomed: None,
            aborting: None,
        }
    }

    /// What is due at `now`.
    pub fn due(&self, now: Instant) -> Due {
        if let Some(aborting) = &self.aborting {
            let workers: Vec<usize> = (0..aborting.told.len())
                .filter(|w| !aborting.told[*w])
                .collect();
            if aborting.passed >= aborting.told.len() || now >= aborting.deadline {
                return Due::FinishAbort {
                    epoch: aborting.epoch,
                    late: aborting.passed < aborting.told.len(),
                };
            }
            if workers.is_empty() {
                return Due::Nothing;
            }
            return Due::TellBarrier {
                epoch: aborting.epoch,
                workers,
            };
        }
        if self.doomed.is_some() {
            Due::Abort
        } else if now.duration_since(self.opened) >= self.interval {
            Due::Commit
        } else {
            Due::Nothing
        }
    }

    /// It cannot commit, because of `why` (the first reason is kept).
    pub fn doom(&mut self, why: impl FnOnce() -> String) {
        if self.aborting.is_none() {
            self.doomed.get_or_insert_with(why);
        }
    }

    /// Whether it cannot commit.
    pub fn is_doomed(&self) -> bool {
        self.doomed.is_some() || self.aborting.is_some()
    }

    /// Starts aborting: `workers` must pass barrier `epoch` by `deadline`.
    /// Why it could not commit.
    pub fn begin_abort(&mut self, epoch: u64, workers: usize, deadline: Instant) -> String {
        self.aborting = Some(Aborting {
            epoch,
            told: vec![false; workers],
            passed: 0,
            deadline,
        });
        self.doomed.take().unwrap_or_default()
    }

    /// `worker` was told the barrier.
    pub fn told(&mut self, worker: usize) {
        if let Some(told) = self.aborting.as_mut().and_then(|a| a.told.get_mut(worker)) {
            *told = true;
        }
    }

    /// A worker passed barrier `epoch` (an older abort's is ignored).
    pub fn passed(&mut self, epoch: u64) {
        if let Some(aborting) = &mut self.aborting
            && aborting.epoch == epoch
        {
            aborting.passed += 1;
        }
    }

    /// The next transaction began `now` (after a commit or an abort).
    pub fn began(&mut self, now: Instant) {
        self.opened = now;
        self.aborting = None;
        self.doomed = None;
    }
}

impl Poller {
    /// Exactly-once: commits the open transaction once its interval is up,
    /// aborts it if it cannot commit, or carries an abort on.
    pub(super) fn end_transaction_if_due(&mut self) {
        let Some(txn) = &self.txn else {
            return;
        };
        match txn.due(Instant::now()) {
            Due::Nothing => {}
            Due::Commit => self.commit_transaction(true),
            Due::Abort => self.begin_abort(),
            Due::TellBarrier { epoch, workers } => self.tell_barrier(epoch, &workers),
            Due::FinishAbort { epoch, late } => {
                if late {
                    tracing::error!(pipeline = %self.name, "workers did not pass the abort's barrier in time; aborting anyway");
                }
                self.finish_abort(epoch);
            }
        }
    }

    /// Exactly-once: waits until every batch dispatched is done (nothing
    /// new is dispatched meanwhile), then commits the transaction with the
    /// offsets that follow them, and opens the next one if `reopen`. A
    /// transaction that cannot commit is aborted. Without `reopen` (the
    /// pipeline stops, its workers are gone) it commits what is done.
    pub(super) fn commit_transaction(&mut self, reopen: bool) {
        let deadline = Instant::now() + TXN_TIMEOUT;
        while reopen && !self.tracker.is_idle() {
            if self.txn.as_ref().is_some_and(Txn::is_doomed) {
                return self.begin_abort();
            }
            if Instant::now() >= deadline {
                self.doom("its batches took too long to be written".to_owned());
                return self.begin_abort();
            }
            self.wait_for_control();
            self.retry_rewrites();
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in self.tracker.take_released() {
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset));
        }
        let sink = self.sink.clone();
        let producer = sink.producer();
        if tpl.count() == 0 {
            // Nothing was processed: there is nothing to commit.
            if let Some(txn) = &mut self.txn {
                txn.began(Instant::now());
            }
            if !reopen {
                let _ = producer.abort_transaction(TXN_TIMEOUT);
            }
            return;
        }
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
                        txn.began(Instant::now());
                    }
                }
                Err(e) => self.fatal(&e),
            },
            Err(e) => {
                self.doom(format!("the commit failed: {e}"));
                if reopen {
                    self.begin_abort();
                } else {
                    let _ = producer.abort_transaction(TXN_TIMEOUT);
                }
            }
        }
    }

    /// A record of the open transaction, of `ticket`'s batch, failed: it
    /// cannot commit. The batch is processed again after the abort.
    pub(super) fn doom_for(&mut self, ticket: &Ticket) {
        let batch = ticket.batch();
        if self.tracker.generation(&batch.tp) == Some(batch.generation) {
            self.doom(format!(
                "a record of {}/{} could not be written",
                batch.tp.topic, batch.tp.partition
            ));
        }
    }

    pub(super) fn doom(&mut self, why: String) {
        if let Some(txn) = &mut self.txn {
            txn.doom(|| why);
        }
    }

    /// A transactional producer error that leaves it unusable (fenced by a
    /// newer instance with the same transactional id): the pipeline stops.
    pub(super) fn fatal(&mut self, error: &KafkaError) {
        tracing::error!(pipeline = %self.name, %error, "the transactional producer cannot go on (is another process running with the same kafka.instance_id?); the pipeline stops");
        self.cancel.cancel();
    }

    /// Starts aborting the open transaction: no batch of it may be
    /// processed any more, every assigned partition is paused until it is
    /// recovered, and every worker is told a barrier.
    pub(super) fn begin_abort(&mut self) {
        if self.txn.is_none() {
            return;
        }
        self.metrics.transaction(false);
        self.live.clear();
        self.dispatcher.drop_parked();
        self.rewrites.clear();
        let numbers = self.assigned_numbers();
        let epoch = self.hold_back(&numbers, true);
        let workers = self.dispatcher.workers();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        if let Some(txn) = &mut self.txn {
            let why = txn.begin_abort(epoch, workers, deadline);
            tracing::warn!(pipeline = %self.name, why, "aborting the transaction; processing again from the last commit");
        }
        self.end_transaction_if_due();
    }

    /// A worker passed the barrier of the abort `epoch`.
    pub(super) fn barrier_passed(&mut self, epoch: u64) {
        if let Some(txn) = &mut self.txn {
            txn.passed(epoch);
        }
    }

    /// Tells the barrier of abort `epoch` to `workers`, as far as their
    /// inboxes have room (the others are told on a later round).
    fn tell_barrier(&mut self, epoch: u64, workers: &[usize]) {
        for &worker in workers {
            if self.dispatcher.try_tell(worker, WorkerMsg::Barrier(epoch))
                && let Some(txn) = &mut self.txn
            {
                txn.told(worker);
            }
        }
    }

    /// Aborts the transaction, gives every assigned partition a new
    /// generation, begins the next transaction and asks the recovery
    /// thread for the partitions' state and committed offsets.
    fn finish_abort(&mut self, epoch: u64) {
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
        if let Err(e) = self.sink.clone().producer().begin_transaction() {
            return self.fatal(&e);
        }
        if let Some(txn) = &mut self.txn {
            txn.began(Instant::now());
        }
        let numbers = self.assigned_numbers();
        self.send_job(Job {
            epoch,
            numbers: if self.keeps_state {
                numbers
            } else {
                Vec::new()
            },
            committed: tps,
        });
    }

    /// The assigned partition numbers, sorted, each once.
    pub(super) fn assigned_numbers(&self) -> Vec<i32> {
        let mut numbers: Vec<i32> = self.assignment.tps().map(|tp| tp.partition).collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn commits_once_its_interval_is_up() {
        let t0 = Instant::now();
        let mut txn = Txn::new(SECOND, t0);
        assert_eq!(txn.due(t0), Due::Nothing);
        assert_eq!(txn.due(t0 + SECOND), Due::Commit);
        txn.began(t0 + SECOND);
        assert_eq!(txn.due(t0 + SECOND + SECOND / 2), Due::Nothing);
    }

    #[test]
    fn a_doomed_transaction_aborts_at_once_with_its_first_reason() {
        let t0 = Instant::now();
        let mut txn = Txn::new(SECOND, t0);
        txn.doom(|| "a record of in/0 could not be written".to_owned());
        txn.doom(|| "partitions were revoked".to_owned());
        assert!(txn.is_doomed());
        assert_eq!(txn.due(t0), Due::Abort, "no need to wait for the interval");
        assert_eq!(
            txn.begin_abort(7, 2, t0 + SECOND),
            "a record of in/0 could not be written"
        );
        assert!(txn.is_doomed(), "until the next one begins");
    }

    #[test]
    fn an_abort_tells_every_worker_then_waits_for_all_of_them() {
        let t0 = Instant::now();
        let mut txn = Txn::new(SECOND, t0);
        txn.doom(|| "x".to_owned());
        txn.begin_abort(3, 2, t0 + 30 * SECOND);
        assert_eq!(
            txn.due(t0),
            Due::TellBarrier {
                epoch: 3,
                workers: vec![0, 1]
            }
        );
        // Worker 1's inbox was full: only it is told again.
        txn.told(0);
        assert_eq!(
            txn.due(t0),
            Due::TellBarrier {
                epoch: 3,
                workers: vec![1]
            }
        );
        txn.told(1);
        assert_eq!(txn.due(t0), Due::Nothing);
        // A barrier of an earlier abort does not count.
        txn.passed(2);
        txn.passed(3);
        assert_eq!(txn.due(t0), Due::Nothing);
        // A doom meanwhile changes nothing: it is aborting already.
        txn.doom(|| "again".to_owned());
        txn.passed(3);
        assert_eq!(
            txn.due(t0),
            Due::FinishAbort {
                epoch: 3,
                late: false
            }
        );
        txn.began(t0 + SECOND);
        assert!(!txn.is_doomed());
        assert_eq!(txn.due(t0 + SECOND), Due::Nothing);
    }

    #[test]
    fn an_abort_stops_waiting_for_workers_at_its_deadline() {
        let t0 = Instant::now();
        let mut txn = Txn::new(SECOND, t0);
        txn.begin_abort(1, 2, t0 + 30 * SECOND);
        txn.told(0);
        txn.told(1);
        txn.passed(1);
        assert_eq!(txn.due(t0 + 29 * SECOND), Due::Nothing);
        assert_eq!(
            txn.due(t0 + 30 * SECOND),
            Due::FinishAbort {
                epoch: 1,
                late: true
            }
        );
    }
}
