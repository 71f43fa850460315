//! The pipeline file: its TOML schema, `${VAR}` interpolation, and the
//! validated, resolved [`Config`] the rest of Sluice runs from.
//!
//! A file is read in three steps, each reporting positions in the file as
//! written (`FILE:LINE:COL: message`):
//!
//! 1. `interpolate`: `${VAR}` and `${VAR:-default}` (the default also
//!    when `VAR` is empty, as in the shell) are replaced with the
//!    environment's values, so containers can configure brokers and topics.
//!    Values are escaped for TOML double-quoted strings: write `"${VAR}"`,
//!    or a bare `${VAR}` for a number; in a single-quoted string `${` is an
//!    error. `$${` is a literal `${`; comments are not substituted.
//! 2. `raw`: the TOML is deserialized into structs that mirror it, with
//!    unknown keys rejected.
//! 3. `build`: every rule is checked and every problem collected, so one
//!    round trip fixes a file; relative paths are resolved against the
//!    directory of the file and defaults are filled in.
//!
//! Whether the plugin files exist is left to the caller, who loads them
//! anyway; [`Config::missing_plugins`] reports them in the same form.
//!
//! # Example
//!
//! ```toml
//! [kafka]
//! brokers = "${KAFKA_BROKERS:-embedded}"  # "embedded": in-process mock cluster
//! [plugins]
//! dir = "../plugins"                      # relative to this file
//! [[pipeline]]
//! name = "orders"
//! inputs = ["orders"]
//! plugin = "order-enrich"                 # <plugins.dir>/order-enrich.wasm
//! output = "orders-enriched"
//! dlq = "orders-dlq"
//! ```
//!
//! `config/demo.toml` documents every key.

mod build;
mod diff;
mod error;
mod interpolate;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plugin::{InstanceSettings, Limits, Sandbox, StateLimits, StepPlugin};

pub use crate::kafka::{Brokers, KafkaConfig};
pub use diff::{PipelineDiff, diff_pipelines, restart_required};
pub use error::{ConfigError, Problem, display_problems};

/// Default of `batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Default of `workers`.
pub const DEFAULT_WORKERS: usize = 1;
/// Default of `max_in_flight`. A record stays in flight for the worker's
/// queue plus `linger.ms` plus a broker round trip (~20 ms on the mock
/// broker): 2048 per partition capped one partition at ~300k events/s;
/// this allows ~1.5M/s.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32 * 1024;
/// Default of `partitions`.
pub const DEFAULT_PARTITIONS: i32 = 3;
/// Default of `kafka.client_id`.
pub const DEFAULT_CLIENT_ID: &str = "sluice";
/// Default of `origin_headers`.
pub const DEFAULT_ORIGIN_HEADERS: bool = true;
/// Default of `commit_interval_ms` (exactly-once): Kafka Streams' default
/// under exactly-once too.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The changelog topic of a pipeline whose file names none.
pub fn default_changelog(group_id: &str) -> String {
    format!("{group_id}-changelog")
}

/// What a pipeline promises about its inputs' effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// An input offset is committed once everything the event led to is
    /// acknowledged; a crash repeats events, never skips one.
    #[default]
    AtLeastOnce,
    /// A batch's outputs, dead letters, changelog records and input
    /// offsets commit in one Kafka transaction.
    ExactlyOnce,
}

impl Delivery {
    /// As written in a pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::ExactlyOnce => "exactly-once",
        }
    }
}

/// What a restore does with a changelog record Sluice did not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCorrupt {
    /// The partition stops, and the log says which record and why.
    #[default]
    Stop,
    /// The record is skipped, with a warning naming its offset.
    Skip,
}

/// `[pipeline.state]`: the state of the pipeline's stateful plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The compacted topic every state change is written to, partitioned
    /// like the inputs.
    pub changelog: String,
    /// Bounds on each step's state.
    pub limits: StateLimits,
    /// What a restore does with a record it cannot read.
    pub on_corrupt: OnCorrupt,
}

impl StateConfig {
    /// The defaults for a pipeline of group `group_id`.
    pub fn new(group_id: &str) -> Self {
        StateConfig {
            changelog: default_changelog(group_id),
            limits: StateLimits::default(),
            on_corrupt: OnCorrupt::default(),
        }
    }
}

/// The consumer group of a pipeline that names none.
pub fn default_group_id(pipeline: &str) -> String {
    format!("sluice.{pipeline}")
}

