//! The pipeline file as written: serde structs that mirror the TOML one to
//! one. Nothing here is validated or resolved; values that a problem may be
//! reported against keep their byte span, and numbers are read as `i64` so
//! an out-of-range value becomes one problem among all the others instead
//! of a type error that hides them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A flat `key = value` table whose values are strings, numbers or booleans.
pub(super) type FlatTable = BTreeMap<String, Spanned<toml::Value>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// `[kafka]`: the Kafka connection shared by every pipeline of the file.
    pub kafka: RawKafka,
    /// `[plugins]`: where the plugin components live.
    pub plugins: RawPlugins,
    /// `[[pipeline]]`: the pipelines, one table each.
    #[serde(default)]
    pub pipeline: Vec<Spanned<RawPipeline>>,
}

/// `[kafka]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafka {
    /// `host:port[,host:port...]`, or `embedded` for librdkafka's
    /// in-process mock cluster.
    pub brokers: Spanned<String>,
    /// The Kafka `client.id` of every consumer and producer; default `sluice`.
    pub client_id: Option<Spanned<String>>,
    /// What tells this process apart from the others of its groups in
    /// exactly-once transactional ids; default `$SLUICE_INSTANCE_ID`, else
    /// the host name.
    pub instance_id: Option<Spanned<String>>,
    /// `[kafka.consumer]`: librdkafka consumer properties, passed through.
    #[serde(default)]
    pub consumer: FlatTable,
    /// `[kafka.producer]`: librdkafka producer properties, passed through.
    #[serde(default)]
    pub producer: FlatTable,
}

/// `[plugins]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugins {
    /// The directory holding `<plugin>.wasm` files; relative to the
    /// directory of the config file.
    pub dir: Spanned<String>,
}

/// One `[[pipeline]]` table. The fields the pipeline cannot do without are
/// still optional here so that a missing one is reported together with
/// every other problem of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    /// Unique name: `[A-Za-z0-9._-]+`. Required.
    pub name: Option<Spanned<String>>,
    /// Topics to consume. Required, at least one.
    pub inputs: Option<Spanned<Vec<Spanned<String>>>>,
    /// The plugin to run, `<plugins.dir>/<plugin>.wasm`. Exactly one of
    /// `plugin` and `chain` is required.
    pub plugin: Option<Spanned<String>>,
    /// `[pipeline.config]`: the init config of `plugin` (not with `chain`).
    pub config: Option<Spanned<FlatTable>>,
    /// `[[pipeline.chain]]`: plugins run one after the other, each on the
    /// outputs of the previous one.
    pub chain: Option<Spanned<Vec<Spanned<RawStep>>>>,
    /// The default result topic. Required.
    pub output: Option<Spanned<String>>,
    /// The dead-letter topic. Required.
    pub dlq: Option<Spanned<String>>,
    /// Further topics plugins may write to; `output` is always allowed.
    #[serde(default)]
    pub allowed_outputs: Vec<Spanned<String>>,
    /// Consumer group; default `sluice.<name>`.
    pub group_id: Option<Spanned<String>>,
    /// Most events handed to one plugin call; default 256.
    pub batch_size: Option<Spanned<i64>>,
    /// Threads running this pipeline's plugin instances; default 1.
    pub workers: Option<Spanned<i64>>,
    /// Events read and not yet done, over all partitions; default 32768.
    pub max_in_flight: Option<Spanned<i64>>,
    /// Partitions of the pipeline's topics Sluice creates when they are
    /// missing; default 3.
    pub partitions: Option<Spanned<i64>>,
    /// Whether outputs carry the `sluice.plugin` and `sluice.plugin.digest`
    /// headers; default true.
    pub origin_headers: Option<bool>,
    /// `[pipeline.limits]`: resource limits of each plugin instance.
    pub limits: Option<RawLimits>,
    /// `[pipeline.retry]`: retries of events a plugin calls `retryable`.
    pub retry: Option<RawRetry>,
    /// `[pipeline.sandbox]`: what plugins may see; default nothing.
    pub sandbox: Option<RawSandbox>,
    /// `at-least-once` (default) or `exactly-once`.
    pub delivery: Option<Spanned<String>>,
    /// Exactly-once: how often the open transaction commits, in
    /// milliseconds; default 100.
    pub commit_interval_ms: Option<Spanned<i64>>,
    /// `[pipeline.state]`: the state of plugins that keep state.
    pub state: Option<RawState>,
}

/// `[pipeline.state]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    /// The compacted changelog topic; default `<group_id>-changelog`.
    pub changelog: Option<Spanned<String>>,
    /// Largest key in bytes; default 4096.
    pub max_key_bytes: Option<Spanned<i64>>,
    /// Largest value in bytes; default 1 MiB.
    pub max_value_bytes: Option<Spanned<i64>>,
    /// Most keys of one step's state in one partition; default 1,000,000.
    pub max_keys: Option<Spanned<i64>>,
    /// Most bytes (keys + values) of one step's state in one partition;
    /// default 256 MiB.
    pub max_bytes: Option<Spanned<i64>>,
    /// What a restore does with a changelog record Sluice did not write:
    /// `stop` (default: the partition stops and says why) or `skip`.
    pub on_corrupt: Option<Spanned<String>>,
}

/// One `[[pipeline.chain]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    /// The plugin to run, `<plugins.dir>/<plugin>.wasm`.
    pub plugin: Spanned<String>,
    /// Its init config.
    #[serde(default)]
    pub config: FlatTable,
}

/// `[pipeline.limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    /// Linear-memory cap in MiB, 1..=4096; default 64.
    pub memory_mib: Option<Spanned<i64>>,
    /// Budget of one plugin call in milliseconds, at least 1; default 1000.
    pub deadline_ms: Option<Spanned<i64>>,
    /// Largest output record (key + value + headers) in bytes; default 1 MiB.
    pub max_output_bytes: Option<Spanned<i64>>,
    /// Most outputs of one event, at least 1; default 1000.
    pub max_outputs_per_event: Option<Spanned<i64>>,
}

/// `[pipeline.retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    /// Tries in all, the first one included; default 3.
    pub attempts: Option<Spanned<i64>>,
    /// Delay before the first retry in milliseconds; doubles each retry.
    /// Default 100.
    pub backoff_ms: Option<Spanned<i64>>,
    /// Cap on the delay in milliseconds; default 5000.
    pub max_backoff_ms: Option<Spanned<i64>>,
}

/// `[pipeline.sandbox]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSandbox {
    /// Environment variables: `NAME` passes the host's value (read at load
    /// time), `NAME=VALUE` sets one.
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
    /// Host directories to make visible.
    #[serde(default)]
    pub dirs: Vec<Spanned<RawDir>>,
    /// Whether plugins may open sockets and resolve names.
    #[serde(default)]
    pub network: bool,
}

/// One entry of `dirs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDir {
    /// The directory on the host; relative to the config file's directory.
    pub host: Spanned<String>,
    /// Where the plugin sees it; an absolute guest path such as `/data`.
    pub guest: Spanned<String>,
    /// Whether the plugin may write there; default false.
    #[serde(default)]
    pub writable: bool,
}
