"""The Rust account-balance's unit tests, ported: same inputs, same
outputs, state and messages (only the JSON parser's own wording differs)."""

import json
import unittest

import support  # noqa: F401 - puts the example on sys.path

from sluice_sdk import Event, Invalid, testing

import account_balance

MAX_AMOUNT = 1 << 53


def apply(value):
    """Processes an account event keyed by its account id, as the host does:
    the output value, or the invalid message."""
    try:
        key = json.loads(value).get("account_id")
    except (ValueError, AttributeError):
        key = None
    event = Event(value, key=key if isinstance(key, str) else None, headers=[("h", b"1")])
    try:
        [output] = testing.process(account_balance, event)
    except Invalid as error:
        return ("invalid", error.message)
    assert output.topic is None, "result topic"
    assert output.headers is None, "headers inherited"
    assert output.key == json.loads(output.value)["account_id"].encode()
    return output.value.decode()


def event(account, kind, amount):
    return json.dumps({"account_id": account, "type": kind, "amount": amount}, separators=(",", ":"))


def balances():
    return [(k.decode(), v.decode()) for k, v in testing.state().items()]


class AccountBalanceTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def test_the_tutorial_replay(self):
        self.assertEqual(apply(event("ACC-1", "CREATED", 0)), '{"account_id":"ACC-1","balance":0,"version":1}')
        self.assertEqual(apply(event("ACC-1", "DEPOSITED", 1000)), '{"account_id":"ACC-1","balance":1000,"version":2}')
        self.assertEqual(apply(event("ACC-1", "WITHDRAWN", 200)), '{"account_id":"ACC-1","balance":800,"version":3}')
        self.assertEqual(balances(), [("account/ACC-1", '{"balance":800,"version":3}')])

    def test_accounts_are_independent_and_extra_fields_ignored(self):
        apply(event("ACC-1", "CREATED", 50))
        apply('{"account_id":"ACC-2","type":"CREATED","amount":7,"at":"today"}')
        self.assertEqual(apply(event("ACC-2", "WITHDRAWN", 7)), '{"account_id":"ACC-2","balance":0,"version":2}')
        self.assertEqual(apply(event("ACC-1", "DEPOSITED", 0)), '{"account_id":"ACC-1","balance":50,"version":2}')
        # An event without a key is accepted (sluice exec lines often have none).
        [output] = testing.process(account_balance, Event(event("ACC-1", "DEPOSITED", 1)))
        self.assertEqual(output.key, b"ACC-1")

    def test_invalid_events_say_why_and_change_nothing(self):
        apply(event("ACC-1", "CREATED", 0))
        apply(event("ACC-1", "DEPOSITED", 800))
        before = balances()
        cases = [
            ("{not json", "event value is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("[1]", "account event is not a JSON object, got array"),
            ('{"type":"CREATED","amount":1}', "missing field `account_id`"),
            ('{"account_id":1,"type":"CREATED","amount":1}', "field `account_id` must be a string, got number"),
            ('{"account_id":"","type":"CREATED","amount":1}', "field `account_id` is empty"),
            ('{"account_id":"ACC-1","amount":1}', "missing field `type`"),
            ('{"account_id":"ACC-1","type":"CLOSED","amount":1}', 'field `type` must be CREATED, DEPOSITED or WITHDRAWN, got "CLOSED"'),
            ('{"account_id":"ACC-1","type":"DEPOSITED"}', "missing field `amount`"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":"5"}', "field `amount` must be a number, got string"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":true}', "field `amount` must be a number, got boolean"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":-5}', "field `amount` must not be negative, got -5"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":-0.5}', "field `amount` must not be negative, got -0.5"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":2.5}', "field `amount` must be a whole number, got 2.5"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":1e16}', "field `amount` must be a whole number, got 1e+16"),
            ('{"account_id":"ACC-1","type":"DEPOSITED","amount":9007199254740993}', "field `amount` must be at most 2^53, got 9007199254740993"),
            (event("ACC-1", "CREATED", 0), "account `ACC-1` already exists"),
            (event("ACC-9", "DEPOSITED", 1), "account `ACC-9` does not exist"),
            (event("ACC-9", "WITHDRAWN", 1), "account `ACC-9` does not exist"),
            (event("ACC-1", "WITHDRAWN", 5000), "account `ACC-1` has a balance of 800, cannot withdraw 5000"),
            (event("ACC-1", "DEPOSITED", MAX_AMOUNT), "account `ACC-1` has a balance of 800, depositing 9007199254740992 takes it above 2^53"),
        ]
        for value, message in cases:
            self.assertEqual(apply(value), ("invalid", message), value)
        wrong_key = Event(event("ACC-1", "DEPOSITED", 1), key="ACC-2")
        with self.assertRaises(Invalid) as caught:
            testing.process(account_balance, wrong_key)
        self.assertEqual(caught.exception.message, "event key `ACC-2` is not the account_id `ACC-1`")
        with self.assertRaises(Invalid) as caught:
            testing.process(account_balance, Event(None))
        self.assertEqual(caught.exception.message, "event has no value (tombstone)")
        self.assertEqual(balances(), before, "no invalid event changed the state")
        self.assertEqual(apply(event("ACC-1", "WITHDRAWN", 800)), '{"account_id":"ACC-1","balance":0,"version":3}')

    def test_a_corrupt_state_value_is_invalid(self):
        testing.set_state({"account/ACC-1": "not json"})
        kind, message = apply(event("ACC-1", "DEPOSITED", 1))
        self.assertTrue(message.startswith("state value of key `account/ACC-1` is not the expected JSON: "), message)
        testing.set_state({"account/ACC-1": '{"balance":-1,"version":1}'})
        self.assertEqual(
            apply(event("ACC-1", "DEPOSITED", 1)),
            ("invalid", "state value of key `account/ACC-1` is not the expected JSON: `balance` is not a whole number"),
        )

    def test_numbers_in_messages_are_written_as_serde_json_writes_them(self):
        for number, text in [(1.0, "1.0"), (2.5, "2.5"), (1e16, "1e+16"), (1.5e17, "1.5e+17"),
                             (1e-5, "0.00001"), (1e-6, "1e-6"), (1e300, "1e+300"), (-1e-7, "-1e-7"), (-0.0, "-0.0"),
                             (123456789012345.6, "123456789012345.6"), (12, "12")]:
            self.assertEqual(account_balance._number(number), text)


if __name__ == "__main__":
    unittest.main()
