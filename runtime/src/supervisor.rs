//! The set of running pipelines of one config file: loading and checking
//! plugins, starting the embedded broker when asked, starting and stopping
//! pipelines together.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use crate::config::{Brokers, Config, diff_pipelines, display_problems, restart_required};
use crate::kafka::embedded::EmbeddedKafka;
use crate::metrics;
use crate::pipeline::Pipeline;
use crate::plugin::{CompiledPlugin, InstanceSettings, PluginEngine, PluginRunner};

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
pub fn chain_plugins(
    plugins: &PluginSet,
    pipeline: &crate::config::PipelineConfig,
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
            let settings = Arc::new(InstanceSettings {
                limits: pipeline.limits.clone(),
                sandbox: pipeline.sandbox.clone(),
                config: step.config.clone(),
            });
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
                for pipeline in &config.pipelines {
                    for topic in pipeline.topics() {
                        kafka.create_topic(topic, pipeline.partitions)?;
                    }
                }
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
        let plugins = chain_plugins(&self.plugins, pipeline)?;
        let running = Pipeline::start(pipeline, &self.config.kafka, &self.brokers, &plugins)?;
        self.pipelines.insert(name.to_owned(), running);
        Ok(())
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
        let result =
            (|| -> anyhow::Result<Option<(Arc<crate::plugin::CompiledPlugin>, Vec<String>)>> {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if crate::plugin::compiled::digest_of(&bytes) == **old.digest() {
                    return Ok(None);
                }
                let new = Arc::new(crate::plugin::CompiledPlugin::from_bytes(
                    &self.engine,
                    &name,
                    path,
                    &bytes,
                )?);
                let mut plugins = self.plugins.clone();
                plugins.insert(path.to_owned(), new.clone());
                let users: Vec<&crate::config::PipelineConfig> = self
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
                            running.prepare(&chain_plugins(&plugins, pipeline)?)?,
                        ));
                    }
                }
                let names = users.iter().map(|p| p.name.clone()).collect();
                for (running, swap) in prepared {
                    // Only a pipeline that is stopping refuses; the others
                    // must still get the new version.
                    if let Err(e) = running.swap(swap) {
                        tracing::warn!(error = %e, "a stopping pipeline kept the old version");
                    }
                }
                self.plugins = plugins;
                Ok(Some((new, names)))
            })();
        match result {
            Ok(None) => {}
            Ok(Some((new, pipelines))) => {
                metrics::global().reload("plugin", "ok");
                tracing::info!(
                    plugin = &*name,
                    old = &**old.digest(),
                    new = &**new.digest(),
                    ?pipelines,
                    outcome = "ok",
                    "plugin reloaded"
                );
            }
            Err(e) => {
                metrics::global().reload("plugin", "failed");
                tracing::error!(
                    plugin = &*name,
                    running = &**old.digest(),
                    error = %format!("{e:#}"),
                    outcome = "failed",
                    "plugin reload failed; the running version stays"
                );
            }
        }
    }

    /// Applies an edited config file: only the pipelines that differ are
    /// restarted; an invalid file or one that needs a restart changes
    /// nothing.
    fn reload_config(&mut self) {
        let path = self.config.path.clone();
        let new = match Config::load(&path) {
            Ok(new) => new,
            Err(e) => {
                metrics::global().reload("config", "failed");
                tracing::error!(
                    outcome = "failed",
                    "config reload failed; the running config stays:\n{e}"
                );
                return;
            }
        };
        let refused = restart_required(&self.config, &new);
        if !refused.is_empty() {
            metrics::global().reload("config", "refused");
            tracing::error!(
                outcome = "refused",
                "config change needs a restart; the running config stays: {}",
                refused.join("; ")
            );
            return;
        }
        let diff = diff_pipelines(&self.config, &new);
        if diff.is_empty() {
            self.config = new;
            metrics::global().reload("config", "ok");
            tracing::info!(outcome = "ok", "config reloaded: no pipeline changed");
            return;
        }
        match self.apply_config(new, &diff) {
            Ok(()) => {
                metrics::global().reload("config", "ok");
                tracing::info!(
                    added = ?diff.added,
                    removed = ?diff.removed,
                    changed = ?diff.changed,
                    outcome = "ok",
                    "config reloaded"
                );
            }
            Err(e) => {
                metrics::global().reload("config", "failed");
                tracing::error!(outcome = "failed", error = %format!("{e:#}"), "config reload failed; the running config stays");
            }
        }
    }

    fn apply_config(
        &mut self,
        new: Config,
        diff: &crate::config::PipelineDiff,
    ) -> anyhow::Result<()> {
        let starting: Vec<&crate::config::PipelineConfig> = diff
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
                    let plugin =
                        crate::plugin::CompiledPlugin::load(&self.engine, &step.plugin, &step.path)
                            .with_context(|| format!("pipeline `{}`", pipeline.name))?;
                    plugins.insert(step.path.clone(), Arc::new(plugin));
                }
            }
        }
        // Every new pipeline's plugins must start before anything stops.
        for pipeline in &starting {
            for (step, plugin) in pipeline
                .steps
                .iter()
                .zip(chain_plugins(&plugins, pipeline)?)
            {
                let settings = Arc::new(crate::plugin::InstanceSettings {
                    limits: pipeline.limits.clone(),
                    sandbox: pipeline.sandbox.clone(),
                    config: step.config.clone(),
                });
                crate::plugin::PluginRunner::start(plugin, settings)
                    .with_context(|| format!("pipeline `{}`", pipeline.name))?;
            }
        }
        if let Some(kafka) = &self.embedded {
            for pipeline in &starting {
                for topic in pipeline.topics() {
                    kafka.create_topic(topic, pipeline.partitions)?;
                }
            }
        }
        let stopping: Vec<Pipeline> = diff
            .removed
            .iter()
            .chain(&diff.changed)
            .filter_map(|name| self.pipelines.remove(name))
            .collect();
        stop_all(stopping);
        self.config = new;
        self.plugins = plugins;
        let mut failed = Vec::new();
        for name in diff.added.iter().chain(&diff.changed) {
            if let Err(e) = self.start_pipeline(name) {
                failed.push(format!("{e:#}"));
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
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", failed.join("\n"))
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

    /// Names of the running pipelines.
    pub fn running(&self) -> Vec<String> {
        self.pipelines.keys().cloned().collect()
    }

    /// Stops every pipeline (in parallel: each drains and commits).
    pub fn stop(&mut self) {
        stop_all(std::mem::take(&mut self.pipelines).into_values().collect());
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
                    tracing::error!(pipeline = name, error = %format!("{e:#}"), "pipeline did not stop cleanly");
                }
            });
        }
    });
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
