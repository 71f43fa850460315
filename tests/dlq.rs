//! `sluice dlq list` and `sluice dlq redrive` against a real
//! Kafka-compatible broker (tansu): the tutorial's orders with malformed
//! ones dead-lettered by order-enrich; listing them (also as JSON lines that
//! `sluice exec` reads); a redrive with the plugin still broken (they fail
//! again, back on the DLQ with one more attempt, once); a foreign record;
//! a fixed plugin deployed (the pipeline file now names `passthrough`), a
//! dry run that writes and commits nothing, the redrive, and a redrive
//! that has nothing left to do; and bad input.
//!
//!     cargo test --release -p sluice --test e2e dlq::

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use sluice_testkit::kafka::{self, Reader, TestProducer};
use sluice_testkit::sluice::{CliOutput, Scene, TIMEOUT, plugin_path};

const CLI_TIMEOUT: Duration = Duration::from_secs(120);
const GROUP: &str = "sluice-redrive-orders";

/// The tutorial's malformed orders and two more: five `invalid`s.
fn malformed() -> Vec<(String, String)> {
    let mut bad: Vec<(String, String)> = sluice::demo::MALFORMED
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    bad.push(("bad-3".into(), "[1,2]".into()));
    bad.push((
        "bad-4".into(),
        r#"{"order_id":"ORD-BAD4","customer_id":"CUST-002","amount":"lots"}"#.into(),
    ));
    bad
}

/// The pipeline file, pipeline `orders` through `plugin`, into `dlq`.
fn config(scene: &Scene, plugin: &str, dlq: &str) -> String {
    format!(
        r#"{}
[[pipeline]]
name = "orders"
inputs = ["orders"]
plugin = "{plugin}"
output = "orders-enriched"
dlq = "{dlq}"
group_id = "e2e-orders"
"#,
        scene.kafka_toml()
    )
}

fn cli(scene: &Scene, args: &[&str]) -> CliOutput {
    let out = scene.cli(args, CLI_TIMEOUT);
    assert!(!out.stderr.contains("panicked"), "{}", out.text());
    out
}

fn ok(scene: &Scene, args: &[&str]) -> String {
    let out = cli(scene, args);
    assert!(out.status.success(), "sluice {args:?}: {}", out.text());
    out.stdout
}

/// `sluice dlq COMMAND FILE --pipeline orders MORE...`, which must succeed.
fn sluice_dlq(scene: &Scene, command: &str, file: &str, more: &[&str]) -> String {
    let mut args = vec!["dlq", command, file, "--pipeline", "orders"];
    args.extend_from_slice(more);
    ok(scene, &args)
}

fn fails(scene: &Scene, args: &[&str]) -> String {
    let out = cli(scene, args);
    assert!(
        !out.status.success(),
        "sluice {args:?} should fail: {}",
        out.text()
    );
    out.stderr
}

/// Every record of `topic` (the count must be reached, then it settles).
fn read(bootstrap: &str, topic: &str, count: usize) -> Vec<kafka::Record> {
    let mut reader = Reader::new(bootstrap, &[topic]);
    assert!(
        reader.wait_count(count, TIMEOUT),
        "fewer than {count} in {topic}"
    );
    reader.settle(Duration::from_millis(700), Duration::from_secs(10));
    reader.of(topic)
}

