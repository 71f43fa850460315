//! Keyed state the host keeps for the plugin (`wit/plugin.wit`, interface
//! `sluice:plugin/state`): a balance per account, a count per key, anything
//! an aggregation must not lose when the host replaces an instance.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export, state};
//!
//! /// Counts the events seen per key and writes the running count.
//! struct Counts;
//!
//! #[derive(Serialize, Deserialize, Default)]
//! struct Count {
//!     seen: u64,
//! }
//!
//! impl Plugin for Counts {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(Counts)
//!     }
//!
//!     fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
//!         let key = event.key().ok_or_else(|| ProcessError::invalid("event has no key"))?;
//!         let mut state_key = b"count/".to_vec();
//!         state_key.extend_from_slice(key);
//!         let mut count: Count = state::get_json(&state_key)?.unwrap_or_default();
//!         count.seen += 1;
//!         state::set_json(&state_key, &count)?;
//!         Ok(vec![Output::json(&count)?])
//!     }
//! }
//!
//! export!(Counts);
//!
//! // On the host target the state is an in-memory map per thread, and
//! // `testing::process` runs an event as the host does.
//! # fn main() {
//! use sluice_sdk::testing;
//! let mut plugin = Counts::init(&Config::default()).unwrap();
//! testing::process(&mut plugin, Event::new("a").with_key("k")).unwrap();
//! let outputs = testing::process(&mut plugin, Event::new("b").with_key("k")).unwrap();
//! assert_eq!(outputs, vec![Output::new(r#"{"seen":2}"#)]);
//! assert_eq!(testing::state()[&b"count/k"[..]], br#"{"seen":2}"#);
//! # }
//! ```
//!
//! Keys and values are bytes; every function takes a key as anything that
//! is `AsRef<[u8]>` (`&str`, `String`, `Vec<u8>`, `&[u8]`, a byte string
//! literal). [`get_json`] and [`set_json`] store a value as JSON.
//!
//! ## Scope
//!
//! Each step of a pipeline's chain has a state of its own, split by the
//! input partition of the event being processed: an event sees the keys
//! written while processing earlier events *of the same partition*. Kafka
//! puts the records of one key in one partition, so keep the state of a
//! record key under keys derived from it (as above), and have producers key
//! the records by what the state is about (the account, the customer).
//!
//! ## One event, all or nothing
//!
//! The SDK keeps what an event writes to itself until its
//! [`Plugin::process`](crate::Plugin::process) returns:
//!
//! - `Ok`: the writes go to the host, in order, before the next event is
//!   processed.
//! - `Err` (`invalid` or `retryable`): the writes are discarded, so a failed
//!   event leaves no trace and a retried one starts from the same state.
//!
//! While the event runs, [`get`], [`exists`] and [`keys`] see its own
//! writes. A panic (or any other trap) discards the writes of every event of
//! the batch; the host then retries the events one by one, so each is
//! applied once.
//!
//! `plugins/state-rule.json` (in the Sluice repository) is this rule's
//! specification, as cases of events with the answer of every call and the
//! state after every event; this SDK, the Python and the JavaScript SDK
//! are tested against it, on their own and through the host.
//!
//! ## Limits
//!
//! The host bounds the size of a key and of a value and the keys and bytes
//! of a partition's state (see the README). A write beyond them fails the
//! event that made it as `state-limit` (it goes to the dead-letter topic);
//! the state stays as it was before that event.
//!
//! ## Where state is available
//!
//! Only while an event is processed: a call from [`Plugin::init`](crate::Plugin::init)
//! (or from anywhere else outside `process`) panics with a message that
//! says so, which at `init` rejects the plugin. This is a bug in the plugin,
//! not a property of an event, hence a panic rather than an error to handle.
//! For the same reason a [`Keys`] iterator must be used up within the event
//! that created it.
//!
//! A plugin that never calls this module does not import the state
//! interface, and is loaded exactly like a stateless one.
//!
//! ## Testing
//!
//! Off Wasm (`cargo test` on your machine) the state is an in-memory map per
//! thread, so each `#[test]` starts empty. Drive the plugin with
//! [`testing::process`](crate::testing::process), which applies or discards
//! an event's writes as the host does, and seed or inspect the state with
//! [`testing::set_state`](crate::testing::set_state) and
//! [`testing::state`](crate::testing::state). Calling `plugin.process(..)`
//! directly works for stateless plugins only: a state call outside
//! `testing::process` panics, as it would outside an event in Wasm.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ProcessError;

