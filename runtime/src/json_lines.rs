//! The JSON-lines format of events, outcomes and plugin state: what
//! `sluice exec` reads and prints, what `sluice dlq list --json` and
//! `sluice dlq redrive --dry-run` print.
//!
//! Input, one object per line (blank lines are skipped):
//!
//! ```json
//! {"topic":"orders","partition":0,"offset":7,"timestamp_ms":1732400000000,
//!  "key":"CUST-001","value":{"order_id":"ORD-0001","amount":11.5},
//!  "headers":{"source":"web","trace":{"base64":"AAE="}}}
//! ```
//!
//! `key`/`value`: a JSON string is taken as its UTF-8 bytes, any other JSON
//! value (object, array, number, boolean) as its compact JSON text, `null`
//! or absent as no key / a tombstone. `key_base64`/`value_base64` give raw
//! bytes instead. `headers` is an object or a list of `[name, value]` pairs
//! (pairs keep order and allow repeats); a header value is a string or
//! `{"base64": "..."}`. `topic` defaults to `exec`, `partition` to 0,
//! `offset` to the event's index in the input (0-based). A `sluice` field
//! (the dead-letter context `sluice dlq list --json` adds) is ignored.
//!
//! Output, one object per input event, in order:
//!
//! ```json
//! {"line":1,"offset":0,"ok":true,"outputs":[{"topic":null,"key":"CUST-001","value":"…","headers":[["source","web"]]}]}
//! {"line":2,"offset":1,"ok":false,"error":{"kind":"invalid","message":"…"}}
//! ```
//!
//! Outputs show the record as it would be written: an inherited key or
//! headers are resolved to the input's; `topic` null means the pipeline's
//! result topic. Bytes that are not UTF-8 are printed as
//! `key_base64`/`value_base64` or `{"base64": …}`.
//!
//! Plugin state (`sluice exec --state-in` / `--state-out`) is held by
//! partition, then by key:
//!
//! ```json
//! {"0": {"acct-1": "800", "acct-2": {"base64": "AAE="}},
//!  "3": [[{"base64": "/w=="}, "1"]]}
//! ```
//!
//! Keys and values are written as header values are: a string for its
//! UTF-8 bytes, `{"base64": "..."}` for any bytes. A partition's keys are
//! an object, or a list of `[key, value]` pairs where a key is not UTF-8
//! (`--state-out` writes pairs only then).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::plugin::{Event, Outcome, Output, PluginState};

/// The state a `--state-in` document describes.
pub fn parse_state(value: Value) -> Result<PluginState, String> {
    let Value::Object(partitions) = value else {
        return Err("expected an object of partitions".into());
    };
    let mut state = PluginState::default();
    for (partition, keys) in partitions {
        let number: i32 = partition
            .parse()
            .map_err(|_| format!("`{partition}` is not a partition number"))?;
        let at = |key: &str, e: String| format!("partition {number}, key {key}: {e}");
        let entries = match keys {
            Value::Object(map) => map
                .into_iter()
                .map(|(key, value)| {
                    let value = bytes_value(value).map_err(|e| at(&key, e))?;
                    Ok((key.into_bytes(), value))
                })
                .collect::<Result<Vec<_>, String>>()?,
            Value::Array(pairs) => pairs
                .into_iter()
                .map(|pair| match pair {
                    Value::Array(mut kv) if kv.len() == 2 => {
                        let value = kv.pop().unwrap_or(Value::Null);
                        let key = kv.pop().unwrap_or(Value::Null);
                        let shown = key.to_string();
                        let key = bytes_value(key).map_err(|e| at(&shown, e))?;
                        let value = bytes_value(value).map_err(|e| at(&shown, e))?;
                        Ok((key, value))
                    }
                    _ => Err(format!(
                        "partition {number}: a list of keys holds [key, value] pairs"
                    )),
                })
                .collect::<Result<Vec<_>, String>>()?,
            _ => {
                return Err(format!(
                    "partition {number}: expected an object of keys or a list of [key, value] \
                     pairs"
                ));
            }
        };
        state.restore(number, entries);
    }
    Ok(state)
}

/// `state` as a `--state-out` document.
pub fn state_json(state: &PluginState) -> Value {
    let mut partitions = Map::new();
    for (partition, entries) in state.partitions() {
        let entries: Vec<(&[u8], &[u8])> = entries.collect();
        let keys = if entries.iter().all(|(k, _)| std::str::from_utf8(k).is_ok()) {
            Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), bytes_json(v)))
                    .collect(),
            )
        } else {
            entries
                .iter()
                .map(|(k, v)| json!([bytes_json(k), bytes_json(v)]))
                .collect()
        };
        partitions.insert(partition.to_string(), keys);
    }
    Value::Object(partitions)
}

