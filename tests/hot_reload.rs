//! Hot reload of `sluice run` end to end against a real Kafka-compatible
//! broker (tansu): a plugin swapped in the middle of a stream, broken plugins
//! that must leave the running version alone, config edits that add,
//! break, refuse and remove pipelines while the others keep running, a
//! plugins directory that never goes quiet, and a plugin deployed together
//! with a config edit.
//!
//! Every test has its own broker, its own directory (config in `config/`,
//! plugins copied into `plugins/`, logs at the top) and its own `sluice run`
//! with `--poll-interval-secs 1`. Tests wait on its state (`/api/status`:
//! assigned partitions, plugin digests, the reload history), never on the
//! wording of its log. New plugin versions are deployed the
//! documented way: written under a temporary name in the same directory,
//! then renamed over the old file.
//!
//!     cargo test --release -p sluice --test e2e hot_reload::

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_testkit::kafka::{self, Delivered, Reader, Record, TestProducer};
use sluice_testkit::sluice::{Scene, SluiceProcess, Status, TIMEOUT, digest_of_file, plugin_path};
/// The header `passthrough-v2` adds to every output.
const VERSION_HEADER: &str = "sluice-test-version";

// ---------------------------------------------------------------------------
// Helpers: files and `sluice run` with a quick periodic look
// ---------------------------------------------------------------------------

/// Writes `bytes` to `.NAME.tmp` next to `target`, then renames it over
/// `target`: the documented way to deploy, atomic for the watcher.
fn deploy_bytes(target: &Path, bytes: &[u8]) {
    let name = target.file_name().unwrap().to_string_lossy();
    let tmp = target.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, target)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", tmp.display(), target.display()));
}

/// Deploys a copy of `source` as `target` (temporary name, then rename).
fn deploy(source: &Path, target: &Path) {
    let bytes = std::fs::read(source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    deploy_bytes(target, &bytes);
}

/// A test's world: a broker with its topics and a directory of its own,
/// with `config/sluice.toml` for the pipeline file and `plugins/` with a
/// private copy of `passthrough` (logs stay at the top, outside the
/// directories Sluice watches); and the `passthrough-v2` to deploy.
struct Hot {
    scene: Scene,
    bootstrap: String,
    /// The pipeline file.
    config: PathBuf,
    /// The `[kafka]` and `[plugins]` head of the pipeline file.
    kafka: String,
    /// The test's copy of `passthrough`, and its digest.
    target: PathBuf,
    v1: String,
    /// The `passthrough-v2` fixture, and its digest.
    v2_file: PathBuf,
    v2: String,
}

impl Hot {
    /// Starts a broker with `topics` (name, partitions) and sets up the
    /// directories.
    fn new(topics: &[(&str, u32)]) -> Hot {
        let scene = Scene::new();
        scene.create_topics(topics);
        let config = scene.dir.path().join("config");
        let plugins = scene.dir.path().join("plugins");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::create_dir_all(&plugins).unwrap();
        let target = plugins.join("passthrough.wasm");
        std::fs::copy(plugin_path("passthrough"), &target)
            .unwrap_or_else(|e| panic!("copy plugin passthrough: {e}"));
        let v2_file = plugin_path("passthrough-v2");
        Hot {
            bootstrap: scene.bootstrap(),
            config: config.join("sluice.toml"),
            kafka: scene.kafka_toml_with(&plugins),
            v1: digest_of_file(&target),
            target,
            v2: digest_of_file(&v2_file),
            v2_file,
            scene,
        }
    }

    /// Writes `text` to the pipeline file and starts `sluice run` on it
    /// with `--poll-interval-secs 1`.
    fn start(&self, text: &str) -> SluiceProcess {
        std::fs::write(&self.config, text).unwrap();
        self.scene
            .start_with_args(&self.config, "sluice", &["--poll-interval-secs", "1"])
    }

    /// Replaces the pipeline file with `text` the documented way
    /// (temporary name, rename).
    fn edit_config(&self, text: &str) {
        deploy_bytes(&self.config, text.as_bytes());
    }
}

/// A pipeline section with the `passthrough` plugin.
fn pipeline_toml(name: &str, input: &str, output: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
inputs = ["{input}"]
plugin = "passthrough"
output = "{output}"
dlq = "{name}-dlq"
group_id = "hot-{name}"
batch_size = 64
workers = 2
"#
    )
}

/// Between `before` and `after`, the pipeline neither restarted nor lost
/// a partition.
fn assert_untouched(before: &Status, after: &Status, pipeline: &str, what: &str) {
    assert!(
        before.started_at(pipeline).is_some()
            && before.started_at(pipeline) == after.started_at(pipeline)
            && before.revocations(pipeline) == after.revocations(pipeline)
            && before.assigned(pipeline) == after.assigned(pipeline),
        "pipeline `{pipeline}` was disturbed by {what}: {:?} -> {:?}",
        before.pipeline(pipeline),
        after.pipeline(pipeline)
    );
}