/// The value of `key`, or `None` when it has none.
///
/// ```
/// # use sluice_sdk::{Event, ProcessError, state, testing};
/// # testing::with_event(|| {
/// state::set("greeting", "hello");
/// assert_eq!(state::get("greeting"), Some(b"hello".to_vec()));
/// assert_eq!(state::get(b"other"), None);
/// # });
/// ```
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    with_overlay("get", |overlay, store| overlay.get(store, key.as_ref()))
}

/// Sets `key` to `value`, replacing any value it had. The write takes effect
/// when the event succeeds.
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn set(key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
    with_overlay("set", |overlay, _| {
        overlay.set(key.as_ref(), value.into());
        Ok(())
    });
}

/// Removes `key`; removing a key that has no value does nothing.
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn delete(key: impl AsRef<[u8]>) {
    with_overlay("delete", |overlay, _| {
        overlay.delete(key.as_ref());
        Ok(())
    });
}

/// Whether `key` has a value.
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn exists(key: impl AsRef<[u8]>) -> bool {
    with_overlay("exists", |overlay, store| {
        overlay.exists(store, key.as_ref())
    })
}

/// The keys that start with `prefix` (`""`: every key), in byte order,
/// read from the host a page at a time as the iterator advances.
///
/// ```
/// # use sluice_sdk::{state, testing};
/// # testing::with_event(|| {
/// state::set("account/ACC-2", "20");
/// state::set("account/ACC-1", "10");
/// state::set("config/x", "1");
/// let accounts: Vec<String> = state::keys("account/")
///     .map(|key| String::from_utf8_lossy(&key).into_owned())
///     .collect();
/// assert_eq!(accounts, ["account/ACC-1", "account/ACC-2"]);
/// # });
/// ```
///
/// # Panics
///
/// Outside an event, or when the iterator is advanced after the event it
/// was created in (see the [module docs](self)).
pub fn keys(prefix: impl AsRef<[u8]>) -> Keys {
    with_overlay("keys", |overlay, _| {
        Ok(Keys {
            cursor: overlay.keys(prefix.as_ref(), PAGE),
            event: EVENT.get().generation,
        })
    })
}

/// Removes every key that starts with `prefix` (`""`: every key) and
/// returns how many had a value.
///
/// Counting means listing the keys, so this costs a host call per page of
/// [`keys`].
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn delete_prefix(prefix: impl AsRef<[u8]>) -> u64 {
    with_overlay("delete_prefix", |overlay, store| {
        overlay.delete_prefix(store, prefix.as_ref())
    })
}

/// The value of `key` deserialized from JSON, or `None` when it has none.
///
/// # Errors
///
/// [`ProcessError::Invalid`] when the stored value is not JSON of type `T`
/// (the message names the key).
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn get_json<T: DeserializeOwned>(key: impl AsRef<[u8]>) -> Result<Option<T>, ProcessError> {
    let key = key.as_ref();
    get(key)
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|err| {
                ProcessError::invalid(format!(
                    "state value of key `{}` is not the expected JSON: {err}",
                    key.escape_ascii()
                ))
            })
        })
        .transpose()
}

