//! Plugin state in the other guest languages: the Python
//! (`plugins/python/account-balance`) and JavaScript
//! (`plugins/js/account-balance`) ports of the Rust `account-balance`, run
//! through `sluice exec` with `--state-in`/`--state-out`, replay the
//! tutorial's events to the same balances, outputs and `invalid` messages
//! as the Rust plugin, leave no trace of a failed event, and continue from
//! a seeded state (the Rust plugin's, even: the state bytes are the same).
//!
//! The SDKs' state API itself goes through the real host in each language:
//! every case of `plugins/state-rule.json` (the per-event state rule, which
//! the SDKs' unit tests replay off Wasm) is replayed through the probes
//! `plugins/fixtures/state-sdk-probe-{rs,py,js}`, failed events through the
//! host's own failure path, with every answer and the state after every
//! event checked.
//!
//! And the SDKs' build choice of world: a guest plugin that does not use
//! state does not import `sluice:plugin/state` (so the host loads it as a
//! stateless plugin), and one that does, does. Built by
//! `scripts/build-plugins` once `scripts/setup` installed the toolchains.

use std::process::Output;

use serde_json::{Value, json};
use sluice::plugin::{CompiledPlugin, EngineOptions, PluginEngine};
use sluice_testkit::sluice::{exec_with_env, plugin_path, repo_dir};

/// The reader of `plugins/state-rule.json`, shared with the Rust SDK's
/// tests.
#[path = "../plugins/sdk/tests/rule/mod.rs"]
mod rule;

/// The guest builds of `account-balance`, by file name.
const GUESTS: &[&str] = &["account-balance-py", "account-balance-js"];

/// What a JSON parser says about a value that is not JSON is its own; the
/// rest of such a message is the SDKs'.
const NOT_JSON: &str = "event value is not valid JSON: ";

