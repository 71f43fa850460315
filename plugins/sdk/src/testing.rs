//! Helpers for a plugin's unit tests on the host target (not built for
//! Wasm): run an event as the host does, and seed or inspect the
//! [`state`](mod@crate::state) the plugin keeps.
//!
//! Off Wasm the state is an in-memory map per thread, so every `#[test]`
//! (each runs on a thread of its own) starts with an empty one. It stands
//! for the state of one input partition.
//!
//! ```
//! use sluice_sdk::{Event, Plugin, ProcessError, state, testing};
//! # use sluice_sdk::{Config, Output};
//! # struct Dedup;
//! # impl Plugin for Dedup {
//! #     fn init(_: &Config) -> Result<Self, String> { Ok(Dedup) }
//! #     fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
//! #         let id = event.value_str()?;
//! #         if state::exists(id) { return Ok(vec![]); }
//! #         state::set(id, "");
//! #         if id.is_empty() { return Err(ProcessError::invalid("empty id")); }
//! #         Ok(vec![Output::forward(event)])
//! #     }
//! # }
//! let mut plugin = Dedup::init(&Config::default()).unwrap();
//! testing::set_state([("seen-before", "")]);
//! assert_eq!(testing::process(&mut plugin, Event::new("seen-before")), Ok(vec![]));
//! assert_eq!(testing::process(&mut plugin, Event::new("new")).unwrap().len(), 1);
//! // A failed event's writes are discarded.
//! assert!(testing::process(&mut plugin, Event::new("")).is_err());
//! let keys: Vec<Vec<u8>> = testing::state().into_keys().collect();
//! assert_eq!(keys, [b"new".to_vec(), b"seen-before".to_vec()]);
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;

use crate::state::memory::MAP;
use crate::{Event, Output, Plugin, ProcessError, state};

/// Processes `event` as the host does: the state writes it makes are
/// applied if it returns `Ok` and discarded if it returns `Err`. State calls
/// made outside it (or [`with_event`]) panic, as they do outside an event
/// in Wasm.
///
/// # Errors
///
/// What the plugin's `process` returned.
pub fn process<P: Plugin>(plugin: &mut P, event: Event) -> Result<Vec<Output>, ProcessError> {
    state::run_event(|| plugin.process(event))
}

/// Runs `body` as the handler of an event that succeeds: it may call the
/// [`state`](mod@crate::state) functions, and its writes are applied when it
/// returns. For testing code of a plugin that uses state outside
/// [`Plugin::process`].
pub fn with_event<T>(body: impl FnOnce() -> T) -> T {
    match state::run_event(|| Ok::<T, Infallible>(body())) {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// The state as the events processed so far on this thread left it.
pub fn state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    MAP.with_borrow(Clone::clone)
}

/// Replaces this thread's state with `entries`, as if earlier events had
/// written them.
pub fn set_state<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(entries: impl IntoIterator<Item = (K, V)>) {
    let entries = entries
        .into_iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect();
    MAP.set(entries);
}
