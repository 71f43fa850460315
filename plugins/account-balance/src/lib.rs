//! # account-balance: the tutorial's event sourcing, with the state in the host
//!
//! Every change to an account is an event; the current balance is what
//! replaying them gives (`CREATED` 0, `DEPOSITED` 1000, `WITHDRAWN` 200 →
//! balance 800). This plugin keeps the balance per account in the host's
//! keyed state ([`sluice_sdk::state`]), so it survives instance replacement,
//! and writes the new balance after every event.
//!
//! Input: one account event, keyed by the account id (the state of an
//! account lives in the partition of its key),
//!
//! ```json
//! {"account_id": "ACC-1", "type": "DEPOSITED", "amount": 1000}
//! ```
//!
//! - `type`: `CREATED` (opens the account with `amount` as its balance),
//!   `DEPOSITED` or `WITHDRAWN`;
//! - `amount`: a whole, non-negative number of the currency's smallest unit
//!   (cents), required for every type; at most 2^53 (what JSON readers in
//!   every language hold exactly), as is every balance.
//!
//! Other fields are ignored.
//!
//! Output: one record to the pipeline's result topic, keyed by the account
//! id, with the input's headers: the account after the event, `version`
//! counting the events applied to it (`CREATED` is 1):
//!
//! ```json
//! {"account_id":"ACC-1","balance":1000,"version":2}
//! ```
//!
//! State: key `account/<account_id>`, value `{"balance":1000,"version":2}`.
//!
//! ## Invalid events
//!
//! These go to the dead-letter topic as `invalid` and change nothing, with
//! the message in brackets:
//!
//! - a tombstone (`event has no value (tombstone)`) or a value that is not
//!   JSON (`event value is not valid JSON: …`);
//! - JSON that is not an object (`account event is not a JSON object, got
//!   array`);
//! - `account_id` missing, not a string or empty; an event key that is not
//!   the `account_id` (``event key `ACC-2` is not the account_id `ACC-1` ``:
//!   the account's state would be split across partitions);
//! - `type` missing, not a string, or not one of the three
//!   (``field `type` must be CREATED, DEPOSITED or WITHDRAWN, got "CLOSED"``);
//! - `amount` missing, not a number, negative, not whole, or above 2^53;
//! - `CREATED` for an account that exists (``account `ACC-1` already
//!   exists``), `DEPOSITED` or `WITHDRAWN` for one that does not
//!   (``account `ACC-9` does not exist``);
//! - `WITHDRAWN` above the balance (``account `ACC-1` has a balance of 800,
//!   cannot withdraw 5000``), a `DEPOSITED` that takes the balance above
//!   2^53.
//!
//! ## Run it
//!
//! ```sh
//! scripts/build-plugins        # or: cargo build --release --target wasm32-wasip2 -p account-balance
//! target/release/sluice exec plugins/account-balance.wasm -i plugins/account-balance/events.jsonl \
//!     --state-out balances.json
//! ```
//!
//! `events.jsonl` opens `ACC-1` and `ACC-2`, moves money, and has one event
//! of each invalid kind in between; `ACC-1` ends at 850 and `ACC-2` at 300.
//! In a pipeline the state is durable (a changelog topic, restored on
//! every assignment): `sluice run config/accounts.toml` runs this plugin
//! exactly once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export, json_type, state};

/// 2^53: past it a JSON number is not exact in JavaScript or in an `f64`.
const MAX_AMOUNT: u64 = 1 << 53;

/// The plugin; it has no configuration.
#[derive(Debug)]
pub struct AccountBalance;

/// What the state holds per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    balance: u64,
    version: u64,
}

/// The output record's value.
#[derive(Serialize)]
struct Balance<'a> {
    account_id: &'a str,
    balance: u64,
    version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Created,
    Deposited,
    Withdrawn,
}

