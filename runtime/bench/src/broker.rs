//! The brokers the throughput benchmark runs against, each in a process of
//! its own so that its CPU is never counted as the processor's:
//!
//! - `mock`: librdkafka's mock cluster, in a `sluice-bench broker` child
//!   that prints `bootstrap HOST:PORT`, then creates topics for
//!   `topic NAME PARTITIONS` lines on stdin (answering `ok` or
//!   `error MESSAGE`) and exits at EOF. It keeps at most ~5 MiB per
//!   partition and drops the oldest records beyond that, which bounds how
//!   many events a run can pre-produce ([`BrokerKind::max_events`]).
//! - `tansu`: started by the tests' own launcher (`sluice_testkit::tansu`):
//!   the `tansu` binary with its memory storage engine on a free loopback
//!   port, topics made with `tansu topic create`.
//!
//! Either child dies with the bench: the mock at stdin EOF, tansu through
//! the launcher's watchdog.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context as _, bail};

use sluice::kafka::embedded::EmbeddedKafka;
use sluice_testkit::tansu;

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
    process: Process,
}

enum Process {
    /// The `sluice-bench broker` child and its command pipe (its stdout
    /// answers).
    Mock {
        child: Child,
        control: Option<(ChildStdin, BufReader<ChildStdout>)>,
    },
    Tansu(tansu::Tansu),
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
        match &mut self.process {
            Process::Mock {
                control: Some((stdin, stdout)),
                ..
            } => {
                writeln!(stdin, "topic {name} {partitions}")
                    .and_then(|()| stdin.flush())
                    .context("the mock broker process is gone")?;
                let mut answer = String::new();
                stdout
                    .read_line(&mut answer)
                    .context("the mock broker process is gone")?;
                match answer.trim() {
                    "ok" => Ok(()),
                    other => bail!("mock broker: creating topic {name}: {other}"),
                }
            }
            Process::Mock { control: None, .. } => bail!("the mock broker process is gone"),
            Process::Tansu(tansu) => {
                let partitions = u32::try_from(partitions).context("too many partitions")?;
                Ok(tansu.create_topic(name, partitions)?)
            }
        }
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
            process: Process::Mock {
                child,
                control: Some((stdin, stdout)),
            },
        })
    }

    fn start_tansu() -> anyhow::Result<Broker> {
        let tansu = tansu::Tansu::start().context("cannot start tansu")?;
        Ok(Broker {
            kind: BrokerKind::Tansu,
            bootstrap: tansu.bootstrap(),
            process: Process::Tansu(tansu),
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Closing the mock's stdin ends it; tansu is killed by its own drop.
        if let Process::Mock { child, control } = &mut self.process {
            *control = None;
            let _ = child.wait();
        }
    }
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