/// A loaded, validated pipeline file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file, as given to [`Config::load`]; used in messages.
    pub path: PathBuf,
    /// The Kafka connection.
    pub kafka: KafkaConfig,
    /// Where the plugins live, absolute.
    pub plugins_dir: PathBuf,
    /// The pipelines, in file order; names are unique.
    pub pipelines: Vec<PipelineConfig>,
    /// Positions of what later checks may report against.
    sites: Vec<PipelineSites>,
}

/// Positions in the file of one pipeline's parts. Kept out of
/// [`PipelineConfig`] so moving a pipeline in the file does not count as
/// changing it.
#[derive(Debug, Clone, Default)]
struct PipelineSites {
    /// Each step's plugin name.
    steps: Vec<(usize, usize)>,
}

/// Compares what the config says, not where it says it.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.kafka == other.kafka
            && self.plugins_dir == other.plugins_dir
            && self.pipelines == other.pipelines
    }
}

/// One `[[pipeline]]`: where events come from, which plugins they go
/// through, where results and failures go.
///
/// A reload restarts a pipeline iff its `PipelineConfig` differs from the
/// running one.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Unique name, `[A-Za-z0-9._-]+`.
    pub name: String,
    /// Topics consumed; at least one.
    pub inputs: Vec<String>,
    /// The plugins, run in order, each on the outputs of the previous one;
    /// one step for `plugin = ...`.
    pub steps: Vec<StepConfig>,
    /// The result topic of outputs that name none.
    pub output: String,
    /// The dead-letter topic.
    pub dlq: String,
    /// Further topics plugins may write to.
    pub allowed_outputs: BTreeSet<String>,
    /// Consumer group.
    pub group_id: String,
    /// Most events per plugin call.
    pub batch_size: usize,
    /// Threads running this pipeline's plugin instances.
    pub workers: usize,
    /// Events read and not yet done (processed and every record
    /// acknowledged), shared out over the assigned partitions; each
    /// partition may still have 8 batches in flight. What bounds the
    /// memory a pipeline's events take.
    pub max_in_flight: usize,
    /// Partitions of the pipeline's topics that Sluice creates when they
    /// are missing (existing topics keep theirs).
    pub partitions: i32,
    /// Whether every output carries the `sluice.plugin` and
    /// `sluice.plugin.digest` headers (dead letters always do).
    pub origin_headers: bool,
    /// Limits of each plugin instance.
    pub limits: Limits,
    /// Retries of events a plugin calls `retryable`.
    pub retry: RetryPolicy,
    /// What plugins may see.
    pub sandbox: Sandbox,
    /// At-least-once or exactly-once.
    pub delivery: Delivery,
    /// Exactly-once: how often the open transaction commits.
    pub commit_interval: Duration,
    /// The state of stateful plugins.
    pub state: StateConfig,
}

impl PipelineConfig {
    /// A pipeline with every optional setting at its default: what a file
    /// setting only these fields gives.
    pub fn new(
        name: &str,
        inputs: Vec<String>,
        steps: Vec<StepConfig>,
        output: &str,
        dlq: &str,
    ) -> Self {
        PipelineConfig {
            name: name.to_owned(),
            inputs,
            steps,
            output: output.to_owned(),
            dlq: dlq.to_owned(),
            allowed_outputs: BTreeSet::new(),
            group_id: default_group_id(name),
            batch_size: DEFAULT_BATCH_SIZE,
            workers: DEFAULT_WORKERS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            partitions: DEFAULT_PARTITIONS,
            origin_headers: DEFAULT_ORIGIN_HEADERS,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            sandbox: Sandbox::default(),
            delivery: Delivery::default(),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            state: StateConfig::new(&default_group_id(name)),
        }
    }

