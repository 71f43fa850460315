//! The per-instance host state (WASI and `wasi:http` contexts, resource
//! table, memory limiter) and the `host` interface plugins import: logging
//! into tracing, within the plugin's log budget.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::Level;
use super::bindings::sluice::plugin::{host, types};
use super::limits::MemoryLimiter;
use super::log_limit::LogLimit;

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
