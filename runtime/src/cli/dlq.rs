//! `sluice dlq list` and `sluice dlq redrive`, and the redrive behind the
//! HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::dlq;
use crate::plugin::PluginEngine;

#[derive(Debug, Subcommand)]
pub(super) enum DlqCommand {
    /// Print a pipeline's dead letters (read without joining a group), then
    /// a summary by kind and by plugin.
    List {
        #[command(flatten)]
        target: DlqTarget,
        /// Only the newest N selected dead letters.
        #[arg(long)]
        limit: Option<usize>,
        /// JSON lines instead: `sluice exec` input events (the source
        /// event) with the dead letter's context under `sluice`.
        #[arg(long)]
        json: bool,
    },
    /// Run the selected dead letters through the pipeline's current plugin
    /// chain and write the results, recording progress as the group
    /// `sluice-redrive-<pipeline>`.
    Redrive {
        #[command(flatten)]
        target: DlqTarget,
        /// Print what would become of each selected dead letter (`sluice
        /// exec` outcome lines); write and commit nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which pipeline's dead letters, and which of them.
#[derive(Debug, Args)]
pub(super) struct DlqTarget {
    /// The pipeline TOML file.
    config: PathBuf,
    /// The pipeline whose DLQ topic to read.
    #[arg(long)]
    pipeline: String,
    /// Only this failure kind (`invalid`, `trap`, ..., or `foreign`).
    #[arg(long)]
    kind: Option<String>,
    /// Only dead letters of this plugin.
    #[arg(long)]
    plugin: Option<String>,
    /// Only dead letters that failed at or after TIME: RFC 3339
    /// (2026-11-27T10:00:00Z), a date (2026-11-27) or a duration ago (15m,
    /// 2h, 3d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

impl DlqTarget {
    fn load(&self) -> anyhow::Result<(Config, dlq::Selection)> {
        let selection = dlq::Selection::parse(
            self.kind.as_deref(),
            self.plugin.as_deref(),
            self.since.as_deref(),
            crate::clock::now_ms(),
        )?;
        Ok((Config::load(&self.config)?, selection))
    }
}

pub(super) fn dlq_command(command: DlqCommand) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match command {
        DlqCommand::List {
            target,
            limit,
            json,
        } => {
            let (config, selection) = target.load()?;
            let options = dlq::ListOptions {
                selection,
                limit,
                ..dlq::ListOptions::default()
            };
            let (records, summary) =
                dlq::list(&config, &target.pipeline, &options).with_context(|| {
                    format!("cannot list the dead letters of `{}`", target.pipeline)
                })?;
            for record in &records {
                if json {
                    writeln!(out, "{}", record.json_line())?;
                } else {
                    writeln!(out, "{}", dlq::list::render_line(record))?;
                }
            }
            if json {
                tracing::info!(?summary, "listed");
            } else {
                writeln!(out, "{}", dlq::list::render_summary(&summary))?;
            }
        }
        DlqCommand::Redrive { target, dry_run } => {
            let (config, selection) = target.load()?;
            let options = dlq::RedriveOptions {
                selection,
                dry_run,
                ..dlq::RedriveOptions::default()
            };
            let mut failed_print = None;
            let engine = super::engine()?;
            let summary = dlq::redrive(
                &engine,
                &config,
                &target.pipeline,
                &options,
                &mut |outcome| {
                    if let Some(line) = redrive_line(outcome)
                        && let Err(e) = writeln!(out, "{line}")
                    {
                        failed_print.get_or_insert(e);
                    }
                },
            )
            .with_context(|| format!("cannot redrive the dead letters of `{}`", target.pipeline))?;
            if let Some(e) = failed_print {
                return Err(e.into());
            }
            let s = &summary;
            writeln!(
                out,
                "{}group {}: read {}, selected {}, redriven {}, outputs {}, failed again {}, \
                 passed over {}, foreign {}",
                if s.dry_run {
                    "dry run, nothing written; "
                } else {
                    ""
                },
                s.group,
                s.read,
                s.selected,
                s.redriven,
                s.outputs,
                s.failed_again,
                s.passed_over,
                s.foreign
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `sluice dlq redrive` prints for one record: nothing for a record
/// passed over.
fn redrive_line(outcome: &dlq::RecordOutcome) -> Option<String> {
    let at = &outcome.dlq;
    Some(match &outcome.disposition {
        dlq::Disposition::DryRun { outcome } => outcome.to_string(),
        dlq::Disposition::Redriven { outputs } => format!("{at}: redriven -> {outputs} outputs"),
        dlq::Disposition::FailedAgain {
            kind,
            message,
            attempts,
        } => format!("{at}: failed again -> {kind} (attempts {attempts}): {message}"),
        dlq::Disposition::Foreign { reason } => format!("{at}: foreign, skipped ({reason})"),
        dlq::Disposition::PassedOver => return None,
    })
}

/// Most records a redrive through the HTTP API lists in its answer (the
/// summary counts them all).
const REDRIVE_RECORDS_SHOWN: usize = 1000;

/// The redrive behind `POST /api/pipelines/{name}/redrive`: what `sluice
/// dlq redrive` does, with the config file as it is now (its current
/// chain), reaching an embedded broker at its address, on the process's
/// own engine (one epoch ticker, one compile at a time).
pub(super) fn redrive_hook(
    path: PathBuf,
    embedded: Option<String>,
    engine: PluginEngine,
) -> crate::http::RedriveHook {
    std::sync::Arc::new(move |request: crate::http::RedriveRequest| {
        use crate::http::RedriveFailure;
        let mut config = Config::load(&path).map_err(|e| RedriveFailure::Failed(e.to_string()))?;
        if let Some(bootstrap) = &embedded {
            config.kafka.brokers = crate::config::Brokers::List(bootstrap.clone());
        }
        let options = dlq::RedriveOptions {
            selection: dlq::Selection {
                kind: request.kind,
                plugin: request.plugin,
                since_ms: request.since,
            },
            dry_run: request.dry_run,
            ..dlq::RedriveOptions::default()
        };
        let mut records = Vec::new();
        let summary = dlq::redrive(
            &engine,
            &config,
            &request.pipeline,
            &options,
            &mut |record| {
                if records.len() < REDRIVE_RECORDS_SHOWN {
                    records.push(record.clone());
                }
            },
        )
        .map_err(|e| match e {
            dlq::DlqError::UnknownPipeline { .. } => RedriveFailure::UnknownPipeline(e.to_string()),
            e => RedriveFailure::Failed(e.to_string()),
        })?;
        Ok(serde_json::json!({ "summary": summary, "records": records }))
    })
}
