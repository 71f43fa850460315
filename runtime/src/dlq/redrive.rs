//! `sluice dlq redrive`: runs a pipeline's dead letters through its
//! current plugin chain (loaded as `sluice run` loads it, judged by the
//! same retry and topic rules) and writes the results where the pipeline
//! would have, at least once.
//!
//! - The plugin sees the original event: source topic, partition, offset
//!   and timestamp, key, value, and the headers without the envelope.
//! - Outputs carry the pipeline's origin headers and `sluice.redriven.from`
//!   (`<dlq topic>/<partition>/<offset>`). An event that fails again goes
//!   back to the DLQ topic in a new envelope: the new kind and message,
//!   `sluice.attempts` adding this run's attempts to the earlier ones, and
//!   `sluice.redriven.from`.
//! - Progress is the consumer group [`super::redrive_group`] on the DLQ
//!   topic, committed only after every output and dead letter of the
//!   records before it is acknowledged by the broker. The group is never
//!   joined: a redrive reads from its committed offsets.
//! - A run covers the dead letters that failed before it started: a
//!   partition ends at its first dead letter with a later
//!   `sluice.failed.at` (which includes the ones this run writes), and
//!   that record stays for the next run. Otherwise a partition ends as
//!   [`super::read`] says.
//! - Dead letters the selection does not take are passed over: counted,
//!   and committed past like the others, so a later run with another
//!   selection does not see them again (list them with `sluice dlq list`,
//!   which reads everything). Foreign records are skipped the same way.
//! - A dry run processes what is selected and reports what would become of
//!   it; it writes and commits nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::read::{DlqReader, Start};
use super::select::Selection;
use super::{DlqError, pipeline_of, redrive_group};
use crate::clock::now_ms;
use crate::config::{Config, PipelineConfig};
use crate::envelope::{DeadLetterRecord, DlqPosition, DlqRecord};
use crate::headers;
use crate::json_lines;
use crate::kafka::reader::END_IDLE;
use crate::kafka::{self, Writer};
use crate::pipeline::{self, Chain, Processed, chain_plugins, load_plugins};
use crate::plugin::{PluginEngine, PluginSet};

/// How long the broker may take to acknowledge a batch of redriven records.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a redrive does.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    pub selection: Selection,
    /// Process and report, write and commit nothing.
    pub dry_run: bool,
    /// See [`super::read`]: how long a partition may stay quiet at its end.
    pub idle: Duration,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        RedriveOptions {
            selection: Selection::default(),
            dry_run: false,
            idle: END_IDLE,
        }
    }
}

/// What became of one record of the DLQ topic.
#[derive(Debug, Clone, Serialize)]
pub struct RecordOutcome {
    /// Where it is on the DLQ topic.
    pub dlq: DlqPosition,
    #[serde(flatten)]
    pub disposition: Disposition,
}

/// What a redrive did with a record.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Disposition {
    /// It succeeded; its outputs are written.
    Redriven { outputs: usize },
    /// It failed again and is back on the DLQ topic.
    FailedAgain {
        kind: String,
        message: String,
        attempts: u32,
    },
    /// A dry run: the `sluice exec` outcome line of the event.
    DryRun { outcome: Value },
    /// Not selected.
    PassedOver,
    /// Not a dead letter Sluice wrote.
    Foreign { reason: String },
}

/// Counts of a redrive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    /// The group whose offsets record the progress.
    pub group: String,
    pub dry_run: bool,
    /// Records read (the ones a partition ended at are not).
    pub read: usize,
    /// Dead letters the selection took.
    pub selected: usize,
    /// Selected ones that succeeded (would, in a dry run).
    pub redriven: usize,
    /// Their outputs.
    pub outputs: usize,
    /// Selected ones that failed again.
    pub failed_again: usize,
    /// Dead letters the selection did not take.
    pub passed_over: usize,
    /// Records without a Sluice envelope.
    pub foreign: usize,
}

