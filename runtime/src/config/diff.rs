//! What a reload changes: which pipelines a new config adds, removes or
//! restarts, and which settings cannot change without a restart of the
//! process.

use std::collections::{BTreeMap, BTreeSet};

use super::Config;

/// Which pipelines a reload adds, removes or restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineDiff {
    /// In the new config only, in its order.
    pub added: Vec<String>,
    /// In the old config only, in its order.
    pub removed: Vec<String>,
    /// In both, with a different [`PipelineConfig`], in the new order.
    pub changed: Vec<String>,
}

impl PipelineDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The settings that differ between `old` and `new` and cannot be applied
/// to a running host (the Kafka connection and the plugins directory), one
/// description each; empty when a reload can apply `new` live.
pub fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    let (a, b) = (&old.kafka, &new.kafka);
    if a.brokers != b.brokers {
        changes.push(format!("kafka.brokers: `{}` -> `{}`", a.brokers, b.brokers));
    }
    if a.client_id != b.client_id {
        changes.push(format!(
            "kafka.client_id: `{}` -> `{}`",
            a.client_id, b.client_id
        ));
    }
    if a.instance_id != b.instance_id {
        changes.push(format!(
            "kafka.instance_id: `{}` -> `{}`",
            a.instance_id, b.instance_id
        ));
    }
    diff_properties("kafka.consumer", &a.consumer, &b.consumer, &mut changes);
    diff_properties("kafka.producer", &a.producer, &b.producer, &mut changes);
    if old.plugins_dir != new.plugins_dir {
        changes.push(format!(
            "plugins.dir: {} -> {}",
            old.plugins_dir.display(),
            new.plugins_dir.display()
        ));
    }
    changes
}

fn diff_properties(
    section: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    changes: &mut Vec<String>,
) {
    let show = |value: Option<&String>| value.map_or("(unset)".to_owned(), |v| format!("`{v}`"));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a != b {
            changes.push(format!("{section}.\"{key}\": {} -> {}", show(a), show(b)));
        }
    }
}

/// Which pipelines differ between `old` and `new`.
pub fn diff_pipelines(old: &Config, new: &Config) -> PipelineDiff {
    let mut diff = PipelineDiff::default();
    for pipeline in &new.pipelines {
        match old.pipeline(&pipeline.name) {
            None => diff.added.push(pipeline.name.clone()),
            Some(before) if before != pipeline => diff.changed.push(pipeline.name.clone()),
            Some(_) => {}
        }
    }
    for pipeline in &old.pipelines {
        if new.pipeline(&pipeline.name).is_none() {
            diff.removed.push(pipeline.name.clone());
        }
    }
    diff
}
