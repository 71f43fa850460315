//! # sluice-sdk: write Sluice plugins in Rust
//!
//! A Sluice plugin is a WebAssembly component that Sluice runs on every event
//! of a pipeline: it reads what was consumed from Kafka and says what to
//! write. This crate owns the guest side of that contract (`wit/plugin.wit`,
//! world `sluice:plugin/processor`): you implement [`Plugin`] for one type,
//! call [`export!`] on it, and build with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! ```
//! use serde::Deserialize;
//! use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export, log};
//!
//! /// Raises an alert for every reading above a configured threshold.
//! struct Alerts {
//!     threshold: f64,
//! }
//!
//! /// The event value; borrowing `sensor` from the event avoids a copy.
//! #[derive(Deserialize)]
//! struct Reading<'a> {
//!     sensor: &'a str,
//!     celsius: f64,
//! }
//!
//! impl Plugin for Alerts {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         // An error names the key: config key `threshold`: invalid value ...
//!         let threshold = config.parse_or("threshold", 30.0)?;
//!         log::info(format!("alerting above {threshold} °C"));
//!         Ok(Alerts { threshold })
//!     }
//!
//!     fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
//!         // Not JSON or the wrong shape: `invalid`, so the event goes to the DLQ.
//!         let reading: Reading = event.json()?;
//!         if reading.sensor.is_empty() {
//!             return Err(ProcessError::invalid("`sensor` is empty"));
//!         }
//!         if reading.celsius <= self.threshold {
//!             // No output: the event is deliberately filtered out.
//!             return Ok(vec![]);
//!         }
//!         // An alert to another (allowed) topic, keyed by sensor, with the
//!         // input's headers plus one.
//!         let alert = Output::json(&serde_json::json!({
//!             "sensor": reading.sensor,
//!             "celsius": reading.celsius,
//!             "threshold": self.threshold,
//!         }))?
//!         .to_topic("alerts")
//!         .with_key(reading.sensor)
//!         .with_input_headers(&event)
//!         .with_header("alert-kind", "over-threshold");
//!         // And the reading itself, unchanged (moved, not copied), to the
//!         // pipeline's result topic.
//!         Ok(vec![Output::forward(event), alert])
//!     }
//! }
//!
//! export!(Alerts);
//! # fn main() {}
//! ```
//!
//! ## The crate of a plugin
//!
//! ```toml
//! [package]
//! name = "alerts"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! sluice-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//! ```
//!
//! `cargo build --release --target wasm32-wasip2` writes
//! `target/wasm32-wasip2/release/alerts.wasm`; drop it into the host's
//! `plugins/` directory and name it in a pipeline's TOML. Its `config` table
//! is what [`Plugin::init`] receives as [`Config`].
//!
//! ## Outcomes
//!
//! [`Plugin::process`] sees one [`Event`] and returns one outcome for it:
//!
//! - `Ok(vec![output])`: one record written. [`Output`]s inherit the input's
//!   key and headers and go to the pipeline's result topic unless told
//!   otherwise; see [`Output`] for the rules, notably that setting any header
//!   replaces the inherited headers with an explicit list.
//! - `Ok(vec![a, b, …])`: fan-out, written in order.
//! - `Ok(vec![])`: the event is filtered out. This is a deliberate outcome,
//!   not a loss: its offset is committed like any other.
//! - `Err(ProcessError::invalid(msg))`: the event can never succeed; it goes
//!   to the dead-letter topic with `msg`. For a JSON field of the wrong
//!   type, [`ProcessError::wrong_type`] words it the usual way
//!   (``field `amount` must be a number, got string``; [`json_type`] names
//!   the type).
//! - `Err(ProcessError::retryable(msg))`: a transient failure; the host
//!   retries the event with backoff, then dead-letters it.
//!
//! The host hands events over in batches (one call into Wasm per batch);
//! [`export!`] runs the per-event loop, so each event gets its own outcome.
//!
//! A panic is not an outcome: it traps the instance (so do running past the
//! pipeline's deadline and exceeding its memory cap). The host then throws
//! the instance away, retries the batch's events one by one on fresh
//! instances so only the culprit fails, and dead-letters that one as `trap`.
//! Return errors instead of panicking on bad input.
//!
//! ## Lifecycle and state
//!
//! Every fresh instance gets one [`Plugin::init`] call before its first
//! event; an `Err` rejects the plugin (at start or at hot reload, where the
//! old version keeps running). The value `init` returns lives as long as the
//! instance and `process` may mutate it (caches, counters). The host replaces
//! instances after a trap and on reload, so `init` can run many times in a
//! pipeline's life: keep it idempotent, and do not rely on what it holds
//! surviving. State that must survive (a balance per account, a count per
//! key) belongs in the host: see [`state`].
//! If `init` has not succeeded, every event fails as
//! `invalid: plugin not initialised`.
//!
//! ## Sandbox
//!
//! Plugins have no filesystem, network, clock-based sleeping or environment
//! variables unless the pipeline grants them: `std::fs` and `std::env`
//! calls fail (or see nothing) by default. Talk to the world through
//! outputs and [`log`].
//!
//! ## Testing a plugin on the host
//!
//! The SDK builds on any target, so `cargo test` on your machine can drive a
//! plugin directly: [`Event`] and [`Config`] have test constructors,
//! [`Output`] has accessors and `PartialEq`, and [`log`] writes to stderr off
//! Wasm. A plugin that keeps [`state`] runs its events through
//! [`testing::process`], which applies or discards each event's writes as
//! the host does, against an in-memory state per test.
//!
//! ```
//! # use sluice_sdk::{Config, Event, Output, Plugin, ProcessError};
//! # struct Upper;
//! # impl Plugin for Upper {
//! #     fn init(_: &Config) -> Result<Self, String> { Ok(Upper) }
//! #     fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
//! #         Ok(vec![Output::new(event.value_str()?.to_uppercase())])
//! #     }
//! # }
//! let mut plugin = Upper::init(&Config::from_iter([("mode", "loud")])).unwrap();
//! let outputs = plugin.process(Event::new("hi").with_key("k")).unwrap();
//! assert_eq!(outputs, vec![Output::new("HI")]);
//! assert!(plugin.process(Event::tombstone()).unwrap_err().message().contains("tombstone"));
//! ```

