//! Starting and stopping pipelines: a pipeline's missing topics are
//! created before it joins its group; stopping runs in parallel, each
//! pipeline draining and committing.

use anyhow::Context as _;

use super::Supervisor;
use crate::config::PipelineConfig;
use crate::kafka;
use crate::pipeline::{Pipeline, PreparedPipeline, chain_plugins};

impl Supervisor {
    pub(super) fn start_pipeline(&mut self, name: &str) -> anyhow::Result<()> {
        let pipeline = self
            .config
            .pipeline(name)
            .with_context(|| format!("no pipeline `{name}`"))?;
        let prepared = Pipeline::prepare(pipeline, &chain_plugins(&self.plugins, pipeline)?)?;
        self.launch(prepared)?;
        Ok(())
    }

    /// Creates the pipeline's missing topics, then joins the group with it.
    pub(super) fn launch(&mut self, prepared: PreparedPipeline) -> anyhow::Result<()> {
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

    /// Stops every pipeline (in parallel: each drains and commits).
    pub fn stop(&mut self) {
        let all = std::mem::take(&mut self.pipelines).into_values().collect();
        self.stop_all(all);
    }

    /// Stops pipelines in parallel; each drains and commits.
    pub(super) fn stop_all(&self, pipelines: Vec<Pipeline>) {
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
