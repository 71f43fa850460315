//! The embedded broker: librdkafka's in-process mock cluster, for trying
//! Sluice and running demos without a Kafka installation. Any Kafka client
//! can connect to the address it prints. It keeps a few MiB per partition,
//! so it is for demos and tests, not for production or long benchmarks.

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaErrorCode;

/// A running mock cluster; dropping it stops the brokers.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster on a loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let cluster = MockCluster::new(1)
            .map_err(|e| anyhow::anyhow!("cannot start the embedded broker: {e}"))?;
        let bootstrap = cluster.bootstrap_servers();
        Ok(EmbeddedKafka { cluster, bootstrap })
    }

    /// The `host:port` list clients connect to.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic unless it exists (the mock cluster has no
    /// CreateTopics API). An existing topic keeps its partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        match self.cluster.create_topic(name, partitions, 1) {
            Ok(()) | Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
            Err(e) => Err(anyhow::anyhow!(
                "cannot create topic {name} on the embedded broker: {e}"
            )),
        }
    }
}
