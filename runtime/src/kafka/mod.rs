//! Kafka clients: how consumer and producer configurations are built from
//! the pipeline TOML, and the embedded broker for trying Sluice without
//! Kafka.

pub mod embedded;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Consumer settings Sluice needs for at-least-once; users cannot override
/// them because the delivery guarantee depends on them.
const CONSUMER_FIXED: &[(&str, &str)] = &[
    // Offsets are stored only after every output of an event and of all
    // earlier events of its partition is acknowledged.
    ("enable.auto.offset.store", "false"),
    ("enable.auto.commit", "true"),
];

/// Consumer defaults a user may override.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("auto.commit.interval.ms", "1000"),
    ("partition.assignment.strategy", "cooperative-sticky"),
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

/// The consumer configuration of one pipeline.
pub fn consumer_config(kafka: &KafkaConfig, brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", &kafka.client_id)
        .set("group.id", group_id);
    for (k, v) in CONSUMER_DEFAULTS {
        config.set(*k, *v);
    }
    for (k, v) in &kafka.consumer {
        config.set(k, v);
    }
    for (k, v) in CONSUMER_FIXED {
        if let Some(user) = kafka.consumer.get(*k).filter(|user| user.as_str() != *v) {
            tracing::warn!(
                property = k,
                user,
                forced = v,
                "overriding a consumer property at-least-once depends on"
            );
        }
        config.set(*k, *v);
    }
    config
}

/// The producer configuration of one pipeline.
pub fn producer_config(kafka: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", &kafka.client_id);
    for (k, v) in PRODUCER_DEFAULTS {
        config.set(*k, *v);
    }
    for (k, v) in &kafka.producer {
        config.set(k, v);
    }
    config
}
