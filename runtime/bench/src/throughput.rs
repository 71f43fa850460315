//! `sluice-bench throughput`: events/s and CPU per event of five
//! processors doing the same job (read every event of a topic, write one
//! record per event to another) on the same broker:
//!
//! - (a) `raw`: a `BaseConsumer` → `ThreadedProducer` loop with exactly the
//!   client settings Sluice uses ([`sluice::kafka::consumer_config`],
//!   [`sluice::kafka::producer_config`]), no Wasm, no per-event bookkeeping:
//!   the limit of the client library on this machine;
//! - (b) Sluice ([`Pipeline::start`]) with `plugins/passthrough.wasm`;
//! - (c) Sluice with `plugins/order-enrich.wasm` (JSON parse + serialise);
//! - (d) the tutorial's loop, `examples/python/tutorial_processor.py`
//!   (`confluent-kafka`, `json.loads`, produce, synchronous commit per
//!   message), as a child process reporting its own window (`--stats-json`);
//! - (e) the same enrichment as (c) as a quixstreams 3.28 application,
//!   `examples/python/quix_processor.py` (its defaults: at-least-once, a
//!   checkpoint every 5 s; invalid orders filtered out, there is no DLQ),
//!   a child process with the same contract as (d), run by the Python of
//!   `--quix-python` (`scripts/bench` makes a virtual environment for it:
//!   quixstreams pins an older confluent-kafka than the tests'). Not on the
//!   mock cluster: quixstreams reads every topic's configuration
//!   (DescribeConfigs), which the mock does not serve.
//!
//! Every run gets fresh topics and a fresh group. The input is produced
//! before the run (not timed): orders as JSON, padded to the event size,
//! spread evenly over the partitions. The window runs from the first event
//! the processor consumes until its work is done, drain included: every
//! output acknowledged and the input's offsets committed. (a) ends when its
//! synchronous commit returns; (b)/(c) call [`Pipeline::begin_stop`] once
//! the worker has taken the last event (the pipeline then drains, waits for
//! acknowledgements and commits) and end when the bench sees the group's
//! committed offsets reach the end of the input; (d) ends after the
//! script's final flush (it commits every message synchronously), (e) when
//! quixstreams' final checkpoint (flush, then commit) is done. Closing
//! the clients is left out of every window: rdkafka spends ~100 ms on each
//! whatever was processed, which would swamp the short runs the mock broker
//! allows. CPU is the processor process's user + system time over the
//! window. Each cell is the median of `--repeat` runs; at the end every
//! run's group is checked to have committed exactly the end of its input.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::broker::{Broker, BrokerKind};
use super::{load_average, machine, process_cpu};
use sluice::config::{
    Brokers, DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, KafkaConfig, PipelineConfig, StepConfig,
};
use sluice::kafka::{self, GroupOffsets, RecordRef, Writer, send_waiting};
use sluice::pipeline::Pipeline;
use sluice::plugin::{CompiledPlugin, EngineOptions, PluginEngine};
use sluice_testkit::sluice::repo_dir;

/// How long a run may wait for its consumer to join the group and see the
/// first event (tansu holds a join for about half the session timeout).
const FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The session timeout every processor uses: tansu makes a join wait about
/// half of it, and librdkafka's default (45 s) would make every run crawl.
const SESSION_TIMEOUT_MS: &str = "6000";

/// Which brokers to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerChoice {
    Mock,
    Tansu,
    Both,
}

/// The five processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Processor {
    /// (a) raw rdkafka consume → produce.
    A,
    /// (b) Sluice + passthrough.
    B,
    /// (c) Sluice + order-enrich.
    C,
    /// (d) the Python tutorial loop.
    D,
    /// (e) the quixstreams application.
    E,
}

impl Processor {
    const ALL: [Processor; 5] = [
        Processor::A,
        Processor::B,
        Processor::C,
        Processor::D,
        Processor::E,
    ];

    fn label(self) -> &'static str {
        match self {
            Processor::A => "a: raw rdkafka",
            Processor::B => "b: sluice passthrough",
            Processor::C => "c: sluice order-enrich",
            Processor::D => "d: python tutorial",
            Processor::E => "e: quixstreams",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Processor::A => "a",
            Processor::B => "b",
            Processor::C => "c",
            Processor::D => "d",
            Processor::E => "e",
        }
    }

    /// Why this processor cannot run on `kind`, if it cannot.
    fn unsupported_on(self, kind: BrokerKind) -> Option<&'static str> {
        match (self, kind) {
            (Processor::E, BrokerKind::Mock) => Some(
                "quixstreams 3.28 reads every topic's configuration (DescribeConfigs) \
                 when it starts, and librdkafka's mock cluster does not serve that request",
            ),
            _ => None,
        }
    }
}

