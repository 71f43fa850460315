//! The latest dead letters of a running pipeline, as the status page lists
//! them: a bounded ring of what the broker acknowledged on the DLQ topic,
//! read back from the envelope (see [`crate::dlq`]), with previews of the
//! key, the value and the original headers.
//!
//! Previews are plain text (lossy UTF-8, truncated). They hold event data
//! of anyone's making: whoever shows them escapes them (the page sets them
//! as text, never as markup).

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::Serialize;

use crate::envelope::FOREIGN;
use crate::envelope::{Context, DeadLetter, DlqRecord};
use crate::plugin::Event;

/// How many dead letters a pipeline keeps.
pub const DEAD_LETTER_HISTORY: usize = 50;
/// The most characters of a preview.
pub const PREVIEW_CHARS: usize = 200;

/// Where a record is: topic, partition, offset (the DLQ reader's type).
pub type Coordinates = crate::envelope::DlqPosition;

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
    /// Reads the envelope of `dl`, written at `dlq`, as `sluice dlq` reads
    /// it back from the topic.
    pub fn of(dl: &DeadLetter, dlq: Coordinates) -> Self {
        let record = Event {
            topic: dlq.topic.clone(),
            partition: dlq.partition,
            offset: dlq.offset,
            timestamp_ms: dl.timestamp_ms,
            key: dl.key.clone(),
            value: dl.value.clone(),
            headers: dl.headers.clone(),
        };
        let (event, context) = match DlqRecord::parse(record) {
            DlqRecord::Letter(letter) => (letter.event, letter.context),
            // Not from `DeadLetter::new`: shown as the record it is.
            DlqRecord::Foreign { event, reason } => (
                event,
                Context {
                    kind: FOREIGN.to_owned(),
                    message: reason,
                    pipeline: String::new(),
                    plugin: String::new(),
                    digest: String::new(),
                    attempts: 0,
                    failed_at_ms: None,
                    source_timestamp_ms: None,
                    redriven_from: None,
                },
            ),
        };
        RecentDeadLetter {
            failed_at_ms: context.failed_at_ms.unwrap_or(-1),
            kind: context.kind,
            message: context.message,
            plugin: context.plugin,
            digest: context.digest,
            source: Coordinates {
                topic: event.topic,
                partition: event.partition,
                offset: event.offset,
            },
            attempts: context.attempts,
            dlq,
            key: event.key.as_deref().map(Preview::of),
            value: event.value.as_deref().map(Preview::of),
            headers: event
                .headers
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
        let mut ring = self.0.lock();
        if ring.len() == DEAD_LETTER_HISTORY {
            ring.pop_front();
        }
        ring.push_back(dead_letter);
    }

    /// Newest first.
    pub fn latest(&self) -> Vec<RecentDeadLetter> {
        self.0.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Culprit;
    use crate::failure::{Failure, FailureKind};
    use crate::headers;

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
