//! The changelog of a pipeline's plugin state: the compacted topic every
//! committed state change is written to, partitioned like the inputs, and
//! what a partition's state is restored from when it is assigned.
//!
//! A record is one key's latest value after a batch:
//! - partition: the input partition whose state it is;
//! - key: `<step>` NUL `<key>`, where `<step>` is the step's state name
//!   ([`crate::config::PipelineConfig::state_names`]) and `<key>` the
//!   plugin's key; compaction keeps the latest record of each;
//! - value: the new value; none (a tombstone) when the key was removed;
//! - headers `sluice.source.topic` and `sluice.source.offset`: the last
//!   event of the batch whose calls made the change.
//!
//! A restore reads a partition from its beginning to its end and applies
//! every record in order. Under exactly-once it also skips a record whose
//! source offset is at or past the committed offset of its source
//! partition: such a record belongs to work that was never committed. On a
//! broker that hides aborted transactions from `read_committed` readers,
//! as Kafka does, there are none; on one that does not (tansu 0.6,
//! librdkafka's mock cluster) this is what keeps an aborted batch out of
//! the state. A record of an aborted batch that is older than the commit
//! is harmless: the batch was processed again and committed, and its
//! records, later in the log, win.
//!
//! Where a partition ends: a high watermark at the log start means empty;
//! otherwise [`PartitionEnds`]'s rule, as for the DLQ reader.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{KafkaConfig, OnCorrupt, PipelineConfig};
use crate::headers;
use crate::kafka::reader::{END_IDLE, EndReaderContext, PartitionEnds, ReadError, partition_count};
use crate::kafka::writer::{RecordRef, owned_headers};

/// How long the broker may take to answer about offsets and metadata.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// What separates the step's name from the plugin's key in a record key.
const SEPARATOR: u8 = 0;

/// A partition's restored state: per step (in chain order), its entries.
pub type Restored = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

/// Why a partition's state could not be restored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read the changelog `{topic}`: {error}")]
    Read { topic: String, error: String },
    #[error(
        "the changelog `{topic}` has {has} partitions, but input partition {partition} needs \
         one of its own: give the changelog as many partitions as the input with the most"
    )]
    TooFewPartitions {
        topic: String,
        has: i32,
        partition: i32,
    },
    #[error(
        "the changelog `{topic}` has a record Sluice cannot read at partition {partition}, \
         offset {offset}: {why}. The partition stops here; to skip such records, set \
         `state.on_corrupt = \"skip\"` in the pipeline"
    )]
    Corrupt {
        topic: String,
        partition: i32,
        offset: i64,
        why: String,
    },
}

/// The record key of `key` in the state of step `step`.
pub fn record_key(step: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(step.len() + 1 + key.len());
    out.extend_from_slice(step.as_bytes());
    out.push(SEPARATOR);
    out.extend_from_slice(key);
    out
}

/// One state change to write: a key's latest value after a batch.
#[derive(Debug)]
pub struct Change {
    /// The input partition whose state changed: the record's partition.
    pub partition: i32,
    /// The record key ([`record_key`]).
    pub key: Vec<u8>,
    /// The new value; `None` when the key was removed.
    pub value: Option<Vec<u8>>,
    /// The batch's input topic.
    pub source_topic: std::sync::Arc<str>,
    /// The offset of the batch's last event, in decimal.
    pub source_offset: String,
}

impl Change {
    /// The record, for the changelog `topic`.
    pub fn record<'a>(&'a self, topic: &'a str) -> RecordRef<'a> {
        let headers = [
            (headers::SOURCE_TOPIC, self.source_topic.as_bytes()),
            (headers::SOURCE_OFFSET, self.source_offset.as_bytes()),
        ];
        RecordRef {
            partition: Some(self.partition),
            key: Some(&self.key),
            value: self.value.as_deref(),
            headers: owned_headers(headers.into_iter()),
            ..RecordRef::to(topic)
        }
    }
}

/// The step name and plugin key of a record key.
fn split_key(key: &[u8]) -> Result<(&str, &[u8]), String> {
    let at = key
        .iter()
        .position(|b| *b == SEPARATOR)
        .ok_or("its key has no step name (no NUL byte)")?;
    let step =
        std::str::from_utf8(&key[..at]).map_err(|_| "its step name is not UTF-8".to_owned())?;
    if step.is_empty() {
        return Err("its step name is empty".to_owned());
    }
    Ok((step, &key[at + 1..]))
}

/// The committed offset of an input partition, for exactly-once restores.
pub type Committed<'a> = &'a dyn Fn(&str, i32) -> Option<i64>;

/// Reads a pipeline's changelog.
pub struct Restorer {
    consumer: BaseConsumer<EndReaderContext>,
    topic: String,
    steps: Vec<String>,
    on_corrupt: OnCorrupt,
}

impl Restorer {
    /// A reader of `pipeline`'s changelog with the pipeline's client
    /// settings; it joins no group.
    pub fn new(
        kafka: &KafkaConfig,
        brokers: &str,
        pipeline: &PipelineConfig,
    ) -> Result<Restorer, KafkaError> {
        let mut client = crate::kafka::consumer_config(kafka, brokers, &pipeline.group_id);
        client
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            // A restore reads a partition to its end as fast as it can:
            // librdkafka's defaults wait up to 500 ms for each empty fetch
            // (a floor under every restore) and back off 1 s whenever its
            // fetch queue is full (a long restore stalled; 1M keys took
            // 3-4 times as long).
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10");
        Ok(Restorer {
            consumer: client.create_with_context(EndReaderContext)?,
            topic: pipeline.state.changelog.clone(),
            steps: pipeline.state_names(),
            on_corrupt: pipeline.state.on_corrupt,
        })
    }

