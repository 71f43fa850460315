//! `sluice-bench state`: what durable plugin state and exactly-once
//! delivery cost. Three tables:
//!
//! - **Cost of state per event** (no Kafka): [`PluginRunner::process`]
//!   on batches of `--batch-size` events, as `boundary` measures it (the
//!   calling thread's CPU), with a journaled [`PluginState`] seeded with
//!   `--keys` keys and its journal taken after every call, as a stateful
//!   pipeline's worker does. The fixture `state-probe` runs one command
//!   per event: `init-probe` calls no state function (the baseline),
//!   `get <k>` one get, `set <k> <v>` one set; each row's difference to
//!   the baseline is that state call, and a get + set is the sum of the
//!   two. `account-balance` (a deposit: JSON, a get, a set) is shown for
//!   scale.
//! - **Restore**: `--restore-keys` distinct keys written as changelog
//!   records in Sluice's format ([`Change::record`]) to a fresh changelog
//!   topic, then [`Restorer::restore`] of every partition of it, timed
//!   (wall, and the process's CPU: librdkafka's threads included), as at
//!   least-once (no offset check) and as exactly-once (every record's
//!   source offset checked against a committed offset). On tansu in one
//!   partition; on the mock cluster, which keeps ~5 MiB per partition,
//!   spread over as many partitions as that takes.
//! - **Delivery**: the `account-balance` pipeline (`--accounts` accounts,
//!   one `CREATED` each, then deposits, `--events` in all, keyed and
//!   partitioned by account over `--partitions` partitions) at
//!   at-least-once and at exactly-once for each `--commit-intervals`,
//!   measured as `throughput` measures Sluice ([`measure_pipeline`]); and
//!   the stateless `passthrough` on the same input at both, which
//!   separates the transactions' cost from the changelog's.
//!
//! The delivery runs go round after round over the variants, so a slow
//! spell of the machine falls on all of them alike; each row shows the
//! median, the range of events/s and the range of the load average.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::boundary::per_event;
use super::broker::{Broker, BrokerKind};
use super::throughput::{
    BrokerChoice, HostOptions, Run, WindowEnd, bulk_writer, measure_pipeline, median, produce,
    thousands,
};
use super::{load_average, machine, process_cpu};
use sluice::changelog::{Change, Restorer, record_key};
use sluice::config::{Config, Delivery, KafkaConfig};
use sluice::plugin::state::{PluginState, StateLimits};
use sluice::plugin::{
    CompiledPlugin, EngineOptions, Event, InstanceSettings, PluginEngine, PluginRunner,
};

/// The tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Table {
    /// Cost of a state get and set per event, no Kafka.
    Cost,
    /// Restore time of a changelog.
    Restore,
    /// Exactly-once against at-least-once throughput.
    Delivery,
}

/// `sluice-bench state` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Which tables.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "cost,restore,delivery"
    )]
    pub tables: Vec<Table>,
    /// Cost: events per row.
    #[arg(long, default_value_t = 1_000_000)]
    pub cost_events: usize,
    /// Cost: keys in the state (and accounts open).
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Restore: keys per changelog, one table row each.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub restore_keys: Vec<usize>,
    /// Restore and delivery: which broker(s).
    #[arg(long, value_enum, default_value = "both")]
    pub broker: BrokerChoice,
    /// Delivery: events per run (capped on the mock cluster, which keeps
    /// ~5 MiB per partition).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Delivery: accounts.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Delivery: partitions of the input (and output, DLQ, changelog).
    #[arg(long, default_value_t = 3)]
    pub partitions: usize,
    /// Delivery: the exactly-once `commit_interval_ms` values to run.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub commit_intervals: Vec<u64>,
    /// Delivery: runs per row; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    #[command(flatten)]
    pub host: HostOptions,
}

/// Runs the tables asked for.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let kinds = match options.broker {
        BrokerChoice::Mock => vec![BrokerKind::Mock],
        BrokerChoice::Tansu => vec![BrokerKind::Tansu],
        BrokerChoice::Both => vec![BrokerKind::Mock, BrokerKind::Tansu],
    };
    if options.tables.contains(&Table::Cost) {
        cost(options)?;
    }
    if options.tables.contains(&Table::Restore) {
        restore(options, &kinds)?;
    }
    if options.tables.contains(&Table::Delivery) {
        delivery(options, &kinds)?;
    }
    Ok(())
}

/// The state key of account `i`, as account-balance names it.
fn account_key(i: usize) -> String {
    format!("account/{}", account_id(i))
}

