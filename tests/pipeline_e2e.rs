//! `sluice run` end to end against a real Kafka-compatible broker (tansu):
//! the tutorial pipeline, a kill -9 in the middle of a stream, a chain of two
//! plugins, two processes in one consumer group, interop with Python's
//! confluent-kafka, bad configs, outputs to topics the pipeline does not
//! allow, poison events, and `sluice demo` with `KAFKA_BROKERS` set.
//!
//! Every test starts its own broker and its own `sluice` processes, and
//! stops them on the way out, also when it fails (the handles' `Drop`).
//! The plugins must be built (`scripts/build-plugins`); tansu and the Python
//! packages come from `scripts/setup`.
//!
//!     cargo test --release -p sluice --test e2e pipeline_e2e::

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use sluice_testkit::kafka::{self, Delivered, Reader, Record, TestProducer};
use sluice_testkit::sluice::{
    Scene, SluiceProcess, TIMEOUT, digest_of_file, plugin_path, plugins_dir, repo_dir,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `sha256:<hex>` of a plugin file, as the DLQ envelope names it.
fn digest_of(plugin: &str) -> String {
    digest_of_file(&plugin_path(plugin))
}

/// The tutorial's orders: `n` orders for 10 customers, as (key, value).
fn tutorial_orders(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| sluice::demo::order(i, 10, 1_732_400_000.5))
        .collect()
}

/// `sluice::demo::MALFORMED` as owned (key, value) pairs.
fn malformed() -> Vec<(String, String)> {
    sluice::demo::MALFORMED
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The tier order-enrich must give an amount (default thresholds).
fn tier_of(amount: f64) -> &'static str {
    if amount < 50.0 {
        "bronze"
    } else if amount < 100.0 {
        "silver"
    } else {
        "gold"
    }
}

/// What order-enrich must make of an order value.
fn enriched(order: &str) -> Value {
    let mut value: Value = serde_json::from_str(order).expect("order JSON");
    let amount = value["amount"].as_f64().expect("amount");
    value["tier"] = tier_of(amount).into();
    value["amount_cents"] = ((amount * 100.0).round() as i64).into();
    value
}

/// The orders by their order id.
fn by_order_id(orders: &[(String, String)]) -> HashMap<String, &(String, String)> {
    orders
        .iter()
        .map(|o| {
            let v: Value = serde_json::from_str(&o.1).unwrap();
            (v["order_id"].as_str().unwrap().to_owned(), o)
        })
        .collect()
}

/// How often each value of `f` occurs among `records`.
fn tally<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    f: impl Fn(&Record) -> String,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(f(r)).or_default() += 1;
    }
    counts
}

/// Each of `expected` exactly once, nothing else.
fn exactly_once(expected: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    expected.into_iter().map(|k| (k, 1)).collect()
}

fn order_id(r: &Record) -> String {
    r.json()["order_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no order_id: {r:?}"))
        .to_owned()
}

fn key_of(r: &Record) -> String {
    r.key.clone().unwrap_or_default()
}

/// Asserts the documented envelope of a dead letter of `source`, produced
/// from the input record at `at`.
fn assert_envelope(
    dl: &Record,
    kind: &str,
    pipeline: &str,
    plugin: &str,
    source: &str,
    at: Delivered,
) {
    let h = |name: &str| {
        dl.header(name)
            .unwrap_or_else(|| panic!("dead letter without `{name}`: {dl:?}"))
    };
    assert_eq!(h("sluice.error.kind"), kind, "{dl:?}");
    assert!(!h("sluice.error.message").is_empty(), "{dl:?}");
    assert_eq!(h("sluice.pipeline"), pipeline, "{dl:?}");
    assert_eq!(h("sluice.plugin"), plugin, "{dl:?}");
    assert_eq!(h("sluice.plugin.digest"), digest_of(plugin), "{dl:?}");
    assert_eq!(h("sluice.source.topic"), source, "{dl:?}");
    assert_eq!(
        h("sluice.source.partition"),
        at.partition.to_string(),
        "{dl:?}"
    );
    assert_eq!(h("sluice.source.offset"), at.offset.to_string(), "{dl:?}");
    let attempts: u32 = h("sluice.attempts")
        .parse()
        .unwrap_or_else(|e| panic!("sluice.attempts is not a number ({e}): {dl:?}"));
    if kind == "invalid" || kind == "output-rejected" {
        // Permanent failures are not retried.
        assert_eq!(attempts, 1, "{dl:?}");
    } else {
        assert!(attempts >= 1, "{dl:?}");
    }
}

/// The dead letter keyed `key`.
fn dead_letter<'a>(dead: &'a [Record], key: &str) -> &'a Record {
    dead.iter()
        .find(|d| d.key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("no dead letter keyed `{key}`"))
}

/// Asserts that `dead` holds each of the malformed orders `bad` exactly
/// once, as an `invalid` of order-enrich in `pipeline` whose envelope points
/// at where it was `delivered` (`delivered[j]` for `bad[j]`).
fn assert_malformed_dead_lettered(
    dead: &[Record],
    bad: &[(String, String)],
    pipeline: &str,
    delivered: &[Delivered],
) {
    assert_malformed_dead_lettered_by(dead, bad, pipeline, "order-enrich", delivered);
}

