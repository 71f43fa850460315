//! `sluice exec`: run a plugin over events read as JSON lines and print one
//! JSON line per event with its outcome. No Kafka involved; this is the
//! plugin author's inner loop. The lines' format is [`crate::json_lines`].
//!
//! A plugin that keeps state gets an in-memory store for the run, empty
//! unless `--state-in` seeds it; `--state-out` writes it once every event
//! is processed. Events of different partitions are never in one call: a
//! batch ends where the partition changes.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::json_lines::{outcome_json, parse_event, parse_state, state_json};
use crate::plugin::{
    CompiledPlugin, Event, InstanceSettings, PluginEngine, PluginError, PluginRunner, PluginState,
};

/// Why `sluice exec` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{source_name}: line {line}: {message}")]
    Input {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("cannot write output: {0}")]
    Write(std::io::Error),
    /// A `--state-in` file that cannot be read or is not state, or a
    /// `--state-out` file that cannot be written.
    #[error("state file {}: {message}", path.display())]
    State { path: PathBuf, message: String },
}

/// What `sluice exec` does.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub plugin: PathBuf,
    pub settings: InstanceSettings,
    /// Events per `process` call.
    pub batch_size: usize,
    /// The state to start from (see the module's documentation).
    pub state_in: Option<PathBuf>,
    /// Where to write the state after the run.
    pub state_out: Option<PathBuf>,
}

/// Counts of a finished run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecSummary {
    pub events: usize,
    pub ok: usize,
    pub failed: usize,
    pub outputs: usize,
}

/// Runs the plugin over every event of `input` (named `source_name` in
/// errors), writing one line per event to `out`. Stops at the first
/// malformed line, after writing the outcomes of the lines before it.
pub fn run(
    engine: &PluginEngine,
    options: &ExecOptions,
    source_name: &str,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<ExecSummary, ExecError> {
    let name = plugin_name(&options.plugin);
    let plugin = Arc::new(CompiledPlugin::load(engine, &name, &options.plugin)?);
    let state = match &options.state_in {
        Some(path) => read_state(path)?,
        None => PluginState::default(),
    };
    let mut runner = PluginRunner::with_state(plugin, Arc::new(options.settings.clone()), state)?;

    let batch_size = options.batch_size.max(1);
    let mut summary = ExecSummary::default();
    let mut batch: Vec<Event> = Vec::with_capacity(batch_size);
    let mut lines: Vec<usize> = Vec::with_capacity(batch_size);
    let mut flush = |batch: &mut Vec<Event>,
                     lines: &mut Vec<usize>,
                     summary: &mut ExecSummary|
     -> Result<(), ExecError> {
        let outcomes = runner.process(batch);
        for ((event, line), outcome) in batch.iter().zip(lines.iter()).zip(&outcomes) {
            summary.events += 1;
            match outcome {
                Ok(outputs) => {
                    summary.ok += 1;
                    summary.outputs += outputs.len();
                }
                Err(_) => summary.failed += 1,
            }
            let line = outcome_json(*line, event, outcome);
            serde_json::to_writer(&mut out, &line).map_err(|e| ExecError::Write(e.into()))?;
            out.write_all(b"\n").map_err(ExecError::Write)?;
        }
        out.flush().map_err(ExecError::Write)?;
        batch.clear();
        lines.clear();
        Ok(())
    };

    let mut index = 0i64;
    for (number, line) in input.lines().enumerate() {
        let number = number + 1;
        let line = line.map_err(|source| ExecError::Read {
            source_name: source_name.to_owned(),
            error: source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let event = match parse_event(&line, index) {
            Ok(event) => event,
            Err(message) => {
                // Report the good lines before the bad one, then stop.
                flush(&mut batch, &mut lines, &mut summary)?;
                return Err(ExecError::Input {
                    source_name: source_name.to_owned(),
                    line: number,
                    message,
                });
            }
        };
        index += 1;
        // One partition per call: the call sees that partition's state.
        if batch
            .last()
            .is_some_and(|last| last.partition != event.partition)
        {
            flush(&mut batch, &mut lines, &mut summary)?;
        }
        batch.push(event);
        lines.push(number);
        if batch.len() == batch_size {
            flush(&mut batch, &mut lines, &mut summary)?;
        }
    }
    flush(&mut batch, &mut lines, &mut summary)?;
    if let Some(path) = &options.state_out {
        write_state(path, runner.state())?;
    }
    Ok(summary)
}

/// Reads a `--state-in` file.
fn read_state(path: &Path) -> Result<PluginState, ExecError> {
    let error = |message: String| ExecError::State {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    // serde_json's message ends with the line and column.
    let value: Value = serde_json::from_str(&text).map_err(|e| error(format!("{e}")))?;
    parse_state(value).map_err(error)
}

/// Writes a `--state-out` file.
fn write_state(path: &Path, state: &PluginState) -> Result<(), ExecError> {
    let mut text =
        serde_json::to_string_pretty(&state_json(state)).map_err(|e| ExecError::State {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| ExecError::State {
        path: path.to_owned(),
        message: format!("cannot write: {e}"),
    })
}

/// The name a plugin file goes by: its file name without `.wasm`.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
