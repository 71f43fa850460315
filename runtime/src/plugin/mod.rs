//! Plugins: loading WebAssembly components that implement the `processor`
//! world (or `stateful-processor`), running them in a sandbox with limits, and turning everything that
//! can go wrong in a call into a per-event [`Failure`].
//!
//! - [`engine`]: the shared wasmtime engine and its epoch ticker.
//! - [`compiled`]: a validated, compiled plugin ready to instantiate;
//!   [`cache`]: compiled components kept on disk.
//! - [`instance`]: one live instance (store + bindings) and its calls.
//! - [`runner`]: the per-worker driver that keeps an instance, replaces it
//!   after a trap and isolates the culprit of a failed batch.
//! - [`limits`], [`sandbox`], [`host`]: what a plugin may use and see;
//!   [`log_limit`]: the rate limit on its log lines; [`state`]: the keyed
//!   state it may keep.
//! - [`set`]: the compiled plugins of a config, each file compiled once.

mod bindings;
pub mod cache;
pub mod compiled;
pub mod engine;
pub mod host;
pub mod instance;
pub mod limits;
pub mod log_limit;
pub mod runner;
pub mod sandbox;
pub mod set;
pub mod state;
mod stdio;

pub use bindings::{Event, Level, Output, ProcessError};
pub use compiled::CompiledPlugin;
pub use engine::{EngineOptions, PERFMAP_ENV, PluginEngine};
pub use instance::{Instance, InstanceSettings};
pub use limits::{
    DEFAULT_DEADLINE_MS, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUTS_PER_EVENT,
    DEFAULT_MEMORY_MIB, Limits, MAX_MEMORY_MIB,
};
pub use runner::{Outcome, PluginRunner};
pub use sandbox::{DirGrant, Sandbox};
pub use set::{PluginSet, PluginSetError, StepPlugin};
pub use state::{JournalEntry, PluginState, StateLimitError, StateLimits};

use std::path::PathBuf;

use crate::failure::{Failure, FailureKind};

/// Why a plugin could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("plugin {name}: cannot read {path}: {error}")]
    Read {
        name: String,
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not a WebAssembly component wasmtime can compile.
    #[error("plugin {name}: {path} is not a valid WebAssembly component: {message}")]
    Compile {
        name: String,
        path: PathBuf,
        message: String,
    },
    /// The component does not implement the `sluice:plugin/processor` world.
    #[error(
        "plugin {name}: {path} does not implement the sluice:plugin@0.1.0 `processor` world: {message}"
    )]
    WrongWorld {
        name: String,
        path: PathBuf,
        message: String,
    },
    /// Instantiation failed (for example its memory exceeds the cap).
    #[error("plugin {name}: cannot instantiate: {message}")]
    Instantiate { name: String, message: String },
    /// The plugin's `init` returned an error or trapped.
    #[error("plugin {name}: init failed: {message}")]
    Init { name: String, message: String },
    /// A sandbox grant could not be set up.
    #[error("sandbox: {message}")]
    Sandbox { message: String },
    /// The engine could not be created.
    #[error("wasm engine: {message}")]
    Engine { message: String },
}

impl From<ProcessError> for Failure {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Invalid(m) => Failure::new(FailureKind::Invalid, m),
            ProcessError::Retryable(m) => Failure::new(FailureKind::Retryable, m),
        }
    }
}
