//! Sluice: consume Kafka topics, run every event through a sandboxed
//! WebAssembly plugin, write the results and dead-letter the failures.
//!
//! # Layout
//!
//! The Wasm side:
//! - [`plugin`]: loading components that implement the
//!   `sluice:plugin/processor` world (`wit/`), sandbox and limits, instances,
//!   trap classification and culprit isolation.
//! - [`exec`]: `sluice exec`, a plugin over JSON-lines events: the plugin
//!   author's inner loop, no Kafka needed.
//!
//! The Kafka side:
//! - [`config`]: the pipeline TOML: schema, `${VAR}` interpolation,
//!   validation with `FILE:LINE:COL` messages, what a reload must restart.
//! - [`pipeline`]: one running pipeline: poll thread, per-partition batches,
//!   workers with their plugin chains, the producer, at-least-once offsets.
//! - [`dlq`]: the dead-letter envelope and its headers.
//! - [`kafka`]: client configuration and the embedded broker.
//!
//! Running it:
//! - [`supervisor`]: the pipelines of one config file, loading plugins,
//!   applying plugin and config reloads.
//! - [`reload`]: what triggers a reload (file events, periodic checks,
//!   SIGHUP); [`shutdown`]: stop signals.
//! - [`metrics`]: Prometheus counters; [`http`]: `/metrics` and `/healthz`.
//! - [`demo`]: the tutorial scenario behind `sluice demo`.
//! - [`cli`]: the command line; `main.rs` only calls [`cli::main`].
//! - [`bench`]: `sluice-bench` (`scripts/bench`): throughput against raw
//!   rdkafka and the Python tutorial loop, the cost of the Wasm boundary.

pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dlq;
pub mod exec;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod reload;
pub mod shutdown;
pub mod supervisor;