/// `sluice-bench throughput` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Which broker(s).
    #[arg(long, value_enum, default_value = "both")]
    pub broker: BrokerChoice,
    /// Events per run; capped on the mock broker so that no partition
    /// holds more than ~4 MiB (it drops older records beyond ~5 MiB).
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per run of (d), the Python loop (its rate does not depend on
    /// the run's length, and it is slow).
    #[arg(long, default_value_t = 5_000)]
    pub python_events: usize,
    /// Event sizes in bytes (the value; the key is 8 bytes).
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    pub sizes: Vec<usize>,
    /// Partition counts of the input (and output) topic.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub partitions: Vec<usize>,
    /// Runs per cell; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Which processors to run [default: a,b,c,d, and e when there is a
    /// Python for it (see --quix-python)].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Option<Vec<Processor>>,
    /// Run (b) and (c) with `origin_headers = false`.
    #[arg(long)]
    pub no_origin_headers: bool,
    #[command(flatten)]
    pub host: HostOptions,
    /// The Python interpreter for (d).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The Python interpreter for (e), with quixstreams 3.28 [default:
    /// target/bench/quix-venv/bin/python, which scripts/bench makes, if it
    /// exists].
    #[arg(long)]
    pub quix_python: Option<String>,
}

/// The settings of the processors that run on Sluice's client settings:
/// the raw loop and Sluice (here and in `latency`).
#[derive(Debug, Clone, clap::Args)]
pub struct HostOptions {
    /// Sluice `workers` (threads running plugin instances).
    #[arg(long, default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// Sluice `batch_size` (most events per plugin call).
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Extra librdkafka property for the consumers of the raw loop and
    /// Sluice, `key=value`; repeatable.
    #[arg(long = "consumer", value_name = "KEY=VALUE")]
    pub consumer: Vec<String>,
    /// Extra librdkafka property for their producers, `key=value`;
    /// repeatable.
    #[arg(long = "producer", value_name = "KEY=VALUE")]
    pub producer: Vec<String>,
    /// Where the plugins are [default: plugins/ of the checkout].
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
}

impl HostOptions {
    /// `--plugins-dir`, or the checkout's `plugins/`.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| repo_dir().join("plugins"))
    }

    /// The Kafka section of the raw loop and Sluice: `bootstrap`, the
    /// bench's session timeout, and `--consumer`/`--producer`.
    pub fn kafka_config(&self, bootstrap: &str) -> anyhow::Result<KafkaConfig> {
        let pairs = |list: &[String]| -> anyhow::Result<Vec<(String, String)>> {
            list.iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("`{kv}` is not KEY=VALUE"))
                })
                .collect()
        };
        let mut consumer: std::collections::BTreeMap<String, String> = [(
            "session.timeout.ms".to_owned(),
            SESSION_TIMEOUT_MS.to_owned(),
        )]
        .into();
        consumer.extend(pairs(&self.consumer)?);
        Ok(KafkaConfig {
            brokers: Brokers::List(bootstrap.to_owned()),
            client_id: "sluice-bench".into(),
            instance_id: "sluice-bench".into(),
            consumer,
            producer: pairs(&self.producer)?.into_iter().collect(),
        })
    }

    /// A one-step pipeline of `plugin` (from [`Self::plugins_dir`]) with
    /// `--batch-size` and `--workers`, on topics of `partitions`
    /// partitions; every other setting at its default.
    #[allow(clippy::too_many_arguments)]
    pub fn pipeline_config(
        &self,
        name: &str,
        plugin: &str,
        input: &str,
        output: &str,
        dlq: &str,
        group: &str,
        partitions: usize,
    ) -> PipelineConfig {
        PipelineConfig {
            group_id: group.to_owned(),
            batch_size: self.batch_size,
            workers: self.workers,
            partitions: partitions as i32,
            ..PipelineConfig::new(
                name,
                vec![input.to_owned()],
                vec![StepConfig {
                    plugin: plugin.to_owned(),
                    path: self.plugins_dir().join(format!("{plugin}.wasm")),
                    config: Vec::new(),
                }],
                output,
                dlq,
            )
        }
    }
}

impl Options {
    /// The processors to run: `--only`, or by default (a)-(d), and (e) when
    /// it has a Python.
    fn processors(&self) -> Vec<Processor> {
        match &self.only {
            Some(only) => Processor::ALL
                .into_iter()
                .filter(|p| only.contains(p))
                .collect(),
            None => Processor::ALL
                .into_iter()
                .filter(|&p| p != Processor::E || self.quix_python().is_some())
                .collect(),
        }
    }

    /// The Python for (e): `--quix-python`, else the virtual environment
    /// `scripts/bench` makes, if it is there.
    fn quix_python(&self) -> Option<String> {
        if let Some(python) = &self.quix_python {
            return Some(python.clone());
        }
        let venv = repo_dir().join("target/bench/quix-venv/bin/python");
        venv.is_file().then(|| venv.display().to_string())
    }
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) events: usize,
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
}

