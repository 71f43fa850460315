//! The names of the `sluice.*` record headers, written once: provenance on
//! every output (unless a pipeline turns it off) and the context of a dead
//! letter (see [`crate::dlq`] for the envelope).

/// The plugin (chain step) that produced an output or failed an event.
pub const PLUGIN: &str = "sluice.plugin";
/// `sha256:<hex>` of that plugin's `.wasm`: which version it was.
pub const DIGEST: &str = "sluice.plugin.digest";
/// A dead letter's failure kind (`invalid`, `trap`, ...).
pub const KIND: &str = "sluice.error.kind";
/// What went wrong, for people.
pub const MESSAGE: &str = "sluice.error.message";
/// `sluice demo`'s run on the orders it writes; their outputs and dead
/// letters inherit it, so a demo reads back only its own records.
pub const DEMO_RUN: &str = "sluice.demo.run";
/// The pipeline's name.
pub const PIPELINE: &str = "sluice.pipeline";
/// The topic the event was read from.
pub const SOURCE_TOPIC: &str = "sluice.source.topic";
/// Its partition (decimal).
pub const SOURCE_PARTITION: &str = "sluice.source.partition";
/// Its offset (decimal).
pub const SOURCE_OFFSET: &str = "sluice.source.offset";
/// Its timestamp in ms since the epoch, when it had one.
pub const SOURCE_TIMESTAMP: &str = "sluice.source.timestamp";
/// How many times the event was processed (decimal).
pub const ATTEMPTS: &str = "sluice.attempts";
/// When it was dead-lettered, ms since the epoch.
pub const FAILED_AT: &str = "sluice.failed.at";
/// On the outputs and dead letters of `sluice dlq redrive`: the dead
/// letter they came from, `<dlq topic>/<partition>/<offset>`.
pub const REDRIVEN_FROM: &str = "sluice.redriven.from";

/// The provenance headers of an output, which a pipeline writes anew (and
/// drops when inherited).
pub const ORIGIN: [&str; 2] = [PLUGIN, DIGEST];