/// Asserts a plugin reload of `passthrough` from `old` with `outcome`.
fn assert_plugin_reload(reload: &serde_json::Value, outcome: &str, old: &str, what: &str) {
    assert_eq!(reload["outcome"], outcome, "{what}: {reload}");
    assert_eq!(reload["plugin"], "passthrough", "{what}: {reload}");
    assert_eq!(reload["old"], old, "{what}: {reload}");
}

// ---------------------------------------------------------------------------
// Helpers: producing to explicit partitions
// ---------------------------------------------------------------------------

/// Produces events keyed `p{P}` with value `P:SEQ` to explicit partitions
/// of one topic, so that everything of input partition P is one key (one
/// output partition, in order). Sequence numbers continue across calls.
struct Feed {
    topic: String,
    partitions: i32,
    next: u64,
    producer: TestProducer,
    values: Vec<String>,
}

impl Feed {
    fn new(bootstrap: &str, topic: &str, partitions: i32) -> Feed {
        let producer = TestProducer::with_settings(
            bootstrap,
            &[
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "60000"),
            ],
        );
        Feed {
            topic: topic.to_owned(),
            partitions,
            next: 0,
            producer,
            values: Vec::new(),
        }
    }

    /// Queues `per_partition` events on every partition (round robin);
    /// returns their values.
    fn send(&mut self, per_partition: u64) -> Vec<String> {
        let mut values = Vec::new();
        for _ in 0..per_partition {
            let seq = self.next;
            self.next += 1;
            for p in 0..self.partitions {
                let key = format!("p{p}");
                let value = format!("{p}:{seq}");
                self.producer.send_to(
                    &self.topic,
                    Some(p),
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    &[],
                );
                self.values.push(value.clone());
                values.push(value);
            }
        }
        values
    }

    /// Queues `per_partition` events per partition and waits until every
    /// record sent so far is acknowledged; returns the new values.
    fn produce(&mut self, per_partition: u64) -> Vec<String> {
        let values = self.send(per_partition);
        self.flush();
        values
    }

    /// Waits for every delivery report; returns every value sent so far
    /// with where it landed. Panics if any record failed.
    fn flush(&self) -> Vec<(String, Delivered)> {
        self.values
            .iter()
            .cloned()
            .zip(self.producer.flush())
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Helpers: reading outputs back
// ---------------------------------------------------------------------------

/// Which plugin version wrote an output: `passthrough-v2` tags its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    V1,
    V2,
}

fn version_of(r: &Record) -> Version {
    match r.header(VERSION_HEADER) {
        None => Version::V1,
        Some("v2") => Version::V2,
        Some(other) => panic!("unexpected {VERSION_HEADER}: {other}: {r:?}"),
    }
}

/// Reads until every one of `values` was seen on `topic`; returns the
/// records (of `topic`) that carry them, duplicates included.
fn wait_for_values(
    reader: &mut Reader,
    topic: &str,
    values: &[String],
    run: &SluiceProcess,
) -> Vec<Record> {
    let wanted: BTreeSet<&str> = values.iter().map(String::as_str).collect();
    let all_there = reader.read_until(TIMEOUT, |records| {
        let seen: BTreeSet<&str> = records
            .iter()
            .filter(|r| r.topic == topic)
            .filter_map(|r| r.value.as_deref())
            .filter(|v| wanted.contains(v))
            .collect();
        seen.len() == wanted.len()
    });
    let got: Vec<Record> = reader
        .of(topic)
        .into_iter()
        .filter(|r| r.value.as_deref().is_some_and(|v| wanted.contains(v)))
        .collect();
    if !all_there {
        let seen: BTreeSet<&str> = got.iter().filter_map(|r| r.value.as_deref()).collect();
        let missing: Vec<&&str> = wanted.difference(&seen).take(10).collect();
        panic!(
            "{} of {} events never reached `{topic}` (first: {missing:?})\n{}",
            wanted.len() - seen.len(),
            wanted.len(),
            run.describe()
        );
    }
    got
}

/// Produces `per_partition` more events per partition on `feed` and waits
/// until every one of them came out on `output`; returns those records.
fn pass(
    feed: &mut Feed,
    per_partition: u64,
    reader: &mut Reader,
    output: &str,
    run: &SluiceProcess,
) -> Vec<Record> {
    let values = feed.produce(per_partition);
    wait_for_values(reader, output, &values, run)
}

