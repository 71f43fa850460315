//! `sluice-bench latency`: how long an event takes from its producer to a
//! consumer of the output topic, at a fixed input rate, for
//!
//! - (a) `raw`: a `BaseConsumer` → `ThreadedProducer` loop with Sluice's
//!   client settings ([`sluice::kafka::consumer_config`],
//!   [`sluice::kafka::producer_config`]: the consumer's
//!   `fetch.wait.max.ms` is librdkafka's default 500 ms, the producer's
//!   `linger.ms` Sluice's default 5 ms), the loop of `throughput`'s (a)
//!   running while the input arrives; it commits nothing;
//! - (b) Sluice ([`Pipeline::start`]) with `plugins/passthrough.wasm` and
//!   the shipped defaults (origin headers on; `batch_size` and `workers`
//!   from the options, by default the pipeline defaults).
//!
//! Each run gets fresh topics (input, output, and a DLQ for Sluice) and a
//! fresh group. The processor starts on the empty input; once it has
//! joined its group (Sluice: its status says joined; the raw loop: a
//! rebalance assigned it partitions) a probe consumer is assigned every
//! partition of the output from offset 0 (no group, `fetch.wait.max.ms`
//! from `--probe-fetch-wait-ms`) and one warm-up record per input
//! partition is sent through, so that every client has its connections
//! before the measured part. Then a load producer (`linger.ms` from
//! `--load-linger-ms`, by default 0) sends
//! `rate × seconds` records, paced in 1 ms ticks (each tick sends the
//! records due by then), round-robin over the input partitions; each
//! value carries the time it was handed to the producer (nanoseconds
//! since an `Instant` the producer and the probe share: they are threads
//! of this process) and a sequence number, padded to `--size` bytes.
//! `passthrough` copies the value, so both survive the processor. The
//! probe records, for each output, its arrival time minus the send time.
//! After the last send the bench waits up to `--drain-secs` for every
//! record; a cell with records missing then is marked as fallen behind
//! (its percentiles are those of the records that came). The load
//! producer's acknowledgement times (send → ack, the broker's produce
//! path alone) are logged with each run.
//!
//! Neither test broker answers a fetch as soon as data arrives, so the
//! processors' `fetch.wait.max.ms` (librdkafka's 500 ms, which Sluice
//! keeps) shows in every number: librdkafka's mock cluster answers a
//! fetch that finds no data only after the full wait, and tansu 0.6
//! sleeps after every look at its storage, data or not (half the wait
//! when it is 250 ms or more, else all of it). A Kafka broker answers as
//! soon as `fetch.min.bytes` (1) is there. `--consumer
//! fetch.wait.max.ms=10` (for both (a) and (b)) takes that out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::broker::{Broker, BrokerKind};
use super::throughput::{BrokerChoice, HostOptions, thousands};
use super::{load_average, machine};
use sluice::config::{KafkaConfig, PipelineConfig, StepConfig};
use sluice::kafka::{self, send_waiting};
use sluice::pipeline::Pipeline;
use sluice::plugin::{CompiledPlugin, EngineOptions, PluginEngine};

/// How long a processor may take to join its group (tansu holds a join
/// for about half the session timeout).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the warm-up records may take to come out of the processor.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The load producer's pacing: every tick it sends the records due.
const TICK: Duration = Duration::from_millis(1);
/// The sequence number of warm-up records.
const WARMUP_SEQ: u64 = u64::MAX;
/// Bytes of a value that carry the send time and the sequence number.
const STAMP_LEN: usize = 16;
/// A load producer this late on its schedule is reported with the cell.
const LATE_PRODUCER: Duration = Duration::from_millis(100);
/// Input acknowledgements this slow at p99 (µs) are reported with the
/// cell: the broker could not take the load in, whatever the processor.
const SLOW_INPUT_ACKS_US: u64 = 100_000;

/// The processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Processor {
    /// (a) raw rdkafka consume → produce.
    A,
    /// (b) Sluice + passthrough.
    B,
}

impl Processor {
    const ALL: [Processor; 2] = [Processor::A, Processor::B];

    fn label(self) -> &'static str {
        match self {
            Processor::A => "a: raw rdkafka",
            Processor::B => "b: sluice passthrough",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Processor::A => "a",
            Processor::B => "b",
        }
    }
}

