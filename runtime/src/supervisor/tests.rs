use super::*;

use std::path::Path;
use std::time::Duration;

use crate::clock::now_ms;
use crate::metrics;
use crate::plugin::EngineOptions;
use crate::status::{Outcome, Reload};

/// The plugin engine of a supervisor under test.
fn engine() -> PluginEngine {
    PluginEngine::new(&EngineOptions::from_process_env()).expect("a plugin engine")
}

/// A file with pipelines `a` and `b` (passthrough, embedded broker),
/// their names prefixed with `prefix` (metrics are per process, and
/// tests run in parallel); `consumer` goes into `[kafka.consumer]`;
/// `b` has `b_lines` added.
fn two_pipelines(prefix: &str, consumer: &str, b_lines: &str) -> String {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    assert!(
        plugins.join("passthrough.wasm").is_file(),
        "run scripts/build-plugins first"
    );
    let pipeline = |name: &str, extra: &str| {
        format!(
            "[[pipeline]]\nname = \"{prefix}{name}\"\ninputs = [\"{prefix}{name}-in\"]\n\
             plugin = \"passthrough\"\noutput = \"{prefix}{name}-out\"\n\
             dlq = \"{prefix}{name}-dlq\"\n{extra}\n"
        )
    };
    format!(
        "[kafka]\nbrokers = \"embedded\"\n[kafka.consumer]\n{consumer}\n\
         [plugins]\ndir = \"{}\"\n{}{}",
        plugins.display(),
        pipeline("a", ""),
        pipeline("b", b_lines),
    )
}

/// Instances of `passthrough` started for pipeline `name` so far.
fn instances(supervisor: &Supervisor, name: &str) -> u64 {
    let view = supervisor.status().view();
    let pipeline = view.pipelines.iter().find(|p| p.name == name);
    pipeline.map_or(0, |p| p.plugins[0].instances)
}

#[test]
fn a_changed_pipeline_restarts_on_the_instances_its_reload_prepared() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sluice.toml");
    // Two workers, so two instances per start.
    let file = |batch: usize| {
        two_pipelines(
            "changed-",
            "",
            &format!("workers = 2\nbatch_size = {batch}"),
        )
    };
    std::fs::write(&path, file(64)).expect("write the config");
    let mut supervisor =
        Supervisor::start(engine(), Config::load(&path).expect("valid")).expect("starts");
    let (a, b) = ("changed-a", "changed-b");
    // The process's instance id shows in the status as the config has it.
    assert_eq!(
        supervisor.status().view().instance_id,
        supervisor.config().kafka.instance_id
    );
    let (a_before, b_before) = (instances(&supervisor, a), instances(&supervisor, b));
    assert_eq!(b_before, 2);
    let a_started = supervisor
        .status()
        .pipeline(a)
        .map(|p| p.view().started_at_ms);

    std::fs::write(&path, file(16)).expect("edit the config");
    supervisor.reconcile();

    let view = supervisor.status().view();
    match view.reloads.last() {
        Some(Reload::Config {
            outcome: Outcome::Ok,
            changed,
            ..
        }) => assert_eq!(changed, &[b]),
        other => panic!("expected an applied config reload, got {other:?}"),
    }
    assert_eq!(
        supervisor.config().pipeline(b).map(|p| p.batch_size),
        Some(16)
    );
    // `init` ran once per worker of the new `b`: the instances the
    // reload checked are the ones that run.
    assert_eq!(instances(&supervisor, b), b_before + 2);
    // `a` was left alone.
    assert_eq!(instances(&supervisor, a), a_before);
    let a_now = supervisor
        .status()
        .pipeline(a)
        .map(|p| p.view().started_at_ms);
    assert_eq!(a_now, a_started);
    supervisor.stop();
}

