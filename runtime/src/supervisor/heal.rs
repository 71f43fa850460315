//! Restarting what stopped: a pipeline whose poll thread ended without
//! being asked to, or that failed to start after a reload, is started
//! again after a backoff that doubles with every failure in a row.

use std::time::{Duration, Instant};

use super::Supervisor;
use crate::clock::now_ms;
use crate::metrics;

impl Supervisor {
    /// Restarts what is not running: a pipeline whose poll thread ended
    /// without being asked to (it panicked) is stopped and started again,
    /// and so is one that failed to start after a reload, each after a
    /// backoff that doubles with every failure in a row ([`RESTART_FIRST`]
    /// up to [`RESTART_MAX`]; a pipeline that ran [`RESTART_STABLE`] starts
    /// over). Each restart is counted in `sluice_pipeline_restarts_total`.
    /// A stuck poll thread cannot be taken back (it holds its partitions
    /// until the group evicts it): `/healthz` reports it, so that the
    /// process is restarted.
    pub fn heal(&mut self, now: Instant) {
        let dead: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for name in dead {
            let Some(pipeline) = self.pipelines.remove(&name) else {
                continue;
            };
            let ran_ms = now_ms() - pipeline.status().started_at_ms();
            let why = match pipeline.stop() {
                Err(e) => e.to_string(),
                Ok(()) => format!("pipeline `{name}`: its poll thread ended"),
            };
            let restart = self.restarts.entry(name.clone()).or_default();
            if ran_ms >= RESTART_STABLE.as_millis() as i64 {
                restart.failures = 0;
            }
            self.fail(&name, &why, now);
        }
        // Configured, not running, not scheduled: failed after a reload.
        let waiting: Vec<String> = self
            .config
            .pipelines
            .iter()
            .map(|p| p.name.clone())
            .filter(|name| {
                !self.pipelines.contains_key(name)
                    && self.restarts.get(name).is_none_or(|r| r.due.is_none())
            })
            .collect();
        for name in waiting {
            let why = self
                .status
                .failure(&name)
                .unwrap_or_else(|| "not running".into());
            self.fail(&name, &why, now);
        }
        // Forget what runs again, or is no longer configured.
        let configured: std::collections::HashSet<&str> = self
            .config
            .pipelines
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        self.restarts.retain(|name, restart| {
            if self.pipelines.contains_key(name) {
                restart.due = None;
            }
            configured.contains(name.as_str()) && (restart.due.is_some() || restart.failures > 0)
        });
        let due: Vec<String> = self
            .restarts
            .iter()
            .filter(|(_, r)| r.due.is_some_and(|due| due <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            match self.start_pipeline(&name) {
                Ok(()) => {
                    let metrics = metrics::global().pipeline(&name);
                    metrics.restarts.inc();
                    if let Some(restart) = self.restarts.get_mut(&name) {
                        restart.due = None;
                    }
                    tracing::info!(
                        pipeline = name,
                        restarts = metrics.restarts.get(),
                        "pipeline started again"
                    );
                }
                Err(e) => self.fail(&name, &format!("{e:#}"), now),
            }
        }
    }

    /// Records that pipeline `name` is not running because of `why`, and
    /// when it will be started again.
    fn fail(&mut self, name: &str, why: &str, now: Instant) {
        let restart = self.restarts.entry(name.to_owned()).or_default();
        let delay = restart.next_delay();
        restart.failures = restart.failures.saturating_add(1);
        restart.due = Some(now + delay);
        let error = format!("{why}; starting it again in {} s", delay.as_secs());
        tracing::error!(pipeline = name, error, "pipeline is not running");
        if let Some(config) = self.config.pipeline(name) {
            self.status.failed(config, error);
        }
    }
}

/// The first wait before a pipeline that died or failed is started again.
pub const RESTART_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const RESTART_MAX: Duration = Duration::from_secs(60);
/// How long a restarted pipeline must run before its next failure counts
/// as the first again.
pub const RESTART_STABLE: Duration = Duration::from_secs(60);

/// A pipeline's failures in a row, and when it is due to start again
/// (`None` while it runs).
#[derive(Debug, Default)]
pub(super) struct Restart {
    pub(super) failures: u32,
    pub(super) due: Option<Instant>,
}

impl Restart {
    /// [`RESTART_FIRST`], doubled for each failure in a row, at most
    /// [`RESTART_MAX`].
    pub(super) fn next_delay(&self) -> Duration {
        RESTART_FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(RESTART_MAX)
    }
}
