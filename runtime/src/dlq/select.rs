//! Which dead letters a command is about: `--kind`, `--plugin` and
//! `--since TIME`, and the times they are shown with (RFC 3339, UTC).
//!
//! TIME is an RFC 3339 time (`2026-11-27T10:00:00Z`, `...+01:00`), a date
//! (`2026-11-27`, midnight UTC), or a duration meaning "that long ago":
//! a number and a unit (`s`, `m`, `h`, `d`, `w`), several of them adding
//! up (`1h30m`).

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use crate::envelope::FOREIGN;
use crate::failure::FailureKind;

/// What TIME may be, for error messages.
pub const TIME_FORMS: &str = "an RFC 3339 time (2026-11-27T10:00:00Z), a date (2026-11-27, \
     midnight UTC) or a duration ago (30s, 15m, 2h, 3d, 1w, 1h30m)";

/// Why a selection could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("`{0}` is not a TIME: expected {TIME_FORMS}")]
    Time(String),
    #[error("`{0}` is not a failure kind: expected one of {kinds}", kinds = kinds().join(", "))]
    Kind(String),
}

/// The kinds `--kind` accepts: the failure kinds, and `foreign`.
fn kinds() -> Vec<&'static str> {
    FailureKind::ALL
        .iter()
        .map(|k| k.as_str())
        .chain([FOREIGN])
        .collect()
}

/// Which dead letters to take; `None` takes every one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// `sluice.error.kind`, or [`FOREIGN`].
    pub kind: Option<String>,
    /// `sluice.plugin`.
    pub plugin: Option<String>,
    /// Dead-lettered at or after this, ms since the epoch.
    pub since_ms: Option<i64>,
}

impl Selection {
    /// The selection the command-line options ask for; `since` is a TIME
    /// relative to `now_ms`.
    pub fn parse(
        kind: Option<&str>,
        plugin: Option<&str>,
        since: Option<&str>,
        now_ms: i64,
    ) -> Result<Selection, SelectError> {
        if let Some(kind) = kind
            && !kinds().contains(&kind)
        {
            return Err(SelectError::Kind(kind.to_owned()));
        }
        Ok(Selection {
            kind: kind.map(str::to_owned),
            plugin: plugin.map(str::to_owned),
            since_ms: since.map(|t| parse_time(t, now_ms)).transpose()?,
        })
    }

    /// Whether a record of `kind` by `plugin`, dead-lettered at
    /// `failed_at_ms`, is selected. A record without a time is not
    /// selected by `--since`.
    pub fn matches(&self, kind: &str, plugin: Option<&str>, failed_at_ms: Option<i64>) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind)
            && self.plugin.as_deref().is_none_or(|p| Some(p) == plugin)
            && self
                .since_ms
                .is_none_or(|since| failed_at_ms.is_some_and(|t| t >= since))
    }
}

/// TIME as ms since the epoch; durations count back from `now_ms`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, SelectError> {
    let text = text.trim();
    let bad = || SelectError::Time(text.to_owned());
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Some(date) = parse_date(text) {
        return Ok(date.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let ago = parse_duration_ms(text).ok_or_else(bad)?;
    Ok(now_ms.saturating_sub(ago))
}

/// `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// `30s`, `15m`, `2h`, `3d`, `1w`, or several of them (`1h30m`), in ms.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let number: i64 = rest[..digits].parse().ok()?;
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let unit_ms: i64 = match &rest[digits..unit_end] {
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 3600 * 1000,
            "d" => 24 * 3600 * 1000,
            "w" => 7 * 24 * 3600 * 1000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(unit_ms)?)?;
        rest = &rest[unit_end..];
    }
    (!text.is_empty()).then_some(total)
}

/// `ms` since the epoch as RFC 3339 in UTC, with milliseconds
/// (`2026-11-27T10:00:00.123Z`); the number itself if it is out of range.
pub fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            let t = t
                .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
                .ok()?;
            t.format(&Rfc3339).ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_773_600_000; // 2026-11-27T10:00:00Z

    #[test]
    fn times_parse_in_every_accepted_form() {
        assert_eq!(parse_time("2026-11-27T10:00:00Z", 0), Ok(NOW));
        assert_eq!(
            parse_time("2026-11-27T11:00:00.250+01:00", 0),
            Ok(NOW + 250)
        );
        assert_eq!(parse_time("2026-11-27", 0), Ok(NOW - 10 * 3600 * 1000));
        assert_eq!(parse_time("15m", NOW), Ok(NOW - 15 * 60 * 1000));
        assert_eq!(parse_time("2h", NOW), Ok(NOW - 2 * 3600 * 1000));
        assert_eq!(parse_time("3d", NOW), Ok(NOW - 3 * 24 * 3600 * 1000));
        assert_eq!(parse_time("1h30m", NOW), Ok(NOW - 90 * 60 * 1000));
        assert_eq!(parse_time(" 45s ", NOW), Ok(NOW - 45_000));
    }

    #[test]
    fn a_bad_time_says_which_forms_are_accepted() {
        for bad in [
            "",
            "yesterday",
            "15",
            "m",
            "15x",
            "2026-13-01",
            "2026-11-27T10:00",
            "-5m",
        ] {
            let err = parse_time(bad, NOW).unwrap_err();
            assert_eq!(err, SelectError::Time(bad.trim().to_owned()));
            let text = err.to_string();
            assert!(text.contains("RFC 3339") && text.contains("15m"), "{text}");
        }
    }

    #[test]
    fn times_are_shown_in_utc_with_milliseconds() {
        assert_eq!(format_time(NOW), "2026-11-27T10:00:00Z");
        assert_eq!(format_time(NOW + 123), "2026-11-27T10:00:00.123Z");
        assert_eq!(parse_time(&format_time(NOW + 5), 0), Ok(NOW + 5));
    }

    #[test]
    fn a_selection_takes_what_every_given_filter_takes() {
        let all = Selection::default();
        assert!(all.matches("invalid", Some("a"), None));
        assert!(all.matches(FOREIGN, None, None));

        let s = Selection::parse(Some("trap"), Some("enrich"), Some("1h"), NOW).unwrap();
        let hour_ago = NOW - 3600 * 1000;
        assert!(s.matches("trap", Some("enrich"), Some(hour_ago)));
        assert!(!s.matches("invalid", Some("enrich"), Some(NOW)), "kind");
        assert!(!s.matches("trap", Some("other"), Some(NOW)), "plugin");
        assert!(!s.matches("trap", None, Some(NOW)), "no plugin");
        assert!(
            !s.matches("trap", Some("enrich"), Some(hour_ago - 1)),
            "older"
        );
        assert!(!s.matches("trap", Some("enrich"), None), "no time");

        let foreign = Selection::parse(Some(FOREIGN), None, None, NOW).unwrap();
        assert!(foreign.matches(FOREIGN, None, None));
        assert!(!foreign.matches("invalid", Some("a"), Some(NOW)));
    }

    #[test]
    fn an_unknown_kind_lists_the_known_ones() {
        let err = Selection::parse(Some("oops"), None, None, NOW).unwrap_err();
        assert_eq!(err, SelectError::Kind("oops".into()));
        let text = err.to_string();
        assert!(
            text.contains("invalid, retryable, retries-exhausted") && text.ends_with("foreign"),
            "{text}"
        );
    }
}
