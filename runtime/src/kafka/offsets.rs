//! A consumer group's committed offsets, read without joining the group:
//! how the tests and the benchmark check that a pipeline committed exactly
//! what it processed.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::reader::{ReadError, partition_count};

/// Asks the group coordinator for one group's committed offsets.
pub struct GroupOffsets {
    consumer: BaseConsumer,
}

impl GroupOffsets {
    /// A client for `group` on `brokers`; it never joins the group.
    pub fn new(brokers: &str, group: &str) -> Result<Self, KafkaError> {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(GroupOffsets { consumer })
    }

    /// The committed offset of partitions `0..partitions` of `topic`,
    /// `None` where nothing is committed.
    pub fn committed(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for partition in 0..partitions {
            tpl.add_partition(topic, partition);
        }
        let got = self.consumer.committed_offsets(tpl, timeout)?;
        Ok(got
            .elements_for_topic(topic)
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect())
    }

    /// Like [`GroupOffsets::committed`] for every partition of `topic`.
    pub fn committed_all(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>, OffsetsError> {
        let partitions = partition_count(&self.consumer, topic, timeout)?;
        Ok(self.committed(topic, partitions, timeout)?)
    }
}

/// Why the offsets of a whole topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error(transparent)]
    Topic(#[from] ReadError),
    #[error("cannot read committed offsets: {0}")]
    Kafka(#[from] KafkaError),
}
