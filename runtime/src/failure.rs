//! How one event fails: the kinds of failure every layer reports (a
//! plugin's answer, a trap, a rejected output, a failed write), named as
//! the DLQ header `sluice.error.kind` and `sluice exec`'s `error.kind`
//! name them.

use std::fmt;

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
