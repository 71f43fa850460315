//! The set of running pipelines of one config file: loading and checking
//! plugins, starting the embedded broker when asked, starting and stopping
//! pipelines together.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::config::{
    Brokers, Config, PipelineConfig, PipelineDiff, diff_pipelines, display_problems,
    restart_required,
};
use crate::kafka::embedded::EmbeddedKafka;
use crate::pipeline::{Pipeline, PreparedPipeline};
use crate::plugin::compiled::digest_of;
use crate::plugin::{CompiledPlugin, PluginEngine, PluginRunner};
use crate::status::{Outcome, Reload, Status, now_ms};
use crate::{kafka, metrics};

/// Compiled plugins by file, shared by the pipelines that use them.
pub type PluginSet = HashMap<PathBuf, Arc<CompiledPlugin>>;

/// Compiles every plugin the config names; on failure, reports every
/// problem at once (missing files with their place in the config, then
/// plugins that do not compile or do not implement the world).
pub fn load_plugins(engine: &PluginEngine, config: &Config) -> anyhow::Result<PluginSet> {
    let missing = config.missing_plugins();
    if !missing.is_empty() {
        anyhow::bail!("{}", display_problems(&config.path, &missing));
    }
    let mut plugins = PluginSet::new();
    let mut errors = Vec::new();
    for pipeline in &config.pipelines {
        for step in &pipeline.steps {
            if plugins.contains_key(&step.path) {
                continue;
            }
            match CompiledPlugin::load(engine, &step.plugin, &step.path) {
                Ok(plugin) => {
                    plugins.insert(step.path.clone(), Arc::new(plugin));
                }
                Err(e) => errors.push(format!("pipeline `{}`: {e}", pipeline.name)),
            }
        }
    }
    if errors.is_empty() {
        Ok(plugins)
    } else {
        errors.dedup();
        anyhow::bail!("{}", errors.join("\n"))
    }
}

/// The plugins of one pipeline, in chain order.
pub(crate) fn chain_plugins(
    plugins: &PluginSet,
    pipeline: &PipelineConfig,
) -> anyhow::Result<Vec<Arc<CompiledPlugin>>> {
    pipeline
        .steps
        .iter()
        .map(|step| {
            plugins.get(&step.path).cloned().with_context(|| {
                format!(
                    "pipeline `{}`: plugin `{}` is not loaded",
                    pipeline.name, step.plugin
                )
            })
        })
        .collect()
}