/// Asserts that every record was written by `version` of `passthrough`
/// whose file had `digest`.
fn assert_written_by(records: &[Record], version: Version, digest: &str, what: &str) {
    for r in records {
        assert_eq!(version_of(r), version, "{what}: {r:?}");
        assert_eq!(
            r.header("sluice.plugin"),
            Some("passthrough"),
            "{what}: {r:?}"
        );
        assert_eq!(
            r.header("sluice.plugin.digest"),
            Some(digest),
            "{what}: {r:?}"
        );
    }
}

/// `(input partition, sequence number)` of a `P:SEQ` value.
fn parse_value(r: &Record) -> (i32, u64) {
    let value = r
        .value
        .as_deref()
        .unwrap_or_else(|| panic!("no value: {r:?}"));
    let (p, seq) = value
        .split_once(':')
        .unwrap_or_else(|| panic!("not P:SEQ: {r:?}"));
    (p.parse().unwrap(), seq.parse().unwrap())
}

// ---------------------------------------------------------------------------
// 1. A new plugin version in the middle of a stream
// ---------------------------------------------------------------------------

#[test]
fn plugin_swapped_mid_stream_switches_each_partition_once() {
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: u64 = 12_500;
    const EVENTS: usize = PARTITIONS as usize * PER_PARTITION as usize;
    // Swap once this many outputs have landed (10 %).
    const SWAP_AT: usize = EVENTS / 10;
    // The producer holds the last 20 % back until the new version is in.
    const HOLD_AT: u64 = PER_PARTITION * 8 / 10;

    let hot = Hot::new(&[
        ("in", PARTITIONS as u32),
        ("out", PARTITIONS as u32),
        ("mid-dlq", 1),
    ]);
    let (v1, v2) = (&hot.v1, &hot.v2);
    assert_ne!(v1, v2);
    let mut run = hot.start(&format!(
        "{}{}",
        hot.kafka,
        pipeline_toml("mid", "in", "out")
    ));
    run.wait_assigned("mid", PARTITIONS as usize);

    // The stream: paced (about 10k events/s) so that the swap lands in the
    // middle of it.
    let swapped = Arc::new(AtomicBool::new(false));
    let stream = {
        let bootstrap = hot.bootstrap.clone();
        let swapped = swapped.clone();
        std::thread::spawn(move || {
            let mut feed = Feed::new(&bootstrap, "in", PARTITIONS);
            let started = Instant::now();
            for seq in 0..PER_PARTITION {
                if seq == HOLD_AT {
                    let deadline = Instant::now() + TIMEOUT;
                    while !swapped.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                feed.send(1);
                if seq % 64 == 63 && seq < HOLD_AT {
                    // 4 events per seq; 10k events/s = 2,500 seq/s.
                    let due = started + Duration::from_secs_f64((seq + 1) as f64 / 2_500.0);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
            }
            feed.flush()
        })
    };

    let mut reader = Reader::new(&hot.bootstrap, &["out", "mid-dlq"]);
    let reached = reader.read_until(TIMEOUT, |r| r.len() >= SWAP_AT);
    assert!(
        reached,
        "only {} outputs landed\n{}",
        reader.records().len(),
        run.describe()
    );
    let before_deploy = reader.records().len();
    deploy(&hot.v2_file, &hot.target);
    let reload = run.wait_reload("plugin", 1);
    swapped.store(true, Ordering::SeqCst);
    reader.poll_for(Duration::from_millis(10));
    let at_reload = reader.records().len();
    let sent = stream.join().expect("the producer thread");
    assert_eq!(sent.len(), EVENTS);

    // The reload names both versions.
    assert_plugin_reload(&reload, "ok", v1, "the swap");
    assert_eq!(reload["new"], v2.as_str(), "{reload}");
    assert_eq!(reload["pipelines"], serde_json::json!(["mid"]), "{reload}");

    let all_there = reader.wait_distinct_values(EVENTS, TIMEOUT);
    reader.settle(Duration::from_secs(1), Duration::from_secs(10));
    let status = run.status().expect("a status");
    assert_eq!(
        status.reloads("plugin").len(),
        1,
        "one reload: {:?}",
        status.0
    );
    assert_eq!(status.digests("mid"), std::slice::from_ref(v2));
    run.stop();
    assert!(!run.stderr().contains("panicked"), "{}", run.describe());

    let outputs = reader.of("out");
    let dead = reader.of("mid-dlq");
    assert!(
        dead.is_empty(),
        "dead letters: {:?}",
        &dead[..dead.len().min(5)]
    );

    // Every input at least once.
    let produced: BTreeSet<&str> = sent.iter().map(|(value, _)| value.as_str()).collect();
    let unique: BTreeSet<&str> = outputs.iter().filter_map(|r| r.value.as_deref()).collect();
    let missing: Vec<&&str> = produced.difference(&unique).take(10).collect();
    assert!(
        all_there && missing.is_empty(),
        "{} of {EVENTS} inputs have no output (first: {missing:?})",
        produced.difference(&unique).count()
    );
    assert_eq!(unique.len(), EVENTS, "outputs that were never inputs");
    let duplicates = outputs.len() - unique.len();

    // Digests match the files, versions per partition switch once.
    let mut by_key: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in &outputs {
        let digest = match version_of(r) {
            Version::V1 => v1,
            Version::V2 => v2,
        };
        assert_eq!(r.header("sluice.plugin"), Some("passthrough"), "{r:?}");
        assert_eq!(
            r.header("sluice.plugin.digest"),
            Some(digest.as_str()),
            "{r:?}"
        );
        let (p, _) = parse_value(r);
        assert_eq!(r.key.as_deref(), Some(format!("p{p}").as_str()), "{r:?}");
        by_key.entry(r.key.clone().unwrap()).or_default().push(r);
    }
    assert_eq!(by_key.len(), PARTITIONS as usize);
    let mut counts = BTreeMap::new();
    for (key, mut list) in by_key {
        let partitions: BTreeSet<i32> = list.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "{key} spread over {partitions:?}");
        list.sort_by_key(|r| r.offset);
        let versions: Vec<Version> = list.iter().map(|r| version_of(r)).collect();
        let switches: Vec<usize> = (1..versions.len())
            .filter(|&i| versions[i] != versions[i - 1])
            .collect();
        let v1_count = versions.iter().filter(|v| **v == Version::V1).count();
        let v2_count = versions.len() - v1_count;
        assert!(
            versions.first() == Some(&Version::V1)
                && versions.last() == Some(&Version::V2)
                && switches.len() == 1,
            "{key}: versions must go v1…v1 v2…v2 with one switch; switches at output \
             indexes {switches:?} ({v1_count} v1, {v2_count} v2)"
        );
        // Within the partition, new events come out in input order.
        let mut highest: Option<u64> = None;
        let mut seen = BTreeSet::new();
        for r in &list {
            let (_, seq) = parse_value(r);
            if seen.insert(seq) {
                assert!(
                    highest.is_none_or(|h| seq > h),
                    "{key}: {seq} after {highest:?}: out of order"
                );
                highest = Some(seq);
            }
        }
        counts.insert(key, (v1_count, v2_count));
    }
    let v1_total: usize = counts.values().map(|c| c.0).sum();
    assert!(
        v1_total >= before_deploy,
        "{before_deploy} outputs had landed before the deploy, only {v1_total} are v1"
    );
    println!(
        "mid-stream swap: {EVENTS} events, deploy after {before_deploy} outputs, reload seen \
         after {at_reload}; {} outputs, {duplicates} duplicates; per key (v1, v2): {counts:?}",
        outputs.len()
    );
}

// ---------------------------------------------------------------------------
// 2. Broken plugins leave the running version alone
// ---------------------------------------------------------------------------

#[test]
fn broken_plugins_keep_the_old_version_running() {
    let hot = Hot::new(&[("in", 2), ("out", 2), ("keep-dlq", 1)]);
    let (target, v1, v2) = (&hot.target, &hot.v1, &hot.v2);
    let mut run = hot.start(&format!(
        "{}{}",
        hot.kafka,
        pipeline_toml("keep", "in", "out")
    ));
    run.wait_assigned("keep", 2);
    let mut feed = Feed::new(&hot.bootstrap, "in", 2);
    let mut reader = Reader::new(&hot.bootstrap, &["out", "keep-dlq"]);
    let got = pass(&mut feed, 50, &mut reader, "out", &run);
    assert_written_by(&got, Version::V1, v1, "before any reload");

    let v2_bytes = std::fs::read(&hot.v2_file).unwrap();
    type Break<'a> = Box<dyn Fn() + 'a>;
    let variants: Vec<(&str, Break<'_>, &str)> = vec![
        (
            "a truncated v2 written in place",
            Box::new(|| std::fs::write(target, &v2_bytes[..v2_bytes.len() / 2]).unwrap()),
            "is not a valid WebAssembly component",
        ),
        (
            "wrong-world.wasm renamed over",
            Box::new(|| deploy(&plugin_path("wrong-world"), target)),
            "does not implement the sluice:plugin@0.1.0 `processor` world",
        ),
        (
            "init-fails.wasm renamed over",
            Box::new(|| deploy(&plugin_path("init-fails"), target)),
            "this plugin refuses to start",
        ),
    ];
    for (n, (what, breaks, reason)) in variants.iter().enumerate() {
        breaks();
        let reload = run.wait_reload("plugin", n + 1);
        assert_plugin_reload(&reload, "failed", v1, what);
        let error = reload["error"].as_str().unwrap_or_default();
        assert!(
            error.to_lowercase().contains(&reason.to_lowercase()),
            "{what}: no `{reason}` in the reload's error: {reload}"
        );
        let status = run.status().expect("a status");
        assert_eq!(
            status.digests("keep"),
            std::slice::from_ref(v1),
            "{what} was swapped in"
        );
        // New events still go through the old version.
        let got = pass(&mut feed, 50, &mut reader, "out", &run);
        assert_written_by(&got, Version::V1, v1, what);
        println!("{what}: {error}");
    }

    // The watcher still works: a good version swaps in.
    deploy(&hot.v2_file, target);
    let reload = run.wait_reload("plugin", variants.len() + 1);
    assert_plugin_reload(&reload, "ok", v1, "the good deploy");
    assert_eq!(reload["new"], v2.as_str(), "{reload}");
    let got = pass(&mut feed, 50, &mut reader, "out", &run);
    assert_written_by(&got, Version::V2, v2, "after the good deploy");

    reader.settle(Duration::from_millis(500), Duration::from_secs(5));
    let dead = reader.of("keep-dlq");
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    let status = run.status().expect("a status");
    let outcomes: Vec<&str> = status
        .reloads("plugin")
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "ok"]);
    // One instance per worker at start and for the good version; the
    // broken ones never got going.
    assert_eq!(status.instances("keep"), [4], "{:?}", status.0);
    run.stop();
    let log = run.stderr();
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------
// 3. Config edits: add a pipeline, invalid edits, a [kafka] change
// ---------------------------------------------------------------------------

