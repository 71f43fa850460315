//! Exactly-once: events whose outputs the broker refused. In a transaction
//! a refused record cannot become a dead letter in its place (the
//! transaction is aborted), so the event is remembered here, and when the
//! batch is processed again after the abort, the event goes to the DLQ as
//! `produce-failed` instead of its outputs: a record the broker will never
//! take does not abort every transaction after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::envelope::DeadLetter;
use crate::plugin::Event;

/// Where an event was read: topic, partition, offset.
type Position = (Arc<str>, i32, i64);

/// The events whose outputs were refused, with their dead letters.
#[derive(Debug, Default)]
pub(crate) struct RefusedOutputs {
    events: Mutex<FxHashMap<Position, Arc<DeadLetter>>>,
    /// Whether `events` has any: workers look it up for every event.
    any: AtomicBool,
}

impl RefusedOutputs {
    /// Remembers that `event` of `topic` could not have its outputs
    /// written, and its dead letter.
    pub fn insert(&self, topic: &Arc<str>, event: &Event, dead_letter: Arc<DeadLetter>) {
        let mut events = self.events.lock();
        events.insert((topic.clone(), event.partition, event.offset), dead_letter);
        self.any.store(true, Ordering::Release);
    }

    /// The dead letter to write instead of `event`'s outputs, if they were
    /// refused before.
    pub fn get(&self, topic: &Arc<str>, event: &Event) -> Option<Arc<DeadLetter>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.events
            .lock()
            .get(&(topic.clone(), event.partition, event.offset))
            .cloned()
    }

    /// Forgets everything (a commit made it all history).
    pub fn clear(&self) {
        let mut events = self.events.lock();
        events.clear();
        self.any.store(false, Ordering::Release);
    }
}
