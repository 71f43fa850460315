//! What Sluice's integration tests (`tests/*.rs`) and its benchmark
//! (`runtime/bench`) share. Nothing here is part of Sluice itself.
//!
//! - [`tansu`]: a real Kafka-compatible broker per test, on a free
//!   loopback port, killed when dropped;
//! - [`kafka`]: the library's Kafka tools (`sluice::kafka`) in the shape
//!   tests want: panicking with context, records as text, waiting helpers;
//! - [`net`]: a loopback listener that counts connections, for the
//!   sandbox's network tests;
//! - [`sluice`]: the `sluice` binary as a child process (with its HTTP
//!   endpoint, to wait on its state), test pipeline files, and a
//!   [`sluice::Scene`] (broker + temporary directory).
//!
//! See `tests/kit/README.md` for tansu's quirks and how to start a broker
//! by hand.

pub mod kafka;
pub mod net;
pub mod sluice;
pub mod tansu;
