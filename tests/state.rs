//! Plugin state on the host side, against the `state-probe` fixture (built
//! by `scripts/build-plugins`), whose events are state commands: scopes per
//! partition that outlive instances, one transaction per call (a trap
//! discards the call's writes, the culprit's too, and keeps the other
//! events'), the `state-limit` dead letter, `unavailable` in `init`.
//! Durable state in running pipelines is in tests/durable_state.rs.

use std::sync::{Arc, OnceLock};

use sluice::failure::FailureKind;
use sluice::plugin::{
    CompiledPlugin, EngineOptions, Event, InstanceSettings, Limits, Outcome, PluginEngine,
    PluginRunner, PluginState, StateLimits,
};
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

fn compiled(name: &str) -> Arc<CompiledPlugin> {
    Arc::new(CompiledPlugin::load(engine(), name, &plugin_path(name)).expect("load"))
}

fn probe() -> Arc<CompiledPlugin> {
    static PROBE: OnceLock<Arc<CompiledPlugin>> = OnceLock::new();
    Arc::clone(PROBE.get_or_init(|| compiled("state-probe")))
}

fn runner_with(state: PluginState, settings: InstanceSettings) -> PluginRunner {
    PluginRunner::with_state(probe(), Arc::new(settings), state).expect("start state-probe")
}

fn runner() -> PluginRunner {
    runner_with(PluginState::default(), InstanceSettings::default())
}

fn event(partition: i32, offset: i64, command: &str) -> Event {
    Event {
        topic: "input".into(),
        partition,
        offset,
        timestamp_ms: None,
        key: None,
        value: Some(command.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

/// The answer to each command, or `!<kind>` for an event that failed.
fn answers(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(outputs) => {
                assert_eq!(outputs.len(), 1, "{outcome:?}");
                String::from_utf8(outputs[0].value.clone().unwrap()).unwrap()
            }
            Err(failure) => format!("!{}", failure.kind),
        })
        .collect()
}

/// Runs `commands` as one batch of partition `partition`.
fn batch(runner: &mut PluginRunner, partition: i32, commands: &[&str]) -> Vec<String> {
    let events: Vec<Event> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| event(partition, i as i64, c))
        .collect();
    answers(&runner.process(&events))
}

fn one(runner: &mut PluginRunner, partition: i32, command: &str) -> String {
    batch(runner, partition, &[command]).remove(0)
}

// ---------------------------------------------------------------------------
// The host's state, at library level
// ---------------------------------------------------------------------------

#[test]
fn only_a_plugin_that_imports_state_keeps_state() {
    assert!(probe().keeps_state());
    // Built against `processor`, before the host offered `state`.
    assert!(!compiled("passthrough").keeps_state());
    assert!(!compiled("hostile").keeps_state());
}

#[test]
fn state_outlives_calls_and_instances_within_its_partition() {
    let mut runner = runner();
    assert_eq!(batch(&mut runner, 0, &["set a 1", "get a"]), ["ok", "1"]);
    assert_eq!(one(&mut runner, 0, "exists a"), "true");
    // A trap replaces the instance; the state stays with the runner.
    assert_eq!(one(&mut runner, 0, "trap-after-set x 1"), "!trap");
    assert_eq!(batch(&mut runner, 0, &["get a", "get x"]), ["1", "(none)"]);
    assert_eq!(
        batch(&mut runner, 0, &["del a", "exists a"]),
        ["ok", "false"]
    );
    assert_eq!(runner.state().get(0, b"a"), None);
}

#[test]
fn partitions_do_not_see_each_others_keys() {
    let mut runner = runner();
    assert_eq!(one(&mut runner, 0, "set k zero"), "ok");
    assert_eq!(one(&mut runner, 1, "get k"), "(none)");
    // A batch that mixes partitions still gives each call one scope.
    let mixed = [
        event(1, 0, "set k one"),
        event(0, 1, "get k"),
        event(1, 2, "get k"),
        event(2, 3, "list"),
    ];
    assert_eq!(answers(&runner.process(&mixed)), ["ok", "zero", "one", ""]);
    assert_eq!(runner.state().get(1, b"k"), Some(&b"one"[..]));
}

#[test]
fn a_trap_discards_the_batch_and_the_culprits_writes_and_keeps_the_others() {
    let mut runner = runner();
    assert_eq!(one(&mut runner, 0, "append log a"), "a");
    let answers = batch(
        &mut runner,
        0,
        &[
            "append log b",
            "trap-after-set x 1",
            "append log c",
            "get log",
        ],
    );
    // The batch's call trapped; its writes went and every event ran again
    // alone: `b` and `c` appended once each, the culprit's `x` never.
    assert_eq!(answers, ["ab", "!trap", "abc", "abc"]);
    assert_eq!(
        batch(&mut runner, 0, &["get log", "get x"]),
        ["abc", "(none)"]
    );
}

#[test]
fn an_event_whose_output_is_rejected_leaves_no_state() {
    let settings = InstanceSettings {
        limits: Limits {
            max_output_bytes: 50,
            ..Limits::default()
        },
        ..InstanceSettings::default()
    };
    let mut runner = runner_with(PluginState::default(), settings);
    let answers = batch(
        &mut runner,
        0,
        &[
            "append log a",
            "big-answer b 100",
            "append log b",
            "big-answer c 10",
        ],
    );
    assert_eq!(answers, ["a", "!output-rejected", "ab", "xxxxxxxxxx"]);
    assert_eq!(batch(&mut runner, 0, &["get b", "get c"]), ["(none)", "10"]);
}

#[test]
fn a_write_over_a_limit_dead_letters_its_event_as_state_limit() {
    // The default value limit, 1 MiB, and one byte over it.
    let mut runner = runner();
    assert_eq!(one(&mut runner, 0, "big v 1048576"), "ok");
    let outcomes = runner.process(&[event(0, 0, "big v 1048577")]);
    let failure = outcomes[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::StateLimit);
    assert!(
        failure.message.contains("1048577 bytes") && failure.message.contains("1048576"),
        "{failure}"
    );
    assert_eq!(runner.state().get(0, b"v").map(<[u8]>::len), Some(1 << 20));

    // Too many keys, in a batch: only the culprit fails.
    let limits = StateLimits {
        max_keys: 2,
        ..StateLimits::default()
    };
    let mut runner = runner_with(PluginState::new(limits), InstanceSettings::default());
    let answers = batch(
        &mut runner,
        4,
        &["set a 1", "set b 2", "set c 3", "set a 10", "list"],
    );
    assert_eq!(answers, ["ok", "ok", "!state-limit", "ok", "a,b"]);
    assert_eq!(runner.state().get(4, b"a"), Some(&b"10"[..]));
}

#[test]
fn state_is_unavailable_in_init() {
    assert_eq!(
        one(&mut runner(), 0, "init-probe"),
        "unavailable: state is only available during `process`"
    );
}

#[test]
fn list_keys_pages_and_delete_prefix_through_the_guest() {
    let mut runner = runner();
    let sets: Vec<String> = (1..=5).map(|i| format!("set acct/{i} x")).collect();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    batch(&mut runner, 0, &sets);
    let answers = batch(
        &mut runner,
        0,
        &[
            "set other x",
            "list acct/ 2",
            "list acct/ 2 acct/2",
            "list acct/ 2 acct/4",
            "delete-prefix acct/",
            "list * 10",
        ],
    );
    assert_eq!(
        answers,
        [
            "ok",
            "acct/1,acct/2",
            "acct/3,acct/4",
            "acct/5",
            "5",
            "other"
        ]
    );
}