impl Run {
    pub(crate) fn rate(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub(crate) fn cpu_us_per_event(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.events.max(1) as f64
    }
}

/// The median of a cell's runs: events/s and CPU µs/event, each the
/// median of its own.
#[derive(Debug, Clone, Copy)]
struct Cell {
    events: usize,
    rate: f64,
    cpu_us: f64,
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Cell {
    fn of(runs: &[Run]) -> Option<Cell> {
        let first = runs.first()?;
        Some(Cell {
            events: first.events,
            rate: median(runs.iter().map(Run::rate).collect()),
            cpu_us: median(runs.iter().map(Run::cpu_us_per_event).collect()),
        })
    }
}

/// One row of the table: a size and partition count.
struct Row {
    size: usize,
    partitions: usize,
    load: String,
    cells: HashMap<Processor, Cell>,
}

/// What every run of one broker shares.
struct Bench<'a> {
    options: &'a Options,
    /// The processors to run, in table order.
    processors: &'a [Processor],
    /// The Python for (e), when it runs.
    quix_python: Option<&'a str>,
    broker: Broker,
    run_seq: usize,
    /// Groups whose commits to check at the end: (group, topic, expected
    /// committed offset per partition).
    checks: Vec<(String, String, Vec<i64>)>,
}

/// Runs the benchmark and prints one table per broker.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let plugins_dir = options.host.plugins_dir();
    for plugin in ["passthrough", "order-enrich"] {
        let path = plugins_dir.join(format!("{plugin}.wasm"));
        if !path.is_file() {
            bail!("{} not found: run scripts/build-plugins", path.display());
        }
    }
    let processors = options.processors();
    if processors.contains(&Processor::D) {
        check_python(&options.python)?;
    }
    let quix_python = if processors.contains(&Processor::E) {
        Some(check_quix(options.quix_python())?)
    } else {
        None
    };
    let kinds = match options.broker {
        BrokerChoice::Mock => vec![BrokerKind::Mock],
        BrokerChoice::Tansu => vec![BrokerKind::Tansu],
        BrokerChoice::Both => vec![BrokerKind::Mock, BrokerKind::Tansu],
    };
    for kind in kinds {
        for p in &processors {
            if let Some(why) = p.unsupported_on(kind) {
                eprintln!("({}) left out on {}: {why}", p.short(), kind.name());
            }
        }
        let broker = Broker::start(kind)?;
        let mut bench = Bench {
            options,
            processors: &processors,
            quix_python: quix_python.as_deref(),
            broker,
            run_seq: 0,
            checks: Vec::new(),
        };
        let rows = bench.rows()?;
        print_table(kind, options, &processors, &rows);
        bench.check_commits();
    }
    Ok(())
}