/// Runs `sluice exec PLUGIN ARGS...` over `stdin`; it must succeed.
fn exec(plugin: &str, args: &[&str], stdin: &str) -> Output {
    let output = exec_with_env::<&str>(&plugin_path(plugin), args, stdin, &[]);
    assert!(
        output.status.success(),
        "sluice exec {plugin} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `plugin` over `events` with the state seeded from `state_in` (when
/// given): the outcome lines and the state written at the end.
fn run(plugin: &str, events: &str, state_in: Option<&Value>) -> (Vec<Value>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.json");
    let in_path = dir.path().join("in.json");
    let out_arg = out_path.display().to_string();
    let in_arg = in_path.display().to_string();
    let mut args = vec!["--state-out", &out_arg];
    if let Some(state) = state_in {
        std::fs::write(&in_path, state.to_string()).unwrap();
        args.extend(["--state-in", &in_arg]);
    }
    let output = exec(plugin, &args, events);
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let state = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    (lines, state)
}

/// A line's outcome: the output value, or `!kind: message`.
fn outcome(line: &Value) -> String {
    if line["ok"] == json!(true) {
        let outputs = line["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 1, "one output per event: {line}");
        assert_eq!(outputs[0]["topic"], Value::Null, "to the result topic");
        outputs[0]["value"].as_str().unwrap().to_owned()
    } else {
        format!(
            "!{}: {}",
            line["error"]["kind"].as_str().unwrap(),
            line["error"]["message"].as_str().unwrap()
        )
    }
}

/// The tutorial's events (`plugins/account-balance/events.jsonl`).
fn tutorial() -> String {
    let path = repo_dir().join("plugins/account-balance/events.jsonl");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A state file's accounts as (partition, account, balance, version).
fn accounts(state: &Value) -> Vec<(String, String, u64, u64)> {
    let mut found = vec![];
    for (partition, keys) in state.as_object().expect("partitions") {
        for (key, value) in keys.as_object().expect("keys as an object") {
            let account: Value = serde_json::from_str(value.as_str().unwrap()).unwrap();
            found.push((
                partition.clone(),
                key.strip_prefix("account/")
                    .expect("account/ keys")
                    .to_owned(),
                account["balance"].as_u64().unwrap(),
                account["version"].as_u64().unwrap(),
            ));
        }
    }
    found
}

#[test]
fn guest_account_balance_replays_the_tutorial_with_the_rust_messages() {
    let events = tutorial();
    let expected = [
        r#"{"account_id":"ACC-1","balance":0,"version":1}"#,
        r#"{"account_id":"ACC-1","balance":1000,"version":2}"#,
        r#"{"account_id":"ACC-1","balance":800,"version":3}"#,
        "!invalid: account `ACC-1` has a balance of 800, cannot withdraw 5000",
        "!invalid: account `ACC-9` does not exist",
        "!invalid: event value is not valid JSON: …",
        r#"!invalid: field `type` must be CREATED, DEPOSITED or WITHDRAWN, got "CLOSED""#,
        "!invalid: field `amount` must not be negative, got -50",
        "!invalid: account `ACC-1` already exists",
        r#"{"account_id":"ACC-2","balance":500,"version":1}"#,
        r#"{"account_id":"ACC-2","balance":300,"version":2}"#,
        r#"{"account_id":"ACC-1","balance":850,"version":4}"#,
    ];
    let (rust_lines, rust_state) = run("account-balance", &events, None);
    for guest in GUESTS {
        let (lines, state) = run(guest, &events, None);
        assert_eq!(lines.len(), expected.len(), "{guest}: one line per event");
        for (i, ((line, rust_line), want)) in
            lines.iter().zip(&rust_lines).zip(expected).enumerate()
        {
            let (got, rust) = (outcome(line), outcome(rust_line));
            let bad_json = format!("!invalid: {NOT_JSON}");
            if want.starts_with(&bad_json) {
                assert!(
                    got.starts_with(&bad_json) && rust.starts_with(&bad_json),
                    "{guest} line {}: {got} (Rust: {rust})",
                    i + 1
                );
            } else {
                assert_eq!(got, want, "{guest} line {}", i + 1);
                assert_eq!(got, rust, "{guest} line {} differs from Rust", i + 1);
            }
            if line["ok"] == json!(true) {
                // Keyed by the account id, with the input's (no) headers.
                assert_eq!(
                    line["outputs"],
                    rust_line["outputs"],
                    "{guest} line {}",
                    i + 1
                );
            }
        }
        // The invalid events left no trace: ACC-1 ends at 850 and ACC-2 at
        // 300, the very bytes the Rust plugin keeps.
        assert_eq!(
            accounts(&state),
            [
                ("0".into(), "ACC-1".into(), 850, 4),
                ("0".into(), "ACC-2".into(), 300, 2),
            ],
            "{guest}"
        );
        assert_eq!(state, rust_state, "{guest}: the same state as Rust");
    }
}

#[test]
fn guest_account_balance_continues_from_a_seeded_state_per_partition() {
    // The Rust plugin's state after the tutorial, on partition 0; another
    // ACC-1 on partition 1 (state is per input partition).
    let (_, mut seed) = run("account-balance", &tutorial(), None);
    seed["1"] = json!({"account/ACC-1": r#"{"balance":7,"version":1}"#});
    let events = [
        json!({"key": "ACC-1", "value": {"account_id": "ACC-1", "type": "DEPOSITED", "amount": 150}}),
        json!({"key": "ACC-1", "value": {"account_id": "ACC-1", "type": "CREATED", "amount": 1}}),
        json!({"key": "ACC-2", "value": {"account_id": "ACC-2", "type": "WITHDRAWN", "amount": 301}}),
        json!({"key": "ACC-2", "value": {"account_id": "ACC-2", "type": "WITHDRAWN", "amount": 300}}),
        json!({"partition": 1, "key": "ACC-1", "value": {"account_id": "ACC-1", "type": "WITHDRAWN", "amount": 7}}),
        json!({"partition": 1, "key": "ACC-2", "value": {"account_id": "ACC-2", "type": "DEPOSITED", "amount": 1}}),
        json!({"key": "ACC-2", "value": {"account_id": "ACC-1", "type": "DEPOSITED", "amount": 1}}),
    ];
    let stdin: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (rust_lines, rust_state) = run("account-balance", &stdin, Some(&seed));
    for guest in GUESTS {
        let (lines, state) = run(guest, &stdin, Some(&seed));
        let got: Vec<String> = lines.iter().map(outcome).collect();
        assert_eq!(
            got,
            [
                r#"{"account_id":"ACC-1","balance":1000,"version":5}"#,
                "!invalid: account `ACC-1` already exists",
                "!invalid: account `ACC-2` has a balance of 300, cannot withdraw 301",
                r#"{"account_id":"ACC-2","balance":0,"version":3}"#,
                r#"{"account_id":"ACC-1","balance":0,"version":2}"#,
                "!invalid: account `ACC-2` does not exist",
                "!invalid: event key `ACC-2` is not the account_id `ACC-1`",
            ],
            "{guest}"
        );
        assert_eq!(
            got,
            rust_lines.iter().map(outcome).collect::<Vec<_>>(),
            "{guest} differs from Rust"
        );
        assert_eq!(
            accounts(&state),
            [
                ("0".into(), "ACC-1".into(), 1000, 5),
                ("0".into(), "ACC-2".into(), 0, 3),
                ("1".into(), "ACC-1".into(), 0, 2),
            ],
            "{guest}"
        );
        assert_eq!(state, rust_state, "{guest}: the same state as Rust");
    }
}

#[test]
fn a_corrupt_stored_account_is_invalid_in_every_language() {
    let seed = json!({"0": {"account/ACC-1": "not json", "account/ACC-2": r#"{"balance":-1,"version":1}"#}});
    let stdin = [
        json!({"value": {"account_id": "ACC-1", "type": "DEPOSITED", "amount": 1}}),
        json!({"value": {"account_id": "ACC-2", "type": "DEPOSITED", "amount": 1}}),
    ]
    .iter()
    .map(|e| format!("{e}\n"))
    .collect::<String>();
    for plugin in ["account-balance"].iter().chain(GUESTS) {
        let (lines, state) = run(plugin, &stdin, Some(&seed));
        for line in &lines {
            let message = outcome(line);
            assert!(
                message.starts_with("!invalid: state value of key `account/ACC-"),
                "{plugin}: {message}"
            );
            assert!(
                message.contains("` is not the expected JSON: "),
                "{plugin}: {message}"
            );
        }
        assert_eq!(state, seed, "{plugin}: nothing changed");
    }
}

/// The probes of the SDKs' state API, one per language.
const STATE_PROBES: &[&str] = &[
    "state-sdk-probe-rs",
    "state-sdk-probe-py",
    "state-sdk-probe-js",
];

/// How a probe ended an event (an outcome line), and its answers.
fn probe_outcome(line: &Value) -> (String, Vec<Value>) {
    if line["ok"] == json!(true) {
        let outputs = line["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 1, "one output per event: {line}");
        return (
            "ok".into(),
            rule::answers(outputs[0]["value"].as_str().unwrap()),
        );
    }
    let kind = line["error"]["kind"].as_str().unwrap();
    let message = line["error"]["message"].as_str().unwrap();
    let answers = match kind {
        "trap" => rule::trap_answers(message),
        _ => rule::answers(message),
    };
    (kind.into(), answers)
}

/// Partition 0 of a `--state-out` document: an object of keys, or a list
/// of `[key, value]` pairs when a key is not UTF-8; absent when empty.
fn partition_state(document: &Value) -> rule::State {
    match &document["0"] {
        Value::Null => rule::State::new(),
        Value::Object(keys) => keys
            .iter()
            .map(|(key, value)| (key.clone().into_bytes(), rule::bytes(value)))
            .collect(),
        pairs => pairs
            .as_array()
            .expect("keys as an object or a list of pairs")
            .iter()
            .map(|pair| (rule::bytes(&pair[0]), rule::bytes(&pair[1])))
            .collect(),
    }
}

#[test]
fn the_sdks_state_api_through_the_host() {
    let cases = rule::cases(&repo_dir().join("plugins/state-rule.json"));
    assert!(!cases.is_empty());
    for probe in STATE_PROBES {
        for case in &cases {
            let seed = json!({ "0": rule::readable(&case.state) });
            // One run per event, of the case's events up to it in one
            // batch: `--state-out` is the state after that event, and a
            // trap among them sends the batch down the host's retry of its
            // events one by one.
            for upto in 1..=case.events.len() {
                let events = &case.events[..upto];
                let stdin: String = events
                    .iter()
                    .map(|step| format!("{}\n", json!({ "value": step.request() })))
                    .collect();
                let (lines, state) = run(probe, &stdin, Some(&seed));
                assert_eq!(
                    lines.len(),
                    upto,
                    "{probe}: {}: one line per event",
                    case.name
                );
                for (i, (line, step)) in lines.iter().zip(events).enumerate() {
                    let (end, answers) = probe_outcome(line);
                    step.check(
                        &format!("{probe}: {}, event {}", case.name, i + 1),
                        &end,
                        &answers,
                    );
                }
                assert_eq!(
                    rule::readable(&partition_state(&state)),
                    rule::readable(&events[upto - 1].state),
                    "{probe}: {}, the state after event {upto}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn only_guest_plugins_that_use_state_import_it() {
    let engine = PluginEngine::new(&EngineOptions::from_process_env()).expect("an engine");
    for (name, stateful) in [
        ("order-enrich-py", false),
        ("order-enrich-js", false),
        ("guest-probe-py", false),
        ("guest-probe-js", false),
        ("account-balance-py", true),
        ("account-balance-js", true),
        ("state-sdk-probe-py", true),
        ("state-sdk-probe-js", true),
    ] {
        let path = plugin_path(name);
        let plugin = CompiledPlugin::load(&engine, name, &path)
            .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
        assert_eq!(
            plugin.keeps_state(),
            stateful,
            "{name} {} sluice:plugin/state",
            if stateful {
                "must import"
            } else {
                "must not import"
            }
        );
    }
}
