//! `sluice demo`: the tutorial scenario on the pipelines of a config file
//! (the embedded broker by default). Produces orders for ten customers plus
//! a few malformed ones, lets the first pipeline process them, then shows
//! what landed in the result and dead-letter topics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::supervisor::Supervisor;

/// What the demo produces.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub orders: usize,
    pub customers: usize,
    pub timeout: Duration,
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Landed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Landed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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
pub fn run(config: Config, options: &DemoOptions) -> anyhow::Result<()> {
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
    let supervisor = Supervisor::start(config)?;
    let brokers = supervisor.brokers().to_owned();
    println!(
        "Sluice demo: pipeline `{}`, Kafka at {brokers}",
        pipeline.name
    );

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .context("cannot create the demo producer")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut records: Vec<(String, String)> = (0..options.orders)
        .map(|i| order(i, options.customers, now))
        .collect();
    records.extend(
        MALFORMED
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    for (key, value) in &records {
        let mut record = BaseRecord::to(&input).key(key).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("cannot write the demo orders")?;
    println!(
        "produced {} orders for {} customers and {} malformed records to `{input}`",
        options.orders,
        options.customers,
        MALFORMED.len()
    );

    // The demo's own clients go before the (possibly embedded) broker does.
    drop(producer);
    let expected = records.len();
    let (results, dead) = read_back(
        &brokers,
        &pipeline.output,
        &pipeline.dlq,
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

/// Reads the result and DLQ topics from the beginning until `expected`
/// records arrived or `timeout` passed.
pub fn read_back(
    brokers: &str,
    output: &str,
    dlq: &str,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<(Vec<Landed>, Vec<Landed>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sluice-demo-reader")
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create the demo reader")?;
    let mut tpl = TopicPartitionList::new();
    for topic in [output, dlq] {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("cannot read metadata of `{topic}`"))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let (mut results, mut dead) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + timeout;
    while results.len() + dead.len() < expected && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let landed = Landed {
            partition: message.partition(),
            offset: message.offset(),
            key: text(message.key()),
            value: text(message.payload()),
            headers: message
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_owned(), v.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        if message.topic() == output {
            results.push(landed);
        } else {
            dead.push(landed);
        }
    }
    Ok((results, dead))
}

/// The human-readable summary of what landed where.
pub fn report(
    output: &str,
    dlq: &str,
    results: &[Landed],
    dead: &[Landed],
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
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
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
    if let Some(sample) = results.first().and_then(|r| r.value.as_deref()) {
        let _ = writeln!(out, "  sample: {sample}");
    }
    let _ = writeln!(out, "\n`{dlq}`: {} dead letters", dead.len());
    for d in dead {
        let _ = writeln!(
            out,
            "  key={} kind={} source={}/{}@{}\n    message: {}\n    value: {}",
            d.key.as_deref().unwrap_or("-"),
            d.header("sluice.error.kind").unwrap_or("?"),
            d.header("sluice.source.topic").unwrap_or("?"),
            d.header("sluice.source.partition").unwrap_or("?"),
            d.header("sluice.source.offset").unwrap_or("?"),
            d.header("sluice.error.message").unwrap_or("?"),
            d.value.as_deref().unwrap_or("<tombstone>"),
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
