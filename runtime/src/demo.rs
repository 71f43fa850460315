//! `sluice demo`: the tutorial scenario on the pipelines of a config file
//! (the embedded broker by default). Waits until the first pipeline has
//! joined its group, produces orders for ten customers plus a few malformed
//! ones, lets the pipeline process them, then shows what landed in the
//! result and dead-letter topics.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::Config;
use crate::headers;
use crate::kafka::writer::owned_headers;
use crate::kafka::{RecordRef, TopicReader, Writer};
use crate::plugin::{Event, PluginEngine};
use crate::supervisor::Supervisor;

/// What the demo produces.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub orders: usize,
    pub customers: usize,
    pub timeout: Duration,
}

/// The tutorial's order `i`: `ORD-%04d` for customer `CUST-%03d`.
pub fn order(i: usize, customers: usize, now: f64) -> (String, String) {
    let customer = format!("CUST-{:03}", i % customers.max(1));
    let value = serde_json::json!({
        "order_id": format!("ORD-{i:04}"),
        "customer_id": customer,
        "amount": 10.0 + i as f64 * 1.5,
        "timestamp": now,
    });
    (customer, value.to_string())
}

/// Malformed orders the plugin must reject, as (key, value).
pub const MALFORMED: &[(&str, &str)] = &[
    ("bad-0", "this is not json"),
    (
        "bad-1",
        r#"{"order_id":"ORD-BAD1","customer_id":"CUST-000"}"#,
    ),
    (
        "bad-2",
        r#"{"order_id":"ORD-BAD2","customer_id":"CUST-001","amount":-5.0}"#,
    ),
];

