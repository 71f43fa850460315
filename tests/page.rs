//! The status page of `sluice run --http` in a real browser: headless
//! Chromium (Debian's `chromium`, from `scripts/setup`; `SLUICE_CHROMIUM`
//! names another) loads `/` from a pipeline on a real broker (tansu) and
//! its DOM, once the page's script ran, is read back. It shows the
//! pipeline, a dead letter and its reason, and markup in an event's value
//! and headers as text: none of it becomes an element or runs.
//!
//!     cargo test --release -p sluice --test e2e page::

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::kafka::{TestProducer, read_all};
use sluice_testkit::sluice::{Scene, SluiceProcess, TIMEOUT};

/// Runs (would run) script in the page if it were inserted as markup.
const HOSTILE_VALUE: &str =
    r#"<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'">"#;
const HOSTILE_HEADER: &str = r#"<img src=x onerror="document.title='pwned'"><b>bold</b>"#;

fn chromium() -> PathBuf {
    let path = std::env::var_os("SLUICE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.is_file(),
        "{} is missing: scripts/setup installs Chromium (Debian's `chromium`), \
         or set SLUICE_CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// The DOM of `url` after its scripts ran for 10 s of virtual time.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = waiter
        .join()
        .expect("the waiting thread")
        .expect("chromium's output");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({}):\n{}\n{dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// `text` as a serialized DOM writes a text node.
fn as_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// Waits until the pipeline's latest dead letters hold `n`, and returns them.
fn wait_dead_letters(run: &SluiceProcess, pipeline: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answer = run.get(&format!("/api/pipelines/{pipeline}/dead-letters"));
        if let Some((200, body)) = &answer {
            let view: Value = serde_json::from_str(body).expect("JSON");
            let list = view["dead_letters"].as_array().cloned().unwrap_or_default();
            if list.len() >= n {
                return list;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {n} dead letters within {TIMEOUT:?}: {answer:?}\n{}",
            run.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_page_shows_the_pipeline_and_its_dead_letters_as_text() {
    let scene = Scene::new();
    scene.create_topics(&[("orders", 1), ("orders-enriched", 1), ("orders-dlq", 1)]);
    let config = scene.write_config(
        "page.toml",
        &format!(
            r#"{}
[[pipeline]]
name = "orders"
inputs = ["orders"]
plugin = "order-enrich"
output = "orders-enriched"
dlq = "orders-dlq"
group_id = "page"
"#,
            scene.kafka_toml()
        ),
    );
    let mut run = scene.start(&config, "page");
    run.wait_assigned("orders", 1);

    let mut producer = TestProducer::new(&scene.bootstrap());
    for i in 0..5 {
        let order = format!(
            r#"{{"order_id":"ORD-{i}","customer_id":"CUST-001","amount":{}.5}}"#,
            10 + i
        );
        producer.send("orders", Some(b"CUST-001"), Some(order.as_bytes()));
    }
    producer.send_with_headers(
        "orders",
        Some(b"CUST-666"),
        Some(HOSTILE_VALUE.as_bytes()),
        &[("trace", HOSTILE_HEADER)],
    );
    producer.flush();
    run.wait_status("5 outputs and a dead letter", |s| {
        s.pipeline("orders")
            .is_some_and(|p| p["outputs"] == 5 && p["dead_letters_by_kind"]["invalid"] == 1)
    });
    let dead = wait_dead_letters(&run, "orders", 1);
    assert_eq!(dead[0]["kind"], "invalid", "{dead:?}");
    assert_eq!(dead[0]["value"]["text"], HOSTILE_VALUE, "{dead:?}");
    let reason = dead[0]["message"].as_str().expect("a reason").to_owned();
    assert!(reason.contains("not valid JSON"), "{reason}");

    let dom = dump_dom(&format!("http://{}/", run.http_addr()));
    let shown = |what: &str, needle: &str| {
        assert!(
            dom.contains(needle),
            "the page lacks {what} `{needle}`:\n{dom}"
        );
    };
    shown("the pipeline", "<h2>orders</h2>");
    shown(
        "the dead letter's kind",
        r#"data-label="Kind">invalid</td>"#,
    );
    shown("the dead letter's reason", &as_text(&reason));
    shown("the plugin", "order-enrich");
    shown("the value, as text", &as_text(HOSTILE_VALUE));
    shown("the header, as text", &as_text(HOSTILE_HEADER));
    shown("the time of its refresh", "updated ");

    let title = dom
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(title, _)| title);
    assert_eq!(title, Some("Sluice"), "{dom}");
    assert!(!dom.contains("<img"), "an element from an event: {dom}");
    assert!(!dom.contains("<b>bold"), "an element from a header: {dom}");
    assert!(
        !dom.contains("<script>document"),
        "a script from an event: {dom}"
    );
    run.stop();
}

/// Redrive through the API: refused without the token; with it, a dry run
/// writes nothing, and a redrive after the fix is deployed (the file names
/// another plugin) runs the current chain and writes the results once.
#[test]
fn redrive_through_the_api_needs_the_token_and_runs_the_current_chain() {
    const TOKEN: &str = "s3cret-token";
    const REDRIVE: &str = "/api/pipelines/orders/redrive";
    let scene = Scene::new();
    scene.create_topics(&[("orders", 1), ("orders-enriched", 1), ("orders-dlq", 1)]);
    let file = |plugin: &str| {
        format!(
            "{}\n[[pipeline]]\nname = \"orders\"\ninputs = [\"orders\"]\nplugin = \"{plugin}\"\n\
             output = \"orders-enriched\"\ndlq = \"orders-dlq\"\ngroup_id = \"api-redrive\"\n",
            scene.kafka_toml()
        )
    };
    let config = scene.write_config("redrive.toml", &file("order-enrich"));
    let mut run = scene.start_with_args(&config, "redrive", &["--http-token", TOKEN]);
    run.wait_assigned("orders", 1);

    let mut producer = TestProducer::new(&scene.bootstrap());
    producer.send(
        "orders",
        Some(b"CUST-001"),
        Some(br#"{"order_id":"ORD-1","customer_id":"CUST-001","amount":10.5}"#),
    );
    producer.send("orders", Some(b"CUST-002"), Some(b"not json 1"));
    producer.send("orders", Some(b"CUST-003"), Some(b"not json 2"));
    producer.flush();
    run.wait_status("1 output and 2 dead letters", |s| {
        s.pipeline("orders")
            .is_some_and(|p| p["outputs"] == 1 && p["dead_letters_by_kind"]["invalid"] == 2)
    });

    let (code, body) = run.post(REDRIVE, None, "{}");
    assert_eq!(code, 401, "{body}");
    let (code, body) = run.post(REDRIVE, Some("wrong"), "{}");
    assert_eq!(code, 401, "{body}");

    let (code, body) = run.post(REDRIVE, Some(TOKEN), r#"{"dry_run":true}"#);
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["summary"]["selected"], 2, "{answer}");
    assert_eq!(answer["summary"]["failed_again"], 2, "{answer}");
    assert_eq!(answer["records"][0]["result"], "dry-run", "{answer}");

    // Deploy the fix: the file now names a plugin that takes anything.
    std::fs::write(&config, file("passthrough")).expect("edit the config");
    let (code, body) = run.post(REDRIVE, Some(TOKEN), "{}");
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["summary"]["redriven"], 2, "{answer}");
    assert_eq!(answer["summary"]["outputs"], 2, "{answer}");

    let results = read_all(&scene.bootstrap(), "orders-enriched", 3, TIMEOUT);
    let mut from: Vec<_> = results
        .iter()
        .filter_map(|r| r.header("sluice.redriven.from").map(str::to_owned))
        .collect();
    from.sort();
    assert_eq!(from, ["orders-dlq/0/0", "orders-dlq/0/1"], "{results:?}");

    // Again: nothing left to redrive, nothing written.
    let (code, body) = run.post(REDRIVE, Some(TOKEN), "{}");
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["summary"]["read"], 0, "{answer}");
    assert_eq!(answer["summary"]["outputs"], 0, "{answer}");
    run.stop();
}