/// [`assert_malformed_dead_lettered`] by `plugin`.
fn assert_malformed_dead_lettered_by(
    dead: &[Record],
    bad: &[(String, String)],
    pipeline: &str,
    plugin: &str,
    delivered: &[Delivered],
) {
    assert_eq!(
        tally(dead, key_of),
        exactly_once(bad.iter().map(|(k, _)| k.clone())),
        "DLQ"
    );
    for ((key, _), at) in bad.iter().zip(delivered) {
        let dl = dead_letter(dead, key);
        assert_envelope(dl, "invalid", pipeline, plugin, "orders", *at);
    }
}

/// Asserts that `group` committed, on every partition of `topic`, the end
/// of what was `delivered` there (partitions that got nothing may have no
/// commit).
fn assert_committed_all(bootstrap: &str, group: &str, topic: &str, delivered: &[Delivered]) {
    let ends = kafka::ends(delivered);
    let committed = kafka::committed(bootstrap, group, topic);
    for (partition, offset) in &committed {
        let want = ends.get(partition).copied();
        match want {
            Some(end) => assert_eq!(
                *offset,
                Some(end),
                "group `{group}` committed {offset:?} on {topic}/{partition}, expected {end} \
                 (all: {committed:?}, ends: {ends:?})"
            ),
            None => assert!(
                offset.is_none_or(|o| o == 0),
                "group `{group}` committed {offset:?} on empty {topic}/{partition}"
            ),
        }
    }
    for partition in ends.keys() {
        assert!(
            committed.contains_key(partition),
            "no committed offset for {topic}/{partition}: {committed:?}"
        );
    }
}

/// Writes `<name>.toml`: the `[kafka]` head with `plugins.dir` where
/// `plugin` is, and a pipeline `name` (group `e2e-<name>`) with that one
/// plugin and `extra` lines; returns its path.
fn single_plugin_config(
    scene: &Scene,
    name: &str,
    input: &str,
    plugin: &str,
    output: &str,
    dlq: &str,
    extra: &str,
) -> PathBuf {
    let path = plugin_path(plugin);
    let plugins = path.parent().expect("the plugin's directory");
    scene.write_config(
        &format!("{name}.toml"),
        &format!(
            r#"{}
[[pipeline]]
name = "{name}"
inputs = ["{input}"]
plugin = "{plugin}"
output = "{output}"
dlq = "{dlq}"
group_id = "e2e-{name}"
{extra}
"#,
            scene.kafka_toml_with(plugins)
        ),
    )
}

/// Reads until `count` records in all have landed, then until nothing comes
/// for a second (so a duplicate would show up), and stops `run`, which must
/// exit successfully.
fn land_then_stop(reader: &mut Reader, count: usize, run: &mut SluiceProcess) {
    assert!(
        reader.wait_count(count, TIMEOUT),
        "only {} of {count} records landed\n{}",
        reader.records().len(),
        run.describe()
    );
    reader.settle(Duration::from_secs(1), Duration::from_secs(10));
    run.stop();
}

fn assert_no_panic(text: &str) {
    assert!(!text.contains("panicked"), "sluice panicked:\n{text}");
}

// ---------------------------------------------------------------------------
// 1. The tutorial scenario
// ---------------------------------------------------------------------------

/// The tutorial through `plugin`, an order-enrich: every order enriched
/// once, the malformed ones dead-lettered by it, everything committed.
fn tutorial_through(plugin: &str) {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("orders", 3), ("orders-enriched", 3), ("orders-dlq", 1)]);
    let orders = tutorial_orders(40);
    let bad = malformed();
    let delivered = kafka::produce(
        &bootstrap,
        "orders",
        &[orders.clone(), bad.clone()].concat(),
    );
    let name = plugin.replace('-', "_");
    let config = single_plugin_config(
        &scene,
        &name,
        "orders",
        plugin,
        "orders-enriched",
        "orders-dlq",
        "batch_size = 16",
    );
    let mut run = scene.start(&config, &name);
    let mut reader = Reader::new(&bootstrap, &["orders-enriched", "orders-dlq"]);
    land_then_stop(&mut reader, orders.len() + bad.len(), &mut run);
    assert_no_panic(&run.stderr());

    let results = reader.of("orders-enriched");
    assert_eq!(
        tally(&results, order_id),
        exactly_once(by_order_id(&orders).into_keys()),
        "{plugin}: results"
    );
    let originals = by_order_id(&orders);
    for r in &results {
        let (key, value) = originals[&order_id(r)];
        // By value: JavaScript writes `13` for Rust's `13.0`.
        let want = kafka::numbers_as_floats(enriched(value));
        assert_eq!(r.json_value(), want, "{plugin}: {r:?}");
        assert_eq!(r.key.as_deref(), Some(key.as_str()), "{plugin}: {r:?}");
        assert_eq!(r.header("sluice.plugin"), Some(plugin), "{plugin}: {r:?}");
    }
    let dead = reader.of("orders-dlq");
    assert_malformed_dead_lettered_by(&dead, &bad, &name, plugin, &delivered[orders.len()..]);
    assert_committed_all(&bootstrap, &format!("e2e-{name}"), "orders", &delivered);
}

#[test]
fn the_tutorial_runs_through_the_javascript_order_enrich() {
    tutorial_through("order-enrich-js");
}

#[test]
fn the_tutorial_runs_through_the_python_order_enrich() {
    tutorial_through("order-enrich-py");
}

