//! The shared wasmtime engine: one compiler configuration, one linker with
//! the host imports, and the epoch ticker that enforces call deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};

use super::PluginError;
use super::bindings::StatefulProcessor;
use super::cache::ComponentCache;
use super::host::HostState;

/// How often the epoch advances. A call's deadline is rounded up to whole
/// ticks, so this is also the precision of timeouts.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);

/// A cheap-to-clone handle to the engine every plugin of a process shares.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    /// Held while compiling: one compile at a time per process. A Python
    /// or JavaScript component takes ~500 MB and every core for seconds to
    /// compile; several at once (a config naming many new plugins, a
    /// redeploy of all of them) would multiply the memory, not the speed.
    compile_gate: parking_lot::Mutex<()>,
    _ticker: EpochTicker,
}

/// How the engine is set up: what the environment says, read once by the
/// CLI ([`EngineOptions::from_env`]) and handed down, so nothing below the
/// CLI reads the environment itself.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Where compiled components are kept; `None`: not kept.
    pub cache: Option<ComponentCache>,
    /// Write `/tmp/perf-<pid>.map` so `perf report` names the plugins'
    /// functions instead of showing bare JIT addresses
    /// (`SLUICE_PERFMAP=1`). Costs nothing when off.
    pub perf_map: bool,
}

/// The environment variable that turns [`EngineOptions::perf_map`] on.
pub const PERFMAP_ENV: &str = "SLUICE_PERFMAP";

impl EngineOptions {
    /// The options the environment asks for, read through `var` (the
    /// process environment at the CLI): the compiled-plugin cache (see
    /// [`ComponentCache::from_env`]) and `SLUICE_PERFMAP`.
    pub fn from_env(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        EngineOptions {
            cache: ComponentCache::from_env(var),
            perf_map: var(PERFMAP_ENV).is_some_and(|v| !v.is_empty()),
        }
    }

    /// [`EngineOptions::from_env`] over the process environment: for the
    /// edges (the CLI, the benchmark, tests), never below them.
    pub fn from_process_env() -> Self {
        Self::from_env(&|name| std::env::var_os(name))
    }
}

impl PluginEngine {
    /// Creates the engine with `options` and starts its epoch ticker
    /// thread, which stops when the last handle is dropped.
    pub fn new(options: &EngineOptions) -> Result<Self, PluginError> {
        let engine_error = |e: wasmtime::Error| PluginError::Engine {
            message: format!("{e:#}"),
        };
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        // Deadlines by epoch interruption: a few percent of overhead, where
        // fuel metering costs far more.
        config.epoch_interruption(true);
        // We call plugins synchronously, one call per batch; the async
        // machinery would only add to the cost of every call.
        config.concurrency_support(false);
        if options.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config).map_err(engine_error)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        // Guests built with componentize-js import `wasi:http` whether they
        // use it or not; requests are refused unless the sandbox grants the
        // network (see `sandbox::HttpHooks`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(engine_error)?;
        StatefulProcessor::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(engine_error)?;

        let ticker = EpochTicker::start(engine.clone());
        Ok(PluginEngine {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: options.cache.clone(),
                compile_gate: parking_lot::Mutex::new(()),
                _ticker: ticker,
            }),
        })
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    /// Compiles `bytes`, waiting for any other compile of this engine to
    /// finish first.
    pub(crate) fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        // A compile that panicked left nothing behind to protect.
        let _gate = self.inner.compile_gate.lock();
        Component::new(&self.inner.engine, bytes)
    }

    /// The compiled-plugin cache, if on.
    pub fn cache(&self) -> Option<&ComponentCache> {
        self.inner.cache.as_ref()
    }

    /// Number of epoch ticks that covers `span`, at least one. Ticks only
    /// say when to look at the clock: the deadline itself is an
    /// [`std::time::Instant`] checked by the store's epoch callback, because
    /// a ticker that was descheduled and catches up would otherwise end a
    /// call a tick or two early.
    pub(crate) fn ticks_for(span: Duration) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (span.as_nanos().div_ceil(tick) as u64).max(1)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                // Count ticks against the clock, not against sleeps: a
                // sleep that overshoots must not stretch every deadline.
                let start = std::time::Instant::now();
                let mut ticks: u128 = 0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let due = start.elapsed().as_nanos() / EPOCH_TICK.as_nanos();
                    while ticks < due {
                        engine.increment_epoch();
                        ticks += 1;
                    }
                }
            })
            .ok();
        if thread.is_none() {
            // Without the ticker no deadline can fire; that is a broken
            // process, not a degraded one.
            tracing::error!("cannot start the epoch ticker thread: plugin deadlines are off");
        }
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use super::*;

    /// The options an environment of `vars` asks for.
    fn options(vars: &[(&str, &str)]) -> EngineOptions {
        EngineOptions::from_env(&|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    fn cache_dir(options: &EngineOptions) -> Option<&Path> {
        options.cache.as_ref().map(ComponentCache::dir)
    }

    #[test]
    fn options_come_from_the_environment_given() {
        let home = options(&[("HOME", "/home/me")]);
        assert_eq!(cache_dir(&home), Some(Path::new("/home/me/.cache/sluice")));
        assert!(!home.perf_map);

        let xdg = options(&[("HOME", "/home/me"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(cache_dir(&xdg), Some(Path::new("/xdg/sluice")));

        let set = options(&[("SLUICE_CACHE_DIR", "/c"), ("SLUICE_PERFMAP", "1")]);
        assert_eq!(cache_dir(&set), Some(Path::new("/c")));
        assert!(set.perf_map);

        assert_eq!(cache_dir(&options(&[("SLUICE_CACHE_DIR", "off")])), None);
        // Nowhere to keep it.
        assert_eq!(cache_dir(&options(&[])), None);
        // Empty is unset.
        assert!(!options(&[("SLUICE_PERFMAP", "")]).perf_map);
    }
}
