//! A DLQ record taken apart again: the event as the pipeline first read it
//! (source topic, partition, offset and timestamp, key, value, original
//! headers) and the context of its failure; or a foreign record, which
//! Sluice did not write, with why it is not a dead letter.
//!
//! The context begins at the record's last `sluice.error.kind` header (see
//! [`crate::envelope`]): what comes before it are the original headers, also
//! `sluice.*` ones from an earlier pass through Sluice.

use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use super::FOREIGN;
use crate::headers as header;
use crate::json_lines;
use crate::plugin::Event;

/// Where a record is on the DLQ topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DlqPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// `topic/partition/offset`, the value of `sluice.redriven.from`.
impl fmt::Display for DlqPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// What the envelope says about a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Context {
    /// `sluice.error.kind`, as written (a kind this version may not know).
    pub kind: String,
    pub message: String,
    pub pipeline: String,
    pub plugin: String,
    pub digest: String,
    /// How many times the event was processed, over every redrive.
    pub attempts: u32,
    /// When it was dead-lettered, ms since the epoch.
    pub failed_at_ms: Option<i64>,
    /// The source event's timestamp, ms since the epoch.
    pub source_timestamp_ms: Option<i64>,
    /// The dead letter a redrive made this one from.
    pub redriven_from: Option<String>,
}

/// A dead letter Sluice wrote.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub at: DlqPosition,
    /// The event as the pipeline read it, without the context headers.
    pub event: Event,
    pub context: Context,
}

/// One record of a DLQ topic.
#[derive(Debug, Clone)]
pub enum DlqRecord {
    Letter(DeadLetterRecord),
    /// A record without a readable envelope: `event` is the record as read
    /// (its DLQ position), `reason` why it is not a dead letter.
    Foreign {
        event: Event,
        reason: String,
    },
}

impl DlqRecord {
    /// Takes a record read from a DLQ topic apart.
    pub fn parse(record: Event) -> DlqRecord {
        match envelope(&record) {
            Ok((original, context)) => DlqRecord::Letter(DeadLetterRecord {
                at: position(&record),
                event: original,
                context,
            }),
            Err(reason) => DlqRecord::Foreign {
                event: record,
                reason,
            },
        }
    }

    /// Where it is on the DLQ topic.
    pub fn at(&self) -> DlqPosition {
        match self {
            DlqRecord::Letter(letter) => letter.at.clone(),
            DlqRecord::Foreign { event, .. } => position(event),
        }
    }

    /// Its failure kind, [`FOREIGN`] for a foreign record.
    pub fn kind(&self) -> &str {
        match self {
            DlqRecord::Letter(letter) => &letter.context.kind,
            DlqRecord::Foreign { .. } => FOREIGN,
        }
    }

    /// The plugin that failed it.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            DlqRecord::Letter(letter) => Some(&letter.context.plugin),
            DlqRecord::Foreign { .. } => None,
        }
    }

    /// When it was dead-lettered.
    pub fn failed_at_ms(&self) -> Option<i64> {
        match self {
            DlqRecord::Letter(letter) => letter.context.failed_at_ms,
            DlqRecord::Foreign { .. } => None,
        }
    }

    /// The `sluice exec` input line of the event (a foreign record as it
    /// was read), with the context under `sluice`.
    pub fn json_line(&self) -> Value {
        let (event, mut context) = match self {
            DlqRecord::Letter(letter) => (&letter.event, json!(letter.context)),
            DlqRecord::Foreign { event, reason } => {
                (event, json!({"kind": FOREIGN, "message": reason}))
            }
        };
        let at = self.at();
        if let Value::Object(fields) = &mut context {
            fields.insert("dlq_topic".into(), json!(at.topic));
            fields.insert("dlq_partition".into(), json!(at.partition));
            fields.insert("dlq_offset".into(), json!(at.offset));
        }
        let mut line = json_lines::event_json(event);
        line.insert("sluice".into(), context);
        Value::Object(line)
    }
}

