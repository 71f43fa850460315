//! # router: sends each event to a topic chosen by a field of its JSON value
//!
//! The value must be a JSON object; the top-level field named by `field` picks
//! the destination from `routes`. The routed record is the input unchanged
//! (same value, key and headers), only its topic differs. Every destination
//! must be in the pipeline's allowed topics.
//!
//! ## Config
//!
//! | key       | required | meaning |
//! |-----------|----------|---------|
//! | `field`   | yes      | the top-level field to route on, e.g. `type` |
//! | `routes`  | yes      | `value:topic` pairs separated by commas, e.g. `order:orders, refund:refunds` |
//! | `default` | no       | the topic for values not in `routes`; without it such events are filtered out (no output) |
//! | `copy_to` | no       | a topic that also receives a copy of every event, after the routed one |
//!
//! Field values match as text: a string by its contents, a number or a
//! boolean by its JSON spelling (`1`, `2.5`, `true`; `1` and `1.0` differ).
//! Topic names cannot contain `:`, so a route's value may: only the last `:`
//! of an entry separates value from topic.
//!
//! With `field = "type"`, `routes = "order:orders,refund:refunds"` and
//! `copy_to = "audit"`, `{"type":"refund","id":7}` becomes two records, one
//! to `refunds` and one to `audit`, while `{"type":"ping"}` becomes only the
//! `audit` copy.
//!
//! ## Invalid events
//!
//! A tombstone, a value that is not JSON, JSON that is not an object, a
//! missing routing field, or one that is null, an array or an object: all
//! `invalid`, with a message saying which.

use std::collections::HashMap;

use serde_json::Value;
use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export, json_type};

/// The router, with its parsed routing table.
#[derive(Debug)]
pub struct Router {
    field: String,
    routes: HashMap<String, String>,
    default: Option<String>,
    copy_to: Option<String>,
}

impl Plugin for Router {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Router {
            field: non_empty(config, "field")?.ok_or("missing required config key `field`")?,
            routes: parse_routes(config.require("routes")?)?,
            default: non_empty(config, "default")?,
            copy_to: non_empty(config, "copy_to")?,
        })
    }

    fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
        let destination = {
            let document = match event.json::<Value>()? {
                Value::Object(document) => document,
                other => {
                    return Err(ProcessError::invalid(format!(
                        "event value is not a JSON object, got {}",
                        json_type(&other)
                    )));
                }
            };
            let found = match document.get(&self.field) {
                Some(Value::String(text)) => self.routes.get(text),
                Some(Value::Number(number)) => self.routes.get(&number.to_string()),
                Some(Value::Bool(flag)) => self.routes.get(&flag.to_string()),
                Some(other) => {
                    return Err(ProcessError::wrong_type(
                        &self.field,
                        "a string, number or boolean",
                        other,
                    ));
                }
                None => {
                    return Err(ProcessError::invalid(format!(
                        "missing field `{}`",
                        self.field
                    )));
                }
            };
            found.or(self.default.as_ref())
        };

        // The copy needs its own value; the routed record takes the input's.
        let copy = self.copy_to.as_ref().map(|topic| {
            event
                .value()
                .map_or_else(Output::tombstone, Output::new)
                .to_topic(topic)
        });
        let mut outputs = Vec::with_capacity(2);
        if let Some(topic) = destination {
            outputs.push(Output::forward(event).to_topic(topic));
        }
        outputs.extend(copy);
        Ok(outputs)
    }
}

export!(Router);

/// An optional key that, when set, must not be blank: a blank topic or field
/// is a typo, not a choice.
fn non_empty(config: &Config, key: &str) -> Result<Option<String>, String> {
    match config.get(key).map(str::trim) {
        Some("") => Err(format!("config key `{key}` must not be empty")),
        other => Ok(other.map(str::to_owned)),
    }
}

