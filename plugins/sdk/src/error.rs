//! `ProcessError`: why one event could not be processed, and what the host
//! should do about it.

use std::fmt;

use serde_json::Value;

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

    /// A permanent failure for a JSON field of the wrong type:
    /// ``field `FIELD` must be EXPECTED, got TYPE``, where TYPE is
    /// [`json_type`] of what the field holds.
    ///
    /// ```
    /// # use sluice_sdk::ProcessError;
    /// let err = ProcessError::wrong_type("amount", "a number", &serde_json::json!("12"));
    /// assert_eq!(err.message(), "field `amount` must be a number, got string");
    /// ```
    pub fn wrong_type(field: &str, expected: &str, got: &Value) -> Self {
        ProcessError::invalid(format!(
            "field `{field}` must be {expected}, got {}",
            json_type(got)
        ))
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

/// The JSON type of `value`, for messages: `null`, `boolean`, `number`,
/// `string`, `array` or `object`.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

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

    #[test]
    fn json_types_and_wrong_type() {
        let types: Vec<&str> = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(1.5),
            serde_json::json!("x"),
            serde_json::json!([1]),
            serde_json::json!({"a": 1}),
        ]
        .iter()
        .map(json_type)
        .collect();
        assert_eq!(
            types,
            ["null", "boolean", "number", "string", "array", "object"]
        );

        let err = ProcessError::wrong_type("order_id", "a string", &serde_json::json!(7));
        assert_eq!(
            err,
            ProcessError::Invalid("field `order_id` must be a string, got number".into())
        );
    }
}
