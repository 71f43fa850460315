//! Kafka clients: how the pipelines' consumer and producer configurations
//! are built from the pipeline TOML, and the few client tools that other
//! parts of Sluice and its tests share.
//!
//! - this module: client configuration, and the properties Sluice owns;
//! - [`embedded`]: the in-process broker for trying Sluice without Kafka;
//! - [`writer`]: producing records and learning where each one landed;
//! - [`reader`]: reading whole topics from the beginning without joining a
//!   group, and turning Kafka messages into plugin events;
//! - [`offsets`]: a group's committed offsets, read without joining it;
//! - [`topics`]: creating a pipeline's topics with its partition count.

pub mod embedded;
pub mod offsets;
pub mod reader;
pub mod topics;
pub mod writer;

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;

pub use offsets::GroupOffsets;
pub use reader::{TopicReader, event_of};
pub use writer::{Delivered, RecordRef, Writer, send_waiting};

/// `[kafka]`: the connection shared by every pipeline of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Which cluster.
    pub brokers: Brokers,
    /// `client.id` of every consumer and producer.
    pub client_id: String,
    /// This process among the processes of its consumer groups: the
    /// suffix of every exactly-once `transactional.id`
    /// ([`KafkaConfig::transactional_id`]).
    pub instance_id: String,
    /// Extra librdkafka consumer properties, values as strings.
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka producer properties, values as strings.
    pub producer: BTreeMap<String, String>,
}

/// The cluster to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokers {
    /// librdkafka's in-process mock cluster, started by Sluice: for trying
    /// Sluice without Kafka, and for tests.
    Embedded,
    /// A `bootstrap.servers` list, `host:port[,host:port...]`.
    List(String),
}

impl fmt::Display for Brokers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Brokers::Embedded => f.write_str("embedded"),
            Brokers::List(list) => f.write_str(list),
        }
    }
}

/// Which clients a reserved property is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clients {
    Both,
    Consumer,
}

/// What Sluice sets a reserved property to.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// `kafka.brokers`.
    Brokers,
    /// `kafka.client_id`.
    ClientId,
    /// The pipeline's `group_id`.
    GroupId,
    /// This value, always.
    Fixed(&'static str),
    /// Nothing: an alias of a property Sluice sets.
    Alias,
    /// Nothing here: set where a pipeline needs it (exactly-once).
    Managed,
}

/// A librdkafka property Sluice sets itself.
#[derive(Debug)]
pub struct Reserved {
    /// The property.
    pub name: &'static str,
    /// Why a pipeline file may not set it.
    pub why: &'static str,
    clients: Clients,
    value: Value,
}

/// The properties Sluice sets itself: a pipeline file that sets one in
/// `[kafka.consumer]` or `[kafka.producer]` is refused, because the
/// connection or the delivery guarantee depends on them.
pub const RESERVED: &[Reserved] = &[
    Reserved {
        name: "bootstrap.servers",
        why: "it is set from `kafka.brokers`",
        clients: Clients::Both,
        value: Value::Brokers,
    },
    Reserved {
        name: "metadata.broker.list",
        why: "it is set from `kafka.brokers`",
        clients: Clients::Both,
        value: Value::Alias,
    },
    Reserved {
        name: "client.id",
        why: "it is set from `kafka.client_id`",
        clients: Clients::Both,
        value: Value::ClientId,
    },
    Reserved {
        name: "group.id",
        why: "it is set from each pipeline's `group_id`",
        clients: Clients::Consumer,
        value: Value::GroupId,
    },
    Reserved {
        name: "transactional.id",
        why: "Sluice sets it for `delivery = \"exactly-once\"`, from the pipeline's group and \
              `kafka.instance_id`",
        clients: Clients::Both,
        value: Value::Managed,
    },
    Reserved {
        name: "enable.auto.offset.store",
        why: "Sluice stores an offset only once its outputs are acknowledged (at-least-once)",
        clients: Clients::Consumer,
        value: Value::Fixed("false"),
    },
    Reserved {
        name: "enable.auto.commit",
        why: "Sluice relies on librdkafka committing the offsets it stores; without it they \
              would be committed only at shutdown",
        clients: Clients::Consumer,
        value: Value::Fixed("true"),
    },
];

/// The environment variable `kafka.instance_id` defaults to (then the
/// host name).
pub const INSTANCE_ENV: &str = "SLUICE_INSTANCE_ID";

impl KafkaConfig {
    /// The `transactional.id` of an exactly-once pipeline of group
    /// `group_id` in this process: `<group>-<instance_id>`. Stable across
    /// restarts of one process (a pod, a host), so a restarted process
    /// fences the transaction its predecessor left open and aborts it at
    /// once; distinct between the processes of one group, which otherwise
    /// fence each other.
    pub fn transactional_id(&self, group_id: &str) -> String {
        format!("{group_id}-{}", self.instance_id)
    }
}

