//! `ProcessError`: why one event could not be processed, and what the host
//! should do about it.

use std::fmt;

/// Why a plugin could not process one event.
///
/// The variant decides the event's fate in the host:
///
/// - [`Invalid`](ProcessError::Invalid): the event can never succeed
///   (malformed, fails validation). It goes straight to the dead-letter topic
///   with the message, as `sluice.error.kind = invalid`.
/// - [`Retryable`](ProcessError::Retryable): the failure may pass. The host
///   retries the event with backoff, up to the pipeline's retry policy, then
///   dead-letters it as `retries-exhausted`.
///
/// Only the failing event is affected; the other events of the batch keep
/// their own outcomes. A panic is different: it traps the whole instance (see
/// the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    /// Permanent failure: dead-lettered at once with this message.
    Invalid(String),
    /// Transient failure: retried with backoff, then dead-lettered.
    Retryable(String),
}

impl ProcessError {
    /// A permanent failure: the event goes to the dead-letter topic with
    /// `message`. Say what is wrong with the event precisely; the message is
    /// what an operator reads in the DLQ record.
    pub fn invalid(message: impl Into<String>) -> Self {
        ProcessError::Invalid(message.into())
    }

    /// A transient failure: the host retries the event later.
    pub fn retryable(message: impl Into<String>) -> Self {
        ProcessError::Retryable(message.into())
    }

    /// The message, whatever the variant.
    pub fn message(&self) -> &str {
        match self {
            ProcessError::Invalid(message) | ProcessError::Retryable(message) => message,
        }
    }

    /// Whether the host will retry the event.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProcessError::Retryable(_))
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Invalid(message) => write!(f, "invalid event: {message}"),
            ProcessError::Retryable(message) => write!(f, "retryable failure: {message}"),
        }
    }
}

impl std::error::Error for ProcessError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_accessors() {
        let invalid = ProcessError::invalid("bad");
        assert_eq!(invalid, ProcessError::Invalid("bad".into()));
        assert_eq!(invalid.message(), "bad");
        assert!(!invalid.is_retryable());
        assert_eq!(invalid.to_string(), "invalid event: bad");

        let retry = ProcessError::retryable(String::from("later"));
        assert_eq!(retry, ProcessError::Retryable("later".into()));
        assert_eq!(retry.message(), "later");
        assert!(retry.is_retryable());
        assert_eq!(retry.to_string(), "retryable failure: later");
    }
}
