//! # order-enrich: adds a customer tier and the amount in cents to orders
//!
//! Input: an order as in the Kafka beginners' tutorial,
//!
//! ```json
//! {"order_id": "ORD-0001", "customer_id": "CUST-001", "amount": 11.5, "timestamp": 1732400000.0}
//! ```
//!
//! Output: one record to the pipeline's result topic, with the input's key
//! and headers, whose value is the same JSON object with every input field
//! kept, plus
//!
//! - `tier`: `"bronze"` if `amount` < `silver_from` (default 50), `"silver"`
//!   if < `gold_from` (default 100), else `"gold"`;
//! - `amount_cents`: `amount * 100` rounded to the nearest integer (half away
//!   from zero).
//!
//! Both replace input fields of the same name. The output is compact JSON
//! with the top-level keys sorted, so it is byte-for-byte deterministic; the
//! order above becomes exactly
//!
//! ```json
//! {"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000.0}
//! ```
//!
//! ## Config
//!
//! | key           | default | meaning                            |
//! |---------------|---------|------------------------------------|
//! | `silver_from` | `50`    | lowest amount of the silver tier   |
//! | `gold_from`   | `100`   | lowest amount of the gold tier     |
//!
//! Both must be finite, non-negative numbers with `silver_from <=
//! gold_from`; `init` rejects anything else with a message naming the key.
//!
//! ## Invalid events
//!
//! These go to the dead-letter topic as `invalid`, with the message in
//! brackets:
//!
//! - a tombstone (`event has no value (tombstone)`);
//! - a value that is not JSON (`event value is not valid JSON: …`);
//! - JSON that is not an object (`order is not a JSON object, got array`);
//! - `order_id` missing (``missing field `order_id` ``) or not a string
//!   (``field `order_id` must be a string, got number``);
//! - `amount` missing (``missing field `amount` ``), not a number
//!   (``field `amount` must be a number, got string``), negative
//!   (``field `amount` must not be negative, got -1.5``) or too large for
//!   exact cents (``field `amount` is too large for exact cents, got 1e300``).

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export, json_type};

/// Past 2^53 an `f64` no longer holds every integer, so cents would be
/// silently wrong.
const MAX_EXACT_CENTS: f64 = 9_007_199_254_740_992.0;

/// The enricher, with its tier thresholds.
#[derive(Debug)]
pub struct OrderEnrich {
    silver_from: f64,
    gold_from: f64,
}

impl Plugin for OrderEnrich {
    fn init(config: &Config) -> Result<Self, String> {
        let silver_from = threshold(config, "silver_from", 50.0)?;
        let gold_from = threshold(config, "gold_from", 100.0)?;
        if gold_from < silver_from {
            return Err(format!(
                "config key `gold_from` ({gold_from}) must not be below `silver_from` ({silver_from})"
            ));
        }
        Ok(OrderEnrich {
            silver_from,
            gold_from,
        })
    }

    fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
        let mut order = match event.json::<Value>()? {
            Value::Object(order) => order,
            other => {
                return Err(ProcessError::invalid(format!(
                    "order is not a JSON object, got {}",
                    json_type(&other)
                )));
            }
        };
        match order.get("order_id") {
            Some(Value::String(_)) => {}
            Some(other) => return Err(ProcessError::wrong_type("order_id", "a string", other)),
            None => return Err(ProcessError::invalid("missing field `order_id`")),
        }
        let amount = match order.get("amount") {
            Some(value) => value
                .as_f64()
                .ok_or_else(|| ProcessError::wrong_type("amount", "a number", value))?,
            None => return Err(ProcessError::invalid("missing field `amount`")),
        };
        if amount < 0.0 {
            return Err(ProcessError::invalid(format!(
                "field `amount` must not be negative, got {amount}"
            )));
        }
        let cents = (amount * 100.0).round();
        if cents > MAX_EXACT_CENTS {
            return Err(ProcessError::invalid(format!(
                "field `amount` is too large for exact cents, got {amount:e}"
            )));
        }

        let tier = if amount < self.silver_from {
            "bronze"
        } else if amount < self.gold_from {
            "silver"
        } else {
            "gold"
        };
        order.insert("tier".to_owned(), tier.into());
        // In range and integral (checked above), so the cast is exact.
        order.insert("amount_cents".to_owned(), (cents as i64).into());

        // Sort here rather than trust serde_json's map: its key order depends
        // on a cargo feature that another crate in a build could turn on, and
        // the output bytes are part of this plugin's contract.
        let sorted: BTreeMap<&str, &Value> = order.iter().map(|(k, v)| (k.as_str(), v)).collect();
        Ok(vec![Output::json(&sorted)?])
    }
}

export!(OrderEnrich);

