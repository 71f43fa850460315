//! `sluice dlq list`: a pipeline's dead letters, read from the beginning
//! of its DLQ topic to its end without joining a group or committing, in
//! the order they failed (`sluice.failed.at`; a foreign record by its own
//! timestamp), with a summary by kind and by plugin.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::read::{DlqReader, Start};
use super::select::{Selection, format_time};
use super::{DlqError, pipeline_of};
use crate::config::Config;
use crate::envelope::DlqRecord;
use crate::kafka::reader::END_IDLE;
use crate::plugin::compiled::short_digest;

/// The group id the list's client carries; librdkafka wants one, and
/// nothing is ever committed for it.
const LIST_GROUP: &str = "sluice-dlq-list";

/// Characters of a value preview.
const PREVIEW_CHARS: usize = 60;

/// What `sluice dlq list` shows.
#[derive(Debug, Clone)]
pub struct ListOptions {
    pub selection: Selection,
    /// Only the newest this many of the selected records.
    pub limit: Option<usize>,
    /// See [`super::read`]: how long a partition may stay quiet at its end.
    pub idle: Duration,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            selection: Selection::default(),
            limit: None,
            idle: END_IDLE,
        }
    }
}

/// Counts of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListSummary {
    /// Records read from the DLQ topic.
    pub read: usize,
    /// Records the selection took.
    pub selected: usize,
    /// Records shown (`--limit` may show fewer than were selected).
    pub shown: usize,
    /// Selected records by kind (`foreign` included).
    pub by_kind: BTreeMap<String, usize>,
    /// Selected dead letters by plugin.
    pub by_plugin: BTreeMap<String, usize>,
}

/// Reads pipeline `pipeline`'s DLQ topic and returns the records to show,
/// oldest failure first, and the summary.
pub fn list(
    config: &Config,
    pipeline: &str,
    options: &ListOptions,
) -> Result<(Vec<DlqRecord>, ListSummary), DlqError> {
    let (pipeline, brokers) = pipeline_of(config, pipeline)?;
    let mut reader = DlqReader::open(
        config,
        pipeline,
        brokers,
        LIST_GROUP,
        Start::Beginning,
        options.idle,
    )?;
    let mut summary = ListSummary::default();
    let mut records = Vec::new();
    while let Some(event) = reader.next_record()? {
        summary.read += 1;
        let timestamp = event.timestamp_ms;
        let record = DlqRecord::parse(event);
        let failed_at = record.failed_at_ms();
        if options
            .selection
            .matches(record.kind(), record.plugin(), failed_at)
        {
            *summary.by_kind.entry(record.kind().to_owned()).or_default() += 1;
            if let Some(plugin) = record.plugin() {
                *summary.by_plugin.entry(plugin.to_owned()).or_default() += 1;
            }
            records.push((failed_at.or(timestamp).unwrap_or(i64::MIN), record));
        }
    }
    summary.selected = records.len();
    records.sort_by(|(a, ra), (b, rb)| a.cmp(b).then_with(|| ra.at().cmp(&rb.at())));
    let skip = options
        .limit
        .map_or(0, |limit| records.len().saturating_sub(limit));
    let records: Vec<DlqRecord> = records.into_iter().skip(skip).map(|(_, r)| r).collect();
    summary.shown = records.len();
    Ok((records, summary))
}

/// One line for people: where it was read from, kind, plugin, attempts,
/// when it failed, the message and the start of the value.
pub fn render_line(record: &DlqRecord) -> String {
    match record {
        DlqRecord::Letter(letter) => {
            let (event, c) = (&letter.event, &letter.context);
            format!(
                "{}/{}/{}  {}  {}@{}  attempts={}  failed={}  {:?}  value={}",
                event.topic,
                event.partition,
                event.offset,
                c.kind,
                c.plugin,
                short_digest(&c.digest),
                c.attempts,
                c.failed_at_ms.map_or_else(|| "?".to_owned(), format_time),
                c.message,
                preview(event.value.as_deref()),
            )
        }
        DlqRecord::Foreign { event, reason } => format!(
            "{}  foreign  ({reason})  value={}",
            record.at(),
            preview(event.value.as_deref())
        ),
    }
}

/// The summary for people, after the lines.
pub fn render_summary(summary: &ListSummary) -> String {
    let counts = |map: &BTreeMap<String, usize>| {
        if map.is_empty() {
            return "-".to_owned();
        }
        map.iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} shown of {} selected ({} records read)\nby kind: {}\nby plugin: {}",
        summary.shown,
        summary.selected,
        summary.read,
        counts(&summary.by_kind),
        counts(&summary.by_plugin),
    )
}

/// The start of a value: UTF-8 (invalid bytes replaced), control
/// characters escaped, quoted, cut at [`PREVIEW_CHARS`] with `…`.
fn preview(value: Option<&[u8]>) -> String {
    let Some(value) = value else {
        return "null".to_owned();
    };
    let text = String::from_utf8_lossy(value);
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == PREVIEW_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_short_escaped_text() {
        assert_eq!(preview(None), "null");
        assert_eq!(preview(Some(b"not json")), "\"not json\"");
        assert_eq!(preview(Some(b"a\tb\n\x01\"q\"")), r#""a\tb\n\u{1}\"q\"""#);
        assert_eq!(preview(Some(&[b'x', 0xff])), "\"x\u{fffd}\"");
        let long = "é".repeat(70);
        let shown = preview(Some(long.as_bytes()));
        assert_eq!(shown, format!("\"{}…\"", "é".repeat(60)));
    }

    #[test]
    fn the_summary_counts_by_kind_and_plugin() {
        let summary = ListSummary {
            read: 7,
            selected: 6,
            shown: 2,
            by_kind: [("foreign".into(), 1), ("invalid".into(), 5)].into(),
            by_plugin: [("order-enrich".into(), 5)].into(),
        };
        assert_eq!(
            render_summary(&summary),
            "2 shown of 6 selected (7 records read)\nby kind: foreign 1, invalid 5\n\
             by plugin: order-enrich 5"
        );
    }
}
