//! The brokers the throughput benchmark runs against, each in a process of
//! its own so that its CPU is never counted as the processor's:
//!
//! - `mock`: librdkafka's mock cluster, in a `sluice-bench broker` child
//!   that prints `bootstrap HOST:PORT`, then creates topics for
//!   `topic NAME PARTITIONS` lines on stdin (answering `ok` or
//!   `error MESSAGE`) and exits at EOF. It keeps at most ~5 MiB per
//!   partition and drops the oldest records beyond that, which bounds how
//!   many events a run can pre-produce ([`BrokerKind::max_events`]).
//! - `tansu`: the `tansu` binary (`$SLUICE_TANSU`, else on `PATH`; see
//!   `scripts/setup`) with its memory storage engine on a free loopback
//!   port, topics made with `tansu topic create`.
//!
//! Either child dies with the bench: the mock at stdin EOF, tansu through a
//! `sh` watchdog that holds a pipe from us and kills it when the pipe
//! closes.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::kafka::embedded::EmbeddedKafka;

/// Bytes per partition the mock cluster keeps before it drops old records
/// (librdkafka's `rdkafka_mock.c`: 5 MiB); we stay under 4 MiB.
pub const MOCK_PARTITION_BUDGET: usize = 4 << 20;
/// Bytes a record takes in a v2 batch beyond its value: the 8-byte key we
/// write, lengths, deltas and attributes, plus the batch header amortised.
const RECORD_OVERHEAD: usize = 24;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    /// librdkafka's mock cluster (in a child process).
    Mock,
    /// tansu with its memory storage engine.
    Tansu,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Mock => "mock",
            BrokerKind::Tansu => "tansu",
        }
    }

    /// The most events of `size` bytes over `partitions` partitions a run
    /// may pre-produce without the broker dropping any.
    pub fn max_events(self, size: usize, partitions: usize) -> Option<usize> {
        match self {
            BrokerKind::Mock => Some(MOCK_PARTITION_BUDGET / (size + RECORD_OVERHEAD) * partitions),
            BrokerKind::Tansu => None,
        }
    }
}

/// A running broker process; killed when dropped.
pub struct Broker {
    kind: BrokerKind,
    bootstrap: String,
    child: Child,
    /// The mock's command pipe (its stdout answers).
    control: Option<(ChildStdin, BufReader<ChildStdout>)>,
    /// tansu: its binary (for `topic create`) and the watchdog.
    tansu: Option<(PathBuf, Child, ChildStdin)>,
}

impl Broker {
    /// Starts a broker of `kind` and waits until it accepts connections.
    pub fn start(kind: BrokerKind) -> anyhow::Result<Broker> {
        match kind {
            BrokerKind::Mock => Self::start_mock(),
            BrokerKind::Tansu => Self::start_tansu(),
        }
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates `name` with `partitions` partitions.
    pub fn create_topic(&mut self, name: &str, partitions: usize) -> anyhow::Result<()> {
        if let Some((stdin, stdout)) = &mut self.control {
            writeln!(stdin, "topic {name} {partitions}")
                .and_then(|()| stdin.flush())
                .context("the mock broker process is gone")?;
            let mut answer = String::new();
            stdout
                .read_line(&mut answer)
                .context("the mock broker process is gone")?;
            return match answer.trim() {
                "ok" => Ok(()),
                other => bail!("mock broker: creating topic {name}: {other}"),
            };
        }
        if let Some((bin, _, _)) = &self.tansu {
            let broker = format!("tcp://{}", self.bootstrap);
            let out = Command::new(bin)
                .args(["topic", "create", name, "--broker", &broker])
                .args(["--partitions", &partitions.to_string()])
                .env("NO_COLOR", "1")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {} topic create", bin.display()))?;
            if !out.status.success() {
                bail!(
                    "tansu topic create {name} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            return Ok(());
        }
        bail!("broker has no way to create topics")
    }

    fn start_mock() -> anyhow::Result<Broker> {
        let exe = std::env::current_exe().context("cannot find the sluice-bench binary")?;
        let mut child = Command::new(exe)
            .arg("broker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the mock broker process")?;
        let stdin = child.stdin.take().context("mock broker: no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("mock broker: no stdout")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .context("mock broker: no bootstrap line")?;
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap ")
            .with_context(|| format!("mock broker: unexpected first line {line:?}"))?
            .to_owned();
        Ok(Broker {
            kind: BrokerKind::Mock,
            bootstrap,
            child,
            control: Some((stdin, stdout)),
            tansu: None,
        })
    }

    fn start_tansu() -> anyhow::Result<Broker> {
        let bin = tansu_binary()?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("sluice-bench-tansu-{port}.log"));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("CLUSTER_ID")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let (watchdog, pipe) = watchdog(child.id())?;
        let broker = Broker {
            kind: BrokerKind::Tansu,
            bootstrap: format!("127.0.0.1:{port}"),
            child: {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Ok(Some(status)) = child.try_wait() {
                        bail!("tansu exited at start ({status}); see {}", log.display());
                    }
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                        break child;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        bail!(
                            "tansu did not listen on {addr} within 30 s; see {}",
                            log.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            },
            control: None,
            tansu: Some((bin, watchdog, pipe)),
        };
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Closing the mock's stdin ends it; tansu needs a kill.
        self.control = None;
        if let Some((_, mut watchdog, pipe)) = self.tansu.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(pipe);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `$SLUICE_TANSU`, else `tansu` on `PATH`.
fn tansu_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_TANSU").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
        .context("tansu not found on PATH: run scripts/setup, or set SLUICE_TANSU")
}

/// `sh` that kills `pid` when its stdin (a pipe only we hold) closes, so
/// the broker never outlives the bench, however the bench ends.
fn watchdog(pid: u32) -> anyhow::Result<(Child, ChildStdin)> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _ignored; kill -9 \"$0\" 2>/dev/null",
            &pid.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the broker watchdog")?;
    let pipe = child.stdin.take().context("watchdog: no stdin")?;
    Ok((child, pipe))
}

/// `sluice-bench broker`: the mock cluster, serving topic creation on stdin.
pub fn serve_mock() -> anyhow::Result<()> {
    let kafka = EmbeddedKafka::start()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap {}", kafka.bootstrap())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["topic", name, partitions] => match partitions.parse::<i32>() {
                Ok(partitions) => match kafka.create_topic(name, partitions) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("error {e:#}"),
                },
                Err(e) => format!("error bad partition count: {e}"),
            },
            _ => format!("error unknown command {line:?}"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}