/// `sluice-bench latency` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Which broker(s).
    #[arg(long, value_enum, default_value = "both")]
    pub broker: BrokerChoice,
    /// Input rates in events/s, one table row each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub rates: Vec<u64>,
    /// How long the load producer sends at each rate.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Event size in bytes (the value; at least 16, the send time and the
    /// sequence number).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 4)]
    pub partitions: usize,
    /// Which processors to run [default: a,b].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Option<Vec<Processor>>,
    /// How long to wait, after the last send, for every output; records
    /// still missing then mark the cell as fallen behind.
    #[arg(long, default_value_t = 10)]
    pub drain_secs: u64,
    /// `fetch.wait.max.ms` of the probe consumer reading the output (on a
    /// broker that answers an empty fetch only after this wait, as the
    /// mock does, it adds up to this much).
    #[arg(long, default_value_t = 10)]
    pub probe_fetch_wait_ms: u64,
    /// `linger.ms` of the load producer (0: every record is sent as soon
    /// as the producer's thread gets to it).
    #[arg(long, default_value_t = 0)]
    pub load_linger_ms: u64,
    #[command(flatten)]
    pub host: HostOptions,
}

impl Options {
    fn processors(&self) -> Vec<Processor> {
        Processor::ALL
            .into_iter()
            .filter(|p| self.only.as_ref().is_none_or(|only| only.contains(p)))
            .collect()
    }
}

/// Latency percentiles of one run, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    count: usize,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Stats {
    /// The percentiles of `samples` (µs); `None` when there are none.
    fn of(mut samples: Vec<u64>) -> Option<Stats> {
        samples.sort_unstable();
        Some(Stats {
            count: samples.len(),
            p50: percentile(&samples, 0.50)?,
            p99: percentile(&samples, 0.99)?,
            p999: percentile(&samples, 0.999)?,
            max: *samples.last()?,
        })
    }
}

/// The `q` quantile (0..=1) of `sorted` by nearest rank: the smallest
/// sample with at least `q` of all samples at or below it.
fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Writes the value of a record sent at `sent_ns` with sequence number
/// `seq` into `buf`: both as big-endian u64s, then padding up to `size`
/// bytes.
fn encode(sent_ns: u64, seq: u64, size: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&sent_ns.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.resize(size.max(STAMP_LEN), b'.');
}

/// The send time and sequence number [`encode`] wrote, if `value` has them.
fn decode(value: &[u8]) -> Option<(u64, u64)> {
    let sent_ns = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(value.get(8..STAMP_LEN)?.try_into().ok()?);
    Some((sent_ns, seq))
}

/// Nanoseconds from `epoch` to now.
fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What one run measured.
#[derive(Debug)]
struct Cell {
    sent: u64,
    /// Distinct records that reached the output before the deadline.
    received: u64,
    duplicates: u64,
    stats: Option<Stats>,
    /// Send → acknowledgement of the input records (the broker's produce
    /// path alone).
    input_acks: Option<Stats>,
    /// How far behind its schedule the load producer was at worst.
    producer_lag: Duration,
}

/// One table row: a rate.
struct Row {
    rate: u64,
    load: String,
    cells: HashMap<Processor, Result<Cell, String>>,
}

