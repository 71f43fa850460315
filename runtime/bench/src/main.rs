//! `sluice-bench`: how fast Sluice is, against the limit of the Kafka
//! client it runs on and against the hand-written Python loop it replaces.
//! `scripts/bench` builds the plugins and runs it; `docs/performance.md`
//! has the numbers and the machine they came from.
//!
//! - `throughput` ([`throughput`]): per broker (librdkafka's mock cluster
//!   and tansu, each in a process of its own so its CPU is not counted),
//!   per event size and partition count, events/s and CPU µs per event of
//!   (a) a raw rdkafka consume → produce loop with Sluice's client
//!   settings, (b) Sluice with `passthrough`, (c) Sluice with
//!   `order-enrich`, (d) the tutorial's Python `confluent-kafka` loop
//!   (`examples/python/tutorial_processor.py`), (e) the same enrichment as
//!   (c) as a quixstreams 3.28 application
//!   (`examples/python/quix_processor.py`, with the Python of
//!   `--quix-python`; not on the mock cluster); one markdown table per
//!   broker with the ratios b/a, c/a, b/d and b/e.
//! - `latency` ([`latency`]): per broker and input rate, the time from
//!   producing an event to reading its output (p50, p99, p99.9, max) of
//!   (a) the raw rdkafka loop and (b) Sluice with `passthrough`, under a
//!   paced load; one markdown table per broker with b−a at p99.
//! - `boundary` ([`boundary`]): the cost of crossing into Wasm per event
//!   against batch size, plugin instantiation and compile time. No Kafka.
//! - `state` ([`state`]): the cost of a state get + set per event (no
//!   Kafka), restore time per 100k changelog keys, and exactly-once
//!   against at-least-once throughput of the `account-balance` pipeline.
//! - `all`: both.
//! - `broker` (hidden): the mock cluster as a child process, driven over
//!   stdin by [`broker`].
//!
//! CPU is `getrusage(RUSAGE_SELF)` user + system over the measured window,
//! so every thread of the processor counts (librdkafka's, the epoch ticker)
//! and the broker does not. Other work on the machine makes wall-clock
//! numbers noisy: each table is printed with the load average.

mod boundary;
mod broker;
mod latency;
mod state;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Benchmarks of the Sluice host.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench", about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Events/s and CPU per event of (a) raw rdkafka, (b) Sluice +
    /// passthrough, (c) Sluice + order-enrich, (d) the Python tutorial loop,
    /// (e) a quixstreams application.
    Throughput(throughput::Options),
    /// Produce-to-output latency (p50/p99/p99.9/max) at fixed input rates
    /// of (a) raw rdkafka and (b) Sluice + passthrough.
    Latency(latency::Options),
    /// Per-event cost of the Wasm boundary by batch size; instantiation and
    /// compile time.
    Boundary(boundary::Options),
    /// Cost of a state get + set per event, restore time, exactly-once
    /// against at-least-once throughput.
    State(state::Options),
    /// `boundary`, then `throughput`, with their defaults.
    All {
        #[command(flatten)]
        throughput: throughput::Options,
    },
    /// Runs librdkafka's mock cluster and serves `topic NAME PARTITIONS`
    /// lines on stdin until EOF (used by `throughput`).
    #[command(hide = true)]
    Broker,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings only: the pipelines' info logs would interleave with tables.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let result = match cli.command {
        Command::Throughput(options) => throughput::run(&options),
        Command::Latency(options) => latency::run(&options),
        Command::Boundary(options) => boundary::run(&options),
        Command::State(options) => state::run(&options),
        Command::All { throughput } => {
            boundary::run(&boundary::Options::default()).and_then(|()| throughput::run(&throughput))
        }
        Command::Broker => broker::serve_mock(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// CPU time this process has used so far, user + system, all threads
/// (including those that have exited).
fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time the calling thread has used so far, user + system.
fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

fn rusage(who: libc::c_int) -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; on failure (only for
    // an invalid `who`, which we never pass) it stays zeroed.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The 1-minute load average, to print with every measurement: other work
/// on the machine skews wall-clock numbers.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// One line about the machine: cores, CPU model, RAM.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / (1 << 20) as f64);
    format!("{cores} cores, {model}, {ram_gib:.0} GiB RAM")
}