/// `sluice check`: validates the config and starts one instance of every
/// step (so `init` runs with the step's config), without touching Kafka.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let engine = PluginEngine::new()?;
    let plugins = load_plugins(&engine, config)?;
    let mut errors = Vec::new();
    for pipeline in &config.pipelines {
        for (step, plugin) in pipeline
            .steps
            .iter()
            .zip(chain_plugins(&plugins, pipeline)?)
        {
            let settings = Arc::new(pipeline.instance_settings(step));
            if let Err(e) = PluginRunner::start(plugin, settings) {
                errors.push(format!("pipeline `{}`: {e}", pipeline.name));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", errors.join("\n"))
    }
}

/// Running pipelines and what they share.
pub struct Supervisor {
    config: Config,
    engine: PluginEngine,
    brokers: String,
    pipelines: BTreeMap<String, Pipeline>,
    plugins: PluginSet,
    /// What the config file and each loaded plugin file looked like when
    /// last read, to notice edits.
    seen: HashMap<PathBuf, Option<Fingerprint>>,
    status: Arc<Status>,
    /// Pipelines that died or failed to start, and when to try again.
    restarts: BTreeMap<String, Restart>,
    // Dropped last: pipelines must stop before their broker does.
    embedded: Option<EmbeddedKafka>,
}

impl Supervisor {
    /// Loads every plugin, starts the embedded broker if the config asks
    /// for it, then starts every pipeline. Nothing is consumed unless all
    /// of that succeeds.
    pub fn start(config: Config) -> anyhow::Result<Supervisor> {
        let engine = PluginEngine::new()?;
        let plugins = load_plugins(&engine, &config)?;
        let (brokers, embedded) = match &config.kafka.brokers {
            Brokers::List(list) => (list.clone(), None),
            Brokers::Embedded => {
                let kafka = EmbeddedKafka::start()?;
                tracing::info!(
                    bootstrap = kafka.bootstrap(),
                    "embedded Kafka broker started"
                );
                (kafka.bootstrap().to_owned(), Some(kafka))
            }
        };
        let mut supervisor = Supervisor {
            config,
            engine,
            brokers,
            pipelines: BTreeMap::new(),
            plugins,
            seen: HashMap::new(),
            status: Arc::default(),
            restarts: BTreeMap::new(),
            embedded,
        };
        supervisor.remember_files();
        let names: Vec<String> = supervisor
            .config
            .pipelines
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for name in names {
            if let Err(e) = supervisor.start_pipeline(&name) {
                supervisor.stop();
                return Err(e);
            }
        }
        Ok(supervisor)
    }

    fn start_pipeline(&mut self, name: &str) -> anyhow::Result<()> {
        let pipeline = self
            .config
            .pipeline(name)
            .with_context(|| format!("no pipeline `{name}`"))?;
        let prepared = Pipeline::prepare(pipeline, &chain_plugins(&self.plugins, pipeline)?)?;
        self.launch(prepared)?;
        Ok(())
    }

    /// Creates the pipeline's missing topics, then joins the group with it.
    fn launch(&mut self, prepared: PreparedPipeline) -> anyhow::Result<()> {
        self.create_topics(prepared.config(), prepared.keeps_state())?;
        let name = prepared.config().name.clone();
        let running = prepared.start(&self.config.kafka, &self.brokers)?;
        self.status.started(running.status().clone());
        self.pipelines.insert(name, running);
        Ok(())
    }

    /// Creates the topics of `pipeline` that do not exist yet, with its
    /// `partitions`, so its consumer has every input partition from the
    /// start and its outputs do not depend on the broker's auto-creation.
    /// Only the embedded broker's failures are errors: a cluster may refuse
    /// (permissions, policies) and still have the topics.
    /// A stateful pipeline's changelog is created too, compacted.
    fn create_topics(&self, pipeline: &PipelineConfig, keeps_state: bool) -> anyhow::Result<()> {
        let topics: Vec<&str> = pipeline.topics().into_iter().collect();
        let changelog = [pipeline.state.changelog.as_str()];
        let changelog: &[&str] = if keeps_state { &changelog } else { &[] };
        if let Some(embedded) = &self.embedded {
            for topic in topics.iter().chain(changelog) {
                embedded.create_topic(topic, pipeline.partitions)?;
            }
            return Ok(());
        }
        let kafka = &self.config.kafka;
        let created =
            kafka::topics::create_missing(kafka, &self.brokers, &topics, pipeline.partitions, &[])
                .and_then(|mut created| {
                    created.extend(kafka::topics::create_missing(
                        kafka,
                        &self.brokers,
                        changelog,
                        pipeline.partitions,
                        kafka::topics::CHANGELOG_CONFIG,
                    )?);
                    Ok(created)
                });
        match created {
            Ok(created) if !created.is_empty() => tracing::info!(
                pipeline = pipeline.name,
                topics = ?created,
                partitions = pipeline.partitions,
                "created topics"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                pipeline = pipeline.name,
                error = %e,
                "could not create the pipeline's topics; running on the ones the broker has"
            ),
        }
        Ok(())
    }

    /// What runs, and the reload history.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// Counts a reload and keeps it in the history.
    fn record(&self, reload: Reload) {
        let (kind, outcome) = match &reload {
            Reload::Plugin { outcome, .. } => ("plugin", outcome),
            Reload::Config { outcome, .. } => ("config", outcome),
        };
        metrics::global().reload(kind, outcome.as_str());
        self.status.reloaded(reload);
    }

    /// The bootstrap address pipelines use.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The embedded broker, when the config asked for one.
    pub fn embedded(&self) -> Option<&EmbeddedKafka> {
        self.embedded.as_ref()
    }

    /// The running config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shared Wasm engine.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Records the look of the config file and every loaded plugin. Files
    /// already known keep the look they had when last loaded: a plugin that
    /// changed on disk while a config edit was applied (which reuses the
    /// loaded version) must still be noticed as changed and reloaded.
    fn remember_files(&mut self) {
        let paths = std::iter::once(self.config.path.clone()).chain(self.plugins.keys().cloned());
        self.seen = paths
            .map(|p| {
                let seen = self
                    .seen
                    .get(&p)
                    .copied()
                    .unwrap_or_else(|| fingerprint(&p));
                (p, seen)
            })
            .collect();
    }

    /// Looks for edited files and applies them: a changed config is
    /// validated in full and applied as a difference; a changed plugin is
    /// compiled and started off the hot path, then swapped in. Whatever
    /// fails leaves what runs untouched. Returns true when a file is still
    /// being written, so the caller should look again shortly.
    pub fn reconcile(&mut self) -> bool {
        let mut unsettled = false;
        let config_path = self.config.path.clone();
        if self.changed(&config_path) {
            match settle(&config_path) {
                Some(fp) => {
                    self.seen.insert(config_path.clone(), fp);
                    self.reload_config();
                }
                None => unsettled = true,
            }
        }
        let plugin_paths: Vec<PathBuf> = self.plugins.keys().cloned().collect();
        for path in plugin_paths {
            if !self.changed(&path) {
                continue;
            }
            match settle(&path) {
                Some(None) => {
                    tracing::warn!(plugin = %path.display(), "plugin file removed; the loaded version keeps running");
                    self.seen.insert(path, None);
                }
                Some(fp) => {
                    self.seen.insert(path.clone(), fp);
                    self.reload_plugin(&path);
                }
                None => unsettled = true,
            }
        }
        unsettled
    }

    fn changed(&self, path: &Path) -> bool {
        self.seen
            .get(path)
            .is_none_or(|seen| *seen != fingerprint(path))
    }

    /// Swaps in a new version of the plugin at `path` for every pipeline
    /// that uses it, or keeps the old one if anything fails.
    fn reload_plugin(&mut self, path: &Path) {
        let Some(old) = self.plugins.get(path).cloned() else {
            return;
        };
        let name = old.name().clone();
        let read = std::fs::read(path).map(|bytes| {
            let digest = digest_of(&bytes);
            (bytes, digest)
        });
        let (new, result) = match read {
            Ok((_, digest)) if digest == **old.digest() => return,
            Ok((bytes, digest)) => (Some(digest), self.swap_plugin(&name, path, &bytes)),
            Err(e) => (
                None,
                Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
            ),
        };
        let (outcome, pipelines, error) = match result {
            Ok(pipelines) => {
                tracing::info!(
                    plugin = &*name,
                    old = &**old.digest(),
                    new = new.as_deref().unwrap_or("?"),
                    ?pipelines,
                    outcome = "ok",
                    "plugin reloaded"
                );
                (Outcome::Ok, pipelines, None)
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(
                    plugin = &*name,
                    running = &**old.digest(),
                    error,
                    outcome = "failed",
                    "plugin reload failed; the running version stays"
                );
                (Outcome::Failed, Vec::new(), Some(error))
            }
        };
        self.record(Reload::Plugin {
            at_ms: now_ms(),
            outcome,
            plugin: name.to_string(),
            old: old.digest().to_string(),
            new,
            pipelines,
            error,
        });
    }

    /// Compiles `bytes` as the new version of plugin `name`, starts new
    /// instances for every pipeline that uses it, and only if all of that
    /// worked swaps them in. Returns the pipelines that switched.
    fn swap_plugin(
        &mut self,
        name: &str,
        path: &Path,
        bytes: &[u8],
    ) -> anyhow::Result<Vec<String>> {
        let new = Arc::new(CompiledPlugin::from_bytes(&self.engine, name, path, bytes)?);
        let mut plugins = self.plugins.clone();
        plugins.insert(path.to_owned(), new);
        let users: Vec<&PipelineConfig> = self
            .config
            .pipelines
            .iter()
            .filter(|p| p.steps.iter().any(|s| s.path == path))
            .collect();
        // Start every new instance first, so a failing `init` changes nothing.
        let mut prepared = Vec::new();
        for pipeline in &users {
            if let Some(running) = self.pipelines.get(&pipeline.name) {
                prepared.push((
                    running,
                    running.prepare_swap(&chain_plugins(&plugins, pipeline)?)?,
                ));
            }
        }
        let names = users.iter().map(|p| p.name.clone()).collect();
        for (running, swap) in prepared {
            // Only a pipeline that is stopping refuses; the others must
            // still get the new version.
            if let Err(e) = running.swap(swap) {
                tracing::warn!(error = %e, "a stopping pipeline kept the old version");
            }
        }
        self.plugins = plugins;
        Ok(names)
    }

    /// Applies an edited config file: only the pipelines that differ are
    /// restarted; an invalid file or one that needs a restart changes
    /// nothing.
    fn reload_config(&mut self) {
        let path = self.config.path.clone();
        let new = match Config::load(&path) {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(
                    outcome = "failed",
                    "config reload failed; the running config stays:\n{e}"
                );
                return self.record_config(
                    Outcome::Failed,
                    &PipelineDiff::default(),
                    Some(e.to_string()),
                );
            }
        };
        let refused = restart_required(&self.config, &new);
        if !refused.is_empty() {
            let error = format!("the change needs a restart: {}", refused.join("; "));
            tracing::error!(
                outcome = "refused",
                "config change needs a restart; the running config stays: {}",
                refused.join("; ")
            );
            return self.record_config(Outcome::Refused, &PipelineDiff::default(), Some(error));
        }
        let mut diff = diff_pipelines(&self.config, &new);
        // A pipeline that failed to start after an earlier reload is
        // started again with this one.
        for pipeline in &new.pipelines {
            let name = &pipeline.name;
            if !self.pipelines.contains_key(name)
                && !diff.added.contains(name)
                && !diff.changed.contains(name)
            {
                diff.changed.push(name.clone());
            }
        }
        if diff.is_empty() {
            self.config = new;
            tracing::info!(outcome = "ok", "config reloaded: no pipeline changed");
            return self.record_config(Outcome::Ok, &diff, None);
        }
        match self.apply_config(new, &diff) {
            Ok(failed) if failed.is_empty() => {
                tracing::info!(
                    added = ?diff.added,
                    removed = ?diff.removed,
                    changed = ?diff.changed,
                    outcome = "ok",
                    "config reloaded"
                );
                self.record_config(Outcome::Ok, &diff, None);
            }
            Ok(failed) => {
                let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
                let errors: Vec<&str> = failed.iter().map(|(_, e)| e.as_str()).collect();
                let error = format!(
                    "{} could not start and {} not running; the other pipelines run on the \
                     new config:\n{}",
                    names.join(", "),
                    if names.len() == 1 { "is" } else { "are" },
                    errors.join("\n")
                );
                tracing::error!(
                    added = ?diff.added,
                    removed = ?diff.removed,
                    changed = ?diff.changed,
                    outcome = "partial",
                    "config reloaded, but {error}"
                );
                self.record_config(Outcome::Partial, &diff, Some(error));
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(
                    outcome = "failed",
                    error,
                    "config reload failed; the running config stays"
                );
                self.record_config(Outcome::Failed, &PipelineDiff::default(), Some(error));
            }
        }
    }

    fn record_config(&self, outcome: Outcome, diff: &PipelineDiff, error: Option<String>) {
        self.record(Reload::Config {
            at_ms: now_ms(),
            outcome,
            added: diff.added.clone(),
            removed: diff.removed.clone(),
            changed: diff.changed.clone(),
            error,
        });
    }

    /// Applies `new`, whose differences from the running config are
    /// `diff`. Everything that can fail because of the new config happens
    /// first (loading plugins, starting every new instance and its `init`,
    /// creating topics), and then an error changes nothing. Only then are
    /// the old pipelines stopped and the new ones started; the pipelines
    /// that fail to start at that point are returned, with why, and the
    /// rest run.
    fn apply_config(
        &mut self,
        new: Config,
        diff: &PipelineDiff,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let starting: Vec<&PipelineConfig> = diff
            .added
            .iter()
            .chain(&diff.changed)
            .filter_map(|name| new.pipeline(name))
            .collect();
        // Compile what is new, reuse what is loaded.
        let missing = new.missing_plugins();
        if !missing.is_empty() {
            anyhow::bail!("{}", display_problems(&new.path, &missing));
        }
        let mut plugins = self.plugins.clone();
        for pipeline in &starting {
            for step in &pipeline.steps {
                if !plugins.contains_key(&step.path) {
                    let plugin = CompiledPlugin::load(&self.engine, &step.plugin, &step.path)
                        .with_context(|| format!("pipeline `{}`", pipeline.name))?;
                    plugins.insert(step.path.clone(), Arc::new(plugin));
                }
            }
        }
        // Every new pipeline's instances start (and run `init`) before
        // anything stops; these are the instances that will run.
        let prepared = starting
            .iter()
            .map(|pipeline| {
                Ok(Pipeline::prepare(
                    pipeline,
                    &chain_plugins(&plugins, pipeline)?,
                )?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let stopping: Vec<Pipeline> = diff
            .removed
            .iter()
            .chain(&diff.changed)
            .filter_map(|name| self.pipelines.remove(name))
            .collect();
        self.stop_all(stopping);
        self.config = new;
        self.plugins = plugins;
        let mut failed = Vec::new();
        for pipeline in prepared {
            let config = pipeline.config().clone();
            if let Err(e) = self.launch(pipeline) {
                let error = format!("{e:#}");
                self.status.failed(&config, error.clone());
                failed.push((config.name, error));
            }
        }
        // Unused plugins are dropped; files now in use are watched.
        let used: std::collections::HashSet<&PathBuf> = self
            .config
            .pipelines
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| &s.path))
            .collect();
        self.plugins.retain(|path, _| used.contains(path));
        self.remember_files();
        Ok(failed)
    }

    /// Restarts what is not running: a pipeline whose poll thread ended
    /// without being asked to (it panicked) is stopped and started again,
    /// and so is one that failed to start after a reload, each after a
    /// backoff that doubles with every failure in a row ([`RESTART_FIRST`]
    /// up to [`RESTART_MAX`]; a pipeline that ran [`RESTART_STABLE`] starts
    /// over). Each restart is counted in `sluice_pipeline_restarts_total`.
    /// A stuck poll thread cannot be taken back (it holds its partitions
    /// until the group evicts it): `/healthz` reports it, so that the
    /// process is restarted.
    pub fn heal(&mut self, now: Instant) {
        let dead: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for name in dead {
            let Some(pipeline) = self.pipelines.remove(&name) else {
                continue;
            };
            let ran_ms = now_ms() - pipeline.status().started_at_ms();
            let why = match pipeline.stop() {
                Err(e) => e.to_string(),
                Ok(()) => format!("pipeline `{name}`: its poll thread ended"),
            };
            let restart = self.restarts.entry(name.clone()).or_default();
            if ran_ms >= RESTART_STABLE.as_millis() as i64 {
                restart.failures = 0;
            }
            self.fail(&name, &why, now);
        }
        // Configured, not running, not scheduled: failed after a reload.
        let waiting: Vec<String> = self
            .config
            .pipelines
            .iter()
            .map(|p| p.name.clone())
            .filter(|name| {
                !self.pipelines.contains_key(name)
                    && self.restarts.get(name).is_none_or(|r| r.due.is_none())
            })
            .collect();
        for name in waiting {
            let why = self
                .status
                .failure(&name)
                .unwrap_or_else(|| "not running".into());
            self.fail(&name, &why, now);
        }
        // Forget what runs again, or is no longer configured.
        let configured: std::collections::HashSet<&str> = self
            .config
            .pipelines
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        self.restarts.retain(|name, restart| {
            if self.pipelines.contains_key(name) {
                restart.due = None;
            }
            configured.contains(name.as_str()) && (restart.due.is_some() || restart.failures > 0)
        });
        let due: Vec<String> = self
            .restarts
            .iter()
            .filter(|(_, r)| r.due.is_some_and(|due| due <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            match self.start_pipeline(&name) {
                Ok(()) => {
                    let metrics = metrics::global().pipeline(&name);
                    metrics.restarts.inc();
                    if let Some(restart) = self.restarts.get_mut(&name) {
                        restart.due = None;
                    }
                    tracing::info!(
                        pipeline = name,
                        restarts = metrics.restarts.get(),
                        "pipeline started again"
                    );
                }
                Err(e) => self.fail(&name, &format!("{e:#}"), now),
            }
        }
    }

    /// Records that pipeline `name` is not running because of `why`, and
    /// when it will be started again.
    fn fail(&mut self, name: &str, why: &str, now: Instant) {
        let restart = self.restarts.entry(name.to_owned()).or_default();
        let delay = restart.next_delay();
        restart.failures = restart.failures.saturating_add(1);
        restart.due = Some(now + delay);
        let error = format!("{why}; starting it again in {} s", delay.as_secs());
        tracing::error!(pipeline = name, error, "pipeline is not running");
        if let Some(config) = self.config.pipeline(name) {
            self.status.failed(config, error);
        }
    }

    /// The directories holding the config file and the loaded plugins.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::iter::once(&self.config.path)
            .chain(self.plugins.keys())
            .filter_map(|p| p.parent())
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d.to_owned()
                }
            })
            .collect();
        dirs.push(self.config.plugins_dir.clone());
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Stops every pipeline (in parallel: each drains and commits).
    pub fn stop(&mut self) {
        let all = std::mem::take(&mut self.pipelines).into_values().collect();
        self.stop_all(all);
    }

    /// Stops pipelines in parallel; each drains and commits.
    fn stop_all(&self, pipelines: Vec<Pipeline>) {
        for pipeline in &pipelines {
            self.status.stopped(&pipeline.config().name);
        }
        stop_all(pipelines);
    }
}

