//! The `sluice` binary as tests run it: `sluice run` as a child process
//! (stopped with SIGTERM or killed with SIGKILL), one-shot commands such as
//! `sluice check`, pipeline files written into a temporary directory, and a
//! [`Scene`] that bundles a tansu broker with such a directory.
//!
//! ```ignore
//! let scene = Scene::new();                       // broker + tempdir
//! scene.create_topic("orders", 3);
//! let config = scene.write_config("sluice.toml", &format!(
//!     "{}\n[[pipeline]]\nname = \"orders\"\n...", scene.kafka_toml()));
//! let mut run = scene.start(&config, "run1");     // `sluice run --http`, logs in the tempdir
//! run.wait_assigned("orders", 3);                 // its /api/status, at most `TIMEOUT`
//! run.stop();                                     // SIGTERM: drain, commit, exit 0
//! ```
//!
//! Every process is killed (SIGKILL) and reaped when its handle is dropped,
//! also when a test panics; a panicking test prints the tail of each
//! process's log.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::tansu::Tansu;

/// How long a test waits for records to land or for a log line (a group join
/// alone takes ~3 s on tansu; generous because tests share two cores).
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The `sluice` binary under test: `$SLUICE_BIN`, or the one cargo built
/// next to the running test (`target/<profile>/sluice` for a test binary
/// in `target/<profile>/deps/`). Cargo builds it before the integration
/// tests of its package.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the path of the test binary");
    exe.parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("sluice"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `sluice` binary next to {}: run the tests with `cargo test -p sluice`, \
                 or set SLUICE_BIN",
                exe.display()
            )
        })
}

/// The repository's top directory.
pub fn repo_dir() -> PathBuf {
    // This crate lives in `<repo>/tests/kit`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/kit is two levels down")
        .to_path_buf()
}

/// `<repo>/plugins`, absolute; panics if the example plugins are not built.
pub fn plugins_dir() -> PathBuf {
    for name in ["passthrough", "order-enrich", "router", "hostile"] {
        plugin_path(name);
    }
    repo_dir().join("plugins")
}

/// The `.wasm` of a plugin by name: `plugins/<name>.wasm`, else
/// `plugins/fixtures/<name>.wasm` (e.g. `order-enrich`, `hostile`); panics
/// if it is not built.
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = repo_dir().join("plugins");
    let example = dir.join(format!("{name}.wasm"));
    let path = if example.is_file() {
        example
    } else {
        dir.join("fixtures").join(format!("{name}.wasm"))
    };
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins first",
        path.display()
    );
    path
}

/// `sha256:<hex>` of a file, as the `sluice.plugin.digest` header names a
/// plugin (computed here, not by the library under test).
pub fn digest_of_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// `[kafka]` and `[plugins]` sections for a test pipeline file: the given
/// broker, consumer settings that make tansu's group joins quick (~3 s), a
/// short producer linger, and `plugins_dir`.
pub fn kafka_toml(bootstrap: &str, plugins_dir: &Path) -> String {
    format!(
        r#"[kafka]
brokers = "{bootstrap}"
client_id = "sluice-e2e"

[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
"fetch.wait.max.ms" = 50
"auto.commit.interval.ms" = 500

[kafka.producer]
"linger.ms" = 2

[plugins]
dir = "{}"
"#,
        plugins_dir.display()
    )
}

/// A tansu broker and a temporary directory for configs and logs. Drop
/// order: the directory outlives the broker.
pub struct Scene {
    pub broker: Tansu,
    pub dir: tempfile::TempDir,
}

impl Scene {
    /// Starts a broker and makes a fresh directory.
    pub fn new() -> Scene {
        let broker = Tansu::start().expect("start tansu (run scripts/setup if it is missing)");
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        Scene { broker, dir }
    }

    /// "127.0.0.1:PORT".
    pub fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// Creates a topic; panics on failure.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.broker
            .create_topic(name, partitions)
            .unwrap_or_else(|e| panic!("create topic `{name}`: {e}"));
    }

    /// Creates topics, as (name, partitions); panics on failure.
    pub fn create_topics(&self, topics: &[(&str, u32)]) {
        for &(name, partitions) in topics {
            self.create_topic(name, partitions);
        }
    }

    /// The `[kafka]` and `[plugins]` sections for this broker and the
    /// repository's `plugins/`.
    pub fn kafka_toml(&self) -> String {
        kafka_toml(&self.bootstrap(), &plugins_dir())
    }

    /// The `[kafka]` and `[plugins]` sections for this broker, with
    /// `plugins.dir` = `plugins` (e.g. `plugins_dir().join("fixtures")`).
    pub fn kafka_toml_with(&self, plugins: &Path) -> String {
        kafka_toml(&self.bootstrap(), plugins)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write the config");
        path
    }

    /// `sluice run CONFIG`, logging to `<dir>/<name>.stderr`.
    pub fn start(&self, config: &Path, name: &str) -> SluiceProcess {
        SluiceProcess::start(config, self.dir.path(), name)
    }

    /// `sluice run CONFIG ARGS...` (e.g. `--poll-interval-secs 1`), logging
    /// to `<dir>/<name>.stderr`.
    pub fn start_with_args(&self, config: &Path, name: &str, args: &[&str]) -> SluiceProcess {
        SluiceProcess::start_with_args(config, args, self.dir.path(), name)
    }

    /// `sluice run CONFIG` with environment variables `env` set for it,
    /// logging to `<dir>/<name>.stderr`.
    pub fn start_with_env(&self, config: &Path, name: &str, env: &[(&str, &str)]) -> SluiceProcess {
        SluiceProcess::start_with_env(config, &[], env, self.dir.path(), name)
    }

    /// A one-shot `sluice ARGS...` (e.g. `check`), at most `timeout`.
    pub fn cli(&self, args: &[&str], timeout: Duration) -> CliOutput {
        run_cli(args, self.dir.path(), timeout)
    }
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- tansu log (last 30 lines) ---\n{}",
                self.broker.log_tail(30)
            );
        }
    }
}

