//! `sluice exec`'s arguments: the plugin's limits and sandbox as flags.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use clap::builder::RangedU64ValueParser;

use crate::exec::{self, ExecOptions};
use crate::plugin::{
    DEFAULT_DEADLINE_MS, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUTS_PER_EVENT,
    DEFAULT_MEMORY_MIB, DirGrant, InstanceSettings, Limits, MAX_MEMORY_MIB, Sandbox,
};

#[derive(Debug, Args)]
pub(super) struct ExecArgs {
    /// The plugin component (`.wasm`, built for wasm32-wasip2).
    plugin: PathBuf,
    /// JSON-lines events to read; stdin when absent or `-`.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// A `key=value` pair for the plugin's `init` config (repeatable).
    #[arg(long = "config", short = 'c', value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Events per call into the plugin.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Seed the plugin's state from this JSON file (by partition, then key).
    #[arg(long, value_name = "FILE")]
    state_in: Option<PathBuf>,
    /// Write the plugin's state to this JSON file after the run.
    #[arg(long, value_name = "FILE")]
    state_out: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Resource limits of a plugin instance.
#[derive(Debug, Args)]
struct LimitArgs {
    /// Memory cap of the plugin instance, in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_MEMORY_MIB as u64))]
    memory_mib: usize,
    /// Deadline of one call into the plugin, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_DEADLINE_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    deadline_ms: u64,
    /// Largest output record (key + value + headers), in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUT_BYTES)]
    max_output_bytes: usize,
    /// Most outputs of one event; an event with more fails as
    /// `output-rejected`.
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUTS_PER_EVENT,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_outputs: usize,
}

/// Grants beyond the default sandbox (which denies everything).
#[derive(Debug, Args)]
struct SandboxArgs {
    /// Let the plugin read an environment variable: `NAME` passes the host's
    /// value, `NAME=VALUE` sets one (repeatable).
    #[arg(long = "allow-env")]
    allow_env: Vec<String>,
    /// Let the plugin read a host directory: `HOST` or `HOST:GUEST`
    /// (read-only; repeatable).
    #[arg(long = "allow-dir")]
    allow_dir: Vec<String>,
    /// Let the plugin open network connections.
    #[arg(long)]
    allow_network: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got `{s}`")),
    }
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.memory_mib << 20,
            deadline: Duration::from_millis(self.deadline_ms),
            max_output_bytes: self.max_output_bytes,
            max_outputs_per_event: self.max_outputs,
        }
    }
}

impl SandboxArgs {
    fn sandbox(&self) -> anyhow::Result<Sandbox> {
        let mut env = Vec::new();
        for grant in &self.allow_env {
            match grant.split_once('=') {
                Some((name, value)) => env.push((name.to_owned(), value.to_owned())),
                None => match std::env::var(grant) {
                    Ok(value) => env.push((grant.clone(), value)),
                    Err(_) => bail!("--allow-env {grant}: the variable is not set"),
                },
            }
        }
        let dirs = self
            .allow_dir
            .iter()
            .map(|grant| {
                let (host, guest) = grant.split_once(':').unwrap_or((grant, grant));
                DirGrant {
                    host: host.into(),
                    guest: guest.to_owned(),
                    writable: false,
                }
            })
            .collect();
        Ok(Sandbox {
            env,
            dirs,
            network: self.allow_network,
        })
    }
}

pub(super) fn exec_command(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let options = ExecOptions {
        plugin: args.plugin,
        settings: InstanceSettings {
            limits: args.limits.limits(),
            sandbox: args.sandbox.sandbox()?,
            config: args.config,
            ..InstanceSettings::default()
        },
        batch_size: args.batch_size,
        state_in: args.state_in,
        state_out: args.state_out,
    };
    let engine = super::engine()?;
    let stdout = std::io::stdout().lock();
    let summary = match args.input.as_deref() {
        None => exec::run(&engine, &options, "stdin", std::io::stdin().lock(), stdout)?,
        Some(path) if path.as_os_str() == "-" => {
            exec::run(&engine, &options, "stdin", std::io::stdin().lock(), stdout)?
        }
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open input {}", path.display()))?;
            exec::run(
                &engine,
                &options,
                &path.display().to_string(),
                BufReader::new(file),
                stdout,
            )?
        }
    };
    tracing::info!(
        events = summary.events,
        ok = summary.ok,
        failed = summary.failed,
        outputs = summary.outputs,
        "exec finished"
    );
    Ok(ExitCode::SUCCESS)
}