/// Redrives pipeline `pipeline`'s dead letters (see the module docs),
/// calling `report` for every record read once its fate is settled (for a
/// selected record: once what it led to is acknowledged). Blocks; call it
/// from a thread that may.
pub fn redrive(
    engine: &PluginEngine,
    config: &Config,
    pipeline: &str,
    options: &RedriveOptions,
    report: &mut dyn FnMut(&RecordOutcome),
) -> Result<RedriveSummary, DlqError> {
    let started_ms = now_ms();
    let (pipeline, brokers) = pipeline_of(config, pipeline)?;
    let mut loaded = PluginSet::new();
    let plugins = load_plugins(engine, config, [pipeline], &mut loaded)
        .and_then(|()| Ok(chain_plugins(&loaded, pipeline)?))
        .map_err(|e| DlqError::Plugins(format!("{e:#}")))?;
    if let Some(plugin) = plugins.iter().find(|p| p.keeps_state()) {
        return Err(DlqError::Plugins(format!(
            "pipeline `{}`: plugin `{}` keeps state, which lives with the partitions' owner; \
             redrive cannot apply an event to it. Write the dead letters back to the input \
             topic instead (`sluice dlq list --json` prints them)",
            pipeline.name,
            plugin.name()
        )));
    }
    let mut run = Run {
        pipeline,
        name: pipeline.name.as_str().into(),
        chain: pipeline::build_chain(pipeline, &plugins)?,
        writer: if options.dry_run {
            None
        } else {
            Some(
                Writer::new(&kafka::producer_config(&config.kafka, brokers))
                    .map_err(DlqError::Client)?,
            )
        },
        processed: 0,
        summary: RedriveSummary {
            group: redrive_group(&pipeline.name),
            dry_run: options.dry_run,
            ..RedriveSummary::default()
        },
    };
    let mut reader = DlqReader::open(
        config,
        pipeline,
        brokers,
        &run.summary.group,
        Start::Committed,
        options.idle,
    )?;
    let batch_size = pipeline.batch_size.max(1);
    let mut pending: Vec<DeadLetterRecord> = Vec::with_capacity(batch_size);
    while let Some(event) = reader.next_record()? {
        let record = DlqRecord::parse(event);
        let letter = match record {
            DlqRecord::Letter(letter) => letter,
            DlqRecord::Foreign { .. } => {
                run.summary.read += 1;
                run.summary.foreign += 1;
                let dlq = record.at();
                if let DlqRecord::Foreign { reason, .. } = record {
                    report(&RecordOutcome {
                        dlq,
                        disposition: Disposition::Foreign { reason },
                    });
                }
                continue;
            }
        };
        if letter.context.failed_at_ms.is_some_and(|t| t >= started_ms) {
            reader.stop(letter.at.partition, letter.at.offset);
            continue;
        }
        run.summary.read += 1;
        let c = &letter.context;
        if !options
            .selection
            .matches(&c.kind, Some(&c.plugin), c.failed_at_ms)
        {
            run.summary.passed_over += 1;
            report(&RecordOutcome {
                dlq: letter.at,
                disposition: Disposition::PassedOver,
            });
            continue;
        }
        run.summary.selected += 1;
        pending.push(letter);
        if pending.len() == batch_size {
            run.batch(&mut pending, report)?;
            // Every record read so far is settled.
            if !options.dry_run {
                reader.commit()?;
            }
        }
    }
    run.batch(&mut pending, report)?;
    if !options.dry_run {
        reader.commit()?;
    }
    Ok(run.summary)
}

/// One redrive's chain, writer and counts.
struct Run<'a> {
    pipeline: &'a PipelineConfig,
    name: Arc<str>,
    chain: Chain,
    /// `None` in a dry run.
    writer: Option<Writer>,
    /// Selected records processed so far: a dry run's `line`.
    processed: usize,
    summary: RedriveSummary,
}

impl Run<'_> {
    /// Processes `pending`, writes what it led to and waits until the
    /// broker has acknowledged all of it; then reports each record.
    fn batch(
        &mut self,
        pending: &mut Vec<DeadLetterRecord>,
        report: &mut dyn FnMut(&RecordOutcome),
    ) -> Result<(), DlqError> {
        if pending.is_empty() {
            return Ok(());
        }
        let events: Vec<_> = pending.iter().map(|l| l.event.clone()).collect();
        // Nothing here can ask a backoff to end early: it sleeps.
        let Some(Processed {
            outcomes, attempts, ..
        }) = pipeline::process(
            &mut self.chain,
            &events,
            self.pipeline,
            &mut pipeline::sleep,
        )
        else {
            return Ok(());
        };
        let origin = pipeline::origin(&self.chain, &self.name);
        let stamp = origin.as_ref().filter(|_| self.pipeline.origin_headers);
        let mut outcomes_of = Vec::with_capacity(pending.len());
        for (((letter, event), outcome), attempts) in
            pending.iter().zip(&events).zip(outcomes).zip(attempts)
        {
            let from = letter.at.to_string();
            let redriven_from = Some((headers::REDRIVEN_FROM, from.as_bytes()));
            self.processed += 1;
            match &outcome {
                Ok(outputs) => {
                    self.summary.redriven += 1;
                    self.summary.outputs += outputs.len();
                }
                Err(_) => self.summary.failed_again += 1,
            }
            let disposition = match (outcome, self.writer.as_mut()) {
                (outcome, None) => {
                    let plain = outcome.map_err(|failed| failed.failure);
                    let mut line = json_lines::outcome_json(self.processed, event, &plain);
                    if let Value::Object(fields) = &mut line {
                        fields.insert("dlq".into(), Value::String(from.clone()));
                    }
                    Disposition::DryRun { outcome: line }
                }
                (Ok(outputs), Some(writer)) => {
                    for output in &outputs {
                        let record = pipeline::output_record(
                            event,
                            output,
                            self.pipeline,
                            stamp,
                            redriven_from,
                        );
                        writer.send(record).map_err(DlqError::Send)?;
                    }
                    Disposition::Redriven {
                        outputs: outputs.len(),
                    }
                }
                (Err(failed), Some(writer)) => {
                    let attempts = letter.context.attempts.saturating_add(attempts);
                    let mut dl =
                        pipeline::dead_letter(&self.chain, &self.name, event, &failed, attempts);
                    dl.headers
                        .push((headers::REDRIVEN_FROM.to_owned(), from.clone().into_bytes()));
                    writer
                        .send(dl.record(&self.pipeline.dlq))
                        .map_err(DlqError::Send)?;
                    Disposition::FailedAgain {
                        kind: failed.failure.kind.as_str().to_owned(),
                        message: failed.failure.message,
                        attempts,
                    }
                }
            };
            outcomes_of.push(RecordOutcome {
                dlq: letter.at.clone(),
                disposition,
            });
        }
        if let Some(writer) = &self.writer {
            writer.flush(WRITE_TIMEOUT)?;
        }
        for outcome in &outcomes_of {
            report(outcome);
        }
        pending.clear();
        Ok(())
    }
}