fn parse_routes(spec: &str) -> Result<HashMap<String, String>, String> {
    let mut routes = HashMap::new();
    for entry in spec.split(',') {
        let (value, topic) = entry.rsplit_once(':').ok_or_else(|| {
            format!(
                "config key `routes`: entry `{}` is not `value:topic`",
                entry.trim()
            )
        })?;
        let (value, topic) = (value.trim(), topic.trim());
        if topic.is_empty() {
            return Err(format!(
                "config key `routes`: entry `{}` has no topic",
                entry.trim()
            ));
        }
        if routes.insert(value.to_owned(), topic.to_owned()).is_some() {
            return Err(format!(
                "config key `routes`: value `{value}` is routed twice"
            ));
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(config: &[(&str, &str)]) -> Router {
        Router::init(&config.iter().copied().collect()).unwrap()
    }

    fn init_error(config: &[(&str, &str)]) -> String {
        Router::init(&config.iter().copied().collect()).unwrap_err()
    }

    /// (topic, value) of each output; also checks key and headers are
    /// inherited.
    fn route(router: &mut Router, value: &str) -> Result<Vec<(String, String)>, ProcessError> {
        let event = Event::new(value).with_key("k").with_header("h", "1");
        Ok(router
            .process(event)?
            .iter()
            .map(|output| {
                assert_eq!(output.key(), None);
                assert_eq!(output.headers(), None);
                (
                    output.topic().unwrap().to_owned(),
                    String::from_utf8(output.value().unwrap().to_vec()).unwrap(),
                )
            })
            .collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn routes_by_field_and_filters_unmatched() {
        let mut r = router(&[
            ("field", "type"),
            ("routes", "order:orders, refund : refunds,1:ones,true:yes"),
        ]);
        let order = r#"{"type":"order","id":1}"#;
        assert_eq!(route(&mut r, order), Ok(pairs(&[("orders", order)])));
        let refund = r#"{"type":"refund"}"#;
        assert_eq!(route(&mut r, refund), Ok(pairs(&[("refunds", refund)])));
        assert_eq!(
            route(&mut r, r#"{"type":1}"#),
            Ok(pairs(&[("ones", r#"{"type":1}"#)]))
        );
        assert_eq!(
            route(&mut r, r#"{"type":true}"#),
            Ok(pairs(&[("yes", r#"{"type":true}"#)]))
        );
        assert_eq!(
            route(&mut r, r#"{"type":"ping"}"#),
            Ok(vec![]),
            "filtered out"
        );
        assert_eq!(route(&mut r, r#"{"type":1.0}"#), Ok(vec![]), "1.0 is not 1");
    }

    #[test]
    fn default_topic_and_copy() {
        let mut r = router(&[
            ("field", "type"),
            ("routes", "order:orders"),
            ("default", "other"),
            ("copy_to", "audit"),
        ]);
        let order = r#"{"type":"order"}"#;
        assert_eq!(
            route(&mut r, order),
            Ok(pairs(&[("orders", order), ("audit", order)]))
        );
        let ping = r#"{"type":"ping"}"#;
        assert_eq!(
            route(&mut r, ping),
            Ok(pairs(&[("other", ping), ("audit", ping)]))
        );

        let mut copy_only = router(&[
            ("field", "type"),
            ("routes", "order:orders"),
            ("copy_to", "audit"),
        ]);
        assert_eq!(route(&mut copy_only, ping), Ok(pairs(&[("audit", ping)])));
    }

    #[test]
    fn values_may_contain_colons() {
        let mut r = router(&[("field", "url"), ("routes", "http://a:web")]);
        let event = r#"{"url":"http://a"}"#;
        assert_eq!(route(&mut r, event), Ok(pairs(&[("web", event)])));
    }

    #[test]
    fn invalid_events() {
        let mut r = router(&[("field", "type"), ("routes", "a:b")]);
        let invalid = |r: &mut Router, value: &str| match route(r, value) {
            Err(ProcessError::Invalid(message)) => message,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert!(invalid(&mut r, "nope").starts_with("event value is not valid JSON: "));
        assert_eq!(
            invalid(&mut r, "[]"),
            "event value is not a JSON object, got array"
        );
        assert_eq!(invalid(&mut r, r#"{"kind":"a"}"#), "missing field `type`");
        assert_eq!(
            invalid(&mut r, r#"{"type":null}"#),
            "field `type` must be a string, number or boolean, got null"
        );
        assert_eq!(
            r.process(Event::tombstone()),
            Err(ProcessError::invalid("event has no value (tombstone)"))
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        assert_eq!(
            init_error(&[("routes", "a:b")]),
            "missing required config key `field`"
        );
        assert_eq!(
            init_error(&[("field", "type")]),
            "missing required config key `routes`"
        );
        assert_eq!(
            init_error(&[("field", " "), ("routes", "a:b")]),
            "config key `field` must not be empty"
        );
        assert_eq!(
            init_error(&[("field", "t"), ("routes", "a:b"), ("default", "")]),
            "config key `default` must not be empty"
        );
        assert_eq!(
            init_error(&[("field", "t"), ("routes", "a:b,c")]),
            "config key `routes`: entry `c` is not `value:topic`"
        );
        assert_eq!(
            init_error(&[("field", "t"), ("routes", "a:b,")]),
            "config key `routes`: entry `` is not `value:topic`"
        );
        assert_eq!(
            init_error(&[("field", "t"), ("routes", "a:")]),
            "config key `routes`: entry `a:` has no topic"
        );
        assert_eq!(
            init_error(&[("field", "t"), ("routes", "a:b,a:c")]),
            "config key `routes`: value `a` is routed twice"
        );
    }
}
