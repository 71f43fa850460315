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
//! - [`scaffold`]: `sluice new`, a plugin project in Rust, Python or
//!   JavaScript from the templates in `runtime/templates/`.
//!
//! The Kafka side:
//! - [`config`]: the pipeline TOML: schema, `${VAR}` interpolation,
//!   validation with `FILE:LINE:COL` messages, what a reload must restart.
//! - [`pipeline`]: one running pipeline: poll thread, per-partition batches,
//!   workers with their plugin chains, the producer, at-least-once offsets.
//! - [`dlq`]: the dead-letter envelope, and `sluice dlq list` / `redrive`
//!   (reading a DLQ topic back, selecting dead letters, running them
//!   through the pipeline's current chain again); [`headers`]: the names
//!   of every `sluice.*` header.
//! - [`changelog`]: plugin state on Kafka: the compacted changelog topic
//!   every state change is written to, and restoring a partition's state
//!   from it on assignment.
//! - [`kafka`]: client configuration, the embedded broker, and the client
//!   tools the demo and the tests share (write with delivery reports, read
//!   topics back, a group's committed offsets).
//!
//! Running it:
//! - [`supervisor`]: the pipelines of one config file, loading plugins,
//!   applying plugin and config reloads.
//! - [`reload`]: what triggers a reload (file events, periodic checks,
//!   SIGHUP); [`shutdown`]: stop signals.
//! - [`metrics`]: Prometheus metrics; [`status`]: what runs, the latest
//!   dead letters, the reload history and the probes' answers; [`http`]:
//!   the endpoint of `sluice run --http`: the status page, its JSON API
//!   (redrive behind a token), `/metrics`, `/healthz`, `/readyz`.
//! - [`demo`]: the tutorial scenario behind `sluice demo`.
//! - [`cli`]: the command line; `main.rs` only calls [`cli::main`].
//!
//! Outside this crate: the benchmark (`runtime/bench`, `sluice-bench`) and
//! the test kit (`tests/kit`, `sluice-testkit`: the tansu launcher, the
//! `sluice` process harness) use this library like any client would.

// Event and reload paths must not panic on bad input: outside tests, the
// library handles every error instead of unwrapping it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod changelog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dlq;
pub mod exec;
pub mod headers;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod reload;
pub mod scaffold;
pub mod shutdown;
pub mod status;
pub mod supervisor;
