//! `sluice-bench boundary`: what crossing into Wasm costs, without Kafka.
//!
//! - [`PluginRunner::process`] with `passthrough` on batches of 1, 16, 128
//!   and 1024 events of 100 bytes (key and topic as the throughput bench
//!   has them, no headers): per event, everything the host pays for one
//!   call — lowering the events into the guest, the call, the SDK's batch
//!   loop, lifting the outputs back, the output size checks. The plugin
//!   itself does nothing, so this is the boundary.
//! - `order-enrich` at batch 128 on the same orders, for scale: JSON
//!   parsing and serialising inside the guest.
//! - Instantiation ([`Instance::start`]: store, instance, `init`) and
//!   compilation ([`CompiledPlugin::load`]), averaged.
//!
//! Times are the calling thread's CPU time (`RUSAGE_THREAD`), which other
//! processes on the machine do not inflate; wall time is shown next to it.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::throughput::{order_key, order_value};
use super::{load_average, machine, thread_cpu};
use sluice::plugin::{
    CompiledPlugin, Event, Instance, InstanceSettings, PluginEngine, PluginRunner,
};

/// `sluice-bench boundary` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Batch sizes to measure passthrough at.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
    pub batch_sizes: Vec<usize>,
    /// Event (value) size in bytes.
    #[arg(long, default_value_t = 100)]
    pub event_size: usize,
    /// Events to process per batch size (at least 1000 calls each).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Batch size to measure order-enrich at (0: skip it).
    #[arg(long, default_value_t = 128)]
    pub enrich_batch: usize,
    /// Instances to start for the instantiation time.
    #[arg(long, default_value_t = 500)]
    pub instances: usize,
    /// Compilations for the compile time.
    #[arg(long, default_value_t = 3)]
    pub compiles: usize,
    /// Where `passthrough.wasm` and `order-enrich.wasm` are.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_sizes: vec![1, 16, 128, 1024],
            event_size: 100,
            events: 1_000_000,
            enrich_batch: 128,
            instances: 500,
            compiles: 3,
            plugins_dir: None,
        }
    }
}

/// Thread CPU and wall time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    let out = f();
    (out, thread_cpu().saturating_sub(cpu0), t0.elapsed())
}

fn events(batch: usize, size: usize) -> Vec<Event> {
    (0..batch)
        .map(|i| Event {
            topic: "bench-in".into(),
            partition: 0,
            offset: i as i64,
            timestamp_ms: Some(1_732_400_000_000),
            key: Some(order_key(i).into_bytes()),
            value: Some(order_value(i, size).into_bytes()),
            headers: Vec::new(),
        })
        .collect()
}

/// Per-event CPU and wall nanoseconds of `runner` on `batch` events.
fn per_event(
    runner: &mut PluginRunner,
    batch: &[Event],
    total: usize,
) -> anyhow::Result<(f64, f64)> {
    // Warm up: the first calls grow the guest's heap.
    for _ in 0..20 {
        check(runner.process(batch))?;
    }
    let calls = (total / batch.len().max(1)).max(1000);
    let (result, cpu, wall) = timed(|| {
        for _ in 0..calls {
            let outcomes = runner.process(black_box(batch));
            if outcomes.iter().any(Result::is_err) {
                return check(outcomes);
            }
            black_box(outcomes);
        }
        Ok(())
    });
    result?;
    let n = (calls * batch.len()) as f64;
    Ok((cpu.as_nanos() as f64 / n, wall.as_nanos() as f64 / n))
}

fn check(outcomes: Vec<sluice::plugin::Outcome>) -> anyhow::Result<()> {
    if let Some(Err(failure)) = outcomes.iter().find(|o| o.is_err()) {
        bail!("the plugin failed an event: {failure}");
    }
    Ok(())
}

/// Runs the boundary benchmark and prints its tables.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let dir = options
        .plugins_dir
        .clone()
        .unwrap_or_else(|| sluice_testkit::sluice::repo_dir().join("plugins"));
    let engine = PluginEngine::new()?;
    let load = |name: &str| {
        let path = dir.join(format!("{name}.wasm"));
        CompiledPlugin::load(&engine, name, &path)
            .map(Arc::new)
            .with_context(|| format!("{} (run scripts/build-plugins)", path.display()))
    };
    let passthrough = load("passthrough")?;
    let enrich = load("order-enrich")?;
    let settings = Arc::new(InstanceSettings::default());

    println!();
    println!(
        "### Wasm boundary ({}; {}-byte events; load {})",
        machine(),
        options.event_size,
        load_average()
    );
    println!();
    println!("| plugin | batch | CPU ns/event | wall ns/event | CPU µs/call |");
    println!("|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for &batch in &options.batch_sizes {
        rows.push(("passthrough", batch, &passthrough));
    }
    if options.enrich_batch > 0 {
        rows.push(("order-enrich", options.enrich_batch, &enrich));
    }
    for (name, batch, plugin) in rows {
        let mut runner = PluginRunner::start(plugin.clone(), settings.clone())?;
        let events = events(batch, options.event_size);
        let (cpu, wall) = per_event(&mut runner, &events, options.events)?;
        println!(
            "| {name} | {batch} | {cpu:.0} | {wall:.0} | {:.2} |",
            cpu * batch as f64 / 1000.0
        );
    }

    println!();
    println!("| what | plugin | mean |");
    println!("|---|---|---:|");
    for (name, plugin) in [("passthrough", &passthrough), ("order-enrich", &enrich)] {
        // One first, so lazy engine and allocator set-up is not averaged in.
        drop(Instance::start(plugin, &settings)?);
        let n = options.instances.max(1);
        let mut cpu = Duration::ZERO;
        let mut wall = Duration::ZERO;
        for _ in 0..n {
            let (instance, c, w) = timed(|| Instance::start(plugin, &settings));
            let instance = instance?;
            cpu += c;
            wall += w;
            drop(instance);
        }
        println!(
            "| instantiate + init (`Instance::start`) | {name} | {:.1} µs wall, {:.1} µs CPU |",
            wall.as_secs_f64() * 1e6 / n as f64,
            cpu.as_secs_f64() * 1e6 / n as f64
        );
    }
    for name in ["passthrough", "order-enrich"] {
        let n = options.compiles.max(1);
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(load(name)?);
        }
        println!(
            "| compile (`CompiledPlugin::load`, parallel) | {name} | {:.0} ms wall |",
            t0.elapsed().as_secs_f64() * 1e3 / n as f64
        );
    }
    println!();
    Ok(())
}
