//! `sluice exec`, the binary, against the real plugins (built by
//! `scripts/build-plugins`): JSON-lines in, one JSON line per event out, the
//! state files, and clean errors (no panics) for everything a user can get
//! wrong.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use sluice_testkit::sluice::{exec_with_env, plugin_path};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs `sluice exec PLUGIN ARGS...`, feeding `stdin`, and returns what it
/// did.
fn exec(plugin: &Path, args: &[&str], stdin: &str) -> Output {
    exec_with_env::<&str>(plugin, args, stdin, &[])
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 stdout")
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
        })
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A run that must have succeeded.
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "sluice failed with {}: {}",
        output.status,
        stderr(output)
    );
}

/// A run that must have failed cleanly: non-zero exit, every `needles` in
/// stderr, and no Rust panic.
fn assert_clean_failure(output: &Output, needles: &[&str]) {
    let text = stderr(output);
    assert!(
        !output.status.success(),
        "expected failure, got {}; stderr: {text}",
        output.status
    );
    for needle in needles {
        assert!(
            text.contains(needle),
            "stderr should mention {needle:?}: {text}"
        );
    }
    assert!(!text.contains("panicked"), "sluice panicked: {text}");
}

fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const GOOD_ORDER: &str = r#"{"topic":"orders","partition":2,"offset":40,"key":"CUST-001","value":{"order_id": "ORD-0001", "customer_id": "CUST-001", "amount": 11.5, "timestamp": 1732400000.0},"headers":{"source":"web"}}"#;

/// Good and bad orders; the malformed value is a JSON string that is not
/// JSON inside.
fn orders_input() -> String {
    [
        GOOD_ORDER,
        r#"{"value":"not json"}"#,
        r#"{"value":{"order_id":"ORD-0002"}}"#,
        "",
        r#"{"value":{"order_id":"ORD-0003","amount":-1.5}}"#,
    ]
    .join("\n")
        + "\n"
}

fn assert_orders_output(lines: &[Value]) {
    assert_eq!(lines.len(), 4, "one output line per input event: {lines:?}");
    assert_eq!(
        lines[0],
        json!({
            "line": 1,
            "offset": 40,
            "ok": true,
            "outputs": [{
                "topic": null,
                "key": "CUST-001",
                "value": r#"{"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000.0}"#,
                "headers": [["source", "web"]],
            }],
        })
    );
    // Offsets default to the event's index, lines count the blank line.
    let expected_bad = [
        (2, 1, "event value is not valid JSON"),
        (3, 2, "missing field `amount`"),
        (5, 3, "field `amount` must not be negative, got -1.5"),
    ];
    for (got, (line, offset, message)) in lines[1..].iter().zip(expected_bad) {
        assert_eq!(got["line"], line, "{got}");
        assert_eq!(got["offset"], offset, "{got}");
        assert_eq!(got["ok"], false, "{got}");
        assert_eq!(got["error"]["kind"], "invalid", "{got}");
        let text = got["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{got}");
        assert!(got.get("outputs").is_none(), "{got}");
    }
}

// ---------------------------------------------------------------------------
// Processing
// ---------------------------------------------------------------------------

#[test]
fn order_enrich_over_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "orders.jsonl", orders_input());
    let output = exec(
        &plugin_path("order-enrich"),
        &["--input", input.to_str().unwrap()],
        "",
    );
    assert_success(&output);
    assert_orders_output(&stdout_lines(&output));
    assert!(!stderr(&output).contains("panicked"));
}

#[test]
fn order_enrich_over_stdin() {
    let plugin = plugin_path("order-enrich");
    // `--input -` and no `--input` both read stdin; a batch size smaller
    // than the input changes nothing.
    for args in [&["--input", "-"][..], &[], &["--batch-size", "2"]] {
        let output = exec(&plugin, args, &orders_input());
        assert_success(&output);
        assert_orders_output(&stdout_lines(&output));
    }
}