/// Produces to both feeds and checks both pipelines processed the events.
fn assert_both_process(
    feeds: &mut [(&mut Feed, &str)],
    reader: &mut Reader,
    run: &SluiceProcess,
    what: &str,
) {
    for (feed, output) in feeds.iter_mut() {
        let got = pass(feed, 20, reader, output, run);
        assert!(!got.is_empty(), "{what}");
    }
}

/// Two pipelines of `passthrough`: `alpha` (a-in → a-out) and `beta`
/// (b-in → b-out).
const ALPHA_BETA_TOPICS: &[(&str, u32)] = &[
    ("a-in", 2),
    ("a-out", 2),
    ("b-in", 2),
    ("b-out", 2),
    ("alpha-dlq", 1),
    ("beta-dlq", 1),
];

/// `sluice run` with `alpha` alone, after a first batch went through it.
struct AlphaAlone {
    run: SluiceProcess,
    /// Feeds of a-in and b-in.
    a: Feed,
    b: Feed,
    /// Reads a-out and b-out.
    reader: Reader,
    /// The first batch's outputs.
    first: Vec<Record>,
    /// The pipeline file with `beta` added.
    both: String,
}

impl AlphaAlone {
    fn start(hot: &Hot) -> AlphaAlone {
        let kafka = &hot.kafka;
        let alpha = pipeline_toml("alpha", "a-in", "a-out");
        let beta = pipeline_toml("beta", "b-in", "b-out");
        let mut run = hot.start(&format!("{kafka}{alpha}"));
        run.wait_assigned("alpha", 2);
        let mut a = Feed::new(&hot.bootstrap, "a-in", 2);
        let b = Feed::new(&hot.bootstrap, "b-in", 2);
        let mut reader = Reader::new(&hot.bootstrap, &["a-out", "b-out"]);
        let first = pass(&mut a, 20, &mut reader, "a-out", &run);
        AlphaAlone {
            run,
            a,
            b,
            reader,
            first,
            both: format!("{kafka}{alpha}{beta}"),
        }
    }
}

