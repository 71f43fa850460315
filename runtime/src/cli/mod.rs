//! The `sluice` command line. Parses arguments, sets up logging, and hands
//! over to the library; nothing here knows how events are processed.

mod dlq;
mod exec;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::plugin::{EngineOptions, PluginEngine};
use crate::supervisor::{self, Supervisor};
use crate::{demo, reload, scaffold};
use dlq::{DlqCommand, dlq_command, redrive_hook};
use exec::{ExecArgs, exec_command};

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
            supervisor::check(&engine()?, &config)?;
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
            demo::run(engine()?, config, &options)?;
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
    let mut supervisor = Supervisor::start(engine()?, config)?;
    // Served once the pipelines run, so a healthy answer means running.
    let stop_http = tokio_util::sync::CancellationToken::new();
    let http_task = match http {
        Some((addr, mut options)) => {
            let embedded = supervisor.embedded().map(|k| k.bootstrap().to_owned());
            let engine = supervisor.engine().clone();
            options.redrive = Some(redrive_hook(path.to_owned(), embedded, engine));
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

/// The process's one plugin engine, set up as the environment asks
/// (compiled-plugin cache, perf map): the one place the engine's
/// environment is read.
fn engine() -> anyhow::Result<PluginEngine> {
    Ok(PluginEngine::new(&EngineOptions::from_process_env())?)
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