#[test]
fn config_reaches_the_plugin() {
    let output = exec(
        &plugin_path("router"),
        &[
            "--config",
            "field=type",
            "-c",
            "routes=order:orders",
            "--config",
            "copy_to=audit",
        ],
        "{\"value\":{\"type\":\"order\"}}\n{\"value\":{\"type\":\"ping\"}}\n",
    );
    assert_success(&output);
    let lines = stdout_lines(&output);
    let topics = |line: &Value| -> Vec<Value> {
        line["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["topic"].clone())
            .collect()
    };
    assert_eq!(lines.len(), 2);
    assert_eq!(topics(&lines[0]), [json!("orders"), json!("audit")]);
    assert_eq!(topics(&lines[1]), [json!("audit")]);
}

#[test]
fn an_event_with_more_outputs_than_the_cap_is_rejected_whole() {
    let output = exec(
        &plugin_path("hostile"),
        &["--max-outputs", "3"],
        "{\"value\":\"fanout:3\"}\n{\"value\":\"fanout:4\"}\n{\"value\":\"fanout:100000\"}\n",
    );
    assert_success(&output);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let values: Vec<&Value> = lines[0]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["value"])
        .collect();
    assert_eq!(
        values,
        [&json!("0"), &json!("1"), &json!("2")],
        "at the cap"
    );
    for (line, count) in lines[1..].iter().zip(["4", "100000"]) {
        assert_eq!(line["ok"], false, "{line}");
        assert_eq!(line["error"]["kind"], "output-rejected", "{line}");
        assert_eq!(
            line["error"]["message"],
            format!("{count} outputs for one event, over the cap of 3 outputs per event"),
            "{line}"
        );
    }

    // The default cap is 1000.
    let output = exec(
        &plugin_path("hostile"),
        &[],
        "{\"value\":\"fanout:1000\"}\n{\"value\":\"fanout:1001\"}\n",
    );
    assert_success(&output);
    let lines = stdout_lines(&output);
    assert_eq!(lines[0]["outputs"].as_array().map(Vec::len), Some(1000));
    assert_eq!(lines[1]["error"]["kind"], "output-rejected", "{}", lines[1]);
}

