//! `sluice-bench boundary`: what crossing into Wasm costs, without Kafka.
//!
//! - [`PluginRunner::process`] with `passthrough` on batches of 1, 16, 128
//!   and 1024 events of 100 bytes (key and topic as the throughput bench
//!   has them, no headers): per event, everything the host pays for one
//!   call — lowering the events into the guest, the call, the SDK's batch
//!   loop, lifting the outputs back, the output size checks. The plugin
//!   itself does nothing, so this is the boundary.
//! - `order-enrich` at batches of 1, 16 and 128 on the same orders, for
//!   scale: JSON parsing and serialising inside the guest; and its Python
//!   and JavaScript ports (`order-enrich-py`, `order-enrich-js`) when they
//!   are built, where the guest language's runtime and its bindings are
//!   most of the cost.
//! - Instantiation ([`Instance::start`]: store, instance, `init`) and
//!   compilation ([`CompiledPlugin::load`]) cold and from the
//!   compiled-plugin cache, averaged.
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
use sluice::plugin::cache::ComponentCache;
use sluice::plugin::{
    CompiledPlugin, EngineOptions, Event, Instance, InstanceSettings, PluginEngine, PluginRunner,
};

/// The ports of `order-enrich` to the other guest languages, measured
/// beside the Rust one when they are built (`scripts/build-plugins`).
const GUESTS: &[&str] = &["order-enrich-py", "order-enrich-js"];

/// `sluice-bench boundary` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Batch sizes to measure passthrough at.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
    pub batch_sizes: Vec<usize>,
    /// Event (value) size in bytes.
    #[arg(long, default_value_t = 100)]
    pub event_size: usize,
    /// Events to process per Rust row (at least 1000 calls each).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Batch sizes to measure order-enrich at, in every language built
    /// (empty: skip it).
    #[arg(long, value_delimiter = ',', default_value = "1,16,128")]
    pub enrich_batches: Vec<usize>,
    /// Events to process per Python or JavaScript row (at least 100 calls
    /// each).
    #[arg(long, default_value_t = 30_000)]
    pub guest_events: usize,
    /// Instances to start for the instantiation time (a tenth of them for
    /// Python and JavaScript).
    #[arg(long, default_value_t = 500)]
    pub instances: usize,
    /// Compilations for the compile time (one for Python and JavaScript).
    #[arg(long, default_value_t = 3)]
    pub compiles: usize,
    /// Where `passthrough.wasm` and the `order-enrich*.wasm` are.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_sizes: vec![1, 16, 128, 1024],
            event_size: 100,
            events: 1_000_000,
            enrich_batches: vec![1, 16, 128],
            guest_events: 30_000,
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

