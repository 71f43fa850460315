//! The operations endpoints of `sluice run --http` against a real broker
//! (tansu): readiness and liveness probes, JSON logs, and the Prometheus exposition
//! as a real parser (Python `prometheus_client`'s OpenMetrics parser,
//! from tests/requirements.txt) reads it.
//!
//! Every test starts its own broker and its own `sluice` processes. The
//! plugins must be built (`scripts/build-plugins`); tansu comes from
//! `scripts/setup`.
//!
//!     cargo test --release -p sluice --test e2e ops::

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::kafka::{self, Reader};
use sluice_testkit::sluice::{Scene, SluiceProcess, TIMEOUT, plugin_path};

/// A config with one `passthrough` pipeline `ops` (group `ops`) from
/// `in` to `out`.
fn config(scene: &Scene) -> std::path::PathBuf {
    let plugin = plugin_path("passthrough");
    let plugins = plugin.parent().expect("the plugin's directory");
    scene.write_config(
        "ops.toml",
        &format!(
            r#"{}
[[pipeline]]
name = "ops"
inputs = ["in"]
plugin = "passthrough"
output = "out"
dlq = "dlq"
group_id = "ops"
"#,
            scene.kafka_toml_with(plugins)
        ),
    )
}

fn joined(run: &mut SluiceProcess) -> sluice_testkit::sluice::Status {
    run.wait_status("`ops` joined its group", |s| {
        s.pipeline("ops").is_some_and(|p| p["joined"] == true)
    })
}

#[test]
fn ready_once_joined_even_with_no_partitions_healthy_while_polling_and_logs_json() {
    let scene = Scene::new();
    scene.create_topics(&[("in", 1), ("out", 1), ("dlq", 1)]);
    let config = config(&scene);

    let mut a = scene.start_with_args(&config, "a", &["--log-format", "json"]);
    a.wait_assigned("ops", 1);
    assert_eq!(a.get("/readyz"), Some((200, "ready\n".into())));
    assert_eq!(a.get("/healthz"), Some((200, "ok\n".into())));

    // `a` holds the only partition: `b` joins with none and is ready.
    let mut b = scene.start(&config, "b");
    let status = joined(&mut b);
    assert_eq!(status.assigned("ops"), 0, "{:?}", status.0);
    assert_eq!(
        b.get("/readyz"),
        Some((200, "ready\n".into())),
        "{}",
        b.describe()
    );
    assert_eq!(b.get("/healthz"), Some((200, "ok\n".into())));

    b.stop();
    a.stop();

    // `a` logged one JSON object per line, with the fields at the top.
    let lines: Vec<Value> = a
        .stderr()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let assigned = lines
        .iter()
        .find(|l| l["message"] == "partition assigned")
        .unwrap_or_else(|| panic!("no `partition assigned` line: {lines:?}"));
    assert_eq!(
        (
            &assigned["pipeline"],
            &assigned["topic"],
            &assigned["partition"]
        ),
        (&Value::from("ops"), &Value::from("in"), &Value::from(0)),
        "{assigned}"
    );
}

/// Parses an exposition with `prometheus_client.openmetrics.parser` (which
/// rejects what is not OpenMetrics): family name → (type, samples as
/// `[name, labels, value]`).
fn parse(exposition: &str) -> BTreeMap<String, (String, Vec<Value>)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {f.name: [f.type, [[s.name, s.labels, s.value] for s in f.samples]]
       for f in text_string_to_metric_families(sys.stdin.read())}
print(json.dumps(out))
"#;
    let mut child = Command::new(std::env::var("PYTHON").unwrap_or("python3".into()))
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (scripts/setup installs prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write the exposition");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{exposition}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// Every family `/metrics` has, with its type: all from the start but the
/// consumer lag, which has a series per assigned partition from the first
/// statistics after the assignment on.
const FAMILIES: [(&str, &str); 16] = [
    ("sluice_events", "counter"),
    ("sluice_outputs", "counter"),
    ("sluice_dead_letters", "counter"),
    ("sluice_retries", "counter"),
    ("sluice_reloads", "counter"),
    ("sluice_plugin_instances", "counter"),
    ("sluice_instance_replacements", "counter"),
    ("sluice_plugin_memory_bytes", "gauge"),
    ("sluice_pipeline_state", "gauge"),
    ("sluice_events_in_flight", "gauge"),
    ("sluice_pipeline_restarts", "counter"),
    ("sluice_plugin_call_duration_seconds", "histogram"),
    ("sluice_batch_size", "histogram"),
    ("sluice_transactions", "counter"),
    ("sluice_state_restore_duration_seconds", "histogram"),
    ("sluice_state_restored_keys", "counter"),
];
const LAG: &str = "sluice_consumer_lag";

/// The value of the sample `name` with exactly `labels`, if present.
fn sample(
    families: &BTreeMap<String, (String, Vec<Value>)>,
    family: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let want: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    families
        .get(family)?
        .1
        .iter()
        .find_map(|s| (s[0] == name && s[1].as_object() == Some(&want)).then(|| s[2].as_f64())?)
}

fn metrics(run: &SluiceProcess) -> BTreeMap<String, (String, Vec<Value>)> {
    let (code, text) = run.get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200, "{text}");
    parse(&text)
}

