//! The integration tests that run pipelines against a real broker (tansu,
//! or librdkafka's mock cluster as the embedded broker): delivery,
//! failures, state and exactly-once, reloads, dead letters, operations and
//! the status page. One binary, so wasmtime and rdkafka are linked once
//! (see `runtime/Cargo.toml`); each file is a module.

#[path = "delivery_failures.rs"]
mod delivery_failures;
#[path = "dlq.rs"]
mod dlq;
#[path = "durable_state.rs"]
mod durable_state;
#[path = "embedded.rs"]
mod embedded;
#[path = "hot_reload.rs"]
mod hot_reload;
#[path = "ops.rs"]
mod ops;
#[path = "page.rs"]
mod page;
#[path = "pipeline_e2e.rs"]
mod pipeline_e2e;