#[test]
fn a_plugin_flooding_the_log_is_cut_to_its_budget_with_a_count_of_the_rest() {
    use sluice::plugin::log_limit::{LOG_BURST, LOG_LINES_PER_SEC};
    const LINES: u64 = 100_000;
    let started = std::time::Instant::now();
    let output = exec_with_env(
        &plugin_path("hostile"),
        &[],
        &format!("{{\"value\":\"spam:{LINES}\"}}\n{{\"value\":\"after\"}}\n"),
        &[("SLUICE_LOG", "info")],
    );
    let elapsed = started.elapsed();
    assert_success(&output);
    assert_eq!(stdout_lines(&output).len(), 2);
    let text = stderr(&output);
    let logged = text.matches("spam line").count() as u64;
    let suppressed: u64 = text
        .lines()
        .filter(|line| line.contains("plugin log lines suppressed"))
        .map(|line| {
            let count = line
                .split("suppressed=")
                .nth(1)
                .unwrap_or_else(|| panic!("{line}"));
            count
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .sum();
    // Every line is either logged or counted, never both, never neither.
    assert_eq!(logged + suppressed, LINES, "{logged} logged:\n{text}");
    // What got through is the burst plus what the budget refilled while
    // the process ran (its whole run bounds the plugin's).
    let budget = u64::from(LOG_BURST) + u64::from(LOG_LINES_PER_SEC) * (elapsed.as_secs() + 1);
    assert!(logged <= budget, "{logged} lines logged in {elapsed:?}");
    assert!(logged >= u64::from(LOG_BURST), "{logged}");
}

#[test]
fn hostile_loop_times_out_and_the_next_line_is_fine() {
    let output = exec(
        &plugin_path("hostile"),
        &["--deadline-ms", "200"],
        "{\"value\":\"loop\"}\n{\"value\":\"hello\",\"key\":\"k\"}\n",
    );
    assert_success(&output);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["ok"], false, "{}", lines[0]);
    assert_eq!(lines[0]["error"]["kind"], "timeout", "{}", lines[0]);
    assert!(
        lines[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("200 ms"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        json!({
            "line": 2,
            "offset": 1,
            "ok": true,
            "outputs": [{"topic": null, "key": "k", "value": "hello", "headers": []}],
        })
    );
}

#[test]
fn sandbox_grants_from_the_command_line() {
    let plugin = plugin_path("hostile");
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "note.txt", "from the host");
    let input = "{\"value\":\"env\"}\n{\"value\":\"read-file:/data/note.txt\"}\n";
    let value_of = |line: &Value| line["outputs"][0]["value"].as_str().unwrap().to_owned();

    let denied = exec(&plugin, &[], input);
    assert_success(&denied);
    let lines = stdout_lines(&denied);
    assert_eq!(value_of(&lines[0]), "[]");
    assert!(value_of(&lines[1]).starts_with("err:"), "{}", lines[1]);

    let grant = format!("{}:/data", dir.path().display());
    let granted = exec(
        &plugin,
        &["--allow-env", "GREETING=hi", "--allow-dir", &grant],
        input,
    );
    assert_success(&granted);
    let lines = stdout_lines(&granted);
    assert_eq!(value_of(&lines[0]), r#"[["GREETING","hi"]]"#);
    assert_eq!(value_of(&lines[1]), "ok:from the host");
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn missing_plugin_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.wasm");
    let output = exec(&missing, &[], "");
    assert_clean_failure(&output, &[missing.to_str().unwrap(), "cannot read"]);
    assert!(output.stdout.is_empty());
}

#[test]
fn a_plugin_that_cannot_be_read() {
    // A directory where the `.wasm` should be: reading it fails for every
    // user, root included (file permissions would not stop root).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-file.wasm");
    std::fs::create_dir(&path).unwrap();
    let output = exec(&path, &[], "{\"value\":\"x\"}\n");
    assert_clean_failure(&output, &[path.to_str().unwrap(), "cannot read"]);
    assert!(output.stdout.is_empty());
}

#[test]
fn a_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "notes.wasm", "just some text\n");
    let output = exec(&path, &[], "{\"value\":\"x\"}\n");
    assert_clean_failure(&output, &[path.to_str().unwrap(), "not a WebAssembly"]);
    assert!(output.stdout.is_empty());
}

#[test]
fn a_component_of_the_wrong_world() {
    let path = plugin_path("wrong-world");
    let output = exec(&path, &[], "{\"value\":\"x\"}\n");
    assert_clean_failure(
        &output,
        &[path.to_str().unwrap(), "does not implement", "processor"],
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_plugin_whose_init_fails() {
    let path = plugin_path("init-fails");
    let output = exec(&path, &[], "{\"value\":\"x\"}\n");
    assert_clean_failure(&output, &["init-fails", "this plugin refuses to start"]);
}

#[test]
fn a_malformed_line_stops_after_the_lines_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(
        dir.path(),
        "events.jsonl",
        "{\"value\":\"one\"}\n{\"value\":\"two\"}\n{\"value\": \n{\"value\":\"four\"}\n",
    );
    let plugin = plugin_path("passthrough");
    let output = exec(&plugin, &["--input", input.to_str().unwrap()], "");
    assert_clean_failure(&output, &["line 3", input.to_str().unwrap()]);
    let lines = stdout_lines(&output);
    let values: Vec<&Value> = lines.iter().map(|l| &l["outputs"][0]["value"]).collect();
    assert_eq!(values, [&json!("one"), &json!("two")], "{lines:?}");
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[1]["line"], 2);

    // The same from stdin, where the source is called stdin.
    let output = exec(
        &plugin,
        &[],
        "{\"value\":\"one\"}\n{\"value\":\"two\"}\n{\"valu\":\"three\"}\n",
    );
    assert_clean_failure(&output, &["line 3", "stdin", "unknown field `valu`"]);
    assert_eq!(stdout_lines(&output).len(), 2);
}

#[test]
fn missing_input_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.jsonl");
    let output = exec(
        &plugin_path("passthrough"),
        &["--input", missing.to_str().unwrap()],
        "",
    );
    assert_clean_failure(&output, &[missing.to_str().unwrap()]);
}

#[test]
fn config_without_equals_is_a_usage_error() {
    let output = exec(
        &plugin_path("passthrough"),
        &["--config", "silver_from"],
        "",
    );
    assert_clean_failure(&output, &["silver_from", "key=value"]);
    // clap's usage errors exit with 2.
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}

