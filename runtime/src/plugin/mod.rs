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
pub mod state;
mod stdio;

pub use bindings::{Event, Level, Output, ProcessError};
pub use compiled::CompiledPlugin;
pub use engine::PluginEngine;
pub use instance::{Instance, InstanceSettings};
pub use limits::{
    DEFAULT_DEADLINE_MS, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUTS_PER_EVENT,
    DEFAULT_MEMORY_MIB, Limits, MAX_MEMORY_MIB,
};
pub use runner::{Outcome, PluginRunner};
pub use sandbox::{DirGrant, Sandbox};
pub use state::{JournalEntry, PluginState, StateLimitError, StateLimits};

use std::fmt;
use std::path::PathBuf;

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

/// How one event failed. The names are the values of the DLQ header
/// `sluice.error.kind` and of `sluice exec`'s `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The plugin said the event is invalid.
    Invalid,
    /// The plugin said the failure may pass (before retries run out).
    Retryable,
    /// Retryable failures continued until the retry policy gave up.
    RetriesExhausted,
    /// The plugin trapped (panic, `unreachable`, stack overflow, a broken
    /// contract such as the wrong number of outcomes).
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The plugin hit its memory cap.
    Memory,
    /// An output broke a rule: a topic the pipeline does not allow, a
    /// record larger than the output cap, or more outputs than the cap on
    /// outputs per event.
    OutputRejected,
    /// The output could not be written to Kafka.
    ProduceFailed,
    /// A state write went over a state limit (key or value size, keys or
    /// bytes of the partition's state).
    StateLimit,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [FailureKind; 9] = [
        FailureKind::Invalid,
        FailureKind::Retryable,
        FailureKind::RetriesExhausted,
        FailureKind::Trap,
        FailureKind::Timeout,
        FailureKind::Memory,
        FailureKind::OutputRejected,
        FailureKind::ProduceFailed,
        FailureKind::StateLimit,
    ];

    /// The kebab-case name used in headers and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::Retryable => "retryable",
            FailureKind::RetriesExhausted => "retries-exhausted",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::OutputRejected => "output-rejected",
            FailureKind::ProduceFailed => "produce-failed",
            FailureKind::StateLimit => "state-limit",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one event failed, with a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl From<ProcessError> for Failure {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Invalid(m) => Failure::new(FailureKind::Invalid, m),
            ProcessError::Retryable(m) => Failure::new(FailureKind::Retryable, m),
        }
    }
}
