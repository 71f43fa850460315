use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::plugin::DirGrant;

mod errors;
mod reload;

const FILE: &str = "config/x.toml";

/// The smallest valid file; tests append to it or edit it.
const MINIMAL: &str = r#"[kafka]
brokers = "embedded"
[plugins]
dir = "plugins"
[[pipeline]]
name = "orders"
inputs = ["orders"]
plugin = "order-enrich"
output = "orders-out"
dlq = "orders-dlq"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_with_env(text, Path::new(FILE), &no_env)
}

fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- in:\n{text}"))
}

/// The error's message, one entry per line.
fn error_lines(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("parsed, expected an error:\n{text}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn example(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse_with_env(&text, &path, env).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_file_parses_and_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = Config::parse_with_env(&text, &path, &no_env) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} example files");
}

#[test]
fn demo_example() {
    let config = example("demo.toml", &no_env);
    assert_eq!(config.kafka.brokers, Brokers::Embedded);
    assert_eq!(config.kafka.client_id, "sluice");
    assert_eq!(config.kafka.consumer["fetch.wait.max.ms"], "100");
    assert_eq!(config.kafka.producer["linger.ms"], "5");
    assert_eq!(config.kafka.producer["compression.type"], "lz4");
    assert!(config.plugins_dir.is_absolute());
    assert_eq!(config.plugins_dir, examples_dir().join("../plugins"));

    let [orders] = &config.pipelines[..] else {
        panic!("{:?}", config.pipelines)
    };
    assert_eq!(orders.name, "orders");
    assert_eq!(orders.inputs, ["orders"]);
    assert_eq!(orders.steps.len(), 1);
    assert_eq!(orders.steps[0].plugin, "order-enrich");
    assert_eq!(
        orders.steps[0].path,
        config.plugins_dir.join("order-enrich.wasm")
    );
    assert_eq!(
        orders.steps[0].config,
        [("silver_from".to_owned(), "50".to_owned())]
    );
    assert_eq!(orders.output, "orders-enriched");
    assert_eq!(orders.dlq, "orders-dlq");
    assert!(orders.allowed_outputs.is_empty());
    assert_eq!(orders.group_id, "sluice-orders");
    assert_eq!(
        (orders.batch_size, orders.workers, orders.partitions),
        (256, 2, 3)
    );
    assert_eq!(orders.limits, Limits::default());
    assert_eq!(orders.retry, RetryPolicy::default());
    assert_eq!(orders.sandbox.env, [("TZ".to_owned(), "UTC".to_owned())]);
    assert!(orders.sandbox.dirs.is_empty() && !orders.sandbox.network);

    // The container form: the broker list and TZ come from the environment.
    let env = |name: &str| match name {
        "KAFKA_BROKERS" => Some("kafka-1:9092,kafka-2:9092".to_owned()),
        "TZ" => Some("Europe/Paris".to_owned()),
        _ => None,
    };
    let config = example("demo.toml", &env);
    assert_eq!(
        config.kafka.brokers,
        Brokers::List("kafka-1:9092,kafka-2:9092".into())
    );
    assert_eq!(config.pipelines[0].sandbox.env[0].1, "Europe/Paris");
}

#[test]
fn accounts_example_keeps_state_exactly_once() {
    let config = example("accounts.toml", &no_env);
    let [accounts] = &config.pipelines[..] else {
        panic!("{:?}", config.pipelines)
    };
    assert_eq!(accounts.delivery, Delivery::ExactlyOnce);
    assert_eq!(accounts.commit_interval, Duration::from_millis(100));
    assert_eq!(accounts.state.changelog, "sluice-accounts-changelog");
    assert_eq!(accounts.state.limits, StateLimits::default());
    assert_eq!(accounts.state.on_corrupt, OnCorrupt::Stop);
    assert_eq!(accounts.state_names(), ["account-balance"]);

    // Defaults: at-least-once, a changelog named after the group.
    let demo = example("demo.toml", &no_env);
    let orders = &demo.pipelines[0];
    assert_eq!(orders.delivery, Delivery::AtLeastOnce);
    assert_eq!(orders.state, StateConfig::new("sluice-orders"));
    assert_eq!(orders.state.changelog, "sluice-orders-changelog");
}

#[test]
fn state_and_delivery_settings_are_checked_all_at_once() {
    let text = format!(
        "{MINIMAL}delivery = \"twice\"\ncommit_interval_ms = -1\n[pipeline.state]\n\
         changelog = \"orders\"\nmax_keys = 0\non_corrupt = \"ignore\"\n"
    );
    let problems = error_lines(&text);
    for fragment in [
        "`delivery` must be `at-least-once` or `exactly-once`, not `twice`",
        "`commit_interval_ms` must not be negative",
        "`state.changelog` is the same topic as `orders`",
        "`state.max_keys`",
        "`state.on_corrupt` must be `stop` or `skip`, not `ignore`",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(fragment)),
            "no `{fragment}` in {problems:#?}"
        );
    }
}

#[test]
fn a_chain_names_each_steps_state_after_its_plugin() {
    let mut pipeline = PipelineConfig::new("p", vec!["in".into()], Vec::new(), "out", "dlq");
    let step = |plugin: &str| StepConfig {
        plugin: plugin.to_owned(),
        path: PathBuf::from(format!("{plugin}.wasm")),
        config: Vec::new(),
    };
    pipeline.steps = vec![step("a"), step("b"), step("a")];
    assert_eq!(pipeline.state_names(), ["a", "b", "a#2"]);
}