#[test]
fn tutorial_orders_are_enriched_or_dead_lettered_once_and_committed() {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("orders", 3), ("orders-enriched", 3), ("orders-dlq", 1)]);
    let config = single_plugin_config(
        &scene,
        "tutorial",
        "orders",
        "order-enrich",
        "orders-enriched",
        "orders-dlq",
        "batch_size = 16\nworkers = 2",
    );

    let orders = tutorial_orders(100);
    let bad = malformed();
    let all: Vec<(String, String)> = orders.iter().chain(&bad).cloned().collect();
    let delivered = kafka::produce(&bootstrap, "orders", &all);

    let mut run = scene.start(&config, "sluice");
    let mut reader = Reader::new(&bootstrap, &["orders-enriched", "orders-dlq"]);
    land_then_stop(&mut reader, all.len(), &mut run);
    assert_no_panic(&run.stderr());

    let results = reader.of("orders-enriched");
    let dead = reader.of("orders-dlq");

    // Every good order exactly once in the result topic (every malformed
    // one exactly once in the DLQ: below).
    assert_eq!(
        tally(&results, order_id),
        exactly_once((0..100).map(|i| format!("ORD-{i:04}"))),
        "result topic"
    );

    // Enriched content: the order, its tier and cents; the customer key;
    // the producing plugin named in the headers.
    let inputs = by_order_id(&orders);
    let digest = digest_of("order-enrich");
    let mut tiers: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let (key, value) = inputs[&order_id(r)];
        assert_eq!(r.json(), enriched(value), "{r:?}");
        assert_eq!(r.key.as_deref(), Some(key.as_str()), "{r:?}");
        assert_eq!(r.header("sluice.plugin"), Some("order-enrich"), "{r:?}");
        assert_eq!(r.header("sluice.plugin.digest"), Some(digest.as_str()));
        *tiers
            .entry(r.json()["tier"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // amount = 10 + 1.5 i: bronze below 50 (i <= 26), gold from 100 (i >= 60).
    let want: BTreeMap<String, usize> = [("bronze", 27), ("silver", 33), ("gold", 40)]
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    assert_eq!(tiers, want, "tiers");

    // Per-customer order: one partition per customer, order ids strictly
    // increasing with the offset.
    let mut by_customer: BTreeMap<String, Vec<(i32, i64, String)>> = BTreeMap::new();
    for r in &results {
        by_customer
            .entry(r.key.clone().unwrap())
            .or_default()
            .push((r.partition, r.offset, order_id(r)));
    }
    assert_eq!(by_customer.len(), 10, "customers");
    for (customer, mut list) in by_customer {
        let partitions: BTreeSet<i32> = list.iter().map(|x| x.0).collect();
        assert_eq!(partitions.len(), 1, "{customer} spread over {partitions:?}");
        list.sort_by_key(|x| x.1);
        let ids: Vec<&str> = list.iter().map(|x| x.2.as_str()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{customer}: orders out of order: {ids:?}"
        );
    }

    // The DLQ envelope, pointing at where each malformed record really was.
    assert_malformed_dead_lettered(&dead, &bad, "tutorial", &delivered[orders.len()..]);
    for (key, value) in &bad {
        let dl = dead_letter(&dead, key);
        assert_eq!(dl.value.as_deref(), Some(value.as_str()), "original value");
    }
    let messages: Vec<&str> = dead
        .iter()
        .map(|d| d.header("sluice.error.message").unwrap())
        .collect();
    for needle in [
        "not valid JSON",
        "missing field `amount`",
        "must not be negative",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "no DLQ message mentions `{needle}`: {messages:?}"
        );
    }

    // The graceful stop committed every input...
    assert_committed_all(&bootstrap, "e2e-tutorial", "orders", &delivered);

    // ...so a second run takes up exactly where the first stopped.
    let more: Vec<(String, String)> = tutorial_orders(110).split_off(100);
    let mut delivered = delivered;
    delivered.extend(kafka::produce(&bootstrap, "orders", &more));
    let mut again = scene.start(&config, "sluice-again");
    land_then_stop(&mut reader, all.len() + more.len(), &mut again);
    assert_eq!(
        tally(&reader.of("orders-enriched"), order_id),
        exactly_once((0..110).map(|i| format!("ORD-{i:04}"))),
        "result topic after the second run"
    );
    assert_eq!(
        reader.of("orders-dlq").len(),
        bad.len(),
        "DLQ after the second run"
    );
    assert_committed_all(&bootstrap, "e2e-tutorial", "orders", &delivered);
}

