//! The `sluice` command line. Parses arguments, sets up logging, and hands
//! over to the library; nothing here knows how events are processed.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::exec::{self, ExecOptions};
use crate::plugin::{
    DEFAULT_DEADLINE_MS, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUTS_PER_EVENT,
    DEFAULT_MEMORY_MIB, DirGrant, InstanceSettings, Limits, MAX_MEMORY_MIB, Sandbox,
};
use crate::supervisor::{self, Supervisor};
use crate::{demo, dlq, reload, scaffold};

/// Kafka event processing with sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How logs are written to stderr: `text`, or `json` (one object per
    /// line, the event's fields at the top level and the enclosing span's
    /// pipeline, plugin, topic, partition and offset under `span`).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SLUICE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

/// The values of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a plugin over JSON-lines events (a file or stdin) and print one
    /// JSON line per event with its outcome. No Kafka needed.
    Exec(ExecArgs),
    /// Validate a pipeline file and load every plugin it names (running
    /// `init` with its config), without touching Kafka.
    Check {
        /// The pipeline TOML file.
        config: PathBuf,
    },
    /// Run the pipelines of a file until SIGINT/SIGTERM, then drain, commit
    /// and exit.
    Run {
        /// The pipeline TOML file.
        config: PathBuf,
        /// Seconds between periodic looks for edited files, on top of
        /// file-system events (0 turns them off).
        #[arg(long, default_value_t = 2.0)]
        poll_interval_secs: f64,
        /// Do not subscribe to file-system events; look for edits only
        /// periodically and on SIGHUP.
        #[arg(long)]
        no_watch: bool,
        /// Serve the status page at `/`, its JSON API under `/api/`,
        /// Prometheus metrics at `/metrics`, liveness at `/healthz` and
        /// readiness at `/readyz` on this address (e.g. 127.0.0.1:9464).
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// The bearer token that allows changes through `--http` (redrive);
        /// without it the endpoint is read-only. Prefer the environment
        /// variable: arguments show in `ps`.
        #[arg(long, env = "SLUICE_HTTP_TOKEN", hide_env_values = true)]
        http_token: Option<String>,
    },
    /// The tutorial scenario: produce orders (plus malformed ones) to the
    /// first pipeline's input, process them, show what landed where.
    Demo {
        /// The pipeline TOML file.
        #[arg(default_value = "config/demo.toml")]
        config: PathBuf,
        /// How many orders to produce.
        #[arg(long, default_value_t = 100)]
        orders: usize,
        /// Across how many customers.
        #[arg(long, default_value_t = 10)]
        customers: usize,
        /// How long to wait for every record to land, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Investigate and redrive a pipeline's dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Create a plugin project: a working plugin with a unit test, sample
    /// events and a README giving the commands that build, test and run it.
    New {
        /// The plugin's name (lowercase letters, digits and `-`): the
        /// component is `<name>.wasm`, loaded as `plugin = "<name>"`.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value_t = scaffold::Lang::Rust)]
        lang: scaffold::Lang,
        /// Where to create the project directory `<name>`.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Sluice checkout whose SDK the project depends on (default:
        /// the one this binary was built from).
        #[arg(long)]
        sluice: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
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
struct DlqTarget {
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
            crate::status::now_ms(),
        )?;
        Ok((Config::load(&self.config)?, selection))
    }
}