#![warn(missing_docs)]

mod config;
mod error;
mod event;
pub mod log;
mod output;
pub mod state;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use config::Config;
pub use error::{ProcessError, json_type};
pub use event::{Event, Header};
pub use output::Output;

/// A Sluice plugin: built once per instance by [`init`](Plugin::init), then
/// called once per event by [`process`](Plugin::process). Make it a plugin
/// with [`export!`].
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from the pipeline's `config` table for it.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with the configuration (the
    /// [`Config`] lookups produce ones that name the key). The host refuses
    /// to start, or to hot-reload, the plugin and reports the message.
    fn init(config: &Config) -> Result<Self, String>;

    /// Processes one event: the records to write (none filters the event
    /// out, several fan it out), or why it failed.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Invalid`] to dead-letter the event at once,
    /// [`ProcessError::Retryable`] to have the host retry it later.
    fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError>;
}

/// Exports a [`Plugin`] type as the crate's Sluice plugin. Call it once, at
/// the top level of a `cdylib` crate.
///
/// It provides the component's `init` (which builds and keeps the plugin
/// instance) and `process` (the batch loop: one outcome per event, in order).
///
/// ```
/// # use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export};
/// struct Passthrough;
///
/// impl Plugin for Passthrough {
///     fn init(_config: &Config) -> Result<Self, String> {
///         Ok(Passthrough)
///     }
///     fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
///         Ok(vec![Output::forward(event)])
///     }
/// }
///
/// export!(Passthrough);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            // Wasm instances are single-threaded, so a thread-local is the
            // instance's one plugin value, with no `static mut`.
            ::std::thread_local! {
                static SLUICE_PLUGIN: $crate::__private::Slot<$plugin> =
                    const { $crate::__private::empty_slot::<$plugin>() };
            }

            struct SluiceGuest;

            impl $crate::__private::Guest for SluiceGuest {
                fn init(
                    config: $crate::__private::RawConfig,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init(&SLUICE_PLUGIN, config)
                }

                fn process(events: $crate::__private::RawEvents) -> $crate::__private::RawOutcomes {
                    $crate::__private::process(&SLUICE_PLUGIN, events)
                }
            }

    $crate::__bindings::__export_processor!(SluiceGuest with_types_in $crate::__bindings);
        };
    };
}

