//! # {{name}}: a Sluice plugin
//!
//! Adds `"processed_by": <label>` to every event whose value is a JSON
//! object and writes it to the pipeline's result topic, with the input's
//! key and headers. Anything else goes to the dead-letter topic as
//! `invalid`, with the reason.
//!
//! Config: `label` (default `"{{name}}"`).

use serde_json::Value;
use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export, json_type, log};

/// The plugin's state: one per Wasm instance, made by `init`.
pub struct App {
    label: String,
}

impl Plugin for App {
    fn init(config: &Config) -> Result<Self, String> {
        let label = config.get_or("label", "{{name}}").to_owned();
        if label.is_empty() {
            return Err("config key `label` must not be empty".into());
        }
        log::info(format!("labelling events as {label:?}"));
        Ok(App { label })
    }

    fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
        // Not JSON, or a tombstone: an `invalid` dead letter with the reason.
        let value: Value = event.json()?;
        let Value::Object(mut object) = value else {
            return Err(ProcessError::invalid(format!(
                "expected a JSON object, got {}",
                json_type(&value)
            )));
        };
        object.insert("processed_by".into(), Value::String(self.label.clone()));
        Ok(vec![Output::json(&Value::Object(object))?])
    }
}

export!(App);

#[cfg(test)]
mod tests {
    use super::*;

    fn app(config: &[(&str, &str)]) -> App {
        App::init(&config.iter().copied().collect()).unwrap()
    }

    #[test]
    fn labels_json_objects() {
        let out = app(&[("label", "checked")])
            .process(Event::new(r#"{"id":1}"#).with_key("k"))
            .unwrap();
        assert_eq!(out.len(), 1);
        let value: serde_json::Map<String, Value> = serde_json::from_slice(out[0].value().unwrap()).unwrap();
        assert_eq!(value["id"], 1);
        assert_eq!(value["processed_by"], "checked");
        // The key and headers are inherited from the input.
        assert_eq!(out[0].key(), None);
    }

    #[test]
    fn rejects_what_is_not_a_json_object() {
        let mut app = app(&[]);
        for bad in ["not json", "[1]"] {
            let err = app.process(Event::new(bad)).unwrap_err();
            assert!(!err.is_retryable(), "{bad}: {err:?}");
        }
        assert!(app.process(Event::tombstone()).is_err());
    }
}