#[derive(Debug, Args)]
struct ExecArgs {
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

/// Entry point of the `sluice` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Exec(args) => exec_command(args),
        Command::Check { config } => {
            let config = Config::load(&config)?;
            supervisor::check(&config)?;
            let steps: usize = config.pipelines.iter().map(|p| p.steps.len()).sum();
            println!(
                "{}: OK ({} pipelines, {steps} plugin steps)",
                config.path.display(),
                config.pipelines.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            poll_interval_secs,
            no_watch,
            http,
            http_token,
        } => {
            let options = reload::WatchOptions {
                poll_interval: (poll_interval_secs > 0.0)
                    .then(|| Duration::from_secs_f64(poll_interval_secs)),
                events: !no_watch,
                ..reload::WatchOptions::default()
            };
            let http = match http {
                Some(addr) => {
                    // Empty is unset, the safe side (read-only): a compose
                    // file passes `${SLUICE_HTTP_TOKEN:-}` through as "".
                    let token = http_token
                        .as_deref()
                        .filter(|token| !token.is_empty())
                        .map(crate::http::Token::new)
                        .transpose()
                        .context("--http-token / SLUICE_HTTP_TOKEN")?;
                    let options = crate::http::HttpOptions {
                        token,
                        ..crate::http::HttpOptions::default()
                    };
                    Some((addr, options))
                }
                None => None,
            };
            run_command(&config, &options, http)
        }
        Command::Demo {
            config,
            orders,
            customers,
            timeout_secs,
        } => {
            let config = Config::load(&config)?;
            let options = demo::DemoOptions {
                orders,
                customers,
                timeout: Duration::from_secs(timeout_secs),
            };
            demo::run(config, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq(command) => dlq_command(command),
        Command::New {
            name,
            lang,
            dir,
            sluice,
        } => {
            let new = scaffold::NewPlugin {
                name,
                lang,
                dir,
                checkout: sluice.unwrap_or_else(scaffold::default_checkout),
            };
            let (project, files) = scaffold::create(&new)?;
            println!(
                "created {lang} plugin `{}` in {}:",
                new.name,
                project.display()
            );
            for file in files {
                println!("  {file}");
            }
            println!("its README.md says how to build, test and run it");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Most records a redrive through the HTTP API lists in its answer (the
/// summary counts them all).
const REDRIVE_RECORDS_SHOWN: usize = 1000;

/// The redrive behind `POST /api/pipelines/{name}/redrive`: what `sluice
/// dlq redrive` does, with the config file as it is now (its current
/// chain), reaching an embedded broker at its address.
fn redrive_hook(path: PathBuf, embedded: Option<String>) -> crate::http::RedriveHook {
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
        let summary = dlq::redrive(&config, &request.pipeline, &options, &mut |record| {
            if records.len() < REDRIVE_RECORDS_SHOWN {
                records.push(record.clone());
            }
        })
        .map_err(|e| match e {
            dlq::DlqError::UnknownPipeline { .. } => RedriveFailure::UnknownPipeline(e.to_string()),
            e => RedriveFailure::Failed(e.to_string()),
        })?;
        Ok(serde_json::json!({ "summary": summary, "records": records }))
    })
}

/// `sluice run`: start everything, wait for a stop signal, drain.
fn run_command(
    path: &std::path::Path,
    watch: &reload::WatchOptions,
    http: Option<(std::net::SocketAddr, crate::http::HttpOptions)>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut supervisor = Supervisor::start(config)?;
    // Served once the pipelines run, so a healthy answer means running.
    let stop_http = tokio_util::sync::CancellationToken::new();
    let http_task = match http {
        Some((addr, mut options)) => {
            let embedded = supervisor.embedded().map(|k| k.bootstrap().to_owned());
            options.redrive = Some(redrive_hook(path.to_owned(), embedded));
            Some(runtime.block_on(crate::http::serve(
                addr,
                supervisor.status().clone(),
                options,
                stop_http.clone(),
            ))?)
        }
        None => None,
    };
    if let Some(kafka) = supervisor.embedded() {
        // On stdout so scripts and people can find it.
        println!("embedded Kafka broker: {}", kafka.bootstrap());
    }
    tracing::info!(
        config = %path.display(),
        "running; edits to the config and plugins apply live, SIGHUP reloads, SIGINT or SIGTERM stops"
    );
    let signal = runtime.block_on(reload::serve(&mut supervisor, watch));
    tracing::info!(signal, "stopping");
    // Not ready from now on: the endpoint keeps answering while it drains.
    supervisor.status().draining();
    supervisor.stop();
    drop(supervisor);
    stop_http.cancel();
    if let Some(serving) = http_task {
        let _ = runtime.block_on(serving.task);
    }
    Ok(ExitCode::SUCCESS)
}

fn dlq_command(command: DlqCommand) -> anyhow::Result<ExitCode> {
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
            let summary = dlq::redrive(&config, &target.pipeline, &options, &mut |outcome| {
                if let Some(line) = redrive_line(outcome)
                    && let Err(e) = writeln!(out, "{line}")
                {
                    failed_print.get_or_insert(e);
                }
            })
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

fn exec_command(args: ExecArgs) -> anyhow::Result<ExitCode> {
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
    let stdout = std::io::stdout().lock();
    let summary = match args.input.as_deref() {
        None => exec::run(&options, "stdin", std::io::stdin().lock(), stdout)?,
        Some(path) if path.as_os_str() == "-" => {
            exec::run(&options, "stdin", std::io::stdin().lock(), stdout)?
        }
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open input {}", path.display()))?;
            exec::run(
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

/// Logs go to stderr (stdout carries data); `SLUICE_LOG` or `RUST_LOG`
/// sets the filter, `--log-format json` (or `SLUICE_LOG_FORMAT=json`)
/// switches to JSON lines.
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SLUICE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == LogFormat::Json {
        // Top-level fields, so `pipeline`, `topic`, `partition` and
        // `offset` of an event are found where a log shipper looks first.
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
