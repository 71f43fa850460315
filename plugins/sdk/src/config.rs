//! `Config`: the plugin's `config` table from the pipeline TOML, with lookups
//! whose errors name the offending key, ready to return from `init`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

/// The plugin's configuration: the pipeline TOML's `config` table for this
/// plugin, as key → string value.
///
/// The error type of the fallible lookups is `String`, the error type of
/// [`Plugin::init`](crate::Plugin::init), so they compose with `?`:
///
/// ```
/// # use sluice_sdk::Config;
/// fn init(config: &Config) -> Result<(String, u32), String> {
///     let field = config.require("field")?.to_owned();
///     let limit = config.parse_or("limit", 10)?;
///     Ok((field, limit))
/// }
/// let config = Config::from_iter([("field", "type"), ("limit", "lots")]);
/// assert_eq!(
///     init(&config),
///     Err(r#"config key `limit`: invalid value "lots": invalid digit found in string"#.into())
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    // Sorted so `iter` is deterministic; a config table is small.
    entries: BTreeMap<String, String>,
}

impl Config {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The value of `key`, or `default` if it is not set.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`.
    ///
    /// # Errors
    ///
    /// ``missing required config key `KEY` `` if it is not set.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("missing required config key `{key}`"))
    }

    /// The value of `key` parsed with [`FromStr`]; `Ok(None)` if it is not
    /// set.
    ///
    /// # Errors
    ///
    /// ``config key `KEY`: invalid value "VALUE": REASON`` if the value does
    /// not parse.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|err| format!("config key `{key}`: invalid value {value:?}: {err}"))
            })
            .transpose()
    }

    /// The value of `key` parsed with [`FromStr`], or `default` if it is not
    /// set.
    ///
    /// # Errors
    ///
    /// As [`Config::parse`].
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Builds a config from (key, value) pairs, as the host passes them and as
/// tests write them. A repeated key keeps its last value.
impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Config {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_iter([("b", "2"), ("a", "x"), ("f", "1.5"), ("b", "3")])
    }

    #[test]
    fn get_and_defaults() {
        let config = config();
        assert_eq!(config.get("a"), Some("x"));
        assert_eq!(config.get("b"), Some("3"), "last value wins");
        assert_eq!(config.get("zz"), None);
        assert_eq!(config.get_or("a", "d"), "x");
        assert_eq!(config.get_or("zz", "d"), "d");
        assert_eq!(config.len(), 3);
        assert!(!config.is_empty());
        assert!(Config::default().is_empty());
        let keys: Vec<&str> = config.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "f"]);
    }

    #[test]
    fn require() {
        assert_eq!(config().require("a"), Ok("x"));
        assert_eq!(
            config().require("field"),
            Err("missing required config key `field`".to_string())
        );
    }

    #[test]
    fn parse() {
        let config = config();
        assert_eq!(config.parse::<f64>("f"), Ok(Some(1.5)));
        assert_eq!(config.parse::<u8>("b"), Ok(Some(3)));
        assert_eq!(config.parse::<u8>("zz"), Ok(None));
        assert_eq!(
            config.parse::<f64>("a"),
            Err(r#"config key `a`: invalid value "x": invalid float literal"#.to_string())
        );
        assert_eq!(config.parse_or("zz", 7u8), Ok(7));
        assert_eq!(config.parse_or("b", 7u8), Ok(3));
        assert!(config.parse_or("a", 7u8).unwrap_err().contains("`a`"));
    }
}