// ---------------------------------------------------------------------------
// 2. kill -9 in the middle of a stream
// ---------------------------------------------------------------------------

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    const EVENTS: usize = 20_000;
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("events", 4), ("events-out", 4), ("events-dlq", 1)]);
    let config = single_plugin_config(
        &scene,
        "kill",
        "events",
        "passthrough",
        "events-out",
        "events-dlq",
        "batch_size = 128\nworkers = 2",
    );

    let mut first = scene.start(&config, "first");
    first.wait_assigned("kill", 4);

    // The stream: 20,000 events over about four seconds.
    let stream_bootstrap = bootstrap.clone();
    let stream = std::thread::spawn(move || {
        let mut producer = TestProducer::new(&stream_bootstrap);
        for i in 0..EVENTS {
            let id = format!("ev-{i:05}");
            producer.send("events", Some(id.as_bytes()), Some(id.as_bytes()));
            if i % 250 == 249 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        producer.flush()
    });

    // Kill once a third of the outputs have landed.
    let mut reader = Reader::new(&bootstrap, &["events-out", "events-dlq"]);
    let landed = reader.read_until(TIMEOUT, |r| r.len() >= EVENTS / 3);
    first.kill9();
    let at_kill = reader.records().len();
    assert!(
        landed,
        "only {at_kill} outputs before the kill\n{}",
        first.describe()
    );
    let delivered = stream.join().expect("the producer thread");
    assert!(
        at_kill < EVENTS,
        "all {EVENTS} outputs had landed before the kill: nothing was tested"
    );

    let mut second = scene.start(&config, "second");
    let all_there = reader.wait_distinct_values(EVENTS, TIMEOUT);
    reader.settle(Duration::from_secs(1), Duration::from_secs(10));
    let status = second.terminate();

    let outputs = reader.of("events-out");
    let dead = reader.of("events-dlq");
    let unique: BTreeSet<&str> = outputs.iter().filter_map(|r| r.value.as_deref()).collect();
    let duplicates = outputs.len() - unique.len();
    println!(
        "kill -9: {EVENTS} events, {at_kill} outputs when killed, {} outputs in all, {} unique, \
         {duplicates} duplicates",
        outputs.len(),
        unique.len()
    );
    assert!(
        all_there,
        "only {} of {EVENTS} events came out after the restart\n{}",
        unique.len(),
        second.describe()
    );
    assert!(
        dead.is_empty(),
        "dead letters: {:?}",
        &dead[..dead.len().min(3)]
    );
    let expected: BTreeSet<String> = (0..EVENTS).map(|i| format!("ev-{i:05}")).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !unique.contains(id.as_str()))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing events: {missing:?}");
    assert_eq!(unique.len(), EVENTS, "unexpected values in the output");
    assert!(
        status.success(),
        "second run: {status}\n{}",
        second.describe()
    );
    assert_no_panic(&second.stderr());
    assert_committed_all(&bootstrap, "e2e-kill", "events", &delivered);
}

// ---------------------------------------------------------------------------
// 3. A chain of two plugins
// ---------------------------------------------------------------------------

#[test]
fn chain_enriches_then_routes_and_names_the_failing_step() {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[
        ("orders", 3),
        ("orders-routed", 3),
        ("vip-orders", 2),
        ("orders-dlq", 1),
    ]);
    let config = scene.write_config(
        "chain.toml",
        &format!(
            r#"{}
[[pipeline]]
name = "chain"
inputs = ["orders"]
output = "orders-routed"
dlq = "orders-dlq"
allowed_outputs = ["vip-orders"]
group_id = "e2e-chain"
batch_size = 32

[[pipeline.chain]]
plugin = "order-enrich"
[pipeline.chain.config]
silver_from = 50
gold_from = 100

[[pipeline.chain]]
plugin = "router"
[pipeline.chain.config]
field = "tier"
routes = "gold:vip-orders"
default = "orders-routed"
"#,
            scene.kafka_toml()
        ),
    );

    let orders = tutorial_orders(100);
    let bad = malformed();
    let all: Vec<(String, String)> = orders.iter().chain(&bad).cloned().collect();
    let delivered = kafka::produce(&bootstrap, "orders", &all);

    let mut run = scene.start(&config, "sluice");
    let mut reader = Reader::new(&bootstrap, &["orders-routed", "vip-orders", "orders-dlq"]);
    land_then_stop(&mut reader, all.len(), &mut run);

    let vip = reader.of("vip-orders");
    let routed = reader.of("orders-routed");
    let dead = reader.of("orders-dlq");
    // amount = 10 + 1.5 i is gold from i = 60 on.
    assert_eq!(
        tally(&vip, order_id),
        exactly_once((60..100).map(|i| format!("ORD-{i:04}"))),
        "vip-orders"
    );
    assert_eq!(
        tally(&routed, order_id),
        exactly_once((0..60).map(|i| format!("ORD-{i:04}"))),
        "orders-routed"
    );
    let by_id = by_order_id(&orders);
    for r in vip.iter().chain(&routed) {
        // The enriched order, unchanged by the router; made by the last step.
        assert_eq!(r.json(), enriched(&by_id[&order_id(r)].1), "{r:?}");
        assert_eq!(r.header("sluice.plugin"), Some("router"), "{r:?}");
    }

    // The first step failed, so the envelope names order-enrich, not the
    // chain's last plugin.
    assert_malformed_dead_lettered(&dead, &bad, "chain", &delivered[orders.len()..]);
    assert_committed_all(&bootstrap, "e2e-chain", "orders", &delivered);
}

// ---------------------------------------------------------------------------
// 4. Scale-out: two processes, one group
// ---------------------------------------------------------------------------

