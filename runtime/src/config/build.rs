//! From the file as written to a [`Config`]: every rule checked, every
//! problem collected (a file is fixed in one round trip, not one error at a
//! time), defaults filled in and relative paths resolved.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{ConfigError, Problem};
use super::interpolate::Source;
use super::raw::{FlatTable, RawFile, RawPipeline, RawStep};
use super::{
    Config, DEFAULT_BATCH_SIZE, DEFAULT_COMMIT_INTERVAL, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_ORIGIN_HEADERS, DEFAULT_PARTITIONS, DEFAULT_WORKERS, PipelineConfig, PipelineSites,
    StepConfig, default_group_id,
};
use crate::plugin::Sandbox;

mod kafka;
mod settings;

/// A plugin's `init` config, as [`StepConfig::config`] holds it.
type InitConfig = Vec<(String, String)>;

/// Longest Kafka topic name.
const MAX_TOPIC_LEN: usize = 249;

/// Collects problems at positions of the substituted text.
struct Checker<'s, 'a> {
    source: &'s Source<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_, '_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(self.source.problem(span.start, message));
    }

    fn position(&self, span: Range<usize>) -> (usize, usize) {
        self.source.position(span.start)
    }
}

pub(super) fn build(
    raw: RawFile,
    source: &Source<'_>,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut check = Checker {
        source,
        problems: Vec::new(),
    };
    let base = base_dir(path);
    let kafka = kafka::connection(&mut check, raw.kafka, env);
    let plugins_dir = {
        let dir = &raw.plugins.dir;
        if dir.get_ref().trim().is_empty() {
            check.at(dir.span(), "`plugins.dir` is empty");
        }
        base.join(dir.get_ref())
    };
    if raw.pipeline.is_empty() {
        check.problems.push(Problem::whole_file(
            "no pipeline: add a `[[pipeline]]` table",
        ));
    }
    let mut pipelines = Vec::with_capacity(raw.pipeline.len());
    let mut sites = Vec::with_capacity(raw.pipeline.len());
    // Name and group of the pipelines so far, with where they were defined.
    let mut names: HashMap<String, (usize, usize)> = HashMap::new();
    let mut groups: HashMap<String, String> = HashMap::new();
    for (index, table) in raw.pipeline.into_iter().enumerate() {
        let (pipeline, site) = pipeline(&mut check, table, index, &base, &plugins_dir, env);
        if let Some((line, _)) = names.get(&pipeline.name) {
            if !pipeline.name.is_empty() {
                let message = format!(
                    "pipeline `{}` is defined twice (first at line {line})",
                    pipeline.name
                );
                check
                    .problems
                    .push(Problem::new(site.name.0, site.name.1, message));
            }
        } else {
            names.insert(pipeline.name.clone(), site.name);
            if let Some(other) = groups.get(&pipeline.group_id) {
                // Two pipelines in one group would each get only some of the
                // partitions of their inputs.
                let message = format!(
                    "pipeline `{}`: group_id `{}` is already used by pipeline `{other}`; each \
                     pipeline needs its own consumer group",
                    pipeline.name, pipeline.group_id
                );
                check
                    .problems
                    .push(Problem::new(site.group.0, site.group.1, message));
            } else {
                groups.insert(pipeline.group_id.clone(), pipeline.name.clone());
            }
        }
        pipelines.push(pipeline);
        sites.push(PipelineSites { steps: site.steps });
    }
    if check.problems.is_empty() {
        Ok(Config {
            path: path.to_owned(),
            kafka,
            plugins_dir,
            pipelines,
            sites,
        })
    } else {
        let mut problems = check.problems;
        // Stable: problems at one position keep the order they were found in.
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }
}

/// The directory relative paths start from: the config file's, made
/// absolute so that the result does not depend on a later working directory.
fn base_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

/// Where a pipeline's parts are, for messages about it found later.
struct Site {
    name: (usize, usize),
    group: (usize, usize),
    steps: Vec<(usize, usize)>,
}

/// Checks one pipeline; every message starts with which pipeline it is.
struct PipelineCheck<'c, 's, 'a> {
    check: &'c mut Checker<'s, 'a>,
    /// `pipeline `name`` (or `pipeline #N` when it has none).
    label: String,
    /// Problems about the pipeline as a whole point here: at its name, or
    /// at its table when it has none.
    here: Range<usize>,
}

