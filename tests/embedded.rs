//! The README's main job and the operations endpoint, on the embedded
//! broker (librdkafka's mock cluster, in the `sluice` process): `sluice
//! demo` accounts for every order, and `sluice run --http` serves metrics
//! and health, then stops cleanly on SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::sluice::{binary, plugin_path, repo_dir};

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

/// Kills the child when the test ends, also when it fails.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET; returns the status line and the body.
fn get(addr: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

#[test]
fn run_serves_metrics_and_health_and_stops_on_sigterm() {
    require_plugins();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(dir.path().join("run.log")).expect("log file");
    let mut child = Reaper(
        Command::new(binary())
            .current_dir(repo_dir())
            .env_remove("KAFKA_BROKERS")
            .args(["run", "config/demo.toml", "--http", &addr])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sluice run starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        match get(&addr, "/healthz") {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no /healthz on {addr}: {e}"),
        }
    };
    assert!(health.0.contains("200"), "{health:?}");
    assert_eq!(health.1.trim(), "ok");
    let (status, metrics) = get(&addr, "/metrics").expect("/metrics answers");
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains("sluice_events_total{pipeline=\"orders\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_outputs_total{pipeline=\"orders\"}"),
        "{metrics}"
    );

    let pid = child.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.0.wait().expect("sluice run exits");
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("stopped pipeline=orders"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
