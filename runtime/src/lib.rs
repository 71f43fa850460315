//! Sluice: consume Kafka topics, run every event through a sandboxed
//! WebAssembly plugin, write the results and dead-letter the failures.
//!
//! # Layout
//!
//! Modules are listed from the bottom up and import only downward: no two
//! modules import each other, directly or around a circle, at the top
//! level or among the children of one module (`scripts/check-layers`
//! checks it in the test suite).
//!
//! Leaves, used everywhere:
//! - [`failure`]: how one event fails ([`failure::FailureKind`]);
//!   [`clock`]: epoch milliseconds; [`headers`]: the names of every
//!   `sluice.*` header; [`shutdown`]: stop signals.
//!
//! The Wasm side:
//! - [`metrics`]: Prometheus metrics.
//! - [`plugin`]: loading components that implement the
//!   `sluice:plugin/processor` world (`wit/`), sandbox and limits, instances,
//!   trap classification and culprit isolation, the set of a config's
//!   compiled plugins.
//! - [`json_lines`]: events, outcomes and state as JSON lines.
//! - [`scaffold`]: `sluice new`, a plugin project in Rust, Python or
//!   JavaScript from the templates in `runtime/templates/`.
//!
//! The Kafka side:
//! - [`kafka`]: client configuration, the properties Sluice reserves, the
//!   embedded broker, and the client tools the demo and the tests share
//!   (write with delivery reports, read topics back, a group's committed
//!   offsets).
//! - [`config`]: the pipeline TOML: schema, `${VAR}` interpolation,
//!   validation with `FILE:LINE:COL` messages, what a reload must restart.
//! - [`envelope`]: the dead-letter envelope, written and read back.
//! - [`changelog`]: plugin state on Kafka: the compacted changelog topic
//!   every state change is written to, and restoring a partition's state
//!   from it on assignment.
//! - [`status`]: what runs, the latest dead letters, the reload history
//!   and the probes' answers.
//! - [`pipeline`]: one running pipeline: poll thread, per-partition batches,
//!   workers with their plugin chains, the producer, offsets and
//!   transactions, the recovery thread (restores and committed offsets,
//!   off the poll thread); the event rules redrive shares.
//!
//! Commands and running it:
//! - [`exec`]: `sluice exec`, a plugin over JSON-lines events: the plugin
//!   author's inner loop, no Kafka needed.
//! - [`dlq`]: `sluice dlq list` / `redrive`: reading a DLQ topic back,
//!   selecting dead letters, running them through the pipeline's current
//!   chain again.
//! - [`supervisor`]: the pipelines of one config file, applying plugin and
//!   config reloads, restarting what stopped.
//! - [`reload`]: what triggers a reload (file events, periodic checks,
//!   SIGHUP).
//! - [`http`]: the endpoint of `sluice run --http`: the status page, its
//!   JSON API (redrive behind a token), `/metrics`, `/healthz`, `/readyz`.
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
pub mod clock;
pub mod config;
pub mod demo;
pub mod dlq;
pub mod envelope;
pub mod exec;
pub mod failure;
pub mod headers;
pub mod http;
pub mod json_lines;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod reload;
pub mod scaffold;
pub mod shutdown;
pub mod status;
pub mod supervisor;
