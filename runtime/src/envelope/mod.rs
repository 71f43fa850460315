//! The dead-letter envelope: the record a failed event becomes on the DLQ
//! topic ([`DeadLetter`]), and such a record taken apart again
//! ([`record`]). The pipeline writes it, the status page shows it, the
//! `sluice dlq` commands read it back.
//!
//! The record keeps the original key, value, headers and timestamp, so it
//! can be replayed as it was, and adds context headers (all UTF-8 text):
//!
//! | header | value |
//! |---|---|
//! | `sluice.error.kind` | `invalid`, `retries-exhausted`, `trap`, `timeout`, `memory`, `output-rejected`, `produce-failed` or `state-limit` |
//! | `sluice.error.message` | what went wrong, for people |
//! | `sluice.pipeline` | the pipeline's name |
//! | `sluice.plugin` | the plugin (chain step) that failed or produced the rejected output |
//! | `sluice.plugin.digest` | `sha256:<hex>` of that plugin's `.wasm` |
//! | `sluice.source.topic` | the topic the event was read from |
//! | `sluice.source.partition` | its partition (decimal) |
//! | `sluice.source.offset` | its offset (decimal) |
//! | `sluice.source.timestamp` | its timestamp in ms since the epoch, when it had one |
//! | `sluice.attempts` | how many times the event was processed (decimal) |
//! | `sluice.failed.at` | when it was dead-lettered, ms since the epoch |
//! | `sluice.redriven.from` | only when a redrive failed it again: the dead letter it came from |
//!
//! Original headers come first, in their order, then the `sluice.*` ones,
//! starting with `sluice.error.kind`: the last `sluice.error.kind` of a
//! record is where its context begins. Headers a previous pass through
//! Sluice added are kept, so the history of a replayed event stays
//! readable.

pub mod record;

use crate::clock::now_ms;
use crate::failure::Failure;
use crate::headers as header;
use crate::kafka::writer::{RecordRef, owned_headers};
use crate::plugin::Event;

pub use record::{Context, DeadLetterRecord, DlqPosition, DlqRecord};

/// The `sluice.error.kind` a command shows for a record on a DLQ topic
/// that Sluice did not write.
pub const FOREIGN: &str = "foreign";

/// Who failed an event, for the envelope.
#[derive(Debug, Clone)]
pub struct Culprit<'a> {
    pub pipeline: &'a str,
    pub plugin: &'a str,
    pub digest: &'a str,
}

/// A record ready to be written to the DLQ topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: Option<i64>,
}

impl DeadLetter {
    /// Wraps `event` with the context of its failure.
    pub fn new(event: &Event, failure: &Failure, culprit: &Culprit<'_>, attempts: u32) -> Self {
        let mut headers = event.headers.clone();
        headers.reserve(11);
        let mut add = |name: &str, value: String| headers.push((name.to_owned(), value.into()));
        add(header::KIND, failure.kind.as_str().to_owned());
        add(header::MESSAGE, failure.message.clone());
        add(header::PIPELINE, culprit.pipeline.to_owned());
        add(header::PLUGIN, culprit.plugin.to_owned());
        add(header::DIGEST, culprit.digest.to_owned());
        add(header::SOURCE_TOPIC, event.topic.clone());
        add(header::SOURCE_PARTITION, event.partition.to_string());
        add(header::SOURCE_OFFSET, event.offset.to_string());
        if let Some(ts) = event.timestamp_ms {
            add(header::SOURCE_TIMESTAMP, ts.to_string());
        }
        add(header::ATTEMPTS, attempts.to_string());
        add(header::FAILED_AT, now_ms().to_string());
        DeadLetter {
            key: event.key.clone(),
            value: event.value.clone(),
            headers,
            timestamp_ms: event.timestamp_ms,
        }
    }

    /// The record to write to the DLQ `topic`; it borrows from `self`.
    pub fn record<'a>(&'a self, topic: &'a str) -> RecordRef<'a> {
        RecordRef {
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: owned_headers(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()))),
            timestamp_ms: self.timestamp_ms,
            ..RecordRef::to(topic)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureKind;

    #[test]
    fn envelope_keeps_the_original_and_adds_context() {
        let event = Event {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_732_400_000_000),
            key: Some(b"CUST-001".to_vec()),
            value: Some(b"not json".to_vec()),
            headers: vec![("trace".into(), b"abc".to_vec())],
        };
        let failure = Failure::new(FailureKind::Invalid, "value is not JSON");
        let culprit = Culprit {
            pipeline: "orders",
            plugin: "order-enrich",
            digest: "sha256:00",
        };
        let dl = DeadLetter::new(&event, &failure, &culprit, 1);
        assert_eq!(dl.key, event.key);
        assert_eq!(dl.value, event.value);
        assert_eq!(dl.timestamp_ms, event.timestamp_ms);
        let get = |name: &str| {
            dl.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(dl.headers[0], ("trace".into(), b"abc".to_vec()));
        assert_eq!(get(header::KIND).as_deref(), Some("invalid"));
        assert_eq!(get(header::MESSAGE).as_deref(), Some("value is not JSON"));
        assert_eq!(get(header::PIPELINE).as_deref(), Some("orders"));
        assert_eq!(get(header::PLUGIN).as_deref(), Some("order-enrich"));
        assert_eq!(get(header::DIGEST).as_deref(), Some("sha256:00"));
        assert_eq!(get(header::SOURCE_TOPIC).as_deref(), Some("orders"));
        assert_eq!(get(header::SOURCE_PARTITION).as_deref(), Some("2"));
        assert_eq!(get(header::SOURCE_OFFSET).as_deref(), Some("41"));
        assert_eq!(
            get(header::SOURCE_TIMESTAMP).as_deref(),
            Some("1732400000000")
        );
        assert_eq!(get(header::ATTEMPTS).as_deref(), Some("1"));
        assert!(get(header::FAILED_AT).is_some());
    }
}
