//! Test support shared by the end-to-end tests.
//!
//! From a `[[test]]` whose `path` is in this `tests/` directory: `mod support;`
//! then `support::tansu::Tansu`. From anywhere else:
//! `#[path = "<relative>/tests/support/tansu.rs"] mod tansu;`.
//!
//! - [`tansu`]: a real Kafka-compatible broker per test;
//! - [`kafka`]: rdkafka clients: produce with delivery reports, read topics
//!   back, committed offsets of a group;
//! - [`sluice`]: the `sluice` binary as a child process, test pipeline files,
//!   and a [`sluice::Scene`] (broker + temporary directory).

pub mod kafka;
pub mod sluice;
pub mod tansu;
