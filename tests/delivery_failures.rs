//! What happens when the broker refuses records, on librdkafka's mock
//! cluster (which can inject topic errors): a dead letter that cannot be
//! written holds its partition's offsets back and is retried until it
//! lands; an output that cannot be written turns its event into a dead
//! letter (`produce-failed`). Either way nothing is skipped and, once
//! everything is written, the committed offsets cover every input.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaRespErr;
use sluice_testkit::kafka::{Delivered, Reader, Record, committed, ends, produce};
use sluice_testkit::sluice::plugins_dir;

use sluice::config::Config;
use sluice::plugin::{EngineOptions, PluginEngine};
use sluice::supervisor::Supervisor;

/// The plugin engine of a supervisor under test.
fn engine() -> PluginEngine {
    PluginEngine::new(&EngineOptions::from_process_env()).expect("a plugin engine")
}

/// A pipeline through the hostile fixture (a passthrough unless an event
/// asks for trouble) on the mock cluster at `bootstrap`.
fn config(bootstrap: &str, dir: &std::path::Path) -> Config {
    config_with(bootstrap, dir, "")
}

/// [`config`] with `extra` lines added to the pipeline table.
fn config_with(bootstrap: &str, dir: &std::path::Path, extra: &str) -> Config {
    config_named(bootstrap, dir, "p", extra)
}

/// [`config_with`] for a pipeline called `name` (its metrics are its own
/// among the tests of this process).
fn config_named(bootstrap: &str, dir: &std::path::Path, name: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[kafka]
brokers = "{bootstrap}"
[kafka.consumer]
"session.timeout.ms" = 6000
[kafka.producer]
"message.timeout.ms" = 2000
"topic.metadata.refresh.interval.ms" = 500
[plugins]
dir = "{plugins}"
[[pipeline]]
name = "{name}"
inputs = ["in"]
plugin = "hostile"
output = "out"
dlq = "dlq"
group_id = "g"
batch_size = 8
{extra}
"#,
        plugins = plugins_dir().join("fixtures").display()
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, &text).expect("write config");
    Config::load(&path).expect("valid config")
}

/// A mock cluster with the pipeline's topics; `refusing` (if any) fails
/// every write.
fn cluster(refusing: Option<&str>) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in ["in", "out", "dlq"] {
        cluster.create_topic(topic, 2, 1).expect("create topic");
    }
    if let Some(topic) = refusing {
        cluster
            .topic_error(
                topic,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            )
            .expect("inject error");
    }
    cluster
}

/// Produces `values` to `in`, keyed `k0`, `k1`, ...
fn produce_numbered(bootstrap: &str, values: impl IntoIterator<Item = String>) -> Vec<Delivered> {
    let records: Vec<(String, String)> = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| (format!("k{i}"), value))
        .collect();
    produce(bootstrap, "in", &records)
}

/// Asserts that group `g` committed, on every partition of `in`, the end of
/// what was `delivered` there.
fn assert_committed_to_the_end(bootstrap: &str, delivered: &[Delivered]) {
    let committed = committed(bootstrap, "g", "in");
    for (partition, end) in &ends(delivered) {
        assert_eq!(
            committed.get(partition).copied().flatten(),
            Some(*end),
            "partition {partition}"
        );
    }
}

