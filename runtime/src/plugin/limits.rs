//! Per-plugin resource limits: the linear-memory cap, the per-call deadline,
//! the output size and count caps, and the limiter that enforces the memory
//! cap inside a store.

use std::time::Duration;

/// Default memory cap of an instance, in MiB.
pub const DEFAULT_MEMORY_MIB: usize = 64;
/// Largest memory cap, in MiB: a 32-bit Wasm memory cannot grow past 4 GiB.
pub const MAX_MEMORY_MIB: usize = 4096;
/// Default deadline of one call, in milliseconds.
pub const DEFAULT_DEADLINE_MS: u64 = 1000;
/// Default cap on one output record (key + value + headers), in bytes.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Default cap on the outputs of one event.
pub const DEFAULT_MAX_OUTPUTS_PER_EVENT: usize = 1000;

/// Resource limits for one plugin instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Upper bound on the plugin's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call into the plugin (`init` or one
    /// `process` batch). Enforced with epoch interruption.
    pub deadline: Duration,
    /// Largest key + value + headers of one output record, in bytes. Larger
    /// outputs fail their event as `output-rejected`.
    pub max_output_bytes: usize,
    /// Most outputs one event may have. An event with more fails as
    /// `output-rejected`, so a plugin cannot make the host write (and
    /// queue in the producer) an unbounded fan-out. The check runs once
    /// the call's results are in the host: wasmtime lifts a call's results
    /// all at once, and frees the guest's copy before the call returns.
    /// That lift is bounded by the memory cap (the guest must hold every
    /// output first) and by wasmtime's per-lift hostcall fuel.
    pub max_outputs_per_event: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: DEFAULT_MEMORY_MIB << 20,
            deadline: Duration::from_millis(DEFAULT_DEADLINE_MS),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_outputs_per_event: DEFAULT_MAX_OUTPUTS_PER_EVENT,
        }
    }
}

/// Enforces [`Limits::memory_bytes`] and remembers whether it had to refuse a
/// growth, so a trap that follows can be reported as `memory` rather than as
/// a generic trap (a Rust guest aborts when an allocation fails).
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    pub(crate) refused: bool,
    /// The size of the instance's largest linear memory.
    pub(crate) largest: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            refused: false,
            largest: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes && maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.largest = self.largest.max(desired);
        } else {
            self.refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any
        // honest plugin and keeps a hostile one from eating host memory.
        Ok(desired <= 1_000_000 && maximum.is_none_or(|max| desired <= max))
    }
}