/// Stops pipelines in parallel; each drains and commits.
fn stop_all(pipelines: Vec<Pipeline>) {
    for pipeline in &pipelines {
        pipeline.begin_stop();
    }
    std::thread::scope(|scope| {
        for pipeline in pipelines {
            scope.spawn(move || {
                let name = pipeline.config().name.clone();
                if let Err(e) = pipeline.stop() {
                    tracing::error!(pipeline = name, error = %e, "pipeline did not stop cleanly");
                }
            });
        }
    });
}

/// The first wait before a pipeline that died or failed is started again.
pub const RESTART_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const RESTART_MAX: Duration = Duration::from_secs(60);
/// How long a restarted pipeline must run before its next failure counts
/// as the first again.
pub const RESTART_STABLE: Duration = Duration::from_secs(60);

/// A pipeline's failures in a row, and when it is due to start again
/// (`None` while it runs).
#[derive(Debug, Default)]
struct Restart {
    failures: u32,
    due: Option<Instant>,
}

impl Restart {
    /// [`RESTART_FIRST`], doubled for each failure in a row, at most
    /// [`RESTART_MAX`].
    fn next_delay(&self) -> Duration {
        RESTART_FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(RESTART_MAX)
    }
}

/// What a file looked like: enough to notice an edit without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
}

