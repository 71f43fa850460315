//! The per-instance host state (WASI and `wasi:http` contexts, resource
//! table, memory limiter) and the interfaces plugins import: `host`,
//! logging into tracing within the plugin's log budget, and `state`, over
//! the transaction of the call in progress (see [`super::state`]).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::sluice::plugin::{host, state, types};
use super::bindings::{Level, StateError};
use super::limits::MemoryLimiter;
use super::log_limit::LogLimit;
use super::state::Transaction;

/// A log line from a plugin longer than this is cut, so a plugin cannot
/// flood the host's log with one call.
const MAX_LOG_LINE: usize = 4096;

/// Everything a store holds for one plugin instance.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: super::sandbox::HttpHooks,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) plugin: Arc<str>,
    /// The plugin's log budget, shared with its other instances.
    pub(crate) log_limit: Arc<LogLimit>,
    /// When the call in progress must end; set before every call.
    pub(crate) call_deadline: Instant,
    /// The state of the `process` call in progress, for a plugin that
    /// keeps state; `None` otherwise (and in `init`).
    pub(crate) state: Option<Transaction>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: Level, mut message: String) {
        let enabled = match level {
            Level::Trace => tracing::enabled!(target: "sluice::plugin", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "sluice::plugin", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "sluice::plugin", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "sluice::plugin", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "sluice::plugin", tracing::Level::ERROR),
        };
        // Lines the filter drops anyway cost nothing from the budget.
        if !enabled || !self.log_limit.admit() {
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(target: "sluice::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "sluice::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "sluice::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "sluice::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "sluice::plugin", plugin, "{message}"),
        }
    }
}

/// What a `state` function returns: a trap (`Err`, a write over a limit)
/// or the function's own result.
type StateResult<T> = wasmtime::Result<Result<T, StateError>>;

impl HostState {
    /// The call's transaction, or the `unavailable` error.
    fn transaction(&mut self) -> Result<&mut Transaction, StateError> {
        self.state.as_mut().ok_or_else(|| {
            StateError::Unavailable("state is only available during `process`".to_owned())
        })
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: Vec<u8>) -> StateResult<Option<Vec<u8>>> {
        Ok(self
            .transaction()
            .map(|state| state.get(&key).map(<[u8]>::to_vec)))
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> StateResult<()> {
        match self.transaction() {
            Ok(state) => Ok(Ok(state.set(key, value)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn delete(&mut self, key: Vec<u8>) -> StateResult<()> {
        Ok(self.transaction().map(|state| {
            state.delete(&key);
        }))
    }

    fn exists(&mut self, key: Vec<u8>) -> StateResult<bool> {
        Ok(self.transaction().map(|state| state.exists(&key)))
    }

    fn list_keys(
        &mut self,
        prefix: Vec<u8>,
        cursor: Option<Vec<u8>>,
        limit: u32,
    ) -> StateResult<Vec<Vec<u8>>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self
            .transaction()
            .map(|state| state.list_keys(&prefix, cursor.as_deref(), limit)))
    }

    fn delete_prefix(&mut self, prefix: Vec<u8>) -> StateResult<u64> {
        Ok(self.transaction().map(|state| state.delete_prefix(&prefix)))
    }
}