/// Ends the poll thread of pipeline `name` behind the supervisor's
/// back, as a panic would, and waits for it to be gone.
fn end_poll_thread(supervisor: &Supervisor, name: &str) {
    let pipeline = &supervisor.pipelines[name];
    pipeline.begin_stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pipeline.is_finished() {
        assert!(Instant::now() < deadline, "the poll thread did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state_of(supervisor: &Supervisor, name: &str) -> (&'static str, Option<String>) {
    let view = supervisor.status().view();
    let p = view.pipelines.into_iter().find(|p| p.name == name);
    p.map_or(("absent", None), |p| (p.state, p.error))
}

#[test]
fn a_pipeline_whose_poll_thread_died_is_started_again_with_backoff() {
    use crate::kafka::reader::TopicReader;
    use crate::kafka::writer::{RecordRef, Writer};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sluice.toml");
    // The embedded broker's coordinator waits out an old member's
    // session before the next rebalance completes.
    let session = r#""session.timeout.ms" = "6000""#;
    std::fs::write(&path, two_pipelines("heal-", session, "")).expect("write the config");
    let mut supervisor =
        Supervisor::start(engine(), Config::load(&path).expect("valid")).expect("starts");
    let (a, b) = ("heal-a", "heal-b");
    let restarts = || metrics::global().pipeline(a).restarts.get();

    end_poll_thread(&supervisor, a);
    let liveness = supervisor.status().liveness(now_ms());
    assert_eq!(
        liveness,
        Err("pipeline `heal-a`: its poll thread ended".into())
    );
    let t0 = Instant::now();
    supervisor.heal(t0);
    let (state, error) = state_of(&supervisor, a);
    assert_eq!(state, "failed");
    assert_eq!(
        error.as_deref(),
        Some("pipeline `heal-a`: its poll thread ended; starting it again in 1 s")
    );
    let unready = supervisor.status().readiness(now_ms()).unwrap_err();
    assert!(
        unready
            .lines()
            .any(|l| l == "pipeline `heal-a` is not running"),
        "{unready}"
    );
    assert_eq!(
        supervisor.status().liveness(now_ms()),
        Ok(()),
        "only `b` runs"
    );
    supervisor.heal(t0 + Duration::from_millis(900));
    assert_eq!(state_of(&supervisor, a).0, "failed", "not before its time");
    supervisor.heal(t0 + RESTART_FIRST);
    assert_eq!(state_of(&supervisor, a), ("running", None));
    assert_eq!(restarts(), 1);

    // It dies again at once: the wait doubles.
    end_poll_thread(&supervisor, a);
    let t1 = Instant::now();
    supervisor.heal(t1);
    let (state, error) = state_of(&supervisor, a);
    assert_eq!(state, "failed");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.ends_with("starting it again in 2 s")),
        "{error:?}"
    );
    supervisor.heal(t1 + Duration::from_millis(1900));
    assert_eq!(state_of(&supervisor, a).0, "failed", "not before its time");
    supervisor.heal(t1 + 2 * RESTART_FIRST);
    assert_eq!(state_of(&supervisor, a), ("running", None));
    assert_eq!(restarts(), 2);
    assert_eq!(metrics::global().pipeline(b).restarts.get(), 0);
    let view = supervisor.status().view();
    assert_eq!(view.pipelines[0].restarts, 2, "{view:?}");

    // The pipeline started again does its work.
    let brokers = supervisor.brokers().to_owned();
    let mut writer = Writer::to(&brokers, &[]).expect("a producer");
    let mut record = RecordRef::to("heal-a-in");
    record.value = Some(b"after the restart");
    writer.send(record).expect("queued");
    writer.flush(Duration::from_secs(30)).expect("written");
    let reader =
        TopicReader::new(&brokers, &["heal-a-out"], Duration::from_secs(30)).expect("a reader");
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        assert!(Instant::now() < deadline, "no output after the restart");
        if let Some(Ok(event)) = reader.poll(Duration::from_millis(200)) {
            break event.value;
        }
    };
    assert_eq!(value.as_deref(), Some(&b"after the restart"[..]));
    supervisor.stop();
}

#[test]
fn backoff_doubles_up_to_its_bound() {
    let delays: Vec<u64> = (0..9)
        .map(|failures| {
            Restart {
                failures,
                due: None,
            }
            .next_delay()
            .as_secs()
        })
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

#[test]
fn a_pipeline_that_cannot_start_again_after_a_reload_is_reported_and_the_rest_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, two_pipelines("", "", "")).expect("write the config");
    let mut supervisor =
        Supervisor::start(engine(), Config::load(&path).expect("valid")).expect("starts");

    // The Kafka side stops accepting what the file says, as if the
    // cluster changed under us: the running config and the edited file
    // both carry a consumer property librdkafka refuses, so the edit
    // needs no restart and changes only `b`, whose new consumer cannot
    // be created after its old version has stopped.
    let refused = r#""session.timeout.ms" = "soon""#;
    supervisor
        .config
        .kafka
        .consumer
        .insert("session.timeout.ms".into(), "soon".into());
    std::fs::write(&path, two_pipelines("", refused, "batch_size = 16")).expect("edit the config");
    supervisor.reconcile();

    assert!(supervisor.pipelines.contains_key("a"), "`a` runs on");
    assert!(
        !supervisor.pipelines.contains_key("b"),
        "{:?}",
        supervisor.status().view()
    );
    let view = supervisor.status().view();
    let states: Vec<(&str, &str)> = view
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), p.state))
        .collect();
    assert_eq!(states, [("a", "running"), ("b", "failed")]);
    let b_error = view.pipelines[1].error.as_deref().unwrap_or_default();
    assert!(
        b_error.contains("cannot create the consumer") && b_error.contains("session.timeout.ms"),
        "{b_error}"
    );
    match view.reloads.last() {
        Some(Reload::Config {
            outcome: Outcome::Partial,
            changed,
            error: Some(error),
            ..
        }) => {
            assert_eq!(changed, &["b"]);
            assert!(
                error.starts_with("b could not start and is not running"),
                "{error}"
            );
        }
        other => panic!("expected a partial config reload, got {other:?}"),
    }
    supervisor.stop();
}
