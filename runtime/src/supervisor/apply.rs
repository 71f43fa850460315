//! Applying edits while running: [`Supervisor::reconcile`] compares the
//! config file and every loaded plugin with what was loaded, then swaps in
//! a changed plugin or applies a changed config as a difference. Whatever
//! fails leaves what runs untouched, and every attempt is recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Supervisor;
use crate::clock::now_ms;
use crate::config::{Config, PipelineConfig, PipelineDiff, diff_pipelines, restart_required};
use crate::metrics;
use crate::pipeline::{Pipeline, chain_plugins, load_plugins};
use crate::plugin::CompiledPlugin;
use crate::plugin::compiled::digest_of;
use crate::reload::{fingerprint, settle};
use crate::status::{Outcome, Reload};

impl Supervisor {
    /// Counts a reload and keeps it in the history.
    fn record(&self, reload: Reload) {
        let (kind, outcome) = match &reload {
            Reload::Plugin { outcome, .. } => ("plugin", outcome),
            Reload::Config { outcome, .. } => ("config", outcome),
        };
        metrics::global().reload(kind, outcome.as_str());
        self.status.reloaded(reload);
    }

    /// Records the look of the config file and every loaded plugin. Files
    /// already known keep the look they had when last loaded: a plugin that
    /// changed on disk while a config edit was applied (which reuses the
    /// loaded version) must still be noticed as changed and reloaded.
    pub(super) fn remember_files(&mut self) {
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
        let mut plugins = self.plugins.clone();
        load_plugins(&self.engine, &new, starting.iter().copied(), &mut plugins)?;
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
}
