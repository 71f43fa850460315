//! `Event`: one consumed Kafka record as the plugin sees it, with accessors
//! that turn the common failure modes (tombstone, bad UTF-8, bad JSON) into
//! precise [`ProcessError::Invalid`] messages.

use serde::Deserialize;

use crate::ProcessError;

/// A Kafka record header: name and raw value. Names may repeat, as in Kafka.
pub type Header = (String, Vec<u8>);

/// One consumed Kafka record.
///
/// The host builds these; the constructors ([`Event::new`],
/// [`Event::tombstone`]) and `with_*` builders exist so plugins can be unit
/// tested on the host target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp_ms: Option<i64>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<Header>,
}

impl Event {
    /// A test event with `value`: no key, no headers, no timestamp, topic
    /// `""`, partition 0, offset 0.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Event {
            value: Some(value.into()),
            ..Event::tombstone()
        }
    }

    /// A test tombstone (an event without a value), otherwise as
    /// [`Event::new`].
    pub fn tombstone() -> Self {
        Event {
            topic: String::new(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    /// Sets the source topic (for tests).
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Sets the source partition and offset (for tests).
    pub fn with_position(mut self, partition: i32, offset: i64) -> Self {
        self.partition = partition;
        self.offset = offset;
        self
    }

    /// Sets the record timestamp (for tests).
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Sets the record key (for tests).
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header (for tests).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition the record was read from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The record's offset within its partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record timestamp in milliseconds since the Unix epoch, if the
    /// broker or the producer set one.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp_ms
    }

    /// The record key; `None` for a record without a key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The record value; `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// Whether the record is a tombstone (has no value).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The value as UTF-8 text.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Invalid`] if the event is a tombstone or the value is
    /// not valid UTF-8.
    pub fn value_str(&self) -> Result<&str, ProcessError> {
        let bytes = self.value_or_invalid()?;
        std::str::from_utf8(bytes)
            .map_err(|err| ProcessError::invalid(format!("event value is not valid UTF-8: {err}")))
    }

    /// Deserializes the value as JSON into `T`. `T` may borrow from the
    /// event (`&str` fields), or own its data.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Invalid`] with serde's message if the event is a
    /// tombstone, the value is not JSON, or the JSON does not fit `T`. The
    /// message tells the two apart: `event value is not valid JSON: …` versus
    /// `event value does not match the expected JSON shape: …`.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ProcessError> {
        let bytes = self.value_or_invalid()?;
        serde_json::from_slice(bytes).map_err(|err| {
            let what = if err.is_data() {
                "does not match the expected JSON shape"
            } else {
                "is not valid JSON"
            };
            ProcessError::invalid(format!("event value {what}: {err}"))
        })
    }

    /// The value of the first header called `name`, if any. Kafka allows
    /// repeated names: use [`Event::headers`] to see them all.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_slice())
    }

    /// All headers, in record order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Takes the value out of the event without copying it; `None` for a
    /// tombstone. See also [`Output::forward`](crate::Output::forward).
    pub fn into_value(self) -> Option<Vec<u8>> {
        self.value
    }

    fn value_or_invalid(&self) -> Result<&[u8], ProcessError> {
        self.value
            .as_deref()
            .ok_or_else(|| ProcessError::invalid("event has no value (tombstone)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let event = Event::new("v")
            .with_topic("orders")
            .with_position(3, 42)
            .with_timestamp_ms(1_732_400_000_000)
            .with_key("k")
            .with_header("a", "1")
            .with_header("b", "2")
            .with_header("a", "3");
        assert_eq!(event.topic(), "orders");
        assert_eq!(event.partition(), 3);
        assert_eq!(event.offset(), 42);
        assert_eq!(event.timestamp_ms(), Some(1_732_400_000_000));
        assert_eq!(event.key(), Some(&b"k"[..]));
        assert_eq!(event.value(), Some(&b"v"[..]));
        assert!(!event.is_tombstone());
        assert_eq!(
            event.header("a"),
            Some(&b"1"[..]),
            "first of repeated names"
        );
        assert_eq!(event.header("b"), Some(&b"2"[..]));
        assert_eq!(event.header("c"), None);
        assert_eq!(event.headers().len(), 3);
        assert_eq!(event.into_value(), Some(b"v".to_vec()));
    }

    #[test]
    fn tombstone() {
        let event = Event::tombstone();
        assert!(event.is_tombstone());
        assert_eq!(event.value(), None);
        let expected = ProcessError::invalid("event has no value (tombstone)");
        assert_eq!(event.value_str(), Err(expected.clone()));
        assert_eq!(event.json::<serde_json::Value>(), Err(expected));
    }

    #[test]
    fn value_str() {
        assert_eq!(Event::new("héllo").value_str(), Ok("héllo"));
        let err = Event::new(vec![0xff, 0xfe]).value_str().unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message()
                .starts_with("event value is not valid UTF-8: "),
            "{err}"
        );
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Order<'a> {
        id: &'a str,
        amount: f64,
    }

    #[test]
    fn json_borrowed_and_owned() {
        let event = Event::new(r#"{"id":"A-1","amount":2.5}"#);
        assert_eq!(
            event.json::<Order<'_>>(),
            Ok(Order {
                id: "A-1",
                amount: 2.5
            })
        );
        let value: serde_json::Value = event.json().unwrap();
        assert_eq!(value["id"], "A-1");
    }

    #[test]
    fn json_errors_say_what_is_wrong() {
        let err = Event::new("{not json")
            .json::<serde_json::Value>()
            .unwrap_err();
        assert_eq!(
            err,
            ProcessError::invalid(
                "event value is not valid JSON: key must be a string at line 1 column 2"
            )
        );

        let err = Event::new(r#"{"id":"A-1"}"#)
            .json::<Order<'_>>()
            .unwrap_err();
        assert_eq!(
            err,
            ProcessError::invalid(
                "event value does not match the expected JSON shape: missing field `amount` at line 1 column 12"
            )
        );

        let err = Event::new("").json::<serde_json::Value>().unwrap_err();
        assert_eq!(
            err,
            ProcessError::invalid(
                "event value is not valid JSON: EOF while parsing a value at line 1 column 0"
            )
        );
    }
}
