//! Which partitions this group member owns: rebalance news, collected in
//! the consumer's callbacks (they run inside `poll`, on the poll thread)
//! and handled right after, and the assignment itself. The same context
//! takes librdkafka's statistics, for the consumer lag metric.

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use rustc_hash::FxHashMap;

use super::tracker::Tp;

/// The consumer's context: keeps rebalance news for the poll thread and
/// exports the lag of the partitions it consumes.
pub(crate) struct GroupContext {
    pipeline: String,
    news: Mutex<Vec<GroupNews>>,
}

/// What a rebalance did.
pub(crate) enum GroupNews {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {
    /// The lag librdkafka computes from the committed offset and the high
    /// watermark it learns from fetches: no request of our own, nothing
    /// per event (see `statistics.interval.ms` in [`crate::kafka`]).
    fn stats(&self, statistics: Statistics) {
        let metrics = crate::metrics::global();
        for (topic, t) in &statistics.topics {
            // -1 is librdkafka's internal "unassigned" partition; a lag of
            // -1 means unknown (a partition this member does not consume).
            for p in t.partitions.values() {
                if p.partition >= 0 && p.consumer_lag >= 0 {
                    metrics.consumer_lag(&self.pipeline, topic, p.partition, Some(p.consumer_lag));
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.push(GroupNews::Revoked(partitions_of(tpl)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.push(GroupNews::Assigned(partitions_of(tpl))),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl GroupContext {
    pub fn new(pipeline: &str) -> Self {
        GroupContext {
            pipeline: pipeline.to_owned(),
            news: Mutex::default(),
        }
    }

    fn push(&self, news: GroupNews) {
        self.news.lock().push(news);
    }

    /// The news since the last call, oldest first.
    pub fn take(&self) -> Vec<GroupNews> {
        std::mem::take(&mut *self.news.lock())
    }
}

/// The partitions assigned to this member, by topic and partition.
#[derive(Default)]
pub(crate) struct Assignment {
    by_name: FxHashMap<(String, i32), Tp>,
    /// The partition of the last lookup: events come in runs of one
    /// partition, and this spares building a `(String, i32)` key for each.
    last: Option<Tp>,
}

impl Assignment {
    /// The `Tp` of an assigned partition.
    pub fn get(&mut self, topic: &str, partition: i32) -> Option<Tp> {
        if let Some(tp) = &self.last
            && tp.partition == partition
            && *tp.topic == *topic
        {
            return Some(tp.clone());
        }
        let tp = self.by_name.get(&(topic.to_owned(), partition))?.clone();
        self.last = Some(tp.clone());
        Some(tp)
    }

    /// Adds a partition; returns its `Tp`.
    pub fn assign(&mut self, topic: String, partition: i32) -> Tp {
        let tp = Tp {
            topic: topic.as_str().into(),
            partition,
        };
        self.by_name.insert((topic, partition), tp.clone());
        tp
    }

    /// Removes a partition; returns its `Tp` if it was assigned.
    pub fn revoke(&mut self, topic: String, partition: i32) -> Option<Tp> {
        self.last = None;
        self.by_name.remove(&(topic, partition))
    }

    /// The assigned partitions.
    pub fn tps(&self) -> impl Iterator<Item = &Tp> {
        self.by_name.values()
    }

    /// How many partitions are assigned.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_follow_assignments_and_revocations() {
        let mut a = Assignment::default();
        assert_eq!(a.get("t", 0), None);
        let t0 = a.assign("t".into(), 0);
        a.assign("t".into(), 1);
        assert_eq!(a.get("t", 0), Some(t0.clone()));
        assert_eq!(a.get("t", 0), Some(t0.clone()), "from the cache");
        assert_eq!(a.get("u", 0), None);
        assert_eq!(a.len(), 2);
        assert_eq!(a.revoke("t".into(), 0), Some(t0));
        assert_eq!(a.get("t", 0), None, "the cache is dropped with it");
        assert_eq!(a.tps().map(|tp| tp.partition).collect::<Vec<_>>(), [1]);
    }
}
