//! Dead letters: the envelope a failed event becomes on the DLQ topic
//! (here), and reading them back to investigate and redrive them.
//!
//! - [`record`]: a DLQ record taken apart again: the original event and the
//!   context of its failure, or a foreign record Sluice did not write;
//! - [`select`]: which dead letters a command is about (`--kind`,
//!   `--plugin`, `--since TIME`) and how they are shown;
//! - [`read`]: reading a DLQ topic to its end without joining a group;
//! - [`list`]: `sluice dlq list`;
//! - [`redrive`]: `sluice dlq redrive`, running dead letters through the
//!   pipeline's current chain again.
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

pub mod list;
pub mod read;
pub mod record;
pub mod redrive;
pub mod select;

use std::time::{SystemTime, UNIX_EPOCH};

use std::path::PathBuf;

use rdkafka::error::KafkaError;

use crate::config::{Brokers, Config, PipelineConfig};
use crate::headers as header;
use crate::kafka::writer::{RecordRef, WriteError, owned_headers};
use crate::pipeline::PipelineError;
use crate::plugin::{Event, Failure};

pub use list::{ListOptions, ListSummary, list};
pub use record::{Context, DeadLetterRecord, DlqPosition, DlqRecord};
pub use redrive::{Disposition, RecordOutcome, RedriveOptions, RedriveSummary, redrive};
pub use select::{SelectError, Selection};

/// The consumer group whose committed offsets on a pipeline's DLQ topic
/// say how far `sluice dlq redrive` has been.
pub fn redrive_group(pipeline: &str) -> String {
    format!("sluice-redrive-{pipeline}")
}

/// Why a DLQ command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("{}: no pipeline `{pipeline}` (its pipelines: {known})", path.display())]
    UnknownPipeline {
        pipeline: String,
        path: PathBuf,
        known: String,
    },
    #[error(
        "{}: `kafka.brokers` is \"embedded\", a broker inside the `sluice run` process, \
         whose topics no other process can read; point `kafka.brokers` at a cluster",
        path.display()
    )]
    Embedded { path: PathBuf },
    #[error("the DLQ topic `{topic}` of pipeline `{pipeline}` does not exist ({reason})")]
    NoTopic {
        topic: String,
        pipeline: String,
        reason: String,
    },
    #[error("cannot create a Kafka client: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot read DLQ topic `{topic}`: {error}")]
    Read { topic: String, error: KafkaError },
    #[error("cannot load the plugins: {0}")]
    Plugins(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot queue a redriven record: {0}")]
    Send(#[source] KafkaError),
    #[error("redriven records were not all written: {0}")]
    Write(#[from] WriteError),
    #[error("cannot commit the redrive's progress for group `{group}`: {error}")]
    Commit { group: String, error: KafkaError },
}

/// Pipeline `name` of `config`, and the brokers its DLQ is read from.
pub(crate) fn pipeline_of<'a>(
    config: &'a Config,
    name: &str,
) -> Result<(&'a PipelineConfig, &'a str), DlqError> {
    let pipeline = config
        .pipeline(name)
        .ok_or_else(|| DlqError::UnknownPipeline {
            pipeline: name.to_owned(),
            path: config.path.clone(),
            known: config
                .pipelines
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    match &config.kafka.brokers {
        Brokers::List(brokers) => Ok((pipeline, brokers)),
        Brokers::Embedded => Err(DlqError::Embedded {
            path: config.path.clone(),
        }),
    }
}

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
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        add(header::FAILED_AT, now_ms.to_string());
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
    use crate::plugin::FailureKind;

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
