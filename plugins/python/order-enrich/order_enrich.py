"""order-enrich, in Python: adds a customer tier and the amount in cents to
orders, exactly as the Rust `plugins/order-enrich` does.

Input: an order as in the Kafka beginners' tutorial,

    {"order_id": "ORD-0001", "customer_id": "CUST-001", "amount": 11.5, "timestamp": 1732400000.0}

Output: one record to the pipeline's result topic, with the input's key and
headers, whose value is the same JSON object with every input field kept,
plus

- `tier`: "bronze" if `amount` < `silver_from` (default 50), "silver" if
  < `gold_from` (default 100), else "gold";
- `amount_cents`: `amount * 100` rounded to the nearest integer (half away
  from zero).

Both replace input fields of the same name. The output is compact JSON with
the keys sorted; the order above becomes

    {"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000.0}

Config: `silver_from` (default 50) and `gold_from` (default 100), finite,
non-negative numbers with silver_from <= gold_from; `init` refuses anything
else with a message naming the key.

Invalid events (dead-lettered as `invalid`, with the message in brackets):

- a tombstone (`event has no value (tombstone)`);
- a value that is not JSON (`event value is not valid JSON: ...`, the rest
  being Python's parser message rather than serde's), including a number
  too large for a float (`... number out of range`);
- JSON that is not an object (`order is not a JSON object, got array`);
- `order_id` missing (``missing field `order_id` ``) or not a string
  (``field `order_id` must be a string, got number``);
- `amount` missing (``missing field `amount` ``), not a number
  (``field `amount` must be a number, got string``), negative
  (``field `amount` must not be negative, got -1.5``) or too large for exact
  cents (``field `amount` is too large for exact cents, got 1e300``).

Numbers are read as serde_json reads them and written in messages as Rust
writes an f64 (`-1`, not `-1.0`; `1e300`, not `1e+300`), via
`sluice_sdk.compat`; a new plugin would simply use `event.json()`.
"""

import math

from sluice_sdk import ConfigError, Invalid, Output, json_type
from sluice_sdk.compat import display_f64 as display
from sluice_sdk.compat import display_f64_exp as display_exp
from sluice_sdk.compat import json_like_serde

# Past 2^53 a float no longer holds every integer, so cents would be wrong.
MAX_EXACT_CENTS = 9_007_199_254_740_992.0

silver_from = 50.0
gold_from = 100.0


def init(config):
    global silver_from, gold_from
    silver = _threshold(config, "silver_from", 50.0)
    gold = _threshold(config, "gold_from", 100.0)
    if gold < silver:
        raise ConfigError(
            f"config key `gold_from` ({display(gold)}) must not be below `silver_from` ({display(silver)})"
        )
    silver_from, gold_from = silver, gold


def process(event):
    # `event.json()`, but with numbers read exactly as serde_json reads them,
    # so every float in the output is the Rust plugin's to the last bit.
    order = json_like_serde(event)
    if type(order) is not dict:
        raise Invalid(f"order is not a JSON object, got {json_type(order)}")
    order_id = order.get("order_id", _MISSING)
    if type(order_id) is not str:
        if order_id is _MISSING:
            raise Invalid("missing field `order_id`")
        raise Invalid.wrong_type("order_id", "a string", order_id)
    amount = order.get("amount", _MISSING)
    if type(amount) is not float:
        if type(amount) is int:
            # Within the 64-bit range (json_like_serde reads larger ones as
            # floats), so this rounds like Rust's `as f64`.
            amount = float(amount)
        elif amount is _MISSING:
            raise Invalid("missing field `amount`")
        else:
            raise Invalid.wrong_type("amount", "a number", amount)
    if amount < 0.0:
        raise Invalid(f"field `amount` must not be negative, got {display(amount)}")
    cents = amount * 100.0
    # Every float >= 2^52 is an integer, so comparing before rounding is
    # the same as Rust's comparing after; it also keeps inf out of floor().
    if cents > MAX_EXACT_CENTS:
        raise Invalid(f"field `amount` is too large for exact cents, got {display_exp(amount)}")
    whole = math.floor(cents)
    if cents - whole >= 0.5:  # exact for floats >= 0: half away from zero
        whole += 1

    order["tier"] = "bronze" if amount < silver_from else "silver" if amount < gold_from else "gold"
    order["amount_cents"] = whole
    return [Output.json(order, sort_keys=True)]


_MISSING = object()


def _threshold(config, key, default):
    value = config.parse_or(key, default)  # Rust's f64 grammar and messages
    if math.isfinite(value) and value >= 0.0:
        return value
    raise ConfigError(f"config key `{key}`: must be a finite, non-negative number, got {display(value)}")
