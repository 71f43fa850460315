//! Noticing edits while running: file-system events on the config file and
//! the plugins directory (debounced), a periodic look for filesystems where
//! events are unreliable (container volumes, network mounts), and SIGHUP.
//! Every trigger leads to [`Reconcile::reconcile`], which compares files
//! with what was loaded (by their [`Fingerprint`]), so a missed or
//! duplicated event costs nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::shutdown;

/// What the reload loop drives (the supervisor).
pub trait Reconcile {
    /// The directories to watch for file events.
    fn watched_dirs(&self) -> Vec<PathBuf>;
    /// Looks for edited files and applies them; true when a file is still
    /// being written, so the loop should look again shortly.
    fn reconcile(&mut self) -> bool;
    /// Restarts what is due to start again.
    fn heal(&mut self, now: Instant);
}

/// How reload triggers are produced.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Look at the files this often even without events; `None` turns the
    /// periodic look off.
    pub poll_interval: Option<Duration>,
    /// Quiet time after the last file event before acting on it.
    pub debounce: Duration,
    /// Whether to subscribe to file-system events at all (off where they
    /// are unavailable, e.g. out of inotify watches).
    pub events: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll_interval: Some(Duration::from_secs(2)),
            debounce: Duration::from_millis(300),
            events: true,
        }
    }
}

/// The longest a burst of file events may put off a look at the files.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// How often the supervisor looks for pipelines to start again
/// ([`Reconcile::heal`]).
const HEAL_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until SIGINT/SIGTERM, reloading on edits and SIGHUP and restarting
/// pipelines that died. Returns the name of the stop signal.
pub async fn serve(supervisor: &mut impl Reconcile, options: &WatchOptions) -> &'static str {
    let (tx, mut events) = mpsc::channel::<()>(1);
    let _watcher = options
        .events
        .then(|| watch(supervisor.watched_dirs(), tx))
        .flatten();
    let mut hangup = hangup_signal();
    let mut poll = options.poll_interval.map(tokio::time::interval);
    let mut heal = tokio::time::interval(HEAL_INTERVAL);
    heal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown::signal();
    tokio::pin!(stop);
    loop {
        let look = tokio::select! {
            signal = &mut stop => return signal,
            Some(()) = events.recv() => {
                // Let a burst of events (a copy, an editor's save) end first,
                // but for at most MAX_DEBOUNCE: a directory that never goes
                // quiet (a log file, a build next to the plugins) must not
                // hold reloads back forever, nor a stop signal.
                let limit = tokio::time::sleep(MAX_DEBOUNCE);
                tokio::pin!(limit);
                loop {
                    tokio::select! {
                        signal = &mut stop => return signal,
                        _ = &mut limit => break,
                        more = tokio::time::timeout(options.debounce, events.recv()) => {
                            if !matches!(more, Ok(Some(()))) {
                                break;
                            }
                        }
                    }
                }
                "file event"
            }
            Some(()) = recv_hangup(&mut hangup) => "SIGHUP",
            _ = tick(&mut poll) => "periodic check",
            _ = heal.tick() => {
                tokio::task::block_in_place(|| supervisor.heal(Instant::now()));
                continue;
            }
        };
        tracing::debug!(trigger = look, "looking for changed files");
        // Reconciling blocks this task (compiles, waits for files to
        // settle); pipelines run on their own threads meanwhile.
        let mut again = tokio::task::block_in_place(|| supervisor.reconcile());
        while again {
            tokio::select! {
                signal = &mut stop => return signal,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            again = tokio::task::block_in_place(|| supervisor.reconcile());
        }
    }
}

/// What a file looked like: enough to notice an edit without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
}

/// The file's fingerprint, or `None` if it does not exist.
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// How long a file must stay unchanged to count as completely written.
const SETTLE: Duration = Duration::from_millis(250);

/// Waits [`SETTLE`] and looks again: `Some(fingerprint)` if the file did not
/// change meanwhile, `None` if it is still being written.
pub fn settle(path: &Path) -> Option<Option<Fingerprint>> {
    let before = fingerprint(path);
    std::thread::sleep(SETTLE);
    let after = fingerprint(path);
    (before == after).then_some(after)
}

/// Watches `dirs` (not recursively); each event nudges the channel. A
/// failure to watch is logged: the periodic look still works.
fn watch(dirs: Vec<PathBuf>, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already holds a nudge; that is enough.
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files; relying on periodic checks and SIGHUP");
            return None;
        }
    };
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; relying on periodic checks and SIGHUP");
        }
    }
    Some(watcher)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}

async fn recv_hangup(hangup: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        return signal.recv().await;
    }
    let _ = hangup;
    std::future::pending().await
}

async fn tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