/// The project's one `generate!`, for the `stateful-processor` world (the
/// `processor` world plus the `state` import). Author crates reach it only
/// through [`export!`] and [`state`]; the public API wraps its types so the
/// generated names are not part of it.
///
/// A component imports only the interfaces whose functions its code links:
/// a plugin that never calls [`state`] (or [`log`]) does not import
/// `sluice:plugin/state` (or `sluice:plugin/host`), so it is a plain
/// `processor` to the host. The event loop reaches the state functions only
/// through a hook the first state call sets, to keep it that way.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "stateful-processor",
        // `export!` expands in the author's crate, so the generated export
        // macro must be public, and hidden behind the SDK's own.
        pub_export_macro: true,
        export_macro_name: "__export_processor",
        default_bindings_module: "sluice_sdk::__bindings",
    });
}

/// Support for [`export!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::cell::RefCell;
    use std::thread::LocalKey;

    pub use crate::__bindings::Guest;
    use crate::__bindings::{Event as RawEvent, Output as RawOutput, ProcessError as RawError};
    use crate::{Config, Event, Output, Plugin, ProcessError};

    pub type Slot<P> = RefCell<Option<P>>;
    pub type RawConfig = Vec<(String, String)>;
    pub type RawEvents = Vec<RawEvent>;
    pub type RawOutcomes = Vec<Result<Vec<RawOutput>, RawError>>;

    pub const fn empty_slot<P>() -> Slot<P> {
        RefCell::new(None)
    }

    pub fn init<P: Plugin>(
        slot: &'static LocalKey<Slot<P>>,
        config: RawConfig,
    ) -> Result<(), String> {
        // Drop any previous instance first: a failed re-init must leave the
        // plugin uninitialised rather than running with a stale config.
        slot.with_borrow_mut(|plugin| *plugin = None);
        let plugin = P::init(&config.into_iter().collect::<Config>())?;
        slot.with_borrow_mut(|slot| *slot = Some(plugin));
        Ok(())
    }

    pub fn process<P: Plugin>(slot: &'static LocalKey<Slot<P>>, events: RawEvents) -> RawOutcomes {
        slot.with_borrow_mut(|plugin| match plugin {
            // Each event's state writes are applied if it succeeds and
            // discarded if it fails, before the next event runs.
            Some(plugin) => events
                .into_iter()
                .map(|event| lower(crate::state::run_event(|| plugin.process(lift(event)))))
                .collect(),
            None => events
                .iter()
                .map(|_| Err(RawError::Invalid("plugin not initialised".into())))
                .collect(),
        })
    }

    fn lift(event: RawEvent) -> Event {
        Event {
            topic: event.topic,
            partition: event.partition,
            offset: event.offset,
            timestamp_ms: event.timestamp_ms,
            key: event.key,
            value: event.value,
            headers: event.headers,
        }
    }

    fn lower(outcome: Result<Vec<Output>, ProcessError>) -> Result<Vec<RawOutput>, RawError> {
        match outcome {
            // Same layout on both sides, so this collects in place.
            Ok(outputs) => Ok(outputs
                .into_iter()
                .map(|output| RawOutput {
                    topic: output.topic,
                    key: output.key,
                    value: output.value,
                    headers: output.headers,
                })
                .collect()),
            Err(ProcessError::Invalid(message)) => Err(RawError::Invalid(message)),
            Err(ProcessError::Retryable(message)) => Err(RawError::Retryable(message)),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Echoes values, counts events, and fails on demand, so the tests
        /// can see the order and independence of outcomes.
        struct Counter {
            seen: u32,
        }

        impl Plugin for Counter {
            fn init(config: &Config) -> Result<Self, String> {
                match config.get("refuse") {
                    Some(why) => Err(why.to_owned()),
                    None => Ok(Counter { seen: 0 }),
                }
            }

            fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
                self.seen += 1;
                match event.value_str()? {
                    "drop" => Ok(vec![]),
                    "retry" => Err(ProcessError::retryable("later")),
                    value => Ok(vec![
                        Output::new(format!("{value}#{}", self.seen)).to_topic("t"),
                    ]),
                }
            }
        }

        thread_local! {
            static SLOT: Slot<Counter> = const { empty_slot::<Counter>() };
        }

        fn raw(value: Option<&str>) -> RawEvent {
            RawEvent {
                topic: "in".into(),
                partition: 0,
                offset: 0,
                timestamp_ms: None,
                key: None,
                value: value.map(|v| v.as_bytes().to_vec()),
                headers: vec![],
            }
        }

        fn values(outcomes: &RawOutcomes) -> Vec<Result<Vec<String>, String>> {
            outcomes
                .iter()
                .map(|outcome| match outcome {
                    Ok(outputs) => Ok(outputs
                        .iter()
                        .map(|o| String::from_utf8(o.value.clone().unwrap()).unwrap())
                        .collect()),
                    Err(RawError::Invalid(m)) => Err(format!("invalid: {m}")),
                    Err(RawError::Retryable(m)) => Err(format!("retryable: {m}")),
                })
                .collect()
        }

        #[test]
        fn lifecycle_and_batch_loop() {
            // Before init: every event fails as invalid, nothing panics.
            let outcomes = process(&SLOT, vec![raw(Some("a")), raw(Some("b"))]);
            let not_init = Err("invalid: plugin not initialised".to_string());
            assert_eq!(values(&outcomes), [not_init.clone(), not_init.clone()]);

            assert_eq!(init(&SLOT, vec![]), Ok(()));
            let outcomes = process(
                &SLOT,
                vec![
                    raw(Some("a")),
                    raw(Some("drop")),
                    raw(None),
                    raw(Some("retry")),
                    raw(Some("b")),
                ],
            );
            assert_eq!(
                values(&outcomes),
                [
                    Ok(vec!["a#1".to_string()]),
                    Ok(vec![]),
                    Err("invalid: event has no value (tombstone)".to_string()),
                    Err("retryable: later".to_string()),
                    Ok(vec!["b#5".to_string()]),
                ]
            );
            let Ok(outputs) = &outcomes[0] else {
                unreachable!()
            };
            assert_eq!(outputs[0].topic.as_deref(), Some("t"));
            assert_eq!(outputs[0].key, None);
            assert_eq!(outputs[0].headers, None);
            assert!(process(&SLOT, vec![]).is_empty());

            // Re-init starts a fresh plugin value.
            assert_eq!(init(&SLOT, vec![]), Ok(()));
            assert_eq!(
                values(&process(&SLOT, vec![raw(Some("c"))])),
                [Ok(vec!["c#1".to_string()])]
            );

            // A failed re-init leaves the plugin uninitialised.
            let refuse = vec![("refuse".to_string(), "no".to_string())];
            assert_eq!(init(&SLOT, refuse), Err("no".to_string()));
            assert_eq!(values(&process(&SLOT, vec![raw(Some("d"))])), [not_init]);
        }
    }
}