/// Runs the benchmark and prints one table per broker.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let plugins_dir = options.host.plugins_dir();
    let plugin = plugins_dir.join("passthrough.wasm");
    let processors = options.processors();
    if processors.contains(&Processor::B) && !plugin.is_file() {
        bail!("{} not found: run scripts/build-plugins", plugin.display());
    }
    if options.rates.contains(&0) || options.seconds == 0 || options.partitions == 0 {
        bail!("--rates, --seconds and --partitions must be positive");
    }
    let kinds = match options.broker {
        BrokerChoice::Mock => vec![BrokerKind::Mock],
        BrokerChoice::Tansu => vec![BrokerKind::Tansu],
        BrokerChoice::Both => vec![BrokerKind::Mock, BrokerKind::Tansu],
    };
    for kind in kinds {
        let mut bench = Bench {
            options,
            broker: Broker::start(kind)?,
            plugin: plugin.clone(),
            run_seq: 0,
        };
        let mut rows = Vec::new();
        for &rate in &options.rates {
            if let Some(max) = kind.max_events(options.size.max(STAMP_LEN), options.partitions)
                && (rate * options.seconds) as usize > max
            {
                eprintln!(
                    "  {} at {rate}/s: more than the mock keeps per partition (~5 MiB); \
                     a consumer lagging that far behind loses records",
                    kind.name()
                );
            }
            let mut row = Row {
                rate,
                load: load_average(),
                cells: HashMap::new(),
            };
            for &processor in &processors {
                let cell = bench.run_once(processor, rate);
                match &cell {
                    Ok(cell) => eprintln!(
                        "  {} {rate}/s {}: {} of {} in time ({} duplicates); end to end {}; \
                         input acks {}; load producer up to {:.1} ms late (load {})",
                        kind.name(),
                        processor.label(),
                        cell.received,
                        cell.sent,
                        cell.duplicates,
                        describe(cell.stats),
                        describe(cell.input_acks),
                        cell.producer_lag.as_secs_f64() * 1000.0,
                        load_average(),
                    ),
                    Err(e) => eprintln!(
                        "  {} {rate}/s {}: failed: {e:#}",
                        kind.name(),
                        processor.label()
                    ),
                }
                row.cells
                    .insert(processor, cell.map_err(|e| format!("{e:#}")));
            }
            rows.push(row);
        }
        print_table(kind, options, &processors, &rows);
    }
    Ok(())
}

/// What the runs on one broker share.
struct Bench<'a> {
    options: &'a Options,
    broker: Broker,
    plugin: PathBuf,
    run_seq: usize,
}

