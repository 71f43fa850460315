use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::plugin::DirGrant;

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

#[test]
fn interpolation() {
    let text = MINIMAL
        .replace("\"embedded\"", "\"${BROKERS}\"")
        .replace("\"orders-out\"", "\"${OUT:-orders-out}\"")
        .replace("\"orders-dlq\"", "\"${DLQ:-orders-dlq}\"");
    let env = |name: &str| match name {
        "BROKERS" => Some("k1:9092,k2:9092".to_owned()),
        "DLQ" => Some("dead".to_owned()),
        _ => None,
    };
    let config = Config::parse_with_env(&text, Path::new(FILE), &env).unwrap();
    assert_eq!(
        config.kafka.brokers,
        Brokers::List("k1:9092,k2:9092".into())
    );
    assert_eq!(config.pipelines[0].output, "orders-out");
    assert_eq!(config.pipelines[0].dlq, "dead");

    // Quotes and backslashes in a value stay inside the string.
    let text = format!("{MINIMAL}[pipeline.config]\nq = \"${{Q}}\"\nlit = \"$${{Q}}\"\n");
    let env = |name: &str| (name == "Q").then(|| r#"say "hi" \o/"#.to_owned());
    let config = Config::parse_with_env(&text, Path::new(FILE), &env).unwrap();
    assert_eq!(
        config.pipelines[0].steps[0].config,
        [
            ("lit".to_owned(), "${Q}".to_owned()),
            ("q".to_owned(), r#"say "hi" \o/"#.to_owned())
        ]
    );

    // Bare, for a number.
    let text = format!("{MINIMAL}workers = ${{WORKERS:-3}}\n");
    assert_eq!(parse_ok(&text).pipelines[0].workers, 3);

    // Unset without a default: every one reported, at its `${`.
    let text = MINIMAL
        .replace("\"embedded\"", "\"${BROKERS}\"")
        .replace("\"orders-dlq\"", "\"x-${DLQ}\"");
    assert_eq!(
        error_lines(&text),
        [
            "config/x.toml:2:12: environment variable `BROKERS` is not set (write \
             `${BROKERS:-default}` to give a default)",
            "config/x.toml:10:10: environment variable `DLQ` is not set (write \
             `${DLQ:-default}` to give a default)",
        ]
    );
}

#[test]
fn unknown_field_has_line_and_column() {
    let text = format!("{MINIMAL}workers = 2\noutptu = \"x\"\n");
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("config/x.toml:12:1: unknown field `outptu`, expected one of "),
        "{lines:?}"
    );
    match parse(&text) {
        Err(ConfigError::Syntax { problem, .. }) => {
            assert_eq!((problem.line, problem.column), (12, 1))
        }
        other => panic!("{other:?}"),
    }

    // Positions are those of the file as written, also after a substitution
    // on the same line (`gest` is at column 36 of the substituted text).
    let text = format!(
        "{MINIMAL}[pipeline.sandbox]\ndirs = [{{ host = \"${{REF_DIR:-/srv/reference}}\", gest = \"/ref\" }}]\n"
    );
    assert_eq!(
        error_lines(&text),
        ["config/x.toml:12:48: unknown field `gest`, expected one of `host`, `guest`, `writable`"]
    );
}

#[test]
fn syntax_and_type_errors_have_positions() {
    let text = MINIMAL
        .replace("batch", "")
        .replace("\"orders-out\"", "\"orders-out");
    assert_eq!(
        error_lines(&text),
        ["config/x.toml:9:21: invalid basic string, expected `\"`"]
    );
    let text = format!("{MINIMAL}batch_size = \"many\"\n");
    assert_eq!(
        error_lines(&text),
        ["config/x.toml:11:14: invalid type: string \"many\", expected i64"]
    );
    let text = MINIMAL.replace("[plugins]\ndir = \"plugins\"\n", "");
    assert_eq!(
        error_lines(&text),
        ["config/x.toml:1:1: missing field `plugins`"]
    );
}

#[test]
fn reports_every_problem_at_once() {
    let text = r#"[kafka]
brokers = " "
[kafka.consumer]
"group.id" = "mine"
"queued.min.messages" = [1, 2]
[plugins]
dir = "plugins"
[[pipeline]]
name = "or ders"
inputs = ["in", "out", "in"]
plugin = "../evil"
output = "out"
dlq = "out"
batch_size = 0
workers = -1
[pipeline.limits]
memory_mib = 8192
deadline_ms = 0
[pipeline.retry]
attempts = 0
backoff_ms = 500
max_backoff_ms = 100
[pipeline.sandbox]
env = ["UNSET_VAR"]
dirs = [{ host = "", guest = "ref" }]
[[pipeline]]
name = "b"
inputs = []
plugin = "x.wasm"
output = "bad topic"
dlq = ".."
[[pipeline]]
name = "b"
inputs = ["c"]
output = "c2"
dlq = "c3"
group_id = "sluice.b"
[pipeline.config]
nested = { a = 1 }
[[pipeline]]
inputs = ["d"]
plugin = "p"
"#;
    let lines = error_lines(text);
    // Sorted by position; at one position, in the order they were found.
    let expected = [
        "config/x.toml:2:11: `kafka.brokers` is empty: give `host:port[,host:port...]`, or \
         \"embedded\" for the in-process mock cluster",
        "config/x.toml:4:14: `kafka.consumer`: `group.id` cannot be set here: it is set from \
         each pipeline's `group_id`",
        "config/x.toml:5:25: `kafka.consumer`: `queued.min.messages` is an array; give a \
         string, number or boolean",
        "config/x.toml:9:8: pipeline `or ders`: the name may only contain ASCII letters, \
         digits, `.`, `_` and `-`",
        "config/x.toml:10:17: pipeline `or ders`: input `out` is also `output`: the pipeline \
         would consume what it writes (a loop)",
        "config/x.toml:10:24: pipeline `or ders`: input `in` is listed twice",
        "config/x.toml:11:10: pipeline `or ders`: plugin `../evil` must be a file name in \
         `plugins.dir`, without `/` or `..`",
        "config/x.toml:13:7: pipeline `or ders`: `dlq` is the same topic as `output` (`out`)",
        "config/x.toml:14:14: pipeline `or ders`: `batch_size` must be at least 1 (got 0)",
        "config/x.toml:15:11: pipeline `or ders`: `workers` must be at least 1 (got -1)",
        "config/x.toml:17:14: pipeline `or ders`: `limits.memory_mib` must be between 1 and \
         4096 (got 8192)",
        "config/x.toml:18:15: pipeline `or ders`: `limits.deadline_ms` must be at least 1 \
         (got 0)",
        "config/x.toml:20:12: pipeline `or ders`: `retry.attempts` must be between 1 and \
         4294967295 (got 0)",
        "config/x.toml:22:18: pipeline `or ders`: `retry.max_backoff_ms` (100) is less than \
         `retry.backoff_ms` (500)",
        "config/x.toml:24:8: pipeline `or ders`: `sandbox.env`: `UNSET_VAR` is not set on the \
         host (write `UNSET_VAR=VALUE` to set a value)",
        "config/x.toml:25:18: pipeline `or ders`: `sandbox.dirs`: `host` is empty",
        "config/x.toml:25:30: pipeline `or ders`: `sandbox.dirs`: `guest` must be an absolute \
         path such as `/data` (got `ref`)",
        "config/x.toml:28:10: pipeline `b`: `inputs` is empty; list at least one topic",
        "config/x.toml:29:10: pipeline `b`: plugin `x.wasm` is given without the `.wasm` \
         suffix",
        "config/x.toml:30:10: pipeline `b`: `output`: topic `bad topic` may only contain \
         ASCII letters, digits, `.`, `_` and `-`",
        "config/x.toml:31:7: pipeline `b`: `dlq`: topic `..` may not be `.` or `..`",
        "config/x.toml:33:8: pipeline `b`: neither `plugin` nor `chain` is set",
        "config/x.toml:33:8: pipeline `b` is defined twice (first at line 27)",
        "config/x.toml:39:10: pipeline `b`: config `nested` is a table; plugin config is flat \
         `key = value` pairs of strings, numbers or booleans",
        "config/x.toml:40:1: pipeline has no `name`",
        "config/x.toml:40:1: pipeline #4: `output` is missing",
        "config/x.toml:40:1: pipeline #4: `dlq` is missing",
    ];
    assert_eq!(lines.len(), 27, "got:\n{}", lines.join("\n"));
    assert_eq!(lines, expected, "got:\n{}", lines.join("\n"));
    match parse(text) {
        Err(ConfigError::Invalid { problems, .. }) => assert_eq!(problems.len(), 27),
        other => panic!("{other:?}"),
    }
}

#[test]
fn plugin_or_chain() {
    let chain = "[[pipeline.chain]]\nplugin = \"a\"\nconfig = { k = 1 }\n\
                 [[pipeline.chain]]\nplugin = \"b\"\n";
    let both = format!("{MINIMAL}{chain}");
    assert_eq!(
        error_lines(&both),
        ["config/x.toml:8:10: pipeline `orders`: both `plugin` and `chain` are set; use one"]
    );

    let neither = MINIMAL.replace("plugin = \"order-enrich\"\n", "");
    assert_eq!(
        error_lines(&neither),
        ["config/x.toml:6:8: pipeline `orders`: neither `plugin` nor `chain` is set"]
    );

    let only_chain = format!("{neither}{chain}");
    let config = parse_ok(&only_chain);
    let steps = &config.pipelines[0].steps;
    assert_eq!(
        steps.iter().map(|s| s.plugin.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(steps[0].config, [("k".to_owned(), "1".to_owned())]);
    assert_eq!(steps[1].path, config.plugins_dir.join("b.wasm"));

    let config_with_chain = format!("{neither}[pipeline.config]\nk = 1\n{chain}");
    assert_eq!(
        error_lines(&config_with_chain),
        [
            "config/x.toml:10:1: pipeline `orders`: `config` cannot be used with `chain`; give each \
          step its own `config`"
        ]
    );

    let empty_chain = format!("{neither}chain = []\n");
    assert_eq!(
        error_lines(&empty_chain),
        ["config/x.toml:10:9: pipeline `orders`: `chain` is empty; list at least one plugin"]
    );

    let unknown_step_key = format!("{neither}[[pipeline.chain]]\nplugin = \"a\"\nconfg = {{}}\n");
    assert_eq!(
        error_lines(&unknown_step_key),
        ["config/x.toml:12:1: unknown field `confg`, expected `plugin` or `config`"]
    );
}

#[test]
fn shared_group_ids_and_allowed_output_loops() {
    let second = "[[pipeline]]\nname = \"two\"\ninputs = [\"orders\"]\nplugin = \"p\"\n\
                  output = \"o2\"\ndlq = \"d2\"\ngroup_id = \"sluice.orders\"\n\
                  allowed_outputs = [\"orders\"]\n";
    assert_eq!(
        error_lines(&format!("{MINIMAL}{second}")),
        [
            "config/x.toml:13:11: pipeline `two`: input `orders` is also in `allowed_outputs`: \
             the pipeline would consume what it writes (a loop)",
            "config/x.toml:17:12: pipeline `two`: group_id `sluice.orders` is already used by \
             pipeline `orders`; each pipeline needs its own consumer group",
        ]
    );
}

#[test]
fn reserved_and_passed_through_kafka_properties() {
    let text = MINIMAL.replace(
        "[plugins]",
        "[kafka.producer]\n\"bootstrap.servers\" = \"x\"\n\"acks\" = \"all\"\n\
         \"enable.idempotence\" = true\n\"batch.size\" = 16384\n[plugins]",
    );
    assert_eq!(
        error_lines(&text),
        [
            "config/x.toml:4:23: `kafka.producer`: `bootstrap.servers` cannot be set here: it is \
          set from `kafka.brokers`"
        ]
    );
    let config = parse_ok(&text.replace("\"bootstrap.servers\" = \"x\"\n", ""));
    let producer: Vec<_> = config
        .kafka
        .producer
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        producer,
        ["acks=all", "batch.size=16384", "enable.idempotence=true"]
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let retry = RetryPolicy::default();
    let ms = |n| Duration::from_millis(n);
    let delays: Vec<_> = (0..=8).map(|a| retry.backoff_for(a)).collect();
    assert_eq!(
        delays,
        [
            ms(0),
            ms(100),
            ms(200),
            ms(400),
            ms(800),
            ms(1600),
            ms(3200),
            ms(5000),
            ms(5000)
        ]
    );
    assert_eq!(retry.backoff_for(40), ms(5000));
    assert_eq!(retry.backoff_for(u32::MAX), ms(5000));
    let huge = RetryPolicy {
        attempts: 3,
        backoff: Duration::MAX,
        max_backoff: Duration::MAX,
    };
    assert_eq!(huge.backoff_for(3), Duration::MAX);
}

#[test]
fn restart_required_lists_kafka_and_plugin_dir_changes() {
    let old = parse_ok(MINIMAL);
    assert!(restart_required(&old, &old).is_empty());

    // A pipeline change is applied live: not listed.
    let new = parse_ok(&MINIMAL.replace("\"orders-out\"", "\"elsewhere\""));
    assert!(restart_required(&old, &new).is_empty());

    let changed = MINIMAL
        .replace("\"embedded\"", "\"k:9092\"\nclient_id = \"me\"")
        .replace("dir = \"plugins\"", "dir = \"/opt/plugins\"")
        .replace(
            "[plugins]",
            "[kafka.consumer]\n\"fetch.wait.max.ms\" = 10\n[plugins]",
        );
    let new = parse_ok(&changed);
    assert_eq!(
        restart_required(&old, &new),
        [
            "kafka.brokers: `embedded` -> `k:9092`".to_owned(),
            "kafka.client_id: `sluice` -> `me`".to_owned(),
            "kafka.consumer.\"fetch.wait.max.ms\": (unset) -> `10`".to_owned(),
            format!("plugins.dir: {} -> /opt/plugins", old.plugins_dir.display()),
        ]
    );
    assert_eq!(
        restart_required(&new, &old)[2],
        "kafka.consumer.\"fetch.wait.max.ms\": `10` -> (unset)"
    );
}

#[test]
fn pipeline_diff() {
    let two = |first_output: &str, second: &str| {
        parse_ok(&format!(
            "{}[[pipeline]]\nname = \"{second}\"\ninputs = [\"i\"]\nplugin = \"p\"\n\
             output = \"o\"\ndlq = \"d\"\n",
            MINIMAL.replace("orders-out", first_output)
        ))
    };
    let old = two("orders-out", "b");
    assert!(diff_pipelines(&old, &old).is_empty());
    // Moving a pipeline around the file (comments, blank lines) changes
    // nothing.
    let moved = parse_ok(&format!("# moved\n\n{}", old_text_of_two()));
    assert!(diff_pipelines(&old, &moved).is_empty());
    assert_eq!(old.pipelines, moved.pipelines);

    let new = two("orders-elsewhere", "c");
    assert_eq!(
        diff_pipelines(&old, &new),
        PipelineDiff {
            added: vec!["c".into()],
            removed: vec!["b".into()],
            changed: vec!["orders".into()],
        }
    );
}

fn old_text_of_two() -> String {
    format!(
        "{MINIMAL}[[pipeline]]\nname = \"b\"\ninputs = [\"i\"]\nplugin = \"p\"\n\
         output = \"o\"\ndlq = \"d\"\n"
    )
}

#[test]
fn missing_plugins_point_at_the_plugin_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/a.wasm"), b"").unwrap();
    std::fs::create_dir(dir.path().join("plugins/dir.wasm")).unwrap();
    let text = r#"[kafka]
brokers = "embedded"
[plugins]
dir = "plugins"
[[pipeline]]
name = "orders"
inputs = ["orders"]
output = "orders-out"
dlq = "orders-dlq"
[[pipeline.chain]]
plugin = "a"
[[pipeline.chain]]
  plugin = "nope"
[[pipeline.chain]]
plugin = "dir"
"#;
    let path = dir.path().join("x.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let plugins = dir.path().join("plugins");
    let problems = config.missing_plugins();
    let shown = display_problems(&path, &problems).to_string();
    assert_eq!(
        shown,
        format!(
            "{file}:13:12: pipeline `orders`: plugin `nope` not found: {nope} does not exist\n\
             {file}:15:10: pipeline `orders`: plugin `dir` not found: {dir} is not a file",
            file = path.display(),
            nope = plugins.join("nope.wasm").display(),
            dir = plugins.join("dir.wasm").display(),
        ),
        "in:\n{text}"
    );
}

#[test]
fn io_error_names_the_file() {
    let error = Config::load(Path::new("/nonexistent/sluice.toml")).unwrap_err();
    assert!(matches!(error, ConfigError::Io { .. }));
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/sluice.toml: cannot read: "),
        "{error}"
    );
    assert!(error.problems().is_empty());
}

#[test]
fn a_file_without_pipelines_is_invalid() {
    let text = "[kafka]\nbrokers = \"embedded\"\n[plugins]\ndir = \"p\"\n";
    assert_eq!(
        error_lines(text),
        ["config/x.toml: no pipeline: add a `[[pipeline]]` table"]
    );
}

#[test]
fn properties_at_least_once_depends_on_cannot_be_set() {
    let text = MINIMAL.replace(
        "[plugins]",
        "[kafka.consumer]\n\"enable.auto.commit\" = false\n\"enable.auto.offset.store\" = true\n[plugins]",
    );
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "config/x.toml:4:24: `kafka.consumer`: `enable.auto.commit` cannot be set here"
        ),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(
            "config/x.toml:5:30: `kafka.consumer`: `enable.auto.offset.store` cannot be set here"
        ),
        "{lines:?}"
    );
}