    /// The name each step's state goes by in the changelog: its plugin's
    /// name, and `<plugin>#<n>` for the n-th use of a plugin the chain
    /// runs more than once. Names, not positions, so adding a step in
    /// front keeps the others' state.
    pub fn state_names(&self) -> Vec<String> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        self.steps
            .iter()
            .map(|step| {
                let n = seen.entry(step.plugin.as_str()).or_default();
                *n += 1;
                if *n == 1 {
                    step.plugin.clone()
                } else {
                    format!("{}#{n}", step.plugin)
                }
            })
            .collect()
    }

    /// Whether a plugin of this pipeline may write to `topic`.
    pub fn allows(&self, topic: &str) -> bool {
        topic == self.output || self.allowed_outputs.contains(topic)
    }

    /// The topics a plugin may write to: `output`, then `allowed_outputs`.
    pub fn allowed_topics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.output.as_str()).chain(self.allowed_outputs.iter().map(String::as_str))
    }

    /// The plugins of this pipeline's chain, in order.
    pub fn step_plugins(&self) -> impl Iterator<Item = StepPlugin<'_>> {
        self.steps.iter().map(|step| StepPlugin {
            pipeline: &self.name,
            plugin: &step.plugin,
            path: &step.path,
        })
    }

    /// What a fresh instance of `step` (one of this pipeline's) needs.
    pub fn instance_settings(&self, step: &StepConfig) -> InstanceSettings {
        InstanceSettings {
            limits: self.limits.clone(),
            sandbox: self.sandbox.clone(),
            config: step.config.clone(),
            metrics: crate::metrics::global().instance(&self.name, &step.plugin),
        }
    }

    /// Every topic this pipeline touches: inputs, output, allowed outputs
    /// and DLQ, sorted and without repeats (for creating them on the
    /// embedded broker).
    pub fn topics(&self) -> BTreeSet<&str> {
        self.inputs
            .iter()
            .chain([&self.output, &self.dlq])
            .chain(&self.allowed_outputs)
            .map(String::as_str)
            .collect()
    }
}

/// One plugin of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepConfig {
    /// Its name, the file name without `.wasm`.
    pub plugin: String,
    /// `<plugins_dir>/<plugin>.wasm`.
    pub path: PathBuf,
    /// Handed to the plugin's `init`, sorted by key.
    pub config: Vec<(String, String)>,
}

/// How events that failed with `retryable` are retried before they go to the
/// DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry.
    pub backoff: Duration,
    /// Cap on the delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(5000),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempt` failed tries (1-based): `backoff` doubled
    /// for each try after the first, capped at `max_backoff`. Zero for 0.
    pub fn backoff_for(&self, attempt: u32) -> Duration {
        let Some(doublings) = attempt.checked_sub(1) else {
            return Duration::ZERO;
        };
        2u32.checked_pow(doublings)
            .and_then(|factor| self.backoff.checked_mul(factor))
            .map_or(self.max_backoff, |delay| delay.min(self.max_backoff))
    }
}

impl Config {
    /// Reads, interpolates (from the process environment) and validates the
    /// file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            error: source,
        })?;
        Config::parse(&text, path)
    }

    /// Interpolates (from the process environment) and validates `text`, the
    /// content of `path`. `path` names the file in messages and is where
    /// relative paths start from.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, path, &|name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with `env` standing in for the process environment,
    /// both for `${VAR}` and for sandbox `env` grants.
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let source =
            interpolate::interpolate(text, env).map_err(|problems| ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })?;
        let raw: raw::RawFile = toml::from_str(&source.text).map_err(|error| {
            let problem = match error.span() {
                Some(span) => source.problem(span.start, error.message()),
                None => Problem::whole_file(error.message()),
            };
            ConfigError::Syntax {
                path: path.to_owned(),
                problem,
            }
        })?;
        build::build(raw, &source, path, env)
    }

    /// The pipeline called `name`.
    pub fn pipeline(&self, name: &str) -> Option<&PipelineConfig> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// A problem for every plugin file that does not exist, at the plugin's
    /// name in the file.
    pub fn missing_plugins(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (index, pipeline) in self.pipelines.iter().enumerate() {
            for (step_index, step) in pipeline.steps.iter().enumerate() {
                let why = match std::fs::metadata(&step.path) {
                    Ok(meta) if meta.is_file() => continue,
                    Ok(_) => "is not a file".to_owned(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        "does not exist".to_owned()
                    }
                    Err(e) => format!("cannot be read: {e}"),
                };
                let (line, column) = self
                    .sites
                    .get(index)
                    .and_then(|sites| sites.steps.get(step_index))
                    .copied()
                    .unwrap_or((0, 0));
                problems.push(Problem::new(
                    line,
                    column,
                    format!(
                        "pipeline `{}`: plugin `{}` not found: {} {why}",
                        pipeline.name,
                        step.plugin,
                        step.path.display()
                    ),
                ));
            }
        }
        problems
    }
}
