//! The per-event state rule (`plugins/state-rule.json`, its one statement)
//! replayed on the Rust SDK off Wasm: every case, event by event, through
//! [`testing::process`] on the in-memory store, asserting every answer and
//! the state after every event.
//!
//! The events run through the probe's own interpreter
//! (`plugins/fixtures/state-sdk-probe-rs`), the one `tests/guest_state.rs`
//! replays the same file through in the real host.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use serde_json::Value;
use sluice_sdk::{Config, Event, Plugin, ProcessError, testing};

#[path = "../../fixtures/state-sdk-probe-rs/src/probe.rs"]
mod probe;
mod rule;

/// Runs one event: how it ended, and the answers.
fn process(plugin: &mut probe::Probe, request: String) -> (&'static str, Vec<Value>) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        testing::process(plugin, Event::new(request))
    }));
    match outcome {
        Ok(Ok(outputs)) => {
            assert_eq!(outputs.len(), 1, "one output per event");
            let text = std::str::from_utf8(outputs[0].value().expect("a value")).expect("UTF-8");
            ("ok", rule::answers(text))
        }
        Ok(Err(ProcessError::Invalid(message))) => ("invalid", rule::answers(&message)),
        Ok(Err(ProcessError::Retryable(message))) => ("retryable", rule::answers(&message)),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .expect("a formatted panic message");
            ("trap", rule::trap_answers(message))
        }
    }
}

#[test]
fn the_state_rule() {
    // The probe's panics are how it traps; any other panic is reported.
    let report = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>();
        if !message.is_some_and(|m| m.starts_with("trap after ")) {
            report(info);
        }
    }));

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../state-rule.json");
    let cases = rule::cases(&path);
    assert!(!cases.is_empty(), "{} has cases", path.display());
    let mut plugin = probe::Probe::init(&Config::default()).expect("the probe starts");
    for case in &cases {
        testing::set_state(case.state.clone());
        for (i, step) in case.events.iter().enumerate() {
            let at = format!("{}, event {}", case.name, i + 1);
            let (end, answers) = process(&mut plugin, step.request().to_string());
            step.check(&at, end, &answers);
            assert_eq!(
                rule::readable(&testing::state()),
                rule::readable(&step.state),
                "{at}: the state after it"
            );
        }
    }
}