#[test]
fn every_metric_family_is_there_from_the_start_and_counts_events() {
    const EVENTS: usize = 300;
    let scene = Scene::new();
    scene.create_topics(&[("in", 2), ("out", 1), ("dlq", 1)]);
    let mut run = scene.start(&config(&scene), "metrics");

    // Right after start, before any event.
    let families = metrics(&run);
    for (name, kind) in FAMILIES {
        let found = families.get(name).map(|f| f.0.as_str());
        assert_eq!(found, Some(kind), "family {name}: {families:?}");
    }
    let extra: Vec<&String> = families
        .keys()
        .filter(|k| !FAMILIES.iter().any(|(n, _)| n == k))
        .collect();
    assert!(extra.is_empty(), "undocumented families {extra:?}");
    let memory = sample(
        &families,
        "sluice_plugin_memory_bytes",
        "sluice_plugin_memory_bytes",
        &[("pipeline", "ops"), ("plugin", "passthrough")],
    );
    assert!(
        memory.is_some_and(|m| m > 0.0),
        "sampled at start: {memory:?}"
    );
    let ops = [("pipeline", "ops")];
    assert_eq!(
        sample(&families, "sluice_events", "sluice_events_total", &ops),
        Some(0.0)
    );
    for kind in ["invalid", "trap", "output-rejected", "produce-failed"] {
        assert_eq!(
            sample(
                &families,
                "sluice_dead_letters",
                "sluice_dead_letters_total",
                &[("pipeline", "ops"), ("kind", kind)]
            ),
            Some(0.0),
            "dead letters of kind {kind}"
        );
    }
    assert_eq!(
        sample(
            &families,
            "sluice_reloads",
            "sluice_reloads_total",
            &[("kind", "plugin"), ("outcome", "ok")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &families,
            "sluice_batch_size",
            "sluice_batch_size_count",
            &ops
        ),
        Some(0.0)
    );

    run.wait_assigned("ops", 2);
    let records: Vec<(String, String)> = (0..EVENTS)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    kafka::produce(&scene.bootstrap(), "in", &records);
    let mut reader = Reader::new(&scene.bootstrap(), &["out"]);
    assert!(reader.wait_count(EVENTS, TIMEOUT), "{}", run.describe());

    // The lag comes with librdkafka's statistics, every 5 s.
    let deadline = Instant::now() + TIMEOUT;
    let families = loop {
        let families = metrics(&run);
        let lags = families.get(LAG).map_or(0, |f| f.1.len());
        let events = sample(&families, "sluice_events", "sluice_events_total", &ops);
        if lags == 2 && events == Some(EVENTS as f64) {
            break families;
        }
        assert!(
            Instant::now() < deadline,
            "{families:?}\n{}",
            run.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for (name, kind) in FAMILIES.iter().chain(&[(LAG, "gauge")]) {
        assert_eq!(
            families.get(*name).map(|f| f.0.as_str()),
            Some(*kind),
            "{name}"
        );
    }
    for partition in ["0", "1"] {
        let lag = sample(
            &families,
            LAG,
            LAG,
            &[
                ("pipeline", "ops"),
                ("topic", "in"),
                ("partition", partition),
            ],
        );
        assert!(
            lag.is_some_and(|l| l >= 0.0),
            "lag of in/{partition}: {lag:?}"
        );
    }
    assert_eq!(
        sample(&families, "sluice_outputs", "sluice_outputs_total", &ops),
        Some(EVENTS as f64)
    );
    let batched = |suffix: &str, family: &str| {
        sample(&families, family, &format!("{family}_{suffix}"), &ops).unwrap_or(-1.0)
    };
    assert_eq!(batched("sum", "sluice_batch_size"), EVENTS as f64);
    let batches = batched("count", "sluice_batch_size");
    assert!(batches >= 1.0);
    assert_eq!(
        batched("count", "sluice_plugin_call_duration_seconds"),
        batches
    );
    assert_eq!(
        sample(
            &families,
            "sluice_pipeline_state",
            "sluice_pipeline_state",
            &[("pipeline", "ops"), ("state", "running")]
        ),
        Some(1.0)
    );
    let memory = sample(
        &families,
        "sluice_plugin_memory_bytes",
        "sluice_plugin_memory_bytes",
        &[("pipeline", "ops"), ("plugin", "passthrough")],
    );
    assert!(memory.is_some_and(|m| m > 0.0), "{memory:?}");
    run.stop();
}
