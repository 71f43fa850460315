//! Per-plugin resource limits: the linear-memory cap, the per-call deadline
//! and the output size cap, and the limiter that enforces the memory cap
//! inside a store.

use std::time::Duration;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_millis(1000),
            max_output_bytes: 1 << 20,
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
}

impl MemoryLimiter {
    pub(crate) fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            refused: false,
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
        if !allowed {
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
