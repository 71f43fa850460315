import unittest

import support  # noqa: F401

from sluice_sdk import Event, Invalid
from sluice_sdk.compat import display_f64, display_f64_exp, json_like_serde, serde_number


class SerdeNumberTest(unittest.TestCase):
    def test_integers(self):
        self.assertEqual(serde_number("0"), 0)
        self.assertEqual(serde_number("18446744073709551615"), 2**64 - 1)
        self.assertEqual(serde_number("-9223372036854775808"), -(2**63))
        for token, value in [("-0", -0.0), ("18446744073709551616", 1.8446744073709552e19),
                             ("-9223372036854775809", -9.223372036854776e18)]:
            result = serde_number(token)
            self.assertIsInstance(result, float, token)
            self.assertEqual(repr(result), repr(value), token)

    def test_floats_are_pythons(self):
        # With `float_roundtrip` serde_json rounds correctly, as Python does.
        for token in ["123.45", "0.29", "1.5e-7", "1732400000.0", "1e22", "-0.0", "1E+3",
                      "920596.24057997885", "100000000000000000000000.5", "1e-400"]:
            self.assertEqual(repr(serde_number(token)), repr(float(token)), token)

    def test_out_of_range(self):
        for token in ["1e400", "-1e309", "1e2147483648", "1" + "0" * 400, "1" + "0" * 5000]:
            with self.subTest(token), self.assertRaisesRegex(ValueError, "^number out of range$"):
                serde_number(token)

    def test_json_like_serde(self):
        self.assertEqual(json_like_serde(Event('{"a":1.5}')), {"a": 1.5})
        self.assertEqual(json_like_serde(Event('{"a":-0,"b":1e2}')), {"a": -0.0, "b": 100.0})
        self.assertIsInstance(json_like_serde(Event('{"a":-0}'))["a"], float)
        with self.assertRaises(Invalid) as caught:
            json_like_serde(Event('{"a":1e400}'))
        self.assertEqual(caught.exception.message, "event value is not valid JSON: number out of range")
        with self.assertRaises(Invalid) as caught:
            json_like_serde(Event())
        self.assertEqual(caught.exception.message, "event has no value (tombstone)")


class DisplayTest(unittest.TestCase):
    def test_display(self):
        cases = [(-1.0, "-1"), (1.5, "1.5"), (0.0, "0"), (-0.0, "-0"), (1e21, "1000000000000000000000"),
                 (1e-7, "0.0000001"), (123456789012345680.0, "123456789012345680"),
                 (float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "-inf"), (0.1, "0.1")]
        for value, text in cases:
            self.assertEqual(display_f64(value), text, repr(value))

    def test_display_exp(self):
        cases = [(1e300, "1e300"), (1.5e300, "1.5e300"), (-1.5e-7, "-1.5e-7"), (0.0, "0e0"),
                 (12345678901234567.0, "1.2345678901234568e16"), (100.0, "1e2"), (float("inf"), "inf")]
        for value, text in cases:
            self.assertEqual(display_f64_exp(value), text, repr(value))


if __name__ == "__main__":
    unittest.main()
