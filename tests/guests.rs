//! Plugins written in other languages, on the real host: the JavaScript
//! (componentize-js) and Python (componentize-py) builds of `order-enrich`
//! give the same outcome per event as the Rust one, on the same input:
//! the same outputs (compared as parsed JSON, with the same inherited key
//! and headers) and the same failure kind for every bad event. Built by
//! `scripts/build-plugins` once `scripts/setup` installed the toolchains.
//!
//! And the sandbox, as each guest language's own network API meets it: a
//! plugin without a network grant can neither connect nor look up a name;
//! with one it can.

use std::sync::Arc;

use serde_json::Value;
use sluice::failure::FailureKind;
use sluice::plugin::{
    CompiledPlugin, EngineOptions, Event, InstanceSettings, Outcome, PluginEngine, PluginError,
    PluginRunner, Sandbox,
};
use sluice_testkit::kafka::numbers_as_floats;
use sluice_testkit::net::{GREETING, Greeter, Speaks};
use sluice_testkit::sluice::plugin_path;

/// The guest builds of `order-enrich`, by file name.
const GUESTS: &[&str] = &["order-enrich-js", "order-enrich-py"];

/// Plugin `name` started with `config` (its `init` run).
fn start(
    engine: &PluginEngine,
    name: &str,
    config: &[(&str, &str)],
) -> Result<PluginRunner, PluginError> {
    let path = plugin_path(name);
    let plugin = CompiledPlugin::load(engine, name, &path)
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    let settings = InstanceSettings {
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..InstanceSettings::default()
    };
    PluginRunner::start(Arc::new(plugin), Arc::new(settings))
}

fn runner(engine: &PluginEngine, name: &str, config: &[(&str, &str)]) -> PluginRunner {
    start(engine, name, config).unwrap_or_else(|e| panic!("start {name}: {e}"))
}

fn event(offset: i64, value: Option<&str>) -> Event {
    Event {
        topic: "orders".into(),
        partition: 0,
        offset,
        timestamp_ms: Some(1_732_400_000_000),
        key: Some(format!("CUST-{:03}", offset % 10).into_bytes()),
        value: value.map(|v| v.as_bytes().to_vec()),
        headers: vec![("source".into(), b"web".to_vec())],
    }
}

/// Orders across the tiers and their edges, then every kind of bad event
/// the Rust plugin documents.
fn inputs() -> Vec<Option<String>> {
    let mut values: Vec<Option<String>> = (0..300)
        .map(|i| {
            Some(format!(
                r#"{{"order_id":"ORD-{i:04}","customer_id":"CUST-{:03}","amount":{},"timestamp":1732400000.0,"note":"n{i}"}}"#,
                i % 10,
                (i as f64) * 0.73 + (i % 7) as f64 * 0.005
            ))
        })
        .collect();
    for bad in [
        "not json",
        "",
        "[1,2]",
        "42",
        r#""a string""#,
        "null",
        r#"{"amount":1}"#,
        r#"{"order_id":7,"amount":1}"#,
        r#"{"order_id":"A"}"#,
        r#"{"order_id":"A","amount":"12"}"#,
        r#"{"order_id":"A","amount":-1.5}"#,
        r#"{"order_id":"A","amount":1e300}"#,
        r#"{"order_id":"A","amount":49.995,"tier":"x","amount_cents":1}"#,
        r#"{"order_id":"A","amount":50}"#,
        r#"{"order_id":"A","amount":100}"#,
        r#"{"order_id":"A","amount":0}"#,
    ] {
        values.push(Some(bad.to_owned()));
    }
    values.push(None);
    values
}

/// An outcome in a comparable shape: the outputs as (key, headers, parsed
/// value), or the failure kind.
fn comparable(outcome: &Outcome, input: &Event) -> Result<Vec<(Vec<u8>, Value)>, FailureKind> {
    match outcome {
        Ok(outputs) => Ok(outputs
            .iter()
            .map(|o| {
                assert_eq!(o.topic, None, "to the result topic");
                assert!(o.headers.is_none(), "inherits the headers");
                let key = o
                    .key
                    .clone()
                    .or_else(|| input.key.clone())
                    .unwrap_or_default();
                let value = serde_json::from_slice(o.value.as_deref().unwrap_or_default())
                    .expect("a JSON output");
                // By value: JavaScript writes `13` for Rust's `13.0`.
                let value = numbers_as_floats(value);
                (key, value)
            })
            .collect()),
        Err(failure) => Err(failure.kind),
    }
}

fn assert_same_as_rust(guest: &str, config: &[(&str, &str)], batch: usize) {
    let engine = PluginEngine::new(&EngineOptions::from_process_env()).expect("an engine");
    let mut rust = runner(&engine, "order-enrich", config);
    let mut other = runner(&engine, guest, config);
    let values = inputs();
    let events: Vec<Event> = values
        .iter()
        .enumerate()
        .map(|(i, v)| event(i as i64, v.as_deref()))
        .collect();
    let mut compared = 0;
    for chunk in events.chunks(batch) {
        let want = rust.process(chunk);
        let got = other.process(chunk);
        assert_eq!(got.len(), chunk.len());
        for ((want, got), input) in want.iter().zip(&got).zip(chunk) {
            let (want, got) = (comparable(want, input), comparable(got, input));
            assert_eq!(
                got,
                want,
                "{guest} (batch {batch}, config {config:?}) differs from Rust on {:?}: \
                 got {got:?}, Rust gave {want:?}",
                input.value.as_deref().map(String::from_utf8_lossy)
            );
            compared += 1;
        }
    }
    assert_eq!(compared, values.len());
}

