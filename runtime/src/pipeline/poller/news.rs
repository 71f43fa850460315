//! The news on the control channel, applied on the poll thread: a
//! recovery job's answer; a worker past an abort's barrier; a batch done; an output the broker refused (dead-lettered instead, or under
//! exactly-once the end of the transaction); a dead letter or state change
//! refused, written again after [`DLQ_RETRY`], since nothing is skipped.

use std::sync::Arc;
use std::time::Instant;

use super::{DLQ_RETRY, Poller};
use crate::changelog::Change;
use crate::envelope::DeadLetter;
use crate::failure::FailureKind;
use crate::pipeline::batch::Ticket;
use crate::pipeline::control::Control;
use crate::pipeline::tracker::Tp;

/// A record waiting to be written again.
pub(super) struct Rewrite {
    at: Instant,
    ticket: Ticket,
    record: Refused,
}

/// What was refused: nothing is skipped, so it is written again.
pub(super) enum Refused {
    DeadLetter {
        index: usize,
        dead_letter: Arc<DeadLetter>,
    },
    Change(Arc<Change>),
}

/// The partition and offset of event `index` of a ticket's batch, for logs.
fn located(ticket: &Ticket, index: usize) -> (&Tp, i64) {
    (
        &ticket.batch().tp,
        ticket.event(index).map_or(-1, |e| e.offset),
    )
}

impl Poller {
    pub(super) fn apply(&mut self, control: Control) {
        match control {
            Control::Recovered(recovered) => self.recovered(*recovered),
            Control::BarrierPassed(epoch) => self.barrier_passed(epoch),
            Control::Done(done) => {
                // Stored with the others at the end of the drain (see
                // `store_offsets`).
                let _ = self.tracker.done(&done.tp, done.generation, done.seq);
            }
            Control::OutputFailed {
                ticket,
                index,
                dead_letter,
            } if self.txn.is_some() => {
                // After the abort, the event goes to the DLQ instead. What
                // an abort purged (of a generation it ended) was not
                // refused.
                let batch = ticket.batch();
                if self.tracker.generation(&batch.tp) == Some(batch.generation)
                    && let Some(event) = ticket.event(index)
                {
                    self.refused.insert(&batch.tp.topic, event, dead_letter);
                }
                self.doom_for(&ticket);
            }
            Control::DeadLetterFailed { ticket, .. } | Control::ChangeFailed { ticket, .. }
                if self.txn.is_some() =>
            {
                self.doom_for(&ticket);
            }
            Control::OutputFailed {
                ticket,
                index,
                dead_letter,
            } => {
                let (tp, offset) = located(&ticket, index);
                tracing::warn!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, "an output could not be written; dead-lettering its event");
                // Workers count the dead letters they make; this one is
                // made here.
                self.metrics
                    .dead_letter(FailureKind::ProduceFailed.as_str());
                self.sink.send_dead_letter(ticket, index, dead_letter);
            }
            Control::DeadLetterFailed {
                ticket,
                index,
                dead_letter,
                error,
            } => {
                let (tp, offset) = located(&ticket, index);
                tracing::error!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, offset, %error, "cannot write to the DLQ; the partition waits and retries");
                self.rewrites.push(Rewrite {
                    at: Instant::now() + DLQ_RETRY,
                    ticket,
                    record: Refused::DeadLetter { index, dead_letter },
                });
            }
            Control::ChangeFailed {
                ticket,
                change,
                error,
            } => {
                let tp = &ticket.batch().tp;
                tracing::error!(pipeline = %self.name, topic = &*tp.topic, partition = tp.partition, %error, "cannot write to the state changelog; the partition waits and retries");
                self.rewrites.push(Rewrite {
                    at: Instant::now() + DLQ_RETRY,
                    ticket,
                    record: Refused::Change(change),
                });
            }
        }
    }

    pub(super) fn retry_rewrites(&mut self) {
        let now = Instant::now();
        let due: Vec<Rewrite>;
        (due, self.rewrites) = std::mem::take(&mut self.rewrites)
            .into_iter()
            .partition(|r| r.at <= now);
        for retry in due {
            let batch = retry.ticket.batch();
            if self.tracker.generation(&batch.tp) != Some(batch.generation) {
                // Revoked: the partition's new owner reads the event again.
                continue;
            }
            match retry.record {
                Refused::DeadLetter { index, dead_letter } => {
                    self.sink.send_dead_letter(retry.ticket, index, dead_letter)
                }
                Refused::Change(change) => self.sink.send_change(retry.ticket, change),
            }
        }
    }
}
