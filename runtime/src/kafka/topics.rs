//! Creating a pipeline's topics on a cluster with the configured partition
//! count, before its consumer joins. Without it, the topics come from the
//! broker's auto-creation (with the broker's default partition count, and
//! an output topic only once the first output is written), or not at all.
//!
//! Creating a topic that exists is fine: it keeps its partitions. A broker
//! that refuses (no permission, auto-creation policies, an old broker) is
//! not an error either: the pipeline runs on whatever topics there are.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;

/// How long the broker may take to answer a CreateTopics request.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's default replication factor (KIP-464, Kafka 2.4).
const BROKER_DEFAULT_REPLICATION: i32 = -1;

/// Why topics could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The request as a whole failed (for example the broker is down).
    #[error("cannot create topics: {0}")]
    Request(#[source] KafkaError),
    /// The broker refused some topics.
    #[error("the broker refused to create {}", refused_list(.0))]
    Refused(Vec<(String, RDKafkaErrorCode)>),
}

fn refused_list(refused: &[(String, RDKafkaErrorCode)]) -> String {
    refused
        .iter()
        .map(|(topic, code)| format!("`{topic}` ({code})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The topic configuration of a state changelog: compacted, so it keeps
/// the latest value of each key and restores stay short.
pub const CHANGELOG_CONFIG: &[(&str, &str)] = &[("cleanup.policy", "compact")];

/// Creates each of `topics` that does not exist with `partitions`
/// partitions, the broker's default replication and the topic
/// configuration `settings`. Returns the topics it created.
pub fn create_missing(
    kafka: &KafkaConfig,
    brokers: &str,
    topics: &[&str],
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<Vec<String>, CreateError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> = super::admin_config(kafka, brokers)
        .create()
        .map_err(CreateError::Request)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            settings.iter().fold(
                NewTopic::new(
                    topic,
                    partitions,
                    TopicReplication::Fixed(BROKER_DEFAULT_REPLICATION),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(CREATE_TIMEOUT))
        .operation_timeout(Some(CREATE_TIMEOUT));
    let results = block_on(admin.create_topics(&new, &options)).map_err(CreateError::Request)?;
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err(refusal) => refused.push(refusal),
        }
    }
    if refused.is_empty() {
        Ok(created)
    } else {
        Err(CreateError::Refused(refused))
    }
}

/// Waits for a future on this thread. The admin client's own thread
/// completes it; callers are plain threads or inside `block_in_place`,
/// where starting another async runtime is not allowed.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