#[test]
fn guest_order_enrich_matches_rust_event_by_event() {
    for guest in GUESTS {
        assert_same_as_rust(guest, &[], 128);
        assert_same_as_rust(guest, &[], 1);
        assert_same_as_rust(guest, &[("silver_from", "10"), ("gold_from", "20")], 64);
    }
}

#[test]
fn guest_order_enrich_refuses_a_bad_config_as_rust_does() {
    let engine = PluginEngine::new(&EngineOptions::from_process_env()).expect("an engine");
    for config in [
        [("silver_from", "-1"), ("gold_from", "100")],
        [("silver_from", "60"), ("gold_from", "50")],
        [("silver_from", "lots"), ("gold_from", "100")],
    ] {
        let refusal = |name: &str| match start(&engine, name, &config) {
            Ok(_) => panic!("{name} started with {config:?}"),
            Err(e) => e.to_string().replace(name, "PLUGIN"),
        };
        let want = refusal("order-enrich");
        for guest in GUESTS {
            assert_eq!(refusal(guest), want, "{guest} with {config:?}");
        }
    }
}

/// The probes in each guest language (`plugins/fixtures/guest-probe-*`), by
/// file name.
const PROBES: &[&str] = &["guest-probe-py", "guest-probe-js"];

/// The probes that can look a name up without connecting (JavaScript has
/// no API for it; its `get:localhost:…` looks the name up in the host).
const RESOLVERS: &[&str] = &["guest-probe-py"];

fn probe(engine: &PluginEngine, name: &str, network: bool) -> PluginRunner {
    let plugin = CompiledPlugin::load(engine, name, &plugin_path(name))
        .unwrap_or_else(|e| panic!("load {name}: {e}"));
    let settings = InstanceSettings {
        sandbox: Sandbox {
            network,
            ..Sandbox::default()
        },
        ..InstanceSettings::default()
    };
    PluginRunner::start(Arc::new(plugin), Arc::new(settings))
        .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

/// One command through the probe: its output as text, or the failure.
fn ask(runner: &mut PluginRunner, command: &str) -> Result<String, (FailureKind, String)> {
    let mut outcomes = runner.process(&[event(0, Some(command))]);
    match outcomes.pop() {
        Some(Ok(outputs)) => {
            assert_eq!(outputs.len(), 1, "{command}: {outputs:?}");
            Ok(String::from_utf8_lossy(outputs[0].value.as_deref().unwrap_or_default()).into())
        }
        Some(Err(failure)) => Err((failure.kind, failure.message)),
        None => panic!("{command}: no outcome"),
    }
}

#[test]
fn guests_reach_the_network_only_when_granted() {
    let engine = PluginEngine::new(&EngineOptions::from_process_env()).expect("an engine");
    let greeter = Greeter::start(Speaks::Http);
    let by_ip = format!("get:{}", greeter.addr());
    let by_name = format!("get:localhost:{}", greeter.addr().port());
    for name in PROBES {
        let before = greeter.accepted();
        let resolves = RESOLVERS.contains(name);
        let mut denied = probe(&engine, name, false);
        let resolve = "resolve:localhost".to_owned();
        for command in [&by_ip, &by_name]
            .into_iter()
            .chain(resolves.then_some(&resolve))
        {
            let (kind, message) = ask(&mut denied, command)
                .map(|out| panic!("{name}: `{command}` without a grant gave {out:?}"))
                .unwrap_err();
            assert_eq!(kind, FailureKind::Invalid, "{name}: {message}");
            assert!(message.contains("failed"), "{name}: {message}");
        }
        assert_eq!(
            greeter.accepted(),
            before,
            "{name}: a denied connect got through"
        );

        // The grant opens all three: the denials above were the sandbox's.
        let mut granted = probe(&engine, name, true);
        assert_eq!(ask(&mut granted, &by_ip), Ok(GREETING.to_owned()), "{name}");
        assert_eq!(
            ask(&mut granted, &by_name),
            Ok(GREETING.to_owned()),
            "{name}"
        );
        if resolves {
            assert_eq!(
                ask(&mut granted, &resolve),
                Ok("127.0.0.1".to_owned()),
                "{name}"
            );
        }
        assert_eq!(greeter.accepted(), before + 2, "{name}");
    }
}

#[test]
fn a_guest_exception_is_a_trap_that_carries_its_text() {
    let engine = PluginEngine::new(&EngineOptions::from_process_env()).expect("an engine");
    for name in PROBES {
        let mut probe = probe(&engine, name, false);
        let (kind, message) = ask(&mut probe, "raise:the guest's own words")
            .map(|out| panic!("{name}: raise gave {out:?}"))
            .unwrap_err();
        assert_eq!(kind, FailureKind::Trap, "{name}: {message}");
        assert!(
            message.contains("the guest's own words"),
            "{name}: {message}"
        );
        // The instance was replaced: the next event runs.
        assert!(
            ask(&mut probe, "resolve:localhost")
                .is_err_and(|(kind, _)| kind == FailureKind::Invalid),
            "{name}"
        );
    }
}