#[test]
fn two_processes_share_the_partitions_and_process_everything() {
    const EVENTS: usize = 2_000;
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("events", 4), ("events-out", 4), ("events-dlq", 1)]);
    let config = single_plugin_config(
        &scene,
        "scale",
        "events",
        "hostile",
        "events-out",
        "events-dlq",
        "batch_size = 64",
    );

    let mut a = scene.start(&config, "a");
    a.wait_assigned("scale", 4);
    let mut b = scene.start(&config, "b");
    // Let the cooperative rebalance settle: `a` gave up what `b` got.
    b.wait_status("b owning partitions", |s| s.assigned("scale") > 0);
    a.wait_status("a and b sharing the 4 partitions", |s| {
        let b_owns = b.status().map_or(0, |t| t.assigned("scale"));
        s.revocations("scale") > 0 && s.assigned("scale") + b_owns == 4
    });

    let records: Vec<(String, String)> = (0..EVENTS)
        .map(|i| (format!("k-{i:05}"), format!("ev-{i:05}")))
        .collect();
    kafka::produce(&bootstrap, "events", &records);

    let mut reader = Reader::new(&bootstrap, &["events-out", "events-dlq"]);
    assert!(
        reader.wait_distinct_values(EVENTS, TIMEOUT),
        "only {} outputs\n{}\n{}",
        reader.records().len(),
        a.describe(),
        b.describe()
    );
    // What each process processed, by its own count.
    let events = |run: &SluiceProcess| {
        let status = run.status().expect("a status");
        status
            .pipeline("scale")
            .map_or(0, |p| p["events"].as_u64().unwrap_or(0))
    };
    let (by_a, by_b) = (events(&a), events(&b));
    a.stop();
    b.stop();

    let expected: BTreeSet<String> = (0..EVENTS).map(|i| format!("ev-{i:05}")).collect();
    let outputs: BTreeSet<String> = reader
        .of("events-out")
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    assert_eq!(outputs, expected, "outputs");
    assert!(reader.of("events-dlq").is_empty(), "dead letters");

    // Both processes held partitions and processed events.
    println!("scale-out: process a processed {by_a} events, process b {by_b}");
    assert!(by_a > 0, "process a processed nothing\n{}", a.describe());
    assert!(by_b > 0, "process b processed nothing\n{}", b.describe());
    assert!(
        by_a + by_b >= EVENTS as u64,
        "together they processed {} of {EVENTS} events",
        by_a + by_b
    );
}

// ---------------------------------------------------------------------------
// 5. Interop with the tutorial's clients: Python confluent-kafka, Node kafkajs
// ---------------------------------------------------------------------------

/// One of the tutorial's example clients, `examples/<dir>/producer.<ext>`
/// and `consumer.<ext>`, run by `program`. Both have the same flags and the
/// consumers print the same JSON lines.
struct ExampleClient {
    program: &'static str,
    dir: &'static str,
    ext: &'static str,
    /// Arguments to `program` that succeed when its Kafka client is there.
    probe: &'static [&'static str],
}

const PYTHON: ExampleClient = ExampleClient {
    program: "python3",
    dir: "python",
    ext: "py",
    probe: &["-c", "import confluent_kafka"],
};

const NODE: ExampleClient = ExampleClient {
    program: "node",
    dir: "node",
    ext: "js",
    probe: &["--input-type=module", "-e", "await import('kafkajs')"],
};

impl ExampleClient {
    fn command(&self) -> Command {
        let mut command = Command::new(self.program);
        command.current_dir(repo_dir().join("examples").join(self.dir));
        command
    }

    fn assert_installed(&self) {
        let ok = self
            .command()
            .args(self.probe)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} with the examples/{} client is needed: run scripts/setup",
            self.program, self.dir
        );
    }

    /// Runs `<script>.<ext> <args>` to its end, asserts it succeeded, and
    /// returns its stdout lines parsed as records, and its stderr.
    fn run(&self, script: &str, args: &[&str]) -> (Vec<Record>, String) {
        let file = format!("{script}.{}", self.ext);
        let out = self
            .command()
            .arg(&file)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {} {file}: {e}", self.program));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{file}: {}\n{stderr}", out.status);
        let records = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| client_record(l).unwrap_or_else(|e| panic!("{file} printed {l:?}: {e}")))
            .collect();
        (records, stderr)
    }

    /// Everything on `topic`, read from the beginning by the consumer.
    fn consume(&self, bootstrap: &str, topic: &str) -> (Vec<Record>, String) {
        self.run(
            "consumer",
            &[
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--idle-secs",
                "3",
                "--timeout",
                "60",
            ],
        )
    }
}

/// A record from one JSON line of an example consumer: `topic`,
/// `partition`, `offset` (numbers), `key`, `value` (text or null) and
/// `headers` (an object of text values).
fn client_record(line: &str) -> Result<Record, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let text = |field: &str| match &v[field] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(format!("{field} is {other}, not text or null")),
    };
    let int = |field: &str| {
        v[field]
            .as_i64()
            .ok_or_else(|| format!("{field} is not an integer"))
    };
    let headers = v["headers"]
        .as_object()
        .ok_or("headers is not an object")?
        .iter()
        .map(|(k, h)| (k.clone(), h.as_str().unwrap_or_default().to_owned()))
        .collect();
    Ok(Record {
        topic: text("topic")?.ok_or("no topic")?,
        partition: int("partition")?
            .try_into()
            .map_err(|e| format!("partition: {e}"))?,
        offset: int("offset")?,
        key: text("key")?,
        value: text("value")?,
        headers,
    })
}