#[test]
fn an_unwritable_dlq_holds_offsets_back_until_it_recovers() {
    let cluster = cluster(Some("dlq"));
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut supervisor =
        Supervisor::start(engine(), config(&bootstrap, dir.path())).expect("starts");
    let delivered = produce_numbered(
        &bootstrap,
        (0..40).map(|i| {
            if i % 10 == 3 {
                "invalid".to_owned()
            } else {
                format!("ok-{i}")
            }
        }),
    );

    // Topics in error have no metadata, so each reader reads healthy ones.
    let mut outputs = Reader::new(&bootstrap, &["out"]);
    assert!(
        outputs.wait_count(36, Duration::from_secs(30)),
        "outputs: {}",
        outputs.records().len()
    );
    // The dead letters cannot be written, so the offsets of their
    // partitions must not move past them.
    std::thread::sleep(Duration::from_secs(3));
    let held = committed(&bootstrap, "g", "in");
    let end = ends(&delivered);
    assert!(
        end.iter()
            .any(|(p, e)| held.get(p).copied().flatten().is_none_or(|c| c < *e)),
        "offsets were committed past unwritten dead letters: {held:?} vs ends {end:?}"
    );

    cluster
        .topic_error("dlq", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .expect("clear error");
    let mut reader = Reader::new(&bootstrap, &["dlq"]);
    assert!(
        reader.wait_count(4, Duration::from_secs(30)),
        "dead letters: {}",
        reader.records().len()
    );
    let dead = reader.of("dlq");
    assert_eq!(dead.len(), 4);
    assert!(
        dead.iter()
            .all(|r| r.header("sluice.error.kind") == Some("invalid"))
    );

    supervisor.stop();
    assert_committed_to_the_end(&bootstrap, &delivered);
}

#[test]
fn an_unwritable_output_becomes_a_produce_failed_dead_letter() {
    let cluster = cluster(Some("out"));
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut supervisor =
        Supervisor::start(engine(), config(&bootstrap, dir.path())).expect("starts");
    let delivered = produce_numbered(&bootstrap, (0..10).map(|i| format!("ok-{i}")));

    let mut reader = Reader::new(&bootstrap, &["dlq"]);
    assert!(
        reader.wait_count(10, Duration::from_secs(30)),
        "records: {}",
        reader.records().len()
    );
    let dead = reader.of("dlq");
    assert_eq!(dead.len(), 10, "every event must be dead-lettered");
    for record in &dead {
        assert_eq!(record.header("sluice.error.kind"), Some("produce-failed"));
        assert!(
            record
                .header("sluice.error.message")
                .is_some_and(|m| m.contains("cannot write output")),
            "{:?}",
            record.header("sluice.error.message")
        );
    }
    let mut values: Vec<String> = dead.iter().filter_map(|r| r.value.clone()).collect();
    values.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("ok-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);

    supervisor.stop();
    assert_committed_to_the_end(&bootstrap, &delivered);
}

/// Runs the pipeline (with `extra` lines in its table) over `values`, all
/// under one key (one partition, so order is checkable), until `count`
/// records are on `out` and `dlq`; stops it, checks that the input was
/// committed to its end, and returns the records of `out` and `dlq`.
fn run_one_key(values: &[&str], extra: &str, count: usize) -> (Vec<Record>, Vec<Record>) {
    let cluster = cluster(None);
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with(&bootstrap, dir.path(), extra);
    let mut supervisor = Supervisor::start(engine(), config).expect("starts");
    let records: Vec<(String, String)> = values
        .iter()
        .map(|v| ("k".to_owned(), (*v).to_owned()))
        .collect();
    let delivered = produce(&bootstrap, "in", &records);

    let mut reader = Reader::new(&bootstrap, &["out", "dlq"]);
    assert!(
        reader.wait_count(count, Duration::from_secs(30)),
        "records: {}",
        reader.records().len()
    );
    supervisor.stop();
    assert_committed_to_the_end(&bootstrap, &delivered);
    (reader.of("out"), reader.of("dlq"))
}

fn values(records: &[Record]) -> Vec<String> {
    records.iter().filter_map(|r| r.value.clone()).collect()
}

#[test]
fn origin_headers_can_be_left_out_of_outputs_but_not_dead_letters() {
    let (outputs, dead) = run_one_key(&["a", "invalid", "b"], "origin_headers = false", 3);
    assert_eq!(values(&outputs), ["a", "b"]);
    for record in &outputs {
        // The input had no headers, so the output has none at all.
        assert_eq!(record.headers, Vec::new(), "{record:?}");
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("sluice.plugin"), Some("hostile"));
    assert!(
        dead[0]
            .header("sluice.plugin.digest")
            .is_some_and(|d| d.starts_with("sha256:")),
        "{:?}",
        dead[0]
    );
}

#[test]
fn events_that_pass_on_a_retry_keep_their_place() {
    // Two events of one batch fail once each and are retried together;
    // the rest of the batch waits for them.
    let input = ["a", "retry-once:1", "b", "retry-once:2", "c"];
    let (outputs, dead) = run_one_key(&input, "", 5);
    assert_eq!(values(&outputs), input);
    assert!(dead.is_empty(), "{dead:?}");
}

#[test]
fn retryable_failures_are_retried_then_dead_lettered_in_order() {
    let (outputs, dead) = run_one_key(&["a", "retry", "b", "retry", "c"], "", 5);
    assert_eq!(values(&outputs), ["a", "b", "c"]);
    assert_eq!(dead.len(), 2);
    for record in &dead {
        assert_eq!(
            record.header("sluice.error.kind"),
            Some("retries-exhausted")
        );
        // The pipeline's default policy: three tries in all.
        assert_eq!(record.header("sluice.attempts"), Some("3"));
        assert!(
            record
                .header("sluice.error.message")
                .is_some_and(|m| m.contains("asked to retry")),
            "{:?}",
            record.header("sluice.error.message")
        );
    }
}

#[test]
fn exactly_once_an_output_the_broker_refuses_is_dead_lettered_without_looping() {
    // An output the plugin may make (under `max_output_bytes`) that the
    // producer refuses (over `message.max.bytes`): in a transaction it
    // cannot become a dead letter in place, so the transaction aborts and
    // the event is dead-lettered when its batch runs again.
    let cluster = cluster(None);
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with(
        &bootstrap,
        dir.path(),
        "delivery = \"exactly-once\"\n[pipeline.limits]\nmax_output_bytes = 2000000",
    );
    let mut supervisor = Supervisor::start(engine(), config).expect("starts");
    let records: Vec<(String, String)> = ["a", "huge:1100000", "b"]
        .iter()
        .map(|v| ("k".to_owned(), (*v).to_owned()))
        .collect();
    let delivered = produce(&bootstrap, "in", &records);

    let mut dlq = Reader::new(&bootstrap, &["dlq"]);
    assert!(dlq.wait_count(1, Duration::from_secs(30)), "no dead letter");
    let mut out = Reader::new(&bootstrap, &["out"]);
    assert!(
        out.read_until(Duration::from_secs(30), |records| {
            records.iter().any(|r| r.value.as_deref() == Some("b"))
        }),
        "outputs: {:?}",
        values(out.records())
    );
    supervisor.stop();
    // It committed past the refused event: nothing loops.
    assert_committed_to_the_end(&bootstrap, &delivered);
    dlq.settle(Duration::from_millis(500), Duration::from_secs(5));
    let dead = dlq.of("dlq");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].header("sluice.error.kind"), Some("produce-failed"));
    assert_eq!(dead[0].header("sluice.source.offset"), Some("1"));
    assert!(
        dead[0]
            .header("sluice.error.message")
            .is_some_and(|m| m.contains("cannot write output")),
        "{:?}",
        dead[0]
    );
    let mut seen = values(&out.of("out"));
    seen.dedup();
    assert_eq!(
        seen,
        ["a", "b"],
        "in order (the mock cluster shows aborted records too)"
    );
}