/// Sets `key` to `value` serialized as JSON.
///
/// # Errors
///
/// [`ProcessError::Invalid`] if `value` cannot be serialized (a map with
/// non-string keys, say); nothing is written then.
///
/// # Panics
///
/// Outside an event (see the [module docs](self)).
pub fn set_json<T: Serialize + ?Sized>(
    key: impl AsRef<[u8]>,
    value: &T,
) -> Result<(), ProcessError> {
    let bytes = serde_json::to_vec(value).map_err(|err| {
        ProcessError::invalid(format!("cannot serialize state value as JSON: {err}"))
    })?;
    set(key, bytes);
    Ok(())
}

/// The keys that start with a prefix, from [`keys`]: the host's keys merged
/// with the current event's writes, in byte order.
#[derive(Debug)]
#[must_use = "a `Keys` iterator reads nothing until it is advanced"]
pub struct Keys {
    cursor: KeysCursor,
    /// The event it was created in.
    event: u64,
}

impl Iterator for Keys {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if EVENT.get().generation != self.event {
            panic!(
                "sluice_sdk::state::keys: the iterator was advanced after the event it was created in; \
                 collect the keys within the event"
            );
        }
        with_overlay("keys", |_, store| self.cursor.next(store))
    }
}

/// How many keys one host `list-keys` call asks for.
const PAGE: u32 = 256;

/// The host's store as the overlay sees it; an error is the host's message.
pub(crate) trait Store {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String>;
    fn delete(&mut self, key: &[u8]) -> Result<(), String>;
    fn exists(&mut self, key: &[u8]) -> Result<bool, String>;
    fn list_keys(
        &mut self,
        prefix: &[u8],
        cursor: Option<&[u8]>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, String>;
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<u64, String>;
}

/// The current event's writes, not yet sent to the host.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Prefixes the event deleted; they apply before `writes`.
    cleared: Vec<Vec<u8>>,
    /// Writes made after those deletions: `Some` sets, `None` deletes.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    fn is_cleared(cleared: &[Vec<u8>], key: &[u8]) -> bool {
        cleared.iter().any(|prefix| key.starts_with(prefix))
    }

    pub(crate) fn get(
        &self,
        store: &mut impl Store,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, String> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None if Self::is_cleared(&self.cleared, key) => Ok(None),
            None => store.get(key),
        }
    }

    pub(crate) fn exists(&self, store: &mut impl Store, key: &[u8]) -> Result<bool, String> {
        match self.writes.get(key) {
            Some(value) => Ok(value.is_some()),
            None if Self::is_cleared(&self.cleared, key) => Ok(false),
            None => store.exists(key),
        }
    }

    pub(crate) fn set(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.insert(key.to_vec(), Some(value));
    }

    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }

    /// The keys under `prefix` as of now, reading `page` host keys at a time.
    pub(crate) fn keys(&self, prefix: &[u8], page: u32) -> KeysCursor {
        KeysCursor {
            prefix: prefix.to_vec(),
            page_size: page.max(1),
            writes: self
                .writes
                .range(prefix.to_vec()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(key, value)| (key.clone(), value.is_some()))
                .collect(),
            cleared: self.cleared.clone(),
            page: VecDeque::new(),
            after: None,
            host_done: false,
        }
    }

    pub(crate) fn delete_prefix(
        &mut self,
        store: &mut impl Store,
        prefix: &[u8],
    ) -> Result<u64, String> {
        let mut keys = self.keys(prefix, PAGE);
        let mut count = 0;
        while keys.next(store)?.is_some() {
            count += 1;
        }
        self.writes.retain(|key, _| !key.starts_with(prefix));
        // A deletion under this prefix is now redundant.
        self.cleared.retain(|cleared| !cleared.starts_with(prefix));
        self.cleared.push(prefix.to_vec());
        Ok(count)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cleared.is_empty() && self.writes.is_empty()
    }

    /// Sends the writes to the host, prefix deletions first.
    pub(crate) fn commit(self, store: &mut impl Store) -> Result<(), String> {
        for prefix in &self.cleared {
            store.delete_prefix(prefix)?;
        }
        for (key, value) in &self.writes {
            match value {
                Some(value) => store.set(key, value)?,
                None => store.delete(key)?,
            }
        }
        Ok(())
    }
}