/// Starts `sluice ARGS...` with info-level logs (plain text) and stdout and
/// stderr going to the given files.
fn spawn(
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    env: &[(&str, &str)],
    stdout: &Path,
    stderr: &Path,
) -> Child {
    Command::new(binary())
        .args(args)
        .env("SLUICE_LOG", "info")
        .env_remove("RUST_LOG")
        // Test configs name their broker; the demo's falls back to the
        // embedded one without this.
        .env_remove("KAFKA_BROKERS")
        .env_remove("SLUICE_LOG_FORMAT")
        // Tests that want a token pass `--http-token`.
        .env_remove("SLUICE_HTTP_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(stdout).expect("create the stdout file"))
        .stderr(File::create(stderr).expect("create the stderr file"))
        .spawn()
        .expect("start sluice")
}

/// Runs `sluice exec PLUGIN ARGS...` with warn-level logs and `env` set
/// (it wins over those defaults), feeding it `stdin`; returns what it did.
/// The input is written from another thread, so a large one cannot
/// deadlock on a full stdout pipe; a closed pipe (the binary exited early)
/// is not the caller's error.
pub fn exec_with_env<V: AsRef<OsStr>>(
    plugin: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, V)],
) -> std::process::Output {
    let mut child = Command::new(binary())
        .arg("exec")
        .arg(plugin)
        .args(args)
        .env("SLUICE_LOG", "warn")
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_LOG_FORMAT")
        .envs(env.iter().map(|(name, value)| (name, value.as_ref())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the sluice binary");
    let pipe = child.stdin.take();
    let input = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let _ = std::io::Write::write_all(&mut pipe, input.as_bytes());
        }
    });
    let output = child.wait_with_output().expect("wait for sluice");
    let _ = writer.join();
    output
}

/// A running `sluice run`, serving its HTTP endpoint on a loopback port so
/// tests can wait on its state ([`SluiceProcess::wait_status`]).
pub struct SluiceProcess {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
    http: String,
}

impl SluiceProcess {
    /// Starts `sluice run config` with info-level logs (plain text) going to
    /// `<log_dir>/<name>.stderr` and stdout to `<log_dir>/<name>.stdout`.
    pub fn start(config: &Path, log_dir: &Path, name: &str) -> SluiceProcess {
        SluiceProcess::start_with_args(config, &[], log_dir, name)
    }

    /// Like [`SluiceProcess::start`], with more arguments after the config
    /// (e.g. `--poll-interval-secs 1`). Returns once its endpoint answers,
    /// or once it has exited (a config it refuses).
    pub fn start_with_args(
        config: &Path,
        args: &[&str],
        log_dir: &Path,
        name: &str,
    ) -> SluiceProcess {
        SluiceProcess::start_with_env(config, args, &[], log_dir, name)
    }