#[test]
fn a_stop_does_not_wait_out_a_retry_backoff() {
    // An event the plugin asks to retry, with a two-minute backoff: the
    // worker waits on its inbox, so the stop ends the wait at once. The
    // event is neither retried nor dead-lettered nor committed: the next
    // run processes it again.
    let cluster = cluster(None);
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = "stops-in-backoff";
    let config = config_named(
        &bootstrap,
        dir.path(),
        pipeline,
        "[pipeline.retry]\nattempts = 3\nbackoff_ms = 120000\nmax_backoff_ms = 120000",
    );
    let mut supervisor = Supervisor::start(engine(), config).expect("starts");
    produce(&bootstrap, "in", &[("k".to_owned(), "retry".to_owned())]);

    // The batch is in its backoff once its first attempt was counted.
    let metrics = sluice::metrics::global().pipeline(pipeline);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metrics.events.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the event was never processed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Stopping must not take the backoff's two minutes.
    let stopping = std::time::Instant::now();
    supervisor.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(60),
        "the stop waited out the retry backoff ({:?})",
        stopping.elapsed()
    );
    assert_eq!(metrics.retries.get(), 0, "no retry was made");
    let mut reader = Reader::new(&bootstrap, &["out", "dlq"]);
    assert_eq!(
        reader.poll_for(Duration::from_secs(2)),
        0,
        "{:?}",
        reader.records()
    );
    assert_eq!(
        committed(&bootstrap, "g", "in")
            .values()
            .flatten()
            .sum::<i64>(),
        0,
        "the event's offset is not committed"
    );
}