fn account_id(i: usize) -> String {
    format!("ACC-{i:07}")
}

/// An account's state as account-balance keeps it.
fn account_value(i: usize) -> String {
    format!(r#"{{"balance":{},"version":{}}}"#, 1000 + i, 1 + i % 50)
}

/// An account event as account-balance reads it.
fn account_event(account: usize, kind: &str, amount: usize) -> String {
    format!(
        r#"{{"account_id":"{}","type":"{kind}","amount":{amount}}}"#,
        account_id(account)
    )
}

/// Table 1: per-event CPU of state calls, no Kafka.
fn cost(options: &Options) -> anyhow::Result<()> {
    let dir = options.host.plugins_dir();
    let engine = PluginEngine::new(&EngineOptions::from_process_env())?;
    let load = |name: &str, path: &Path| {
        CompiledPlugin::load(&engine, name, path)
            .map(Arc::new)
            .with_context(|| format!("{} (run scripts/build-plugins)", path.display()))
    };
    let probe = load("state-probe", &dir.join("fixtures/state-probe.wasm"))?;
    let accounts = load("account-balance", &dir.join("account-balance.wasm"))?;
    let settings = Arc::new(InstanceSettings::default());
    let batch = options.host.batch_size.max(1);
    let keys = options.keys.max(1);
    // (plugin, what, state key of key i, the event of key i)
    type Rows<'a> = [(&'a Arc<CompiledPlugin>, &'a str, fn(usize) -> String); 4];
    let rows: Rows<'_> = [
        (
            &probe,
            "state-probe `init-probe`: no state call (baseline)",
            |_| "init-probe".to_owned(),
        ),
        (&probe, "state-probe `get <k>`: one get", |i| {
            format!("get {}", account_key(i))
        }),
        (&probe, "state-probe `set <k> <v>`: one set", |i| {
            format!("set {} {}", account_key(i), account_value(i))
        }),
        (
            &accounts,
            "account-balance deposit: JSON in and out, a get, a set",
            |i| account_event(i, "DEPOSITED", 1),
        ),
    ];
    println!();
    println!(
        "### Cost of state per event ({}; no Kafka; batch {batch}, {keys} keys in the state, journaled; load {})",
        machine(),
        load_average()
    );
    println!();
    println!(
        "Each event is one command of the fixture `state-probe` on a key of {} bytes with a value of ~{} bytes; \
         a row's difference to the baseline is what its state call costs, lowering, host function and the \
         state transaction included. A get + set is the sum of the two differences.",
        account_key(0).len(),
        account_value(0).len()
    );
    println!();
    println!("| event | CPU µs/event | wall µs/event | − baseline, µs |");
    println!("|---|---:|---:|---:|");
    let mut baseline = None;
    let mut calls = Vec::new();
    for (plugin, what, event) in rows {
        let mut state = PluginState::journaled(StateLimits::default());
        state.restore(
            0,
            (0..keys).map(|i| (account_key(i).into_bytes(), account_value(i).into_bytes())),
        );
        let mut runner = PluginRunner::with_state(plugin.clone(), settings.clone(), state)?;
        let events: Vec<Event> = (0..batch)
            .map(|i| Event {
                topic: "bench-in".into(),
                partition: 0,
                offset: i as i64,
                timestamp_ms: Some(1_732_400_000_000),
                key: Some(account_id(i % keys).into_bytes()),
                value: Some(event(i % keys).into_bytes()),
                headers: Vec::new(),
            })
            .collect();
        let (cpu, wall) = per_event(&mut runner, &events, options.cost_events, 100, |r| {
            std::hint::black_box(r.state_mut().take_journal());
        })?;
        let (cpu, wall) = (cpu / 1000.0, wall / 1000.0);
        let base = *baseline.get_or_insert(cpu);
        if plugin.name() == probe.name() && cpu != base {
            calls.push(cpu - base);
        }
        println!("| {what} | {cpu:.3} | {wall:.3} | {:+.3} |", cpu - base);
    }
    if let [get, set] = calls[..] {
        println!(
            "| **a get + a set** (the two differences) | | | **{:+.3}** |",
            get + set
        );
    }
    println!();
    Ok(())
}