/// The tutorial with `client`'s producer and consumer on the outside:
/// orders produced by the client are enriched by `sluice run` (writing
/// LZ4-compressed records), and the client's consumer reads the results and
/// the dead letters with their envelope headers.
fn producer_and_consumer_interoperate(client: &ExampleClient) {
    client.assert_installed();
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("orders", 3), ("orders-enriched", 3), ("orders-dlq", 1)]);
    let config = single_plugin_config(
        &scene,
        "interop",
        "orders",
        "order-enrich",
        "orders-enriched",
        "orders-dlq",
        "",
    );
    // Sluice writes LZ4, as in config/demo.toml: the clients must read it.
    let toml = std::fs::read_to_string(&config).expect("read the config");
    let lz4 = toml.replacen(
        "[kafka.producer]\n",
        "[kafka.producer]\n\"compression.type\" = \"lz4\"\n",
        1,
    );
    assert_ne!(lz4, toml, "no [kafka.producer] table to add to");
    std::fs::write(&config, lz4).expect("write the config");
    let mut run = scene.start(&config, "sluice");

    client.run(
        "producer",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "orders",
            "--count",
            "50",
            "--malformed",
            "2",
        ],
    );
    let mut reader = Reader::new(&bootstrap, &["orders-enriched", "orders-dlq"]);
    land_then_stop(&mut reader, 52, &mut run);

    let (results, log) = client.consume(&bootstrap, "orders-enriched");
    let want = (0..50).map(|i| format!("ORD-{i:04}"));
    assert_eq!(tally(&results, order_id), exactly_once(want), "{log}");
    for r in &results {
        let order = r.json();
        let amount = order["amount"].as_f64().expect("amount");
        assert_eq!(r.topic, "orders-enriched", "{r:?}");
        assert_eq!(order["tier"], tier_of(amount), "{r:?}");
        assert_eq!(r.key.as_deref(), order["customer_id"].as_str(), "{r:?}");
        assert_eq!(r.header("sluice.plugin"), Some("order-enrich"), "{r:?}");
    }

    let (dead, log) = client.consume(&bootstrap, "orders-dlq");
    assert_eq!(
        tally(&dead, key_of),
        exactly_once(["bad-0".to_owned(), "bad-1".to_owned()]),
        "DLQ\n{log}"
    );
    for dl in &dead {
        assert_eq!(dl.header("sluice.error.kind"), Some("invalid"), "{dl:?}");
        assert_eq!(dl.header("sluice.plugin"), Some("order-enrich"), "{dl:?}");
        assert_eq!(dl.header("sluice.source.topic"), Some("orders"), "{dl:?}");
    }
    // The original value travels in the dead letter.
    assert_eq!(
        dead_letter(&dead, "bad-0").value.as_deref(),
        Some("not json")
    );
}

#[test]
fn python_producer_and_consumer_interoperate() {
    producer_and_consumer_interoperate(&PYTHON);
}

#[test]
fn node_producer_and_consumer_interoperate() {
    producer_and_consumer_interoperate(&NODE);
}

// ---------------------------------------------------------------------------
// 6. Bad configs and plugins
// ---------------------------------------------------------------------------

/// A broken pipeline file and what its error must say.
struct BadConfig {
    name: &'static str,
    group: &'static str,
    text: String,
    /// Fragments the message must contain; `{path}` is the file's path.
    expect: Vec<String>,
}

#[test]
fn bad_configs_fail_check_and_run_clearly_and_consume_nothing() {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("orders", 3), ("orders-enriched", 3), ("orders-dlq", 1)]);
    // Something to consume, were anything to start.
    let delivered = kafka::produce(&bootstrap, "orders", &tutorial_orders(20));
    assert_eq!(delivered.len(), 20);

    let kafka = scene.kafka_toml();
    // The pipeline starts on the line after the `[kafka]`/`[plugins]` head.
    let head_lines = kafka.lines().count();
    let plugins = plugins_dir();
    let cases = vec![
        BadConfig {
            name: "syntax",
            group: "e2e-bad-syntax",
            // Line head+6, column 9: a second `=`.
            text: format!(
                "{kafka}[[pipeline]]\nname = \"bad\"\ngroup_id = \"e2e-bad-syntax\"\n\
                 inputs = [\"orders\"]\nplugin = \"order-enrich\"\n\
                 output == \"orders-enriched\"\ndlq = \"orders-dlq\"\n"
            ),
            expect: vec![format!("{{path}}:{}:9: ", head_lines + 6)],
        },
        BadConfig {
            name: "unknown-field",
            group: "e2e-bad-unknown",
            // Line head+8, column 3.
            text: format!(
                "{kafka}[[pipeline]]\nname = \"bad\"\ngroup_id = \"e2e-bad-unknown\"\n\
                 inputs = [\"orders\"]\nplugin = \"order-enrich\"\n\
                 output = \"orders-enriched\"\ndlq = \"orders-dlq\"\n  batch_sise = 10\n"
            ),
            expect: vec![
                format!("{{path}}:{}:3: ", head_lines + 8),
                "unknown field `batch_sise`".to_owned(),
            ],
        },
        BadConfig {
            name: "missing-plugin",
            group: "e2e-bad-missing",
            // Line head+5, column 10: the plugin's name.
            text: format!(
                "{kafka}[[pipeline]]\nname = \"bad\"\ngroup_id = \"e2e-bad-missing\"\n\
                 inputs = [\"orders\"]\nplugin = \"no-such-plugin\"\n\
                 output = \"orders-enriched\"\ndlq = \"orders-dlq\"\n"
            ),
            expect: vec![
                format!("{{path}}:{}:10: ", head_lines + 5),
                "plugin `no-such-plugin` not found".to_owned(),
                plugins.join("no-such-plugin.wasm").display().to_string(),
            ],
        },
        BadConfig {
            // Writing to its own input: the one output rule a file can break
            // (the runtime side is `output_to_a_topic_not_allowed_...`).
            name: "output-loop",
            group: "e2e-bad-loop",
            // Line head+4, column 11: the input that is also an output.
            text: format!(
                "{kafka}[[pipeline]]\nname = \"bad\"\ngroup_id = \"e2e-bad-loop\"\n\
                 inputs = [\"orders\"]\nplugin = \"router\"\n\
                 output = \"orders-enriched\"\ndlq = \"orders-dlq\"\n\
                 allowed_outputs = [\"orders\"]\n"
            ),
            expect: vec![
                format!("{{path}}:{}:11: ", head_lines + 4),
                "input `orders` is also in `allowed_outputs`".to_owned(),
            ],
        },
    ];

    for case in &cases {
        let path = scene.write_config(&format!("{}.toml", case.name), &case.text);
        let path_text = path.display().to_string();
        for command in ["check", "run"] {
            let out = scene.cli(&[command, &path_text], Duration::from_secs(60));
            let what = format!("`sluice {command}` on the {} config", case.name);
            assert!(!out.status.success(), "{what} succeeded\n{}", out.text());
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what}: exit code\n{}",
                out.text()
            );
            assert_no_panic(&out.text());
            for fragment in &case.expect {
                let fragment = fragment.replace("{path}", &path_text);
                assert!(
                    out.stderr.contains(&fragment),
                    "{what}: the error does not contain `{fragment}`\n{}",
                    out.text()
                );
            }
        }
    }

    // Nothing ran: no record was written anywhere...
    let mut reader = Reader::new(&bootstrap, &["orders-enriched", "orders-dlq"]);
    reader.poll_for(Duration::from_secs(2));
    assert_eq!(reader.records(), [], "a bad config wrote records");

    // Nothing joined a group, so nothing was committed.
    for case in &cases {
        let committed = kafka::committed(&bootstrap, case.group, "orders");
        assert!(
            committed.values().all(Option::is_none),
            "group {} committed {committed:?}",
            case.group
        );
    }
}

