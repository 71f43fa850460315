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

/// Exactly-once: the transaction open on the sink's producer.
pub(super) struct Txn {
    /// How often it commits.
    pub interval: Duration,
    pub opened: Instant,
    /// Why it cannot commit, once a record of it failed.
    pub doomed: Option<String>,
    /// An abort under way.
    pub aborting: Option<Aborting>,
}

impl Txn {
    pub fn new(interval: Duration) -> Self {
        Txn {
            interval,
            opened: Instant::now(),
            doomed: None,
            aborting: None,
        }
    }
}

/// An abort waiting for the workers to pass its barrier.
pub(super) struct Aborting {
    /// The recovery job its partitions wait for; also names the barrier.
    epoch: u64,
    /// Workers told the barrier so far (an inbox may be full).
    told: Vec<bool>,
    /// Workers that passed it.
    passed: usize,
    /// When it gives up waiting for a worker.
    deadline: Instant,
}

impl Poller {
    /// Exactly-once: commits the open transaction once its interval is up,
    /// aborts it if it cannot commit, or carries an abort on.
    pub(super) fn end_transaction_if_due(&mut self) {
        let Some(txn) = &self.txn else {
            return;
        };
        if txn.aborting.is_some() {
            self.carry_on_abort();
        } else if txn.doomed.is_some() {
            self.begin_abort();
        } else if txn.opened.elapsed() >= txn.interval {
            self.commit_transaction(true);
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
            if self.txn.as_ref().is_some_and(|t| t.doomed.is_some()) {
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
                txn.opened = Instant::now();
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
                        txn.opened = Instant::now();
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
            txn.doomed.get_or_insert(why);
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
        let Some(txn) = &mut self.txn else {
            return;
        };
        let why = txn.doomed.take().unwrap_or_default();
        tracing::warn!(pipeline = %self.name, why, "aborting the transaction; processing again from the last commit");
        self.metrics.transaction(false);
        self.live.clear();
        self.dispatcher.drop_parked();
        self.rewrites.clear();
        let numbers = self.assigned_numbers();
        let epoch = self.hold_back(&numbers, true);
        let workers = self.dispatcher.workers();
        if let Some(txn) = &mut self.txn {
            txn.aborting = Some(Aborting {
                epoch,
                told: vec![false; workers],
                passed: 0,
                deadline: Instant::now() + DRAIN_TIMEOUT,
            });
        }
        self.carry_on_abort();
    }

    /// A worker passed the barrier of the abort `epoch`.
    pub(super) fn barrier_passed(&mut self, epoch: u64) {
        if let Some(aborting) = self.txn.as_mut().and_then(|t| t.aborting.as_mut())
            && aborting.epoch == epoch
        {
            aborting.passed += 1;
        }
    }

    /// Tells the barrier to the workers not told yet; once every worker
    /// passed it, finishes the abort.
    fn carry_on_abort(&mut self) {
        let Some(aborting) = self.txn.as_mut().and_then(|t| t.aborting.as_mut()) else {
            return;
        };
        for (worker, told) in aborting.told.iter_mut().enumerate() {
            if !*told {
                *told = self
                    .dispatcher
                    .try_tell(worker, WorkerMsg::Barrier(aborting.epoch));
            }
        }
        if aborting.passed < aborting.told.len() {
            if Instant::now() < aborting.deadline {
                return;
            }
            tracing::error!(pipeline = %self.name, "workers did not pass the abort's barrier in time; aborting anyway");
        }
        let epoch = aborting.epoch;
        self.finish_abort(epoch);
    }

    /// Aborts the transaction, gives every assigned partition a new
    /// generation, begins the next transaction and asks the recovery
    /// thread for the partitions' state and committed offsets.
    fn finish_abort(&mut self, epoch: u64) {
        if let Some(txn) = &mut self.txn {
            txn.aborting = None;
        }
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
            txn.opened = Instant::now();
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