    /// Like [`SluiceProcess::start_with_args`], with environment variables
    /// set for it (e.g. `SLUICE_INSTANCE_ID`).
    pub fn start_with_env(
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log_dir: &Path,
        name: &str,
    ) -> SluiceProcess {
        let stdout = log_dir.join(format!("{name}.stdout"));
        let stderr = log_dir.join(format!("{name}.stderr"));
        // A free port can be taken by someone else before sluice binds it;
        // then it exits saying so, and it is started again on another.
        for _ in 0..5 {
            let port = crate::tansu::free_port().expect("a free port");
            let http = format!("127.0.0.1:{port}");
            let run = [OsStr::new("run"), config.as_os_str()];
            let all = run
                .into_iter()
                .chain(args.iter().map(OsStr::new))
                .chain([OsStr::new("--http"), OsStr::new(&http)]);
            let mut process = SluiceProcess {
                name: name.to_owned(),
                child: spawn(all, env, &stdout, &stderr),
                status: None,
                stdout: stdout.clone(),
                stderr: stderr.clone(),
                http,
            };
            let deadline = Instant::now() + TIMEOUT;
            loop {
                if process.status().is_some() {
                    return process;
                }
                if process.try_wait().is_some() {
                    if process.stderr().contains("cannot listen on") {
                        break;
                    }
                    return process;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: no /api/status within {TIMEOUT:?}\n{}",
                    process.describe()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{name}: no free port for --http after 5 tries");
    }

    /// `host:port` of its HTTP endpoint.
    pub fn http_addr(&self) -> &str {
        &self.http
    }

    /// `GET path` on its endpoint: the status code and the body, or `None`
    /// if it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut response = agent(Duration::from_secs(5))
            .get(format!("http://{}{path}", self.http))
            .call()
            .ok()?;
        let code = response.status().as_u16();
        let body = response.body_mut().read_to_string().ok()?;
        Some((code, body))
    }

    /// The value of the metric series `series` as `/metrics` shows it
    /// now (`name{label="value",...}`, labels in the order Sluice writes
    /// them). Panics when the endpoint does not answer or the series is
    /// missing: a renamed series must fail a test, not read as 0.
    pub fn metric(&self, series: &str) -> f64 {
        let Some((200, text)) = self.get("/metrics") else {
            panic!(
                "{}: /metrics does not answer\n{}",
                self.name,
                self.describe()
            );
        };
        text.lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
            .unwrap_or_else(|| panic!("{}: no metric series `{series}` in\n{text}", self.name))
    }

    /// `POST path` with a JSON `body` and, when given, `Authorization:
    /// Bearer <token>`: the status code and the body.
    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut request = agent(TIMEOUT)
            .post(format!("http://{}{path}", self.http))
            .content_type("application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(body).expect("an answer");
        let code = response.status().as_u16();
        (code, response.body_mut().read_to_string().expect("a body"))
    }

    /// Its `/api/status`, or `None` if it does not answer.
    pub fn status(&self) -> Option<Status> {
        let (code, body) = self.get("/api/status")?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok().map(Status)
    }

    /// Waits until its status satisfies `done`, and returns that status.
    /// Panics (with `what`, the last status and the log) if the process
    /// exits first or [`TIMEOUT`] passes.
    pub fn wait_status(&mut self, what: &str, done: impl Fn(&Status) -> bool) -> Status {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        loop {
            if let Some(status) = self.status() {
                if done(&status) {
                    return status;
                }
                last = Some(status);
            }
            if let Some(exit) = self.try_wait() {
                panic!(
                    "{} exited ({exit}) while waiting for {what}\n{}",
                    self.name,
                    self.describe()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not reach {what} within {TIMEOUT:?}; last status: {}\n{}",
                self.name,
                last.map_or("none".to_owned(), |s| s.0.to_string()),
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until pipeline `name` owns `partitions` partitions.
    pub fn wait_assigned(&mut self, pipeline: &str, partitions: usize) -> Status {
        self.wait_status(
            &format!("{partitions} partitions assigned to `{pipeline}`"),
            |s| s.assigned(pipeline) == partitions,
        )
    }

    /// Waits for the `n`-th reload of `kind` (`plugin` or `config`) and
    /// returns it (see [`Status::reloads`]).
    pub fn wait_reload(&mut self, kind: &str, n: usize) -> serde_json::Value {
        let status = self.wait_status(&format!("{kind} reload #{n}"), |s| {
            s.reloads(kind).len() >= n
        });
        status.reloads(kind)[n - 1].clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for it to drain, commit and exit (at most
    /// 60 s; then it is killed and this panics).
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        match self.wait_timeout(Duration::from_secs(60)) {
            Some(status) => status,
            None => {
                self.kill9();
                panic!(
                    "{} did not exit within 60 s of SIGTERM\n{}",
                    self.name,
                    self.describe()
                );
            }
        }
    }

    /// [`SluiceProcess::terminate`], and it must have exited successfully.
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "{} exited with {status}\n{}",
            self.name,
            self.describe()
        );
    }

    /// SIGKILL, then reap it.
    pub fn kill9(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Name, status and log tail, for failure messages.
    pub fn describe(&self) -> String {
        let log = self.stderr();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        format!(
            "--- sluice `{}` (pid {}, status {:?}), last 60 log lines ---\n{tail}\n--- stdout ---\n{}",
            self.name,
            self.child.id(),
            self.status,
            self.stdout()
        )
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
    }
}

/// What a one-shot command did.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Both streams, for messages.
    pub fn text(&self) -> String {
        format!(
            "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `sluice ARGS...` with its output in files under `dir`; kills it and
/// panics if it has not exited within `timeout`.
pub fn run_cli(args: &[&str], dir: &Path, timeout: Duration) -> CliOutput {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_path = dir.join(format!("cli-{n}.stdout"));
    let err_path = dir.join(format!("cli-{n}.stderr"));
    let mut child = spawn(args, &[], &out_path, &err_path);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`sluice {}` did not exit within {timeout:?}\n--- stderr ---\n{}",
                args.join(" "),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// `sluice run`'s `/api/status`, with the lookups tests need.
#[derive(Debug, Clone)]
pub struct Status(pub serde_json::Value);

impl Status {
    /// Pipeline `name`, if configured.
    pub fn pipeline(&self, name: &str) -> Option<&serde_json::Value> {
        self.0["pipelines"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
    }

    /// `running` or `failed`; `None` when it is not configured.
    pub fn state(&self, pipeline: &str) -> Option<&str> {
        self.pipeline(pipeline)?["state"].as_str()
    }

    /// How many partitions pipeline `name` owns (0 if it is not running).
    pub fn assigned(&self, pipeline: &str) -> usize {
        self.pipeline(pipeline)
            .and_then(|p| p["assigned"].as_array())
            .map_or(0, Vec::len)
    }

    /// When pipeline `name` (last) started, ms since the epoch.
    pub fn started_at(&self, pipeline: &str) -> Option<i64> {
        self.pipeline(pipeline)?["started_at_ms"].as_i64()
    }

    /// How many partitions rebalances took from pipeline `name`.
    pub fn revocations(&self, pipeline: &str) -> u64 {
        self.pipeline(pipeline)
            .and_then(|p| p["revocations"].as_u64())
            .unwrap_or(0)
    }

    /// The partitions of pipeline `name` that wait for their state to be
    /// restored, as (topic, partition).
    pub fn restoring(&self, pipeline: &str) -> Vec<(String, i64)> {
        self.pipeline(pipeline)
            .and_then(|p| p["restoring"].as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|p| {
                        Some((p["topic"].as_str()?.to_owned(), p["partition"].as_i64()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events pipeline `name` processed since the process started.
    pub fn events(&self, pipeline: &str) -> u64 {
        self.pipeline(pipeline)
            .and_then(|p| p["events"].as_u64())
            .unwrap_or(0)
    }

    /// The digests of pipeline `name`'s plugins, in chain order.
    pub fn digests(&self, pipeline: &str) -> Vec<String> {
        self.pipeline(pipeline)
            .and_then(|p| p["plugins"].as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|p| p["digest"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For each plugin of pipeline `name`, how many instances it started.
    pub fn instances(&self, pipeline: &str) -> Vec<u64> {
        self.pipeline(pipeline)
            .and_then(|p| p["plugins"].as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|p| p["instances"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The reloads of `kind` (`plugin` or `config`), oldest first.
    pub fn reloads(&self, kind: &str) -> Vec<&serde_json::Value> {
        self.0["reloads"]
            .as_array()
            .map(|all| all.iter().filter(|r| r["kind"] == kind).collect())
            .unwrap_or_default()
    }
}

/// An HTTP client that returns error statuses as answers.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .new_agent()
}