/// A merge of the host's keys (a page at a time) with an overlay snapshot.
#[derive(Debug)]
pub(crate) struct KeysCursor {
    prefix: Vec<u8>,
    page_size: u32,
    /// The overlay's keys under the prefix: `true` set, `false` deleted.
    writes: VecDeque<(Vec<u8>, bool)>,
    cleared: Vec<Vec<u8>>,
    /// Host keys read but not yet merged.
    page: VecDeque<Vec<u8>>,
    /// The last host key read: where the next page starts (exclusive).
    after: Option<Vec<u8>>,
    host_done: bool,
}

impl KeysCursor {
    pub(crate) fn next(&mut self, store: &mut impl Store) -> Result<Option<Vec<u8>>, String> {
        loop {
            if self.page.is_empty() && !self.host_done {
                let keys = store.list_keys(&self.prefix, self.after.as_deref(), self.page_size)?;
                self.host_done = keys.len() < self.page_size as usize;
                self.after = keys.last().cloned();
                self.page = keys.into();
            }
            let mine = self.writes.front().map(|(key, _)| key);
            match (self.page.front(), mine) {
                (None, None) => return Ok(None),
                (Some(host), Some(mine)) if mine <= host => {
                    if mine == host {
                        self.page.pop_front();
                    }
                    if let Some((key, true)) = self.writes.pop_front() {
                        return Ok(Some(key));
                    }
                }
                (None, Some(_)) => {
                    if let Some((key, true)) = self.writes.pop_front() {
                        return Ok(Some(key));
                    }
                }
                (Some(_), _) => {
                    let key = self.page.pop_front().expect("front was Some");
                    if !Overlay::is_cleared(&self.cleared, &key) {
                        return Ok(Some(key));
                    }
                }
            }
        }
    }
}

/// Where the current instance is in the event loop.
#[derive(Debug, Clone, Copy, Default)]
struct EventState {
    /// Whether an event is being processed.
    active: bool,
    /// Counts events, so a `Keys` can tell it outlived its own.
    generation: u64,
}

thread_local! {
    static EVENT: Cell<EventState> = const { Cell::new(EventState { active: false, generation: 0 }) };
    static OVERLAY: RefCell<Overlay> = RefCell::new(Overlay::default());
    // Set by the first state call. The event loop reaches the host's state
    // functions only through it, so a plugin that never uses state does not
    // link them, and its component does not import the state interface.
    static COMMIT: Cell<Option<fn(Overlay)>> = const { Cell::new(None) };
}

fn commit(overlay: Overlay) {
    if let Err(message) = overlay.commit(&mut Backend) {
        panic!("sluice_sdk::state: the host refused this event's writes: {message}");
    }
}

fn with_overlay<T>(
    function: &str,
    f: impl FnOnce(&mut Overlay, &mut Backend) -> Result<T, String>,
) -> T {
    if !EVENT.get().active {
        panic!(
            "sluice_sdk::state::{function}: state is only available while an event is processed \
             (in `Plugin::process`, not in `init`){}",
            if cfg!(target_arch = "wasm32") {
                ""
            } else {
                "; in tests, run the event with `sluice_sdk::testing::process`"
            }
        );
    }
    COMMIT.set(Some(commit));
    OVERLAY
        .with_borrow_mut(|overlay| f(overlay, &mut Backend))
        .unwrap_or_else(|message| panic!("sluice_sdk::state::{function}: {message}"))
}

