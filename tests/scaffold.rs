//! `sluice new`, as a plugin author uses it: for each language, scaffold a
//! project, run its unit tests and build it with the commands its README
//! gives, then run the component over its sample events with `sluice exec`.
//! Needs the toolchains `scripts/setup` installs.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sluice_testkit::sluice::{binary, repo_dir};

/// Runs `command` in `dir`; its stdout and stderr, or a panic with
/// everything it said.
fn run(dir: &Path, command: &mut Command) -> (String, String) {
    let shown = format!("{command:?}");
    let output = command
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{shown} in {}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        dir.display(),
        output.status,
    );
    (stdout, stderr)
}

/// `sluice new NAME --lang LANG` in a fresh directory: that directory (kept
/// alive by the returned guard) and the project's path.
fn scaffold(name: &str, lang: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (said, _) = run(
        dir.path(),
        Command::new(binary()).args(["new", name, "--lang", lang, "--dir", "."]),
    );
    assert!(said.contains(name), "{said}");
    let project = dir.path().join(name);
    assert!(project.join("README.md").is_file(), "{said}");
    assert!(project.join("events.jsonl").is_file(), "{said}");
    (dir, project)
}

/// The component over the project's `events.jsonl` with `label=ci`: the
/// two JSON objects come out labelled, the rest are `invalid` dead letters.
fn assert_runs(project: &Path, component: &Path) {
    let (out, _) = run(
        project,
        Command::new(binary())
            .arg("exec")
            .arg(component)
            .args(["-i", "events.jsonl", "-c", "label=ci"])
            .env("SLUICE_LOG", "warn"),
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (line, order) in lines[..2].iter().zip(["ORD-0001", "ORD-0002"]) {
        assert_eq!(line["ok"], true, "{line}");
        let outputs = line["outputs"].as_array().expect("outputs");
        assert_eq!(outputs.len(), 1, "{line}");
        let value: Value =
            serde_json::from_str(outputs[0]["value"].as_str().expect("a text value"))
                .expect("a JSON value");
        assert_eq!(value["order_id"], order, "{line}");
        assert_eq!(value["processed_by"], "ci", "{line}");
    }
    let kinds: Vec<&Value> = lines[2..].iter().map(|l| &l["error"]["kind"]).collect();
    assert_eq!(kinds, ["invalid", "invalid"], "{out}");
    assert!(
        lines[3]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("JSON object")),
        "{out}"
    );
}

#[test]
fn a_new_rust_plugin_tests_builds_and_runs() {
    let (_dir, project) = scaffold("hello-rust", "rust");
    // The versions the SDK is tested with, and a target directory of its
    // own (the suite's is locked while tests run) that later runs reuse.
    std::fs::copy(repo_dir().join("Cargo.lock"), project.join("Cargo.lock"))
        .expect("copy Cargo.lock");
    let target = repo_dir().join("target/scaffold");
    let cargo = || {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.env("CARGO_TARGET_DIR", &target);
        cargo
    };
    run(&project, cargo().args(["test", "--release"]));
    run(
        &project,
        cargo().args(["build", "--release", "--target", "wasm32-wasip2"]),
    );
    assert_runs(
        &project,
        &target.join("wasm32-wasip2/release/hello_rust.wasm"),
    );
}

#[test]
fn a_new_python_plugin_tests_builds_and_runs() {
    let (_dir, project) = scaffold("hello-python", "python");
    // The README's way without installing the SDK: it on PYTHONPATH.
    let python = || {
        let mut python = Command::new("python3");
        python.env("PYTHONPATH", repo_dir().join("plugins/python"));
        python
    };
    let (_, tests) = run(&project, python().args(["-m", "unittest"]));
    assert!(tests.contains("Ran 2 tests"), "{tests}");
    run(
        &project,
        python().args([
            "-m",
            "sluice_sdk",
            "build",
            "hello_python.py",
            "-o",
            "hello-python.wasm",
        ]),
    );
    assert_runs(&project, &project.join("hello-python.wasm"));
}

#[test]
fn a_new_javascript_plugin_tests_builds_and_runs() {
    let (_dir, project) = scaffold("hello-js", "js");
    let npm = || Command::new("npm");
    run(
        &project,
        npm().args(["install", "--no-audit", "--no-fund", "--loglevel=error"]),
    );
    let (tests, _) = run(&project, npm().arg("test"));
    assert!(tests.contains("# pass 2"), "{tests}");
    run(&project, npm().args(["run", "build"]));
    assert_runs(&project, &project.join("hello-js.wasm"));
}