/// The file's fingerprint, or `None` if it does not exist.
fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// How long a file must stay unchanged to count as completely written.
const SETTLE: Duration = Duration::from_millis(250);

/// Waits [`SETTLE`] and looks again: `Some(fingerprint)` if the file did not
/// change meanwhile, `None` if it is still being written.
fn settle(path: &Path) -> Option<Option<Fingerprint>> {
    let before = fingerprint(path);
    std::thread::sleep(SETTLE);
    let after = fingerprint(path);
    (before == after).then_some(after)
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with pipelines `a` and `b` (passthrough, embedded broker),
    /// their names prefixed with `prefix` (metrics are per process, and
    /// tests run in parallel); `consumer` goes into `[kafka.consumer]`;
    /// `b` has `b_lines` added.
    fn two_pipelines(prefix: &str, consumer: &str, b_lines: &str) -> String {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        assert!(
            plugins.join("passthrough.wasm").is_file(),
            "run scripts/build-plugins first"
        );
        let pipeline = |name: &str, extra: &str| {
            format!(
                "[[pipeline]]\nname = \"{prefix}{name}\"\ninputs = [\"{prefix}{name}-in\"]\n\
                 plugin = \"passthrough\"\noutput = \"{prefix}{name}-out\"\n\
                 dlq = \"{prefix}{name}-dlq\"\n{extra}\n"
            )
        };
        format!(
            "[kafka]\nbrokers = \"embedded\"\n[kafka.consumer]\n{consumer}\n\
             [plugins]\ndir = \"{}\"\n{}{}",
            plugins.display(),
            pipeline("a", ""),
            pipeline("b", b_lines),
        )
    }

    /// Instances of `passthrough` started for pipeline `name` so far.
    fn instances(supervisor: &Supervisor, name: &str) -> u64 {
        let view = supervisor.status().view();
        let pipeline = view.pipelines.iter().find(|p| p.name == name);
        pipeline.map_or(0, |p| p.plugins[0].instances)
    }

    #[test]
    fn a_changed_pipeline_restarts_on_the_instances_its_reload_prepared() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sluice.toml");
        // Two workers, so two instances per start.
        let file = |batch: usize| {
            two_pipelines(
                "changed-",
                "",
                &format!("workers = 2\nbatch_size = {batch}"),
            )
        };
        std::fs::write(&path, file(64)).expect("write the config");
        let mut supervisor =
            Supervisor::start(Config::load(&path).expect("valid")).expect("starts");
        let (a, b) = ("changed-a", "changed-b");
        let (a_before, b_before) = (instances(&supervisor, a), instances(&supervisor, b));
        assert_eq!(b_before, 2);
        let a_started = supervisor
            .status()
            .pipeline(a)
            .map(|p| p.view().started_at_ms);

        std::fs::write(&path, file(16)).expect("edit the config");
        supervisor.reconcile();

        let view = supervisor.status().view();
        match view.reloads.last() {
            Some(Reload::Config {
                outcome: Outcome::Ok,
                changed,
                ..
            }) => assert_eq!(changed, &[b]),
            other => panic!("expected an applied config reload, got {other:?}"),
        }
        assert_eq!(
            supervisor.config().pipeline(b).map(|p| p.batch_size),
            Some(16)
        );
        // `init` ran once per worker of the new `b`: the instances the
        // reload checked are the ones that run.
        assert_eq!(instances(&supervisor, b), b_before + 2);
        // `a` was left alone.
        assert_eq!(instances(&supervisor, a), a_before);
        let a_now = supervisor
            .status()
            .pipeline(a)
            .map(|p| p.view().started_at_ms);
        assert_eq!(a_now, a_started);
        supervisor.stop();
    }

    /// Ends the poll thread of pipeline `name` behind the supervisor's
    /// back, as a panic would, and waits for it to be gone.
    fn end_poll_thread(supervisor: &Supervisor, name: &str) {
        let pipeline = &supervisor.pipelines[name];
        pipeline.begin_stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pipeline.is_finished() {
            assert!(Instant::now() < deadline, "the poll thread did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn state_of(supervisor: &Supervisor, name: &str) -> (&'static str, Option<String>) {
        let view = supervisor.status().view();
        let p = view.pipelines.into_iter().find(|p| p.name == name);
        p.map_or(("absent", None), |p| (p.state, p.error))
    }

    #[test]
    fn a_pipeline_whose_poll_thread_died_is_started_again_with_backoff() {
        use crate::kafka::reader::TopicReader;
        use crate::kafka::writer::{RecordRef, Writer};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sluice.toml");
        // The embedded broker's coordinator waits out an old member's
        // session before the next rebalance completes.
        let session = r#""session.timeout.ms" = "6000""#;
        std::fs::write(&path, two_pipelines("heal-", session, "")).expect("write the config");
        let mut supervisor =
            Supervisor::start(Config::load(&path).expect("valid")).expect("starts");
        let (a, b) = ("heal-a", "heal-b");
        let restarts = || metrics::global().pipeline(a).restarts.get();

        end_poll_thread(&supervisor, a);
        let liveness = supervisor.status().liveness(now_ms());
        assert_eq!(
            liveness,
            Err("pipeline `heal-a`: its poll thread ended".into())
        );
        let t0 = Instant::now();
        supervisor.heal(t0);
        let (state, error) = state_of(&supervisor, a);
        assert_eq!(state, "failed");
        assert_eq!(
            error.as_deref(),
            Some("pipeline `heal-a`: its poll thread ended; starting it again in 1 s")
        );
        let unready = supervisor.status().readiness(now_ms()).unwrap_err();
        assert!(
            unready
                .lines()
                .any(|l| l == "pipeline `heal-a` is not running"),
            "{unready}"
        );
        assert_eq!(
            supervisor.status().liveness(now_ms()),
            Ok(()),
            "only `b` runs"
        );
        supervisor.heal(t0 + Duration::from_millis(900));
        assert_eq!(state_of(&supervisor, a).0, "failed", "not before its time");
        supervisor.heal(t0 + RESTART_FIRST);
        assert_eq!(state_of(&supervisor, a), ("running", None));
        assert_eq!(restarts(), 1);

        // It dies again at once: the wait doubles.
        end_poll_thread(&supervisor, a);
        let t1 = Instant::now();
        supervisor.heal(t1);
        let (state, error) = state_of(&supervisor, a);
        assert_eq!(state, "failed");
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.ends_with("starting it again in 2 s")),
            "{error:?}"
        );
        supervisor.heal(t1 + Duration::from_millis(1900));
        assert_eq!(state_of(&supervisor, a).0, "failed", "not before its time");
        supervisor.heal(t1 + 2 * RESTART_FIRST);
        assert_eq!(state_of(&supervisor, a), ("running", None));
        assert_eq!(restarts(), 2);
        assert_eq!(metrics::global().pipeline(b).restarts.get(), 0);
        let view = supervisor.status().view();
        assert_eq!(view.pipelines[0].restarts, 2, "{view:?}");

        // The pipeline started again does its work.
        let brokers = supervisor.brokers().to_owned();
        let mut writer = Writer::to(&brokers, &[]).expect("a producer");
        let mut record = RecordRef::to("heal-a-in");
        record.value = Some(b"after the restart");
        writer.send(record).expect("queued");
        writer.flush(Duration::from_secs(30)).expect("written");
        let reader =
            TopicReader::new(&brokers, &["heal-a-out"], Duration::from_secs(30)).expect("a reader");
        let deadline = Instant::now() + Duration::from_secs(60);
        let value = loop {
            assert!(Instant::now() < deadline, "no output after the restart");
            if let Some(Ok(event)) = reader.poll(Duration::from_millis(200)) {
                break event.value;
            }
        };
        assert_eq!(value.as_deref(), Some(&b"after the restart"[..]));
        supervisor.stop();
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let delays: Vec<u64> = (0..9)
            .map(|failures| {
                Restart {
                    failures,
                    due: None,
                }
                .next_delay()
                .as_secs()
            })
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_pipeline_that_cannot_start_again_after_a_reload_is_reported_and_the_rest_run() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, two_pipelines("", "", "")).expect("write the config");
        let mut supervisor =
            Supervisor::start(Config::load(&path).expect("valid")).expect("starts");

        // The Kafka side stops accepting what the file says, as if the
        // cluster changed under us: the running config and the edited file
        // both carry a consumer property librdkafka refuses, so the edit
        // needs no restart and changes only `b`, whose new consumer cannot
        // be created after its old version has stopped.
        let refused = r#""session.timeout.ms" = "soon""#;
        supervisor
            .config
            .kafka
            .consumer
            .insert("session.timeout.ms".into(), "soon".into());
        std::fs::write(&path, two_pipelines("", refused, "batch_size = 16"))
            .expect("edit the config");
        supervisor.reconcile();

        assert!(supervisor.pipelines.contains_key("a"), "`a` runs on");
        assert!(
            !supervisor.pipelines.contains_key("b"),
            "{:?}",
            supervisor.status().view()
        );
        let view = supervisor.status().view();
        let states: Vec<(&str, &str)> = view
            .pipelines
            .iter()
            .map(|p| (p.name.as_str(), p.state))
            .collect();
        assert_eq!(states, [("a", "running"), ("b", "failed")]);
        let b_error = view.pipelines[1].error.as_deref().unwrap_or_default();
        assert!(
            b_error.contains("cannot create the consumer")
                && b_error.contains("session.timeout.ms"),
            "{b_error}"
        );
        match view.reloads.last() {
            Some(Reload::Config {
                outcome: Outcome::Partial,
                changed,
                error: Some(error),
                ..
            }) => {
                assert_eq!(changed, &["b"]);
                assert!(
                    error.starts_with("b could not start and is not running"),
                    "{error}"
                );
            }
            other => panic!("expected a partial config reload, got {other:?}"),
        }
        supervisor.stop();
    }
}