fn threshold(config: &Config, key: &str, default: f64) -> Result<f64, String> {
    let value = config.parse_or(key, default)?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!(
            "config key `{key}`: must be a finite, non-negative number, got {value}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = r#"{"order_id":"ORD-0001","customer_id":"CUST-001","amount":11.5,"timestamp":1732400000.0}"#;

    fn plugin(config: &[(&str, &str)]) -> OrderEnrich {
        OrderEnrich::init(&config.iter().copied().collect()).unwrap()
    }

    fn enrich(value: &str) -> Result<String, ProcessError> {
        let outputs = plugin(&[]).process(Event::new(value).with_key("k").with_header("h", "1"))?;
        assert_eq!(outputs.len(), 1);
        let output = &outputs[0];
        assert_eq!(output.topic(), None, "default topic");
        assert_eq!(output.key(), None, "key inherited");
        assert_eq!(output.headers(), None, "headers inherited");
        Ok(String::from_utf8(output.value().unwrap().to_vec()).unwrap())
    }

    fn invalid(value: &str) -> String {
        match enrich(value) {
            Err(ProcessError::Invalid(message)) => message,
            other => panic!("expected invalid for {value}, got {other:?}"),
        }
    }

    #[test]
    fn tutorial_order_exact_bytes() {
        assert_eq!(
            enrich(ORDER).unwrap(),
            r#"{"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000.0}"#
        );
    }

    #[test]
    fn keeps_unknown_fields_and_overwrites_ours() {
        let out = enrich(r#"{"order_id":"A","amount":0.29,"z":[1,{"b":2}],"tier":"x"}"#).unwrap();
        assert_eq!(
            out,
            r#"{"amount":0.29,"amount_cents":29,"order_id":"A","tier":"bronze","z":[1,{"b":2}]}"#
        );
    }

    #[test]
    fn tiers_and_rounding() {
        let tier_of = |amount: &str| {
            let out = enrich(&format!(r#"{{"order_id":"A","amount":{amount}}}"#)).unwrap();
            let value: Value = serde_json::from_str(&out).unwrap();
            (
                value["tier"].as_str().unwrap().to_owned(),
                value["amount_cents"].as_i64().unwrap(),
            )
        };
        assert_eq!(tier_of("0"), ("bronze".into(), 0));
        assert_eq!(tier_of("49.999"), ("bronze".into(), 5000));
        assert_eq!(tier_of("50"), ("silver".into(), 5000));
        assert_eq!(tier_of("99.99"), ("silver".into(), 9999));
        assert_eq!(tier_of("100"), ("gold".into(), 10000));
        assert_eq!(tier_of("1234.565"), ("gold".into(), 123457));
        assert_eq!(tier_of("7"), ("bronze".into(), 700), "integer amounts");
    }

    #[test]
    fn thresholds_from_config() {
        let mut custom = plugin(&[("silver_from", "10"), ("gold_from", "20.5")]);
        let tier = |plugin: &mut OrderEnrich, amount: f64| {
            let event = Event::new(format!(r#"{{"order_id":"A","amount":{amount}}}"#));
            let outputs = plugin.process(event).unwrap();
            let value: Value = serde_json::from_slice(outputs[0].value().unwrap()).unwrap();
            value["tier"].as_str().unwrap().to_owned()
        };
        assert_eq!(tier(&mut custom, 9.99), "bronze");
        assert_eq!(tier(&mut custom, 10.0), "silver");
        assert_eq!(tier(&mut custom, 20.5), "gold");
    }

    #[test]
    fn bad_config_names_the_key() {
        let init = |config: &[(&str, &str)]| {
            OrderEnrich::init(&config.iter().copied().collect()).unwrap_err()
        };
        assert_eq!(
            init(&[("silver_from", "lots")]),
            r#"config key `silver_from`: invalid value "lots": invalid float literal"#
        );
        assert_eq!(
            init(&[("gold_from", "-1")]),
            "config key `gold_from`: must be a finite, non-negative number, got -1"
        );
        assert_eq!(
            init(&[("gold_from", "NaN")]),
            "config key `gold_from`: must be a finite, non-negative number, got NaN"
        );
        assert_eq!(
            init(&[("silver_from", "60"), ("gold_from", "40")]),
            "config key `gold_from` (40) must not be below `silver_from` (60)"
        );
    }

    #[test]
    fn invalid_events_say_why() {
        assert_eq!(
            invalid("not json"),
            "event value is not valid JSON: expected ident at line 1 column 2"
        );
        assert_eq!(invalid("[1,2]"), "order is not a JSON object, got array");
        assert_eq!(
            invalid(r#""ORD-1""#),
            "order is not a JSON object, got string"
        );
        assert_eq!(invalid(r#"{"amount":1}"#), "missing field `order_id`");
        assert_eq!(
            invalid(r#"{"order_id":7,"amount":1}"#),
            "field `order_id` must be a string, got number"
        );
        assert_eq!(invalid(r#"{"order_id":"A"}"#), "missing field `amount`");
        assert_eq!(
            invalid(r#"{"order_id":"A","amount":"11.5"}"#),
            "field `amount` must be a number, got string"
        );
        assert_eq!(
            invalid(r#"{"order_id":"A","amount":null}"#),
            "field `amount` must be a number, got null"
        );
        assert_eq!(
            invalid(r#"{"order_id":"A","amount":-1.5}"#),
            "field `amount` must not be negative, got -1.5"
        );
        assert_eq!(
            invalid(r#"{"order_id":"A","amount":1e300}"#),
            "field `amount` is too large for exact cents, got 1e300"
        );

        let tombstone = plugin(&[]).process(Event::tombstone());
        assert_eq!(
            tombstone,
            Err(ProcessError::invalid("event has no value (tombstone)"))
        );
    }
}