/// Parses one input line into an event; `index` is its default offset.
pub fn parse_event(line: &str, index: i64) -> Result<Event, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("expected a JSON object".into());
    };
    let topic = match object.remove("topic") {
        None | Some(Value::Null) => "exec".to_owned(),
        Some(Value::String(s)) => s,
        Some(_) => return Err("`topic` must be a string".into()),
    };
    let partition = take_int(&mut object, "partition")?.unwrap_or(0);
    let partition = i32::try_from(partition).map_err(|_| "`partition` is out of range")?;
    let offset = take_int(&mut object, "offset")?.unwrap_or(index);
    let timestamp_ms = take_int(&mut object, "timestamp_ms")?;
    let key = take_bytes(&mut object, "key")?;
    let value = take_bytes(&mut object, "value")?;
    let headers = match object.remove("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(name, v)| Ok((name.clone(), header_value(&name, v)?)))
            .collect::<Result<_, String>>()?,
        Some(Value::Array(pairs)) => pairs
            .into_iter()
            .map(|pair| match pair {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop().unwrap_or(Value::Null);
                    match kv.pop() {
                        Some(Value::String(name)) => Ok((name.clone(), header_value(&name, v)?)),
                        _ => Err("a header name must be a string".to_owned()),
                    }
                }
                _ => Err("`headers` pairs must be [name, value]".to_owned()),
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("`headers` must be an object or a list of [name, value]".into()),
    };
    // `sluice dlq list --json` adds a dead letter's context under
    // `sluice`; its lines are inputs as they are.
    object.remove("sluice");
    if let Some(field) = object.keys().next() {
        return Err(format!(
            "unknown field `{field}` (expected topic, partition, offset, timestamp_ms, key, \
             key_base64, value, value_base64, headers)"
        ));
    }
    Ok(Event {
        topic,
        partition,
        offset,
        timestamp_ms,
        key,
        value,
        headers,
    })
}

fn take_int(object: &mut Map<String, Value>, field: &str) -> Result<Option<i64>, String> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("`{field}` must be an integer")),
        Some(_) => Err(format!("`{field}` must be an integer")),
    }
}

/// Reads `field` or `field_base64` (not both) as bytes.
fn take_bytes(object: &mut Map<String, Value>, field: &str) -> Result<Option<Vec<u8>>, String> {
    let b64_field = format!("{field}_base64");
    let text = object.remove(field);
    let b64 = object.remove(&b64_field);
    match (text, b64) {
        (Some(t), Some(b)) if !t.is_null() && !b.is_null() => {
            Err(format!("give `{field}` or `{b64_field}`, not both"))
        }
        (_, Some(Value::String(b))) => BASE64
            .decode(b)
            .map(Some)
            .map_err(|e| format!("`{b64_field}` is not valid base64: {e}")),
        (_, Some(Value::Null)) | (None, None) | (Some(Value::Null), None) => Ok(None),
        (_, Some(_)) => Err(format!("`{b64_field}` must be a base64 string")),
        (Some(Value::String(s)), None) => Ok(Some(s.into_bytes())),
        (Some(other), None) => Ok(Some(other.to_string().into_bytes())),
    }
}

fn header_value(name: &str, value: Value) -> Result<Vec<u8>, String> {
    bytes_value(value).map_err(|e| format!("header `{name}`: {e}"))
}

/// Bytes written as a string (its UTF-8) or `{"base64": "..."}`: what
/// [`bytes_json`] writes.
fn bytes_value(value: Value) -> Result<Vec<u8>, String> {
    match value {
        Value::String(s) => Ok(s.into_bytes()),
        Value::Object(mut map) if map.len() == 1 => match map.remove("base64") {
            Some(Value::String(b)) => BASE64.decode(b).map_err(|e| format!("invalid base64: {e}")),
            _ => Err("expected a string or {\"base64\": ...}".to_owned()),
        },
        _ => Err("expected a string or {\"base64\": ...}".to_owned()),
    }
}

/// An event as an input line: what [`parse_event`] reads back into the
/// same event (headers as `[name, value]` pairs, to keep order and
/// repeats).
pub fn event_json(event: &Event) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("topic".into(), json!(event.topic));
    object.insert("partition".into(), json!(event.partition));
    object.insert("offset".into(), json!(event.offset));
    object.insert("timestamp_ms".into(), json!(event.timestamp_ms));
    put_bytes(&mut object, "key", event.key.as_ref());
    put_bytes(&mut object, "value", event.value.as_ref());
    object.insert("headers".into(), headers_json(&event.headers));
    object
}

/// The JSON line printed for one event.
pub(crate) fn outcome_json(line: usize, event: &Event, outcome: &Outcome) -> Value {
    match outcome {
        Ok(outputs) => json!({
            "line": line,
            "offset": event.offset,
            "ok": true,
            "outputs": outputs.iter().map(|o| output_json(event, o)).collect::<Vec<_>>(),
        }),
        Err(failure) => json!({
            "line": line,
            "offset": event.offset,
            "ok": false,
            "error": {"kind": failure.kind.as_str(), "message": failure.message},
        }),
    }
}

fn output_json(event: &Event, output: &Output) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), json!(output.topic));
    let key = output.key.as_ref().or(event.key.as_ref());
    put_bytes(&mut object, "key", key);
    put_bytes(&mut object, "value", output.value.as_ref());
    let headers = output.headers.as_ref().unwrap_or(&event.headers);
    object.insert("headers".into(), headers_json(headers));
    Value::Object(object)
}

