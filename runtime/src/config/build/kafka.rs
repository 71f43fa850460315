//! `[kafka]`: the connection, and the librdkafka properties a file may
//! pass through (not the ones Sluice reserves).

use std::collections::BTreeMap;

use super::Checker;
use crate::config::Problem;
use crate::config::raw::{FlatTable, RawKafka};
use crate::config::{Brokers, DEFAULT_CLIENT_ID, KafkaConfig};

pub(super) fn connection(
    check: &mut Checker<'_, '_>,
    raw: RawKafka,
    env: &dyn Fn(&str) -> Option<String>,
) -> KafkaConfig {
    let brokers = {
        let text = raw.brokers.get_ref().trim();
        if text.is_empty() {
            check.at(
                raw.brokers.span(),
                "`kafka.brokers` is empty: give `host:port[,host:port...]`, or \"embedded\" for \
                 the in-process mock cluster",
            );
        } else if text != "embedded" && text.split(',').any(|b| b.trim().is_empty()) {
            check.at(
                raw.brokers.span(),
                format!("`kafka.brokers` has an empty entry: `{text}`"),
            );
        }
        if text == "embedded" {
            Brokers::Embedded
        } else {
            Brokers::List(text.to_owned())
        }
    };
    let client_id = match raw.client_id {
        Some(id) if id.get_ref().trim().is_empty() => {
            check.at(id.span(), "`kafka.client_id` is empty");
            String::new()
        }
        Some(id) => id.into_inner(),
        None => DEFAULT_CLIENT_ID.to_owned(),
    };
    let instance_id = match raw.instance_id {
        Some(id) => {
            if let Err(why) = instance_id_problem(id.get_ref()) {
                check.at(id.span(), format!("`kafka.instance_id` {why}"));
            }
            id.into_inner()
        }
        None => {
            let id = crate::kafka::default_instance_id(env);
            if let Err(why) = instance_id_problem(&id) {
                check.problems.push(Problem::whole_file(format!(
                    "the default `kafka.instance_id` (${} or the host name) {why}; set \
                     `kafka.instance_id` in the file",
                    crate::kafka::INSTANCE_ENV
                )));
            }
            id
        }
    };
    KafkaConfig {
        brokers,
        client_id,
        instance_id,
        consumer: properties(check, "kafka.consumer", raw.consumer),
        producer: properties(check, "kafka.producer", raw.producer),
    }
}

/// The longest `kafka.instance_id`: with a group id in front it stays well
/// under what brokers accept as a `transactional.id`.
const MAX_INSTANCE_ID: usize = 128;

/// Why `id` cannot tell processes apart in a `transactional.id`, if it
/// cannot: it must be 1 to [`MAX_INSTANCE_ID`] of `[A-Za-z0-9._-]`, the
/// characters of a pipeline name, so every broker and log shows it as is.
fn instance_id_problem(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".to_owned());
    }
    if id.len() > MAX_INSTANCE_ID {
        return Err(format!(
            "`{id}` is {} characters long; at most {MAX_INSTANCE_ID}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{id}` has {c:?}: use letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

fn properties(
    check: &mut Checker<'_, '_>,
    section: &str,
    table: FlatTable,
) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    for (key, value) in table {
        if let Some(why) = crate::kafka::reserved(&key) {
            check.at(
                value.span(),
                format!("`{section}`: `{key}` cannot be set here: {why}"),
            );
            continue;
        }
        match flat_value(value.get_ref()) {
            Ok(text) => {
                properties.insert(key, text);
            }
            Err(kind) => check.at(
                value.span(),
                format!("`{section}`: `{key}` is {kind}; give a string, number or boolean"),
            ),
        }
    }
    properties
}

/// A scalar as the string librdkafka or a plugin's `init` receives.
pub(super) fn flat_value(value: &toml::Value) -> Result<String, &'static str> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Array(_) => Err("an array"),
        toml::Value::Table(_) => Err("a table"),
    }
}
