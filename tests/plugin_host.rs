//! The plugin host at library level, against the real example plugins and
//! the hostile fixtures (built by `scripts/build-plugins`): exact outputs,
//! every failure kind, the sandbox, culprit isolation, and the errors for
//! files that are not plugins.
//!
//! Compiling a component takes a while, so every test shares one engine and
//! one compiled copy of each plugin; each test still starts its own runner
//! (its own instances), so tests stay independent.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sluice::failure::FailureKind;
use sluice::plugin::{
    CompiledPlugin, DirGrant, EngineOptions, Event, InstanceSettings, Limits, Outcome, Output,
    PluginEngine, PluginError, PluginRunner, Sandbox,
};

use sluice_testkit::net::{GREETING, Greeter, Speaks};
use sluice_testkit::sluice::plugin_path;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        PluginEngine::new(&EngineOptions::from_process_env()).expect("create the plugin engine")
    })
}

/// The compiled plugin `name` (see `plugin_path`), compiled once per test
/// run.
fn plugin(name: &str) -> Arc<CompiledPlugin> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<CompiledPlugin>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(plugin) = cache.lock().unwrap().get(name) {
        return Arc::clone(plugin);
    }
    // Compile outside the lock so different plugins compile in parallel.
    let path = plugin_path(name);
    let compiled = CompiledPlugin::load(engine(), name, &path)
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    let compiled = Arc::new(compiled);
    Arc::clone(
        cache
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_insert(compiled),
    )
}

fn runner_with(name: &str, settings: InstanceSettings) -> PluginRunner {
    match PluginRunner::start(plugin(name), Arc::new(settings)) {
        Ok(runner) => runner,
        Err(e) => panic!("start {name}: {e}"),
    }
}

fn runner(name: &str) -> PluginRunner {
    runner_with(name, InstanceSettings::default())
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn hostile_with(limits: Limits, sandbox: Sandbox) -> PluginRunner {
    runner_with(
        "hostile",
        InstanceSettings {
            limits,
            sandbox,
            ..InstanceSettings::default()
        },
    )
}

/// An event as the pipeline would hand it over.
fn event(offset: i64, value: impl Into<Vec<u8>>) -> Event {
    Event {
        topic: "input".into(),
        partition: 3,
        offset,
        timestamp_ms: Some(1_732_400_000_000),
        key: Some(b"key-1".to_vec()),
        value: Some(value.into()),
        headers: vec![
            ("source".into(), b"web".to_vec()),
            ("trace".into(), vec![0, 1, 0xff]),
        ],
    }
}

fn events<S: AsRef<str>>(values: &[S]) -> Vec<Event> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| event(i as i64, v.as_ref()))
        .collect()
}

/// An output in a comparable shape: (topic, key, value, headers).
type Record = (
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<(String, Vec<u8>)>>,
);

fn record(output: &Output) -> Record {
    (
        output.topic.clone(),
        output.key.clone(),
        output.value.clone(),
        output.headers.clone(),
    )
}

/// An output to `topic` with this value that inherits key and headers.
fn inheriting(topic: Option<&str>, value: &[u8]) -> Record {
    (topic.map(str::to_owned), None, Some(value.to_vec()), None)
}

fn records(outcome: &Outcome) -> Vec<Record> {
    match outcome {
        Ok(outputs) => outputs.iter().map(record).collect(),
        Err(failure) => panic!("expected outputs, got {failure}"),
    }
}

/// The single output value of a successful outcome, as text.
fn single_value(outcome: &Outcome) -> String {
    let outputs = match outcome {
        Ok(outputs) => outputs,
        Err(failure) => panic!("expected one output, got {failure}"),
    };
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    String::from_utf8(outputs[0].value.clone().expect("a value")).expect("UTF-8 value")
}

/// Runs one event through `runner` and returns its outcome.
fn one(runner: &mut PluginRunner, value: &str) -> Outcome {
    let mut outcomes = runner.process(&[event(0, value)]);
    assert_eq!(outcomes.len(), 1);
    outcomes.pop().unwrap()
}

fn failure_of(outcome: &Outcome) -> (FailureKind, &str) {
    match outcome {
        Ok(outputs) => panic!("expected a failure, got {outputs:?}"),
        Err(failure) => (failure.kind, failure.message.as_str()),
    }
}

/// After a failure, a later call with a good event must work normally.
fn assert_recovers(runner: &mut PluginRunner) {
    let outcome = one(runner, "still alive");
    assert_eq!(
        records(&outcome),
        vec![inheriting(None, b"still alive")],
        "the next good event after a failure"
    );
}

