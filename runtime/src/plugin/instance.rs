//! One live plugin instance: its store, its bindings and the calls into it,
//! with every trap classified as timeout, memory or trap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};

use super::PluginError;
use super::bindings::{Event, Output, ProcessError, StatefulProcessor};
use super::compiled::CompiledPlugin;
use super::engine::PluginEngine;
use super::host::HostState;
use super::limits::{Limits, MemoryLimiter};
use super::sandbox::Sandbox;
use super::state::{StateLimitError, Transaction};
use super::stdio::TailBuffer;
use crate::failure::{Failure, FailureKind};
use crate::metrics::InstanceMetrics;

/// How much of a plugin's stdout/stderr is kept, and attached to a trap.
const STDIO_TAIL: usize = 1024;

/// What a fresh instance needs besides the compiled plugin.
#[derive(Debug, Clone, Default)]
pub struct InstanceSettings {
    pub limits: Limits,
    pub sandbox: Sandbox,
    /// The `config` table handed to `init`.
    pub config: Vec<(String, String)>,
    /// Its metrics (instances started, memory, replacements); registered
    /// for a pipeline's steps, nowhere otherwise.
    pub metrics: InstanceMetrics,
}

/// A live instance. A trap leaves it in an unknown state, so the caller must
/// drop it after any `Err` from [`Instance::process`].
pub struct Instance {
    store: Store<HostState>,
    bindings: StatefulProcessor,
    stdio: TailBuffer,
    limits: Limits,
    /// Its memory once `init` returned.
    memory_at_start: usize,
}

impl Instance {
    /// Instantiates `plugin` and runs its `init`.
    pub fn start(
        plugin: &CompiledPlugin,
        settings: &InstanceSettings,
    ) -> Result<Self, PluginError> {
        let name = plugin.name();
        let stdio = TailBuffer::new(STDIO_TAIL);
        let wasi = settings.sandbox.build(&stdio)?;
        let state = HostState {
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: super::sandbox::HttpHooks {
                network: settings.sandbox.network,
            },
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(settings.limits.memory_bytes),
            plugin: Arc::clone(name),
            log_limit: Arc::clone(plugin.log_limit()),
            call_deadline: Instant::now() + settings.limits.deadline,
            state: None,
        };
        let mut store = Store::new(plugin.engine().engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|store| {
            let remaining = store
                .data()
                .call_deadline
                .saturating_duration_since(Instant::now());
            Ok(if remaining.is_zero() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(PluginEngine::ticks_for(remaining))
            })
        });
        arm_deadline(&mut store, settings.limits.deadline);
        let bindings =
            plugin
                .pre()
                .instantiate(&mut store)
                .map_err(|e| PluginError::Instantiate {
                    name: name.to_string(),
                    message: format!("{e:#}"),
                })?;
        let mut instance = Instance {
            store,
            bindings,
            stdio,
            limits: settings.limits.clone(),
            memory_at_start: 0,
        };
        match instance
            .bindings
            .call_init(&mut instance.store, &settings.config)
        {
            Ok(Ok(())) => {
                settings.metrics.starts.inc();
                instance.memory_at_start = instance.memory();
                let bytes = i64::try_from(instance.memory_at_start).unwrap_or(i64::MAX);
                settings.metrics.memory.set(bytes);
                Ok(instance)
            }
            Ok(Err(message)) => Err(PluginError::Init {
                name: name.to_string(),
                message,
            }),
            Err(trap) => Err(PluginError::Init {
                name: name.to_string(),
                message: instance.classify(trap).to_string(),
            }),
        }
    }

    /// Hands the next `process` call its state transaction.
    pub fn begin_state(&mut self, transaction: Transaction) {
        self.store.data_mut().state = Some(transaction);
    }

    /// Takes back the transaction given by [`Instance::begin_state`], after
    /// the call, to commit or abort it.
    pub fn end_state(&mut self) -> Option<Transaction> {
        self.store.data_mut().state.take()
    }

    /// One `process` call. `Err` means the call trapped and the instance
    /// must be discarded.
    pub fn process(
        &mut self,
        events: &[Event],
    ) -> Result<Vec<Result<Vec<Output>, ProcessError>>, Failure> {
        arm_deadline(&mut self.store, self.limits.deadline);
        self.store.data_mut().limiter.refused = false;
        self.stdio.clear();
        match self.bindings.call_process(&mut self.store, events) {
            Ok(outcomes) => Ok(outcomes),
            Err(trap) => Err(self.classify(trap)),
        }
    }

    /// The size of its largest linear memory, in bytes.
    pub fn memory(&self) -> usize {
        self.store.data().limiter.largest
    }

    /// Whether its memory has used up three quarters of what the cap left
    /// it after `init`. Guest runtimes such as Python's and JavaScript's
    /// grow their heap with every event and never give it back, so such an
    /// instance is replaced between batches before a good event can hit
    /// the cap.
    pub fn is_nearly_full(&self) -> bool {
        let cap = self.limits.memory_bytes;
        let room = cap.saturating_sub(self.memory_at_start);
        self.memory() > self.memory_at_start + room / 4 * 3
    }

    /// Turns a trap into the failure it stands for.
    fn classify(&mut self, error: wasmtime::Error) -> Failure {
        let stderr = self.stdio.tail(STDIO_TAIL);
        let with_stderr = |message: String| {
            if stderr.is_empty() {
                message
            } else {
                format!("{message}; plugin stderr: {stderr}")
            }
        };
        if matches!(
            error.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) {
            return Failure::new(
                FailureKind::Timeout,
                format!(
                    "call exceeded its deadline of {} ms",
                    self.limits.deadline.as_millis()
                ),
            );
        }
        if let Some(limit) = error.downcast_ref::<StateLimitError>() {
            return Failure::new(FailureKind::StateLimit, limit.to_string());
        }
        if self.store.data().limiter.refused {
            return Failure::new(
                FailureKind::Memory,
                with_stderr(format!(
                    "plugin exceeded its memory cap of {} MiB",
                    self.limits.memory_bytes >> 20
                )),
            );
        }
        let message = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{error:#}"),
        };
        Failure::new(FailureKind::Trap, with_stderr(message))
    }
}

/// Starts the clock for one call: the call may run for `limit` from now.
fn arm_deadline(store: &mut Store<HostState>, limit: Duration) {
    store.data_mut().call_deadline = Instant::now() + limit;
    store.set_epoch_deadline(PluginEngine::ticks_for(limit));
}