#[test]
fn compiled_plugins_are_cached_and_a_damaged_entry_is_replaced() {
    let cache = tempfile::tempdir().unwrap();
    let env = [("SLUICE_CACHE_DIR", cache.path())];
    let plugin = plugin_path("passthrough");
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    let run = || {
        let output = exec_with_env(&plugin, &[], "{\"value\":\"x\"}\n", &env);
        assert_success(&output);
        assert_eq!(stdout_lines(&output)[0]["outputs"][0]["value"], "x");
    };

    run();
    let first = entries();
    assert_eq!(first.len(), 1, "one entry for one plugin: {first:?}");
    let written = std::fs::read(&first[0]).unwrap();

    // A second run uses the entry (and leaves it alone).
    run();
    assert_eq!(std::fs::read(&first[0]).unwrap(), written);

    // A damaged entry is never run: the plugin is compiled again and the
    // entry rewritten.
    let mut damaged = written.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x5a;
    std::fs::write(&first[0], &damaged).unwrap();
    run();
    assert_eq!(std::fs::read(&first[0]).unwrap(), written);

    // `off` turns it off.
    std::fs::remove_dir_all(cache.path()).unwrap();
    let off = exec_with_env(
        &plugin,
        &[],
        "{\"value\":\"x\"}\n",
        &[("SLUICE_CACHE_DIR", Path::new("off"))],
    );
    assert_success(&off);
    assert!(!cache.path().exists(), "nothing written with the cache off");
}

// ---------------------------------------------------------------------------
// State (`--state-in`, `--state-out`), with the state-probe fixture
// ---------------------------------------------------------------------------

/// Runs the state-probe fixture over `lines`.
fn exec_probe(args: &[&str], lines: &[Value]) -> Output {
    let stdin: String = lines.iter().map(|l| format!("{l}\n")).collect();
    exec(&plugin_path("state-probe"), args, &stdin)
}

/// Each line's output value, or `!<kind>` for an event that failed.
fn values(output: &Output) -> Vec<Value> {
    stdout_lines(output)
        .into_iter()
        .map(|line| match line["ok"].as_bool() {
            Some(true) => line["outputs"][0]["value"].clone(),
            _ => json!(format!("!{}", line["error"]["kind"].as_str().unwrap())),
        })
        .collect()
}

#[test]
fn state_is_seeded_from_a_file_and_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let state_in = dir.path().join("in.json");
    let state_out = dir.path().join("out.json");
    let seed = json!({
        "0": {"balance": "800", "raw": {"base64": "AP8="}},
        "3": [[{"base64": "/w=="}, "binary key"], ["text", "t"]],
    });
    std::fs::write(&state_in, seed.to_string()).unwrap();
    let lines = [
        json!({"partition": 0, "value": "get balance"}),
        json!({"partition": 3, "value": "get text"}),
        json!({"partition": 0, "value": "set balance 1000"}),
        json!({"partition": 5, "value": "set new yes"}),
        json!({"partition": 5, "value": "big v 1048577"}),
    ];
    let out = exec_probe(
        &[
            "--state-in",
            &state_in.display().to_string(),
            "--state-out",
            &state_out.display().to_string(),
        ],
        &lines,
    );
    assert_success(&out);
    assert_eq!(
        values(&out),
        [
            json!("800"),
            json!("t"),
            json!("ok"),
            json!("ok"),
            json!("!state-limit")
        ]
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_out).unwrap()).unwrap();
    assert_eq!(
        written,
        json!({
            "0": {"balance": "1000", "raw": {"base64": "AP8="}},
            "3": [["text", "t"], [{"base64": "/w=="}, "binary key"]],
            "5": {"new": "yes"},
        })
    );

    // What it wrote reads back as the same state.
    let again = exec_probe(
        &[
            "--state-in",
            &state_out.display().to_string(),
            "--state-out",
            &state_in.display().to_string(),
        ],
        &[],
    );
    assert_success(&again);
    let reread: Value = serde_json::from_str(&std::fs::read_to_string(&state_in).unwrap()).unwrap();
    assert_eq!(reread, written);
}

#[test]
fn a_bad_state_file_is_named_with_the_place_of_its_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    for (text, expect) in [
        ("{\"0\": {\n  \"a\": \"1\",\n}", "line 3 column 1"),
        ("{\"zero\": {}}", "`zero` is not a partition number"),
        (
            "{\"0\": {\"a\": 1}}",
            "partition 0, key a: expected a string",
        ),
        ("[]", "expected an object of partitions"),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = exec_probe(&["--state-in", &path.display().to_string()], &[]);
        assert!(!out.status.success(), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains(&path.display().to_string()) && err.contains(expect),
            "{text}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let missing = exec_probe(&["--state-in", "/nonexistent/state.json"], &[]);
    assert!(stderr(&missing).contains("/nonexistent/state.json: cannot read"));
}
