//! The compiled plugins of a config: each `.wasm` file compiled once and
//! shared by every chain step that names it, and the chain of one
//! pipeline picked out of them. Loading reports every plugin that fails,
//! not only the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CompiledPlugin, PluginEngine};

/// Compiled plugins by file.
pub type PluginSet = HashMap<PathBuf, Arc<CompiledPlugin>>;

/// The plugin a chain step names, and whose chain it is in.
#[derive(Debug, Clone, Copy)]
pub struct StepPlugin<'a> {
    pub pipeline: &'a str,
    pub plugin: &'a str,
    pub path: &'a Path,
}

/// Why plugins could not be loaded or a chain could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PluginSetError {
    /// Every plugin that did not load, one per line.
    #[error("{}", .0.join("\n"))]
    Load(Vec<String>),
    #[error("pipeline `{pipeline}`: plugin `{plugin}` is not loaded")]
    NotLoaded { pipeline: String, plugin: String },
}

/// Compiles the plugins of `steps` that `set` does not hold yet into it.
/// On failure `set` keeps what did load, and the error names every
/// plugin that did not, with the pipeline that uses it.
pub fn load<'a>(
    engine: &PluginEngine,
    set: &mut PluginSet,
    steps: impl IntoIterator<Item = StepPlugin<'a>>,
) -> Result<(), PluginSetError> {
    let mut errors = Vec::new();
    for step in steps {
        if set.contains_key(step.path) {
            continue;
        }
        match CompiledPlugin::load(engine, step.plugin, step.path) {
            Ok(plugin) => {
                set.insert(step.path.to_owned(), Arc::new(plugin));
            }
            Err(e) => errors.push(format!("pipeline `{}`: {e}", step.pipeline)),
        }
    }
    errors.dedup();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PluginSetError::Load(errors))
    }
}

/// The plugins of one chain, in chain order.
pub fn chain<'a>(
    set: &PluginSet,
    steps: impl IntoIterator<Item = StepPlugin<'a>>,
) -> Result<Vec<Arc<CompiledPlugin>>, PluginSetError> {
    steps
        .into_iter()
        .map(|step| {
            set.get(step.path)
                .cloned()
                .ok_or_else(|| PluginSetError::NotLoaded {
                    pipeline: step.pipeline.to_owned(),
                    plugin: step.plugin.to_owned(),
                })
        })
        .collect()
}