#[test]
fn config_edits_add_a_pipeline_and_refuse_bad_ones_without_disturbing_others() {
    let hot = Hot::new(ALPHA_BETA_TOPICS);
    let AlphaAlone {
        mut run,
        mut a,
        mut b,
        mut reader,
        both,
        ..
    } = AlphaAlone::start(&hot);

    // Add `beta`.
    let before = run.status().expect("a status");
    hot.edit_config(&both);
    let reload = run.wait_reload("config", 1);
    assert_eq!(reload["outcome"], "ok", "{reload}");
    assert_eq!(reload["added"], serde_json::json!(["beta"]), "{reload}");
    assert_eq!(reload["removed"], serde_json::json!([]), "{reload}");
    assert_eq!(reload["changed"], serde_json::json!([]), "{reload}");
    run.wait_assigned("beta", 2);
    assert_both_process(
        &mut [(&mut a, "a-out"), (&mut b, "b-out")],
        &mut reader,
        &run,
        "after adding beta",
    );
    let with_beta = run.status().expect("a status");
    assert_untouched(&before, &with_beta, "alpha", "adding beta");
    // The instances the reload started (running `init`) before anything
    // changed are the ones that run: one per worker, none thrown away.
    assert_eq!(with_beta.instances("beta"), [2], "{:?}", with_beta.0);

    // A typo'd field: refused, with its line and column.
    let typo = both.replacen(
        "\nname = \"beta\"\n",
        "\nname = \"beta\"\noutptu = \"x\"\n",
        1,
    );
    let typo_line = typo.lines().position(|l| l.starts_with("outptu")).unwrap() + 1;
    hot.edit_config(&typo);
    let reload = run.wait_reload("config", 2);
    assert_eq!(reload["outcome"], "failed", "{reload}");
    let want = format!(
        "{}:{typo_line}:1: unknown field `outptu`",
        hot.config.display()
    );
    let error = reload["error"].as_str().unwrap_or_default();
    assert!(error.contains(&want), "no `{want}` in: {reload}");

    // Broken syntax: an unterminated string.
    let broken = both.replacen("output = \"b-out\"", "output = \"b-out", 1);
    let broken_line = broken
        .lines()
        .position(|l| l == "output = \"b-out")
        .unwrap()
        + 1;
    hot.edit_config(&broken);
    let reload = run.wait_reload("config", 3);
    assert_eq!(reload["outcome"], "failed", "{reload}");
    let want = format!("{}:{broken_line}:", hot.config.display());
    let error = reload["error"].as_str().unwrap_or_default();
    assert!(error.contains(&want), "no `{want}` in: {reload}");
    println!("syntax error reported as: {error}");
    assert_both_process(
        &mut [(&mut a, "a-out"), (&mut b, "b-out")],
        &mut reader,
        &run,
        "after the invalid edits",
    );

    // A [kafka] change needs a restart: refused.
    let client = both.replacen(
        "client_id = \"sluice-e2e\"",
        "client_id = \"somebody-else\"",
        1,
    );
    assert_ne!(client, both, "the kafka section has no client_id to change");
    hot.edit_config(&client);
    let reload = run.wait_reload("config", 4);
    assert_eq!(reload["outcome"], "refused", "{reload}");
    let error = reload["error"].as_str().unwrap_or_default();
    assert!(error.contains("kafka.client_id"), "{reload}");
    assert_both_process(
        &mut [(&mut a, "a-out"), (&mut b, "b-out")],
        &mut reader,
        &run,
        "after the refused [kafka] change",
    );

    let after = run.status().expect("a status");
    assert_untouched(&before, &after, "alpha", "the config edits");
    assert_untouched(&with_beta, &after, "beta", "the refused edits");
    assert_eq!(after.reloads("config").len(), 4, "{:?}", after.0);
    run.stop();
    let log = run.stderr();
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------
// 4. Removing a pipeline stops it cleanly
// ---------------------------------------------------------------------------

#[test]
fn removed_pipeline_stops_cleanly_and_commits_what_it_processed() {
    let hot = Hot::new(&[
        ("keep-in", 2),
        ("keep-out", 2),
        ("gone-in", 2),
        ("gone-out", 2),
        ("keep-dlq", 1),
        ("gone-dlq", 1),
    ]);
    let bootstrap = &hot.bootstrap;
    let kafka = &hot.kafka;
    let keep = pipeline_toml("keep", "keep-in", "keep-out");
    let gone = pipeline_toml("gone", "gone-in", "gone-out");
    let mut run = hot.start(&format!("{kafka}{keep}{gone}"));
    run.wait_assigned("keep", 2);
    run.wait_assigned("gone", 2);
    let mut keep_feed = Feed::new(bootstrap, "keep-in", 2);
    let mut reader = Reader::new(bootstrap, &["keep-out", "gone-out"]);
    pass(&mut keep_feed, 20, &mut reader, "keep-out", &run);

    // `gone` gets a steady stream (about 2,000 events/s) that goes on
    // while it is removed, so it stops with events in flight.
    let stop_stream = Arc::new(AtomicBool::new(false));
    let stream = {
        let bootstrap = bootstrap.clone();
        let stop = stop_stream.clone();
        std::thread::spawn(move || {
            let mut feed = Feed::new(&bootstrap, "gone-in", 2);
            while !stop.load(Ordering::SeqCst) {
                feed.send(10);
                std::thread::sleep(Duration::from_millis(10));
            }
            feed.flush()
        })
    };
    let streaming = reader.read_until(TIMEOUT, |r| {
        r.iter().filter(|r| r.topic == "gone-out").count() >= 2_000
    });
    assert!(streaming, "`gone` is not processing\n{}", run.describe());

    let before = run.status().expect("a status");
    hot.edit_config(&format!("{kafka}{keep}"));
    let reload = run.wait_reload("config", 1);
    assert_eq!(reload["outcome"], "ok", "{reload}");
    assert_eq!(reload["removed"], serde_json::json!(["gone"]), "{reload}");
    assert_eq!(reload["added"], serde_json::json!([]), "{reload}");
    // The reload is recorded once `gone` has drained and committed.
    let status = run.status().expect("a status");
    assert_eq!(status.state("gone"), None, "{:?}", status.0);
    // Events keep arriving on gone-in for a moment after the stop.
    reader.poll_for(Duration::from_millis(500));
    stop_stream.store(true, Ordering::SeqCst);
    let sent = stream.join().expect("the producer thread");

    // `keep` goes on, untouched.
    pass(&mut keep_feed, 20, &mut reader, "keep-out", &run);
    reader.settle(Duration::from_secs(1), Duration::from_secs(10));
    let after = run.status().expect("a status");
    assert_untouched(&before, &after, "keep", "removing gone");

    // What `gone` processed is exactly what its group committed.
    let offset_of: HashMap<&str, Delivered> =
        sent.iter().map(|(v, at)| (v.as_str(), *at)).collect();
    let mut processed: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for r in reader.of("gone-out") {
        let at = offset_of[r.value.as_deref().unwrap()];
        processed.entry(at.partition).or_default().insert(at.offset);
    }
    let committed = kafka::committed(bootstrap, "hot-gone", "gone-in");
    let ends = kafka::ends(&sent.iter().map(|(_, at)| *at).collect::<Vec<_>>());
    for partition in 0..2 {
        let done = processed.get(&partition).cloned().unwrap_or_default();
        let commit = committed.get(&partition).copied().flatten();
        let commit = commit.unwrap_or_else(|| {
            panic!(
                "nothing committed on gone-in/{partition}; processed {}",
                done.len()
            )
        });
        // Covers every processed event...
        let beyond: Vec<&i64> = done.range(commit..).take(5).collect();
        assert!(
            beyond.is_empty(),
            "gone-in/{partition}: committed {commit}, but offsets {beyond:?} were processed"
        );
        // ...and nothing that was not processed (at-least-once).
        let lost: Vec<i64> = (0..commit).filter(|o| !done.contains(o)).take(5).collect();
        assert!(
            lost.is_empty(),
            "gone-in/{partition}: committed {commit}, but offsets {lost:?} have no output"
        );
        println!(
            "gone-in/{partition}: {} produced, {} processed, committed {commit}",
            ends.get(&partition).copied().unwrap_or(0),
            done.len()
        );
    }

    // Nothing reads gone-in any more.
    let before = reader.of("gone-out").len();
    let mut feed = Feed::new(bootstrap, "gone-in", 2);
    feed.produce(10);
    reader.poll_for(Duration::from_secs(2));
    assert_eq!(reader.of("gone-out").len(), before, "`gone` still runs");

    run.stop();
    assert!(!run.stderr().contains("panicked"), "{}", run.describe());
}

// ---------------------------------------------------------------------------
// 5. A plugins directory that never goes quiet
// ---------------------------------------------------------------------------

/// Another file in the plugins directory is rewritten every 100 ms (a build,
/// a log): file events never pause for the debounce time. A deployed plugin
/// must still be swapped in, and SIGTERM must still stop the process, while
/// that goes on.
#[test]
fn busy_plugins_directory_neither_blocks_reloads_nor_stop() {
    let hot = Hot::new(&[("in", 2), ("out", 2), ("busy-dlq", 1)]);
    let mut run = hot.start(&format!(
        "{}{}",
        hot.kafka,
        pipeline_toml("busy", "in", "out")
    ));
    run.wait_assigned("busy", 2);

    let quiet = Arc::new(AtomicBool::new(false));
    let churn = {
        let quiet = quiet.clone();
        let notes = hot.target.with_file_name("build-notes.txt");
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !quiet.load(Ordering::SeqCst) {
                n += 1;
                std::fs::write(&notes, format!("{n}\n")).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Stops the churn also when an assertion fails.
    struct Quiet(Arc<AtomicBool>);
    impl Drop for Quiet {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _quiet = Quiet(quiet.clone());
    std::thread::sleep(Duration::from_millis(500));

    deploy(&hot.v2_file, &hot.target);
    let reload = run.wait_reload("plugin", 1);
    assert_plugin_reload(&reload, "ok", &hot.v1, "the deploy");
    let mut feed = Feed::new(&hot.bootstrap, "in", 2);
    let mut reader = Reader::new(&hot.bootstrap, &["out"]);
    let got = pass(&mut feed, 20, &mut reader, "out", &run);
    assert_written_by(&got, Version::V2, &hot.v2, "after the deploy");

    // SIGTERM while the directory is still busy.
    run.stop();
    assert!(
        !churn.is_finished(),
        "the churn stopped before the process did"
    );
    quiet.store(true, Ordering::SeqCst);
    churn.join().unwrap();
}

// ---------------------------------------------------------------------------
// 6. A plugin deployed together with a config edit
// ---------------------------------------------------------------------------

/// A new plugin version and a config edit land in the same look (one
/// deployment that updates both). The config edit reuses the loaded plugin;
/// the new file must still be noticed and swapped in, for the old pipeline
/// and for the one just added.
#[test]
fn plugin_deployed_with_a_config_edit_is_still_swapped_in() {
    let hot = Hot::new(ALPHA_BETA_TOPICS);
    let (v1, v2) = (&hot.v1, &hot.v2);
    let AlphaAlone {
        mut run,
        mut a,
        mut b,
        mut reader,
        first,
        both,
    } = AlphaAlone::start(&hot);
    assert_written_by(&first, Version::V1, v1, "before the deployment");

    // One deployment: the plugin, then the config, right after each other.
    deploy(&hot.v2_file, &hot.target);
    hot.edit_config(&both);
    let reload = run.wait_reload("config", 1);
    assert_eq!(reload["outcome"], "ok", "{reload}");
    assert_eq!(reload["added"], serde_json::json!(["beta"]), "{reload}");
    let swapped = run.wait_reload("plugin", 1);
    assert_plugin_reload(&swapped, "ok", v1, "the deployment");
    assert_eq!(swapped["new"], v2.as_str(), "{swapped}");
    run.wait_assigned("beta", 2);

    for (feed, output) in [(&mut a, "a-out"), (&mut b, "b-out")] {
        let got = pass(feed, 20, &mut reader, output, &run);
        assert_written_by(&got, Version::V2, v2, output);
    }
    run.stop();
}

// ---------------------------------------------------------------------------
// 7. A plugin copied slowly in place is loaded only once complete
// ---------------------------------------------------------------------------

#[test]
fn a_plugin_written_slowly_in_place_is_loaded_once_complete() {
    let hot = Hot::new(&[("in", 2), ("out", 2), ("slow-dlq", 1)]);
    let mut run = hot.start(&format!(
        "{}{}",
        hot.kafka,
        pipeline_toml("slow", "in", "out")
    ));
    run.wait_assigned("slow", 2);
    let mut feed = Feed::new(&hot.bootstrap, "in", 2);
    let mut reader = Reader::new(&hot.bootstrap, &["out"]);

    // Not the recommended deploy: v2 written over the running file in ten
    // chunks, 100 ms apart, as a slow `cp` to a network volume would.
    let bytes = std::fs::read(&hot.v2_file).unwrap();
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&hot.target).unwrap();
        for chunk in bytes.chunks(bytes.len().div_ceil(10)) {
            file.write_all(chunk).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let reload = run.wait_reload("plugin", 1);
    assert_eq!(
        reload["outcome"], "ok",
        "a half-written file was loaded: {reload}"
    );
    assert_eq!(reload["new"], hot.v2.as_str(), "{reload}");
    let got = pass(&mut feed, 20, &mut reader, "out", &run);
    assert_written_by(&got, Version::V2, &hot.v2, "after the slow copy");
    run.stop();
}

// ---------------------------------------------------------------------------
// 8. SIGHUP reloads without waiting for file events or the periodic look
// ---------------------------------------------------------------------------

#[test]
fn sighup_reloads_the_plugins() {
    let hot = Hot::new(&[("in", 2), ("out", 2), ("hup-dlq", 1)]);
    std::fs::write(
        &hot.config,
        format!("{}{}", hot.kafka, pipeline_toml("hup", "in", "out")),
    )
    .unwrap();
    // Neither file events nor the periodic look: only the signal can make
    // Sluice look at the files.
    let mut run = hot.scene.start_with_args(
        &hot.config,
        "sluice",
        &["--no-watch", "--poll-interval-secs", "0"],
    );
    run.wait_assigned("hup", 2);
    deploy(&hot.v2_file, &hot.target);
    std::thread::sleep(Duration::from_secs(2));
    let status = run.status().expect("a status");
    assert!(
        status.reloads("plugin").is_empty(),
        "reloaded without a trigger: {:?}",
        status.0
    );
    let killed = std::process::Command::new("kill")
        .args(["-HUP", &run.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let reload = run.wait_reload("plugin", 1);
    assert_eq!(reload["new"], hot.v2.as_str(), "{reload}");
    assert!(run.try_wait().is_none(), "SIGHUP must not stop sluice");
    run.stop();
}
