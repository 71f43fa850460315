//! Reading a pipeline's DLQ topic to its end without joining a consumer
//! group: every partition assigned, from the beginning or from a group's
//! committed offsets, with the pipeline's own client configuration.
//!
//! Where a partition ends is [`PartitionEnds`]'s rule; a redrive also
//! stops partitions itself ([`DlqReader::stop`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::DlqError;
use crate::config::{Config, PipelineConfig};
use crate::kafka::reader::{EndReaderContext, PartitionEnds, ReadError, partition_count};
use crate::kafka::{self, event_of};
use crate::plugin::Event;

/// How long the DLQ topic may take to show up in the metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the broker may take to answer about offsets.
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the beginning of every partition.
    Beginning,
    /// At the group's committed offsets (the beginning where there is none).
    Committed,
}

/// A reader of one DLQ topic.
pub struct DlqReader {
    consumer: BaseConsumer<EndReaderContext>,
    topic: String,
    group: String,
    ends: PartitionEnds,
    /// The offset after the last record handed out, or of the record a
    /// partition was stopped at: what a commit stores.
    next: BTreeMap<i32, i64>,
}

impl DlqReader {
    /// Assigns every partition of `pipeline`'s DLQ topic. `group` is the
    /// group whose offsets [`Start::Committed`] and [`DlqReader::commit`]
    /// use; the reader never joins it.
    pub fn open(
        config: &Config,
        pipeline: &PipelineConfig,
        brokers: &str,
        group: &str,
        start: Start,
        idle: Duration,
    ) -> Result<DlqReader, DlqError> {
        let topic = pipeline.dlq.clone();
        let mut client = kafka::consumer_config(&config.kafka, brokers, group);
        client
            // Commits are explicit, after the broker acknowledged the work.
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // A committed offset below the log start: what is left is all.
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer<EndReaderContext> = client
            .create_with_context(EndReaderContext)
            .map_err(DlqError::Client)?;
        let partitions =
            partition_count(&consumer, &topic, METADATA_TIMEOUT).map_err(|e| match e {
                ReadError::NoSuchTopic { reason, .. } => DlqError::NoTopic {
                    topic: topic.clone(),
                    pipeline: pipeline.name.clone(),
                    reason,
                },
                other => DlqError::NoTopic {
                    topic: topic.clone(),
                    pipeline: pipeline.name.clone(),
                    reason: other.to_string(),
                },
            })?;
        let read_error = |source| DlqError::Read {
            topic: topic.clone(),
            error: source,
        };
        let mut tpl = TopicPartitionList::new();
        for partition in 0..partitions {
            tpl.add_partition(&topic, partition);
        }
        if start == Start::Committed {
            tpl = consumer
                .committed_offsets(tpl, OFFSETS_TIMEOUT)
                .map_err(read_error)?;
        }
        let mut next = BTreeMap::new();
        for element in tpl.elements() {
            if let Offset::Offset(offset) = element.offset() {
                next.insert(element.partition(), offset);
            }
        }
        for partition in 0..partitions {
            let offset = next
                .get(&partition)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            tpl.set_partition_offset(&topic, partition, offset)
                .map_err(read_error)?;
        }
        consumer.assign(&tpl).map_err(read_error)?;
        Ok(DlqReader {
            consumer,
            group: group.to_owned(),
            ends: PartitionEnds::new(0..partitions, idle),
            next,
            topic,
        })
    }

    /// The next record, `None` once every partition is at its end.
    pub fn next_record(&mut self) -> Result<Option<Event>, DlqError> {
        while self.ends.reading() {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.ends.end_reported(partition);
                }
                Some(Err(e)) => {
                    // librdkafka retries what it can; the idle time ends
                    // a read whose broker is gone.
                    tracing::warn!(topic = self.topic, error = %e, "reading the DLQ topic");
                }
                Some(Ok(message)) => {
                    let event = event_of(&message);
                    if !self.ends.record(event.partition) {
                        continue;
                    }
                    self.next.insert(event.partition, event.offset + 1);
                    return Ok(Some(event));
                }
            }
        }
        Ok(None)
    }

    /// Ends `partition` at `offset` (not read): a commit stores `offset`,
    /// so the record there is read again next time.
    pub fn stop(&mut self, partition: i32, offset: i64) {
        self.ends.stop(partition);
        self.next.insert(partition, offset);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        // Only saves fetching what would be skipped anyway.
        let _ = self.consumer.pause(&tpl);
    }

    /// Commits, for the group, the position of every partition read so far:
    /// everything before it is done.
    pub fn commit(&self) -> Result<(), DlqError> {
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &self.next {
            let _ = tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset));
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|source| DlqError::Commit {
                group: self.group.clone(),
                error: source,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::kafka::embedded::EmbeddedKafka;
    use crate::kafka::{RecordRef, Writer};

    /// On a broker whose high watermarks are right (the mock cluster), a
    /// read ends at every partition's end by the end-of-partition reports,
    /// not by the idle time; a commit, read back, starts where it stopped.
    #[test]
    fn every_partition_ends_at_its_end_and_a_commit_is_where_the_next_read_starts() {
        let kafka = EmbeddedKafka::start().expect("the mock cluster");
        kafka.create_topic("r-dlq", 2).expect("the DLQ topic");
        let text = format!(
            "[kafka]\nbrokers = \"{}\"\n[plugins]\ndir = \"plugins\"\n[[pipeline]]\n\
             name = \"r\"\ninputs = [\"r-in\"]\nplugin = \"passthrough\"\n\
             output = \"r-out\"\ndlq = \"r-dlq\"\n",
            kafka.bootstrap()
        );
        let config = Config::parse(&text, Path::new("r.toml")).expect("a valid file");
        let pipeline = &config.pipelines[0];
        let mut writer = Writer::to(kafka.bootstrap(), &[]).expect("a producer");
        for (partition, n) in [(0, 3), (1, 2)] {
            for _ in 0..n {
                let record = RecordRef {
                    partition: Some(partition),
                    value: Some(b"x"),
                    ..RecordRef::to("r-dlq")
                };
                writer.send(record).expect("queued");
            }
        }
        writer.flush(Duration::from_secs(10)).expect("written");

        let idle = Duration::from_secs(60);
        let started = Instant::now();
        let open = |start| {
            DlqReader::open(&config, pipeline, kafka.bootstrap(), "g", start, idle)
                .expect("the reader")
        };
        let mut reader = open(Start::Beginning);
        let mut seen = Vec::new();
        while let Some(event) = reader.next_record().expect("a read") {
            if (event.partition, event.offset) == (1, 1) {
                // As a redrive stops at a record: the commit keeps it.
                reader.stop(1, 1);
                continue;
            }
            seen.push((event.partition, event.offset));
        }
        seen.sort_unstable();
        assert_eq!(seen, [(0, 0), (0, 1), (0, 2), (1, 0)]);
        assert!(
            started.elapsed() < idle / 2,
            "ended by the end-of-partition reports, not the idle time"
        );
        reader.commit().expect("committed");

        let mut again = DlqReader::open(
            &config,
            pipeline,
            kafka.bootstrap(),
            "g",
            Start::Committed,
            Duration::from_secs(2),
        )
        .expect("the reader");
        let next = again
            .next_record()
            .expect("a read")
            .map(|e| (e.partition, e.offset));
        assert_eq!(next, Some((1, 1)), "the record the first read stopped at");
        assert!(again.next_record().expect("a read").is_none());
    }
}