impl Bench<'_> {
    fn rows(&mut self) -> anyhow::Result<Vec<Row>> {
        let options = self.options;
        let mut rows = Vec::new();
        for &size in &options.sizes {
            for &partitions in &options.partitions {
                let mut row = Row {
                    size,
                    partitions,
                    load: load_average(),
                    cells: HashMap::new(),
                };
                for &processor in self.processors {
                    if processor.unsupported_on(self.broker.kind()).is_some() {
                        continue;
                    }
                    let mut events = options.events;
                    if processor == Processor::D {
                        events = events.min(options.python_events);
                    }
                    if let Some(max) = self.broker.kind().max_events(size, partitions) {
                        events = events.min(max);
                    }
                    // A run that fails (e.g. the group did not commit the
                    // end of the input) is reported and replaced, up to
                    // `repeat` extra attempts.
                    let mut runs = Vec::new();
                    let mut attempts = 0;
                    while runs.len() < options.repeat.max(1) && attempts < 2 * options.repeat.max(1)
                    {
                        attempts += 1;
                        match self.run_once(processor, size, partitions, events) {
                            Ok(run) => {
                                eprintln!(
                                    "  {} {size} B x{partitions}p {}: {} events in {:.3} s, {:.0} ev/s, {:.2} µs CPU/ev (load {})",
                                    self.broker.kind().name(),
                                    processor.label(),
                                    run.events,
                                    run.wall.as_secs_f64(),
                                    run.rate(),
                                    run.cpu_us_per_event(),
                                    load_average(),
                                );
                                runs.push(run);
                            }
                            Err(e) => eprintln!(
                                "  {} {size} B x{partitions}p {}: failed: {e:#}",
                                self.broker.kind().name(),
                                processor.label()
                            ),
                        }
                    }
                    if let Some(cell) = Cell::of(&runs) {
                        row.cells.insert(processor, cell);
                    }
                }
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// One run: fresh topics and group, pre-produced input, the processor.
    fn run_once(
        &mut self,
        processor: Processor,
        size: usize,
        partitions: usize,
        events: usize,
    ) -> anyhow::Result<Run> {
        self.run_seq += 1;
        let id = format!(
            "bench-{}-{}-{}-{size}-{partitions}-{}",
            std::process::id(),
            self.broker.kind().name(),
            processor.short(),
            self.run_seq
        );
        let (input, output, dlq) = (format!("{id}-in"), format!("{id}-out"), format!("{id}-dlq"));
        for topic in [&input, &output, &dlq] {
            self.broker.create_topic(topic, partitions)?;
        }
        let bootstrap = self.broker.bootstrap().to_owned();
        let ends = produce_input(&bootstrap, &input, events, size, partitions)
            .context("pre-producing the input")?;
        let group = format!("{id}-group");
        let run = match processor {
            Processor::A => self.run_raw(&bootstrap, &input, &output, &group, events),
            Processor::B => self.run_sluice("passthrough", &input, &output, &dlq, &group, &ends),
            Processor::C => self.run_sluice("order-enrich", &input, &output, &dlq, &group, &ends),
            Processor::D => {
                let script = Script::new(&self.options.python, "tutorial_processor.py");
                script.run(&bootstrap, &input, &output, &group, events)
            }
            Processor::E => {
                let python = self.quix_python.context("no Python for (e)")?;
                let script = Script::new(python, "quix_processor.py");
                script.run(&bootstrap, &input, &output, &group, events)
            }
        }?;
        self.checks.push((group, input, ends));
        Ok(run)
    }

    /// The Kafka section every processor of (a)-(c) shares.
    fn kafka_config(&self) -> anyhow::Result<KafkaConfig> {
        self.options.host.kafka_config(self.broker.bootstrap())
    }

    /// (a): consume → produce, with Sluice's client settings.
    fn run_raw(
        &self,
        bootstrap: &str,
        input: &str,
        output: &str,
        group: &str,
        events: usize,
    ) -> anyhow::Result<Run> {
        let kafka = self.kafka_config()?;
        let acks = Arc::new(Acks::default());
        let producer: ThreadedProducer<CountingContext> = kafka::producer_config(&kafka, bootstrap)
            .create_with_context(CountingContext(acks.clone()))
            .context("creating the producer")?;
        let consumer: BaseConsumer = kafka::consumer_config(&kafka, bootstrap, group)
            .create()
            .context("creating the consumer")?;
        consumer.subscribe(&[input])?;

        let joined_by = Instant::now() + FIRST_EVENT_TIMEOUT;
        let mut start = None;
        let mut consumed = 0;
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        while consumed < events {
            let message = match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "raw loop: consumer error");
                    continue;
                }
                None => {
                    if start.is_none() && Instant::now() > joined_by {
                        bail!("no event within {FIRST_EVENT_TIMEOUT:?}");
                    }
                    continue;
                }
            };
            if start.is_none() {
                start = Some((Instant::now(), process_cpu()));
            }
            forward(&producer, output, &message)?;
            next_offsets.insert(message.partition(), message.offset() + 1);
            consumed += 1;
        }
        // The producer's own thread serves the delivery reports; `flush`
        // would compete with it and sleep out 100 ms slices (see
        // `Sink::flush`), so wait the way Sluice does.
        let drain_by = Instant::now() + Duration::from_secs(60);
        while acks.done() < events as u64 {
            if Instant::now() > drain_by {
                bail!("only {} of {events} outputs acknowledged", acks.done());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in &next_offsets {
            tpl.add_partition_offset(input, partition, Offset::Offset(offset))?;
        }
        consumer.store_offsets(&tpl)?;
        // librdkafka pins the partitions it stored into the list; a list
        // that outlives the consumer makes closing it wait forever.
        drop(tpl);
        consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)?;
        let (t0, cpu0) = start.context("no event consumed")?;
        let run = Run {
            events,
            wall: t0.elapsed(),
            cpu: process_cpu().saturating_sub(cpu0),
        };
        // Closing the clients is not part of the work (see the module
        // docs): it costs rdkafka ~100 ms each, whatever was processed.
        consumer.unsubscribe();
        drop(consumer);
        drop(producer);
        if acks.failed.load(Ordering::Relaxed) > 0 {
            bail!("{} outputs failed", acks.failed.load(Ordering::Relaxed));
        }
        Ok(run)
    }

    /// (b)/(c): a Sluice pipeline with `plugin`.
    #[allow(clippy::too_many_arguments)]
    fn run_sluice(
        &self,
        plugin: &str,
        input: &str,
        output: &str,
        dlq: &str,
        group: &str,
        ends: &[i64],
    ) -> anyhow::Result<Run> {
        // A short name: it names the threads (`sluice-b3-poll`,
        // `sluice-b3-w0`), which the kernel cuts at 15 bytes, for perf.
        let name = format!(
            "{}{}",
            if plugin == "passthrough" { "b" } else { "c" },
            self.run_seq
        );
        let host = &self.options.host;
        let config = PipelineConfig {
            origin_headers: !self.options.no_origin_headers,
            ..host.pipeline_config(&name, plugin, input, output, dlq, group, ends.len())
        };
        measure_pipeline(
            &self.kafka_config()?,
            self.broker.bootstrap(),
            &config,
            ends,
            WindowEnd::Committed,
        )
    }

    /// Checks that every run's group committed exactly the end of the
    /// input on every partition: the processors did all the work, and
    /// the offsets they stored are right.
    fn check_commits(&self) {
        let bootstrap = self.broker.bootstrap();
        let mut wrong = 0;
        for (group, topic, ends) in &self.checks {
            let got = CommitWatcher::new(bootstrap, group, topic, ends).and_then(|w| w.committed());
            match got {
                Ok(got) if got == *ends => {}
                Ok(got) => {
                    wrong += 1;
                    eprintln!(
                        "  commit check: group {group} committed {got:?} on {topic}, expected {ends:?}"
                    );
                }
                Err(e) => {
                    wrong += 1;
                    eprintln!("  commit check: group {group}: {e:#}");
                }
            }
        }
        eprintln!(
            "commit check: {} of {} runs committed exactly the end of their input",
            self.checks.len() - wrong,
            self.checks.len()
        );
    }
}