/// Runs the demo and prints the report; fails if any order is unaccounted
/// for.
pub fn run(engine: PluginEngine, config: Config, options: &DemoOptions) -> anyhow::Result<()> {
    let pipeline = config
        .pipelines
        .first()
        .context("the config has no pipeline")?
        .clone();
    let input = pipeline
        .inputs
        .first()
        .context("the pipeline has no input")?
        .clone();
    let supervisor = Supervisor::start(engine, config)?;
    let brokers = supervisor.brokers().to_owned();
    println!(
        "Sluice demo: pipeline `{}`, Kafka at {brokers}",
        pipeline.name
    );
    wait_assigned(
        &supervisor,
        &pipeline.name,
        &pipeline.group_id,
        options.timeout,
    )?;

    let mut writer = Writer::to(&brokers, &[]).context("cannot create the demo producer")?;
    let now = crate::clock::now_ms() as f64 / 1000.0;
    // Outputs and dead letters inherit the header, so the read-back can
    // tell this run's records from an earlier run's on the same cluster.
    let run = format!("{}-{now}", std::process::id());
    let mut records: Vec<(String, String)> = (0..options.orders)
        .map(|i| order(i, options.customers, now))
        .collect();
    records.extend(
        MALFORMED
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    for (key, value) in &records {
        let record = RecordRef {
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            headers: owned_headers(std::iter::once((headers::DEMO_RUN, run.as_bytes()))),
            ..RecordRef::to(&input)
        };
        writer
            .send(record)
            .context("cannot write the demo orders")?;
    }
    writer
        .flush(Duration::from_secs(30))
        .context("cannot write the demo orders")?;
    println!(
        "produced {} orders for {} customers and {} malformed records to `{input}`",
        options.orders,
        options.customers,
        MALFORMED.len()
    );

    // The demo's own clients go before the (possibly embedded) broker does.
    drop(writer);
    let expected = records.len();
    let (results, dead) = read_back(
        &brokers,
        &pipeline.output,
        &pipeline.dlq,
        &run,
        expected,
        options.timeout,
    )?;
    let report = report(&pipeline.output, &pipeline.dlq, &results, &dead, expected);
    print!("{report}");
    drop(supervisor);
    if results.len() + dead.len() < expected {
        anyhow::bail!(
            "only {} of {expected} records accounted for",
            results.len() + dead.len()
        );
    }
    Ok(())
}

/// Waits until pipeline `name` owns partitions: a broker may take seconds
/// to admit a member to its group (tansu holds a join for half the session
/// timeout), which would otherwise eat into the read-back's timeout with
/// nothing to show for it.
fn wait_assigned(
    supervisor: &Supervisor,
    name: &str,
    group: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let status = supervisor
        .status()
        .pipeline(name)
        .with_context(|| format!("pipeline `{name}` is not running"))?;
    let started = Instant::now();
    println!("waiting for pipeline `{name}` to join group `{group}`...");
    loop {
        let assigned = status.view().assigned.len();
        if assigned > 0 {
            println!(
                "pipeline `{name}` owns {assigned} partitions (joined in {:.1} s)",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!("pipeline `{name}` was given no partition within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the result and DLQ topics from the beginning until `expected`
/// records of demo run `run` arrived or `timeout` passed.
pub fn read_back(
    brokers: &str,
    output: &str,
    dlq: &str,
    run: &str,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<(Vec<Event>, Vec<Event>)> {
    let reader = TopicReader::new(brokers, &[output, dlq], Duration::from_secs(10))
        .context("cannot read the results back")?;
    let (mut results, mut dead) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + timeout;
    while results.len() + dead.len() < expected && Instant::now() < deadline {
        let Some(record) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let record = record?;
        if header(&record, headers::DEMO_RUN).as_deref() != Some(run) {
            continue;
        }
        if record.topic == output {
            results.push(record);
        } else {
            dead.push(record);
        }
    }
    Ok((results, dead))
}

/// Bytes as text, invalid UTF-8 replaced.
fn text(bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
    bytes.map(String::from_utf8_lossy)
}

/// The value of a record's last header called `name`, as text.
fn header<'a>(record: &'a Event, name: &str) -> Option<Cow<'a, str>> {
    let value = record.headers.iter().rev().find(|(k, _)| k == name)?;
    text(Some(&value.1))
}

/// The human-readable summary of what landed where.
pub fn report(
    output: &str,
    dlq: &str,
    results: &[Event],
    dead: &[Event],
    expected: usize,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut tiers: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_customer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in results {
        let Some(json) = r
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        else {
            continue;
        };
        let tier = json["tier"].as_str().unwrap_or("?").to_owned();
        *tiers.entry(tier).or_default() += 1;
        if let (Some(c), Some(o)) = (json["customer_id"].as_str(), json["order_id"].as_str()) {
            per_customer
                .entry(c.to_owned())
                .or_default()
                .push(o.to_owned());
        }
    }
    let _ = writeln!(out, "\n`{output}`: {} enriched orders", results.len());
    let tiers: Vec<String> = tiers.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let _ = writeln!(out, "  tiers: {}", tiers.join(", "));
    for (customer, orders) in &per_customer {
        let in_order = orders.windows(2).all(|w| w[0] < w[1]);
        let _ = writeln!(
            out,
            "  {customer}: {} orders, {} .. {}, {}",
            orders.len(),
            orders.first().map_or("", String::as_str),
            orders.last().map_or("", String::as_str),
            if in_order { "in order" } else { "OUT OF ORDER" }
        );
    }
    if let Some(sample) = results.first().and_then(|r| text(r.value.as_deref())) {
        let _ = writeln!(out, "  sample: {sample}");
    }
    let _ = writeln!(out, "\n`{dlq}`: {} dead letters", dead.len());
    for d in dead {
        let or = |value: Option<Cow<'_, str>>, missing: &'static str| {
            value.unwrap_or(Cow::Borrowed(missing)).into_owned()
        };
        let _ = writeln!(
            out,
            "  key={} kind={} source={}/{}@{}\n    message: {}\n    value: {}",
            or(text(d.key.as_deref()), "-"),
            or(header(d, headers::KIND), "?"),
            or(header(d, headers::SOURCE_TOPIC), "?"),
            or(header(d, headers::SOURCE_PARTITION), "?"),
            or(header(d, headers::SOURCE_OFFSET), "?"),
            or(header(d, headers::MESSAGE), "?"),
            or(text(d.value.as_deref()), "<tombstone>"),
        );
    }
    let total = results.len() + dead.len();
    let _ = writeln!(
        out,
        "\naccounted for: {total} of {expected} records ({} results + {} dead letters){}",
        results.len(),
        dead.len(),
        if total == expected {
            ""
        } else {
            "  <-- MISSING RECORDS"
        }
    );
    out
}
