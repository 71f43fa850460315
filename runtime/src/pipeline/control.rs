//! News for the poll thread: batches that are done, records that could
//! not be written, workers past a barrier, and the recovery thread's
//! answers. Workers, the recovery thread and the producer's delivery
//! reports send it; the
//! poll thread alone acts on it, so the at-least-once bookkeeping has one
//! owner.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use super::batch::{Done, Ticket};
use super::recovery::Recovered;
use crate::changelog::Change;
use crate::envelope::DeadLetter;

/// One piece of news.
#[derive(Debug)]
pub(crate) enum Control {
    /// A recovery job's answer.
    Recovered(Box<Recovered>),
    /// A worker handled everything sent to it before the barrier of the
    /// abort `epoch`.
    BarrierPassed(u64),
    /// Every record of a batch is written.
    Done(Done),
    /// An output of event `index` could not be written; the event must be
    /// dead-lettered instead, under the output's ticket.
    OutputFailed {
        ticket: Ticket,
        index: usize,
        dead_letter: Arc<DeadLetter>,
    },
    /// The dead letter of event `index` could not be written; try again.
    DeadLetterFailed {
        ticket: Ticket,
        index: usize,
        dead_letter: Arc<DeadLetter>,
        error: String,
    },
    /// A state change of the ticket's batch could not be written to the
    /// changelog; try again.
    ChangeFailed {
        ticket: Ticket,
        change: Arc<Change>,
        error: String,
    },
}

/// The sending side, shared by workers and the producer's context.
#[derive(Debug, Clone)]
pub(crate) struct ControlTx(SyncSender<Control>);

impl ControlTx {
    pub fn new(tx: SyncSender<Control>) -> Self {
        ControlTx(tx)
    }

    /// Releases a ticket; the last one of its batch tells the poll thread.
    pub fn release(&self, ticket: Ticket) {
        if let Some(done) = ticket.release() {
            self.send(Control::Done(done));
        }
    }

    /// Sends news, waiting while the channel is full.
    pub fn send(&self, control: Control) {
        // The receiver only goes away with the pipeline, and then nobody
        // needs the news.
        let _ = self.0.send(control);
    }
}