/// Where a measured pipeline run's window ends, once the last event has
/// reached a worker and the pipeline was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowEnd {
    /// When the group's committed offsets reach the end of the input at
    /// the broker.
    Committed,
    /// When the pipeline's poll thread has drained, committed and left
    /// the group (before the clients close): for exactly-once on the mock
    /// cluster, which acknowledges a transaction's offsets
    /// (TxnOffsetCommit) without storing them.
    Drained,
}

/// Runs `config` (one input topic, whose partitions end at `ends`, all
/// pre-produced) and measures it: the window runs from the first event a
/// worker takes until `end` (drain, acknowledgements and commit included;
/// closing the clients not). Fails unless every event made exactly one
/// output.
pub(crate) fn measure_pipeline(
    kafka: &KafkaConfig,
    bootstrap: &str,
    config: &PipelineConfig,
    ends: &[i64],
    end: WindowEnd,
) -> anyhow::Result<Run> {
    let events = ends.iter().sum::<i64>() as usize;
    let input = config.inputs.first().context("a pipeline with no input")?;
    // A fresh engine per run, so no epoch ticker outlives its run and
    // charges another run's CPU.
    let engine = PluginEngine::new(&EngineOptions::from_process_env())?;
    let compiled = config
        .steps
        .iter()
        .map(|step| {
            Ok(Arc::new(CompiledPlugin::load(
                &engine,
                &step.plugin,
                &step.path,
            )?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metrics = sluice::metrics::global().pipeline(&config.name);
    // Watches the group's commits; created now so that its start-up is
    // not in the window.
    let watcher = match end {
        WindowEnd::Committed => Some(CommitWatcher::new(
            bootstrap,
            &config.group_id,
            input,
            ends,
        )?),
        WindowEnd::Drained => None,
    };
    let pipeline = Pipeline::start(config, kafka, bootstrap, &compiled)?;
    // Its liveness probe says when the poll thread has ended.
    let status = sluice::status::Status::default();
    status.started(pipeline.status().clone());

    // The workers count an event when its batch reaches them; watch
    // that counter. Tightly until the first event (outside the window),
    // then every millisecond (inside it, so it costs almost nothing).
    let joined_by = Instant::now() + FIRST_EVENT_TIMEOUT;
    while metrics.events.get() == 0 {
        if pipeline.is_finished() {
            pipeline.stop()?;
            bail!("the pipeline stopped by itself");
        }
        if Instant::now() > joined_by {
            bail!("no event within {FIRST_EVENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let (t0, cpu0) = (Instant::now(), process_cpu());
    let done_by = t0 + Duration::from_secs(120);
    while (metrics.events.get() as usize) < events {
        if pipeline.is_finished() || Instant::now() > done_by {
            let seen = metrics.events.get();
            let _ = pipeline.stop();
            bail!("the pipeline processed only {seen} of {events} events");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Every event has reached the worker: stop, which drains, waits for
    // the acknowledgements and commits. The window ends when the commit
    // is visible at the broker; closing the clients (inside `stop`)
    // is not part of it.
    pipeline.begin_stop();
    let ended = match &watcher {
        Some(watcher) => watcher.wait(Duration::from_secs(10)),
        None => wait_drained(&status, Duration::from_secs(10)),
    };
    let ended = ended.with_context(|| {
        format!(
            "the worker took {} events and wrote {} outputs",
            metrics.events.get(),
            metrics.outputs.get()
        )
    });
    let run = Run {
        events,
        wall: t0.elapsed(),
        cpu: process_cpu().saturating_sub(cpu0),
    };
    pipeline.stop()?;
    ended?;
    let outputs = metrics.outputs.get() as usize;
    if outputs != events {
        bail!("{outputs} outputs for {events} events");
    }
    Ok(run)
}

/// Waits until the one pipeline of `status` has ended its poll thread.
fn wait_drained(status: &sluice::status::Status, timeout: Duration) -> anyhow::Result<()> {
    let by = Instant::now() + timeout;
    loop {
        match status.liveness(sluice::clock::now_ms()) {
            Err(why) if why.contains("poll thread ended") => return Ok(()),
            _ if Instant::now() > by => bail!("the pipeline did not drain within {timeout:?}"),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// (d) or (e): a Python processor from `examples/python`, run as a child
/// process that measures its own window and prints it with `--stats-json`.
struct Script<'a> {
    python: &'a str,
    path: PathBuf,
}

impl<'a> Script<'a> {
    fn new(python: &'a str, name: &str) -> Self {
        Script {
            python,
            path: repo_dir().join("examples/python").join(name),
        }
    }

    /// One run over `events` records of `input`. The child works in a
    /// scratch directory (quixstreams makes a `state/` directory in its
    /// working directory); its stderr (quixstreams logs every start) is
    /// shown only when it fails.
    fn run(
        &self,
        bootstrap: &str,
        input: &str,
        output: &str,
        group: &str,
        events: usize,
    ) -> anyhow::Result<Run> {
        let scratch = tempfile::tempdir()?;
        let out = Command::new(self.python)
            .arg(&self.path)
            .args(["--bootstrap", bootstrap, "--input", input])
            .args(["--output", output, "--group", group])
            .args(["--max", &events.to_string()])
            .args(["--idle-secs", "10", "--stats-json"])
            .current_dir(scratch.path())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.path.display()))?;
        if !out.status.success() {
            bail!(
                "{} exited with {}: {}",
                self.path.display(),
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 20)
            );
        }
        let run = stats_line(&String::from_utf8_lossy(&out.stdout))?;
        if run.events != events {
            bail!("the script processed {} of {events} events", run.events);
        }
        Ok(run)
    }
}

/// The raw loop's work for one message: the same record (key, value,
/// headers, timestamp) to `output`.
pub(crate) fn forward<C>(
    producer: &ThreadedProducer<C>,
    output: &str,
    message: &BorrowedMessage<'_>,
) -> anyhow::Result<()>
where
    C: ProducerContext<DeliveryOpaque = ()> + 'static,
{
    let mut record = BaseRecord::to(output);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(value) = message.payload() {
        record = record.payload(value);
    }
    if let Some(headers) = message.headers() {
        record = record.headers(headers.detach());
    }
    if let Some(ts) = message.timestamp().to_millis() {
        record = record.timestamp(ts);
    }
    send_waiting(producer, record).map_err(|(e, _)| e)?;
    Ok(())
}

/// The run a script reported: the last line of its stdout that is a JSON
/// object with `events`, `seconds` and `cpu_seconds`.
fn stats_line(stdout: &str) -> anyhow::Result<Run> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no stats line in its output: {stdout}"))?;
    let stats: serde_json::Value = serde_json::from_str(line)?;
    let number = |key: &str| {
        stats[key]
            .as_f64()
            .with_context(|| format!("no `{key}` in {line}"))
    };
    Ok(Run {
        events: number("events")? as usize,
        wall: Duration::from_secs_f64(number("seconds")?),
        cpu: Duration::from_secs_f64(number("cpu_seconds")?),
    })
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Delivery counts of a producer.
#[derive(Default)]
struct Acks {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Acks {
    fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

struct CountingContext(Arc<Acks>);

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.0.ok
        } else {
            &self.0.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The value of event `i`: a tutorial order, padded with a `note` field to
/// exactly `size` bytes (or as short as an order gets).
pub fn order_value(i: usize, size: usize) -> String {
    let amount = (i % 200) as f64 * 0.75 + 0.5;
    let base = format!(
        r#"{{"order_id":"ORD-{i:07}","customer_id":"CUST-{:03}","amount":{amount:.2},"timestamp":1732400000"#,
        i % 100
    );
    let pad = size.saturating_sub(base.len() + r#","note":""}"#.len());
    format!(r#"{base},"note":"{}"}}"#, "x".repeat(pad))
}

/// The key of event `i`.
pub fn order_key(i: usize) -> String {
    format!("CUST-{:03}", i % 100)
}

/// Produces `events` orders to `topic`, round-robin over its partitions so
/// each holds the same share; returns each partition's end offset.
fn produce_input(
    bootstrap: &str,
    topic: &str,
    events: usize,
    size: usize,
    partitions: usize,
) -> anyhow::Result<Vec<i64>> {
    produce(bootstrap, topic, partitions, events, |i| {
        (i % partitions, order_key(i), order_value(i, size))
    })
}

/// Produces `events` records to `topic` of `partitions` partitions, record
/// `i` being `record(i)`: (partition, key, value); returns each
/// partition's end offset.
pub(crate) fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: usize,
    events: usize,
    record: impl Fn(usize) -> (usize, String, String),
) -> anyhow::Result<Vec<i64>> {
    let mut writer = bulk_writer(bootstrap)?;
    let mut ends = vec![0i64; partitions];
    for i in 0..events {
        let (partition, key, value) = record(i);
        writer.send(RecordRef {
            partition: Some(partition as i32),
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            ..RecordRef::to(topic)
        })?;
        ends[partition] += 1;
    }
    writer.flush(Duration::from_secs(120))?;
    Ok(ends)
}

/// A producer for pre-producing a run's input (not timed): big batches
/// and a queue that holds a million records.
pub(crate) fn bulk_writer(bootstrap: &str) -> anyhow::Result<Writer> {
    Ok(Writer::to(
        bootstrap,
        &[
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("queue.buffering.max.messages", "1000000"),
            ("queue.buffering.max.kbytes", "1048576"),
        ],
    )?)
}

/// Reads a group's committed offsets on one topic (without joining it).
struct CommitWatcher {
    offsets: GroupOffsets,
    topic: String,
    ends: Vec<i64>,
}

impl CommitWatcher {
    fn new(bootstrap: &str, group: &str, topic: &str, ends: &[i64]) -> anyhow::Result<Self> {
        let watcher = CommitWatcher {
            offsets: GroupOffsets::new(bootstrap, group)?,
            topic: topic.to_owned(),
            ends: ends.to_vec(),
        };
        // Connect and find the coordinator now, not inside a window.
        watcher.committed()?;
        Ok(watcher)
    }

    /// The committed offset of every partition (-1: none).
    fn committed(&self) -> anyhow::Result<Vec<i64>> {
        let partitions = i32::try_from(self.ends.len())?;
        let got = self
            .offsets
            .committed(&self.topic, partitions, Duration::from_secs(10))?;
        Ok((0..partitions)
            .map(|p| got.get(&p).copied().flatten().unwrap_or(-1))
            .collect())
    }

    /// Waits until the group has committed the end of every partition.
    fn wait(&self, timeout: Duration) -> anyhow::Result<()> {
        let by = Instant::now() + timeout;
        loop {
            let got = self.committed()?;
            if got == self.ends {
                return Ok(());
            }
            if Instant::now() > by {
                bail!("committed {got:?}, expected {:?}", self.ends);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Checks that `python` has confluent-kafka, for (d).
fn check_python(python: &str) -> anyhow::Result<()> {
    if module_version(python, "confluent_kafka").is_none() {
        bail!(
            "`{python} -c 'import confluent_kafka'` failed: run scripts/setup (or leave (d) out with --only a,b,c)"
        );
    }
    Ok(())
}

/// The version of quixstreams the examples are written for: they rely on
/// its callbacks and its log lines.
const QUIX_VERSION: &str = "3.28.";

/// Checks that (e) has a Python with quixstreams 3.28; returns it.
fn check_quix(python: Option<String>) -> anyhow::Result<String> {
    let advice = "scripts/bench makes target/bench/quix-venv with it, or pass --quix-python \
                  (or leave (e) out with --only a,b,c,d)";
    let Some(python) = python else {
        bail!("(e) needs a Python with quixstreams {QUIX_VERSION}x: {advice}");
    };
    match module_version(&python, "quixstreams") {
        Some(version) if version.starts_with(QUIX_VERSION) => Ok(python),
        Some(version) => {
            bail!("`{python}` has quixstreams {version}, (e) needs {QUIX_VERSION}x: {advice}")
        }
        None => bail!("`{python} -c 'import quixstreams'` failed: {advice}"),
    }
}

/// `module.__version__` as `python` imports it (empty if it has none), or
/// None if it cannot be imported.
fn module_version(python: &str, module: &str) -> Option<String> {
    let code = format!("import {module}; print(getattr({module}, '__version__', ''))");
    let out = Command::new(python)
        .args(["-W", "ignore", "-c", &code])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The ratios of CPU per event the table shows first, numerator first:
/// what Sluice costs on top of the raw client, the primary figure (on 2
/// cores shared with the broker, throughput follows it).
const CPU_RATIOS: [(Processor, Processor); 2] =
    [(Processor::B, Processor::A), (Processor::C, Processor::A)];

/// The ratios of events/s the table shows, numerator first.
const RATIOS: [(Processor, Processor); 4] = [
    (Processor::B, Processor::A),
    (Processor::C, Processor::A),
    (Processor::B, Processor::D),
    (Processor::B, Processor::E),
];

fn print_table(kind: BrokerKind, options: &Options, procs: &[Processor], rows: &[Row]) {
    let cap = match kind {
        BrokerKind::Mock => format!(
            "; events per run capped at {} KiB per partition (the mock keeps ~5 MiB)",
            super::broker::MOCK_PARTITION_BUDGET >> 10
        ),
        BrokerKind::Tansu => String::new(),
    };
    println!();
    println!(
        "### Throughput on {} ({}; Sluice batch_size {}, workers {}, origin_headers {}; median of {} runs{cap})",
        kind.name(),
        machine(),
        options.host.batch_size,
        options.host.workers,
        !options.no_origin_headers,
        options.repeat.max(1),
    );
    println!();
    let mut header = String::from("| size | parts | load |");
    let mut rule = String::from("|---:|---:|---:|");
    for p in procs {
        header.push_str(&format!(" {} events | ev/s | CPU µs/ev |", p.label()));
        rule.push_str("---:|---:|---:|");
    }
    for (x, y) in CPU_RATIOS {
        header.push_str(&format!(" {} CPU ×{} |", x.short(), y.short()));
        rule.push_str("---:|");
    }
    for (x, y) in RATIOS {
        header.push_str(&format!(" {}/{} |", x.short(), y.short()));
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    for row in rows {
        println!("{}", table_line(kind, procs, row));
    }
    println!();
}

/// One row of the table: a cell per processor, then the ratios (`-` where
/// either side did not run). `n/a`: the processor cannot run on `kind`.
fn table_line(kind: BrokerKind, procs: &[Processor], row: &Row) -> String {
    let mut line = format!("| {} B | {} | {} |", row.size, row.partitions, row.load);
    for p in procs {
        match row.cells.get(p) {
            Some(c) => line.push_str(&format!(
                " {} | {} | {:.2} |",
                c.events,
                thousands(c.rate),
                c.cpu_us
            )),
            None if p.unsupported_on(kind).is_some() => line.push_str(" - | n/a | - |"),
            None => line.push_str(" - | failed | - |"),
        }
    }
    let ratio = |line: &mut String, pair: (Processor, Processor), of: fn(&Cell) -> f64| match (
        row.cells.get(&pair.0),
        row.cells.get(&pair.1),
    ) {
        (Some(x), Some(y)) => line.push_str(&format!(" {:.2} |", of(x) / of(y))),
        _ => line.push_str(" - |"),
    };
    for pair in CPU_RATIOS {
        ratio(&mut line, pair, |c| c.cpu_us);
    }
    for pair in RATIOS {
        ratio(&mut line, pair, |c| c.rate);
    }
    line
}

/// `1234567.8` → `1 234 568`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_cpu_per_event_against_the_raw_loop_then_throughput_ratios() {
        let cell = |events, rate, cpu_us| Cell {
            events,
            rate,
            cpu_us,
        };
        let row = Row {
            size: 100,
            partitions: 8,
            load: "0.5".into(),
            cells: [
                (Processor::A, cell(1000, 500_000.0, 2.0)),
                (Processor::B, cell(1000, 250_000.0, 3.0)),
            ]
            .into(),
        };
        let line = table_line(BrokerKind::Mock, &[Processor::A, Processor::B], &row);
        assert_eq!(
            line,
            "| 100 B | 8 | 0.5 | 1000 | 500 000 | 2.00 | 1000 | 250 000 | 3.00 | 1.50 | - | 0.50 | - | - | - |"
        );
    }

    #[test]
    fn order_values_have_the_requested_size_and_are_orders() {
        for size in [100, 1024] {
            for i in [0, 7, 199, 1_234_567] {
                let value = order_value(i, size);
                assert_eq!(value.len(), size, "{value}");
                let order: serde_json::Value = serde_json::from_str(&value).unwrap();
                assert!(order["amount"].as_f64().is_some());
            }
        }
    }

    #[test]
    fn a_scripts_stats_are_its_last_json_line() {
        let stdout = "processed 3 events in 0.50s: 6.0 events/s (skipped 0)\n\
                      {\"events\": 3, \"seconds\": 0.5, \"cpu_seconds\": 0.25}\n";
        let run = stats_line(stdout).unwrap();
        assert_eq!(run.events, 3);
        assert_eq!(run.wall, Duration::from_millis(500));
        assert_eq!(run.cpu, Duration::from_millis(250));
        assert!(stats_line("no stats\n").is_err());
        assert!(stats_line("{\"events\": 3}").is_err());
    }

    #[test]
    fn quixstreams_is_left_out_on_the_mock_only() {
        assert!(Processor::E.unsupported_on(BrokerKind::Mock).is_some());
        assert!(Processor::E.unsupported_on(BrokerKind::Tansu).is_none());
        assert!(Processor::D.unsupported_on(BrokerKind::Mock).is_none());
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_234_567.8), "1 234 568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1 000");
    }
}
