//! `plugins/state-rule.json` as the Rust tests that replay it read it: the
//! SDK's `tests/state_rule.rs` (on the in-memory store) and the host's
//! `tests/guest_state.rs` (the probes through `sluice exec`). The format
//! is the file's own (its `format` and `probes` sections); this module
//! turns a case into probe requests and checks what a probe answered.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// A state: bytes to bytes, in key order.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// One case of the file.
pub struct Case {
    pub name: String,
    /// The host's state before the first event.
    pub state: State,
    pub events: Vec<Step>,
}

/// One event of a case.
pub struct Step {
    /// The commands, without their answers.
    pub commands: Vec<Value>,
    /// What each command answers, fill items expanded.
    pub answers: Vec<Value>,
    /// `ok`, `invalid`, `retryable` or `trap`.
    pub end: String,
    /// The host's state after the event.
    pub state: State,
}

impl Step {
    /// The event value a probe takes for this event.
    pub fn request(&self) -> Value {
        json!({ "run": self.commands, "end": self.end })
    }

    /// Asserts that the probe ended the event as the file says and gave
    /// every answer; `at` names the case and the event in messages.
    pub fn check(&self, at: &str, end: &str, answers: &[Value]) {
        assert_eq!(end, self.end, "{at}: how the event ended");
        assert_eq!(
            answers.len(),
            self.commands.len(),
            "{at}: one answer per command: {answers:?}"
        );
        for ((command, want), got) in self.commands.iter().zip(&self.answers).zip(answers) {
            // A failed JSON read: the message goes on in the parser's words.
            let prefix = want.get("invalid").and_then(Value::as_str);
            let got_message = got.get("invalid").and_then(Value::as_str);
            match (prefix, got_message) {
                (Some(prefix), Some(message)) => assert!(
                    message.starts_with(prefix),
                    "{at}: {command} answered {got}, not {want}..."
                ),
                _ => assert_eq!(got, want, "{at}: the answer to {command}"),
            }
        }
    }
}

/// The cases of the file at `path`.
pub fn cases(path: &Path) -> Vec<Case> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    file["cases"]
        .as_array()
        .expect("`cases` is a list")
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().expect("a case has a name").to_owned(),
            state: state(&case["state"]),
            events: case["events"]
                .as_array()
                .expect("`events` is a list")
                .iter()
                .map(step)
                .collect(),
        })
        .collect()
}

fn step(event: &Value) -> Step {
    let (commands, answers) = event["run"]
        .as_array()
        .expect("`run` is a list")
        .iter()
        .map(|pair| {
            let [command, answer] = pair.as_array().expect("[command, answer]").as_slice() else {
                panic!("not a [command, answer] pair: {pair}")
            };
            let verb = command[0].as_str().expect("a verb");
            let answer = match verb {
                "keys" | "next" => {
                    Value::Array(keys(answer).iter().map(|key| bytes_json(key)).collect())
                }
                _ => answer.clone(),
            };
            (command.clone(), answer)
        })
        .unzip();
    Step {
        commands,
        answers,
        end: event["end"].as_str().expect("`end`").to_owned(),
        state: state(&event["state"]),
    }
}

/// A list of keys and fill items, expanded.
fn keys(list: &Value) -> Vec<Vec<u8>> {
    let mut keys = vec![];
    for item in list.as_array().expect("a list of keys") {
        match fill(item) {
            Some(filled) => keys.extend(filled.into_iter().map(|(key, _)| key)),
            None => keys.push(bytes(item)),
        }
    }
    keys
}

/// A state: `[key, value]` pairs and fill items.
pub fn state(list: &Value) -> State {
    let mut state = State::new();
    for item in list.as_array().expect("a state is a list") {
        match fill(item) {
            Some(filled) => state.extend(filled),
            None => {
                let [key, value] = item.as_array().expect("[key, value]").as_slice() else {
                    panic!("not a [key, value] pair: {item}")
                };
                state.insert(bytes(key), bytes(value));
            }
        }
    }
    state
}

/// The entries `{"fill": P, "from": A, "to": B}` stands for; `None` for
/// anything else.
fn fill(item: &Value) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let prefix = item.get("fill")?.as_str().expect("a fill prefix");
    let index = |field: &str| item[field].as_u64().expect("fill indexes");
    Some(
        (index("from")..index("to"))
            .map(|i| {
                (
                    format!("{prefix}{i:04}").into_bytes(),
                    i.to_string().into_bytes(),
                )
            })
            .collect(),
    )
}

/// `state` as a list of `[key, value]` pairs, the bytes as [`bytes_json`]
/// writes them: a partition as `sluice exec --state-in` takes it, and
/// states compared in assertions whose messages a person reads.
pub fn readable(state: &State) -> Vec<Value> {
    state
        .iter()
        .map(|(key, value)| json!([bytes_json(key), bytes_json(value)]))
        .collect()
}

/// The bytes a string (its UTF-8) or `{"base64": ...}` stands for.
pub fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.clone().into_bytes(),
        _ => BASE64
            .decode(
                value["base64"]
                    .as_str()
                    .expect("a string or {\"base64\": ...}"),
            )
            .expect("base64"),
    }
}

/// Bytes as answers and `sluice exec` write them: a string when UTF-8.
pub fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::from(text),
        Err(_) => json!({ "base64": BASE64.encode(bytes) }),
    }
}

/// The answers in a probe's answer text: a JSON list.
pub fn answers(text: &str) -> Vec<Value> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("answers are a JSON list ({e}): {text}"))
}

/// The answers a trapping probe put in its message, after `trap after `
/// (whatever the language's runtime wrote around it).
pub fn trap_answers(message: &str) -> Vec<Value> {
    let at = message
        .find("trap after [")
        .unwrap_or_else(|| panic!("no `trap after [...]` in {message:?}"));
    let rest = &message[at + "trap after ".len()..];
    serde_json::Deserializer::from_str(rest)
        .into_iter::<Vec<Value>>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no answers after `trap after ` in {message:?}"))
}