/// The default of `kafka.instance_id`: `env`'s `SLUICE_INSTANCE_ID` when
/// set and not blank, else the host name, else `sluice`.
pub fn default_instance_id(env: &dyn Fn(&str) -> Option<String>) -> String {
    env(INSTANCE_ENV)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "sluice".to_owned())
}

/// Why `name` may not be set in a pipeline file, if it is reserved.
pub fn reserved(name: &str) -> Option<&'static str> {
    RESERVED.iter().find(|r| r.name == name).map(|r| r.why)
}

/// Consumer defaults a user may override.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("auto.commit.interval.ms", "1000"),
    ("partition.assignment.strategy", "cooperative-sticky"),
    // The consumer-lag metric comes from these statistics: librdkafka
    // already knows each partition's committed offset and high watermark,
    // so a JSON document every 5 s costs less than asking the broker.
    ("statistics.interval.ms", "5000"),
];

/// Producer defaults a user may override.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // Per-partition order of outputs survives producer retries.
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    // Same key → same partition as the Java clients, so per-key order holds
    // across clients in other languages.
    ("partitioner", "murmur2_random"),
];

/// What the reserved properties of one client are set from.
struct Given<'a> {
    brokers: &'a str,
    client_id: &'a str,
    /// The consumer's group; `None` for a producer.
    group_id: Option<&'a str>,
}

/// The consumer configuration of one pipeline.
pub fn consumer_config(kafka: &KafkaConfig, brokers: &str, group_id: &str) -> ClientConfig {
    let given = Given {
        brokers,
        client_id: &kafka.client_id,
        group_id: Some(group_id),
    };
    build(CONSUMER_DEFAULTS, &kafka.consumer, &given)
}

/// The producer configuration of one pipeline.
pub fn producer_config(kafka: &KafkaConfig, brokers: &str) -> ClientConfig {
    let given = Given {
        brokers,
        client_id: &kafka.client_id,
        group_id: None,
    };
    build(PRODUCER_DEFAULTS, &kafka.producer, &given)
}

/// The configuration of an admin client (topic creation): the producer's
/// properties, which carry the connection's security settings, without
/// the producer defaults, which are about writing records.
pub fn admin_config(kafka: &KafkaConfig, brokers: &str) -> ClientConfig {
    let given = Given {
        brokers,
        client_id: &kafka.client_id,
        group_id: None,
    };
    build(&[], &kafka.producer, &given)
}

/// Defaults, then the user's properties, then the reserved ones.
fn build(
    defaults: &[(&str, &str)],
    user: &BTreeMap<String, String>,
    given: &Given<'_>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for (k, v) in user {
        config.set(k, v);
    }
    for reserved in RESERVED {
        let value = match (reserved.value, given.group_id) {
            _ if reserved.clients == Clients::Consumer && given.group_id.is_none() => continue,
            (Value::Brokers, _) => given.brokers,
            (Value::ClientId, _) => given.client_id,
            (Value::GroupId, Some(group_id)) => group_id,
            (Value::Fixed(value), _) => value,
            (Value::GroupId, None) | (Value::Alias | Value::Managed, _) => continue,
        };
        config.set(reserved.name, value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka() -> KafkaConfig {
        KafkaConfig {
            brokers: Brokers::List("b:9092".into()),
            client_id: "me".into(),
            instance_id: "i".into(),
            consumer: [("fetch.wait.max.ms".to_owned(), "50".to_owned())].into(),
            producer: [("linger.ms".to_owned(), "1".to_owned())].into(),
        }
    }

    #[test]
    fn reserved_properties_are_set_from_the_config() {
        let consumer = consumer_config(&kafka(), "b:9092", "g");
        for (name, want) in [
            ("bootstrap.servers", "b:9092"),
            ("client.id", "me"),
            ("group.id", "g"),
            ("enable.auto.offset.store", "false"),
            ("enable.auto.commit", "true"),
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "50"),
        ] {
            assert_eq!(consumer.get(name), Some(want), "{name}");
        }
        assert_eq!(consumer.get("metadata.broker.list"), None);

        let producer = producer_config(&kafka(), "b:9092");
        assert_eq!(producer.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(producer.get("linger.ms"), Some("1"), "user over default");
        assert_eq!(producer.get("group.id"), None);
        assert_eq!(producer.get("enable.auto.commit"), None);
    }

    #[test]
    fn every_reserved_property_has_a_reason() {
        for r in RESERVED {
            assert_eq!(reserved(r.name), Some(r.why));
        }
        assert_eq!(reserved("linger.ms"), None);
    }
}
