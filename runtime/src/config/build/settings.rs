//! A pipeline's settings sections and numbers: counts and durations,
//! `[pipeline.limits]`, `delivery`, `[pipeline.state]`, `[pipeline.retry]`
//! and `[pipeline.sandbox]`, each checked and defaulted.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::PipelineCheck;
use crate::config::raw::{RawLimits, RawRetry, RawSandbox, RawState};
use crate::config::{Delivery, OnCorrupt, RetryPolicy, StateConfig};
use crate::plugin::{DirGrant, Limits, MAX_MEMORY_MIB, Sandbox, StateLimits};

impl PipelineCheck<'_, '_, '_> {
    /// `value` if it is at least 1 (and at most `max`, and fits `T`), else a
    /// problem and `default`.
    pub(super) fn count<T: TryFrom<i64>>(
        &mut self,
        value: Option<Spanned<i64>>,
        field: &str,
        default: T,
        max: Option<i64>,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        let n = *value.get_ref();
        if n >= 1
            && max.is_none_or(|max| n <= max)
            && let Ok(n) = T::try_from(n)
        {
            return n;
        }
        let range = match max {
            Some(max) => format!("between 1 and {max}"),
            None => "at least 1".to_owned(),
        };
        self.at(value.span(), format!("`{field}` must be {range} (got {n})"));
        default
    }

    pub(super) fn millis(
        &mut self,
        value: Option<Spanned<i64>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match u64::try_from(*value.get_ref()) {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                self.at(value.span(), format!("`{field}` must not be negative"));
                default
            }
        }
    }

    pub(super) fn limits(&mut self, raw: Option<RawLimits>) -> Limits {
        let defaults = Limits::default();
        let Some(raw) = raw else {
            return defaults;
        };
        let memory_mib: usize = self.count(
            raw.memory_mib,
            "limits.memory_mib",
            defaults.memory_bytes >> 20,
            Some(MAX_MEMORY_MIB as i64),
        );
        let deadline_ms: u64 = self.count(
            raw.deadline_ms,
            "limits.deadline_ms",
            u64::try_from(defaults.deadline.as_millis()).unwrap_or(u64::MAX),
            None,
        );
        Limits {
            memory_bytes: memory_mib
                .checked_mul(1 << 20)
                .unwrap_or(defaults.memory_bytes),
            deadline: Duration::from_millis(deadline_ms),
            max_output_bytes: self.count(
                raw.max_output_bytes,
                "limits.max_output_bytes",
                defaults.max_output_bytes,
                None,
            ),
            max_outputs_per_event: self.count(
                raw.max_outputs_per_event,
                "limits.max_outputs_per_event",
                defaults.max_outputs_per_event,
                None,
            ),
        }
    }

    /// One of the values `choices` names, as written.
    pub(super) fn choice<T: Copy>(
        &mut self,
        raw: Option<Spanned<String>>,
        field: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(raw) = raw else {
            return default;
        };
        if let Some((_, value)) = choices.iter().find(|(name, _)| name == raw.get_ref()) {
            return *value;
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
        let message = format!(
            "`{field}` must be {}, not `{}`",
            names.join(" or "),
            raw.get_ref()
        );
        self.at(raw.span(), message);
        default
    }

    pub(super) fn delivery(&mut self, raw: Option<Spanned<String>>) -> Delivery {
        let choices = [Delivery::AtLeastOnce, Delivery::ExactlyOnce].map(|d| (d.as_str(), d));
        self.choice(raw, "delivery", &choices, Delivery::default())
    }

    pub(super) fn state(&mut self, raw: Option<RawState>, group_id: &str) -> StateConfig {
        let defaults = StateConfig::new(group_id);
        let Some(raw) = raw else {
            return defaults;
        };
        let changelog = match raw.changelog {
            Some(topic) => {
                self.topic("state.changelog", &topic);
                topic.into_inner()
            }
            None => defaults.changelog,
        };
        let d = defaults.limits;
        let limits = StateLimits {
            max_key_bytes: self.count(
                raw.max_key_bytes,
                "state.max_key_bytes",
                d.max_key_bytes,
                None,
            ),
            max_value_bytes: self.count(
                raw.max_value_bytes,
                "state.max_value_bytes",
                d.max_value_bytes,
                None,
            ),
            max_keys: self.count(raw.max_keys, "state.max_keys", d.max_keys, None),
            max_bytes: self.count(raw.max_bytes, "state.max_bytes", d.max_bytes, None),
        };
        let on_corrupt = self.choice(
            raw.on_corrupt,
            "state.on_corrupt",
            &[("stop", OnCorrupt::Stop), ("skip", OnCorrupt::Skip)],
            OnCorrupt::Stop,
        );
        StateConfig {
            changelog,
            limits,
            on_corrupt,
        }
    }

    pub(super) fn retry(&mut self, raw: Option<RawRetry>) -> RetryPolicy {
        let defaults = RetryPolicy::default();
        let Some(raw) = raw else {
            return defaults;
        };
        let attempts = self.count(
            raw.attempts,
            "retry.attempts",
            defaults.attempts,
            Some(i64::from(u32::MAX)),
        );
        let backoff = self.millis(raw.backoff_ms, "retry.backoff_ms", defaults.backoff);
        let max_span = raw
            .max_backoff_ms
            .as_ref()
            .map_or(self.here.clone(), Spanned::span);
        let max_backoff = self.millis(
            raw.max_backoff_ms,
            "retry.max_backoff_ms",
            defaults.max_backoff,
        );
        if max_backoff < backoff {
            self.at(
                max_span,
                format!(
                    "`retry.max_backoff_ms` ({}) is less than `retry.backoff_ms` ({})",
                    max_backoff.as_millis(),
                    backoff.as_millis()
                ),
            );
        }
        RetryPolicy {
            attempts,
            backoff,
            max_backoff,
        }
    }

    pub(super) fn sandbox(
        &mut self,
        raw: RawSandbox,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Sandbox {
        let mut vars: Vec<(String, String)> = Vec::new();
        for grant in raw.env {
            let text = grant.get_ref();
            let (name, value) = match text.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (text.as_str(), None),
            };
            if name.is_empty() || name.contains('\0') {
                let message = format!("`sandbox.env`: `{text}` is not `NAME` or `NAME=VALUE`");
                self.at(grant.span(), message);
            } else if vars.iter().any(|(n, _)| n == name) {
                self.at(
                    grant.span(),
                    format!("`sandbox.env`: `{name}` is granted twice"),
                );
            } else {
                // Granting a variable the host lacks is a mistake worth
                // knowing about (as with `sluice exec --allow-env`).
                match value.or_else(|| env(name)) {
                    Some(value) => vars.push((name.to_owned(), value)),
                    None => self.at(
                        grant.span(),
                        format!(
                            "`sandbox.env`: `{name}` is not set on the host (write \
                             `{name}=VALUE` to set a value)"
                        ),
                    ),
                }
            }
        }
        let mut dirs: Vec<DirGrant> = Vec::new();
        for dir in raw.dirs {
            let span = dir.span();
            let dir = dir.into_inner();
            if dir.host.get_ref().is_empty() {
                self.at(dir.host.span(), "`sandbox.dirs`: `host` is empty");
            }
            let guest = dir.guest.get_ref();
            if !guest.starts_with('/') {
                self.at(
                    dir.guest.span(),
                    format!(
                        "`sandbox.dirs`: `guest` must be an absolute path such as `/data` \
                         (got `{guest}`)"
                    ),
                );
            } else if dirs.iter().any(|d| d.guest == *guest) {
                self.at(
                    span,
                    format!("`sandbox.dirs`: guest path `{guest}` is granted twice"),
                );
            }
            dirs.push(DirGrant {
                host: base.join(dir.host.get_ref()),
                guest: dir.guest.into_inner(),
                writable: dir.writable,
            });
        }
        Sandbox {
            env: vars,
            dirs,
            network: raw.network,
        }
    }
}