fn start_error(name: &str, config: Vec<(String, String)>) -> PluginError {
    let settings = InstanceSettings {
        config,
        ..InstanceSettings::default()
    };
    match PluginRunner::start(plugin(name), Arc::new(settings)) {
        Ok(_) => panic!("{name} started, but it should have failed"),
        Err(e) => e,
    }
}

fn load_error(path: &Path) -> PluginError {
    CompiledPlugin::load(engine(), "under-test", path).expect_err("loading should have failed")
}

// ---------------------------------------------------------------------------
// Example plugins: exact outputs
// ---------------------------------------------------------------------------

#[test]
fn passthrough_is_the_identity_and_inherits_key_and_headers() {
    let mut runner = runner("passthrough");
    let mut batch = events(&["a", "", "{\"json\":true}"]);
    batch.push(event(3, vec![0u8, 0xff, 0x80, 7]));
    batch.push(Event {
        value: None,
        ..event(4, "")
    });
    let outcomes = runner.process(&batch);
    assert_eq!(outcomes.len(), batch.len());
    let expected: Vec<Vec<Record>> = vec![
        vec![inheriting(None, b"a")],
        vec![inheriting(None, b"")],
        vec![inheriting(None, b"{\"json\":true}")],
        vec![inheriting(None, &[0, 0xff, 0x80, 7])],
        vec![(None, None, None, None)], // a tombstone stays a tombstone
    ];
    let got: Vec<Vec<Record>> = outcomes.iter().map(records).collect();
    assert_eq!(got, expected);
}

#[test]
fn order_enrich_tutorial_order_exact_bytes() {
    let mut runner = runner("order-enrich");
    let order = r#"{"order_id": "ORD-0001", "customer_id": "CUST-001", "amount": 11.5, "timestamp": 1732400000.0}"#;
    let outcomes = runner.process(&[event(0, order)]);
    assert_eq!(
        records(&outcomes[0]),
        vec![inheriting(
            None,
            br#"{"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000.0}"#
        )]
    );
}