/// Per-event CPU and wall nanoseconds of `runner` on `batch` events, over
/// `total` events but at least `min_calls` calls; `after_call` runs after
/// each call, inside the window (what a host does between calls).
pub(crate) fn per_event(
    runner: &mut PluginRunner,
    batch: &[Event],
    total: usize,
    min_calls: usize,
    mut after_call: impl FnMut(&mut PluginRunner),
) -> anyhow::Result<(f64, f64)> {
    // Warm up: the first calls grow the guest's heap.
    for _ in 0..20 {
        check(runner.process(batch))?;
        after_call(runner);
    }
    let calls = (total / batch.len().max(1)).max(min_calls);
    let (result, cpu, wall) = timed(|| {
        for _ in 0..calls {
            let outcomes = runner.process(black_box(batch));
            if outcomes.iter().any(Result::is_err) {
                return check(outcomes);
            }
            black_box(outcomes);
            after_call(runner);
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

/// One plugin of the tables, and how hard to measure it.
struct Measured {
    name: &'static str,
    path: PathBuf,
    plugin: Arc<CompiledPlugin>,
    /// Events per row, instances and compiles to average over.
    events: usize,
    min_calls: usize,
    instances: usize,
    compiles: usize,
}

/// Runs the boundary benchmark and prints its tables.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let dir = options
        .plugins_dir
        .clone()
        .unwrap_or_else(|| sluice_testkit::sluice::repo_dir().join("plugins"));
    // Compiles in this process are timed below, cold and from a cache of
    // its own; the plugins measured come from the user's cache.
    let engine = PluginEngine::new(&EngineOptions::from_process_env())?;
    let rust = |name| {
        (
            name,
            options.events,
            1000,
            options.instances,
            options.compiles,
        )
    };
    let guest = |name| {
        (
            name,
            options.guest_events,
            100,
            options.instances.div_ceil(10),
            1,
        )
    };
    let mut plugins = Vec::new();
    for (name, events, min_calls, instances, compiles) in
        [rust("passthrough"), rust("order-enrich")]
            .into_iter()
            .chain(GUESTS.iter().map(|&name| guest(name)))
    {
        let path = dir.join(format!("{name}.wasm"));
        if GUESTS.contains(&name) && !path.exists() {
            eprintln!("boundary: {} is not built; skipping it", path.display());
            continue;
        }
        let plugin = CompiledPlugin::load(&engine, name, &path)
            .map(Arc::new)
            .with_context(|| format!("{} (run scripts/build-plugins)", path.display()))?;
        plugins.push(Measured {
            name,
            path,
            plugin,
            events,
            min_calls,
            instances,
            compiles,
        });
    }
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
    for measured in &plugins {
        let batches = match measured.name {
            "passthrough" => &options.batch_sizes,
            _ => &options.enrich_batches,
        };
        rows.extend(batches.iter().map(|&batch| (measured, batch)));
    }
    for (measured, batch) in rows {
        let mut runner = PluginRunner::start(measured.plugin.clone(), settings.clone())?;
        let events = events(batch, options.event_size);
        let (cpu, wall) = per_event(
            &mut runner,
            &events,
            measured.events,
            measured.min_calls,
            |_| (),
        )?;
        println!(
            "| {} | {batch} | {cpu:.0} | {wall:.0} | {:.2} |",
            measured.name,
            cpu * batch as f64 / 1000.0
        );
    }

    println!();
    println!("| what | plugin | mean |");
    println!("|---|---|---:|");
    for measured in &plugins {
        let plugin = &measured.plugin;
        // One first, so lazy engine and allocator set-up is not averaged in.
        drop(Instance::start(plugin, &settings)?);
        let n = measured.instances.max(1);
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
            "| instantiate + init (`Instance::start`) | {} | {:.1} µs wall, {:.1} µs CPU |",
            measured.name,
            wall.as_secs_f64() * 1e6 / n as f64,
            cpu.as_secs_f64() * 1e6 / n as f64
        );
    }
    // Compiles: cold (no cache), then from a cache filled by the first.
    let cache_dir = tempfile::tempdir().context("a temporary cache directory")?;
    let cold = PluginEngine::new(&EngineOptions::default())?;
    let cached = PluginEngine::new(&EngineOptions {
        cache: Some(ComponentCache::at(cache_dir.path())),
        ..EngineOptions::default()
    })?;
    for measured in &plugins {
        let load = |engine: &PluginEngine| {
            CompiledPlugin::load(engine, measured.name, &measured.path)
                .with_context(|| measured.path.display().to_string())
        };
        let n = measured.compiles.max(1);
        let mean_ms = |engine: &PluginEngine| -> anyhow::Result<f64> {
            let t0 = Instant::now();
            for _ in 0..n {
                black_box(load(engine)?);
            }
            Ok(t0.elapsed().as_secs_f64() * 1e3 / n as f64)
        };
        let cold_ms = mean_ms(&cold)?;
        load(&cached)?;
        let cached_ms = mean_ms(&cached)?;
        println!(
            "| compile (`CompiledPlugin::load`), cold / from the cache | {} | {cold_ms:.0} ms / {cached_ms:.1} ms wall |",
            measured.name
        );
    }
    println!();
    Ok(())
}