// ---------------------------------------------------------------------------
// 6b. Outputs to a topic the pipeline does not allow, at run time
// ---------------------------------------------------------------------------

#[test]
fn output_to_a_topic_not_allowed_is_dead_lettered_and_the_rest_flows() {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[
        ("orders", 2),
        ("orders-routed", 2),
        ("vip-orders", 1),
        ("orders-dlq", 1),
    ]);
    // CUST-001's orders are routed to `forbidden-orders`, which is not in
    // `allowed_outputs`.
    let config = scene.write_config(
        "rejected.toml",
        &format!(
            r#"{}
[[pipeline]]
name = "rejected"
inputs = ["orders"]
plugin = "router"
output = "orders-routed"
dlq = "orders-dlq"
allowed_outputs = ["vip-orders"]
group_id = "e2e-rejected"
batch_size = 8

[pipeline.config]
field = "customer_id"
routes = "CUST-000:vip-orders, CUST-001:forbidden-orders"
default = "orders-routed"
"#,
            scene.kafka_toml()
        ),
    );
    let check = scene.cli(
        &["check", &config.display().to_string()],
        Duration::from_secs(60),
    );
    assert!(check.status.success(), "check: {}", check.text());

    let orders = tutorial_orders(30);
    let delivered = kafka::produce(&bootstrap, "orders", &orders);
    let mut run = scene.start(&config, "sluice");
    let mut reader = Reader::new(&bootstrap, &["orders-routed", "vip-orders", "orders-dlq"]);
    land_then_stop(&mut reader, 30, &mut run);

    let ids = |customers: &[usize]| {
        exactly_once(
            (0..30)
                .filter(|i| customers.contains(&(i % 10)))
                .map(|i| format!("ORD-{i:04}")),
        )
    };
    assert_eq!(
        tally(&reader.of("vip-orders"), order_id),
        ids(&[0]),
        "vip-orders"
    );
    assert_eq!(
        tally(&reader.of("orders-routed"), order_id),
        ids(&[2, 3, 4, 5, 6, 7, 8, 9]),
        "orders-routed"
    );
    let dead = reader.of("orders-dlq");
    assert_eq!(tally(&dead, order_id), ids(&[1]), "DLQ");
    for dl in &dead {
        let i: usize = order_id(dl)[4..].parse().unwrap();
        assert_envelope(
            dl,
            "output-rejected",
            "rejected",
            "router",
            "orders",
            delivered[i],
        );
        assert!(
            dl.header("sluice.error.message")
                .unwrap()
                .contains("forbidden-orders"),
            "{dl:?}"
        );
    }
    let topics = scene.broker.topics().expect("list topics");
    assert!(
        !topics.iter().any(|t| t == "forbidden-orders"),
        "something was written to forbidden-orders: {topics:?}"
    );
    assert_committed_all(&bootstrap, "e2e-rejected", "orders", &delivered);
}

// ---------------------------------------------------------------------------
// 7. Poison events
// ---------------------------------------------------------------------------

