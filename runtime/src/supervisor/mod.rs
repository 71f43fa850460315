//! The set of running pipelines of one config file: starting the embedded
//! broker when asked, starting and stopping pipelines together, applying
//! reloads, restarting what stopped.
//!
//! - this module: the [`Supervisor`] and what it holds, `sluice check`;
//! - [`lifecycle`]: starting a pipeline (its topics first) and stopping
//!   them, in parallel;
//! - [`apply`]: noticing edited files and applying them: a plugin swapped
//!   in, a config applied as a difference, or neither when anything fails;
//! - [`heal`]: starting again, with backoff, pipelines that died or failed
//!   to start.

mod apply;
mod heal;
mod lifecycle;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Brokers, Config};
use crate::kafka::embedded::EmbeddedKafka;
use crate::pipeline::{Pipeline, chain_plugins, load_plugins};
use crate::plugin::{PluginEngine, PluginRunner, PluginSet};
use crate::reload::{Fingerprint, Reconcile};
use crate::status::Status;

use heal::Restart;
pub use heal::{RESTART_FIRST, RESTART_MAX, RESTART_STABLE};

/// `sluice check`: validates the config and starts one instance of every
/// step (so `init` runs with the step's config), without touching Kafka.
pub fn check(engine: &PluginEngine, config: &Config) -> anyhow::Result<()> {
    let mut plugins = PluginSet::new();
    load_plugins(engine, config, &config.pipelines, &mut plugins)?;
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
    /// of that succeeds. `engine` is the process's one plugin engine: what
    /// the supervisor loads and reloads with, and what an HTTP redrive
    /// reuses.
    pub fn start(engine: PluginEngine, config: Config) -> anyhow::Result<Supervisor> {
        let mut plugins = PluginSet::new();
        load_plugins(&engine, &config, &config.pipelines, &mut plugins)?;
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
        supervisor
            .status
            .instance(&supervisor.config.kafka.instance_id);
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

    /// What runs, and the reload history.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
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
}

impl Reconcile for Supervisor {
    fn watched_dirs(&self) -> Vec<PathBuf> {
        Supervisor::watched_dirs(self)
    }

    fn reconcile(&mut self) -> bool {
        Supervisor::reconcile(self)
    }

    fn heal(&mut self, now: Instant) {
        Supervisor::heal(self, now)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}