/// Runs one event's handler: its state writes are applied if it returns
/// `Ok`, discarded otherwise (and if it panics).
pub(crate) fn run_event<T, E>(handler: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    /// Ends the event even when the handler unwinds.
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            let event = EVENT.get();
            EVENT.set(EventState {
                active: false,
                ..event
            });
            OVERLAY.take();
        }
    }

    let event = EVENT.get();
    EVENT.set(EventState {
        active: true,
        generation: event.generation.wrapping_add(1),
    });
    let scope = Scope;
    let outcome = handler();
    if outcome.is_ok() {
        let overlay = OVERLAY.take();
        if !overlay.is_empty() {
            // Writes were made, so a state call stored the hook.
            if let Some(commit) = COMMIT.get() {
                commit(overlay);
            }
        }
    }
    drop(scope);
    outcome
}

#[cfg(target_arch = "wasm32")]
use host::HostStore as Backend;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use memory::MemoryStore as Backend;

/// The host's state functions.
#[cfg(target_arch = "wasm32")]
mod host {
    use super::Store;
    use crate::__bindings::sluice::plugin::state as wit;

    pub(crate) struct HostStore;

    fn message(err: wit::Error) -> String {
        match err {
            wit::Error::Unavailable(message) => format!("state is unavailable: {message}"),
        }
    }

    impl Store for HostStore {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            wit::get(key).map_err(message)
        }
        fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
            wit::set(key, value).map_err(message)
        }
        fn delete(&mut self, key: &[u8]) -> Result<(), String> {
            wit::delete(key).map_err(message)
        }
        fn exists(&mut self, key: &[u8]) -> Result<bool, String> {
            wit::exists(key).map_err(message)
        }
        fn list_keys(
            &mut self,
            prefix: &[u8],
            cursor: Option<&[u8]>,
            limit: u32,
        ) -> Result<Vec<Vec<u8>>, String> {
            wit::list_keys(prefix, cursor, limit).map_err(message)
        }
        fn delete_prefix(&mut self, prefix: &[u8]) -> Result<u64, String> {
            wit::delete_prefix(prefix).map_err(message)
        }
    }
}