#[test]
fn poison_events_are_dead_lettered_without_blocking_their_partition() {
    const EVENTS: usize = 200;
    const PANIC: &[usize] = &[0, 17, 61, 133];
    const INVALID: &[usize] = &[42, 60, 150, 199];
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    scene.create_topics(&[("events", 2), ("events-out", 1), ("events-dlq", 1)]);
    let config = single_plugin_config(
        &scene,
        "poison",
        "events",
        "hostile",
        "events-out",
        "events-dlq",
        "batch_size = 16",
    );
    let records: Vec<(String, String)> = (0..EVENTS)
        .map(|i| {
            let value = if PANIC.contains(&i) {
                "panic".to_owned()
            } else if INVALID.contains(&i) {
                "invalid".to_owned()
            } else {
                format!("ev-{i:03}")
            };
            (format!("k-{i:03}"), value)
        })
        .collect();
    let delivered = kafka::produce(&bootstrap, "events", &records);

    let mut run = scene.start(&config, "sluice");
    let mut reader = Reader::new(&bootstrap, &["events-out", "events-dlq"]);
    land_then_stop(&mut reader, EVENTS, &mut run);

    let poison: BTreeSet<usize> = PANIC.iter().chain(INVALID).copied().collect();
    let good = |i: &usize| !poison.contains(i);
    let mut outputs = reader.of("events-out");
    assert_eq!(
        tally(&outputs, key_of),
        exactly_once((0..EVENTS).filter(good).map(|i| format!("k-{i:03}"))),
        "outputs"
    );
    // Per input partition, outputs in input order.
    outputs.sort_by_key(|r| r.offset);
    let index_of = |r: &Record| -> usize { key_of(r)[2..].parse().unwrap() };
    for partition in 0..2 {
        let got: Vec<usize> = outputs
            .iter()
            .map(index_of)
            .filter(|&i| delivered[i].partition == partition)
            .collect();
        let mut want: Vec<usize> = (0..EVENTS)
            .filter(good)
            .filter(|&i| delivered[i].partition == partition)
            .collect();
        want.sort_by_key(|&i| delivered[i].offset);
        assert_eq!(
            got, want,
            "outputs of input partition {partition}, in order"
        );
    }
    for r in &outputs {
        assert_eq!(
            r.value.as_deref(),
            Some(records[index_of(r)].1.as_str()),
            "{r:?}"
        );
    }

    let dead = reader.of("events-dlq");
    assert_eq!(
        tally(&dead, key_of),
        exactly_once(poison.iter().map(|i| format!("k-{i:03}"))),
        "DLQ"
    );
    for dl in &dead {
        let i = index_of(dl);
        let kind = if PANIC.contains(&i) {
            "trap"
        } else {
            "invalid"
        };
        assert_envelope(dl, kind, "poison", "hostile", "events", delivered[i]);
        assert_eq!(dl.value.as_deref(), Some(records[i].1.as_str()));
    }
    assert_committed_all(&bootstrap, "e2e-poison", "events", &delivered);
}

// ---------------------------------------------------------------------------
// 8. `sluice demo` on a real broker
// ---------------------------------------------------------------------------

/// `KAFKA_BROKERS=<tansu> sluice demo`: on a broker where nothing exists
/// yet, the demo's pipeline creates its topics with the configured three
/// partitions (tansu's auto-creation would give four, and an output topic
/// only after the first output), the demo produces once the pipeline owns
/// them, and every order lands. A second run on the same broker counts only
/// its own records.
#[test]
fn the_demo_runs_against_a_real_broker() {
    let scene = Scene::new();
    let bootstrap = scene.bootstrap();
    let demo = || -> (String, String) {
        let out = Command::new(sluice_testkit::sluice::binary())
            .current_dir(repo_dir())
            .env("KAFKA_BROKERS", &bootstrap)
            .env_remove("SLUICE_DEMO_PLUGIN")
            .env_remove("RUST_LOG")
            .env("SLUICE_LOG", "info")
            .args(["demo", "config/demo.toml", "--timeout-secs", "60"])
            .output()
            .expect("sluice demo runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("accounted for: 103 of 103 records (100 results + 3 dead letters)"),
            "{stdout}\n{stderr}"
        );
        assert_eq!(stdout.matches(", in order").count(), 10, "{stdout}");
        assert_eq!(stdout.matches("kind=invalid").count(), 3, "{stdout}");
        assert_no_panic(&stderr);
        (stdout, stderr)
    };

    // The demo created its topics: none existed before.
    assert!(scene.broker.topics().expect("list topics").is_empty());
    let (stdout, _) = demo();
    assert!(
        stdout.contains("pipeline `orders` owns 3 partitions"),
        "{stdout}"
    );
    let mut topics = scene.broker.topics().expect("list topics");
    topics.sort();
    assert_eq!(topics, ["orders", "orders-dlq", "orders-enriched"]);
    let committed = kafka::committed(&bootstrap, "sluice-orders", "orders");
    assert_eq!(
        committed.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2],
        "{committed:?}"
    );
    assert_eq!(
        committed.values().map(|o| o.unwrap_or(0)).sum::<i64>(),
        103,
        "every order committed: {committed:?}"
    );

    // Again on the same broker: the topics are there and stay as they
    // are, and the report is about this run's records only (`demo`
    // checks the counts).
    demo();
    let mut again = scene.broker.topics().expect("list topics");
    again.sort();
    assert_eq!(again, topics);
    let committed = kafka::committed(&bootstrap, "sluice-orders", "orders");
    assert_eq!(
        committed.values().map(|o| o.unwrap_or(0)).sum::<i64>(),
        206,
        "both runs' orders committed: {committed:?}"
    );
}