fn pipeline(
    check: &mut Checker<'_, '_>,
    table: Spanned<RawPipeline>,
    index: usize,
    base: &Path,
    plugins_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> (PipelineConfig, Site) {
    let table_span = table.span();
    let raw = table.into_inner();
    let (name, here) = match &raw.name {
        Some(name) => (name.get_ref().clone(), name.span()),
        None => {
            check.at(table_span.clone(), "pipeline has no `name`");
            (String::new(), table_span)
        }
    };
    let label = if name.is_empty() {
        format!("pipeline #{}", index + 1)
    } else {
        format!("pipeline `{name}`")
    };
    let mut p = PipelineCheck { check, label, here };
    if raw.name.is_some() {
        if name.is_empty() {
            p.check.at(p.here.clone(), "pipeline name is empty");
        } else if !is_name(&name) {
            p.at(
                p.here.clone(),
                "the name may only contain ASCII letters, digits, `.`, `_` and `-`",
            );
        }
    }

    let output = p.required_topic("output", raw.output);
    let dlq = p.required_topic("dlq", raw.dlq);
    if !output.get_ref().is_empty() && output.get_ref() == dlq.get_ref() {
        let message = format!("`dlq` is the same topic as `output` (`{}`)", dlq.get_ref());
        p.at(dlq.span(), message);
    }
    let mut allowed_outputs = BTreeSet::new();
    for topic in raw.allowed_outputs {
        p.topic("allowed_outputs", &topic);
        allowed_outputs.insert(topic.into_inner());
    }
    let inputs = p.inputs(
        raw.inputs,
        output.get_ref(),
        dlq.get_ref(),
        &allowed_outputs,
    );

    let (steps, step_sites) = p.steps(raw.plugin, raw.config, raw.chain, plugins_dir);

    let group = raw.group_id.unwrap_or_else(|| {
        // The default points at the name, whose value it is made from.
        Spanned::new(p.here.clone(), default_group_id(&name))
    });
    if group.get_ref().trim().is_empty() {
        p.at(group.span(), "`group_id` is empty");
    }

    let batch_size = p.count(raw.batch_size, "batch_size", DEFAULT_BATCH_SIZE, None);
    let workers = p.count(raw.workers, "workers", DEFAULT_WORKERS, None);
    let max_in_flight = p.count(
        raw.max_in_flight,
        "max_in_flight",
        DEFAULT_MAX_IN_FLIGHT,
        None,
    );
    let partitions = p.count(
        raw.partitions,
        "partitions",
        DEFAULT_PARTITIONS,
        Some(i64::from(i32::MAX)),
    );
    let limits = p.limits(raw.limits);
    let retry = p.retry(raw.retry);
    let sandbox = match raw.sandbox {
        Some(sandbox) => p.sandbox(sandbox, base, env),
        None => Sandbox::default(),
    };
    let delivery = p.delivery(raw.delivery);
    let commit_interval = p.millis(
        raw.commit_interval_ms,
        "commit_interval_ms",
        DEFAULT_COMMIT_INTERVAL,
    );
    let state = p.state(raw.state, group.get_ref());
    if let Some(clash) = inputs
        .iter()
        .chain([output.get_ref(), dlq.get_ref()])
        .chain(&allowed_outputs)
        .find(|topic| **topic == state.changelog)
    {
        let message = format!(
            "`state.changelog` is the same topic as `{clash}`; the changelog needs a topic of its own"
        );
        p.at(p.here.clone(), message);
    }

    let site = Site {
        name: p.check.position(p.here.clone()),
        group: p.check.position(group.span()),
        steps: step_sites,
    };
    let config = PipelineConfig {
        name,
        inputs,
        steps,
        output: output.into_inner(),
        dlq: dlq.into_inner(),
        allowed_outputs,
        group_id: group.into_inner(),
        batch_size,
        workers,
        max_in_flight,
        partitions,
        origin_headers: raw.origin_headers.unwrap_or(DEFAULT_ORIGIN_HEADERS),
        limits,
        retry,
        sandbox,
        delivery,
        commit_interval,
        state,
    };
    (config, site)
}

impl PipelineCheck<'_, '_, '_> {
    fn at(&mut self, span: Range<usize>, message: impl std::fmt::Display) {
        let message = format!("{}: {message}", self.label);
        self.check.at(span, message);
    }

    fn topic(&mut self, field: &str, topic: &Spanned<String>) {
        let name = topic.get_ref();
        let why = if name.is_empty() {
            "is empty".to_owned()
        } else if name.len() > MAX_TOPIC_LEN {
            format!("is longer than {MAX_TOPIC_LEN} characters")
        } else if name == "." || name == ".." {
            "may not be `.` or `..`".to_owned()
        } else if !is_name(name) {
            "may only contain ASCII letters, digits, `.`, `_` and `-`".to_owned()
        } else {
            return;
        };
        self.at(topic.span(), format!("`{field}`: topic `{name}` {why}"));
    }

    /// `value`, or an empty name pointing at the pipeline if it is missing.
    fn required_topic(&mut self, field: &str, value: Option<Spanned<String>>) -> Spanned<String> {
        match value {
            Some(topic) => {
                self.topic(field, &topic);
                topic
            }
            None => {
                self.at(self.here.clone(), format!("`{field}` is missing"));
                Spanned::new(self.here.clone(), String::new())
            }
        }
    }

    fn inputs(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        output: &str,
        dlq: &str,
        allowed_outputs: &BTreeSet<String>,
    ) -> Vec<String> {
        let list = match raw {
            None => {
                self.at(self.here.clone(), "`inputs` is missing");
                return Vec::new();
            }
            Some(list) if list.get_ref().is_empty() => {
                self.at(list.span(), "`inputs` is empty; list at least one topic");
                return Vec::new();
            }
            Some(list) => list.into_inner(),
        };
        let mut inputs: Vec<String> = Vec::with_capacity(list.len());
        for topic in list {
            self.topic("inputs", &topic);
            let (span, name) = (topic.span(), topic.into_inner());
            if inputs.contains(&name) {
                self.at(span.clone(), format!("input `{name}` is listed twice"));
            }
            // Writing to what it reads would feed a pipeline its own results
            // (or failures) forever.
            let loop_via = if name.is_empty() {
                None
            } else if name == output {
                Some("`output`")
            } else if name == dlq {
                Some("`dlq`")
            } else if allowed_outputs.contains(&name) {
                Some("in `allowed_outputs`")
            } else {
                None
            };
            if let Some(via) = loop_via {
                self.at(
                    span,
                    format!(
                        "input `{name}` is also {via}: the pipeline would consume what it \
                         writes (a loop)"
                    ),
                );
            }
            inputs.push(name);
        }
        inputs
    }

    /// The plugins to run, from `plugin` + `config` or from `chain`, and
    /// where each plugin name is.
    fn steps(
        &mut self,
        plugin: Option<Spanned<String>>,
        config: Option<Spanned<FlatTable>>,
        chain: Option<Spanned<Vec<Spanned<RawStep>>>>,
        plugins_dir: &Path,
    ) -> (Vec<StepConfig>, Vec<(usize, usize)>) {
        // Config values are checked whatever else is wrong, so their
        // problems come out in this round too.
        let config = config.map(|table| {
            let span = table.span();
            (span, self.plugin_config(table.into_inner()))
        });
        let named: Vec<(Spanned<String>, InitConfig)> = match (plugin, chain) {
            (Some(plugin), Some(_)) => {
                self.at(plugin.span(), "both `plugin` and `chain` are set; use one");
                Vec::new()
            }
            (None, None) => {
                self.at(self.here.clone(), "neither `plugin` nor `chain` is set");
                Vec::new()
            }
            (Some(plugin), None) => {
                vec![(plugin, config.map(|(_, c)| c).unwrap_or_default())]
            }
            (None, Some(chain)) => {
                if let Some((span, _)) = config {
                    self.at(
                        span,
                        "`config` cannot be used with `chain`; give each step its own `config`",
                    );
                }
                if chain.get_ref().is_empty() {
                    self.at(chain.span(), "`chain` is empty; list at least one plugin");
                }
                chain
                    .into_inner()
                    .into_iter()
                    .map(|step| {
                        let step = step.into_inner();
                        (step.plugin, self.plugin_config(step.config))
                    })
                    .collect()
            }
        };
        let mut steps = Vec::with_capacity(named.len());
        let mut sites = Vec::with_capacity(named.len());
        for (plugin, config) in named {
            self.plugin_name(&plugin);
            sites.push(self.check.position(plugin.span()));
            let plugin = plugin.into_inner();
            steps.push(StepConfig {
                path: plugins_dir.join(format!("{plugin}.wasm")),
                plugin,
                config,
            });
        }
        (steps, sites)
    }

    fn plugin_name(&mut self, plugin: &Spanned<String>) {
        let name = plugin.get_ref();
        let why = if name.is_empty() {
            "is empty"
        } else if name.contains('/') || name.contains('\\') || name.contains("..") {
            // The name becomes a file name that must stay in plugins.dir.
            "must be a file name in `plugins.dir`, without `/` or `..`"
        } else if name.ends_with(".wasm") {
            "is given without the `.wasm` suffix"
        } else if !is_name(name) || name.starts_with('.') {
            "may only contain ASCII letters, digits, `.`, `_` and `-`, and not start with `.`"
        } else {
            return;
        };
        self.at(plugin.span(), format!("plugin `{name}` {why}"));
    }

    /// The `init` config: sorted by key (a `BTreeMap` already is), values as
    /// strings.
    fn plugin_config(&mut self, table: FlatTable) -> InitConfig {
        let mut config = Vec::with_capacity(table.len());
        for (key, value) in table {
            match kafka::flat_value(value.get_ref()) {
                Ok(text) => config.push((key, text)),
                Err(kind) => self.at(
                    value.span(),
                    format!(
                        "config `{key}` is {kind}; plugin config is flat `key = value` pairs \
                         of strings, numbers or booleans"
                    ),
                ),
            }
        }
        config
    }
}

/// Pipeline, topic and plugin names: `[A-Za-z0-9._-]+`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