impl Plugin for AccountBalance {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(AccountBalance)
    }

    fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
        let fields = match event.json::<Value>()? {
            Value::Object(fields) => fields,
            other => {
                return Err(ProcessError::invalid(format!(
                    "account event is not a JSON object, got {}",
                    json_type(&other)
                )));
            }
        };
        let account_id = string(&fields, "account_id")?;
        if account_id.is_empty() {
            return Err(ProcessError::invalid("field `account_id` is empty"));
        }
        if let Some(key) = event.key()
            && key != account_id.as_bytes()
        {
            return Err(ProcessError::invalid(format!(
                "event key `{}` is not the account_id `{account_id}`",
                key.escape_ascii()
            )));
        }
        let kind = match string(&fields, "type")? {
            "CREATED" => Kind::Created,
            "DEPOSITED" => Kind::Deposited,
            "WITHDRAWN" => Kind::Withdrawn,
            other => {
                return Err(ProcessError::invalid(format!(
                    "field `type` must be CREATED, DEPOSITED or WITHDRAWN, got {other:?}"
                )));
            }
        };
        let amount = amount(&fields)?;

        let key = format!("account/{account_id}");
        let account = match (kind, state::get_json::<Account>(&key)?) {
            (Kind::Created, Some(_)) => {
                return Err(ProcessError::invalid(format!(
                    "account `{account_id}` already exists"
                )));
            }
            (Kind::Created, None) => Account {
                balance: amount,
                version: 1,
            },
            (_, None) => {
                return Err(ProcessError::invalid(format!(
                    "account `{account_id}` does not exist"
                )));
            }
            (Kind::Deposited, Some(account)) => {
                let balance = account.balance + amount;
                if balance > MAX_AMOUNT {
                    return Err(ProcessError::invalid(format!(
                        "account `{account_id}` has a balance of {}, depositing {amount} \
                         takes it above 2^53",
                        account.balance
                    )));
                }
                Account {
                    balance,
                    version: account.version + 1,
                }
            }
            (Kind::Withdrawn, Some(account)) => {
                let Some(balance) = account.balance.checked_sub(amount) else {
                    return Err(ProcessError::invalid(format!(
                        "account `{account_id}` has a balance of {}, cannot withdraw {amount}",
                        account.balance
                    )));
                };
                Account {
                    balance,
                    version: account.version + 1,
                }
            }
        };
        state::set_json(&key, &account)?;

        let output = Output::json(&Balance {
            account_id,
            balance: account.balance,
            version: account.version,
        })?
        .with_key(account_id);
        Ok(vec![output])
    }
}

export!(AccountBalance);

fn string<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, ProcessError> {
    match fields.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(other) => Err(ProcessError::wrong_type(name, "a string", other)),
        None => Err(ProcessError::invalid(format!("missing field `{name}`"))),
    }
}