/// Off Wasm: an in-memory map per thread, for plugins' unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod memory {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::Store;

    thread_local! {
        pub(crate) static MAP: RefCell<BTreeMap<Vec<u8>, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub(crate) struct MemoryStore;

    impl Store for MemoryStore {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            Ok(MAP.with_borrow(|map| map.get(key).cloned()))
        }
        fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
            MAP.with_borrow_mut(|map| map.insert(key.to_vec(), value.to_vec()));
            Ok(())
        }
        fn delete(&mut self, key: &[u8]) -> Result<(), String> {
            MAP.with_borrow_mut(|map| map.remove(key));
            Ok(())
        }
        fn exists(&mut self, key: &[u8]) -> Result<bool, String> {
            Ok(MAP.with_borrow(|map| map.contains_key(key)))
        }
        fn list_keys(
            &mut self,
            prefix: &[u8],
            cursor: Option<&[u8]>,
            limit: u32,
        ) -> Result<Vec<Vec<u8>>, String> {
            Ok(MAP.with_borrow(|map| {
                map.range(prefix.to_vec()..)
                    .map(|(key, _)| key)
                    .take_while(|key| key.starts_with(prefix))
                    .filter(|key| cursor.is_none_or(|cursor| key.as_slice() > cursor))
                    .take(limit as usize)
                    .cloned()
                    .collect()
            }))
        }
        fn delete_prefix(&mut self, prefix: &[u8]) -> Result<u64, String> {
            MAP.with_borrow_mut(|map| {
                let before = map.len();
                map.retain(|key, _| !key.starts_with(prefix));
                Ok((before - map.len()) as u64)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    //! What `plugins/state-rule.json` does not state: the host calls behind
    //! the rule, the event loop, and this API's panics and errors. The rule
    //! itself is replayed by `tests/state_rule.rs`.

    use super::*;
    use crate::{Config, Event, Output, Plugin, testing};

    /// A host store that records the calls it gets; the in-memory store
    /// (this test thread's) does the work.
    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
    }

    impl Fake {
        fn with(entries: &[(&str, &str)]) -> Self {
            testing::set_state(entries.iter().copied());
            Fake::default()
        }

        fn call<T>(&mut self, call: String, result: Result<T, String>) -> Result<T, String> {
            self.calls.push(call);
            result
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    impl Store for Fake {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            self.call(format!("get {}", text(key)), memory::MemoryStore.get(key))
        }
        fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
            let call = format!("set {}={}", text(key), text(value));
            self.call(call, memory::MemoryStore.set(key, value))
        }
        fn delete(&mut self, key: &[u8]) -> Result<(), String> {
            self.call(
                format!("delete {}", text(key)),
                memory::MemoryStore.delete(key),
            )
        }
        fn exists(&mut self, key: &[u8]) -> Result<bool, String> {
            self.call(
                format!("exists {}", text(key)),
                memory::MemoryStore.exists(key),
            )
        }
        fn list_keys(
            &mut self,
            prefix: &[u8],
            cursor: Option<&[u8]>,
            limit: u32,
        ) -> Result<Vec<Vec<u8>>, String> {
            let call = format!(
                "list {} after {:?} limit {limit}",
                text(prefix),
                cursor.map(text)
            );
            self.call(call, memory::MemoryStore.list_keys(prefix, cursor, limit))
        }
        fn delete_prefix(&mut self, prefix: &[u8]) -> Result<u64, String> {
            let call = format!("delete_prefix {}", text(prefix));
            self.call(call, memory::MemoryStore.delete_prefix(prefix))
        }
    }

    fn all_keys(overlay: &Overlay, store: &mut Fake, prefix: &str, page: u32) -> Vec<String> {
        let mut cursor = overlay.keys(prefix.as_bytes(), page);
        let mut keys = vec![];
        while let Some(key) = cursor.next(store).unwrap() {
            keys.push(text(&key));
        }
        keys
    }

    #[test]
    fn only_reads_of_keys_the_event_did_not_write_reach_the_host() {
        let mut store = Fake::with(&[("a", "1"), ("b", "2")]);
        let mut overlay = Overlay::default();
        overlay.set(b"a", b"10".to_vec());
        overlay.delete(b"b");
        overlay.set(b"c", b"3".to_vec());
        for key in [b"a", b"b", b"c", b"z"] {
            overlay.get(&mut store, key).unwrap();
            overlay.exists(&mut store, key).unwrap();
        }
        assert_eq!(store.calls, ["get z", "exists z"]);
        assert_eq!(testing::state().len(), 2, "nothing written yet");

        store.calls.clear();
        overlay.commit(&mut store).unwrap();
        assert_eq!(
            store.calls,
            ["set a=10", "delete b", "set c=3"],
            "in key order"
        );
    }

    #[test]
    fn keys_merge_the_host_pages_with_the_writes_at_any_page_size() {
        let mut store = Fake::with(&[
            ("k/1", ""),
            ("k/2", ""),
            ("k/3", ""),
            ("k/5", ""),
            ("k/6", ""),
            ("other", ""),
        ]);
        let mut overlay = Overlay::default();
        overlay.delete(b"k/2");
        overlay.set(b"k/4", vec![]);
        overlay.set(b"k/5", vec![]);
        overlay.set(b"k/7", vec![]);
        overlay.delete(b"k/8");
        overlay.set(b"l", vec![]);
        for page in [1, 2, 3, 100] {
            assert_eq!(
                all_keys(&overlay, &mut store, "k/", page),
                ["k/1", "k/3", "k/4", "k/5", "k/6", "k/7"],
                "page {page}"
            );
        }
        store.calls.clear();
        all_keys(&overlay, &mut store, "k/", 2);
        assert_eq!(
            store.calls,
            [
                "list k/ after None limit 2",
                "list k/ after Some(\"k/2\") limit 2",
                "list k/ after Some(\"k/5\") limit 2",
            ],
            "pages follow the cursor; a short page ends the listing"
        );
    }

    #[test]
    fn a_prefix_deletion_is_sent_before_the_later_writes() {
        let mut store = Fake::with(&[("p/1", "a"), ("p/2", "b"), ("q", "c")]);
        let mut overlay = Overlay::default();
        overlay.set(b"p/3", b"new".to_vec());
        overlay.delete_prefix(&mut store, b"p/").unwrap();
        overlay.set(b"p/2", b"again".to_vec());
        store.calls.clear();
        overlay.commit(&mut store).unwrap();
        assert_eq!(store.calls, ["delete_prefix p/", "set p/2=again"]);
    }

    #[test]
    fn a_wider_prefix_deletion_replaces_a_narrower_one() {
        let mut store = Fake::with(&[("ab/1", ""), ("ac", "")]);
        let mut overlay = Overlay::default();
        overlay.delete_prefix(&mut store, b"ab").unwrap();
        overlay.delete_prefix(&mut store, b"a").unwrap();
        store.calls.clear();
        overlay.commit(&mut store).unwrap();
        assert_eq!(store.calls, ["delete_prefix a"]);
    }

    #[test]
    fn an_empty_overlay_commits_nothing() {
        let overlay = Overlay::default();
        assert!(overlay.is_empty());
        let mut store = Fake::default();
        overlay.commit(&mut store).unwrap();
        assert!(store.calls.is_empty());
    }

    // The public API, on the in-memory store of the host target.

    /// Sets `key=value` from events `key=value`, clears from `*prefix`;
    /// fails (after writing) when the value ends in `!`.
    struct Writer;

    impl Plugin for Writer {
        fn init(_: &Config) -> Result<Self, String> {
            Ok(Writer)
        }

        fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
            let command = event.value_str()?;
            let (command, fail) = match command.strip_suffix('!') {
                Some(command) => (command, true),
                None => (command, false),
            };
            let out = if let Some(prefix) = command.strip_prefix('*') {
                format!("cleared {}", delete_prefix(prefix))
            } else {
                let (key, value) = command.split_once('=').unwrap();
                set(key, value);
                format!("{key}={value}")
            };
            if fail {
                return Err(ProcessError::retryable("asked to fail"));
            }
            Ok(vec![Output::new(out)])
        }
    }

    #[test]
    fn set_json_refuses_a_value_without_a_json_form() {
        testing::with_event(|| {
            let mut map = std::collections::HashMap::new();
            map.insert(vec![1u8], 1);
            assert!(
                set_json("map", &map)
                    .unwrap_err()
                    .message()
                    .starts_with("cannot serialize state value as JSON: ")
            );
            assert!(!exists("map"));
        });
        assert!(testing::state().is_empty());
    }

    #[test]
    #[should_panic(
        expected = "state is only available while an event is processed (in `Plugin::process`, not in `init`); in tests, run the event with `sluice_sdk::testing::process`"
    )]
    fn outside_an_event_panics() {
        set("k", "v");
    }

    #[test]
    #[should_panic(expected = "advanced after the event it was created in")]
    fn keys_do_not_outlive_their_event() {
        testing::set_state([("k", "")]);
        let mut keys = testing::with_event(|| keys(""));
        testing::with_event(|| keys.next());
    }

    #[test]
    fn the_event_loop_applies_or_discards_per_event() {
        use crate::__private::{RawEvents, Slot, empty_slot, init, process};
        thread_local! {
            static SLOT: Slot<Writer> = const { empty_slot::<Writer>() };
        }
        let raw = |value: &str| crate::__bindings::Event {
            topic: "in".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        };
        init(&SLOT, vec![]).unwrap();
        let events: RawEvents = vec![raw("a=1"), raw("b=2!"), raw("a=3"), raw("*")];
        let outcomes = process(&SLOT, events);
        assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok());
        // The last event saw the first and third events' writes, not the second's.
        let Ok(last) = &outcomes[3] else {
            unreachable!()
        };
        assert_eq!(last[0].value.as_deref(), Some(&b"cleared 1"[..]));
        assert!(testing::state().is_empty());
    }
}