fn committed(bootstrap: &str) -> BTreeMap<i32, Option<i64>> {
    kafka::committed(bootstrap, GROUP, "orders-dlq")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn dead_letters_are_listed_redriven_once_and_fail_again_with_one_more_attempt() {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("orders", 3), ("orders-enriched", 3), ("orders-dlq", 1)]);
    let orders: Vec<(String, String)> = (0..30)
        .map(|i| sluice::demo::order(i, 10, 1_732_400_000.5))
        .collect();
    let bad = malformed();
    let delivered = kafka::produce(
        &bootstrap,
        "orders",
        &[orders.clone(), bad.clone()].concat(),
    );
    let bad_at: Vec<(i32, i64)> = delivered[orders.len()..]
        .iter()
        .map(|d| (d.partition, d.offset))
        .collect();

    let file = scene.write_config("sluice.toml", &config(&scene, "order-enrich", "orders-dlq"));
    let path = file.to_str().expect("UTF-8 path");
    let mut run = scene.start(&file, "run");
    let mut reader = Reader::new(&bootstrap, &["orders-enriched", "orders-dlq"]);
    assert!(
        reader.wait_count(orders.len() + bad.len(), TIMEOUT),
        "{}",
        run.describe()
    );
    run.stop();

    // list: five invalids by order-enrich, pointing at the source records.
    let listed = sluice_dlq(&scene, "list", path, &[]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 5 + 3, "{listed}");
    let mut sources: Vec<(i32, i64)> = Vec::new();
    for line in &lines[..5] {
        let fields: Vec<&str> = line.split("  ").collect();
        assert_eq!(fields[1], "invalid", "{line}");
        assert!(fields[2].starts_with("order-enrich@"), "{line}");
        assert_eq!(fields[3], "attempts=1", "{line}");
        assert!(
            fields[4].starts_with("failed=20") && fields[4].ends_with('Z'),
            "{line}"
        );
        let source: Vec<&str> = fields[0].split('/').collect();
        assert_eq!(source[0], "orders", "{line}");
        sources.push((source[1].parse().unwrap(), source[2].parse().unwrap()));
    }
    sources.sort();
    let mut want = bad_at.clone();
    want.sort();
    assert_eq!(sources, want);
    assert!(listed.contains("value=\"this is not json\""), "{listed}");
    assert!(
        listed.ends_with(
            "5 shown of 5 selected (5 records read)\nby kind: invalid 5\nby plugin: order-enrich 5\n"
        ),
        "{listed}"
    );
    let limited = sluice_dlq(&scene, "list", path, &["--limit", "2"]);
    assert!(limited.contains("2 shown of 5 selected"), "{limited}");
    let none = sluice_dlq(&scene, "list", path, &["--kind", "trap"]);
    assert!(
        none.starts_with("0 shown of 0 selected (5 records read)"),
        "{none}"
    );
    let later = sluice_dlq(&scene, "list", path, &["--since", "2099-01-01"]);
    assert!(later.starts_with("0 shown of 0 selected"), "{later}");
    let recent = sluice_dlq(&scene, "list", path, &["--since", "1h"]);
    assert!(recent.contains("5 shown of 5 selected"), "{recent}");

    // --json: exec input lines of the source events, context under `sluice`.
    let json = sluice_dlq(&scene, "list", path, &["--json"]);
    let events = json_lines(&json);
    assert_eq!(events.len(), 5, "{json}");
    let mut values: Vec<&str> = events
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    values.sort();
    let mut bad_values: Vec<&str> = bad.iter().map(|(_, v)| v.as_str()).collect();
    bad_values.sort();
    assert_eq!(values, bad_values);
    for e in &events {
        assert_eq!(e["topic"], "orders");
        assert_eq!(e["sluice"]["kind"], "invalid");
        assert_eq!(e["sluice"]["plugin"], "order-enrich");
        assert_eq!(e["sluice"]["attempts"], 1);
        assert_eq!(e["sluice"]["dlq_topic"], "orders-dlq");
        assert_eq!(
            e["headers"],
            serde_json::json!([]),
            "no envelope headers: {e}"
        );
    }
    let input = scene.dir.path().join("dead.jsonl");
    std::fs::write(&input, &json).unwrap();
    let passthrough = plugin_path("passthrough");
    let exec = ok(
        &scene,
        &[
            "exec",
            passthrough.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
    );
    let outcomes = json_lines(&exec);
    assert_eq!(outcomes.len(), 5, "{exec}");
    assert!(outcomes.iter().all(|o| o["ok"] == true), "{exec}");

    // A record someone else wrote to the DLQ.
    let mut producer = TestProducer::new(&bootstrap);
    producer.send_with_headers("orders-dlq", None, Some(b"hello"), &[("x", "1")]);
    let foreign_at = producer.flush()[0].offset;
    assert_eq!(foreign_at, 5);
    let listed = sluice_dlq(&scene, "list", path, &[]);
    assert!(
        listed
            .contains("orders-dlq/0/5  foreign  (no `sluice.error.kind` header)  value=\"hello\""),
        "{listed}"
    );
    assert!(listed.contains("by kind: foreign 1, invalid 5"), "{listed}");

    // A redrive with the plugin still broken: each fails again, once.
    let again = sluice_dlq(&scene, "redrive", path, &[]);
    assert_eq!(
        again
            .matches("failed again -> invalid (attempts 2)")
            .count(),
        5,
        "{again}"
    );
    assert!(
        again.contains("orders-dlq/0/5: foreign, skipped"),
        "{again}"
    );
    assert!(
        again.ends_with(
            "group sluice-redrive-orders: read 6, selected 5, redriven 0, outputs 0, \
             failed again 5, passed over 0, foreign 1\n"
        ),
        "{again}"
    );
    assert_eq!(committed(&bootstrap), BTreeMap::from([(0, Some(6))]));
    let dlq = read(&bootstrap, "orders-dlq", 11);
    assert_eq!(dlq.len(), 11, "5 + foreign + 5 again");
    for (i, record) in dlq[6..].iter().enumerate() {
        assert_eq!(record.header("sluice.attempts"), Some("2"), "{record:?}");
        assert_eq!(record.header("sluice.error.kind"), Some("invalid"));
        assert_eq!(record.header("sluice.plugin"), Some("order-enrich"));
        assert_eq!(
            record.header("sluice.redriven.from"),
            Some(format!("orders-dlq/0/{i}").as_str())
        );
        // The envelope of the original event, not of the first dead letter.
        assert_eq!(
            record
                .headers
                .iter()
                .filter(|(k, _)| k == "sluice.error.kind")
                .count(),
            1
        );
        assert_eq!(record.header("sluice.source.topic"), Some("orders"));
        assert_eq!(record.value, dlq[i].value);
    }

    // The fixed plugin is deployed: the pipeline file now names it.
    std::fs::write(&file, config(&scene, "passthrough", "orders-dlq")).unwrap();
    let dry = sluice_dlq(&scene, "redrive", path, &["--dry-run"]);
    let dry_lines: Vec<&str> = dry.lines().collect();
    assert_eq!(dry_lines.len(), 6, "{dry}");
    for (i, line) in dry_lines[..5].iter().enumerate() {
        let outcome: Value = serde_json::from_str(line).expect("an exec outcome line");
        assert_eq!(outcome["ok"], true, "{line}");
        assert_eq!(outcome["dlq"], format!("orders-dlq/0/{}", 6 + i));
        assert_eq!(outcome["outputs"].as_array().map(Vec::len), Some(1));
    }
    assert!(
        dry_lines[5].starts_with("dry run, nothing written;"),
        "{dry}"
    );
    assert_eq!(
        committed(&bootstrap),
        BTreeMap::from([(0, Some(6))]),
        "dry run committed"
    );
    assert_eq!(
        read(&bootstrap, "orders-enriched", orders.len()).len(),
        orders.len()
    );

    let redriven = sluice_dlq(&scene, "redrive", path, &[]);
    assert_eq!(
        redriven.matches("redriven -> 1 outputs").count(),
        5,
        "{redriven}"
    );
    assert!(
        redriven.ends_with(
            "read 5, selected 5, redriven 5, outputs 5, failed again 0, passed over 0, foreign 0\n"
        ),
        "{redriven}"
    );
    assert_eq!(committed(&bootstrap), BTreeMap::from([(0, Some(11))]));
    let results = read(&bootstrap, "orders-enriched", orders.len() + 5);
    assert_eq!(results.len(), orders.len() + 5);
    let mut from: Vec<String> = results
        .iter()
        .filter_map(|r| r.header("sluice.redriven.from").map(str::to_owned))
        .collect();
    from.sort();
    let mut want: Vec<String> = (6..11).map(|o| format!("orders-dlq/0/{o}")).collect();
    want.sort();
    assert_eq!(from, want);
    for r in results
        .iter()
        .filter(|r| r.header("sluice.redriven.from").is_some())
    {
        assert_eq!(r.header("sluice.plugin"), Some("passthrough"), "{r:?}");
        assert!(r.header("sluice.error.kind").is_none(), "{r:?}");
        assert!(bad_values.contains(&r.value.as_deref().unwrap()), "{r:?}");
    }

    // Nothing left to redrive.
    let nothing = sluice_dlq(&scene, "redrive", path, &[]);
    assert!(
        nothing.starts_with("group sluice-redrive-orders: read 0, selected 0"),
        "{nothing}"
    );
    assert_eq!(
        read(&bootstrap, "orders-enriched", orders.len() + 5).len(),
        orders.len() + 5
    );
    assert_eq!(read(&bootstrap, "orders-dlq", 11).len(), 11);
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let scene = Scene::new();
    scene.create_topics(&[("orders", 1), ("orders-dlq", 1)]);
    let file = scene.write_config("sluice.toml", &config(&scene, "order-enrich", "orders-dlq"));
    let missing = scene.write_config(
        "missing.toml",
        &config(&scene, "order-enrich", "no-such-dlq"),
    );
    let embedded = scene.write_config(
        "embedded.toml",
        &config(&scene, "order-enrich", "orders-dlq").replace(
            &format!("brokers = \"{}\"", scene.bootstrap()),
            "brokers = \"embedded\"",
        ),
    );
    let (path, missing, embedded) = (
        file.to_str().unwrap(),
        missing.to_str().unwrap(),
        embedded.to_str().unwrap(),
    );
    // (command, file, pipeline, more arguments, what the error says)
    let cases: [(&str, &str, &str, &[&str], &str); 7] = [
        (
            "list",
            path,
            "nope",
            &[],
            "no pipeline `nope` (its pipelines: orders)",
        ),
        (
            "redrive",
            path,
            "orders",
            &["--since", "yesterday"],
            "`yesterday` is not a TIME: expected an RFC 3339 time",
        ),
        (
            "list",
            path,
            "orders",
            &["--kind", "oops"],
            "`oops` is not a failure kind",
        ),
        (
            "list",
            missing,
            "orders",
            &[],
            "the DLQ topic `no-such-dlq` of pipeline `orders` does not exist",
        ),
        ("redrive", missing, "orders", &[], "`no-such-dlq`"),
        ("list", embedded, "orders", &[], "\"embedded\""),
        ("redrive", embedded, "orders", &[], "\"embedded\""),
    ];
    for (command, file, pipeline, more, says) in cases {
        let mut args = vec!["dlq", command, file, "--pipeline", pipeline];
        args.extend_from_slice(more);
        let err = fails(&scene, &args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
