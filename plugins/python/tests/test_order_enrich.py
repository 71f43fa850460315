"""The Rust order-enrich's unit tests, ported: same inputs, same expected
outputs and messages (only the JSON parser's own wording differs)."""

import json
import unittest

import support

from sluice_sdk import Event
from sluice_sdk.runner import load

ORDER = '{"order_id":"ORD-0001","customer_id":"CUST-001","amount":11.5,"timestamp":1732400000.0}'


def plugin(config=()):
    runner = support.runner(load(support.fresh("order_enrich")))
    message = runner.init(list(config))
    assert message is None, message
    return runner


def enrich(value, runner=None):
    event = Event(value, key="k", headers=[("h", "1")])
    [(kind, payload)] = (runner or plugin()).process([event])
    if kind == "err":
        return payload
    [output] = payload
    assert (output.topic, output.key, output.headers) == (None, None, None), "inherits"
    return output.value.decode()


class OrderEnrichTest(unittest.TestCase):
    def invalid(self, value):
        result = enrich(value)
        self.assertIsInstance(result, tuple, f"expected invalid for {value}, got {result}")
        self.assertEqual(result[0], "invalid")
        return result[1]

    def test_tutorial_order_exact_bytes(self):
        self.assertEqual(
            enrich(ORDER),
            '{"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000.0}',
        )

    def test_keeps_unknown_fields_and_overwrites_ours(self):
        self.assertEqual(
            enrich('{"order_id":"A","amount":0.29,"z":[1,{"b":2}],"tier":"x"}'),
            '{"amount":0.29,"amount_cents":29,"order_id":"A","tier":"bronze","z":[1,{"b":2}]}',
        )

    def test_tiers_and_rounding(self):
        def tier_of(amount):
            value = json.loads(enrich(f'{{"order_id":"A","amount":{amount}}}'))
            return value["tier"], value["amount_cents"]

        self.assertEqual(tier_of("0"), ("bronze", 0))
        self.assertEqual(tier_of("49.999"), ("bronze", 5000))
        self.assertEqual(tier_of("50"), ("silver", 5000))
        self.assertEqual(tier_of("99.99"), ("silver", 9999))
        self.assertEqual(tier_of("100"), ("gold", 10000))
        self.assertEqual(tier_of("1234.565"), ("gold", 123457))
        self.assertEqual(tier_of("7"), ("bronze", 700), "integer amounts")
        self.assertEqual(tier_of("0.125"), ("bronze", 13), "half away from zero")
        self.assertEqual(tier_of("-0.0"), ("bronze", 0))

    def test_thresholds_from_config(self):
        custom = plugin([("silver_from", "10"), ("gold_from", "20.5")])

        def tier(amount):
            return json.loads(enrich(f'{{"order_id":"A","amount":{amount}}}', custom))["tier"]

        self.assertEqual(tier(9.99), "bronze")
        self.assertEqual(tier(10.0), "silver")
        self.assertEqual(tier(20.5), "gold")

    def test_bad_config_names_the_key(self):
        def init(config):
            return support.runner(load(support.fresh("order_enrich"))).init(config)

        self.assertEqual(init([("silver_from", "lots")]),
                         'config key `silver_from`: invalid value "lots": invalid float literal')
        self.assertEqual(init([("gold_from", "-1")]),
                         "config key `gold_from`: must be a finite, non-negative number, got -1")
        self.assertEqual(init([("gold_from", "NaN")]),
                         "config key `gold_from`: must be a finite, non-negative number, got NaN")
        self.assertEqual(init([("silver_from", "60"), ("gold_from", "40")]),
                         "config key `gold_from` (40) must not be below `silver_from` (60)")

    def test_invalid_events_say_why(self):
        self.assertTrue(self.invalid("not json").startswith("event value is not valid JSON: "))
        self.assertEqual(self.invalid("[1,2]"), "order is not a JSON object, got array")
        self.assertEqual(self.invalid('"ORD-1"'), "order is not a JSON object, got string")
        self.assertEqual(self.invalid('{"amount":1}'), "missing field `order_id`")
        self.assertEqual(self.invalid('{"order_id":7,"amount":1}'), "field `order_id` must be a string, got number")
        self.assertEqual(self.invalid('{"order_id":"A"}'), "missing field `amount`")
        self.assertEqual(self.invalid('{"order_id":"A","amount":"11.5"}'), "field `amount` must be a number, got string")
        self.assertEqual(self.invalid('{"order_id":"A","amount":null}'), "field `amount` must be a number, got null")
        self.assertEqual(self.invalid('{"order_id":"A","amount":true}'), "field `amount` must be a number, got boolean")
        self.assertEqual(self.invalid('{"order_id":"A","amount":-1.5}'), "field `amount` must not be negative, got -1.5")
        self.assertEqual(self.invalid('{"order_id":"A","amount":-1}'), "field `amount` must not be negative, got -1")
        self.assertEqual(self.invalid('{"order_id":"A","amount":1e300}'),
                         "field `amount` is too large for exact cents, got 1e300")
        self.assertEqual(self.invalid('{"order_id":"A","amount":1e400}'),
                         "event value is not valid JSON: number out of range")
        self.assertEqual(self.invalid(None), "event has no value (tombstone)")


if __name__ == "__main__":
    unittest.main()