#[test]
fn order_enrich_tiers_at_the_boundaries() {
    let mut runner = runner("order-enrich");
    let amounts = ["49.99", "50", "99.99", "100", "0"];
    let batch: Vec<String> = amounts
        .iter()
        .map(|a| format!(r#"{{"order_id":"A","amount":{a}}}"#))
        .collect();
    let outcomes = runner.process(&events(&batch));
    let got: Vec<String> = outcomes.iter().map(single_value).collect();
    assert_eq!(
        got,
        [
            r#"{"amount":49.99,"amount_cents":4999,"order_id":"A","tier":"bronze"}"#,
            r#"{"amount":50,"amount_cents":5000,"order_id":"A","tier":"silver"}"#,
            r#"{"amount":99.99,"amount_cents":9999,"order_id":"A","tier":"silver"}"#,
            r#"{"amount":100,"amount_cents":10000,"order_id":"A","tier":"gold"}"#,
            r#"{"amount":0,"amount_cents":0,"order_id":"A","tier":"bronze"}"#,
        ]
    );

    // The thresholds come from the config handed to `init`.
    let mut custom = runner_with(
        "order-enrich",
        InstanceSettings {
            config: config(&[("silver_from", "10"), ("gold_from", "20")]),
            ..InstanceSettings::default()
        },
    );
    let outcomes = custom.process(&events(&[
        r#"{"order_id":"A","amount":9.99}"#,
        r#"{"order_id":"A","amount":10}"#,
        r#"{"order_id":"A","amount":20}"#,
    ]));
    let tiers: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let v: serde_json::Value = serde_json::from_str(&single_value(o)).unwrap();
            v["tier"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tiers, ["bronze", "silver", "gold"]);
}

#[test]
fn order_enrich_rejects_bad_orders_as_invalid_with_reasons() {
    let mut runner = runner("order-enrich");
    let batch = events(&[
        "not json",
        r#"{"order_id":"A"}"#,
        r#"{"order_id":"A","amount":-1.5}"#,
        r#"{"order_id":"A","amount":1}"#,
        r#"[1,2]"#,
    ]);
    let outcomes = runner.process(&batch);
    assert_eq!(outcomes.len(), 5);
    assert_eq!(
        failure_of(&outcomes[0]),
        (
            FailureKind::Invalid,
            "event value is not valid JSON: expected ident at line 1 column 2"
        )
    );
    assert_eq!(
        failure_of(&outcomes[1]),
        (FailureKind::Invalid, "missing field `amount`")
    );
    assert_eq!(
        failure_of(&outcomes[2]),
        (
            FailureKind::Invalid,
            "field `amount` must not be negative, got -1.5"
        )
    );
    // A good order among bad ones is unaffected.
    assert_eq!(
        single_value(&outcomes[3]),
        r#"{"amount":1,"amount_cents":100,"order_id":"A","tier":"bronze"}"#
    );
    assert_eq!(
        failure_of(&outcomes[4]),
        (
            FailureKind::Invalid,
            "order is not a JSON object, got array"
        )
    );

    let tombstone = runner.process(&[Event {
        value: None,
        ..event(0, "")
    }]);
    assert_eq!(
        failure_of(&tombstone[0]),
        (FailureKind::Invalid, "event has no value (tombstone)")
    );
}

#[test]
fn router_routes_filters_and_copies() {
    let order = r#"{"type":"order","id":1}"#;
    let refund = r#"{"type":"refund","id":2}"#;
    let ping = r#"{"type":"ping"}"#;

    // Without a default, unmatched events are filtered out (no outputs).
    let mut plain = runner_with(
        "router",
        InstanceSettings {
            config: config(&[
                ("field", "type"),
                ("routes", "order:orders, refund:refunds"),
            ]),
            ..InstanceSettings::default()
        },
    );
    let outcomes = plain.process(&events(&[order, ping, refund]));
    let got: Vec<Vec<Record>> = outcomes.iter().map(records).collect();
    assert_eq!(
        got,
        vec![
            vec![inheriting(Some("orders"), order.as_bytes())],
            vec![],
            vec![inheriting(Some("refunds"), refund.as_bytes())],
        ]
    );

    // With a default and a copy: two outputs per event, routed one first.
    let mut copying = runner_with(
        "router",
        InstanceSettings {
            config: config(&[
                ("field", "type"),
                ("routes", "order:orders,refund:refunds"),
                ("default", "other"),
                ("copy_to", "audit"),
            ]),
            ..InstanceSettings::default()
        },
    );
    let outcomes = copying.process(&events(&[refund, ping]));
    let got: Vec<Vec<Record>> = outcomes.iter().map(records).collect();
    assert_eq!(
        got,
        vec![
            vec![
                inheriting(Some("refunds"), refund.as_bytes()),
                inheriting(Some("audit"), refund.as_bytes()),
            ],
            vec![
                inheriting(Some("other"), ping.as_bytes()),
                inheriting(Some("audit"), ping.as_bytes()),
            ],
        ]
    );

    // Only a copy when nothing matches and there is no default.
    let mut copy_only = runner_with(
        "router",
        InstanceSettings {
            config: config(&[
                ("field", "type"),
                ("routes", "order:orders"),
                ("copy_to", "audit"),
            ]),
            ..InstanceSettings::default()
        },
    );
    let outcomes = copy_only.process(&events(&[ping, r#"{"kind":"order"}"#]));
    assert_eq!(
        records(&outcomes[0]),
        vec![inheriting(Some("audit"), ping.as_bytes())]
    );
    assert_eq!(
        failure_of(&outcomes[1]),
        (FailureKind::Invalid, "missing field `type`")
    );
}

#[test]
fn router_without_its_required_config_fails_init() {
    let error = start_error("router", config(&[("routes", "a:b")]));
    match &error {
        PluginError::Init { name, message } => {
            assert_eq!(name, "router");
            assert_eq!(message, "missing required config key `field`");
        }
        other => panic!("expected PluginError::Init, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Hostile plugins: every failure kind, and recovery after each
// ---------------------------------------------------------------------------

#[test]
fn panic_is_a_trap_with_the_panic_text() {
    let mut runner = runner("hostile");
    let outcome = one(&mut runner, "panic");
    let (kind, message) = failure_of(&outcome);
    assert_eq!(kind, FailureKind::Trap, "{message}");
    assert!(
        message.contains("hostile plugin asked to panic"),
        "the trap message should carry the panic text: {message}"
    );
    assert_recovers(&mut runner);
}

/// Runs `loop` under `deadline` and returns how long the call took.
fn time_endless_loop(deadline: Duration) -> Duration {
    let mut runner = hostile_with(
        Limits {
            deadline,
            ..Limits::default()
        },
        Sandbox::default(),
    );
    let started = Instant::now();
    let outcome = one(&mut runner, "loop");
    let elapsed = started.elapsed();
    let (kind, message) = failure_of(&outcome);
    assert_eq!(kind, FailureKind::Timeout, "{message}");
    assert!(
        message.contains(&format!("{} ms", deadline.as_millis())),
        "the message should state the deadline: {message}"
    );
    assert_recovers(&mut runner);
    elapsed
}

#[test]
fn endless_loop_times_out_at_the_configured_deadline() {
    // Generous margin for a loaded 2-core machine.
    let margin = Duration::from_millis(1500);

    // A short deadline: the call comes back soon after it...
    let short = Duration::from_millis(200);
    let elapsed = time_endless_loop(short);
    assert!(
        elapsed >= short && elapsed < short + margin,
        "a {short:?} deadline returned after {elapsed:?}"
    );

    // ...and a deadline above the 1 s default really is the configured one:
    // the call is not cut at the default, and still comes back in time.
    let long = Duration::from_millis(1600);
    assert!(long > Limits::default().deadline);
    let elapsed = time_endless_loop(long);
    assert!(
        elapsed >= long && elapsed < long + margin,
        "a {long:?} deadline returned after {elapsed:?}"
    );
}

#[test]
fn memory_hog_hits_the_memory_cap() {
    let mut runner = hostile_with(
        Limits {
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
        Sandbox::default(),
    );
    let outcome = one(&mut runner, "oom");
    let (kind, message) = failure_of(&outcome);
    assert_eq!(kind, FailureKind::Memory, "{message}");
    assert!(message.contains("16 MiB"), "{message}");
    assert_recovers(&mut runner);
}

#[test]
fn an_event_over_the_output_count_cap_fails_alone() {
    let mut runner = hostile_with(
        Limits {
            max_outputs_per_event: 10,
            ..Limits::default()
        },
        Sandbox::default(),
    );
    let outcomes = runner.process(&events(&["fanout:10", "fanout:11", "hello"]));
    assert_eq!(outcomes[0].as_ref().map(Vec::len), Ok(10), "at the cap");
    let (kind, message) = failure_of(&outcomes[1]);
    assert_eq!(kind, FailureKind::OutputRejected, "{message}");
    assert_eq!(
        message,
        "11 outputs for one event, over the cap of 10 outputs per event"
    );
    assert_eq!(single_value(&outcomes[2]), "hello", "its batch mate");
    assert_recovers(&mut runner);
}

#[test]
fn huge_output_is_rejected_above_the_cap() {
    let mut runner = hostile_with(
        Limits {
            max_output_bytes: 1024,
            ..Limits::default()
        },
        Sandbox::default(),
    );
    // Events without key and headers, so the record is exactly its value
    // whether or not the host counts inherited key and headers.
    let bare = |value: &str| Event {
        key: None,
        headers: Vec::new(),
        ..event(0, value)
    };
    let mut outcomes = runner.process(&[bare("huge:1024"), bare("huge:1025")]);
    // At the cap is fine; one byte over is not.
    assert_eq!(single_value(&outcomes[0]).len(), 1024);
    let outcome = outcomes.pop().unwrap();
    let (kind, message) = failure_of(&outcome);
    assert_eq!(kind, FailureKind::OutputRejected, "{message}");
    assert!(
        message.contains("1025") && message.contains("1024"),
        "{message}"
    );
    assert_recovers(&mut runner);
}

#[test]
fn invalid_and_retryable_are_reported_as_such() {
    let mut runner = runner("hostile");
    let outcomes = runner.process(&events(&["invalid", "retry", "fine"]));
    assert_eq!(
        failure_of(&outcomes[0]),
        (FailureKind::Invalid, "asked to be invalid")
    );
    assert_eq!(
        failure_of(&outcomes[1]),
        (FailureKind::Retryable, "asked to retry")
    );
    assert_eq!(single_value(&outcomes[2]), "fine");
}

#[test]
fn filesystem_is_denied_unless_granted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "hello from the host").unwrap();

    let mut denied = runner("hostile");
    for path in [
        "/etc/hostname".to_owned(),
        "/etc/passwd".to_owned(),
        secret.display().to_string(),
        "/data/secret.txt".to_owned(),
    ] {
        let value = single_value(&one(&mut denied, &format!("read-file:{path}")));
        assert!(
            value.starts_with("err:"),
            "read-file:{path} without a grant gave {value:?}"
        );
    }
    assert_recovers(&mut denied);

    // The same plugin with the directory granted does read the file: the
    // denial above is the sandbox, not a broken plugin.
    let mut granted = hostile_with(
        Limits::default(),
        Sandbox {
            dirs: vec![DirGrant {
                host: dir.path().to_owned(),
                guest: "/data".into(),
                writable: false,
            }],
            ..Sandbox::default()
        },
    );
    assert_eq!(
        single_value(&one(&mut granted, "read-file:/data/secret.txt")),
        format!("ok:{GREETING}")
    );
    // Only the granted directory.
    let value = single_value(&one(&mut granted, "read-file:/etc/hostname"));
    assert!(value.starts_with("err:"), "{value:?}");
}

#[test]
fn environment_is_empty_unless_granted() {
    // The host has environment variables; the plugin must not see them.
    let host_var = "PATH";
    assert!(
        std::env::var_os(host_var).is_some(),
        "the test needs {host_var} set in the host"
    );

    let mut denied = runner("hostile");
    assert_eq!(single_value(&one(&mut denied, "env")), "[]");
    let value = single_value(&one(&mut denied, &format!("env:{host_var}")));
    assert!(value.starts_with("err:"), "env:{host_var} gave {value:?}");
    assert_recovers(&mut denied);

    let mut granted = hostile_with(
        Limits::default(),
        Sandbox {
            env: vec![("GREETING".into(), "hi".into())],
            ..Sandbox::default()
        },
    );
    assert_eq!(
        single_value(&one(&mut granted, "env")),
        r#"[["GREETING","hi"]]"#
    );
    assert_eq!(single_value(&one(&mut granted, "env:GREETING")), "ok:hi");
    let value = single_value(&one(&mut granted, &format!("env:{host_var}")));
    assert!(value.starts_with("err:"), "env:{host_var} gave {value:?}");
}

#[test]
fn network_is_denied_unless_granted() {
    let greeter = Greeter::start(Speaks::Raw);
    let connect = format!("connect:{}", greeter.addr());

    let mut denied = runner("hostile");
    let value = single_value(&one(&mut denied, &connect));
    assert!(
        value.starts_with("err:"),
        "{connect} without a grant gave {value:?}"
    );
    let value = single_value(&one(&mut denied, "resolve:localhost"));
    assert!(
        value.starts_with("err:"),
        "a name lookup without a grant gave {value:?}"
    );
    assert_eq!(
        greeter.accepted(),
        0,
        "a denied connect reached the listener"
    );
    assert_recovers(&mut denied);

    // The grant opens both: the denial above is the sandbox.
    let mut granted = hostile_with(
        Limits::default(),
        Sandbox {
            network: true,
            ..Sandbox::default()
        },
    );
    assert_eq!(
        single_value(&one(&mut granted, &connect)),
        format!("ok:{GREETING}")
    );
    assert_eq!(greeter.accepted(), 1);
    assert_eq!(
        single_value(&one(&mut granted, "resolve:localhost")),
        "ok:127.0.0.1"
    );
}

/// The hostile plugin with a 16 MiB memory cap.
fn small_hostile() -> PluginRunner {
    hostile_with(
        Limits {
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
        Sandbox::default(),
    )
}

#[test]
fn a_plugin_whose_memory_grows_is_replaced_before_it_hits_the_cap() {
    // 300 events that each keep 256 KiB: 75 MiB in all, past the 16 MiB
    // cap many times over, one event per call as a quiet pipeline sends.
    let mut runner = small_hostile();
    for i in 0..300 {
        let outcome = one(&mut runner, "leak:256");
        assert!(outcome.is_ok(), "event {i}: {outcome:?}");
    }
}

#[test]
fn a_memory_trap_on_a_used_instance_is_tried_again_on_a_fresh_one() {
    let mut runner = small_hostile();
    // 8 MiB kept: below the point where the instance is replaced...
    assert!(one(&mut runner, "leak:8192").is_ok());
    // ...so 6 MiB more hit the cap on this instance, and pass on a fresh one.
    assert_eq!(single_value(&one(&mut runner, "leak:6144")), "leak:6144");
    // What fails on a fresh instance too is the event's own doing.
    assert_eq!(failure_of(&one(&mut runner, "oom")).0, FailureKind::Memory);
    assert_recovers(&mut runner);
}

// ---------------------------------------------------------------------------
// Culprit isolation: one poison event in a batch
// ---------------------------------------------------------------------------

/// Checks that only the event at `culprit` failed, with its kind, and every
/// other event came out as itself, in order.
fn assert_only_culprit_failed(
    values: &[String],
    outcomes: &[Outcome],
    culprit: Option<(usize, FailureKind)>,
) {
    assert_eq!(outcomes.len(), values.len(), "one outcome per event");
    for (i, (value, outcome)) in values.iter().zip(outcomes).enumerate() {
        if let Some((_, kind)) = culprit.filter(|(at, _)| *at == i) {
            assert_eq!(failure_of(outcome).0, kind, "event {i}");
        } else {
            assert_eq!(
                records(outcome),
                vec![inheriting(None, value.as_bytes())],
                "event {i}"
            );
        }
    }
}

#[test]
fn a_panic_in_a_batch_fails_only_its_event() {
    let mut runner = runner("hostile");
    let mut values: Vec<String> = (0..10).map(|i| format!("good-{i}")).collect();
    values[4] = "panic".into();
    let outcomes = runner.process(&events(&values));
    assert_only_culprit_failed(&values, &outcomes, Some((4, FailureKind::Trap)));

    // The runner keeps working on the next batch.
    let values: Vec<String> = (0..3).map(|i| format!("next-{i}")).collect();
    let outcomes = runner.process(&events(&values));
    assert_only_culprit_failed(&values, &outcomes, None);
}

#[test]
fn a_loop_or_a_memory_hog_in_a_batch_fails_only_its_event() {
    let mut runner = hostile_with(
        Limits {
            deadline: Duration::from_millis(200),
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
        Sandbox::default(),
    );
    let mut values: Vec<String> = (0..6).map(|i| format!("good-{i}")).collect();
    values[2] = "loop".into();
    let outcomes = runner.process(&events(&values));
    assert_only_culprit_failed(&values, &outcomes, Some((2, FailureKind::Timeout)));

    let mut values: Vec<String> = (0..6).map(|i| format!("good-{i}")).collect();
    values[5] = "oom".into();
    let outcomes = runner.process(&events(&values));
    assert_only_culprit_failed(&values, &outcomes, Some((5, FailureKind::Memory)));
}

// ---------------------------------------------------------------------------
// Plugins that cannot start, and files that are not plugins
// ---------------------------------------------------------------------------

#[test]
fn init_failure_names_the_plugin_and_its_reason() {
    let error = start_error("init-fails", Vec::new());
    match &error {
        PluginError::Init { name, message } => {
            assert_eq!(name, "init-fails");
            assert_eq!(message, "this plugin refuses to start");
        }
        other => panic!("expected PluginError::Init, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("init-fails") && text.contains("this plugin refuses to start"),
        "{text}"
    );

    let error = start_error("hostile", config(&[("fail_init", "true")]));
    assert!(
        matches!(&error, PluginError::Init { name, message }
            if name == "hostile" && message == "init failed as configured"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("hostile") && text.contains("init failed as configured"),
        "{text}"
    );
}

#[test]
fn wrong_world_is_rejected_at_load() {
    let path = plugin_path("wrong-world");
    let error = load_error(&path);
    assert!(matches!(error, PluginError::WrongWorld { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("does not implement") && text.contains("processor"),
        "{text}"
    );
}

#[test]
fn bad_files_are_rejected_with_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let assert_names_file = |error: &PluginError, path: &Path, also: &str| {
        let text = error.to_string();
        assert!(
            text.contains(&path.display().to_string()),
            "the error should name {}: {text}",
            path.display()
        );
        assert!(text.contains(also), "the error should say {also:?}: {text}");
    };

    let missing = dir.path().join("missing.wasm");
    let error = load_error(&missing);
    assert!(matches!(error, PluginError::Read { .. }), "{error:?}");
    assert_names_file(&error, &missing, "cannot read");

    let text = dir.path().join("text.wasm");
    std::fs::write(&text, "this is not WebAssembly\n").unwrap();
    let error = load_error(&text);
    assert!(matches!(error, PluginError::Compile { .. }), "{error:?}");
    assert_names_file(&error, &text, "not a WebAssembly");

    let bytes = std::fs::read(plugin_path("passthrough")).unwrap();
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = load_error(&truncated);
    assert!(matches!(error, PluginError::Compile { .. }), "{error:?}");
    assert_names_file(&error, &truncated, "not a valid WebAssembly component");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let error = load_error(&core);
    assert!(matches!(error, PluginError::Compile { .. }), "{error:?}");
    assert_names_file(&error, &core, "core WebAssembly module, not a component");

    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"").unwrap();
    let error = load_error(&empty);
    assert!(matches!(error, PluginError::Compile { .. }), "{error:?}");
    assert_names_file(&error, &empty, "not a WebAssembly");
}
