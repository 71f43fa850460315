"""account-balance, in Python: the tutorial's event sourcing with the state
in the host, exactly as the Rust `plugins/account-balance` does.

Every change to an account is an event; the current balance is what
replaying them gives (`CREATED` 0, `DEPOSITED` 1000, `WITHDRAWN` 200 ->
balance 800). This plugin keeps the balance per account in the host's
keyed state (`sluice_sdk.state`), so it survives instance replacement, and
writes the new balance after every event.

Input: one account event, keyed by the account id (the state of an account
lives in the partition of its key),

    {"account_id": "ACC-1", "type": "DEPOSITED", "amount": 1000}

- `type`: `CREATED` (opens the account with `amount` as its balance),
  `DEPOSITED` or `WITHDRAWN`;
- `amount`: a whole, non-negative number of the currency's smallest unit
  (cents), required for every type; at most 2^53, as is every balance.

Other fields are ignored.

Output: one record to the pipeline's result topic, keyed by the account id,
with the input's headers: the account after the event, `version` counting
the events applied to it (`CREATED` is 1):

    {"account_id":"ACC-1","balance":1000,"version":2}

State: key `account/<account_id>`, value `{"balance":1000,"version":2}`
(the same bytes as the Rust plugin's, so either reads the other's state).

Invalid events go to the dead-letter topic as `invalid` and change
nothing, with the Rust plugin's messages: a tombstone (`event has no value
(tombstone)`), a value that is not JSON (`event value is not valid JSON:
...`, the rest being Python's parser message rather than serde's), JSON
that is not an object (`account event is not a JSON object, got array`),
`account_id` missing, not a string or empty, an event key that is not the
`account_id` (``event key `ACC-2` is not the account_id `ACC-1` ``), `type`
missing, not a string or not one of the three (``field `type` must be
CREATED, DEPOSITED or WITHDRAWN, got "CLOSED"``), `amount` missing, not a
number, negative, not whole or above 2^53, `CREATED` for an account that
exists (``account `ACC-1` already exists``), `DEPOSITED`/`WITHDRAWN` for
one that does not (``account `ACC-9` does not exist``), `WITHDRAWN` above
the balance (``account `ACC-1` has a balance of 800, cannot withdraw
5000``) and a `DEPOSITED` that takes the balance above 2^53.

Numbers are read as serde_json reads them (`sluice_sdk.compat`) and
written in messages as serde_json writes them, so the messages match the
Rust plugin's byte for byte.
"""

import json
from decimal import Decimal

from sluice_sdk import Invalid, Output, json_type, state
from sluice_sdk.compat import json_like_serde

# 2^53: past it a JSON number is not exact in JavaScript or in an f64.
MAX_AMOUNT = 1 << 53

KINDS = ("CREATED", "DEPOSITED", "WITHDRAWN")


def process(event):
    fields = json_like_serde(event)
    if not isinstance(fields, dict):
        raise Invalid(f"account event is not a JSON object, got {json_type(fields)}")
    account_id = _string(fields, "account_id")
    if not account_id:
        raise Invalid("field `account_id` is empty")
    if event.key is not None and event.key != account_id.encode():
        raise Invalid(
            f"event key `{state._escape(event.key)}` is not the account_id `{account_id}`"
        )
    kind = _string(fields, "type")
    if kind not in KINDS:
        raise Invalid(
            f"field `type` must be CREATED, DEPOSITED or WITHDRAWN, got {_debug(kind)}"
        )
    amount = _amount(fields)

    key = f"account/{account_id}"
    account = _account(key)
    if kind == "CREATED":
        if account is not None:
            raise Invalid(f"account `{account_id}` already exists")
        balance, version = amount, 1
    elif account is None:
        raise Invalid(f"account `{account_id}` does not exist")
    elif kind == "DEPOSITED":
        balance = account["balance"] + amount
        if balance > MAX_AMOUNT:
            raise Invalid(
                f"account `{account_id}` has a balance of {account['balance']}, "
                f"depositing {amount} takes it above 2^53"
            )
        version = account["version"] + 1
    else:
        balance = account["balance"] - amount
        if balance < 0:
            raise Invalid(
                f"account `{account_id}` has a balance of {account['balance']}, "
                f"cannot withdraw {amount}"
            )
        version = account["version"] + 1
    state.set_json(key, {"balance": balance, "version": version})
    output = Output.json({"account_id": account_id, "balance": balance, "version": version})
    return [output.with_key(account_id)]


def _account(key):
    """The account stored under `key`, or None; `Invalid` if the stored value
    is not an account (as the Rust plugin's typed read)."""
    account = state.get_json(key)
    if account is None:
        return None
    for field in ("balance", "version"):
        value = account.get(field) if isinstance(account, dict) else None
        if type(value) is not int or not 0 <= value < 1 << 64:
            raise Invalid(
                f"state value of key `{key}` is not the expected JSON: "
                f"`{field}` is not a whole number"
            )
    return account


def _string(fields, name):
    if name not in fields:
        raise Invalid(f"missing field `{name}`")
    value = fields[name]
    if not isinstance(value, str):
        raise Invalid.wrong_type(name, "a string", value)
    return value


def _amount(fields):
    if "amount" not in fields:
        raise Invalid("missing field `amount`")
    value = fields["amount"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid.wrong_type("amount", "a number", value)
    if type(value) is int and value >= 0:
        if value > MAX_AMOUNT:
            raise Invalid(f"field `amount` must be at most 2^53, got {value}")
        return value
    if value < 0:
        raise Invalid(f"field `amount` must not be negative, got {_number(value)}")
    raise Invalid(f"field `amount` must be a whole number, got {_number(value)}")


def _number(x):
    """A JSON number as serde_json writes it (floats as its formatter, zmij,
    does: `2.5`, `1.0`, `1e+300`, `1e-7`, `-0.0`; fixed notation from 1e-5
    up to 1e16)."""
    if type(x) is int:
        return str(x)
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digits))
    point = len(digits) + exponent  # where the decimal point goes in the digits
    if -4 <= point <= 16:
        if exponent >= 0:
            text = digits + "0" * exponent + ".0"
        elif point > 0:
            text = f"{digits[:point]}.{digits[point:]}"
        else:
            text = "0." + "0" * -point + digits
    else:
        mantissa = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{point - 1:+d}" if point > 0 else f"{mantissa}e{point - 1}"
    return "-" + text if sign else text


def _debug(text):
    """A string as Rust's `{:?}` writes it (for the usual characters)."""
    return json.dumps(text, ensure_ascii=False)