    /// The changelog topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Restores `partitions`, each to its end; [`Restorer::restore_each`]
    /// with the results collected.
    pub fn restore(
        &self,
        partitions: &[i32],
        committed: Option<Committed<'_>>,
        stop: &dyn Fn() -> bool,
    ) -> BTreeMap<i32, Result<Restored, RestoreError>> {
        let mut results = BTreeMap::new();
        self.restore_each(partitions, committed, stop, &mut |partition, result| {
            results.insert(partition, result);
        });
        results
    }

    /// Restores `partitions`, each to its end, handing each to `done` as
    /// soon as it is at its end: a small partition is not held up by a
    /// large one. `committed` (exactly-once) leaves out what uncommitted
    /// work wrote (module docs). Once `stop` says so, the partitions not
    /// yet at their end fail as unread.
    pub fn restore_each(
        &self,
        partitions: &[i32],
        committed: Option<Committed<'_>>,
        stop: &dyn Fn() -> bool,
        done: &mut dyn FnMut(i32, Result<Restored, RestoreError>),
    ) {
        if partitions.is_empty() {
            return;
        }
        let read_error = |error: String| RestoreError::Read {
            topic: self.topic.clone(),
            error,
        };
        let has = match partition_count(&self.consumer, &self.topic, BROKER_TIMEOUT) {
            Ok(n) => n,
            Err(e) => {
                let e = match e {
                    ReadError::NoSuchTopic { reason, .. } => {
                        read_error(format!("it does not exist ({reason})"))
                    }
                    e => read_error(e.to_string()),
                };
                for partition in partitions {
                    done(*partition, Err(e.clone()));
                }
                return;
            }
        };
        // The partitions being read, with their state so far.
        let mut reading: BTreeMap<i32, Restored> = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for &partition in partitions {
            if partition >= has {
                let e = RestoreError::TooFewPartitions {
                    topic: self.topic.clone(),
                    has,
                    partition,
                };
                done(partition, Err(e));
                continue;
            }
            let empty = vec![BTreeMap::new(); self.steps.len()];
            match self
                .consumer
                .fetch_watermarks(&self.topic, partition, BROKER_TIMEOUT)
            {
                Ok((low, high)) if high <= low => done(partition, Ok(empty)),
                // Unknown: read and find out.
                Ok(_) | Err(_) => {
                    reading.insert(partition, empty);
                    let _ = tpl.add_partition_offset(&self.topic, partition, Offset::Beginning);
                }
            }
        }
        if reading.is_empty() {
            return;
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            let e = read_error(e.to_string());
            for partition in reading.into_keys() {
                done(partition, Err(e.clone()));
            }
            return;
        }
        let mut ends = PartitionEnds::new(reading.keys().copied(), END_IDLE);
        while ends.reading() {
            if stop() {
                for partition in std::mem::take(&mut reading).into_keys() {
                    done(
                        partition,
                        Err(read_error("stopped before its end".to_owned())),
                    );
                }
                break;
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    ends.end_reported(partition);
                    if !ends.open().contains(&partition)
                        && let Some(state) = reading.remove(&partition)
                    {
                        done(partition, Ok(state));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = self.topic, error = %e, "reading the changelog");
                }
                Some(Ok(message)) => {
                    let partition = message.partition();
                    if !ends.record(partition) {
                        continue;
                    }
                    let Some(state) = reading.get_mut(&partition) else {
                        continue;
                    };
                    match self.apply(state, &message, committed) {
                        Ok(()) => {}
                        Err(why) if self.on_corrupt == OnCorrupt::Skip => {
                            tracing::warn!(
                                topic = self.topic,
                                partition,
                                offset = message.offset(),
                                why,
                                "skipping a changelog record Sluice cannot read (state.on_corrupt = \"skip\")"
                            );
                        }
                        Err(why) => {
                            let e = RestoreError::Corrupt {
                                topic: self.topic.clone(),
                                partition,
                                offset: message.offset(),
                                why,
                            };
                            reading.remove(&partition);
                            ends.stop(partition);
                            done(partition, Err(e));
                        }
                    }
                }
            }
        }
        // Gone quiet: what is left is at its end.
        for (partition, state) in reading {
            done(partition, Ok(state));
        }
        let _ = self.consumer.unassign();
    }

    /// Applies one record to a partition's state.
    fn apply(
        &self,
        state: &mut Restored,
        message: &BorrowedMessage<'_>,
        committed: Option<Committed<'_>>,
    ) -> Result<(), String> {
        let key = message.key().ok_or("it has no key")?;
        let (step, key) = split_key(key)?;
        if let Some(committed) = committed {
            let (topic, offset) = source(message)?;
            match committed(&topic, message.partition()) {
                Some(next) if offset < next => {}
                // Written by work that was never committed.
                _ => return Ok(()),
            }
        }
        // The state of a step that is no longer in the chain.
        let Some(index) = self.steps.iter().position(|s| s == step) else {
            return Ok(());
        };
        let Some(entries) = state.get_mut(index) else {
            return Ok(());
        };
        match message.payload() {
            Some(value) => entries.insert(key.to_vec(), value.to_vec()),
            None => entries.remove(key),
        };
        Ok(())
    }
}

/// The source topic and offset of a changelog record.
fn source(message: &BorrowedMessage<'_>) -> Result<(String, i64), String> {
    let header = |name: &str| {
        message.headers().and_then(|hs| {
            hs.iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        })
    };
    let topic = header(headers::SOURCE_TOPIC)
        .ok_or_else(|| format!("it has no `{}` header", headers::SOURCE_TOPIC))?;
    let offset = header(headers::SOURCE_OFFSET)
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| format!("it has no numeric `{}` header", headers::SOURCE_OFFSET))?;
    Ok((topic, offset))
}

#[cfg(test)]
mod tests;
