//! The dead-letter commands: reading a DLQ topic back to investigate its
//! dead letters and redrive them. The envelope itself, which the pipeline
//! writes, is [`crate::envelope`].
//!
//! - [`select`]: which dead letters a command is about (`--kind`,
//!   `--plugin`, `--since TIME`) and how they are shown;
//! - [`read`]: reading a DLQ topic to its end without joining a group;
//! - [`list`]: `sluice dlq list`;
//! - [`redrive`]: `sluice dlq redrive`, running dead letters through the
//!   pipeline's current chain again.
//!
pub mod list;
pub mod read;
pub mod redrive;
pub mod select;

use std::path::PathBuf;

use rdkafka::error::KafkaError;

use crate::config::{Brokers, Config, PipelineConfig};
use crate::kafka::writer::WriteError;
use crate::pipeline::PipelineError;

pub use list::{ListOptions, ListSummary, list};
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
