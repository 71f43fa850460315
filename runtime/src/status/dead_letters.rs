//! The latest dead letters of a running pipeline, as the status page lists
//! them: a bounded ring of what the broker acknowledged on the DLQ topic,
//! read back from the envelope (see [`crate::dlq`]), with previews of the
//! key, the value and the original headers.
//!
//! Previews are plain text (lossy UTF-8, truncated). They hold event data
//! of anyone's making: whoever shows them escapes them (the page sets them
//! as text, never as markup).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::lock;
use crate::dlq::DeadLetter;
use crate::headers;

/// How many dead letters a pipeline keeps.
pub const DEAD_LETTER_HISTORY: usize = 50;
/// The most characters of a preview.
pub const PREVIEW_CHARS: usize = 200;

/// Where a record is: topic, partition, offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coordinates {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The start of some bytes as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// Lossy UTF-8, at most [`PREVIEW_CHARS`] characters.
    pub text: String,
    /// The length of the whole, in bytes.
    pub bytes: usize,
    /// Whether `text` stops before the end.
    pub truncated: bool,
}

impl Preview {
    pub fn of(bytes: &[u8]) -> Self {
        let all = String::from_utf8_lossy(bytes);
        let end = all
            .char_indices()
            .nth(PREVIEW_CHARS)
            .map_or(all.len(), |(at, _)| at);
        Preview {
            text: all[..end].to_owned(),
            bytes: bytes.len(),
            truncated: end < all.len(),
        }
    }
}

/// A header of the original event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderPreview {
    pub name: String,
    pub value: Preview,
}

/// One dead letter the broker acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentDeadLetter {
    pub failed_at_ms: i64,
    pub kind: String,
    /// Why, for people (`sluice.error.message`).
    pub message: String,
    pub plugin: String,
    pub digest: String,
    /// The event it was.
    pub source: Coordinates,
    pub attempts: u32,
    /// Where it landed.
    pub dlq: Coordinates,
    pub key: Option<Preview>,
    pub value: Option<Preview>,
    /// The event's own headers, without the envelope's.
    pub headers: Vec<HeaderPreview>,
}

impl RecentDeadLetter {
    /// Reads the envelope of `dl`, written at `dlq`.
    pub fn of(dl: &DeadLetter, dlq: Coordinates) -> Self {
        // The envelope's headers follow the event's, starting with the
        // kind; a replayed event may carry an older envelope before them.
        let start = dl
            .headers
            .iter()
            .rposition(|(name, _)| name == headers::KIND)
            .unwrap_or(dl.headers.len());
        let (original, envelope) = dl.headers.split_at(start);
        let text = |name: &str| {
            envelope
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let number = |name: &str| text(name).parse().unwrap_or(-1);
        RecentDeadLetter {
            failed_at_ms: number(headers::FAILED_AT),
            kind: text(headers::KIND),
            message: text(headers::MESSAGE),
            plugin: text(headers::PLUGIN),
            digest: text(headers::DIGEST),
            source: Coordinates {
                topic: text(headers::SOURCE_TOPIC),
                partition: text(headers::SOURCE_PARTITION).parse().unwrap_or(-1),
                offset: number(headers::SOURCE_OFFSET),
            },
            attempts: text(headers::ATTEMPTS).parse().unwrap_or(0),
            dlq,
            key: dl.key.as_deref().map(Preview::of),
            value: dl.value.as_deref().map(Preview::of),
            headers: original
                .iter()
                .map(|(name, value)| HeaderPreview {
                    name: name.clone(),
                    value: Preview::of(value),
                })
                .collect(),
        }
    }
}

/// The latest [`DEAD_LETTER_HISTORY`] dead letters. Only the dead-letter
/// path takes its lock.
#[derive(Debug, Default)]
pub struct DeadLetterRing(Mutex<VecDeque<RecentDeadLetter>>);

impl DeadLetterRing {
    pub fn push(&self, dead_letter: RecentDeadLetter) {
        let mut ring = lock(&self.0);
        if ring.len() == DEAD_LETTER_HISTORY {
            ring.pop_front();
        }
        ring.push_back(dead_letter);
    }

    /// Newest first.
    pub fn latest(&self) -> Vec<RecentDeadLetter> {
        lock(&self.0).iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::Culprit;
    use crate::plugin::{Event, Failure, FailureKind};

    fn dead_letter(value: &[u8], headers: Vec<(String, Vec<u8>)>) -> DeadLetter {
        let event = Event {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: None,
            key: Some(b"CUST-1".to_vec()),
            value: Some(value.to_vec()),
            headers,
        };
        let failure = Failure::new(FailureKind::Invalid, "value is not JSON");
        let culprit = Culprit {
            pipeline: "orders",
            plugin: "order-enrich",
            digest: "sha256:00",
        };
        DeadLetter::new(&event, &failure, &culprit, 3)
    }

    fn dlq() -> Coordinates {
        Coordinates {
            topic: "orders-dlq".into(),
            partition: 0,
            offset: 7,
        }
    }

    #[test]
    fn reads_the_envelope_and_keeps_only_the_events_own_headers() {
        // A replayed event: its first pass's envelope is among its headers.
        let first = dead_letter(b"x", vec![("trace".into(), b"abc".to_vec())]);
        let mut replayed = dead_letter(b"<b>not json</b>", first.headers.clone());
        replayed.key = None;
        let recent = RecentDeadLetter::of(&replayed, dlq());
        assert_eq!(recent.kind, "invalid");
        assert_eq!(recent.message, "value is not JSON");
        assert_eq!(
            (recent.plugin.as_str(), recent.digest.as_str()),
            ("order-enrich", "sha256:00")
        );
        assert_eq!(
            recent.source,
            Coordinates {
                topic: "orders".into(),
                partition: 2,
                offset: 41
            }
        );
        assert_eq!(recent.attempts, 3);
        assert!(recent.failed_at_ms > 0);
        assert_eq!(recent.dlq, dlq());
        assert_eq!(recent.key, None);
        assert_eq!(recent.value.map(|v| v.text), Some("<b>not json</b>".into()));
        assert_eq!(recent.headers.len(), first.headers.len());
        assert_eq!(recent.headers[0].name, "trace");
        assert_eq!(recent.headers[1].name, headers::KIND, "the older envelope");
    }

    #[test]
    fn previews_are_lossy_text_cut_at_a_character() {
        let long = "é".repeat(PREVIEW_CHARS + 5);
        let preview = Preview::of(long.as_bytes());
        assert_eq!(preview.text.chars().count(), PREVIEW_CHARS);
        assert_eq!(preview.bytes, long.len());
        assert!(preview.truncated);
        let short = Preview::of(b"a\xffb");
        assert_eq!(short.text, "a\u{fffd}b");
        assert!(!short.truncated);
    }

    #[test]
    fn the_ring_keeps_the_latest_newest_first() {
        let ring = DeadLetterRing::default();
        for offset in 0..DEAD_LETTER_HISTORY as i64 + 2 {
            let at = Coordinates { offset, ..dlq() };
            ring.push(RecentDeadLetter::of(&dead_letter(b"v", Vec::new()), at));
        }
        let latest = ring.latest();
        assert_eq!(latest.len(), DEAD_LETTER_HISTORY);
        assert_eq!(latest[0].dlq.offset, DEAD_LETTER_HISTORY as i64 + 1);
        assert_eq!(latest[DEAD_LETTER_HISTORY - 1].dlq.offset, 2);
    }
}