/// The pipeline file of the restore: one step, `account-balance`, whose
/// state is in `changelog`.
fn restore_pipeline(bootstrap: &str, changelog: &str) -> anyhow::Result<Config> {
    let text = format!(
        "[kafka]\nbrokers = \"{bootstrap}\"\n[plugins]\ndir = \"plugins\"\n[[pipeline]]\n\
         name = \"restore\"\ninputs = [\"accounts-in\"]\noutput = \"out\"\ndlq = \"dlq\"\n\
         plugin = \"account-balance\"\n[pipeline.state]\nchangelog = \"{changelog}\"\n"
    );
    Ok(Config::parse(&text, Path::new("restore.toml"))?)
}

/// Bytes a changelog record of the restore takes at the broker (key,
/// value, headers and record overhead), for the mock's partition budget.
const CHANGELOG_RECORD_BYTES: usize = 120;

/// Table 2: restore time.
fn restore(options: &Options, kinds: &[BrokerKind]) -> anyhow::Result<()> {
    println!();
    println!(
        "### Restore ({}; one restore of every partition of the changelog; load {})",
        machine(),
        load_average()
    );
    println!();
    println!(
        "| broker | keys | parts | consumer | delivery | wall ms | ms per 100k keys | keys/s | CPU ms | write (not timed) s |"
    );
    println!("|---|---:|---:|---|---|---:|---:|---:|---:|---:|");
    for &kind in kinds {
        let mut broker = Broker::start(kind)?;
        for (n, &keys) in options.restore_keys.iter().enumerate() {
            let partitions = match kind {
                BrokerKind::Mock => (keys * CHANGELOG_RECORD_BYTES)
                    .div_ceil(super::broker::MOCK_PARTITION_BUDGET)
                    .max(1),
                BrokerKind::Tansu => 1,
            };
            let changelog = format!("bench-{}-{}-changelog-{n}", std::process::id(), kind.name());
            broker.create_topic(&changelog, partitions)?;
            let config = restore_pipeline(broker.bootstrap(), &changelog)?;
            let pipeline = &config.pipelines[0];
            let step = pipeline.state_names().remove(0);
            let t0 = Instant::now();
            let mut writer = bulk_writer(broker.bootstrap())?;
            let source_topic: Arc<str> = Arc::from("accounts-in");
            for i in 0..keys {
                let change = Change {
                    partition: (i % partitions) as i32,
                    key: record_key(&step, account_key(i).as_bytes()),
                    value: Some(account_value(i).into_bytes()),
                    source_topic: source_topic.clone(),
                    source_offset: (i / partitions).to_string(),
                };
                writer.send(change.record(&changelog))?;
            }
            writer.flush(Duration::from_secs(300))?;
            let write = t0.elapsed();
            drop(writer);
            let all: Vec<i32> = (0..partitions as i32).collect();
            let committed = |_: &str, _: i32| Some(i64::MAX);
            for client in [None, Some(SHORT_FETCH_BACKOFF)] {
                // The pipelines' client settings (and `--consumer`), as a
                // pipeline's restore has them; then with a short
                // `fetch.queue.backoff.ms`.
                let mut kafka = options.host.kafka_config(broker.bootstrap())?;
                if let Some((key, value)) = client {
                    kafka.consumer.insert(key.to_owned(), value.to_owned());
                }
                for (delivery, committed) in [
                    (Delivery::AtLeastOnce, None),
                    (
                        Delivery::ExactlyOnce,
                        Some(&committed as sluice::changelog::Committed<'_>),
                    ),
                ] {
                    // A fresh reader each time, as a pipeline starting has:
                    // a second restore on the same consumer measured
                    // ~0.5 s slower at 100k keys.
                    let restorer = Restorer::new(&kafka, broker.bootstrap(), pipeline)?;
                    let (wall, cpu) = timed_restore(&restorer, &all, committed, keys)?;
                    let ms = wall.as_secs_f64() * 1e3;
                    println!(
                        "| {} | {keys} | {partitions} | {} | {} | {ms:.0} | {:.0} | {} | {:.0} | {:.1} |",
                        kind.name(),
                        client.map_or("defaults".to_owned(), |(k, v)| format!("`{k}={v}`")),
                        delivery.as_str(),
                        ms * 100_000.0 / keys as f64,
                        thousands(keys as f64 / wall.as_secs_f64()),
                        cpu.as_secs_f64() * 1e3,
                        write.as_secs_f64(),
                    );
                }
            }
        }
    }
    println!();
    Ok(())
}

/// The consumer setting the restore table also runs with: librdkafka
/// waits `fetch.queue.backoff.ms` (default 1000) before fetching again
/// once a partition's queue holds `queued.min.messages` (default 100 000).
const SHORT_FETCH_BACKOFF: (&str, &str) = ("fetch.queue.backoff.ms", "10");

/// Wall and process CPU time of restoring `partitions`, checked to give
/// `keys` keys.
fn timed_restore(
    restorer: &Restorer,
    partitions: &[i32],
    committed: Option<sluice::changelog::Committed<'_>>,
    keys: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let (t0, cpu0) = (Instant::now(), process_cpu());
    let restored = restorer.restore(partitions, committed, &|| false);
    let (wall, cpu) = (t0.elapsed(), process_cpu().saturating_sub(cpu0));
    let mut got = 0;
    for (partition, result) in restored {
        let state = result.with_context(|| format!("restoring partition {partition}"))?;
        got += state.iter().map(BTreeMap::len).sum::<usize>();
    }
    if got != keys {
        bail!("restored {got} of {keys} keys from {}", restorer.topic());
    }
    Ok((wall, cpu))
}

/// One row of the delivery table.
struct Variant {
    plugin: &'static str,
    delivery: Delivery,
    commit_interval: Option<Duration>,
}

impl Variant {
    fn label(&self) -> String {
        match self.commit_interval {
            Some(interval) => format!("{} ({} ms)", self.delivery.as_str(), interval.as_millis()),
            None => self.delivery.as_str().to_owned(),
        }
    }
}

/// Table 3: exactly-once against at-least-once.
fn delivery(options: &Options, kinds: &[BrokerKind]) -> anyhow::Result<()> {
    let mut variants = Vec::new();
    for plugin in ["account-balance", "passthrough"] {
        variants.push(Variant {
            plugin,
            delivery: Delivery::AtLeastOnce,
            commit_interval: None,
        });
        for &ms in &options.commit_intervals {
            variants.push(Variant {
                plugin,
                delivery: Delivery::ExactlyOnce,
                commit_interval: Some(Duration::from_millis(ms)),
            });
        }
    }
    let partitions = options.partitions.max(1);
    let accounts = options.accounts.max(1);
    let mut tables = Vec::new();
    for &kind in kinds {
        let mut broker = Broker::start(kind)?;
        let kafka = options.host.kafka_config(broker.bootstrap())?;
        // The longest event, for the mock's cap.
        let size = account_event(accounts, "DEPOSITED", 1).len() + "sluice.source".len();
        let events = match kind.max_events(size, partitions) {
            Some(max) => options.events.min(max),
            None => options.events,
        };
        // Round after round over the variants, so that a slow spell of
        // the machine falls on all of them alike.
        let repeat = options.repeat.max(1);
        let mut runs: Vec<Vec<(Run, f64)>> = variants.iter().map(|_| Vec::new()).collect();
        for _ in 0..repeat {
            for (variant, runs) in variants.iter().zip(&mut runs) {
                let load = load_average().parse().unwrap_or(f64::NAN);
                match delivery_run(&mut broker, &kafka, options, variant, events) {
                    Ok(run) => {
                        eprintln!(
                            "  {} {} {}: {} events in {:.3} s, {:.0} ev/s, {:.2} µs CPU/ev (load {load})",
                            kind.name(),
                            variant.plugin,
                            variant.label(),
                            run.events,
                            run.wall.as_secs_f64(),
                            run.rate(),
                            run.cpu_us_per_event(),
                        );
                        runs.push((run, load));
                    }
                    Err(e) => eprintln!(
                        "  {} {} {}: failed: {e:#}",
                        kind.name(),
                        variant.plugin,
                        variant.label()
                    ),
                }
            }
        }
        let mut lines = Vec::new();
        let mut baseline: Option<(f64, f64)> = None;
        for (variant, runs) in variants.iter().zip(&runs) {
            let Some((first, _)) = runs.first() else {
                lines.push(format!(
                    "| {} | {} | - | - | failed | - | - | - | - |",
                    variant.plugin,
                    variant.label()
                ));
                continue;
            };
            let range = |of: &dyn Fn(&(Run, f64)) -> f64| {
                let values: Vec<f64> = runs.iter().map(of).collect();
                let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (min, max)
            };
            let rate = median(runs.iter().map(|(r, _)| r.rate()).collect());
            let cpu = median(runs.iter().map(|(r, _)| r.cpu_us_per_event()).collect());
            let (rate_min, rate_max) = range(&|(r, _)| r.rate());
            let (load_min, load_max) = range(&|(_, load)| *load);
            if variant.delivery == Delivery::AtLeastOnce {
                baseline = Some((rate, cpu));
            }
            let (rate_ratio, cpu_ratio) = match baseline {
                Some((r, c)) => (format!("{:.2}", rate / r), format!("{:.2}", cpu / c)),
                None => ("-".into(), "-".into()),
            };
            lines.push(format!(
                "| {} | {} | {load_min:.1}–{load_max:.1} | {} | {} | {}–{} | {cpu:.2} | {rate_ratio} | {cpu_ratio} |",
                variant.plugin,
                variant.label(),
                first.events,
                thousands(rate),
                thousands(rate_min),
                thousands(rate_max),
            ));
        }
        tables.push((kind, events, lines));
    }
    for (kind, events, lines) in tables {
        let cap = match kind {
            BrokerKind::Mock if events < options.events => {
                "; events capped so that no partition holds more than 4 MiB (the mock keeps ~5 MiB)"
            }
            _ => "",
        };
        println!();
        println!(
            "### Exactly-once against at-least-once on {} ({}; {accounts} accounts, {partitions} partitions; batch_size {}, workers {}; median of {} runs{cap})",
            kind.name(),
            machine(),
            options.host.batch_size,
            options.host.workers,
            options.repeat.max(1)
        );
        println!();
        println!(
            "| plugin | delivery (commit interval) | load | events | ev/s | ev/s min–max | CPU µs/ev | ev/s ÷ at-least-once | CPU ÷ at-least-once |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for line in lines {
            println!("{line}");
        }
        println!();
    }
    Ok(())
}

/// Numbers the delivery runs: a pipeline's metrics live as long as the
/// process, so each run's pipeline needs a name of its own.
static RUN_SEQ: AtomicUsize = AtomicUsize::new(0);

/// One run of `variant`: fresh topics and group, the account events
/// pre-produced (a `CREATED` per account, then deposits round-robin over
/// the accounts), the pipeline measured.
fn delivery_run(
    broker: &mut Broker,
    kafka: &KafkaConfig,
    options: &Options,
    variant: &Variant,
    events: usize,
) -> anyhow::Result<Run> {
    let partitions = options.partitions.max(1);
    let accounts = options.accounts.max(1);
    let seq = RUN_SEQ.fetch_add(1, Ordering::Relaxed);
    // A short name: it names the threads, which the kernel cuts at 15 bytes.
    let name = format!("s{seq}");
    let id = format!(
        "bench-{}-state-{}-{seq}",
        std::process::id(),
        broker.kind().name()
    );
    let (input, output, dlq, changelog) = (
        format!("{id}-in"),
        format!("{id}-out"),
        format!("{id}-dlq"),
        format!("{id}-changelog"),
    );
    for topic in [&input, &output, &dlq, &changelog] {
        broker.create_topic(topic, partitions)?;
    }
    let ends = produce(broker.bootstrap(), &input, partitions, events, |i| {
        let account = i % accounts;
        let kind = if i < accounts { "CREATED" } else { "DEPOSITED" };
        (
            account % partitions,
            account_id(account),
            account_event(account, kind, 1 + i % 100),
        )
    })
    .context("pre-producing the input")?;
    let mut config = options.host.pipeline_config(
        &name,
        variant.plugin,
        &input,
        &output,
        &dlq,
        &format!("{id}-group"),
        partitions,
    );
    config.delivery = variant.delivery;
    if let Some(interval) = variant.commit_interval {
        config.commit_interval = interval;
    }
    config.state.changelog = changelog;
    measure_pipeline(
        kafka,
        broker.bootstrap(),
        &config,
        &ends,
        window_end(broker.kind()),
    )
}

/// Where a delivery run's window ends: at the group's commit where the
/// broker shows it; on the mock cluster, which does not store a
/// transaction's offsets, when the pipeline has drained and committed
/// (for both deliveries, so that they compare).
fn window_end(kind: BrokerKind) -> WindowEnd {
    match kind {
        BrokerKind::Mock => WindowEnd::Drained,
        BrokerKind::Tansu => WindowEnd::Committed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_pipeline_parses_and_names_its_step() {
        let config = restore_pipeline("localhost:9092", "c").unwrap();
        let pipeline: &sluice::config::PipelineConfig = &config.pipelines[0];
        assert_eq!(pipeline.state.changelog, "c");
        assert_eq!(pipeline.state_names(), ["account-balance"]);
    }

    #[test]
    fn account_events_are_what_account_balance_reads() {
        let event: serde_json::Value =
            serde_json::from_str(&account_event(7, "DEPOSITED", 3)).unwrap();
        assert_eq!(event["account_id"], "ACC-0000007");
        assert_eq!(event["amount"], 3);
    }
}