fn position(record: &Event) -> DlqPosition {
    DlqPosition {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
    }
}

/// The original event and the context of a dead letter, or why `record`
/// is not one.
fn envelope(record: &Event) -> Result<(Event, Context), String> {
    let start = record
        .headers
        .iter()
        .rposition(|(name, _)| name == header::KIND)
        .ok_or_else(|| format!("no `{}` header", header::KIND))?;
    let (original, context) = record.headers.split_at(start);
    let text = |name: &str| {
        context
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let required = |name: &str| text(name).ok_or_else(|| format!("no `{name}` header"));
    fn number<T: std::str::FromStr>(
        name: &str,
        value: Option<String>,
    ) -> Result<Option<T>, String> {
        value
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("`{name}` is not a number: `{v}`"))
            })
            .transpose()
    }
    let source_timestamp_ms = number(header::SOURCE_TIMESTAMP, text(header::SOURCE_TIMESTAMP))?;
    let event = Event {
        topic: required(header::SOURCE_TOPIC)?,
        partition: number(
            header::SOURCE_PARTITION,
            Some(required(header::SOURCE_PARTITION)?),
        )?
        .unwrap_or_default(),
        offset: number(
            header::SOURCE_OFFSET,
            Some(required(header::SOURCE_OFFSET)?),
        )?
        .unwrap_or_default(),
        timestamp_ms: source_timestamp_ms,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: original.to_vec(),
    };
    let context = Context {
        kind: required(header::KIND)?,
        message: text(header::MESSAGE).unwrap_or_default(),
        pipeline: text(header::PIPELINE).unwrap_or_default(),
        plugin: text(header::PLUGIN).unwrap_or_default(),
        digest: text(header::DIGEST).unwrap_or_default(),
        attempts: number(header::ATTEMPTS, text(header::ATTEMPTS))?.unwrap_or(1),
        failed_at_ms: number(header::FAILED_AT, text(header::FAILED_AT))?,
        source_timestamp_ms,
        redriven_from: text(header::REDRIVEN_FROM),
    };
    Ok((event, context))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Culprit, DeadLetter};
    use crate::failure::{Failure, FailureKind};

    fn original() -> Event {
        Event {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_732_400_000_000),
            key: Some(b"CUST-001".to_vec()),
            value: Some(b"not json".to_vec()),
            // A header from an earlier pass through Sluice is original too.
            headers: vec![
                ("trace".into(), b"abc".to_vec()),
                (header::PLUGIN.into(), b"upstream".to_vec()),
            ],
        }
    }

    /// The dead letter of [`original`] as read back from `orders-dlq/0/7`.
    fn read_back(dl: &DeadLetter) -> Event {
        Event {
            topic: "orders-dlq".into(),
            partition: 0,
            offset: 7,
            timestamp_ms: dl.timestamp_ms,
            key: dl.key.clone(),
            value: dl.value.clone(),
            headers: dl.headers.clone(),
        }
    }

    fn dead_letter(attempts: u32) -> DeadLetter {
        let failure = Failure::new(FailureKind::Invalid, "value is not JSON");
        let culprit = Culprit {
            pipeline: "orders",
            plugin: "order-enrich",
            digest: "sha256:00",
        };
        DeadLetter::new(&original(), &failure, &culprit, attempts)
    }

    #[test]
    fn a_dead_letter_reads_back_as_its_original_event_and_context() {
        let dl = dead_letter(3);
        let DlqRecord::Letter(letter) = DlqRecord::parse(read_back(&dl)) else {
            panic!("not a dead letter");
        };
        let want = original();
        assert_eq!(
            (
                letter.event.topic.as_str(),
                letter.event.partition,
                letter.event.offset
            ),
            ("orders", 2, 41)
        );
        assert_eq!(letter.event.timestamp_ms, want.timestamp_ms);
        assert_eq!(letter.event.key, want.key);
        assert_eq!(letter.event.value, want.value);
        assert_eq!(letter.event.headers, want.headers);
        assert_eq!(letter.at.to_string(), "orders-dlq/0/7");
        let c = &letter.context;
        assert_eq!(
            (c.kind.as_str(), c.message.as_str(), c.pipeline.as_str()),
            ("invalid", "value is not JSON", "orders")
        );
        assert_eq!(
            (c.plugin.as_str(), c.digest.as_str()),
            ("order-enrich", "sha256:00")
        );
        assert_eq!(c.attempts, 3);
        assert!(c.failed_at_ms.is_some_and(|t| t > 1_700_000_000_000));
        assert_eq!(c.source_timestamp_ms, Some(1_732_400_000_000));
        assert_eq!(c.redriven_from, None);
    }

    #[test]
    fn a_dead_letter_of_a_redriven_dead_letter_reads_back_to_the_same_original() {
        // What a redrive writes: the envelope around the original again,
        // then where it came from.
        let mut dl = dead_letter(2);
        dl.headers
            .push((header::REDRIVEN_FROM.into(), b"orders-dlq/0/7".to_vec()));
        let DlqRecord::Letter(letter) = DlqRecord::parse(read_back(&dl)) else {
            panic!("not a dead letter");
        };
        assert_eq!(letter.event.headers, original().headers);
        assert_eq!(letter.context.attempts, 2);
        assert_eq!(
            letter.context.redriven_from.as_deref(),
            Some("orders-dlq/0/7")
        );
    }

    #[test]
    fn records_without_an_envelope_are_foreign_with_a_reason() {
        let plain = Event {
            topic: "orders-dlq".into(),
            partition: 0,
            offset: 9,
            timestamp_ms: None,
            key: None,
            value: Some(b"hello".to_vec()),
            headers: vec![("x".into(), b"1".to_vec())],
        };
        let record = DlqRecord::parse(plain.clone());
        assert!(
            matches!(&record, DlqRecord::Foreign { reason, .. } if reason == "no `sluice.error.kind` header"),
            "{record:?}"
        );
        assert_eq!((record.kind(), record.plugin()), ("foreign", None));

        let mut broken = plain;
        broken.headers = vec![
            (header::KIND.into(), b"invalid".to_vec()),
            (header::SOURCE_TOPIC.into(), b"orders".to_vec()),
            (header::SOURCE_PARTITION.into(), b"zero".to_vec()),
        ];
        let DlqRecord::Foreign { reason, .. } = DlqRecord::parse(broken) else {
            panic!("a broken envelope is foreign");
        };
        assert_eq!(reason, "`sluice.source.partition` is not a number: `zero`");
    }

    #[test]
    fn the_json_line_is_an_exec_input_with_the_context_under_sluice() {
        let record = DlqRecord::parse(read_back(&dead_letter(1)));
        let line = record.json_line();
        assert_eq!(line["topic"], "orders");
        assert_eq!(line["partition"], 2);
        assert_eq!(line["offset"], 41);
        assert_eq!(line["value"], "not json");
        assert_eq!(
            line["headers"],
            json!([["trace", "abc"], ["sluice.plugin", "upstream"]])
        );
        let sluice = &line["sluice"];
        assert_eq!(sluice["kind"], "invalid");
        assert_eq!(sluice["plugin"], "order-enrich");
        assert_eq!(sluice["attempts"], 1);
        assert_eq!(sluice["source_timestamp_ms"], 1_732_400_000_000i64);
        assert_eq!(
            (
                &sluice["dlq_topic"],
                &sluice["dlq_partition"],
                &sluice["dlq_offset"]
            ),
            (&json!("orders-dlq"), &json!(0), &json!(7))
        );
        let event = json_lines::parse_event(&line.to_string(), 0).expect("exec reads it");
        assert_eq!(event.offset, 41);
        assert_eq!(event.headers.len(), 2);
    }
}