impl Bench<'_> {
    /// One run: fresh topics and group, the processor, warm-up, paced load.
    fn run_once(&mut self, processor: Processor, rate: u64) -> anyhow::Result<Cell> {
        let options = self.options;
        self.run_seq += 1;
        let id = format!(
            "latency-{}-{}-{}-{rate}-{}",
            std::process::id(),
            self.broker.kind().name(),
            processor.short(),
            self.run_seq
        );
        let (input, output, dlq) = (format!("{id}-in"), format!("{id}-out"), format!("{id}-dlq"));
        let partitions = options.partitions;
        for topic in [&input, &output, &dlq] {
            self.broker.create_topic(topic, partitions)?;
        }
        let bootstrap = self.broker.bootstrap().to_owned();
        let kafka = options.host.kafka_config(&bootstrap)?;
        let group = format!("{id}-group");

        let mut running = match processor {
            Processor::A => Running::raw(&kafka, &bootstrap, &input, &output, &group)?,
            Processor::B => {
                let name = format!("l{}", self.run_seq);
                let config = PipelineConfig {
                    group_id: group.clone(),
                    batch_size: options.host.batch_size,
                    workers: options.host.workers,
                    partitions: i32::try_from(partitions).context("too many partitions")?,
                    ..PipelineConfig::new(
                        &name,
                        vec![input.clone()],
                        vec![StepConfig {
                            plugin: "passthrough".to_owned(),
                            path: self.plugin.clone(),
                            config: Vec::new(),
                        }],
                        &output,
                        &dlq,
                    )
                };
                Running::sluice(&config, &kafka, &bootstrap)?
            }
        };
        let joined_by = Instant::now() + JOIN_TIMEOUT;
        while !running.joined()? {
            if Instant::now() > joined_by {
                bail!("not joined within {JOIN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }

        let total = rate * options.seconds;
        let epoch = Instant::now();
        let probe = Probe::start(
            &bootstrap,
            &output,
            partitions,
            total,
            epoch,
            options.probe_fetch_wait_ms,
        )?;
        let producer: ThreadedProducer<Counted> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("client.id", "sluice-bench-load")
            .set("linger.ms", options.load_linger_ms.to_string())
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create_with_context(Counted::timed(epoch))
            .context("creating the load producer")?;
        let mut value = Vec::with_capacity(options.size.max(STAMP_LEN));

        // Warm-up: one record per partition through the processor, so that
        // every client has connected and is fetching before the clock runs.
        for partition in 0..partitions {
            encode(nanos_since(epoch), WARMUP_SEQ, options.size, &mut value);
            let record = BaseRecord::to(&input)
                .partition(i32::try_from(partition)?)
                .payload(&value[..]);
            send_waiting(&producer, record).map_err(|(e, _)| e)?;
        }
        let warm_by = Instant::now() + WARMUP_TIMEOUT;
        while probe.counts.warm.load(Ordering::Relaxed) < partitions as u64 {
            running.alive()?;
            if Instant::now() > warm_by {
                bail!(
                    "{} of {partitions} warm-up records came out within {WARMUP_TIMEOUT:?}",
                    probe.counts.warm.load(Ordering::Relaxed)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }

        // The load: every tick, the records due by then.
        let start = Instant::now();
        let ns_per_record = 1e9 / rate as f64;
        let mut sent = 0u64;
        let mut tick = 0u32;
        let mut producer_lag = Duration::ZERO;
        while sent < total {
            let elapsed = start.elapsed();
            let due = ((elapsed.as_nanos() as f64 / ns_per_record) as u64 + 1).min(total);
            while sent < due {
                encode(nanos_since(epoch), sent, options.size, &mut value);
                let partition = i32::try_from(sent % partitions as u64)?;
                let record = BaseRecord::to(&input)
                    .partition(partition)
                    .payload(&value[..]);
                send_waiting(&producer, record).map_err(|(e, _)| e)?;
                sent += 1;
            }
            let scheduled = Duration::from_nanos(((sent - 1) as f64 * ns_per_record) as u64);
            producer_lag = producer_lag.max(start.elapsed().saturating_sub(scheduled));
            tick += 1;
            let next = start + TICK * tick;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            // A producer more than a tick behind skips the ticks it missed.
            tick = tick.max((start.elapsed().as_nanos() / TICK.as_nanos()) as u32);
        }

        let deadline = Instant::now() + Duration::from_secs(options.drain_secs);
        while probe.counts.distinct.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            running.alive()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        let samples = probe.finish()?;
        running.stop()?;
        let failed = producer.context().failed.load(Ordering::Relaxed);
        let input_acks = Stats::of(producer.context().take_ack_times());
        drop(producer);
        if failed > 0 {
            bail!("{failed} input records could not be written");
        }
        Ok(Cell {
            sent: total,
            received: samples.distinct,
            duplicates: samples.duplicates,
            stats: Stats::of(samples.latencies_us),
            input_acks,
            producer_lag,
        })
    }
}

/// A running processor.
enum Running {
    /// (a): the loop runs on a thread of its own until `stop` is set.
    Raw {
        stop: Arc<AtomicBool>,
        joined: Arc<AtomicBool>,
        thread: Option<JoinHandle<anyhow::Result<u64>>>,
    },
    /// (b), with the engine its plugin runs on.
    Sluice {
        pipeline: Option<Box<Pipeline>>,
        _engine: PluginEngine,
    },
}

impl Running {
    /// (a): subscribes to `input` and starts the loop.
    fn raw(
        kafka: &KafkaConfig,
        bootstrap: &str,
        input: &str,
        output: &str,
        group: &str,
    ) -> anyhow::Result<Running> {
        let producer: ThreadedProducer<Counted> = kafka::producer_config(kafka, bootstrap)
            .create_with_context(Counted::default())
            .context("creating the raw loop's producer")?;
        let joined = Arc::new(AtomicBool::new(false));
        let consumer: BaseConsumer<JoinWatch> = kafka::consumer_config(kafka, bootstrap, group)
            .create_with_context(JoinWatch(joined.clone()))
            .context("creating the raw loop's consumer")?;
        consumer.subscribe(&[input])?;
        let stop = Arc::new(AtomicBool::new(false));
        let output = output.to_owned();
        let thread = std::thread::Builder::new()
            .name("raw-loop".into())
            .spawn({
                let stop = stop.clone();
                move || raw_loop(&consumer, &producer, &output, &stop)
            })
            .context("starting the raw loop's thread")?;
        Ok(Running::Raw {
            stop,
            joined,
            thread: Some(thread),
        })
    }

    /// (b): starts a pipeline with `config`.
    fn sluice(
        config: &PipelineConfig,
        kafka: &KafkaConfig,
        bootstrap: &str,
    ) -> anyhow::Result<Running> {
        let step = config.steps.first().context("a pipeline without steps")?;
        // A fresh engine per run, so no epoch ticker outlives its run.
        let engine = PluginEngine::new(&EngineOptions::from_process_env())?;
        let compiled = Arc::new(CompiledPlugin::load(&engine, &step.plugin, &step.path)?);
        let pipeline = Pipeline::start(config, kafka, bootstrap, &[compiled])?;
        Ok(Running::Sluice {
            pipeline: Some(Box::new(pipeline)),
            _engine: engine,
        })
    }

    /// Whether it has joined its group; an error if it ended by itself.
    fn joined(&mut self) -> anyhow::Result<bool> {
        self.alive()?;
        Ok(match self {
            Running::Raw { joined, .. } => joined.load(Ordering::Relaxed),
            Running::Sluice { pipeline, .. } => pipeline
                .as_ref()
                .is_some_and(|pipeline| pipeline.status().view().joined),
        })
    }

    /// An error if it ended by itself (it only ends when stopped).
    fn alive(&mut self) -> anyhow::Result<()> {
        match self {
            Running::Raw { thread, .. } => {
                if thread.as_ref().is_none_or(JoinHandle::is_finished) {
                    match thread.take().map(JoinHandle::join) {
                        Some(Ok(Err(e))) => return Err(e.context("the raw loop failed")),
                        Some(Err(_)) => bail!("the raw loop panicked"),
                        _ => bail!("the raw loop ended by itself"),
                    }
                }
            }
            Running::Sluice { pipeline, .. } => {
                if pipeline.as_ref().is_none_or(|p| p.is_finished()) {
                    bail!("the pipeline stopped by itself");
                }
            }
        }
        Ok(())
    }

    /// Stops it (Sluice drains and commits; the raw loop just ends).
    fn stop(mut self) -> anyhow::Result<()> {
        match &mut self {
            Running::Raw { stop, thread, .. } => {
                stop.store(true, Ordering::Relaxed);
                match thread.take().map(JoinHandle::join) {
                    Some(Ok(result)) => result.map(drop),
                    Some(Err(_)) => bail!("the raw loop panicked"),
                    None => Ok(()),
                }
            }
            Running::Sluice { pipeline, .. } => match pipeline.take() {
                Some(pipeline) => Ok(pipeline.stop()?),
                None => Ok(()),
            },
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A run that failed half-way: let the loop end by itself (a
        // pipeline's own drop cancels it).
        if let Running::Raw { stop, .. } = self {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// (a): consume → produce until `stop`; returns how many it forwarded.
fn raw_loop(
    consumer: &BaseConsumer<JoinWatch>,
    producer: &ThreadedProducer<Counted>,
    output: &str,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let mut forwarded = 0;
    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "raw loop: consumer error");
                continue;
            }
            None => continue,
        };
        super::throughput::forward(producer, output, &message)?;
        forwarded += 1;
    }
    consumer.unsubscribe();
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {forwarded} outputs could not be written");
    }
    Ok(forwarded)
}

/// A consumer context that notes the first assignment of partitions.
struct JoinWatch(Arc<AtomicBool>);

impl ClientContext for JoinWatch {}

impl ConsumerContext for JoinWatch {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(list) if list.count() > 0) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A producer context counting failed deliveries and, for the load
/// producer, timing the acknowledgement of every measured record.
#[derive(Default)]
struct Counted {
    failed: AtomicU64,
    /// The epoch of the send times in the values, when timing.
    epoch: Option<Instant>,
    /// Send → acknowledgement of each measured record, µs.
    ack_us: Mutex<Vec<u64>>,
}

impl Counted {
    fn timed(epoch: Instant) -> Self {
        Counted {
            epoch: Some(epoch),
            ..Counted::default()
        }
    }

    fn take_ack_times(&self) -> Vec<u64> {
        std::mem::take(&mut *self.ack_us.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ClientContext for Counted {}

impl ProducerContext for Counted {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match (result, self.epoch) {
            (Err(_), _) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            (Ok(message), Some(epoch)) => {
                if let Some((sent_ns, seq)) = message.payload().and_then(decode)
                    && seq != WARMUP_SEQ
                {
                    let us = nanos_since(epoch).saturating_sub(sent_ns) / 1000;
                    self.ack_us
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(us);
                }
            }
            (Ok(_), None) => {}
        }
    }
}

/// What the probe has seen so far.
#[derive(Default)]
struct ProbeCounts {
    warm: AtomicU64,
    distinct: AtomicU64,
}

/// What the probe saw by the time it was stopped.
struct Samples {
    latencies_us: Vec<u64>,
    distinct: u64,
    duplicates: u64,
}

/// The consumer of the output topic that times every record.
struct Probe {
    stop: Arc<AtomicBool>,
    counts: Arc<ProbeCounts>,
    thread: Option<JoinHandle<Samples>>,
}

impl Probe {
    /// Assigns every partition of `topic` from offset 0 (a fresh topic)
    /// and starts reading on a thread of its own.
    fn start(
        bootstrap: &str,
        topic: &str,
        partitions: usize,
        expected: u64,
        epoch: Instant,
        fetch_wait_ms: u64,
    ) -> anyhow::Result<Probe> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "sluice-bench-probe")
            // librdkafka wants a group for a consumer; it is never joined.
            .set("group.id", "sluice-bench-probe")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
            .create()
            .context("creating the probe consumer")?;
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition_offset(topic, i32::try_from(partition)?, Offset::Offset(0))?;
        }
        consumer
            .assign(&list)
            .with_context(|| format!("assigning the partitions of {topic}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(ProbeCounts::default());
        let thread = std::thread::Builder::new()
            .name("probe".into())
            .spawn({
                let (stop, counts) = (stop.clone(), counts.clone());
                move || probe_loop(&consumer, expected, epoch, &stop, &counts)
            })
            .context("starting the probe's thread")?;
        Ok(Probe {
            stop,
            counts,
            thread: Some(thread),
        })
    }

    /// Stops reading; what it saw.
    fn finish(mut self) -> anyhow::Result<Samples> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(samples)) => Ok(samples),
            _ => bail!("the probe thread panicked"),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn probe_loop(
    consumer: &BaseConsumer,
    expected: u64,
    epoch: Instant,
    stop: &AtomicBool,
    counts: &ProbeCounts,
) -> Samples {
    let mut seen = vec![false; usize::try_from(expected).unwrap_or(0)];
    let mut samples = Samples {
        latencies_us: Vec::with_capacity(seen.len()),
        distinct: 0,
        duplicates: 0,
    };
    let mut foreign = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(20)) {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "probe: consumer error");
                continue;
            }
            None => continue,
        };
        let now = nanos_since(epoch);
        match message.payload().and_then(decode) {
            Some((_, WARMUP_SEQ)) => {
                counts.warm.fetch_add(1, Ordering::Relaxed);
            }
            Some((sent_ns, seq)) => match seen.get_mut(seq as usize) {
                Some(true) => samples.duplicates += 1,
                Some(slot) => {
                    *slot = true;
                    samples.distinct += 1;
                    counts.distinct.fetch_add(1, Ordering::Relaxed);
                    samples
                        .latencies_us
                        .push(now.saturating_sub(sent_ns) / 1000);
                }
                None => foreign += 1,
            },
            None => foreign += 1,
        }
    }
    if foreign > 0 {
        tracing::warn!(
            foreign,
            "probe: records on the output that the bench did not send"
        );
    }
    samples
}

/// Percentiles for a log line.
fn describe(stats: Option<Stats>) -> String {
    stats.map_or_else(
        || "no samples".to_owned(),
        |s| {
            format!(
                "p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms",
                ms(s.p50),
                ms(s.p99),
                ms(s.p999),
                ms(s.max)
            )
        },
    )
}

/// `µs` as milliseconds with two decimals.
fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn print_table(kind: BrokerKind, options: &Options, procs: &[Processor], rows: &[Row]) {
    println!();
    println!(
        "### Latency on {} ({}; {} B values, {} partitions, {} s per rate; Sluice passthrough, \
         batch_size {}, workers {}, origin_headers true; probe fetch.wait.max.ms {}; load producer linger.ms {})",
        kind.name(),
        machine(),
        options.size.max(STAMP_LEN),
        options.partitions,
        options.seconds,
        options.host.batch_size,
        options.host.workers,
        options.probe_fetch_wait_ms,
        options.load_linger_ms,
    );
    println!();
    let mut header = String::from("| rate/s | load |");
    let mut rule = String::from("|---:|---:|");
    for p in procs {
        let s = p.short();
        header.push_str(&format!(
            " {s} events | {s} p50 ms | {s} p99 ms | {s} p99.9 ms | {s} max ms |"
        ));
        rule.push_str("---:|---:|---:|---:|---:|");
    }
    let both = procs.contains(&Processor::A) && procs.contains(&Processor::B);
    if both {
        header.push_str(" b−a p99 ms |");
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    for row in rows {
        println!("{}", table_line(procs, both, row));
    }
    println!();
}

/// One row: per processor the events (or why it failed or fell behind)
/// and the percentiles, then b−a at p99.
fn table_line(procs: &[Processor], both: bool, row: &Row) -> String {
    let mut line = format!("| {} | {} |", thousands(row.rate as f64), row.load);
    for p in procs {
        match row.cells.get(p) {
            Some(Ok(cell)) => {
                let mut events = thousands(cell.received as f64);
                if cell.received < cell.sent {
                    events = format!(
                        "(fell behind: {} of {} in time)",
                        thousands(cell.received as f64),
                        thousands(cell.sent as f64)
                    );
                }
                if let Some(acks) = cell.input_acks.filter(|a| a.p99 > SLOW_INPUT_ACKS_US) {
                    events.push_str(&format!(
                        " (broker behind: input acks p99 {} ms)",
                        ms(acks.p99)
                    ));
                }
                if cell.producer_lag > LATE_PRODUCER {
                    events.push_str(&format!(
                        " (load producer up to {} ms late)",
                        cell.producer_lag.as_millis()
                    ));
                }
                match cell.stats {
                    Some(s) => line.push_str(&format!(
                        " {events} | {} | {} | {} | {} |",
                        ms(s.p50),
                        ms(s.p99),
                        ms(s.p999),
                        ms(s.max)
                    )),
                    None => line.push_str(&format!(" {events} | - | - | - | - |")),
                }
            }
            Some(Err(_)) | None => line.push_str(" failed | - | - | - | - |"),
        }
    }
    if both {
        // Only where every record came and the broker kept up with the
        // input: otherwise the difference is the broker's.
        let p99 = |p| match row.cells.get(&p) {
            Some(Ok(Cell {
                stats: Some(s),
                received,
                sent,
                input_acks,
                ..
            })) if received == sent && input_acks.is_none_or(|a| a.p99 <= SLOW_INPUT_ACKS_US) => {
                Some(s.p99)
            }
            _ => None,
        };
        match (p99(Processor::A), p99(Processor::B)) {
            (Some(a), Some(b)) => {
                line.push_str(&format!(" {:+.2} |", (b as f64 - a as f64) / 1000.0))
            }
            _ => line.push_str(" - |"),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 0.50), Some(500));
        assert_eq!(percentile(&samples, 0.99), Some(990));
        assert_eq!(percentile(&samples, 0.999), Some(999));
        assert_eq!(percentile(&samples, 1.0), Some(1000));
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn stats_sort_their_samples() {
        let stats = Stats::of(vec![30, 10, 20, 1000]).unwrap();
        assert_eq!(
            stats,
            Stats {
                count: 4,
                p50: 20,
                p99: 1000,
                p999: 1000,
                max: 1000
            }
        );
        assert_eq!(Stats::of(Vec::new()), None);
    }

    #[test]
    fn values_carry_send_time_and_sequence_padded_to_size() {
        let mut buf = Vec::new();
        encode(123_456_789_012, 42, 100, &mut buf);
        assert_eq!(buf.len(), 100);
        assert_eq!(decode(&buf), Some((123_456_789_012, 42)));
        // Too small a size still holds the stamp.
        encode(u64::MAX - 1, WARMUP_SEQ, 4, &mut buf);
        assert_eq!(buf.len(), STAMP_LEN);
        assert_eq!(decode(&buf), Some((u64::MAX - 1, WARMUP_SEQ)));
        assert_eq!(decode(b"short"), None);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(100_000.0), "100 000");
        assert_eq!(thousands(999.0), "999");
    }
}