fn headers_json(headers: &[(String, Vec<u8>)]) -> Value {
    headers
        .iter()
        .map(|(name, value)| json!([name, bytes_json(value)]))
        .collect()
}

fn put_bytes(object: &mut Map<String, Value>, field: &str, bytes: Option<&Vec<u8>>) {
    match bytes.map(|b| std::str::from_utf8(b).map_err(|_| b)) {
        None => {
            object.insert(field.into(), Value::Null);
        }
        Some(Ok(text)) => {
            object.insert(field.into(), Value::String(text.to_owned()));
        }
        Some(Err(raw)) => {
            object.insert(format!("{field}_base64"), Value::String(BASE64.encode(raw)));
        }
    }
}

fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({"base64": BASE64.encode(bytes)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_json_and_base64_payloads() {
        let e = parse_event(
            r#"{"key":"k","value":{"a":1},"headers":[["h","v"],["h",{"base64":"AAE="}]]}"#,
            5,
        )
        .unwrap();
        assert_eq!(e.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(e.value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(
            e.headers,
            vec![("h".into(), b"v".to_vec()), ("h".into(), vec![0, 1])]
        );
        assert_eq!((e.topic.as_str(), e.partition, e.offset), ("exec", 0, 5));
        assert_eq!(e.timestamp_ms, None);

        let e = parse_event(r#"{"value_base64":"/w==","topic":"t","offset":9}"#, 0).unwrap();
        assert_eq!(e.value, Some(vec![0xff]));
        assert_eq!(e.key, None);
        assert_eq!((e.topic.as_str(), e.offset), ("t", 9));
    }

    #[test]
    fn rejects_malformed_events_with_a_reason() {
        for (line, reason) in [
            ("{", "invalid JSON"),
            ("[1]", "expected a JSON object"),
            (r#"{"valu":"x"}"#, "unknown field `valu`"),
            (r#"{"value":"x","value_base64":"eA=="}"#, "not both"),
            (r#"{"value_base64":"!!"}"#, "not valid base64"),
            (r#"{"partition":"0"}"#, "`partition` must be an integer"),
            (r#"{"headers":{"h":1}}"#, "header `h`"),
        ] {
            let err = parse_event(line, 0).unwrap_err();
            assert!(err.contains(reason), "{line}: {err}");
        }
    }

    /// Every field of an event (the bindings' type has no `PartialEq`).
    #[allow(clippy::type_complexity)]
    fn fields(
        e: &Event,
    ) -> (
        &str,
        i32,
        i64,
        Option<i64>,
        &Option<Vec<u8>>,
        &Option<Vec<u8>>,
        &Vec<(String, Vec<u8>)>,
    ) {
        (
            &e.topic,
            e.partition,
            e.offset,
            e.timestamp_ms,
            &e.key,
            &e.value,
            &e.headers,
        )
    }

    #[test]
    fn an_event_written_as_a_line_reads_back_the_same_and_a_sluice_field_is_ignored() {
        let event = Event {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_732_400_000_000),
            key: Some(b"CUST-001".to_vec()),
            value: Some(vec![b'{', 0xff, b'}']),
            headers: vec![
                ("h".into(), b"1".to_vec()),
                ("h".into(), vec![0]),
                ("raw".into(), vec![0xfe]),
            ],
        };
        let mut line = event_json(&event);
        assert_eq!(line["value_base64"], json!("e/99"));
        assert_eq!(line["headers"][2], json!(["raw", {"base64": "/g=="}]));
        let back = parse_event(&Value::Object(line.clone()).to_string(), 0).unwrap();
        assert_eq!(fields(&back), fields(&event));
        line.insert("sluice".into(), json!({"kind": "invalid", "attempts": 1}));
        let back = parse_event(&Value::Object(line).to_string(), 0).unwrap();
        assert_eq!(fields(&back), fields(&event));

        let tombstone = parse_event(r#"{"topic":"t","offset":3}"#, 0).unwrap();
        let line = Value::Object(event_json(&tombstone)).to_string();
        assert_eq!(
            line,
            r#"{"topic":"t","partition":0,"offset":3,"timestamp_ms":null,"key":null,"value":null,"headers":[]}"#
        );
        assert_eq!(fields(&parse_event(&line, 0).unwrap()), fields(&tombstone));
    }

    #[test]
    fn outputs_resolve_inherited_key_and_headers() {
        let event = parse_event(r#"{"key":"k","value":"v","headers":{"h":"1"}}"#, 0).unwrap();
        let inherit = Output {
            topic: None,
            key: None,
            value: Some(vec![0xff]),
            headers: None,
        };
        assert_eq!(
            output_json(&event, &inherit),
            json!({"topic":null,"key":"k","value_base64":"/w==","headers":[["h","1"]]})
        );
        let explicit = Output {
            topic: Some("t".into()),
            key: Some(b"x".to_vec()),
            value: None,
            headers: Some(vec![]),
        };
        assert_eq!(
            output_json(&event, &explicit),
            json!({"topic":"t","key":"x","value":null,"headers":[]})
        );
    }
}