#[test]
fn chain_and_router_examples() {
    let chain = example("chain.toml", &no_env);
    let pipeline = &chain.pipelines[0];
    let steps: Vec<_> = pipeline
        .steps
        .iter()
        .map(|s| (s.plugin.as_str(), s.config.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            ("order-enrich", vec![("gold_from".into(), "80".into())]),
            (
                "router",
                vec![
                    ("field".into(), "tier".into()),
                    ("routes".into(), "gold:vip-orders".into())
                ]
            ),
        ]
    );
    assert!(pipeline.allows("vip-orders") && pipeline.allows("orders-enriched"));
    assert!(!pipeline.allows("orders") && !pipeline.allows("orders-dlq"));

    let router = example("router.toml", &no_env);
    let pipeline = &router.pipelines[0];
    assert_eq!(pipeline.steps[0].plugin, "router");
    assert_eq!(pipeline.batch_size, 64);
    assert_eq!(
        pipeline.topics().into_iter().collect::<Vec<_>>(),
        [
            "orders-enriched",
            "orders-standard",
            "routing-dlq",
            "vip-orders"
        ]
    );
}

#[test]
fn defaults() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.kafka.client_id, "sluice");
    assert!(config.kafka.consumer.is_empty() && config.kafka.producer.is_empty());
    let p = &config.pipelines[0];
    assert_eq!(p.group_id, "sluice.orders");
    assert_eq!((p.batch_size, p.workers, p.partitions), (256, 1, 3));
    assert_eq!(p.max_in_flight, 32768);
    assert!(p.origin_headers);
    assert_eq!(
        p.limits,
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_millis(1000),
            max_output_bytes: 1 << 20,
            max_outputs_per_event: 1000,
        }
    );
    assert_eq!(
        p.retry,
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(5000),
        }
    );
    assert_eq!(p.sandbox, Sandbox::default());
    assert!(p.allowed_outputs.is_empty());
    assert!(p.allows("orders-out") && !p.allows("orders-dlq"));
    assert!(p.steps[0].config.is_empty());
}

#[test]
fn set_values_and_relative_paths() {
    let text = format!(
        "{MINIMAL}batch_size = 10\nworkers = 4\npartitions = 12\norigin_headers = false\nmax_in_flight = 4096\n\
         [pipeline.limits]\nmemory_mib = 128\ndeadline_ms = 250\nmax_output_bytes = 4096\nmax_outputs_per_event = 7\n\
         [pipeline.retry]\nattempts = 5\nbackoff_ms = 0\nmax_backoff_ms = 0\n\
         [pipeline.sandbox]\nenv = [\"HOME\", \"MODE=fast=yes\"]\nnetwork = true\n\
         dirs = [{{ host = \"ref\", guest = \"/ref\" }}, {{ host = \"/tmp\", guest = \"/tmp\", writable = true }}]\n\
         [pipeline.config]\nz = true\na = 1.5\nm = \"x\"\n"
    );
    let env = |name: &str| (name == "HOME").then(|| "/home/me".to_owned());
    let config = Config::parse_with_env(&text, Path::new("/etc/sluice/x.toml"), &env).unwrap();
    assert_eq!(config.plugins_dir, Path::new("/etc/sluice/plugins"));
    let p = &config.pipelines[0];
    assert_eq!(
        p.steps[0].path,
        Path::new("/etc/sluice/plugins/order-enrich.wasm")
    );
    assert_eq!((p.batch_size, p.workers, p.partitions), (10, 4, 12));
    assert_eq!(p.max_in_flight, 4096);
    assert!(!p.origin_headers);
    assert_eq!(p.limits.memory_bytes, 128 << 20);
    assert_eq!(p.limits.deadline, Duration::from_millis(250));
    assert_eq!(p.limits.max_output_bytes, 4096);
    assert_eq!(p.limits.max_outputs_per_event, 7);
    assert_eq!(p.retry.attempts, 5);
    assert_eq!(p.retry.backoff, Duration::ZERO);
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        p.sandbox.env,
        pairs(&[("HOME", "/home/me"), ("MODE", "fast=yes")])
    );
    assert!(p.sandbox.network);
    assert_eq!(
        p.sandbox.dirs,
        [
            DirGrant {
                host: "/etc/sluice/ref".into(),
                guest: "/ref".into(),
                writable: false
            },
            DirGrant {
                host: "/tmp".into(),
                guest: "/tmp".into(),
                writable: true
            },
        ]
    );
    // Sorted by key, scalars as strings.
    assert_eq!(
        p.steps[0].config,
        pairs(&[("a", "1.5"), ("m", "x"), ("z", "true")])
    );

    // Absolute `plugins.dir` is kept; a bare file name resolves against the
    // working directory.
    let text = MINIMAL.replace("dir = \"plugins\"", "dir = \"/opt/plugins\"");
    let config = Config::parse_with_env(&text, Path::new("x.toml"), &no_env).unwrap();
    assert_eq!(config.plugins_dir, Path::new("/opt/plugins"));
    let config = Config::parse_with_env(MINIMAL, Path::new("x.toml"), &no_env).unwrap();
    assert_eq!(
        config.plugins_dir,
        std::env::current_dir().unwrap().join("plugins")
    );
}