fn amount(fields: &Map<String, Value>) -> Result<u64, ProcessError> {
    let value = fields
        .get("amount")
        .ok_or_else(|| ProcessError::invalid("missing field `amount`"))?;
    let Value::Number(number) = value else {
        return Err(ProcessError::wrong_type("amount", "a number", value));
    };
    if let Some(amount) = number.as_u64() {
        return if amount <= MAX_AMOUNT {
            Ok(amount)
        } else {
            Err(ProcessError::invalid(format!(
                "field `amount` must be at most 2^53, got {amount}"
            )))
        };
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    Err(ProcessError::invalid(if float < 0.0 {
        format!("field `amount` must not be negative, got {number}")
    } else {
        format!("field `amount` must be a whole number, got {number}")
    }))
}

#[cfg(test)]
mod tests {
    use sluice_sdk::testing;

    use super::*;

    /// Processes an account event keyed by its account id, as the host does:
    /// the balance written, or the error message.
    fn apply(value: &str) -> Result<String, String> {
        let key = serde_json::from_str::<Value>(value)
            .ok()
            .and_then(|v| v["account_id"].as_str().map(str::to_owned));
        let mut event = Event::new(value).with_header("h", "1");
        if let Some(key) = key {
            event = event.with_key(key);
        }
        let mut plugin = AccountBalance::init(&Config::default()).unwrap();
        match testing::process(&mut plugin, event) {
            Ok(outputs) => {
                assert_eq!(outputs.len(), 1);
                let output = &outputs[0];
                assert_eq!(output.topic(), None, "result topic");
                assert_eq!(output.headers(), None, "headers inherited");
                let value = String::from_utf8(output.value().unwrap().to_vec()).unwrap();
                let id: Value = serde_json::from_str(&value).unwrap();
                assert_eq!(output.key(), id["account_id"].as_str().map(str::as_bytes));
                Ok(value)
            }
            Err(ProcessError::Invalid(message)) => Err(message),
            Err(other) => panic!("expected invalid, got {other:?}"),
        }
    }

    fn event(account: &str, kind: &str, amount: u64) -> String {
        format!(r#"{{"account_id":"{account}","type":"{kind}","amount":{amount}}}"#)
    }

    fn balances() -> Vec<(String, String)> {
        testing::state()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn the_tutorial_replay() {
        assert_eq!(
            apply(&event("ACC-1", "CREATED", 0)),
            Ok(r#"{"account_id":"ACC-1","balance":0,"version":1}"#.into())
        );
        assert_eq!(
            apply(&event("ACC-1", "DEPOSITED", 1000)),
            Ok(r#"{"account_id":"ACC-1","balance":1000,"version":2}"#.into())
        );
        assert_eq!(
            apply(&event("ACC-1", "WITHDRAWN", 200)),
            Ok(r#"{"account_id":"ACC-1","balance":800,"version":3}"#.into())
        );
        assert_eq!(
            balances(),
            [(
                "account/ACC-1".into(),
                r#"{"balance":800,"version":3}"#.into()
            )]
        );
    }

    #[test]
    fn accounts_are_independent_and_extra_fields_ignored() {
        apply(&event("ACC-1", "CREATED", 50)).unwrap();
        apply(r#"{"account_id":"ACC-2","type":"CREATED","amount":7,"at":"today"}"#).unwrap();
        assert_eq!(
            apply(&event("ACC-2", "WITHDRAWN", 7)),
            Ok(r#"{"account_id":"ACC-2","balance":0,"version":2}"#.into())
        );
        assert_eq!(
            apply(&event("ACC-1", "DEPOSITED", 0)),
            Ok(r#"{"account_id":"ACC-1","balance":50,"version":2}"#.into())
        );
        // An event without a key is accepted (sluice exec lines often have none).
        let mut plugin = AccountBalance;
        let outputs =
            testing::process(&mut plugin, Event::new(event("ACC-1", "DEPOSITED", 1))).unwrap();
        assert_eq!(outputs[0].key(), Some(&b"ACC-1"[..]));
    }

    #[test]
    fn invalid_events_say_why_and_change_nothing() {
        apply(&event("ACC-1", "CREATED", 0)).unwrap();
        apply(&event("ACC-1", "DEPOSITED", 800)).unwrap();
        let before = balances();
        let cases = [
            (
                "{not json",
                "event value is not valid JSON: key must be a string at line 1 column 2",
            ),
            ("[1]", "account event is not a JSON object, got array"),
            (
                r#"{"type":"CREATED","amount":1}"#,
                "missing field `account_id`",
            ),
            (
                r#"{"account_id":1,"type":"CREATED","amount":1}"#,
                "field `account_id` must be a string, got number",
            ),
            (
                r#"{"account_id":"","type":"CREATED","amount":1}"#,
                "field `account_id` is empty",
            ),
            (
                r#"{"account_id":"ACC-1","amount":1}"#,
                "missing field `type`",
            ),
            (
                r#"{"account_id":"ACC-1","type":"CLOSED","amount":1}"#,
                r#"field `type` must be CREATED, DEPOSITED or WITHDRAWN, got "CLOSED""#,
            ),
            (
                r#"{"account_id":"ACC-1","type":"DEPOSITED"}"#,
                "missing field `amount`",
            ),
            (
                r#"{"account_id":"ACC-1","type":"DEPOSITED","amount":"5"}"#,
                "field `amount` must be a number, got string",
            ),
            (
                r#"{"account_id":"ACC-1","type":"DEPOSITED","amount":-5}"#,
                "field `amount` must not be negative, got -5",
            ),
            (
                r#"{"account_id":"ACC-1","type":"DEPOSITED","amount":-0.5}"#,
                "field `amount` must not be negative, got -0.5",
            ),
            (
                r#"{"account_id":"ACC-1","type":"DEPOSITED","amount":2.5}"#,
                "field `amount` must be a whole number, got 2.5",
            ),
            (
                r#"{"account_id":"ACC-1","type":"DEPOSITED","amount":9007199254740993}"#,
                "field `amount` must be at most 2^53, got 9007199254740993",
            ),
            (
                &event("ACC-1", "CREATED", 0),
                "account `ACC-1` already exists",
            ),
            (
                &event("ACC-9", "DEPOSITED", 1),
                "account `ACC-9` does not exist",
            ),
            (
                &event("ACC-9", "WITHDRAWN", 1),
                "account `ACC-9` does not exist",
            ),
            (
                &event("ACC-1", "WITHDRAWN", 5000),
                "account `ACC-1` has a balance of 800, cannot withdraw 5000",
            ),
            (
                &event("ACC-1", "DEPOSITED", MAX_AMOUNT),
                "account `ACC-1` has a balance of 800, depositing 9007199254740992 takes it above 2^53",
            ),
        ];
        for (value, message) in cases {
            assert_eq!(apply(value), Err(message.to_owned()), "{value}");
        }
        let mut plugin = AccountBalance;
        let wrong_key = Event::new(event("ACC-1", "DEPOSITED", 1)).with_key("ACC-2");
        assert_eq!(
            testing::process(&mut plugin, wrong_key),
            Err(ProcessError::invalid(
                "event key `ACC-2` is not the account_id `ACC-1`"
            ))
        );
        assert_eq!(
            testing::process(&mut plugin, Event::tombstone()),
            Err(ProcessError::invalid("event has no value (tombstone)"))
        );
        assert_eq!(balances(), before, "no invalid event changed the state");
        // Withdrawing the whole balance is fine.
        assert_eq!(
            apply(&event("ACC-1", "WITHDRAWN", 800)),
            Ok(r#"{"account_id":"ACC-1","balance":0,"version":3}"#.into())
        );
    }

    #[test]
    fn a_corrupt_state_value_is_invalid() {
        testing::set_state([("account/ACC-1", "not json")]);
        let message = apply(&event("ACC-1", "DEPOSITED", 1)).unwrap_err();
        assert!(
            message.starts_with("state value of key `account/ACC-1` is not the expected JSON: "),
            "{message}"
        );
    }
}
