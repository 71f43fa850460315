//! Bad files: every problem reported at once, with its position.

use super::*;

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

#[test]
fn instance_id_is_checked_and_defaults_to_the_environment() {
    // Given in the file: kept as written, the transactional id follows.
    let given = parse_ok(&MINIMAL.replace(
        "brokers = \"embedded\"",
        "brokers = \"embedded\"\ninstance_id = \"pod-1\"",
    ));
    assert_eq!(given.kafka.instance_id, "pod-1");
    assert_eq!(given.kafka.transactional_id("g"), "g-pod-1");

    // Not given: SLUICE_INSTANCE_ID, trimmed.
    let env = |name: &str| (name == "SLUICE_INSTANCE_ID").then(|| " from-env ".to_owned());
    let defaulted = Config::parse_with_env(MINIMAL, Path::new(FILE), &env).unwrap();
    assert_eq!(defaulted.kafka.instance_id, "from-env");

    // Neither: the host name, which is never empty.
    assert!(!parse_ok(MINIMAL).kafka.instance_id.is_empty());

    // Bad values, given or from the environment, are problems that say
    // where and why.
    let lines = error_lines(&MINIMAL.replace(
        "brokers = \"embedded\"",
        "brokers = \"embedded\"\ninstance_id = \"a b\"",
    ));
    assert_eq!(
        lines,
        [
            "config/x.toml:3:15: `kafka.instance_id` `a b` has ' ': use letters, digits, `.`, `_` \
          and `-`"
        ]
    );
    let env = |name: &str| (name == "SLUICE_INSTANCE_ID").then(|| "x/y".to_owned());
    let error = Config::parse_with_env(MINIMAL, Path::new(FILE), &env)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "the default `kafka.instance_id` ($SLUICE_INSTANCE_ID or the host name) `x/y` has '/'"
        ),
        "{error}"
    );
}
