//! `Output`: one record the plugin wants written, built from a value and a
//! few `to_*`/`with_*` calls. Everything not set is inherited from the input
//! event by the host, so the common case costs nothing.

use serde::Serialize;

use crate::{Event, ProcessError, event::Header};

/// One record the plugin wants written.
///
/// What is not set explicitly is inherited from the input event by the host:
///
/// | field   | unset (default)                      | set with                                   |
/// |---------|--------------------------------------|--------------------------------------------|
/// | topic   | the pipeline's result topic          | [`to_topic`](Output::to_topic)             |
/// | key     | the input event's key                | [`with_key`](Output::with_key)             |
/// | headers | the input event's headers            | [`with_header`](Output::with_header), [`with_input_headers`](Output::with_input_headers), [`without_headers`](Output::without_headers) |
/// | value   | always set by the constructor: bytes, JSON, or a tombstone | [`new`](Output::new), [`json`](Output::json), [`forward`](Output::forward), [`tombstone`](Output::tombstone) |
///
/// **Headers are all or nothing.** As long as no header method is called, the
/// output carries the input's headers. The first header method switches the
/// output to an explicit list, which is written exactly as built: calling
/// `with_header("x", …)` alone writes *only* `x`. To add to the input's
/// headers, start from them: `.with_input_headers(&event).with_header("x", …)`.
///
/// A topic other than the result topic must be in the pipeline's allowed
/// list, or the host dead-letters the event as `output-rejected`.
///
/// Return `Ok(vec![])` from [`Plugin::process`](crate::Plugin::process) to
/// filter an event out, and several outputs to fan it out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an Output does nothing until it is returned from `process`"]
pub struct Output {
    pub(crate) topic: Option<String>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Option<Vec<Header>>,
}

impl Output {
    /// An output with `value`, to the result topic, with the input's key and
    /// headers.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Output {
            value: Some(value.into()),
            ..Output::tombstone()
        }
    }

    /// An output with `value` serialized as JSON, otherwise as
    /// [`Output::new`].
    ///
    /// # Errors
    ///
    /// [`ProcessError::Invalid`] if `value` cannot be serialized (a map with
    /// non-string keys, say).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, ProcessError> {
        serde_json::to_vec(value)
            .map(Output::new)
            .map_err(|err| ProcessError::invalid(format!("cannot serialize output as JSON: {err}")))
    }

    /// A tombstone (no value): deletes the key in a compacted topic.
    pub fn tombstone() -> Self {
        Output {
            topic: None,
            key: None,
            value: None,
            headers: None,
        }
    }

    /// The input event passed on as it is: its value is moved (not copied),
    /// a tombstone stays a tombstone, key and headers are inherited.
    pub fn forward(event: Event) -> Self {
        Output {
            value: event.value,
            ..Output::tombstone()
        }
    }

    /// Writes to `topic` instead of the pipeline's result topic. The topic
    /// must be in the pipeline's allowed list.
    pub fn to_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets the key instead of inheriting the input's.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header to the explicit header list.
    ///
    /// The first header call switches the output from "inherit the input's
    /// headers" to "write exactly this list": on its own this writes only
    /// the given header. Call [`with_input_headers`](Output::with_input_headers)
    /// first to keep the input's headers too.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers
            .get_or_insert_with(Vec::new)
            .push((name.into(), value.into()));
        self
    }

    /// Appends all of `event`'s headers to the explicit header list (copying
    /// them). Call it before [`with_header`](Output::with_header) to add
    /// headers to the input's.
    pub fn with_input_headers(mut self, event: &Event) -> Self {
        self.headers
            .get_or_insert_with(Vec::new)
            .extend_from_slice(event.headers());
        self
    }

    /// Writes no headers at all, instead of inheriting the input's.
    pub fn without_headers(mut self) -> Self {
        self.headers = Some(Vec::new());
        self
    }

    /// The destination topic; `None` for the pipeline's result topic.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The key; `None` inherits the input's.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The explicit header list; `None` inherits the input's headers.
    pub fn headers(&self) -> Option<&[Header]> {
        self.headers.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_inherits_everything_but_the_value() {
        let output = Output::new("v");
        assert_eq!(output.topic(), None);
        assert_eq!(output.key(), None);
        assert_eq!(output.value(), Some(&b"v"[..]));
        assert_eq!(output.headers(), None);
    }

    #[test]
    fn builders() {
        let output = Output::new(vec![1, 2])
            .to_topic("t")
            .with_key("k")
            .with_header("a", "1");
        assert_eq!(output.topic(), Some("t"));
        assert_eq!(output.key(), Some(&b"k"[..]));
        assert_eq!(output.value(), Some(&[1, 2][..]));
        assert_eq!(
            output.headers(),
            Some(&[("a".to_string(), b"1".to_vec())][..])
        );
    }

    #[test]
    fn tombstone_and_forward() {
        assert_eq!(Output::tombstone().value(), None);
        let event = Event::new("v").with_key("k").with_header("h", "1");
        assert_eq!(Output::forward(event), Output::new("v"));
        assert_eq!(Output::forward(Event::tombstone()), Output::tombstone());
    }

    #[test]
    fn headers_switch_to_an_explicit_list() {
        let event = Event::new("v").with_header("a", "1").with_header("b", "2");

        let only_new = Output::new("v").with_header("x", "9");
        assert_eq!(only_new.headers().map(<[_]>::len), Some(1));

        let extended = Output::new("v")
            .with_input_headers(&event)
            .with_header("x", "9");
        let names: Vec<&str> = extended
            .headers()
            .unwrap()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "x"]);

        assert_eq!(Output::new("v").without_headers().headers(), Some(&[][..]));
    }

    #[test]
    fn json() {
        #[derive(Serialize)]
        struct Doc {
            a: u32,
        }
        assert_eq!(Output::json(&Doc { a: 1 }), Ok(Output::new(r#"{"a":1}"#)));

        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1u8], 1);
        let err = Output::json(&bad).unwrap_err();
        assert_eq!(
            err,
            ProcessError::invalid("cannot serialize output as JSON: key must be a string")
        );
    }
}
