//! The rate limit on a plugin's log lines: a token bucket per compiled
//! plugin, so a plugin that logs in a loop cannot flood the host's log.
//! Lines over the budget are dropped and counted; a summary line says how
//! many, when lines get through again and when the plugin is dropped.
//!
//! The bucket belongs to the compiled plugin rather than to an instance:
//! a pipeline runs one instance per worker and starts a fresh one after
//! every trap, so a per-instance budget would multiply with the workers and
//! refill with each trap of a plugin that logs and then panics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lines a plugin may log at once after a quiet spell.
pub const LOG_BURST: u32 = 100;
/// Lines per second a plugin may log in the long run.
pub const LOG_LINES_PER_SEC: u32 = 100;
/// Least time between two summaries of suppressed lines while a plugin
/// keeps logging over its budget, so the summaries cannot flood the log
/// either.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// What [`TokenBucket::admit`] decided about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Log it.
    Log,
    /// Log it, after a summary saying this many earlier lines were
    /// suppressed.
    LogAfterSuppressed(u64),
    /// Drop it; it is counted for the next summary.
    Suppress,
}

/// The bucket itself, on an explicit clock so its arithmetic can be tested
/// without sleeping.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    refilled_at: Instant,
    suppressed: u64,
    summarised_at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(LOG_BURST),
            refilled_at: now,
            suppressed: 0,
            summarised_at: now,
        }
    }

    /// Decides about a line logged at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.refilled_at = self.refilled_at.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(LOG_LINES_PER_SEC))
            .min(f64::from(LOG_BURST));
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return Admission::Suppress;
        }
        self.tokens -= 1.0;
        if self.suppressed > 0
            && now.saturating_duration_since(self.summarised_at) >= SUMMARY_INTERVAL
        {
            self.summarised_at = now;
            return Admission::LogAfterSuppressed(std::mem::take(&mut self.suppressed));
        }
        Admission::Log
    }

    /// The lines suppressed since the last summary, now reported.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// The log budget of one compiled plugin, shared by its instances.
#[derive(Debug)]
pub struct LogLimit {
    plugin: Arc<str>,
    bucket: Mutex<TokenBucket>,
}

impl LogLimit {
    /// A full budget for `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        LogLimit {
            plugin,
            bucket: Mutex::new(TokenBucket::new(Instant::now())),
        }
    }

    /// Whether a line may be logged now; logs the summary of earlier
    /// suppressed lines first when it is due.
    pub fn admit(&self) -> bool {
        let admission = self.bucket.lock().admit(Instant::now());
        match admission {
            Admission::Log => true,
            Admission::LogAfterSuppressed(n) => {
                self.summary(n);
                true
            }
            Admission::Suppress => false,
        }
    }

    fn summary(&self, suppressed: u64) {
        tracing::warn!(
            target: "sluice::plugin",
            plugin = &*self.plugin,
            suppressed,
            "{suppressed} plugin log lines suppressed: over the budget of \
             {LOG_LINES_PER_SEC} lines/s (bursts of {LOG_BURST})"
        );
    }
}

impl Drop for LogLimit {
    fn drop(&mut self) {
        let suppressed = self.bucket.get_mut().take_suppressed();
        if suppressed > 0 {
            self.summary(suppressed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_and_summarised_once_a_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(start);
        for _ in 0..LOG_BURST {
            assert_eq!(bucket.admit(start), Admission::Log);
        }
        for _ in 0..500 {
            assert_eq!(bucket.admit(start), Admission::Suppress);
        }
        // 15 ms refill one and a half lines, but a summary waits for its
        // interval.
        let soon = start + Duration::from_millis(15);
        assert_eq!(bucket.admit(soon), Admission::Log);
        assert_eq!(bucket.admit(soon), Admission::Suppress);
        // A second later the bucket is full again and the summary is due.
        let later = start + Duration::from_secs(1) + Duration::from_millis(10);
        assert_eq!(bucket.admit(later), Admission::LogAfterSuppressed(501));
        assert_eq!(bucket.take_suppressed(), 0);
        for _ in 1..LOG_BURST {
            assert_eq!(bucket.admit(later), Admission::Log);
        }
        assert_eq!(bucket.admit(later), Admission::Suppress);
        assert_eq!(bucket.take_suppressed(), 1, "what a drop reports");
    }

    #[test]
    fn the_refill_is_capped_at_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(start);
        let much_later = start + Duration::from_secs(3600);
        let admitted = (0..10 * LOG_BURST)
            .filter(|_| bucket.admit(much_later) != Admission::Suppress)
            .count();
        assert_eq!(admitted, LOG_BURST as usize);
    }
}
