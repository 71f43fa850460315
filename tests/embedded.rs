//! The README's main job and the operations endpoint, on the embedded
//! broker (librdkafka's mock cluster, in the `sluice` process): `sluice
//! demo` accounts for every order, and `sluice run --http` serves its
//! status, metrics and health, then stops cleanly on SIGTERM.

use std::process::Command;

use sluice_testkit::sluice::{SluiceProcess, binary, digest_of_file, plugin_path, repo_dir};

/// Panics clearly if the demo's plugin is not built.
fn require_plugins() {
    plugin_path("order-enrich");
}

#[test]
fn demo_accounts_for_every_order() {
    require_plugins();
    let out = Command::new(binary())
        .current_dir(repo_dir())
        .env_remove("KAFKA_BROKERS")
        .args(["demo", "config/demo.toml", "--timeout-secs", "60"])
        .output()
        .expect("sluice demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("accounted for: 103 of 103 records (100 results + 3 dead letters)"),
        "{stdout}"
    );
    assert_eq!(stdout.matches(", in order").count(), 10, "{stdout}");
    assert!(!stdout.contains("OUT OF ORDER"), "{stdout}");
    assert_eq!(stdout.matches("kind=invalid").count(), 3, "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn run_serves_status_metrics_and_health_and_stops_on_sigterm() {
    require_plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = repo_dir().join("config/demo.toml");
    let mut run = SluiceProcess::start(&config, dir.path(), "run");
    let status = run.wait_status("the demo pipeline reading", |s| {
        s.state("orders") == Some("running") && s.assigned("orders") > 0
    });
    assert_eq!(
        status.digests("orders"),
        [digest_of_file(&plugin_path("order-enrich"))],
        "{:?}",
        status.0
    );

    let (code, health) = run.get("/healthz").expect("/healthz answers");
    assert_eq!((code, health.trim()), (200, "ok"));
    let (code, metrics) = run.get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    for family in ["sluice_events_total", "sluice_outputs_total"] {
        assert!(
            metrics.contains(&format!("{family}{{pipeline=\"orders\"}}")),
            "{metrics}"
        );
    }

    // SIGTERM: drain, commit, exit 0.
    run.stop();
    assert!(!run.stderr().contains("panicked"), "{}", run.describe());
}
